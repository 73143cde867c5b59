"""Optional compiled time loops (numba) for small LSTM steps, and when to use them.

At small sizes (B*H of a few hundred units) a NumPy step is dominated by the
cost of calling ~20 ufuncs and two GEMMs per step (about 1 us each), not by
arithmetic. These loops run the whole unroll and its backward pass as one
compiled function: the same equations as :mod:`rnnkit.cells.lstm`, the same
cache layout, so either path's backward consumes either path's forward. The
NumPy loops stay the reference; the two agree to round-off (the recurrent
sums run in a different order, and ``exp``/``tanh`` are evaluated here, see
``_build``), which the tests check.

Used only when numba is installed (``pip install "rnnkit[fast]"``), the step
is small (``B * H <= RNNKIT_COMPILED_MAX_UNITS``, default 256: measured
faster than the NumPy loop up to there; at B=1, H=512 the compiled
matrix-vector product reads W_hh^T from memory at each step and NumPy's BLAS
was 1.4x (training) to 2.5x (inference) faster) and the environment variable ``RNNKIT_COMPILED`` is not ``0``.
The matrix products are plain loops here (no second BLAS thread pool next to
NumPy's); there is no projection (``proj_size``) variant.

Reference: numba (Lam, Pitrou & Seibert, 2015), https://numba.pydata.org.
"""

from __future__ import annotations

import os

import numpy as np

DEFAULT_MAX_UNITS = 256

_kernels = {}  # dtype name -> the compiled (forward, backward) loops, built on first use

# exp(r) on [-ln 2 / 2, ln 2 / 2] (Cephes expf) and tanh on |x| < 0.625 (Cephes tanhf)
_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
             1.6666665459e-1, 5.0000001201e-1)
_TANH_POLY = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1,
              -3.33332819422e-1)


