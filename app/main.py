"""Composition root: builds the services, wires the signals, runs Qt.

The tray appears at once; the model loads in the background on the inference worker. Quitting
from the menu, SIGINT, SIGTERM and the desktop session ending all take the same path
(SightlineApp.shutdown): the worker joined, the microphone released, speech closed, exit code 0.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QApplication

from app.core.errors import SightlineError
from app.core.types import Bounds, Detail, JobRequest, ModelState, Task
from app.inference.registry import BackendRegistry
from app.jobs.controller import JobController
from app.jobs.worker import InferenceWorker
from app.settings.schema import Settings
from app.speech.manager import Priority

if TYPE_CHECKING:  # imported when first used, so the tray appears at once
    from app.commands.voice import VoiceCommandRecognizer
    from app.jobs.watch import WatchController
    from app.ui.explore import ExploreController
    from app.ui.region_selector import RegionSelector

log = logging.getLogger(__name__)

# Quit, from the menu or a signal, ends the process within 2 s whatever the model or server does.
QUIT_BUDGET_S = 1.5  # for SightlineApp.shutdown
WORKER_JOIN_S = 1.0  # of that, the longest wait for the inference thread
QUIT_DEADLINE_S = 1.8  # after this, the quit watchdog ends the process (exit 0, logs flushed)


def _instance_name() -> str:
    """One Sightline per user and settings folder (a portable or test SIGHTLINE_HOME is its own)."""
    import hashlib

    from app import paths

    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    digest = hashlib.sha1(str(paths.config_dir()).encode()).hexdigest()[:10]
    return f"sightline-{user}-{digest}"


def _make_speech(settings: Settings, earcons):
    from app.speech.drivers.base import VoiceSettings
    from app.speech.manager import SpeechManager
    from app.speech.service import pick_for_output

    driver, fallbacks = pick_for_output(settings.output_mode, settings.speech_driver)
    voice = VoiceSettings(rate_wpm=settings.rate, voice=settings.voice, volume=settings.volume)
    rule = _long_text_rule(settings)
    return SpeechManager(driver, fallbacks=fallbacks, settings=voice, earcons=earcons, rule=rule)


def _long_text_rule(settings: Settings):
    """The short form of long answers ends by saying how to hear the rest."""
    from app.speech.manager import FULL_ANSWER_NOTE, LongTextRule

    try:
        from app.commands.keymap import effective_keys, key_label, parse_key

        key = effective_keys(settings.command_keys).get("continue_reading", "")
        label = key_label(parse_key(key)) if key.strip() else ""
    except Exception:  # a hand-edited key that does not parse: the note without the key
        label = ""
    if not label:
        return LongTextRule()
    return LongTextRule(note=f"{FULL_ANSWER_NOTE} To hear the rest, press the prefix key, then {label}.")


class SightlineApp(QObject):
    """Owns every long-lived object of the tray app."""

    def __init__(self, qapp: QApplication, settings: Settings, notice: str | None = None):
        super().__init__()
        from app.jobs.push_to_talk import PushToTalk
        from app.jobs.tasks import TaskRunner
        from app.speech.earcons import Earcons
        from app.ui.model_setup import ModelSetup
        from app.ui.result_window import ResultWindow
        from app.ui.theme import apply_theme
        from app.ui.tray import Tray

        self.qapp = qapp
        self.settings = settings
        self._shutting_down = False
        self._explore: ExploreController | None = None
        self._watch: WatchController | None = None
        self._voice: VoiceCommandRecognizer | None = None
        self._selector: RegionSelector | None = None
        #: the backend that answers next, as the worker last said (None until it says)
        self.model_state: ModelState | None = None

        apply_theme(qapp, settings.result_font_size, settings.high_contrast)
        self.earcons = Earcons(enabled=settings.earcons, volume=settings.volume)
        self.speech = _make_speech(settings, self.earcons)
        self.worker = InferenceWorker(BackendRegistry(settings))
        self.controller = JobController(self.worker, self.speech, self.earcons)
        self.controller.speak_answers = settings.output_mode != "text"
        self.tasks = TaskRunner(self)
        self.ptt = PushToTalk(self._make_recorder, self.earcons, self)
        self.handlers = self._command_handlers()

        self.window = ResultWindow(font_pt=settings.result_font_size, high_contrast=settings.high_contrast)
        self.tray = Tray(key_for=self._key_label)
        self.model_setup = ModelSetup(
            lambda: self.settings,
            self.say,
            self.earcons,
            self.tray,
            self.tasks,
            lambda: self.worker.preload(),
            self,
        )
        self._wire()
        self._wire_worker()
        self._start_hotkeys()
        try:
            from app.ui import qt_grab

            qt_grab.install()
        except Exception:  # the fallback grabber is optional: mss works on X11, Windows, macOS
            log.exception("Qt screen grab fallback not installed")
        from app.ui import own_windows

        own_windows.install()  # captures never include Sightline's own windows

        self.say("Sightline is ready.", Priority.NEXT)
        if notice:
            self.say(notice, Priority.NEXT)
        QTimer.singleShot(0, self._first_run_and_preload)

    def _command_handlers(self) -> dict[str, Callable[[], None]]:
        """Every command of app.commands.registry, and what runs it (a test checks the two match)."""
        return {
            "describe_screen": self.cmd_describe_screen,
            "describe_window": self.cmd_describe_window,
            "describe_region": self.cmd_describe_region,
            "describe_pointer": self.cmd_describe_pointer,
            "read_text": self.cmd_read_text,
            "explore": lambda: self._explorer().start(),
            "explore_region": lambda: self._explorer().start_region(),
            "watch": self.cmd_watch,
            "ask_screen_voice": lambda: self.press_voice_key("ask_screen_voice"),
            "ask_voice": lambda: self.press_voice_key("ask_voice"),
            "describe_camera": lambda: self.take_camera_picture(document=False),
            "read_document": lambda: self.take_camera_picture(document=True),
            "follow_up": self.cmd_follow_up,
            "repeat_last": self.cmd_repeat_last,
            "continue_reading": self.cmd_continue_reading,
            "next_paragraph": lambda: self._move_paragraph(+1),
            "previous_paragraph": lambda: self._move_paragraph(-1),
            "stop": self.cmd_stop,
            "copy_last": self.cmd_copy_last,
            "show_history": lambda: self.window.show_history(),
            "help": self.cmd_help,
            "settings": self.cmd_settings,
            "quit": self.qapp.quit,
        }

    # -- wiring ----------------------------------------------------------------------------------

    def _wire(self) -> None:
        c, w = self.controller, self.window
        self.tray.commandTriggered.connect(self.run_command)

        def started(job: int, title: str) -> None:
            w.begin_answer(job, title)
            w.present(activate=False)

        c.answerStarted.connect(started)
        c.answerChunk.connect(w.append_chunk)
        c.answerFinished.connect(lambda job, result: w.finish_answer(job, result.backend_display))
        c.answerFailed.connect(w.show_error)
        c.stateChanged.connect(self.tray.set_state)
        w.followUpRequested.connect(self.ask_follow_up)
        w.stopRequested.connect(c.stop)
        w.copied.connect(lambda _text: self.say("Copied.", Priority.NOW))
        self.ptt.heard.connect(self._on_heard)
        self.ptt.failed.connect(self.controller.report_error)
        self.ptt.note.connect(lambda sentence: self.say(sentence, Priority.NOW))

    def _wire_worker(self) -> None:
        """The worker's news (after start, and after the engine settings made a new worker)."""
        self.worker.state.connect(self._on_model_state)
        self.worker.loadFailed.connect(self.model_setup.on_load_failed)

    def _key_label(self, command_id: str) -> str:
        try:
            from app.commands.keymap import effective_keys

            key = effective_keys(self.settings.command_keys).get(command_id, "")
            return f"{self.settings.hotkey_prefix}, {key}" if key else ""
        except Exception:
            return ""

    def _start_hotkeys(self) -> None:
        self.hotkeys = None
        if os.environ.get("SIGHTLINE_NO_HOTKEYS"):
            return
        try:
            from app.commands.hotkeys import HotkeyBridge
            from app.commands.keymap import bindings_from_settings

            self.hotkeys = HotkeyBridge(parent=self)
            # Every key is heard at once: a note for the prefix, a low note when it gives up.
            self.hotkeys.armed.connect(lambda: self.earcons.play("prefix"))
            self.hotkeys.cancelled.connect(lambda _reason: self.earcons.play("cancel"))
            self.hotkeys.activated.connect(self._on_key_command)
            self.hotkeys.released.connect(self.ptt.release)
            self.hotkeys.unknown_key.connect(self._on_unknown_key)
            self.hotkeys.unavailable.connect(lambda sentence: self.say(sentence, Priority.NEXT))
            self.hotkeys.start(bindings_from_settings(self.settings))
        except SightlineError as exc:
            self.say(exc.sentence, Priority.NEXT)
        except Exception:
            log.exception("global keys could not start")
            self.say("Global keys could not start; use the tray menu.", Priority.NEXT)

    def _on_unknown_key(self, key: str) -> None:
        self.earcons.play("error")
        self.say(f"No command on {key}. Press the prefix again, then a command key.", Priority.NOW)

    def say(self, sentence: str, priority: Priority = Priority.NEXT) -> None:
        self.controller.announce(sentence, priority)

    # -- the model's news -------------------------------------------------------------------------

    def _first_run_and_preload(self) -> None:
        self.model_setup.first_start()
        self.worker.preload()

    @Slot(object)
    def _on_model_state(self, state: ModelState) -> None:
        log.info("model: %s %s", state.phase.value, state.display_name)
        self.model_state = state
        self.model_setup.on_state(state)

    # -- commands --------------------------------------------------------------------------------

    def _common(self) -> dict:
        s = self.settings
        return {
            "language": s.response_language,
            "detail": Detail(s.detail),
            "max_new_tokens": s.max_new_tokens,
        }

    @Slot(str)
    def _on_key_command(self, command_id: str) -> None:
        """From the global keys: the follow-up key is push-to-talk (from the menu it is typed).

        Every key is acknowledged at once, before any work: a push-to-talk key by its start tone,
        every other key by a click (History, Settings and Quit would otherwise be silent, and a
        camera may take a moment before the start tone)."""
        from app.commands.registry import find

        command = find(command_id)
        if command is None or not command.push_to_talk:
            clip = self.earcons.play("key")
            if command_id == "quit" and clip is not None:
                # Let the click be heard before the audio closes.
                QTimer.singleShot(int(clip.duration * 1000) + 60, lambda: self.run_command("quit"))
                return
        if command_id == "follow_up":
            self.run_guarded(lambda: self.press_voice_key("follow_up"))
        else:
            self.run_command(command_id)

    def cmd_help(self) -> None:
        """Says the keys (as the user set them), the spoken commands, and how to get the model."""
        from app.commands.keymap import effective_keys, parse_chord
        from app.commands.registry import help_sentences
        from app.commands.voice import ADVERTISED_PHRASES
        from app.ui.model_setup import NOT_INSTALLED

        try:
            prefix = parse_chord(self.settings.hotkey_prefix).label()
        except Exception:
            prefix = self.settings.hotkey_prefix
        model_missing = self.model_setup.missing()
        sentences = help_sentences(
            prefix,
            effective_keys(self.settings.command_keys),
            ADVERTISED_PHRASES if model_missing else (),
        )
        if model_missing:
            sentences.append(NOT_INSTALLED)
        self.speech.stop()
        for sentence in sentences:
            self.say(sentence, Priority.NORMAL)

    @Slot(str)
    def run_command(self, command_id: str) -> None:
        """Every command, from the tray, a hotkey or a spoken command, comes through here."""
        log.info("command %s", command_id)
        handler = self.handlers.get(command_id)
        if handler is None:
            self.controller.report_error(f"Sightline has no command called {command_id}.")
            return
        try:
            handler()
        except SightlineError as exc:
            self.controller.report_error(exc.sentence)
        except Exception as exc:
            log.exception("command %s failed", command_id)
            self.controller.report_error(
                f"That did not work ({type(exc).__name__}). "
                "Sightline is still running; the details are in the log."
            )

    def run_guarded(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except SightlineError as exc:
            self.controller.report_error(exc.sentence)

    def _describe(self, image, title: str, task: Task = Task.DESCRIBE_BRIEF) -> int:
        if image.note:
            self.say(image.note, Priority.NEXT)
        return self.controller.submit(JobRequest(task=task, image=image, **self._common()), title)

    def cmd_describe_screen(self) -> None:
        from app.capture import screen

        # capture_screen() with no monitor takes the one under the pointer, where the user works.
        self._describe(screen.capture_screen(), "Describe the screen")

    def cmd_describe_window(self) -> None:
        from app.capture import screen

        self._describe(screen.capture_active_window(), "Describe the active window")

    def cmd_describe_pointer(self) -> None:
        from app.capture import screen

        self._describe(screen.capture_pointer(self.settings.pointer_box), "Describe what is under the mouse")

    def cmd_read_text(self) -> None:
        from app.capture import screen

        image = screen.capture_screen()  # the monitor under the pointer
        job_id = self._describe(image, "Read all text", Task.READ_TEXT)
        # Say-all: every line is read, continuously, until the end or Stop (no short form).
        self.speech.read_in_full(job_id)

    def _select_region(self, on_chosen: Callable[[int, int, int, int], object], area=None) -> None:
        """The region selector, starting on `area` (else in the middle of the monitor under the
        pointer); `on_chosen(x, y, w, h)` runs once its overlay has left the screen, so the chosen
        part is captured without it."""
        from app.ui.region_selector import selector_on

        selector = selector_on(
            area, lambda text: self.say(text, Priority.NOW), font_pt=self.settings.result_font_size
        )
        selector.regionSelected.connect(
            lambda x, y, w, h: QTimer.singleShot(150, lambda: self.run_guarded(lambda: on_chosen(x, y, w, h)))
        )
        selector.cancelled.connect(lambda: self.say("Cancelled.", Priority.NOW))
        self._selector = selector
        selector.start()

    def cmd_describe_region(self) -> None:
        from app.capture import screen

        self._select_region(
            lambda x, y, w, h: self._describe(screen.capture_region(x, y, w, h), "Describe a region")
        )

    def _describe_item(self, image) -> None:
        self._describe(image, "Describe the item")

    def _explorer(self) -> ExploreController:
        """The explore mode (app/ui/explore.py), made on first use."""
        from app.ui.explore import ExploreController

        if self._explore is None:
            self._explore = ExploreController(
                lambda text: self.say(text, Priority.NOW),
                self.controller.report_error,
                describe=self._describe_item,
                font_pt=self.settings.result_font_size,
                parent=self,
            )
        return self._explore

    def cmd_watch(self) -> None:
        """Stop the watch that runs; else choose what to watch: the region selector opens on the
        active window, so Enter watches the window and the arrows make it a region."""
        from app.capture import screen as capture
        from app.jobs.watch import WatchController
        from app.ui.own_windows import own_window_rects
        from app.ui.region_selector import active_window_area

        if self._watch is None:
            self._watch = WatchController(
                lambda text: self.say(text, Priority.NORMAL), own_windows=own_window_rects, parent=self
            )
        watch = self._watch
        if watch.active:
            watch.stop()
            return
        area = active_window_area()  # Enter alone watches the window
        window = None if area is None else (area.x, area.y, area.width, area.height)

        def start(x: int, y: int, w: int, h: int) -> None:
            image = capture.capture_region(x, y, w, h)  # clipped to the screen, or a sentence
            b = image.bounds or Bounds(x, y, image.width, image.height)
            what = "the window" if (x, y, w, h) == window else "the region"
            watch.start((b.x, b.y, b.width, b.height), what)

        self._select_region(start, area)

    def take_camera_picture(self, document: bool) -> None:
        """The camera's picture is taken off the GUI thread (opening a camera and reading its
        frames takes a second or more), then described. It is the controller's work in progress
        from the key press on, so Stop or any other job cancels it."""
        from app.capture.camera import capture
        from app.jobs.tasks import failure_sentence

        token = self.controller.begin_capture("Taking a picture")
        source = self.settings.camera

        def done(image) -> None:
            if not token.cancelled:
                task = Task.CAMERA_DOCUMENT if document else Task.CAMERA_SCENE
                self._describe(image, "Read a document" if document else "Describe the camera view", task)

        def failed(exc: BaseException) -> None:
            if not token.cancelled:
                self.controller.report_error(failure_sentence(exc, "The camera picture"))

        self.tasks.run(
            lambda: capture(int(source) if source.isdigit() else source, document=document, cancel=token),
            done,
            failed,
            name="sightline-camera",
        )

    # -- voice: push-to-talk (app/jobs/push_to_talk.py) --------------------------------------------

    def _make_recorder(self, on_limit: Callable[[], None]):
        from app.capture.microphone import Recorder

        return Recorder.from_settings(self.settings, on_limit=on_limit)

    def press_voice_key(self, command_id: str) -> None:
        """A voice key went down (or was chosen in the menu): record until it is let go."""
        if self.ptt.command is not None:
            self.ptt.finish()  # a second press sends, like letting go
            return
        image = None
        if command_id == "ask_screen_voice" and not self._exploring():
            from app.capture import screen

            image = screen.capture_screen()  # the monitor under the pointer
        self.controller.stop()
        self.ptt.press(command_id, image)

    def _exploring(self) -> bool:
        return self._explore is not None and self._explore.active

    @Slot(str, object, object)
    def _on_heard(self, command_id: str, audio, image) -> None:
        if self._exploring():
            self.act_in_explore(audio)
        elif command_id == "follow_up":
            self.ask_follow_up(audio=audio)
        else:
            self.ask_with_audio(audio, image)

    def act_in_explore(self, audio) -> None:
        """A spoken explore command ("click Save"): heard by the model when it listens, else by the
        offline grammar made of the words on the explored screen."""
        explore = self._explorer()
        if self._can_listen():

            def heard(result) -> None:
                if result.error is not None:
                    self.controller.report_error(result.error.sentence)
                else:
                    explore.act_on_phrase(result.text)

            self.controller.submit_quiet(JobRequest(task=Task.TRANSCRIBE, audio=audio), heard)
            return
        from app.commands.voice import VoiceCommandRecognizer, recognize_explore_phrase
        from app.jobs.tasks import failure_sentence

        if self._voice is None:
            self._voice = VoiceCommandRecognizer()
        voice, labels = self._voice, explore.labels()

        def heard_offline(phrase: str | None) -> None:
            if phrase is None:
                self.controller.report_error("I did not catch that. Say click, then the words of an item.")
                return
            # The grammar puts any speech onto the screen's words (an unrelated sentence can come
            # out as "click open"), so without the model it only goes to the item and says how to
            # click it.
            explore.act_on_phrase(phrase, confirm=True)

        self.tasks.run(
            lambda: recognize_explore_phrase(audio, labels, voice),
            heard_offline,
            lambda exc: self.controller.report_error(failure_sentence(exc, "Listening")),
            name="sightline-voice",
        )

    def ask_with_audio(self, audio, image=None) -> None:
        """A spoken question, with or without a picture of the screen."""
        task = Task.ASK_IMAGE if image is not None else Task.ASK_SPOKEN
        request = JobRequest(task=task, image=image, audio=audio, **self._common())
        if not self._can_listen():
            self._spoken_command(audio)
            return
        self.controller.submit(request, "Spoken question about the screen" if image else "Spoken question")

    def _can_listen(self) -> bool:
        """The worker said a backend that hears speech answers next (the model, or a server)."""
        return self.model_state is not None and self.model_state.listens

    def _spoken_command(self, audio) -> None:
        """Without the model: a few spoken commands through the offline grammar."""
        from app.commands.voice import OPEN_QUESTION_NEEDS_MODEL, VoiceCommandRecognizer

        if self._voice is None:
            self._voice = VoiceCommandRecognizer()
        match = self._voice.recognize(audio) if self._voice.available() else None
        if match is None:
            self.controller.report_error(OPEN_QUESTION_NEEDS_MODEL)
            return
        self.say(f"Heard: {match.heard}.", Priority.NOW)
        self.run_command(match.command_id)

    # -- answers -----------------------------------------------------------------------------------

    def cmd_follow_up(self) -> None:
        self.window.present(activate=True)
        self.window.question.setFocus()
        self.say("Type your follow-up question and press Enter.", Priority.NOW)

    @Slot(str)
    def ask_follow_up(self, question: str | None = None, audio=None) -> None:
        """A typed or spoken question about the last picture, with the conversation so far."""
        conv = self.controller.conversation
        task = Task.ASK_IMAGE if conv.image is not None else Task.ASK_SPOKEN
        request = JobRequest(
            task=task,
            image=conv.image,
            audio=audio,
            question=question,
            history=tuple(conv.turns),
            **self._common(),
        )
        if audio is not None and not self._can_listen():
            self._spoken_command(audio)
            return
        self.controller.submit(request, question or "Spoken follow-up question")

    def cmd_repeat_last(self) -> None:
        text = self.controller.last_answer
        if not text:
            self.say("There is no answer yet.", Priority.NOW)
            return
        self.speech.stop()
        self.speech.read_all(text)  # the whole answer, from its start; Stop and the paragraph keys work

    def cmd_continue_reading(self) -> None:
        if self.speech.reading is None and not self.controller.last_answer:
            self.say("There is no answer yet.", Priority.NOW)
            return
        if self.speech.reading is None:
            self.speech.read_all(self.controller.last_answer)
        elif not self.speech.continue_reading():
            self.say("That was the end of the answer. Repeat starts it again.", Priority.NOW)

    def _move_paragraph(self, step: int) -> None:
        if self.speech.reading is None and self.controller.last_answer:
            self.speech.load_reading(self.controller.last_answer)
        self.speech.move_paragraph(step)  # it says so itself at either end

    def cmd_stop(self) -> None:
        self.ptt.abort()
        self.controller.stop()  # a camera picture being taken too
        if self._watch is not None:
            self._watch.stop()  # Stop ends a watch too

    def cmd_copy_last(self) -> None:
        text = self.controller.last_answer
        if not text:
            self.say("There is no answer to copy yet.", Priority.NOW)
            return
        QGuiApplication.clipboard().setText(text)
        self.say("Copied.", Priority.NOW)

    # -- settings ----------------------------------------------------------------------------------

    def cmd_settings(self) -> None:
        from app.ui.settings_dialog import edit_settings

        driver = self.speech.driver

        def voices():  # runs on the dialog's voice-listing thread; the driver's list is thread-safe
            cached = getattr(self, "_voices_cache", None)
            if cached is None or cached[0] is not driver:
                cached = self._voices_cache = (driver, list(driver.list_voices()))
            return cached[1]

        new = edit_settings(
            self.settings,
            voices=voices,
            announce=lambda t: self.say(t, Priority.NOW),
            on_apply=self._save_and_apply,  # Apply reaches the app at once; Cancel later keeps it
        )
        if new is None or new == self.settings:
            return
        self._save_and_apply(new)
        self.say("Settings saved.", Priority.NOW)

    def _save_and_apply(self, new: Settings) -> None:
        from app.settings.store import save_settings

        save_settings(new)
        self.apply_settings(new)

    ENGINE_FIELDS = (
        "backend",
        "model_dir",
        "device",
        "quantization",
        "server_url",
        "server_ca_file",
        "server_allow_insecure_http",
        "server_token_env",
    )

    def apply_settings(self, new: Settings) -> None:
        from app.speech.drivers.base import VoiceSettings
        from app.ui.theme import apply_theme

        old, self.settings = self.settings, new
        apply_theme(self.qapp, new.result_font_size, new.high_contrast)
        self.window.apply_settings(new.result_font_size, new.high_contrast)
        self.earcons.enabled = new.earcons
        if (old.output_mode, old.speech_driver) != (new.output_mode, new.speech_driver):
            old_speech, self.speech = self.speech, _make_speech(new, self.earcons)
            self.controller.speech = self.speech
            old_speech.close()
        else:
            self.speech.settings = VoiceSettings(rate_wpm=new.rate, voice=new.voice, volume=new.volume)
            self.speech.rule = _long_text_rule(new)
        self.controller.speak_answers = new.output_mode != "text"
        if any(getattr(old, f) != getattr(new, f) for f in self.ENGINE_FIELDS):
            # The registry (and with it the backend preference) belongs to the worker's thread: a
            # new worker with a new registry answers from the next job, which is cheap compared to
            # loading the model.
            self.worker.stop()
            self.worker = InferenceWorker(BackendRegistry(new))
            self.model_state = None
            self.controller.rebind_worker(self.worker)
            self._wire_worker()
            self.worker.preload()
        if self.hotkeys is not None and (old.hotkey_prefix, old.command_keys, old.command_chords) != (
            new.hotkey_prefix,
            new.command_keys,
            new.command_chords,
        ):
            from app.commands.keymap import bindings_from_settings

            self.hotkeys.rebind(bindings_from_settings(new))
        try:
            from app.ui import autostart

            if autostart.is_enabled() != new.start_with_system:
                autostart.set_enabled(new.start_with_system)
        except SightlineError as exc:
            self.say(exc.sentence, Priority.NEXT)

    # -- lifecycle ---------------------------------------------------------------------------------

    def raise_from_second_launch(self) -> None:
        self.window.present(activate=True)
        self.tray.raise_()
        self.say("Sightline is already running.", Priority.NOW)

    def shutdown(self) -> None:
        """Stop everything within QUIT_BUDGET_S. Safe to call twice.

        Every job and model load is cancelled first, so the worker winds down while the rest is
        released; anything that must be kept is written before anything that may wait. A worker
        thread still inside a library call after its share of the budget is left to finish on its
        own (app.jobs.worker), and the process still ends with exit code 0."""
        if self._shutting_down:
            return
        self._shutting_down = True
        started = time.monotonic()
        log.info("shutting down")
        self.worker.cancel_all("quit")
        self.ptt.abort()
        self.model_setup.shutdown()
        if self.hotkeys is not None:
            self.hotkeys.stop()
        if self._watch is not None:
            self._watch.shutdown()
        self.controller.stop()
        left = QUIT_BUDGET_S - (time.monotonic() - started)
        # No unload: the process ends next, which frees the model at once (a collection with
        # torch loaded takes most of a second).
        self.worker.stop(timeout_ms=int(max(0.2, min(WORKER_JOIN_S, left - 0.4)) * 1000), unload=False)
        self.earcons.stop_working()
        self.earcons.stop_progress()
        self.speech.close(timeout=max(0.1, min(0.5, QUIT_BUDGET_S - (time.monotonic() - started))))
        self.tray.hide()
        self.window.close()
        log.info("shut down in %.2f s", time.monotonic() - started)


class _SignalWaker:
    """SIGINT/SIGTERM quit through Qt's normal path, with no polling.

    Python runs a signal handler only when the interpreter gets control, and Qt's event loop may
    sleep in C for minutes. The C-level handler writes the signal number to a socket
    (signal.set_wakeup_fd); a QSocketNotifier on the other end wakes the event loop, which runs
    Python code, and the Python handler runs then. Idle, nothing wakes up at all.
    """

    def __init__(self, qapp: QApplication) -> None:
        import socket

        from PySide6.QtCore import QSocketNotifier

        self._qapp = qapp
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno())
        self._notifier = QSocketNotifier(self._reader.fileno(), QSocketNotifier.Type.Read)
        self._notifier.activated.connect(self._drain)
        signal.signal(signal.SIGINT, self._handler)
        signal.signal(signal.SIGTERM, self._handler)

    def _drain(self, *_args) -> None:
        try:
            while self._reader.recv(64):
                pass
        except BlockingIOError:
            pass

    def _handler(self, signum, _frame) -> None:
        log.info("signal %s: quitting", signum)
        self._qapp.quit()

    def close(self) -> None:
        self._notifier.setEnabled(False)
        signal.set_wakeup_fd(self._previous_fd)
        self._reader.close()
        self._writer.close()


