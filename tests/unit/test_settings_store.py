"""The settings file: round trip, atomic writes, migrations, damaged files."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.settings import store
from app.settings.schema import SCHEMA_VERSION, Settings, field_info
from app.settings.store import (
    BROKEN_NOTICE,
    NOT_A_FILE_NOTICE,
    SettingsError,
    load_settings,
    save_settings,
    settings_path,
)

ROOT = Path(__file__).resolve().parents[2]


def test_no_file_gives_defaults_and_no_notice():
    settings, notice = load_settings()
    assert settings == Settings()
    assert notice is None


def test_round_trip_keeps_every_changed_value():
    changed = Settings(
        backend="remote",
        server_url="https://ai.school.example:8000/v1",
        detail="high",
        response_language="French",
        output_mode="screen_reader",
        voice="Alice",
        rate=260,
        volume=0.4,
        earcons=False,
        hotkey_prefix="Ctrl+Alt+Shift+F12",
        command_keys=(("stop", "Z"),),
        command_chords=(("describe_screen", "Ctrl+Alt+Shift+F2"),),
        result_font_size=32,
        high_contrast=True,
        start_with_system=True,
    )
    path = save_settings(changed)
    assert path == settings_path()
    loaded, notice = load_settings()
    assert notice is None
    assert loaded == changed
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk["version"] == SCHEMA_VERSION
    assert on_disk["command_keys"] == {"stop": "Z"}


def test_failed_write_leaves_the_old_file_whole_and_no_temp_file(monkeypatch):
    save_settings(Settings(rate=200))
    before = settings_path().read_bytes()

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch, pytest.raises(SettingsError) as caught:
        patch.setattr(store.os, "fsync", failing_fsync)
        save_settings(Settings(rate=300))

    assert caught.value.sentence == "Sightline could not save your settings."
    assert settings_path().read_bytes() == before
    assert sorted(p.name for p in settings_path().parent.iterdir()) == ["settings.json"]
    assert load_settings().settings.rate == 200


def test_failed_write_midway_through_the_text(monkeypatch):
    """The disk fills while the JSON is half written: the old file stays, the half file is removed."""
    save_settings(Settings(voice="Old"))
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()
            return False

        def write(self, text):
            self.handle.write(text[: len(text) // 2])
            self.handle.flush()
            raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch, pytest.raises(SettingsError):
        patch.setattr(store.os, "fdopen", lambda fd, *a, **k: HalfWriter(real_fdopen(fd, *a, **k)))
        save_settings(Settings(voice="New"))
    assert load_settings() == (Settings(voice="Old"), None)
    assert [p.name for p in settings_path().parent.iterdir()] == ["settings.json"]


def test_migrates_an_unversioned_v0_file():
    settings_path().write_text(
        json.dumps(
            {"speech_rate": 240, "language": "German", "speak": False, "volume": 80, "detail": "high"}
        ),
        encoding="utf-8",
    )
    settings, notice = load_settings()
    assert notice is None
    assert settings.rate == 240
    assert settings.response_language == "German"
    assert settings.output_mode == "text"
    assert settings.volume == pytest.approx(0.8)
    assert settings.detail == "high"
    # The next save writes the current version.
    save_settings(settings)
    assert json.loads(settings_path().read_text())["version"] == SCHEMA_VERSION


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2, 3]", b'"just text"', b"\xff\xfe\x00garbage", b""])
def test_damaged_file_is_backed_up_and_defaults_used_with_a_notice(content):
    settings_path().write_bytes(content)
    settings, notice = load_settings()
    assert settings == Settings()
    assert notice == BROKEN_NOTICE
    backups = list(settings_path().parent.glob("settings.json.broken-*"))
    assert len(backups) == 1
    assert backups[0].read_bytes() == content
    assert not settings_path().exists()
    # The next start is quiet: defaults, no second notice.
    assert load_settings() == (Settings(), None)


def test_two_damaged_files_in_the_same_second_keep_both_copies():
    for content in (b"{one", b"{two"):
        settings_path().write_bytes(content)
        assert load_settings().notice == BROKEN_NOTICE
    copies = sorted(p.read_bytes() for p in settings_path().parent.glob("settings.json.broken-*"))
    assert copies == [b"{one", b"{two"]


def test_bad_values_fall_back_per_field_and_keep_the_rest(caplog):
    settings_path().write_text(
        json.dumps(
            {
                "version": SCHEMA_VERSION,
                "rate": "fast",  # wrong type
                "earcons": "yes",  # wrong type
                "detail": "extreme",  # not a choice
                "output_mode": "screen_reader",  # fine
                "volume": 7.5,  # out of range: brought inside
                "result_font_size": 28.0,  # a whole float is accepted
                "voice": "Bob",
                "colour_scheme": "dark",  # unknown key
            }
        ),
        encoding="utf-8",
    )
    with caplog.at_level(logging.INFO, logger="app.settings.store"):
        settings, notice = load_settings()
    assert notice is None
    assert settings.rate == Settings().rate
    assert settings.earcons is True
    assert settings.detail == "normal"
    assert settings.output_mode == "screen_reader"
    assert settings.volume == 1.0
    assert settings.result_font_size == 28
    assert settings.voice == "Bob"
    assert "colour_scheme" in caplog.text


def test_newer_file_keeps_what_this_version_knows():
    settings_path().write_text(json.dumps({"version": SCHEMA_VERSION + 5, "rate": 300, "hologram": True}))
    settings, notice = load_settings()
    assert (settings.rate, notice) == (300, None)


def test_every_field_has_metadata_and_defaults_pass_their_own_validation():
    for f in dataclasses.fields(Settings):
        info = field_info(f.name)
        assert info.label and info.help and info.group, f.name
        if info.choices:
            assert f.default in {value for value, _ in info.choices}, f.name
    assert store.from_dict(store.to_dict(Settings())) == (Settings(), [])


def test_new_defaults():
    settings = Settings()
    assert settings.result_font_size == 20
    assert settings.high_contrast is False
    assert settings.start_with_system is False


# --- Settings are never lost: newer keys, a byte-order mark, deep nesting, non-regular files ------


def test_keys_from_a_newer_version_survive_a_save():
    newer = {
        "version": SCHEMA_VERSION + 3,
        "rate": 300,
        "hologram": {"enabled": True, "depth": [1, 2, 3]},
        "braille_display": "Focus 40",
    }
    settings_path().write_text(json.dumps(newer), encoding="utf-8")
    settings, notice = load_settings()
    assert (settings.rate, notice) == (300, None)

    save_settings(dataclasses.replace(settings, rate=220, voice="Alice"))

    on_disk = json.loads(settings_path().read_text(encoding="utf-8"))
    assert on_disk["hologram"] == {"enabled": True, "depth": [1, 2, 3]}
    assert on_disk["braille_display"] == "Focus 40"
    assert on_disk["version"] == SCHEMA_VERSION + 3  # the newer Sightline will not migrate its own keys
    assert (on_disk["rate"], on_disk["voice"]) == (220, "Alice")
    assert load_settings() == (dataclasses.replace(Settings(), rate=220, voice="Alice"), None)


def test_an_old_file_is_migrated_on_save_without_keeping_its_old_names():
    settings_path().write_text(json.dumps({"speech_rate": 240, "future": 1}), encoding="utf-8")
    save_settings(load_settings().settings)
    on_disk = json.loads(settings_path().read_text(encoding="utf-8"))
    assert "speech_rate" not in on_disk and on_disk["rate"] == 240
    assert on_disk["future"] == 1 and on_disk["version"] == SCHEMA_VERSION


def test_a_byte_order_mark_is_not_damage():
    text = json.dumps({"version": SCHEMA_VERSION, "voice": "Zoë", "rate": 250}, ensure_ascii=False)
    settings_path().write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    settings, notice = load_settings()
    assert notice is None
    assert (settings.voice, settings.rate) == ("Zoë", 250)
    assert not list(settings_path().parent.glob("settings.json.broken-*"))
    save_settings(settings)  # and a save after it keeps working (and writes no mark)
    assert settings_path().read_bytes().startswith(b"{")


@pytest.mark.parametrize("shape", ["array", "object"])
def test_deep_nesting_is_damage_not_a_crash(shape):
    depth = 200_000
    if shape == "array":
        content = b"[" * depth + b"]" * depth
    else:
        content = b'{"voice": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"
    settings_path().write_bytes(content)
    settings, notice = load_settings()
    assert (settings, notice) == (Settings(), BROKEN_NOTICE)
    (backup,) = settings_path().parent.glob("settings.json.broken-*")
    assert backup.read_bytes() == content
    assert load_settings() == (Settings(), None)


def test_a_huge_file_is_damage():
    content = b'{"voice": "' + b"x" * (store.MAX_BYTES + 10) + b'"}'
    settings_path().write_bytes(content)
    assert load_settings() == (Settings(), BROKEN_NOTICE)
    (backup,) = settings_path().parent.glob("settings.json.broken-*")
    assert backup.stat().st_size == len(content)


def _in_subprocess_with_timeout(code: str, timeout: float = 20) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter with the same SIGHTLINE_HOME; a hang fails the test."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_in_place_of_the_file_is_refused_at_once():
    os.mkfifo(settings_path())
    started = time.monotonic()
    settings, notice = load_settings()
    assert time.monotonic() - started < 1
    assert (settings, notice) == (Settings(), NOT_A_FILE_NOTICE)
    assert stat.S_ISFIFO(os.lstat(settings_path()).st_mode)  # refused, not moved or deleted


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_does_not_hang_the_command_line():
    """The command line loads the settings before anything else (here: `sightline model status`)."""
    os.mkfifo(settings_path())
    done = _in_subprocess_with_timeout(
        "import sys; from app.cli import main; sys.exit(main(['model', 'status']))"
    )
    assert NOT_A_FILE_NOTICE in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_saving_over_a_fifo_replaces_it_without_reading_it():
    os.mkfifo(settings_path())
    started = time.monotonic()
    save_settings(Settings(rate=210))
    assert time.monotonic() - started < 1
    assert load_settings() == (Settings(rate=210), None)


@pytest.mark.parametrize("kind", ["folder", "device"])
def test_other_non_regular_files_are_refused(kind):
    if kind == "folder":
        settings_path().mkdir()
    else:
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero")
        settings_path().symlink_to("/dev/zero")  # reading it would never end
    assert load_settings() == (Settings(), NOT_A_FILE_NOTICE)
    assert settings_path().exists() or settings_path().is_symlink()


def test_a_symlink_to_a_real_file_is_read():
    real = settings_path().parent / "elsewhere.json"
    real.write_text(json.dumps({"rate": 199}), encoding="utf-8")
    settings_path().symlink_to(real)
    assert load_settings() == (Settings(rate=199), None)
