"""Hearing what Sightline plays: a private PulseAudio null sink, recorded back from its monitor.

Used by bench/speech.py and the speech integration tests to measure, from the recorded samples,
when sound starts and when it ends (not from guesses about the audio pipeline). Linux with
PulseAudio (or PipeWire's pulse server) and `pactl` only.

PrivateSink loads a null sink of its own and points this process's new audio streams at it
(PULSE_SINK / PULSE_SOURCE), so other programs playing on the default sink are not heard and do
not hear us. It is unloaded by its module index on exit.
"""

from __future__ import annotations

import itertools
import os
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

import numpy as np

RATE = 48000
_serial = itertools.count(1)


class PrivateSink:
    def __init__(self, rate: int = RATE) -> None:
        self.name = f"sightline_probe_{os.getpid()}_{next(_serial)}"
        self.rate = rate
        self.module: str | None = None
        self._saved: dict[str, str | None] = {}

    @property
    def monitor(self) -> str:
        return f"{self.name}.monitor"

    def __enter__(self) -> PrivateSink:
        if shutil.which("pactl") is None:
            raise RuntimeError("pactl is not installed")
        proc = subprocess.run(
            ["pactl", "load-module", "module-null-sink", f"sink_name={self.name}", f"rate={self.rate}"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        if proc.returncode != 0 or not proc.stdout.strip().isdigit():
            raise RuntimeError(f"could not load a null sink: {proc.stderr.strip()}")
        self.module = proc.stdout.strip()
        for key, value in (("PULSE_SINK", self.name), ("PULSE_SOURCE", self.monitor)):
            self._saved[key] = os.environ.get(key)
            os.environ[key] = value
        return self

    def __exit__(self, *exc) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if self.module is not None:
            subprocess.run(["pactl", "unload-module", self.module], capture_output=True, timeout=10)
            self.module = None


@dataclass
class Recording:
    samples: np.ndarray  # mono float32
    rate: int
    t0: float  # time.monotonic() of samples[0] (an upper bound: the capture path adds a little)

    def time_of(self, index: int) -> float:
        return self.t0 + index / self.rate

    def _loud(self, threshold: float) -> np.ndarray:
        return np.flatnonzero(np.abs(self.samples) > threshold)

    def first_sound(self, after: float | None = None, threshold: float = 2e-3) -> float | None:
        loud = self._loud(threshold)
        if after is not None:
            loud = loud[loud >= max(0, int((after - self.t0) * self.rate))]
        return None if loud.size == 0 else self.time_of(int(loud[0]))

    def last_sound(self, threshold: float = 2e-3) -> float | None:
        loud = self._loud(threshold)
        return None if loud.size == 0 else self.time_of(int(loud[-1]))

    def last_sound_between(self, start: float, end: float, threshold: float = 2e-3) -> float | None:
        a = max(0, int((start - self.t0) * self.rate))
        b = max(a, int((end - self.t0) * self.rate))
        loud = np.flatnonzero(np.abs(self.samples[a:b]) > threshold)
        return None if loud.size == 0 else self.time_of(a + int(loud[-1]))

    def sound_seconds(
        self, start: float | None = None, end: float | None = None, threshold: float = 2e-3
    ) -> float:
        """Seconds of non-silent samples between two times (or in the whole recording)."""
        a = 0 if start is None else max(0, int((start - self.t0) * self.rate))
        b = self.samples.size if end is None else max(a, int((end - self.t0) * self.rate))
        return float(np.count_nonzero(np.abs(self.samples[a:b]) > threshold)) / self.rate


class MonitorRecorder:
    """Records a source (the private sink's monitor) with `parec`, with timestamps.

    A separate process listens, as another program would. The time of sample 0 is the tightest
    bound over all reads: bytes cannot arrive before they were captured, so
    t0 <= arrival - (samples so far) / rate for every read.
    """

    def __init__(self, source: str | None = None, rate: int = RATE) -> None:
        self.source = source or os.environ.get("PULSE_SOURCE") or "@DEFAULT_MONITOR@"
        self.rate = rate
        # Reader thread -> this object: chunks arrive through this queue.
        self._chunks: queue.SimpleQueue = queue.SimpleQueue()
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._flowing = threading.Event()

    def _read(self, proc: subprocess.Popen) -> None:
        fd = proc.stdout.fileno()
        while True:
            data = os.read(fd, 4096)
            if not data:
                break
            self._chunks.put((time.monotonic(), data))
            self._flowing.set()

    def start(self, settle: float = 0.3) -> MonitorRecorder:
        if shutil.which("parec") is None:
            raise RuntimeError("parec is not installed")
        self._proc = subprocess.Popen(
            ["parec", "-d", self.source, "--raw", "--format=float32le", f"--rate={self.rate}",
             "--channels=1", "--latency-msec=10"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._reader = threading.Thread(
            target=self._read, args=(self._proc,), name="sightline-parec", daemon=True
        )
        self._reader.start()
        # A freshly loaded sink's monitor can take a second or two before samples flow.
        if not self._flowing.wait(10.0):
            self.stop()
            raise RuntimeError(f"no samples from {self.source}")
        time.sleep(settle)
        return self

    def stop(self) -> Recording:
        if self._proc is not None:
            self._proc.terminate()  # by handle
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
            if self._reader is not None:
                self._reader.join(timeout=5)
            self._proc.stdout.close()
            self._proc = None
        arrivals, parts = [], []
        while True:
            try:
                t, data = self._chunks.get_nowait()
            except queue.Empty:
                break
            arrivals.append(t)
            parts.append(data)
        raw = b"".join(parts)
        raw = raw[: len(raw) - len(raw) % 4]
        samples = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if not parts:
            return Recording(samples, self.rate, time.monotonic())
        ends = np.cumsum([len(p) for p in parts]) // 4
        t0 = float(np.min(np.asarray(arrivals) - ends / self.rate))
        return Recording(samples, self.rate, t0)

    def __enter__(self) -> MonitorRecorder:
        return self.start()

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            self.stop()
