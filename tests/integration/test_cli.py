"""The `sightline` command as a user runs it: a real process, real files, real backends.

Each failure must be one sentence on stderr, a distinct exit code, and never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from tests.fixtures.screens_layout import render_screen, screen_blocks

ROOT = Path(__file__).resolve().parents[2]


def sightline(*args: str, env_extra: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(env_extra or {})
    env.pop("SIGHTLINE_MODELS_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_clean_sentence(proc: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    message = proc.stderr.strip()
    assert message and len(message.splitlines()) <= 2, message
    for word in words:
        assert word.lower() in message.lower(), message


@pytest.fixture(scope="module")
def screen_png(tmp_path_factory, qapp) -> Path:  # qapp: Qt renders the screen
    path = tmp_path_factory.mktemp("cli") / "screen.png"
    Image.fromarray(render_screen(0)).save(path)
    return path


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "question.wav"
    t = np.arange(int(44100 * 1.5)) / 44100
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    sf.write(path, np.stack([tone, tone], axis=1), 44100)  # stereo 44.1 kHz, as phones record
    return path


def test_version_and_help():
    proc = sightline("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("Sightline ")
    proc = sightline("--help")
    assert proc.returncode == 0
    for command in ("describe", "read", "ask", "transcribe", "model", "devices", "speak", "server"):
        assert command in proc.stdout


def test_usage_error_exit_code():
    proc = sightline("describe")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_read_with_the_ocr_default_streams_text_in_reading_order(screen_png):
    proc = sightline("read", "--image", str(screen_png))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    first_block_word = screen_blocks(0)[0][0].split()[0]
    last_block_word = screen_blocks(0)[-1][-1].split()[-1]
    assert first_block_word in text and last_block_word in text
    assert text.index(first_block_word) < text.rindex(last_block_word)


def test_describe_json_without_model_says_how_to_get_it(screen_png):
    proc = sightline("describe", "--image", str(screen_png), "--json")
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    assert obj["backend"] == "ocr"
    assert "sightline model download" in obj["text"]
    assert set(obj["timings"]) >= {"load", "first_chunk", "total"}
    assert "local" in obj["explanation"].lower() or "phi-4" in obj["explanation"].lower()


def test_describe_with_tiny_model_json(screen_png, tiny_model_dir):
    proc = sightline(
        "describe", "--image", str(screen_png), "--backend", "local", "--model", str(tiny_model_dir), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    assert obj["backend"] == "local" and obj["error"] is None
    assert obj["tokens"]["in"] > 1000  # a 1080p screenshot is over a thousand image tokens
    assert obj["tokens"]["in"] < 4096
    assert obj["tokens"]["out"] > 0
    assert obj["timings"]["first_chunk"] is not None


def test_ask_spoken_question_with_tiny_model(question_wav, tiny_model_dir):
    proc = sightline("ask", "--audio", str(question_wav), "--model", str(tiny_model_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    assert obj["backend"] == "local" and obj["tokens"]["in"] > 10


def test_transcribe_without_model_is_a_clear_sentence(question_wav):
    proc = sightline("transcribe", str(question_wav))
    assert_one_clean_sentence(proc, 5, "model")
    # Two short sentences, not a run-on list of every backend's reason.
    assert proc.stderr.strip() == (
        "Listening to a recording needs the Phi-4 model or a Sightline server, and neither is ready. "
        "Run sightline model download to get the model, or set a server in Settings."
    )


def test_missing_model_folder_named_explicitly(screen_png, tmp_path):
    proc = sightline(
        "describe", "--image", str(screen_png), "--backend", "local", "--model", str(tmp_path / "nope")
    )
    assert_one_clean_sentence(proc, 4, "sightline model download")


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"", "empty"), (b"\x89PNG\r\n\x1a\n garbage that is not an image", "")],
)
def test_bad_image_files(tmp_path, content, words):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    proc = sightline("describe", "--image", str(path))
    assert_one_clean_sentence(proc, 3, *([words] if words else []))


def test_missing_image_file(tmp_path):
    proc = sightline("describe", "--image", str(tmp_path / "missing.png"))
    assert_one_clean_sentence(proc, 3)


def test_bad_region_text():
    proc = sightline("read", "--region", "ten,20,30")
    assert_one_clean_sentence(proc, 3, "X,Y,W,H")


def test_model_status_missing_json():
    proc = sightline("model", "status", "--json")
    assert proc.returncode == 4
    assert json.loads(proc.stdout)["state"] == "missing"


def test_model_status_ready(tiny_model_dir):
    proc = sightline("model", "status", "--model", str(tiny_model_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ask_without_question():
    proc = sightline("ask")
    assert_one_clean_sentence(proc, 3, "question")


def test_describe_and_check_against_a_server(screen_png):
    from tests.fakes.vllm_server import FakeVllmServer

    with FakeVllmServer() as server:
        proc = sightline(
            "describe", "--image", str(screen_png), "--backend", "remote", "--server", server.url, "--json"
        )
        assert proc.returncode == 0, proc.stderr
        obj = json.loads(proc.stdout)
        assert obj["backend"] == "remote" and obj["text"] and obj["error"] is None
        (request,) = [r for r in server.requests if r.path.endswith("/chat/completions")]
        assert request.model == "vision"  # the vision adapter answers anything with an image
        check = sightline("server", "check", server.url)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "vision" in check.stdout and "speech" in check.stdout
    down = sightline("describe", "--image", str(screen_png), "--backend", "remote", "--server", server.url)
    assert_one_clean_sentence(down, 8)


def test_insecure_remote_http_is_refused(screen_png):
    proc = sightline(
        "describe",
        "--image",
        str(screen_png),
        "--backend",
        "remote",
        "--server",
        "http://ai.example.org:8000/v1",
    )
    assert_one_clean_sentence(proc, 2, "http")  # a wrong address is the command line's fault


def test_server_command_prints_vllm_serve():
    proc = sightline("server", "command")
    assert proc.returncode == 0 and proc.stdout.startswith("vllm serve")
    assert "--enable-lora" in proc.stdout and "--max-model-len 4096" in proc.stdout


def test_devices_json_lists_every_section():
    proc = sightline("devices", "--json")
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    assert set(obj) == {"monitors", "cameras", "microphones", "speech_drivers"}
    names = [d["name"] for d in obj["speech_drivers"]]
    assert names[-1] == "silent" and "espeak" in names


def test_speak_to_file(tmp_path):
    out = tmp_path / "hello.wav"
    proc = sightline("speak", "Hello from Sightline.", "--driver", "espeak", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    data, rate = sf.read(out)
    assert len(data) / rate > 0.5 and np.abs(data).max() > 0.05


def test_answers_are_not_logged(screen_png, sightline_home):
    proc = sightline("read", "--image", str(screen_png))
    assert proc.returncode == 0
    log_text = "".join(p.read_text() for p in (sightline_home / "logs").glob("*.log"))
    word = screen_blocks(0)[1][0]
    assert word in proc.stdout and word not in log_text


def test_tray_app_without_a_display_says_so():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run(
        [sys.executable, "-m", "app"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 10, proc.stderr
    assert "no display was found" in proc.stderr and "Aborted" not in proc.stderr


@pytest.mark.display
def test_read_the_screen_and_a_region_from_the_command_line(desktop, tmp_path):
    from tests.fixtures.screens_layout import LINES
    from tests.fixtures.screens_proc import start_known_window

    window = start_known_window(60, 120)
    try:
        proc = sightline("read", "--screen", "--monitor", "1")
        assert proc.returncode == 0, proc.stderr
        assert all(line in proc.stdout for line in LINES)
        # A region that runs off the right edge is clipped, and the user is told.
        proc = sightline("read", "--region", "1800,100,400,300", "--json")
        assert proc.returncode == 0, proc.stderr
        assert "off the screen" in proc.stderr and "120 by 300" in proc.stderr
        proc = sightline("read", "--region", "10,10,0,50")
        assert proc.returncode in (3, 7) and "Traceback" not in proc.stderr and proc.stderr.strip()
    finally:
        window.stop()
