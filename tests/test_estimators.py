"""scikit-learn estimators: conformance checks, meta-estimators, learning, variable length,
reproducibility, errors, leakage and model files."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the estimators need scikit-learn (pip install scikit-learn)")

from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import (
    GridSearchCV,
    TimeSeriesSplit,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from rnnkit.estimators import (
    RNNClassifier,
    RNNForecaster,
    RNNRegressor,
    SequenceScaler,
    load_estimator,
)
from rnnkit.io import ModelFileError

# ------------------------------------------------------------- estimator checks
# 2-D X holds univariate sequences (n_samples, n_timesteps): its columns are time steps, so
# n_features_in_ counts features per step (1), and another number of columns at predict is
# another sequence length, which is valid (test_predict_accepts_other_lengths; the per-step
# feature count is checked in test_feature_count_mismatch_is_an_error)
COLUMNS_ARE_STEPS = ("2-D X columns are time steps, not features: n_features_in_ counts "
                     "features per step and other sequence lengths are valid at predict")
# the forecaster's own tests cover its fit, predict, errors and leakage
FORECASTER_PROTOCOL = ("sktime-style forecaster: fit(y, X=None) takes a series, "
                       "predict(horizon, X=None) forecasts after it; no predict on sample rows")

CHECKED = [
    RNNClassifier(cell="gru", hidden_size=8, max_iter=50, learning_rate_init=0.02,
                  random_state=0),
    RNNRegressor(cell="gru", hidden_size=8, max_iter=50, learning_rate_init=0.02,
                 random_state=0),
    # the options: 2 layers with dropout, bidirectional, early stopping (5 epochs)
    RNNClassifier(hidden_size=4, num_layers=2, dropout=0.1, bidirectional=True,
                  early_stopping=True, max_iter=5, random_state=0),
    RNNRegressor(cell="rnn", hidden_size=4, bidirectional=True, early_stopping=True,
                 max_iter=5, random_state=0),
    RNNForecaster(window=2, hidden_size=4, max_iter=5, random_state=0),
    SequenceScaler(),
]


def expected_failed_checks(estimator):
    """Each check that cannot apply, with the reason."""
    if isinstance(estimator, RNNForecaster):
        return {name: FORECASTER_PROTOCOL for name in (
            "check_fit_score_takes_y", "check_n_features_in", "check_n_features_in_after_fitting",
            "check_estimators_dtypes", "check_dtype_object", "check_estimators_nan_inf",
            "check_estimators_pickle", "check_f_contiguous_array_estimator",
            "check_methods_sample_order_invariance", "check_methods_subset_invariance",
            "check_dict_unchanged", "check_fit_idempotent", "check_fit2d_predict1d")} | {
            "check_fit2d_1sample": "a one-observation series is too short for any window; "
                                   "fit says so in time-series terms (test_forecaster_errors)",
            "check_fit1d": "a 1-D array is a forecaster's natural input: one series",
        }
    out = {"check_n_features_in": COLUMNS_ARE_STEPS,
           "check_n_features_in_after_fitting": COLUMNS_ARE_STEPS}
    if isinstance(estimator, RNNClassifier):
        out["check_classifiers_train"] = (  # learning: test_classifier_learns
            "wants an error for another number of columns at predict; " + COLUMNS_ARE_STEPS)
    if isinstance(estimator, RNNRegressor) and estimator.max_iter < 50:
        out["check_regressors_train"] = (
            "this instance covers options in 5 epochs, too few for R^2 > 0.5; the 50-epoch "
            "instance passes this check")
    if isinstance(estimator, SequenceScaler):
        reason = ("a list of sequences (lengths may differ) is transformed into a list, which "
                  "has no .shape; and " + COLUMNS_ARE_STEPS)
        out["check_transformer_general"] = reason
        out["check_transformer_data_not_an_array"] = reason
    return out


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# ----------------------------------------------------------------------- data
def sum_task(n=120, T=6, D=1, seed=0):
    """Sequences and the label 'is the sum of the first feature positive?'."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, D))
    return X, (X[:, :, 0].sum(axis=1) > 0).astype(int)


