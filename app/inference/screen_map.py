"""What text recognition found on a screen, as a list to move through: blocks, lines and words.

Explore mode (app/ui/explore.py) turns a window or the screen into this map and moves a cursor
over it with the arrow keys: line by line, word by word, block by block, to the first or last line,
or to the best match for typed text. Each item knows its rectangle in screen pixels, so the app
can move the pointer to its centre and click it, and where it is on the explored area, said the
way a person says it ("Save, bottom right").

Qt-free and engine-free: it is built from the TextLines of app.inference.ocr.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.core.types import Bounds
from app.inference.ocr import TextLine, layout, split_words

BLOCK, LINE, WORD = "block", "line", "word"
# Below this similarity a typed search finds nothing rather than something unrelated.
MIN_MATCH = 0.75


@dataclass(frozen=True)
class Item:
    """One block, line or word, as a rectangle in screen pixels."""

    kind: str  # BLOCK, LINE or WORD
    text: str
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def center(self) -> tuple[int, int]:
        return round((self.x0 + self.x1) / 2), round((self.y0 + self.y1) / 2)


@dataclass(frozen=True)
class _Line:
    item: Item
    words: tuple[Item, ...]
    block: int


def _union(kind: str, text: str, items: Sequence[Item]) -> Item:
    return Item(
        kind,
        text,
        min(i.x0 for i in items),
        min(i.y0 for i in items),
        max(i.x1 for i in items),
        max(i.y1 for i in items),
    )


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w%]+", " ", text.casefold()).split())


class ScreenMap:
    """The recognised text of one explored area, with a cursor.

    The cursor sits on a line; `unit` says whether the user last moved by block, line or word,
    and so which item `current` is (the one Enter clicks)."""

    def __init__(self, lines: Sequence[_Line], blocks: Sequence[tuple[int, int]], area: Bounds):
        self._lines = list(lines)
        self._blocks = list(blocks)  # (first line, last line) of each block
        self.area = area
        self.line = 0
        self.word: int | None = None
        self.unit = LINE
        self._matches: list[tuple[int, int | None]] = []
        self._match_index = -1
        self.query = ""

    @classmethod
    def from_ocr(
        cls, lines: Sequence[TextLine], bounds: Bounds | None, image_size: tuple[int, int]
    ) -> ScreenMap:
        """From lines in image pixels of an image of `image_size` (width, height) captured at
        `bounds` on the screen (None: a file, where image pixels are the coordinates)."""
        width, height = image_size
        if bounds is None:
            bounds = Bounds(0, 0, width, height)
        sx = bounds.width / max(1, width)
        sy = bounds.height / max(1, height)

        def placed(kind: str, text: str, x0: float, y0: float, x1: float, y1: float) -> Item:
            return Item(
                kind, text, bounds.x + x0 * sx, bounds.y + y0 * sy, bounds.x + x1 * sx, bounds.y + y1 * sy
            )

        out_lines: list[_Line] = []
        out_blocks: list[tuple[int, int]] = []
        for b, block in enumerate(layout(lines)):
            first = len(out_lines)
            for row in block:
                words = tuple(
                    placed(WORD, w.text, w.x0, w.y0, w.x1, w.y1) for ln in row for w in split_words(ln)
                )
                text = " ".join(ln.text.strip() for ln in row)
                line_item = _union(LINE, text, [placed(LINE, "", ln.x0, ln.y0, ln.x1, ln.y1) for ln in row])
                out_lines.append(_Line(line_item, words, b))
            out_blocks.append((first, len(out_lines) - 1))
        return cls(out_lines, out_blocks, bounds)

    # -- what is there -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._lines)

    @property
    def empty(self) -> bool:
        return not self._lines

    @property
    def block_count(self) -> int:
        return len(self._blocks)

    def lines(self) -> list[Item]:
        return [ln.item for ln in self._lines]

    def words(self, line: int) -> tuple[Item, ...]:
        return self._lines[line].words

    def block_item(self, block: int) -> Item:
        first, last = self._blocks[block]
        items = [self._lines[i].item for i in range(first, last + 1)]
        return _union(BLOCK, "\n".join(i.text for i in items), items)

    @property
    def current(self) -> Item | None:
        if self.empty:
            return None
        line = self._lines[self.line]
        if self.unit == BLOCK:
            return self.block_item(line.block)
        if self.unit == WORD and self.word is not None and line.words:
            return line.words[self.word]
        return line.item

    def where(self, item: Item) -> str:
        """Where the item's centre is on the explored area: "top left", "centre", "bottom"."""
        cx, cy = item.center
        a = self.area
        fx = (cx - a.x) / max(1, a.width)
        fy = (cy - a.y) / max(1, a.height)
        row = "top" if fy < 1 / 3 else "bottom" if fy > 2 / 3 else ""
        col = "left" if fx < 1 / 3 else "right" if fx > 2 / 3 else ""
        if row and col:
            return f"{row} {col}"
        return row or col or "centre"

    def spoken(self, item: Item | None = None) -> str:
        item = item or self.current
        if item is None:
            return ""
        text = " ".join(item.text.split())
        return f"{text}, {self.where(item)}"

    # -- moving: each returns the new current item, or None at either end (the cursor stays) ---

    def move_line(self, step: int) -> Item | None:
        target = self.line + step
        if self.empty or not 0 <= target < len(self._lines):
            return None
        self.line, self.word, self.unit = target, None, LINE
        return self.current

    def move_word(self, step: int) -> Item | None:
        if self.empty:
            return None
        line, word = self.line, self.word
        if word is None:  # on a whole line: Right goes to its first word, Left to the word before it
            word = -1 if step > 0 else 0
        word += step
        while True:
            count = len(self._lines[line].words)
            if 0 <= word < count:
                break
            line += 1 if word >= count else -1
            if not 0 <= line < len(self._lines):
                return None
            word = 0 if step > 0 else len(self._lines[line].words) - 1
        self.line, self.word, self.unit = line, word, WORD
        return self.current

    def move_block(self, step: int) -> Item | None:
        if self.empty:
            return None
        target = self._lines[self.line].block + step
        if not 0 <= target < len(self._blocks):
            return None
        self.line, self.word, self.unit = self._blocks[target][0], None, BLOCK
        return self.current

    def first(self) -> Item | None:
        return None if self.empty else self.move_line(-self.line)

    def last(self) -> Item | None:
        return None if self.empty else self.move_line(len(self._lines) - 1 - self.line)

    # -- finding --------------------------------------------------------------------------------

    def find(self, query: str) -> Item | None:
        """Move to the best match for typed text (fuzzy: a typo or a misread letter still finds it);
        None when nothing is close enough. find_next() then goes through the other matches."""
        q = _normal(query)
        self.query = query.strip()
        self._matches, self._match_index = [], -1
        if not q or self.empty:
            return None
        scored: list[tuple[float, int, int, int, int | None]] = []
        single = len(q.split()) == 1
        for i, ln in enumerate(self._lines):
            t = _normal(ln.item.text)
            score = _similarity(q, t)
            if score >= MIN_MATCH:
                # A one-word query that matches a word of a longer line points at that word
                # rather than at the whole line; a line that is just the word comes first.
                rank = 2 if single and len(ln.words) > 1 else 0
                scored.append((score, rank, i, 0, None))
            if single and len(ln.words) > 1:
                for j, w in enumerate(ln.words):
                    s = _similarity(q, _normal(w.text))
                    if s >= MIN_MATCH:
                        scored.append((s, 1, i, 1, j))
        if not scored:
            return None
        scored.sort(key=lambda m: (-m[0], m[1], m[2], m[3], m[4] or 0))
        word_lines = {line for _s, _r, line, _k, word in scored if word is not None}
        seen: set[tuple[int, int | None]] = set()
        for _score, _rank, line, _kind, word in scored:
            if word is None and line in word_lines:
                continue  # the word itself is the match, not the whole line around it
            if (line, word) not in seen:
                seen.add((line, word))
                self._matches.append((line, word))
        return self.find_next()

    def find_next(self) -> Item | None:
        if not self._matches:
            return None
        self._match_index = (self._match_index + 1) % len(self._matches)
        line, word = self._matches[self._match_index]
        self.line, self.word, self.unit = line, word, (LINE if word is None else WORD)
        return self.current

    @property
    def match_count(self) -> int:
        return len(self._matches)


