"""A loopback stand-in for a vLLM server serving Phi-4-multimodal with its two LoRA adapters.

It speaks the OpenAI-compatible protocol as vLLM does:
- GET /v1/models: {"object": "list", "data": [ModelCard...]}; an adapter's card has `parent` set to
  the base model and `root` to its folder.
- POST /v1/chat/completions with stream=true: `text/event-stream`, chunked, one `data: {json}`
  event per chat.completion.chunk. The first chunk carries delta {"role": "assistant",
  "content": ""}; then one content delta per word; then a chunk with finish_reason; with
  stream_options.include_usage a last chunk with empty choices and usage; then `data: [DONE]`.
- Errors before the stream: the status code with ErrorResponse {"error": {"message", "type",
  "param", "code"}}; the API-key check answers 401 {"error": "Unauthorized"}. Errors during the
  stream: one event `data: {"error": {...}}`, then `data: [DONE]` (the status stays 200).

It answers deterministically from the request (see `answer_for`), so a test can check that every
answer belongs to its own request. Faults are scripted per request with `Fault`.
Bound to 127.0.0.1 on a random port; optional TLS with a certificate made at test time.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import itertools
import json
import queue
import select
import socket
import ssl
import struct
import threading
import time
import uuid
import wave
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BASE_MODEL = "microsoft/Phi-4-multimodal-instruct"
ADAPTERS = ("speech", "vision")


# ---------------------------------------------------------------- what the server answers


def prompt_digest(user_text: str) -> str:
    return hashlib.sha256(user_text.encode("utf-8")).hexdigest()[:12]


def answer_for(
    model: str,
    user_text: str,
    image_size: tuple[int, int] | None = None,
    audio: tuple[int, int, int] | None = None,  # (frames, rate, channels)
) -> str:
    """The answer the fake gives: what it received, in words. Tests compute it from their request."""
    words = [f"Model {model}."]
    if image_size is not None:
        words.append(f"Image {image_size[0]} by {image_size[1]}.")
    if audio is not None:
        words.append(f"Audio {audio[0]} frames at {audio[1]} hertz, {audio[2]} channel.")
    words.append(f"Prompt {prompt_digest(user_text)}.")
    return " ".join(words)


def token_echo_forms(token: str) -> dict[str, str]:
    """The forms a leaky server or proxy may reflect a token in (what a redactor must catch)."""
    from urllib.parse import quote

    raw = token.encode()
    return {
        "exact": token,
        "lower": token.lower(),
        "upper": token.upper(),
        "b64": base64.b64encode(raw).decode(),
        "b64_bearer": base64.b64encode(b"Bearer " + raw).decode(),
        "b64_basic": base64.b64encode(b"user:" + raw).decode(),
        "b64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "truncated": token[:10],
        "tail": token[-9:],
        "urlenc": quote(token, safe=""),
        "hex": raw.hex(),
        "spaced_case": token[2:12].swapcase(),
    }


def split_words(text: str) -> list[str]:
    """How the fake streams an answer: one event per word, the space kept with the word before."""
    parts = text.split(" ")
    return [p + " " for p in parts[:-1]] + [parts[-1]]


@dataclass
class Fault:
    """What goes wrong with one chat request (all fields optional; the default is a clean answer)."""

    status: int | None = None  # answer with this status and an error body instead of a stream
    retry_after: str | None = None
    message: str = ""
    delay_headers: float = 0.0  # before the status line
    delay_first_event: float = 0.0  # after the headers, before the first event
    token_delay: float = 0.0  # before every content event
    error_after: int | None = None  # an error event (code 500) after this many content events
    malformed_after: int | None = None  # a data line that is not JSON after this many content events
    junk_line_after: int | None = None  # a line that is not an SSE field after this many content events
    latin1_after: int | None = None  # an event in Latin-1, not UTF-8, after this many content events
    drop_after: int | None = None  # close the connection after this many content events
    stall_after: int | None = None  # go quiet after this many content events until the client leaves
    echo_authorization: bool = False  # a leaky proxy: put the Authorization header in the error text
    # The faulty servers (see FAULTY_SERVERS); each runs until the client leaves or the server stops.
    keepalive_after: int | None = None  # after this many content events, SSE comments every 0.1 s forever
    drip_after: int | None = None  # after this many content events, one byte every 0.05 s forever
    forever: bool = False  # ignore max_tokens: content events as fast as the client reads them
    reset_after: int | None = None  # after this many content events, a TCP reset (RST), not a close
    huge_bytes: int = 0  # an answer of this many bytes of text, in 64 KiB content events
    huge_line: bool = False  # with huge_bytes: all of it in one data line
    echo_token_forms: bool = False  # reject with 401, echoing the token in many forms (body and headers)
    answer: str | None = None  # answer this text instead of describing the request (e.g. a transcript)


@dataclass(frozen=True)
class FaultCase:
    """A server that misbehaves, and what the user must hear: `sentence` is a fragment of it.

    `partial`: whether some of the answer arrives (and is kept) before the fault. Run with small
    limits (see FAULT_TIMEOUTS) so each case ends in a few seconds; `exit_code` is the CLI's.
    """

    name: str
    fault: Fault
    sentence: str
    partial: bool
    exit_code: int = 8


FIFTY_MB = 50 * 1024 * 1024

#: The faulty servers of the fault corpus, each with the sentence it must end in.
FAULTY_SERVERS: tuple[FaultCase, ...] = (
    FaultCase("stall after tokens", Fault(stall_after=3), "went quiet for", True),
    FaultCase("keep-alive comments forever", Fault(keepalive_after=0), "did not start answering", False),
    FaultCase("keep-alive comments after tokens", Fault(keepalive_after=3), "went quiet for", True),
    FaultCase("byte drip", Fault(drip_after=3), "went quiet for", True),
    FaultCase("byte drip from the start", Fault(drip_after=0), "did not start answering", False),
    FaultCase("tokens forever", Fault(forever=True), "far longer answer", True),
    FaultCase("slow tokens forever", Fault(forever=True, token_delay=0.02), "took longer than", True),
    FaultCase("reset mid-stream", Fault(reset_after=3), "was lost partway", True),
    FaultCase("50 MB answer", Fault(huge_bytes=FIFTY_MB), "far longer answer", True),
    FaultCase("50 MB in one line", Fault(huge_bytes=FIFTY_MB, huge_line=True), "could not read", False),
)

#: (first text, idle, turn) seconds for FAULTY_SERVERS: "slow tokens forever" must pass the turn
#: limit long before it sends the characters the length limit allows.
FAULT_TIMEOUTS = (1.5, 1.0, 3.0)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict | None
    model: str = ""
    user_text: str = ""
    image_size: tuple[int, int] | None = None
    image_mime: str = ""
    audio: tuple[int, int, int] | None = None  # (frames, rate, channels)
    answer: str = ""
    received_at: float = field(default_factory=time.perf_counter)


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def _parse_chat(body: dict, record: RecordedRequest) -> None:
    """Check the request as vLLM would for this model, and note what it carries."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("messages must be a non-empty list", "messages")
    images = audios = 0
    user_text = ""
    for message in messages:
        content = message.get("content")
        if message.get("role") == "user":
            user_text = content if isinstance(content, str) else ""
        if isinstance(content, str):
            continue
        for part in content:
            kind = part.get("type")
            if kind == "text":
                if message.get("role") == "user":
                    user_text = part["text"]
            elif kind == "image_url":
                images += 1
                url = part["image_url"]["url"]
                head, _, data = url.partition(",")
                if not head.startswith("data:image/") or not head.endswith(";base64"):
                    raise _BadRequest("only data: URLs are accepted here", "messages")
                from PIL import Image

                with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as img:
                    record.image_size = img.size
                    record.image_mime = Image.MIME[img.format]
            elif kind == "input_audio":
                audios += 1
                spec = part["input_audio"]
                if spec.get("format") != "wav":
                    raise _BadRequest("audio must be wav", "messages")
                with wave.open(io.BytesIO(base64.b64decode(spec["data"], validate=True))) as w:
                    record.audio = (w.getnframes(), w.getframerate(), w.getnchannels())
            else:
                raise _BadRequest(f"unknown content part {kind}", "messages")
    if images > 1 or audios > 1:
        raise _BadRequest("At most 1 image(s) and 1 audio(s) may be provided in one prompt.", "messages")
    record.user_text = user_text


