"""The whole tray app, driven with xdotool, heard at the sink: every key is acknowledged at once, a
held push-to-talk key types nothing into the application in front, and F1 says the keys.

The app runs with the silent speech driver, so everything recorded from the PulseAudio null sink's
monitor is an earcon. Each recorded block is stamped on arrival; the earliest-arriving block fixes
the stream's clock, so an earcon's first sample has a wall-clock time to set against the moment
xdotool was started.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time

import numpy as np
import pytest

from app.settings.schema import Settings
from app.settings.store import save_settings
from tests.integration.test_app_e2e import PREFIX, AppProcess, xdo
from tests.integration.test_keys_grab import TextField

pytestmark = [pytest.mark.display, pytest.mark.slow]

RATE = 48000
BLOCK = 240  # 5 ms


class SinkRecorder:
    """Records the default sink's monitor with parec; `onsets_after(t)` finds sounds by wall clock."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [
                "parec",
                "--raw",
                "--format=s16le",
                f"--rate={RATE}",
                "--channels=1",
                "--latency-msec=5",
                "-d",
                "vsink.monitor",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._chunks: list[bytes] = []
        self._origin = float("inf")  # monotonic time of sample 0, from the least-delayed block
        self._frames = 0
        self._lock = threading.Lock()
        # Reader thread -> test thread: the samples and the clock estimate, under self._lock.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        time.sleep(0.5)

    def _read(self) -> None:
        while True:
            data = self.proc.stdout.read1(BLOCK * 2) if hasattr(self.proc.stdout, "read1") else b""
            if not data:
                return
            now = time.monotonic()
            with self._lock:
                self._chunks.append(data)
                self._frames += len(data) // 2
                self._origin = min(self._origin, now - self._frames / RATE)

    def samples(self) -> np.ndarray:
        with self._lock:
            data = b"".join(self._chunks)
        return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0

    def onset_after(self, t: float, within: float = 3.0, level: float = 0.02) -> float | None:
        """Seconds from `t` (time.monotonic) to the first sound after it, or None."""
        time.sleep(max(0.0, t + within + 0.1 - time.monotonic()))
        samples = self.samples()
        start = max(0, int((t - self._origin) * RATE))
        end = min(samples.size, start + int(within * RATE))
        loud = np.flatnonzero(np.abs(samples[start:end]) > level)
        if loud.size == 0:
            return None
        return (start + int(loud[0])) / RATE + self._origin - t

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def keys_app_env(desktop, pulse, sightline_home, tmp_path):
    save_settings(Settings(speech_driver="silent", earcons=True, hotkey_timeout=1.5))
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "xcb"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("SIGHTLINE_NO_HOTKEYS", None)
    return env


def _press(*keys: str) -> float:
    t = time.monotonic()
    xdo("key", *keys)
    return t


def test_every_key_is_heard_at_once_and_push_to_talk_types_nothing(keys_app_env, tmp_path):
    field = TextField()
    app = AppProcess(tmp_path / "report.json", keys_app_env)
    sink = SinkRecorder()
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
        t = _press(PREFIX)
        acks["prefix"] = sink.onset_after(t, within=1.0)
        timeout_ack = sink.onset_after(t + 1.5, within=1.0)
        acks["prefix timeout"] = timeout_ack
        t = _press(PREFIX)
        sink.onset_after(t, within=0.4)
        acks["escape"] = sink.onset_after(_press("Escape"), within=0.6)
        for key, name in (("h", "history"), ("F1", "help")):
            xdo("key", PREFIX)
            time.sleep(0.4)
            acks[name] = sink.onset_after(_press(key), within=0.8)
            time.sleep(0.5)
        xdo("key", PREFIX)
        time.sleep(0.4)
        acks["quit"] = sink.onset_after(_press("F4"), within=0.8)
        assert app.wait_for("exit", timeout=60)["exit"] == 0
    finally:
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
    assert max(latencies) < 0.25, acks

    report = app.read_report()
    spoken = report["spoken_started"]
    assert "Press Ctrl Alt Shift Space, let go, then one key." in spoken
    assert "F1: help." in spoken
    earcons = report["earcons"]
    assert earcons.count("prefix") >= 5 and earcons.count("cancel") >= 2 and earcons.count("key") >= 3
