"""Every folder Sightline writes to. SIGHTLINE_HOME puts them all under one root (tests, portable use)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

APP_NAME = "sightline"
#: Folders only the user may enter: the logs name files, devices and errors of this user's work.
PRIVATE_KINDS = ("logs",)
PRIVATE_DIR_MODE = 0o700


def _root() -> Path | None:
    home = os.environ.get("SIGHTLINE_HOME")
    return Path(home) if home else None


def _dir(kind: str) -> Path:
    root = _root()
    if root is not None:
        path = root / kind
    else:
        import platformdirs

        getters: dict[str, Callable[..., str]] = {
            "config": platformdirs.user_config_dir,
            "logs": platformdirs.user_log_dir,
            "data": platformdirs.user_data_dir,
        }
        getter = getters[kind]
        path = Path(getter(APP_NAME, appauthor=False))
    if kind in PRIVATE_KINDS:
        path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
        make_private(path, PRIVATE_DIR_MODE)
    else:
        path.mkdir(parents=True, exist_ok=True)
    return path


def make_private(path: Path, mode: int) -> None:
    """Narrow `path`'s permissions to `mode` (a folder or file this user owns); never raises."""
    try:
        st = path.stat()
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            return  # not ours to change (a shared SIGHTLINE_HOME set up by an administrator)
        if st.st_mode & 0o777 != mode:
            path.chmod(mode)
    except OSError:
        pass


def expand_user_path(text: str, what: str = "folder") -> Path:
    """`text` as a Path with a leading ~ or ~user expanded; a sentence instead of RuntimeError.

    `what` names the thing for the sentence, e.g. "model folder".
    """
    from app.core.errors import UsageError

    raw = (text or "").strip()
    if not raw:
        raise UsageError(f"The {what} is empty. Give a path.")
    try:
        return Path(raw).expanduser()
    except RuntimeError:
        first = raw.replace("\\", "/").split("/", 1)[0]
        user = first[1:]
        if user:
            raise UsageError(
                f"The {what} {raw} starts with {first}, but there is no user called {user} on this computer.",
                detail=f"expanduser failed for {raw!r}",
            ) from None
        raise UsageError(
            f"The {what} {raw} starts with ~, but your home folder cannot be found.",
            detail=f"expanduser failed for {raw!r}",
        ) from None


def config_dir() -> Path:
    return _dir("config")


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
