"""Sequence layers ``RNN``, ``LSTM`` and ``GRU`` with PyTorch's semantics and exact BPTT.

The layers hold their parameters in ``params`` (a dict keyed exactly like
``torch.nn.RNN/LSTM/GRU.state_dict()``) and the gradients in ``grads`` (same
keys and shapes). ``forward`` returns the output and the final state;
``backward`` takes the gradients of both, returns the gradients of the input
and of the initial state, and accumulates (``+=``) the parameter gradients,
because the weights are shared across time.

Shape letters: T steps, B batch, D input size, H hidden size, G gates
(RNN 1, GRU 3, LSTM 4), L layers, K directions (1 or 2).

How the work is laid out (see DESIGN.md, section 4): the input of every
layer and direction is projected for all steps in one GEMM; the loop over
time (in ``rnnkit.cells``) does one ``(B, H) x (H, G*H)`` GEMM per step and
elementwise work into preallocated arrays; after the backward loop, the
weight gradients and the input gradient are one GEMM each over all T*B rows
(LSTM, GRU). The RNN's backward keeps its pre-activation gradients only for a
chunk of steps at a time (there is no cache array to write them over), so its
weight and input gradients are one GEMM each per chunk of a few hundred to a
few thousand rows, as fast as one over all rows.
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext

import numpy as np

from . import _workspace as workspace
from ._module import Module
from ._validation import (
    as_array,
    as_dtype,
    as_float_array,
    as_generator,
    check_choice,
    check_float,
    check_int,
    check_shape,
)
from .cells import gru_backward, gru_forward, lstm_backward, lstm_forward, rnn_backward, rnn_forward
from .cells.compiled import CALLER, check_settings, lstm_threads, matmul
from .cells.rnn import NONLINEARITIES

__all__ = ["GRU", "LSTM", "RNN", "RNNBase", "lengths_to_mask"]

_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


def lengths_to_mask(lengths, T):
    """Boolean mask ``(T, B)``: True at the valid steps ``t < lengths[b]``."""
    lengths = np.asarray(lengths)
    return np.arange(T)[:, None] < lengths[None, :]


def _check_lengths(lengths, T, B, owner):
    """Validate ``lengths`` (B,) of ints in [1, T]; return an int64 array."""
    lengths = np.asarray(lengths)
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"{owner}: lengths must be integers, got dtype {lengths.dtype}")
    if lengths.shape != (B,):
        raise ValueError(f"{owner}: Expected lengths of shape ({B},), got {lengths.shape}")
    if B and lengths.min() < 1:
        raise ValueError(
            f"{owner}: every sequence length must be >= 1 (as in PyTorch's packed "
            f"sequences), got {int(lengths.min())}"
        )
    if B and lengths.max() > T:
        raise ValueError(
            f"{owner}: lengths must not exceed the padded sequence length {T}, "
            f"got {int(lengths.max())}"
        )
    return lengths.astype(np.int64)


def _mask_to_lengths(mask, T, B, owner):
    """Turn a boolean mask (T, B) of valid prefixes into lengths (B,)."""
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"{owner}: mask must be boolean, got dtype {mask.dtype}")
    if mask.shape != (T, B):
        raise ValueError(f"{owner}: Expected mask of shape ({T}, {B}), got {mask.shape}")
    lengths = mask.sum(axis=0)
    if not np.array_equal(mask, lengths_to_mask(lengths, T)):
        raise ValueError(f"{owner}: mask must mark a prefix of valid steps in each sequence "
                         "(True then False), as padding at the end does")
    return lengths



def _copy(x):
    """A C-contiguous copy of ``x`` in a reused buffer (:mod:`rnnkit._workspace`)."""
    out = workspace.empty(x.shape, x.dtype)
    np.copyto(out, x)
    return out

class RNNBase(Module):
    """Shared machinery of :class:`RNN`, :class:`LSTM` and :class:`GRU`.

    Parameters
    ----------
    mode : {'RNN', 'LSTM', 'GRU'}
    input_size : int
        D, the number of features of each step's input.
    hidden_size : int
        H, the number of features of the hidden state.
    num_layers : int, default=1
        L, stacked layers; layer ``k > 0`` reads the output of layer ``k-1``.
    bias : bool, default=True
        Whether the layers have ``bias_ih``/``bias_hh``.
    batch_first : bool, default=False
        If True, input and output are ``(B, T, *)``; states are never batch first.
    dropout : float, default=0.0
        Dropout probability on the outputs of every layer but the last, in
        training mode only.
    bidirectional : bool, default=False
        If True, K = 2 and each layer also reads the sequence backwards.
    nonlinearity : {'tanh', 'relu', 'sigmoid'}, default='tanh'
        RNN only; 'sigmoid' is an rnnkit extension.
    proj_size : int, default=0
        LSTM only: if > 0, the hidden state is projected to this size
        (``h_t = W_hr (o_t * tanh(c_t))``, Sak et al. 2014); must be < hidden_size.
    dtype : {np.float32, np.float64}, default=np.float32
        The dtype of parameters, inputs, outputs and gradients.
    rng : int, numpy.random.Generator or None
        Source of randomness for the initialization and dropout.
    """

    # steps per chunk of the RNN and GRU backward loops; None chooses from B and H
    # (rnnkit.cells._chunks). Tests set it small to check that chunks add up exactly.
    _chunk_steps = None

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False,
                 nonlinearity="tanh", proj_size=0, *, dtype=np.float32, rng=None):
        name = type(self).__name__
        self.mode = check_choice(mode, "mode", tuple(_GATES))
        self.input_size = check_int(input_size, "input_size", minimum=1)
        self.hidden_size = check_int(hidden_size, "hidden_size", minimum=1)
        self.num_layers = check_int(num_layers, "num_layers", minimum=1)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = check_float(dropout, "dropout", low=0.0, high=1.0)
        self.bidirectional = bool(bidirectional)
        self.nonlinearity = check_choice(nonlinearity, "nonlinearity", NONLINEARITIES)
        if mode != "RNN" and nonlinearity != "tanh":
            raise ValueError(f"{name}: nonlinearity is an RNN option, got {nonlinearity!r}")
        self.proj_size = check_int(proj_size, "proj_size", minimum=0)
        if self.proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size has to be smaller than hidden_size, got proj_size="
                             f"{self.proj_size} and hidden_size={self.hidden_size}")
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={self.dropout} "
                f"and num_layers={self.num_layers}", UserWarning, stacklevel=2)
        self.dtype = as_dtype(dtype)
        self.rng = as_generator(rng)
        self.training = True
        self.num_directions = 2 if self.bidirectional else 1
        self.params = {}
        H, G, K = self.hidden_size, _GATES[mode], self.num_directions
        R = self.output_hidden_size
        bound = 1.0 / np.sqrt(H)  # PyTorch's default: U(-1/sqrt(H), 1/sqrt(H))
        for layer in range(self.num_layers):
            D = self.input_size if layer == 0 else K * R
            for k in range(K):
                sfx = f"_l{layer}" + ("_reverse" if k else "")
                shapes = {f"weight_ih{sfx}": (G * H, D), f"weight_hh{sfx}": (G * H, R)}
                if self.bias:
                    shapes[f"bias_ih{sfx}"] = (G * H,)
                    shapes[f"bias_hh{sfx}"] = (G * H,)
                if self.proj_size:
                    shapes[f"weight_hr{sfx}"] = (self.proj_size, H)
                for key, shape in shapes.items():
                    self.params[key] = self.rng.uniform(-bound, bound, shape).astype(self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._cache = None

    @property
    def output_hidden_size(self):
        """Size of ``h`` (and of each direction's output): ``proj_size`` if set, else H."""
        return self.proj_size or self.hidden_size

    # ------------------------------------------------------------------ modes
    def train(self, mode=True):
        """Set training mode (dropout active); returns self."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Set evaluation mode (no dropout); returns self."""
        return self.train(False)

    def __repr__(self):
        s = f"{type(self).__name__}({self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN" and self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        for opt, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                             ("bidirectional", False), ("proj_size", 0)):
            if getattr(self, opt) != default:
                s += f", {opt}={getattr(self, opt)}"
        if self.dtype != np.float32:
            s += f", dtype={self.dtype}"
        return s + ")"

    # -------------------------------------------------------------- weights
    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into the parameters (in place), with PyTorch's key names.

        Parameters
        ----------
        state_dict : dict of str to array_like
        strict : bool, default=True
            If True, missing and unexpected keys are errors.

        Raises
        ------
        ValueError
            Naming the missing, unexpected and mis-shaped keys.
        """
        name = type(self).__name__
        missing = [k for k in self.params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self.params]
        problems = []
        if strict and missing:
            problems.append(f"Missing key(s): {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"Unexpected key(s): {', '.join(unexpected)}")
        arrays = {}
        for k, v in state_dict.items():
            if k not in self.params:
                continue
            v = np.asarray(v)
            if v.shape != self.params[k].shape:
                problems.append(f"size mismatch for {k}: copying a param with shape {v.shape}, "
                                f"the shape in current model is {self.params[k].shape}")
            elif v.dtype.kind != "f":
                problems.append(f"dtype of {k} must be floating point, got {v.dtype}")
            else:
                arrays[k] = v
        if problems:
            raise ValueError(f"Error(s) in loading state_dict for {name}: " + "; ".join(problems))
        for k, v in arrays.items():
            self.params[k][...] = v
        return self

    def _weights(self, layer, k):
        sfx = f"_l{layer}" + ("_reverse" if k else "")
        p = self.params
        b_ih = p.get(f"bias_ih{sfx}")
        b_hh = p.get(f"bias_hh{sfx}")
        w_hr = p.get(f"weight_hr{sfx}")
        return sfx, p[f"weight_ih{sfx}"], p[f"weight_hh{sfx}"], b_ih, b_hh, w_hr

    # -------------------------------------------------------------- checks
    def _check_state(self, hx, B, batched):
        """Return the initial state(s) as (L*K, B, H) arrays (zeros when None)."""
        name = type(self).__name__
        LK = self.num_layers * self.num_directions
        shapes = ((LK, B, self.output_hidden_size), (LK, B, self.hidden_size))
        n_states = 2 if self.mode == "LSTM" else 1
        if hx is None:
            return tuple(np.zeros(shapes[i], self.dtype) for i in range(n_states))
        if n_states == 2:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{name}: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
            states = tuple(hx)
        else:
            states = (hx,)
        out = []
        for s, nm, shape in zip(states, ("h_0", "c_0"), shapes):
            s = as_float_array(s, nm, self.dtype, ndims=(3,) if batched else (2,), owner=name)
            if not batched:
                s = s[:, None, :]
            check_shape(s, shape, nm if batched else f"{nm} (batched view)", name)
            out.append(s)
        return tuple(out)

    # ------------------------------------------------------------- forward
    def forward(self, input, hx=None, *, lengths=None, mask=None):
        """Run the layer over a sequence.

        Parameters
        ----------
        input : ndarray (T, B, D), or (B, T, D) if ``batch_first``, or (T, D) unbatched
        hx : ndarray (L*K, B, H), or for LSTM a tuple ``(h_0, c_0)``; optional
            Initial state; zeros when omitted. Unbatched input takes (L*K, H).
        lengths : array_like of int, shape (B,), optional
            Valid length of each sequence (padded at the end); PyTorch's packed
            sequence semantics. Any order.
        mask : ndarray of bool, shape (T, B) (or (B, T) if ``batch_first``), optional
            The same as ``lengths`` given as a mask of valid steps.

        Returns
        -------
        output : ndarray (T, B, K*H) (or batch first / unbatched like the input)
            The top layer's hidden state at every step; zero at padded steps.
            When it is a view of the cache that ``backward`` reads (one
            direction, no lengths) it is read-only, so an in-place edit fails
            at once instead of corrupting the gradients (PyTorch raises at
            backward for the same edit); ``output.copy()`` gives a writable one.
        h_n : ndarray (L*K, B, H); for LSTM a tuple ``(h_n, c_n)``
            The state at each sequence's last valid step, indexed ``layer * K + direction``.

        Raises
        ------
        TypeError, ValueError
            Wrong dtype, rank, sizes, state shapes or lengths.
        """
        name = type(self).__name__
        x = as_float_array(input, "input", self.dtype, ndims=(2, 3), owner=name)
        batched = x.ndim == 3
        if not batched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        T, B, D = x.shape
        if D != self.input_size:
            raise ValueError(f"{name}: input.size(-1) must be equal to input_size. "
                             f"Expected {self.input_size}, got {D}")
        if T == 0 or B == 0:
            raise ValueError(f"{name}: input must have at least one step and one sequence, "
                             f"got shape {tuple(np.shape(input))}")
        if mask is not None and lengths is not None:
            raise ValueError(f"{name}: give lengths or mask, not both")
        if mask is not None:
            m = as_array(mask, "mask", name)
            if not batched:
                if m.shape != (T,):
                    raise ValueError(f"{name}: Expected mask of shape ({T},) for unbatched "
                                     f"input, got {m.shape}")
                m = m[:, None]
            elif self.batch_first:
                if m.shape != (B, T):
                    raise ValueError(f"{name}: Expected mask of shape ({B}, {T}), got {m.shape} "
                                     "(with batch_first=True the mask is (B, T))")
                m = m.T
            lengths = _mask_to_lengths(m, T, B, name)
        if lengths is not None:
            lengths = _check_lengths(np.atleast_1d(as_array(lengths, "lengths", name)), T, B,
                                     name)
            if lengths.min() == T:
                lengths = None  # all full: the plain path gives the same numbers
        states = self._check_state(hx, B, batched)
        # the cache keeps x for dW_ih: copy it, so the caller may reuse the buffer
        x = _copy(x)

        step_mask = None if lengths is None else lengths_to_mask(lengths, T)[:, :, None]
        rev_idx = None
        if lengths is not None and self.bidirectional:
            t = np.arange(T)[:, None]
            rev_idx = np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # (T, B)

        H, K, R = self.hidden_size, self.num_directions, self.output_hidden_size
        h_n = np.empty((self.num_layers * K, B, R), self.dtype)
        c_n = np.empty((self.num_layers * K, B, H), self.dtype) if self.mode == "LSTM" else None
        caches = []
        layer_input = x
        for layer in range(self.num_layers):
            drop = None
            if layer > 0 and self.training and self.dropout > 0:
                keep = 1.0 - self.dropout
                drop = (self.rng.random(layer_input.shape) < keep).astype(self.dtype)
                drop /= keep if keep > 0 else 1.0
                layer_input = layer_input * drop
            dirs = []
            outs = []
            for k in range(K):
                _, w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(layer, k)
                x_dir = layer_input
                if k == 1:
                    x_dir = (layer_input[::-1] if rev_idx is None
                             else layer_input[rev_idx, np.arange(B)])
                    x_dir = np.ascontiguousarray(x_dir)
                Dk = x_dir.shape[-1]
                idx = layer * K + k
                if self.mode == "LSTM":
                    threads = None if w_hr is not None else lstm_threads(T, B, H, self.dtype)
                    with threads or nullcontext():  # the projection's rows split too
                        gx = workspace.empty((T * B, w_ih.shape[0]), self.dtype)
                        matmul(threads, x_dir.reshape(T * B, Dk), w_ih.T, gx)
                        cache = lstm_forward(gx.reshape(T, B, -1), states[0][idx],
                                             states[1][idx], w_hh, step_mask, w_hr,
                                             bias=b_ih + b_hh if self.bias else None,
                                             threads=threads)
                    c_n[idx] = cache.c[-1]
                elif self.mode == "GRU":
                    gx = np.matmul(x_dir.reshape(T * B, Dk), w_ih.T,
                                   out=workspace.empty((T * B, w_ih.shape[0]), self.dtype))
                    gx = gx.reshape(T, B, -1)  # (T, B, G*H)
                    b_hn = None
                    if self.bias:
                        gx += b_ih
                        gx[..., : 2 * H] += b_hh[: 2 * H]
                        b_hn = b_hh[2 * H:]
                    cache = gru_forward(gx, states[0][idx], w_hh, b_hn, step_mask)
                else:  # project straight into the states: h[1:] = gx
                    h = np.empty((T + 1, B, H), self.dtype)
                    gx = h[1:]  # (T, B, H), a view
                    np.matmul(x_dir.reshape(T * B, Dk), w_ih.T, out=gx.reshape(T * B, H))
                    if self.bias:
                        gx += b_ih + b_hh
                    cache = rnn_forward(None, states[0][idx], w_hh, self.nonlinearity, step_mask,
                                        h=h)  # gx is h[1:]
                h_n[idx] = cache.h[-1]
                out = cache.h[1:]  # (T, B, H) in this direction's order
                if k == 1:
                    out = out[::-1] if rev_idx is None else out[rev_idx, np.arange(B)]
                outs.append(out)
                dirs.append((x_dir, cache))
            if K == 1 and step_mask is None:
                layer_out = outs[0]  # a view of the cache: no copy
            else:
                layer_out = np.concatenate(outs, axis=-1)  # (T, B, K*H)
                if step_mask is not None:
                    layer_out *= step_mask
            caches.append((drop, dirs))
            layer_input = layer_out
        self._cache = {"caches": caches, "lengths": lengths, "rev_idx": rev_idx, "mask": step_mask,
                           "batched": batched, "shape": (T, B, D), "input": x}
        output = layer_input
        if output.base is not None:  # a view of the cache BPTT reads: editing it is an error
            output = output.view()
            output.flags.writeable = False
        if not batched:
            output, h_n = output[:, 0], h_n[:, 0]
            c_n = None if c_n is None else c_n[:, 0]
        elif self.batch_first:
            output = output.transpose(1, 0, 2)
        if self.mode == "LSTM":
            return output, (h_n, c_n)
        return output, h_n

    __call__ = forward

    def internals(self):
        """Per-step states and gates of the most recent ``forward``, by name.

        Call it after ``forward`` and before ``backward`` (which releases the
        cache). Every array is a copy of shape (T, B, H) (``h`` is (T, B, P)
        with a projection), in the input's time order for both directions, with
        padded steps holding the carried state. Keys, with ``{k}`` the layer and
        ``_reverse`` appended for the second direction:

        - all cells: ``h_l{k}``, the hidden state after each step;
        - LSTM: ``c_l{k}`` (cell state), gates ``i_l{k}``, ``f_l{k}``, ``g_l{k}``, ``o_l{k}``;
        - GRU: gates ``r_l{k}``, ``z_l{k}``, ``n_l{k}``.

        Returns
        -------
        dict of str to ndarray

        Raises
        ------
        RuntimeError
            If there is no forward pass whose cache is still held.
        """
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.internals: no forward pass is cached "
                               "(call it after forward and before backward)")
        B = self._cache["shape"][1]
        rev_idx = self._cache["rev_idx"]
        H = self.hidden_size
        names = {"LSTM": ("i", "f", "g", "o"), "GRU": ("r", "z", "n"), "RNN": ()}[self.mode]
        out = {}
        for layer, (_, dirs) in enumerate(self._cache["caches"]):
            for k, (_, c) in enumerate(dirs):
                sfx = f"_l{layer}" + ("_reverse" if k else "")
                arrays = {"h": c.h[1:]}
                if self.mode == "LSTM":
                    arrays["c"] = c.c[1:]
                for j, g in enumerate(names):
                    arrays[g] = c.gates[..., j * H:(j + 1) * H]
                for key, a in arrays.items():
                    if k == 1:
                        a = a[::-1] if rev_idx is None else a[rev_idx, np.arange(B)]
                    out[key + sfx] = np.array(a)
        return out

    # ------------------------------------------------------------ backward
    def backward(self, d_output, d_hx=None, *, input_grad=True):
        """Backpropagate through time; accumulate parameter gradients into ``grads``.

        Parameters
        ----------
        d_output : ndarray shaped like ``output``, or None
            dL/d(output) at every step (from the layers above and the loss).
        d_hx : ndarray shaped like ``h_n``, or for LSTM a tuple ``(dh_n, dc_n)``; optional
            dL/d(final state); either member may be None.
        input_grad : bool, default=True
            False skips the input's gradient (one GEMM over all T*B rows of the
            first layer), as PyTorch does for an input that does not require
            a gradient: the data a network is trained on.

        Returns
        -------
        d_input : ndarray shaped like ``input``, or None with ``input_grad=False``
        d_h0 : ndarray shaped like ``h_0``; for LSTM a tuple ``(dh_0, dc_0)``

        Raises
        ------
        RuntimeError
            If there is no forward pass to backpropagate through (backward
            consumes the cache of the most recent forward).
        """
        name = type(self).__name__
        if self._cache is None:
            raise RuntimeError(f"{name}.backward: no forward pass to backpropagate through "
                               "(call forward first; each forward allows one backward)")
        cache = self._cache  # consumed only once the arguments are known to be good
        T, B, _D = cache["shape"]
        batched = cache["batched"]
        H, K, L = self.hidden_size, self.num_directions, self.num_layers
        R = self.output_hidden_size
        out_shape = (T, B, K * R)
        if d_output is not None:
            d_output = as_float_array(d_output, "d_output", self.dtype, ndims=(2, 3),
                                      owner=f"{name}.backward")
            if not batched:
                d_output = d_output[:, None, :]
            elif self.batch_first:
                d_output = d_output.transpose(1, 0, 2)
            check_shape(d_output, out_shape, "d_output (time-major)", f"{name}.backward")
        dstates = self._check_dstate(d_hx, B, batched)
        if self.mode == "LSTM":
            check_settings()  # a bad RNNKIT_COMPILED* raises here, with the cache kept
        self._cache = None
        step_mask, rev_idx = cache["mask"], cache["rev_idx"]
        d_h0 = np.zeros((L * K, B, R), self.dtype)
        d_c0 = np.zeros((L * K, B, H), self.dtype) if self.mode == "LSTM" else None
        d_layer = d_output
        for layer in range(L - 1, -1, -1):
            drop, dirs = cache["caches"][layer]
            if d_layer is not None and step_mask is not None:
                d_layer = d_layer * step_mask  # padded outputs are constant zeros
            d_in = None
            for k in range(K):
                idx = layer * K + k
                sfx, w_ih, w_hh, _, _, w_hr = self._weights(layer, k)
                x_dir, c = dirs[k]
                want_dx = input_grad or layer > 0
                d_out = None
                if d_layer is not None:
                    d_out = d_layer[..., k * R:(k + 1) * R]
                    if k == 1:
                        d_out = d_out[::-1] if rev_idx is None else d_out[rev_idx, np.arange(B)]
                dh_n = None if dstates[0] is None else dstates[0][idx]
                threads = None
                if self.mode == "LSTM":
                    dc_n = None if dstates[1] is None else dstates[1][idx]
                    threads = None if w_hr is not None else lstm_threads(T, B, H, self.dtype)
                    with threads or nullcontext():
                        res = lstm_backward(d_out, dh_n, dc_n, c, w_hh, w_hr, threads=threads)
                    dgx, dh0, dc0 = res[:3]
                    if w_hr is not None:
                        self.grads[f"weight_hr{sfx}"] += res[3]
                    d_c0[idx] = dc0
                elif self.mode == "GRU":
                    dgx, dgh_n, dh0 = gru_backward(d_out, dh_n, c, w_hh, self._chunk_steps)
                else:  # dpre exists chunk by chunk only: the GEMMs run per chunk, in consume
                    dgx = None
                    # one direction at layer 0 reads the forward's private copy of the input
                    # (nothing else does): dx overwrites it chunk by chunk, once the chunk's
                    # dW_ih is done
                    own = layer == 0 and K == 1
                    dx = None if not want_dx else x_dir if own else np.empty_like(x_dir)
                    consume = self._rnn_chunk_gradients(sfx, w_ih, x_dir, c.h, dx)
                    _, dh0 = rnn_backward(d_out, dh_n, c, w_hh, consume, self._chunk_steps)
                d_h0[idx] = dh0
                if self.mode == "LSTM":  # one GEMM each, split where the pass ran threaded
                    with threads or nullcontext():
                        dx = self._lstm_gradients(threads or CALLER, sfx, dgx, x_dir, c.h, w_ih,
                                                  want_dx)
                elif dgx is not None:  # GRU: one GEMM each over all T*B rows
                    G = dgx.shape[-1]
                    dgx2 = dgx.reshape(T * B, G)
                    h_prev = c.h[:-1].reshape(T * B, R)
                    g = self.grads
                    g[f"weight_ih{sfx}"] += dgx2.T @ x_dir.reshape(T * B, -1)  # (G*H, D)
                    # the recurrent side's n block is dn_pre * r
                    dgh_n2 = dgh_n.reshape(T * B, H)
                    g[f"weight_hh{sfx}"][: 2 * H] += dgx2[:, : 2 * H].T @ h_prev  # (2H, H)
                    g[f"weight_hh{sfx}"][2 * H:] += dgh_n2.T @ h_prev  # (H, H)
                    if self.bias:
                        db = dgx2.sum(axis=0)  # b_hh's gradient reuses 2H of it
                        g[f"bias_ih{sfx}"] += db
                        g[f"bias_hh{sfx}"][: 2 * H] += db[: 2 * H]
                        g[f"bias_hh{sfx}"][2 * H:] += dgh_n2.sum(axis=0)
                    dx = None
                    if want_dx:
                        dx = np.matmul(dgx2, w_ih, out=workspace.empty((T * B, w_ih.shape[1]),
                                                                       self.dtype))
                        dx = dx.reshape(T, B, -1)  # (T, B, D) in this direction's order
                if dx is None:
                    continue
                if k == 1:
                    dx = dx[::-1] if rev_idx is None else dx[rev_idx, np.arange(B)]
                d_in = dx if d_in is None else d_in + dx
            if drop is not None:
                d_in = d_in * drop
            d_layer = d_in
        d_input = d_layer
        if not batched:
            d_input = None if d_input is None else d_input[:, 0]
            d_h0 = d_h0[:, 0]
            d_c0 = None if d_c0 is None else d_c0[:, 0]
        elif self.batch_first and d_input is not None:
            d_input = d_input.transpose(1, 0, 2)
        if self.mode == "LSTM":
            return d_input, (d_h0, d_c0)
        return d_input, d_h0

    def _lstm_gradients(self, threads, sfx, dgates, x, h, w_ih, want_dx=True):
        """The LSTM's weight and bias gradients and ``dx``, one GEMM each over all T*B rows.

        Split over ``threads`` (a :class:`~rnnkit.cells.compiled.Threads`, or
        ``compiled.CALLER`` for the calling thread alone): thread ``i`` of
        ``n`` takes the i-th block of the 4H gate rows of ``dW_ih``, ``dW_hh``
        and the biases, then the i-th block of the T*B rows of ``dx = dgates
        @ W_ih`` (in one hand-off: neither reads what the other writes).
        Returns ``dx`` (T, B, D), or None without ``want_dx``.
        """
        T, B, G = dgates.shape
        d2 = dgates.reshape(T * B, G)
        x2 = x.reshape(T * B, -1)
        h_prev = h[:-1].reshape(T * B, -1)
        dx = workspace.empty((T * B, w_ih.shape[1]), self.dtype) if want_dx else None
        g = self.grads
        w_ih_grad, w_hh_grad = g[f"weight_ih{sfx}"], g[f"weight_hh{sfx}"]
        b_ih_grad = g[f"bias_ih{sfx}"] if self.bias else None
        b_hh_grad = g[f"bias_hh{sfx}"] if self.bias else None
        n = threads.n

        def part(i, _):
            lo, hi = G * i // n, G * (i + 1) // n
            d = d2[:, lo:hi]
            w_ih_grad[lo:hi] += d.T @ x2
            w_hh_grad[lo:hi] += d.T @ h_prev
            if b_ih_grad is not None:
                db = d.sum(axis=0)
                b_ih_grad[lo:hi] += db
                b_hh_grad[lo:hi] += db
            if dx is not None:
                lo, hi = T * B * i // n, T * B * (i + 1) // n
                np.matmul(d2[lo:hi], w_ih, out=dx[lo:hi])

        threads.run(part, n)
        return None if dx is None else dx.reshape(T, B, -1)

    def _rnn_chunk_gradients(self, sfx, w_ih, x, h, dx):
        """The ``consume`` of :func:`rnnkit.cells.rnn.rnn_backward` for one layer and direction.

        Given ``dpre`` (k, B, H) of the steps ``s .. e-1`` (``e = s + k``), it
        accumulates, with one GEMM each over the chunk's k*B rows::

            dW_ih += dpre^T x[s:e]         (H, D)
            dW_hh += dpre^T h[s:e]         (H, H), h[s:e] = h_{t-1} of the chunk
            db_ih += sum dpre;  db_hh += sum dpre     (H,)
            dx[s:e] = dpre @ W_ih           (k, B, D)

        ``dx`` may be ``x`` itself: the chunk's rows of ``x`` are read before
        they are overwritten, and no later chunk reads them.

        Parameters
        ----------
        sfx : str
            Key suffix of the layer and direction, e.g. ``'_l0_reverse'``.
        w_ih : ndarray (H, D)
        x : ndarray (T, B, D)
            The direction's input, in its own time order.
        h : ndarray (T+1, B, H)
            The cache's states.
        dx : ndarray (T, B, D), C-contiguous, or None
            Receives the gradient of ``x`` (None: not computed).

        Returns
        -------
        callable ``consume(s, dpre)``
        """
        g = self.grads
        dw_ih, dw_hh = g[f"weight_ih{sfx}"], g[f"weight_hh{sfx}"]
        db_ih, db_hh = g.get(f"bias_ih{sfx}"), g.get(f"bias_hh{sfx}")
        D, H = x.shape[-1], h.shape[-1]
        tmp_ih = np.empty_like(dw_ih)  # (H, D): the chunk's share, added into the gradient
        tmp_hh = np.empty_like(dw_hh)  # (H, H)

        def consume(s, dpre):
            e = s + dpre.shape[0]
            d2 = dpre.reshape(-1, H)  # (k*B, H)
            np.matmul(d2.T, x[s:e].reshape(-1, D), out=tmp_ih)
            np.add(dw_ih, tmp_ih, out=dw_ih)
            np.matmul(d2.T, h[s:e].reshape(-1, H), out=tmp_hh)
            np.add(dw_hh, tmp_hh, out=dw_hh)
            if db_ih is not None:
                db = d2.sum(axis=0)  # (H,)
                np.add(db_ih, db, out=db_ih)
                np.add(db_hh, db, out=db_hh)
            if dx is not None:
                np.matmul(d2, w_ih, out=dx[s:e].reshape(-1, D))  # after x[s:e] was read

        return consume

    def _check_dstate(self, d_hx, B, batched):
        """Return the final-state gradients as (L*K, B, H) arrays or None each."""
        name = f"{type(self).__name__}.backward"
        n_states = 2 if self.mode == "LSTM" else 1
        if d_hx is None:
            return (None,) * n_states
        if n_states == 2:
            if not isinstance(d_hx, (tuple, list)) or len(d_hx) != 2:
                raise TypeError(f"{name}: d_hx must be a tuple (dh_n, dc_n), "
                                f"got {type(d_hx).__name__}")
            items = tuple(d_hx)
        else:
            items = (d_hx,)
        LK = self.num_layers * self.num_directions
        shapes = ((LK, B, self.output_hidden_size), (LK, B, self.hidden_size))
        out = []
        for s, nm, shape in zip(items, ("dh_n", "dc_n"), shapes):
            if s is None:
                out.append(None)
                continue
            s = as_float_array(s, nm, self.dtype, ndims=(3,) if batched else (2,), owner=name)
            if not batched:
                s = s[:, None, :]
            check_shape(s, shape, nm, name)
            out.append(s)
        return tuple(out)


class RNN(RNNBase):
    """Elman recurrent layer, ``torch.nn.RNN`` with the same options and numbers.

    .. math:: h_t = f(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    with ``f`` = tanh, relu, or (an rnnkit extension) the logistic sigmoid.

    Parameters
    ----------
    input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout, bidirectional
        As in ``torch.nn.RNN`` (see :class:`RNNBase`).
    dtype : {np.float32, np.float64}, default=np.float32
    rng : int, numpy.random.Generator or None

    Attributes
    ----------
    params : dict of str to ndarray
        ``weight_ih_l{k}`` (H, D) (layer 0) or (H, K*H); ``weight_hh_l{k}`` (H, H);
        ``bias_ih_l{k}``, ``bias_hh_l{k}`` (H,); suffix ``_reverse`` for direction 2.
        Initialized from U(-1/sqrt(H), 1/sqrt(H)) as in PyTorch.
    grads : dict of str to ndarray
        Same keys and shapes; accumulated by ``backward``.

    Notes
    -----
    Inputs and outputs are as in :meth:`RNNBase.forward`. The loop below is
    the plain algorithm (one layer, one direction); the implementation
    computes the same numbers with one GEMM for all steps' input projection::

        for t in range(T):
            h = f(x[t] @ W_ih.T + b_ih + h @ W_hh.T + b_hh)
            output[t] = h

    References
    ----------
    Elman (1990), Finding structure in time. ``torch.nn.RNN``.

    Examples
    --------
    >>> import numpy as np, rnnkit
    >>> rnn = rnnkit.RNN(3, 5, num_layers=2, rng=0)
    >>> out, h_n = rnn(np.zeros((7, 2, 3), np.float32))
    >>> out.shape, h_n.shape
    ((7, 2, 5), (2, 2, 5))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *, proj_size=0,
                 dtype=np.float32, rng=None):
        super().__init__("RNN", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, nonlinearity, proj_size, dtype=dtype, rng=rng)


