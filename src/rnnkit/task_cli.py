"""Command-line glue of the forecasting and classification tasks.

``rnnkit train --task forecast|classify`` (options added to the ``train``
parser by :func:`add_task_options`, run by :func:`run_train_task`), and the
printing shared with ``rnnkit predict`` and ``rnnkit evaluate``. It parses
and prints; the work is in :mod:`rnnkit.jobs`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ._argtypes import non_negative_float, non_negative_int, positive_int

__all__ = ["TASKS", "add_task_options", "check_task_options", "require_sklearn",
           "resolve_task_defaults", "run_train_task", "task_default"]

#: The extra that installs scikit-learn (the estimators behind the tasks and ``rnnkit cv``).
SKLEARN_EXTRA = "rnnkit[sklearn]"


def require_sklearn(what):
    """Import scikit-learn, or raise an ImportError that says ``what`` needs it and which extra
    installs it (checked before any data are read)."""
    try:
        importlib.import_module("sklearn")
    except ImportError:
        raise ImportError(f"{what} needs scikit-learn, which is not installed: pip install "
                          f"'{SKLEARN_EXTRA}' (or pip install scikit-learn)") from None


#: ``--task`` choices; 'text' is the character-level language model.
TASKS = ("text", "forecast", "classify")


TASK_EPILOG = """\
forecasting and classification (--task forecast | classify):
  rnnkit train --task forecast --data sunspots --window 12 --transform sqrt \\
      --hidden-size 32 --lr 0.003 --max-iter 150 --tol 0 --out runs/sunspots
  rnnkit train --task forecast sales.csv --column units --window 12 --horizon 6
  rnnkit train --task classify --data digits --hidden-size 128 --lr 0.005 \\
      --max-iter 60 --tol 0 --out runs/digits
  rnnkit train --task classify --data my_sequences.npz        # X, y [, lengths]
  rnnkit predict runs/sunspots --horizon 10                  # after the saved series
  rnnkit evaluate runs/digits                                 # the test part again

They train an rnnkit estimator on the training part, print test metrics beside
a naive baseline, save the model (safetensors + JSON, with task.json) in --out,
and write PNG plots there: forecast.png or confusion_matrix.png, and
learning_curves.png (the validation curve needs --early-stopping)."""


# ------------------------------------------------------------ per-task defaults
class _TaskDefault:
    """Marks an option's default that differs between the text task and the others."""

    task_value = None


class _IntDefault(_TaskDefault, int):
    pass


class _FloatDefault(_TaskDefault, float):
    pass


class _StrDefault(_TaskDefault, str):
    pass


def task_default(text_value, task_value):
    """A default that ``--help`` shows as ``text_value`` (the text task's) and that
    :func:`resolve_task_defaults` replaces by ``task_value`` (a value, or a dict
    by task) for ``--task forecast`` or ``classify``."""
    kind = {int: _IntDefault, float: _FloatDefault, str: _StrDefault}[type(text_value)]
    obj = kind(text_value)
    obj.task_value = task_value
    return obj


def resolve_task_defaults(args):
    """Replace the per-task defaults in ``args`` by plain values for ``args.task``."""
    task = getattr(args, "task", "text")
    for name, value in vars(args).items():
        if isinstance(value, _TaskDefault):
            if task == "text":
                plain = {_IntDefault: int, _FloatDefault: float, _StrDefault: str}[type(value)]
                setattr(args, name, plain(value))
            else:
                tv = value.task_value
                setattr(args, name, tv[task] if isinstance(tv, dict) else tv)
    return args


# ------------------------------------------------------------------- options
def _key_value(text):
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    value = value.strip()
    try:
        parsed = int(value)
    except ValueError:
        try:
            parsed = float(value)
        except ValueError:
            parsed = value
    return key.strip(), parsed


