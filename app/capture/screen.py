"""Screen capture: a whole monitor (or all of them), the active window, a region, or a box around
the mouse pointer. Returns an immutable ImageInput in memory; nothing is ever written to disk.

Coordinates are those of mss's monitor list: physical pixels on X11 and Windows (mss makes the
process DPI-aware there), points on macOS. Each ImageInput's bounds are in the captured image's
own pixels, so a Retina capture reports its real size.

The active window on X11 is found through Xlib by ctypes: libX11 is present wherever an X server
is, mss itself talks to the same server, and it costs neither a dependency (python-xlib) nor a
subprocess per capture (xdotool, which most desktops do not install). The window manager's
_NET_ACTIVE_WINDOW is used when set; without a window manager, the window holding the input focus.

When mss cannot capture (no X display, Wayland, a failing driver), a fallback grabber registered
with set_fallback_grabber() is tried; the Qt app registers one (app/ui/qt_grab.py).

Sightline never reads its own windows: the app registers, with set_own_windows(), a function that
lists the rectangles of its visible windows (answer window, settings, menus), and every capture
paints them over with plain grey before anyone sees the pixels. A capture that would show nothing
but Sightline itself is refused with a sentence.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from app.core.errors import CaptureError, InputError
from app.core.types import Bounds, ImageInput
from app.settings.schema import Settings

MODES = ("screen", "window", "region", "pointer")

WAYLAND_SENTENCE = (
    "Sightline cannot capture the screen in this Wayland session. Log in with an X11 session, "
    "for example GNOME on Xorg at the login screen, and try again, or use the Sightline tray app."
)

#: A fallback grabber takes a rectangle (x, y, width, height, in mss's coordinates) and returns
#: H x W x 3 RGB uint8 pixels, or raises CaptureError.
Grabber = Callable[[int, int, int, int], "object"]

_fallback: Grabber | None = None
#: Lists Sightline's own visible windows as (x, y, width, height) rectangles in mss's coordinates.
#: Called on the capturing thread (the GUI thread in the app).
OwnWindows = Callable[[], "list[tuple[int, int, int, int]]"]
_own_windows: OwnWindows | None = None
OWN_WINDOW_FILL = 128  # the grey that replaces Sightline's own windows in a capture
ONLY_OWN_WINDOW = "There is only Sightline's own window there. Switch to the window you want, then try again."


class _ScreenGrabber(Protocol):
    """The part of an mss instance used here."""

    @property
    def monitors(self) -> list[dict[str, Any]]: ...

    def grab(self, monitor: dict[str, int]) -> Any: ...

    def close(self) -> None: ...


_mss_lock = threading.Lock()
_mss_cache: dict[str, _ScreenGrabber] = {}


@dataclass(frozen=True)
class MonitorInfo:
    index: int  # 1-based, as the user counts them; 0 means all monitors together
    x: int
    y: int
    width: int
    height: int
    primary: bool = False
    name: str = ""

    @property
    def bounds(self) -> Bounds:
        return Bounds(self.x, self.y, self.width, self.height)

    def __str__(self) -> str:
        label = f"Monitor {self.index}" + (f" ({self.name})" if self.name else "")
        return f"{label}: {self.width} by {self.height} at {self.x}, {self.y}" + (
            ", primary" if self.primary else ""
        )


def set_fallback_grabber(fn: Grabber | None) -> None:
    """Register the grabber used when mss cannot capture (None removes it)."""
    global _fallback
    _fallback = fn


def set_own_windows(fn: OwnWindows | None) -> None:
    """Register the function that lists Sightline's own windows, masked out of every capture."""
    global _own_windows
    _own_windows = fn


