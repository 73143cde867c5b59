"""Argument and array checks with PyTorch-style messages: what was expected, what came.

Every public entry point validates through these helpers so that bad input
gets a ``ValueError`` or ``TypeError`` that names the argument, never a
traceback from deep inside NumPy.
"""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_int(value, name, *, minimum=None):
    """Return ``value`` as an int; raise TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_float(value, name, *, low=None, high=None, low_open=False, high_open=False):
    """Return ``value`` as a finite float within the given bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} should be a number, got: {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        bound = "(" if low_open else "["
        raise ValueError(f"{name} should be a number in range {bound}{low}, ...), got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        bound = ")" if high_open else "]"
        raise ValueError(f"{name} should be a number in range [..., {high}{bound}, got {value}")
    return value


def check_choice(value, name, choices):
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        opts = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {opts}, got {value!r}")
    return value


def as_dtype(dtype, name="dtype"):
    """Return a NumPy float dtype (float32 or float64) or raise TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {dt}")
    return dt


def as_array(x, name, owner=None):
    """``np.asarray(x)``, refusing a ragged or unconvertible ``x`` with a message naming it."""
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as exc:  # e.g. nested lists of different lengths
        prefix = f"{owner}: " if owner else ""
        raise ValueError(f"{prefix}{name} must be an array with a regular shape, got a "
                         f"{type(x).__name__} that NumPy cannot convert ({exc})") from None


def as_float_array(x, name, dtype, *, ndims, owner):
    """Convert ``x`` to an ndarray of ``dtype`` after checking type, rank and finiteness.

    Parameters
    ----------
    x : array_like
    name : str
        The argument's name in messages (``"input"``, ``"hx"``).
    dtype : numpy.dtype
        The layer's dtype. Float input of another dtype is refused, as in
        PyTorch; integer or object input is refused.
    ndims : tuple of int
        Accepted ranks.
    owner : str
        The class name that prefixes the message (``"LSTM"``).
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{owner}: {name} must be an array of numbers ({exc})") from None
    if x.dtype.kind not in "fiub" or x.dtype.kind == "b":
        raise TypeError(f"{owner}: {name} must be a float array, got dtype {x.dtype}")
    if x.dtype.kind in "iu":
        raise TypeError(
            f"{owner}: {name} must have dtype {dtype}, got integer dtype {x.dtype}"
        )
    if x.dtype != dtype:
        raise TypeError(
            f"{owner}: {name} must have dtype {dtype} (the layer's dtype), got {x.dtype}; "
            f"cast it with .astype(np.{dtype}) or build the layer with dtype=np.{x.dtype}"
        )
    if x.ndim not in ndims:
        want = " or ".join(f"{d}D" for d in ndims)
        raise ValueError(f"{owner}: Expected {name} to be {want}, got {x.ndim}D array instead")
    # NaN propagates through min and max, and an inf is one of them: the same answer as
    # np.isfinite(x).all() without a boolean array the size of x
    if x.size and not (np.isfinite(x.min()) and np.isfinite(x.max())):
        raise ValueError(f"{owner}: {name} contains NaN or infinite values")
    return x


def check_shape(x, expected, name, owner):
    """Raise ValueError unless ``x.shape == expected``."""
    if tuple(x.shape) != tuple(expected):
        raise ValueError(
            f"{owner}: Expected {name} size {tuple(expected)}, got {tuple(x.shape)}"
        )


def as_generator(rng, name="rng"):
    """Return a ``np.random.Generator`` from a seed, a Generator or None.

    None gives a fresh generator seeded from the operating system (not the
    global NumPy state); an int seed gives the same bits on every run.
    """
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"{name} seed must be non-negative, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"{name} must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}"
    )
