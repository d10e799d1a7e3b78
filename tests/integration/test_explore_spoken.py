"""Spoken explore commands, from the user's side: the whole app, another process's window, a voice.

While exploring (prefix, then E), the voice key (prefix, then hold V) takes a spoken command about
what is explored: "click Cancel". With a backend that listens (here a Sightline server on loopback
that transcribes the speech as "Click Cancel.") the speech is transcribed by the model; without
one, by the offline grammar made of the words on the explored window; that grammar puts any speech
onto those words, so it only goes to the item and says it, and Enter clicks. Either way the app says
the item and where it is before it clicks, and the window of the other process logs the click on
Cancel, inside the button. The speech is espeak-ng played into the PulseAudio null sink that the
app records from.
"""

from __future__ import annotations

import pytest

from app.settings.schema import Settings
from app.settings.store import save_settings
from tests.fakes.vllm_server import FakeVllmServer, Fault
from tests.fixtures.windows_proc import start_click_window
from tests.integration.test_app_e2e import PREFIX, AppProcess, _hold_and_speak, _speech_wav, xdo
from tests.integration.test_explore import app_env, heard, inside  # noqa: F401 (app_env is a fixture)

pytestmark = [pytest.mark.display, pytest.mark.slow]


def _explore_and_say(app: AppProcess, window, wav, *, confirm: bool = False) -> dict:
    """Explore the click window, say the command with the voice key; returns the logged click.
    `confirm`: the app only goes to the item and says so, and Enter clicks it."""
    import time

    time.sleep(1.5)  # the global key listener connects to the display
    xdo("windowfocus", "--sync", str(window.info["wid"]))
    xdo("key", PREFIX)
    time.sleep(0.3)
    xdo("key", "e")
    heard(app, lambda t: t.startswith("Exploring:"))
    _hold_and_speak("v", wav, app)
    said = heard(app, lambda t: "Cancel" in t or "Nothing like" in t or t.startswith("I "), timeout=90)
    if confirm:
        assert said.startswith("Cancel, ") and "Enter clicks it" in said, said
        time.sleep(0.5)
        assert not window.lines_with("clicked")  # nothing clicked before Enter
        xdo("key", "Return")
        said = heard(app, lambda t: t.startswith("Clicking"))
        assert said == "Clicking Cancel.", said
    else:
        # Said before acting: the item, where it is, then what is done.
        assert said.startswith("Cancel, ") and said.endswith("Clicking Cancel."), said
    return window.wait_for("clicked", timeout=15)


def test_spoken_click_through_a_server_that_transcribes(app_env, tmp_path):  # noqa: F811
    with FakeVllmServer(default_fault=Fault(answer="Click Cancel.")) as server:
        save_settings(Settings(speech_driver="silent", earcons=True, backend="remote", server_url=server.url))
        window = start_click_window(300, 300)
        app = AppProcess(tmp_path / "report.json", app_env)
        try:
            app.wait_for("ready", timeout=120)
            state = app.wait_for("model_state", timeout=120)
            assert state["backend"] == "remote"
            click = _explore_and_say(app, window, _speech_wav(tmp_path, "click cancel"))
        finally:
            assert app.stop() == 0
            window.stop()
        transcripts = [r for r in server.requests if r.audio is not None]
    assert click["clicked"] == "Cancel" and click["button"] == "left", click
    assert inside(window.info["controls"]["Cancel"], click["x"], click["y"]), click
    report = app.read_report()
    # One request went to the model: the speech alone, to transcribe; nothing was shown as an answer.
    (request,) = report["requests"]
    assert request["task"] == "transcribe" and request["image"] is None
    assert 0.5 < request["audio_seconds"] < 6
    assert len(transcripts) == 1
    assert not any(a["title"].startswith("Spoken") for a in report["answers"])


def test_spoken_click_without_the_model_uses_the_words_on_the_window(app_env, tmp_path):  # noqa: F811
    window = start_click_window(300, 300)
    app = AppProcess(tmp_path / "report.json", app_env)
    try:
        app.wait_for("ready", timeout=120)
        click = _explore_and_say(app, window, _speech_wav(tmp_path, "click cancel"), confirm=True)
    finally:
        assert app.stop() == 0
        window.stop()
    assert click["clicked"] == "Cancel" and inside(window.info["controls"]["Cancel"], click["x"], click["y"])
    assert app.read_report()["requests"] == []  # nothing went to a model
