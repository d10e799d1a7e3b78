"""Long work that is not inference (a camera picture, the model download) off the GUI thread.

`TaskRunner.run(work, on_done, on_error)` runs `work()` on a thread of its own and calls
`on_done(result)` or `on_error(exc)` back on the GUI thread; `post(fn, *args)` lets the work hand
anything else (progress) to the GUI thread on the way. The GUI thread never waits for the work: a
key pressed meanwhile (Stop) is handled at once, and Stop reaches the work through the CancelToken
the caller gives it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from app.core.errors import SightlineError

log = logging.getLogger(__name__)


def failure_sentence(exc: BaseException, what: str) -> str:
    """What the user hears when a task failed: its own sentence, or a plain one naming `what`
    (the traceback goes to the log, never to the user)."""
    if isinstance(exc, SightlineError):
        return exc.sentence
    log.error("%s failed", what, exc_info=exc)
    return f"{what} failed ({type(exc).__name__}). The details are in the log."


class TaskRunner(QObject):
    """Create it on the GUI thread: its slot, and so every callback, runs there."""

    _call = Signal(object, object)  # fn, args: emitted from any thread, queued to the GUI thread

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._threads: set[threading.Thread] = set()
        self._call.connect(self._deliver)

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call `fn(*args)` on the GUI thread (safe to call from any thread)."""
        self._call.emit(fn, args)

    def run(
        self,
        work: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        *,
        name: str = "sightline-task",
    ) -> threading.Thread:
        """Start `work` on its own thread; its result or exception comes back on the GUI thread."""

        def body() -> None:  # the task's thread: only posts (queued) to the GUI thread
            try:
                result = work()
            except BaseException as exc:  # noqa: BLE001 - every failure is handed to on_error
                self.post(on_error, exc)
            else:
                self.post(on_done, result)
            finally:
                self._threads.discard(thread)

        thread = threading.Thread(target=body, name=name, daemon=True)
        self._threads.add(thread)
        thread.start()
        return thread

    @property
    def running(self) -> int:
        return sum(1 for t in list(self._threads) if t.is_alive())

    @Slot(object, object)
    def _deliver(self, fn: Callable[..., Any], args: tuple) -> None:
        try:
            fn(*args)
        except Exception:  # a callback's failure must not take the event loop down
            log.exception("task callback %r failed", fn)
