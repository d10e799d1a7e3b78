"""The tray app's lifecycle from the user's side: Quit and Stop always work, whatever the model or the
server is doing, and nothing Sightline started is left running after it quits.

The whole app runs as its own process (tests/integration/app_harness.py) on Xvfb with the tray host;
keys are pressed with xdotool and signals sent as a desktop session or a terminal sends them. The
server is the loopback vLLM stand-in (tests/fakes/vllm_server.py) scripted to stall or drip; the
model is the tiny random Phi-4-multimodal checkpoint loaded through the real code.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from app.settings.schema import Settings
from app.settings.store import save_settings
from tests.fakes.vllm_server import FakeVllmServer, Fault
from tests.integration.test_app_e2e import PREFIX, AppProcess, xdo

pytestmark = [pytest.mark.display, pytest.mark.slow]

QUIT_WITHIN_S = 2.0
STOP_WITHIN_S = 1.0


@pytest.fixture
def lifecycle_env(desktop, pulse, sightline_home):
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "xcb"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("SIGHTLINE_NO_HOTKEYS", None)
    return env


@pytest.fixture
def stalling_server():
    with FakeVllmServer() as server:
        yield server


def _remote_settings(server: FakeVllmServer) -> None:
    save_settings(Settings(speech_driver="silent", backend="remote", server_url=server.url))


def _press(*keys: str) -> None:
    """The prefix chord, then each key, as a keyboard user presses them."""
    xdo("key", PREFIX)
    time.sleep(0.3)
    for key in keys:
        xdo("key", key)


def _wait_exit(app: AppProcess, started: float, limit: float = 30.0) -> tuple[int, float]:
    """The exit code and how long after `started` the process was gone."""
    try:
        code = app.proc.wait(limit)
    except subprocess.TimeoutExpired:
        app.proc.kill()
        app.proc.wait(10)
        raise AssertionError(f"the app did not exit within {limit} s") from None
    return code, time.monotonic() - started


def _assert_clean_exit(app: AppProcess, code: int, elapsed: float) -> None:
    stderr = app.proc.stderr.read()
    assert "Destroyed while thread" not in stderr, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert code == 0, f"exit {code} after {elapsed:.2f} s: {stderr[-2000:]}"
    assert elapsed < QUIT_WITHIN_S, f"exit took {elapsed:.2f} s"
    report = app.read_report()  # what was shown and heard was written before the exit
    assert report["driver"] == "silent"


def _start_stalled_answer(app: AppProcess, server: FakeVllmServer) -> None:
    app.wait_for("ready", timeout=120)
    time.sleep(1.5)  # the global key listener connects to the display
    _press("s")
    app.wait_for("chunk", timeout=60)
    deadline = time.monotonic() + 10
    while server.requests == [] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the server has sent its few words and is now silent


@pytest.mark.parametrize("how", ["quit key", "SIGTERM"])
def test_quit_during_a_stalled_server_stream(lifecycle_env, stalling_server, tmp_path, how):
    _remote_settings(stalling_server)
    stalling_server.script(Fault(stall_after=3))
    app = AppProcess(tmp_path / "report.json", lifecycle_env)
    try:
        _start_stalled_answer(app, stalling_server)
        started = time.monotonic()
        if how == "quit key":
            _press("F4")
        else:
            app.proc.send_signal(signal.SIGTERM)
        code, elapsed = _wait_exit(app, started)
    finally:
        app.stop()
    _assert_clean_exit(app, code, elapsed)


def test_stop_ends_a_dripping_stream_at_once_and_the_next_job_runs(lifecycle_env, stalling_server, tmp_path):
    """Stop (prefix, X) while the server drips a word a second: the user hears silence at once, no
    late word of that answer is shown or spoken, and the next command is answered without waiting
    for the dripping stream."""
    _remote_settings(stalling_server)
    stalling_server.script(Fault(token_delay=1.0))
    app = AppProcess(tmp_path / "report.json", lifecycle_env)
    try:
        app.wait_for("ready", timeout=120)
        time.sleep(1.5)
        _press("s")
        first = app.wait_for("chunk", timeout=60)
        job = first["chunk"]
        app.wait_for("chunk", timeout=10)
        xdo("key", PREFIX)
        time.sleep(0.3)
        pressed = time.time()
        xdo("key", "x")
        idle = app.wait_for("state", timeout=10)
        while idle["state"] != "idle":
            idle = app.wait_for("state", timeout=10)
        told_after = idle["t"] - pressed
        assert told_after < STOP_WITHIN_S, f"the app became idle {told_after:.2f} s after Stop"

        # Three more seconds of the drip: nothing of the stopped answer reaches the user.
        late = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                event = app.lines.get(timeout=0.2)
            except Exception:
                continue
            if event.get("chunk") == job or "speaking" in event:
                late.append(event)
        assert late == [], late

        # The next command is answered at once (a clean answer from the server this time).
        asked = time.monotonic()
        _press("s")
        done = app.wait_for("finished", timeout=30)
        assert done["backend"] == "remote" and done["error"] is None
        assert time.monotonic() - asked < 10
    finally:
        assert app.stop() == 0
    report = app.read_report()
    stopped, answered = report["answers"][1], report["answers"][0]  # newest first
    assert len(stopped["text"].split()) < 8  # the stopped answer did not grow after Stop
    assert answered["text"].startswith("Model ")


def test_sigterm_during_a_slow_model_load(lifecycle_env, tiny_model_dir, tmp_path):
    """The model load sits in a library call that does not look at the cancel token."""
    save_settings(Settings(speech_driver="silent", model_dir=str(tiny_model_dir)))
    env = dict(lifecycle_env, SIGHTLINE_HARNESS_LOAD_DELAY="120")
    app = AppProcess(tmp_path / "report.json", env)
    try:
        app.wait_for("ready", timeout=120)
        app.wait_for("loading", timeout=60)
        time.sleep(0.5)
        started = time.monotonic()
        app.proc.send_signal(signal.SIGTERM)
        code, elapsed = _wait_exit(app, started)
    finally:
        app.stop()
    _assert_clean_exit(app, code, elapsed)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_an_idle_tray_with_the_model_loaded(lifecycle_env, tiny_model_dir, tmp_path, signum):
    save_settings(Settings(speech_driver="silent", model_dir=str(tiny_model_dir)))
    app = AppProcess(tmp_path / "report.json", lifecycle_env)
    try:
        app.wait_for("ready", timeout=120)
        status = app.wait_for("model_state", timeout=120)
        while status["model_state"] != "ready":
            status = app.wait_for("model_state", timeout=120)
        time.sleep(1.0)
        started = time.monotonic()
        app.proc.send_signal(signum)
        code, elapsed = _wait_exit(app, started)
    finally:
        app.stop()
    _assert_clean_exit(app, code, elapsed)


# --- nothing is left running ----------------------------------------------------------------------

PR_SET_CHILD_SUBREAPER = 36


def _children_of(pid: int) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found[int(entry.name)] = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                )
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.fixture
def subreaper():
    """Make this test process the subreaper: whatever the app starts and leaves behind (even a
    daemon that double-forks, as dbus-launch does) becomes our child, where we can count it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) is not available")
    before = set(_children_of(os.getpid()))
    left: dict[int, str] = {}
    yield before, left
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    for pid in left:  # clean up what a failing run left, by the PID we found
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


