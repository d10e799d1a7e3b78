"""The remote backend: a vLLM server serving Phi-4-multimodal over its OpenAI-compatible API.

One GPU server answers a whole office or school; each desktop keeps capture and speech and sends
only the request. The server serves the base model plus two LoRA adapters, chosen by model name:
"vision" for any image (also image with audio), "speech" for audio alone, the base model for text
(its name is read once from /v1/models unless it is given).

Transport: httpx, with server-sent events read by httpx-sse (chosen over the openai SDK, which
builds on httpx but hides the connection that Stop must shut, the socket that the address check
must choose, and the raw stream that the limits below must watch). httpx reaches the network
through `_Network`, an httpcore network backend: the name is resolved once, every address it
resolves to is checked, and the connection goes to a checked address, so a DNS answer cannot change
between the check and the use; TLS still verifies the server's name.

Stopping: a cancel shuts the connection's socket from the cancel token's callback, on the thread
that cancels, so the worker's blocking read returns at once (`_Exchange`). Every read and write
also ends at the nearest deadline: the first token within `first_byte` seconds, then no gap between
tokens longer than `idle` seconds, and the whole turn within `turn` seconds; the answer is also cut
at a number of characters, for a server that ignores max_tokens. A keep-alive comment or a dripped
byte is not a token: only text of the answer moves the deadlines.

Security: TLS is verified (a custom CA file is a setting); plain http is refused when any address
the name resolves to is not this computer, unless the user allowed it; the token goes only into the
Authorization header and is scrubbed, in every form, from every text that is logged or shown
(app.inference.credentials).
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import email.utils
import errno
import io
import ipaddress
import json
import logging
import os
import select
import socket
import ssl
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpcore
import httpx
import httpx_sse

from app.core.cancel import CancelToken
from app.core.errors import BackendUnavailableError, Cancelled, InputError, ServerError, SightlineError
from app.core.types import AudioInput, Detail, ImageInput, JobRequest, Usage
from app.inference.base import BackendCheck, Capabilities, ModelBackend
from app.inference.credentials import Secret, redact
from app.inference.phi4_local import _grid_for, pad_thin_image
from app.inference.prompts import build_prompt

log = logging.getLogger(__name__)
# httpx and httpcore log each request's and response's headers at INFO and DEBUG; a server may echo
# the token in them, and what they say is already in Sightline's own log lines.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

VISION_MODEL = "vision"
SPEECH_MODEL = "speech"
#: The side of one image crop in Phi-4-multimodal's dynamic-HD tiling.
CROP_SIDE = 448
#: Phi-4-multimodal's audio encoder needs at least about 25 ms.
MIN_AUDIO_SECONDS = 0.025
#: The server's crop cap: `--mm-processor-kwargs '{"dynamic_hd":12}'` in `sightline server command`.
SERVER_MAX_CROPS = 12
#: An answer longer than this many characters per requested token is cut (a server ignoring max_tokens).
CHARS_PER_TOKEN_CAP = 16
MIN_CHAR_CAP = 4000

NO_SERVER_REASON = "no server is set"
INSECURE_HTTP_REASON = (
    "plain http to another computer is refused; use an https address, or allow insecure http in the settings"
)

_LOOKUP_TIMEOUT = 20.0  # seconds for the system's name lookup
_MAX_LINE = 1 << 20  # one SSE line; vLLM's chunks are a few hundred bytes
_MAX_ERROR_BODY = 64 * 1024
_USER_AGENT = "Sightline"


def _sentence(fragment: str) -> str:
    """'no server is set' -> 'No server is set.'"""
    text = fragment.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


# ---------------------------------------------------------------- the server's address


@dataclass(frozen=True)
class ServerAddress:
    scheme: str  # "http" or "https"
    host: str
    port: int
    base_path: str  # e.g. "/v1"

    @classmethod
    def parse(cls, url: str) -> ServerAddress:
        """Parse a server address; a bare host gets https and /v1. Raises ServerError."""
        text = url.strip()
        if "://" not in text:
            text = "https://" + text
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            raise ServerError(f"The server address {url.strip()!r} is not a valid address.") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ServerError("The server address must start with https://.")
        if parts.username or parts.password:
            raise ServerError(
                "Do not put a name or password in the server address. "
                "Keep the access token in the keyring or an environment variable."
            )
        host = (parts.hostname or "").strip()
        if not host:
            raise ServerError(f"The server address {url.strip()!r} has no host name.")
        path = parts.path.rstrip("/")
        if not path:
            path = "/v1"
        return cls(scheme, host, port or (443 if scheme == "https" else 80), path)

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    @property
    def is_loopback(self) -> bool:
        host = self.host.lower().rstrip(".")
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def url(self, endpoint: str = "") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.base_path}{endpoint}"


#: (host, port) -> [(address family, socket address)], like socket.getaddrinfo. Tests inject one.
Resolver = Callable[[str, int], list[tuple[int, tuple]]]


def system_resolver(host: str, port: int) -> list[tuple[int, tuple]]:
    """Every TCP address `host` resolves to, in the order the system prefers."""
    found: list[tuple[int, tuple]] = []
    for family, _type, _proto, _name, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if family in (socket.AF_INET, socket.AF_INET6) and (family, sockaddr) not in found:
            found.append((family, sockaddr))
    return found


def is_loopback_address(ip: str) -> bool:
    """True for an address of this computer's loopback interface (127/8, ::1, ::ffff:127.x)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def server_display_name(host: str | None) -> str:
    return f"the Sightline server at {host}" if host else "the Sightline server"


# ---------------------------------------------------------------- tunables


