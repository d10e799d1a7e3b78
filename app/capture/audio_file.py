"""Audio from files and arrays -> AudioInput (16 kHz mono float32).

Every path into the model goes through `audio_from_array`: files read by `load_audio`, and the
microphone's recordings. It mixes any number of channels to mono, resamples any rate to 16 kHz with
an anti-aliased polyphase filter, scales clipped or over-range audio back into [-1, 1], and turns
every unusable input into an InputError with a sentence the user hears.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.errors import InputError
from app.core.types import SAMPLE_RATE, AudioInput

if TYPE_CHECKING:
    import numpy as np

# Below this the speech encoder has too few frames to work with (it fails under about 25 ms);
# a tenth of a second is still shorter than any spoken word.
MIN_SECONDS = 0.1
DEFAULT_MAX_SECONDS = 40.0

# Silence gate. Audio counts as heard when at least SOUND_MIN_SECONDS of 20 ms frames are louder
# than SOUND_RMS (about -50 dBFS, after removing any DC offset). Quiet speech on a laptop
# microphone sits around -35 to -25 dBFS; a microphone's own hiss is below -55 dBFS. Requiring
# several frames means a single click or pop does not count as something heard.
SOUND_RMS = 10 ** (-50 / 20)
SOUND_MIN_SECONDS = 0.06
_FRAME_SECONDS = 0.02


def _describe_seconds(seconds: float) -> str:
    if seconds < 60:
        whole = round(seconds)
        return f"{whole} second{'s' if whole != 1 else ''}"
    minutes = seconds / 60
    if abs(minutes - round(minutes)) < 0.05:
        whole = round(minutes)
        return f"{whole} minute{'s' if whole != 1 else ''}"
    return f"{minutes:.1f} minutes"


def _too_long(seconds: float, limit: float, *, from_file: bool) -> InputError:
    what = "That recording" if from_file else "The recording"
    return InputError(
        f"{what} is {_describe_seconds(seconds)} long; the limit is {_describe_seconds(limit)}.",
        detail=f"duration {seconds:.2f}s > max_seconds {limit}",
    )


def frame_rms(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, frame_seconds: float = _FRAME_SECONDS):
    """RMS of consecutive frames (the last partial frame is dropped; one frame minimum)."""
    import numpy as np

    n = max(1, int(round(sample_rate * frame_seconds)))
    count = max(1, len(samples) // n)
    head = np.asarray(samples[: count * n], dtype=np.float32)
    if len(head) < count * n:  # shorter than one frame
        head = np.pad(head, (0, count * n - len(head)))
    return np.sqrt(np.mean(np.square(head).reshape(count, n), axis=1, dtype=np.float64))


def has_sound(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bool:
    """True when the samples hold more than silence, hiss or a lone click (see SOUND_RMS)."""
    import numpy as np

    if len(samples) == 0:
        return False
    centred = np.asarray(samples, dtype=np.float32)
    centred = centred - np.float32(np.mean(centred, dtype=np.float64))
    loud = frame_rms(centred, sample_rate) >= SOUND_RMS
    needed = max(1, int(math.ceil(SOUND_MIN_SECONDS / _FRAME_SECONDS)))
    needed = min(needed, len(loud))
    return int(np.count_nonzero(loud)) >= needed


def _resample(mono: np.ndarray, rate: int) -> np.ndarray:
    """Anti-aliased polyphase resampling of a 1-D float array to SAMPLE_RATE."""
    if rate == SAMPLE_RATE:
        return mono
    from scipy.signal import resample_poly

    g = math.gcd(int(rate), SAMPLE_RATE)
    up, down = SAMPLE_RATE // g, int(rate) // g
    return resample_poly(mono, up, down)


def audio_from_array(
    samples,
    sample_rate: int,
    source: str,
    *,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> AudioInput:
    """Any samples (frames x channels or 1-D; int or float) -> a checked 16 kHz mono AudioInput.

    Integer samples are scaled from their type's full range. Raises InputError when the audio is
    too short, too long (over `max_seconds`; None means no limit) or holds nothing but silence.
    """
    import numpy as np

    from_file = source == "file"
    rate = int(sample_rate)
    if rate <= 0:
        raise InputError("That recording has no valid sample rate.", detail=f"sample rate {sample_rate}")
    arr = np.asarray(samples)
    if arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        mid = (int(info.max) + int(info.min) + 1) / 2  # 0 for signed, 128 for uint8
        arr = ((arr.astype(np.float64) - mid) / (int(info.max) - mid + 1)).astype(np.float32)
    elif arr.dtype.kind != "f":
        raise InputError("That recording is not in a format I can use.", detail=f"dtype {arr.dtype}")
    # float32 throughout: ten minutes at 48 kHz is already 115 MB.
    arr = np.nan_to_num(arr.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=-1.0)
    if arr.ndim == 2:
        # frames x channels; a sound file's channels are always the second axis.
        mono = arr.mean(axis=1) if arr.shape[1] > 1 else arr[:, 0]
    elif arr.ndim == 1:
        mono = arr
    else:
        raise InputError("That recording is not in a format I can use.", detail=f"shape {arr.shape}")

    seconds = len(mono) / rate
    if len(mono) == 0:
        raise InputError(
            "That recording is empty." if from_file else "The recording is empty.", detail="0 frames"
        )
    if seconds < MIN_SECONDS:
        raise InputError(
            f"{'That' if from_file else 'The'} recording is too short: "
            "it needs to last at least a tenth of a second.",
            detail=f"duration {seconds * 1000:.1f} ms",
        )
    if max_seconds is not None and seconds > max_seconds:
        raise _too_long(seconds, max_seconds, from_file=from_file)

    # A DC offset (common in 8-bit files) is not sound.
    mono = mono - np.float32(np.mean(mono, dtype=np.float64))
    # Over-range or clipped input: scale the loudest sample back to full scale rather than
    # clipping again, so the shape of the waveform is kept.
    peak = float(np.max(np.abs(mono)))
    if peak > 1.0:
        mono = mono / np.float32(peak)
    if not has_sound(mono, rate):
        sentence = "I heard nothing." if source == "microphone" else "I heard nothing in that recording."
        raise InputError(sentence, detail=f"peak {peak:.5f}, below the silence gate")
    out = _resample(mono, rate)
    # The resampling filter can overshoot a full-scale edge by a few percent.
    out = np.clip(out, -1.0, 1.0).astype(np.float32)
    return AudioInput(samples=out, source=source)


def load_audio(path, *, max_seconds: float | None = DEFAULT_MAX_SECONDS) -> AudioInput:
    """Read a WAV, FLAC, OGG (anything libsndfile reads) into a 16 kHz mono AudioInput.

    `max_seconds=None` allows audio of any length (transcription splits it afterwards).
    """
    import soundfile as sf

    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise InputError(f"I could not find the audio file {p.name}.", detail=str(p))
    if p.is_dir():
        raise InputError(f"{p.name} is a folder, not an audio file.", detail=str(p))
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError(f"I could not open the audio file {p.name}.", detail=str(exc)) from exc
    if size == 0:
        raise InputError("The audio file is empty.", detail=str(p))
    try:
        info = sf.info(str(p))
    except PermissionError as exc:
        raise InputError(f"I am not allowed to open the audio file {p.name}.", detail=str(exc)) from exc
    except Exception as exc:  # libsndfile says "Format not recognised", "unexpected end" etc.
        raise InputError(
            f"I could not read the audio file {p.name}. It may be damaged or not a sound file.",
            detail=f"{type(exc).__name__}: {exc}",
        ) from exc
    if info.samplerate > 0 and max_seconds is not None and info.frames / info.samplerate > max_seconds:
        # Checked before decoding, so a very long file is refused without reading it all.
        raise _too_long(info.frames / info.samplerate, max_seconds, from_file=True)
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:
        raise InputError(
            f"I could not read the audio file {p.name}. It may be damaged or not a sound file.",
            detail=f"{type(exc).__name__}: {exc}",
        ) from exc
    return audio_from_array(data, rate, "file", max_seconds=max_seconds)


def split_for_transcription(audio: AudioInput, max_seconds: float = 30.0) -> list[AudioInput]:
    """Cut long audio into pieces of at most `max_seconds`, each cut at the quietest moment.

    The cut for each piece is the quietest 20 ms frame in the second half of its window, so words
    are rarely split. Pieces holding only silence are left out; if every piece is silent the whole
    recording was, and InputError says so.
    """
    import numpy as np

    if max_seconds < 1.0:
        raise ValueError("max_seconds must be at least one second")
    samples = audio.samples
    total = len(samples)
    limit = int(max_seconds * SAMPLE_RATE)
    if total <= limit:
        return [audio]
    frame = int(_FRAME_SECONDS * SAMPLE_RATE)
    energy = frame_rms(samples, SAMPLE_RATE)
    min_len = int(MIN_SECONDS * SAMPLE_RATE)

    pieces: list[AudioInput] = []
    start = 0
    while start < total:
        if total - start <= limit:
            end = total
        else:
            lo = (start + limit // 2) // frame
            hi = min(start + limit, total - min_len) // frame
            if hi <= lo:
                end = start + limit
            else:
                window = energy[lo:hi]
                # Among near-quietest frames, take the latest: pieces stay long and few.
                quiet = np.flatnonzero(window <= window.min() * 1.05 + 1e-9)
                end = (lo + int(quiet[-1])) * frame + frame // 2
        piece = samples[start:end]
        if len(piece) >= min_len and has_sound(piece):
            pieces.append(
                AudioInput(samples=np.array(piece), source=audio.source, captured_at=audio.captured_at)
            )
        start = end
    if not pieces:
        raise InputError("I heard nothing in that recording.", detail="every piece was silent")
    return pieces
