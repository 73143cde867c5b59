"""Regression tests for bugs an adversarial review found (each failed before its fix)."""

import os
import shutil
import stat

import numpy as np
import pytest

import rnnkit
from rnnkit import SequenceModel, Trainer, TrainerConfig, TrainingError
from rnnkit.data import TextStream, Vocabulary
from rnnkit.io import ModelFileError, load_checkpoint, load_model, save_checkpoint, save_model

TEXT = "the quick brown fox jumps over the lazy dog. " * 200


def _vocab_ids():
    v = Vocabulary.from_text(TEXT)
    return v, v.encode(TEXT)


def _trainer(folder, **cfg):
    v, ids = _vocab_ids()
    m = SequenceModel(len(v), 8, len(v), encoder="embedding", num_layers=2, dropout=0.3, rng=0)
    config = {"max_steps": 30, "eval_every": 10, "stateful": True, "progress": False,
                  "checkpoint_dir": os.fspath(folder)}
    config.update(cfg)
    return m, Trainer(m, TrainerConfig(**config), TextStream(ids[:8000], 4, 8),
                      TextStream(ids[8000:], 2, 8))


def test_interrupt_during_validation_resumes_bit_identically(tmp_path):
    ma, ta = _trainer(tmp_path / "a")
    ta.fit()
    _mb, tb = _trainer(tmp_path / "b")
    evaluate = tb.evaluate

    def interrupted(*a, **k):  # the step's update is done; its validation is cut short
        if tb.pos.step == 10:
            raise KeyboardInterrupt
        return evaluate(*a, **k)

    tb.evaluate = interrupted
    with pytest.raises(KeyboardInterrupt):
        tb.fit()
    mc, tc = _trainer(tmp_path / "b")
    tc.load_checkpoint()
    assert tc.pos.step == 10
    tc.fit()
    assert all(np.array_equal(ma.params[k], mc.params[k]) for k in ma.params)


def test_numpy_scalars_in_the_config_do_not_lose_the_run(tmp_path):
    _m, t = _trainer(tmp_path, max_steps=np.int64(5), lr=np.float32(0.01), seed=np.int64(0),
                    clip_grad_norm=np.float32(1.0))
    t.fit()
    _, state = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert state["position"]["step"] == 5
    assert type(t.config.max_steps) is int and type(t.config.lr) is float


def test_non_finite_loss_gradient_is_a_training_error_with_a_checkpoint(tmp_path):
    v, ids = _vocab_ids()

    class M(SequenceModel):
        calls = 0

        def loss(self, y, target, mask=None):
            value, d = super().loss(y, target, mask)
            M.calls += 1
            if M.calls == 5:
                d = d.copy()
                d[0, 0, 0] = np.inf
            return value, d

    t = Trainer(M(len(v), 8, len(v), encoder="embedding", rng=0),
                TrainerConfig(max_steps=20, progress=False, checkpoint_dir=os.fspath(tmp_path)),
                TextStream(ids, 4, 8))
    with pytest.raises(TrainingError, match="step 5"):
        t.fit()
    _, state = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert state["position"]["step"] == 4


def test_resuming_an_early_stopped_run_keeps_it_stopped(tmp_path):
    _m, t = _trainer(tmp_path, lr=1e-12, eval_every=1, early_stopping_patience=1,
                    min_delta=1.0, max_steps=50)
    t.fit()
    stopped_at = t.pos.step
    assert stopped_at < 50
    _m2, t2 = _trainer(tmp_path, lr=1e-12, eval_every=1, early_stopping_patience=1,
                      min_delta=1.0, max_steps=50)
    t2.load_checkpoint()
    t2.fit()
    assert t2.pos.step == stopped_at


def test_backward_with_a_bad_argument_keeps_the_cache():
    layer = rnnkit.LSTM(4, 3, rng=0)
    _out, _ = layer.forward(np.ones((5, 2, 4), np.float32))
    with pytest.raises(TypeError):
        layer.backward(np.ones((5, 2, 3)))  # float64 into a float32 layer
    d_x, _ = layer.backward(np.ones((5, 2, 3), np.float32))  # the corrected call works
    assert d_x.shape == (5, 2, 4)
    cell = rnnkit.GRUCell(2, 3, rng=0)
    cell.forward(np.ones((1, 2), np.float32))
    with pytest.raises(ValueError):
        cell.backward(np.ones((1, 4), np.float32))
    cell.backward(np.ones((1, 3), np.float32))


def test_model_load_state_dict_checks_everything_before_copying():
    m = SequenceModel(3, 4, 2, rng=0)
    before = m.state_dict()
    sd = m.state_dict()
    sd["rnn.weight_ih_l0"] = sd["rnn.weight_ih_l0"] + 1.0
    sd["head.bias"] = np.array(["x", "y"])
    with pytest.raises(ValueError, match="head.bias"):
        m.load_state_dict(sd)
    assert all(np.array_equal(before[k], m.params[k]) for k in before)  # nothing half-loaded
    sd["head.bias"] = np.array([1.0, np.nan], np.float32)
    with pytest.raises(ValueError, match="NaN"):
        m.load_state_dict(sd)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_weights_linked_to_a_device_are_refused(tmp_path):
    folder = tmp_path / "evil"
    save_model(folder, SequenceModel(3, 4, 2, rng=0))
    os.remove(folder / "model.safetensors")
    os.symlink("/dev/zero", folder / "model.safetensors")
    with pytest.raises(ModelFileError, match="not a regular file"):
        load_model(folder)


