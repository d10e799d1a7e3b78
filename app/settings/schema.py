"""The typed settings schema. Every setting a user can change is a field here.

Frozen: a change produces a new Settings (dataclasses.replace), so a snapshot handed to the
worker thread never changes under it.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Settings:
    # Which engine answers: "auto" tries local, then remote (if a server is set), then ocr.
    backend: str = "auto"
    # Folder holding the Phi-4-multimodal weights; empty means the user models dir.
    model_dir: str = ""
    # "auto", "cuda", "mps" or "cpu".
    device: str = "auto"
    # "none", "4bit" or "8bit" (CUDA only).
    quantization: str = "none"
    # Remote vLLM server, e.g. https://ai.school.example:8000/v1; empty means none.
    server_url: str = ""
    server_ca_file: str = ""
    server_allow_insecure_http: bool = False
    server_token_env: str = "SIGHTLINE_SERVER_TOKEN"
    server_image_format: str = "jpeg"  # "jpeg" or "png"
    server_jpeg_quality: int = 90
    # "low", "normal" or "high": how many image crops the model may use.
    detail: str = "normal"
    # The language answers are written in.
    response_language: str = "English"
    max_new_tokens: int = 512
    # Speech.
    output_mode: str = "voice"  # "voice", "screen_reader" or "text"
    speech_driver: str = "auto"
    voice: str = ""
    rate: int = 180  # words per minute
    volume: float = 1.0
    earcons: bool = True
    # Capture.
    pointer_box: int = 400  # side, in pixels, of the box around the mouse pointer
    camera: str = "0"
    microphone: str = ""
    max_recording_seconds: float = 40.0
    # Privacy: screens, audio and answers are never logged unless this is on.
    diagnostics: bool = False
