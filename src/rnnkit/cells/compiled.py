"""Optional compiled time loops (numba) for small LSTM steps, and when to use them.

At small sizes (B*H of a few hundred units) a NumPy step is dominated by the
cost of calling ~20 ufuncs and two GEMMs per step (about 1 us each), not by
arithmetic. These loops run the whole unroll and its backward pass as one
compiled function: the same equations as :mod:`rnnkit.cells.lstm`, the same
cache layout, so either path's backward consumes either path's forward. The
NumPy loops stay the reference; the two agree to round-off (the recurrent
sums run in a different order, and float32 ``exp``/``tanh`` are evaluated
by ``rnnkit.cells._compiled_kernels``), which the tests check.

Used only when numba is installed (``pip install "rnnkit[fast]"``), the step
is small (``B * H <= RNNKIT_COMPILED_MAX_UNITS``, default 256: measured
faster than the NumPy loop up to there; at B=1, H=512 the compiled
matrix-vector product reads W_hh^T from memory at each step and NumPy's BLAS
was 1.4x (training) to 2.5x (inference) faster) and the environment
variable ``RNNKIT_COMPILED`` is not 0 (or false, off, no).
The matrix products are plain loops here (no second BLAS thread pool next to
NumPy's); there is no projection (``proj_size``) variant.

Reference: numba (Lam, Pitrou & Seibert, 2015), https://numba.pydata.org.
"""

from __future__ import annotations

import os

import numpy as np

DEFAULT_MAX_UNITS = 256

_OFF = {"0", "false", "off", "no"}
_ON = {"", "1", "true", "on", "yes"}


_import_failed = []  # non-empty once importing numba failed: not retried at every step


def _numba_kernels():
    """The compiled-loop module (numba caches its loops on disk); None without numba."""
    if _import_failed:
        return None
    try:
        from . import _compiled_kernels
    except ImportError as e:
        _import_failed.append(e)
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
    """The largest ``B * H`` the compiled loops take (``RNNKIT_COMPILED_MAX_UNITS``).

    Raises
    ------
    ValueError
        If the variable is not an integer.
    """
    value = os.environ.get("RNNKIT_COMPILED_MAX_UNITS", "").strip()
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

    Returns
    -------
    (forward, backward) or None
        ``forward(gx, h, c, tanh_c, w_hh, mask)`` and ``backward(d_output, dh,
        dc, gates, c, tanh_c, w_hh, mask)`` with the arguments of the NumPy
        loops (``mask`` (T, B) bool or None).
    """
    if not enabled():
        return None
    if B * H > max_units() or np.dtype(dtype) not in (np.float32, np.float64):
        return None
    kernels = _numba_kernels()
    if kernels is None:
        return None
    one = np.dtype(dtype).type(1.0)

    def forward(gx, h, c, tanh_c, w_hh, mask):
        kernels.lstm_forward_loop(gx, h, c, tanh_c, np.ascontiguousarray(w_hh.T), mask)

    def backward(d_output, dh, dc, gates, c, tanh_c, w_hh, mask):
        kernels.lstm_backward_loop(d_output, dh, dc, gates, c, tanh_c, w_hh, mask, one)

    return forward, backward


def available():
    """True when numba is installed, so the compiled loops can run."""
    return _numba_kernels() is not None
