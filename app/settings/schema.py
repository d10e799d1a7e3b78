"""The typed settings schema. Every setting a user can change is a field here.

Frozen: a change produces a new Settings (dataclasses.replace), so a snapshot handed to the
worker thread never changes under it.

Settings is a pydantic dataclass: every Settings made (from the file, the dialog, the command line)
is checked against the field types, and a setting with fixed choices is a `Choice` (a StrEnum
whose members carry the words a user reads), so a value outside them cannot be made. `validate`
turns a settings file's values into a Settings field by field: a value that does not fit is
reported and replaced by its default, a number outside its range is brought inside it.

Each field carries a FieldInfo in its metadata (label, help, group, range; the choices come from
the field's Choice type); the settings dialog is generated from it. Field order is the order on
screen.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import typing
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

SCHEMA_VERSION = 1


class Choice(StrEnum):
    """One of a setting's fixed choices: compares equal to (and is stored as) its value, and
    carries `label`, the words a user reads for it."""

    label: str

    def __new__(cls, value: str, label: str) -> Choice:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    @classmethod
    def pairs(cls) -> tuple[tuple[str, str], ...]:
        """(stored value, what the user reads) for each choice, in order."""
        return tuple((member.value, member.label) for member in cls)


class Backend(Choice):
    """Which engine answers. The one list of backends: the registry and the command line use it."""

    AUTO = "auto", "Automatic"  # local, then remote (if a server is set), then ocr
    LOCAL = "local", "Phi-4 model on this computer"
    REMOTE = "remote", "Server"
    OCR = "ocr", "Text recognition only"

    @classmethod
    def engines(cls) -> tuple[Backend, ...]:
        """The real backends, in the order "auto" tries them."""
        return tuple(member for member in cls if member is not cls.AUTO)


class Device(Choice):
    AUTO = "auto", "Automatic"
    CUDA = "cuda", "NVIDIA graphics card"
    MPS = "mps", "Apple graphics"
    CPU = "cpu", "Main processor"


class Quantization(Choice):
    NONE = "none", "None"
    BITS_4 = "4bit", "4-bit"
    BITS_8 = "8bit", "8-bit"  # CUDA only


class ImageFormat(Choice):
    JPEG = "jpeg", "JPEG"
    PNG = "png", "PNG"


class DetailLevel(Choice):
    """How many image crops the model may use (app.core.types.Detail has the same values)."""

    LOW = "low", "Low: fastest"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High: small text, slower"


class OutputMode(Choice):
    VOICE = "voice", "Sightline's own voice"
    SCREEN_READER = "screen_reader", "My screen reader"
    TEXT = "text", "Text only"


class SpeechDriverChoice(Choice):
    AUTO = "auto", "Automatic"
    PYTTSX3 = "pyttsx3", "System voices"
    ESPEAK = "espeak", "eSpeak NG"
    SCREEN_READER = "screen_reader", "Screen reader"
    SILENT = "silent", "Silent"


@dataclass(frozen=True)
class FieldInfo:
    label: str  # the control's label and accessible name, without the colon
    help: str  # one plain sentence: accessible description and tooltip
    group: str  # a key of GROUPS
    choices: tuple[tuple[str, str], ...] = ()  # (stored value, what the user reads); empty: free
    suggestions: tuple[str, ...] = ()  # free text, with these offered
    widget: str = ""  # "", "folder", "file", "percent", "voice", "chord", "keymap"
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    suffix: str = ""
    advanced: bool = False  # shown after the everyday settings of its group


# Dialog pages in order: (key, title).
GROUPS: tuple[tuple[str, str], ...] = (
    ("answers", "Answers"),
    ("speech", "Speech"),
    ("keys", "Keys"),
    ("capture", "Capture"),
    ("general", "General"),
)


def _s(default: Any, label: str, help: str, group: str, **info: Any) -> Any:
    if isinstance(default, Choice):  # the choices come from the field's type, listed once
        info["choices"] = type(default).pairs()
    return dataclasses.field(default=default, metadata={"info": FieldInfo(label, help, group, **info)})


def _default_prefix() -> str:
    # On a Mac, Ctrl+Option belongs to VoiceOver (see app.commands.keymap).
    return "Option+Shift+Cmd+Space" if sys.platform == "darwin" else "Ctrl+Alt+Shift+Space"


@dataclass(frozen=True, config=ConfigDict(allow_inf_nan=False))
class Settings:
    # Which engine answers: "auto" tries local, then remote (if a server is set), then ocr.
    backend: Backend = _s(
        Backend.AUTO,
        "Answering engine",
        "Which engine answers: the model on this computer, a server, or text recognition only.",
        "answers",
    )
    # Folder holding the Phi-4-multimodal weights; empty means the user models dir.
    model_dir: str = _s(
        "",
        "Model folder",
        "The folder holding the Phi-4 model files. Leave it empty to use Sightline's own models folder.",
        "answers",
        widget="folder",
    )
    device: Device = _s(
        Device.AUTO,
        "Processor for the model",
        "Where the model runs. A graphics card is much faster than the main processor.",
        "answers",
        advanced=True,
    )
    quantization: Quantization = _s(
        Quantization.NONE,
        "Model compression",
        "Compression lets the model fit on a small graphics card, at some cost in quality.",
        "answers",
        advanced=True,
    )
    # Remote vLLM server, e.g. https://ai.school.example:8000/v1; empty means none.
    server_url: str = _s(
        "",
        "Server address",
        "The address of your organisation's model server, for example https://ai.school.example:8000/v1. "
        "Leave it empty for none.",
        "answers",
    )
    server_ca_file: str = _s(
        "",
        "Server certificate file",
        "A certificate file for a server that uses its own certificate authority. Usually empty.",
        "answers",
        widget="file",
        advanced=True,
    )
    server_allow_insecure_http: bool = _s(
        False,
        "Allow an unencrypted server address",
        "Lets Sightline send pictures over plain http. Use only on a network you trust.",
        "answers",
        advanced=True,
    )
    server_token_env: str = _s(
        "SIGHTLINE_SERVER_TOKEN",
        "Server token variable",
        "The name of the environment variable that holds the server's access token.",
        "answers",
        advanced=True,
    )
    server_image_format: ImageFormat = _s(
        ImageFormat.JPEG,
        "Picture format sent to the server",
        "JPEG is smaller and faster; PNG keeps every pixel.",
        "answers",
        advanced=True,
    )
    server_jpeg_quality: int = _s(
        90,
        "JPEG quality",
        "Picture quality when sending JPEG to the server, from 50 to 100.",
        "answers",
        minimum=50,
        maximum=100,
        advanced=True,
    )
    server_idle_timeout: int = _s(
        30,
        "Server silence limit",
        "Stop waiting when the server sends no words for this many seconds (the first: half as long again).",
        "answers",
        minimum=1,
        maximum=600,
        suffix=" seconds",
        advanced=True,
    )
    server_turn_timeout: int = _s(
        300,
        "Server answer time limit",
        "Stop an answer from the server that takes longer than this many seconds in all.",
        "answers",
        minimum=5,
        maximum=3600,
        suffix=" seconds",
        advanced=True,
    )
    # How many image crops the model may use.
    detail: DetailLevel = _s(
        DetailLevel.NORMAL,
        "Detail level",
        "How closely the model looks at a picture. High detail reads small text better but takes longer.",
        "answers",
    )
    # The language answers are written in.
    response_language: str = _s(
        "English",
        "Answer language",
        "The language answers are written and spoken in. Pictures are described in English, which the "
        "model sees best, and then translated into this language by the same model; typed and spoken "
        "questions are answered in it directly.",
        "answers",
        suggestions=(
            "English",
            "Chinese",
            "French",
            "German",
            "Italian",
            "Japanese",
            "Portuguese",
            "Spanish",
        ),
    )
    max_new_tokens: int = _s(
        512,
        "Longest answer, in words",
        "The most the model may write for one answer, counted roughly in words.",
        "answers",
        minimum=32,
        maximum=4096,
        step=32,
        advanced=True,
    )
    # With the model: pictures are also read as text, and quotes not in that text are hedged.
    ground_answers: bool = _s(
        True,
        "Check answers against the picture's text",
        "With the model, a picture's own text is read too, so names and numbers are quoted exactly; "
        "anything quoted that is not in that text is said as what it may say.",
        "answers",
        advanced=True,
    )
    # Speech.
    output_mode: OutputMode = _s(
        OutputMode.VOICE,
        "How answers are given",
        "Sightline can speak with its own voice, send answers to your screen reader, or only show text.",
        "speech",
    )
    speech_driver: SpeechDriverChoice = _s(
        SpeechDriverChoice.AUTO,
        "Speech engine",
        "The speech engine for Sightline's own voice.",
        "speech",
        advanced=True,
    )
    voice: str = _s(
        "",
        "Voice",
        "The voice Sightline speaks with. Empty means the system's default voice.",
        "speech",
        widget="voice",
    )
    rate: int = _s(
        180,  # words per minute
        "Speech rate",
        "How fast Sightline speaks, in words per minute.",
        "speech",
        minimum=80,
        maximum=450,
        step=10,
        suffix=" words per minute",
    )
    volume: float = _s(
        1.0, "Volume", "How loud Sightline speaks.", "speech", widget="percent", minimum=0.0, maximum=1.0
    )
    earcons: bool = _s(
        True,
        "Play sounds while working",
        "Short sounds when Sightline starts, works, finishes or meets an error.",
        "speech",
    )
    # Capture.
    pointer_box: int = _s(
        400,  # side, in pixels, of the box around the mouse pointer
        "Area around the mouse",
        "The size of the square around the mouse pointer that Describe what is under the mouse looks at.",
        "capture",
        minimum=100,
        maximum=2000,
        step=50,
        suffix=" pixels",
    )
    camera: str = _s("0", "Camera", "The camera to use: 0 is the first camera.", "capture")
    microphone: str = _s(
        "", "Microphone", "The microphone to use. Empty means the system's default.", "capture"
    )
    max_recording_seconds: float = _s(
        40.0,
        "Longest spoken question",
        "Recording stops by itself after this many seconds.",
        "capture",
        minimum=5.0,
        maximum=120.0,
        step=5.0,
        suffix=" seconds",
    )
    # Keys. The prefix chord, then one key (see app.commands.keymap).
    hotkey_prefix: str = _s(
        _default_prefix(),
        "Prefix keys",
        "Press these keys together, let go, then press one command key.",
        "keys",
        widget="chord",
    )
    hotkey_timeout: float = _s(
        2.0,
        "Time to press the command key",
        "How long Sightline waits for the command key after the prefix.",
        "keys",
        minimum=1.0,
        maximum=10.0,
        step=0.5,
        suffix=" seconds",
        advanced=True,
    )
    # Changes from each command's default key: ((command id, key), ...). Stored as an object in JSON.
    command_keys: tuple[tuple[str, str], ...] = _s(
        (),
        "Command keys",
        "The key pressed after the prefix for each command.",
        "keys",
        widget="keymap",
    )
    # Direct chords: ((command id, chord), ...); none by default.
    command_chords: tuple[tuple[str, str], ...] = _s(
        (),
        "Direct shortcuts",
        "Optional keys that run a command at once, without the prefix.",
        "keys",
        widget="keymap",
    )
    # Display.
    result_font_size: int = _s(
        20,
        "Text size",
        "The size of the text in Sightline's windows, in points.",
        "general",
        minimum=10,
        maximum=72,
        suffix=" points",
    )
    high_contrast: bool = _s(
        False, "High contrast", "Shows Sightline's windows in white and yellow on black.", "general"
    )
    start_with_system: bool = _s(
        False,
        "Start Sightline when I log in",
        "Starts Sightline in the background when you log in.",
        "general",
    )


def field_info(name: str) -> FieldInfo:
    for f in dataclasses.fields(Settings):
        if f.name == name:
            return f.metadata["info"]
    raise KeyError(name)


def fields_in_group(group: str) -> list[dataclasses.Field]:
    """The fields of one dialog page, everyday ones first, then advanced ones, each in schema order."""
    members = [f for f in dataclasses.fields(Settings) if f.metadata["info"].group == group]
    return [f for f in members if not f.metadata["info"].advanced] + [
        f for f in members if f.metadata["info"].advanced
    ]


@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(Settings)


def field_type(f: dataclasses.Field) -> type:
    """The Python type of a field: bool, int, float, str, tuple (pairs) or a Choice subclass."""
    hint = _field_types()[f.name]
    return typing.get_origin(hint) or hint


@functools.cache
def _adapter() -> TypeAdapter:
    return TypeAdapter(Settings)


def validate(values: Mapping[str, Any]) -> tuple[Settings, list[str]]:
    """A Settings from a settings file's values (field name -> value, pairs as lists), and the
    problems met. Field by field: a value of the wrong type or outside its choices is replaced by
    that field's default, a number outside its range is brought inside it, so one bad value never
    costs the user the rest of their settings. Keys that are not fields are left to the caller."""
    known = {f.name: f for f in dataclasses.fields(Settings)}
    values = {name: value for name, value in values.items() if name in known}
    problems: list[str] = []
    for name, value in list(values.items()):
        info: FieldInfo = known[name].metadata["info"]
        if info.minimum is None and info.maximum is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue  # not a number: the type check below reports it
        if info.minimum is not None and value < info.minimum:
            problems.append(f"{name}: {value} is below {info.minimum}")
            values[name] = info.minimum
        elif info.maximum is not None and value > info.maximum:
            problems.append(f"{name}: {value} is above {info.maximum}")
            values[name] = info.maximum
    while True:
        try:
            return _adapter().validate_python(values), problems
        except ValidationError as exc:
            bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
            for error in exc.errors():
                if error["loc"]:
                    shown = repr(error.get("input"))
                    shown = shown if len(shown) <= 60 else shown[:57] + "..."
                    problems.append(f"{error['loc'][0]}: {error['msg']} (the file has {shown})")
            if not bad & values.keys():
                raise  # not a field's value (cannot happen with known keys): a bug, not a bad file
            for name in bad:
                values.pop(name, None)  # the default takes its place
