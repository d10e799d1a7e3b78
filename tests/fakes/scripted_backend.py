"""A ModelBackend that answers from a script: for controller, runner and registry tests.

It behaves like a real streaming backend: chunks come one at a time, with an optional delay
that wakes at once on cancel, and it can fail before or after some output.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from app.core.cancel import CancelToken
from app.core.errors import SightlineError
from app.core.types import JobRequest
from app.inference.base import BackendCheck, Capabilities, ModelBackend


class ScriptedBackend(ModelBackend):
    def __init__(
        self,
        chunks: list[str] | None = None,
        *,
        name: str = "scripted",
        ok: bool = True,
        reason: str = "",
        delay: float = 0.0,
        fail_after: int | None = None,
        error: SightlineError | None = None,
        images: bool = True,
        audio: bool = True,
    ):
        super().__init__()
        self.name = name
        self.display_name = f"the {name} backend"
        self.capabilities = Capabilities(images=images, audio=audio, streaming=True, local=True)
        self.chunks = chunks if chunks is not None else ["Hello. ", "This is ", "a test."]
        self._ok = ok
        self._reason = reason
        self.delay = delay
        self.fail_after = fail_after
        self.error = error or SightlineError("The scripted backend failed.")
        self.requests: list[JobRequest] = []
        self.load_calls = 0
        self._loaded = False
        self.generating = threading.Event()
        # When set to an Event, generate() blocks on it first, ignoring cancel: a backend stuck in
        # a long step (a prefill), so jobs queue up behind it deterministically.
        self.gate: threading.Event | None = None
        # When set, load() raises it: a model folder that cannot be used.
        self.load_error: SightlineError | None = None

    def check(self) -> BackendCheck:
        return BackendCheck(self._ok, self._reason)

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self, cancel: CancelToken) -> None:
        self.load_calls += 1
        if self.load_error is not None:
            raise self.load_error
        self._loaded = True

    def unload(self) -> None:
        self._loaded = False

    def generate(self, request: JobRequest, cancel: CancelToken) -> Iterator[str]:
        self.requests.append(request)
        self.generating.set()
        if self.gate is not None:
            self.gate.wait(10)
        for i, chunk in enumerate(self.chunks):
            if self.fail_after is not None and i == self.fail_after:
                raise self.error
            if self.delay and cancel.wait(self.delay):
                return
            if cancel.cancelled:
                return
            self.usage.tokens_out = i + 1
            yield chunk
        if self.fail_after is not None and self.fail_after >= len(self.chunks):
            raise self.error
