"""Large text and a high-contrast theme for every Sightline window.

`apply_theme(target, font_pt, high_contrast)` sets the font size, a QPalette and a stylesheet on a
QApplication (every window) or on one widget (that window and its children). High contrast is
white and yellow on black with thick yellow focus rectangles; the normal theme keeps the platform's
colours and only adds large text and a clear focus rectangle. When the platform itself asks for
high contrast (Qt's accessibility hints), Sightline follows it even if the setting is off.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QWidget

DEFAULT_FONT_PT = 20
MIN_FONT_PT = 8
MAX_FONT_PT = 72

# Property set on a themed target so tests and child windows can read what was applied.
PROP_FONT_PT = "sightlineFontPt"
PROP_HIGH_CONTRAST = "sightlineHighContrast"


@dataclass(frozen=True)
class Colors:
    background: str
    foreground: str
    accent: str  # focus rectangles, selection, the region selector's frame
    accent_text: str  # text drawn on the accent colour
    muted: str  # disabled text, placeholders (still at least 7:1 on the background)


HIGH_CONTRAST = Colors(
    background="#000000", foreground="#ffffff", accent="#ffff00", accent_text="#000000", muted="#c8c8c8"
)


def clamp_font_pt(font_pt: int) -> int:
    try:
        pt = int(font_pt)
    except (TypeError, ValueError):
        pt = DEFAULT_FONT_PT
    return max(MIN_FONT_PT, min(MAX_FONT_PT, pt))


def platform_prefers_high_contrast() -> bool:
    """True when the desktop's own accessibility settings ask for high contrast (Qt 6.10+)."""
    app = QGuiApplication.instance()
    if app is None:
        return False
    hints = QGuiApplication.styleHints()
    accessibility = getattr(hints, "accessibility", None)
    if accessibility is None:
        return False
    acc = accessibility()  # keep `hints` alive while we read from its child object
    pref = getattr(Qt, "ContrastPreference", None)
    return pref is not None and acc.contrastPreference() == pref.HighContrast


def high_contrast_palette() -> QPalette:
    c = HIGH_CONTRAST
    bg, fg, accent, accent_text, muted = (
        QColor(c.background),
        QColor(c.foreground),
        QColor(c.accent),
        QColor(c.accent_text),
        QColor(c.muted),
    )
    pal = QPalette()
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        pal.setColor(group, QPalette.ColorRole.Window, bg)
        pal.setColor(group, QPalette.ColorRole.WindowText, fg)
        pal.setColor(group, QPalette.ColorRole.Base, bg)
        pal.setColor(group, QPalette.ColorRole.AlternateBase, QColor("#1a1a1a"))
        pal.setColor(group, QPalette.ColorRole.Text, fg)
        pal.setColor(group, QPalette.ColorRole.Button, bg)
        pal.setColor(group, QPalette.ColorRole.ButtonText, fg)
        pal.setColor(group, QPalette.ColorRole.BrightText, accent)
        pal.setColor(group, QPalette.ColorRole.Highlight, accent)
        pal.setColor(group, QPalette.ColorRole.HighlightedText, accent_text)
        pal.setColor(group, QPalette.ColorRole.ToolTipBase, bg)
        pal.setColor(group, QPalette.ColorRole.ToolTipText, accent)
        pal.setColor(group, QPalette.ColorRole.Link, QColor("#00ffff"))
        pal.setColor(group, QPalette.ColorRole.LinkVisited, QColor("#ff80ff"))
        pal.setColor(group, QPalette.ColorRole.PlaceholderText, muted)
        pal.setColor(group, QPalette.ColorRole.Light, fg)
        pal.setColor(group, QPalette.ColorRole.Midlight, muted)
        pal.setColor(group, QPalette.ColorRole.Mid, muted)
        pal.setColor(group, QPalette.ColorRole.Dark, muted)
        pal.setColor(group, QPalette.ColorRole.Shadow, fg)
    g = QPalette.ColorGroup.Disabled
    for role in (QPalette.ColorRole.Window, QPalette.ColorRole.Base, QPalette.ColorRole.Button):
        pal.setColor(g, role, bg)
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        pal.setColor(g, role, muted)
    pal.setColor(g, QPalette.ColorRole.Highlight, muted)
    pal.setColor(g, QPalette.ColorRole.HighlightedText, bg)
    return pal


