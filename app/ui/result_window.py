"""The result window: the answer in large text as it streams in, a history, copy and follow-up.

Design choice: this window never announces anything itself. It posts no QAccessible announcement
or alert event, calls no QApplication.alert() or beep(), keeps its window title constant and keeps
the reading caret where the user left it while text streams in (a moving caret is read aloud by
screen readers). New results are spoken only by the app's SpeechManager, which knows whether the
user listens through Sightline's own voice or through their screen reader, so an answer is never
spoken twice. For the same reason `present()` shows the window without taking focus unless the
user asked for the window itself.

Keyboard: Tab / Shift+Tab go through history, answer, question, Ask, Copy and Stop; F6 / Shift+F6
jump between the areas (answer, question, buttons, history); Ctrl+C in the answer copies the
selection or, with nothing selected, the whole answer; Enter in the question box asks; Escape hides
the window; Alt plus the underlined letter reaches each labelled control; Ctrl+Down and Ctrl+Up in
the answer move to the next and previous paragraph (the screen reader reads it).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut, QTextCursor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.ui.theme import DEFAULT_FONT_PT, apply_theme

WINDOW_TITLE = "Sightline answers"
MAX_HISTORY = 50
PROBLEM_TITLE = "Problem"  # the title of a failure that happened before any request began


@dataclass
class AnswerRecord:
    """One answer in the history. `text` grows while the answer streams in."""

    job_id: int
    title: str
    started: _dt.datetime = field(default_factory=_dt.datetime.now)
    text: str = ""
    backend: str = ""
    error: str = ""
    finished: bool = False

    @property
    def label(self) -> str:
        # Title first: a screen reader moving through the list hears what each answer was about.
        # A failure says its sentence: "Describe the camera view, 07:10, failed: The camera is busy."
        # A failure before any request began has no title of its own: its sentence is the title.
        when = f"{self.started:%H:%M}"
        if not self.error:
            return f"{self.title}, {when}"
        if self.title == PROBLEM_TITLE:
            return f"{self.error.rstrip('.')}, {when}"
        return f"{self.title}, {when}, failed: {self.error}"

    @property
    def shown_text(self) -> str:
        """What the answer view shows and Copy copies: the answer, else the error sentence."""
        return self.text if self.text else self.error


class AnswerView(QPlainTextEdit):
    """Read-only answer text that a keyboard and a screen reader can move through line by line."""

    copyAllRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByKeyboard | Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setTabChangesFocus(True)  # Tab leaves the view: it is never a keyboard trap
        self.setUndoRedoEnabled(False)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setPlaceholderText("No answer yet.")

    def set_answer(self, text: str) -> None:
        self.setPlainText(text)
        self._pin_caret(0)

    def append_text(self, text: str) -> None:
        # Insert through a separate cursor at the end; the user's caret keeps its place (see module
        # docstring), and the view does not scroll away from what the user is reading.
        end = QTextCursor(self.document())
        end.movePosition(QTextCursor.MoveOperation.End)
        end.insertText(text)

    def _pin_caret(self, position: int) -> None:
        # The flag survives keyboard and mouse moves; setPlainText() hands out a fresh caret.
        caret = self.textCursor()
        caret.setPosition(position)
        caret.setKeepPositionOnInsert(True)
        self.setTextCursor(caret)

    def move_paragraph(self, step: int) -> bool:
        """Puts the caret at the start of the next (+1) or previous (-1) paragraph, skipping blank
        lines, so a screen reader reads that paragraph. False at either end (the caret stays)."""
        block = self.textCursor().block()
        if step < 0:
            # From inside a paragraph, "previous" first means the start of the paragraph before.
            block = block.previous()
            while block.isValid() and not block.text().strip():
                block = block.previous()
            while block.isValid() and block.previous().isValid() and block.previous().text().strip():
                block = block.previous()
        else:
            while block.isValid() and block.text().strip():  # to the end of this paragraph
                block = block.next()
            while block.isValid() and not block.text().strip():
                block = block.next()
        if not block.isValid():
            return False
        caret = self.textCursor()
        caret.setPosition(block.position())
        self.setTextCursor(caret)
        self.ensureCursorVisible()
        return True

    def keyPressEvent(self, event):  # noqa: N802 (Qt override)
        if event.matches(QKeySequence.StandardKey.Copy) and not self.textCursor().hasSelection():
            self.copyAllRequested.emit()
            event.accept()
            return
        if event.modifiers() == Qt.KeyboardModifier.ControlModifier and event.key() in (
            Qt.Key.Key_Down,
            Qt.Key.Key_Up,
        ):
            self.move_paragraph(+1 if event.key() == Qt.Key.Key_Down else -1)
            event.accept()
            return
        super().keyPressEvent(event)


class ResultWindow(QWidget):
    """Shows answers; never speaks or announces them (the SpeechManager does)."""

    followUpRequested = Signal(str)
    stopRequested = Signal()
    copied = Signal(str)  # the text just put on the clipboard, so the app can say "Copied"

    def __init__(
        self, font_pt: int = DEFAULT_FONT_PT, high_contrast: bool = False, parent: QWidget | None = None
    ):
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("resultWindow")
        self.setWindowTitle(WINDOW_TITLE)
        self.setAccessibleName(WINDOW_TITLE)
        self.setAccessibleDescription(
            "The latest answer, earlier answers, and a box for follow-up questions. "
            "F6 moves between areas. Escape hides the window."
        )
        self._records: list[AnswerRecord] = []  # newest first, same order as the history list
        self._seen_jobs: set[int] = set()
        self._current_job: int | None = None
        self._shown: AnswerRecord | None = None
        self._font_pt = font_pt
        self._high_contrast = high_contrast

        # History.
        self.history_label = QLabel("&History")
        self.history = QListWidget()
        self.history.setObjectName("history")
        self.history_label.setBuddy(self.history)
        self.history.setAccessibleName("History")
        self.history.setAccessibleDescription(
            "Earlier answers, newest first, with the time they were asked. Select one to show it."
        )
        self.history.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.history.setWordWrap(True)
        self.history.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # A scroll bar that comes and goes changes the wrap width mid-layout and clips titles.
        self.history.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.history.setResizeMode(QListWidget.ResizeMode.Adjust)  # re-wrap titles when resized
        self.history.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.history.setSpacing(3)
        self.history.currentRowChanged.connect(self._on_history_row)

        # Answer.
        self.answer_label = QLabel("&Answer")
        self.answer = AnswerView()
        self.answer.setObjectName("answer")
        self.answer_label.setBuddy(self.answer)
        self.answer.setAccessibleName("Answer")
        self.answer.setAccessibleDescription(
            "The answer text. Read it with the arrow keys; Control Down and Control Up move by "
            "paragraph. Control C copies the selection, or the whole answer when nothing is selected."
        )
        self.answer.copyAllRequested.connect(self.copy_current)

        self.status = QLabel("")
        self.status.setObjectName("status")
        self.status.setWordWrap(True)
        # No accessible name: a label's name is its text, which is what a screen reader should read.
        self.status.setAccessibleDescription("Which engine answered, or what went wrong.")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)

        # Follow-up question.
        self.question_label = QLabel("&Question")
        self.question = QLineEdit()
        self.question.setObjectName("question")
        self.question_label.setBuddy(self.question)
        self.question.setAccessibleName("Follow-up question")
        self.question.setAccessibleDescription(
            "Type a question about the same picture and press Enter to ask it."
        )
        self.question.setPlaceholderText("Ask about the same picture")
        self.question.setClearButtonEnabled(False)
        self.question.returnPressed.connect(self.ask)
        self.ask_button = QPushButton("As&k")
        self.ask_button.setObjectName("ask")
        self.ask_button.setAccessibleName("Ask")
        self.ask_button.setAccessibleDescription("Ask the follow-up question typed in the question box.")
        self.ask_button.setAutoDefault(False)
        self.ask_button.clicked.connect(self.ask)

        # Actions.
        self.copy_button = QPushButton("&Copy")
        self.copy_button.setObjectName("copy")
        self.copy_button.setAccessibleName("Copy answer")
        self.copy_button.setAccessibleDescription("Copy the answer shown to the clipboard.")
        self.copy_button.setAutoDefault(False)
        self.copy_button.clicked.connect(self.copy_current)
        self.stop_button = QPushButton("&Stop")
        self.stop_button.setObjectName("stop")
        self.stop_button.setAccessibleName("Stop")
        self.stop_button.setAccessibleDescription("Stop the answer being written and stop speaking.")
        self.stop_button.setAutoDefault(False)
        self.stop_button.clicked.connect(lambda: self.stopRequested.emit())

        for label in (self.history_label, self.answer_label, self.question_label):
            label.setObjectName(f"{label.buddy().objectName()}Label")

        self._build_layout()
        self._build_keys()
        self.apply_settings(font_pt, high_contrast)
        self._watch_platform_contrast()

    # ----- layout and keys -------------------------------------------------------------------

    def _build_layout(self) -> None:
        history_box = QWidget()
        hl = QVBoxLayout(history_box)
        hl.setContentsMargins(0, 0, 0, 0)
        hl.addWidget(self.history_label)
        hl.addWidget(self.history)
        answer_box = QWidget()
        al = QVBoxLayout(answer_box)
        al.setContentsMargins(0, 0, 0, 0)
        al.addWidget(self.answer_label)
        al.addWidget(self.answer)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(history_box)
        self.splitter.addWidget(answer_box)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([260, 740])

        ask_row = QHBoxLayout()
        ask_row.addWidget(self.question_label)
        ask_row.addWidget(self.question, 1)
        ask_row.addWidget(self.ask_button)
        button_row = QHBoxLayout()
        button_row.addWidget(self.copy_button)
        button_row.addWidget(self.stop_button)
        button_row.addStretch(1)

        root = QVBoxLayout(self)
        root.setContentsMargins(12, 12, 12, 12)
        root.setSpacing(10)
        root.addWidget(self.splitter, 1)
        root.addWidget(self.status)
        root.addLayout(ask_row)
        root.addLayout(button_row)

        # Tab order follows the reading order: list, answer, question, Ask, Copy, Stop, then wraps.
        chain = self.tab_order()
        for a, b in zip(chain, chain[1:], strict=False):
            QWidget.setTabOrder(a, b)
        for w in (self.splitter, history_box, answer_box, self.status, *self._labels()):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)

    def _labels(self) -> tuple[QLabel, ...]:
        return (self.history_label, self.answer_label, self.question_label)

    def _build_keys(self) -> None:
        ctx = Qt.ShortcutContext.WindowShortcut
        self._shortcuts = []
        for seq, slot in (
            (QKeySequence(Qt.Key.Key_Escape), self.hide),
            (QKeySequence(Qt.Key.Key_F6), lambda: self.move_to_area(+1)),
            (QKeySequence(Qt.Modifier.SHIFT | Qt.Key.Key_F6), lambda: self.move_to_area(-1)),
        ):
            sc = QShortcut(seq, self)
            sc.setContext(ctx)
            sc.activated.connect(slot)
            self._shortcuts.append(sc)

    def tab_order(self) -> list[QWidget]:
        """The controls in Tab order."""
        return [self.history, self.answer, self.question, self.ask_button, self.copy_button, self.stop_button]

    def areas(self) -> list[QWidget]:
        """The first control of each F6 area, in order."""
        return [self.answer, self.question, self.copy_button, self.history]

    def move_to_area(self, step: int) -> None:
        areas = self.areas()
        focus = self.focusWidget()
        groups = {
            self.answer: 0,
            self.question: 1,
            self.ask_button: 1,
            self.copy_button: 2,
            self.stop_button: 2,
            self.history: 3,
        }
        index = groups.get(focus, -1 if step > 0 else 0)
        areas[(index + step) % len(areas)].setFocus(Qt.FocusReason.OtherFocusReason)

    def _watch_platform_contrast(self) -> None:
        hints = QGuiApplication.styleHints()
        accessibility = getattr(hints, "accessibility", None)
        if accessibility is None:
            return
        self._accessibility_hints = accessibility()
        signal = getattr(self._accessibility_hints, "contrastPreferenceChanged", None)
        if signal is not None:
            signal.connect(lambda *_: self.apply_settings(self._font_pt, self._high_contrast))

    # ----- settings --------------------------------------------------------------------------

    def apply_settings(self, font_pt: int, high_contrast: bool) -> None:
        """Apply the text size and high-contrast setting now (live, both ways)."""
        self._font_pt = font_pt
        self._high_contrast = high_contrast
        apply_theme(self, font_pt, high_contrast)
        pt = int(self.font().pointSize())
        # A caret that can be found at large sizes: 2 px at 16 pt, growing with the text.
        self.answer.setCursorWidth(max(2, pt // 8))
        self._fit_to_text_size(pt)

    def _fit_to_text_size(self, pt: int) -> None:
        """Size the window (and the history column) so about 40 characters fit on an answer line."""
        want_w, want_h = pt * 50, pt * 35
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is not None:
            avail = screen.availableGeometry()
            want_w, want_h = min(want_w, avail.width()), min(want_h, avail.height())
        if not self.isVisible():
            self.resize(want_w, want_h)
        elif self.width() < want_w or self.height() < want_h:
            self.resize(max(self.width(), want_w), max(self.height(), want_h))
        history_w = min(pt * 14, self.width() // 3)
        self.splitter.setSizes([history_w, max(1, self.width() - history_w)])
        self.history.doItemsLayout()

    # ----- answers ---------------------------------------------------------------------------

    @property
    def is_streaming(self) -> bool:
        rec = self._record(self._current_job)
        return rec is not None and not rec.finished

    @property
    def records(self) -> tuple[AnswerRecord, ...]:
        """The history, newest first."""
        return tuple(self._records)

    def answer_text(self) -> str:
        """The text of the answer shown now."""
        return self.answer.toPlainText()

    def begin_answer(self, job_id: int, title: str) -> None:
        """Start a new answer: it becomes the current job, goes to the top of the history and is shown."""
        rec = AnswerRecord(job_id=job_id, title=title or "Answer")
        self._seen_jobs.add(job_id)
        self._current_job = job_id
        self._records.insert(0, rec)
        item = QListWidgetItem(rec.label)
        item.setData(Qt.ItemDataRole.AccessibleDescriptionRole, "Answer in progress")
        self.history.insertItem(0, item)
        while len(self._records) > MAX_HISTORY:
            self._records.pop()
            self.history.takeItem(self.history.count() - 1)
        self.status.setText("Working…")
        if self.history.currentRow() == 0:
            self._show(rec)
        else:
            self.history.setCurrentRow(0)  # shows it through _on_history_row

    def append_chunk(self, job_id: int, text: str) -> bool:
        """Add streamed text to the current answer. Chunks of any other job are ignored (False)."""
        rec = self._record(job_id)
        if rec is None or job_id != self._current_job or rec.finished or not text:
            return False
        rec.text += text
        if self._shown is rec:
            if rec.text == text:
                self.answer.set_answer(rec.text)
            else:
                self.answer.append_text(text)
        return True

    def finish_answer(self, job_id: int, backend_name: str) -> bool:
        rec = self._record(job_id)
        if rec is None or job_id != self._current_job or rec.finished:
            return False
        rec.finished = True
        rec.backend = backend_name
        self._refresh_item(rec)
        if self._shown is rec:
            self.status.setText(self._status_for(rec))
        return True

    def show_error(self, job_id: int, sentence: str) -> bool:
        """Show the sentence of a failure. A job never begun gets its own history entry."""
        rec = self._record(job_id)
        if rec is None:
            if job_id in self._seen_jobs:
                return False  # a job dropped from the history long ago
            self.begin_answer(job_id, PROBLEM_TITLE)
            rec = self._record(job_id)
            if rec is None:  # the history holds no entries at all
                return False
        if job_id != self._current_job or rec.finished:
            return False
        rec.finished = True
        rec.error = sentence
        self._refresh_item(rec)
        if self._shown is rec:
            if not rec.text:
                self.answer.set_answer(rec.error)
            self.status.setText(self._status_for(rec))
        return True

    def show_history(self) -> None:
        """Bring the window up with the focus in the history list."""
        self.present(activate=True)
        self.history.setFocus(Qt.FocusReason.OtherFocusReason)

    def present(self, activate: bool = False) -> None:
        """Show the window. Without `activate` it does not take focus from the user's application,
        so the user's screen reader does not read the window over Sightline's own speech."""
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating, not activate)
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        if activate:
            self.activateWindow()
            self.answer.setFocus(Qt.FocusReason.ActiveWindowFocusReason)

    # ----- actions ---------------------------------------------------------------------------

    def copy_current(self) -> str:
        """Put the answer shown on the clipboard (the selection, when Ctrl+C has one). Returns it."""
        text = self._shown.shown_text if self._shown is not None else ""
        if not text:
            return ""
        QGuiApplication.clipboard().setText(text)
        self.copied.emit(text)
        return text

    def ask(self) -> None:
        question = self.question.text().strip()
        if not question:
            return
        self.question.clear()
        self.followUpRequested.emit(question)

    # ----- internals -------------------------------------------------------------------------

    def _record(self, job_id: int | None) -> AnswerRecord | None:
        if job_id is None:
            return None
        for rec in self._records:
            if rec.job_id == job_id:
                return rec
        return None

    def _refresh_item(self, rec: AnswerRecord) -> None:
        row = self._records.index(rec)
        item = self.history.item(row)
        item.setText(rec.label)
        item.setData(Qt.ItemDataRole.AccessibleDescriptionRole, self._status_for(rec))

    @staticmethod
    def _status_for(rec: AnswerRecord) -> str:
        if rec.error:
            return rec.error
        if not rec.finished:
            return "Working…"
        return f"Answered by {rec.backend}." if rec.backend else "Done."

    def _on_history_row(self, row: int) -> None:
        if 0 <= row < len(self._records):
            self._show(self._records[row])

    def _show(self, rec: AnswerRecord) -> None:
        self._shown = rec
        self.answer.set_answer(rec.shown_text)
        self.status.setText(self._status_for(rec))
