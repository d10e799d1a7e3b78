"""The remote backend's pure parts: addresses, the refusal of insecure http, payloads, adapters."""

from __future__ import annotations

import base64
import io
import json
import socket
import wave

import httpx
import numpy as np
import pytest
from PIL import Image

from app.core.cancel import CancelToken
from app.core.errors import BackendUnavailableError, InputError, ServerError
from app.core.types import AudioInput, Detail, ImageInput, JobRequest, Task, Turn
from app.inference.openai_compatible import (
    INSECURE_HTTP_REASON,
    NO_SERVER_REASON,
    OpenAICompatibleBackend,
    ServerAddress,
    _retry_after,
    _sse_data,
    base_model_from_listing,
    build_payload,
    encode_image,
    encode_wav,
    model_for,
)
from app.inference.prompts import build_prompt
from app.inference.server_tools import vllm_serve_command
from app.settings.schema import Settings


def _image(w: int, h: int) -> ImageInput:
    rng = np.random.default_rng(w * 10_000 + h)
    return ImageInput(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "screen")


def _audio(seconds: float) -> AudioInput:
    t = np.arange(int(16_000 * seconds), dtype=np.float32) / 16_000
    return AudioInput((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), "microphone")


def _decode_data_url(url: str) -> Image.Image:
    head, _, data = url.partition(",")
    assert head.startswith("data:image/") and head.endswith(";base64")
    return Image.open(io.BytesIO(base64.b64decode(data)))


# ---------------------------------------------------------------- addresses and check()


def test_address_defaults_to_https_and_v1():
    a = ServerAddress.parse("ai.school.example:8443")
    assert (a.scheme, a.host, a.port, a.base_path) == ("https", "ai.school.example", 8443, "/v1")
    assert ServerAddress.parse("https://ai.school.example/sightline/v1/").base_path == "/sightline/v1"
    assert ServerAddress.parse("http://localhost").port == 80


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("[::1]", True),
        ("app.localhost", True),
        ("10.0.0.5", False),
        ("ai.school.example", False),
        ("localhost.evil.com", False),
    ],
)
def test_loopback_is_decided_without_the_network(host, loopback):
    assert ServerAddress.parse(f"http://{host}:8000/v1").is_loopback is loopback


def test_addresses_that_are_refused():
    with pytest.raises(ServerError, match="must start with https"):
        ServerAddress.parse("ftp://ai.school.example")
    with pytest.raises(ServerError, match="password"):
        ServerAddress.parse("https://user:secret@ai.school.example")


def test_check_without_a_server_says_so():
    backend = OpenAICompatibleBackend("")
    status = backend.check()
    assert not status.ok and status.reason == NO_SERVER_REASON
    assert backend.display_name == "the Sightline server"
    with pytest.raises(BackendUnavailableError, match="No server is set"):
        list(backend.generate(JobRequest(Task.ASK_SPOKEN, question="hi"), CancelToken()))


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve or connect fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_plain_http_to_another_computer_is_refused_without_traffic(no_network):
    backend = OpenAICompatibleBackend("http://ai.school.example:8000/v1")
    status = backend.check()
    assert not status.ok and status.reason == INSECURE_HTTP_REASON
    with pytest.raises(ServerError) as err:
        list(backend.generate(JobRequest(Task.ASK_SPOKEN, question="hi"), CancelToken()))
    assert "plain http to another computer is refused" in err.value.sentence.lower()
    assert err.value.sentence.endswith(".")


def test_insecure_http_only_when_allowed_or_loopback(no_network):
    assert OpenAICompatibleBackend("http://ai.school.example:8000/v1", allow_insecure_http=True).check().ok
    assert OpenAICompatibleBackend("http://127.0.0.1:8000/v1").check().ok
    assert OpenAICompatibleBackend("https://ai.school.example/v1").check().ok


def test_check_notices_a_missing_certificate_file(tmp_path, no_network):
    backend = OpenAICompatibleBackend("https://ai.school.example/v1", ca_file=str(tmp_path / "ca.pem"))
    status = backend.check()
    assert not status.ok and "certificate file" in status.reason


def test_from_settings_reads_every_server_setting():
    settings = Settings(
        server_url="https://gpu.office.example:8443/v1",
        server_allow_insecure_http=True,
        server_token_env="OFFICE_TOKEN",
        server_image_format="png",
        server_jpeg_quality=75,
    )
    backend = OpenAICompatibleBackend.from_settings(settings)
    assert backend.name == "remote"
    assert backend.display_name == "the Sightline server at gpu.office.example"
    assert backend.allow_insecure_http and backend.image_format == "png" and backend.jpeg_quality == 75
    assert backend.client.token_env == "OFFICE_TOKEN"
    assert backend.capabilities.images and backend.capabilities.audio and not backend.capabilities.local


# ---------------------------------------------------------------- images and audio


