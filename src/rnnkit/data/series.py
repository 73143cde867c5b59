"""Time series for recurrent models: checks, temporal splits, sliding windows, scalers.

A forecaster learns from windows: the ``window`` most recent observations
predict the next value (one step) or the next ``horizon`` values (direct
multi-step). With exogenous inputs (known covariates such as a calendar),
step ``τ`` of a window carries ``[y_τ, X_{τ+1}]``: the observation and the
covariates of the *next* step, which are known when that step is predicted.

No leakage: fit a scaler on the training part only (:func:`split_series`
first, then :meth:`StandardScaler.fit` on the training part), build training
windows from the training part only, and test windows with
:func:`holdout_windows`, whose targets lie in the test part and whose inputs
reach back into the training part only as far as the window does.

Shape letters: n observations, k target series, m exogenous series,
N windows, w window length, h horizon.

Examples
--------
>>> import numpy as np
>>> from rnnkit.data.series import make_windows
>>> inputs, targets = make_windows(np.arange(6.0), window=3, horizon=2)
>>> inputs[:, :, 0].tolist(), targets[:, :, 0].tolist()
([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]], [[3.0, 4.0], [4.0, 5.0]])
"""

from __future__ import annotations

import numbers

import numpy as np

from .._validation import as_dtype, check_int

__all__ = [
    "MinMaxScaler",
    "StandardScaler",
    "check_series",
    "holdout_windows",
    "last_window",
    "make_windows",
    "scaler_from_dict",
    "split_series",
]


def check_series(y, *, name="y", dtype=np.float64, min_length=1):
    """Validate a series and return it as a 2-D float array ``(n, k)``.

    Parameters
    ----------
    y : array_like of shape (n,) or (n, k)
        One series, or k series observed at the same n times (rows are times).
    name : str, default='y'
    dtype : {np.float32, np.float64}, default=np.float64
    min_length : int, default=1

    Returns
    -------
    ndarray of shape (n, k)

    Raises
    ------
    ValueError
        Rank other than 1 or 2, fewer than ``min_length`` observations, no
        column, NaN or infinite values, non-numeric or complex data.
    """
    dtype = as_dtype(dtype)
    if isinstance(y, (str, bytes)):
        raise TypeError(f"{name} must be an array of numbers, got a string")
    try:
        a = np.asarray(y)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} must be an array of numbers ({exc})") from None
    if a.dtype.kind == "c":
        raise ValueError(f"{name} is complex; only real numbers are supported")
    if a.dtype.kind not in "biuf":
        try:
            a = a.astype(np.float64)
        except (ValueError, TypeError):
            raise ValueError(f"{name} must contain numbers, got dtype {a.dtype}") from None
    if a.ndim == 1:
        a = a[:, None]  # (n,) -> (n, 1)
    elif a.ndim != 2:
        raise ValueError(f"{name} must be a series: 1-D (n_timesteps,) or 2-D "
                         f"(n_timesteps, n_series), got a {a.ndim}-D array of shape {a.shape}")
    if a.shape[1] == 0:
        raise ValueError(f"{name} has no column (shape {a.shape})")
    if a.shape[0] < min_length:
        raise ValueError(f"{name} has {a.shape[0]} observations; at least {min_length} needed")
    a = np.array(a, dtype=dtype)  # a private copy: later steps may scale it in place
    if not np.isfinite(a).all():
        t = int(np.argwhere(~np.isfinite(a))[0, 0])
        raise ValueError(f"{name} contains NaN or infinite values (first at time index {t}); "
                         "fill or drop the missing observations first")
    return a


def _check_exog(exog, n, name="X"):
    if exog is None:
        return None
    e = check_series(exog, name=name)
    if e.shape[0] != n:
        raise ValueError(f"{name} (exogenous inputs) has {e.shape[0]} rows, but the series has "
                         f"{n} observations: give one row per observation")
    return e


