"""GPU timings for Phi-4-multimodal at its real size, with random weights (no download needed).

    .venv/bin/python bench/gpu.py [--bandwidth GBPS] [--tokens 128] [--crops 4,12,36]
    .venv/bin/python bench/gpu.py --tiny      # the same code path on the CPU, tiny config

Real dimensions: 32 layers, hidden 3072, 24 heads x 128, 8 KV heads, vocab 200064, the real-size
SigLIP vision encoder and conformer audio encoder; bf16. Prints:
  - time to first token for a 1080p screenshot at 4, 12 and 36 crops (preprocess + prefill + 1 step)
  - decode tokens/s at batch 1 with sdpa, with flash-attention 2 if it imports, and with a static
    KV cache (which transformers compiles for decoding)
  - peak GPU memory
  - decode speed as a fraction of the memory-bandwidth limit: every decoded token reads all the
    language-model weights (and the KV cache) once, so tokens/s can at best be
    bandwidth / bytes read per token. The bandwidth comes from a table by device name or --bandwidth.
Stays under 8 minutes: variants are skipped, and said so, once the time budget is used.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TIME_BUDGET_S = 7 * 60
IMAGE_TOKEN_ID = 200010
AUDIO_TOKEN_ID = 200011

#: Peak memory bandwidth in GB/s by a fragment of torch.cuda.get_device_name() (first match wins).
BANDWIDTH_GBPS = [
    ("H200", 4800),
    ("H100 PCIe", 2000),
    ("H100", 3350),
    ("GH200", 4000),
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
    """The checkpoint's dimensions (the config class defaults are not all the checkpoint's)."""
    from transformers import Phi4MultimodalAudioConfig, Phi4MultimodalConfig, Phi4MultimodalVisionConfig

    head_dim = 3072 // 24
    rotary_half = int(head_dim * 0.75) // 2
    return Phi4MultimodalConfig(
        vocab_size=200064,
        hidden_size=3072,
        intermediate_size=8192,
        num_hidden_layers=32,
        num_attention_heads=24,
        num_key_value_heads=8,
        max_position_embeddings=131072,
        original_max_position_embeddings=4096,
        rope_parameters={
            "rope_type": "longrope",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.75,
            "short_factor": [1.0] * rotary_half,
            "long_factor": [1.0 + 0.1 * i for i in range(rotary_half)],
        },
        bos_token_id=199999,
        pad_token_id=199999,
        eos_token_id=[199999, 200020],
        vision_config=Phi4MultimodalVisionConfig(  # SigLIP-so400m: 1152 wide, 27 layers
            hidden_size=1152,
            intermediate_size=4304,
            num_hidden_layers=27,
            num_attention_heads=16,
            image_size=448,
            patch_size=14,
            crop_size=448,
            image_token_id=IMAGE_TOKEN_ID,
        ).to_dict(),
        audio_config=Phi4MultimodalAudioConfig(  # conformer: 1024 wide, 24 blocks
            hidden_size=1024,
            intermediate_size=1536,
            num_blocks=24,
            num_attention_heads=16,
            audio_token_id=AUDIO_TOKEN_ID,
        ).to_dict(),
    )


def tiny_setup():
    from tests.fixtures.tiny_phi4 import _build_tokenizer, tiny_config

    return tiny_config(_build_tokenizer())


def language_model_bytes(model) -> int:
    """Bytes one decoding step reads: decoder layers, final norm and lm_head (not the encoders,
    and of the input embedding only one row)."""
    total = 0
    for name, param in model.named_parameters():
        if "embed_tokens_extend" in name or "embed_tokens" in name:
            continue
        total += param.numel() * param.element_size()
    return total


def kv_bytes_per_token(config, element_size: int) -> int:
    head_dim = config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * element_size


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
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    crop_caps = [int(c) for c in args.crops.split(",") if c.strip()]

    import torch

    if not args.tiny and not torch.cuda.is_available():
        print(
            "bench/gpu.py needs an NVIDIA graphics card with CUDA, and none is visible here. "
            "Run it with --tiny to check the script on the processor."
        )
        return 2

    from transformers import Phi4MultimodalForCausalLM

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

    config = tiny_setup() if args.tiny else real_config()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):
        model = Phi4MultimodalForCausalLM._from_config(config, dtype=dtype, attn_implementation="sdpa").eval()
    sync()
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    lm_bytes = language_model_bytes(model)
    kv_per_token = kv_bytes_per_token(config, torch.tensor([], dtype=dtype).element_size())
    print(
        f"Phi-4-multimodal at real size with random weights on {name}" if not args.tiny else f"tiny on {name}"
    )
    print(
        f"  {params / 1e6:.1f} M parameters, {dtype}, built in {build_s:.1f} s; "
        f"language-model weights read per token {lm_bytes / 2**20:.1f} MiB, "
        f"KV {kv_per_token / 1024:.0f} KiB/token"
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

    # -- time to first token for a 1080p screenshot -----------------------------------------------
    print("  time to first token, 1920x1080 screenshot (preprocess + prefill + first token):")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for crops in crop_caps:
        if over_budget():
            print(f"    {crops:2d} crops: skipped (time budget used)")
            continue
        timings, prefill = [], []
        for rep in range(args.reps + 1):
            t = time.perf_counter()
            inputs, n_img = screenshot_inputs(config, crops, device, dtype)
            prep = time.perf_counter() - t
            first = timed_generate(inputs, 1)
            if rep:  # the first run warms up kernels
                timings.append(prep + first)
                prefill.append(first)
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if cuda else "n/a"
        total_tokens = inputs["input_ids"].shape[1]
        print(
            f"    {crops:2d} crops: {n_img:5d} image tokens ({total_tokens} in all): "
            f"{med(timings) * 1000:8.1f} ms  (model {med(prefill) * 1000:.1f} ms)  peak {peak}"
        )

    # -- decode speed -----------------------------------------------------------------------------
    context = 256
    prompt = text_inputs(config, context, device)

    def decode_speed(**extra) -> float:
        timed_generate(prompt, 4, **extra)  # warm-up (and compilation for the static cache)
        one = med(timed_generate(prompt, 1, **extra) for _ in range(args.reps))
        full = med(timed_generate(prompt, args.tokens, **extra) for _ in range(args.reps))
        return (args.tokens - 1) / max(full - one, 1e-9)

    variants: list[tuple[str, dict, str]] = [("sdpa", {}, "sdpa")]
    try:
        import flash_attn  # noqa: F401

        if cuda:
            variants.append(("flash-attention 2", {}, "flash_attention_2"))
    except Exception as exc:
        print(f"  flash-attention 2: not measured ({type(exc).__name__}: {exc})")
    variants.append(("sdpa + static cache (compiled on CUDA)", {"cache_implementation": "static"}, "sdpa"))

    print(f"  decode at batch 1, {context}-token context, {args.tokens} tokens:")
    results = []
    for label, extra, attn in variants:
        if over_budget():
            print(f"    {label}: skipped (time budget used)")
            continue
        try:
            model.set_attn_implementation(attn)
            tps = decode_speed(**extra)
        except Exception as exc:  # a variant that fails here is reported, not fatal
            print(f"    {label}: failed ({type(exc).__name__}: {str(exc)[:120]})")
            continue
        finally:
            model.set_attn_implementation("sdpa")
        results.append((label, tps))
        bytes_per_token = lm_bytes + kv_per_token * (context + args.tokens / 2)
        if bandwidth:
            limit = bandwidth * 1e9 / bytes_per_token
            share = f"{tps / limit:5.1%} of the {limit:.0f} tokens/s bandwidth limit ({bandwidth:.0f} GB/s)"
        else:
            share = "bandwidth unknown (pass --bandwidth GBPS)"
        print(f"    {label:38s} {tps:8.1f} tokens/s   {share}")

    if cuda:
        print(
            f"  peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated, "
            f"{torch.cuda.max_memory_reserved() / 2**30:.2f} GiB reserved"
        )
    print(f"  wall time {time.perf_counter() - started:.0f} s (budget {TIME_BUDGET_S} s)")
    return 0 if results else 1


if __name__ == "__main__":
    raise SystemExit(main())
