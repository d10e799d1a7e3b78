"""The microphone through the PulseAudio null sink: what paplay plays into the default sink is
recorded back from the default source (`vmic`, remapped from the sink's monitor)."""

from __future__ import annotations

import subprocess
import threading
import time

import numpy as np
import pytest

from app.capture import microphone
from app.capture.microphone import Recorder
from app.core.errors import DeviceError
from tests.fixtures.media_audio import ALSA_SPEECH, padded_speech, silence, tone, write

pytestmark = [pytest.mark.audio, pytest.mark.timeout(60)]

RATE = 16_000


def play(path, timeout: float = 15.0) -> None:
    """Play a file into the default sink and wait for it to end (bounded)."""
    subprocess.run(["paplay", str(path)], check=True, timeout=timeout)


def record_while_playing(recorder: Recorder, path, *, lead: float = 0.3, tail: float = 0.5):
    recorder.start()
    try:
        time.sleep(lead)  # the stream is running before the first sample is played
        play(path)
        time.sleep(tail)  # the sink's latency: let the end reach the source
    except BaseException:
        recorder.abort()
        raise
    return recorder.stop()


def loud_seconds(samples: np.ndarray, threshold: float = 0.02) -> float:
    """How long the sound lasts: 10 ms frames louder than `threshold`, from first to last."""
    n = RATE // 100
    frames = samples[: len(samples) // n * n].reshape(-1, n)
    loud = np.flatnonzero(np.sqrt(np.mean(frames**2, axis=1)) > threshold)
    return 0.0 if len(loud) == 0 else (loud[-1] - loud[0] + 1) / 100


@pytest.fixture
def tone_file(tmp_path):
    """0.8 s of silence, 1.5 s of a 440 Hz tone, 0.8 s of silence, at 48 kHz."""
    rate = 48_000
    data = np.concatenate([silence(0.8, rate), tone(1.5, rate, 440.0, 0.5), silence(0.8, rate)])
    return write(tmp_path / "tone.wav", data, rate, "PCM_16")


def test_played_tone_comes_back_with_the_right_length(pulse, tone_file, no_thread_leak):
    audio = record_while_playing(Recorder(trim=False), tone_file)
    assert audio.sample_rate == RATE and audio.samples.ndim == 1
    # Nothing dropped or doubled on the way through PulseAudio, PortAudio and the resampler.
    assert loud_seconds(audio.samples) == pytest.approx(1.5, abs=0.05)
    assert audio.duration > 1.5 + 0.3  # and the silence around it was recorded too


def test_silence_around_a_sound_is_trimmed(pulse, tone_file, no_thread_leak):
    recorded = record_while_playing(Recorder(vad="energy"), tone_file, lead=0.6, tail=0.8)
    # The tone plus the padding the trimmer keeps either side, and not the second of silence.
    assert recorded.duration == pytest.approx(1.5 + 2 * 0.25, abs=0.15)
    assert loud_seconds(recorded.samples) == pytest.approx(1.5, abs=0.05)


def test_real_speech_is_kept_and_its_silence_trimmed(pulse, tmp_path, no_thread_leak):
    if not ALSA_SPEECH.exists():
        pytest.fail(f"{ALSA_SPEECH} is missing: the desktop stack installs alsa-utils")
    path, speech_seconds = padded_speech(tmp_path / "speech.wav", lead=1.0, tail=1.0)
    recorder = Recorder()  # the default voice detector
    recorded = record_while_playing(recorder, path, lead=0.3, tail=0.6)
    # About 4.5 s were recorded; what is left is the 1.48 s of speech and a little padding.
    assert speech_seconds - 0.1 <= recorded.duration <= speech_seconds + 0.6
    # The speech itself survived: its loud part is as long as in the file.
    from app.capture.audio_file import load_audio

    original = load_audio(ALSA_SPEECH).samples
    assert loud_seconds(recorded.samples) == pytest.approx(loud_seconds(original), abs=0.08)
    assert np.sqrt(np.mean(recorded.samples**2)) > 0.5 * np.sqrt(np.mean(original**2))


def test_what_came_in_before_skip_until_is_dropped(pulse, tmp_path, no_thread_leak):
    """Push-to-talk opens the microphone while the start tone plays and keeps only what follows
    the tone: a loud 0.4 s sound, 1 s of quiet, then 0.8 s of another sound; skipping to the
    middle of the quiet keeps the second sound alone."""
    rate = 48_000
    data = np.concatenate(
        [tone(0.4, rate, 880.0, 0.5), silence(1.0, rate), tone(0.8, rate, 440.0, 0.5), silence(0.5, rate)]
    )
    path = write(tmp_path / "tone_then_sound.wav", data, rate, "PCM_16")
    recorder = Recorder(trim=False)
    recorder.start()
    try:
        time.sleep(0.3)
        played_at = time.monotonic()
        play(path)
        time.sleep(0.5)
    except BaseException:
        recorder.abort()
        raise
    audio = recorder.stop(skip_until=played_at + 0.9)
    assert loud_seconds(audio.samples) == pytest.approx(0.8, abs=0.05)
    spectrum = np.abs(np.fft.rfft(audio.samples))
    freqs = np.fft.rfftfreq(len(audio.samples), 1 / RATE)
    assert spectrum[np.abs(freqs - 440) < 20].max() > 20 * spectrum[np.abs(freqs - 880) < 20].max()


def test_silence_only_says_i_heard_nothing(pulse, no_thread_leak):
    recorder = Recorder()
    recorder.start()
    time.sleep(0.8)
    with pytest.raises(DeviceError) as err:
        recorder.stop()
    assert err.value.sentence == "I heard nothing."
    assert not recorder.is_recording


def test_maximum_length_stops_by_itself(pulse, tmp_path, no_thread_leak):
    long_tone = write(tmp_path / "long.wav", tone(4.0, 48_000, 440.0, 0.5), 48_000, "PCM_16")
    reached = threading.Event()
    recorder = Recorder(max_seconds=1.0, on_limit=reached.set, trim=False)
    player = subprocess.Popen(["paplay", str(long_tone)])
    try:
        recorder.start()
        assert reached.wait(5.0)
        assert reached.is_set() and not recorder.is_recording
        audio = recorder.stop()
    finally:
        player.kill()
        player.wait(5)
    assert audio.duration == pytest.approx(1.0, abs=0.01)


def test_level_signal_follows_the_sound(pulse, tone_file, no_thread_leak):
    levels: list[tuple[float, float]] = []
    t0 = time.monotonic()
    recorder = Recorder(trim=False, on_level=lambda v: levels.append((time.monotonic() - t0, v)))
    record_while_playing(recorder, tone_file, lead=0.3, tail=0.3)
    values = [v for _, v in levels]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert max(values) > 0.7  # a tone at half scale is -6 dBFS: near the top of the meter
    assert values[0] < 0.2 and values[-1] == 0.0  # silent before the tone, reset at the end
    elapsed = levels[-1][0]
    assert len(values) <= elapsed / recorder.level_interval + 5  # throttled


def test_microphones_are_listed_with_the_default(pulse):
    mics = microphone.list_microphones()
    assert mics and sum(m.is_default for m in mics) == 1
    assert microphone.resolve_microphone(None).is_default
    by_name = microphone.resolve_microphone(mics[0].name)
    assert by_name.index == mics[0].index
    assert microphone.resolve_microphone(str(mics[0].index)).index == mics[0].index


def test_microphone_that_does_not_exist(pulse):
    with pytest.raises(DeviceError) as err:
        Recorder("Studio Mic 3000").start()
    assert (
        err.value.sentence == 'I could not find the microphone "Studio Mic 3000". Choose another in Settings.'
    )
    with pytest.raises(DeviceError, match="There is no microphone number 99"):
        Recorder(99).start()


def test_no_input_device(pulse, monkeypatch):
    import sounddevice as sd

    speakers_only = [{"index": 0, "name": "speakers", "max_input_channels": 0, "max_output_channels": 2}]
    monkeypatch.setattr(sd, "query_devices", lambda *a, **k: speakers_only)
    with pytest.raises(DeviceError) as err:
        Recorder().start()
    assert err.value.sentence == microphone.NO_MICROPHONE


@pytest.mark.parametrize(
    ("code", "sentence"),
    [(-9985, microphone.BUSY), (-9999, microphone.PERMISSION), (-9996, microphone.PERMISSION)],
)
def test_open_refused_busy_or_not_allowed(pulse, monkeypatch, code, sentence, no_thread_leak):
    import sounddevice as sd

    def refuse(*args, **kwargs):
        raise sd.PortAudioError("Error opening InputStream", code)

    monkeypatch.setattr(sd, "InputStream", refuse)
    recorder = Recorder()
    with pytest.raises(DeviceError) as err:
        recorder.start()
    assert err.value.sentence == sentence
    assert not recorder.is_recording


def test_stop_without_start_is_a_clear_sentence():
    with pytest.raises(DeviceError, match="I heard nothing"):
        Recorder().stop()


def test_level_mapping():
    assert microphone.level_from_rms(0.0) == 0.0
    assert microphone.level_from_rms(1.0) == 1.0
    assert microphone.level_from_rms(0.001) == pytest.approx(0.0)
    assert microphone.level_from_rms(0.0316) == pytest.approx(0.5, abs=0.01)


class FakeStream:
    """Stands in for sd.InputStream: delivers `blocks` through the real callback, then maybe ends."""

    def __init__(self, blocks, *, ends: bool, callback=None, finished_callback=None, **kw):
        self.samplerate = 48_000  # whatever was asked, as some devices do
        self.blocks, self.ends = blocks, ends
        self.callback, self.finished_callback = callback, finished_callback

    def start(self):
        for block in self.blocks:
            self.callback(block[:, None], len(block), None, None)
        if self.ends:
            self.finished_callback()

    def stop(self, ignore_errors=True):
        pass

    def close(self, ignore_errors=True):
        pass


def fake_streams(monkeypatch, blocks, ends):
    import sounddevice as sd

    monkeypatch.setattr(sd, "InputStream", lambda **kw: FakeStream(blocks, ends=ends, **kw))


def test_device_that_opens_but_sends_nothing_is_busy(pulse, monkeypatch, no_thread_leak):
    fake_streams(monkeypatch, [], ends=False)
    recorder = Recorder()
    recorder.start()
    time.sleep(0.6)
    with pytest.raises(DeviceError) as err:
        recorder.stop()
    assert err.value.sentence == microphone.BUSY


def test_microphone_unplugged_mid_recording(pulse, monkeypatch, no_thread_leak):
    fake_streams(monkeypatch, [np.zeros(4800, np.float32)] * 3, ends=True)
    recorder = Recorder()
    recorder.start()
    time.sleep(0.6)
    assert not recorder.is_recording  # it ended by itself
    with pytest.raises(DeviceError) as err:
        recorder.stop()
    assert err.value.sentence == microphone.GONE


def test_speech_before_an_unplug_is_kept(pulse, monkeypatch, no_thread_leak):
    sound = tone(1.0, 48_000, 440.0, 0.5)
    fake_streams(monkeypatch, np.split(sound, 10), ends=True)
    recorder = Recorder(trim=False)
    recorder.start()
    time.sleep(0.3)
    assert recorder.stop().duration == pytest.approx(1.0, abs=0.01)
