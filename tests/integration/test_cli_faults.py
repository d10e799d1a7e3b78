"""The fault corpus for the `sightline` command: signals, bad inputs, empty answers, hostile text.

Each case runs the real command in its own process and checks what a user sees: the exit code,
one clear sentence on stderr, and never a traceback. Servers are real loopback HTTP servers
started here (one that stalls forever, one that streams a chosen answer); the local model is the
tiny Phi-4 checkpoint built by tests/fixtures/tiny_phi4.py, damaged on purpose where a case needs it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]

HOSTILE_ANSWER = (
    "Title\x1b]0;pwned\x07 then \x1b[31mred\x1b[0m text, \u202eevil\u202c and \u2066isolated\u2069; "
    "a bell\x07, C1 \x9b2Jhere, and 中文 ≠ € ü end."
)


def _env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.pop("SIGHTLINE_MODELS_DIR", None)
    env.update(extra or {})
    return env


def sightline(*args: str, env_extra: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=_env(env_extra),
        capture_output=True,
        timeout=timeout,
    )


def start(*args: str, env_extra: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=_env(env_extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _err(proc) -> str:
    return proc.stderr.decode("utf-8", "replace") if isinstance(proc.stderr, bytes) else proc.stderr


def assert_sentence(proc, code: int, *words: str) -> str:
    err = _err(proc).strip()
    assert proc.returncode == code, (proc.returncode, proc.stdout[-500:], err)
    assert "Traceback" not in err and "Warning" not in err, err
    assert err and len(err.splitlines()) <= 2, err
    for word in words:
        assert word.lower() in err.lower(), err
    return err


@pytest.fixture(scope="module")
def white_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "white.png"
    Image.new("RGB", (320, 200), "white").save(path)
    return path


# ---------------------------------------------------------------- loopback servers


class _Server:
    """A loopback HTTP server in a thread; `handler` decides what each request gets."""

    def __init__(self, handler_class):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.requests: list[str] = []
        self.got_request = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="test-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _StallHandler(BaseHTTPRequestHandler):
    """Reads the request, then never answers (until the test ends)."""

    def log_message(self, *args):
        pass

    def _stall(self):
        owner = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        owner.requests.append(self.path)
        owner.got_request.set()
        owner.release.wait(120)

    do_GET = _stall
    do_POST = _stall


def _stream_handler(pieces: list[str]):
    """An OpenAI-compatible server whose every answer is `pieces`, one content event each."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            body = json.dumps({"object": "list", "data": [{"id": "phi-4", "object": "model"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            self.server.owner.requests.append(self.path)  # type: ignore[attr-defined]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            model = request.get("model", "vision")
            for i, piece in enumerate(pieces):
                event = {
                    "id": "chat-1",
                    "object": "chat.completion.chunk",
                    "model": model,
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
                if i == 0:
                    event["choices"][0]["delta"]["role"] = "assistant"
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
            done = {
                "id": "chat-1",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": 10,
                    "completion_tokens": len(pieces),
                    "total_tokens": 10 + len(pieces),
                },
            }
            self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()
            self.close_connection = True

    return Handler


def _split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# ---------------------------------------------------------------- signals


def _wait_ended(proc: subprocess.Popen, seconds: float) -> float:
    t0 = time.monotonic()
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"the command did not end within {seconds} s of the signal")
    return time.monotonic() - t0


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_a_run_blocked_on_a_stalled_server(white_png, signum, code):
    with _Server(_StallHandler) as server:
        proc = start("describe", "--image", str(white_png), "--backend", "remote", "--server", server.url)
        try:
            assert server.got_request.wait(120), "the command never reached the server"
            time.sleep(0.3)  # blocked in the read now
            proc.send_signal(signum)
            took = _wait_ended(proc, 5)
        finally:
            if proc.poll() is None:
                proc.kill()
        out, err = proc.communicate()
    assert proc.returncode == code, (proc.returncode, err)
    assert err.decode().strip() == "Stopped." and out == b""
    assert took < 3.0, took


