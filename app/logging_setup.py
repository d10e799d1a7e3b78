"""Logging to the user log dir. Screens, recordings and the words of questions and answers are never
logged at the normal level (what was heard is logged only with --verbose).

The log folder is private to the user (0700) and every log file, rotated ones too, is 0600: the
log names files, devices and errors of the user's own work.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

from app import paths

LOG_FILE_MODE = 0o600

_configured = False


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files are created 0600 and narrowed to 0600 if they exist."""

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, LOG_FILE_MODE)
        try:
            stream = os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)
        except BaseException:
            os.close(fd)
            raise
        paths.make_private(Path(self.baseFilename), LOG_FILE_MODE)
        return stream

    def doRollover(self) -> None:
        super().doRollover()
        for i in range(1, self.backupCount + 1):  # files rotated before this version kept 0644
            rotated = Path(f"{self.baseFilename}.{i}")
            if rotated.exists():
                paths.make_private(rotated, LOG_FILE_MODE)


def setup_logging(*, verbose: bool = False, to_stderr: bool = False) -> None:
    global _configured
    if _configured:
        return
    _configured = True
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    try:
        handler: logging.Handler = PrivateRotatingFileHandler(
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
