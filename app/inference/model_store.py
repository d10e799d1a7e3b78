"""Where the Phi-4-multimodal weights live, and whether a folder holds a usable copy.

`inspect_model_folder` is cheap (no hashing, no torch): it reads small JSON files and the few-KiB
safetensors headers, and tells READY / MISSING / INCOMPLETE / WRONG_FORMAT / CORRUPT with the
sentence a user hears.
"""

from __future__ import annotations

import enum
import errno
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from app import paths
from app.core.cancel import CancelToken
from app.core.errors import (
    Cancelled,
    DownloadError,
    ModelFormatError,
    ModelIncompleteError,
    ModelNotFoundError,
    SightlineError,
)
from app.inference.model_checks import (
    ADAPTERS,
    CHECKSUM_MISMATCH,
    INDEX_NAME,
    JSON_SHAPES,
    LEFTOVER,
    MISSING,
    NATIVE_MODEL_TYPE,
    SMALL_FILE_BYTES,
    FileProblem,
    SafetensorsHeader,
    SafetensorsHeaderError,  # noqa: F401 - part of this module's API
    check_safetensors_file,
    config_summary,
    file_version,
    git_blob_sha1,
    index_problems,
    json_problem,
    parse_index,
    read_index,
    read_safetensors_header,
    recorded_problem,
    same_version,
    text_problem,
)

if TYPE_CHECKING:
    from app.settings.schema import Settings

MODEL_FOLDER_NAME = "Phi-4-multimodal-instruct"
REMOTE_CODE_MODEL_TYPES = ("phi4mm",)
#: hidden folder inside the model folder holding partial downloads until they are complete
PARTIAL_DIR_NAME = ".sightline-partial"
#: small JSON file recording which revision (and commit) a folder was downloaded from
MARKER_NAME = ".sightline-model.json"
_LOCK_NAME = "download.lock"
DOWNLOAD_COMMAND = "sightline model download"

_MISSING_SENTENCE = (
    "The Phi-4-multimodal model is not installed. Sightline still reads text with on-device text "
    f"recognition. To get rich descriptions, run {DOWNLOAD_COMMAND}."
)


class ModelCorruptError(ModelIncompleteError):
    """A model file is present but damaged (truncated, unreadable header, unparsable JSON)."""


class ModelState(enum.Enum):
    READY = "ready"
    MISSING = "missing"
    INCOMPLETE = "incomplete"
    WRONG_FORMAT = "wrong_format"
    CORRUPT = "corrupt"


@dataclass(frozen=True)
class FolderReport:
    folder: Path
    state: ModelState
    sentence: str
    missing_files: tuple[str, ...] = ()
    #: files that are present but damaged (CORRUPT)
    damaged_files: tuple[str, ...] = ()
    #: leftovers of an interrupted download (relative paths)
    partial_files: tuple[str, ...] = ()
    #: the config's model_type, if config.json was readable
    model_type: str = ""
    #: relative paths of the weight files the folder uses (shards or model.safetensors)
    weight_files: tuple[str, ...] = ()
    #: what is wrong with each damaged file, in the same order as damaged_files
    problems: tuple[FileProblem, ...] = ()
    #: how many files the checks read
    files_checked: int = 0

    @property
    def ready(self) -> bool:
        return self.state is ModelState.READY

    def raise_if_not_ready(self) -> None:
        detail = f"{self.state.value}: {self.folder}"
        if self.missing_files:
            detail += f"; missing {', '.join(self.missing_files)}"
        if self.damaged_files:
            detail += f"; damaged {', '.join(self.damaged_files)}"
        if self.state is ModelState.READY:
            return
        if self.state is ModelState.MISSING:
            raise ModelNotFoundError(self.sentence, detail=detail)
        if self.state is ModelState.WRONG_FORMAT:
            raise ModelFormatError(self.sentence, detail=detail)
        if self.state is ModelState.CORRUPT:
            raise ModelCorruptError(self.sentence, detail=detail)
        raise ModelIncompleteError(self.sentence, detail=detail)


def default_model_folder(settings: Settings | None = None) -> Path:
    """settings.model_dir if set, else <user models dir>/Phi-4-multimodal-instruct."""
    if settings is not None and settings.model_dir:
        return Path(settings.model_dir).expanduser()
    return paths.models_dir() / MODEL_FOLDER_NAME


# --------------------------------------------------------------------------------------------
# inspecting a folder: one set of checks for status, verify and the download


def _read_json(path: Path) -> object:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _partial_leftovers(folder: Path) -> list[str]:
    leftovers: list[str] = []
    partial = folder / PARTIAL_DIR_NAME
    if partial.is_dir():
        leftovers += [
            str(p.relative_to(folder))
            for p in sorted(partial.rglob("*"))
            if p.is_file() and p.name != _LOCK_NAME
        ]
    # huggingface_hub's own leftovers (a killed snapshot_download)
    for p in folder.rglob("*.incomplete"):
        rel = p.relative_to(folder)
        if p.is_file() and rel.parts[0] != PARTIAL_DIR_NAME:
            leftovers.append(str(rel))
    return sorted(set(leftovers))


def _has_remote_code(folder: Path) -> bool:
    return any(folder.glob("modeling_phi4mm*.py")) or any(folder.glob("configuration_phi4mm*.py"))