def test_sigint_during_local_generation_exits_130(white_png, tiny_model_dir):
    proc = start(
        "describe", "--image", str(white_png), "--backend", "local", "--model", str(tiny_model_dir),
        "--max-tokens", "4000",
    )  # fmt: skip
    try:
        first = proc.stdout.read(1)  # the first streamed character: generation is running
        assert first, _err(proc) if proc.poll() is not None else "no output"
        proc.send_signal(signal.SIGINT)
        took = _wait_ended(proc, 6)
    finally:
        if proc.poll() is None:
            proc.kill()
    out, err = proc.communicate()
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err.decode() and err.decode().strip().endswith("Stopped.")
    assert took < 3.0, took


def test_ctrl_c_while_starting_never_prints_a_traceback_from_sightline(white_png):
    """From the moment Python runs Sightline's code, Ctrl+C means exit 130 and no traceback.

    (Before that, the interpreter itself is starting: site-packages, runpy. A signal there is the
    interpreter's to handle; those tries are counted, not judged.)
    """
    outcomes = []
    for delay in [i * 0.02 for i in range(16)]:
        proc = start("read", "--image", str(white_png), "--backend", "ocr")
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
        text = err.decode("utf-8", "replace")
        in_sightline = "Traceback" in text and f"{os.sep}app{os.sep}" in text
        assert not in_sightline, text
        if "Traceback" not in text and "Fatal Python error" not in text:
            assert proc.returncode in (130, -signal.SIGINT, 0), (delay, proc.returncode, text)
        outcomes.append(proc.returncode)
    assert 130 in outcomes, outcomes  # some tries did land in Sightline's own start-up


# ---------------------------------------------------------------- bad inputs: a sentence and a code


def test_a_home_folder_that_does_not_exist_is_a_sentence(white_png):
    for args in (
        ("describe", "--image", str(white_png), "--backend", "local", "--model", "~nosuchuser"),
        ("model", "status", "--model", "~nosuchuser"),
        ("model", "verify", "--model", "~nosuchuser/Phi-4"),
    ):
        assert_sentence(sightline(*args), 2, "no user called nosuchuser")


def test_a_settings_model_folder_for_no_user_is_said_and_ocr_still_reads(white_png, sightline_home):
    (sightline_home / "config").mkdir(exist_ok=True)
    (sightline_home / "config" / "settings.json").write_text(json.dumps({"model_dir": "~nosuchuser/models"}))
    assert_sentence(sightline("model", "status"), 2, "settings", "no user called nosuchuser")
    named = sightline("describe", "--image", str(white_png), "--backend", "local")
    assert_sentence(named, 2, "settings", "no user called nosuchuser")
    auto = sightline("read", "--image", str(white_png))
    assert auto.returncode == 0, _err(auto)
    assert "no user called nosuchuser" in _err(auto) and "Traceback" not in _err(auto)
    assert auto.stdout.strip()  # the on-device text recognition still answered


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("describe", "--image", ""), ["--image", "empty"]),
        (("read", "--image", "  "), ["--image", "empty"]),
        (("transcribe", ""), ["audio", "empty"]),
        (("model", "status", "--model", ""), ["--model", "empty"]),
        (("describe", "--screen", "--max-tokens", "-5"), ["--max-tokens", "at least 1", "-5"]),
        (("describe", "--screen", "--max-tokens", "0"), ["--max-tokens"]),
        (("speak", "Hello.", "--driver", "nonexistent"), ["no speech driver called nonexistent"]),
    ],
)
def test_command_line_mistakes_exit_2(args, words):
    assert_sentence(sightline(*args), 2, *words)


