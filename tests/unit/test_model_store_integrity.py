"""A damaged model is found, said the same way by status and verify, and repaired by the next
download; only the shards the index names are fetched; the resolved commit is pinned.

All against the hub-shaped mirror on 127.0.0.1 (tests/fakes/hub_server.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.core.errors import DownloadError
from app.inference import model_store as ms
from app.inference.model_store import ModelState
from app.inference.model_store import folder as folder_module
from app.inference.model_store import manifest as manifest_module
from tests.fakes.hub_server import FakeHub, make_model_folder, write_safetensors
from tests.unit.hub_fixtures import wanted_files

SHARD1 = "model-00001-of-00002.safetensors"
SHARD2 = "model-00002-of-00002.safetensors"
INDEX = "model.safetensors.index.json"


@pytest.fixture
def source(tmp_path) -> Path:
    return make_model_folder(tmp_path / "src", shard_bytes=200_000)


def _same_files(source: Path, dest: Path, names: list[str] | None = None) -> bool:
    return all(
        (dest / rel).read_bytes() == (source / rel).read_bytes() for rel in names or wanted_files(source)
    )


def _gets(hub: FakeHub, sha: str | None = None) -> list[str]:
    """The files fetched, in order (resolve GETs only)."""
    prefix = f"/resolve/{sha or hub.sha}/"
    return [r.path.split(prefix, 1)[1] for r in hub.requests if r.method == "GET" and prefix in r.path]


def _flip_one_byte(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if at is None else at
    data[at] ^= 0x20
    path.write_bytes(bytes(data))


def _record_this_version(dest: Path, rel: str) -> None:
    """Make the folder's record claim the file as it is now was checked, as an older Sightline
    wrote it after accepting a file corrupted in transit: same id, size and times."""
    marker_path = dest / ms.MARKER_NAME
    marker = json.loads(marker_path.read_text())
    st = (dest / rel).stat()
    marker["files"][rel].update(
        {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "checked": True}
    )
    marker_path.write_text(json.dumps(marker))


def _agree(dest: Path) -> ModelState:
    """status and verify say the same state about the folder; returns it."""
    status = ms.model_status(dest)
    verify = ms.verify_model_folder(dest)
    assert status["state"] == verify.state.value, (status["sentence"], verify.sentence)
    assert status["ready"] == verify.ok
    assert set(status["damaged_files"]) == {
        p.path for p in verify.problems if p.problem not in (ms.MISSING, ms.LEFTOVER)
    }
    return verify.state


# -- corrupted in transit: checked before it is installed ---------------------------------------


def test_a_same_size_corruption_in_transit_is_fetched_again_within_the_call(hub, source, dest):
    hub.corrupt("tokenizer.json", times=1)
    report = ms.download_model(dest)
    assert report.state is ModelState.READY, report.sentence
    assert _gets(hub).count("tokenizer.json") == 2  # the bad copy was never installed
    assert _same_files(source, dest)
    assert ms.verify_model_folder(dest, deep=True).ok


@pytest.mark.parametrize("rel", ["tokenizer.json", INDEX, "vision-lora/adapter_config.json", SHARD2])
def test_a_file_corrupted_on_every_try_is_never_installed_and_the_next_download_repairs_it(
    hub, source, dest, rel
):
    hub.corrupt(rel, times=2)
    with pytest.raises(DownloadError) as info:
        ms.download_model(dest, retries=1)
    assert info.value.sentence == (
        f"The downloaded file {rel} did not match the model server's checksum. "
        "Run sightline model download to try again."
    )
    assert not (dest / rel).exists()
    assert _agree(dest) is not ModelState.READY

    hub.clear_log()  # the server sends the right bytes now
    report = ms.download_model(dest)
    assert report.state is ModelState.READY, report.sentence
    assert _same_files(source, dest)
    assert _agree(dest) is ModelState.READY
    assert ms.verify_model_folder(dest, deep=True).ok


# -- accepted earlier, found later: the loop that never ended -----------------------------------


@pytest.mark.parametrize("rel", ["tokenizer.json", INDEX, "tokenizer_config.json"])
def test_a_damaged_small_file_with_the_same_size_and_record_is_found_and_repaired(hub, source, dest, rel):
    ms.download_model(dest)
    _flip_one_byte(dest / rel, at=3)  # a letter of the first key changes case: still valid JSON
    _record_this_version(dest, rel)

    assert _agree(dest) is ModelState.CORRUPT
    verify = ms.verify_model_folder(dest)
    # the right shape, the right size, the same record: only its hash tells
    assert verify.problems == (ms.FileProblem(rel, "does not match its checksum"),)
    assert "Run sightline model download to repair the model." in verify.sentence
    assert ms.model_status(dest)["sentence"] == verify.sentence
    assert not ms.verify_model_folder(dest, deep=True).ok

    hub.clear_log()
    report = ms.download_model(dest)
    assert report.state is ModelState.READY, report.sentence
    assert _gets(hub) == [rel]  # that file only, fetched again
    assert _same_files(source, dest)
    assert _agree(dest) is ModelState.READY
    assert ms.verify_model_folder(dest, deep=True).ok


def test_a_flipped_bit_in_a_shard_found_by_deep_verify_is_said_by_status_and_repaired(hub, source, dest):
    ms.download_model(dest)
    _flip_one_byte(dest / SHARD1, at=(dest / SHARD1).stat().st_size - 7)  # in the data, not the header
    _record_this_version(dest, SHARD1)  # as bit rot would leave it: nothing in the record changed

    # headers, sizes and record all agree: only hashing the weights can tell
    assert _agree(dest) is ModelState.READY
    deep = ms.verify_model_folder(dest, deep=True)
    assert deep.state is ModelState.CORRUPT and deep.hashed
    assert deep.problems == (ms.FileProblem(SHARD1, "does not match its checksum"),)
    assert deep.sentence == (
        f"The model file {SHARD1} is damaged: it does not match its checksum. "
        "Run sightline model download to repair the model."
    )
    # what deep verify found, status now says too; and the download believes it
    assert _agree(dest) is ModelState.CORRUPT
    assert ms.model_status(dest)["damaged_files"] == [SHARD1]

    hub.clear_log()
    assert ms.download_model(dest).state is ModelState.READY
    assert _gets(hub) == [SHARD1]
    assert _same_files(source, dest)
    assert _agree(dest) is ModelState.READY
    assert ms.verify_model_folder(dest, deep=True).ok


def test_a_weight_file_changed_with_its_times_put_back_is_hashed_again(hub, source, dest):
    import os

    ms.download_model(dest)
    shard = dest / SHARD2
    st = shard.stat()
    _flip_one_byte(shard, at=st.st_size - 3)
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime; the ctime moved
    hub.clear_log()
    assert ms.download_model(dest).state is ModelState.READY
    assert _gets(hub) == [SHARD2]
    assert _same_files(source, dest)


def test_a_complete_folder_is_not_hashed_or_fetched_again(hub, dest):
    ms.download_model(dest)
    hub.clear_log()
    seen = []
    assert ms.download_model(dest, progress=seen.append).state is ModelState.READY
    assert _gets(hub) == []
    assert not [p for p in seen if p.phase == "checking" and p.file.endswith(".safetensors")]


def test_a_server_whose_own_file_is_damaged_is_not_sent_back_to_download(guard, tmp_path, dest, monkeypatch):
    bad = make_model_folder(tmp_path / "bad", shard_bytes=50_000)
    (bad / "tokenizer.json").write_text("[1, 2, 3]")  # the server's file, with its true hash
    with FakeHub(bad) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        with pytest.raises(DownloadError) as info:
            ms.download_model(dest)
    assert "tokenizer.json on the model server is itself damaged" in info.value.sentence
    assert "will not help" in info.value.sentence


def test_a_damaged_index_on_the_server_stops_before_any_weights(guard, tmp_path, dest, monkeypatch):
    bad = make_model_folder(tmp_path / "bad", shard_bytes=50_000)
    (bad / INDEX).write_text(json.dumps({"weight_map": {"a": "../../etc/passwd.safetensors"}}))
    with FakeHub(bad) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        with pytest.raises(DownloadError) as info:
            ms.download_model(dest)
        assert [p for p in _gets(server) if p.endswith(".safetensors")] == []
    assert info.value.sentence.startswith("The model's weights index on the server is damaged")


# -- only the shards the index names ------------------------------------------------------------


def test_shards_the_index_does_not_name_are_never_fetched(guard, tmp_path, dest, monkeypatch):
    src = make_model_folder(tmp_path / "src", shard_bytes=100_000)
    # the revision also carries the remote-code format's shards (about 11 GB in the real repo)
    for i in (1, 2, 3):
        write_safetensors(src / f"model-0000{i}-of-00003.safetensors", {f"old.{i}": b"\x07" * 150_000})
    write_safetensors(src / "model.safetensors", {"whole": b"\x01" * 1000})
    seen = []
    with FakeHub(src) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        report = ms.download_model(dest, progress=seen.append)
        fetched = _gets(server)
        touched = [
            r.path for r in server.requests if "-of-00003" in r.path or r.path.endswith("/model.safetensors")
        ]
    assert report.state is ModelState.READY, report.sentence
    assert touched == []
    assert sorted(p for p in fetched if "/" not in p and p.endswith(".safetensors")) == [SHARD1, SHARD2]
    assert fetched.index(INDEX) < fetched.index(SHARD1)  # the index first, then what it names
    assert not list(dest.glob("*-of-00003.safetensors")) and not (dest / "model.safetensors").exists()
    total = sum(
        (src / rel).stat().st_size
        for rel in wanted_files(src)
        if "-of-00003" not in rel and rel != "model.safetensors"
    )
    assert seen[-1].bytes_total == seen[-1].bytes_done == total
    assert ms.model_status(dest)["expected_bytes"] == total


def test_a_single_file_checkpoint_without_index_is_fetched(guard, tmp_path, dest, monkeypatch):
    src = make_model_folder(tmp_path / "src", shard_bytes=50_000)
    (src / INDEX).unlink()
    for shard in (SHARD1, SHARD2):
        (src / shard).unlink()
    write_safetensors(src / "model.safetensors", {"w": b"\x02" * 5000})
    with FakeHub(src) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        assert ms.download_model(dest).state is ModelState.READY
    assert _same_files(src, dest)


# -- the resolved commit is recorded and pinned ---------------------------------------------------


def _next_commit(source: Path, tmp_path: Path) -> Path:
    newer = tmp_path / "newer"
    shutil.copytree(source, newer)
    write_safetensors(
        newer / SHARD1,
        {"model.layers.1.a.weight": b"\x05" * 100_000, "model.layers.1.b.weight": b"\x06" * 100_000},
    )
    _flip_one_byte(newer / "tokenizer.json", at=3)
    return newer


def test_a_resume_fetches_the_recorded_commit_not_the_moved_revision(hub, source, dest, tmp_path):
    hub.cut_after(SHARD1, 50_000, times=1)
    with pytest.raises(DownloadError):
        ms.download_model(dest, retries=0)
    first = hub.sha
    assert ms.model_status(dest)["commit"] == first
    assert ms.model_status(dest)["pinned_commit"] == first

    newer_sha = hub.add_commit(_next_commit(source, tmp_path))  # refs/pr/70 moves on
    assert newer_sha != first and hub.revisions["refs/pr/70"] == newer_sha
    hub.clear_log()
    assert ms.download_model(dest).state is ModelState.READY
    assert any(r.path.endswith(f"/revision/{first}") for r in hub.requests)
    assert not any(f"/resolve/{newer_sha}/" in r.path for r in hub.requests)
    assert _same_files(source, dest)  # one commit's files, never a mix
    status = ms.model_status(dest)
    assert status["commit"] == first and status["revision"] == "refs/pr/70"

    # a repair of the complete folder also stays on the recorded commit
    _flip_one_byte(dest / "tokenizer.json")
    hub.clear_log()
    assert ms.download_model(dest).state is ModelState.READY
    assert _gets(hub, first) == ["tokenizer.json"] and _gets(hub, newer_sha) == []

    # naming the revision explicitly is how a folder moves to its new commit
    hub.clear_log()
    assert ms.download_model(dest, revision="refs/pr/70").state is ModelState.READY
    assert ms.model_status(dest)["commit"] == newer_sha
    assert sorted(_gets(hub, newer_sha)) == [SHARD1, "tokenizer.json"]


def test_a_pinned_commit_gone_from_the_server_is_said_plainly(hub, source, dest, tmp_path):
    ms.download_model(dest)
    gone = hub.sha
    hub.add_commit(_next_commit(source, tmp_path))
    del hub.revisions[gone]
    with pytest.raises(DownloadError) as info:
        ms.download_model(dest)
    assert f"(refs/pr/70 at commit {gone[:12]}) is no longer on the model server" in info.value.sentence
    assert f"Delete the folder {dest}" in info.value.sentence


def test_the_manifests_commit_wins_over_the_moving_revision(hub, source, dest, tmp_path, monkeypatch):
    pinned = hub.sha
    manifest = json.loads(ms.manifest_path().read_text())
    manifest["commit"] = pinned
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(manifest_module, "manifest_path", lambda: tmp_path / "manifest.json")
    hub.add_commit(_next_commit(source, tmp_path))
    assert ms.download_model(dest).state is ModelState.READY
    assert ms.model_status(dest)["commit"] == pinned
    assert _same_files(source, dest)


# -- the chat template: .jinja (the manifest's) or .json (some conversions) -----------------------


def test_either_chat_template_file_is_accepted_and_each_is_checked(guard, tmp_path, dest, monkeypatch):
    src = make_model_folder(tmp_path / "src", shard_bytes=50_000)
    (src / "chat_template.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    with FakeHub(src) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        assert ms.download_model(dest).state is ModelState.READY
    assert (dest / "chat_template.json").read_bytes() == (src / "chat_template.json").read_bytes()
    (dest / "chat_template.jinja").write_text("{{ messages }}")
    assert _agree(dest) is ModelState.READY

    manifest = ms.load_manifest()
    entry = next(f for f in manifest.files if f["path"] == "chat_template.jinja")
    assert "chat_template.json" in entry.get("or", [])


# -- status and verify agree on every shape of damage ---------------------------------------------


def _json(text: str):
    def damage(folder: Path, rel: str) -> None:
        (folder / rel).write_text(text)

    return damage


def _truncate(folder: Path, rel: str) -> None:
    (folder / rel).write_bytes((folder / rel).read_bytes()[:-100])


def _empty(folder: Path, rel: str) -> None:
    (folder / rel).write_bytes(b"")


def _same_size_flip(folder: Path, rel: str) -> None:
    _flip_one_byte(folder / rel)


def _remove(folder: Path, rel: str) -> None:
    (folder / rel).unlink()


def _config_without(key: str):
    def damage(folder: Path, rel: str) -> None:
        config = json.loads((folder / rel).read_text())
        del config[key]
        (folder / rel).write_text(json.dumps(config))

    return damage


def _config_with(key: str, value):
    def damage(folder: Path, rel: str) -> None:
        config = json.loads((folder / rel).read_text())
        config[key] = value
        (folder / rel).write_text(json.dumps(config))

    return damage


def _index_with(weight_map_change):
    def damage(folder: Path, rel: str) -> None:
        index = json.loads((folder / rel).read_text())
        weight_map_change(index["weight_map"])
        (folder / rel).write_text(json.dumps(index))

    return damage


def _partial_leftover(folder: Path, rel: str) -> None:
    (folder / ms.PARTIAL_DIR_NAME).mkdir(exist_ok=True)
    (folder / ms.PARTIAL_DIR_NAME / ("ab" * 32 + ".part")).write_bytes(b"x" * 10)


SHAPES = [
    # (name, file, damage, expected state)
    ("intact", "config.json", lambda folder, rel: None, "ready"),
    ("config a list", "config.json", _json("[1, 2, 3]"), "corrupt"),
    ("config empty object", "config.json", _json("{}"), "corrupt"),
    ("config not json", "config.json", _json("{not json"), "corrupt"),
    ("config without hidden_size", "config.json", _config_without("hidden_size"), "corrupt"),
    ("config with a text width", "config.json", _config_with("num_hidden_layers", "32"), "corrupt"),
    ("config with a list vision_config", "config.json", _config_with("vision_config", [1]), "corrupt"),
    ("config of another model", "config.json", _config_with("model_type", "llama"), "wrong_format"),
    ("config missing", "config.json", _remove, "incomplete"),
    ("tokenizer same-size flip", "tokenizer.json", _same_size_flip, "corrupt"),
    ("tokenizer a list", "tokenizer.json", _json("[1, 2, 3]"), "corrupt"),
    ("tokenizer not json", "tokenizer.json", _json("{"), "corrupt"),
    ("tokenizer missing", "tokenizer.json", _remove, "incomplete"),
    ("tokenizer config a list", "tokenizer_config.json", _json("[]"), "corrupt"),
    ("processor config a string", "preprocessor_config.json", _json('"x"'), "corrupt"),
    ("generation config a number", "generation_config.json", _json("7"), "corrupt"),
    ("index not json", INDEX, _json("{"), "corrupt"),
    ("index without weight map", INDEX, _json('{"metadata": {}}'), "corrupt"),
    ("index escaping the folder", INDEX, _index_with(lambda m: m.update(x="../x.safetensors")), "corrupt"),
    (
        "index naming the wrong shard",
        INDEX,
        _index_with(lambda m: m.update({k: SHARD2 for k in m})),
        "corrupt",
    ),
    (
        "index naming an absent shard",
        INDEX,
        _index_with(lambda m: m.update(x="model-9.safetensors")),
        "incomplete",
    ),
    ("index same-size flip", INDEX, _same_size_flip, "corrupt"),
    ("shard truncated", SHARD1, _truncate, "corrupt"),
    ("shard empty", SHARD1, _empty, "corrupt"),
    ("shard missing", SHARD2, _remove, "incomplete"),
    ("adapter config a list", "vision-lora/adapter_config.json", _json("[1]"), "corrupt"),
    ("adapter config not an adapter", "speech-lora/adapter_config.json", _json('{"a": 1}'), "corrupt"),
    ("adapter weights empty", "speech-lora/adapter_model.safetensors", _empty, "corrupt"),
    ("adapter weights without tensors", "vision-lora/adapter_model.safetensors", None, "corrupt"),
    ("chat template json broken", "chat_template.json", _json("{"), "corrupt"),
    ("chat template jinja not utf-8", "chat_template.jinja", None, "corrupt"),
    ("partial download left over", "config.json", _partial_leftover, "incomplete"),
]


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory):
    """One folder downloaded through the mirror (so its record holds the server's hashes)."""
    import os

    base = tmp_path_factory.mktemp("agree")
    src = make_model_folder(base / "src", shard_bytes=40_000)
    (src / "chat_template.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    (src / "chat_template.jinja").write_text("{{ messages }}")
    saved = {k: os.environ.get(k) for k in ("HF_HOME", "HF_ENDPOINT", "HF_HUB_DISABLE_XET", "HF_TOKEN")}
    os.environ.update({"HF_HOME": str(base / "hf"), "HF_HUB_DISABLE_XET": "1"})
    os.environ.pop("HF_TOKEN", None)
    try:
        with FakeHub(src) as server:
            os.environ["HF_ENDPOINT"] = server.url
            folder = base / "Phi-4-multimodal-instruct"
            assert ms.download_model(folder).state is ModelState.READY
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return folder


@pytest.mark.parametrize(("name", "rel", "damage", "expected"), SHAPES, ids=[s[0] for s in SHAPES])
def test_status_and_verify_agree(downloaded, tmp_path, name, rel, damage, expected):
    folder = tmp_path / "Phi-4-multimodal-instruct"
    shutil.copytree(downloaded, folder)
    # the copy has new ctimes: bring its record up to date, as a download of it would have
    for f in json.loads((folder / ms.MARKER_NAME).read_text())["files"]:
        _record_this_version(folder, f)
    if damage is None and rel.endswith(".safetensors"):
        write_safetensors(folder / rel, {})
    elif damage is None:
        (folder / rel).write_bytes(b"\xff\xfe{{ bad }}")
    else:
        damage(folder, rel)

    status = ms.model_status(folder)
    verify = ms.verify_model_folder(folder)
    deep = ms.verify_model_folder(folder, deep=True)
    assert status["state"] == verify.state.value == deep.state.value == expected, (
        status["sentence"],
        verify.sentence,
    )
    assert status["ready"] is verify.ok is deep.ok is (expected == "ready")
    if expected == "corrupt":
        assert status["damaged_files"] == [rel]
        assert [p.path for p in verify.problems] == [rel]
        assert status["sentence"] == verify.sentence
        assert verify.sentence.startswith(f"The model file {rel} is damaged: it ")
        assert verify.sentence.endswith("Run sightline model download to repair the model.")
    if expected == "incomplete":
        assert "resume" in status["sentence"]


def test_a_checked_tokenizer_is_only_hashed_at_later_starts(hub, dest, monkeypatch):
    ms.download_model(dest)
    marker = json.loads((dest / ms.MARKER_NAME).read_text())
    assert marker["files"]["tokenizer.json"]["shape_ok"] == marker["files"]["tokenizer.json"]["oid"]

    def no_parsing(folder, rel):
        raise AssertionError(f"{rel} was parsed again")

    monkeypatch.setattr(folder_module, "json_problem", no_parsing)
    assert ms.inspect_model_folder(dest).state is ModelState.READY
    # other bytes are parsed (and hashed) again
    _flip_one_byte(dest / "tokenizer.json", at=3)
    with pytest.raises(AssertionError, match="tokenizer.json was parsed again"):
        ms.inspect_model_folder(dest)
