"""Speak through the user's screen reader.

Linux: speech-dispatcher (what Orca speaks through), reached by talking SSIP on its Unix socket.
SSIP is a small line protocol, so no client library is needed (the Python `speechd` bindings are
not on PyPI, and spawning `spd-say` per sentence costs a process start and cannot tell us when
speech ends). Over the socket we get BEGIN/END/CANCELED events for every message, which is what
the manager needs for ordering and for knowing when an answer has been heard, and CANCEL stops
speech at once.

Windows and macOS: accessible_output2 (NVDA, JAWS, VoiceOver, SAPI), imported only when asked for.
It cannot report when speech ends, so the utterance is considered spoken after an estimate based on
its length and the speech rate.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import sys
import threading
import time

from app.speech.drivers.base import SpeechDriver, SpeechDriverError, Voice, VoiceSettings

log = logging.getLogger("app.speech")

_CONNECT_TIMEOUT = 2.0
_REPLY_TIMEOUT = 3.0
_BEGIN_TIMEOUT = 6.0  # watchdog: the server must start speaking within this


def speechd_socket_path() -> str | None:
    """Where speech-dispatcher listens: $SPEECHD_ADDRESS, else the per-user runtime socket."""
    address = os.environ.get("SPEECHD_ADDRESS", "")
    if address.startswith("unix_socket:"):
        return address.split(":", 1)[1]
    if address:
        return None  # inet_socket is not used by Sightline: it would speak to another machine
    runtime = os.environ.get("XDG_RUNTIME_DIR") or os.path.expanduser("~/.cache")
    return os.path.join(runtime, "speech-dispatcher", "speechd.sock")


def wpm_to_ssip_rate(wpm: int) -> int:
    """SSIP rates run -100..100 around the synthesiser's normal speed (about 175 words a minute)."""
    if wpm >= 175:
        return int(min(100, round((wpm - 175) * 100 / 275)))
    return int(max(-100, round((wpm - 175) * 100 / 95)))


class _Reply:
    def __init__(self, code: int, lines: list[str]):
        self.code = code
        self.lines = lines

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


class SSIPConnection:
    """One client connection. A reader thread splits replies from asynchronous events."""

    def __init__(self, path: str, client_name: str = "sightline") -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(_CONNECT_TIMEOUT)
        self._sock.connect(path)
        self._sock.settimeout(None)
        # Reader thread -> callers: replies and events travel through these queues.
        self.replies: queue.Queue[_Reply] = queue.Queue()
        self.events: queue.Queue[tuple[str, str]] = queue.Queue()  # (kind, message id)
        self._io_lock = threading.Lock()
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name="sightline-ssip-reader", daemon=True)
        self._reader.start()
        user = os.environ.get("USER", "user")
        self.command(f"SET self CLIENT_NAME {user}:{client_name}:main")
        self.command("SET self NOTIFICATION all on")

    def _read_loop(self) -> None:
        buf = b""
        lines: list[str] = []
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                buf += data
                while b"\r\n" in buf:
                    raw, buf = buf.split(b"\r\n", 1)
                    line = raw.decode("utf-8", "replace")
                    if len(line) < 4 or not line[:3].isdigit():
                        continue
                    lines.append(line[4:])
                    if line[3] == " ":
                        code = int(line[:3])
                        if 700 <= code < 800:
                            kind = line[4:].strip().split(" ")[0]
                            msg_id = lines[0] if len(lines) > 1 else ""
                            self.events.put((kind, msg_id))
                        else:
                            self.replies.put(_Reply(code, lines))
                        lines = []
        except OSError:
            pass
        finally:
            self.closed.set()
            self.replies.put(_Reply(599, ["connection closed"]))

    def command(self, line: str, data: str | None = None) -> _Reply:
        with self._io_lock:
            if self.closed.is_set():
                raise SpeechDriverError(detail="speech-dispatcher connection closed")
            try:
                self._sock.sendall(line.encode("utf-8") + b"\r\n")
                reply = self.replies.get(timeout=_REPLY_TIMEOUT)
                if data is not None and reply.code == 230:
                    body = "\r\n".join(
                        "." + ln if ln.startswith(".") else ln for ln in data.replace("\r", "").split("\n")
                    )
                    self._sock.sendall(body.encode("utf-8") + b"\r\n.\r\n")
                    reply = self.replies.get(timeout=_REPLY_TIMEOUT)
            except queue.Empty:
                raise SpeechDriverError(
                    detail=f"speech-dispatcher did not answer {line.split()[0]}"
                ) from None
            except OSError as exc:
                raise SpeechDriverError(detail=f"speech-dispatcher connection failed: {exc}") from exc
        if reply.code == 599:
            raise SpeechDriverError(detail="speech-dispatcher closed the connection")
        return reply

    def close(self) -> None:
        try:
            with self._io_lock:
                self._sock.sendall(b"QUIT\r\n")
        except OSError:
            pass
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._reader.join(timeout=2)


