"""Optional compiled LSTM loops (numba), and when to use them.

A NumPy LSTM step calls ~20 ufuncs (one pass over memory and about 1 us of
call overhead each) around its two GEMMs, so below the GEMM-bound sizes
most of its time is not arithmetic. With numba installed the loops run
compiled, in one of these forms:

- the whole unroll and its backward pass as one call (``B * H <=
  RNNKIT_COMPILED_MAX_UNITS``, default 1024, and ``H <= 256``): its matrix
  products are plain loops, four batch rows per pass over W_hh, so there is
  no second BLAS thread pool next to NumPy's;
- above that, each step is NumPy's GEMM (its BLAS, its threads) followed by
  one compiled call that does all of the step's elementwise work in a few
  passes (the bias add, the activations, the cell and hidden state; in the
  backward pass the gate derivatives); up to 6 rows with H >= 384 the
  GEMM is one matrix-vector product a row (``MATRIX_VECTOR_*``), which
  streams W_hh once where a GEMM of a few rows first copies all of it into
  OpenBLAS's packed layout;
- the whole unroll as one call that calls NumPy's OpenBLAS for each step's
  GEMM (``BLAS_LOOP_*``: 2 to 32 rows, H from 16 to 128, where OpenBLAS's
  two threads beat the plain loops: a step 0.64-0.87x on the project's
  machine; they lost at B = 64, H = 16 and B = 4, H = 256, and tie at B = 1);
- from 64 batch rows (on two threads) up to H = 256, or from 16 up to H =
  128, the batch split over threads, each running that BLAS loop over its
  own rows (below);
- from H = 256 (``PACKED_*``: from 2 rows, from 1 at H = 1024 or over 100
  steps, from 30 steps), inside a region, each step's GEMM on W_hh packed
  once per pass (:mod:`rnnkit.cells._packed_gemm`), its panels split over
  the region's threads, which take the whole pass and wait for each step on
  a flag (:mod:`rnnkit.cells._lockstep`), then the compiled elementwise
  step on the calling thread; the caller's side of 32 steps is one compiled
  call (no Python between steps, the GIL released), and the caller computes
  a worker's share that the worker has not begun (a thread not woken yet,
  or descheduled). BLAS libraries copy all of W_hh into their own layout
  at every call, which is most of a few-row GEMM's time; packing once is
  what oneDNN's RNN primitive (and so PyTorch's CPU LSTM) does. Training
  step against the paths before: 0.77-0.87x at B = 32 (H = 256-1024),
  0.54-0.87x at B = 2-8, 0.86-0.99x at B = 64-128.

Measured on the project's 2-core machine (a whole float32 training step,
input size 32, T = 50, against the same step on the NumPy loops): 0.45x at
B=1, H=128 and 0.55-0.75x at B*H <= 1024 with the whole unroll; 0.68-0.8x
with the per-step kernels at B = 32-128, H = 128, and 0.87-0.9x from H = 512
(B=1 included), where the GEMMs take most of the step. Both keep the NumPy
loops' equations and cache layout, so either backward consumes either
forward. The NumPy loops stay the reference; the paths agree to round-off
(the recurrent sums run in another order, float32 ``exp``/``tanh`` are
evaluated by ``rnnkit.cells._compiled_kernels``), which the tests check.

Threads. Batch rows never meet in the recurrence, so inside a
:func:`parallel` region (which ``SequenceModel`` opens by itself), from 10
steps (``THREADED_MIN_T``), 32 rows a thread (``THREADED_MIN_ROWS``) and up
to H = 256 (``THREADED_MAX_H``), each of the region's threads (by default
as many as OpenBLAS has: two on the project's machine) runs the whole
unroll over its own part of the batch, calling NumPy's OpenBLAS from the
compiled loop for its per-step GEMM (:mod:`rnnkit.cells._blas`), and the
layer's other GEMMs are split likewise (:class:`Threads`). OpenBLAS itself
is set to one thread meanwhile: after a multi-threaded call its workers
spin for about 0.1 s (2^28 cycles) before they sleep, and one spinning on
a core that our second thread needs made the split no faster at all.
Each thread calls the GEMM on blocks of its rows small enough for
OpenBLAS's small-matrix kernels (``SMALL_GEMM_MNK``, on its AVX-512 cores),
which skip the packing of W_hh that every larger call repeats; there the
batch splits from 8 rows a thread (``THREADED_SMALL_MIN_ROWS``) up to H =
128, where the whole unroll does not run. Measured (whole training step,
2 threads against 1): 0.72-0.85x at B = 128 with H = 32-128, 0.96x at H =
256, and with the row blocks 0.93x more at B = 128, H = 128; at B = 32, H
= 128 0.80x (T = 50) and 0.75x (T = 200), at B = 16 0.70x; no gain at H =
512 (one-thread GEMMs of 64 rows are slower than OpenBLAS's two threads on
128) nor at T = 5 (1.2-1.45x: each hand-off to the pool costs about 50
us). The rows' results are those of the one-thread loops to round-off (the
GEMMs see fewer rows).

OpenBLAS's thread count is one setting for the process: inside a region,
NumPy GEMMs that other threads of the program call run on one thread. The
layers do not split on their own, outside a region, because a
multi-threaded GEMM of the program's own just before a pass (an output
layer's, between forward and backward) leaves OpenBLAS's workers spinning
into the pass's first 0.1 s: a SequenceModel step was 1.2-1.6x slower that
way, and is 0.77-0.97x with the region around head and LSTM alike.

``RNNKIT_COMPILED=0`` (or false, off, no) forces the NumPy loops, and
``RNNKIT_THREADED=0`` the one-thread loops. There is no projection
(``proj_size``) variant.

Reference: numba (Lam, Pitrou & Seibert, 2015), https://numba.pydata.org.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import _workspace as workspace

DEFAULT_MAX_UNITS = 1024  # largest B*H for the whole-unroll loop
WHOLE_MAX_H = 256  # above, W_hh^T (4 H^2 numbers) no longer stays in cache between rows
# batch and hidden sizes whose recurrent GEMMs write column-major output (backward reads
# W_hh as the transpose of a contiguous W_hh^T): OpenBLAS is 1.1-1.5x faster so at B = 32,
# H >= 512, and the training step 0.85-0.9x at B = 16-32, H = 256; below H = 256 the step
# kernels' strided reads of the GEMM output cost more than the GEMMs gain (B=32, H=128:
# 8.5 ms row-major, 9.3 column-major), and at B = 128 too (19.0 vs 15.4 ms)
COLUMN_MAJOR_MAX_B = 64
COLUMN_MAJOR_MIN_H = 256
# the threaded loops (each thread its own batch rows, with one-thread BLAS calls from the
# loop): from this many rows per thread, up to this hidden size
THREADED_MIN_ROWS = 32
THREADED_MAX_H = 256
# below, the hand-offs to the threads (about 50 us each) cost more than the split gains: a
# training step at T = 5 was 1.2x (B = 32, H = 128) to 1.45x (B = 128, H = 32) slower split
THREADED_MIN_T = 10
# up to this many rows and from this hidden size, the per-step GEMMs (between NumPy's GEMMs
# and the compiled elementwise steps) are one matrix-vector product a row (OpenBLAS's GEMV,
# on its threads): a GEMM of a few rows packs W_hh (4 MB at H = 512) in every call, where
# GEMV streams it once. Training step against the GEMMs: B = 2, H = 512 0.62x, H = 1024
# 0.48x; B = 4 0.86x and 0.71x; B = 6 0.87-0.90x; but B = 8 1.07x, and below H = 384 (W_hh
# nearer the core) 1.4-1.8x slower. At B = 1 the forward GEMM was a GEMV already; the
# backward's, on a contiguous W_hh^T, is 0.84-0.93x the step (1.02x at H = 1024, T = 50,
# where the 2.9 ms copy of W_hh^T weighs more)
MATRIX_VECTOR_MAX_B = 6
MATRIX_VECTOR_MIN_H = 384
# OpenBLAS's small-matrix GEMM kernels (those of its AVX-512 cores) compute a product of at
# most 100^3 multiply-adds (M*N*K) straight from the operands on the calling thread; above,
# every call packs W_hh into OpenBLAS's own layout first. On one thread, per row of a per-step
# LSTM GEMM at H = 128: 1.25-1.3 us in blocks of 8-12 rows, against 2.1 at 16 rows and 1.7 at
# 32 (float64: 2.6 against 3.5 and 3.0); H = 160: 1.9 against 2.4 at 32; H = 64: 0.31 against
# 0.37 at 64. So the threads' loops call BLAS on blocks of rows that fit (gemm_rows), and from
# THREADED_SMALL_MIN_ROWS rows a thread the batch splits where the whole unroll does not run
# (B * H > max_units()) up to THREADED_SMALL_MAX_H: a training step at B = 32, H = 128 0.80x
# (T = 50) and 0.75x (T = 200); B = 16, H = 128 0.70x; B = 16, H = 256 (3-row blocks, no
# faster than packing) 1.13-1.22x, and inside the whole unroll's domain (B = 16, H = 32-64 at
# T = 50) 1.1-1.5x
SMALL_GEMM_CORES = ("SkylakeX", "Cooperlake", "SapphireRapids")
SMALL_GEMM_MNK = 100 ** 3
SMALL_GEMM_MIN_ROWS = 4
THREADED_SMALL_MIN_ROWS = 8
THREADED_SMALL_MAX_H = 128
# the forward pass's per-step GEMM reads a contiguous copy of W_hh^T (NN) instead of W_hh
# transposed in place (NT) from this many rows and steps: OpenBLAS runs NN 1.1-1.5x faster
# (B=32, H=128: 33 vs 49 us on 2 threads; B=64 rows on one thread: 94 vs 121 us; B=128,
# H=1024: 6.5 vs 7.3 ms), and the copy (22 us at H=128, 2.9 ms at H=1024) pays back within
# a few steps
TRANSPOSED_MIN_B = 3  # at 1-2 rows OpenBLAS runs both alike; at 4-8 rows NT is 4-7x slower
TRANSPOSED_MIN_T = 4
# the compiled unroll with one BLAS call per step (NumPy's OpenBLAS, its threads), in place of
# the whole loop's plain-loop products, for these batch and hidden sizes (measured above)
BLAS_LOOP_MIN_B, BLAS_LOOP_MAX_B = 2, 32
BLAS_LOOP_MIN_H, BLAS_LOOP_MAX_H = 16, 128

# inside a region of two threads or more, from PACKED_MIN_T steps, the per-step GEMMs run on
# W_hh packed once per pass (rnnkit.cells._packed_gemm: a micro-kernel that keeps its tile
# in vector registers), its panels split over the region's threads, which wait for each step
# on a flag (rnnkit.cells._lockstep), where OpenBLAS copies all of W_hh into its own layout
# at every call: from PACKED_MIN_B rows at H >= PACKED_MIN_H, and at one row from H >=
# PACKED_B1_MIN_H, or from H >= PACKED_MIN_H over PACKED_B1_MIN_T steps. Training step
# against the paths before (T = 50, float32, 2 threads; session 8, with a Python loop over
# the steps): B = 32: H = 256 0.87x, 384 0.84x, 512 0.82x, 1024 0.77x; B = 2-8: H = 256
# 0.79-0.87x (0.66x at T = 200), H = 512 0.61-0.83x, H = 1024 0.54-0.64x; B = 64-128: H =
# 256 0.86-0.92x (against the batch split), H = 384-512 0.90-0.99x, H = 1024 0.99x
# (OpenBLAS's GEMMs are as fast at 128 rows); inference at B = 32, H = 512 0.75x. Lost: H =
# 128 (1.14-1.41x against the batch split and the BLAS loop), and T = 10 (1.07x at B = 32, H
# = 256; 1.26x at B = 2, H = 512: the packing and the workers' start weigh more than ten
# steps gain). The caller's side of the steps then became one compiled call per
# PACKED_CHUNK steps (no Python per step): 0.87-0.94x more at B = 1, 0.94x at B = 4, H =
# 512, 0.97-1.0x at B = 32-128. At one row (inference, against one GEMV a row, or the
# whole unroll below H = 384): H = 1024 0.94-0.97x (T = 50 and 200); H = 512 0.87-0.91x at
# T = 200 but 1.0x at T = 50 and 1.19x at T = 30; H = 384 0.88x at T = 200, 1.13x at T =
# 50; H = 256 0.76x at T = 50 and 200 (W_hh in the cores' L2). The fixed cost of a pass
# (packing, the workers' start) is what a few dozen steps must win back; up to
# PACKED_B1_L2_MAX_H, where each thread's half of W_hh (0.8 MB at H = 320) stays in its
# core's 1 MB L2, it does from PACKED_MIN_T steps (session 10, inference at B = 1 against
# the whole unroll: H = 256 0.76x at T = 30, 0.77x at T = 50; H = 320 0.64x at T = 50;
# training H = 256 0.94x at T = 30, 0.80x at T = 50).
PACKED_MIN_T = 30
PACKED_MIN_B = 2
PACKED_MIN_H = 256
PACKED_B1_MIN_H = 1024
PACKED_B1_MIN_T = 100
PACKED_B1_L2_MAX_H = 320
# steps per compiled call of the packed path's caller: a Ctrl-C is seen between two calls
PACKED_CHUNK = 32
# Threads.matmul runs a product of fewer multiply-adds (M * K * N) on the caller alone: a
# hand-off to a pool thread costs more (50 x 32 @ 32 x 2048, an LSTM's input projection at
# B = 1, T = 50, H = 512: 115 us on one thread, 154-193 us split; from 13 M it pays)
SPLIT_MIN_MNK = 8 * 2 ** 20

_OFF = {"0", "false", "off", "no"}
_ON = {"", "1", "true", "on", "yes"}


_import_failed = []  # non-empty once importing numba failed: not retried at every step


def _numba_kernels():
    """The compiled-loop module (numba caches its loops on disk); None without numba.

    Also None (the NumPy loops run) under ``NUMBA_DISABLE_JIT=1``, numba's
    debugging switch, since the float32 math exists only compiled, and when
    the module fails to load for any other reason (a warning says why, once).
    """
    if _import_failed:
        if isinstance(_import_failed[0], KeyboardInterrupt) and len(_import_failed) == 1:
            _import_failed.append(None)  # said once
            warnings.warn("rnnkit: a Ctrl-C cut the first import of the compiled LSTM loops "
                          "(numba) short, which leaves numba half-imported; this process "
                          "runs the NumPy loops (a new one runs the compiled ones)",
                          RuntimeWarning, stacklevel=3)
        return None
    try:
        from . import _compiled_kernels
    except ImportError as e:
        _import_failed.append(e)
        return None
    except KeyboardInterrupt as e:  # (adversarial review: every later pass failed with
        _import_failed.append(e)  # "module 'numba' has no attribute 'core'")
        raise
    except Exception as e:  # noqa: BLE001 - any failure here must leave the NumPy loops
        _import_failed.append(e)
        warnings.warn(f"rnnkit: the compiled LSTM loops could not be loaded ({e}); "
                      "using the NumPy loops", RuntimeWarning, stacklevel=3)
        return None
    if _compiled_kernels.jit_disabled():
        _import_failed.append(RuntimeError("NUMBA_DISABLE_JIT is set"))
        return None
    return _compiled_kernels


def enabled():
    """False when ``RNNKIT_COMPILED`` turns the compiled loops off (0/false/off/no).

    Raises
    ------
    ValueError
        If the variable holds anything but 0/1, false/true, off/on, no/yes.
    """
    value = os.environ.get("RNNKIT_COMPILED", "").strip().lower()
    if value in _OFF:
        return False
    if value in _ON:
        return True
    raise ValueError("RNNKIT_COMPILED must be 0 or 1 (or false/true, off/on, no/yes), "
                     f"got {os.environ['RNNKIT_COMPILED']!r}")


def max_units():
    """The largest ``B * H`` of the whole-unroll loop (``RNNKIT_COMPILED_MAX_UNITS``).

    0 sends every step to the per-step kernels.

    Raises
    ------
    ValueError
        If the variable is not an integer >= 0.
    """
    value = os.environ.get("RNNKIT_COMPILED_MAX_UNITS", "").strip()
    try:
        units = int(value) if value else DEFAULT_MAX_UNITS
    except ValueError:
        units = -1
    if units < 0:
        raise ValueError(f"RNNKIT_COMPILED_MAX_UNITS must be an integer >= 0, got {value!r}")
    return units


def gru_step_kernel(dtype):
    """The compiled elementwise step of a GRU forward pass (``gru_forward_step`` of
    :mod:`rnnkit.cells._compiled_kernels`) for arrays of ``dtype``, or None where the
    NumPy loop runs (no numba, ``RNNKIT_COMPILED=0``, a dtype other than float32/64)."""
    if not enabled() or np.dtype(dtype) not in (np.float32, np.float64):
        return None
    kernels = _numba_kernels()
    return None if kernels is None else kernels.gru_forward_step


def lstm_kernels(B, H, dtype, threads=None, T=None):
    """The compiled (forward, backward) loops if they should run this step, else None.

    Parameters
    ----------
    B, H : int
        Batch size and hidden size of the step.
    dtype : numpy dtype
        float32 or float64 (others stay on the NumPy path).
    threads : Threads, optional
        Split the work over these threads (from :func:`lstm_threads`): each
        step's GEMM on a packed W_hh where :func:`packed` says so, else the
        batch rows.
    T : int, optional
        Steps of the pass (None: any), for :func:`packed`.

    Returns
    -------
    (forward, backward) or None
        ``forward(gx, h, c, tanh_c, w_hh, mask, bias)`` and ``backward(d_output,
        dh, dc, gates, c, tanh_c, w_hh, mask)`` with the arguments of the NumPy
        loops (``mask`` (T, B) bool or None, ``bias`` (4H,) or None: added to
        ``gx``). With ``threads``, each thread runs the BLAS loop over its
        rows. Otherwise, up to ``max_units()`` units (``B * H``, with ``H <=
        256``) the whole unroll is one compiled call: the BLAS loop where
        :func:`blas_loop` says so, else the loop with plain-loop products;
        above, each step is NumPy's GEMM (one GEMV a row where
        :func:`matrix_vector` says so) followed by one compiled call for all
        of the step's elementwise work.
    """
    if not enabled():
        return None
    if np.dtype(dtype) not in (np.float32, np.float64):
        return None
    whole = B * H <= max_units() and H <= WHOLE_MAX_H
    kernels = _numba_kernels()
    if kernels is None:
        return None
    one = np.dtype(dtype).type(1.0)

    def transposed(w):
        return _transposed(kernels, w)

    if threads is not None and threads is not CALLER and packed(T, B, H, threads.n):
        return _packed_kernels(kernels, threads, one)
    if threads is None and whole and kernels.BLAS is not None and blas_loop(B, H):
        threads = CALLER
    if threads is not None:  # the BLAS loop, over the rows of each thread
        def block_rows(rows):  # per BLAS call: OpenBLAS's own threads take a whole step
            return rows if threads is CALLER else gemm_rows(threads.blas, rows, H, 4 * H)

        def forward_blas(gx, h, c, tanh_c, w_hh, mask, bias):
            T, _, G = gx.shape
            w_hh = np.ascontiguousarray(w_hh, dtype=gx.dtype)  # BLAS reads it as gx's dtype
            w = gemm_weight(w_hh, B, T)
            # no copy made (a view, even one that looks C-contiguous, as (1, 4) does at H=1):
            # the loop reads W_hh itself
            is_w_hh = np.may_share_memory(w, w_hh)
            if is_w_hh:
                w = w_hh
            gh = np.empty((B, G), gx.dtype)

            def part(lo, hi):
                kernels.lstm_forward_rows(gx[:, lo:hi], h[:, lo:hi], c[:, lo:hi],
                                          tanh_c[:, lo:hi], w, is_w_hh,
                                          None if mask is None else mask[:, lo:hi], bias,
                                          gh[lo:hi], block_rows(hi - lo))
            _load_on_caller(part, threads)
            threads.run(part, B)

        def backward_blas(d_output, dh, dc, gates, c, tanh_c, w_hh, mask):
            w_hh = np.ascontiguousarray(w_hh, dtype=gates.dtype)
            if d_output is not None:  # the loops read its rows as contiguous
                d_output = np.ascontiguousarray(d_output)
            dh_in = np.empty_like(dh)
            keep = np.empty_like(dh)

            def part(lo, hi):
                kernels.lstm_backward_rows(None if d_output is None else d_output[:, lo:hi],
                                           dh[lo:hi], dc[lo:hi], gates[:, lo:hi],
                                           c[:, lo:hi], tanh_c[:, lo:hi], w_hh,
                                           None if mask is None else mask[:, lo:hi],
                                           dh_in[lo:hi], keep[lo:hi], one,
                                           block_rows(hi - lo))
            _load_on_caller(part, threads)
            threads.run(part, B)

        return forward_blas, backward_blas

    if whole:
        def forward(gx, h, c, tanh_c, w_hh, mask, bias):
            w_hh = _readable(w_hh, gx.dtype)
            if bias is not None:
                gx += bias
            kernels.lstm_forward_loop(gx, h, c, tanh_c, transposed(w_hh), mask)

        def backward(d_output, dh, dc, gates, c, tanh_c, w_hh, mask):
            w_hh = _readable(w_hh, gates.dtype)
            kernels.lstm_backward_loop(d_output, dh, dc, gates, c, tanh_c, w_hh, mask, one)

        return forward, backward

    rowwise = matrix_vector(B, H)
    order = "F" if column_major(B, H) and not rowwise else "C"

    def forward_steps(gx, h, c, tanh_c, w_hh, mask, bias):
        T, B, G = gx.shape
        w_hh = _readable(w_hh, gx.dtype)
        gh = np.empty((B, G), gx.dtype, order=order)
        if rowwise:  # gh[b] = W_hh h_b, one GEMV a row
            w_hh = np.ascontiguousarray(w_hh)
        else:
            w_hh_T = gemm_weight(w_hh, B, T) if order == "C" else w_hh.T
        for t in range(T):
            if rowwise:
                _matvecs(w_hh, h[t], gh)
            else:
                np.matmul(h[t], w_hh_T, out=gh)
            kernels.lstm_forward_step(gx[t], gh, bias, c[t], c[t + 1], tanh_c[t], h[t], h[t + 1],
                                      None if mask is None else mask[t])

    def backward_steps(d_output, dh, dc, gates, c, tanh_c, w_hh, mask):
        w_hh = _readable(w_hh, gates.dtype)
        keep = np.empty_like(dh)
        dh_in = np.empty(dh.shape, dh.dtype, order=order)  # the GEMM's output
        np.copyto(dh_in, dh)
        # column-major output: W_hh read as the transpose of a contiguous W_hh^T is faster;
        # one GEMV a row: on a contiguous W_hh^T (0.7x W_hh read transposed, at B = 4, H = 1024)
        w_hh_T = transposed(w_hh) if order == "F" or rowwise else w_hh.T
        for t in range(gates.shape[0] - 1, -1, -1):
            valid = None if mask is None else mask[t]
            padded = kernels.lstm_backward_step(None if d_output is None else d_output[t], dh_in,
                                                dh, dc, gates[t], c[t], tanh_c[t], valid, keep,
                                                one)
            if rowwise:  # dh_prev[b] = W_hh^T dgates_b
                _matvecs(w_hh_T, gates[t], dh_in)
            else:
                np.matmul(gates[t], w_hh_T.T, out=dh_in)  # dh_prev = dgates @ W_hh
            if padded:
                np.copyto(dh_in, keep, where=~valid[:, None])
        np.copyto(dh, dh_in)

    return forward_steps, backward_steps


def _load_on_caller(part, threads):
    """``part(0, 0)`` (no rows: nothing done) on the calling thread before ``threads``
    run the parts, so that numba compiles or loads their loops here: a pool thread that
    compiled waited on numba's compiler lock, which a Ctrl-C during the caller's own
    compile could leave held by the caller, and the pass then hung for good (see
    ``rnnkit.cells._lockstep.GemmSteps._load_kernels``)."""
    if threads is not CALLER:
        part(0, 0)


def _packed_kernels(kernels, threads, one):
    """(forward, backward) of :func:`lstm_kernels` with the per-step GEMMs on a packed W_hh.

    Each thread packs its own panels of W_hh (or W_hh^T) once per pass; the
    threads' other members take the whole pass and compute their panels of
    each step's GEMM once the caller posts the step
    (:class:`rnnkit.cells._lockstep.GemmSteps`). The caller's side of the
    steps (post, its panels, the wait, the compiled elementwise step) is one
    compiled call for ``PACKED_CHUNK`` steps at a time, with no Python (and
    the GIL released) in between. The GEMMs' sums run in k order
    (:mod:`rnnkit.cells._packed_gemm`), so rows and threads get the numbers
    they would get alone. The arrays are those of ``lstm_forward`` and
    ``lstm_backward``, C-contiguous (``mask`` aside) as the compiled loops
    read them.
    """
    from . import _lockstep
    from . import _packed_gemm as pg

    def panels(pack_fn, w, n_out, K):
        """The panels' array (reused between passes: no page faults) and its packer."""
        width = pg.panel_width(w.dtype)
        bp = workspace.empty((-(-n_out // width), K, width), w.dtype)
        return bp, lambda lo, hi: pack_fn(w, bp, lo, hi)

    def forward(gx, h, c, tanh_c, w_hh, mask, bias):
        T, B, G = gx.shape
        w_hh = np.ascontiguousarray(w_hh, dtype=gx.dtype)  # packed in the layer's dtype
        bp, pack = panels(pg.pack_rows, w_hh, G, w_hh.shape[1])  # B = W_hh^T: (H, 4H)
        gh = np.empty((B, G), gx.dtype)

        def loop(t, stop, bounds):
            return _lockstep.lstm_forward_packed(gx, h, c, tanh_c, mask, bias, bp, gh,
                                                 steps.flags, bounds, t, stop,
                                                 _lockstep.SPIN_CYCLES)

        def finish(t):  # the elementwise step of a step whose workers were late
            kernels.lstm_forward_step_at(t, gx, gh, bias, c, tanh_c, h, mask)

        with _lockstep.GemmSteps(threads, h, np.arange(T), bp, gh, pack) as steps:
            steps.run(loop, finish, PACKED_CHUNK)

    def backward(d_output, dh, dc, gates, c, tanh_c, w_hh, mask):
        w_hh = np.ascontiguousarray(w_hh, dtype=gates.dtype)
        bp, pack = panels(pg.pack_columns, w_hh, w_hh.shape[1], w_hh.shape[0])  # B = W_hh
        if d_output is not None:  # the loop reads its rows as contiguous
            d_output = np.ascontiguousarray(d_output)
        keep = np.empty_like(dh)
        dh_in = dh.copy()  # the GEMM's output
        T = gates.shape[0]

        def loop(k, stop, bounds):  # step k is time T - 1 - k
            return _lockstep.lstm_backward_packed(d_output, dh, dc, gates, c, tanh_c, mask, bp,
                                                  dh_in, keep, one, steps.flags, bounds, k,
                                                  stop, _lockstep.SPIN_CYCLES)

        def finish(k):  # a step whose workers were late: its padded rows get their dh back
            kernels.keep_padded_rows(T - 1 - k, mask, 1, dh_in, keep)  # (1: any may be)

        with _lockstep.GemmSteps(threads, gates, np.arange(T - 1, -1, -1), bp, dh_in,
                                 pack) as steps:
            steps.run(loop, finish, PACKED_CHUNK)
        np.copyto(dh, dh_in)

    return forward, backward


def packed(T, B, H, n):
    """True where an LSTM pass of T steps (None: any), B rows and H units, in a region of
    ``n`` threads, runs its per-step GEMMs on a packed W_hh (``PACKED_*``, on hosts with
    AVX-512, with no more threads than the process's cores): from ``PACKED_MIN_B`` rows
    at ``H >= PACKED_MIN_H``; at one row up to ``PACKED_B1_L2_MAX_H`` too, from
    ``PACKED_B1_MIN_H``, and in between over ``PACKED_B1_MIN_T`` steps; all from
    ``PACKED_MIN_T`` steps."""
    if B >= PACKED_MIN_B:
        big = H >= PACKED_MIN_H
    else:  # one row: a matrix-vector product a step, bound by reading the panels
        big = B == 1 and (H >= PACKED_B1_MIN_H
                          or PACKED_MIN_H <= H <= PACKED_B1_L2_MAX_H
                          or H >= PACKED_MIN_H and (T is None or T >= PACKED_B1_MIN_T))
    long = T is None or T >= PACKED_MIN_T
    # each step waits for every thread: with more threads than the process may run at
    # once, a step waits for the scheduler (70x slower at 2 threads pinned to one core)
    return 2 <= n <= _usable_cores() and big and long and _packed_fast()


def _usable_cores():
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _packed_fast():
    """True where the packed GEMM's micro-kernel has AVX-512's 64-byte vectors (measured);
    elsewhere it runs, for the tests, but OpenBLAS keeps the per-step GEMMs."""
    if _numba_kernels() is None:
        return False
    from . import _packed_gemm

    return _packed_gemm.VECTOR_BYTES == 64


def _matvecs(w, x, out):
    """``out[b] = w @ x[b]`` for each row of ``x``: NumPy's matrix-vector product (BLAS GEMV)."""
    for b in range(x.shape[0]):
        np.matmul(w, x[b], out=out[b])


def matrix_vector(B, H):
    """True where the per-step LSTM GEMMs run as one matrix-vector product a row
    (up to ``MATRIX_VECTOR_MAX_B`` rows, from ``MATRIX_VECTOR_MIN_H`` units)."""
    return 1 <= B <= MATRIX_VECTOR_MAX_B and H >= MATRIX_VECTOR_MIN_H


def gemm_weight(w, B, T):
    """``W^T`` for a forward pass's per-step GEMM ``h @ W^T`` over ``T`` steps of ``B`` rows.

    A C-contiguous copy (made by a compiled loop: NumPy's own copy is 6x
    slower at (4096, 1024)) from ``TRANSPOSED_MIN_B`` rows and
    ``TRANSPOSED_MIN_T`` steps, where OpenBLAS runs the product 1.1-7x
    faster that way (NN) than on ``w`` read transposed (NT); else, and
    without numba or for dtypes other than float32/float64, the view ``w.T``.
    The result is the same product, to round-off.

    Parameters
    ----------
    w : ndarray (G, H)
        Recurrent weights.
    B, T : int
        Batch size and number of steps of the pass.

    Returns
    -------
    ndarray (H, G)
    """
    if (not copies_gemm_weight(B, T) or not enabled()
            or w.dtype not in (np.float32, np.float64)):
        return w.T
    kernels = _numba_kernels()
    return w.T if kernels is None else _transposed(kernels, w)


def copies_gemm_weight(B, T):
    """True from ``TRANSPOSED_MIN_B`` rows and ``TRANSPOSED_MIN_T`` steps, where
    :func:`gemm_weight` copies (with numba, float32/float64)."""
    return B >= TRANSPOSED_MIN_B and T >= TRANSPOSED_MIN_T


def _readable(w, dtype):
    """``w`` as the compiled loops and :func:`_transposed` read it: float32 and float64 as
    they are, any other dtype (a float16 array assigned to ``params``) in the layer's
    ``dtype``, which holds it exactly, as NumPy's matmul would promote it."""
    return w if w.dtype in (np.float32, np.float64) else w.astype(dtype)


def _transposed(kernels, w):
    """C-contiguous ``w.T`` by a compiled loop: NumPy's own copy is 6x slower at (4096, 1024)."""
    out = np.empty(w.shape[::-1], w.dtype)
    kernels.transpose_into(w, out)
    return out


def blas_loop(B, H):
    """True where the compiled unroll calls BLAS per step instead of the whole loop's
    plain-loop products (``BLAS_LOOP_*``)."""
    return (BLAS_LOOP_MIN_B <= B <= BLAS_LOOP_MAX_B
            and BLAS_LOOP_MIN_H <= H <= BLAS_LOOP_MAX_H)


class _Caller:
    """The calling thread alone, with the interface of :class:`Threads` (``run``)."""

    n = 1

    def run(self, fn, size):
        fn(0, size)


CALLER = _Caller()
MAX_THREADS = 256  # more threads than this in a region is a mistake, not a machine


class Threads:
    """Batch rows split over ``n`` threads, with NumPy's OpenBLAS on one thread meanwhile.

    A context manager: on entry OpenBLAS's thread count drops to 1 (it is
    process-wide, as with ``threadpoolctl``), and when the last one open in
    the process exits it is put back. Inside, :meth:`run` gives each of the
    ``n`` threads (the caller and ``n - 1`` workers of a pool kept for the
    process) a contiguous part of a range and :meth:`matmul` splits a GEMM's
    rows likewise, so that no OpenBLAS worker spins on a core one of ours
    needs (they spin about 0.1 s after each multi-threaded call).
    """

    def __init__(self, blas, n):
        self.blas = blas
        self.n = n

    def __enter__(self):
        with _blas_lock:
            if not _blas_saved:  # the first one open: later ones would read our 1
                _blas_saved.append(self.blas.get_num_threads())
                self.blas.set_num_threads(1)
            _blas_saved.append(None)
        return self

    def __exit__(self, *exc):
        with _blas_lock:
            if not _blas_saved:  # opened before a fork: the child already put it back
                return
            _blas_saved.pop()
            if len(_blas_saved) == 1:
                self.blas.set_num_threads(_blas_saved.pop())

    def run(self, fn, size):
        """Call ``fn(lo, hi)`` for ``n`` contiguous parts of ``range(size)``, in parallel.

        An error in any part is raised here, after all parts have ended. A ``fn``
        that calls compiled loops should have them compiled (or loaded) on the
        calling thread first (see :func:`_load_on_caller`).
        Once the interpreter is shutting down (no new threads), the parts
        run one after another on the calling thread; so does a part that no
        pool thread has begun once the caller's own part is done (waking an
        idle thread took 80 us to several ms on the project's virtual machine).
        """
        bounds = [size * i // self.n for i in range(self.n + 1)]
        futures, here = [], [0]
        for i in range(1, self.n):
            try:
                futures.append((i, _pool(self.n - 1).submit(fn, bounds[i], bounds[i + 1])))
            except RuntimeError:  # "cannot schedule new futures after (interpreter) shutdown"
                here.append(i)
        try:
            for i in here:
                fn(bounds[i], bounds[i + 1])
            for i, f in futures:  # a part no thread has begun (one not woken yet): here
                if f.cancel():
                    fn(bounds[i], bounds[i + 1])
        finally:
            for _, f in futures:
                if not f.cancel():
                    f.result()

    def matmul(self, a, b, out=None):
        """``a @ b`` for 2-D arrays, into ``out`` (a new array if None), the rows of ``a``
        split over the threads."""
        if out is None:
            out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
        if a.shape[0] * a.shape[1] * b.shape[1] < SPLIT_MIN_MNK:
            return np.matmul(a, b, out=out)
        self.run(lambda lo, hi: np.matmul(a[lo:hi], b, out=out[lo:hi]), a.shape[0])
        return out


def matmul(threads, a, b, out=None):
    """``a @ b`` for 2-D arrays: split by rows over ``threads`` (a :class:`Threads`), or
    NumPy's one call where ``threads`` is None."""
    if threads is None:
        return np.matmul(a, b, out=out)
    return threads.matmul(a, b, out)


_blas_lock = threading.Lock()
_blas_saved = []  # [OpenBLAS's own count, then one None per open Threads]
_pool_state = []  # [(pid, workers, ThreadPoolExecutor)]: one pool, grown when needed
_pool_lock = threading.Lock()


def _pool(workers):
    """The thread pool kept for the process (its threads sleep while idle), with at least
    ``workers`` threads. A new one after ``os.fork``: the child has none of the parent's
    threads."""
    with _pool_lock:
        if _pool_state:
            pid, size, pool = _pool_state[0]
            if pid == os.getpid() and size >= workers:
                return pool
            if pid == os.getpid():
                pool.shutdown(wait=False)  # its idle threads end; work in flight finishes
        pool = ThreadPoolExecutor(workers, thread_name_prefix="rnnkit")
        _pool_state[:] = [(os.getpid(), workers, pool)]
        return pool


_SERIAL = object()  # the region of a parallel() that has one thread: nothing is split
# the region a piece of code runs in: a context variable, so that regions of asyncio tasks
# or generators closed out of order each put back their own (a new thread starts outside)
_region = contextvars.ContextVar("rnnkit_parallel_region", default=None)


def _after_fork_in_child():
    """A forked child keeps no region: OpenBLAS's count goes back to the one before any."""
    with _blas_lock:
        if _blas_saved:
            kernels = _numba_kernels() if not _import_failed else None
            if kernels is not None and kernels.BLAS is not None:
                kernels.BLAS.set_num_threads(_blas_saved[0])
            _blas_saved.clear()
    _region.set(None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _thread_count(value, name):
    """``value`` as a thread count, or the error that says what was expected."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"parallel: {name} must be an integer, got {type(value).__name__}")
    if not 1 <= value <= MAX_THREADS:
        raise ValueError(f"parallel: {name} must be between 1 and {MAX_THREADS}, got {value}")
    return int(value)


@contextlib.contextmanager
def parallel(num_threads=None):
    """A region in which rnnkit's LSTM layers and linear layers split their work over threads.

    Inside, NumPy's OpenBLAS runs on one thread (a process-wide setting, put
    back on exit, as ``threadpoolctl.threadpool_limits`` does) and rnnkit
    uses ``num_threads`` threads of its own: an LSTM layer with at least
    ``THREADED_MIN_ROWS`` batch rows a thread and ``H <= THREADED_MAX_H``
    runs each thread's rows through the whole unroll, one from H = 256
    (:func:`packed`) splits each step's GEMM on a packed W_hh over the
    threads, and its other GEMMs and those of ``Linear`` layers are split by
    rows. ``SequenceModel``
    enters it by itself where its LSTM qualifies. Outside a region the
    layers use one thread plus OpenBLAS's own, because a multi-threaded
    GEMM leaves OpenBLAS's workers spinning on the cores for about 0.1 s:
    had a layer split its work on its own, right after the program's own
    GEMM (an output layer's), it would have been up to 1.6x slower.

    Everything the program runs inside the region should be rnnkit's
    layers (or need no BLAS threads): other NumPy GEMMs there, from any
    thread of the process, run on one thread. The region belongs to the
    code that opened it (a context variable: other threads, and asyncio
    tasks started before it, are outside).

    Parameters
    ----------
    num_threads : int, optional
        Threads to use, 1 to ``MAX_THREADS``; default: OpenBLAS's thread
        count on entry (so ``threadpoolctl.threadpool_limits`` set outside
        still rules), or the enclosing region's. 1 keeps everything inside
        on one thread, ``SequenceModel`` included.

    Yields
    ------
    Threads or None
        None where there is nothing to split (one thread, no numba,
        ``RNNKIT_COMPILED=0`` or ``RNNKIT_THREADED=0``, or a NumPy whose BLAS
        is not its bundled OpenBLAS): the region then changes nothing.

    Raises
    ------
    TypeError
        If ``num_threads`` is not an integer.
    ValueError
        If ``num_threads`` is not between 1 and ``MAX_THREADS``, or as
        :func:`threads_setting`.

    Examples
    --------
    >>> import numpy as np, rnnkit
    >>> lstm = rnnkit.LSTM(8, 32, rng=0)
    >>> x = np.zeros((20, 128, 8), np.float32)
    >>> with rnnkit.parallel():
    ...     out, _ = lstm(x)
    ...     _ = lstm.backward(np.ones_like(out))
    """
    if num_threads is not None:
        num_threads = _thread_count(num_threads, "num_threads")
    outer = _region.get()
    kernels = _numba_kernels() if enabled() and threads_setting() != 0 else None
    blas = None if kernels is None else kernels.BLAS
    n = 1
    if blas is not None:
        if num_threads is not None:
            n = num_threads
        elif isinstance(outer, Threads):
            n = outer.n
        elif outer is None:
            n = blas.get_num_threads()
    threads = Threads(blas, n) if n >= 2 else None
    with threads or contextlib.nullcontext():
        token = _region.set(threads or _SERIAL)
        try:
            yield threads
        finally:
            _region.reset(token)


def current_threads():
    """The :class:`Threads` of the :func:`parallel` region this code runs in, or None."""
    region = _region.get()
    return region if isinstance(region, Threads) else None


def lstm_threads(T, B, H, dtype):
    """The :class:`Threads` an LSTM layer's pass should use, or None for one thread.

    Inside a :func:`parallel` region, those of the region where the pass
    pays to split (with numba, float32/float64, and NumPy's bundled
    OpenBLAS): from ``THREADED_MIN_T`` steps, ``H <= THREADED_MAX_H`` and
    ``THREADED_MIN_ROWS`` batch rows a thread, or from
    ``THREADED_SMALL_MIN_ROWS`` rows where the threads' GEMMs take OpenBLAS's
    small-matrix kernels (see ``SMALL_GEMM_MNK``), or where each step's GEMM
    runs on a packed W_hh over the threads (:func:`packed`). ``RNNKIT_THREADED=0`` (or
    false, off, no) turns threads off; an integer N >= 2 uses N threads
    whenever ``B >= N``, region or not (for tests and experiments).

    Parameters
    ----------
    T, B, H : int
        Steps, batch size and hidden size of the pass.
    dtype : numpy dtype

    Raises
    ------
    ValueError
        If ``RNNKIT_THREADED`` holds anything else.
    """
    forced = threads_setting()
    blas = None if forced == 0 else _openblas(dtype)
    if blas is None:
        return None
    if forced is not None:
        return Threads(blas, forced) if B >= forced else None
    region = current_threads()
    if region is None:
        return None
    split = _splits(T, B, H, region.n, blas) or packed(T, B, H, region.n)
    return region if split else None


def lstm_region(T, B, H, dtype):
    """:func:`parallel` where an LSTM pass of T steps, B rows and H units would split its
    batch, else a null context (also inside any region already, one of one thread
    included): what ``SequenceModel`` enters around its passes."""
    if _region.get() is not None or threads_setting() is not None:
        return contextlib.nullcontext()
    blas = _openblas(dtype)
    n = 1 if blas is None else blas.get_num_threads()
    split = _splits(T, B, H, n, blas) or blas is not None and packed(T, B, H, n)
    return parallel(n) if split else contextlib.nullcontext()


def _openblas(dtype):
    """NumPy's OpenBLAS (:mod:`rnnkit.cells._blas`) where the compiled loops run for
    ``dtype``, else None."""
    if not enabled() or np.dtype(dtype) not in (np.float32, np.float64):
        return None
    kernels = _numba_kernels()
    return None if kernels is None else kernels.BLAS


def _splits(T, B, H, n, blas):
    """True where an LSTM pass of T steps, B rows and H units pays to split over n threads."""
    if n < 2 or H > THREADED_MAX_H or T < THREADED_MIN_T:
        return False
    rows = B // n
    if rows >= THREADED_MIN_ROWS:
        return True
    return (rows >= THREADED_SMALL_MIN_ROWS and H <= THREADED_SMALL_MAX_H
            and B * H > max_units() and small_gemm(blas))


def small_gemm(blas):
    """True where NumPy's OpenBLAS (an :class:`rnnkit.cells._blas.OpenBLAS`) has the
    small-matrix GEMM kernels (``SMALL_GEMM_CORES``)."""
    return blas is not None and blas.corename in SMALL_GEMM_CORES


def gemm_rows(blas, rows, K, N):
    """Rows per BLAS call for a one-thread GEMM of ``rows`` rows by a (K, N) matrix.

    Blocks that OpenBLAS's small-matrix kernels take (``rows * K * N <=
    SMALL_GEMM_MNK``, a multiple of 4 rows, at least ``SMALL_GEMM_MIN_ROWS``)
    where it has them, else all ``rows`` in one call.
    """
    fit = SMALL_GEMM_MNK // (K * N) // 4 * 4
    if small_gemm(blas) and max(SMALL_GEMM_MIN_ROWS, 1) <= fit < rows:
        return fit
    return max(rows, 1)


def threads_setting():
    """``RNNKIT_THREADED``: None (unset or on: by size), 0 (off) or a forced count >= 2.

    Raises
    ------
    ValueError
        If the variable holds anything else.
    """
    value = os.environ.get("RNNKIT_THREADED", "").strip().lower()
    if value in _OFF:
        return 0
    if value in _ON:
        return None
    count = int(value) if value.isascii() and value.isdigit() else -1
    if count in (0, 1):
        return None if count else 0
    if 2 <= count <= MAX_THREADS:
        return count
    raise ValueError("RNNKIT_THREADED must be 0 or 1 (or false/true, off/on, no/yes), or a "
                     f"thread count from 2 to {MAX_THREADS}, got "
                     f"{os.environ['RNNKIT_THREADED']!r}")


def check_settings():
    """Raise now if ``RNNKIT_COMPILED``, ``RNNKIT_COMPILED_MAX_UNITS`` or ``RNNKIT_THREADED``
    is invalid.

    ``LSTM.backward`` calls it before it consumes the forward pass's cache,
    so that a bad value does not cost the forward pass.

    Raises
    ------
    ValueError
        As :func:`enabled`, :func:`max_units` and :func:`threads_setting`.
    """
    threads_setting()
    if enabled():
        max_units()


def column_major(B, H):
    """True where the per-step GEMMs write column-major output (see ``COLUMN_MAJOR_MAX_B``)."""
    return 1 < B <= COLUMN_MAJOR_MAX_B and H >= COLUMN_MAJOR_MIN_H


def available():
    """True when numba is installed, so the compiled loops can run."""
    return _numba_kernels() is not None
