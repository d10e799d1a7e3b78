"""Runs the real Sightline tray app (app.main.run_app) on the X display, and on quit writes what a
user would have heard and seen to a JSON file: every utterance the speech spy (the silent driver)
received, the earcons, the answers in the result window, the tray state, and each request's inputs.

    python -m tests.integration.app_harness REPORT.json

Settings come from $SIGHTLINE_HOME as usual; the test writes them first (speech_driver "silent").

SIGHTLINE_HARNESS_LOAD_DELAY=SECONDS makes every backend load first sleep that long without looking
at its cancel token: a model load inside a library call that will not return early.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")


def main() -> int:
    report_path = sys.argv[1]
    from app.logging_setup import setup_logging
    from app.main import run_app

    setup_logging()
    state: dict = {"requests": []}

    def on_ready(app) -> None:
        state["app"] = app
        submit = app.controller.worker.submit

        def recording_submit(request, cancel):
            state["requests"].append(
                {
                    "job_id": request.job_id,
                    "task": request.task.value,
                    "image": None if request.image is None else [request.image.width, request.image.height],
                    "audio_seconds": None if request.audio is None else round(request.audio.duration, 3),
                    "question": request.question,
                }
            )
            return submit(request, cancel)

        app.controller.worker.submit = recording_submit
        app.qapp.aboutToQuit.connect(lambda: dump(app))
        # The speech spy's thread -> stdout: when each utterance starts (for bench/startup.py).
        driver = app.speech.driver
        speak = driver.speak

        def timed_speak(text, settings, cancel):
            emit({"speaking": text, "t": time.time()})
            return speak(text, settings, cancel)

        driver.speak = timed_speak
        c = app.controller
        c.answerFinished.connect(
            lambda job, result: emit(
                {
                    "finished": job,
                    "chars": len(result.text),
                    "backend": result.backend,
                    "error": None if result.error is None else result.error.sentence,
                }
            )
        )
        c.answerFailed.connect(lambda job, sentence: emit({"failed": job, "sentence": sentence}))
        c.answerChunk.connect(lambda job, text: emit({"chunk": job, "text": text, "t": time.time()}))
        c.stateChanged.connect(
            lambda state, detail: emit({"state": state, "detail": detail, "t": time.time()})
        )
        app.worker.state.connect(
            lambda st: emit({"model_state": st.phase.value, "backend": st.backend, "t": time.time()})
        )
        # When the microphone opens (after the start tone): a test speaks then, as a user does.
        app.ptt.listening.connect(lambda opened: emit({"recording": bool(opened), "t": time.time()}))
        delay = float(os.environ.get("SIGHTLINE_HARNESS_LOAD_DELAY", "0") or 0)
        if delay > 0:
            _slow_loads(app.worker.registry, delay)
        emit({"ready": True, "tray": app.tray.has_tray, "t": time.time()})

    lock = threading.Lock()

    def emit(obj: dict) -> None:
        # Called from the GUI thread and the speech thread: one whole line at a time.
        line = json.dumps(obj) + "\n"
        # sys.__stdout__, not sys.stdout: a speech engine may swap sys.stdout out for a while (the
        # pyttsx3 driver hides the engine's own prints that way), and a line must never be lost.
        with lock:
            sys.__stdout__.write(line)
            sys.__stdout__.flush()

    def dump(app) -> None:
        spy = app.speech.driver
        result = app.controller.last_result
        data = {
            "driver": app.speech.driver_name,
            "spoken_started": list(getattr(spy, "started", [])),
            "earcons": list(app.earcons.played),
            "tray_state": app.tray.state,
            "answers": [{"title": r.title, "text": r.text, "error": r.error} for r in app.window.records],
            "requests": state["requests"],
            "last_tokens_in": result.tokens_in if result else None,
            "last_backend": result.backend if result else None,
        }
        with open(report_path, "w", encoding="utf-8") as f:
            json.dump(data, f)

    def _slow_loads(registry, seconds: float) -> None:
        get = registry.get

        def slow_get(name):
            backend = get(name)
            if not getattr(backend, "_harness_slowed", False):
                load = backend.load

                def slow_load(cancel):
                    emit({"loading": name, "t": time.time()})
                    time.sleep(seconds)  # deaf to the cancel token, like a long library call
                    return load(cancel)

                backend.load = slow_load
                backend._harness_slowed = True
            return backend

        registry.get = slow_get

    code = run_app([sys.argv[0]], on_ready=on_ready)
    print(json.dumps({"exit": code}), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
