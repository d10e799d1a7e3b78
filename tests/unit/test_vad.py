"""Voice-activity detection with the Silero model Sightline ships (resources/vad), no silero-vad package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from app.capture.vad import SileroDetector, get_detector, speech_regions
from app.core.types import SAMPLE_RATE

SPEECH = Path("/usr/share/sounds/alsa/Front_Left.wav")  # a real recorded voice (alsa-utils)


def test_the_shipped_model_is_used_without_the_silero_package():
    detector = get_detector("silero")
    assert isinstance(detector, SileroDetector)
    assert importlib.util.find_spec("onnxruntime") is not None
    assert get_detector("auto").__class__ is SileroDetector


@pytest.mark.skipif(not SPEECH.exists(), reason="alsa-utils' recorded speech is not installed")
def test_silero_finds_the_spoken_words_and_not_the_silence_around_them():
    from app.capture.audio_file import load_audio

    voice = load_audio(SPEECH).samples
    quiet = np.zeros(SAMPLE_RATE, dtype=np.float32)
    samples = np.concatenate([quiet, voice, quiet])
    regions = speech_regions(samples, get_detector("silero"))
    assert regions, "no speech found in a recorded voice"
    start, end = regions[0][0], regions[-1][1]
    assert SAMPLE_RATE * 0.8 <= start <= SAMPLE_RATE * 1.5
    assert SAMPLE_RATE + len(voice) * 0.5 <= end <= SAMPLE_RATE * 2.2 + len(voice)
    assert not speech_regions(quiet, get_detector("silero"))
