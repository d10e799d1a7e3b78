"""Milliseconds per capture mode at 1080p and at 4K: mss (what Sightline uses) beside Qt's grab.

1080p is the desktop stack's display ($DISPLAY, Xvfb 1920x1080); 4K is a second Xvfb at 3840x2160
that this benchmark starts on a free display number and stops by its PID. On each display a worker
process shows a Qt window with known content, gives it the input focus (xdotool), and times each
mode through app.capture.screen (mss, to a frozen ImageInput) and through app.ui.qt_grab
(QScreen.grabWindow, to the same ImageInput) for the same rectangle, and checks that the pixels
are identical. Run: .venv/bin/python -m bench.capture [--n 15]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _display_answers(display: str) -> bool:
    if not display or shutil.which("xdpyinfo") is None:
        return False
    env = dict(os.environ, DISPLAY=display)
    return subprocess.run(["xdpyinfo"], env=env, capture_output=True, timeout=10).returncode == 0


def _free_display() -> int:
    for n in range(140, 240):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number between :140 and :239")


def _start_xvfb(width: int, height: int) -> tuple[subprocess.Popen, str]:
    n = _free_display()
    proc = subprocess.Popen(
        ["Xvfb", f":{n}", "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    display = f":{n}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Xvfb {display} exited with {proc.returncode}")
        if _display_answers(display):
            return proc, display
        time.sleep(0.1)
    _stop(proc)
    raise RuntimeError(f"Xvfb {display} did not answer within 15 s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _median_ms(fn, n: int) -> float:
    fn()  # warm (first grab allocates buffers, first Qt grab connects shared memory)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def worker(n: int) -> int:
    """Runs on one display (DISPLAY set by the parent): prints one JSON line of results."""
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    import numpy as np
    from PySide6.QtGui import QPainter
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication, QWidget

    from app.capture import screen
    from app.core.types import ImageInput
    from app.ui.qt_grab import qt_grab
    from tests.fixtures.screens_layout import paint_window

    app = QApplication([])

    class Win(QWidget):
        def paintEvent(self, _e):  # noqa: N802
            p = QPainter(self)
            paint_window(p, self.width(), self.height())
            p.end()

    win = Win()
    win.setGeometry(100, 100, 1200, 800)
    win.show()
    QTest.qWaitForWindowExposed(win, 5000)
    QTest.qWait(100)
    if shutil.which("xdotool"):
        subprocess.run(["xdotool", "windowfocus", "--sync", str(int(win.winId()))], timeout=10)
    mon = screen.list_monitors()[0]
    cx, cy = mon.x + mon.width // 2, mon.y + mon.height // 2
    if shutil.which("xdotool"):
        # No --sync: it waits for a motion event, which never comes if the pointer is already there.
        subprocess.run(["xdotool", "mousemove", str(cx), str(cy)], timeout=10)

    modes = {
        "screen": lambda: screen.capture_screen(1),
        "window": screen.capture_active_window,
        "region 800x600": lambda: screen.capture_region(cx - 400, cy - 300, 800, 600),
        "pointer 400": lambda: screen.capture_pointer(side=400),
    }
    rows = []
    for name, fn in modes.items():
        try:
            shot = fn()
        except Exception as exc:  # noqa: BLE001 - reported in the table
            rows.append({"mode": name, "error": str(exc)})
            continue
        b = shot.bounds

        def qt(b=b, name=name):
            return ImageInput(qt_grab(b.x, b.y, b.width, b.height), name, b)

        same = bool(np.array_equal(qt().pixels, fn().pixels))
        rows.append(
            {
                "mode": name,
                "size": f"{b.width}x{b.height}",
                "mss_ms": _median_ms(fn, n),
                "qt_ms": _median_ms(qt, n),
                "identical": same,
            }
        )
    win.close()
    del app
    print(json.dumps(rows))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=15, help="captures per mode and grabber")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.n)

    started: list[subprocess.Popen] = []
    try:
        displays = []
        here = os.environ.get("DISPLAY", "")
        if _display_answers(here):
            displays.append(("1080p", here))
        else:
            proc, display = _start_xvfb(1920, 1080)
            started.append(proc)
            displays.append(("1080p", display))
        proc, display = _start_xvfb(3840, 2160)
        started.append(proc)
        displays.append(("4K", display))

        print(
            f"{'display':8} {'mode':15} {'size':>10} {'mss ms':>8} {'Qt ms':>8} {'Qt/mss':>7} "
            f"{'same pixels':>12}"
        )
        for label, display in displays:
            env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb", PYTHONPATH=str(REPO))
            out = subprocess.run(
                [sys.executable, "-m", "bench.capture", "--worker", "--n", str(args.n)],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if out.returncode != 0:
                print(f"{label}: worker failed: {out.stderr.strip()[-500:]}")
                continue
            for row in json.loads(out.stdout.strip().splitlines()[-1]):
                if "error" in row:
                    print(f"{label:8} {row['mode']:15} {row['error']}")
                    continue
                print(
                    f"{label:8} {row['mode']:15} {row['size']:>10} {row['mss_ms']:8.2f} {row['qt_ms']:8.2f} "
                    f"{row['qt_ms'] / row['mss_ms']:6.1f}x {'yes' if row['identical'] else 'NO':>12}"
                )
    finally:
        for proc in started:
            _stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
