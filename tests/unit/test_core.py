import threading
import time
from pathlib import Path

import numpy as np
import pytest

from app.core.cancel import CancelToken
from app.core.errors import (
    BackendUnavailableError,
    Cancelled,
    EmptyAnswerError,
    ExitCode,
    InputError,
    ModelFormatError,
    ServerAddressError,
    SightlineError,
    UsageError,
)
from app.core.types import AudioInput, Detail, ImageInput, JobRequest, Task
from app.inference.prompts import build_prompt
from app.inference.registry import BackendRegistry
from app.inference.runner import run_request
from app.settings.schema import Settings
from tests.fakes.scripted_backend import ScriptedBackend


def _image(w=64, h=32):
    return ImageInput(np.zeros((h, w, 3), np.uint8), source="file")


def test_image_input_is_immutable_and_copied():
    pixels = np.zeros((4, 5, 3), np.uint8)
    image = ImageInput(pixels, source="file")
    pixels[0, 0, 0] = 255  # the caller's array changing later does not change the request
    assert image.pixels[0, 0, 0] == 0
    with pytest.raises(ValueError):
        image.pixels[0, 0, 0] = 1
    assert (image.width, image.height) == (5, 4)


def test_image_input_rejects_non_rgb():
    with pytest.raises(ValueError):
        ImageInput(np.zeros((4, 5), np.uint8), source="file")


def test_audio_input_requires_16k_mono_float():
    AudioInput(np.zeros(1600, np.float32), source="file")
    with pytest.raises(ValueError):
        AudioInput(np.zeros((1600, 2), np.float32), source="file")
    with pytest.raises(ValueError):
        AudioInput(np.zeros(1600, np.float32), source="file", sample_rate=44100)


def test_request_modality_and_validation():
    audio = AudioInput(np.zeros(16000, np.float32), source="file")
    assert JobRequest(Task.DESCRIBE_BRIEF, image=_image()).modality == "vision"
    assert JobRequest(Task.ASK_IMAGE, image=_image(), audio=audio).modality == "vision"
    assert JobRequest(Task.TRANSCRIBE, audio=audio).modality == "speech"
    assert JobRequest(Task.ASK_SPOKEN, question="What is 2+2?").modality == "text"
    with pytest.raises(ValueError):
        JobRequest(Task.DESCRIBE_BRIEF)
    with pytest.raises(ValueError):
        JobRequest(Task.ASK_SPOKEN)
    a, b = JobRequest(Task.ASK_SPOKEN, question="a"), JobRequest(Task.ASK_SPOKEN, question="b")
    assert a.job_id != b.job_id


def test_cancel_token_wakes_waiter_at_once():
    token = CancelToken()
    woke = []
    t = threading.Thread(target=lambda: woke.append(token.wait(10)))
    t.start()
    time.sleep(0.05)
    token.cancel("new command")
    t.join(2)
    assert woke == [True] and not t.is_alive()
    with pytest.raises(Cancelled):
        token.raise_if_cancelled()


def test_detail_crop_caps_increase():
    assert Detail.LOW.max_crops < Detail.NORMAL.max_crops < Detail.HIGH.max_crops == 36


def test_prompts_cover_every_task_and_language():
    audio = AudioInput(np.zeros(16000, np.float32), source="file")
    for task in Task:
        kwargs = {}
        if task.needs_image:
            kwargs["image"] = _image()
        if task.needs_audio or task is Task.ASK_SPOKEN:
            kwargs["audio"] = audio
        prompt = build_prompt(JobRequest(task, language="French", **kwargs))
        assert "French" in prompt.system
        assert prompt.user_text.strip()
    brief = build_prompt(JobRequest(Task.DESCRIBE_BRIEF, image=_image())).user_text
    assert "application" in brief and "focus" in brief and "attention" in brief
    spoken = build_prompt(JobRequest(Task.ASK_SPOKEN, audio=audio))
    assert spoken.with_audio and not spoken.with_image and "audio is my question" in spoken.user_text
    typed = build_prompt(JobRequest(Task.ASK_IMAGE, image=_image(), question="Is the door open?"))
    assert "Is the door open?" in typed.user_text


def _registry(**backends):
    return BackendRegistry(Settings(), factories={name: (lambda s, b=b: b) for name, b in backends.items()})


def test_registry_falls_back_and_says_why():
    local = ScriptedBackend(name="local", ok=False, reason="the model is not installed")
    ocr = ScriptedBackend(name="ocr")
    choice = _registry(
        local=local, remote=ScriptedBackend(name="remote", ok=False, reason="no server is set"), ocr=ocr
    ).choose()
    assert choice.backend is ocr
    text = choice.explanation()
    assert "the ocr backend" in text and "the model is not installed" in text and "no server is set" in text


def test_registry_prefers_configured_backend():
    local, ocr = ScriptedBackend(name="local"), ScriptedBackend(name="ocr")
    assert _registry(local=local, ocr=ocr).choose(preference="ocr").backend is ocr
    assert _registry(local=local, ocr=ocr).choose(preference="auto").backend is local


def test_registry_strict_reports_the_named_backend():
    local = ScriptedBackend(name="local", ok=False, reason="The model is not installed.")
    with pytest.raises(BackendUnavailableError, match="not installed"):
        _registry(local=local, ocr=ScriptedBackend(name="ocr")).choose(preference="local", strict=True)


