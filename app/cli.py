"""The `sightline` command: the tray app with no arguments, headless commands otherwise.

Every failure prints one plain sentence to stderr and exits with a distinct code
(app.core.errors.ExitCode); text answers stream to stdout as they are generated, with terminal
control sequences and bidi overrides removed (app.core.text). Ctrl+C (SIGINT) ends a command
with 130 and SIGTERM with 143, whatever it is doing, never with a traceback.
"""

from __future__ import annotations

import _signal  # the C module, loaded with the interpreter: the guard below costs nothing
import os
import sys


def _exit_at_once(signum, _frame) -> None:
    """Until main() takes over: nothing has started that needs stopping, so end here."""
    try:
        os.write(2, b"Stopped.\n")
    finally:
        os._exit(128 + signum)


def _started_as_command() -> bool:
    """True in the `sightline` console script and `python -m app`, not when imported by tests."""
    arg0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if arg0.lower().startswith("sightline"):
        return True
    return arg0 == "__main__.py" and os.path.basename(os.path.dirname(sys.argv[0])) == "app"


# First, before anything slow is imported: Ctrl+C in the first moments must not print a traceback.
if _started_as_command():
    _signal.signal(_signal.SIGINT, _exit_at_once)
    _signal.signal(_signal.SIGTERM, _exit_at_once)

import argparse  # noqa: E402 - after the signal guard on purpose
import dataclasses  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402
from pathlib import Path  # noqa: E402

from app import __version__  # noqa: E402
from app.core.cancel import CancelToken  # noqa: E402
from app.core.errors import (  # noqa: E402
    DeviceError,
    EmptyAnswerError,
    ExitCode,
    InputError,
    ServerAddressError,
    SightlineError,
    UsageError,
)
from app.core.text import SafeTextStream, escape_unsafe_in_json, safe_text  # noqa: E402
from app.core.types import Detail, JobRequest, Task  # noqa: E402

log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one sentence and ExitCode.USAGE."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"sightline: {message}", file=sys.stderr)
        sys.exit(ExitCode.USAGE)


# ---------------------------------------------------------------- argument parsing


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    from app.settings.schema import Backend  # the settings' one list of backends

    g = p.add_argument_group("engine")
    g.add_argument(
        "--backend",
        choices=[b.value for b in Backend],
        default=None,
        help="which engine answers (default: your setting, normally auto)",
    )
    g.add_argument("--model", metavar="DIR", help="folder holding the Phi-4-multimodal weights")
    g.add_argument("--server", metavar="URL", help="a vLLM server, e.g. https://ai.example.org:8000/v1")
    g.add_argument(
        "--crops",
        choices=[d.value for d in Detail],
        default=None,
        help="image detail the model may use: low is fastest (default: normal)",
    )
    g.add_argument("--language", help="the language the answer is written in")
    g.add_argument("--max-tokens", type=int, default=None, help="longest answer, in tokens")
    g.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")


