"""Guard for the transformers/peft pin: switching LoRA adapters must work with what is installed.

transformers 5.24.0 refuses set_adapter with every released peft (it wants peft >= 0.22), which
would leave every image and audio answer without its adapter. This test exercises exactly the
calls the local backend makes, on the tiny checkpoint, and fails loudly on a bad combination.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def model_with_adapters(tiny_model_dir):
    import torch
    from transformers import Phi4MultimodalForCausalLM

    model = Phi4MultimodalForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    model.load_adapter(str(tiny_model_dir / "vision-lora"), adapter_name="vision")
    model.load_adapter(str(tiny_model_dir / "speech-lora"), adapter_name="speech")
    return model


def _logits(model):
    import torch

    ids = torch.arange(10, 40).unsqueeze(0)
    with torch.inference_mode():
        return model(input_ids=ids).logits[0, -1]


def test_set_adapter_and_disable_adapters_change_the_output(model_with_adapters):
    import torch

    model = model_with_adapters
    model.disable_adapters()
    base = _logits(model)
    model.enable_adapters()
    model.set_adapter("vision")
    assert model.active_adapters() == ["vision"]
    vision = _logits(model)
    model.set_adapter("speech")
    assert model.active_adapters() == ["speech"]
    speech = _logits(model)
    model.disable_adapters()
    again = _logits(model)

    assert not torch.allclose(base, vision)
    assert not torch.allclose(base, speech)
    assert not torch.allclose(vision, speech)
    assert torch.equal(base, again), "disabling the adapters did not restore the base model"


def test_installed_versions_are_the_pinned_ones():
    """The pin in pyproject.toml is the combination the test above proved; keep them together."""
    import re
    import tomllib
    from importlib.metadata import version

    from app.paths import repo_root

    project = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + project["optional-dependencies"]["local"]
    pins = {}
    for dep in deps:
        pinned = re.match(r"([A-Za-z0-9_.-]+)==([^\s;]+)", dep)
        if pinned:
            pins[pinned.group(1)] = pinned.group(2)
    assert version("transformers") == pins["transformers"]
    assert version("peft") == pins["peft"]
