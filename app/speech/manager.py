"""SpeechManager: every decision about what is spoken, when, and through which driver.

- Priorities: NOW interrupts whatever is speaking and drops queued NEXT and NORMAL utterances;
  NEXT goes to the front of the queue (behind other NOW/NEXT ones) without interrupting; NORMAL
  queues.
- `stop()` silences at once and empties the queue. `cancel_job(job_id)` drops that job's queued and
  current utterances, and any that arrive later for it.
- Long answers: `short_form()` / `answer_stream()` speak the first sentences up
  to a limit, then "The full answer is on screen."; the UI shows the whole text.
- Reading (say-all): `read_all()` reads a whole text continuously until its end or stop(), and
  `read_in_full(job_id)` lets a streamed answer be read whole. The last answer stays the current
  Reading with its position (the sentence being spoken, or the first one not heard):
  `continue_reading()` goes on from there after a short form or a Stop, and `move_paragraph(+1/-1)`
  jumps to the next or previous paragraph and reads on from it.
- A driver that fails or hangs is replaced by the next in the fallback chain; the log says why.
- Events (started, finished, interrupted, dropped, driver_changed) go to `on_event` and/or an
  `events` queue. They come from the manager's worker thread (dropped: from the caller's thread),
  so a UI must hand them to its own thread (a queued signal) before touching widgets.

One worker thread speaks; callers never block on audio. Qt-free.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import IntEnum

from app.core.text import safe_text
from app.speech.chunker import SentenceChunker
from app.speech.drivers import SpeechDriver, SpeechDriverError, VoiceSettings, pick_driver
from app.speech.drivers.silent import SilentDriver

log = logging.getLogger("app.speech")

FULL_ANSWER_NOTE = "The full answer is on screen."


class Priority(IntEnum):
    NOW = 0
    NEXT = 1
    NORMAL = 2


@dataclass(eq=False)
class Utterance:
    id: int
    text: str
    priority: Priority
    job_id: Hashable | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    reading: Reading | None = None  # the text this sentence belongs to, if any
    index: int = -1  # its sentence number in that reading
    whole: bool = True  # False when only the beginning of the sentence is spoken


class Reading:
    """A text read sentence by sentence, with paragraph marks and the reader's position.

    `position` is the sentence being spoken, or the first one not yet heard; it moves as sentences
    start and end (on the speech thread, under the manager's lock). `following` means sentences
    added later (a streamed answer) are read as they arrive, for say-all.
    """

    def __init__(self, job_id: Hashable | None = None) -> None:
        self.job_id = job_id
        self.sentences: list[str] = []
        self.paragraph_starts: list[int] = []  # indexes of the sentences that begin a paragraph
        self.position = 0
        self.queued_until = 0  # sentences before this one have been queued for speech
        self.following = False
        self.complete = False

    @classmethod
    def of(cls, text: str, job_id: Hashable | None = None) -> Reading:
        reading = cls(job_id)
        chunker = SentenceChunker()
        for sentence, starts in chunker.feed_marked(text) + chunker.flush_marked():
            reading.add(sentence, starts)
        reading.complete = True
        return reading

    def add(self, sentence: str, starts_paragraph: bool) -> int:
        if starts_paragraph or not self.sentences:
            self.paragraph_starts.append(len(self.sentences))
        self.sentences.append(sentence)
        return len(self.sentences) - 1

    @property
    def text(self) -> str:
        return " ".join(self.sentences)

    @property
    def at_end(self) -> bool:
        return self.position >= len(self.sentences)

    def paragraph_of(self, index: int) -> int:
        """The paragraph number (0-based) of sentence `index`."""
        found = 0
        for number, start in enumerate(self.paragraph_starts):
            if start <= index:
                found = number
        return found


@dataclass(frozen=True)
class SpeechEvent:
    kind: str  # "started", "finished", "interrupted", "dropped", "driver_changed"
    utterance_id: int | None = None
    text: str = ""
    job_id: Hashable | None = None
    driver: str = ""
    detail: str = ""


# -- the long-text rule ------------------------------------------------------------------------


@dataclass(frozen=True)
class LongTextRule:
    """How much of an answer is spoken before pointing to the screen."""

    max_chars: int = 350
    max_sentences: int = 4
    note: str = FULL_ANSWER_NOTE


@dataclass(frozen=True)
class SpokenForm:
    sentences: tuple[str, ...]  # what is spoken, the note included when truncated
    truncated: bool
    full_text: str  # what is shown

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


class _Budget:
    def __init__(self, rule: LongTextRule) -> None:
        self.rule = rule
        self.chars = 0
        self.count = 0
        self.truncated = False

    def admit(self, sentence: str) -> str | None:
        """The sentence (possibly shortened) if it fits, else None (and the answer is truncated)."""
        if self.truncated:
            return None
        rule = self.rule
        if self.count == 0 and len(sentence) > rule.max_chars:
            # A first sentence longer than the whole budget: say its beginning, cut at a word.
            cut = sentence[: rule.max_chars].rsplit(" ", 1)[0].rstrip(",;:-– ")
            self.truncated = True
            self.count, self.chars = 1, len(cut)
            return cut + "."
        if self.count >= rule.max_sentences or self.chars + len(sentence) > rule.max_chars:
            self.truncated = True
            return None
        self.count += 1
        self.chars += len(sentence)
        return sentence


def short_form(text: str, rule: LongTextRule | None = None) -> SpokenForm:
    """What to speak for a finished answer: its first sentences, plus the note when cut short."""
    rule = rule or LongTextRule()
    chunker = SentenceChunker()
    sentences = chunker.feed(text) + chunker.flush()
    budget = _Budget(rule)
    spoken = [s for s in (budget.admit(s) for s in sentences) if s]
    if budget.truncated:
        spoken.append(rule.note)
    return SpokenForm(tuple(spoken), budget.truncated, text)


class AnswerSpeech:
    """Speaks one job's streamed answer: speech starts at the first complete sentence, and the
    long-text rule stops it after the budget with the note, unless the answer is read in full
    (`full`, or SpeechManager.read_in_full for its job). Every sentence, spoken or not, goes into
    the answer's Reading, so reading can continue where the short form stopped. Feed it from one
    thread."""

    def __init__(
        self,
        manager: SpeechManager,
        job_id: Hashable | None,
        rule: LongTextRule | None = None,
        priority: Priority = Priority.NORMAL,
        full: bool = False,
    ) -> None:
        self._manager = manager
        self.job_id = job_id
        self.priority = priority
        self._rule = rule or manager.rule
        self._budget = _Budget(self._rule)
        self._chunker = SentenceChunker()
        self._parts: list[str] = []
        self._spoken: list[str] = []
        self.reading = manager._start_reading(Reading(job_id), following=full)

    @property
    def truncated(self) -> bool:
        return self._budget.truncated

    def feed(self, chunk: str) -> list[str]:
        """Adds streamed text; returns the sentences queued for speech by this call."""
        self._parts.append(chunk)
        return self._take(self._chunker.feed_marked(chunk))

    def finish(self) -> SpokenForm:
        self._take(self._chunker.flush_marked())
        self._manager._finish_reading(self.reading)
        return SpokenForm(tuple(self._spoken), self._budget.truncated, "".join(self._parts))

    def _take(self, sentences: list[tuple[str, bool]]) -> list[str]:
        queued = []
        for sentence, starts in sentences:
            index, follow = self._manager._add_to_reading(self.reading, sentence, starts)
            if follow:
                if not self._budget.truncated:
                    self._budget.admit(sentence)  # keeps counting, should following stop
                queued.append(sentence)
                self._spoken.append(sentence)
                self._manager._speak_sentence(self.reading, index, sentence, self.priority)
                continue
            was_truncated = self._budget.truncated
            admitted = self._budget.admit(sentence)
            if admitted:
                queued.append(admitted)
                self._spoken.append(admitted)
                whole = admitted == sentence
                self._manager._speak_sentence(self.reading, index, admitted, self.priority, whole=whole)
            if self._budget.truncated and not was_truncated:
                queued.append(self._rule.note)
                self._spoken.append(self._rule.note)
                self._manager.speak(self._rule.note, self.priority, self.job_id)
        return queued


# -- the manager -------------------------------------------------------------------------------


class SpeechManager:
    def __init__(
        self,
        driver: SpeechDriver | str | None = None,
        *,
        fallbacks: list[SpeechDriver] | None = None,
        settings: VoiceSettings | None = None,
        rule: LongTextRule | None = None,
        on_event: Callable[[SpeechEvent], None] | None = None,
        events: queue.Queue | None = None,
        earcons=None,
    ) -> None:
        """`driver`: a driver, a driver name or "auto" (then pick_driver chooses and the rest of
        the fallback order backs it up). `fallbacks`: drivers tried, in order, when it fails. The
        silent driver always ends the chain, so text is never lost to a broken engine."""
        if driver is None or isinstance(driver, str):
            driver, rest = pick_driver(driver or "auto")
            chain = list(fallbacks) if fallbacks is not None else rest
        else:
            chain = list(fallbacks or [])
        if not isinstance(driver, SilentDriver) and not any(isinstance(d, SilentDriver) for d in chain):
            chain.append(SilentDriver())
        self._driver: SpeechDriver = driver
        self._fallbacks: list[SpeechDriver] = chain
        self._retired: list[SpeechDriver] = []
        self._settings = (settings or VoiceSettings()).clamped()
        self.rule = rule or LongTextRule()
        self._on_event = on_event
        self._events = events
        self.earcons = earcons
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        # Caller threads -> worker thread: utterances are handed over through this queue (a list
        # kept in priority order, guarded by self._cond).
        self._queue: list[Utterance] = []
        self._current: Utterance | None = None
        self._closing = False
        self._cancelled_jobs: deque = deque(maxlen=256)
        self._reading: Reading | None = None  # the last answer or text read, and where we are in it
        self._worker = threading.Thread(target=self._run, name="sightline-speech")
        self._worker.start()

    # -- properties ----------------------------------------------------------------------------

    @property
    def driver(self) -> SpeechDriver:
        return self._driver

    @property
    def driver_name(self) -> str:
        return self._driver.name

    @property
    def settings(self) -> VoiceSettings:
        return self._settings

    @settings.setter
    def settings(self, value: VoiceSettings) -> None:
        """Rate, voice and volume; they apply from the next utterance."""
        self._settings = value.clamped()

    def pending(self) -> list[str]:
        """Texts waiting to be spoken, in order."""
        with self._cond:
            return [u.text for u in self._queue]

    # -- speaking ------------------------------------------------------------------------------

    def speak(
        self, text: str, priority: Priority = Priority.NORMAL, job_id: Hashable | None = None
    ) -> int | None:
        """Queues one utterance (say a sentence; see answer_stream for whole answers). Returns its
        id, or None when there is nothing to say or its job was cancelled."""
        text = (text or "").strip()
        if not text:
            return None
        return self._enqueue(Utterance(next(self._ids), text, Priority(priority), job_id))

    def _enqueue(self, utt: Utterance) -> int | None:
        priority, job_id = utt.priority, utt.job_id
        dropped: list[Utterance] = []
        interrupted: Utterance | None = None
        with self._cond:
            if self._closing or (job_id is not None and job_id in self._cancelled_jobs):
                return None
            if priority == Priority.NOW:
                cur = self._current
                # Further sentences of the same urgent message follow it; they do not cut it.
                same = [
                    u
                    for u in self._queue
                    if u.priority == Priority.NOW and job_id is not None and u.job_id == job_id
                ]
                others = [u for u in self._queue if u.priority == Priority.NOW and u not in same]
                dropped = [u for u in self._queue if u.priority > Priority.NOW]
                self._queue = same + [utt] + others
                continuing = (
                    cur is not None
                    and cur.priority == Priority.NOW
                    and job_id is not None
                    and cur.job_id == job_id
                )
                if not continuing:
                    interrupted = self._interrupt_locked()
            else:
                index = len(self._queue)
                if priority == Priority.NEXT:
                    index = sum(1 for u in self._queue if u.priority <= Priority.NEXT)
                self._queue.insert(index, utt)
            self._cond.notify_all()
        self._after_interrupt(interrupted)
        for u in dropped:
            self._emit("dropped", u, detail="replaced by an urgent message")
        return utt.id

    def stop(self) -> None:
        """Silence now and forget everything queued."""
        with self._cond:
            dropped, self._queue = self._queue, []
            cur = self._interrupt_locked()
            self._cond.notify_all()
        self._after_interrupt(cur)
        for u in dropped:
            self._emit("dropped", u, detail="stopped")

    def cancel_job(self, job_id: Hashable) -> None:
        """Drops the job's queued and current utterances, and any that arrive later."""
        with self._cond:
            if job_id not in self._cancelled_jobs:
                self._cancelled_jobs.append(job_id)
            dropped = [u for u in self._queue if u.job_id == job_id]
            self._queue = [u for u in self._queue if u.job_id != job_id]
            cur = self._interrupt_locked() if self._current and self._current.job_id == job_id else None
            self._cond.notify_all()
        self._after_interrupt(cur)
        for u in dropped:
            self._emit("dropped", u, detail="job cancelled")

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Blocks until nothing is queued or speaking."""
        with self._cond:
            return self._cond.wait_for(lambda: self._current is None and not self._queue, timeout)

    # -- long answers --------------------------------------------------------------------------

    def answer_stream(
        self, job_id: Hashable | None = None, priority: Priority = Priority.NORMAL, full: bool = False
    ) -> AnswerSpeech:
        """A feeder for a streamed answer: feed(chunk) as chunks arrive, finish() at the end.
        `full` reads the whole answer (say-all) instead of its short form."""
        return AnswerSpeech(self, job_id, self.rule, priority, full=full)

    # -- reading (say-all) ---------------------------------------------------------------------

    @property
    def reading(self) -> Reading | None:
        """The text read last (an answer, or read_all's text), with the reader's position."""
        return self._reading

    def read_all(
        self, text: str, job_id: Hashable | None = None, priority: Priority = Priority.NORMAL
    ) -> Reading:
        """Reads the whole text, sentence after sentence, until its end or stop(). It becomes the
        current reading, so continue_reading() and move_paragraph() work on it."""
        reading = Reading.of(text, job_id)
        self._start_reading(reading, following=True)
        self._read_on(reading, priority)
        return reading

    def load_reading(self, text: str, job_id: Hashable | None = None) -> Reading:
        """Makes `text` the current reading, at its start, without speaking it."""
        return self._start_reading(Reading.of(text, job_id))

    def read_in_full(self, job_id: Hashable) -> bool:
        """The streamed answer of `job_id` is read whole, not in short form (read all text)."""
        with self._cond:
            reading = self._reading
            if reading is None or reading.job_id != job_id:
                return False
            reading.following = True
        self._read_on(reading)
        return True

    def continue_reading(self) -> bool:
        """Reads on from where the last reading stopped (after the short form, a Stop or an
        interruption), to the end. False when there is nothing left to read."""
        with self._cond:
            reading = self._reading
            if reading is None or (reading.at_end and reading.complete):
                return False
        self.stop()
        with self._cond:
            reading.following = True
            reading.queued_until = reading.position
        self._read_on(reading)
        return True

    def move_paragraph(self, step: int) -> bool:
        """Jumps `step` paragraphs (+1 next, -1 previous) from the one being read and reads on from
        its start. At either end it says so and returns False."""
        with self._cond:
            reading = self._reading
            if reading is None or not reading.sentences:
                target = None
                message = "There is nothing to read yet."
            else:
                current = min(reading.position, len(reading.sentences) - 1)
                number = reading.paragraph_of(current) + step
                if number < 0:
                    target, message = None, "This is the first paragraph."
                elif number >= len(reading.paragraph_starts):
                    target = None
                    message = "There are no more paragraphs." if reading.complete else "No more text yet."
                else:
                    target, message = reading.paragraph_starts[number], ""
        if reading is None or target is None:
            self.speak(message, Priority.NOW)
            return False
        self.stop()
        with self._cond:
            reading.position = target
            reading.queued_until = target
            reading.following = True
        self._read_on(reading)
        return True

    def _start_reading(self, reading: Reading, following: bool = False) -> Reading:
        with self._cond:
            reading.following = following
            self._reading = reading
        return reading

    def _finish_reading(self, reading: Reading) -> None:
        with self._cond:
            reading.complete = True

    def _add_to_reading(self, reading: Reading, sentence: str, starts: bool) -> tuple[int, bool]:
        """Adds a streamed sentence; (its index, whether it is to be read now because the reading
        follows the stream)."""
        with self._cond:
            index = reading.add(sentence, starts)
            return index, reading.following and reading is self._reading

    def _read_on(self, reading: Reading, priority: Priority = Priority.NORMAL) -> None:
        """Queues the reading's sentences not queued yet, to its current end."""
        with self._cond:
            start = reading.queued_until
            pending = list(enumerate(reading.sentences))[start:]
        for index, sentence in pending:
            self._speak_sentence(reading, index, sentence, priority)

    def _speak_sentence(
        self, reading: Reading, index: int, text: str, priority: Priority, whole: bool = True
    ) -> int | None:
        with self._cond:
            reading.queued_until = max(reading.queued_until, index + (1 if whole else 0))
        utt = Utterance(
            next(self._ids), text, priority, reading.job_id, reading=reading, index=index, whole=whole
        )
        return self._enqueue(utt)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._queue = []
            cur = self._interrupt_locked()
            self._cond.notify_all()
        self._after_interrupt(cur)
        self._worker.join(timeout)
        if self._worker.is_alive():
            log.warning("the speech worker did not stop within %.1f s", timeout)
        for driver in [self._driver, *self._fallbacks, *self._retired]:
            try:
                driver.close()
            except Exception:
                log.debug("closing %s failed", driver.name, exc_info=True)
        if self.earcons is not None:
            self.earcons.close()

    def __enter__(self) -> SpeechManager:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

    def _interrupt_locked(self) -> Utterance | None:
        cur = self._current
        if cur is not None and not cur.cancel.is_set():
            cur.cancel.set()
            return cur
        return None

    def _after_interrupt(self, cur: Utterance | None) -> None:
        """Outside the lock: tell the driver to be silent now."""
        if cur is None:
            return
        try:
            self._driver.interrupt()
        except Exception:
            log.warning("speech driver %s failed to stop", self._driver.name, exc_info=True)

    def _emit(self, kind: str, utt: Utterance | None = None, detail: str = "") -> None:
        event = SpeechEvent(
            kind,
            utterance_id=utt.id if utt else None,
            text=utt.text if utt else "",
            job_id=utt.job_id if utt else None,
            driver=self._driver.name,
            detail=detail,
        )
        if self._events is not None:
            self._events.put(event)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("speech event handler failed")

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing and not self._queue:
                    self._cond.wait()
                if self._closing:
                    self._cond.notify_all()
                    return
                utt = self._queue.pop(0)
                self._current = utt
                if utt.reading is not None:
                    utt.reading.position = utt.index  # the reader is at this sentence
            self._emit("started", utt)
            completed = self._speak(utt)
            with self._cond:
                self._current = None
                reading = utt.reading
                if reading is not None and completed and utt.whole and reading.position == utt.index:
                    reading.position = utt.index + 1  # heard: reading goes on from the next one
                self._cond.notify_all()
            self._emit("finished" if completed else "interrupted", utt)

    def _speak(self, utt: Utterance) -> bool:
        while True:
            driver = self._driver
            try:
                # Whatever the text came from (a model, a server, the screen), no escape sequence,
                # control or bidi-override character reaches a speech engine or screen reader.
                return bool(driver.speak(safe_text(utt.text), self._settings, utt.cancel))
            except Exception as exc:
                reason = (exc.detail or str(exc)) if isinstance(exc, SpeechDriverError) else repr(exc)
                self._fall_back(driver, reason)
                if utt.cancel.is_set():
                    return False

    def _fall_back(self, failed: SpeechDriver, reason: str) -> None:
        while self._fallbacks:
            candidate = self._fallbacks.pop(0)
            try:
                ok, why = candidate.check()
            except Exception as exc:
                ok, why = False, f"check failed: {exc!r}"
            if ok:
                log.warning(
                    "speech driver %s failed (%s); %s takes over", failed.name, reason, candidate.name
                )
                self._retired.append(failed)
                self._driver = candidate
                self._emit("driver_changed", detail=f"{failed.name} failed: {reason}; now {candidate.name}")
                return
            log.info("speech driver %s skipped: %s", candidate.name, why)
            self._retired.append(candidate)
        # Nothing left: the silent spy keeps the manager working.
        log.warning(
            "speech driver %s failed (%s); no other driver can speak, speech is off", failed.name, reason
        )
        self._retired.append(failed)
        self._driver = SilentDriver()
        self._emit("driver_changed", detail=f"{failed.name} failed: {reason}; speech is off")
