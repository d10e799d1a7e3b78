"""pyttsx3: the platform's own voices (SAPI5, NSSpeechSynthesizer, eSpeak), synthesised to a buffer.

One thread owns the engine for its whole life; every request reaches it through a queue and every
answer goes back through a per-request queue. Each utterance is rendered with `save_to_file` into
a fresh temporary WAV and played through the shared AudioPlayer, so Stop cuts at once. This fences
in the engine's known faults:
- runAndWait may return before the file is written: we wait for `finished-utterance` and a
  complete file;
- two requests queued before one runAndWait yield only the last: one request per runAndWait;
- say() after save_to_file writes into the old file, say() needs aplay, and stop() from another
  thread does not interrupt: say() and stop() are never used.
A hanging engine is caught by the caller's watchdog; the driver then reports itself broken and the
manager moves on. The engine thread is a daemon because a hung native call cannot be cancelled.

One engine thread per process (per pyttsx3 driver name), shared by every Pyttsx3Driver: pyttsx3.init()
hands the same engine to every caller, and eSpeak's synthesis state (one callback, one buffer) is
global to the process. Two drivers rendering from two threads, as when the app builds a new
speech manager while the old one still speaks, or lists voices while speaking, interleaved in
that shared state: one render cleared the other's buffer just before it was saved, which left a
WAV header with no samples ("wrote no usable file (44 bytes)"), and the reader then waited out
its full file timeout in silence. Now requests from all drivers queue for the one thread, and an
empty file is rendered once more at once and otherwise reported at once, so the manager falls
back to the next driver without a silent wait.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from app.speech.drivers.base import BufferDriver, SpeechDriverError, Voice, VoiceSettings
from app.speech.playback import Clip

log = logging.getLogger("app.speech")

_FILE_WAIT = 3.0  # after finished-utterance, how long the file may take to appear complete


class _Pyttsx3Clip(Clip):
    error: str | None = None


class _EmptyRender(RuntimeError):
    """The engine finished the utterance but its file holds no samples."""


class _EngineHost:
    """The one thread that owns a pyttsx3 engine; every request reaches it through `requests`."""

    def __init__(self, driver_name: str | None) -> None:
        self.driver_name = driver_name
        # Any thread -> engine thread: requests travel through this queue.
        self.requests: queue.Queue = queue.Queue()
        self.ready = threading.Event()
        self.init_error: str | None = None
        self.users = 0
        self.thread = threading.Thread(target=self._loop, name="sightline-pyttsx3", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        try:
            import pyttsx3

            engine = pyttsx3.init(self.driver_name) if self.driver_name else pyttsx3.init()
        except Exception as exc:  # no engine on this system
            self.init_error = f"no engine ({exc.__class__.__name__}: {exc})"
            self.ready.set()
            return
        finished = threading.Event()
        engine.connect("finished-utterance", lambda name=None, completed=True: finished.set())
        self.ready.set()
        while True:
            request = self.requests.get()
            if request is None:
                break
            kind, payload, reply = request
            try:
                if kind == "voices":
                    result = [
                        Voice(id=str(v.id), name=str(v.name or v.id), language=_language(v))
                        for v in engine.getProperty("voices")
                    ]
                else:
                    try:
                        result = _render(engine, finished, *payload)
                    except _EmptyRender:
                        log.info("pyttsx3 wrote an empty file; rendering once more")
                        result = _render(engine, finished, *payload)
                # Engine thread -> caller: the answer goes back through the caller's queue.
                reply.put(("ok", result))
            except Exception as exc:
                reply.put(("error", f"{exc.__class__.__name__}: {exc}"))
        with contextlib.suppress(Exception):
            engine.stop()


class _EngineLineFilter(io.TextIOBase):
    """sys.stdout without pyttsx3's "Audio saved to <file>" lines; everything else passes unchanged.

    The espeak backend prints that line from its synthesis callback, on a thread of espeak's own,
    sometimes after runAndWait has returned. Swapping sys.stdout for the length of an utterance
    (contextlib.redirect_stdout) also swallowed what every other thread printed meanwhile - a CLI
    answer streamed while it is spoken. This filter is installed once and drops only that line
    (and the newline print writes after it, from the same thread)."""

    PREFIX = "Audio saved to "

    def __init__(self, target) -> None:
        super().__init__()
        self._target = target
        self._newline_owed: set[int] = set()

    @classmethod
    def install(cls) -> None:
        if not isinstance(sys.stdout, cls):  # again if someone replaced sys.stdout since
            sys.stdout = cls(sys.stdout)

    def write(self, text: str) -> int:
        me = threading.get_ident()
        if text.startswith(self.PREFIX) and "sightline-tts-" in text:
            if not text.endswith("\n"):
                self._newline_owed.add(me)
            return len(text)
        if text == "\n" and me in self._newline_owed:
            self._newline_owed.discard(me)
            return 1
        return self._target.write(text)

    def flush(self) -> None:
        self._target.flush()

    def writable(self) -> bool:
        return True

    def __getattr__(self, name: str):
        return getattr(self._target, name)


_hosts: dict[str | None, _EngineHost] = {}
_hosts_lock = threading.Lock()


def _render(engine, finished: threading.Event, text: str, settings: VoiceSettings):
    engine.setProperty("rate", settings.rate_wpm)
    engine.setProperty("volume", settings.volume)
    if settings.voice:
        engine.setProperty("voice", settings.voice)
    fd, name = tempfile.mkstemp(prefix="sightline-tts-", suffix=".wav")
    os.close(fd)
    path = Path(name)
    try:
        path.unlink()  # a fresh name the engine creates; an old file never passes for a new one
        finished.clear()
        _EngineLineFilter.install()  # the engine's "Audio saved to ..." never reaches the output
        engine.save_to_file(text, str(path))
        engine.runAndWait()
        if not finished.wait(_FILE_WAIT):
            raise RuntimeError("finished-utterance never came")
        return _read_complete_wav(path)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


class Pyttsx3Driver(BufferDriver):
    name = "pyttsx3"
    label = "system voice (pyttsx3)"

    def __init__(self, driver_name: str | None = None, player=None, synth_timeout: float | None = None):
        kwargs = {} if synth_timeout is None else {"synth_timeout": synth_timeout}
        super().__init__(player=player, **kwargs)
        self._driver_name = driver_name
        self._host: _EngineHost | None = None
        self._voices: list[Voice] | None = None

    # -- engine thread -----------------------------------------------------------------------

    def _ensure_thread(self) -> _EngineHost:
        with _hosts_lock:
            if self._host is None:
                host = _hosts.get(self._driver_name)
                if host is None or not host.thread.is_alive():
                    host = _hosts[self._driver_name] = _EngineHost(self._driver_name)
                host.users += 1
                self._host = host
            host = self._host
        if not host.ready.wait(self.synth_timeout):
            self.mark_broken(f"the engine did not start within {self.synth_timeout:.1f} s")
        if host.init_error:
            raise SpeechDriverError(detail=f"pyttsx3: {host.init_error}")
        if self._broken:
            raise SpeechDriverError(detail=f"pyttsx3: {self._broken}")
        return host

    def _call(self, kind: str, payload, timeout: float):
        host = self._ensure_thread()
        reply: queue.Queue = queue.Queue(maxsize=1)
        host.requests.put((kind, payload, reply))
        try:
            status, result = reply.get(timeout=timeout)
        except queue.Empty:
            reason = f"the engine did not answer within {timeout:.1f} s"
            self.mark_broken(reason)
            raise SpeechDriverError(detail=f"pyttsx3: {reason}") from None
        if status != "ok":
            raise SpeechDriverError(detail=f"pyttsx3: {result}")
        return result

    # -- driver API --------------------------------------------------------------------------

    def engine_check(self) -> tuple[bool, str]:
        if self._broken:
            return False, self._broken
        try:
            import pyttsx3  # noqa: F401
        except Exception as exc:
            return False, f"pyttsx3 is not installed ({exc})"
        try:
            self._ensure_thread()
        except SpeechDriverError as exc:
            init_error = self._host.init_error if self._host is not None else None
            return False, init_error or self._broken or exc.detail or str(exc)
        return True, "engine ready"

    def list_voices(self) -> list[Voice]:
        if self._voices is None:
            try:
                self._voices = self._call("voices", None, self.synth_timeout)
            except SpeechDriverError as exc:
                log.info("pyttsx3 voices unavailable: %s", exc.detail)
                return []
        return self._voices

    def start_synthesis(self, text: str, settings: VoiceSettings, cancel: threading.Event) -> Clip:
        clip = _Pyttsx3Clip(volume=1.0)
        host = self._ensure_thread()
        reply: queue.Queue = queue.Queue(maxsize=1)
        host.requests.put(("render", (text, settings), reply))
        waiter = threading.Thread(
            target=self._deliver, args=(reply, clip), name="sightline-pyttsx3-reply", daemon=True
        )
        waiter.start()
        return clip

    def _deliver(self, reply: queue.Queue, clip: _Pyttsx3Clip) -> None:
        """Moves the engine's answer into the clip (the clip's queue feeds the audio callback)."""
        try:
            status, result = reply.get(timeout=self.synth_timeout * 4 + 60)
        except queue.Empty:
            clip.error = "no answer from the engine"
            clip.finish()
            return
        if status == "ok":
            samples, rate = result
            clip.rate = rate
            clip.push(samples)
        else:
            clip.error = result
        clip.finish()

    def synthesize(self, text: str, settings: VoiceSettings) -> tuple[np.ndarray, int]:
        return self._call("render", (text, settings.clamped()), self.synth_timeout + len(text) / 50.0)

    def close(self) -> None:
        """Lets go of the shared engine thread; the last driver to close stops it."""
        with _hosts_lock:
            host, self._host = self._host, None
            if host is None:
                return
            host.users -= 1
            last = host.users <= 0
            if last and _hosts.get(self._driver_name) is host:
                del _hosts[self._driver_name]
        if last and host.thread.is_alive():
            host.requests.put(None)
            host.thread.join(timeout=2)


def _language(voice) -> str:
    langs = getattr(voice, "languages", None) or []
    if langs:
        lang = langs[0]
        if isinstance(lang, bytes):
            lang = lang.decode("ascii", "ignore").lstrip("\x05").strip("\x00")
        return str(lang)
    return ""


def _header_frames(path: Path) -> int | None:
    """The number of frames a WAV header announces, or None if there is no readable header."""
    import wave

    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnframes()
    except (OSError, EOFError, wave.Error):
        return None


def _header_says_complete(path: Path, size: int) -> bool:
    import wave

    try:
        with wave.open(str(path), "rb") as wav:
            need = wav.getnframes() * wav.getsampwidth() * wav.getnchannels()
    except (OSError, EOFError, wave.Error):
        return False
    return 0 < need <= size - 44


def _read_complete_wav(path: Path) -> tuple[np.ndarray, int]:
    """Reads the WAV once its size stops changing; an empty or partial file is an error."""
    import soundfile as sf

    deadline = time.monotonic() + _FILE_WAIT
    last = -1
    while True:
        size = path.stat().st_size if path.exists() else -1
        if size > 44 and (size == last or _header_says_complete(path, size)):
            break
        if size == last and _header_frames(path) == 0:
            # A finished utterance whose file holds a header and no samples: nothing will follow.
            raise _EmptyRender(f"the engine wrote no usable file ({size} bytes)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the engine wrote no usable file ({size} bytes)")
        last = size
        time.sleep(0.005)
    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return samples.mean(axis=1).astype(np.float32), int(rate)
