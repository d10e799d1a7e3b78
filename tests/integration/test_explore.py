"""Explore and act, from the user's side: the whole app, a window of another process, xdotool.

A window of buttons and a field runs in its own process and logs every click it receives. The
real tray app (tests/integration/app_harness.py) is driven with the global keys: the prefix, then
E explores the active window; arrows move through what was recognised, typing finds "Cancel",
Enter clicks it. The window must log a click on Cancel, inside the button; Shift+Enter on "Save"
must log a right-click there. What the user heard comes from the speech spy.

Exploring a region: the region selector opens on the active window and is narrowed with its keys
(Shift+arrows resize, arrows move) to the right-hand buttons of the window; only they are explored,
and what is clicked there lands on the right button. Once through the whole app (the prefix, then
G), once through ExploreController in this process, where Ctrl+R narrows again and a spoken
"click the Print button" clicks Print.
"""

from __future__ import annotations

import os
import time

import pytest

from app.core.types import Bounds
from app.settings.schema import Settings
from app.settings.store import save_settings
from app.ui.explore import OPEN_EXPLORE_FIRST
from tests.fixtures.windows_proc import start_click_window
from tests.integration.test_app_e2e import PREFIX, AppProcess, screenshot, xdo

pytestmark = [pytest.mark.display, pytest.mark.slow]


@pytest.fixture
def app_env(desktop, pulse, sightline_home):
    save_settings(Settings(speech_driver="silent", earcons=True))
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "xcb"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("SIGHTLINE_NO_HOTKEYS", None)
    return env


