"""Soak: 200 describe jobs in one tray process on the tiny model, with Stop and supersede between them.

    .venv/bin/python bench/soak.py [--jobs 200] [--model DIR] [--warmup 20]

Starts its own Xvfb + tray host + PulseAudio (scripts/services.sh) unless SIGHTLINE_TEST_SERVICES
is set, builds the tiny random Phi-4-multimodal model (tests/fixtures/tiny_phi4.py) unless --model
is given, and runs the real tray app (app.main.run_app) in this process with the silent speech
driver. Jobs are run through the app's own command path (run_command("describe_screen"): a real
capture of the virtual screen, the controller, the inference thread, the chunker, the speech
manager), in a repeating pattern of four:
  finish   - the answer runs to its end;
  stop     - Stop (the X command) at the first words of the answer;
  supersede- a new describe at the first words, replacing the running one;
  finish   - to its end again.
Printed: resident memory (VmRSS) at the start, after the warm-up jobs (default 50) and every 50
jobs, and its drift from the end of the warm-up to the last job (goal under 5 %); OS and Python
thread counts after the warm-up and at the end (goal: flat); and stale speech: any sentence of a
stopped or superseded answer that began after the Stop or the new job (goal: none), from the
speech manager's own events.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.services import start_services, stop_services  # noqa: E402


def _proc_status() -> dict[str, str]:
    with open("/proc/self/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def rss_mb() -> float:
    return int(_proc_status()["VmRSS"].split()[0]) / 1024


def os_threads() -> int:
    return int(_proc_status()["Threads"])


class Soak:
    """Drives the jobs from the GUI thread; every step is a queued call or a signal."""

    def __init__(self, app, jobs: int, warmup: int):
        from PySide6.QtCore import QTimer

        self.app = app
        self.jobs = jobs
        self.warmup = warmup
        self.submitted = 0
        self.finished = 0
        self.cancelled_at: dict[int, float] = {}  # job id -> when it was stopped or superseded
        self.speech_starts: list[tuple[int, float, str]] = []  # (job id, when, text)
        self.samples: list[tuple[int, float, int, int]] = []  # (jobs done, RSS MB, OS threads, py threads)
        self.started_at = time.monotonic()
        self.step_kind = ""
        self.current: int | None = None
        self.errors: list[str] = []
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        c = app.controller
        c.answerChunk.connect(self._on_chunk)
        c.answerFinished.connect(self._on_finished)
        c.answerFailed.connect(self._on_failed)
        # The speech thread -> this list: appending is atomic; read only after the run.
        app.speech._on_event = self._on_speech_event  # a bench hook: the manager's event callback
        self.samples.append((0, rss_mb(), os_threads(), threading.active_count()))

    def _on_speech_event(self, event) -> None:
        if event.kind == "started" and isinstance(event.job_id, int):
            self.speech_starts.append((event.job_id, time.monotonic(), event.text))

    def start(self) -> None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(500, self._next)

    def _describe(self) -> int:
        self.app.run_command("describe_screen")
        self.submitted += 1
        job = self.app.controller.current_job_id
        if job is None:
            self.errors.append(f"job {self.submitted} was not submitted")
        return job

    def _next(self) -> None:
        from PySide6.QtCore import QTimer

        done = self.submitted
        if done and done % 50 == 0 or done == self.warmup:
            self.samples.append((done, rss_mb(), os_threads(), threading.active_count()))
        if done >= self.jobs:
            QTimer.singleShot(2000, self._end)  # let speech of the last answer play out
            return
        self.step_kind = ("finish", "stop", "supersede", "finish")[done % 4]
        self.current = self._describe()
        if done % 25 == 0:
            print(f"  {done} jobs, {time.monotonic() - self.started_at:.0f} s", flush=True)

    def _on_chunk(self, job_id: int, _text: str) -> None:
        from PySide6.QtCore import QTimer

        if job_id != self.current:
            return
        if self.step_kind == "stop":
            self.step_kind = ""
            self.cancelled_at[job_id] = time.monotonic()
            self.app.run_command("stop")
            self.current = None
            QTimer.singleShot(100, self._next)
        elif self.step_kind == "supersede":
            self.step_kind = "finish"
            self.cancelled_at[job_id] = time.monotonic()
            self.current = self._describe()  # replaces the running job; it counts as one of the jobs

    def _on_finished(self, job_id: int, result) -> None:
        from PySide6.QtCore import QTimer

        if job_id != self.current:
            return
        self.finished += 1
        if result.error is not None and type(result.error).__name__ != "Cancelled":
            self.errors.append(result.error.sentence)
        self.current = None
        QTimer.singleShot(0, self._next)

    def _on_failed(self, job_id: int, sentence: str) -> None:
        if job_id == self.current or job_id == -1:
            self.errors.append(sentence)

    def _end(self) -> None:
        self.samples.append((self.submitted, rss_mb(), os_threads(), threading.active_count()))
        self.app.qapp.quit()

    def report(self) -> dict:
        stale = [
            (job, round(when - self.cancelled_at[job], 3), text[:60])
            for job, when, text in self.speech_starts
            if job in self.cancelled_at and when > self.cancelled_at[job]
        ]
        warm = next(s for s in self.samples if s[0] == self.warmup)
        last = self.samples[-1]
        return {
            "jobs": self.submitted,
            "finished": self.finished,
            "stopped_or_superseded": len(self.cancelled_at),
            "seconds": round(time.monotonic() - self.started_at, 1),
            "rss_start_mb": round(self.samples[0][1], 1),
            "rss_after_warmup_mb": round(warm[1], 1),
            "rss_end_mb": round(last[1], 1),
            "rss_drift_pct": round(100 * (last[1] - warm[1]) / warm[1], 2),
            "samples": [(n, round(r, 1), t, p) for n, r, t, p in self.samples],
            "os_threads_start_end": (warm[2], last[2]),
            "py_threads_start_end": (warm[3], last[3]),
            "stale_speech": stale,
            "speech_starts": len(self.speech_starts),
            "errors": self.errors[:5],
            "error_count": len(self.errors),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    # The allocators' pools (torch, glibc) keep growing over the first few dozen jobs as image and
    # answer sizes vary; the drift that matters is what happens after that.
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--model", help="a Phi-4-multimodal folder; default: build the tiny test model")
    args = parser.parse_args()

    state = start_services()
    home = tempfile.mkdtemp(prefix="sightline-soak-home-")
    os.environ.update(SIGHTLINE_HOME=home, QT_QPA_PLATFORM="xcb", SIGHTLINE_NO_HOTKEYS="1")
    out: dict = {}
    try:
        model_dir = args.model
        if model_dir is None:
            from tests.fixtures.tiny_phi4 import build_tiny_phi4

            model_dir = str(build_tiny_phi4(Path(home) / "tiny" / "Phi-4-multimodal-instruct"))
        from app.settings.schema import Settings
        from app.settings.store import save_settings

        save_settings(
            Settings(
                speech_driver="silent", earcons=False, model_dir=model_dir, backend="local", max_new_tokens=32
            )
        )
        from app.logging_setup import setup_logging
        from app.main import run_app

        setup_logging()
        soak: dict = {}

        def on_ready(app) -> None:
            def begin(state) -> None:
                if state.ready and "run" not in soak:
                    soak["run"] = Soak(app, args.jobs, args.warmup)
                    soak["run"].start()

            app.worker.state.connect(begin)
            app.worker.loadFailed.connect(lambda sentence: (print(sentence), app.qapp.quit()))

        print(f"soak: {args.jobs} describe jobs on {model_dir}", flush=True)
        code = run_app([sys.argv[0]], on_ready=on_ready)
        if "run" not in soak:
            print("the model did not load; nothing was run", file=sys.stderr)
            return 1
        out = soak["run"].report()
        out["exit"] = code
    finally:
        stop_services(state)

    print(json.dumps(out))
    threads, py_threads = out["os_threads_start_end"], out["py_threads_start_end"]
    print(
        f"soak: {out['jobs']} jobs, {out['stopped_or_superseded']} stopped or superseded, {out['seconds']} s"
    )
    print(
        f"  RSS {out['rss_after_warmup_mb']} MB after {args.warmup} jobs -> {out['rss_end_mb']} MB at the end"
        f": drift {out['rss_drift_pct']:+.2f} % (goal < 5 %)"
    )
    print("  RSS by jobs done: " + ", ".join(f"{n}: {r:.0f} MB" for n, r, _t, _p in out["samples"][:-1]))
    print(
        f"  threads: OS {threads[0]} -> {threads[1]}, Python {py_threads[0]} -> {py_threads[1]} (goal: flat)"
    )
    print(f"  stale speech: {len(out['stale_speech'])} (goal 0); errors: {out['error_count']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
