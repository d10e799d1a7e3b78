"""The tiny Phi4Multimodal checkpoint, served by a loopback hub mirror, downloaded like the real one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.errors import DownloadError
from app.inference import model_store as ms
from app.inference.model_store import ModelState, transfer
from tests.fakes.hub_server import FakeHub, LoopbackGuard

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mirror(tiny_model_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(transfer, "RETRY_BASE_S", 0.01)
    guard = LoopbackGuard().install(monkeypatch)
    with FakeHub(tiny_model_dir, max_lifetime_s=240) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub
    assert guard.violations == [], f"something tried to leave the machine: {guard.violations}"


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and not p.relative_to(folder).parts[0].startswith(".")
    }


def test_tiny_model_downloads_byte_for_byte_and_loads(mirror, tiny_model_dir, tmp_path):
    dest = tmp_path / "models" / "Phi-4-multimodal-instruct"
    report = ms.download_model(dest)
    assert report.state is ModelState.READY, report.sentence
    # everything the saved checkpoint holds comes across, identical
    assert _files(dest) == _files(tiny_model_dir)
    assert ms.verify_model_folder(dest, deep=True).ok

    # and the real library reads it as a model with both adapters
    from transformers import Phi4MultimodalForCausalLM

    model = Phi4MultimodalForCausalLM.from_pretrained(str(dest))
    model.load_adapter(str(dest / "vision-lora"), adapter_name="vision")
    model.load_adapter(str(dest / "speech-lora"), adapter_name="speech")
    assert {"vision", "speech"} <= set(model.peft_config)


def test_tiny_model_download_resumes_after_an_interruption(mirror, tiny_model_dir, tmp_path):
    dest = tmp_path / "resume" / "Phi-4-multimodal-instruct"
    biggest = max(
        (p for p in tiny_model_dir.glob("model-*.safetensors")), key=lambda p: p.stat().st_size
    ).name
    size = (tiny_model_dir / biggest).stat().st_size
    cut = size // 2
    mirror.cut_after(biggest, cut, times=1)
    with pytest.raises(DownloadError) as info:
        ms.download_model(dest, retries=0)
    assert "sightline model download to resume" in info.value.sentence
    assert ms.inspect_model_folder(dest).state is ModelState.INCOMPLETE

    mirror.clear_log()
    assert ms.download_model(dest).state is ModelState.READY
    gets = mirror.file_requests(biggest)
    assert [r.range for r in gets] == [f"bytes={cut}-"]
    assert gets[0].body_bytes == size - cut
    assert _files(dest) == _files(tiny_model_dir)


# -- as a user runs it: `sightline model ...`, its exit codes and sentences ----------------------


def _sightline(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _said(proc: subprocess.CompletedProcess) -> str:
    """The last line the user reads (stdout for results, stderr for failures), never a traceback."""
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    return lines[-1] if lines else ""


def test_the_cli_repairs_what_it_reports_instead_of_looping(tmp_path, monkeypatch):
    from tests.fakes.hub_server import make_model_folder

    source = make_model_folder(tmp_path / "src", shard_bytes=100_000)
    dest = tmp_path / "models" / "Phi-4-multimodal-instruct"
    with FakeHub(source) as hub:
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_XET="1")
        env["SIGHTLINE_HOME"] = str(tmp_path / "home")
        for name in ("SIGHTLINE_MODELS_DIR", "HF_TOKEN", "HF_HUB_OFFLINE"):
            env.pop(name, None)
        model = ("--model", str(dest))

        # tokenizer.json arrives corrupted (same size) on every try: refused, not installed
        hub.corrupt("tokenizer.json", times=50)
        proc = _sightline("model", "download", *model, env=env)
        assert proc.returncode == 9, proc.stderr
        assert _said(proc) == (
            "The downloaded file tokenizer.json did not match the model server's checksum. "
            "Run sightline model download to try again."
        )
        assert not (dest / "tokenizer.json").exists()
        status = _sightline("model", "status", *model, env=env)
        verify = _sightline("model", "verify", *model, env=env)
        assert status.returncode == verify.returncode == 4
        assert _said(status) == _said(verify)
        assert "model is incomplete" in _said(status)
        assert "- tokenizer.json is missing" in verify.stdout

        # the connection is fine again: the next download brings it
        hub.corrupt("tokenizer.json", times=0)
        proc = _sightline("model", "download", *model, env=env)
        assert proc.returncode == 0, proc.stderr
        assert _said(proc) == "The Phi-4-multimodal model is installed and complete."
        assert (dest / "tokenizer.json").read_bytes() == (source / "tokenizer.json").read_bytes()

        # a copy that went bad after it was recorded (same size, same record): found by every
        # command alike, and the download they point to repairs it
        data = bytearray((dest / "tokenizer.json").read_bytes())
        data[3] ^= 0x20
        (dest / "tokenizer.json").write_bytes(bytes(data))
        marker = json.loads((dest / ms.MARKER_NAME).read_text())
        st = (dest / "tokenizer.json").stat()
        marker["files"]["tokenizer.json"].update(mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns)
        (dest / ms.MARKER_NAME).write_text(json.dumps(marker))
        status = _sightline("model", "status", *model, env=env)
        verify = _sightline("model", "verify", "--deep", *model, env=env)
        damaged = (
            "The model file tokenizer.json is damaged: it does not match its checksum. "
            "Run sightline model download to repair the model."
        )
        assert (status.returncode, _said(status)) == (4, damaged)
        assert (verify.returncode, _said(verify)) == (4, damaged)
        assert "- tokenizer.json does not match its checksum" in verify.stdout
        hub.clear_log()
        proc = _sightline("model", "download", *model, env=env)
        assert proc.returncode == 0, proc.stderr
        assert [r.path.rsplit("/", 1)[-1] for r in hub.requests if "/resolve/" in r.path] == [
            "tokenizer.json"
        ]
        verify = _sightline("model", "verify", "--deep", *model, env=env)
        assert verify.returncode == 0 and "intact" in _said(verify)