# ---------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 15  # a client that connects and sends nothing does not hold a thread forever

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    # -- plumbing

    def _send_json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.close_connection = True
        self.send_response(status)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _error(
        self, status: int, message: str, err_type: str, param: str | None = None, headers=None
    ) -> None:
        body = {"error": {"message": message, "type": err_type, "param": param, "code": status}}
        self._send_json(status, body, headers)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, obj: object) -> None:
        text = obj if isinstance(obj, str) else json.dumps(obj)
        self._chunk(f"data: {text}\n\n".encode())

    def _wait(self, seconds: float) -> bool:
        """Sleep, but notice at once if the client goes away or the server stops. True if gone."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.server.stopping.is_set():
                return True
            try:
                readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
            except (OSError, ValueError):
                return True
            if readable:
                try:
                    data = self.connection.recv(1)
                except (OSError, ssl.SSLError):
                    return True
                if not data:
                    return True

    def _echo_token_forms(self) -> None:
        """A leaky proxy that reflects the bearer token in every form it can think of."""
        header = self.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        forms = token_echo_forms(token)
        message = "bad token " + " ".join(f"{k}={v}" for k, v in forms.items())
        body = {"error": {"message": message, "code": 401}}
        headers = {f"X-Echo-{k.title().replace('_', '-')}": v for k, v in forms.items() if v.isascii()}
        headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{token}"'
        self._send_json(401, body, headers)

    def _authorized(self) -> bool:
        token = self.server.fake.token
        if token is None:
            return True
        return self.headers.get("Authorization", "") == f"Bearer {token}"

    # -- routes

    def do_GET(self) -> None:
        fake = self.server.fake
        fake._record(RecordedRequest("GET", self.path, dict(self.headers.items()), None))
        if self.path == "/health":
            self._send_json(200, {})
            return
        if not self._authorized():
            self._send_json(401, {"error": "Unauthorized"})
            return
        if self.path.rstrip("/") == "/v1/models":
            self._send_json(200, fake.model_list())
            return
        self._error(404, f"Not found: {self.path}", "NotFoundError")

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        record = RecordedRequest("POST", self.path, dict(self.headers.items()), None)
        fault = fake._next_fault()
        try:
            body = json.loads(raw)
            record.body = body
        except ValueError:
            fake._record(record)
            self._error(400, "The request body is not JSON.", "BadRequestError")
            return
        fake._record(record)
        if fault.delay_headers and self._wait(fault.delay_headers):
            fake._disconnected()
            return
        if fault.echo_token_forms:
            self._echo_token_forms()
            return
        if not self._authorized():
            message = "Unauthorized"
            if fault.echo_authorization:
                message += f" (got {self.headers.get('Authorization', '')})"
            self._send_json(401, {"error": message})
            return
        if self.path != "/v1/chat/completions":
            self._error(404, f"Not found: {self.path}", "NotFoundError")
            return
        if fault.status is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
            message = fault.message or {429: "Too many requests.", 503: "The server is overloaded."}.get(
                fault.status, "Something went wrong."
            )
            if fault.echo_authorization:
                message += f" (got {self.headers.get('Authorization', '')})"
            err_type = "BadRequestError" if fault.status < 500 else "InternalServerError"
            self._error(fault.status, message, err_type, headers=headers)
            return
        model = body.get("model")
        record.model = str(model)
        if model not in fake.served_models():
            self._error(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
            return
        try:
            _parse_chat(body, record)
        except _BadRequest as exc:
            self._error(400, str(exc), "BadRequestError", exc.param)
            return
        except Exception as exc:  # a payload the server cannot decode
            self._error(400, f"Invalid media: {type(exc).__name__}", "BadRequestError", "messages")
            return
        record.answer = (
            fault.answer
            if fault.answer is not None
            else answer_for(record.model, record.user_text, record.image_size, record.audio)
        )
        try:
            self._stream(body, record, fault)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            fake._disconnected()

    def _stream(self, body: dict, record: RecordedRequest, fault: Fault) -> None:
        fake = self.server.fake
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.flush()
        if fault.delay_first_event and self._wait(fault.delay_first_event):
            fake._disconnected()
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        def chunk(delta: dict, finish: str | None = None) -> dict:
            obj = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": record.model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                obj["usage"] = None
            return obj

        self._event(chunk({"role": "assistant", "content": ""}))
        words = split_words(record.answer)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or len(words)
        if fault.huge_bytes:
            self._huge(fault, chunk)
            return
        truncated = len(words) > max_tokens
        if fault.forever:
            words = itertools.cycle(words)
            max_tokens = None
        sent = 0
        for word in itertools.islice(words, max_tokens):
            if fault.error_after is not None and sent == fault.error_after:
                err = {
                    "message": "EngineCore encountered an issue.",
                    "type": "InternalServerError",
                    "param": None,
                    "code": 500,
                }
                self._event({"error": err})
                self._event("[DONE]")
                self._chunk(b"")
                return
            if fault.malformed_after is not None and sent == fault.malformed_after:
                self._chunk(b'data: {"id": "chatcmpl-broken", "choices": [{"delta": \n\n')
            if fault.junk_line_after is not None and sent == fault.junk_line_after:
                self._chunk(b"this line is not part of any event\n\n")
            if fault.latin1_after is not None and sent == fault.latin1_after:
                self._chunk(
                    'data: {"choices": [{"index": 0, "delta": {"content": " déjà"}}]}\n\n'.encode("latin-1")
                )
            if fault.drop_after is not None and sent == fault.drop_after:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault.stall_after is not None and sent == fault.stall_after:
                if self._wait(3600):
                    fake._disconnected()
                return
            if fault.keepalive_after is not None and sent == fault.keepalive_after:
                while not self._wait(0.1):
                    self._chunk(b": keep-alive\n\n")
                fake._disconnected()
                return
            if fault.drip_after is not None and sent == fault.drip_after:
                self._chunk(b'data: {"choices": [{"index": 0, "delta": {"content": "')
                while not self._wait(0.05):
                    self._chunk(b"a")  # one byte at a time: the event never ends
                fake._disconnected()
                return
            if fault.reset_after is not None and sent == fault.reset_after:
                # SO_LINGER with a zero timeout: close() sends a reset instead of a clean end.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                return
            if fault.token_delay and self._wait(fault.token_delay):
                fake._disconnected()
                return
            self._event(chunk({"content": word}))
            sent += 1
        finish = "length" if truncated else "stop"
        self._event(chunk({"content": ""}, finish))
        if include_usage:
            prompt_tokens = len(json.dumps(body)) // 4
            self._event(
                {
                    "id": chunk_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": record.model,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "total_tokens": prompt_tokens + sent,
                        "completion_tokens": sent,
                        "prompt_tokens_details": None,
                    },
                }
            )
        fake._completed()  # before [DONE], so a client that has read [DONE] sees it counted
        self._event("[DONE]")
        self._chunk(b"")

    def _huge(self, fault: Fault, chunk) -> None:
        """An answer of fault.huge_bytes bytes: 64 KiB content events, or one endless data line."""
        left = fault.huge_bytes
        if fault.huge_line:
            head = b'data: {"choices": [{"index": 0, "delta": {"content": "'
            self._chunk(head)
            while left > 0:
                piece = min(left, 1 << 16)
                self._chunk(b"x" * piece)
                left -= piece
            self._chunk(b'"}}]}\n\n')
        else:
            while left > 0:
                piece = min(left, 1 << 16)
                self._event(chunk({"content": "word " * (piece // 5)}))
                left -= piece
        self._event(chunk({"content": ""}, "stop"))
        self._event("[DONE]")
        self._chunk(b"")


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # stop() joins every handler thread
    request_queue_size = 256  # fifty clients at once must not be refused at the listen backlog
    allow_reuse_address = True

    def __init__(self, fake: FakeVllmServer, ssl_context: ssl.SSLContext | None):
        self.fake = fake
        self.ssl_context = ssl_context
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request, client_address):
        # Runs on the connection's own thread, so a slow TLS handshake holds up no one else.
        if self.ssl_context is not None:
            try:
                request.settimeout(10)
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                self.fake._tls_failure()
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):  # a client that went away is not a test failure
        pass


class FakeVllmServer:
    """Use as a context manager: `with FakeVllmServer() as server: server.url`."""

    def __init__(
        self,
        *,
        base_model: str = BASE_MODEL,
        adapters: tuple[str, ...] = ADAPTERS,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        default_fault: Fault | None = None,
    ):
        self.base_model = base_model
        self.adapters = tuple(adapters)
        self.token = token
        self.default_fault = default_fault or Fault()
        self._faults: queue.Queue[Fault] = queue.Queue()
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0
        self.completed = 0
        self.tls_failures = 0
        self.disconnected = threading.Event()
        self._server = _Server(self, ssl_context)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-vllm", daemon=True
        )
        self.scheme = "https" if ssl_context is not None else "http"

    # -- lifecycle

    def start(self) -> FakeVllmServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> FakeVllmServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/v1"

    # -- scripting

    def script(self, *faults: Fault) -> None:
        """The next chat requests meet these faults, in order; later ones get the default."""
        for fault in faults:
            self._faults.put(fault)

    def _next_fault(self) -> Fault:
        try:
            return self._faults.get_nowait()
        except queue.Empty:
            return self.default_fault

    # -- what it serves

    def served_models(self) -> tuple[str, ...]:
        return (self.base_model, *self.adapters)

    def model_list(self) -> dict:
        created = int(time.time())
        cards = [
            {
                "id": self.base_model,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": self.base_model,
                "parent": None,
                "max_model_len": 4096,
                "permission": [],
            }
        ]
        for name in self.adapters:
            cards.append(
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "vllm",
                    "root": f"/models/phi4mm/{name}-lora",
                    "parent": self.base_model,
                    "max_model_len": None,
                    "permission": [],
                }
            )
        return {"object": "list", "data": cards}

    # -- bookkeeping (called from handler threads)

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(record)

    def _disconnected(self) -> None:
        with self._lock:
            self.disconnects += 1
        self.disconnected.set()

    def _completed(self) -> None:
        with self._lock:
            self.completed += 1

    def _tls_failure(self) -> None:
        with self._lock:
            self.tls_failures += 1

    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]


# ---------------------------------------------------------------- TLS for tests


def make_certificates(folder: Path, hostnames: tuple[str, ...] = ("localhost",)) -> tuple[Path, Path, Path]:
    """A private certificate authority and a server certificate for 127.0.0.1 signed by it.

    Returns (ca_file, cert_file, key_file). EC keys, so it takes milliseconds.
    """
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sightline test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    names += [x509.DNSName(h) for h in hostnames]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    cert_file = folder / "server.pem"
    key_file = folder / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_file, cert_file, key_file


def server_tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx
