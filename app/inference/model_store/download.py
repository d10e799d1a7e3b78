"""`sightline model download`: download, resume or repair the model in a folder.

The revision is resolved to a commit once (the manifest's pinned commit when it has one); only
the files Sightline needs and the weight shards the index names are fetched (transfer.py), with
the disk space, the lock against a second download and the final check of the folder around it.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from app.core.cancel import CancelToken
from app.core.errors import DownloadError
from app.inference.model_checks import ADAPTERS, INDEX_NAME
from app.inference.model_store.folder import (
    DOWNLOAD_COMMAND,
    FolderReport,
    ModelState,
    inspect_model_folder,
)
from app.inference.model_store.hub import hub_endpoint, list_remote_files
from app.inference.model_store.manifest import load_manifest
from app.inference.model_store.progress import DownloadProgress, human_size
from app.inference.model_store.record import (
    LOCK_NAME,
    PARTIAL_DIR_NAME,
    pinned_commit,
    remove_empty_partial_dir,
)
from app.inference.model_store.transfer import DownloadJob, write_failed

DISK_MARGIN_BYTES = 100 * 1000 * 1000
DEFAULT_RETRIES = 4

log = logging.getLogger(__name__)


def _free_disk_bytes(path: Path) -> int:
    probe = Path(path).resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def is_wanted(path: str) -> bool:
    """The files Sightline needs from the repository: configs, tokenizer, weights, adapters, licence.

    Never Python files (Sightline does not run code from a model repository), images or pickles.
    """
    parts = path.split("/")
    if len(parts) > 2 or (len(parts) == 2 and parts[0] not in ADAPTERS):
        return False
    name = parts[-1]
    if name == "LICENSE":
        return True
    return name.endswith((".json", ".safetensors", ".txt", ".jinja", ".model"))


def _is_root_weight(path: str) -> bool:
    return "/" not in path and path.endswith(".safetensors")


def download_model(
    dest: Path,
    *,
    repo_id: str | None = None,
    revision: str | None = None,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: CancelToken | None = None,
    retries: int = DEFAULT_RETRIES,
) -> FolderReport:
    """Download (or resume, or repair) the model into `dest`; returns the folder's report.

    The revision is resolved to a commit once; the commit is recorded in the folder and every
    later call (a resume, a repair) fetches that same commit, even if the named revision has
    moved on since. Only the weight shards the index names are fetched. Every file is checked
    against the server's hash (sha256 of LFS files, git blob id of the rest) before it is put
    in place, and a file already here is hashed again unless this code checked that very
    version of it before. Uses HF_ENDPOINT when set. Raises DownloadError with a sentence for
    anything that goes wrong, and Cancelled when `cancel` is set (partial data stays).
    """
    import filelock

    manifest = load_manifest()
    repo_id = repo_id or manifest.repo_id
    dest = Path(dest).expanduser()
    revision_name = revision or manifest.revision
    pinned = ""
    if revision is None:
        pinned = manifest.commit or pinned_commit(dest, repo_id, manifest.revision)
    endpoint = hub_endpoint()
    try:
        (dest / PARTIAL_DIR_NAME).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_failed(dest, exc) from exc
    lock_path = dest / PARTIAL_DIR_NAME / LOCK_NAME
    lock = filelock.FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise DownloadError(f"Another download of the model into {dest} is already running.") from None
    try:
        try:
            sha, listing = list_remote_files(repo_id, pinned or revision_name, endpoint=endpoint)
        except DownloadError as exc:
            if pinned and "was not found on the model server" in exc.sentence:
                raise DownloadError(
                    f"The model version this folder was downloaded from ({revision_name} at commit "
                    f"{pinned[:12]}) is no longer on the model server. Delete the folder {dest}, "
                    f"then run {DOWNLOAD_COMMAND} to start again.",
                    detail=exc.detail,
                ) from exc
            raise
        files = [f for f in listing if is_wanted(f.path)]
        by_path = {f.path: f for f in files}
        if "config.json" not in by_path:
            raise DownloadError(
                f"The model version {revision_name} on the server has no config.json, so it is not a model "
                "Sightline can use."
            )
        job = DownloadJob(
            dest,
            files,
            repo_id=repo_id,
            revision=pinned or revision_name,
            revision_name=revision_name,
            sha=sha,
            endpoint=endpoint,
            progress=progress,
            cancel=cancel,
            retries=retries,
        )
        try:
            job.check_config(job.peek(by_path["config.json"]))
            shards = set(job.select_weights(by_path.get(INDEX_NAME)))
            unlisted = [f.path for f in files if _is_root_weight(f.path) and f.path not in shards]
            if unlisted:
                log.info("not fetching %d weight files the index does not name: %s", len(unlisted), unlisted)
            job.select([f for f in files if not _is_root_weight(f.path) or f.path in shards])
            needed = job.bytes_needed()
            free = _free_disk_bytes(dest)
        except OSError as exc:
            raise write_failed(dest, exc) from exc
        if needed + DISK_MARGIN_BYTES > free:
            raise DownloadError(
                f"There is not enough free disk space for the model. It needs {human_size(needed)} more, "
                f"and the drive holding {dest} has {human_size(free)} free. Free some space or choose "
                f"another folder, then run {DOWNLOAD_COMMAND} again.",
                detail=f"needed {needed} + margin {DISK_MARGIN_BYTES}, free {free}",
            )
        try:
            job.run()
        except OSError as exc:  # network errors are handled inside; these are the disk's
            raise write_failed(dest, exc) from exc
        report = inspect_model_folder(dest)
        job.note_shapes_checked(report)
        log.info(
            "model download complete: %s@%s, %d bytes fetched, %d resumed",
            repo_id,
            sha,
            job.fetched_bytes,
            job.resumed_bytes,
        )
    finally:
        lock.release()
        remove_empty_partial_dir(dest)
    fetched = {f.path for f in job.files}
    server_side = [p for p in report.problems if p.path in fetched]
    if report.state is ModelState.CORRUPT and server_side:
        # every file matches the server's checksum, so the server's copy itself is damaged:
        # sending the user back to `download` would only loop
        first = server_side[0]
        raise DownloadError(
            f"The model file {first.path} on the model server is itself damaged: it {first.problem}. "
            "Downloading again will not help; try again later.",
            detail=report.sentence,
        )
    return report
