"""Push-to-talk recording from a microphone -> AudioInput (16 kHz mono, silence trimmed).

    recorder = Recorder(settings.microphone or None, max_seconds=settings.max_recording_seconds,
                        on_level=meter.set_level)
    recorder.start()          # key pressed
    audio = recorder.stop()   # key released, or pressed again: the UI decides

The stream runs at the device's own rate and channel count as PortAudio reports them; the
samples go through app.capture.audio_file.audio_from_array like any file, then the voice detector
(app.capture.vad) trims the silence before and after the speech. After `max_seconds` the stream
stops by itself and `on_limit` is called; `stop()` still returns what was recorded.

Threads: PortAudio calls `_callback` on its own thread; it only copies the block into a queue.
A collector thread owned by the Recorder drains the queue, keeps the blocks, and calls `on_level`
and `on_limit` (so those run on the collector thread: a Qt UI must hand them on with a queued
signal). `stop()` joins the collector; nothing is ever killed.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.core.errors import DeviceError
from app.core.types import AudioInput

if TYPE_CHECKING:
    from app.settings.schema import Settings

log = logging.getLogger(__name__)

# PortAudio error codes (portaudio.h) that get their own sentence.
_PA_INVALID_CHANNEL_COUNT = -9998
_PA_INVALID_SAMPLE_RATE = -9997
_PA_DEVICE_UNAVAILABLE = -9985

NO_MICROPHONE = "No microphone was found. Plug one in, or check that it is switched on."
NO_SOUND_SYSTEM = "Sound input is not available on this computer."
BUSY = "The microphone is busy. Another program may be using it."
PERMISSION = (
    "I am not allowed to use the microphone. Check that Sightline may use it in your system's "
    "privacy settings."
)
HEARD_NOTHING = "I heard nothing."
GONE = "The microphone stopped sending sound. It may have been unplugged."

# Level meter scale: 0 at -60 dBFS or quieter, 1 at full scale.
_LEVEL_FLOOR_DB = -60.0

_FINISHED = object()  # queued by PortAudio's finished callback: no more blocks will come


@dataclass(frozen=True)
class MicrophoneInfo:
    index: int
    name: str
    channels: int
    default_samplerate: float
    is_default: bool = False

    def __str__(self) -> str:
        return self.name


def _sd():
    """sounddevice, imported late: it loads PortAudio, which may be missing."""
    try:
        import sounddevice
    except OSError as exc:  # "PortAudio library not found"
        raise DeviceError(NO_SOUND_SYSTEM, detail=str(exc)) from exc
    return sounddevice


def _pa_code(exc: BaseException) -> int | None:
    args = exc.args
    if len(args) >= 2 and isinstance(args[1], int):
        return args[1]
    return None


def list_microphones() -> list[MicrophoneInfo]:
    """Every input device PortAudio sees; an empty list when there is none or no sound system."""
    try:
        sd = _sd()
        devices = sd.query_devices()
    except DeviceError:
        return []
    except Exception as exc:  # PortAudioError when the host API cannot start
        log.info("cannot list microphones: %s", exc)
        return []
    try:
        default_in = sd.default.device[0]
        if default_in is None or default_in < 0:
            default_in = sd.query_devices(kind="input")["index"]
    except Exception:
        default_in = -1
    found = []
    for dev in devices:
        if int(dev.get("max_input_channels", 0)) > 0:
            found.append(
                MicrophoneInfo(
                    index=int(dev["index"]),
                    name=str(dev["name"]),
                    channels=int(dev["max_input_channels"]),
                    default_samplerate=float(dev.get("default_samplerate") or 48000.0),
                    is_default=int(dev["index"]) == default_in,
                )
            )
    return found


def resolve_microphone(device: str | int | None = None) -> MicrophoneInfo:
    """The microphone a setting names: None or "" for the default, an index, or (part of) a name."""
    mics = list_microphones()
    if not mics:
        raise DeviceError(NO_MICROPHONE, detail="PortAudio lists no input device")
    if device is None or (isinstance(device, str) and not device.strip()):
        for mic in mics:
            if mic.is_default:
                return mic
        return mics[0]
    if isinstance(device, int) or device.strip().isdigit():
        index = int(device)
        for mic in mics:
            if mic.index == index:
                return mic
        raise DeviceError(
            f"There is no microphone number {index}. Choose another in Settings.",
            detail=f"inputs: {[(m.index, m.name) for m in mics]}",
        )
    wanted = device.strip().casefold()
    exact = [m for m in mics if m.name.casefold() == wanted]
    partial = [m for m in mics if wanted in m.name.casefold()]
    if exact or partial:
        return (exact or partial)[0]
    raise DeviceError(
        f'I could not find the microphone "{device.strip()}". Choose another in Settings.',
        detail=f"inputs: {[m.name for m in mics]}",
    )


def level_from_rms(rms: float) -> float:
    """Map an RMS amplitude to a 0..1 meter level (logarithmic, -60 dBFS .. 0 dBFS)."""
    if rms <= 0:
        return 0.0
    db = 20 * math.log10(rms)
    return min(1.0, max(0.0, (db - _LEVEL_FLOOR_DB) / -_LEVEL_FLOOR_DB))


class Recorder:
    """One push-to-talk recording at a time; reusable after stop()."""

    def __init__(
        self,
        device: str | int | None = None,
        *,
        max_seconds: float = 40.0,
        on_level: Callable[[float], None] | None = None,
        level_interval: float = 0.05,
        on_limit: Callable[[], None] | None = None,
        trim: bool = True,
        vad: str = "auto",
    ):
        if max_seconds <= 0:
            raise ValueError("max_seconds must be positive")
        self.device = device
        self.max_seconds = float(max_seconds)
        self.on_level = on_level
        self.level_interval = level_interval
        self.on_limit = on_limit
        self.trim = trim
        self.vad = vad
        self._stream = None
        self._collector: threading.Thread | None = None
        self._queue: queue.Queue = queue.Queue()
        self._blocks: list = []
        self._frames_in = 0  # counted on the PortAudio thread, read only to decide CallbackStop
        self._max_frames = 0
        self._rate = 0
        self._started_at = 0.0
        self._limit = threading.Event()
        self._finished = threading.Event()
        self._stopping = threading.Event()
        self._callback_stop: type[BaseException] = Exception
        self.microphone: MicrophoneInfo | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs) -> Recorder:
        kwargs.setdefault("max_seconds", settings.max_recording_seconds)
        return cls(settings.microphone or None, **kwargs)

    @property
    def is_recording(self) -> bool:
        """True from start() until stop(), the maximum length, or the device going away."""
        return self._stream is not None and not self._finished.is_set() and not self._limit.is_set()

    # -- start ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the microphone and start recording. Raises DeviceError with the user's sentence."""
        if self._stream is not None:
            return
        sd = _sd()
        mic = resolve_microphone(self.device)
        self.microphone = mic
        self._callback_stop = sd.CallbackStop
        self._queue = queue.Queue()
        self._blocks = []
        self._frames_in = 0
        self._limit.clear()
        self._finished.clear()
        self._stopping.clear()
        stream = self._open(sd, mic)
        self._rate = int(stream.samplerate)
        self._max_frames = int(round(self.max_seconds * self._rate))
        self._collector = threading.Thread(target=self._collect, name="sightline-mic-collector", daemon=True)
        self._collector.start()
        try:
            stream.start()
        except Exception as exc:
            stream.close(ignore_errors=True)
            self._queue.put(None)
            self._collector.join(2.0)
            self._collector = None
            raise self._open_error(exc) from exc
        self._started_at = time.monotonic()
        self._stream = stream
        log.info("recording from %s at %d Hz", mic.name, self._rate)

    def _open(self, sd, mic: MicrophoneInfo):
        rates = [int(mic.default_samplerate)] + [
            r for r in (48000, 44100, 16000) if r != int(mic.default_samplerate)
        ]
        channel_choices = [1] + ([mic.channels] if mic.channels > 1 else [])
        last: Exception | None = None
        for channels in channel_choices:
            for rate in rates:
                try:
                    return sd.InputStream(
                        device=mic.index,
                        samplerate=rate,
                        channels=channels,
                        dtype="float32",
                        callback=self._callback,
                        finished_callback=self._stream_finished,
                    )
                except Exception as exc:  # sd.PortAudioError; ValueError for an unknown device
                    last = exc
                    code = _pa_code(exc)
                    if code == _PA_INVALID_SAMPLE_RATE:
                        continue
                    if code == _PA_INVALID_CHANNEL_COUNT:
                        break
                    raise self._open_error(exc) from exc
        raise DeviceError(
            "The microphone refused every recording format I tried.", detail=f"{type(last).__name__}: {last}"
        ) from last

    @staticmethod
    def _open_error(exc: BaseException | None) -> DeviceError:
        code = _pa_code(exc) if exc is not None else None
        if code == _PA_DEVICE_UNAVAILABLE:
            return DeviceError(BUSY, detail=str(exc))
        if isinstance(exc, ValueError):  # sounddevice: "No input device matching ..."
            return DeviceError(NO_MICROPHONE, detail=str(exc))
        # Any other refusal to open an input that PortAudio lists: on macOS and Windows this is
        # how a denied microphone permission shows up; on Linux, an ALSA device the user's groups
        # may not open.
        return DeviceError(PERMISSION, detail=f"{type(exc).__name__}: {exc}")

    # -- the PortAudio thread ---------------------------------------------------------------------

    def _callback(self, indata, frames, time_info, status) -> None:
        # Runs on PortAudio's audio thread: nothing that blocks, no logging, no user code. It
        # copies the block into the queue; the collector thread does everything else.
        room = self._max_frames - self._frames_in
        if room <= 0:
            raise self._callback_stop
        take = min(frames, room)
        self._queue.put_nowait(indata[:take].copy())
        self._frames_in += take
        if take < frames or self._frames_in >= self._max_frames:
            raise self._callback_stop

    def _stream_finished(self) -> None:
        # PortAudio thread again: hand the news over through the same queue, after the last block.
        self._queue.put_nowait(_FINISHED)

    # -- the collector thread ---------------------------------------------------------------------

    def _collect(self) -> None:
        import numpy as np

        frames = 0
        peak_rms = 0.0
        last_level = 0.0
        while True:
            item = self._queue.get()
            if item is None:
                break
            if item is _FINISHED:
                self._finished.set()
                break
            self._blocks.append(item)
            frames += len(item)
            if self.on_level is not None and len(item):
                peak_rms = max(peak_rms, float(np.sqrt(np.mean(np.square(item, dtype=np.float64)))))
                now = time.monotonic()
                if now - last_level >= self.level_interval:
                    last_level = now
                    self._emit_level(level_from_rms(peak_rms))
                    peak_rms = 0.0
            if frames >= self._max_frames and not self._limit.is_set():
                self._limit.set()
                if self.on_limit is not None:
                    try:
                        self.on_limit()
                    except Exception:
                        log.exception("on_limit callback failed")
        self._emit_level(0.0)

    def _emit_level(self, level: float) -> None:
        if self.on_level is None:
            return
        try:
            self.on_level(level)
        except Exception:
            log.exception("level callback failed")

    # -- stop -------------------------------------------------------------------------------------

    def _close(self) -> float:
        """Stop the stream and the collector; returns how long the stream ran."""
        stream, self._stream = self._stream, None
        elapsed = time.monotonic() - self._started_at
        self._stopping.set()
        if stream is not None:
            try:
                stream.stop(ignore_errors=True)
            finally:
                stream.close(ignore_errors=True)
        collector, self._collector = self._collector, None
        if collector is not None:
            self._queue.put(None)
            collector.join(5.0)
            if collector.is_alive():  # never expected: the queue always ends with a marker
                log.warning("microphone collector did not finish")
        return elapsed

    def abort(self) -> None:
        """Stop and throw the recording away (the user cancelled)."""
        self._close()
        self._blocks = []

    def stop(self, skip_until: float | None = None) -> AudioInput:
        """Stop recording and return 16 kHz mono speech with the silence around it trimmed.

        `skip_until` (time.monotonic): what came in before then is dropped (the start tone, which
        the microphone hears on speakers, while the microphone was opened during it).
        Raises DeviceError("I heard nothing.") when nothing but silence came in, DeviceError when
        the microphone sent no sound at all, and InputError when the recording is too short.
        """
        import numpy as np

        from app.capture.audio_file import audio_from_array, has_sound

        if self._stream is None and not self._blocks:
            raise DeviceError(HEARD_NOTHING, detail="stop() without start()")
        finished_early = self._finished.is_set() and not self._limit.is_set()
        elapsed = self._close()
        blocks, self._blocks = self._blocks, []
        if not blocks:
            if elapsed >= 0.5:
                raise DeviceError(
                    BUSY if not finished_early else GONE, detail=f"no samples in {elapsed:.2f}s"
                )
            raise DeviceError(HEARD_NOTHING, detail=f"stopped after {elapsed * 1000:.0f} ms")
        data = np.concatenate(blocks)
        if skip_until is not None:
            data = data[max(0, round((skip_until - self._started_at) * self._rate)) :]
            if not len(data):
                raise DeviceError(HEARD_NOTHING, detail="let go before the start tone ended")
        if not has_sound(data.mean(axis=1), self._rate):
            raise DeviceError(GONE if finished_early else HEARD_NOTHING, detail=f"{len(data)} frames, silent")
        audio = audio_from_array(data, self._rate, "microphone", max_seconds=None)
        if finished_early:
            log.warning("the microphone stream ended by itself after %.1f s", len(data) / self._rate)
        if not self.trim:
            return audio
        from app.capture.vad import speech_span

        span = speech_span(np.asarray(audio.samples), self.vad)
        if span is None:
            raise DeviceError(HEARD_NOTHING, detail="no speech found by the voice detector")
        log.info(
            "trimmed %.2f s to %.2f s (%s)", audio.duration, (span.end - span.start) / 16000, span.detector
        )
        return AudioInput(
            samples=np.array(audio.samples[span.start : span.end]),
            source="microphone",
            captured_at=audio.captured_at,
        )