def variable_task(n=60, D=2, seed=1):
    """A list of sequences of 2..9 steps; label: is the last step's first feature positive?"""
    rng = np.random.default_rng(seed)
    X = [rng.normal(size=(int(t), D)) for t in rng.integers(2, 10, size=n)]
    return X, np.array([int(s[-1, 0] > 0) for s in X])


def fast(cls, **kw):
    params = {"hidden_size": 8, "max_iter": 3, "learning_rate_init": 0.02, "random_state": 0}
    params.update(kw)
    return cls(**params)


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# ------------------------------------------------------------------ learning
def test_classifier_learns():
    X, y = sum_task(n=300)
    clf = RNNClassifier(hidden_size=8, max_iter=40, learning_rate_init=0.02,
                        random_state=0).fit(X[:200], y[:200])
    assert clf.score(X[200:], y[200:]) > 0.9  # chance is about 0.5
    assert clf.loss_curve_[-1] < 0.5 * clf.loss_curve_[0]
    assert clf.predict_proba(X[200:]).shape == (100, 2)
    np.testing.assert_allclose(clf.predict_proba(X[200:]).sum(axis=1), 1.0, rtol=1e-12)


def test_regressor_learns_vector_targets():
    X, _ = sum_task(n=300, D=2)
    Y = np.stack([X[:, :, 0].mean(axis=1), 100.0 + 10.0 * X[:, -1, 1]], axis=1)  # (N, 2)
    reg = RNNRegressor(hidden_size=16, max_iter=60, learning_rate_init=0.02,
                       random_state=0).fit(X[:200], Y[:200])
    pred = reg.predict(X[200:])
    assert pred.shape == (100, 2)
    assert reg.score(X[200:], Y[200:]) > 0.8
    # the target scaler maps back to the units of y (mean about 100 in column 1)
    assert abs(pred[:, 1].mean() - 100.0) < 3.0


def test_forecaster_learns_a_season():
    t = np.arange(132)
    y = 10.0 + 3.0 * np.sin(2 * np.pi * t / 12)
    f = RNNForecaster(window=12, hidden_size=16, max_iter=60, learning_rate_init=0.02,
                      random_state=0).fit(y[:120])
    pred = f.predict(12)
    naive_mse = np.mean((y[120:] - y[119]) ** 2)  # repeat the last value
    assert np.mean((pred - y[120:]) ** 2) < 0.1 * naive_mse
    assert f.score(y[120:]) > 0.9


# ------------------------------------------------------ sklearn meta-estimators
def test_clone_keeps_params_and_drops_fit():
    clf = fast(RNNClassifier, cell="gru", bidirectional=True)
    X, y = sum_task(n=30)
    clf.fit(X, y)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    assert not hasattr(twin, "model_")


def test_pipeline_with_scaling():
    X, y = sum_task(n=80, T=5)
    X2 = 50.0 + 20.0 * X[:, :, 0]  # 2-D: univariate sequences in odd units
    pipe = Pipeline([("scale", StandardScaler()), ("rnn", fast(RNNClassifier, max_iter=20))])
    pipe.fit(X2, y)
    assert pipe.score(X2, y) > 0.8
    seq_pipe = Pipeline([("scale", SequenceScaler()), ("rnn", fast(RNNClassifier))])
    assert seq_pipe.fit(X2[:, :, None], y).predict(X2[:3, :, None]).shape == (3,)


def test_grid_search_over_hidden_size():
    X, y = sum_task(n=60)
    search = GridSearchCV(fast(RNNClassifier), {"hidden_size": [2, 4, 8, 16]}, cv=3)
    search.fit(X, y)
    assert search.best_params_["hidden_size"] in (2, 4, 8, 16)
    assert len(search.cv_results_["mean_test_score"]) == 4
    assert search.best_estimator_.model_.hidden_size == search.best_params_["hidden_size"]


def test_cross_val_score_on_variable_length_lists():
    X, y = variable_task()
    scores = cross_val_score(fast(RNNClassifier), X, y, cv=3)
    assert scores.shape == (3,) and np.all((0 <= scores) & (scores <= 1))


def test_time_series_split_with_forecaster():
    y = np.sin(np.arange(80) * 2 * np.pi / 10)
    scores = cross_val_score(fast(RNNForecaster, window=5), y, cv=TimeSeriesSplit(n_splits=3))
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


