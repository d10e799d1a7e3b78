"""Logging to the user log dir. Screens, audio and answers are never logged unless diagnostics is on."""

from __future__ import annotations

import logging
import logging.handlers

from app import paths

_configured = False


def setup_logging(*, verbose: bool = False, to_stderr: bool = False) -> None:
    global _configured
    if _configured:
        return
    _configured = True
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    try:
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            paths.log_dir() / "sightline.log", maxBytes=2_000_000, backupCount=3, encoding="utf-8"
        )
    except OSError:  # a read-only home must not stop the app
        handler = logging.NullHandler()
    handler.setFormatter(fmt)
    root.addHandler(handler)
    if to_stderr or verbose:
        err = logging.StreamHandler()
        err.setLevel(logging.DEBUG if verbose else logging.WARNING)
        err.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(err)
    # Chatty libraries stay quiet unless asked.
    for name in ("httpx", "httpcore", "urllib3", "filelock", "PIL"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
