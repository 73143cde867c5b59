"""A GEMM on a matrix packed once, for the per-step products of a recurrent pass (numba).

An LSTM pass multiplies every step's ``h`` (B, H) by the same W_hh^T, and
its backward pass every step's ``dgates`` (B, 4H) by the same W_hh. BLAS
libraries copy the weight matrix into their own blocked layout at every
call (OpenBLAS: all 16 MB of W_hh at H = 1024, B = 32, in every step), so a
few-row product runs far below the machine's GEMM throughput. This module
packs the matrix once per pass, into panels of ``panel_width(dtype)``
columns (two SIMD vectors), each stored as K rows of that width,
contiguously; each step's product then streams the panels and nothing else,
as oneDNN's RNN primitive does with its packed weights.

The micro-kernel (``_tile``) is written in LLVM IR through numba's
``intrinsic``: an ``R x panel`` tile of the output lives in 2R vector
registers for the whole sum over K (one fused multiply-add per vector and k,
the row's number broadcast), and is stored once. With 8 rows and two
16-float vectors (AVX-512: 16 accumulators of its 32 registers), one core of
the project's machine reached 101 GFLOP/s at (32 x 1024) @ (1024 x 4096)
with the 16 MB of panels streamed from memory in every call, where
OpenBLAS's SGEMM reached 63 on one core and 128-143 on two (its packing
included). Hosts without AVX-512 get 32-byte vectors and 4-row tiles (16
registers).

Summation order: every output element is ``fma(a_K-1, b_K-1, ... fma(a_0,
b_0, 0))``, k ascending, whatever its tile, panel or thread: the result does
not depend on the batch size, on a row's position or on how the panels are
split over threads.

Reference: K. Goto and R. van de Geijn, "Anatomy of high-performance matrix
multiplication", ACM TOMS 34(3), 2008 (packed panels, register-blocked
micro-kernel); oneDNN's RNN primitive packs its weights likewise
(https://github.com/oneapi-src/oneDNN, ``src/cpu/rnn``).
"""

from __future__ import annotations

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._compiled_kernels import _jit


def _vector_bytes():
    """64 on a host with AVX-512 (32 vector registers), else 32."""
    try:
        return 64 if llvm.get_host_cpu_features().get("avx512f") else 32
    except RuntimeError:  # the host's features could not be read
        return 32


VECTOR_BYTES = _vector_bytes()
TILE_ROWS = 8 if VECTOR_BYTES == 64 else 4  # 2 * TILE_ROWS accumulators, + 3 registers


def panel_width(dtype):
    """Columns per panel for ``dtype`` (float32 or float64): two SIMD vectors."""
    return 2 * VECTOR_BYTES // np.dtype(dtype).itemsize


