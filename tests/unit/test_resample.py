"""The one resampler (app.core.resample): a tone keeps its frequency, nothing above the new Nyquist
frequency folds back, block-wise equals whole; and the speech path (Clip, the player's channel)
uses it."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.resample import StreamResampler, factors, resample
from app.speech.playback import STREAM_RATE, Clip, _Channel


def tone(freq: float, rate: int, seconds: float = 0.5, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum)) * rate / len(x)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def db(ratio: float) -> float:
    return 20 * np.log10(max(ratio, 1e-12))


@pytest.mark.parametrize(
    ("src", "dst", "freq"),
    [(16_000, 22_050, 1_000.0), (22_050, 48_000, 3_000.0), (44_100, 16_000, 440.0), (8_000, 22_050, 2_500.0)],
)
def test_a_tone_keeps_its_frequency_level_and_length(src, dst, freq):
    x = tone(freq, src)
    y = resample(x, src, dst)
    assert y.dtype == np.float32
    assert len(y) == -(-len(x) * dst // src)
    assert abs(peak_hz(y, dst) - freq) <= dst / len(y) * 1.5  # within a bin or so
    middle = slice(len(y) // 10, -len(y) // 10)  # away from the filter's ramp at both ends
    assert abs(db(rms(y[middle]) / rms(x))) < 0.2


@pytest.mark.parametrize(("src", "dst", "freq"), [(44_100, 16_000, 10_000.0), (48_000, 22_050, 15_000.0)])
def test_nothing_above_the_new_nyquist_folds_back(src, dst, freq):
    """10 kHz cannot exist at 16 kHz: linear interpolation would fold it to 6 kHz at about the same
    level; the polyphase filter removes it."""
    x = tone(freq, src)
    y = resample(x, src, dst)
    assert db(rms(y) / rms(x)) < -40
    # For comparison, what linear interpolation (the old speech resampler) let through.
    n = len(y)
    linear = np.interp(np.linspace(0, len(x) - 1, n), np.arange(len(x)), x)
    assert db(rms(linear) / rms(x)) > -10


def test_speech_band_passes_and_a_mix_keeps_only_what_fits():
    src, dst = 44_100, 16_000
    x = tone(1_000.0, src) + tone(12_000.0, src)
    y = resample(x, src, dst)
    spectrum = np.abs(np.fft.rfft(y))
    freqs = np.fft.rfftfreq(len(y), 1 / dst)
    near_1k = spectrum[np.abs(freqs - 1_000) < 20].max()
    alias_4k = spectrum[np.abs(freqs - 4_000) < 20].max()  # 12 kHz folds to 16 - 12 = 4 kHz
    assert db(alias_4k / near_1k) < -40


@pytest.mark.parametrize("block", [3, 97, 4_096])
def test_block_by_block_equals_whole(block):
    rng = np.random.default_rng(block)
    x = (rng.standard_normal(3_000) * 0.2).astype(np.float32)
    whole = resample(x, 11_025, STREAM_RATE)
    r = StreamResampler(11_025, STREAM_RATE)
    streamed = np.concatenate([*(r.feed(x[i : i + block]) for i in range(0, len(x), block)), r.finish()])
    assert len(streamed) == len(whole)
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_same_rate_and_empty_input_pass_through():
    x = tone(440.0, 16_000)
    assert resample(x, 16_000, 16_000) is not None
    np.testing.assert_array_equal(resample(x, 16_000, 16_000), x)
    assert resample(np.zeros(0, np.float32), 16_000, 22_050).size == 0
    assert factors(16_000, 22_050) == (441, 320)
    with pytest.raises(ValueError):
        factors(0, 16_000)


def _drain(clip: Clip) -> np.ndarray:
    parts = []
    while not clip._blocks.empty():
        parts.append(clip._blocks.get_nowait())
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def test_a_voice_at_another_rate_is_resampled_once_whole_even_when_pushed_in_pieces():
    """A speech engine at 16 kHz streams its samples in pieces: what the callback plays equals the
    whole utterance resampled at once (no clicks at the piece edges), at the same frequency."""
    x = tone(1_000.0, 16_000)
    clip = Clip(rate=16_000)
    for i in range(0, len(x), 1_000):
        clip.push(x[i : i + 1_000])
    clip.finish()
    played = _drain(clip)
    np.testing.assert_allclose(played, resample(x, 16_000, STREAM_RATE), atol=1e-5)
    assert clip.frames_queued == len(played) == -(-len(x) * STREAM_RATE // 16_000)
    assert abs(peak_hz(played, STREAM_RATE) - 1_000.0) < 5


def test_a_clip_at_the_stream_rate_is_queued_untouched():
    x = tone(500.0, STREAM_RATE)
    clip = Clip.from_samples(x, STREAM_RATE)
    np.testing.assert_array_equal(_drain(clip), x)


def test_a_player_opened_at_another_rate_plays_the_whole_clip_at_the_right_pitch():
    """The audio callback's channel at 48 kHz: block by block, 256 frames at a time."""
    x = tone(2_000.0, STREAM_RATE, seconds=0.3)
    clip = Clip.from_samples(x, STREAM_RATE, volume=0.5)
    channel = _Channel()
    channel.clip = clip
    out = []
    for _ in range(1_000):
        buf = np.zeros(256, np.float32)
        active = channel.fill(buf, 48_000)
        out.append(buf)
        if not active and channel.clip is None:
            break
    played = np.concatenate(out)
    assert clip.done.is_set() and not clip.interrupted
    expected = resample(x, STREAM_RATE, 48_000) * 0.5
    np.testing.assert_allclose(played[: len(expected)], expected, atol=1e-5)
    assert not played[len(expected) :].any()
    assert abs(peak_hz(played[: len(expected)], 48_000) - 2_000.0) < 10
