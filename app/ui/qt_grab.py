"""Screen capture through Qt (QScreen.grabWindow): the fallback grabber the tray app registers.

app.capture.screen uses mss first; when mss cannot capture, it calls the grabber registered with
set_fallback_grabber(). Rectangles arrive in mss's coordinates (physical pixels on X11 and
Windows). Qt places each screen at its native origin and scales sizes by the screen's device pixel
ratio, so a physical point p on a screen maps to origin + (p - origin) / ratio.

QPixmap may only be used on the GUI thread: a call from any other thread is handed to the GUI
thread through a blocking queued signal and waits for the pixels.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QRect, Qt, QThread, Signal
from PySide6.QtGui import QGuiApplication, QImage, QScreen

from app.capture import screen as screen_capture
from app.core.errors import CaptureError


def _native_rect(screen: QScreen) -> QRect:
    geo = screen.geometry()
    ratio = screen.devicePixelRatio()
    return QRect(geo.x(), geo.y(), round(geo.width() * ratio), round(geo.height() * ratio))


def _image_to_rgb(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes())
    return buf.reshape(h, image.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()


def _grab_on_gui_thread(x: int, y: int, w: int, h: int) -> np.ndarray:
    if QGuiApplication.instance() is None:
        raise CaptureError("Qt screen capture needs the Sightline app to be running.")
    target = QRect(x, y, w, h)
    canvas = np.zeros((h, w, 3), np.uint8)
    covered = False
    for scr in QGuiApplication.screens():
        native = _native_rect(scr)
        part = native.intersected(target)
        if part.isEmpty():
            continue
        ratio = scr.devicePixelRatio()
        # grabWindow(0, ...) takes logical coordinates relative to the screen's top-left.
        lx = (part.x() - native.x()) / ratio
        ly = (part.y() - native.y()) / ratio
        pixmap = scr.grabWindow(
            0, int(lx), int(ly), max(1, round(part.width() / ratio)), max(1, round(part.height() / ratio))
        )
        if pixmap.isNull():
            continue
        pixels = _image_to_rgb(pixmap.toImage())
        ph, pw = min(part.height(), pixels.shape[0]), min(part.width(), pixels.shape[1])
        if ph == 0 or pw == 0:
            continue
        ox, oy = part.x() - x, part.y() - y
        canvas[oy : oy + ph, ox : ox + pw] = pixels[:ph, :pw]
        covered = True
    if not covered:
        if screen_capture._is_wayland() or QGuiApplication.platformName().startswith("wayland"):
            raise CaptureError(screen_capture.WAYLAND_SENTENCE)
        raise CaptureError("The screen could not be captured.", detail="QScreen.grabWindow returned nothing")
    return canvas


class _GuiRelay(QObject):
    """Lives on the GUI thread; runs grabs asked for from other threads."""

    requested = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        # BlockingQueuedConnection: the calling thread waits while the GUI thread grabs; the
        # result (or error) is handed back in the request list, which only one side touches at a time.
        self.requested.connect(self._run, Qt.ConnectionType.BlockingQueuedConnection)

    def _run(self, request: list) -> None:
        try:
            request.append(_grab_on_gui_thread(*request[0]))
        except Exception as exc:  # noqa: BLE001 - handed back to the caller's thread
            request.append(exc)


_relay: _GuiRelay | None = None


def qt_grab(x: int, y: int, w: int, h: int) -> np.ndarray:
    """Grab a rectangle (physical pixels) with Qt; H x W x 3 RGB uint8. Safe from any thread."""
    app = QGuiApplication.instance()
    if app is None:
        raise CaptureError("Qt screen capture needs the Sightline app to be running.")
    if QThread.currentThread() is app.thread():
        return _grab_on_gui_thread(x, y, w, h)
    if _relay is None:
        raise CaptureError("Qt screen capture was not set up on the app's main thread.")
    request: list = [(x, y, w, h)]
    _relay.requested.emit(request)
    result = request[-1]
    if isinstance(result, Exception):
        raise result
    return result


def install() -> None:
    """Register Qt's grabber as the fallback for app.capture.screen. Call on the GUI thread."""
    global _relay
    if _relay is None:
        _relay = _GuiRelay()
    screen_capture.set_fallback_grabber(qt_grab)
