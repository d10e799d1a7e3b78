"""`sightline model verify`: what is wrong with each file of a model folder, optionally hashing
every weight file against the server's checksum (--deep) and remembering what it found."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.core.cancel import CancelToken
from app.core.errors import Cancelled
from app.inference.model_checks import (
    CHECKSUM_MISMATCH,
    LEFTOVER,
    MISSING,
    FileProblem,
    file_version,
    git_blob_sha1,
)
from app.inference.model_store.folder import ModelState, corrupt_sentence, inspect_model_folder
from app.inference.model_store.progress import DownloadProgress
from app.inference.model_store.record import (
    HEX40,
    LOCK_NAME,
    PARTIAL_DIR_NAME,
    read_marker,
    remove_empty_partial_dir,
    write_marker,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyReport:
    folder: Path
    state: ModelState
    ok: bool
    sentence: str
    problems: tuple[FileProblem, ...] = ()
    files_checked: int = 0
    #: True when file contents were hashed against the recorded checksums (deep=True)
    hashed: bool = False

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "state": self.state.value,
            "folder": str(self.folder),
            "sentence": self.sentence,
            "problems": [{"path": p.path, "problem": p.problem} for p in self.problems],
            "files_checked": self.files_checked,
            "hashed": self.hashed,
        }


def verify_model_folder(
    folder: Path,
    *,
    deep: bool = False,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: CancelToken | None = None,
) -> VerifyReport:
    """Check the folder the way `status` does, and say what is wrong with each file.

    Without `deep`: the same checks as inspect_model_folder (the JSON files' structure, the
    weights' headers, sizes and index, the small files' checksums), so verify and status always
    agree. With `deep` every weight file is also hashed against the server's sha256 (minutes
    for the full model); a file that fails is recorded in the folder, so `status` says it is
    damaged too and the next download fetches it again.
    """
    folder = Path(folder)
    report = inspect_model_folder(folder)
    if report.state in (ModelState.MISSING, ModelState.WRONG_FORMAT):
        return VerifyReport(folder, report.state, False, report.sentence)
    problems: list[FileProblem] = [FileProblem(m, MISSING) for m in report.missing_files]
    problems += [FileProblem(p, LEFTOVER) for p in report.partial_files]
    problems += list(report.problems)
    checked = report.files_checked
    if deep:
        known = {p.path for p in problems}
        found, hashed_ok = _verify_checksums(folder, progress, cancel, skip=known)
        problems += found
        checked = max(checked, len(known | hashed_ok | {p.path for p in found}))
        _record_damage(folder, found, hashed_ok)
    if not problems:
        what = (
            "and every checksum matches"
            if deep
            else "their structure, sizes and the small files' checksums are right"
        )
        return VerifyReport(
            folder,
            ModelState.READY,
            True,
            f"The Phi-4-multimodal model is intact: {checked} files checked, {what}.",
            files_checked=checked,
            hashed=deep,
        )
    damaged = [p for p in problems if p.problem not in (MISSING, LEFTOVER)]
    if report.state is ModelState.INCOMPLETE or not damaged:
        return VerifyReport(
            folder, ModelState.INCOMPLETE, False, report.sentence, tuple(problems), checked, deep
        )
    return VerifyReport(
        folder, ModelState.CORRUPT, False, corrupt_sentence(damaged), tuple(problems), checked, deep
    )


def _verify_checksums(
    folder: Path,
    progress: Callable[[DownloadProgress], None] | None,
    cancel: CancelToken | None,
    *,
    skip: set[str],
) -> tuple[list[FileProblem], set[str]]:
    """Hash every recorded file against the server's checksum: (problems, paths that matched)."""
    files = read_marker(folder).get("files", {})
    if not isinstance(files, dict):
        return [], set()
    problems: list[FileProblem] = []
    matched: set[str] = set()
    entries = sorted((rel, e) for rel, e in files.items() if isinstance(e, dict) and rel not in skip)
    total = sum(int(e.get("size", 0) or 0) for _, e in entries)
    done = 0
    for n, (rel, entry) in enumerate(entries):
        path = folder / rel
        if not path.is_file():
            continue  # missing files are already reported
        sha256 = str(entry.get("sha256") or "")
        oid = str(entry.get("oid") or "")
        if sha256:
            h = hashlib.sha256()
            size = int(entry.get("size", 0) or 0)
            with open(path, "rb") as f:
                for block in iter(functools.partial(f.read, 8 << 20), b""):
                    if cancel is not None and cancel.cancelled:
                        raise Cancelled()
                    h.update(block)
                    done += len(block)
                    if progress is not None:
                        progress(
                            DownloadProgress(done, total, rel, 0, size, n, len(entries), phase="checking")
                        )
            ok = h.hexdigest() == sha256
        elif HEX40.fullmatch(oid):
            done += path.stat().st_size
            ok = git_blob_sha1(path) == oid
        else:
            continue  # the server gave no hash for this file
        if ok:
            matched.add(rel)
        else:
            problems.append(FileProblem(rel, CHECKSUM_MISMATCH))
    return problems, matched


def _record_damage(folder: Path, damaged: list[FileProblem], matched: set[str]) -> None:
    """Remember what a deep verify found in the folder's record (unless a download holds it):
    `status` then says the same, and the next download hashes and fetches those files again."""
    import filelock

    marker = read_marker(folder)
    if not marker:
        return
    before = marker.get("damaged")
    recorded: dict = before if isinstance(before, dict) else {}
    new = {rel: entry for rel, entry in recorded.items() if rel not in matched}
    for p in damaged:
        version = file_version(folder / p.path)
        if version is not None:
            size, mtime_ns, ctime_ns, _ino = version
            new[p.path] = {"problem": p.problem, "size": size, "mtime_ns": mtime_ns, "ctime_ns": ctime_ns}
    if new == recorded:
        return
    partial = folder / PARTIAL_DIR_NAME
    try:
        partial.mkdir(exist_ok=True)
        lock = filelock.FileLock(str(partial / LOCK_NAME), timeout=0)
        with lock:
            marker = read_marker(folder)
            marker["damaged"] = new
            write_marker(folder, marker)
    except (OSError, filelock.Timeout):
        log.info("could not record the damaged files in %s (a download is running?)", folder)
    finally:
        remove_empty_partial_dir(folder)