# ----------------------------------------------------------- variable length
@pytest.mark.parametrize("cell,bidirectional", [("lstm", False), ("gru", True), ("rnn", True)])
def test_variable_length_equals_one_by_one(cell, bidirectional):
    X, y = variable_task()
    clf = fast(RNNClassifier, cell=cell, bidirectional=bidirectional, num_layers=2).fit(X, y)
    together = clf.predict_proba(X)
    alone = np.concatenate([clf.predict_proba(s[None]) for s in X])  # (1, T_i, D) each
    # equal to float32 round-off, not bit for bit: with numba installed a batch of one and
    # the batch of 60 can take different LSTM loops (rnnkit.cells.compiled); a padded
    # step leaking into a sequence would move the probabilities by far more than 1e-6
    np.testing.assert_allclose(together, alone, rtol=1e-6, atol=1e-7)


def test_padded_array_with_lengths_equals_list():
    X, y = variable_task()
    lengths = np.array([len(s) for s in X])
    padded = np.full((len(X), lengths.max(), 2), np.nan)  # NaN padding never reaches the model
    for i, s in enumerate(X):
        padded[i, : len(s)] = s
    a = fast(RNNRegressor).fit(X, y.astype(float))
    b = fast(RNNRegressor).fit(padded, y.astype(float), lengths=lengths)
    for k in a.model_.params:
        np.testing.assert_array_equal(a.model_.params[k], b.model_.params[k], err_msg=k)
    np.testing.assert_array_equal(a.predict(X), b.predict(padded, lengths=lengths))


def test_predict_accepts_other_lengths():
    X, y = sum_task(n=40, T=6)
    clf = fast(RNNClassifier).fit(X, y)
    assert clf.predict(X[:, :3]).shape == (40,)  # 3 steps instead of 6
    assert clf.predict(X[:, :, 0]).shape == (40,)  # 2-D: univariate sequences


def test_layouts_agree():
    X, y = sum_task(n=40, T=5)
    a = fast(RNNClassifier).fit(X, y)  # (N, T, 1)
    b = fast(RNNClassifier).fit(X[:, :, 0], y)  # (N, T)
    c = fast(RNNClassifier).fit(list(X), y)  # list of (T, 1)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X[:, :, 0]))
    np.testing.assert_array_equal(a.predict_proba(X), c.predict_proba(list(X)))


# ----------------------------------------------------------- reproducibility
@pytest.mark.parametrize("cls", [RNNClassifier, RNNRegressor])
def test_same_random_state_same_bits(cls):
    X, y = sum_task(n=50)
    kw = {"dropout": 0.2, "num_layers": 2, "early_stopping": True, "max_iter": 4}
    a = fast(cls, **kw).fit(X, y)
    b = fast(cls, **kw).fit(X, y)
    c = fast(cls, random_state=1, **kw).fit(X, y)
    assert a.loss_curve_ == b.loss_curve_
    assert a.validation_scores_ == b.validation_scores_
    for k in a.model_.params:
        np.testing.assert_array_equal(a.model_.params[k], b.model_.params[k], err_msg=k)
    assert a.loss_curve_ != c.loss_curve_


def test_no_global_numpy_random_state_is_used():
    X, y = sum_task(n=30)
    before = np.random.get_state()[1].copy()
    fast(RNNClassifier, random_state=None).fit(X, y)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


# ------------------------------------------------------------ regularization
def test_early_stopping_records_curves_and_stops():
    X, y = sum_task(n=120)
    clf = fast(RNNClassifier, max_iter=200, early_stopping=True, n_iter_no_change=3,
               learning_rate_init=0.05).fit(X, y)
    assert clf.n_iter_ < 200
    assert len(clf.loss_curve_) == len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.best_loss_ is None


def test_no_early_stopping_stops_on_training_loss():
    X, y = sum_task(n=60)
    clf = fast(RNNClassifier, max_iter=500, tol=10.0, n_iter_no_change=2).fit(X, y)
    # the first epoch improves on an infinite loss; the next three do not improve by tol=10,
    # and training stops when that count exceeds n_iter_no_change (MLPClassifier's rule)
    assert clf.n_iter_ == 4
    assert clf.validation_scores_ is None
    assert clf.best_loss_ == min(clf.loss_curve_)


