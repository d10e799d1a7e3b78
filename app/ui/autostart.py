"""Start Sightline when the user logs in.

- Linux and other XDG desktops: $XDG_CONFIG_HOME/autostart/sightline.desktop (~/.config by default).
- Windows: the value "Sightline" under HKEY_CURRENT_USER\\Software\\Microsoft\\Windows\\CurrentVersion\\Run.
- macOS: ~/Library/LaunchAgents/org.sightline.app.plist with RunAtLoad.

Only the current user is affected; nothing needs administrator rights. Qt-free.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from app.core.errors import SightlineError

APP_ID = "sightline"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
RUN_VALUE = "Sightline"
LAUNCH_AGENT = "org.sightline.app"


class AutostartError(SightlineError):
    pass


def launch_command() -> list[str]:
    """How to start Sightline at login: the installed `sightline` command, else this Python with -m app."""
    if getattr(sys, "frozen", False):  # a packaged build
        return [sys.executable]
    installed = shutil.which("sightline")
    if installed:
        return [installed]
    return [sys.executable, "-m", "app"]


def _xdg_autostart_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "autostart" / f"{APP_ID}.desktop"


def _mac_agent_file() -> Path:
    return Path.home() / "Library" / "LaunchAgents" / f"{LAUNCH_AGENT}.plist"


def _desktop_entry(command: list[str]) -> str:
    exec_line = " ".join(_desktop_quote(part) for part in command)
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=Sightline\n"
        "Comment=Describes the screen and the camera view, and answers spoken questions\n"
        f"Exec={exec_line}\n"
        "Icon=sightline\n"
        "Terminal=false\n"
        "X-GNOME-Autostart-enabled=true\n"
        "Categories=Accessibility;Utility;\n"
    )


def _desktop_quote(arg: str) -> str:
    """Quote one Exec argument as the Desktop Entry specification asks."""
    reserved = set(" \t\n\"'\\><~|&;$*?#()`")
    escaped = arg.replace("%", "%%")
    if not any(ch in reserved for ch in escaped):
        return escaped
    inner = escaped.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return f'"{inner}"'


def is_enabled() -> bool:
    if sys.platform == "win32":
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
                winreg.QueryValueEx(key, RUN_VALUE)
            return True
        except OSError:
            return False
    if sys.platform == "darwin":
        return _mac_agent_file().exists()
    return _xdg_autostart_file().exists()


def set_enabled(enabled: bool, command: list[str] | None = None) -> None:
    """Turn starting at login on or off. Raises AutostartError (with a sentence) if the system refuses."""
    command = command or launch_command()
    try:
        if sys.platform == "win32":
            _set_windows(enabled, command)
        elif sys.platform == "darwin":
            _set_file(_mac_agent_file(), _launch_agent(command) if enabled else None)
        else:
            _set_file(_xdg_autostart_file(), _desktop_entry(command) if enabled else None)
    except OSError as exc:
        state = "start with the system" if enabled else "stop starting with the system"
        raise AutostartError(f"Sightline could not {state}.", detail=str(exc)) from exc


def _set_file(path: Path, text: str | None) -> None:
    if text is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


if sys.platform == "win32":  # winreg exists only there (and its type stubs say so)

    def _set_windows(enabled: bool, command: list[str]) -> None:
        import subprocess
        import winreg

        with winreg.CreateKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
            if enabled:
                winreg.SetValueEx(key, RUN_VALUE, 0, winreg.REG_SZ, subprocess.list2cmdline(command))
            else:
                try:
                    winreg.DeleteValue(key, RUN_VALUE)
                except FileNotFoundError:
                    pass


def _launch_agent(command: list[str]) -> str:
    import plistlib

    return plistlib.dumps(
        {"Label": LAUNCH_AGENT, "ProgramArguments": command, "RunAtLoad": True, "ProcessType": "Interactive"}
    ).decode("utf-8")
