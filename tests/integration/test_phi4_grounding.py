"""Grounded answers and answers in the user's language, on the tiny Phi-4 model and real OCR.

The picture's text is read by the real on-device recogniser from a rendered picture; the model is
the tiny random checkpoint loaded through the same code as the real one. The quote guard is driven
through the runner with the scripted backend, whose answer is known.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from app.core.cancel import CancelToken
from app.core.types import AudioInput, Detail, ImageInput, JobRequest, Task
from app.inference.grounding import TRIMMED_MARK
from app.inference.ocr import OcrBackend
from app.inference.phi4_local import Phi4LocalBackend
from app.inference.prompts import SCREEN_TEXT_LEAD
from app.inference.registry import BackendRegistry
from app.inference.runner import run_request
from app.settings.schema import Settings
from tests.fakes.scripted_backend import ScriptedBackend

ANSWER_TOKENS = 12
LINES = ("Save changes to Quarterly Report?", "Invoice 10482 total $1,250.00", "Cancel        Save")


def _picture(width: int = 1280, height: int = 720) -> ImageInput:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, height), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype("DejaVuSans.ttf", 40)
    for i, line in enumerate(LINES):
        draw.text((120, 150 + 110 * i), line, fill=(20, 20, 20), font=font)
    return ImageInput(np.asarray(image), "screen")


@pytest.fixture(scope="module")
def picture() -> ImageInput:
    return _picture()


@pytest.fixture(scope="module")
def ocr():
    backend = OcrBackend()
    backend.load(CancelToken())
    yield backend
    backend.unload()


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    b = Phi4LocalBackend.from_settings(Settings(model_dir=str(tiny_model_dir), device="cpu"))
    b.load(CancelToken())
    b.generation_overrides = {"min_new_tokens": ANSWER_TOKENS}
    yield b
    b.unload()


@pytest.fixture
def steps(backend, monkeypatch):
    """Each prepare() the backend makes, and the adapter in use at every decoding step, read from
    inside the model."""
    record = {"prepared": [], "adapters": []}
    real_prepare = backend.prepare

    def prepare(request):
        prepared = real_prepare(request)
        record["prepared"].append(prepared)
        return prepared

    monkeypatch.setattr(backend, "prepare", prepare)
    handle = backend.model.register_forward_pre_hook(
        lambda module, args: record["adapters"].append(backend.active_adapter)
    )
    yield record
    handle.remove()


def _registry(answering, ocr, **settings) -> BackendRegistry:
    return BackendRegistry(Settings(**settings), {"local": lambda _: answering, "ocr": lambda _: ocr})


def test_a_grounded_description_carries_the_pictures_text_in_reading_order(backend, ocr, picture, steps):
    request = JobRequest(Task.DESCRIBE_BRIEF, image=picture, max_new_tokens=ANSWER_TOKENS)
    result = run_request(_registry(backend, ocr), request, CancelToken(), preference="local")
    assert result.ok, result.error
    assert result.path == "direct" and result.text
    [prepared] = steps["prepared"]
    assert prepared.adapter == "vision"
    prompt = prepared.text
    assert SCREEN_TEXT_LEAD in prompt
    at = [prompt.index(words) for words in ("Quarterly Report", "10482", "$1,250.00", "Cancel")]
    assert at == sorted(at)  # top to bottom, as on the picture
    assert prompt.index("Cancel") < prompt.index("Save", prompt.index("Cancel"))
    assert prompt.index(SCREEN_TEXT_LEAD) < prompt.index("This is a screenshot")
    assert result.screen_text_chars > 0 and result.timings["ocr"] > 0


def test_grounding_can_be_turned_off_and_is_never_used_by_the_text_reader(backend, ocr, picture, steps):
    request = JobRequest(Task.DESCRIBE_BRIEF, image=picture, max_new_tokens=ANSWER_TOKENS)
    result = run_request(
        _registry(backend, ocr, ground_answers=False), request, CancelToken(), preference="local"
    )
    assert result.ok and result.screen_text_chars == 0
    assert SCREEN_TEXT_LEAD not in steps["prepared"][0].text and "Quarterly" not in steps["prepared"][0].text
    # reading tasks are answered by reading: no picture text is added
    read = JobRequest(Task.READ_TEXT, image=picture, max_new_tokens=ANSWER_TOKENS)
    assert (
        run_request(_registry(backend, ocr), read, CancelToken(), preference="local").screen_text_chars == 0
    )
    # the OCR default answering itself is not grounded in itself
    own = run_request(_registry(backend, ocr), request, CancelToken(), preference="ocr", strict=True)
    assert own.ok and own.backend == "ocr" and own.screen_text_chars == 0 and "Quarterly" in own.text


def _long_text(lines: int) -> str:
    return "\n".join(f"Row {i}: invoice {10_000 + i} for Customer Number {i} is open" for i in range(lines))


def test_the_picture_text_is_trimmed_first_never_the_answer_or_the_crops(backend):
    screen = ImageInput(np.full((1080, 1920, 3), 240, np.uint8), "screen")
    text = _long_text(400)
    request = JobRequest(Task.DESCRIBE_FULL, image=screen, max_new_tokens=512, screen_text=text)
    prepared = backend.prepare(request)
    assert prepared.prompt_tokens + prepared.max_new_tokens <= backend.turn_token_limit
    assert prepared.max_new_tokens == 512  # the whole answer fits
    assert prepared.crops == Detail.NORMAL.max_crops  # the picture keeps its detail
    kept = prepared.screen_text.split("\n")
    assert kept[-1] == TRIMMED_MARK and 3 < len(kept) < 400
    assert kept[:-1] == text.split("\n")[: len(kept) - 1]  # the top of the picture, whole lines
    assert any("picture text trimmed" in note for note in prepared.notes)
    # it used what there was: one more line would not have fitted
    room = backend.turn_token_limit - prepared.prompt_tokens - prepared.max_new_tokens
    next_line = text.split("\n")[len(kept) - 1]
    assert room < len(backend.processor.tokenizer(next_line + "\n")["input_ids"]) + 8

    # a short text goes in whole
    short = backend.prepare(dataclasses.replace(request, screen_text=_long_text(3)))
    assert short.screen_text == _long_text(3) and not any("picture text" in n for n in short.notes)

    # when the picture alone leaves no room, the text is left out and the crops are lowered as before
    high = backend.prepare(dataclasses.replace(request, detail=Detail.HIGH))
    assert high.screen_text == "" and any("left out" in n for n in high.notes)
    assert high.prompt_tokens + high.max_new_tokens <= backend.turn_token_limit
    assert SCREEN_TEXT_LEAD not in high.text


def test_the_guard_hedges_what_the_picture_does_not_say_and_speaks_from_the_first_sentence(ocr, picture):
    answer = (
        'A dialog asks "Save changes to Quarterly Report?" '
        "The invoice number is 10482 and the total is $1,999.00. "
        "The buttons are Cancel and Save."
    )
    chunks = [answer[i : i + 3] for i in range(0, len(answer), 3)]  # streamed in small pieces
    scripted = ScriptedBackend(chunks, name="local")
    seen: list[tuple[int, str]] = []  # (chunks the backend had produced, text received)
    request = JobRequest(Task.ASK_IMAGE, image=picture, question="What does the dialog say?")
    result = run_request(
        _registry(scripted, ocr),
        request,
        CancelToken(),
        preference="local",
        on_chunk=lambda text: seen.append((scripted.usage.tokens_out, text)),
    )
    assert result.ok, result.error
    assert scripted.requests[0].screen_text and "Quarterly" in scripted.requests[0].screen_text
    assert result.hedged == ["$1,999.00"]
    assert seen[0][1] == 'A dialog asks "Save changes to Quarterly Report?" '
    assert seen[0][0] < len(chunks) // 2  # out while the answer was still being written
    assert result.text == (
        'A dialog asks "Save changes to Quarterly Report?" '
        "The invoice number is 10482 and the total is $1,999.00. "
        'It may say "$1,999.00"; I could not find that in the picture\'s text. '
        "The buttons are Cancel and Save."
    )


def test_a_picture_in_german_is_described_in_english_then_translated_as_it_streams(
    backend, ocr, picture, steps
):
    request = JobRequest(Task.DESCRIBE_BRIEF, image=picture, language="German", max_new_tokens=ANSWER_TOKENS)
    at_chunk: list[int] = []
    result = run_request(
        _registry(backend, ocr),
        request,
        CancelToken(),
        preference="local",
        on_chunk=lambda text: at_chunk.append(len(steps["adapters"])),
    )
    assert result.ok, result.error
    assert result.path == "describe_then_translate"
    describe, translate = steps["prepared"]
    # the description: the picture, its text, in English, with the vision adapter
    assert describe.adapter == "vision" and describe.image_tokens > 0
    assert "Answer in English." in describe.text and SCREEN_TEXT_LEAD in describe.text
    # the translation: text only, no adapter, the English description inside, into German
    assert translate.adapter is None and translate.image_tokens == 0
    assert "Answer in German." in translate.text and "into German" in translate.text
    assert result.english and result.english.strip() in translate.text
    # the adapter at every decoding step: vision while describing, none while translating
    vision_steps = describe.max_new_tokens  # at most; the tiny model writes exactly min_new_tokens
    assert steps["adapters"][0] == "vision" and steps["adapters"][-1] is None
    switch = steps["adapters"].index(None)
    assert set(steps["adapters"][:switch]) == {"vision"} and set(steps["adapters"][switch:]) == {None}
    assert switch <= vision_steps
    # the translation streams: its first text arrives while it is still being written
    assert len(at_chunk) >= 2 and at_chunk[0] < len(steps["adapters"])
    assert at_chunk[0] > switch  # nothing of the English description is given to the user
    assert result.tokens_in >= describe.prompt_tokens + translate.prompt_tokens


def test_text_and_speech_questions_in_german_are_answered_directly(backend, ocr, steps):
    typed = JobRequest(
        Task.ASK_SPOKEN, question="Wie spät ist es?", language="German", max_new_tokens=ANSWER_TOKENS
    )
    result = run_request(_registry(backend, ocr), typed, CancelToken(), preference="local")
    assert result.ok and result.path == "direct"
    t = np.arange(16_000) / 16_000
    voice = AudioInput((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), "microphone")
    spoken = JobRequest(Task.ASK_SPOKEN, audio=voice, language="German", max_new_tokens=ANSWER_TOKENS)
    result = run_request(_registry(backend, ocr), spoken, CancelToken(), preference="local")
    assert result.ok and result.path == "direct"
    first, second = steps["prepared"]
    assert first.adapter is None and "Answer in German." in first.text and "Wie spät ist es?" in first.text
    assert second.adapter == "speech" and "Answer in German." in second.text
    assert "Translate" not in first.text + second.text


def test_a_follow_up_about_the_same_picture_does_not_read_it_again_and_a_server_gets_a_safe_length(
    ocr, picture, monkeypatch
):
    import app.inference.runner as runner

    monkeypatch.setattr(runner, "UNCOUNTED_SCREEN_TEXT_CHARS", 60)  # the picture's text is longer
    fresh = ImageInput(picture.pixels, "screen")
    calls = []
    real = ocr.recognise
    monkeypatch.setattr(ocr, "recognise", lambda *a, **k: calls.append(1) or real(*a, **k))
    scripted = ScriptedBackend(["It is a dialog."], name="local")  # counts no tokens: a server's limit
    registry = _registry(scripted, ocr)
    first = JobRequest(Task.DESCRIBE_BRIEF, image=fresh)
    follow = JobRequest(Task.ASK_IMAGE, image=fresh, question="And the total?")
    for request in (first, follow):
        assert run_request(registry, request, CancelToken(), preference="local").screen_text_chars > 0
    assert len(calls) == 1
    assert scripted.requests[0].screen_text == scripted.requests[1].screen_text
    sent = scripted.requests[0].screen_text
    assert len(sent) <= 60 and sent.endswith(TRIMMED_MARK) and sent.startswith("Save changes")
