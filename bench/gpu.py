"""GPU timings for Phi-4-multimodal at its real size, with random weights (no download needed).

    .venv/bin/python bench/gpu.py [--bandwidth GBPS] [--tokens 128] [--crops 4,12,36]
    .venv/bin/python bench/gpu.py --tiny      # the same code path on the CPU, tiny config

The model is built as the app runs it: the real dimensions (32 layers, hidden 3072, 24 heads x
128, 8 KV heads, vocab 200064 with the output head tied to the embeddings: 4.74 B parameters;
the SigLIP vision and conformer audio encoders), bf16, attention per sub-model (flash attention
2 for the language model when it imports, sdpa for the encoders), the vision encoder made
bidirectional, and both LoRA adapters at their real ranks (vision r 256, speech r 320) loaded,
with one active while decoding. Prints:
  - time to the first token and to the first word (3 tokens) for a 1920x1080 screenshot at 4,
    12 and 36 crops, vision adapter on (preprocess + vision encoder + prefill + decoding);
  - decode tokens/s at batch 1 for each variant: sdpa, flash attention 2 (if it imports), a
    static KV cache without compilation, and a static cache with torch.compile in
    "reduce-overhead" mode (CUDA graphs), and which of them helped;
  - each as a fraction of the memory-bandwidth limit: every decoded token reads the language
    model's weights (about 7.7 GB: the decoder layers, the final norm and the tied head), the
    active adapter's (0.74 GB vision, 0.92 GB speech) and the KV cache once, so tokens/s can at
    best be bandwidth / bytes read per token. Bandwidth from a table by device name or
    --bandwidth;
  - peak GPU memory.
Goals on an H200: decode at >= 45 % of the bandwidth limit at batch 1, first word < 0.3 s for a
1080p screen. Stays under 8 minutes: variants are skipped, and said so, once the budget is used.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TIME_BUDGET_S = 7 * 60
GOAL_BANDWIDTH_SHARE = 0.45
GOAL_FIRST_WORD_S = 0.3
FIRST_WORD_TOKENS = 3
TINY_LORA_RANK = 8

#: Peak memory bandwidth in GB/s by a fragment of torch.cuda.get_device_name(). The first
#: fragment found in the name wins, so a longer name comes before any name it contains
#: ("GH200" before "H200", "H200" before "H20", "H100 PCIe" before "H100").
BANDWIDTH_GBPS = [
    ("GH200", 4000),
    ("GB200", 8000),
    ("H200", 4800),
    ("H20", 4000),
    ("H100 PCIe", 2000),
    ("H100 NVL", 3900),
    ("H100", 3350),
    ("B200", 8000),
    ("A100-SXM4-80GB", 2039),
    ("A100 80GB PCIe", 1935),
    ("A100", 1555),
    ("L40S", 864),
    ("L40", 864),
    ("L4", 300),
    ("A10G", 600),
    ("A10", 600),
    ("T4", 320),
    ("V100", 900),
    ("RTX 5090", 1792),
    ("RTX 4090", 1008),
    ("RTX 4080", 717),
    ("RTX 4070 Ti", 504),
    ("RTX 4070", 504),
    ("RTX 4060 Ti", 288),
    ("RTX 4060", 272),
    ("RTX 3090", 936),
    ("RTX 3080", 760),
    ("RTX 3070", 448),
    ("RTX 3060", 360),
    ("RTX A6000", 768),
    ("RTX 6000 Ada", 960),
]


def bandwidth_for(name: str) -> float | None:
    for fragment, gbps in BANDWIDTH_GBPS:
        if fragment.lower() in name.lower():
            return float(gbps)
    return None


def real_config():
    """The checkpoint's dimensions (shared with the full-width test model)."""
    from tests.fixtures.fullwidth_phi4 import real_config as config

    return config()


def tiny_setup():
    from tests.fixtures.tiny_phi4 import _build_tokenizer, tiny_config

    return tiny_config(_build_tokenizer())


