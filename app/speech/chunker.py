"""SentenceChunker: streamed text chunks in, speakable sentences out, as early as possible.

The model streams its answer a few characters at a time. Speech should start as soon as the first
sentence is complete, so `feed()` returns every sentence that is certainly finished and keeps the
rest. A sentence ends at `.`, `!`, `?` or `…` followed by white space, at a blank line, and at the
end of a heading or list item. Chinese and Japanese write no space after a sentence: `。`, `！`,
`？` (and their half-width and full-width forms) end one at once, after any closing quote or
bracket, and so do `!` and `?` right before a Chinese or Japanese character. A sentence does not
end after abbreviations in any offered answer language (Dr., e.g., z.B., d. h., bzw., p. ex.,
Sra., ecc. before a lowercase word; etc. only before a capital), after "No." before a number,
inside decimals and version numbers (3.14, v2.1), after initials (J. K.), after a day before a
German month ("am 3. Oktober"), or after the number of a numbered list item. Where the next
character decides, the chunker waits for it. Markdown is stripped: headings, bullets, **bold**,
_italic_, `code`, [links](url), tables. Fenced code blocks are not read out; the listener hears
that there is code on screen instead.

Pure Python, no threads: it is driven by whoever receives the chunks.
"""

from __future__ import annotations

import re

# Abbreviations that never end a sentence (the next word belongs to the same sentence), lowercase,
# without the final full stop. Every offered answer language is covered at once (the chunker does
# not know the language): a word is listed only where it is no ordinary word in another of them
# (Italian "es." is left out: German "es" often ends a sentence).
_NEVER_END = {
    # English
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "mt", "fig", "figs", "vs", "cf",
    "e.g", "i.e", "eg", "ie", "approx", "ca", "dept", "est", "vol", "pp", "p", "ch", "sec", "gen",
    "col", "lt", "sgt", "capt", "gov", "rev", "hon", "ave", "rd", "blvd", "apt", "tel", "ext",
    # German (nouns are capitalised, so these must never wait for a lowercase word)
    "z.b", "d.h", "u.a", "o.a", "u.u", "z.t", "v.a", "s.o", "s.u", "o.ä", "u.ä", "bzw", "vgl", "ggf",
    "evtl", "inkl", "exkl", "zzgl", "bspw", "sog", "str", "hr", "fr", "mio", "mrd", "tsd", "std",
    "jh", "abb", "bzgl", "ggü", "usf", "geb", "hrsg",
    # French
    "mme", "mlle", "p.ex", "env", "av", "bd", "chap",
    # Spanish and Portuguese
    "sra", "srta", "dra", "dña", "ud", "uds", "vd", "vds", "p.ej", "pág", "pag", "avda", "aprox",
    "v.sa", "ex.mo", "ex.ma", "sto", "sta",
    # Italian
    "sig", "sig.ra", "sig.na", "dott", "dott.ssa", "ing", "avv", "prof.ssa", "geom",
}  # fmt: skip
# "No." (and its German, Spanish and Portuguese forms) is an abbreviation only before a number.
_BEFORE_NUMBER = {"no", "nos", "nr", "núm", "num", "nº", "n.º"}
# Abbreviations that may end a sentence: a boundary only when the next word starts with a capital.
_MAYBE_END = {
    "etc", "inc", "ltd", "co", "corp", "al", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec", "a.m", "p.m", "am", "pm", "u.s", "u.k", "min", "max", "km", "cm",
    "mm", "kg", "lb", "lbs", "oz",
    "usw", "ecc", "ee.uu",
}  # fmt: skip
# "am 3. Oktober": the full stop after a day is no sentence end before a German month.
_GERMAN_MONTHS = {
    "januar", "jänner", "februar", "märz", "april", "mai", "juni", "juli", "august", "september",
    "oktober", "november", "dezember",
}  # fmt: skip

CODE_BLOCK_SENTENCE = "There is a code block on screen."

_ENDERS = ".!?…"
# Chinese and Japanese sentence ends (ideographic, half-width and full-width forms): no space follows.
_CJK_ENDERS = "。｡！？．"
_CLOSERS = "\"')]}”’»*_`」』）】〕〉》｣〗〙"
_SPACE_AFTER = " \t\n\u3000"  # the ideographic space too
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


