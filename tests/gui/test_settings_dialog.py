"""The settings dialog: names for every control, keyboard-only use, conflicts spoken, a screenshot."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QAccessible  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDialog,
    QLineEdit,
    QTabBar,
)

from app.paths import repo_root  # noqa: E402
from app.settings.schema import GROUPS, Settings  # noqa: E402
from app.ui.settings_dialog import SettingsDialog  # noqa: E402

SCREENSHOTS = repo_root() / "test-output" / "screenshots"

INTERACTIVE_ROLES = {
    QAccessible.Role.PushButton,
    QAccessible.Role.CheckBox,
    QAccessible.Role.ComboBox,
    QAccessible.Role.EditableText,
    QAccessible.Role.SpinBox,
    QAccessible.Role.PageTab,
    QAccessible.Role.RadioButton,
    QAccessible.Role.Slider,
}


@pytest.fixture
def spoken():
    return []


@pytest.fixture
def dialog(qtbot, spoken):
    d = SettingsDialog(Settings(), voices=lambda: ["Alice", "Bob"], announce=spoken.append)
    qtbot.addWidget(d)
    d.show()
    qtbot.waitExposed(d)
    return d


def _walk(iface, depth=0):
    yield iface
    if depth > 40:
        return
    for i in range(iface.childCount()):
        child = iface.child(i)
        if child is not None and child.isValid():
            yield from _walk(child, depth + 1)


def test_every_interactive_control_has_an_accessible_name(dialog):
    unnamed = []
    seen_roles = set()
    for index in range(dialog.tabs.count()):
        dialog.tabs.setCurrentIndex(index)
        root = QAccessible.queryAccessibleInterface(dialog)
        for iface in _walk(root):
            role = iface.role()
            state = iface.state()
            if role in INTERACTIVE_ROLES and not state.invisible:
                seen_roles.add(role)
                if not iface.text(QAccessible.Text.Name).strip():
                    unnamed.append((role, iface.object()))
    assert not unnamed, f"controls without an accessible name: {unnamed}"
    # The walk really reached the controls (a walk that sees nothing would pass vacuously).
    assert {QAccessible.Role.CheckBox, QAccessible.Role.ComboBox, QAccessible.Role.SpinBox} <= seen_roles
    assert QAccessible.Role.EditableText in seen_roles


def test_shared_accessibility_check_passes_on_every_page(dialog):
    from tests.support.a11y import undescribed_controls, unnamed_controls

    for index in range(dialog.tabs.count()):
        dialog.tabs.setCurrentIndex(index)
        assert unnamed_controls(dialog) == []
        # Qt's tab bar interface answers Name with the current tab and never gives a Description;
        # each page tab (PageTab) does carry one, and that is what a screen reader reads.
        missing = [n for n in undescribed_controls(dialog) if n.role != "PageTabList"]
        assert missing == []


def test_every_control_has_a_description_and_labels_are_buddies(dialog):
    from PySide6.QtWidgets import QCheckBox, QLabel, QPushButton

    controls = dialog.interactive_controls()
    assert len(controls) > 60
    for widget in controls:
        assert widget.accessibleName().strip(), widget
        assert widget.accessibleDescription().strip(), widget.accessibleName()
    buddies = {label.buddy() for label in dialog.findChildren(QLabel) if label.buddy() is not None}
    for widget in controls:
        if not isinstance(widget, QCheckBox | QPushButton):
            assert widget in buddies, f"{widget.accessibleName()} has no label pointing at it"


def _focus_chain_from_tab_bar(qtbot, dialog, tab_bar, limit=200):
    """Press Tab from the page's tab until focus comes back to the tab bar; the widgets visited."""
    visited = []
    tab_bar.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is tab_bar, timeout=2000)
    for _ in range(limit):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        widget = QApplication.focusWidget()
        if widget is tab_bar:
            return visited
        visited.append(widget)
    pytest.fail("Tab never came back to the page tabs")


def test_tab_reaches_every_control_in_page_order_then_the_buttons(qtbot, dialog):
    tab_bar = dialog.tabs.findChild(QTabBar)
    expected_all = dialog.interactive_controls()
    buttons = expected_all[-3:]
    assert [b.accessibleName() for b in buttons] == ["OK", "Cancel", "Apply"]
    reached = set()
    for index in range(dialog.tabs.count()):
        tab_bar.setFocus()
        if index:
            qtbot.keyClick(tab_bar, Qt.Key.Key_Right)  # the keyboard way to the next page
        assert dialog.tabs.currentIndex() == index
        page = dialog.tabs.widget(index)
        on_page = [w for w in expected_all if page.isAncestorOf(w)]
        visited = _focus_chain_from_tab_bar(qtbot, dialog, tab_bar)
        visited_controls = [w for w in visited if w in on_page or w in buttons]
        # Page controls first, top to bottom, then OK, Cancel, Apply.
        assert visited_controls == on_page + buttons, GROUPS[index][1]
        reached.update(visited_controls)
    assert reached == set(expected_all)


