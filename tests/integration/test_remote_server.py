"""The remote backend against a loopback server that speaks vLLM's streaming protocol.

Every test starts its own server on 127.0.0.1 (random port) and stops it at the end.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.core.cancel import CancelToken
from app.core.errors import Cancelled, ServerError
from app.core.types import AudioInput, Detail, ImageInput, JobRequest, Task, Turn
from app.inference.openai_compatible import (
    OpenAICompatibleBackend,
    RetryPolicy,
    Timeouts,
    size_for_server,
)
from app.inference.prompts import build_prompt
from app.inference.server_tools import check_server
from app.settings.schema import Settings
from tests.fakes.vllm_server import (
    BASE_MODEL,
    FakeVllmServer,
    Fault,
    answer_for,
    make_certificates,
    server_tls_context,
    split_words,
)

TOKEN = "sk-school-9d2b7e41aa0c"


@pytest.fixture
def server():
    with FakeVllmServer() as srv:
        yield srv


def _image(w: int, h: int, seed: int = 0) -> ImageInput:
    rng = np.random.default_rng(seed)
    return ImageInput(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "screen")


def _audio(seconds: float) -> AudioInput:
    t = np.arange(int(16_000 * seconds), dtype=np.float32) / 16_000
    return AudioInput((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), "microphone")


def _expected(request: JobRequest, model: str) -> str:
    image = None
    if request.image is not None:
        image = size_for_server(request.image.width, request.image.height, request.detail.max_crops)
    audio = (len(request.audio.samples), 16_000, 1) if request.audio is not None else None
    return answer_for(model, build_prompt(request).user_text, image, audio)


def _backend(url: str, **kwargs) -> OpenAICompatibleBackend:
    kwargs.setdefault("retry", RetryPolicy(backoff=0.01))
    return OpenAICompatibleBackend(url, **kwargs)


class Consumer:
    """Iterates generate() on its own thread, as the inference worker does."""

    def __init__(self, backend, request, cancel):
        self.chunks: list[str] = []
        self.error: BaseException | None = None
        self.got = threading.Semaphore(0)
        self.finished_at: float | None = None
        self._thread = threading.Thread(target=self._run, args=(backend, request, cancel))
        self._thread.start()

    def _run(self, backend, request, cancel):
        try:
            for chunk in backend.generate(request, cancel):
                self.chunks.append(chunk)  # list.append is atomic; the test reads after join
                self.got.release()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread below
            self.error = exc
        finally:
            self.finished_at = time.perf_counter()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "generate() did not return"


# ---------------------------------------------------------------- answers


def test_streams_the_answer_in_order_and_reads_usage(server):
    backend = _backend(server.url)
    request = JobRequest(Task.ASK_SPOKEN, question="How long is the Nile?")
    chunks = list(backend.generate(request, CancelToken()))
    expected = _expected(request, BASE_MODEL)
    assert chunks == split_words(expected)
    assert "".join(chunks) == expected
    assert backend.usage.tokens_out == len(chunks) and backend.usage.tokens_in > 0
    assert server.completed == 1


def test_adapter_model_per_modality(server):
    backend = _backend(server.url)
    img, aud = _image(640, 400), _audio(1.0)
    cases = [
        (JobRequest(Task.DESCRIBE_BRIEF, image=img), "vision"),
        (JobRequest(Task.ASK_IMAGE, image=img, audio=aud), "vision"),
        (JobRequest(Task.TRANSCRIBE, audio=aud), "speech"),
        (JobRequest(Task.ASK_SPOKEN, audio=aud), "speech"),
        (JobRequest(Task.ASK_SPOKEN, question="Spell necessary."), BASE_MODEL),
    ]
    for request, model in cases:
        assert "".join(backend.generate(request, CancelToken())) == _expected(request, model)
    assert [r.model for r in server.chat_requests()] == [m for _, m in cases]
    # The base model's name was read from /v1/models once, not per request.
    assert [r.path for r in server.requests if r.method == "GET"] == ["/v1/models"]


def test_a_given_base_model_skips_the_model_list(server):
    backend = _backend(server.url, base_model=BASE_MODEL)
    list(backend.generate(JobRequest(Task.ASK_SPOKEN, question="Hello?"), CancelToken()))
    assert [r.method for r in server.requests] == ["POST"]


@pytest.mark.parametrize("detail", list(Detail))
@pytest.mark.parametrize("fmt, mime", [("jpeg", "image/jpeg"), ("png", "image/png")])
def test_payload_image_and_audio_arrive_as_sent(server, detail, fmt, mime):
    backend = _backend(server.url, image_format=fmt, jpeg_quality=85)
    screen = _image(1920, 1080)
    request = JobRequest(
        Task.ASK_IMAGE,
        image=screen,
        audio=_audio(0.75),
        detail=detail,
        history=(Turn("user", "What is this?"), Turn("assistant", "A browser.")),
    )
    "".join(backend.generate(request, CancelToken()))
    (seen,) = server.chat_requests()
    assert seen.image_size == size_for_server(1920, 1080, detail.max_crops)
    assert seen.image_mime == mime
    assert seen.audio == (12_000, 16_000, 1)
    assert [m["role"] for m in seen.body["messages"]] == ["system", "user", "assistant", "user"]
    assert seen.body["stream_options"] == {"include_usage": True}


# ---------------------------------------------------------------- cancel


def test_cancel_mid_stream_closes_the_stream_at_once(no_thread_leak, server):
    # After three words the server goes quiet for an hour; only closing the stream ends the wait.
    server.script(Fault(stall_after=3))
    backend = _backend(server.url)
    cancel = CancelToken()
    consumer = Consumer(backend, JobRequest(Task.ASK_SPOKEN, question="Tell me a long story."), cancel)
    for _ in range(3):
        assert consumer.got.acquire(timeout=10)
    cancelled_at = time.perf_counter()
    cancel.cancel("the user pressed stop")
    consumer.join(timeout=10)
    assert isinstance(consumer.error, Cancelled)
    assert len(consumer.chunks) == 3
    assert consumer.finished_at - cancelled_at < 2.0  # generous: the server would wait an hour
    assert server.disconnected.wait(5), "the server never saw the client go"


def test_cancel_while_waiting_for_the_first_byte(no_thread_leak, server):
    server.script(Fault(delay_headers=60))
    backend = _backend(server.url)
    cancel = CancelToken()
    consumer = Consumer(backend, JobRequest(Task.ASK_SPOKEN, question="Anything?"), cancel)
    while not server.chat_requests():
        time.sleep(0.01)
    cancelled_at = time.perf_counter()
    cancel.cancel()
    consumer.join(timeout=10)
    assert isinstance(consumer.error, Cancelled) and consumer.chunks == []
    assert consumer.finished_at - cancelled_at < 2.0
    assert server.disconnected.wait(5)


def test_cancel_during_a_retry_wait(server):
    server.script(Fault(status=503, retry_after="30"))
    backend = _backend(server.url, retry=RetryPolicy(max_retry_after=60))
    cancel = CancelToken()
    consumer = Consumer(backend, JobRequest(Task.ASK_SPOKEN, question="Anything?"), cancel)
    while not server.chat_requests():
        time.sleep(0.01)
    time.sleep(0.1)
    cancel.cancel()
    consumer.join(timeout=5)
    assert isinstance(consumer.error, Cancelled)
    assert len(server.chat_requests()) == 1


# ---------------------------------------------------------------- faults


def test_server_down_is_a_plain_sentence():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = _backend(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ServerError) as err:
        list(backend.generate(JobRequest(Task.ASK_SPOKEN, question="Hello?"), CancelToken()))
    assert (
        err.value.sentence == "The Sightline server at 127.0.0.1 is not answering. Check that it is running."
    )


@pytest.mark.parametrize("fault", [Fault(delay_headers=30), Fault(delay_first_event=30)])
def test_a_slow_first_byte_times_out_with_a_sentence(server, fault):
    server.script(fault)
    backend = _backend(server.url, timeouts=Timeouts(connect=2, first_byte=0.5, idle=5))
    with pytest.raises(ServerError) as err:
        list(backend.generate(JobRequest(Task.ASK_SPOKEN, question="Hello?"), CancelToken()))
    assert err.value.sentence == (
        "The Sightline server at 127.0.0.1 did not start answering within 0.5 seconds. It may be busy."
    )
    assert server.disconnected.wait(5)


def test_an_idle_stream_times_out_and_keeps_the_words_so_far(server):
    server.script(Fault(stall_after=2))
    backend = _backend(server.url, timeouts=Timeouts(connect=2, first_byte=5, idle=0.5))
    chunks: list[str] = []
    with pytest.raises(ServerError) as err:
        for chunk in backend.generate(JobRequest(Task.ASK_SPOKEN, question="Hello?"), CancelToken()):
            chunks.append(chunk)
    assert len(chunks) == 2
    assert "went quiet for 0.5 seconds partway through the answer" in err.value.sentence


@pytest.mark.parametrize("status", [429, 503])
def test_busy_then_success(server, status):
    server.script(Fault(status=status, retry_after="0"), Fault(status=status))  # second: backoff
    backend = _backend(server.url)
    request = JobRequest(Task.ASK_SPOKEN, question="Are you there?")
    assert "".join(backend.generate(request, CancelToken())) == _expected(request, BASE_MODEL)
    assert len(server.chat_requests()) == 3
    assert backend.timings.attempts == 3


def test_busy_for_too_long_is_said_plainly(server):
    server.script(*[Fault(status=429)] * 4)
    backend = _backend(server.url, retry=RetryPolicy(retries=3, backoff=0.01))
    with pytest.raises(ServerError) as err:
        list(backend.generate(JobRequest(Task.ASK_SPOKEN, question="Hi"), CancelToken()))
    assert err.value.sentence == "The Sightline server at 127.0.0.1 is busy. Try again in a moment."
    assert len(server.chat_requests()) == 4


def test_a_long_retry_after_is_not_waited_for(server):
    server.script(Fault(status=503, retry_after="120"))
    backend = _backend(server.url)
    with pytest.raises(ServerError) as err:
        list(backend.generate(JobRequest(Task.ASK_SPOKEN, question="Hi"), CancelToken()))
    assert "asks to try again in 120 seconds" in err.value.sentence
    assert len(server.chat_requests()) == 1


def test_other_errors_are_not_retried_and_quote_the_server(server):
    server.script(Fault(status=400, message="This model's maximum context length is 4096 tokens."))
    backend = _backend(server.url)
    with pytest.raises(ServerError) as err:
        list(backend.generate(JobRequest(Task.ASK_SPOKEN, question="Hi"), CancelToken()))
    assert err.value.sentence == (
        "The Sightline server at 127.0.0.1 could not take this request. "
        "It said: This model's maximum context length is 4096 tokens."
    )
    server.script(Fault(status=500))
    with pytest.raises(ServerError, match=r"had a problem \(error 500\)"):
        list(backend.generate(JobRequest(Task.ASK_SPOKEN, question="Hi"), CancelToken()))
    assert len(server.chat_requests()) == 2


def test_a_missing_adapter_is_named():
    with FakeVllmServer(adapters=("vision",)) as srv:
        backend = _backend(srv.url)
        with pytest.raises(ServerError) as err:
            list(backend.generate(JobRequest(Task.TRANSCRIBE, audio=_audio(1)), CancelToken()))
    assert "does not serve the speech model" in err.value.sentence


def test_a_malformed_event_stops_with_a_sentence_and_keeps_the_words_so_far(server):
    server.script(Fault(malformed_after=2))
    backend = _backend(server.url)
    chunks: list[str] = []
    with pytest.raises(ServerError) as err:
        for chunk in backend.generate(JobRequest(Task.ASK_SPOKEN, question="Hi"), CancelToken()):
            chunks.append(chunk)
    assert len(chunks) == 2
    assert err.value.sentence == (
        "The Sightline server at 127.0.0.1 sent part of the answer in a form Sightline could not read. "
        "What came before it is kept."
    )


def test_an_event_that_is_not_utf8_stops_with_a_sentence_and_keeps_the_words_so_far(server):
    server.script(Fault(latin1_after=2))
    chunks: list[str] = []
    with pytest.raises(ServerError) as err:
        for chunk in _backend(server.url).generate(JobRequest(Task.ASK_SPOKEN, question="Hi"), CancelToken()):
            chunks.append(chunk)
    assert len(chunks) == 2 and "\ufffd" not in "".join(chunks)
    assert "could not read. What came before it is kept." in err.value.sentence
    assert "UTF-8" in err.value.detail


def test_a_line_that_is_no_event_field_is_ignored(server):
    server.script(Fault(junk_line_after=2))
    backend = _backend(server.url)
    request = JobRequest(Task.ASK_SPOKEN, question="Hi")
    assert "".join(backend.generate(request, CancelToken())) == _expected(request, BASE_MODEL)


def test_an_error_mid_stream_keeps_the_partial_answer_then_raises(server):
    server.script(Fault(error_after=3))
    backend = _backend(server.url)
    request = JobRequest(Task.ASK_SPOKEN, question="Explain tides.")
    chunks: list[str] = []
    with pytest.raises(ServerError) as err:
        for chunk in backend.generate(request, CancelToken()):
            chunks.append(chunk)
    assert chunks == split_words(_expected(request, BASE_MODEL))[:3]
    assert err.value.sentence == (
        "The Sightline server at 127.0.0.1 stopped with an error partway through the answer."
    )
    assert "EngineCore" in err.value.detail


def test_a_dropped_connection_mid_stream_keeps_the_partial_answer(server):
    server.script(Fault(drop_after=2))
    backend = _backend(server.url)
    chunks: list[str] = []
    with pytest.raises(ServerError) as err:
        for chunk in backend.generate(JobRequest(Task.ASK_SPOKEN, question="Hi"), CancelToken()):
            chunks.append(chunk)
    assert len(chunks) == 2
    assert err.value.sentence == (
        "The connection to the Sightline server at 127.0.0.1 was lost partway through the answer."
    )


# ---------------------------------------------------------------- TLS and the token


@pytest.fixture
def tls_server(tmp_path):
    ca_file, cert_file, key_file = make_certificates(tmp_path / "tls")
    with FakeVllmServer(ssl_context=server_tls_context(cert_file, key_file)) as srv:
        yield srv, ca_file


def test_tls_with_the_organisation_certificate_authority(tls_server):
    srv, ca_file = tls_server
    assert srv.url.startswith("https://127.0.0.1:")
    backend = _backend(srv.url, ca_file=str(ca_file))
    request = JobRequest(Task.DESCRIBE_BRIEF, image=_image(800, 600))
    assert "".join(backend.generate(request, CancelToken())) == _expected(request, "vision")


def test_tls_without_the_certificate_authority_is_refused(tls_server):
    srv, _ = tls_server
    backend = _backend(srv.url)
    with pytest.raises(ServerError) as err:
        list(backend.generate(JobRequest(Task.ASK_SPOKEN, question="Hi"), CancelToken()))
    assert "does not trust the Sightline server at 127.0.0.1" in err.value.sentence
    assert srv.chat_requests() == []  # nothing was sent before the certificate was checked


def test_cancel_mid_stream_over_tls(no_thread_leak, tmp_path):
    ca_file, cert_file, key_file = make_certificates(tmp_path / "tls")
    with FakeVllmServer(ssl_context=server_tls_context(cert_file, key_file)) as srv:
        srv.script(Fault(stall_after=2))
        cancel = CancelToken()
        backend = _backend(srv.url, ca_file=str(ca_file))
        consumer = Consumer(backend, JobRequest(Task.ASK_SPOKEN, question="Go on."), cancel)
        for _ in range(2):
            assert consumer.got.acquire(timeout=10)
        cancelled_at = time.perf_counter()
        cancel.cancel()
        consumer.join(timeout=10)
        assert isinstance(consumer.error, Cancelled) and len(consumer.chunks) == 2
        assert consumer.finished_at - cancelled_at < 2.0
        assert srv.disconnected.wait(5)


def test_plain_http_to_a_tls_server_says_what_to_check(tls_server):
    srv, _ = tls_server
    backend = _backend(srv.url.replace("https://", "http://"))
    with pytest.raises(ServerError) as err:
        list(backend.generate(JobRequest(Task.ASK_SPOKEN, question="Hi"), CancelToken()))
    assert err.value.sentence == (
        "The Sightline server at 127.0.0.1 did not answer like a Sightline server. "
        "Check whether it needs https."
    )


def test_the_token_is_sent_as_bearer_and_never_shown(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SCHOOL_TOKEN", TOKEN)
    with FakeVllmServer(token=TOKEN) as srv:
        backend = _backend(srv.url, token_env="SCHOOL_TOKEN")
        request = JobRequest(Task.ASK_SPOKEN, question="Hi")
        assert "".join(backend.generate(request, CancelToken())) == _expected(request, BASE_MODEL)
        assert {r.headers.get("Authorization") for r in srv.requests} == {f"Bearer {TOKEN}"}
        errors: list[ServerError] = []
        # A proxy that echoes the header back in its error messages, before and during the stream.
        for fault in (Fault(status=400, echo_authorization=True), Fault(status=500, echo_authorization=True)):
            srv.script(fault)
            with pytest.raises(ServerError) as err:
                list(backend.generate(request, CancelToken()))
            errors.append(err.value)
        assert "[hidden]" in errors[0].sentence  # the echo was there, and scrubbed
        check = check_server(srv.url, Settings(server_token_env="SCHOOL_TOKEN"))
        assert check.ok
        logging.getLogger("app").info("after: %s %s", backend.client, errors)
    for exc in errors:
        for text in (exc.sentence, exc.detail or "", str(exc), repr(exc)):
            assert TOKEN not in text
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(backend.client.token()) and TOKEN not in repr(vars(backend.client))


def test_without_a_token_the_server_says_it_needs_one(monkeypatch):
    monkeypatch.delenv("SIGHTLINE_SERVER_TOKEN", raising=False)
    with FakeVllmServer(token=TOKEN) as srv:
        backend = _backend(srv.url)
        with pytest.raises(ServerError) as err:
            list(backend.generate(JobRequest(Task.DESCRIBE_BRIEF, image=_image(64, 64)), CancelToken()))
        assert "needs an access token" in err.value.sentence
        monkeypatch.setenv("SIGHTLINE_SERVER_TOKEN", "wrong-token-123")
        with pytest.raises(ServerError, match="did not accept the access token"):
            list(backend.generate(JobRequest(Task.DESCRIBE_BRIEF, image=_image(64, 64)), CancelToken()))


def test_the_token_can_come_from_the_keyring(monkeypatch):
    import keyring

    from tests.unit.test_remote_credentials import MemoryKeyring

    monkeypatch.delenv("SIGHTLINE_SERVER_TOKEN", raising=False)
    before = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    try:
        with FakeVllmServer(token=TOKEN) as srv:
            ring.set_password("sightline", f"http://127.0.0.1:{srv.port}", TOKEN)
            backend = _backend(srv.url)
            request = JobRequest(Task.ASK_SPOKEN, question="Hi")
            assert "".join(backend.generate(request, CancelToken())) == _expected(request, BASE_MODEL)
    finally:
        keyring.set_keyring(before)


# ---------------------------------------------------------------- many desktops at once


def test_fifty_desktops_at_once_get_their_own_answers():
    with FakeVllmServer(default_fault=Fault(token_delay=0.005)) as srv:
        backend = _backend(srv.url, base_model=BASE_MODEL)
        requests = []
        for i in range(50):
            if i % 3 == 0:
                req = JobRequest(
                    Task.ASK_IMAGE, image=_image(200 + i, 120 + i, seed=i), question=f"Item {i}?"
                )
            elif i % 3 == 1:
                req = JobRequest(Task.ASK_SPOKEN, audio=_audio(0.1 + i / 100), question=f"Clip {i}?")
            else:
                req = JobRequest(Task.ASK_SPOKEN, question=f"Question number {i}?")
            requests.append(req)

        def ask(req: JobRequest) -> str:
            return "".join(backend.generate(req, CancelToken()))

        start = threading.Barrier(50)

        def ask_together(req: JobRequest) -> str:
            start.wait(timeout=30)
            return ask(req)

        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(ask_together, requests, timeout=120))
        assert srv.completed == 50
    for req, answer in zip(requests, answers, strict=True):
        model = "vision" if req.image is not None else "speech" if req.audio is not None else BASE_MODEL
        assert answer == _expected(req, model)
    assert len(set(answers)) == 50


# ---------------------------------------------------------------- the health check


def test_server_check_lists_models_and_adapters(server):
    report = check_server(server.url, Settings())
    assert report.ok and report.reachable
    assert report.base_models == (BASE_MODEL,) and set(report.adapters) == {"vision", "speech"}
    assert report.lines()[-1] == "It has everything Sightline needs."
    assert report.to_json()["ok"] is True


def test_server_check_names_a_missing_adapter():
    with FakeVllmServer(adapters=("vision",)) as srv:
        report = check_server(srv.url, Settings())
    assert report.reachable and not report.ok and report.has_vision and not report.has_speech
    assert "Sightline needs the speech adapter, which it does not serve." in " ".join(report.lines())


def test_server_check_of_a_server_that_is_down():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = check_server(f"http://127.0.0.1:{port}/v1", Settings())
    assert not report.reachable and not report.ok
    assert report.lines() == ["The Sightline server at 127.0.0.1 is not answering. Check that it is running."]


def test_server_check_refuses_insecure_remote_http():
    report = check_server("http://gpu.office.example:8000/v1", Settings())
    assert not report.reachable and "plain http to another computer is refused" in report.lines()[0].lower()
