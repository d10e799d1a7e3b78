"""The result window as a user meets it: streaming text, history, copy, follow-up, keyboard, theme."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible, QColor, QGuiApplication, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.ui import theme
from app.ui.result_window import WINDOW_TITLE, ResultWindow
from tests.support import a11y

REPO = Path(__file__).resolve().parents[2]

CHUNKS = ["The screen shows ", "a text editor ", "with a letter to the bank. ", "The cursor is on line 3."]


@pytest.fixture
def window(qtbot):
    w = ResultWindow(font_pt=20, high_contrast=False)
    qtbot.addWidget(w)
    w.show()
    w.activateWindow()
    qtbot.waitExposed(w)
    return w


def stream(w: ResultWindow, job_id: int, title: str, chunks, backend: str | None = "OCR") -> None:
    w.begin_answer(job_id, title)
    for c in chunks:
        assert w.append_chunk(job_id, c)
    if backend is not None:
        assert w.finish_answer(job_id, backend)


# ----- streaming -------------------------------------------------------------------------------


def test_text_appears_chunk_by_chunk_and_the_caret_stays_put(window):
    window.begin_answer(1, "Describe the screen")
    assert window.answer_text() == ""
    seen = []
    for chunk in CHUNKS:
        window.append_chunk(1, chunk)
        seen.append(window.answer_text())
        # The reading caret does not follow the stream (screen readers read caret moves aloud).
        assert window.answer.textCursor().position() == 0
    assert seen == ["".join(CHUNKS[: i + 1]) for i in range(len(CHUNKS))]
    assert window.is_streaming
    assert window.status.text() == "Working…"
    window.finish_answer(1, "OCR")
    assert not window.is_streaming
    assert window.status.text() == "Answered by OCR."


def test_a_caret_the_user_moved_stays_where_they_left_it(window, qtbot):
    window.begin_answer(1, "Read all text")
    window.append_chunk(1, "First line.\nSecond line.\n")
    window.answer.setFocus()
    QTest.keyClick(window.answer, Qt.Key.Key_Down)
    where = window.answer.textCursor().position()
    assert where == len("First line.\n")
    window.append_chunk(1, "Third line.")
    assert window.answer.textCursor().position() == where
    assert window.answer_text().endswith("Third line.")
    # At the very end, where the new text goes in, the caret still does not ride along.
    QTest.keyClick(window.answer, Qt.Key.Key_End, Qt.KeyboardModifier.ControlModifier)
    end = len(window.answer_text())
    window.append_chunk(1, " Fourth.")
    assert window.answer.textCursor().position() == end


def test_late_chunks_of_an_old_job_are_ignored(window):
    window.begin_answer(1, "Describe the screen")
    window.append_chunk(1, "Old answer.")
    window.begin_answer(2, "Read all text")  # supersedes job 1
    assert window.append_chunk(1, " late words") is False
    assert window.finish_answer(1, "Phi-4") is False
    assert window.show_error(1, "The model stopped.") is False
    window.append_chunk(2, "New answer.")
    assert window.answer_text() == "New answer."
    old = window.records[1]
    assert (old.job_id, old.text, old.error) == (1, "Old answer.", "")
    # Chunks after the end of the current job are ignored too.
    window.finish_answer(2, "OCR")
    assert window.append_chunk(2, " more") is False
    assert window.answer_text() == "New answer."


def test_an_error_shows_its_sentence(window):
    window.begin_answer(5, "Describe the camera view")
    assert window.show_error(5, "The camera is busy.")
    assert window.answer_text() == "The camera is busy."
    assert window.status.text() == "The camera is busy."
    assert window.history.item(0).text().endswith(", failed: The camera is busy.")
    assert window.history.item(0).text().startswith("Describe the camera view, ")
    # An error for a job that never began (a failed capture) gets its own entry, named by its
    # sentence (not "Problem, 07:10, problem").
    assert window.show_error(6, "The screen could not be captured.")
    assert window.records[0].title == "Problem"
    assert window.answer_text() == "The screen could not be captured."
    label = window.history.item(0).text()
    assert re.fullmatch(r"The screen could not be captured, \d\d:\d\d", label), label
    assert "problem" not in label.lower()


def test_an_error_after_partial_text_keeps_the_text(window):
    window.begin_answer(1, "Describe the screen")
    window.append_chunk(1, "The screen shows")
    window.show_error(1, "The answer was cut short.")
    assert window.answer_text() == "The screen shows"
    assert window.status.text() == "The answer was cut short."


# ----- history ---------------------------------------------------------------------------------


def test_history_lists_answers_newest_first_and_shows_the_one_selected(window):
    stream(window, 1, "Describe the screen", ["A desktop with two windows."])
    stream(window, 2, "Read all text", ["Invoice 42. Total 18 euros."], backend="Phi-4")
    labels = [window.history.item(i).text() for i in range(window.history.count())]
    assert [label.rsplit(", ", 1)[0] for label in labels] == ["Read all text", "Describe the screen"]
    assert all(re.fullmatch(r"\d\d:\d\d", label.rsplit(", ", 1)[1]) for label in labels)  # the time

    window.history.setFocus()
    QTest.keyClick(window.history, Qt.Key.Key_Down)
    assert window.answer_text() == "A desktop with two windows."
    assert window.status.text() == "Answered by OCR."
    QTest.keyClick(window.history, Qt.Key.Key_Up)
    assert window.answer_text() == "Invoice 42. Total 18 euros."
    assert window.status.text() == "Answered by Phi-4."


def test_the_streaming_answer_keeps_growing_while_an_old_one_is_viewed(window):
    stream(window, 1, "Describe the screen", ["Old."])
    window.begin_answer(2, "Read all text")
    window.append_chunk(2, "Part one. ")
    window.history.setCurrentRow(1)
    window.append_chunk(2, "Part two.")
    assert window.answer_text() == "Old."  # the view is not yanked away from what the user reads
    window.history.setCurrentRow(0)
    assert window.answer_text() == "Part one. Part two."


# ----- copy, follow-up, stop -------------------------------------------------------------------


def test_copy_button_puts_the_answer_on_the_clipboard(window, qtbot):
    stream(window, 1, "Read all text", CHUNKS)
    QGuiApplication.clipboard().clear()
    with qtbot.waitSignal(window.copied, timeout=2000):
        QTest.mouseClick(window.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == "".join(CHUNKS)


def test_ctrl_c_in_the_answer_copies_all_or_the_selection(window):
    stream(window, 1, "Read all text", ["Line one.\nLine two."])
    clipboard = QGuiApplication.clipboard()
    clipboard.clear()
    window.answer.setFocus()
    QTest.keyClick(window.answer, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert clipboard.text() == "Line one.\nLine two."
    clipboard.clear()
    QTest.keyClick(window.answer, Qt.Key.Key_End, Qt.KeyboardModifier.ShiftModifier)
    QTest.keyClick(window.answer, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert clipboard.text() == "Line one."


def test_enter_in_the_question_box_asks(window, qtbot):
    stream(window, 1, "Describe the screen", ["A chart."])
    window.question.setFocus()
    QTest.keyClicks(window.question, "  What colour is the bar?  ")
    with qtbot.waitSignal(window.followUpRequested, timeout=2000) as blocker:
        QTest.keyClick(window.question, Qt.Key.Key_Return)
    assert blocker.args == ["What colour is the bar?"]
    assert window.question.text() == ""
    # An empty question asks nothing.
    with qtbot.assertNotEmitted(window.followUpRequested):
        QTest.keyClick(window.question, Qt.Key.Key_Return)
        QTest.mouseClick(window.ask_button, Qt.MouseButton.LeftButton)
    # The Ask button asks too.
    QTest.keyClicks(window.question, "And the title?")
    with qtbot.waitSignal(window.followUpRequested, timeout=2000) as blocker:
        QTest.mouseClick(window.ask_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["And the title?"]


def test_stop_is_reachable_by_button_and_by_its_alt_key(window, qtbot):
    window.begin_answer(1, "Describe the screen")
    with qtbot.waitSignal(window.stopRequested, timeout=2000):
        QTest.mouseClick(window.stop_button, Qt.MouseButton.LeftButton)
    window.answer.setFocus()
    with qtbot.waitSignal(window.stopRequested, timeout=2000):
        QTest.keyClick(window.answer, Qt.Key.Key_S, Qt.KeyboardModifier.AltModifier)


# ----- keyboard --------------------------------------------------------------------------------


def test_tab_reaches_every_control_in_order_both_ways_with_no_trap(window):
    stream(window, 1, "Describe the screen", ["Text."])
    order = window.tab_order()
    assert a11y.tab_chain(window, window.history) == order
    assert a11y.tab_chain(window, window.history, backwards=True) == [order[0], *reversed(order[1:])]
    interactive = {n.object_name for n in a11y.walk(window) if n.focusable and n.object_name}
    assert interactive == {w.objectName() for w in order}


def test_f6_moves_between_areas_and_escape_hides(window):
    window.answer.setFocus()
    QApplication.processEvents()
    visited = []
    for _ in range(4):
        QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_F6)
        visited.append(QApplication.focusWidget())
    assert visited == [window.question, window.copy_button, window.history, window.answer]
    QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_F6, Qt.KeyboardModifier.ShiftModifier)
    assert QApplication.focusWidget() is window.history
    QTest.keyClick(window.history, Qt.Key.Key_Escape)
    assert not window.isVisible()


def test_alt_letters_reach_the_labelled_areas(window):
    window.answer.setFocus()
    for key, target in (
        (Qt.Key.Key_Q, window.question),
        (Qt.Key.Key_H, window.history),
        (Qt.Key.Key_A, window.answer),
    ):
        QTest.keyClick(QApplication.focusWidget(), key, Qt.KeyboardModifier.AltModifier)
        assert QApplication.focusWidget() is target


# ----- accessibility ---------------------------------------------------------------------------


def test_every_control_has_a_name_and_a_description(window):
    stream(window, 1, "Describe the screen", ["Text."])
    window.begin_answer(2, "Read all text")
    assert a11y.unnamed_controls(window) == []
    assert a11y.undescribed_controls(window) == []
    names = {n.name for n in a11y.interactive_controls(window)}
    assert {"Answer", "History", "Follow-up question", "Ask", "Copy answer", "Stop"} <= names


def test_new_results_are_not_announced_by_the_window(window, monkeypatch):
    posted = []
    monkeypatch.setattr(QAccessible, "updateAccessibility", staticmethod(lambda event: posted.append(event)))
    alerts = []
    monkeypatch.setattr(QApplication, "alert", staticmethod(lambda *a: alerts.append(a)))
    monkeypatch.setattr(QApplication, "beep", staticmethod(lambda *a: alerts.append(a)))

    stream(window, 1, "Describe the screen", CHUNKS)
    window.begin_answer(2, "Read all text")
    window.append_chunk(2, "More.")
    window.show_error(2, "Stopped.")
    QApplication.processEvents()

    loud = (QAccessible.Event.Announcement, QAccessible.Event.Alert)
    assert [e for e in posted if e.type() in loud] == []
    assert alerts == []
    assert window.windowTitle() == WINDOW_TITLE  # a changing title is read out by screen readers

    # The spy is live: an announcement posted from Python would have been caught.
    from PySide6.QtGui import QAccessibleAnnouncementEvent

    QAccessible.updateAccessibility(QAccessibleAnnouncementEvent(window, "probe"))
    assert [e.type() for e in posted][-1] == QAccessible.Event.Announcement


def test_present_does_not_take_the_focus_unless_asked(window):
    window.hide()
    window.present()
    assert window.isVisible()
    assert window.testAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
    window.present(activate=True)
    assert not window.testAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)


# ----- theme -----------------------------------------------------------------------------------


def _ink_height(image: QImage, background: QColor) -> int:
    """Rows of the image that hold anything other than the background colour."""
    rows = 0
    for y in range(image.height()):
        if any(image.pixelColor(x, y) != background for x in range(0, image.width(), 2)):
            rows += 1
    return rows


def _answer_ink(window: ResultWindow) -> tuple[QImage, QColor]:
    view = window.answer.viewport()
    image = view.grab().toImage()
    bg = image.pixelColor(image.width() - 3, image.height() - 3)
    line = window.answer.fontMetrics().height()
    return image.copy(0, 0, image.width(), min(image.height(), 4 + 2 * line)), bg


def test_font_size_and_high_contrast_apply_live(window):
    window.begin_answer(1, "Read all text")
    window.append_chunk(1, "Hg")
    window.question.setFocus()

    image, bg = _answer_ink(window)
    height_20 = _ink_height(image, bg)
    assert window.answer.font().pointSize() == 20

    window.apply_settings(32, True)
    QApplication.processEvents()
    assert window.answer.font().pointSize() == 32
    assert window.ask_button.font().pointSize() == 32
    image, bg = _answer_ink(window)
    assert bg == QColor("#000000")  # white on black
    assert _ink_height(image, bg) > 1.3 * height_20
    text_colors = {image.pixelColor(x, y).name() for x in range(image.width()) for y in range(image.height())}
    assert "#ffffff" in text_colors

    # The focus rectangle is thick and yellow around the control that has the focus.
    def yellow(widget):
        img = widget.grab().toImage()
        edge = [img.pixelColor(x, 2) for x in range(img.width())]
        return sum(1 for c in edge if c == QColor("#ffff00"))

    assert yellow(window.question) > 0.8 * window.question.width()
    assert yellow(window.ask_button) == 0
    window.ask_button.setFocus()
    QApplication.processEvents()
    assert yellow(window.ask_button) > 0.5 * window.ask_button.width()

    window.apply_settings(20, False)
    QApplication.processEvents()
    image, bg = _answer_ink(window)
    assert bg != QColor("#000000")
    assert window.answer.font().pointSize() == 20


def test_the_platform_high_contrast_setting_is_followed(window, monkeypatch):
    monkeypatch.setattr(theme, "platform_prefers_high_contrast", lambda: True)
    window.apply_settings(20, False)
    QApplication.processEvents()
    _, bg = _answer_ink(window)
    assert bg == QColor("#000000")


# ----- screenshots -----------------------------------------------------------------------------


def _fill_for_screenshot(w: ResultWindow) -> None:
    stream(w, 1, "Describe the screen", ["A desktop with a browser showing a train timetable."])
    w.begin_answer(2, "Read all text")
    for c in [
        "Departures, platform 4. ",
        "10:42 to Leeds, on time. ",
        "10:55 to York, delayed by 5 minutes. ",
        "11:03 to Hull, ",
    ]:
        w.append_chunk(2, c)


def test_screenshots(window, screenshot_dir):
    _fill_for_screenshot(window)
    window.answer.setFocus()
    QApplication.processEvents()
    assert window.grab().save(str(screenshot_dir / "result_window.png"))
    window.apply_settings(20, True)
    QApplication.processEvents()
    assert window.grab().save(str(screenshot_dir / "result_window_high_contrast.png"))
    window.apply_settings(32, True)
    window.question.setFocus()
    QApplication.processEvents()
    assert window.grab().save(str(screenshot_dir / "result_window_high_contrast_32pt.png"))


@pytest.mark.display
def test_screenshots_on_the_real_display(render_on_display):
    screenshot_dir = render_on_display("result")
    shot = QImage(str(screenshot_dir / "result_window_high_contrast_xvfb.png"))
    assert not shot.isNull()
    # What X shows: mostly black, with white text on it.
    colors = [
        shot.pixelColor(x, y).name() for x in range(0, shot.width(), 7) for y in range(0, shot.height(), 7)
    ]
    assert colors.count("#000000") > 0.6 * len(colors)
    assert "#ffffff" in colors


def test_ctrl_down_and_up_move_by_paragraph_in_the_answer(qtbot, window):
    window.begin_answer(1, "Read all text")
    window.append_chunk(1, "First paragraph line one.\nLine two.\n\nSecond paragraph.\n\n\nThird paragraph.")
    window.finish_answer(1, "OCR")
    window.answer.setFocus()
    view = window.answer

    def line() -> str:
        return view.textCursor().block().text()

    assert line() == "First paragraph line one."
    qtbot.keyClick(view, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert line() == "Second paragraph."
    qtbot.keyClick(view, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert line() == "Third paragraph."
    qtbot.keyClick(view, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert line() == "Third paragraph."  # the last one: the caret stays
    qtbot.keyClick(view, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert line() == "Second paragraph."
    qtbot.keyClick(view, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert line() == "First paragraph line one."