def add_task_options(parser):
    """Add ``--task`` and the options of the forecasting and classification tasks."""
    from .jobs import CLASSIFY_DATASETS, FORECAST_DATASETS, TRANSFORMS

    parser.add_argument(
        "--task", choices=TASKS, default="text",
        help="text: a character-level language model; forecast: an RNNForecaster on a "
             "series; classify: an RNNClassifier on labelled sequences")
    g = parser.add_argument_group(
        "forecasting and classification (--task forecast or classify)",
        "FILE is then a CSV series (forecast) or an .npz/CSV file of labelled sequences\n"
        "(classify). --cell, --hidden-size, --num-layers, --dropout, --batch-size, --lr,\n"
        "--seed, --val-fraction and --out apply too.")
    g.add_argument("--data", default=None, metavar="NAME|FILE",
                   help=f"built-in data: {', '.join(FORECAST_DATASETS)} (forecast), "
                        f"{', '.join(CLASSIFY_DATASETS)} (classify); or a file")
    g.add_argument("--column", default=None, metavar="NAME",
                   help="CSV column: the series (forecast) or the labels (classify; default "
                        "a column named label/class/target/y, else the first)")
    d = task_default
    g.add_argument("--window", type=positive_int, default=d(12, 12), metavar="W",
                   help="observations each forecast reads")
    g.add_argument("--horizon", type=positive_int, default=d(1, 1), metavar="K",
                   help="steps to forecast after the data, and the K-step-ahead test")
    g.add_argument("--strategy", choices=("recursive", "direct"), default=d("recursive",
                                                                             "recursive"),
                   help="multi-step forecasts by feeding forecasts back, or K outputs at once")
    g.add_argument("--transform", choices=TRANSFORMS, default=d("none", "none"),
                   help="transform of the series before scaling, undone on the forecasts: log, "
                        "sqrt, diff (y_t - y_t-1), logdiff (growth rate)")
    g.add_argument("--season", type=non_negative_int, default=d(0, 0), metavar="S",
                   help="also a seasonal difference of lag S after --transform, e.g. 12 for "
                        "monthly data (0: none)")
    g.add_argument("--scale", choices=("standard", "none"), default=d("standard", "standard"),
                   help="classify: standardize each feature with training statistics")
    g.add_argument("--test-size", default=None, metavar="N|FRACTION",
                   help="held out for testing where the data have no official split: a count "
                        "or a fraction (the last part of a series; default 0.2); the built-in "
                        "series and data sets with an official split keep theirs")
    g.add_argument("--max-iter", type=positive_int, default=d(200, 200), metavar="N",
                   help="most epochs")
    g.add_argument("--alpha", type=non_negative_float, default=d(1e-4, 1e-4), metavar="A",
                   help="L2 weight decay")
    g.add_argument("--tol", type=non_negative_float, default=d(1e-4, 1e-4), metavar="TOL",
                   help="stop once the loss (or validation score) has not beaten its best "
                        "by TOL for --n-iter-no-change epochs in a row (scikit-learn's MLP "
                        "rule); 0 stops only when it has not beaten its best at all")
    g.add_argument("--n-iter-no-change", type=positive_int, default=d(10, 10), metavar="N",
                   help="epochs without improvement before stopping")
    g.add_argument("--early-stopping", action="store_true",
                   help="hold out --val-fraction of the training part, stop when its score "
                        "stops improving and keep the best network (the validation curve)")
    g.add_argument("--data-option", action="append", type=_key_value, default=None,
                   metavar="KEY=VALUE",
                   help="keyword of a built-in loader, e.g. hop_length=160 for fsdd "
                        "(repeatable)")
    g.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    return parser


_FORECAST_ONLY = ("window", "horizon", "strategy", "transform", "season")
_CLASSIFY_ONLY = ("scale", "data_option")
_TASK_ONLY = ("data", "column", "test_size", "max_iter", "alpha", "tol", "n_iter_no_change",
              "early_stopping", "no_plots", *_FORECAST_ONLY, *_CLASSIFY_ONLY)
_TEXT_ONLY = ("resume", "steps", "checkpoint_every", "sample_length", "temperature", "prime")


def _option(name):
    return "--" + name.replace("_", "-")


def _given(args, name):
    """True when the option ``name`` was on the command line (not its default)."""
    value = getattr(args, name, None)
    return not (value is None or value is False or isinstance(value, _TaskDefault))


def check_task_options(args):
    """ValueError when an option of another task is given (call before resolving defaults)."""
    task = getattr(args, "task", "text")
    if task == "text":
        given = [n for n in _TASK_ONLY if _given(args, n)]
        if given:
            raise ValueError(f"{_option(given[0])} is an option of --task forecast or classify; "
                             "the default task (text) trains a character-level language model")
        return
    other = {"forecast": _CLASSIFY_ONLY, "classify": _FORECAST_ONLY}[task]
    for name in other + _TEXT_ONLY:
        if _given(args, name):
            owner = ("the text task" if name in _TEXT_ONLY else
                     "--task classify" if name in _CLASSIFY_ONLY else "--task forecast")
            raise ValueError(f"{_option(name)} is an option of {owner}, not of --task {task}")


# ----------------------------------------------------------------------- train
def _estimator_params(args):
    return {"cell": args.cell, "hidden_size": args.hidden_size, "num_layers": args.num_layers,
            "dropout": args.dropout, "batch_size": args.batch_size,
            "learning_rate_init": args.lr, "max_iter": args.max_iter, "alpha": args.alpha,
            "tol": args.tol, "n_iter_no_change": args.n_iter_no_change,
            "early_stopping": bool(args.early_stopping),
            "validation_fraction": args.val_fraction, "random_state": args.seed,
            "verbose": not args.no_progress}


def _data_spec(args):
    if args.text_file is not None and args.data is not None:
        raise ValueError(f"give the data once: a file ({args.text_file}) or --data "
                         f"({args.data}), not both")
    spec = args.text_file if args.text_file is not None else args.data
    if spec is None:
        from .jobs import CLASSIFY_DATASETS, FORECAST_DATASETS

        names = FORECAST_DATASETS if args.task == "forecast" else CLASSIFY_DATASETS
        kind = "a CSV file" if args.task == "forecast" else "an .npz or CSV file"
        raise ValueError(f"--task {args.task} needs data: {kind}, or --data "
                         f"{'|'.join(names)}")
    return spec


