"""Trainer: learning, history, stopping rules, clipping, exact resume, failures, progress."""

from __future__ import annotations

import itertools
import math
import sys

import numpy as np
import pytest

from rnnkit import SequenceModel, Trainer, TrainerConfig, TrainingError
from rnnkit.data.text import TextStream, Vocabulary, builtin_corpus
from rnnkit.io import load_checkpoint
from rnnkit.training import CHECKPOINT_NAME

T_SUM, B_SUM = 8, 16


@pytest.fixture
def rng():
    return np.random.default_rng(4242)


def sum_sign_batches(rng, n_batches, T=T_SUM, B=B_SUM):
    """Many-to-one task: is the sum of the sequence positive? x (T, B, 1), y (B,)."""
    batches = []
    for _ in range(n_batches):
        x = rng.standard_normal((T, B, 1)).astype(np.float32)
        y = (x.sum(axis=(0, 2)) > 0).astype(np.int64)
        batches.append((x, y))
    return batches


def sum_sign_model(seed=0, **kwargs):
    kwargs = {"cell": "gru", **kwargs}
    return SequenceModel(1, 8, 2, task="many_to_one", rng=seed, **kwargs)


def quiet(**kwargs):
    return TrainerConfig(progress=False, **kwargs)


class Recorder(SequenceModel):
    """Records the loss of every training step (evaluation calls are not counted)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_losses = []

    def loss(self, y, target, mask=None):
        value, dy = super().loss(y, target, mask)
        if self.training:
            self.train_losses.append(value)
        return value, dy


def accuracy(model, batches):
    model.eval()
    hits = total = 0
    for x, y in batches:
        pred = model.forward(x)[0].argmax(axis=-1)
        hits += int((pred == y).sum())
        total += y.size
    return hits / total


# --------------------------------------------------------------------- learning
def test_learns_sum_sign_classifier(rng):
    train = sum_sign_batches(rng, 40)
    test = sum_sign_batches(rng, 20)
    model = sum_sign_model(seed=1)
    before = accuracy(model, test)
    model.train()
    history = Trainer(model, quiet(lr=0.02, epochs=8), train, test[:5]).fit()
    acc = accuracy(model, test)
    assert acc > 0.9, f"accuracy {acc:.3f} after training (chance level ~0.5; before {before:.3f})"
    assert history["val_loss"][-1] < 0.5 * history["val_loss"][0]


def test_training_skips_the_input_gradient_where_the_model_allows(rng, monkeypatch):
    """SequenceModel.backward takes input_grad: the Trainer asks for no d_input."""
    model = sum_sign_model(seed=1)
    seen = []
    real = model.backward

    def spy(dy, *, input_grad=True):
        seen.append(input_grad)
        return real(dy, input_grad=input_grad)
    monkeypatch.setattr(model, "backward", spy)
    Trainer(model, quiet(lr=0.02, epochs=1), sum_sign_batches(rng, 3)).fit()
    assert seen == [False] * 3


# ---------------------------------------------------------------------- history
def test_history_has_one_entry_per_evaluation(rng):
    train = sum_sign_batches(rng, 10)
    val = sum_sign_batches(rng, 3)
    model = Recorder(1, 4, 2, task="many_to_one", rng=0)
    trainer = Trainer(model, quiet(epochs=2, eval_every=3), train, val)
    h = trainer.fit()
    assert h["step"] == [3, 6, 9, 12, 15, 18, 20]  # every 3 steps and the last step
    assert h["epoch"] == [0, 0, 0, 1, 1, 1, 1]
    assert set(h) >= {"step", "epoch", "train_loss", "val_loss", "lr", "time"}
    assert all(len(v) == 7 for v in h.values())
    assert h["lr"] == [2e-3] * 7
    assert all(math.isfinite(v) for v in h["val_loss"])
    assert h["time"] == sorted(h["time"])
    # train_loss is the mean of the step losses since the previous evaluation
    losses = model.train_losses
    assert len(losses) == 20
    bounds = [0] + h["step"]
    expected = [np.mean(losses[a:b]) for a, b in itertools.pairwise(bounds)]
    np.testing.assert_allclose(h["train_loss"], expected, rtol=1e-12)
    # the last val_loss is what evaluate() gives for the final weights
    assert trainer.evaluate(val) == pytest.approx(h["val_loss"][-1], rel=1e-12)


def test_history_once_per_epoch_and_without_validation(rng):
    train = sum_sign_batches(rng, 10)
    h = Trainer(sum_sign_model(), quiet(epochs=3, eval_every=0), train).fit()
    assert h["step"] == [10, 20, 30]
    assert h["epoch"] == [0, 1, 2]
    assert all(math.isnan(v) for v in h["val_loss"])
    assert all(math.isfinite(v) for v in h["train_loss"])


# ---------------------------------------------------------- epochs and max_steps
@pytest.mark.parametrize("epochs, max_steps, expected", [
    (3, 7, 7),      # max_steps inside the first epoch
    (3, 14, 14),    # max_steps inside the second epoch
    (2, None, 20),  # epochs alone
    (2, 100, 20),   # epochs end first
])
def test_epochs_and_max_steps_are_respected(rng, epochs, max_steps, expected):
    train = sum_sign_batches(rng, 10)
    model = Recorder(1, 4, 2, task="many_to_one", rng=0)
    trainer = Trainer(model, quiet(epochs=epochs, max_steps=max_steps), train)
    h = trainer.fit()
    assert len(model.train_losses) == expected
    assert trainer.pos.step == expected
    assert h["step"][-1] == expected


# --------------------------------------------------------------- early stopping
@pytest.mark.parametrize("patience", [1, 2])
def test_early_stopping_stops_when_validation_cannot_improve(rng, patience):
    """lr 1e-12 cannot move float32 weights, so the validation loss never improves."""
    train = sum_sign_batches(rng, 10)
    val = sum_sign_batches(rng, 2)
    model = Recorder(1, 4, 2, task="many_to_one", rng=0)
    before = model.state_dict()
    config = quiet(optimizer="sgd", lr=1e-12, epochs=5, eval_every=3,
                   early_stopping_patience=patience)
    trainer = Trainer(model, config, train, val)
    h = trainer.fit()
    stop = 3 * (patience + 1)  # the first evaluation sets the best, `patience` more fail
    assert h["step"] == list(range(3, stop + 1, 3))
    assert trainer.pos.step == stop and len(model.train_losses) == stop
    assert len(set(h["val_loss"])) == 1
    for k, v in before.items():
        np.testing.assert_array_equal(model.params[k], v, err_msg=k)


def test_no_early_stopping_while_improving(rng):
    train = sum_sign_batches(rng, 10)
    val = sum_sign_batches(rng, 2)
    trainer = Trainer(sum_sign_model(), quiet(lr=0.01, epochs=2, eval_every=5,
                                              early_stopping_patience=1), train, val)
    trainer.fit()
    assert trainer.pos.step == 20


# ----------------------------------------------------------------------- clipping
def test_gradient_clipping_is_applied(rng):
    """Targets of 1e4 give a huge gradient; SGD with lr=1 moves by at most the clip norm."""
    x = rng.standard_normal((5, 4, 2)).astype(np.float32)
    y = (1e4 * rng.standard_normal((5, 4, 1))).astype(np.float32)
    data = [(x, y)]

    def mse_model():
        return SequenceModel(2, 4, 1, cell="lstm", loss="mse", rng=3)

    probe = mse_model()
    out, _ = probe.forward(x)
    probe.backward(probe.loss(out, y)[1])
    g = {k: v.astype(np.float64) for k, v in probe.grads.items()}
    norm = math.sqrt(sum(float((v * v).sum()) for v in g.values()))
    assert norm > 1e3

    clip = 0.5
    model = mse_model()
    before = model.state_dict()
    Trainer(model, quiet(optimizer="sgd", lr=1.0, clip_grad_norm=clip, max_steps=1),
            data).fit()
    delta = {k: model.params[k].astype(np.float64) - before[k] for k in before}
    moved = math.sqrt(sum(float((v * v).sum()) for v in delta.values()))
    assert moved == pytest.approx(clip, rel=1e-3)
    for k, d in delta.items():  # the step is -lr * g * clip / |g|
        np.testing.assert_allclose(d, -g[k] * clip / norm, rtol=1e-3, atol=1e-6, err_msg=k)

    # many steps stay finite with clipping
    model = mse_model()
    h = Trainer(model, quiet(optimizer="sgd", lr=1.0, clip_grad_norm=clip, max_steps=30),
                data).fit()
    assert all(np.isfinite(p).all() for p in model.params.values())
    assert all(math.isfinite(v) for v in h["train_loss"])

    # without clipping the same step moves the weights by the whole gradient
    model = mse_model()
    Trainer(model, quiet(optimizer="sgd", lr=1.0, clip_grad_norm=None, max_steps=1),
            data).fit()
    moved = math.sqrt(sum(float(((model.params[k] - before[k]) ** 2).sum()) for k in before))
    assert moved == pytest.approx(norm, rel=1e-3)


# ----------------------------------------------------------------- exact resume
def text_data():
    text = builtin_corpus()[:3000]
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    return len(vocab), TextStream(ids[:2600], 4, 16), TextStream(ids[2600:], 2, 16)


def text_model(V, seed):
    return SequenceModel(V, 8, V, encoder="embedding", embedding_dim=4, num_layers=2,
                         dropout=0.3, rng=seed)


def assert_same_bits(a, b, what=""):
    assert a.params.keys() == b.params.keys()
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), f"{what}: {k} differs"


def assert_same_optimizer(t1, t2):
    s1, s2 = t1.optimizer.state_dict()["state"], t2.optimizer.state_dict()["state"]
    assert s1.keys() == s2.keys()
    for key in s1:
        for name in s1[key]:
            assert np.array_equal(s1[key][name], s2[key][name]), f"optimizer {name} of {key}"


def resume_run(make_model, config, train, val, k, tmp_path):
    """Train k steps and checkpoint; a NEW model and trainer load it and finish the run."""
    ckpt = tmp_path / "ckpt"
    first = Trainer(make_model(1), TrainerConfig(**{**config, "max_steps": k,
                                                    "checkpoint_dir": str(ckpt)}), train, val)
    first.fit()
    assert first.pos.step == k
    assert (ckpt / CHECKPOINT_NAME).is_file()
    model = make_model(999)  # another init: everything must come from the checkpoint
    second = Trainer(model, TrainerConfig(**config), train, val)
    second.load_checkpoint(str(ckpt / CHECKPOINT_NAME))
    assert second.pos.step == k
    second.fit()
    return second


@pytest.mark.parametrize("where", ["epoch_boundary", "inside_epoch"])
def test_exact_resume_stateful_text_stream_with_dropout(tmp_path, where):
    V, train, val = text_data()
    n = len(train)
    k = n if where == "epoch_boundary" else n + 7
    config = {"max_steps": 2 * n - 3, "epochs": 2, "stateful": True, "progress": False,
              "eval_every": 5, "lr": 1e-2}
    full = Trainer(text_model(V, 1), TrainerConfig(**config), train, val)
    full.fit()
    resumed = resume_run(lambda s: text_model(V, s), config, train, val, k, tmp_path)
    assert resumed.pos.step == full.pos.step == 2 * n - 3
    assert_same_bits(full.model, resumed.model, f"resumed at step {k}")
    assert_same_optimizer(full, resumed)
    assert resumed.history["val_loss"][-1] == full.history["val_loss"][-1]


@pytest.mark.parametrize("k", [10, 23])  # an epoch boundary (10 batches) and inside epoch 3
def test_exact_resume_shuffled_batches(rng, tmp_path, k):
    train = sum_sign_batches(rng, 10)
    val = sum_sign_batches(rng, 2)
    config = {"epochs": 3, "shuffle": True, "seed": 5, "progress": False, "lr": 1e-2}

    def make(seed):
        return sum_sign_model(seed, num_layers=2, dropout=0.2)

    full = Trainer(make(1), TrainerConfig(**config), train, val)
    full.fit()
    resumed = resume_run(make, config, train, val, k, tmp_path)
    assert resumed.pos.step == 30
    assert_same_bits(full.model, resumed.model, f"resumed at step {k}")
    assert_same_optimizer(full, resumed)
    # the shuffling is real: another seed gives other weights
    other = Trainer(make(1), TrainerConfig(**{**config, "seed": 6}), train, val)
    other.fit()
    assert not np.array_equal(other.model.params["head.weight"], full.model.params["head.weight"])


class StopAt:
    """Batches that call ``trainer.request_stop()`` when batch number ``k`` is fetched."""

    def __init__(self, data, k):
        self.data, self.k, self.fetched, self.trainer = data, k, 0, None

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        self.fetched += 1
        if self.fetched == self.k:
            self.trainer.request_stop()
        return self.data[i]


def test_exact_resume_after_request_stop_with_cosine_schedule(rng, tmp_path):
    """Stopped with request_stop() under the full config, so the cosine schedule is the same."""
    train = sum_sign_batches(rng, 10)
    config = {"epochs": 3, "shuffle": True, "lr": 2e-2, "lr_schedule": "cosine",
              "warmup_steps": 4, "min_lr": 1e-3, "progress": False}
    full = Trainer(sum_sign_model(1), TrainerConfig(**config), train)
    full.fit()
    stopping = StopAt(train, 13)
    first = Trainer(sum_sign_model(1), TrainerConfig(**config, checkpoint_dir=str(tmp_path)),
                    stopping)
    stopping.trainer = first
    first.fit()
    assert first.pos.step == 13
    second = Trainer(sum_sign_model(7), TrainerConfig(**config), train)
    second.load_checkpoint(str(tmp_path / CHECKPOINT_NAME))
    second.fit()
    assert second.pos.step == 30
    assert second.optimizer.lr == full.optimizer.lr
    assert_same_bits(full.model, second.model, "request_stop at 13")
    # the record at step 20 averages steps 11-20 in both runs (not 14-20 after the resume)
    assert second.history["step"] == full.history["step"] == [10, 20, 30]
    assert second.history["train_loss"] == full.history["train_loss"]


# ------------------------------------------------------------------- failures
class NanLossAt(SequenceModel):
    """The training loss is NaN at training step ``bad_step`` (1-based)."""

    bad_step = 3

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps = 0

    def loss(self, y, target, mask=None):
        value, dy = super().loss(y, target, mask)
        if self.training:
            self.steps += 1
            if self.steps == self.bad_step:
                return math.nan, dy
        return value, dy


class InfGradAt(SequenceModel):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps = 0

    def backward(self, dy):
        super().backward(dy)
        self.steps += 1
        if self.steps == 3:
            self.grads["head.bias"][0] = np.inf


class InterruptAt(SequenceModel):
    """Ctrl-C inside backward at training step 4."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps = 0

    def backward(self, dy):
        self.steps += 1
        if self.steps == 4:
            raise KeyboardInterrupt
        super().backward(dy)


