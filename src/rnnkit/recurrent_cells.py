"""Single-step cells ``RNNCell``, ``LSTMCell``, ``GRUCell`` (``torch.nn.*Cell``).

One step of the same math as the sequence layers: each cell runs the
per-family unroll of :mod:`rnnkit.cells` over one step, so the two can never
disagree. Parameters are ``weight_ih`` (G*H, D), ``weight_hh`` (G*H, H),
``bias_ih`` and ``bias_hh`` (G*H,), initialized from U(-1/sqrt(H), 1/sqrt(H)).

``forward`` keeps the cache of its step; ``backward`` takes the gradient of
the new state, returns the gradients of the input and of the previous state,
and accumulates the parameter gradients. To backpropagate through several
steps of a cell called in a loop, use the sequence layers instead (they keep
every step); a cell remembers only its most recent step.
"""

from __future__ import annotations

import numpy as np

from ._module import Module
from ._validation import (
    as_dtype,
    as_float_array,
    as_generator,
    check_choice,
    check_int,
    check_shape,
)
from .cells import gru_backward, gru_forward, lstm_backward, lstm_forward, rnn_backward, rnn_forward
from .cells.rnn import NONLINEARITIES

__all__ = ["GRUCell", "LSTMCell", "RNNCell"]


class _CellBase(Module):
    _gates = 1

    def __init__(self, input_size, hidden_size, bias=True, *, dtype=np.float32, rng=None):
        self.input_size = check_int(input_size, "input_size", minimum=1)
        self.hidden_size = check_int(hidden_size, "hidden_size", minimum=1)
        self.bias = bool(bias)
        self.dtype = as_dtype(dtype)
        rng = as_generator(rng)
        G, H, D = self._gates, self.hidden_size, self.input_size
        bound = 1.0 / np.sqrt(H)
        shapes = {"weight_ih": (G * H, D), "weight_hh": (G * H, H)}
        if self.bias:
            shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
        self.params = {k: rng.uniform(-bound, bound, s).astype(self.dtype)
                       for k, s in shapes.items()}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._cache = None

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into the parameters; same checks as the sequence layers."""
        from .recurrent import RNNBase

        RNNBase.load_state_dict(self, state_dict, strict)
        return self

    def __repr__(self):
        extra = "" if self.bias else ", bias=False"
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra})"

    def _input(self, input):
        name = type(self).__name__
        x = as_float_array(input, "input", self.dtype, ndims=(1, 2), owner=name)
        batched = x.ndim == 2
        if not batched:
            x = x[None]
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input has inconsistent input_size: got {x.shape[-1]} "
                             f"expected {self.input_size}")
        return np.array(x, copy=True), batched  # kept for backward: the caller may reuse x

    def _state(self, s, B, batched, nm):
        name = type(self).__name__
        if s is None:
            return np.zeros((B, self.hidden_size), self.dtype)
        s = as_float_array(s, nm, self.dtype, ndims=(2,) if batched else (1,), owner=name)
        if not batched:
            s = s[None]
        check_shape(s, (B, self.hidden_size), nm, name)
        return np.array(s, copy=True)

    def _project(self, x):
        gx = x @ self.params["weight_ih"].T  # (B, G*H)
        return gx[None]  # (1, B, G*H): a one-step sequence

    def _peek_cache(self):
        """The forward step's cache; backward releases it once its arguments check out."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward: no forward step to "
                               "backpropagate through")
        return self._cache

    def _accumulate(self, x, h_prev, dgx, dgh):
        g = self.grads
        g["weight_ih"] += dgx.T @ x  # (G*H, D)
        g["weight_hh"] += dgh.T @ h_prev  # (G*H, H)
        if self.bias:
            g["bias_ih"] += dgx.sum(axis=0)
            g["bias_hh"] += dgh.sum(axis=0)
        return dgx @ self.params["weight_ih"]  # (B, D)

    def _grad_in(self, d, B, batched, nm):
        name = f"{type(self).__name__}.backward"
        if d is None:
            return None
        d = as_float_array(d, nm, self.dtype, ndims=(2,) if batched else (1,), owner=name)
        if not batched:
            d = d[None]
        check_shape(d, (B, self.hidden_size), nm, name)
        return d


