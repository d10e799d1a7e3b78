"""The files Sightline keeps inside a model folder: its record of the download and its partial folder.

The record (.sightline-model.json) says which repository, revision and commit the folder came
from and, per file, the version on disk and the server's checksum it matched; a deep verify adds
the files it found damaged. The partial folder holds interrupted downloads and the download lock.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

#: hidden folder inside the model folder holding partial downloads until they are complete
PARTIAL_DIR_NAME = ".sightline-partial"
#: small JSON file recording which revision (and commit) a folder was downloaded from
MARKER_NAME = ".sightline-model.json"
LOCK_NAME = "download.lock"
HEX40 = re.compile(r"[0-9a-f]{40}")


def read_marker(folder: Path) -> dict:
    try:
        with open(Path(folder) / MARKER_NAME, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def write_marker(folder: Path, data: dict) -> None:
    target = Path(folder) / MARKER_NAME
    tmp = target.with_name(MARKER_NAME + ".new")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, target)


def pinned_commit(dest: Path, repo_id: str, revision: str) -> str:
    """The commit an earlier download of `revision` into `dest` resolved to, if any."""
    marker = read_marker(dest)
    commit = str(marker.get("commit") or "")
    if marker.get("repo_id") == repo_id and marker.get("revision") == revision and HEX40.fullmatch(commit):
        return commit
    return ""


def remove_empty_partial_dir(dest: Path) -> None:
    partial = dest / PARTIAL_DIR_NAME
    try:
        leftovers = [p for p in partial.iterdir() if p.name != LOCK_NAME]
        if not leftovers:
            (partial / LOCK_NAME).unlink(missing_ok=True)
            partial.rmdir()
    except OSError:
        pass  # another download may have just taken the lock; leave the folder to it
