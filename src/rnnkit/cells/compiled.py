"""Optional compiled LSTM loops (numba), and when to use them.

A NumPy LSTM step calls ~20 ufuncs (one pass over memory and about 1 us of
call overhead each) around its two GEMMs, so below the GEMM-bound sizes
most of its time is not arithmetic. With numba installed the loops run
compiled, in one of two forms:

- the whole unroll and its backward pass as one call (``B * H <=
  RNNKIT_COMPILED_MAX_UNITS``, default 1024, and ``H <= 256``): its matrix
  products are plain loops, four batch rows per pass over W_hh, so there is
  no second BLAS thread pool next to NumPy's;
- above that, each step is NumPy's GEMM (its BLAS, its threads) followed by
  one compiled call that does all of the step's elementwise work in a few
  passes (the bias add, the activations, the cell and hidden state; in the
  backward pass the gate derivatives).

Measured on the project's 2-core machine (a whole float32 training step,
input size 32, T = 50, against the same step on the NumPy loops): 0.45x at
B=1, H=128 and 0.55-0.75x at B*H <= 1024 with the whole unroll; 0.68-0.8x
with the per-step kernels at B = 32-128, H = 128, and 0.87-0.9x from H = 512
(B=1 included), where the GEMMs take most of the step. Both keep the NumPy
loops' equations and cache layout, so either backward consumes either
forward. The NumPy loops stay the reference; the paths agree to round-off
(the recurrent sums run in another order, float32 ``exp``/``tanh`` are
evaluated by ``rnnkit.cells._compiled_kernels``), which the tests check.

The compiled loops run on the calling thread only. Batch rows never meet in
the recurrence, so two threads could take half the rows each, and on idle
cores that made the whole unroll 1.9x faster; but after any multi-threaded
GEMM, OpenBLAS's worker threads spin for about 0.1 s (2^28 cycles) before
they sleep, and a second thread shared its core with them: no faster at all.

``RNNKIT_COMPILED=0`` (or false, off, no) forces the NumPy loops. There is no
projection (``proj_size``) variant.

Reference: numba (Lam, Pitrou & Seibert, 2015), https://numba.pydata.org.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

DEFAULT_MAX_UNITS = 1024  # largest B*H for the whole-unroll loop
WHOLE_MAX_H = 256  # above, W_hh^T (4 H^2 numbers) no longer stays in cache between rows
# batch and hidden sizes whose recurrent GEMMs write column-major output (backward reads
# W_hh as the transpose of a contiguous W_hh^T): OpenBLAS is 1.1-1.5x faster so at B = 32,
# H >= 512, and the training step 0.85-0.9x at B = 16-32, H = 256; below H = 256 the step
# kernels' strided reads of the GEMM output cost more than the GEMMs gain (B=32, H=128:
# 8.5 ms row-major, 9.3 column-major), and at B = 128 too (19.0 vs 15.4 ms)
COLUMN_MAJOR_MAX_B = 64
COLUMN_MAJOR_MIN_H = 256

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
        return None
    try:
        from . import _compiled_kernels
    except ImportError as e:
        _import_failed.append(e)
        return None
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


def lstm_kernels(B, H, dtype):
    """The compiled (forward, backward) loops if they should run this step, else None.

    Parameters
    ----------
    B, H : int
        Batch size and hidden size of the step.
    dtype : numpy dtype
        float32 or float64 (others stay on the NumPy path).

    Returns
    -------
    (forward, backward) or None
        ``forward(gx, h, c, tanh_c, w_hh, mask, bias)`` and ``backward(d_output,
        dh, dc, gates, c, tanh_c, w_hh, mask)`` with the arguments of the NumPy
        loops (``mask`` (T, B) bool or None, ``bias`` (4H,) or None: added to
        ``gx``). Up to ``max_units()`` units (``B * H``, with ``H <= 256``)
        the whole unroll is one compiled call; above, each step is NumPy's
        GEMM followed by one compiled call for all of the step's elementwise
        work.
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

    def transposed(w):  # C-contiguous w.T: NumPy's own copy is 6x slower at (4096, 1024)
        out = np.empty(w.shape[::-1], w.dtype)
        kernels.transpose_into(w, out)
        return out

    if whole:
        def forward(gx, h, c, tanh_c, w_hh, mask, bias):
            if bias is not None:
                gx += bias
            kernels.lstm_forward_loop(gx, h, c, tanh_c, transposed(w_hh), mask)

        def backward(d_output, dh, dc, gates, c, tanh_c, w_hh, mask):
            kernels.lstm_backward_loop(d_output, dh, dc, gates, c, tanh_c, w_hh, mask, one)

        return forward, backward

    order = "F" if column_major(B, H) else "C"

    def forward_steps(gx, h, c, tanh_c, w_hh, mask, bias):
        T, B, G = gx.shape
        gh = np.empty((B, G), gx.dtype, order=order)
        w_hh_T = w_hh.T
        for t in range(T):
            np.matmul(h[t], w_hh_T, out=gh)
            kernels.lstm_forward_step(gx[t], gh, bias, c[t], c[t + 1], tanh_c[t], h[t], h[t + 1],
                                      None if mask is None else mask[t])

    def backward_steps(d_output, dh, dc, gates, c, tanh_c, w_hh, mask):
        keep = np.empty_like(dh)
        dh_in = np.empty(dh.shape, dh.dtype, order=order)  # the GEMM's output
        np.copyto(dh_in, dh)
        # column-major output: W_hh read as the transpose of a contiguous W_hh^T is faster
        w_hh_T = transposed(w_hh) if order == "F" else w_hh.T
        for t in range(gates.shape[0] - 1, -1, -1):
            valid = None if mask is None else mask[t]
            padded = kernels.lstm_backward_step(None if d_output is None else d_output[t], dh_in,
                                                dh, dc, gates[t], c[t], tanh_c[t], valid, keep,
                                                one)
            np.matmul(gates[t], w_hh_T.T, out=dh_in)  # dh_prev = dgates @ W_hh
            if padded:
                np.copyto(dh_in, keep, where=~valid[:, None])
        np.copyto(dh, dh_in)

    return forward_steps, backward_steps


def check_settings():
    """Raise now if ``RNNKIT_COMPILED`` or ``RNNKIT_COMPILED_MAX_UNITS`` is invalid.

    ``LSTM.backward`` calls it before it consumes the forward pass's cache,
    so that a bad value does not cost the forward pass.

    Raises
    ------
    ValueError
        As :func:`enabled` and :func:`max_units`.
    """
    if enabled():
        max_units()


def column_major(B, H):
    """True where the per-step GEMMs write column-major output (see ``COLUMN_MAJOR_MAX_B``)."""
    return 1 < B <= COLUMN_MAJOR_MAX_B and H >= COLUMN_MAJOR_MIN_H


def available():
    """True when numba is installed, so the compiled loops can run."""
    return _numba_kernels() is not None
