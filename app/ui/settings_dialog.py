"""The settings dialog, generated from the settings schema (app.settings.schema).

One page per schema group, everyday settings first and advanced ones in a box below them. Every
control has its label as buddy, an accessible name and an accessible description (the field's help
sentence); Tab walks each page top to bottom, then OK, Cancel and Apply; Ctrl+Tab changes page;
Enter accepts; Escape cancels.

Voices are listed on a helper thread (a speech engine can take seconds to start) and fill the Voice
box when they arrive, so the dialog opens at once; the box starts with "System default voice" and
the voice chosen before. Apply sends the settings to the app (`applied`) and makes them the new
starting point: Cancel afterwards closes without undoing what was applied.

The Keys page lists every command of app.commands.registry with the key pressed after the prefix
and an optional direct shortcut. Conflicts (two commands on one key, a chord that belongs to a
screen reader or the system) are shown under the prefix and spoken through `announce`; errors keep
the dialog open.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.commands import registry
from app.commands.keymap import Conflict, effective_chords, effective_keys, find_conflicts
from app.settings.schema import GROUPS, FieldInfo, Settings, field_type, fields_in_group
from app.ui.theme import HIGH_CONTRAST, apply_theme

log = logging.getLogger(__name__)

Announce = Callable[[str], None]

DEFAULT_VOICE_LABEL = "System default voice"


def _voice_items(voices) -> list[tuple[str, str]]:
    """(stored id, shown name) for each voice; a voice may be a plain name or have .id and .name."""
    items = []
    for v in voices:
        vid = str(getattr(v, "id", v))
        name = str(getattr(v, "name", v) or vid)
        language = str(getattr(v, "language", "") or "")
        label = f"{name} ({language})" if language and language.lower() not in name.lower() else name
        if vid:
            items.append((vid, label))
    return items


class _VoiceRelay(QObject):
    """Voice-listing thread -> GUI thread: the list arrives through this queued signal."""

    loaded = Signal(object)


# What each page holds: the tab's tooltip and accessible description.
PAGE_HELP = {
    "answers": "Which engine answers, the model folder or server, detail and language.",
    "speech": "How answers are given: voice, rate, volume and sounds.",
    "keys": "The prefix keys, the key for each command, and direct shortcuts.",
    "capture": "The area around the mouse, the camera and the microphone.",
    "general": "Text size, high contrast and starting at login.",
}


def _describe(widget: QWidget, name: str, help_text: str) -> None:
    widget.setAccessibleName(name)
    widget.setAccessibleDescription(help_text)
    widget.setToolTip(help_text)


class _Field:
    """One schema field's control: how to read and write its value."""

    def __init__(self, name: str, widget: QWidget, get: Callable[[], object], focus: QWidget | None = None):
        self.name = name
        self.widget = widget  # what goes in the layout
        self.get = get
        self.focus = focus or widget  # the control a user lands on


