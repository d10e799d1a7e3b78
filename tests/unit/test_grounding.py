"""The quote guard, the picture-text trimming and the answer-language path: pure logic, no model."""

from __future__ import annotations

import re

import numpy as np
import pytest

from app.core.types import AudioInput, ImageInput, JobRequest, Task
from app.inference.grounding import (
    MIN_SCREEN_TEXT_TOKENS,
    TRIMMED_MARK,
    GuardedStream,
    QuoteGuard,
    cap_chars,
    find_quotes,
    trim_to_tokens,
)
from app.inference.prompts import SCREEN_TEXT_LEAD, build_prompt
from app.inference.translate import (
    DESCRIBE_THEN_TRANSLATE,
    DIRECT,
    answer_path,
    english_request,
    translation_request,
)
from app.settings.schema import field_info

SCREEN = (
    "Save changes to Quarterly Report?\n"
    "Invoice 10482 from Jane Doe, total $1,250.00, due 2026-12-03 at 10:30\n"
    "Cancel   Don't Save   Save\n"
    "Disk usage 45%"
)


def _image() -> ImageInput:
    return ImageInput(np.zeros((20, 30, 3), np.uint8), "screen")


@pytest.mark.parametrize(
    ("sentence", "quotes"),
    [
        (
            'The dialog asks "Save changes?" and names Jane Doe.',
            [("Save changes?", "quoted"), ("Jane Doe", "name")],
        ),
        ("It says \u201cDisk full\u201d now.", [("Disk full", "quoted")]),
        ("The total is $1,250.00, due at 10:30.", [("$1,250.00", "number"), ("10:30", "number")]),
        ("Invoice 10482 is open, 45% used.", [("10482", "number"), ("45%", "number")]),
        ("There are 3 buttons and 12 tabs.", []),  # counts are the model's own words
        ("The Save button has focus.", []),  # a capital at a sentence start is not a name
        ("Visual Studio Code is open.", [("Visual Studio Code", "name")]),
        ("Then Visual Studio Code opens.", [("Visual Studio Code", "name")]),
        ("I can see Firefox.", []),  # single capitalised words are not checked
        ("It's the user's file, isn't it?", []),  # apostrophes are not quotation marks
    ],
)
def test_what_counts_as_a_quote(sentence, quotes):
    assert [(q.text, q.kind) for q in find_quotes(sentence)] == quotes


@pytest.mark.parametrize(
    "sentence",
    [
        'The dialog asks "Save changes to Quarterly Report?"',
        "The invoice from Jane Doe totals $1,250.00.",
        'The buttons are "Cancel", "Don\u2019t Save" and "Save".',  # a curly apostrophe
        'It says "save CHANGES to   quarterly report".',  # case and spacing
        "The invoice number is 10482 and the disk is at 45%.",
        'It reads "Quarterly Reprt".',  # one letter off, as OCR misreads: found by the fuzzy match
        'The buttons read "Don\'tSave".',  # OCR dropped a space
    ],
)
def test_quotes_found_in_the_picture_text_are_left_alone(sentence):
    guard = QuoteGuard(SCREEN)
    assert guard.hedge(sentence) == sentence
    assert guard.hedged == []


def test_quotes_not_in_the_picture_text_are_hedged_after_their_sentence():
    guard = QuoteGuard(SCREEN)
    out = guard.hedge('The dialog asks "Discard all drafts?" ')
    assert out == (
        'The dialog asks "Discard all drafts?" It may say "Discard all drafts?"; '
        "I could not find that in the picture's text. "
    )
    out = guard.hedge("Invoice 10483 from John Smith is due.")
    assert out.startswith("Invoice 10483 from John Smith is due. It may say ")
    assert '"10483" and "John Smith"' in out and "could not find those" in out
    # a number off by one digit is never accepted by the fuzzy match
    assert guard.hedge("The total is $1,250.01.").endswith(
        'It may say "$1,250.01"; I could not find that in the picture\'s text.'
    )
    assert guard.hedged == ["Discard all drafts?", "10483", "John Smith", "$1,250.01"]


