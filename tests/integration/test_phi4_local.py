"""The local Phi-4 backend on the tiny random checkpoint, through the same code as the real folder.

Random weights say nothing useful, so these tests assert what a user would notice of the plumbing:
an answer arrives for every kind of input, in pieces as it is produced, stops within a step of a
cancel, uses the right adapter, keeps a turn inside the 4096-token regime, copes with odd images,
and turns a memory failure into one clear sentence.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np
import pytest

from app.core.cancel import CancelToken
from app.core.errors import BackendUnavailableError, InputError, ModelNotFoundError, OutOfMemoryError
from app.core.types import AudioInput, Detail, ImageInput, JobRequest, Task, Turn
from app.inference.phi4_local import (
    TURN_TOKEN_LIMIT,
    Phi4LocalBackend,
    cpu_has_native_bf16,
    image_token_count,
    pad_thin_image,
)
from app.settings.schema import Settings

ANSWER_TOKENS = 12


def _screen(width: int = 1920, height: int = 1080, seed: int = 0) -> ImageInput:
    rng = np.random.default_rng(seed)
    pixels = np.full((height, width, 3), 235, np.uint8)
    pixels[: max(1, height // 20)] = (40, 60, 120)  # a title bar
    blocks = rng.integers(0, 255, size=(max(1, height // 40), max(1, width // 40), 3), dtype=np.uint8)
    pixels[: blocks.shape[0] * 40, : blocks.shape[1] * 40] //= 2
    pixels[: blocks.shape[0] * 40, : blocks.shape[1] * 40] += (
        np.kron(blocks, np.ones((40, 40, 1), np.uint8)) // 2
    )
    return ImageInput(pixels, "screen")


def _voice(seconds: float = 1.5) -> AudioInput:
    t = np.arange(int(16_000 * seconds)) / 16_000
    samples = (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    return AudioInput(samples, "microphone")


REQUESTS = {
    "text": lambda: JobRequest(Task.ASK_SPOKEN, question="What time is it?", max_new_tokens=ANSWER_TOKENS),
    "image": lambda: JobRequest(Task.DESCRIBE_BRIEF, image=_screen(), max_new_tokens=ANSWER_TOKENS),
    "audio": lambda: JobRequest(Task.TRANSCRIBE, audio=_voice(), max_new_tokens=ANSWER_TOKENS),
    "image+audio": lambda: JobRequest(
        Task.ASK_IMAGE, image=_screen(800, 600), audio=_voice(), max_new_tokens=ANSWER_TOKENS
    ),
}
EXPECTED_ADAPTER = {"text": None, "image": "vision", "audio": "speech", "image+audio": "vision"}


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    b = Phi4LocalBackend.from_settings(Settings(model_dir=str(tiny_model_dir), device="cpu"))
    b.load(CancelToken())
    b.generation_overrides = {"min_new_tokens": ANSWER_TOKENS}
    yield b
    b.unload()


class ForwardSpy:
    """Counts decoding steps and records the adapter in use at each, from inside the model."""

    def __init__(self, backend: Phi4LocalBackend, on_step=None):
        self.backend = backend
        self.steps = 0
        self.adapters: list[str | None] = []
        self._on_step = on_step
        self._handle = backend.model.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.steps += 1
        self.adapters.append(self.backend.active_adapter)
        if self._on_step is not None:
            self._on_step(self.steps)

    def remove(self) -> None:
        self._handle.remove()


@pytest.fixture
def spy(backend):
    created: list[ForwardSpy] = []

    def make(on_step=None) -> ForwardSpy:
        s = ForwardSpy(backend, on_step)
        created.append(s)
        return s

    yield make
    for s in created:
        s.remove()


def test_check_passes_for_a_complete_folder_and_explains_a_missing_one(tiny_model_dir, tmp_path):
    assert Phi4LocalBackend(tiny_model_dir).check().ok
    missing = Phi4LocalBackend(tmp_path / "nothing-here").check()
    assert not missing.ok
    assert "not installed" in missing.reason


def test_check_says_how_to_add_a_missing_runtime(tiny_model_dir, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    status = Phi4LocalBackend(tiny_model_dir).check()
    assert not status.ok
    assert "runtime is not installed" in status.reason and "torch" in status.reason
    assert "pip install" in status.reason


def test_settings_choose_the_folder(tiny_model_dir, sightline_home):
    assert Phi4LocalBackend.from_settings(Settings(model_dir=str(tiny_model_dir))).folder == tiny_model_dir
    default = Phi4LocalBackend.from_settings(Settings()).folder
    assert str(default).startswith(str(sightline_home))


def test_loads_on_cpu_and_says_it_is_slow(backend):
    assert backend.loaded
    # bf16 where the processor computes it natively; float32 (it fits: the model is tiny) elsewhere.
    dtype = "bfloat16" if cpu_has_native_bf16() else "float32"
    assert (backend.device, backend.dtype_name, backend.attention[""]) == ("cpu", dtype, "sdpa")
    assert "slow" in backend.notice
    # The processor's chat template is restored from the tokenizer.
    assert backend.processor.chat_template


@pytest.mark.parametrize("kind", list(REQUESTS))
def test_every_kind_of_input_gets_an_answer_with_its_adapter(backend, spy, kind, no_thread_leak):
    request = REQUESTS[kind]()
    s = spy()
    chunks = list(backend.generate(request, CancelToken()))
    assert "".join(chunks).strip(), "no text came back"
    assert backend.usage.tokens_out == ANSWER_TOKENS
    assert backend.usage.tokens_in == backend.last_prepared.prompt_tokens > 0
    # The adapter really is the one switched on inside the model during every step.
    assert set(s.adapters) == {EXPECTED_ADAPTER[kind]}


def test_prompt_uses_the_processors_placeholders_and_the_chat_template(backend):
    proc = backend.processor
    request = JobRequest(
        Task.ASK_IMAGE,
        image=_screen(64, 64),
        audio=_voice(0.5),
        question="Is the door open?",
        history=(Turn("user", "What is this?"), Turn("assistant", "A door.")),
    )
    text = backend.render_prompt(request)
    assert text.count(proc.image_token) == 1 and text.count(proc.audio_token) == 1
    assert text.startswith("<|system|>") and text.endswith("<|assistant|>")
    assert text.index("A door.") < text.index(proc.image_token) < text.index("Is the door open?")


def test_adapters_change_the_answer(backend):
    """Same text prompt: adapters off (the text path) versus each adapter forced on."""
    request = JobRequest(Task.ASK_SPOKEN, question="Say something.", max_new_tokens=ANSWER_TOKENS)
    prepared = backend.prepare(request)
    inputs = backend.model_inputs(prepared)
    kwargs = backend.generation_kwargs(prepared)
    outputs = {}
    try:
        for adapter in (None, "vision", "speech"):
            backend._use_adapter(adapter)
            assert backend.active_adapter == adapter
            ids = backend.model.generate(**inputs, **kwargs)[0, prepared.prompt_tokens :].tolist()
            outputs[adapter] = ids
    finally:
        backend._use_adapter(None)
    assert len({tuple(v) for v in outputs.values()}) == 3, outputs


def test_chunks_stream_in_order_and_equal_a_plain_generation(backend, spy, no_thread_leak):
    request = JobRequest(Task.DESCRIBE_BRIEF, image=_screen(640, 480), max_new_tokens=24)
    backend.generation_overrides = {"min_new_tokens": 24}
    first_chunk = threading.Event()
    held_back = []

    def hold_until_first_chunk(step: int) -> None:
        # From the 4th step on, the model waits until the caller has a chunk: if chunks only
        # arrived at the end, this wait would run out and the test fails.
        if step >= 4 and not held_back and not first_chunk.is_set() and not first_chunk.wait(20):
            held_back.append(step)

    try:
        s = spy(hold_until_first_chunk)
        chunks = []
        steps_at_chunk = []
        for chunk in backend.generate(request, CancelToken()):
            chunks.append(chunk)
            steps_at_chunk.append(s.steps)
            first_chunk.set()
        s.remove()
        assert not held_back, "the first chunk only arrived after generation had finished"
        assert len(chunks) > 1
        assert steps_at_chunk[0] < steps_at_chunk[-1]

        # The reference: the processor's tensors straight into model.generate, same greedy settings.
        prepared = backend.last_prepared
        reference_ids = backend.model.generate(
            **backend.model_inputs(prepared), **backend.generation_kwargs(prepared)
        )[0, prepared.prompt_tokens :]
        reference = backend.processor.tokenizer.decode(reference_ids, skip_special_tokens=True)
    finally:
        backend.generation_overrides = {"min_new_tokens": ANSWER_TOKENS}
    assert "".join(chunks) == reference
    assert backend.usage.tokens_out == len(reference_ids) == 24


def test_cancel_mid_stream_stops_within_a_step(backend, spy, no_thread_leak):
    request = JobRequest(Task.ASK_SPOKEN, question="Tell me a long story.", max_new_tokens=400)
    backend.generation_overrides = {"min_new_tokens": 400}
    cancel = CancelToken()
    try:
        s = spy()
        received = []
        steps_at_cancel = None
        for chunk in backend.generate(request, cancel):
            received.append(chunk)
            if len(received) == 3:
                steps_at_cancel = s.steps
                cancel.cancel("superseded")
    finally:
        backend.generation_overrides = {"min_new_tokens": ANSWER_TOKENS}
    assert steps_at_cancel is not None
    # Generation ends at the step after the cancel, far short of the 400 tokens asked for.
    assert s.steps - steps_at_cancel <= 2, (steps_at_cancel, s.steps)
    assert backend.usage.tokens_out < 400
    assert len(received) == 3


def test_a_consumer_that_stops_early_leaves_nothing_running(backend, spy, no_thread_leak):
    request = JobRequest(Task.ASK_SPOKEN, question="Count to a thousand.", max_new_tokens=300)
    backend.generation_overrides = {"min_new_tokens": 300}
    try:
        s = spy()
        stream = backend.generate(request, CancelToken())
        next(stream)
        stream.close()
        steps = s.steps
    finally:
        backend.generation_overrides = {"min_new_tokens": ANSWER_TOKENS}
    assert steps < 300
    # The lock was released: the next request is answered.
    assert "".join(backend.generate(REQUESTS["text"](), CancelToken()))


def test_a_1080p_screenshot_at_normal_detail_fits_the_turn(backend):
    prepared = backend.prepare(JobRequest(Task.DESCRIBE_FULL, image=_screen(), detail=Detail.NORMAL))
    assert prepared.crops == Detail.NORMAL.max_crops == 12
    assert prepared.image_tokens == 2129
    assert prepared.prompt_tokens + prepared.max_new_tokens < TURN_TOKEN_LIMIT
    assert prepared.max_new_tokens == 512


def test_high_detail_is_capped_to_fit_the_turn(backend):
    request = JobRequest(Task.DESCRIBE_FULL, image=_screen(), detail=Detail.HIGH)
    # Uncapped, 36 crops of a 1080p screen would overflow the turn.
    assert image_token_count(1920, 1080, 36) == 3918
    prepared = backend.prepare(request)
    assert prepared.crops < 36
    assert prepared.prompt_tokens + prepared.max_new_tokens <= TURN_TOKEN_LIMIT
    assert prepared.max_new_tokens == request.max_new_tokens
    assert prepared.inputs["input_ids"].shape[1] == prepared.prompt_tokens


@pytest.mark.parametrize(
    ("width", "height", "crops"),
    [
        (1920, 1080, 4),
        (1920, 1080, 12),
        (1920, 1080, 36),
        (1280, 720, 12),
        (3840, 2160, 36),
        (3840, 2160, 12),
        (800, 600, 12),
        (600, 1400, 6),
        (1900, 190, 4),
        (300, 200, 12),
    ],
)
def test_image_token_arithmetic_matches_the_processor(backend, width, height, crops):
    from PIL import Image

    image = Image.new("RGB", (width, height), (200, 200, 200))
    out = backend.processor.image_processor([image], dynamic_hd=crops)
    assert image_token_count(width, height, crops) == int(out["num_img_tokens"][0])


@pytest.mark.parametrize(
    ("width", "height", "detail"), [(1900, 30, Detail.NORMAL), (3000, 8, Detail.LOW), (6, 900, Detail.LOW)]
)
def test_thin_images_are_described(backend, width, height, detail):
    image = ImageInput(np.full((height, width, 3), 90, np.uint8), "region")
    chunks = list(
        backend.generate(
            JobRequest(Task.READ_TEXT, image=image, detail=detail, max_new_tokens=8), CancelToken()
        )
    )
    assert "".join(chunks)
    assert "thin image padded" in backend.last_prepared.notes


def test_thin_image_padding_keeps_the_pixels():
    strip = np.arange(30 * 1900 * 3, dtype=np.uint32).astype(np.uint8).reshape(30, 1900, 3)
    padded = pad_thin_image(strip)
    assert padded.shape[1] == 1900 and padded.shape[0] * 10 >= 1900
    assert np.array_equal(padded[:30], strip) and (padded[30:] == 255).all()
    square = np.zeros((100, 100, 3), np.uint8)
    assert pad_thin_image(square) is square


def test_empty_recording_is_a_plain_sentence(backend):
    request = JobRequest(Task.TRANSCRIBE, audio=AudioInput(np.zeros(0, np.float32), "microphone"))
    with pytest.raises(InputError) as info:
        list(backend.generate(request, CancelToken()))
    assert info.value.sentence == "The recording is empty."


def test_a_very_short_recording_is_still_answered(backend):
    request = JobRequest(
        Task.TRANSCRIBE, audio=AudioInput(np.zeros(160, np.float32), "microphone"), max_new_tokens=4
    )
    assert "".join(backend.generate(request, CancelToken()))


@pytest.mark.parametrize(
    "failure",
    [
        lambda torch: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        lambda torch: RuntimeError("DefaultCPUAllocator: out of memory: you tried to allocate 11 GB"),
        lambda torch: MemoryError(),
    ],
    ids=["cuda-oom", "runtime-oom", "memory-error"],
)
def test_running_out_of_memory_while_loading_is_one_clear_sentence(tiny_model_dir, monkeypatch, failure):
    # A real out-of-memory cannot be provoked safely here: the weights loader is made to fail as
    # it would.
    import torch
    from transformers import Phi4MultimodalForCausalLM

    def fail(*args, **kwargs):
        raise failure(torch)

    monkeypatch.setattr(Phi4MultimodalForCausalLM, "from_pretrained", fail)
    b = Phi4LocalBackend(tiny_model_dir, device="cpu")
    with pytest.raises(OutOfMemoryError) as info:
        b.load(CancelToken())
    assert "not enough memory" in info.value.sentence
    assert "4-bit" in info.value.sentence and "text reader" in info.value.sentence
    assert not b.loaded


def test_loading_a_missing_model_says_so(tmp_path):
    with pytest.raises(ModelNotFoundError):
        Phi4LocalBackend(tmp_path / "absent").load(CancelToken())


def test_generating_before_loading_says_so(tiny_model_dir):
    with pytest.raises(BackendUnavailableError):
        list(Phi4LocalBackend(tiny_model_dir).generate(REQUESTS["text"](), CancelToken()))


def test_unload_frees_the_model(tiny_model_dir):
    b = Phi4LocalBackend(tiny_model_dir, device="cpu")
    b.load(CancelToken())
    ref = weakref.ref(b.model)
    b.unload()
    assert not b.loaded
    assert ref() is None
