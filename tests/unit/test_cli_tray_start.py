"""A tray app that cannot start says why in one sentence (printed and spoken), never a traceback."""

import app.main
import app.speech.service
from app.cli import main
from app.core.errors import DeviceError


def _spoken(monkeypatch):
    said = []
    monkeypatch.setattr(app.speech.service, "speak_text", lambda text, **kw: said.append(text))
    return said


def test_unexpected_failure_is_one_spoken_sentence(monkeypatch, capsys):
    said = _spoken(monkeypatch)

    def broken(*args, **kwargs):
        raise RuntimeError("widget exploded")

    monkeypatch.setattr(app.main, "run_app", broken)
    assert main([]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "widget exploded" not in err
    assert err.strip() == "Sightline could not start (RuntimeError). The details are in the log."
    assert said == [err.strip()]


def test_sightline_error_keeps_its_sentence_and_exit_code(monkeypatch, capsys):
    said = _spoken(monkeypatch)

    def no_audio(*args, **kwargs):
        raise DeviceError("The sound system is not running.")

    monkeypatch.setattr(app.main, "run_app", no_audio)
    assert main([]) == DeviceError.exit_code
    assert capsys.readouterr().err.strip() == "The sound system is not running."
    assert said == ["The sound system is not running."]
