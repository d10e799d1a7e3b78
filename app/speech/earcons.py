"""Earcons: short sounds that tell a user who cannot see the screen what is happening.

start   two rising notes: Sightline heard the command and is capturing.
working a soft tick, repeated while the model thinks.
done    two notes, the second higher and brighter: the answer follows.
error   two low falling notes.
prefix  one short high note: the prefix keys were heard; press a command key.
key     a short click: a command key was heard (a window opens, a setting, quit).
cancel  one short low note: the prefix gave up (Escape, or no key in time).
loading a soft low double tick, every few seconds while the model loads.

They are generated with numpy at first use (a WAV of the same name in resources/earcons replaces
one), and played on the player's earcon channel, which is mixed with speech and never waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from app.speech.playback import STREAM_RATE, AudioPlayer, Clip

log = logging.getLogger("app.speech")

EARCON_NAMES = ("start", "working", "done", "error", "prefix", "key", "cancel", "loading")


def _tone(freq: float, seconds: float, rate: int, volume: float, harmonics: float = 0.25) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = np.sin(2 * np.pi * freq * t) + harmonics * np.sin(4 * np.pi * freq * t)
    attack = max(1, int(0.006 * rate))
    env = np.exp(-t * 6.0 / seconds)  # a plucked, quickly fading note
    env[:attack] *= np.linspace(0.0, 1.0, attack)
    env[-attack:] *= np.linspace(1.0, 0.0, attack)
    return (volume * env * wave / (1.0 + harmonics)).astype(np.float32)


def _sequence(notes: list[tuple[float, float]], rate: int, volume: float, gap: float = 0.02) -> np.ndarray:
    parts = []
    for freq, seconds in notes:
        parts.append(_tone(freq, seconds, rate, volume))
        parts.append(np.zeros(int(gap * rate), dtype=np.float32))
    return np.concatenate(parts)


def generate(name: str, rate: int = STREAM_RATE) -> np.ndarray:
    """The earcon's samples (mono float32 at `rate`)."""
    if name == "start":
        return _sequence([(660.0, 0.07), (880.0, 0.09)], rate, 0.35)
    if name == "working":
        t = np.arange(int(0.025 * rate)) / rate
        tick = np.sin(2 * np.pi * 1800.0 * t) * np.exp(-t * 220.0)
        return (0.12 * tick).astype(np.float32)
    if name == "done":
        return _sequence([(784.0, 0.08), (1175.0, 0.14)], rate, 0.35)
    if name == "error":
        return _sequence([(392.0, 0.12), (262.0, 0.2)], rate, 0.4)
    if name == "prefix":
        return _tone(988.0, 0.06, rate, 0.3)
    if name == "key":
        t = np.arange(int(0.03 * rate)) / rate
        click = np.sin(2 * np.pi * 1400.0 * t) * np.exp(-t * 120.0)
        return (0.3 * click).astype(np.float32)
    if name == "cancel":
        return _tone(330.0, 0.09, rate, 0.3)
    if name == "loading":
        t = np.arange(int(0.03 * rate)) / rate
        tick = (np.sin(2 * np.pi * 700.0 * t) * np.exp(-t * 150.0)).astype(np.float32)
        gap = np.zeros(int(0.08 * rate), dtype=np.float32)
        return (0.14 * np.concatenate([tick, gap, tick])).astype(np.float32)
    raise KeyError(f"unknown earcon {name!r}")


def load(name: str, folder: Path | None = None) -> tuple[np.ndarray, int]:
    """A shipped WAV from resources/earcons if there is one, else the generated sound."""
    if folder is None:
        from app.paths import resources_dir

        folder = resources_dir() / "earcons"
    path = folder / f"{name}.wav"
    if path.is_file():
        try:
            import soundfile as sf

            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
            return data.mean(axis=1), int(rate)
        except Exception as exc:
            log.warning("earcon %s unreadable (%s); using the built-in one", path, exc)
    return generate(name), STREAM_RATE


class Earcons:
    """Plays earcons; `start_working()` ticks until `stop_working()`. Disabled means silent."""

    def __init__(self, player: AudioPlayer | None = None, enabled: bool = True, volume: float = 1.0):
        self._player = player
        self.enabled = enabled
        self.volume = volume
        self._cache: dict[str, tuple[np.ndarray, int]] = {}
        self._tick_stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._progress_stop = threading.Event()
        self._progress: threading.Thread | None = None
        self.played: list[str] = []  # names, in order (what a test or the log can check)

    @property
    def player(self) -> AudioPlayer:
        if self._player is None:
            from app.speech.playback import shared_player

            self._player = shared_player()
        return self._player

    def play(self, name: str) -> Clip | None:
        """Starts the earcon and returns at once. Errors are logged, never raised: a missing beep
        must not stop an answer."""
        if not self.enabled:
            return None
        if name not in self._cache:
            self._cache[name] = load(name)
        samples, rate = self._cache[name]
        self.played.append(name)
        try:
            return self.player.play(Clip.from_samples(samples, rate, self.volume), "earcon")
        except Exception as exc:
            log.info("earcon %s not played: %s", name, exc)
            return None

    def start_working(self, interval: float = 1.2) -> None:
        """A soft tick every `interval` seconds until stop_working()."""
        self.stop_working()
        if not self.enabled:
            return
        self._tick_stop = threading.Event()
        stop = self._tick_stop

        def tick() -> None:
            while not stop.wait(interval):
                self.play("working")

        self._ticker = threading.Thread(target=tick, name="sightline-earcon-ticker", daemon=True)
        self._ticker.start()

    def stop_working(self) -> None:
        self._tick_stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
            self._ticker = None

    def start_progress(self, name: str = "loading", interval: float = 4.0, limit: float = 1800.0) -> None:
        """Long background work (loading the model): `name` every `interval` seconds until
        stop_progress(), and never longer than `limit` seconds. Its own thread, so a job's working
        ticks do not end it."""
        self.stop_progress()
        if not self.enabled:
            return
        self._progress_stop = threading.Event()
        stop = self._progress_stop
        ends = time.monotonic() + limit

        def tick() -> None:
            while not stop.wait(interval) and time.monotonic() < ends:
                self.play(name)

        self._progress = threading.Thread(target=tick, name="sightline-earcon-progress", daemon=True)
        self._progress.start()

    def stop_progress(self) -> None:
        self._progress_stop.set()
        if self._progress is not None:
            self._progress.join(timeout=2)
            self._progress = None

    def close(self) -> None:
        self.stop_working()
        self.stop_progress()
