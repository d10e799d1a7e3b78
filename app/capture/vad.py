"""Voice-activity detection: where the speech is in a 16 kHz mono recording.

Two detectors, chosen by `get_detector("auto")`:

- "silero": the Silero VAD network, shipped with Sightline as an ONNX file (resources/vad, MIT
  licence) and run with onnxruntime alone; the silero-vad package is not needed (it pulls in torch).
  It tells speech from music, tones, fans and keyboard noise, which an energy threshold cannot.
- "energy": frame energy against the recording's own noise floor. Needs nothing but numpy; used
  when the model file or onnxruntime is missing, and as a second opinion: when Silero hears no speech
  in audio that is clearly not silent, `speech_span` trims by energy instead of throwing the
  recording away (refusing real speech would be worse than passing on a noise).

webrtcvad was not chosen: it needs a C build on every platform and is less accurate than Silero.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from app.core.types import SAMPLE_RATE

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

# Speech regions shorter than this are dropped (a cough, a click); gaps shorter than this join.
MIN_SPEECH_SECONDS = 0.09
MERGE_GAP_SECONDS = 0.3
# Kept either side of the speech when trimming, so soft word onsets and endings survive.
PAD_SECONDS = 0.25


class VoiceDetector(Protocol):
    name: str
    frame_samples: int

    def frame_flags(self, samples: np.ndarray) -> np.ndarray:
        """One bool per frame of `frame_samples` (a partial last frame is padded)."""
        ...


def _silero_model_path() -> Path | None:
    """The Silero VAD ONNX file shipped in resources/vad, or None when it is missing."""
    from app.paths import resources_dir

    candidate = resources_dir() / "vad" / "silero_vad.onnx"
    return candidate if candidate.is_file() else None


class SileroDetector:
    """Silero VAD (ONNX) at 16 kHz: 512-sample frames (32 ms), each seen with 64 samples before it."""

    name = "silero"
    frame_samples = 512
    _context = 64
    on_threshold = 0.5
    off_threshold = 0.35

    _session = None
    _lock = threading.Lock()

    def __init__(self, model_path: Path):
        self.model_path = model_path

    def _get_session(self):
        with SileroDetector._lock:
            if SileroDetector._session is None:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                # One frame at a time is a tiny graph: more threads only add hand-over cost.
                opts.intra_op_num_threads = 1
                opts.inter_op_num_threads = 1
                SileroDetector._session = ort.InferenceSession(
                    str(self.model_path), sess_options=opts, providers=["CPUExecutionProvider"]
                )
            return SileroDetector._session

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        import numpy as np

        session = self._get_session()
        n = self.frame_samples
        count = (len(samples) + n - 1) // n
        padded = np.zeros(count * n + self._context, dtype=np.float32)
        padded[self._context : self._context + len(samples)] = samples
        state = np.zeros((2, 1, 128), dtype=np.float32)
        sr = np.array(SAMPLE_RATE, dtype=np.int64)
        probs = np.empty(count, dtype=np.float32)
        for i in range(count):
            # Frame i plus the 64 samples before it (zeros before the start), as the model expects.
            window = padded[i * n : i * n + n + self._context][None, :]
            out, state = session.run(None, {"input": window, "state": state, "sr": sr})
            probs[i] = float(out[0, 0])
        return probs

    def frame_flags(self, samples: np.ndarray) -> np.ndarray:
        import numpy as np

        probs = self.probabilities(samples)
        flags = np.zeros(len(probs), dtype=bool)
        on = False
        for i, p in enumerate(probs):  # hysteresis: start at 0.5, end below 0.35
            on = p >= self.on_threshold if not on else p >= self.off_threshold
            flags[i] = on
        return flags


class EnergyDetector:
    """Frame energy above the recording's own noise floor (30 ms frames)."""

    name = "energy"
    frame_samples = 480

    # Speech must be this far above the quietest tenth of the recording, and above an absolute floor.
    margin_db = 12.0
    floor_dbfs = -50.0

    def frame_flags(self, samples: np.ndarray) -> np.ndarray:
        import numpy as np

        from app.capture.audio_file import frame_rms

        rms = frame_rms(samples, SAMPLE_RATE, self.frame_samples / SAMPLE_RATE)
        if len(samples) % self.frame_samples:
            tail = samples[len(rms) * self.frame_samples :]
            if len(tail):
                rms = np.append(rms, np.sqrt(np.mean(np.square(tail, dtype=np.float64))))
        db = 20 * np.log10(np.maximum(rms, 1e-10))
        noise = float(np.percentile(db, 10))
        threshold = max(noise + self.margin_db, self.floor_dbfs)
        return db >= threshold


_detector_cache: dict[str, VoiceDetector] = {}


def get_detector(kind: str = "auto") -> VoiceDetector:
    """'silero', 'energy', or 'auto' (Silero when its model and onnxruntime are present)."""
    if kind in _detector_cache:
        return _detector_cache[kind]
    if kind not in ("auto", "silero", "energy"):
        raise ValueError(f"unknown voice detector {kind!r}")
    detector: VoiceDetector
    if kind == "energy":
        detector = EnergyDetector()
    else:
        path = _silero_model_path()
        has_ort = importlib.util.find_spec("onnxruntime") is not None
        if path is not None and has_ort:
            detector = SileroDetector(path)
        elif kind == "silero":
            raise RuntimeError("the Silero voice detector needs its model (resources/vad) and onnxruntime")
        else:
            log.info("Silero VAD not available (model %s, onnxruntime %s); using energy", path, has_ort)
            detector = EnergyDetector()
    _detector_cache[kind] = detector
    return detector


@dataclass(frozen=True)
class SpeechSpan:
    start: int  # sample index, inclusive
    end: int  # sample index, exclusive
    detector: str


def speech_regions(samples: np.ndarray, detector: VoiceDetector) -> list[tuple[int, int]]:
    """(start, end) sample ranges of speech, short gaps merged and short blips dropped."""
    import numpy as np

    flags = detector.frame_flags(samples)
    n = detector.frame_samples
    regions: list[list[int]] = []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        start, end = int(a) * n, min(int(b) * n, len(samples))
        if regions and start - regions[-1][1] <= MERGE_GAP_SECONDS * SAMPLE_RATE:
            regions[-1][1] = end
        else:
            regions.append([start, end])
    min_len = MIN_SPEECH_SECONDS * SAMPLE_RATE
    return [(a, b) for a, b in regions if b - a >= min_len]


def speech_span(samples: np.ndarray, kind: str = "auto") -> SpeechSpan | None:
    """From the first speech to the last (padded by PAD_SECONDS), or None if there is no speech."""
    detector = get_detector(kind)
    regions = speech_regions(samples, detector)
    if not regions and detector.name != "energy":
        from app.capture.audio_file import has_sound

        if has_sound(samples):
            detector = get_detector("energy")
            regions = speech_regions(samples, detector)
    if not regions:
        return None
    pad = int(PAD_SECONDS * SAMPLE_RATE)
    return SpeechSpan(
        start=max(0, regions[0][0] - pad),
        end=min(len(samples), regions[-1][1] + pad),
        detector=detector.name,
    )