def reference_params(train, steps, **kwargs):
    model = sum_sign_model(1, **kwargs)
    Trainer(model, quiet(max_steps=steps), train).fit()
    return model


def checkpoint_params(path):
    arrays, state = load_checkpoint(path)
    return {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}, state


@pytest.mark.parametrize("cls, match", [(NanLossAt, r"loss is nan at step 3"),
                                        (InfGradAt, r"gradient of head\.bias .*at step 3")])
def test_non_finite_value_raises_and_keeps_the_last_good_state(rng, tmp_path, cls, match):
    train = sum_sign_batches(rng, 10)
    model = cls(1, 8, 2, task="many_to_one", cell="gru", rng=1)
    trainer = Trainer(model, quiet(epochs=2, checkpoint_dir=str(tmp_path)), train)
    with pytest.raises(TrainingError, match=match) as info:
        trainer.fit()
    path = tmp_path / CHECKPOINT_NAME
    assert str(path) in str(info.value)
    params, state = checkpoint_params(path)
    assert state["position"]["step"] == 2
    good = reference_params(train, 2)
    for k, v in good.params.items():
        assert np.array_equal(params[k], v), f"checkpoint {k} is not the state after step 2"
    assert all(np.isfinite(v).all() for v in params.values())


def test_keyboard_interrupt_checkpoints_and_reraises(rng, tmp_path):
    train = sum_sign_batches(rng, 10)
    model = InterruptAt(1, 8, 2, task="many_to_one", cell="gru", rng=1)
    trainer = Trainer(model, quiet(epochs=2, checkpoint_dir=str(tmp_path)), train)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    params, state = checkpoint_params(tmp_path / CHECKPOINT_NAME)
    assert state["position"]["step"] == 3
    assert state["position"]["batch"] == 3
    good = reference_params(train, 3)
    for k, v in good.params.items():
        assert np.array_equal(params[k], v), f"checkpoint {k} is not the state after step 3"


