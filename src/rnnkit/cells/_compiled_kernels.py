"""The numba loops behind :mod:`rnnkit.cells.compiled` (imported only when numba is).

Everything is module level, so numba's on-disk cache finds the compiled
loops again in the next process (a function closing over other jitted
functions gets a new cache key in every process). ``sigmoid`` and ``tanh``
take one number and are resolved by dtype at compile time through
``numba.extending.overload``; a loop that calls them on each element
vectorizes whole (LLVM inlines them).

float32 math: NumPy's float32 ``exp`` and ``tanh`` are SIMD routines, while
libm's, called from a numba loop, are scalar and made the loop slower than
NumPy above ~100 units. For float32, ``exp`` is therefore evaluated by
Cody-Waite range reduction, the Cephes ``expf`` polynomial and a product
with ``2^k`` built from its exponent bits (a bitcast, ``_f32_from_bits``),
``tanh`` by Cephes's odd polynomial below 0.625 and ``1 - 2 / (exp(2|x|) +
1)`` above: straight-line code, with no pass through memory. Over all
float32 inputs the sigmoid is within 2.5 ulp and tanh within 1.3 ulp of the
exact values where they are normal numbers (NumPy's: 2.7 and 1.4), and both
are exactly 0, +-1 or NaN wherever NumPy's are. tanh is also +-1 for 9.01 <=
|x| < 10, where NumPy's float32 tanh gives 0.99999994 and the correctly
rounded value (and PyTorch's) is 1: there ``1 - tanh(c)^2`` is 0 in the
compiled backward pass and 1.2e-7 in the NumPy loop's. float64 uses libm's
``exp`` and ``tanh``.

Loops count from 0 (``range(n)``, on a slice where the work starts further
on): a ``range(start, stop)`` loop does not vectorize in numba 0.68 (10x
slower on the sigmoid).

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

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload, register_jitable

from . import _blas

_OPTIONS = {"fastmath": {"contract"}, "nogil": True, "boundscheck": False,
            "error_model": "numpy"}


def _jit(fn):
    """``njit`` with the on-disk cache; without it where numba finds no writable cache
    folder (a read-only install, no home): the loops then compile in every process."""
    try:
        return njit(cache=True, **_OPTIONS)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(cache=False, **_OPTIONS)(fn)


def jit_disabled():
    """True under ``NUMBA_DISABLE_JIT=1``: the float32 math below exists only compiled."""
    from numba import config

    return bool(config.DISABLE_JIT)

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


@intrinsic
def _f32_from_bits(typingctx, i):
    """The float32 whose bit pattern is the int32 ``i`` (an LLVM bitcast: no instruction)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@njit(**_OPTIONS)
def _exp32(x):
    """``exp(x)`` in float32: one expression, so a loop calling it vectorizes whole."""
    v = min(max(x, EXP_LO), EXP_HI)
    k = np.floor(v * LOG2E + HALF)
    r = v - k * LN2_HI - k * LN2_LO  # v = k ln 2 + r, |r| <= ln 2 / 2
    p = ((((E0 * r + E1) * r + E2) * r + E3) * r + E4) * r + E5
    q = p * (r * r) + r + ONE  # exp(r)
    # times 2^(k-1), built from its exponent bits (k-1 <= 127), then times 2: this last
    # product may overflow to inf, as exp itself does; both products are exact otherwise
    return TWO * (q * _f32_from_bits((np.int32(k) + np.int32(126)) << 23))


def sigmoid(x):
    """``1 / (1 + exp(-x))`` of one number, float32 or float64 (compiled code only)."""
    raise NotImplementedError("compiled code only")


def tanh(x):
    """``tanh(x)`` of one number, float32 or float64 (compiled code only)."""
    raise NotImplementedError("compiled code only")


@overload(sigmoid)
def _sigmoid_impl(x):
    if x == types.float32:
        def impl(x):
            y = ONE / (ONE + _exp32(-x))
            return x if np.isnan(x) else y  # NaN stays NaN
        return impl
    return lambda x: 1.0 / (1.0 + np.exp(-x))


