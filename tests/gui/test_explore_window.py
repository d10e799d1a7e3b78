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
