"""Global keys: a backend that listens to the whole keyboard, and a Qt bridge to the GUI thread.

HotkeyBackend is the interface; PynputBackend listens with pynput (X11, Windows, macOS); where no
global keys can be had, the tray menu remains. The prefix layer itself
(app.commands.keymap.CommandLayer) is Qt-free; this module adds threads and the hand-over to Qt.

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


# --- pynput ---------------------------------------------------------------------------------------

_SHIFTED_DIGITS = dict(zip(")!@#$%^&*(", "0123456789", strict=True))


#: pynput's modifier key names (either side) -> the chord's; AltGr types characters, so it is never
#: part of a Sightline chord
_MODIFIERS = {"alt_gr": "altgr"} | {
    f"{name}{side}": modifier
    for name, modifier in (("ctrl", "ctrl"), ("alt", "alt"), ("shift", "shift"), ("cmd", "super"))
    for side in ("", "_l", "_r")
}


def _pynput_modifier(key) -> str | None:
    return _MODIFIERS.get(getattr(key, "name", None) or "")  # pynput Key members have a name; KeyCodes do not


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


def _stop_listener(listener, wait_s: float = 2.0) -> None:
    """Stop a pynput listener and wait for its thread.

    On X11, pynput's stop() sends the RECORD disable request on the connection its thread is blocked
    reading, so the thread lingers until the next key press. The same request on its control
    connection ends it at once. A listener never holds a grab (see KeyboardGrab), so one that does not
    stop in time costs only its thread, never the user's keyboard.
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
        listener.join(wait_s)
        if listener.is_alive():
            log.warning("keyboard listener did not stop within %.0f s; it holds no grab", wait_s)


# X11 keysym names of Sightline's named keys (app.commands.keymap), for grabbing a held key.
_X11_KEYSYMS = {
    "space": "space",
    "enter": "Return",
    "tab": "Tab",
    "escape": "Escape",
    "backspace": "BackSpace",
    "delete": "Delete",
    "insert": "Insert",
    "home": "Home",
    "end": "End",
    "page_up": "Prior",
    "page_down": "Next",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "caps_lock": "Caps_Lock",
    "num_lock": "Num_Lock",
    "print_screen": "Print",
    "pause": "Pause",
    "menu": "Menu",
    **{f"f{n}": f"F{n}" for n in range(1, 25)},
}


