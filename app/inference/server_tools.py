"""Tools for the people who run a Sightline server: a health check and the `vllm serve` command."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from app.core.errors import ServerError
from app.inference.openai_compatible import (
    SERVER_MAX_CROPS,
    SPEECH_MODEL,
    VISION_MODEL,
    OpenAICompatibleBackend,
    Timeouts,
    server_display_name,
)

#: The checkpoint vLLM serves: the hub repository's main branch (the remote-code format).
MODEL_REPO = "microsoft/Phi-4-multimodal-instruct"
DEFAULT_SNAPSHOT = "<path to the main-branch snapshot>"


@dataclass(frozen=True)
class ServerReport:
    url: str
    reachable: bool
    base_models: tuple[str, ...] = ()
    adapters: tuple[str, ...] = ()  # LoRA adapters: cards whose parent is a base model
    has_vision: bool = False
    has_speech: bool = False
    sentences: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reachable and self.has_vision and self.has_speech and bool(self.base_models)

    def lines(self) -> list[str]:
        return list(self.sentences)

    def to_json(self) -> dict:
        return {
            "url": self.url,
            "ok": self.ok,
            "reachable": self.reachable,
            "base_models": list(self.base_models),
            "adapters": list(self.adapters),
            "vision": self.has_vision,
            "speech": self.has_speech,
            "sentences": list(self.sentences),
        }


def check_server(url: str, settings, *, timeout: float = 10.0) -> ServerReport:
    """Ask the server at `url` what it serves, with the settings' TLS, token and http rules."""
    from dataclasses import replace

    settings = replace(settings, server_url=url)
    backend = OpenAICompatibleBackend.from_settings(settings)
    name = backend.display_name
    status = backend.check()
    if not status.ok:
        sentence = status.reason[:1].upper() + status.reason[1:] + "."
        return ServerReport(url, False, sentences=(sentence,))
    client = backend.client
    assert client is not None
    client.timeouts = Timeouts(
        connect=min(timeout, client.timeouts.connect), first_byte=timeout, idle=timeout, turn=timeout * 2
    )
    try:
        listing = client.get_json("/models")
    except ServerError as exc:
        return ServerReport(url, False, sentences=(exc.sentence,))
    cards = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(cards, list):
        return ServerReport(url, True, sentences=(f"{_cap(name)} answered, but not with a list of models.",))
    base: list[str] = []
    adapters: list[str] = []
    for card in cards:
        if not isinstance(card, dict) or not isinstance(card.get("id"), str):
            continue
        (adapters if card.get("parent") else base).append(card["id"])
    has_vision = VISION_MODEL in adapters or VISION_MODEL in base
    has_speech = SPEECH_MODEL in adapters or SPEECH_MODEL in base
    sentences = [f"{_cap(name)} is reachable at {client.address.url()}."]
    if base:
        sentences.append(f"It serves the model {', '.join(base)}.")
    else:
        sentences.append("It serves no base model.")
    if adapters:
        sentences.append(f"Its adapters: {', '.join(adapters)}.")
    else:
        sentences.append("It serves no adapters.")
    missing = [m for m, there in ((VISION_MODEL, has_vision), (SPEECH_MODEL, has_speech)) if not there]
    if missing:
        sentences.append(
            f"Sightline needs the {' and '.join(missing)} adapter{'s' if len(missing) > 1 else ''}, "
            "which it does not serve. Start it with the command from sightline server command."
        )
    elif base:
        sentences.append("It has everything Sightline needs.")
    return ServerReport(
        url,
        True,
        base_models=tuple(base),
        adapters=tuple(adapters),
        has_vision=has_vision,
        has_speech=has_speech,
        sentences=tuple(sentences),
    )


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def vllm_serve_command(snapshot: str = DEFAULT_SNAPSHOT, *, host: str = "127.0.0.1", port: int = 8000) -> str:
    """The `vllm serve` command for Phi-4-multimodal with its vision and speech adapters.

    The flags are the ones that work on current vLLM (0.33): the model card's own command uses
    flags that were removed. The main-branch (remote-code) checkpoint needs --trust-remote-code on
    the server. It listens on loopback by default: put a TLS reverse proxy with a token in front
    (docs/scale-out.md), or pass host="0.0.0.0" on a closed network.
    """
    snap = snapshot.rstrip("/") or DEFAULT_SNAPSHOT
    q = shlex.quote
    lines = [
        f"vllm serve {q(snap)}",
        "--trust-remote-code",
        f"--host {q(host)} --port {int(port)}",
        "--max-model-len 4096",
        "--enable-lora --max-lora-rank 320 --max-loras 2",
        f"--lora-modules {SPEECH_MODEL}={q(snap + '/speech-lora')} {VISION_MODEL}={q(snap + '/vision-lora')}",
        "--limit-mm-per-prompt " + q('{"image":1,"audio":1}'),
        # The client sizes images for this cap (openai_compatible.size_for_server): keep them equal.
        "--mm-processor-kwargs " + q(json.dumps({"dynamic_hd": SERVER_MAX_CROPS}, separators=(",", ":"))),
    ]
    return " \\\n  ".join(lines)


__all__ = ["ServerReport", "check_server", "vllm_serve_command", "server_display_name", "MODEL_REPO"]
