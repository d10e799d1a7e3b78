"""Watching a region or window from the app: one watch at a time, new text spoken as it appears.

The watch itself (app/capture/watch.py) runs on its own thread and recognises text with a
text-recognition engine of its own (shared with explore mode, not the inference worker's, so a
watch never waits behind a model answer and a model answer never waits behind a watch). What it
finds reaches the GUI thread through queued signals; the speech manager says it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from app.capture.watch import INTERVAL, Rect, Watcher

log = logging.getLogger(__name__)

_ocr_lock = threading.Lock()
_ocr = None


def shared_ocr_backend(settings=None):
    """The text-recognition engine for watching and exploring (loaded on first use, off the GUI
    thread: recognise() loads it)."""
    global _ocr
    with _ocr_lock:
        if _ocr is None:
            from app.inference.ocr import OcrBackend

            _ocr = OcrBackend(settings)
        return _ocr


def row_recogniser(backend) -> Callable:
    """Lines as (text, x0, y0, x1, y1), in reading order, with the pieces of one row joined
    ("Progress" and "45%" found apart are one line)."""
    from app.inference.ocr import layout

    def recognise(rgb):
        out = []
        for block in layout(backend.recognise(rgb)):
            for row in block:
                out.append(
                    (
                        " ".join(ln.text.strip() for ln in row),
                        min(ln.x0 for ln in row),
                        min(ln.y0 for ln in row),
                        max(ln.x1 for ln in row),
                        max(ln.y1 for ln in row),
                    )
                )
        return out

    return recognise


class _Relay(QObject):
    """Watch thread -> GUI thread: emitted on the watch thread, received through queued
    connections (the receivers live on the GUI thread)."""

    text = Signal(object, str)  # watcher, text
    failed = Signal(object, str)  # watcher, sentence
    ready = Signal(object)  # watcher


class WatchController(QObject):
    """Starts, replaces and stops the watch. GUI thread only."""

    newText = Signal(str)
    started = Signal(str)  # what is watched, e.g. "the window"
    stopped = Signal()

    def __init__(
        self,
        say: Callable[[str], None],
        *,
        own_windows: Callable[[], list[Rect]] | None = None,
        recogniser: Callable | None = None,
        interval: float = INTERVAL,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._say = say
        self._own_windows_now = own_windows or (lambda: [])
        self._recogniser = recogniser
        self.interval = interval
        self._watcher: Watcher | None = None
        self._what = ""
        self._relay = _Relay(self)
        self._relay.text.connect(self._on_text)
        self._relay.failed.connect(self._on_failed)
        self._relay.ready.connect(self._on_ready)
        # Sightline's own windows may only be listed on the GUI thread, so the list the watch thread
        # reads is refreshed here once a second; the watch thread reads the last one (a plain
        # reference swap, safe to read from another thread).
        self._own_rects: list[Rect] = []
        self._own_timer = QTimer(self)
        self._own_timer.setInterval(1000)
        self._own_timer.timeout.connect(self._refresh_own_windows)

    @property
    def active(self) -> bool:
        return self._watcher is not None

    @property
    def watcher(self) -> Watcher | None:
        return self._watcher

    def start(self, rect: Rect, what: str = "the region") -> None:
        """Watch `rect` (physical screen pixels); a watch already running is replaced."""
        if self._watcher is not None:
            self._end(announce=False)
        recognise = self._recogniser or row_recogniser(shared_ocr_backend())
        self._refresh_own_windows()
        relay = self._relay
        watcher: Watcher

        def on_text(text: str) -> None:  # watch thread: hand over through the queued signal
            relay.text.emit(watcher, text)

        def on_error(sentence: str) -> None:  # watch thread
            relay.failed.emit(watcher, sentence)

        def on_ready() -> None:  # watch thread
            relay.ready.emit(watcher)

        watcher = Watcher(
            rect,
            recognise,
            on_text,
            on_error,
            own_windows=lambda: self._own_rects,
            interval=self.interval,
            on_ready=on_ready,
        )
        self._watcher, self._what = watcher, what
        self._own_timer.start()
        watcher.start()
        log.info("watching %s at %s", what, rect)

    def stop(self) -> bool:
        """End the watch, saying so; False when none was running."""
        if self._watcher is None:
            return False
        self._end(announce=True)
        return True

    def shutdown(self) -> None:
        if self._watcher is not None:
            self._end(announce=False)

    # -- internals -------------------------------------------------------------------------------

    def _end(self, announce: bool) -> None:
        watcher, self._watcher = self._watcher, None
        self._own_timer.stop()
        if watcher is not None:
            watcher.stop()
        if announce:
            self._say("Stopped watching.")
        self.stopped.emit()

    def _refresh_own_windows(self) -> None:
        try:
            self._own_rects = list(self._own_windows_now())
        except Exception:  # noqa: BLE001 - a failed listing must not end the watch
            log.debug("own windows could not be listed", exc_info=True)

    def _on_ready(self, watcher) -> None:
        if watcher is self._watcher:
            self._say(f"Watching {self._what}. I will say new text as it appears.")
            self.started.emit(self._what)

    def _on_text(self, watcher, text: str) -> None:
        if watcher is self._watcher:  # late text of a replaced watch is dropped
            self.newText.emit(text)
            self._say(text)

    def _on_failed(self, watcher, sentence: str) -> None:
        if watcher is self._watcher:
            self._watcher = None
            self._own_timer.stop()
            self._say(sentence)
            self.stopped.emit()