@pytest.mark.parametrize(
    ("server", "words"),
    [
        ("ftp://ai.example.org/v1", ["https://"]),
        ("https://name:secret@ai.example.org/v1", ["name or password"]),
        ("https://ai.example.org:99999/v1", ["not a valid address"]),
        ("http://ai.example.org:8000/v1", ["plain http"]),
    ],
)
def test_a_server_address_that_cannot_be_used_exits_2(white_png, server, words):
    proc = sightline("describe", "--image", str(white_png), "--backend", "remote", "--server", server)
    err = assert_sentence(proc, 2, *words)
    assert "secret" not in err


def test_a_server_that_refuses_the_connection_exits_8(white_png):
    with socket.socket() as s:  # a free port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = sightline(
        "describe",
        "--image",
        str(white_png),
        "--backend",
        "remote",
        "--server",
        f"http://127.0.0.1:{port}/v1",
    )
    assert_sentence(proc, 8)


def test_speak_to_a_place_that_cannot_be_written_exits_10(tmp_path):
    proc = sightline("speak", "Hello.", "--driver", "espeak", "--out", "/proc/sightline-speech.wav")
    assert_sentence(proc, 10, "/proc/sightline-speech.wav")
    assert not proc.stdout


def test_speak_to_a_file_says_so_on_stderr_and_keeps_stdout_clean(tmp_path):
    for driver in ("espeak", "pyttsx3"):  # pyttsx3's espeak engine prints "Audio saved to ..." itself
        out = tmp_path / f"{driver}.wav"
        proc = sightline("speak", "Hello from Sightline.", "--driver", driver, "--out", str(out))
        assert proc.returncode == 0, _err(proc)
        assert proc.stdout == b"", proc.stdout
        assert _err(proc).strip() == f"Saved the speech to {out}."
        assert out.stat().st_size > 1000


def test_the_tray_app_says_where_the_model_folder_is_set(tmp_path):
    proc = sightline("--model", str(tmp_path))
    err = assert_sentence(proc, 2, "Settings", "sightline describe")
    assert "invalid choice" not in err


def test_model_before_the_command_is_the_commands_model(white_png, tmp_path):
    proc = sightline(
        "--model", str(tmp_path / "nope"), "describe", "--image", str(white_png), "--backend", "local"
    )
    assert_sentence(proc, 4, "sightline model download")


# ---------------------------------------------------------------- what a server or model says


def test_hostile_text_is_printed_safe_and_kept_escaped_in_json(white_png):
    with _Server(_stream_handler(_split(HOSTILE_ANSWER, 3))) as server:
        plain = sightline(
            "describe", "--image", str(white_png), "--backend", "remote", "--server", server.url
        )
        as_json = sightline(
            "describe", "--image", str(white_png), "--backend", "remote", "--server", server.url, "--json"
        )
        cp1252 = sightline(
            "describe",
            "--image",
            str(white_png),
            "--backend",
            "remote",
            "--server",
            server.url,
            env_extra={"PYTHONIOENCODING": "cp1252"},
        )
    assert plain.returncode == 0, _err(plain)
    text = plain.stdout.decode("utf-8")
    for raw in ("\x1b", "\x07", "\x9b", "\u202e", "\u202c", "\u2066", "\u2069"):
        assert raw not in text, repr(text)
    assert "Title then red text, evil and isolated; a bell, C1 here, and 中文 ≠ € ü end." in text

    assert as_json.returncode == 0, _err(as_json)
    raw_json = as_json.stdout.decode("utf-8")
    for raw in ("\x1b", "\x07", "\x9b", "\u202e", "\u2066"):
        assert raw not in raw_json
    assert json.loads(raw_json)["text"] == HOSTILE_ANSWER  # every character kept, escaped

    # A terminal in cp1252: what it can show is shown, the rest replaced, and the run succeeds.
    assert cp1252.returncode == 0, _err(cp1252)
    shown = cp1252.stdout.decode("cp1252")
    assert "Title then red text" in shown and "€ ü end." in shown and "??" in shown
    assert "Traceback" not in _err(cp1252)


