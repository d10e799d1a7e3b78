"""The local backend: Phi-4-multimodal-instruct through transformers' native classes.

Never uses trust_remote_code: a desktop app must not run code fetched from a model repository.
torch and transformers are imported inside the methods that need them, so the tray starts at once.

One generation at a time (a lock): switching LoRA adapters mutates the model. Generation runs on
a helper thread; text reaches the caller through a queue, and a StoppingCriteria that reads the
CancelToken ends it within one decoding step.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import logging
import math
import queue
import struct
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.cancel import CancelToken
from app.core.errors import (
    BackendUnavailableError,
    InputError,
    ModelFormatError,
    OutOfMemoryError,
    SightlineError,
)
from app.core.types import SAMPLE_RATE, JobRequest, Turn, Usage
from app.inference.base import BackendCheck, Capabilities, ModelBackend
from app.inference.grounding import trim_to_tokens
from app.inference.prompts import build_prompt
from app.settings.schema import Settings

log = logging.getLogger(__name__)

#: Past this many tokens in one turn (prompt + answer) the model switches its RoPE regime (the
#: long factors of its longrope scaling), and transformers 5.23 drops the KV cache at the switch:
#: Phi4MultimodalForCausalLM.prepare_inputs_for_generation sets past_key_values to None, while
#: generate still passes only the newest token, so every later step runs on one token without
#: context and the answer turns to garbage. Every turn stays inside this window.
TURN_TOKEN_LIMIT = 4096
#: Images thinner than this (long side / short side) are padded with white first: the image
#: processor refuses extreme aspect ratios, and a toolbar strip is still worth describing.
MAX_ASPECT = 10.0
#: Shortest audio the feature extractor handles; shorter clips are padded with silence.
MIN_AUDIO_SAMPLES = SAMPLE_RATE // 10
#: Audio placeholder tokens per second of recording (80 ms frames).
AUDIO_TOKENS_PER_SECOND = 12.5
#: How often the caller wakes while waiting for the next chunk, to notice a cancel.
POLL_SECONDS = 0.05
#: The shortest answer worth giving. To make room for it, the oldest follow-up turns are left
#: out; if the request alone leaves less than this, it is refused with a sentence.
MIN_ANSWER_TOKENS = 64
#: The encoders' attention: sdpa with a real padding mask. Never flash attention: the audio
#: encoder's mask is a 4-D float tensor (padding plus relative position bias) that flash's
#: unpadding cannot read, and the vision encoder is marked causal in transformers.
ENCODER_ATTENTION = "sdpa"
#: The tokens that end an answer, whatever generation_config.json says.
END_TOKENS = ("<|end|>", "<|endoftext|>")

VISION_ADAPTER = "vision"
SPEECH_ADAPTER = "speech"
ADAPTER_FOLDERS = {VISION_ADAPTER: "vision-lora", SPEECH_ADAPTER: "speech-lora"}

RUNTIME_MODULES = ("torch", "torchvision", "transformers", "peft")
INSTALL_HINT = "scripts/bootstrap.sh --local in a Sightline folder, or pip install 'sightline[local]'"

CPU_NOTICE = "The local model is running on the processor, without a graphics card, so answers will be slow."
LOAD_OOM_SENTENCE = (
    "There is not enough memory to load the local Phi-4 model. Choose 4-bit quantization in the "
    "settings, or use the on-device text reader, which needs much less."
)
GENERATE_OOM_SENTENCE = (
    "The computer ran out of memory while answering. Choose a lower detail level or 4-bit "
    "quantization in the settings, or use the on-device text reader."
)
LOAD_FAILED_SENTENCE = "The local Phi-4 model could not be loaded. The details are in the log."
NEEDS_MEMORY_SENTENCE = (
    "This model needs about {need} GB of memory; this computer has {free} GB free. "
    "Close other programs, or use the on-device text reader."
)
NEEDS_GPU_MEMORY_SENTENCE = (
    "This model needs about {need} GB of graphics memory; this graphics card has {free} GB free. "
    "Choose 4-bit quantization in the settings, or use the on-device text reader."
)
CPU_HALF_PRECISION_NOTICE = (
    "This processor has no fast half-precision arithmetic, so the model is loaded at half "
    "precision to fit in memory and reading images will be slower."
)
PLACEHOLDER_MISMATCH_SENTENCE = (
    "The model folder does not fit together: its processor and its model use different "
    "{what} placeholder tokens. Download the model again."
)
NO_END_TOKEN_SENTENCE = (
    "The model folder's tokenizer has no {token} token, so answers could not end. Download the model again."
)
TOO_LONG_SENTENCE = (
    "This question is too long for the local model, even without the earlier conversation. "
    "Ask a shorter question."
)
RECORDING_TOO_LONG_SENTENCE = (
    "The recording is too long for the local model; keep it under {seconds} seconds."
)
GENERATE_FAILED_SENTENCE = "The local Phi-4 model failed while answering. The details are in the log."


# ------------------------------------------------------------------------------------------------
# Image token arithmetic (pure; mirrors the processor's crop geometry, checked against it in tests)


def _grid_for(width: int, height: int, max_crops: int, crop: int) -> tuple[int, int]:
    """(columns, rows) of crops the image processor uses for this size and crop cap."""
    cols, rows = math.ceil(width / crop), math.ceil(height / crop)
    if cols * rows <= max_crops:
        return cols, rows
    aspect = width / height
    candidates = sorted(
        {(i, j) for i in range(1, max_crops + 1) for j in range(1, max_crops + 1) if i * j <= max_crops},
        key=lambda ij: ij[0] * ij[1],
    )
    best, best_diff = (1, 1), float("inf")
    for i, j in candidates:
        diff = abs(aspect - i / j)
        if diff < best_diff:
            best, best_diff = (i, j), diff
        elif diff == best_diff and width * height > 0.5 * crop * crop * i * j:
            best = (i, j)
    return best


def image_token_count(width: int, height: int, max_crops: int, *, crop: int = 448, patch: int = 14) -> int:
    """How many placeholder tokens one image of this size becomes with at most `max_crops` crops.

    A global view (256 tokens + separators) plus, for every 2x2 block of 14 px patches that holds
    image (not padding), one token, and one newline token per row of blocks.
    """
    cols, rows = _grid_for(width, height, max_crops, crop)
    target_w, target_h = crop * cols, crop * rows
    scale_w, scale_h = target_w / width, target_h / height
    if scale_w < scale_h:
        pad_w, pad_h = 0, target_h - int(height * scale_w)
    else:
        pad_w, pad_h = target_w - int(width * scale_h), 0
    per_crop = crop // patch
    mask_cols = per_crop * cols - (pad_w // patch if pad_w >= patch else 0)
    mask_rows = per_crop * rows - (pad_h // patch if pad_h >= patch else 0)
    token_rows, token_cols = math.ceil(mask_rows / 2), math.ceil(mask_cols / 2)
    global_tokens = (per_crop // 2) ** 2 + 1 + (per_crop // 2)  # 256 + separator + 16 newlines
    return global_tokens + token_rows * token_cols + token_rows


def pad_thin_image(pixels: Any, max_aspect: float = MAX_ASPECT) -> Any:
    """Pad an H x W x 3 array with white so that neither side is more than `max_aspect` times the other."""
    import numpy as np

    height, width = pixels.shape[:2]
    if width > height * max_aspect:
        new_w, new_h = width, math.ceil(width / max_aspect)
    elif height > width * max_aspect:
        new_w, new_h = math.ceil(height / max_aspect), height
    else:
        return pixels
    canvas = np.full((new_h, new_w, 3), 255, dtype=np.uint8)
    canvas[:height, :width] = pixels
    return canvas


# ------------------------------------------------------------------------------------------------


@dataclass
class PreparedInputs:
    """A request rendered for the model: tensors plus what the budget decided."""

    inputs: Any  # transformers BatchFeature, still on the CPU
    text: str  # the rendered prompt, placeholders not yet expanded
    adapter: str | None  # "vision", "speech" or None
    crops: int  # crop cap used (0 without an image)
    image_tokens: int
    prompt_tokens: int
    max_new_tokens: int
    notes: list[str] = field(default_factory=list)
    screen_text: str = ""  # the picture's text as it went into the prompt (trimmed to fit)


class _QueueStreamer:
    """Receives token ids from generate() on the generation thread and hands text to the caller.

    Runs on the generation thread: every piece of text crosses to the caller's thread through
    `chunks`, a queue.Queue, never through shared state.
    """

    def __init__(self, tokenizer: Any, chunks: queue.Queue):
        self._tokenizer = tokenizer
        self._chunks = chunks
        # Ids not yet handed over as text. Phi-4's tokenizer is byte-level, so the text of a run
        # of ids is the text of its parts joined; decoding only the pending ids keeps each step
        # O(1) instead of decoding the whole answer again at every token.
        self._pending: list[int] = []
        self._prompt_seen = False
        self.tokens_out = 0

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # the first call carries the prompt
            self._prompt_seen = True
            return
        ids = value.reshape(-1).tolist()
        self._pending.extend(ids)
        self.tokens_out += len(ids)
        self._flush(final=False)

    def end(self) -> None:
        self._flush(final=True)

    def _flush(self, *, final: bool) -> None:
        if not self._pending:
            return
        text = self._tokenizer.decode(
            self._pending, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        if not final and text.endswith("\ufffd"):
            return  # a character split across tokens: wait for its remaining bytes
        self._pending = []
        if text:
            self._chunks.put(text)


class _CancelCriteria:
    """A StoppingCriteria: stop as soon as the job's token or our own stop flag is set."""

    def __init__(self, cancel: CancelToken, stop: threading.Event):
        self._cancel = cancel
        self._stop = stop
        self._answer = None  # the two possible answers, made once: no tensor is built per step
        self._answers: dict[bool, Any] = {}

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = self._cancel.cancelled or self._stop.is_set()
        if self._answer is None or self._answer.shape[0] != input_ids.shape[0]:
            self._answers = {
                flag: torch.full((input_ids.shape[0],), flag, dtype=torch.bool, device=input_ids.device)
                for flag in (False, True)
            }
            self._answer = self._answers[False]
        return self._answers[done]


