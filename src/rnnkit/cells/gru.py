"""GRU: the unroll over time and its exact backward pass, side by side.

Equations (PyTorch's ``torch.nn.GRU``, gate order r, z, n)::

    r_t = sigma(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = sigma(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh (W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

This is PyTorch's (and cuDNN's) variant: the reset gate multiplies
``W_hn h + b_hn``, not ``h`` before the product as in Cho et al. (2014); Keras
calls it ``reset_after=True``. The caller computes the projected input
``gx = x W_ih^T + b_ih + [b_hr | b_hz | 0]`` of shape (T, B, 3H) in one GEMM;
``b_hn`` stays inside the reset product.

References
----------
Cho et al. (2014), Learning phrase representations using RNN encoder-decoder
for statistical machine translation. Checked against ``torch.nn.GRU``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import _workspace as workspace
from ._chunks import steps_per_chunk
from .compiled import gemm_weight, gru_step_kernel
from .lstm import sigmoid_

GATES = 3


class GRUCache(NamedTuple):
    """What the forward pass keeps.

    Attributes
    ----------
    gates : ndarray (T, B, 3H)
        Post-activation ``[r | z | n]``.
    h : ndarray (T+1, B, H)
        Hidden states; ``h[0]`` is the initial state.
    hn : ndarray (T, B, H)
        ``W_hn h_{t-1} + b_hn``, needed for the reset gate's gradient.
    mask : ndarray (T, B, 1) of bool or None
    """

    gates: np.ndarray
    h: np.ndarray
    hn: np.ndarray
    mask: np.ndarray | None

    @property
    def r(self):
        return self.gates[..., : self.h.shape[-1]]

    @property
    def z(self):
        H = self.h.shape[-1]
        return self.gates[..., H: 2 * H]

    @property
    def n(self):
        return self.gates[..., 2 * self.h.shape[-1]:]


def gru_forward(gx, h0, w_hh, b_hn, mask=None):
    """Run the GRU over T steps.

    Parameters
    ----------
    gx : ndarray (T, B, 3H)
        Projected input ``x W_ih^T + b_ih + [b_hr | b_hz | 0]``; overwritten
        with the gate activations.
    h0 : ndarray (B, H)
    w_hh : ndarray (3H, H)
    b_hn : ndarray (H,) or None
        The n-block of ``bias_hh`` (None when the layer has no bias).
    mask : ndarray (T, B, 1) of bool, optional

    Returns
    -------
    GRUCache

    Notes
    -----
    Each step is NumPy's GEMM ``h_{t-1} W_hh^T`` and then, with numba (and
    float32/float64, a C-contiguous ``gx``), one compiled call for all of the
    step's elementwise work (``gru_forward_step`` of
    :mod:`rnnkit.cells._compiled_kernels`), else the NumPy ufuncs below: the
    same equations and cache, equal to round-off. Against the ufuncs (session
    10, float32, 2 threads): inference 0.40x at B = 32, H = 32, 0.50x at B =
    1, H = 128, 0.64-0.75x at H = 128, 0.70x at B = 32, H = 512, 0.87x at B =
    128, H = 1024; training 0.84-0.91x. ``RNNKIT_COMPILED=0`` turns it off.
    """
    T, B, G = gx.shape
    H = G // GATES
    dtype = gx.dtype
    h = workspace.empty((T + 1, B, H), dtype)  # reused buffers: no page faults per pass
    hn = workspace.empty((T, B, H), dtype)
    h[0] = h0
    w_hh_T = gemm_weight(w_hh, B, T)  # (H, 3H): a contiguous copy, or W_hh read transposed
    gh = np.empty((B, G), dtype)
    step = gru_step_kernel(dtype) if gx.flags.c_contiguous else None
    if step is not None:  # NumPy's GEMM, then one compiled call for the elementwise work
        if b_hn is not None:
            b_hn = np.ascontiguousarray(b_hn, dtype=dtype)
        for t in range(T):
            np.matmul(h[t], w_hh_T, out=gh)
            step(gx[t], gh, b_hn, hn[t], h[t], h[t + 1], None if mask is None else mask[t, :, 0])
        return GRUCache(gx, h, hn, mask)
    tmp = np.empty((B, H), dtype)
    with np.errstate(over="ignore"):
        for t in range(T):
            a = gx[t]  # (B, 3H)
            np.matmul(h[t], w_hh_T, out=gh)
            rz = a[:, : 2 * H]
            rz += gh[:, : 2 * H]
            sigmoid_(rz)
            if b_hn is None:
                np.copyto(hn[t], gh[:, 2 * H:])
            else:
                np.add(gh[:, 2 * H:], b_hn, out=hn[t])
            n = a[:, 2 * H:]
            np.multiply(a[:, :H], hn[t], out=tmp)  # r * (W_hn h + b_hn)
            n += tmp
            np.tanh(n, out=n)
            np.subtract(h[t], n, out=tmp)  # h = n + z (h_prev - n)
            tmp *= a[:, H: 2 * H]
            np.add(n, tmp, out=h[t + 1])
            if mask is not None:
                np.copyto(h[t + 1], h[t], where=~mask[t])
    return GRUCache(gx, h, hn, mask)


def _fold_gate_derivatives(gates, h, hn, pz, zz):
    """Overwrite one chunk of the cache with the factors the backward loop multiplies by.

    For the steps of the chunk, ``dn_pre = dh * (1-n^2)(1-z)``,
    ``dz_pre = dh * (h_{t-1} - n) z(1-z)`` and
    ``dr_pre = dn_pre * (W_hn h_{t-1} + b_hn) r(1-r)``. This stores
    ``(1-n^2)(1-z)`` over ``n``, ``(W_hn h + b_hn) r(1-r)`` over ``hn`` and
    ``(h_{t-1} - n) z(1-z)`` in ``pz``; ``r`` and ``z`` stay, since the loop
    needs them too.

    Parameters
    ----------
    gates : ndarray (k, B, 3H)
        ``[r | z | n]`` of the chunk's steps; the n block is overwritten.
    h : ndarray (k, B, H)
        ``h_{t-1}`` of the chunk's steps (``cache.h[s:e]``).
    hn : ndarray (k, B, H)
        ``W_hn h_{t-1} + b_hn`` of the chunk's steps; overwritten.
    pz : ndarray (k, B, H)
        Receives ``(h_{t-1} - n) z(1-z)``.
    zz : ndarray (k, B, H)
        Scratch.
    """
    H = gates.shape[-1] // GATES
    r, z, n = (gates[..., j * H:(j + 1) * H] for j in range(GATES))
    np.subtract(1.0, z, out=zz)  # 1 - z
    np.subtract(h, n, out=pz)  # h_{t-1} - n
    pz *= zz
    pz *= z
    np.square(n, out=n)
    np.subtract(1.0, n, out=n)
    n *= zz  # (1 - n^2)(1 - z)
    np.subtract(1.0, r, out=zz)
    zz *= r
    hn *= zz  # (W_hn h + b_hn) r (1 - r)


def gru_backward(d_output, dh_n, cache, w_hh, chunk_steps=None):
    """Backpropagate through the GRU unroll.

    Per step, with ``dh = d_output[t] + dh_next``::

        dn     = dh * (1 - z);         dn_pre = dn * (1 - n^2)
        dz_pre = dh * (h_{t-1} - n) * z (1 - z)
        dr_pre = dn_pre * (W_hn h_{t-1} + b_hn) * r (1 - r)
        dgx    = [dr_pre | dz_pre | dn_pre]          (input side)
        dgh    = [dr_pre | dz_pre | dn_pre * r]      (recurrent side)
        dh_prev = dgh @ W_hh + dh * z

    and at a padded step (mask False) ``dgx = dgh = 0`` and ``dh_prev = dh``.

    The backward consumes the cache: ``dgx`` is written over the gates and
    the n block of ``dgh`` over ``hn`` (its r and z blocks equal ``dgx``'s).
    The loop walks back in chunks of ``k`` steps, folding the gate
    derivatives of a chunk (:func:`_fold_gate_derivatives`) just before its
    steps, so the only arrays beyond the cache are two (k, B, H) buffers.

    Parameters
    ----------
    d_output : ndarray (T, B, H) or None
        Per-step upstream gradient (zero at padded steps).
    dh_n : ndarray (B, H) or None
    cache : GRUCache
    w_hh : ndarray (3H, H)
    chunk_steps : int or None
        Steps per chunk (see :func:`rnnkit.cells._chunks.steps_per_chunk`);
        None chooses it from B and H.

    Returns
    -------
    dgx : ndarray (T, B, 3H)
        Gradient of the input-side pre-activations (for ``W_ih``, ``b_ih``,
        ``x``); its first 2H columns are also the r, z blocks of ``dgh``.
    dgh_n : ndarray (T, B, H)
        ``dn_pre * r``: the n block of the gradient of ``W_hh h_{t-1} + b_hh``.
    dh0 : ndarray (B, H)
    """
    gates, h, hn, mask = cache
    T, B, G = gates.shape
    H = G // GATES
    dtype = gates.dtype
    k = steps_per_chunk(T, B, H, chunk_steps)
    pz_buf = np.empty((k, B, H), dtype)  # (h_{t-1} - n) z (1 - z) of a chunk
    zz_buf = np.empty((k, B, H), dtype)  # scratch of the fold
    w_rz, w_n = w_hh[: 2 * H], w_hh[2 * H:]
    dh = np.zeros((B, H), dtype) if dh_n is None else np.array(dh_n, dtype=dtype)
    dhz = np.empty((B, H), dtype)
    dr = np.empty((B, H), dtype)
    tmp = np.empty((B, H), dtype)
    for e in range(T, 0, -k):  # the chunk of steps s .. e-1
        s = max(e - k, 0)
        pz = pz_buf[: e - s]
        _fold_gate_derivatives(gates[s:e], h[s:e], hn[s:e], pz, zz_buf[: e - s])
        for t in range(e - 1, s - 1, -1):
            if d_output is not None:
                dh += d_output[t]
            a = gates[t]
            r, z, n = a[:, :H], a[:, H: 2 * H], a[:, 2 * H:]
            if mask is not None:
                m = mask[t]
                dh_keep = np.where(m, 0.0, dh)
                dh *= m
            n *= dh  # dn_pre
            np.multiply(dh, z, out=dhz)  # the direct path h_{t-1} -> h_t
            np.multiply(dh, pz[t - s], out=z)  # dz_pre
            np.multiply(n, hn[t], out=dr)  # dr_pre
            np.multiply(n, r, out=hn[t])  # dn_pre * r (dgh's n block)
            np.copyto(r, dr)
            np.matmul(a[:, : 2 * H], w_rz, out=dh)  # dh_prev = dgh @ W_hh + dh * z
            np.matmul(hn[t], w_n, out=tmp)
            dh += tmp
            dh += dhz
            if mask is not None:
                dh += dh_keep
    return gates, hn, dh
