"""Describe a 1920x1080 screenshot with the local backend, against a bare reference, side by side.

    .venv/bin/python bench/pipeline.py [--reps 5] [--tokens 48]

Builds the tiny random Phi-4-multimodal checkpoint in a temporary folder, then for the same
screenshot runs, alternately:
  ours       Phi4LocalBackend.generate(): prompt, crop budget, processor, adapter, streaming thread
  reference  processor(text, images) + model.generate(), as in the model card's sample, with the
             same prompt text, the same crop cap and the same greedy settings, no streaming
and prints the stage times (capture, preprocess, first chunk, total) and the medians' ratios with
the goals beside them. The screenshot is captured from the X display when DISPLAY is set, else
synthesised (title bar, menu, toolbar, side panel, text, a dialog).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GOAL_OVERHEAD = 1.05
GOAL_FIRST_CHUNK = 0.5


def synthesise_screen(width: int = 1920, height: int = 1080):
    """A screen-like RGB image: window chrome, menus, toolbar, panels, lines of text, a dialog."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, height), (236, 238, 242))
    d = ImageDraw.Draw(img)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 18)
        big = ImageFont.truetype("DejaVuSans-Bold.ttf", 22)
    except OSError:
        font = big = ImageFont.load_default()
    d.rectangle([0, 0, width, 36], fill=(45, 62, 110))
    d.text((14, 7), "Quarterly report.odt - Writer", fill="white", font=big)
    d.rectangle([0, 36, width, 66], fill=(250, 250, 250))
    for i, name in enumerate(["File", "Edit", "View", "Insert", "Format", "Tools", "Window", "Help"]):
        d.text((14 + i * 80, 41), name, fill=(20, 20, 20), font=font)
    d.rectangle([0, 66, width, 110], fill=(228, 230, 236))
    for i in range(24):
        x = 12 + i * 46
        d.rounded_rectangle(
            [x, 72, x + 36, 104], radius=5, fill=(200 - i * 3, 210, 225), outline=(150, 150, 160)
        )
    d.rectangle([0, 110, 300, height - 30], fill=(247, 247, 250))
    for i in range(22):
        d.text((18, 124 + i * 38), f"Section {i + 1}: heading text", fill=(40, 40, 60), font=font)
    d.rectangle([330, 130, width - 40, height - 60], fill="white", outline=(190, 190, 200))
    sentence = "The committee reviewed the budget and agreed to move the deadline to the end of May"
    words = sentence.split(" ")
    rng = np.random.default_rng(7)
    for line in range(30):
        text = " ".join(rng.choice(words, size=14))
        d.text((370, 160 + line * 28), text, fill=(25, 25, 25), font=font)
    d.rectangle([760, 380, 1260, 620], fill=(252, 252, 252), outline=(90, 90, 90), width=2)
    d.text((790, 400), "Save changes before closing?", fill=(0, 0, 0), font=big)
    d.text((790, 450), "Your changes will be lost if you don't save them.", fill=(60, 60, 60), font=font)
    for i, label in enumerate(["Save", "Don't Save", "Cancel"]):
        x = 820 + i * 140
        d.rounded_rectangle(
            [x, 550, x + 120, 590], radius=6, fill=(220, 230, 250), outline=(60, 90, 160), width=2
        )
        d.text((x + 18, 560), label, fill=(0, 0, 0), font=font)
    d.rectangle([0, height - 30, width, height], fill=(220, 222, 228))
    d.text((14, height - 26), "Page 3 of 12   Words: 4,182   English (UK)", fill=(30, 30, 30), font=font)
    return np.asarray(img, dtype=np.uint8)