def _make_tile(rows):
    """The ``rows x panel`` micro-kernel as a numba intrinsic.

    ``tile(a, a_off, lda, bp, b_off, K, c, c_off, ldc)``: with ``A`` the
    rows at element offset ``a_off`` of ``a`` (row stride ``lda``
    elements), ``P`` the K x width panel at ``b_off`` of ``bp`` and ``C`` at
    ``c_off`` of ``c`` (row stride ``ldc``), ``C[r, :] = sum_k A[r, k] P[k,
    :]`` for ``r < rows``: C is overwritten, not added to. ``K >= 0``.
    """
    @intrinsic
    def tile(typingctx, a, a_off, lda, bp, b_off, K, c, c_off, ldc):
        if not (a.dtype == bp.dtype == c.dtype and a.dtype in (types.float32, types.float64)):
            return None  # numba's typing error: one float dtype for all three arrays
        sig = types.void(a, types.intp, types.intp, bp, types.intp, types.intp, c, types.intp,
                         types.intp)

        def codegen(context, builder, signature, args):
            a_, a_off_, lda_, bp_, b_off_, k_, c_, c_off_, ldc_ = args
            dtype = signature.args[0].dtype
            fty = ir.FloatType() if dtype == types.float32 else ir.DoubleType()
            lanes = VECTOR_BYTES // (4 if dtype == types.float32 else 8)
            vty = ir.VectorType(fty, lanes)
            ity = ir.IntType(64)
            i32 = ir.IntType(32)

            def const(n):
                return ir.Constant(ity, n)

            def ptr(ty, value, offset):
                return builder.gep(context.make_array(ty)(context, builder, value).data,
                                   [offset])

            ap = ptr(signature.args[0], a_, a_off_)
            bp = ptr(signature.args[3], bp_, b_off_)
            cp = ptr(signature.args[6], c_, c_off_)
            name = f"llvm.fma.v{lanes}f{32 if dtype == types.float32 else 64}"
            fma = cgutils.get_or_insert_function(builder.module,
                                                 ir.FunctionType(vty, [vty, vty, vty]), name)
            zero = ir.Constant(vty, [0.0] * lanes)
            undef = ir.Constant(vty, ir.Undefined)
            splat = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
            nacc = 2 * rows
            entry = builder.basic_block
            loop = builder.append_basic_block("tile.loop")
            done = builder.append_basic_block("tile.done")
            builder.cbranch(builder.icmp_signed(">", k_, const(0)), loop, done)

            builder.position_at_end(loop)  # one k: 2 vector loads, `rows` broadcasts, 2R FMAs
            k = builder.phi(ity)
            k.add_incoming(const(0), entry)
            acc = []
            for _ in range(nacc):
                phi = builder.phi(vty)
                phi.add_incoming(zero, entry)
                acc.append(phi)
            row = builder.gep(bp, [builder.mul(k, const(2 * lanes))])
            b = [builder.load(builder.bitcast(builder.gep(row, [const(v * lanes)]),
                                              vty.as_pointer()), align=1)
                 for v in range(2)]
            new = []
            for r in range(rows):
                x = builder.load(builder.gep(ap, [builder.add(builder.mul(const(r), lda_), k)]))
                x = builder.shuffle_vector(builder.insert_element(undef, x, ir.Constant(i32, 0)),
                                           undef, splat)
                new.extend(builder.call(fma, [x, b[v], acc[2 * r + v]]) for v in range(2))
            k_next = builder.add(k, const(1))
            latch = builder.basic_block
            k.add_incoming(k_next, latch)
            for phi, value in zip(acc, new):
                phi.add_incoming(value, latch)
            builder.cbranch(builder.icmp_signed("<", k_next, k_), loop, done)

            builder.position_at_end(done)  # store the tile (zeros where K == 0)
            final = []
            for value in new:
                phi = builder.phi(vty)
                phi.add_incoming(zero, entry)
                phi.add_incoming(value, latch)
                final.append(phi)
            for r in range(rows):
                out = builder.gep(cp, [builder.mul(const(r), ldc_)])
                for v in range(2):
                    builder.store(final[2 * r + v],
                                  builder.bitcast(builder.gep(out, [const(v * lanes)]),
                                                  vty.as_pointer()), align=1)
            return context.get_dummy_value()

        return sig, codegen

    return tile


# module level, so that numba's on-disk cache finds the loops that call them again
_tile_full = _make_tile(TILE_ROWS)
_tile4 = _make_tile(4)
_tile2 = _make_tile(2)
_tile1 = _make_tile(1)


