"""Spoken commands that work without the model: an offline command grammar.

pocketsphinx ships an English acoustic model and dictionary. Free dictation with it is poor, but a
small grammar of a few commands is recognised reliably in a few milliseconds, and speech outside
the grammar (an open question) yields no hypothesis at all, which is how we tell the user that open
questions need the model. Qt-free; pocketsphinx is imported when first used.

While exploring (app/ui/explore.py), "click Save", "right click Save", "find Save" or "go to Save"
is recognised with a second grammar built at that moment from the words on the explored screen
that the dictionary knows (recognize_explore_phrase); ExploreController.act_on_phrase acts on it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
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


# Explore mode: "[please] (click | right click | find | go to) [the] <an item's words> [button]".
EXPLORE_VERBS = ("click", "right click", "find", "go to")
# Labels longer than this are not offered whole (their words still are, one by one); a grammar with
# more labels than this keeps the first ones in reading order.
EXPLORE_MAX_LABEL_WORDS = 4
EXPLORE_MAX_LABELS = 300
_JSGF_WORD = re.compile(r"[a-z][a-z']*")


def _words(text: str) -> list[str]:
    return text.split()


# Not offered alone: words too common to name an item, easily heard in place of another word.
_NOT_ALONE = frozenset(
    _words(
        "a an and are as at be by for from has have in is it its of on or our the this that to was we "
        "with you your"
    )
)
# Speech that is not a request for an item is forced onto the nearest path of a grammar. These
# common words give it another path ("what is the weather like" -> one of them), and a
# phrase heard through it is no request.
_OTHER_SPEECH = _words(
    "what is the weather like how do i can you tell me about describe screen read text hello "
    "there thank you stop repeat say that again yes no okay where when why who is are was this "
    "that it and of in on for with my your a an to do go be have had will would could should "
    "today tomorrow time day night morning good bad"
)
# Measured on espeak-ng speech (3 voices, 2 rates, clean and 30 dB below the speech: 12 takes each)
# with the items Save, Cancel, Open and Delete, right request: click save 12, right click cancel 12,
# find open 11, go to delete 12, click the save button 11, click open 12, click delete 12. Speech
# that is no request (7 phrases, 3 voices) came back as None 9 times in 21 ("stop" and "read the
# text" always); the rest became a request, so act_on_phrase says what it found before it clicks.


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
        """The decoder, created on first use (the caller holds the lock)."""
        if self._decoder is None:
            import pocketsphinx

            config = pocketsphinx.Config()
            config["loglevel"] = "FATAL"
            decoder = pocketsphinx.Decoder(config)
            decoder.add_jsgf_string("commands", GRAMMAR)
            decoder.activate_search("commands")
            self._decoder = decoder
        return self._decoder

    def _decode(self, samples, grammar: str | None = None) -> str:
        """What the decoder heard with the command grammar, or with `grammar` (a JSGF text) for
        this one utterance: it is loaded as a search of its own and the command search is made
        active again afterwards, all under the lock."""
        import numpy as np

        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        with self._lock:
            decoder = self._ensure()
            if grammar is not None:
                decoder.add_jsgf_string("explore", grammar)  # replaces the last one of that name
                decoder.activate_search("explore")
            try:
                decoder.start_utt()
                decoder.process_raw(pcm, full_utt=True)
                decoder.end_utt()
                hyp = decoder.hyp()
            finally:
                if grammar is not None:
                    decoder.activate_search("commands")
        return (hyp.hypstr if hyp is not None else "").strip()

    def known_words(self, words: Iterable[str]) -> set[str]:
        """Those of `words` (lower case) that the dictionary can pronounce."""
        with self._lock:
            decoder = self._ensure()
            return {w for w in words if _JSGF_WORD.fullmatch(w) and decoder.lookup_word(w) is not None}

    def _attempts(self, audio: AudioInput):
        """The audio cut and padded for each decoding attempt, in order (see _ATTEMPTS)."""
        import numpy as np

        for lead_frames, dither in _ATTEMPTS:
            samples = _speech_only(audio.samples, lead_frames)
            if dither:
                lead, tail = np.zeros(SAMPLE_RATE // 20, np.float32), np.zeros(SAMPLE_RATE // 2, np.float32)
                samples = np.concatenate([lead, samples, tail])
                noise = np.random.default_rng(len(samples)).normal(0.0, dither, len(samples))
                samples = (samples + noise).astype(np.float32)
            yield samples

    def recognize_explore(self, audio: AudioInput, labels: Iterable[str]) -> str | None:
        """The explore request heard ("click save", "right click the cancel button"), or None.

        `labels` are the texts of the items being explored; the grammar offers each label whose
        words the dictionary knows (up to EXPLORE_MAX_LABEL_WORDS words) and each known word."""
        grammar, pattern = explore_grammar(labels, self.known_words)
        if grammar is None:
            return None
        for samples in self._attempts(audio):
            heard = self._decode(samples, grammar)
            log.debug("explore grammar heard %r", heard)  # speech content: debug only
            if heard and pattern.fullmatch(heard):
                return heard
        return None

    def recognize(self, audio: AudioInput) -> VoiceMatch | None:
        """The command heard, or None when the speech is not one of the commands.

        The decoder is sensitive to where the utterance starts: the same recording cut 20 ms or
        60 ms before the speech can decode as a whole phrase or as a fragment ("read"). Each try
        takes a few milliseconds, so two cuts are tried and the first complete phrase counts.
        """
        for samples in self._attempts(audio):
            heard = self._decode(samples)
            log.debug("voice command grammar heard %r", heard)  # speech content: debug only
            for command_id, pattern in _COMPILED:
                if heard and pattern.fullmatch(heard):
                    return VoiceMatch(command_id, heard)
        return None


def explore_grammar(labels: Iterable[str], known_words) -> tuple[str | None, re.Pattern[str]]:
    """The JSGF grammar of explore requests for these labels, and the pattern a complete phrase of
    it matches (the decoder can return a partial path). (None, pattern) when no label has a word
    the dictionary knows. `known_words(words)` returns the subset the dictionary can pronounce."""
    split = []
    for label in labels:
        words = re.sub(r"[^\w']+", " ", label.casefold().replace("\u2019", "'")).split()
        split.append([w.strip("'") for w in words if w.strip("'")])
    known = known_words({w for words in split for w in words})
    choices: dict[str, None] = {}  # ordered set: whole labels first, in reading order, then words
    for words in split:
        if 1 < len(words) <= EXPLORE_MAX_LABEL_WORDS and all(w in known for w in words):
            choices[" ".join(words)] = None
    for words in split:
        for w in words:
            if w in known and len(w) > 1 and (w not in _NOT_ALONE or len(words) == 1):
                choices[w] = None
    alternatives = list(choices)[:EXPLORE_MAX_LABELS]
    verbs = "|".join(re.escape(v) for v in EXPLORE_VERBS)
    targets = "|".join(re.escape(a) for a in alternatives)
    pattern = re.compile(rf"(?:please )?(?:{verbs}) (?:the )?(?:{targets})(?: button)?(?: please)?")
    if not alternatives:
        return None, pattern
    grammar = (
        "#JSGF V1.0;\n"
        "grammar explore;\n"
        "public <heard> = <request> | <other>;\n"
        "<request> = [please] <verb> [the] <label> [button] [please];\n"
        f"<verb> = {' | '.join(EXPLORE_VERBS)};\n"
        f"<label> = {' | '.join(alternatives)};\n"
        # One word, not a loop or a chain: each word more multiplied the decoding time.
        "<other> = <word>;\n"
        f"<word> = {' | '.join(dict.fromkeys(_OTHER_SPEECH))};\n"
    )
    return grammar, pattern


_shared_lock = threading.Lock()
_shared: VoiceCommandRecognizer | None = None


def recognize_explore_phrase(
    audio: AudioInput, labels: Iterable[str], recognizer: VoiceCommandRecognizer | None = None
) -> str | None:
    """What was said to act on an explored item, without the model: "click save", "find cancel",
    or None when the speech was not such a request for one of `labels`. Uses `recognizer` (the app's
    VoiceCommandRecognizer, so one decoder serves both grammars) or one shared by every caller;
    thread-safe either way."""
    global _shared
    if recognizer is None:
        with _shared_lock:
            if _shared is None:
                _shared = VoiceCommandRecognizer()
            recognizer = _shared
    return recognizer.recognize_explore(audio, labels)
