"""Info.plist keys for the macOS Sightline.app (used by installer/sightline.spec on macOS).

Sightline lives in the menu bar (LSUIElement: no Dock icon, no app menu). macOS asks the user before
the first microphone, camera or screen capture and shows these sentences in that question.
"""

from __future__ import annotations


def info_plist(edition) -> dict:
    from app import __version__

    return {
        "CFBundleName": "Sightline",
        "CFBundleDisplayName": edition.title,
        "CFBundleShortVersionString": __version__,
        "CFBundleVersion": __version__,
        "LSUIElement": True,
        "LSMinimumSystemVersion": "12.0",
        "NSHighResolutionCapable": True,
        "NSMicrophoneUsageDescription": (
            "Sightline listens when you hold the talk key, to hear your question."
        ),
        "NSCameraUsageDescription": (
            "Sightline takes a photo when you ask it to describe what is in front of you."
        ),
        # Shown with the Screen Recording permission (System Settings, Privacy and Security).
        "NSScreenCaptureUsageDescription": "Sightline reads and describes your screen when you ask it to.",
        # Global keys: macOS asks for Accessibility (and Input Monitoring) for keyboard listeners.
        "NSAppleEventsUsageDescription": "Sightline uses this to find the active window to describe.",
    }
