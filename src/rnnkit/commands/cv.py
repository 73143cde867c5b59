"""``rnnkit cv``: choose the hidden size (and cell, layers) by cross-validation.

It parses, loads the data, calls :func:`rnnkit.selection.search_hidden_size`,
and prints a table of the fold scores; no math here.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import time

import numpy as np

from .._argtypes import positive_int_list

NAME = "cv"

_EPILOG = """\
examples:
  rnnkit cv --data digits --hidden-sizes 8,16,32,64 --folds 5 --n-jobs 4
  rnnkit cv --data digits --cells lstm,gru --num-layers 1,2 --json cv.json
  rnnkit cv --data my_sequences.npz --task classification --csv cv.csv
  rnnkit cv --data digits --dask local --n-jobs 4        # an in-process Dask cluster
  rnnkit cv --data digits --dask tcp://10.0.0.5:8786     # a running Dask scheduler

data:
  digits        the 8x8 digits of scikit-learn, each image read row by row: 8 steps
                of 8 pixels, 10 classes (from rnnkit.data.datasets when present)
  NAME          a loader of rnnkit.data.datasets (when installed), e.g. sunspots
  FILE.npz      arrays X (n_samples, n_timesteps[, n_features]) and y, and
                optionally lengths (n_samples,) for a padded X; or a series y
                alone, which is forecast (--window) with time-ordered folds.
                Read with allow_pickle=False.

