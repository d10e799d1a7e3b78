"""What the tiny random model could not show before: each failure the real checkpoint would hit,
recreated on the CPU with transformers' own classes, and the local backend's guard against it.

- attention per sub-model: flash attention for the language model only; the encoders get sdpa
  (the audio encoder's mask breaks flash's unpadding; recreated below with the real mask);
- the vision encoder is bidirectional even when no crop is padded (sdpa would run it causally);
- prompt + answer never cross the 4096-token window (past it transformers drops the cache and
  decodes without context; recreated below);
- bf16 on CPUs that compute it natively, and a free-memory check before loading;
- the answer ends at <|end|> or <|endoftext|> whatever the folder's generation config says, and
  a folder whose processor and model disagree on placeholder ids is refused.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from app.core.cancel import CancelToken
from app.core.errors import InputError, ModelFormatError, OutOfMemoryError
from app.core.types import AudioInput, Detail, ImageInput, JobRequest, Task, Turn
from app.inference import memory_estimate, phi4_local
from app.inference.phi4_local import (
    MIN_ANSWER_TOKENS,
    TOO_LONG_SENTENCE,
    TURN_TOKEN_LIMIT,
    Phi4LocalBackend,
    attention_plan,
    choose_cpu_dtype,
    language_attention,
)

PROBE = "sightline_probe"


def _voice(seconds: float = 1.0) -> AudioInput:
    t = np.arange(int(16_000 * seconds)) / 16_000
    return AudioInput((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), "microphone")


def _photo(width: int, height: int, seed: int = 0) -> ImageInput:
    rng = np.random.default_rng(seed)
    return ImageInput(rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8), "camera")


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    b = Phi4LocalBackend(tiny_model_dir, device="cpu")
    b.load(CancelToken())
    yield b
    b.unload()


def _modules(model, class_name: str) -> list:
    return [m for m in model.modules() if type(m).__name__ == class_name]


# -- 1. attention per sub-model ------------------------------------------------------------------


def test_flash_attention_is_for_the_language_model_only():
    assert language_attention("cuda", flash_usable=True) == "flash_attention_2"
    assert language_attention("cuda", flash_usable=False) == "sdpa"
    assert language_attention("cpu", flash_usable=True) == "sdpa"
    assert language_attention("mps", flash_usable=True) == "sdpa"
    assert attention_plan("flash_attention_2") == {
        "": "flash_attention_2",
        "vision_config": "sdpa",
        "audio_config": "sdpa",
    }


@pytest.fixture
def probe_attention():
    """An attention function registered with transformers that records who calls it (then runs sdpa)."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    callers: list[str] = []

    def probe(module, *args, **kwargs):
        callers.append(type(module).__name__)
        return sdpa_attention_forward(module, *args, **kwargs)

    AttentionInterface.register(PROBE, probe)
    return callers


def test_the_language_models_attention_choice_reaches_it_and_nothing_else(
    tiny_model_dir, monkeypatch, probe_attention
):
    # Stands in for flash attention (not installable here): any name the language model gets
    # must stay with the language model.
    monkeypatch.setattr(Phi4LocalBackend, "_language_attention", lambda self: PROBE)
    b = Phi4LocalBackend(tiny_model_dir, device="cpu")
    b.load(CancelToken())
    try:
        model = b.model
        assert b.attention == {"": PROBE, "vision_config": "sdpa", "audio_config": "sdpa"}
        expected = {
            "Phi4MultimodalAttention": PROBE,
            "Phi4MultimodalVisionAttention": "sdpa",
            "Phi4MultimodalAudioAttention": "sdpa",
        }
        for class_name, implementation in expected.items():
            modules = _modules(model, class_name)
            assert modules, class_name
            assert {m.config._attn_implementation for m in modules} == {implementation}, class_name

        request = JobRequest(
            Task.ASK_IMAGE, image=_photo(300, 200), audio=_voice(), question="What is it?", max_new_tokens=3
        )
        b.generation_overrides = {"min_new_tokens": 3}
        assert "".join(b.generate(request, CancelToken()))
    finally:
        b.unload()
    # At run time, too: the image and audio went through the encoders without touching it.
    assert set(probe_attention) == {"Phi4MultimodalAttention"}


