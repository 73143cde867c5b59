"""Elman RNN: the unroll over time and its exact backward pass, side by side.

Equation (PyTorch's ``torch.nn.RNN``)::

    h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

with ``f`` = tanh (default), relu, or, as an rnnkit extension, the logistic
sigmoid. The caller computes ``gx = x W_ih^T + b_ih + b_hh`` of shape
(T, B, H) in one GEMM, best straight into ``h[1:]`` of the state array (see
:func:`rnn_forward`). The backward pass walks back in chunks of steps and
hands each chunk's pre-activation gradients to the caller, who turns them into
weight and input gradients with one GEMM each (see :func:`rnn_backward`).

References
----------
Elman (1990), Finding structure in time. Checked against ``torch.nn.RNN``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._chunks import steps_per_chunk
from .compiled import gemm_weight
from .lstm import sigmoid_

GATES = 1
NONLINEARITIES = ("tanh", "relu", "sigmoid")


class RNNCache(NamedTuple):
    """What the forward pass keeps.

    Attributes
    ----------
    h : ndarray (T+1, B, H)
        Hidden states; ``h[0]`` is the initial state.
    nonlinearity : str
    mask : ndarray (T, B, 1) of bool or None
    """

    h: np.ndarray
    nonlinearity: str
    mask: np.ndarray | None


def _activate(a, nonlinearity):
    """Apply ``f`` in place."""
    if nonlinearity == "tanh":
        np.tanh(a, out=a)
    elif nonlinearity == "relu":
        np.maximum(a, 0.0, out=a)
    else:
        sigmoid_(a)


def rnn_forward(gx, h0, w_hh, nonlinearity="tanh", mask=None, h=None):
    """Run the Elman RNN over T steps.

    Per step ``h_t = f(gx_t + h_{t-1} W_hh^T)``; at a padded step (mask False)
    ``h_t = h_{t-1}``. Each step starts from ``gx_t`` stored in ``h[t+1]`` and
    overwrites it with ``h_t``.

    Parameters
    ----------
    gx : ndarray (T, B, H) or None
        Projected input ``x W_ih^T + b_ih + b_hh``, copied into ``h[1:]``.
        None when ``h`` is given with ``h[1:]`` already holding it (the
        caller's projection GEMM wrote it there): then the forward pass needs
        no (T, B, H) array beyond the states.
    h0 : ndarray (B, H)
    w_hh : ndarray (H, H)
    nonlinearity : {'tanh', 'relu', 'sigmoid'}
    mask : ndarray (T, B, 1) of bool, optional
    h : ndarray (T+1, B, H), optional
        Where to store the states (allocated when None).

    Returns
    -------
    RNNCache
        Its ``h`` is the array ``h`` when given.
    """
    if h is None:
        h = np.empty((gx.shape[0] + 1, *gx.shape[1:]), gx.dtype)
    if gx is not None:
        h[1:] = gx
    T1, B, H = h.shape
    h[0] = h0
    w_hh_T = gemm_weight(w_hh, B, T1 - 1)  # (H, H): a contiguous copy, or W_hh read transposed
    hw = np.empty((B, H), h.dtype)
    with np.errstate(over="ignore"):
        for t in range(T1 - 1):
            a = h[t + 1]  # gx_t
            np.matmul(h[t], w_hh_T, out=hw)
            a += hw
            _activate(a, nonlinearity)
            if mask is not None:
                np.copyto(a, h[t], where=~mask[t])
    return RNNCache(h, nonlinearity, mask)


def activation_grad(h, nonlinearity, out=None):
    """``f'`` from the output ``h = f(a)``: ``1 - h^2``, ``h > 0`` or ``h (1 - h)``.

    Parameters
    ----------
    h : ndarray (...)
    nonlinearity : {'tanh', 'relu', 'sigmoid'}
    out : ndarray shaped like ``h``, optional
        Where to write the result (a new array when None).

    Returns
    -------
    ndarray shaped like ``h``
    """
    if out is None:
        out = np.empty_like(h)
    if nonlinearity == "tanh":
        np.square(h, out=out)
        np.subtract(1.0, out, out=out)
    elif nonlinearity == "relu":
        np.greater(h, 0, out=out)
    else:
        np.subtract(1.0, h, out=out)
        out *= h
    return out


def rnn_backward(d_output, dh_n, cache, w_hh, consume=None, chunk_steps=None):
    """Backpropagate through the Elman unroll, chunk by chunk of steps.

    Per step, walking back from ``t = T-1``::

        dh      = d_output[t] + dh_next
        dpre[t] = dh * f'(h_t)                (gradient of W_ih x_t + W_hh h_{t-1} + b)
        dh_prev = dpre[t] @ W_hh

    and at a padded step (mask False) ``dpre[t] = 0`` and ``dh_prev = dh``.
    The weight and input gradients are sums of products with ``dpre`` over
    the steps::

        dW_ih = sum_t dpre[t]^T x_t     dW_hh = sum_t dpre[t]^T h_{t-1}
        db    = sum_t sum_b dpre[t]     dx_t  = dpre[t] @ W_ih

    so the loop hands ``dpre`` to ``consume`` one chunk of ``k`` steps at a
    time, and the caller does them with one GEMM each per chunk: ``dpre``
    lives in a (k, B, H) buffer, never as a (T, B, H) array.

    Parameters
    ----------
    d_output : ndarray (T, B, H) or None
        Per-step upstream gradient.
    dh_n : ndarray (B, H) or None
    cache : RNNCache
    w_hh : ndarray (H, H)
    consume : callable or None
        ``consume(s, dpre)`` is called with ``dpre`` (k', B, H) of the steps
        ``s .. s+k'-1`` once they are done, last chunk first. The buffer is
        reused for the next chunk: ``consume`` must not keep it. When None,
        the whole ``dpre`` (T, B, H) is returned instead.
    chunk_steps : int or None
        Steps per chunk (see :func:`rnnkit.cells._chunks.steps_per_chunk`);
        None chooses it from B and H. Ignored when ``consume`` is None.

    Returns
    -------
    dpre : ndarray (T, B, H) or None
        Gradient of the pre-activations (None when ``consume`` is given).
    dh0 : ndarray (B, H)
    """
    h, nonlinearity, mask = cache
    T1, B, H = h.shape
    T = T1 - 1
    k = T if consume is None else steps_per_chunk(T, B, H, chunk_steps)
    buf = np.empty((k, B, H), h.dtype)  # f'(h) of a chunk, then its dpre
    dh = np.zeros((B, H), h.dtype) if dh_n is None else np.array(dh_n, dtype=h.dtype)
    for e in range(T, 0, -k):  # the chunk of steps s .. e-1
        s = max(e - k, 0)
        dpre = activation_grad(h[s + 1:e + 1], nonlinearity, out=buf[: e - s])
        for t in range(e - 1, s - 1, -1):
            if d_output is not None:
                dh += d_output[t]
            if mask is not None:
                m = mask[t]
                dh_keep = np.where(m, 0.0, dh)
                dh *= m
            d = dpre[t - s]
            d *= dh
            np.matmul(d, w_hh, out=dh)
            if mask is not None:
                dh += dh_keep
        if consume is not None:
            consume(s, dpre)
    return (buf if consume is None else None), dh
