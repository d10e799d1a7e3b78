"""The silent driver: speaks nothing, records everything. The last fallback and the test spy.

With `hold=True` every utterance stays "speaking" until `release()` (or an interrupt), so tests can
check ordering and interruption without timing. With `seconds_per_char` it takes as long as a
voice would, roughly.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from app.speech.drivers.base import SpeechDriver, Voice, VoiceSettings


@dataclass(frozen=True)
class Spoken:
    text: str
    settings: VoiceSettings
    completed: bool


class SilentDriver(SpeechDriver):
    name = "silent"
    label = "silent (text only)"

    def __init__(self, hold: bool = False, seconds_per_char: float = 0.0) -> None:
        self.hold = hold
        self.seconds_per_char = seconds_per_char
        self._cond = threading.Condition()
        self.started: list[str] = []  # every utterance begun, in order
        self.log: list[Spoken] = []  # every utterance ended, with how it ended
        self._releases = 0
        self._interrupts = 0

    @property
    def spoken(self) -> list[str]:
        """Texts heard to the end."""
        with self._cond:
            return [s.text for s in self.log if s.completed]

    @property
    def interrupted(self) -> list[str]:
        with self._cond:
            return [s.text for s in self.log if not s.completed]

    def check(self) -> tuple[bool, str]:
        return True, "always available"

    def list_voices(self) -> list[Voice]:
        return [Voice(id="silent", name="Silent", language="")]

    def speak(self, text: str, settings: VoiceSettings, cancel: threading.Event) -> bool:
        with self._cond:
            self.started.append(text)
            interrupts = self._interrupts
            releases = self._releases
            self._cond.notify_all()
        deadline = time.monotonic() + self.seconds_per_char * len(text)
        completed = False
        with self._cond:
            while True:
                if cancel.is_set() or self._interrupts != interrupts:
                    break
                if self.hold:
                    if self._releases != releases:
                        completed = True
                        break
                    self._cond.wait(0.05)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    completed = True
                    break
                self._cond.wait(min(remaining, 0.05))
            self.log.append(Spoken(text, settings, completed))
            self._cond.notify_all()
        return completed

    def interrupt(self) -> None:
        with self._cond:
            self._interrupts += 1
            self._cond.notify_all()

    def release(self) -> None:
        """With hold=True: the utterance being spoken now ends normally."""
        with self._cond:
            self._releases += 1
            self._cond.notify_all()

    def wait_started(self, count: int, timeout: float = 5.0) -> bool:
        """True once `count` utterances have begun."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.started) >= count, timeout)

    def wait_ended(self, count: int, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.log) >= count, timeout)
