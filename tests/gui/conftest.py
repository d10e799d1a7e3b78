"""GUI tests: pytest-qt on the offscreen platform, with a guard against leaked threads.

QT_QPA_PLATFORM defaults to offscreen (set it to xcb to watch the tests on a display; without a
display that answers, the tests then skip with the reason instead of Qt aborting). Every GUI
test fails if it leaves a Python thread alive, a QThread started from Python still running, or
work in Qt's global thread pool.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QThread, QThreadPool  # noqa: E402 (after the platform is chosen)

from tests.conftest import _stack_missing, x_display_problem  # noqa: E402

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"

_started_qthreads: weakref.WeakSet = weakref.WeakSet()
_original_qthread_start = QThread.start


def _recording_start(self, *args, **kwargs):
    _started_qthreads.add(self)
    return _original_qthread_start(self, *args, **kwargs)


QThread.start = _recording_start  # every QThread started from Python is remembered (weakly)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """On xcb every test makes the Qt application on the display: ask for it first (Qt aborts)."""
    if "xcb" in os.environ.get("QT_QPA_PLATFORM", ""):
        problem = x_display_problem()
        if problem is not None:
            _stack_missing(problem)


@pytest.fixture(autouse=True)
def no_leaked_threads(qapp):
    """Fail the test if it leaves a thread running (checked for up to 5 s after it ends)."""
    before = {t for t in threading.enumerate() if t.is_alive()}
    already_running = {id(t) for t in _started_qthreads if _is_running(t)}
    yield
    deadline = time.monotonic() + 5.0
    while True:
        qapp.processEvents()
        py = [t.name for t in threading.enumerate() if _alive(t) and t not in before]
        qt = [
            f"{type(t).__name__}({t.objectName()!r})"
            for t in list(_started_qthreads)
            if id(t) not in already_running and _is_running(t)
        ]
        pool = QThreadPool.globalInstance().activeThreadCount()
        if not py and not qt and not pool:
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"threads left running: python={py} qthreads={qt} thread-pool workers={pool}", pytrace=False
            )
        time.sleep(0.05)


def _alive(thread: threading.Thread) -> bool:
    """Python keeps a placeholder for every foreign thread (a QThread, a library's pool) that ever
    ran Python code, and reports it alive forever. On Linux, ask the OS whether it still runs."""
    if isinstance(thread, threading._DummyThread) and thread.native_id is not None:
        task = Path(f"/proc/self/task/{thread.native_id}")
        if Path("/proc/self/task").is_dir():
            return task.exists()
    return thread.is_alive()


def _is_running(thread) -> bool:
    try:
        return thread.isRunning()
    except RuntimeError:  # the C++ object is gone, so the thread is too
        return False


@pytest.fixture
def render_on_display(desktop, screenshot_dir):
    """Render windows on the real X display in a child process (tests/gui/render_screens.py);
    returns the screenshot folder. `kind` is "result" or "region"."""
    import os
    import subprocess
    import sys

    def render(kind: str) -> Path:
        env = dict(os.environ, QT_QPA_PLATFORM="xcb", DISPLAY=desktop)
        proc = subprocess.run(
            [sys.executable, "-m", "tests.gui.render_screens", kind, str(screenshot_dir)],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return screenshot_dir

    return render


@pytest.fixture
def screenshot_dir() -> Path:
    """test-output/screenshots (git-ignored), created on demand."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR


@pytest.fixture
def make_app(qapp, monkeypatch):
    """`make_app(**settings)`: the whole tray app in-process, with the silent speech spy and no
    global keys (and no earcons, unless a setting says so); shut down after the test."""
    from app.settings.schema import Settings

    monkeypatch.setenv("SIGHTLINE_NO_HOTKEYS", "1")
    apps = []

    def make(**overrides):
        from app.main import SightlineApp

        overrides.setdefault("earcons", False)
        app = SightlineApp(qapp, Settings(speech_driver="silent", **overrides))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.shutdown()


def spoken(app) -> list[str]:
    """Every sentence the app's speech spy has started, in order."""
    return list(app.speech.driver.started)
