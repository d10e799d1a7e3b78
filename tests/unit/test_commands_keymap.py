"""Chord notation, conflict detection and the prefix layer."""

from __future__ import annotations

import pytest

from app.commands.keymap import (
    Bindings,
    CommandLayer,
    KeyChord,
    KeyParseError,
    LayerEvent,
    bindings_from_settings,
    default_prefix,
    effective_keys,
    find_conflicts,
    known_owner,
    parse_chord,
    parse_key,
)
from app.settings.schema import Settings


def chord(text: str) -> KeyChord:
    return parse_chord(text)


# --- notation ---


def test_parse_and_label_round_trip():
    c = parse_chord("control + alt+SHIFT+space")
    assert c == KeyChord(frozenset({"ctrl", "alt", "shift"}), "space")
    assert c.label("linux") == "Ctrl+Alt+Shift+Space"
    assert parse_chord(c.label("linux")) == c
    assert parse_chord("Option+Shift+Cmd+Space").label("darwin") == "Option+Shift+Cmd+Space"
    assert parse_chord("Ctrl++").key == "+"
    assert parse_chord("Ctrl+PgDn").key == "page_down"
    assert parse_key("esc") == "escape"


@pytest.mark.parametrize("text", ["", "Ctrl+", "Ctrl+Alt", "Hyper+S", "Ctrl+Banana", "Ctrl+Alt+Shift+ "])
def test_bad_chords_say_what_is_wrong(text):
    with pytest.raises(KeyParseError) as caught:
        parse_chord(text)
    assert str(caught.value).endswith(".")


def test_a_command_key_has_no_modifiers():
    with pytest.raises(KeyParseError, match="one key"):
        parse_key("Ctrl+S")


# --- conflicts ---


def test_defaults_have_no_conflicts_on_any_platform():
    for platform in ("linux", "win32", "darwin"):
        assert find_conflicts(default_prefix(platform), effective_keys(), {}, platform=platform) == []


def test_two_commands_on_one_key():
    keys = effective_keys()
    keys["stop"] = "s"
    sentences = conflict_sentences(default_prefix("linux"), keys, platform="linux")
    assert sentences == ["Stop and Describe the screen both use the key S."]


def test_escape_and_unreadable_keys_are_errors():
    keys = effective_keys()
    keys["stop"] = "Escape"
    keys["quit"] = "Ctrl+Q"
    found = find_conflicts(default_prefix("linux"), keys, platform="linux")
    assert [(c.severity, c.command_id) for c in found] == [("error", "stop"), ("error", "quit")]
    assert "cancelling" in found[0].sentence


def test_screen_reader_and_system_chords_are_named():
    prefix = default_prefix("linux")
    chords = {
        "describe_screen": "Ctrl+Alt+N",  # NVDA's start key
        "stop": "Insert+S",
        "copy_last": "Ctrl+Alt+Down",
    }
    found = find_conflicts(prefix, effective_keys(), chords, platform="win32")
    by_command = {c.command_id: c for c in found}
    assert "NVDA" in by_command["describe_screen"].sentence
    assert by_command["describe_screen"].severity == "warning"
    assert "table navigation" in by_command["copy_last"].sentence


def test_chords_with_the_screen_reader_key_cannot_even_be_parsed_as_modifiers():
    # Insert is not a modifier in Sightline's notation: "Insert+S" is refused with a sentence.
    found = find_conflicts(default_prefix("linux"), effective_keys(), {"stop": "Insert+S"}, platform="win32")
    assert found[0].severity == "error"
    assert known_owner(chord("Ctrl+Insert"), "win32").startswith("the screen reader key")


def test_prefix_problems():
    assert "VoiceOver" in conflict_sentences("Ctrl+Alt+Shift+Space", effective_keys(), platform="darwin")[0]
    assert "Windows key" in conflict_sentences("Super+S", effective_keys(), platform="linux")[0]
    assert conflict_sentences("Shift+S", effective_keys(), platform="linux")[0].startswith(
        "The prefix Shift+S needs"
    )
    found = find_conflicts(
        "Ctrl+Alt+Shift+Space", effective_keys(), {"stop": "Ctrl+Alt+Shift+Space"}, platform="linux"
    )
    assert found[0].sentence == "Stop: Ctrl+Alt+Shift+Space is already the prefix."


def test_duplicate_direct_chords_and_chords_without_modifiers():
    chords = {"stop": "Ctrl+Alt+Shift+F2", "quit": "Ctrl+Alt+Shift+F2", "copy_last": "C"}
    sentences = conflict_sentences(default_prefix("linux"), effective_keys(), chords, platform="linux")
    assert "Quit Sightline and Stop both use Ctrl+Alt+Shift+F2." in sentences
    assert any(s.startswith("Copy the last answer: C needs") for s in sentences)