@pytest.fixture
def own_display(tmp_path):
    """A display of its own, on which nothing has started a D-Bus session bus yet."""
    number = 150
    while Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
        number += 1
    name = f":{number}"
    xvfb = subprocess.Popen(
        ["Xvfb", name, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while subprocess.run(["xdpyinfo", "-display", name], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "Xvfb did not start"
            time.sleep(0.1)
        yield name
    finally:
        xvfb.terminate()
        try:
            xvfb.wait(10)
        except subprocess.TimeoutExpired:
            xvfb.kill()
            xvfb.wait(10)


@pytest.mark.skipif(
    shutil.which("dbus-launch") is None, reason="dbus-x11 is not installed: no bus can autolaunch"
)
def test_nothing_started_by_the_app_outlives_it(lifecycle_env, own_display, tmp_path, subreaper):
    """On an X display without a session bus (no DBUS_SESSION_BUS_ADDRESS, no user bus), the app
    starts, speaks and quits: no dbus-launch, dbus-daemon or other process it started is left."""
    before, left = subreaper
    save_settings(Settings(speech_driver="silent", earcons=True))
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = dict(lifecycle_env, DISPLAY=own_display, XDG_RUNTIME_DIR=str(runtime), SIGHTLINE_NO_HOTKEYS="1")
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    app = AppProcess(tmp_path / "report.json", env)
    try:
        app.wait_for("ready", timeout=120)
        app.wait_for("speaking", timeout=60)
        time.sleep(2.0)
        started = time.monotonic()
        app.proc.send_signal(signal.SIGTERM)
        code, elapsed = _wait_exit(app, started)
    finally:
        app.stop()
    _assert_clean_exit(app, code, elapsed)
    time.sleep(0.5)
    left.update({pid: cmd for pid, cmd in _children_of(os.getpid()).items() if pid not in before})
    assert left == {}, f"still running after quit: {left}"


# --- a settings file the app cannot use never stops it -------------------------------------------


@pytest.mark.parametrize("shape", ["fifo", "nested"])
def test_the_tray_starts_and_says_why_with_an_unusable_settings_file(lifecycle_env, tmp_path, shape):
    from app.settings.store import BROKEN_NOTICE, NOT_A_FILE_NOTICE, settings_path

    path = settings_path()
    if shape == "fifo":
        os.mkfifo(path)  # opening it to read would wait forever for a writer
        notice = NOT_A_FILE_NOTICE
    else:
        path.write_bytes(b"[" * 200_000 + b"]" * 200_000)  # RecursionError in a JSON parser
        notice = BROKEN_NOTICE
    env = dict(lifecycle_env, SIGHTLINE_NO_HOTKEYS="1")
    app = AppProcess(tmp_path / "report.json", env)
    try:
        app.wait_for("ready", timeout=60)
        heard = app.wait_for("speaking", timeout=30)
        while heard["speaking"] != notice:
            heard = app.wait_for("speaking", timeout=30)
        started = time.monotonic()
        app.proc.send_signal(signal.SIGTERM)
        code, elapsed = _wait_exit(app, started)
    finally:
        app.stop()
    assert code == 0 and elapsed < QUIT_WITHIN_S
    if shape == "nested":
        assert len(list(path.parent.glob("settings.json.broken-*"))) == 1