def _mask_own_windows(pixels, x: int, y: int, w: int, h: int):
    """Sightline's own windows in the grabbed rectangle (x, y, w, h) painted grey; returns pixels."""
    if _own_windows is None:
        return pixels
    try:
        rects = list(_own_windows())
    except Exception:  # noqa: BLE001 - listing windows must never cost the capture
        return pixels
    import numpy as np

    sx, sy = pixels.shape[1] / w, pixels.shape[0] / h
    mask = None
    for rx, ry, rw, rh in rects:
        x0, y0 = max(rx, x), max(ry, y)
        x1, y1 = min(rx + rw, x + w), min(ry + rh, y + h)
        if x1 <= x0 or y1 <= y0:
            continue
        if mask is None:
            mask = np.zeros(pixels.shape[:2], bool)
        mask[round((y0 - y) * sy) : round((y1 - y) * sy), round((x0 - x) * sx) : round((x1 - x) * sx)] = True
    if mask is None:
        return pixels
    if mask.mean() >= 0.97:
        raise CaptureError(ONLY_OWN_WINDOW, detail="the capture holds only Sightline's windows")
    if not pixels.flags.writeable:
        pixels = pixels.copy()
    pixels[mask] = OWN_WINDOW_FILL
    return pixels


# --- environment ------------------------------------------------------------------------------


def _is_wayland() -> bool:
    return sys.platform.startswith("linux") and (
        os.environ.get("XDG_SESSION_TYPE", "").lower() == "wayland" or bool(os.environ.get("WAYLAND_DISPLAY"))
    )


def _no_display_error() -> CaptureError:
    if _is_wayland():
        return CaptureError(WAYLAND_SENTENCE)
    return CaptureError(
        "There is no screen to capture: no graphical display is running.",
        detail="DISPLAY is not set",
    )