@overload(tanh)
def _tanh_impl(x):
    if x == types.float32:
        def impl(x):
            big = ONE - TWO / (_exp32(TWO * min(abs(x), TANH_MAX)) + ONE)
            z = x * x
            poly = ((((T0 * z + T1) * z + T2) * z + T3) * z + T4) * z * x + x
            y = poly if abs(x) < TANH_SMALL else (big if x >= 0 else -big)
            # NaN stays NaN; -0 stays -0 (the polynomial's sum gives +0)
            return x if np.isnan(x) or x == ZERO else y
        return impl
    return lambda x: np.tanh(x)


@_jit
def sigmoid_kernel(a):
    """``a <- sigmoid(a)`` in place, for a 1-D array (callable from Python, for the tests)."""
    for j in range(a.shape[0]):
        a[j] = sigmoid(a[j])


@_jit
def tanh_kernel(a):
    """``a <- tanh(a)`` in place, for a 1-D array (callable from Python, for the tests)."""
    for j in range(a.shape[0]):
        a[j] = tanh(a[j])


@_jit
def transpose_into(src, dst):
    """``dst <- src.T`` for a (n, m) ``src`` and a (m, n) ``dst``, in 8 x 8 tiles.

    NumPy's copy of a transposed (4096, 1024) float32 W_hh takes 30-60 ms on
    the project's machine, this 3-4 ms (and 22 us against 40 at (512, 128)):
    a tile's reads stay in cache lines already loaded, and its fixed 8 x 8
    loops unroll into shuffles.
    """
    n, m = src.shape
    n8 = n - n % 8
    m8 = m - m % 8
    for i0 in range(0, n8, 8):
        for j0 in range(0, m8, 8):
            s = src[i0:i0 + 8, j0:j0 + 8]
            d = dst[j0:j0 + 8, i0:i0 + 8]
            for j in range(8):
                for i in range(8):
                    d[j, i] = s[i, j]
    for i in range(n8, n):  # the edges: rows, then columns, past the last full tile
        for j in range(m):
            dst[j, i] = src[i, j]
    for i in range(n8):
        for j in range(m8, m):
            dst[j, i] = src[i, j]


@_jit
def gemm_acc_(out, x, w):
    """``out += x @ w`` for C-contiguous (B, N), (B, K), (K, N) arrays.

    Four rows of ``x`` at a time, so each row of ``w`` read from the cache
    serves four output rows (at H = 128, W_hh^T is 256 KiB and a row-at-a-time
    product streams it from L2 once per row); along ``N`` the loops vectorize.
    Every element is summed in the same order, one product after another
    (``out + x_0 w_0 + x_1 w_1 + ...``, as BLAS kernels accumulate, so a sum
    that overflows does so as it would there), whatever row block it falls
    in: the result does not depend on the batch size or on a row's position.
    """
    B, K = x.shape
    N = w.shape[1]
    b = 0
    while b + 4 <= B:
        o0, o1, o2, o3 = out[b], out[b + 1], out[b + 2], out[b + 3]
        x0, x1, x2, x3 = x[b], x[b + 1], x[b + 2], x[b + 3]
        k = 0
        while k + 4 <= K:
            w0, w1, w2, w3 = w[k], w[k + 1], w[k + 2], w[k + 3]
            s00, s01, s02, s03 = x0[k], x0[k + 1], x0[k + 2], x0[k + 3]
            s10, s11, s12, s13 = x1[k], x1[k + 1], x1[k + 2], x1[k + 3]
            s20, s21, s22, s23 = x2[k], x2[k + 1], x2[k + 2], x2[k + 3]
            s30, s31, s32, s33 = x3[k], x3[k + 1], x3[k + 2], x3[k + 3]
            for j in range(N):
                v0, v1, v2, v3 = w0[j], w1[j], w2[j], w3[j]
                o0[j] = (((o0[j] + s00 * v0) + s01 * v1) + s02 * v2) + s03 * v3
                o1[j] = (((o1[j] + s10 * v0) + s11 * v1) + s12 * v2) + s13 * v3
                o2[j] = (((o2[j] + s20 * v0) + s21 * v1) + s22 * v2) + s23 * v3
                o3[j] = (((o3[j] + s30 * v0) + s31 * v1) + s32 * v2) + s33 * v3
            k += 4
        for kk in range(k, K):
            wk = w[kk]
            s0, s1, s2, s3 = x0[kk], x1[kk], x2[kk], x3[kk]
            for j in range(N):
                v = wk[j]
                o0[j] += s0 * v
                o1[j] += s1 * v
                o2[j] += s2 * v
                o3[j] += s3 * v
        b += 4
    for bb in range(b, B):
        o = out[bb]
        xb = x[bb]
        k = 0
        while k + 4 <= K:
            w0, w1, w2, w3 = w[k], w[k + 1], w[k + 2], w[k + 3]
            s0, s1, s2, s3 = xb[k], xb[k + 1], xb[k + 2], xb[k + 3]
            for j in range(N):
                o[j] = (((o[j] + s0 * w0[j]) + s1 * w1[j]) + s2 * w2[j]) + s3 * w3[j]
            k += 4
        for kk in range(k, K):
            wk = w[kk]
            s = xb[kk]
            for j in range(N):
                o[j] += s * wk[j]