@dataclass(frozen=True)
class Timeouts:
    """Seconds. Only text of the answer counts as progress; keep-alive comments and stray bytes do not.

    first_byte: from sending the request until the first text of the answer (queue and prefill).
    idle: the longest gap between two pieces of text. turn: the whole request, retries included.
    """

    connect: float = 5.0
    first_byte: float = 45.0
    idle: float = 30.0
    turn: float = 300.0

    @classmethod
    def from_idle(cls, idle: float, turn: float = 300.0) -> Timeouts:
        """The settings' form: one idle limit; the first text may take half as long again."""
        idle = max(0.1, float(idle))
        return cls(first_byte=idle * 1.5, idle=idle, turn=max(idle, float(turn)))


@dataclass(frozen=True)
class RetryPolicy:
    """Retries on 429 and 503, only before the first token, with doubling backoff."""

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 4.0
    max_retry_after: float = 10.0  # a longer Retry-After is not waited for: the user hears it

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(0.0, retry_after)
        return min(self.max_backoff, self.backoff * (2**attempt))


@dataclass
class RequestTimings:
    """Seconds from the start of generate(); filled in as the request goes."""

    encode: float = 0.0  # building the payload (image and audio encoding included)
    connected: float = 0.0
    headers: float = 0.0  # the response's status line and headers arrived
    first_event: float = 0.0  # the first SSE event of the answer
    first_token: float = 0.0  # the first piece of text was handed on
    total: float = 0.0
    attempts: int = 0


@dataclass
class StreamState:
    """What one streamed answer left behind besides its text."""

    usage: Usage = field(default_factory=Usage)
    timings: RequestTimings = field(default_factory=RequestTimings)
    finish_reason: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def mark(self) -> float:
        return time.perf_counter() - self.started


# ---------------------------------------------------------------- payload


def _fitted_size(width: int, height: int, crops: int) -> tuple[int, int]:
    """The size Phi-4-multimodal's processor scales an image to before padding it to its crop grid.

    One side fills the grid exactly (a multiple of 448); the other is what the aspect leaves. The
    image tokens follow from this size alone (padding is masked out), so two processors that reach
    the same size make the same number of tokens.
    """
    cols, rows = _grid_for(width, height, crops, CROP_SIDE)
    target_w, target_h = CROP_SIDE * cols, CROP_SIDE * rows
    if target_w / width < target_h / height:
        return target_w, max(1, int(height * target_w / width))
    return max(1, int(width * target_h / height)), target_h


def size_for_server(
    width: int, height: int, crops: int, server_crops: int = SERVER_MAX_CROPS
) -> tuple[int, int]:
    """The size to send so the server makes as many image tokens as the local model with `crops`.

    The server applies its own crop cap (dynamic_hd, 12 in `sightline server command`) to whatever
    it receives. Sending the image already scaled to the local model's size makes the server pick the
    same grid and the same size, hence the same tokens: a 1080p screen is 2,129 tokens at normal
    detail and 753 at low, as on this computer. Detail beyond the server's cap cannot be had: high
    detail becomes the server's cap. A small image that the processor scales up is sent as it is
    where the server reaches the same size from it.
    """
    crops = max(1, min(int(crops), int(server_crops)))
    wanted = _fitted_size(width, height, crops)
    if wanted[0] <= width and wanted[1] <= height:
        return wanted  # smaller: fewer bytes to send, and the server takes the size as it is
    if _fitted_size(width, height, server_crops) == wanted:
        return width, height  # the server scales it up to the same size itself
    return wanted


@dataclass(frozen=True)
class EncodedImage:
    data_url: str
    width: int
    height: int
    mime: str


def encode_image(
    image: ImageInput,
    detail: Detail,
    fmt: str = "jpeg",
    quality: int = 90,
    server_crops: int = SERVER_MAX_CROPS,
) -> EncodedImage:
    """A data: URL of the image, sized so the server spends the local model's tokens on it."""
    from PIL import Image

    fmt = (fmt or "jpeg").lower()
    if fmt == "jpg":
        fmt = "jpeg"
    if fmt not in ("jpeg", "png"):
        log.warning("unknown server image format %r; sending JPEG", fmt)
        fmt = "jpeg"
    pixels = pad_thin_image(image.pixels)  # as the local model does; the processor refuses slivers
    if pixels is not image.pixels:
        image = ImageInput(pixels, image.source)
    width, height = size_for_server(image.width, image.height, detail.max_crops, server_crops)
    if detail.max_crops > server_crops:
        log.info(
            "%s detail asks for up to %d crops; the server uses at most %d",
            detail.value,
            detail.max_crops,
            server_crops,
        )
    pil = image.to_pil()
    if (width, height) != (image.width, image.height):
        # Bicubic: small text stays readable, and it is about a third faster than Lanczos on a 1080p screen.
        pil = pil.resize((width, height), Image.Resampling.BICUBIC, reducing_gap=3.0)
    buf = io.BytesIO()
    if fmt == "jpeg":
        # 4:4:4 keeps coloured text on screens legible; the quality is a setting.
        pil.save(buf, "JPEG", quality=max(1, min(100, int(quality))), subsampling=0)
        mime = "image/jpeg"
    else:
        pil.save(buf, "PNG", compress_level=3)
        mime = "image/png"
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return EncodedImage(f"data:{mime};base64,{data}", width, height, mime)