@intrinsic
def _transpose_block(typingctx, src, s_off, lds, dst, d_off, ldd):
    """An L x L block ``dst = src^T`` in vector registers, L the lanes of one SIMD vector.

    ``transpose_block(src, s_off, lds, dst, d_off, ldd)``: the L rows of L
    numbers at element offset ``s_off`` of ``src`` (row stride ``lds``) are
    written as the L columns of the block at ``d_off`` of ``dst`` (row stride
    ``ldd``). L loads, L * log2(L) two-vector shuffles (at each scale ``s`` =
    L/2, ..., 1, rows ``i`` and ``i + s`` swap their off-diagonal s x s
    blocks, the recursive block transpose), L stores.
    """
    if not (src.dtype == dst.dtype and src.dtype in (types.float32, types.float64)):
        return None
    sig = types.void(src, types.intp, types.intp, dst, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        src_, s_off_, lds_, dst_, d_off_, ldd_ = args
        dtype = signature.args[0].dtype
        fty = ir.FloatType() if dtype == types.float32 else ir.DoubleType()
        lanes = VECTOR_BYTES // (4 if dtype == types.float32 else 8)
        vty = ir.VectorType(fty, lanes)
        ity = ir.IntType(64)
        mty = ir.VectorType(ir.IntType(32), lanes)

        def row(ty, value, offset, stride, r):
            data = context.make_array(ty)(context, builder, value).data
            at = builder.add(offset, builder.mul(ir.Constant(ity, r), stride))
            return builder.bitcast(builder.gep(data, [at]), vty.as_pointer())

        rows = [builder.load(row(signature.args[0], src_, s_off_, lds_, r), align=1)
                for r in range(lanes)]
        s = lanes // 2
        while s >= 1:
            low = ir.Constant(mty, [j if not j & s else lanes + j - s for j in range(lanes)])
            high = ir.Constant(mty, [j + s if not j & s else lanes + j for j in range(lanes)])
            new = list(rows)
            for i in range(lanes):
                if not i & s:
                    new[i] = builder.shuffle_vector(rows[i], rows[i + s], low)
                    new[i + s] = builder.shuffle_vector(rows[i], rows[i + s], high)
            rows = new
            s //= 2
        for r in range(lanes):
            builder.store(rows[r], row(signature.args[3], dst_, d_off_, ldd_, r), align=1)
        return context.get_dummy_value()

    return sig, codegen


@_jit
def pack_rows(w, bp, lo, hi):
    """Pack ``B = w^T`` (w: (N, K), C-contiguous): ``bp[p, k, j] = w[p * width + j, k]``,
    for the panels ``lo <= p < hi``.

    ``bp`` is (ceil(N / width), K, width); the columns past N are zeros.
    For the forward pass's ``h @ W_hh^T``, with ``w`` = W_hh. Each panel is
    the transpose of ``width`` rows of ``w``, in blocks of one vector's lanes
    square (``_transpose_block``: at H = 512, float32, 0.16 ms for all of
    W_hh on one core, where 8 x 8 tiles of scalar copies took 0.36).
    """
    _, K, width = bp.shape
    N = w.shape[0]
    lanes = width // 2
    ldw = w.strides[0] // w.itemsize
    whole = K - K % lanes
    for p in range(lo, hi):
        n0 = p * width
        rows = min(width, N - n0)
        if rows == width:
            for half in range(2):
                for k0 in range(0, whole, lanes):
                    _transpose_block(w, (n0 + half * lanes) * ldw + k0, ldw,
                                     bp, (p * K + k0) * width + half * lanes, width)
            for k in range(whole, K):  # the last K % lanes columns of w
                dst = bp[p, k]
                for j in range(width):
                    dst[j] = w[n0 + j, k]
        else:
            for k in range(K):
                dst = bp[p, k]
                for j in range(rows):
                    dst[j] = w[n0 + j, k]
                for j in range(rows, width):
                    dst[j] = 0.0


@_jit
def pack_columns(w, bp, lo, hi):
    """Pack ``B = w`` (w: (K, N), C-contiguous): ``bp[p, k, j] = w[k, p * width + j]``, for
    the panels ``lo <= p < hi``.

    ``bp`` is (ceil(N / width), K, width); the columns past N are zeros.
    For the backward pass's ``dgates @ W_hh``, with ``w`` = W_hh. Panel by
    panel, each written in order (0.16 ms for W_hh at H = 512 on one core;
    row by row of ``w``, writing to every panel in turn, took 0.57).
    """
    _, K, width = bp.shape
    N = w.shape[1]
    for p in range(lo, hi):
        n0 = p * width
        cols = min(width, N - n0)
        panel = bp[p]
        if cols == width:
            for k in range(K):
                src = w[k, n0:n0 + width]
                dst = panel[k]
                for j in range(width):
                    dst[j] = src[j]
        else:
            for k in range(K):
                dst = panel[k]
                for j in range(cols):
                    dst[j] = w[k, n0 + j]
                for j in range(cols, width):
                    dst[j] = 0.0


@_jit
def packed_gemm(a, bp, c, lo, hi):
    """``c[:, panels lo..hi-1] = a @ B`` for B packed by ``pack_rows``/``pack_columns``.

    ``a`` (M, K) and ``c`` (M, N) have contiguous rows (any row stride);
    ``bp`` is (P, K, width), C-contiguous. Panel ``p`` covers the columns
    ``p * width`` to ``min(N, (p + 1) * width)`` of ``c``; the others are not
    touched, so threads may write disjoint panel ranges of one ``c``.
    """
    M, K = a.shape
    width = bp.shape[2]
    N = c.shape[1]
    lda = a.strides[0] // a.itemsize
    ldc = c.strides[0] // c.itemsize
    scratch = np.empty((TILE_ROWS, width), c.dtype)  # the last panel's tile, if partial
    for p in range(lo, hi):
        n0 = p * width
        cols = min(width, N - n0)
        b_off = p * K * width
        r = 0
        while r < M:
            left = M - r
            rows = TILE_ROWS if left >= TILE_ROWS else 4 if left >= 4 else 2 if left >= 2 else 1
            if cols == width:
                out, c_off, ld = c, r * ldc + n0, ldc
            else:
                out, c_off, ld = scratch, 0, width
            if rows == TILE_ROWS:
                _tile_full(a, r * lda, lda, bp, b_off, K, out, c_off, ld)
            elif rows == 4:
                _tile4(a, r * lda, lda, bp, b_off, K, out, c_off, ld)
            elif rows == 2:
                _tile2(a, r * lda, lda, bp, b_off, K, out, c_off, ld)
            else:
                _tile1(a, r * lda, lda, bp, b_off, K, out, c_off, ld)
            if cols < width:
                for i in range(rows):
                    for j in range(cols):
                        c[r + i, n0 + j] = scratch[i, j]
            r += rows
