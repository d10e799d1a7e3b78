"""Remote and local agree on detail: the image the client sends makes the server (vLLM with
dynamic_hd 12) spend as many image tokens as the local model spends on the original.

Token arithmetic: 448 px crops plus a global view, tokens = 273 + rows * (cols + 1) over the
2x2-merged patches that hold image. app.inference.phi4_local.image_token_count mirrors the
processor (checked against the real one in tests/integration/test_remote_detail.py).
"""

from __future__ import annotations

import pytest

from app.core.types import Detail
from app.inference.openai_compatible import SERVER_MAX_CROPS, size_for_server
from app.inference.phi4_local import image_token_count

SIZES = {
    "1080p": (1920, 1080),
    "4K": (3840, 2160),
    "720p camera": (1280, 720),
    "portrait phone": (1080, 1920),
    "4:3 webcam": (640, 480),
    "4:3 1024": (1024, 768),
    "4:3 photo": (4032, 3024),
    "square 1080": (1080, 1080),
    "square 448": (448, 448),
    "small": (320, 200),
}


@pytest.mark.parametrize("detail", [Detail.LOW, Detail.NORMAL])
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_the_server_spends_the_local_token_count(size, detail):
    sent = size_for_server(*size, detail.max_crops)
    assert image_token_count(*sent, SERVER_MAX_CROPS) == image_token_count(*size, detail.max_crops)


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_high_detail_is_the_servers_cap_and_says_so(size):
    # The server's dynamic_hd caps every request: high detail cannot exceed it, whatever is sent.
    sent = size_for_server(*size, Detail.HIGH.max_crops)
    assert image_token_count(*sent, SERVER_MAX_CROPS) == image_token_count(*size, SERVER_MAX_CROPS)
    # A server started with a higher cap gives high detail its local count.
    wider = size_for_server(*size, Detail.HIGH.max_crops, server_crops=36)
    assert image_token_count(*wider, 36) == image_token_count(*size, 36)


@pytest.mark.parametrize(
    "size, detail, tokens, old_tokens",
    [
        ((1920, 1080), Detail.NORMAL, 2129, 2613),
        ((1920, 1080), Detail.LOW, 753, 867),
        ((3840, 2160), Detail.NORMAL, 2129, 2613),
        ((4032, 3024), Detail.NORMAL, 3393, None),
        ((1080, 1080), Detail.LOW, 1329, None),
    ],
)
def test_the_figures_of_the_issue(size, detail, tokens, old_tokens):
    sent = size_for_server(*size, detail.max_crops)
    assert image_token_count(*sent, SERVER_MAX_CROPS) == tokens
    if old_tokens is not None:  # what the old 1792 x 1008 / 896 x 504 downscale cost on the server
        old = {Detail.NORMAL: (1792, 1008), Detail.LOW: (896, 504)}[detail]
        assert image_token_count(*old, SERVER_MAX_CROPS) == old_tokens


@pytest.mark.parametrize("detail", list(Detail))
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_nothing_is_sent_larger_than_it_needs(size, detail):
    w, h = size_for_server(*size, detail.max_crops)
    # Never more pixels than the original, and never a shape the server would crop differently.
    assert w * h <= size[0] * size[1]
    assert abs(w / h - size[0] / size[1]) / (size[0] / size[1]) < 0.01
