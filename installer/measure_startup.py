"""Time from launch to tray-ready ("Sightline is running." on stderr), frozen bundle beside checkout.

    source /tmp/svc/env   # or any X display with a tray host
    .venv/bin/python installer/measure_startup.py [--frozen /opt/sightline/sightline] [--runs 5]

Runs alternate between the two programs so both see the same machine load. Global keys are off
(SIGHTLINE_NO_HOTKEYS=1) so a shared display is not grabbed. Each run gets its own home folder and
its own single-instance socket (TMPDIR), and is stopped by its PID.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = "Sightline is running."


def drop_page_cache() -> None:
    """Make the next start read every file from disk, as after a reboot (root only, Linux)."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("1\n")


def time_to_ready(command: list[str], timeout: float = 90.0) -> float:
    with tempfile.TemporaryDirectory(prefix="sightline-start-") as tmp:
        home = Path(tmp)
        env = dict(
            os.environ,
            HOME=str(home),
            SIGHTLINE_HOME=str(home / "sightline"),
            TMPDIR=str(home),
            SIGHTLINE_NO_HOTKEYS="1",
        )
        err_path = home / "stderr.txt"
        with err_path.open("w") as err:
            started = time.monotonic()
            proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=err, stdout=subprocess.DEVNULL)
        try:
            while time.monotonic() - started < timeout:
                if READY in err_path.read_text(errors="replace"):
                    return time.monotonic() - started
                if proc.poll() is not None:
                    break
                time.sleep(0.02)
            raise RuntimeError(f"{command[0]} did not become ready: {err_path.read_text(errors='replace')}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frozen", default="/opt/sightline/sightline", help="the bundled program")
    parser.add_argument("--checkout", default=str(ROOT / ".venv" / "bin" / "sightline"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="empty the page cache before every run (root)")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):
        print("No DISPLAY: start the desktop stack first (source /tmp/svc/env).", file=sys.stderr)
        return 1
    programs = {"frozen": [args.frozen], "checkout": [args.checkout]}
    times: dict[str, list[float]] = {name: [] for name in programs}
    for _ in range(args.runs):
        for name, command in programs.items():
            if args.cold:
                drop_page_cache()
            times[name].append(time_to_ready(command))
    for name, values in times.items():
        print(
            f"{name:9s} first {values[0]:.2f} s, median {statistics.median(values):.2f} s "
            f"(runs: {', '.join(f'{v:.2f}' for v in values)})"
        )
    ratio = statistics.median(times["frozen"]) / statistics.median(times["checkout"])
    note = " (page cache emptied before every run)" if args.cold else ""
    print(f"frozen / checkout median: {ratio:.2f}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
