"""Speech out through real engines, heard back from a PulseAudio null sink's monitor.

Each test loads a private null sink (so other programs on the shared sink are neither heard nor
disturbed), plays through the real driver, records the monitor with parec and measures from the
recorded samples.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from app.speech.drivers import pick_driver
from app.speech.drivers.espeak import EspeakDriver
from app.speech.drivers.pyttsx3_driver import Pyttsx3Driver
from app.speech.drivers.screen_reader import SpeechDispatcherDriver
from app.speech.manager import SpeechManager
from app.speech.playback import AudioPlayer
from tests.support.measure import MonitorRecorder, PrivateSink

pytestmark = pytest.mark.audio

LONG_SENTENCE = (
    "This sentence is long enough to keep talking for several seconds, so that stopping it in the "
    "middle leaves a clear and measurable end to the sound that was recorded from the sink."
)


@pytest.fixture
def sink(pulse):
    with PrivateSink() as s:
        yield s


@pytest.fixture
def player(sink):
    p = AudioPlayer()  # opened after PrivateSink: its stream plays into the private sink
    yield p
    p.close()


@pytest.fixture
def recorder(sink):
    rec = MonitorRecorder(sink.monitor).start()
    yield rec
    rec.stop()


def make(kind: str, player: AudioPlayer):
    return EspeakDriver(player=player) if kind == "espeak" else Pyttsx3Driver(player=player)


@pytest.mark.parametrize("kind", ["espeak", "pyttsx3"])
def test_engine_produces_audio_at_the_sink(kind, player, recorder):
    driver = make(kind, player)
    assert driver.check()[0], driver.check()[1]
    with SpeechManager(driver) as m:
        start = time.monotonic()
        m.speak("Hello. Sightline can speak.")
        assert m.wait_idle(30)
        end = time.monotonic()
        assert m.driver_name == kind
    rec = recorder.stop()
    heard = rec.sound_seconds(start, end + 0.3)
    assert heard > 0.6, f"only {heard:.2f} s of sound was recorded"
    first = rec.first_sound(after=start)
    assert first is not None and first - start < 2.0


@pytest.mark.parametrize("kind", ["espeak", "pyttsx3"])
def test_after_stop_the_audio_ends_within_150_ms(kind, player, recorder):
    started = threading.Event()
    driver = make(kind, player)
    with SpeechManager(driver, on_event=lambda e: e.kind == "started" and started.set()) as m:
        m.speak(LONG_SENTENCE)
        m.speak("This queued sentence must never be heard.")
        assert started.wait(10)
        deadline = time.monotonic() + 10
        while (clip := player.current_speech) is None or clip.first_sample_time is None:
            assert time.monotonic() < deadline, "speech never reached the player"
            time.sleep(0.01)
        time.sleep(1.0)  # well inside the sentence
        stop_at = time.monotonic()
        m.stop()
        time.sleep(0.8)
        assert m.wait_idle(5)
    rec = recorder.stop()
    # It was talking when stopped (so the measurement means something)...
    assert rec.sound_seconds(stop_at - 0.5, stop_at) > 0.1
    # ...and the last sound at the sink came less than 150 ms after Stop.
    last = rec.last_sound()
    assert last is not None
    assert last - stop_at < 0.150, f"sound went on {1000 * (last - stop_at):.0f} ms after Stop"
    assert rec.sound_seconds(stop_at + 0.15, None) == 0.0


def test_earcons_do_not_wait_for_speech(player, recorder):
    from app.speech.earcons import Earcons

    tones = Earcons(player=player)
    driver = EspeakDriver(player=player)
    finished = threading.Event()
    with SpeechManager(driver, on_event=lambda e: e.kind == "finished" and finished.set()) as m:
        m.speak("Speech keeps going while an earcon plays over it.")
        time.sleep(0.6)
        clip = tones.play("done")
        assert clip is not None and clip.done.wait(2) and not clip.interrupted  # played to its end
        assert finished.wait(20)  # and speech still finished normally
    rec = recorder.stop()
    assert rec.sound_seconds() > 1.0


def test_screen_reader_driver_reaches_speech_dispatcher(pulse):
    driver = SpeechDispatcherDriver()
    ok, reason = driver.check()
    assert ok, reason
    voices = driver.list_voices()
    assert any(v.language.startswith("en") for v in voices)
    # speech-dispatcher plays on the shared default sink; listen there.
    rec = MonitorRecorder("vsink.monitor").start()
    try:
        with SpeechManager(driver) as m:
            start = time.monotonic()
            m.speak("Sightline speaks through your screen reader.")
            assert m.wait_idle(30)
            end = time.monotonic()
            assert m.driver_name == "screen_reader"
        assert driver.last_message_id  # speech-dispatcher accepted the message and said BEGIN/END
    finally:
        recording = rec.stop()
    assert recording.sound_seconds(start, end + 0.3) > 0.5


def test_missing_engine_falls_through_with_the_reason_logged(player, caplog):
    caplog.set_level(logging.INFO, logger="app.speech")
    missing = EspeakDriver(binary="/nonexistent/espeak-ng", player=player)
    no_engine = Pyttsx3Driver(driver_name="no_such_engine", player=player)
    chosen, _ = pick_driver(candidates=[missing, no_engine, EspeakDriver(player=player)])
    assert chosen.name == "espeak" and chosen.binary == "espeak-ng"
    assert "speech driver espeak skipped: /nonexistent/espeak-ng is not installed" in caplog.text
    assert "speech driver pyttsx3 skipped: no engine" in caplog.text
    chosen.close()


def test_hanging_engine_hands_over_to_the_next_driver(tmp_path: Path, player, recorder, caplog):
    caplog.set_level(logging.INFO, logger="app.speech")
    hang = tmp_path / "espeak-ng"
    pid_file = tmp_path / "pid"
    hang.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    hang.chmod(0o755)
    hanging = EspeakDriver(binary=str(hang), player=player, synth_timeout=1.0)
    changes = []
    with SpeechManager(
        hanging, fallbacks=[EspeakDriver(player=player)], on_event=lambda e: changes.append(e.detail)
    ) as m:
        start = time.monotonic()
        m.speak("The backup voice says this.")
        assert m.wait_idle(30)
        assert m.driver_name == "espeak" and m.driver is not hanging
    rec = recorder.stop()
    assert rec.sound_seconds(start, None) > 0.5  # the sentence was still heard
    assert "no audio after 1.0 s of synthesis" in caplog.text
    assert "takes over" in caplog.text
    assert any("espeak failed" in c for c in changes if c)
    # The hung process was stopped by its handle, not left behind.
    pid = int(pid_file.read_text())
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the hanging engine process was left running")


def test_speak_text_writes_a_wav(tmp_path):
    import soundfile as sf

    from app.speech.service import speak_text

    out = tmp_path / "hello.wav"
    result = speak_text("Hello there. This is a saved file.", driver="espeak", out=out)
    data, rate = sf.read(str(out))
    assert result.driver == "espeak" and result.sentences == 2
    assert data.size / rate > 1.0 and np.abs(data).max() > 0.05
    out2 = tmp_path / "sys.wav"
    assert speak_text("Saved by the system voice.", driver="pyttsx3", out=out2).driver == "pyttsx3"
    assert sf.info(str(out2)).duration > 0.5


def test_speak_text_aloud_and_the_device_list(sink, recorder):
    from app.speech.service import speak_text, speech_devices

    result = speak_text("Spoken from the command line.", driver="espeak")
    assert result.driver == "espeak"
    assert recorder.stop().sound_seconds() > 0.5
    rows = {r["name"]: r for r in speech_devices()}
    assert list(rows) == ["screen_reader", "pyttsx3", "espeak", "silent"]
    assert rows["espeak"]["available"] and any(v["id"].startswith("en") for v in rows["espeak"]["voices"])
    assert rows["pyttsx3"]["available"] and rows["pyttsx3"]["voices"]
    assert rows["screen_reader"]["available"], rows["screen_reader"]["reason"]
    assert rows["silent"]["available"]
