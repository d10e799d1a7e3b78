"""Prompts written for people who are blind or have low vision.

Backends render a Prompt into their own format (chat template with image/audio placeholders
locally, OpenAI content parts remotely); the words live here, once.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.types import JobRequest, Task, Turn

SYSTEM = (
    "You are Sightline, an assistant for people who are blind or have low vision. "
    "Your answers are read aloud by a speech synthesizer, so write plain sentences: no markdown, "
    "no tables, no emoji, no bullet symbols. Put the most important thing first. "
    "Be accurate; if you cannot see or hear something clearly, say so instead of guessing. "
    "Answer in {language}."
)

TASK_TEXT: dict[Task, str] = {
    Task.DESCRIBE_BRIEF: (
        "This is a screenshot of my computer screen. In three or four short sentences, tell me: "
        "first, which application and window this is; then what has keyboard focus or is "
        "selected; then anything that needs my attention, such as an error, a dialog, a "
        "notification or a required field. Do not describe decoration."
    ),
    Task.DESCRIBE_FULL: (
        "This is a screenshot of my computer screen. Describe it in detail for someone who cannot "
        "see it. Start with the application and window, then what has focus, then go through the "
        "screen from top to bottom: menus and toolbars, the main content, side panels, and the "
        "status bar. Name buttons and fields with their labels and say their state (checked, "
        "disabled, empty). Mention any error or dialog first if there is one."
    ),
    Task.READ_TEXT: (
        "Read out all the text in this image, exactly as written, in reading order: top to "
        "bottom, left to right, one block at a time. Do not summarise and do not describe "
        "anything that is not text."
    ),
    Task.CAMERA_SCENE: (
        "This is a photo from my camera. Describe what is in front of me in a few sentences: "
        "the main objects and people, where they are (left, right, near, far), any text you can "
        "read, and anything that could be a hazard."
    ),
    Task.CAMERA_DOCUMENT: (
        "This is a photo of a document I am holding up to the camera. Read its text in reading "
        "order. Say first what kind of document it is (letter, bill, label, menu...). If part of "
        "the page is cut off or too blurry to read, say which part."
    ),
    Task.ASK_IMAGE: (
        "Answer my question about this image briefly and directly. If the answer is not visible, say so."
    ),
    Task.TRANSCRIBE: "Transcribe the audio clip into text, exactly as spoken.",
    Task.ASK_SPOKEN: "Answer my question briefly and directly.",
    Task.TRANSLATE: (
        "Translate the following text into {language}. Keep its meaning, its sentences and its order. "
        "Copy names, numbers and anything in quotation marks exactly as written. Write only the "
        "translation, with no notes."
    ),
}

#: Put before the task when the request carries the picture's own text (see app.inference.grounding).
SCREEN_TEXT_LEAD = (
    "Text recognised in this picture, in reading order (it may contain recognition errors, and it "
    "does not show layout, icons or colours):"
)
SCREEN_TEXT_USE = (
    "When you mention a name, number or message that appears in the picture, quote it exactly as in "
    "this text."
)

SPOKEN_QUESTION = "The audio is my question; answer it."


@dataclass(frozen=True)
class Prompt:
    system: str
    history: tuple[Turn, ...]
    user_text: str
    with_image: bool
    with_audio: bool


def build_prompt(request: JobRequest, screen_text: str | None = None) -> Prompt:
    """The request's words. `screen_text` replaces the request's picture text (the local backend
    passes it trimmed to its token budget; "" leaves it out)."""
    screen_text = request.screen_text if screen_text is None else screen_text
    task_text = TASK_TEXT[request.task]
    parts = []
    if screen_text.strip() and request.image is not None:
        parts += [SCREEN_TEXT_LEAD, f'"""\n{screen_text.strip()}\n"""', SCREEN_TEXT_USE]
    if request.task is Task.TRANSLATE:
        parts.append(task_text.format(language=request.language))
        if request.question:
            parts.append(request.question.strip())
        return Prompt(
            system=SYSTEM.format(language=request.language),
            history=(),
            user_text="\n\n".join(parts),
            with_image=False,
            with_audio=False,
        )
    parts.append(task_text)
    if request.task in (Task.ASK_IMAGE, Task.ASK_SPOKEN):
        if request.question:
            parts.append(f"My question: {request.question.strip()}")
        elif request.audio is not None:
            parts.append(SPOKEN_QUESTION)
    elif request.question:
        parts.append(request.question.strip())
    return Prompt(
        system=SYSTEM.format(language=request.language),
        history=request.history,
        user_text="\n".join(parts),
        with_image=request.image is not None,
        with_audio=request.audio is not None,
    )
