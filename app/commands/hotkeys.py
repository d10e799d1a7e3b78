"""Global keys: a backend that listens to the whole keyboard, and a Qt bridge to the GUI thread.

HotkeyBackend is the interface; PynputBackend listens with pynput (X11, Windows, macOS);
ManualHotkeyBackend is driven by hand (tests, and desktops with no global keys, where the tray menu
remains). The prefix layer itself (app.commands.keymap.CommandLayer) is Qt-free; this module adds
threads and the hand-over to Qt.

Threads: pynput calls us on its own listener thread; a small ticker thread handles the prefix
timeout and push-to-talk releases. Both only ever hand events to the GUI thread through the
HotkeyBridge's Qt signals (queued across threads). Nothing here touches a widget.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from app.commands.keymap import Bindings, CommandLayer, KeyChord, LayerEvent
from app.core.errors import SightlineError

log = logging.getLogger(__name__)

EventCallback = Callable[[LayerEvent], None]


class HotkeysUnavailableError(SightlineError):
    """Global keys cannot work on this desktop."""


class HotkeyBackend:
    """Listens for the prefix, command keys and direct chords, and reports LayerEvents.

    `start` returns once listening (or raises HotkeysUnavailableError); `on_event` is then called on
    the backend's own thread. `stop` returns once no more calls will come.
    """

    def start(self, bindings: Bindings, on_event: EventCallback) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        raise NotImplementedError


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


# --- pynput ---------------------------------------------------------------------------------------

_SHIFTED_DIGITS = dict(zip(")!@#$%^&*(", "0123456789", strict=True))


def _pynput_modifier(key) -> str | None:
    name = getattr(key, "name", None)  # pynput Key members have a name; KeyCodes do not
    if name is None:
        return None
    if name in ("ctrl", "ctrl_l", "ctrl_r"):
        return "ctrl"
    if name in ("alt", "alt_l", "alt_r"):
        return "alt"
    if name == "alt_gr":
        return "altgr"  # AltGr types characters; never part of a Sightline chord
    if name in ("shift", "shift_l", "shift_r"):
        return "shift"
    if name in ("cmd", "cmd_l", "cmd_r"):
        return "super"
    return None


def _pynput_key_name(key) -> str | None:
    """The canonical key name (as in app.commands.keymap) of a pynput key, or None if unknown."""
    name = getattr(key, "name", None)
    if name is not None:
        return {"esc": "escape"}.get(name, name)
    char = getattr(key, "char", None)
    if char:
        if char == " ":
            return "space"
        if len(char) == 1 and ord(char) < 32:  # Ctrl+letter arrives as a control character on Windows
            return chr(ord(char) + 96)
        char = char.lower()
        return _SHIFTED_DIGITS.get(char, char)
    vk = getattr(key, "vk", None)
    if vk is None:
        return None
    if sys.platform == "win32" and (0x41 <= vk <= 0x5A or 0x30 <= vk <= 0x39):
        return chr(vk).lower()
    if 0x20 < vk < 0x7F:  # X11 keysyms of printable ASCII are the characters themselves
        return chr(vk).lower()
    return None


def _stop_listener(listener) -> None:
    """Stop a pynput listener and wait for its thread.

    On X11, pynput's stop() sends the RECORD disable request on the connection its thread is blocked
    reading, so the thread lingers until the next key press (and keeps a grab, if it holds one). The
    same request on its control connection ends it at once.
    """
    listener.stop()
    if sys.platform.startswith("linux"):
        control, context = getattr(listener, "_display_stop", None), getattr(listener, "_context", None)
        if control is not None and context is not None:
            try:
                control.record_disable_context(context)
                control.flush()
            except Exception:  # the thread may have closed the connection already: it is ending anyway
                pass
    if listener is not threading.current_thread():
        listener.join(2.0)
        if listener.is_alive():
            log.warning("keyboard listener did not stop within 2 s; it ends with the next key press")


class PynputBackend(HotkeyBackend):
    """Global keys through pynput's keyboard Listener.

    `swallow_command_key`: on X11, while the prefix waits for its command key, the keyboard is grabbed
    so that key does not also reach the application in front (typing a stray "s" into a document).
    The grab lasts at most the prefix timeout and is always released.
    """

    def __init__(self, swallow_command_key: bool = True):
        self._swallow = swallow_command_key
        self._lock = threading.Lock()
        self._layer: CommandLayer | None = None
        self._on_event: EventCallback | None = None
        self._listener = None
        self._grab = None  # a suppressing Listener while armed (X11)
        self._held: set[str] = set()
        self._ticker: threading.Thread | None = None
        self._wake = threading.Condition(self._lock)
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self, bindings: Bindings, on_event: EventCallback) -> None:
        if self._listener is not None:
            self.stop()
        if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
            raise HotkeysUnavailableError(
                "Global keys need an X11 or XWayland display; use the tray menu instead.",
                detail="DISPLAY is not set",
            )
        try:
            from pynput import keyboard
        except Exception as exc:  # pynput raises ImportError with its platform diagnosis
            raise HotkeysUnavailableError(
                "Global keys are not available on this desktop; use the tray menu instead.", detail=str(exc)
            ) from exc
        self._keyboard = keyboard
        with self._lock:
            self._layer = CommandLayer(bindings)
            self._on_event = on_event
            self._held.clear()
            self._stopping = False
        listener = keyboard.Listener(
            on_press=self._on_press, on_release=self._on_release, **self._platform_args()
        )
        listener.start()
        listener.wait()
        if not listener.running:
            raise HotkeysUnavailableError("Global keys could not be started; use the tray menu instead.")
        self._listener = listener
        self._ticker = threading.Thread(target=self._tick, name="sightline-hotkey-ticker", daemon=True)
        self._ticker.start()
        if os.environ.get("XDG_SESSION_TYPE") == "wayland":
            log.warning("Wayland session: global keys reach Sightline only while an X11 window has focus")

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
        if listener is not None:
            _stop_listener(listener)
        self._release_grab()
        ticker, self._ticker = self._ticker, None
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(2.0)
        with self._lock:
            if self._layer is not None and self._on_event is not None:
                for event in self._layer.reset():
                    self._on_event(event)
            self._layer = None
            self._on_event = None

    def _platform_args(self) -> dict:
        if sys.platform == "win32":
            return {"win32_event_filter": self._win32_filter}
        return {}

    def _win32_filter(self, msg, data) -> bool:
        # Windows: swallow the command key pressed while the prefix is armed. Runs on the hook thread.
        WM_KEYDOWN, WM_SYSKEYDOWN = 0x0100, 0x0104  # noqa: N806
        modifier_vks = (0x10, 0x11, 0x12, 0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0x5B, 0x5C)
        armed = self._layer is not None and self._layer.armed
        if self._swallow and armed and msg in (WM_KEYDOWN, WM_SYSKEYDOWN) and data.vkCode not in modifier_vks:
            self._on_press(self._keyboard.KeyCode.from_vk(data.vkCode), False)
            if self._listener is not None:
                self._listener.suppress_event()
        return True

    # pynput's listener thread from here on.
    def _on_press(self, key, injected=False) -> None:
        try:
            modifier = _pynput_modifier(key)
            if modifier is not None:
                self._held.add(modifier)
                return
            name = _pynput_key_name(key)
            if name is None:
                return
            chord = KeyChord(frozenset(self._held), name)
            with self._lock:
                if self._layer is None:
                    return
                was_armed = self._layer.armed
                event = self._layer.press(chord)
                now_armed = self._layer.armed
                self._wake.notify_all()
            if now_armed and not was_armed:
                self._start_grab()
            elif was_armed and not now_armed:
                self._release_grab()
            if event is not None:
                self._deliver(event)
        except Exception:  # an exception here would end pynput's listener: log it and carry on
            log.exception("hotkey press handling failed")

    def _on_release(self, key, injected=False) -> None:
        try:
            modifier = _pynput_modifier(key)
            if modifier is not None:
                self._held.discard(modifier)
                return
            name = _pynput_key_name(key)
            if name is None:
                return
            with self._lock:
                if self._layer is not None:
                    self._layer.release(name)
                    self._wake.notify_all()
        except Exception:
            log.exception("hotkey release handling failed")

    def _deliver(self, event: LayerEvent) -> None:
        callback = self._on_event
        if callback is not None:
            callback(event)

    def _tick(self) -> None:
        """Fires the prefix timeout and push-to-talk releases when they fall due."""
        while True:
            with self._lock:
                if self._stopping or self._layer is None:
                    return
                deadline = self._layer.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic()) + 0.005
                self._wake.wait(timeout)
                if self._stopping or self._layer is None:
                    return
                was_armed = self._layer.armed
                events = self._layer.poll()
                now_armed = self._layer.armed
            if was_armed and not now_armed:
                self._release_grab()
            for event in events:
                self._deliver(event)

    def _start_grab(self) -> None:
        if not (self._swallow and sys.platform.startswith("linux")):
            return
        self._release_grab()
        try:
            grab = self._keyboard.Listener(suppress=True)
            grab.start()
            grab.wait()
            self._grab = grab
        except Exception:
            log.warning("could not hold the keyboard for the command key", exc_info=True)

    def _release_grab(self) -> None:
        grab, self._grab = self._grab, None
        if grab is not None:
            _stop_listener(grab)


# --- The hand-over to Qt --------------------------------------------------------------------------


class HotkeyBridge(QObject):
    """Owns a HotkeyBackend and turns its events into signals on the GUI thread.

    Signals: armed() when the prefix is pressed; activated(command_id) when a command key or
    chord is pressed; released(command_id) when a push-to-talk key is let go; cancelled(reason)
    with "escape" or "timeout"; unknown_key(key label) for a key bound to nothing (play the error
    earcon); unavailable(sentence) when global keys cannot start (say it, keep the tray menu).
    """

    armed = Signal()
    activated = Signal(str)
    released = Signal(str)
    cancelled = Signal(str)
    unknown_key = Signal(str)
    unavailable = Signal(str)

    def __init__(self, backend: HotkeyBackend | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.backend = backend if backend is not None else PynputBackend()

    def start(self, bindings: Bindings) -> bool:
        """Start listening; False (and `unavailable` emitted) when the desktop does not allow it."""
        try:
            self.backend.start(bindings, self._on_backend_event)
        except SightlineError as exc:
            log.warning("global keys unavailable: %s", exc.detail or exc.sentence)
            self.unavailable.emit(exc.sentence)
            return False
        return True

    def rebind(self, bindings: Bindings) -> bool:
        self.backend.stop()
        return self.start(bindings)

    def stop(self) -> None:
        self.backend.stop()

    def _on_backend_event(self, event: LayerEvent) -> None:
        # Called on the backend's thread (pynput listener or ticker). Emitting a signal is the only
        # hand-over: receivers live on the GUI thread, so Qt queues the call to their event loop.
        # Nothing else of this object is touched from that thread.
        from app.commands.keymap import key_label

        if event.kind == "armed":
            self.armed.emit()
        elif event.kind == "activated":
            self.activated.emit(event.command_id)
        elif event.kind == "released":
            self.released.emit(event.command_id)
        elif event.kind == "cancelled":
            self.cancelled.emit("escape")
        elif event.kind == "timeout":
            self.cancelled.emit("timeout")
        elif event.kind == "unknown":
            self.unknown_key.emit(key_label(event.key))
