"""What the analysis tools need from a model, in one place.

The tools work with :class:`rnnkit.SequenceModel` and
:class:`rnnkit.ctrnn.CTRNNModel` (and any model with the same attributes:
``forward``, ``backward`` returning the input gradient, ``loss``, ``params``,
``grads``, ``train``/``eval``, ``training`` and a recurrent layer ``rnn``
with ``internals()``).
"""

from __future__ import annotations

import contextlib

import numpy as np


def release(model):
    """Drop the forward caches a forward without backward leaves behind."""
    for obj in (model, getattr(model, "rnn", None), getattr(model, "head", None),
                getattr(model, "encoder", None)):
        if obj is not None and hasattr(obj, "_cache"):
            obj._cache = None
    if hasattr(model, "_penalty_pending"):
        model._penalty_pending = False


@contextlib.contextmanager
def evaluating(model):
    """Evaluation mode (no dropout, no noise) for the block; the mode is restored after."""
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        yield model
    finally:
        release(model)
        model.train(was_training)


@contextlib.contextmanager
def grads_preserved(model):
    """Run a backward pass in the block without changing ``model.grads``."""
    saved = {k: g.copy() for k, g in model.grads.items()}
    try:
        yield model
    finally:
        for k, g in model.grads.items():
            g[...] = saved[k]


def recurrent_layer(model):
    """The model's recurrent layer (``model.rnn``), or the layer itself."""
    if hasattr(model, "internals") and hasattr(model, "params") and not hasattr(model, "rnn"):
        return model
    rnn = getattr(model, "rnn", None)
    if rnn is None or not hasattr(rnn, "internals"):
        raise TypeError(f"expected an rnnkit model with a recurrent layer 'rnn' (SequenceModel, "
                        f"CTRNNModel) or a recurrent layer, got {type(model).__name__}")
    return rnn


def as_model_input(model, x):
    """``x`` as the model's forward takes it (float inputs in the model's dtype)."""
    x = np.asarray(x)
    dtype = getattr(model, "dtype", None)
    if dtype is not None and x.dtype.kind == "f" and x.dtype != dtype:
        x = x.astype(dtype)
    return x