class LSTM(RNNBase):
    """Long short-term memory layer, ``torch.nn.LSTM`` with the same options and numbers.

    .. math::
        i_t = \\sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\\\
        f_t = \\sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\\\
        g_t = \\tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\\\
        o_t = \\sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\\\
        c_t = f_t \\odot c_{t-1} + i_t \\odot g_t \\\\
        h_t = o_t \\odot \\tanh(c_t)

    sigma is the logistic sigmoid and the circle the elementwise product.

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size
        As in ``torch.nn.LSTM`` (see :class:`RNNBase`).
    dtype : {np.float32, np.float64}, default=np.float32
    rng : int, numpy.random.Generator or None

    Attributes
    ----------
    params : dict of str to ndarray
        ``weight_ih_l{k}`` (4H, D), gate blocks ``(W_ii|W_if|W_ig|W_io)``;
        ``weight_hh_l{k}`` (4H, H) (or (4H, P) with ``proj_size`` P);
        ``bias_ih_l{k}``, ``bias_hh_l{k}`` (4H,); ``weight_hr_l{k}`` (P, H).
    grads : dict of str to ndarray

    Notes
    -----
    ``forward(x, (h_0, c_0))`` returns ``output, (h_n, c_n)``;
    ``backward(d_output, (dh_n, dc_n))`` returns ``d_x, (dh_0, dc_0)``.

    References
    ----------
    Hochreiter & Schmidhuber (1997); Gers et al. (2000). ``torch.nn.LSTM``.

    Examples
    --------
    >>> import numpy as np, rnnkit
    >>> lstm = rnnkit.LSTM(3, 4, rng=0)
    >>> out, (h_n, c_n) = lstm(np.ones((6, 2, 3), np.float32))
    >>> d_x, (d_h0, d_c0) = lstm.backward(np.ones_like(out))
    >>> d_x.shape, lstm.grads["weight_hh_l0"].shape
    ((6, 2, 3), (16, 4))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, *, dtype=np.float32, rng=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size=proj_size, dtype=dtype, rng=rng)


class GRU(RNNBase):
    """Gated recurrent unit layer, ``torch.nn.GRU`` with the same options and numbers.

    .. math::
        r_t = \\sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\\\
        z_t = \\sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\\\
        n_t = \\tanh(W_{in} x_t + b_{in} + r_t \\odot (W_{hn} h_{t-1} + b_{hn})) \\\\
        h_t = (1 - z_t) \\odot n_t + z_t \\odot h_{t-1}

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional
        As in ``torch.nn.GRU`` (see :class:`RNNBase`).
    dtype : {np.float32, np.float64}, default=np.float32
    rng : int, numpy.random.Generator or None

    Attributes
    ----------
    params : dict of str to ndarray
        ``weight_ih_l{k}`` (3H, D), gate blocks ``(W_ir|W_iz|W_in)``;
        ``weight_hh_l{k}`` (3H, H); ``bias_ih_l{k}``, ``bias_hh_l{k}`` (3H,).
    grads : dict of str to ndarray

    Notes
    -----
    The reset gate multiplies ``W_hn h + b_hn`` (PyTorch's and cuDNN's
    variant, Keras's ``reset_after=True``), not ``h`` as in Cho et al. (2014).

    References
    ----------
    Cho et al. (2014). ``torch.nn.GRU``.

    Examples
    --------
    >>> import numpy as np, rnnkit
    >>> gru = rnnkit.GRU(3, 4, batch_first=True, rng=0)
    >>> out, h_n = gru(np.ones((2, 6, 3), np.float32))
    >>> out.shape, h_n.shape
    ((2, 6, 4), (1, 2, 4))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, proj_size=0, dtype=np.float32, rng=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size=proj_size, dtype=dtype, rng=rng)
