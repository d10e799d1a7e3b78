"""Answers in the user's language.

Phi-4-multimodal's vision was trained for English (its model card), so "answer in German" about a
picture is a gamble. For a picture with any other answer language, the model describes it in
English with the vision adapter, then the same model translates that description with its text
path (no adapter), and the translation streams sentence by sentence. Typed and spoken questions
without a picture are answered directly: the model reads and writes text in 23 languages (Arabic,
Chinese, Czech, Danish, Dutch, English, Finnish, French, German, Hebrew, Hungarian, Italian,
Japanese, Korean, Norwegian, Polish, Portuguese, Russian, Spanish, Swedish, Thai, Turkish,
Ukrainian) and understands speech in 8 (English, Chinese, German, French, Italian, Japanese,
Spanish, Portuguese), as its model card says.
"""

from __future__ import annotations

from dataclasses import replace

from app.core.types import JobRequest, Task

#: Vision: English only.
VISION_LANGUAGE = "English"

DIRECT = "direct"
DESCRIBE_THEN_TRANSLATE = "describe_then_translate"


def is_english(language: str) -> bool:
    name = language.strip().casefold()
    return not name or name.startswith("english") or name in ("en", "en-us", "en-gb", "en_us", "en_gb")


def answer_path(request: JobRequest) -> str:
    """DESCRIBE_THEN_TRANSLATE for a picture answered in another language than English, else DIRECT."""
    if request.task is Task.TRANSLATE or request.image is None or is_english(request.language):
        return DIRECT
    return DESCRIBE_THEN_TRANSLATE


def english_request(request: JobRequest) -> JobRequest:
    """The same request, answered in English (same job id, picture, question and picture text)."""
    return replace(request, language=VISION_LANGUAGE)


def translation_request(request: JobRequest, english: str) -> JobRequest:
    """A text-only request that translates `english` into the request's language.

    Its answer may be somewhat longer than the English (German and French run longer); it gets
    the original answer limit plus a half.
    """
    return JobRequest(
        Task.TRANSLATE,
        question=english.strip(),
        language=request.language,
        detail=request.detail,
        max_new_tokens=max(request.max_new_tokens, int(request.max_new_tokens * 1.5)),
        job_id=request.job_id,
    )
