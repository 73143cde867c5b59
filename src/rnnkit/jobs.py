"""Forecasting and classification jobs on files and built-in data sets.

The library behind ``rnnkit train --task forecast|classify``, ``rnnkit
predict`` and ``rnnkit evaluate`` (the command line only parses and prints):

- reading data: :func:`load_series` (a built-in series or a column of a CSV
  file) and :func:`load_sequences` (a built-in data set, an ``.npz`` file or
  a CSV file of labelled sequences), each with its train/test split;
- :class:`SeriesTransform`: ``log``, ``sqrt``, differences, applied before
  the forecaster's own scaling and undone on its forecasts;
- :func:`train_forecaster` and :func:`train_classifier`: fit an estimator
  of :mod:`rnnkit.estimators` on the training part, measure it on the test
  part, save it (``save(DIR)`` plus ``task.json``) and draw PNG plots;
- :func:`forecast_paths`, :func:`evaluate_forecaster`,
  :func:`evaluate_classifier` and :func:`load_job`: use a saved model.

A model folder holds what :meth:`rnnkit.estimators.RNNForecaster.save`
writes (``model.safetensors``, ``config.json``) and ``task.json``: the
transform, the input scaling, where the data came from, its split and the
test metrics, all JSON (no pickle). A folder saved by ``save(DIR)`` alone
works too (no transform, no scaling).

Shape letters: n observations, w window, K steps ahead, N sequences,
T steps, D features per step.

Examples
--------
>>> import numpy as np
>>> from rnnkit.jobs import SeriesData, train_forecaster
>>> t = np.arange(120.0)
>>> data = SeriesData.from_array(10 + np.sin(t * 2 * np.pi / 12), test_size=24)
>>> result = train_forecaster(data, window=12, hidden_size=8, max_iter=30,
...                           learning_rate_init=0.02, random_state=0)
>>> result.metrics["n_test"], result.future.shape   # 24 one-step test forecasts
(24, (1,))
>>> bool(result.metrics["rmse"] < result.naive_metrics["rmse"])  # beats "repeat the last"
True
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
import warnings

import numpy as np

from . import __version__
from . import io as rio

__all__ = [
    "CLASSIFY_DATASETS",
    "FORECAST_DATASETS",
    "TASK_FILE",
    "TRANSFORMS",
    "ClassifyResult",
    "ForecastResult",
    "Job",
    "SequenceData",
    "SeriesData",
    "SeriesTransform",
    "builtin_key",
    "classification_metrics",
    "evaluate_classifier",
    "evaluate_forecaster",
    "forecast_metrics",
    "forecast_paths",
    "format_index",
    "is_file_spec",
    "load_job",
    "load_sequences",
    "load_series",
    "parse_test_size",
    "read_sequences_for_prediction",
    "read_series_csv",
    "train_classifier",
    "train_forecaster",
]

#: The file beside an estimator's files that records the job.
TASK_FILE = "task.json"
_TASK_FORMAT = "rnnkit-task"
_TASK_FORMAT_VERSION = 1

#: Built-in series for forecasting, and built-in sequence sets for classification.
FORECAST_DATASETS = ("sunspots", "airline")
CLASSIFY_DATASETS = ("digits", "japanese_vowels", "fsdd")

#: Names of :class:`SeriesTransform`.
TRANSFORMS = ("none", "log", "sqrt", "diff", "logdiff")
DEFAULT_TEST_SIZE = 0.2  # held out where the data have no official split

_LABEL_NAMES = ("label", "labels", "class", "target", "y")


# =========================================================================== data
@dataclasses.dataclass(frozen=True, eq=False)
class SeriesData:
    """A univariate series with a temporal train/test split.

    Parameters
    ----------
    name : str
        Short name for messages and plot titles.
    y : ndarray of shape (n,)
        The observations, float64, oldest first, all finite.
    index : ndarray of shape (n,)
        Time of each observation: int or float, or ``datetime64``.
    n_train : int
        ``y[:n_train]`` is the training part.
    n_test : int
        ``y[n_train:n_train + n_test]`` is the test part; later values (if
        any) belong to neither.
    source : dict
        JSON-able description of where the data came from: ``{"kind":
        "builtin", "name": ...}`` or ``{"kind": "csv", "path": ..., "column":
        ...}`` or ``{"kind": "array"}``.
    unit : str, default ''
        The unit of the values.
    """

    name: str
    y: np.ndarray
    index: np.ndarray
    n_train: int
    n_test: int
    source: dict
    unit: str = ""

    @classmethod
    def from_array(cls, y, *, test_size=0.2, index=None, name="series"):
        """A :class:`SeriesData` from an array, the last ``test_size`` for testing.

        Parameters
        ----------
        y : array_like of shape (n,)
        test_size : int or float, default 0.2
            Observations in the test part, or a fraction in (0, 1) of them
            (rounded up).
        index : array_like of shape (n,), optional
            Default: positions 0 .. n-1.
        name : str, default 'series'
        """
        y = _check_values(y, name)
        n_test = _n_test(test_size, len(y), name)
        idx = np.arange(len(y)) if index is None else np.asarray(index)
        if idx.shape != y.shape:
            raise ValueError(f"index has shape {idx.shape}, the series {y.shape}")
        return cls(name, y, idx, len(y) - n_test, n_test, {"kind": "array"})

    @property
    def y_train(self):
        """The training part, float64 (n_train,)."""
        return self.y[: self.n_train]

    @property
    def y_test(self):
        """The test part, float64 (n_test,)."""
        return self.y[self.n_train: self.n_train + self.n_test]

    def describe(self):
        """One line: name, size and split."""
        a, b = self.index[0], self.index[self.n_train - 1]
        c, d = self.index[self.n_train], self.index[self.n_train + self.n_test - 1]
        return (f"{self.name}: {len(self.y)} observations; train {format_index(a)}.."
                f"{format_index(b)} ({self.n_train}), test {format_index(c)}..{format_index(d)} "
                f"({self.n_test})")


@dataclasses.dataclass(frozen=True, eq=False)
class SequenceData:
    """Labelled sequences with a train/test split.

    Parameters
    ----------
    name : str
    X_train, X_test : ndarray of shape (N, T, D) or list of ndarray (T_i, D)
        Sequences in the layouts :class:`rnnkit.estimators.RNNClassifier` takes.
    y_train, y_test : ndarray of shape (N,)
    split : dict
        JSON-able description of the split: ``{"kind": "official"}``,
        ``{"kind": "stratified", "test_size": ..., "random_state": ...}``,
        ``{"kind": "random", ...}`` (stratifying was impossible) or
        ``{"kind": "all_test"}`` (every sequence is a test sequence).
    source : dict
        Where the data came from (as in :class:`SeriesData`), plus
        ``label_column`` for a CSV file.
    description : str, default ''
    """

    name: str
    X_train: object
    y_train: np.ndarray
    X_test: object
    y_test: np.ndarray
    split: dict
    source: dict
    description: str = ""

    def describe(self):
        """One line: name, sizes, sequence lengths and classes."""
        def lengths(X):
            return [len(x) for x in X] if isinstance(X, list) else [np.shape(X)[1]]
        lens = lengths(self.X_train) + lengths(self.X_test)
        D = _n_features(self.X_test if len(self.y_test) else self.X_train)
        T = f"{min(lens)}" if min(lens) == max(lens) else f"{min(lens)}-{max(lens)}"
        classes = np.unique(np.concatenate([self.y_train, self.y_test]))
        split = {"official": "official split", "stratified": "stratified split",
                 "random": "random split", "all_test": "all for testing"}[self.split["kind"]]
        return (f"{self.name}: {len(self.y_train) + len(self.y_test)} sequences of {T} steps x "
                f"{D} feature{'s' if D != 1 else ''}, {len(classes)} classes; {split}: train "
                f"{len(self.y_train)}, "
                f"test {len(self.y_test)}")


def _n_features(X):
    if isinstance(X, list):
        return int(np.asarray(X[0]).reshape(len(X[0]), -1).shape[1]) if X else 0
    a = np.asarray(X)
    return int(a.shape[2]) if a.ndim == 3 else 1


def format_index(v):
    """A time index label for messages: ``1949-01``, ``1987`` (not ``1987.0``)."""
    if isinstance(v, np.datetime64):
        return str(v)
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _check_values(y, name):
    """A 1-D float64 series with finite values, or a ValueError naming the first bad one."""
    try:
        a = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: the values must be numbers") from None
    if a.ndim != 1:
        raise ValueError(f"{name}: expected one series (1-D), got shape {a.shape}")
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise ValueError(f"{name}: value {a[bad[0]]} (NaN or infinite) at position {bad[0]}; "
                         "fill or drop missing observations first")
    return a


def _n_test(test_size, n, name, what="observations"):
    if isinstance(test_size, bool):
        raise TypeError(f"test_size must be an int or a fraction, got {test_size!r}")
    if isinstance(test_size, (int, np.integer)):
        k = int(test_size)
    elif isinstance(test_size, (float, np.floating)) and 0 < test_size < 1:
        k = math.ceil(float(test_size) * n)
    else:
        raise ValueError(f"test size must be a number of {what} >= 1 or a fraction in "
                         f"(0, 1), got {test_size!r}")
    if k >= n:
        raise ValueError(f"{name}: a test part of {k} {what} leaves none of the {n} "
                         "for training; give a smaller test size (a count below "
                         f"{n} or a fraction such as 0.2)")
    if k < 1:
        raise ValueError(f"{name}: the test part must hold at least one of the {what}, got {k}")
    return k


def parse_test_size(text):
    """``'0.2'`` -> 0.2 (a fraction), ``'48'`` -> 48 (a count); ValueError otherwise."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise ValueError(f"--test-size must be a count >= 1 or a fraction in (0, 1), got "
                             f"{text!r}") from None
        if not 0 < value < 1:
            raise ValueError(f"--test-size must be a count >= 1 or a fraction in (0, 1), got "
                             f"{text!r}")
        return value
    if value < 1:
        raise ValueError(f"--test-size must be a count >= 1 or a fraction in (0, 1), got "
                         f"{text!r}")
    return value


