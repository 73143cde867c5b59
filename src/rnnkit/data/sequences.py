"""Labelled sequences: validation, padding to time-major batches with lengths, batching.

The recurrent layers take a padded batch ``x (T, B, D)`` and the valid
``lengths (B,)``, with PyTorch's packed-sequence semantics (each sequence
stops at its own length; padded steps never move the state). This module
turns what users hold into that form:

- a list of arrays ``(T_i, D)`` (or ``(T_i,)`` for univariate sequences) of
  different lengths: :func:`pad_sequences`;
- a padded batch-major array ``(N, T, D)`` (or ``(N, T)``) with or without
  ``lengths``: :func:`as_padded`;
- and it serves batches ``(x, y, lengths)`` to :class:`rnnkit.Trainer`
  through :class:`SequenceBatches`.

Padding is zeroed, so whatever a user put there (even NaN) never reaches
the model; finiteness is checked on the valid steps only.

Shape letters: T steps (``T_max`` the longest), B batch, N samples, D
features per step.

Examples
--------
>>> import numpy as np
>>> from rnnkit.data.sequences import pad_sequences
>>> x, lengths = pad_sequences([np.ones((3, 2)), np.ones((1, 2))])
>>> x.shape, lengths.tolist()
((3, 2, 2), [3, 1])
>>> x[:, 1, 0].tolist()  # the second sequence: one step, then padding
[1.0, 0.0, 0.0]
"""

from __future__ import annotations

import numbers

import numpy as np

from .._validation import as_dtype, check_int

__all__ = [
    "SequenceBatches",
    "as_padded",
    "check_sequences",
    "pad_sequences",
    "unpad",
]


def _as_float(a, what, dtype):
    """``a`` as a float ndarray of ``dtype``; clear errors for non-numeric or complex data."""
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise ValueError(f"{what} must be an array of numbers ({exc})") from None
    if arr.dtype.kind == "c":
        raise ValueError(f"{what} is complex; only real numbers are supported")
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (ValueError, TypeError):
            raise ValueError(f"{what} must contain numbers, got dtype {arr.dtype}") from None
    return arr.astype(dtype, copy=False)


def check_sequences(sequences, *, dtype=np.float64, name="sequences"):
    """Validate a list of sequences and return them as 2-D float arrays.

    Parameters
    ----------
    sequences : sequence of array_like
        Each of shape ``(T_i, D)``, or ``(T_i,)`` for a univariate sequence
        (read as ``(T_i, 1)``). The lengths ``T_i`` may differ; ``D`` may not.
    dtype : {np.float32, np.float64}, default=np.float64
    name : str, default='sequences'
        How the argument is called in error messages.

    Returns
    -------
    list of ndarray of shape (T_i, D)

    Raises
    ------
    ValueError
        An empty list, an empty sequence (``T_i = 0``), a sequence of rank
        other than 1 or 2, inconsistent feature counts, NaN or infinite
        values, non-numeric data. Each message names the offending index.
    TypeError
        ``sequences`` is a string, a single number or not iterable.
    """
    dtype = as_dtype(dtype)
    if isinstance(sequences, (str, bytes, numbers.Number)) or not hasattr(sequences, "__len__"):
        raise TypeError(f"{name} must be a list of arrays, got {type(sequences).__name__}")
    if len(sequences) == 0:
        raise ValueError(f"{name} is empty: need at least one sequence")
    out = []
    D = None
    for i, s in enumerate(sequences):
        a = _as_float(s, f"{name}[{i}]", dtype)
        if a.ndim == 1:
            a = a[:, None]  # (T_i,) -> (T_i, 1)
        elif a.ndim != 2:
            raise ValueError(f"{name}[{i}] must be 1-D (T,) or 2-D (T, D), got {a.ndim}-D "
                             f"with shape {a.shape}")
        if a.shape[0] == 0:
            raise ValueError(f"{name}[{i}] is an empty sequence (0 steps); every sequence "
                             "needs at least one step")
        if a.shape[1] == 0:
            raise ValueError(f"{name}[{i}] has 0 features per step")
        if D is None:
            D = a.shape[1]
        elif a.shape[1] != D:
            raise ValueError(f"{name}[{i}] has {a.shape[1]} features per step, but {name}[0] "
                             f"has {D}: every sequence needs the same number of features")
        if not np.isfinite(a).all():
            t = int(np.argwhere(~np.isfinite(a))[0, 0])
            raise ValueError(f"{name}[{i}] contains NaN or infinite values (first at step {t})")
        out.append(a)
    return out


