"""Which speech driver the output mode asks for: own voice, the user's screen reader, or none."""

from app.speech.service import driver_chain


def test_own_voice_prefers_the_synthesisers_and_keeps_the_screen_reader_as_fallback():
    assert driver_chain("voice") == ["pyttsx3", "espeak", "screen_reader", "silent"]


def test_screen_reader_mode_puts_the_screen_reader_first():
    assert driver_chain("screen_reader")[0] == "screen_reader"
    assert driver_chain("screen_reader")[-1] == "silent"


def test_text_only_speaks_nothing():
    assert driver_chain("text") == ["silent"]
    assert driver_chain("text", "espeak") == ["silent"]


def test_a_named_driver_goes_first():
    chain = driver_chain("voice", "espeak")
    assert chain[0] == "espeak" and chain[-1] == "silent" and len(set(chain)) == len(chain)
