"""Drawing token ids from a model's logits.

Randomness comes only from the ``np.random.Generator`` passed in: the same
seed gives the same draws.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .._validation import as_array

__all__ = ["sample_logits"]


def sample_logits(
    logits: object,
    temperature: float = 1.0,
    rng: np.random.Generator | None = None,
) -> int | np.ndarray:
    """Draw an id from ``softmax(logits / temperature)``.

    Parameters
    ----------
    logits : array-like of float, shape (V,) or (B, V)
        Unnormalized log-probabilities over ``V`` ids, one row per draw.
        Must be finite; any finite magnitude is handled (the maximum is
        subtracted before the exponential).
    temperature : float, default 1.0
        Divides the logits: below 1 sharpens the distribution, above 1
        flattens it. ``0`` means greedy decoding: the argmax, with ties going
        to the lowest index, and ``rng`` is not used. A tiny positive
        temperature (e.g. ``1e-8``) gives the argmax whenever one logit is
        largest by more than about ``40 * temperature``; ids whose logits tie
        exactly for the maximum are then drawn with equal probability, as the
        softmax says.
    rng : numpy.random.Generator, optional
        Source of randomness; pass ``np.random.default_rng(seed)`` to make the
        draws reproducible. ``None`` uses a fresh, unseeded
        ``np.random.default_rng()``. Each call with ``temperature > 0`` draws
        exactly ``B`` (or 1) uniform numbers from it.

    Returns
    -------
    int or ndarray of shape (B,), dtype int64
        An ``int`` for 1-D ``logits``, an array for 2-D ``logits``.

    Raises
    ------
    TypeError
        If ``logits`` is not real-valued numeric, ``temperature`` is not a
        real number, or ``rng`` is not a ``numpy.random.Generator``.
    ValueError
        If ``logits`` is not 1-D or 2-D, has ``V == 0`` or ``B == 0``, or has a
        non-finite value, or if ``temperature`` is negative or non-finite.

    Notes
    -----
    With ``m`` the row maximum, ``p_i = exp((l_i - m) / t) / sum_j exp((l_j - m) / t)``.
    The largest term is ``exp(0) = 1``, so the sum is at least 1 and nothing
    overflows; terms that underflow to 0 (or shifted logits that overflow to
    ``-inf``) are ids of negligible probability, which are never drawn. The
    draw is by inverse CDF: the first ``i`` with ``cumsum(p)[i] > u * sum(p)``.
    No floating-point warning is raised, even under ``np.errstate(all="raise")``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sample_logits([0.0, 5.0, 1.0], temperature=0)
    1
    >>> sample_logits([[0.0, 1e4], [1e4, 0.0]], temperature=1.0, rng=rng).tolist()
    [1, 0]
    """
    # 1) validate
    arr = as_array(logits, "logits")
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"logits must be real numbers, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise ValueError(f"logits must have shape (V,) or (B, V), got shape {arr.shape}")
    if arr.shape[-1] == 0 or arr.size == 0:
        raise ValueError(f"logits must have at least one id and one row, got shape {arr.shape}")
    x = arr.astype(np.float64)
    x2 = x.reshape(-1, x.shape[-1])  # (B, V)
    if not np.isfinite(x2).all():
        row, col = np.argwhere(~np.isfinite(x2))[0]
        where = f"index {col}" if arr.ndim == 1 else f"index ({row}, {col})"
        raise ValueError(f"logits must be finite, got {x2[row, col]} at {where}")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature must be a float, got {type(temperature).__name__}")
    temperature = float(temperature)
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(
            f"temperature must be a finite number >= 0 (0 means greedy), got {temperature}"
        )
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(
            "rng must be a numpy.random.Generator, e.g. np.random.default_rng(seed),"
            f" got {type(rng).__name__}"
        )

    # 2) greedy: argmax, ties to the lowest index
    if temperature == 0:
        ids = np.argmax(x2, axis=1).astype(np.int64)  # (B,)
    else:
        if rng is None:
            rng = np.random.default_rng()
        # 3) stable softmax numerators; overflow here only makes -inf (probability 0)
        with np.errstate(over="ignore", under="ignore"):
            z = (x2 - x2.max(axis=1, keepdims=True)) / temperature  # (B, V), <= 0
            p = np.exp(z)  # (B, V), max entry 1
        cdf = np.cumsum(p, axis=1)  # (B, V)
        u = rng.random(x2.shape[0])[:, None] * cdf[:, -1:]  # (B, 1), in [0, sum)
        ids = np.count_nonzero(cdf <= u, axis=1)  # (B,), first i with cdf[i] > u
        # u * sum can round up to sum: fall back to the last id of non-zero probability
        last = p.shape[1] - 1 - np.argmax(p[:, ::-1] > 0, axis=1)  # (B,)
        ids = np.minimum(ids, last).astype(np.int64)
    return int(ids[0]) if arr.ndim == 1 else ids
