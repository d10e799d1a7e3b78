"""Global keys on the Xvfb display: xdotool presses the keys, the command id reaches a Qt slot.

Also checks what a user at the keyboard would notice: the command key after the prefix does not
leak into the application in front, and the keyboard is free again after a timeout.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

from app.commands.hotkeys import HotkeyBridge, PynputBackend  # noqa: E402
from app.commands.keymap import bindings_from_settings, parse_chord  # noqa: E402
from app.settings.schema import Settings  # noqa: E402

pytestmark = pytest.mark.display

WAIT_MS = 5000  # generous bound: the listener normally answers in about 20 ms


def xdotool(*args: str) -> None:
    subprocess.run(["xdotool", *args], check=True, timeout=10)


@pytest.fixture
def bridge(qtbot, desktop, no_thread_leak):
    bridge = HotkeyBridge(PynputBackend())
    yield bridge
    bridge.stop()


class Recorder:
    def __init__(self, bridge: HotkeyBridge):
        self.events: list[tuple[str, str]] = []
        self.threads: set[int] = set()
        bridge.armed.connect(lambda: self._add("armed", ""))
        bridge.activated.connect(lambda cid: self._add("activated", cid))
        bridge.released.connect(lambda cid: self._add("released", cid))
        bridge.cancelled.connect(lambda why: self._add("cancelled", why))
        bridge.unknown_key.connect(lambda key: self._add("unknown", key))

    def _add(self, kind: str, value: str) -> None:
        self.events.append((kind, value))
        self.threads.add(threading.get_ident())


def test_prefix_then_key_reaches_a_qt_slot_on_the_gui_thread(qtbot, bridge):
    seen = Recorder(bridge)
    assert bridge.start(bindings_from_settings(Settings()))
    xdotool("key", "ctrl+alt+shift+space")
    xdotool("key", "s")
    qtbot.waitUntil(lambda: ("activated", "describe_screen") in seen.events, timeout=WAIT_MS)
    assert seen.events == [("armed", ""), ("activated", "describe_screen")]
    assert seen.threads == {threading.main_thread().ident}


def test_escape_unknown_key_and_timeout(qtbot, bridge):
    seen = Recorder(bridge)
    assert bridge.start(bindings_from_settings(Settings(hotkey_timeout=1.0)))
    xdotool("key", "ctrl+alt+shift+space")
    xdotool("key", "Escape")
    qtbot.waitUntil(lambda: ("cancelled", "escape") in seen.events, timeout=WAIT_MS)
    xdotool("key", "ctrl+alt+shift+space")
    xdotool("key", "j")
    qtbot.waitUntil(lambda: ("unknown", "J") in seen.events, timeout=WAIT_MS)
    xdotool("key", "ctrl+alt+shift+space")
    qtbot.waitUntil(lambda: ("cancelled", "timeout") in seen.events, timeout=WAIT_MS)
    xdotool("key", "s")  # after the timeout, a plain S is just typing
    qtbot.wait(300)
    assert ("activated", "describe_screen") not in seen.events


def test_push_to_talk_reports_press_and_release(qtbot, bridge):
    seen = Recorder(bridge)
    assert bridge.start(bindings_from_settings(Settings()))
    xdotool("key", "ctrl+alt+shift+space")
    xdotool("keydown", "v")
    qtbot.waitUntil(lambda: ("activated", "ask_screen_voice") in seen.events, timeout=WAIT_MS)
    qtbot.wait(400)
    assert ("released", "ask_screen_voice") not in seen.events  # still held
    xdotool("keyup", "v")
    qtbot.waitUntil(lambda: ("released", "ask_screen_voice") in seen.events, timeout=WAIT_MS)


def test_rebound_keys_and_direct_chords(qtbot, bridge):
    seen = Recorder(bridge)
    settings = Settings(command_keys=(("stop", "Z"),), command_chords=(("repeat_last", "Ctrl+Alt+Shift+F7"),))
    assert bridge.start(bindings_from_settings(settings))
    xdotool("key", "ctrl+alt+shift+F7")
    qtbot.waitUntil(lambda: ("activated", "repeat_last") in seen.events, timeout=WAIT_MS)
    xdotool("key", "ctrl+alt+shift+space")
    xdotool("key", "z")
    qtbot.waitUntil(lambda: ("activated", "stop") in seen.events, timeout=WAIT_MS)

    assert bridge.rebind(bindings_from_settings(Settings()))
    xdotool("key", "ctrl+alt+shift+space")
    xdotool("key", "x")
    qtbot.waitUntil(lambda: seen.events.count(("activated", "stop")) == 2, timeout=WAIT_MS)


# --- what the application in front receives ---


class FocusedWindow:
    """A plain X window holding the keyboard focus, recording the keys it receives."""

    def __init__(self):
        from Xlib import XK, X, display

        self._X, self._XK = X, XK
        self.display = display.Display()
        screen = self.display.screen()
        self.window = screen.root.create_window(
            10,
            10,
            300,
            200,
            0,
            screen.root_depth,
            X.InputOutput,
            X.CopyFromParent,
            background_pixel=screen.white_pixel,
            event_mask=X.KeyPressMask | X.FocusChangeMask,
        )
        self.window.map()
        self.display.sync()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            self.window.set_input_focus(X.RevertToParent, X.CurrentTime)
            self.display.sync()
            if self.display.get_input_focus().focus == self.window:
                break
            time.sleep(0.05)

    def received_keys(self, settle_s: float = 0.3) -> list[str]:
        time.sleep(settle_s)
        if self.display.get_input_focus().focus != self.window:
            pytest.fail("another window took the keyboard focus during the test (is the display shared?)")
        names = []
        while self.display.pending_events():
            event = self.display.next_event()
            if event.type == self._X.KeyPress:
                keysym = self.display.keycode_to_keysym(event.detail, 0)
                names.append(self._XK.keysym_to_string(keysym) or hex(keysym))
        return names

    def close(self):
        self.window.destroy()
        self.display.close()


@pytest.fixture
def focused_window(desktop):
    window = FocusedWindow()
    yield window
    window.close()


@pytest.mark.parametrize("swallow", [True, False])
def test_the_command_key_does_not_reach_the_app_in_front(
    qtbot, desktop, no_thread_leak, focused_window, swallow
):
    bridge = HotkeyBridge(PynputBackend(swallow_command_key=swallow))
    seen = Recorder(bridge)
    try:
        assert bridge.start(bindings_from_settings(Settings(hotkey_timeout=1.0)))
        xdotool("key", "ctrl+alt+shift+space")
        qtbot.waitUntil(lambda: ("armed", "") in seen.events, timeout=WAIT_MS)
        xdotool("key", "t")
        qtbot.waitUntil(lambda: ("activated", "read_text") in seen.events, timeout=WAIT_MS)
        received = focused_window.received_keys()
        if swallow:
            assert "t" not in received
        else:
            assert "t" in received  # the control case: without the grab the key does leak

        # A timed-out prefix gives the keyboard back: typing reaches the window again.
        xdotool("key", "ctrl+alt+shift+space")
        qtbot.waitUntil(lambda: ("cancelled", "timeout") in seen.events, timeout=WAIT_MS)
        xdotool("key", "a")
        assert "a" in focused_window.received_keys()
    finally:
        bridge.stop()


def test_stop_while_armed_gives_the_keyboard_back(qtbot, desktop, no_thread_leak, focused_window):
    bridge = HotkeyBridge(PynputBackend())
    seen = Recorder(bridge)
    assert bridge.start(bindings_from_settings(Settings(hotkey_timeout=10.0)))
    xdotool("key", "ctrl+alt+shift+space")
    qtbot.waitUntil(lambda: ("armed", "") in seen.events, timeout=WAIT_MS)
    bridge.stop()
    xdotool("key", "b")
    assert "b" in focused_window.received_keys()


def test_no_display_is_reported_as_a_sentence(qtbot, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    bridge = HotkeyBridge(PynputBackend())
    with qtbot.waitSignal(bridge.unavailable, timeout=1000) as signal:
        assert bridge.start(bindings_from_settings(Settings())) is False
    assert signal.args[0].endswith("use the tray menu instead.")


def test_manual_backend_drives_the_same_signals(qtbot):
    from tests.support.hotkeys import ManualHotkeyBackend

    backend = ManualHotkeyBackend()
    bridge = HotkeyBridge(backend)
    seen = Recorder(bridge)
    bridge.start(bindings_from_settings(Settings()))
    backend.press(parse_chord("Ctrl+Alt+Shift+Space"))
    backend.press(parse_chord("H"))
    assert seen.events == [("armed", ""), ("activated", "show_history")]
