"""The access token for a Sightline server: from an environment variable or the OS keyring.

The token is wrapped in `Secret`, whose repr and str never show it, so it cannot reach a log line,
an error sentence or a traceback by accident. `redact()` scrubs it from any text that came from
elsewhere (a server's error message, an exception's text) before that text is logged or shown.
"""

from __future__ import annotations

import base64
import logging
import os
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

#: The keyring service name; the user name is the server's origin (scheme://host:port).
KEYRING_SERVICE = "sightline"
#: The keyring entry used when no entry exists for the server's own origin.
KEYRING_DEFAULT_USER = "default"

_HIDDEN = "[hidden]"


class Secret:
    """A string that does not show itself. Call reveal() only where the value is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({_HIDDEN})"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # never pickled into a crash report or a queue by accident
        raise TypeError("a Secret cannot be pickled")


def server_origin(server_url: str) -> str:
    """scheme://host:port of a server address, the keyring user name for its token."""
    parts = urlsplit(server_url.strip())
    scheme = (parts.scheme or "https").lower()
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if scheme == "https" else 80)
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def token_from_env(env_var: str) -> Secret | None:
    if not env_var:
        return None
    value = os.environ.get(env_var, "").strip()
    return Secret(value) if value else None


def token_from_keyring(server_url: str) -> Secret | None:
    """The token saved for this server (or the default entry); None if none or no keyring works."""
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        return None
    for user in (server_origin(server_url), KEYRING_DEFAULT_USER):
        try:
            value = keyring.get_password(KEYRING_SERVICE, user)
        except (KeyringError, RuntimeError, OSError) as exc:
            # The message of a keyring error never contains the stored password.
            log.debug("the keyring could not be read: %s", type(exc).__name__)
            return None
        if value:
            return Secret(value.strip())
    return None


#: A run of this many characters of a token is enough to hide: shorter runs are too common to matter.
MIN_REDACT = 8


def _forms(value: str) -> list[str]:
    """The token and the encodings a server, proxy or library may echo it in."""
    from urllib.parse import quote, quote_plus

    raw = value.encode("utf-8")
    forms = [value, quote(value, safe=""), quote_plus(value), value.encode("unicode_escape").decode("ascii")]
    for prefix in (b"", b"Bearer ", b":", b"Authorization: Bearer "):
        data = prefix + raw
        for shift in range(3):  # every alignment of the token within base64's groups of three bytes
            piece = data[shift:]
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                encoded = encode(piece).decode("ascii").rstrip("=")
                # The first and last characters also carry bits of the neighbours: keep the core.
                start = 0 if shift == 0 and not prefix else 2
                forms.append(encoded[start:-2] if len(encoded) > start + 2 else "")
    forms.append(raw.hex())
    return [f for f in forms if f]


def _grams(value: str, size: int) -> set[str]:
    grams: set[str] = set()
    for form in _forms(value):
        form = form.casefold()
        grams.update(form[i : i + size] for i in range(len(form) - size + 1))
    return grams


def redact(text: str, *secrets: Secret | str | None) -> str:
    """`text` with every secret hidden: any run of 8 or more of its characters, in any letter case,
    also inside its URL-encoded, base64 (every alignment, with or without "Bearer ") and hex forms.

    A token shorter than 8 characters is hidden where it appears whole, in any case.
    """
    if not text:
        return text
    hide = [False] * len(text)
    folded = text.casefold()
    if len(folded) != len(text):  # a few characters change length when case-folded
        folded = text.lower()
    if len(folded) != len(text):
        folded = text
    for secret in secrets:
        if secret is None:
            continue
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if not value or len(value) < 4:
            continue
        size = min(MIN_REDACT, len(value))
        grams = _grams(value, size)
        for i in range(len(folded) - size + 1):
            if folded[i : i + size] in grams:
                for j in range(i, i + size):
                    hide[j] = True
    if not any(hide):
        return text
    out: list[str] = []
    hidden = False
    for char, masked in zip(text, hide, strict=True):
        if masked:
            if not hidden:
                out.append(_HIDDEN)
            hidden = True
        else:
            out.append(char)
            hidden = False
    return "".join(out)
