"""The ModelBackend interface every engine implements."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass

from app.core.cancel import CancelToken
from app.core.errors import SightlineError
from app.core.types import JobRequest, Usage


@dataclass(frozen=True)
class Capabilities:
    images: bool
    audio: bool
    streaming: bool
    local: bool  # True when nothing leaves the machine


@dataclass(frozen=True)
class BackendCheck:
    """Result of check(): can this backend run here? `reason` is a sentence for the user."""

    ok: bool
    reason: str = ""
    #: the precise error (model missing, wrong format...) for when the user named this backend
    error: SightlineError | None = None


class ModelBackend(abc.ABC):
    #: short id used in settings and on the command line: "local", "remote", "ocr"
    name: str = ""
    #: what the user hears, e.g. "the local Phi-4 model"
    display_name: str = ""
    capabilities: Capabilities

    def __init__(self) -> None:
        self.usage = Usage()

    @abc.abstractmethod
    def check(self) -> BackendCheck:
        """Cheap: can this backend run on this machine now? Never loads the model."""

    @property
    def model_id(self) -> str:
        """What answered, for --json output and the log."""
        return self.name

    @property
    def loaded(self) -> bool:
        return True

    def load(self, cancel: CancelToken) -> None:  # noqa: B027 - optional for light backends
        """Make the backend ready. May take minutes; honours `cancel`."""

    @abc.abstractmethod
    def generate(self, request: JobRequest, cancel: CancelToken) -> Iterator[str]:
        """Yield text chunks as they are produced; stop within one step of `cancel`.

        Raises SightlineError subclasses for anything the user should hear. Sets `self.usage`.
        """

    def unload(self) -> None:  # noqa: B027 - optional for light backends
        """Free the model's memory."""

    def supports(self, request: JobRequest) -> BackendCheck:
        """Can this backend answer this request (not just run at all)?"""
        caps = self.capabilities
        if request.audio is not None and not caps.audio:
            return BackendCheck(False, f"{self.display_name} cannot listen to audio")
        if request.image is None and request.audio is None and not caps.audio and not caps.images:
            return BackendCheck(False, f"{self.display_name} cannot answer questions")
        if request.image is not None and not caps.images:
            return BackendCheck(False, f"{self.display_name} cannot look at images")
        return BackendCheck(True)