def pad_sequences(sequences, *, dtype=np.float64, padding_value=0.0, batch_first=False):
    """Stack sequences of different lengths into one padded array plus their lengths.

    Like ``torch.nn.utils.rnn.pad_sequence``, time-major by default, and it
    also returns the lengths that the recurrent layers take.

    Parameters
    ----------
    sequences : sequence of array_like of shape (T_i, D) or (T_i,)
        Validated by :func:`check_sequences`.
    dtype : {np.float32, np.float64}, default=np.float64
    padding_value : float, default=0.0
    batch_first : bool, default=False
        Return ``(B, T_max, D)`` instead of ``(T_max, B, D)``.

    Returns
    -------
    x : ndarray of shape (T_max, B, D), or (B, T_max, D) if ``batch_first``
    lengths : ndarray of int64, shape (B,)

    Raises
    ------
    ValueError, TypeError
        As :func:`check_sequences`.
    """
    seqs = check_sequences(sequences, dtype=dtype)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    T, B, D = int(lengths.max()), len(seqs), seqs[0].shape[1]
    x = np.full((T, B, D), padding_value, dtype=seqs[0].dtype)  # (T_max, B, D)
    for b, s in enumerate(seqs):
        x[: len(s), b] = s
    if batch_first:
        x = np.ascontiguousarray(x.transpose(1, 0, 2))  # (B, T_max, D)
    return x, lengths


def as_padded(X, lengths=None, *, dtype=np.float64, name="X"):
    """Any accepted layout of a set of sequences -> time-major padded array and lengths.

    Parameters
    ----------
    X : ndarray of shape (N, T, D) or (N, T), or a list of arrays (T_i, D) / (T_i,)
        Batch-major, as the estimators take it: 2-D means univariate
        sequences. A list may hold sequences of different lengths.
    lengths : array_like of int, shape (N,), optional
        Valid steps of each row of a padded array: the steps ``t >= lengths[n]``
        are padding and are zeroed (their content, NaN included, is ignored).
        Not allowed with a list (each array carries its own length).
    dtype : {np.float32, np.float64}, default=np.float64
    name : str, default='X'

    Returns
    -------
    x : ndarray of shape (T, N, D)
        Time-major, C-contiguous, zero at padded steps; a new array (writing
        to it never changes ``X``).
    lengths : ndarray of int64, shape (N,)

    Raises
    ------
    ValueError
        Wrong rank, empty data, NaN or infinite values at valid steps,
        inconsistent feature counts, lengths outside ``[1, T]``.
    TypeError
        Non-integer lengths, or lengths given with a list.
    """
    dtype = as_dtype(dtype)
    if isinstance(X, (list, tuple)):
        if lengths is not None:
            raise TypeError(f"lengths is for a padded array; {name} is a list of sequences, "
                            "which carry their own lengths")
        x, lengths = pad_sequences(X, dtype=dtype)
        return x, lengths
    a = _as_float(X, name, dtype)
    if a.ndim == 2:
        a = a[:, :, None]  # (N, T) univariate -> (N, T, 1)
    elif a.ndim != 3:
        raise ValueError(f"{name} must be 3-D (n_samples, n_timesteps, n_features), 2-D "
                         f"(n_samples, n_timesteps) for univariate sequences, or a list of "
                         f"arrays; got a {a.ndim}-D array of shape {a.shape}")
    N, T, D = a.shape
    if N == 0:
        raise ValueError(f"{name} has 0 sequences (shape {a.shape}); need at least one")
    if T == 0:
        raise ValueError(f"{name} has 0 time steps (shape {a.shape}); every sequence needs "
                         "at least one step")
    if D == 0:
        raise ValueError(f"{name} has 0 features per step (shape {a.shape})")
    x = np.ascontiguousarray(a.transpose(1, 0, 2), dtype=dtype)  # (T, N, D)
    if np.shares_memory(x, a):  # N == 1 or T == 1: the caller's own memory; never write to it
        x = x.copy()
    if lengths is None:
        lengths = np.full(N, T, dtype=np.int64)
    else:
        lengths = _check_lengths(lengths, N, T, name)
        pad = np.arange(T)[:, None] >= lengths[None, :]  # (T, N) True at padding
        if pad.any():
            x[pad] = 0.0  # padding never reaches the model, whatever it held
    if not np.isfinite(x).all():
        t, n = (int(v) for v in np.argwhere((~np.isfinite(x)).any(axis=2))[0])
        raise ValueError(f"{name} contains NaN or infinite values (first in sequence {n}, "
                         f"step {t})")
    return x, lengths


