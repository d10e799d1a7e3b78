"""How much memory the local model needs, read from its files before a single weight is loaded.

The estimate is the weights (every tensor the safetensors headers list, at the element size it
will be loaded in), the two LoRA adapters, a KV cache for one full 4096-token turn (from the
config's layer, head and width numbers), and headroom for the encoders' and the prefill's
activations. Only headers and JSON are read, so it costs milliseconds even for 11 GB of weights.

No torch and no transformers here: the numbers come from the files alone.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3
#: bytes per element of each safetensors dtype
DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
INDEX_NAME = "model.safetensors.index.json"
ADAPTER_FILES = ("vision-lora/adapter_model.safetensors", "speech-lora/adapter_model.safetensors")
#: Activations of the vision encoder (up to 37 crops of 1024 patches) and of a 4096-token
#: prefill, per byte of element size: 0.5 GiB x 2 = 1 GiB in bf16, 2 GiB in float32.
WORKING_BYTES_PER_ELEMENT_BYTE = GIB // 2
#: Decoder-layer linear weights that 4-bit / 8-bit quantization shrinks (bytes per element,
#: including the quantization constants).
QUANTIZED_BYTES = {"4bit": 0.55, "8bit": 1.05}


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        n = 1
        for dim in self.shape:
            n *= dim
        return n


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    adapters: int
    kv_cache: int
    working: int
    parameters: int  # elements in the base weights (for the log)

    @property
    def total(self) -> int:
        return self.weights + self.adapters + self.kv_cache + self.working


def read_tensor_table(path: Path) -> list[TensorEntry]:
    """Name, dtype and element count of every tensor in one safetensors file (header only)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length).decode("utf-8"))
    entries = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        entries.append(TensorEntry(name, str(entry["dtype"]), tuple(int(d) for d in entry["shape"])))
    return entries


def weight_files(folder: Path) -> list[Path]:
    """The shards the index names (or the single model.safetensors): what from_pretrained reads."""
    folder = Path(folder)
    index = folder / INDEX_NAME
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return [folder / name for name in sorted(set(weight_map.values()))]
    return [folder / "model.safetensors"]


def _loaded_bytes(entry: TensorEntry, element_size: int) -> int:
    """Floating tensors take the load dtype; integer tensors keep their own."""
    if entry.dtype in FLOAT_DTYPES:
        return entry.numel * element_size
    return entry.numel * DTYPE_BYTES.get(entry.dtype, element_size)


def _quantizable(entry: TensorEntry) -> bool:
    # The decoder layers' linear weights; embeddings, encoders, norms and lm_head stay as they are.
    return entry.name.startswith("model.layers.") and entry.name.endswith("_proj.weight")


def kv_cache_bytes(config: dict, tokens: int, element_size: int) -> int:
    heads = int(config.get("num_attention_heads") or 32)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or int(config.get("hidden_size") or 3072) // heads)
    layers = int(config.get("num_hidden_layers") or 32)
    return 2 * layers * kv_heads * head_dim * element_size * tokens


def estimate_memory(
    folder: Path, element_size: int, *, quantization: str = "none", tokens: int = 4096
) -> MemoryEstimate:
    """What loading `folder` with floating weights of `element_size` bytes needs, in bytes.

    Raises OSError / ValueError / KeyError when a file is unreadable; the caller decides.
    """
    folder = Path(folder)
    weights = parameters = 0
    quant_bytes = QUANTIZED_BYTES.get(quantization)
    for path in weight_files(folder):
        for entry in read_tensor_table(path):
            parameters += entry.numel
            if quant_bytes is not None and _quantizable(entry):
                weights += int(entry.numel * quant_bytes)
            else:
                weights += _loaded_bytes(entry, element_size)
    adapters = 0
    for rel in ADAPTER_FILES:
        path = folder / rel
        if path.is_file():
            adapters += sum(_loaded_bytes(e, element_size) for e in read_tensor_table(path))
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    kv_size = 2 if quant_bytes is not None else element_size  # quantized models compute in bf16
    return MemoryEstimate(
        weights=weights,
        adapters=adapters,
        kv_cache=kv_cache_bytes(config, tokens, kv_size),
        working=WORKING_BYTES_PER_ELEMENT_BYTE * kv_size,
        parameters=parameters,
    )


def gigabytes(n: int) -> str:
    """A byte count as a user reads it: "11.6" (GB, 10^9, as shops and file managers count)."""
    return f"{n / 1e9:.1f}"


def free_memory_bytes(device: str) -> int | None:
    """Memory free for the model now: the graphics card's on CUDA, else the computer's.

    None when it cannot be told (the load then goes ahead, as before).
    """
    if device == "cuda":
        try:
            import torch

            free, _total = torch.cuda.mem_get_info()
            return int(free)
        except Exception:
            return None
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        return None
