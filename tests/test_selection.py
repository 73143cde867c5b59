"""Cross-validated hidden-size search: local joblib workers and a real Dask LocalCluster."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the search needs scikit-learn (pip install scikit-learn)")

from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.pipeline import Pipeline

from rnnkit.estimators import RNNClassifier, RNNForecaster, SequenceScaler
from rnnkit.selection import dask_client, format_table, search_hidden_size, summarize_search

SIZES = [2, 4, 8, 16]


def task(n=48, T=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, 1))
    return X, (X.sum(axis=(1, 2)) > 0).astype(int)


def estimator():
    return RNNClassifier(max_iter=3, learning_rate_init=0.02, random_state=0)


@pytest.fixture(scope="module")
def sequential():
    """The reference: the same search, one fit after another in this process."""
    X, y = task()
    return search_hidden_size(estimator(), X, y, hidden_sizes=SIZES, cv=3, n_jobs=1)


def scores(search):
    return np.array([search.cv_results_[f"split{k}_test_score"] for k in range(3)])


def test_search_result_shape(sequential):
    assert isinstance(sequential, GridSearchCV)
    assert [p["hidden_size"] for p in sequential.cv_results_["params"]] == SIZES
    assert sequential.best_params_["hidden_size"] in SIZES
    assert sequential.best_estimator_.hidden_size == sequential.best_params_["hidden_size"]


def test_parallel_folds_with_joblib_give_the_same_scores(sequential):
    X, y = task()
    parallel = search_hidden_size(estimator(), X, y, hidden_sizes=SIZES, cv=3, n_jobs=2)
    np.testing.assert_array_equal(scores(parallel), scores(sequential))


def test_search_on_a_dask_local_cluster(sequential):
    distributed = pytest.importorskip("distributed", reason="needs dask[distributed]")
    X, y = task()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with distributed.get_task_stream(client) as stream:
            on_dask = search_hidden_size(estimator(), X, y, hidden_sizes=SIZES, cv=3,
                                         scheduler=client)
        # the same search through the scheduler's address, as `rnnkit cv --dask ADDRESS` does
        by_address = search_hidden_size(estimator(), X, y, hidden_sizes=SIZES, cv=3,
                                        scheduler=cluster.scheduler_address)
        assert client.status == "running"  # a Client given by the caller stays open
        cluster_workers = set(client.scheduler_info()["workers"])
    # the fits ran as tasks on the cluster's workers (joblib may batch several per task)
    assert len(stream.data) >= 2
    assert {task["worker"] for task in stream.data} <= cluster_workers
    np.testing.assert_array_equal(scores(on_dask), scores(sequential))
    np.testing.assert_array_equal(scores(by_address), scores(sequential))


def test_more_settings_and_pipeline_prefix():
    X, y = task()
    pipe = Pipeline([("scale", SequenceScaler()), ("rnn", estimator())])
    search = search_hidden_size(pipe, X, y, hidden_sizes=[2, 4],
                                param_grid={"cell": ["lstm", "gru"]}, cv=2)
    names = {tuple(sorted(p)) for p in search.cv_results_["params"]}
    assert names == {("rnn__cell", "rnn__hidden_size")}
    assert len(search.cv_results_["params"]) == 4


def test_forecaster_gets_time_ordered_folds():
    y = np.sin(np.arange(60.0) / 3)
    search = search_hidden_size(RNNForecaster(window=4, max_iter=2, random_state=0), y,
                                hidden_sizes=[2, 4], cv=3)
    assert isinstance(search.cv, TimeSeriesSplit) and search.n_splits_ == 3


def test_summary_and_table(sequential):
    rows = summarize_search(sequential)
    assert [r["rank"] for r in rows] == sorted(r["rank"] for r in rows)
    assert rows[0]["params"] == sequential.best_params_
    assert rows[0]["mean_score"] == pytest.approx(sequential.best_score_)
    assert len(rows[0]["fold_scores"]) == 3
    table = format_table(rows, "accuracy").splitlines()
    assert table[0].split()[:3] == ["rank", "hidden_size", "mean"]
    assert len(table) == 1 + len(SIZES)
    assert table[1].split()[1] == str(sequential.best_params_["hidden_size"])


def test_bad_grids():
    X, y = task()
    with pytest.raises(ValueError, match="positive integers"):
        search_hidden_size(estimator(), X, y, hidden_sizes=[8, 0])
    with pytest.raises(ValueError, match="grid is empty"):
        search_hidden_size(estimator(), X, y, hidden_sizes=[])
    with pytest.raises(TypeError, match="scheduler must be"), dask_client(42):
        pass
