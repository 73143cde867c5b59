"""Continuous-time (leaky) RNN: the Euler unroll over time and its exact backward pass.

Equations (the discretized rate network of Song, Yang & Wang 2016 and
PsychRNN)::

    r_t     = f(h_t)
    h_{t+1} = (1 - alpha) h_t + alpha (W_rec r_t + W_in u_t + b) + sqrt(2 alpha sigma^2) N(0, 1)
    alpha   = dt / tau

``h`` is the state (a synaptic current), ``r = f(h)`` the firing rate, ``f``
the rate function (``relu`` or ``tanh``), ``tau`` the time constant and ``dt``
the Euler step; ``sigma`` is ``noise_std``. Shapes: T steps, B batch, H units.
The caller projects the input for all steps in one GEMM and folds in the bias
and the noise (which backward does not need)::

    gx = alpha (u W_in^T + b) + sqrt(2 alpha sigma^2) N(0, 1)     # (T, B, H)

and passes ``alpha W_rec`` (H, H), so the step is one GEMM plus three
elementwise operations::

    h_{t+1} = (1 - alpha) h_t + r_t (alpha W_rec)^T + gx_t

``W_rec`` and ``W_in`` here are the *effective* weights (after Dale's law and
the connectivity masks, see :class:`rnnkit.ctrnn.CTRNN`).

References
----------
Song, Yang & Wang (2016), Training excitatory-inhibitory recurrent neural
networks for cognitive tasks: a simple and flexible framework, PLoS Comput.
Biol. 12(2): e1004792. Ehrlich, Stone, Brandfonbrener, Atanasov & Murray
(2021), PsychRNN: an accessible and flexible Python package for training
recurrent neural network models on cognitive tasks, eNeuro 8(1).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

ACTIVATIONS = ("relu", "tanh")


class CTRNNCache(NamedTuple):
    """What the forward pass keeps for backward (and for the analysis tools).

    Attributes
    ----------
    h : ndarray (T+1, B, H)
        States; ``h[0]`` is the initial state, ``h[1:]`` the state after each step.
    r : ndarray (T+1, B, H)
        Rates ``f(h)``; ``r[1:]`` is what the read-out sees.
    alpha : float
        ``dt / tau``.
    activation : {'relu', 'tanh'}
    mask : ndarray (T, B, 1) of bool or None
        True where the step is valid (variable-length batches).
    """

    h: np.ndarray
    r: np.ndarray
    alpha: float
    activation: str
    mask: np.ndarray | None


def rate(h, activation, out=None):
    """The rate function ``r = f(h)``: ``max(h, 0)`` or ``tanh(h)``."""
    if activation == "relu":
        return np.maximum(h, 0.0, out=out)
    return np.tanh(h, out=out)


def rate_grad(r, activation):
    """``f'(h)`` from the rates ``r = f(h)``: ``1[r > 0]`` (relu) or ``1 - r^2`` (tanh)."""
    if activation == "relu":
        return (r > 0).astype(r.dtype)
    d = np.square(r)
    np.subtract(1.0, d, out=d)
    return d


def ctrnn_forward(gx, h0, w_rec_alpha, alpha, activation="relu", mask=None):
    """Run the continuous-time RNN over T Euler steps.

    Parameters
    ----------
    gx : ndarray (T, B, H)
        ``alpha (u W_in^T + b)`` plus the scaled noise, for every step.
    h0 : ndarray (B, H)
        Initial state.
    w_rec_alpha : ndarray (H, H)
        ``alpha * W_rec`` (effective recurrent weights times ``alpha``).
    alpha : float
        ``dt / tau`` in (0, 1].
    activation : {'relu', 'tanh'}
    mask : ndarray (T, B, 1) of bool, optional
        False at padded steps: there the state is carried unchanged.

    Returns
    -------
    CTRNNCache
    """
    T, B, H = gx.shape
    dtype = gx.dtype
    h = np.empty((T + 1, B, H), dtype)
    r = np.empty((T + 1, B, H), dtype)
    h[0] = h0
    rate(h[0], activation, out=r[0])
    w_T = w_rec_alpha.T  # (H, H), a view: BLAS reads it transposed
    leak = dtype.type(1.0 - alpha)
    tmp = np.empty((B, H), dtype)
    for t in range(T):
        a = h[t + 1]
        np.matmul(r[t], w_T, out=a)  # alpha W_rec r_t
        a += gx[t]
        np.multiply(h[t], leak, out=tmp)
        a += tmp  # + (1 - alpha) h_t
        if mask is not None:  # padded steps keep the previous state
            np.copyto(a, h[t], where=~mask[t])
        rate(a, activation, out=r[t + 1])
    return CTRNNCache(h, r, float(alpha), activation, mask)


def ctrnn_backward(d_rates, dh_n, cache, w_rec_alpha):
    """Backpropagate through the Euler unroll.

    ``d_rates[t]`` is the gradient of the loss with respect to the rate
    ``r_{t+1}`` (from the read-out and the rate penalty); ``dh`` carried
    between steps is separate, and the gradient into ``h_{t+1}`` is their
    sum. With ``f'`` taken from the stored rates, per step from the last::

        dh      = dh_next + d_rates[t] * f'(h_{t+1})      # dL/dh_{t+1}
        da_t    = alpha dh                                # dL/d(W_rec r_t + W_in u_t + b)
        dh_prev = (1 - alpha) dh + f'(h_t) * (da_t @ W_rec)

    and after the loop, over all steps at once: ``dW_rec = sum_t da_t^T r_t``,
    ``dW_in = sum_t da_t^T u_t``, ``db = sum_t da_t``, ``du_t = da_t W_in``.

    At padded steps (mask False) the carried gradient passes through
    unchanged and ``da`` is zero (the caller zeroes ``d_rates`` there).

    Parameters
    ----------
    d_rates : ndarray (T, B, H) or None
    dh_n : ndarray (B, H) or None
        Gradient entering through the final state ``h_T``.
    cache : CTRNNCache
    w_rec_alpha : ndarray (H, H)
        ``alpha * W_rec``, as given to :func:`ctrnn_forward`.

    Returns
    -------
    da : ndarray (T, B, H)
        ``dL/d(W_rec r_t + W_in u_t + b)``; the caller turns it into the weight,
        bias and input gradients with one GEMM each.
    dh0 : ndarray (B, H)
        Gradient of the initial state.
    """
    h, r, alpha, activation, mask = cache
    T1, B, H = h.shape
    T = T1 - 1
    dtype = h.dtype
    fp = rate_grad(r, activation)  # (T+1, B, H) f'(h_t) for all steps
    dr = np.zeros((T, B, H), dtype) if d_rates is None else d_rates * fp[1:]  # (T, B, H)
    da = np.empty((T, B, H), dtype)
    dh = np.zeros((B, H), dtype) if dh_n is None else np.array(dh_n, dtype=dtype)
    leak = dtype.type(1.0 - alpha)
    alpha_ = dtype.type(alpha)
    tmp = np.empty((B, H), dtype)
    for t in range(T - 1, -1, -1):
        dh += dr[t]
        if mask is not None:
            valid = mask[t]
            dh_keep = np.where(valid, 0.0, dh)  # what passes a padded step untouched
            dh *= valid
        np.multiply(dh, alpha_, out=da[t])
        np.matmul(dh, w_rec_alpha, out=tmp)  # alpha dh @ W_rec
        tmp *= fp[t]
        dh *= leak
        dh += tmp
        if mask is not None:
            dh += dh_keep
    return da, dh