def test_the_stream_is_checked_a_sentence_at_a_time_as_it_arrives():
    guard = QuoteGuard(SCREEN)
    stream = GuardedStream(guard)
    answer = (
        'A dialog asks "Save changes to Quarterly Report?" Below it, invoice 99999 is shown. '
        'He said "Stop. Now." Then the total is $1,250.00.\nDone'
    )
    pieces: list[tuple[int, str]] = []
    for i, ch in enumerate(answer):  # a character at a time, as tokens arrive
        for piece in stream.feed(ch):
            pieces.append((i, piece))
    pieces += [(len(answer), p) for p in stream.flush()]
    texts = [p for _, p in pieces]
    assert texts[0] == 'A dialog asks "Save changes to Quarterly Report?" '
    # the first sentence is out as soon as its space arrives, long before the answer ends
    assert pieces[0][0] == answer.index("Below") - 1
    assert texts[1].startswith('Below it, invoice 99999 is shown. It may say "99999"')
    # a full stop inside a quotation does not end the sentence
    assert texts[2].startswith('He said "Stop. Now."')
    assert texts[3] == "Then the total is $1,250.00.\n"
    assert texts[4] == "Done"
    assert guard.hedged == ["99999", "Stop. Now"]
    # nothing of the answer is lost or reordered: without the hedges it is the answer itself
    assert (
        re.sub(r" It may say [^;]*; I could not find that in the picture's text\.", "", "".join(texts))
        == answer
    )


def test_a_decimal_point_does_not_end_a_sentence_mid_number():
    stream = GuardedStream(QuoteGuard("Total 3.50"))
    out = []
    for ch in "It costs 3.50 dollars. Next":
        out += stream.feed(ch)
    assert out == ["It costs 3.50 dollars. "]


def test_trimming_keeps_the_top_of_the_picture_in_whole_lines():
    lines = [f"Line {i} of the picture text" for i in range(100)]
    text = "\n".join(lines)

    def count(s: str) -> int:
        return len(s.split())

    assert trim_to_tokens(text, 10_000, count) == text
    trimmed = trim_to_tokens(text, 60, count)
    kept = trimmed.split("\n")
    assert kept[-1] == TRIMMED_MARK
    assert kept[:-1] == lines[: len(kept) - 1] and len(kept) > 2
    assert sum(count(line) + 1 for line in kept) <= 60 + 1
    assert trim_to_tokens(text, MIN_SCREEN_TEXT_TOKENS - 1, count) == ""
    capped = cap_chars(text, 200)
    assert len(capped) <= 200 and capped.endswith(TRIMMED_MARK) and capped.startswith(lines[0])


def test_the_prompt_carries_the_picture_text_before_the_task():
    request = JobRequest(Task.ASK_IMAGE, image=_image(), question="What is the total?", screen_text=SCREEN)
    user = build_prompt(request).user_text
    assert user.index(SCREEN_TEXT_LEAD) < user.index(SCREEN) < user.index("What is the total?")
    assert "quote it exactly" in user
    assert SCREEN_TEXT_LEAD not in build_prompt(request, "").user_text  # left out when trimmed away
    assert SCREEN not in build_prompt(JobRequest(Task.ASK_IMAGE, image=_image(), question="Hi")).user_text


def test_pictures_in_another_language_are_described_in_english_then_translated():
    german = JobRequest(Task.DESCRIBE_BRIEF, image=_image(), language="German", screen_text=SCREEN)
    assert answer_path(german) == DESCRIBE_THEN_TRANSLATE
    english = english_request(german)
    assert english.language == "English" and english.job_id == german.job_id
    assert english.image is german.image and english.screen_text == SCREEN
    step = translation_request(german, "The dialog asks to save. ")
    assert step.image is None and step.audio is None and step.task is Task.TRANSLATE
    prompt = build_prompt(step)
    assert "into German" in prompt.user_text and prompt.user_text.endswith("The dialog asks to save.")
    assert "German" in prompt.system and not prompt.with_image and prompt.history == ()
    for language in ("English", "english", "en", "English (UK)"):
        assert answer_path(JobRequest(Task.DESCRIBE_BRIEF, image=_image(), language=language)) == DIRECT
    voice = AudioInput(np.zeros(16000, np.float32), "microphone")
    assert answer_path(JobRequest(Task.ASK_SPOKEN, question="Wie spät ist es?", language="German")) == DIRECT
    assert answer_path(JobRequest(Task.ASK_SPOKEN, audio=voice, language="French")) == DIRECT


def test_settings_say_which_path_is_used():
    help_text = field_info("response_language").help
    assert "described in English" in help_text and "translated" in help_text and "directly" in help_text
    assert field_info("ground_answers").advanced


def test_a_remote_request_carries_the_picture_text_in_its_text_part():
    from app.inference.openai_compatible import build_payload

    request = JobRequest(Task.DESCRIBE_BRIEF, image=_image(), screen_text=SCREEN)
    user = build_payload(request, "vision")["messages"][-1]["content"]
    [text_part] = [part["text"] for part in user if part["type"] == "text"]
    assert SCREEN in text_part and text_part.index(SCREEN) < text_part.index("This is a screenshot")
