"""Choosing the hidden size (and other settings) by cross-validation, locally or on Dask.

The hidden size is the capacity of a recurrent network: too small and it
underfits, too large and it overfits a small data set. The usual way to
choose it is a cross-validated grid search, which is what
:func:`search_hidden_size` runs (it is :class:`sklearn.model_selection.GridSearchCV`
with defaults that suit sequences and series). The folds and settings are
independent fits, so they run in parallel: on local processes through
joblib (``n_jobs``), or on a Dask cluster through joblib's Dask backend.

The recipe, spelled out (what :func:`search_hidden_size` does)::

    from sklearn.model_selection import GridSearchCV
    from rnnkit.estimators import RNNClassifier

    search = GridSearchCV(
        RNNClassifier(max_iter=30, random_state=0),
        {"hidden_size": [8, 16, 32, 64], "cell": ["lstm", "gru"]},
        cv=5,              # stratified folds for a classifier
        n_jobs=4,          # four fits at a time, in local worker processes
    )
    search.fit(X, y)
    search.best_params_, search.best_score_

and on a Dask cluster, the same search, with the fits sent to its workers::

    import joblib
    from dask.distributed import Client   # or LocalCluster() for one machine

    with Client("tcp://scheduler:8786") as client, joblib.parallel_backend("dask"):
        search.set_params(n_jobs=-1).fit(X, y)

For a series (:class:`~rnnkit.estimators.RNNForecaster`) use
``cv=TimeSeriesSplit(n_splits)``: every fold trains on the past and
forecasts the block after it (:func:`search_hidden_size` chooses it for you).

This module may import scikit-learn, joblib and Dask (Dask lazily, only on
the Dask path: ``pip install 'dask[distributed]'``).

Examples
--------
>>> import numpy as np
>>> from rnnkit.estimators import RNNClassifier
>>> from rnnkit.selection import search_hidden_size
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(40, 4, 1))
>>> y = (X.sum(axis=(1, 2)) > 0).astype(int)
>>> search = search_hidden_size(RNNClassifier(max_iter=3, random_state=0), X, y,
...                             hidden_sizes=[2, 4], cv=2)
>>> sorted(search.best_params_)
['hidden_size']
"""

from __future__ import annotations

import contextlib
import math
import numbers
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.pipeline import Pipeline

__all__ = ["DEFAULT_HIDDEN_SIZES", "dask_client", "format_table", "search_hidden_size",
           "summarize_search"]

DEFAULT_HIDDEN_SIZES = (8, 16, 32, 64)


def _final_estimator(estimator):
    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator


@contextlib.contextmanager
def dask_client(scheduler, *, n_workers=None, processes=True):
    """A ``dask.distributed.Client`` for ``scheduler``, closed on exit if made here.

    Parameters
    ----------
    scheduler : str or dask.distributed.Client
        ``'local'`` starts an in-process :class:`dask.distributed.LocalCluster`
        (closed on exit); any other string is a scheduler address such as
        ``'tcp://10.0.0.5:8786'``; a ``Client`` is used as it is (not closed).
    n_workers : int, optional
        Workers of the local cluster (default: Dask's choice).
    processes : bool, default=True
        Local workers as processes (parallel Python) or threads (fast to start).

    Yields
    ------
    client : dask.distributed.Client
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("the Dask path needs dask.distributed: "
                          "pip install 'dask[distributed]'") from None
    if isinstance(scheduler, Client):
        yield scheduler
        return
    if not isinstance(scheduler, str) or not scheduler:
        raise TypeError(f"scheduler must be 'local', an address string or a "
                        f"dask.distributed.Client, got {scheduler!r}")
    if scheduler == "local":
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1,
                               processes=processes, dashboard_address=None)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise OSError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
    with client:
        yield client


def search_hidden_size(estimator, X, y=None, *, hidden_sizes=DEFAULT_HIDDEN_SIZES,
                       param_grid=None, cv=5, scoring=None, n_jobs=None, scheduler=None,
                       refit=True, verbose=0, error_score=np.nan, quiet=True, **fit_params):
    """Cross-validated grid search over ``hidden_size`` (and other settings).

    Parameters
    ----------
    estimator : RNNClassifier, RNNRegressor, RNNForecaster or a Pipeline ending in one
        Its other hyperparameters stay as set (e.g. ``max_iter``, ``random_state``).
    X : array_like or list of arrays
        Sequences (or, for a forecaster, the series ``y`` as in its ``fit``).
    y : array_like, optional
        Targets (or a forecaster's exogenous inputs).
    hidden_sizes : sequence of int, default=(8, 16, 32, 64)
        The sizes tried; empty to search ``param_grid`` alone.
    param_grid : dict or list of dicts, optional
        More settings to cross, e.g. ``{"cell": ["lstm", "gru"], "num_layers": [1, 2]}``
        (names of the final estimator; a Pipeline's step prefix is added).
    cv : int or cross-validation splitter, default=5
        An int gives stratified folds for a classifier, plain folds for a
        regressor and ``TimeSeriesSplit(cv)`` for a forecaster.
    scoring : str or callable, optional
        Default: the estimator's ``score`` (accuracy, or R²).
    n_jobs : int, optional
        Fits at a time on local processes (joblib); -1 uses all cores. With
        ``scheduler='local'``: the number of workers of the LocalCluster (with
        any scheduler, every fit is a Dask task and the cluster runs as many
        at once as it has worker threads).
    scheduler : str or dask.distributed.Client, optional
        Run the fits on Dask: ``'local'`` (an in-process LocalCluster), a
        scheduler address, or a Client (see :func:`dask_client`).
    refit : bool, default=True
        Refit the best setting on all of ``X`` (``search.best_estimator_``).
    verbose : int, default=0
    error_score : 'raise' or float, default=nan
        What a failing fit scores (GridSearchCV's option).
    quiet : bool, default=True
        Silence ``ConvergenceWarning`` (a short ``max_iter`` is common in searches).
    **fit_params
        Passed to ``fit`` (sliced per fold when they hold one value per sample).

    Returns
    -------
    search : sklearn.model_selection.GridSearchCV
        Fitted: ``best_params_``, ``best_score_``, ``cv_results_`` (see
        :func:`summarize_search`) and ``best_estimator_``.

    Raises
    ------
    ValueError
        An empty grid or invalid hidden sizes.
    """
    grid = _build_grid(estimator, hidden_sizes, param_grid)
    final = _final_estimator(estimator)
    if isinstance(cv, numbers.Integral) and type(final).__name__ == "RNNForecaster":
        cv = TimeSeriesSplit(n_splits=int(cv))
    # on Dask, every fit is a task and the cluster decides how many run at once
    search = GridSearchCV(clone(estimator), grid, cv=cv, scoring=scoring,
                          n_jobs=n_jobs if scheduler is None else -1,
                          refit=refit, verbose=verbose, error_score=error_score)
    with warnings.catch_warnings():
        if quiet:  # scikit-learn hands these filters to the joblib workers
            warnings.simplefilter("ignore", ConvergenceWarning)
        if scheduler is None:
            search.fit(X, y, **fit_params)
        else:
            import joblib

            workers = n_jobs if n_jobs and n_jobs > 0 else None
            with dask_client(scheduler, n_workers=workers), joblib.parallel_backend("dask"):
                search.fit(X, y, **fit_params)
    return search


def _build_grid(estimator, hidden_sizes, param_grid):
    prefix = estimator.steps[-1][0] + "__" if isinstance(estimator, Pipeline) else ""
    sizes = list(hidden_sizes or [])
    for h in sizes:
        if isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1:
            raise ValueError(f"hidden sizes must be positive integers, got {h!r}")
    grids = param_grid if isinstance(param_grid, list) else [param_grid or {}]
    out = []
    for g in grids:
        g = {(k if k.startswith(prefix) else prefix + k): list(v) for k, v in g.items()}
        if sizes:
            g[prefix + "hidden_size"] = sizes
        if not g or any(len(v) == 0 for v in g.values()):
            raise ValueError("the search grid is empty: give hidden_sizes or param_grid values")
        out.append(g)
    return out


def summarize_search(search):
    """One row per setting of a fitted search, best first.

    Returns
    -------
    list of dict
        ``rank``, ``params`` (dict), ``mean_score``, ``std_score``,
        ``fold_scores`` (list), ``mean_fit_time`` (seconds).
    """
    r = search.cv_results_
    n_splits = search.n_splits_
    rows = []
    for i, params in enumerate(r["params"]):
        folds = [float(r[f"split{k}_test_score"][i]) for k in range(n_splits)]
        rows.append({"rank": int(r["rank_test_score"][i]), "params": dict(params),
                     "mean_score": float(r["mean_test_score"][i]),
                     "std_score": float(r["std_test_score"][i]), "fold_scores": folds,
                     "mean_fit_time": float(r["mean_fit_time"][i])})
    rows.sort(key=lambda row: (row["rank"], -_nan_low(row["mean_score"])))
    return rows


def _nan_low(v):
    return -math.inf if math.isnan(v) else v


def format_table(rows, score_name="score"):
    """A plain-text table of :func:`summarize_search`'s rows (what ``rnnkit cv`` prints)."""
    if not rows:
        return "(no settings)"
    names = [k.split("__")[-1] for k in rows[0]["params"]]
    keys = list(rows[0]["params"])
    head = ["rank", *names, f"mean {score_name}", "std", "fold scores", "fit s"]
    body = []
    for row in rows:
        folds = " ".join(f"{s:.4f}" for s in row["fold_scores"])
        body.append([str(row["rank"]), *(str(row["params"][k]) for k in keys),
                     f"{row['mean_score']:.4f}", f"{row['std_score']:.4f}", folds,
                     f"{row['mean_fit_time']:.2f}"])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    left = {len(head) - 2}  # the fold scores column reads better left-aligned

    def line(cells):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(head), *(line(b) for b in body)])
