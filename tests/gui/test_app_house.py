"""The tray app's seams: every command has its handler, a camera picture never holds the GUI thread,
push-to-talk as a class of its own, and the worker's typed news of who answers next."""

from __future__ import annotations

import threading
import time

import numpy as np

from app.commands import registry as commands
from app.core.types import SAMPLE_RATE, AudioInput, ModelPhase, ModelState
from app.settings.schema import Settings
from tests.gui.conftest import spoken


def _recorded_submits(app) -> list:
    seen: list = []
    submit = app.controller.worker.submit
    app.controller.worker.submit = lambda request, cancel: (seen.append(request), submit(request, cancel))
    return seen


def test_every_command_in_the_registry_has_one_handler_and_no_handler_is_extra(make_app):
    app = make_app()
    assert set(app.handlers) == set(commands.ids())
    assert all(callable(handler) for handler in app.handlers.values())


def test_the_history_command_opens_the_answer_window_on_its_history(qtbot, make_app):
    app = make_app()
    app.run_command("show_history")
    qtbot.waitUntil(app.window.isVisible, timeout=5000)
    assert app.window.focusWidget() is app.window.history  # the focus is in the list of answers


def test_an_unknown_command_is_said_not_raised(qtbot, make_app):
    app = make_app()
    app.run_command("fly_to_the_moon")
    qtbot.waitUntil(lambda: "Sightline has no command called fly_to_the_moon." in spoken(app), timeout=5000)


class _SlowCamera:
    """Stands in for app.capture.camera.capture: a camera that is slow to give its picture and,
    like the real capture between frames, stops with Cancelled once its token is set."""

    def __init__(self, monkeypatch):
        import app.capture.camera as camera

        self.started, self.ended = threading.Event(), threading.Event()
        self.thread = ""
        monkeypatch.setattr(camera, "capture", self)

    def __call__(self, source, *, document=False, cancel=None, **_kw):
        self.thread = threading.current_thread().name
        self.started.set()
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                cancel.raise_if_cancelled()
                time.sleep(0.01)
            raise AssertionError("the capture was never cancelled")
        finally:
            self.ended.set()


def test_the_camera_picture_is_taken_off_the_gui_thread_and_stop_cancels_it(qtbot, make_app, monkeypatch):
    """The camera command returns at once; Stop reaches the capture through its token, and nothing
    is described afterwards (a camera that opens slowly used to hold every key until 15 frames)."""
    camera = _SlowCamera(monkeypatch)
    app = make_app()
    submits = _recorded_submits(app)
    app.run_command("describe_camera")
    assert camera.started.wait(5)
    assert not camera.ended.is_set()  # the command returned while the camera was still being read
    assert camera.thread == "sightline-camera"
    app.run_command("stop")
    assert camera.ended.wait(2)
    qtbot.wait(200)
    assert submits == []
    assert not any("camera" in s.lower() for s in spoken(app))  # a cancelled picture is not an error


def test_another_job_cancels_a_camera_picture_still_being_taken(qtbot, make_app, monkeypatch):
    """A question asked while the camera is still being read wins: the picture, when it comes, is
    not described over it."""
    camera = _SlowCamera(monkeypatch)
    app = make_app()
    submits = _recorded_submits(app)
    app.run_command("describe_camera")
    assert camera.started.wait(5)
    app.ask_follow_up("What is on the desk?")
    assert camera.ended.wait(2)
    qtbot.wait(200)
    assert [r.question for r in submits] == ["What is on the desk?"]


def test_a_camera_picture_from_a_video_file_is_described(qtbot, make_app, tmp_path):
    from tests.fixtures.media_video import sharp_scene, still_video

    video = still_video(tmp_path / "camera.mp4", sharp_scene())
    app = make_app(camera=str(video))
    submits = _recorded_submits(app)
    app.run_command("read_document")
    qtbot.waitUntil(lambda: bool(submits), timeout=20000)
    assert submits[0].task.value == "camera_document"
    assert submits[0].image is not None and submits[0].image.source == "camera"


def test_a_camera_that_cannot_be_opened_is_said_and_the_app_goes_on(qtbot, make_app, tmp_path):
    app = make_app(camera=str(tmp_path / "no-such-camera.mp4"))
    app.run_command("describe_camera")
    qtbot.waitUntil(
        lambda: any("no-such-camera" in s or "camera" in s.lower() for s in spoken(app)), timeout=20000
    )
    assert app.controller.busy is False
    app.run_command("copy_last")  # still answering keys
    qtbot.waitUntil(lambda: "There is no answer to copy yet." in spoken(app), timeout=5000)


