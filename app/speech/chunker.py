"""SentenceChunker: streamed text chunks in, speakable sentences out, as early as possible.

The model streams its answer a few characters at a time. Speech should start as soon as the first
sentence is complete, so `feed()` returns every sentence that is certainly finished and keeps the
rest. A sentence ends at `.`, `!`, `?` or `…` followed by white space, at a blank line, and at the
end of a heading or list item. It does not end after abbreviations (Dr., e.g., etc. before a
lowercase word), inside decimals and version numbers (3.14, v2.1), after initials (J. K.), or
after the number of a numbered list item. Where the next character decides, the chunker waits for
it. Markdown is stripped: headings, bullets, **bold**, _italic_, `code`, [links](url), tables.
Fenced code blocks are not read out; the listener hears that there is code on screen instead.

Pure Python, no threads: it is driven by whoever receives the chunks.
"""

from __future__ import annotations

import re

# Abbreviations that never end a sentence (the next word belongs to the same sentence).
_NEVER_END = {
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "mt", "fig", "figs", "no", "nos", "vs", "cf",
    "e.g", "i.e", "eg", "ie", "approx", "ca", "dept", "est", "vol", "pp", "p", "ch", "sec", "gen",
    "col", "lt", "sgt", "capt", "gov", "rev", "hon", "ave", "rd", "blvd", "apt", "tel", "ext",
}  # fmt: skip
# Abbreviations that may end a sentence: a boundary only when the next word starts with a capital.
_MAYBE_END = {
    "etc", "inc", "ltd", "co", "corp", "al", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec", "a.m", "p.m", "am", "pm", "u.s", "u.k", "min", "max", "km", "cm",
    "mm", "kg", "lb", "lbs", "oz",
}  # fmt: skip

CODE_BLOCK_SENTENCE = "There is a code block on screen."

_ENDERS = ".!?…"
_CLOSERS = "\"')]}”’»*_`"
_BULLET_RE = re.compile(r"^\s*(?:[-*+•▪‣◦]|\d{1,3}[.)]|[a-zA-Z][.)])\s+")
_NUMBER_MARK_RE = re.compile(r"^\s*(\d{1,3}|[a-zA-Z])[.)]\s+")
_HEADING_RE = re.compile(r"^\s*#{1,6}\s+")
_RULE_RE = re.compile(r"^\s*(?:[-*_]\s*){3,}$")
_TABLE_SEP_RE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_FENCE_RE = re.compile(r"^\s*(```|~~~)")
_IMAGE_RE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK_RE = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_REF_LINK_RE = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_CODE_RE = re.compile(r"`+([^`]*)`+")
_BOLD_RE = re.compile(r"(\*\*|__)(.+?)\1")
_STAR_EM_RE = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])")
_UNDER_EM_RE = re.compile(r"(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])")
_HTML_TAG_RE = re.compile(r"</?[a-zA-Z][^>]{0,80}>")
_SPACES_RE = re.compile(r"[ \t\u00a0]+")
_BLANK_LINE_RE = re.compile(r"\n[ \t]*\n")

# Without any boundary, a long run is cut at a comma or similar so speech is not held back.
MAX_PENDING_CHARS = 280


def clean_markdown(text: str) -> str:
    """One piece of text, possibly several lines, made speakable. Returns '' if nothing is left."""
    out: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or _RULE_RE.match(line) or _TABLE_SEP_RE.match(line) or _FENCE_RE.match(line):
            continue
        line = _HEADING_RE.sub("", line)
        line = re.sub(r"^(?:>\s*)+", "", line)
        number = _NUMBER_MARK_RE.match(line)
        # A numbered item keeps its number ("2. Click Save"); a bullet is dropped.
        line = f"{number.group(1)}. " + line[number.end() :] if number else re.sub(r"^[-*+•▪‣◦]\s+", "", line)
        if line.startswith("|") or line.endswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            line = ", ".join(c for c in cells if c)
        line = _IMAGE_RE.sub(lambda m: m.group(1), line)
        line = _LINK_RE.sub(lambda m: m.group(1), line)
        line = _REF_LINK_RE.sub(lambda m: m.group(1), line)
        line = _CODE_RE.sub(lambda m: m.group(1), line)
        line = _BOLD_RE.sub(lambda m: m.group(2), line)
        line = _STAR_EM_RE.sub(lambda m: m.group(1), line)
        line = _UNDER_EM_RE.sub(lambda m: m.group(1), line)
        line = _HTML_TAG_RE.sub("", line)
        # Markers left over where a sentence boundary split a bold or code span.
        line = line.replace("**", "").replace("__", "").replace("`", "")
        line = re.sub(r"(?<!\w)\*(?=\w)|(?<=[\w.!?,;:])\*(?!\w)", "", line)
        line = re.sub(r"^\s*#+\s*$", "", line)
        line = _SPACES_RE.sub(" ", line).strip()
        if line:
            out.append(line)
    return " ".join(out)


