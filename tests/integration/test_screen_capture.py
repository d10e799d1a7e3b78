"""Screen capture on the real X display: a Qt window with known content, captured in every mode.

Xvfb has no window manager, so nothing sets _NET_ACTIVE_WINDOW: the active-window test sets it on
the root window itself (as a window manager would) with xprop, and also checks the path without a
window manager, where the window holding the input focus (xdotool windowfocus) is the active one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from app.capture import screen
from app.core.errors import CaptureError, InputError
from app.settings.schema import Settings
from tests.conftest import _stack_missing
from tests.fixtures.screens_layout import PATCHES, WINDOW_SIZE
from tests.fixtures.screens_proc import KnownWindow, start_known_window

RED, GREEN, BLUE = (p for p in PATCHES)


def _require_display() -> None:
    if not os.environ.get("DISPLAY") or shutil.which("xdpyinfo") is None:
        _stack_missing("The X display")
    if subprocess.run(["xdpyinfo"], capture_output=True, timeout=10).returncode != 0:
        _stack_missing(f"The X display {os.environ.get('DISPLAY')}")


@pytest.fixture(scope="module")
def window():
    _require_display()
    win = start_known_window(300, 200)
    yield win
    win.stop()


@pytest.fixture(autouse=True)
def _fresh_capture_state():
    screen.set_fallback_grabber(None)
    screen.set_own_windows(None)
    screen._forget_mss()
    yield
    screen.set_fallback_grabber(None)
    screen.set_own_windows(None)
    screen._forget_mss()


def _close(pixel, rgb, tol=6) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, rgb, strict=True))


def _patch_centre(win: KnownWindow, patch) -> tuple[int, int]:
    return win.phys(patch.x + patch.size / 2, patch.y + patch.size / 2)


def _raise(win: KnownWindow) -> None:
    assert win.command("raise")["ok"]


def _xdotool(*args: str) -> None:
    subprocess.run(["xdotool", *args], check=True, timeout=10, capture_output=True)


def _move_pointer(x: int, y: int) -> None:
    # Not `mousemove --sync`: it waits for a motion event that never comes when the pointer is
    # already there. Wait instead until the server reports the pointer at the target.
    _xdotool("mousemove", str(x), str(y))
    for _ in range(100):
        if screen.pointer_position() == (x, y):
            return
        time.sleep(0.02)
    raise AssertionError(f"the pointer did not reach {x}, {y}")


def _xwininfo(wid: int) -> tuple[int, int, int, int]:
    out = subprocess.run(["xwininfo", "-id", str(wid)], capture_output=True, text=True, timeout=10).stdout
    values = {}
    for line in out.splitlines():
        key, _, value = line.strip().partition(":")
        values[key] = value.strip()
    return (
        int(values["Absolute upper-left X"]),
        int(values["Absolute upper-left Y"]),
        int(values["Width"]),
        int(values["Height"]),
    )


def _set_active(wid: int | None) -> None:
    if wid is None:
        subprocess.run(["xprop", "-root", "-remove", "_NET_ACTIVE_WINDOW"], timeout=10, check=True)
    else:
        subprocess.run(
            ["xprop", "-root", "-f", "_NET_ACTIVE_WINDOW", "32x", "-set", "_NET_ACTIVE_WINDOW", hex(wid)],
            timeout=10,
            check=True,
        )


@pytest.mark.display
def test_monitors_are_listed_in_physical_pixels(window):
    monitors = screen.list_monitors()
    assert len(monitors) >= 1
    first = monitors[0]
    assert (first.index, first.width, first.height) == (1, 1920, 1080)
    assert "1920 by 1080" in str(first)


@pytest.mark.display
def test_full_screen_shows_the_window_content_where_it_is(window):
    _raise(window)
    shot = screen.capture_screen(1)
    assert shot.source == "screen"
    assert (shot.bounds.x, shot.bounds.y, shot.width, shot.height) == (0, 0, 1920, 1080)
    assert not shot.pixels.flags.writeable  # immutable
    for patch in PATCHES:
        cx, cy = _patch_centre(window, patch)
        assert _close(shot.pixels[cy, cx], patch.rgb), (patch.name, shot.pixels[cy, cx])
    # White page between the patches, black title text at its place.
    gx, gy = window.phys(850, 80)
    assert _close(shot.pixels[gy, gx], (255, 255, 255))
    all_screens = screen.capture_screen(0)
    assert (all_screens.width, all_screens.height) == (1920, 1080)


@pytest.mark.display
def test_screen_number_that_does_not_exist_is_a_sentence(window):
    with pytest.raises(InputError, match="There is no monitor 9"):
        screen.capture_screen(9)


@pytest.mark.display
def test_region_bounds_are_exact(window):
    _raise(window)
    x, y = window.phys(RED.x, RED.y)
    shot = screen.capture_region(x, y, 180, 80)
    assert shot.source == "region"
    assert (shot.bounds.x, shot.bounds.y, shot.bounds.width, shot.bounds.height) == (x, y, 180, 80)
    assert shot.note == ""
    px = shot.pixels
    assert (np.abs(px[:, :80].astype(int) - RED.rgb).max()) <= 6  # every pixel of the red patch
    assert (np.abs(px[:, 80:100].astype(int) - 255).max()) <= 6  # the white gap
    assert (np.abs(px[:, 100:].astype(int) - GREEN.rgb).max()) <= 6


@pytest.mark.display
def test_region_partly_off_screen_is_clipped_and_said(window):
    shot = screen.capture_region(1800, 1000, 300, 200)
    assert (shot.bounds.x, shot.bounds.y, shot.width, shot.height) == (1800, 1000, 120, 80)
    assert "off the screen" in shot.note and "120 by 80" in shot.note
    shot = screen.capture_region(-50, -20, 100, 100)
    assert (shot.bounds.x, shot.bounds.y, shot.width, shot.height) == (0, 0, 50, 80)


@pytest.mark.display
def test_empty_or_off_screen_region_is_a_sentence(window):
    with pytest.raises(InputError, match="no size"):
        screen.capture_region(10, 10, 0, 50)
    with pytest.raises(InputError, match="no size"):
        screen.capture_region(10, 10, 50, -5)
    with pytest.raises(InputError, match="entirely off the screen"):
        screen.capture_region(5000, 5000, 100, 100)


@pytest.mark.display
def test_pointer_box_follows_the_mouse(window):
    _raise(window)
    for patch in (RED, GREEN, BLUE):
        cx, cy = _patch_centre(window, patch)
        _move_pointer(cx, cy)
        shot = screen.capture_pointer(settings=Settings(pointer_box=40))
        assert shot.source == "pointer"
        assert (shot.bounds.x, shot.bounds.y, shot.width, shot.height) == (cx - 20, cy - 20, 40, 40)
        assert np.abs(shot.pixels.astype(int) - patch.rgb).max() <= 6, patch.name


@pytest.mark.display
def test_pointer_box_is_clamped_to_the_screen(window):
    _move_pointer(3, 1077)
    shot = screen.capture_pointer(side=400)
    assert (shot.bounds.x, shot.bounds.y, shot.width, shot.height) == (0, 680, 400, 400)
    shot = screen.capture_pointer(side=5000)  # bigger than the screen: the whole screen
    assert (shot.bounds.x, shot.bounds.y, shot.width, shot.height) == (0, 0, 1920, 1080)


@pytest.mark.display
def test_active_window_matches_the_window_geometry(window):
    _raise(window)
    geometry = _xwininfo(window.wid)
    assert geometry == (window.x, window.y, window.width, window.height)
    try:
        # With a window manager: _NET_ACTIVE_WINDOW on the root names the active window.
        _set_active(window.wid)
        shot = screen.capture_active_window()
        assert shot.source == "window"
        assert (shot.bounds.x, shot.bounds.y, shot.width, shot.height) == geometry
        cx, cy = RED.x + RED.size // 2, RED.y + RED.size // 2
        assert _close(shot.pixels[cy, cx], RED.rgb)
        # A stale id (the window manager has not caught up) falls through to the focus.
        _set_active(0x7FFFFFF)
        _xdotool("windowfocus", "--sync", str(window.wid))
        assert screen.capture_active_window().bounds == shot.bounds
    finally:
        _set_active(None)
    # Without a window manager: the window holding the input focus.
    _xdotool("windowfocus", "--sync", str(window.wid))
    shot = screen.capture_active_window()
    assert (shot.bounds.x, shot.bounds.y, shot.width, shot.height) == geometry


@pytest.mark.display
def test_qt_grab_gives_the_same_pixels_as_mss(window, tmp_path):
    _raise(window)
    rect = (window.x + 20, window.y + 20, 900, 560)
    expected = screen.capture_region(*rect).pixels
    for command in ("grab", "grab-thread"):
        out = tmp_path / f"{command}.npy"
        reply = window.command(f"{command} {' '.join(map(str, rect))} {out}")
        assert reply["ok"], reply
        got = np.load(out)
        assert got.shape == expected.shape
        assert np.array_equal(got, expected), command


@pytest.mark.display
def test_hidpi_window_is_captured_in_physical_pixels(window):
    hidpi = start_known_window(20, 20, {"QT_SCALE_FACTOR": "1.5"})
    try:
        assert hidpi.dpr == 1.5
        assert (hidpi.width, hidpi.height) == (round(WINDOW_SIZE[0] * 1.5), round(WINDOW_SIZE[1] * 1.5))
        _raise(hidpi)
        assert _xwininfo(hidpi.wid) == (hidpi.x, hidpi.y, hidpi.width, hidpi.height)
        try:
            _set_active(hidpi.wid)
            shot = screen.capture_active_window()
        finally:
            _set_active(None)
        assert (shot.bounds.x, shot.bounds.y, shot.width, shot.height) == (
            hidpi.x,
            hidpi.y,
            hidpi.width,
            hidpi.height,
        )
        for patch in PATCHES:
            lx, ly = patch.x + patch.size / 2, patch.y + patch.size / 2
            assert _close(shot.pixels[round(ly * 1.5), round(lx * 1.5)], patch.rgb), patch.name
    finally:
        hidpi.stop()


@pytest.mark.display
def test_xwayland_blank_capture_says_what_to_do(window, monkeypatch):
    # Under Wayland, an X client sees a uniform (black) root: a blank grab there means "nothing".
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    _raise(window)
    x, y = window.phys(300, 500)  # an empty white part of the window
    with pytest.raises(CaptureError) as err:
        screen.capture_region(x, y, 100, 30)
    assert "Wayland" in err.value.sentence and "X11 session" in err.value.sentence


def test_no_display_is_a_sentence(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    with pytest.raises(CaptureError, match="no graphical display"):
        screen.capture_screen()
    with pytest.raises(CaptureError, match="no graphical display"):
        screen.list_monitors()


def test_wayland_without_x_says_what_to_do(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    with pytest.raises(CaptureError) as err:
        screen.capture_active_window()
    assert err.value.sentence == screen.WAYLAND_SENTENCE


def test_fallback_grabber_answers_when_mss_cannot(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    monkeypatch.setattr(
        screen, "list_monitors", lambda: [screen.MonitorInfo(1, 0, 0, 800, 600, True, "fake")]
    )
    calls = []

    def grabber(x, y, w, h):
        calls.append((x, y, w, h))
        return np.full((h, w, 3), 77, np.uint8)

    screen.set_fallback_grabber(grabber)
    shot = screen.capture_region(700, 500, 200, 200)
    assert calls == [(700, 500, 100, 100)]
    assert shot.pixels.shape == (100, 100, 3) and int(shot.pixels[0, 0, 0]) == 77
    assert "off the screen" in shot.note


def test_multi_monitor_layout(monkeypatch):
    # Two monitors side by side, the second taller and lower: the pointer's monitor bounds the box,
    # a region across the gap is clipped to what lies on some monitor, 0 means all of them.
    monitors = [
        screen.MonitorInfo(1, 0, 0, 1920, 1080, True, "left"),
        screen.MonitorInfo(2, 1920, -200, 2560, 1440, False, "right"),
    ]
    grabs = []

    def fake_grab(x, y, w, h, source, note=""):
        grabs.append((x, y, w, h, source, note))
        from app.core.types import Bounds, ImageInput

        return ImageInput(np.zeros((h, w, 3), np.uint8), source, Bounds(x, y, w, h), note=note)

    monkeypatch.setattr(screen, "list_monitors", lambda: monitors)
    monkeypatch.setattr(screen, "_grab", fake_grab)
    monkeypatch.setattr(screen, "pointer_position", lambda: (4470, 1230))  # bottom-right of monitor 2
    shot = screen.capture_pointer(side=400)
    assert (shot.bounds.x, shot.bounds.y, shot.width, shot.height) == (4080, 840, 400, 400)
    shot = screen.capture_screen()  # the monitor under the pointer
    assert (shot.bounds.x, shot.bounds.y, shot.width, shot.height) == (1920, -200, 2560, 1440)
    shot = screen.capture_screen(0)
    assert (shot.bounds.x, shot.bounds.y, shot.width, shot.height) == (0, -200, 4480, 1440)
    shot = screen.capture_region(1800, -300, 300, 400)  # straddles both, partly above monitor 2
    assert (shot.bounds.x, shot.bounds.y, shot.width, shot.height) == (1800, -200, 300, 300)
    assert "off the screen" in shot.note


@pytest.mark.display
def test_sightline_windows_are_painted_over_in_every_mode(window):
    """Sightline's own windows (here: pretend the green patch is one) never reach a capture."""
    _raise(window)
    gx, gy = window.phys(GREEN.x, GREEN.y)
    screen.set_own_windows(lambda: [(gx, gy, GREEN.size, GREEN.size)])
    rx, ry = window.phys(RED.x, RED.y)
    shots = [
        screen.capture_region(rx, ry, 180, 80),
        screen.capture_screen(),
    ]
    _move_pointer(gx + GREEN.size // 2, gy + GREEN.size // 2)
    shots.append(screen.capture_pointer(300))
    for shot in shots:
        b = shot.bounds
        own = shot.pixels[gy - b.y : gy - b.y + GREEN.size, gx - b.x : gx - b.x + GREEN.size]
        assert (own == screen.OWN_WINDOW_FILL).all(), shot.source
        assert not _close(own[0, 0], GREEN.rgb)
    region = shots[0].pixels
    assert (np.abs(region[:, :80].astype(int) - RED.rgb).max()) <= 6  # the rest is untouched

    # A capture of nothing but Sightline's own window is refused with a sentence.
    with pytest.raises(CaptureError, match="only Sightline's own window"):
        screen.capture_region(gx + 10, gy + 10, 40, 40)


@pytest.mark.display
def test_pointer_box_grows_to_whole_words_and_lines(window):
    """A box that cuts "First line of large text" mid-word is widened to the word gaps and read
    whole; without the growth the same box reads cut words."""
    from app.core.cancel import CancelToken
    from app.inference.ocr import OcrBackend
    from tests.fixtures.screens_layout import LINES, TITLE

    _raise(window)
    px, py = window.phys(40 + 150, 120 + 25)  # inside the first line, near the middle of "large"
    _move_pointer(px, py)
    cut = screen.capture_pointer(side=160, whole_words=False)
    grown = screen.capture_pointer(side=160)
    b, c = grown.bounds, cut.bounds
    assert b.x < c.x and b.x + b.width > c.x + c.width  # wider on both sides
    assert b.y <= py < b.y + b.height  # the line under the pointer is in it

    ocr = OcrBackend()
    ocr.load(CancelToken())
    words = {w.lower() for line in (TITLE, *LINES) for w in line.split()}

    def read(shot) -> list[str]:
        return [w.lower() for line in ocr.recognise(shot.pixels) for w in line.text.split()]

    read_grown = read(grown)
    assert "first" in read_grown and "large" in read_grown, read_grown
    assert [w for w in read_grown if w not in words] == []  # no fragments such as "irst"
    read_cut = read(cut)
    assert any(w not in words for w in read_cut), read_cut  # the plain box does cut words