def _wrong_format_sentence(model_type: str) -> str:
    if model_type in REMOTE_CODE_MODEL_TYPES or not model_type:
        return (
            "This folder holds the remote-code version of Phi-4-multimodal, which Sightline does not "
            f"run. Run {DOWNLOAD_COMMAND} to fetch the native-format version."
        )
    return (
        f"This folder holds {'an' if model_type[:1].lower() in 'aeiou' else 'a'} {model_type} model, "
        "not Phi-4-multimodal. "
        f"Run {DOWNLOAD_COMMAND} to fetch Phi-4-multimodal."
    )


def _incomplete_sentence(missing: list[str], partial: list[str]) -> str:
    if partial:
        still = f": {len(missing)} files are still missing" if len(missing) > 1 else ""
        return f"The Phi-4-multimodal download was interrupted{still}. Run {DOWNLOAD_COMMAND} to resume it."
    if len(missing) == 1:
        what = f"the file {missing[0]} is missing"
    elif len(missing) == 2:
        what = f"the files {missing[0]} and {missing[1]} are missing"
    else:
        what = f"{len(missing)} files are missing, among them {missing[0]} and {missing[1]}"
    return f"The Phi-4-multimodal model is incomplete: {what}. Run {DOWNLOAD_COMMAND} to resume the download."


def _corrupt_sentence(damaged: list[FileProblem]) -> str:
    first = damaged[0]
    if len(damaged) == 1:
        what = f"The model file {first.path} is damaged: it {first.problem}"
    else:
        what = f"{len(damaged)} model files are damaged, among them {first.path}: it {first.problem}"
    return f"{what}. Run {DOWNLOAD_COMMAND} to repair the model."


def _tokenizer_missing(folder: Path) -> list[str]:
    if (folder / "tokenizer.json").is_file() or (folder / "tokenizer.model").is_file():
        return []
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        return []
    return ["tokenizer.json"]


def _recorded_damage(folder: Path, marker: dict) -> dict[str, str]:
    """Files a deep verify found damaged and that have not changed since: rel -> problem."""
    damaged = marker.get("damaged")
    if not isinstance(damaged, dict):
        return {}
    return {
        str(rel): str(entry.get("problem") or CHECKSUM_MISMATCH)
        for rel, entry in damaged.items()
        if isinstance(entry, dict) and same_version(entry, folder / str(rel))
    }


class _Findings:
    """What the checks found in a folder, in a stable order, one problem per file."""

    def __init__(self) -> None:
        self.missing: list[str] = []
        self.problems: dict[str, str] = {}
        self.checked: set[str] = set()

    def damaged(self, rel: str, problem: str | None) -> None:
        self.checked.add(rel)
        if problem is not None and rel not in self.problems:
            self.problems[rel] = problem

    def as_problems(self) -> tuple[FileProblem, ...]:
        return tuple(FileProblem(rel, problem) for rel, problem in self.problems.items())


def _shape_known_good(path: Path, entry: object) -> bool:
    """True when the file's content hashes to a version whose structure was checked after its
    download (the shape is a function of the content): parsing a 15 MB tokenizer.json at every
    start is then not needed, only hashing it (milliseconds)."""
    if not isinstance(entry, dict):
        return False
    oid = str(entry.get("oid") or "")
    return (
        _HEX40.fullmatch(oid) is not None
        and entry.get("shape_ok") == oid
        and not entry.get("sha256")
        and recorded_problem(path, entry) is None
    )


def _check_weights(folder: Path, found: _Findings) -> list[str]:
    """The index and the shards it names (or a single model.safetensors); returns the shard list."""
    headers: dict[str, SafetensorsHeader] = {}
    index_path = folder / INDEX_NAME
    weight_map: dict[str, str] | None = None
    total = None
    if index_path.is_file():
        weight_map, total, problem = read_index(index_path)
        found.damaged(INDEX_NAME, problem)
        weight_files = sorted(set(weight_map.values())) if weight_map else []
    elif (folder / "model.safetensors").is_file():
        weight_files = ["model.safetensors"]
    else:
        found.missing.append(INDEX_NAME)
        weight_files = []
    for name in weight_files:
        path = folder / name
        if not path.is_file():
            found.missing.append(name)
            continue
        problem = check_safetensors_file(path)
        found.damaged(name, problem)
        if problem is None:
            headers[name] = read_safetensors_header(path)
    if weight_map:
        found.damaged(INDEX_NAME, index_problems(weight_map, total, headers))
    return weight_files


