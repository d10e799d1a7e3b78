"""The headless desktop a whole-app benchmark needs (Xvfb and a tray host, a PulseAudio null sink,
speech-dispatcher), started with scripts/services.sh unless scripts/test.sh already runs them, and
stopped by PID at the end."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "scripts" / "services.sh"


def start_services() -> str | None:
    """Start the services and take their environment; None when they already run."""
    if os.environ.get("SIGHTLINE_TEST_SERVICES"):
        return None
    state = tempfile.mkdtemp(prefix="sightline-bench-")
    subprocess.run([str(SERVICES), "start", state], check=True, stdout=subprocess.DEVNULL)
    for line in Path(state, "env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        os.environ[key] = value
    return state


def stop_services(state: str | None) -> None:
    if state:
        subprocess.run([str(SERVICES), "stop", state], check=False)
