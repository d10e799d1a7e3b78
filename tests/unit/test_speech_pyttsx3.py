"""pyttsx3 driver: one engine thread per process, and an empty file is no reason for a silent wait.

Before: two drivers (the app's, and one made while it spoke: a new speech manager after Settings,
a voice list) rendered from two threads into pyttsx3's one shared engine; one render hung or came
back as a bare WAV header ("wrote no usable file (44 bytes)") after a 3 s wait in silence.
"""

from __future__ import annotations

import threading
import time
import wave

import pytest

pytest.importorskip("pyttsx3")

from app.speech.drivers.base import VoiceSettings  # noqa: E402
from app.speech.drivers.pyttsx3_driver import Pyttsx3Driver, _EmptyRender, _read_complete_wav  # noqa: E402


def test_two_drivers_rendering_at_once_both_get_their_audio():
    first, second = Pyttsx3Driver(), Pyttsx3Driver()
    ok, why = first.engine_check()
    if not ok:
        pytest.skip(f"pyttsx3 cannot run here: {why}")
    results: dict[str, list] = {"A": [], "B": []}
    errors: list[str] = []

    def run(driver: Pyttsx3Driver, tag: str) -> None:
        for i in range(6):
            try:
                samples, rate = driver.synthesize(f"Sentence number {i} from {tag}.", VoiceSettings())
                results[tag].append(len(samples) / rate)
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(f"{tag} {i}: {exc!r}")

    threads = [threading.Thread(target=run, args=(d, t)) for d, t in ((first, "A"), (second, "B"))]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - started
    first.close()
    second.close()
    assert not errors, errors
    assert all(len(v) == 6 and min(v) > 0.5 for v in results.values()), results  # real speech, each
    assert elapsed < 20


def test_an_empty_wav_is_reported_at_once(tmp_path):
    path = tmp_path / "empty.wav"
    with wave.open(str(path), "wb") as f:  # what the engine leaves when it renders nothing
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(22050)
        f.writeframes(b"")
    assert path.stat().st_size == 44
    started = time.monotonic()
    with pytest.raises(_EmptyRender, match="44 bytes"):
        _read_complete_wav(path)
    assert time.monotonic() - started < 0.5  # not the 3 s file timeout


def test_the_last_driver_to_close_stops_the_engine_thread():
    first, second = Pyttsx3Driver(), Pyttsx3Driver()
    ok, why = first.engine_check()
    if not ok:
        pytest.skip(f"pyttsx3 cannot run here: {why}")
    second.engine_check()
    assert first._host is second._host  # one engine thread for both
    host = first._host
    first.close()
    assert host.thread.is_alive()
    assert second.synthesize("Still here.", VoiceSettings())[0].size > 0
    second.close()
    host.thread.join(5)
    assert not host.thread.is_alive()


def test_the_engine_prints_nothing_on_our_output(capfd):
    """pyttsx3's espeak backend prints "Audio saved to ..." from its synthesis callback, which can
    run after runAndWait has returned; none of it may reach the app's or the CLI's stdout."""
    driver = Pyttsx3Driver()
    ok, why = driver.engine_check()
    if not ok:
        pytest.skip(f"pyttsx3 cannot run here: {why}")
    try:
        for i in range(8):
            driver.synthesize(f"Short sentence {i}.", VoiceSettings())
    finally:
        driver.close()
    out, _err = capfd.readouterr()
    assert "Audio saved" not in out


def test_what_other_threads_print_while_it_speaks_still_reaches_the_output(capfd):
    """The engine's own prints are dropped, but an answer printed by the CLI while the same answer
    is being spoken must arrive whole: nothing may swap stdout away from the other threads."""
    driver = Pyttsx3Driver()
    ok, why = driver.engine_check()
    if not ok:
        pytest.skip(f"pyttsx3 cannot run here: {why}")
    done = threading.Event()
    printed = 0

    def print_answer() -> None:
        nonlocal printed
        while not done.is_set():
            print(f"answer line {printed}", flush=True)
            printed += 1
            time.sleep(0.002)

    printer = threading.Thread(target=print_answer)
    printer.start()
    try:
        for i in range(6):
            driver.synthesize(f"Another short sentence {i}.", VoiceSettings())
    finally:
        done.set()
        printer.join()
        driver.close()
    out, _err = capfd.readouterr()
    assert "Audio saved" not in out
    lines = [line for line in out.splitlines() if line.startswith("answer line")]
    assert lines == [f"answer line {i}" for i in range(printed)]
