"""`sightline model status --json`: the folder's state, sizes and where it came from."""

from __future__ import annotations

from pathlib import Path

from app.inference.model_store.folder import default_model_folder, inspect_model_folder
from app.inference.model_store.manifest import load_manifest
from app.inference.model_store.record import PARTIAL_DIR_NAME, pinned_commit, read_marker


def _tree_bytes(root: Path, *, skip: str | None = None) -> int:
    total = 0
    if not root.is_dir():
        return 0
    for p in root.rglob("*"):
        try:
            rel = p.relative_to(root)
            if skip is not None and rel.parts[0] == skip:
                continue
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            continue
    return total


def model_status(folder: Path | None = None) -> dict:
    """A JSON-ready summary for `sightline model status --json`."""
    folder = Path(folder) if folder is not None else default_model_folder()
    report = inspect_model_folder(folder)
    marker = read_marker(folder)
    manifest = load_manifest()
    partial_bytes = sum(p.stat().st_size for p in (folder / PARTIAL_DIR_NAME).glob("*.part") if p.is_file())
    return {
        "state": report.state.value,
        "ready": report.ready,
        "folder": str(folder),
        "sentence": report.sentence,
        "missing_files": list(report.missing_files),
        "damaged_files": list(report.damaged_files),
        "size_bytes": _tree_bytes(folder, skip=PARTIAL_DIR_NAME),
        "partial_bytes": partial_bytes,
        "expected_bytes": int(marker.get("total_bytes") or manifest.approx_total_bytes),
        "repo_id": str(marker.get("repo_id") or manifest.repo_id),
        "revision": str(marker.get("revision") or ""),
        "commit": str(marker.get("commit") or ""),
        "download_complete": bool(marker.get("complete", False)),
        "downloaded_at": str(marker.get("completed_at") or ""),
        "pinned_revision": manifest.revision,
        # later downloads and resumes fetch this commit: the manifest's, else the one recorded
        "pinned_commit": manifest.commit
        or pinned_commit(folder, str(marker.get("repo_id") or ""), manifest.revision),
        "problems": [{"path": p.path, "problem": p.problem} for p in report.problems],
        "license": manifest.licence,
    }