class _QuitWatchdog:
    """Once quitting has begun, the process ends within QUIT_DEADLINE_S even if some release step
    hangs in a call that does not return: logs and streams are flushed, then it leaves with 0.
    Disarmed when run_app returns normally."""

    def __init__(self) -> None:
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        if self._timer is None:
            from app.jobs.worker import exit_without_teardown

            self._timer = threading.Timer(QUIT_DEADLINE_S, self._fire, args=(exit_without_teardown,))
            self._timer.name = "sightline-quit-watchdog"
            self._timer.daemon = True
            self._timer.start()

    @staticmethod
    def _fire(exit_now) -> None:
        log.warning("quitting took longer than %.1f s; leaving now", QUIT_DEADLINE_S)
        exit_now(0)  # the user asked to quit: that is a clean end

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _claim_single_instance() -> QLocalServer | None:
    """Return the server if we are the first instance; else ask the first to come forward."""
    socket = QLocalSocket()
    name = _instance_name()
    socket.connectToServer(name)
    if socket.waitForConnected(500):
        socket.write(b"raise\n")
        socket.waitForBytesWritten(500)
        socket.disconnectFromServer()
        return None
    QLocalServer.removeServer(name)  # a stale socket from a crashed run
    server = QLocalServer()
    if not server.listen(name):
        log.warning("single-instance server failed: %s", server.errorString())
    return server


