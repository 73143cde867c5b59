"""PNG figures of what the analysis tools find (matplotlib, the ``plot`` extra).

matplotlib is imported when a function is called, not when this module is,
and only its object-oriented API with the Agg canvas is used (no pyplot, no
global backend change), so the functions work on servers and never open a
window. Each function writes one PNG file and returns its path.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = [
    "plot_eigenvalues",
    "plot_fixed_points",
    "plot_psychometric",
    "plot_saliency",
    "plot_states",
    "plot_trajectories",
]


def _figure(figsize):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'rnnkit[plot]' "
                          "(or pip install matplotlib)") from None
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=110, format="png")
    return path


def _tick(c):
    """A visible label for a character: a middle dot for a space, escapes for the rest."""
    return "\u00b7" if c == " " else repr(str(c))[1:-1]


def _cmap(n):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "viridis"]
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


def plot_states(arrays, path, *, title=None, xlabels=None, max_units=64):
    """Heatmaps of per-step activity, one panel per named array.

    Parameters
    ----------
    arrays : dict of str to ndarray (T, H)
        E.g. ``{'h_l0': ..., 'c_l0': ...}`` for one sequence; at most
        ``max_units`` units are drawn per panel. Arrays with negative values
        get a diverging colour scale centred at 0, non-negative ones (gates,
        relu rates) a sequential scale from 0.
    path : str
        The PNG file to write.
    title : str, optional
    xlabels : sequence of str (T,), optional
        Labels of the steps (e.g. the characters of a text).

    Returns
    -------
    str : ``path``
    """
    if not arrays:
        raise ValueError("plot_states: nothing to plot (arrays is empty)")
    names = list(arrays)
    T = np.asarray(arrays[names[0]]).shape[0]
    fig = _figure((min(3 + 0.18 * T, 18), 1.0 + 1.9 * len(names)))
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    for ax, name in zip(axes, names):
        a = np.asarray(arrays[name], dtype=np.float64)
        if a.ndim != 2:
            raise ValueError(f"plot_states: Expected {name} of shape (T, H), got {a.shape}")
        a = a[:, :max_units]
        lim = max(float(np.abs(a).max(initial=0.0)), 1e-12)
        if a.min(initial=0.0) >= 0:  # gates and rates: a sequential scale from 0
            im = ax.imshow(a.T, aspect="auto", cmap="viridis", vmin=0.0, vmax=lim,
                           interpolation="nearest")
        else:
            im = ax.imshow(a.T, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim,
                           interpolation="nearest")
        ax.set_ylabel(f"{name}\nunit")
        fig.colorbar(im, ax=ax, fraction=0.02)
        if xlabels is not None:
            ax.set_xticks(range(len(xlabels)))
            ax.set_xticklabels([_tick(c) for c in xlabels], fontsize=7)
    axes[-1].set_xlabel("step")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_saliency(scores, path, *, labels=None, title=None, target_step=None):
    """Bar chart of one saliency score per input step.

    Parameters
    ----------
    scores : ndarray (T,)
    path : str
    labels : sequence of str (T,), optional
        Tick labels (e.g. the input characters).
    title : str, optional
    target_step : int, optional
        Marks the step whose output is explained.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"plot_saliency: Expected scores of shape (T,), got {s.shape}")
    T = s.shape[0]
    fig = _figure((min(3 + 0.2 * T, 18), 3.2))
    ax = fig.subplots()
    ax.bar(np.arange(T), s, color="tab:blue")
    if target_step is not None:
        ax.axvline(target_step, color="tab:red", lw=1, ls="--", label="explained output")
        ax.legend(loc="upper left", fontsize=8)
    if labels is not None:
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels([_tick(c) for c in labels], fontsize=7)
    ax.set_xlabel("input step")
    ax.set_ylabel("saliency")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _axes3d(fig, k):
    if k >= 3:
        return fig.add_subplot(projection="3d")
    return fig.add_subplot()