def test_the_audio_encoders_mask_cannot_go_through_flash_unpadding(backend):
    """Why the audio encoder never gets flash attention: its mask is not a padding mask."""
    import torch
    from transformers.modeling_flash_attention_utils import _unpad_input, _upad_input

    seen = []
    attention = _modules(backend.model, "Phi4MultimodalAudioAttention")[0]
    handle = attention.register_forward_pre_hook(lambda m, args: seen.append(args), with_kwargs=False)
    try:
        request = JobRequest(Task.TRANSCRIBE, audio=_voice(3.0), max_new_tokens=1)
        list(backend.generate(request, CancelToken()))
    finally:
        handle.remove()
    hidden, mask = seen[0][0], seen[0][1]
    # A 4-D float tensor: padding mask plus the learned relative position bias.
    assert mask.dim() == 4 and mask.is_floating_point()
    batch, length = hidden.shape[:2]
    heads, head_dim = attention.config.num_attention_heads, attention.head_dim
    q = torch.zeros(batch, length, heads, head_dim)
    with pytest.raises((IndexError, RuntimeError)):
        _upad_input(q, q.clone(), q.clone(), mask, length, _unpad_input)


# -- 2. the vision encoder is bidirectional ------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "unpadded"),
    [
        (448, 448, True),
        (1024, 1024, True),
        (1600, 1200, True),
        (1200, 800, True),
        (640, 480, False),
        (1920, 1080, False),
    ],
    ids=["square-448", "square-1024", "photo-4:3", "photo-3:2", "webcam-4:3", "screen-16:9"],
)
def test_the_first_patch_sees_a_later_patch(backend, width, height, unpadded):
    """All crops go through the encoder together, as the model sends them (at 12 crops)."""
    import torch
    from PIL import Image

    image = Image.fromarray(_photo(width, height).pixels)
    feats = backend.processor.image_processor([image], dynamic_hd=12, return_tensors="pt")
    pixels = feats["image_pixel_values"].flatten(0, 1)  # global view + crops
    masks = feats["image_attention_mask"].flatten(0, 1).bool()
    # Unpadded is the case that went wrong: no crop padded, so the encoder's mask is None and
    # sdpa falls back on the module's is_causal.
    assert bool(masks.all()) == unpadded
    encoder = backend.model.model.embed_tokens_extend.image_embed.img_processor

    def first_patch_of_first_crop(pixel_values):
        with torch.inference_mode():
            out = encoder(pixel_values, patch_attention_mask=masks)
        return out.last_hidden_state[1, 0].clone()

    before = first_patch_of_first_crop(pixels)
    changed = pixels.clone()
    # Every patch of the crop after its first changes (the random encoder's attention is nearly
    # one-hot, so a single patch might not be the one the first attends to).
    first = changed[1, :, :14, :14].clone()
    changed[1] *= -1
    changed[1, :, :14, :14] = first
    after = first_patch_of_first_crop(changed)
    assert not torch.allclose(before, after, atol=1e-6), "the first patch did not see a later one"
    assert all(not m.is_causal for m in _modules(backend.model, "Phi4MultimodalVisionAttention"))


# -- 3. the 4096-token window ----------------------------------------------------------------------


def _words(n: int) -> str:
    return " the" * n  # one token per word in the tiny tokenizer


def _prompt_tokens(backend, request) -> int:
    return len(
        backend.processor.tokenizer(backend.render_prompt(request), add_special_tokens=False)["input_ids"]
    )


def _request_of(backend, prompt_tokens: int, *, history=(), max_new_tokens: int = 64) -> JobRequest:
    """A text request whose rendered prompt is exactly `prompt_tokens` long."""

    def make(n: int) -> JobRequest:
        return JobRequest(
            Task.ASK_SPOKEN,
            question="Is it" + _words(n),
            history=tuple(history),
            max_new_tokens=max_new_tokens,
        )

    base = _prompt_tokens(backend, make(0))
    request = make(prompt_tokens - base)
    assert _prompt_tokens(backend, request) == prompt_tokens
    return request


