"""CancelToken: set from any thread (usually the GUI thread), read by the worker each step."""

from __future__ import annotations

import threading
from collections.abc import Callable

from app.core.errors import Cancelled


class CancelToken:
    __slots__ = ("_event", "reason", "_lock", "_callbacks")

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""
        # Re-entrant: a signal handler on the main thread may cancel while that thread is in here.
        self._lock = threading.RLock()
        self._callbacks: list[Callable[[], None]] = []

    def cancel(self, reason: str = "") -> None:
        self.reason = reason
        with self._lock:
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:  # on the cancelling thread: each must be quick and thread-safe
            try:
                callback()
            except Exception:  # noqa: BLE001 - one broken callback must not stop the cancel
                pass

    def add_callback(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run `callback` once on cancel, on the cancelling thread (at once if already cancelled).

        For work that blocks outside Python's reach (a socket read): the callback shuts it.
        Returns a function that unregisters it.
        """
        with self._lock:
            self._callbacks.append(callback)
            # Cancelled before this call (or by a signal handler between the two lines above, which
            # already took and ran the list): run it here, unless that cancel ran it.
            late = self._event.is_set() and callback in self._callbacks
            if late:
                self._callbacks.remove(callback)
        if late:
            callback()

        def remove() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return remove

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to `timeout` seconds, waking at once on cancel. True if cancelled."""
        return self._event.wait(timeout)

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()

    def __repr__(self) -> str:
        return f"CancelToken(cancelled={self.cancelled})"
