"""Downloading the model from a hub-shaped mirror on 127.0.0.1: complete, resumed, refused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.core.cancel import CancelToken
from app.core.errors import Cancelled, DownloadError
from app.inference import model_store as ms
from app.inference.model_store import ModelState, download, transfer
from tests.fakes.hub_server import FakeHub, make_model_folder, wait_until
from tests.unit.hub_fixtures import wanted_files

SHARD1 = "model-00001-of-00002.safetensors"
SHARD2 = "model-00002-of-00002.safetensors"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def source(tmp_path) -> Path:
    # 600 kB shards: several 256 KiB reads each, so a cut lands mid-file
    return make_model_folder(tmp_path / "src", shard_bytes=600_000)


def _assert_same_files(source: Path, dest: Path) -> None:
    for rel in wanted_files(source):
        assert (dest / rel).read_bytes() == (source / rel).read_bytes(), rel


def _part(dest: Path, hub: FakeHub, rel: str) -> Path:
    return dest / ms.PARTIAL_DIR_NAME / f"{hub.entries[rel].sha256}.part"


def _weights_fetched(hub: FakeHub) -> list:
    return [r for r in hub.requests if r.method == "GET" and r.path.endswith(".safetensors")]


def test_download_brings_every_needed_file_byte_for_byte(hub, source, dest):
    seen = []
    report = ms.download_model(dest, progress=seen.append)

    assert report.state is ModelState.READY, report.sentence
    _assert_same_files(source, dest)
    # nothing Sightline must not run or does not need
    assert (
        not list(dest.rglob("*.py")) and not (dest / "figures").exists() and not (dest / "README.md").exists()
    )
    assert not (dest / ms.PARTIAL_DIR_NAME).exists()
    # the pinned revision was asked for, and the commit it resolved to is recorded
    assert any(r.path.endswith("/revision/refs/pr/70") for r in hub.requests)
    status = ms.model_status(dest)
    assert status["commit"] == hub.sha and status["revision"] == "refs/pr/70"
    assert status["download_complete"] is True and status["state"] == "ready"
    total = sum((source / rel).stat().st_size for rel in wanted_files(source))
    assert status["expected_bytes"] == total
    # progress: counts up to the whole, never backwards
    assert seen[-1].bytes_done == seen[-1].bytes_total == total
    assert all(a.bytes_done <= b.bytes_done for a, b in zip(seen, seen[1:], strict=False))
    assert {p.file for p in seen} >= {SHARD1, SHARD2, "config.json"}
    assert ms.verify_model_folder(dest, deep=True).ok


def test_a_complete_folder_is_not_fetched_again(hub, dest):
    ms.download_model(dest)
    hub.clear_log()
    report = ms.download_model(dest)
    assert report.state is ModelState.READY
    assert [r for r in hub.requests if "/resolve/" in r.path] == []


def test_a_dropped_connection_is_resumed_within_the_call(hub, source, dest):
    hub.cut_after(SHARD1, 100_000, times=1)
    report = ms.download_model(dest)
    assert report.state is ModelState.READY
    gets = hub.file_requests(SHARD1)
    assert [(r.range, r.status) for r in gets] == [(None, 200), ("bytes=100000-", 206)]
    assert sum(r.body_bytes for r in gets) == (source / SHARD1).stat().st_size
    _assert_same_files(source, dest)


def test_an_interrupted_download_resumes_on_the_next_call(hub, source, dest):
    hub.cut_after(SHARD1, 300_000, times=1)
    with pytest.raises(DownloadError) as info:
        ms.download_model(dest, retries=0)
    assert "interrupted" in info.value.sentence and "sightline model download" in info.value.sentence
    assert "Traceback" not in info.value.sentence
    assert _part(dest, hub, SHARD1).stat().st_size == 300_000
    half = ms.inspect_model_folder(dest)
    assert half.state is ModelState.INCOMPLETE and "interrupted" in half.sentence

    hub.clear_log()
    seen = []
    report = ms.download_model(dest, progress=seen.append)
    assert report.state is ModelState.READY
    size = (source / SHARD1).stat().st_size
    gets = hub.file_requests(SHARD1)
    assert [(r.range, r.status) for r in gets] == [("bytes=300000-", 206)]
    assert gets[0].body_bytes == size - 300_000
    # the small files finished by the first call are not fetched again
    assert hub.file_requests("config.json") == [] and hub.file_requests("tokenizer.json") == []
    assert seen[0].resumed_bytes == 300_000
    _assert_same_files(source, dest)


def test_a_killed_process_leaves_a_partial_file_that_the_next_call_resumes(hub, source, dest, tmp_path):
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from app.inference import model_store as ms

        def progress(p):
            if p.file == {SHARD1!r} and p.file_bytes_done >= 250_000:
                os._exit(9)  # die on the spot: no cleanup, no finally blocks

        ms.download_model(Path({str(dest)!r}), progress=progress)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO_ROOT, timeout=120, capture_output=True
    )
    assert proc.returncode == 9, proc.stderr.decode()[-2000:]
    leftover = _part(dest, hub, SHARD1).stat().st_size
    assert 250_000 <= leftover < (source / SHARD1).stat().st_size
    assert ms.inspect_model_folder(dest).state is ModelState.INCOMPLETE

    hub.clear_log()
    report = ms.download_model(dest)  # the dead process's lock does not block this one
    assert report.state is ModelState.READY
    gets = hub.file_requests(SHARD1)
    assert [r.range for r in gets] == [f"bytes={leftover}-"]
    assert gets[0].body_bytes == (source / SHARD1).stat().st_size - leftover
    _assert_same_files(source, dest)


def test_cancel_stops_promptly_and_keeps_the_partial_data(hub, source, dest):
    token = CancelToken()
    seen = []

    def progress(p):
        seen.append(p)
        if p.file == SHARD1 and p.file_bytes_done > 0:
            token.cancel("user")

    with pytest.raises(Cancelled) as info:
        ms.download_model(dest, progress=progress, cancel=token)
    assert "sightline model download" in info.value.sentence
    # stopped within one read of the cancel
    after_cancel = [p for p in seen if p.file == SHARD1]
    assert len(after_cancel) == 1
    kept = _part(dest, hub, SHARD1).stat().st_size
    assert kept == after_cancel[0].file_bytes_done > 0

    # the server logs the cancelled GET only once it has written the body: wait for that line
    # (or for its write to fail) so it does not land in the log of the next call
    wait_until(lambda: len(hub.file_requests(SHARD1)) >= 1, timeout_s=2)
    hub.clear_log()
    assert ms.download_model(dest).state is ModelState.READY
    assert [r.range for r in hub.file_requests(SHARD1)] == [f"bytes={kept}-"]
    _assert_same_files(source, dest)


def test_not_enough_disk_space_is_said_with_the_numbers(hub, source, dest, monkeypatch):
    monkeypatch.setattr(download, "_free_disk_bytes", lambda path: 40_000_000)
    with pytest.raises(DownloadError) as info:
        ms.download_model(dest)
    sentence = info.value.sentence
    needed = sum((source / rel).stat().st_size for rel in wanted_files(source))
    assert "not enough free disk space" in sentence
    assert f"needs {ms.human_size(needed)} more" in sentence
    assert "40 MB free" in sentence
    assert _weights_fetched(hub) == []
    assert ms.inspect_model_folder(dest).state is ModelState.MISSING


def test_server_down_is_said_plainly(hub, dest):
    hub.down = True  # every connection is dropped without an answer
    with pytest.raises(DownloadError) as info:
        ms.download_model(dest)
    host = hub.url.removeprefix("http://")
    assert info.value.sentence.startswith(f"Sightline could not reach the model server at {host}.")
    assert ms.inspect_model_folder(dest).state is ModelState.MISSING


def test_server_gone_is_said_plainly(hub, dest):
    url = hub.url
    hub.stop()  # nothing listens on the port any more: connection refused
    with pytest.raises(DownloadError) as info:
        ms.download_model(dest)
    assert f"could not reach the model server at {url.removeprefix('http://')}" in info.value.sentence
    assert "internet connection" in info.value.sentence


def test_server_lost_in_the_middle_keeps_what_was_fetched(hub, dest, monkeypatch):
    hub.cut_after(SHARD1, 200_000, times=1)
    real = transfer.DownloadJob.fetch_range

    def fetch_then_go_down(self, rf, part, offset, hasher):
        try:
            return real(self, rf, part, offset, hasher)
        finally:
            if rf.path == SHARD1:
                hub.down = True  # the cut was the server going away for good

    monkeypatch.setattr(transfer.DownloadJob, "fetch_range", fetch_then_go_down)
    with pytest.raises(DownloadError) as info:
        ms.download_model(dest, retries=2)
    assert "interrupted" in info.value.sentence and "kept" in info.value.sentence
    assert _part(dest, hub, SHARD1).stat().st_size == 200_000
    assert ms.inspect_model_folder(dest).state is ModelState.INCOMPLETE


def test_unknown_revision_is_said_plainly(hub, dest):
    with pytest.raises(DownloadError) as info:
        ms.download_model(dest, revision="refs/pr/999")
    assert info.value.sentence.startswith("The model version refs/pr/999 was not found on the model server")


def test_unknown_repository_is_said_plainly(hub, dest):
    with pytest.raises(DownloadError) as info:
        ms.download_model(dest, repo_id="someone/else")
    assert "The model someone/else was not found" in info.value.sentence


def test_remote_code_revision_is_refused_before_any_weights(guard, tmp_path, dest, monkeypatch):
    remote = make_model_folder(tmp_path / "main-branch", layout="remote_code")
    with FakeHub(remote) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        with pytest.raises(DownloadError) as info:
            ms.download_model(dest, revision="main")
        assert _weights_fetched(server) == []
        assert not any(r.path.endswith(".py") for r in server.requests)
    assert "remote-code" in info.value.sentence and "nothing more was downloaded" in info.value.sentence
    assert not (dest / "config.json").exists()


def test_a_corrupted_shard_is_caught_by_verify_and_repaired_by_download(hub, source, dest):
    ms.download_model(dest)
    shard = dest / SHARD2
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0x01  # one bit deep in the tensor data: same size, header still fine
    shard.write_bytes(bytes(data))

    assert ms.inspect_model_folder(dest).state is ModelState.READY  # cheap checks cannot see it
    deep = ms.verify_model_folder(dest, deep=True)
    assert not deep.ok and deep.state is ModelState.CORRUPT
    assert deep.problems == (ms.FileProblem(SHARD2, "does not match its checksum"),)
    assert SHARD2 in deep.sentence

    hub.clear_log()
    assert ms.download_model(dest).state is ModelState.READY
    assert [r.path.rsplit("/", 1)[-1] for r in _weights_fetched(hub)] == [SHARD2]
    _assert_same_files(source, dest)
    assert ms.verify_model_folder(dest, deep=True).ok


def test_a_truncated_shard_is_corrupt_and_download_repairs_it(hub, source, dest):
    ms.download_model(dest)
    shard = dest / SHARD1
    shard.write_bytes(shard.read_bytes()[:1000])
    report = ms.inspect_model_folder(dest)
    assert report.state is ModelState.CORRUPT and SHARD1 in report.sentence
    assert not ms.verify_model_folder(dest).ok
    assert ms.download_model(dest).state is ModelState.READY
    _assert_same_files(source, dest)


def test_data_that_does_not_match_the_servers_checksum_is_never_installed(hub, source, dest):
    # the mirror lists the shard's sha256, then serves different bytes of the same size
    data = bytearray((source / SHARD2).read_bytes())
    data[-1] ^= 0xFF
    (source / SHARD2).write_bytes(bytes(data))
    with pytest.raises(DownloadError) as info:
        ms.download_model(dest, retries=1)
    assert "checksum" in info.value.sentence
    assert not (dest / SHARD2).exists()
    assert ms.inspect_model_folder(dest).state is ModelState.INCOMPLETE


def test_a_second_download_into_the_same_folder_is_refused(hub, dest):
    import filelock

    (dest / ms.PARTIAL_DIR_NAME).mkdir(parents=True)
    lock = filelock.FileLock(str(dest / ms.PARTIAL_DIR_NAME / "download.lock"))
    with lock, pytest.raises(DownloadError) as info:
        ms.download_model(dest)
    assert "already running" in info.value.sentence
    assert [r for r in hub.requests if "/resolve/" in r.path] == []