def heard(app: AppProcess, pred, timeout: float = 60.0) -> str:
    """The next utterance the speech spy starts that satisfies `pred`."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("the app did not say what was expected")
        text = app.wait_for("speaking", timeout=left)["speaking"]
        if pred(text):
            return text


def inside(rect: list[int], x: int, y: int) -> bool:
    rx, ry, rw, rh = rect
    return rx <= x < rx + rw and ry <= y < ry + rh


def test_explore_find_cancel_and_click_it_from_the_keyboard(app_env, tmp_path):
    window = start_click_window(300, 300)
    controls = window.info["controls"]
    app = AppProcess(tmp_path / "report.json", app_env)
    try:
        app.wait_for("ready", timeout=120)
        time.sleep(1.5)  # the global key listener connects to the display
        xdo("windowfocus", "--sync", str(window.info["wid"]))  # the order form is the active window

        xdo("key", PREFIX)
        time.sleep(0.3)
        xdo("key", "e")
        intro = heard(app, lambda t: t.startswith("Exploring:"))
        # The window's first line, said with where it is on the window.
        assert "Customer name" in intro and "top left" in intro, intro
        screenshot("explore_open.png")

        # Down goes line by line through the buttons, in reading order.
        xdo("key", "Down")
        said = heard(app, lambda t: "," in t)
        assert said.startswith(("Save", "Customer name")), said

        # Typing finds Cancel (with a typo) and says it, with where it is, before acting.
        xdo("type", "--delay", "80", "Cancle")
        xdo("key", "Return")
        found = heard(app, lambda t: t.startswith("Cancel"))
        assert found.startswith("Cancel, ") and "Enter clicks it" in found, found
        assert not window.lines_with("clicked")  # nothing clicked yet

        xdo("key", "Return")
        heard(app, lambda t: t == "Clicking Cancel.")
        click = window.wait_for("clicked", timeout=15)
        assert click["clicked"] == "Cancel" and click["button"] == "left", click
        assert inside(controls["Cancel"], click["x"], click["y"]), (click, controls["Cancel"])

        # Again: find Save and right-click it with Shift+Enter.
        xdo("windowfocus", "--sync", str(window.info["wid"]))
        xdo("key", PREFIX)
        time.sleep(0.3)
        xdo("key", "e")
        heard(app, lambda t: t.startswith("Exploring:"))
        xdo("type", "--delay", "80", "save")
        xdo("key", "Return")
        heard(app, lambda t: t.startswith("Save, "))
        xdo("key", "shift+Return")
        right = window.wait_for("clicked", timeout=15)
        assert right["clicked"] == "Save" and right["button"] == "right", right
        assert inside(controls["Save"], right["x"], right["y"])

        # The key again while exploring widens to the whole screen; Escape leaves, clicking nothing.
        xdo("windowfocus", "--sync", str(window.info["wid"]))
        xdo("key", PREFIX)
        time.sleep(0.3)
        xdo("key", "e")
        heard(app, lambda t: t == "Reading the window.")
        heard(app, lambda t: t.startswith("Exploring:"))
        xdo("key", PREFIX)
        time.sleep(0.3)
        xdo("key", "e")
        heard(app, lambda t: t == "Reading the screen.")
        heard(app, lambda t: t.startswith("Exploring:"))
        # Ctrl+D describes the item where it is, from the picture already taken.
        xdo("type", "--delay", "80", "print")
        xdo("key", "Return")
        heard(app, lambda t: t.startswith("Print, "))
        xdo("key", "ctrl+d")
        described = app.wait_for("finished", timeout=60)
        assert described["backend"] == "ocr" and described["error"] is None
        xdo("key", "Escape")
        heard(app, lambda t: t == "Left explore mode.")
        time.sleep(0.5)
        assert [c["clicked"] for c in window.lines_with("clicked")] == ["Cancel", "Save"]
    finally:
        assert app.stop() == 0
        window.stop()
    report = app.read_report()
    # Exploring never goes through the model worker; describing an item sends its surroundings.
    (request,) = report["requests"]
    assert request["task"] == "describe_brief"
    w, h = request["image"]
    assert 240 <= w < 600 and 120 <= h < 300, request
    item = next(a for a in report["answers"] if a["title"] == "Describe the item")
    assert "Print" in item["text"]


# -- exploring a region -------------------------------------------------------------------------


def region_around(controls: dict, names: tuple[str, ...], margin: int = 20) -> tuple[int, int, int, int]:
    """(x, y, w, h) around the named controls, `margin` pixels wider on every side."""
    rects = [controls[n] for n in names]
    x0 = min(r[0] for r in rects) - margin
    y0 = min(r[1] for r in rects) - margin
    x1 = max(r[0] + r[2] for r in rects) + margin
    y1 = max(r[1] + r[3] for r in rects) + margin
    return x0, y0, x1 - x0, y1 - y0


def selector_keys(start: tuple[int, int, int, int], target: tuple[int, int, int, int]) -> list[str]:
    """The region selector's keys (xdotool names) that turn `start` into `target`: first resize
    (Shift+arrows, from the right and bottom edges), then move (arrows); 10 pixels a press, 1 with Ctrl."""
    keys: list[str] = []

    def steps(delta: int, more: str, less: str, mods: str) -> None:
        key = more if delta > 0 else less
        n = abs(delta)
        keys.extend([f"{mods}{key}"] * (n // 10) + [f"ctrl+{mods}{key}"] * (n % 10))

    steps(target[2] - start[2], "Right", "Left", "shift+")
    steps(target[3] - start[3], "Down", "Up", "shift+")
    steps(target[0] - start[0], "Right", "Left", "")
    steps(target[1] - start[1], "Down", "Up", "")
    return keys


def test_explore_a_region_from_the_keyboard_clicks_cancel_and_leaves_out_the_rest(app_env, tmp_path):
    window = start_click_window(300, 300)
    info, controls = window.info, window.info["controls"]
    target = region_around(controls, ("Print", "Cancel"))
    app = AppProcess(tmp_path / "report.json", app_env)
    try:
        app.wait_for("ready", timeout=120)
        time.sleep(1.5)  # the global key listener connects to the display
        xdo("windowfocus", "--sync", str(info["wid"]))

        xdo("key", PREFIX)
        time.sleep(0.3)
        xdo("key", "g")
        heard(app, lambda t: t.startswith("Select a region."))  # the selector, on the window
        start = (info["x"], info["y"], info["width"], info["height"])
        xdo("key", "--delay", "15", *selector_keys(start, target))
        screenshot("explore_region_selector.png")
        xdo("key", "Return")
        heard(app, lambda t: t == "Reading the region.")
        intro = heard(app, lambda t: t.startswith("Exploring:"))
        assert intro.startswith(("Exploring: 1 line.", "Exploring: 2 lines.")), intro
        assert "Print" in intro and "Customer name" not in intro and "Save" not in intro, intro

        # What is outside the region is not there to find.
        for outside in ("save", "open", "customer"):
            xdo("type", "--delay", "80", outside)
            xdo("key", "Return")
            heard(app, lambda t, o=outside: t == f"Nothing like {o} here.")

        xdo("type", "--delay", "80", "cancel")
        xdo("key", "Return")
        found = heard(app, lambda t: t.startswith("Cancel"))
        assert found.startswith("Cancel, ") and "Enter clicks it" in found, found
        xdo("key", "Return")
        heard(app, lambda t: t == "Clicking Cancel.")
        click = window.wait_for("clicked", timeout=15)
        assert click["clicked"] == "Cancel" and click["button"] == "left", click
        assert inside(controls["Cancel"], click["x"], click["y"]), (click, controls["Cancel"])
        time.sleep(0.5)
        assert [c["clicked"] for c in window.lines_with("clicked")] == ["Cancel"]
    finally:
        assert app.stop() == 0
        window.stop()
    assert app.read_report()["requests"] == []  # exploring never goes through the model worker


def test_explore_region_in_process_ctrl_r_narrows_and_a_spoken_click_lands(desktop, qtbot, no_thread_leak):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from app.ui.explore import ExploreController

    # Near the top left: in the whole suite this process's Qt runs offscreen (the GUI tests came
    # first), where the selector's screen is 800 x 600; the capture and the click are the real X ones.
    window = start_click_window(20, 20)
    info, controls = window.info, window.info["controls"]
    said: list[str] = []
    errors: list[str] = []
    explore = ExploreController(said.append, errors.append)
    qt_keys = {name: getattr(Qt.Key, f"Key_{name}") for name in ("Left", "Right", "Up", "Down")}

    def choose(target):
        qtbot.waitUntil(lambda: explore.selector is not None and explore.selector.isVisible(), timeout=10_000)
        selector = explore.selector
        # A few rounds: a step that would leave the screen is held at its edge (the selector
        # starts on whichever window is active), so the next round goes on from where it is.
        for _round in range(4):
            keys = selector_keys(selector.region_physical(), target)
            if not keys:
                break
            for name in keys:
                *mods, key = name.split("+")
                flags = Qt.KeyboardModifier.NoModifier
                if "shift" in mods:
                    flags |= Qt.KeyboardModifier.ShiftModifier
                if "ctrl" in mods:
                    flags |= Qt.KeyboardModifier.ControlModifier
                QTest.keyClick(selector, qt_keys[key], flags)
        assert selector.region_physical() == target
        QTest.keyClick(selector, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: explore.active, timeout=60_000)
        return explore.window

    try:
        xdo("windowfocus", "--sync", str(info["wid"]))
        explore.start_region()
        # First the button row, then, with Ctrl+R from inside explore, only Print and Cancel.
        row = region_around(controls, ("Save", "Cancel"))
        explored = choose(row)
        assert explored.map.area == Bounds(*row)
        assert {"Save", "Cancel"} <= set(" ".join(explore.labels()).split()), explore.labels()
        assert "Customer name" not in " ".join(explore.labels())
        QTest.keyClick(explored, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
        assert not explore.active
        right = region_around(controls, ("Print", "Cancel"))
        explored = choose(right)
        labels = " ".join(explore.labels())
        assert "Print" in labels and "Cancel" in labels, labels
        assert "Save" not in labels and "Open" not in labels, labels

        explore.act_on_phrase("Click the Print button.")
        assert said[-1].startswith("Print, ") and said[-1].endswith(". Clicking Print."), said[-1]
        # The click comes from a timer of this process's event loop: wait while it runs.
        qtbot.waitUntil(lambda: bool(window.lines_with("clicked")), timeout=15_000)
        (click,) = window.lines_with("clicked")
        assert click["clicked"] == "Print" and click["button"] == "left", click
        assert inside(controls["Print"], click["x"], click["y"]), (click, controls["Print"])
        qtbot.waitUntil(lambda: explore.window is None, timeout=5000)
        explore.act_on_phrase("click Cancel")  # explore has ended with the click
        assert errors == [OPEN_EXPLORE_FIRST]
    finally:
        explore.close()
        window.stop()
