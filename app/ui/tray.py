"""The tray icon and its menu, built from the command registry; a small window where there is no tray.

Every command is in the menu, so everything is reachable without a hotkey. The icon shows the
state (idle, working, error) by shape as well as colour, and its tooltip says it in words.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QKeySequence, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QMenu, QPushButton, QSystemTrayIcon, QVBoxLayout, QWidget

from app.commands import registry

STATES = ("idle", "working", "error")
_STATE_WORDS = {"idle": "ready", "working": "working", "error": "something went wrong"}
_STATE_COLOURS = {"idle": "#1565c0", "working": "#ef6c00", "error": "#c62828"}


def state_icon(state: str, size: int = 64) -> QIcon:
    """An eye in a circle; working adds a ring, error a bar, so colour is never the only cue."""
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    colour = QColor(_STATE_COLOURS.get(state, _STATE_COLOURS["idle"]))
    p.setBrush(colour)
    p.setPen(QPen(QColor("white"), size * 0.05))
    p.drawEllipse(QRectF(size * 0.04, size * 0.04, size * 0.92, size * 0.92))
    # the eye
    p.setBrush(QColor("white"))
    p.setPen(Qt.PenStyle.NoPen)
    p.drawEllipse(QRectF(size * 0.2, size * 0.34, size * 0.6, size * 0.32))
    p.setBrush(colour.darker(160))
    p.drawEllipse(QPointF(size * 0.5, size * 0.5), size * 0.12, size * 0.12)
    if state == "working":
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(QColor("white"), size * 0.08, Qt.PenStyle.DotLine))
        p.drawEllipse(QRectF(size * 0.12, size * 0.12, size * 0.76, size * 0.76))
    elif state == "error":
        p.setPen(QPen(QColor("white"), size * 0.1))
        p.drawLine(QPointF(size * 0.25, size * 0.78), QPointF(size * 0.75, size * 0.78))
    p.end()
    return QIcon(pix)


def build_menu(on_command: Callable[[str], object], key_for: Callable[[str], str] | None = None) -> QMenu:
    """A menu with every command, grouped, each with its description as tooltip and status tip."""
    menu = QMenu()
    menu.setAccessibleName("Sightline menu")
    menu.setToolTipsVisible(True)
    for command in registry.menu_items():
        if command is None:
            menu.addSeparator()
            continue
        text = command.name
        key = key_for(command.id) if key_for else ""
        if key:
            text = f"{text}\t{key}"
        action = QAction(text, menu)
        action.setObjectName(f"action_{command.id}")
        action.setToolTip(command.description)
        action.setStatusTip(command.description)
        action.setData(command.id)
        action.triggered.connect(lambda _checked=False, cid=command.id: on_command(cid))
        menu.addAction(action)
    return menu


class FallbackWindow(QWidget):
    """Where the desktop has no tray: a small window with a button for every command."""

    commandTriggered = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("Sightline")
        self.setAccessibleName("Sightline")
        self.setAccessibleDescription("Your desktop has no tray, so Sightline's commands are here.")
        self._layout = QVBoxLayout(self)
        for command in registry.COMMANDS:
            button = QPushButton(command.name, self)
            button.setObjectName(f"button_{command.id}")
            button.setAccessibleName(command.name)
            button.setAccessibleDescription(command.description)
            button.setToolTip(command.description)
            button.clicked.connect(lambda _checked=False, cid=command.id: self.commandTriggered.emit(cid))
            self._layout.addWidget(button)
        self.addAction(self._escape_action())

    def insert_button(self, button: QPushButton) -> None:
        """An extra button above the command buttons."""
        self._layout.insertWidget(0, button)

    def _escape_action(self) -> QAction:
        action = QAction(self)
        action.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        action.triggered.connect(self.showMinimized)
        return action


class Tray(QObject):
    """The tray icon (or the fallback window) for the app."""

    commandTriggered = Signal(str)

    def __init__(self, key_for: Callable[[str], str] | None = None, *, force_fallback: bool = False) -> None:
        super().__init__()
        self.state = "idle"
        self._icons = {s: state_icon(s) for s in STATES}
        self.fallback: FallbackWindow | None = None
        self.icon: QSystemTrayIcon | None = None
        self.menu: QMenu | None = None
        if not force_fallback and QSystemTrayIcon.isSystemTrayAvailable():
            self.icon = QSystemTrayIcon(self._icons["idle"])
            self.menu = build_menu(self.commandTriggered.emit, key_for)
            self.icon.setContextMenu(self.menu)
            self.icon.activated.connect(self._on_activated)
            self.icon.show()
        else:
            self.fallback = FallbackWindow()
            self.fallback.commandTriggered.connect(self.commandTriggered.emit)
            self.fallback.show()
        self.set_state("idle")

    @property
    def has_tray(self) -> bool:
        return self.icon is not None

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        # A plain click (or Enter on the icon in screen-reader tray navigation) shows the answers.
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.commandTriggered.emit("show_history")

    def set_state(self, state: str, detail: str = "") -> None:
        self.state = state if state in STATES else "idle"
        words = f"Sightline: {_STATE_WORDS[self.state]}"
        if detail:
            words += f". {detail}"
        if self.icon is not None:
            self.icon.setIcon(self._icons[self.state])
            self.icon.setToolTip(words)
        if self.fallback is not None:
            self.fallback.setWindowIcon(self._icons[self.state])
            self.fallback.setWindowTitle(words)

    def add_first_action(
        self, object_name: str, text: str, description: str, callback: Callable[[], object]
    ) -> None:
        """An extra action at the top (e.g. "Download the model"), in the menu or the fallback window."""
        if self.menu is not None:
            action = QAction(text, self.menu)
            action.setObjectName(object_name)
            action.setToolTip(description)
            action.setStatusTip(description)
            action.triggered.connect(lambda _checked=False: callback())
            first = self.menu.actions()[0]
            self.menu.insertAction(first, action)
            self.menu.insertSeparator(first)
        if self.fallback is not None:
            button = QPushButton(text, self.fallback)
            button.setObjectName(object_name)
            button.setAccessibleName(text)
            button.setAccessibleDescription(description)
            button.setToolTip(description)
            button.clicked.connect(lambda _checked=False: callback())
            self.fallback.insert_button(button)

    def raise_(self) -> None:
        if self.fallback is not None:
            self.fallback.showNormal()
            self.fallback.raise_()
            self.fallback.activateWindow()

    def hide(self) -> None:
        if self.icon is not None:
            self.icon.hide()
        if self.fallback is not None:
            self.fallback.close()