class RNNCell(_CellBase):
    """One Elman step ``h' = f(W_ih x + b_ih + W_hh h + b_hh)`` (``torch.nn.RNNCell``).

    Parameters
    ----------
    input_size, hidden_size : int
    bias : bool, default=True
    nonlinearity : {'tanh', 'relu', 'sigmoid'}, default='tanh'
    dtype : {np.float32, np.float64}
    rng : int, Generator or None

    Notes
    -----
    ``forward(input (B, D) or (D,), hx (B, H) or (H,) = zeros) -> h' (B, H)``;
    ``backward(dh') -> (d_input, d_hx)``.
    """

    _gates = 1

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", *,
                 dtype=np.float32, rng=None):
        self.nonlinearity = check_choice(nonlinearity, "nonlinearity", NONLINEARITIES)
        super().__init__(input_size, hidden_size, bias, dtype=dtype, rng=rng)

    def forward(self, input, hx=None):
        x, batched = self._input(input)
        h = self._state(hx, x.shape[0], batched, "hx")
        gx = self._project(x)
        if self.bias:
            gx += self.params["bias_ih"] + self.params["bias_hh"]
        cache = rnn_forward(gx, h, self.params["weight_hh"], self.nonlinearity)
        self._cache = (x, h, cache, batched)
        h1 = cache.h[1].copy()  # the cache keeps its own for backward
        return h1 if batched else h1[0]

    __call__ = forward

    def backward(self, d_h):
        """``d_h`` (B, H): gradient of the new state. Returns ``(d_input, d_hx)``."""
        x, h, cache, batched = self._peek_cache()
        d_h = self._grad_in(d_h, x.shape[0], batched, "d_h")
        self._cache = None
        dpre, dh_prev = rnn_backward(None, d_h, cache, self.params["weight_hh"])
        dx = self._accumulate(x, h, dpre[0], dpre[0])
        return (dx, dh_prev) if batched else (dx[0], dh_prev[0])


class LSTMCell(_CellBase):
    """One LSTM step (``torch.nn.LSTMCell``), gate order i, f, g, o.

    Notes
    -----
    ``forward(input, (h, c) = zeros) -> (h', c')``;
    ``backward(d_h', d_c' = None) -> (d_input, (d_h, d_c))``. Equations as
    in :class:`rnnkit.LSTM`.
    """

    _gates = 4

    def forward(self, input, hx=None):
        x, batched = self._input(input)
        B = x.shape[0]
        if hx is None:
            h = c = None
        elif isinstance(hx, (tuple, list)) and len(hx) == 2:
            h, c = hx
        else:
            raise TypeError(f"LSTMCell: hx must be a tuple (h, c), got {type(hx).__name__}")
        h = self._state(h, B, batched, "h")
        c = self._state(c, B, batched, "c")
        gx = self._project(x)
        if self.bias:
            gx += self.params["bias_ih"] + self.params["bias_hh"]
        cache = lstm_forward(gx, h, c, self.params["weight_hh"])
        self._cache = (x, h, cache, batched)
        h1, c1 = cache.h[1].copy(), cache.c[1].copy()
        return (h1, c1) if batched else (h1[0], c1[0])

    __call__ = forward

    def backward(self, d_h, d_c=None):
        x, h, cache, batched = self._peek_cache()
        B = x.shape[0]
        d_h = self._grad_in(d_h, B, batched, "d_h")
        d_c = self._grad_in(d_c, B, batched, "d_c")
        self._cache = None
        dgates, dh_prev, dc_prev = lstm_backward(None, d_h, d_c, cache, self.params["weight_hh"])
        dx = self._accumulate(x, h, dgates[0], dgates[0])
        if batched:
            return dx, (dh_prev, dc_prev)
        return dx[0], (dh_prev[0], dc_prev[0])


class GRUCell(_CellBase):
    """One GRU step (``torch.nn.GRUCell``), gate order r, z, n, PyTorch's reset variant.

    Notes
    -----
    ``forward(input, hx = zeros) -> h'``; ``backward(d_h') -> (d_input, d_hx)``.
    Equations as in :class:`rnnkit.GRU`.
    """

    _gates = 3

    def forward(self, input, hx=None):
        x, batched = self._input(input)
        h = self._state(hx, x.shape[0], batched, "hx")
        gx = self._project(x)
        H = self.hidden_size
        b_hn = None
        if self.bias:
            gx += self.params["bias_ih"]
            gx[..., : 2 * H] += self.params["bias_hh"][: 2 * H]
            b_hn = self.params["bias_hh"][2 * H:]
        cache = gru_forward(gx, h, self.params["weight_hh"], b_hn)
        self._cache = (x, h, cache, batched)
        h1 = cache.h[1].copy()
        return h1 if batched else h1[0]

    __call__ = forward

    def backward(self, d_h):
        x, h, cache, batched = self._peek_cache()
        d_h = self._grad_in(d_h, x.shape[0], batched, "d_h")
        self._cache = None
        dgx, dgh_n, dh_prev = gru_backward(None, d_h, cache, self.params["weight_hh"])
        dgh = np.concatenate([dgx[0][:, : 2 * self.hidden_size], dgh_n[0]], axis=1)  # (B, 3H)
        dx = self._accumulate(x, h, dgx[0], dgh)
        return (dx, dh_prev) if batched else (dx[0], dh_prev[0])
