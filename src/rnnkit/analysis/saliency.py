"""Saliency: the gradient of one chosen output with respect to every input step.

The gradient comes from the model's own backward pass (exact BPTT), so it is
what the model computes, not an approximation: for a many-to-one classifier
the class score ``y[b, k]``; for a forecaster the prediction of step ``t``;
for a character model the logit of the character it sampled at step ``t``.
``d y / d x[s]`` for every ``s <= t`` shows which earlier steps the output
depends on, and how strongly (Simonyan, Vedaldi & Zisserman 2014; for
recurrent networks, Karpathy, Johnson & Fei-Fei 2015 and Arras et al. 2017).

Shape letters: T steps, B batch, D input features (for token models, the
size E of the embedding or V of the one-hot rows: the gradient is taken with
respect to the encoded input), C outputs.

References
----------
Simonyan, Vedaldi & Zisserman (2014), Deep inside convolutional networks:
visualising image classification models and saliency maps, ICLR workshop.
Karpathy, Johnson & Fei-Fei (2015), Visualizing and understanding recurrent
networks, arXiv:1506.02078.
"""

from __future__ import annotations

import numpy as np

from ._model import as_model_input, evaluating, grads_preserved

__all__ = ["input_gradient", "saliency", "saliency_scores"]


def input_gradient(model, x, dy, *, state=None, lengths=None):
    """Gradient of ``sum(y * dy)`` with respect to the model's input.

    Parameters
    ----------
    model : SequenceModel, CTRNNModel or a model with the same interface
        Run in evaluation mode (no dropout, no noise); its ``grads`` and mode
        are left as they were.
    x : ndarray (T, B, D) of float, or (T, B) of token ids
    dy : ndarray shaped like the model's output ``y``
        The weights of the outputs (a one-hot ``dy`` selects one output).
    state : initial recurrent state, optional
    lengths : ndarray (B,) of int, optional

    Returns
    -------
    grad : ndarray (T, B, D)
        ``d sum(y * dy) / d x`` (for token models, with respect to the encoded input).
    y : ndarray
        The model's output.
    """
    x = as_model_input(model, x)
    with evaluating(model), grads_preserved(model):
        y, _ = model.forward(x, state, lengths=lengths)
        dy = np.asarray(dy, dtype=y.dtype)
        if dy.shape != y.shape:
            raise ValueError(f"input_gradient: Expected dy of the output's shape {y.shape}, "
                             f"got {dy.shape}")
        grad = model.backward(dy)
    if grad is None:
        raise TypeError(f"{type(model).__name__}.backward returned no input gradient")
    return np.asarray(grad), y


def _per_sequence(value, B, name):
    v = np.asarray(value)
    if v.dtype.kind not in "iu":
        raise TypeError(f"saliency: {name} must be an int or integer array, got dtype {v.dtype}")
    if v.ndim == 0:
        return np.full(B, int(v))
    if v.shape != (B,):
        raise ValueError(f"saliency: Expected {name} as an int or of shape ({B},), got {v.shape}")
    return v.astype(np.int64)


def saliency(model, x, output, *, step=None, state=None, lengths=None):
    """Gradient of one output per sequence with respect to every input step.

    Parameters
    ----------
    model : SequenceModel, CTRNNModel or a model with the same interface
    x : ndarray (T, B, D) of float, or (T, B) of token ids
    output : int or ndarray (B,) of int
        The output channel: the class whose score to explain, the forecast
        variable, or the id of the character sampled at ``step``.
    step : int or ndarray (B,) of int, optional
        For per-step outputs (T, B, C): the step whose output to explain
        (negative counts from the end); default the last valid step of each
        sequence. Not used for many-to-one outputs (B, C).
    state : initial recurrent state, optional
    lengths : ndarray (B,) of int, optional

    Returns
    -------
    grad : ndarray (T, B, D)
        ``d y[step_b, b, output_b] / d x[:, b]``; zero after ``step_b`` (causal models).
    value : ndarray (B,)
        The explained outputs ``y[step_b, b, output_b]``.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit import SequenceModel
    >>> from rnnkit.analysis import saliency, saliency_scores
    >>> m = SequenceModel(2, 8, 3, task="many_to_one", rng=0)
    >>> grad, score = saliency(m, np.ones((6, 4, 2), np.float32), output=1)
    >>> saliency_scores(grad).shape
    (6, 4)
    """
    x = as_model_input(model, x)
    with evaluating(model):
        y, _ = model.forward(x, state, lengths=lengths)
    B = y.shape[-2]
    out = _per_sequence(output, B, "output")
    C = y.shape[-1]
    if out.size and (out.min() < 0 or out.max() >= C):
        raise ValueError(f"saliency: output must be in [0, {C - 1}], got {out.tolist()}")
    b = np.arange(B)
    dy = np.zeros_like(y)
    if y.ndim == 2:  # many-to-one (B, C)
        if step is not None:
            raise ValueError("saliency: step is for per-step outputs (T, B, C); this model "
                             "gives one output per sequence")
        dy[b, out] = 1.0
        value = y[b, out]
    else:
        T = y.shape[0]
        if step is None:
            t = np.full(B, T - 1) if lengths is None else np.asarray(lengths) - 1
        else:
            t = _per_sequence(step, B, "step")
            t = np.where(t < 0, t + T, t)
            if t.min() < 0 or t.max() >= T:
                raise ValueError(f"saliency: step must be in [-{T}, {T - 1}], got {step!r}")
        dy[t, b, out] = 1.0
        value = y[t, b, out]
    grad, _ = input_gradient(model, x, dy, state=state, lengths=lengths)
    return grad, value


def saliency_scores(grad, x=None, *, method="norm"):
    """One number per input step from the gradient (T, B, D).

    Parameters
    ----------
    grad : ndarray (T, B, D)
    x : ndarray (T, B, D), optional
        The (encoded) input, for ``method='grad_x_input'``.
    method : {'norm', 'grad_x_input'}, default='norm'
        ``'norm'``: ``||grad[t, b]||_2`` (Simonyan et al. 2014);
        ``'grad_x_input'``: ``sum_d grad[t, b, d] x[t, b, d]`` (a first-order
        estimate of the step's contribution, Shrikumar et al. 2016).

    Returns
    -------
    ndarray (T, B)
    """
    grad = np.asarray(grad)
    if grad.ndim != 3:
        raise ValueError(f"saliency_scores: Expected grad of shape (T, B, D), got {grad.shape}")
    if method == "norm":
        return np.sqrt(np.square(grad).sum(axis=-1))
    if method == "grad_x_input":
        if x is None:
            raise ValueError("saliency_scores: method='grad_x_input' needs x")
        x = np.asarray(x)
        if x.shape != grad.shape:
            raise ValueError(f"saliency_scores: Expected x of shape {grad.shape}, got {x.shape}")
        return (grad * x).sum(axis=-1)
    raise ValueError(f"method must be one of 'norm', 'grad_x_input', got {method!r}")
