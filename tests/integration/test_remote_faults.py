"""Faulty servers: whatever a server does, a job ends with one sentence in bounded time, and Stop
ends it within a second.

Each case of tests/fakes/vllm_server.FAULTY_SERVERS runs against the remote backend in this process
(the sentence, the partial answer kept, the time it took) and through the `sightline` command
(exit code 8, the sentence on stderr, no traceback).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from app.core.cancel import CancelToken
from app.core.errors import Cancelled, ServerError
from app.core.types import JobRequest, Task
from app.inference.openai_compatible import OpenAICompatibleBackend, RetryPolicy, Timeouts
from tests.fakes.vllm_server import (
    BASE_MODEL,
    FAULT_TIMEOUTS,
    FAULTY_SERVERS,
    FakeVllmServer,
    Fault,
    FaultCase,
)
from tests.integration.test_cli import ROOT, sightline

FIRST, IDLE, TURN = FAULT_TIMEOUTS
QUESTION = JobRequest(Task.ASK_SPOKEN, question="Tell me about rivers.")
CASE_IDS = [case.name for case in FAULTY_SERVERS]


def _backend(url: str) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend(
        url,
        base_model=BASE_MODEL,
        timeouts=Timeouts(connect=2.0, first_byte=FIRST, idle=IDLE, turn=TURN),
        retry=RetryPolicy(retries=0),
    )


class Run:
    """generate() on its own thread, as the inference worker runs it."""

    def __init__(self, backend: OpenAICompatibleBackend, cancel: CancelToken):
        self.chunks: list[str] = []
        self.error: BaseException | None = None
        self.first = threading.Event()
        self.ended_at = 0.0
        self._thread = threading.Thread(target=self._run, args=(backend, cancel), name="test-consumer")
        self._thread.start()

    def _run(self, backend, cancel) -> None:
        try:
            for chunk in backend.generate(QUESTION, cancel):
                self.chunks.append(chunk)
                self.first.set()
        except BaseException as exc:  # noqa: BLE001 - read by the test thread after join
            self.error = exc
        finally:
            self.ended_at = time.monotonic()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "generate() did not return"


@pytest.mark.parametrize("case", FAULTY_SERVERS, ids=CASE_IDS)
def test_each_faulty_server_ends_with_its_sentence_in_bounded_time(no_thread_leak, case: FaultCase):
    with FakeVllmServer(default_fault=case.fault) as server:
        started = time.monotonic()
        run = Run(_backend(server.url), CancelToken())
        run.join(TURN + 5)
        took = run.ended_at - started
    assert isinstance(run.error, ServerError), (case.name, run.error)
    sentence = run.error.sentence
    assert case.sentence in sentence, (case.name, sentence)
    assert run.error.exit_code == case.exit_code
    assert sentence.endswith(".") and "\n" not in sentence and len(sentence) < 200
    assert bool(run.chunks) == case.partial, (case.name, run.chunks[:3])
    assert took < TURN + 1.5, (case.name, took)
    if case.name == "50 MB answer":
        assert sum(map(len, run.chunks)) <= 512 * 16  # cut at the length limit, not read to the end


@pytest.mark.parametrize("case", FAULTY_SERVERS, ids=CASE_IDS)
def test_stop_ends_the_job_within_a_second_whatever_the_server_does(no_thread_leak, case: FaultCase):
    with FakeVllmServer(default_fault=case.fault) as server:
        cancel = CancelToken()
        backend = OpenAICompatibleBackend(
            server.url,
            base_model=BASE_MODEL,
            timeouts=Timeouts(first_byte=60, idle=60, turn=120),  # no limit comes to the rescue
            retry=RetryPolicy(retries=0),
        )
        run = Run(backend, cancel)
        if case.partial:
            assert run.first.wait(10), case.name
        time.sleep(0.3)  # the fault is under way: stalled, dripping, or streaming
        if run.ended_at:  # the fault ended the job by itself (a reset, a line too long): no Stop to test
            run.join(5)
            assert isinstance(run.error, ServerError), run.error
            return
        stop = time.monotonic()
        cancel.cancel("stop")
        run.join(5)
        assert isinstance(run.error, Cancelled), (case.name, run.error)
        assert run.ended_at - stop < 1.0, (case.name, run.ended_at - stop)
        deadline = time.monotonic() + 5  # and the server sees the connection go
        while server.disconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert server.disconnects >= 1 or case.name.startswith(("tokens forever", "50 MB"))


def test_stop_while_connecting_to_an_address_that_never_answers(no_thread_leak):
    # 192.0.2.0/24 is for documentation: nothing answers there, so the connect hangs until its timeout.
    backend = OpenAICompatibleBackend(
        "https://192.0.2.200:9/v1",
        base_model=BASE_MODEL,
        timeouts=Timeouts(connect=30, first_byte=60, idle=60, turn=120),
    )
    cancel = CancelToken()
    run = Run(backend, cancel)
    time.sleep(0.5)
    stop = time.monotonic()
    cancel.cancel("stop")
    run.join(5)
    assert isinstance(run.error, Cancelled), run.error
    assert run.ended_at - stop < 1.0


def test_cancel_callbacks_run_once_on_the_cancelling_thread():
    cancel = CancelToken()
    calls: list[str] = []
    remove = cancel.add_callback(lambda: calls.append(threading.current_thread().name))
    removed = cancel.add_callback(lambda: calls.append("removed"))
    removed()
    cancel.cancel()
    cancel.cancel()
    assert calls == [threading.current_thread().name]
    remove()  # after the fact: harmless
    late: list[int] = []
    cancel.add_callback(lambda: late.append(1))  # already cancelled: runs at once
    assert late == [1]


def test_a_server_that_sends_keepalives_between_tokens_is_not_idle(no_thread_leak):
    # Keep-alives do not count as progress, but steady tokens do: a slow answer within the idle limit
    # finishes even when it takes longer than the idle limit in all.
    with FakeVllmServer(default_fault=Fault(token_delay=IDLE / 3)) as server:
        run = Run(_backend(server.url), CancelToken())
        run.join(TURN + 5)
    assert run.error is None and "".join(run.chunks).startswith("Model ")


# ---------------------------------------------------------------- through the CLI


CLI_DRIP = "byte drip"


@pytest.fixture
def fast_limits(sightline_home):
    config = sightline_home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "settings.json").write_text(
        json.dumps({"version": 1, "server_idle_timeout": 1, "server_turn_timeout": 5}), encoding="utf-8"
    )


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in FAULTY_SERVERS
        if c.name in ("stall after tokens", "keep-alive comments forever", "byte drip")
    ],
    ids=lambda c: c.name,
)
def test_the_cli_never_hangs_on_a_faulty_server(fast_limits, case: FaultCase):
    with FakeVllmServer(default_fault=case.fault) as server:
        started = time.monotonic()
        proc = sightline(
            "ask",
            "Tell me about rivers.",
            "--backend",
            "remote",
            "--server",
            server.url,
            timeout=60,
        )
        took = time.monotonic() - started
    assert proc.returncode == case.exit_code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert case.sentence in proc.stderr, proc.stderr
    assert took < 30, took


@pytest.mark.parametrize(
    "fault", [Fault(keepalive_after=0), Fault(stall_after=3)], ids=["keep-alive", "stall"]
)
def test_ctrl_c_ends_the_cli_on_a_stalled_server_with_130(fault, sightline_home):
    with FakeVllmServer(default_fault=fault) as server:
        env = dict(os.environ, SIGHTLINE_HOME=str(sightline_home))
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "ask", "Tell me about rivers.", "--backend", "remote"]
            + ["--server", server.url],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not server.chat_requests() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.chat_requests(), "the CLI never asked the server"
            time.sleep(0.5)  # stalled now, with no limit near (30 s by default)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, (proc.returncode, out, err)
    assert "Traceback" not in err
    assert took < 2.0, took


def test_stop_while_the_name_lookup_hangs(monkeypatch):
    release = threading.Event()

    def slow_dns(*args, **kwargs):
        release.wait(30)  # a DNS server that does not answer
        raise socket.gaierror("timed out")

    monkeypatch.setattr(socket, "getaddrinfo", slow_dns)
    backend = OpenAICompatibleBackend("https://gpu.school.example/v1", base_model=BASE_MODEL)
    cancel = CancelToken()
    run = Run(backend, cancel)
    time.sleep(0.3)
    stop = time.monotonic()
    cancel.cancel("stop")
    run.join(5)
    release.set()
    assert isinstance(run.error, Cancelled), run.error
    assert run.ended_at - stop < 1.0