Scores are the estimator's: accuracy for classification, R^2 for regression
and forecasting (or --scoring, any scikit-learn scorer name). Each setting is
trained --folds times; the folds run in parallel with --n-jobs (joblib) or on
Dask with --dask."""


def add_parser(subparsers, formatter_class):
    p = subparsers.add_parser(
        NAME, formatter_class=formatter_class,
        help="choose the hidden size by cross-validation (locally or on Dask)",
        description=("Cross-validated search over hidden sizes (and cells and layer counts)\n"
                     "of a recurrent classifier, regressor or forecaster: a table of the mean\n"
                     "and standard deviation of the fold scores per setting, and the chosen\n"
                     "setting."),
        epilog=_EPILOG)
    p.add_argument("--data", default="digits", metavar="NAME|FILE.npz",
                   help="built-in data set name or .npz file")
    p.add_argument("--task", choices=("auto", "classification", "regression", "forecast"),
                   default="auto",
                   help="auto: forecast a lone series, classify integer or string labels, "
                        "else regress")
    g = p.add_argument_group("search")
    g.add_argument("--hidden-sizes", type=positive_int_list, default="8,16,32,64",
                   metavar="H,H,...",
                   help="comma-separated hidden sizes to try")
    g.add_argument("--cells", default="lstm", metavar="CELL,...",
                   help="comma-separated cells among lstm, gru, rnn")
    g.add_argument("--num-layers", type=positive_int_list, default="1", metavar="L,...",
                   help="comma-separated numbers of stacked layers")
    g.add_argument("--folds", default="5", metavar="K",
                   help="cross-validation folds (>= 2)")
    g.add_argument("--scoring", default=None,
                   help="scikit-learn scorer name; none: the estimator's score (accuracy or "
                        "R^2)")
    g.add_argument("--max-samples", default=None, metavar="N",
                   help="search on a random subset of N sequences (quick looks)")
    g = p.add_argument_group("training of each fit")
    g.add_argument("--max-iter", default="30", metavar="N", help="epochs per fit")
    g.add_argument("--batch-size", default="32", metavar="B", help="sequences per batch")
    g.add_argument("--lr", default="0.005", metavar="LR", help="Adam learning rate")
    g.add_argument("--alpha", default="0.0001", metavar="A", help="L2 weight decay")
    g.add_argument("--early-stopping", action="store_true",
                   help="stop each fit on a held-out 10%% of its training folds")
    g.add_argument("--no-scale", action="store_true",
                   help="feed the features unscaled; without it, each feature is "
                        "standardized with statistics of the training folds only")
    g.add_argument("--window", default="12", metavar="W",
                   help="observations per window (forecasting)")
    g.add_argument("--seed", default="0", metavar="S", help="random_state of every fit")
    g = p.add_argument_group("where the fits run")
    g.add_argument("--n-jobs", default="1", metavar="N",
                   help="fits at a time (joblib processes; -1: all cores; with --dask "
                        "local: workers)")
    g.add_argument("--dask", default=None, metavar="ADDRESS|local",
                   help="run the fits on a Dask scheduler at ADDRESS, or on an in-process "
                        "LocalCluster with 'local'")
    g = p.add_argument_group("output")
    g.add_argument("--json", default=None, metavar="PATH", help="write the results as JSON")
    g.add_argument("--csv", default=None, metavar="PATH", help="write the table as CSV")
    return p


# ----------------------------------------------------------- argument checks
def _number(text, option, kind=int, minimum=None, positive=False):
    try:
        v = kind(text)
    except ValueError:
        raise ValueError(f"{option} must be {'an integer' if kind is int else 'a number'}, "
                         f"got {text!r}") from None
    if kind is float and not np.isfinite(v):
        raise ValueError(f"{option} must be finite, got {text}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{option} must be >= {minimum}, got {text}")
    if positive and not v > 0:
        raise ValueError(f"{option} must be > 0, got {text}")
    return v


# ----------------------------------------------------------------- data sets
def _digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - sklearn is required by this command anyway
        raise ImportError("--data digits needs scikit-learn: pip install scikit-learn") from None
    d = load_digits()
    X = d.images.astype(np.float64) / 16.0  # (1797, 8, 8): 8 steps (rows) of 8 pixels
    return {"X": X, "y": d.target, "lengths": None,
            "source": "digits (scikit-learn, 8x8 images read row by row)"}


def _unpack(data, name):
    """The hook's return value -> dict(X, y, lengths): tuples, dicts, Bunches, objects."""
    if isinstance(data, tuple):
        if len(data) in (2, 3):
            X, y = data[0], data[1]
            return {"X": X, "y": y, "lengths": data[2] if len(data) == 3 else None}
        raise ValueError(f"rnnkit.data.datasets.load({name!r}) returned a tuple of "
                         f"{len(data)}; expected (X, y) or (X, y, lengths)")

    def get(*keys):
        for k in keys:
            try:  # a property may raise, e.g. X_train of a data set without a split
                value = data[k] if isinstance(data, dict) else getattr(data, k)
            except (KeyError, AttributeError, ValueError):
                continue
            if value is not None:
                return k, value
        return None, None

    # cross-validate on the training part when the data set has an official split
    kx, X = get("X_train", "X", "data")
    ky, y = get("y_train", "y", "target")
    if y is None:
        raise ValueError(f"rnnkit.data.datasets.load({name!r}) returned {type(data).__name__} "
                         "without X and y (or data and target, or a series y)")
    lengths = None
    if X is not None and not isinstance(X, list):
        lengths = get("lengths_train" if kx == "X_train" else "lengths")[1]
        if lengths is not None and np.all(np.asarray(lengths) == np.shape(X)[1]):
            lengths = None
    part = " (training part)" if ky == "y_train" else ""
    desc = get("description")[1]
    source = f"{name}{part}" + (f": {desc}" if isinstance(desc, str) else "")
    return {"X": X, "y": y, "lengths": lengths, "source": source}


def _load_named(name):
    try:
        datasets = importlib.import_module("rnnkit.data.datasets")
    except ModuleNotFoundError as exc:
        if exc.name not in ("rnnkit.data.datasets", "rnnkit.data"):
            raise
        datasets = None
    loader = getattr(datasets, "load", None)
    if loader is not None:
        return _unpack(loader(name), name)
    if name == "digits":
        return _digits()
    known = "digits" if loader is None else "digits or a name rnnkit.data.datasets.load knows"
    raise ValueError(f"unknown data set {name!r}: give {known}, or an .npz file")


def _load_npz(path):
    from ..io import read_npz

    arrays = read_npz(path)
    unknown = sorted(set(arrays) - {"X", "y", "lengths"})
    if "y" not in arrays:
        raise ValueError(f"{path}: needs an array named y (and X for sequences); it has "
                         f"{', '.join(sorted(arrays)) or 'no arrays'}")
    if unknown:
        raise ValueError(f"{path}: unexpected array(s) {', '.join(unknown)}; expected X, y "
                         "and optionally lengths")
    return {"X": arrays.get("X"), "y": arrays["y"], "lengths": arrays.get("lengths"),
            "source": os.path.basename(path)}


