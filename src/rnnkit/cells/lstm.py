"""LSTM: the unroll over time and its exact backward pass, side by side.

Equations (PyTorch's ``torch.nn.LSTM``, gate order i, f, g, o)::

    i_t = sigma(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
    f_t = sigma(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
    g_t = tanh (W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
    o_t = sigma(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)                 (with proj_size P: h_t = W_hr (o_t * tanh(c_t)))

sigma is the logistic sigmoid and ``*`` the elementwise product. Shapes: T
steps, B batch, H hidden units; the projected input ``gx = x W_ih^T + b_ih +
b_hh`` of shape (T, B, 4H) is computed by the caller in one GEMM.

References
----------
Hochreiter & Schmidhuber (1997), Long short-term memory; Gers, Schmidhuber &
Cummins (2000), Learning to forget (the forget gate). Checked against
``torch.nn.LSTM`` (pytorch/pytorch, torch/nn/modules/rnn.py).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import _workspace as workspace
from .compiled import COLUMN_MAJOR_MAX_B, lstm_kernels

GATES = 4


class LSTMCache(NamedTuple):
    """What the forward pass keeps for backward (and for the analysis tools).

    Attributes
    ----------
    gates : ndarray (T, B, 4H)
        Post-activation gates ``[i | f | g | o]``.
    h : ndarray (T+1, B, H), or (T+1, B, P) with a projection
        Hidden states; ``h[0]`` is the initial state, ``h[1:]`` the output.
    c : ndarray (T+1, B, H)
        Cell states; ``c[0]`` is the initial cell state.
    tanh_c : ndarray (T, B, H)
        ``tanh(c[1:])``.
    mask : ndarray (T, B, 1) of bool or None
        True where the step is valid (variable-length batches).
    m : ndarray (T, B, H) or None
        ``o * tanh(c)`` before the projection (only with ``proj_size``); zero at
        padded steps.
    """

    gates: np.ndarray
    h: np.ndarray
    c: np.ndarray
    tanh_c: np.ndarray
    mask: np.ndarray | None
    m: np.ndarray | None = None

    @property
    def i(self):
        return self.gates[..., : self.c.shape[-1]]

    @property
    def f(self):
        H = self.c.shape[-1]
        return self.gates[..., H: 2 * H]

    @property
    def g(self):
        H = self.c.shape[-1]
        return self.gates[..., 2 * H: 3 * H]

    @property
    def o(self):
        return self.gates[..., 3 * self.c.shape[-1]:]


def sigmoid_(a):
    """In-place sigmoid ``a <- 1 / (1 + exp(-a))``; exp's overflow to inf is exact here."""
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1.0
    np.reciprocal(a, out=a)