# ---------------------------------------------------------------------- CSV files
def _read_csv_rows(path):
    """The rows of a CSV file as lists of stripped strings (blank lines dropped)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a folder, not a CSV file")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            sample = f.read(65536)
            f.seek(0)
            try:
                dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
            except csv.Error:
                dialect = csv.excel
            rows = [(i + 1, [c.strip() for c in r]) for i, r in enumerate(csv.reader(f, dialect))
                    if any(c.strip() for c in r)]
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file (is it a CSV file?)") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise ValueError(f"{path}: the file is empty")
    return rows


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _header(rows):
    """(names, data rows): the first row is a header when one of its fields is not a number."""
    first = rows[0][1]
    if any(not _is_number(c) for c in first):
        names = [c or f"column{j}" for j, c in enumerate(first)]
        return names, rows[1:]
    return [str(j) for j in range(len(first))], rows


def _pick_column(names, column, path, what):
    if column is None:
        return None
    if column in names:
        return names.index(column)
    raise ValueError(f"{path}: no column {column!r}; the columns are "
                     f"{', '.join(map(repr, names))} (choose the {what} with --column)")


def _float_cell(text, path, line, name):
    if text == "":
        raise ValueError(f"{path}, line {line}: column {name!r} is empty (a missing value); "
                         "fill or drop it first")
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{path}, line {line}: column {name!r} has {text!r}, which is not a "
                         "number") from None
    if not math.isfinite(v):
        raise ValueError(f"{path}, line {line}: column {name!r} is {text!r} (NaN or infinite); "
                         "fill or drop missing values first")
    return v


def read_series_csv(path, column=None):
    """Read one numeric column of a CSV file as a series.

    Parameters
    ----------
    path : str or os.PathLike
        A CSV file (comma, semicolon or tab separated), one observation per
        row, oldest first, with or without a header row.
    column : str, optional
        The column to read, by its header name (or its position ``0, 1, ...``
        when the file has no header). Default: the only column, or else the
        only column whose values are all numbers, not counting a time index
        (dates or increasing numbers) in the first column.

    Returns
    -------
    values : ndarray of shape (n,)
        float64.
    index : ndarray of shape (n,)
        The first column as ``datetime64`` when it holds dates (``1949-01``,
        ``2020-03-01``) or as numbers when it holds increasing numbers, unless
        it is the value column; else the positions 0 .. n-1.
    name : str
        The column's name.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        An unknown column (the message lists them), a value that is not a
        number, an empty cell, NaN or infinity (with its line), a ragged
        row, an empty file, or no column to choose by default.
    """
    path = os.fspath(path)
    rows = _read_csv_rows(path)
    names, data = _header(rows)
    if not data:
        raise ValueError(f"{path}: a header but no data rows")
    width = len(names)
    for line, r in data:
        if len(r) != width:
            raise ValueError(f"{path}, line {line}: {len(r)} fields, the header has {width}")
    j = _pick_column(names, column, path, "series")
    if j is None:
        numeric = [k for k in range(width) if all(_is_number(r[k]) for _, r in data)]
        first = [r[0] for _, r in data]
        if width > 1 and _parse_index(first, None) is not None:
            numeric = [k for k in numeric if k != 0]  # a time index (dates, years) first
        if width == 1:
            j = 0
        elif len(numeric) == 1:
            j = numeric[0]
        else:
            raise ValueError(f"{path}: {width} columns ({', '.join(map(repr, names))}); choose "
                             "the series with --column NAME")
    values = np.array([_float_cell(r[j], path, line, names[j]) for line, r in data])
    index = np.arange(len(values))
    if j != 0 and width > 1:
        index = _parse_index([r[0] for _, r in data], index)
    return values, index, names[j]


def _parse_index(labels, default):
    """Dates or increasing numbers from the labels of the first column, else ``default``.

    Plain integers (``0, 1, 2``, ``1749``) stay numbers: NumPy would read them
    as years (``0`` as the year 0000, which no plot can show).
    """
    labels = [s.strip() for s in labels]
    if all(s.lstrip("+-").isdigit() for s in labels):
        idx = np.array([int(s) for s in labels])
    else:
        try:
            idx = np.array(labels, dtype="datetime64")
        except ValueError:
            try:
                idx = np.array([float(s) for s in labels])
            except ValueError:
                return default
    if len(idx) > 1 and np.all(idx[1:] > idx[:-1]):
        return idx
    return default


# ------------------------------------------------------------------- loaders
def is_file_spec(spec):
    """True when ``spec`` names a file (a path, a name with an extension, or an existing file)."""
    s = os.fspath(spec)
    return os.path.sep in s or "." in os.path.basename(s) or os.path.exists(s)


def builtin_key(spec):
    """The name of a built-in data set as ``spec`` spells it: ``"Japanese-Vowels"`` ->
    ``"japanese_vowels"``."""
    return os.fspath(spec).strip().lower().replace("-", "_")


def load_series(spec, *, column=None, test_size=None):
    """A built-in series (``sunspots``, ``airline``) or a column of a CSV file.

    Parameters
    ----------
    spec : str or os.PathLike
        A name of :data:`FORECAST_DATASETS` (with its benchmark split) or a
        CSV file (see :func:`read_series_csv`).
    column : str, optional
        The CSV column; not for built-in series.
    test_size : int or float, optional
        For a CSV file: the last observations held out for testing, a count
        or a fraction (default 0.2). A built-in series has its benchmark
        split: giving one is an error.

    Returns
    -------
    SeriesData
    """
    spec = os.fspath(spec)
    if not is_file_spec(spec):
        from .data import datasets

        key = builtin_key(spec)
        if key in CLASSIFY_DATASETS:
            raise ValueError(f"{spec!r} is a classification data set: use --task classify")
        if key not in FORECAST_DATASETS:
            raise ValueError(f"unknown series {spec!r}: choose one of "
                             f"{', '.join(FORECAST_DATASETS)}, or give a CSV file")
        if column is not None:
            raise ValueError(f"--column is for CSV files; {key} is a built-in series")
        if test_size is not None:
            raise ValueError(f"--test-size is for CSV files; the built-in series {key} has "
                             "its benchmark split")
        ds = datasets.load(key)
        return SeriesData(key, np.asarray(ds.y, np.float64), np.asarray(ds.index),
                          ds.train.stop - ds.train.start, ds.test.stop - ds.test.start,
                          {"kind": "builtin", "name": key}, ds.unit)
    values, index, name = read_series_csv(spec, column)
    test_size = DEFAULT_TEST_SIZE if test_size is None else test_size
    n_test = _n_test(test_size, len(values), spec)
    return SeriesData(os.path.basename(spec), values, index, len(values) - n_test, n_test,
                      {"kind": "csv", "path": os.path.abspath(spec), "column": name,
                       "test_size": test_size})


def _read_npz(path, *, need_y):
    from .io import read_npz

    path = os.fspath(path)
    arrays = read_npz(path)
    if "X" not in arrays or (need_y and "y" not in arrays):
        need = "X and y" if need_y else "X"
        raise ValueError(f"{path}: needs arrays {need} (and optionally lengths); it has "
                         f"{', '.join(sorted(arrays)) or 'no arrays'}")
    X = np.asarray(arrays["X"])
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{path}: X must hold numbers, got dtype {X.dtype}")
    X = X.astype(np.float64)
    if X.ndim not in (2, 3):
        raise ValueError(f"{path}: X must be (n_samples, n_timesteps) or (n_samples, "
                         f"n_timesteps, n_features), got shape {X.shape}")
    if X.ndim == 2:
        X = X[:, :, None]
    lengths = arrays.get("lengths")
    if lengths is not None:
        from .data.sequences import as_padded, unpad

        x, n = as_padded(X, np.asarray(lengths), name=f"{path}: X")
        seqs = [np.array(s) for s in unpad(x, n)]
        _check_finite_seqs(seqs, path)
        X = seqs
    else:
        _check_finite_seqs([X], path)
    y = arrays.get("y")
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != (len(X)):
            raise ValueError(f"{path}: y must be 1-D with one label per sequence ({len(X)}), "
                             f"got shape {y.shape}")
        if y.dtype.kind == "f":
            if not np.isfinite(y).all():
                raise ValueError(f"{path}: y contains NaN or infinite labels")
            if np.all(y == np.round(y)):
                y = y.astype(np.int64)
    return X, y


def _check_finite_seqs(seqs, path):
    for s in seqs:
        if not np.isfinite(s).all():
            raise ValueError(f"{path}: X contains NaN or infinite values; fill or drop them "
                             "first")


def _read_sequences_csv(path, label_column, *, need_y):
    """Rows = sequences: a label column and one column per time step (univariate)."""
    path = os.fspath(path)
    rows = _read_csv_rows(path)
    names, data = _header(rows)
    if not data:
        raise ValueError(f"{path}: a header but no data rows")
    width = len(names)
    for line, r in data:
        if len(r) != width:
            raise ValueError(f"{path}, line {line}: {len(r)} fields, the first row has {width}")
    j = _pick_column(names, label_column, path, "label column")
    if j is None:
        lowered = [n.lower() for n in names]
        found = [lowered.index(n) for n in _LABEL_NAMES if n in lowered]
        if found:
            j = found[0]
        elif need_y:
            j = 0  # the UCR archive's layout: the label first
    steps = [k for k in range(width) if k != j]
    if not steps:
        raise ValueError(f"{path}: no column left for the sequence besides the label")
    X = np.array([[_float_cell(r[k], path, line, names[k]) for k in steps] for line, r in data])
    y = None
    if j is not None:
        labels = [r[j] for _, r in data]
        if any(lab == "" for lab in labels):
            line = data[[lab == "" for lab in labels].index(True)][0]
            raise ValueError(f"{path}, line {line}: the label ({names[j]!r}) is empty")
        if all(_is_number(lab) and float(lab).is_integer() for lab in labels):
            y = np.array([int(float(lab)) for lab in labels], dtype=np.int64)
        else:
            y = np.array(labels)
    return X[:, :, None], y, (names[j] if j is not None else None)


def _split(X, y, test_size, seed, name):
    """Stratified split (or a plain random one when a class is too small)."""
    from sklearn.model_selection import train_test_split

    _n_test(test_size, len(y), name, "sequences")  # said in these terms, not sklearn's
    idx = np.arange(len(y))
    split = {"kind": "stratified", "test_size": test_size, "random_state": int(seed)}
    try:
        tr, te = train_test_split(idx, test_size=test_size, stratify=y, random_state=seed)
    except ValueError:
        split["kind"] = "random"
        tr, te = train_test_split(idx, test_size=test_size, random_state=seed)
    tr, te = np.sort(tr), np.sort(te)
    return _take(X, tr), y[tr], _take(X, te), y[te], split


def _take(X, idx):
    return [X[i] for i in idx] if isinstance(X, list) else np.asarray(X)[idx]


def _check_dataset_options(key, options):
    """Raise a ValueError naming the valid keywords if ``options`` holds one that the
    built-in data set ``key``'s loader does not take (``--data-option``)."""
    import inspect

    from .data import datasets

    params = inspect.signature(datasets.DATASETS[key].loader).parameters
    valid = [n for n, p in params.items()
             if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = [n for n in options if n not in valid]
    if unknown:
        raise ValueError(f"--data-option {', '.join(unknown)}: not an option of the {key} data "
                         f"set; its options are {', '.join(valid) or '(none)'}")


def load_sequences(spec, *, label_column=None, test_size=None, seed=0, split=None,
                   dataset_options=None):
    """A built-in sequence data set, an ``.npz`` file or a CSV file, split for testing.

    Parameters
    ----------
    spec : str or os.PathLike
        A name of :data:`CLASSIFY_DATASETS` (official split where it has
        one), an ``.npz`` file with arrays ``X`` ``(N, T)`` or ``(N, T, D)``,
        ``y`` ``(N,)`` and optionally ``lengths`` ``(N,)`` (read with
        ``allow_pickle=False``), or a CSV file with one sequence per row: a
        label column and one column per time step.
    label_column : str, optional
        The CSV label column; default a column named label, class, target or
        y, else the first (the UCR archive's layout).
    test_size : int or float, optional
        Held out for testing (stratified by class) where there is no
        official split (default 0.2); giving one for a data set with an
        official split is an error.
    seed : int, default 0
        ``random_state`` of that split.
    split : {'all_test'}, optional
        ``'all_test'``: every sequence of a file is a test sequence (for
        :func:`evaluate_classifier`).
    dataset_options : dict, optional
        Keywords of the built-in loader (e.g. ``{"hop_length": 160}`` for
        ``fsdd``).

    Returns
    -------
    SequenceData
    """
    spec = os.fspath(spec)
    options = dict(dataset_options or {})
    if not is_file_spec(spec):
        from .data import datasets

        key = builtin_key(spec)
        if key in FORECAST_DATASETS:
            raise ValueError(f"{spec!r} is a series: use --task forecast")
        if key not in CLASSIFY_DATASETS:
            raise ValueError(f"unknown data set {spec!r}: choose one of "
                             f"{', '.join(CLASSIFY_DATASETS)}, or give an .npz or CSV file")
        if label_column is not None:
            raise ValueError(f"--column is for CSV files; {key} is a built-in data set")
        _check_dataset_options(key, options)
        ds = datasets.load(key, **options)
        source = {"kind": "builtin", "name": key, "options": options}
        if ds.is_test is not None:
            if test_size is not None:
                raise ValueError(f"--test-size is for data without an official split; {key} "
                                 "has one")
            return SequenceData(key, ds.X_train, ds.y_train, ds.X_test, ds.y_test,
                                {"kind": "official"}, source, ds.description)
        test_size = DEFAULT_TEST_SIZE if test_size is None else test_size
        parts = _split(ds.X, ds.y, test_size, seed, key)
        return SequenceData(key, *parts[:4], parts[4], source, ds.description)
    if options:
        raise ValueError("data set options are for built-in data sets, not files")
    if spec.lower().endswith(".npz"):
        if label_column is not None:
            raise ValueError(f"--column is for CSV files; {spec} is an .npz file, whose "
                             "sequences and labels are its arrays X and y")
        X, y = _read_npz(spec, need_y=True)
        source = {"kind": "npz", "path": os.path.abspath(spec)}
    else:
        if not spec.lower().endswith((".csv", ".tsv", ".txt")):
            raise ValueError(f"{spec}: expected an .npz file or a .csv file")
        X, y, label = _read_sequences_csv(spec, label_column, need_y=True)
        source = {"kind": "csv", "path": os.path.abspath(spec), "label_column": label}
    name = os.path.basename(spec)
    if split == "all_test":
        empty = [] if isinstance(X, list) else np.asarray(X)[:0]
        return SequenceData(name, empty, y[:0], X, y, {"kind": "all_test"}, source)
    if len(np.unique(y)) < 2:
        raise ValueError(f"{spec}: the labels hold one class only; a classifier needs two or "
                         "more")
    parts = _split(X, y, DEFAULT_TEST_SIZE if test_size is None else test_size, seed, spec)
    return SequenceData(name, *parts[:4], parts[4], source)


def read_sequences_for_prediction(path, *, label_column=None):
    """Sequences to classify from an ``.npz`` (``X`` [, ``lengths``]) or a CSV file.

    A CSV row is one univariate sequence, one column per time step; a label
    column (``label_column``, or one named label, class, target or y) is
    left out.

    Returns
    -------
    X : ndarray (N, T, D) or list of ndarray (T_i, D)

    Raises
    ------
    ValueError
        If ``label_column`` is given for an ``.npz`` file (its arrays go by
        name), or as the readers raise for a bad file.
    """
    path = os.fspath(path)
    if path.lower().endswith(".npz"):
        if label_column is not None:
            raise ValueError(f"--column is for CSV files; {path} is an .npz file, whose "
                             "sequences are its array X")
        return _read_npz(path, need_y=False)[0]
    return _read_sequences_csv(path, label_column, need_y=False)[0]


# ==================================================================== transforms
class SeriesTransform:
    """A transform of the series the forecaster learns, undone on its forecasts.

    Parameters
    ----------
    kind : {'none', 'log', 'sqrt', 'diff', 'logdiff'}, default 'none'
        ``log``: u_t = log y_t (y > 0), for growth whose spread grows with
        the level. ``sqrt``: u_t = sqrt(y_t) (y >= 0), for counts.
        ``diff``: u_t = y_t - y_{t-1}, for a trend. ``logdiff``: u_t = log
        y_t - log y_{t-1}, the growth rate (y > 0).
    season : int, default 0
        S >= 2: then also a seasonal difference z_t = u_t - u_{t-S} (with
        ``logdiff`` and S = 12, the differencing of the Box-Jenkins airline
        model). 0: none.

    Notes
    -----
    The transformed series z is ``order`` values shorter than y (1 for a
    first difference, plus S for a seasonal one), and ``z[j]`` belongs to
    ``y[j + order]``. The forecaster's scaler then standardizes z with
    statistics of the training part only. Forecasts are undone step by step
    from the last ``order`` observations before them.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit.jobs import SeriesTransform
    >>> tf = SeriesTransform("diff", season=2)
    >>> y = np.array([1.0, 2.0, 4.0, 7.0, 11.0])
    >>> z = tf.forward(y)                       # (y_t - y_t-1) - (y_t-2 - y_t-3)
    >>> z.tolist(), tf.order
    ([2.0, 2.0], 3)
    >>> tf.inverse_path(z[None, 1:], y[None, 1:4]).tolist()   # y[4] back from z and y[1:4]
    [[11.0]]
    """

    def __init__(self, kind="none", season=0):
        if kind not in TRANSFORMS:
            raise ValueError(f"unknown transform {kind!r}; choose one of {', '.join(TRANSFORMS)}")
        if isinstance(season, bool) or not isinstance(season, (int, np.integer)) or \
                season < 0 or season == 1:
            raise ValueError(f"--season must be 0 (none) or a lag >= 2, got {season!r}")
        self.kind = kind
        self.season = int(season)

    @property
    def d(self):
        """1 with a first difference (``diff``, ``logdiff``), else 0."""
        return 1 if self.kind in ("diff", "logdiff") else 0

    @property
    def order(self):
        """Observations lost at the start: ``d + season``."""
        return self.d + self.season

    def describe(self):
        """E.g. ``'logdiff, seasonal difference 12'``."""
        return self.kind + (f", seasonal difference {self.season}" if self.season else "")

    def check(self, y, name="the series"):
        """ValueError when ``y`` is outside the transform's domain."""
        y = np.asarray(y, dtype=np.float64)
        if self.kind in ("log", "logdiff") and y.size and not np.all(y > 0):
            bad = int(np.flatnonzero(~(y > 0))[0])
            raise ValueError(f"--transform {self.kind} needs positive values; {name} has "
                             f"{y[bad]:g} at position {bad}")
        if self.kind == "sqrt" and y.size and not np.all(y >= 0):
            bad = int(np.flatnonzero(~(y >= 0))[0])
            raise ValueError(f"--transform sqrt needs values >= 0; {name} has {y[bad]:g} at "
                             f"position {bad}")

    def _base(self, y):
        if self.kind in ("log", "logdiff"):
            return np.log(y)
        if self.kind == "sqrt":
            return np.sqrt(y)
        return np.array(y, dtype=np.float64)

    def _base_inverse(self, u):
        if self.kind in ("log", "logdiff"):
            return np.exp(np.minimum(u, 700.0))
        if self.kind == "sqrt":
            return np.maximum(u, 0.0) ** 2
        return u

    def forward(self, y):
        """z of ``y`` (n,): shape (n - order,)."""
        y = np.asarray(y, dtype=np.float64)
        self.check(y)
        z = self._base(y)
        if self.d:
            z = np.diff(z)
        if self.season:
            z = z[self.season:] - z[:-self.season]
        return z

    def inverse_path(self, z, y_hist):
        """y of forecast z paths.

        Parameters
        ----------
        z : ndarray of shape (N, K)
            N forecast paths of K steps, in z units.
        y_hist : ndarray of shape (N, order)
            The last ``order`` observations before each path (ignored when
            ``order`` is 0).

        Returns
        -------
        ndarray of shape (N, K)
        """
        z = np.asarray(z, dtype=np.float64)
        N, K = z.shape
        o, S = self.order, self.season
        if o == 0:
            return self._base_inverse(z.copy())
        hist = np.asarray(y_hist, dtype=np.float64).reshape(N, o)
        u = np.empty((N, o + K))  # base-transformed history, then the path
        u[:, :o] = self._base(hist)
        for k in range(K):
            j = o + k
            prev = z[:, k].copy()
            if self.d:
                prev += u[:, j - 1]
            if S:
                prev += u[:, j - S]
                if self.d:
                    prev -= u[:, j - S - 1]
            u[:, j] = prev
        return self._base_inverse(u[:, o:])


# =================================================================== forecasting
def _plus_order(o):
    return f" + {o} lost to differencing" if o else ""


def forecast_paths(forecaster, transform, y, ends, steps):
    """Forecast ``steps`` values after each prefix ``y[:e]``, ``e`` in ``ends``.

    Parameters
    ----------
    forecaster : rnnkit.estimators.RNNForecaster
        Fitted on ``transform.forward`` of a series (one series, no ``X``).
    transform : SeriesTransform
    y : array_like of shape (n,)
        The observed series, original units.
    ends : array_like of int, shape (N,)
        Each forecast starts after ``y[e - 1]``; needs ``e >= window + order``.
    steps : int
        K, the steps of each forecast (at most ``horizon`` with
        ``strategy='direct'``).

    Returns
    -------
    ndarray of shape (N, K)
        ``out[i, k]`` forecasts ``y[ends[i] + k]`` from ``y[:ends[i]]``.
    """
    y = np.asarray(y, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.int64)
    w, o = forecaster.window, transform.order
    if ends.size and (ends.min() < w + o or ends.max() > len(y)):
        raise ValueError(f"each forecast needs the {w + o} observations before it (window {w}"
                         f"{_plus_order(o)}); got a start at "
                         f"{int(ends.min())}")
    if forecaster.strategy == "direct" and steps > forecaster.horizon:
        raise ValueError(f"this forecaster predicts {forecaster.horizon} steps at once "
                         f"(strategy 'direct'); cannot forecast {steps}")
    if not ends.size:
        return np.zeros((0, steps))
    z = transform.forward(y[: int(ends.max())])  # z[j] belongs to y[j + o]
    win = z[(ends - o)[:, None] + np.arange(-w, 0)[None, :]]  # (N, w)
    if forecaster.strategy == "direct":
        zpath = forecaster.predict_windows(win[:, :, None])[:, :steps, 0]  # (N, K)
    else:
        cols = []
        for _ in range(steps):
            nxt = forecaster.predict_windows(win[:, :, None])[:, 0, 0]  # (N,)
            cols.append(nxt)
            win = np.concatenate([win[:, 1:], nxt[:, None]], axis=1)  # (N, w)
        zpath = np.stack(cols, axis=1)  # (N, K)
    hist = y[ends[:, None] + np.arange(-o, 0)[None, :]]  # (N, o): the last o observations
    return transform.inverse_path(zpath, hist)


def forecast_metrics(y_true, y_pred):
    """MSE, RMSE, MAE and MAPE (percent; None with a zero in ``y_true``) of forecasts."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    err = y_pred - y_true
    mse = float(np.mean(err ** 2))
    mape = None
    if np.all(y_true != 0):
        mape = float(np.mean(np.abs(err / y_true)) * 100)
    return {"n_test": len(y_true), "mse": mse, "rmse": math.sqrt(mse),
            "mae": float(np.mean(np.abs(err))), "mape": mape}


def evaluate_forecaster(forecaster, transform, y, start, *, stop=None, horizon=1):
    """One-step and ``horizon``-step-ahead forecasts of ``y[start:stop]`` with the true history.

    Parameters
    ----------
    forecaster : rnnkit.estimators.RNNForecaster
    transform : SeriesTransform
    y : array_like of shape (n,)
    start : int
        The first target; ``y[:start]`` is history only.
    stop : int, optional
        One past the last target (default ``n``).
    horizon : int, default 1
        K: also forecast each target from the data up to K steps before it.

    Returns
    -------
    dict
        ``one_step`` (predictions (n_t,)), ``metrics`` (of the one-step
        forecasts), ``naive`` (metrics of repeating the last value) and, for
        K > 1, ``k_step`` (predictions, NaN where the history is too short)
        and ``k_step_metrics``.
    """
    y = np.asarray(y, dtype=np.float64)
    stop = len(y) if stop is None else stop
    t = np.arange(start, stop)
    need = forecaster.window + transform.order
    if start < need:
        raise ValueError(f"the window ({forecaster.window}"
                         f"{_plus_order(transform.order)}) needs "
                         f"{need} observations before the first forecast; only {start} come "
                         "before it")
    one = forecast_paths(forecaster, transform, y, t, 1)[:, 0]
    out = {"targets": y[t], "one_step": one, "metrics": forecast_metrics(y[t], one),
           "naive": forecast_metrics(y[t], y[t - 1])}
    if horizon > 1:
        k = np.full(len(t), np.nan)
        ok = t - horizon + 1 >= need
        if ok.any():
            k[ok] = forecast_paths(forecaster, transform, y, t[ok] - horizon + 1,
                                   horizon)[:, -1]
            out["k_step_metrics"] = forecast_metrics(y[t][ok], k[ok])
        out["k_step"] = k
    return out


@dataclasses.dataclass
class ForecastResult:
    """What :func:`train_forecaster` returns.

    Attributes
    ----------
    estimator : rnnkit.estimators.RNNForecaster
    transform : SeriesTransform
    data : SeriesData
    metrics : dict
        One-step test metrics (``mse``, ``rmse``, ``mae``, ``mape``, ``n_test``).
    naive_metrics : dict
        The same for repeating the last observation.
    k_step_metrics : dict or None
        ``horizon``-step-ahead test metrics (horizon > 1).
    one_step : ndarray of shape (n_test,)
    k_step : ndarray of shape (n_test,) or None
    future : ndarray of shape (horizon,)
        The forecast after the last observation of ``data``.
    fit_seconds : float
    converged : bool
        False when training stopped at ``max_iter``.
    files : list of str
        What was written (model files, ``task.json``, plots).
    """

    estimator: object
    transform: SeriesTransform
    data: SeriesData
    metrics: dict
    naive_metrics: dict
    k_step_metrics: dict | None
    one_step: np.ndarray
    k_step: np.ndarray | None
    future: np.ndarray
    fit_seconds: float
    converged: bool
    files: list


def _fit_quietly(estimator, *args, trainer_hook=None):
    """``fit``, with the ConvergenceWarning turned into a flag (the caller reports it), and
    ``trainer_hook`` called with the estimator's trainer (for this fit only)."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        estimator._trainer_hook = trainer_hook
        try:
            estimator.fit(*args)
        finally:
            del estimator._trainer_hook
        seconds = time.perf_counter() - start
    converged = True
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            converged = False
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return seconds, converged


def _future_index(index, steps):
    """The index of ``steps`` observations after ``index`` (equally spaced)."""
    index = np.asarray(index)
    if len(index) >= 2:
        step = index[-1] - index[-2]
        return index[-1] + step * np.arange(1, steps + 1)
    return np.arange(len(index), len(index) + steps)


def train_forecaster(data, *, window=12, horizon=1, strategy="recursive", transform="none",
                     season=0, scaler="standard", out=None, plots=True, command=None,
                     trainer_hook=None, **params):
    """Fit an :class:`~rnnkit.estimators.RNNForecaster` on the training part and test it.

    Parameters
    ----------
    data : SeriesData
    window : int, default 12
        w, the (transformed) observations each forecast reads.
    horizon : int, default 1
        K: the length of the forecast after the data and of the
        K-step-ahead test (and, with ``strategy='direct'``, the outputs).
    strategy : {'recursive', 'direct'}, default 'recursive'
    transform : str or SeriesTransform, default 'none'
        See :class:`SeriesTransform`.
    season : int, default 0
        The seasonal difference of :class:`SeriesTransform` (when
        ``transform`` is a name).
    scaler : {'standard', 'minmax'} or None, default 'standard'
        The forecaster's scaling of the transformed series (training part only).
    out : str, optional
        Folder to save the model, ``task.json`` and (with ``plots``) the PNGs.
    plots : bool, default True
        Write ``forecast.png`` and ``learning_curves.png`` into ``out``.
    command : str, optional
        The command line that ran the job, recorded in ``task.json``.
    trainer_hook : callable(Trainer), optional
        Called with the estimator's trainer before training (the command line
        installs its Ctrl-C handler there: ``Trainer.request_stop`` ends the
        fit after the current step, and the job goes on with that model).
    **params
        Hyperparameters of :class:`~rnnkit.estimators.RNNForecaster`
        (``cell``, ``hidden_size``, ``max_iter``, ``random_state``, ...).

    Returns
    -------
    ForecastResult

    Raises
    ------
    ValueError
        A window too long for the training part, values outside the
        transform's domain, invalid hyperparameters.
    """
    from .estimators import RNNForecaster

    tf = transform if isinstance(transform, SeriesTransform) else SeriesTransform(transform,
                                                                                  season)
    tf.check(data.y, data.name)
    h_fit = horizon if strategy == "direct" else 1
    need = window + tf.order + h_fit
    if data.n_train < need:
        culprits = [name for name, part in (("--window", window), ("--season", tf.season),
                                            ("--horizon", h_fit - 1)) if part]
        raise ValueError(f"{data.name}: its training part has {data.n_train} observations, "
                         f"and one training window needs {need} (window {window}"
                         f"{_plus_order(tf.order)} + {h_fit} target{'s' if h_fit > 1 else ''}); "
                         f"lower {' or '.join(culprits)}, or the test size")
    est = RNNForecaster(window=window, horizon=horizon, strategy=strategy, scaler=scaler,
                        **params)
    seconds, converged = _fit_quietly(est, tf.forward(data.y_train), trainer_hook=trainer_hook)
    stop = data.n_train + data.n_test
    ev = evaluate_forecaster(est, tf, data.y[:stop], data.n_train, horizon=horizon)
    future = forecast_paths(est, tf, data.y, [len(data.y)], horizon)[0]
    result = ForecastResult(est, tf, data, ev["metrics"], ev["naive"],
                            ev.get("k_step_metrics"), ev["one_step"], ev.get("k_step"), future,
                            seconds, converged, [])
    if out is not None:
        result.files.extend(_save_job(out, est, {
            "task": "forecast", "data": data.source, "name": data.name,
            "split": {"n_train": data.n_train, "n_test": data.n_test},
            "transform": tf.kind, "season": tf.season, "horizon": int(horizon),
            "index": _index_json(data.index), "unit": data.unit,
            "last_observations": data.y[-(window + tf.order):].tolist(),
            "metrics": {"one_step": ev["metrics"], "naive_last_value": ev["naive"],
                        "k_step": ev.get("k_step_metrics")},
            "fit_seconds": seconds, "converged": converged,
            **({"command": command} if command else {})}))
        if plots:
            from . import task_plots

            result.files.append(task_plots.plot_forecast(
                os.path.join(out, "forecast.png"), data, ev["one_step"], ev.get("k_step"),
                horizon, future, _future_index(data.index, horizon),
                rmse=ev["metrics"]["rmse"]))
            result.files.append(task_plots.plot_learning_curves(
                os.path.join(out, "learning_curves.png"), est.loss_curve_,
                est.validation_scores_, score_name="validation R²",
                title=f"{data.name}: learning curves"))
    return result


def _index_json(index):
    """The first and last index labels and their spacing, JSON-able (for messages)."""
    index = np.asarray(index)
    if index.dtype.kind == "M":
        return {"kind": "datetime64", "unit": np.datetime_data(index.dtype)[0],
                "last": str(index[-1]), "step": int((index[-1] - index[-2]).astype(int))
                if len(index) > 1 else 1}
    return {"kind": "number", "last": float(index[-1]),
            "step": float(index[-1] - index[-2]) if len(index) > 1 else 1.0}


# ================================================================ classification
def _scaler_json(scaler):
    if scaler is None:
        return {"kind": "none"}
    return {"kind": "standard", "mean": np.asarray(scaler.mean_).tolist(),
            "scale": np.asarray(scaler.scale_).tolist()}


def _scaler_from_json(d, where):
    from .estimators import SequenceScaler

    if not isinstance(d, dict) or d.get("kind") not in ("none", "standard"):
        raise rio.ModelFileError(f"{where}: invalid 'scaling' entry")
    if d["kind"] == "none":
        return None
    try:
        mean = np.asarray(d["mean"], dtype=np.float64)
        scale = np.asarray(d["scale"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise rio.ModelFileError(f"{where}: invalid 'scaling' entry") from None
    if mean.ndim != 1 or mean.shape != scale.shape or not (
            np.isfinite(mean).all() and np.isfinite(scale).all() and np.all(scale > 0)):
        raise rio.ModelFileError(f"{where}: invalid 'scaling' entry")
    s = SequenceScaler()
    s.mean_, s.scale_, s.n_features_in_ = mean, scale, mean.shape[0]
    return s


def _scaled(scaler, X):
    return X if scaler is None else scaler.transform(X)


def classification_metrics(y_true, y_pred, classes):
    """Accuracy, macro F1 and the confusion matrix (rows true, columns predicted).

    Parameters
    ----------
    y_true, y_pred : array_like of shape (n,)
    classes : array_like of shape (C,)
        The rows and columns of the confusion matrix (the classifier's
        ``classes_``); labels outside them count as errors in the accuracy.

    Returns
    -------
    dict
        ``n_test``, ``accuracy``, ``macro_f1`` (over the labels present in
        ``y_true`` or ``y_pred``) and ``confusion_matrix`` (C, C) as lists.

    Raises
    ------
    ValueError
        If no label of ``y_true`` is among ``classes`` (every class of the
        test part was missing from training).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = np.asarray(classes)
    if len(y_true) and not np.isin(y_true, labels).any():
        seen = ", ".join(repr(v) for v in np.unique(y_true)[:5].tolist())
        known = ", ".join(repr(v) for v in labels[:5].tolist())
        raise ValueError(f"none of the {len(y_true)} test labels ({seen}"
                         f"{', ...' if len(np.unique(y_true)) > 5 else ''}) is a class the model "
                         f"was trained on ({known}{', ...' if len(labels) > 5 else ''}): each "
                         "class needs examples in both the training and the test part")
    return {"n_test": len(y_true), "accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist()}


@dataclasses.dataclass
class ClassifyResult:
    """What :func:`train_classifier` returns.

    Attributes
    ----------
    estimator : rnnkit.estimators.RNNClassifier
    scaler : rnnkit.estimators.SequenceScaler or None
    data : SequenceData
    metrics : dict
        ``accuracy``, ``macro_f1``, ``confusion_matrix``, ``n_test``.
    majority_accuracy : float
        Accuracy of always predicting the most frequent training class.
    predictions : ndarray of shape (n_test,)
    fit_seconds : float
    converged : bool
    files : list of str
    """

    estimator: object
    scaler: object
    data: SequenceData
    metrics: dict
    majority_accuracy: float
    predictions: np.ndarray
    fit_seconds: float
    converged: bool
    files: list


def train_classifier(data, *, scale="standard", out=None, plots=True, command=None,
                     trainer_hook=None, **params):
    """Fit an :class:`~rnnkit.estimators.RNNClassifier` on the training part and test it.

    Parameters
    ----------
    data : SequenceData
    scale : {'standard', 'none'}, default 'standard'
        Standardize each feature with the mean and standard deviation of the
        training sequences (:class:`~rnnkit.estimators.SequenceScaler`).
    out : str, optional
        Folder for the model, ``task.json`` and the plots.
    plots : bool, default True
        Write ``confusion_matrix.png`` and ``learning_curves.png`` into ``out``.
    command : str, optional
        Recorded in ``task.json``.
    trainer_hook : callable(Trainer), optional
        As in :func:`train_forecaster`.
    **params
        Hyperparameters of :class:`~rnnkit.estimators.RNNClassifier`.

    Returns
    -------
    ClassifyResult
    """
    from .estimators import RNNClassifier, SequenceScaler

    if scale not in ("standard", "none"):
        raise ValueError(f"unknown scaling {scale!r}; choose standard or none")
    if len(data.y_train) == 0 or len(data.y_test) == 0:
        raise ValueError(f"{data.name}: needs training and test sequences")
    scaler = SequenceScaler().fit(data.X_train) if scale == "standard" else None
    est = RNNClassifier(**params)
    seconds, converged = _fit_quietly(est, _scaled(scaler, data.X_train), data.y_train,
                                      trainer_hook=trainer_hook)
    pred = est.predict(_scaled(scaler, data.X_test))
    metrics = classification_metrics(data.y_test, pred, est.classes_)
    values, counts = np.unique(data.y_train, return_counts=True)
    majority = float(np.mean(data.y_test == values[np.argmax(counts)]))
    result = ClassifyResult(est, scaler, data, metrics, majority, pred, seconds, converged, [])
    if out is not None:
        result.files.extend(_save_job(out, est, {
            "task": "classify", "data": data.source, "name": data.name, "split": data.split,
            "scaling": _scaler_json(scaler),
            "metrics": {"test": metrics, "majority_class_accuracy": majority},
            "fit_seconds": seconds, "converged": converged,
            **({"command": command} if command else {})}))
        if plots:
            from . import task_plots

            labels = [str(c) for c in est.classes_]
            result.files.append(task_plots.plot_confusion_matrix(
                os.path.join(out, "confusion_matrix.png"), metrics["confusion_matrix"], labels,
                title=f"{data.name}: test accuracy {metrics['accuracy']:.2%}"))
            result.files.append(task_plots.plot_learning_curves(
                os.path.join(out, "learning_curves.png"), est.loss_curve_,
                est.validation_scores_, score_name="validation accuracy",
                title=f"{data.name}: learning curves"))
    return result


def evaluate_classifier(job, data):
    """Accuracy, macro F1 and confusion matrix of a saved classifier on ``data.X_test``.

    Parameters
    ----------
    job : Job
        From :func:`load_job`.
    data : SequenceData

    Returns
    -------
    dict
        :func:`classification_metrics` plus ``predictions``.
    """
    pred = job.predict_classes(data.X_test)
    out = classification_metrics(data.y_test, pred, job.estimator.classes_)
    out["predictions"] = pred
    return out


# ===================================================================== model files
def _save_job(out, estimator, info):
    """``estimator.save(out)`` and ``task.json``; returns the paths written."""
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise NotADirectoryError(f"--out {out}: exists and is not a folder")
    estimator.save(out)
    meta = {"format": _TASK_FORMAT, "format_version": _TASK_FORMAT_VERSION,
            "rnnkit_version": __version__, **info}
    text = json.dumps(meta, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    rio.atomic_write_bytes(os.path.join(out, TASK_FILE), text.encode("utf-8"))
    return [os.path.join(out, rio.WEIGHTS_NAME), os.path.join(out, rio.CONFIG_NAME),
            os.path.join(out, TASK_FILE)]


@dataclasses.dataclass
class Job:
    """A saved estimator with what ``task.json`` records about it.

    Attributes
    ----------
    task : {'forecast', 'classify'}
    estimator : RNNForecaster or RNNClassifier
    info : dict
        The contents of ``task.json`` (empty for a folder saved by
        ``save(DIR)`` alone).
    transform : SeriesTransform or None
        Forecasting only.
    scaler : SequenceScaler or None
        Classification only.
    """

    task: str
    estimator: object
    info: dict
    transform: SeriesTransform | None = None
    scaler: object = None

    def predict_classes(self, X):
        """Labels of sequences ``X`` (scaled as in training)."""
        return self.estimator.predict(_scaled(self.scaler, X))

    def predict_proba(self, X):
        """Class probabilities of ``X`` (columns as ``estimator.classes_``)."""
        return self.estimator.predict_proba(_scaled(self.scaler, X))

    def forecast(self, y, steps):
        """The ``steps`` values after the series ``y`` (original units)."""
        y = _check_values(y, "the series")
        return forecast_paths(self.estimator, self.transform, y, [len(y)], steps)[0]

    @property
    def context(self):
        """The last observations of the training run's series (None if unknown)."""
        last = self.info.get("last_observations")
        return None if last is None else np.asarray(last, dtype=np.float64)


def _check_task_info(info, where):
    """ModelFileError unless ``info`` is a well-formed ``task.json``."""
    def bad(what):
        return rio.ModelFileError(f"{where}: {what}")

    if not isinstance(info, dict) or info.get("format") != _TASK_FORMAT:
        raise bad("not an rnnkit task file")
    version = info.get("format_version")
    if isinstance(version, bool) or version != _TASK_FORMAT_VERSION:
        raise bad(f"unsupported format_version {version!r}")
    if info.get("task") not in ("forecast", "classify"):
        raise bad(f"unknown task {info.get('task')!r}")
    for key in ("data", "split", "metrics"):
        if key in info and not isinstance(info[key], dict):
            raise bad(f"'{key}' is not an object")
    horizon = info.get("horizon", 1)
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise bad(f"'horizon' must be an integer >= 1, got {horizon!r}")
    last = info.get("last_observations")
    if last is not None and (not isinstance(last, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in last)):
        raise bad("'last_observations' must be a list of finite numbers")


def check_job_folder(path):
    """Raise now, without scikit-learn, if ``path`` is not a folder of a saved estimator.

    What ``rnnkit predict`` and ``evaluate`` check before they need
    scikit-learn, so that a wrong folder is named as such first.

    Raises
    ------
    rnnkit.io.ModelFileError
        Not a model folder, an invalid ``config.json``, or a model that no
        estimator saved (a character-level model, a bare ``save_model``).
    """
    config = rio.read_config(path)
    meta = config.get("metadata")
    if not isinstance(meta, dict) or meta.get("format") != rio.ESTIMATOR_FORMAT:
        where = os.path.join(os.fspath(path), rio.CONFIG_NAME)
        raise rio.ModelFileError(f"{where}: a model file, but not a saved rnnkit estimator "
                                 "(rnnkit train --task forecast or classify writes those)")


def load_job(path):
    """Load a model folder written by ``rnnkit train --task ...`` (or ``save(DIR)``).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    Job

    Raises
    ------
    rnnkit.io.ModelFileError
        Not a model folder, a corrupted file, an estimator other than a
        forecaster or a classifier, or an invalid ``task.json``.
    """
    from .estimators import RNNClassifier, RNNForecaster, load_estimator

    path = os.fspath(path)
    est = load_estimator(path)
    where = os.path.join(path, TASK_FILE)
    info = {}
    if os.path.exists(where):
        try:
            with open(where, encoding="utf-8") as f:
                info = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise rio.ModelFileError(f"{where}: not valid JSON ({exc})") from None
        except OSError as exc:
            raise rio.ModelFileError(f"{where}: cannot be read ({exc})") from None
        _check_task_info(info, where)
    if isinstance(est, RNNForecaster):
        if est.n_series_ != 1 or est.n_exog_:
            raise rio.ModelFileError(f"{path}: a forecaster of {est.n_series_} series with "
                                     f"{est.n_exog_} exogenous inputs; the command line "
                                     "handles one series without exogenous inputs")
        try:
            tf = SeriesTransform(info.get("transform", "none"), info.get("season", 0))
        except (TypeError, ValueError) as exc:
            raise rio.ModelFileError(f"{where}: invalid transform ({exc})") from None
        last = info.get("last_observations")
        if last is not None and len(last) < est.window + tf.order:
            raise rio.ModelFileError(f"{where}: 'last_observations' holds {len(last)} values; "
                                     f"the window needs {est.window + tf.order}")
        if info and info.get("task") != "forecast":
            raise rio.ModelFileError(f"{where}: records task {info.get('task')!r}, but the "
                                     "model is a forecaster")
        return Job("forecast", est, info, transform=tf)
    if isinstance(est, RNNClassifier):
        if info and info.get("task") != "classify":
            raise rio.ModelFileError(f"{where}: records task {info.get('task')!r}, but the "
                                     "model is a classifier")
        scaler = _scaler_from_json(info.get("scaling", {"kind": "none"}), where)
        if scaler is not None and scaler.n_features_in_ != est.n_features_in_:
            raise rio.ModelFileError(f"{where}: the scaling has {scaler.n_features_in_} "
                                     f"features, the model {est.n_features_in_}")
        return Job("classify", est, info, scaler=scaler)
    raise rio.ModelFileError(f"{path}: holds an {type(est).__name__}; rnnkit predict and "
                             "evaluate take forecasters and classifiers")