def _load(spec):
    if spec.endswith(".npz"):
        return _load_npz(spec)
    if os.path.sep in spec or os.path.isfile(spec):
        raise ValueError(f"--data {spec}: cv reads .npz files (arrays X and y, optionally "
                         "lengths) or a built-in data set name; for a series in a CSV file, "
                         "rnnkit train --task forecast")
    return _load_named(spec)


def _check_scoring(scoring):
    """An unknown scorer name is one line that names a few, not sklearn's list of fifty."""
    import difflib

    from sklearn.metrics import get_scorer_names

    names = get_scorer_names()
    if scoring is None or scoring in names:
        return
    close = difflib.get_close_matches(scoring, names, n=3)
    hint = f" (closest: {', '.join(close)})" if close else ""
    raise ValueError(f"--scoring {scoring!r} is not a scikit-learn scorer name{hint}; for "
                     "example accuracy, balanced_accuracy, f1_macro (classification), r2, "
                     "neg_mean_squared_error (regression and forecasts); all of them: "
                     "sklearn.metrics.get_scorer_names()")


def _as_sequences(X, lengths):
    """Padded X + lengths -> a list of arrays, which cross-validation can index per fold."""
    if lengths is None or isinstance(X, list):
        return X
    from ..data.sequences import as_padded, unpad

    x, lengths = as_padded(np.asarray(X), np.asarray(lengths))
    return [np.array(s) for s in unpad(x, lengths)]


def _task(args, data):
    if args.task != "auto":
        return args.task
    if data["X"] is None:
        return "forecast"
    y = np.asarray(data["y"])
    return "classification" if y.dtype.kind in "iubUSO" else "regression"


def _subsample(X, y, n, seed):
    N = len(y)
    if n >= N:
        return X, y
    idx = np.sort(np.random.default_rng(seed).choice(N, size=n, replace=False))
    Xs = [X[i] for i in idx] if isinstance(X, list) else np.asarray(X)[idx]
    return Xs, np.asarray(y)[idx]


def _describe(X, y, task):
    if task == "forecast":
        return f"a series of {len(y)} observations"
    if isinstance(X, list):
        lens = [len(s) for s in X]
        D = np.asarray(X[0]).reshape(len(X[0]), -1).shape[1]
        shape = f"{len(X)} sequences of {min(lens)}-{max(lens)} steps x {D} features"
    else:
        a = np.asarray(X)
        shape = f"{a.shape[0]} sequences of {a.shape[1]} steps x " \
                f"{a.shape[2] if a.ndim == 3 else 1} features"
    if task == "classification":
        shape += f", {len(np.unique(y))} classes"
    return shape


