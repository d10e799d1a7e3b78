"""The access token for a Sightline server: from an environment variable or the OS keyring.

The token is wrapped in `Secret`, whose repr and str never show it, so it cannot reach a log line,
an error sentence or a traceback by accident. `redact()` scrubs it from any text that came from
elsewhere (a server's error message, an exception's text) before that text is logged or shown.
"""

from __future__ import annotations

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


def find_token(server_url: str, env_var: str) -> Secret | None:
    """The token to send to `server_url`: the environment variable first, then the keyring."""
    return token_from_env(env_var) or token_from_keyring(server_url)


def save_token(server_url: str, token: str) -> None:
    """Store the token for this server in the OS keyring. Raises ServerError if there is none."""
    from app.core.errors import ServerError

    try:
        import keyring

        keyring.set_password(KEYRING_SERVICE, server_origin(server_url), token)
    except Exception as exc:  # keyring backends raise many kinds; none may carry the token out
        raise ServerError(
            "The access token could not be saved: this computer has no working keyring.",
            detail=redact(f"{type(exc).__name__}: {exc}", token),
        ) from None


def delete_token(server_url: str) -> bool:
    """Remove this server's token from the keyring. True if one was there."""
    try:
        import keyring
        from keyring.errors import PasswordDeleteError

        keyring.delete_password(KEYRING_SERVICE, server_origin(server_url))
        return True
    except ImportError:
        return False
    except PasswordDeleteError:
        return False
    except Exception as exc:
        log.debug("the keyring entry could not be removed: %s", type(exc).__name__)
        return False


def redact(text: str, *secrets: Secret | str | None) -> str:
    """`text` with every secret (and its obvious encodings) replaced by [hidden]."""
    if not text:
        return text
    for secret in secrets:
        if secret is None:
            continue
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if not value or len(value) < 4:
            continue
        text = text.replace(value, _HIDDEN)
        from urllib.parse import quote

        quoted = quote(value, safe="")
        if quoted != value:
            text = text.replace(quoted, _HIDDEN)
    return text
