"""The numba loops behind :mod:`rnnkit.cells.compiled` (imported only when numba is).

Everything is module level, so numba's on-disk cache finds the compiled
loops again in the next process (a function closing over other jitted
functions gets a new cache key in every process). ``sigmoid_`` and ``tanh_``
are resolved by dtype at compile time through ``numba.extending.overload``.

float32 math: NumPy's float32 ``exp`` and ``tanh`` are SIMD routines, while
libm's, called from a numba loop, are scalar and made the loop slower than
NumPy above ~100 units. For float32, ``exp`` is therefore evaluated by
Cody-Waite range reduction, the Cephes ``expf`` polynomial and an add into
the exponent bits, ``tanh`` by Cephes's odd polynomial below 0.625 and
``1 - 2 / (exp(2|x|) + 1)`` above; LLVM vectorizes every pass. Over all
float32 inputs the sigmoid is within 2.5 ulp and tanh within 1.3 ulp of the
exact values where they are normal numbers (NumPy's: 2.7 and 1.4), and both
are exactly 0, +-1 or NaN wherever NumPy's are. float64 uses libm's ``exp``
and ``tanh``.

The products keep NumPy's association order for every factor of the backward
pass (``dc * (f(1-f) * c_prev)``, not ``(dc * c_prev) * ...``), so a product
overflows here exactly when it overflows in the NumPy loop. No ``reassoc``
fast-math flag: LLVM may not reorder them either.

``error_model="numpy"``: a float division follows IEEE (inf or NaN) instead of
numba's default Python model, which tests every divisor for zero and raises
ZeroDivisionError. That test kept LLVM from vectorizing any loop holding a
division (the sigmoid's ``1 / (1 + e)``, tanh's ``2 / (e + 1)``): tanh over
4096 floats took 33 us with it and 5 us without. No divisor here can be zero
(``e >= 0``), so the numbers are the same.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload

_jit = njit(cache=True, fastmath={"contract"}, nogil=True, boundscheck=False,
            error_model="numpy")

F = np.float32
ONE, TWO, HALF, ZERO = F(1.0), F(2.0), F(0.5), F(0.0)
LOG2E, LN2_HI, LN2_LO = F(1.4426950408889634), F(0.693359375), F(-2.12194440e-4)
# exp(r) on [-ln 2 / 2, ln 2 / 2] (Cephes expf) and tanh on |x| < 0.625 (Cephes tanhf)
E0, E1, E2, E3, E4, E5 = (F(v) for v in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                         4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
T0, T1, T2, T3, T4 = (F(v) for v in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                                     1.33314422036e-1, -3.33332819422e-1))
EXP_LO = F(-86.0)  # exp's argument is clamped to [EXP_LO, EXP_HI]: 2^k stays a normal scale
EXP_HI = F(88.72284)  # above, exp overflows: NumPy's exp is inf there (sigmoid 0)
TANH_MAX = F(10.0)  # tanh(10) rounds to 1 in float32
TANH_SMALL = F(0.625)


@_jit
def exp32_(e, n, bits):
    """``e[:n] <- exp(e[:n])`` in float32, in three vectorizable passes; ``bits`` is scratch."""
    for j in range(n):
        v = min(max(e[j], EXP_LO), EXP_HI)
        k = np.floor(v * LOG2E + HALF)
        r = v - k * LN2_HI - k * LN2_LO  # v = k ln 2 + r, |r| <= ln 2 / 2
        p = ((((E0 * r + E1) * r + E2) * r + E3) * r + E4) * r + E5
        e[j] = p * (r * r) + r + ONE  # exp(r)
        bits[j] = (np.int32(k) - np.int32(1)) << 23
    ib = e.view(np.int32)
    for j in range(n):  # times 2^(k-1): add k-1 to the exponent field (k-1 <= 127)
        ib[j] += bits[j]
    for j in range(n):  # times 2: may overflow to inf, as exp itself does
        e[j] *= TWO


def sigmoid_(a, n, e, bits):
    """``a[:n] <- 1 / (1 + exp(-a[:n]))`` in place; ``e`` and ``bits`` are scratch."""
    raise NotImplementedError("compiled code only")


def tanh_(a, n, e, bits):
    """``a[:n] <- tanh(a[:n])`` in place; ``e`` and ``bits`` are scratch."""
    raise NotImplementedError("compiled code only")


@overload(sigmoid_)
def _sigmoid_impl(a, n, e, bits):
    if a.dtype == types.float32:
        def impl(a, n, e, bits):
            for j in range(n):
                e[j] = -a[j]
            exp32_(e, n, bits)
            for j in range(n):
                x = a[j]
                a[j] = x if np.isnan(x) else ONE / (ONE + e[j])  # NaN stays NaN
        return impl

    def impl64(a, n, e, bits):
        for j in range(n):
            a[j] = 1.0 / (1.0 + np.exp(-a[j]))
    return impl64


@overload(tanh_)
def _tanh_impl(a, n, e, bits):
    if a.dtype == types.float32:
        def impl(a, n, e, bits):
            for j in range(n):
                e[j] = TWO * min(abs(a[j]), TANH_MAX)
            exp32_(e, n, bits)
            for j in range(n):
                x = a[j]
                big = ONE - TWO / (e[j] + ONE)
                z = x * x
                poly = ((((T0 * z + T1) * z + T2) * z + T3) * z + T4) * z * x + x
                y = poly if abs(x) < TANH_SMALL else (big if x >= 0 else -big)
                a[j] = x if np.isnan(x) else y  # NaN stays NaN
        return impl

    def impl64(a, n, e, bits):
        for j in range(n):
            a[j] = np.tanh(a[j])
    return impl64


@_jit
def sigmoid_kernel(a, n, e, bits):
    """``sigmoid_`` callable from Python (for the tests)."""
    sigmoid_(a, n, e, bits)


@_jit
def tanh_kernel(a, n, e, bits):
    """``tanh_`` callable from Python (for the tests)."""
    tanh_(a, n, e, bits)


@_jit
def lstm_forward_loop(gx, h, c, tanh_c, w_hh_t, mask):
    """The LSTM unroll of ``lstm_forward``, in place in its cache arrays.

    ``w_hh_t`` is W_hh^T (P, 4H), C-contiguous, so ``W_hh h`` is a sum of rows
    (axpys that vectorize along 4H); ``mask`` is (T, B) bool or None.
    """
    T, B, G = gx.shape
    H = G // 4
    P = h.shape[2]
    e = np.empty(G, gx.dtype)
    bits = np.empty(G, np.int32)
    tg = np.empty(H, gx.dtype)
    for t in range(T):
        for b in range(B):
            a = gx[t, b]
            hp = h[t, b]
            k = 0
            while k + 4 <= P:  # a += W_hh h_{t-1}, four rows of W_hh^T per pass over a
                h0, h1, h2, h3 = hp[k], hp[k + 1], hp[k + 2], hp[k + 3]
                r0, r1, r2, r3 = w_hh_t[k], w_hh_t[k + 1], w_hh_t[k + 2], w_hh_t[k + 3]
                for j in range(G):
                    a[j] += h0 * r0[j] + h1 * r1[j] + h2 * r2[j] + h3 * r3[j]
                k += 4
            for kk in range(k, P):
                hk = hp[kk]
                row = w_hh_t[kk]
                for j in range(G):
                    a[j] += hk * row[j]
            for j in range(H):
                tg[j] = a[2 * H + j]
            tanh_(tg, H, e, bits)
            sigmoid_(a, G, e, bits)  # all 4H columns; g's is replaced next
            cn = c[t + 1, b]
            tc = tanh_c[t, b]
            for j in range(H):
                a[2 * H + j] = tg[j]
                cn[j] = a[H + j] * c[t, b, j] + a[j] * tg[j]
                tc[j] = cn[j]
            tanh_(tc, H, e, bits)
            hn = h[t + 1, b]
            if mask is None or mask[t, b]:
                for j in range(H):
                    hn[j] = a[3 * H + j] * tc[j]
            else:  # a padded step carries the state unchanged
                for j in range(H):
                    cn[j] = c[t, b, j]
                for j in range(P):
                    hn[j] = h[t, b, j]


@_jit
def lstm_backward_loop(d_output, dh, dc, gates, c, tanh_c, w_hh, mask, one):
    """The backward loop of ``lstm_backward``: gates become dgates; dh, dc are updated.

    ``one`` is 1 in the arrays' dtype (so no product is promoted to float64).
    """
    T, B, G = gates.shape
    H = G // 4
    dh_prev = np.empty(H, gates.dtype)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            a = gates[t, b]
            if d_output is not None:
                for j in range(H):
                    dh[b, j] += d_output[t, b, j]
            if mask is not None and not mask[t, b]:  # padded: the gradients pass untouched
                for j in range(G):
                    a[j] = 0.0
                continue
            for j in range(H):
                dhj = dh[b, j]
                i = a[j]
                fg = a[H + j]
                g = a[2 * H + j]
                o = a[3 * H + j]
                tc = tanh_c[t, b, j]
                dct = dc[b, j] + dhj * ((one - tc * tc) * o)
                a[j] = dct * (i * (one - i) * g)
                a[H + j] = dct * (fg * (one - fg) * c[t, b, j])
                a[2 * H + j] = dct * ((one - g * g) * i)
                a[3 * H + j] = dhj * (o * (one - o) * tc)
                dc[b, j] = dct * fg
            for k in range(H):
                dh_prev[k] = 0.0
            r = 0
            while r + 4 <= G:  # dh_prev = dgates @ W_hh, four rows per pass
                s0, s1, s2, s3 = a[r], a[r + 1], a[r + 2], a[r + 3]
                w0, w1, w2, w3 = w_hh[r], w_hh[r + 1], w_hh[r + 2], w_hh[r + 3]
                for k in range(H):
                    dh_prev[k] += s0 * w0[k] + s1 * w1[k] + s2 * w2[k] + s3 * w3[k]
                r += 4
            for k in range(H):
                dh[b, k] = dh_prev[k]