def lstm_forward(gx, h0, c0, w_hh, mask=None, w_hr=None, bias=None, threads=None):
    """Run the LSTM over T steps.

    Parameters
    ----------
    gx : ndarray (T, B, 4H)
        Projected input ``x W_ih^T`` (plus ``b_ih + b_hh``, or see ``bias``).
        Overwritten in place with the gate activations (it becomes
        ``cache.gates``).
    h0 : ndarray (B, H), or (B, P) with a projection
    c0 : ndarray (B, H)
        Initial states.
    w_hh : ndarray (4H, H) or (4H, P)
        Recurrent weights, gate blocks ``(W_hi|W_hf|W_hg|W_ho)``.
    mask : ndarray (T, B, 1) of bool, optional
        False at padded steps: there the state is carried unchanged.
    w_hr : ndarray (P, H), optional
        Projection of the hidden state (``proj_size``, Sak et al. 2014).
    bias : ndarray (4H,), optional
        ``b_ih + b_hh``, added to ``gx`` here (the compiled per-step path adds
        it in the step's elementwise pass instead of a pass of its own).
    threads : rnnkit.cells.compiled.Threads, optional
        Run the compiled loops over the batch rows on these threads (from
        :func:`rnnkit.cells.compiled.lstm_threads`, inside its ``with``).

    Returns
    -------
    LSTMCache

    Raises
    ------
    ValueError
        If ``bias`` is not of shape (4H,) (or (1, 4H)).

    Notes
    -----
    With numba installed and no projection, the loop runs compiled
    (:mod:`rnnkit.cells.compiled`): as one call for small steps (``B * H`` up
    to 1024, ``H`` up to 256), else as NumPy's GEMM plus one compiled call per
    step. Same equations and cache, equal to this loop to round-off.
    ``RNNKIT_COMPILED=0`` turns it off. A ``gx`` that is not C-contiguous
    takes this NumPy loop.
    """
    T, B, G = gx.shape
    if bias is not None:  # (4H,), or (1, 4H) and the like: what broadcasts along 4H alone
        shape = np.shape(bias)
        if shape[-1:] != (G,) or any(n != 1 for n in shape[:-1]):
            raise ValueError(f"lstm_forward: bias must have shape ({G},) (b_ih + b_hh), "
                             f"got {shape}")
        bias = np.reshape(bias, G)
    H = G // GATES
    dtype = gx.dtype
    P = H if w_hr is None else w_hr.shape[0]
    h = workspace.empty((T + 1, B, P), dtype)  # reused buffers: no page faults per step
    c = workspace.empty((T + 1, B, H), dtype)
    tanh_c = workspace.empty((T, B, H), dtype)
    m = None if w_hr is None else np.empty((T, B, H), dtype)
    h[0] = h0
    c[0] = c0
    kernels = None
    if w_hr is None and gx.flags.c_contiguous:
        kernels = lstm_kernels(B, H, dtype, threads, T)
    if kernels is not None:  # compiled loops: same equations, same cache
        if bias is not None:
            bias = np.ascontiguousarray(bias, dtype=dtype)
        kernels[0](gx, h, c, tanh_c, w_hh, None if mask is None else mask[..., 0], bias)
        return LSTMCache(gx, h, c, tanh_c, mask, m)
    if bias is not None:
        gx += bias
    w_hh_T = w_hh.T  # (H, 4H), a view: BLAS reads it transposed
    # OpenBLAS writes h W_hh^T fastest as its transpose (W_hh h^T, column-major) at
    # 1 < B <= 64: about 1.3x at B=32, H=512 on 2 threads (the add below then reads it
    # strided); at B=128 both layouts run alike
    gh = np.empty((B, G), dtype, order="F" if 1 < B <= COLUMN_MAJOR_MAX_B else "C")
    ig = np.empty((B, H), dtype)
    tanh_g = np.empty((B, H), dtype)
    with np.errstate(over="ignore"):
        for t in range(T):
            a = gx[t]  # (B, 4H) pre-activations, turned into activations in place
            np.matmul(h[t], w_hh_T, out=gh)
            a += gh
            g = a[:, 2 * H: 3 * H]
            # tanh of g first, then one sigmoid pass over all 4H columns (g's is discarded);
            # 2 sigmoid(2z) - 1 would save a call but loses relative precision for small z
            np.tanh(g, out=tanh_g)
            sigmoid_(a)
            np.copyto(g, tanh_g)
            np.multiply(a[:, H: 2 * H], c[t], out=c[t + 1])  # f * c_prev
            np.multiply(a[:, :H], g, out=ig)  # i * g
            c[t + 1] += ig
            np.tanh(c[t + 1], out=tanh_c[t])
            if w_hr is None:
                np.multiply(a[:, 3 * H:], tanh_c[t], out=h[t + 1])
            else:
                np.multiply(a[:, 3 * H:], tanh_c[t], out=m[t])
                np.matmul(m[t], w_hr.T, out=h[t + 1])  # (B, P)
            if mask is not None:  # padded steps keep the previous state
                np.copyto(h[t + 1], h[t], where=~mask[t])
                np.copyto(c[t + 1], c[t], where=~mask[t])
                if m is not None:  # and give dW_hr = sum dh^T m nothing, not even 0 * NaN
                    np.copyto(m[t], 0.0, where=~mask[t])
    return LSTMCache(gx, h, c, tanh_c, mask, m)


