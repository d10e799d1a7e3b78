"""What the application in front receives while Sightline's keys are used, and that the keyboard
always comes back.

A text field in another process (a small PySide6 program) has the keyboard focus and prints its
text whenever it changes. xdotool presses the keys as a user does, holding a push-to-talk key long
enough for the X server's auto-repeat to fire many times. The characters that reach the field are
counted. Faults are injected into the real pynput listener to prove the grab watchdog.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import queue  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

from app.commands.hotkeys import GRAB_SLACK_S, HotkeyBridge, PynputBackend  # noqa: E402
from app.commands.keymap import bindings_from_settings  # noqa: E402
from app.settings.schema import Settings  # noqa: E402

pytestmark = pytest.mark.display

PREFIX = "ctrl+alt+shift+space"
WAIT_MS = 5000

TEXT_FIELD_PROGRAM = r"""
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLineEdit
app = QApplication(sys.argv)
field = QLineEdit()
field.setWindowTitle("keys-target")
field.textChanged.connect(lambda text: print("TEXT " + repr(text), flush=True))
field.resize(400, 60)
field.move(600, 400)
field.show()
def focus():
    field.activateWindow()
    field.setFocus()
    print("FOCUS " + str(int(field.winId())) + " " + str(int(field.hasFocus())), flush=True)
QTimer.singleShot(300, focus)
app.exec()
"""


def xdo(*args: str) -> str:
    return subprocess.run(["xdotool", *args], check=True, timeout=10, capture_output=True, text=True).stdout


class TextField:
    """A QLineEdit in its own process holding the keyboard focus; `text` is what it has received."""

    def __init__(self):
        env = dict(os.environ, QT_QPA_PLATFORM="xcb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", TEXT_FIELD_PROGRAM],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.text = ""
        self._lines: queue.Queue = queue.Queue()
        # Reader thread -> test thread: each line the program prints goes through this queue.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        window = self._wait_for("FOCUS").split()[1]
        self.window = window
        deadline = time.monotonic() + 5
        while xdo("getwindowfocus").strip() != window:
            if time.monotonic() > deadline:
                raise AssertionError("the text field did not get the keyboard focus")
            subprocess.run(["xdotool", "windowfocus", window], timeout=10, check=False)
            time.sleep(0.1)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))

    def _wait_for(self, prefix: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line.startswith("TEXT "):
                self.text = eval(line[5:])  # noqa: S307 - repr() of a str printed by our own program
            if line.startswith(prefix):
                return line
        raise AssertionError(f"the text field printed no {prefix} line")

    def received(self, settle_s: float = 0.4) -> str:
        """The field's text once the keys in flight have arrived."""
        end = time.monotonic() + settle_s
        while time.monotonic() < end:
            try:
                line = self._lines.get(timeout=0.05)
            except queue.Empty:
                continue
            if line.startswith("TEXT "):
                self.text = eval(line[5:])  # noqa: S307
        return self.text

    def has_focus(self) -> bool:
        return xdo("getwindowfocus").strip() == self.window

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def text_field(desktop):
    field = TextField()
    yield field
    field.close()


class Events:
    def __init__(self, bridge: HotkeyBridge):
        self.seen: list[tuple[str, str]] = []
        bridge.armed.connect(lambda: self.seen.append(("armed", "")))
        bridge.activated.connect(lambda cid: self.seen.append(("activated", cid)))
        bridge.released.connect(lambda cid: self.seen.append(("released", cid)))
        bridge.cancelled.connect(lambda why: self.seen.append(("cancelled", why)))


def _hold(key: str, seconds: float) -> None:
    xdo("keydown", key)
    time.sleep(seconds)
    xdo("keyup", key)


@pytest.mark.parametrize("key,command", [("v", "ask_screen_voice"), ("q", "ask_voice"), ("f", "follow_up")])
def test_a_held_push_to_talk_key_never_reaches_the_app_in_front(
    qtbot, no_thread_leak, text_field, key, command
):
    bridge = HotkeyBridge(PynputBackend())
    events = Events(bridge)
    try:
        assert bridge.start(bindings_from_settings(Settings()))
        xdo("key", PREFIX)
        qtbot.waitUntil(lambda: ("armed", "") in events.seen, timeout=WAIT_MS)
        _hold(key, 2.0)  # the X server auto-repeats the key about 25 times a second after 0.66 s
        qtbot.waitUntil(lambda: ("released", command) in events.seen, timeout=WAIT_MS)
        assert events.seen.count(("activated", command)) == 1  # the repeats did not start it again
        assert text_field.has_focus()
        assert text_field.received() == ""
        # Let go, the key is the user's again at once: typing reaches the application in front.
        xdo("type", "--delay", "30", f"{key}a")
        assert text_field.received() == f"{key}a"
    finally:
        bridge.stop()


