"""Run one request on the chosen backend, headless: used by the CLI and by the inference worker.

It never raises a SightlineError to its caller: a failure is returned in JobResult.error, with
the text produced before it kept, so the user always gets what was already said plus one clear
sentence. Unexpected exceptions are logged with their traceback and become a plain sentence.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.core.cancel import CancelToken
from app.core.errors import Cancelled, SightlineError
from app.core.types import JobRequest
from app.inference.registry import BackendRegistry

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
) -> JobResult:
    """Choose, load if needed, generate. `on_chunk` gets each text chunk as it arrives."""
    result = JobResult(job_id=request.job_id)
    t0 = time.perf_counter()
    result.timings = {"load": 0.0, "first_chunk": None, "total": None}
    parts: list[str] = []
    try:
        choice = registry.choose(request, preference, strict=strict)
        backend = choice.backend
        result.backend = backend.name
        result.backend_display = backend.display_name
        result.explanation = choice.explanation()
        if on_status:
            on_status(result.explanation)
        if not backend.loaded:
            t_load = time.perf_counter()
            backend.load(cancel)
            result.timings["load"] = time.perf_counter() - t_load
        result.model = backend.model_id
        cancel.raise_if_cancelled()
        t_gen = time.perf_counter()
        for chunk in backend.generate(request, cancel):
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
        result.tokens_in = backend.usage.tokens_in
        result.tokens_out = backend.usage.tokens_out
    except SightlineError as exc:
        log.info("job %s ended: %s (%s)", request.job_id, exc.sentence, exc.detail or "")
        result.error = exc
    except Exception as exc:  # the user hears one sentence; the log keeps the traceback
        log.exception("job %s failed unexpectedly", request.job_id)
        result.error = SightlineError(UNEXPECTED, detail=repr(exc))
    finally:
        result.text = "".join(parts)
        result.timings["total"] = time.perf_counter() - t0
    if isinstance(result.error, Cancelled):
        log.info("job %s cancelled after %d characters", request.job_id, len(result.text))
    return result
