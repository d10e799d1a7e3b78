"""Audio files in every shape a user may hand over: the right audio, or the sentence they hear."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from app.capture.audio_file import audio_from_array, load_audio, split_for_transcription
from app.core.errors import InputError
from app.core.types import SAMPLE_RATE
from tests.fixtures.media_audio import ALSA_SPEECH, silence, speechlike, tone, write


def dominant_hz(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def band_level(samples: np.ndarray, hz: float, rate: int = SAMPLE_RATE, width: float = 50.0) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(spectrum[(freqs > hz - width) & (freqs < hz + width)].max())


# -- good audio in unusual shapes -----------------------------------------------------------------


def test_plain_16k_wav_loads_unchanged(tmp_path):
    path = write(tmp_path / "a.wav", tone(1.0), SAMPLE_RATE, "FLOAT")
    audio = load_audio(path)
    assert audio.source == "file" and audio.sample_rate == SAMPLE_RATE
    assert len(audio.samples) == SAMPLE_RATE
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    np.testing.assert_allclose(audio.samples, tone(1.0), atol=1e-4)


def test_stereo_is_mixed_to_mono(tmp_path):
    left = tone(1.0, 48_000, 440, 0.6)
    right = np.zeros_like(left)
    path = write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 48_000, "PCM_16")
    audio = load_audio(path)
    assert audio.samples.ndim == 1
    assert audio.duration == pytest.approx(1.0, abs=1e-3)
    # Averaging the channels halves a sound heard on one side only.
    assert np.abs(audio.samples).max() == pytest.approx(0.3, abs=0.02)
    assert dominant_hz(audio.samples) == pytest.approx(440, abs=2)


def test_six_channel_file_is_mixed_to_mono(tmp_path):
    data = np.stack([tone(0.5, 48_000, 300 + 100 * i, 0.1) for i in range(6)], axis=1)
    audio = load_audio(write(tmp_path / "surround.wav", data, 48_000, "PCM_24"))
    assert audio.samples.ndim == 1 and audio.duration == pytest.approx(0.5, abs=1e-3)


def test_44k1_is_resampled_to_16k_keeping_pitch_and_length(tmp_path):
    path = write(tmp_path / "cd.wav", tone(2.0, 44_100, 1000.0), 44_100, "PCM_16")
    audio = load_audio(path)
    assert len(audio.samples) == pytest.approx(2 * SAMPLE_RATE, abs=1)
    assert dominant_hz(audio.samples) == pytest.approx(1000, abs=2)


def test_resampling_filters_out_what_16k_cannot_hold(tmp_path):
    # A 12 kHz whistle is above 16 kHz audio's 8 kHz limit. Dropping samples without a filter
    # would fold it down to 4 kHz; the anti-aliasing filter removes it instead.
    rate = 44_100
    data = tone(1.0, rate, 1000.0, 0.3) + tone(1.0, rate, 12_000.0, 0.3)
    audio = load_audio(write(tmp_path / "whistle.wav", data, rate, "FLOAT"))
    assert band_level(audio.samples, 4000) < 0.01 * band_level(audio.samples, 1000)


def test_8k_telephone_audio_is_upsampled(tmp_path):
    audio = load_audio(write(tmp_path / "phone.wav", tone(1.5, 8000, 500.0), 8000, "PCM_16"))
    assert len(audio.samples) == pytest.approx(1.5 * SAMPLE_RATE, abs=1)
    assert dominant_hz(audio.samples) == pytest.approx(500, abs=2)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_every_sample_format_gives_the_same_sound(tmp_path, subtype):
    path = write(tmp_path / f"{subtype}.wav", tone(0.5, 16_000, 440.0, 0.5), 16_000, subtype)
    audio = load_audio(path)
    assert np.abs(audio.samples).max() == pytest.approx(0.5, abs=0.02)
    assert abs(float(audio.samples.mean())) < 0.01  # 8-bit's unsigned offset is removed
    assert dominant_hz(audio.samples) == pytest.approx(440, abs=2)


@pytest.mark.parametrize(("fmt", "subtype"), [("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_flac_and_ogg_load(tmp_path, fmt, subtype):
    path = tmp_path / f"a.{fmt.lower()}"
    import soundfile as sf

    sf.write(str(path), tone(1.0, 48_000, 440.0), 48_000, format=fmt, subtype=subtype)
    audio = load_audio(path)
    assert audio.duration == pytest.approx(1.0, abs=0.01)
    assert dominant_hz(audio.samples) == pytest.approx(440, abs=3)


def test_clipped_recording_is_accepted_and_stays_in_range(tmp_path):
    loud = np.clip(tone(1.0, 16_000, 300.0, 3.0), -1.0, 1.0)  # hard-clipped at full scale
    audio = load_audio(write(tmp_path / "clipped.wav", loud, 16_000, "PCM_16"))
    assert np.abs(audio.samples).max() <= 1.0
    assert dominant_hz(audio.samples) == pytest.approx(300, abs=2)


def test_float_file_over_full_scale_is_scaled_not_cut(tmp_path):
    over = tone(1.0, 44_100, 300.0, 2.5)  # a float WAV may hold values past 1.0
    audio = load_audio(write(tmp_path / "over.wav", over, 44_100, "FLOAT"))
    assert np.abs(audio.samples).max() <= 1.0
    # Scaled as a whole: still a sine, not a square wave (whose third harmonic would be strong).
    assert band_level(audio.samples, 900) < 0.01 * band_level(audio.samples, 300)


def test_nan_samples_do_not_poison_the_audio(tmp_path):
    data = tone(1.0)
    data[100:200] = np.nan
    audio = load_audio(write(tmp_path / "nan.wav", data, 16_000, "FLOAT"))
    assert np.isfinite(audio.samples).all()


def test_real_recorded_speech_loads(tmp_path):
    if not ALSA_SPEECH.exists():
        pytest.skip("alsa-utils' sample speech is not installed")
    audio = load_audio(ALSA_SPEECH)
    assert audio.duration == pytest.approx(1.48, abs=0.01)


# -- bad inputs: the sentence the user hears --------------------------------------------------------


def test_silent_file_says_nothing_was_heard(tmp_path):
    with pytest.raises(InputError) as err:
        load_audio(write(tmp_path / "silence.wav", silence(3.0), 16_000, "PCM_16"))
    assert err.value.sentence == "I heard nothing in that recording."


def test_faint_hiss_and_a_lone_click_count_as_nothing(tmp_path):
    rng = np.random.default_rng(0)
    hiss = rng.normal(0, 10 ** (-65 / 20), 3 * 16_000).astype(np.float32)
    hiss[20_000:20_040] = 0.8  # a 2.5 ms click
    with pytest.raises(InputError, match="I heard nothing"):
        load_audio(write(tmp_path / "hiss.wav", hiss, 16_000, "FLOAT"))


def test_quiet_speech_is_not_mistaken_for_silence(tmp_path):
    quiet = speechlike(2.0) * 10 ** (-30 / 20) / 0.25  # speech peaking around -30 dBFS
    assert load_audio(write(tmp_path / "quiet.wav", quiet, 16_000, "PCM_16")).duration == pytest.approx(2.0)


def test_ten_milliseconds_is_too_short(tmp_path):
    with pytest.raises(InputError) as err:
        load_audio(write(tmp_path / "blip.wav", tone(0.01, 48_000), 48_000, "PCM_16"))
    assert "too short" in err.value.sentence


def test_ten_minutes_is_too_long_and_says_the_limit(tmp_path):
    path = write(tmp_path / "lecture.wav", tone(600.0, 8000, 300.0, 0.2), 8000, "PCM_16")
    with pytest.raises(InputError) as err:
        load_audio(path)
    assert err.value.sentence == "That recording is 10 minutes long; the limit is 40 seconds."
    with pytest.raises(InputError, match="the limit is 2 minutes"):
        load_audio(path, max_seconds=120)


def test_long_audio_is_allowed_for_transcription_and_split_at_quiet_points(tmp_path):
    # Ten minutes of 1.3 s "sentences" with 0.4 s pauses between them.
    rate = 16_000
    sentence = np.concatenate([speechlike(1.3, rate), silence(0.4, rate)])
    data = np.tile(sentence, int(np.ceil(600 / 1.7)))[: 600 * rate]
    audio = load_audio(write(tmp_path / "lecture.wav", data, rate, "PCM_16"), max_seconds=None)
    assert audio.duration == pytest.approx(600.0, abs=0.01)

    pieces = split_for_transcription(audio, max_seconds=30)
    assert all(p.duration <= 30.0 for p in pieces)
    assert all(p.duration >= 15.0 for p in pieces[:-1])  # cut late in each window: few pieces
    assert sum(p.duration for p in pieces) == pytest.approx(600.0, abs=0.5)
    # Every cut falls in a pause, not in the middle of a sound.
    position = 0
    for piece in pieces[:-1]:
        position += len(piece.samples)
        around = audio.samples[position - 80 : position + 80]
        assert np.sqrt(np.mean(np.square(around))) < 0.01, f"cut at {position / rate:.2f} s is not quiet"


def test_split_leaves_out_silent_stretches(tmp_path):
    rate = 16_000
    data = np.concatenate([speechlike(20.0, rate), silence(40.0, rate), speechlike(10.0, rate)])
    pieces = split_for_transcription(audio_from_array(data, rate, "file", max_seconds=None), max_seconds=30)
    total = sum(p.duration for p in pieces)
    assert total < 50.0  # at least one of the silent stretches was left out
    assert all(np.abs(p.samples).max() > 0.05 for p in pieces)


def test_short_audio_is_one_piece():
    audio = audio_from_array(tone(5.0), SAMPLE_RATE, "file")
    assert split_for_transcription(audio) == [audio]


def test_corrupt_file_says_it_may_be_damaged(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    with pytest.raises(InputError) as err:
        load_audio(path)
    assert (
        err.value.sentence
        == "I could not read the audio file broken.wav. It may be damaged or not a sound file."
    )


def test_text_file_with_a_sound_name_is_refused(tmp_path):
    path = tmp_path / "notes.ogg"
    path.write_text("shopping list: milk, bread\n" * 50)
    with pytest.raises(InputError, match="could not read the audio file notes.ogg"):
        load_audio(path)


def test_empty_file_and_file_without_samples(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(InputError) as err:
        load_audio(empty)
    assert err.value.sentence == "The audio file is empty."
    no_frames = write(tmp_path / "noframes.wav", np.zeros(0, np.float32), 16_000, "PCM_16")
    with pytest.raises(InputError) as err:
        load_audio(no_frames)
    assert err.value.sentence == "That recording is empty."


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="I could not find the audio file nothere.wav"):
        load_audio(tmp_path / "nothere.wav")
    with pytest.raises(InputError, match="is a folder"):
        load_audio(tmp_path)


def test_microphone_silence_and_integer_arrays():
    with pytest.raises(InputError) as err:
        audio_from_array(np.zeros((44_100, 2), np.float32), 44_100, "microphone")
    assert err.value.sentence == "I heard nothing."
    pcm = (tone(1.0, 22_050, 440.0, 0.5) * 32767).astype(np.int16)
    audio = audio_from_array(pcm, 22_050, "microphone")
    assert np.abs(audio.samples).max() == pytest.approx(0.5, abs=0.02)
    assert audio.source == "microphone" and audio.duration == pytest.approx(1.0, abs=1e-3)


# -- long recordings stream: block-wise resampling and cutting, memory flat with length ----------


@pytest.mark.parametrize("rate", [8_000, 11_025, 22_050, 44_100, 48_000, 96_000, 16_000])
@pytest.mark.parametrize("block", [13, 997, 48_000])
def test_block_resampler_equals_resampling_all_at_once(rate, block):
    import math

    from scipy.signal import resample_poly

    from app.capture.audio_file import StreamResampler

    seconds = 0.25 if block < 100 else 1.3
    x = np.random.default_rng(rate).standard_normal(int(rate * seconds) + 5).astype(np.float32) * 0.3
    g = math.gcd(rate, SAMPLE_RATE)
    whole = resample_poly(x, SAMPLE_RATE // g, rate // g)
    resampler = StreamResampler(rate)
    parts = [resampler.feed(x[i : i + block]) for i in range(0, len(x), block)]
    streamed = np.concatenate([*parts, resampler.finish()])
    assert streamed.dtype == np.float32
    assert len(streamed) == len(whole)
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_streamed_pieces_match_the_whole_file_split(tmp_path):
    """Four minutes at 44.1 kHz stereo: the pieces made while reading are the pieces made from the
    whole recording in memory (same cuts, same sound)."""
    from app.capture.audio_file import transcription_pieces
    from tests.fixtures.long_audio import write_long_wav

    path = write_long_wav(tmp_path / "talk.wav", 240, rate=44_100, channels=2)
    whole = split_for_transcription(load_audio(path, max_seconds=None), max_seconds=30)
    streamed = list(transcription_pieces(path, max_seconds=30))
    assert [len(p.samples) for p in streamed] == [len(p.samples) for p in whole]
    for a, b in zip(streamed, whole, strict=True):
        np.testing.assert_allclose(a.samples, b.samples, atol=2e-3)
    assert len(streamed) >= 8 and sum(p.duration for p in streamed) == pytest.approx(240.0, abs=0.5)
    assert all(p.duration <= 30.0 for p in streamed)


def test_streamed_pieces_leave_out_silence_and_say_so_when_all_is_silent(tmp_path):
    from app.capture.audio_file import transcription_pieces

    rate = 16_000
    data = np.concatenate([speechlike(20.0, rate), silence(40.0, rate), speechlike(10.0, rate)])
    pieces = list(transcription_pieces(write(tmp_path / "gap.wav", data, rate, "PCM_16"), max_seconds=30))
    assert sum(p.duration for p in pieces) < 50.0
    assert all(np.abs(p.samples).max() > 0.05 for p in pieces)

    quiet = write(tmp_path / "quiet.wav", silence(70.0, 48_000), 48_000, "PCM_16")
    with pytest.raises(InputError) as err:
        list(transcription_pieces(quiet))
    assert err.value.sentence == "I heard nothing in that recording."


def test_streamed_pieces_give_the_same_sentences_for_bad_files(tmp_path):
    from app.capture.audio_file import transcription_pieces

    with pytest.raises(InputError, match="I could not find the audio file nothere.wav"):
        next(transcription_pieces(tmp_path / "nothere.wav"))
    no_frames = write(tmp_path / "noframes.wav", np.zeros(0, np.float32), 16_000, "PCM_16")
    with pytest.raises(InputError) as err:
        next(transcription_pieces(no_frames))
    assert err.value.sentence == "That recording is empty."
    with pytest.raises(InputError, match="too short"):
        next(transcription_pieces(write(tmp_path / "blip.wav", tone(0.01, 48_000), 48_000, "PCM_16")))
    text = tmp_path / "notes.ogg"
    text.write_text("shopping list: milk, bread\n" * 50)
    with pytest.raises(InputError, match="could not read the audio file notes.ogg"):
        next(transcription_pieces(text))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory is read from /proc")
def test_three_hours_stream_in_flat_memory(tmp_path):
    """The issue's case: a 3-hour 16 kHz WAV (346 MB on disk; 3.4 GB peak when read whole) goes
    through in the memory one minute takes, measured as the peak RSS of a fresh interpreter."""
    from tests.fixtures.long_audio import stream_peak, write_long_wav

    minute = stream_peak(write_long_wav(tmp_path / "minute.wav", 60))
    long_path = write_long_wav(tmp_path / "three_hours.wav", 3 * 3600)
    assert long_path.stat().st_size > 340e6
    hours = stream_peak(long_path)
    assert hours["seconds"] == pytest.approx(3 * 3600, abs=5)
    assert hours["longest"] <= 30.0
    assert hours["peak_mb"] < 500, hours
    assert hours["peak_mb"] - minute["peak_mb"] < 40, (minute, hours)
