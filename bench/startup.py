"""Start-up and idle cost of the tray app, and hotkey-to-first-speech, measured on a virtual desktop.

    .venv/bin/python bench/startup.py [--idle 30] [--model DIR] [--keys]

Starts its own Xvfb + tray host + PulseAudio (scripts/services.sh) unless SIGHTLINE_TEST_SERVICES
is set, and runs the real app (tests/integration/app_harness.py around app.main.run_app) with the
silent speech driver, whose start time per utterance is the "first speech" moment. Prints:
- launch to tray-ready, beside a bare PySide6 tray icon started the same way (the floor);
- idle CPU over the idle window (goal: about 0%) and idle RSS before any model loads;
- hotkey (the prefix chord, then S) to the first spoken sentence of the answer, with the OCR
  default and, with --model or by building the tiny test model, with the local Phi-4 backend;
  the same for read all text (T) with the OCR default;
- key to acknowledgement: from xdotool sending a key to the first sound of its earcon recorded at
  the PulseAudio sink (the prefix, History, Stop, Copy; goal under 100 ms);
- settings open time: from the key (prefix, then O) to the settings window on the display.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.services import start_services, stop_services  # noqa: E402

BARE_TRAY = """
import sys, time
from PySide6.QtWidgets import QApplication, QSystemTrayIcon
from PySide6.QtGui import QIcon, QPixmap
app = QApplication(sys.argv)
pix = QPixmap(22, 22); pix.fill()
icon = QSystemTrayIcon(QIcon(pix)); icon.show()
print('{"ready": true, "t": %f}' % time.time(), flush=True)
app.processEvents(); time.sleep(0.5)
"""


def _reader(proc, q):
    # Reader thread -> main thread: every JSON line the child prints goes through this queue.
    for line in proc.stdout:
        line = line.strip()
        if line.startswith("{"):
            q.put(json.loads(line))


def _wait(q, proc, key, timeout=120.0, pred=lambda e: True):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            event = q.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited: {proc.stderr.read()[-2000:]}") from None
            continue
        if key in event and pred(event):
            return event
    raise RuntimeError(f"no {key} within {timeout} s")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start(cmd, env):
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    q: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc, q), daemon=True).start()
    return proc, q


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def launch_to_ready(cmd, env, runs=3) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.time()
        proc, q = _start(cmd, env)
        ready = _wait(q, proc, "ready")
        times.append(ready["t"] - t0)
        _stop(proc)
    return times


def hotkey_to_speech(env, settings_json: str, runs=3, key: str = "s") -> tuple[list[float], float, float]:
    home = Path(env["SIGHTLINE_HOME"])
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "settings.json").write_text(settings_json)
    proc, q = _start([sys.executable, "-m", "tests.integration.app_harness", str(home / "report.json")], env)
    try:
        _wait(q, proc, "ready")
        time.sleep(3.0)  # the model (or OCR engine) loads in the background after start
        latencies = []
        for _ in range(runs):
            subprocess.run(["xdotool", "key", "ctrl+alt+shift+space"], check=True)
            time.sleep(0.2)
            t0 = time.time()
            subprocess.run(["xdotool", "key", key], check=True)
            # The answer's first sentence is the first utterance after the key; the job's end may
            # be reported before or after it.
            first = None
            finished = False
            deadline = time.monotonic() + 120
            while (first is None or not finished) and time.monotonic() < deadline:
                try:
                    event = q.get(timeout=0.5)
                except queue.Empty:
                    continue
                if "speaking" in event and first is None and event["t"] >= t0:
                    first = event["t"] - t0
                finished = finished or "finished" in event
            if first is None or not finished:
                raise RuntimeError("no answer was spoken within 120 s")
            latencies.append(first)
            time.sleep(1.0)
        return latencies, _cpu_seconds(proc.pid), _rss_mib(proc.pid)
    finally:
        _stop(proc)


def key_acknowledgement(env, runs=3) -> dict[str, list[float]]:
    """Key to the first sound of its acknowledgement, recorded at the sink (earcons on, silent speech)."""
    from tests.fixtures.sink import KeyClock, SinkRecorder

    home = Path(env["SIGHTLINE_HOME"])
    (home / "config" / "settings.json").write_text(
        json.dumps({"version": 1, "speech_driver": "silent", "earcons": True})
    )
    proc, q = _start([sys.executable, "-m", "tests.integration.app_harness", os.devnull], env)
    sink = SinkRecorder()
    clock = KeyClock()  # when each key really went down (xdotool itself takes 50-100 ms to start here)
    found: dict[str, list[float]] = {"prefix": [], "history (H)": [], "stop (X)": [], "copy (C)": []}
    try:
        _wait(q, proc, "ready")
        time.sleep(4.0)  # the first-run notice, the background load
        for _ in range(runs):
            t = time.monotonic()
            subprocess.run(["xdotool", "key", "ctrl+alt+shift+space"], check=True)
            t = clock.pressed_after(t, "space")
            onset = sink.onset_after(t, within=0.4)
            if onset is not None:
                found["prefix"].append(onset)
            for name, key in (("history (H)", "h"), ("stop (X)", "x"), ("copy (C)", "c")):
                subprocess.run(["xdotool", "key", "ctrl+alt+shift+space"], check=True)
                time.sleep(0.4)
                t = time.monotonic()
                subprocess.run(["xdotool", "key", key], check=True)
                t = clock.pressed_after(t, key)
                onset = sink.onset_after(t, within=0.5)
                if onset is not None:
                    found[name].append(onset)
                time.sleep(1.0)
        return found
    finally:
        clock.close()
        sink.close()
        _stop(proc)


def settings_open_time(env, runs=3) -> list[float]:
    """The prefix then O, to the settings window mapped on the display (xdotool search)."""
    home = Path(env["SIGHTLINE_HOME"])
    (home / "config" / "settings.json").write_text(
        json.dumps({"version": 1, "speech_driver": "silent", "earcons": False})
    )
    times = []
    for _ in range(runs):
        proc, q = _start([sys.executable, "-m", "tests.integration.app_harness", os.devnull], env)
        try:
            _wait(q, proc, "ready")
            time.sleep(3.0)
            subprocess.run(["xdotool", "key", "ctrl+alt+shift+space"], check=True)
            time.sleep(0.3)
            t0 = time.monotonic()
            subprocess.run(["xdotool", "key", "o"], check=True)
            while time.monotonic() - t0 < 30:
                found = subprocess.run(
                    ["xdotool", "search", "--onlyvisible", "--name", "Sightline settings"],
                    capture_output=True,
                    text=True,
                )
                if found.stdout.strip():
                    times.append(time.monotonic() - t0)
                    break
                time.sleep(0.01)
        finally:
            _stop(proc)
    return times


def idle(env, seconds: float) -> tuple[float, float, float]:
    proc, q = _start([sys.executable, "-m", "tests.integration.app_harness", os.devnull], env)
    try:
        _wait(q, proc, "ready")
        time.sleep(3.0)  # let the background load finish
        rss_ready = _rss_mib(proc.pid)
        c0 = _cpu_seconds(proc.pid)
        time.sleep(seconds)
        cpu = (_cpu_seconds(proc.pid) - c0) / seconds * 100
        return cpu, rss_ready, _rss_mib(proc.pid)
    finally:
        _stop(proc)


def _print_keys(med, ocr_lat, read_lat, acks, settings_open) -> None:
    print(
        f"  key to first word         describe (S) {med(ocr_lat) * 1000:6.0f} ms   "
        f"read all text (T) {med(read_lat) * 1000:6.0f} ms   (OCR default)"
    )
    for name, values in acks.items():
        if values:
            print(
                f"  key to acknowledgement    {name:12s} {med(values) * 1000:6.0f} ms median, "
                f"{max(values) * 1000:.0f} ms worst, at the sink   (goal: under 100 ms)"
            )
        else:
            print(f"  key to acknowledgement    {name:12s} nothing heard")
    if settings_open:
        print(f"  settings open time        {med(settings_open) * 1000:6.0f} ms   (goal: under 500 ms)")
    else:
        print("  settings open time        the settings window did not appear")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=30.0, help="idle window in seconds")
    parser.add_argument("--model", help="a Phi-4-multimodal folder; default: build the tiny test model")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--keys", action="store_true", help="only the key figures: first word, acknowledgement, settings"
    )
    args = parser.parse_args()

    state = start_services()
    ocr_settings = json.dumps({"version": 1, "speech_driver": "silent", "earcons": False})
    try:
        with tempfile.TemporaryDirectory(prefix="sightline-bench-home-") as home:
            env = dict(os.environ, SIGHTLINE_HOME=home, QT_QPA_PLATFORM="xcb", PYTHONUNBUFFERED="1")
            env.pop("SIGHTLINE_NO_HOTKEYS", None)
            Path(home, "config").mkdir(parents=True, exist_ok=True)
            Path(home, "config", "settings.json").write_text(ocr_settings)
            if not args.keys:
                quiet = dict(env, SIGHTLINE_NO_HOTKEYS="1")
                bare = launch_to_ready([sys.executable, "-c", BARE_TRAY], quiet, args.runs)
                ours = launch_to_ready(
                    [sys.executable, "-m", "tests.integration.app_harness", os.devnull], quiet, args.runs
                )
                cpu, rss_ready, rss_idle = idle(quiet, args.idle)

            ocr_lat, _, rss_ocr = hotkey_to_speech(env, ocr_settings, args.runs)
            read_lat, _, _ = hotkey_to_speech(env, ocr_settings, args.runs, key="t")
            acks = key_acknowledgement(env, args.runs)
            settings_open = settings_open_time(env, args.runs)
            if not args.keys:
                model_dir = args.model
                if model_dir is None:
                    from tests.fixtures.tiny_phi4 import build_tiny_phi4

                    model_dir = str(build_tiny_phi4(Path(home) / "tiny" / "Phi-4-multimodal-instruct"))
                local_lat, _, rss_local = hotkey_to_speech(
                    env,
                    json.dumps(
                        {
                            "version": 1,
                            "speech_driver": "silent",
                            "earcons": False,
                            "model_dir": model_dir,
                            "max_new_tokens": 64,
                        }
                    ),
                    args.runs,
                )
    finally:
        stop_services(state)

    med = statistics.median
    print("Sightline start-up and idle (median of runs; this machine: 2 cores, Xvfb, no GPU)")
    if args.keys:
        _print_keys(med, ocr_lat, read_lat, acks, settings_open)
        return 0
    print(
        f"  launch to tray-ready      Sightline {med(ours):6.2f} s   bare PySide6 tray {med(bare):5.2f} s"
        f"   ratio {med(ours) / med(bare):4.2f}"
    )
    print(f"  idle CPU over {args.idle:.0f} s        {cpu:6.2f} %   (goal: about 0%)")
    print(f"  idle RSS, no model loaded {rss_ready:6.0f} MiB at ready, {rss_idle:.0f} MiB after idling")
    print(
        f"  hotkey to first speech    OCR default {med(ocr_lat) * 1000:6.0f} ms   "
        f"tiny Phi-4 {med(local_lat) * 1000:6.0f} ms   ratio {med(local_lat) / med(ocr_lat):4.2f}"
    )
    print(f"  RSS after answering       OCR default {rss_ocr:6.0f} MiB   tiny Phi-4 {rss_local:6.0f} MiB")
    _print_keys(med, ocr_lat, read_lat, acks, settings_open)
    return 0


if __name__ == "__main__":
    sys.exit(main())