def capture_image():
    """(ImageInput, seconds, where it came from)."""
    from app.core.types import ImageInput

    if os.environ.get("DISPLAY"):
        try:
            from app.capture.screen import capture_screen

            t0 = time.perf_counter()
            image = capture_screen(1)
            elapsed = time.perf_counter() - t0
            if image.width >= 1900 and image.height >= 1000:
                return image, elapsed, f"X display {os.environ['DISPLAY']} ({image.width}x{image.height})"
            reason = f"the display is {image.width}x{image.height}"
        except Exception as exc:  # the benchmark still runs on a synthetic screen
            reason = getattr(exc, "sentence", repr(exc))
        print(f"note: screen capture not used ({reason}); synthesising instead")
    t0 = time.perf_counter()
    image = ImageInput(synthesise_screen(), "screen")
    return image, time.perf_counter() - t0, "synthesised 1920x1080 screen"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=6, help="measured repetitions of each (median)")
    parser.add_argument(
        "--tokens", type=int, default=96, help="answer length in tokens (forced; a brief description)"
    )
    args = parser.parse_args(argv)

    import torch

    from app.core.cancel import CancelToken
    from app.core.types import Detail, JobRequest, Task
    from app.inference.phi4_local import Phi4LocalBackend
    from tests.fixtures.tiny_phi4 import build_tiny_phi4

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="sightline-bench-") as tmp:
        t0 = time.perf_counter()
        folder = build_tiny_phi4(Path(tmp) / "Phi-4-multimodal-instruct")
        build_s = time.perf_counter() - t0
        backend = Phi4LocalBackend(folder, device="cpu")
        t0 = time.perf_counter()
        backend.load(CancelToken())
        load_s = time.perf_counter() - t0
        backend.generation_overrides = {"min_new_tokens": args.tokens}

        image, capture_s, source = capture_image()
        request = JobRequest(
            Task.DESCRIBE_BRIEF, image=image, detail=Detail.NORMAL, max_new_tokens=args.tokens
        )
        prepared = backend.prepare(request)
        processor, model = backend.processor, backend.model

        def ours() -> dict[str, float]:
            times: dict[str, float] = {}
            start = time.perf_counter()
            chunks = []
            for chunk in backend.generate(request, CancelToken()):
                if not chunks:
                    times["first_chunk"] = time.perf_counter() - start
                chunks.append(chunk)
            times["total"] = time.perf_counter() - start
            assert backend.usage.tokens_out == args.tokens
            return times

        def preprocess() -> float:
            start = time.perf_counter()
            backend.prepare(request)
            return time.perf_counter() - start

        def reference() -> dict[str, float]:
            # The model card's way: processor -> tensors -> model.generate, nothing else.
            start = time.perf_counter()
            inputs = processor(
                text=prepared.text,
                images=image.to_pil(),
                images_kwargs={"dynamic_hd": prepared.crops},
                return_tensors="pt",
            )
            preprocessed = time.perf_counter() - start
            with torch.inference_mode():
                out = model.generate(
                    **inputs,
                    max_new_tokens=args.tokens,
                    min_new_tokens=args.tokens,
                    do_sample=False,
                    suppress_tokens=[processor.image_token_id, processor.audio_token_id],
                    pad_token_id=processor.tokenizer.pad_token_id,
                )
            processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            return {"preprocess": preprocessed, "total": time.perf_counter() - start}

        def on_fresh_thread(fn):
            # Like for like: our generate() decodes on a fresh helper thread, and a fresh thread
            # starts its own OpenMP team, so the reference runs on one too.
            box: list = []
            worker = threading.Thread(target=lambda: box.append(fn()))
            worker.start()
            worker.join()
            return box[0]

        ours()  # warm-up (also sets the vision adapter, which the reference then shares)
        on_fresh_thread(reference)
        runs_ours, runs_ref, runs_pre = [], [], []
        for rep in range(args.reps):
            pair = [("ours", ours), ("ref", lambda: on_fresh_thread(reference))]
            for name, fn in pair if rep % 2 == 0 else reversed(pair):
                (runs_ours if name == "ours" else runs_ref).append(fn())
            runs_pre.append(preprocess())

        med = statistics.median
        ours_total = med(r["total"] for r in runs_ours)
        ours_first = med(r["first_chunk"] for r in runs_ours)
        ref_total = med(r["total"] for r in runs_ref)
        ref_pre = med(r["preprocess"] for r in runs_ref)
        pre = med(runs_pre)
        overhead = ours_total / ref_total
        first_ratio = ours_first / ref_total

        print(f"Sightline pipeline benchmark: tiny random Phi-4-multimodal on CPU, {args.reps} reps, median")
        print(
            f"  image: {source}; detail normal -> {prepared.crops} crops, "
            f"{prepared.image_tokens} image tokens,"
        )
        print(f"         {prepared.prompt_tokens} prompt tokens, {args.tokens} answer tokens")
        print(f"  tiny model build  {build_s * 1000:8.1f} ms   load {load_s * 1000:8.1f} ms")
        print(f"  capture           {capture_s * 1000:8.1f} ms")
        print(
            f"  preprocess        {pre * 1000:8.1f} ms   (reference processor call {ref_pre * 1000:.1f} ms)"
        )
        print(f"  first chunk       {ours_first * 1000:8.1f} ms")
        print(f"  total (ours)      {ours_total * 1000:8.1f} ms")
        print(f"  total (reference) {ref_total * 1000:8.1f} ms")
        ok1 = "meets" if overhead <= GOAL_OVERHEAD else "MISSES"
        ok2 = "meets" if first_ratio <= GOAL_FIRST_CHUNK else "MISSES"
        print(f"  overhead ratio ours/reference      {overhead:6.3f}   goal <= {GOAL_OVERHEAD:.2f}  ({ok1})")
        print(
            f"  first chunk / reference total      {first_ratio:6.3f}   "
            f"goal <= {GOAL_FIRST_CHUNK:.2f}  ({ok2})"
        )
        backend.unload()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
