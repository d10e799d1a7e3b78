"""Push-to-talk: a held voice key records the user's question.

The key press plays the start tone and opens the microphone at once, while the tone plays, so a
microphone that is slow to open (a busy machine, a Bluetooth headset) is ready when the tone ends;
what it hears before then (the tone itself, on speakers) is dropped. "Speak after the tone": the
recording counts from the end of the tone. Letting go of the key, or pressing it again, ends the
recording and hands the audio over through `heard`; anything that goes wrong becomes one sentence
through `failed`. GUI thread only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QObject, QTimer, Signal

from app.core.errors import SightlineError
from app.core.types import AudioInput

log = logging.getLogger(__name__)

HEARD_NOTHING = "I heard nothing. Hold the key while you speak, after the tone."


class Recorder(Protocol):
    """What push-to-talk needs of a microphone (app.capture.microphone.Recorder)."""

    @property
    def is_recording(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self, skip_until: float | None = None) -> AudioInput: ...

    def abort(self) -> None: ...


class PushToTalk(QObject):
    heard = Signal(str, object, object)  # command id, AudioInput, the ImageInput taken with it or None
    failed = Signal(str)  # the sentence the user hears
    listening = Signal(bool)  # at the end of the tone: True when the microphone is open
    note = Signal(str)  # something the user should hear that is not a failure
    _limit_reached = Signal()  # from the recorder's thread, queued to the GUI thread

    def __init__(
        self, make_recorder: Callable[[Callable[[], None]], Recorder], earcons, parent: QObject | None = None
    ):
        """`make_recorder(on_limit)`: a new recorder that calls `on_limit` (from any thread) when
        it reaches its longest recording."""
        super().__init__(parent)
        self._make_recorder = make_recorder
        self._limit_reached.connect(self._on_limit)
        self._earcons = earcons
        self._recorder: Recorder | None = None
        self._command: str | None = None
        self._image = None
        self._tone_end = 0.0

    @property
    def command(self) -> str | None:
        """The voice command being recorded, or None."""
        return self._command

    def press(self, command_id: str, image=None) -> None:
        """The voice key went down: a second press ends the recording, like letting go."""
        if self._command is not None:
            self.finish()
            return
        self._command, self._image = command_id, image
        recorder = self._recorder = self._make_recorder(self._limit_reached.emit)
        clip = self._earcons.play("start")
        self._tone_end = time.monotonic() + (clip.duration + 0.04 if clip is not None else 0.0)
        try:
            recorder.start()  # opens while the tone plays
        except SightlineError as exc:
            self._recorder = None
            self._command = self._image = None
            self.listening.emit(False)
            self.failed.emit(exc.sentence)
            return
        wait_ms = max(0, round((self._tone_end - time.monotonic()) * 1000))
        QTimer.singleShot(wait_ms, lambda: self._tone_ended(recorder))

    def release(self, command_id: str) -> None:
        """A key was let go: ends the recording if it is the key that started it."""
        if command_id == self._command:
            self.finish()

    def abort(self) -> None:
        """Stop: the recording is dropped, nothing is sent."""
        recorder, self._recorder = self._recorder, None
        self._command = self._image = None
        if recorder is not None:
            recorder.abort()

    def _on_limit(self) -> None:
        """The longest recording was reached while the key is still held: send what was said."""
        recorder = self._recorder
        if recorder is not None and self._command is not None and not recorder.is_recording:
            self.note.emit("That is as long as a question can be. Sending it.")
            self.finish()

    def _tone_ended(self, recorder: Recorder) -> None:
        if recorder is not self._recorder or self._command is None:
            return
        early_ms = round((self._tone_end - time.monotonic()) * 1000)
        if early_ms > 0:  # a coarse timer may fire a little early: "listening" only after the tone
            QTimer.singleShot(early_ms, lambda: self._tone_ended(recorder))
            return
        self.listening.emit(recorder.is_recording)

    def finish(self) -> None:
        recorder, self._recorder = self._recorder, None
        command, image = self._command, self._image
        self._command = self._image = None
        # Let go before the tone ended: the user has not spoken yet. A recording that ended by
        # itself (the length limit, a microphone unplugged) is still stopped: stop() says which.
        if recorder is None or command is None or time.monotonic() < self._tone_end:
            if recorder is not None:
                recorder.abort()
            self.failed.emit(HEARD_NOTHING)
            return
        try:
            audio = recorder.stop(skip_until=self._tone_end)
        except SightlineError as exc:
            self.failed.emit(exc.sentence)
            return
        self.heard.emit(command, audio, image)
