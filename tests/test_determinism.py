"""Same seed, same bits: training, sampling and the estimators, run after run.

Each test repeats a seeded computation and compares every bit; a second seed
must give other numbers, so that a seed that is ignored cannot pass. The
global NumPy random state is disturbed between the runs: rnnkit must never
read it. One test repeats training in two fresh interpreters with different
hash seeds, so that nothing depends on the order of a set or a dict.

What may change the bits (see the README): the number of BLAS threads and
the BLAS library or CPU kernel, which can reorder the sums of a matrix
product. The tests here compare runs with the same thread count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from rnnkit import SequenceModel
from rnnkit.charlm import CharLMSettings, sample_text, train_char_model
from rnnkit.data.text import builtin_corpus
from rnnkit.functional import sample_logits
from rnnkit.training import TrainerConfig

TEXT = builtin_corpus()[:5000]
SETTINGS = CharLMSettings(cell="lstm", hidden_size=16, embedding_dim=8, num_layers=2,
                          dropout=0.3, seq_len=16, batch_size=4, seed=5)
TRAINER = TrainerConfig(max_steps=25, lr=1e-2, eval_every=10, progress=False)


def same_bits(a, b):
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


_DISTURBANCES = iter(range(1, 10**6))


def disturb_global_numpy_state():
    """Put the global NumPy generator in another state before every run: it must not matter."""
    np.random.seed(next(_DISTURBANCES))
    np.random.random(1000)


def train(seed=5):
    disturb_global_numpy_state()
    settings = CharLMSettings(**{**SETTINGS.__dict__, "seed": seed})
    return train_char_model(TEXT, settings, TRAINER, log=lambda line: None)


def test_training_twice_with_the_same_seed_gives_the_same_bits():
    a, b = train(), train()
    assert same_bits(a.model.params, b.model.params)
    assert a.history["train_loss"] == b.history["train_loss"]
    assert a.val_loss == b.val_loss
    other = train(seed=6)
    assert not same_bits(a.model.params, other.model.params), "the seed is ignored"


def test_sampling_with_the_same_seed_gives_the_same_text():
    result = train()
    model, vocab = result.model, result.vocab
    disturb_global_numpy_state()
    first = sample_text(model, vocab, prime="The ", length=120, temperature=0.9, seed=7)
    disturb_global_numpy_state()
    again = sample_text(model, vocab, prime="The ", length=120, temperature=0.9, seed=7)
    assert first == again
    assert sample_text(model, vocab, prime="The ", length=120, temperature=0.9, seed=8) != first
    logits = np.random.default_rng(0).standard_normal((6, 30))
    draws = [sample_logits(logits, 1.0, np.random.default_rng(3)).tolist() for _ in range(2)]
    assert draws[0] == draws[1]


def test_models_built_with_the_same_seed_are_equal_and_dropout_draws_repeat():
    def run(seed):
        disturb_global_numpy_state()
        m = SequenceModel(5, 6, 3, cell="gru", num_layers=2, dropout=0.5, rng=seed)
        y, _ = m.forward(np.random.default_rng(1).standard_normal((7, 2, 5)).astype(np.float32))
        return m.params, y

    (p1, y1), (p2, y2), (p3, y3) = run(4), run(4), run(9)
    assert same_bits(p1, p2) and np.array_equal(y1, y2)
    assert not same_bits(p1, p3) and not np.array_equal(y1, y3)


@pytest.mark.parametrize("kind", ["classifier", "regressor", "forecaster"])
def test_estimators_with_the_same_random_state_fit_the_same_bits(kind):
    from rnnkit.estimators import RNNClassifier, RNNForecaster, RNNRegressor

    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 6, 2))
    kw = {"hidden_size": 5, "num_layers": 2, "dropout": 0.2, "max_iter": 3, "batch_size": 8,
          "early_stopping": True, "validation_fraction": 0.25, "n_iter_no_change": 5}

    def fit(seed):
        disturb_global_numpy_state()
        if kind == "classifier":
            est = RNNClassifier(random_state=seed, **kw).fit(X, X[:, :, 0].sum(axis=1) > 0)
            return est, est.predict_proba(X)
        if kind == "regressor":
            est = RNNRegressor(random_state=seed, **kw).fit(X, X.sum(axis=(1, 2)))
            return est, est.predict(X)
        est = RNNForecaster(window=4, random_state=seed, **kw).fit(np.sin(np.arange(60.0) / 3))
        return est, est.predict(5)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=3 does not converge, by design
        (e1, out1), (e2, out2), (e3, _) = fit(0), fit(0), fit(1)
    assert same_bits(e1.model_.params, e2.model_.params)
    assert np.array_equal(out1, out2)
    assert e1.loss_curve_ == e2.loss_curve_
    assert not same_bits(e1.model_.params, e3.model_.params), "random_state is ignored"


CHILD = textwrap.dedent("""
    import sys

    from rnnkit.charlm import CharLMSettings, train_char_model
    from rnnkit.data.text import builtin_corpus
    from rnnkit.training import TrainerConfig

    settings = CharLMSettings(cell="gru", hidden_size=16, embedding_dim=8, num_layers=2,
                              dropout=0.3, seq_len=16, batch_size=4, seed=5)
    train_char_model(builtin_corpus()[:5000], settings,
                     TrainerConfig(max_steps=15, lr=1e-2, progress=False),
                     out_dir=sys.argv[1], log=lambda line: None)
""")


def test_two_fresh_interpreters_write_the_same_model_file(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    outs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"run{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run([sys.executable, str(script), str(out)], env=env, check=False,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        outs.append(out)
    a, b = (o / "model.safetensors" for o in outs)
    assert a.read_bytes() == b.read_bytes(), "the weights differ between two runs"
    ca, cb = (json.loads((o / "config.json").read_text()) for o in outs)
    assert ca == cb
