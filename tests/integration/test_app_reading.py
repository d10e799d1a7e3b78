"""Read all text, as a user hears it: the whole app on Xvfb, driven with xdotool.

- Say-all: "Read all text" reads every sentence, continuously, to the end. Measured at a PulseAudio
  null sink: the seconds of speech the app played against the same text spoken by the same driver
  (espeak-ng) in this process. A short form would play about half of it.
- No self-capture: with the answer window open at the top-left, a second "read all text" reads the
  other program's window once and none of Sightline's own window (its history, its title, the first
  answer a second time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.settings.schema import Settings
from app.settings.store import save_settings
from tests.integration.test_app_e2e import PREFIX, ROOT, AppProcess, screenshot, xdo

pytestmark = [pytest.mark.display, pytest.mark.slow]

PARAGRAPHS = (
    "The library opens at nine in the morning. Visitors may borrow six books at a time.",
    "The reading room is on the second floor. Please keep your voice low in there.",
    "Returned books go in the box by the front door. Late books cost ten cents a day.",
    "The garden behind the library is open in summer. Bring a hat on sunny days.",
)
SENTENCES = [s.strip() + "." for p in PARAGRAPHS for s in p.split(".") if s.strip()]


class TextWindow:
    """Another program's window with known text (tests/fixtures/text_window.py)."""

    def __init__(self, tmp_path: Path, x: int, y: int, env: dict):
        path = tmp_path / "text.txt"
        path.write_text("\n\n\n".join(PARAGRAPHS), encoding="utf-8")  # wide gaps: separate blocks
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fixtures.text_window", str(x), str(y), str(path), "880"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.geometry = json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.terminate()  # by handle
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "xcb"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("SIGHTLINE_NO_HOTKEYS", None)
    return env


def _press(key: str) -> None:
    xdo("key", PREFIX)
    time.sleep(0.3)
    xdo("key", key)


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


def test_read_all_text_twice_reads_everything_and_never_its_own_window(desktop, pulse, tmp_path):
    save_settings(Settings(speech_driver="silent", earcons=False))
    env = _env(tmp_path)
    window = TextWindow(tmp_path, 1020, 200, env)  # beside the answer window, which opens at the top-left
    app = AppProcess(tmp_path / "report.json", env)
    try:
        app.wait_for("ready", timeout=120)
        time.sleep(1.5)  # the global key listener connects to the display
        _press("t")
        first = app.wait_for("finished")
        assert first["error"] is None
        time.sleep(1.0)  # the answer window is drawn at the top-left
        _press("t")
        second = app.wait_for("finished")
        assert second["error"] is None and second["finished"] != first["finished"]
        screenshot("read_text_twice.png")
        time.sleep(1.0)
        # The reading keys: prefix, then Page Up (previous paragraph: from the end, the last but
        # one), then prefix, Down (continue reading: at the end, it says so).
        _press("Page_Up")
        time.sleep(1.5)
        _press("Down")
        time.sleep(1.5)
    finally:
        app.stop()
        window.stop()
    report = app.read_report()
    newest, oldest = report["answers"][0], report["answers"][1]
    assert newest["title"] == oldest["title"] == "Read all text"
    for answer in (oldest, newest):
        text = _normal(answer["text"])
        for sentence in SENTENCES:  # the other program's text, read
            assert _normal(sentence) in text, (sentence, answer["text"])
    second_text = _normal(newest["text"])
    # Nothing of Sightline's own window: not its labels, not the first answer a second time.
    for own in ("history", "read all text", "answered by", "follow-up", "sightline answers"):
        assert own not in second_text, (own, newest["text"])
    assert second_text.count(_normal(SENTENCES[0])) == 1
    # Say-all: every sentence of the first answer was spoken, and no "the rest is on screen" note.
    spoken = report["spoken_started"]
    for sentence in SENTENCES:
        assert any(_normal(sentence) in _normal(s) for s in spoken), (sentence, spoken)
    assert not any("full answer is on screen" in s.lower() for s in spoken)
    # Page Up read from the start of the last but one paragraph (as text recognition grouped
    # them) to the end; then Down said that the end was reached.
    from app.speech.manager import Reading

    reading = Reading.of(newest["text"])
    if len(reading.paragraph_starts) > 1:
        expected = reading.sentences[reading.paragraph_starts[-2] :]
    else:  # one paragraph only: there is none before it, and the key says so
        expected = ["This is the first paragraph."]
    assert spoken[-1 - len(expected) : -1] == expected, (spoken[-12:], reading.paragraph_starts)
    assert len(reading.paragraph_starts) > 1  # the blank lines between paragraphs were kept
    assert spoken[-1] == "That was the end of the answer. Repeat starts it again."


def test_read_all_text_plays_all_of_it_at_the_sink(desktop, pulse, tmp_path):
    from app.speech.drivers import VoiceSettings
    from app.speech.service import speak_text
    from tests.support.measure import MonitorRecorder, PrivateSink

    rate = 320  # words per minute: a brisk reader, and a shorter test
    save_settings(Settings(speech_driver="espeak", earcons=False, rate=rate))
    with PrivateSink() as sink:  # this process and the app (started below) play into it
        env = _env(tmp_path)
        window = TextWindow(tmp_path, 1020, 200, env)
        app = AppProcess(tmp_path / "report.json", env)
        try:
            app.wait_for("ready", timeout=120)
            time.sleep(1.5)
            _press("x")  # Stop: the start-up announcements end here
            time.sleep(1.0)
            recorder = MonitorRecorder(sink.monitor).start()
            pressed = time.monotonic()
            _press("t")
            app.wait_for("finished")
            # Speech goes on after the answer is complete: wait until no sentence has started for
            # longer than any one sentence takes, then for the last one to end.
            _wait_for_quiet(app, quiet=6.0)
            played = recorder.stop()
        finally:
            app.stop()
            window.stop()
        answer = app.read_report()["answers"][0]["text"]
        app_seconds = played.sound_seconds(start=pressed)

        reference = MonitorRecorder(sink.monitor).start()
        speak_text(answer, driver="espeak", settings=VoiceSettings(rate_wpm=rate))
        time.sleep(0.5)
        alone_seconds = reference.stop().sound_seconds()

        # What the short form (the old behaviour) plays of the same text, for comparison.
        from app.speech.manager import short_form

        reference = MonitorRecorder(sink.monitor).start()
        speak_text(short_form(answer).text, driver="espeak", settings=VoiceSettings(rate_wpm=rate))
        time.sleep(0.5)
        short_seconds = reference.stop().sound_seconds()
    ratio = app_seconds / alone_seconds
    print(
        f"read all text: {app_seconds:.2f} s of speech at the sink, "
        f"the same text alone {alone_seconds:.2f} s, ratio {ratio:.3f}; "
        f"the short form would be {short_seconds:.2f} s, ratio {short_seconds / alone_seconds:.3f}"
    )
    assert short_seconds / alone_seconds < 0.85  # the text is long enough for a short form to differ
    assert 0.9 < ratio < 1.1, ratio


def _wait_for_quiet(app: AppProcess, quiet: float, limit: float = 120.0) -> None:
    """Returns once the app has started no sentence for `quiet` seconds (harness "speaking" lines)."""
    import queue

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            app.lines.get(timeout=quiet)
        except queue.Empty:
            return
    raise AssertionError(f"the app was still speaking after {limit} s")
