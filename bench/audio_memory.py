"""Peak memory of reading long recordings for transcription, streamed against read whole.

For each length it writes a speech-like WAV a block at a time into a temporary folder, then, each
in a fresh interpreter, measures the peak resident memory (VmHWM) of
- streamed: app.capture.audio_file.transcription_pieces, as `sightline transcribe` reads now;
- whole: load_audio(max_seconds=None) + split_for_transcription, the whole file in memory (the
  way it was read before), only for the lengths that fit comfortably in this machine's memory.
The file sizes, pieces and seconds of audio are printed beside the peaks, and the streamed peak
of the longest against the shortest (flat means a ratio near 1).
Run: .venv/bin/python -m bench.audio_memory [--long-hours 3] [--whole-up-to-minutes 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.long_audio import ROOT, stream_peak, write_long_wav  # noqa: E402

_WHOLE = """
import json, sys
from app.capture.audio_file import load_audio, split_for_transcription
pieces = split_for_transcription(load_audio(sys.argv[1], max_seconds=None), max_seconds=30)
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({"pieces": len(pieces), "seconds": sum(p.duration for p in pieces),
                  "peak_mb": int(status["VmHWM"].split()[0]) / 1024}))
"""


def whole_peak(path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _WHOLE, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-hours", type=float, default=3.0)
    parser.add_argument("--whole-up-to-minutes", type=float, default=20.0)
    args = parser.parse_args()
    cases = [
        ("1 min, 16 kHz mono", 60, 16_000, 1),
        ("20 min, 16 kHz mono", 20 * 60, 16_000, 1),
        (f"{args.long_hours:g} h, 16 kHz mono", args.long_hours * 3600, 16_000, 1),
        ("1 min, 48 kHz stereo", 60, 48_000, 2),
        ("1 h, 48 kHz stereo", 3600, 48_000, 2),
    ]
    print(
        f"{'recording':<22} {'file MB':>8} {'pieces':>7} {'audio s':>9} {'streamed MB':>12} "
        f"{'whole MB':>9} {'stream s':>9}"
    )
    streamed = {}
    with tempfile.TemporaryDirectory(prefix="sightline-bench-audio-") as folder:
        for label, seconds, rate, channels in cases:
            path = write_long_wav(Path(folder) / "recording.wav", seconds, rate, channels)
            size_mb = path.stat().st_size / 1e6
            started = time.perf_counter()
            s = stream_peak(path, timeout=1800)
            took = time.perf_counter() - started
            streamed[label] = s["peak_mb"]
            whole = "-"
            if seconds <= args.whole_up_to_minutes * 60:
                whole = f"{whole_peak(path)['peak_mb']:.0f}"
            print(
                f"{label:<22} {size_mb:>8.0f} {s['pieces']:>7.0f} {s['seconds']:>9.0f} "
                f"{s['peak_mb']:>12.0f} {whole:>9} {took:>9.1f}",
                flush=True,
            )
            path.unlink()
    labels = list(streamed)
    for long, short in ((labels[2], labels[0]), (labels[4], labels[3])):
        print(f"streamed peak, {long} / {short}: {streamed[long] / streamed[short]:.2f} (1.00 is flat)")


if __name__ == "__main__":
    main()