def _mss() -> _ScreenGrabber:
    """A cached mss instance for the current display (creating one costs about 30 ms)."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        raise _no_display_error()
    key = os.environ.get("DISPLAY", "") if sys.platform.startswith("linux") else "default"
    with _mss_lock:
        inst = _mss_cache.get(key)
        if inst is None:
            try:
                import mss

                factory = getattr(mss, "MSS", None) or mss.mss
                inst = factory()
            except Exception as exc:  # noqa: BLE001 - any failure to connect is said plainly
                if _is_wayland():
                    raise CaptureError(WAYLAND_SENTENCE, detail=str(exc)) from exc
                raise CaptureError(
                    f"Sightline cannot connect to the display {key or ''}".rstrip() + ".", detail=str(exc)
                ) from exc
            _mss_cache[key] = inst
        return inst


def _forget_mss() -> None:
    with _mss_lock:
        for inst in _mss_cache.values():
            try:
                inst.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
        _mss_cache.clear()


def list_monitors() -> list[MonitorInfo]:
    """Every monitor, numbered from 1 as the user counts them."""
    try:
        raw = _mss().monitors
    except CaptureError:
        raise
    except Exception as exc:  # noqa: BLE001
        _forget_mss()
        raise CaptureError("Sightline cannot read the list of monitors.", detail=str(exc)) from exc
    monitors = [
        MonitorInfo(
            index=i,
            x=int(m["left"]),
            y=int(m["top"]),
            width=int(m["width"]),
            height=int(m["height"]),
            primary=bool(m.get("is_primary", False)),
            name=str(m.get("name") or m.get("output") or ""),
        )
        for i, m in enumerate(raw[1:], start=1)
    ]
    if not monitors or all(m.width <= 0 or m.height <= 0 for m in monitors):
        raise CaptureError(WAYLAND_SENTENCE if _is_wayland() else "Sightline can see no monitor to capture.")
    return monitors


def _all_monitors(monitors: list[MonitorInfo]) -> MonitorInfo:
    x0 = min(m.x for m in monitors)
    y0 = min(m.y for m in monitors)
    x1 = max(m.x + m.width for m in monitors)
    y1 = max(m.y + m.height for m in monitors)
    return MonitorInfo(0, x0, y0, x1 - x0, y1 - y0, False, "all monitors")


# --- grabbing ---------------------------------------------------------------------------------


def _looks_blank(pixels) -> bool:
    sample = pixels[::7, ::7]
    return bool((sample == sample[0, 0]).all())


def _bgra_to_rgb(bgra):
    """Three plane copies: about three times faster than one strided copy of a reversed view."""
    import numpy as np

    rgb = np.empty(bgra.shape[:2] + (3,), np.uint8)
    rgb[..., 0] = bgra[..., 2]
    rgb[..., 1] = bgra[..., 1]
    rgb[..., 2] = bgra[..., 0]
    return rgb


def _grab(x: int, y: int, w: int, h: int, source: str, note: str = "") -> ImageInput:
    """Grab a rectangle that lies on the screen (already clipped) into an ImageInput."""
    import numpy as np

    error: CaptureError | None = None
    pixels = None
    try:
        shot = _mss().grab({"left": x, "top": y, "width": w, "height": h})
        bgra = np.asarray(shot)
        pixels = _bgra_to_rgb(bgra)
        if _is_wayland() and _looks_blank(pixels):
            # Under XWayland, X clients see only a black root window: that is "nothing", not a screen.
            pixels = None
            error = CaptureError(WAYLAND_SENTENCE, detail="mss returned a uniform image under Wayland")
    except CaptureError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - a failed grab is a sentence, never a traceback
        _forget_mss()
        error = CaptureError("The screen could not be captured.", detail=f"{type(exc).__name__}: {exc}")
    if pixels is None and _fallback is not None:
        try:
            pixels = np.asarray(_fallback(x, y, w, h), dtype=np.uint8)
        except CaptureError as exc:
            error = error or exc
        except Exception as exc:  # noqa: BLE001
            error = error or CaptureError("The screen could not be captured.", detail=str(exc))
        else:
            if pixels.ndim != 3 or pixels.shape[0] == 0 or pixels.shape[1] == 0:
                pixels = None
            elif pixels.shape[2] == 4:
                pixels = pixels[:, :, :3]
    if pixels is None:
        raise error or CaptureError("The screen could not be captured.")
    pixels = _mask_own_windows(pixels, x, y, w, h)
    captured_at = time.time()
    # On macOS the rectangle is in points and the image in pixels: report bounds in image pixels.
    sx = pixels.shape[1] / w
    sy = pixels.shape[0] / h
    bounds = Bounds(round(x * sx), round(y * sy), int(pixels.shape[1]), int(pixels.shape[0]))
    return ImageInput(pixels, source, bounds, captured_at=captured_at, note=note)


def _clip(x: int, y: int, w: int, h: int, monitors: list[MonitorInfo]) -> tuple[int, int, int, int] | None:
    """The part of a rectangle that lies on some monitor, as one rectangle (None if none does)."""
    parts = []
    for m in monitors:
        ix0, iy0 = max(x, m.x), max(y, m.y)
        ix1, iy1 = min(x + w, m.x + m.width), min(y + h, m.y + m.height)
        if ix1 > ix0 and iy1 > iy0:
            parts.append((ix0, iy0, ix1, iy1))
    if not parts:
        return None
    x0 = min(p[0] for p in parts)
    y0 = min(p[1] for p in parts)
    x1 = max(p[2] for p in parts)
    y1 = max(p[3] for p in parts)
    return x0, y0, x1 - x0, y1 - y0


def _monitor_at(px: int, py: int, monitors: list[MonitorInfo]) -> MonitorInfo:
    for m in monitors:
        if m.x <= px < m.x + m.width and m.y <= py < m.y + m.height:
            return m
    # Nearest monitor (the pointer can sit in a gap of an irregular layout).
    return min(
        monitors,
        key=lambda m: (
            (max(m.x - px, 0, px - (m.x + m.width - 1)) ** 2)
            + (max(m.y - py, 0, py - (m.y + m.height - 1)) ** 2)
        ),
    )


# --- public capture functions -----------------------------------------------------------------


def capture_screen(monitor: int | None = None) -> ImageInput:
    """One monitor by its number (1, 2...), or all of them with 0.

    None means the monitor under the mouse pointer, which is where the user is working.
    """
    monitors = list_monitors()
    if monitor is None:
        try:
            px, py = pointer_position()
            target = _monitor_at(px, py, monitors)
        except CaptureError:
            target = monitors[0]
    elif monitor == 0:
        target = _all_monitors(monitors)
    elif 1 <= monitor <= len(monitors):
        target = monitors[monitor - 1]
    else:
        count = len(monitors)
        raise InputError(
            f"There is no monitor {monitor}; this computer has {count} monitor{'s' if count != 1 else ''}. "
            "Use 0 for all of them."
        )
    return _grab(target.x, target.y, target.width, target.height, "screen")


def capture_region(x: int, y: int, width: int, height: int) -> ImageInput:
    """A rectangle of the screen. A part off the screen is cut away and the note says so."""
    x, y, width, height = int(x), int(y), int(width), int(height)
    if width <= 0 or height <= 0:
        raise InputError("The region has no size. Give it a width and height of at least one pixel.")
    monitors = list_monitors()
    clipped = _clip(x, y, width, height, monitors)
    if clipped is None:
        raise InputError(f"The region {Bounds(x, y, width, height)} is entirely off the screen.")
    note = ""
    if clipped != (x, y, width, height):
        note = (
            f"Part of the region was off the screen, so only the {clipped[2]} by {clipped[3]} part "
            "on the screen was captured."
        )
    return _grab(*clipped, source="region", note=note)


def capture_pointer(
    side: int | None = None, settings: Settings | None = None, whole_words: bool = True
) -> ImageInput:
    """A square around the mouse pointer (side from Settings.pointer_box), kept on its monitor.

    With `whole_words` the box grows to whole words and lines where text crosses its edges
    (see _grow_to_words), so "Quarterly Budget Report" is not read as "terly Budget Rep"."""
    if side is None:
        side = (settings or Settings()).pointer_box
    side = int(side)
    if side <= 0:
        raise InputError("The box around the pointer needs a size of at least one pixel.")
    monitors = list_monitors()
    px, py = pointer_position()
    m = _monitor_at(px, py, monitors)
    w, h = min(side, m.width), min(side, m.height)
    # Centre the box on the pointer, then slide it back onto the monitor near an edge.
    x = min(max(px - w // 2, m.x), m.x + m.width - w)
    y = min(max(py - h // 2, m.y), m.y + m.height - h)
    if not whole_words:
        return _grab(x, y, w, h, "pointer")
    # Grab a margin around the box once, find where words and lines end, and cut that out.
    mx, my = max(w, 32), max(h // 2, 16)
    ox0, oy0 = max(m.x, x - mx), max(m.y, y - my)
    ox1, oy1 = min(m.x + m.width, x + w + mx), min(m.y + m.height, y + h + my)
    outer = _grab(ox0, oy0, ox1 - ox0, oy1 - oy0, "pointer")
    sx = outer.width / (ox1 - ox0)
    sy = outer.height / (oy1 - oy0)
    inner = (
        round((x - ox0) * sx),
        round((y - oy0) * sy),
        round((x + w - ox0) * sx),
        round((y + h - oy0) * sy),
    )
    x0, y0, x1, y1 = _grow_to_words(outer.pixels, inner)
    import numpy as np

    pixels = np.ascontiguousarray(outer.pixels[y0:y1, x0:x1])
    b = outer.bounds
    assert b is not None  # _grab always says where its image lies
    return ImageInput(
        pixels, "pointer", Bounds(b.x + x0, b.y + y0, x1 - x0, y1 - y0), captured_at=outer.captured_at
    )


def _ink(pixels):
    """True where a pixel stands out from the background (the commonest grey level)."""
    import numpy as np

    gray = pixels.astype(np.int16).sum(axis=2) // 3
    counts = np.bincount(gray.ravel() // 8, minlength=32)
    background = int(np.argmax(counts)) * 8 + 4
    return np.abs(gray - background) > 40


def _cuts(inked, edge: int, gap: int) -> bool:
    """Whether an edge between positions edge-1 and edge cuts through something: it does unless it
    lies in a run of at least `gap` empty positions (a space between words or lines)."""
    before = 0
    while before < gap and edge - 1 - before >= 0 and not inked[edge - 1 - before]:
        before += 1
    after = 0
    while after < gap and edge + after < len(inked) and not inked[edge + after]:
        after += 1
    touches = (edge - 1 - before >= 0 and inked[edge - 1 - before]) or (
        edge + after < len(inked) and inked[edge + after]
    )
    return bool(touches) and before + after < gap


def _bands(rows, y0: int, y1: int) -> list[tuple[int, int]]:
    """The runs of inked rows between y0 and y1: the lines of text, as (first, end) pairs."""
    bands, start = [], None
    for y in range(y0, y1):
        if rows[y] and start is None:
            start = y
        elif not rows[y] and start is not None:
            bands.append((start, y))
            start = None
    if start is not None:
        bands.append((start, y1))
    return bands


def _grow_to_words(pixels, inner: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The box `inner` (x0, y0, x1, y1 in `pixels`) grown to whole lines, then whole words.

    An edge that cuts through ink moves outward until it reaches a gap: a few ink-free rows (the
    space between lines) or columns (the space between words, wider than between letters). An edge
    that finds no gap within the grabbed margin stays where it was (a border, a long rule or a
    picture, not a word), and so does the whole box where most of it is "ink" (a photo)."""
    x0, y0, x1, y1 = inner
    ink = _ink(pixels)
    height, width = ink.shape
    if ink.mean() > 0.45:
        return inner
    row_gap = 3

    rows = ink[:, x0:x1].any(axis=1)
    if y0 > 0 and _cuts(rows, y0, row_gap):
        y = y0
        while y > 0 and rows[max(0, y - row_gap) : y].any():
            y -= 1
        y0 = y if y > 0 else y0  # no gap within the margin: a border or a picture, not a line
    if y1 < height and _cuts(rows, y1, row_gap):
        y = y1
        while y < height and rows[y : y + row_gap].any():
            y += 1
        y1 = y if y < height else y1
    # Each line of text on its own: a word cut by an edge ends where that line has a gap, and a
    # space between words is wider than a fifth of the line's height. Widening for one line can
    # cut a word on another, so repeat until no edge cuts a word.
    bands = _bands(rows, y0, y1)
    for _ in range(8):
        left, right = x0, x1
        for a, b in bands:
            cols = ink[a:b].any(axis=0)
            col_gap = max(4, round(0.2 * (b - a)))
            if x0 > 0 and _cuts(cols, x0, col_gap):
                x = x0
                while x > 0 and cols[max(0, x - col_gap) : x].any():
                    x -= 1
                if x > 0:  # no gap within the margin: not a word
                    left = min(left, x)
            if x1 < width and _cuts(cols, x1, col_gap):
                x = x1
                while x < width and cols[x : x + col_gap].any():
                    x += 1
                if x < width:
                    right = max(right, x)
        if (left, right) == (x0, x1):
            break
        x0, x1 = left, right

    # A line at the top or bottom whose word could not be completed within the margin is left
    # out, rather than read cut; the line under the pointer always stays.
    def still_cut(band: tuple[int, int]) -> bool:
        a, b = band
        cols = ink[a:b].any(axis=0)
        gap = max(4, round(0.2 * (b - a)))
        return (x0 > 0 and _cuts(cols, x0, gap)) or (x1 < width and _cuts(cols, x1, gap))

    centre = (inner[1] + inner[3]) // 2
    while len(bands) > 1 and bands[-1][0] > centre and still_cut(bands[-1]):
        dropped = bands.pop()
        y1 = min(bands[-1][1] + row_gap, dropped[0])
    while len(bands) > 1 and bands[0][1] <= centre and still_cut(bands[0]):
        dropped = bands.pop(0)
        y0 = max(bands[0][0] - row_gap, dropped[1])
    return x0, y0, x1, y1


