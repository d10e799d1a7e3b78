"""Sightline's windows: tray, result window, region selector, settings dialog, theme.

Only this package (with app.jobs, app.commands.hotkeys and app.main) imports Qt.
"""

from __future__ import annotations