def encode_wav(audio: AudioInput) -> bytes:
    """16 kHz mono 16-bit PCM WAV bytes."""
    import numpy as np

    if audio.duration < MIN_AUDIO_SECONDS:
        raise InputError("The recording is too short to hear anything.")
    pcm = np.clip(audio.samples, -1.0, 1.0)
    pcm = np.round(pcm * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(audio.sample_rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def model_for(request: JobRequest, base_model: str) -> str:
    """The adapter by modality: vision for any image, speech for audio alone, the base for text."""
    modality = request.modality
    if modality == "vision":
        return VISION_MODEL
    if modality == "speech":
        return SPEECH_MODEL
    return base_model


def build_payload(
    request: JobRequest,
    model: str,
    *,
    image_format: str = "jpeg",
    jpeg_quality: int = 90,
    server_crops: int = SERVER_MAX_CROPS,
) -> dict:
    """The chat-completions request body for one job (streaming, greedy, usage included)."""
    prompt = build_prompt(request)
    messages: list[dict] = [{"role": "system", "content": prompt.system}]
    for turn in prompt.history:
        if turn.role in ("user", "assistant") and turn.text:
            messages.append({"role": turn.role, "content": turn.text})
    parts: list[dict] = []
    if request.image is not None:
        encoded = encode_image(request.image, request.detail, image_format, jpeg_quality, server_crops)
        parts.append({"type": "image_url", "image_url": {"url": encoded.data_url}})
    if request.audio is not None:
        wav = base64.b64encode(encode_wav(request.audio)).decode("ascii")
        parts.append({"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}})
    parts.append({"type": "text", "text": prompt.user_text})
    messages.append({"role": "user", "content": parts})
    return {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": request.max_new_tokens,
        "temperature": 0.0,  # greedy, the model's published default
    }


# ---------------------------------------------------------------- one exchange


class _Exchange:
    """One request on one connection, and everything that may end it early.

    - A cancel: the token's callback runs on the thread that cancels (usually the GUI thread) and
      shuts the socket down there and then; the worker's blocked read or connect returns at once.
    - A deadline (the first text, the gap since the last text, the whole turn): every read and
      write on the worker's thread waits at most until the nearest one, and ends the exchange when
      it has passed, so neither a silent server nor keep-alives or a byte drip can outlast it.
    Shutting down never closes the file descriptor, and closing happens under the same lock, so a
    late cancel cannot touch a descriptor that was already closed and reused.
    `stopped` says why the exchange ended early ("cancel", "first", "idle" or "turn").
    """

    def __init__(self, cancel: CancelToken, timeouts: Timeouts, turn_deadline: float):
        self.stopped: str | None = None
        self.connected = 0.0  # time.perf_counter() when the connection was made
        self._cancel = cancel
        self._timeouts = timeouts
        self._turn_deadline = turn_deadline  # time.monotonic()
        self._first_deadline: float | None = None
        self._last_text: float | None = None
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._done = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._remove_callback: Callable[[], None] | None = None

    def __enter__(self) -> _Exchange:
        self._remove_callback = self._cancel.add_callback(self._on_cancel)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._remove_callback is not None:
            self._remove_callback()
        with self._lock:
            self._done = True
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        self._wake_r.close()
        self._wake_w.close()

    def attach(self, sock: socket.socket) -> None:
        """The socket a cancel shuts (again after TLS wraps it)."""
        with self._lock:
            self._sock = sock
            if self.stopped is not None:
                self._shut_locked()

    def close(self, sock: socket.socket) -> None:
        with self._lock:
            if self._sock is sock:
                self._sock = None
            sock.close()

    def request_sent(self) -> None:
        """From now on the first text must come within first_byte seconds."""
        if self._first_deadline is None:
            self._first_deadline = time.monotonic() + self._timeouts.first_byte

    def got_text(self) -> None:
        self._last_text = time.monotonic()

    def time_left(self, backstop: float | None) -> float:
        """Seconds until the nearest deadline (at most `backstop`); raises _Stopped once it has passed."""
        deadline, reason = self._turn_deadline, "turn"
        if self._last_text is not None:
            candidate, why = self._last_text + self._timeouts.idle, "idle"
        elif self._first_deadline is not None:
            candidate, why = self._first_deadline, "first"
        else:
            candidate, why = deadline, reason
        if candidate < deadline:
            deadline, reason = candidate, why
        left = deadline - time.monotonic()
        if self.stopped is not None or left <= 0:
            with self._lock:
                self.stopped = self.stopped or reason
            raise _Stopped()
        return left if backstop is None else min(left, backstop)

    @property
    def wake_fd(self) -> socket.socket:
        return self._wake_r

    def _on_cancel(self) -> None:
        with self._lock:
            if self.stopped is None:
                self.stopped = "cancel"
            self._shut_locked()

    def _shut_locked(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        sock = self._sock
        if sock is None or self._done:
            return
        try:
            # The plain socket's shutdown, also for TLS: SSLSocket.shutdown would drop the TLS
            # object under the reading thread.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass  # not connected yet: the wake byte ends the connect instead


class _Malformed(Exception):
    pass


class _Stopped(Exception):
    """A cancel or a deadline ended the exchange (see _Exchange.stopped)."""


class _Stream(httpcore.NetworkStream):
    """httpcore's view of our socket: each read and write ends at the exchange's nearest deadline."""

    def __init__(self, sock: socket.socket, net: _Network):
        self._sock = sock
        self._net = net

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        ex = self._net.ex
        self._sock.settimeout(ex.time_left(timeout))
        try:
            return self._sock.recv(max_bytes)
        except TimeoutError:
            ex.time_left(None)  # raises _Stopped when a deadline is what passed
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        ex = self._net.ex
        ex.request_sent()  # sending a large body to a server that does not read it counts too
        self._sock.settimeout(ex.time_left(timeout))
        try:
            self._sock.sendall(buffer)
        except TimeoutError:
            ex.time_left(None)
            raise

    def close(self) -> None:
        self._net.ex.close(self._sock)

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> _Stream:
        return _Stream(self._net.handshake(self._sock, ssl_context, server_hostname), self._net)

    def get_extra_info(self, info: str) -> object:
        if info == "socket":
            return self._sock
        if info == "ssl_object":
            return self._sock if isinstance(self._sock, ssl.SSLSocket) else None
        return None


class _Network(httpcore.NetworkBackend):
    """How httpcore reaches the server for one exchange: the name is resolved once, every address is
    checked, and the connection goes to a checked address (never by name again); connecting and the
    TLS handshake end at once on a cancel. Failures arrive as the sentences the user hears."""

    def __init__(self, client: ServerClient, ex: _Exchange, cancel: CancelToken):
        self.client = client
        self.ex = ex
        self.cancel = cancel

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None) -> _Stream:
        client, ex = self.client, self.ex
        try:
            found = client._resolve(self.cancel)
            last: BaseException | None = None
            for family, sockaddr in found:
                try:
                    sock = client._connect_to(ex, family, sockaddr)
                    break
                except OSError as exc:
                    last = exc
            else:
                raise last or OSError("no address could be reached")
        except _Stopped:
            raise client._stopped_error(ex, started=False) from None
        except (ServerError, Cancelled):
            raise
        except Exception as exc:  # every way a connect fails becomes a sentence
            if self.cancel.cancelled:
                raise Cancelled() from None
            raise client._connect_error(exc) from None
        ex.connected = time.perf_counter()
        return _Stream(sock, self)

    def handshake(self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str | None):
        ex = self.ex
        try:
            sock.settimeout(self.client.timeouts.connect)
            tls = context.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=False)
            ex.attach(tls)
            tls.do_handshake()
        except Exception as exc:  # noqa: BLE001 - every way a handshake fails becomes a sentence
            ex.close(sock)
            if ex.stopped:
                raise self.client._stopped_error(ex, started=False) from None
            raise self.client._connect_error(exc) from None
        return tls


class _Transport(httpx.BaseTransport):
    """httpx over an httpcore connection pool that reaches the network through `_Network`."""

    def __init__(self, pool: httpcore.ConnectionPool):
        self._pool = pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        resp = self._pool.handle_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
                ),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
        )
        return httpx.Response(
            resp.status, headers=resp.headers, stream=_Body(resp), extensions=resp.extensions
        )

    def close(self) -> None:
        self._pool.close()


class _Body(httpx.SyncByteStream):
    """A response body; a line longer than _MAX_LINE ends it (a server can send no endless line)."""

    def __init__(self, resp: httpcore.Response):
        self._resp = resp
        events = any(k.lower() == b"content-type" and b"text/event-stream" in v for k, v in resp.headers)
        self.line_limit = _MAX_LINE if events else None
        self._line = 0
        self._utf8 = codecs.getincrementaldecoder("utf-8")()  # httpx would put U+FFFD in the answer

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._resp.iter_stream():
            if self.line_limit is not None:
                ends = [i for i in (chunk.find(b"\n"), chunk.find(b"\r")) if i >= 0]
                if ends and self._line + min(ends) <= self.line_limit:
                    self._line = len(chunk) - max(chunk.rfind(b"\n"), chunk.rfind(b"\r")) - 1
                else:
                    self._line += len(chunk)
                if self._line > self.line_limit:
                    raise _Malformed("a line is too long")
                try:
                    self._utf8.decode(chunk)
                except UnicodeDecodeError:
                    raise _Malformed("the stream is not UTF-8") from None
            yield chunk

    def close(self) -> None:
        self._resp.close()


# ---------------------------------------------------------------- the HTTP client


class ServerClient:
    """Talks to one server: JSON GETs and streamed chat completions, every fault a ServerError."""

    def __init__(
        self,
        address: ServerAddress,
        *,
        ca_file: str = "",
        token_env: str = "SIGHTLINE_SERVER_TOKEN",
        token: Secret | str | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        allow_insecure_http: bool = False,
        resolver: Resolver | None = None,
    ):
        self.address = address
        self.allow_insecure_http = allow_insecure_http
        self.resolver = resolver or system_resolver
        self.ca_file = ca_file
        self.token_env = token_env
        self._fixed_token = Secret(token) if isinstance(token, str) else token
        self._keyring_token: Secret | None = None
        self._keyring_read = False
        self._lock = threading.Lock()
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self._ssl_context: ssl.SSLContext | None = None

    @property
    def display_name(self) -> str:
        return server_display_name(self.address.host)

    # -- credentials

    def token(self) -> Secret | None:
        if self._fixed_token:
            return self._fixed_token
        from app.inference.credentials import token_from_env, token_from_keyring

        env = token_from_env(self.token_env)
        if env:
            return env
        with self._lock:  # the keyring may be slow or prompt: read it once
            if not self._keyring_read:
                self._keyring_token = token_from_keyring(self.address.url())
                self._keyring_read = True
            return self._keyring_token

    def redact(self, text: str) -> str:
        from app.inference.credentials import token_from_env

        return redact(text, self._fixed_token, self._keyring_token, token_from_env(self.token_env))

    # -- connections

    def _context(self) -> ssl.SSLContext:
        with self._lock:
            if self._ssl_context is None:
                if self.ca_file:
                    path = os.path.expanduser(self.ca_file)
                    if not os.path.isfile(path):
                        raise ServerError(f"The certificate file for the server, {self.ca_file}, is missing.")
                    try:
                        ctx = ssl.create_default_context(cafile=path)
                    except (ssl.SSLError, OSError) as exc:
                        raise ServerError(
                            f"The certificate file for the server, {self.ca_file}, could not be read.",
                            detail=f"{type(exc).__name__}: {exc}",
                        ) from None
                else:
                    ctx = ssl.create_default_context()
                self._ssl_context = ctx
            return self._ssl_context

    def _lookup(self, cancel: CancelToken) -> list[tuple[int, tuple]]:
        """The resolver's answer. A name lookup runs on a helper thread, so Stop need not wait for DNS."""
        a = self.address
        try:
            ipaddress.ip_address(a.host.split("%", 1)[0])
            literal = True
        except ValueError:
            literal = False
        if literal or self.resolver is not system_resolver:
            return self.resolver(a.host, a.port)
        box: dict[str, object] = {}
        done = threading.Event()

        def lookup() -> None:  # the answer is handed back through `box` and the event
            try:
                box["found"] = self.resolver(a.host, a.port)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=lookup, name="sightline-resolve", daemon=True).start()
        remove = cancel.add_callback(done.set)
        try:
            finished = done.wait(_LOOKUP_TIMEOUT)
        finally:
            remove()
        if "found" in box:
            return box["found"]  # type: ignore[return-value]
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        if cancel.cancelled:
            raise Cancelled()
        raise socket.gaierror(f"no answer from DNS within {_LOOKUP_TIMEOUT:g} s" if not finished else "")

    def _resolve(self, cancel: CancelToken) -> list[tuple[int, tuple]]:
        """Every address of the server, checked: plain http goes only to this computer unless allowed."""
        a = self.address
        try:
            found = self._lookup(cancel)
        except (OSError, UnicodeError) as exc:
            raise self._connect_error(
                exc if isinstance(exc, OSError) else socket.gaierror(str(exc))
            ) from None
        if not found:
            raise self._connect_error(socket.gaierror("no address"))
        if not a.secure and not self.allow_insecure_http:
            outside = [sockaddr[0] for _family, sockaddr in found if not is_loopback_address(sockaddr[0])]
            if outside:
                # Decided on the addresses, not the name: "evil.localhost" may resolve anywhere.
                raise ServerError(
                    _sentence(INSECURE_HTTP_REASON),
                    detail=f"{a.host} resolves to {', '.join(outside)}, which is not this computer",
                )
        return found

    def _session(self, ex: _Exchange, cancel: CancelToken) -> httpx.Client:
        """An httpx client for one exchange: its one connection goes through `_Network`."""
        pool = httpcore.ConnectionPool(
            ssl_context=self._context() if self.address.secure else None,
            max_keepalive_connections=0,
            network_backend=_Network(self, ex, cancel),
        )
        return httpx.Client(
            transport=_Transport(pool),
            trust_env=False,  # no proxy or .netrc from the environment: the token goes to this server only
            timeout=httpx.Timeout(self.timeouts.turn, connect=self.timeouts.connect),
            follow_redirects=False,
        )

    def _connect_to(self, ex: _Exchange, family: int, sockaddr: tuple) -> socket.socket:
        """A non-blocking connect that a cancel (the exchange's wake socket) or the timeout ends."""
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            ex.attach(sock)
            code = sock.connect_ex(sockaddr)
            if code not in (
                0,
                errno.EINPROGRESS,
                errno.EWOULDBLOCK,
                errno.EAGAIN,
                getattr(errno, "WSAEWOULDBLOCK", -1),
            ):
                raise OSError(code, os.strerror(code))
            if code != 0:
                _readable, writable, failed = select.select(
                    [ex.wake_fd], [sock], [sock], self.timeouts.connect
                )
                if ex.stopped:
                    raise _Stopped()
                if not writable and not failed:
                    raise TimeoutError("connect timed out")
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise (ConnectionRefusedError if code == errno.ECONNREFUSED else OSError)(
                        code, os.strerror(code)
                    )
            sock.setblocking(True)
            return sock
        except BaseException:
            ex.close(sock)
            raise

    def _headers(self, *, json_body: bool, stream: bool) -> dict[str, str]:
        headers = {
            "User-Agent": _USER_AGENT,
            "Accept": "text/event-stream" if stream else "application/json",
            "Accept-Encoding": "identity",  # the line limit counts the bytes as they come
        }
        if json_body:
            headers["Content-Type"] = "application/json"
        token = self.token()
        if token:
            headers["Authorization"] = f"Bearer {token.reveal()}"
        return headers

    def _stopped_error(self, ex: _Exchange, *, started: bool) -> SightlineError:
        """Why the exchange shut its socket, as the error the user hears."""
        name = _sentence(self.display_name)[:-1]
        kept = " What came before it is kept." if started else ""
        if ex.stopped == "first":
            return ServerError(
                f"{name} did not start answering within {self.timeouts.first_byte:g} seconds. "
                "It may be busy.",
                detail="no text of the answer before the first-byte deadline",
            )
        if ex.stopped == "idle":
            return ServerError(
                f"{name} went quiet for {self.timeouts.idle:g} seconds partway through the answer.{kept}",
                detail="no text of the answer within the idle limit",
            )
        if ex.stopped == "turn":
            return ServerError(
                f"{name} took longer than {self.timeouts.turn:g} seconds, "
                f"so Sightline stopped the answer.{kept}",
                detail="the turn's time limit passed",
            )
        return Cancelled()

    def _connect_error(self, exc: BaseException) -> ServerError:
        name = self.display_name
        detail = self.redact(f"{type(exc).__name__}: {exc}")
        host = self.address.host
        if isinstance(exc, ssl.SSLCertVerificationError):
            sentence = (
                f"Sightline does not trust {name}: its certificate could not be verified. "
                "If your organisation has its own certificate authority, set its file in the settings."
            )
        elif isinstance(exc, ssl.SSLError):
            sentence = (
                f"A secure connection to {name} failed. Check that the address should start with https."
            )
        elif isinstance(exc, socket.gaierror):
            sentence = f"Sightline cannot find the server {host}. Check the server address in the settings."
        elif isinstance(exc, TimeoutError):
            sentence = f"{_sentence(name)[:-1]} did not answer within {self.timeouts.connect:g} seconds."
        elif isinstance(exc, ConnectionRefusedError):
            sentence = f"{_sentence(name)[:-1]} is not answering. Check that it is running."
        elif isinstance(exc, OSError):
            sentence = f"Sightline cannot reach {name}. Check the network connection."
        else:
            sentence = f"Sightline could not connect to {name}."
        return ServerError(sentence, detail=detail)

    def _read_error(self, exc: BaseException, *, started: bool, timeout_phase: str) -> ServerError:
        name = _sentence(self.display_name)[:-1]
        detail = self.redact(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, TimeoutError):
            if timeout_phase == "first":
                sentence = (
                    f"{name} did not start answering within {self.timeouts.first_byte:g} seconds. "
                    "It may be busy."
                )
            else:
                sentence = f"{name} went quiet for {self.timeouts.idle:g} seconds partway through the answer."
        elif not started and isinstance(
            exc,
            (httpcore.RemoteProtocolError, ConnectionResetError, BrokenPipeError),
        ):
            if not self.address.secure:
                sentence = f"{name} did not answer like a Sightline server. Check whether it needs https."
            else:
                sentence = f"{name} closed the connection without answering."
        elif started:
            sentence = f"The connection to {self.display_name} was lost partway through the answer."
        else:
            sentence = f"The connection to {self.display_name} was lost before it answered."
        return ServerError(sentence, detail=detail)

    # -- HTTP errors

    @staticmethod
    def _error_text(raw: bytes) -> str:
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            text = raw.decode("utf-8", "replace")
            return "" if "<html" in text.lower() else " ".join(text.split())[:200]
        return _error_message(obj)

    def _http_error(self, status: int, raw: bytes, model: str | None) -> ServerError:
        name = _sentence(self.display_name)[:-1]
        message = self.redact(self._error_text(raw))
        detail = f"HTTP {status}: {message}" if message else f"HTTP {status}"
        if status == 401:
            if self.token() is None:
                sentence = (
                    f"{name} needs an access token. Put it in the keyring, or in the "
                    f"{self.token_env or 'SIGHTLINE_SERVER_TOKEN'} environment variable."
                )
            else:
                sentence = f"{name} did not accept the access token."
        elif status == 403:
            sentence = f"{name} refused access with this access token."
        elif status == 404:
            what = f"the {model} model" if model else "what Sightline asked for"
            sentence = f"{name} does not serve {what}. Run sightline server check to see what it serves."
        elif status == 413:
            sentence = f"The image or recording is too large for {self.display_name}."
        elif status in (429, 503):
            sentence = f"{name} is busy. Try again in a moment."
        elif 400 <= status < 500:
            said = f" It said: {_short(message)}" if message else ""
            sentence = f"{name} could not take this request.{said}"
        else:
            sentence = f"{name} had a problem (error {status})."
        return ServerError(sentence, detail=detail)

    # -- requests

    def get_json(self, endpoint: str, cancel: CancelToken | None = None) -> object:
        """GET base_path + endpoint and parse the JSON answer."""
        cancel = cancel or CancelToken()
        deadline = time.monotonic() + self.timeouts.turn
        with _Exchange(cancel, self.timeouts, deadline) as ex, self._session(ex, cancel) as session:
            try:
                with session.stream(
                    "GET", self.address.url(endpoint), headers=self._headers(json_body=False, stream=False)
                ) as resp:
                    raw = self._read_body(ex, resp, 8 * 1024 * 1024, raising=True)
            except (ServerError, Cancelled):
                raise
            except Exception as exc:  # noqa: BLE001
                if ex.stopped:
                    raise self._stopped_error(ex, started=False) from None
                raise self._read_error(exc, started=False, timeout_phase="first") from None
        if resp.status_code != 200:
            raise self._http_error(resp.status_code, raw, None)
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ServerError(
                f"{_sentence(self.display_name)[:-1]} sent an answer Sightline could not read.",
                detail=f"{endpoint}: not JSON",
            ) from None

    def stream_chat(
        self,
        body: bytes,
        cancel: CancelToken,
        state: StreamState,
        *,
        model: str | None = None,
        max_chars: int | None = None,
    ) -> Iterator[str]:
        """POST /chat/completions with stream=true; yield the answer's text pieces in order.

        The whole call, retries included, ends within timeouts.turn; the answer is cut after
        `max_chars` characters.
        """
        url = self.address.url("/chat/completions")
        turn_deadline = time.monotonic() + self.timeouts.turn
        attempt = 0
        while True:
            cancel.raise_if_cancelled()
            state.timings.attempts = attempt + 1
            retry_delay: float | None = None
            with _Exchange(cancel, self.timeouts, turn_deadline) as ex, self._session(ex, cancel) as session:
                request = session.build_request(
                    "POST", url, content=body, headers=self._headers(json_body=True, stream=True)
                )
                try:
                    resp = session.send(request, stream=True)
                except (ServerError, Cancelled):
                    raise
                except Exception as exc:  # noqa: BLE001
                    if ex.stopped:
                        raise self._stopped_error(ex, started=False) from None
                    raise self._read_error(exc, started=False, timeout_phase="first") from None
                with contextlib.closing(resp):
                    state.timings.connected = ex.connected - state.started
                    state.timings.headers = state.mark()
                    status = resp.status_code
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
                    busy = status in (429, 503) and attempt < self.retry.retries
                    if busy and (retry_after is None or retry_after <= self.retry.max_retry_after):
                        retry_delay = self.retry.delay(attempt, retry_after)
                    if status != 200 and retry_delay is None:
                        error = self._http_error(status, self._read_body(ex, resp, _MAX_ERROR_BODY), model)
                        if status in (429, 503) and retry_after and retry_after > self.retry.max_retry_after:
                            error = ServerError(
                                f"{_sentence(self.display_name)[:-1]} is busy. It asks to try again in "
                                f"{round(retry_after)} seconds.",
                                detail=error.detail,
                            )
                        raise error
                    if retry_delay is None:
                        yield from self._read_stream(ex, resp, cancel, state, max_chars)
                        return
            log.info("%s is busy (HTTP %s); retrying in %.2f s", self.display_name, status, retry_delay)
            if retry_delay > turn_deadline - time.monotonic():
                raise ServerError(f"{_sentence(self.display_name)[:-1]} is busy. Try again in a moment.")
            if cancel.wait(retry_delay):
                raise Cancelled()
            attempt += 1

    def _read_body(self, ex: _Exchange, resp: httpx.Response, limit: int, *, raising: bool = False) -> bytes:
        """At most `limit` bytes of the body; a fault after the status line gives what came (or raises)."""
        raw = bytearray()
        try:
            for chunk in resp.iter_raw():
                raw += chunk
                if len(raw) >= limit:
                    break
        except Exception:  # noqa: BLE001 - the status already says what went wrong
            if ex.stopped:
                raise self._stopped_error(ex, started=False) from None
            if raising:
                raise
        return bytes(raw[:limit])

    def _read_stream(
        self,
        ex: _Exchange,
        resp: httpx.Response,
        cancel: CancelToken,
        state: StreamState,
        max_chars: int | None,
    ) -> Iterator[str]:
        name = _sentence(self.display_name)[:-1]
        started = False  # some text was handed on
        first_event = True
        done = False
        chars = 0
        try:
            for data in _sse_data(resp):
                if first_event:
                    first_event = False
                    state.timings.first_event = state.mark()
                if data == "[DONE]":
                    done = True
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise _Malformed("an event is not JSON") from None
                if not isinstance(chunk, dict):
                    raise _Malformed("an event is not a JSON object")
                if "error" in chunk or chunk.get("object") == "error":
                    message = self.redact(_error_message(chunk))
                    if started:
                        sentence = f"{name} stopped with an error partway through the answer."
                    else:
                        said = f" It said: {_short(message)}" if message else ""
                        sentence = f"{name} ran into an error.{said}"
                    raise ServerError(sentence, detail=f"error event: {message}")
                usage = chunk.get("usage")
                if isinstance(usage, dict):
                    state.usage.tokens_in = _int(usage.get("prompt_tokens"))
                    state.usage.tokens_out = _int(usage.get("completion_tokens"))
                choices = chunk.get("choices")
                if choices is None:
                    continue
                if not isinstance(choices, list):
                    raise _Malformed("choices is not a list")
                for choice in choices:
                    if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                        continue
                    delta = choice.get("delta") or {}
                    content = delta.get("content") if isinstance(delta, dict) else None
                    if choice.get("finish_reason"):
                        state.finish_reason = str(choice["finish_reason"])
                    if isinstance(content, str) and content:
                        if cancel.cancelled:
                            raise Cancelled()
                        ex.got_text()
                        if max_chars is not None and chars + len(content) > max_chars:
                            content = content[: max(0, max_chars - chars)]
                            if content:
                                yield content
                            raise ServerError(
                                f"{name} sent a far longer answer than Sightline asked for, so it was "
                                "cut short. What came before it is kept.",
                                detail=f"the answer passed {max_chars} characters",
                            )
                        chars += len(content)
                        if not started:
                            started = True
                            state.timings.first_token = state.mark()
                        yield content
                if cancel.cancelled:
                    raise Cancelled()
        except (ServerError, Cancelled):
            raise
        except _Malformed as exc:
            if ex.stopped:
                raise self._stopped_error(ex, started=started) from None
            kept = " What came before it is kept." if started else ""
            raise ServerError(
                f"{name} sent part of the answer in a form Sightline could not read.{kept}",
                detail=f"malformed stream: {exc}",
            ) from None
        except Exception as exc:  # noqa: BLE001 - socket, TLS and HTTP framing faults
            if ex.stopped:
                raise self._stopped_error(ex, started=started) from None
            raise self._read_error(
                exc, started=started, timeout_phase="idle" if not first_event else "first"
            ) from None
        if ex.stopped:
            raise self._stopped_error(ex, started=started)
        if not done and state.finish_reason is None:
            where = "partway through the answer" if started else "before it answered"
            raise ServerError(
                f"The connection to {self.display_name} was lost {where}.",
                detail="the stream ended without [DONE]",
            )


