"""Sightline's windows: tray, result window, region selector, settings dialog, theme.

Only this package (with app.jobs, app.commands.hotkeys and app.main) imports Qt.
"""

from __future__ import annotations

import sys


def protect_none_refcount() -> bool:
    """Guard against Qt bindings that drop a reference to None on every call returning nothing.

    PySide6 6.12.0 does this on Python 3.11 (on 3.12+ None is immortal, so it is harmless there):
    each `widget.update()`, `processEvents()` or `QTest.keyClick()` takes one reference from None,
    and the interpreter aborts with "deallocating None" after a few thousand calls. When the fault
    is present, None's reference count is raised far out of reach (what Python 3.12 does for every
    interpreter). Returns True when the guard was needed. Call it once, right after importing Qt.
    """
    if sys.version_info >= (3, 12):
        return False
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(64):
        probe.setObjectName("probe")  # returns nothing
    if sys.getrefcount(None) > before - 32:
        return False
    import ctypes

    refcount = ctypes.c_ssize_t.from_address(id(None))  # ob_refcnt, first field of every object
    refcount.value += 1 << 40
    return True
