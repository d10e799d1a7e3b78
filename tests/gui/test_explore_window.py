"""The explore window's keys: what each says, find before acting, Enter asks for the click."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.core.types import Bounds
from app.inference.ocr import TextLine
from app.inference.screen_map import ScreenMap
from app.ui.explore import KEYS_HELP, WINDOW_TITLE, ExploreWindow
from tests.support import a11y

CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier
NONE = Qt.KeyboardModifier.NoModifier


def _map() -> ScreenMap:
    lines = [
        TextLine(20, 20, 300, 50, "File Edit View"),
        TextLine(20, 200, 500, 230, "Your changes are not saved"),
        TextLine(1500, 1000, 1600, 1030, "Save"),
        TextLine(1700, 1000, 1820, 1030, "Cancel"),
    ]
    return ScreenMap.from_ocr(lines, Bounds(0, 0, 1920, 1080), (1920, 1080))


@pytest.fixture
def window(qtbot):
    said: list[str] = []
    win = ExploreWindow(_map(), said.append)
    win.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)  # qtbot closes it at the end
    qtbot.addWidget(win)
    win.open()
    qtbot.waitExposed(win)
    win.said = said
    return win


def press(win, key, mods=NONE):
    QTest.keyClick(win.focusWidget() or win, key, mods)
    return win.said[-1]


def test_it_opens_named_for_screen_readers_and_says_the_first_line(window):
    assert window.windowTitle() == WINDOW_TITLE and window.accessibleName()
    assert window.accessibleDescription() == KEYS_HELP
    assert a11y.unnamed_controls(window) == []
    assert window.said == ["Exploring: 4 lines. File Edit View, top left"]
    assert window.item_label.text() == "File Edit View"


def test_arrows_page_keys_home_and_end(window):
    assert press(window, Qt.Key.Key_Right) == "File, top left"
    assert press(window, Qt.Key.Key_Right) == "Edit, top left"
    assert press(window, Qt.Key.Key_Down) == "Your changes are not saved, top left"
    assert press(window, Qt.Key.Key_PageDown) == "Save, bottom right"
    assert press(window, Qt.Key.Key_Down, CTRL) == "Cancel, bottom right"
    assert press(window, Qt.Key.Key_Down) == "Bottom."  # the end: says so, stays
    assert press(window, Qt.Key.Key_Home) == "File Edit View, top left"
    assert press(window, Qt.Key.Key_Up) == "Top."
    assert press(window, Qt.Key.Key_End) == "Cancel, bottom right"
    assert press(window, Qt.Key.Key_Space) == "Cancel, bottom right"  # again
    assert press(window, Qt.Key.Key_F1) == KEYS_HELP


def test_typing_finds_and_says_it_and_enter_then_clicks_its_centre(window, qtbot):
    clicks = []
    window.clickRequested.connect(lambda x, y, button, text: clicks.append((x, y, button, text)))
    QTest.keyClick(window, "c")  # the first letter typed opens Find with it
    QTest.keyClicks(window.find_edit, "ancle")  # a typo still finds it
    assert window.find_edit.isVisible() and window.find_edit.text() == "cancle"
    QTest.keyClick(window.find_edit, Qt.Key.Key_Return)
    assert window.said[-1] == "Cancel, bottom right. Enter clicks it."
    assert not window.find_edit.isVisible() and clicks == []  # found and said, nothing clicked
    QTest.keyClick(window, Qt.Key.Key_Return, SHIFT)
    assert window.said[-1] == "Right-clicking Cancel."
    qtbot.waitUntil(lambda: bool(clicks), timeout=2000)
    assert clicks == [(1760, 1015, "right", "Cancel")]


def test_find_says_when_nothing_matches_and_escape_closes_find_then_leaves(window):
    QTest.keyClick(window, Qt.Key.Key_F, CTRL)
    assert window.said[-1] == "Find: type text, then Enter."
    QTest.keyClicks(window.find_edit, "zebra")
    QTest.keyClick(window.find_edit, Qt.Key.Key_Return)
    assert window.said[-1] == "Nothing like zebra here."
    QTest.keyClicks(window, "x")
    QTest.keyClick(window.find_edit, Qt.Key.Key_Escape)
    assert window.said[-1] == "Find closed." and window.isVisible()
    closed = []
    window.closed.connect(lambda: closed.append(True))
    QTest.keyClick(window, Qt.Key.Key_Escape)
    assert window.said[-1] == "Left explore mode." and closed == [True]


def test_ctrl_d_asks_to_describe_the_item_and_the_crop_holds_it_with_its_surroundings(window):
    import numpy as np

    from app.core.types import ImageInput
    from app.ui.explore import crop_around

    asked = []
    window.describeRequested.connect(asked.append)
    QTest.keyClick(window, Qt.Key.Key_End)
    QTest.keyClick(window, Qt.Key.Key_D, CTRL)
    (item,) = asked
    assert item.text == "Cancel"
    # A 1920 x 1080 screen captured at half size, placed at (100, 0) on the desktop.
    image = ImageInput(np.zeros((540, 960, 3), np.uint8), "window", Bounds(100, 0, 1920, 1080))
    shifted = type(item)(item.kind, item.text, item.x0 + 100, item.y0, item.x1 + 100, item.y1)
    crop = crop_around(image, shifted)
    b = crop.bounds
    assert b.x <= shifted.x0 and b.y <= shifted.y0
    assert b.x + b.width >= shifted.x1 and b.y + b.height >= shifted.y1
    assert crop.width >= 240 / 2 and crop.height >= 120 / 2 and crop.width < 960
    assert b.y + b.height <= 1080  # kept on the picture: Cancel is at the bottom edge


# -- spoken find ("click Save") and exploring a region, through the controller -----------------


class _Ocr:
    """Stands in for the on-device engine: the same lines (in image pixels) for any picture."""

    def __init__(self, lines=None):
        self.lines = lines

    def recognise(self, pixels, words=True):
        return list(self.lines or _map_lines())


def _map_lines():
    return [
        TextLine(20, 20, 300, 50, "File Edit View"),
        TextLine(20, 200, 500, 230, "Your changes are not saved"),
        TextLine(1500, 1000, 1600, 1030, "Save"),
        TextLine(1700, 1000, 1820, 1030, "Cancel"),
    ]


SCREEN = Bounds(0, 0, 1920, 1080)


def _screen_image(bounds=SCREEN):
    import numpy as np

    from app.core.types import ImageInput

    return ImageInput(np.zeros((bounds.height, bounds.width, 3), np.uint8), "window", bounds)


@pytest.fixture
def explore(qtbot):
    """An ExploreController with a fake click; `events` holds what was said and clicked, in order."""
    from app.ui.explore import ExploreController

    events: list[tuple] = []
    ocr = _Ocr()
    controller = ExploreController(
        lambda text: events.append(("say", text)),
        lambda text: events.append(("error", text)),
        ocr=ocr,
        click=lambda x, y, button: events.append(("click", x, y, button)),
    )
    controller.events, controller.ocr = events, ocr

    def open_on(image=None):
        controller.explore_image(image or _screen_image(), "window")
        qtbot.waitUntil(lambda: controller.active, timeout=5000)
        controller.window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        qtbot.addWidget(controller.window)
        events.clear()
        return controller.window

    controller.open_on = open_on
    yield controller
    controller.close()


def clicks(events):
    return [e for e in events if e[0] == "click"]


def test_click_save_moves_there_says_it_then_clicks_its_centre(explore, qtbot):
    window = explore.open_on()
    explore.act_on_phrase("Click the Save button.")
    # Said at once, before anything is clicked; the window is gone before the click.
    assert explore.events == [("say", "Save, bottom right. Clicking Save.")]
    assert not window.isVisible() and not explore.active
    qtbot.waitUntil(lambda: bool(clicks(explore.events)), timeout=2000)
    assert explore.events == [("say", "Save, bottom right. Clicking Save."), ("click", 1550, 1015, "left")]
    assert explore.window is None  # explore mode ends: the screen has changed


def test_right_click_right_clicks(explore, qtbot):
    explore.open_on()
    explore.act_on_phrase("right-click cancel please")
    qtbot.waitUntil(lambda: bool(clicks(explore.events)), timeout=2000)
    assert explore.events == [
        ("say", "Cancel, bottom right. Right-clicking Cancel."),
        ("click", 1760, 1015, "right"),
    ]


def test_find_goes_there_and_says_it_without_clicking_then_enter_clicks(explore, qtbot):
    window = explore.open_on()
    explore.act_on_phrase("Where is the cancel button?")
    assert explore.events == [("say", "Cancel, bottom right. Enter clicks it.")]
    assert window.item_label.text() == "Cancel"
    qtbot.wait(3 * 200)  # longer than the click delay: still nothing clicked
    assert clicks(explore.events) == [] and explore.active and window.isVisible()
    QTest.keyClick(window, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bool(clicks(explore.events)), timeout=2000)
    assert clicks(explore.events) == [("click", 1760, 1015, "left")]


def test_a_request_to_confirm_goes_there_and_says_which_keys_click(explore, qtbot):
    """Speech heard by the offline grammar: the item is gone to and said, nothing is clicked until
    the user presses the key that the request named."""
    window = explore.open_on()
    explore.act_on_phrase("right click cancel", confirm=True)
    assert explore.events == [("say", "Cancel, bottom right. Shift and Enter right-clicks it.")]
    qtbot.wait(3 * 200)
    assert clicks(explore.events) == [] and explore.active
    QTest.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: bool(clicks(explore.events)), timeout=2000)
    assert clicks(explore.events) == [("click", 1760, 1015, "right")]


def test_nothing_like_it_says_so_and_clicks_nothing(explore, qtbot):
    window = explore.open_on()
    QTest.keyClick(window, Qt.Key.Key_End)
    explore.events.clear()
    explore.act_on_phrase("Click Zebra.")
    assert explore.events == [("say", "Nothing like Zebra here.")]
    explore.act_on_phrase("good morning")
    assert explore.events[-1][1].startswith("I heard: good morning. Say click, right click or find")
    qtbot.wait(3 * 200)
    assert clicks(explore.events) == [] and explore.active
    assert window.item_label.text() == "Cancel"  # the cursor stayed where it was


def test_a_phrase_while_explore_is_not_open_says_to_open_it(explore, qtbot):
    from app.ui.explore import OPEN_EXPLORE_FIRST

    assert not explore.active and explore.labels() == []
    explore.act_on_phrase("click Save")
    assert explore.events == [("error", OPEN_EXPLORE_FIRST)]
    assert "Open it with the explore key first" in OPEN_EXPLORE_FIRST


def test_labels_are_the_lines_being_explored(explore):
    explore.open_on()
    assert explore.labels() == ["File Edit View", "Your changes are not saved", "Save", "Cancel"]


@pytest.fixture
def fake_capture(monkeypatch):
    """The active window at (100, 80), 400 x 300; capture_region remembers what it was asked for."""
    from app.capture import screen

    asked: list[tuple[int, int, int, int]] = []
    monkeypatch.setattr(screen, "capture_active_window", lambda: _screen_image(Bounds(100, 80, 400, 300)))

    def region(x, y, w, h):
        asked.append((x, y, w, h))
        return _screen_image(Bounds(x, y, w, h))

    monkeypatch.setattr(screen, "capture_region", region)
    return asked


def _selector(explore, qtbot):
    qtbot.waitUntil(lambda: explore.selector is not None and explore.selector.isVisible(), timeout=3000)
    selector = explore.selector
    qtbot.addWidget(selector)
    return selector


def test_explore_a_region_starts_on_the_active_window_and_explores_what_was_chosen(
    explore, qtbot, fake_capture
):
    from app.ui.region_selector import HELP_TEXT

    explore.ocr.lines = [TextLine(10, 10, 120, 40, "Save"), TextLine(300, 10, 390, 40, "Cancel")]
    explore.start_region()
    selector = _selector(explore, qtbot)
    assert selector.region_physical() == (100, 80, 400, 300)  # on the active window
    assert explore.events[-1][1].startswith(HELP_TEXT)
    for _ in range(15):  # narrower by 150 pixels: Shift and Left shrinks
        QTest.keyClick(selector, Qt.Key.Key_Left, SHIFT)
    QTest.keyClick(selector, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: explore.active, timeout=5000)
    assert fake_capture == [(100, 80, 250, 300)]
    assert ("say", "Reading the region.") in explore.events
    assert explore.window.map.area == Bounds(100, 80, 250, 300)
    assert explore.window.map.current.text == "Save"
    assert explore.selector is None


def test_ctrl_r_in_explore_chooses_a_part_of_the_explored_area_and_escape_cancels(
    explore, qtbot, fake_capture
):
    window = explore.open_on(_screen_image(Bounds(50, 40, 600, 400)))
    QTest.keyClick(window, Qt.Key.Key_R, CTRL)
    assert not explore.active  # the explore window closes first
    selector = _selector(explore, qtbot)
    assert selector.region_physical() == (50, 40, 600, 400)  # the explored area
    QTest.keyClick(selector, Qt.Key.Key_Escape)
    assert explore.events[-1] == ("say", "Cancelled.")
    qtbot.wait(300)
    assert fake_capture == [] and not explore.active and explore.selector is None
    # Chosen again, accepted as it is: that area is explored afresh.
    explore.start_region()
    selector = _selector(explore, qtbot)
    assert selector.region_physical() == (100, 80, 400, 300)  # no explore open: the active window
    QTest.keyClick(selector, Qt.Key.Key_Right)  # moved 10 pixels right
    QTest.keyClick(selector, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: explore.active, timeout=5000)
    assert fake_capture == [(110, 80, 400, 300)]


def test_explore_started_again_during_the_click_delay_drops_the_click(explore, qtbot):
    explore.open_on()
    explore.act_on_phrase("click Save")
    explore.close()  # the explore key again, before the click: the window is gone, so is the click
    qtbot.wait(3 * 200)
    assert clicks(explore.events) == [] and explore.window is None