def _stylesheet(font_pt: int, high_contrast: bool) -> str:
    # The size is in the stylesheet too: a rule that matches every widget would otherwise hand the
    # children the application's default font instead of the one set on the window.
    if high_contrast:
        c = HIGH_CONTRAST
        return f"""
QWidget {{ background-color: {c.background}; color: {c.foreground}; font-size: {font_pt}pt; }}
QPlainTextEdit, QTextEdit, QListView, QLineEdit {{
    border: 2px solid {c.foreground}; padding: 4px;
    selection-background-color: {c.accent}; selection-color: {c.accent_text};
}}
QPlainTextEdit:focus, QTextEdit:focus, QListView:focus, QLineEdit:focus {{
    border: 5px solid {c.accent};
}}
QLineEdit {{ placeholder-text-color: {c.muted}; }}

QPushButton {{
    border: 2px solid {c.foreground}; border-radius: 6px; padding: 6px 18px;
    background-color: {c.background}; color: {c.foreground};
}}
QPushButton:focus {{ border: 5px solid {c.accent}; color: {c.accent}; }}
QPushButton:hover {{ border-color: {c.accent}; }}
QPushButton:pressed {{ background-color: {c.accent}; color: {c.accent_text}; }}
QPushButton:disabled {{ border-color: {c.muted}; color: {c.muted}; }}
QLabel {{ background-color: transparent; }}
QToolTip {{ background-color: {c.background}; color: {c.accent}; border: 2px solid {c.accent}; }}
QScrollBar {{ background-color: {c.background}; border: 1px solid {c.foreground}; }}
QScrollBar::handle {{ background-color: {c.foreground}; min-height: 24px; min-width: 24px; }}
QScrollBar::add-line, QScrollBar::sub-line {{ background: none; border: none; }}
QSplitter::handle {{ background-color: {c.muted}; margin: 0px 3px; }}
"""
    # Normal theme: platform colours, plus a focus rectangle thick enough to find at a glance.
    return (
        f"QWidget {{ font-size: {font_pt}pt; }}"
        + """
QPlainTextEdit, QTextEdit, QListView, QLineEdit { border: 2px solid palette(mid); padding: 4px; }
QPlainTextEdit:focus, QTextEdit:focus, QListView:focus, QLineEdit:focus {
    border: 4px solid palette(highlight);
}

QPushButton {
    border: 2px solid palette(mid); border-radius: 6px; padding: 6px 18px;
    background-color: palette(button); color: palette(button-text);
}
QPushButton:focus { border: 4px solid palette(highlight); }
QPushButton:pressed { background-color: palette(highlight); color: palette(highlighted-text); }
"""
    )


_original_app_palette: QPalette | None = None


def apply_theme(app_or_widget: QApplication | QWidget, font_pt: int, high_contrast: bool) -> bool:
    """Apply large text and (optionally) high contrast. Returns whether high contrast is now on.

    On a QApplication it changes every window; on a widget, that widget and its children (a
    stylesheet already on the target is replaced). Calling it again switches live, both ways.
    """
    pt = clamp_font_pt(font_pt)
    effective_hc = bool(high_contrast) or platform_prefers_high_contrast()
    target = app_or_widget
    if isinstance(target, QApplication):
        global _original_app_palette
        if _original_app_palette is None:
            _original_app_palette = QPalette(target.palette())
        font = QFont(target.font())
        font.setPointSize(pt)
        target.setFont(font)
        target.setPalette(high_contrast_palette() if effective_hc else _original_app_palette)
        target.setStyleSheet(_stylesheet(pt, effective_hc))
        target.setProperty(PROP_FONT_PT, pt)
        target.setProperty(PROP_HIGH_CONTRAST, effective_hc)
        return effective_hc
    if not isinstance(target, QWidget):
        raise TypeError(f"apply_theme needs a QApplication or a QWidget, not {type(target).__name__}")
    font = QFont(target.font())
    font.setPointSize(pt)
    target.setFont(font)
    # An empty QPalette resolves nothing, so the widget inherits the application's palette again.
    target.setPalette(high_contrast_palette() if effective_hc else QPalette())
    target.setAutoFillBackground(effective_hc)
    target.setStyleSheet(_stylesheet(pt, effective_hc))
    target.setProperty(PROP_FONT_PT, pt)
    target.setProperty(PROP_HIGH_CONTRAST, effective_hc)
    return effective_hc
