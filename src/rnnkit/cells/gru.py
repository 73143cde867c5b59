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
    """
    T, B, G = gx.shape
    H = G // GATES
    dtype = gx.dtype
    h = np.empty((T + 1, B, H), dtype)
    hn = np.empty((T, B, H), dtype)
    h[0] = h0
    w_hh_T = w_hh.T  # (H, 3H), a view: BLAS reads it transposed
    gh = np.empty((B, G), dtype)
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


def _fold_gate_derivatives(gates, h, hn, chunk_elements=1 << 22):
    """Overwrite the cache with the factors the backward loop multiplies by, in place.

    Per step ``dn_pre = dh * (1-n^2)(1-z)``, ``dz_pre = dh * (h_{t-1} - n) z(1-z)``
    and ``dr_pre = dn_pre * (W_hn h_{t-1} + b_hn) r(1-r)``. This stores
    ``(1-n^2)(1-z)`` over ``n`` and ``(W_hn h + b_hn) r(1-r)`` over ``hn``, and
    returns ``(h_{t-1} - n) z(1-z)`` as the one new (T, B, H) array; ``r`` and
    ``z`` stay, since the loop needs them too. Chunks of steps keep the
    temporaries small.
    """
    T, B, G = gates.shape
    H = G // GATES
    pz = np.empty((T, B, H), gates.dtype)
    n_steps = max(1, chunk_elements // max(B * H, 1))
    for s in range(0, T, n_steps):
        e = min(T, s + n_steps)
        r, z, n = (gates[s:e, :, k * H:(k + 1) * H] for k in range(GATES))
        zz = np.subtract(1.0, z)  # 1 - z
        np.subtract(h[s:e], n, out=pz[s:e])  # h_{t-1} - n
        pz[s:e] *= zz
        pz[s:e] *= z
        np.square(n, out=n)
        np.subtract(1.0, n, out=n)
        n *= zz  # (1 - n^2)(1 - z)
        np.subtract(1.0, r, out=zz)
        zz *= r
        hn[s:e] *= zz  # (W_hn h + b_hn) r (1 - r)
    return pz


def gru_backward(d_output, dh_n, cache, w_hh):
    """Backpropagate through the GRU unroll.

    Per step, with ``dh = d_output[t] + dh_next``::

        dn     = dh * (1 - z);         dn_pre = dn * (1 - n^2)
        dz_pre = dh * (h_{t-1} - n) * z (1 - z)
        dr_pre = dn_pre * (W_hn h_{t-1} + b_hn) * r (1 - r)
        dgx    = [dr_pre | dz_pre | dn_pre]          (input side)
        dgh    = [dr_pre | dz_pre | dn_pre * r]      (recurrent side)
        dh_prev = dgh @ W_hh + dh * z

    The backward consumes the cache: ``dgx`` is written over the gates and
    the n block of ``dgh`` over ``hn`` (its r and z blocks equal ``dgx``'s),
    so a training step allocates one (T, B, H) array beyond the cache.

    Parameters
    ----------
    d_output : ndarray (T, B, H) or None
        Per-step upstream gradient (zero at padded steps).
    dh_n : ndarray (B, H) or None
    cache : GRUCache
    w_hh : ndarray (3H, H)

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
    pz = _fold_gate_derivatives(gates, h, hn)
    w_rz, w_n = w_hh[: 2 * H], w_hh[2 * H:]
    dh = np.zeros((B, H), dtype) if dh_n is None else np.array(dh_n, dtype=dtype)
    dhz = np.empty((B, H), dtype)
    dr = np.empty((B, H), dtype)
    tmp = np.empty((B, H), dtype)
    for t in range(T - 1, -1, -1):
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
        np.multiply(dh, pz[t], out=z)  # dz_pre
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