def language_model_bytes(model) -> int:
    """Bytes of base weights one decoding step reads: the decoder layers, the final norm and the
    output head (tied to the embeddings in the real checkpoint, and read in full as the head;
    of the input embedding only one row). Not the encoders, not the adapters."""
    total = 0
    for name, param in model.named_parameters():
        if "lora_" in name or not (name.startswith("model.layers.") or name.startswith("model.norm.")):
            continue
        total += param.numel() * param.element_size()
    head = model.lm_head.weight
    return total + head.numel() * head.element_size()


def adapter_bytes(model, adapter: str) -> int:
    """Bytes of one adapter's LoRA matrices (read on every step while it is active)."""
    return sum(
        p.numel() * p.element_size()
        for n, p in model.named_parameters()
        if "lora_" in n and f".{adapter}." in n
    )


def kv_bytes_per_token(config, element_size: int) -> int:
    head_dim = config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * element_size


def load_adapters(model, tiny: bool) -> None:
    """Both adapters at their real ranks (tiny: rank 8), keyed as the converter writes them."""
    from tests.fixtures.fullwidth_phi4 import LORA, SEED, lora_config, lora_state_dict

    adapters = []
    for n, adapter in enumerate(LORA):
        config = lora_config(adapter)
        if tiny:
            config.r, config.lora_alpha = TINY_LORA_RANK, 2 * TINY_LORA_RANK
        # All state dicts first: once one adapter is in, the targets are no longer plain Linears.
        adapters.append((adapter, config, lora_state_dict(model, config.r, seed=SEED + 1 + n)))
    for adapter, config, state in adapters:
        model.load_adapter(adapter_name=adapter, peft_config=config, adapter_state_dict=state)


def screenshot_inputs(config, crops: int, device, dtype, prompt_tokens: int = 120):
    """A 1080p screen through the real image processor, and a prompt with its placeholders."""
    import numpy as np
    import torch
    from PIL import Image
    from transformers import Phi4MultimodalImageProcessor

    from bench.pipeline import synthesise_screen

    image = Image.fromarray(synthesise_screen(1920, 1080))
    feats = Phi4MultimodalImageProcessor()([image], dynamic_hd=crops, return_tensors="pt")
    n_img = int(feats["num_img_tokens"][0])
    rng = np.random.default_rng(crops)
    text = rng.integers(100, min(config.vocab_size, 199_000) - 100, size=prompt_tokens).tolist()
    image_id = config.vision_config.image_token_id
    ids = text[:20] + [image_id] * n_img + text[20:]
    return {
        "input_ids": torch.tensor([ids], device=device),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long, device=device),
        "image_pixel_values": feats["image_pixel_values"].to(device, dtype),
        "image_sizes": feats["image_sizes"].to(device),
        "image_attention_mask": feats["image_attention_mask"].to(device, dtype),
    }, n_img