def test_weight_decay_shrinks_weights():
    X, y = sum_task(n=60)
    small = fast(RNNClassifier, alpha=0.0, max_iter=10).fit(X, y)
    decayed = fast(RNNClassifier, alpha=1.0, max_iter=10).fit(X, y)

    def norm(m):
        return sum(float(np.sum(p.astype(np.float64) ** 2)) for p in m.model_.params.values())

    assert norm(decayed) < 0.5 * norm(small)


def test_warm_start_continues():
    X, y = sum_task(n=40)
    clf = fast(RNNClassifier, warm_start=True).fit(X, y)
    first = {k: v.copy() for k, v in clf.model_.params.items()}
    clf.fit(X, y)
    assert clf.n_iter_ == 6 and len(clf.loss_curve_) == 6
    assert any(not np.array_equal(first[k], clf.model_.params[k]) for k in first)
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(X, y + 5)


def test_convergence_warning_at_max_iter():
    X, y = sum_task(n=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning, match="maximum iterations"):
            fast(RNNClassifier, max_iter=1).fit(X, y)


# --------------------------------------------------------------------- errors
def test_nan_in_X_is_an_error():
    X, y = sum_task(n=20)
    X[3, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values \(first in sequence 3, step 2"):
        fast(RNNClassifier).fit(X, y)
    clf = fast(RNNClassifier).fit(X[:3], y[:3] * 0 + np.arange(3) % 2)
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(X)
    seqs = [np.ones((3, 1)), np.array([[1.0], [np.inf]])]
    with pytest.raises(ValueError, match=r"X\[1\] contains NaN or infinite values"):
        clf.predict(seqs)


@pytest.mark.parametrize("shape", [(10,), (2, 3, 4, 1)])
def test_wrong_rank_is_an_error(shape):
    with pytest.raises(ValueError, match=f"Expected X to be 3-D .* got a {len(shape)}-D array"):
        fast(RNNClassifier).fit(np.zeros(shape), np.arange(shape[0]) % 2)


def test_feature_count_mismatch_is_an_error():
    X, y = sum_task(n=20, D=2)
    clf = fast(RNNClassifier).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features per time step, but RNNClassifier is "
                                         "expecting 2"):
        clf.predict(np.zeros((4, 6, 3)))
    with pytest.raises(ValueError, match=r"X\[1\] has 3 features per step, but X\[0\] has 2"):
        clf.predict([np.zeros((2, 2)), np.zeros((2, 3))])


def test_bad_sequences_and_lengths():
    clf = fast(RNNClassifier)
    with pytest.raises(ValueError, match=r"X\[1\] is an empty sequence"):
        clf.fit([np.ones((2, 1)), np.ones((0, 1))], [0, 1])
    with pytest.raises(ValueError, match="X is empty"):
        clf.fit([], [])
    with pytest.raises(TypeError, match="lengths is for a padded array"):
        clf.fit([np.ones((2, 1)), np.ones((3, 1))], [0, 1], lengths=[2, 3])
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 4\]"):
        clf.fit(np.ones((2, 4)), [0, 1], lengths=[5, 1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.fit(np.ones((4, 3)), [1, 1, 1, 1])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.fit(np.ones((4, 3)), [0, 1, 0])


@pytest.mark.parametrize("param,value,error", [
    ("cell", "transformer", ValueError), ("hidden_size", 0, ValueError),
    ("hidden_size", 2.5, TypeError), ("learning_rate_init", 0.0, ValueError),
    ("validation_fraction", 1.0, ValueError), ("alpha", -1.0, ValueError),
    ("dtype", "float16", ValueError), ("early_stopping", "yes", TypeError),
])
def test_bad_hyperparameters_fail_in_fit(param, value, error):
    clf = fast(RNNClassifier, **{param: value})  # __init__ only stores
    X, y = sum_task(n=10)
    with pytest.raises(error, match=param):
        clf.fit(X, y)


def test_dropout_needs_stacked_layers():
    X, y = sum_task(n=10)
    with pytest.raises(ValueError, match="needs num_layers > 1"):
        fast(RNNClassifier, dropout=0.3).fit(X, y)


def test_unseen_labels_count_as_errors_in_score():
    X, y = sum_task(n=40)
    clf = fast(RNNClassifier).fit(X, y)
    pred = clf.predict(X)
    y_other = np.where(np.arange(40) < 10, 7, pred)  # label 7 was never seen: 10 errors
    assert clf.score(X, y_other) == pytest.approx(30 / 40)


def test_forecaster_errors():
    y = np.arange(20.0)
    with pytest.raises(ValueError, match=r"too short for the window: window \(30\) \+ horizon"):
        fast(RNNForecaster, window=30).fit(y)
    with pytest.raises(ValueError, match="y has 1"):
        fast(RNNForecaster, window=2).fit(y[:1])
    bad = y.copy()
    bad[4] = np.nan
    with pytest.raises(ValueError, match=r"y contains NaN or infinite values \(first at time "
                                         r"index 4\)"):
        fast(RNNForecaster, window=3).fit(bad)
    with pytest.raises(ValueError, match="must be a series: 1-D"):
        fast(RNNForecaster, window=3).fit(np.zeros((20, 2, 2)))
    with pytest.raises(ValueError, match="too short for early_stopping"):
        fast(RNNForecaster, window=15, early_stopping=True, validation_fraction=0.3).fit(y)
    f = fast(RNNForecaster, window=3).fit(y, X=np.arange(20.0)[:, None])
    with pytest.raises(ValueError, match=r"predict needs X for the 4 forecast step\(s\)"):
        f.predict(4)
    with pytest.raises(ValueError, match=r"shape \(4, 1\), got \(3, 1\)"):
        f.predict(4, X=np.zeros((3, 1)))
    d = fast(RNNForecaster, window=3, horizon=2, strategy="direct").fit(y)
    with pytest.raises(ValueError, match="fitted for horizon=2; cannot forecast 5"):
        d.predict(5)
    with pytest.raises(ValueError, match="strategy must be one of"):
        fast(RNNForecaster, strategy="dirrect").fit(y)


# ----------------------------------------------------------------- forecaster
def test_forecaster_strategies_and_exogenous_inputs():
    t = np.arange(60.0)
    y = np.stack([np.sin(t / 3), np.cos(t / 3)], axis=1)  # two series (60, 2)
    X = (t % 7)[:, None]
    rec = fast(RNNForecaster, window=4).fit(y[:50], X=X[:50])
    assert rec.n_features_in_ == 3 and rec.n_series_ == 2 and rec.n_exog_ == 1
    assert rec.predict(10, X=X[50:]).shape == (10, 2)
    direct = fast(RNNForecaster, window=4, horizon=5, strategy="direct").fit(y[:50, 0])
    assert direct.predict().shape == (5,) and direct.predict(3).shape == (3,)
    np.testing.assert_array_equal(direct.predict(3), direct.predict(5)[:3])
    assert direct.model_.output_size == 5


def test_forecaster_update_moves_the_context():
    y = np.sin(np.arange(40.0) / 2)
    f = fast(RNNForecaster, window=4).fit(y[:30])
    first = f.predict(1)
    f.update(y[30:32])
    assert f.n_observations_ == 32
    np.testing.assert_array_equal(f.y_last_[:, 0], y[28:32])
    # after the update, the next forecast reads the window that ends with the new observations
    np.testing.assert_array_equal(f.predict(1), f.predict_windows(y[None, 28:32, None])[0, 0])
    assert not np.array_equal(first, f.predict(1))


def test_recursive_forecast_feeds_predictions_back():
    y = np.sin(np.arange(40.0) / 2)
    f = fast(RNNForecaster, window=4).fit(y)
    two = f.predict(2)
    step1 = f.predict_windows(y[None, -4:, None])[0, 0, 0]
    step2 = f.predict_windows(np.append(y[-3:], step1)[None, :, None])[0, 0, 0]
    np.testing.assert_allclose(two, [step1, step2], rtol=1e-6)


# ------------------------------------------------------------------- leakage
def test_time_series_folds_never_see_the_future():
    """Changing the data after a fold's training part leaves that fold's model identical."""
    y = np.sin(np.arange(90.0) / 4) + 0.1 * np.arange(90.0) / 90
    cv = TimeSeriesSplit(n_splits=3)
    first_train_end = next(cv.split(y))[0][-1] + 1
    y_changed = y.copy()
    y_changed[first_train_end:] = 100.0 + y_changed[first_train_end:] * 7  # a different future
    est = fast(RNNForecaster, window=6)
    a = cross_validate(est, y, cv=cv, return_estimator=True)["estimator"][0]
    b = cross_validate(est, y_changed, cv=cv, return_estimator=True)["estimator"][0]
    np.testing.assert_array_equal(a.y_scaler_.mean_, b.y_scaler_.mean_)
    np.testing.assert_array_equal(a.y_scaler_.scale_, b.y_scaler_.scale_)
    for k in a.model_.params:
        np.testing.assert_array_equal(a.model_.params[k], b.model_.params[k], err_msg=k)


def test_scaler_never_sees_the_validation_tail():
    y = np.sin(np.arange(100.0) / 4)
    changed = y.copy()
    changed[90:] += 50.0  # the last 10% is early stopping's validation part
    kw = {"window": 5, "early_stopping": True, "validation_fraction": 0.1}
    a = fast(RNNForecaster, **kw).fit(y)
    b = fast(RNNForecaster, **kw).fit(changed)
    np.testing.assert_array_equal(a.y_scaler_.mean_, b.y_scaler_.mean_)
    np.testing.assert_array_equal(a.y_scaler_.scale_, b.y_scaler_.scale_)
    assert a.y_scaler_.mean_[0] == pytest.approx(y[:90].mean())
    assert a.validation_scores_ != b.validation_scores_  # the tail is used, for validation only


def test_sequence_scaler_in_cross_validation_fits_on_training_folds():
    X, y = sum_task(n=60)
    pipe = Pipeline([("scale", SequenceScaler()), ("rnn", fast(RNNClassifier))])
    res = cross_validate(pipe, X, y, cv=3, return_estimator=True, return_indices=True)
    scaler = res["estimator"][0].named_steps["scale"]
    train = res["indices"]["train"][0]
    np.testing.assert_allclose(scaler.mean_, X[train].reshape(-1, 1).mean(axis=0))


# ---------------------------------------------------------------------- files
def test_save_load_classifier_with_string_labels(tmp_path):
    X, y = sum_task(n=40)
    labels = np.array(["neg", "pos"])[y]
    clf = fast(RNNClassifier, cell="gru", bidirectional=True).fit(X, labels)
    folder = clf.save(tmp_path / "clf")
    again = RNNClassifier.load(folder)
    assert again.get_params() == clf.get_params()
    np.testing.assert_array_equal(again.classes_, clf.classes_)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert again.loss_curve_ == clf.loss_curve_
    assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors"]  # no pickle
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        meta = json.load(f)["metadata"]
    assert meta["estimator"] == "RNNClassifier"
    assert meta["fitted"]["classes_"] == {"dtype": "<U3", "values": ["neg", "pos"]}


def test_save_load_regressor_and_forecaster(tmp_path):
    X, _ = sum_task(n=30)
    Y = np.stack([X.sum(axis=(1, 2)), X[:, -1, 0]], axis=1)
    reg = fast(RNNRegressor).fit(X, Y)
    again = load_estimator(reg.save(tmp_path / "reg"))
    assert isinstance(again, RNNRegressor)
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))
    y = np.sin(np.arange(50.0) / 3)
    ex = np.arange(50.0)[:, None] % 5
    f = fast(RNNForecaster, window=4, scaler="minmax").fit(y, X=ex)
    g = RNNForecaster.load(f.save(tmp_path / "fc"))
    future = np.arange(50.0, 56.0)[:, None] % 5
    np.testing.assert_array_equal(g.predict(6, X=future), f.predict(6, X=future))
    assert g.window == 4 and g.n_exog_ == 1
    with pytest.raises(ModelFileError, match="holds a 'RNNForecaster', not a RNNClassifier"):
        RNNClassifier.load(tmp_path / "fc")


def test_save_before_fit_is_an_error(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        fast(RNNClassifier).save(tmp_path / "m")
