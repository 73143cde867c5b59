"""How many steps the backward passes handle at a time.

The RNN and GRU backward loops walk back over time in chunks of ``k`` steps:
the per-step factors (and, for the RNN, the pre-activation gradients) of one
chunk live in small ``(k, B, H)`` buffers instead of whole ``(T, B, H)``
arrays, so a training step holds little more than the activations BPTT must
keep. ``k`` is chosen so that a buffer holds about ``CHUNK_ELEMENTS`` numbers
(1 MiB in float32), but with at least ``MIN_CHUNK_ROWS`` rows ``k * B`` so the
GEMMs run per chunk stay as fast as whole-sequence ones; short sequences and
small batches are one chunk.
"""

from __future__ import annotations

CHUNK_ELEMENTS = 1 << 18
MIN_CHUNK_ROWS = 256


def steps_per_chunk(T, B, H, chunk_steps=None):
    """Steps ``k`` in a chunk of the backward loop, ``1 <= k <= T``.

    Parameters
    ----------
    T, B, H : int
        Sequence length, batch size and width of a per-step buffer row.
    chunk_steps : int or None
        Force ``k`` (clipped to [1, T]); None chooses it from the sizes:
        ``k = max(CHUNK_ELEMENTS // (B H), ceil(MIN_CHUNK_ROWS / B))``.

    Returns
    -------
    int
    """
    if chunk_steps is None:
        chunk_steps = max(CHUNK_ELEMENTS // max(B * H, 1), -(-MIN_CHUNK_ROWS // max(B, 1)))
    return max(1, min(T, int(chunk_steps)))
