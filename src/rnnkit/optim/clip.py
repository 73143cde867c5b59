"""Gradient clipping, in place, with ``torch.nn.utils.clip_grad_norm_`` numerics."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["clip_grad_norm", "clip_grad_value"]


def _as_arrays(grads):
    """Return the gradient arrays of a dict, an iterable of arrays or a single array."""
    if isinstance(grads, np.ndarray):
        arrays = [grads]
    elif isinstance(grads, Mapping):
        arrays = list(grads.values())
    else:
        try:
            arrays = list(grads)
        except TypeError:
            raise TypeError(
                "grads must be a dict of ndarrays, an iterable of ndarrays or an ndarray, "
                f"got {type(grads).__name__}"
            ) from None
    for i, a in enumerate(arrays):
        if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
            what = (
                f"ndarray of dtype {a.dtype}" if isinstance(a, np.ndarray) else (type(a).__name__)
            )
            raise TypeError(f"gradient {i} must be a floating-point ndarray, got {what}")
    return arrays


def _vector_norm(x, norm_type):
    return np.linalg.norm(x.reshape(-1), ord=norm_type)


def clip_grad_norm(grads, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale gradients in place so that their total norm is at most ``max_norm``.

    The norm is taken over all gradients together, as if they were
    concatenated into one vector.

    Parameters
    ----------
    grads : dict of str to ndarray, iterable of ndarray, or ndarray
        Gradients, modified in place.
    max_norm : float
        Largest allowed total norm.
    norm_type : float, default=2.0
        Order of the norm: any value ``np.linalg.norm`` takes for vectors,
        including ``inf`` (the largest absolute entry); ``"inf"`` is accepted.
    error_if_nonfinite : bool, default=False
        Raise RuntimeError, leaving the gradients untouched, if the total norm
        is NaN or infinite. Otherwise the gradients are scaled anyway (with a
        coefficient of 0 or NaN), as PyTorch does, so the problem stays visible.

    Returns
    -------
    float
        The total norm of the gradients before clipping.

    Notes
    -----
    ::

        total_norm = norm([norm(g, norm_type) for g in grads], norm_type)
        coef       = max_norm / (total_norm + 1e-6)
        g         <- g * coef   for every g, if coef < 1

    The norm and ``coef`` are computed in the gradients' dtype, as PyTorch
    does. The ``1e-6`` keeps the clipped norm just below ``max_norm``.

    References
    ----------
    .. [1] R. Pascanu, T. Mikolov and Y. Bengio, "On the difficulty of
       training recurrent neural networks", ICML 2013,
       https://arxiv.org/abs/1211.5063
    .. [2] ``torch.nn.utils.clip_grad_norm_``, PyTorch 2.13.

    Examples
    --------
    >>> import numpy as np
    >>> grads = {"a": np.array([3.0]), "b": np.array([4.0])}
    >>> clip_grad_norm(grads, max_norm=1.0)
    5.0
    >>> np.round(grads["a"], 6), np.round(grads["b"], 6)
    (array([0.6]), array([0.8]))
    """
    arrays = _as_arrays(grads)
    max_norm = float(max_norm)
    norm_type = float(norm_type)
    if not arrays:
        return 0.0
    norms = np.array([_vector_norm(a, norm_type) for a in arrays])  # one norm per array
    total_norm = _vector_norm(norms, norm_type)
    if error_if_nonfinite and not np.isfinite(total_norm):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the "
            "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    dtype = norms.dtype.type
    coef = dtype(max_norm) / (total_norm + dtype(1e-6))
    if not coef >= 1.0:  # also when coef is NaN, as torch scales by clamp(NaN, max=1)
        with np.errstate(invalid="ignore"):  # inf * 0 -> NaN, on purpose
            for a in arrays:
                a *= coef
    return float(total_norm)


def clip_grad_value(grads, clip_value):
    """Clip every gradient entry into ``[-clip_value, clip_value]``, in place.

    Parameters
    ----------
    grads : dict of str to ndarray, iterable of ndarray, or ndarray
        Gradients, modified in place.
    clip_value : float
        Largest allowed absolute value, ``>= 0``.

    Notes
    -----
    ``g <- min(max(g, -clip_value), clip_value)``; NaN entries stay NaN.

    References
    ----------
    .. [1] ``torch.nn.utils.clip_grad_value_``, PyTorch 2.13.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.array([-3.0, 0.5, 2.0])
    >>> clip_grad_value([g], 1.0)
    >>> g
    array([-1. ,  0.5,  1. ])
    """
    arrays = _as_arrays(grads)
    clip_value = float(clip_value)
    if not clip_value >= 0:
        raise ValueError(f"clip_value must be >= 0, got {clip_value}")
    for a in arrays:
        np.clip(a, -clip_value, clip_value, out=a)
