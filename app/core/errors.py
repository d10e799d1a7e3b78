"""Errors that carry the sentence a user hears.

Every failure that can reach a user is a SightlineError: `sentence` is short, plain and spoken
as it is; `detail` goes to the log only; `exit_code` is what the CLI returns. Nothing else
should ever reach the user as a traceback.
"""

from __future__ import annotations


class ExitCode:
    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    BAD_INPUT = 3
    MODEL_MISSING = 4
    BACKEND_UNAVAILABLE = 5
    OUT_OF_MEMORY = 6
    CAPTURE_FAILED = 7
    SERVER_ERROR = 8
    DOWNLOAD_FAILED = 9
    DEVICE_ERROR = 10
    NO_ANSWER = 11
    CANCELLED = 130  # Ctrl+C (SIGINT), or Stop
    TERMINATED = 143  # SIGTERM: the system or another program asked Sightline to end


class SightlineError(Exception):
    """Base class: `sentence` is what the user hears and sees."""

    exit_code = ExitCode.UNEXPECTED

    def __init__(self, sentence: str, *, detail: str | None = None):
        super().__init__(sentence)
        self.sentence = sentence
        self.detail = detail

    def __str__(self) -> str:
        return self.sentence


class UsageError(SightlineError):
    """The command line, or a setting it relies on, is wrong: a bad path, address or number."""

    exit_code = ExitCode.USAGE


class InputError(SightlineError):
    """An image or audio input that cannot be used (corrupt, empty, too small, too long...)."""

    exit_code = ExitCode.BAD_INPUT


class ModelNotFoundError(SightlineError):
    exit_code = ExitCode.MODEL_MISSING


class ModelIncompleteError(ModelNotFoundError):
    pass


class ModelFormatError(ModelNotFoundError):
    pass


class BackendUnavailableError(SightlineError):
    exit_code = ExitCode.BACKEND_UNAVAILABLE


class OutOfMemoryError(SightlineError):
    exit_code = ExitCode.OUT_OF_MEMORY


class CaptureError(SightlineError):
    exit_code = ExitCode.CAPTURE_FAILED


class DeviceError(SightlineError):
    """A camera, microphone or speaker that is missing, busy or gone."""

    exit_code = ExitCode.DEVICE_ERROR


class ServerError(SightlineError):
    exit_code = ExitCode.SERVER_ERROR


class ServerAddressError(ServerError):
    """The server address itself is unusable (scheme, credentials, port, plain http elsewhere).

    A configuration fault the user fixes by changing the address, not a server that failed.
    """

    exit_code = ExitCode.USAGE


class EmptyAnswerError(SightlineError):
    """The model finished without a single word of text (only special tokens, or nothing)."""

    exit_code = ExitCode.NO_ANSWER

    def __init__(self, sentence: str = "The model gave no answer.", *, detail: str | None = None):
        super().__init__(sentence, detail=detail)


class DownloadError(SightlineError):
    exit_code = ExitCode.DOWNLOAD_FAILED


class Cancelled(SightlineError):
    exit_code = ExitCode.CANCELLED

    def __init__(self, sentence: str = "Stopped.", *, detail: str | None = None):
        super().__init__(sentence, detail=detail)


def from_library_error(exc: BaseException) -> SightlineError | None:
    """A SightlineError for a known library failure that has a plain meaning, else None.

    Recognised by module name, so core imports neither jinja2 nor transformers.
    """
    module = type(exc).__module__ or ""
    if module.startswith("jinja2"):  # the model folder's chat template does not render
        return ModelFormatError(
            "The model's chat template is broken; run sightline model download to repair it.",
            detail=f"{type(exc).__name__}: {exc}",
        )
    return None