def text_inputs(config, n: int, device):
    import torch

    low = 10  # clear of the special and placeholder ids at the start of the tiny vocabulary
    ids = (torch.arange(n, device=device) % (min(config.vocab_size, 199_000) - low) + low).unsqueeze(0)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="run the code path on the CPU, tiny config")
    parser.add_argument("--bandwidth", type=float, help="card memory bandwidth in GB/s (else from a table)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens decoded per speed measurement")
    parser.add_argument("--crops", default="4,12,36", help="crop caps for the time-to-first-token runs")
    parser.add_argument(
        "--adapter", default="vision", choices=["vision", "speech"], help="active while decoding"
    )
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    crop_caps = [int(c) for c in args.crops.split(",") if c.strip()]

    import warnings

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # load reports of the adapters' state dicts are noise here
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*multiple adapters.*")
    if args.tiny:  # the code path, quickly: fewer tokens, repetitions and crop caps
        args.tokens = min(args.tokens, 32)
        args.reps = min(args.reps, 1)
        crop_caps = [c for c in crop_caps if c <= 12] or [4]

    if not args.tiny and not torch.cuda.is_available():
        print(
            "bench/gpu.py needs an NVIDIA graphics card with CUDA, and none is visible here. "
            "Run it with --tiny to check the script on the processor."
        )
        return 2

    from app.inference.phi4_local import (
        attention_plan,
        language_attention,
        make_vision_encoder_non_causal,
    )
    from tests.fixtures.fullwidth_phi4 import make_model

    started = time.perf_counter()
    device = torch.device("cpu" if args.tiny else "cuda")
    dtype = torch.float32 if args.tiny else torch.bfloat16
    cuda = device.type == "cuda"
    name = "CPU (tiny config)" if args.tiny else torch.cuda.get_device_name(0)
    bandwidth = args.bandwidth or (None if args.tiny else bandwidth_for(name))

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def over_budget() -> bool:
        return time.perf_counter() - started > TIME_BUDGET_S

    try:
        import flash_attn  # noqa: F401

        flash = cuda
        flash_note = "" if cuda else " (flash attention needs CUDA)"
    except Exception as exc:
        flash = False
        flash_note = f" (flash attention not importable: {type(exc).__name__}: {str(exc)[:80]})"
    language = language_attention(device.type, flash)

    config = tiny_setup() if args.tiny else real_config()
    t0 = time.perf_counter()
    model = make_model(config, dtype, device=str(device), attn_implementation=attention_plan(language))
    make_vision_encoder_non_causal(model)
    base_params = sum(p.numel() for p in model.parameters())
    load_adapters(model, args.tiny)
    model.enable_adapters()
    model.set_adapter(args.adapter)
    sync()
    build_s = time.perf_counter() - t0

    element = torch.tensor([], dtype=dtype).element_size()
    lm_bytes = language_model_bytes(model)
    lora_bytes = adapter_bytes(model, args.adapter)
    kv_per_token = kv_bytes_per_token(config, element)
    print(
        f"Phi-4-multimodal at real size with random weights on {name}" if not args.tiny else f"tiny on {name}"
    )
    print(
        f"  {base_params / 1e9:.2f} B ({base_params / 1e6:.1f} M) parameters "
        f"(head tied: {bool(config.tie_word_embeddings)}), {dtype}, "
        f"built in {build_s:.1f} s; attention {attention_plan(language)}{flash_note}"
    )
    print(
        f"  read per decoded token: language model {lm_bytes / 1e9:.2f} GB + {args.adapter} adapter "
        f"{lora_bytes / 1e9:.2f} GB + KV {kv_per_token / 1024:.0f} KiB/token"
    )
    gen = {"do_sample": False, "pad_token_id": config.pad_token_id}
    med = statistics.median

    def timed_generate(inputs, new_tokens: int, **extra) -> float:
        sync()
        t = time.perf_counter()
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **gen, **extra)
        sync()
        return time.perf_counter() - t

    # -- first token and first word for a 1080p screenshot, vision adapter on -------------------
    model.set_adapter("vision")
    print("  1920x1080 screenshot, vision adapter on (preprocess + encoder + prefill + decoding):")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    first_words: dict[int, float] = {}
    for crops in crop_caps:
        if over_budget():
            print(f"    {crops:2d} crops: skipped (time budget used)")
            continue
        firsts, words = [], []
        for rep in range(args.reps + 1):
            t = time.perf_counter()
            inputs, n_img = screenshot_inputs(config, crops, device, dtype)
            prep = time.perf_counter() - t
            first = timed_generate(inputs, 1)
            word = timed_generate(inputs, FIRST_WORD_TOKENS)
            if rep:  # the first run warms up kernels
                firsts.append(prep + first)
                words.append(prep + word)
        first_words[crops] = med(words)
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if cuda else "n/a"
        total_tokens = inputs["input_ids"].shape[1]
        print(
            f"    {crops:2d} crops: {n_img:5d} image tokens ({total_tokens} in all): first token "
            f"{med(firsts) * 1000:7.1f} ms, first word {med(words) * 1000:7.1f} ms  peak {peak}"
        )
    model.set_adapter(args.adapter)

    # -- decode speed -----------------------------------------------------------------------------
    context = 256
    prompt = text_inputs(config, context, device)

    def decode_speed(**extra) -> float:
        timed_generate(prompt, 4, **extra)  # warm-up (and compilation for the compiled variant)
        timed_generate(prompt, args.tokens, **extra)  # CUDA graphs are captured per length
        one = med(timed_generate(prompt, 1, **extra) for _ in range(args.reps))
        full = med(timed_generate(prompt, args.tokens, **extra) for _ in range(args.reps))
        return (args.tokens - 1) / max(full - one, 1e-9)

    plan_sdpa = attention_plan("sdpa")
    variants: list[tuple[str, dict, dict]] = [("sdpa, dynamic cache", {}, plan_sdpa)]
    if flash:
        variants.append(("flash-attention 2, dynamic cache", {}, attention_plan("flash_attention_2")))
    best_plan = attention_plan(language)
    variants.append(
        ("static cache, no compile", {"cache_implementation": "static", "disable_compile": True}, best_plan)
    )
    if cuda:
        variants.append(
            ("static cache + torch.compile (CUDA graphs)", {"cache_implementation": "static"}, best_plan)
        )
    else:
        print(
            "  static cache + torch.compile (CUDA graphs): not measured (transformers compiles on CUDA only)"
        )

    print(f"  decode at batch 1, {args.adapter} adapter on, {context}-token context, {args.tokens} tokens:")
    results: list[tuple[str, float, float | None]] = []
    bytes_per_token = lm_bytes + lora_bytes + kv_per_token * (context + args.tokens / 2)
    limit = bandwidth * 1e9 / bytes_per_token if bandwidth else None
    for label, extra, plan in variants:
        if over_budget():
            print(f"    {label}: skipped (time budget used)")
            continue
        try:
            model.set_attn_implementation(plan)
            tps = decode_speed(**extra)
        except Exception as exc:  # a variant that fails here is reported, not fatal
            print(f"    {label}: failed ({type(exc).__name__}: {str(exc)[:160]})")
            continue
        finally:
            model.set_attn_implementation(best_plan)
        share = tps / limit if limit else None
        results.append((label, tps, share))
        if limit:
            note = f"{share:5.1%} of the {limit:.0f} tokens/s bandwidth limit ({bandwidth:.0f} GB/s)"
        else:
            note = "bandwidth unknown (pass --bandwidth GBPS)"
        print(f"    {label:44s} {tps:8.1f} tokens/s   {note}")

    if results:
        baseline = results[0][1]
        best_label, best_tps, best_share = max(results, key=lambda r: r[1])
        helped = [f"{label} x{tps / baseline:.2f}" for label, tps, _ in results[1:] if tps > baseline * 1.03]
        print(f"  helped over plain sdpa: {', '.join(helped) if helped else 'none'}")
        if best_share is not None:
            verdict = "met" if best_share >= GOAL_BANDWIDTH_SHARE else "NOT met"
            print(
                f"  goal decode >= {GOAL_BANDWIDTH_SHARE:.0%} of the limit: {verdict} "
                f"({best_label}: {best_share:.1%})"
            )
    if 12 in first_words:
        verdict = "met" if first_words[12] < GOAL_FIRST_WORD_S else "NOT met"
        print(
            f"  goal first word < {GOAL_FIRST_WORD_S} s for a 1080p screen (12 crops, the normal "
            f"detail): {verdict} ({first_words[12]:.3f} s)"
        )
    if cuda:
        print(
            f"  peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated, "
            f"{torch.cuda.max_memory_reserved() / 2**30:.2f} GiB reserved"
        )
    print(f"  wall time {time.perf_counter() - started:.0f} s (budget {TIME_BUDGET_S} s)")
    return 0 if results else 1


if __name__ == "__main__":
    raise SystemExit(main())