def test_control_without_swallowing_the_held_key_does_leak(qtbot, no_thread_leak, text_field):
    """The same hold with the grab turned off: the repeats reach the field, so the test above can fail."""
    bridge = HotkeyBridge(PynputBackend(swallow_command_key=False))
    events = Events(bridge)
    try:
        assert bridge.start(bindings_from_settings(Settings()))
        xdo("key", PREFIX)
        qtbot.waitUntil(lambda: ("armed", "") in events.seen, timeout=WAIT_MS)
        _hold("v", 2.0)
        qtbot.waitUntil(lambda: ("released", "ask_screen_voice") in events.seen, timeout=WAIT_MS)
        assert text_field.received().count("v") > 10
    finally:
        bridge.stop()


def test_other_keys_still_type_while_a_push_to_talk_key_is_held(qtbot, no_thread_leak, text_field):
    bridge = HotkeyBridge(PynputBackend())
    events = Events(bridge)
    try:
        assert bridge.start(bindings_from_settings(Settings()))
        xdo("key", PREFIX)
        qtbot.waitUntil(lambda: ("armed", "") in events.seen, timeout=WAIT_MS)
        xdo("keydown", "v")
        qtbot.waitUntil(lambda: ("activated", "ask_screen_voice") in events.seen, timeout=WAIT_MS)
        time.sleep(0.3)
        xdo("key", "b")  # only the held key is grabbed, not the whole keyboard
        assert text_field.received() == "b"
        xdo("keyup", "v")
        qtbot.waitUntil(lambda: ("released", "ask_screen_voice") in events.seen, timeout=WAIT_MS)
    finally:
        bridge.stop()


# --- the watchdog ---


def _typing_reaches(field: TextField, within_s: float) -> float:
    """Type a letter every 100 ms until one reaches the field; how long that took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within_s:
        xdo("key", "z")
        if "z" in field.received(0.1):
            return time.monotonic() - t0
    raise AssertionError(f"no key reached the application in front within {within_s} s")


def test_a_stuck_listener_cannot_keep_the_keyboard(qtbot, no_thread_leak, text_field):
    """The listener thread hangs inside its key handler while the keyboard is grabbed (the prefix is
    armed): the watchdog gives the keyboard back within the prefix timeout plus its slack."""
    timeout_s = 1.0
    backend = PynputBackend()
    bridge = HotkeyBridge(backend)
    events = Events(bridge)
    unstick = threading.Event()
    try:
        assert bridge.start(bindings_from_settings(Settings(hotkey_timeout=timeout_s)))
        xdo("key", PREFIX)
        qtbot.waitUntil(lambda: ("armed", "") in events.seen, timeout=WAIT_MS)
        armed_at = time.monotonic()
        layer = backend._layer
        real_press = layer.press

        def stuck_press(chord):
            unstick.wait(30)  # the listener thread hangs here, holding the backend's lock
            return real_press(chord)

        layer.press = stuck_press
        xdo("key", "s")  # the listener takes this key and hangs; the ticker then waits on its lock
        assert text_field.received(0.2) == ""  # the keyboard is grabbed: nothing types
        took = _typing_reaches(text_field, within_s=10.0)
        back_after = time.monotonic() - took - armed_at
        assert back_after <= timeout_s + GRAB_SLACK_S + 0.5, back_after
        assert backend.grab is not None and backend.grab.forced == 1
        assert ("activated", "describe_screen") not in events.seen
    finally:
        unstick.set()
        bridge.stop()


def test_an_exception_in_the_key_handler_gives_the_keyboard_back_at_once(qtbot, no_thread_leak, text_field):
    backend = PynputBackend()
    bridge = HotkeyBridge(backend)
    events = Events(bridge)
    try:
        assert bridge.start(bindings_from_settings(Settings(hotkey_timeout=10.0)))
        xdo("key", PREFIX)
        qtbot.waitUntil(lambda: ("armed", "") in events.seen, timeout=WAIT_MS)

        def broken_press(chord):
            raise RuntimeError("injected fault")

        backend._layer.press = broken_press
        xdo("key", "s")
        took = _typing_reaches(text_field, within_s=5.0)
        assert took < 1.0  # not the 10 s prefix timeout
    finally:
        bridge.stop()


def test_a_push_to_talk_key_held_past_the_limit_is_given_back(qtbot, no_thread_leak, text_field):
    """A lost release event must not keep a key swallowed: after the hold limit it counts as let go."""
    from dataclasses import replace

    bridge = HotkeyBridge(PynputBackend())
    events = Events(bridge)
    try:
        assert bridge.start(replace(bindings_from_settings(Settings()), hold_limit_s=1.0))
        xdo("key", PREFIX)
        qtbot.waitUntil(lambda: ("armed", "") in events.seen, timeout=WAIT_MS)
        xdo("keydown", "v")
        qtbot.waitUntil(lambda: ("released", "ask_screen_voice") in events.seen, timeout=WAIT_MS)
        time.sleep(1.0)  # still held: now the auto-repeat types again, as it would for any key
        xdo("keyup", "v")
        assert "v" in text_field.received()
    finally:
        bridge.stop()
