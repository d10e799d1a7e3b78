"""Render the result window and region selector on a real X display and save what X shows.

Run by the display tests in a child process (Qt picks its platform once per process):
    QT_QPA_PLATFORM=xcb python -m tests.gui.render_screens result|region OUT_DIR
Each picture is read back from the screen (QScreen.grabWindow), so fonts and colours are the ones
the display really drew.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QEventLoop, QRect, QTimer
from PySide6.QtWidgets import QApplication, QWidget


def _settle(app: QApplication, ms: int = 400) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def _grab_from_screen(app: QApplication, widget: QWidget, path: Path) -> None:
    _settle(app)
    screen = widget.screen()
    geo = widget.frameGeometry()
    pixmap = screen.grabWindow(0, geo.x(), geo.y(), geo.width(), geo.height())
    if pixmap.isNull() or not pixmap.save(str(path)):
        raise SystemExit(f"could not grab {path.name} from the screen")


def render_result(app: QApplication, out: Path) -> None:
    from app.ui.result_window import ResultWindow

    w = ResultWindow(font_pt=20, high_contrast=False)
    w.setGeometry(100, 100, 1000, 700)
    w.begin_answer(1, "Describe the screen")
    w.append_chunk(1, "A desktop with a browser showing a train timetable.")
    w.finish_answer(1, "OCR")
    w.begin_answer(2, "Read all text")
    w.append_chunk(2, "Departures, platform 4. 10:42 to Leeds, on time. 10:55 to York, delayed by 5 minutes.")
    w.present(activate=True)
    _grab_from_screen(app, w, out / "result_window_xvfb.png")
    w.apply_settings(20, True)
    _grab_from_screen(app, w, out / "result_window_high_contrast_xvfb.png")
    w.close()


def render_region(app: QApplication, out: Path) -> None:
    from app.ui.region_selector import RegionSelector
    from app.ui.result_window import ResultWindow

    screen = app.primaryScreen()
    geo = screen.geometry()
    # Something to select on the otherwise empty display: a window with text.
    window = ResultWindow(font_pt=20)
    window.setGeometry(200, 150, 1000, 700)
    window.begin_answer(1, "Read all text")
    window.append_chunk(1, "Invoice 42. Total 18.40 euros. Due on 3 May.")
    window.present(activate=True)
    _settle(app)
    # As the app opens it: no picture passed, the overlay takes its own of the screen behind it.
    said: list[str] = []
    sel = RegionSelector(geo, said.append, initial=QRect(300, 200, 640, 480))
    sel.start()
    _grab_from_screen(app, sel, out / "region_selector_xvfb.png")
    sel.cancel()
    window.close()


def main(argv: list[str]) -> int:
    what, out = argv[1], Path(argv[2])
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication([argv[0]])
    {"result": render_result, "region": render_region}[what](app, out)
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
