"""Speech drivers and how one is chosen.

Fallback order: the user's screen reader, pyttsx3 (the system's voices), espeak-ng, silent.
`pick_driver()` returns the first that passes check() and logs why each one before it was skipped.
"""

from __future__ import annotations

import logging

from app.speech.drivers.base import (
    BufferDriver,
    SpeechDriver,
    SpeechDriverError,
    Voice,
    VoiceSettings,
)

log = logging.getLogger("app.speech")

DRIVER_ORDER = ("screen_reader", "pyttsx3", "espeak", "silent")
_ALIASES = {
    "auto": "auto",
    "screen_reader": "screen_reader",
    "screen-reader": "screen_reader",
    "screenreader": "screen_reader",
    "speechd": "screen_reader",
    "speech-dispatcher": "screen_reader",
    "pyttsx3": "pyttsx3",
    "system": "pyttsx3",
    "espeak": "espeak",
    "espeak-ng": "espeak",
    "silent": "silent",
    "none": "silent",
    "text": "silent",
}


def canonical_name(name: str | None) -> str:
    key = (name or "auto").strip().lower()
    if key not in _ALIASES:
        raise SpeechDriverError(
            f"There is no speech driver called {name}. Choose one of: {', '.join(DRIVER_ORDER)}.",
            detail=f"unknown driver {name!r}",
        )
    return _ALIASES[key]


def make_driver(name: str, **kwargs) -> SpeechDriver:
    """A new driver by name (aliases accepted). Construction is cheap; nothing starts yet."""
    name = canonical_name(name)
    if name == "screen_reader":
        from app.speech.drivers.screen_reader import ScreenReaderDriver

        return ScreenReaderDriver(**kwargs)
    if name == "pyttsx3":
        from app.speech.drivers.pyttsx3_driver import Pyttsx3Driver

        return Pyttsx3Driver(**kwargs)
    if name == "espeak":
        from app.speech.drivers.espeak import EspeakDriver

        return EspeakDriver(**kwargs)
    if name == "silent":
        from app.speech.drivers.silent import SilentDriver

        return SilentDriver(**kwargs)
    raise SpeechDriverError(detail=f"no driver for {name!r}")


def fallback_chain(preference: str | None = "auto") -> list[str]:
    """Driver names in the order they are tried: the preferred one first, then the usual order."""
    first = canonical_name(preference)
    if first == "auto":
        return list(DRIVER_ORDER)
    return [first] + [n for n in DRIVER_ORDER if n != first]


def pick_driver(
    preference: str | None = "auto", candidates: list[SpeechDriver] | None = None
) -> tuple[SpeechDriver, list[SpeechDriver]]:
    """The first driver that can run here, and the ones after it (for later fallback).

    `candidates` replaces the built-in drivers (tests, or a caller that built them already).
    Each skipped driver is logged with its reason. The silent driver always passes, so this never
    fails; a user who asked for a driver that cannot run hears the next one and the log says why.
    """
    drivers = candidates if candidates is not None else [make_driver(n) for n in fallback_chain(preference)]
    for index, driver in enumerate(drivers):
        try:
            ok, reason = driver.check()
        except Exception as exc:  # a check must never take the app down
            ok, reason = False, f"check failed: {exc.__class__.__name__}: {exc}"
        if ok:
            log.info("speech driver: %s (%s)", driver.name, reason)
            return driver, drivers[index + 1 :]
        log.info("speech driver %s skipped: %s", driver.name, reason)
        driver.close()
    from app.speech.drivers.silent import SilentDriver

    log.warning("no speech driver can run here; speech is off and answers are shown only")
    return SilentDriver(), []


__all__ = [
    "DRIVER_ORDER",
    "BufferDriver",
    "SpeechDriver",
    "SpeechDriverError",
    "Voice",
    "VoiceSettings",
    "canonical_name",
    "fallback_chain",
    "make_driver",
    "pick_driver",
]