class KeyboardGrab:
    """X11: keeps keys from the application in front, on an X connection of its own, and always gives
    them back.

    While the prefix waits for its command key the whole keyboard is grabbed (XGrabKeyboard), so the
    command key does not also type a letter. While a push-to-talk key is held only that key is grabbed
    (XGrabKey on the root window): its auto-repeat presses go to Sightline, every other key still
    reaches the application, and the grab ends when the key is let go.

    Giving the keyboard back cannot depend on the threads that asked for the grab. Each `hold()`
    carries a deadline (when the prefix layer's state ends by itself); a watchdog thread, which
    takes no lock that anyone else holds, closes this connection at the deadline if the grabs are
    still there. The X server drops every grab of a client whose connection closes, so the keyboard
    comes back even when the pynput thread is stuck, a handler raised, or an X request hangs.
    """

    def __init__(self, display_name: str | None = None):
        self._display_name = display_name
        self._display = None
        self._lock = threading.Lock()  # serialises X requests from the listener and ticker threads
        self._keyboard = False
        self._keys: dict[str, list[int]] = {}  # held key -> its grabbed keycodes
        self._deadline: float | None = None  # read by the watchdog without any lock
        self._wake = threading.Event()
        self._closed = False
        self._watchdog: threading.Thread | None = None
        self.forced = 0  # how often the watchdog had to take the grabs back

    @property
    def holding(self) -> bool:
        return self._keyboard or bool(self._keys)

    def hold(self, keyboard: bool, keys: frozenset[str], deadline: float | None) -> None:
        """Make the grabs match: the whole keyboard or not, and these single keys.

        `deadline` (time.monotonic) is when the watchdog takes everything back whatever happens.
        Called from the listener and ticker threads; X errors are logged, never raised.
        """
        wanted = keyboard or bool(keys)
        if not wanted and not self.holding:
            self._deadline = None
            return
        # The deadline is set before any X request, so a request that hangs is covered too.
        self._deadline = deadline if wanted else None
        self._ensure_watchdog()
        self._wake.set()
        if not self._lock.acquire(timeout=LOCK_WAIT_S):
            # Another thread is stuck in an X request: do not wait for it.
            self._force_release("a grab request did not return")
            return
        try:
            self._apply(keyboard, keys)
        except Exception:
            log.warning("keyboard grab change failed; giving the keyboard back", exc_info=True)
            self._drop_connection()
        finally:
            self._lock.release()
        if not self.holding:
            self._deadline = None

    def release(self) -> None:
        self.hold(False, frozenset(), None)

    def close(self) -> None:
        self.release()
        self._closed = True
        self._wake.set()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None and watchdog is not threading.current_thread():
            watchdog.join(2.0)
        if self._lock.acquire(timeout=LOCK_WAIT_S):
            try:
                self._drop_connection()
            finally:
                self._lock.release()
        else:
            self._force_release("was still in use at shutdown")

    # -- X requests (under self._lock) --

    def _connection(self):
        if self._display is None:
            from Xlib import display

            self._display = display.Display(self._display_name)
        return self._display

    def _apply(self, keyboard: bool, keys: frozenset[str]) -> None:
        from Xlib import X, error

        d = self._connection()
        root = d.screen().root
        # New single-key grabs go in before the keyboard grab ends, so a held key is never free.
        for key in keys - self._keys.keys():
            codes = self._keycodes(d, key)
            catch = error.CatchError(error.BadAccess)
            for code in codes:
                root.grab_key(code, X.AnyModifier, False, X.GrabModeAsync, X.GrabModeAsync, onerror=catch)
            d.sync()
            if catch.get_error():
                log.warning("another program holds the key %s; it may type while held", key)
            self._keys[key] = codes
        if keyboard and not self._keyboard:
            status = root.grab_keyboard(False, X.GrabModeAsync, X.GrabModeAsync, X.CurrentTime)
            if status != X.GrabSuccess:
                log.info("keyboard not grabbed (status %s): another program holds it", status)
            self._keyboard = True  # ungrabbing a grab we did not get is harmless
        elif not keyboard and self._keyboard:
            d.ungrab_keyboard(X.CurrentTime)
            self._keyboard = False
        dropped = self._keys.keys() - keys
        for key in dropped:
            for code in self._keys.pop(key):
                root.ungrab_key(code, X.AnyModifier)
        if dropped and not keyboard:
            # A key grab activated by the key going down lasts until the key comes up, whatever
            # XUngrabKey says; a key given back while still held (the hold limit) needs this too.
            d.ungrab_keyboard(X.CurrentTime)
        d.sync()
        # The grabbed key events are delivered to this connection: read them so they never pile up.
        while d.pending_events():
            d.next_event()

    @staticmethod
    def _keycodes(d, key: str) -> list[int]:
        from Xlib import XK

        if key in _X11_KEYSYMS:
            keysym = XK.string_to_keysym(_X11_KEYSYMS[key])
        elif len(key) == 1:
            keysym = ord(key)  # Latin-1 keysyms are the characters themselves
        else:
            keysym = XK.string_to_keysym(key)
        codes = sorted({code for code, _index in d.keysym_to_keycodes(keysym)}) if keysym else []
        if not codes:
            log.warning("no keycode for the key %s; it is not held back", key)
        return codes

    # -- the watchdog --

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None and not self._closed:
            self._watchdog = threading.Thread(target=self._watch, name="sightline-grab-watchdog", daemon=True)
            self._watchdog.start()

    def _watch(self) -> None:
        # Sleeps without a timeout while nothing is grabbed: no wake-ups when idle.
        while not self._closed:
            deadline = self._deadline
            if deadline is None:
                self._wake.wait()
                self._wake.clear()
                continue
            remaining = deadline - time.monotonic()
            if remaining > 0:
                self._wake.wait(remaining)
                self._wake.clear()
                continue
            if self._deadline is deadline:
                self._force_release("held past its time limit")

    def _force_release(self, why: str) -> None:
        """Take every grab back by closing the connection. Takes no lock: the thread that holds it
        may be the one that is stuck."""
        import socket

        self._deadline = None
        display, self._display = self._display, None
        self._keyboard = False
        self._keys = {}
        self.forced += 1
        log.error("keyboard grab %s; Sightline gave the keyboard back", why)
        if display is None:
            return
        try:
            display.display.socket.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked on it, too
        except Exception:
            log.debug("closing the grab connection failed", exc_info=True)

    def _drop_connection(self) -> None:
        display, self._display = self._display, None
        self._keyboard = False
        self._keys = {}
        if display is not None:
            try:
                display.close()  # the server drops this connection's grabs
            except Exception:
                pass


# Windows virtual-key codes of the keys a push-to-talk command can be held on.
def _win32_vk_name(vk: int) -> str | None:
    if 0x41 <= vk <= 0x5A or 0x30 <= vk <= 0x39:
        return chr(vk).lower()
    if 0x70 <= vk <= 0x87:
        return f"f{vk - 0x6F}"
    return {0x20: "space", 0x0D: "enter", 0x09: "tab"}.get(vk)


