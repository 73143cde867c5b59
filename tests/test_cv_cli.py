"""``rnnkit cv``, called in process: the table, the chosen setting, files, Dask, bad input."""

from __future__ import annotations

import csv
import json
import sys
import types

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="rnnkit cv needs scikit-learn (pip install scikit-learn)")

from rnnkit.cli import main

TINY = ["--max-samples", "120", "--max-iter", "2", "--folds", "2", "--batch-size", "16"]


def run(capsys, *argv):
    """(exit status, stdout, stderr) of ``rnnkit ARGV``; argparse's SystemExit gives the status."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(result, *needles):
    """Exit 2, exactly one line on stderr, 'rnnkit cv: error: ...', no traceback."""
    code, _out, err = result
    assert code == 2, f"exit status {code}, stderr {err!r}"
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {err!r}"
    assert lines[0].startswith("rnnkit cv: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


def table_rows(out):
    """The table's data rows: lines that start with a rank."""
    return [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]


def test_digits_search_over_four_sizes(capsys, tmp_path):
    js, cs = tmp_path / "cv.json", tmp_path / "cv.csv"
    code, out, err = run(capsys, "cv", "--data", "digits", "--hidden-sizes", "4,8,16,32",
                         "--n-jobs", "2", "--json", js, "--csv", cs, *TINY)
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    assert lines[0].startswith("cross-validated search on digits")
    assert "4 setting(s) x 2 folds on 2 local job(s)" in lines[0]
    assert lines[1].split()[:4] == ["rank", "hidden_size", "mean", "accuracy"]
    rows = table_rows(out)
    assert sorted(int(r[1]) for r in rows) == [4, 8, 16, 32]
    assert [int(r[0]) for r in rows] == sorted(int(r[0]) for r in rows)
    chosen = [line for line in lines if line.startswith("chosen: ")]
    assert chosen == [line for line in lines[-1:]]
    assert chosen[0].startswith(f"chosen: hidden_size={rows[0][1]} (mean accuracy {rows[0][2]}")
    results = json.loads(js.read_text())
    assert results["chosen"] == {"hidden_size": int(rows[0][1])}
    assert [r["params"]["hidden_size"] for r in results["results"]] == [int(r[1]) for r in rows]
    assert all(len(r["fold_scores"]) == 2 for r in results["results"])
    with open(cs, newline="") as f:
        table = list(csv.DictReader(f))
    assert [int(r["hidden_size"]) for r in table] == [int(r[1]) for r in rows]
    assert set(table[0]) >= {"rank", "mean_score", "std_score", "fold0", "fold1"}


def test_cells_and_layers_on_a_dask_local_cluster(capsys):
    code, out, err = run(capsys, "cv", "--hidden-sizes", "4,8", "--cells", "lstm,gru",
                         "--num-layers", "1", "--dask", "local", "--n-jobs", "2", *TINY)
    assert code == 0, err
    assert "4 setting(s) x 2 folds on Dask (local)" in out
    rows = table_rows(out)
    assert sorted((r[1], r[2]) for r in rows) == [("gru", "4"), ("gru", "8"),
                                                   ("lstm", "4"), ("lstm", "8")]
    assert out.splitlines()[-1].startswith("chosen: cell=")


def test_npz_with_padded_variable_length_sequences(capsys, tmp_path):
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 7, size=40)
    X = np.zeros((40, 6, 2))
    for i, n in enumerate(lengths):
        X[i, :n] = rng.normal(size=(n, 2))
    y = (X[np.arange(40), lengths - 1, 0] > 0).astype(int)
    path = tmp_path / "seqs.npz"
    np.savez(path, X=X, y=y, lengths=lengths)
    code, out, err = run(capsys, "cv", "--data", path, "--hidden-sizes", "2,4", "--folds", "2",
                         "--max-iter", "2")
    assert code == 0, err
    assert "40 sequences of 2-6 steps x 2 features, 2 classes" in out
    assert len(table_rows(out)) == 2


def test_npz_series_is_forecast_with_time_ordered_folds(capsys, tmp_path):
    path = tmp_path / "series.npz"
    np.savez(path, y=np.sin(np.arange(80.0) / 3))
    code, out, err = run(capsys, "cv", "--data", path, "--hidden-sizes", "2,4", "--folds", "2",
                         "--max-iter", "2", "--window", "5")
    assert code == 0, err
    assert "a series of 80 observations; task forecast" in out
    assert "R^2 of the forecast" in out


