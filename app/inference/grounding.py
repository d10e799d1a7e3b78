"""Answers grounded in the picture's own text: the OCR text goes into the prompt, and a guard
checks what the answer quotes against it.

With the model present, a describe or ask request about a picture also carries the text that
on-device recognition read from the same picture, in reading order, so names, numbers and
messages can be quoted exactly. The model can still misread or invent a string, so the answer is
checked sentence by sentence as it streams (speech still starts at the first sentence):

What counts as a quote (the things a user would act on or repeat):
- text in quotation marks: "...", “...”, „...“, «...», ‘...’ and '...' between spaces;
- numbers that identify rather than count: three or more digits, or with a separator, a currency
  sign or a percent sign (1,024, 3.5, 10:30, 2026-12-03, $12, 45%). Small counts ("two
  buttons", "3 tabs") are the model's own description, not quotes, and are not checked;
- names: a run of two or more capitalised words ("Jane Doe", "Visual Studio Code"); a run that
  starts a sentence counts only from three words ("The Save button" is not a name). Single
  capitalised words are not checked: an application named from its icon ("Firefox") or a plain
  word at the start of a sentence would be hedged for no reason.

A quote is found when its normalised form (case, quote marks, dashes and spacing unified) is in the
normalised text, with spaces or without (OCR sometimes drops them), or, for words of four
characters or more, when a stretch of the text matches it at 80 % or better (OCR misreads a letter
now and then). Numbers must match exactly: a number off by one digit is exactly what the guard is
for. A quote that is not found is hedged: the sentence is kept and followed by
'It may say "X"; I could not find that in the picture's text.'
"""

from __future__ import annotations

import difflib
import logging
import re
import unicodedata
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from app.core.types import ImageInput, Task

log = logging.getLogger(__name__)

#: The requests that get the picture's text: describing and asking. Reading tasks are answered
#: by reading, and the OCR default already reads without the model.
GROUNDED_TASKS = frozenset({Task.DESCRIBE_BRIEF, Task.DESCRIBE_FULL, Task.ASK_IMAGE, Task.CAMERA_SCENE})
#: The most text attached to one request (about 1,500 tokens): a remote server gets at most this;
#: the local backend trims further to its turn's token budget.
MAX_SCREEN_TEXT_CHARS = 6000
#: The most text sent to a backend that does not count tokens itself (a server): about 600 tokens,
#: so a 1080p picture at the server's 12 crops, the prompt and a 512-token answer stay inside a
#: 4096-token server window.
UNCOUNTED_SCREEN_TEXT_CHARS = 2400
#: Below this many tokens of room, the picture's text is left out rather than cut to a stub.
MIN_SCREEN_TEXT_TOKENS = 24
#: Said (as the last line of the text) when the text was cut to fit.
TRIMMED_MARK = "(more text not included)"
FUZZY_RATIO = 0.8

HEDGE_ONE = " It may say {items}; I could not find that in the picture's text."
HEDGE_MANY = " It may say {items}; I could not find those in the picture's text."


# --- the picture's text -------------------------------------------------------------------------


def blocks_to_text(blocks: Iterable[Iterable[str]]) -> str:
    """Blocks of lines (ocr.reading_order) as text: a line per line, a blank line between blocks."""
    return "\n\n".join("\n".join(line for line in block if line.strip()) for block in blocks).strip()


#: Text already read, by picture: a follow-up question about the same picture does not read it again.
_read: weakref.WeakKeyDictionary[ImageInput, str] = weakref.WeakKeyDictionary()


def read_picture_text(ocr, image: ImageInput) -> str:
    """The picture's text in reading order, read by `ocr` (an OcrBackend); once per picture."""
    from app.inference.ocr import reading_order

    known = _read.get(image)
    if known is not None:
        return known
    lines = ocr.recognise(image.pixels, maybe_upside_down=image.source == "camera")
    text = blocks_to_text(reading_order(lines))
    _read[image] = text
    return text


def cap_chars(text: str, limit: int = MAX_SCREEN_TEXT_CHARS) -> str:
    """The leading whole lines of `text` that fit in `limit` characters, marked when cut."""
    if len(text) <= limit:
        return text
    kept: list[str] = []
    used = len(TRIMMED_MARK) + 1
    for line in text.split("\n"):
        if used + len(line) + 1 > limit:
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join([*kept, TRIMMED_MARK]).strip()


def trim_to_tokens(text: str, budget: int, count: Callable[[str], int]) -> str:
    """The leading whole lines of `text` (reading order: the top of the picture first) that fit in
    `budget` tokens by `count`, with TRIMMED_MARK when lines were left out; "" when too little fits.

    Lines are counted one by one (byte-level BPE counts of a text and of its lines differ by at
    most a token or two per line, so a line's cost is taken as its count plus one for the newline).
    """
    if not text or budget < MIN_SCREEN_TEXT_TOKENS:
        return ""
    if count(text) <= budget:
        return text
    mark = count(TRIMMED_MARK) + 1
    kept: list[str] = []
    used = mark
    for line in text.split("\n"):
        cost = count(line) + 1 if line else 1
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
    while kept and not kept[-1].strip():
        kept.pop()
    if not kept:
        return ""
    return "\n".join([*kept, TRIMMED_MARK])