def make_windows(series, window, horizon=1, *, exog=None):
    """Sliding windows of a series for one-step or direct multi-step forecasting.

    Parameters
    ----------
    series : array_like of shape (n,) or (n, k)
    window : int
        w, observations per input window.
    horizon : int, default=1
        h, future values per target.
    exog : array_like of shape (n,) or (n, m), optional
        Exogenous inputs aligned with ``series`` (row t belongs to time t).

    Returns
    -------
    inputs : ndarray of shape (N, w, k + m)
        ``inputs[i, j] = [series[i + j], exog[i + j + 1]]``, N = n - w - h + 1.
    targets : ndarray of shape (N, h, k)
        ``targets[i, j] = series[i + w + j]``.

    Raises
    ------
    ValueError
        ``window + horizon`` longer than the series, NaN, wrong rank, or
        ``exog`` of another length.

    Notes
    -----
    The covariates of step ``τ + 1`` ride with the observation of step
    ``τ``, so the input that predicts ``y[t+1]`` ends with ``X[t+1]``: a
    covariate known in advance (a month, a planned input) is used for the
    step it describes, and :meth:`rnnkit.estimators.RNNForecaster.predict`
    needs future covariates for exactly the forecast steps.
    """
    y = check_series(series, name="series")
    n = y.shape[0]
    w = check_int(window, "window", minimum=1)
    h = check_int(horizon, "horizon", minimum=1)
    e = _check_exog(exog, n, "exog")
    N = n - w - h + 1
    if N < 1:
        raise ValueError(f"the series is too short for the window: window ({w}) + horizon "
                         f"({h}) = {w + h} observations are needed for one training window, "
                         f"the series has {n}")
    idx = np.arange(N)[:, None] + np.arange(w)[None, :]  # (N, w) time index of each input step
    inputs = y[idx]  # (N, w, k)
    if e is not None:
        inputs = np.concatenate([inputs, e[idx + 1]], axis=2)  # (N, w, k + m)
    targets = y[np.arange(N)[:, None] + w + np.arange(h)[None, :]]  # (N, h, k)
    return inputs, targets


def last_window(series, window, *, exog=None, next_exog=None):
    """The input window that forecasts the step after the end of ``series``.

    Parameters
    ----------
    series : array_like of shape (n,) or (n, k), n >= window
    window : int
    exog : array_like of shape (n,) or (n, m), optional
        Exogenous inputs aligned with ``series``.
    next_exog : array_like of shape (m,) or (1, m), optional
        The covariates of step n (the first forecast step); required with ``exog``.

    Returns
    -------
    ndarray of shape (w, k + m)
    """
    y = check_series(series, name="series")
    w = check_int(window, "window", minimum=1)
    if y.shape[0] < w:
        raise ValueError(f"the series is too short for the window: {w} observations needed, "
                         f"got {y.shape[0]}")
    out = y[-w:]
    e = _check_exog(exog, y.shape[0], "exog")
    if e is not None:
        if next_exog is None:
            raise ValueError("next_exog is required with exog: the covariates of the step "
                             "being forecast")
        try:
            nxt = np.reshape(next_exog, (1, -1))
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise ValueError(f"next_exog must be an array of numbers of shape (m,) ({exc})") \
                from None
        nxt = check_series(nxt, name="next_exog")
        if nxt.shape[1] != e.shape[1]:
            raise ValueError(f"next_exog has {nxt.shape[1]} columns, exog has {e.shape[1]}")
        future = np.concatenate([e, nxt])[-w:]  # X[n-w+1 .. n]
        out = np.concatenate([out, future], axis=1)
    return out