def test_regression_task_from_float_labels(capsys, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    path = tmp_path / "reg.npz"
    np.savez(path, X=X, y=X.sum(axis=1))
    code, out, err = run(capsys, "cv", "--data", path, "--hidden-sizes", "2,4", "--folds", "2",
                         "--max-iter", "2")
    assert code == 0, err
    assert "task regression" in out and "mean R^2" in out


def test_datasets_hook_is_used(capsys, monkeypatch):
    """When rnnkit.data.datasets has load(name), named data come from it (split respected)."""
    rng = np.random.default_rng(0)

    class FakeDataset:
        description = "a fake set"

        @property
        def X_train(self):
            return [rng.normal(size=(int(t), 3)) for t in rng.integers(2, 6, size=30)]

        @property
        def y_train(self):
            return np.arange(30) % 2

    fake = types.ModuleType("rnnkit.data.datasets")
    fake.load = lambda name: FakeDataset()
    monkeypatch.setitem(sys.modules, "rnnkit.data.datasets", fake)
    code, out, err = run(capsys, "cv", "--data", "fake", "--hidden-sizes", "2,4", "--folds",
                         "2", "--max-iter", "2")
    assert code == 0, err
    assert out.startswith("cross-validated search on fake (training part): a fake set: "
                          "30 sequences of 2-5 steps x 3 features, 2 classes")


def test_help_explains(capsys):
    code, out, _ = run(capsys, "cv", "--help")
    assert code == 0
    for needle in ("--hidden-sizes", "--dask", "LocalCluster", "--folds", "--n-jobs", "digits",
                   ".npz", "allow_pickle=False"):
        assert needle in out


@pytest.mark.parametrize("argv,needles", [
    (["--hidden-sizes", "8,x"], ["--hidden-sizes", "'x'"]),
    (["--hidden-sizes", "0,8"], ["--hidden-sizes", ">= 1"]),
    (["--hidden-sizes", "8,,16"], ["--hidden-sizes", "'8,,16'", "an empty item"]),
    (["--hidden-sizes", "8,16,"], ["--hidden-sizes", "an empty item"]),
    (["--num-layers", "1,,2"], ["--num-layers", "an empty item"]),
    (["--folds", "1"], ["--folds must be >= 2"]),
    (["--cells", "lstm,transformer"], ["--cells"]),
    (["--n-jobs", "0"], ["--n-jobs"]),
    (["--lr", "-1"], ["--lr must be > 0"]),
    (["--data", "missing.npz"], ["missing.npz", "no such file"]),
    (["--json", "/no/such/folder/cv.json"], ["--json", "does not exist"]),
    (["--scoring", "nosuch"], ["--scoring 'nosuch' is not a scikit-learn scorer",
                               "get_scorer_names"]),
    (["--scoring", "accuracyy"], ["closest: accuracy"]),
    (["--folds", "5000"], ["--folds 5000 is more than the 1797 sequences"]),
])
def test_bad_arguments_exit_2_with_one_line(capsys, argv, needles):
    assert_usage_error(run(capsys, "cv", *argv), *needles)


def test_bad_files_exit_2_with_one_line(capsys, tmp_path):
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, X=np.array([np.zeros((2, 1)), np.zeros((3, 1))], dtype=object),
             y=np.array([0, 1]))
    assert_usage_error(run(capsys, "cv", "--data", pickled), "allow_pickle")
    no_y = tmp_path / "no_y.npz"
    np.savez(no_y, X=np.zeros((4, 3)))
    assert_usage_error(run(capsys, "cv", "--data", no_y), "needs an array named y")
    nan = tmp_path / "nan.npz"
    X = np.zeros((10, 3))
    X[2, 1] = np.nan
    np.savez(nan, X=X, y=np.arange(10) % 2)
    assert_usage_error(run(capsys, "cv", "--data", nan, "--folds", "2"), "NaN")
    short = tmp_path / "short.npz"
    np.savez(short, y=np.arange(10.0))
    assert_usage_error(run(capsys, "cv", "--data", short, "--window", "12", "--folds", "2"),
                       "too short for the window")
    assert_usage_error(run(capsys, "cv", "--data", short, "--folds", "10"),
                       "--folds 10 needs a series of more than 10 observations; this one has 10")
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    assert_usage_error(run(capsys, "cv", "--data", text), "not an .npz file",
                       "starts with bytes b'hello'")
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    assert_usage_error(run(capsys, "cv", "--data", npy), "starts with an .npy array")
    csv_file = tmp_path / "series.csv"
    csv_file.write_text("y\n1\n2\n3\n")
    assert_usage_error(run(capsys, "cv", "--data", csv_file), "cv reads .npz files",
                       "rnnkit train --task forecast")


def test_unknown_data_set_name(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "rnnkit.data.datasets", types.ModuleType("empty"))
    assert_usage_error(run(capsys, "cv", "--data", "nosuchset"), "unknown data set 'nosuchset'")


def test_without_scikit_learn_says_which_extra_to_install(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    assert_usage_error(run(capsys, "cv", *TINY), "scikit-learn", "pip install 'rnnkit[sklearn]'")
