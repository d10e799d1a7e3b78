"""Reading like a screen reader's say-all: the whole text, the position kept, continue, paragraphs."""

from __future__ import annotations

import pytest

from app.speech.drivers.silent import SilentDriver
from app.speech.manager import LongTextRule, Reading, SpeechManager

PARAGRAPHS = [
    [f"Paragraph {p} sentence {s} says something worth hearing." for s in range(1, 4)] for p in range(1, 6)
]
TEXT = "\n\n".join(" ".join(p) for p in PARAGRAPHS)
ALL = [s for p in PARAGRAPHS for s in p]


@pytest.fixture
def spy():
    return SilentDriver(hold=True)


@pytest.fixture
def manager(spy, no_thread_leak):
    m = SpeechManager(spy, rule=LongTextRule(max_chars=400, max_sentences=4, note="More on screen."))
    yield m
    m.close()


def hear(spy: SilentDriver, count: int) -> None:
    """Lets `count` held utterances be heard to the end, one after another."""
    for _ in range(count):
        assert spy.wait_started(len(spy.log) + 1)
        spy.release()
        assert spy.wait_ended(len(spy.log) + 1)


def test_paragraph_marks_come_from_blank_lines():
    reading = Reading.of(TEXT)
    assert reading.sentences == ALL
    assert reading.paragraph_starts == [0, 3, 6, 9, 12]
    assert reading.paragraph_of(7) == 2


def test_read_all_speaks_every_sentence_continuously(manager, spy):
    reading = manager.read_all(TEXT)
    hear(spy, len(ALL))
    assert manager.wait_idle(5)
    assert spy.spoken == ALL  # nothing cut, no "more on screen" note
    assert reading.at_end and manager.reading is reading


def test_a_streamed_answer_in_short_form_continues_where_it_stopped(manager, spy):
    stream = manager.answer_stream(job_id=7)
    for i in range(0, len(TEXT), 9):  # streamed a few characters at a time
        stream.feed(TEXT[i : i + 9])
    form = stream.finish()
    assert form.truncated
    hear(spy, 5)  # four sentences, then the note
    assert manager.wait_idle(5)
    assert spy.spoken == ALL[:4] + ["More on screen."]

    assert manager.continue_reading()
    hear(spy, len(ALL) - 4)
    assert manager.wait_idle(5)
    assert spy.spoken[5:] == ALL[4:]  # the rest, nothing repeated, no second note
    assert not manager.continue_reading()  # the end: nothing left


def test_stop_keeps_the_place_and_continue_says_the_interrupted_sentence_again(manager, spy):
    manager.read_all(TEXT)
    hear(spy, 2)
    assert spy.wait_started(3)
    manager.stop()
    assert manager.wait_idle(5)
    assert spy.interrupted == [ALL[2]]
    assert manager.reading.position == 2

    assert manager.continue_reading()
    hear(spy, len(ALL) - 2)
    assert manager.wait_idle(5)
    assert spy.spoken == ALL[:2] + ALL[2:]


def test_next_and_previous_paragraph_jump_and_read_on(manager, spy):
    manager.read_all(TEXT)
    hear(spy, 1)
    assert spy.wait_started(2)  # in paragraph 1, sentence 2
    assert manager.move_paragraph(+1)
    assert spy.wait_started(3)
    assert spy.started[-1] == PARAGRAPHS[1][0]
    assert manager.move_paragraph(+1)
    assert spy.wait_started(4)
    assert spy.started[-1] == PARAGRAPHS[2][0]
    assert manager.move_paragraph(-1)
    assert spy.wait_started(5)
    assert spy.started[-1] == PARAGRAPHS[1][0]
    hear(spy, 3)  # paragraph 2 heard to the end, reading goes on into paragraph 3
    assert spy.wait_started(len(spy.log) + 1)
    assert spy.started[-1] == PARAGRAPHS[2][0]
    manager.stop()


def test_at_the_first_paragraph_previous_says_so(manager, spy):
    manager.read_all(TEXT)
    assert spy.wait_started(1)
    assert not manager.move_paragraph(-1)
    assert spy.wait_started(2)
    assert spy.started[-1] == "This is the first paragraph."
    hear(spy, 1)
    manager.stop()


def test_read_in_full_reads_a_streamed_answer_whole(manager, spy):
    stream = manager.answer_stream(job_id=3)
    assert manager.read_in_full(3)
    for paragraph in PARAGRAPHS:
        stream.feed(" ".join(paragraph) + "\n\n")
    stream.finish()
    hear(spy, len(ALL))
    assert manager.wait_idle(5)
    assert spy.spoken == ALL  # no short form, no note


def test_repeat_after_a_short_form_reads_everything(manager, spy):
    answer = manager.answer_stream()
    answer.feed(TEXT)
    form = answer.finish()
    assert form.truncated
    hear(spy, 5)
    assert manager.wait_idle(5)
    manager.stop()
    manager.read_all(manager.reading.text)
    hear(spy, len(ALL))
    assert manager.wait_idle(5)
    assert spy.spoken[5:] == ALL
