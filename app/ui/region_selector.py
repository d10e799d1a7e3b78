"""A full-screen overlay for choosing a region of one screen, by keyboard or mouse.

Keyboard: arrow keys move the rectangle 10 pixels, Shift+arrows resize it (Right and Down grow,
Left and Up shrink), Ctrl makes either a 1-pixel step, Enter accepts, Escape cancels. Mouse: drag
to draw a rectangle, double-click to accept, right-click to cancel. The rectangle always stays on
the screen.

The region's size and position are said in plain words through the `announce(text)` callback (the
app passes its SpeechManager), e.g. "A box a third the width of the screen and half its height, in
the top left", once the keys pause for `announce_delay_ms`, so holding an arrow key does not
chatter; a move too small to change the words is confirmed with one word ("Right.", "Wider.").
The pixel numbers are only drawn, for those who can see them. Like the result window, the overlay
posts no accessible announcements itself.

What is under the overlay: without a compositor a translucent window is drawn black, so the
overlay shows a picture of the screen taken as it opens (dimmed outside the box), unless the
caller passes one. Where the screen cannot be grabbed (Wayland) it falls back to translucency.

Coordinates: the widget works in Qt's logical pixels, local to the screen. `regionSelected` gives
physical pixels of the virtual desktop: the screen's origin (Qt keeps screen origins in native
pixels) plus the local offsets times the device pixel ratio. The overlay hides itself before it
emits either signal, so a capture made in the slot does not see it.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPoint, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QGuiApplication, QImage, QPainter, QPen, QPixmap, QRegion
from PySide6.QtWidgets import QApplication, QWidget

from app.core.types import Bounds
from app.ui.theme import DEFAULT_FONT_PT, HIGH_CONTRAST, clamp_font_pt

STEP = 10
FINE_STEP = 1
MIN_SIZE = 10
DEFAULT_SIZE = QSize(640, 480)
ANNOUNCE_DELAY_MS = 300

HELP_TEXT = (
    "Select a region. Arrow keys move it, Shift and arrows resize it, add Control for one pixel. "
    "Enter accepts, Escape cancels. You can also drag with the mouse."
)
BANNER_TEXT = "Arrows move · Shift+arrows resize · Ctrl: 1 pixel · Enter accepts · Esc cancels"

# How much of the screen: the nearest of these, said as "<words> the width of the screen".
_FRACTIONS = (
    (0.1, "a tenth"),
    (0.2, "a fifth"),
    (0.25, "a quarter"),
    (1 / 3, "a third"),
    (0.4, "two fifths"),
    (0.5, "half"),
    (0.6, "three fifths"),
    (2 / 3, "two thirds"),
    (0.75, "three quarters"),
    (0.8, "four fifths"),
    (0.9, "nine tenths"),
    (1.0, "the full"),
)
_PLACES = {
    ("top", "left"): "in the top left",
    ("top", "centre"): "at the top",
    ("top", "right"): "in the top right",
    ("middle", "left"): "on the left",
    ("middle", "centre"): "in the middle",
    ("middle", "right"): "on the right",
    ("bottom", "left"): "in the bottom left",
    ("bottom", "centre"): "at the bottom",
    ("bottom", "right"): "in the bottom right",
}


def _fraction(part: float, whole: float) -> str:
    share = part / whole if whole > 0 else 1.0
    if share < 0.07:
        return "less than a tenth of"
    return min(_FRACTIONS, key=lambda f: abs(f[0] - share))[1]


def plain_words(rect: QRect, screen: QSize) -> str:
    """A box in words a listener can picture: "A box a third the width of the screen and half its
    height, in the top left"."""
    sw, sh = max(1, screen.width()), max(1, screen.height())
    width = _fraction(rect.width(), sw)
    height = _fraction(rect.height(), sh)
    height_words = "the full height" if height == "the full" else f"{height} its height"
    cx = (rect.x() + rect.width() / 2) / sw
    cy = (rect.y() + rect.height() / 2) / sh
    column = (
        "centre" if rect.width() > 0.9 * sw else "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
    )
    row = (
        "middle"
        if rect.height() > 0.9 * sh
        else "top"
        if cy < 1 / 3
        else "bottom"
        if cy > 2 / 3
        else "middle"
    )
    return f"A box {width} the width of the screen and {height_words}, {_PLACES[(row, column)]}"


# What a move or resize that does not change the words is confirmed with.
_STEP_WORDS = {
    (False, -1, 0): "Left.",
    (False, 1, 0): "Right.",
    (False, 0, -1): "Up.",
    (False, 0, 1): "Down.",
    (True, -1, 0): "Narrower.",
    (True, 1, 0): "Wider.",
    (True, 0, -1): "Shorter.",
    (True, 0, 1): "Taller.",
}

