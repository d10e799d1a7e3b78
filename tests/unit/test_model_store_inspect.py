"""Which state a model folder is in, what the user hears about it, and what verify finds."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from app.core.errors import ModelFormatError, ModelIncompleteError, ModelNotFoundError
from app.inference import model_store as ms
from app.inference.model_store import ModelState
from app.settings.schema import Settings
from tests.fakes.hub_server import make_model_folder, write_safetensors


@pytest.fixture
def native(tmp_path) -> Path:
    return make_model_folder(tmp_path / "Phi-4-multimodal-instruct")


def test_complete_native_folder_is_ready(native):
    report = ms.inspect_model_folder(native)
    assert report.state is ModelState.READY
    assert report.ready
    assert report.weight_files == ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    report.raise_if_not_ready()  # does not raise


def test_absent_and_empty_folders_are_missing_and_say_ocr_still_works(tmp_path):
    for folder in (tmp_path / "nowhere", tmp_path):
        report = ms.inspect_model_folder(folder)
        assert report.state is ModelState.MISSING
        assert "not installed" in report.sentence
        assert "on-device text recognition" in report.sentence
        assert "sightline model download" in report.sentence
        with pytest.raises(ModelNotFoundError) as info:
            report.raise_if_not_ready()
        assert info.value.sentence == report.sentence
        assert not isinstance(info.value, ModelIncompleteError | ModelFormatError)


def test_remote_code_layout_is_wrong_format_and_says_what_to_do(tmp_path):
    folder = make_model_folder(tmp_path / "m", layout="remote_code")
    report = ms.inspect_model_folder(folder)
    assert report.state is ModelState.WRONG_FORMAT
    assert report.model_type == "phi4mm"
    assert "remote-code" in report.sentence
    assert "sightline model download" in report.sentence
    assert "native-format" in report.sentence
    with pytest.raises(ModelFormatError) as info:
        report.raise_if_not_ready()
    assert info.value.sentence == report.sentence


def test_remote_code_files_without_config_are_wrong_format(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "modeling_phi4mm.py").write_text("# code\n")
    assert ms.inspect_model_folder(folder).state is ModelState.WRONG_FORMAT


def test_some_other_model_is_wrong_format_and_named(native):
    (native / "config.json").write_text(json.dumps({"model_type": "llama"}))
    report = ms.inspect_model_folder(native)
    assert report.state is ModelState.WRONG_FORMAT
    assert "llama" in report.sentence


@pytest.mark.parametrize(
    "remove",
    [
        "model-00002-of-00002.safetensors",
        "vision-lora/adapter_model.safetensors",
        "speech-lora/adapter_config.json",
        "tokenizer.json",
        "preprocessor_config.json",
        "config.json",
    ],
)
def test_a_missing_file_makes_it_incomplete_and_names_it(native, remove):
    (native / remove).unlink()
    report = ms.inspect_model_folder(native)
    assert report.state is ModelState.INCOMPLETE
    assert remove in report.missing_files
    assert remove in report.sentence
    assert "sightline model download" in report.sentence and "resume" in report.sentence
    with pytest.raises(ModelIncompleteError):
        report.raise_if_not_ready()


def test_many_missing_files_are_counted_not_all_read_out(native):
    shutil.rmtree(native / "vision-lora")
    shutil.rmtree(native / "speech-lora")
    report = ms.inspect_model_folder(native)
    assert report.state is ModelState.INCOMPLETE
    assert "4 files are missing" in report.sentence
    assert len(report.missing_files) == 4


def test_half_downloaded_folder_is_incomplete(native):
    partial = native / ms.PARTIAL_DIR_NAME
    partial.mkdir()
    (partial / ("ab" * 32 + ".part")).write_bytes(b"x" * 100)
    report = ms.inspect_model_folder(native)
    assert report.state is ModelState.INCOMPLETE
    assert report.partial_files
    assert "interrupted" in report.sentence and "sightline model download" in report.sentence


def test_hub_library_leftover_is_incomplete(native):
    leftover = native / ".cache" / "huggingface" / "download" / "x.incomplete"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"partial")
    assert ms.inspect_model_folder(native).state is ModelState.INCOMPLETE


def test_a_stale_lock_alone_does_not_make_a_model(tmp_path):
    folder = tmp_path / "m"
    (folder / ms.PARTIAL_DIR_NAME).mkdir(parents=True)
    (folder / ms.PARTIAL_DIR_NAME / "download.lock").write_text("")
    assert ms.inspect_model_folder(folder).state is ModelState.MISSING


def test_truncated_shard_is_corrupt(native):
    shard = native / "model-00001-of-00002.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 1000])
    report = ms.inspect_model_folder(native)
    assert report.state is ModelState.CORRUPT
    assert report.damaged_files == ("model-00001-of-00002.safetensors",)
    assert "model-00001-of-00002.safetensors" in report.sentence and "damaged" in report.sentence
    with pytest.raises(ms.ModelCorruptError) as info:
        report.raise_if_not_ready()
    assert isinstance(info.value, ModelIncompleteError)


def test_empty_weights_and_broken_config_are_corrupt(native):
    (native / "vision-lora" / "adapter_model.safetensors").write_bytes(b"")
    report = ms.inspect_model_folder(native)
    assert report.state is ModelState.CORRUPT
    assert "vision-lora/adapter_model.safetensors" in report.damaged_files

    (native / "config.json").write_text("{not json")
    report = ms.inspect_model_folder(native)
    assert report.state is ModelState.CORRUPT
    assert "config.json" in report.damaged_files


def test_single_file_weights_are_accepted(native):
    for shard in native.glob("model-*.safetensors"):
        shard.unlink()
    (native / "model.safetensors.index.json").unlink()
    write_safetensors(native / "model.safetensors", {"w": b"\x01" * 64})
    assert ms.inspect_model_folder(native).state is ModelState.READY


def test_default_folder_follows_settings_then_user_models_dir(tmp_path, sightline_home):
    assert ms.default_model_folder(Settings(model_dir=str(tmp_path / "x"))) == tmp_path / "x"
    default = ms.default_model_folder(Settings())
    assert default == ms.default_model_folder()
    assert default.name == "Phi-4-multimodal-instruct"
    assert Path(sightline_home) in default.parents


# -- safetensors headers --------------------------------------------------------------------


def test_header_reader_rejects_garbage(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x05\x00")
    assert "shorter" in ms.check_safetensors_file(bad)
    bad.write_bytes(struct.pack("<Q", 10) + b"{oops")
    assert "cut off inside its header" in ms.check_safetensors_file(bad)
    bad.write_bytes(struct.pack("<Q", 5) + b"{oops")
    assert "not valid JSON" in ms.check_safetensors_file(bad)
    bad.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    assert "implausible" in ms.check_safetensors_file(bad)


def test_header_reader_measures_data(tmp_path):
    path = tmp_path / "ok.safetensors"
    write_safetensors(path, {"a": b"1234", "b": b"56"})
    header = ms.read_safetensors_header(path)
    assert header.tensors == {"a": (0, 4), "b": (4, 6)}
    assert header.expected_file_size == path.stat().st_size
    assert ms.check_safetensors_file(path) is None
    with open(path, "ab") as f:
        f.write(b"extra")
    assert "unexpected bytes" in ms.check_safetensors_file(path)


# -- verify -----------------------------------------------------------------------------------


def test_verify_passes_an_intact_folder(native):
    report = ms.verify_model_folder(native)
    assert report.ok and report.state is ModelState.READY
    assert report.problems == ()
    assert report.files_checked >= 8
    assert "intact" in report.sentence


def test_verify_catches_flipped_header_bytes(native):
    shard = native / "model-00002-of-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[12] ^= 0xFF  # inside the JSON header
    shard.write_bytes(bytes(data))
    report = ms.verify_model_folder(native)
    assert not report.ok and report.state is ModelState.CORRUPT
    assert [p.path for p in report.problems] == ["model-00002-of-00002.safetensors"]
    assert "model-00002-of-00002.safetensors" in report.sentence
    assert "sightline model download" in report.sentence


def test_verify_catches_a_truncated_adapter(native):
    adapter = native / "speech-lora" / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:-10])
    report = ms.verify_model_folder(native)
    assert not report.ok
    assert report.problems[0].path == "speech-lora/adapter_model.safetensors"
    assert "cut off" in report.problems[0].problem


def test_verify_catches_an_index_that_names_the_wrong_shard(native):
    index_path = native / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    name = next(iter(index["weight_map"]))
    index["weight_map"][name] = "model-00002-of-00002.safetensors"
    index_path.write_text(json.dumps(index))
    report = ms.verify_model_folder(native)
    assert not report.ok
    assert report.problems[0].path == "model.safetensors.index.json"


def test_verify_catches_a_wrong_total_size(native):
    index_path = native / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["metadata"]["total_size"] += 1
    index_path.write_text(json.dumps(index))
    report = ms.verify_model_folder(native)
    assert not report.ok
    assert "total size" in report.problems[0].problem


def test_verify_of_a_missing_or_foreign_folder_says_so(tmp_path):
    report = ms.verify_model_folder(tmp_path / "none")
    assert not report.ok and report.state is ModelState.MISSING and "not installed" in report.sentence
    foreign = make_model_folder(tmp_path / "rc", layout="remote_code")
    report = ms.verify_model_folder(foreign)
    assert not report.ok and report.state is ModelState.WRONG_FORMAT


def test_verify_of_an_incomplete_folder_lists_what_is_missing(native):
    (native / "tokenizer.json").unlink()
    report = ms.verify_model_folder(native)
    assert not report.ok and report.state is ModelState.INCOMPLETE
    assert ms.FileProblem("tokenizer.json", "is missing") in report.problems


# -- status -------------------------------------------------------------------------------------


def test_status_is_json_ready_and_describes_the_folder(native, tmp_path):
    status = ms.model_status(native)
    json.dumps(status)
    assert status["state"] == "ready" and status["ready"] is True
    assert status["folder"] == str(native)
    assert status["size_bytes"] > 600_000
    assert status["repo_id"] == "microsoft/Phi-4-multimodal-instruct"
    assert status["pinned_revision"] == "refs/pr/70"
    assert status["expected_bytes"] > 10_000_000_000  # the manifest's estimate, no download marker here

    missing = ms.model_status(tmp_path / "none")
    assert missing["state"] == "missing" and missing["ready"] is False
    assert missing["size_bytes"] == 0


def test_manifest_pins_the_native_revision():
    manifest = ms.load_manifest()
    assert manifest.repo_id == "microsoft/Phi-4-multimodal-instruct"
    assert manifest.revision == "refs/pr/70"
    assert manifest.commit == "" or len(manifest.commit) == 40
    assert manifest.licence == "MIT"
    assert 10e9 < manifest.approx_total_bytes < 12.5e9
    listed = {f["path"] for f in manifest.files}
    assert {
        "config.json",
        "vision-lora/adapter_model.safetensors",
        "speech-lora/adapter_model.safetensors",
    } <= listed


def test_missing_manifest_falls_back_to_defaults(tmp_path):
    manifest = ms.load_manifest(tmp_path / "none.json")
    assert manifest.repo_id == ms.DEFAULT_REPO_ID and manifest.revision == ms.DEFAULT_REVISION


def test_is_wanted_skips_code_images_and_pickles():
    assert ms.is_wanted("config.json")
    assert ms.is_wanted("model-00001-of-00003.safetensors")
    assert ms.is_wanted("vision-lora/adapter_model.safetensors")
    assert ms.is_wanted("merges.txt") and ms.is_wanted("LICENSE")
    for path in ("modeling_phi4mm.py", "figures/a.png", "pytorch_model.bin", "onnx/model.onnx", "x/y/z.json"):
        assert not ms.is_wanted(path), path


def test_sizes_are_spoken_plainly():
    assert ms.human_size(11_140_000_000) == "11.1 GB"
    assert ms.human_size(540_000_000) == "540 MB"
    assert ms.human_size(12_000) == "12 KB"


def test_verify_report_and_progress_read_well(native):
    shard = native / "model-00001-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:500])
    report = ms.verify_model_folder(native)
    as_json = report.to_json()
    json.dumps(as_json)
    assert as_json["ok"] is False and as_json["state"] == "corrupt"
    assert as_json["problems"][0]["path"] == "model-00001-of-00002.safetensors"
    assert str(report.problems[0]).startswith("model-00001-of-00002.safetensors is cut off: 500 bytes of")

    p = ms.DownloadProgress(4_700_000_000, 11_100_000_000, "x", 0, 1, 3, 17)
    assert p.sentence() == "Downloading the model: 42 percent, 4.7 GB of 11.1 GB."
    assert p.total == 11_100_000_000