def test_registry_skips_backend_that_cannot_take_audio():
    audio = AudioInput(np.zeros(16000, np.float32), source="file")
    ocr = ScriptedBackend(name="ocr", audio=False)
    with pytest.raises(BackendUnavailableError) as caught:
        _registry(ocr=ocr).choose(JobRequest(Task.TRANSCRIBE, audio=audio))
    # Two clear sentences: what is needed, then what to do (no run-on list of every reason).
    sentence = caught.value.sentence
    assert sentence == (
        "Listening to a recording needs the Phi-4 model or a Sightline server, and neither is ready. "
        "Run sightline model download to get the model, or set a server in Settings."
    )
    assert "cannot listen" in caught.value.detail


class _FailingLoad(ScriptedBackend):
    """Passes its cheap check, then cannot load (a broken tokenizer, a config that does not match)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self._loaded = False

    @property
    def loaded(self) -> bool:
        return False

    def load(self, cancel):
        self.load_calls += 1
        raise BackendUnavailableError(
            "The local Phi-4 model could not be loaded.", detail="KeyError('added_tokens')"
        )


def test_auto_falls_back_when_the_model_cannot_load_and_says_so_once():
    local = _FailingLoad(name="local")
    ocr = ScriptedBackend(name="ocr", chunks=["Text."])
    registry = _registry(local=local, ocr=ocr)
    said = []
    for _ in range(2):  # two requests in one run (transcription pieces): the reason is said once
        result = run_request(
            registry, JobRequest(Task.READ_TEXT, image=_image()), CancelToken(), on_fallback=said.append
        )
        assert result.ok and result.backend == "ocr" and result.text == "Text."
    assert local.load_calls == 1
    assert said == ["The local Phi-4 model could not be loaded. Using the ocr backend instead."]


def test_a_named_backend_that_cannot_load_is_not_replaced():
    local = _FailingLoad(name="local")
    result = run_request(
        _registry(local=local, ocr=ScriptedBackend(name="ocr")),
        JobRequest(Task.READ_TEXT, image=_image()),
        CancelToken(),
        preference="local",
        strict=True,
    )
    assert isinstance(result.error, BackendUnavailableError) and result.backend == ""


def test_a_chat_template_that_does_not_render_is_a_model_format_error():
    import jinja2

    class _BadTemplate(ScriptedBackend):
        def generate(self, request, cancel):
            jinja2.Environment().from_string("{{ x | nosuchfilter }}")
            yield ""

    result = run_request(
        _registry(local=_BadTemplate(name="local")), JobRequest(Task.READ_TEXT, image=_image()), CancelToken()
    )
    assert isinstance(result.error, ModelFormatError) and result.error.exit_code == ExitCode.MODEL_MISSING
    assert "chat template" in result.error.sentence


def test_exit_codes_are_distinct_and_documented():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    codes = [v for k, v in vars(ExitCode).items() if k.isupper()]
    assert len(codes) == len(set(codes))
    for code in codes:
        if code != ExitCode.UNEXPECTED:
            assert f"| {code} |" in readme, code
    assert EmptyAnswerError().sentence == "The model gave no answer."
    assert EmptyAnswerError().exit_code == ExitCode.NO_ANSWER
    assert ServerAddressError("x").exit_code == UsageError("x").exit_code == ExitCode.USAGE


def test_runner_streams_and_times():
    backend = ScriptedBackend(name="local", chunks=["One. ", "Two."])
    seen = []
    result = run_request(
        _registry(local=backend),
        JobRequest(Task.ASK_SPOKEN, question="q"),
        CancelToken(),
        on_chunk=seen.append,
    )
    assert result.ok and seen == ["One. ", "Two."] and result.text == "One. Two."
    assert result.backend == "local" and backend.load_calls == 1
    assert (
        result.timings["first_chunk"] is not None and result.timings["total"] >= result.timings["first_chunk"]
    )


def test_runner_keeps_partial_text_on_failure():
    backend = ScriptedBackend(
        name="local",
        chunks=["Part one. ", "two"],
        fail_after=1,
        error=SightlineError("The server stopped answering."),
    )
    result = run_request(_registry(local=backend), JobRequest(Task.ASK_SPOKEN, question="q"), CancelToken())
    assert result.text == "Part one. " and result.error.sentence == "The server stopped answering."


def test_runner_turns_unexpected_exception_into_sentence():
    class Boom(ScriptedBackend):
        def generate(self, request, cancel):
            raise ZeroDivisionError("bug")
            yield ""

    result = run_request(
        _registry(local=Boom(name="local")), JobRequest(Task.ASK_SPOKEN, question="q"), CancelToken()
    )
    assert "went wrong" in result.error.sentence and "ZeroDivisionError" not in result.error.sentence


def test_runner_cancel_stops_promptly():
    backend = ScriptedBackend(name="local", chunks=["a "] * 100, delay=0.05)
    token = CancelToken()
    threading.Timer(0.12, token.cancel).start()
    t0 = time.perf_counter()
    result = run_request(_registry(local=backend), JobRequest(Task.ASK_SPOKEN, question="q"), token)
    assert isinstance(result.error, Cancelled)
    assert time.perf_counter() - t0 < 1.0 and 0 < len(result.text) < 20


def test_input_error_has_exit_code():
    assert InputError("x").exit_code == 3


def test_wrong_format_sentence_uses_the_right_article():
    from app.inference.model_store.folder import _wrong_format_sentence

    assert "holds an unknown model" in _wrong_format_sentence("unknown")
    assert "holds a llama model" in _wrong_format_sentence("llama")
