"""The help command and the model-not-installed notice, in the tray app in-process (offscreen, the
silent speech spy records every sentence)."""

from __future__ import annotations

from app.core.types import ModelPhase, ModelState
from tests.gui.conftest import spoken


def test_the_model_notice_is_said_on_the_first_start_only_then_in_the_help(qtbot, make_app):
    first = make_app()
    qtbot.waitUntil(lambda: any("not installed" in s for s in spoken(first)), timeout=5000)
    first.shutdown()

    second = make_app()
    qtbot.waitUntil(lambda: second.tray.fallback is not None and second.worker is not None, timeout=5000)
    qtbot.wait(1500)  # the first-run check runs on the first turn of the event loop
    assert "Sightline is ready." in spoken(second)
    assert not any("not installed" in s for s in spoken(second))

    second.run_command("help")
    qtbot.waitUntil(lambda: any("not installed" in s for s in spoken(second)), timeout=5000)
    said = " ".join(spoken(second))
    assert "Press Ctrl Alt Shift Space, let go, then one key." in said
    assert "S: describe the screen." in said and "F1: help." in said and "F4: quit sightline." in said
    phrases = '"describe the screen", "read the text", "read all the text", "repeat", or "stop".'
    assert f"Without the model, hold V and say {phrases}" in said


def test_help_follows_the_users_keys(qtbot, make_app):
    app = make_app(command_keys=(("stop", "Z"),), hotkey_prefix="Ctrl+Alt+Shift+F12")
    app.run_command("help")
    qtbot.waitUntil(lambda: any(s.startswith("Press ") for s in spoken(app)), timeout=5000)
    qtbot.waitUntil(lambda: any(s == "Z: stop." for s in spoken(app)), timeout=5000)
    assert "Press Ctrl Alt Shift F12, let go, then one key." in spoken(app)


class _Player:
    """Records what the earcons hand to the audio player (the earcon logic itself is the real one)."""

    def __init__(self):
        self.durations: list[float] = []

    def play(self, clip, channel):
        self.durations.append(clip.duration)
        return clip


LOADING = ModelState(ModelPhase.LOADING, "local", "the local Phi-4 model", listens=True)
READY = ModelState(ModelPhase.READY, "local", "the local Phi-4 model", listens=True)


def test_long_loading_ticks_at_a_calm_interval_until_it_ends(qtbot, make_app):
    from app.speech.earcons import Earcons, generate

    app = make_app()
    app.earcons = app.model_setup.earcons = earcons = Earcons(player=_Player())
    app._on_model_state(LOADING)
    assert earcons._progress is not None  # ticking
    qtbot.waitUntil(lambda: "Loading the model." in spoken(app), timeout=5000)
    app._on_model_state(READY)
    assert earcons._progress is None
    qtbot.waitUntil(lambda: "Model ready." in spoken(app), timeout=5000)

    app._on_model_state(LOADING)
    app.worker.loadFailed.emit("The model could not be loaded.")
    qtbot.waitUntil(lambda: earcons._progress is None, timeout=5000)

    earcons.start_progress("loading", interval=0.05)
    qtbot.waitUntil(lambda: earcons.played.count("loading") >= 3, timeout=5000)
    earcons.stop_progress()
    assert len(generate("loading")) > 0
