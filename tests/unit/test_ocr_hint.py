"""The OCR default's hint says how to get rich descriptions in the way that works where it runs."""

import importlib.util
import sys

from app.inference import ocr


def test_checkout_points_to_the_model_download():
    assert "sightline model download" in ocr._hint(ocr.MODEL_HINT)


def test_light_edition_points_to_the_local_ai_edition(monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    for hint in (ocr.MODEL_HINT, ocr.QUESTION_HINT, ocr.NO_TEXT_DESCRIBE):
        text = ocr._hint(hint)
        assert "Sightline Local AI" in text and "model download" not in text