# --- the guard ----------------------------------------------------------------------------------

_QUOTE_PAIRS = (
    ('"', '"'),
    ("\u201c", "\u201d"),  # “ ”
    ("\u201e", "\u201c"),  # „ “
    ("\u00ab", "\u00bb"),  # « »
    ("\u2018", "\u2019"),  # ‘ ’
)
_QUOTED_RE = re.compile(
    "|".join(
        f"{re.escape(a)}([^{re.escape(a)}{re.escape(b)}\\n]{{1,160}}){re.escape(b)}" for a, b in _QUOTE_PAIRS
    )
    + r"|(?:(?<=\s)|^)'([^'\n]{1,160})'(?=[\s.,;:!?)]|$)"
)
#: Words that start a sentence with a capital but are never part of a name.
_LEADING_WORDS = frozenset(
    re.findall(
        r"\w+",
        "a an the this that these those it its there then next and but or so if when while in on at "
        "to from under below above beside near your my our their his her one two three",
    )
)
_NUMBER_RE = re.compile(r"[$€£¥]?\d+(?:[.,:/-]\d+)*%?")
_WORD_RE = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ][\w'’&.-]*")
_TRANSLATE = str.maketrans(
    {
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2018": "'",
        "\u2019": "'",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u00a0": " ",
    }
)


def normalise(text: str) -> str:
    """Case, width, quote marks, dashes and spacing unified; surrounding punctuation removed."""
    text = unicodedata.normalize("NFKC", text).translate(_TRANSLATE).casefold()
    return re.sub(r"\s+", " ", text).strip(" .,;:!?\"'()[]")


def _is_identifying_number(token: str) -> bool:
    digits = sum(ch.isdigit() for ch in token)
    return digits >= 3 or any(ch in token for ch in ".,:/-$€£¥%")


@dataclass(frozen=True)
class Quote:
    text: str  # as the answer wrote it
    kind: str  # "quoted", "number" or "name"


def find_quotes(sentence: str) -> list[Quote]:
    """The strings a sentence quotes from the picture (see the module's docstring for the rules)."""
    quotes: list[Quote] = []
    taken: list[tuple[int, int]] = []
    for m in _QUOTED_RE.finditer(sentence):
        inner = next(g for g in m.groups() if g is not None).strip()
        if inner:
            quotes.append(Quote(inner, "quoted"))
            taken.append(m.span())

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    for m in _NUMBER_RE.finditer(sentence):
        token = m.group().rstrip(".,:/-")
        if free(*m.span()) and _is_identifying_number(token) and any(ch.isdigit() for ch in token):
            quotes.append(Quote(token, "number"))
    words = list(_WORD_RE.finditer(sentence))
    first = next((w for w in words), None)
    run: list[re.Match] = []

    def close_run() -> None:
        # At the start of a sentence a capital says nothing ("The Save button"), unless the run is
        # long enough to be a name by itself ("Visual Studio Code").
        names = list(run)
        if run and run[0] is first and (len(run) < 3 or run[0].group().casefold() in _LEADING_WORDS):
            names = run[1:]
        if len(names) >= 2 and free(names[0].start(), names[-1].end()):
            quotes.append(Quote(sentence[names[0].start() : names[-1].end()].rstrip(".'’"), "name"))
        run.clear()

    for w in words:
        capital = w.group()[0].isupper() and w.group() != "I"
        adjacent = bool(run) and sentence[run[-1].end() : w.start()].strip() == ""
        if capital and (not run or adjacent):
            run.append(w)
            continue
        close_run()
        if capital:
            run.append(w)
    close_run()
    return quotes


class QuoteGuard:
    """Checks the quotes of an answer against the picture's text."""

    def __init__(self, picture_text: str):
        self.text = normalise(picture_text)
        self.compact = self.text.replace(" ", "")
        self._words = self.text.split(" ")
        self._numbers = {re.sub(r"\D", "", n) for n in _NUMBER_RE.findall(self.text)}
        #: every quote hedged so far, in order (for the log and tests)
        self.hedged: list[str] = []
        self.checked = 0

    def found(self, quote: Quote) -> bool:
        claim = normalise(quote.text)
        if not claim:
            return True
        if claim in self.text or claim.replace(" ", "") in self.compact:
            return True
        if quote.kind == "number":
            digits = re.sub(r"\D", "", claim)
            return len(digits) >= 3 and any(digits == n for n in self._numbers)
        if len(claim) < 4:
            return False
        return self._fuzzy(claim)

    def _fuzzy(self, claim: str) -> bool:
        n = max(1, claim.count(" ") + 1)
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2(claim)
        for size in (n, n + 1, n - 1):
            if size < 1:
                continue
            for i in range(0, max(1, len(self._words) - size + 1)):
                window = " ".join(self._words[i : i + size])
                matcher.set_seq1(window)
                if (
                    matcher.real_quick_ratio() >= FUZZY_RATIO
                    and matcher.quick_ratio() >= FUZZY_RATIO
                    and matcher.ratio() >= FUZZY_RATIO
                ):
                    return True
        return False

    def missing(self, sentence: str) -> list[str]:
        out: list[str] = []
        for quote in find_quotes(sentence):
            self.checked += 1
            shown = quote.text.rstrip(".,;:")
            if not self.found(quote) and shown not in out:
                out.append(shown)
        return out

    def hedge(self, sentence: str) -> str:
        """The sentence, followed by a hedge for each quote the picture's text does not hold."""
        missing = self.missing(sentence)
        if not missing:
            return sentence
        self.hedged.extend(missing)
        items = " and ".join(f'"{m}"' for m in missing)
        body = sentence.rstrip()
        tail = sentence[len(body) :]
        ended = body[-1:] in _ENDS or (len(body) > 1 and body[-1] in "\"'”’»" and body[-2] in _ENDS)
        if body and not ended:
            body += "."
        return body + (HEDGE_ONE if len(missing) == 1 else HEDGE_MANY).format(items=items) + tail


# --- streaming ----------------------------------------------------------------------------------

_OPENERS = {a: b for a, b in _QUOTE_PAIRS if a != b}
_ENDS = ".!?。！？"


def _sentence_end(buf: str, start: int) -> int | None:
    """Index just past the first sentence end at or after `start`, with its trailing space, or None.

    A sentence ends at . ! ? followed by white space (a full stop inside 3.50 or e.g.x is not an
    end), at a CJK full stop, or at a line break; never inside an open quotation.
    """
    in_straight = False
    open_curly: list[str] = []
    i = start
    while i < len(buf):
        ch = buf[i]
        if ch == '"':
            in_straight = not in_straight
        elif ch in _OPENERS:
            open_curly.append(_OPENERS[ch])
        elif open_curly and ch == open_curly[-1]:
            open_curly.pop()
        quoted = in_straight or bool(open_curly)
        if ch == "\n" and not quoted:
            return i + 1
        closing = ch == '"' or ch in _OPENERS.values()
        if closing and not quoted and i > start and buf[i - 1] in _ENDS:  # ... "Stop." Then
            j = i + 1
            if j < len(buf) and buf[j].isspace():
                while j < len(buf) and buf[j].isspace():
                    j += 1
                return j
            if j >= len(buf):
                return None
        if ch in _ENDS and not quoted:
            j = i + 1
            while j < len(buf) and buf[j] in _ENDS + "\"'”’)":
                j += 1
            if ch in "。！？":
                return j
            if j < len(buf) and buf[j].isspace():
                while j < len(buf) and buf[j].isspace():
                    j += 1
                return j
            if j >= len(buf):
                return None  # the next chunk says whether this was the end
            i = j
            continue
        if ch == "\n" and quoted:  # a quotation never spans lines: treat the quote as unclosed text
            in_straight = False
            open_curly.clear()
            return i + 1
        i += 1
    return None


class GuardedStream:
    """Feed it the answer's chunks; it returns whole sentences, each checked and hedged."""

    def __init__(self, guard: QuoteGuard, max_pending: int = 600):
        self.guard = guard
        self._buf = ""
        self._max_pending = max_pending

    def feed(self, chunk: str) -> list[str]:
        self._buf += chunk
        out = []
        while True:
            end = _sentence_end(self._buf, 0)
            if end is None:
                if len(self._buf) > self._max_pending:  # a run-on answer: check what we have
                    cut = self._buf.rfind(" ", 0, self._max_pending) + 1 or self._max_pending
                    out.append(self.guard.hedge(self._buf[:cut]))
                    self._buf = self._buf[cut:]
                    continue
                return out
            out.append(self.guard.hedge(self._buf[:end]))
            self._buf = self._buf[end:]

    def flush(self) -> list[str]:
        rest, self._buf = self._buf, ""
        return [self.guard.hedge(rest)] if rest else []


def guard_stream(chunks: Iterable[str], guard: QuoteGuard) -> Iterator[str]:
    """The chunks as checked sentences, each yielded as soon as it is complete."""
    stream = GuardedStream(guard)
    try:
        for chunk in chunks:
            yield from stream.feed(chunk)
        yield from stream.flush()
    finally:  # a consumer that stops early stops the backend's generation too, at once
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