def split_series(series, test_size, *, exog=None):
    """Temporal split: the first part for training, the last ``test_size`` for testing.

    Parameters
    ----------
    series : array_like of shape (n,) or (n, k)
    test_size : int or float
        Observations in the test part, or a fraction in (0, 1) of them
        (rounded up, as sklearn's ``train_test_split``).
    exog : array_like of shape (n,) or (n, m), optional

    Returns
    -------
    train, test : ndarray
        Slices of ``series`` (same rank as given).
    exog_train, exog_test : ndarray
        Only when ``exog`` is given.
    """
    check_series(series, name="series", min_length=2)  # refuses ragged input by name
    a = np.asarray(series)
    n = a.shape[0]
    if isinstance(test_size, numbers.Integral) and not isinstance(test_size, bool):
        n_test = int(test_size)
    elif isinstance(test_size, numbers.Real) and 0 < test_size < 1:
        n_test = int(np.ceil(test_size * n))
    else:
        raise ValueError(f"test_size must be an int or a fraction in (0, 1), got {test_size!r}")
    if not 1 <= n_test < n:
        raise ValueError(f"test_size={test_size!r} leaves {n - n_test} training observations of "
                         f"{n}; both parts need at least one")
    parts = (a[: n - n_test], a[n - n_test:])
    if exog is None:
        return parts
    _check_exog(exog, n, "exog")
    e = np.asarray(exog)
    return parts + (e[: n - n_test], e[n - n_test:])


def holdout_windows(train, test, window, horizon=1, *, exog_train=None, exog_test=None):
    """Windows whose targets lie in the test part, for out-of-sample evaluation.

    Each input holds the ``window`` observations before its first target: at
    the start of the test part they come from the end of the training part
    (observed before the targets, so no leakage), later from the test part
    itself (one-step-ahead evaluation with the true history).

    Parameters
    ----------
    train : array_like of shape (n_train,) or (n_train, k), n_train >= window
    test : array_like of shape (n_test,) or (n_test, k), n_test >= horizon
    window, horizon : int
    exog_train, exog_test : array_like, optional
        Exogenous inputs aligned with ``train`` and ``test``.

    Returns
    -------
    inputs : ndarray of shape (n_test - h + 1, w, k + m)
    targets : ndarray of shape (n_test - h + 1, h, k)
    """
    a, b = check_series(train, name="train"), check_series(test, name="test")
    w = check_int(window, "window", minimum=1)
    if a.shape[0] < w:
        raise ValueError(f"the training part is too short for the window: {w} observations "
                         f"needed, got {a.shape[0]}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"train has {a.shape[1]} series, test has {b.shape[1]}")
    series = np.concatenate([a[-w:], b])
    exog = None
    if (exog_train is None) != (exog_test is None):
        raise ValueError("give both exog_train and exog_test, or neither")
    if exog_train is not None:
        ea = _check_exog(exog_train, a.shape[0], "exog_train")
        eb = _check_exog(exog_test, b.shape[0], "exog_test")
        exog = np.concatenate([ea[-w:], eb])
    return make_windows(series, w, horizon, exog=exog)


# ------------------------------------------------------------------- scalers
class _Scaler:
    """Shared plumbing: column-wise affine maps fitted on training data only."""

    kind = None

    def _check(self, y, fitting):
        a = check_series(y, name="data")
        if not fitting:
            self._check_fitted()
            if a.shape[1] != self.n_features_in_:
                raise ValueError(f"{type(self).__name__} was fitted on {self.n_features_in_} "
                                 f"column(s), got {a.shape[1]}")
        return a

    def _check_fitted(self):
        if getattr(self, "n_features_in_", None) is None:
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit on the "
                               "training part first")

    def fit_transform(self, y):
        """``fit(y)`` then ``transform(y)``."""
        return self.fit(y).transform(y)

    def transform(self, y):
        """Scale ``y`` (shape (n,) or (n, k)); returns float64 of the same shape."""
        a = self._check(y, fitting=False)
        out = (a - self._shift) / self._scale
        return out.reshape(np.shape(y)) if np.ndim(y) == 1 else out

    def inverse_transform(self, y):
        """Undo :meth:`transform`."""
        a = self._check(y, fitting=False)
        out = a * self._scale + self._shift
        return out.reshape(np.shape(y)) if np.ndim(y) == 1 else out

    def to_dict(self):
        """The fitted state as JSON-able lists (what model files store)."""
        self._check_fitted()
        return {"kind": self.kind, **{k: np.asarray(getattr(self, k)).tolist()
                                      for k in self._state}, **self._extra()}

    def _extra(self):
        return {}