def test_ctrl_tab_changes_page_from_inside_a_page(qtbot, dialog):
    first = dialog.control("backend")
    first.setFocus()
    qtbot.keyClick(first, Qt.Key.Key_Tab, Qt.KeyboardModifier.ControlModifier)
    assert dialog.tabs.currentIndex() == 1


def test_change_a_value_and_press_enter_returns_the_new_settings(qtbot, dialog):
    rate = dialog.control("rate")
    dialog.tabs.setCurrentIndex(2)
    rate.setFocus()
    for _ in range(3):
        qtbot.keyClick(rate, Qt.Key.Key_Up)
    earcons = dialog.control("earcons")
    earcons.setFocus()
    qtbot.keyClick(earcons, Qt.Key.Key_Space)
    qtbot.keyClick(earcons, Qt.Key.Key_Return)
    assert dialog.result() == QDialog.DialogCode.Accepted
    result = dialog.result_settings()
    assert result.rate == Settings().rate + 30
    assert result.earcons is False
    assert result.voice == ""
    assert not dialog.isVisible()


def test_enter_in_a_text_field_accepts(qtbot, dialog):
    edit = dialog.control("server_url")
    edit.setFocus()
    qtbot.keyClicks(edit, "https://ai.school.example:8000/v1")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert dialog.result_settings().server_url == "https://ai.school.example:8000/v1"


def test_escape_cancels(qtbot, dialog):
    combo = dialog.control("detail")
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    qtbot.keyClick(combo, Qt.Key.Key_Escape)
    assert dialog.result() == QDialog.DialogCode.Rejected
    assert dialog.result_settings() is None


def test_choices_are_offered_in_words_and_stored_as_values(qtbot, dialog):
    mode = dialog.control("output_mode")
    texts = [mode.itemText(i) for i in range(mode.count())]
    assert texts == ["Sightline's own voice", "My screen reader", "Text only"]
    mode.setCurrentIndex(1)
    voice = dialog.control("voice")
    qtbot.waitUntil(lambda: voice.count() == 3, timeout=5000)  # the voices arrive from their thread
    assert [voice.itemText(i) for i in range(voice.count())] == ["System default voice", "Alice", "Bob"]
    voice.setCurrentIndex(2)
    new = dialog.settings()
    assert (new.output_mode, new.voice) == ("screen_reader", "Bob")
    voice.setCurrentIndex(0)
    assert dialog.settings().voice == ""  # the system's default voice is stored as empty


def test_rebinding_with_a_conflict_is_spoken_and_blocks_ok(qtbot, dialog, spoken):
    stop = dialog.control("command_keys:stop")
    stop.setFocus()
    stop.selectAll()
    qtbot.keyClicks(stop, "S")
    qtbot.keyClick(stop, Qt.Key.Key_Tab)  # leaving the field checks the keys
    sentence = "Stop and Describe the screen both use the key S."
    assert spoken == [sentence]
    assert sentence in dialog._conflict_label.text()

    dialog.buttons.button(dialog.buttons.StandardButton.Ok).setFocus()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Return)
    assert dialog.isVisible()
    assert spoken[-1] == sentence
    assert QApplication.focusWidget() is stop  # back on the field to fix

    stop.selectAll()
    qtbot.keyClicks(stop, "Z")
    qtbot.keyClick(stop, Qt.Key.Key_Return)
    assert not dialog.isVisible()
    assert dialog.result_settings().command_keys == (("stop", "Z"),)


def test_apply_emits_and_announces_without_closing(qtbot, dialog, spoken):
    got = []
    dialog.applied.connect(got.append)
    dialog.control("high_contrast").setChecked(True)
    dialog.buttons.button(dialog.buttons.StandardButton.Apply).click()
    assert got and got[0].high_contrast is True
    assert spoken[-1] == "Settings applied."
    assert dialog.isVisible()


def test_a_voice_list_that_fails_does_not_stop_the_dialog(qtbot):
    def broken():
        raise RuntimeError("speech engine gone")

    d = SettingsDialog(Settings(voice="Carol"), voices=broken)
    qtbot.addWidget(d)
    assert d.settings().voice == "Carol"


