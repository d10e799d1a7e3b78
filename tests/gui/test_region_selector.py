"""The region selector by keyboard and by mouse, what it says, and what it looks like."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter
from PySide6.QtTest import QTest

from app.ui.region_selector import HELP_TEXT, MIN_SIZE, RegionSelector
from tests.support import a11y

REPO = Path(__file__).resolve().parents[2]
SCREEN = QRect(0, 0, 1920, 1080)

SHIFT = Qt.KeyboardModifier.ShiftModifier
CTRL = Qt.KeyboardModifier.ControlModifier


@pytest.fixture
def make(qtbot):
    def make(geometry=SCREEN, initial=None, dpr=1.0, **kw):
        initial = QRect(100, 200, 640, 480) if initial is None else initial
        said: list[str] = []
        sel = RegionSelector(geometry, said.append, device_pixel_ratio=dpr, initial=initial, **kw)
        qtbot.addWidget(sel)
        sel.start()
        qtbot.waitExposed(sel)
        sel.said = said
        return sel

    return make


def keys(widget, *presses):
    for key, mods in presses:
        QTest.keyClick(widget, key, mods)


# ----- keyboard --------------------------------------------------------------------------------


def test_arrows_move_shift_resizes_ctrl_is_fine_and_enter_gives_exact_bounds(make, qtbot):
    sel = make()
    none = Qt.KeyboardModifier.NoModifier
    keys(
        sel,
        (Qt.Key.Key_Right, none),
        (Qt.Key.Key_Right, none),  # x 100 -> 120
        (Qt.Key.Key_Down, none),  # y 200 -> 210
        (Qt.Key.Key_Left, CTRL),  # x 120 -> 119
        (Qt.Key.Key_Right, SHIFT),  # w 640 -> 650
        (Qt.Key.Key_Up, SHIFT),  # h 480 -> 470
        (Qt.Key.Key_Down, SHIFT | CTRL),  # h 470 -> 471
        (Qt.Key.Key_Left, SHIFT | CTRL),  # w 650 -> 649
        (Qt.Key.Key_Up, CTRL),  # y 210 -> 209
    )
    assert sel.region() == QRect(119, 209, 649, 471)
    with qtbot.waitSignal(sel.regionSelected, timeout=2000) as blocker:
        QTest.keyClick(sel, Qt.Key.Key_Return)
    assert blocker.args == [119, 209, 649, 471]
    assert not sel.isVisible()  # hidden before the signal, so a capture does not see it


def test_keypad_enter_accepts_too(make, qtbot):
    sel = make()
    with qtbot.waitSignal(sel.regionSelected, timeout=2000) as blocker:
        QTest.keyClick(sel, Qt.Key.Key_Enter, Qt.KeyboardModifier.KeypadModifier)
    assert blocker.args == [100, 200, 640, 480]


def test_escape_cancels(make, qtbot):
    sel = make()
    QTest.keyClick(sel, Qt.Key.Key_Right)
    with qtbot.assertNotEmitted(sel.regionSelected), qtbot.waitSignal(sel.cancelled, timeout=2000):
        QTest.keyClick(sel, Qt.Key.Key_Escape)
    assert not sel.isVisible()
    # Nothing pending is said after the overlay is gone.
    count = len(sel.said)
    qtbot.wait(500)
    assert len(sel.said) == count


def test_the_rectangle_stays_on_the_screen(make):
    sel = make(initial=QRect(1800, 1000, 100, 60))
    for _ in range(5):
        QTest.keyClick(sel, Qt.Key.Key_Right)
        QTest.keyClick(sel, Qt.Key.Key_Down)
    assert sel.region() == QRect(1820, 1020, 100, 60)
    for _ in range(5):
        QTest.keyClick(sel, Qt.Key.Key_Right, SHIFT)
    assert sel.region().right() + 1 == 1920  # grows only to the edge
    for _ in range(100):
        QTest.keyClick(sel, Qt.Key.Key_Left, SHIFT)
    assert sel.region().width() == MIN_SIZE  # shrinks only to the smallest size
    for _ in range(300):
        QTest.keyClick(sel, Qt.Key.Key_Left)
        QTest.keyClick(sel, Qt.Key.Key_Up)
    assert sel.region().topLeft() == QPoint(0, 0)
    # An initial rectangle larger than the screen is cut to it.
    big = make(initial=QRect(-50, -50, 5000, 5000))
    assert big.region() == SCREEN


def test_bounds_are_physical_pixels_on_a_scaled_second_screen(make, qtbot):
    # A 2560x1440 panel at 200 % to the right of a 1920 screen: Qt reports 1280x720 logical.
    sel = make(geometry=QRect(1920, 0, 1280, 720), initial=QRect(10, 20, 100, 50), dpr=2.0)
    QTest.keyClick(sel, Qt.Key.Key_Right, CTRL)
    with qtbot.waitSignal(sel.regionSelected, timeout=2000) as blocker:
        QTest.keyClick(sel, Qt.Key.Key_Return)
    assert blocker.args == [1920 + 22, 40, 200, 100]


# ----- mouse -----------------------------------------------------------------------------------


def test_dragging_draws_the_region_and_double_click_accepts(make, qtbot):
    sel = make()
    left = Qt.MouseButton.LeftButton
    QTest.mousePress(sel, left, Qt.KeyboardModifier.NoModifier, QPoint(300, 250))
    QTest.mouseMove(sel, QPoint(350, 300))
    QTest.mouseMove(sel, QPoint(500, 400))
    assert sel.region() == QRect(300, 250, 200, 150)  # follows the pointer while dragging
    QTest.mouseRelease(sel, left, Qt.KeyboardModifier.NoModifier, QPoint(700, 550))
    assert sel.region() == QRect(300, 250, 400, 300)
    # Dragging up and left works too.
    QTest.mousePress(sel, left, Qt.KeyboardModifier.NoModifier, QPoint(900, 800))
    QTest.mouseMove(sel, QPoint(800, 700))
    QTest.mouseRelease(sel, left, Qt.KeyboardModifier.NoModifier, QPoint(600, 500))
    assert sel.region() == QRect(600, 500, 300, 300)
    # A plain click does not throw the rectangle away.
    QTest.mouseClick(sel, left, Qt.KeyboardModifier.NoModifier, QPoint(50, 50))
    assert sel.region() == QRect(600, 500, 300, 300)
    with qtbot.waitSignal(sel.regionSelected, timeout=2000) as blocker:
        QTest.mouseDClick(sel, left, Qt.KeyboardModifier.NoModifier, QPoint(700, 600))
    assert blocker.args == [600, 500, 300, 300]


def test_right_click_cancels(make, qtbot):
    sel = make()
    with qtbot.waitSignal(sel.cancelled, timeout=2000):
        QTest.mouseClick(sel, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, QPoint(5, 5))


# ----- what it says ----------------------------------------------------------------------------


def test_it_says_how_to_use_it_then_the_region_once_the_keys_pause(make, qtbot):
    sel = make()
    # Plain words, not pixel numbers: 640 by 480 at 100, 200 on a 1920 by 1080 screen.
    box = "A box a third the width of the screen and two fifths its height, on the left"
    assert sel.said == [f"{HELP_TEXT} {box}."]
    for _ in range(5):
        QTest.keyClick(sel, Qt.Key.Key_Right)
    # Five quick presses: nothing yet (the event loop has not run), then exactly one word: the
    # box moved 50 pixels, not enough to change the words.
    assert len(sel.said) == 1
    qtbot.waitUntil(lambda: len(sel.said) == 2, timeout=3000)
    assert sel.said[1] == "Right."
    qtbot.wait(700)
    assert len(sel.said) == 2  # no chatter afterwards

    QTest.keyClick(sel, Qt.Key.Key_Down, SHIFT)  # 480 -> 490 high: now nearer half the screen
    qtbot.waitUntil(lambda: len(sel.said) == 3, timeout=3000)
    assert sel.said[2] == "A box a third the width of the screen and half its height, on the left"
    assert not any(ch.isdigit() for said in sel.said for ch in said)


def test_it_says_when_the_edge_or_the_smallest_size_stops_it(make, qtbot):
    sel = make(initial=QRect(0, 0, 20, 20))
    QTest.keyClick(sel, Qt.Key.Key_Left)
    qtbot.waitUntil(lambda: len(sel.said) == 2, timeout=3000)
    small = "A box less than a tenth of the width of the screen and less than a tenth of its height"
    assert sel.said[1] == f"{small}, in the top left, at the edge of the screen"
    QTest.keyClick(sel, Qt.Key.Key_Left, SHIFT)  # 20 -> 10
    QTest.keyClick(sel, Qt.Key.Key_Left, SHIFT)  # stays 10
    qtbot.waitUntil(lambda: len(sel.said) == 3, timeout=3000)
    assert sel.said[2] == f"{small}, in the top left, at the smallest size"
    assert sel.region().width() == MIN_SIZE


def test_it_says_the_size_after_a_drag(make, qtbot):
    sel = make()
    QTest.mousePress(sel, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(10, 10))
    QTest.mouseMove(sel, QPoint(200, 100))
    QTest.mouseRelease(sel, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(410, 310))
    qtbot.waitUntil(lambda: len(sel.said) == 2, timeout=3000)
    assert sel.said[1] == "A box a fifth the width of the screen and a quarter its height, in the top left"
    assert sel.describe_pixels() == "400 × 300 at 10, 10"


def test_physical_sizes_are_said_on_a_scaled_screen(make, qtbot):
    sel = make(geometry=QRect(0, 0, 960, 540), initial=QRect(50, 60, 320, 240), dpr=2.0)
    assert sel.describe_pixels() == "640 × 480 at 100, 120"  # drawn in physical pixels
    assert sel.region_physical() == (100, 120, 640, 480)
    assert "a third the width of the screen" in sel.said[0]  # said in words, whatever the scale


# ----- accessibility and looks -----------------------------------------------------------------


def test_it_has_an_accessible_name_and_description_and_takes_the_focus(make, qtbot):
    sel = make()
    assert a11y.unnamed_controls(sel) == []
    assert a11y.undescribed_controls(sel) == []
    node = a11y.walk(sel)[0]
    assert node.name == "Region selector"
    assert "Enter accepts" in node.description
    qtbot.waitUntil(sel.hasFocus, timeout=3000)


def _fake_desktop(size) -> QImage:
    image = QImage(size, QImage.Format.Format_RGB32)
    image.fill(QColor("#3a6ea5"))
    p = QPainter(image)
    p.fillRect(QRect(120, 120, 900, 620), QColor("#f4f4f4"))
    p.fillRect(QRect(120, 120, 900, 40), QColor("#2b579a"))
    p.fillRect(QRect(1100, 300, 700, 500), QColor("#ffffff"))
    p.setPen(QColor("#202020"))
    font = QFont(p.font())
    font.setPointSize(16)
    p.setFont(font)
    for i, line in enumerate(
        ["Dear Sir or Madam,", "Thank you for your letter of 3 May.", "Yours faithfully"]
    ):
        p.drawText(160, 220 + 40 * i, line)
    p.drawText(1140, 360, "Total: 18.40 EUR")
    p.end()
    return image


def test_screenshot(make, screenshot_dir):
    sel = make(initial=QRect(140, 180, 640, 200), background=_fake_desktop(SCREEN.size()))
    image = sel.grab().toImage()
    assert image.save(str(screenshot_dir / "region_selector.png"))
    # Inside the region the screen shows as it is; outside it is dimmed; the frame is yellow.
    inside = image.pixelColor(400, 300)
    outside = image.pixelColor(60, 600)
    assert inside == QColor("#f4f4f4")
    assert outside.lightness() < QColor("#3a6ea5").lightness()
    assert image.pixelColor(140 - 4, 300) == QColor("#ffff00")


@pytest.mark.display
def test_screenshot_on_the_real_display(render_on_display):
    screenshot_dir = render_on_display("region")
    shot = QImage(str(screenshot_dir / "region_selector_xvfb.png"))
    assert not shot.isNull()
    # The overlay really covers the screen: the yellow frame is on the display.
    assert shot.pixelColor(300 - 4, 400) == QColor("#ffff00")
    # Without a compositor the overlay shows the screen under it (its own picture of it), not
    # black: inside the box the answer window's light background is there as it is, and outside
    # the box the same window shows dimmed, still brighter than black.
    inside = shot.pixelColor(700, 500)
    assert inside.lightness() > 200, inside.name()
    outside = shot.pixelColor(250, 700)
    assert 20 < outside.lightness() < inside.lightness(), outside.name()
