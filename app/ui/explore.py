"""Explore mode: the text on a window, a region or the screen as a list to move through and click.

The explore key captures the active window (the whole screen when no window is active, or when
the key is pressed again while exploring); the explore-region key first opens the region selector
(app/ui/region_selector.py) on the active window, so Enter explores the window and the arrows make
it a part of it. The text is recognised with the on-device engine (no model needed) on a thread of
its own, then a small window of Sightline's opens that takes the keyboard,
so the arrows reach Sightline without any global keyboard grab. The window shows the current item
in large text; everything is also spoken:

- Up / Down: the previous / next line; Left / Right: the previous / next word;
- Ctrl+Up / Ctrl+Down or Page Up / Page Down: the previous / next block (a paragraph, a button);
- Home / End: the first / last line; Space says the current item again; F1 says the keys;
- typing text (or Ctrl+F) opens Find: Enter goes to the best match and says it, F3 the next one;
- Enter moves the pointer to the centre of the current item and clicks it, Shift+Enter
  right-clicks; explore mode then ends, since the screen has changed;
- Ctrl+D describes the item and what is around it from the picture already taken (with the model
  an icon or a control gets a name; without it, the text there is read);
- Ctrl+R closes the window and opens the region selector on the explored area, to explore a part
  of it;
- Escape leaves.

Spoken find: while exploring, "click Save", "right-click the Save button", "find Cancel" or "where
is Print" (transcribed by the model, or by the offline grammar of app.commands.voice built from the
words on the screen) goes to the best match, says it with where it is, and only then clicks it
(ExploreController.act_on_phrase; the phrase is parsed by app.inference.screen_map).

The window is never in its own picture: the capture is made before it opens, and captures leave
Sightline's windows out anyway (app/ui/own_windows.py). It hides itself before clicking, so the
click lands on the application underneath.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import QLabel, QLineEdit, QVBoxLayout, QWidget

from app.core.errors import CaptureError, SightlineError
from app.inference.screen_map import (
    FIND,
    RIGHT_CLICK,
    Item,
    ScreenMap,
    parse_spoken_action,
    target_variants,
)
from app.ui.theme import DEFAULT_FONT_PT, clamp_font_pt

if TYPE_CHECKING:
    from app.ui.region_selector import RegionSelector

log = logging.getLogger(__name__)

WINDOW_TITLE = "Sightline explore"
KEYS_HELP = (
    "Up and Down arrows move by line, Left and Right by word, Page Up and Page Down by block, "
    "Home and End to the first and last line. Type to find text. Enter clicks, Shift and Enter "
    "right-clicks, Control and D describes the item and what is around it, Control and R chooses a "
    "region to explore, Escape leaves. Hold the voice key and say click, right click or find, then "
    "the words of an item."
)
CLICK_DELAY_MS = 200  # time for the explore window to disappear before the click
OVERLAY_DELAY_MS = 150  # time for a closed window or overlay to leave the screen before a capture
OPEN_EXPLORE_FIRST = (
    "Explore is not open. Open it with the explore key first, then say click, right click or find, "
    "then the words of an item."
)


def pointer_click(x: int, y: int, button: str = "left") -> None:
    """Move the pointer to (x, y) in screen pixels and click there (X11, Windows, macOS)."""
    try:
        from pynput.mouse import Button, Controller
    except Exception as exc:  # noqa: BLE001 - no pointer control here: say so
        raise SightlineError("Sightline cannot move the pointer on this system.", detail=str(exc)) from exc
    mouse = Controller()
    mouse.position = (int(x), int(y))
    mouse.click(Button.right if button == "right" else Button.left)


class ExploreWindow(QWidget):
    """The explore window: takes the keyboard while exploring. `announce(text)` speaks."""

    closed = Signal()
    clickRequested = Signal(int, int, str, str)  # x, y, button, text
    describeRequested = Signal(object)  # the current Item
    regionRequested = Signal()  # Ctrl+R: choose a region of the explored area

    def __init__(
        self,
        screen_map: ScreenMap,
        announce: Callable[[str], None],
        *,
        font_pt: int = DEFAULT_FONT_PT,
        parent: QWidget | None = None,
    ):
        flags = Qt.WindowType.Window | Qt.WindowType.WindowStaysOnTopHint
        super().__init__(parent, flags)
        self.map = screen_map
        self._announce = announce
        self._done = False
        self._closed = False
        self.setObjectName("exploreWindow")
        self.setWindowTitle(WINDOW_TITLE)
        self.setAccessibleName("Explore the screen")
        self.setAccessibleDescription(KEYS_HELP)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)

        big = QFont(self.font())
        big.setPointSize(clamp_font_pt(font_pt))
        self.item_label = QLabel("", self)
        self.item_label.setObjectName("exploreItem")
        self.item_label.setAccessibleName("Current item")
        self.item_label.setFont(big)
        self.item_label.setWordWrap(True)
        self.where_label = QLabel("", self)
        self.where_label.setObjectName("exploreWhere")
        self.where_label.setAccessibleName("Where it is")
        self.find_edit = QLineEdit(self)
        self.find_edit.setObjectName("exploreFind")
        self.find_edit.setAccessibleName("Find text")
        self.find_edit.setPlaceholderText("Find text, then Enter")
        self.find_edit.setFont(big)
        self.find_edit.hide()
        self.find_edit.installEventFilter(self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.item_label)
        layout.addWidget(self.where_label)
        layout.addWidget(self.find_edit)
        self.resize(760, 160)

    # -- showing ---------------------------------------------------------------------------------

    def open(self) -> None:
        """Show, take the keyboard and say what is there."""
        self._place()
        self.show()
        self.raise_()
        self.activateWindow()
        self.setFocus(Qt.FocusReason.ActiveWindowFocusReason)
        lines = len(self.map)
        intro = f"Exploring: {lines} line{'s' if lines != 1 else ''}. "
        self._show(self.map.current, intro)

    def _place(self) -> None:
        """On the explored screen, at the bottom, or the top when the current item is low down."""
        area = self.map.area
        screen = QGuiApplication.screenAt(QRect(area.x, area.y, area.width, area.height).center())
        screen = screen or QGuiApplication.primaryScreen()
        geo = screen.availableGeometry()
        w = min(self.width(), geo.width())
        h = self.sizeHint().height() if self.sizeHint().height() > self.height() else self.height()
        item = self.map.current
        low = item is not None and item.center[1] > geo.center().y()
        y = geo.top() + 20 if low else geo.bottom() - h - 40
        self.setGeometry(geo.left() + (geo.width() - w) // 2, y, w, h)

    def _show(self, item: Item | None, lead: str = "", tail: str = "") -> None:
        """Show the item and say it, in one utterance with `lead` before and `tail` after it."""
        if item is None:
            self.item_label.setText("")
            self.where_label.setText("")
            self._announce(lead + "I found no text here. Press Escape to leave.")
            return
        self.item_label.setText(item.text)
        self.where_label.setText(self.map.where(item))
        self._announce(lead + self.map.spoken(item) + (f". {tail}" if tail else ""))

    def _moved(self, item: Item | None, edge: str) -> None:
        if item is None:
            self._announce(edge)
        else:
            self._show(item)
            if self.isVisible():
                self._place()

    # -- keys ------------------------------------------------------------------------------------

    def keyPressEvent(self, event):  # noqa: N802 (Qt override)
        key, mods = event.key(), event.modifiers()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
        m = self.map
        K = Qt.Key
        if key == K.Key_Escape:
            self.leave()
        elif key in (K.Key_Up, K.Key_Down) and ctrl:
            self._moved(m.move_block(-1 if key == K.Key_Up else 1), "No more blocks.")
        elif key in (K.Key_PageUp, K.Key_PageDown):
            self._moved(m.move_block(-1 if key == K.Key_PageUp else 1), "No more blocks.")
        elif key == K.Key_Up:
            self._moved(m.move_line(-1), "Top.")
        elif key == K.Key_Down:
            self._moved(m.move_line(1), "Bottom.")
        elif key == K.Key_Left:
            self._moved(m.move_word(-1), "Top.")
        elif key == K.Key_Right:
            self._moved(m.move_word(1), "Bottom.")
        elif key == K.Key_Home:
            self._moved(m.first(), "Top.")
        elif key == K.Key_End:
            self._moved(m.last(), "Bottom.")
        elif key in (K.Key_Return, K.Key_Enter):
            self.click("right" if shift else "left")
        elif key == K.Key_F3:
            self._find_next()
        elif key == K.Key_F1:
            self._announce(KEYS_HELP)
        elif key == K.Key_Space and not ctrl:
            self._show(m.current)
        elif key == K.Key_D and ctrl:
            if m.current is not None:
                self.describeRequested.emit(m.current)
        elif key == K.Key_R and ctrl:
            self._done = True
            self.hide()
            self.regionRequested.emit()
            self.close()
        elif key == K.Key_F and ctrl:
            self._open_find("")
        elif event.text() and event.text().isprintable() and not ctrl:
            self._open_find(event.text())
        else:
            super().keyPressEvent(event)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt override)
        from PySide6.QtCore import QEvent

        if obj is self.find_edit and event.type() == QEvent.Type.KeyPress:
            if event.key() == Qt.Key.Key_Escape:
                self._close_find()
                self._announce("Find closed.")
                return True
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                # Taken here: QLineEdit passes Enter on to its parent, where it would click.
                self._find_entered()
                return True
        return super().eventFilter(obj, event)

    # -- find ------------------------------------------------------------------------------------

    def _open_find(self, first: str) -> None:
        self.find_edit.show()
        self.find_edit.setText(first)
        self.find_edit.setFocus(Qt.FocusReason.OtherFocusReason)
        if not first:
            self._announce("Find: type text, then Enter.")

    def _close_find(self) -> None:
        self.find_edit.hide()
        self.setFocus(Qt.FocusReason.OtherFocusReason)

    def _find_entered(self) -> None:
        query = self.find_edit.text().strip()
        self._close_find()
        if not query:
            return
        self.find_text(query)

    def find_text(self, query: str) -> Item | None:
        """Go to the best match for `query` and say it (it is not clicked: Enter does that)."""
        item = self.map.find(query)
        if item is None:
            self._announce(f"Nothing like {query} here.")
            return None
        return self._found(item)

    def _found(self, item: Item, how: str = "Enter clicks it.") -> Item:
        """Say the item found (with where it is, how to act on it, and how many more match)."""
        count = self.map.match_count
        more = f" {count - 1} more with F3." if count > 1 else ""
        self._show(item, tail=f"{how}{more}")
        self._place()
        return item

    def _find_next(self) -> None:
        if not self.map.query:
            self._open_find("")
            return
        item = self.map.find_next()
        if item is None:
            self._announce(f"Nothing like {self.map.query} here.")
        else:
            self._show(item)

    # -- acting ----------------------------------------------------------------------------------

    def act_on_phrase(self, text: str, *, confirm: bool = False) -> Item | None:
        """Act on a spoken request ("click Save", "right-click the Save button", "find Cancel"):
        go to the best match, say it with where it is, then click it (not for find). With
        `confirm` (speech heard by a grammar that may force other words onto the screen's) it only
        goes there and says how to click. Returns the item gone to, or None when the phrase is not
        a request or nothing matches."""
        parsed = parse_spoken_action(text)
        if parsed is None:
            heard = " ".join(text.split()).rstrip(".")
            self._announce(
                (f"I heard: {heard}. " if heard else "I heard nothing. ")
                + "Say click, right click or find, then the words of an item."
            )
            return None
        action, target = parsed
        if self.find_edit.isVisible():
            self._close_find()
        item = None
        for query in target_variants(target):
            item = self.map.find(query)
            if item is not None:
                break
        if item is None:
            self._announce(f"Nothing like {target} here.")
            return None
        if action == FIND:
            return self._found(item)
        if confirm:
            return self._found(
                item, "Shift and Enter right-clicks it." if action == RIGHT_CLICK else "Enter clicks it."
            )
        # Said before acting, in one utterance: where it is, then what is done.
        self.item_label.setText(item.text)
        self.where_label.setText(self.map.where(item))
        self.click("right" if action == RIGHT_CLICK else "left", lead=f"{self.map.spoken(item)}. ")
        return item

    def click(self, button: str = "left", lead: str = "") -> None:
        """Hide, then click the centre of the current item (right-click for "right"). `lead` is
        said first, in the same utterance."""
        item = self.map.current
        if item is None:
            self._announce(lead + "There is nothing to click.")
            return
        x, y = item.center
        text = " ".join(item.text.split())
        self._announce(f"{lead}{'Right-clicking' if button == 'right' else 'Clicking'} {text}.")
        self._done = True
        self.hide()
        # Let the window disappear from the screen before the click, so the click reaches the
        # application under it.
        # Closed meanwhile (explore started again), the window drops the click; deleted, it is the
        # timer's context, so the timer goes with it instead of emitting from a deleted object.
        QTimer.singleShot(CLICK_DELAY_MS, self, lambda: self._emit_click(x, y, button, text))

    def _emit_click(self, x: int, y: int, button: str, text: str) -> None:
        if self._closed:
            return
        self.clickRequested.emit(x, y, button, text)
        self.close()

    def leave(self) -> None:
        self._done = True
        self._announce("Left explore mode.")
        self.close()

    def closeEvent(self, event):  # noqa: N802 (Qt override)
        self._closed = True
        self.closed.emit()
        super().closeEvent(event)


class _Relay(QObject):
    """Recognition thread -> GUI thread: the finished map or a failure sentence, queued."""

    done = Signal(int, object)  # request number, ScreenMap
    failed = Signal(int, str)


class ExploreController(QObject):
    """The explore command: capture, recognise off the GUI thread, open the window, click."""

    opened = Signal(object)  # the ExploreWindow
    clicked = Signal(int, int, str, str)

    def __init__(
        self,
        announce: Callable[[str], None],
        report_error: Callable[[str], None],
        *,
        ocr=None,
        click: Callable[[int, int, str], None] = pointer_click,
        describe: Callable[[object], None] | None = None,
        font_pt: int = DEFAULT_FONT_PT,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._announce = announce
        self._report_error = report_error
        self._ocr = ocr
        self._click = click
        self._describe = describe
        self._image = None
        self.font_pt = font_pt
        self.window: ExploreWindow | None = None
        self.selector: RegionSelector | None = None  # while a region is being chosen
        self._request = 0
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_done)
        self._relay.failed.connect(self._on_failed)

    def start(self) -> None:
        """Explore the active window, or the screen when no window is active; pressed again while
        exploring, the whole screen."""
        from app.capture import screen

        widen = self.window is not None and self.window.isVisible()
        self.close()
        if not widen:
            try:
                image, what = screen.capture_active_window(), "window"
            except CaptureError:
                image, what = screen.capture_screen(), "screen"
            self.explore_image(image, what)
            return

        def whole_screen() -> None:
            try:
                self.explore_image(screen.capture_screen(), "screen")
            except SightlineError as exc:
                self._report_error(exc.sentence)

        # Let the closed explore window leave the screen before the picture is taken.
        QTimer.singleShot(150, whole_screen)

    @property
    def active(self) -> bool:
        """True while an explore window is open and listening (not once it is clicking)."""
        return self.window is not None and not self.window._done

    def labels(self) -> list[str]:
        """The text of every line being explored, once each, in reading order (empty when explore
        is not open): what a spoken "click ..." can name, for the offline grammar."""
        if not self.active or self.window is None:
            return []
        texts = (" ".join(item.text.split()) for item in self.window.map.lines())
        return list(dict.fromkeys(text for text in texts if text))

    def act_on_phrase(self, text: str, *, confirm: bool = False) -> None:
        """A spoken request while exploring: "click Save", "right-click Save", "find Save"
        (see ExploreWindow.act_on_phrase). Says how to open explore when it is not open."""
        if not self.active or self.window is None:
            self._report_error(OPEN_EXPLORE_FIRST)
            return
        self.window.act_on_phrase(text or "", confirm=confirm)

    def start_region(self) -> None:
        """Choose a region with the region selector, then explore it. The selector starts on the
        explored area when explore is open (Ctrl+R in the explore window), else on the active window,
        so Enter alone explores that and the arrows make it a part of it."""
        if self.selector is not None:  # already choosing: the selector keeps the keyboard
            self.selector.raise_()
            self.selector.activateWindow()
            return
        area = self.window.map.area if self.window is not None else None
        self.close()
        if area is None:
            self._choose_region(None)
        else:
            # Let the closed explore window leave the screen before the selector's picture of it.
            QTimer.singleShot(OVERLAY_DELAY_MS, lambda: self._choose_region(area))

    def _choose_region(self, area) -> None:
        from app.ui.region_selector import active_window_area, selector_on

        selector = selector_on(area or active_window_area(), self._announce, font_pt=self.font_pt)
        selector.regionSelected.connect(self._region_chosen)
        selector.cancelled.connect(self._region_cancelled)
        self.selector = selector
        selector.start()

    def _region_chosen(self, x: int, y: int, w: int, h: int) -> None:
        self.selector = None
        self._request += 1  # a recognition that was running is no longer wanted
        request = self._request

        def explore() -> None:
            from app.capture import screen as capture

            if request != self._request:
                return
            try:
                image = capture.capture_region(x, y, w, h)
            except SightlineError as exc:
                self._report_error(exc.sentence)
                return
            self.explore_image(image, "region")

        # Let the selector's overlay leave the screen before the picture is taken.
        QTimer.singleShot(OVERLAY_DELAY_MS, explore)

    def _region_cancelled(self) -> None:
        self.selector = None
        self._announce("Cancelled.")

    def explore_image(self, image, what: str = "screen") -> None:
        """Recognise `image` (an ImageInput with its screen bounds) on a thread, then explore it."""
        from app.jobs.watch import shared_ocr_backend

        self._request += 1
        request = self._request
        ocr = self._ocr or shared_ocr_backend()
        relay = self._relay
        self._image = image
        self._announce(f"Reading the {what}.")

        def work() -> None:  # recognition thread: results go back through queued signals
            try:
                lines = ocr.recognise(image.pixels, words=True)
                relay.done.emit(request, ScreenMap.from_ocr(lines, image.bounds, (image.width, image.height)))
            except SightlineError as exc:
                relay.failed.emit(request, exc.sentence)
            except Exception as exc:  # noqa: BLE001 - a sentence, never a traceback
                log.exception("explore recognition failed")
                relay.failed.emit(request, f"Reading the screen failed ({type(exc).__name__}).")

        threading.Thread(target=work, name="sightline-explore", daemon=True).start()

    def close(self) -> None:
        self._request += 1  # a recognition still running is no longer wanted
        if self.selector is not None:  # a region being chosen: its overlay goes too
            selector, self.selector = self.selector, None
            selector.cancelled.disconnect(self._region_cancelled)
            selector.cancel()
        if self.window is not None:
            window, self.window = self.window, None
            window._done = True
            window.close()

    def _on_done(self, request: int, screen_map: ScreenMap) -> None:
        if request != self._request:
            return
        window = ExploreWindow(screen_map, self._announce, font_pt=self.font_pt)
        window.clickRequested.connect(self._do_click)
        window.describeRequested.connect(self._do_describe)
        window.regionRequested.connect(self.start_region)
        window.closed.connect(lambda: self._forget(window))
        self.window = window
        window.open()
        self.opened.emit(window)

    def _forget(self, window: ExploreWindow) -> None:
        if self.window is window:
            self.window = None

    def _on_failed(self, request: int, sentence: str) -> None:
        if request == self._request:
            self._report_error(sentence)

    def _do_click(self, x: int, y: int, button: str, text: str) -> None:
        try:
            self._click(x, y, button)
        except SightlineError as exc:
            self._report_error(exc.sentence)
            return
        except Exception as exc:  # noqa: BLE001
            log.exception("click failed")
            self._report_error(f"The click did not work ({type(exc).__name__}).")
            return
        self.clicked.emit(x, y, button, text)

    def _do_describe(self, item: Item) -> None:
        if self._describe is None or self._image is None:
            self._announce("Describing is not available here.")
            return
        self._describe(crop_around(self._image, item))


def crop_around(image, item: Item):
    """The part of `image` (an ImageInput with screen bounds) around `item`: the item with about
    three of its heights on every side, at least 240 by 120 pixels, kept on the image."""
    from app.core.types import Bounds, ImageInput

    b = image.bounds or Bounds(0, 0, image.width, image.height)
    sx, sy = image.width / max(1, b.width), image.height / max(1, b.height)
    x0, y0 = (item.x0 - b.x) * sx, (item.y0 - b.y) * sy
    x1, y1 = (item.x1 - b.x) * sx, (item.y1 - b.y) * sy
    margin = 3 * max(8.0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_w = max(120.0, (x1 - x0) / 2 + margin)
    half_h = max(60.0, (y1 - y0) / 2 + margin)
    left, right = max(0, round(cx - half_w)), min(image.width, round(cx + half_w))
    top, bottom = max(0, round(cy - half_h)), min(image.height, round(cy + half_h))
    pixels = image.pixels[top:bottom, left:right]
    bounds = Bounds(
        round(b.x + left / sx), round(b.y + top / sy), round((right - left) / sx), round((bottom - top) / sy)
    )
    return ImageInput(pixels, "region", bounds, captured_at=image.captured_at)
