"""Find the desktop's D-Bus session bus without starting one that would outlive Sightline.

Qt talks to the session bus (the accessibility bridge that screen readers use, the D-Bus tray).
When DBUS_SESSION_BUS_ADDRESS is unset, libdbus "autolaunches": it runs dbus-launch, which starts a
dbus-daemon tied to the X display, and both keep running after Sightline quits. So, before Qt
starts, on X11 without an address:

1. the user bus of a systemd or elogind session ($XDG_RUNTIME_DIR/bus) is used when it is there;
2. a bus already autolaunched on this display (by the screen reader, for example) is used: its
   address is read from the X selection dbus-launch owns, exactly where libdbus would look;
3. otherwise there is no bus anyone listens on, and Sightline starts none: the address is set to
   "disabled:", so libdbus neither connects nor launches. The tray falls back to the X11 tray
   protocol.

Nothing here imports Qt; python-xlib comes with pynput on Linux.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

DISABLED = "disabled:"
_MACHINE_ID_FILES = ("/var/lib/dbus/machine-id", "/etc/machine-id")


def _machine_id() -> str | None:
    for name in _MACHINE_ID_FILES:
        try:
            text = Path(name).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text:
            return text
    return None


def _user_bus(env: Mapping[str, str]) -> str | None:
    runtime = env.get("XDG_RUNTIME_DIR")
    if not runtime:
        return None
    path = Path(runtime) / "bus"
    try:
        if stat.S_ISSOCK(path.stat().st_mode):
            return f"unix:path={path}"
    except OSError:
        pass
    return None


def autolaunched_bus(display_name: str) -> str | None | Literal[False]:
    """The address of the bus dbus-launch autolaunched on this X display; None when there is none;
    False when that cannot be found out (no X library, the display refuses)."""
    try:
        import pwd

        from Xlib import X, Xatom
        from Xlib import display as xdisplay
    except ImportError:
        return False
    machine_id = _machine_id()
    if machine_id is None:
        return None  # without a machine id libdbus cannot autolaunch either
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
        conn = xdisplay.Display(display_name)
    except Exception as exc:  # Xlib raises its own error classes for a refused display
        log.info("session bus: display %s not reachable: %s", display_name, exc)
        return False
    try:
        selection = conn.intern_atom(f"_DBUS_SESSION_BUS_SELECTION_{user}_{machine_id}")
        owner = conn.get_selection_owner(selection)
        if owner == X.NONE:
            return None
        prop = owner.get_full_property(conn.intern_atom("_DBUS_SESSION_BUS_ADDRESS"), Xatom.STRING)
        if prop is None or not prop.value:
            return None
        value = prop.value
        return (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).strip("\0")
    except Exception as exc:
        log.info("session bus: the X selection could not be read: %s", exc)
        return False
    finally:
        conn.close()


def settle_session_bus(environ: MutableMapping[str, str] | None = None) -> str:
    """Set DBUS_SESSION_BUS_ADDRESS in `environ` (os.environ) so no bus is autolaunched. Returns
    what was decided, for the log."""
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if env.get("DBUS_SESSION_BUS_ADDRESS"):
        return "set by the session"
    user_bus = _user_bus(env)
    if user_bus:
        env["DBUS_SESSION_BUS_ADDRESS"] = user_bus
        return "the user bus"
    display_name = env.get("DISPLAY")
    if not display_name:
        return "no X display"  # Wayland without a bus, or offscreen: libdbus does not autolaunch
    found = autolaunched_bus(display_name)
    if found is False:
        return "unknown (left to libdbus)"
    if found:
        env["DBUS_SESSION_BUS_ADDRESS"] = found
        return "the bus already on this display"
    env["DBUS_SESSION_BUS_ADDRESS"] = DISABLED
    return "none (D-Bus off; nothing is launched)"
