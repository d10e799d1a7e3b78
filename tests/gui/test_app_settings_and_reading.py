"""The tray app in-process: Settings' Apply reaches the running app and the dialog opens at once;
Repeat, continue reading and the paragraph keys read the whole answer."""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app.settings.store import load_settings
from app.ui.settings_dialog import SettingsDialog
from tests.gui.conftest import spoken

PARAGRAPHS = [
    "First paragraph opens the answer. It has a second sentence.",
    "Second paragraph follows. It also goes on a little.",
    "Third paragraph is here. It is longer than the others, but not by much.",
    "Fourth paragraph ends it. That is all.",
]
TEXT = "\n\n".join(PARAGRAPHS)


def _ready(qtbot, make_app):
    """A new app, once its text-recognition engine has loaded (so no thread is busy at the end)."""
    app = make_app()
    news: list = []
    app.worker.state.connect(news.append)
    qtbot.waitUntil(lambda: any(n.ready for n in news), timeout=60000)
    return app


def _open_settings(qtbot, app, act) -> float:
    """Runs the Settings command; `act(dialog)` runs once the dialog is up. Returns its open time."""
    seen: dict = {}
    started = time.perf_counter()

    def poll() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, SettingsDialog) or not dialog.isVisible():
            QTimer.singleShot(5, poll)
            return
        seen["opened"] = time.perf_counter() - started
        act(dialog)

    QTimer.singleShot(0, poll)
    app.run_command("settings")  # modal: returns when the dialog closes
    assert "opened" in seen
    return seen["opened"]


def test_apply_reaches_the_app_and_cancel_afterwards_keeps_it(qtbot, make_app):  # noqa: F811
    app = _ready(qtbot, make_app)
    driver = app.speech.driver

    def slow_voices():  # an engine that takes seconds to list its voices
        time.sleep(2.0)
        return []

    driver.list_voices = slow_voices

    def act(dialog: SettingsDialog) -> None:
        dialog.control("high_contrast").setChecked(True)
        dialog.control("result_font_size").setValue(30)
        dialog.buttons.button(dialog.buttons.StandardButton.Apply).click()
        assert app.settings.high_contrast is True  # the running app has them while the dialog is open
        assert app.window._high_contrast is True and app.window._font_pt == 30
        dialog.reject()

    opened = _open_settings(qtbot, app, act)
    assert opened < 0.5, f"Settings took {opened:.2f} s to open"
    assert app.settings.high_contrast is True and app.settings.result_font_size == 30  # not undone
    saved, _notice = load_settings()
    assert saved.high_contrast is True and saved.result_font_size == 30  # and saved
    qtbot.waitUntil(lambda: "Settings applied." in spoken(app), timeout=5000)


def test_repeat_reads_the_whole_answer_and_paragraph_keys_move(qtbot, make_app):  # noqa: F811
    app = _ready(qtbot, make_app)
    qtbot.waitUntil(lambda: any("not installed" in s for s in spoken(app)), timeout=10000)
    qtbot.waitUntil(lambda: app.speech.wait_idle(0), timeout=10000)
    app.controller.last_answer = TEXT
    before = len(spoken(app))
    app.run_command("repeat_last")
    sentences = [s.strip() + "." for p in PARAGRAPHS for s in p.split(".") if s.strip()]
    qtbot.waitUntil(lambda: spoken(app)[before:] == sentences, timeout=5000)  # all of it, no note

    before = len(spoken(app))
    app.run_command("previous_paragraph")  # from the end: back to the last but one paragraph
    qtbot.waitUntil(lambda: len(spoken(app)) >= before + 4, timeout=5000)
    assert spoken(app)[before:] == sentences[4:]
    app.run_command("continue_reading")
    qtbot.waitUntil(
        lambda: "That was the end of the answer. Repeat starts it again." in spoken(app), timeout=5000
    )
