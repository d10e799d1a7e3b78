"""Watch a rectangle of the screen and report only text that is new. Qt-free.

A watch re-captures its rectangle at a calm interval and compares a downscaled grey copy with the
last one it read: about a millisecond per look at a window, so nothing changing costs almost
nothing; a bigger area is looked at less often, so the looks never take more than about 1 % of a
core. When something changed, it reads it at once, or, when the area keeps changing (text being
typed or scrolled), once the change has settled. It recognises only a band of full-width rows
around the change, and reports the lines that were not on the watched area before: a new
subtitle, chat message, progress figure or log line, once each.

The Watcher runs on a thread of its own; it hands text to the caller through `on_text(text)` and a
failure through `on_error(sentence)`, both called on that thread (the app's bridge,
app/jobs/watch.py, turns them into queued signals for the GUI thread).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.core.errors import CaptureError, SightlineError

log = logging.getLogger(__name__)

INTERVAL = 0.25  # shortest time between looks while nothing changes, in seconds...
MAX_INTERVAL = 1.0  # ...and the longest: a look at a big area waits longer (LOOK_SHARE)
LOOK_SHARE = 0.01  # looks take at most about this share of one core (a 4K screen looks once a second)
SETTLE = 0.12  # seconds to wait for a moving area to settle before reading it
BUSY_SECONDS = 1.0  # a change this soon after the last one means the area is moving
MAX_SETTLE = 1.5  # read anyway after this long, even if it keeps changing (a ticking clock)
FACTOR = 4  # the grey copy keeps every 4th pixel of every 4th row
LEVEL = 24  # grey levels a sample must move to count as changed
MIN_CELLS = 3  # fewer changed samples than this is noise (a blinking caret counts as noise)
BAND_MARGIN = 40  # pixels above and below the change read with it, so whole lines are read
REPEAT_SECONDS = 5.0  # the same text coming back this soon (a flicker) is not said again

Rect = tuple[int, int, int, int]  # x, y, width, height in screen pixels


def normal(text: str) -> str:
    """Text as compared for "is it new": case, spacing and most punctuation do not matter."""
    return " ".join(re.sub(r"[^\w%]+", " ", text.casefold()).split())


def same_text(a: str, b: str) -> bool:
    """Two readings of the same text? Equal after normalising, or a misread letter apart with the
    same figures (45% and 46% are different texts; "Buildinq" and "Building" are not)."""
    if a == b:
        return True
    if re.findall(r"\d+", a) != re.findall(r"\d+", b) or min(len(a), len(b)) < 8:
        return False
    import difflib

    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.92


def grey(pixels, factor: int = FACTOR):
    """A small grey copy of an H x W x 3 or 4 uint8 frame: every factor-th pixel's green channel
    (green carries most of the brightness, and no arithmetic on the full frame is needed)."""
    import numpy as np

    return np.ascontiguousarray(pixels[::factor, ::factor, 1]).astype(np.int16)


def changed_rows(before, after, level: int = LEVEL, min_cells: int = MIN_CELLS) -> tuple[int, int] | None:
    """The first and last row (in grey-copy rows) where the two copies differ, or None."""
    import numpy as np

    if before is None or before.shape != after.shape:
        return (0, after.shape[0] - 1)
    moved = np.abs(after - before) > level
    if int(moved.sum()) < min_cells:
        return None
    rows = np.flatnonzero(moved.any(axis=1))
    return int(rows[0]), int(rows[-1])


@dataclass
class _Seen:
    text: str  # as normalised
    y0: float
    y1: float


class NewText:
    """Which recognised lines are new. It keeps the lines now visible on the watched area (their
    normalised text and rows); a band that was read again replaces the lines inside it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._visible: list[_Seen] = []
        self._recent: deque[tuple[str, float]] = deque(maxlen=64)
        self._clock = clock

    def seed(self, lines: Sequence[tuple[str, float, float]]) -> None:
        """What is there when the watch starts: known, never said."""
        self._visible = [_Seen(normal(t), y0, y1) for t, y0, y1 in lines if normal(t)]

    def update(self, band: tuple[float, float], lines: Sequence[tuple[str, float, float]]) -> list[str]:
        """`lines` (text, top, bottom) were read in the rows band=(top, bottom); returns the texts to
        say, in reading order."""
        top, bottom = band
        before = list(self._visible)
        kept = [s for s in before if not (s.y0 >= top - 1 and s.y1 <= bottom + 1)]
        fresh = [_Seen(normal(t), y0, y1) for t, y0, y1 in lines if normal(t)]
        self._visible = kept + fresh
        now = self._clock()
        out = []
        for (text, _y0, _y1), seen in zip([ln for ln in lines if normal(ln[0])], fresh, strict=True):
            if any(same_text(seen.text, b.text) for b in before):
                continue  # still there (scrolled, or re-read unchanged)
            if any(same_text(seen.text, r) and now - t < REPEAT_SECONDS for r, t in self._recent):
                continue  # a flicker: gone for a moment and back
            self._recent.append((seen.text, now))
            out.append(" ".join(text.split()))
        return out


Grabber = Callable[[Rect], "object"]  # returns H x W x 3 or 4 uint8 (BGRA or RGB), one frame
Recogniser = Callable[["object"], "list[tuple[str, float, float, float, float]]"]  # RGB -> lines


