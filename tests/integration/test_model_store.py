"""The tiny Phi4Multimodal checkpoint, served by a loopback hub mirror, downloaded like the real one."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.errors import DownloadError
from app.inference import model_store as ms
from app.inference.model_store import ModelState
from tests.fakes.hub_server import FakeHub, LoopbackGuard


@pytest.fixture
def mirror(tiny_model_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(ms, "RETRY_BASE_S", 0.01)
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