_DONE = object()


def _without_oldest_exchange(history: tuple[Turn, ...]) -> tuple[Turn, ...]:
    """History less its oldest turn, and any assistant turns that answered it."""
    return tuple(itertools.dropwhile(lambda turn: turn.role != "user", history[1:]))


def language_attention(device: str, flash_usable: bool) -> str:
    """The language model's attention: flash attention 2 on CUDA when it imports, else sdpa."""
    return "flash_attention_2" if device == "cuda" and flash_usable else "sdpa"


def attention_plan(language: str) -> dict[str, str]:
    """attn_implementation per sub-config, as transformers 5 takes it: "" is the language model.

    A plain string would be dispatched to every sub-model (configuration_utils' setter), so the
    encoders would get flash attention too and the audio encoder would crash on its mask.
    """
    return {"": language, "vision_config": ENCODER_ATTENTION, "audio_config": ENCODER_ATTENTION}


def make_vision_encoder_non_causal(model: Any) -> int:
    """Clear is_causal on every vision attention module; returns how many there were.

    transformers marks them causal; sdpa honours that whenever no crop is padded (the mask is
    None then: square images, 4:3 and 3:2 photos at 12 crops) and flash attention always does,
    so a patch would see only the patches before it. SigLIP is bidirectional.
    """
    from transformers.models.phi4_multimodal import modeling_phi4_multimodal as mm

    count = 0
    for module in model.modules():
        if isinstance(module, mm.Phi4MultimodalVisionAttention):
            module.is_causal = False
            count += 1
    return count


