"""Upgrades of older settings files, one function per version step.

A migration takes the raw JSON object of version N and returns the object of version N + 1. It
never raises on odd values: it moves what it understands and leaves the rest for the store's
per-field validation, which replaces anything unusable with the default.

Version 0 is the unversioned format of the first previews: no "version" key, "speech_rate" and
"language" under older names, "speak" as a yes/no switch, and volume in percent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Raw = dict[str, Any]


def _v0_to_v1(data: Raw) -> Raw:
    out = dict(data)
    renames = {"speech_rate": "rate", "language": "response_language", "model_path": "model_dir"}
    for old, new in renames.items():
        if old in out:
            value = out.pop(old)
            out.setdefault(new, value)
    if "speak" in out:
        speak = out.pop("speak")
        if isinstance(speak, bool):
            out.setdefault("output_mode", "voice" if speak else "text")
    volume = out.get("volume")
    if isinstance(volume, int | float) and not isinstance(volume, bool) and volume > 1:
        out["volume"] = min(float(volume), 100.0) / 100.0
    return out


# MIGRATIONS[n] turns version n into version n + 1.
MIGRATIONS: dict[int, Callable[[Raw], Raw]] = {0: _v0_to_v1}


def file_version(data: Raw) -> int:
    """The version a settings object says it has; 0 when it says nothing usable."""
    version = data.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        return 0
    return version


def migrate(data: Raw, target: int) -> Raw:
    """Bring `data` up to version `target`. A newer file is returned as it is (the store ignores its
    unknown keys when reading and keeps them when saving)."""
    version = file_version(data)
    if version > target:
        log.warning(
            "settings file is version %d, newer than %d; reading what this version knows", version, target
        )
        return dict(data)
    while version < target:
        step = MIGRATIONS.get(version)
        if step is None:
            log.warning("no migration from settings version %d; reading what still fits", version)
            break
        data = step(data)
        log.info("settings migrated from version %d to %d", version, version + 1)
        version += 1
    data = dict(data)
    data["version"] = target
    return data
