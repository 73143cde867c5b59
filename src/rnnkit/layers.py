"""Feed-forward layers used around the recurrent stack: Linear, Embedding, OneHot, Dropout.

Each has ``forward``/``backward`` side by side; ``backward`` accumulates
(``+=``) into ``grads`` and returns the gradient of the input. Parameter names
and default initializations follow ``torch.nn``.
"""

from __future__ import annotations

import numpy as np

from ._module import Module
from ._validation import as_array, as_dtype, as_generator, check_float, check_int
from .cells.compiled import current_threads

__all__ = ["Dropout", "Embedding", "Linear", "OneHot"]


class _Layer(Module):
    def _cached(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward: no forward pass to "
                               "backpropagate through (call forward first)")
        cache, self._cache = self._cache, None
        return cache


SPLIT_MIN_MACS = 1 << 22  # a GEMM below this many multiply-adds is not worth a hand-off


def _split_threads(rows, n_in, n_out):
    """The threads of the parallel() region to split a GEMM over, if any and worth it."""
    threads = current_threads()
    if threads is None or rows * n_in * n_out < SPLIT_MIN_MACS:
        return None
    return threads


class Linear(_Layer):
    """Affine map ``y = x W^T + b`` over the last axis (``torch.nn.Linear``).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default=True
    dtype : {np.float32, np.float64}, default=np.float32
    rng : int, Generator or None

    Attributes
    ----------
    params : {'weight': ndarray (out, in), 'bias': ndarray (out,)}
        Initialized from U(-1/sqrt(in), 1/sqrt(in)), as PyTorch's default
        (``kaiming_uniform_(a=sqrt(5))`` for the weight).
    """

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, rng=None):
        self.in_features = check_int(in_features, "in_features", minimum=1)
        self.out_features = check_int(out_features, "out_features", minimum=1)
        self.dtype = as_dtype(dtype)
        rng = as_generator(rng)
        bound = 1.0 / np.sqrt(self.in_features)
        self.params = {"weight": rng.uniform(-bound, bound, (out_features, in_features))
                       .astype(self.dtype)}
        if bias:
            self.params["bias"] = rng.uniform(-bound, bound, (out_features,)).astype(self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._cache = None

    def forward(self, x):
        """x (..., in) -> y (..., out)."""
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: Expected input with {self.in_features} features in the "
                             f"last dimension, got shape {x.shape}")
        self._cache = x
        threads = _split_threads(x.size // self.in_features, self.in_features, self.out_features)
        if threads is None:
            y = x @ self.params["weight"].T  # (..., out)
        else:  # in a parallel() region: rows split over its threads
            y = threads.matmul(x.reshape(-1, self.in_features), self.params["weight"].T)
            y = y.reshape(*x.shape[:-1], self.out_features)
        if "bias" in self.params:
            y += self.params["bias"]
        return y

    def backward(self, dy):
        """dy (..., out) -> dx (..., in); ``dW += dy^T x`` over all leading axes in one GEMM."""
        x = self._cached()
        dy2 = dy.reshape(-1, self.out_features)  # (N, out)
        x2 = x.reshape(-1, self.in_features)
        threads = _split_threads(dy2.shape[0], self.in_features, self.out_features)
        if threads is None:
            self.grads["weight"] += dy2.T @ x2
        else:  # in a parallel() region: blocks of W's rows, then of dx's rows, per thread
            dw = self.grads["weight"]

            def weight_rows(lo, hi):
                dw[lo:hi] += dy2[:, lo:hi].T @ x2

            threads.run(weight_rows, self.out_features)
        if "bias" in self.params:
            self.grads["bias"] += dy2.sum(axis=0)
        if threads is None:
            return dy @ self.params["weight"]
        dx = threads.matmul(dy2, self.params["weight"])
        return dx.reshape(*dy.shape[:-1], self.in_features)

    def __repr__(self):
        return (f"Linear(in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={'bias' in self.params})")


def _check_ids(ids, n, owner):
    ids = as_array(ids, "token ids", owner)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{owner}: Expected integer token ids, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise ValueError(f"{owner}: token ids must be in [0, {n - 1}], got range "
                         f"[{ids.min()}, {ids.max()}]")
    return ids


class Embedding(_Layer):
    """Lookup table ``y = W[ids]`` (``torch.nn.Embedding``).

    Parameters
    ----------
    num_embeddings : int
        V, the vocabulary size.
    embedding_dim : int
        E, the size of each vector.

    Attributes
    ----------
    params : {'weight': ndarray (V, E)}, initialized from N(0, 1) as in PyTorch.
    """

    def __init__(self, num_embeddings, embedding_dim, *, dtype=np.float32, rng=None):
        self.num_embeddings = check_int(num_embeddings, "num_embeddings", minimum=1)
        self.embedding_dim = check_int(embedding_dim, "embedding_dim", minimum=1)
        self.dtype = as_dtype(dtype)
        rng = as_generator(rng)
        self.params = {"weight": rng.standard_normal((num_embeddings, embedding_dim))
                       .astype(self.dtype)}
        self.grads = {"weight": np.zeros_like(self.params["weight"])}
        self._cache = None

    def forward(self, ids):
        """ids (...) of int -> (..., E)."""
        ids = _check_ids(ids, self.num_embeddings, "Embedding")
        self._cache = ids
        return self.params["weight"][ids]

    def backward(self, dy):
        """Scatter-add ``dy`` (..., E) into the rows of ``grads['weight']``; returns None."""
        ids = self._cached()
        np.add.at(self.grads["weight"], ids.reshape(-1), dy.reshape(-1, self.embedding_dim))

    def __repr__(self):
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"


class OneHot(_Layer):
    """One-hot encoding ``ids (...) -> (..., V)``: no parameters (min-char-rnn's input)."""

    def __init__(self, num_classes, *, dtype=np.float32):
        self.num_classes = check_int(num_classes, "num_classes", minimum=1)
        self.dtype = as_dtype(dtype)
        self.params, self.grads = {}, {}
        self._cache = None

    def forward(self, ids):
        ids = _check_ids(ids, self.num_classes, "OneHot")
        self._cache = True
        out = np.zeros(ids.shape + (self.num_classes,), self.dtype)
        np.put_along_axis(out, ids[..., None], 1.0, axis=-1)
        return out

    def backward(self, dy):
        self._cached()

    def __repr__(self):
        return f"OneHot({self.num_classes})"


class Dropout(_Layer):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale by 1/(1-p).

    Parameters
    ----------
    p : float in [0, 1), default=0.5
    rng : int, Generator or None
    """

    def __init__(self, p=0.5, *, rng=None):
        self.p = check_float(p, "p", low=0.0, high=1.0, high_open=True)
        self.rng = as_generator(rng)
        self.training = True
        self.params, self.grads = {}, {}
        self._cache = None

    def forward(self, x):
        if not self.training or self.p == 0:
            self._cache = 1.0
            return x
        mask = (self.rng.random(x.shape) >= self.p).astype(x.dtype)
        mask /= 1.0 - self.p
        self._cache = mask
        return x * mask

    def backward(self, dy):
        return dy * self._cached()
