"""`sightline devices`: monitors, cameras, microphones, speech drivers and voices, with whether each
can be used here. Each section is gathered on its own, so one broken subsystem (no display, no
audio server) shows as a reason instead of hiding the others."""

from __future__ import annotations

import logging
from dataclasses import asdict

from app.core.errors import SightlineError

log = logging.getLogger(__name__)


def _section(fn) -> list[dict]:
    try:
        return fn()
    except SightlineError as exc:
        return [{"available": False, "reason": exc.sentence, "summary": f"unavailable: {exc.sentence}"}]
    except Exception as exc:
        log.exception("device listing failed")
        reason = f"could not be listed ({type(exc).__name__})"
        return [{"available": False, "reason": reason, "summary": f"unavailable: {reason}"}]


def _row(summary: str, **fields) -> dict:
    """One usable device: its fields, then `available` and `summary`, in that order in the JSON."""
    return {**fields, "available": True, "summary": summary}


def _monitors() -> list[dict]:
    from app.capture.screen import list_monitors

    return [
        _row(
            f"Monitor {m.index}: {m.width} by {m.height} at {m.x}, {m.y}"
            + (" (primary)" if m.primary else ""),
            **asdict(m),
        )
        for m in list_monitors()
        if m.index != 0  # "all monitors together" is a capture mode, not a device
    ]


def _cameras() -> list[dict]:
    from app.capture.camera import list_cameras

    return [_row(f"Camera {c.index}: {c.name}", **asdict(c)) for c in list_cameras()]


def _microphones() -> list[dict]:
    from app.capture.microphone import list_microphones

    return [
        _row(
            f"Microphone {m.index}: {m.name}" + (" (default)" if m.is_default else ""),
            index=m.index,
            name=m.name,
            channels=m.channels,
            default_samplerate=m.default_samplerate,
            default=m.is_default,
        )
        for m in list_microphones()
    ]


def _speech() -> list[dict]:
    from app.speech.service import speech_devices

    rows = []
    for d in speech_devices(with_voices=True):
        if d["available"]:
            summary = f"{d['label']}: available, {len(d['voices'])} voices"
        else:
            summary = f"{d['label']}: not available ({d['reason']})"
        rows.append({**d, "summary": summary})
    return rows


def list_devices() -> dict[str, list[dict]]:
    return {
        "monitors": _section(_monitors),
        "cameras": _section(_cameras),
        "microphones": _section(_microphones),
        "speech_drivers": _section(_speech),
    }
