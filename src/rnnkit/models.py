"""``SequenceModel``: input encoding -> recurrent stack -> Linear head.

The model the trainer, the command line and the estimators build on. Tasks:

- many-to-many (``task='many_to_many'``): a prediction at every step, e.g. the
  next character; ``y (T, B, C)``.
- many-to-one (``task='many_to_one'``): one prediction per sequence, read from
  the top layer's final state (both directions when bidirectional); ``y (B, C)``.

Inputs are time-major like the recurrent layers: token ids ``(T, B)`` for the
``'embedding'`` and ``'one_hot'`` encoders, features ``(T, B, D)`` for
``'dense'``.
"""

from __future__ import annotations

import itertools
from contextlib import nullcontext

import numpy as np

from ._module import Module
from ._validation import (
    as_array,
    as_dtype,
    as_generator,
    check_choice,
    check_float,
    check_int,
)
from .cells.compiled import lstm_region
from .functional import cross_entropy, mse_loss, sample_logits
from .layers import Embedding, Linear, OneHot
from .recurrent import GRU, LSTM, RNN

__all__ = ["CELLS", "SequenceModel"]

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
ENCODERS = ("embedding", "one_hot", "dense")
TASKS = ("many_to_many", "many_to_one")
LOSSES = ("cross_entropy", "mse")
_CONFIG_FIELDS = ("input_size", "hidden_size", "output_size", "cell", "num_layers", "nonlinearity",
                  "encoder", "embedding_dim", "dropout", "bidirectional", "task", "loss", "dtype")


