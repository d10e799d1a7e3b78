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
import logging
import math
import queue
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
    OutOfMemoryError,
    SightlineError,
)
from app.core.types import SAMPLE_RATE, JobRequest, Usage
from app.inference.base import BackendCheck, Capabilities, ModelBackend
from app.inference.prompts import build_prompt
from app.settings.schema import Settings

log = logging.getLogger(__name__)

#: Past this many tokens in one turn (prompt + answer) the model switches its RoPE regime and
#: transformers re-prefills the whole prompt once; keep every turn inside it.
TURN_TOKEN_LIMIT = 4096
#: Images thinner than this (long side / short side) are padded with white first: the image
#: processor refuses extreme aspect ratios, and a toolbar strip is still worth describing.
MAX_ASPECT = 10.0
#: Shortest audio the feature extractor handles; shorter clips are padded with silence.
MIN_AUDIO_SAMPLES = SAMPLE_RATE // 10
#: How often the caller wakes while waiting for the next chunk, to notice a cancel.
POLL_SECONDS = 0.05
#: Answers never shrink below this many tokens to fit the turn limit.
MIN_ANSWER_TOKENS = 64

VISION_ADAPTER = "vision"
SPEECH_ADAPTER = "speech"
ADAPTER_FOLDERS = {VISION_ADAPTER: "vision-lora", SPEECH_ADAPTER: "speech-lora"}

