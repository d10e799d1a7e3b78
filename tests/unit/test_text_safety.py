"""What reaches a terminal or a speech engine is safe: no escape sequences, controls or bidi overrides."""

from __future__ import annotations

import json

import pytest

from app.core.text import SafeTextStream, escape_unsafe_in_json, safe_text

HOSTILE = (
    "Title\x1b]0;pwned\x07 then \x1b[31mred\x1b[0m, \x1b[2J\x1b[H cleared, \u202eevil\u202c and "
    "\u2066isolated\u2069, a bell\x07, a C1 CSI \x9b2Jhere, DCS \x1bPq#0\x1b\\ done,\r\nnext line\tend."
)
CLEAN = "Title then red,  cleared, evil and isolated, a bell, a C1 CSI here, DCS  done,\nnext line\tend."


def test_safe_text_removes_sequences_controls_and_bidi_but_keeps_newline_and_tab():
    assert safe_text(HOSTILE) == CLEAN
    for char in ("\x1b", "\x07", "\x9b", "\r", "\u202e", "\u2066"):
        assert char not in safe_text(HOSTILE)
    assert safe_text("Plain text, ü, 中文, emoji 😀.\n") == "Plain text, ü, 中文, emoji 😀.\n"


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_a_sequence_split_across_pieces_is_removed_whole(size):
    stream = SafeTextStream()
    pieces = [HOSTILE[i : i + size] for i in range(0, len(HOSTILE), size)]
    out = "".join(stream.feed(p) for p in pieces) + stream.flush()
    assert out == CLEAN


def test_an_unfinished_sequence_at_the_end_loses_its_control_characters():
    stream = SafeTextStream()
    out = stream.feed("ok \x1b[31") + stream.flush()
    assert "\x1b" not in out and out.startswith("ok ")


def test_json_keeps_every_character_escaped():
    encoded = escape_unsafe_in_json(json.dumps({"text": HOSTILE}, ensure_ascii=False))
    assert json.loads(encoded)["text"] == HOSTILE  # nothing lost
    for char in ("\x1b", "\x07", "\x9b", "\u202e", "\u2066"):
        assert char not in encoded  # but nothing a terminal would act on
    assert "\\u202e" in encoded and "\\u001b" in encoded