def capture_active_window() -> ImageInput:
    """The window the user is working in, with its frame when the window manager says how big it is."""
    monitors = list_monitors()
    x, y, w, h = _active_window_rect()
    if w <= 0 or h <= 0:
        raise CaptureError("The active window has no size, so there is nothing to capture.")
    clipped = _clip(x, y, w, h, monitors)
    if clipped is None:
        raise CaptureError("The active window is off the screen, so it cannot be captured.")
    note = ""
    if clipped != (x, y, w, h):
        note = "Part of the window is off the screen; only the visible part was captured."
    return _grab(*clipped, source="window", note=note)


def capture(
    mode: str,
    *,
    monitor: int | None = None,
    region: tuple[int, int, int, int] | None = None,
    settings: Settings | None = None,
) -> ImageInput:
    """Capture by mode name: "screen", "window", "region" (needs `region`) or "pointer"."""
    if mode == "screen":
        return capture_screen(monitor)
    if mode == "window":
        return capture_active_window()
    if mode == "region":
        if region is None:
            raise InputError("A region capture needs the region: x, y, width and height.")
        return capture_region(*region)
    if mode == "pointer":
        return capture_pointer(settings=settings)
    raise InputError(f"There is no capture mode called {mode}. Choose one of: {', '.join(MODES)}.")