def _is_cjk(ch: str) -> bool:
    """A Chinese character or Japanese kana (written without spaces between words)."""
    o = ord(ch)
    return (
        0x3040 <= o <= 0x30FF  # hiragana, katakana
        or 0x3400 <= o <= 0x4DBF  # CJK extension A
        or 0x4E00 <= o <= 0x9FFF  # CJK unified ideographs
        or 0xF900 <= o <= 0xFAFF  # compatibility ideographs
        or 0xFF66 <= o <= 0xFF9F  # half-width katakana
        or 0x20000 <= o <= 0x2FA1F  # extensions B and later
    )


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
            elif ch in _CJK_ENDERS and not in_code and bracket == 0:
                # Chinese and Japanese: the sentence ends here, with any closing quote after it.
                j = i + 1
                while j < n and buf[j] in _CJK_ENDERS + _ENDERS:
                    j += 1
                while j < n and buf[j] in _CLOSERS:
                    j += 1
                if j >= n and not final:
                    return None  # a closing quote may follow
                if ch != "．" or (i > 0 and _is_cjk(buf[i - 1])):  # "．" in "3．5" is a decimal point
                    return j
                i = j
                continue
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
                if buf[j] in _SPACE_AFTER:
                    verdict = self._sentence_end(buf, line_start, i, j, final)
                    if verdict == "wait":
                        return None
                    if verdict == "cut":
                        return j
                elif _is_cjk(buf[j]) and (ch in "!?" or (i > 0 and _is_cjk(buf[i - 1]))):
                    return j  # "好!我们" or "です.次": Chinese and Japanese put no space after it
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
        if line.rstrip()[-1:] in _ENDERS + _CJK_ENDERS + ":：" or nxt[0].isupper():
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
            before = re.search(r"(?:^|[\s(\"'])([^\W\d_]{1,3})\.[ \t]?$", buf[line_start:k])
            if before and f"{before.group(1).lower()}.{word}" in _NEVER_END:
                return "skip"  # the second part of "d. h." or "p. ex."
            if word in _BEFORE_NUMBER:
                return self._next_matches(buf, j, final, lambda c: c.isdigit())
            if re.fullmatch(r"\d{1,2}", word) and i + 1 == j:
                verdict = self._next_word_in(buf, j, final, _GERMAN_MONTHS)
                if verdict != "cut":
                    return verdict  # "am 3. Oktober"
            if 1 <= len(word) <= 3 and word.isalpha() and i + 1 == j:
                verdict = self._spaced_abbreviation(buf, word, j, final)
                if verdict != "cut":
                    return verdict  # "z. B.", "d. h.", "p. ex."
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
        while k < len(buf) and buf[k] in " \t\u3000":
            k += 1
        if k >= len(buf):
            return "cut" if final else "wait"
        nxt = buf[k]
        if nxt == "\n" or nxt.isupper() or nxt.isdigit() or nxt in "\"'“([*#-" or _is_cjk(nxt):
            return "cut"
        return "skip"

    @staticmethod
    def _next_matches(buf: str, j: int, final: bool, test) -> str:
        """Skip when the next character on the line passes `test`, "cut" when not, "wait" if unknown."""
        k = j
        while k < len(buf) and buf[k] in " \t":
            k += 1
        if k >= len(buf):
            return "cut" if final else "wait"
        return "skip" if test(buf[k]) else "cut"

    @staticmethod
    def _next_word_in(buf: str, j: int, final: bool, words: set[str]) -> str:
        """Skip when the next word is one of `words`, "cut" when not, "wait" while it may still be."""
        m = re.match(r"[ \t]*(\w*)", buf[j:])
        assert m is not None  # both parts may be empty, so the pattern always matches
        word = m.group(1).lower()
        complete = j + m.end() < len(buf)
        if complete or final:
            return "skip" if word in words else "cut"
        return "wait" if any(w.startswith(word) for w in words) else "cut"

    @staticmethod
    def _spaced_abbreviation(buf: str, word: str, j: int, final: bool) -> str:
        """Skip at the first part of an abbreviation written with a space ("z. B.", "p. ex."),
        "wait" while the next characters may still make one, "cut" otherwise."""
        candidates = [a for a in _NEVER_END if a.startswith(f"{word}.")]
        if not candidates:
            return "cut"
        rest = buf[j:]
        m = re.match(r"[ \t]?([^\W\d_]{1,3})(\.?)", rest)
        if m is None:
            return "wait" if not final and rest in ("", " ", "\t") else "cut"
        joined = f"{word}.{m.group(1).lower()}"
        if m.group(2) and joined in candidates:
            return "skip"
        if not m.group(2) and m.end() == len(rest) and not final:
            return "wait" if any(a.startswith(joined) for a in candidates) else "cut"
        return "cut"

    def _forced_cut(self) -> int | None:
        """No boundary yet, but the text is long: cut at the last pause so speech is not held back."""
        buf = self._buf
        if len(buf) < self._max_pending:
            return None
        window = buf[: self._max_pending]
        for sep in ("; ", "；", ": ", "：", ", ", "，", "、", " – ", " - ", " "):
            pos = window.rfind(sep)
            if pos > self._max_pending // 3:
                return pos + len(sep)
        return self._max_pending
