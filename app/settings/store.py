"""Load and save settings: one JSON file in the config dir, written atomically, versioned.

- Unknown keys are ignored when reading (and logged), and kept when saving: a file written by a
  newer Sightline keeps what this version does not understand. A value of the wrong type, outside
  its choices or out of range is replaced by that field's default (numbers out of range are brought
  inside it). One bad value never costs the user the rest of their settings.
- A file that cannot be read as a settings object (not JSON, not an object, nested too deep, far
  too large) is kept as settings.json.broken-<timestamp>, the defaults are used, and load_settings
  returns a notice sentence for the app to speak. A UTF-8 byte-order mark is accepted.
- Something other than a regular file in its place (a FIFO, a device, a folder) is never opened
  for reading in a way that could block: it is refused with a sentence and the defaults are used.
- Saving writes a temporary file in the same folder, flushes and fsyncs it, then os.replace()s it
  over the old one: the file on disk is always either the old settings or the new ones.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from app import paths
from app.core.errors import SightlineError
from app.settings.migrations import file_version, migrate
from app.settings.schema import SCHEMA_VERSION, Settings, field_type, validate

log = logging.getLogger(__name__)

FILE_NAME = "settings.json"
BROKEN_NOTICE = "Your settings file was damaged; Sightline saved a copy and started with default settings."
UNREADABLE_NOTICE = "Sightline could not read your settings file, so it started with default settings."
NOT_A_FILE_NOTICE = (
    "Your settings file is not a regular file, so Sightline ignored it and used default settings."
)

# A real settings file is a few kilobytes; anything far larger is damage, not settings.
MAX_BYTES = 1 << 20


class SettingsError(SightlineError):
    """Settings that could not be saved."""


class LoadResult(NamedTuple):
    settings: Settings
    notice: str | None  # a sentence to speak, or None when all went well


def settings_path() -> Path:
    return paths.config_dir() / FILE_NAME


# --- Conversion -----------------------------------------------------------------------------------


def to_dict(settings: Settings) -> dict[str, Any]:
    """The JSON object for a Settings (pairs become objects), with the schema version."""
    data: dict[str, Any] = {"version": SCHEMA_VERSION}
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        if field_type(f) is tuple:
            value = {k: v for k, v in value}
        data[f.name] = value
    return data


def from_dict(data: dict[str, Any]) -> tuple[Settings, list[str]]:
    """A Settings from a JSON object of the current version, and the problems met (for the log).
    The schema's model checks each value (see app.settings.schema.validate); here the file's own
    shapes are undone: command keys are stored as an object, entries that are not text dropped."""
    problems: list[str] = []
    known = {f.name: f for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key == "version":
            continue
        f = known.get(key)
        if f is None:
            problems.append(f"unknown key {key!r} ignored")
            continue
        if field_type(f) is tuple and isinstance(raw, dict):
            pairs = [(str(k), v) for k, v in raw.items() if isinstance(v, str)]
            if len(pairs) != len(raw):
                problems.append(f"{key}: entries that are not text were dropped")
            raw = pairs
        elif field_type(f) is tuple:
            problems.append(f"{key}: expected an object, got {type(raw).__name__}")
            continue
        values[key] = raw
    settings, invalid = validate(values)
    return settings, problems + invalid


# --- Files ----------------------------------------------------------------------------------------


def _back_up(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.broken-{stamp}")
    n = 1
    while backup.exists():
        backup = path.with_name(f"{path.name}.broken-{stamp}-{n}")
        n += 1
    os.replace(path, backup)
    return backup


class _NotAFile(OSError):
    """settings.json exists but is not a regular file."""


def _read_file(path: Path) -> bytes:
    """The file's bytes, at most MAX_BYTES + 1 of them. Raises FileNotFoundError, _NotAFile (a FIFO,
    device or folder: opening a FIFO for reading would wait forever for a writer) or OSError."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise _NotAFile(f"{path} is not a regular file")
    # O_NONBLOCK: should a FIFO be swapped in after the check, opening it still returns at once.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotAFile(f"{path} is not a regular file")
        parts: list[bytes] = []
        size = 0
        while size <= MAX_BYTES:
            block = os.read(fd, MAX_BYTES + 1 - size)
            if not block:
                break
            parts.append(block)
            size += len(block)
        return b"".join(parts)
    finally:
        os.close(fd)


def _parse(raw_bytes: bytes) -> dict[str, Any]:
    """The settings object in `raw_bytes`; ValueError (with the reason) for anything else."""
    if len(raw_bytes) > MAX_BYTES:
        raise ValueError(f"the file is larger than {MAX_BYTES} bytes")
    try:
        # utf-8-sig: a byte-order mark (some Windows editors write one) is not damage.
        data = json.loads(raw_bytes.decode("utf-8-sig"))
    except RecursionError:
        raise ValueError("the file is nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"the file is not UTF-8 text ({exc.reason})") from None
    if not isinstance(data, dict):
        raise ValueError(f"the top level is {type(data).__name__}, not an object")
    return data


def load_settings(path: Path | None = None) -> LoadResult:
    """Read the settings. Never raises for a bad file and never blocks on one: the worst case is
    defaults and a notice."""
    path = path or settings_path()
    try:
        raw_bytes = _read_file(path)
    except FileNotFoundError:
        return LoadResult(Settings(), None)
    except _NotAFile as exc:
        log.warning("settings: %s; using defaults", exc)
        return LoadResult(Settings(), NOT_A_FILE_NOTICE)
    except OSError as exc:
        log.warning("settings file %s cannot be read: %s", path, exc)
        return LoadResult(Settings(), UNREADABLE_NOTICE)
    try:
        data = _parse(raw_bytes)
    except ValueError as exc:
        try:
            backup = _back_up(path)
        except OSError as backup_exc:
            log.warning(
                "settings file %s is damaged (%s) and could not be backed up: %s", path, exc, backup_exc
            )
            return LoadResult(Settings(), UNREADABLE_NOTICE)
        log.warning("settings file %s is damaged (%s); kept as %s, using defaults", path, exc, backup.name)
        return LoadResult(Settings(), BROKEN_NOTICE)
    settings, problems = from_dict(migrate(data, SCHEMA_VERSION))
    for problem in problems:
        # A key a newer Sightline wrote is expected; a value that had to be replaced is worth a warning.
        level = logging.INFO if problem.startswith("unknown key") else logging.WARNING
        log.log(level, "settings: %s", problem)
    return LoadResult(settings, None)


def _kept_from_disk(path: Path) -> dict[str, Any]:
    """What the file on disk holds that this version does not know (keys a newer Sightline wrote),
    plus its version when that is newer than ours. Empty when there is no usable file."""
    try:
        data = migrate(_parse(_read_file(path)), SCHEMA_VERSION)
    except (OSError, ValueError):
        return {}
    known = {f.name for f in dataclasses.fields(Settings)} | {"version"}
    kept = {key: value for key, value in data.items() if key not in known}
    if file_version(data) > SCHEMA_VERSION:
        kept["version"] = file_version(data)
    return kept


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write the settings atomically. Raises SettingsError (with a sentence) if the disk refuses."""
    path = path or settings_path()
    data = to_dict(settings)
    data.update(_kept_from_disk(path))
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    except (RecursionError, ValueError, TypeError) as exc:
        log.warning("settings: keys this version does not know could not be kept: %s", exc)
        text = json.dumps(to_dict(settings), indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise SettingsError("Sightline could not save your settings.", detail=f"{path}: {exc}") from exc
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable where the platform allows it (not on Windows)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
