"""InferenceWorker: the one QThread that owns the backends and runs one job at a time.

The GUI thread talks to it only through queued signals (submit/preload below), and it answers
only through signals, each tagged with the job id so the controller can drop late chunks of a
job that was superseded. Cancelling is done by setting the job's CancelToken directly from the GUI
thread: the backend sees it within one decoding step. Jobs still queued behind the running one
find their token already set and are dropped without running. The thread is never terminated;
stop() cancels, quits its event loop and joins it, for a bounded time.

A thread that does not stop in that time is inside a library call that will not return early (a
model load in from_pretrained, a socket read, a long CPU kernel). It is left to finish on its own:
its QThread is kept referenced here so Qt never destroys a running thread (which aborts the
process), and when the interpreter exits the process leaves with os._exit after flushing the logs
and standard streams, before Python's teardown could destroy it.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.core.cancel import CancelToken
from app.core.errors import Cancelled, EmptyAnswerError, SightlineError
from app.core.text import safe_text
from app.core.types import SAMPLE_RATE, AudioInput, JobRequest, ModelPhase, ModelState, Task
from app.inference.registry import BackendRegistry
from app.inference.runner import JobResult, run_request

log = logging.getLogger(__name__)

# Threads that would not stop in time, with the objects living in them: referenced until the end.
_ABANDONED: list[tuple[QThread, QObject]] = []
_exit_state: dict = {"code": None, "registered": False}
_exit_lock = threading.Lock()


def set_exit_code(code: int) -> None:
    """The code the process ends with if it leaves without Python's teardown."""
    _exit_state["code"] = int(code)


def exit_without_teardown(code: int | None = None) -> None:
    """Flush what the user and the log must keep, then end the process at once with `code`, else
    the code set by set_exit_code, else 1 (a process that did not say how it ended, such as a test
    run that left a thread behind, must not look successful)."""
    if code is None:
        code = _exit_state["code"] if _exit_state["code"] is not None else 1
    if _ABANDONED:
        log.info("leaving with %d inference thread(s) still inside a library call", len(_ABANDONED))
    log.info("exit %d", code)
    logging.shutdown()  # flushes and closes the log file
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed pipe must not stop the exit
            pass
    os._exit(code)


def skip_teardown_at_exit() -> None:
    """When the interpreter exits, end the process with exit_without_teardown.

    atexit runs after the non-daemon threads were joined and before the interpreter tears down
    its modules. That teardown would drop the last reference to a QThread still running (Qt then
    aborts: "Destroyed while thread is still running"), and with torch and transformers loaded it
    takes seconds. Only the tray app asks for this, once its own shutdown has completed."""
    with _exit_lock:
        if not _exit_state["registered"]:
            _exit_state["registered"] = True
            atexit.register(exit_without_teardown)


def _abandon(thread: QThread, obj: QObject) -> None:
    _ABANDONED.append((thread, obj))
    skip_teardown_at_exit()


