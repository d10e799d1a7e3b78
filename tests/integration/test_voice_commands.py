"""The offline command grammar, on real synthesised speech and real recorded speech."""

import shutil
import subprocess
from pathlib import Path

import pytest

from app.capture.audio_file import load_audio
from app.commands.voice import VoiceCommandRecognizer

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def recognizer():
    r = VoiceCommandRecognizer()
    assert r.available()
    return r


def _say(tmp_path: Path, text: str) -> Path:
    path = tmp_path / (text.replace(" ", "_") + ".wav")
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, timeout=30)
    return path


@pytest.mark.parametrize(
    ("spoken", "command"),
    [
        ("describe the screen", "describe_screen"),
        ("please describe the screen", "describe_screen"),
        ("read everything", "read_text"),
        ("repeat", "repeat_last"),
        ("stop", "stop"),
    ],
)
def test_commands_are_understood(recognizer, tmp_path, spoken, command):
    # espeak writes 22.05 kHz: load_audio resamples to 16 kHz like every other input.
    match = recognizer.recognize(load_audio(_say(tmp_path, spoken)))
    assert match is not None and match.command_id == command


def test_open_question_is_not_mistaken_for_a_command(recognizer, tmp_path):
    audio = load_audio(_say(tmp_path, "what is the weather like tomorrow in paris"))
    assert recognizer.recognize(audio) is None


def test_noise_is_not_a_command(recognizer):
    # A forced grammar maps short unrelated phrases onto the nearest command (the app says what
    # it heard before acting); noise and long open questions must still be rejected.
    sample = Path("/usr/share/sounds/alsa/Noise.wav")
    if not sample.exists():
        pytest.skip("alsa-utils sample sounds are not installed")
    assert recognizer.recognize(load_audio(sample)) is None


def test_leading_silence_of_push_to_talk_does_not_hide_the_command(recognizer, tmp_path):
    # Push-to-talk recordings start with silence: the key goes down before the user speaks.
    import numpy as np

    from app.core.types import AudioInput

    speech = load_audio(_say(tmp_path, "describe the screen")).samples
    padded = np.concatenate([np.zeros(8000, np.float32), speech, np.zeros(12000, np.float32)])
    match = recognizer.recognize(AudioInput(padded, source="microphone"))
    assert match is not None and match.command_id == "describe_screen"