def _similarity(query: str, text: str) -> float:
    if not text:
        return 0.0
    if query == text:
        return 1.0
    ratio = difflib.SequenceMatcher(None, query, text).ratio()
    if len(query) >= 3 and (text.startswith(query) or f" {query}" in f" {text}"):
        # The typed text starts the item or one of its words: "canc" finds "Cancel".
        ratio = max(ratio, 0.8 + 0.15 * len(query) / len(text))
    return ratio


# -- spoken actions ----------------------------------------------------------------------------

CLICK, RIGHT_CLICK, FIND = "click", "right_click", "find"

# What a user says to act on an item in explore mode, after it has been transcribed (by the model
# or the offline grammar of app.commands.voice): "click Save", "right-click the Save button",
# "find Cancel", "go to Print", "where is Open?". The verb comes first; "please", "the" and the
# punctuation of a transcription do not matter.
_VERBS: tuple[tuple[str, str], ...] = (
    (RIGHT_CLICK, r"right ?click(?: on)?"),
    (CLICK, r"(?:left )?click(?: on)?|press|tap(?: on)?"),
    (FIND, r"find|go to|move to|where is|show me|look for"),
)
_FILLER = r"(?:(?:please|ok|okay|now|can you|could you|would you|and)\s+)*"
_ACTION = re.compile(
    rf"{_FILLER}(?P<verb>{'|'.join(f'(?:{v})' for _a, v in _VERBS)})\s+(?:(?:the|a|an)\s+)?(?P<target>.+?)"
    r"(?:\s+please)?",
    re.IGNORECASE,
)
# Words naming the kind of control after its label: "the Save button" is labelled "Save".
CONTROL_WORDS = ("button", "link", "field", "tab", "menu", "box", "icon", "checkbox")


def parse_spoken_action(text: str) -> tuple[str, str] | None:
    """(action, target) for a spoken request to act on an item, or None when it is not one.

    action is CLICK, RIGHT_CLICK or FIND; target is the words of the item as said, without the
    article in front ("click the Save button" -> (CLICK, "Save button"); see target_variants)."""
    if not text:
        return None
    words = re.sub(r"[^\w%']+", " ", text.replace("\u2019", "'"))
    words = re.sub(r"(?<!\w)'|'(?!\w)", " ", words)  # quotes, not the apostrophe of "Don't"
    words = " ".join(re.sub(r"\b(where)'s\b", r"\1 is", words, flags=re.IGNORECASE).split())
    match = _ACTION.fullmatch(words)
    if match is None:
        return None
    verb = match.group("verb").casefold()
    action = next(a for a, pattern in _VERBS if re.fullmatch(pattern, verb))
    target = match.group("target").strip()
    return (action, target) if target else None


def target_variants(target: str) -> list[str]:
    """What to look for, in order: the words as said, then without the control words at the end
    ("Save button" -> ["Save button", "Save"])."""
    variants = [target]
    words = target.split()
    while len(words) > 1 and words[-1].casefold() in CONTROL_WORDS:
        words = words[:-1]
        variants.append(" ".join(words))
    return variants
