"""Every command the issue lists exists, once, with a plain name, description and unique key."""

from __future__ import annotations

import pytest

from app.commands import registry
from app.commands.keymap import parse_chord, parse_key

ISSUE_COMMANDS = [
    "describe_screen",
    "describe_window",
    "describe_region",
    "describe_pointer",
    "read_text",
    "explore",
    "explore_region",
    "watch",
    "ask_screen_voice",
    "ask_voice",
    "describe_camera",
    "read_document",
    "follow_up",
    "repeat_last",
    "continue_reading",
    "next_paragraph",
    "previous_paragraph",
    "stop",
    "copy_last",
    "show_history",
    "help",
    "settings",
    "quit",
]


def test_every_command_in_the_issue_exists_in_menu_order():
    assert list(registry.ids()) == ISSUE_COMMANDS


def test_ids_and_default_keys_are_unique_and_valid():
    ids = registry.ids()
    assert len(set(ids)) == len(ids)
    keys = [parse_key(c.default_key) for c in registry.COMMANDS]
    assert len(set(keys)) == len(keys)
    assert "escape" not in keys  # Escape cancels the prefix
    for command in registry.COMMANDS:
        if command.default_chord:
            parse_chord(command.default_chord)


def test_names_and_descriptions_are_plain_sentences():
    for command in registry.COMMANDS:
        assert command.name and command.name[0].isupper(), command.id
        assert command.description.endswith("."), command.id
        assert "_" not in command.name + command.description, command.id
        assert "&" not in command.name, command.id  # would become a mnemonic in a Qt menu


def test_push_to_talk_commands_are_the_voice_questions():
    assert {c.id for c in registry.COMMANDS if c.push_to_talk} == {
        "ask_screen_voice",
        "ask_voice",
        "follow_up",
    }


def test_lookup_by_id():
    assert registry.get("stop").name == "Stop"
    assert registry.find("nothing") is None
    with pytest.raises(KeyError, match="nothing"):
        registry.get("nothing")


def test_menu_has_every_command_once_with_separators_between_groups():
    items = registry.menu_items()
    commands = [item.id for item in items if item is not None]
    assert commands == ISSUE_COMMANDS
    assert items[0] is not None and items[-1] is not None
    separators = [i for i, item in enumerate(items) if item is None]
    assert len(separators) == len(registry.menu_sections()) - 1
    assert all(items[i + 1] is not None for i in separators)
    assert [title for title, _ in registry.menu_sections()][0] == "Screen"


def test_help_says_every_key_from_the_current_key_map():
    from app.commands.keymap import effective_keys

    keys = effective_keys((("stop", "Z"),))
    sentences = registry.help_sentences("Ctrl+Alt+Shift+Space", keys, ("describe the screen", "stop"))
    text = " ".join(sentences)
    assert sentences[0] == "Press Ctrl Alt Shift Space, let go, then one key."
    for command in registry.COMMANDS:
        assert command.name.lower() in text, command.id
    assert "Z: stop." in text and "X: stop." not in text  # the user's own keys, not the defaults
    assert "Hold V: ask about the screen by voice." in text
    assert "F1: help." in text
    assert text.endswith('Without the model, hold V and say "describe the screen", or "stop".')
    assert "Without the model" not in " ".join(registry.help_sentences("Ctrl+Alt+Shift+Space", keys))