class CacheSpy:
    """Records, for every forward pass of the model, how many tokens went in and how many the
    cache already held."""

    def __init__(self, model):
        self.steps: list[tuple[int, int]] = []
        self._handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        cache = kwargs.get("past_key_values")
        held = cache.get_seq_length() if cache is not None else 0
        self.steps.append((kwargs["input_ids"].shape[1], int(held)))

    def remove(self):
        self._handle.remove()


def test_past_the_window_transformers_decodes_without_context(backend):
    """The failure itself, recreated: let a turn cross 4096 and the cache is dropped there, while
    generate goes on feeding one token at a time."""
    request = _request_of(backend, 4080, max_new_tokens=32)
    backend.turn_token_limit = 8192  # the old behaviour: nothing stops the turn crossing
    backend.generation_overrides = {"min_new_tokens": 32}
    spy = CacheSpy(backend.model)
    try:
        list(backend.generate(request, CancelToken()))
    finally:
        spy.remove()
        backend.turn_token_limit = TURN_TOKEN_LIMIT
        backend.generation_overrides = {}
    without_context = [i for i, (n, held) in enumerate(spy.steps) if i > 0 and held == 0]
    assert without_context, spy.steps[-20:]
    assert all(spy.steps[i][0] == 1 for i in without_context)  # one token, nothing before it


@pytest.mark.parametrize(
    ("prompt", "asked", "answer"),
    [
        (4000, 512, 96),
        (4033, 16, 16),
        (4064, 32, 32),
        (4080, 16, 16),
        (4030, 64, 64),
    ],
)
def test_the_answer_gets_what_the_window_leaves(backend, prompt, asked, answer):
    prepared = backend.prepare(_request_of(backend, prompt, max_new_tokens=asked))
    assert prepared.prompt_tokens == prompt
    assert prepared.max_new_tokens == answer
    assert prepared.prompt_tokens + prepared.max_new_tokens <= TURN_TOKEN_LIMIT


@pytest.mark.parametrize("prompt", [4033, 4064, 4095, 4096, 4200])
def test_a_request_with_no_room_for_an_answer_is_refused_with_a_sentence(backend, prompt):
    request = _request_of(backend, prompt, max_new_tokens=512)
    with pytest.raises(InputError) as info:
        list(backend.generate(request, CancelToken()))
    assert info.value.sentence == TOO_LONG_SENTENCE


def test_a_recording_too_long_for_the_window_is_refused_with_a_sentence(backend):
    samples = np.zeros(16_000 * 330, np.float32)  # five and a half minutes: about 4,100 tokens
    samples[::50] = 0.1
    request = JobRequest(Task.TRANSCRIBE, audio=AudioInput(samples, "microphone"), max_new_tokens=512)
    with pytest.raises(InputError) as info:
        backend.prepare(request)
    match = re.fullmatch(
        r"The recording is too long for the local model; keep it under (\d+) seconds\.", info.value.sentence
    )
    assert match and 280 < int(match.group(1)) < 320, info.value.sentence


def test_the_oldest_turns_make_room_and_the_newest_stay(backend):
    history = []
    for i in range(8):
        history += [
            Turn("user", f"Question {i}:" + _words(300)),
            Turn("assistant", f"Answer {i}:" + _words(300)),
        ]
    request = JobRequest(Task.ASK_SPOKEN, question="And now?", history=tuple(history), max_new_tokens=512)
    assert _prompt_tokens(backend, request) > TURN_TOKEN_LIMIT
    prepared = backend.prepare(request)
    assert prepared.prompt_tokens + prepared.max_new_tokens <= TURN_TOKEN_LIMIT
    assert prepared.max_new_tokens >= MIN_ANSWER_TOKENS
    assert "Question 7:" in prepared.text and "Answer 7:" in prepared.text  # the latest exchange
    assert "Question 0:" not in prepared.text
    assert prepared.text.index("<|user|>Question") < prepared.text.index("<|assistant|>Answer")
    assert any("oldest turns" in note for note in prepared.notes)


