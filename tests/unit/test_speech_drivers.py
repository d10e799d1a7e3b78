"""Driver choice, the synthesis watchdog, SSIP against a scripted speech-dispatcher, earcons."""

from __future__ import annotations

import logging
import os
import socket
import threading

import numpy as np
import pytest

from app.speech import earcons
from app.speech.drivers import (
    SpeechDriver,
    SpeechDriverError,
    VoiceSettings,
    canonical_name,
    fallback_chain,
    pick_driver,
)
from app.speech.drivers.base import BufferDriver
from app.speech.drivers.screen_reader import SpeechDispatcherDriver, wpm_to_ssip_rate
from app.speech.drivers.silent import SilentDriver
from app.speech.playback import STREAM_RATE, Clip


class Unavailable(SpeechDriver):
    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason
        self.closed = False

    def check(self):
        return False, self.reason

    def speak(self, text, settings, cancel):
        raise AssertionError("an unavailable driver must not be asked to speak")

    def interrupt(self):
        pass

    def close(self):
        self.closed = True


def test_pick_driver_logs_why_each_skipped_driver_was_skipped(caplog):
    caplog.set_level(logging.INFO, logger="app.speech")
    first = Unavailable("screen_reader", "speech-dispatcher is not running")
    second = Unavailable("pyttsx3", "pyttsx3 is not installed")
    chosen, rest = pick_driver(candidates=[first, second, SilentDriver()])
    assert chosen.name == "silent" and rest == []
    assert "speech driver screen_reader skipped: speech-dispatcher is not running" in caplog.text
    assert "speech driver pyttsx3 skipped: pyttsx3 is not installed" in caplog.text
    assert first.closed and second.closed


def test_pick_driver_keeps_the_rest_as_fallbacks():
    a, b = SilentDriver(), SilentDriver()
    chosen, rest = pick_driver(candidates=[Unavailable("x", "no"), a, b])
    assert chosen is a and rest == [b]


def test_fallback_order_and_names():
    assert fallback_chain("auto") == ["screen_reader", "pyttsx3", "espeak", "silent"]
    assert fallback_chain("espeak-ng") == ["espeak", "screen_reader", "pyttsx3", "silent"]
    assert canonical_name("speechd") == "screen_reader"
    with pytest.raises(SpeechDriverError) as info:
        canonical_name("loudspeaker")
    assert "There is no speech driver called loudspeaker" in info.value.sentence


class FakePlayer:
    def __init__(self):
        self.clips: list[tuple[Clip, str]] = []
        self.stops = 0

    def play(self, clip, channel="speech"):
        self.clips.append((clip, channel))
        clip.done.set()
        return clip

    def wait(self, clip, cancel_event=None, timeout=1.0):
        return not clip.interrupted

    def stop_speech(self):
        self.stops += 1

    def check(self):
        return True, "fake"


class HangingEngine(BufferDriver):
    name = "hanging"

    def engine_check(self):
        return (False, self._broken) if self._broken else (True, "ok")

    def start_synthesis(self, text, settings, cancel):
        return Clip()  # never filled: the engine hangs


def test_watchdog_turns_a_hanging_engine_into_a_clear_failure(caplog):
    caplog.set_level(logging.INFO, logger="app.speech")
    driver = HangingEngine(player=FakePlayer(), synth_timeout=0.2)
    with pytest.raises(SpeechDriverError) as info:
        driver.speak("hello", VoiceSettings(), threading.Event())
    assert "no audio after 0.2 s" in info.value.detail
    assert driver.check() == (False, "no audio after 0.2 s of synthesis")
    assert "speech driver hanging disabled" in caplog.text


def test_a_cancelled_synthesis_returns_at_once():
    driver = HangingEngine(player=FakePlayer(), synth_timeout=30)
    cancel = threading.Event()
    cancel.set()
    assert driver.speak("hello", VoiceSettings(), cancel) is False


def test_ssip_rate_mapping():
    assert wpm_to_ssip_rate(175) == 0
    assert wpm_to_ssip_rate(450) == 100 and wpm_to_ssip_rate(1000) == 100
    assert wpm_to_ssip_rate(80) == -100
    assert 0 < wpm_to_ssip_rate(220) < 30


# -- a scripted speech-dispatcher ------------------------------------------------------------


