"""Which D-Bus session bus the tray app uses, decided before Qt starts, without ever launching one."""

from __future__ import annotations

import socket
import sys

import pytest

from app import session_bus
from app.session_bus import DISABLED, settle_session_bus

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="D-Bus autolaunch is X11")


def test_an_address_from_the_session_is_kept():
    env = {"DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1000/bus", "DISPLAY": ":0"}
    assert settle_session_bus(env) == "set by the session"
    assert env["DBUS_SESSION_BUS_ADDRESS"] == "unix:path=/run/user/1000/bus"


def test_the_user_bus_is_used_when_its_socket_is_there(tmp_path):
    bus = socket.socket(socket.AF_UNIX)
    bus.bind(str(tmp_path / "bus"))
    try:
        env = {"XDG_RUNTIME_DIR": str(tmp_path), "DISPLAY": ":0"}
        assert settle_session_bus(env) == "the user bus"
        assert env["DBUS_SESSION_BUS_ADDRESS"] == f"unix:path={tmp_path / 'bus'}"
    finally:
        bus.close()


def test_a_plain_file_named_bus_is_not_a_bus(tmp_path, monkeypatch):
    (tmp_path / "bus").write_text("not a socket")
    monkeypatch.setattr(session_bus, "autolaunched_bus", lambda display: None)
    env = {"XDG_RUNTIME_DIR": str(tmp_path), "DISPLAY": ":0"}
    settle_session_bus(env)
    assert env["DBUS_SESSION_BUS_ADDRESS"] == DISABLED


def test_a_bus_already_on_the_display_is_joined(tmp_path, monkeypatch):
    monkeypatch.setattr(session_bus, "autolaunched_bus", lambda display: "unix:abstract=/tmp/dbus-X,guid=1")
    env = {"XDG_RUNTIME_DIR": str(tmp_path), "DISPLAY": ":5"}
    assert settle_session_bus(env) == "the bus already on this display"
    assert env["DBUS_SESSION_BUS_ADDRESS"] == "unix:abstract=/tmp/dbus-X,guid=1"


def test_no_bus_anywhere_means_none_is_launched(tmp_path, monkeypatch):
    monkeypatch.setattr(session_bus, "autolaunched_bus", lambda display: None)
    env = {"XDG_RUNTIME_DIR": str(tmp_path), "DISPLAY": ":5"}
    assert settle_session_bus(env).startswith("none")
    assert env["DBUS_SESSION_BUS_ADDRESS"] == DISABLED


def test_when_the_display_cannot_be_asked_libdbus_decides(tmp_path, monkeypatch):
    monkeypatch.setattr(session_bus, "autolaunched_bus", lambda display: False)
    env = {"XDG_RUNTIME_DIR": str(tmp_path), "DISPLAY": ":5"}
    settle_session_bus(env)
    assert "DBUS_SESSION_BUS_ADDRESS" not in env


def test_without_an_x_display_nothing_changes(tmp_path):
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    assert settle_session_bus(env) == "no X display"
    assert "DBUS_SESSION_BUS_ADDRESS" not in env


def test_an_unreachable_display_is_not_an_error():
    assert session_bus.autolaunched_bus(":4242") is False
