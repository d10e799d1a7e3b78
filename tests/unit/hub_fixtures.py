"""Fixtures shared by the model-store tests: a loopback-only guard, the fake hub serving a test's
`source` folder (each test module defines its own, with its own shard size), and the destination."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.inference import model_store as ms
from app.inference.model_store import transfer
from tests.fakes.hub_server import FakeHub, LoopbackGuard


@pytest.fixture
def guard(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(transfer, "RETRY_BASE_S", 0.01)
    g = LoopbackGuard().install(monkeypatch)
    yield g
    assert g.violations == [], f"something tried to leave the machine: {g.violations}"


@pytest.fixture
def hub(source, guard, monkeypatch):
    with FakeHub(source, max_lifetime_s=120) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


@pytest.fixture
def dest(tmp_path) -> Path:
    return tmp_path / "models" / "Phi-4-multimodal-instruct"


def wanted_files(source: Path) -> list[str]:
    return sorted(
        p.relative_to(source).as_posix()
        for p in source.rglob("*")
        if p.is_file() and ms.is_wanted(p.relative_to(source).as_posix())
    )
