"""What grounding costs per 1080p screen: OCR time, the text it adds to the prompt, and the guard.

Screens are rendered offscreen by Qt with known text (tests/fixtures/screens_layout.py). For each
it prints the time to read the text in reading order, its characters, the tokens it adds to the
prompt, and that beside the picture's own tokens at normal detail (12 crops), side by side. Tokens
are counted two ways: with the tiny test checkpoint's tokenizer (a small byte-level BPE trained on
a few sentences: an upper bound) and as characters / 4 (English text in a 200k-entry vocabulary
such as Phi-4's; an estimate, since the real tokenizer cannot be downloaded here). Then the time
the quote guard takes per answer sentence.
Run: .venv/bin/python -m bench.grounding [--screens 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.core.cancel import CancelToken  # noqa: E402
from app.core.types import Detail, ImageInput, JobRequest, Task  # noqa: E402
from app.inference.grounding import GuardedStream, QuoteGuard, read_picture_text  # noqa: E402
from app.inference.ocr import OcrBackend  # noqa: E402
from app.inference.phi4_local import image_token_count  # noqa: E402
from app.inference.prompts import build_prompt  # noqa: E402
from tests.fixtures.screens_layout import render_screen  # noqa: E402

ANSWER = (
    'The window is a text editor with a dialog that asks "Save changes to the document?" '
    "The invoice number is 10482 and the total is $1,250.00, due on 2026-12-03. "
    "The Save button has focus; Cancel and Don't Save are beside it. "
    "Jane Doe is named as the author in the status bar. "
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screens", type=int, default=3)
    args = parser.parse_args(argv)

    from PySide6.QtGui import QGuiApplication

    from tests.fixtures.tiny_phi4 import build_tiny_phi4

    app = QGuiApplication.instance() or QGuiApplication([])  # noqa: F841 - the screens are painted by Qt

    with tempfile.TemporaryDirectory() as tmp:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(build_tiny_phi4(Path(tmp) / "tiny")))

    def tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    ocr = OcrBackend()
    t0 = time.perf_counter()
    ocr.load(CancelToken())
    print(f"OCR engine load: {time.perf_counter() - t0:.2f} s (once per run)")
    image_tokens = image_token_count(1920, 1080, Detail.NORMAL.max_crops)
    rows = []
    texts = []
    for index in range(args.screens):
        pixels = render_screen(index)
        read_picture_text(ocr, ImageInput(pixels.copy(), "screen"))  # warm (a picture of its own)
        image = ImageInput(pixels, "screen")  # a new picture: read, not found in the per-picture memo
        t0 = time.perf_counter()
        text = read_picture_text(ocr, image)
        ms = (time.perf_counter() - t0) * 1000
        request = JobRequest(Task.DESCRIBE_BRIEF, image=image)
        plain = build_prompt(request).user_text
        grounded = build_prompt(request, text).user_text
        added_tiny = tokens(grounded) - tokens(plain)
        added_est = round((len(grounded) - len(plain)) / 4)
        rows.append((ms, len(text), added_tiny, added_est))
        texts.append(text)
        print(
            f"screen {index}: OCR {ms:.0f} ms, {len(text)} chars, {text.count(chr(10)) + 1} lines; "
            f"tokens added {added_est} (chars/4) / {added_tiny} (tiny BPE, upper bound); "
            f"picture {image_tokens} tokens at normal detail: text adds {added_est / image_tokens:.0%} "
            f"({added_tiny / image_tokens:.0%})"
        )
    ms = statistics.median(r[0] for r in rows)
    est = statistics.median(r[3] for r in rows)
    tiny = statistics.median(r[2] for r in rows)
    print(
        f"median per 1080p screen: OCR {ms:.0f} ms, {est} tokens added (estimate; tiny BPE {tiny}), "
        f"{est / image_tokens:.2f}x the picture's {image_tokens} tokens"
    )

    guard = QuoteGuard(texts[0])
    sentences = 0
    t0 = time.perf_counter()
    for _ in range(50):
        stream = GuardedStream(guard)
        for i in range(0, len(ANSWER), 4):
            sentences += len(stream.feed(ANSWER[i : i + 4]))
        sentences += len(stream.flush())
    per = (time.perf_counter() - t0) * 1000 / sentences
    print(f"guard: {per:.2f} ms per answer sentence (streamed 4 characters at a time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
