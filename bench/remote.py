"""What the remote backend costs on the desktop, beside the raw HTTP exchange it wraps.

Against the loopback fake vLLM server (no model, so the server's own time is near zero), for a
1920x1080 screenshot question and a 5-second spoken question, it measures in one run:
- encoding: image (JPEG at the quality setting, PNG) scaled for the detail level, audio WAV,
  and the whole JSON body;
- the raw exchange: the same body POSTed with bare http.client, read to the end;
- the backend: generate() end to end, and the time from the response's headers to the first
  token it hands on, beside the raw exchange's headers-to-first-byte.
Prints medians and ratios. Run: .venv/bin/python -m bench.remote [--n 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from app.core.cancel import CancelToken  # noqa: E402
from app.core.types import AudioInput, Detail, ImageInput, JobRequest, Task  # noqa: E402
from app.inference.openai_compatible import (  # noqa: E402
    OpenAICompatibleBackend,
    build_payload,
    encode_image,
    encode_wav,
)
from tests.fakes.vllm_server import FakeVllmServer  # noqa: E402


def screenshot() -> ImageInput:
    """A 1080p picture with the flat areas, edges and text of a real desktop."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (1920, 1080), (236, 236, 236))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 1920, 40), fill=(40, 44, 52))
    draw.rectangle((0, 40, 300, 1080), fill=(250, 250, 250))
    rng = np.random.default_rng(1)
    for row in range(60):
        y = 60 + row * 16
        draw.text(
            (320, y),
            f"Line {row}: the quarterly report shows {rng.integers(1, 999)} items",
            fill=(20, 20, 20),
        )
        draw.text((12, y), f"Folder {row}", fill=(60, 60, 200))
    for _ in range(25):
        x, y = rng.integers(320, 1800), rng.integers(60, 1000)
        draw.rectangle((x, y, x + 100, y + 28), outline=(0, 90, 180), width=2)
    return ImageInput(np.asarray(img), "screen")


def speech(seconds: float = 5.0) -> AudioInput:
    t = np.arange(int(16_000 * seconds), dtype=np.float32) / 16_000
    rng = np.random.default_rng(2)
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return AudioInput((tone + 0.02 * rng.standard_normal(len(t))).astype(np.float32), "microphone")


def interleaved(fns: dict[str, object], n: int) -> tuple[dict[str, float], dict[str, object]]:
    """Median seconds of each function, run in turn n times, so a busy machine slows all alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    results: dict[str, object] = {}
    for _ in range(n):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}, results


def raw_exchange(server: FakeVllmServer, body: bytes) -> tuple[float, float, float]:
    """(headers, first body byte, total) seconds for one bare POST, read to the end."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    t_headers = time.perf_counter() - t0
    resp.read(1)
    t_first = time.perf_counter() - t0
    resp.read()
    total = time.perf_counter() - t0
    conn.close()
    return t_headers, t_first, total


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="repetitions per figure (median)")
    args = parser.parse_args(argv)
    n = args.n

    image, audio = screenshot(), speech()
    cases = {
        "screenshot question": JobRequest(Task.ASK_IMAGE, image=image, question="Which button is focused?"),
        "spoken question (5 s)": JobRequest(Task.ASK_SPOKEN, audio=audio),
    }

    print(f"Sightline remote backend: client-side cost per request, median of {n}\n")
    print("Encoding")
    t, r = interleaved(
        {
            "jpeg": lambda: encode_image(image, Detail.NORMAL, "jpeg", 90),
            "png": lambda: encode_image(image, Detail.NORMAL, "png"),
            "wav": lambda: encode_wav(audio),
        },
        n,
    )
    jpeg, png, wav = r["jpeg"], r["png"], r["wav"]
    jpeg_kib, png_kib = len(jpeg.data_url) / 1024, len(png.data_url) / 1024
    print(f"  image 1920x1080 -> {jpeg.width}x{jpeg.height} JPEG q90   {ms(t['jpeg'])}  {jpeg_kib:7.0f} KiB")
    print(f"  image 1920x1080 -> {png.width}x{png.height} PNG        {ms(t['png'])}  {png_kib:7.0f} KiB")
    wav_kib = len(wav) * 4 / 3 / 1024
    print(f"  audio 5 s -> 16 kHz mono WAV           {ms(t['wav'])}  {wav_kib:7.0f} KiB (base64)")
    print(f"  PNG / JPEG: encode time {t['png'] / t['jpeg']:.1f}x, size {png_kib / jpeg_kib:.1f}x\n")

    with FakeVllmServer() as server:
        backend = OpenAICompatibleBackend(server.url, base_model="base")
        for label, request in cases.items():
            model = "vision" if request.image is not None else "speech"
            body = json.dumps(build_payload(request, model), separators=(",", ":")).encode()
            raw: list[tuple[float, float, float]] = []
            timings = []

            def run_backend(request=request, timings=timings):
                "".join(backend.generate(request, CancelToken()))
                timings.append(backend.timings)

            t, _ = interleaved(
                {
                    "body": lambda request=request, model=model: json.dumps(
                        build_payload(request, model), separators=(",", ":")
                    ).encode(),
                    "raw": lambda body=body, raw=raw: raw.append(raw_exchange(server, body)),
                    "backend": run_backend,
                },
                n,
            )
            raw_total = statistics.median(r[2] for r in raw)
            raw_first_after_headers = statistics.median(r[1] - r[0] for r in raw)
            b_encode = statistics.median(x.encode for x in timings)
            b_total = statistics.median(x.total for x in timings)
            b_exchange = statistics.median(x.total - x.encode for x in timings)
            b_first_token = statistics.median(x.first_token - x.headers for x in timings)

            print(f"{label}: body {len(body) / 1024:.0f} KiB")
            print(f"  build payload (encode + JSON)          {ms(t['body'])}")
            print(f"  raw HTTP exchange, read to the end     {ms(raw_total)}")
            print(f"  backend generate(), end to end         {ms(b_total)}")
            print(f"    of which encoding                    {ms(b_encode)}")
            print(f"    of which the exchange and parsing    {ms(b_exchange)}")
            print(f"  headers -> first byte (raw)            {ms(raw_first_after_headers)}")
            print(f"  headers -> first token (backend)       {ms(b_first_token)}")
            print(
                f"  exchange and parsing vs raw exchange: {b_exchange / raw_total:.2f}x "
                f"({(b_exchange - raw_total) * 1000:+.2f} ms); encoding is "
                f"{b_encode / b_total:.0%} of the client's time\n"
            )
    print("The server's own time (queue, prefill, decoding) comes on top and dominates on a real GPU.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
