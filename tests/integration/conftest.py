"""Integration tests that need the X display skip (or, under scripts/test.sh, fail) with a reason
when there is none, before Qt is asked to open it.

A test needs the display when it is marked `display`, asks for the `desktop` fixture, or makes a
Qt application in this process (the `qapp` and `qtbot` fixtures) while Qt would use its xcb
platform. Without this check a missing or dead display is found by Qt's xcb plugin, which aborts
the interpreter and takes the whole pytest run with it.
"""

from __future__ import annotations

import os
import sys

import pytest

from tests.conftest import _stack_missing, x_display_problem

_IN_PROCESS_QT = {"qapp", "qtbot"}


def _qt_would_open_the_display() -> bool:
    """True when a Qt application made now would connect to X (xcb is Qt's default on Linux)."""
    qtgui = sys.modules.get("PySide6.QtGui")
    if qtgui is not None and qtgui.QGuiApplication.instance() is not None:
        return False  # already made (and alive): nothing more to open
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not platform:
        return sys.platform.startswith("linux")
    return "xcb" in platform


def _needs_display(item: pytest.Item) -> bool:
    fixtures = set(getattr(item, "fixturenames", ()))
    if item.get_closest_marker("display") is not None or "desktop" in fixtures:
        return True
    return bool(fixtures & _IN_PROCESS_QT) and _qt_would_open_the_display()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if _needs_display(item):
        problem = x_display_problem()
        if problem is not None:
            _stack_missing(problem)
