"""The tray menu and the fallback window: every command reachable, named, described, and the icon
tells the state by shape as well as colour."""

from __future__ import annotations

from PySide6.QtCore import QRect
from PySide6.QtWidgets import QPushButton

from app.commands import registry
from app.ui.region_selector import RegionSelector
from app.ui.tray import FallbackWindow, Tray, build_menu, state_icon
from tests.support.a11y import assert_accessible


def test_menu_has_every_command_with_its_description(qtbot):
    chosen = []
    menu = build_menu(chosen.append, key_for=lambda cid: f"Ctrl+Alt+Shift+Space, {cid[0].upper()}")
    actions = [a for a in menu.actions() if not a.isSeparator()]
    assert [a.data() for a in actions] == [c.id for c in registry.menu_items() if c is not None]
    by_id = {a.data(): a for a in actions}
    for command in registry.COMMANDS:
        action = by_id[command.id]
        assert action.text().startswith(command.name) and "\t" in action.text()
        assert action.toolTip() == command.description
    by_id["read_text"].trigger()
    assert chosen == ["read_text"]
    separators = [a for a in menu.actions() if a.isSeparator()]
    assert len(separators) == len(registry.GROUPS) - 1


def test_fallback_window_is_accessible_and_keyboard_usable(qtbot):
    window = FallbackWindow()
    qtbot.addWidget(window)
    window.show()
    assert_accessible(window, require_description=True)
    got = []
    window.commandTriggered.connect(got.append)
    window.findChild(QPushButton, "button_stop").click()
    assert got == ["stop"]


def test_state_icons_differ_by_shape_not_only_colour(qtbot):
    def white_shapes(state):
        # Only the white marks (eye, dotted ring, bar): what is left with the colour taken away.
        image = state_icon(state).pixmap(64, 64).toImage()
        return frozenset(
            (x, y)
            for y in range(64)
            for x in range(64)
            if min(
                image.pixelColor(x, y).red(), image.pixelColor(x, y).green(), image.pixelColor(x, y).blue()
            )
            > 230
        )

    idle, working, error = white_shapes("idle"), white_shapes("working"), white_shapes("error")
    assert len(working - idle) > 50 and len(error - idle) > 50 and len(error ^ working) > 50


def test_forced_fallback_replaces_the_tray(qtbot):
    tray = Tray(force_fallback=True)
    try:
        assert not tray.has_tray and tray.fallback is not None
        tray.set_state("error", "The server is not answering.")
        assert "something went wrong" in tray.fallback.windowTitle()
        assert "The server is not answering." in tray.fallback.windowTitle()
    finally:
        tray.hide()


def test_region_selector_is_named_for_screen_readers(qtbot):
    selector = RegionSelector(QRect(0, 0, 800, 600), speak_help=False)
    qtbot.addWidget(selector)
    selector.show()
    assert selector.accessibleName() and selector.accessibleDescription()
    assert_accessible(selector)