_ARROWS = {
    Qt.Key.Key_Left: (-1, 0),
    Qt.Key.Key_Right: (1, 0),
    Qt.Key.Key_Up: (0, -1),
    Qt.Key.Key_Down: (0, 1),
}


def _rect_between(a: QPoint, b: QPoint) -> QRect:
    """The rectangle a drag from a to b covers: 100,100 to 300,250 is 200 by 150."""
    return QRect(min(a.x(), b.x()), min(a.y(), b.y()), abs(b.x() - a.x()), abs(b.y() - a.y()))


class RegionSelector(QWidget):
    """Emits regionSelected(x, y, w, h) in physical pixels, or cancelled()."""

    regionSelected = Signal(int, int, int, int)
    cancelled = Signal()

    def __init__(
        self,
        screen_geometry: QRect,
        announce: Callable[[str], None] | None = None,
        *,
        device_pixel_ratio: float | None = None,
        initial: QRect | None = None,
        background: QPixmap | QImage | None = None,
        font_pt: int = DEFAULT_FONT_PT,
        announce_delay_ms: int = ANNOUNCE_DELAY_MS,
        speak_help: bool = True,
        parent: QWidget | None = None,
    ):
        flags = Qt.WindowType.Window | Qt.WindowType.FramelessWindowHint | Qt.WindowType.WindowStaysOnTopHint
        super().__init__(parent, flags)
        self.setObjectName("regionSelector")
        self.setWindowTitle("Sightline region selector")
        self.setAccessibleName("Region selector")
        self.setAccessibleDescription(HELP_TEXT)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(False)
        self.setCursor(Qt.CursorShape.CrossCursor)

        self._screen_geometry = QRect(screen_geometry)
        self._dpr = float(device_pixel_ratio) if device_pixel_ratio else self._screen_dpr(screen_geometry)
        self._announce = announce
        self._speak_help = speak_help
        if isinstance(background, QImage):
            background = QPixmap.fromImage(background)
        self._background = background
        self._step_word = ""  # the last key's direction, said when the words do not change
        self._font = QFont(self.font())
        self._font.setPointSize(clamp_font_pt(font_pt))
        self._font.setBold(True)

        size = self._screen_geometry.size()
        if initial is None:
            w = min(DEFAULT_SIZE.width(), size.width())
            h = min(DEFAULT_SIZE.height(), size.height())
            initial = QRect((size.width() - w) // 2, (size.height() - h) // 2, w, h)
        self._rect = self._clamped(QRect(initial))
        self._drag_origin: QPoint | None = None
        self._done = False
        self._limit = ""  # why the last change was cut short, said with the next announcement
        self._last_announced = ""

        self._announce_timer = QTimer(self)
        self._announce_timer.setSingleShot(True)
        self._announce_timer.setInterval(max(0, int(announce_delay_ms)))
        self._announce_timer.timeout.connect(self._announce_now)

        self.setGeometry(self._screen_geometry)

    # ----- public ----------------------------------------------------------------------------

    def start(self) -> None:
        """Show over the whole screen, take the keyboard focus and say how to use it."""
        screen = QGuiApplication.screenAt(self._screen_geometry.center())
        if screen is not None:
            self.setScreen(screen)
        if self._background is None and screen is not None:
            # A picture of the screen as it is now: what the user chooses from stays visible.
            grabbed = screen.grabWindow(0)
            if not grabbed.isNull():
                self._background = grabbed
        if self._background is None:
            self.setAttribute(Qt.WidgetAttribute.WA_TranslucentBackground, True)  # needs a compositor
        self.setGeometry(self._screen_geometry)
        self.show()
        self.raise_()
        self.activateWindow()
        self.setFocus(Qt.FocusReason.ActiveWindowFocusReason)
        if self._speak_help:
            text = f"{HELP_TEXT} {self.describe()}."
            self._last_announced = self.describe()
            self._say(text)

    def region(self) -> QRect:
        """The rectangle in logical pixels, relative to the screen's top-left."""
        return QRect(self._rect)

    def region_physical(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) in physical pixels of the virtual desktop."""
        r, dpr = self._rect, self._dpr
        ox, oy = self._screen_geometry.x(), self._screen_geometry.y()
        max_w = round(self._screen_geometry.width() * dpr)
        max_h = round(self._screen_geometry.height() * dpr)
        x, y = round(r.x() * dpr), round(r.y() * dpr)
        w = max(1, min(round(r.width() * dpr), max_w - x))
        h = max(1, min(round(r.height() * dpr), max_h - y))
        return ox + x, oy + y, w, h

    def bounds(self) -> Bounds:
        return Bounds(*self.region_physical())

    def describe(self) -> str:
        """What is announced: the box in plain words (see plain_words)."""
        return plain_words(self._rect, self._screen_geometry.size())

    def describe_pixels(self) -> str:
        """The box in physical pixels, e.g. "640 × 480 at 100, 200" (drawn, not said)."""
        x, y, w, h = self.region_physical()
        return f"{w} × {h} at {x}, {y}"

    @property
    def device_pixel_ratio(self) -> float:
        return self._dpr

    def accept(self) -> None:
        if self._done:
            return
        self._done = True
        self._announce_timer.stop()
        x, y, w, h = self.region_physical()
        self.hide()
        self.regionSelected.emit(x, y, w, h)
        self.close()

    def cancel(self) -> None:
        if self._done:
            return
        self._done = True
        self._announce_timer.stop()
        self.hide()
        self.cancelled.emit()
        self.close()

    # ----- geometry --------------------------------------------------------------------------

    @staticmethod
    def _screen_dpr(geometry: QRect) -> float:
        screen = QGuiApplication.screenAt(geometry.center())
        if screen is None:
            screen = QGuiApplication.primaryScreen()
        return float(screen.devicePixelRatio()) if screen is not None else 1.0

    def _clamped(self, rect: QRect) -> QRect:
        sw, sh = self._screen_geometry.width(), self._screen_geometry.height()
        w = max(min(MIN_SIZE, sw), min(rect.width(), sw))
        h = max(min(MIN_SIZE, sh), min(rect.height(), sh))
        x = max(0, min(rect.x(), sw - w))
        y = max(0, min(rect.y(), sh - h))
        return QRect(x, y, w, h)

    def _set_rect(self, rect: QRect, announce: bool) -> bool:
        new = self._clamped(rect)
        self._limit = ""
        if new != rect:
            too_small = rect.width() < new.width() or rect.height() < new.height()
            self._limit = "at the smallest size" if too_small else "at the edge of the screen"
        if new == self._rect and not self._limit:
            return False
        changed = new != self._rect
        self._rect = new
        if changed:
            self.update()
        if announce:
            self._announce_timer.start()  # restarts: one announcement after the keys pause
        return changed

    # ----- announcements ---------------------------------------------------------------------

    def _announce_now(self) -> None:
        text = self.describe()
        if self._limit:
            self._say(f"{text}, {self._limit}")
        elif text != self._last_announced:
            self._say(text)
        elif self._step_word:
            self._say(self._step_word)  # moved, but not enough to change the words
        self._step_word = ""
        self._last_announced = text

    def _say(self, text: str) -> None:
        if self._announce is not None:
            self._announce(text)

    # ----- input -----------------------------------------------------------------------------

    def keyPressEvent(self, event):  # noqa: N802 (Qt override)
        key = event.key()
        mods = event.modifiers()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.accept()
            return
        if key == Qt.Key.Key_Escape:
            self.cancel()
            return
        if key in _ARROWS:
            dx, dy = _ARROWS[key]
            step = FINE_STEP if mods & Qt.KeyboardModifier.ControlModifier else STEP
            r = QRect(self._rect)
            resize = bool(mods & Qt.KeyboardModifier.ShiftModifier)
            self._step_word = _STEP_WORDS[(resize, dx, dy)]
            if resize:
                r.setWidth(r.width() + dx * step)
                r.setHeight(r.height() + dy * step)
            else:
                r.translate(dx * step, dy * step)
            self._set_rect(r, announce=True)
            event.accept()
            return
        super().keyPressEvent(event)

    def mousePressEvent(self, event):  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.RightButton:
            self.cancel()
            return
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag_origin = event.position().toPoint()
        event.accept()

    def mouseMoveEvent(self, event):  # noqa: N802 (Qt override)
        if self._drag_origin is None:
            return
        pos = event.position().toPoint()
        if (pos - self._drag_origin).manhattanLength() < QApplication.startDragDistance():
            return
        self._set_rect(_rect_between(self._drag_origin, pos), announce=True)

    def mouseReleaseEvent(self, event):  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.LeftButton and self._drag_origin is not None:
            pos = event.position().toPoint()
            if (pos - self._drag_origin).manhattanLength() >= QApplication.startDragDistance():
                self._set_rect(_rect_between(self._drag_origin, pos), announce=True)
            self._drag_origin = None
        event.accept()

    def mouseDoubleClickEvent(self, event):  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag_origin = None
            self.accept()

    def closeEvent(self, event):  # noqa: N802 (Qt override)
        if not self._done:  # closed by the window manager (Alt+F4): same as Escape
            self.cancel()
        self._announce_timer.stop()
        super().closeEvent(event)

    # ----- painting --------------------------------------------------------------------------

    def paintEvent(self, event):  # noqa: N802 (Qt override)
        c = HIGH_CONTRAST
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        full = self.rect()
        if self._background is not None:
            p.drawPixmap(full, self._background)
        sel = QRect(self._rect)
        outside = QRegion(full).subtracted(QRegion(sel))
        p.setClipRegion(outside)
        p.fillRect(full, QColor(0, 0, 0, 150))
        p.setClipping(False)
        if self._background is None:
            p.fillRect(sel, QColor(255, 255, 255, 1))  # keeps the inside clickable when translucent

        # Yellow frame with a black line either side, visible on light and dark screens alike.
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(QColor(c.background), 10, Qt.PenStyle.SolidLine, Qt.PenCapStyle.SquareCap))
        p.drawRect(sel.adjusted(-5, -5, 4, 4))
        p.setPen(QPen(QColor(c.accent), 4, Qt.PenStyle.SolidLine, Qt.PenCapStyle.SquareCap))
        p.drawRect(sel.adjusted(-5, -5, 4, 4))

        p.setFont(self._font)
        fm = p.fontMetrics()
        pad = max(6, fm.height() // 4)

        info = self.describe_pixels()
        box = fm.boundingRect(info).adjusted(-pad, -pad, pad, pad)
        box.moveTopLeft(QPoint(sel.left() - 5, sel.bottom() + 12))
        if box.bottom() > full.bottom():
            box.moveBottomLeft(QPoint(sel.left() - 5, sel.top() - 12))
        if box.top() < full.top():
            box.moveTopLeft(QPoint(sel.left() + 8, sel.top() + 8))
        box.moveLeft(max(0, min(box.left(), full.right() - box.width())))
        self._draw_label(p, box, info, QColor(c.accent))

        banner = fm.boundingRect(BANNER_TEXT).adjusted(-pad, -pad, pad, pad)
        if banner.width() > full.width() - 20:
            banner.setWidth(full.width() - 20)
        banner.moveTopLeft(QPoint((full.width() - banner.width()) // 2, 10))
        if banner.intersects(sel.adjusted(-8, -8, 8, 8)) or banner.intersects(box):
            banner.moveBottom(full.bottom() - 10)
        self._draw_label(p, banner, BANNER_TEXT, QColor(c.foreground))
        p.end()

    def _draw_label(self, p: QPainter, box: QRect, text: str, color: QColor) -> None:
        p.fillRect(box, QColor(HIGH_CONTRAST.background))
        p.setPen(QPen(color, 2))
        p.drawRect(box.adjusted(1, 1, -1, -1))
        p.drawText(box, Qt.AlignmentFlag.AlignCenter, text)


def selector_on(
    area: Bounds | None, announce: Callable[[str], None] | None = None, *, font_pt: int = DEFAULT_FONT_PT
) -> RegionSelector:
    """A region selector that starts on `area` (physical screen pixels: a window, an explored
    part), on the monitor that holds it; with no area, in the middle of the monitor under the
    pointer. Enter alone then takes the area as it is; the arrows make it a part of it."""
    from PySide6.QtGui import QCursor

    qscreen = None
    if area is not None:
        qscreen = QGuiApplication.screenAt(QRect(area.x, area.y, area.width, area.height).center())
    qscreen = qscreen or QGuiApplication.screenAt(QCursor.pos()) or QGuiApplication.primaryScreen()
    geo, ratio = qscreen.geometry(), qscreen.devicePixelRatio()
    initial = None
    if area is not None:
        # Screen origins are native pixels in Qt; the selector works in logical pixels.
        left, top = round((area.x - geo.x()) / ratio), round((area.y - geo.y()) / ratio)
        initial = QRect(left, top, round(area.width / ratio), round(area.height / ratio))
    return RegionSelector(geo, announce=announce, initial=initial, font_pt=font_pt)


def active_window_area() -> Bounds | None:
    """Where the active window is, or None when there is none."""
    from app.capture import screen as capture
    from app.core.errors import SightlineError

    try:
        return capture.capture_active_window().bounds
    except SightlineError:
        return None