class SequenceModel(Module):
    """A recurrent network with an input encoder and a linear read-out.

    Parameters
    ----------
    input_size : int
        V (vocabulary size) for the ``'embedding'`` and ``'one_hot'``
        encoders; D (features per step) for ``'dense'``.
    hidden_size : int
        H, units per recurrent layer.
    output_size : int
        C, classes (or values) predicted per step or per sequence.
    cell : {'lstm', 'gru', 'rnn'}, default='lstm'
    num_layers : int, default=1
    nonlinearity : {'tanh', 'relu', 'sigmoid'}, default='tanh'
        For ``cell='rnn'`` only.
    encoder : {'embedding', 'one_hot', 'dense'}, default='dense'
    embedding_dim : int, optional
        E, for ``encoder='embedding'`` (default: min(H, 64)).
    dropout : float, default=0.0
        Between recurrent layers (training only).
    bidirectional : bool, default=False
    task : {'many_to_many', 'many_to_one'}, default='many_to_many'
    loss : {'cross_entropy', 'mse'}, default='cross_entropy'
    dtype : {np.float32, np.float64}, default=np.float32
    rng : int, Generator or None
        Seeds the initialization and dropout; an int gives the same bits every run.

    Attributes
    ----------
    params : dict of str to ndarray
        ``encoder.weight`` (V, E) if an embedding; ``rnn.<torch name>`` for
        the recurrent stack (e.g. ``rnn.weight_ih_l0``); ``head.weight`` (C, K*H)
        and ``head.bias`` (C,). The same arrays the sub-layers hold.
    grads : dict of str to ndarray
        Same keys and shapes.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit import SequenceModel
    >>> m = SequenceModel(10, 16, 10, encoder="embedding", rng=0)
    >>> y, state = m.forward(np.zeros((5, 2), dtype=np.int64))
    >>> y.shape
    (5, 2, 10)
    """

    def __init__(self, input_size, hidden_size, output_size, *, cell="lstm", num_layers=1,
                 nonlinearity="tanh", encoder="dense", embedding_dim=None, dropout=0.0,
                 bidirectional=False, task="many_to_many", loss="cross_entropy",
                 dtype=np.float32, rng=None):
        self.input_size = check_int(input_size, "input_size", minimum=1)
        self.hidden_size = check_int(hidden_size, "hidden_size", minimum=1)
        self.output_size = check_int(output_size, "output_size", minimum=1)
        self.cell = check_choice(cell, "cell", tuple(CELLS))
        self.num_layers = check_int(num_layers, "num_layers", minimum=1)
        self.nonlinearity = nonlinearity
        self.encoder_kind = check_choice(encoder, "encoder", ENCODERS)
        self.dropout = check_float(dropout, "dropout", low=0.0, high=1.0, high_open=True)
        self.bidirectional = bool(bidirectional)
        self.task = check_choice(task, "task", TASKS)
        self.loss_kind = check_choice(loss, "loss", LOSSES)
        self.dtype = as_dtype(dtype)
        self.rng = as_generator(rng)
        if embedding_dim is not None and encoder != "embedding":
            raise ValueError(f"embedding_dim is an option of encoder='embedding', got "
                             f"encoder={encoder!r} with embedding_dim={embedding_dim!r}")
        if encoder == "embedding":
            E = min(self.hidden_size, 64) if embedding_dim is None else embedding_dim
            self.embedding_dim = check_int(E, "embedding_dim", minimum=1)
            self.encoder = Embedding(self.input_size, self.embedding_dim, dtype=self.dtype,
                                     rng=self.rng)
            rnn_in = self.embedding_dim
        elif encoder == "one_hot":
            self.embedding_dim = None
            self.encoder = OneHot(self.input_size, dtype=self.dtype)
            rnn_in = self.input_size
        else:
            self.embedding_dim = None
            self.encoder = None
            rnn_in = self.input_size
        kwargs = {"num_layers": self.num_layers, "dropout": self.dropout,
                      "bidirectional": self.bidirectional, "dtype": self.dtype, "rng": self.rng}
        if self.cell == "rnn":
            kwargs["nonlinearity"] = nonlinearity
        elif nonlinearity != "tanh":
            raise ValueError(f"nonlinearity is an option of cell='rnn', got cell={cell!r} "
                             f"with nonlinearity={nonlinearity!r}")
        self.rnn = CELLS[self.cell](rnn_in, self.hidden_size, **kwargs)
        K = 2 if self.bidirectional else 1
        self.head = Linear(K * self.hidden_size, self.output_size, dtype=self.dtype, rng=self.rng)
        self.training = True
        self._collect()
        self._cache = None

    def _collect(self):
        """Flat views of the sub-layers' arrays, keyed ``<layer>.<name>``."""
        self.params, self.grads = {}, {}
        for prefix, layer in (("encoder", self.encoder), ("rnn", self.rnn), ("head", self.head)):
            if layer is None:
                continue
            for k in layer.params:
                self.params[f"{prefix}.{k}"] = layer.params[k]
                self.grads[f"{prefix}.{k}"] = layer.grads[k]

    # ------------------------------------------------------------------ config
    def config(self):
        """The constructor arguments as a JSON-able dict (see :meth:`from_config`)."""
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                    "output_size": self.output_size, "cell": self.cell, "num_layers": self.num_layers,
                    "nonlinearity": self.nonlinearity, "encoder": self.encoder_kind,
                    "embedding_dim": self.embedding_dim, "dropout": self.dropout,
                    "bidirectional": self.bidirectional, "task": self.task, "loss": self.loss_kind,
                    "dtype": str(self.dtype)}

    @classmethod
    def from_config(cls, config, rng=None):
        """Build a model from :meth:`config`'s dict (weights freshly initialized)."""
        if not isinstance(config, dict):
            raise TypeError(f"model config must be a dict, got {type(config).__name__}")
        unknown = set(config) - set(_CONFIG_FIELDS)
        if unknown:
            raise ValueError(f"model config has unknown field(s): {', '.join(sorted(unknown))}")
        args = dict(config)
        try:
            return cls(args.pop("input_size"), args.pop("hidden_size"), args.pop("output_size"),
                       rng=rng, **args)
        except KeyError as exc:
            raise ValueError(f"model config lacks the field {exc.args[0]!r}") from None

    def train(self, mode=True):
        """Training mode (dropout on); returns self."""
        self.training = bool(mode)
        self.rnn.train(mode)
        return self

    def eval(self):
        """Evaluation mode (dropout off); returns self."""
        return self.train(False)

    def __repr__(self):
        return (f"SequenceModel(encoder={self.encoder!r}, rnn={self.rnn!r}, head={self.head!r}, "
                f"task={self.task!r})")

    # ------------------------------------------------------------ forward/backward
    def _encode(self, x):
        if self.encoder is None:
            x = as_array(x, "x", "SequenceModel")
            if x.dtype.kind in "iu" or x.dtype != self.dtype and x.dtype.kind == "f":
                with np.errstate(over="ignore", invalid="ignore"):
                    cast = x.astype(self.dtype)
                if cast.size and not np.isfinite(cast).all() and np.isfinite(x).all():
                    raise ValueError(f"SequenceModel: x has values beyond the range of "
                                     f"{self.dtype} (largest magnitude {np.abs(x).max():g})")
                x = cast
            return x
        return self.encoder.forward(x)

    def forward(self, x, state=None, *, lengths=None):
        """Predict from a batch of sequences.

        Parameters
        ----------
        x : ndarray (T, B) of int (embedding/one-hot) or (T, B, D) of float (dense)
        state : initial recurrent state as the recurrent layer takes it, optional
        lengths : ndarray (B,) of int, optional
            Valid lengths for padded batches.

        Returns
        -------
        y : ndarray (T, B, C) (many-to-many) or (B, C) (many-to-one)
        state : the final recurrent state (``h_n``, or ``(h_n, c_n)`` for LSTM)
        """
        e = self._encode(x)
        if e.ndim != 3:
            raise ValueError(f"SequenceModel: Expected x of shape (T, B) for token ids or "
                             f"(T, B, D) for features, got shape {np.shape(x)}")
        with self._region(*e.shape[:2]):
            return self._forward(e, state, lengths)

    def _region(self, T, B):
        """``rnnkit.parallel()`` where the LSTM splits a batch of B rows (T steps) over threads
        (the head's GEMMs then split too, and no OpenBLAS worker spins next to them), else
        nothing."""
        if self.cell != "lstm":
            return nullcontext()
        return lstm_region(T, B, self.hidden_size, self.dtype)

    def _forward(self, e, state, lengths):
        out, state_n = self.rnn.forward(e, state, lengths=lengths)
        if self.task == "many_to_many":
            y = self.head.forward(out)  # (T, B, C)
        else:
            h_n = state_n[0] if self.cell == "lstm" else state_n
            K = 2 if self.bidirectional else 1
            top = h_n[-K:]  # (K, B, H) the top layer's final states
            y = self.head.forward(np.concatenate(list(top), axis=-1))  # (B, C)
        self._cache = (out.shape, state_n)
        return y, state_n

    __call__ = forward

    def loss(self, y, target, mask=None):
        """``(value, dy)`` of the model's loss (cross-entropy in nats, or MSE)."""
        if self.loss_kind == "cross_entropy":
            return cross_entropy(y, target, mask)
        return mse_loss(y, target, mask)

    def backward(self, dy, *, input_grad=True):
        """Backpropagate ``dy`` (the shape of ``y``) through head, recurrent stack and encoder.

        Parameters
        ----------
        dy : ndarray (T, B, C) (many-to-many) or (B, C) (many-to-one)
            dL/dy, e.g. the second value of :meth:`loss`.
        input_grad : bool, default=True
            False returns None instead of ``d_input`` and, unless an
            embedding needs it for its own gradient, skips computing it (one
            GEMM over all T*B rows): what training does. The parameter
            gradients are the same.

        Returns
        -------
        d_input : ndarray (T, B, D) or None
            dL/dx for a ``'dense'`` encoder (what saliency maps read); for
            token encoders, dL/d(encoded input) (embedding vectors or one-hot rows).
        """
        if self._cache is None:
            raise RuntimeError("SequenceModel.backward: no forward pass to backpropagate through")
        _out_shape, state_n = self._cache
        self._cache = None
        T, B = _out_shape[:2]
        want = (T, B, self.output_size) if self.task == "many_to_many" else (B, self.output_size)
        dy = as_array(dy, "dy", "SequenceModel.backward")
        if dy.dtype.kind != "f":
            raise TypeError(f"SequenceModel.backward: dy must be a float array shaped like y, "
                            f"got dtype {dy.dtype}")
        if dy.shape != want:
            raise ValueError(f"SequenceModel.backward: Expected dy of the shape of y {want}, "
                             f"got {dy.shape}")
        dy = dy.astype(self.dtype, copy=False)
        with self._region(T, B):
            d_e = self._backward(dy, state_n, input_grad or isinstance(self.encoder, Embedding))
        return d_e if input_grad else None

    def _backward(self, dy, state_n, input_grad):
        d = self.head.backward(dy)
        if self.task == "many_to_many":
            d_e, _ = self.rnn.backward(d, input_grad=input_grad)
        else:
            K = 2 if self.bidirectional else 1
            H = self.hidden_size
            h_shape = (state_n[0] if self.cell == "lstm" else state_n).shape
            dh_n = np.zeros(h_shape, self.dtype)
            for k in range(K):
                dh_n[h_shape[0] - K + k] = d[:, k * H:(k + 1) * H]
            d_hx = (dh_n, None) if self.cell == "lstm" else dh_n
            d_e, _ = self.rnn.backward(None, d_hx, input_grad=input_grad)
        if self.encoder is not None:  # a one-hot encoder reads no gradient: it has no weights
            self.encoder.backward(d_e)
        return d_e

    # ------------------------------------------------------------------ sampling
    def generate(self, prime_ids, length, *, temperature=1.0, rng=None):
        """Sample ``length`` token ids after feeding ``prime_ids`` (token models only).

        Parameters
        ----------
        prime_ids : ndarray (P,) of int, P >= 1
            The priming sequence; the state after it starts the sampling.
        length : int
            Number of ids to draw.
        temperature : float, default=1.0
            Softmax temperature; 0 is greedy (argmax).
        rng : int, Generator or None
            Seed for reproducible samples.

        Returns
        -------
        ndarray (length,) of int64
            The ids :meth:`generate_iter` yields first (the same draws).
        """
        length = check_int(length, "length", minimum=0)
        ids = self.generate_iter(prime_ids, temperature=temperature, rng=rng)
        try:
            return np.fromiter(itertools.islice(ids, length), np.int64, count=length)
        finally:
            ids.close()

    def generate_iter(self, prime_ids, *, temperature=1.0, rng=None):
        """Sample token ids after feeding ``prime_ids``, one at a time, for as long as asked.

        For output that streams (a long sample printed as it comes) or that
        stops on a condition of the caller's: each id is drawn, then fed back
        in to give the next one's distribution (min-char-rnn's sampling loop).
        The model is in evaluation mode until the generator ends or is closed.

        Parameters
        ----------
        prime_ids, temperature, rng
            As in :meth:`generate`.

        Yields
        ------
        int
            The next token id.

        Raises
        ------
        ValueError
            At the call (not at the first ``next``): a model that is not a
            unidirectional many-to-many model over token ids, or ``prime_ids``
            not a non-empty 1-D array; an id outside the vocabulary is found
            when the priming runs, at the first ``next``.
        """
        if self.encoder is None or self.task != "many_to_many" or self.bidirectional:
            raise ValueError("generate needs a unidirectional many-to-many model over token ids "
                             "(encoder 'embedding' or 'one_hot')")
        rng = as_generator(rng)
        prime_ids = np.asarray(prime_ids)
        if prime_ids.ndim != 1 or prime_ids.size == 0:
            raise ValueError(f"prime_ids must be a non-empty 1-D array of ids, "
                             f"got shape {prime_ids.shape}")
        return self._sampled_ids(prime_ids, temperature, rng)

    def _sampled_ids(self, prime_ids, temperature, rng):
        """The generator of :meth:`generate_iter`, its arguments checked."""
        was_training = self.training
        self.eval()
        try:
            y, state = self.forward(prime_ids[:, None])
            token = np.empty((1, 1), np.int64)
            while True:
                if not np.isfinite(y[-1, 0]).all():  # said of the model, not of "logits"
                    raise ValueError("the model's outputs are not finite (its weights "
                                     "overflow: a training that diverged, e.g. with too high "
                                     "a learning rate?); it cannot be sampled")
                token[0, 0] = sample_logits(y[-1, 0], temperature, rng)
                yield int(token[0, 0])
                y, state = self.forward(token, state)
        finally:
            self._cache = None
            self.rnn._cache = None
            self.train(was_training)