def _int(value: object) -> int:
    """A count from JSON: a number or a numeric string; anything else (null, a list) is 0."""
    if not isinstance(value, int | float | str):
        return 0
    try:
        return max(0, int(value or 0))
    except (ValueError, OverflowError):
        return 0


def _sse_data(resp: httpx.Response) -> Iterator[str]:
    """The data of each server-sent event, in order (comments and other fields are skipped)."""
    try:
        for event in httpx_sse.EventSource(resp).iter_sse():
            yield event.data
    except httpx_sse.SSEError as exc:
        raise _Malformed(str(exc)) from None


def _error_message(obj: object) -> str:
    """The message of a vLLM/OpenAI error body: {"error": {...}}, the older flat shape, or FastAPI's."""
    if not isinstance(obj, dict):
        return ""
    err = obj.get("error")
    if isinstance(err, dict):
        return " ".join(str(err.get("message", "")).split())
    if isinstance(err, str):
        return " ".join(err.split())
    if "message" in obj:
        return " ".join(str(obj.get("message", "")).split())
    if "detail" in obj:
        return " ".join(str(obj["detail"]).split())
    return ""


def _short(message: str, limit: int = 160) -> str:
    message = message.strip()
    if len(message) > limit:
        message = message[: limit - 1].rstrip() + "…"
    return message if message.endswith((".", "!", "?", "…")) else message + "."


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# ---------------------------------------------------------------- the backend


