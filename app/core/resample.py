"""The one resampler: anti-aliased polyphase filtering (scipy's resample_poly), whole or block-wise.

Every rate change in Sightline goes through here: audio files and microphone recordings on their
way to the model (any rate -> 16 kHz) and speech on its way to the sound device (a voice's rate ->
the player's). The filter is resample_poly's default Kaiser-windowed low-pass, so a tone keeps
its frequency and nothing above the new Nyquist frequency folds back into the audible band.

`StreamResampler` does the same block by block: its output equals `resample` over the whole
signal at once, so a producer can hand over samples as they come (a speech engine streaming its
audio, a file read a block at a time) without clicks at block edges and with flat memory.

numpy and scipy are imported on first use: importing this module costs nothing at start-up.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# resample_poly's default filter half-length, in taps of the up-sampled signal per factor.
_HALF_LEN_PER_FACTOR = 10


def factors(src_rate: int, dst_rate: int) -> tuple[int, int]:
    """(up, down): the smallest integers with src_rate * up / down == dst_rate."""
    src_rate, dst_rate = int(src_rate), int(dst_rate)
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, not {src_rate} and {dst_rate}")
    g = math.gcd(src_rate, dst_rate)
    return dst_rate // g, src_rate // g


def resample(samples, src_rate: int, dst_rate: int) -> np.ndarray:
    """1-D samples at `src_rate` -> float32 samples at `dst_rate` (ceil(n * dst / src) of them)."""
    import numpy as np

    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if int(src_rate) == int(dst_rate) or x.size == 0:
        return x
    from scipy.signal import resample_poly

    up, down = factors(src_rate, dst_rate)
    return resample_poly(x, up, down).astype(np.float32, copy=False)


class StreamResampler:
    """Resample a stream of 1-D blocks from `src_rate` to `dst_rate`, block by block.

    The output equals `resample` over the whole signal at once (the same filter, zeros beyond
    both ends): each block is filtered with enough real input on either side (overlap and
    discard), and blocks are cut at multiples of the decimation factor so every output sample
    lands where it would in the one-shot result. Memory: one block plus a few dozen samples of
    context. `feed` holds back the last few samples until more arrive; `finish` returns them.
    """

    def __init__(self, src_rate: int, dst_rate: int):
        import numpy as np

        self.src_rate, self.dst_rate = int(src_rate), int(dst_rate)
        self.up, self.down = factors(self.src_rate, self.dst_rate)
        half_len = _HALF_LEN_PER_FACTOR * max(self.up, self.down)
        # Context on each side, in input samples: past the filter's reach, a multiple of `down`.
        self.pad = self.down * math.ceil((half_len // self.up + 2) / self.down)
        self._context = np.zeros(self.pad, np.float32)  # the input just before _pending
        self._pending = np.zeros(0, np.float32)
        self._consumed = 0  # input samples already turned into output
        self._taps = None  # the low-pass filter, designed on first use

    @property
    def passthrough(self) -> bool:
        return self.src_rate == self.dst_rate

    def _filter(self, segment):
        from scipy.signal import firwin, resample_poly

        if self._taps is None:
            # resample_poly's own design, made once instead of on every block.
            half_len = _HALF_LEN_PER_FACTOR * max(self.up, self.down)
            taps = firwin(2 * half_len + 1, 1.0 / max(self.up, self.down), window=("kaiser", 5.0))
            self._taps = taps.astype(segment.dtype)
        return resample_poly(segment, self.up, self.down, window=self._taps)

    def feed(self, block) -> np.ndarray:
        import numpy as np

        block = np.asarray(block, dtype=np.float32).reshape(-1)
        if self.passthrough:
            return block
        pending = np.concatenate([self._pending, block])
        n = ((len(pending) - self.pad) // self.down) * self.down
        if n <= 0:
            self._pending = pending
            return np.zeros(0, np.float32)
        y = self._filter(np.concatenate([self._context, pending[: n + self.pad]]))
        k0 = self.pad * self.up // self.down
        out = y[k0 : k0 + n * self.up // self.down]
        self._context = np.concatenate([self._context, pending[:n]])[-self.pad :]
        self._pending = pending[n:].copy()
        self._consumed += n
        return out.astype(np.float32, copy=False)

    def finish(self) -> np.ndarray:
        import numpy as np

        rest = len(self._pending)
        if self.passthrough or rest == 0:
            return np.zeros(0, np.float32)
        total_out = -(-(self._consumed + rest) * self.up // self.down)  # ceil, as resample_poly
        wanted = total_out - self._consumed * self.up // self.down
        tail = np.zeros(self.pad + (-rest) % self.down, np.float32)
        y = self._filter(np.concatenate([self._context, self._pending, tail]))
        k0 = self.pad * self.up // self.down
        self._pending = np.zeros(0, np.float32)
        self._consumed += rest
        return y[k0 : k0 + wanted].astype(np.float32, copy=False)
