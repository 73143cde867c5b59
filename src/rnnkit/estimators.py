"""scikit-learn estimators over rnnkit's recurrent networks (the only module importing sklearn).

- :class:`RNNClassifier`: sequence -> class (``predict``, ``predict_proba``).
- :class:`RNNRegressor`: sequence -> value or vector.
- :class:`RNNForecaster`: a series -> its future, ``fit(y, X=None)`` and
  ``predict(horizon, X=None)`` in the spirit of sktime.
- :class:`SequenceScaler`: per-feature standardization of sequences, for
  a :class:`~sklearn.pipeline.Pipeline` in front of the first two.

Sequences ``X`` come in any of these layouts (tslearn's and sktime's):

- a 3-D array ``(n_samples, n_timesteps, n_features)``;
- a 2-D array ``(n_samples, n_timesteps)``: univariate sequences;
- a list of 2-D arrays ``(n_timesteps_i, n_features)`` (or 1-D
  ``(n_timesteps_i,)``) of different lengths;
- a padded 3-D or 2-D array with ``lengths=`` passed to ``fit``/``predict``.

Sequences of different lengths go through the recurrent layers' ``lengths``
(PyTorch's packed-sequence semantics): padded steps never reach the model,
so a batch of variable-length sequences predicts what each sequence alone
would. For cross-validation of variable-length data, pass a list of arrays:
scikit-learn's splitters index lists, and each array keeps its length.

The hyperparameters are named as in :class:`sklearn.neural_network.MLPClassifier`
(``max_iter``, ``batch_size``, ``learning_rate_init``, ``alpha``,
``early_stopping``, ``validation_fraction``, ``n_iter_no_change``, ``tol``,
``random_state``, ``warm_start``, ``verbose``) and as in PyTorch's
recurrent layers (``cell``, ``hidden_size``, ``num_layers``, ``dropout``,
``bidirectional``).

Fitted estimators save to a folder with :meth:`save` and load with
:meth:`load` (safetensors weights plus JSON; no pickle), through
:mod:`rnnkit.io`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    assert_all_finite,
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
)

from . import io as rio
from ._validation import check_choice, check_float, check_int
from .data.sequences import SequenceBatches, as_padded, check_sequences
from .data.series import MinMaxScaler, StandardScaler, check_series, scaler_from_dict
from .models import CELLS, SequenceModel
from .training import Trainer, TrainerConfig

__all__ = ["RNNClassifier", "RNNForecaster", "RNNRegressor", "SequenceScaler",
           "load_estimator"]

_FORMAT = rio.ESTIMATOR_FORMAT
_FORMAT_VERSION = 1
_PREDICT_CHUNK = 1024  # sequences per forward pass at prediction time (bounds memory)
_CLIP_GRAD_NORM = 5.0  # global gradient-norm clipping, the Trainer's default for RNNs


# ----------------------------------------------------------------- helpers
def _seed_from(random_state):
    """An int seed from ``random_state`` (None, int, RandomState or Generator).

    None draws fresh entropy from the operating system, never from the
    global NumPy state; an int gives the same bits on every run.
    """
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative int, got {random_state}")
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(np.iinfo(np.int32).max))
    raise TypeError(f"random_state must be None, an int, a numpy RandomState or Generator, "
                    f"got {type(random_state).__name__}")


def _softmax64(logits):
    """Row-wise softmax in float64 (probabilities that sum to 1 to float64 round-off)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def _validation_r2(outputs, target):
    """R² for early stopping; minus the mean squared error where R² is undefined (one sample)."""
    if len(target) < 2:
        return -float(np.mean((np.asarray(outputs, np.float64) - target) ** 2))
    return r2_score(target, outputs)


