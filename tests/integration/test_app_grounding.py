"""The whole app, from the keys: a picture answered in German is grounded in the screen's text,
described in English with the vision adapter, hedged where it quotes what the screen does not say,
then translated by the same model's text path, and only the translation is shown and spoken.

The model is a loopback stand-in for a vLLM server (tests/fakes/vllm_server.py): it answers from
what it received, so each request it got tells which path the app took and with what prompt.
"""

from __future__ import annotations

import signal
import time

import pytest

from app.inference.prompts import SCREEN_TEXT_LEAD
from app.settings.schema import Settings
from app.settings.store import save_settings
from tests.fakes.vllm_server import BASE_MODEL, FakeVllmServer
from tests.fixtures.screens_layout import LINES
from tests.fixtures.screens_proc import start_known_window
from tests.integration.test_app_e2e import PREFIX, AppProcess, xdo
from tests.integration.test_app_lifecycle import lifecycle_env  # noqa: F401 - a fixture

pytestmark = [pytest.mark.display, pytest.mark.slow]


def test_describe_in_german_from_the_keys_is_grounded_hedged_and_translated(lifecycle_env, tmp_path):  # noqa: F811
    with FakeVllmServer() as server:
        save_settings(
            Settings(
                speech_driver="silent", backend="remote", server_url=server.url, response_language="German"
            )
        )
        window = start_known_window(40, 140)
        app = AppProcess(tmp_path / "report.json", lifecycle_env)
        try:
            app.wait_for("ready", timeout=120)
            time.sleep(1.5)  # the global key listener connects to the display
            xdo("key", PREFIX)
            time.sleep(0.3)
            xdo("key", "s")
            done = app.wait_for("finished", timeout=120)
            assert done["error"] is None and done["backend"] == "remote"
            app.proc.send_signal(signal.SIGTERM)
            app.proc.wait(30)
        finally:
            app.stop()
            window.stop()
        describe, translate = server.chat_requests()

    # 1. the picture, with the screen's own text in reading order, answered in English (vision)
    assert describe.model == "vision" and describe.image_size is not None
    assert "Answer in English." in describe.body["messages"][0]["content"]
    assert SCREEN_TEXT_LEAD in describe.user_text
    assert describe.user_text.index(LINES[0]) < describe.user_text.index(LINES[1])
    # 2. the English answer, hedged where it quotes numbers the screen does not show, translated
    #    by the text path (the base model, no picture) into German
    width, height = describe.image_size
    assert f"Image {width} by {height}." in describe.answer
    assert translate.model == BASE_MODEL and translate.image_size is None
    assert "Answer in German." in translate.body["messages"][0]["content"]
    assert "into German" in translate.user_text
    assert f'Image {width} by {height}. It may say "{width}" and "{height}"' in translate.user_text
    # 3. the user sees and hears the translation only
    report = app.read_report()
    shown = report["answers"][0]["text"]
    assert shown.strip() == translate.answer.strip()
    assert "Model vision." not in shown
    spoken = report["spoken_started"]
    assert any(sentence in translate.answer for sentence in spoken if sentence.startswith("Model "))
    assert not any("Model vision." in sentence for sentence in spoken)
