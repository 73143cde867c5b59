"""``rnnkit train --task forecast|classify``, ``rnnkit predict``, ``rnnkit evaluate`` in process,
the library behind them (:mod:`rnnkit.jobs`), and a smoke run of ``benchmarks/results.py``."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the estimators need scikit-learn (pip install scikit-learn)")
pytest.importorskip("matplotlib", reason="the plots need matplotlib (pip install matplotlib)")

from rnnkit import jobs
from rnnkit.cli import build_parser, main
from rnnkit.task_cli import resolve_task_defaults

TINY = ["--hidden-size", "4", "--max-iter", "2", "--batch-size", "16", "--no-progress"]
PNG = b"\x89PNG\r\n\x1a\n"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(capsys, *argv):
    """(exit status, stdout, stderr) of ``rnnkit ARGV``."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(result, command, *needles):
    """Exit 2, exactly one line on stderr, 'rnnkit COMMAND: error: ...', no traceback."""
    code, _out, err = result
    assert code == 2, f"exit status {code}, stderr {err!r}"
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {err!r}"
    assert lines[0].startswith(f"rnnkit {command}: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


def assert_png(path):
    with open(path, "rb") as f:
        head = f.read(8)
    assert head == PNG, f"{path} is not a PNG file"
    assert os.path.getsize(path) > 5000, f"{path} is suspiciously small"


def line_with(out, prefix):
    found = [line for line in out.splitlines() if line.startswith(prefix)]
    assert len(found) == 1, f"one line starting {prefix!r} expected in:\n{out}"
    return found[0]


def write_series_csv(path, n=60, *, value=None, bad_row=None):
    """date,value rows: a monthly series with a season and a trend (positive)."""
    t = np.arange(n)
    y = 100 + t + 10 * np.sin(2 * np.pi * t / 12) if value is None else value
    months = np.datetime64("2000-01") + t
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["month", "sales"])
        for i in range(n):
            w.writerow([str(months[i]), bad_row if i == n // 2 and bad_row else f"{y[i]:.3f}"])
    return path


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def series_csv(tmp_path_factory):
    return write_series_csv(tmp_path_factory.mktemp("csv") / "sales.csv")


def _train(argv):
    """``rnnkit train ARGV`` with stdout/stderr captured (for module-scoped fixtures)."""
    import contextlib

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def csv_model(series_csv, tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "sales"
    result = _train(["train", "--task", "forecast", series_csv, "--column", "sales",
                     "--window", "6", "--horizon", "3", "--transform", "log", "--test-size",
                     "12", "--seed", "1", "--out", folder, *TINY])
    return folder, *result


@pytest.fixture(scope="module")
def sunspots_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "sunspots"
    result = _train(["train", "--task", "forecast", "--data", "sunspots", "--window", "9",
                     "--transform", "sqrt", "--out", folder, *TINY])
    return folder, *result


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "digits"
    result = _train(["train", "--task", "classify", "--data", "digits", "--seed", "2",
                     "--out", folder, *TINY])
    return folder, *result


# ------------------------------------------------------------ train: forecast
def test_forecast_on_a_csv_file_trains_reports_saves_and_plots(csv_model):
    folder, code, out, err = csv_model
    assert code == 0, err
    assert err == ""
    assert line_with(out, "data: sales.csv: 60 observations; train 2000-01..2003-12 (48), "
                          "test 2004-01..2004-12 (12)")
    assert "window 6, transform log, recursive" in line_with(out, "model: RNNForecaster(")
    assert "(stopped at --max-iter" in line_with(out, "trained 2 epochs in ")
    one = line_with(out, "test, one step ahead (12 forecasts): MSE ")
    assert "RMSE" in one and "MAPE" in one
    assert line_with(out, "  baseline, repeat the last value:  MSE ")
    assert line_with(out, "test, 3 steps ahead (12 forecasts): ")
    forecast = line_with(out, "forecast of the 3 step(s) after 2004-12: ")
    assert len(forecast.split(": ")[1].split(", ")) == 3
    assert line_with(out, f"saved model to {folder} (model.safetensors, config.json, task.json)")
    for name in ("forecast.png", "learning_curves.png"):
        assert_png(folder / name)
    task = json.loads((folder / "task.json").read_text())
    assert task["task"] == "forecast" and task["transform"] == "log"
    assert (task["data"]["kind"], task["data"]["column"], task["data"]["test_size"]) == \
        ("csv", "sales", 12)
    assert os.path.basename(task["data"]["path"]) == "sales.csv"
    assert task["split"] == {"n_train": 48, "n_test": 12}
    assert len(task["last_observations"]) == 6


def test_an_integer_first_column_is_a_number_index_not_years(tmp_path, capsys):
    """0, 1, 2, ... in the first column: NumPy reads such labels as the years 0000, 0001, ...,
    which matplotlib cannot plot; they are positions, and 1900, 1901 stay numbers too."""
    path = tmp_path / "indexed.csv"
    path.write_text("t,units\n" + "".join(f"{i},{(i % 12) * 3 + i / 10:.2f}\n"
                                           for i in range(40)))
    code, out, err = run(capsys, "train", "--task", "forecast", path, "--max-iter", "2",
                         "--window", "4", "--out", tmp_path / "m")
    assert code == 0, err
    assert line_with(out, "data: indexed.csv: 40 observations; train 0..31 (32), test 32..39")
    assert_png(tmp_path / "m" / "forecast.png")
    assert jobs.read_series_csv(path)[1].dtype.kind == "i"


def test_forecast_on_sunspots_uses_the_benchmark_split(sunspots_model):
    folder, code, out, err = sunspots_model
    assert code == 0, err
    assert line_with(out, "data: sunspots: 309 observations; train 1700..1920 (221), "
                          "test 1921..1987 (67)")
    assert line_with(out, "test, one step ahead (67 forecasts): ")
    # the naive baseline is the repeat-last-year forecast of the benchmark: MSE 920.7
    assert "MSE 920.7 " in line_with(out, "  baseline, repeat the last value:")
    assert line_with(out, "forecast of the 1 step(s) after 2008: ")
    assert_png(folder / "forecast.png")


def test_train_without_a_task_keeps_the_text_defaults():
    parser = build_parser()
    args = resolve_task_defaults(parser.parse_args(["train"]))
    assert (args.task, args.hidden_size, args.lr, args.out) == \
        ("text", 256, 3e-3, os.path.join("runs", "charlm"))
    assert type(args.hidden_size) is int and type(args.lr) is float and type(args.out) is str
    args = resolve_task_defaults(parser.parse_args(["train", "--task", "forecast"]))
    assert (args.hidden_size, args.lr, args.out) == (64, 1e-3, os.path.join("runs", "forecast"))
    args = resolve_task_defaults(parser.parse_args(["train", "--task", "classify",
                                                    "--hidden-size", "256"]))
    assert (args.hidden_size, args.out) == (256, os.path.join("runs", "classify"))


# ------------------------------------------------------------ train: classify
def test_classify_digits_trains_reports_saves_and_plots(digits_model):
    folder, code, out, err = digits_model
    assert code == 0, err
    assert err == ""
    assert line_with(out, "data: digits: 1797 sequences of 8 steps x 8 features, 10 classes; "
                          "stratified split: train 1437, test 360")
    assert "inputs standardized" in line_with(out, "model: RNNClassifier(cell=lstm, "
                                                   "hidden_size=4")
    acc = line_with(out, "test accuracy ")
    assert "/360 sequences), macro F1 " in acc
    assert "baseline, the most frequent class: 0.1" in acc
    for name in ("confusion_matrix.png", "learning_curves.png"):
        assert_png(folder / name)
    task = json.loads((folder / "task.json").read_text())
    assert task["split"] == {"kind": "stratified", "test_size": 0.2, "random_state": 2}
    assert task["scaling"]["kind"] == "standard" and len(task["scaling"]["mean"]) == 8
    cm = np.array(task["metrics"]["test"]["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 360


def test_classify_an_npz_file_with_lengths_and_early_stopping(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 9, size=80)
    X = np.zeros((80, 8, 2))
    for i, n in enumerate(lengths):
        X[i, :n] = rng.normal(size=(n, 2))
    y = np.where(X[:, :, 0].sum(axis=1) > 0, "up", "down")
    np.savez(tmp_path / "seqs.npz", X=X, y=y, lengths=lengths)
    code, out, err = run(capsys, "train", "--task", "classify", tmp_path / "seqs.npz",
                         "--early-stopping", "--out", tmp_path / "m", *TINY)
    assert code == 0, err
    assert "80 sequences of 3-8 steps x 2 features, 2 classes" in out
    assert "best validation score" in line_with(out, "trained ")
    assert_png(tmp_path / "m" / "learning_curves.png")
    code, out, err = run(capsys, "predict", tmp_path / "m", tmp_path / "seqs.npz")
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["index", "label"] and len(rows) == 81
    assert {r[1] for r in rows[1:]} <= {"up", "down"}


# ------------------------------------------------------------ predict / evaluate
def test_predict_continues_the_training_series_or_a_given_one(csv_model, tmp_path, capsys):
    folder = csv_model[0]
    code, out, err = run(capsys, "predict", folder)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["step", "forecast"] and [r[0] for r in rows[1:]] == ["1", "2", "3"]
    trained = line_with(csv_model[2], "forecast of the 3 step(s) after ").split(": ")[1]
    assert [f"{float(r[1]):.4g}" for r in rows[1:]] == trained.split(", ")
    recent = write_series_csv(tmp_path / "recent.csv", n=20)
    dest = tmp_path / "forecast.csv"
    code, out, err = run(capsys, "predict", folder, recent, "--horizon", "5", "--output", dest)
    assert code == 0, err
    assert out == f"wrote 5 row(s) to {dest}\n"
    values = [float(r[1]) for r in list(csv.reader(io.StringIO(dest.read_text())))[1:]]
    assert len(values) == 5 and all(v > 0 for v in values)  # log transform: positive


def test_evaluate_repeats_the_training_test_metrics(csv_model, capsys, tmp_path):
    folder, _, trained_out, _ = csv_model
    code, out, err = run(capsys, "evaluate", folder, "--plots", tmp_path / "figs")
    assert code == 0, err
    for prefix in ("test, one step ahead", "  baseline, repeat", "test, 3 steps ahead"):
        assert line_with(out, prefix) == line_with(trained_out, prefix)
    assert_png(tmp_path / "figs" / "forecast.png")
    # a file is all test data: every observation after the first window is forecast
    other = write_series_csv(tmp_path / "other.csv", n=30)
    code, out, err = run(capsys, "evaluate", folder, other, "--column", "sales")
    assert code == 0, err
    assert line_with(out, "test, one step ahead (24 forecasts): ")


def test_evaluate_and_predict_a_saved_classifier(digits_model, tmp_path, capsys):
    folder, _, trained_out, _ = digits_model
    code, out, err = run(capsys, "evaluate", folder)
    assert code == 0, err
    trained = line_with(trained_out, "test accuracy ").split("; baseline")[0]
    assert line_with(out, "test accuracy ") == trained
    from sklearn.datasets import load_digits

    d = load_digits()
    np.savez(tmp_path / "five.npz", X=d.images[:5], y=d.target[:5])
    code, out, err = run(capsys, "predict", folder, tmp_path / "five.npz", "--proba")
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["index", "label"] + [f"p_{k}" for k in range(10)]
    proba = np.array([[float(v) for v in r[2:]] for r in rows[1:]])
    assert proba.shape == (5, 10) and np.allclose(proba.sum(axis=1), 1, atol=1e-4)
    assert [int(r[1]) for r in rows[1:]] == proba.argmax(axis=1).tolist()
    # --column names a CSV column: with an .npz file it is an error, not ignored
    assert_usage_error(run(capsys, "predict", folder, tmp_path / "five.npz", "--column", "y"),
                       "predict", "--column is for CSV files", "five.npz")
    assert_usage_error(run(capsys, "evaluate", folder, tmp_path / "five.npz", "--column", "y"),
                       "evaluate", "--column is for CSV files", "arrays X and y")
    # sequences of another width: said of the file and the model, not of a pipeline step
    np.savez(tmp_path / "narrow.npz", X=d.images[:5, :, :5])
    assert_usage_error(run(capsys, "predict", folder, tmp_path / "narrow.npz"), "predict",
                       "narrow.npz: the sequences have 5 features per time step; the model "
                       "takes 8")
    code, out, err = run(capsys, "evaluate", folder, tmp_path / "five.npz",
                         "--plots", tmp_path / "p")
    assert code == 0, err
    assert "/5 sequences), macro F1 " in line_with(out, "test accuracy ")
    assert_png(tmp_path / "p" / "confusion_matrix.png")


# ------------------------------------------------------------ bad input
def test_bad_forecast_inputs_exit_2_with_one_line(tmp_path, capsys, series_csv):
    out = ["--out", tmp_path / "m", *TINY]
    assert_usage_error(run(capsys, "train", "--task", "forecast", series_csv, "--column",
                           "units", *out), "train", "no column 'units'", "'month', 'sales'")
    text = write_series_csv(tmp_path / "text.csv", bad_row="n/a")
    assert_usage_error(run(capsys, "train", "--task", "forecast", text, "--column", "sales",
                           *out), "train", "line 32", "'n/a'", "not a number")
    nan = write_series_csv(tmp_path / "nan.csv", bad_row="nan")
    assert_usage_error(run(capsys, "train", "--task", "forecast", nan, "--column", "sales",
                           *out), "train", "line 32", "NaN")
    assert_usage_error(run(capsys, "train", "--task", "forecast", series_csv, "--window", "48",
                           *out), "train", "48 observations", "needs 49", "lower --window")
    assert_usage_error(run(capsys, "train", "--task", "forecast", series_csv, "--window", "4",
                           "--season", "50", *out), "train", "4 + 50 lost to differencing",
                       "lower --window or --season")
    assert_usage_error(run(capsys, "train", "--task", "forecast", series_csv, "--test-size",
                           "1000", *out), "train", "leaves none of the 60", "count below 60")
    assert_usage_error(run(capsys, "train", "--task", "classify", "--data", "digits",
                           "--test-size", "5000", *out), "train",
                       "a test part of 5000 sequences leaves none of the 1797", "count below")
    assert_usage_error(run(capsys, "train", "--task", "forecast", "--data", "moonspots", *out),
                       "train", "unknown series 'moonspots'", "sunspots, airline")
    assert_usage_error(run(capsys, "train", "--task", "forecast", tmp_path / "gone.csv", *out),
                       "train", "gone.csv: no such file")
    assert_usage_error(run(capsys, "train", "--task", "forecast", *out), "train",
                       "needs data")
    neg = write_series_csv(tmp_path / "neg.csv", value=np.linspace(-5, 5, 60))
    assert_usage_error(run(capsys, "train", "--task", "forecast", neg, "--transform", "log",
                           *out), "train", "--transform log needs positive values")
    assert not (tmp_path / "m").exists()  # nothing saved by a run that failed


def test_bad_classify_inputs_and_options_exit_2_with_one_line(tmp_path, capsys):
    out = ["--out", tmp_path / "m", *TINY]
    assert_usage_error(run(capsys, "train", "--task", "classify", "--data", "mnist", *out),
                       "train", "unknown data set 'mnist'", "digits, japanese_vowels, fsdd")
    assert_usage_error(run(capsys, "train", "--task", "classify", "--data", "sunspots", *out),
                       "train", "is a series: use --task forecast")
    np.savez(tmp_path / "nan.npz", X=np.full((4, 3), np.nan), y=np.arange(4))
    assert_usage_error(run(capsys, "train", "--task", "classify", tmp_path / "nan.npz", *out),
                       "train", "NaN")
    assert_usage_error(run(capsys, "train", "--task", "classify", "--data", "digits",
                           "--window", "5", *out), "train", "--window is an option of --task "
                                                            "forecast")
    assert_usage_error(run(capsys, "train", "--window", "5"), "train",
                       "--window is an option of --task forecast or classify")
    # a built-in series keeps its benchmark split (new-user trial: --test-size was ignored)
    assert_usage_error(run(capsys, "train", "--task", "forecast", "--data", "sunspots",
                           "--test-size", "400", *out), "train",
                       "--test-size is for CSV files", "sunspots has its benchmark split")
    # the text task's sampling options, even at their defaults' values (new-user trial:
    # they were accepted and ignored)
    for option, value in (("--sample-length", "400"), ("--temperature", "0.5"),
                          ("--prime", "")):
        assert_usage_error(run(capsys, "train", "--task", "forecast", "--data", "sunspots",
                               option, value, *out), "train",
                           f"{option} is an option of the text task, not of --task forecast")
    assert_usage_error(run(capsys, "predict", tmp_path), "predict", "model")
    # an option the built-in loader does not take: named, with the ones it does take
    assert_usage_error(run(capsys, "train", "--task", "classify", "--data", "fsdd",
                           "--data-option", "hop=160", *out), "train",
                       "--data-option hop: not an option of the fsdd data set",
                       "hop_length", "n_mfcc")
    assert_usage_error(run(capsys, "train", "--task", "classify", "--data", "digits",
                           "--data-option", "foo=1", *out), "train",
                       "its options are (none)")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("content, needle", [
    ("{", "not valid JSON"),
    ('{"format": "rnnkit-task", "format_version": 1, "task": "forecast", "horizon": "x"}',
     "'horizon' must be an integer"),
    (('{"format": "rnnkit-task", "format_version": 1, "task": "forecast", '
     '"transform": "cube"}'), "invalid transform"),
    ('{"format": "rnnkit-task", "format_version": 1, "task": "classify"}',
     "records task 'classify', but the model is a forecaster"),
])
def test_a_damaged_task_file_is_one_clear_error(csv_model, tmp_path, capsys, content, needle):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(csv_model[0], folder)
    (folder / "task.json").write_text(content, encoding="utf-8")
    assert_usage_error(run(capsys, "predict", folder), "predict", "task.json", needle)
    assert_usage_error(run(capsys, "evaluate", folder), "evaluate", "task.json", needle)


# ------------------------------------------------------------ library
def test_transforms_invert_exactly_on_the_observed_path():
    rng = np.random.default_rng(0)
    y = np.exp(rng.normal(size=40).cumsum() * 0.1) * 50
    for kind in jobs.TRANSFORMS:
        for season in (0, 4):
            tf = jobs.SeriesTransform(kind, season)
            z = tf.forward(y)
            assert z.shape == (len(y) - tf.order,)
            # the observed z path from t = 20 on gives back y[20:] from the history before it
            back = tf.inverse_path(z[None, 20 - tf.order:], y[None, 20 - tf.order:20])
            np.testing.assert_allclose(back[0], y[20:], rtol=1e-10)
    with pytest.raises(ValueError, match="--season must be 0"):
        jobs.SeriesTransform("log", 1)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_forecasts_never_read_the_values_they_forecast():
    """One-step and K-step forecasts of y[t] depend only on y before t (leakage check)."""
    from rnnkit.estimators import RNNForecaster

    rng = np.random.default_rng(1)
    y = 10 + np.sin(np.arange(80) / 3) + rng.normal(size=80) * 0.1
    tf = jobs.SeriesTransform("diff")
    est = RNNForecaster(window=5, hidden_size=4, max_iter=2, random_state=0).fit(
        tf.forward(y[:60]))
    before = jobs.evaluate_forecaster(est, tf, y, 60, horizon=3)
    changed = y.copy()
    changed[70:] += 1000.0  # the future of target 69, and targets 70.. themselves
    after = jobs.evaluate_forecaster(est, tf, changed, 60, horizon=3)
    np.testing.assert_array_equal(before["one_step"][:11], after["one_step"][:11])
    np.testing.assert_array_equal(before["k_step"][:13], after["k_step"][:13])
    assert not np.allclose(before["one_step"][11:], after["one_step"][11:])


# ------------------------------------------------------------ results script
def _results_script():
    spec = importlib.util.spec_from_file_location(
        "results_script", os.path.join(ROOT, "benchmarks", "results.py"))
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    return results


def test_results_script_says_why_it_skips_missing_spoken_digits(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RNNKIT_FSDD", str(tmp_path / "no_such_archive.tar.gz"))
    out = tmp_path / "results.md"
    assert _results_script().main(["--quick", "--datasets", "fsdd", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "Skipped: the FSDD archive is not here (Free Spoken Digit Dataset not found" in text
    assert "no_such_archive.tar.gz" in text
    assert "  skipped: Free Spoken Digit Dataset not found" in capsys.readouterr().out


def test_results_script_quick_smoke_run(tmp_path, capsys):
    results = _results_script()
    out = tmp_path / "results.md"
    assert results.main(["--quick", "--datasets", "sunspots,fsdd", "--out", str(out),
                         "--json", str(tmp_path / "r.json")]) == 0
    text = out.read_text(encoding="utf-8")
    assert "Quick smoke run" in text
    assert "| rnnkit LSTM(8), square root, window 12 |" in text
    assert "| AR(9), statsmodels AutoReg | 305.2 |" in text
    assert "rnnkit train --task forecast --data sunspots --window 12 --transform sqrt " \
           "--hidden-size 8 --lr 0.003 --max-iter 2 --tol 0 --seed S" in text
    raw = json.loads((tmp_path / "r.json").read_text())
    from rnnkit.data.datasets import find_fsdd

    try:
        find_fsdd()
    except FileNotFoundError:
        assert "skipped" in raw["datasets"]["fsdd"]
        assert "Skipped: the FSDD archive is not here" in text
        pytest.skip("FSDD archive not found (../shared/data): its quick run was skipped, "
                    "the rest passed")
    assert "| rnnkit LSTM(8) |" in text.split("## fsdd")[1]
    assert "Jakobovski/free-spoken-digit-dataset" in text


@pytest.mark.parametrize("argv,command", [
    (["train", "--task", "forecast", "--data", "sunspots"], "train"),
    (["train", "--task", "classify", "--data", "digits"], "train"),
    (["predict"], "predict"),
    (["evaluate"], "evaluate"),
])
def test_without_scikit_learn_says_which_extra_to_install(argv, command, csv_model, tmp_path,
                                                          capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    extra = ["--out", tmp_path / "m", *TINY] if command == "train" else [csv_model[0]]
    result = run(capsys, *argv, *extra)
    assert_usage_error(result, command, "scikit-learn", "pip install 'rnnkit[sklearn]'")


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_wrong_model_folder_is_named_before_scikit_learn_is_needed(command, tmp_path, capsys,
                                                                     monkeypatch):
    """Without scikit-learn, a missing folder or a model no estimator saved is the error,
    not the missing library."""
    from rnnkit import SequenceModel
    from rnnkit.io import save_model

    monkeypatch.setitem(sys.modules, "sklearn", None)
    assert_usage_error(run(capsys, command, tmp_path / "none"), command,
                       "not a model folder")
    save_model(tmp_path / "lm", SequenceModel(4, 8, 4, rng=0))
    assert_usage_error(run(capsys, command, tmp_path / "lm"), command,
                       "a model file, but not a saved rnnkit estimator")


def test_without_matplotlib_plots_fail_before_the_training(series_csv, tmp_path, capsys,
                                                          monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert_usage_error(run(capsys, "train", "--task", "forecast", series_csv, "--column",
                           "sales", "--out", tmp_path / "m", *TINY), "train",
                       "plots need matplotlib", "--no-plots")
    assert not (tmp_path / "m" / "model.safetensors").exists()  # nothing was trained


def test_output_paths_are_checked_before_the_work(csv_model, tmp_path, capsys):
    """A folder given as a file, a file given as a folder, a missing folder: one line, no
    work done first, no temporary names."""
    folder = csv_model[0]
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    assert_usage_error(run(capsys, "predict", folder, "--output", tmp_path), "predict",
                       "--output", "is a folder")
    assert_usage_error(run(capsys, "predict", folder, "--output", tmp_path / "no" / "f.csv"),
                       "predict", "the folder", "does not exist")
    assert_usage_error(run(capsys, "evaluate", folder, "--plots", afile), "evaluate",
                       "--plots", "is a file; it must be a folder")
    assert_usage_error(run(capsys, "inspect", folder, "--out", afile), "inspect",
                       "--out", "is a file; it must be a folder")
    assert list(tmp_path.iterdir()) == [afile]  # nothing written, no temporary file left


def test_evaluate_names_the_models_task_for_a_builtin_of_the_other_kind(csv_model,
                                                                       digits_model, capsys):
    """evaluate has no --task: the hint names the model's task and the right data sets."""
    code, _, err = run(capsys, "evaluate", csv_model[0], "--data", "digits")
    assert code == 2 and "this model is a forecaster and 'digits' is a classification" in err
    assert "--task" not in err
    code, _, err = run(capsys, "evaluate", digits_model[0], "--data", "airline")
    assert code == 2 and "this model is a classifier and 'airline' is a series" in err


def test_test_labels_never_seen_in_training_are_named():
    from rnnkit.jobs import classification_metrics

    with pytest.raises(ValueError, match=r"none of the 2 test labels \('c', 'd'\) is a class "
                                         r"the model was trained on \('a', 'b'\)"):
        classification_metrics(["c", "d"], ["a", "b"], ["a", "b"])
    m = classification_metrics(["a", "d"], ["a", "b"], ["a", "b"])  # some known: counted
    assert m["accuracy"] == 0.5
