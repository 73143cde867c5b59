"""Elman RNN: the unroll over time and its exact backward pass, side by side.

Equation (PyTorch's ``torch.nn.RNN``)::

    h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

with ``f`` = tanh (default), relu, or, as an rnnkit extension, the logistic
sigmoid. The caller computes ``gx = x W_ih^T + b_ih + b_hh`` of shape
(T, B, H) in one GEMM.

References
----------
Elman (1990), Finding structure in time. Checked against ``torch.nn.RNN``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

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


def rnn_forward(gx, h0, w_hh, nonlinearity="tanh", mask=None):
    """Run the Elman RNN over T steps.

    Parameters
    ----------
    gx : ndarray (T, B, H)
        Projected input ``x W_ih^T + b_ih + b_hh``; overwritten.
    h0 : ndarray (B, H)
    w_hh : ndarray (H, H)
    nonlinearity : {'tanh', 'relu', 'sigmoid'}
    mask : ndarray (T, B, 1) of bool, optional

    Returns
    -------
    RNNCache
    """
    T, B, H = gx.shape
    h = np.empty((T + 1, B, H), gx.dtype)
    h[0] = h0
    w_hh_T = w_hh.T  # (H, H), a view: BLAS reads it transposed
    with np.errstate(over="ignore"):
        for t in range(T):
            a = h[t + 1]
            np.matmul(h[t], w_hh_T, out=a)
            a += gx[t]
            _activate(a, nonlinearity)
            if mask is not None:
                np.copyto(a, h[t], where=~mask[t])
    return RNNCache(h, nonlinearity, mask)


def activation_grad(h, nonlinearity):
    """``f'`` from the output ``h = f(a)``: ``1 - h^2``, ``h > 0`` or ``h (1 - h)``."""
    if nonlinearity == "tanh":
        d = np.square(h)
        np.subtract(1.0, d, out=d)
    elif nonlinearity == "relu":
        d = (h > 0).astype(h.dtype)
    else:
        d = np.subtract(1.0, h)
        d *= h
    return d


def rnn_backward(d_output, dh_n, cache, w_hh):
    """Backpropagate through the Elman unroll.

    Per step: ``dh = d_output[t] + dh_next``; ``da = dh * f'(h_t)``;
    ``dh_prev = da @ W_hh``.

    Parameters
    ----------
    d_output : ndarray (T, B, H) or None
    dh_n : ndarray (B, H) or None
    cache : RNNCache
    w_hh : ndarray (H, H)

    Returns
    -------
    dpre : ndarray (T, B, H)
        Gradient of the pre-activations.
    dh0 : ndarray (B, H)
    """
    h, nonlinearity, mask = cache
    T1, B, H = h.shape
    T = T1 - 1
    dpre = activation_grad(h[1:], nonlinearity)  # (T, B, H) factors, then gradients
    dh = np.zeros((B, H), h.dtype) if dh_n is None else np.array(dh_n, dtype=h.dtype)
    for t in range(T - 1, -1, -1):
        if d_output is not None:
            dh += d_output[t]
        if mask is not None:
            m = mask[t]
            dh_keep = np.where(m, 0.0, dh)
            dh *= m
        dpre[t] *= dh
        np.matmul(dpre[t], w_hh, out=dh)
        if mask is not None:
            dh += dh_keep
    return dpre, dh
