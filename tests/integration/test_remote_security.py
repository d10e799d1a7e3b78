"""What Sightline sends to a server, and where: plain http only to this computer (decided on the
addresses a name resolves to, not on the name), and the access token never shown, spoken or logged
in any form, even when a server or proxy echoes it back.

The plain-http tests listen on a real non-loopback address of this machine and prove that no byte
arrives there; the resolver is injected in this process, and replaced by a private /etc/hosts (a
mount namespace) for the command-line test.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import pytest

from app.core.cancel import CancelToken
from app.core.errors import ServerError
from app.core.types import JobRequest, Task
from app.inference.credentials import redact
from app.inference.openai_compatible import INSECURE_HTTP_REASON, OpenAICompatibleBackend, RetryPolicy
from tests.fakes.vllm_server import BASE_MODEL, FakeVllmServer, Fault, token_echo_forms
from tests.integration.test_cli import ROOT, sightline

TOKEN = "sk-7Qf2ZxW9kLm4Tb8Rv1YcPq3N-uv5"
QUESTION = JobRequest(Task.ASK_SPOKEN, question="What is the capital of Peru?")
REFUSED = INSECURE_HTTP_REASON.split(";")[0]  # "plain http to another computer is refused"


def _outside_address() -> str:
    """An address of this machine that is not loopback, or skip."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # UDP: picks the outgoing address, sends nothing
        address = probe.getsockname()[0]
    except OSError:
        pytest.skip("this machine has no network address other than loopback")
    finally:
        probe.close()
    if address.startswith("127.") or address == "0.0.0.0":
        pytest.skip("this machine has no network address other than loopback")
    return address


class Listener:
    """A TCP listener on a non-loopback address that records every byte anyone sends it."""

    def __init__(self, address: str):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((address, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.address, self.port = self.sock.getsockname()
        self.connections = 0
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outside-listener")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.settimeout(0.5)
            try:
                while chunk := conn.recv(65536):
                    self.received += chunk
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def outside():
    listener = Listener(_outside_address())
    yield listener
    listener.close()


def _resolver(*answers: str, calls: list | None = None):
    def resolve(host: str, port: int):
        if calls is not None:
            calls.append(host)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, (a, port) if ":" not in a else (a, port, 0, 0))
            for a in answers
        ]

    return resolve


def _backend(url: str, resolver, **kwargs) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend(
        url, base_model=BASE_MODEL, token=TOKEN, resolver=resolver, retry=RetryPolicy(retries=0), **kwargs
    )


# ---------------------------------------------------------------- plain http: decided on the address


@pytest.mark.parametrize("host", ["evil.localhost", "localhost", "ai.localhost"])
def test_a_loopback_name_that_resolves_elsewhere_gets_nothing(outside, host):
    backend = _backend(f"http://{host}:{outside.port}/v1", _resolver(outside.address))
    assert backend.check().ok  # the name alone looks local: only the address can tell
    with pytest.raises(ServerError) as err:
        list(backend.generate(QUESTION, CancelToken()))
    assert REFUSED in err.value.sentence.lower()
    assert outside.address in (err.value.detail or "")
    outside.close()
    assert outside.connections == 0 and outside.received == b""


def test_every_address_must_be_loopback_not_only_the_first(outside):
    backend = _backend(f"http://evil.localhost:{outside.port}/v1", _resolver("127.0.0.1", outside.address))
    with pytest.raises(ServerError) as err:
        list(backend.generate(QUESTION, CancelToken()))
    assert REFUSED in err.value.sentence.lower()
    outside.close()
    assert outside.connections == 0 and outside.received == b""


def test_a_name_that_resolves_to_loopback_still_works():
    calls: list[str] = []
    with FakeVllmServer(token=TOKEN) as server:
        backend = _backend(f"http://evil.localhost:{server.port}/v1", _resolver("127.0.0.1", calls=calls))
        text = "".join(backend.generate(QUESTION, CancelToken()))
        (seen,) = server.chat_requests()
    assert text.startswith("Model ")
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Host"] == f"evil.localhost:{server.port}"  # the name, sent to the checked address
    assert calls == ["evil.localhost"]


def test_the_connection_goes_to_the_address_that_was_checked(outside, monkeypatch):
    # A resolver whose answer changes between calls (DNS rebinding): the first answer is checked
    # and used; nothing resolves the name again behind it.
    answers = iter(["127.0.0.1", outside.address, outside.address])
    calls: list[str] = []

    def rebinding(host, port):
        calls.append(host)
        return [(socket.AF_INET, (next(answers), port))]

    def no_lookup(*args, **kwargs):
        raise AssertionError("the name was resolved again")

    with FakeVllmServer() as server:
        monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
        monkeypatch.setattr(socket, "create_connection", no_lookup)
        backend = _backend(f"http://rebind.localhost:{server.port}/v1", rebinding)
        text = "".join(backend.generate(QUESTION, CancelToken()))
        monkeypatch.undo()
        assert text and server.completed == 1
    outside.close()
    assert calls == ["rebind.localhost"] and outside.received == b""


