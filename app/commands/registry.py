"""Every user command as data.

The tray menu, the help text, the settings dialog and the global keys are all built from this list,
so a command exists in one place only. Qt-free: the CLI and the tests read it too.

`default_key` is the single key pressed after the prefix chord (see app.commands.keymap);
`default_chord` is an optional direct chord that runs the command at once (none by default, so a
fresh install claims only one chord on the user's keyboard).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    id: str
    name: str  # menu text; plain words, read by screen readers
    description: str  # one plain sentence: tooltips, help, accessible descriptions
    default_key: str  # the key after the prefix, in keymap notation ("S", "F4")
    group: str  # menu section; separators go between groups
    default_chord: str = ""  # optional direct chord, e.g. "Ctrl+Alt+Shift+F2"; empty means none
    push_to_talk: bool = False  # held down: recording runs until the key is released


# Groups in menu order.
GROUPS: tuple[tuple[str, str], ...] = (
    ("screen", "Screen"),
    ("voice", "Voice"),
    ("camera", "Camera"),
    ("answer", "Answer"),
    ("app", "Sightline"),
)

COMMANDS: tuple[Command, ...] = (
    Command(
        "describe_screen",
        "Describe the screen",
        "Takes a picture of the whole screen and describes it.",
        "S",
        "screen",
    ),
    Command(
        "describe_window",
        "Describe the active window",
        "Takes a picture of the window you are using and describes it.",
        "W",
        "screen",
    ),
    Command(
        "describe_region",
        "Describe a region",
        "Lets you choose a part of the screen with the keyboard or mouse, then describes it.",
        "R",
        "screen",
    ),
    Command(
        "describe_pointer",
        "Describe what is under the mouse",
        "Describes the area of the screen around the mouse pointer.",
        "M",
        "screen",
    ),
    Command(
        "read_text",
        "Read all text",
        "Reads all the text on the screen, in reading order.",
        "T",
        "screen",
    ),
    Command(
        "explore",
        "Explore and click",
        "Turns the text of the active window into a list to move through with the arrow keys; "
        "Enter clicks the item, typing finds text, Escape leaves.",
        "E",
        "screen",
    ),
    Command(
        "explore_region",
        "Explore a region",
        "Lets you choose a part of the screen with the keyboard or mouse, then explores its text to move "
        "through and click.",
        "G",
        "screen",
    ),
    Command(
        "watch",
        "Watch a region or window",
        "Watches the active window, or a region you choose, and says new text as it appears; "
        "choose it again to stop watching.",
        "L",
        "screen",
    ),
    Command(
        "ask_screen_voice",
        "Ask about the screen by voice",
        "Hold the key and ask a question out loud; the question and a picture of the screen go to the model "
        "together.",
        "V",
        "voice",
        push_to_talk=True,
    ),
    Command(
        "ask_voice",
        "Ask by voice, without a picture",
        "Hold the key and ask a question out loud; no picture is sent.",
        "Q",
        "voice",
        push_to_talk=True,
    ),
    Command(
        "describe_camera",
        "Describe the camera view",
        "Takes a picture with the camera and describes it.",
        "K",
        "camera",
    ),
    Command(
        "read_document",
        "Read a document from the camera",
        "Takes a picture of a document held to the camera and reads its text.",
        "D",
        "camera",
    ),
    Command(
        "follow_up",
        "Ask a follow-up question",
        "Asks another question about the last picture: hold the key and speak, or choose it from the "
        "menu to type it. The conversation lasts until the next picture.",
        "F",
        "answer",
        push_to_talk=True,
    ),
    Command("repeat_last", "Repeat the last answer", "Says the whole last answer again.", "A", "answer"),
    Command(
        "continue_reading",
        "Continue reading",
        "Reads on from where speech stopped, to the end of the answer.",
        "Down",
        "answer",
    ),
    Command(
        "next_paragraph",
        "Next paragraph",
        "Jumps to the next paragraph of the answer and reads on from there.",
        "Page Down",
        "answer",
    ),
    Command(
        "previous_paragraph",
        "Previous paragraph",
        "Jumps back to the previous paragraph of the answer and reads on from there.",
        "Page Up",
        "answer",
    ),
    Command("stop", "Stop", "Stops speaking and cancels the work in progress.", "X", "answer"),
    Command("copy_last", "Copy the last answer", "Copies the last answer to the clipboard.", "C", "answer"),
    Command("show_history", "Show history", "Opens the window with the answers so far.", "H", "app"),
    Command(
        "help",
        "Help",
        "Says what each key does, what you can say without the model, and how to get the model.",
        "F1",
        "app",
    ),
    Command("settings", "Settings", "Opens the settings.", "O", "app"),
    Command("quit", "Quit Sightline", "Closes Sightline.", "F4", "app"),
)

_BY_ID: dict[str, Command] = {command.id: command for command in COMMANDS}


def get(command_id: str) -> Command:
    """The command with this id; KeyError names the id when there is none."""
    try:
        return _BY_ID[command_id]
    except KeyError:
        raise KeyError(f"no command with id {command_id!r}") from None


def find(command_id: str) -> Command | None:
    return _BY_ID.get(command_id)


def ids() -> tuple[str, ...]:
    return tuple(command.id for command in COMMANDS)


def menu_sections() -> list[tuple[str, tuple[Command, ...]]]:
    """The commands in menu order, grouped: [(group title, commands)]. Put a separator between groups."""
    sections = []
    for group_id, title in GROUPS:
        members = tuple(command for command in COMMANDS if command.group == group_id)
        if members:
            sections.append((title, members))
    return sections


def menu_items() -> list[Command | None]:
    """The commands in menu order with None where a separator goes."""
    items: list[Command | None] = []
    for _title, members in menu_sections():
        if items:
            items.append(None)
        items.extend(members)
    return items


def _spoken_key(label: str) -> str:
    return label.replace("+", " ")


def help_sentences(prefix: str, keys: dict[str, str], spoken_commands: tuple[str, ...] = ()) -> list[str]:
    """What the help command says: the prefix, then each command's key in menu order.

    `prefix` is the prefix chord as the user set it; `keys` maps command id -> key after the prefix
    ("" for none); `spoken_commands` are the phrases understood without the model (empty when the
    model answers spoken questions itself).
    """
    sentences = [f"Press {_spoken_key(prefix)}, let go, then one key."]
    for command in COMMANDS:
        key = keys.get(command.id, "")
        if not key:
            continue
        name = command.name
        if command.push_to_talk:
            sentences.append(f"Hold {key}: {name.lower()}.")
        else:
            sentences.append(f"{key}: {name.lower()}.")
    sentences.append("Hold a voice key and speak after the tone; let go to send. Escape cancels the prefix.")
    if spoken_commands:
        phrases = ", ".join(f'"{p}"' for p in spoken_commands[:-1]) + f', or "{spoken_commands[-1]}"'
        sentences.append(f"Without the model, hold V and say {phrases}.")
    return sentences
