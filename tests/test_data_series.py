"""Windows, temporal splits and scalers of time series (rnnkit.data.series; NumPy only)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnkit.data.series import (
    MinMaxScaler,
    StandardScaler,
    check_series,
    holdout_windows,
    last_window,
    make_windows,
    scaler_from_dict,
    split_series,
)


def test_one_step_windows():
    inputs, targets = make_windows(np.arange(6.0), window=3)
    np.testing.assert_array_equal(inputs[:, :, 0], [[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    np.testing.assert_array_equal(targets[:, :, 0], [[3], [4], [5]])


def test_direct_windows_and_exogenous_inputs_of_the_next_step():
    y = np.arange(8.0)
    exog = 100.0 + np.arange(8.0)
    inputs, targets = make_windows(y, window=3, horizon=2, exog=exog)
    assert inputs.shape == (4, 3, 2) and targets.shape == (4, 2, 1)
    np.testing.assert_array_equal(inputs[0], [[0, 101], [1, 102], [2, 103]])  # [y_t, X_{t+1}]
    np.testing.assert_array_equal(targets[0, :, 0], [3, 4])
    np.testing.assert_array_equal(targets[-1, :, 0], [6, 7])


def test_windows_never_reach_past_their_targets():
    """Every input step of a window is older than every one of its targets."""
    y = np.arange(30.0)
    inputs, targets = make_windows(y, window=5, horizon=3)
    assert (inputs[:, :, 0].max(axis=1) < targets[:, :, 0].min(axis=1)).all()


def test_multivariate_series():
    y = np.stack([np.arange(10.0), -np.arange(10.0)], axis=1)
    inputs, targets = make_windows(y, window=4)
    assert inputs.shape == (6, 4, 2) and targets.shape == (6, 1, 2)


@pytest.mark.parametrize("kwargs,match", [
    ({"series": np.arange(5.0), "window": 5},
     r"too short for the window: window \(5\) \+ horizon \(1\) = 6 .* the series has 5"),
    ({"series": np.arange(5.0), "window": 3, "horizon": 3}, "too short for the window"),
    ({"series": np.array([1.0, np.nan, 3.0, 4.0]), "window": 2},
     r"contains NaN or infinite values \(first at time index 1\)"),
    ({"series": np.zeros((4, 2, 2)), "window": 2}, "must be a series: 1-D"),
    ({"series": np.arange(6.0), "window": 2, "exog": np.arange(5.0)},
     "has 5 rows, but the series has 6"),
    ({"series": np.arange(6.0), "window": 0}, "window must be >= 1"),
])
def test_window_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_windows(**kwargs)


def test_check_series_shapes_and_copy():
    a = np.arange(4.0)
    s = check_series(a)
    assert s.shape == (4, 1)
    s += 1
    assert a[0] == 0.0  # a private copy


def test_split_and_holdout_windows_use_only_the_past():
    y = np.arange(20.0)
    train, test = split_series(y, test_size=5)
    np.testing.assert_array_equal(test, [15, 16, 17, 18, 19])
    assert split_series(y, test_size=0.25)[1].shape == (5,)
    inputs, targets = holdout_windows(train, test, window=4)
    np.testing.assert_array_equal(targets[:, 0, 0], test)  # every test value is a target once
    np.testing.assert_array_equal(inputs[0, :, 0], [11, 12, 13, 14])  # the end of train
    np.testing.assert_array_equal(inputs[-1, :, 0], [14, 15, 16, 17, 18][-4:])
    with pytest.raises(ValueError, match="leaves 0 training observations"):
        split_series(y, test_size=20)
    with pytest.raises(ValueError, match="give both exog_train and exog_test"):
        holdout_windows(train, test, 4, exog_train=train)


def test_last_window_with_next_exogenous_values():
    y = np.arange(10.0)
    exog = 100.0 + np.arange(10.0)
    w = last_window(y, 3, exog=exog, next_exog=[110.0])
    np.testing.assert_array_equal(w, [[7, 108], [8, 109], [9, 110]])
    with pytest.raises(ValueError, match="next_exog is required"):
        last_window(y, 3, exog=exog)


def test_standard_scaler_fitted_on_the_training_part_only():
    train, test = split_series(np.arange(10.0), test_size=4)
    s = StandardScaler().fit(train)
    assert s.mean_[0] == pytest.approx(2.5)  # mean of 0..5, not of 0..9
    np.testing.assert_allclose(s.inverse_transform(s.transform(test)), test)
    assert s.transform(test).shape == test.shape
    const = StandardScaler().fit(np.ones(5))
    np.testing.assert_array_equal(const.scale_, [1.0])
    with pytest.raises(RuntimeError, match="not fitted yet"):
        StandardScaler().transform(train)
    with pytest.raises(ValueError, match="fitted on 1 column"):
        s.transform(np.zeros((3, 2)))


def test_minmax_scaler_and_json_round_trip():
    data = np.array([[0.0, -1.0], [10.0, 1.0]])
    m = MinMaxScaler(feature_range=(-1, 1)).fit(data)
    np.testing.assert_allclose(m.transform(data), [[-1, -1], [1, 1]])
    again = scaler_from_dict(json.loads(json.dumps(m.to_dict())))
    assert isinstance(again, MinMaxScaler) and again.feature_range == (-1.0, 1.0)
    np.testing.assert_array_equal(again.transform(data), m.transform(data))
    s = StandardScaler().fit(data)
    np.testing.assert_array_equal(scaler_from_dict(s.to_dict()).transform(data),
                                  s.transform(data))
    with pytest.raises(ValueError, match="not a saved scaler"):
        scaler_from_dict({"kind": "robust"})
    with pytest.raises(ValueError, match="min < max"):
        MinMaxScaler(feature_range=(1, 1))
