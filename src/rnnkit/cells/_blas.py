"""NumPy's own OpenBLAS, reached through ctypes: its GEMM and its thread count.

The threaded LSTM path (:mod:`rnnkit.cells.compiled`) calls the GEMM from
inside its compiled loops, one call per step on each thread, so it needs
the same library NumPy uses (a second BLAS would bring a second pool of
spinning threads), and it runs that library on one thread while its own
threads work.

NumPy's wheels ship OpenBLAS built for 64-bit integers with a name suffix:
``scipy_cblas_sgemm64_`` in NumPy 2 (``libscipy_openblas64_``), and
``cblas_sgemm64_`` in the 1.2x wheels (``libopenblas64_``). Any other BLAS
(a conda MKL build, Apple's Accelerate) is not found here, and rnnkit keeps
its other paths.

Reference: OpenBLAS's C interface (``cblas.h``, ``openblas_set_num_threads``),
https://github.com/OpenMathLib/OpenBLAS.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading

import numpy as np

# (GEMM float32, GEMM float64, set threads, get threads, core name) in each naming of
# NumPy's wheels
_NAMES = (
    ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", "scipy_openblas_set_num_threads64_",
     "scipy_openblas_get_num_threads64_", "scipy_openblas_get_corename64_"),
    ("cblas_sgemm64_", "cblas_dgemm64_", "openblas_set_num_threads64_",
     "openblas_get_num_threads64_", "openblas_get_corename64_"),
)
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # the CBLAS enum values

_found = []  # [OpenBLAS or None], filled by the first call of find()
_lock = threading.Lock()


class OpenBLAS:
    """The functions of NumPy's OpenBLAS that rnnkit uses.

    Attributes
    ----------
    path : str
        The shared library.
    sgemm, dgemm : int
        Addresses of ``cblas_sgemm`` and ``cblas_dgemm`` (64-bit integer
        arguments).
    corename : str
        The kernels OpenBLAS chose for this CPU (``"SkylakeX"``, ``"Haswell"``,
        ...), as ``threadpoolctl`` reports them; empty if the library does
        not say.
    """

    def __init__(self, path, lib, names):
        self.path = path
        self.sgemm = ctypes.cast(getattr(lib, names[0]), ctypes.c_void_p).value
        self.dgemm = ctypes.cast(getattr(lib, names[1]), ctypes.c_void_p).value
        self._set = getattr(lib, names[2])
        self._set.argtypes, self._set.restype = [ctypes.c_int], None
        self._get = getattr(lib, names[3])
        self._get.argtypes, self._get.restype = [], ctypes.c_int
        self.corename = ""
        if hasattr(lib, names[4]):
            corename = getattr(lib, names[4])
            corename.argtypes, corename.restype = [], ctypes.c_char_p
            self.corename = (corename() or b"").decode("ascii", "replace")

    def get_num_threads(self):
        """The number of threads OpenBLAS's GEMM runs on now."""
        return self._get()

    def set_num_threads(self, n):
        """Set OpenBLAS's thread count (process-wide, as ``threadpoolctl`` does)."""
        self._set(int(n))


def _candidates():
    """Shared libraries next to NumPy that may be its OpenBLAS (Linux, macOS, Windows wheels)."""
    root = os.path.dirname(np.__file__)
    patterns = [os.path.join(root, os.pardir, "numpy.libs", "*openblas*"),
                os.path.join(root, ".dylibs", "*openblas*")]
    return sorted(p for pattern in patterns for p in glob.glob(pattern))


def find():
    """NumPy's OpenBLAS as an :class:`OpenBLAS`, or None where NumPy uses another BLAS.

    Looked up once per process.
    """
    with _lock:
        if not _found:
            _found.append(_load())
        return _found[0]


def _load():
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)  # already loaded by NumPy: this returns the same library
        except OSError:
            continue
        for names in _NAMES:
            if all(hasattr(lib, name) for name in names[:4]):  # the core name may be absent
                return OpenBLAS(path, lib, names)
    return None