class Watcher:
    """Watches one rectangle until stop(). Call start() once."""

    def __init__(
        self,
        rect: Rect,
        recognise: Recogniser,
        on_text: Callable[[str], None],
        on_error: Callable[[str], None] | None = None,
        *,
        grab: Grabber | None = None,
        own_windows: Callable[[], Sequence[Rect]] | None = None,
        interval: float = INTERVAL,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.rect = tuple(int(v) for v in rect)
        self._recognise = recognise
        self._on_text = on_text
        self._on_error = on_error or (lambda _s: None)
        self._on_ready = on_ready or (lambda: None)
        self._grab = grab
        self._own_windows = own_windows or (lambda: ())
        self.interval = float(interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sightline-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    # -- the thread ------------------------------------------------------------------------------

    def _frame(self):
        """One masked frame of the rectangle (Sightline's own windows painted grey)."""
        frame = self._grab(self.rect)
        x, y, w, h = self.rect
        sx, sy = frame.shape[1] / max(1, w), frame.shape[0] / max(1, h)  # points vs pixels (macOS)
        for rx, ry, rw, rh in self._own_windows():
            x0, y0 = max(rx, x) - x, max(ry, y) - y
            x1, y1 = min(rx + rw, x + w) - x, min(ry + rh, y + h) - y
            if x1 > x0 and y1 > y0:
                if not frame.flags.writeable:
                    frame = frame.copy()
                frame[round(y0 * sy) : round(y1 * sy), round(x0 * sx) : round(x1 * sx)] = 128
        return frame

    def _read(self, frame, top: int, bottom: int) -> list[tuple[str, float, float]]:
        """Recognise rows top..bottom of a frame; lines cut by the band's edge are left out (the
        next read of their own rows gets them whole)."""
        import numpy as np

        h = frame.shape[0]
        band = frame[top:bottom]
        rgb = np.ascontiguousarray(band[..., 2::-1] if band.shape[2] == 4 else band)
        out = []
        for text, _x0, y0, _x1, y1 in sorted(self._recognise(rgb), key=lambda ln: (ln[2], ln[1])):
            cut_top = top > 0 and y0 <= 1
            cut_bottom = bottom < h and y1 >= band.shape[0] - 2
            if not (cut_top or cut_bottom):
                out.append((text, top + y0, top + y1))
        return out

    def _run(self) -> None:
        sct = None
        try:
            if self._grab is None:
                sct, self._grab = _mss_grabber()
            frame = self._frame()
            tracker = NewText()
            tracker.seed(self._read(frame, 0, frame.shape[0]))
            reference = grey(frame)
            self._on_ready()
            pause = self.interval
            last_change = float("-inf")
            while not self._stop.wait(pause):
                started = time.perf_counter()
                frame = self._frame()
                small = grey(frame)
                cost = time.perf_counter() - started
                pause = min(MAX_INTERVAL, max(self.interval, cost / LOOK_SHARE))
                rows = changed_rows(reference, small)
                if rows is None:
                    continue
                # A change after a calm spell is read at once (a subtitle, a message, a log line
                # arrive whole). One that follows another closely is something moving (typing,
                # scrolling, an animation): look again shortly until two looks agree.
                now = time.monotonic()
                moving_area, last_change = now - last_change < BUSY_SECONDS, now
                settle_until = now + MAX_SETTLE
                while moving_area and not self._stop.wait(SETTLE) and time.monotonic() < settle_until:
                    again = self._frame()
                    small_again = grey(again)
                    moving = changed_rows(small, small_again)
                    frame, small = again, small_again
                    if moving is None:
                        break
                    rows = (min(rows[0], moving[0]), max(rows[1], moving[1]))
                if self._stop.is_set():
                    break
                h = frame.shape[0]
                top = max(0, rows[0] * FACTOR - BAND_MARGIN)
                bottom = min(h, (rows[1] + 1) * FACTOR + BAND_MARGIN)
                read_started = time.perf_counter()
                lines = self._read(frame, top, bottom)
                log.debug(
                    "watch: read rows %d-%d in %.0f ms",
                    top,
                    bottom,
                    (time.perf_counter() - read_started) * 1000,
                )
                reference = small
                last_change = time.monotonic()
                for text in tracker.update((top, bottom), lines):
                    self._on_text(text)
        except SightlineError as exc:
            self._on_error(exc.sentence)
        except Exception as exc:  # noqa: BLE001 - the watch ends with a sentence, never a traceback
            log.exception("watch failed")
            self._on_error(f"Watching stopped: {type(exc).__name__}. The details are in the log.")
        finally:
            if sct is not None:
                try:
                    sct.close()
                except Exception:  # noqa: BLE001 - closing a broken connection
                    pass


def _mss_grabber():
    """A screen grabber with its own display connection, for the watch thread alone."""
    import numpy as np

    try:
        import mss

        factory = getattr(mss, "MSS", None) or mss.mss
        sct = factory()
    except Exception as exc:  # noqa: BLE001 - any failure to connect is said plainly
        raise CaptureError("Sightline cannot watch the screen: it cannot connect to the display.") from exc

    def grab(rect: Rect):
        x, y, w, h = rect
        shot = sct.grab({"left": x, "top": y, "width": w, "height": h})
        return np.frombuffer(shot.raw, np.uint8).reshape(shot.height, shot.width, 4)

    return sct, grab
