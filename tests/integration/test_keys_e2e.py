"""The whole tray app, driven with xdotool, heard at the sink: every key is acknowledged at once, a
held push-to-talk key types nothing into the application in front, F1 says the keys, and Quit
works with the settings open.

The app runs with the silent speech driver, so everything recorded from the PulseAudio null sink's
monitor is an earcon. Each recorded block is stamped on arrival; the earliest-arriving block fixes
the stream's clock, so an earcon's first sample has a wall-clock time to set against the moment
xdotool was started.
"""

from __future__ import annotations

import os
import statistics
import time

import pytest

from app.settings.schema import Settings
from app.settings.store import save_settings
from tests.fixtures.sink import KeyClock, SinkRecorder
from tests.integration.test_app_e2e import PREFIX, AppProcess, xdo
from tests.integration.test_keys_grab import TextField

pytestmark = [pytest.mark.display, pytest.mark.slow]


@pytest.fixture
def keys_app_env(desktop, pulse, sightline_home, tmp_path):
    save_settings(Settings(speech_driver="silent", earcons=True, hotkey_timeout=1.5))
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "xcb"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("SIGHTLINE_NO_HOTKEYS", None)
    return env


def _press(clock: KeyClock, key: str) -> float:
    """Press a key (a chord ends with its key); the time the X server took it down."""
    t = time.monotonic()
    xdo("key", key)
    return clock.pressed_after(t, key.split("+")[-1].lower())


def test_every_key_is_heard_at_once_and_push_to_talk_types_nothing(keys_app_env, tmp_path):
    field = TextField()
    app = AppProcess(tmp_path / "report.json", keys_app_env)
    sink = SinkRecorder()
    clock = KeyClock()
    acks: dict[str, float | None] = {}
    try:
        app.wait_for("ready", timeout=120)
        time.sleep(4.0)  # the first-run notice and the background load settle; earcons are all that sound
        assert field.has_focus()

        # A held push-to-talk key: not one "v" reaches the application in front.
        xdo("key", PREFIX)
        time.sleep(0.3)
        xdo("keydown", "v")
        time.sleep(2.0)
        xdo("keyup", "v")
        time.sleep(1.0)
        assert field.received() == ""
        xdo("type", "--delay", "40", "ok")
        assert field.received() == "ok"
        app.wait_for("failed", timeout=30)  # "I heard nothing" or the open-question sentence
        time.sleep(1.5)

        # The prefix alone: a note at once, and a low note when it gives up.
        t = _press(clock, PREFIX)
        acks["prefix"] = sink.onset_after(t, within=1.0)
        timeout_ack = sink.onset_after(t + 1.5, within=1.0)
        acks["prefix timeout"] = timeout_ack
        t = _press(clock, PREFIX)
        sink.onset_after(t, within=0.4)
        acks["escape"] = sink.onset_after(_press(clock, "Escape"), within=0.6)
        for key, name in (("h", "history"), ("F1", "help"), ("o", "settings")):
            xdo("key", PREFIX)
            time.sleep(0.4)
            acks[name] = sink.onset_after(_press(clock, key), within=0.8)
            time.sleep(0.5)
        time.sleep(1.0)  # quit with the settings still open: the key is heard, and the app ends cleanly
        xdo("key", PREFIX)
        time.sleep(0.4)
        acks["quit"] = sink.onset_after(_press(clock, "F4"), within=0.8)
        assert app.wait_for("exit", timeout=60)["exit"] == 0
    finally:
        clock.close()
        sink.close()
        app.stop()
        field.close()

    print(
        "key to first sound at the sink (ms):",
        {k: None if v is None else round(v * 1000) for k, v in acks.items()},
    )
    assert all(v is not None for v in acks.values()), acks
    # The timeout's note comes when the prefix gives up (1.5 s), not at the key.
    assert acks["prefix timeout"] < 0.3
    # Goal 100 ms; on this shared 2-core machine the median must meet it and none may be far off.
    latencies = [v for k, v in acks.items() if k != "prefix timeout"]
    assert statistics.median(latencies) < 0.1, acks
    assert max(latencies) < 0.2, acks

    report = app.read_report()
    spoken = report["spoken_started"]
    assert "Press Ctrl Alt Shift Space, let go, then one key." in spoken
    assert "F1: help." in spoken
    earcons = report["earcons"]
    assert earcons.count("prefix") >= 5 and earcons.count("cancel") >= 2 and earcons.count("key") >= 3
