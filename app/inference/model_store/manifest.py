"""The manifest (models/manifest.json): which repository, revision and commit Sightline downloads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from app import paths

DEFAULT_REPO_ID = "microsoft/Phi-4-multimodal-instruct"
#: the native-format (transformers Phi4Multimodal) conversion of the weights
DEFAULT_REVISION = "refs/pr/70"


@dataclass(frozen=True)
class Manifest:
    repo_id: str
    revision: str
    commit: str  # 40-hex commit the revision pointed at when pinned; "" when not known
    approx_total_bytes: int
    files: tuple[dict, ...]
    licence: str


def manifest_path() -> Path:
    return paths.repo_root() / "models" / "manifest.json"


def load_manifest(path: Path | None = None) -> Manifest:
    """The pinned model; falls back to built-in defaults if the manifest is missing or unreadable."""
    path = path or manifest_path()
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError("manifest is not an object")
    except (OSError, ValueError, UnicodeDecodeError):
        data = {}
    commit = str(data.get("commit") or "")
    return Manifest(
        repo_id=str(data.get("repo_id") or DEFAULT_REPO_ID),
        revision=str(data.get("revision") or DEFAULT_REVISION),
        commit=commit,
        approx_total_bytes=int(data.get("approx_total_bytes") or 0),
        files=tuple(f for f in data.get("files", ()) if isinstance(f, dict)),
        licence=str(data.get("license") or data.get("licence") or "MIT"),
    )