def _build(numba, dtype):
    """Compile the loops for one dtype; float32 gets vectorizable sigmoid and tanh.

    NumPy's float32 ``exp`` and ``tanh`` are SIMD routines; inside a numba loop
    libm's are scalar, which made the loop slower than NumPy above ~100 units.
    For float32 the loops therefore evaluate ``exp`` by Cody-Waite range
    reduction, the Cephes polynomial and an exponent-bit add (LLVM vectorizes
    all three passes), and ``tanh`` by Cephes's odd polynomial below 0.625 and
    ``1 - 2 / (exp(2|x|) + 1)`` above: within 2.3 ulp of the exact sigmoid and
    1.3 ulp of the exact tanh over the whole float32 range (NumPy's: 2.7 and
    1.4), checked by the tests. float64 uses libm's ``exp`` and ``tanh``.
    """
    jit = numba.njit(cache=True, fastmath={"reassoc", "contract"}, nogil=True,
                     boundscheck=False)
    f = np.dtype(dtype).type
    one, two, half = f(1.0), f(2.0), f(0.5)
    log2e, ln2_hi, ln2_lo = f(1.4426950408889634), f(0.693359375), f(-2.12194440e-4)
    e0, e1, e2, e3, e4, e5 = (f(v) for v in _EXP_POLY)
    t0, t1, t2, t3, t4 = (f(v) for v in _TANH_POLY)
    lo, hi, tmax, small = f(-86.0), f(88.0), f(10.0), f(0.625)  # tanh(10) rounds to 1
    zero, under = f(0.0), f(-88.72284)  # below, NumPy's exp(-x) is inf and its sigmoid 0

    if np.dtype(dtype) == np.float32:
        @jit
        def exp_scaled_(e, n, bits):
            """e[:n] <- exp(e[:n]) (clamped to the normal range), in three vector passes."""
            for j in range(n):
                v = min(max(e[j], lo), hi)
                k = np.floor(v * log2e + half)
                r = v - k * ln2_hi - k * ln2_lo  # Cody-Waite: v = k ln 2 + r
                p = ((((e0 * r + e1) * r + e2) * r + e3) * r + e4) * r + e5
                e[j] = p * (r * r) + r + one  # exp(r)
                bits[j] = np.int32(k) << 23
            ib = e.view(np.int32)
            for j in range(n):  # times 2^k: add k to the exponent field
                ib[j] += bits[j]

        @jit
        def sigmoid_(a, n, e, bits):
            for j in range(n):
                e[j] = -a[j]
            exp_scaled_(e, n, bits)
            for j in range(n):
                x = a[j]
                y = zero if x < under else one / (one + e[j])  # 0 where exp(-x) overflows
                a[j] = x if np.isnan(x) else y  # NaN stays NaN

        @jit
        def tanh_(a, n, e, bits):
            for j in range(n):
                e[j] = two * min(abs(a[j]), tmax)
            exp_scaled_(e, n, bits)
            for j in range(n):
                x = a[j]
                big = one - two / (e[j] + one)
                z = x * x
                poly = ((((t0 * z + t1) * z + t2) * z + t3) * z + t4) * z * x + x
                y = poly if abs(x) < small else (big if x >= 0 else -big)
                a[j] = x if np.isnan(x) else y  # NaN stays NaN
    else:
        @jit
        def sigmoid_(a, n, e, bits):
            for j in range(n):
                a[j] = one / (one + np.exp(-a[j]))

        @jit
        def tanh_(a, n, e, bits):
            for j in range(n):
                a[j] = np.tanh(a[j])

    @jit
    def lstm_forward_loop(gx, h, c, tanh_c, w_hh_t, mask):
        """w_hh_t: W_hh^T (P, 4H), contiguous: the product is rows of axpys (vectorized)."""
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

    @jit
    def lstm_backward_loop(d_output, dh, dc, gates, c, tanh_c, w_hh, mask):
        T, B, G = gates.shape
        H = G // 4
        dh_prev = np.empty(H, gates.dtype)
        for t in range(T - 1, -1, -1):
            for b in range(B):
                a = gates[t, b]
                if mask is not None and not mask[t, b]:  # padded: gradients pass untouched
                    for j in range(G):
                        a[j] = 0.0
                    continue
                for j in range(H):
                    dhj = dh[b, j]
                    if d_output is not None:
                        dhj += d_output[t, b, j]
                    i = a[j]
                    fg = a[H + j]
                    g = a[2 * H + j]
                    o = a[3 * H + j]
                    tc = tanh_c[t, b, j]
                    dct = dc[b, j] + dhj * o * (one - tc * tc)
                    a[j] = dct * g * i * (one - i)
                    a[H + j] = dct * c[t, b, j] * fg * (one - fg)
                    a[2 * H + j] = dct * i * (one - g * g)
                    a[3 * H + j] = dhj * tc * o * (one - o)
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

    return lstm_forward_loop, lstm_backward_loop, sigmoid_, tanh_


def _numba_kernels(dtype):
    """The compiled loops for ``dtype`` (numba caches them on disk); None without numba."""
    name = np.dtype(dtype).name
    if name not in _kernels:
        try:
            import numba
        except ImportError:
            _kernels[name] = None
        else:
            _kernels[name] = _build(numba, dtype)
    return _kernels[name]


def max_units():
    """The largest ``B * H`` the compiled loops take (``RNNKIT_COMPILED_MAX_UNITS``)."""
    value = os.environ.get("RNNKIT_COMPILED_MAX_UNITS", "")
    try:
        return int(value) if value else DEFAULT_MAX_UNITS
    except ValueError:
        raise ValueError(f"RNNKIT_COMPILED_MAX_UNITS must be an integer, got {value!r}") from None


def lstm_kernels(B, H, dtype):
    """The compiled (forward, backward) loops if they should run this step, else None.

    Parameters
    ----------
    B, H : int
        Batch size and hidden size of the step.
    dtype : numpy dtype
        float32 or float64 (others stay on the NumPy path).
    """
    if os.environ.get("RNNKIT_COMPILED", "1") == "0":
        return None
    if B * H > max_units() or np.dtype(dtype) not in (np.float32, np.float64):
        return None
    k = _numba_kernels(dtype)
    return None if k is None else k[:2]


def available():
    """True when numba is installed, so the compiled loops can run."""
    return _numba_kernels(np.float64) is not None
