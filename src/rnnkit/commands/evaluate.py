"""``rnnkit evaluate``: test metrics of a model saved by ``rnnkit train --task``.

It parses, loads the data, calls :mod:`rnnkit.jobs` and prints; no math here.
"""

from __future__ import annotations

import os

NAME = "evaluate"

_EPILOG = """\
examples:
  rnnkit evaluate runs/sunspots                 # the test part of the training run again
  rnnkit evaluate runs/airline --data airline --horizon 12
  rnnkit evaluate runs/sales other_store.csv --column units --plots figures/
  rnnkit evaluate runs/digits --data digits
  rnnkit evaluate runs/speakers held_out.npz

Without data it evaluates on the test part the model was trained against (a
built-in data set, or the file and split that task.json records). A built-in
name (--data) gives its test part. A FILE is all test data: every observation
of a series after the first window is forecast one step ahead (with the true
history), every sequence of an .npz/CSV file is classified."""


def add_parser(subparsers, formatter_class):
    p = subparsers.add_parser(
        NAME, formatter_class=formatter_class,
        help="test metrics of a model saved by 'rnnkit train --task'",
        description="One-step (and K-step-ahead) forecast errors of a saved forecaster, or "
                    "the accuracy and confusion matrix of a saved classifier.",
        epilog=_EPILOG)
    p.add_argument("model_dir", metavar="MODEL_DIR", help="folder of the saved model")
    p.add_argument("file", nargs="?", metavar="FILE",
                   help="CSV series (forecaster) or .npz/CSV sequences (classifier)")
    p.add_argument("--data", default=None, metavar="NAME|FILE",
                   help="a built-in data set (its test part) or a file")
    p.add_argument("--column", default=None, metavar="NAME",
                   help="CSV column: the series, or the labels")
    p.add_argument("--horizon", type=int, default=None, metavar="K",
                   help="forecaster: also the K-step-ahead errors (default: as trained)")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="write forecast.png or confusion_matrix.png into DIR")
    return p


def _spec(args, job):
    """(spec, whole_file): what to evaluate on, and whether all of it is test data."""
    if args.file is not None and args.data is not None:
        raise ValueError(f"give the data once: FILE ({args.file}) or --data ({args.data})")
    spec = args.file if args.file is not None else args.data
    if spec is not None:
        from ..jobs import is_file_spec

        return spec, is_file_spec(spec)
    source = job.info.get("data") or {}
    if source.get("kind") == "builtin":
        return source["name"], False
    if source.get("kind") in ("csv", "npz"):
        path = source.get("path")
        if not path or not os.path.exists(path):
            raise FileNotFoundError(f"the training data {path} are gone; give FILE or --data")
        return path, False
    raise ValueError(f"{args.model_dir} does not record its data; give FILE or --data NAME")


def _evaluate_forecaster(job, args):
    from .. import jobs
    from ..task_cli import print_forecast_report

    horizon = args.horizon if args.horizon is not None else int(job.info.get("horizon", 1))
    if horizon < 1:
        raise ValueError(f"--horizon must be >= 1, got {horizon}")
    spec, whole = _spec(args, job)
    _check_builtin(spec, "forecast")
    est, tf = job.estimator, job.transform
    recorded = job.info.get("data") or {}
    if whole:
        y, index, column = jobs.read_series_csv(spec, args.column)
        start = est.window + tf.order
        if len(y) <= start:
            raise ValueError(f"{spec}: {len(y)} observations; the window needs {start} before "
                             "the first forecast")
        data = jobs.SeriesData(os.path.basename(spec), y, index, start, len(y) - start,
                               {"kind": "csv", "path": os.path.abspath(spec)})
        what = f"{data.name} (all {data.n_test} forecastable observations)"
    else:
        column = args.column or recorded.get("column")
        test_size = recorded.get("test_size")  # None: the default, or a built-in split
        data = jobs.load_series(spec, column=column if jobs.is_file_spec(spec) else None,
                                test_size=test_size)
        what = f"{data.name} (test part, {data.n_test} observations)"
    stop = data.n_train + data.n_test
    ev = jobs.evaluate_forecaster(est, tf, data.y[:stop], data.n_train, horizon=horizon)
    print(f"model: {args.model_dir} (RNNForecaster, window {est.window}, transform {tf.describe()})")
    print(f"data: {what}")
    print_forecast_report(ev, horizon)
    if args.plots:
        from ..task_plots import plot_forecast

        path = plot_forecast(os.path.join(args.plots, "forecast.png"), data, ev["one_step"],
                             ev.get("k_step"), horizon, rmse=ev["metrics"]["rmse"])
        print(f"plots: {path}")
    return 0


def _check_builtin(spec, task):
    """A built-in data set of the other task: say so in evaluate's terms (it has no --task)."""
    from .. import jobs

    if jobs.is_file_spec(spec):
        return
    key = jobs.builtin_key(spec)
    if task == "forecast" and key in jobs.CLASSIFY_DATASETS:
        raise ValueError(f"this model is a forecaster and {spec!r} is a classification data "
                         f"set: give a series ({', '.join(jobs.FORECAST_DATASETS)}) or a CSV file")
    if task == "classify" and key in jobs.FORECAST_DATASETS:
        raise ValueError(f"this model is a classifier and {spec!r} is a series: give one of "
                         f"{', '.join(jobs.CLASSIFY_DATASETS)}, or an .npz or CSV file")


def _evaluate_classifier(job, args):
    from .. import jobs
    from ..task_cli import print_classify_report

    if args.horizon is not None:
        raise ValueError("--horizon is for forecasters; this model is a classifier")
    spec, whole = _spec(args, job)
    _check_builtin(spec, "classify")
    recorded = job.info.get("data") or {}
    split = job.info.get("split") or {}
    if whole:
        data = jobs.load_sequences(spec, label_column=args.column, split="all_test")
        what = f"{data.name} (all {len(data.y_test)} sequences)"
    else:
        same = recorded.get("name") == jobs.builtin_key(spec)
        options = (recorded.get("options") or {}) if same else {}
        label = args.column or recorded.get("label_column")
        data = jobs.load_sequences(
            spec, label_column=label if jobs.is_file_spec(spec) else None,
            test_size=split.get("test_size"), seed=split.get("random_state", 0),
            dataset_options=options)
        what = f"{data.name} (test part, {len(data.y_test)} sequences)"
    m = jobs.evaluate_classifier(job, data)
    print(f"model: {args.model_dir} (RNNClassifier, {len(job.estimator.classes_)} classes)")
    print(f"data: {what}")
    print_classify_report(m)
    if args.plots:
        from ..task_plots import plot_confusion_matrix

        path = plot_confusion_matrix(os.path.join(args.plots, "confusion_matrix.png"),
                                     m["confusion_matrix"],
                                     [str(c) for c in job.estimator.classes_],
                                     title=f"{data.name}: accuracy {m['accuracy']:.2%}")
        print(f"plots: {path}")
    return 0


def run(args):
    from .._argtypes import make_output_folder
    from ..jobs import check_job_folder, load_job
    from ..task_cli import require_sklearn

    check_job_folder(args.model_dir)  # a wrong folder is named first, sklearn or not
    require_sklearn("a saved forecaster or classifier (rnnkit.estimators)")
    if args.plots:
        from ..task_plots import require_matplotlib

        require_matplotlib()
        make_output_folder(args.plots, "--plots")
    job = load_job(args.model_dir)
    if job.task == "forecast":
        return _evaluate_forecaster(job, args)
    return _evaluate_classifier(job, args)