# ----------------------------------------------------------------------- run
def run(args):
    from .._argtypes import check_output_file
    from ..task_cli import require_sklearn

    require_sklearn("cross-validation")
    from sklearn.model_selection import StratifiedKFold, TimeSeriesSplit
    from sklearn.pipeline import Pipeline

    from ..estimators import RNNClassifier, RNNForecaster, RNNRegressor, SequenceScaler
    from ..selection import format_table, search_hidden_size, summarize_search

    hidden = args.hidden_sizes  # a list of integers >= 1 (positive_int_list)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    bad = [c for c in cells if c not in ("lstm", "gru", "rnn")]
    if not cells or bad:
        raise ValueError(f"--cells must be comma-separated among lstm, gru, rnn, got "
                         f"{args.cells!r}")
    layers = args.num_layers
    folds = _number(args.folds, "--folds", minimum=2)
    n_jobs = _number(args.n_jobs, "--n-jobs")
    if n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"--n-jobs must be a positive number of jobs or -1, got {n_jobs}")
    max_iter = _number(args.max_iter, "--max-iter", minimum=1)
    batch_size = _number(args.batch_size, "--batch-size", minimum=1)
    lr = _number(args.lr, "--lr", float, positive=True)
    alpha = _number(args.alpha, "--alpha", float, minimum=0)
    window = _number(args.window, "--window", minimum=1)
    seed = _number(args.seed, "--seed", minimum=0)
    max_samples = None if args.max_samples is None else _number(args.max_samples,
                                                               "--max-samples", minimum=2)
    for option, path in (("--json", args.json), ("--csv", args.csv)):
        if path:
            check_output_file(path, option)
    _check_scoring(args.scoring)

    data = _load(args.data)
    task = _task(args, data)
    common = {"max_iter": max_iter, "batch_size": batch_size, "learning_rate_init": lr,
              "alpha": alpha, "early_stopping": args.early_stopping, "random_state": seed}
    if task == "forecast":
        if data["X"] is not None and args.task == "forecast":
            raise ValueError("--task forecast takes a series y alone; this data has X")
        series = np.asarray(data["y"], dtype=np.float64)
        estimator = RNNForecaster(window=window, **common)
        X, y, cv = series, None, TimeSeriesSplit(n_splits=folds)
        what = _describe(None, series, task)
        score_name = args.scoring or "R^2 of the forecast"
    else:
        if data["X"] is None:
            raise ValueError(f"--task {task} needs sequences X; {args.data} holds a series only")
        X = _as_sequences(data["X"], data["lengths"])
        y = np.asarray(data["y"])
        if max_samples is not None:
            X, y = _subsample(X, y, max_samples, seed)
        if task == "classification":
            estimator = RNNClassifier(**common)
            cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            score_name = args.scoring or "accuracy"
        else:
            estimator = RNNRegressor(**common)
            cv = folds
            score_name = args.scoring or "R^2"
        what = _describe(X, y, task)
        if not args.no_scale:  # fitted on the training folds only, inside each fit
            estimator = Pipeline([("scale", SequenceScaler()), ("rnn", estimator)])

    n = len(X)
    if task == "forecast" and folds >= n:
        raise ValueError(f"--folds {folds} needs a series of more than {folds} observations; "
                         f"this one has {n}")
    if folds > n:
        raise ValueError(f"--folds {folds} is more than the {n} sequences")
    grid = {}
    if len(cells) > 1 or cells != ["lstm"]:
        grid["cell"] = cells
    if len(layers) > 1 or layers != [1]:
        grid["num_layers"] = layers
    n_settings = len(hidden) * len(cells) * len(layers)
    where = f"Dask ({args.dask})" if args.dask else f"{n_jobs} local job(s)"
    print(f"cross-validated search on {data['source']}: {what}; task {task}; "
          f"{n_settings} setting(s) x {folds} folds on {where}")
    start = time.perf_counter()
    search = search_hidden_size(estimator, X, y, hidden_sizes=hidden, param_grid=grid, cv=cv,
                                scoring=args.scoring, n_jobs=n_jobs, scheduler=args.dask,
                                refit=False, error_score="raise")
    elapsed = time.perf_counter() - start
    rows = summarize_search(search)
    for row in rows:  # 'rnn__hidden_size' -> 'hidden_size'
        row["params"] = {k.split("__")[-1]: v for k, v in row["params"].items()}
    print(format_table(rows, score_name))
    best = rows[0]
    chosen = " ".join(f"{k}={v}" for k, v in best["params"].items())
    print(f"chosen: {chosen} (mean {score_name} {best['mean_score']:.4f} "
          f"+/- {best['std_score']:.4f} over {folds} folds; {elapsed:.1f} s)")
    if args.json:
        payload = {"data": data["source"], "task": task, "folds": folds, "scoring": score_name,
                   "settings": {"max_iter": max_iter, "batch_size": batch_size,
                                "learning_rate_init": lr, "alpha": alpha,
                                "early_stopping": args.early_stopping, "random_state": seed,
                                **({"window": window} if task == "forecast" else {})},
                   "results": rows, "chosen": best["params"], "seconds": elapsed}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
    if args.csv:
        keys = list(best["params"])
        with open(args.csv, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["rank", *keys, "mean_score", "std_score",
                        *(f"fold{k}" for k in range(len(best["fold_scores"]))),
                        "mean_fit_time"])
            for row in rows:
                w.writerow([row["rank"], *(row["params"][k] for k in keys), row["mean_score"],
                            row["std_score"], *row["fold_scores"], row["mean_fit_time"]])
    return 0
