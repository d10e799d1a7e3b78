"""One good still picture from a camera, a video file or a stream -> ImageInput(source="camera").

`capture()` opens the source, throws away the first frames while auto-exposure and focus settle,
keeps the sharpest frame of a short burst (variance of the Laplacian), and releases the device
before it returns, whatever happens. What a user should fix is said in words in `ImageInput.note`:
too dark, too bright, blurred, the lens covered, and in document mode which edge of the page is cut
off ("The right edge of the page is cut off. Move the page left.").

Directions assume the camera looks away from the user (a phone, a document camera, a webcam turned
to the desk), so the picture's left is the user's left; pass `mirrored=True` for a camera that
faces the user.

OpenCV is imported inside the functions that need it, never at module level.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.errors import DeviceError
from app.core.types import ImageInput

if TYPE_CHECKING:
    import numpy as np

    from app.core.cancel import CancelToken

log = logging.getLogger(__name__)

NO_CAMERA = "No camera was found. Plug one in, or check that it is switched on."
BUSY = "The camera is busy. Another program may be using it."
GONE = "The camera stopped sending pictures. It may have been unplugged."

# Quality thresholds, measured on a grey image scaled to ANALYSIS_WIDTH pixels wide.
ANALYSIS_WIDTH = 640
DARK_MEAN = 45.0  # mean brightness (0..255) below which the picture is too dark
# Washed out: this share of the picture at full white. (A mean would call a white page held close
# "too bright".)
BRIGHT_CLIPPED_SHARE = 0.4
FLAT_STD = 6.0  # contrast below which the picture shows almost nothing (lens covered)
# Variance of the Laplacian below which the picture is blurred. A Gaussian blur of 1.5 pixels
# at 640 wide brings a busy scene from about 1500 down to about 45; camera noise keeps real
# in-focus pictures well above this.
BLUR_VARIANCE = 50.0

DEFAULT_WARMUP_FRAMES = 10
DEFAULT_BURST_FRAMES = 5


@dataclass(frozen=True)
class CameraInfo:
    index: int
    name: str
    path: str = ""  # /dev/videoN on Linux

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class PageCheck:
    found: bool
    cut_edges: tuple[str, ...] = ()  # "left", "right", "top", "bottom" of the picture
    area_fraction: float = 0.0
    advice: str = ""


@dataclass(frozen=True)
class FrameQuality:
    brightness: float  # mean grey level, 0..255
    contrast: float  # standard deviation of the grey levels
    sharpness: float  # variance of the Laplacian at ANALYSIS_WIDTH
    advice: tuple[str, ...] = ()
    page: PageCheck | None = None

    @property
    def note(self) -> str:
        return " ".join(self.advice)


@dataclass(frozen=True)
class CameraSource:
    kind: str  # "index", "device", "file" or "stream"
    value: int | str
    label: str = field(default="")


# -- listing ------------------------------------------------------------------------------------


def _linux_cameras() -> list[CameraInfo]:
    found = []
    for path in sorted(glob.glob("/dev/video*"), key=lambda p: int(re.sub(r"\D", "", p) or 0)):
        m = re.fullmatch(r"/dev/video(\d+)", path)
        if not m:
            continue
        n = int(m.group(1))
        sysfs = Path("/sys/class/video4linux") / f"video{n}"
        # A webcam often has a second node for metadata; only node index 0 captures pictures.
        try:
            if (sysfs / "index").read_text().strip() not in ("", "0"):
                continue
        except OSError:
            pass
        try:
            name = (sysfs / "name").read_text().strip() or f"Camera {n}"
        except OSError:
            name = f"Camera {n}"
        found.append(CameraInfo(index=n, name=name, path=path))
    return found


def list_cameras(probe: int = 4) -> list[CameraInfo]:
    """The cameras on this machine (may be empty).

    On Linux this reads /dev/video* and sysfs, opening nothing. Elsewhere it opens indices
    0..probe-1 once each, which takes a moment; call it from a worker, not the GUI thread.
    """
    if sys.platform.startswith("linux"):
        return _linux_cameras()
    import cv2

    found = []
    for i in range(probe):
        cap = cv2.VideoCapture(i)
        try:
            if cap.isOpened():
                found.append(CameraInfo(index=i, name=f"Camera {i}"))
        finally:
            cap.release()
    return found


# -- sources ------------------------------------------------------------------------------------


def parse_source(spec: int | str) -> CameraSource:
    """A setting or argument -> what to open: 0 / "0" index, /dev/video2, a URL, or a video file."""
    if isinstance(spec, int):
        return CameraSource("index", spec, f"camera {spec}")
    text = str(spec).strip()
    if not text:
        return CameraSource("index", 0, "camera 0")
    if text.isdigit():
        return CameraSource("index", int(text), f"camera {text}")
    if "://" in text:
        host = re.sub(r"^[a-z0-9+.-]+://(?:[^@/]*@)?", "", text, flags=re.I).split("/")[0]
        return CameraSource("stream", text, host or text)
    if text.startswith("/dev/video"):
        return CameraSource("device", text, text)
    return CameraSource("file", os.path.expanduser(text), Path(text).name)


def _open(cv2, source: CameraSource):
    """Open a source or raise DeviceError with the user's sentence."""
    if source.kind == "file":
        p = Path(str(source.value))
        if not p.is_file():
            raise DeviceError(f"I could not find the video file {source.label}.", detail=str(p))
        cap = cv2.VideoCapture(str(p))
        if not cap.isOpened():
            cap.release()
            raise DeviceError(
                f"I could not open the video file {source.label}. It may be damaged.", detail=str(p)
            )
        return cap
    if source.kind == "stream":
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 8000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
        cap = cv2.VideoCapture(str(source.value), cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise DeviceError(
                f"I could not connect to the camera stream at {source.label}.", detail=str(source.value)
            )
        return cap
    # A camera device, by index or by path.
    on_linux = sys.platform.startswith("linux")
    if on_linux:
        path = source.value if source.kind == "device" else f"/dev/video{source.value}"
        if not os.path.exists(str(path)):
            if not _linux_cameras():
                raise DeviceError(NO_CAMERA, detail=f"{path} does not exist; no /dev/video*")
            raise DeviceError(
                f"There is no {source.label}. Choose another camera in Settings.", detail=f"{path} missing"
            )
        if not os.access(str(path), os.R_OK | os.W_OK):
            raise DeviceError(
                "I am not allowed to use the camera. Ask for your account to be added to the video group.",
                detail=f"no access to {path}",
            )
    api = cv2.CAP_V4L2 if on_linux else cv2.CAP_ANY
    cap = cv2.VideoCapture(source.value, api)
    if not cap.isOpened():
        cap.release()
        if on_linux:  # the node exists, so something else holds it
            raise DeviceError(BUSY, detail=f"{source.value} exists but did not open")
        raise DeviceError(NO_CAMERA, detail=f"camera {source.value} did not open")
    return cap


def _to_rgb(cv2, frame) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


# -- quality ------------------------------------------------------------------------------------


def _analysis_grey(pixels: np.ndarray):
    import cv2

    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    if w != ANALYSIS_WIDTH:
        scale = ANALYSIS_WIDTH / w
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        grey = cv2.resize(grey, (ANALYSIS_WIDTH, max(1, round(h * scale))), interpolation=interp)
    return grey


def sharpness(pixels: np.ndarray) -> float:
    """Variance of the Laplacian of the grey picture at ANALYSIS_WIDTH: higher is sharper."""
    import cv2

    return float(cv2.Laplacian(_analysis_grey(pixels), cv2.CV_64F).var())


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def check_page(pixels: np.ndarray, *, mirrored: bool = False) -> PageCheck:
    """Find the page (the largest bright region) and say which edge of it the picture cuts off."""
    import cv2
    import numpy as np

    grey = _analysis_grey(pixels)
    h, w = grey.shape
    smooth = cv2.GaussianBlur(grey, (5, 5), 0)
    _, mask = cv2.threshold(smooth, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # Close the gaps that lines of print leave, so the page is one region.
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return PageCheck(False, advice="I cannot see a page. Put it on a dark surface, in good light.")
    page = max(contours, key=cv2.contourArea)
    area = cv2.contourArea(page) / float(w * h)
    # The page must be brighter than what is around it, else Otsu split something else.
    inside = float(np.mean(grey[mask > 0])) if np.any(mask > 0) else 0.0
    outside = float(np.mean(grey[mask == 0])) if np.any(mask == 0) else 0.0
    # A page is one solid, roughly four-sided region: not a scatter of light objects.
    hull = cv2.contourArea(cv2.convexHull(page))
    solidity = cv2.contourArea(page) / hull if hull > 0 else 0.0
    # Paper under a camera's auto-exposure is among the brightest things in view.
    paper = float(np.median(grey[mask > 0])) if np.any(mask > 0) else 0.0
    if area < 0.03 or solidity < 0.85 or paper < 140 or (area < 0.97 and inside - outside < 40):
        return PageCheck(
            False, area_fraction=area, advice="I cannot see a page. Put it on a dark surface, in good light."
        )
    x, y, bw, bh = cv2.boundingRect(page)
    mx, my = max(2, round(w * 0.01)), max(2, round(h * 0.01))
    at_edge = {"left": x <= mx, "right": x + bw >= w - mx, "top": y <= my, "bottom": y + bh >= h - my}
    cut = [edge for edge, touches in at_edge.items() if touches]
    if ("left" in cut and "right" in cut) or ("top" in cut and "bottom" in cut):
        return PageCheck(
            True, tuple(cut), area, "The page does not fit in the picture. Hold it further away."
        )
    if cut:
        away = {"left": "right", "right": "left", "top": "down", "bottom": "up"}
        said = list(cut)
        if mirrored:  # the user's left is the picture's right
            swap = {"left": "right", "right": "left"}
            said = sorted((swap.get(e, e) for e in cut), key=["left", "right", "top", "bottom"].index)
        edges = _join(said)
        verb = "is" if len(said) == 1 else "are"
        noun = "edge" if len(said) == 1 else "edges"
        moves = _join([away[e] for e in said])
        return PageCheck(
            True, tuple(cut), area, f"The {edges} {noun} of the page {verb} cut off. Move the page {moves}."
        )
    if area < 0.15:
        return PageCheck(True, (), area, "The page is small in the picture. Bring it closer.")
    return PageCheck(True, (), area, "")


def assess_frame(pixels: np.ndarray, *, document: bool = False, mirrored: bool = False) -> FrameQuality:
    """Brightness, contrast and sharpness of an RGB picture, and the advice they call for."""
    import cv2

    grey = _analysis_grey(pixels)
    brightness = float(grey.mean())
    contrast = float(grey.std())
    sharp = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    advice: list[str] = []
    page = None
    clipped = float((grey >= 250).mean())
    if brightness < DARK_MEAN:
        if contrast < 3 and brightness < 8:
            advice.append("The picture is black. The lens may be covered.")
        else:
            advice.append("The picture is too dark. Turn on a light or move somewhere brighter.")
    elif clipped > BRIGHT_CLIPPED_SHARE:
        advice.append("The picture is too bright. Move away from the light or the window.")
    elif contrast < FLAT_STD:
        advice.append("The picture shows almost nothing. The lens may be covered or dirty.")
    elif sharp < BLUR_VARIANCE:
        advice.append("The picture is blurred. Hold the camera still, or move it a little further away.")
    if document and not advice:
        page = check_page(pixels, mirrored=mirrored)
        if page.advice:
            advice.append(page.advice)
    return FrameQuality(brightness, contrast, sharp, tuple(advice), page)


# -- capture ------------------------------------------------------------------------------------


def capture(
    source: int | str = 0,
    *,
    document: bool = False,
    mirrored: bool = False,
    warmup_frames: int = DEFAULT_WARMUP_FRAMES,
    burst_frames: int = DEFAULT_BURST_FRAMES,
    cancel: CancelToken | None = None,
) -> ImageInput:
    """Take one picture: skip `warmup_frames`, keep the sharpest of `burst_frames`.

    The returned ImageInput's `note` holds the advice (empty when the picture is fine).
    Raises DeviceError for no camera, a busy camera, and one that stops sending frames.
    """
    import cv2

    if burst_frames < 1 or warmup_frames < 0:
        raise ValueError("burst_frames must be >= 1 and warmup_frames >= 0")
    src = parse_source(source)
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass
    cap = _open(cv2, src)
    best = None
    best_score = -1.0
    got = 0
    try:
        for i in range(warmup_frames + burst_frames):
            if cancel is not None:
                cancel.raise_if_cancelled()
            ok, frame = cap.read()
            if not ok or frame is None or frame.size == 0:
                if got == 0:
                    if src.kind == "file":
                        raise DeviceError(
                            f"I could not read any picture from the video file {src.label}.",
                            detail="first read failed",
                        )
                    if src.kind == "stream":
                        raise DeviceError(
                            f"The camera stream at {src.label} sent no picture.", detail="first read failed"
                        )
                    raise DeviceError(BUSY, detail="opened, but the first read failed")
                raise DeviceError(GONE, detail=f"reads stopped after {got} frames")
            got += 1
            if i < warmup_frames:
                continue
            score = sharpness(_to_rgb(cv2, frame))
            if score > best_score:
                best, best_score = frame, score
    finally:
        cap.release()
    pixels = _to_rgb(cv2, best)
    quality = assess_frame(pixels, document=document, mirrored=mirrored)
    log.info(
        "camera %s: brightness %.0f, sharpness %.0f, advice %r",
        src.kind,
        quality.brightness,
        quality.sharpness,
        quality.note,
    )
    return ImageInput(pixels=pixels, source="camera", note=quality.note)
