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
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
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


class Pyttsx3Driver(BufferDriver):
    name = "pyttsx3"
    label = "system voice (pyttsx3)"

    def __init__(self, driver_name: str | None = None, player=None, synth_timeout: float | None = None):
        kwargs = {} if synth_timeout is None else {"synth_timeout": synth_timeout}
        super().__init__(player=player, **kwargs)
        self._driver_name = driver_name
        # Any thread -> engine thread: requests travel through this queue.
        self._requests: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._init_error: str | None = None
        self._ready = threading.Event()
        self._voices: list[Voice] | None = None

    # -- engine thread -----------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._engine_loop, name="sightline-pyttsx3", daemon=True
                )
                self._thread.start()
        if not self._ready.wait(self.synth_timeout):
            self.mark_broken(f"the engine did not start within {self.synth_timeout:.1f} s")
        if self._init_error:
            raise SpeechDriverError(detail=f"pyttsx3: {self._init_error}")
        if self._broken:
            raise SpeechDriverError(detail=f"pyttsx3: {self._broken}")

    def _engine_loop(self) -> None:
        try:
            import pyttsx3

            engine = pyttsx3.init(self._driver_name) if self._driver_name else pyttsx3.init()
        except Exception as exc:  # no engine on this system
            self._init_error = f"no engine ({exc.__class__.__name__}: {exc})"
            self._ready.set()
            return
        finished = threading.Event()
        engine.connect("finished-utterance", lambda name=None, completed=True: finished.set())
        self._ready.set()
        while True:
            request = self._requests.get()
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
                    result = self._render(engine, finished, *payload)
                # Engine thread -> caller: the answer goes back through the caller's queue.
                reply.put(("ok", result))
            except Exception as exc:
                reply.put(("error", f"{exc.__class__.__name__}: {exc}"))
        with contextlib.suppress(Exception):
            engine.stop()

    @staticmethod
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
            # The espeak backend prints a line per saved file; keep it off the CLI's stdout.
            with contextlib.redirect_stdout(io.StringIO()):
                engine.save_to_file(text, str(path))
                engine.runAndWait()
            if not finished.wait(_FILE_WAIT):
                raise RuntimeError("finished-utterance never came")
            return _read_complete_wav(path)
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    def _call(self, kind: str, payload, timeout: float):
        self._ensure_thread()
        reply: queue.Queue = queue.Queue(maxsize=1)
        self._requests.put((kind, payload, reply))
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
            return False, self._init_error or self._broken or exc.detail or str(exc)
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
        self._ensure_thread()
        reply: queue.Queue = queue.Queue(maxsize=1)
        self._requests.put(("render", (text, settings), reply))
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
        if self._thread is not None and self._thread.is_alive():
            self._requests.put(None)
            self._thread.join(timeout=2)


def _language(voice) -> str:
    langs = getattr(voice, "languages", None) or []
    if langs:
        lang = langs[0]
        if isinstance(lang, bytes):
            lang = lang.decode("ascii", "ignore").lstrip("\x05").strip("\x00")
        return str(lang)
    return ""


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
        if time.monotonic() > deadline:
            raise RuntimeError(f"the engine wrote no usable file ({size} bytes)")
        last = size
        time.sleep(0.005)
    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return samples.mean(axis=1).astype(np.float32), int(rate)
