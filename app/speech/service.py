"""What the CLI calls: `sightline speak` and the speech part of `sightline devices`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.core.errors import InputError, SightlineError
from app.core.resample import resample
from app.speech.chunker import SentenceChunker
from app.speech.drivers import (
    DRIVER_ORDER,
    SpeechDriverError,
    VoiceSettings,
    canonical_name,
    fallback_chain,
    make_driver,
    pick_driver,
)
from app.speech.drivers.base import BufferDriver

log = logging.getLogger("app.speech")


@dataclass(frozen=True)
class SpeakOutcome:
    driver: str  # the driver that spoke (or wrote the file)
    sentences: int
    seconds: float  # wall time from start to the end of speech
    out: Path | None = None


def _sentences(text: str) -> list[str]:
    chunker = SentenceChunker()
    return chunker.feed(text) + chunker.flush()


def speak_text(
    text: str,
    driver: str | None = None,
    out: Path | None = None,
    settings: VoiceSettings | None = None,
    timeout: float = 600.0,
) -> SpeakOutcome:
    """Speaks `text` in full and returns when it has been heard (or writes it to `out` as WAV).

    `driver` is a name (screen_reader, pyttsx3, espeak, silent) or None/"auto" for the fallback
    order. With `out`, only drivers that synthesise samples can be used (pyttsx3, espeak). Ctrl+C
    stops speech at once and is re-raised for the CLI to turn into its exit code.
    """
    text = (text or "").strip()
    if not text:
        raise InputError("There is no text to speak.")
    settings = (settings or VoiceSettings()).clamped()
    sentences = _sentences(text) or [text]
    started = time.monotonic()
    if out is not None:
        return _speak_to_file(text, sentences, driver, Path(out), settings, started)

    from app.speech.manager import SpeechManager

    manager = SpeechManager(driver or "auto", settings=settings)
    try:
        for sentence in sentences:
            manager.speak(sentence)
        if not manager.wait_idle(timeout):
            manager.stop()
            raise SpeechDriverError("Speaking took too long and was stopped.", detail=f"over {timeout} s")
        return SpeakOutcome(manager.driver_name, len(sentences), time.monotonic() - started)
    except KeyboardInterrupt:
        manager.stop()
        raise
    finally:
        manager.close()


def _speak_to_file(
    text: str, sentences: list[str], driver: str | None, out: Path, settings: VoiceSettings, started: float
) -> SpeakOutcome:
    import soundfile as sf

    if out.suffix.lower() != ".wav":
        raise InputError("The output file must end in .wav.")
    if not out.parent.exists():
        raise InputError(f"The folder {out.parent} does not exist.")
    names = [n for n in fallback_chain(driver) if n in ("pyttsx3", "espeak")]
    if driver and canonical_name(driver) not in ("auto", "pyttsx3", "espeak"):
        raise SpeechDriverError(
            f"The {canonical_name(driver).replace('_', ' ')} driver cannot save speech to a file. "
            "Use pyttsx3 or espeak.",
            detail=f"--out with driver {driver}",
        )
    errors = []
    for name in names:
        drv = make_driver(name)
        if not isinstance(drv, BufferDriver):  # only synthesisers render to a buffer
            continue
        try:
            ok, reason = drv.engine_check()  # writing a file needs no sound device
            if not ok:
                log.info("speech driver %s skipped: %s", name, reason)
                errors.append(f"{name}: {reason}")
                continue
            parts, rate = [], None
            for sentence in sentences:
                samples, r = drv.synthesize(sentence, settings)
                if rate is None:
                    rate = r
                elif r != rate:
                    samples = resample(samples, r, rate)
                parts.append(samples)
                parts.append(np.zeros(int(0.15 * rate), dtype=np.float32))  # a breath between sentences
            audio = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
            try:
                sf.write(str(out), audio, int(rate or 22050), subtype="PCM_16")
            except (OSError, RuntimeError) as exc:
                raise SightlineError(f"Could not write {out.name}.", detail=repr(exc)) from exc
            return SpeakOutcome(name, len(sentences), time.monotonic() - started, out)
        except SpeechDriverError as exc:
            log.warning("speech driver %s failed (%s); trying the next", name, exc.detail)
            errors.append(f"{name}: {exc.detail}")
        finally:
            drv.close()
    raise SpeechDriverError(
        "No speech engine here can save speech to a file.", detail="; ".join(errors) or "none available"
    )


def speech_devices(with_voices: bool = True, max_voices: int | None = None) -> list[dict]:
    """Every speech driver in fallback order: whether it can run here, why not, and its voices.

    Shape: [{"name", "label", "available", "reason", "voices": [{"id", "name", "language"}]}].
    """
    rows = []
    for name in DRIVER_ORDER:
        drv = make_driver(name)
        try:
            try:
                ok, reason = drv.check()
            except Exception as exc:
                ok, reason = False, f"check failed: {exc.__class__.__name__}: {exc}"
            voices = []
            if ok and with_voices and name != "silent":
                try:
                    voices = [v.as_dict() for v in drv.list_voices()]
                except Exception as exc:
                    log.info("voices of %s unavailable: %s", name, exc)
            if max_voices is not None:
                voices = voices[:max_voices]
            rows.append(
                {"name": name, "label": drv.label, "available": bool(ok), "reason": reason, "voices": voices}
            )
        finally:
            drv.close()
    return rows


OWN_VOICE_ORDER = ("pyttsx3", "espeak", "screen_reader", "silent")


def driver_chain(output_mode: str, preference: str | None = "auto") -> list[str]:
    """Driver names to try, in order, for the user's output mode.

    "voice" (Sightline's own voice) prefers the synthesisers and falls back to the screen reader;
    "screen_reader" puts the user's screen reader first; "text" speaks nothing. A named driver
    preference goes first in any mode but "text".
    """
    if output_mode == "text":
        return ["silent"]
    pref = canonical_name(preference)
    if pref not in ("auto", ""):
        return fallback_chain(pref)
    if output_mode == "screen_reader":
        return fallback_chain("screen_reader")
    return list(OWN_VOICE_ORDER)


def pick_for_output(output_mode: str, preference: str | None = "auto"):
    """(driver, fallbacks) for SpeechManager: the first of driver_chain() that can run here."""
    return pick_driver(candidates=[make_driver(name) for name in driver_chain(output_mode, preference)])
