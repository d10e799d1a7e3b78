"""A hotkey backend for tests: key events fed by hand through the app's own CommandLayer, with no
keyboard hook at all, so the bridge's signals can be checked without a display."""

from __future__ import annotations

import time
from collections.abc import Callable

from app.commands.hotkeys import EventCallback, HotkeyBackend
from app.commands.keymap import Bindings, CommandLayer, KeyChord


class ManualHotkeyBackend(HotkeyBackend):
    """Key events fed by hand through the same CommandLayer; no keyboard hook at all."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._layer: CommandLayer | None = None
        self._on_event: EventCallback | None = None

    def start(self, bindings: Bindings, on_event: EventCallback) -> None:
        self._layer = CommandLayer(bindings, self._clock)
        self._on_event = on_event

    def stop(self) -> None:
        self._layer = None
        self._on_event = None

    @property
    def running(self) -> bool:
        return self._layer is not None

    def press(self, chord: KeyChord) -> None:
        if self._layer is not None and self._on_event is not None:
            event = self._layer.press(chord)
            if event is not None:
                self._on_event(event)

    def release(self, key: str) -> None:
        if self._layer is not None:
            self._layer.release(key)

    def poll(self) -> None:
        if self._layer is not None and self._on_event is not None:
            for event in self._layer.poll():
                self._on_event(event)
