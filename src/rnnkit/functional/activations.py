"""Activation functions and their derivatives, stable for any finite input.

Each derivative is written in terms of the activation's *output* (as in
scikit-learn's ``DERIVATIVES`` table and min-char-rnn), because the recurrent
layers keep post-activation values in their caches and never recompute
pre-activations in the backward pass.

None of these functions raises an overflow or invalid-value warning for
inputs as large as +/-1e4 (or any finite input).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "DERIVATIVES",
    "log_softmax",
    "relu",
    "relu_grad",
    "sigmoid",
    "sigmoid_grad",
    "softmax",
    "tanh",
    "tanh_grad",
]


def sigmoid(x, out=None):
    """Logistic sigmoid ``s = 1 / (1 + exp(-x))``, computed without overflow.

    Parameters
    ----------
    x : ndarray of float, any shape
    out : ndarray, optional
        Where to write the result (may be ``x`` itself).

    Returns
    -------
    s : ndarray of the same shape and dtype, values in [0, 1].

    Notes
    -----
    ``exp(-x)`` overflows for ``x`` below about -88 (float32) or -709
    (float64); the overflow gives ``inf`` and ``1 / (1 + inf) = 0``, the
    correctly rounded result, so it is silenced locally rather than avoided
    with an extra pass over the data.
    """
    x = np.asarray(x)
    if out is None:
        out = np.empty_like(x, dtype=np.result_type(x, np.float32))
    with np.errstate(over="ignore"):
        np.negative(x, out=out)
        np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


def sigmoid_grad(s):
    """Derivative of the sigmoid from its output: ``s * (1 - s)``."""
    return s * (1.0 - s)


def tanh(x, out=None):
    """Hyperbolic tangent (NumPy's, which saturates cleanly)."""
    return np.tanh(x, out=out)


def tanh_grad(t):
    """Derivative of tanh from its output: ``1 - t**2``."""
    return 1.0 - t * t


def relu(x, out=None):
    """Rectified linear unit ``max(x, 0)``."""
    return np.maximum(x, 0.0, out=out)


def relu_grad(r):
    """Derivative of relu from its output: 1 where ``r > 0``, else 0 (PyTorch's choice at 0)."""
    return (r > 0).astype(np.asarray(r).dtype)


def log_softmax(x, axis=-1):
    """Log-softmax ``x - logsumexp(x)`` along ``axis``, stable for any finite input.

    Parameters
    ----------
    x : ndarray of float, any shape
    axis : int, default=-1

    Returns
    -------
    ndarray of the same shape and dtype; every value <= 0.
    """
    x = np.asarray(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    with np.errstate(under="ignore"):
        lse = np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted - lse


def softmax(x, axis=-1):
    """Softmax ``exp(x) / sum(exp(x))`` along ``axis``, with the max subtracted first.

    Returns
    -------
    ndarray of the same shape and dtype; rows sum to 1, values in [0, 1].
    """
    x = np.asarray(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    with np.errstate(under="ignore"):
        e = np.exp(shifted)
    e /= e.sum(axis=axis, keepdims=True)
    return e


ACTIVATIONS = {"tanh": tanh, "relu": relu, "sigmoid": sigmoid}
# derivative of each activation, in terms of its output
DERIVATIVES = {"tanh": tanh_grad, "relu": relu_grad, "sigmoid": sigmoid_grad}