@njit(**_OPTIONS)
def _lstm_row(a, c_prev, c_next, tanh_c, h_prev, h_next, valid):
    """One batch row of a step: ``a`` (4H,) pre-activations become the gates i, f, g, o.

    Then ``c_next = f c_prev + i g``, ``tanh_c = tanh(c_next)``, ``h_next = o
    tanh_c``; a padded row (``valid`` False) carries ``c_prev`` and ``h_prev``.
    Each loop is one expression per element and vectorizes.
    """
    H = a.shape[0] // 4
    # every loop counts from 0: numba's range(start, stop) keeps LLVM from vectorizing
    for j in range(2 * H):
        a[j] = sigmoid(a[j])
    g = a[2 * H:]
    for j in range(H):
        g[j] = tanh(g[j])
    o = a[3 * H:]
    for j in range(H):
        o[j] = sigmoid(o[j])
    for j in range(H):  # one array written per loop, so that each vectorizes
        c_next[j] = a[H + j] * c_prev[j] + a[j] * g[j]
    for j in range(H):
        tanh_c[j] = tanh(c_next[j])
    if valid:
        for j in range(H):
            h_next[j] = o[j] * tanh_c[j]
    else:  # a padded step carries the state unchanged
        for j in range(H):
            c_next[j] = c_prev[j]
        for j in range(h_next.shape[0]):
            h_next[j] = h_prev[j]


@_jit
def lstm_forward_loop(gx, h, c, tanh_c, w_hh_t, mask):
    """The LSTM unroll of ``lstm_forward``, in place in its cache arrays.

    ``w_hh_t`` is W_hh^T (P, 4H), C-contiguous, so ``h W_hh^T`` is a sum of
    rows (axpys that vectorize along 4H); ``mask`` is (T, B) bool or None.
    """
    T, B, _ = gx.shape
    for t in range(T):
        gemm_acc_(gx[t], h[t], w_hh_t)  # pre-activations += h_{t-1} W_hh^T
        for b in range(B):
            _lstm_row(gx[t, b], c[t, b], c[t + 1, b], tanh_c[t, b], h[t, b], h[t + 1, b],
                      mask is None or mask[t, b])


@_jit
def lstm_backward_loop(d_output, dh, dc, gates, c, tanh_c, w_hh, mask, one):
    """The backward loop of ``lstm_backward``: gates become dgates; dh, dc are updated.

    Each step is ``lstm_backward_step`` followed by ``dh_prev = dgates @ W_hh``
    (``gemm_acc_``). ``one`` is 1 in the arrays' dtype (so no product is
    promoted to float64).
    """
    T, B, G = gates.shape
    H = G // 4
    dh_prev = np.empty((B, H), gates.dtype)
    keep = np.empty((B, H), gates.dtype)
    for t in range(T - 1, -1, -1):
        if d_output is None:
            if mask is None:
                lstm_backward_step(None, dh, dh, dc, gates[t], c[t], tanh_c[t], None, keep, one)
            else:
                lstm_backward_step(None, dh, dh, dc, gates[t], c[t], tanh_c[t], mask[t], keep,
                                   one)
        elif mask is None:
            lstm_backward_step(d_output[t], dh, dh, dc, gates[t], c[t], tanh_c[t], None, keep,
                               one)
        else:
            lstm_backward_step(d_output[t], dh, dh, dc, gates[t], c[t], tanh_c[t], mask[t], keep,
                               one)
        dh_prev[:] = 0.0
        gemm_acc_(dh_prev, gates[t], w_hh)  # dh_prev = dgates @ W_hh
        for b in range(B):
            if mask is None or mask[t, b]:  # a padded row keeps its dh
                for k in range(H):
                    dh[b, k] = dh_prev[b, k]


