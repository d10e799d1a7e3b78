"""The OCR backend's engine handling, with a scripted engine in place of RapidOCR."""

from __future__ import annotations

import sys
import threading
import time
import types
from pathlib import Path

import numpy as np

from app.core.cancel import CancelToken
from app.inference import ocr


class _Result:
    def __init__(self) -> None:
        self.boxes = [np.array([[1, 2], [30, 2], [30, 12], [1, 12]], float)]
        self.txts = ("Save",)
        self.scores = (0.9,)


class _Engine:
    def __init__(self, params=None) -> None:
        self.params = params

    def __call__(self, img, **options):
        return _Result()


def _scripted_backend(monkeypatch) -> ocr.OcrBackend:
    monkeypatch.setitem(sys.modules, "rapidocr", types.SimpleNamespace(RapidOCR=_Engine))
    files = {kind: Path(f"/models/{kind}.onnx") for kind in ("det", "rec", "cls")}
    monkeypatch.setattr(ocr, "_model_files", lambda: files)
    return ocr.OcrBackend()


def test_recognise_loads_the_engine_on_first_use(monkeypatch):
    backend = _scripted_backend(monkeypatch)
    assert not backend.loaded
    lines = backend.recognise(np.zeros((20, 40, 3), np.uint8))
    assert backend.loaded
    assert [line.text for line in lines] == ["Save"]


def test_an_unload_on_another_thread_never_leaves_recognition_calling_none(monkeypatch):
    """Another thread (a backend switch, quitting) unloads while a recognition waits for the
    engine's lock: the recognition still answers instead of failing with a TypeError."""
    backend = _scripted_backend(monkeypatch)
    backend.load(CancelToken())
    outcome: list[object] = []

    def recognise() -> None:
        try:
            outcome.append(backend.recognise(np.zeros((20, 40, 3), np.uint8)))
        except Exception as exc:  # noqa: BLE001 - the test reports what went wrong
            outcome.append(exc)

    with backend._lock:  # the engine is busy: the recognition waits for it
        thread = threading.Thread(target=recognise)
        thread.start()
        time.sleep(0.2)
        backend._engine = None  # what unload() does once it has the lock
    thread.join(5)
    assert len(outcome) == 1 and isinstance(outcome[0], list), outcome
    assert [line.text for line in outcome[0]] == ["Save"]
