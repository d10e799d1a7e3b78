"""SpeechManager with the silent driver: ordering, interrupts, cancel by job, the long-text rule."""

from __future__ import annotations

import logging
import queue
import threading

import pytest

from app.speech.drivers import SpeechDriver, SpeechDriverError, VoiceSettings
from app.speech.drivers.silent import SilentDriver
from app.speech.manager import FULL_ANSWER_NOTE, LongTextRule, Priority, SpeechManager, short_form


@pytest.fixture
def spy():
    return SilentDriver(hold=True)


@pytest.fixture
def manager(spy, no_thread_leak):
    events: queue.Queue = queue.Queue()
    m = SpeechManager(spy, events=events)
    m.test_events = events
    yield m
    m.close()


def drain(events: queue.Queue) -> list[tuple[str, str]]:
    out = []
    while True:
        try:
            e = events.get_nowait()
        except queue.Empty:
            return out
        out.append((e.kind, e.text))


def speak_through(spy: SilentDriver, count: int) -> None:
    """Lets `count` held utterances finish, one after another."""
    for n in range(count):
        assert spy.wait_started(len(spy.log) + 1), f"utterance {n + 1} never started"
        spy.release()
        assert spy.wait_ended(len(spy.log) + 1)


def test_normal_utterances_are_spoken_in_order(manager, spy):
    for text in ("one", "two", "three"):
        manager.speak(text)
    speak_through(spy, 3)
    assert manager.wait_idle(5)
    assert spy.spoken == ["one", "two", "three"]


def test_next_goes_to_the_front_without_interrupting(manager, spy):
    manager.speak("first")
    assert spy.wait_started(1)
    manager.speak("later")
    manager.speak("urgent-ish", Priority.NEXT)
    manager.speak("second next", Priority.NEXT)
    speak_through(spy, 4)
    assert spy.spoken == ["first", "urgent-ish", "second next", "later"]
    assert spy.interrupted == []


def test_now_interrupts_and_drops_lower_priorities(manager, spy):
    manager.speak("long answer")
    assert spy.wait_started(1)
    manager.speak("queued normal")
    manager.speak("queued next", Priority.NEXT)
    manager.speak("Stop! Battery low.", Priority.NOW)
    assert spy.wait_started(2)
    assert spy.interrupted == ["long answer"]
    assert spy.started[-1] == "Stop! Battery low."
    spy.release()
    assert manager.wait_idle(5)
    assert spy.spoken == ["Stop! Battery low."]
    kinds = drain(manager.test_events)
    assert ("dropped", "queued normal") in kinds and ("dropped", "queued next") in kinds
    assert ("interrupted", "long answer") in kinds


def test_now_sentences_of_one_message_follow_each_other(manager, spy):
    manager.speak("background")
    assert spy.wait_started(1)
    manager.speak("Warning one.", Priority.NOW, job_id="w")
    manager.speak("Warning two.", Priority.NOW, job_id="w")
    assert spy.wait_ended(1)  # "background" was cut
    speak_through(spy, 2)
    assert manager.wait_idle(5)
    assert spy.spoken == ["Warning one.", "Warning two."]
    assert spy.interrupted == ["background"]


def test_stop_silences_and_clears(manager, spy):
    for text in ("a", "b", "c"):
        manager.speak(text)
    assert spy.wait_started(1)
    manager.stop()
    assert manager.wait_idle(5)
    assert spy.interrupted == ["a"] and spy.spoken == []
    assert manager.pending() == []
    manager.speak("after stop")
    speak_through(spy, 1)
    assert spy.spoken == ["after stop"]


def test_cancel_job_drops_its_current_queued_and_late_utterances(manager, spy):
    manager.speak("job1 first", job_id=1)
    assert spy.wait_started(1)
    manager.speak("job1 second", job_id=1)
    manager.speak("job2 first", job_id=2)
    manager.speak("no job")
    manager.cancel_job(1)
    assert manager.speak("job1 late chunk", job_id=1) is None
    assert spy.wait_ended(1)  # "job1 first" was cut
    speak_through(spy, 2)
    assert manager.wait_idle(5)
    assert spy.interrupted == ["job1 first"]
    assert spy.spoken == ["job2 first", "no job"]


def test_cancel_of_another_job_leaves_the_current_one_alone(manager, spy):
    manager.speak("job2 speaking", job_id=2)
    assert spy.wait_started(1)
    manager.cancel_job(1)
    speak_through(spy, 1)
    assert spy.spoken == ["job2 speaking"]


