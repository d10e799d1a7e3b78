"""Frozen request and result types that travel between threads.

Images and audio are numpy arrays made read-only, so a request handed to the worker thread can
never be changed under it.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is light, but keep core importable without it for type checks only
    import numpy as np

SAMPLE_RATE = 16_000


def _frozen_array(array: Any) -> Any:
    import numpy as np

    arr = np.ascontiguousarray(array)
    if arr is array:
        arr = arr.copy()
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True)
class Bounds:
    """A rectangle in physical screen pixels (or image pixels for files)."""

    x: int
    y: int
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width} by {self.height} at {self.x}, {self.y}"


@dataclass(frozen=True, eq=False)
class ImageInput:
    """An RGB image (H x W x 3, uint8), where it came from and when."""

    pixels: np.ndarray
    source: str  # "screen", "window", "region", "pointer", "file", "camera"
    bounds: Bounds | None = None
    captured_at: float = field(default_factory=time.time)
    note: str = ""  # something the user should hear about the capture, e.g. "clipped to the screen"

    def __post_init__(self) -> None:
        pixels = self.pixels
        if getattr(pixels, "ndim", 0) != 3 or pixels.shape[2] != 3 or str(pixels.dtype) != "uint8":
            raise ValueError(f"ImageInput needs H x W x 3 uint8 pixels, got {getattr(pixels, 'shape', None)}")
        object.__setattr__(self, "pixels", _frozen_array(pixels))

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def to_pil(self):
        from PIL import Image

        return Image.fromarray(self.pixels, "RGB")


@dataclass(frozen=True, eq=False)
class AudioInput:
    """Mono float32 samples in [-1, 1] at 16 kHz, where they came from and when."""

    samples: np.ndarray
    source: str  # "microphone", "file"
    sample_rate: int = SAMPLE_RATE
    captured_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        s = self.samples
        if getattr(s, "ndim", 0) != 1 or str(s.dtype) != "float32":
            raise ValueError("AudioInput needs 1-D float32 samples")
        if self.sample_rate != SAMPLE_RATE:
            raise ValueError(f"AudioInput must be {SAMPLE_RATE} Hz; resample first")
        object.__setattr__(self, "samples", _frozen_array(s))

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


class Task(enum.Enum):
    """What the user asked for. Each has a prompt in app.inference.prompts."""

    DESCRIBE_BRIEF = "describe_brief"
    DESCRIBE_FULL = "describe_full"
    READ_TEXT = "read_text"
    CAMERA_SCENE = "camera_scene"
    CAMERA_DOCUMENT = "camera_document"
    ASK_IMAGE = "ask_image"  # typed or spoken question about an image
    TRANSCRIBE = "transcribe"
    ASK_SPOKEN = "ask_spoken"  # spoken (or typed) question, no image
    TRANSLATE = "translate"  # the question's text, translated into the answer language

    @property
    def needs_image(self) -> bool:
        return self in _IMAGE_TASKS

    @property
    def needs_audio(self) -> bool:
        return self is Task.TRANSCRIBE


_IMAGE_TASKS = {
    Task.DESCRIBE_BRIEF,
    Task.DESCRIBE_FULL,
    Task.READ_TEXT,
    Task.CAMERA_SCENE,
    Task.CAMERA_DOCUMENT,
    Task.ASK_IMAGE,
}


class Detail(enum.Enum):
    """How many image crops the model may use: fewer is faster and cheaper."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"

    @property
    def max_crops(self) -> int:
        # NORMAL keeps a 1080p screenshot plus a question under the model's 4096-token regime.
        return {Detail.LOW: 4, Detail.NORMAL: 12, Detail.HIGH: 36}[self]


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    text: str


_job_counter = iter(range(1, 1 << 62))


def next_job_id() -> int:
    return next(_job_counter)


@dataclass(frozen=True, eq=False)
class JobRequest:
    task: Task
    image: ImageInput | None = None
    audio: AudioInput | None = None
    question: str | None = None
    history: tuple[Turn, ...] = ()  # earlier turns about the same image, for follow-ups
    language: str = "English"
    detail: Detail = Detail.NORMAL
    max_new_tokens: int = 512
    job_id: int = field(default_factory=next_job_id)
    #: the picture's own text (OCR, reading order) for a grounded answer; "" when not grounded
    screen_text: str = ""

    def __post_init__(self) -> None:
        if self.task.needs_image and self.image is None:
            raise ValueError(f"{self.task.value} needs an image")
        if self.task.needs_audio and self.audio is None:
            raise ValueError(f"{self.task.value} needs audio")
        if self.task is Task.ASK_SPOKEN and self.audio is None and not self.question:
            raise ValueError("a question needs text or audio")

    @property
    def modality(self) -> str:
        """ "vision" for any image, "speech" for audio alone, "text" otherwise."""
        if self.image is not None:
            return "vision"
        if self.audio is not None:
            return "speech"
        return "text"


@dataclass
class Usage:
    """Filled in by a backend during generate(); read after the iterator is exhausted."""

    tokens_in: int = 0
    tokens_out: int = 0


class ModelPhase(enum.Enum):
    LOADING = "loading"
    READY = "ready"


@dataclass(frozen=True)
class ModelState:
    """What the inference worker says about the backend that will answer the next job.

    Sent from the worker thread after every load and every job whose backend changed (a model that
    failed to load hands over to the next one), so the GUI thread knows without asking the worker's
    own registry: whether a spoken question can be heard, and what to tell the user."""

    phase: ModelPhase
    backend: str  # "local", "remote" or "ocr"
    display_name: str  # what the user hears, e.g. "the local Phi-4 model"
    listens: bool  # it takes spoken questions (audio)

    @property
    def ready(self) -> bool:
        return self.phase is ModelPhase.READY

    @property
    def local_model(self) -> bool:
        """The local Phi-4 model: its load takes minutes, so loading and ready are announced."""
        return self.backend == "local"