# --- pointer and active window, per platform ---------------------------------------------------


def pointer_position() -> tuple[int, int]:
    """The mouse pointer, in mss's coordinates."""
    if sys.platform == "win32":
        return _win_pointer()
    if sys.platform == "darwin":
        return _mac_pointer()
    if not os.environ.get("DISPLAY"):
        raise _no_display_error()
    with _X11() as x11:
        return x11.pointer()


def _active_window_rect() -> tuple[int, int, int, int]:
    if sys.platform == "win32":
        return _win_active_window()
    if sys.platform == "darwin":
        return _mac_active_window()
    if not os.environ.get("DISPLAY"):
        raise _no_display_error()
    with _X11() as x11:
        return x11.active_window()


# Windows (untested here): the process is DPI-aware once mss is created, so these are physical pixels.
if sys.platform == "win32":  # ctypes.windll exists only there (and its type stubs say so)

    def _win_pointer() -> tuple[int, int]:
        from ctypes import wintypes

        _mss()
        pt = wintypes.POINT()
        if not ctypes.windll.user32.GetCursorPos(ctypes.byref(pt)):
            raise CaptureError("Sightline cannot find the mouse pointer.")
        return pt.x, pt.y

    def _win_active_window() -> tuple[int, int, int, int]:
        from ctypes import wintypes

        _mss()
        hwnd = ctypes.windll.user32.GetForegroundWindow()
        if not hwnd:
            raise CaptureError("No window is active, so there is no window to capture.")
        rect = wintypes.RECT()
        # DWMWA_EXTENDED_FRAME_BOUNDS (9): the visible frame, without the invisible resize borders.
        if ctypes.windll.dwmapi.DwmGetWindowAttribute(
            wintypes.HWND(hwnd), 9, ctypes.byref(rect), ctypes.sizeof(rect)
        ) != 0 and not ctypes.windll.user32.GetWindowRect(hwnd, ctypes.byref(rect)):
            raise CaptureError("Sightline cannot find where the active window is.")
        return rect.left, rect.top, rect.right - rect.left, rect.bottom - rect.top


