"""SentenceChunker in every answer language the settings offer: a streamed answer is spoken from its
first sentence, and the language's abbreviations do not split a sentence."""

from __future__ import annotations

import pytest

from app.settings.schema import field_info
from app.speech.chunker import SentenceChunker

# language -> (streamed answer, the sentences a listener hears). Each answer holds abbreviations of
# its language that must not end a sentence.
ANSWERS: dict[str, tuple[str, list[str]]] = {
    "English": (
        "The window shows Dr. Lee's notes, e.g. a list of No. 4 items. It has a Save button! Done?",
        ["The window shows Dr. Lee's notes, e.g. a list of No. 4 items.", "It has a Save button!", "Done?"],
    ),
    "Chinese": (
        "屏幕上显示一个登录窗口。它有两个输入框和一个“登录”按钮！你想现在登录吗？请输入密码。",
        ["屏幕上显示一个登录窗口。", "它有两个输入框和一个“登录”按钮！", "你想现在登录吗？", "请输入密码。"],
    ),
    "French": (
        "La fenêtre montre p. ex. une liste, cf. le menu de M. Dupont. Mme. Martin a écrit env. dix lignes. "
        "C'est tout.",
        [
            "La fenêtre montre p. ex. une liste, cf. le menu de M. Dupont.",
            "Mme. Martin a écrit env. dix lignes.",
            "C'est tout.",
        ],
    ),
    "German": (
        "Das Fenster zeigt z.B. eine Liste, d. h. mehrere Einträge, bzw. Dateien vom 3. Oktober. "
        "Die Schaltfläche Nr. 2 speichert usw. Das ist alles, vgl. Abb. 3 im Handbuch.",
        [
            "Das Fenster zeigt z.B. eine Liste, d. h. mehrere Einträge, bzw. Dateien vom 3. Oktober.",
            "Die Schaltfläche Nr. 2 speichert usw.",
            "Das ist alles, vgl. Abb. 3 im Handbuch.",
        ],
    ),
    "Italian": (
        "La finestra mostra il Sig. Rossi e la Dott.ssa Bianchi, ecc. ecc. sullo schermo. Premi Salva.",
        ["La finestra mostra il Sig. Rossi e la Dott.ssa Bianchi, ecc. ecc. sullo schermo.", "Premi Salva."],
    ),
    "Japanese": (
        "画面にはログイン画面が表示されています。入力欄が二つと「ログイン」ボタンが一つあります！"
        "ログインしますか？パスワードを入力してください．",
        [
            "画面にはログイン画面が表示されています。",
            "入力欄が二つと「ログイン」ボタンが一つあります！",
            "ログインしますか？",
            "パスワードを入力してください．",
        ],
    ),
    "Portuguese": (
        "A janela mostra a Sra. Silva e o Dr. Costa, p. ex. numa lista. Não. Clique em Guardar.",
        ["A janela mostra a Sra. Silva e o Dr. Costa, p. ex. numa lista.", "Não.", "Clique em Guardar."],
    ),
    "Spanish": (
        "La ventana muestra a la Sra. García y a Ud. le pide, p. ej. su nombre, pág. 4. Creo que no. "
        "Pulse Guardar.",
        [
            "La ventana muestra a la Sra. García y a Ud. le pide, p. ej. su nombre, pág. 4.",
            "Creo que no.",
            "Pulse Guardar.",
        ],
    ),
}


def stream(text: str, step: int) -> list[tuple[int | str, str]]:
    """Feeds `text` in pieces of `step` characters; returns (characters fed, sentence) pairs."""
    chunker = SentenceChunker()
    out: list[tuple[int | str, str]] = []
    for i in range(0, len(text), step):
        out += [(min(i + step, len(text)), s) for s in chunker.feed(text[i : i + step])]
    out += [("end", s) for s in chunker.flush()]
    return out


def test_every_offered_answer_language_is_tested_here():
    assert set(ANSWERS) == set(field_info("response_language").suggestions)


@pytest.mark.parametrize("step", [1, 2, 3, 7])
@pytest.mark.parametrize("language", sorted(ANSWERS))
def test_abbreviations_do_not_split_and_every_sentence_is_found(language, step):
    text, expected = ANSWERS[language]
    assert [s for _, s in stream(text, step)] == expected


@pytest.mark.parametrize("language", sorted(ANSWERS))
def test_a_streamed_answer_is_spoken_from_its_first_sentence(language):
    """Fed a character at a time, as a model streams it, the first sentence is out within two
    characters of its end (the chunker may wait for one to see whether a closing quote follows),
    long before generation ends."""
    text, expected = ANSWERS[language]
    first_at, first = stream(text, 1)[0]
    assert first == expected[0]
    end = text.index(expected[0][-3:]) + 3
    assert first_at != "end"
    assert first_at <= end + 2, (first_at, end)


def test_chinese_and_japanese_without_a_final_closing_character_still_flush():
    chunker = SentenceChunker()
    assert chunker.feed("你好。") == []  # a closing quote may still follow
    assert chunker.feed("再见") == ["你好。"]
    assert chunker.flush() == ["再见"]


def test_closing_quotes_and_brackets_stay_with_their_sentence():
    text = "他说：「可以。」然后走了（很快！）我们也走吧。"
    assert [s for _, s in stream(text, 1)] == ["他说：「可以。」", "然后走了（很快！）", "我们也走吧。"]


def test_latin_punctuation_right_before_chinese_or_japanese_ends_a_sentence():
    assert [s for _, s in stream("好的!我们走吧?现在就走.", 2)] == ["好的!", "我们走吧?", "现在就走."]
    # but not inside a version number or between Latin words
    assert [s for _, s in stream("请安装v2.1版本。", 1)] == ["请安装v2.1版本。"]


def test_a_full_width_full_stop_between_digits_is_a_decimal_point():
    assert [s for _, s in stream("价格是3．5元。谢谢。", 1)] == ["价格是3．5元。", "谢谢。"]


def test_a_long_chinese_run_without_sentence_ends_is_cut_at_a_comma():
    text = "我们看到，" * 80
    got = stream(text, 5)
    assert got[0][0] != "end"
    assert all(s.endswith("，") for _, s in got[:-1])
    assert "".join(s for _, s in got) == text


def test_german_day_before_a_month_waits_for_the_month_name():
    chunker = SentenceChunker()
    assert chunker.feed("Es ist der 3. Okt") == []
    assert chunker.feed("ober. Dann") == ["Es ist der 3. Oktober."]
    assert SentenceChunker().feed("Er zählte bis 3. Dann ging er. ") == ["Er zählte bis 3.", "Dann ging er."]


def test_no_before_a_word_ends_a_sentence_and_before_a_number_does_not():
    assert [s for _, s in stream("Is it on? No. It is off. See No. 5 here.", 1)] == [
        "Is it on?",
        "No.",
        "It is off.",
        "See No. 5 here.",
    ]
