"""The OCR default with the real engine: a real window on the X display, captured and read back."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from app.capture import screen
from app.core.cancel import CancelToken
from app.core.errors import Cancelled, InputError
from app.core.types import AudioInput, ImageInput, JobRequest, Task
from app.inference.ocr import MAX_SIDE, MODEL_HINT, OcrBackend, TextLine, reading_order
from tests.conftest import _stack_missing
from tests.fixtures.screens_layout import LEFT_COLUMN, RIGHT_COLUMN, window_words
from tests.fixtures.screens_proc import start_known_window

REPO = Path(__file__).resolve().parents[2]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@pytest.fixture(scope="module")
def backend() -> OcrBackend:
    b = OcrBackend()
    assert b.check().ok
    b.load(CancelToken())
    return b


@pytest.fixture(scope="module")
def window_capture() -> ImageInput:
    if not os.environ.get("DISPLAY") or shutil.which("xdpyinfo") is None:
        _stack_missing("The X display")
    if subprocess.run(["xdpyinfo"], capture_output=True, timeout=10).returncode != 0:
        _stack_missing(f"The X display {os.environ.get('DISPLAY')}")
    win = start_known_window(300, 200)
    try:
        win.command("raise")
        screen._forget_mss()
        return screen.capture_region(win.x, win.y, win.width, win.height)
    finally:
        win.stop()


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]+", text)


def _run(backend, task, image, question=None, cancel=None) -> list[str]:
    request = JobRequest(task, image=image, question=question)
    return list(backend.generate(request, cancel or CancelToken()))


def _text_image(lines: list[tuple[int, int, str]], size: tuple[int, int], px: int = 28) -> ImageInput:
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, px)
    for x, y, text in lines:
        draw.text((x, y), text, fill=(0, 0, 0), font=font)
    return ImageInput(np.asarray(img), "file")


# --- the real screen ----------------------------------------------------------------------------


@pytest.mark.display
def test_reads_a_real_screen_in_reading_order(backend, window_capture):
    chunks = _run(backend, Task.DESCRIBE_BRIEF, window_capture)
    text = "".join(chunks)
    words = _words(text.replace(MODEL_HINT, ""))
    expected = window_words()
    assert [w.lower() for w in words] == [w.lower() for w in expected], text
    # The two columns are read one after the other, never line by line across both.
    left_end = text.index(LEFT_COLUMN[-1].split()[0])
    right_start = text.index(RIGHT_COLUMN[0].split()[0])
    assert left_end < right_start
    # Streamed block by block, then one sentence saying how to get a real description.
    assert len(chunks) >= 4
    assert chunks[-1].strip() == MODEL_HINT
    assert "Phi-4" in MODEL_HINT and "sightline model download" in MODEL_HINT
    assert backend.usage.tokens_out == len(expected)


@pytest.mark.display
def test_read_text_is_the_text_alone(backend, window_capture):
    text = "".join(_run(backend, Task.READ_TEXT, window_capture))
    assert "Phi-4" not in text and "sightline" not in text.lower().replace("sightline reads", "")
    assert text.startswith("Sightline reads this screen")
    assert text.rstrip().endswith(RIGHT_COLUMN[-1])


@pytest.mark.display
def test_a_question_gets_the_text_and_says_it_needs_the_model(backend, window_capture):
    chunks = _run(backend, Task.ASK_IMAGE, window_capture, question="What colour is the square?")
    assert "cannot answer your question" in chunks[0]
    assert "Apples are red" in "".join(chunks)
    assert "Phi-4" in chunks[-1] and "sightline model download" in chunks[-1]


@pytest.mark.display
def test_cancel_stops_between_blocks(backend, window_capture):
    cancel = CancelToken()
    stream = backend.generate(JobRequest(Task.READ_TEXT, image=window_capture), cancel)
    first = next(stream)
    assert first.startswith("Sightline")
    cancel.cancel("superseded")
    with pytest.raises(Cancelled):
        next(stream)


# --- images from elsewhere ----------------------------------------------------------------------


def test_no_text_is_said_plainly(backend):
    blank = ImageInput(np.full((400, 600, 3), 240, np.uint8), "file")
    assert _run(backend, Task.READ_TEXT, blank) == ["I found no text in this image."]
    said = "".join(_run(backend, Task.DESCRIBE_BRIEF, blank))
    assert said.startswith("I found no text in this image") and "sightline model download" in said
    assert backend.usage.tokens_out == 0


def test_thin_toolbar_strip_is_read(backend):
    strip = _text_image([(10, 2, "File   Edit   View   Help")], (1900, 30), px=20)
    text = "".join(_run(backend, Task.READ_TEXT, strip))
    assert _words(text) == ["File", "Edit", "View", "Help"], text


def test_very_large_image_is_downscaled_and_still_read(backend):
    image = _text_image(
        [(200, 300, "Large screens are read too"), (200, 500, "Second line here")], (3840, 2160), 64
    )
    lines = backend.recognise(image.pixels)
    assert max(image.width, image.height) > MAX_SIDE
    by_text = {ln.text: ln for ln in lines}
    assert "Large screens are read too" in by_text, by_text
    box = by_text["Large screens are read too"]
    # Boxes come back in the original image's pixels, not the shrunk one's.
    assert 170 <= box.x0 <= 230 and 290 <= box.y0 <= 340


def test_word_boxes_lie_where_the_words_were_drawn_even_on_a_large_image(backend):
    font = ImageFont.truetype(FONT, 64)
    words = ["Save", "your", "work", "before", "closing"]
    image = _text_image([(200, 300, " ".join(words))], (3840, 2160), 64)  # shrunk to read
    (line,) = backend.recognise(image.pixels, words=True)
    assert [w.text for w in line.words] == words, line
    x = 200
    for word in line.words:
        drawn = font.getlength(word.text)
        # Each box covers its word as drawn, in the original image's pixels.
        assert abs(word.x0 - x) < 20 and abs(word.x1 - (x + drawn)) < 20, (word, x, drawn)
        assert line.y0 - 2 <= word.y0 < word.y1 <= line.y1 + 2
        x += drawn + font.getlength(" ")
    # The option is not left on for the next call: a plain read has no word boxes.
    (plain,) = backend.recognise(image.pixels)
    assert plain.text == line.text and plain.words == ()


def test_audio_is_refused_with_a_sentence(backend):
    audio = AudioInput(np.zeros(16000, np.float32), "microphone")
    request = JobRequest(Task.TRANSCRIBE, audio=audio)
    verdict = backend.supports(request)
    assert not verdict.ok and "audio" in verdict.reason and "Phi-4" in verdict.reason
    with pytest.raises(InputError, match="cannot listen to audio"):
        list(backend.generate(request, CancelToken()))
    assert not backend.supports(JobRequest(Task.ASK_SPOKEN, question="Hello?")).ok


def test_check_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys, time; t = time.perf_counter();"
        "from app.inference.ocr import OcrBackend; from app.settings.schema import Settings;"
        "b = OcrBackend.from_settings(Settings()); ok = b.check().ok;"
        "heavy = [m for m in ('rapidocr', 'onnxruntime', 'cv2', 'torch') if m in sys.modules];"
        "print(ok, heavy, b.name, b.capabilities.local, b.capabilities.audio)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    ).stdout.strip()
    assert out == "True [] ocr True False"
    assert OcrBackend.display_name == "on-device text recognition"


# --- the layout rules on their own ---------------------------------------------------------------


def _line(x, y, text, h=30, w=None):
    return TextLine(x, y, x + (w or 15 * len(text)), y + h, text)


def test_columns_with_aligned_paragraph_breaks_are_read_column_by_column():
    left = [_line(40, 100, "left one"), _line(40, 140, "left two"), _line(40, 240, "left three")]
    right = [_line(700, 100, "right one"), _line(700, 140, "right two"), _line(700, 240, "right three")]
    order = [line for block in reading_order(right + left) for line in block]
    assert order == ["left one", "left two", "left three", "right one", "right two", "right three"]


def test_a_line_split_in_two_is_joined_and_a_heading_stands_alone():
    lines = [
        _line(40, 20, "Big heading", h=60),
        _line(40, 100, "first half"),
        _line(40 + 15 * len("first half") + 12, 101, "second half"),
        _line(40, 140, "next line"),
    ]
    blocks = reading_order(lines)
    assert blocks == [["Big heading"], ["first half second half", "next line"]]


def test_toolbar_row_is_read_left_to_right():
    items = [_line(500, 10, "View"), _line(40, 10, "File"), _line(260, 10, "Edit")]
    assert [t for b in reading_order(items) for t in b] == ["File", "Edit", "View"]
