"""Choose the backend that answers, fall back to the next that can run, and say why.

Order for "auto": local Phi-4 (if its weights are here), the remote server (if one is set),
then the OCR default, which always runs. A backend that passed its cheap check but then failed
to load (a broken tokenizer, a config that does not match the weights) is marked failed, and
"auto" goes on to the next one; the reason is said once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from app.core.errors import BackendUnavailableError, ModelNotFoundError, SightlineError
from app.core.types import JobRequest
from app.inference.base import ModelBackend
from app.settings.schema import Backend, Settings

# From the settings' one list of backends (app.settings.schema.Backend).
BACKEND_ORDER: tuple[str, ...] = tuple(b.value for b in Backend.engines())
BACKEND_NAMES: tuple[str, ...] = tuple(b.value for b in Backend)


def _make_local(settings: Settings) -> ModelBackend:
    from app.inference.phi4_local import Phi4LocalBackend

    return Phi4LocalBackend.from_settings(settings)


def _make_remote(settings: Settings) -> ModelBackend:
    from app.inference.openai_compatible import OpenAICompatibleBackend

    return OpenAICompatibleBackend.from_settings(settings)


def _make_ocr(settings: Settings) -> ModelBackend:
    from app.inference.ocr import OcrBackend

    return OcrBackend.from_settings(settings)


FACTORIES: dict[str, Callable[[Settings], ModelBackend]] = {
    "local": _make_local,
    "remote": _make_remote,
    "ocr": _make_ocr,
}


@dataclass
class Choice:
    backend: ModelBackend
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (display name, reason)

    def explanation(self) -> str:
        """One or two sentences: who answers, and why the others did not."""
        text = f"Answering with {self.backend.display_name}."
        if self.skipped:
            reasons = "; ".join(f"{name}: {reason}" for name, reason in self.skipped)
            text += f" Skipped {reasons}."
        return text


class BackendRegistry:
    """Builds backends once and reuses them (the local model is expensive to load)."""

    def __init__(
        self,
        settings: Settings,
        factories: dict[str, Callable[[Settings], ModelBackend]] | None = None,
    ):
        self.settings = settings
        self._factories = dict(factories or FACTORIES)
        self._built: dict[str, ModelBackend] = {}
        #: backends that cannot answer in this run, with the sentence that says why
        self._failed: dict[str, SightlineError] = {}

    def mark_failed(self, name: str, error: SightlineError) -> None:
        """`name` cannot answer in this run (it failed to load): "auto" skips it from now on."""
        self._failed[name] = error
        backend = self._built.pop(name, None)
        if backend is not None:
            try:
                backend.unload()
            except Exception:  # noqa: BLE001 - freeing a half-loaded model must not hide the reason
                pass

    def failed(self, name: str) -> SightlineError | None:
        return self._failed.get(name)

    def get(self, name: str) -> ModelBackend:
        if name not in self._built:
            if name not in self._factories:
                raise BackendUnavailableError(
                    f"There is no backend called {name}. Choose one of: {', '.join(BACKEND_NAMES)}."
                )
            self._built[name] = self._factories[name](self.settings)
        return self._built[name]

    def order(self, preference: str) -> list[str]:
        names = [n for n in BACKEND_ORDER if n in self._factories]
        if preference and preference != "auto":
            if preference not in self._factories:
                raise BackendUnavailableError(
                    f"There is no backend called {preference}. Choose one of: {', '.join(BACKEND_NAMES)}."
                )
            names.remove(preference)
            names.insert(0, preference)
        return names

    def choose(
        self,
        request: JobRequest | None = None,
        preference: str | None = None,
        *,
        strict: bool = False,
    ) -> Choice:
        """Pick a backend for `request`.

        `strict`: the user named this backend explicitly (e.g. on the command line), so if it
        cannot run, say why instead of silently answering with another one.
        """
        preference = preference or self.settings.backend
        skipped: list[tuple[str, str]] = []
        errors: dict[str, SightlineError | None] = {}
        reasons: dict[str, str] = {}
        for name in self.order(preference):
            failure = self._failed.get(name)
            if failure is not None:
                if strict and name == preference:
                    raise failure
                skipped.append((name, failure.sentence))
                errors[name] = failure
                continue
            try:
                backend = self.get(name)
                status = backend.check()
                if status.ok and request is not None:
                    status = backend.supports(request)
            except SightlineError as exc:
                if strict and name == preference:
                    raise
                skipped.append((name, exc.sentence))
                errors[name] = exc
                continue
            if status.ok:
                return Choice(backend, skipped)
            if strict and name == preference:
                raise status.error or BackendUnavailableError(_sentence(status.reason))
            skipped.append((backend.display_name, status.reason))
            errors[name] = status.error
            reasons[name] = status.reason
        raise BackendUnavailableError(
            no_backend_sentence(request, errors.get("local"), reasons.get("local", "")),
            detail="; ".join(f"{name}: {reason}" for name, reason in skipped),
        )

    def unload_all(self) -> None:
        for backend in self._built.values():
            backend.unload()


def _sentence(reason: str) -> str:
    """A check's reason ("no server is set") as a sentence: capital first letter, one full stop."""
    text = reason.strip().rstrip(".")
    return f"{text[:1].upper()}{text[1:]}." if text else "This cannot be answered here."


def no_backend_sentence(
    request: JobRequest | None, local_error: SightlineError | None, local_reason: str = ""
) -> str:
    """Two short sentences for "nothing can answer": what is needed, then what to do."""
    if request is not None and request.audio is not None:
        need = "Listening to a recording needs the Phi-4 model or a Sightline server, and neither is ready."
    elif request is not None and request.image is None:
        need = "Answering a question needs the Phi-4 model or a Sightline server, and neither is ready."
    else:
        need = "No backend can answer this here."
    if type(local_error) is ModelNotFoundError or (local_error is None and not local_reason):
        remedy = "Run sightline model download to get the model, or set a server in Settings."
    elif local_error is not None:  # the model is here but damaged, in the wrong format, or failed
        remedy = local_error.sentence
    else:  # e.g. the local AI runtime is not installed
        remedy = _sentence(local_reason)
    return f"{need} {remedy}"