@_jit
def lstm_forward_step(a2, gh, bias, c_prev, c_next, tanh_c_t, h_prev, h_next, mask_t):
    """One step of ``lstm_forward`` after its GEMM: all of the step's elementwise work.

    ``a2`` (B, 4H) holds ``gx[t]`` and becomes the gates; ``gh`` (B, 4H) is
    ``h_{t-1} W_hh^T`` from NumPy's BLAS, in either memory order; ``bias``
    (4H,) or None is added first, ``(gx + bias) + gh`` as in the NumPy loop;
    ``mask_t`` is (B,) bool or None. Row by row, two passes over the row's
    gates (the sum, then ``_lstm_row``), while the row is in cache.
    """
    B, G = a2.shape
    for b in range(B):
        a = a2[b]
        ghb = gh[b]
        if bias is None:
            for j in range(G):
                a[j] += ghb[j]
        else:
            for j in range(G):
                a[j] = (a[j] + bias[j]) + ghb[j]
        _lstm_row(a, c_prev[b], c_next[b], tanh_c_t[b], h_prev[b], h_next[b],
                  mask_t is None or mask_t[b])


@_jit
def gru_forward_step(a2, gh, b_hn, hn_t, h_prev, h_next, mask_t):
    """One step of ``gru_forward`` after its GEMM ``gh = h_{t-1} W_hh^T``: all of the
    step's elementwise work, row by row.

    ``a2`` (B, 3H) holds ``gx[t]`` and becomes the gates ``[r | z | n]``;
    ``hn_t`` (B, H) gets ``W_hn h_{t-1} + b_hn`` (``b_hn`` (H,) or None);
    ``h_next = n + z (h_prev - n)``, or ``h_prev`` where ``mask_t`` (B,) bool
    (or None) is False. The NumPy loop's equations, in its order.
    """
    B, G = a2.shape
    H = G // 3
    for b in range(B):
        a = a2[b]
        g = gh[b]
        hn = hn_t[b]
        for j in range(2 * H):
            a[j] = sigmoid(a[j] + g[j])
        gn = g[2 * H:]
        if b_hn is None:
            for j in range(H):
                hn[j] = gn[j]
        else:
            for j in range(H):
                hn[j] = gn[j] + b_hn[j]
        n = a[2 * H:]
        for j in range(H):
            n[j] = tanh(n[j] + a[j] * hn[j])
        hp = h_prev[b]
        hx = h_next[b]
        if mask_t is None or mask_t[b]:
            z = a[H:]
            for j in range(H):
                hx[j] = n[j] + (hp[j] - n[j]) * z[j]
        else:  # a padded step carries the state unchanged
            for j in range(H):
                hx[j] = hp[j]


@_jit
def lstm_backward_step(d_output_t, dh_in, dh, dc, a2, c_prev, tanh_c_t, mask_t, keep, one):
    """One step of ``lstm_backward`` before its GEMM: ``a2`` (gates) becomes dgates.

    ``dh <- dh_in + d_output_t`` (``d_output_t`` may be None; ``dh_in`` is the
    previous step's GEMM output, in either memory order), then ``dc`` is
    updated in place. At padded rows (``mask_t`` False) dgates is zero and
    ``dh`` is saved in ``keep``, for the caller to put back after the GEMM
    ``dh_in = dgates @ W_hh``. Returns the number of padded rows.
    """
    B, G = a2.shape
    H = G // 4
    padded = 0
    for b in range(B):
        a = a2[b]
        dhb = dh[b]
        dib = dh_in[b]
        if d_output_t is None:
            for j in range(H):
                dhb[j] = dib[j]
        else:
            dob = d_output_t[b]
            for j in range(H):
                dhb[j] = dib[j] + dob[j]
        if mask_t is not None and not mask_t[b]:  # padded: the gradients pass untouched
            for j in range(G):
                a[j] = 0.0
            kb = keep[b]
            for j in range(H):
                kb[j] = dhb[j]
            padded += 1
            continue
        cp = c_prev[b]
        tcb = tanh_c_t[b]
        dcb = dc[b]
        di, df, dg, do = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]  # the gates, then
        # their gradients. A few arrays written per loop: with more, LLVM's alias checks
        # give up and the loop stays scalar (2-3.5x slower)
        for j in range(H):  # dc_t
            tc = tcb[j]
            dcb[j] = dcb[j] + dhb[j] * ((one - tc * tc) * do[j])
        for j in range(H):
            o = do[j]
            do[j] = dhb[j] * (o * (one - o) * tcb[j])
        for j in range(H):
            i = di[j]
            g = dg[j]
            di[j] = dcb[j] * (i * (one - i) * g)
            dg[j] = dcb[j] * ((one - g * g) * i)
        for j in range(H):  # and dc_{t-1} = dc_t f
            fg = df[j]
            df[j] = dcb[j] * (fg * (one - fg) * cp[j])
            dcb[j] = dcb[j] * fg
    return padded