def _check_lengths(lengths, N, T, name):
    try:
        lengths = np.asarray(lengths)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ValueError(f"lengths must be an array of shape ({N},), one per sequence of "
                         f"{name} ({exc})") from None
    # whole numbers stored as floats are accepted; they are cast after the range check
    whole_floats = (lengths.dtype.kind == "f" and lengths.size and np.isfinite(lengths).all()
                    and np.all(lengths == np.round(lengths)))
    if lengths.dtype.kind not in "iu" and not whole_floats:
        raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
    if lengths.shape != (N,):
        raise ValueError(f"lengths must have shape ({N},), one per sequence of {name}, "
                         f"got {lengths.shape}")
    if N and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(f"lengths must be in [1, {T}] (the padded length of {name}), got "
                         f"range [{int(lengths.min())}, {int(lengths.max())}]")
    return lengths.astype(np.int64)


def unpad(x, lengths, *, batch_first=False):
    """Split a padded time-major array back into a list of ``(T_i, D)`` arrays (views)."""
    x = np.asarray(x)
    if batch_first:
        return [x[b, : int(n)] for b, n in enumerate(lengths)]
    return [x[: int(n), b] for b, n in enumerate(lengths)]


class SequenceBatches:
    """Mini-batches ``(x, y, lengths)`` of padded sequences, for :class:`rnnkit.Trainer`.

    ``len(batches)`` is the number of batches and ``batches[i]`` the i-th:
    ``x (T_b, B, D)`` cropped to the longest sequence of the batch, ``y`` the
    batch's targets and ``lengths (B,)``.

    Parameters
    ----------
    x : ndarray of shape (T, N, D)
        Time-major padded sequences (as :func:`as_padded` returns them).
    y : ndarray of shape (N, ...)
        One target per sequence (class ids, values or vectors), or per step
        ``(N, T, ...)`` is not supported here: batches slice the first axis.
    lengths : ndarray of int, shape (N,), optional
        Default: every sequence is ``T`` steps long.
    batch_size : int, default=32
        The last batch holds the remainder unless ``drop_last``.
    shuffle : bool, default=False
        Permute the samples (which samples share a batch) with ``seed``;
        :meth:`set_epoch` draws a new permutation for each epoch, as
        ``torch.utils.data.DistributedSampler.set_epoch`` does. The
        Trainer's own ``shuffle`` permutes only the order of the batches.
    seed : int, default=0
    drop_last : bool, default=False

    Attributes
    ----------
    order : ndarray of int, shape (N,)
        The current sample order; batch ``i`` holds ``order[i*B:(i+1)*B]``.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit.data.sequences import SequenceBatches, pad_sequences
    >>> x, lengths = pad_sequences([np.ones((4, 1)), np.ones((2, 1)), np.ones((1, 1))])
    >>> batches = SequenceBatches(x, np.array([0, 1, 0]), lengths, batch_size=2)
    >>> len(batches), batches[1][0].shape  # the second batch is one step long
    (2, (1, 1, 1))
    """

    def __init__(self, x, y, lengths=None, *, batch_size=32, shuffle=False, seed=0,
                 drop_last=False):
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"SequenceBatches: Expected x of shape (T, N, D), got {x.shape}")
        T, N, _ = x.shape
        y = np.asarray(y)
        if y.ndim == 0 or y.shape[0] != N:
            raise ValueError(f"SequenceBatches: Expected {N} targets (one per sequence), got "
                             f"y of shape {y.shape}")
        self.x, self.y = x, y
        self.lengths = (np.full(N, T, dtype=np.int64) if lengths is None
                        else _check_lengths(lengths, N, T, "x"))
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.shuffle = bool(shuffle)
        self.seed = check_int(seed, "seed", minimum=0)
        self.drop_last = bool(drop_last)
        if self.drop_last and N < self.batch_size:
            raise ValueError(f"SequenceBatches: drop_last with batch_size={self.batch_size} "
                             f"leaves no batch of {N} sequences")
        self.set_epoch(0)

    @property
    def n_samples(self):
        return self.x.shape[1]

    def set_epoch(self, epoch):
        """Draw the sample order of ``epoch`` (a no-op without ``shuffle``)."""
        N = self.n_samples
        if self.shuffle:
            self.order = np.random.default_rng([self.seed, int(epoch)]).permutation(N)
        else:
            self.order = np.arange(N)

    def __len__(self):
        N, B = self.n_samples, self.batch_size
        return N // B if self.drop_last else -(-N // B)

    def __getitem__(self, i):
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"batch index must be an int, got {type(i).__name__}")
        if not -len(self) <= i < len(self):
            raise IndexError(f"batch index {i} out of range for {len(self)} batches")
        i %= len(self)
        idx = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        lengths = self.lengths[idx]
        T_b = int(lengths.max())
        x = np.ascontiguousarray(self.x[:T_b, idx])  # (T_b, B, D)
        return x, self.y[idx], lengths

    def __repr__(self):
        return (f"SequenceBatches(n_samples={self.n_samples}, batch_size={self.batch_size}, "
                f"batches={len(self)}, shuffle={self.shuffle})")