# macOS (untested here): coordinates in points, as mss's monitors are.


def _mac_pointer() -> tuple[int, int]:
    class CGPoint(ctypes.Structure):
        _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]

    path = ctypes.util.find_library("ApplicationServices")
    if not path:
        raise CaptureError("Sightline cannot find the mouse pointer on this Mac.")
    quartz = ctypes.cdll.LoadLibrary(path)
    quartz.CGEventCreate.restype = ctypes.c_void_p
    quartz.CGEventCreate.argtypes = [ctypes.c_void_p]
    quartz.CGEventGetLocation.restype = CGPoint
    quartz.CGEventGetLocation.argtypes = [ctypes.c_void_p]
    quartz.CFRelease.argtypes = [ctypes.c_void_p]
    event = quartz.CGEventCreate(None)
    if not event:
        raise CaptureError("Sightline cannot find the mouse pointer on this Mac.")
    try:
        point = quartz.CGEventGetLocation(event)
    finally:
        quartz.CFRelease(event)
    return int(point.x), int(point.y)


def _mac_active_window() -> tuple[int, int, int, int]:
    try:
        import Quartz
    except ImportError as exc:
        raise CaptureError(
            "Capturing the active window on a Mac needs the pyobjc Quartz package. "
            "Capture the whole screen instead, or install pyobjc-framework-Quartz."
        ) from exc
    options = Quartz.kCGWindowListOptionOnScreenOnly | Quartz.kCGWindowListExcludeDesktopElements
    for info in Quartz.CGWindowListCopyWindowInfo(options, Quartz.kCGNullWindowID) or []:
        # The list runs front to back; layer 0 holds ordinary application windows.
        if info.get("kCGWindowLayer", 1) == 0:
            b = info["kCGWindowBounds"]
            return int(b["X"]), int(b["Y"]), int(b["Width"]), int(b["Height"])
    raise CaptureError("No window is active, so there is no window to capture.")


# X11 through ctypes.

_XA_ANY = 0
_IS_VIEWABLE = 2


