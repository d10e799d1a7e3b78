"""Watching a window, from the user's side: the whole app, a window of another process, xdotool.

A window in its own process changes its one line of text on a timer. The real tray app is driven
with the global keys: the prefix, then L opens the region selector on the active window, Enter
watches it. What the speech spy says must be exactly the new texts, in order, none repeated and
none lost; the text that was there before the watch began is not said. The same key ends it.
"""

from __future__ import annotations

import os
import time

import pytest

from app.capture.watch import normal
from app.settings.schema import Settings
from app.settings.store import save_settings
from app.ui.region_selector import HELP_TEXT
from tests.fixtures.windows_proc import start_changing_window
from tests.integration.test_app_e2e import PREFIX, AppProcess, xdo
from tests.integration.test_explore import heard

pytestmark = [pytest.mark.display, pytest.mark.slow]

TEXTS = [
    "Build started",
    "Compiling module alpha",
    "Progress 45%",
    "Progress 46%",
    "Linking the program",
    "Build finished with no errors",
]
PERIOD = 2.0


@pytest.fixture
def app_env(desktop, pulse, sightline_home):
    save_settings(Settings(speech_driver="silent", earcons=True))
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "xcb"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("SIGHTLINE_NO_HOTKEYS", None)
    return env


def test_watch_a_window_says_each_new_text_once_in_order(app_env, tmp_path):
    window = start_changing_window(300, 400, PERIOD, TEXTS)
    app = AppProcess(tmp_path / "report.json", app_env)
    try:
        app.wait_for("ready", timeout=120)
        time.sleep(1.5)  # the global key listener connects to the display
        xdo("windowfocus", "--sync", str(window.info["wid"]))

        xdo("key", PREFIX)
        time.sleep(0.3)
        xdo("key", "l")
        heard(app, lambda t: t.startswith(HELP_TEXT[:30]))  # the selector, on the window
        xdo("key", "Return")
        heard(app, lambda t: t.startswith("Watching the window."), timeout=60)

        window.send("go")
        window.wait_for("end", timeout=PERIOD * len(TEXTS) + 30)
        time.sleep(PERIOD)  # the last text is read and said

        xdo("key", PREFIX)
        time.sleep(0.3)
        xdo("key", "l")  # the same key ends the watch
        heard(app, lambda t: t == "Stopped watching.")

        # Watch again; Stop (the prefix, then X) ends it too. (With no window manager here, nothing
        # gives the window the focus back after the selector closes.)
        xdo("windowfocus", "--sync", str(window.info["wid"]))
        xdo("key", PREFIX)
        time.sleep(0.3)
        xdo("key", "l")
        heard(app, lambda t: t.startswith(HELP_TEXT[:30]))
        xdo("key", "Return")
        heard(app, lambda t: t.startswith("Watching the window."), timeout=60)
        xdo("key", PREFIX)
        time.sleep(0.3)
        xdo("key", "x")
        heard(app, lambda t: t == "Stopped watching.")
    finally:
        assert app.stop() == 0
        window.stop()
    spoken = app.read_report()["spoken_started"]
    start = next(i for i, s in enumerate(spoken) if s.startswith("Watching the window."))
    end = spoken.index("Stopped watching.")
    assert spoken.count("Stopped watching.") == 2
    said = spoken[start + 1 : end]
    assert [normal(s) for s in said] == [normal(t) for t in TEXTS], said
    assert not any("waiting for the build" in normal(s) for s in spoken)  # there before: not new


def test_a_second_watch_replaces_the_first_and_text_arrives_on_the_gui_thread(desktop, qtbot, no_thread_leak):
    import threading

    from app.jobs.watch import WatchController

    first = start_changing_window(100, 100, 1.0, ["First window one", "First window two"])
    second = start_changing_window(100, 500, 1.0, ["Second window one", "Second window two"])
    said: list[str] = []
    threads: set[int] = set()

    def say(text: str) -> None:
        said.append(text)
        threads.add(threading.get_ident())

    watch = WatchController(say, interval=0.3)
    try:
        i = first.info
        watch.start((i["x"], i["y"], i["width"], i["height"]), "the first window")
        qtbot.waitUntil(lambda: "Watching the first window" in " ".join(said), timeout=60_000)
        i = second.info
        watch.start((i["x"], i["y"], i["width"], i["height"]), "the second window")  # replaces it
        qtbot.waitUntil(lambda: "Watching the second window" in " ".join(said), timeout=60_000)
        first.send("go")
        second.send("go")
        first.wait_for("end", timeout=30)
        second.wait_for("end", timeout=30)
        qtbot.waitUntil(lambda: "Second window two" in said, timeout=15_000)
        assert watch.stop() is True
        assert said[-1] == "Stopped watching."
        assert watch.stop() is False  # nothing left to stop
    finally:
        watch.shutdown()
        first.stop()
        second.stop()
    assert not any("First window" in s for s in said), said
    assert said.count("Second window one") == 1 and said.count("Second window two") == 1
    assert threads == {threading.get_ident()}  # spoken from the GUI thread only


LOG = [
    "Compiling main.c",
    "Compiling util.c",
    "Compiling parser.c",
    "Linking sightline",
    "Running 12 tests",
    "Build succeeded",
]


def test_a_scrolling_log_says_each_new_line_once(desktop, qtbot, no_thread_leak):
    from app.jobs.watch import WatchController

    log = start_changing_window(100, 300, 1.5, LOG, log=True)
    said: list[str] = []
    watch = WatchController(said.append)
    try:
        i = log.info
        watch.start((i["x"], i["y"], i["width"], i["height"]), "the log")
        qtbot.waitUntil(lambda: any(s.startswith("Watching the log") for s in said), timeout=60_000)
        log.send("go")
        log.wait_for("end", timeout=30)
        qtbot.waitUntil(lambda: "Build succeeded" in said, timeout=15_000)
        qtbot.wait(1000)  # nothing more comes
    finally:
        watch.shutdown()
        log.stop()
    # Each line once, in order, although every line moved up as the next one came.
    assert [normal(s) for s in said[1:]] == [normal(t) for t in LOG], said


def test_sightline_s_own_windows_are_never_read(desktop, qtbot, no_thread_leak):
    from app.jobs.watch import WatchController

    window = start_changing_window(100, 300, 1.0, ["Secret one", "Secret two"])
    i = window.info
    rect = (i["x"], i["y"], i["width"], i["height"])
    said: list[str] = []
    # As if a window of Sightline's covered the watched window.
    watch = WatchController(said.append, own_windows=lambda: [rect])
    try:
        watch.start(rect, "the window")
        qtbot.waitUntil(lambda: bool(said), timeout=60_000)
        window.send("go")
        window.wait_for("end", timeout=30)
        qtbot.wait(2000)
    finally:
        watch.shutdown()
        window.stop()
    assert said == ["Watching the window. I will say new text as it appears."]
