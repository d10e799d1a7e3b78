"""The `sightline` command: the tray app with no arguments, headless commands otherwise.

Every failure prints one plain sentence to stderr and exits with a distinct code
(app.core.errors.ExitCode); text answers stream to stdout as they are generated.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
from pathlib import Path

from app import __version__
from app.core.cancel import CancelToken
from app.core.errors import ExitCode, InputError, SightlineError
from app.core.types import Detail, JobRequest, Task

log = logging.getLogger(__name__)

BACKEND_CHOICES = ("auto", "local", "remote", "ocr")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one sentence and ExitCode.USAGE."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"sightline: {message}", file=sys.stderr)
        sys.exit(ExitCode.USAGE)


# ---------------------------------------------------------------- argument parsing


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
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


def _load_settings(args: argparse.Namespace):
    from app.settings.store import load_settings

    settings, notice = load_settings()
    if notice:  # a damaged settings file: the user hears why defaults are in use
        print(notice, file=sys.stderr)
    changes: dict = {}
    if getattr(args, "model", None):
        changes["model_dir"] = str(Path(args.model).expanduser())
    if getattr(args, "server", None):
        changes["server_url"] = args.server
    if getattr(args, "crops", None):
        changes["detail"] = args.crops
    if getattr(args, "language", None):
        changes["response_language"] = args.language
    if getattr(args, "max_tokens", None):
        changes["max_new_tokens"] = args.max_tokens
    return dataclasses.replace(settings, **changes) if changes else settings


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


def _run_and_print(args, settings, requests: list[JobRequest]) -> int:
    """Run one or more requests (transcription pieces) and print text or JSON."""
    from app.inference.registry import BackendRegistry
    from app.inference.runner import run_request

    registry = BackendRegistry(settings)
    cancel = CancelToken()
    # Ctrl+C cancels the generation cleanly instead of raising in the middle of it.
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel("interrupted"))
    strict = args.backend not in (None, "auto")
    results = []
    streaming = not args.json

    def on_chunk(chunk: str) -> None:
        sys.stdout.write(chunk)
        sys.stdout.flush()

    def on_status(text: str) -> None:
        log.info(text)
        if args.verbose:
            print(text, file=sys.stderr)

    try:
        for request in requests:
            result = run_request(
                registry,
                request,
                cancel,
                preference=args.backend or settings.backend,
                strict=strict,
                on_chunk=on_chunk if streaming else None,
                on_status=on_status,
            )
            results.append(result)
            if streaming and result.text and len(requests) > 1:
                sys.stdout.write("\n")
            if not result.ok:
                break
    finally:
        signal.signal(signal.SIGINT, previous)
        registry.unload_all()

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
        print(json.dumps(obj, ensure_ascii=False))
    elif last.text and not last.text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()
    if last.error is not None:
        print(last.error.sentence, file=sys.stderr)
        return last.error.exit_code
    return ExitCode.OK


# ---------------------------------------------------------------- commands


def cmd_describe(args) -> int:
    settings = _load_settings(args)
    image = _image_from_args(args, settings)
    if image.note:
        print(image.note, file=sys.stderr)
    if args.camera is not None:
        task = Task.CAMERA_SCENE
    else:
        task = Task.DESCRIBE_FULL if args.detail == "full" else Task.DESCRIBE_BRIEF
    return _run_and_print(args, settings, [JobRequest(task=task, image=image, **_request_common(settings))])


def cmd_read(args) -> int:
    settings = _load_settings(args)
    image = _image_from_args(args, settings, document=True)
    if image.note:
        print(image.note, file=sys.stderr)
    task = Task.CAMERA_DOCUMENT if args.camera is not None else Task.READ_TEXT
    return _run_and_print(args, settings, [JobRequest(task=task, image=image, **_request_common(settings))])


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
    from app.capture.audio_file import load_audio, split_for_transcription

    settings = _load_settings(args)
    audio = load_audio(args.audio, max_seconds=None)
    pieces = split_for_transcription(audio)
    requests = [
        JobRequest(task=Task.TRANSCRIBE, audio=piece, **_request_common(settings)) for piece in pieces
    ]
    return _run_and_print(args, settings, requests)


def cmd_model(args) -> int:
    from app.inference import model_store

    settings = _load_settings(args)
    folder = model_store.default_model_folder(settings)
    if args.model_command == "status":
        status = model_store.model_status(folder)
        if args.json:
            print(json.dumps(status, ensure_ascii=False, default=str))
        else:
            print(status["sentence"])
        return ExitCode.OK if status["state"] == "ready" else ExitCode.MODEL_MISSING
    if args.model_command == "verify":
        report = model_store.verify_model_folder(folder, deep=args.deep)
        if args.json:
            print(json.dumps(report.to_json(), ensure_ascii=False, default=str))
        else:
            for problem in report.problems:
                print(f"- {problem}")
            print(report.sentence)
        return ExitCode.OK if report.ok else ExitCode.MODEL_MISSING
    # download
    cancel = CancelToken()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel("interrupted"))
    last_tenth = [-1]

    def progress(p) -> None:
        if args.json:
            return
        tenth = int(p.fraction * 10) if p.total else 0
        if tenth != last_tenth[0]:
            last_tenth[0] = tenth
            print(p.sentence(), file=sys.stderr, flush=True)

    try:
        report = model_store.download_model(folder, progress=progress, cancel=cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
    if args.json:
        print(json.dumps(model_store.model_status(folder), ensure_ascii=False, default=str))
    else:
        print(report.sentence)
    return ExitCode.OK if report.state.name == "READY" else ExitCode.DOWNLOAD_FAILED


def cmd_devices(args) -> int:
    from app.devices import list_devices

    devices = list_devices()
    if args.json:
        print(json.dumps(devices, ensure_ascii=False, default=str, indent=2))
        return ExitCode.OK
    for section, items in devices.items():
        print(f"{section.replace('_', ' ').capitalize()}:")
        if not items:
            print("  none found")
        for item in items:
            print(f"  {item['summary']}")
    return ExitCode.OK


def cmd_speak(args) -> int:
    from app.speech.drivers.base import VoiceSettings
    from app.speech.service import speak_text

    out = Path(args.out) if args.out else None
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
    outcome = speak_text(args.text, driver=driver, out=out, settings=voice)
    if out is not None:
        print(f"Saved the speech to {out}.")
    elif args.verbose:
        print(f"Spoke with {outcome.driver}.", file=sys.stderr)
    return ExitCode.OK


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
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, default=str))
    else:
        for line in report.lines():
            print(line)
    return ExitCode.OK if report.ok else ExitCode.SERVER_ERROR


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


def _run_tray_app() -> int:
    """The tray app; a failure to start is one sentence, printed and spoken, never a traceback."""
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from app.logging_setup import setup_logging

    setup_logging(verbose=args.verbose)
    if args.command is None:
        return _run_tray_app()
    try:
        return COMMANDS[args.command](args)
    except SightlineError as exc:
        log.info("%s failed: %s (%s)", args.command, exc.sentence, exc.detail or "")
        print(exc.sentence, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
        return ExitCode.CANCELLED
    except BrokenPipeError:
        return ExitCode.OK
    except Exception as exc:  # never a traceback for the user; the log keeps it
        log.exception("%s failed unexpectedly", args.command)
        print(
            f"Something went wrong inside Sightline ({type(exc).__name__}). The details are in the log.",
            file=sys.stderr,
        )
        return ExitCode.UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
