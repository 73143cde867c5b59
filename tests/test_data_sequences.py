"""Padding, lengths and batching of labelled sequences (rnnkit.data.sequences; NumPy only)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rnnkit import SequenceModel, Trainer, TrainerConfig
from rnnkit.data.sequences import (
    SequenceBatches,
    as_padded,
    check_sequences,
    pad_sequences,
    unpad,
)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_pad_sequences_time_major_with_lengths(rng):
    seqs = [rng.normal(size=(t, 3)) for t in (4, 1, 3)]
    x, lengths = pad_sequences(seqs)
    assert x.shape == (4, 3, 3) and x.dtype == np.float64
    np.testing.assert_array_equal(lengths, [4, 1, 3])
    for b, s in enumerate(seqs):
        np.testing.assert_array_equal(x[: len(s), b], s)
        assert not x[len(s):, b].any()  # zero padding
    xb, _ = pad_sequences(seqs, batch_first=True, padding_value=-1.0, dtype=np.float32)
    assert xb.shape == (3, 4, 3) and xb.dtype == np.float32 and xb[1, 1, 0] == -1.0
    for a, b in zip(unpad(x, lengths), seqs):
        np.testing.assert_array_equal(a, b)


def test_univariate_sequences_get_a_feature_axis():
    out = check_sequences([[1.0, 2.0], np.array([3.0])])
    assert [a.shape for a in out] == [(2, 1), (1, 1)]


@pytest.mark.parametrize("seqs,error,match", [
    ([], ValueError, "sequences is empty"),
    ([np.ones((2, 1)), np.ones((0, 1))], ValueError, r"sequences\[1\] is an empty sequence"),
    ([np.ones((2, 2)), np.ones((2, 3))], ValueError,
     r"sequences\[1\] has 3 features per step, but sequences\[0\] has 2"),
    ([np.ones((2, 1, 1))], ValueError, r"sequences\[0\] must be 1-D \(T,\) or 2-D \(T, D\)"),
    ([np.array([[1.0], [np.nan]])], ValueError,
     r"sequences\[0\] contains NaN or infinite values \(first at step 1\)"),
    ([np.array([1 + 2j])], ValueError, "complex"),
    ([np.array(["a", "b"])], ValueError, "must contain numbers"),
    ("abc", TypeError, "must be a list of arrays"),
])
def test_check_sequences_errors(seqs, error, match):
    with pytest.raises(error, match=match):
        check_sequences(seqs)


def test_as_padded_layouts_and_lengths(rng):
    X = rng.normal(size=(5, 4, 2))  # batch-major (N, T, D)
    x, lengths = as_padded(X)
    assert x.shape == (4, 5, 2) and x.flags.c_contiguous
    np.testing.assert_array_equal(x, X.transpose(1, 0, 2))
    np.testing.assert_array_equal(lengths, [4] * 5)
    x2, _ = as_padded(X[:, :, 0])  # 2-D: univariate
    assert x2.shape == (4, 5, 1)
    X[1, 3:] = np.nan  # padding may hold anything, NaN included
    x3, lengths3 = as_padded(X, [4, 3, 4, 4, 4])
    assert np.isfinite(x3).all() and not x3[3, 1].any()
    np.testing.assert_array_equal(lengths3, [4, 3, 4, 4, 4])
    assert np.isnan(X[1, 3]).all()  # the caller's array is untouched


def test_as_padded_never_aliases_the_input():
    X = np.zeros((1, 3, 2))  # N == 1: the transpose is already contiguous
    x, _ = as_padded(X)
    x += 1.0
    assert not X.any()


@pytest.mark.parametrize("X,lengths,error,match", [
    (np.zeros(5), None, ValueError, "got a 1-D array"),
    (np.zeros((2, 3, 4, 5)), None, ValueError, "got a 4-D array"),
    (np.zeros((0, 3)), None, ValueError, "0 sequences"),
    (np.zeros((2, 0)), None, ValueError, "0 time steps"),
    (np.full((2, 3), np.nan), None, ValueError, r"first in sequence 0, step 0"),
    (np.zeros((2, 3)), [1, 4], ValueError, r"lengths must be in \[1, 3\]"),
    (np.zeros((2, 3)), [1, 2, 3], ValueError, r"lengths must have shape \(2,\)"),
    (np.zeros((2, 3)), [1.5, 2], TypeError, "lengths must be integers"),
    ([np.zeros((2, 1))], [2], TypeError, "lengths is for a padded array"),
])
def test_as_padded_errors(X, lengths, error, match):
    with pytest.raises(error, match=match):
        as_padded(X, lengths)


def test_batches_crop_to_the_longest_sequence_and_reshuffle(rng):
    seqs = [rng.normal(size=(t, 2)) for t in (5, 2, 3, 1, 4)]
    x, lengths = pad_sequences(seqs)
    y = np.arange(5)
    batches = SequenceBatches(x, y, lengths, batch_size=2)
    assert len(batches) == 3
    xb, yb, lb = batches[1]
    assert xb.shape == (3, 2, 2)  # sequences 2 and 3: the longest has 3 steps
    np.testing.assert_array_equal(yb, [2, 3])
    np.testing.assert_array_equal(lb, [3, 1])
    assert batches[2][0].shape == (4, 1, 2)
    shuffled = SequenceBatches(x, y, lengths, batch_size=2, shuffle=True, seed=3)
    order0 = shuffled.order.copy()
    assert sorted(order0) == list(range(5))
    shuffled.set_epoch(1)
    assert not np.array_equal(order0, shuffled.order)
    shuffled.set_epoch(0)
    np.testing.assert_array_equal(order0, shuffled.order)  # same seed and epoch, same order
    assert len(SequenceBatches(x, y, lengths, batch_size=2, drop_last=True)) == 2
    with pytest.raises(IndexError):
        batches[3]
    with pytest.raises(ValueError, match="Expected 5 targets"):
        SequenceBatches(x, y[:4], lengths)


def test_trainer_learns_from_sequence_batches(rng):
    """The batches plug into the Trainer: a many-to-one model learns 'last value > 0'."""
    seqs = [rng.normal(size=(int(t), 1)) for t in rng.integers(2, 8, size=128)]
    y = np.array([int(s[-1, 0] > 0) for s in seqs])
    x, lengths = pad_sequences(seqs, dtype=np.float32)
    batches = SequenceBatches(x, y, lengths, batch_size=32)
    model = SequenceModel(1, 8, 2, cell="gru", task="many_to_one", rng=0)
    trainer = Trainer(model, TrainerConfig(lr=0.05, epochs=25, shuffle=True, progress=False),
                      batches)
    history = trainer.fit()
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]


def test_core_data_layer_imports_no_sklearn_or_dask():
    code = ("import sys, rnnkit, rnnkit.data.sequences, rnnkit.data.series; "
            "bad = [m for m in ('sklearn', 'dask', 'distributed', 'joblib') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
