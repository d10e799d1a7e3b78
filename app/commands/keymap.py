"""Key bindings as data: chord notation, the prefix layer, and conflict detection. Qt-free.

How a user runs a command from the keyboard: press the prefix chord (default Ctrl+Alt+Shift+Space),
let go, then press one key (S describes the screen...). Escape cancels; a key that is bound to
nothing gives the error earcon; after two seconds the layer gives up by itself. Any command may also
have a direct chord.

Why Ctrl+Alt+Shift+Space:
- NVDA, JAWS, Narrator and Orca build their commands on their own modifier (Insert or Caps Lock),
  so any chord with Insert or Caps Lock is theirs. Windows-key chords belong to Windows and GNOME.
- Ctrl+Alt+letter is AltGr+letter on Windows: it types characters on many European layouts
  (AltGr+E is the euro sign), and Windows Magnifier, NVDA's start key (Ctrl+Alt+N), JAWS' start key
  (Ctrl+Alt+J), the Ubuntu terminal (Ctrl+Alt+T) and the table-navigation keys of NVDA and JAWS
  (Ctrl+Alt+arrows) live there too.
- Adding Shift leaves few users of the combination; with Space rather than a letter it types no
  character on any common layout, and Word's Ctrl+Alt+Shift+S (the styles pane) stays free.
- On a Mac, Ctrl+Option is VoiceOver's key, so the default there is Option+Shift+Cmd+Space.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

MODIFIERS = ("ctrl", "alt", "shift", "super")
_MODIFIER_ALIASES = {
    "ctrl": "ctrl",
    "control": "ctrl",
    "ctl": "ctrl",
    "alt": "alt",
    "option": "alt",
    "opt": "alt",
    "shift": "shift",
    "super": "super",
    "win": "super",
    "windows": "super",
    "meta": "super",
    "cmd": "super",
    "command": "super",
}
_MODIFIER_LABELS = {"ctrl": "Ctrl", "alt": "Alt", "shift": "Shift", "super": "Super"}
_MAC_MODIFIER_LABELS = {"ctrl": "Ctrl", "alt": "Option", "shift": "Shift", "super": "Cmd"}

# Named keys: canonical name -> what a user reads.
_NAMED_KEYS = {
    "space": "Space",
    "enter": "Enter",
    "tab": "Tab",
    "escape": "Escape",
    "backspace": "Backspace",
    "delete": "Delete",
    "insert": "Insert",
    "home": "Home",
    "end": "End",
    "page_up": "Page Up",
    "page_down": "Page Down",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "caps_lock": "Caps Lock",
    "num_lock": "Num Lock",
    "print_screen": "Print Screen",
    "pause": "Pause",
    "menu": "Menu",
    **{f"f{n}": f"F{n}" for n in range(1, 25)},
}
_KEY_ALIASES = {
    "esc": "escape",
    "return": "enter",
    "del": "delete",
    "ins": "insert",
    "pgup": "page_up",
    "pageup": "page_up",
    "pgdn": "page_down",
    "pagedown": "page_down",
    "capslock": "caps_lock",
    "numlock": "num_lock",
    "printscreen": "print_screen",
    "prtsc": "print_screen",
    "spacebar": "space",
    "apps": "menu",
    "plus": "+",
    "minus": "-",
    "comma": ",",
    "period": ".",
    "slash": "/",
}
_PUNCTUATION = set("`-=[]\\;',./+")


class KeyParseError(ValueError):
    """A key or chord written in a way Sightline cannot read. str() is a sentence for the user."""


def _normal_key(text: str) -> str:
    word = text.strip().lower().replace(" ", "_")
    if word in ("", "_"):
        raise KeyParseError("No key was given.")
    word = _KEY_ALIASES.get(word.replace("_", ""), _KEY_ALIASES.get(word, word))
    if word in _NAMED_KEYS:
        return word
    if len(word) == 1 and (word.isalnum() or word in _PUNCTUATION):
        return word
    raise KeyParseError(f"{text.strip()} is not a key Sightline knows.")


def key_label(key: str) -> str:
    """How a canonical key name is shown and spoken: "s" -> "S", "page_up" -> "Page Up"."""
    return _NAMED_KEYS.get(key, key.upper())


@dataclass(frozen=True)
class KeyChord:
    """Modifiers held plus one key. `key` is canonical: "s", "space", "f4", "page_up"."""

    modifiers: frozenset[str]
    key: str

    def label(self, platform: str | None = None) -> str:
        labels = _MAC_MODIFIER_LABELS if (platform or sys.platform) == "darwin" else _MODIFIER_LABELS
        parts = [labels[m] for m in MODIFIERS if m in self.modifiers]
        return "+".join([*parts, key_label(self.key)])

    def __str__(self) -> str:
        return self.label()


def parse_chord(text: str) -> KeyChord:
    """Read a chord such as "Ctrl+Alt+Shift+Space". Raises KeyParseError with a sentence."""
    raw = text.strip()
    if not raw:
        raise KeyParseError("No key was given.")
    if raw == "+" or raw.endswith("++"):  # "+" is the key itself: "+", "Ctrl++"
        head = raw[:-1].rstrip("+").strip()
        parts = [*(head.split("+") if head else []), "+"]
    else:
        parts = raw.split("+")
    modifiers: set[str] = set()
    for part in parts[:-1]:
        name = _MODIFIER_ALIASES.get(part.strip().lower())
        if name is None:
            raise KeyParseError(
                f"{part.strip() or 'An empty part'} is not a modifier key; use Ctrl, Alt, Shift or Super."
            )
        modifiers.add(name)
    last = parts[-1]
    if not last.strip() or last.strip().lower() in _MODIFIER_ALIASES:
        raise KeyParseError(f"{raw} has no key after the modifiers.")
    return KeyChord(frozenset(modifiers), _normal_key(last))


def parse_key(text: str) -> str:
    """A single key with no modifiers, as pressed after the prefix. Returns the canonical name."""
    chord = parse_chord(text)
    if chord.modifiers:
        raise KeyParseError(f"{text.strip()}: after the prefix, press one key without Ctrl, Alt or Shift.")
    return chord.key


def default_prefix(platform: str | None = None) -> str:
    return "Option+Shift+Cmd+Space" if (platform or sys.platform) == "darwin" else "Ctrl+Alt+Shift+Space"


# --- Shortcuts that belong to someone else --------------------------------------------------------

# (chord, owner, platforms) - platforms: "all", or a set of sys.platform prefixes.
_KNOWN: tuple[tuple[str, str, str], ...] = (
    ("Ctrl+Alt+N", "NVDA's start key", "win"),
    ("Ctrl+Alt+J", "the JAWS start key", "win"),
    ("Ctrl+Super+Enter", "Narrator's on and off key", "win"),
    ("Ctrl+Alt+Delete", "the system's security keys", "all"),
    ("Ctrl+Shift+Escape", "the Task Manager", "win"),
    ("Ctrl+Escape", "the Start menu", "win"),
    ("Alt+Tab", "window switching", "all"),
    ("Alt+Shift+Tab", "window switching", "all"),
    ("Alt+F4", "closing windows", "all"),
    ("Alt+Space", "the window menu", "all"),
    ("Alt+Escape", "window switching", "all"),
    ("Ctrl+Alt+Tab", "window switching", "all"),
    ("Ctrl+Alt+Space", "Windows Magnifier", "win"),
    ("Ctrl+Alt+D", "Windows Magnifier", "win"),
    ("Ctrl+Alt+F", "Windows Magnifier", "win"),
    ("Ctrl+Alt+L", "Windows Magnifier and the screen lock on some Linux desktops", "all"),
    ("Ctrl+Alt+M", "Windows Magnifier", "win"),
    ("Ctrl+Alt+I", "Windows Magnifier's colour inversion", "win"),
    ("Ctrl+Alt+R", "Windows Magnifier", "win"),
    ("Alt+Shift+Print Screen", "the high contrast switch", "win"),
    ("Alt+Shift+Num Lock", "mouse keys", "win"),
    ("Ctrl+Alt+T", "the terminal on Ubuntu", "linux"),
    ("Ctrl+Alt+Backspace", "restarting the X server", "linux"),
    ("Super+Alt+S", "Orca's on and off key", "linux"),
    ("Alt+F2", "the GNOME run dialog", "linux"),
    ("Ctrl+Alt+Shift+R", "GNOME's screen recording", "linux"),
    ("Ctrl+Alt+Shift+S", "Word's styles pane", "all"),
    ("Cmd+F5", "VoiceOver's on and off key", "darwin"),
    ("Cmd+Space", "Spotlight", "darwin"),
    ("Cmd+Tab", "app switching", "darwin"),
    ("Cmd+Q", "quitting the app in front", "darwin"),
)
_ARROWS = ("up", "down", "left", "right")


def _applies(platforms: str, platform: str) -> bool:
    return platforms == "all" or platform.startswith(platforms)


def known_owner(chord: KeyChord, platform: str | None = None) -> str | None:
    """Who else uses this chord (a phrase such as "NVDA's start key"), or None."""
    platform = platform or sys.platform
    mods = chord.modifiers
    if chord.key in ("insert", "caps_lock"):
        return "the screen reader key of NVDA, JAWS, Narrator and Orca"
    if "super" in mods and platform != "darwin":
        return "the Windows and desktop shortcuts on the Windows key"
    if platform == "darwin" and {"ctrl", "alt"} <= mods:
        return "VoiceOver, whose keys are Ctrl+Option"
    if {"ctrl", "alt"} <= mods and chord.key in _ARROWS:
        if "shift" in mods:
            return "moving windows between workspaces"
        return "table navigation in NVDA and JAWS, and workspace switching"
    if {"ctrl", "alt"} <= mods and chord.key.startswith("f") and chord.key[1:].isdigit():
        return "switching to a text console on Linux"
    for text, owner, platforms in _KNOWN:
        if _applies(platforms, platform) and parse_chord(text) == chord:
            return owner
    return None


# --- Bindings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bindings:
    """What the global keys listen for: the prefix, keys after it, direct chords."""

    prefix: KeyChord
    keys: Mapping[str, str] = field(default_factory=dict)  # canonical key -> command id
    chords: Mapping[KeyChord, str] = field(default_factory=dict)  # direct chord -> command id
    timeout_s: float = 2.0
    push_to_talk: frozenset[str] = frozenset()  # command ids whose key is held down
    # A push-to-talk key held longer than this counts as let go (a stuck key, a lost release event):
    # the recording has stopped by itself by then, and the key must not stay swallowed.
    hold_limit_s: float = 60.0


@dataclass(frozen=True)
class Conflict:
    severity: str  # "error": cannot be saved; "warning": allowed, but the user is told
    sentence: str
    command_id: str = ""  # "" for the prefix


def _name_of(command_id: str) -> str:
    from app.commands.registry import find

    command = find(command_id)
    return command.name if command else command_id


def find_conflicts(
    prefix: str,
    keys: Mapping[str, str],
    chords: Mapping[str, str] | None = None,
    *,
    platform: str | None = None,
) -> list[Conflict]:
    """Problems with a set of bindings, each as a sentence a user can act on.

    `keys` maps command id -> key after the prefix ("" means none); `chords` maps command id -> direct
    chord ("" means none).
    """
    platform = platform or sys.platform
    chords = chords or {}
    found: list[Conflict] = []
    prefix_chord: KeyChord | None = None
    try:
        prefix_chord = parse_chord(prefix)
    except KeyParseError as exc:
        found.append(Conflict("error", f"The prefix key: {exc}"))
    if prefix_chord is not None:
        if not prefix_chord.modifiers - {"shift"}:
            found.append(
                Conflict(
                    "error",
                    f"The prefix {prefix_chord} needs Ctrl, Alt or Super, or it would fire while typing.",
                )
            )
        owner = known_owner(prefix_chord, platform)
        if owner:
            found.append(Conflict("warning", f"The prefix {prefix_chord.label(platform)} is also {owner}."))

    seen_keys: dict[str, str] = {}
    for command_id, text in keys.items():
        if not text.strip():
            continue
        name = _name_of(command_id)
        try:
            key = parse_key(text)
        except KeyParseError as exc:
            found.append(Conflict("error", f"{name}: {exc}", command_id))
            continue
        if key == "escape":
            found.append(Conflict("error", f"{name}: Escape is kept for cancelling the prefix.", command_id))
            continue
        if key in seen_keys:
            other = _name_of(seen_keys[key])
            found.append(
                Conflict("error", f"{name} and {other} both use the key {key_label(key)}.", command_id)
            )
            continue
        seen_keys[key] = command_id

    seen_chords: dict[KeyChord, str] = {}
    for command_id, text in chords.items():
        if not text.strip():
            continue
        name = _name_of(command_id)
        try:
            chord = parse_chord(text)
        except KeyParseError as exc:
            found.append(Conflict("error", f"{name}: {exc}", command_id))
            continue
        label = chord.label(platform)
        if not chord.modifiers - {"shift"} and not (chord.key.startswith("f") and len(chord.key) > 1):
            found.append(
                Conflict(
                    "error",
                    f"{name}: {label} needs Ctrl, Alt or Super, or it would fire while typing.",
                    command_id,
                )
            )
            continue
        if prefix_chord is not None and chord == prefix_chord:
            found.append(Conflict("error", f"{name}: {label} is already the prefix.", command_id))
            continue
        if chord in seen_chords:
            other = _name_of(seen_chords[chord])
            found.append(Conflict("error", f"{name} and {other} both use {label}.", command_id))
            continue
        seen_chords[chord] = command_id
        owner = known_owner(chord, platform)
        if owner:
            found.append(Conflict("warning", f"{name}: {label} is also {owner}.", command_id))
    return found


def effective_keys(overrides: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
    """command id -> key after the prefix: each command's default, replaced by the user's choice."""
    from app.commands.registry import COMMANDS

    keys = {command.id: command.default_key for command in COMMANDS}
    for command_id, key in overrides:
        if command_id in keys:
            keys[command_id] = key
    return keys


def effective_chords(overrides: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
    from app.commands.registry import COMMANDS

    chords = {command.id: command.default_chord for command in COMMANDS}
    for command_id, chord in overrides:
        if command_id in chords:
            chords[command_id] = chord
    return chords


def bindings_from_settings(settings) -> Bindings:
    """Bindings for the global keys from a Settings. Unusable entries are left out (the dialog refuses
    to save them, so they come only from a hand-edited file)."""
    from app.commands.registry import COMMANDS

    try:
        prefix = parse_chord(settings.hotkey_prefix)
    except KeyParseError:
        prefix = parse_chord(default_prefix())
    keys: dict[str, str] = {}
    for command_id, text in effective_keys(settings.command_keys).items():
        try:
            key = parse_key(text) if text.strip() else ""
        except KeyParseError:
            continue
        if key and key != "escape" and key not in keys:
            keys[key] = command_id
    chords: dict[KeyChord, str] = {}
    for command_id, text in effective_chords(settings.command_chords).items():
        try:
            chord = parse_chord(text) if text.strip() else None
        except KeyParseError:
            continue
        if chord is not None and chord != prefix and chord not in chords:
            chords[chord] = command_id
    ptt = frozenset(c.id for c in COMMANDS if c.push_to_talk)
    hold_limit = float(getattr(settings, "max_recording_seconds", 40.0)) + 5.0
    return Bindings(prefix, keys, chords, float(settings.hotkey_timeout), ptt, hold_limit)


# --- The prefix layer -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerEvent:
    kind: str  # "armed", "activated", "released", "cancelled", "timeout", "unknown"
    command_id: str = ""
    key: str = ""  # canonical key, for "unknown"


# A push-to-talk key held down repeats (press, release, press...) on X11; a release followed by a
# press within this window is a repeat, not the user letting go.
RELEASE_SETTLE_S = 0.12


class CommandLayer:
    """The prefix-then-key state machine. Fed key presses and releases, it returns what happened.

    Not thread-safe by itself: the backend calls it under one lock. `clock` is injectable for tests.
    """

    def __init__(self, bindings: Bindings, clock: Callable[[], float] = time.monotonic):
        self.bindings = bindings
        self._clock = clock
        self._armed_until: float | None = None
        self._held: dict[str, str] = {}  # key -> push-to-talk command id still held
        self._held_until: dict[str, float] = {}  # key -> when holding it counts as let go
        self._release_due: dict[str, float] = {}  # key -> when its release counts

    @property
    def armed(self) -> bool:
        return self._armed_until is not None

    @property
    def held_keys(self) -> frozenset[str]:
        """Push-to-talk keys down now: what a backend keeps from reaching other applications."""
        return frozenset(self._held)

    def next_deadline(self) -> float | None:
        times = [*self._release_due.values(), *self._held_until.values()]
        if self._armed_until is not None:
            times.append(self._armed_until)
        return min(times) if times else None

    def expires_at(self) -> float | None:
        """When everything pending (the armed prefix, held keys) ends by itself at the latest, even
        if no key event ever comes again; None when nothing is pending. A keyboard grab taken for the
        layer must be given back by then, whatever happens to the threads that feed it."""
        times = [*self._held_until.values(), *self._release_due.values()]
        if self._armed_until is not None:
            times.append(self._armed_until)
        return max(times) if times else None

    def press(self, chord: KeyChord) -> LayerEvent | None:
        now = self._clock()
        if chord.key in self._held:
            # A repeat of a held push-to-talk key (or the press after a repeat's release).
            self._release_due.pop(chord.key, None)
            return None
        if self._armed_until is not None and now > self._armed_until:
            self._armed_until = None  # timed out; poll() may not have run yet
        if chord == self.bindings.prefix:
            self._armed_until = now + self.bindings.timeout_s
            return LayerEvent("armed")
        if self._armed_until is None:
            command_id = self.bindings.chords.get(chord)
            if command_id is None:
                return None
            return self._activate(command_id, chord.key)
        # Armed: the key decides; modifiers still held from the prefix do not matter.
        self._armed_until = None
        if chord.key == "escape":
            return LayerEvent("cancelled")
        command_id = self.bindings.keys.get(chord.key)
        if command_id is None:
            return LayerEvent("unknown", key=chord.key)
        return self._activate(command_id, chord.key)

    def _activate(self, command_id: str, key: str) -> LayerEvent:
        if command_id in self.bindings.push_to_talk:
            self._held[key] = command_id
            self._held_until[key] = self._clock() + self.bindings.hold_limit_s
        return LayerEvent("activated", command_id)

    def release(self, key: str) -> LayerEvent | None:
        if key in self._held:
            self._release_due[key] = self._clock() + RELEASE_SETTLE_S
        return None

    def poll(self) -> list[LayerEvent]:
        """Events due by now: a timed-out prefix, push-to-talk keys really let go."""
        now = self._clock()
        events: list[LayerEvent] = []
        if self._armed_until is not None and now > self._armed_until:
            self._armed_until = None
            events.append(LayerEvent("timeout"))
        for key, due in list(self._release_due.items()):
            if now >= due:
                del self._release_due[key]
                self._held_until.pop(key, None)
                events.append(LayerEvent("released", self._held.pop(key)))
        for key, due in list(self._held_until.items()):
            if now >= due:  # held past the limit: a stuck key or a lost release event
                del self._held_until[key]
                self._release_due.pop(key, None)
                events.append(LayerEvent("released", self._held.pop(key)))
        return events

    def reset(self) -> list[LayerEvent]:
        """Forget everything; held push-to-talk keys count as released."""
        events = [LayerEvent("released", command_id) for command_id in self._held.values()]
        self._armed_until = None
        self._held.clear()
        self._held_until.clear()
        self._release_due.clear()
        return events
