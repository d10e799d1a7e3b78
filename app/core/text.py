"""Text that is safe to print on a terminal and to hand to a speech engine or screen reader.

An answer comes from a model or a server, so it may hold terminal escape sequences (which can
retitle a terminal, move the cursor, hide text or worse), other control characters, or bidi
override characters that make text read in a different order than it is stored. `safe_text`
removes them all, keeping newline and tab; `SafeTextStream` does the same for text that arrives
in pieces, holding back an escape sequence split between two pieces. JSON output keeps the
original text with these characters escaped (`escape_unsafe_in_json`).
"""

from __future__ import annotations

import re

#: Escape sequences, removed whole: CSI (ESC [ or the one-byte C1 form), the string commands
#: OSC, DCS, SOS, PM and APC (up to BEL or the string terminator), and two-character escapes.
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[ -/]*[0-~]"
)
#: The start of a sequence that a later piece may finish (at the very end of the text).
_UNFINISHED = re.compile(
    r"(?:(?:\x1b\[|\x9b)[0-?]*[ -/]*"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*\x1b?"
    r"|\x1b[ -/]*)\Z"
)
#: Single characters never passed on: C0 controls but tab and newline, DEL, C1 controls, and the
#: bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069).
_UNSAFE_CHAR = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: What JSON must escape on top of what json.dumps escapes itself (it leaves C1 and bidi raw).
_JSON_RAW = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
#: An unfinished sequence longer than this is not held back any more (it is stripped as text).
MAX_HELD = 4096


def safe_text(text: str) -> str:
    """`text` without escape sequences, control characters (but newline and tab) or bidi overrides.

    Carriage returns go too: a lone one would let text overwrite the line before it.
    """
    if not text:
        return text
    return _UNSAFE_CHAR.sub("", _SEQUENCE.sub("", text))


def escape_unsafe_in_json(encoded: str) -> str:
    """Escape, as \\uXXXX, the characters json.dumps(ensure_ascii=False) leaves raw but a
    terminal would act on. Only valid on json.dumps output (they can only occur inside strings)."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", encoded)


class SafeTextStream:
    """safe_text for text in pieces: a sequence split across two pieces is removed whole."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        self._held = ""
        tail = _UNFINISHED.search(text)
        if tail is not None and tail.start() < len(text) and len(text) - tail.start() <= MAX_HELD:
            self._held = text[tail.start() :]
            text = text[: tail.start()]
        return safe_text(text)

    def flush(self) -> str:
        """The end of the text: an unfinished sequence loses its control characters; the rest is text."""
        text, self._held = self._held, ""
        return safe_text(text)