def inspect_model_folder(folder: Path) -> FolderReport:
    """Tell whether `folder` holds a usable native-format Phi-4-multimodal copy. Cheap.

    Reads the JSON files the loader needs (and checks their shape), the weights' headers and
    sizes, and hashes the small files against the checksums the download recorded from the
    server; a weight file a deep verify found damaged stays damaged until it changes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return FolderReport(folder, ModelState.MISSING, _MISSING_SENTENCE)
    partial = _partial_leftovers(folder)
    try:
        entries = [p for p in folder.iterdir() if p.name not in (MARKER_NAME, PARTIAL_DIR_NAME)]
    except OSError:
        entries = []
    if not entries and not partial:
        return FolderReport(folder, ModelState.MISSING, _MISSING_SENTENCE)
    found = _Findings()
    model_type = ""

    config_path = folder / "config.json"
    if config_path.is_file():
        problem, model_type = config_summary(config_path)
        found.damaged("config.json", problem)
        if problem is None and model_type != NATIVE_MODEL_TYPE:
            return FolderReport(
                folder,
                ModelState.WRONG_FORMAT,
                _wrong_format_sentence(model_type),
                model_type=model_type,
            )
    else:
        if _has_remote_code(folder):
            return FolderReport(folder, ModelState.WRONG_FORMAT, _wrong_format_sentence(""))
        found.missing.append("config.json")

    weight_files = _check_weights(folder, found)

    found.missing += _tokenizer_missing(folder)
    if not (folder / "tokenizer_config.json").is_file():
        found.missing.append("tokenizer_config.json")
    if (
        not (folder / "preprocessor_config.json").is_file()
        and not (folder / "processor_config.json").is_file()
    ):
        found.missing.append("preprocessor_config.json")
    for adapter in ADAPTERS:
        for rel in (f"{adapter}/adapter_config.json", f"{adapter}/adapter_model.safetensors"):
            if not (folder / rel).is_file():
                found.missing.append(rel)
        weights_rel = f"{adapter}/adapter_model.safetensors"
        if (folder / weights_rel).is_file():
            problem = check_safetensors_file(folder / weights_rel)
            if problem is None and not read_safetensors_header(folder / weights_rel).tensors:
                problem = "holds no tensors"
            found.damaged(weights_rel, problem)
    marker = _read_marker(folder)
    files = marker.get("files") if isinstance(marker.get("files"), dict) else {}
    for rel in JSON_SHAPES:
        if (folder / rel).is_file():
            if _shape_known_good(folder / rel, files.get(rel)):
                found.checked.add(rel)  # these very bytes passed the checks before
            else:
                found.damaged(rel, json_problem(folder, rel))
    # the chat template: chat_template.jinja (the manifest's) or chat_template.json (some
    # conversions write that one); either, or none (the tokenizer config may carry it)
    if (folder / "chat_template.jinja").is_file():
        found.damaged("chat_template.jinja", text_problem(folder / "chat_template.jinja"))

    # what the download recorded from the server: sizes and the small files' git blob ids
    for rel, entry in files.items():
        if isinstance(entry, dict) and (folder / str(rel)).is_file():
            found.damaged(str(rel), recorded_problem(folder / str(rel), entry))
    for rel, problem in _recorded_damage(folder, marker).items():
        found.damaged(rel, problem)

    missing = found.missing
    damaged = found.as_problems()
    common = {
        "missing_files": tuple(missing),
        "damaged_files": tuple(p.path for p in damaged),
        "partial_files": tuple(partial),
        "model_type": model_type,
        "weight_files": tuple(weight_files),
        "problems": damaged,
        "files_checked": len(found.checked),
    }
    if missing or partial:
        # a partial download explains damaged files too: resuming is the remedy
        return FolderReport(folder, ModelState.INCOMPLETE, _incomplete_sentence(missing, partial), **common)
    if damaged:
        return FolderReport(folder, ModelState.CORRUPT, _corrupt_sentence(list(damaged)), **common)
    return FolderReport(
        folder,
        ModelState.READY,
        "The Phi-4-multimodal model is installed and complete.",
        **common,
    )


# --------------------------------------------------------------------------------------------
# the manifest (models/manifest.json): which repository and revision Sightline downloads

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

    @property
    def download_revision(self) -> str:
        """The pinned commit when the manifest has one, else the named revision."""
        return self.commit or self.revision


def manifest_path() -> Path:
    return paths.repo_root() / "models" / "manifest.json"


def load_manifest(path: Path | None = None) -> Manifest:
    """The pinned model; falls back to built-in defaults if the manifest is missing or unreadable."""
    path = path or manifest_path()
    try:
        data = _read_json(path)
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


# --------------------------------------------------------------------------------------------
# downloading, resumable across calls and process restarts
#
# huggingface_hub gives the commit and the file listing; the bytes come from our own Range
# requests to the resolve URLs, into <dest>/.sightline-partial/<key>.part, checked (sha256 for
# LFS files, size for the rest) and renamed into place when complete. A partial file survives a
# failed call, a cancel and a killed process, and the next call continues from its last byte.

CHUNK_BYTES = 256 * 1024
DISK_MARGIN_BYTES = 100 * 1000 * 1000
DEFAULT_RETRIES = 4
NETWORK_TIMEOUT_S = 30.0
#: first wait before retrying a dropped connection; doubles per failure without progress
RETRY_BASE_S = 1.0
_PAUSED_SENTENCE = f"Download paused. Run {DOWNLOAD_COMMAND} to continue where it left off."

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadProgress:
    bytes_done: int
    bytes_total: int
    file: str  # relative path of the file being fetched (or checked)
    file_bytes_done: int
    file_bytes_total: int
    files_done: int
    files_total: int
    #: bytes that were already on disk when this call started (resumed, not fetched again)
    resumed_bytes: int = 0
    #: "downloading", or "checking" while data already on disk is hashed
    phase: str = "downloading"

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.bytes_total if self.bytes_total else 1.0

    @property
    def total(self) -> int:
        return self.bytes_total

    def sentence(self) -> str:
        """What a person hears: "Downloading the model: 42 percent, 4.7 GB of 11.1 GB." """
        verb = (
            "Checking the model files already here" if self.phase == "checking" else "Downloading the model"
        )
        percent = int(self.fraction * 100)
        return f"{verb}: {percent} percent, {human_size(self.bytes_done)} of {human_size(self.bytes_total)}."


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str = ""  # the LFS oid, for large files
    blob_id: str = ""  # the git blob id (sha1 of "blob <size>\0" + content)


def human_size(n: int) -> str:
    """Sizes as a person says them: 11.1 GB, 540 MB, 12 KB (decimal units)."""
    if n >= 1_000_000_000:
        return f"{n / 1e9:.1f} GB"
    if n >= 1_000_000:
        return f"{n / 1e6:.0f} MB"
    return f"{max(n, 0) / 1e3:.0f} KB"


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


def _hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _import_hub():
    # Sightline fetches the bytes itself; never let the hub library switch to its Xet transfer.
    os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
    # No telemetry: it would also fetch a registry from the endpoint fixed when the library was
    # first imported (huggingface.co), whatever HF_ENDPOINT says now.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import huggingface_hub
    from huggingface_hub import constants

    if os.environ["HF_HUB_DISABLE_TELEMETRY"].strip().lower() in {"1", "true", "yes", "on"}:
        constants.HF_HUB_DISABLE_TELEMETRY = True
    return huggingface_hub


def _hub_error(exc: BaseException, *, repo_id: str, revision: str, endpoint: str) -> DownloadError:
    from huggingface_hub import errors as hf_errors

    host = urlsplit(endpoint).netloc or endpoint
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        sentence = (
            "Downloads are switched off on this computer because HF_HUB_OFFLINE is set. "
            f"Unset it, then run {DOWNLOAD_COMMAND} again."
        )
    elif isinstance(exc, hf_errors.RevisionNotFoundError):
        sentence = f"The model version {revision} was not found on the model server at {host}."
    elif isinstance(exc, hf_errors.GatedRepoError):
        sentence = f"The model server at {host} asks for a sign-in before it lets anyone download {repo_id}."
    elif isinstance(exc, hf_errors.RepositoryNotFoundError):
        sentence = f"The model {repo_id} was not found on the model server at {host}."
    elif isinstance(exc, hf_errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", "unknown")
        sentence = (
            f"The model server at {host} answered with error {status}. "
            f"Try again later with {DOWNLOAD_COMMAND}."
        )
    else:
        sentence = (
            f"Sightline could not reach the model server at {host}. "
            f"Check the internet connection, then run {DOWNLOAD_COMMAND} again."
        )
    return DownloadError(sentence, detail=f"{type(exc).__name__}: {exc}")


def list_remote_files(
    repo_id: str, revision: str, *, endpoint: str | None = None
) -> tuple[str, list[RemoteFile]]:
    """(commit sha, every file of the repository at that commit). Raises DownloadError."""
    endpoint = endpoint or _hub_endpoint()
    hub = _import_hub()
    from huggingface_hub.hf_api import RepoFile

    try:
        api = hub.HfApi(endpoint=endpoint, library_name="sightline")
        info = api.model_info(repo_id, revision=revision, timeout=NETWORK_TIMEOUT_S)
        sha = str(info.sha or "")
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise DownloadError(
                f"The model server gave no valid version for {repo_id} at {revision}.", detail=repr(sha)
            )
        files = []
        for entry in api.list_repo_tree(repo_id, revision=sha, recursive=True):
            if not isinstance(entry, RepoFile):
                continue
            lfs = entry.lfs
            files.append(
                RemoteFile(
                    path=entry.path,
                    size=int(lfs.size if lfs else entry.size),
                    sha256=str(lfs.sha256) if lfs else "",
                    blob_id=str(entry.blob_id or ""),
                )
            )
    except SightlineError:
        raise
    except Exception as exc:  # the hub library raises its own and its HTTP client's errors
        raise _hub_error(exc, repo_id=repo_id, revision=revision, endpoint=endpoint) from exc
    finally:
        # The listing is done: close the hub client's pooled connection instead of leaving a
        # socket to the server open for as long as the app runs.
        from huggingface_hub.utils import close_session

        close_session()
    return sha, files


class _Transient(Exception):
    """A dropped connection or a server hiccup: worth retrying from the bytes we have."""

    def __init__(self, detail: str, *, progressed: bool = False):
        super().__init__(detail)
        self.progressed = progressed


class _Hash:
    """sha256 of a partial file, kept in step with its bytes across retries."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.h = hashlib.sha256()
        self.upto = 0

    def update(self, data: bytes) -> None:
        self.h.update(data)
        self.upto += len(data)

    def hexdigest(self) -> str:
        return self.h.hexdigest()


