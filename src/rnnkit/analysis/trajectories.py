"""Hidden-state trajectories: collect them, and find their main directions with PCA.

The states of a trained network over time and trials usually live near a
low-dimensional subspace (Mante et al. 2013; Sussillo & Barak 2013). PCA
here is the SVD of the centred states: with ``X`` the (N, H) matrix of
states minus their mean, ``X = U S V^T``; the rows of ``V^T`` are the
principal directions, ``S^2 / (N - 1)`` the variance along each.

References
----------
Cunningham & Yu (2014), Dimensionality reduction for large-scale neural
recordings, Nat. Neurosci. 17: 1500-1509.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._model import as_model_input, evaluating, recurrent_layer

__all__ = ["PCA", "fit_pca", "hidden_states", "project"]


class PCA(NamedTuple):
    """A fitted principal component analysis.

    Attributes
    ----------
    components : ndarray (k, H)
        Orthonormal principal directions, by decreasing variance.
    mean : ndarray (H,)
        The mean state that was subtracted.
    explained_variance : ndarray (k,)
        Variance along each direction.
    explained_variance_ratio : ndarray (k,)
        Its fraction of the total variance.
    """

    components: np.ndarray
    mean: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray


def fit_pca(states, n_components=3):
    """PCA of states of any leading shape (..., H), by the SVD of the centred matrix.

    Parameters
    ----------
    states : ndarray (..., H)
        E.g. (T, B, H) trajectories; all leading axes are samples.
    n_components : int, default=3
        k, at most min(N, H).

    Returns
    -------
    PCA
        Signs are fixed so that the largest coefficient of each direction is positive.
    """
    X = np.asarray(states, dtype=np.float64)
    if X.ndim < 2:
        raise ValueError(f"fit_pca: Expected states of shape (..., H), got {X.shape}")
    X = X.reshape(-1, X.shape[-1])  # (N, H)
    N, H = X.shape
    if not isinstance(n_components, (int, np.integer)) or not 1 <= n_components <= min(N, H):
        raise ValueError(f"n_components must be an int in [1, {min(N, H)}], got {n_components!r}")
    if not np.isfinite(X).all():
        raise ValueError("fit_pca: states contain NaN or infinite values")
    mean = X.mean(axis=0)
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    vt = vt[:n_components]
    big = np.argmax(np.abs(vt), axis=1)
    vt *= np.sign(vt[np.arange(n_components), big])[:, None]  # deterministic signs
    var = s**2 / max(N - 1, 1)
    total = var.sum()
    ratio = var[:n_components] / total if total > 0 else np.zeros(n_components)
    return PCA(vt, mean, var[:n_components], ratio)


def project(states, pca):
    """Coordinates of ``states`` (..., H) along the principal directions: (..., k)."""
    X = np.asarray(states, dtype=np.float64)
    if X.shape[-1] != pca.mean.shape[0]:
        raise ValueError(f"project: Expected states with {pca.mean.shape[0]} features, "
                         f"got shape {X.shape}")
    return (X - pca.mean) @ pca.components.T


def hidden_states(model, x, *, key="h", layer=-1, state=None, lengths=None):
    """Run the model (evaluation mode) and return per-step internals of one layer.

    Parameters
    ----------
    model : SequenceModel, CTRNNModel or a recurrent layer
    x : ndarray (T, B, D), or (T, B) of token ids
    key : str, default='h'
        ``'h'`` (hidden state), for LSTM ``'c'`` or a gate ``'i'``, ``'f'``,
        ``'g'``, ``'o'``; for GRU ``'r'``, ``'z'``, ``'n'``; for CTRNN ``'r'``
        (rates) or ``'h'`` (states). See ``internals()`` of the layers.
    layer : int, default=-1
    state : initial state, optional
    lengths : ndarray (B,) of int, optional

    Returns
    -------
    ndarray (T, B, H) (bidirectional: (T, B, 2H), forward units first)
    """
    rnn = recurrent_layer(model)
    L = getattr(rnn, "num_layers", 1)
    k = layer + L if layer < 0 else layer
    if not 0 <= k < L:
        raise ValueError(f"layer must be in [-{L}, {L - 1}], got {layer}")
    x = as_model_input(model, x)
    with evaluating(model):
        model.forward(x, state, lengths=lengths)
        internals = rnn.internals()
    name = f"{key}_l{k}"
    if name not in internals:
        options = sorted({n.split("_l")[0] for n in internals})
        raise ValueError(f"key must be one of {options} for {type(rnn).__name__}, got {key!r}")
    if name + "_reverse" in internals:
        return np.concatenate([internals[name], internals[name + "_reverse"]], axis=-1)
    return internals[name]
