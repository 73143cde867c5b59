"""Losses; each returns ``(value, d_input)`` so models can start the backward pass.

Shapes: logits ``(..., C)`` with integer targets ``(...)`` for the
cross-entropy; predictions and targets of the same shape for the MSE. A
boolean ``mask`` of the target's shape (True = counts) excludes padded
steps; the mean is over unmasked elements, as PyTorch's ``reduction='mean'``
with ``ignore_index``.
"""

from __future__ import annotations

import numpy as np

from .._validation import as_array
from .activations import log_softmax

__all__ = ["cross_entropy", "mse_loss"]


def _mask_weights(mask, shape, dtype, name):
    """Return (weights, count): float weights of ``shape`` (1 = counted) and their sum."""
    if mask is None:
        return None, int(np.prod(shape))
    mask = as_array(mask, "mask", name)
    if mask.dtype != bool:
        raise TypeError(f"{name}: mask must be a boolean array, got dtype {mask.dtype}")
    if mask.shape != tuple(shape):
        raise ValueError(f"{name}: Expected mask of shape {tuple(shape)}, got {mask.shape}")
    count = int(mask.sum())
    if count == 0:
        raise ValueError(f"{name}: mask selects no element; the mean loss is undefined")
    return mask.astype(dtype), count


def cross_entropy(logits, target, mask=None):
    """Softmax cross-entropy, mean over the unmasked positions, in nats.

    .. math:: L = -\\frac{1}{N} \\sum_n \\log \\mathrm{softmax}(z_n)_{y_n}

    Parameters
    ----------
    logits : ndarray of float, shape (..., C)
        Unnormalized scores.
    target : ndarray of int, shape (...)
        Class indices in ``[0, C)``.
    mask : ndarray of bool, shape (...), optional
        True where the position counts; targets at the other positions are
        ignored (they may hold any integer, like PyTorch's ``ignore_index``).

    Returns
    -------
    loss : float
    d_logits : ndarray, shape (..., C), same dtype as ``logits``
        ``(softmax(z) - onehot(y)) / N`` at counted positions, 0 elsewhere.

    Raises
    ------
    ValueError
        Shapes that do not match, targets out of range, an all-False mask.
    TypeError
        Non-integer targets.
    """
    logits = as_array(logits, "logits", "cross_entropy")
    target = as_array(target, "target", "cross_entropy")
    if logits.dtype.kind not in "iuf":
        raise TypeError(f"cross_entropy: logits must be real numbers, got dtype {logits.dtype}")
    if logits.ndim < 1 or logits.shape[-1] == 0:
        raise ValueError(f"cross_entropy: Expected logits of shape (..., C) with C >= 1 "
                         f"classes, got shape {logits.shape}")
    if logits.size == 0:
        raise ValueError(f"cross_entropy: logits of shape {logits.shape} hold no position; "
                         "the mean loss is undefined")
    if logits.shape[:-1] != target.shape:
        raise ValueError(
            f"cross_entropy: Expected target of shape {logits.shape[:-1]} for logits of shape "
            f"{logits.shape}, got {target.shape}"
        )
    if target.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must be integer class indices, got {target.dtype}")
    C = logits.shape[-1]
    weights, count = _mask_weights(mask, target.shape, logits.dtype, "cross_entropy")
    counted = target if mask is None else target[np.asarray(mask)]
    if counted.size and (counted.min() < 0 or counted.max() >= C):
        raise ValueError(
            f"cross_entropy: target values must be in [0, {C - 1}], got range "
            f"[{counted.min()}, {counted.max()}]"
        )
    if mask is not None:  # masked positions may hold any id (e.g. -100 padding)
        target = np.where(mask, target, 0)
    logp = log_softmax(logits)  # (..., C)
    picked = np.take_along_axis(logp, target[..., None], axis=-1)[..., 0]  # (...)
    if weights is not None:
        picked = picked * weights
    loss = -float(picked.sum(dtype=np.float64)) / count
    with np.errstate(under="ignore"):
        d = np.exp(logp)  # softmax
    np.put_along_axis(d, target[..., None],
                      np.take_along_axis(d, target[..., None], axis=-1) - 1.0, axis=-1)
    d /= count
    if weights is not None:
        d *= weights[..., None]
    return loss, d


def mse_loss(pred, target, mask=None):
    """Mean squared error over the unmasked elements.

    .. math:: L = \\frac{1}{N} \\sum_n (\\hat y_n - y_n)^2

    Parameters
    ----------
    pred, target : ndarray of float, same shape
    mask : ndarray of bool, optional
        Same shape as ``pred`` or as ``pred.shape[:-1]`` (then it masks whole
        vectors, and N counts their elements).

    Returns
    -------
    loss : float
    d_pred : ndarray, same shape and dtype as ``pred``: ``2 (pred - target) / N``.
    """
    pred = as_array(pred, "pred", "mse_loss")
    target = as_array(target, "target", "mse_loss")
    if pred.dtype.kind != "f":
        raise TypeError(f"mse_loss: pred must be a float array, got dtype {pred.dtype}")
    if target.dtype.kind not in "biuf":
        raise TypeError(f"mse_loss: target must be real numbers, got dtype {target.dtype}")
    if pred.shape != target.shape:
        raise ValueError(f"mse_loss: Expected target of shape {pred.shape}, got {target.shape}")
    if pred.size == 0:
        raise ValueError(f"mse_loss: pred of shape {pred.shape} is empty; the mean loss is "
                         "undefined")
    diff = pred - target.astype(pred.dtype, copy=False)
    if mask is not None and np.asarray(mask).shape == pred.shape[:-1] and pred.ndim >= 1:
        weights, count = _mask_weights(mask, pred.shape[:-1], pred.dtype, "mse_loss")
        weights = weights[..., None]
        count *= pred.shape[-1]
    else:
        weights, count = _mask_weights(mask, pred.shape, pred.dtype, "mse_loss")
    if weights is not None:
        diff *= weights
    loss = float(np.square(diff, dtype=np.float64).sum()) / count
    return loss, diff * (2.0 / count)
