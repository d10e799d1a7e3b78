"""Waiting for a clip's first samples: the clip wakes the speaking thread (no polling loop), a stop
is seen at once, and the synthesis watchdog still fires."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app.speech.drivers import SpeechDriverError, VoiceSettings
from app.speech.drivers.base import BufferDriver
from app.speech.playback import CANCEL_CHECK, Clip


class _Player:
    """Stands in for the sound device only: these tests are about the wait before playing."""

    def __init__(self) -> None:
        self.played: list[Clip] = []
        self.stops = 0

    def play(self, clip, channel="speech"):
        self.played.append(clip)
        clip.done.set()
        return clip

    def wait(self, clip, cancel_event=None, timeout=1.0):
        return True

    def stop_speech(self):
        self.stops += 1

    def check(self):
        return True, "audio output available"


class _SlowEngine(BufferDriver):
    """Its first samples arrive `delay` seconds after synthesis starts (never, if None)."""

    name = "slow"

    def __init__(self, delay: float | None, **kwargs) -> None:
        super().__init__(player=_Player(), **kwargs)
        self.delay = delay
        self.pushed_at: float | None = None

    def engine_check(self):
        return True, "ok"

    def start_synthesis(self, text, settings, cancel):
        clip = Clip()
        if self.delay is not None:

            def produce() -> None:
                time.sleep(self.delay)
                self.pushed_at = time.monotonic()
                clip.push(np.full(2205, 0.1, np.float32))
                clip.finish()

            threading.Thread(target=produce, daemon=True).start()
        return clip


def _speak_in_thread(driver: BufferDriver, cancel: threading.Event) -> dict:
    """Runs driver.speak on a thread; the dict gets its result, its end time and its CPU time."""
    box: dict = {}

    def run() -> None:
        cpu = time.thread_time()
        try:
            box["result"] = driver.speak("hello", VoiceSettings(), cancel)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc
        box["ended"] = time.monotonic()
        box["cpu"] = time.thread_time() - cpu

    box["thread"] = threading.Thread(target=run, daemon=True)
    box["thread"].start()
    return box


def test_the_first_samples_wake_the_waiting_thread_at_once_and_waiting_costs_no_cpu():
    driver = _SlowEngine(delay=1.0)
    box = _speak_in_thread(driver, threading.Event())
    box["thread"].join(5)
    assert box["result"] is True
    assert driver._player.played, "the clip was played"
    assert box["ended"] - driver.pushed_at < 0.05
    # A 2 ms polling loop wakes 500 times in 1 s (about 15 ms of CPU); waiting on the clip, a few times.
    assert box["cpu"] < 0.004, f"{box['cpu'] * 1000:.1f} ms of CPU while waiting"


def test_a_stop_during_synthesis_is_seen_at_once():
    """The speech manager sets the utterance's cancel event, then calls interrupt()."""
    driver = _SlowEngine(delay=None, synth_timeout=30)
    cancel = threading.Event()
    box = _speak_in_thread(driver, cancel)
    time.sleep(0.2)
    stopped = time.monotonic()
    cancel.set()
    driver.interrupt()
    box["thread"].join(5)
    assert box["result"] is False
    assert box["ended"] - stopped < min(0.05, CANCEL_CHECK / 2)  # woken, not found by a later check
    assert driver.check()[0] is True  # a stop is not a broken engine


def test_a_cancel_without_an_interrupt_is_still_seen():
    driver = _SlowEngine(delay=None, synth_timeout=30)
    cancel = threading.Event()
    box = _speak_in_thread(driver, cancel)
    time.sleep(0.1)
    cancelled = time.monotonic()
    cancel.set()
    box["thread"].join(5)
    assert box["result"] is False
    assert box["ended"] - cancelled < CANCEL_CHECK + 0.15


def test_the_watchdog_still_fires_when_no_samples_come():
    driver = _SlowEngine(delay=None, synth_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(SpeechDriverError) as info:
        driver.speak("hello", VoiceSettings(), threading.Event())
    assert "no audio after 0.3 s" in info.value.detail
    assert 0.29 <= time.monotonic() - started < 0.6


def test_a_clip_finished_without_samples_ends_the_wait():
    clip = Clip()
    threading.Timer(0.05, clip.finish).start()
    started = time.monotonic()
    assert clip.wait_for_audio(5.0) is True
    assert time.monotonic() - started < 0.5
    assert clip.complete and clip.frames_queued == 0
