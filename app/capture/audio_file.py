"""Audio from files and arrays -> AudioInput (16 kHz mono float32).

Every path into the model goes through `audio_from_array`: files read by `load_audio`, and the
microphone's recordings. It mixes any number of channels to mono, resamples any rate to 16 kHz with
an anti-aliased polyphase filter, scales clipped or over-range audio back into [-1, 1], and turns
every unusable input into an InputError with a sentence the user hears.

Files are read block by block, never whole: `load_audio` stops reading as soon as a recording is
longer than its limit, and `transcription_pieces` streams a recording of any length (hours) through
the same mixing and a block-wise resampler (`StreamResampler`, equal to resampling the whole signal
at once) into pieces cut at quiet moments, so memory stays flat with the length of the file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.errors import InputError
from app.core.resample import StreamResampler as _StreamResampler
from app.core.resample import resample
from app.core.types import SAMPLE_RATE, AudioInput

if TYPE_CHECKING:
    import numpy as np

# Below this the speech encoder has too few frames to work with (it fails under about 25 ms);
# a tenth of a second is still shorter than any spoken word.
MIN_SECONDS = 0.1
DEFAULT_MAX_SECONDS = 40.0
# How much of a file is read at once: 10 s of 48 kHz stereo float32 is under 4 MB.
BLOCK_SECONDS = 10.0

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
    """Anti-aliased polyphase resampling of a 1-D float array to SAMPLE_RATE (app.core.resample)."""
    return resample(mono, rate, SAMPLE_RATE)


class StreamResampler(_StreamResampler):
    """Resample a stream of 1-D float32 blocks from `rate` to SAMPLE_RATE, block by block; the
    output equals resampling the whole signal at once (see app.core.resample)."""

    def __init__(self, rate: int):
        super().__init__(rate, SAMPLE_RATE)


def _check_length(frames: int, rate: int, *, from_file: bool) -> float:
    """The recording's length in seconds; InputError when it is empty or too short."""
    seconds = frames / rate
    if frames == 0:
        raise InputError(
            "That recording is empty." if from_file else "The recording is empty.", detail="0 frames"
        )
    if seconds < MIN_SECONDS:
        raise InputError(
            f"{'That' if from_file else 'The'} recording is too short: "
            "it needs to last at least a tenth of a second.",
            detail=f"duration {seconds * 1000:.1f} ms",
        )
    return seconds


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

    seconds = _check_length(len(mono), rate, from_file=from_file)
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


def _open_info(p: Path):
    """The file's soundfile.info after the checks every reader makes; InputError otherwise."""
    import soundfile as sf

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
        return sf.info(str(p))
    except PermissionError as exc:
        raise InputError(f"I am not allowed to open the audio file {p.name}.", detail=str(exc)) from exc
    except Exception as exc:  # libsndfile says "Format not recognised", "unexpected end" etc.
        raise _damaged(p, exc) from exc


def _damaged(p: Path, exc: BaseException) -> InputError:
    return InputError(
        f"I could not read the audio file {p.name}. It may be damaged or not a sound file.",
        detail=f"{type(exc).__name__}: {exc}",
    )


def _read_blocks(p: Path, block_seconds: float = BLOCK_SECONDS) -> Iterator[tuple[np.ndarray, int]]:
    """(frames x channels float32 block, sample rate) pairs: the file read a block at a time."""
    import soundfile as sf

    try:
        handle = sf.SoundFile(str(p))
    except Exception as exc:
        raise _damaged(p, exc) from exc
    with handle:
        rate = int(handle.samplerate)
        frames = max(1, int(rate * block_seconds))
        while True:
            try:
                block = handle.read(frames, dtype="float32", always_2d=True)
            except Exception as exc:
                raise _damaged(p, exc) from exc
            if len(block) == 0:
                return
            yield block, rate


def load_audio(path, *, max_seconds: float | None = DEFAULT_MAX_SECONDS) -> AudioInput:
    """Read a WAV, FLAC, OGG (anything libsndfile reads) into a 16 kHz mono AudioInput.

    The file is read a block at a time and reading stops as soon as it is longer than
    `max_seconds`, whatever its header claims, so memory is bounded by the limit. `max_seconds=None`
    reads any length into memory; for long recordings use `transcription_pieces`, which streams.
    """
    import numpy as np

    p = Path(os.fspath(path)).expanduser()
    info = _open_info(p)
    if info.samplerate > 0 and max_seconds is not None and info.frames / info.samplerate > max_seconds:
        # Checked before decoding, so a very long file is refused without reading it.
        raise _too_long(info.frames / info.samplerate, max_seconds, from_file=True)
    blocks: list[np.ndarray] = []
    rate = int(info.samplerate)
    read = 0
    for block, rate in _read_blocks(p):
        blocks.append(block)
        read += len(block)
        if max_seconds is not None and rate > 0 and read / rate > max_seconds:
            # The header understated the length: stop here rather than read on.
            raise _too_long(read / rate, max_seconds, from_file=True)
    channels = max(1, int(info.channels))
    data = np.concatenate(blocks) if blocks else np.zeros((0, channels), np.float32)
    return audio_from_array(data, rate, "file", max_seconds=max_seconds)