def test_jpeg_and_png_data_urls_decode_to_the_right_size():
    image = _image(1920, 1080)
    jpeg = encode_image(image, Detail.NORMAL, "jpeg", 80)
    png = encode_image(image, Detail.LOW, "png")
    with _decode_data_url(jpeg.data_url) as img:
        assert img.format == "JPEG" and img.size == (1592, 896)
    with _decode_data_url(png.data_url) as img:
        assert img.format == "PNG" and img.size == (796, 448)
        # PNG is lossless: a picture that needs no scaling comes back pixel for pixel.
    small = _image(320, 200)
    with _decode_data_url(encode_image(small, Detail.NORMAL, "png").data_url) as img:
        assert np.array_equal(np.asarray(img.convert("RGB")), small.pixels)


def test_jpeg_quality_setting_changes_the_size():
    image = _image(800, 600)
    low = encode_image(image, Detail.NORMAL, "jpeg", 30)
    high = encode_image(image, Detail.NORMAL, "jpeg", 95)
    assert len(low.data_url) < len(high.data_url)


def test_audio_is_16khz_mono_16bit_wav():
    audio = _audio(1.25)
    data = encode_wav(audio)
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16_000, 1, 2)
        frames = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert len(frames) == len(audio.samples)
    assert np.allclose(frames / 32767.0, audio.samples, atol=1e-4)


def test_a_recording_too_short_to_hear_is_an_input_error():
    with pytest.raises(InputError):
        encode_wav(AudioInput(np.zeros(100, np.float32), "microphone"))


# ---------------------------------------------------------------- payload and adapters


def test_adapter_by_modality():
    img, aud = _image(64, 64), _audio(0.5)
    assert model_for(JobRequest(Task.DESCRIBE_BRIEF, image=img), "base") == "vision"
    assert model_for(JobRequest(Task.ASK_IMAGE, image=img, audio=aud), "base") == "vision"
    assert model_for(JobRequest(Task.TRANSCRIBE, audio=aud), "base") == "speech"
    assert model_for(JobRequest(Task.ASK_SPOKEN, audio=aud), "base") == "speech"
    assert model_for(JobRequest(Task.ASK_SPOKEN, question="What is a fjord?"), "base") == "base"


def test_payload_carries_prompt_history_image_and_audio():
    request = JobRequest(
        Task.ASK_IMAGE,
        image=_image(900, 600),
        audio=_audio(0.5),
        history=(Turn("user", "What is this?"), Turn("assistant", "A settings window.")),
        max_new_tokens=77,
    )
    payload = build_payload(request, "vision", image_format="png")
    json.dumps(payload)  # serialisable as it is
    prompt = build_prompt(request)
    assert payload["model"] == "vision"
    assert payload["stream"] is True and payload["stream_options"] == {"include_usage": True}
    assert payload["max_tokens"] == 77 and payload["temperature"] == 0.0
    roles = [m["role"] for m in payload["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert payload["messages"][0]["content"] == prompt.system
    parts = payload["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "input_audio", "text"]
    assert parts[-1]["text"] == prompt.user_text
    assert parts[1]["input_audio"]["format"] == "wav"
    with _decode_data_url(parts[0]["image_url"]["url"]) as img:
        assert img.format == "PNG" and img.size == (900, 600)


def test_text_only_payload_has_no_media():
    payload = build_payload(JobRequest(Task.ASK_SPOKEN, question="What is a fjord?"), "base")
    parts = payload["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text"] and "fjord" in parts[0]["text"]


def test_base_model_is_read_from_the_model_list():
    listing = {
        "object": "list",
        "data": [
            {"id": "speech", "parent": "/srv/phi4mm"},
            {"id": "/srv/phi4mm", "parent": None},
            {"id": "vision", "parent": "/srv/phi4mm"},
        ],
    }
    assert base_model_from_listing(listing) == "/srv/phi4mm"
    assert base_model_from_listing({"data": [{"id": "vision", "parent": "base-x"}]}) == "base-x"
    assert base_model_from_listing({"nothing": 1}) == ""


# ---------------------------------------------------------------- protocol details


def test_sse_events_skip_comments_and_join_multiline_data():
    raw = (
        b': keep-alive\r\n\r\ndata: {"a": 1}\r\n\r\nid: 7\nevent: x\ndata: one\ndata: two\n\ndata:[DONE]\n\n'
    )
    response = httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=raw)
    assert list(_sse_data(response)) == ['{"a": 1}', "one\ntwo", "[DONE]"]


def test_retry_after_seconds_and_dates():
    assert _retry_after("3") == 3.0
    assert _retry_after(None) is None and _retry_after("soon") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait


def test_vllm_serve_command_has_the_flags_that_work():
    cmd = vllm_serve_command("/srv/models/Phi-4-multimodal-instruct")
    for flag in (
        "vllm serve /srv/models/Phi-4-multimodal-instruct",
        "--trust-remote-code",
        "--enable-lora",
        "--max-lora-rank 320",
        "--max-loras 2",
        "--lora-modules speech=/srv/models/Phi-4-multimodal-instruct/speech-lora "
        "vision=/srv/models/Phi-4-multimodal-instruct/vision-lora",
        """--limit-mm-per-prompt '{"image":1,"audio":1}'""",
        """--mm-processor-kwargs '{"dynamic_hd":12}'""",
        "--max-model-len 4096",
    ):
        assert flag in cmd
    assert "<path to the main-branch snapshot>" in vllm_serve_command()