def _save(widget, name: str) -> Path:
    QApplication.processEvents()  # let layouts settle after a page change
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    assert widget.grab().save(str(path))
    return path


@pytest.mark.parametrize("size, contrast", [(20, False), (28, False), (28, True)])
def test_screenshots_at_large_text_sizes(qtbot, size, contrast):
    d = SettingsDialog(Settings(result_font_size=size, high_contrast=contrast), voices=lambda: ["Alice"])
    tag = f"{size}pt" + ("_high_contrast" if contrast else "")
    qtbot.addWidget(d)
    d.resize(1000, 900)  # what it opens at on a 1920 x 1080 screen (the offscreen screen is smaller)
    d.show()
    qtbot.waitExposed(d)
    assert d.font().pointSize() == size
    paths = [_save(d, f"settings_dialog_{tag}_answers.png")]
    for index, (group, _title) in enumerate(GROUPS):
        if group in ("speech", "keys", "general"):
            d.tabs.setCurrentIndex(index)
            paths.append(_save(d, f"settings_dialog_{tag}_{group}.png"))
    for path in paths:
        assert path.stat().st_size > 10_000


def test_the_voice_box_says_what_it_shows(qtbot, dialog):
    """A screen reader hears "System default voice", the text shown, not the first voice listed."""
    voice = dialog.control("voice")
    qtbot.waitUntil(lambda: voice.count() == 3, timeout=5000)
    assert not voice.isEditable()  # an editable box exposed the first list item, not its text
    iface = QAccessible.queryAccessibleInterface(voice)
    assert voice.currentText() == "System default voice"
    assert iface.text(QAccessible.Text.Value) == "System default voice"
    # On Linux Qt gives a combo box's text as its name and its label through a relation.
    assert iface.text(QAccessible.Text.Name) in ("Voice", "System default voice")
    labels = [
        rel[0].text(QAccessible.Text.Name)
        for rel in iface.relations(QAccessible.RelationFlag.Label)
        if rel[0] is not None
    ]
    assert any(label.startswith("Voice") for label in labels), labels
    voice.setCurrentIndex(voice.findText("Bob"))
    assert iface.text(QAccessible.Text.Value) == "Bob"


def test_a_slow_voice_list_does_not_hold_the_dialog_up(qtbot):
    """Settings opens in well under half a second while the speech engine takes its time."""
    import threading
    import time

    release = threading.Event()

    def slow_voices():
        release.wait(10)  # an engine that takes seconds to start
        return ["Alice", "Bob"]

    started = time.perf_counter()
    d = SettingsDialog(Settings(voice="Bob"), voices=slow_voices)
    qtbot.addWidget(d)
    d.show()
    qtbot.waitExposed(d)
    opened = time.perf_counter() - started
    voice = d.control("voice")
    assert voice.currentText() == "Bob"  # the chosen voice is there from the start
    assert opened < 0.5, f"the dialog took {opened:.2f} s to open"
    with qtbot.waitSignal(d.voicesLoaded, timeout=5000):
        release.set()
    assert [voice.itemText(i) for i in range(voice.count())] == ["System default voice", "Bob", "Alice"]
    assert voice.currentText() == "Bob" and d.settings().voice == "Bob"


def test_cancel_after_apply_keeps_what_was_applied(qtbot):
    applied = []
    d = SettingsDialog(Settings(), announce=lambda s: None)
    qtbot.addWidget(d)
    d.applied.connect(applied.append)
    d.show()
    d.control("high_contrast").setChecked(True)
    d.buttons.button(d.buttons.StandardButton.Apply).click()
    d.reject()
    assert len(applied) == 1 and applied[0].high_contrast is True
    assert d.result_settings() is None  # nothing more to save after Cancel


def test_title_and_empty_text_fields_are_named_and_described(dialog):
    iface = QAccessible.queryAccessibleInterface(dialog)
    assert iface.role() == QAccessible.Role.Dialog
    assert iface.text(QAccessible.Text.Name) == dialog.windowTitle() == "Sightline settings"
    assert iface.text(QAccessible.Text.Description)
    empty = [e for e in dialog.findChildren(QLineEdit) if not e.text() and e.isVisibleTo(dialog)]
    assert empty  # the model folder, the server address, the direct shortcuts...
    for edit in empty:
        if isinstance(edit.parent(), QComboBox | QAbstractSpinBox):
            continue
        field = QAccessible.queryAccessibleInterface(edit)
        assert field.role() == QAccessible.Role.EditableText
        assert field.text(QAccessible.Text.Name), edit.objectName()
        assert field.text(QAccessible.Text.Description), field.text(QAccessible.Text.Name)