class _WorkerObject(QObject):
    """Lives in the worker thread; its slots run there."""

    started = Signal(int, str)  # job id, explanation (who answers and why)
    chunk = Signal(int, str)  # job id, text
    finished = Signal(int, object)  # job id, JobResult
    state = Signal(object)  # ModelState: the backend that answers next, loading or ready
    loadFailed = Signal(str)

    def __init__(self, registry: BackendRegistry):
        super().__init__()
        self.registry = registry
        self._published: ModelState | None = None

    def _publish(self, phase: ModelPhase, backend) -> None:
        state = ModelState(phase, backend.name, backend.display_name, self._listens())
        if state != self._published:
            self._published = state
            self.state.emit(state)

    def _listens(self) -> bool:
        """Would a spoken question find a backend that hears it? The registry's own choice, made
        with a short silent recording (checks only: nothing loads)."""
        import numpy as np

        probe = JobRequest(
            Task.ASK_SPOKEN, audio=AudioInput(np.zeros(SAMPLE_RATE // 10, np.float32), "probe")
        )
        try:
            return self.registry.choose(probe).backend.capabilities.audio
        except SightlineError:
            return False

    @Slot(object, object)
    def run_job(self, request: JobRequest, cancel: CancelToken) -> None:
        if cancel.cancelled:  # superseded while it waited in the queue: drop it
            self.finished.emit(request.job_id, JobResult(job_id=request.job_id, error=Cancelled()))
            return
        result = run_request(
            self.registry,
            request,
            cancel,
            on_chunk=lambda text: self.chunk.emit(request.job_id, text),
            on_status=lambda text: self.started.emit(request.job_id, text),
            # A model that cannot load hands over to the next backend; the user hears why, once.
            on_fallback=self.loadFailed.emit,
        )
        if result.error is None and not safe_text(result.text).strip():
            # Only special tokens, or nothing: an empty success would be silence for the user.
            result.error = EmptyAnswerError(detail=f"{result.tokens_out} tokens, no text")
        if result.backend and (self._published is None or result.backend != self._published.backend):
            # Another backend answered (the chosen one failed to load): say who answers from now on.
            self._publish(ModelPhase.READY, self.registry.get(result.backend))
        self.finished.emit(request.job_id, result)

    @Slot(object)
    def preload(self, cancel: CancelToken) -> None:
        """Load the preferred backend in the background after start. One that cannot load is
        skipped from now on, as during a job (app.inference.runner), and the user hears why and
        who answers instead."""
        try:
            choice = self.registry.choose()
            while not choice.backend.loaded:
                backend = choice.backend
                self._publish(ModelPhase.LOADING, backend)
                try:
                    backend.load(cancel)
                except Cancelled:
                    raise
                except SightlineError as exc:
                    if cancel.cancelled:
                        raise
                    log.info("preload: %s failed to load: %s", backend.name, exc.detail)
                    self.registry.mark_failed(backend.name, exc)
                    choice = self.registry.choose()
                    self.loadFailed.emit(f"{exc.sentence} Using {choice.backend.display_name} instead.")
            self._publish(ModelPhase.READY, choice.backend)
            for name, reason in choice.skipped:
                log.info("preload skipped %s: %s", name, reason)
        except Cancelled:
            log.info("preload cancelled")
        except SightlineError as exc:
            self.loadFailed.emit(exc.sentence)
        except Exception as exc:
            log.exception("preload failed")
            self.loadFailed.emit(
                f"The model could not be loaded ({type(exc).__name__}). The details are in the log."
            )

    @Slot()
    def unload(self) -> None:
        self.registry.unload_all()


class InferenceWorker(QObject):
    """Owned by the GUI thread; wraps the thread and the object living in it."""

    _submit = Signal(object, object)
    _preload = Signal(object)
    _unload = Signal()

    def __init__(self, registry: BackendRegistry, parent: QObject | None = None):
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("sightline-inference")
        self._obj = _WorkerObject(registry)
        self._obj.moveToThread(self._thread)
        # Queued connections: the slots run in the worker thread, in submission order.
        self._submit.connect(self._obj.run_job)
        self._preload.connect(self._obj.preload)
        self._unload.connect(self._obj.unload)
        self.started = self._obj.started
        self.chunk = self._obj.chunk
        self.finished = self._obj.finished
        self.state = self._obj.state
        self.loadFailed = self._obj.loadFailed
        self._tokens: list[CancelToken] = []
        self._thread.start()

    @property
    def registry(self) -> BackendRegistry:
        return self._obj.registry

    def submit(self, request: JobRequest, cancel: CancelToken) -> None:
        """Queue `request`; the registry's settings say which backend answers it."""
        self._tokens = [t for t in self._tokens if not t.cancelled] + [cancel]
        self._submit.emit(request, cancel)

    def preload(self) -> CancelToken:
        token = CancelToken()
        self._tokens.append(token)
        self._preload.emit(token)
        return token

    def cancel_all(self, reason: str = "quit") -> None:
        """Set every token at once: the running job or load stops at its next check."""
        for token in self._tokens:
            token.cancel(reason)

    def stop(self, timeout_ms: int = 1_000, unload: bool = True) -> bool:
        """Cancel everything, free the model (unless `unload` is False: the process is about to
        end, which frees it faster than a garbage collection), quit the thread and join it
        within `timeout_ms`.

        False when the thread is still inside a call that does not look at its token: it is then
        left to finish on its own (see the module notes), never terminated, never destroyed."""
        self.cancel_all("quit")
        if self._thread.isRunning():
            if unload:
                self._unload.emit()
            self._thread.quit()
            joined = self._thread.wait(max(0, int(timeout_ms)))
            if not joined:
                log.warning("the inference thread did not stop within %d ms; left to finish", timeout_ms)
                _abandon(self._thread, self._obj)
            return joined
        return True
