"""Where Sightline's own windows are, so that screen captures leave them out.

app.capture.screen asks for these rectangles on every capture (set_own_windows) and paints them
grey: the answer window, the settings dialog, an open menu. Qt keeps each screen's origin in native
pixels and sizes in logical ones; a capture rectangle is in physical pixels, so a point p on a
screen maps to origin + (p - origin) * device pixel ratio.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QThread
from PySide6.QtWidgets import QApplication

from app.capture import screen as screen_capture


def own_window_rects() -> list[tuple[int, int, int, int]]:
    """Every visible top-level window of this app, frame included, in physical pixels.

    Widgets may only be read on the GUI thread; from any other thread this returns nothing (the
    app captures on the GUI thread)."""
    app = QApplication.instance()
    if app is None or QThread.currentThread() is not app.thread():
        return []
    rects = []
    for widget in QApplication.topLevelWidgets():
        if not widget.isVisible() or widget.isMinimized() or widget.windowOpacity() == 0:
            continue
        frame = widget.frameGeometry()
        if frame.isEmpty():
            continue
        # Where the window really is (an embedded one, like the tray icon, is placed by its host).
        frame.moveTopLeft(widget.mapToGlobal(QPoint(0, 0)) - (widget.geometry().topLeft() - frame.topLeft()))
        screen = widget.screen() or QApplication.primaryScreen()
        ratio, ox, oy = 1.0, 0, 0
        if screen is not None:
            ratio, ox, oy = screen.devicePixelRatio(), screen.geometry().x(), screen.geometry().y()
        x = ox + round((frame.x() - ox) * ratio)
        y = oy + round((frame.y() - oy) * ratio)
        rects.append((x, y, round(frame.width() * ratio), round(frame.height() * ratio)))
    return rects


def install() -> None:
    """Leave Sightline's own windows out of every screen capture. Call on the GUI thread."""
    screen_capture.set_own_windows(own_window_rects)
