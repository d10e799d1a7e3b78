"""Phi-4-multimodal at its real widths (one language-model layer, two vision layers, two audio
blocks, random weights), loaded through the same backend code as the real checkpoint.

It proves at real scale what the tiny model cannot: the tensor shapes end to end, the tied
output head, LoRA adapters of the real ranks on the real module names (and nowhere else), the
load dtype, and the memory estimate, both against what loading really took and extrapolated to
the real depth (32 layers, 27 vision layers, 24 audio blocks).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from app.core.cancel import CancelToken
from app.core.types import AudioInput, JobRequest, Task
from app.inference.memory_estimate import (
    estimate_memory,
    kv_cache_bytes,
    read_tensor_table,
    weight_files,
)
from app.inference.phi4_local import Phi4LocalBackend, choose_cpu_dtype, cpu_has_native_bf16
from tests.fixtures.fullwidth_phi4 import (
    AUDIO_BLOCKS,
    HEADS,
    HIDDEN,
    INTERMEDIATE,
    KV_HEADS,
    LAYERS,
    LORA,
    VISION_LAYERS,
    VOCAB,
    build_fullwidth_phi4,
)

LM_PROJECTIONS = ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")
HEAD_DIM = HIDDEN // HEADS


@pytest.fixture(scope="session")
def fullwidth_dir(tmp_path_factory):
    return build_fullwidth_phi4(tmp_path_factory.mktemp("fullwidth-phi4") / "Phi-4-multimodal-instruct")


@pytest.fixture(scope="module")
def fullwidth(fullwidth_dir):
    b = Phi4LocalBackend(fullwidth_dir, device="cpu")
    b.load(CancelToken())
    yield b
    b.unload()


def _tables(folder):
    return {e.name: e for path in weight_files(folder) for e in read_tensor_table(path)}


def test_the_checkpoint_has_the_real_widths_and_no_separate_output_head(fullwidth_dir):
    t = _tables(fullwidth_dir)
    shapes = {
        "model.embed_tokens.weight": (VOCAB, HIDDEN),
        "model.layers.0.self_attn.qkv_proj.weight": (HIDDEN + 2 * KV_HEADS * HEAD_DIM, HIDDEN),
        "model.layers.0.self_attn.o_proj.weight": (HIDDEN, HIDDEN),
        "model.layers.0.mlp.gate_up_proj.weight": (2 * INTERMEDIATE, HIDDEN),
        "model.layers.0.mlp.down_proj.weight": (HIDDEN, INTERMEDIATE),
        "model.embed_tokens_extend.image_embed.img_processor.encoder.layers.0.self_attn.q_proj.weight": (
            1152,
            1152,
        ),
        "model.embed_tokens_extend.image_embed.img_projection_up.weight": (HIDDEN, 1152),
        "model.embed_tokens_extend.audio_embed.encoder.encoders.0.self_attn.q_proj.weight": (1024, 1024),
        "model.embed_tokens_extend.audio_embed.up_proj_for_speech.weight": (HIDDEN, 1024),
    }
    for name, shape in shapes.items():
        assert t[name].shape == shape, name
        assert t[name].dtype == "BF16", name
    assert "lm_head.weight" not in t  # tied to the embeddings, as in the real checkpoint


def test_it_loads_with_the_head_tied_in_the_dtype_the_processor_calls_for(fullwidth):
    import torch

    model = fullwidth.model
    expected = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert fullwidth.dtype_name == str(expected).removeprefix("torch.")
    assert {p.dtype for p in model.parameters()} == {expected}
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert model.config.tie_word_embeddings


def test_a_spoken_question_goes_through_the_audio_encoder_and_the_speech_adapter_at_real_width(fullwidth):
    """The audio encoder (1024 wide) into the language model (3072 wide), the speech adapter on,
    to logits over the whole vocabulary. (The vision encoder's shapes are checked from the
    weights above: its forward pass at real width takes too long on a laptop CPU for a test.)"""
    import torch

    t = np.arange(16_000) / 16_000
    voice = AudioInput((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), "microphone")
    request = JobRequest(Task.ASK_SPOKEN, audio=voice, max_new_tokens=1)
    prepared = fullwidth.prepare(request)
    assert prepared.adapter == "speech"
    inputs = fullwidth.model_inputs(prepared)
    fullwidth._use_adapter("speech")
    try:
        assert fullwidth.active_adapter == "speech"
        with torch.inference_mode():
            out = fullwidth.model(**inputs, logits_to_keep=1)
    finally:
        fullwidth._use_adapter(None)
    assert out.logits.shape == (1, 1, VOCAB)
    assert torch.isfinite(out.logits).all()
    assert out.past_key_values.get_seq_length() == prepared.prompt_tokens
    key = out.past_key_values.layers[0].keys
    assert key.shape == (1, KV_HEADS, prepared.prompt_tokens, HEAD_DIM)


def test_the_adapters_sit_on_the_language_models_projections_at_their_real_ranks(fullwidth, fullwidth_dir):
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer
    from safetensors.torch import load_file

    model = fullwidth.model
    adapted = {name: m for name, m in model.named_modules() if isinstance(m, BaseTunerLayer)}
    # The real adapters' regex: the language model's four projections, and not the audio
    # encoder's o_proj / gate_up_proj / down_proj.
    assert set(adapted) == {f"model.layers.0.{p}" for p in LM_PROJECTIONS}
    for adapter, folder in (("vision", "vision-lora"), ("speech", "speech-lora")):
        rank, alpha, _ = LORA[adapter]
        saved = load_file(str(fullwidth_dir / folder / "adapter_model.safetensors"))
        for name, layer in adapted.items():
            assert layer.r[adapter] == rank
            assert layer.scaling[adapter] == alpha / rank
            # The file's numbers are the ones in the model: the key names matched.
            for part in ("lora_A", "lora_B"):
                loaded = getattr(layer, part)[adapter].weight
                assert torch.equal(loaded.to(torch.float32), saved[f"{name}.{part}.weight"].to(torch.float32))


def test_the_memory_estimate_is_what_loading_took(fullwidth, fullwidth_dir):
    model = fullwidth.model
    size = next(model.parameters()).element_size()
    estimate = estimate_memory(fullwidth_dir, size)
    loaded = sum(p.numel() * p.element_size() for p in model.parameters())
    assert abs((estimate.weights + estimate.adapters) - loaded) <= 0.001 * loaded
    assert estimate.kv_cache == 2 * 1 * KV_HEADS * HEAD_DIM * size * 4096


_PER_LAYER = [
    (re.compile(r"model\.layers\.(\d+)\."), LAYERS),
    (re.compile(r"\.img_processor\.encoder\.layers\.(\d+)\."), VISION_LAYERS),
    (re.compile(r"\.audio_embed\.encoder\.encoders\.(\d+)\."), AUDIO_BLOCKS),
]


def _at_real_depth(entries) -> int:
    """Elements of these tensors if every stack had its real number of layers."""
    total = 0
    for e in entries:
        for pattern, real in _PER_LAYER:
            if pattern.search(e.name):
                built = 1 + max(
                    int(pattern.search(x.name).group(1)) for x in entries if pattern.search(x.name)
                )
                total += e.numel * real // built
                break
        else:
            total += e.numel
    return total


def test_the_estimate_at_the_real_depth_matches_the_real_checkpoint(fullwidth_dir):
    base = _at_real_depth(list(_tables(fullwidth_dir).values()))
    adapters = {
        name: _at_real_depth(read_tensor_table(fullwidth_dir / f"{name}-lora" / "adapter_model.safetensors"))
        for name in ("vision", "speech")
    }
    # 4.74 B parameters with the head tied (5.36 B if it were not).
    assert 4.70e9 < base < 4.80e9, base
    # Each adapter is read on every decoded token: 0.74 GB (vision) and 0.92 GB (speech) in bf16.
    assert 0.72e9 < adapters["vision"] * 2 < 0.76e9
    assert 0.90e9 < adapters["speech"] * 2 < 0.94e9
    weights_bf16 = (base + sum(adapters.values())) * 2
    assert 11.0e9 < weights_bf16 < 11.3e9  # "about 11.1 GB" for base plus adapters
    # A KV cache of 128 KiB per token: half a GiB for a full 4096-token turn.
    config = {"num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "hidden_size": HIDDEN}
    kv = kv_cache_bytes({**config, "num_hidden_layers": LAYERS}, 4096, 2)
    assert kv == 128 * 1024 * 4096
    # What a user with too little memory hears names about 12.6 GB in bf16, twice that in float32.
    from app.inference.memory_estimate import WORKING_BYTES_PER_ELEMENT_BYTE, gigabytes

    need_bf16 = weights_bf16 + kv + 2 * WORKING_BYTES_PER_ELEMENT_BYTE
    assert gigabytes(need_bf16) in ("12.6", "12.7", "12.8")
    need_f32 = weights_bf16 * 2 + 2 * kv + 4 * WORKING_BYTES_PER_ELEMENT_BYTE
    assert 24e9 < need_f32 < 26e9
    # What that means for the load dtype on a laptop without native bf16: float32 only on a big
    # machine, bf16 on a 16 GB one with 13 GB free, and a sentence on an 8 GB one.
    assert choose_cpu_dtype(False, 32 * 10**9, need_f32, need_bf16) == "float32"
    assert choose_cpu_dtype(False, 13 * 10**9, need_f32, need_bf16) == "bfloat16"
    assert choose_cpu_dtype(False, 6 * 10**9, need_f32, need_bf16) is None
    assert choose_cpu_dtype(True, 13 * 10**9, need_f32, need_bf16) == "bfloat16"


def test_the_gpu_bench_counts_what_a_decoded_token_reads_at_real_size():
    """bench/gpu.py's ceiling: the real model (on the meta device: shapes, no memory) has 4.74 B
    parameters with the head tied, and a decoded token reads about 7.7 GB of its weights."""
    import torch
    from transformers import Phi4MultimodalForCausalLM

    from bench import gpu

    with torch.device("meta"):
        model = Phi4MultimodalForCausalLM._from_config(gpu.real_config(), dtype=torch.bfloat16)
    model.tie_weights()
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert 4.74e9 < sum(p.numel() for p in model.parameters()) < 4.75e9
    assert 7.6e9 < gpu.language_model_bytes(model) < 7.75e9
    assert gpu.kv_bytes_per_token(model.config, 2) == 128 * 1024


@pytest.mark.parametrize(
    ("name", "gbps"),
    [
        ("NVIDIA GH200 480GB", 4000),
        ("NVIDIA H200", 4800),
        ("NVIDIA H200 NVL", 4800),
        ("NVIDIA H20", 4000),
        ("NVIDIA H100 PCIe", 2000),
        ("NVIDIA H100 80GB HBM3", 3350),
        ("NVIDIA GeForce RTX 4070 Ti", 504),
    ],
)
def test_the_bench_reads_the_bandwidth_of_the_right_card(name, gbps):
    from bench import gpu

    assert gpu.bandwidth_for(name) == gbps
