"""Watching: the cheap change test and the choice of what is new."""

from __future__ import annotations

import numpy as np

from app.capture.watch import NewText, changed_rows, grey, normal, same_text


def test_normal_and_same_text_keep_figures_apart():
    assert normal("  Build: 45 %  done. ") == "build 45 % done"
    assert same_text(normal("Building module"), normal("Buildinq module"))  # a misread letter
    assert not same_text(normal("Progress 45%"), normal("Progress 46%"))
    assert not same_text(normal("ok"), normal("on"))  # short texts must be equal


def test_changed_rows_finds_the_band_and_ignores_noise():
    frame = np.full((400, 600, 4), 255, np.uint8)
    before = grey(frame)
    assert before.shape == (100, 150)
    assert changed_rows(before, grey(frame)) is None
    caret = frame.copy()
    caret[100:104, 300:302] = 0  # two pixels wide: one sample at most
    assert changed_rows(before, grey(caret)) is None
    text = frame.copy()
    text[200:230, 50:400] = 0
    assert changed_rows(before, grey(text)) == (50, 57)
    assert changed_rows(None, grey(text)) == (0, 99)  # nothing to compare with: all of it


def test_only_lines_that_were_not_there_are_new():
    clock = [0.0]
    tracker = NewText(clock=lambda: clock[0])
    tracker.seed([("Chat with Sam", 0, 20), ("Sam: hello", 30, 50)])
    # A new message below, read in a band that also holds the old line: only the new one is said.
    assert tracker.update((25, 80), [("Sam: hello", 30, 50), ("Sam: are you there?", 55, 75)]) == [
        "Sam: are you there?"
    ]
    # Everything scrolls up one line: nothing new.
    clock[0] = 1
    assert tracker.update((0, 80), [("Sam: hello", 5, 25), ("Sam: are you there?", 30, 50)]) == []
    # A progress figure changes in place: said; read again unchanged: not said.
    clock[0] = 2
    assert tracker.update((60, 90), [("Copying 45%", 60, 80)]) == ["Copying 45%"]
    clock[0] = 3
    assert tracker.update((60, 90), [("Copying 46%", 60, 80)]) == ["Copying 46%"]
    clock[0] = 4
    assert tracker.update((60, 90), [("Copying 46 %", 60, 80)]) == []


def test_a_flicker_is_not_said_twice_but_a_return_later_is():
    clock = [0.0]
    tracker = NewText(clock=lambda: clock[0])
    assert tracker.update((0, 40), [("Recording", 0, 30)]) == ["Recording"]
    clock[0] = 0.5
    assert tracker.update((0, 40), []) == []  # gone for a moment
    clock[0] = 1.0
    assert tracker.update((0, 40), [("Recording", 0, 30)]) == []  # back: a flicker
    clock[0] = 2.0
    assert tracker.update((0, 40), []) == []
    clock[0] = 20.0
    assert tracker.update((0, 40), [("Recording", 0, 30)]) == ["Recording"]  # a real return
