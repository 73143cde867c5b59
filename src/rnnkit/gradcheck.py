"""Finite-difference gradient checks (public; the test suite uses them too).

The scalar checked is ``L = sum(output * G)`` for a fixed random upstream
gradient ``G`` (not ones, which can hide transposition bugs; CS231n's
``eval_numerical_gradient_array``). Centred differences in float64 with
``eps = 1e-6`` (PyTorch ``gradcheck``'s default).
"""

from __future__ import annotations

import numpy as np

__all__ = ["directional_check", "numerical_gradient", "rel_error"]


def numerical_gradient(f, x, eps=1e-6):
    """Centred finite-difference gradient of the scalar function ``f()`` w.r.t. ``x``.

    Parameters
    ----------
    f : callable
        Takes no argument and returns a float; it must read ``x`` (which is
        perturbed in place, element by element, and restored).
    x : ndarray of float64
    eps : float, default=1e-6

    Returns
    -------
    ndarray of the shape of ``x``: ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``.
    """
    if x.dtype != np.float64:
        raise TypeError(f"numerical_gradient needs float64 arrays, got {x.dtype}")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        grad[i] = (fp - fm) / (2 * eps)
    return grad


def rel_error(a, b):
    """``max|a - b| / max(|a|, |b|, 1e-12)``: one relative error for a whole array."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), 1e-12)
    return float(np.max(np.abs(a - b), initial=0.0) / scale)


def directional_check(f, arrays, grads, rng, eps=1e-6):
    """Compare ``(f(theta + eps v) - f(theta - eps v)) / 2 eps`` with ``<grad, v>``.

    For sizes where an element-wise check is too slow (``jax.test_util``'s
    ``check_grads`` idea): one random unit direction over all ``arrays``.

    Returns
    -------
    (numerical, analytic) : tuple of float
    """
    vs = [rng.standard_normal(a.shape) for a in arrays]
    norm = np.sqrt(sum(float((v * v).sum()) for v in vs))
    vs = [v / norm for v in vs]
    for a, v in zip(arrays, vs):
        a += eps * v
    fp = f()
    for a, v in zip(arrays, vs):
        a -= 2 * eps * v
    fm = f()
    for a, v in zip(arrays, vs):
        a += eps * v
    analytic = sum(float((g * v).sum()) for g, v in zip(grads, vs))
    return (fp - fm) / (2 * eps), analytic
