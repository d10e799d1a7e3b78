"""What every speech driver offers, and the shared machinery of drivers that synthesise to a buffer.

A driver speaks one utterance at a time on the SpeechManager's worker thread: `speak()` blocks
until the utterance ends or `cancel` is set and returns True only if it was heard to the end.
`interrupt()` may be called from any thread and must silence the driver at once. A driver that
fails raises SpeechDriverError; the manager then hands the utterance to the next driver.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from app.core.errors import SightlineError

log = logging.getLogger("app.speech")

# How long synthesis may take before the first samples of an utterance must exist.
DEFAULT_SYNTH_TIMEOUT = 6.0


class SpeechDriverError(SightlineError):
    """A speech engine that is missing, broken or hanging. The manager falls through to the next."""

    def __init__(self, sentence: str = "The speech engine stopped working.", *, detail: str | None = None):
        super().__init__(sentence, detail=detail)


@dataclass(frozen=True)
class VoiceSettings:
    rate_wpm: int = 180  # words per minute
    voice: str = ""  # a driver's voice id; empty means its default
    volume: float = 1.0  # 0.0 .. 1.0

    def clamped(self) -> VoiceSettings:
        return VoiceSettings(
            rate_wpm=int(min(max(self.rate_wpm, 60), 500)),
            voice=self.voice,
            volume=float(min(max(self.volume, 0.0), 1.0)),
        )


@dataclass(frozen=True)
class Voice:
    id: str
    name: str
    language: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "language": self.language}


class SpeechDriver(ABC):
    name: str = "driver"
    label: str = "Speech driver"

    @abstractmethod
    def check(self) -> tuple[bool, str]:
        """Cheap: can this driver speak here? (ok, reason in plain words)."""

    def list_voices(self) -> list[Voice]:
        return []

    @abstractmethod
    def speak(self, text: str, settings: VoiceSettings, cancel: threading.Event) -> bool:
        """Speaks `text`; blocks until it ends or `cancel` is set. True if heard to the end."""

    @abstractmethod
    def interrupt(self) -> None:
        """Silence now. Any thread."""

    def synthesize(self, text: str, settings: VoiceSettings) -> tuple[np.ndarray, int]:
        """The whole utterance as mono float32 samples and their rate (for `speak --out`)."""
        raise SpeechDriverError(
            f"The {self.label} cannot save speech to a file.", detail=f"{self.name} has no synthesis"
        )

    def close(self) -> None:  # noqa: B027 (most drivers hold nothing)
        """Releases threads and processes. Idempotent."""


class BufferDriver(SpeechDriver):
    """A driver that synthesises into a Clip, played through the shared AudioPlayer.

    Stop is the player's job: it drops the clip on its next audio block, whatever the engine is
    doing. A watchdog bounds synthesis: no samples within `synth_timeout` means the engine hangs.
    """

    def __init__(self, player=None, synth_timeout: float = DEFAULT_SYNTH_TIMEOUT) -> None:
        self._player = player
        self.synth_timeout = synth_timeout
        self._broken: str | None = None
        self._synthesizing = None  # the clip speak() waits on for its first samples

    @property
    def player(self):
        if self._player is None:
            from app.speech.playback import shared_player

            self._player = shared_player()
        return self._player

    @abstractmethod
    def engine_check(self) -> tuple[bool, str]:
        """Can the engine synthesise here (audio output not needed)?"""

    def check(self) -> tuple[bool, str]:
        ok, reason = self.engine_check()
        if not ok:
            return ok, reason
        audio_ok, audio_reason = self.player.check()
        if not audio_ok:
            return False, audio_reason
        return True, reason

    @abstractmethod
    def start_synthesis(self, text: str, settings: VoiceSettings, cancel: threading.Event):
        """Returns a playback Clip that is (or will be) filled with the utterance."""

    def mark_broken(self, reason: str) -> None:
        self._broken = reason
        log.warning("speech driver %s disabled: %s", self.name, reason)

    def speak(self, text: str, settings: VoiceSettings, cancel: threading.Event) -> bool:
        if self._broken:
            raise SpeechDriverError(detail=f"{self.name}: {self._broken}")
        clip = self.start_synthesis(text, settings.clamped(), cancel)
        # The watchdog: the first samples must exist within synth_timeout. The clip wakes this
        # thread when they arrive, when synthesis ends, and when interrupt() is called.
        self._synthesizing = clip
        try:
            has_audio = clip.wait_for_audio(self.synth_timeout, cancel)
        finally:
            self._synthesizing = None
        if not has_audio:
            self.abandon(clip)
            if cancel.is_set():
                return False
            reason = f"no audio after {self.synth_timeout:.1f} s of synthesis"
            self.mark_broken(reason)
            raise SpeechDriverError(detail=f"{self.name}: {reason}")
        if getattr(clip, "error", None):
            raise SpeechDriverError(detail=f"{self.name}: {clip.error}")
        if clip.frames_queued == 0:
            return not cancel.is_set()  # nothing to say (e.g. only punctuation)
        if cancel.is_set():
            self.abandon(clip)
            return False
        self.player.play(clip, "speech")
        finished = self.player.wait(clip, cancel, timeout=self.synth_timeout + 600.0)
        if not finished:
            # Cancelled while playing (or a stop raced the start): make sure the clip is cut.
            self.player.stop_speech()
            self.abandon(clip)
        return finished and not cancel.is_set()

    def abandon(self, clip) -> None:
        """The utterance is no longer wanted: stop producing it. Default: nothing to stop."""

    def interrupt(self) -> None:
        clip = self._synthesizing
        if clip is not None:
            clip.wake()  # speak() is waiting for its first samples: it sees the cancel now
        if self._player is not None:
            self._player.stop_speech()
