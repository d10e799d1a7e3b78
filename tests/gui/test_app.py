"""The tray app in-process (offscreen: no system tray, so the fallback window stands in for it),
with the silent speech spy: first run, the model download, failures, and a clean shutdown."""

from __future__ import annotations

from app.core.errors import CaptureError
from app.inference import model_store
from tests.gui.conftest import spoken
from tests.support.a11y import assert_accessible


def test_first_run_without_model_says_so_and_offers_the_download(qtbot, make_app):
    app = make_app()
    qtbot.waitUntil(lambda: any("not installed" in s for s in spoken(app)), timeout=5000)
    assert spoken(app)[0] == "Sightline is ready."
    notice = next(s for s in spoken(app) if "not installed" in s)
    assert "Download the model" in notice and "sightline model download" in notice
    window = app.tray.fallback
    assert window is not None and not app.tray.has_tray  # offscreen has no tray host
    from PySide6.QtWidgets import QPushButton

    button = window.findChild(QPushButton, "action_download_model")
    assert button is not None and button.accessibleName().startswith("Download the model")
    assert_accessible(window)
    # every command has a button, named for screen readers
    from app.commands import registry

    for command in registry.COMMANDS:
        assert window.findChild(QPushButton, f"button_{command.id}").accessibleName() == command.name


def test_download_speaks_progress_and_loads_the_model(qtbot, make_app, tiny_model_dir, tmp_path, monkeypatch):
    from tests.fakes.hub_server import FakeHub

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    dest = tmp_path / "models" / "Phi-4-multimodal-instruct"
    with FakeHub(tiny_model_dir, max_lifetime_s=120) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        app = make_app(model_dir=str(dest))
        qtbot.waitUntil(lambda: any("not installed" in s for s in spoken(app)), timeout=5000)
        app.model_setup.toggle_download()
        qtbot.waitUntil(lambda: any(s == "Model ready." for s in spoken(app)), timeout=60000)
    said = spoken(app)
    assert "Downloading the model. I will tell you every ten percent." in said
    percents = [s for s in said if s.startswith("Model download ") and s.endswith(" percent.")]
    assert percents, said
    values = [int(s.split()[2]) for s in percents]
    assert values == sorted(values) and all(0 < v < 100 and v % 10 == 0 for v in values)
    assert model_store.inspect_model_folder(dest).ready


def test_a_failed_capture_is_spoken_and_the_app_keeps_running(qtbot, make_app, monkeypatch):
    from app.capture import screen

    def no_screen(*args, **kwargs):
        raise CaptureError("Sightline cannot see the screen: no display is available.")

    monkeypatch.setattr(screen, "capture_screen", no_screen)
    app = make_app()
    app.run_command("describe_screen")
    qtbot.waitUntil(
        lambda: "Sightline cannot see the screen: no display is available." in spoken(app), timeout=5000
    )
    assert app.tray.state == "error"
    app.run_command("no_such_command")  # a bad id is a sentence too, never an exception
    qtbot.waitUntil(lambda: any("no command called" in s for s in spoken(app)), timeout=5000)


def test_repeat_and_copy_without_an_answer_say_so(qtbot, make_app):
    app = make_app()
    app.run_command("repeat_last")
    app.run_command("copy_last")
    qtbot.waitUntil(lambda: "There is no answer to copy yet." in spoken(app), timeout=5000)
    assert "There is no answer yet." in spoken(app)


def test_follow_up_carries_the_last_picture_and_the_conversation(qtbot, make_app):
    import numpy as np

    from app.core.types import ImageInput, Turn
    from app.jobs.controller import Conversation

    app = make_app()
    seen = []
    submit = app.controller.worker.submit
    app.controller.worker.submit = lambda request, cancel: (
        seen.append(request),
        submit(request, cancel),
    )
    picture = ImageInput(np.full((200, 300, 3), 255, np.uint8), source="screen")
    app.controller.conversation = Conversation(
        picture, [Turn("user", "Describe"), Turn("assistant", "A page.")]
    )
    app.ask_follow_up("What colour is it?")
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    request = seen[0]
    assert request.image is picture and request.question == "What colour is it?"
    assert [t.text for t in request.history] == ["Describe", "A page.", "What colour is it?"][:2]


def test_spoken_follow_up_without_the_model_uses_the_command_grammar(qtbot, make_app, tmp_path):
    import subprocess

    from app.capture.audio_file import load_audio

    wav = tmp_path / "repeat.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "repeat"], check=True, timeout=30)
    app = make_app()
    app.ask_follow_up(audio=load_audio(wav))
    qtbot.waitUntil(lambda: "There is no answer yet." in spoken(app), timeout=5000)
    assert "Heard: repeat." in spoken(app)
