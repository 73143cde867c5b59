"""``rnnkit predict``: forecasts or class labels from a model saved by ``rnnkit train --task``.

It parses, reads the input, calls :mod:`rnnkit.jobs` and prints CSV; no math here.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import sys

NAME = "predict"

_EPILOG = """\
examples:
  rnnkit predict runs/sunspots                     # forecast after the training run's series
  rnnkit predict runs/sunspots recent.csv --horizon 10 --column value
  rnnkit predict runs/digits new_digits.npz --proba --output predictions.csv

A forecaster reads a CSV series (one column; --column to choose) and forecasts
the --horizon steps after its last value; without INPUT it continues the series
it was trained on. A classifier reads an .npz file (X, optionally lengths) or a
CSV file (one univariate sequence per row; a label column is left out) and
gives one label per sequence. The output is CSV, on stdout or in --output."""


def add_parser(subparsers, formatter_class):
    p = subparsers.add_parser(
        NAME, formatter_class=formatter_class,
        help="forecast or classify with a model saved by 'rnnkit train --task'",
        description="Forecasts of a series, or class labels of sequences, from a model saved "
                    "by 'rnnkit train --task forecast|classify' (or an estimator's save(DIR)).",
        epilog=_EPILOG)
    p.add_argument("model_dir", metavar="MODEL_DIR", help="folder of the saved model")
    p.add_argument("input", nargs="?", metavar="INPUT",
                   help="CSV series (forecaster), or .npz/CSV sequences (classifier)")
    p.add_argument("--horizon", type=int, default=None, metavar="K",
                   help="steps to forecast (default: the --horizon of training)")
    p.add_argument("--column", default=None, metavar="NAME",
                   help="CSV column of the series (forecaster) or of labels to leave out "
                        "(classifier)")
    p.add_argument("--proba", action="store_true",
                   help="classifier: also the probability of each class")
    p.add_argument("--output", default=None, metavar="FILE",
                   help="write the CSV here instead of stdout")
    return p


def _write(rows, output):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    if output is None:
        sys.stdout.write(buf.getvalue())
        return
    from ..io import atomic_write_bytes

    atomic_write_bytes(output, buf.getvalue().encode("utf-8"))
    print(f"wrote {len(rows) - 1} row(s) to {output}")


def _forecast(job, args):
    from .. import jobs

    horizon = args.horizon if args.horizon is not None else int(job.info.get("horizon", 1))
    if horizon < 1:
        raise ValueError(f"--horizon must be >= 1, got {horizon}")
    if args.input is None:
        y = job.context
        if y is None:
            raise ValueError(f"{args.model_dir} does not record the series it was trained "
                             "on; give the recent observations as INPUT (a CSV file)")
        column = None
    else:
        column = args.column or (job.info.get("data") or {}).get("column")
        try:
            y, _, column = jobs.read_series_csv(args.input, column)
        except ValueError as exc:
            if args.column is None and column is not None and "no column" in str(exc):
                y, _, column = jobs.read_series_csv(args.input, None)
            else:
                raise
    need = job.estimator.window + job.transform.order
    if len(y) < need:
        source = args.input or "the series saved with the model"
        raise ValueError(f"{source} has {len(y)} observations; the model's window needs at "
                         f"least {need}")
    future = job.forecast(y, horizon)
    return [["step", "forecast"]] + [[k + 1, repr(float(v))] for k, v in enumerate(future)]


def _classify(job, args):
    from .. import jobs

    if args.input is None:
        raise ValueError("a classifier needs INPUT: an .npz file (X [, lengths]) or a CSV file "
                         "of sequences")
    if args.horizon is not None:
        raise ValueError("--horizon is for forecasters; this model is a classifier")
    X = jobs.read_sequences_for_prediction(args.input, label_column=args.column)
    classes = job.estimator.classes_
    with _features_named(args.input):
        return _classify_rows(job, X, classes, args.proba)


@contextlib.contextmanager
def _features_named(path):
    """scikit-learn's "X has 5 features per time step, but SequenceScaler is expecting 8"
    said of the file and the model (a pipeline step's name means nothing to the user)."""
    try:
        yield
    except ValueError as exc:
        found = re.match(r"X has (\d+) features per time step, but \w+ is expecting (\d+)",
                         str(exc))
        if found is None:
            raise
        raise ValueError(f"{path}: the sequences have {found[1]} features per time step; the "
                         f"model takes {found[2]}") from None


def _classify_rows(job, X, classes, proba):
    if proba:
        proba = job.predict_proba(X)
        labels = classes[proba.argmax(axis=1)]
        head = ["index", "label"] + [f"p_{c}" for c in classes]
        return [head] + [[i, lab, *(f"{p:.6g}" for p in row)]
                         for i, (lab, row) in enumerate(zip(labels, proba))]
    labels = job.predict_classes(X)
    return [["index", "label"]] + [[i, lab] for i, lab in enumerate(labels)]


def run(args):
    from .._argtypes import check_output_file
    from ..jobs import check_job_folder, load_job
    from ..task_cli import require_sklearn

    check_job_folder(args.model_dir)  # a wrong folder is named first, sklearn or not
    require_sklearn("a saved forecaster or classifier (rnnkit.estimators)")
    if args.output is not None:
        check_output_file(args.output, "--output")
    job = load_job(args.model_dir)
    if job.task == "forecast":
        if args.proba:
            raise ValueError("--proba is for classifiers; this model is a forecaster")
        rows = _forecast(job, args)
    else:
        rows = _classify(job, args)
    _write(rows, args.output)
    return 0