def test_allowed_insecure_http_does_reach_another_computer(outside):
    # The listener catches what a wrong refusal would let through: this proves it can.
    backend = _backend(
        f"http://evil.localhost:{outside.port}/v1", _resolver(outside.address), allow_insecure_http=True
    )
    with pytest.raises(ServerError):
        list(backend.generate(QUESTION, CancelToken()))
    outside.close()
    assert outside.connections == 1 and b"POST /v1/chat/completions" in outside.received


def _unshare_works() -> bool:
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs root and mount namespaces (unshare -m)")
def test_the_cli_refuses_a_hosts_entry_that_points_elsewhere(outside, tmp_path, sightline_home):
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{outside.address} evil.localhost\n", encoding="utf-8")
    url = f"http://evil.localhost:{outside.port}/v1"
    script = (
        f"mount --bind {hosts} /etc/hosts && "
        f"getent hosts evil.localhost && "
        f"exec {sys.executable} -m app ask 'What is here?' --backend remote --server {url}"
    )
    env = dict(os.environ, SIGHTLINE_SERVER_TOKEN=TOKEN, SIGHTLINE_HOME=str(sightline_home))
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if outside.address not in proc.stdout:  # e.g. nss-myhostname answers *.localhost before files
        pytest.skip(f"the private hosts file is not consulted for evil.localhost here: {proc.stdout!r}")
    assert proc.returncode in (2, 8), (proc.returncode, proc.stderr)
    assert REFUSED in proc.stderr.lower() and "Traceback" not in proc.stderr
    outside.close()
    assert outside.connections == 0 and outside.received == b""


# ---------------------------------------------------------------- the token, in every form


def _token_material(token: str) -> list[str]:
    """Every form a piece of the token can take: plain, URL-encoded, hex, base64 at each alignment."""
    forms = [token, quote(token, safe=""), token.encode().hex()]
    for shift in range(3):
        encoded = base64.b64encode(token.encode()[shift:]).decode().rstrip("=")
        forms += [encoded[:-2], encoded[:-2].replace("+", "-").replace("/", "_")]
    return forms


def _leaks(text: str, token: str = TOKEN, size: int = 8) -> list[str]:
    """The runs of `size` characters of any form of the token found in `text`, in any case."""
    folded = text.casefold()
    found = []
    for form in _token_material(token):
        for i in range(len(form) - size + 1):
            if form[i : i + size].casefold() in folded:
                found.append(form[i : i + size])
    return found


def test_the_leak_finder_finds_each_echoed_form():
    for name, form in token_echo_forms(TOKEN).items():
        assert _leaks(f"error: {form} here"), name
        assert not _leaks(redact(f"error: {form} here", TOKEN)), (name, redact(form, TOKEN))


def test_a_server_that_echoes_the_token_in_every_form_leaks_none_of_it(caplog):
    caplog.set_level("DEBUG")
    with FakeVllmServer(default_fault=Fault(echo_token_forms=True)) as server:
        backend = _backend(server.url, None)
        with pytest.raises(ServerError) as err:
            list(backend.generate(QUESTION, CancelToken()))
        (seen,) = server.chat_requests()
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"  # it was sent, so it could be echoed
    assert "did not accept the access token" in err.value.sentence
    for text in (err.value.sentence, err.value.detail or "", str(err.value), caplog.text):
        assert not _leaks(text), (_leaks(text), text)
    assert "[hidden]" in (err.value.detail or "")  # the echo was there, and hidden


def test_an_error_quoted_from_the_server_is_scrubbed_too():
    echoed = " ".join(token_echo_forms(TOKEN).values())
    with FakeVllmServer(token=TOKEN) as server:
        server.script(Fault(status=400, message=f"max_tokens is too large for {echoed}"))
        backend = _backend(server.url, None)
        with pytest.raises(ServerError) as err:
            list(backend.generate(QUESTION, CancelToken()))
    assert "max_tokens is too large" in err.value.sentence  # still says what the server said
    assert not _leaks(err.value.sentence) and not _leaks(err.value.detail or "")


def test_the_cli_shows_speaks_and_logs_no_piece_of_the_token(sightline_home):
    with FakeVllmServer(default_fault=Fault(echo_token_forms=True)) as server:
        proc = sightline(
            "-v",
            "ask",
            "What is here?",
            "--backend",
            "remote",
            "--server",
            server.url,
            env_extra={"SIGHTLINE_SERVER_TOKEN": TOKEN, "SIGHTLINE_HOME": str(sightline_home)},
            timeout=60,
        )
        assert server.chat_requests()[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert proc.returncode == 8, (proc.returncode, proc.stderr)
    assert "access token" in proc.stderr and "Traceback" not in proc.stderr
    logs = [p for p in Path(sightline_home).rglob("*") if p.is_file() and ".log" in p.name]
    assert logs, "the CLI wrote no log file"
    texts = [proc.stdout, proc.stderr] + [p.read_text(encoding="utf-8", errors="replace") for p in logs]
    for text in texts:
        assert not _leaks(text), _leaks(text)