def _add_image_options(p: argparse.ArgumentParser, *, required: bool) -> None:
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("--image", metavar="FILE", help="an image file")
    src.add_argument("--screen", action="store_true", help="capture the screen")
    src.add_argument("--window", action="store_true", help="capture the active window")
    src.add_argument("--region", metavar="X,Y,W,H", help="capture a region of the screen")
    src.add_argument("--pointer", action="store_true", help="capture the area around the mouse pointer")
    src.add_argument(
        "--camera",
        metavar="SOURCE",
        nargs="?",
        const="0",
        help="take a photo: a camera index, a video file or a stream URL (default 0)",
    )
    p.add_argument(
        "--monitor",
        type=int,
        default=None,
        help="with --screen: monitor number, 1 for the first; 0 for all monitors "
        "(default: the one under the mouse pointer)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sightline",
        description="Sightline describes your screen, camera view or spoken question, privately, "
        "on your own computer. With no command it starts the tray app.",
    )
    parser.add_argument("--version", action="version", version=f"Sightline {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    parser.add_argument(
        "--model",
        dest="top_model",
        metavar="DIR",
        default=None,
        help="with a command: the model folder for it (the tray app takes its folder from Settings)",
    )
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("describe", help="describe the screen, a window, a region, a photo or an image")
    _add_image_options(p, required=True)
    p.add_argument(
        "--detail",
        choices=("brief", "full"),
        default="brief",
        help="brief says what matters first; full goes through everything",
    )
    _add_engine_options(p)

    p = sub.add_parser("read", help="read all the text, in reading order")
    _add_image_options(p, required=True)
    _add_engine_options(p)

    p = sub.add_parser("ask", help="ask a question, typed or spoken, about an image or anything")
    p.add_argument("question", nargs="?", default=None, help="the question (leave out with --audio)")
    _add_image_options(p, required=False)
    p.add_argument("--audio", metavar="FILE", help="a recording: the spoken question, or sound to ask about")
    _add_engine_options(p)

    p = sub.add_parser("transcribe", help="write down what is said in a recording")
    p.add_argument("audio", metavar="AUDIO", help="a WAV, FLAC or OGG file")
    _add_engine_options(p)

    p = sub.add_parser("model", help="download, check or verify the Phi-4-multimodal model")
    msub = p.add_subparsers(dest="model_command", required=True, parser_class=_Parser)
    for name, helptext in (
        ("download", "download the model (resumes an interrupted download)"),
        ("status", "say whether the model is installed"),
        ("verify", "check every weight file"),
    ):
        mp = msub.add_parser(name, help=helptext)
        mp.add_argument("--model", metavar="DIR", help="model folder (default: your models folder)")
        mp.add_argument("--json", action="store_true", help="print JSON")
        if name == "verify":
            mp.add_argument(
                "--deep",
                action="store_true",
                help="also check every byte against its checksum (slow: reads all 12 GB)",
            )

    p = sub.add_parser("devices", help="list monitors, cameras, microphones, speech drivers and voices")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("speak", help="say a text aloud, or save it as a WAV file")
    p.add_argument("text")
    p.add_argument("--driver", default=None, help="screen_reader, pyttsx3, espeak or silent")
    p.add_argument("--out", metavar="FILE.wav", help="write the speech to this file instead")

    p = sub.add_parser("server", help="work with a vLLM server for a whole office or school")
    ssub = p.add_subparsers(dest="server_command", required=True, parser_class=_Parser)
    sp = ssub.add_parser("check", help="check a server: reachable, and serving what Sightline needs")
    sp.add_argument("url")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp = ssub.add_parser("command", help="print the vllm serve command for the pinned model")
    sp.add_argument("--snapshot", default=None, help="the folder of the downloaded main-branch snapshot")
    return parser


# ---------------------------------------------------------------- helpers


#: Options that name a file or folder: (attribute, how the sentence names it).
PATH_OPTIONS = (
    ("image", "--image path"),
    ("audio", "audio path"),
    ("model", "--model folder"),
    ("out", "--out path"),
    ("snapshot", "--snapshot folder"),
    ("camera", "--camera source"),
    ("region", "--region"),
    ("server", "--server address"),
    ("url", "server address"),
    ("driver", "--driver name"),
)


def _check_arguments(args: argparse.Namespace) -> None:
    """What argparse cannot see: empty paths, numbers out of range. UsageError (exit 2)."""
    for attr, what in PATH_OPTIONS:
        value = getattr(args, attr, None)
        if isinstance(value, str) and not value.strip():
            raise UsageError(f"The {what} is empty. Give a value, or leave the option out.")
    max_tokens = getattr(args, "max_tokens", None)
    if max_tokens is not None and max_tokens < 1:
        raise UsageError(f"The --max-tokens value must be a whole number of at least 1, not {max_tokens}.")
    monitor = getattr(args, "monitor", None)
    if monitor is not None and monitor < 0:
        raise UsageError(f"The --monitor value must be 0 for all monitors, or 1 or more, not {monitor}.")


def _load_settings(args: argparse.Namespace):
    from app import paths
    from app.settings.store import load_settings

    settings, notice = load_settings()
    if notice:  # a damaged settings file: the user hears why defaults are in use
        print(safe_text(notice), file=sys.stderr)
    changes: dict = {}
    args.model_dir_problem = None
    if getattr(args, "model", None):
        changes["model_dir"] = str(paths.expand_user_path(args.model, "--model folder"))
    elif settings.model_dir:
        try:
            changes["model_dir"] = str(
                paths.expand_user_path(settings.model_dir, "model folder in your settings")
            )
        except UsageError as exc:
            # The local model cannot be found; "auto" answers without it, the rest say why.
            args.model_dir_problem = exc
    if getattr(args, "server", None):
        changes["server_url"] = args.server.strip()
    if getattr(args, "crops", None):
        changes["detail"] = args.crops
    if getattr(args, "language", None):
        changes["response_language"] = args.language
    if getattr(args, "max_tokens", None):
        changes["max_new_tokens"] = args.max_tokens
    settings = dataclasses.replace(settings, **changes) if changes else settings
    backend = getattr(args, "backend", None) or settings.backend
    if getattr(args, "server", None) or (backend == "remote" and settings.server_url):
        _check_server_address(settings)
    return settings


