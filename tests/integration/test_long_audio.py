"""`sightline transcribe` on a long recording, as a user runs it, against the loopback vLLM stand-in:
the file is read, resampled and cut while it is transcribed, each piece answered in turn."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fakes.vllm_server import FakeVllmServer
from tests.fixtures.long_audio import write_long_wav

ROOT = Path(__file__).resolve().parents[2]


def test_transcribe_streams_a_long_recording_piece_by_piece(tmp_path):
    path = write_long_wav(tmp_path / "lecture.wav", 300, rate=48_000, channels=2)
    with FakeVllmServer() as server:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "app",
                "transcribe",
                str(path),
                "--backend",
                "remote",
                "--server",
                server.url,
            ],
            cwd=ROOT,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=240,
        )
        chats = [r for r in server.requests if r.path.endswith("/chat/completions")]
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    audios = [r.audio for r in chats]
    assert len(audios) >= 10  # five minutes in pieces of at most 30 s
    assert all(a is not None and a[1] == 16_000 and a[2] == 1 for a in audios)  # 16 kHz mono pieces
    assert all(a[0] <= 30 * 16_000 for a in audios)
    assert abs(sum(a[0] for a in audios) - 300 * 16_000) < 16_000  # every second of it was sent
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == len(audios)  # one line of text per piece, in order
    assert all(line.startswith("Model ") for line in lines)
