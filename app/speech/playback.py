"""AudioPlayer: one output stream, two channels (speech and earcons), cut at once on stop.

Speech drivers that synthesise into a buffer hand the samples to the player. The player keeps one
PortAudio output stream open while there is something to play (and a few seconds after, so the
next sentence starts without reopening the device) and mixes the speech channel with the earcon
channel in its callback. `stop_speech()` makes the callback drop the speech clip on its next
block: silence follows within one block plus the device latency. Earcons never wait for speech
and speech never waits for earcons.

A Clip can be filled while it plays (espeak-ng streams its samples as it synthesises), so the
first audio leaves long before the whole sentence is synthesised.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from app.core.errors import DeviceError
from app.core.resample import StreamResampler

log = logging.getLogger(__name__)

STREAM_RATE = 22050
BLOCK_FRAMES = 256  # ~12 ms at 22 kHz: the longest a stop can wait for the callback
IDLE_CLOSE_SECONDS = 8.0
CANCEL_CHECK = 0.25  # the longest a cancel without a stop goes unseen by Clip.wait_for_audio


class OutputStream(Protocol):
    """The part of sounddevice.OutputStream the player uses."""

    @property
    def active(self) -> bool: ...

    @property
    def latency(self) -> float: ...

    def start(self) -> None: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


@dataclass(eq=False)
class Clip:
    """Mono float32 samples at `rate`, appended by a producer, read by the audio callback."""

    rate: int = STREAM_RATE
    volume: float = 1.0
    # Producer thread -> audio callback: blocks of samples travel through this queue.
    _blocks: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    _complete: threading.Event = field(default_factory=threading.Event)
    # Producer thread -> whoever waits for the first samples (wait_for_audio): notified on the
    # first push, on finish() and on wake().
    _audio: threading.Condition = field(default_factory=threading.Condition)
    done: threading.Event = field(default_factory=threading.Event)
    interrupted: bool = False
    first_sample_time: float | None = None  # time.monotonic() when its first block was played
    frames_queued: int = 0
    # Samples at `rate` -> STREAM_RATE, pushed block by block as if resampled whole.
    _resampler: StreamResampler | None = None

    def push(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if samples.size and self.rate != STREAM_RATE:
            # Resampled here, on the producer's thread, so the audio callback only copies.
            if self._resampler is None or self._resampler.src_rate != self.rate:
                self._resampler = StreamResampler(self.rate, STREAM_RATE)
            samples = self._resampler.feed(samples)
        self._queue(samples)

    def _queue(self, samples: np.ndarray) -> None:
        if samples.size:
            with self._audio:
                self.frames_queued += samples.size
                self._blocks.put(samples)
                self._audio.notify_all()

    def finish(self) -> None:
        """No more samples will come."""
        if self._resampler is not None:
            self._queue(self._resampler.finish())  # the last few samples the filter held back
        with self._audio:
            self._complete.set()
            self._audio.notify_all()

    @property
    def complete(self) -> bool:
        """finish() was called: no more samples will come."""
        return self._complete.is_set()

    def wake(self) -> None:
        """Makes wait_for_audio() look at its cancel event now (a stop was requested)."""
        with self._audio:
            self._audio.notify_all()

    def wait_for_audio(self, timeout: float, cancel: threading.Event | None = None) -> bool:
        """Blocks until the first samples are queued or no more will come (True), or until `cancel`
        is set or `timeout` seconds pass (False). Returns at once on each of these: the producer
        notifies on push and finish, and whoever sets `cancel` calls wake() (a driver's interrupt).
        The cancel event is also looked at every CANCEL_CHECK seconds, for a caller that cancels
        without interrupting."""
        deadline = time.monotonic() + timeout
        with self._audio:
            while not (self.frames_queued or self._complete.is_set()):
                if cancel is not None and cancel.is_set():
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._audio.wait(min(remaining, CANCEL_CHECK))
        return True

    @property
    def duration(self) -> float:
        return self.frames_queued / float(STREAM_RATE)

    @classmethod
    def from_samples(cls, samples: np.ndarray, rate: int, volume: float = 1.0) -> Clip:
        clip = cls(rate=rate, volume=volume)
        clip.push(samples)
        clip.finish()
        return clip


class _Channel:
    """Read side of one channel; touched only by the audio callback."""

    def __init__(self) -> None:
        self.clip: Clip | None = None
        self.current: np.ndarray | None = None
        self.pos = 0
        # STREAM_RATE -> a player opened at another rate; one per clip (see fill).
        self.resampler: StreamResampler | None = None

    def drop(self, interrupted: bool) -> None:
        if self.clip is not None:
            self.clip.interrupted = interrupted
            self.clip.done.set()
        self.clip, self.current, self.pos, self.resampler = None, None, 0, None

    def fill(self, out: np.ndarray, stream_rate: int) -> bool:
        """Adds this channel's samples into `out`; returns True if it produced sound."""
        clip = self.clip
        if clip is None:
            return False
        need, written = out.shape[0], 0
        while written < need:
            if self.current is None or self.pos >= self.current.shape[0]:
                try:
                    block = clip._blocks.get_nowait()
                except queue.Empty:
                    if clip._complete.is_set() and clip._blocks.empty():
                        tail = self.resampler.finish() if self.resampler is not None else None
                        self.resampler = None
                        if tail is not None and tail.size:
                            self.current, self.pos = tail * clip.volume, 0
                            continue
                        self.drop(interrupted=False)
                    break
                if stream_rate != STREAM_RATE:
                    if self.resampler is None:
                        self.resampler = StreamResampler(STREAM_RATE, stream_rate)
                    block = self.resampler.feed(block)
                self.current = block * clip.volume
                self.pos = 0
            take = min(need - written, self.current.shape[0] - self.pos)
            out[written : written + take] += self.current[self.pos : self.pos + take]
            self.pos += take
            written += take
        if written and clip.first_sample_time is None:
            clip.first_sample_time = time.monotonic()
        return written > 0


class AudioPlayer:
    """Plays Clips on the default (or a named) output device. Thread-safe; never blocks on audio."""

    def __init__(self, device: int | str | None = None, rate: int = STREAM_RATE) -> None:
        self._device = device
        self._rate = rate
        self._lock = threading.Lock()
        self._stream: OutputStream | None = None
        # Any thread -> audio callback: play/stop commands travel through this queue.
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._speech = _Channel()
        self._earcon = _Channel()
        self._last_activity = time.monotonic()
        self._closed = False
        self._reaper: threading.Thread | None = None
        self._reaper_wake = threading.Event()

    @staticmethod
    def check() -> tuple[bool, str]:
        """Can audio be played here?"""
        try:
            import sounddevice as sd
        except Exception as exc:  # PortAudio missing raises OSError
            return False, f"sounddevice cannot load PortAudio ({exc})"
        try:
            sd.query_devices(kind="output")
        except Exception as exc:
            return False, f"no audio output device ({exc})"
        return True, "audio output available"

    # -- public ------------------------------------------------------------------------------

    def play(self, clip: Clip, channel: str = "speech") -> Clip:
        """Starts `clip` (replacing any clip on the same channel); returns it. Does not wait."""
        self._ensure_stream()
        self._commands.put(("play", channel, clip))
        return clip

    @property
    def current_speech(self) -> Clip | None:
        """The clip on the speech channel now (its first_sample_time says when it became audible)."""
        return self._speech.clip

    def stop_speech(self) -> None:
        """Silence the speech channel now (the earcon channel keeps playing)."""
        self._commands.put(("stop", "speech", None))

    def wait(self, clip: Clip, cancel_event: threading.Event | None = None, timeout: float = 120.0) -> bool:
        """Blocks until `clip` ends or `cancel_event` is set. Returns True if it played to the end."""
        deadline = time.monotonic() + timeout
        while not clip.done.wait(0.02):
            if cancel_event is not None and cancel_event.is_set():
                return False
            if time.monotonic() > deadline:
                return False
            if self._stream_broken():
                raise DeviceError("The sound device stopped working.", detail="output stream inactive")
        return not clip.interrupted

    def close(self) -> None:
        self._closed = True
        self._reaper_wake.set()
        if self._reaper is not None:
            self._reaper.join(timeout=2)
        self._close_stream()

    # -- stream ------------------------------------------------------------------------------

    def _ensure_stream(self) -> None:
        with self._lock:
            self._last_activity = time.monotonic()
            if self._stream is not None:
                return
            try:
                import sounddevice as sd

                stream: OutputStream = sd.OutputStream(
                    samplerate=self._rate,
                    channels=1,
                    dtype="float32",
                    blocksize=BLOCK_FRAMES,
                    latency="low",
                    device=self._device,
                    callback=self._callback,
                )
                self._stream = stream
                stream.start()
            except Exception as exc:
                self._stream = None
                raise DeviceError("No sound device could be opened.", detail=repr(exc)) from exc
            log.debug("audio stream open at %d Hz, latency %.3f s", self._rate, stream.latency)
            if self._reaper is None or not self._reaper.is_alive():
                self._reaper = threading.Thread(
                    target=self._reap_idle, name="sightline-audio-idle", daemon=True
                )
                self._reaper.start()

    def _stream_broken(self) -> bool:
        with self._lock:
            return self._stream is not None and not self._stream.active and not self._closed

    def _close_stream(self) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception:
                log.debug("closing the audio stream failed", exc_info=True)
        for channel in (self._speech, self._earcon):
            channel.drop(interrupted=True)
        while True:
            try:
                _, _, clip = self._commands.get_nowait()
            except queue.Empty:
                break
            if clip is not None:
                clip.interrupted = True
                clip.done.set()

    def _reap_idle(self) -> None:
        """Closes the device after a quiet spell so the system can suspend it."""
        while not self._closed:
            self._reaper_wake.wait(1.0)
            with self._lock:
                idle = (
                    self._stream is not None
                    and self._speech.clip is None
                    and self._earcon.clip is None
                    and self._commands.empty()
                    and time.monotonic() - self._last_activity > IDLE_CLOSE_SECONDS
                )
            if idle:
                self._close_stream()
                return

    def _callback(self, outdata, frames, time_info, status) -> None:  # PortAudio's thread
        # Commands from other threads arrive through self._commands (a queue); nothing here blocks.
        while True:
            try:
                op, channel, clip = self._commands.get_nowait()
            except queue.Empty:
                break
            target = self._speech if channel == "speech" else self._earcon
            target.drop(interrupted=True)
            if op == "play":
                target.clip = clip
        buf = outdata[:, 0]
        buf.fill(0.0)
        active = self._speech.fill(buf, self._rate)
        active = self._earcon.fill(buf, self._rate) or active
        if active:
            self._last_activity = time.monotonic()
        np.clip(buf, -1.0, 1.0, out=buf)


_shared: AudioPlayer | None = None
_shared_lock = threading.Lock()


def shared_player() -> AudioPlayer:
    """The process-wide player (speech and earcons share one stream)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared._closed:
            _shared = AudioPlayer()
        return _shared
