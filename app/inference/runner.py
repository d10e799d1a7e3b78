"""Run one request on the chosen backend, headless: used by the CLI and by the inference worker.

It never raises a SightlineError to its caller: a failure is returned in JobResult.error, with
the text produced before it kept, so the user always gets what was already said plus one clear
sentence. Unexpected exceptions are logged with their traceback and become a plain sentence.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from app.core.cancel import CancelToken
from app.core.errors import Cancelled, SightlineError, from_library_error
from app.core.types import JobRequest
from app.inference.grounding import (
    GROUNDED_TASKS,
    MAX_SCREEN_TEXT_CHARS,
    UNCOUNTED_SCREEN_TEXT_CHARS,
    QuoteGuard,
    cap_chars,
    guard_stream,
    read_picture_text,
)
from app.inference.registry import BackendRegistry
from app.inference.translate import DIRECT, answer_path, english_request, translation_request

log = logging.getLogger(__name__)

UNEXPECTED = "Something went wrong inside Sightline. The details are in the log."


@dataclass
class JobResult:
    job_id: int
    text: str = ""
    backend: str = ""
    backend_display: str = ""
    model: str = ""
    explanation: str = ""
    timings: dict[str, float | None] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    error: SightlineError | None = None
    #: "direct", or "describe_then_translate" for a picture answered in another language
    path: str = "direct"
    #: characters of the picture's own text given to the model (0: not grounded)
    screen_text_chars: int = 0
    #: the quotes of the answer that the picture's text did not hold, hedged in the answer
    hedged: list[str] = field(default_factory=list)
    #: the English description a translated answer was made from ("" on the direct path)
    english: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict:
        return {
            "job_id": self.job_id,
            "text": self.text,
            "backend": self.backend,
            "model": self.model,
            "explanation": self.explanation,
            "timings": {k: (round(v, 4) if v is not None else None) for k, v in self.timings.items()},
            "tokens": {"in": self.tokens_in, "out": self.tokens_out},
            "path": self.path,
            "picture_text_chars": self.screen_text_chars,
            "hedged": list(self.hedged),
            "error": None if self.error is None else self.error.sentence,
        }


def run_request(
    registry: BackendRegistry,
    request: JobRequest,
    cancel: CancelToken,
    *,
    preference: str | None = None,
    strict: bool = False,
    on_chunk: Callable[[str], None] | None = None,
    on_status: Callable[[str], None] | None = None,
    on_fallback: Callable[[str], None] | None = None,
) -> JobResult:
    """Choose, load if needed, generate. `on_chunk` gets each text chunk as it arrives.

    Unless `strict`, a backend that fails to load is marked failed in the registry and the next
    one answers; `on_fallback` gets the sentence that says so (once: later requests skip it).
    """
    result = JobResult(job_id=request.job_id)
    t0 = time.perf_counter()
    result.timings = {"load": 0.0, "first_chunk": None, "total": None}
    load_s = 0.0
    parts: list[str] = []
    try:
        choice = registry.choose(request, preference, strict=strict)
        while not choice.backend.loaded:
            t_load = time.perf_counter()
            try:
                choice.backend.load(cancel)
            except Cancelled:
                raise
            except SightlineError as exc:
                if strict or cancel.cancelled:
                    raise
                log.info("%s failed to load, trying the next backend: %s", choice.backend.name, exc.detail)
                registry.mark_failed(choice.backend.name, exc)
                choice = registry.choose(request, preference, strict=False)
                if on_fallback:
                    on_fallback(f"{exc.sentence} Using {choice.backend.display_name} instead.")
                continue
            finally:
                load_s += time.perf_counter() - t_load
                result.timings["load"] = load_s
        backend = choice.backend
        result.backend = backend.name
        result.backend_display = backend.display_name
        result.explanation = choice.explanation()
        if on_status:
            on_status(result.explanation)
        result.model = backend.model_id
        cancel.raise_if_cancelled()
        request, guard = _ground(registry, backend, request, cancel, result)
        cancel.raise_if_cancelled()
        t_gen = time.perf_counter()
        for chunk in _answer(backend, request, cancel, guard, result):
            if cancel.cancelled:
                break
            if not chunk:
                continue
            if result.timings["first_chunk"] is None:
                result.timings["first_chunk"] = time.perf_counter() - t_gen
            parts.append(chunk)
            if on_chunk:
                on_chunk(chunk)
        cancel.raise_if_cancelled()
        result.tokens_in += backend.usage.tokens_in
        result.tokens_out += backend.usage.tokens_out
        if guard is not None:
            result.hedged = list(guard.hedged)
    except SightlineError as exc:
        log.info("job %s ended: %s (%s)", request.job_id, exc.sentence, exc.detail or "")
        result.error = exc
    except Exception as exc:  # the user hears one sentence; the log keeps the traceback
        known = from_library_error(exc)
        if known is not None:  # a library failure with a plain meaning (a broken chat template)
            log.info("job %s ended: %s (%s)", request.job_id, known.sentence, known.detail)
            result.error = known
        else:
            log.exception("job %s failed unexpectedly", request.job_id)
            result.error = SightlineError(UNEXPECTED, detail=repr(exc))
    finally:
        result.text = "".join(parts)
        result.timings["total"] = time.perf_counter() - t0
    if isinstance(result.error, Cancelled):
        log.info("job %s cancelled after %d characters", request.job_id, len(result.text))
    return result


def _ground(
    registry: BackendRegistry, backend, request: JobRequest, cancel: CancelToken, result: JobResult
) -> tuple[JobRequest, QuoteGuard | None]:
    """The request with its picture's own text, and the guard for the answer; unchanged (no guard)
    when grounding is off, the answer comes from the text reader itself, or no text was found.

    Text recognition failing never stops the answer: the request goes on without the text.
    """
    settings = registry.settings
    if (
        not getattr(settings, "ground_answers", True)
        or request.image is None
        or request.task not in GROUNDED_TASKS
        or backend.name == "ocr"
        or not backend.capabilities.images
    ):
        return request, None
    t0 = time.perf_counter()
    try:
        ocr = registry.get("ocr")
        if not ocr.check().ok:
            return request, None
        text = read_picture_text(ocr, request.image)
    except SightlineError as exc:
        log.info("job %s: no picture text for grounding: %s", request.job_id, exc.detail or exc.sentence)
        return request, None
    except Exception:  # recognition is an extra: the answer goes on without it
        log.warning("job %s: text recognition for grounding failed", request.job_id, exc_info=True)
        return request, None
    finally:
        result.timings["ocr"] = time.perf_counter() - t0
    cancel.raise_if_cancelled()
    if not text:
        return request, None
    # The local backend trims the text to its exact token budget; others get a safe length.
    counts = getattr(backend, "trims_picture_text", False)
    text = cap_chars(text, MAX_SCREEN_TEXT_CHARS if counts else UNCOUNTED_SCREEN_TEXT_CHARS)
    result.screen_text_chars = len(text)
    return replace(request, screen_text=text), QuoteGuard(text)


def _answer(
    backend, request: JobRequest, cancel: CancelToken, guard: QuoteGuard | None, result: JobResult
) -> Iterator[str]:
    """The answer's chunks: direct, or a picture described in English and then translated.

    The English description is guarded (and hedged) before it is translated, so a hedge is
    translated with the sentence it belongs to. The translation streams as it is written.
    """
    result.path = answer_path(request)
    if result.path == DIRECT:
        chunks = backend.generate(request, cancel)
        yield from (guard_stream(chunks, guard) if guard is not None else chunks)
        return
    chunks = backend.generate(english_request(request), cancel)
    english = "".join(guard_stream(chunks, guard) if guard is not None else chunks)
    result.tokens_in += backend.usage.tokens_in
    result.tokens_out += backend.usage.tokens_out
    result.english = english
    cancel.raise_if_cancelled()
    if not english.strip():
        return
    yield from backend.generate(translation_request(request, english), cancel)