class _XWindowAttributes(ctypes.Structure):
    _fields_ = [
        ("x", ctypes.c_int),
        ("y", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("border_width", ctypes.c_int),
        ("depth", ctypes.c_int),
        ("visual", ctypes.c_void_p),
        ("root", ctypes.c_ulong),
        ("class_", ctypes.c_int),
        ("bit_gravity", ctypes.c_int),
        ("win_gravity", ctypes.c_int),
        ("backing_store", ctypes.c_int),
        ("backing_planes", ctypes.c_ulong),
        ("backing_pixel", ctypes.c_ulong),
        ("save_under", ctypes.c_int),
        ("colormap", ctypes.c_ulong),
        ("map_installed", ctypes.c_int),
        ("map_state", ctypes.c_int),
        ("all_event_masks", ctypes.c_long),
        ("your_event_mask", ctypes.c_long),
        ("do_not_propagate_mask", ctypes.c_long),
        ("override_redirect", ctypes.c_int),
        ("screen", ctypes.c_void_p),
    ]


_XErrorHandler = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_x_errors: list[int] = []


@_XErrorHandler
def _record_x_error(_display, _event) -> int:
    # Xlib's default handler exits the process on a stale window id; record the error instead.
    _x_errors.append(1)
    return 0


_xlib = None
_x_lock = threading.Lock()


def _load_xlib():
    global _xlib
    if _xlib is not None:
        return _xlib
    path = ctypes.util.find_library("X11") or "libX11.so.6"
    try:
        lib = ctypes.cdll.LoadLibrary(path)
    except OSError as exc:
        raise CaptureError("Sightline cannot find the X11 library to talk to the display.") from exc
    W = ctypes.c_ulong
    P = ctypes.POINTER
    sigs = {
        "XOpenDisplay": ([ctypes.c_char_p], ctypes.c_void_p),
        "XCloseDisplay": ([ctypes.c_void_p], ctypes.c_int),
        "XDefaultRootWindow": ([ctypes.c_void_p], W),
        "XInternAtom": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int], W),
        "XGetWindowProperty": (
            [
                ctypes.c_void_p,
                W,
                W,
                ctypes.c_long,
                ctypes.c_long,
                ctypes.c_int,
                W,
                P(W),
                P(ctypes.c_int),
                P(ctypes.c_ulong),
                P(ctypes.c_ulong),
                P(ctypes.c_void_p),
            ],
            ctypes.c_int,
        ),
        "XGetInputFocus": ([ctypes.c_void_p, P(W), P(ctypes.c_int)], ctypes.c_int),
        "XQueryPointer": (
            [
                ctypes.c_void_p,
                W,
                P(W),
                P(W),
                P(ctypes.c_int),
                P(ctypes.c_int),
                P(ctypes.c_int),
                P(ctypes.c_int),
                P(ctypes.c_uint),
            ],
            ctypes.c_int,
        ),
        "XQueryTree": ([ctypes.c_void_p, W, P(W), P(W), P(ctypes.c_void_p), P(ctypes.c_uint)], ctypes.c_int),
        "XGetWindowAttributes": ([ctypes.c_void_p, W, P(_XWindowAttributes)], ctypes.c_int),
        "XTranslateCoordinates": (
            [ctypes.c_void_p, W, W, ctypes.c_int, ctypes.c_int, P(ctypes.c_int), P(ctypes.c_int), P(W)],
            ctypes.c_int,
        ),
        "XFree": ([ctypes.c_void_p], ctypes.c_int),
        "XSync": ([ctypes.c_void_p, ctypes.c_int], ctypes.c_int),
        "XSetErrorHandler": ([ctypes.c_void_p], ctypes.c_void_p),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res
    _xlib = lib
    return lib


