"""The settings model: typed choices listed once, every Settings checked, a settings file's bad values
reported and replaced by their defaults field by field."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
from pydantic import ValidationError

from app.cli import build_parser
from app.inference.registry import BACKEND_NAMES, BACKEND_ORDER, BackendRegistry
from app.settings.schema import (
    SCHEMA_VERSION,
    Backend,
    Choice,
    DetailLevel,
    OutputMode,
    Settings,
    field_info,
    field_type,
    validate,
)
from app.settings.store import load_settings, save_settings, settings_path


def test_every_field_has_a_real_type_and_choice_fields_list_their_type_s_choices():
    for f in dataclasses.fields(Settings):
        kind = field_type(f)
        assert kind in (bool, int, float, str, tuple) or issubclass(kind, Choice), (f.name, kind)
        info = field_info(f.name)
        if isinstance(kind, type) and issubclass(kind, Choice):
            assert info.choices == kind.pairs(), f.name
            assert isinstance(f.default, kind), f.name
            assert all(label for _, label in info.choices), f.name
        else:
            assert not info.choices, f"{f.name} has choices but no Choice type"


def test_the_backends_are_listed_once():
    assert BACKEND_NAMES == tuple(b.value for b in Backend) == ("auto", "local", "remote", "ocr")
    assert BACKEND_ORDER == ("local", "remote", "ocr")
    assert field_info("backend").choices == Backend.pairs()
    (backend_action,) = [
        a
        for a in build_parser()._subparsers._group_actions[0].choices["describe"]._actions
        if "--backend" in a.option_strings
    ]
    assert list(backend_action.choices) == list(BACKEND_NAMES)
    assert BackendRegistry(Settings(), factories={n: object for n in BACKEND_ORDER}).order("auto") == list(
        BACKEND_ORDER
    )


def test_a_settings_value_outside_its_choices_cannot_be_made():
    with pytest.raises(ValidationError):
        Settings(backend="gpu-cluster")
    with pytest.raises(ValidationError):
        dataclasses.replace(Settings(), output_mode="braille")
    with pytest.raises(ValidationError):
        Settings(volume=float("nan"))


def test_choices_are_typed_and_still_compare_and_store_as_their_text():
    s = Settings(detail="high", output_mode="text")
    assert s.detail is DetailLevel.HIGH and s.detail == "high"
    assert s.output_mode is OutputMode.TEXT and f"{s.output_mode}" == "text"
    assert DetailLevel.HIGH.label == "High: small text, slower"
    assert Settings(detail="high") == Settings(detail=DetailLevel.HIGH)
    save_settings(s)
    on_disk = json.loads(settings_path().read_text(encoding="utf-8"))
    assert (on_disk["detail"], on_disk["output_mode"]) == ("high", "text")
    assert load_settings() == (s, None)


def test_every_kind_of_bad_value_is_reported_and_replaced_by_its_default_field_by_field(caplog):
    defaults = Settings()
    settings_path().write_text(
        json.dumps(
            {
                "version": SCHEMA_VERSION,
                "backend": "gpu-cluster",  # not a choice
                "device": 7,  # not text
                "quantization": "2bit",
                "server_image_format": "gif",
                "output_mode": None,
                "speech_driver": "",
                "volume": "loud",  # not a number
                "max_recording_seconds": float("nan"),  # JSON's NaN
                "hotkey_timeout": 1e9,  # out of range: brought inside
                "server_jpeg_quality": 3,  # out of range: brought inside
                "command_keys": ["stop", "Z"],  # not an object
                "command_chords": {"stop": "Ctrl+Alt+Shift+X", "describe_screen": 5},  # one bad entry
                "server_url": 42,
                # and good values beside them are kept
                "detail": "low",
                "rate": 300,
                "voice": "Alice",
                "earcons": False,
            }
        ),
        encoding="utf-8",
    )
    with caplog.at_level(logging.INFO, logger="app.settings.store"):
        settings, notice = load_settings()
    assert notice is None
    for name in (
        "backend",
        "device",
        "quantization",
        "server_image_format",
        "output_mode",
        "speech_driver",
        "volume",
        "max_recording_seconds",
        "command_keys",
        "server_url",
    ):
        assert getattr(settings, name) == getattr(defaults, name), name
        assert f"settings: {name}:" in caplog.text, f"{name} was not reported"
    assert settings.hotkey_timeout == field_info("hotkey_timeout").maximum
    assert settings.server_jpeg_quality == field_info("server_jpeg_quality").minimum
    assert "hotkey_timeout: 1000000000.0 is above 10.0" in caplog.text
    assert settings.command_chords == (("stop", "Ctrl+Alt+Shift+X"),)
    assert "command_chords: entries that are not text were dropped" in caplog.text
    assert (settings.detail, settings.rate, settings.voice, settings.earcons) == ("low", 300, "Alice", False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("settings: backend:") and "'gpu-cluster'" in m for m in warnings)


def test_validate_reports_the_field_and_what_the_file_had():
    settings, problems = validate({"backend": "gpu-cluster", "rate": 200})
    assert settings == Settings(rate=200)
    assert len(problems) == 1
    assert problems[0].startswith("backend: Input should be 'auto', 'local', 'remote' or 'ocr'")
    assert "'gpu-cluster'" in problems[0]
    assert validate({}) == (Settings(), [])
