"""JobController: on the GUI thread, between the commands and the inference worker.

- A new job supersedes the running one: its CancelToken is set here, directly, so the backend stops
  within one decoding step; its queued speech is dropped; late chunks tagged with its id are ignored.
- Chunks go to the result window (signals) and, sentence by sentence, to the SpeechManager, so
  speech starts at the first complete sentence.
- Earcons: start when a job is submitted, a soft tick while waiting, done or error at the end.
- Every failure becomes one spoken sentence (priority NOW) and a shown message; nothing raises.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Signal, Slot

from app.core.cancel import CancelToken
from app.core.errors import Cancelled, SightlineError
from app.core.types import ImageInput, JobRequest, Turn
from app.inference.runner import JobResult
from app.jobs.worker import InferenceWorker
from app.speech.manager import AnswerSpeech, Priority, SpeechManager

log = logging.getLogger(__name__)


@dataclass
class Conversation:
    """The last picture and the turns about it, for follow-up questions; reset by a new capture."""

    image: ImageInput | None = None
    turns: list[Turn] = field(default_factory=list)


class JobController(QObject):
    answerStarted = Signal(int, str)  # job id, title
    answerChunk = Signal(int, str)  # job id, text
    answerFinished = Signal(int, object)  # job id, JobResult
    answerFailed = Signal(int, str)  # job id, sentence
    stateChanged = Signal(str, str)  # "idle" | "working" | "error", detail words
    announcement = Signal(str)  # status text shown (it is spoken through the SpeechManager)

    def __init__(self, worker: InferenceWorker, speech: SpeechManager, earcons=None):
        super().__init__()
        self.worker = worker
        self.speech = speech
        self.earcons = earcons
        self.speak_answers = True
        self._token: CancelToken | None = None
        self._job_id: int | None = None
        self._answer: AnswerSpeech | None = None
        self._quiet: Callable[[JobResult], None] | None = None
        self._capture: CancelToken | None = None  # a picture being taken for the next job
        self._got_chunk = False
        self._submitted_at = 0.0
        self.first_speech_latency: float | None = None
        self.last_result: JobResult | None = None
        self.last_answer = ""
        self.conversation = Conversation()
        self.rebind_worker(worker)

    def rebind_worker(self, worker: InferenceWorker) -> None:
        """Listen to `worker` (a new one after the engine settings changed)."""
        self._cancel_current("engine changed")
        self.worker = worker
        # Worker -> GUI thread: these are queued connections (the worker emits from its thread).
        worker.chunk.connect(self._on_chunk)
        worker.finished.connect(self._on_finished)
        worker.started.connect(self._on_started)

    # -- submitting ------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._job_id is not None

    @property
    def current_job_id(self) -> int | None:
        return self._job_id

    def submit(self, request: JobRequest, title: str) -> int:
        """Run `request`, superseding whatever runs now. Returns the job id."""
        self._cancel_current("superseded")
        token = CancelToken()
        self._token = token
        self._job_id = request.job_id
        self._got_chunk = False
        self._submitted_at = time.perf_counter()
        self.first_speech_latency = None
        self._answer = self.speech.answer_stream(request.job_id) if self.speak_answers else None
        if request.image is not None and not request.history:
            self.conversation = Conversation(image=request.image)
        self.conversation.turns.append(Turn("user", request.question or title))
        if self.earcons is not None:
            self.earcons.play("start")
            self.earcons.start_working()
        self.stateChanged.emit("working", title)
        self.answerStarted.emit(request.job_id, title)
        self.worker.submit(request, token)
        return request.job_id

    def begin_capture(self, title: str) -> CancelToken:
        """A slow capture (a camera picture) for the job that follows: from now on it is the work in
        progress, so Stop or any other job cancels it through the token returned."""
        self.stop()
        self._capture = token = CancelToken()
        if self.earcons is not None:
            self.earcons.start_working()
        self.stateChanged.emit("working", title)
        return token

    def submit_quiet(self, request: JobRequest, on_result: Callable[[JobResult], None]) -> int:
        """Run `request` for Sightline itself (a spoken explore command to transcribe): nothing is
        shown or spoken, `on_result(result)` runs on the GUI thread when it ends. Like any job it
        supersedes the running one, and Stop or the next job cancels it (on_result is then not
        called)."""
        self._cancel_current("superseded")
        self._token, self._job_id, self._quiet = CancelToken(), request.job_id, on_result
        if self.earcons is not None:
            self.earcons.start_working()
        self.stateChanged.emit("working", "Listening")
        self.worker.submit(request, self._token)
        return request.job_id

    def stop(self) -> None:
        """Stop speaking and cancel the work in progress, at once."""
        self._cancel_current("stopped")
        self.speech.stop()
        if self.earcons is not None:
            self.earcons.stop_working()
        self.stateChanged.emit("idle", "")

    def report_error(
        self, sentence: str, job_id: int | None = None, priority: Priority = Priority.NOW
    ) -> None:
        """A failure (capture, microphone, backend): spoken and shown. NOW interrupts; after a
        partial answer the error is queued behind it (NORMAL) so the answer is not cut off."""
        log.info("error reported: %s", sentence)
        if self.earcons is not None:
            self.earcons.stop_working()
            self.earcons.play("error")
        self.speech.speak(sentence, priority)
        self.stateChanged.emit("error", sentence)
        self.answerFailed.emit(job_id if job_id is not None else -1, sentence)

    def announce(self, sentence: str, priority: Priority = Priority.NEXT) -> None:
        """Status the user should hear (model ready, download progress)."""
        self.speech.speak(sentence, priority)
        self.announcement.emit(sentence)

    def _cancel_current(self, reason: str) -> None:
        if self._capture is not None:
            self._capture.cancel(reason)
            self._capture = None
        if self._token is not None:
            self._token.cancel(reason)
        if self._job_id is not None:
            self.speech.cancel_job(self._job_id)
        self._token = None
        self._job_id = None
        self._answer = None
        self._quiet = None

    # -- from the worker (queued, so these run on the GUI thread) -------------------------------

    @Slot(int, str)
    def _on_started(self, job_id: int, explanation: str) -> None:
        if job_id == self._job_id:
            log.info("job %s: %s", job_id, explanation)

    @Slot(int, str)
    def _on_chunk(self, job_id: int, text: str) -> None:
        if job_id != self._job_id or self._quiet is not None:
            return  # a late chunk of a superseded job, or of a job nobody hears
        if not self._got_chunk:
            self._got_chunk = True
            if self.earcons is not None:
                self.earcons.stop_working()
        self.answerChunk.emit(job_id, text)
        if self._answer is not None:
            spoken = self._answer.feed(text)
            if spoken and self.first_speech_latency is None:
                self.first_speech_latency = time.perf_counter() - self._submitted_at

    @Slot(int, object)
    def _on_finished(self, job_id: int, result: JobResult) -> None:
        if job_id != self._job_id:
            return
        answer, quiet = self._answer, self._quiet
        self._token = None
        self._job_id = None
        self._answer = None
        self._quiet = None
        if self.earcons is not None:
            self.earcons.stop_working()
        if quiet is not None:
            self.stateChanged.emit("idle", "")
            quiet(result)
            return
        if answer is not None:
            answer.finish()
        self.last_result = result
        if result.text:
            self.last_answer = result.text
            self.conversation.turns.append(Turn("assistant", result.text))
        error = result.error
        if error is None:
            if not result.text.strip():
                error = SightlineError("The answer was empty. Try again, or choose more detail in Settings.")
            else:
                if self.earcons is not None:
                    self.earcons.play("done")
                self.stateChanged.emit("idle", "")
                self.answerFinished.emit(job_id, result)
                return
        if isinstance(error, Cancelled):
            self.stateChanged.emit("idle", "")
            self.answerFinished.emit(job_id, result)
            return
        # Partial text (if any) stays shown and spoken; the error follows it.
        self.answerFinished.emit(job_id, result)
        self.report_error(error.sentence, job_id, Priority.NORMAL if result.text else Priority.NOW)