def _json_param(value):
    """A hyperparameter as JSON, or None for values JSON cannot hold (e.g. a RandomState)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return None


def _encode_labels(classes):
    """``classes_`` as a JSON object that restores the same dtype."""
    kind = classes.dtype.kind
    if kind in "biuf":
        return {"dtype": classes.dtype.str, "values": classes.tolist()}
    if kind == "U" or (kind == "O" and all(isinstance(c, str) for c in classes)):
        return {"dtype": classes.dtype.str if kind == "U" else "object",
                "values": [str(c) for c in classes]}
    raise ValueError(f"class labels of type {type(classes[0]).__name__} cannot be stored in a "
                     "model file; use integers or strings")


def _decode_labels(d):
    dtype = object if d["dtype"] == "object" else np.dtype(d["dtype"])
    return np.array(d["values"], dtype=dtype)


def _sequences_to_padded(estimator, X, lengths, dtype):
    """Any accepted layout of ``X`` -> (x (T, N, D) time-major, lengths (N,), layout).

    ``layout`` is 'list', '2d' or '3d': how ``X`` came, so a transformer can
    give its output back in the same form.
    """
    if isinstance(X, (list, tuple)):
        seqs = check_sequences(X, name="X", dtype=np.float64)
        if lengths is not None:
            raise TypeError("lengths is for a padded array; X is a list of sequences, "
                            "which carry their own lengths")
        x, lengths = as_padded(seqs, dtype=dtype)
        return x, lengths, "list"
    arr = check_array(X, allow_nd=True, ensure_2d=False, dtype=(np.float64, np.float32),
                      ensure_all_finite=False, input_name="X", estimator=estimator)
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{type(estimator).__name__}: Expected X to be 3-D (n_samples, n_timesteps, "
            f"n_features), 2-D (n_samples, n_timesteps) for univariate sequences, or a "
            f"list of 2-D arrays; got a {arr.ndim}-D array of shape {arr.shape}. "
            "Reshape your data: one sequence is X[None] (3-D) or X.reshape(1, -1) (2-D)")
    x, lengths = as_padded(arr, lengths, dtype=dtype)
    return x, lengths, f"{arr.ndim}d"


def _check_n_features(estimator, D, reset):
    """Set (fit) or check (predict) ``n_features_in_``: the features per time step."""
    if reset:
        estimator.n_features_in_ = D
    elif D != estimator.n_features_in_:
        raise ValueError(f"X has {D} features per time step, but {type(estimator).__name__} "
                         f"is expecting {estimator.n_features_in_} features per time step as "
                         "input")


class _RNNBase(BaseEstimator):
    """Hyperparameters, input checks, the training loop and model files shared by all three."""

    # ------------------------------------------------------------- parameters
    def _validated_params(self):
        """Check every hyperparameter (sklearn: validation in fit, not in __init__)."""
        p = {
            "cell": check_choice(self.cell, "cell", tuple(CELLS)),
            "hidden_size": check_int(self.hidden_size, "hidden_size", minimum=1),
            "num_layers": check_int(self.num_layers, "num_layers", minimum=1),
            "dropout": check_float(self.dropout, "dropout", low=0.0, high=1.0, high_open=True),
            "alpha": check_float(self.alpha, "alpha", low=0.0),
            "batch_size": check_int(self.batch_size, "batch_size", minimum=1),
            "learning_rate_init": check_float(self.learning_rate_init, "learning_rate_init",
                                              low=0.0, low_open=True),
            "max_iter": check_int(self.max_iter, "max_iter", minimum=1),
            "tol": check_float(self.tol, "tol", low=0.0),
            "validation_fraction": check_float(self.validation_fraction,
                                               "validation_fraction", low=0.0, high=1.0,
                                               low_open=True, high_open=True),
            "n_iter_no_change": check_int(self.n_iter_no_change, "n_iter_no_change",
                                          minimum=1),
            "dtype": check_choice(self.dtype, "dtype", ("float32", "float64")),
        }
        for name in ("bidirectional", "early_stopping", "warm_start"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {value!r}")
        if not isinstance(self.verbose, (bool, numbers.Integral)):
            raise TypeError(f"verbose must be a bool or an int, got {self.verbose!r}")
        if p["dropout"] > 0 and p["num_layers"] == 1:
            # PyTorch only warns; a search over num_layers would then train silently without it
            raise ValueError(f"dropout={p['dropout']} acts between stacked recurrent layers (as "
                             f"in PyTorch), so it needs num_layers > 1, got num_layers=1")
        return p

    # ------------------------------------------------------------------ input
    def _validate_X(self, X, lengths, *, reset, dtype):
        """``X`` in any accepted layout -> time-major ``x (T, N, D)`` and ``lengths (N,)``."""
        x, lengths, _ = _sequences_to_padded(self, X, lengths, dtype)
        _check_n_features(self, x.shape[2], reset)
        return x, lengths

    # ------------------------------------------------------------------ model
    def _new_model(self, p, input_size, output_size, loss, seed):
        return SequenceModel(
            input_size, p["hidden_size"], output_size, cell=p["cell"],
            num_layers=p["num_layers"], encoder="dense", dropout=p["dropout"],
            bidirectional=bool(self.bidirectional), task="many_to_one", loss=loss,
            dtype=np.dtype(p["dtype"]), rng=seed)

    def _forward(self, x, lengths):
        """Model outputs ``(N, C)`` for time-major ``x (T, N, D)``, in evaluation mode, chunked."""
        model = self.model_
        model.eval()
        outs = []
        try:
            for start in range(0, x.shape[1], _PREDICT_CHUNK):
                idx = slice(start, start + _PREDICT_CHUNK)
                n = lengths[idx]
                xb = np.ascontiguousarray(x[: int(n.max()), idx])  # (T_b, B, D)
                single = xb.shape[1] == 1
                if single:
                    # BLAS takes a matrix-vector path for one row, which rounds differently in
                    # float32; two identical rows keep the matrix path, so a sequence's
                    # prediction never depends on what else is in the batch
                    xb, n = np.repeat(xb, 2, axis=1), np.repeat(n, 2)
                y, _ = model.forward(xb, lengths=n)
                outs.append(np.array(y[:1] if single else y))
        finally:
            model._cache = None  # nothing to backpropagate: drop the forward caches
            model.rnn._cache = None
        return np.concatenate(outs)

    def _fit_model(self, p, x, lengths, target, *, output_size, loss, score, val=None,
                   stratify=None):
        """The training loop shared by the estimators (MLPClassifier's stopping rules).

        Parameters
        ----------
        p : dict
            Validated hyperparameters.
        x : ndarray of shape (T, N, D)
        lengths : ndarray of shape (N,)
        target : ndarray of shape (N,) int (class ids) or (N, C) float
        output_size : int
        loss : {'cross_entropy', 'mse'}
        score : callable(outputs (N, C), target) -> float
            Validation score (higher is better) for early stopping.
        val : tuple (x_val, lengths_val, target_val), optional
            A fixed validation set (the forecaster's temporal split); otherwise
            ``validation_fraction`` of the samples is drawn at random.
        stratify : ndarray, optional
            Class ids for a stratified validation split.
        """
        seed = _seed_from(self.random_state)
        init_seed, shuffle_seed, split_seed = (
            int(s) for s in np.random.SeedSequence(seed).generate_state(3))
        N = x.shape[1]
        x_val = None
        if self.early_stopping:
            if val is not None:
                x_val, len_val, t_val = val
            else:
                idx = np.arange(N)
                try:
                    try:
                        tr, va = train_test_split(idx, test_size=p["validation_fraction"],
                                                  random_state=split_seed, stratify=stratify)
                    except ValueError:
                        if stratify is None:
                            raise
                        # too few samples of some class to stratify: a plain random split
                        tr, va = train_test_split(idx, test_size=p["validation_fraction"],
                                                  random_state=split_seed)
                except ValueError as exc:
                    raise ValueError(f"early_stopping: cannot hold out validation_fraction="
                                     f"{p['validation_fraction']} of {N} samples ({exc})") from None
                tr, va = np.sort(tr), np.sort(va)
                x_val, len_val, t_val = x[:, va], lengths[va], target[va]
                x, lengths, target = x[:, tr], lengths[tr], target[tr]
        warm = self.warm_start and hasattr(self, "model_")
        if warm:
            model = self.model_
            expected = self._new_model(p, x.shape[2], output_size, loss, 0).config()
            if model.config() != expected:
                raise ValueError("warm_start=True needs the same architecture as the previous "
                                 "fit; the hyperparameters or the data's shape changed. Set "
                                 "warm_start=False to train a new network")
        else:
            model = self._new_model(p, x.shape[2], output_size, loss, init_seed)
        batches = SequenceBatches(x, target, lengths, batch_size=min(p["batch_size"], x.shape[1]),
                                  shuffle=True, seed=shuffle_seed)
        config = TrainerConfig(optimizer="adam", lr=p["learning_rate_init"],
                               weight_decay=p["alpha"], epochs=1,
                               clip_grad_norm=_CLIP_GRAD_NORM, shuffle=False, seed=shuffle_seed,
                               progress=False)
        trainer = Trainer(model, config, batches)
        hook = getattr(self, "_trainer_hook", None)  # the command line's Ctrl-C handler
        if hook is not None:
            hook(trainer)
        if not warm:  # warm_start continues the curves, as MLPClassifier does
            self.loss_curve_ = []
            self.n_iter_ = 0
            self.validation_scores_ = [] if self.early_stopping else None
        elif self.early_stopping and self.validation_scores_ is None:
            self.validation_scores_ = []
        self.best_loss_ = None if self.early_stopping else math.inf
        self.best_validation_score_ = -math.inf if self.early_stopping else None
        best_params = None
        no_improvement = 0
        for epoch in range(p["max_iter"]):
            batches.set_epoch(epoch)  # a fresh sample order every epoch
            trainer.config = dataclasses.replace(config, epochs=epoch + 1)
            trainer.fit()
            if trainer.interrupted:  # Trainer.request_stop: the model as of the last step
                break
            loss_value = float(trainer.history["train_loss"][-1])
            self.loss_curve_.append(loss_value)
            self.n_iter_ += 1
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss_value:.8f}")
            self.model_ = model
            if self.early_stopping:
                s = float(score(self._forward(x_val, len_val), t_val))
                self.validation_scores_.append(s)
                if self.verbose:
                    print(f"Validation score: {s:f}")
                no_improvement = no_improvement + 1 if s < self.best_validation_score_ + \
                    p["tol"] else 0
                if s > self.best_validation_score_:
                    self.best_validation_score_ = s
                    best_params = model.state_dict()
            else:
                no_improvement = no_improvement + 1 if loss_value > self.best_loss_ - \
                    p["tol"] else 0
                self.best_loss_ = min(self.best_loss_, loss_value)
            if no_improvement > p["n_iter_no_change"]:
                what = "Validation score" if self.early_stopping else "Training loss"
                if self.verbose:
                    print(f"{what} did not improve more than tol={p['tol']:f} for "
                          f"{p['n_iter_no_change']} consecutive epochs. Stopping.")
                break
        else:
            warnings.warn(f"{type(self).__name__}: maximum iterations ({p['max_iter']}) "
                          "reached and the optimization hasn't converged yet.",
                          ConvergenceWarning, stacklevel=3)
        if best_params is not None:
            model.load_state_dict(best_params)  # keep the best network on the validation set
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else math.nan
        self.model_ = model
        model.eval()
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    # ------------------------------------------------------------- model files
    def _fitted_state(self):
        """JSON-able fitted attributes beside the weights (the subclasses add theirs)."""
        return {"n_features_in_": int(self.n_features_in_), "n_iter_": int(self.n_iter_),
                "loss_": self.loss_, "loss_curve_": list(self.loss_curve_),
                "best_loss_": self.best_loss_,
                "validation_scores_": self.validation_scores_,
                "best_validation_score_": self.best_validation_score_}

    def _restore_state(self, state):
        for k in ("n_features_in_", "n_iter_", "loss_", "loss_curve_", "best_loss_",
                  "validation_scores_", "best_validation_score_"):
            setattr(self, k, state[k])

    def save(self, path):
        """Save the fitted estimator to the folder ``path`` (safetensors weights + JSON).

        The weights go to ``model.safetensors``; the hyperparameters and
        the fitted attributes (classes, scalers, window, learning curves) go
        to the JSON metadata of ``config.json``. Nothing is pickled.

        Returns
        -------
        str : the folder's path.
        """
        check_is_fitted(self, "model_")
        params = {k: _json_param(v) for k, v in self.get_params().items()}
        metadata = {"format": _FORMAT, "format_version": _FORMAT_VERSION,
                    "estimator": type(self).__name__, "params": params,
                    "fitted": self._fitted_state()}
        # fail before writing anything if some value cannot be JSON
        json.dumps(metadata)
        return rio.save_model(path, self.model_, metadata=metadata)

    @classmethod
    def load(cls, path):
        """Load an estimator saved by :meth:`save`.

        Raises
        ------
        rnnkit.io.ModelFileError
            A missing or corrupted file, or a file that holds another estimator
            (``RNNRegressor.load`` on a saved ``RNNClassifier``).
        """
        model, meta = rio.load_model(path)
        where = os.path.join(os.fspath(path), rio.CONFIG_NAME)
        if meta.get("format") != _FORMAT:
            raise rio.ModelFileError(f"{where}: a model file, but not a saved rnnkit estimator")
        if meta.get("format_version") != _FORMAT_VERSION:
            raise rio.ModelFileError(f"{where}: unsupported estimator format_version "
                                     f"{meta.get('format_version')!r}")
        kinds = {c.__name__: c for c in (RNNClassifier, RNNRegressor, RNNForecaster)}
        kind = kinds.get(meta.get("estimator"))
        if kind is None or not issubclass(kind, cls):
            raise rio.ModelFileError(f"{where}: holds a {meta.get('estimator')!r}, not a "
                                     f"{cls.__name__}")
        try:
            est = kind(**meta["params"])
            est._restore_state(meta["fitted"])
            problem = est._mismatch(model)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise rio.ModelFileError(f"{where}: invalid estimator metadata ({exc})") from None
        if problem:  # the JSON was edited or comes from another save than the weights
            raise rio.ModelFileError(f"{where}: the estimator metadata does not match the "
                                     f"weights: {problem}")
        est.model_ = model
        return est

    def _mismatch(self, model):
        """What in the restored attributes contradicts ``model`` (None if nothing)."""
        for name, have in (("hidden_size", model.hidden_size), ("num_layers", model.num_layers),
                           ("cell", model.cell)):
            want = getattr(self, name, have)
            if want != have:
                return f"{name} is {want!r} in the metadata and {have!r} in the weights"
        classes = getattr(self, "classes_", None)
        if classes is not None and len(classes) != model.output_size:
            return (f"{len(classes)} classes in the metadata, {model.output_size} outputs "
                    "in the weights")
        window = getattr(self, "window", None)
        if window is not None and (not isinstance(window, int) or window < 1):
            return f"window must be a positive integer, got {window!r}"
        return None


def load_estimator(path):
    """Load any rnnkit estimator saved with ``save(path)``; the file says which class."""
    return _RNNBase.load(path)


_COMMON_PARAMS_DOC = """
    cell : {'lstm', 'gru', 'rnn'}, default='lstm'
        The recurrent cell (PyTorch's ``LSTM``, ``GRU`` or tanh ``RNN``).
    hidden_size : int, default=64
        H, units per recurrent layer; choose it by cross-validation
        (:func:`rnnkit.selection.search_hidden_size`).
    num_layers : int, default=1
        Stacked recurrent layers.
    bidirectional : bool, default=False
        Also read each sequence backwards; the read-out sees both final states.
    dropout : float, default=0.0
        Dropout probability between stacked layers (as in PyTorch), in [0, 1);
        needs ``num_layers > 1``.
    alpha : float, default=1e-4
        L2 penalty (weight decay) of the Adam optimizer, as ``weight_decay``
        in ``torch.optim.Adam``: ``alpha * w`` is added to each gradient.
    batch_size : int, default=32
        Sequences per mini-batch (clipped to the number of samples).
    learning_rate_init : float, default=1e-3
        Adam's step size.
    max_iter : int, default=200
        Maximum number of epochs (passes over the training sequences).
    tol : float, default=1e-4
        Improvement below ``tol`` for ``n_iter_no_change`` consecutive epochs
        (of the training loss, or of the validation score with
        ``early_stopping``) stops training.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data, stop when its
        score stops improving, and keep the network with the best score.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping, in (0, 1).
    n_iter_no_change : int, default=10
        Epochs without an improvement of ``tol`` before stopping.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialization, dropout, the shuffling and the validation
        split; an int gives the same bits on every run. None draws fresh
        entropy from the operating system (never the global NumPy state).
    warm_start : bool, default=False
        Continue from the previous fit's weights (same architecture), with a
        new optimizer.
    verbose : bool or int, default=False
        Print the loss (and validation score) after every epoch.
    dtype : {'float32', 'float64'}, default='float32'
        Precision of the weights and of the arithmetic; float32 is faster,
        float64 is exact enough for gradient checks."""

_COMMON_ATTRS_DOC = """
    n_features_in_ : int
        D, the number of features per time step seen during fit.
    model_ : rnnkit.SequenceModel
        The trained network (many-to-one: the top layer's final state feeds
        a linear read-out).
    loss_ : float
        The mean training loss of the last epoch.
    loss_curve_ : list of shape (n_iter_,)
        The mean training loss of each epoch (without the L2 term).
    best_loss_ : float or None
        The lowest training loss; None with ``early_stopping``.
    validation_scores_ : list of shape (n_iter_,) or None
        The validation score after each epoch with ``early_stopping``, else None.
    best_validation_score_ : float or None
        The best validation score with ``early_stopping``, else None.
    n_iter_ : int
        Epochs run."""


def _doc(text):
    return text.replace("{common_params}", _COMMON_PARAMS_DOC.strip("\n")).replace(
        "{common_attrs}", _COMMON_ATTRS_DOC.strip("\n"))


# --------------------------------------------------------------- transformer
class SequenceScaler(TransformerMixin, BaseEstimator):
    """Standardize each feature over all time steps of the training sequences.

    The sequence version of :class:`sklearn.preprocessing.StandardScaler`:
    feature ``d`` is shifted by its mean and divided by its standard
    deviation, both computed over every valid step of every training
    sequence (padding excluded). In a :class:`~sklearn.pipeline.Pipeline`
    before an :class:`RNNClassifier` or :class:`RNNRegressor`, it is fitted
    on the training folds only.

    Parameters
    ----------
    with_mean : bool, default=True
        Subtract the mean.
    with_std : bool, default=True
        Divide by the standard deviation (a constant feature keeps scale 1).

    Attributes
    ----------
    mean_ : ndarray of shape (n_features_in_,) or None
    scale_ : ndarray of shape (n_features_in_,) or None
    n_features_in_ : int
        D, features per time step.

    Notes
    -----
    ``transform`` returns the layout it was given: a list of arrays for a
    list, a 2-D or 3-D array for an array. With ``lengths=``, padded steps
    are left out of the statistics.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit.estimators import SequenceScaler
    >>> X = [np.array([[0.0, 10.0], [2.0, 30.0]]), np.array([[4.0, 20.0]])]
    >>> Xs = SequenceScaler().fit_transform(X)
    >>> [x.round(3).tolist() for x in Xs]
    [[[-1.225, -1.225], [0.0, 1.225]], [[1.225, 0.0]]]
    """

    def __init__(self, with_mean=True, with_std=True):
        self.with_mean = with_mean
        self.with_std = with_std

    def fit(self, X, y=None, lengths=None):
        """Compute each feature's mean and standard deviation over the valid steps of ``X``."""
        x, lengths, _ = _sequences_to_padded(self, X, lengths, np.float64)
        _check_n_features(self, x.shape[2], reset=True)
        valid = np.arange(x.shape[0])[:, None] < lengths[None, :]  # (T, N)
        steps = x[valid]  # (n_valid_steps, D)
        self.mean_ = steps.mean(axis=0) if self.with_mean else None
        if self.with_std:
            std = steps.std(axis=0)
            self.scale_ = np.where(std > 0, std, 1.0)
        else:
            self.scale_ = None
        return self

    def transform(self, X, lengths=None):
        """Scale ``X``; returns float64 in the layout of ``X`` (padding stays zero)."""
        check_is_fitted(self, "n_features_in_")
        x, lengths, layout = _sequences_to_padded(self, X, lengths, np.float64)
        _check_n_features(self, x.shape[2], reset=False)
        if self.mean_ is not None:
            x -= self.mean_
        if self.scale_ is not None:
            x /= self.scale_
        x[np.arange(x.shape[0])[:, None] >= lengths[None, :]] = 0.0  # (T, N) padding
        if layout == "list":
            return [np.array(x[: int(n), b]) for b, n in enumerate(lengths)]
        out = np.ascontiguousarray(x.transpose(1, 0, 2))  # (N, T, D)
        return out[:, :, 0] if layout == "2d" else out

    def inverse_transform(self, X, lengths=None):
        """Undo :meth:`transform`."""
        check_is_fitted(self, "n_features_in_")
        x, lengths, layout = _sequences_to_padded(self, X, lengths, np.float64)
        _check_n_features(self, x.shape[2], reset=False)
        if self.scale_ is not None:
            x *= self.scale_
        if self.mean_ is not None:
            x += self.mean_
        x[np.arange(x.shape[0])[:, None] >= lengths[None, :]] = 0.0
        if layout == "list":
            return [np.array(x[: int(n), b]) for b, n in enumerate(lengths)]
        out = np.ascontiguousarray(x.transpose(1, 0, 2))
        return out[:, :, 0] if layout == "2d" else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


# --------------------------------------------------------------- classifier
class RNNClassifier(ClassifierMixin, _RNNBase):
    __doc__ = _doc("""Recurrent-network classifier of sequences (sequence -> class).

    A recurrent stack reads each sequence; its final state (at each
    sequence's own last step) feeds a linear layer and a softmax over the
    classes. Trained with Adam on the cross-entropy, in mini-batches.

    Parameters
    ----------
{common_params}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
{common_attrs}

    See Also
    --------
    RNNRegressor : The same network with a linear output and the squared error.
    sklearn.neural_network.MLPClassifier : The feed-forward model these names follow.

    Notes
    -----
    ``X`` is 3-D ``(n_samples, n_timesteps, n_features)``, 2-D
    ``(n_samples, n_timesteps)`` (univariate), a list of arrays of different
    lengths, or a padded array with ``lengths=``. Padded steps are masked:
    they never move the recurrent state.

    Training follows ``MLPClassifier``'s rules: an epoch is a pass over the
    shuffled training sequences; training stops after ``max_iter`` epochs or
    when the loss (or validation score) has not improved by ``tol`` for
    more than ``n_iter_no_change`` epochs. Gradients are clipped to a global
    norm of 5, which keeps recurrent training stable.

    Differences from ``MLPClassifier``: ``alpha`` is Adam's coupled weight
    decay (PyTorch's ``weight_decay``), applied to biases too and not divided
    by the number of samples; ``n_features_in_`` counts features per step, so
    prediction accepts sequences of any length.

    Labels unseen during fit count as errors in :meth:`score` (accuracy), as
    in scikit-learn.

    References
    ----------
    Hochreiter, S. and Schmidhuber, J. (1997). Long short-term memory.
    Neural Computation 9(8), 1735-1780.

    Cho, K. et al. (2014). Learning phrase representations using RNN
    encoder-decoder for statistical machine translation. EMNLP.

    Kingma, D. P. and Ba, J. (2015). Adam: A method for stochastic optimization.
    ICLR.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit.estimators import RNNClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 5, 1))              # 60 sequences of 5 steps
    >>> y = (X.sum(axis=(1, 2)) > 0).astype(int)     # is the sum positive?
    >>> clf = RNNClassifier(hidden_size=8, max_iter=30, learning_rate_init=0.02,
    ...                     random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    >>> bool(clf.score(X, y) > 0.8)
    True
    """)

    def __init__(self, cell="lstm", hidden_size=64, num_layers=1, *, bidirectional=False,
                 dropout=0.0, alpha=1e-4, batch_size=32, learning_rate_init=1e-3, max_iter=200,
                 tol=1e-4, early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 random_state=None, warm_start=False, verbose=False, dtype="float32"):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.dtype = dtype

    def fit(self, X, y, lengths=None):
        """Fit the network to sequences ``X`` and labels ``y``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_timesteps, n_features) or \
(n_samples, n_timesteps), or list of arrays
            Training sequences (see the class Notes for the layouts).
        y : array_like of shape (n_samples,)
            Class labels (integers or strings).
        lengths : array_like of int, shape (n_samples,), optional
            Valid steps of each row of a padded ``X``.

        Returns
        -------
        self : RNNClassifier
        """
        p = self._validated_params()
        x, lengths = self._validate_X(X, lengths, reset=True, dtype=p["dtype"])
        if y is None:
            raise ValueError("RNNClassifier requires y to be passed, but the target y is None")
        y = column_or_1d(y, warn=True)
        check_consistent_length(lengths, y)
        if y.dtype.kind == "f":
            assert_all_finite(y, input_name="y")
        check_classification_targets(y)
        classes, y_ids = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"RNNClassifier needs samples of at least 2 classes in y, got 1 "
                             f"class: {classes[0]!r}")
        if self.warm_start and hasattr(self, "classes_") and hasattr(self, "model_") \
                and not np.array_equal(classes, self.classes_):
            raise ValueError(f"warm_start can only be used where y has the same classes as in "
                             f"the previous call to fit. Previously got {self.classes_}, y has "
                             f"{classes}")
        self.classes_ = classes
        y_ids = y_ids.astype(np.int64)

        def score(outputs, target):
            return accuracy_score(target, outputs.argmax(axis=1))

        return self._fit_model(p, x, lengths, y_ids, output_size=len(classes),
                               loss="cross_entropy", score=score, stratify=y_ids)

    def predict_proba(self, X, lengths=None):
        """Class probabilities of each sequence.

        Parameters
        ----------
        X : array_like or list of arrays
            Sequences, in any layout accepted by :meth:`fit`.
        lengths : array_like of int, shape (n_samples,), optional

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns ordered as ``classes_``; rows sum to 1.
        """
        check_is_fitted(self, "model_")
        x, lengths = self._validate_X(X, lengths, reset=False, dtype=self.model_.dtype)
        return _softmax64(self._forward(x, lengths))

    def predict_log_proba(self, X, lengths=None):
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X, lengths=lengths))

    def predict(self, X, lengths=None):
        """The most probable class of each sequence.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        check_is_fitted(self, "model_")
        return self.classes_[self.predict_proba(X, lengths=lengths).argmax(axis=1)]

    def score(self, X, y, sample_weight=None, lengths=None):
        """Mean accuracy on ``(X, y)``; labels unseen during fit count as errors."""
        return accuracy_score(y, self.predict(X, lengths=lengths), sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags

    def _fitted_state(self):
        return {**super()._fitted_state(), "classes_": _encode_labels(self.classes_)}

    def _restore_state(self, state):
        super()._restore_state(state)
        self.classes_ = _decode_labels(state["classes_"])


# ---------------------------------------------------------------- regressor
class RNNRegressor(RegressorMixin, _RNNBase):
    __doc__ = _doc("""Recurrent-network regressor of sequences (sequence -> value or vector).

    A recurrent stack reads each sequence; its final state (at each
    sequence's own last step) feeds a linear layer that outputs one value per
    target. Trained with Adam on the mean squared error of standardized
    targets, in mini-batches.

    Parameters
    ----------
{common_params}

    Attributes
    ----------
    target_scaler_ : rnnkit.data.series.StandardScaler
        Mean and standard deviation of each training target; the network
        learns standardized targets and predictions are mapped back.
    n_outputs_ : int
        Number of targets.
{common_attrs}

    See Also
    --------
    RNNClassifier : The same network with a softmax read-out.
    RNNForecaster : Windows over one series, recursive or direct multi-step.
    sklearn.neural_network.MLPRegressor : The feed-forward model these names follow.

    Notes
    -----
    Standardizing the targets (fitted on the training targets only) makes
    the default learning rate work whatever the units of ``y``; the network
    is as expressive either way, because its read-out is linear. The
    reported losses are those of the standardized targets.

    The validation score of ``early_stopping`` is R², as in ``MLPRegressor``
    (minus the mean squared error on a single validation sample, where R²
    is undefined).
    See :class:`RNNClassifier` for the input layouts and stopping rules.

    References
    ----------
    Hochreiter, S. and Schmidhuber, J. (1997). Long short-term memory.
    Neural Computation 9(8), 1735-1780.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit.estimators import RNNRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(80, 6))                 # 80 univariate sequences
    >>> y = X.mean(axis=1)
    >>> reg = RNNRegressor(hidden_size=8, max_iter=40, learning_rate_init=0.02,
    ...                    random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    >>> bool(reg.score(X, y) > 0.8)
    True
    """)

    def __init__(self, cell="lstm", hidden_size=64, num_layers=1, *, bidirectional=False,
                 dropout=0.0, alpha=1e-4, batch_size=32, learning_rate_init=1e-3, max_iter=200,
                 tol=1e-4, early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 random_state=None, warm_start=False, verbose=False, dtype="float32"):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.dtype = dtype

    def fit(self, X, y, lengths=None):
        """Fit the network to sequences ``X`` and targets ``y``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_timesteps, n_features) or \