class _FakeRecorder:
    """Stands in for the microphone: the push-to-talk logic, not the audio, is under test here (the
    real microphone is tested in tests/integration/test_microphone.py and test_app_e2e.py)."""

    def __init__(self, fail: str | None = None):
        self.fail = fail
        self.is_recording = False
        self.aborted = False
        self.started_at: float | None = None
        self.skip_until: float | None = None

    def start(self):
        from app.core.errors import DeviceError

        if self.fail:
            raise DeviceError(self.fail)
        self.started_at = time.monotonic()
        self.is_recording = True

    def stop(self, skip_until=None):
        self.skip_until = skip_until
        self.is_recording = False
        return AudioInput(np.zeros(SAMPLE_RATE, np.float32), "microphone")

    def abort(self):
        self.aborted = True
        self.is_recording = False


class _Clip:
    def __init__(self, duration: float):
        self.duration = duration


class _Earcons:
    def __init__(self, tone: float = 0.0):
        self.tone = tone

    def play(self, _name):
        return _Clip(self.tone)


def _ptt(recorder, tone: float = 0.0):
    from app.jobs.push_to_talk import PushToTalk

    def make(on_limit):
        recorder.on_limit = on_limit
        return recorder

    ptt = PushToTalk(make, _Earcons(tone))
    heard, failed, listening = [], [], []
    ptt.heard.connect(lambda command, audio, image: heard.append((command, audio, image)))
    ptt.failed.connect(failed.append)
    ptt.listening.connect(listening.append)
    return ptt, heard, failed, listening


def test_push_to_talk_opens_the_microphone_during_the_tone_and_keeps_what_follows_it(qtbot):
    """The microphone opens at the key press, while the tone plays (a slow microphone is ready
    when it ends); the tone itself is dropped from the recording, and "listening" comes when the
    tone has ended."""
    recorder = _FakeRecorder()
    ptt, heard, failed, listening = _ptt(recorder, tone=0.3)
    pressed = time.monotonic()
    ptt.press("ask_voice")
    assert recorder.is_recording and recorder.started_at - pressed < 0.1  # open before the tone ends
    assert listening == []
    qtbot.waitUntil(lambda: listening == [True], timeout=2000)
    assert time.monotonic() - pressed >= 0.3
    ptt.release("ask_voice")
    assert len(heard) == 1 and failed == []
    assert recorder.skip_until is not None and recorder.skip_until - pressed >= 0.3


def test_push_to_talk_records_from_the_tone_until_the_key_is_let_go(qtbot):
    recorder = _FakeRecorder()
    ptt, heard, failed, listening = _ptt(recorder)
    ptt.press("ask_voice", image="picture")
    qtbot.waitUntil(lambda: listening == [True], timeout=2000)
    ptt.release("ask_screen_voice")  # another key let go: still recording
    assert recorder.is_recording and ptt.command == "ask_voice"
    ptt.release("ask_voice")
    assert [(c, i) for c, _a, i in heard] == [("ask_voice", "picture")] and failed == []
    assert ptt.command is None


def test_push_to_talk_second_press_sends_and_early_release_says_it_heard_nothing(qtbot):
    recorder = _FakeRecorder()
    ptt, heard, failed, listening = _ptt(recorder)
    ptt.press("follow_up")
    qtbot.waitUntil(lambda: listening == [True], timeout=2000)
    ptt.press("follow_up")  # pressed again: like letting go
    assert len(heard) == 1

    recorder = _FakeRecorder()
    ptt, heard, failed, _ = _ptt(recorder, tone=0.5)
    ptt.press("ask_voice")
    ptt.release("ask_voice")  # before the tone ended: nothing was said yet
    qtbot.wait(50)
    assert failed == ["I heard nothing. Hold the key while you speak, after the tone."]
    assert recorder.aborted and heard == []


def test_push_to_talk_sends_when_the_longest_recording_is_reached_while_the_key_is_held(qtbot):
    recorder = _FakeRecorder()
    ptt, heard, failed, listening = _ptt(recorder)
    notes: list[str] = []
    ptt.note.connect(notes.append)
    ptt.press("ask_voice")
    qtbot.waitUntil(lambda: listening == [True], timeout=2000)
    recorder.is_recording = False  # the recorder's limit, reported from its own thread
    threading.Thread(target=recorder.on_limit).start()
    qtbot.waitUntil(lambda: len(heard) == 1, timeout=2000)
    assert notes == ["That is as long as a question can be. Sending it."] and failed == []
    ptt.release("ask_voice")  # the key let go afterwards: nothing more happens
    assert len(heard) == 1 and failed == []