def test_settings_reach_the_driver(manager, spy):
    manager.settings = VoiceSettings(rate_wpm=250, volume=0.5, voice="en-gb")
    manager.speak("configured")
    speak_through(spy, 1)
    assert spy.log[-1].settings == VoiceSettings(rate_wpm=250, voice="en-gb", volume=0.5)
    manager.settings = VoiceSettings(rate_wpm=10_000, volume=3.0)
    manager.speak("clamped")
    speak_through(spy, 1)
    assert spy.log[-1].settings.rate_wpm == 500 and spy.log[-1].settings.volume == 1.0


def test_events_follow_each_utterance(spy):
    seen = []
    with SpeechManager(spy, on_event=lambda e: seen.append((e.kind, e.text, e.job_id))) as m:
        m.speak("hello", job_id="j")
        speak_through(spy, 1)
        assert m.wait_idle(5)
    assert seen == [("started", "hello", "j"), ("finished", "hello", "j")]


# -- the long-text rule ------------------------------------------------------------------------


LONG = (
    "The window shows an email from Anna. It asks about Friday's meeting. "
    "There are three attachments. The first is a PDF. The second is a spreadsheet. "
    "The third is an image of a chart with sales by region."
)


def test_short_answers_are_spoken_whole():
    form = short_form("The button says OK. It is blue.")
    assert not form.truncated
    assert form.sentences == ("The button says OK.", "It is blue.")


def test_long_answers_are_cut_with_a_pointer_to_the_screen():
    form = short_form(LONG, LongTextRule(max_chars=120, max_sentences=3))
    assert form.truncated
    assert form.sentences[:2] == ("The window shows an email from Anna.", "It asks about Friday's meeting.")
    assert form.sentences[-1] == FULL_ANSWER_NOTE
    assert sum(len(s) for s in form.sentences[:-1]) <= 120
    assert form.full_text == LONG  # the screen shows everything


def test_a_single_huge_sentence_is_cut_at_a_word():
    text = "This is " + "very " * 200 + "long."
    form = short_form(text, LongTextRule(max_chars=100))
    assert form.truncated and len(form.sentences) == 2
    assert len(form.sentences[0]) <= 101 and form.sentences[0].endswith("very.")


def test_streamed_answer_starts_at_the_first_sentence_and_stops_at_the_budget(spy, no_thread_leak):
    with SpeechManager(spy, rule=LongTextRule(max_chars=120, max_sentences=3)) as m:
        answer = m.answer_stream(job_id=7)
        queued = answer.feed("The window shows an email from Anna. It asks")
        assert queued == ["The window shows an email from Anna."]
        assert spy.wait_started(1)  # speaking while the model still writes
        for i in range(0, len(LONG) - 44, 9):
            answer.feed(LONG[44 + i : 44 + i + 9])
        form = answer.finish()
        speak_through(spy, len(form.sentences))
        assert m.wait_idle(5)
    assert form.truncated
    assert spy.spoken[-1] == FULL_ANSWER_NOTE
    assert spy.spoken.count(FULL_ANSWER_NOTE) == 1
    assert form.full_text == LONG


# -- driver failure --------------------------------------------------------------------------


class BrokenDriver(SpeechDriver):
    name = "broken"

    def __init__(self, hang: bool = False):
        self.hang = hang
        self.calls = 0

    def check(self):
        return True, "claims to work"

    def speak(self, text, settings, cancel):
        self.calls += 1
        raise SpeechDriverError(detail="engine crashed")

    def interrupt(self):
        pass


def test_a_failing_driver_hands_over_to_the_next_and_logs_why(caplog):
    caplog.set_level(logging.INFO, logger="app.speech")
    backup = SilentDriver()
    broken = BrokenDriver()
    changed = threading.Event()
    with SpeechManager(
        broken, fallbacks=[backup], on_event=lambda e: e.kind == "driver_changed" and changed.set()
    ) as m:
        m.speak("still heard")
        m.speak("and this")
        assert m.wait_idle(5)
        assert m.driver_name == "silent"
    assert backup.spoken == ["still heard", "and this"]  # nothing lost
    assert broken.calls == 1  # not retried once it failed
    assert changed.is_set()
    assert "speech driver broken failed (engine crashed); silent takes over" in caplog.text


def test_with_every_driver_broken_speech_is_off_but_nothing_crashes(caplog):
    caplog.set_level(logging.INFO, logger="app.speech")
    with SpeechManager(BrokenDriver(), fallbacks=[BrokenDriver()]) as m:
        m.speak("text")
        assert m.wait_idle(5)
    assert "broken" in caplog.text


def test_escape_sequences_and_bidi_overrides_never_reach_the_speech_engine(manager, spy):
    # An answer from a model or a server may carry terminal escapes, controls and a right-to-left
    # override: a screen reader would act on or mis-order them.
    manager.speak("Total \x1b[31mdue\x1b[0m: 40\u202e.00\x07 euros")
    speak_through(spy, 1)
    assert spy.spoken == ["Total due: 40.00 euros"]
