"""Start with the system: the XDG autostart entry on Linux."""

from __future__ import annotations

import configparser
import sys

from app.ui import autostart


def test_linux_autostart_entry_written_and_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    command = ["/opt/Sight Line/bin/python", "-m", "app"]
    assert not autostart.is_enabled()

    autostart.set_enabled(True, command)
    entry = tmp_path / "autostart" / "sightline.desktop"
    assert autostart.is_enabled()
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(entry, encoding="utf-8")
    section = parser["Desktop Entry"]
    assert section["Type"] == "Application"
    assert section["Name"] == "Sightline"
    assert section["Exec"] == '"/opt/Sight Line/bin/python" -m app'

    autostart.set_enabled(False, command)
    assert not entry.exists()
    assert not autostart.is_enabled()
    autostart.set_enabled(False, command)  # turning it off twice is fine


def test_default_command_starts_this_python_or_the_installed_script():
    command = autostart.launch_command()
    assert command[-2:] == ["-m", "app"] or command[0].endswith("sightline")
