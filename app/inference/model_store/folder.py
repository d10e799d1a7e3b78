"""Whether a folder holds a usable copy of Phi-4-multimodal, and the sentence a user hears about it.

`inspect_model_folder` is cheap (no hashing of the weights, no torch): it reads small JSON files
and the few-KiB safetensors headers, and tells READY / MISSING / INCOMPLETE / WRONG_FORMAT /
CORRUPT. The checks themselves live in app.inference.model_checks, so status, verify and the
download agree.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import paths
from app.core.errors import ModelFormatError, ModelIncompleteError, ModelNotFoundError
from app.inference.model_checks import (
    ADAPTERS,
    CHECKSUM_MISMATCH,
    INDEX_NAME,
    JSON_SHAPES,
    NATIVE_MODEL_TYPE,
    FileProblem,
    SafetensorsHeader,
    check_safetensors_file,
    config_summary,
    index_problems,
    json_problem,
    read_index,
    read_safetensors_header,
    recorded_problem,
    same_version,
    text_problem,
)
from app.inference.model_store.record import (
    HEX40,
    LOCK_NAME,
    MARKER_NAME,
    PARTIAL_DIR_NAME,
    read_marker,
)

if TYPE_CHECKING:
    from app.settings.schema import Settings

MODEL_FOLDER_NAME = "Phi-4-multimodal-instruct"
REMOTE_CODE_MODEL_TYPES = ("phi4mm",)
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


def _partial_leftovers(folder: Path) -> list[str]:
    leftovers: list[str] = []
    partial = folder / PARTIAL_DIR_NAME
    if partial.is_dir():
        leftovers += [
            str(p.relative_to(folder))
            for p in sorted(partial.rglob("*"))
            if p.is_file() and p.name != LOCK_NAME
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


def corrupt_sentence(damaged: list[FileProblem]) -> str:
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
        HEX40.fullmatch(oid) is not None
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
    marker = read_marker(folder)
    recorded = marker.get("files")
    files: dict = recorded if isinstance(recorded, dict) else {}
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
    common: dict[str, Any] = {
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
        return FolderReport(folder, ModelState.CORRUPT, corrupt_sentence(list(damaged)), **common)
    return FolderReport(
        folder,
        ModelState.READY,
        "The Phi-4-multimodal model is installed and complete.",
        **common,
    )
