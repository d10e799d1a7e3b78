"""JobController + InferenceWorker (a real QThread) with a scripted backend and the silent speech spy."""

from __future__ import annotations

import threading
import time

import pytest

from app.core.errors import ServerError
from app.core.types import JobRequest, Task
from app.inference.registry import BackendRegistry
from app.jobs.controller import JobController
from app.jobs.worker import InferenceWorker
from app.settings.schema import Settings
from app.speech.drivers.silent import SilentDriver
from app.speech.manager import SpeechManager
from tests.fakes.scripted_backend import ScriptedBackend


class EarconSpy:
    def __init__(self):
        self.played = []
        self.working = False

    def play(self, name):
        self.played.append(name)

    def start_working(self):
        self.working = True

    def stop_working(self):
        self.working = False


@pytest.fixture
def rig(qtbot):
    backend = ScriptedBackend(name="local", chunks=["First sentence. ", "Second ", "sentence."])
    registry = BackendRegistry(Settings(), factories={"local": lambda s: backend})
    worker = InferenceWorker(registry)
    spy = SilentDriver()
    speech = SpeechManager(spy)
    earcons = EarconSpy()
    controller = JobController(worker, speech, earcons)
    chunks, finished, failed = [], [], []
    controller.answerChunk.connect(lambda job, text: chunks.append((job, text)))
    controller.answerFinished.connect(lambda job, result: finished.append((job, result)))
    controller.answerFailed.connect(lambda job, sentence: failed.append((job, sentence)))
    yield backend, controller, spy, speech, earcons, chunks, finished, failed
    worker.stop()
    speech.close()


def _q(text="q"):
    return JobRequest(Task.ASK_SPOKEN, question=text)


def test_streams_to_window_and_speech(qtbot, rig):
    backend, controller, spy, speech, earcons, chunks, finished, failed = rig
    job = controller.submit(_q(), "Question")
    qtbot.waitUntil(lambda: bool(finished), timeout=5000)
    assert [t for j, t in chunks if j == job] == ["First sentence. ", "Second ", "sentence."]
    assert speech.wait_idle(5)
    assert spy.spoken == ["First sentence.", "Second sentence."]
    assert earcons.played == ["start", "done"] and not earcons.working
    assert controller.last_answer == "First sentence. Second sentence."
    assert controller.first_speech_latency is not None and not failed


def test_new_job_supersedes_and_late_chunks_are_dropped(qtbot, rig):
    backend, controller, spy, speech, earcons, chunks, finished, failed = rig
    backend.chunks = [f"Old part {i}. " for i in range(50)]
    backend.delay = 0.05
    old = controller.submit(_q("old"), "Old")
    qtbot.waitUntil(lambda: any(j == old for j, _ in chunks), timeout=5000)
    backend.chunks = ["New answer."]
    backend.delay = 0.0
    new = controller.submit(_q("new"), "New")
    qtbot.waitUntil(lambda: any(j == new for j, _ in finished), timeout=5000)
    qtbot.wait(200)  # anything the old job still had in flight arrives now, and must be ignored
    old_chunks = [t for j, t in chunks if j == old]
    assert 0 < len(old_chunks) < 50  # it was cut off, not run to the end
    assert [j for j, _ in finished] == [new]  # the old job's end is not reported as an answer
    assert controller.last_answer == "New answer."
    assert speech.wait_idle(5)
    assert "New answer." in spy.spoken
    assert not any(s.startswith("Old part 4") for s in spy.spoken)


def test_queued_job_is_dropped_without_running(qtbot, rig):
    backend, controller, spy, speech, earcons, chunks, finished, failed = rig
    backend.gate = threading.Event()
    controller.submit(_q("one"), "One")
    assert backend.generating.wait(5)  # one is in the worker, stuck in a long step
    controller.submit(_q("two"), "Two")  # queued behind one...
    three = controller.submit(_q("three"), "Three")  # ...and superseded before it could start
    backend.gate.set()
    qtbot.waitUntil(lambda: any(j == three for j, _ in finished), timeout=10000)
    assert [r.question for r in backend.requests] == ["one", "three"]


def test_stop_is_immediate_and_silences(qtbot, rig):
    backend, controller, spy, speech, earcons, chunks, finished, failed = rig
    backend.chunks = [f"Sentence {i}. " for i in range(100)]
    backend.delay = 0.05
    controller.submit(_q(), "Long")
    qtbot.waitUntil(lambda: len(chunks) >= 2, timeout=5000)
    controller.stop()
    assert not controller.busy
    n = len(chunks)
    qtbot.wait(300)
    assert len(chunks) == n  # nothing more is shown after Stop
    assert speech.wait_idle(2)
    assert not failed


class DeafDrip(ScriptedBackend):
    """A stream that keeps dripping words after its cancel token is set, as a stalled server or a
    long library call does: whatever the backend does, Stop must not wait for it."""

    def generate(self, request, cancel):
        self.requests.append(request)
        for chunk in self.chunks:
            time.sleep(self.delay)
            yield chunk


