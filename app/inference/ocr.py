"""The embedded default: on-device text recognition (rapidocr 3.x with its bundled ONNX models).

It reads the text of a screen or photo in reading order, block by block, and says plainly that a
real description needs the Phi-4 model. Nothing leaves the machine and nothing is downloaded: the
engine is given the model files shipped inside the rapidocr wheel by path.

Reading order: the recognised lines are grouped into blocks (a paragraph, a column, a toolbar
row), then the blocks are ordered by recursive cuts through the whitespace between them (rows top to
bottom, columns left to right), so a two-column page is read one column after the other instead
of line by line across both.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.cancel import CancelToken
from app.core.errors import BackendUnavailableError, InputError
from app.core.types import JobRequest, Task, Usage
from app.inference.base import BackendCheck, Capabilities, ModelBackend
from app.settings.schema import Settings

if TYPE_CHECKING:
    from rapidocr import RapidOCR

# Images larger than this on their long side are shrunk before recognition: a 4K screen takes
# about three times as long at full size and its UI text is drawn large enough to survive it.
MAX_SIDE = 2000
# Text is found on a copy at most this long on its long side, then read from the full image: on a
# 1080p screen that halves the time (1.4 s to 0.8 s here) with no loss down to 12 px text
# (bench/ocr.py and the comparison in the commit that set it).
DETECT_SIDE = 1280

MODEL_HINT = (
    "This is only the text I can read; a real description needs the Phi-4 model, "
    "which you can get with the command sightline model download."
)
QUESTION_LEAD = "I can only read text, so I cannot answer your question. Here is the text I can see."
QUESTION_HINT = "To get answers to questions, get the Phi-4 model with the command sightline model download."
NO_TEXT = "I found no text in this image."
NO_TEXT_DESCRIBE = (
    "I found no text in this image, and describing it needs the Phi-4 model, "
    "which you can get with the command sightline model download."
)

LIGHT_EDITION_WAY = "which comes with Sightline Local AI"
CHECKOUT_WAY = "which you can get with the command sightline model download"


def _hint(text: str) -> str:
    """The hint as it applies here: a packaged Light edition has no local AI runtime to download
    the model into, so it points to the Local AI edition instead."""
    import importlib.util
    import sys

    if getattr(sys, "frozen", False) and importlib.util.find_spec("torch") is None:
        return text.replace(CHECKOUT_WAY, LIGHT_EDITION_WAY).replace(
            "get the Phi-4 model with the command sightline model download", "install Sightline Local AI"
        )
    return text


# Tasks where the text alone is the whole answer: no hint after it. A blind user who asked for the
# text hears every word of the answer; the same advice after every read is noise they must sit
# through or interrupt, and it would also be repeated into a document they copy.
_TEXT_IS_THE_ANSWER = {Task.READ_TEXT, Task.CAMERA_DOCUMENT}


@dataclass(frozen=True)
class Word:
    """One recognised word of a line, as an axis-aligned box in image pixels."""

    x0: float
    y0: float
    x1: float
    y1: float
    text: str


@dataclass(frozen=True)
class TextLine:
    """One recognised line, as an axis-aligned box in image pixels.

    `words` holds the line's words with their own boxes when they were asked for
    (recognise(..., words=True)); otherwise it is empty and split_words() estimates them.
    """

    x0: float
    y0: float
    x1: float
    y1: float
    text: str
    score: float = 1.0
    words: tuple[Word, ...] = ()

    @property
    def height(self) -> float:
        return max(1.0, self.y1 - self.y0)

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2


def _model_files() -> dict[str, Path] | None:
    """The ONNX files bundled in the rapidocr wheel, found without importing it (fast)."""
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or not spec.origin:
        return None
    models = Path(spec.origin).parent / "models"
    found: dict[str, Path] = {}
    for kind in ("det", "rec", "cls"):
        matches = sorted(models.glob(f"*{kind}*.onnx"))
        if not matches:
            return None
        found[kind] = matches[-1]
    return found


# --- layout -----------------------------------------------------------------------------------


def _same_row(a: TextLine, b: TextLine) -> bool:
    overlap = min(a.y1, b.y1) - max(a.y0, b.y0)
    return overlap >= 0.5 * min(a.height, b.height)


def _belongs_together(a: TextLine, b: TextLine) -> bool:
    """Are two lines part of one block (one line split in two, or consecutive lines of a paragraph)?"""
    h = min(a.height, b.height)
    if max(a.height, b.height) > 1.6 * h:  # a heading and body text are separate blocks
        return False
    if _same_row(a, b):
        gap = max(a.x0, b.x0) - min(a.x1, b.x1)
        return gap <= 1.0 * h
    top, bottom = (a, b) if a.y0 <= b.y0 else (b, a)
    vgap = bottom.y0 - top.y1
    if vgap > 0.9 * h:
        return False
    x_overlap = min(a.x1, b.x1) - max(a.x0, b.x0)
    aligned_left = abs(a.x0 - b.x0) <= 1.5 * h
    return x_overlap > 0 and (aligned_left or x_overlap >= 0.5 * min(a.x1 - a.x0, b.x1 - b.x0))


def _order_lines(lines: list[TextLine]) -> list[list[TextLine]]:
    """Lines of one block as rows (top to bottom), each row left to right."""
    rows: list[list[TextLine]] = []
    for line in sorted(lines, key=lambda ln: ln.cy):
        if rows and _same_row(rows[-1][-1], line):
            rows[-1].append(line)
        else:
            rows.append([line])
    return [sorted(row, key=lambda ln: ln.x0) for row in rows]


def _rect(block: list[TextLine]) -> tuple[float, float, float, float]:
    return (
        min(ln.x0 for ln in block),
        min(ln.y0 for ln in block),
        max(ln.x1 for ln in block),
        max(ln.y1 for ln in block),
    )


def _split(blocks: list[list[TextLine]], axis: int) -> tuple[list[list[list[TextLine]]], float]:
    """Split blocks by empty bands along `axis` (1: horizontal bands, rows; 0: vertical, columns).

    Returns the groups in order and the widest gap found (0 when no cut is possible).
    """
    lo, hi = (1, 3) if axis == 1 else (0, 2)
    items = sorted(blocks, key=lambda b: _rect(b)[lo])
    groups: list[list[list[TextLine]]] = [[items[0]]]
    reach = _rect(items[0])[hi]
    widest = 0.0
    for block in items[1:]:
        r = _rect(block)
        if r[lo] > reach:
            widest = max(widest, r[lo] - reach)
            groups.append([block])
        else:
            groups[-1].append(block)
        reach = max(reach, r[hi])
    return groups, widest


def _xy_cut(blocks: list[list[TextLine]]) -> list[list[TextLine]]:
    if len(blocks) <= 1:
        return blocks
    rows, row_gap = _split(blocks, axis=1)
    cols, col_gap = _split(blocks, axis=0)
    if len(rows) == 1 and len(cols) == 1:  # overlapping layout: plain top-to-bottom, left-to-right
        return sorted(blocks, key=lambda b: (_rect(b)[1], _rect(b)[0]))
    # Cut through the wider whitespace first: a column gutter usually beats a paragraph break,
    # so two columns whose paragraphs happen to line up are still read column by column.
    groups = cols if col_gap > row_gap else rows
    ordered: list[list[TextLine]] = []
    for group in groups:
        ordered.extend(_xy_cut(group))
    return ordered


def split_words(line: TextLine) -> tuple[Word, ...]:
    """The line's words with boxes: the engine's own when it gave them, else an estimate that shares
    the line's width out by character count (good enough to point at a word of a button or a menu)."""
    if line.words:
        return line.words
    text = line.text.strip()
    if not text:
        return ()
    width = line.x1 - line.x0
    per_char = width / max(1, len(text))
    words = []
    start = 0
    for part in text.split():
        at = text.index(part, start)
        start = at + len(part)
        x0 = line.x0 + at * per_char
        words.append(Word(x0, line.y0, x0 + len(part) * per_char, line.y1, part))
    return tuple(words)


