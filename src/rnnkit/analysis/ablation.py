"""Ablation: silence chosen hidden units and measure what the loss loses.

A unit is silenced by zeroing its *outgoing* weights: the recurrent
weights that read it (column ``j`` of every gate block of ``weight_hh``),
the next layer's input weights that read it, and the read-out's column. The
unit still computes its own state, but nothing downstream sees it, which is
the lesion experiment of neuroscience (and of Karpathy et al. 2015 and
Yang et al. 2019 for trained networks). The weights are restored when the
``with`` block ends, even on an error.

A unit is an index into the output features of a recurrent layer: ``[0, H)``
for one direction, ``[0, 2H)`` for a bidirectional layer (forward units
first, as in the layer's output), ``[0, P)`` per direction with an LSTM
projection.

References
----------
Yang, Joglekar, Song, Newsome & Wang (2019), Task representations in neural
networks trained to perform many cognitive tasks, Nat. Neurosci. 22: 297-306.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import numpy as np

from ._model import as_model_input, evaluating

__all__ = ["AblationResult", "ablation_effect", "ablation_scan", "outgoing_weights", "silence"]


class AblationResult(NamedTuple):
    """Loss with and without the units.

    Attributes
    ----------
    baseline : float
        The loss of the intact model.
    ablated : float
        The loss with the units silenced.
    delta : float
        ``ablated - baseline`` (positive: the units were helping).
    """

    baseline: float
    ablated: float
    delta: float


def _units(units, n, what):
    u = np.atleast_1d(np.asarray(units))
    if u.size == 0:
        return u.astype(np.int64)
    if u.dtype.kind not in "iu" or u.ndim != 1:
        raise TypeError(f"units must be an int or a 1-D array of ints, got {np.asarray(units)!r}")
    if u.min() < 0 or u.max() >= n:
        raise ValueError(f"units must be in [0, {n - 1}] ({what}), got {u.tolist()}")
    return np.unique(u)


def outgoing_weights(model, units, *, layer=-1):
    """Where the outgoing weights of ``units`` are: ``[(param key, index), ...]``.

    Parameters
    ----------
    model : SequenceModel or CTRNNModel
    units : int or sequence of int
        Indices into the layer's output features.
    layer : int, default=-1
        The recurrent layer (SequenceModel; negative counts from the top).

    Returns
    -------
    list of (str, tuple)
        ``model.params[key][index]`` are the weights to zero.
    """
    rnn = getattr(model, "rnn", None)
    if rnn is None or not hasattr(model, "params"):
        raise TypeError(f"expected a SequenceModel or CTRNNModel, got {type(model).__name__}")
    if type(rnn).__name__ == "CTRNN":
        u = _units(units, rnn.hidden_size, "CTRNN units")
        return [("rnn.weight_hh", (slice(None), u)), ("head.weight", (slice(None), u))]
    L = rnn.num_layers
    k = layer + L if layer < 0 else layer
    if not 0 <= k < L:
        raise ValueError(f"layer must be in [-{L}, {L - 1}], got {layer}")
    K = rnn.num_directions
    R = rnn.output_hidden_size
    u = _units(units, K * R, f"layer {k} has {K * R} output features")
    out = []
    for d in range(K):
        sfx = f"_l{k}" + ("_reverse" if d else "")
        own = u[(u >= d * R) & (u < (d + 1) * R)] - d * R
        if own.size:
            out.append((f"rnn.weight_hh{sfx}", (slice(None), own)))
    if k < L - 1:
        for d in range(K):
            out.append((f"rnn.weight_ih_l{k + 1}" + ("_reverse" if d else ""),
                        (slice(None), u)))
    else:
        out.append(("head.weight", (slice(None), u)))
    return out


@contextlib.contextmanager
def silence(model, units, *, layer=-1):
    """Silence ``units`` for the duration of the ``with`` block.

    Parameters
    ----------
    model : SequenceModel or CTRNNModel
    units : int or sequence of int
    layer : int, default=-1

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit import SequenceModel
    >>> from rnnkit.analysis import silence
    >>> m = SequenceModel(2, 4, 1, loss="mse", rng=0).eval()
    >>> x = np.ones((3, 1, 2), np.float32)
    >>> with silence(m, range(4)):
    ...     y, _ = m.forward(x)
    >>> bool(np.allclose(y, m.params["head.bias"]))
    True
    """
    where = outgoing_weights(model, list(units) if not np.isscalar(units) else units,
                             layer=layer)
    saved = [(model.params[key], idx, model.params[key][idx].copy()) for key, idx in where]
    try:
        for arr, idx, _ in saved:
            arr[idx] = 0.0
        yield model
    finally:
        for arr, idx, old in saved:
            arr[idx] = old


def _loss(model, x, target, mask, lengths, state):
    with evaluating(model):
        y, _ = model.forward(x, state, lengths=lengths)
        value, _ = model.loss(y, target, mask)
    terms = getattr(model, "loss_terms", None)
    if terms and "task" in terms:  # CTRNNModel: the task error, not the weight penalties
        value = terms["task"]
    return float(value)


def ablation_effect(model, x, target, units, *, layer=-1, mask=None, lengths=None, state=None):
    """The model's loss on ``(x, target)`` with and without ``units``.

    Parameters
    ----------
    model : SequenceModel or CTRNNModel
        Evaluated in evaluation mode; for a CTRNNModel the task error alone
        (its weight penalties would change with the zeroed weights).
    x : ndarray (T, B, D) or (T, B) of ids
    target : what ``model.loss`` takes (an array, or ``(y, mask)`` for a CTRNNModel)
    units : int or sequence of int
    layer : int, default=-1
    mask : ndarray of bool, optional
        Passed to ``model.loss``.
    lengths : ndarray (B,) of int, optional
    state : initial recurrent state, optional

    Returns
    -------
    AblationResult
    """
    x = as_model_input(model, x)
    base = _loss(model, x, target, mask, lengths, state)
    with silence(model, units, layer=layer):
        abl = _loss(model, x, target, mask, lengths, state)
    return AblationResult(base, abl, abl - base)


def ablation_scan(model, x, target, *, units=None, layer=-1, mask=None, lengths=None,
                  state=None):
    """Loss increase when each unit is silenced alone.

    Parameters
    ----------
    units : sequence of int, optional
        Units to try (default all the layer's output features).
    Other parameters as in :func:`ablation_effect`.

    Returns
    -------
    units : ndarray (U,) of int
    delta : ndarray (U,)
        ``loss(without unit) - loss(intact)`` for each.
    """
    if units is None:
        rnn = model.rnn
        n = rnn.hidden_size if type(rnn).__name__ == "CTRNN" \
            else rnn.num_directions * rnn.output_hidden_size
        units = np.arange(n)
    units = np.asarray(units, dtype=np.int64).reshape(-1)
    x = as_model_input(model, x)
    base = _loss(model, x, target, mask, lengths, state)
    delta = np.empty(units.size)
    for i, u in enumerate(units):
        with silence(model, [int(u)], layer=layer):
            delta[i] = _loss(model, x, target, mask, lengths, state) - base
    return units, delta