class SpeechDispatcherDriver(SpeechDriver):
    name = "screen_reader"
    label = "screen reader (speech-dispatcher)"

    def __init__(self, socket_path: str | None = None, begin_timeout: float = _BEGIN_TIMEOUT) -> None:
        self._path = socket_path
        self.begin_timeout = begin_timeout
        self._conn: SSIPConnection | None = None
        self._lock = threading.Lock()
        self._applied: dict[str, str] = {}
        self.last_message_id: str | None = None

    @property
    def socket_path(self) -> str | None:
        return self._path or speechd_socket_path()

    def check(self) -> tuple[bool, str]:
        if not sys.platform.startswith("linux"):
            return False, "speech-dispatcher is a Linux service"
        path = self.socket_path
        if not path or not os.path.exists(path):
            return False, f"speech-dispatcher is not running (no socket at {path})"
        try:
            self._connection()
        except (OSError, SpeechDriverError) as exc:
            return False, f"speech-dispatcher does not answer ({getattr(exc, 'detail', None) or exc})"
        return True, f"speech-dispatcher at {path}"

    def _connection(self) -> SSIPConnection:
        with self._lock:
            if self._conn is None or self._conn.closed.is_set():
                path = self.socket_path
                if not path:
                    raise SpeechDriverError(detail="no speech-dispatcher socket")
                self._conn = SSIPConnection(path)
                self._applied = {}
            return self._conn

    def list_voices(self) -> list[Voice]:
        try:
            reply = self._connection().command("LIST SYNTHESIS_VOICES")
        except (OSError, SpeechDriverError):
            return []
        voices = []
        for line in reply.lines[:-1]:
            parts = line.split("\t")
            # Skip the variants ("English+Steph"): every base voice has dozens.
            if parts and "+" not in parts[0]:
                voices.append(Voice(id=parts[0], name=parts[0], language=parts[1] if len(parts) > 1 else ""))
        return voices

    def _apply(self, conn: SSIPConnection, settings: VoiceSettings) -> None:
        wanted = {
            "RATE": str(wpm_to_ssip_rate(settings.rate_wpm)),
            "VOLUME": str(round(settings.volume * 200 - 100)),
        }
        if settings.voice:
            wanted["SYNTHESIS_VOICE"] = settings.voice
        for key, value in wanted.items():
            if self._applied.get(key) != value:
                reply = conn.command(f"SET self {key} {value}")
                if not reply.ok:
                    log.info("speech-dispatcher refused %s %s: %s", key, value, reply.lines[-1])
                self._applied[key] = value

    def speak(self, text: str, settings: VoiceSettings, cancel: threading.Event) -> bool:
        try:
            conn = self._connection()
        except OSError as exc:
            raise SpeechDriverError(detail=f"speech-dispatcher unreachable: {exc}") from exc
        settings = settings.clamped()
        self._apply(conn, settings)
        while not conn.events.empty():  # events of earlier, abandoned messages
            conn.events.get_nowait()
        reply = conn.command("SPEAK", data=text)
        if reply.code != 225:
            raise SpeechDriverError(detail=f"speech-dispatcher refused the message: {reply.lines[-1]}")
        msg_id = reply.lines[0] if len(reply.lines) > 1 else ""
        self.last_message_id = msg_id
        began = False
        start = time.monotonic()
        words = max(1, len(text.split()))
        end_by = start + self.begin_timeout + words * 60.0 / max(settings.rate_wpm, 60) * 3 + 5
        while True:
            if cancel.is_set():
                self.interrupt()
                return False
            try:
                kind, event_id = conn.events.get(timeout=0.02)
            except queue.Empty:
                now = time.monotonic()
                if conn.closed.is_set():
                    raise SpeechDriverError(detail="speech-dispatcher closed the connection") from None
                if not began and now - start > self.begin_timeout:
                    self.interrupt()
                    raise SpeechDriverError(
                        detail=f"speech-dispatcher did not start speaking within {self.begin_timeout:.1f} s"
                    ) from None
                if now > end_by:
                    self.interrupt()
                    raise SpeechDriverError(detail="speech-dispatcher never finished speaking") from None
                continue
            if msg_id and event_id and event_id != msg_id:
                continue
            if kind == "BEGIN":
                began = True
            elif kind == "END":
                return True
            elif kind in ("CANCELED", "CANCELLED"):
                return False

    def interrupt(self) -> None:
        conn = self._conn
        if conn is not None and not conn.closed.is_set():
            try:
                conn.command("CANCEL self")
            except SpeechDriverError as exc:
                log.info("speech-dispatcher cancel failed: %s", exc.detail)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class AccessibleOutputDriver(SpeechDriver):
    """NVDA, JAWS, VoiceOver or SAPI through accessible_output2 (Windows and macOS)."""

    name = "screen_reader"
    label = "screen reader"

    def __init__(self) -> None:
        self._output = None

    def _load(self):
        if self._output is None:
            from accessible_output2.outputs.auto import Auto  # optional; not installed on Linux

            self._output = Auto()
        return self._output

    def check(self) -> tuple[bool, str]:
        try:
            output = self._load()
        except Exception as exc:
            return False, f"accessible_output2 is not available ({exc.__class__.__name__}: {exc})"
        active = [o.name for o in getattr(output, "outputs", []) if _is_active(o)]
        if not active:
            return False, "no screen reader is running"
        return True, f"speaking through {active[0]}"

    def speak(self, text: str, settings: VoiceSettings, cancel: threading.Event) -> bool:
        try:
            self._load().speak(text, interrupt=False)
        except Exception as exc:
            raise SpeechDriverError(detail=f"screen reader refused speech: {exc}") from exc
        # No end-of-speech event: wait about as long as the text takes to say.
        seconds = len(text.split()) * 60.0 / max(settings.rate_wpm, 60) + 0.3
        return not cancel.wait(seconds)

    def interrupt(self) -> None:
        try:
            if self._output is not None:
                self._output.silence()
        except Exception:
            log.debug("screen reader silence failed", exc_info=True)


def _is_active(output) -> bool:
    try:
        return bool(output.is_active())
    except Exception:
        return False


def ScreenReaderDriver(**kwargs) -> SpeechDriver:  # noqa: N802 (a factory that reads like a class)
    """The screen-reader driver for this platform."""
    if sys.platform.startswith("linux"):
        return SpeechDispatcherDriver(**kwargs)
    return AccessibleOutputDriver()