def test_resume_refuses_damaged_charlm_checkpoints(tmp_path):
    from rnnkit.charlm import CharLMSettings, resume_char_model, train_char_model
    from rnnkit.training import TrainerConfig as TC

    run = tmp_path / "run"
    train_char_model(TEXT, CharLMSettings(hidden_size=8, seq_len=8, batch_size=4,
                                          embedding_dim=4),
                     TC(max_steps=2, epochs=None, progress=False), out_dir=os.fspath(run),
                     log=lambda line: None)
    arrays, state = load_checkpoint(run / "checkpoint.safetensors")
    for mutate, match in ((lambda s: s.__setitem__("metadata", ["x"]), "not a checkpoint"),
                          (lambda s: s["metadata"]["settings"].__setitem__("num_layers", 10**12),
                           "declares")):
        bad = tmp_path / f"bad{len(match)}"
        bad.mkdir()
        s = {**state, "metadata": {**state["metadata"],
                                   "settings": dict(state["metadata"]["settings"])}}
        mutate(s)
        save_checkpoint(bad / "checkpoint.safetensors", arrays, s)
        with pytest.raises(ModelFileError, match=match):
            resume_char_model(bad, TEXT, log=lambda line: None)


def test_saved_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        save_model(tmp_path / "m", SequenceModel(3, 4, 2, rng=0))
    finally:
        os.umask(old)
    for name in ("model.safetensors", "config.json"):
        assert stat.S_IMODE(os.stat(tmp_path / "m" / name).st_mode) == 0o644
    shutil.rmtree(tmp_path / "m")


def test_ctrnn_models_save_load_and_inspect(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from rnnkit import CTRNNModel
    from rnnkit.cli import main

    m = CTRNNModel(3, 10, 2, dale_ratio=0.8, rng=0)
    save_model(tmp_path / "m", m)
    loaded, _ = load_model(tmp_path / "m")
    assert type(loaded) is CTRNNModel
    assert all(np.array_equal(m.params[k], loaded.params[k]) for k in m.params)
    assert main(["inspect", str(tmp_path / "m"), "--out", str(tmp_path / "png")]) == 0
    assert (tmp_path / "png" / "states.png").stat().st_size > 0


def test_unknown_model_kind_is_refused(tmp_path):
    import json

    save_model(tmp_path / "m", SequenceModel(3, 4, 2, rng=0))
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["kind"] = "Pickle"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="unknown model kind"):
        load_model(tmp_path / "m")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_metadata_that_contradicts_the_weights_is_refused(tmp_path):
    import json

    pytest.importorskip("sklearn")
    from rnnkit.estimators import RNNClassifier, RNNForecaster, load_estimator

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 6, 2))
    RNNClassifier(hidden_size=4, max_iter=2, random_state=0).fit(X, np.arange(20) % 4).save(
        tmp_path / "c")
    RNNForecaster(window=3, hidden_size=4, max_iter=2, random_state=0).fit(
        rng.standard_normal(50)).save(tmp_path / "f")
    for folder, edit, match in (
            ("c", lambda m: m["fitted"]["classes_"].__setitem__("values", [0]), "1 classes"),
            ("c", lambda m: m["params"].__setitem__("hidden_size", 5), "hidden_size"),
            ("f", lambda m: m["params"].__setitem__("window", 0), "window")):
        load_estimator(tmp_path / folder)  # loads before the edit
        path = tmp_path / folder / "config.json"
        cfg = json.loads(path.read_text())
        edit(cfg["metadata"])
        path.write_text(json.dumps(cfg))
        with pytest.raises(ModelFileError, match=match):
            load_estimator(tmp_path / folder)
        cfg = json.loads(path.read_text())  # restore for the next edit
        shutil.rmtree(tmp_path / folder)
        if folder == "c":
            RNNClassifier(hidden_size=4, max_iter=2, random_state=0).fit(
                X, np.arange(20) % 4).save(tmp_path / "c")


def test_subpackages_are_attributes_of_a_bare_import_rnnkit():
    """README: ``import rnnkit`` then ``rnnkit.datasets.load(...)`` (new-user trial: it was
    an AttributeError unless something else had imported rnnkit.datasets)."""
    import subprocess
    import sys

    code = ("import rnnkit\n"
            "assert callable(rnnkit.datasets.load) and callable(rnnkit.io.save_model)\n"
            "assert rnnkit.optim.Adam and rnnkit.estimators.RNNClassifier\n"
            "assert 'datasets' in dir(rnnkit)\n"
            "try:\n    rnnkit.no_such_thing\nexcept AttributeError as e:\n"
            "    assert 'no_such_thing' in str(e)\nelse:\n    raise SystemExit('no error')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
