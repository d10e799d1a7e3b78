"""Explore and act, from the user's side: the whole app, a window of another process, xdotool.

A window of buttons and a field runs in its own process and logs every click it receives. The
real tray app (tests/integration/app_harness.py) is driven with the global keys: the prefix, then
E explores the active window; arrows move through what was recognised, typing finds "Cancel",
Enter clicks it. The window must log a click on Cancel, inside the button; Shift+Enter on "Save"
must log a right-click there. What the user heard comes from the speech spy.
"""

from __future__ import annotations

import os
import time

import pytest

from app.settings.schema import Settings
from app.settings.store import save_settings
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