def _is_list_or_heading(line: str) -> bool:
    return bool(_BULLET_RE.match(line) or _HEADING_RE.match(line))


class SentenceChunker:
    """Feed it streamed chunks; it returns finished, cleaned sentences.

    >>> c = SentenceChunker()
    >>> c.feed("Dr. Smith paid $3.50. Then he")
    ['Dr. Smith paid $3.50.']
    >>> c.flush()
    ['Then he']
    """

    def __init__(self, max_pending: int = MAX_PENDING_CHARS) -> None:
        self._buf = ""
        self._max_pending = max_pending
        self._in_code_block = False
        self._code_announced = False
        # Paragraphs: the raw text between the last sentence and the next, and for each sentence
        # returned (in order) whether it starts a paragraph. See feed_marked().
        self._gap = ""
        self._emitted = 0
        self._starts: list[bool] = []

    def reset(self) -> None:
        self._buf = ""
        self._in_code_block = False
        self._code_announced = False
        self._gap = ""
        self._emitted = 0
        self._starts = []

    def feed(self, chunk: str) -> list[str]:
        return [sentence for sentence, _ in self.feed_marked(chunk)]

    def flush(self) -> list[str]:
        """The end of the stream: whatever is left becomes the last sentence."""
        return [sentence for sentence, _ in self.flush_marked()]

    def feed_marked(self, chunk: str) -> list[tuple[str, bool]]:
        """Like feed(), with each sentence paired with whether it starts a paragraph: the first
        sentence, one after a blank line, a rule or a code block. Paragraph keys jump by these."""
        if not chunk:
            return []
        self._buf += chunk.replace("\r\n", "\n").replace("\r", "\n")
        return self._marked(self._drain(final=False))

    def flush_marked(self) -> list[tuple[str, bool]]:
        out = self._drain(final=True)
        rest, self._buf = self._buf, ""
        if self._in_code_block:
            self._in_code_block = False
            return self._marked(out)
        self._take(out, rest)
        return self._marked(out)

    def _marked(self, out: list[str]) -> list[tuple[str, bool]]:
        starts, self._starts = self._starts, []
        return list(zip(out, starts, strict=True))

    def _take(self, out: list[str], piece: str, cleaned: str | None = None) -> None:
        """Appends the speakable form of a raw piece (if any) and notes whether it starts a paragraph."""
        if cleaned is None:
            cleaned = clean_markdown(piece)
        if not cleaned:
            # Nothing to say (a rule, a table separator, white space): a rule separates paragraphs.
            self._gap += piece if not piece.strip() else "\n\n"
            return
        lead = piece[: len(piece) - len(piece.lstrip())]
        starts = self._emitted == 0 or _BLANK_LINE_RE.search(self._gap + lead) is not None
        self._gap = piece[len(piece.rstrip()) :]
        self._emitted += 1
        out.append(cleaned)
        self._starts.append(starts)

    # -- internals ---------------------------------------------------------------------------

    def _drain(self, final: bool) -> list[str]:
        out: list[str] = []
        while True:
            if self._handle_code_fences(out, final):
                continue
            if self._in_code_block:
                return out
            cut = self._find_boundary(final)
            if cut is None:
                cut = self._forced_cut()
            if cut is None:
                return out
            piece, self._buf = self._buf[:cut], self._buf[cut:]
            self._take(out, piece)

    def _handle_code_fences(self, out: list[str], final: bool) -> bool:
        """Consumes fenced code blocks; returns True if the buffer changed."""
        buf = self._buf
        if self._in_code_block:
            # Drop lines until the closing fence.
            pos = 0
            while True:
                nl = buf.find("\n", pos)
                line = buf[pos:] if nl < 0 else buf[pos:nl]
                if _FENCE_RE.match(line) and (nl >= 0 or final):
                    self._buf = buf[(len(buf) if nl < 0 else nl + 1) :]
                    self._in_code_block = False
                    return True
                if nl < 0:
                    self._buf = buf[pos:]
                    return False
                pos = nl + 1
        # A fence at the start of a line, with the line before it complete.
        m = re.search(r"(?:^|\n)[ \t]*(```|~~~)", buf)
        if not m:
            return False
        start = m.start() + (1 if buf[m.start()] == "\n" else 0)
        self._take(out, buf[:start])
        nl = buf.find("\n", m.end())
        if not self._code_announced:
            self._gap += "\n\n"
            self._take(out, CODE_BLOCK_SENTENCE, CODE_BLOCK_SENTENCE)
            self._code_announced = True
        self._gap += "\n\n"  # what follows the code block starts a paragraph
        self._in_code_block = True
        self._buf = "" if nl < 0 else buf[nl + 1 :]
        # If the opening fence line is not complete yet, it is dropped and we wait for content.
        return nl >= 0

    def _find_boundary(self, final: bool) -> int | None:
        """Index just after the first certain sentence end, or None."""
        buf = self._buf
        n = len(buf)
        bracket = 0  # inside [link text] or (url)
        in_code = False
        line_start = 0
        i = 0
        while i < n:
            ch = buf[i]
            if ch == "`":
                in_code = not in_code
            elif not in_code:
                if ch in "[(":
                    bracket += 1
                elif ch in ")]" and bracket:
                    bracket -= 1
            if ch == "\n":
                decision = self._newline_decision(buf, line_start, i, final)
                if decision == "wait":
                    return None
                if decision == "cut":
                    return i + 1
                line_start = i + 1
                in_code = False
                bracket = 0
            elif ch in _ENDERS and not in_code and bracket == 0:
                j = i + 1
                while j < n and buf[j] in _ENDERS:
                    j += 1
                while j < n and buf[j] in _CLOSERS:
                    j += 1
                if j >= n:
                    if final:
                        return n
                    return None  # the next character decides
                if buf[j] in " \t\n":
                    verdict = self._sentence_end(buf, line_start, i, j, final)
                    if verdict == "wait":
                        return None
                    if verdict == "cut":
                        return j
                i = j
                continue
            i += 1
        return None

    def _newline_decision(self, buf: str, line_start: int, nl: int, final: bool) -> str:
        line = buf[line_start:nl]
        if not line.strip():
            return "cut" if buf[:line_start].strip() else "skip"
        if _is_list_or_heading(line) or _TABLE_SEP_RE.match(line) or line.strip().startswith("|"):
            return "cut"
        # Look at the start of the next line.
        k = nl + 1
        while k < len(buf) and buf[k] in " \t":
            k += 1
        if k >= len(buf):
            return "cut" if final else "wait"
        nxt = buf[k:]
        if nxt[0] == "\n" or _is_list_or_heading(nxt + " ") or nxt[0] in "|>`~":
            return "cut"
        if len(nxt) < 3 and not final and re.match(r"^(\d{1,3}|[a-zA-Z])[.)]?$|^#+$", nxt):
            return "wait"  # might become a list marker or heading
        if line.rstrip()[-1:] in _ENDERS + ":" or nxt[0].isupper():
            return "cut"
        return "join"  # a soft line wrap inside a paragraph

    def _sentence_end(self, buf: str, line_start: int, i: int, j: int, final: bool) -> str:
        ch = buf[i]
        # The word before the punctuation.
        k = i
        while k > line_start and not buf[k - 1].isspace():
            k -= 1
        word = buf[k:i].strip("\"'([{*_`").lower()
        if ch == ".":
            at_line_start = k == line_start or not buf[line_start:k].strip()
            if at_line_start and re.fullmatch(r"\d{1,3}|[a-z]", word) and i + 1 == j:
                return "skip"  # "1." or "a." at the start of a line is a list marker, not a sentence
            if word in _NEVER_END:
                return "skip"
            if len(word) == 1 and word.isalpha() and buf[k:i].isupper():
                return "skip"  # an initial, as in J. K. Rowling
            if word in _MAYBE_END or (len(word) == 1 and word.isalpha()) or buf[i + 1 : i + 2] == ".":
                return self._next_is_capital(buf, j, final)
        elif ch == "…":
            return self._next_is_capital(buf, j, final)
        return "cut"

    @staticmethod
    def _next_is_capital(buf: str, j: int, final: bool) -> str:
        k = j
        while k < len(buf) and buf[k] in " \t":
            k += 1
        if k >= len(buf):
            return "cut" if final else "wait"
        nxt = buf[k]
        if nxt == "\n" or nxt.isupper() or nxt.isdigit() or nxt in "\"'“([*#-":
            return "cut"
        return "skip"

    def _forced_cut(self) -> int | None:
        """No boundary yet, but the text is long: cut at the last pause so speech is not held back."""
        buf = self._buf
        if len(buf) < self._max_pending:
            return None
        window = buf[: self._max_pending]
        for sep in ("; ", ": ", ", ", " – ", " - ", " "):
            pos = window.rfind(sep)
            if pos > self._max_pending // 3:
                return pos + len(sep)
        return self._max_pending
