"""Spoken commands that work without the model: an offline command grammar.

pocketsphinx ships an English acoustic model and dictionary. Free dictation with it is poor, but a
small grammar of a few commands is recognised reliably in a few milliseconds, and speech outside
the grammar (an open question) yields no hypothesis at all, which is how we tell the user that open
questions need the model. Qt-free; pocketsphinx is imported when first used.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass

from app.core.types import SAMPLE_RATE, AudioInput

log = logging.getLogger(__name__)

# Phrase variants per command id (ids match app.commands.registry).
GRAMMAR = """#JSGF V1.0;
grammar sightline;
public <command> = [please] ( <describe> | <read> | <repeat> | <stop> ) [please];
<describe> = (describe | what is on) [the] screen;
<read> = read ([all] [the] (text | words) | everything);
<repeat> = repeat | say that again;
<stop> = stop | be quiet;
"""


# The decoder can return a partial path ("read", "read the") when the speech did not reach the
# end of a phrase; only complete phrases count, which rejects most speech outside the grammar.
_OPT_PLEASE = r"(?:please )?"
PHRASES = (
    ("describe_screen", r"(?:describe|what is on) (?:the )?screen"),
    ("read_text", r"read (?:(?:all )?(?:the )?(?:text|words)|everything)"),
    ("repeat_last", r"repeat|say that again"),
    ("stop", r"stop|be quiet"),
)
_COMPILED = tuple(
    (command_id, re.compile(rf"{_OPT_PLEASE}(?:{pattern})(?: please)?")) for command_id, pattern in PHRASES
)

# What Sightline tells users they can say (README, the help command, the sentence below). Each one
# is tested on synthetic voices, rates and noise (tests/integration/test_voice_commands.py).
ADVERTISED_PHRASES = ("describe the screen", "read the text", "read all the text", "repeat", "stop")

OPEN_QUESTION_NEEDS_MODEL = (
    "Without the Phi-4 model I understand only a few spoken commands: "
    + ", ".join(ADVERTISED_PHRASES[:-1])
    + f", and {ADVERTISED_PHRASES[-1]}. "
    + "For open questions, download the model with: sightline model download."
)

# Decoding attempts, in order; the first complete phrase counts. (frames of lead-in kept before the
# speech, dither level). The decoder normalises its features on the utterance: on clean, quiet
# synthetic or close-microphone speech a final unvoiced consonant ("tex-t") falls below its floor and
# only a partial path ("read the") comes back. A little added noise (-60 dBFS) and trailing silence
# restore it. Measured on espeak-ng speech (6 voices, 3 rates, clean and at 30 and 20 dB SNR, 54 takes
# each), right command: describe the screen 52, read the text 51, read all the text 52, repeat 54,
# stop 54. A forced grammar still maps some open questions onto a command; Sightline says what it
# heard before acting.
_ATTEMPTS = ((2, 0.0), (6, 0.0), (2, 0.001))


@dataclass(frozen=True)
class VoiceMatch:
    command_id: str
    heard: str


def _speech_only(samples, lead_frames: int = 2):
    """The audio from just before the first loud frame to just after the last.

    Digital silence before the speech throws the decoder's feature normalisation off: a
    recorded "describe the screen" with 0.4 s of silence in front decoded as nothing, the same
    audio starting 20 ms before the speech decoded correctly. Push-to-talk recordings always
    start with silence (the key goes down before the user speaks), so cut it here.
    """
    import numpy as np

    frame = 160  # 10 ms at 16 kHz
    n = len(samples) // frame
    if n < 3:
        return samples
    rms = np.sqrt(np.mean(np.square(samples[: n * frame].reshape(n, frame)), axis=1))
    loud = np.flatnonzero(rms > max(float(rms.max()) * 0.02, 1e-4))
    if loud.size == 0:
        return samples
    start = max(0, int(loud[0]) - lead_frames) * frame
    end = min(len(samples), (int(loud[-1]) + 10) * frame)
    return samples[start:end]


class VoiceCommandRecognizer:
    """Thread-safe: one decoder, used under a lock (decoding takes milliseconds)."""

    def __init__(self) -> None:
        self._decoder = None
        self._lock = threading.Lock()

    def available(self) -> bool:
        import importlib.util

        return importlib.util.find_spec("pocketsphinx") is not None

    def _ensure(self):
        if self._decoder is None:
            import pocketsphinx

            config = pocketsphinx.Config()
            config["loglevel"] = "FATAL"
            decoder = pocketsphinx.Decoder(config)
            decoder.add_jsgf_string("commands", GRAMMAR)
            decoder.activate_search("commands")
            self._decoder = decoder
        return self._decoder

    def _decode(self, samples) -> str:
        import numpy as np

        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        with self._lock:
            decoder = self._ensure()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
        return (hyp.hypstr if hyp is not None else "").strip()

    def recognize(self, audio: AudioInput) -> VoiceMatch | None:
        """The command heard, or None when the speech is not one of the commands.

        The decoder is sensitive to where the utterance starts: the same recording cut 20 ms or
        60 ms before the speech can decode as a whole phrase or as a fragment ("read"). Each try
        takes a few milliseconds, so two cuts are tried and the first complete phrase counts.
        """
        import numpy as np

        heard = ""
        for lead_frames, dither in _ATTEMPTS:
            samples = _speech_only(audio.samples, lead_frames)
            if dither:
                lead, tail = np.zeros(SAMPLE_RATE // 20, np.float32), np.zeros(SAMPLE_RATE // 2, np.float32)
                samples = np.concatenate([lead, samples, tail])
                noise = np.random.default_rng(len(samples)).normal(0.0, dither, len(samples))
                samples = (samples + noise).astype(np.float32)
            heard = self._decode(samples)
            log.debug("voice command grammar heard %r", heard)  # speech content: debug only
            for command_id, pattern in _COMPILED:
                if heard and pattern.fullmatch(heard):
                    return VoiceMatch(command_id, heard)
        return None
