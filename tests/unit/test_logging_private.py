"""The log folder is the user's alone (0700) and so is every log file, rotated ones too (0600)."""

from __future__ import annotations

import logging
import os
import stat

from app import paths
from app.logging_setup import PrivateRotatingFileHandler


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_log_folder_and_files_are_private_even_when_they_existed_open(sightline_home):
    old_umask = os.umask(0o022)  # what most systems use: files 0644, folders 0755
    try:
        logs = sightline_home / "logs"
        logs.mkdir(mode=0o755)
        os.chmod(logs, 0o755)
        (logs / "sightline.log").write_text("an old line\n")
        os.chmod(logs / "sightline.log", 0o644)
        (logs / "sightline.log.1").write_text("older\n")
        os.chmod(logs / "sightline.log.1", 0o644)

        assert paths.log_dir() == logs and _mode(logs) == 0o700
        handler = PrivateRotatingFileHandler(
            logs / "sightline.log", maxBytes=300, backupCount=2, encoding="utf-8"
        )
        logger = logging.getLogger("test-private-log")
        logger.propagate = False
        logger.addHandler(handler)
        try:
            assert _mode(logs / "sightline.log") == 0o600
            for i in range(40):  # several rotations
                logger.warning("line %d of a log that rotates often enough to make new files", i)
        finally:
            logger.removeHandler(handler)
            handler.close()
        files = sorted(p.name for p in logs.iterdir())
        assert files == ["sightline.log", "sightline.log.1", "sightline.log.2"]
        assert {name: _mode(logs / name) for name in files} == dict.fromkeys(files, 0o600)
    finally:
        os.umask(old_umask)


def test_a_new_log_folder_is_created_private(sightline_home):
    old_umask = os.umask(0o022)
    try:
        assert not (sightline_home / "logs").exists()
        assert _mode(paths.log_dir()) == 0o700
        assert _mode(paths.config_dir()) == 0o755  # other folders keep the user's umask
    finally:
        os.umask(old_umask)