def test_push_to_talk_without_a_microphone_says_why_and_stop_drops_a_recording(qtbot):
    ptt, heard, failed, listening = _ptt(_FakeRecorder(fail="No microphone was found."))
    ptt.press("ask_voice")
    qtbot.waitUntil(lambda: failed == ["No microphone was found."], timeout=2000)
    assert listening == [False] and ptt.command is None

    recorder = _FakeRecorder()
    ptt, heard, failed, _ = _ptt(recorder)
    ptt.press("ask_voice")
    qtbot.waitUntil(lambda: recorder.is_recording, timeout=2000)
    ptt.abort()
    ptt.release("ask_voice")
    assert recorder.aborted and heard == [] and failed == []


def test_the_worker_says_who_answers_next_as_a_typed_state(qtbot):
    """A model that cannot load at start is skipped at once: the user hears why, and the state
    says the text-recognition default answers (and cannot listen), before any job runs."""
    from app.core.errors import ModelFormatError
    from app.inference.registry import BackendRegistry
    from app.jobs.worker import InferenceWorker
    from tests.fakes.scripted_backend import ScriptedBackend

    broken = ScriptedBackend(name="local")
    broken.load_error = ModelFormatError("The model folder cannot be used.")
    ocr = ScriptedBackend(name="ocr", audio=False)
    ocr._loaded = True
    registry = BackendRegistry(Settings(), factories={"local": lambda s: broken, "ocr": lambda s: ocr})
    worker = InferenceWorker(registry)
    states: list[ModelState] = []
    said: list[str] = []
    worker.state.connect(states.append)
    worker.loadFailed.connect(said.append)
    try:
        worker.preload()
        qtbot.waitUntil(lambda: bool(states) and states[-1].ready, timeout=5000)
        assert states == [
            ModelState(ModelPhase.LOADING, "local", "the local backend", listens=True),
            ModelState(ModelPhase.READY, "ocr", "the ocr backend", listens=False),
        ]
        assert said == ["The model folder cannot be used. Using the ocr backend instead."]
        assert broken.load_calls == 1
    finally:
        worker.stop()


def test_a_spoken_question_goes_to_the_offline_grammar_when_nothing_listens(qtbot, make_app):
    app = make_app()
    qtbot.waitUntil(lambda: app.model_state is not None and app.model_state.ready, timeout=60000)
    assert app.model_state.backend == "ocr" and not app.model_state.listens
    submits = _recorded_submits(app)
    app.ask_with_audio(AudioInput(np.zeros(SAMPLE_RATE, np.float32), "microphone"))
    qtbot.waitUntil(lambda: any("Without the Phi-4 model" in s for s in spoken(app)), timeout=5000)
    assert submits == []


def test_stop_during_a_quiet_transcription_drops_its_result(qtbot):
    """A spoken explore command is transcribed by a job nobody sees; Stop cancels it like any job."""
    from app.core.types import JobRequest, Task
    from app.inference.registry import BackendRegistry
    from app.jobs.controller import JobController
    from app.jobs.worker import InferenceWorker
    from app.speech.drivers.silent import SilentDriver
    from app.speech.manager import SpeechManager
    from tests.fakes.scripted_backend import ScriptedBackend

    backend = ScriptedBackend(name="local", chunks=["click ", "Save."], delay=0.3)
    worker = InferenceWorker(BackendRegistry(Settings(), factories={"local": lambda s: backend}))
    speech = SpeechManager(SilentDriver())
    controller = JobController(worker, speech)
    shown, results = [], []
    controller.answerChunk.connect(lambda job, text: shown.append(text))
    audio = AudioInput(np.zeros(SAMPLE_RATE, np.float32), "microphone")
    try:
        controller.submit_quiet(JobRequest(Task.TRANSCRIBE, audio=audio), results.append)
        qtbot.waitUntil(lambda: bool(results), timeout=5000)
        assert results[0].text == "click Save." and shown == [] and speech.driver.started == []
        results.clear()
        controller.submit_quiet(JobRequest(Task.TRANSCRIBE, audio=audio), results.append)
        qtbot.waitUntil(backend.generating.is_set, timeout=5000)
        controller.stop()
        qtbot.wait(800)
        assert results == []
    finally:
        worker.stop()
        speech.close()
