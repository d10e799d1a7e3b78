"""`sightline devices`: monitors, cameras, microphones, speech drivers and voices, with whether each
can be used here. Each section is gathered on its own, so one broken subsystem (no display, no
audio server) shows as a reason instead of hiding the others."""

from __future__ import annotations

import logging

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


def _monitors() -> list[dict]:
    from app.capture.screen import list_monitors

    rows = []
    for m in list_monitors():
        if m.index == 0:
            continue  # "all monitors together" is a capture mode, not a device
        summary = f"Monitor {m.index}: {m.width} by {m.height} at {m.x}, {m.y}" + (
            " (primary)" if m.primary else ""
        )
        rows.append(
            {
                "index": m.index,
                "x": m.x,
                "y": m.y,
                "width": m.width,
                "height": m.height,
                "primary": m.primary,
                "name": m.name,
                "available": True,
                "summary": summary,
            }
        )
    return rows


def _cameras() -> list[dict]:
    from app.capture.camera import list_cameras

    return [
        {
            "index": c.index,
            "name": c.name,
            "path": c.path,
            "available": True,
            "summary": f"Camera {c.index}: {c.name}",
        }
        for c in list_cameras()
    ]


def _microphones() -> list[dict]:
    from app.capture.microphone import list_microphones

    rows = []
    for m in list_microphones():
        summary = f"Microphone {m.index}: {m.name}" + (" (default)" if m.is_default else "")
        rows.append(
            {
                "index": m.index,
                "name": m.name,
                "channels": m.channels,
                "default_samplerate": m.default_samplerate,
                "default": m.is_default,
                "available": True,
                "summary": summary,
            }
        )
    return rows


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