def _fold_gate_derivatives(gates, c, tanh_c, chunk_elements=1 << 22):
    """Overwrite the cache with the products the backward loop multiplies by, in place.

    With s(1-s) the sigmoid's derivative and 1-g^2 tanh's, the per-step
    gradients are ``di = dc * g * i(1-i)``, ``df = dc * c_prev * f(1-f)``,
    ``dg = dc * i * (1-g^2)``, ``do = dm * tanh(c) * o(1-o)`` and
    ``dc += dm * o (1-tanh(c)^2)``; this computes those factors for all steps
    (in chunks of steps, so the temporaries stay small) and stores them where
    the activations were: the gates, ``tanh_c``, and ``f`` in ``c[:-1]`` (which
    the loop needs for ``dc_prev = dc * f``). No array of the cache's size is
    allocated, so a training step's peak memory stays close to the cache.
    """
    T, B, G = gates.shape
    H = G // GATES
    n = max(1, chunk_elements // max(B * G, 1))
    for s in range(0, T, n):
        e = min(T, s + n)
        a = gates[s:e]
        fac = np.subtract(1.0, a)  # (n, B, 4H)
        fac *= a  # s (1 - s)
        i, f, g, o = (a[..., k * H:(k + 1) * H] for k in range(GATES))
        fi, ff, fg, fo = (fac[..., k * H:(k + 1) * H] for k in range(GATES))
        np.square(g, out=fg)
        np.subtract(1.0, fg, out=fg)  # 1 - g^2
        fi *= g
        fg *= i
        ff *= c[s:e]  # c_prev
        tc = tanh_c[s:e]
        fo *= tc
        np.square(tc, out=tc)
        np.subtract(1.0, tc, out=tc)
        tc *= o  # o (1 - tanh(c)^2)
        np.copyto(c[s:e], f)
        np.copyto(a, fac)


def lstm_backward(d_output, dh_n, dc_n, cache, w_hh, w_hr=None, threads=None):
    """Backpropagate through the LSTM unroll.

    ``d_output[t]`` is the gradient of the loss at step ``t`` with respect to
    ``h_t`` (from the layer above); ``dh``/``dc`` carried between steps are
    separate, and the gradient into ``h_t`` is their sum. Per step::

        dh     = d_output[t] + dh_next
        do     = dh * tanh(c_t)
        dc     = dc_next + dh * o * (1 - tanh(c_t)^2)
        di     = dc * g;   df = dc * c_{t-1};   dg = dc * i
        dgates = [di * i(1-i), df * f(1-f), dg * (1-g^2), do * o(1-o)]
        dc_prev = dc * f;  dh_prev = dgates @ W_hh

    With a projection ``h = W_hr m``, ``m = o * tanh(c)``: the gradient
    ``dh`` (B, P) becomes ``dm = dh @ W_hr`` (B, H), which takes the place of
    ``dh`` above, and ``dW_hr = sum_t dh_t^T m_t`` (one GEMM after the loop).

    At padded steps (mask False) the carried gradients pass through
    unchanged and ``dgates`` is zero; a nonzero ``d_output[t]`` there is added
    to the carried ``dh`` (the state at a padded step is a copy of the one
    before). The layers zero ``d_output`` at padded steps.

    Parameters
    ----------
    d_output : ndarray (T, B, H) or None
    dh_n, dc_n : ndarray (B, H) or None
        Gradients entering through the final states.
    cache : LSTMCache
    w_hh : ndarray (4H, H)
    threads : rnnkit.cells.compiled.Threads, optional
        As in :func:`lstm_forward`.

    Returns
    -------
    dgates : ndarray (T, B, 4H)
        Gradient of the pre-activations; the caller turns it into ``dW_ih``,
        ``dW_hh``, the bias gradients and ``dx`` with one GEMM each. It is
        the cache's ``gates`` array, overwritten: backward consumes the cache.
    dh0, dc0 : ndarray (B, H)
    """
    gates, h, c, tanh_c, mask, m = cache
    T, B, G = gates.shape
    H = G // GATES
    dtype = gates.dtype
    P = h.shape[-1]
    dh = np.zeros((B, P), dtype) if dh_n is None else np.array(dh_n, dtype=dtype, order="C")
    dc = np.zeros((B, H), dtype) if dc_n is None else np.array(dc_n, dtype=dtype, order="C")
    kernels = None if w_hr is not None else lstm_kernels(B, H, dtype, threads, T)
    if kernels is not None:  # small steps: one compiled loop, same numbers to round-off
        kernels[1](d_output, dh, dc, gates, c, tanh_c, w_hh,
                   None if mask is None else mask[..., 0])
        return gates, dh, dc
    _fold_gate_derivatives(gates, c, tanh_c)
    # now gates = [g i(1-i) | c_prev f(1-f) | i (1-g^2) | tanh(c) o(1-o)], c[:-1] = f,
    # tanh_c = o (1 - tanh(c)^2); dgates[t] = [dc | dc | dc | dm] * gates[t]
    tmp = np.empty((B, H), dtype)
    if w_hr is not None:
        dh_all = np.empty((T, B, P), dtype)  # dL/dh_t for dW_hr
        dm = np.empty((B, H), dtype)
    for t in range(T - 1, -1, -1):
        if d_output is not None:
            dh += d_output[t]  # the caller zeroes d_output at padded steps
        a = gates[t]
        if mask is not None:
            padded = ~mask[t]  # (B, 1)
            dh_keep = dh.copy()  # what passes a padded step untouched, put back below:
            dc_keep = dc.copy()  # its rows are computed like the others but discarded, so a
            # NaN or inf in the unused activations there (an overflowing projection of
            # padding) cannot reach the gradients, as it cannot in PyTorch's packed sequences
        if w_hr is None:
            dmt = dh
        else:
            dh_all[t] = dh
            if mask is not None:  # a padded step's h is a copy: no gradient reaches W_hr
                np.copyto(dh_all[t], 0.0, where=padded)
            dmt = np.matmul(dh, w_hr, out=dm)  # (B, H)
        np.multiply(dmt, tanh_c[t], out=tmp)  # dm o (1 - tanh(c)^2)
        dc += tmp
        ifg = a[:, : 3 * H].reshape(B, 3, H)
        ifg *= dc[:, None, :]  # di, df, dg pre-activation gradients in one multiply
        a[:, 3 * H:] *= dmt  # do
        dc *= c[t]  # dc_prev = dc * f
        if mask is not None:
            np.copyto(a, 0.0, where=padded)  # dgates: zero at padded steps
        np.matmul(a, w_hh, out=dh)  # dh_prev
        if mask is not None:
            np.copyto(dh, dh_keep, where=padded)
            np.copyto(dc, dc_keep, where=padded)
    dgates = gates
    if w_hr is None:
        return dgates, dh, dc
    dw_hr = dh_all.reshape(T * B, P).T @ m.reshape(T * B, H)  # (P, H)
    return dgates, dh, dc, dw_hr
