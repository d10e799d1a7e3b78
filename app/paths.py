"""Every folder Sightline writes to. SIGHTLINE_HOME puts them all under one root (tests, portable use)."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "sightline"


def _root() -> Path | None:
    home = os.environ.get("SIGHTLINE_HOME")
    return Path(home) if home else None


def _dir(kind: str) -> Path:
    root = _root()
    if root is not None:
        path = root / kind
    else:
        import platformdirs

        getter = {
            "config": platformdirs.user_config_dir,
            "cache": platformdirs.user_cache_dir,
            "logs": platformdirs.user_log_dir,
            "data": platformdirs.user_data_dir,
        }[kind]
        path = Path(getter(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    return _dir("config")


def cache_dir() -> Path:
    return _dir("cache")


def log_dir() -> Path:
    return _dir("logs")


def data_dir() -> Path:
    return _dir("data")


def models_dir() -> Path:
    """Where downloaded weights live: SIGHTLINE_MODELS_DIR, else <data>/models."""
    override = os.environ.get("SIGHTLINE_MODELS_DIR")
    path = Path(override) if override else data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def resources_dir() -> Path:
    return repo_root() / "resources"
