"""The whole tray app on Xvfb with a tray host, driven the way a keyboard user drives it.

A real window with known text is on screen; the real app (tests/integration/app_harness.py runs
app.main.run_app) is started as its own process with the silent speech driver as the spy. Global
keys are pressed with xdotool, the tray menu is opened and walked with xdotool, and what the user
would have heard and seen is read back from the harness's report when the app quits.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.commands import registry
from app.settings.schema import Settings
from app.settings.store import save_settings
from tests.fixtures.screens_layout import LINES
from tests.fixtures.screens_proc import start_known_window

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "ctrl+alt+shift+space"

pytestmark = [pytest.mark.display, pytest.mark.slow]


def xdo(*args: str) -> None:
    subprocess.run(["xdotool", *args], check=True, timeout=10)


class AppProcess:
    def __init__(self, report: Path, env: dict):
        self.report = report
        self.env = env
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.app_harness", str(report)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue = queue.Queue()
        # Reader thread -> test thread: every JSON line the harness prints goes through this queue.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def wait_for(self, key: str, timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError(f"the app exited early: {self.proc.stderr.read()[-3000:]}") from None
                continue
            if key in event:
                return event
        raise AssertionError(f"no {key!r} event within {timeout} s")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def read_report(self) -> dict:
        return json.loads(self.report.read_text())


def tray_icon_center() -> tuple[int, int]:
    """Where trayer put Sightline's icon (xwininfo lists it inside trayer's panel)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["xwininfo", "-root", "-tree"], capture_output=True, text=True, timeout=10
        ).stdout
        for line in out.splitlines():
            if '"Sightline")' in line:
                size, abs_pos = line.split()[-2:]
                w, h = (int(v) for v in size.split("+")[0].split("x"))
                ax, ay = (int(v) for v in abs_pos.lstrip("+").split("+"))
                if w < 64 and h < 64:  # the icon, not a window of ours
                    return ax + w // 2, ay + h // 2
        time.sleep(0.5)
    raise AssertionError(f"Sightline's icon is not in the tray:\n{out}")


def screenshot(name: str) -> Path:
    """The whole X screen, saved under test-output/screenshots for a person to look at."""
    import mss
    import mss.tools

    folder = ROOT / "test-output" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with mss.MSS() as grabber:
        shot = grabber.grab(grabber.monitors[1])
        mss.tools.to_png(shot.rgb, shot.size, output=str(path))
    return path


def open_tray_menu_and_choose(command_id: str, extra_items_before: int) -> None:
    x, y = tray_icon_center()
    xdo("mousemove", str(x), str(y), "click", "3")
    time.sleep(1.0)
    screenshot("tray_menu.png")
    items = [c.id for c in registry.menu_items() if c is not None]
    presses = extra_items_before + items.index(command_id) + 1
    xdo("key", "--delay", "60", *(["Down"] * presses), "Return")


@pytest.fixture
def app_env(desktop, pulse, sightline_home, tmp_path):
    save_settings(Settings(speech_driver="silent", earcons=True))
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "xcb"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("SIGHTLINE_NO_HOTKEYS", None)
    return env


