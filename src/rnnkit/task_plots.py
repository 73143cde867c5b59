"""PNG plots of forecasting and classification jobs (matplotlib, the ``plot`` extra).

- :func:`plot_forecast`: the series, the one-step (and K-step-ahead) test
  forecasts and the forecast after the data.
- :func:`plot_confusion_matrix`: test counts, true class by predicted class.
- :func:`plot_learning_curves`: training loss per epoch and, with early
  stopping, the validation score.

matplotlib is imported when a function is called, and only its
object-oriented API with the Agg canvas is used (no pyplot, no global
backend change), so the functions work on servers and in threads. Each
writes one PNG file and returns its path.
"""

from __future__ import annotations

import io
import os

import numpy as np

__all__ = ["plot_confusion_matrix", "plot_forecast", "plot_learning_curves"]


NO_MATPLOTLIB = ("plots need matplotlib: pip install 'rnnkit[plot]' (or pip install "
                 "matplotlib), or turn them off with --no-plots")


def require_matplotlib():
    """Raise the ImportError a plot would raise, before any training is spent."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(NO_MATPLOTLIB) from None


def _figure(figsize):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(NO_MATPLOTLIB) from None
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    from . import io as rio

    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png")
    rio.atomic_write_bytes(path, buf.getvalue())
    return path


def plot_forecast(path, data, one_step, k_step=None, horizon=1, future=None,
                  future_index=None, *, rmse=None):
    """The series with its test forecasts and the forecast after its end.

    Parameters
    ----------
    path : str
        The PNG file to write.
    data : rnnkit.jobs.SeriesData
    one_step : ndarray of shape (n_test,)
        One-step-ahead forecasts of the test part.
    k_step : ndarray of shape (n_test,), optional
        ``horizon``-step-ahead forecasts of the test part (NaN where none).
    horizon : int, default 1
    future : ndarray of shape (horizon,), optional
        The forecast after the last observation.
    future_index : ndarray of shape (horizon,), optional
        Its time index.
    rmse : float, optional
        Shown in the title.

    Returns
    -------
    str : ``path``
    """
    fig = _figure((10, 4.2))
    ax = fig.add_subplot()
    idx = np.asarray(data.index)
    n_tr, n_te = data.n_train, data.n_test
    test_idx = idx[n_tr:n_tr + n_te]
    ax.plot(idx, data.y, color="0.25", lw=1.2, label="observed")
    ax.axvspan(test_idx[0], test_idx[-1], color="0.9", zorder=0, label="test part")
    ax.plot(test_idx, one_step, color="tab:orange", lw=1.5, label="one-step forecast")
    if k_step is not None and horizon > 1 and np.isfinite(k_step).any():
        ax.plot(test_idx, k_step, color="tab:green", lw=1.2, ls="--",
                label=f"{horizon}-step-ahead forecast")
    if future is not None and future_index is not None and len(future):
        ax.plot(np.concatenate([idx[-1:], future_index]),
                np.concatenate([data.y[-1:], future]), color="tab:red", lw=1.5, ls=":",
                marker="o", ms=3, label=f"forecast of the next {len(future)}")
    title = f"{data.name}: test forecasts"
    if rmse is not None:
        title += f" (one-step RMSE {rmse:.4g})"
    ax.set_title(title)
    ax.set_ylabel(data.unit or "value")
    ax.set_xlabel("time")
    ax.legend(loc="upper left", fontsize="small")
    return _save(fig, path)


def plot_confusion_matrix(path, matrix, labels, *, title=None):
    """A confusion matrix as a heatmap with the counts written in.

    Parameters
    ----------
    path : str
    matrix : array_like of shape (C, C)
        Counts: row = true class, column = predicted class.
    labels : sequence of str (C,)
    title : str, optional

    Returns
    -------
    str : ``path``
    """
    cm = np.asarray(matrix, dtype=np.int64)
    C = cm.shape[0]
    if cm.shape != (C, C) or len(labels) != C:
        raise ValueError(f"plot_confusion_matrix: a (C, C) matrix and C labels, got "
                         f"{cm.shape} and {len(labels)}")
    size = min(3.0 + 0.45 * C, 14.0)
    fig = _figure((size + 1.0, size))
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_xticks(range(C), labels=labels, rotation=90 if C > 12 else 0)
    ax.set_yticks(range(C), labels=labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if C <= 30:
        top = cm.max() if cm.size else 0
        for i in range(C):
            for j in range(C):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize="small",
                            color="white" if cm[i, j] > top / 2 else "black")
    ax.set_title(title or "confusion matrix (test)")
    return _save(fig, path)


def plot_learning_curves(path, loss_curve, validation_scores=None, *,
                         score_name="validation score", title=None):
    """Training loss per epoch and, when recorded, the validation score.

    Parameters
    ----------
    path : str
    loss_curve : sequence of float
        The estimator's ``loss_curve_``.
    validation_scores : sequence of float, optional
        Its ``validation_scores_`` (with ``early_stopping``).
    score_name : str, default 'validation score'
    title : str, optional

    Returns
    -------
    str : ``path``
    """
    loss = np.asarray(loss_curve, dtype=np.float64)
    has_val = validation_scores is not None and len(validation_scores) > 0
    fig = _figure((7, 5.5 if has_val else 3.6))
    axes = fig.subplots(2 if has_val else 1, 1, sharex=True, squeeze=False)[:, 0]
    epochs = np.arange(1, len(loss) + 1)
    axes[0].plot(epochs, loss, color="tab:blue", marker="." if len(loss) < 60 else None)
    axes[0].set_ylabel("training loss")
    if len(loss) and np.all(loss > 0) and loss.max() / loss.min() > 20:
        axes[0].set_yscale("log")
    if has_val:
        val = np.asarray(validation_scores, dtype=np.float64)
        axes[1].plot(np.arange(1, len(val) + 1), val, color="tab:orange",
                     marker="." if len(val) < 60 else None)
        best = int(np.argmax(val))
        axes[1].axvline(best + 1, color="0.6", ls="--", lw=1)
        axes[1].set_ylabel(score_name)
        axes[1].set_title(f"best {val[best]:.4g} at epoch {best + 1} (kept)", fontsize="small")
    else:
        axes[0].text(0.99, 0.97, "no validation curve: train with --early-stopping",
                     transform=axes[0].transAxes, ha="right", va="top", fontsize="x-small",
                     color="0.4")
    axes[-1].set_xlabel("epoch")
    fig.suptitle(title or "learning curves")
    return _save(fig, path)