class SettingsDialog(QDialog):
    """Edit a Settings. `result_settings()` (or `settings()`) gives the values in the controls.

    voices: returns the available voices, as names or objects with .id, .name and .language. It is
    called once, on a helper thread, so a slow engine does not hold the dialog up.
    announce: speaks a sentence through the app's SpeechManager (conflicts, "Settings applied.").
    applied(Settings) is emitted when the user presses Apply with valid values.
    voicesLoaded(int) is emitted once the voice list has arrived (with how many voices).
    """

    applied = Signal(object)
    voicesLoaded = Signal(int)

    def __init__(
        self,
        settings: Settings,
        *,
        voices: Callable[[], Sequence] | None = None,
        announce: Announce | None = None,
        platform: str | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self._initial = settings
        self._announce = announce or (lambda sentence: None)
        self._platform = platform
        self._voice_combo: QComboBox | None = None
        self._fields: dict[str, _Field] = {}
        self._key_edits: dict[str, QLineEdit] = {}
        self._chord_edits: dict[str, QLineEdit] = {}
        self._spoken_conflicts: set[str] = set()
        self._result: Settings | None = None

        self.setWindowTitle("Sightline settings")
        self.setAccessibleName("Sightline settings")
        self.setAccessibleDescription(
            "Change how Sightline answers, speaks and listens. Ctrl+Tab changes page."
        )
        self._apply_look(settings)

        layout = QVBoxLayout(self)
        self.tabs = QTabWidget(self)
        self.tabs.setAccessibleName("Settings pages")
        self.tabs.setAccessibleDescription(
            "Ctrl+Tab goes to the next page, Ctrl+Shift+Tab to the previous one."
        )
        layout.addWidget(self.tabs)
        for group, title in GROUPS:
            page = self._build_page(group, settings)
            index = self.tabs.addTab(page, title)
            self.tabs.setTabToolTip(index, PAGE_HELP.get(group, title))
            self.tabs.setTabWhatsThis(index, PAGE_HELP.get(group, title))
        self.tabs.tabBar().setAccessibleDescription(
            "The settings pages. Left and Right arrows change page; Tab goes into the page."
        )

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.Apply,
            parent=self,
        )
        for which, help_text in (
            (QDialogButtonBox.StandardButton.Ok, "Save the settings and close."),
            (QDialogButtonBox.StandardButton.Cancel, "Close without saving."),
            (QDialogButtonBox.StandardButton.Apply, "Save the settings and keep this window open."),
        ):
            button = self.buttons.button(which)
            _describe(button, button.text().replace("&", ""), help_text)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self._apply)
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setDefault(True)
        layout.addWidget(self.buttons)

        self._update_conflicts(speak=False)
        self._size_to_text()
        self._load_voices(voices)

    # --- voices ---------------------------------------------------------------------------------

    def _load_voices(self, voices: Callable[[], Sequence] | None) -> None:
        if voices is None or self._voice_combo is None:
            return
        relay = _VoiceRelay(self)
        relay.loaded.connect(self._fill_voices)

        def run() -> None:  # voice-listing thread: hands the list over through the queued signal
            try:
                found = _voice_items(voices())
            except Exception:  # a speech engine that fails to list voices must not stop the dialog
                log.warning("could not list the voices", exc_info=True)
                found = []
            try:
                relay.loaded.emit(found)
            except RuntimeError:  # the dialog was closed and deleted meanwhile
                pass

        threading.Thread(target=run, name="sightline-voices", daemon=True).start()

    def _fill_voices(self, items: list[tuple[str, str]]) -> None:
        combo = self._voice_combo
        if combo is None:
            return
        current = combo.currentData()
        combo.blockSignals(True)
        known = {combo.itemData(i) for i in range(combo.count())}
        for vid, label in items:
            if vid in known:
                index = combo.findData(vid)
                combo.setItemText(index, label)
            else:
                combo.addItem(label, vid)
        combo.setCurrentIndex(max(combo.findData(current), 0))
        combo.blockSignals(False)
        self.voicesLoaded.emit(len(items))

    # --- building -------------------------------------------------------------------------------

    def _size_to_text(self) -> None:
        """About 60 characters wide and 20 lines high at the chosen text size, within the screen."""
        metrics = self.fontMetrics()
        width, height = metrics.averageCharWidth() * 60, metrics.lineSpacing() * 20
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        if screen is not None:
            width, height = min(width, screen.width() * 9 // 10), min(height, screen.height() * 9 // 10)
        self.resize(max(width, 480), max(height, 360))

    def _apply_look(self, settings: Settings) -> None:
        """The shared Sightline theme (large text, high contrast), plus rules for the controls only
        this dialog has: check boxes and spin buttons that grow with the text, combo boxes, tabs."""
        high_contrast = apply_theme(self, settings.result_font_size, settings.high_contrast)
        side = QFontMetrics(self.font()).height()
        extra = (
            f"QCheckBox::indicator {{ width: {side * 4 // 5}px; height: {side * 4 // 5}px; }}"
            f"QAbstractSpinBox::up-button, QAbstractSpinBox::down-button {{ width: {side}px; }}"
        )
        if high_contrast:
            c = HIGH_CONTRAST
            extra += (
                f"QComboBox, QAbstractSpinBox, QTabBar::tab, QGroupBox"
                f" {{ border: 2px solid {c.foreground}; padding: 2px; }}"
                f"QTabBar::tab {{ color: {c.accent}; padding: 4px 12px; }}"
                f"QTabBar::tab:selected {{ background-color: {c.accent}; color: {c.accent_text}; }}"
                f"QCheckBox::indicator {{ border: 2px solid {c.foreground}; }}"
                f"QCheckBox::indicator:checked {{ background-color: {c.accent}; }}"
                f"QComboBox:focus, QAbstractSpinBox:focus, QTabBar::tab:focus"
                f" {{ border: 5px solid {c.accent}; }}"
                f"QCheckBox:focus {{ color: {c.accent}; }}"
                f"QComboBox QAbstractItemView {{ selection-background-color: {c.accent};"
                f" selection-color: {c.accent_text}; }}"
                "QGroupBox { margin-top: 1.5em; } QGroupBox::title { subcontrol-origin: margin; left: 8px; }"
            )
        self.setStyleSheet(self.styleSheet() + extra)

    def _build_page(self, group: str, settings: Settings) -> QWidget:
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        body = QWidget()
        column = QVBoxLayout(body)
        everyday = self._form()
        column.addLayout(everyday)
        advanced: QFormLayout | None = None
        for f in fields_in_group(group):
            info: FieldInfo = f.metadata["info"]
            form = everyday
            if info.advanced:
                if advanced is None:
                    advanced_box = QGroupBox("More settings")
                    advanced_box.setAccessibleName("More settings")
                    advanced = self._form()
                    advanced_box.setLayout(advanced)
                    column.addWidget(advanced_box)
                form = advanced
            if info.widget == "keymap":
                column.addWidget(self._build_keymap(f.name, info, settings))
                continue
            field_ = self._build_field(f, info, getattr(settings, f.name))
            self._fields[f.name] = field_
            if isinstance(field_.focus, QCheckBox):
                form.addRow(field_.widget)
            else:
                label = QLabel(info.label + ":")
                label.setBuddy(field_.focus)
                label.setWordWrap(True)
                form.addRow(label, field_.widget)
            if f.name == "hotkey_prefix":
                self._conflict_label = QLabel()
                self._conflict_label.setWordWrap(True)
                self._conflict_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard)
                self._conflict_label.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
                _describe(self._conflict_label, "Key problems", "Problems with the keys chosen on this page.")
                form.addRow(self._conflict_label)
        column.addStretch(1)
        scroll.setWidget(body)
        return scroll

    @staticmethod
    def _form() -> QFormLayout:
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        return form

    def _build_field(self, f: dataclasses.Field, info: FieldInfo, value) -> _Field:
        kind = field_type(f)
        name, help_text = info.label, info.help
        if kind is bool:
            box = QCheckBox(info.label)
            box.setChecked(bool(value))
            _describe(box, name, help_text)
            return _Field(f.name, box, box.isChecked)
        if kind is int or (kind is float and info.widget == "percent"):
            spin = QSpinBox()
            if info.widget == "percent":
                spin.setRange(0, 100)
                spin.setSuffix(" %")
                spin.setSingleStep(5)
                spin.setValue(round(float(value) * 100))
                getter = lambda: spin.value() / 100.0  # noqa: E731
            else:
                spin.setRange(
                    int(info.minimum or 0), int(info.maximum if info.maximum is not None else 1_000_000)
                )
                spin.setSingleStep(int(info.step or 1))
                spin.setSuffix(info.suffix)
                spin.setValue(int(value))
                getter = spin.value
            spin.setAccelerated(True)
            _describe(spin, name, help_text)
            return _Field(f.name, spin, getter)
        if kind is float:
            dspin = QDoubleSpinBox()
            dspin.setRange(
                float(info.minimum or 0.0), float(info.maximum if info.maximum is not None else 1e9)
            )
            dspin.setSingleStep(float(info.step or 0.5))
            dspin.setDecimals(1)
            dspin.setSuffix(info.suffix)
            dspin.setValue(float(value))
            _describe(dspin, name, help_text)
            return _Field(f.name, dspin, dspin.value)
        # Text.
        if info.choices:
            combo = self._combo()
            for stored, label in info.choices:
                combo.addItem(label, stored)
            index = combo.findData(value)
            combo.setCurrentIndex(max(index, 0))
            _describe(combo, name, help_text)
            return _Field(f.name, combo, lambda: combo.currentData())
        if info.widget == "voice":
            # A plain list: what is shown is what a screen reader says ("System default voice"),
            # and the voices fill in when the engine has listed them (see _load_voices).
            combo = self._combo()
            combo.addItem(DEFAULT_VOICE_LABEL, "")
            if value:
                combo.addItem(str(value), str(value))
            combo.setCurrentIndex(max(combo.findData(str(value)), 0))
            _describe(combo, name, help_text)
            self._voice_combo = combo
            return _Field(f.name, combo, lambda: combo.currentData() or "")
        if info.suggestions:
            combo = self._combo()
            combo.setEditable(True)
            combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
            options = list(info.suggestions)
            if value and value not in options:
                options.insert(0, value)
            combo.addItems(options)
            combo.setCurrentText(str(value))
            _describe(combo, name, help_text)
            line_edit = combo.lineEdit()
            assert line_edit is not None  # an editable combo box always has one
            line_edit.setAccessibleName(name)
            line_edit.setAccessibleDescription(help_text)
            return _Field(f.name, combo, lambda: combo.currentText().strip())
        edit = QLineEdit(str(value))
        _describe(edit, name, help_text)
        if info.widget == "chord":
            edit.editingFinished.connect(self._update_conflicts)
        if info.widget in ("folder", "file"):
            row = QWidget()
            line = QHBoxLayout(row)
            line.setContentsMargins(0, 0, 0, 0)
            line.addWidget(edit, 1)
            browse = QPushButton("Browse…")
            _describe(
                browse,
                f"Choose the {info.label.lower()}",
                f"Opens a window to choose the {info.label.lower()}.",
            )
            browse.clicked.connect(lambda: self._browse(edit, info))
            line.addWidget(browse)
            return _Field(f.name, row, lambda: edit.text().strip(), focus=edit)
        return _Field(f.name, edit, lambda: edit.text().strip())

    @staticmethod
    def _combo() -> QComboBox:
        combo = QComboBox()
        # Long choices must not push the page wider than the window at large text sizes.
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(8)
        return combo

    def _browse(self, edit: QLineEdit, info: FieldInfo) -> None:
        if info.widget == "folder":
            chosen = QFileDialog.getExistingDirectory(self, info.label, edit.text())
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, info.label, edit.text())
        if chosen:
            edit.setText(chosen)
            edit.setFocus()

    def _build_keymap(self, name: str, info: FieldInfo, settings: Settings) -> QWidget:
        box = QGroupBox(info.label)
        box.setAccessibleName(info.label)
        box.setAccessibleDescription(info.help)
        form = self._form()
        box.setLayout(form)
        intro = QLabel(info.help)
        intro.setWordWrap(True)
        form.addRow(intro)
        chords = name == "command_chords"
        current = (
            effective_chords(settings.command_chords) if chords else effective_keys(settings.command_keys)
        )
        target = self._chord_edits if chords else self._key_edits
        for command in registry.COMMANDS:
            edit = QLineEdit(current[command.id])
            edit.setObjectName(f"{name}:{command.id}")
            what = "direct shortcut" if chords else "key after the prefix"
            _describe(edit, f"{command.name}, {what}", command.description)
            if chords:
                edit.setPlaceholderText("None")
            edit.editingFinished.connect(self._update_conflicts)
            label = QLabel(command.name + ":")
            label.setBuddy(edit)
            label.setWordWrap(True)
            form.addRow(label, edit)
            target[command.id] = edit
        return box

    # --- values and conflicts -------------------------------------------------------------------

    def _key_values(self) -> tuple[str, dict[str, str], dict[str, str]]:
        prefix = str(self._fields["hotkey_prefix"].get())
        keys = {cid: edit.text().strip() for cid, edit in self._key_edits.items()}
        chords = {cid: edit.text().strip() for cid, edit in self._chord_edits.items()}
        return prefix, keys, chords

    def conflicts(self) -> list[Conflict]:
        prefix, keys, chords = self._key_values()
        return find_conflicts(prefix, keys, chords, platform=self._platform)

    def _update_conflicts(self, speak: bool = True) -> list[Conflict]:
        conflicts = self.conflicts()
        sentences = [c.sentence for c in sorted(conflicts, key=lambda c: c.severity != "error")]
        self._conflict_label.setText("\n".join(sentences) if sentences else "No key conflicts.")
        self._conflict_label.setAccessibleDescription(" ".join(sentences) or "No key conflicts.")
        if speak:
            for sentence in sentences:
                if sentence not in self._spoken_conflicts:
                    self._announce(sentence)
            self._spoken_conflicts = set(sentences)
        return conflicts

    def settings(self) -> Settings:
        """A Settings from the values in the controls (key problems are not checked here)."""
        values: dict[str, Any] = {name: field_.get() for name, field_ in self._fields.items()}
        _prefix, keys, chords = self._key_values()
        default_keys, default_chords = effective_keys(), effective_chords()
        values["command_keys"] = tuple((cid, key) for cid, key in keys.items() if key != default_keys[cid])
        values["command_chords"] = tuple(
            (cid, chord) for cid, chord in chords.items() if chord != default_chords[cid]
        )
        return dataclasses.replace(self._initial, **values)

    def result_settings(self) -> Settings | None:
        """The accepted settings, or None if the dialog was cancelled."""
        return self._result

    def _validate(self) -> Settings | None:
        errors = [c for c in self._update_conflicts(speak=False) if c.severity == "error"]
        if errors:
            first = errors[0]
            self._announce(
                first.sentence + (f" {len(errors) - 1} more key problems." if len(errors) > 1 else "")
            )
            self._show_keys_page(first.command_id)
            return None
        return self.settings()

    def _show_keys_page(self, command_id: str) -> None:
        for index, (group, _title) in enumerate(GROUPS):
            if group == "keys":
                self.tabs.setCurrentIndex(index)
        edit = self._key_edits.get(command_id) or self._chord_edits.get(command_id)
        (edit or self._fields["hotkey_prefix"].focus).setFocus()

    def _apply(self) -> None:
        new = self._validate()
        if new is None:
            return
        self._result = new
        self._initial = new  # the new starting point: Cancel after Apply keeps what was applied
        self.applied.emit(new)
        self._announce("Settings applied.")

    def accept(self) -> None:
        new = self._validate()
        if new is None:
            return
        self._result = new
        super().accept()

    def reject(self) -> None:
        self._result = None
        super().reject()

    # --- for tests and the accessibility walk ----------------------------------------------------

    def control(self, name: str) -> QWidget:
        """The control for a schema field, or for "command_keys:<id>" / "command_chords:<id>"."""
        if name.startswith("command_keys:"):
            return self._key_edits[name.split(":", 1)[1]]
        if name.startswith("command_chords:"):
            return self._chord_edits[name.split(":", 1)[1]]
        return self._fields[name].focus

    def interactive_controls(self) -> list[QWidget]:
        """Every control a user can operate, in page order, then the buttons."""
        found: list[QWidget] = []
        for index in range(self.tabs.count()):
            page = self.tabs.widget(index)
            if page is None:
                continue
            for widget in page.findChildren(QWidget):
                focusable = widget.focusPolicy() & Qt.FocusPolicy.TabFocus
                if focusable and widget.isEnabled() and widget.isVisibleTo(page):
                    if isinstance(widget.parent(), QComboBox | QAbstractSpinBox):
                        continue  # the combo's or spin box's own line edit: its owner is the control
                    if widget is self._conflict_label:
                        continue
                    found.append(widget)
        found.extend(b for b in self.buttons.findChildren(QAbstractButton))
        return found


def edit_settings(
    settings: Settings,
    *,
    voices: Callable[[], Sequence] | None = None,
    announce: Announce | None = None,
    on_apply: Callable[[Settings], None] | None = None,
    parent: QWidget | None = None,
) -> Settings | None:
    """Show the dialog modally; the new Settings, or None if cancelled."""
    dialog = SettingsDialog(settings, voices=voices, announce=announce, parent=parent)
    if on_apply is not None:
        dialog.applied.connect(on_apply)
    dialog.exec()
    result = dialog.result_settings()
    dialog.deleteLater()
    return result