(n_samples, n_timesteps), or list of arrays
        y : array_like of shape (n_samples,) or (n_samples, n_outputs)
        lengths : array_like of int, shape (n_samples,), optional
            Valid steps of each row of a padded ``X``.

        Returns
        -------
        self : RNNRegressor
        """
        p = self._validated_params()
        x, lengths = self._validate_X(X, lengths, reset=True, dtype=p["dtype"])
        if y is None:
            raise ValueError("RNNRegressor requires y to be passed, but the target y is None")
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y", estimator=self)
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D (n_samples,) or 2-D (n_samples, n_outputs), got "
                             f"{y.ndim}-D of shape {y.shape}")
        check_consistent_length(lengths, y)
        y2 = y.reshape(len(y), -1)  # (N, C)
        if self.warm_start and hasattr(self, "model_") and y2.shape[1] != self.n_outputs_:
            raise ValueError(f"warm_start needs the same number of targets as the previous "
                             f"fit ({self.n_outputs_}), got {y2.shape[1]}")
        self._y_ndim = y.ndim
        self.n_outputs_ = y2.shape[1]
        self.target_scaler_ = StandardScaler().fit(y2)
        target = self.target_scaler_.transform(y2).astype(p["dtype"])

        return self._fit_model(p, x, lengths, target, output_size=self.n_outputs_, loss="mse",
                               score=_validation_r2)

    def predict(self, X, lengths=None):
        """Predicted targets of each sequence.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The shape of the ``y`` given to :meth:`fit`; float64.
        """
        check_is_fitted(self, "model_")
        x, lengths = self._validate_X(X, lengths, reset=False, dtype=self.model_.dtype)
        out = self.target_scaler_.inverse_transform(
            self._forward(x, lengths).astype(np.float64))  # (N, C)
        return out[:, 0] if self._y_ndim == 1 else out

    def score(self, X, y, sample_weight=None, lengths=None):
        """R² of the predictions on ``(X, y)`` (uniform average over outputs)."""
        return r2_score(y, self.predict(X, lengths=lengths), sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _fitted_state(self):
        return {**super()._fitted_state(), "n_outputs_": int(self.n_outputs_),
                "y_ndim": int(self._y_ndim), "target_scaler_": self.target_scaler_.to_dict()}

    def _restore_state(self, state):
        super()._restore_state(state)
        self.n_outputs_ = int(state["n_outputs_"])
        self._y_ndim = int(state["y_ndim"])
        self.target_scaler_ = scaler_from_dict(state["target_scaler_"])


# --------------------------------------------------------------- forecaster
_SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler}


class RNNForecaster(_RNNBase):
    __doc__ = _doc("""Recurrent-network forecaster of a series, with optional exogenous inputs.

    The network reads windows of the ``window`` most recent observations
    and predicts the next one (``strategy='recursive'``: multi-step
    forecasts feed each prediction back as an input) or the next
    ``horizon`` at once (``strategy='direct'``). ``fit(y, X=None)`` learns
    from a series; ``predict(horizon, X=None)`` forecasts the steps after its
    end, as sktime's ``fit``/``predict(fh)`` do.

    Parameters
    ----------
    window : int, default=12
        w, the observations each prediction reads.
    horizon : int, default=1
        With ``strategy='direct'``: the steps predicted at once, the longest
        forecast :meth:`predict` can make. The default of :meth:`predict`.
    strategy : {'recursive', 'direct'}, default='recursive'
        Multi-step forecasting by feeding one-step predictions back, or with
        one output per future step (no error accumulation, fixed horizon).
    scaler : {'standard', 'minmax'} or None, default='standard'
        How the series and the exogenous inputs are scaled; fitted on the
        training part only (without the validation tail of ``early_stopping``).
{common_params}

    Attributes
    ----------
    n_series_ : int
        k, the series forecast together (columns of ``y``).
    n_exog_ : int
        m, exogenous input columns (0 without ``X``).
    y_scaler_ : StandardScaler or MinMaxScaler or None
        Fitted on the training part of ``y``.
    X_scaler_ : StandardScaler or MinMaxScaler or None
        Fitted on the training part of ``X``; None without ``X``.
    y_last_ : ndarray of shape (window, k)
        The last observations (original units): the context of the next forecast.
    X_last_ : ndarray of shape (window, m) or None
        The exogenous inputs of the same steps.
    n_observations_ : int
        Observations seen by ``fit`` and :meth:`update`.
{common_attrs}

    See Also
    --------
    rnnkit.data.series.make_windows : The windows the network learns from.
    RNNRegressor : Sequences to values, when the windows are built elsewhere.

    Notes
    -----
    Step ``τ`` of a window carries ``[y_τ, X_{τ+1}]``: exogenous inputs are
    covariates known in advance (a calendar, a planned input), used for the
    step they describe. So :meth:`predict` needs ``X`` for exactly the forecast
    steps, and with ``strategy='direct'`` only the first of them informs the
    forecast. ``n_features_in_`` is ``k + m``, the inputs of one window step.

    With ``early_stopping``, the last ``validation_fraction`` of the series
    is the validation part: the scalers and the training windows see only
    the part before it, and the validation score is the one-step (or direct)
    R² on windows whose targets lie in it.

    :meth:`score` forecasts ``len(y)`` steps after the training data and
    returns R², so ``cross_val_score(forecaster, y, cv=TimeSeriesSplit())``
    evaluates forecasts of each test block from the data before it. For
    one-step-ahead evaluation with the true history, alternate
    ``predict(1)`` and :meth:`update`, or use
    :func:`rnnkit.data.series.holdout_windows` with :meth:`predict_windows`.

    References
    ----------
    Taieb, S. B. et al. (2012). A review and comparison of strategies for
    multi-step ahead time series forecasting based on the NN5 forecasting
    competition. Expert Systems with Applications 39(8), 7067-7083.

    Löning, M. et al. (2019). sktime: A unified interface for machine
    learning with time series. arXiv:1909.07872.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit.estimators import RNNForecaster
    >>> y = np.sin(np.arange(120) * 2 * np.pi / 12)  # a 12-step season
    >>> f = RNNForecaster(window=12, hidden_size=16, max_iter=60,
    ...                   learning_rate_init=0.02, random_state=0).fit(y[:108])
    >>> f.predict(12).shape
    (12,)
    >>> bool(f.score(y[108:]) > 0.5)
    True
    """)

    def __init__(self, window=12, horizon=1, strategy="recursive", scaler="standard", *,
                 cell="lstm", hidden_size=64, num_layers=1, bidirectional=False, dropout=0.0,
                 alpha=1e-4, batch_size=32, learning_rate_init=1e-3, max_iter=200, tol=1e-4,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 random_state=None, warm_start=False, verbose=False, dtype="float32"):
        self.window = window
        self.horizon = horizon
        self.strategy = strategy
        self.scaler = scaler
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.dtype = dtype

    def _validated_params(self):
        p = super()._validated_params()
        p["window"] = check_int(self.window, "window", minimum=1)
        p["horizon"] = check_int(self.horizon, "horizon", minimum=1)
        p["strategy"] = check_choice(self.strategy, "strategy", ("recursive", "direct"))
        p["scaler"] = check_choice(self.scaler, "scaler", ("standard", "minmax", None))
        return p

    def _check_array(self, a, name):
        """scikit-learn's conversion (pandas, sparse and complex refused, dtype) before ours."""
        return check_array(a, ensure_2d=False, allow_nd=True, dtype="numeric",
                           ensure_all_finite=False, input_name=name, estimator=self)

    def _new_scaler(self, p, data):
        return None if p["scaler"] is None else _SCALERS[p["scaler"]]().fit(data)

    @staticmethod
    def _apply(scaler, data):
        return data if scaler is None else scaler.transform(data)

    def _windows(self, ys, xs, w, h):
        """Windows of the scaled series: inputs (N, w, k+m), targets (N, h*k), target start."""
        n = ys.shape[0]
        N = n - w - h + 1
        idx = np.arange(N)[:, None] + np.arange(w)[None, :]  # (N, w) time of each input step
        inputs = ys[idx]  # (N, w, k)
        if xs is not None:
            inputs = np.concatenate([inputs, xs[idx + 1]], axis=2)  # (N, w, k+m): X_{τ+1}
        targets = ys[np.arange(N)[:, None] + w + np.arange(h)[None, :]]  # (N, h, k)
        return inputs, targets.reshape(N, -1), np.arange(N) + w

    def fit(self, y, X=None):
        """Fit the network to the series ``y`` (and exogenous inputs ``X``).

        Parameters
        ----------
        y : array_like of shape (n_timesteps,) or (n_timesteps, n_series)
            The observed series, oldest first.
        X : array_like of shape (n_timesteps,) or (n_timesteps, n_exog), optional
            Exogenous inputs aligned with ``y`` (row t belongs to time t).

        Returns
        -------
        self : RNNForecaster

        Raises
        ------
        ValueError
            A series too short for ``window`` (and ``horizon``, and the
            validation part of ``early_stopping``), NaN or infinite values, a
            wrong rank, or ``X`` of another length.
        """
        p = self._validated_params()
        w = p["window"]
        h = p["horizon"] if p["strategy"] == "direct" else 1
        y_arr = self._check_array(y, "y")
        ys = check_series(y_arr, name="y")
        n, k = ys.shape
        xs = None
        if X is not None:
            xs = check_series(self._check_array(X, "X"), name="X")
            if xs.shape[0] != n:
                raise ValueError(f"X (exogenous inputs) has {xs.shape[0]} rows, but y has {n} "
                                 "observations: give one row per observation")
        if self.warm_start and hasattr(self, "model_") and (
                k != self.n_series_ or (0 if xs is None else xs.shape[1]) != self.n_exog_):
            raise ValueError("warm_start needs series and exogenous inputs of the same widths "
                             "as the previous fit")
        if n < w + h:
            raise ValueError(f"y is too short for the window: window ({w}) + horizon ({h}) = "
                             f"{w + h} observations are needed for one training window, y has "
                             f"{n}")
        n_train = n
        if self.early_stopping:
            n_val = math.ceil(p["validation_fraction"] * n)
            n_train = n - n_val
            if n_train < w + h or n_val < h:
                raise ValueError(f"y is too short for early_stopping: {n} observations leave "
                                 f"{n_train} for training (window + horizon = {w + h} needed) "
                                 f"and {n_val} for validation ({h} needed); lower the window "
                                 "or validation_fraction")
        # the scalers see the training part only, never the validation tail
        self.y_scaler_ = self._new_scaler(p, ys[:n_train])
        self.X_scaler_ = None if xs is None else self._new_scaler(p, xs[:n_train])
        ys_s = self._apply(self.y_scaler_, ys)
        xs_s = None if xs is None else self._apply(self.X_scaler_, xs)
        inputs, targets, t0 = self._windows(ys_s, xs_s, w, h)
        train = t0 + h <= n_train  # every target in the training part
        val = None
        if self.early_stopping:
            in_val = t0 >= n_train  # every target in the validation part
            xv, lv = as_padded(inputs[in_val], dtype=p["dtype"])
            val = (xv, lv, targets[in_val])
        x, lengths = as_padded(inputs[train], dtype=p["dtype"])
        self.n_series_ = k
        self.n_exog_ = 0 if xs is None else xs.shape[1]
        self._y_ndim = y_arr.ndim
        self.n_features_in_ = k + self.n_exog_
        self.y_last_ = ys[-w:].copy()
        self.X_last_ = None if xs is None else xs[-w:].copy()
        self.n_observations_ = n

        return self._fit_model(p, x, lengths, targets[train].astype(p["dtype"]),
                               output_size=h * k, loss="mse", score=_validation_r2, val=val)

    def _check_future_X(self, X, horizon):
        if self.n_exog_ == 0:
            if X is not None:
                raise ValueError("X was not given to fit, so predict takes no X")
            return None
        if X is None:
            raise ValueError(f"this forecaster was fitted with exogenous inputs X: predict "
                             f"needs X for the {horizon} forecast step(s), shape "
                             f"({horizon}, {self.n_exog_})")
        xf = check_series(self._check_array(X, "X"), name="X")
        if xf.shape != (horizon, self.n_exog_):
            raise ValueError(f"X must hold the exogenous inputs of the {horizon} forecast "
                             f"step(s): shape ({horizon}, {self.n_exog_}), got {xf.shape}")
        return self._apply(self.X_scaler_, xf)

    def predict(self, horizon=None, X=None):
        """Forecast the ``horizon`` steps after the last observation.

        Parameters
        ----------
        horizon : int, optional
            Steps to forecast; default ``self.horizon``. With
            ``strategy='direct'`` at most ``horizon`` of the fit.
        X : array_like of shape (horizon, n_exog), optional
            The exogenous inputs of the forecast steps; required when ``fit``
            had ``X``.

        Returns
        -------
        y_pred : ndarray of shape (horizon,) or (horizon, n_series)
            In the units (and rank) of the ``y`` given to :meth:`fit`.
        """
        check_is_fitted(self, "model_")
        h = check_int(self.horizon if horizon is None else horizon, "horizon", minimum=1)
        w = self.window
        direct = self.strategy == "direct"
        if direct and h > self.horizon:
            raise ValueError(f"strategy='direct' was fitted for horizon={self.horizon}; cannot "
                             f"forecast {h} steps (refit with a larger horizon, or use "
                             "strategy='recursive')")
        xf = self._check_future_X(X, h)
        k, dtype = self.n_series_, self.model_.dtype
        ys = list(self._apply(self.y_scaler_, self.y_last_))  # rows of times n-w .. n-1
        e = None
        if xf is not None:
            e = np.concatenate([self._apply(self.X_scaler_, self.X_last_), xf])  # n-w .. n+h-1
        steps = 1 if direct else h
        preds = []
        for s in range(steps):
            win = np.asarray(ys[s:s + w])  # (w, k): times n-w+s .. n-1+s
            if e is not None:
                win = np.concatenate([win, e[s + 1:s + 1 + w]], axis=1)  # X_{τ+1}
            out = self._forward(win[:, None, :].astype(dtype), np.array([w]))[0]  # (C,)
            out = out.astype(np.float64).reshape(-1, k)  # (h_out, k)
            if direct:
                preds = list(out[:h])
            else:
                preds.append(out[0])
                ys.append(out[0])
        pred = np.asarray(preds)  # (h, k), scaled
        if self.y_scaler_ is not None:
            pred = self.y_scaler_.inverse_transform(pred)
        return pred[:, 0] if self._y_ndim == 1 else pred

    def predict_windows(self, inputs):
        """One-step (or direct) predictions for given windows, in original units.

        Parameters
        ----------
        inputs : ndarray of shape (N, window, k + m)
            Unscaled windows, e.g. from :func:`rnnkit.data.series.holdout_windows`.

        Returns
        -------
        ndarray of shape (N, h, k) with h = 1 (recursive) or ``horizon`` (direct)
        """
        check_is_fitted(self, "model_")
        a = np.asarray(inputs, dtype=np.float64)
        k, m = self.n_series_, self.n_exog_
        if a.ndim != 3 or a.shape[2] != k + m:
            raise ValueError(f"inputs must have shape (N, window, {k + m}), got {a.shape}")
        a = a.copy()
        N, T = a.shape[:2]
        if self.y_scaler_ is not None:
            a[..., :k] = self.y_scaler_.transform(a[..., :k].reshape(-1, k)).reshape(N, T, k)
        if m and self.X_scaler_ is not None:
            a[..., k:] = self.X_scaler_.transform(a[..., k:].reshape(-1, m)).reshape(N, T, m)
        x, lengths = as_padded(a, dtype=self.model_.dtype, name="inputs")
        out = self._forward(x, lengths).astype(np.float64).reshape(N, -1, k)
        if self.y_scaler_ is not None:
            out = self.y_scaler_.inverse_transform(out.reshape(-1, k)).reshape(out.shape)
        return out

    def update(self, y, X=None):
        """Append new observations to the context of the next forecast (no refit).

        Like sktime's ``update(y, update_params=False)``: the weights and
        scalers stay as fitted; the next :meth:`predict` starts after ``y``.

        Parameters
        ----------
        y : array_like of shape (n_new,) or (n_new, n_series)
        X : array_like of shape (n_new, n_exog), optional
            Required when ``fit`` had ``X``.

        Returns
        -------
        self
        """
        check_is_fitted(self, "model_")
        ys = check_series(self._check_array(y, "y"), name="y")
        if ys.shape[1] != self.n_series_:
            raise ValueError(f"y has {ys.shape[1]} series, the forecaster {self.n_series_}")
        xs = None
        if self.n_exog_:
            if X is None:
                raise ValueError("this forecaster was fitted with X: update needs X for the "
                                 "new observations")
            xs = check_series(self._check_array(X, "X"), name="X")
            if xs.shape != (ys.shape[0], self.n_exog_):
                raise ValueError(f"X must have shape ({ys.shape[0]}, {self.n_exog_}), got "
                                 f"{xs.shape}")
        elif X is not None:
            raise ValueError("X was not given to fit, so update takes no X")
        w = self.window
        self.y_last_ = np.concatenate([self.y_last_, ys])[-w:]
        if xs is not None:
            self.X_last_ = np.concatenate([self.X_last_, xs])[-w:]
        self.n_observations_ += ys.shape[0]
        return self

    def score(self, y, X=None):
        """R² of a ``len(y)``-step forecast against the observed ``y``.

        ``y`` is the continuation of the series given to ``fit`` (and
        :meth:`update`); ``X`` its exogenous inputs, when ``fit`` had them.
        """
        ys = check_series(self._check_array(y, "y"), name="y")
        pred = self.predict(ys.shape[0], X)
        return r2_score(ys, pred.reshape(ys.shape))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = False
        tags.target_tags.required = False
        return tags

    def _fitted_state(self):
        def sc(s):
            return None if s is None else s.to_dict()

        return {**super()._fitted_state(), "n_series_": int(self.n_series_),
                "n_exog_": int(self.n_exog_), "y_ndim": int(self._y_ndim),
                "y_scaler_": sc(self.y_scaler_), "X_scaler_": sc(self.X_scaler_),
                "y_last_": self.y_last_.tolist(),
                "X_last_": None if self.X_last_ is None else self.X_last_.tolist(),
                "n_observations_": int(self.n_observations_)}

    def _restore_state(self, state):
        super()._restore_state(state)
        self.n_series_ = int(state["n_series_"])
        self.n_exog_ = int(state["n_exog_"])
        self._y_ndim = int(state["y_ndim"])
        self.y_scaler_ = None if state["y_scaler_"] is None else scaler_from_dict(
            state["y_scaler_"])
        self.X_scaler_ = None if state["X_scaler_"] is None else scaler_from_dict(
            state["X_scaler_"])
        self.y_last_ = np.asarray(state["y_last_"], dtype=np.float64).reshape(-1,
                                                                              self.n_series_)
        self.X_last_ = None if state["X_last_"] is None else np.asarray(
            state["X_last_"], dtype=np.float64).reshape(-1, self.n_exog_)
        self.n_observations_ = int(state["n_observations_"])
