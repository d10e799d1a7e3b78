"""The OCR default on rendered 1080p screens, with tesseract beside it when it is installed.

Screens are rendered offscreen by Qt with known text (a title bar, a sidebar, two columns of
sentences; tests/fixtures/screens_layout.py). For each engine it prints seconds per screen and the
character error rate of the text in reading order (edit distance to the expected text, spaces
and line breaks collapsed, divided by its length), so a correct read in the wrong order counts as
errors. tesseract is fed the same pixels as PNG on stdin; nothing is written to disk.
Run: .venv/bin/python -m bench.ocr [--screens 4]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.core.cancel import CancelToken  # noqa: E402
from app.core.types import ImageInput, JobRequest, Task  # noqa: E402
from app.inference.ocr import OcrBackend  # noqa: E402
from tests.fixtures.screens_layout import render_screen, screen_text  # noqa: E402


def normalise(text: str) -> str:
    return " ".join(text.split())


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def cer(got: str, expected: str) -> float:
    got, expected = normalise(got), normalise(expected)
    return edit_distance(got, expected) / max(1, len(expected))


def run_sightline(backend: OcrBackend, pixels) -> str:
    request = JobRequest(Task.READ_TEXT, image=ImageInput(pixels, "file"))
    return "".join(backend.generate(request, CancelToken()))


def run_tesseract(pixels) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", compress_level=1)
    out = subprocess.run(
        ["tesseract", "stdin", "stdout", "-l", "eng"],
        input=buf.getvalue(),
        capture_output=True,
        timeout=120,
        check=True,
    )
    return out.stdout.decode("utf-8", "replace")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screens", type=int, default=3, help="screens per text size")
    parser.add_argument("--sizes", default="26,15", help="text pixel sizes (15 is typical UI text at 1080p)")
    args = parser.parse_args()

    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication([])
    sizes = [int(v) for v in args.sizes.split(",")]
    screens = [
        (px, render_screen(i, text_px=px), screen_text(i)) for px in sizes for i in range(args.screens)
    ]
    del app

    backend = OcrBackend()
    t0 = time.perf_counter()
    backend.load(CancelToken())
    load_s = time.perf_counter() - t0

    engines = {"sightline ocr (rapidocr)": lambda px: run_sightline(backend, px)}
    if shutil.which("tesseract"):
        engines["tesseract cli"] = run_tesseract
    else:
        print("tesseract is not installed: measuring the OCR default alone")

    # Warm both once (first-call costs are not per-screen costs).
    for fn in engines.values():
        fn(screens[0][1])

    # Engines alternate screen by screen, so a burst of load from elsewhere hits both alike.
    results: dict[tuple[str, int], tuple[list[float], list[float]]] = {}
    for px, pixels, expected in screens:
        for name, fn in engines.items():
            t = time.perf_counter()
            text = fn(pixels)
            elapsed = time.perf_counter() - t
            times, errors = results.setdefault((name, px), ([], []))
            times.append(elapsed)
            errors.append(cer(text, expected))

    print(
        f"{args.screens} rendered 1920x1080 screens per text size, about {len(screen_text(0))} characters "
        f"each; rapidocr engine load {load_s:.2f} s"
    )
    print(f"{'engine':26} {'text px':>7} {'s/screen (median)':>18} {'min':>6} {'max':>6} {'CER':>7}")
    for (name, px), (times, errors) in results.items():
        print(
            f"{name:26} {px:7d} {statistics.median(times):18.2f} {min(times):6.2f} {max(times):6.2f} "
            f"{statistics.mean(errors):7.2%}"
        )
    names = list(engines)
    if len(names) == 2:
        for px in sizes:
            (ta, ea), (tb, eb) = results[(names[0], px)], results[(names[1], px)]
            print(
                f"{px} px: time {names[0]} / {names[1]} = "
                f"{statistics.median(ta) / statistics.median(tb):.2f}x; "
                f"CER {statistics.mean(ea):.2%} vs {statistics.mean(eb):.2%}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