def _read_marker(folder: Path) -> dict:
    try:
        data = _read_json(Path(folder) / MARKER_NAME)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_marker(folder: Path, data: dict) -> None:
    target = Path(folder) / MARKER_NAME
    tmp = target.with_name(MARKER_NAME + ".new")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, target)


_git_blob_sha1 = git_blob_sha1
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _blob_sha1_of(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _partial_name(rf: RemoteFile) -> str:
    if rf.sha256:  # content-addressed: safe to resume even if the revision moved on
        return f"{rf.sha256}.part"
    key = hashlib.sha256(f"{rf.path}\n{rf.blob_id}\n{rf.size}".encode()).hexdigest()[:40]
    return f"{key}.part"


def _content_range_start(value: str | None) -> int | None:
    m = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)", value or "")
    return int(m.group(1)) if m else None


def _etag(value: str | None) -> str:
    """The bare hash in an ETag header: W/"abc" and "abc" -> abc."""
    value = (value or "").strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"').lower()


def _write_failed(dest: Path, exc: OSError) -> DownloadError:
    if exc.errno == errno.ENOSPC:
        sentence = (
            f"The disk holding {dest} is full. The part already downloaded is kept: free some space, "
            f"then run {DOWNLOAD_COMMAND} to resume."
        )
    else:
        sentence = f"Sightline could not write the model into {dest}: {exc.strerror or exc}."
    return DownloadError(sentence, detail=repr(exc))