# --- the threaded path: each thread runs the unroll over its own rows of the batch, -----
# with NumPy's OpenBLAS called from the loop (rnnkit.cells._blas)

BLAS = _blas.find()
if BLAS is not None:  # linked by name, so numba's on-disk cache finds the loops again
    llvm.add_symbol("rnnkit_cblas_sgemm", BLAS.sgemm)
    llvm.add_symbol("rnnkit_cblas_dgemm", BLAS.dgemm)
_I32, _I64, _PTR = types.int32, types.int64, types.uintp
_sgemm = types.ExternalFunction("rnnkit_cblas_sgemm", types.void(
    _I32, _I32, _I32, _I64, _I64, _I64, types.float32, _PTR, _I64, _PTR, _I64, types.float32,
    _PTR, _I64))
_dgemm = types.ExternalFunction("rnnkit_cblas_dgemm", types.void(
    _I32, _I32, _I32, _I64, _I64, _I64, types.float64, _PTR, _I64, _PTR, _I64, types.float64,
    _PTR, _I64))


@intrinsic
def _rows(typingctx, arr):
    """``arr`` typed as C-contiguous; for a 2-D slice of consecutive rows of a C-contiguous
    matrix (``gx[t, b0:b1]``), which is contiguous but typed 'A' once taken from a 3-D
    slice. Without it the loops over a row do not vectorize (no known unit stride)."""
    def codegen(context, builder, signature, args):
        return impl_ret_borrowed(context, builder, signature.return_type, args[0])
    return arr.copy(layout="C")(arr), codegen


def _gemm(a, b, out, trans_b):
    """``out = a @ b.T`` (``trans_b``) or ``a @ b``, rows contiguous (compiled code only)."""
    raise NotImplementedError("compiled code only")


