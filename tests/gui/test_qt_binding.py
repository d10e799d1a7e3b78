"""Guards the PySide6 pin: 6.12.0 drops a reference to None on every call that returns nothing on
Python 3.11, and the interpreter aborts after a few thousand calls (a tray app makes that many in
minutes). If this fails, the installed PySide6 has the fault: pin a release without it."""

import sys

import pytest
from PySide6.QtCore import QObject


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12")
def test_void_calls_keep_none_alive():
    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(1000):
        probe.setObjectName("probe")
    assert sys.getrefcount(None) >= before - 10