class PynputBackend(HotkeyBackend):
    """Global keys through pynput's keyboard Listener.

    `swallow_command_key`: the command key after the prefix, and a push-to-talk key for as long as it
    is held, do not reach the application in front (no stray "s" typed into a document, no "vvvv"
    while asking by voice). X11: KeyboardGrab, with its watchdog. Windows: the low-level hook
    suppresses exactly those key events. macOS: the event tap drops them.
    """

    def __init__(self, swallow_command_key: bool = True, grab: KeyboardGrab | None = None):
        self._swallow = swallow_command_key
        self._lock = threading.Lock()
        self._layer: CommandLayer | None = None
        self._on_event: EventCallback | None = None
        self._listener = None
        self._grab = grab
        self._held: set[str] = set()
        self._ticker: threading.Thread | None = None
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._consumed = False  # the event being handled is Sightline's (Windows filter, macOS tap)

    @property
    def running(self) -> bool:
        return self._listener is not None

    @property
    def grab(self) -> KeyboardGrab | None:
        return self._grab

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
        if self._swallow and sys.platform.startswith("linux") and self._grab is None:
            self._grab = KeyboardGrab()
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
        # The keyboard comes back first, before waiting for any thread.
        if self._grab is not None:
            self._grab.release()
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
        if listener is not None:
            _stop_listener(listener)
        ticker, self._ticker = self._ticker, None
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(2.0)
        with self._lock:
            if self._layer is not None and self._on_event is not None:
                for event in self._layer.reset():
                    self._on_event(event)
            self._layer = None
            self._on_event = None
        if self._grab is not None:
            self._grab.close()
            self._grab = None

    def _platform_args(self) -> dict:
        if sys.platform == "win32":
            return {"win32_event_filter": self._win32_filter}
        if sys.platform == "darwin" and self._swallow:
            return {"darwin_intercept": self._darwin_intercept}
        return {}

    def _win32_filter(self, msg, data) -> bool:
        """Windows, on the hook thread: hand Sightline's key events to the layer here and suppress
        them (the command key after the prefix; a held push-to-talk key's repeats and release). The
        hook is synchronous, so the decision cannot wait for pynput's own on_press."""
        WM_KEYDOWN, WM_KEYUP, WM_SYSKEYDOWN, WM_SYSKEYUP = 0x0100, 0x0101, 0x0104, 0x0105  # noqa: N806
        modifier_vks = (0x10, 0x11, 0x12, 0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0x5B, 0x5C)
        layer = self._layer
        if not self._swallow or layer is None or data.vkCode in modifier_vks:
            return True
        name = _win32_vk_name(data.vkCode)
        key = self._keyboard.KeyCode.from_vk(data.vkCode)
        if msg in (WM_KEYDOWN, WM_SYSKEYDOWN) and (layer.armed or name in layer.held_keys):
            self._on_press(key, False)
        elif msg in (WM_KEYUP, WM_SYSKEYUP) and name in layer.held_keys:
            self._on_release(key, False)
        else:
            return True
        if self._listener is not None:
            self._listener.suppress_event()  # raises: pynput returns 1 from the hook
        return True

    def _darwin_intercept(self, event_type, event):
        """macOS, on the event tap's thread, right after on_press/on_release saw this event: None
        drops it, so the application in front never receives Sightline's keys."""
        return None if self._consumed else event

    # pynput's listener thread from here on.
    def _on_press(self, key, injected=False) -> None:
        self._consumed = False
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
                self._consumed = self._layer.armed or name in self._layer.held_keys
                event = self._layer.press(chord)
                self._wake.notify_all()
                self._sync_grab()
            if event is not None:
                self._deliver(event)
        except Exception:  # an exception here would end pynput's listener: log it and carry on
            log.exception("hotkey press handling failed")
            self._give_back()

    def _on_release(self, key, injected=False) -> None:
        self._consumed = False
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
                    self._consumed = name in self._layer.held_keys
                    self._layer.release(name)
                    self._wake.notify_all()
        except Exception:
            log.exception("hotkey release handling failed")
            self._give_back()

    def _sync_grab(self) -> None:
        """Under self._lock: grab what the layer holds now (X11)."""
        if self._grab is None or self._layer is None:
            return
        layer = self._layer
        expires = layer.expires_at()
        deadline = None if expires is None else expires + GRAB_SLACK_S
        self._grab.hold(layer.armed, layer.held_keys, deadline)

    def _give_back(self) -> None:
        if self._grab is not None:
            self._grab.release()

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
                events = self._layer.poll()
                if events:
                    self._sync_grab()
            for event in events:
                self._deliver(event)


# How long a grab change waits for another thread's X request before closing the connection instead.
LOCK_WAIT_S = 1.0

# How long past the layer's own end (prefix timeout, push-to-talk hold limit) a grab may outlive it
# before the watchdog closes the grab's X connection.
GRAB_SLACK_S = 0.5


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