def _mismatch_error(rf: RemoteFile, detail: str) -> DownloadError:
    return DownloadError(
        f"The downloaded file {rf.path} did not match the model server's checksum. "
        f"Run {DOWNLOAD_COMMAND} to try again.",
        detail=detail,
    )


class _Download:
    def __init__(
        self,
        dest: Path,
        files: list[RemoteFile],
        *,
        repo_id: str,
        revision: str,
        sha: str,
        endpoint: str,
        progress: Callable[[DownloadProgress], None] | None,
        cancel: CancelToken | None,
        retries: int,
        revision_name: str | None = None,
    ) -> None:
        self.dest = dest
        self.partial_dir = dest / PARTIAL_DIR_NAME
        self.files = files
        self.repo_id = repo_id
        self.revision = revision
        #: the named revision (refs/pr/70) recorded in the marker; `revision` may be its pinned commit
        self.revision_name = revision_name or revision
        self.sha = sha
        self.endpoint = endpoint
        self.progress = progress
        self.cancel = cancel
        self.retries = max(0, retries)
        self.bytes_total = sum(f.size for f in files)
        self.completed_bytes = 0
        self.files_done = 0
        self.offsets: dict[str, int] = {}
        self.resumed_bytes = 0
        self.fetched_bytes = 0
        #: small files already fetched (and checked) into memory before the selection was known
        self.prefetched: dict[str, bytes] = {}
        #: the ETag each resolve answer carried (the git blob id of a small file, sha256 of LFS)
        self.etags: dict[str, str] = {}
        self.opener = urllib.request.build_opener()
        self.token = self._token()
        self.marker = _read_marker(dest)

    def _token(self) -> str:
        try:
            return _import_hub().get_token() or ""
        except Exception:  # no token store: anonymous downloads are fine for a public model
            return ""

    def select(self, files: list[RemoteFile]) -> None:
        self.files = files
        self.bytes_total = sum(f.size for f in files)

    # -- bookkeeping --------------------------------------------------------------------------

    @property
    def bytes_done(self) -> int:
        return self.completed_bytes + sum(self.offsets.values())

    def report(self, rf: RemoteFile, file_done: int, phase: str = "downloading") -> None:
        if self.progress is not None:
            self.progress(
                DownloadProgress(
                    bytes_done=self.bytes_done,
                    bytes_total=self.bytes_total,
                    file=rf.path,
                    file_bytes_done=file_done,
                    file_bytes_total=rf.size,
                    files_done=self.files_done,
                    files_total=len(self.files),
                    resumed_bytes=self.resumed_bytes,
                    phase=phase,
                )
            )

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.cancelled:
            raise Cancelled(_PAUSED_SENTENCE)

    def record(self, rf: RemoteFile) -> None:
        """Note a file as checked against the server's hash, with the version of it on disk."""
        st = (self.dest / rf.path).stat()
        entry = {"size": rf.size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "checked": True}
        if rf.sha256:
            entry["sha256"] = rf.sha256
        blob_id = self.expected_blob_id(rf)
        if blob_id:
            entry["oid"] = blob_id
        files = self.marker.setdefault("files", {})
        previous = files.get(rf.path)
        if blob_id and isinstance(previous, dict) and previous.get("shape_ok") == blob_id:
            entry["shape_ok"] = blob_id  # the same content passed the structure checks before
        files[rf.path] = entry
        damaged = self.marker.get("damaged")
        if isinstance(damaged, dict):
            damaged.pop(rf.path, None)
        self.save_marker()

    def save_marker(self, complete: bool = False) -> None:
        self.marker.update(
            {
                "repo_id": self.repo_id,
                "revision": self.revision_name,
                "commit": self.sha,
                "total_bytes": self.bytes_total,
                "file_count": len(self.files),
                "complete": complete,
            }
        )
        if complete:
            self.marker["completed_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        else:
            self.marker.pop("completed_at", None)
        _write_marker(self.dest, self.marker)

    def expected_blob_id(self, rf: RemoteFile) -> str:
        """The git blob id a small file must hash to: from the listing, else the resolve ETag."""
        if rf.sha256:
            return rf.blob_id
        if _HEX40.fullmatch(rf.blob_id):
            return rf.blob_id
        etag = self.etags.get(rf.path, "")
        return etag if _HEX40.fullmatch(etag) else ""

    def content_ok(self, rf: RemoteFile, path: Path, hasher: _Hash | None = None) -> bool:
        """Does the file hold what the server listed? sha256 for LFS files, git blob id for the rest."""
        if rf.sha256:
            if hasher is None:
                hasher = _Hash()
                self.hash_file(path, rf, hasher, rf.size)
            return hasher.hexdigest() == rf.sha256
        blob_id = self.expected_blob_id(rf)
        return not blob_id or git_blob_sha1(path) == blob_id

    # -- what is already here -----------------------------------------------------------------

    def hash_file(self, path: Path, rf: RemoteFile, hasher: _Hash, upto: int) -> None:
        """Feed bytes [hasher.upto, upto) of `path` into `hasher`, cancel-aware."""
        with open(path, "rb") as f:
            f.seek(hasher.upto)
            while hasher.upto < upto:
                self.check_cancel()
                block = f.read(min(8 << 20, upto - hasher.upto))
                if not block:
                    break
                hasher.update(block)
                self.report(rf, hasher.upto, phase="checking")

    def trusted(self, rf: RemoteFile) -> bool:
        """A weight file this download checked earlier and that has not changed since (not even
        its ctime) and that no deep verify found damaged: not worth hashing gigabytes again."""
        entry = self.marker.get("files", {}).get(rf.path)
        damaged = self.marker.get("damaged")
        return (
            bool(rf.sha256)
            and isinstance(entry, dict)
            and entry.get("checked") is True
            and entry.get("sha256") == rf.sha256
            and same_version(entry, self.dest / rf.path)
            and not (isinstance(damaged, dict) and rf.path in damaged)
        )

    def already_complete(self, rf: RemoteFile) -> bool:
        final = self.dest / rf.path
        try:
            st = final.stat()
        except OSError:
            return False
        if not final.is_file() or st.st_size != rf.size:
            return False
        if self.trusted(rf):
            return not rf.path.endswith(".safetensors") or check_safetensors_file(final) is None
        # everything else is hashed: small files every time (cheap), weights once after a change
        ok = self.content_ok(rf, final)
        if ok:
            self.record(rf)
        else:
            log.warning("%s does not match the server's checksum: fetching it again", rf.path)
        return ok

    def partial_size(self, rf: RemoteFile) -> int:
        try:
            return (self.partial_dir / _partial_name(rf)).stat().st_size
        except OSError:
            return 0

    def bytes_needed(self) -> int:
        """Cheap estimate of the bytes still to fetch (no hashing)."""
        needed = 0
        for rf in self.files:
            final = self.dest / rf.path
            if rf.path in self.prefetched or (final.is_file() and final.stat().st_size == rf.size):
                continue
            needed += max(0, rf.size - min(self.partial_size(rf), rf.size))
        return needed

    # -- fetching -----------------------------------------------------------------------------

    def resolve_url(self, rf: RemoteFile) -> str:
        return f"{self.endpoint}/{self.repo_id}/resolve/{self.sha}/{quote(rf.path, safe='/')}"

    def open_resolve(self, rf: RemoteFile, offset: int, on_416: Callable[[], None]):
        req = urllib.request.Request(
            self.resolve_url(rf), headers={"User-Agent": "Sightline", "Accept-Encoding": "identity"}
        )
        if offset:
            req.add_header("Range", f"bytes={offset}-")
        if self.token:
            # unredirected: the token goes to the hub, never to the storage host it redirects to
            req.add_unredirected_header("Authorization", f"Bearer {self.token}")
        try:
            resp = self.opener.open(req, timeout=NETWORK_TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
            if status == 416:  # the server disagrees about what we hold: start this file again
                on_416()
                raise _Transient("HTTP 416 for a resumed range") from None
            if status in (408, 429) or status >= 500:
                raise _Transient(f"HTTP {status}") from None
            if status == 404:
                raise DownloadError(
                    f"The file {rf.path} was not found on the model server.", detail=self.resolve_url(rf)
                ) from None
            raise DownloadError(
                f"The model server refused the file {rf.path} with error {status}.",
                detail=self.resolve_url(rf),
            ) from None
        except (OSError, http.client.HTTPException) as exc:  # URLError, refused, reset, timeout
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        etag = _etag(resp.headers.get("X-Linked-Etag") or resp.headers.get("ETag"))
        if etag:
            self.etags[rf.path] = etag
        return resp

    def fetch_range(self, rf: RemoteFile, part: Path, offset: int, hasher: _Hash) -> None:
        def restart() -> None:
            part.unlink(missing_ok=True)
            hasher.reset()

        resp = self.open_resolve(rf, offset, restart)
        with resp:
            if resp.status == 206:
                start = _content_range_start(resp.headers.get("Content-Range"))
                if start != offset:
                    restart()
                    self.offsets[rf.path] = 0
                    raise _Transient(f"server resumed at {start}, not {offset}")
            elif resp.status == 200:
                if offset:  # the server ignored the Range header: start this file again
                    restart()
                    offset = 0
                    self.offsets[rf.path] = 0
            else:
                raise _Transient(f"unexpected HTTP {resp.status}")

            progressed = False
            try:
                f = open(part, "ab")  # noqa: SIM115 - closed by the with below; open errors differ
            except OSError as exc:
                raise _write_failed(self.dest, exc) from exc
            with f:
                while offset < rf.size:
                    if self.cancel is not None and self.cancel.cancelled:
                        raise Cancelled(_PAUSED_SENTENCE)
                    try:
                        chunk = resp.read(min(CHUNK_BYTES, rf.size - offset))
                    except (OSError, http.client.HTTPException) as exc:
                        raise _Transient(f"{type(exc).__name__}: {exc}", progressed=progressed) from None
                    if not chunk:
                        raise _Transient("the connection closed early", progressed=progressed)
                    try:
                        f.write(chunk)
                    except OSError as exc:
                        raise _write_failed(self.dest, exc) from exc
                    hasher.update(chunk)
                    offset += len(chunk)
                    self.fetched_bytes += len(chunk)
                    self.offsets[rf.path] = offset
                    progressed = True
                    self.report(rf, offset)
                try:
                    f.flush()
                    os.fsync(f.fileno())
                except OSError as exc:
                    raise _write_failed(self.dest, exc) from exc

    def retry_wait(self, rf: RemoteFile, exc: _Transient, failures: int) -> None:
        log.info("download of %s interrupted (%s), failure %d", rf.path, exc, failures)
        if failures > self.retries:
            raise DownloadError(
                "The download was interrupted: the connection to the model server was lost. "
                f"What was downloaded is kept; run {DOWNLOAD_COMMAND} to resume.",
                detail=f"{rf.path}: {exc}",
            ) from None
        wait = RETRY_BASE_S * (2 ** (failures - 1))
        if self.cancel is not None and self.cancel.wait(min(wait, 30.0)):
            raise Cancelled(_PAUSED_SENTENCE) from None
        if self.cancel is None:
            time.sleep(min(wait, 30.0))

    def download_file(self, rf: RemoteFile) -> None:
        part = self.partial_dir / _partial_name(rf)
        final = self.dest / rf.path
        data = self.prefetched.pop(rf.path, None)
        if data is not None:  # fetched and checked before the shards were chosen
            try:
                with open(part, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                raise _write_failed(self.dest, exc) from exc
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, final)
            return
        hasher = _Hash()
        failures = 0
        while True:
            self.check_cancel()
            offset = part.stat().st_size if part.exists() else 0
            if offset > rf.size or offset < hasher.upto:
                part.unlink(missing_ok=True)
                hasher.reset()
                offset = 0
            self.offsets[rf.path] = offset
            if rf.sha256 and hasher.upto < offset:
                self.hash_file(part, rf, hasher, offset)
            if offset < rf.size:
                try:
                    self.fetch_range(rf, part, offset, hasher)
                except _Transient as exc:
                    failures = 1 if exc.progressed else failures + 1
                    self.retry_wait(rf, exc, failures)
                    continue
            size = part.stat().st_size
            if size != rf.size or not self.content_ok(rf, part, hasher if rf.sha256 else None):
                # corrupted on the way (or a server that changed the file): never installed
                part.unlink(missing_ok=True)
                hasher.reset()
                self.offsets[rf.path] = 0
                failures += 1
                log.warning("download of %s did not match its checksum or size", rf.path)
                if failures > self.retries:
                    raise _mismatch_error(rf, f"size {size}, expected {rf.size}")
                continue
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, final)
            return

    def peek(self, rf: RemoteFile) -> bytes:
        """The content of a small file before anything is written: the copy on disk when it
        matches the server's checksum, else fetched into memory (checked, retried) and kept
        for run() to install."""
        final = self.dest / rf.path
        try:
            if final.is_file() and final.stat().st_size == rf.size and self.content_ok(rf, final):
                return final.read_bytes()
        except OSError:
            pass
        if rf.size > SMALL_FILE_BYTES:
            raise DownloadError(
                f"The model server lists {rf.path} at {human_size(rf.size)}, far larger than such a file "
                "can be, so Sightline did not fetch it.",
                detail=f"{self.repo_id}@{self.sha}",
            )
        failures = 0
        while True:
            self.check_cancel()
            try:
                resp = self.open_resolve(rf, 0, lambda: None)
                with resp:
                    if resp.status != 200:
                        raise _Transient(f"unexpected HTTP {resp.status}")
                    try:
                        data = resp.read(rf.size + 1)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _Transient(f"{type(exc).__name__}: {exc}") from None
            except _Transient as exc:
                failures += 1
                self.retry_wait(rf, exc, failures)
                continue
            expected = self.expected_blob_id(rf)
            if len(data) == rf.size and (
                (rf.sha256 and hashlib.sha256(data).hexdigest() == rf.sha256)
                or (not rf.sha256 and (not expected or _blob_sha1_of(data) == expected))
            ):
                self.fetched_bytes += len(data)
                self.prefetched[rf.path] = data
                return data
            failures += 1
            log.warning("download of %s did not match its checksum or size", rf.path)
            if failures > self.retries:
                raise _mismatch_error(rf, f"size {len(data)}, expected {rf.size}")

    def check_config(self, data: bytes) -> None:
        """Refuse a revision whose config is not the native format before fetching gigabytes."""
        try:
            config = json.loads(data.decode("utf-8-sig"))
            model_type = str(config.get("model_type", "")) if isinstance(config, dict) else ""
        except (ValueError, UnicodeDecodeError, RecursionError):
            model_type = ""
        if model_type != NATIVE_MODEL_TYPE:
            self.prefetched.pop("config.json", None)
            what = (
                "the remote-code version of Phi-4-multimodal"
                if model_type in REMOTE_CODE_MODEL_TYPES
                else f"a model of the kind {model_type!r}"
                if model_type
                else "no model configuration Sightline can read"
            )
            raise DownloadError(
                f"The model version {self.revision_name} holds {what}, which Sightline does not run, "
                f"so nothing more was downloaded. Run {DOWNLOAD_COMMAND} without a revision to fetch "
                "the native-format version.",
                detail=f"model_type {model_type!r}",
            )

    def select_weights(self, index_rf: RemoteFile | None) -> list[str]:
        """The weight shards to fetch: exactly those the index names (other shards in the
        revision, such as the remote-code format's, are never fetched)."""
        listed = {rf.path for rf in self.files}
        if index_rf is None:
            if "model.safetensors" in listed:
                return ["model.safetensors"]
            raise DownloadError(
                f"The model version {self.revision_name} on the server has no weights index "
                f"({INDEX_NAME}), so Sightline cannot tell which weight files to fetch.",
                detail=f"{self.repo_id}@{self.sha}",
            )
        data = self.peek(index_rf)
        try:
            index = json.loads(data.decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            index = None
        weight_map, _total, problem = parse_index(index)
        if problem is not None or weight_map is None:
            self.prefetched.pop(INDEX_NAME, None)
            raise DownloadError(
                f"The model's weights index on the server is damaged: it {problem or 'is not valid JSON'}. "
                "Downloading again will not help; try again later.",
                detail=f"{self.repo_id}@{self.sha}",
            )
        shards = sorted(set(weight_map.values()))
        absent = [s for s in shards if s not in listed]
        if absent:
            self.prefetched.pop(INDEX_NAME, None)
            raise DownloadError(
                f"The model's weights index on the server names {len(absent)} weight files the server "
                f"does not have, such as {absent[0]}. Downloading again will not help; try again later.",
                detail=f"{self.repo_id}@{self.sha}",
            )
        return shards

    def note_shapes_checked(self, report: FolderReport) -> None:
        """Record which small files' content passed the structure checks, so later checks of
        the same bytes need only hash them."""
        damaged = set(report.damaged_files)
        changed = False
        for rf in self.files:
            entry = self.marker.get("files", {}).get(rf.path)
            if rf.path in JSON_SHAPES and rf.path not in damaged and isinstance(entry, dict):
                oid = entry.get("oid")
                if oid and not rf.sha256 and entry.get("shape_ok") != oid:
                    entry["shape_ok"] = oid
                    changed = True
        if changed:
            _write_marker(self.dest, self.marker)

    def run(self) -> None:
        # config.json first, then what was already fetched to choose the shards (the index),
        # then the small files, the weights last
        order = sorted(
            self.files, key=lambda f: (f.path != "config.json", f.path not in self.prefetched, f.size, f.path)
        )
        self.resumed_bytes = sum(min(self.partial_size(rf), rf.size) for rf in order)
        self.save_marker()
        for rf in order:
            self.check_cancel()
            if rf.path not in self.prefetched and self.already_complete(rf):
                self.offsets.pop(rf.path, None)
            else:
                self.download_file(rf)
                self.offsets.pop(rf.path, None)
                self.record(rf)
            self.completed_bytes += rf.size
            self.files_done += 1
            self.report(rf, rf.size)
        keep = {_partial_name(rf) for rf in self.files}
        for stale in self.partial_dir.glob("*.part"):
            if stale.name not in keep:
                stale.unlink(missing_ok=True)
        self.save_marker(complete=True)


def _is_root_weight(path: str) -> bool:
    return "/" not in path and path.endswith(".safetensors")


def _pinned_commit(dest: Path, repo_id: str, revision: str) -> str:
    """The commit an earlier download of `revision` into `dest` resolved to, if any."""
    marker = _read_marker(dest)
    commit = str(marker.get("commit") or "")
    if marker.get("repo_id") == repo_id and marker.get("revision") == revision and _HEX40.fullmatch(commit):
        return commit
    return ""


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
        pinned = manifest.commit or _pinned_commit(dest, repo_id, manifest.revision)
    endpoint = _hub_endpoint()
    try:
        (dest / PARTIAL_DIR_NAME).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_failed(dest, exc) from exc
    lock_path = dest / PARTIAL_DIR_NAME / _LOCK_NAME
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
        job = _Download(
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
            raise _write_failed(dest, exc) from exc
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
            raise _write_failed(dest, exc) from exc
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
        _remove_empty_partial_dir(dest)
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


def _remove_empty_partial_dir(dest: Path) -> None:
    partial = dest / PARTIAL_DIR_NAME
    try:
        leftovers = [p for p in partial.iterdir() if p.name != _LOCK_NAME]
        if not leftovers:
            (partial / _LOCK_NAME).unlink(missing_ok=True)
            partial.rmdir()
    except OSError:
        pass  # another download may have just taken the lock; leave the folder to it


# --------------------------------------------------------------------------------------------
# verifying


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
        folder, ModelState.CORRUPT, False, _corrupt_sentence(damaged), tuple(problems), checked, deep
    )


def _verify_checksums(
    folder: Path,
    progress: Callable[[DownloadProgress], None] | None,
    cancel: CancelToken | None,
    *,
    skip: set[str],
) -> tuple[list[FileProblem], set[str]]:
    """Hash every recorded file against the server's checksum: (problems, paths that matched)."""
    files = _read_marker(folder).get("files", {})
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
            with open(path, "rb") as f:
                for block in iter(lambda f=f: f.read(8 << 20), b""):
                    if cancel is not None and cancel.cancelled:
                        raise Cancelled()
                    h.update(block)
                    done += len(block)
                    if progress is not None:
                        progress(
                            DownloadProgress(
                                done,
                                total,
                                rel,
                                0,
                                int(entry.get("size", 0) or 0),
                                n,
                                len(entries),
                                phase="checking",
                            )
                        )
            ok = h.hexdigest() == sha256
        elif _HEX40.fullmatch(oid):
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

    marker = _read_marker(folder)
    if not marker:
        return
    recorded = marker.get("damaged") if isinstance(marker.get("damaged"), dict) else {}
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
        lock = filelock.FileLock(str(partial / _LOCK_NAME), timeout=0)
        with lock:
            marker = _read_marker(folder)
            marker["damaged"] = new
            _write_marker(folder, marker)
    except (OSError, filelock.Timeout):
        log.info("could not record the damaged files in %s (a download is running?)", folder)
    finally:
        _remove_empty_partial_dir(folder)


# --------------------------------------------------------------------------------------------
# status


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
    marker = _read_marker(folder)
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
        or _pinned_commit(folder, str(marker.get("repo_id") or ""), manifest.revision),
        "problems": [{"path": p.path, "problem": p.problem} for p in report.problems],
        "license": manifest.licence,
    }
