"""The server token: where it comes from, and that it never shows itself."""

from __future__ import annotations

import logging

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import KeyringError, PasswordDeleteError

from app.inference import credentials
from app.inference.credentials import KEYRING_SERVICE, Secret, redact, server_origin, token_from_keyring
from app.inference.openai_compatible import ServerAddress, ServerClient

TOKEN = "sk-office-4f9a1c2e7b"


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self):
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.store.get((service, username))

    def set_password(self, service, username, password):
        self.store[(service, username)] = password

    def delete_password(self, service, username):
        if (service, username) not in self.store:
            raise PasswordDeleteError("none")
        del self.store[(service, username)]


class BrokenKeyring(MemoryKeyring):
    def get_password(self, service, username):
        raise KeyringError(f"locked; it holds {TOKEN}")


@pytest.fixture
def memory_keyring():
    before = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(before)


def test_secret_never_shows_itself():
    secret = Secret(TOKEN)
    assert TOKEN not in repr(secret) and TOKEN not in str(secret) and TOKEN not in f"{secret}"
    assert TOKEN not in repr([secret]) and secret.reveal() == TOKEN
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(secret)


def test_redact_scrubs_plain_and_url_encoded_tokens():
    text = f"Bearer {TOKEN} and ?key=sk%2Doffice"  # the second is not the token: kept
    assert TOKEN not in redact(text, Secret(TOKEN))
    assert "sk%2Doffice" in redact(text, Secret(TOKEN))
    assert redact("a+b/c= seen", "a+b/c=") == "[hidden] seen"
    assert redact("nothing", None) == "nothing"


def test_redact_hides_every_form_and_every_long_piece_of_the_token():
    import base64
    from urllib.parse import quote

    token = "sk-Uq7Zr2Kx9Wm4Pb6Ln3Tj"
    raw = token.encode()
    forms = {
        "lower": token.lower(),
        "upper": token.upper(),
        "truncated": token[:8],
        "middle": token[5:14].swapcase(),
        "url": quote(token, safe=""),
        "b64": base64.b64encode(raw).decode(),
        "b64 bearer": base64.b64encode(b"Bearer " + raw).decode(),
        "b64 basic": base64.b64encode(b"me:" + raw).decode(),
        "b64 url-safe": base64.urlsafe_b64encode(b"x" + raw).decode(),
        "hex": raw.hex(),
    }
    for name, form in forms.items():
        out = redact(f"before {form} after", token)
        assert out.startswith("before ") and out.endswith(" after"), (name, out)
        assert "[hidden]" in out, (name, out)
        kept = out.removeprefix("before ").removesuffix(" after").replace("[hidden]", "\n")
        # Whatever is left of the form is too short to help anyone guess the token.
        assert all(len(piece) < 8 for piece in kept.split("\n")), (name, out)


def test_redact_keeps_ordinary_text_and_short_pieces():
    token = "sk-Uq7Zr2Kx9Wm4Pb6Ln3Tj"
    text = "The server at sk-host said: model vision is not loaded (code 400)."
    assert redact(text, token) == text
    assert redact("x sk-Uq7Z y", token) == "x sk-Uq7Z y"  # 7 characters: not a usable piece
    assert redact("short abcd and ABCD", "abcd") == "short [hidden] and [hidden]"


def test_origin_is_the_keyring_user_name():
    assert server_origin("https://AI.school.example/v1") == "https://ai.school.example:443"
    assert server_origin("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000"


def test_environment_variable_comes_first(monkeypatch, memory_keyring):
    memory_keyring.set_password(KEYRING_SERVICE, "https://ai.school.example:443", "from-keyring")
    monkeypatch.setenv("OFFICE_TOKEN", f"  {TOKEN}\n")
    client = ServerClient(ServerAddress.parse("https://ai.school.example/v1"), token_env="OFFICE_TOKEN")
    assert client.token().reveal() == TOKEN
    monkeypatch.delenv("OFFICE_TOKEN")
    assert client.token().reveal() == "from-keyring"


def test_keyring_per_server_then_default(memory_keyring):
    assert token_from_keyring("https://a.example/v1") is None
    memory_keyring.set_password(KEYRING_SERVICE, credentials.KEYRING_DEFAULT_USER, "shared")
    memory_keyring.set_password(KEYRING_SERVICE, server_origin("https://a.example/v1"), TOKEN)
    assert token_from_keyring("https://a.example/v1").reveal() == TOKEN
    assert token_from_keyring("https://b.example/v1").reveal() == "shared"


def test_a_broken_keyring_means_no_token_and_no_leak(caplog):
    before = keyring.get_keyring()
    keyring.set_keyring(BrokenKeyring())
    caplog.set_level(logging.DEBUG)
    try:
        assert token_from_keyring("https://a.example/v1") is None
    finally:
        keyring.set_keyring(before)
    assert "KeyringError" in caplog.text and TOKEN not in caplog.text