def plot_trajectories(proj, path, *, conditions=None, title=None, pca=None, fixed_points=None,
                      labels=None):
    """Trajectories in principal-component coordinates, coloured by condition.

    Parameters
    ----------
    proj : ndarray (T, B, k), k = 2 or 3
        E.g. ``project(states, pca)``.
    path : str
    conditions : array_like (B,), optional
        A condition per trial; one colour per distinct value (with a legend).
        Without it, one colour per trial.
    title : str, optional
    pca : PCA, optional
        Labels the axes with the explained variance.
    fixed_points : tuple (points (K, k), kinds (K,)), optional
        Projected fixed points: stable ones filled, others open.
    labels : sequence of str, optional
        For a single trajectory, annotations of the steps (e.g. characters).
    """
    P = np.asarray(proj, dtype=np.float64)
    if P.ndim != 3 or P.shape[-1] not in (2, 3):
        raise ValueError(f"plot_trajectories: Expected proj of shape (T, B, 2 or 3), "
                         f"got {P.shape}")
    T, B, k = P.shape
    fig = _figure((6.4, 5.2))
    ax = _axes3d(fig, k)
    if conditions is None:
        groups = np.arange(B)
        values = list(range(B))
    else:
        groups = np.asarray(conditions)
        if groups.shape != (B,):
            raise ValueError(f"plot_trajectories: Expected conditions of shape ({B},), "
                             f"got {groups.shape}")
        values = list(np.unique(groups))
    colors = dict(zip(values, _cmap(len(values))))
    seen = set()
    for b in range(B):
        v = groups[b]
        lab = None
        if conditions is not None and v not in seen:
            lab = f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)
            seen.add(v)
        ax.plot(*(P[:, b, i] for i in range(k)), color=colors[v], lw=0.9, alpha=0.8, label=lab)
        ax.scatter(*(P[:1, b, i] for i in range(k)), color=colors[v], s=8)
    if labels is not None and B == 1:
        ax.scatter(*(P[:, 0, i] for i in range(k)), color="0.3", s=4)
        for t, text in enumerate(labels[:T]):
            ax.text(*(P[t, 0, i] for i in range(k)), _tick(text), fontsize=7)
    if fixed_points is not None:
        pts, kinds = fixed_points
        pts = np.asarray(pts)
        kinds = np.asarray(kinds)
        st = kinds == "stable"
        if st.any():
            ax.scatter(*(pts[st, i] for i in range(k)), color="black", s=40, marker="o",
                       label="stable fixed point", zorder=5)
        if (~st).any():
            ax.scatter(*(pts[~st, i] for i in range(k)), facecolors="none",
                       edgecolors="tab:red", s=40, marker="o", label="saddle / unstable",
                       zorder=5)
    for i, setter in enumerate((ax.set_xlabel, ax.set_ylabel) + ((ax.set_zlabel,) if k == 3
                                                                   else ())):
        extra = "" if pca is None else f" ({100 * pca.explained_variance_ratio[i]:.0f}%)"
        setter(f"PC{i + 1}{extra}")
    if conditions is not None or fixed_points is not None:
        ax.legend(fontsize=7, loc="best")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_fixed_points(fixed_points, pca, path, *, trajectories=None, title=None):
    """Fixed points (and optional trajectories) in the first three principal components.

    Parameters
    ----------
    fixed_points : FixedPoints
    pca : PCA
        Fitted on the states (same coordinates as the fixed points).
    path : str
    trajectories : ndarray (T, B, n), optional
        Drawn in grey.
    title : str, optional
    """
    from .trajectories import project

    fig = _figure((6.4, 5.6))
    k = min(3, pca.components.shape[0])
    ax = _axes3d(fig, k)
    if trajectories is not None:
        P = project(trajectories, pca)[..., :k]
        for b in range(P.shape[1]):
            ax.plot(*(P[:, b, i] for i in range(k)), color="0.7", lw=0.6, alpha=0.7)
    pts = project(fixed_points.states, pca)[:, :k] if len(fixed_points) else np.zeros((0, k))
    styles = {"stable": {"color": "black", "marker": "o", "s": 45},
              "saddle": {"facecolors": "none", "edgecolors": "tab:red", "marker": "o", "s": 45},
              "unstable": {"color": "tab:red", "marker": "x", "s": 45}}
    counts = fixed_points.counts()
    for kind, style in styles.items():
        sel = fixed_points.kinds == kind
        if sel.any():
            ax.scatter(*(pts[sel, i] for i in range(k)), label=f"{kind} ({counts[kind]})",
                       zorder=5, **style)
    # each saddle's unstable direction, as a short red segment
    for j in np.flatnonzero(fixed_points.kinds == "saddle"):
        ev, vecs = np.linalg.eig(fixed_points.jacobians[j])
        v = np.real(vecs[:, np.argmax(np.abs(ev))])
        scale = 0.15 * float(np.sqrt(pca.explained_variance[0]))
        seg = np.stack([fixed_points.states[j] - scale * v, fixed_points.states[j] + scale * v])
        S = project(seg, pca)[:, :k]
        ax.plot(*(S[:, i] for i in range(k)), color="tab:red", lw=1.2)
    for i, setter in enumerate((ax.set_xlabel, ax.set_ylabel) + ((ax.set_zlabel,) if k == 3
                                                                   else ())):
        setter(f"PC{i + 1} ({100 * pca.explained_variance_ratio[i]:.0f}%)")
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_eigenvalues(eigenvalues, path, *, kinds=None, title=None):
    """Eigenvalues of fixed-point Jacobians in the complex plane, with the unit circle.

    Parameters
    ----------
    eigenvalues : ndarray (K, n) of complex
    path : str
    kinds : ndarray (K,) of str, optional
        Colours the eigenvalues of each point by its kind.
    """
    ev = np.asarray(eigenvalues)
    fig = _figure((4.6, 4.4))
    ax = fig.subplots()
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(t), np.sin(t), color="0.5", lw=0.8)
    colors = {"stable": "black", "saddle": "tab:red", "unstable": "tab:orange"}
    if kinds is None:
        ax.scatter(ev.real.ravel(), ev.imag.ravel(), s=6, color="black")
    else:
        for kind, c in colors.items():
            sel = np.asarray(kinds) == kind
            if sel.any():
                ax.scatter(ev[sel].real.ravel(), ev[sel].imag.ravel(), s=6, color=c, label=kind)
        ax.legend(fontsize=8)
    ax.set_aspect("equal")
    ax.set_xlabel("Re(lambda)")
    ax.set_ylabel("Im(lambda)")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_psychometric(coherence, p_choice, path, *, title=None, n_trials=None):
    """Psychometric curve: probability of one choice against the signed evidence.

    Parameters
    ----------
    coherence : ndarray (M,)
        Signed coherence of each condition.
    p_choice : ndarray (M,)
        Probability of choosing option A.
    path : str
    title : str, optional
    n_trials : int, optional
        Trials per point, for binomial error bars.
    """
    c = np.asarray(coherence, dtype=np.float64)
    p = np.asarray(p_choice, dtype=np.float64)
    if c.shape != p.shape or c.ndim != 1:
        raise ValueError(f"plot_psychometric: Expected coherence and p_choice of the same 1-D "
                         f"shape, got {c.shape} and {p.shape}")
    fig = _figure((4.8, 3.6))
    ax = fig.subplots()
    yerr = None if n_trials is None else np.sqrt(p * (1 - p) / n_trials)
    ax.errorbar(c, p, yerr=yerr, marker="o", color="black", lw=1, ms=4)
    ax.axhline(0.5, color="0.7", lw=0.6, ls="--")
    ax.axvline(0.0, color="0.7", lw=0.6, ls="--")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("signed coherence (evidence for A)")
    ax.set_ylabel("P(choose A)")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)