class OpenAICompatibleBackend(ModelBackend):
    name = "remote"
    capabilities = Capabilities(images=True, audio=True, streaming=True, local=False)

    def __init__(
        self,
        server_url: str,
        *,
        ca_file: str = "",
        allow_insecure_http: bool = False,
        token_env: str = "SIGHTLINE_SERVER_TOKEN",
        token: Secret | str | None = None,
        image_format: str = "jpeg",
        jpeg_quality: int = 90,
        base_model: str | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        resolver: Resolver | None = None,
        server_crops: int = SERVER_MAX_CROPS,
    ):
        super().__init__()
        self.server_crops = max(1, int(server_crops))
        self.server_url = (server_url or "").strip()
        self.allow_insecure_http = allow_insecure_http
        self.image_format = image_format
        self.jpeg_quality = jpeg_quality
        self._base_model = base_model or None
        self._model_lock = threading.Lock()
        self._last_model = ""
        self.timings = RequestTimings()
        self.address: ServerAddress | None = None
        self._address_error: ServerError | None = None
        self.client: ServerClient | None = None
        if self.server_url:
            try:
                self.address = ServerAddress.parse(self.server_url)
            except ServerError as exc:
                self._address_error = exc
        if self.address is not None:
            self.client = ServerClient(
                self.address,
                ca_file=ca_file,
                token_env=token_env,
                token=token,
                timeouts=timeouts,
                retry=retry,
                allow_insecure_http=allow_insecure_http,
                resolver=resolver,
            )
        self.ca_file = ca_file
        self.display_name = server_display_name(self.address.host if self.address else None)

    @classmethod
    def from_settings(cls, settings) -> OpenAICompatibleBackend:
        return cls(
            settings.server_url,
            ca_file=settings.server_ca_file,
            allow_insecure_http=settings.server_allow_insecure_http,
            token_env=settings.server_token_env,
            image_format=settings.server_image_format,
            jpeg_quality=settings.server_jpeg_quality,
            # No base-model setting: the server's model listing names it (see base_model()).
            timeouts=Timeouts.from_idle(settings.server_idle_timeout, settings.server_turn_timeout),
        )

    @property
    def model_id(self) -> str:
        host = self.address.host if self.address else "no server"
        return f"remote:{self._last_model or VISION_MODEL}@{host}"

    # -- readiness

    def check(self) -> BackendCheck:
        """Cheap: no network. Is a usable server address set?"""
        if not self.server_url:
            return BackendCheck(False, NO_SERVER_REASON)
        if self._address_error is not None:
            return BackendCheck(False, self._address_error.sentence.rstrip("."))
        assert self.address is not None
        if not self.address.secure and not self.address.is_loopback and not self.allow_insecure_http:
            return BackendCheck(False, INSECURE_HTTP_REASON)
        if self.ca_file and not os.path.isfile(os.path.expanduser(self.ca_file)):
            return BackendCheck(False, f"the certificate file for the server, {self.ca_file}, is missing")
        return BackendCheck(True)

    def _require_ready(self) -> ServerClient:
        status = self.check()
        if not status.ok:
            if not self.server_url:
                raise BackendUnavailableError(_sentence(status.reason))
            if self._address_error is not None:
                raise self._address_error
            raise ServerError(_sentence(status.reason))
        assert self.client is not None
        return self.client

    def load(self, cancel: CancelToken) -> None:
        """Nothing to load here; the text model's name is learnt on first use."""

    # -- models

    def base_model(self, cancel: CancelToken | None = None) -> str:
        """The served base model's name: given, or read once from /v1/models."""
        if self._base_model:
            return self._base_model
        client = self._require_ready()
        with self._model_lock:
            if not self._base_model:
                listing = client.get_json("/models", cancel)
                base = base_model_from_listing(listing)
                if not base:
                    raise ServerError(
                        f"{_sentence(self.display_name)[:-1]} does not say which model it serves.",
                        detail="no base model in /v1/models",
                    )
                self._base_model = base
                log.info("%s serves the base model %s", self.display_name, base)
            return self._base_model

    # -- generation

    def generate(self, request: JobRequest, cancel: CancelToken) -> Iterator[str]:
        client = self._require_ready()
        cancel.raise_if_cancelled()
        state = StreamState()
        self.usage = state.usage
        self.timings = state.timings
        modality = request.modality
        model = model_for(request, "") or self.base_model(cancel)
        self._last_model = model
        payload = build_payload(
            request,
            model,
            image_format=self.image_format,
            jpeg_quality=self.jpeg_quality,
            server_crops=self.server_crops,
        )
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        state.timings.encode = state.mark()
        log.info(
            "job %s: asking %s (model %s, %s, %d bytes)",
            request.job_id,
            self.display_name,
            model,
            modality,
            len(body),
        )
        max_chars = max(MIN_CHAR_CAP, int(request.max_new_tokens) * CHARS_PER_TOKEN_CAP)
        yield from client.stream_chat(body, cancel, state, model=model, max_chars=max_chars)
        state.timings.total = state.mark()
        log.info(
            "job %s: %s answered (%s tokens in, %s out, first text after %.2f s, finish %s)",
            request.job_id,
            self.display_name,
            state.usage.tokens_in,
            state.usage.tokens_out,
            state.timings.first_token,
            state.finish_reason,
        )


def base_model_from_listing(listing: object) -> str:
    """The base model's id in a /v1/models answer: a card without a parent that is not an adapter."""
    cards = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(cards, list):
        return ""
    cards = [c for c in cards if isinstance(c, dict) and isinstance(c.get("id"), str)]
    for card in cards:
        if not card.get("parent") and card["id"] not in (VISION_MODEL, SPEECH_MODEL):
            return card["id"]
    for card in cards:
        if isinstance(card.get("parent"), str) and card["parent"]:
            return card["parent"]
    return ""
