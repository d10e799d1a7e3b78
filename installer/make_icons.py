"""Render resources/icons/sightline.svg to the PNG sizes desktops ask for, plus a Windows .ico.

Run after changing the SVG: `.venv/bin/python installer/make_icons.py`. The outputs are committed,
so a build needs neither Qt's SVG renderer nor Pillow at packaging time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PIL import Image
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(ICONS / "sightline.svg"))
    if not renderer.isValid():
        print("The SVG icon could not be read.", file=sys.stderr)
        return 1
    pngs = []
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        path = ICONS / f"sightline-{size}.png"
        image.save(str(path))
        pngs.append(path)
    biggest = Image.open(ICONS / "sightline-256.png")
    biggest.save(ICONS / "sightline.ico", sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    print(f"Wrote {len(pngs)} PNG files and sightline.ico to {ICONS}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