NO_DISPLAY = (
    "Sightline needs a desktop session, and no display was found. Start it from your desktop, "
    "or use the command line, for example: sightline read --image FILE."
)


def _no_display() -> bool:
    """On Linux, Qt aborts the process when there is no display to connect to: look first."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def say_without_qt(sentence: str) -> None:
    """Print and, best effort, speak a sentence when the app cannot start its windows."""
    print(sentence, file=sys.stderr, flush=True)
    try:
        from app.speech.service import speak_text

        speak_text(sentence, timeout=30)
    except Exception:  # speaking is a courtesy here; the printed sentence stands
        log.info("could not speak the start-up failure", exc_info=True)


def run_app(argv: list[str] | None = None, on_ready=None) -> int:
    """Run the tray app until it quits. `on_ready(app)` is called once everything is built."""
    from app.core.errors import ExitCode
    from app.settings.store import load_settings

    if _no_display():
        log.warning("no display: DISPLAY and WAYLAND_DISPLAY are unset")
        say_without_qt(NO_DISPLAY)
        return ExitCode.DEVICE_ERROR

    from app.session_bus import settle_session_bus

    # Before Qt connects to D-Bus: never autolaunch a bus that would outlive Sightline.
    log.info("session bus: %s", settle_session_bus())
    existing = QApplication.instance()
    qapp = existing if isinstance(existing, QApplication) else QApplication(argv or sys.argv[:1])
    qapp.setApplicationName("Sightline")
    qapp.setApplicationDisplayName("Sightline")
    qapp.setQuitOnLastWindowClosed(False)
    qapp.setDesktopFileName("sightline")

    server = _claim_single_instance()
    if server is None:
        print("Sightline is already running; it has been brought to the front.", file=sys.stderr)
        return 0

    settings, notice = load_settings()
    app = SightlineApp(qapp, settings, notice)

    def on_connection() -> None:
        conn = server.nextPendingConnection()
        if conn is not None:
            conn.readyRead.connect(app.raise_from_second_launch)
            conn.disconnected.connect(conn.deleteLater)

    server.newConnection.connect(on_connection)
    waker = _SignalWaker(qapp)
    if on_ready is not None:
        # Before the quit handlers below: what on_ready hooks to aboutToQuit (the test harness's
        # report) runs before the shutdown and its watchdog, which may end the process.
        on_ready(app)
    watchdog = _QuitWatchdog()
    qapp.aboutToQuit.connect(watchdog.arm)  # first of ours: it guards the shutdown that follows
    qapp.aboutToQuit.connect(app.shutdown)
    # The desktop session ending: save nothing special, just shut down cleanly.
    qapp.commitDataRequest.connect(lambda _manager: app.shutdown())
    log.info("Sightline started (tray: %s)", app.tray.has_tray)
    print("Sightline is running.", file=sys.stderr, flush=True)
    code = qapp.exec()
    waker.close()
    app.shutdown()
    server.close()
    from app.jobs.worker import set_exit_code, skip_teardown_at_exit

    # Everything is released and written: the process may end without the interpreter's teardown
    # (seconds with torch loaded, and fatal to Qt with an inference thread still running).
    set_exit_code(code)
    skip_teardown_at_exit()
    watchdog.disarm()
    log.info("the tray app has stopped")
    return code