@overload(_gemm)
def _gemm_impl(a, b, out, trans_b):
    gemm = _sgemm if a.dtype == types.float32 else _dgemm
    one, zero = (np.float32(1.0), np.float32(0.0)) if a.dtype == types.float32 else (1.0, 0.0)

    def impl(a, b, out, trans_b):
        M, K = a.shape
        N = out.shape[1]
        item = a.itemsize
        gemm(np.int32(_blas.ROW_MAJOR), np.int32(_blas.NO_TRANS),
             np.int32(_blas.TRANS if trans_b else _blas.NO_TRANS), M, N, K, one, a.ctypes.data,
             a.strides[0] // item, b.ctypes.data, b.strides[0] // item, zero, out.ctypes.data,
             out.strides[0] // item)
    return impl


@register_jitable
def _gemm_blocks(a, b, out, trans_b, max_rows):
    """``_gemm`` over blocks of at most ``max_rows`` rows of ``a`` and ``out``: as few
    blocks as that allows, of equal sizes rounded up to a multiple of 4 rows (OpenBLAS's
    small-matrix kernels run 8 or 12 rows up to 1.2x faster per row than 6 or 15)."""
    M = a.shape[0]
    if M == 0:
        return
    n = (M + max_rows - 1) // max_rows
    size = min(max_rows, ((M + n - 1) // n + 3) // 4 * 4)
    for lo in range(0, M, size):
        hi = min(M, lo + size)
        _gemm(a[lo:hi], b, out[lo:hi], trans_b)


@_jit
def lstm_forward_step_at(t, gx, gh, bias, c, tanh_c, h, mask):
    """``lstm_forward_step`` at step ``t`` of a pass's arrays (C-contiguous; ``mask`` (T,
    B) or None), after the step's GEMM ``gh = h[t] @ W_hh^T``."""
    if mask is None:
        lstm_forward_step(_rows(gx[t]), gh, bias, _rows(c[t]), _rows(c[t + 1]),
                          _rows(tanh_c[t]), _rows(h[t]), _rows(h[t + 1]), None)
    else:
        lstm_forward_step(_rows(gx[t]), gh, bias, _rows(c[t]), _rows(c[t + 1]),
                          _rows(tanh_c[t]), _rows(h[t]), _rows(h[t + 1]), mask[t])


@_jit
def lstm_forward_rows(gx, h, c, tanh_c, w, w_is_w_hh, mask, bias, gh, gemm_rows):
    """``lstm_forward``'s unroll for a slice of the batch rows (``gx[:, b0:b1]`` and so on).

    Per step: ``gh = h_{t-1} W_hh^T`` by BLAS (on the calling thread, in blocks
    of at most ``gemm_rows`` rows), then ``lstm_forward_step``. ``w`` is W_hh
    (4H, H) if ``w_is_w_hh``, else W_hh^T (H, 4H), C-contiguous either way;
    ``gh`` is a C-contiguous (rows, 4H) scratch array; ``mask`` (T, rows) bool
    or None; ``bias`` (4H,) or None.
    """
    for t in range(gx.shape[0]):
        h_prev = _rows(h[t])
        _gemm_blocks(h_prev, w, gh, w_is_w_hh, gemm_rows)
        lstm_forward_step_at(t, gx, gh, bias, c, tanh_c, h, mask)


@_jit
def lstm_backward_step_at(t, d_output, dh_in, dh, dc, gates, c, tanh_c, mask, keep, one):
    """``lstm_backward_step`` at step ``t`` of a pass's arrays (``d_output`` (T, B, H) or
    None, ``mask`` (T, B) or None; the others C-contiguous, ``dh``, ``dc`` (B, H)):
    ``gates[t]`` becomes dgates. Returns the number of padded rows."""
    a = _rows(gates[t])
    if d_output is None:
        if mask is None:
            return lstm_backward_step(None, dh_in, dh, dc, a, _rows(c[t]), _rows(tanh_c[t]),
                                      None, keep, one)
        return lstm_backward_step(None, dh_in, dh, dc, a, _rows(c[t]), _rows(tanh_c[t]),
                                  mask[t], keep, one)
    if mask is None:
        return lstm_backward_step(_rows(d_output[t]), dh_in, dh, dc, a, _rows(c[t]),
                                  _rows(tanh_c[t]), None, keep, one)
    return lstm_backward_step(_rows(d_output[t]), dh_in, dh, dc, a, _rows(c[t]),
                              _rows(tanh_c[t]), mask[t], keep, one)


@_jit
def keep_padded_rows(t, mask, padded, dh_in, keep):
    """After step ``t``'s GEMM ``dh_in = dgates @ W_hh``: its padded rows (``mask[t]``
    False; ``padded`` of them) get back the ``dh`` saved in ``keep``."""
    if mask is not None:  # noqa: SIM102 - alone, numba prunes it when mask is None
        if padded:
            for b in range(dh_in.shape[0]):
                if not mask[t, b]:
                    dh_in[b] = keep[b]


@_jit
def lstm_backward_rows(d_output, dh, dc, gates, c, tanh_c, w_hh, mask, dh_in, keep, one,
                       gemm_rows):
    """``lstm_backward``'s loop for a slice of the batch rows: gates become dgates.

    Per step ``lstm_backward_step``, then ``dh_in = dgates @ W_hh`` by BLAS (in
    blocks of at most ``gemm_rows`` rows); ``dh_in`` and ``keep`` are
    C-contiguous (rows, H) scratch arrays.
    """
    dh = _rows(dh)
    dc = _rows(dc)
    dh_in[:] = dh
    for t in range(gates.shape[0] - 1, -1, -1):
        padded = lstm_backward_step_at(t, d_output, dh_in, dh, dc, gates, c, tanh_c, mask,
                                       keep, one)
        _gemm_blocks(_rows(gates[t]), w_hh, dh_in, False, gemm_rows)  # dh_prev = dgates @ W_hh
        keep_padded_rows(t, mask, padded, dh_in, keep)
    dh[:] = dh_in
