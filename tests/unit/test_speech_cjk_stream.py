"""Chinese and Japanese answers start speaking at their first sentence while the model still writes
(through the SpeechManager's answer stream, as the app feeds it, with the silent driver as spy)."""

from __future__ import annotations

import time

import pytest

from app.speech.drivers.silent import SilentDriver
from app.speech.manager import LongTextRule, SpeechManager

ANSWERS = {
    "Chinese": "屏幕上显示一个登录窗口。它有两个输入框和一个“登录”按钮！你想现在登录吗？请输入密码。",
    "Japanese": "画面にはログイン画面が表示されています。入力欄が二つと「ログイン」ボタンが一つあります！"
    "ログインしますか？",
}


def _wait_for(predicate, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


@pytest.mark.parametrize("language", sorted(ANSWERS))
def test_speech_starts_at_the_first_sentence_not_at_the_end(language, no_thread_leak):
    text = ANSWERS[language]
    first_end = min(text.index(mark) for mark in "。！？") + 1
    spy = SilentDriver(hold=True)
    with SpeechManager(spy, rule=LongTextRule(max_chars=10_000, max_sentences=50)) as m:
        answer = m.answer_stream(job_id=1)
        # The model writes one character at a time; the first sentence is queued one character
        # after its full stop (a closing quote could still follow it), long before the end.
        queued_at = None
        for i, ch in enumerate(text):
            if answer.feed(ch) and queued_at is None:
                queued_at = i + 1
                assert _wait_for(lambda: spy.started), "speech did not start while the answer streamed"
        assert queued_at == first_end + 1
        assert spy.started[0] == text[:first_end]
        assert queued_at < len(text) // 2
        form = answer.finish()
        assert len(form.sentences) == (3 if language == "Japanese" else 4)
        m.stop()