def _check_server_address(settings) -> None:
    """A server address that cannot be used is a command-line or settings fault: exit 2.

    (A server that is unreachable or fails is exit 8, found when Sightline talks to it.)
    """
    from app.inference.openai_compatible import OpenAICompatibleBackend

    status = OpenAICompatibleBackend.from_settings(settings).check()
    if not status.ok:
        reason = status.reason.strip().rstrip(".")
        raise ServerAddressError(
            f"{reason[:1].upper()}{reason[1:]}.", detail=f"server {settings.server_url!r}"
        )


def _parse_region(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise InputError(f"The region must be four whole numbers X,Y,W,H, not {text!r}.") from None
    return x, y, w, h


def _image_from_args(args: argparse.Namespace, settings, *, document: bool = False):
    """The image the user pointed at, or None when no image option was given."""
    from app.capture import screen

    if args.image:
        from app.capture.image_file import load_image

        return load_image(args.image)
    if args.screen:
        return screen.capture_screen(monitor=args.monitor)  # None: the monitor under the pointer
    if args.window:
        return screen.capture_active_window()
    if args.region:
        return screen.capture_region(*_parse_region(args.region))
    if args.pointer:
        return screen.capture_pointer(settings.pointer_box)
    if args.camera is not None:
        from app.capture.camera import capture

        return capture(args.camera, document=document)
    return None


def _request_common(settings) -> dict:
    return {
        "language": settings.response_language,
        "detail": Detail(settings.detail),
        "max_new_tokens": settings.max_new_tokens,
    }


def _run_and_print(args, settings, requests: Iterable[JobRequest]) -> int:
    """Run one or more requests (transcription pieces) and print text or JSON."""
    from app.inference.registry import BackendRegistry
    from app.inference.runner import JobResult, run_request

    registry = BackendRegistry(settings)
    strict = args.backend not in (None, "auto")
    preference = args.backend or settings.backend
    if args.model_dir_problem is not None:
        if strict and preference == "local":
            raise args.model_dir_problem
        registry.mark_failed("local", args.model_dir_problem)
        if preference in ("auto", "local"):
            print(args.model_dir_problem.sentence, file=sys.stderr)
    # Ctrl+C and SIGTERM cancel the generation through this token (see _SignalStop).
    cancel = _STOP.cooperate()
    results: list[JobResult] = []
    streaming = not args.json
    printed = SafeTextStream()  # escape sequences and bidi overrides never reach the terminal

    def on_chunk(chunk: str) -> None:
        text = printed.feed(chunk)
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()

    def on_status(text: str) -> None:
        log.info(text)
        if args.verbose:
            print(safe_text(text), file=sys.stderr)

    def on_fallback(text: str) -> None:  # said once: the registry skips that backend from now on
        print(safe_text(text), file=sys.stderr)

    try:
        for request in requests:
            if streaming and results and results[-1].text:
                sys.stdout.write("\n")  # each transcription piece on its own line
            result = run_request(
                registry,
                request,
                cancel,
                preference=preference,
                strict=strict,
                on_chunk=on_chunk if streaming else None,
                on_status=on_status,
                on_fallback=on_fallback,
            )
            if streaming:
                on_chunk_tail = printed.flush()
                if on_chunk_tail:
                    sys.stdout.write(on_chunk_tail)
            results.append(result)
            if not result.ok:
                break
    finally:
        registry.unload_all()

    if all(r.ok for r in results) and not any(safe_text(r.text).strip() for r in results):
        # Only special tokens, or nothing: an empty success would be silence for the user.
        results[-1].error = EmptyAnswerError(detail=f"{sum(r.tokens_out for r in results)} tokens, no text")

    last = results[-1]
    if args.json:
        obj = last.to_json()
        if len(results) > 1:
            obj["text"] = "\n".join(r.text for r in results)
            obj["tokens"] = {
                "in": sum(r.tokens_in for r in results),
                "out": sum(r.tokens_out for r in results),
            }
            obj["timings"]["total"] = round(sum(r.timings["total"] or 0 for r in results), 4)
        _print_json(obj)
    elif safe_text(last.text).strip() and not safe_text(last.text).endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()
    if last.error is not None:
        print(safe_text(last.error.sentence), file=sys.stderr)
        return last.error.exit_code
    return ExitCode.OK


def _print_json(obj) -> None:
    """One JSON object; text keeps every character, with control and bidi characters escaped,
    and anything the terminal's encoding cannot show escaped as well."""
    utf = (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "") in ("utf8", "utf8sig")
    print(escape_unsafe_in_json(json.dumps(obj, ensure_ascii=not utf, default=str)))


def _report(args, ok: bool, failure: int, to_json: Callable[[], object], lines: Iterable[str]) -> int:
    """model and server: the object to_json() gives with --json, else each line; 0 if ok, else failure."""
    if args.json:
        _print_json(to_json())
    else:
        for line in lines:
            print(safe_text(line))
    return ExitCode.OK if ok else failure


# ---------------------------------------------------------------- commands


def _image_command(args, name: str, camera_task: Task, task: Task, *, document: bool = False) -> int:
    """describe and read: one image, with the camera's own task when it comes from the camera."""
    settings = _load_settings(args)
    image = _image_from_args(args, settings, document=document)
    if image is None:  # argparse requires one image option; this is a guard, not a path users take
        raise UsageError(
            f"{name} needs an image: --image, --screen, --window, --region, --pointer or --camera."
        )
    if image.note:
        print(image.note, file=sys.stderr)
    task = camera_task if args.camera is not None else task
    return _run_and_print(args, settings, [JobRequest(task=task, image=image, **_request_common(settings))])


def cmd_describe(args) -> int:
    task = Task.DESCRIBE_FULL if args.detail == "full" else Task.DESCRIBE_BRIEF
    return _image_command(args, "Describe", Task.CAMERA_SCENE, task)


def cmd_read(args) -> int:
    return _image_command(args, "Read", Task.CAMERA_DOCUMENT, Task.READ_TEXT, document=True)


def cmd_ask(args) -> int:
    settings = _load_settings(args)
    question = (args.question or "").strip() or None
    audio = None
    if args.audio:
        from app.capture.audio_file import load_audio

        audio = load_audio(args.audio, max_seconds=settings.max_recording_seconds)
    if question is None and audio is None:
        raise InputError("Ask needs a question: type it, or give a recording with --audio.")
    image = _image_from_args(args, settings)
    task = Task.ASK_IMAGE if image is not None else Task.ASK_SPOKEN
    request = JobRequest(task=task, image=image, audio=audio, question=question, **_request_common(settings))
    return _run_and_print(args, settings, [request])


def cmd_transcribe(args) -> int:
    from app.capture.audio_file import transcription_pieces

    settings = _load_settings(args)
    # Read, resampled and cut at quiet moments while it is transcribed: memory stays flat
    # however long the recording is.
    pieces = transcription_pieces(args.audio)
    requests = (
        JobRequest(task=Task.TRANSCRIBE, audio=piece, **_request_common(settings)) for piece in pieces
    )
    return _run_and_print(args, settings, requests)


def cmd_model(args) -> int:
    from app.inference import model_store

    settings = _load_settings(args)
    if args.model_dir_problem is not None:  # the settings name a folder that cannot exist
        raise args.model_dir_problem
    folder = model_store.default_model_folder(settings)
    if args.model_command == "status":
        status = model_store.model_status(folder)
        ready = status["state"] == "ready"
        return _report(args, ready, ExitCode.MODEL_MISSING, lambda: status, [status["sentence"]])
    if args.model_command == "verify":
        report = model_store.verify_model_folder(folder, deep=args.deep)
        lines = [*(f"- {problem}" for problem in report.problems), report.sentence]
        return _report(args, report.ok, ExitCode.MODEL_MISSING, report.to_json, lines)
    # download: Ctrl+C and SIGTERM cancel it through this token, between blocks
    cancel = _STOP.cooperate()
    last_tenth = [-1]

    def progress(p) -> None:
        if args.json:
            return
        tenth = int(p.fraction * 10) if p.total else 0
        if tenth != last_tenth[0]:
            last_tenth[0] = tenth
            print(p.sentence(), file=sys.stderr, flush=True)

    downloaded = model_store.download_model(folder, progress=progress, cancel=cancel)
    ready = downloaded.state.name == "READY"
    return _report(
        args, ready, ExitCode.DOWNLOAD_FAILED, lambda: model_store.model_status(folder), [downloaded.sentence]
    )


def cmd_devices(args) -> int:
    from app.devices import list_devices

    devices = list_devices()
    if args.json:
        utf = (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "") == "utf8"
        print(escape_unsafe_in_json(json.dumps(devices, ensure_ascii=not utf, default=str, indent=2)))
        return ExitCode.OK
    for section, items in devices.items():
        print(f"{section.replace('_', ' ').capitalize()}:")
        if not items:
            print("  none found")
        for item in items:
            print(f"  {safe_text(item['summary'])}")
    return ExitCode.OK


def cmd_speak(args) -> int:
    from app.speech.drivers import SpeechDriverError, canonical_name
    from app.speech.drivers.base import VoiceSettings
    from app.speech.service import speak_text

    if args.driver:
        try:
            canonical_name(args.driver)
        except SpeechDriverError as exc:  # a name typed on the command line: a usage error
            raise UsageError(exc.sentence, detail=exc.detail) from None
    from app import paths

    out = paths.expand_user_path(args.out, "--out path") if args.out else None
    if out is not None:
        _check_writable(out)
    settings = _load_settings(args)
    voice = VoiceSettings(rate_wpm=settings.rate, voice=settings.voice, volume=settings.volume)
    if args.driver:
        driver = args.driver
    else:
        from app.speech.service import driver_chain

        # "text only" users still asked to hear this: use the voice order then.
        driver = driver_chain(
            settings.output_mode if settings.output_mode != "text" else "voice", settings.speech_driver
        )[0]
    # Speech engines may print ("Audio saved to /tmp/...wav"); stdout is not theirs to use.
    real_stdout, sys.stdout = sys.stdout, open(os.devnull, "w")  # noqa: SIM115 - closed below
    try:
        outcome = speak_text(safe_text(args.text), driver=driver, out=out, settings=voice)
    except SightlineError as exc:
        if out is not None and type(exc) is SightlineError:  # the file could not be written
            raise DeviceError(f"Sightline cannot write the speech to {out}.", detail=exc.detail) from None
        raise
    finally:
        sys.stdout.close()
        sys.stdout = real_stdout
    if out is not None:
        print(f"Saved the speech to {out}.", file=sys.stderr)
    elif args.verbose:
        print(f"Spoke with {outcome.driver}.", file=sys.stderr)
    return ExitCode.OK


def _check_writable(out: Path) -> None:
    """A place the speech file cannot go to is a device fault (exit 10), said before speaking."""
    folder = out.parent
    if out.is_dir():
        raise DeviceError(f"{out} is a folder; give a file name ending in .wav.")
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise DeviceError(f"Sightline is not allowed to write in the folder {folder}.")
    if out.exists() and not os.access(out, os.W_OK):
        raise DeviceError(f"Sightline is not allowed to overwrite {out}.")


def cmd_server(args) -> int:
    from app.inference import server_tools

    if args.server_command == "command":
        print(
            server_tools.vllm_serve_command(args.snapshot)
            if args.snapshot
            else server_tools.vllm_serve_command()
        )
        return ExitCode.OK
    settings = _load_settings(args)
    report = server_tools.check_server(args.url, settings)
    return _report(args, report.ok, ExitCode.SERVER_ERROR, report.to_json, report.lines())


COMMANDS = {
    "describe": cmd_describe,
    "read": cmd_read,
    "ask": cmd_ask,
    "transcribe": cmd_transcribe,
    "model": cmd_model,
    "devices": cmd_devices,
    "speak": cmd_speak,
    "server": cmd_server,
}


TRAY_MODEL_SENTENCE = (
    "The tray app takes its model folder from Settings, not from --model; "
    "to use this folder once, give a command, for example: sightline describe --screen --model DIR"
)


def _run_tray_app(args: argparse.Namespace) -> int:
    """The tray app; a failure to start is one sentence, printed and spoken, never a traceback."""
    if args.top_model is not None:
        print(TRAY_MODEL_SENTENCE.replace("DIR", args.top_model or "DIR") + ".", file=sys.stderr)
        return ExitCode.USAGE
    from app.main import run_app, say_without_qt

    try:
        return run_app()
    except SightlineError as exc:
        log.info("the tray app failed: %s (%s)", exc.sentence, exc.detail or "")
        say_without_qt(exc.sentence)
        return exc.exit_code
    except Exception as exc:
        log.exception("the tray app failed unexpectedly")
        say_without_qt(f"Sightline could not start ({type(exc).__name__}). The details are in the log.")
        return ExitCode.UNEXPECTED


class _SignalStop:
    """SIGINT and SIGTERM while a command runs: it ends with 130 or 143, within GRACE_S seconds.

    Python runs signal handlers only on the main thread, between bytecodes, so a main thread
    blocked in a socket read or a library call would not see one in time. The C-level handler
    writes the signal number to a wakeup pipe instead, and a watcher thread acts on it: it cancels
    the command's token (the backends stop within one step, a socket read is shut), and if the
    command has not ended after GRACE_S, or a second signal comes, it ends the process itself.
    Commands that cannot be cancelled end at once.
    """

    GRACE_S = 2.0

    def __init__(self) -> None:
        self.token = CancelToken()
        self.signum: int | None = None
        self._cooperative = False
        self._done = threading.Event()
        self._installed = False

    @property
    def exit_code(self) -> int:
        return ExitCode.TERMINATED if self.signum == signal.SIGTERM else ExitCode.CANCELLED

    def install(self) -> None:
        if self._installed or threading.current_thread() is not threading.main_thread():
            return
        reader, writer = os.pipe()
        os.set_blocking(writer, False)
        signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
        for signum in (signal.SIGINT, signal.SIGTERM):
            # The watcher thread acts; this runs later on the main thread and must not raise
            # (KeyboardInterrupt would unwind through whatever library code is running).
            signal.signal(signum, lambda *_: None)
        # The watcher thread: reads signal numbers from the wakeup pipe, cancels the token
        # (thread-safe), and may end the process; it never touches the main thread's state.
        threading.Thread(target=self._watch, args=(reader,), name="sightline-signals", daemon=True).start()
        self._installed = True

    def cooperate(self) -> CancelToken:
        """From here on a signal cancels this token instead of ending the process at once."""
        self._cooperative = True
        return self.token

    def finish(self) -> None:
        self._done.set()

    def _watch(self, reader: int) -> None:
        while True:
            try:
                data = os.read(reader, 64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum not in (signal.SIGINT, signal.SIGTERM):
                    continue
                if self.signum is not None or not self._cooperative:
                    self.signum = self.signum or signum
                    self._end_now()
                self.signum = signum
                self.token.cancel("interrupted")
                threading.Thread(target=self._deadline, name="sightline-stop-deadline", daemon=True).start()

    def _deadline(self) -> None:
        if not self._done.wait(self.GRACE_S):
            self._end_now()

    def _end_now(self) -> None:
        if self._done.is_set():
            return  # the command already ended; main() is returning the code
        try:
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - the process is ending anyway
            pass
        try:
            os.write(2, b"Stopped.\n")
        finally:
            os._exit(self.exit_code)


_STOP = _SignalStop()


def _prepare_streams() -> None:
    """Answers may hold characters the terminal's encoding lacks: print the rest, replace those."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", "strict") == "strict" and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="replace")
            except (ValueError, OSError):
                pass


def main(argv: list[str] | None = None) -> int:
    _prepare_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    from app.logging_setup import setup_logging

    setup_logging(verbose=args.verbose)
    if args.command is None:
        return _run_tray_app(args)
    _STOP.install()
    try:
        if args.top_model is not None:  # sightline --model DIR describe ...: the command's folder
            if not hasattr(args, "model"):
                raise UsageError(f"The {args.command} command does not use a model folder.")
            if args.model is None:
                args.model = args.top_model
        _check_arguments(args)
        code = COMMANDS[args.command](args)
    except SightlineError as exc:
        log.info("%s failed: %s (%s)", args.command, exc.sentence, exc.detail or "")
        if _STOP.signum is None:
            print(safe_text(exc.sentence), file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:  # main() called from Python without the signal watcher
        code = ExitCode.CANCELLED
        if _STOP.signum is None:
            print("Stopped.", file=sys.stderr)
    except BrokenPipeError:
        code = ExitCode.OK
    except Exception as exc:  # never a traceback for the user; the log keeps it
        log.exception("%s failed unexpectedly", args.command)
        print(
            f"Something went wrong inside Sightline ({type(exc).__name__}). The details are in the log.",
            file=sys.stderr,
        )
        code = ExitCode.UNEXPECTED
    finally:
        _STOP.finish()
    if _STOP.signum is not None:  # stopped by a signal: its own code, whatever the command said
        if code not in (ExitCode.CANCELLED, ExitCode.TERMINATED):
            print("Stopped.", file=sys.stderr)
        if _started_as_command():
            # The user asked to stop: end now rather than wait for the libraries' teardown
            # (unloading torch can take seconds). Output and the log are flushed first.
            _end_process(_STOP.exit_code)
        return _STOP.exit_code
    return code


def _end_process(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe: nothing more to say
            pass
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
