"""SentenceChunker: what the listener hears, and when, from a streamed answer."""

from __future__ import annotations

import pytest

from app.speech.chunker import CODE_BLOCK_SENTENCE, SentenceChunker, clean_markdown


def stream(text: str, step: int) -> list[tuple[int | str, str]]:
    """Feeds `text` in pieces of `step` characters; returns (characters fed, sentence) pairs."""
    chunker = SentenceChunker()
    out: list[tuple[int | str, str]] = []
    for i in range(0, len(text), step):
        out += [(i + step, s) for s in chunker.feed(text[i : i + step])]
    out += [("end", s) for s in chunker.flush()]
    return out


def sentences(text: str, step: int = 1) -> list[str]:
    return [s for _, s in stream(text, step)]


@pytest.mark.parametrize("step", [1, 2, 5, 1000])
def test_same_sentences_whatever_the_chunk_size(step):
    text = "Dr. Smith paid $3.50 for v2.1 of the app. Then he left! Did he? Yes."
    assert sentences(text, step) == [
        "Dr. Smith paid $3.50 for v2.1 of the app.",
        "Then he left!",
        "Did he?",
        "Yes.",
    ]


def test_first_sentence_is_ready_before_the_stream_ends():
    text = "The screen shows a login form. It has two fields and a button."
    got = stream(text, 1)
    first_at, first = got[0]
    assert first == "The screen shows a login form."
    # Ready as soon as the space after the full stop arrives, not at the end of the stream.
    assert first_at == len("The screen shows a login form. ")


def test_abbreviations_do_not_split():
    text = "Mr. Jones met Prof. Lee, e.g. at noon, i.e. lunch, vs. dinner. Apples, pears, etc. are here."
    assert sentences(text) == [
        "Mr. Jones met Prof. Lee, e.g. at noon, i.e. lunch, vs. dinner.",
        "Apples, pears, etc. are here.",
    ]


def test_etc_before_a_capital_ends_the_sentence():
    assert sentences("Bring pens, paper, etc. Then sit down.") == [
        "Bring pens, paper, etc.",
        "Then sit down.",
    ]


def test_decimals_versions_and_initials_stay_whole():
    text = "Pi is 3.14159 and Python 3.11.7 runs v2.1 fine. J. K. Rowling wrote it."
    assert sentences(text) == ["Pi is 3.14159 and Python 3.11.7 runs v2.1 fine.", "J. K. Rowling wrote it."]


def test_a_full_stop_at_the_end_of_a_chunk_waits_for_the_next_character():
    chunker = SentenceChunker()
    assert chunker.feed("The price is 3.") == []  # might be 3.5
    assert chunker.feed("5 dollars. Next") == ["The price is 3.5 dollars."]


def test_numbered_and_bulleted_lines_are_separate_utterances():
    text = "Steps:\n1. Open the File menu\n2. Choose Save\n- a bullet\n* another one\n\nDone."
    assert sentences(text) == [
        "Steps:",
        "1. Open the File menu",
        "2. Choose Save",
        "a bullet",
        "another one",
        "Done.",
    ]


def test_markdown_is_stripped():
    text = (
        "## Summary\n\nThe **Save** button is `blue` and *large*. "
        "See [the guide](https://example.com/a.b) for __more__.\n> Quoted text."
    )
    assert sentences(text, 3) == [
        "Summary",
        "The Save button is blue and large.",
        "See the guide for more.",
        "Quoted text.",
    ]


def test_code_blocks_are_announced_not_read():
    text = "Run this:\n```python\nprint('Hello. World.')\nx = 1\n```\nThen restart."
    assert sentences(text, 4) == ["Run this:", CODE_BLOCK_SENTENCE, "Then restart."]


def test_tables_are_read_as_rows():
    text = "| Name | Age |\n|---|---|\n| Bob | 3 |\n"
    assert sentences(text) == ["Name, Age", "Bob, 3"]


def test_soft_line_wraps_join():
    assert sentences("This line wraps\nacross two lines. End") == ["This line wraps across two lines.", "End"]


def test_a_long_run_without_punctuation_is_cut_at_a_pause():
    text = "word, " * 100
    got = stream(text, 7)
    assert got[0][0] != "end"  # speech did not wait for the end of the stream
    assert all(len(s) <= 280 for _, s in got)
    assert " ".join(s for _, s in got).split() == text.split()


def test_flush_returns_the_unfinished_tail_and_resets():
    chunker = SentenceChunker()
    assert chunker.feed("No full stop here") == []
    assert chunker.flush() == ["No full stop here"]
    assert chunker.flush() == []


def test_empty_and_punctuation_only_pieces_are_dropped():
    assert sentences("\n\n---\n\n") == []
    assert clean_markdown("**") == ""
