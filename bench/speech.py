"""Speech latency, measured at the sink.

For espeak-ng and pyttsx3, through the real SpeechManager and AudioPlayer into a private
PulseAudio null sink whose monitor is recorded with parec:
  1. first sentence ready -> first audio sample at the sink  (goal < 100 ms)
  2. Stop -> silence at the sink                              (goal < 100 ms)
Times come from the recorded samples; the recording path's own latency is included, so the
figures are upper bounds. Run: source /tmp/svc/env; .venv/bin/python bench/speech.py [--trials N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.speech.drivers.espeak import EspeakDriver  # noqa: E402
from app.speech.drivers.pyttsx3_driver import Pyttsx3Driver  # noqa: E402
from app.speech.manager import SpeechManager  # noqa: E402
from app.speech.playback import AudioPlayer  # noqa: E402
from tests.support.measure import MonitorRecorder, PrivateSink  # noqa: E402

GOAL_MS = 100.0
ANSWER = (
    "The screen shows a settings window with three tabs. The first tab is selected and lists the "
    "display options, including brightness, contrast and the size of the text."
)
LONG = (
    "This sentence is long enough to keep talking for several seconds, so that stopping it in the "
    "middle leaves a clear and measurable end to the sound that was recorded from the sink."
)


def wait_audible(player: AudioPlayer, step: float):
    """The speech clip once its first samples were played (None after 10 s)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        clip = player.current_speech
        if clip is not None and clip.first_sample_time is not None:
            return clip
        time.sleep(step)
    return None


def first_audio_trial(manager: SpeechManager, player: AudioPlayer) -> tuple[float, float]:
    """Streams ANSWER in small chunks; returns (first sentence ready, its first samples played)."""
    answer = manager.answer_stream(job_id=object())
    t_ready = None
    for i in range(0, len(ANSWER), 6):
        t = time.monotonic()
        if answer.feed(ANSWER[i : i + 6]) and t_ready is None:
            t_ready = t
    answer.finish()
    clip = wait_audible(player, 0.001)
    callback_at = clip.first_sample_time if clip is not None else float("nan")
    time.sleep(0.6)
    manager.stop()
    manager.wait_idle(10)
    return t_ready, callback_at


def stop_trial(manager: SpeechManager, player: AudioPlayer) -> float:
    manager.speak(LONG)
    wait_audible(player, 0.005)
    time.sleep(0.8)
    t_stop = time.monotonic()
    manager.stop()
    manager.wait_idle(10)
    return t_stop


def fmt(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"median {statistics.median(values):6.1f} ms  max {max(values):6.1f} ms"


def bench_driver(kind: str, trials: int) -> dict:
    with PrivateSink() as sink:
        player = AudioPlayer()
        driver = EspeakDriver(player=player) if kind == "espeak" else Pyttsx3Driver(player=player)
        ok, reason = driver.check()
        if not ok:
            player.close()
            return {"kind": kind, "error": reason}
        rec = MonitorRecorder(sink.monitor).start()
        ready_marks, stop_marks = [], []
        with SpeechManager(driver) as manager:
            # Cold: the first sentence opens the audio device (and starts the engine for pyttsx3).
            cold = first_audio_trial(manager, player)
            time.sleep(0.4)
            for _ in range(trials):
                ready_marks.append(first_audio_trial(manager, player))
                time.sleep(0.4)
            for _ in range(trials):
                stop_marks.append(stop_trial(manager, player))
                time.sleep(0.5)
        recording = rec.stop()
        player.close()

    def first_ms(mark):
        t_ready, _ = mark
        heard = recording.first_sound(after=t_ready)
        return 1000 * (heard - t_ready) if heard is not None else float("nan")

    def callback_ms(mark):
        t_ready, t_cb = mark
        return 1000 * (t_cb - t_ready)

    stops = []
    for t_stop in stop_marks:
        # The next sentence starts at least 0.5 s after Stop; look at the sound up to then.
        last = recording.last_sound_between(t_stop - 0.5, t_stop + 0.45)
        stops.append(1000 * (last - t_stop) if last is not None else float("nan"))
    return {
        "kind": kind,
        "cold": first_ms(cold),
        "first": [first_ms(m) for m in ready_marks],
        "callback": [callback_ms(m) for m in ready_marks],
        "stop": stops,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    results = [bench_driver(kind, args.trials) for kind in ("espeak", "pyttsx3")]
    print(f"Speech latency at the sink, {args.trials} warm trials each (goal < {GOAL_MS:.0f} ms)")
    print()
    for r in results:
        if "error" in r:
            print(f"{r['kind']:8s} skipped: {r['error']}")
            continue
        first, stop = r["first"], r["stop"]
        print(f"{r['kind']:8s} sentence ready -> first audio at sink : {fmt(first)}   goal {GOAL_MS:.0f} ms"
              f"   ratio {statistics.median(first) / GOAL_MS:4.2f}")  # fmt: skip
        print(f"{'':8s}   of which ready -> first samples played: {fmt(r['callback'])}")
        print(f"{'':8s}   cold start (device open{', engine start' if r['kind'] == 'pyttsx3' else ''}):"
              f" {r['cold']:6.1f} ms")  # fmt: skip
        print(f"{'':8s} Stop -> silence at sink                : {fmt(stop)}   goal {GOAL_MS:.0f} ms"
              f"   ratio {statistics.median(stop) / GOAL_MS:4.2f}")  # fmt: skip
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