class _QuietCutter:
    """Cuts a stream of 16 kHz samples into pieces of at most `max_seconds`, each cut at the
    quietest moment: the quietest 20 ms frame in the second half of its window (among near-quietest
    frames, the latest, so pieces stay long and few). Holds at most one window and one block."""

    def __init__(self, max_seconds: float):
        import numpy as np

        if max_seconds < 1.0:
            raise ValueError("max_seconds must be at least one second")
        self.limit = int(max_seconds * SAMPLE_RATE)
        self.frame = int(_FRAME_SECONDS * SAMPLE_RATE)
        self.min_len = int(MIN_SECONDS * SAMPLE_RATE)
        self._buf = np.zeros(0, np.float32)
        self._start = 0  # where _buf begins in the whole stream

    def feed(self, samples) -> Iterator[np.ndarray]:
        import numpy as np

        if len(samples):
            self._buf = np.concatenate([self._buf, np.asarray(samples, dtype=np.float32)])
        # Until the end is known, cut only with a whole window and room after it.
        while len(self._buf) >= self.limit + self.min_len + self.frame:
            yield self._cut(total=None)

    def finish(self) -> Iterator[np.ndarray]:
        while len(self._buf) > self.limit:
            yield self._cut(total=self._start + len(self._buf))
        if len(self._buf):
            piece, self._buf = self._buf, self._buf[:0]
            self._start += len(piece)
            yield piece

    def _cut(self, total: int | None) -> np.ndarray:
        import numpy as np

        start, frame, limit = self._start, self.frame, self.limit
        lo = (start + limit // 2) // frame
        hi = (start + limit if total is None else min(start + limit, total - self.min_len)) // frame
        if hi <= lo:
            end = start + limit
        else:
            window = frame_rms(self._buf[lo * frame - start : hi * frame - start], SAMPLE_RATE)
            quiet = np.flatnonzero(window <= window.min() * 1.05 + 1e-9)
            end = (lo + int(quiet[-1])) * frame + frame // 2
        piece = self._buf[: end - start].copy()
        self._buf = self._buf[end - start :].copy()
        self._start = end
        return piece


def _cut_stream(blocks: Iterable[np.ndarray], max_seconds: float) -> Iterator[np.ndarray]:
    cutter = _QuietCutter(max_seconds)
    for block in blocks:
        yield from cutter.feed(block)
    yield from cutter.finish()


def split_for_transcription(audio: AudioInput, max_seconds: float = 30.0) -> list[AudioInput]:
    """Cut long audio into pieces of at most `max_seconds`, each cut at the quietest moment.

    The cut for each piece is the quietest 20 ms frame in the second half of its window, so words
    are rarely split. Pieces holding only silence are left out; if every piece is silent the whole
    recording was, and InputError says so.
    """
    if max_seconds < 1.0:
        raise ValueError("max_seconds must be at least one second")
    if len(audio.samples) <= int(max_seconds * SAMPLE_RATE):
        return [audio]
    min_len = int(MIN_SECONDS * SAMPLE_RATE)
    pieces = [
        AudioInput(samples=piece, source=audio.source, captured_at=audio.captured_at)
        for piece in _cut_stream([audio.samples], max_seconds)
        if len(piece) >= min_len and has_sound(piece)
    ]
    if not pieces:
        raise InputError("I heard nothing in that recording.", detail="every piece was silent")
    return pieces


def transcription_pieces(path, max_seconds: float = 30.0) -> Iterator[AudioInput]:
    """A recording of any length as 16 kHz mono pieces of at most `max_seconds`, cut at quiet
    moments, produced while the file is read: memory stays flat however long the file is.

    Each piece is made usable as `audio_from_array` makes a whole recording (DC offset removed,
    over-range audio scaled back to full scale); silent pieces are left out. InputError (raised
    when the first piece is asked for, or at the end) when the file cannot be read, is empty or
    too short, or holds nothing but silence.
    """
    import numpy as np

    p = Path(os.fspath(path)).expanduser()
    info = _open_info(p)
    if int(info.samplerate) <= 0:
        raise InputError("That recording has no valid sample rate.", detail=f"sample rate {info.samplerate}")
    resampler = StreamResampler(int(info.samplerate))
    read = {"frames": 0}

    def mono_16k() -> Iterator[np.ndarray]:
        for block, _rate in _read_blocks(p):
            read["frames"] += len(block)
            block = np.nan_to_num(block, nan=0.0, posinf=1.0, neginf=-1.0)
            mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
            yield resampler.feed(mono)
        yield resampler.finish()

    min_len = int(MIN_SECONDS * SAMPLE_RATE)
    produced = 0
    for piece in _cut_stream(mono_16k(), max_seconds):
        if len(piece) < min_len:
            continue
        piece = piece - np.float32(np.mean(piece, dtype=np.float64))
        peak = float(np.max(np.abs(piece)))
        if peak > 1.0:
            piece = piece / np.float32(peak)
        if not has_sound(piece):
            continue
        produced += 1
        yield AudioInput(samples=np.clip(piece, -1.0, 1.0).astype(np.float32), source="file")
    if produced:
        return
    _check_length(read["frames"], int(info.samplerate), from_file=True)
    raise InputError("I heard nothing in that recording.", detail="every piece was silent")