def test_a_turn_at_the_boundary_keeps_its_cache_to_the_last_token(backend):
    """The old budget allowed 64 answer tokens after a 4,060-token prompt: 4,124 in all."""
    history = [Turn("user", "Earlier?" + _words(1500)), Turn("assistant", "Yes." + _words(1500))]
    request = _request_of(backend, 4060, history=history, max_new_tokens=64)
    backend.generation_overrides = {"min_new_tokens": 64}
    spy = CacheSpy(backend.model)
    try:
        list(backend.generate(request, CancelToken()))
    finally:
        spy.remove()
        backend.generation_overrides = {}
    prepared = backend.last_prepared
    assert prepared.prompt_tokens + prepared.max_new_tokens <= TURN_TOKEN_LIMIT
    assert backend.usage.tokens_out == prepared.max_new_tokens >= MIN_ANSWER_TOKENS
    # Every step after the prefill decodes on top of everything before it.
    for i, (n, held) in enumerate(spy.steps[1:], start=1):
        assert (n, held) == (1, spy.steps[0][0] + i - 1), (i, n, held)


def test_a_high_detail_screenshot_with_a_long_conversation_fits(backend):
    history = [Turn("user", "What is this?" + _words(900)), Turn("assistant", "A page." + _words(900))]
    request = JobRequest(
        Task.ASK_IMAGE,
        image=_photo(1920, 1080),
        question="And the button?",
        history=tuple(history),
        detail=Detail.HIGH,
        max_new_tokens=512,
    )
    prepared = backend.prepare(request)
    assert prepared.prompt_tokens + prepared.max_new_tokens <= TURN_TOKEN_LIMIT
    assert prepared.prompt_tokens == prepared.inputs["input_ids"].shape[1]
    assert prepared.crops < Detail.HIGH.max_crops


# -- 4. dtype on the CPU and the memory check ------------------------------------------------------


def test_cpu_dtype_choice():
    gb = 10**9
    # Native bf16: always bf16 (half the memory, full speed).
    assert choose_cpu_dtype(True, 32 * gb, 24 * gb, 12 * gb) == "bfloat16"
    # Emulated bf16 prefills several times slower: float32 while it fits, else bf16.
    assert choose_cpu_dtype(False, 32 * gb, 24 * gb, 12 * gb) == "float32"
    assert choose_cpu_dtype(False, 16 * gb, 24 * gb, 12 * gb) == "bfloat16"
    # Neither fits: None (the backend says how much is needed).
    assert choose_cpu_dtype(False, 8 * gb, 24 * gb, 12 * gb) is None
    assert choose_cpu_dtype(True, 8 * gb, 24 * gb, 12 * gb) is None
    assert choose_cpu_dtype(False, None, 24 * gb, 12 * gb) == "float32"


def test_a_cpu_with_native_bf16_loads_the_model_in_bf16(tiny_model_dir, monkeypatch):
    import torch

    monkeypatch.setattr(phi4_local, "cpu_has_native_bf16", lambda: True)
    b = Phi4LocalBackend(tiny_model_dir, device="cpu")
    b.load(CancelToken())
    try:
        assert b.dtype_name == "bfloat16"
        assert {p.dtype for p in b.model.parameters() if p.is_floating_point()} == {torch.bfloat16}
        b.generation_overrides = {"min_new_tokens": 4}
        request = JobRequest(Task.DESCRIBE_BRIEF, image=_photo(640, 480), max_new_tokens=4)
        assert "".join(b.generate(request, CancelToken()))
    finally:
        b.unload()


def test_a_cpu_without_it_uses_bf16_only_when_float32_would_not_fit(tiny_model_dir, monkeypatch):
    need = {s: memory_estimate.estimate_memory(tiny_model_dir, s).total for s in (2, 4)}
    monkeypatch.setattr(phi4_local, "cpu_has_native_bf16", lambda: False)
    free = (need[2] + need[4]) // 2
    monkeypatch.setattr(memory_estimate, "free_memory_bytes", lambda device: free)
    b = Phi4LocalBackend(tiny_model_dir, device="cpu")
    b.load(CancelToken())
    try:
        assert b.dtype_name == "bfloat16"
        assert "half precision" in b.notice and "slow" in b.notice
    finally:
        b.unload()