def layout(lines: Sequence[TextLine]) -> list[list[list[TextLine]]]:
    """The recognised lines as blocks in reading order; each block is its rows top to bottom, each
    row the lines on it left to right (a row of one block usually holds one line)."""
    lines = [ln for ln in lines if ln.text.strip()]
    if not lines:
        return []
    # Union-find over "belongs together" pairs: a block is a connected group of lines.
    parent = list(range(len(lines)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(lines)):
        for j in range(i + 1, len(lines)):
            if _belongs_together(lines[i], lines[j]):
                parent[find(i)] = find(j)
    groups: dict[int, list[TextLine]] = {}
    for i, line in enumerate(lines):
        groups.setdefault(find(i), []).append(line)
    return [_order_lines(block) for block in _xy_cut(list(groups.values()))]


def reading_order(lines: Sequence[TextLine]) -> list[list[str]]:
    """Group lines into blocks and return each block's text lines in reading order."""
    return [[" ".join(ln.text.strip() for ln in row) for row in block] for block in layout(lines)]


def _attach_words(lines: list[TextLine], word_results, scale: float) -> list[TextLine]:
    """Give each line the engine's word boxes that lie inside it.

    The engine drops lines without word boxes from its word list, so the two lists need not line
    up by index: each word goes to the line whose box holds the word's centre.
    """
    import numpy as np

    found: list[list[Word]] = [[] for _ in lines]
    for group in word_results:
        for item in group or ():
            try:
                text, _score, box = item
            except (TypeError, ValueError):
                continue
            if box is None or not str(text).strip():
                continue
            pts = np.asarray(box, dtype=float) / scale
            x0, y0, x1, y1 = pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            for i, ln in enumerate(lines):
                if ln.x0 - 2 <= cx <= ln.x1 + 2 and ln.y0 - 2 <= cy <= ln.y1 + 2:
                    found[i].append(Word(float(x0), float(y0), float(x1), float(y1), str(text).strip()))
                    break
    out = []
    for ln, ws in zip(lines, found, strict=True):
        ws.sort(key=lambda w: w.x0)
        # Keep the engine's words only when they spell the whole line; else estimate them.
        if ws and "".join(w.text for w in ws).replace(" ", "") == ln.text.replace(" ", ""):
            out.append(replace(ln, words=tuple(ws)))
        else:
            out.append(ln)
    return out


# --- backend ----------------------------------------------------------------------------------


class OcrBackend(ModelBackend):
    name = "ocr"
    display_name = "on-device text recognition"
    capabilities = Capabilities(images=True, audio=False, streaming=True, local=True)

    def __init__(self, settings: Settings | None = None):
        super().__init__()
        self.settings = settings or Settings()
        self._engine: RapidOCR | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> OcrBackend:
        return cls(settings)

    @property
    def model_id(self) -> str:
        return "rapidocr"

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def check(self) -> BackendCheck:
        if importlib.util.find_spec("onnxruntime") is None:
            return BackendCheck(False, "text recognition needs onnxruntime, which is not installed")
        if _model_files() is None:
            return BackendCheck(False, "text recognition or its bundled models are not installed")
        return BackendCheck(True)

    def supports(self, request: JobRequest) -> BackendCheck:
        if request.audio is not None:
            return BackendCheck(
                False, "on-device text recognition cannot listen to audio; that needs the Phi-4 model"
            )
        if request.image is None:
            return BackendCheck(
                False, "on-device text recognition can only read images; questions need the Phi-4 model"
            )
        return BackendCheck(True)

    def load(self, cancel: CancelToken) -> None:
        self._loaded_engine(cancel)

    def _loaded_engine(self, cancel: CancelToken) -> RapidOCR:
        """The engine, loaded now if it is not yet: the caller keeps it, so an unload on another
        thread (a backend switch, quitting) never leaves it calling None."""
        with self._lock:
            if self._engine is not None:
                return self._engine
            files = _model_files()
            if files is None:
                raise BackendUnavailableError(
                    "Text recognition is not installed. Reinstall Sightline to get it back."
                )
            cancel.raise_if_cancelled()
            try:
                from rapidocr import RapidOCR

                engine = RapidOCR(
                    params={
                        "Global.log_level": "error",
                        # Never upscale for detection (the engine's default scales the short side
                        # up to 736 px, which loses the words of thin strips such as a toolbar);
                        # bound the long side instead (DETECT_SIDE).
                        "Det.limit_type": "max",
                        "Det.limit_side_len": DETECT_SIDE,
                        "Det.model_path": str(files["det"]),
                        "Rec.model_path": str(files["rec"]),
                        "Cls.model_path": str(files["cls"]),
                    }
                )
                # The engine loads its three models lazily; load them now, not on the user's first
                # request. A blank image through each stage is enough.
                import numpy as np

                blank = np.full((48, 160, 3), 255, np.uint8)
                engine(blank, use_det=True, use_cls=False, use_rec=False)
                engine(blank, use_det=False, use_cls=True, use_rec=True)
            except Exception as exc:  # noqa: BLE001 - any engine failure becomes a sentence
                raise BackendUnavailableError(
                    "Text recognition could not start.", detail=f"{type(exc).__name__}: {exc}"
                ) from exc
            self._engine = engine
            return engine

    def unload(self) -> None:
        with self._lock:
            self._engine = None

    def recognise(self, pixels, *, maybe_upside_down: bool = False, words: bool = False) -> list[TextLine]:
        """All text lines of an RGB image (H x W x 3 uint8), in image pixel coordinates.

        `maybe_upside_down` runs the engine's 0/180-degree line classifier: worth it for a camera
        photo of a page held upside down, harmful on screens, where text is always upright and
        the classifier now and then turns a clean line over and garbles it.

        `words` also finds each word's box (from where the recogniser placed its characters), for
        pointing at a single word; it costs a little time per line.
        """
        import numpy as np

        engine = self._loaded_engine(CancelToken())
        h, w = pixels.shape[:2]
        scale = 1.0
        if max(h, w) > MAX_SIDE:
            import cv2

            scale = MAX_SIDE / max(h, w)
            pixels = cv2.resize(pixels, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(pixels[..., ::-1])  # the engine takes OpenCV's channel order
        with self._lock:  # one recognition at a time: the engine keeps per-call state
            # Every option is passed on every call: the engine remembers the last call's options.
            result = engine(bgr, use_det=True, use_cls=maybe_upside_down, use_rec=True, return_word_box=words)
        boxes = getattr(result, "boxes", None)
        txts = getattr(result, "txts", None)
        if boxes is None or not txts:
            return []
        scores = getattr(result, "scores", None) or [1.0] * len(txts)
        lines = []
        for box, text, score in zip(boxes, txts, scores, strict=False):
            box = np.asarray(box, dtype=float) / scale
            lines.append(
                TextLine(
                    float(box[:, 0].min()),
                    float(box[:, 1].min()),
                    float(box[:, 0].max()),
                    float(box[:, 1].max()),
                    str(text),
                    float(score),
                )
            )
        if words:
            lines = _attach_words(lines, getattr(result, "word_results", None) or (), scale)
        return lines

    def generate(self, request: JobRequest, cancel: CancelToken) -> Iterator[str]:
        self.usage = Usage()
        check = self.supports(request)
        image = request.image
        if not check.ok or image is None:  # supports() refuses a request without an image
            raise InputError(check.reason[0].upper() + check.reason[1:] + ".")
        cancel.raise_if_cancelled()
        blocks = reading_order(self.recognise(image.pixels, maybe_upside_down=image.source == "camera"))
        cancel.raise_if_cancelled()
        words = sum(len(line.split()) for block in blocks for line in block)
        self.usage = Usage(tokens_in=0, tokens_out=words)
        text_only = request.task in _TEXT_IS_THE_ANSWER
        asking = request.task is Task.ASK_IMAGE

        if not blocks:
            if asking:
                yield "I can only read text, and I found no text in this image. " + _hint(QUESTION_HINT)
            else:
                yield NO_TEXT if text_only else _hint(NO_TEXT_DESCRIBE)
            return
        first = True
        if asking:
            yield QUESTION_LEAD
            first = False
        for block in blocks:
            cancel.raise_if_cancelled()
            yield ("" if first else "\n\n") + "\n".join(block)
            first = False
        if not text_only:
            cancel.raise_if_cancelled()
            yield "\n\n" + _hint(QUESTION_HINT if asking else MODEL_HINT)