def cpu_has_native_bf16() -> bool:
    """Whether this processor computes in bfloat16 natively (AVX512-BF16 or AMX; bf16 on Arm)."""
    import platform

    try:
        import torch

        if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
            return True
    except Exception:  # an older torch without these probes: look at the CPU flags instead
        pass
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        if sys.platform == "darwin":
            import subprocess

            try:
                out = subprocess.run(
                    ["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True, timeout=5
                )
                return out.stdout.strip() == "1"
            except (OSError, subprocess.SubprocessError):
                return False
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                return any(line.startswith("Features") and " bf16" in line for line in f)
        except OSError:
            return False
    return False


def choose_cpu_dtype(
    native_bf16: bool, free: int | None, need_float32: int, need_bfloat16: int
) -> str | None:
    """ "bfloat16" or "float32" for a CPU load, or None when neither fits in `free` bytes.

    A processor with native bf16 always gets bf16 (half the memory, full speed). Without it,
    bf16 is emulated: decoding is no slower (it is memory-bound) but a prefill is several times
    slower, so float32 is used when it fits and bf16 only when float32 would not.
    """
    if native_bf16:
        return "bfloat16" if free is None or need_bfloat16 <= free else None
    if free is None or need_float32 <= free:
        return "float32"
    return "bfloat16" if need_bfloat16 <= free else None


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


@contextlib.contextmanager
def _quiet_transformers():
    """Keep transformers' load reports and progress bars out of the user's terminal and log."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


class Phi4LocalBackend(ModelBackend):
    name = "local"
    display_name = "the local Phi-4 model"
    capabilities = Capabilities(images=True, audio=True, streaming=True, local=True)
    #: prepare() trims a request's picture text to the turn's token budget itself
    trims_picture_text = True

    def __init__(
        self,
        folder: Path,
        *,
        device: str = "auto",
        quantization: str = "none",
        turn_token_limit: int = TURN_TOKEN_LIMIT,
    ):
        super().__init__()
        self.folder = Path(folder)
        self.requested_device = device
        self.quantization = quantization
        self.turn_token_limit = turn_token_limit
        #: extra keyword arguments for model.generate (tests: min_new_tokens, since random weights
        #: emit an end token at once)
        self.generation_overrides: dict[str, Any] = {}
        #: a sentence the user should hear about how the model runs here (e.g. slow on CPU)
        self.notice = ""
        self.device = ""  # "cuda", "mps" or "cpu" once loaded
        self.dtype_name = ""
        #: attn_implementation per sub-config, as passed to from_pretrained
        self.attention: dict[str, str] = {}
        self._end_ids: list[int] = []
        #: what the last prepare() decided (crops, token counts), for the log and tests
        self.last_prepared: PreparedInputs | None = None
        self._model: Any = None
        self._processor: Any = None
        self._adapter_state: str | None = "unset"
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Phi4LocalBackend:
        from app.inference.model_store import default_model_folder

        folder = (
            Path(settings.model_dir).expanduser() if settings.model_dir else default_model_folder(settings)
        )
        return cls(folder, device=settings.device, quantization=settings.quantization)

    # -- state ------------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model_id(self) -> str:
        where = f", {self.device}" if self.device else ""
        return f"{self.folder.name} (local{where})"

    @property
    def model(self) -> Any:
        """The loaded Phi4MultimodalForCausalLM (None before load)."""
        return self._model

    @property
    def processor(self) -> Any:
        return self._processor

    # -- check ------------------------------------------------------------------------------------

    def check(self) -> BackendCheck:
        missing = [name for name in RUNTIME_MODULES if importlib.util.find_spec(name) is None]
        if missing:
            if getattr(sys, "frozen", False):  # a packaged Sightline Light: pip cannot add to it
                return BackendCheck(
                    False,
                    "The local AI runtime is not installed in Sightline Light; "
                    "to add it, install Sightline Local AI.",
                )
            return BackendCheck(
                False,
                f"The local AI runtime is not installed (missing {', '.join(missing)}). "
                f"Add it with: {INSTALL_HINT}",
            )
        if self.quantization not in ("none", "4bit", "8bit"):
            return BackendCheck(
                False, f"The quantization setting {self.quantization} is unknown. Use none, 4bit or 8bit."
            )
        if self.requested_device not in ("auto", "cuda", "mps", "cpu"):
            return BackendCheck(
                False, f"The device setting {self.requested_device} is unknown. Use auto, cuda, mps or cpu."
            )
        from app.inference.model_store import inspect_model_folder

        report = inspect_model_folder(self.folder)
        if not report.ready:
            try:
                report.raise_if_not_ready()
            except SightlineError as exc:
                return BackendCheck(False, report.sentence, error=exc)
            return BackendCheck(False, report.sentence)
        return BackendCheck(True)

    # -- load -------------------------------------------------------------------------------------

    def _pick_device(self, torch: Any) -> str:
        want = self.requested_device
        has_cuda = torch.cuda.is_available()
        mps = getattr(torch.backends, "mps", None)
        has_mps = bool(mps and mps.is_available())
        unusable = {
            "cuda": "no NVIDIA graphics card is usable here",
            "mps": "Apple graphics are not usable here",
        }
        if (want == "cuda" and not has_cuda) or (want == "mps" and not has_mps):
            raise BackendUnavailableError(
                f"The device is set to {want}, but {unusable[want]}. Set the device to auto in the settings."
            )
        if want in ("cuda", "mps", "cpu"):
            return want
        return "cuda" if has_cuda else "mps" if has_mps else "cpu"

    def _flash_attention_usable(self) -> bool:
        if importlib.util.find_spec("flash_attn") is None:
            return False
        try:
            import flash_attn  # noqa: F401
        except Exception as exc:  # a broken build must not stop the model loading
            log.info("flash-attn present but unusable (%s); using sdpa", exc)
            return False
        return True

    def _quantization_config(self, torch: Any) -> Any:
        if self.quantization == "none":
            return None
        if self.device != "cuda":
            self.notice = (
                f"{self.quantization} quantization needs an NVIDIA graphics card, so the model is "
                "loaded at full size."
            )
            log.warning("quantization %s ignored on %s", self.quantization, self.device)
            return None
        if importlib.util.find_spec("bitsandbytes") is None:
            raise BackendUnavailableError(
                f"{self.quantization} quantization needs the bitsandbytes package. Add it with: "
                "pip install bitsandbytes"
            )
        from transformers import BitsAndBytesConfig

        # The multimodal embedding (vision/audio projections) and the output head stay in bf16.
        skip = ["model.embed_tokens_extend", "lm_head"]
        if self.quantization == "4bit":
            return BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16,
                llm_int8_skip_modules=skip,
            )
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)

    def load(self, cancel: CancelToken) -> None:
        if self._model is not None:
            return
        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
            raise BackendUnavailableError(self.check().reason)
        from app.inference.model_store import inspect_model_folder

        inspect_model_folder(self.folder).raise_if_not_ready()
        cancel.raise_if_cancelled()
        with self._lock:
            try:
                self._load_locked(cancel)
            except SightlineError:
                self._release()
                raise
            except BaseException as exc:
                self._release()
                if _is_oom(exc):
                    log.error("out of memory while loading %s: %s", self.folder, exc)
                    raise OutOfMemoryError(LOAD_OOM_SENTENCE, detail=repr(exc)) from exc
                if isinstance(exc, Exception):
                    log.exception("loading %s failed", self.folder)
                    raise BackendUnavailableError(LOAD_FAILED_SENTENCE, detail=repr(exc)) from exc
                raise

    def _language_attention(self) -> str:
        return language_attention(self.device, self.device == "cuda" and self._flash_attention_usable())

    def _choose_dtype(self, torch: Any, quant: Any) -> Any:
        """The load dtype, after checking that the model fits in the memory free now."""
        from app.inference.memory_estimate import estimate_memory, free_memory_bytes, gigabytes

        quantization = self.quantization if quant is not None else "none"
        try:
            need = {
                size: estimate_memory(self.folder, size, quantization=quantization).total for size in (2, 4)
            }
        except (OSError, ValueError, KeyError, struct.error) as exc:  # the load itself will say more
            log.warning("could not estimate the memory the model needs: %s", exc)
            need = None
        free = free_memory_bytes(self.device)
        if need is not None and free is not None:
            log.info(
                "memory: model needs about %s GB (bf16) / %s GB (float32), %s GB free",
                gigabytes(need[2]),
                gigabytes(need[4]),
                gigabytes(free),
            )

        def refuse(need_bytes: int) -> OutOfMemoryError:
            template = NEEDS_GPU_MEMORY_SENTENCE if self.device == "cuda" else NEEDS_MEMORY_SENTENCE
            sentence = template.format(need=gigabytes(need_bytes), free=gigabytes(free or 0))
            return OutOfMemoryError(sentence, detail=f"need {need_bytes} bytes, free {free} bytes")

        if self.device == "cpu":
            native = cpu_has_native_bf16()
            if need is None:
                return torch.bfloat16 if native else torch.float32
            name = choose_cpu_dtype(native, free, need[4], need[2])
            if name is None:
                raise refuse(need[2])
            if name == "bfloat16" and not native:
                self.notice = " ".join(filter(None, [self.notice, CPU_HALF_PRECISION_NOTICE]))
            return getattr(torch, name)
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float16
        if need is not None and free is not None and need[2] > free:
            raise refuse(need[2])
        return dtype

    def _check_placeholders(self, processor: Any, config: Any) -> None:
        """The processor writes these ids into the prompt; the model looks for the config's."""
        pairs = (
            ("image", processor.image_token_id, config.vision_config.image_token_id),
            ("audio", processor.audio_token_id, config.audio_config.audio_token_id),
        )
        for what, from_processor, from_config in pairs:
            if from_processor is None or int(from_processor) != int(from_config):
                raise ModelFormatError(
                    PLACEHOLDER_MISMATCH_SENTENCE.format(what=what),
                    detail=f"{what}: processor {from_processor}, config {from_config}",
                )

    def _end_token_ids(self, processor: Any) -> list[int]:
        tokenizer = processor.tokenizer
        ids = []
        for token in END_TOKENS:
            token_id = tokenizer.convert_tokens_to_ids(token)
            if token_id is None or (token_id == tokenizer.unk_token_id and token != tokenizer.unk_token):
                sentence = NO_END_TOKEN_SENTENCE.format(token=token)
                raise ModelFormatError(sentence, detail=f"{token} -> {token_id}")
            ids.append(int(token_id))
        return ids

    def _load_locked(self, cancel: CancelToken) -> None:
        import torch
        from transformers import AutoProcessor, Phi4MultimodalConfig, Phi4MultimodalForCausalLM

        self.notice = ""
        self.device = self._pick_device(torch)
        quant = self._quantization_config(torch)

        with _quiet_transformers():
            processor = AutoProcessor.from_pretrained(str(self.folder))
            # The processor loses its chat template on load; the tokenizer keeps it.
            if getattr(processor, "chat_template", None) is None:
                processor.chat_template = processor.tokenizer.chat_template
            config = Phi4MultimodalConfig.from_pretrained(str(self.folder))
            self._check_placeholders(processor, config)
            end_ids = self._end_token_ids(processor)
            cancel.raise_if_cancelled()

            dtype = self._choose_dtype(torch, quant)
            self.dtype_name = str(dtype).removeprefix("torch.")
            language = self._language_attention()
            if self.device == "cpu":
                self.notice = " ".join(filter(None, [self.notice, CPU_NOTICE]))
                log.warning("loading the local model on the CPU: answers will be slow")

            kwargs: dict[str, Any] = {"dtype": dtype, "config": config}
            if quant is not None:
                kwargs["quantization_config"] = quant
            if self.device != "cpu":
                kwargs["device_map"] = {"": self.device}
            try:
                model = Phi4MultimodalForCausalLM.from_pretrained(
                    str(self.folder), attn_implementation=attention_plan(language), **kwargs
                )
            except (ImportError, ValueError) as exc:
                if language == "sdpa":
                    raise
                log.info("flash attention refused (%s); loading with sdpa", exc)
                language = "sdpa"
                model = Phi4MultimodalForCausalLM.from_pretrained(
                    str(self.folder), attn_implementation=attention_plan(language), **kwargs
                )
            model.eval()
            self._model = model  # from here on, _release() frees it if anything below fails
            make_vision_encoder_non_causal(model)
            cancel.raise_if_cancelled()
            for adapter_name, sub in ADAPTER_FOLDERS.items():
                with warnings.catch_warnings():
                    # Two named adapters on one model is what we want; peft warns about it.
                    warnings.filterwarnings("ignore", message=".*multiple adapters.*")
                    model.load_adapter(str(self.folder / sub), adapter_name=adapter_name)
                cancel.raise_if_cancelled()

        self._processor = processor
        self._end_ids = end_ids
        self.attention = attention_plan(language)
        self._adapter_state = "unset"
        self._use_adapter(None)
        log.info(
            "local model loaded from %s on %s (%s, attention %s, quantization %s)",
            self.folder,
            self.device,
            self.dtype_name,
            self.attention,
            self.quantization if quant is not None else "none",
        )

    # -- unload -----------------------------------------------------------------------------------

    def unload(self) -> None:
        with self._lock:
            self._release()

    def _release(self) -> None:
        was_device = self.device
        self._model = None
        self._processor = None
        self._adapter_state = "unset"
        self.last_prepared = None
        import gc

        gc.collect()
        if was_device in ("cuda", "mps"):
            try:
                import torch

                if was_device == "cuda" and torch.cuda.is_available():
                    torch.cuda.empty_cache()
                elif was_device == "mps":
                    torch.mps.empty_cache()
            except Exception as exc:  # freeing memory must never raise at the user
                log.debug("empty_cache failed: %s", exc)

    # -- adapters ---------------------------------------------------------------------------------

    def _use_adapter(self, adapter: str | None) -> None:
        """Vision adapter for any image, speech for audio alone, none for text."""
        if adapter == self._adapter_state:
            return
        model = self._model
        if adapter is None:
            model.disable_adapters()
        else:
            model.enable_adapters()
            model.set_adapter(adapter)
        self._adapter_state = adapter

    @property
    def active_adapter(self) -> str | None:
        """The adapter the model uses now, read from the model itself (None: adapters off)."""
        if self._model is None:
            return None
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module in self._model.modules():
            if isinstance(module, BaseTunerLayer):
                if module.disable_adapters:
                    return None
                active = module.active_adapters
                return active[0] if active else None
        return None

    # -- preparing inputs -------------------------------------------------------------------------

    def render_prompt(
        self, request: JobRequest, history: tuple[Turn, ...] | None = None, screen_text: str | None = None
    ) -> str:
        """The request as chat text, with one image and/or audio placeholder in the user turn.

        `history` replaces the request's follow-up turns (prepare() leaves out the oldest ones
        when the turn would not fit); `screen_text` replaces the picture's text (prepare() trims
        it to the turn's budget).
        """
        processor = self._require(self._processor)
        prompt = build_prompt(request, screen_text)
        turns = prompt.history if history is None else history
        media = (processor.image_token if prompt.with_image else "") + (
            processor.audio_token if prompt.with_audio else ""
        )
        messages = [{"role": "system", "content": prompt.system}]
        messages += [{"role": turn.role, "content": turn.text} for turn in turns]
        messages.append({"role": "user", "content": media + prompt.user_text})
        return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _fit_crops(self, width: int, height: int, max_crops: int, other_tokens: int) -> int:
        """The largest crop cap up to `max_crops` whose image leaves `other_tokens` room in the turn."""
        crops = max(1, max_crops)
        while crops > 1 and other_tokens + image_token_count(width, height, crops) > self.turn_token_limit:
            crops -= 1
        return crops

    def prepare(self, request: JobRequest) -> PreparedInputs:
        """Render the request so that prompt + answer never exceed the turn limit, and run the processor.

        In order: the crop cap is lowered (down to one crop) so that the whole answer fits; if
        even then less than MIN_ANSWER_TOKENS would be left, the oldest follow-up exchanges are
        left out; the answer gets what remains (at most what was asked); and a request that
        still leaves no room for a useful answer is refused with a sentence.
        """
        import numpy as np
        from PIL import Image

        processor = self._require(self._processor)
        limit = self.turn_token_limit
        notes: list[str] = []
        placeholders = int(request.image is not None) + int(request.audio is not None)

        audio = None
        audio_tokens = 0
        if request.audio is not None:
            samples = np.nan_to_num(np.asarray(request.audio.samples, dtype=np.float32))
            if samples.size == 0:
                raise InputError("The recording is empty.")
            if samples.size < MIN_AUDIO_SAMPLES:
                samples = np.concatenate([samples, np.zeros(MIN_AUDIO_SAMPLES - samples.size, np.float32)])
            audio = samples
            feats = processor.audio_processor([audio], sampling_rate=SAMPLE_RATE, return_tensors="pt")
            audio_tokens = int(feats["audio_embed_sizes"][0])

        image = None
        width = height = 0
        if request.image is not None:
            pixels = request.image.pixels
            if pixels.shape[0] < 1 or pixels.shape[1] < 1:
                raise InputError("The image is empty.")
            padded = pad_thin_image(pixels)
            if padded is not pixels:
                notes.append("thin image padded")
            height, width = padded.shape[:2]
            image = Image.fromarray(np.ascontiguousarray(padded), "RGB")

        want = int(request.max_new_tokens)
        floor = min(want, MIN_ANSWER_TOKENS)
        history = tuple(request.history)
        screen_text = self._fit_screen_text(request, placeholders, audio_tokens, width, height, notes)
        dropped = 0
        while True:
            text = self.render_prompt(request, history, screen_text)
            text_tokens = len(processor.tokenizer(text, add_special_tokens=False)["input_ids"]) - placeholders
            fixed = text_tokens + audio_tokens
            crops = image_tokens = 0
            if image is not None:
                crops = self._fit_crops(width, height, request.detail.max_crops, fixed + want)
                image_tokens = image_token_count(width, height, crops)
            if fixed + image_tokens + floor <= limit or not history:
                break
            before = len(history)
            history = _without_oldest_exchange(history)
            dropped += before - len(history)
        if dropped:
            notes.append(f"left out the {dropped} oldest turns to fit {limit} tokens")
        if image is not None and crops < request.detail.max_crops:
            notes.append(f"crops capped at {crops} to fit {limit} tokens")

        kwargs: dict[str, Any] = {"text": text, "return_tensors": "pt"}
        if image is not None:
            kwargs["images"] = [image]
            kwargs["images_kwargs"] = {"dynamic_hd": crops}
        if audio is not None:
            kwargs["audio"] = [audio]
            kwargs["sampling_rate"] = SAMPLE_RATE
        inputs = processor(**kwargs)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        if image is not None and "num_img_tokens" in inputs:
            image_tokens = int(inputs["num_img_tokens"][0])
        prompt_estimate = fixed + image_tokens
        if prompt_tokens != prompt_estimate:
            log.debug("prompt estimate %d, processor gave %d", prompt_estimate, prompt_tokens)
        # The estimate decided the crop cap; if the processor counts differently, shrink once more.
        if image is not None and crops > 1 and prompt_tokens + want > limit:
            over = prompt_tokens + want - limit
            while crops > 1 and image_token_count(width, height, crops) > image_tokens - over:
                crops -= 1
            kwargs["images_kwargs"] = {"dynamic_hd": crops}
            inputs = processor(**kwargs)
            prompt_tokens = int(inputs["input_ids"].shape[1])
            image_tokens = int(inputs["num_img_tokens"][0]) if "num_img_tokens" in inputs else image_tokens
            notes.append(f"crops reduced to {crops} after counting")

        # The answer budget is what the window leaves: prompt + answer never exceed it.
        budget = limit - prompt_tokens
        if budget < floor:
            raise self._too_long(audio_tokens, prompt_tokens - audio_tokens, floor, prompt_tokens)
        max_new = min(want, budget)
        if max_new < want:
            notes.append(f"answer limited to {max_new} tokens")

        adapter = {"vision": VISION_ADAPTER, "speech": SPEECH_ADAPTER}.get(request.modality)
        prepared = PreparedInputs(
            inputs=inputs,
            text=text,
            adapter=adapter,
            crops=crops,
            image_tokens=image_tokens,
            prompt_tokens=prompt_tokens,
            max_new_tokens=max_new,
            notes=notes,
            screen_text=screen_text,
        )
        self.last_prepared = prepared
        return prepared

    def _fit_screen_text(
        self, request: JobRequest, placeholders: int, audio_tokens: int, width: int, height: int, notes: list
    ) -> str:
        """The picture's text, trimmed to what the turn leaves with the whole answer and the picture
        at its full crop cap: it is the first thing given up, before crops, history or the answer."""
        text = request.screen_text
        if not text or request.image is None:
            return ""
        tokenizer = self._require(self._processor).tokenizer

        def count(s: str) -> int:
            return len(tokenizer(s, add_special_tokens=False)["input_ids"])

        def prompt_tokens(screen: str) -> int:
            rendered = self.render_prompt(request, None, screen)
            return count(rendered) - placeholders + audio_tokens

        full_image = image_token_count(width, height, max(1, request.detail.max_crops))
        free = self.turn_token_limit - int(request.max_new_tokens) - full_image
        base = prompt_tokens("")
        whole = prompt_tokens(text)
        if whole <= free:
            return text
        overhead = prompt_tokens("x") - base - 1  # the lead and the instruction around the text
        trimmed = text
        budget = free - base - overhead
        while True:
            trimmed = trim_to_tokens(text, budget, count)
            if not trimmed or prompt_tokens(trimmed) <= free:
                break
            budget -= max(8, prompt_tokens(trimmed) - free)  # a line's count ran over: trim again
        total, limit = text.count("\n") + 1, self.turn_token_limit
        if not trimmed:
            notes.append(f"picture text ({total} lines) left out to fit {limit} tokens")
        elif trimmed != text:
            kept = trimmed.count("\n")  # the last line is the mark
            notes.append(f"picture text trimmed to {kept} of {total} lines to fit {limit} tokens")
        return trimmed

    def _too_long(self, audio_tokens: int, other_tokens: int, floor: int, prompt_tokens: int) -> InputError:
        detail = f"prompt {prompt_tokens} tokens (audio {audio_tokens}), window {self.turn_token_limit}"
        if audio_tokens > other_tokens:
            room = max(0, self.turn_token_limit - floor - other_tokens)
            seconds = max(1, int(room / AUDIO_TOKENS_PER_SECOND))
            return InputError(RECORDING_TOO_LONG_SENTENCE.format(seconds=seconds), detail=detail)
        return InputError(TOO_LONG_SENTENCE, detail=detail)

    def model_inputs(self, prepared: PreparedInputs) -> dict[str, Any]:
        """The processor's tensors on the model's device, floating ones in the model's dtype."""
        model = self._require(self._model)
        dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
        device = model.device
        out: dict[str, Any] = {}
        for key, value in prepared.inputs.items():
            if key == "num_img_tokens" or not hasattr(value, "to"):
                continue
            out[key] = value.to(device, dtype) if value.is_floating_point() else value.to(device)
        return out

    def generation_kwargs(self, prepared: PreparedInputs) -> dict[str, Any]:
        """Greedy decoding, ending at <|end|> or <|endoftext|>, with the placeholders suppressed
        (generating one crashes the next step)."""
        processor = self._require(self._processor)
        kwargs: dict[str, Any] = {
            "max_new_tokens": prepared.max_new_tokens,
            "do_sample": False,
            "suppress_tokens": [processor.image_token_id, processor.audio_token_id],
            "pad_token_id": processor.tokenizer.pad_token_id,
            # <|end|> closes an assistant turn, <|endoftext|> the text: stop at either, whatever
            # generation_config.json in the folder says.
            "eos_token_id": list(self._end_ids),
        }
        kwargs.update(self.generation_overrides)
        if "min_new_tokens" in kwargs:  # never ask for more than the answer may have
            kwargs["min_new_tokens"] = min(kwargs["min_new_tokens"], kwargs["max_new_tokens"])
        return kwargs

    # -- generate ---------------------------------------------------------------------------------

    def generate(self, request: JobRequest, cancel: CancelToken) -> Iterator[str]:
        self._require(self._model)
        while not self._lock.acquire(timeout=POLL_SECONDS):
            if cancel.cancelled:
                return
        try:
            yield from self._generate_locked(request, cancel)
        finally:
            self._lock.release()

    def _generate_locked(self, request: JobRequest, cancel: CancelToken) -> Iterator[str]:
        from transformers import StoppingCriteriaList

        model = self._require(self._model)
        self.usage = Usage()
        prepared = self.prepare(request)
        self.usage.tokens_in = prepared.prompt_tokens
        if prepared.notes:
            log.info("job %s: %s", request.job_id, "; ".join(prepared.notes))
        if cancel.cancelled:
            return
        self._use_adapter(prepared.adapter)
        inputs = self.model_inputs(prepared)

        chunks: queue.Queue = queue.Queue()
        stop = threading.Event()
        streamer = _QueueStreamer(self._processor.tokenizer, chunks)
        kwargs = self.generation_kwargs(prepared)
        kwargs["streamer"] = streamer
        kwargs["stopping_criteria"] = StoppingCriteriaList([_CancelCriteria(cancel, stop)])
        failure: list[BaseException] = []

        def run() -> None:
            # Generation thread: its text goes out through `chunks` (via the streamer), its
            # exception through `failure`, read by the caller only after join().
            try:
                import torch

                with torch.inference_mode():
                    model.generate(**inputs, **kwargs)
            except BaseException as exc:  # handed to the caller, re-raised there
                failure.append(exc)
            finally:
                chunks.put(_DONE)

        thread = threading.Thread(target=run, name=f"phi4-generate-{request.job_id}", daemon=True)
        thread.start()
        try:
            while True:
                try:
                    item = chunks.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    if cancel.cancelled:
                        break
                    continue
                if item is _DONE or cancel.cancelled:
                    break
                yield item
        finally:
            # Also reached when the consumer stops iterating early (GeneratorExit): stop the
            # thread cooperatively and wait for it, so no generation outlives this call.
            stop.set()
            thread.join()
            self.usage.tokens_out = streamer.tokens_out
        if failure and not cancel.cancelled:
            exc = failure[0]
            if isinstance(exc, SightlineError):
                raise exc
            if _is_oom(exc):
                self._empty_cache()
                raise OutOfMemoryError(GENERATE_OOM_SENTENCE, detail=repr(exc)) from exc
            log.error("generation failed", exc_info=exc)
            raise BackendUnavailableError(GENERATE_FAILED_SENTENCE, detail=repr(exc)) from exc

    # -- helpers ----------------------------------------------------------------------------------

    def _empty_cache(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()

    @staticmethod
    def _require(part: Any) -> Any:
        """The model or the processor, once loaded."""
        if part is None:
            raise BackendUnavailableError("The local Phi-4 model is not loaded yet.")
        return part


__all__ = [
    "Phi4LocalBackend",
    "PreparedInputs",
    "image_token_count",
    "pad_thin_image",
    "TURN_TOKEN_LIMIT",
]