class StandardScaler(_Scaler):
    """Remove each column's mean and divide by its standard deviation.

    Like ``sklearn.preprocessing.StandardScaler`` (population standard
    deviation, ``ddof=0``; a constant column gets scale 1), in NumPy only.

    Attributes
    ----------
    mean_ : ndarray of shape (k,)
    scale_ : ndarray of shape (k,)
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit.data.series import StandardScaler, split_series
    >>> train, test = split_series(np.arange(10.0), test_size=3)
    >>> s = StandardScaler().fit(train)  # the training part only
    >>> float(s.mean_[0])
    3.0
    """

    kind = "standard"
    _state = ("mean_", "scale_")

    def fit(self, y):
        a = self._check(y, fitting=True)
        self.mean_ = a.mean(axis=0)
        std = a.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        self.n_features_in_ = a.shape[1]
        return self

    @property
    def _shift(self):
        return self.mean_

    @property
    def _scale(self):
        return self.scale_

    @classmethod
    def from_dict(cls, d):
        s = cls()
        s.mean_ = np.asarray(d["mean_"], dtype=np.float64)
        s.scale_ = np.asarray(d["scale_"], dtype=np.float64)
        s.n_features_in_ = s.mean_.shape[0]
        return s


class MinMaxScaler(_Scaler):
    """Map each column's training range onto ``feature_range``.

    Parameters
    ----------
    feature_range : tuple (min, max), default=(0, 1)

    Attributes
    ----------
    data_min_, data_max_ : ndarray of shape (k,)
    n_features_in_ : int

    Notes
    -----
    Values outside the training range map outside ``feature_range``; a
    constant column maps to ``min``.
    """

    kind = "minmax"
    _state = ("data_min_", "data_max_")

    def __init__(self, feature_range=(0.0, 1.0)):
        lo, hi = (float(v) for v in feature_range)
        if not lo < hi:
            raise ValueError(f"feature_range must be (min, max) with min < max, got "
                             f"{feature_range!r}")
        self.feature_range = (lo, hi)

    def fit(self, y):
        a = self._check(y, fitting=True)
        self.data_min_ = a.min(axis=0)
        self.data_max_ = a.max(axis=0)
        self.n_features_in_ = a.shape[1]
        return self

    @property
    def _scale(self):
        lo, hi = self.feature_range
        rng = self.data_max_ - self.data_min_
        return np.where(rng > 0, rng, 1.0) / (hi - lo)

    @property
    def _shift(self):
        return self.data_min_ - self.feature_range[0] * self._scale

    def _extra(self):
        return {"feature_range": list(self.feature_range)}

    @classmethod
    def from_dict(cls, d):
        s = cls(tuple(d.get("feature_range", (0.0, 1.0))))
        s.data_min_ = np.asarray(d["data_min_"], dtype=np.float64)
        s.data_max_ = np.asarray(d["data_max_"], dtype=np.float64)
        s.n_features_in_ = s.data_min_.shape[0]
        return s


_SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler}


def scaler_from_dict(d):
    """Rebuild a scaler from :meth:`to_dict`'s output (e.g. read from a model file)."""
    if not isinstance(d, dict) or d.get("kind") not in _SCALERS:
        raise ValueError(f"not a saved scaler: {d!r}")
    try:
        return _SCALERS[d["kind"]].from_dict(d)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"not a saved {d['kind']} scaler ({type(exc).__name__}: {exc})") from None