class _X11:
    """One short Xlib connection, with errors recorded instead of ending the process."""

    def __enter__(self) -> _X11:
        self.lib = _load_xlib()
        _x_lock.acquire()
        self.display = self.lib.XOpenDisplay(None)
        if not self.display:
            _x_lock.release()
            raise CaptureError(
                f"Sightline cannot connect to the display {os.environ.get('DISPLAY', '')}.".replace(" .", ".")
            )
        self.root = self.lib.XDefaultRootWindow(self.display)
        self._old_handler = self.lib.XSetErrorHandler(ctypes.cast(_record_x_error, ctypes.c_void_p))
        _x_errors.clear()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.lib.XSync(self.display, 0)
            self.lib.XSetErrorHandler(self._old_handler)
            self.lib.XCloseDisplay(self.display)
        finally:
            _x_lock.release()

    def _failed(self) -> bool:
        self.lib.XSync(self.display, 0)
        failed = bool(_x_errors)
        _x_errors.clear()
        return failed

    def pointer(self) -> tuple[int, int]:
        W = ctypes.c_ulong
        root, child = W(), W()
        rx, ry, wx, wy = ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        mask = ctypes.c_uint()
        args = [ctypes.byref(v) for v in (root, child, rx, ry, wx, wy, mask)]
        if not self.lib.XQueryPointer(self.display, self.root, *args):
            raise CaptureError("The mouse pointer is on another screen, so Sightline cannot find it.")
        return rx.value, ry.value

    def _property_longs(self, window: int, name: bytes, count: int) -> list[int]:
        atom = self.lib.XInternAtom(self.display, name, 1)
        if not atom:
            return []
        W = ctypes.c_ulong
        actual_type, actual_format = W(), ctypes.c_int()
        nitems, after, data = ctypes.c_ulong(), ctypes.c_ulong(), ctypes.c_void_p()
        refs = [ctypes.byref(v) for v in (actual_type, actual_format, nitems, after, data)]
        status = self.lib.XGetWindowProperty(self.display, window, atom, 0, count, 0, _XA_ANY, *refs)
        try:
            failed = self._failed()  # always drain the error list, even when the status says so
            if status != 0 or failed or actual_format.value != 32 or not data.value:
                return []
            # Format-32 properties come back as C longs, whatever the machine's word size.
            arr = ctypes.cast(data, ctypes.POINTER(ctypes.c_ulong))
            return [int(arr[i]) for i in range(min(nitems.value, count))]
        finally:
            if data.value:
                self.lib.XFree(data)

    def _top_level(self, window: int) -> int:
        """Walk up from `window` to the child of the root that contains it."""
        W = ctypes.c_ulong
        for _ in range(64):
            root, parent = W(), W()
            children, n = ctypes.c_void_p(), ctypes.c_uint()
            refs = [ctypes.byref(v) for v in (root, parent, children, n)]
            ok = self.lib.XQueryTree(self.display, window, *refs)
            if children.value:
                self.lib.XFree(children)
            failed = self._failed()
            if not ok or failed:
                return 0
            if parent.value in (0, root.value):
                return window
            window = parent.value
        return window

    def _geometry(self, window: int) -> tuple[int, int, int, int] | None:
        attrs = _XWindowAttributes()
        ok = self.lib.XGetWindowAttributes(self.display, window, ctypes.byref(attrs))
        failed = self._failed()
        if not ok or failed or attrs.map_state != _IS_VIEWABLE:
            return None
        x, y, child = ctypes.c_int(), ctypes.c_int(), ctypes.c_ulong()
        ok = self.lib.XTranslateCoordinates(
            self.display, window, self.root, 0, 0, ctypes.byref(x), ctypes.byref(y), ctypes.byref(child)
        )
        failed = self._failed()
        if not ok or failed:
            return None
        return x.value, y.value, attrs.width, attrs.height

    def active_window(self) -> tuple[int, int, int, int]:
        candidates: list[int] = []
        active = self._property_longs(self.root, b"_NET_ACTIVE_WINDOW", 1)
        if active and active[0]:
            candidates.append(active[0])
        focus, revert = ctypes.c_ulong(), ctypes.c_int()
        self.lib.XGetInputFocus(self.display, ctypes.byref(focus), ctypes.byref(revert))
        failed = self._failed()
        if focus.value > 1 and not failed:  # 0 is None, 1 is PointerRoot: no window
            top = self._top_level(focus.value)
            if top and top != self.root:
                candidates.append(top)
        for window in candidates:
            geometry = self._geometry(window)
            if geometry is None:
                continue  # a stale id left by a window that has gone
            x, y, w, h = geometry
            # Include the frame (title bar, borders) when the window manager publishes its size.
            extents = self._property_longs(window, b"_NET_FRAME_EXTENTS", 4)
            if len(extents) == 4:
                left, right, top, bottom = extents
                x, y, w, h = x - left, y - top, w + left + right, h + top + bottom
            return x, y, w, h
        raise CaptureError("No window is active, so there is no window to capture.")