class FakeSpeechd:
    """Answers SSIP on a Unix socket like speech-dispatcher; `mode` scripts the speaking."""

    def __init__(self, path: str, mode: str = "speak"):
        self.path = path
        self.mode = mode  # "speak": BEGIN then END; "hold": BEGIN, END only on CANCEL; "mute": nothing
        self.commands: list[str] = []
        self.texts: list[str] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.server.accept()
        f = conn.makefile("rb")
        msg = 0
        while True:
            line = f.readline()
            if not line:
                break
            cmd = line.decode().rstrip("\r\n")
            self.commands.append(cmd)
            if cmd == "SPEAK":
                conn.sendall(b"230 OK RECEIVING DATA\r\n")
                body = []
                while (data := f.readline().decode().rstrip("\r\n")) != ".":
                    body.append(data[1:] if data.startswith("..") else data)
                self.texts.append("\n".join(body))
                msg += 1
                conn.sendall(f"225-{msg}\r\n225 OK MESSAGE QUEUED\r\n".encode())
                if self.mode in ("speak", "hold"):
                    conn.sendall(f"701-{msg}\r\n701-1\r\n701 BEGIN\r\n".encode())
                if self.mode == "speak":
                    conn.sendall(f"702-{msg}\r\n702-1\r\n702 END\r\n".encode())
            elif cmd.startswith("CANCEL"):
                conn.sendall(b"210 OK CANCELED\r\n")
                if self.mode == "hold":
                    conn.sendall(f"703-{msg}\r\n703-1\r\n703 CANCELED\r\n".encode())
            elif cmd == "QUIT":
                break
            else:
                conn.sendall(b"200 OK\r\n")
        conn.close()
        self.server.close()


@pytest.fixture
def sock_path(tmp_path):
    path = str(tmp_path / "sd.sock")
    yield path
    if os.path.exists(path):
        os.unlink(path)


def test_ssip_speaks_and_waits_for_the_end_event(sock_path):
    server = FakeSpeechd(sock_path)
    driver = SpeechDispatcherDriver(socket_path=sock_path)
    try:
        assert driver.check()[0]
        text = "Line one.\n.hidden dot line"
        assert driver.speak(text, VoiceSettings(rate_wpm=175, volume=0.5), threading.Event()) is True
        assert server.texts == [text]  # dot-stuffing was undone: the text arrived intact
        assert "SET self NOTIFICATION all on" in server.commands
        assert "SET self RATE 0" in server.commands and "SET self VOLUME 0" in server.commands
    finally:
        driver.close()
    server.thread.join(2)
    assert server.commands[-1] == "QUIT"


def test_ssip_interrupt_cancels_speech(sock_path):
    server = FakeSpeechd(sock_path, mode="hold")
    driver = SpeechDispatcherDriver(socket_path=sock_path)
    cancel = threading.Event()
    result = {}
    worker = threading.Thread(target=lambda: result.update(ok=driver.speak("long", VoiceSettings(), cancel)))
    try:
        worker.start()
        for _ in range(100):
            if server.texts:
                break
            threading.Event().wait(0.02)
        cancel.set()
        worker.join(5)
        assert result == {"ok": False}
        assert "CANCEL self" in server.commands
    finally:
        driver.close()


def test_ssip_that_never_starts_speaking_is_reported(sock_path):
    FakeSpeechd(sock_path, mode="mute")
    driver = SpeechDispatcherDriver(socket_path=sock_path, begin_timeout=0.3)
    try:
        with pytest.raises(SpeechDriverError) as info:
            driver.speak("hello", VoiceSettings(), threading.Event())
        assert "did not start speaking" in info.value.detail
    finally:
        driver.close()


def test_ssip_check_explains_a_missing_server(tmp_path):
    ok, reason = SpeechDispatcherDriver(socket_path=str(tmp_path / "none.sock")).check()
    assert not ok and "not running" in reason


# -- earcons ---------------------------------------------------------------------------------


def test_earcons_are_short_audible_and_distinct():
    sounds = {name: earcons.generate(name) for name in earcons.EARCON_NAMES}
    for name, samples in sounds.items():
        seconds = samples.size / STREAM_RATE
        assert 0.01 < seconds < 0.5, name
        assert 0.05 < np.abs(samples).max() <= 1.0, name
    assert np.abs(sounds["working"]).max() < np.abs(sounds["done"]).max()  # the tick is soft
    assert len({s.size for s in sounds.values()}) == len(sounds)


def test_earcons_play_on_their_own_channel_and_can_be_turned_off():
    player = FakePlayer()
    e = earcons.Earcons(player=player)
    e.play("start")
    assert [ch for _, ch in player.clips] == ["earcon"]
    e.enabled = False
    assert e.play("done") is None
    assert len(player.clips) == 1


def test_working_ticks_until_stopped(no_thread_leak):
    player = FakePlayer()
    e = earcons.Earcons(player=player)
    e.start_working(interval=0.02)
    for _ in range(200):
        if len(player.clips) >= 3:
            break
        threading.Event().wait(0.01)
    e.stop_working()
    count = len(player.clips)
    threading.Event().wait(0.1)
    assert count >= 3 and len(player.clips) == count
    assert set(e.played) == {"working"}


def test_a_shipped_wav_replaces_the_generated_earcon(tmp_path):
    import soundfile as sf

    sf.write(str(tmp_path / "done.wav"), np.full(441, 0.25, dtype=np.float32), 44100)
    samples, rate = earcons.load("done", folder=tmp_path)
    assert rate == 44100 and samples.size == 441
    samples, rate = earcons.load("error", folder=tmp_path)
    assert rate == STREAM_RATE and samples.size == earcons.generate("error").size