def test_too_little_free_memory_is_said_before_loading(tiny_model_dir, monkeypatch):
    from transformers import Phi4MultimodalForCausalLM

    calls = []
    monkeypatch.setattr(
        Phi4MultimodalForCausalLM, "from_pretrained", lambda *a, **k: calls.append(a) or pytest.fail("loaded")
    )
    monkeypatch.setattr(memory_estimate, "free_memory_bytes", lambda device: 400_000_000)
    b = Phi4LocalBackend(tiny_model_dir, device="cpu")
    with pytest.raises(OutOfMemoryError) as info:
        b.load(CancelToken())
    need = memory_estimate.estimate_memory(tiny_model_dir, 2).total
    assert info.value.sentence.startswith(
        f"This model needs about {need / 1e9:.1f} GB of memory; this computer has 0.4 GB free."
    )
    assert not calls and not b.loaded


# -- 5. end of answer and placeholder ids --------------------------------------------------------


def _copy(tiny_model_dir, tmp_path):
    folder = tmp_path / tiny_model_dir.name
    shutil.copytree(tiny_model_dir, folder)
    return folder


def _edit_json(path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def test_the_answer_ends_at_end_whatever_the_generation_config_says(tiny_model_dir, tmp_path):
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    folder = _copy(tiny_model_dir, tmp_path)
    b = Phi4LocalBackend(folder, device="cpu")
    b.load(CancelToken())
    tok = b.processor.tokenizer
    end_id, eot_id = tok.convert_tokens_to_ids("<|end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    b.unload()
    # A folder that names only <|endoftext|> as the end (as a converted copy may).
    for name in ("generation_config.json", "config.json"):
        _edit_json(folder / name, lambda d: d.update(eos_token_id=eot_id))

    class EmitAt(LogitsProcessor):
        """Makes the random model produce `token` as its 4th answer token."""

        def __init__(self, prompt_length: int, token: int):
            self.at, self.token = prompt_length + 3, token

        def __call__(self, input_ids, scores):
            if input_ids.shape[1] == self.at:
                scores = torch.full_like(scores, -float("inf"))
                scores[:, self.token] = 0.0
            return scores

    b = Phi4LocalBackend(folder, device="cpu")
    b.load(CancelToken())
    try:
        assert b.generation_kwargs(b.prepare(JobRequest(Task.ASK_SPOKEN, question="Hi?")))[
            "eos_token_id"
        ] == [
            end_id,
            eot_id,
        ]
        for token in (end_id, eot_id):
            request = JobRequest(Task.ASK_SPOKEN, question="Say three words.", max_new_tokens=40)
            prompt_length = b.prepare(request).prompt_tokens
            b.generation_overrides = {"logits_processor": LogitsProcessorList([EmitAt(prompt_length, token)])}
            list(b.generate(request, CancelToken()))
            assert b.usage.tokens_out == 4, (token, b.usage.tokens_out)
    finally:
        b.unload()


@pytest.mark.parametrize("what", ["image", "audio"])
def test_a_folder_whose_placeholder_ids_disagree_is_refused(tiny_model_dir, tmp_path, what):
    folder = _copy(tiny_model_dir, tmp_path)
    key, field = {"image": ("vision_config", "image_token_id"), "audio": ("audio_config", "audio_token_id")}[
        what
    ]
    _edit_json(folder / "config.json", lambda d: d[key].update({field: d[key][field] + 7}))
    b = Phi4LocalBackend(folder, device="cpu")
    with pytest.raises(ModelFormatError) as info:
        b.load(CancelToken())
    assert re.fullmatch(
        rf"The model folder does not fit together: its processor and its model use different {what} "
        r"placeholder tokens\. Download the model again\.",
        info.value.sentence,
    )
    assert not b.loaded


def test_matching_placeholder_ids_load(backend):
    config = backend.model.config
    assert backend.processor.image_token_id == config.vision_config.image_token_id
    assert backend.processor.audio_token_id == config.audio_config.audio_token_id
