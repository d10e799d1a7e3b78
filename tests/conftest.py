"""Shared fixtures.

The desktop stack (Xvfb + tray host, PulseAudio null sink, speech-dispatcher) is started by
scripts/test.sh through scripts/services.sh, which sets SIGHTLINE_TEST_SERVICES. Tests that need it
use the `desktop` or `pulse` fixtures: when the variable is set and the stack does not answer they
fail; when it is unset (a bare `pytest` on a developer machine) they skip and say why.

Qt's xcb platform aborts the whole interpreter when it cannot open the display, so the display is
asked for with xdpyinfo, never with Qt (x_display_problem; tests/integration/conftest.py uses it
before any in-process Qt application is made).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest


def _stack_missing(what: str) -> None:
    if os.environ.get("SIGHTLINE_TEST_SERVICES"):
        pytest.fail(f"{what} is not answering although scripts/services.sh started it")
    pytest.skip(f"{what} not running: use scripts/test.sh (it starts Xvfb, PulseAudio, speech-dispatcher)")


@pytest.fixture(autouse=True)
def sightline_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own user dirs, so nothing touches the real config or models."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SIGHTLINE_HOME", str(home))
    monkeypatch.delenv("SIGHTLINE_MODELS_DIR", raising=False)
    return home


def x_display_problem() -> str | None:
    """None when the X display in DISPLAY answers, else what is missing ("The X display :99"),
    for _stack_missing. Asks xdpyinfo, not Qt: a failed xcb connection aborts the interpreter."""
    display = os.environ.get("DISPLAY", "")
    if not display or shutil.which("xdpyinfo") is None:
        return "The X display"
    try:
        rc = subprocess.run(["xdpyinfo"], capture_output=True, timeout=10).returncode
    except subprocess.TimeoutExpired:
        rc = -1
    return None if rc == 0 else f"The X display {display}"


@pytest.fixture
def desktop() -> str:
    """An X display (Xvfb 1920x1080). Returns DISPLAY."""
    problem = x_display_problem()
    if problem is not None:
        _stack_missing(problem)
    return os.environ["DISPLAY"]


@pytest.fixture
def pulse() -> str:
    """The PulseAudio null sink `vsink` and source `vmic`. Returns PULSE_SERVER."""
    server = os.environ.get("PULSE_SERVER", "")
    if not server or shutil.which("pactl") is None:
        _stack_missing("PulseAudio")
    rc = subprocess.run(["pactl", "info"], capture_output=True, timeout=10).returncode
    if rc != 0:
        _stack_missing(f"PulseAudio at {server}")
    return server


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Phi4Multimodal checkpoint saved in the real layout (built once per run)."""
    from tests.fixtures.tiny_phi4 import build_tiny_phi4

    return build_tiny_phi4(tmp_path_factory.mktemp("tiny-phi4") / "Phi-4-multimodal-instruct")


@pytest.fixture
def no_thread_leak():
    """Fails the test if it leaves a new non-daemon thread running."""
    before = set(threading.enumerate())
    yield
    deadline = threading.Event()
    for _ in range(50):
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked:
            return
        deadline.wait(0.1)
    pytest.fail(f"threads left running: {[t.name for t in leaked]}")


def pytest_sessionfinish(session, exitstatus):
    """A test that leaves an inference thread inside a library call makes the process end through
    app.jobs.worker's os._exit at interpreter exit; that exit must carry pytest's own verdict."""
    import sys

    worker = sys.modules.get("app.jobs.worker")
    if worker is not None:
        worker.set_exit_code(int(exitstatus))
