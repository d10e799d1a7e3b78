"""Explore mode's map of recognised text: moving by line, word and block, where things are, find."""

from __future__ import annotations

import pytest

from app.core.types import Bounds
from app.inference.ocr import TextLine, Word
from app.inference.screen_map import (
    BLOCK,
    CLICK,
    FIND,
    LINE,
    RIGHT_CLICK,
    WORD,
    ScreenMap,
    parse_spoken_action,
    target_variants,
)


def _line(x, y, text, w=None, h=30, words=()):
    return TextLine(x, y, x + (w or 16 * len(text)), y + h, text, 1.0, words)


def _dialog() -> ScreenMap:
    # A dialog 800 x 600 at (100, 50) on the screen, captured at half size (400 x 300 image):
    # a title, a two-line message, and three buttons in a row at the bottom right.
    title = _line(10, 10, "Unsaved changes", h=24)
    msg1 = _line(10, 60, "Save your work before closing", h=16)
    msg2 = _line(10, 80, "or it will be lost", h=16)
    save = _line(200, 260, "Save", w=40, h=16)
    dont = _line(260, 260, "Discard", w=50, h=16)
    cancel = _line(330, 260, "Cancel", w=50, h=16, words=(Word(332, 260, 378, 276, "Cancel"),))
    return ScreenMap.from_ocr([cancel, msg2, save, title, dont, msg1], Bounds(100, 50, 800, 600), (400, 300))


def test_lines_in_reading_order_with_screen_positions():
    m = _dialog()
    assert [i.text for i in m.lines()] == [
        "Unsaved changes",
        "Save your work before closing",
        "or it will be lost",
        "Save",
        "Discard",
        "Cancel",
    ]
    assert m.block_count == 5  # the message is one block; each button is its own
    cancel = m.lines()[-1]
    # image (330..380, 260..276) at half size, offset (100, 50)
    assert (cancel.x0, cancel.y0, cancel.x1, cancel.y1) == (760, 570, 860, 602)
    assert cancel.center == (810, 586)
    assert m.spoken(cancel) == "Cancel, bottom right"
    assert m.spoken(m.lines()[0]) == "Unsaved changes, top left"


def test_arrows_move_by_line_word_and_block_and_stop_at_the_ends():
    m = _dialog()
    assert m.current.text == "Unsaved changes" and m.unit == LINE
    assert m.move_line(-1) is None and m.current.text == "Unsaved changes"  # the top: stays
    assert m.move_line(1).text == "Save your work before closing"
    assert [m.move_word(1).text for _ in range(3)] == ["Save", "your", "work"]
    assert m.unit == WORD
    assert m.move_word(-1).text == "your"
    for _ in range(3):
        m.move_word(1)
    assert m.current.text == "closing"
    assert m.move_word(1).text == "or"  # on to the next line's first word
    assert m.move_word(-1).text == "closing"  # and back
    assert m.move_block(1).text == "Save" and m.unit == BLOCK
    assert m.move_block(-1).text == "Save your work before closing\nor it will be lost"
    assert m.last().text == "Cancel"
    assert m.move_line(1) is None and m.move_block(1) is None
    assert m.move_word(1).text == "Cancel"  # from the whole line to its (only) word
    assert m.move_word(1) is None and m.current.text == "Cancel"
    assert m.first().text == "Unsaved changes"


def test_estimated_word_boxes_share_out_the_line():
    m = _dialog()
    m.move_line(1)
    save, your = m.move_word(1), m.move_word(1)
    assert save.x0 == m.current.x0 - (your.x0 - save.x0)
    assert save.x1 < your.x0 and save.y0 == your.y0 == m.lines()[1].y0


def test_find_goes_to_the_best_fuzzy_match_and_cycles():
    m = _dialog()
    found = m.find("cancel")
    assert found.text == "Cancel" and m.spoken() == "Cancel, bottom right"
    assert m.find("Cancle").text == "Cancel"  # a typo still finds it
    assert m.find("canc").text == "Cancel"  # the start of a word
    # "save" is a button and a word of the message: the exact line first, then the word.
    assert m.find("Save").text == "Save" and m.unit == LINE
    assert m.match_count == 2
    second = m.find_next()
    assert second.text == "Save" and m.unit == WORD and m.line == 1
    assert m.find_next().text == "Save" and m.unit == LINE  # round again
    assert m.find("zebra crossing") is None


def test_an_empty_map():
    m = ScreenMap.from_ocr([], Bounds(0, 0, 100, 100), (100, 100))
    assert m.empty and m.current is None
    assert m.move_line(1) is None and m.move_word(1) is None and m.find("x") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("click Save", (CLICK, "Save")),
        ("Click the Save button.", ("click", "Save button")),
        ("Please click on save, please.", ("click", "save")),
        ("right-click Cancel", ("right_click", "Cancel")),
        ("Right click the cancel button", ("right_click", "cancel button")),
        ("find Print", ("find", "Print")),
        ("Go to the Print tab.", ("find", "Print tab")),
        ("Where's Open?", ("find", "Open")),
        ("where is the Open menu", ("find", "Open menu")),
        ('Click "Don\u2019t save"', ("click", "Don't save")),
        ("click", None),
        ("save the file", None),
        ("what is on the screen", None),
        ("", None),
    ],
)
def test_spoken_phrases_are_parsed_into_an_action_and_a_target(text, expected):
    assert parse_spoken_action(text) == expected


def test_the_kind_of_control_said_after_its_label_is_tried_without_it():
    assert target_variants("Save") == ["Save"]
    assert target_variants("Save button") == ["Save button", "Save"]
    assert target_variants("Print Tab") == ["Print Tab", "Print"]
    assert target_variants("button") == ["button"]  # a label that is only the word itself
    assert target_variants("the Save as button") == ["the Save as button", "the Save as"]


def test_a_spoken_target_finds_the_item_with_or_without_its_control_word():
    m = _dialog()
    action, target = parse_spoken_action("Click the Discard button.")
    assert action == CLICK
    found = next(filter(None, (m.find(q) for q in target_variants(target))))
    assert found.text == "Discard" and m.spoken(found) == "Discard, bottom right"
    assert [m.find(q) for q in target_variants(parse_spoken_action("find the zebra button")[1])] == [
        None,
        None,
    ]
    assert parse_spoken_action("right click Cancel")[0] == RIGHT_CLICK
    assert parse_spoken_action("where is Cancel")[0] == FIND
