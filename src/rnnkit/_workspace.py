"""Reused buffers for the large arrays of a pass (the cache BPTT keeps, the projections).

Every forward pass allocates arrays of T*B*H numbers. Memory of that size
comes fresh from the operating system (glibc serves it with mmap from
``MIN_BYTES``, its default threshold, and gives it back on free), and the
first touch of each page is a page fault: at B=128, T=200, H=32 that was
about 40% of an LSTM training step, and at B=128, T=50, H=32 the copy of
the input (819 KB) took 380 us inside a pass against 21 us alone. Like
PyTorch's caching allocator, this pool keeps the arrays a finished step let
go of and hands them out again.

A buffer is handed out again only when nothing but the pool refers to it
(``sys.getrefcount``): an output, a cache, or any view of them that a caller
still holds keeps the buffer out of reuse, so reuse can never change an
array someone can see. Only holders that keep no reference are not seen: a
raw pointer (``arr.ctypes.data``), a copy of ``__array_interface__``, a
weakref; rnnkit itself keeps none of these. Idle buffers beyond
``MAX_IDLE_BYTES``, or beyond ``MAX_IDLE_ARRAYS`` of them (each call looks
at every one), are released, oldest first, at every call; :func:`clear`
(``rnnkit.empty_cache()``) releases them all, for instance after training.
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np

MAX_IDLE_BYTES = 1 << 30
MAX_IDLE_ARRAYS = 256
# smaller arrays come from malloc's own free lists (below glibc's mmap threshold): not
# pooled. Session 10, against 1 MiB: LSTM inference B=32-128, T=50, H=32 0.46-0.50x
# (training 0.73x), B=32, H=128 0.76x, B=1, T=200, H=128 0.89x; RNN 0.45-0.69x
MIN_BYTES = 1 << 17
_lock = threading.Lock()
_pool = []  # arrays handed out, least recently used first


def _refs(pool, i):
    """``sys.getrefcount`` of ``pool[i]`` as seen from here (the same code for every check)."""
    buf = pool[i]
    return sys.getrefcount(buf)


# what _refs reports for an array only a list holds: measured, not assumed, since the
# interpreter's own temporary references differ between Python versions (3.14 borrows some)
_IDLE = _refs([np.empty(1)], 0)


def empty(shape, dtype):
    """An uninitialized C-contiguous array, reused from the pool when one is idle.

    Parameters
    ----------
    shape : tuple of int
    dtype : numpy dtype

    Returns
    -------
    ndarray
        Contents undefined, as ``np.empty``.
    """
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize * math.prod(shape)  # Python ints: exact, and 10x np.prod's speed
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype)
    with _lock:
        for i in range(len(_pool) - 1, -1, -1):
            buf = _pool[i]
            if buf.shape == shape and buf.dtype == dtype and _refs(_pool, i) == _IDLE + 1:
                del _pool[i]  # (+1: this loop's variable)
                _pool.append(buf)  # most recently used
                break
        else:
            buf = np.empty(shape, dtype)
            _pool.append(buf)
        _release_idle(MAX_IDLE_BYTES)  # at every call: arrays let go since count too
        return buf


def _release_idle(limit, max_arrays=None):
    max_arrays = MAX_IDLE_ARRAYS if max_arrays is None else max_arrays
    idle = count = 0
    for i in range(len(_pool) - 1, -1, -1):  # newest first: the oldest go
        if _refs(_pool, i) == _IDLE:
            idle += _pool[i].nbytes
            count += 1
            if idle > limit or count > max_arrays:
                del _pool[i]


def clear():
    """Release every idle buffer (the memory finished steps let go of).

    Public as ``rnnkit.empty_cache()`` (PyTorch's ``torch.cuda.empty_cache``
    does the same for its caching allocator). Buffers still in use stay.
    """
    with _lock:
        _release_idle(0)
