"""The image the remote client sends, through transformers' own Phi-4-multimodal image processor
with the server's crop cap, makes as many image tokens as the original does locally.

vLLM's Phi-4-multimodal processing computes the same crop grid and token count as this processor
(`_compute_num_image_tokens` in vllm/model_executor/models/phi4mm.py mirrors it); the server runs with
dynamic_hd 12 (`sightline server command`).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from app.core.types import Detail, ImageInput
from app.inference.openai_compatible import SERVER_MAX_CROPS, encode_image

SIZES = [(1920, 1080), (640, 480), (1600, 1200), (1080, 1080)]  # 16:9, 4:3 at 4 and 12 crops, square


@pytest.fixture(scope="module")
def processor():
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("torchvision")
    return transformers.Phi4MultimodalImageProcessor()


def _tokens(processor, image: Image.Image, crops: int) -> int:
    return int(processor(images=[image], dynamic_hd=crops, return_tensors="pt")["num_img_tokens"][0])


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_sent_images_cost_the_server_what_the_original_costs_locally(processor, size):
    ramp = np.linspace(0, 255, size[0], dtype=np.uint8)
    pixels = np.ascontiguousarray(np.broadcast_to(ramp[None, :, None], (size[1], size[0], 3)))
    original = Image.fromarray(pixels)
    for detail in (Detail.LOW, Detail.NORMAL):  # high is the server's cap, normal's count there
        encoded = encode_image(ImageInput(pixels, "screen"), detail, "jpeg")
        sent = Image.open(io.BytesIO(base64.b64decode(encoded.data_url.partition(",")[2]))).convert("RGB")
        assert _tokens(processor, sent, SERVER_MAX_CROPS) == _tokens(processor, original, detail.max_crops), (
            size,
            detail,
            sent.size,
        )