RUNTIME_MODULES = ("torch", "torchvision", "transformers", "peft")
INSTALL_HINT = "pip install torch torchvision transformers==5.23.0 peft==0.21.2"

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
        self.attn_implementation = ""
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
        if want == "cuda" and not has_cuda:
            raise BackendUnavailableError(
                "The device is set to cuda, but no NVIDIA graphics card is usable here. "
                "Set the device to auto in the settings."
            )
        if want == "mps" and not has_mps:
            raise BackendUnavailableError(
                "The device is set to mps, but Apple graphics are not usable here. "
                "Set the device to auto in the settings."
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

    def _load_locked(self, cancel: CancelToken) -> None:
        import torch
        from transformers import AutoProcessor, Phi4MultimodalForCausalLM

        self.notice = ""
        self.device = self._pick_device(torch)
        dtype = {"cuda": torch.bfloat16, "mps": torch.float16}.get(self.device, torch.float32)
        self.dtype_name = str(dtype).removeprefix("torch.")
        quant = self._quantization_config(torch)
        attn = "flash_attention_2" if self.device == "cuda" and self._flash_attention_usable() else "sdpa"
        if self.device == "cpu":
            self.notice = " ".join(filter(None, [self.notice, CPU_NOTICE]))
            log.warning("loading the local model on the CPU: answers will be slow")

        with _quiet_transformers():
            processor = AutoProcessor.from_pretrained(str(self.folder))
            # The processor loses its chat template on load; the tokenizer keeps it.
            if getattr(processor, "chat_template", None) is None:
                processor.chat_template = processor.tokenizer.chat_template
            cancel.raise_if_cancelled()

            kwargs: dict[str, Any] = {"dtype": dtype}
            if quant is not None:
                kwargs["quantization_config"] = quant
            if self.device != "cpu":
                kwargs["device_map"] = {"": self.device}
            try:
                model = Phi4MultimodalForCausalLM.from_pretrained(
                    str(self.folder), attn_implementation=attn, **kwargs
                )
            except (ImportError, ValueError) as exc:
                if attn == "sdpa":
                    raise
                log.info("flash attention refused (%s); loading with sdpa", exc)
                attn = "sdpa"
                model = Phi4MultimodalForCausalLM.from_pretrained(
                    str(self.folder), attn_implementation=attn, **kwargs
                )
            model.eval()
            self._model = model  # from here on, _release() frees it if anything below fails
            cancel.raise_if_cancelled()
            for adapter_name, sub in ADAPTER_FOLDERS.items():
                with warnings.catch_warnings():
                    # Two named adapters on one model is what we want; peft warns about it.
                    warnings.filterwarnings("ignore", message=".*multiple adapters.*")
                    model.load_adapter(str(self.folder / sub), adapter_name=adapter_name)
                cancel.raise_if_cancelled()

        self._processor = processor
        self.attn_implementation = attn
        self._adapter_state = "unset"
        self._use_adapter(None)
        log.info(
            "local model loaded from %s on %s (%s, %s, quantization %s)",
            self.folder,
            self.device,
            self.dtype_name,
            attn,
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

    def render_prompt(self, request: JobRequest) -> str:
        """The request as chat text, with one image and/or audio placeholder in the user turn."""
        processor = self._require_processor()
        prompt = build_prompt(request)
        media = (processor.image_token if prompt.with_image else "") + (
            processor.audio_token if prompt.with_audio else ""
        )
        messages = [{"role": "system", "content": prompt.system}]
        messages += [{"role": turn.role, "content": turn.text} for turn in prompt.history]
        messages.append({"role": "user", "content": media + prompt.user_text})
        return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def prepare(self, request: JobRequest) -> PreparedInputs:
        """Render, choose the crop cap that keeps the turn under the limit, and run the processor."""
        import numpy as np
        from PIL import Image

        processor = self._require_processor()
        text = self.render_prompt(request)
        notes: list[str] = []
        placeholders = int(request.image is not None) + int(request.audio is not None)
        text_tokens = len(processor.tokenizer(text, add_special_tokens=False)["input_ids"]) - placeholders

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

        max_new = int(request.max_new_tokens)
        image = None
        crops = 0
        image_tokens = 0
        if request.image is not None:
            pixels = request.image.pixels
            if pixels.shape[0] < 1 or pixels.shape[1] < 1:
                raise InputError("The image is empty.")
            padded = pad_thin_image(pixels)
            if padded is not pixels:
                notes.append("thin image padded")
            height, width = padded.shape[:2]
            fixed = text_tokens + audio_tokens + max_new
            crops = max(1, request.detail.max_crops)
            while crops > 1 and fixed + image_token_count(width, height, crops) > self.turn_token_limit:
                crops -= 1
            if crops < request.detail.max_crops:
                notes.append(f"crops capped at {crops} to fit {self.turn_token_limit} tokens")
            image_tokens = image_token_count(width, height, crops)
            image = Image.fromarray(np.ascontiguousarray(padded), "RGB")

        prompt_estimate = text_tokens + audio_tokens + image_tokens
        if prompt_estimate + max_new > self.turn_token_limit:
            max_new = max(MIN_ANSWER_TOKENS, self.turn_token_limit - prompt_estimate)
            notes.append(f"answer limited to {max_new} tokens")

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
        if prompt_tokens != prompt_estimate:
            log.debug("prompt estimate %d, processor gave %d", prompt_estimate, prompt_tokens)
        # The estimate decided the crop cap; if the processor counts differently, shrink once more.
        if image is not None and crops > 1 and prompt_tokens + max_new > self.turn_token_limit:
            over = prompt_tokens + max_new - self.turn_token_limit
            while crops > 1 and image_token_count(image.width, image.height, crops) > image_tokens - over:
                crops -= 1
            kwargs["images_kwargs"] = {"dynamic_hd": crops}
            inputs = processor(**kwargs)
            prompt_tokens = int(inputs["input_ids"].shape[1])
            image_tokens = int(inputs["num_img_tokens"][0]) if "num_img_tokens" in inputs else image_tokens
            notes.append(f"crops reduced to {crops} after counting")

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
        )
        self.last_prepared = prepared
        return prepared

    def model_inputs(self, prepared: PreparedInputs) -> dict[str, Any]:
        """The processor's tensors on the model's device, floating ones in the model's dtype."""
        model = self._require_model()
        dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
        device = model.device
        out: dict[str, Any] = {}
        for key, value in prepared.inputs.items():
            if key == "num_img_tokens" or not hasattr(value, "to"):
                continue
            out[key] = value.to(device, dtype) if value.is_floating_point() else value.to(device)
        return out

    def generation_kwargs(self, prepared: PreparedInputs) -> dict[str, Any]:
        """Greedy decoding with the placeholders suppressed (generating one crashes the next step)."""
        processor = self._require_processor()
        kwargs: dict[str, Any] = {
            "max_new_tokens": prepared.max_new_tokens,
            "do_sample": False,
            "suppress_tokens": [processor.image_token_id, processor.audio_token_id],
            "pad_token_id": processor.tokenizer.pad_token_id,
        }
        kwargs.update(self.generation_overrides)
        if "min_new_tokens" in kwargs:  # never ask for more than the answer may have
            kwargs["min_new_tokens"] = min(kwargs["min_new_tokens"], kwargs["max_new_tokens"])
        return kwargs

    # -- generate ---------------------------------------------------------------------------------

    def generate(self, request: JobRequest, cancel: CancelToken) -> Iterator[str]:
        self._require_model()
        while not self._lock.acquire(timeout=POLL_SECONDS):
            if cancel.cancelled:
                return
        try:
            yield from self._generate_locked(request, cancel)
        finally:
            self._lock.release()

    def _generate_locked(self, request: JobRequest, cancel: CancelToken) -> Iterator[str]:
        from transformers import StoppingCriteriaList

        model = self._require_model()
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

    def _require_model(self) -> Any:
        if self._model is None:
            raise BackendUnavailableError("The local Phi-4 model is not loaded yet.")
        return self._model

    def _require_processor(self) -> Any:
        if self._processor is None:
            raise BackendUnavailableError("The local Phi-4 model is not loaded yet.")
        return self._processor


__all__ = [
    "Phi4LocalBackend",
    "PreparedInputs",
    "image_token_count",
    "pad_thin_image",
    "TURN_TOKEN_LIMIT",
]