class InterruptAfterUpdate(SequenceModel):
    """Ctrl-C in zero_grad of training step 4: the optimizer has updated the weights,
    the step counter has not moved yet."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def zero_grad(self):
        self.calls += 1
        if self.calls == 4 and self.training:
            raise KeyboardInterrupt
        super().zero_grad()


@pytest.mark.parametrize("case", ["dropout", "after_update"])
def test_resume_after_keyboard_interrupt_is_exact(rng, tmp_path, case):
    train = sum_sign_batches(rng, 10)
    kwargs = {"num_layers": 2, "dropout": 0.3} if case == "dropout" else {}
    full = Trainer(sum_sign_model(1, **kwargs), quiet(epochs=2), train)
    full.fit()
    cls = InterruptAt if case == "dropout" else InterruptAfterUpdate
    model = cls(1, 8, 2, task="many_to_one", cell="gru", rng=1, **kwargs)
    with pytest.raises(KeyboardInterrupt):
        Trainer(model, quiet(epochs=2, checkpoint_dir=str(tmp_path)), train).fit()
    resumed = Trainer(sum_sign_model(5, **kwargs), quiet(epochs=2), train)
    resumed.load_checkpoint(str(tmp_path / CHECKPOINT_NAME))
    resumed.fit()
    assert_same_bits(full.model, resumed.model, "resumed after Ctrl-C in step 4")


# ----------------------------------------------------------------------- output
def test_progress_false_prints_nothing(rng, capsys, monkeypatch):
    train = sum_sign_batches(rng, 5)
    val = sum_sign_batches(rng, 1)
    Trainer(sum_sign_model(), quiet(epochs=2), train, val).fit()
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    # the same run with the bar on does write (to stderr), so the check above can fail
    pytest.importorskip("tqdm")
    Trainer(sum_sign_model(), TrainerConfig(epochs=2, progress=True), train, val).fit()
    out, err = capsys.readouterr()
    assert err == "", "no bar when stderr is not a terminal (log files get no updates)"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    Trainer(sum_sign_model(), TrainerConfig(epochs=2, progress=True), train, val).fit()
    out, err = capsys.readouterr()
    assert "10/10" in out + err


def test_log_receives_one_line_per_evaluation(rng):
    train = sum_sign_batches(rng, 6)
    val = sum_sign_batches(rng, 1)
    lines = []
    h = Trainer(sum_sign_model(), quiet(epochs=2, eval_every=4), train, val,
                log=lines.append).fit()
    assert len(lines) == len(h["step"]) == 3
    assert all(f"step {s}/12" in line and "val loss" in line for s, line in zip(h["step"], lines))


def test_trainer_config_validation():
    with pytest.raises(ValueError, match="optimizer"):
        TrainerConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="lr"):
        TrainerConfig(lr=0.0)
    with pytest.raises(ValueError, match="max_steps"):
        TrainerConfig(max_steps=0)
    with pytest.raises(ValueError, match="clip_grad_norm"):
        TrainerConfig(clip_grad_norm=-1.0)
    with pytest.raises(ValueError, match="stateful"):
        TrainerConfig(stateful=True, shuffle=True)
    with pytest.raises(ValueError, match="training data"):
        Trainer(sum_sign_model(), quiet(), [])


@pytest.mark.parametrize("field, value", [
    ("eval_every", -1), ("checkpoint_every", -1), ("max_eval_batches", 0), ("epochs", 1.5),
    ("max_steps", 2.5), ("warmup_steps", -1),
])
def test_trainer_config_rejects_invalid_values(field, value):
    with pytest.raises((ValueError, TypeError), match=field):
        TrainerConfig(**{field: value})


def test_evaluate_without_batches_is_not_a_perfect_score(rng):
    trainer = Trainer(sum_sign_model(), quiet(), sum_sign_batches(rng, 2))
    try:
        value = trainer.evaluate([])
    except ValueError:
        return
    assert math.isnan(value), f"evaluate([]) returned {value}"
