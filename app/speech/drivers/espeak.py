"""espeak-ng through its command line: samples stream from `espeak-ng --stdout` into the player.

The process writes a WAV stream as it synthesises, so the first audio block is played while the
rest of the sentence is still being produced. Stop drops the clip in the player and terminates the
process by its handle.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading

import numpy as np

from app.speech.drivers.base import BufferDriver, SpeechDriverError, Voice, VoiceSettings
from app.speech.playback import Clip

log = logging.getLogger("app.speech")

_WAV_HEADER = 44


class _EspeakClip(Clip):
    process: subprocess.Popen | None = None
    error: str | None = None


class EspeakDriver(BufferDriver):
    name = "espeak"
    label = "espeak-ng voice"

    def __init__(self, binary: str = "espeak-ng", player=None, synth_timeout: float | None = None) -> None:
        kwargs = {} if synth_timeout is None else {"synth_timeout": synth_timeout}
        super().__init__(player=player, **kwargs)
        self.binary = binary
        self._voices: list[Voice] | None = None

    def _path(self) -> str | None:
        return shutil.which(self.binary) or (self.binary if os.path.isfile(self.binary) else None)

    def engine_check(self) -> tuple[bool, str]:
        if self._broken:
            return False, self._broken
        path = self._path()
        if path is None:
            return False, f"{self.binary} is not installed"
        return True, path

    def list_voices(self) -> list[Voice]:
        if self._voices is not None:
            return self._voices
        path = self._path()
        if path is None:
            return []
        try:
            proc = subprocess.run([path, "--voices"], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.info("espeak-ng voices unavailable: %s", exc)
            return []
        voices = []
        for line in proc.stdout.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 4:
                voices.append(Voice(id=parts[1], name=parts[3].replace("_", " "), language=parts[1]))
        self._voices = voices
        return voices

    def _command(self, settings: VoiceSettings) -> list[str]:
        path = self._path()
        if path is None:
            raise SpeechDriverError(detail=f"{self.binary} is not installed")
        cmd = [path, "--stdout", "-s", str(settings.rate_wpm), "-a", str(round(settings.volume * 100))]
        if settings.voice:
            cmd += ["-v", settings.voice]
        return cmd

    def start_synthesis(self, text: str, settings: VoiceSettings, cancel: threading.Event) -> Clip:
        clip = _EspeakClip(rate=22050)
        try:
            proc = subprocess.Popen(
                self._command(settings),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise SpeechDriverError(detail=f"{self.binary} could not start: {exc}") from exc
        clip.process = proc
        reader = threading.Thread(
            target=self._pump, args=(proc, text, clip), name="sightline-espeak-reader", daemon=True
        )
        reader.start()
        return clip

    @staticmethod
    def _pump(proc: subprocess.Popen, text: str, clip: _EspeakClip) -> None:
        """Reader thread: its samples reach the audio callback through the clip's queue."""
        try:
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(text.encode("utf-8") + b"\n")
                proc.stdin.close()
            except OSError:
                pass  # the process died early; its exit status says why below
            fd = proc.stdout.fileno()
            header = b""
            while len(header) < _WAV_HEADER:
                data = os.read(fd, _WAV_HEADER - len(header))
                if not data:
                    break
                header += data
            if len(header) == _WAV_HEADER and header[:4] == b"RIFF":
                clip.rate = int.from_bytes(header[24:28], "little") or 22050
                odd = b""
                while True:
                    data = os.read(fd, 8192)
                    if not data:
                        break
                    data = odd + data
                    cut = len(data) - (len(data) % 2)
                    odd = data[cut:]
                    if cut:
                        clip.push(np.frombuffer(data[:cut], dtype="<i2").astype(np.float32) / 32768.0)
            rc = proc.wait(timeout=10)
            if rc not in (0, -15) and clip.frames_queued == 0:
                err = proc.stderr.read().decode("utf-8", "replace").strip() if proc.stderr else ""
                clip.error = f"espeak-ng exited with {rc}: {err[:200]}"
        except Exception as exc:  # a reader must never die silently
            clip.error = f"espeak-ng output unreadable: {exc}"
        finally:
            for stream in (proc.stdout, proc.stderr):
                try:
                    if stream:
                        stream.close()
                except OSError:
                    pass
            clip.finish()

    def abandon(self, clip) -> None:
        proc = getattr(clip, "process", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()  # the espeak-ng process, by handle; its reader collects the exit

    def synthesize(self, text: str, settings: VoiceSettings) -> tuple[np.ndarray, int]:
        try:
            proc = subprocess.run(
                self._command(settings.clamped()), input=text.encode("utf-8"), capture_output=True,
                timeout=self.synth_timeout + len(text) / 50.0,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise SpeechDriverError(detail=f"{self.binary} took too long") from exc
        data = proc.stdout
        if proc.returncode != 0 or len(data) <= _WAV_HEADER:
            raise SpeechDriverError(detail=f"{self.binary} failed: {proc.stderr[:200]!r}")
        rate = int.from_bytes(data[24:28], "little") or 22050
        body = data[_WAV_HEADER : len(data) - (len(data) - _WAV_HEADER) % 2]
        return np.frombuffer(body, dtype="<i2").astype(np.float32) / 32768.0, rate