def test_an_empty_answer_from_a_server_is_said_with_its_own_code(white_png):
    with _Server(_stream_handler(["", "", ""])) as server:
        proc = sightline("describe", "--image", str(white_png), "--backend", "remote", "--server", server.url)
    assert_sentence(proc, 11, "The model gave no answer.")
    assert proc.stdout.strip() == b""


def _damaged_copy(tiny_model_dir: Path, dest: Path, damage) -> Path:
    folder = dest / "Phi-4-multimodal-instruct"
    shutil.copytree(tiny_model_dir, folder)
    damage(folder)
    return folder


def test_a_model_that_emits_only_special_tokens_gives_no_answer(white_png, tiny_model_dir, tmp_path):
    def silence(folder: Path) -> None:  # every logit equal: the first special token wins each step
        from safetensors.torch import load_file, save_file

        index = json.loads((folder / "model.safetensors.index.json").read_text())
        shard = folder / index["weight_map"]["lm_head.weight"]
        tensors = load_file(shard)
        tensors["lm_head.weight"].zero_()
        save_file(tensors, shard, metadata={"format": "pt"})

    folder = _damaged_copy(tiny_model_dir, tmp_path, silence)
    proc = sightline("describe", "--image", str(white_png), "--model", str(folder), "--max-tokens", "20")
    assert_sentence(proc, 11, "The model gave no answer.")


def test_auto_falls_back_to_ocr_when_the_model_cannot_load(white_png, tiny_model_dir, tmp_path):
    def break_tokenizer(folder: Path) -> None:
        (folder / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "BPE", "vocab": 5}}')

    folder = _damaged_copy(tiny_model_dir, tmp_path, break_tokenizer)
    proc = sightline("read", "--image", str(white_png), "--model", str(folder))
    assert proc.returncode == 0, _err(proc)
    err = _err(proc)
    assert err.count("could not be loaded") == 1 and "Using on-device text recognition instead." in err
    assert "Traceback" not in err and proc.stdout.strip()
    # Named explicitly, the local model is not replaced: the user hears why it failed.
    named = sightline("read", "--image", str(white_png), "--model", str(folder), "--backend", "local")
    assert_sentence(named, 5, "could not be loaded")


def test_a_chat_template_that_does_not_render_is_a_model_format_error(white_png, tiny_model_dir, tmp_path):
    def break_template(folder: Path) -> None:
        (folder / "chat_template.jinja").write_text(
            "{% for m in messages %}{{ m | nosuchfilter }}{% endfor %}"
        )

    folder = _damaged_copy(tiny_model_dir, tmp_path, break_template)
    proc = sightline("describe", "--image", str(white_png), "--model", str(folder), "--backend", "local")
    assert_sentence(proc, 4, "chat template", "sightline model download")


# ---------------------------------------------------------------- files Sightline writes


def test_the_log_is_private_after_a_run(white_png, sightline_home):
    proc = sightline("read", "--image", str(white_png), "--backend", "ocr")
    assert proc.returncode == 0, _err(proc)
    logs = sightline_home / "logs"
    assert oct(logs.stat().st_mode & 0o777) == oct(0o700)
    files = list(logs.glob("*.log*"))
    assert files and all(oct(p.stat().st_mode & 0o777) == oct(0o600) for p in files)


def test_a_float_tiff_with_nan_prints_no_warning(tmp_path):
    data = np.linspace(0, 200, 64 * 48, dtype=np.float32).reshape(48, 64)
    data[2:6, 2:6] = np.nan
    path = tmp_path / "nan-values.tif"
    Image.fromarray(data, "F").save(path, "TIFF")
    proc = sightline("read", "--image", str(path), "--backend", "ocr")
    assert proc.returncode == 0, _err(proc)
    assert "Warning" not in _err(proc) and "nan-values" not in _err(proc)