def test_bindings_from_settings_apply_overrides_and_skip_unusable_entries():
    settings = Settings(
        command_keys=(("stop", "Z"), ("quit", "Ctrl+Q"), ("copy_last", "")),
        command_chords=(("describe_screen", "Ctrl+Alt+Shift+F2"),),
    )
    b = bindings_from_settings(settings)
    assert b.keys["z"] == "stop"
    assert "x" not in b.keys  # stop's old key is free
    assert "c" not in b.keys  # copy has no key now
    assert "quit" not in b.keys.values()  # unreadable key left out
    assert b.chords[chord("Ctrl+Alt+Shift+F2")] == "describe_screen"
    assert b.push_to_talk == {"ask_screen_voice", "ask_voice", "follow_up"}


# --- the prefix layer ---


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def layer():
    clock = Clock()
    bindings = bindings_from_settings(Settings(command_chords=(("stop", "Ctrl+Alt+Shift+X"),)))
    return CommandLayer(bindings, clock), clock


PREFIX = chord("Ctrl+Alt+Shift+Space")


def key(name: str, *mods: str) -> KeyChord:
    return KeyChord(frozenset(mods), name)


def test_prefix_then_key_runs_the_command(layer):
    layer, _ = layer
    assert layer.press(PREFIX) == LayerEvent("armed")
    assert layer.press(key("s")) == LayerEvent("activated", "describe_screen")
    assert not layer.armed
    assert layer.press(key("s")) is None  # a plain S afterwards is just typing


def test_modifiers_still_held_from_the_prefix_do_not_matter(layer):
    layer, _ = layer
    layer.press(PREFIX)
    assert layer.press(key("t", "ctrl", "alt", "shift")) == LayerEvent("activated", "read_text")


def test_escape_cancels_and_unknown_key_reports(layer):
    layer, _ = layer
    layer.press(PREFIX)
    assert layer.press(key("escape")) == LayerEvent("cancelled")
    layer.press(PREFIX)
    assert layer.press(key("j")) == LayerEvent("unknown", key="j")
    assert layer.press(key("s")) is None


def test_timeout(layer):
    layer, clock = layer
    layer.press(PREFIX)
    clock.now += 1.9
    assert layer.poll() == []
    clock.now += 0.2
    assert layer.poll() == [LayerEvent("timeout")]
    assert layer.press(key("s")) is None


def test_a_late_key_after_an_unpolled_timeout_is_not_a_command(layer):
    layer, clock = layer
    layer.press(PREFIX)
    clock.now += 2.5
    assert layer.press(key("s")) is None


def test_direct_chord(layer):
    layer, _ = layer
    assert layer.press(chord("Ctrl+Alt+Shift+X")) == LayerEvent("activated", "stop")
    assert layer.press(chord("Ctrl+Alt+X")) is None


def test_push_to_talk_release_survives_key_repeat(layer):
    layer, clock = layer
    layer.press(PREFIX)
    assert layer.press(key("v")) == LayerEvent("activated", "ask_screen_voice")
    for _ in range(5):  # X11 auto-repeat: release and press again 30 ms apart
        clock.now += 0.03
        layer.release("v")
        clock.now += 0.001
        assert layer.press(key("v")) is None
        assert layer.poll() == []
    layer.release("v")
    clock.now += 0.05
    assert layer.poll() == []
    clock.now += 0.1
    assert layer.poll() == [LayerEvent("released", "ask_screen_voice")]
    assert layer.poll() == []


def test_reset_releases_held_push_to_talk(layer):
    layer, _ = layer
    layer.press(PREFIX)
    layer.press(key("q"))
    assert layer.reset() == [LayerEvent("released", "ask_voice")]


def test_bindings_default_timeout():
    assert Bindings(PREFIX).timeout_s == 2.0


def test_held_keys_and_when_everything_pending_ends(layer):
    layer, clock = layer
    assert layer.held_keys == frozenset() and layer.expires_at() is None
    layer.press(PREFIX)
    assert layer.expires_at() == pytest.approx(clock.now + 2.0)
    layer.press(key("v"))
    assert layer.held_keys == {"v"}
    # Held: the grab may last until the hold limit (the longest recording, plus a margin).
    assert layer.expires_at() == pytest.approx(clock.now + 45.0)
    layer.release("v")
    clock.now += 0.2
    assert layer.poll() == [LayerEvent("released", "ask_screen_voice")]
    assert layer.held_keys == frozenset() and layer.expires_at() is None


def test_a_key_held_past_the_limit_counts_as_let_go(layer):
    layer, clock = layer
    layer.press(PREFIX)
    layer.press(key("q"))
    clock.now += 44.9
    assert layer.poll() == []
    clock.now += 0.2
    assert layer.poll() == [LayerEvent("released", "ask_voice")]
    assert layer.held_keys == frozenset()
    assert layer.press(key("q")) is None  # the still-held key's repeats are plain typing now


def conflict_sentences(prefix, keys, chords=None, *, platform=None) -> list[str]:
    """The conflicts as sentences, errors first."""
    conflicts = find_conflicts(prefix, keys, chords, platform=platform)
    return [c.sentence for c in sorted(conflicts, key=lambda c: c.severity != "error")]
