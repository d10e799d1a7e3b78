"""Accessibility checks for Sightline's windows, used by every GUI test.

`walk(widget)` lists what a screen reader sees: the QAccessible tree under a widget, visible nodes
only. `unnamed_controls(widget)` lists the interactive ones (buttons, edits, lists, list items,
anything focusable...) that have no accessible name, so a screen reader would say only "button".
`tab_chain(widget)` presses Tab (or Shift+Tab) from the keyboard focus and records where it goes,
failing on a control that keeps the focus (a keyboard trap) or a chain that leaves the window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible, QAccessibleInterface
from PySide6.QtWidgets import QApplication, QWidget

R = QAccessible.Role

INTERACTIVE_ROLES = frozenset(
    {
        R.PushButton,
        R.CheckBox,
        R.RadioButton,
        R.ComboBox,
        R.EditableText,
        R.SpinBox,
        R.Slider,
        R.Dial,
        R.ScrollBar,
        R.List,
        R.ListItem,
        R.Tree,
        R.TreeItem,
        R.Table,
        R.PageTab,
        R.MenuItem,
        R.ButtonMenu,
        R.ButtonDropDown,
        R.ButtonDropGrid,
        R.Link,
        R.HotkeyField,
        R.Switch if hasattr(R, "Switch") else R.CheckBox,
    }
)


@dataclass(frozen=True)
class AccessibleNode:
    path: str  # e.g. "ResultWindow > QPushButton#copy"
    role: str  # e.g. "PushButton"
    name: str
    description: str
    class_name: str
    object_name: str
    focusable: bool
    interactive: bool

    def __str__(self) -> str:
        return f"{self.path} [{self.role}] name={self.name!r}"


def _label(iface: QAccessibleInterface) -> tuple[str, str]:
    obj = iface.object()
    if obj is None:
        return "", ""
    return type(obj).__name__, obj.objectName()


def _role_name(role) -> str:
    return getattr(role, "name", str(role))


def _nodes(iface: QAccessibleInterface, path: str, depth: int) -> Iterator[AccessibleNode]:
    if depth > 60:  # a cycle in a broken tree must not hang a test
        return
    state = iface.state()
    if state.invisible:
        return
    role = iface.role()
    class_name, object_name = _label(iface)
    here = class_name or _role_name(role)
    if object_name:
        here += f"#{object_name}"
    full = f"{path} > {here}" if path else here
    focusable = bool(state.focusable)
    # A scroll bar that the keyboard cannot reach is decoration the scroll area already covers.
    interactive = focusable or (role in INTERACTIVE_ROLES and role != R.ScrollBar)
    yield AccessibleNode(
        path=full,
        role=_role_name(role),
        name=iface.text(QAccessible.Text.Name) or "",
        description=iface.text(QAccessible.Text.Description) or "",
        class_name=class_name,
        object_name=object_name,
        focusable=focusable,
        interactive=interactive,
    )
    for i in range(iface.childCount()):
        child = iface.child(i)
        if child is not None and child.isValid():
            yield from _nodes(child, full, depth + 1)


def walk(widget: QWidget) -> list[AccessibleNode]:
    """Every visible node of the accessibility tree under `widget`, depth first."""
    iface = QAccessible.queryAccessibleInterface(widget)
    if iface is None or not iface.isValid():
        raise AssertionError(f"{type(widget).__name__} has no accessible interface")
    return list(_nodes(iface, "", 0))


def interactive_controls(widget: QWidget) -> list[AccessibleNode]:
    return [n for n in walk(widget) if n.interactive]


def unnamed_controls(widget: QWidget) -> list[AccessibleNode]:
    """Interactive controls a screen reader could only call by their role."""
    return [n for n in interactive_controls(widget) if not n.name.strip()]


def undescribed_controls(widget: QWidget, *, include_items: bool = False) -> list[AccessibleNode]:
    """Interactive controls without an accessible description (list items skipped unless asked)."""
    items = {"ListItem", "TreeItem", "Cell", "MenuItem"}
    return [
        n
        for n in interactive_controls(widget)
        if not n.description.strip() and (include_items or n.role not in items)
    ]


def assert_accessible(widget: QWidget, *, require_description: bool = False) -> None:
    """Fail with a readable list when a control has no name (or, if asked, no description)."""
    problems = [f"no name: {n}" for n in unnamed_controls(widget)]
    if require_description:
        problems += [f"no description: {n}" for n in undescribed_controls(widget)]
    if problems:
        raise AssertionError("Accessibility problems:\n  " + "\n  ".join(problems))


def tab_chain(
    window: QWidget, start: QWidget | None = None, *, backwards: bool = False, max_steps: int = 200
) -> list[QWidget]:
    """Press Tab (Shift+Tab when `backwards`) until the focus comes back to where it started.

    Returns the widgets focused in order, starting with `start` (default: the current focus
    widget of `window`). Fails when a key press leaves the focus where it was (a trap), when the
    focus leaves `window`, or when it never comes back within `max_steps`.
    """
    from PySide6.QtTest import QTest

    window.activateWindow()
    QApplication.processEvents()
    if start is not None:
        start.setFocus(Qt.FocusReason.TabFocusReason)
        QApplication.processEvents()
    first = QApplication.focusWidget()
    if first is None or not (first is window or window.isAncestorOf(first)):
        raise AssertionError(f"the keyboard focus is not in {type(window).__name__}: {first!r}")
    key = Qt.Key.Key_Backtab if backwards else Qt.Key.Key_Tab
    mods = Qt.KeyboardModifier.ShiftModifier if backwards else Qt.KeyboardModifier.NoModifier
    chain = [first]
    current = first
    for _ in range(max_steps):
        QTest.keyClick(current, key, mods)
        QApplication.processEvents()
        nxt = QApplication.focusWidget()
        if nxt is None or not (nxt is window or window.isAncestorOf(nxt)):
            raise AssertionError(f"Tab left the window after {_describe(current)}: focus is now {nxt!r}")
        if nxt is current:
            raise AssertionError(f"keyboard trap: Tab does not leave {_describe(current)}")
        if nxt is first:
            return chain
        chain.append(nxt)
        current = nxt
    raise AssertionError(f"Tab never came back to {_describe(first)} within {max_steps} presses")


def _describe(widget: QWidget) -> str:
    name = widget.accessibleName() or widget.objectName()
    return f"{type(widget).__name__}({name!r})"
