"""What a model folder's files must look like: safetensors headers, the JSON the loader reads, hashes.

One set of checks serves `sightline model status` (inspect_model_folder), `sightline model verify`
and the download, so the three can never disagree about a folder. Everything here is cheap: the
weights are read only up to their few-KiB headers; the small files (configs, tokenizer) are parsed
and hashed, and the results are cached per file version (size, mtime, ctime, inode), so asking
twice costs nothing. Hashing the weights themselves is `verify --deep`'s job (model_store).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

NATIVE_MODEL_TYPE = "phi4_multimodal"
ADAPTERS = ("vision-lora", "speech-lora")
INDEX_NAME = "model.safetensors.index.json"
#: files up to this size are hashed by the cheap checks; larger ones only by verify --deep
SMALL_FILE_BYTES = 64 * 1024 * 1024
MISSING = "is missing"
LEFTOVER = "is left over from an interrupted download"
CHECKSUM_MISMATCH = "does not match its checksum"
#: config.json keys the native loader needs to build the right model (whole numbers above 0)
CONFIG_REQUIRED_SIZES = ("hidden_size", "num_hidden_layers", "vocab_size")
CONFIG_OPTIONAL_SIZES = ("num_attention_heads", "num_key_value_heads", "intermediate_size")
CONFIG_OPTIONAL_OBJECTS = ("vision_config", "audio_config")


@dataclass(frozen=True)
class FileProblem:
    path: str  # relative to the model folder
    problem: str  # a few words that follow the file name: "is cut off: 10 bytes of 20"

    def __str__(self) -> str:
        return f"{self.path} {self.problem}"


# --------------------------------------------------------------------------------------------
# safetensors headers (cheap: 8 bytes + the JSON header, never the tensor data)

_MAX_HEADER_BYTES = 100 * 1024 * 1024


class SafetensorsHeaderError(ValueError):
    pass


@dataclass(frozen=True)
class SafetensorsHeader:
    header_length: int
    tensors: dict[str, tuple[int, int]]  # name -> (begin, end) offsets into the data section
    data_bytes: int  # the largest end offset: how many data bytes the file must hold

    @property
    def expected_file_size(self) -> int:
        return 8 + self.header_length + self.data_bytes


def read_safetensors_header(path: Path) -> SafetensorsHeader:
    """Parse a safetensors header: 8-byte little-endian length, then that many bytes of JSON."""
    try:
        with open(path, "rb") as f:
            raw_len = f.read(8)
            if len(raw_len) < 8:
                raise SafetensorsHeaderError("shorter than the 8-byte header length")
            (length,) = struct.unpack("<Q", raw_len)
            if length == 0 or length > _MAX_HEADER_BYTES:
                raise SafetensorsHeaderError(f"implausible header length {length}")
            raw = f.read(length)
    except OSError as exc:
        raise SafetensorsHeaderError(f"cannot be read ({exc.strerror or exc})") from exc
    if len(raw) < length:
        raise SafetensorsHeaderError("cut off inside its header")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SafetensorsHeaderError("header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise SafetensorsHeaderError("header is not a JSON object")
    tensors: dict[str, tuple[int, int]] = {}
    data_bytes = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = entry["data_offsets"]
            begin, end = int(begin), int(end)
        except (TypeError, KeyError, ValueError) as exc:
            raise SafetensorsHeaderError(f"tensor {name} has no valid data_offsets") from exc
        if begin < 0 or end < begin:
            raise SafetensorsHeaderError(f"tensor {name} has invalid data_offsets")
        tensors[name] = (begin, end)
        data_bytes = max(data_bytes, end)
    return SafetensorsHeader(header_length=length, tensors=tensors, data_bytes=data_bytes)


def check_safetensors_file(path: Path) -> str | None:
    """None if the header parses and the file size matches it, else the problem in a few words."""
    try:
        size = path.stat().st_size
    except OSError:
        return MISSING
    if size == 0:
        return "is empty"
    try:
        header = read_safetensors_header(path)
    except SafetensorsHeaderError as exc:
        return str(exc)
    if size < header.expected_file_size:
        return f"is cut off: {size} bytes of {header.expected_file_size}"
    if size > header.expected_file_size:
        return f"has {size - header.expected_file_size} unexpected bytes at the end"
    return None


# --------------------------------------------------------------------------------------------
# a per-file-version cache: a file that changed in any way (even with its mtime put back) has a
# new ctime, so it is read again


_cache: dict[tuple, object] = {}
_cache_lock = threading.Lock()
_CACHE_MAX = 512


def file_version(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _cached(kind: str, path: Path, compute: Callable[[], object]) -> object:
    version = file_version(path)
    if version is None:
        return compute()
    key = (kind, os.fspath(path), version)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    value = compute()
    with _cache_lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = value
    return value


def git_blob_sha1(path: Path) -> str:
    """The git blob id of a file: sha1(b"blob <size>\\0" + content), the hub's ETag of a small file."""
    h = hashlib.sha1()
    h.update(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cached_blob_sha1(path: Path) -> str:
    return str(_cached("blob-sha1", path, lambda: git_blob_sha1(path)))


# --------------------------------------------------------------------------------------------
# the JSON files the loader reads: each checker returns None or the problem in a few words


def _load_json(path: Path) -> tuple[object, str | None]:
    """(the parsed file, None), or (None, why it cannot be read or parsed)."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8-sig")), None
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, "is not valid JSON"


def _parsed(path: Path, shape: Callable[[object], str | None]) -> str | None:
    data, problem = _load_json(path)
    return problem or shape(data)


def _shape(problem: str, fits: Callable[[dict], bool] = lambda data: True) -> Callable[[object], str | None]:
    """A checker: None for a JSON object that `fits`, else `problem`."""
    return lambda data: None if isinstance(data, dict) and fits(data) else problem


def _object(what: str) -> Callable[[object], str | None]:
    return _shape(f"is not {what} (a JSON object)")


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def config_summary(path: Path) -> tuple[str | None, str]:
    """(problem or None, model_type) of a config.json; cached per file version."""

    def compute() -> tuple[str | None, str]:
        data, problem = _load_json(path)
        if problem:
            return problem, ""
        if not isinstance(data, dict):
            return "is not a model configuration (a JSON object)", ""
        model_type = data.get("model_type")
        if not isinstance(model_type, str) or not model_type:
            return "has no model_type", ""
        if model_type != NATIVE_MODEL_TYPE:
            return None, model_type  # another format: the caller says so, no further checks
        for key in CONFIG_REQUIRED_SIZES:
            if key not in data:
                return f"has no {key}", model_type
        for key in CONFIG_REQUIRED_SIZES + CONFIG_OPTIONAL_SIZES:
            if key in data and not _positive_int(data[key]):
                return f"gives {key} as {json.dumps(data[key])[:40]}, not a whole number above 0", model_type
        for key in CONFIG_OPTIONAL_OBJECTS:
            if key in data and data[key] is not None and not isinstance(data[key], dict):
                return f"has a {key} that is not a JSON object", model_type
        return None, model_type

    result = _cached("config", path, compute)
    assert isinstance(result, tuple)
    return result


#: the JSON files the native loader reads, and the shape each must have (when present)
JSON_SHAPES: dict[str, Callable[[object], str | None]] = {
    "tokenizer.json": _shape(
        "is not a tokenizer (it has no model section)", lambda data: isinstance(data.get("model"), dict)
    ),
    "tokenizer_config.json": _object("a tokenizer configuration"),
    "preprocessor_config.json": _object("a processor configuration"),
    "processor_config.json": _object("a processor configuration"),
    "generation_config.json": _object("a generation configuration"),
    "special_tokens_map.json": _object("a special-token map"),
    "added_tokens.json": _object("a token list"),
    "vocab.json": _object("a vocabulary"),
    "chat_template.json": _shape(
        "is not a chat template (no chat_template text)",
        lambda data: isinstance(data.get("chat_template"), str),
    ),
    **{
        f"{adapter}/adapter_config.json": _shape(
            "is not an adapter configuration", lambda data: "r" in data or "peft_type" in data
        )
        for adapter in ADAPTERS
    },
}


def json_problem(folder: Path, rel: str) -> str | None:
    """The structural problem of one of the loader's JSON files, or None (cached)."""
    path = folder / rel
    shape = JSON_SHAPES.get(rel)
    if shape is None:
        return None
    return _cached(f"json:{rel}", path, lambda: _parsed(path, shape))  # type: ignore[return-value]


def text_problem(path: Path) -> str | None:
    """chat_template.jinja and other text files: must be UTF-8."""

    def compute() -> str | None:
        try:
            path.read_bytes().decode("utf-8")
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc})"
        except UnicodeDecodeError:
            return "is not UTF-8 text"
        return None

    return _cached("text", path, compute)  # type: ignore[return-value]


