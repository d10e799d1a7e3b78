"""The packaged Light edition: no local AI runtime inside, and a frozen program that works.

The bundle is built once per session with installer/build.py --reuse, which keeps an existing
build/dist-light/ when nothing that goes into it has changed (a fresh build takes about a minute).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.fixtures.screens_layout import render_screen, screen_blocks

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    """installer/*.py by path (the name `build` would clash with build/ and the PyPI package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


build = _load("sightline_installer_build", ROOT / "installer" / "build.py")
editions = sys.modules["editions"]  # imported by build.py from installer/

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),  # the first test of a session may build the bundle
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="the Light bundle is built here on Linux"
    ),
]


@pytest.fixture(scope="session")
def light_bundle() -> Path:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "installer" / "build.py"), "--edition", "light", "--reuse"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return build.bundle_dir("light")


def frozen(bundle: Path, *args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the frozen program with nothing from this checkout or its virtualenv on hand."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "SIGHTLINE_HOME": str(home / "sightline"),
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        [str(bundle / "sightline"), *args], cwd=home, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_light_bundle_has_no_local_ai_runtime(light_bundle):
    assert build.local_runtime_in(light_bundle) == []
    modules = build.bundled_modules(light_bundle)
    # What Light does need is there, so the check above is not passing on an empty or broken bundle.
    for module in (
        "app.cli",
        "app.inference.phi4_local",
        "app.inference.ocr",
        "onnxruntime",
        "rapidocr",
        "PySide6",
        "pyttsx3.drivers.espeak",
        "sounddevice",
        "pynput.keyboard._xorg",
    ):
        assert module in modules, module
    internal = light_bundle / "_internal"
    for data in (
        "models/manifest.json",
        "resources/vad/silero_vad.onnx",
        "pocketsphinx/model/en-us",
        "PySide6/QtWidgets.abi3.so",
        "PySide6/Qt/plugins/platforms/libqxcb.so",
    ):
        assert (internal / data).exists(), data
    assert list((internal / "rapidocr" / "models").glob("*.onnx"))
    marker = build.read_marker(light_bundle)
    assert marker and marker["edition"] == "light"
    # The Light edition is far smaller than the local AI runtime alone (torch is over a gigabyte).
    assert build.tree_size(light_bundle) < 1024 * 2**20


def test_frozen_light_says_the_local_runtime_is_missing_in_one_sentence(light_bundle, tmp_path):
    image = tmp_path / "page.png"
    Image.new("RGB", (320, 200), "white").save(image)
    proc = frozen(light_bundle, "describe", "--image", str(image), "--backend", "local", home=tmp_path)
    assert proc.returncode == 5, (proc.returncode, proc.stderr)  # ExitCode.BACKEND_UNAVAILABLE
    assert "Traceback" not in proc.stderr + proc.stdout
    message = proc.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "local AI runtime is not installed" in message, message
    # One sentence: a single full stop, at the end ("5.23.0" is not a sentence break).
    assert message.endswith("."), message
    assert len(re.findall(r"[.!?](?:\s|$)", message)) == 1, message
    # How to add it, in words that fit a packaged app: install the Local AI edition, not pip.
    assert "Local AI" in message and "pip" not in message, message


def test_frozen_light_reads_a_screen_with_the_ocr_default(light_bundle, tmp_path, qapp):
    image = tmp_path / "screen.png"
    Image.fromarray(render_screen(0)).save(image)
    proc = frozen(light_bundle, "read", "--image", str(image), home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    first = screen_blocks(0)[0][0]
    last = screen_blocks(0)[-1][-1]
    assert first in proc.stdout and last in proc.stdout, proc.stdout
    assert proc.stdout.index(first) < proc.stdout.index(last)


@pytest.mark.display
def test_frozen_light_tray_starts_on_the_desktop(light_bundle, desktop, tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SIGHTLINE_HOME": str(tmp_path / "sightline"),
        "LANG": "C.UTF-8",
        "DISPLAY": desktop,
        "SIGHTLINE_NO_HOTKEYS": "1",  # global keys would grab the shared display
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "TMPDIR": str(tmp_path / "run"),  # its own single-instance socket, apart from any other Sightline
    }
    for name in ("PULSE_SERVER", "SPEECHD_ADDRESS"):
        if name in os.environ:
            env[name] = os.environ[name]
    (tmp_path / "run").mkdir(mode=0o700)
    err_path = tmp_path / "stderr.txt"
    with err_path.open("w") as err:
        proc = subprocess.Popen([str(light_bundle / "sightline")], cwd=tmp_path, env=env, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if "Sightline is running." in err_path.read_text(errors="replace"):
                break
            time.sleep(0.1)
        said = err_path.read_text(errors="replace")
        assert "Sightline is running." in said, said
        assert proc.poll() is None, said
        assert "Traceback" not in said and "Qt platform plugin" not in said, said
        log = (tmp_path / "sightline" / "logs" / "sightline.log").read_text(errors="replace")
        assert "Sightline started" in log, log[-2000:]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode in (0, -15), proc.returncode


def test_editions_differ_only_by_the_local_runtime():
    light, local = editions.EDITIONS["light"], editions.EDITIONS["local"]
    for name in editions.LOCAL_RUNTIME:
        assert name in light.excludes and name not in local.excludes
    assert set(local.excludes) <= set(light.excludes)