def _fmt(v, digits=4):
    if v is None:
        return "n/a"
    return f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:.0f}"


def format_forecast_metrics(m):
    """``MSE .. RMSE .. MAE .. [MAPE ..%]`` on one line."""
    text = f"MSE {_fmt(m['mse'])}  RMSE {_fmt(m['rmse'])}  MAE {_fmt(m['mae'])}"
    if m.get("mape") is not None:
        text += f"  MAPE {m['mape']:.2f}%"
    return text


def print_forecast_report(ev, horizon, *, what="test"):
    """Print the one-step, naive and K-step metrics of :func:`rnnkit.jobs.evaluate_forecaster`."""
    m = ev["metrics"]
    print(f"{what}, one step ahead ({m['n_test']} forecasts): {format_forecast_metrics(m)}")
    print(f"  baseline, repeat the last value:  {format_forecast_metrics(ev['naive'])}")
    km = ev.get("k_step_metrics")
    if horizon > 1 and km is not None:
        print(f"{what}, {horizon} steps ahead ({km['n_test']} forecasts): "
              f"{format_forecast_metrics(km)}")


def print_classify_report(metrics, *, what="test", majority=None):
    """Print accuracy, macro F1 (and the majority-class baseline)."""
    n = metrics["n_test"]
    correct = round(metrics["accuracy"] * n)
    line = (f"{what} accuracy {metrics['accuracy']:.4f} ({correct}/{n} sequences), macro F1 "
            f"{metrics['macro_f1']:.4f}")
    if majority is not None:
        line += f"; baseline, the most frequent class: {majority:.4f}"
    print(line)


def _model_line(kind, p, extra):
    return (f"model: {kind}(cell={p['cell']}, hidden_size={p['hidden_size']}, "
            f"num_layers={p['num_layers']}){extra}; adam lr={p['learning_rate_init']:g}, "
            f"alpha={p['alpha']:g}, batch {p['batch_size']}, up to {p['max_iter']} epochs"
            f"{', early stopping' if p['early_stopping'] else ''}")


def _trained_line(est, seconds, converged):
    line = (f"trained {est.n_iter_} epochs in {seconds:.1f} s; final training loss "
            f"{est.loss_:.4g}")
    if est.validation_scores_:
        line += f"; best validation score {est.best_validation_score_:.4g}"
    if not converged:
        line += " (stopped at --max-iter; the loss may still fall)"
    return line


def run_train_task(args, trainer_hook=None):
    """``rnnkit train --task forecast|classify``: train, test, save, plot; returns 0.

    ``trainer_hook`` goes to the estimator's trainer (the CLI's Ctrl-C handler)."""
    from . import jobs

    require_sklearn(f"--task {args.task}")
    spec = _data_spec(args)
    params = _estimator_params(args)
    test_size = None if args.test_size is None else jobs.parse_test_size(args.test_size)
    options = dict(args.data_option or [])
    out = args.out
    plots = not args.no_plots
    if plots:
        from .task_plots import require_matplotlib

        require_matplotlib()  # now, not after the training
    if args.task == "forecast":
        data = jobs.load_series(spec, column=args.column, test_size=test_size)
        horizon, window, strategy = args.horizon, args.window, args.strategy
        transform = jobs.SeriesTransform(args.transform, args.season)
        print(f"data: {data.describe()}")
        print(_model_line("RNNForecaster", params,
                          f", window {window}, transform {transform.describe()}, {strategy}"))
        sys.stdout.flush()
        r = jobs.train_forecaster(data, window=window, horizon=horizon, strategy=strategy,
                                  transform=transform, out=out, plots=plots,
                                  trainer_hook=trainer_hook, **params)
        print(_trained_line(r.estimator, r.fit_seconds, r.converged))
        print_forecast_report({"metrics": r.metrics, "naive": r.naive_metrics,
                               "k_step_metrics": r.k_step_metrics}, horizon)
        end = jobs.format_index(data.index[-1])
        print(f"forecast of the {horizon} step(s) after {end}: "
              + ", ".join(_fmt(v) for v in r.future))
    else:
        data = jobs.load_sequences(spec, label_column=args.column, test_size=test_size,
                                   seed=args.seed, dataset_options=options)
        scale = args.scale
        print(f"data: {data.describe()}")
        print(_model_line("RNNClassifier", params,
                          ", inputs standardized with training statistics"
                          if scale == "standard" else ", inputs as given"))
        sys.stdout.flush()
        r = jobs.train_classifier(data, scale=scale, out=out, plots=plots,
                                  trainer_hook=trainer_hook, **params)
        print(_trained_line(r.estimator, r.fit_seconds, r.converged))
        print_classify_report(r.metrics, majority=r.majority_accuracy)
    saved = [f for f in r.files if f.endswith((".json", ".safetensors"))]
    print(f"saved model to {out} ({', '.join(os.path.basename(f) for f in saved)})")
    pngs = [f for f in r.files if f.endswith(".png")]
    if pngs:
        print(f"plots: {', '.join(pngs)}")
    return 0