def read_index(path: Path) -> tuple[dict[str, str] | None, int | None, str | None]:
    """(weight_map, total_size or None, problem) of a model.safetensors.index.json (cached)."""

    def compute() -> tuple[dict[str, str] | None, int | None, str | None]:
        data, problem = _load_json(path)
        return (None, None, problem) if problem else parse_index(data)

    return _cached("index", path, compute)  # type: ignore[return-value]


def parse_index(data: object) -> tuple[dict[str, str] | None, int | None, str | None]:
    """Check an index's shape: a weight_map from tensor names to shard files beside it."""
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        return None, None, "has no weight map (tensor names to weight files)"
    for name, shard in weight_map.items():
        if (
            not isinstance(shard, str)
            or not shard.endswith(".safetensors")
            or "/" in shard
            or "\\" in shard
            or shard.startswith(".")
        ):
            return (
                None,
                None,
                f"maps {str(name)[:60]} to {json.dumps(shard)[:60]}, which is not a weight file",
            )
    metadata = data.get("metadata") if isinstance(data, dict) else None
    total = metadata.get("total_size") if isinstance(metadata, dict) else None
    return dict(weight_map), (total if _positive_int(total) else None), None


def index_problems(
    weight_map: dict[str, str], total: int | None, headers: dict[str, SafetensorsHeader]
) -> str | None:
    """Does the index agree with the shards' headers? (only shards whose headers were readable)"""
    wrong = [
        name for name, shard in weight_map.items() if shard in headers and name not in headers[shard].tensors
    ]
    if wrong:
        return f"names {len(wrong)} tensors its shards lack, such as {wrong[0]}"
    unlisted = [name for shard, h in headers.items() for name in h.tensors if weight_map.get(name) != shard]
    if unlisted:
        return f"does not list {len(unlisted)} stored tensors, such as {unlisted[0]}"
    shards = set(weight_map.values())
    if total is not None and shards and shards <= set(headers):
        stored = sum(end - begin for shard in shards for begin, end in headers[shard].tensors.values())
        if stored != total:
            return f"gives a total size of {total} bytes but the shards hold {stored}"
    return None


def recorded_problem(path: Path, entry: dict) -> str | None:
    """Compare a file with what the download recorded from the server: size, then git blob id.

    Only small files are hashed here (cheap and cached); the weights' sha256 is verify --deep's.
    """
    version = file_version(path)
    if version is None:
        return None  # missing files are reported elsewhere
    size = entry.get("size")
    if (_positive_int(size) or size == 0) and version[0] != size:
        return f"has {version[0]} bytes, not the {size} the model server gave"
    oid = str(entry.get("oid") or "")
    if entry.get("sha256") or len(oid) != 40 or version[0] > SMALL_FILE_BYTES:
        return None
    return CHECKSUM_MISMATCH if cached_blob_sha1(path) != oid else None


def same_version(entry: dict, path: Path) -> bool:
    """True when `path` is the very file version described by `entry` (size, mtime and ctime)."""
    version = file_version(path)
    return (
        version is not None
        and entry.get("size") == version[0]
        and entry.get("mtime_ns") == version[1]
        and entry.get("ctime_ns") == version[2]
    )