def test_keyboard_and_tray_with_the_ocr_default(app_env, tmp_path):
    window = start_known_window(40, 140)
    app = AppProcess(tmp_path / "report.json", app_env)
    try:
        ready = app.wait_for("ready", timeout=120)
        assert ready["tray"] is True  # trayer is the tray host
        time.sleep(1.5)  # the global key listener connects to the display

        # Describe the screen with the global keys: the prefix chord, then S.
        xdo("key", PREFIX)
        time.sleep(0.3)
        xdo("key", "s")
        done = app.wait_for("finished")
        assert done["backend"] == "ocr" and done["chars"] > 0 and done["error"] is None
        screenshot("app_after_describe_xvfb.png")

        # A second launch brings the first forward and exits at once.
        second = subprocess.run(
            [sys.executable, "-m", "app"], cwd=ROOT, env=app.env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 0 and "already running" in second.stderr

        # Read all text from the tray menu (the first item is "Download the model").
        open_tray_menu_and_choose("read_text", extra_items_before=1)
        done2 = app.wait_for("finished")
        assert done2["finished"] != done["finished"] and done2["error"] is None

        # Quit from the tray menu: the clean path, exit code 0.
        x, y = tray_icon_center()
        xdo("mousemove", str(x), str(y), "click", "3")
        time.sleep(1.0)
        xdo("key", "Up", "Return")  # the last item is Quit
        assert app.wait_for("exit", timeout=60)["exit"] == 0
        assert app.proc.wait(30) == 0
    finally:
        app.stop()
        window.stop()

    report = app.read_report()
    assert report["driver"] == "silent"
    first, second = report["answers"][1], report["answers"][0]  # newest first
    assert first["title"] == "Describe the screen" and second["title"] == "Read all text"
    for line in LINES:  # the known window's text, read by the OCR default, shown in the window
        assert line in first["text"]
    assert "sightline model download" in first["text"]
    spoken = report["spoken_started"]
    assert spoken[0] == "Sightline is ready."
    assert "Sightline is already running." in spoken
    first_sentence = next(s for s in spoken if LINES[0] in s)  # speech started with the answer
    assert first_sentence
    assert report["earcons"].count("start") >= 2 and "done" in report["earcons"]
    assert [r["task"] for r in report["requests"]] == ["describe_brief", "read_text"]
    assert report["requests"][0]["image"] == [1920, 1080]


def _speech_wav(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spoken.wav"
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, timeout=30)
    return path


def _hold_and_speak(key: str, wav: Path, app: AppProcess) -> None:
    """Push-to-talk as a user does it: prefix, hold the key, wait for the tone to end (the microphone
    is open), speak (into the null sink), release."""
    xdo("key", PREFIX)
    time.sleep(0.3)
    xdo("keydown", key)
    assert app.wait_for("recording", timeout=20)["recording"], "the microphone did not open"
    subprocess.run(["paplay", str(wav)], check=True, timeout=30)
    time.sleep(0.4)
    xdo("keyup", key)


def test_spoken_command_without_the_model(app_env, tmp_path):
    wav = _speech_wav(tmp_path, "describe the screen")
    app = AppProcess(tmp_path / "report.json", app_env)
    try:
        app.wait_for("ready", timeout=120)
        time.sleep(1.5)
        _hold_and_speak("v", wav, app)
        done = app.wait_for("finished")
        assert done["backend"] == "ocr"
    finally:
        assert app.stop(signal.SIGINT) == 0  # Ctrl+C in a terminal takes the clean path too
    report = app.read_report()
    # "describe the screen" (or its variant "what is on the screen") is what the grammar heard
    assert any(s.startswith("Heard: ") and "screen" in s for s in report["spoken_started"])
    assert [r["task"] for r in report["requests"]] == ["describe_brief"]


def test_spoken_question_about_the_screen_with_the_model(app_env, tmp_path, tiny_model_dir):
    save_settings(Settings(speech_driver="silent", model_dir=str(tiny_model_dir)))
    wav = _speech_wav(tmp_path, "what is the red button for")
    app = AppProcess(tmp_path / "report.json", app_env)
    try:
        app.wait_for("ready", timeout=120)
        time.sleep(1.5)
        _hold_and_speak("v", wav, app)
        done = app.wait_for("finished", timeout=120)
        assert done["backend"] == "local"
    finally:
        assert app.stop() == 0
    report = app.read_report()
    (request,) = report["requests"]
    # One request carries both the screenshot and the spoken question.
    assert request["task"] == "ask_image" and request["image"] == [1920, 1080]
    assert 0.8 < request["audio_seconds"] < 5
    assert report["last_backend"] == "local" and report["last_tokens_in"] > 1000