def test_stop_never_waits_for_a_backend_that_ignores_it(qtbot):
    backend = DeafDrip(name="local", chunks=[f"Word {i}. " for i in range(12)], delay=0.05)
    registry = BackendRegistry(Settings(), factories={"local": lambda s: backend})
    worker = InferenceWorker(registry)
    spy = SilentDriver(seconds_per_char=0.01)  # each sentence takes a while to say
    speech = SpeechManager(spy)
    controller = JobController(worker, speech, EarconSpy())
    chunks, states, finished = [], [], []
    controller.answerChunk.connect(lambda job, text: chunks.append((job, text)))
    controller.stateChanged.connect(lambda state, detail: states.append(state))
    controller.answerFinished.connect(lambda job, result: finished.append(job))
    try:
        job = controller.submit(_q(), "Dripping")
        qtbot.waitUntil(lambda: len(chunks) >= 2, timeout=5000)
        qtbot.waitUntil(lambda: bool(spy.started), timeout=5000)
        started = time.perf_counter()
        controller.stop()
        took = time.perf_counter() - started
        assert took < 0.1 and states[-1] == "idle" and not controller.busy  # told at once
        shown, heard = len(chunks), len(spy.started)
        qtbot.wait(900)  # the backend drips on for the rest of its words
        assert len(chunks) == shown  # no late word is shown...
        assert len(spy.started) == heard  # ...or spoken
        assert speech.wait_idle(1)
        assert job not in finished  # and the stopped job does not report an answer later
        # The next job runs once the deaf backend has let go of the worker.
        backend.chunks, backend.delay = ["Next answer."], 0.0
        nxt = controller.submit(_q("next"), "Next")
        qtbot.waitUntil(lambda: nxt in finished, timeout=5000)
    finally:
        assert worker.stop(timeout_ms=5000)
        speech.close()


def test_failure_becomes_a_spoken_sentence(qtbot, rig):
    backend, controller, spy, speech, earcons, chunks, finished, failed = rig
    backend.fail_after = 0
    backend.error = ServerError("The Sightline server is not answering.")
    job = controller.submit(_q(), "Question")
    qtbot.waitUntil(lambda: bool(failed), timeout=5000)
    assert failed == [(job, "The Sightline server is not answering.")]
    assert speech.wait_idle(5)
    assert spy.spoken[-1] == "The Sightline server is not answering."
    assert earcons.played[-1] == "error"


def test_partial_answer_is_kept_and_spoken_before_the_error(qtbot, rig):
    backend, controller, spy, speech, earcons, chunks, finished, failed = rig
    backend.chunks = ["The first part arrived. ", "More"]
    backend.fail_after = 1
    backend.error = ServerError("The server failed in the middle of the answer.")
    controller.submit(_q(), "Question")
    qtbot.waitUntil(lambda: bool(failed), timeout=5000)
    assert speech.wait_idle(5)
    assert spy.spoken == ["The first part arrived.", "The server failed in the middle of the answer."]
    assert controller.last_answer == "The first part arrived. "


def test_an_answer_of_only_special_tokens_is_said_not_silent(qtbot, rig):
    # A model that emits only special tokens (or a server that sends only whitespace and escapes):
    # the user hears a sentence and the error sound, never silence after "done".
    backend, controller, spy, speech, earcons, chunks, finished, failed = rig
    backend.chunks = ["  ", "\x1b[0m", "\n"]
    job = controller.submit(_q(), "Question")
    qtbot.waitUntil(lambda: bool(failed), timeout=5000)
    assert failed == [(job, "The model gave no answer.")]
    assert speech.wait_idle(5)
    assert spy.spoken[-1] == "The model gave no answer."
    assert earcons.played[-1] == "error"


def test_a_model_that_cannot_load_hands_over_and_the_user_hears_why(qtbot):
    from app.core.errors import ModelFormatError

    broken = ScriptedBackend(name="local", chunks=["never"])
    broken.load_error = ModelFormatError("The model folder cannot be used.")
    ocr = ScriptedBackend(name="ocr", chunks=["Text on the screen."])
    registry = BackendRegistry(Settings(), factories={"local": lambda s: broken, "ocr": lambda s: ocr})
    worker = InferenceWorker(registry)
    said: list[str] = []
    worker.loadFailed.connect(said.append)
    speech = SpeechManager(SilentDriver())
    controller = JobController(worker, speech, EarconSpy())
    finished = []
    controller.answerFinished.connect(lambda job, result: finished.append(result))
    try:
        controller.submit(_q(), "Question")
        qtbot.waitUntil(lambda: bool(finished), timeout=5000)
        assert finished[0].text == "Text on the screen." and finished[0].backend == "ocr"
        assert len(said) == 1 and said[0].startswith("The model folder cannot be used.")
        assert "instead" in said[0]
    finally:
        worker.stop()
        speech.close()
