"""Cognitive tasks: seeded, shaped, with the right targets and loss masks."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.tasks import (
    MaskedTarget,
    TaskBatches,
    context_dependent_integration,
    decision_accuracy,
    delayed_discrimination,
    flip_flop,
    perceptual_decision,
)

TASKS = {
    "perceptual_decision": (perceptual_decision, 3, 2),
    "delayed_discrimination": (delayed_discrimination, 3, 2),
    "flip_flop": (flip_flop, 3, 3),
    "context_dependent_integration": (context_dependent_integration, 4, 1),
}


@pytest.mark.parametrize("name", list(TASKS))
def test_shapes_dtype_and_seed_reproducibility(name):
    task, D, C = TASKS[name]
    a = task(16, rng=3)
    b = task(16, rng=np.random.default_rng(3))
    c = task(16, rng=4)
    T = a.x.shape[0]
    assert a.x.shape == (T, 16, D) and a.y.shape == (T, 16, C) and a.mask.shape == (T, 16)
    assert a.x.dtype == np.float32 and a.y.dtype == np.float32 and a.mask.dtype == bool
    for field in ("x", "y", "mask"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert not np.array_equal(a.x, c.x)
    assert task(4, rng=0, dtype=np.float64).x.dtype == np.float64


def test_perceptual_decision_epochs_targets_and_mask():
    tr = perceptual_decision(200, dt=20.0, stim_noise=0.1, rng=0)
    ep = tr.info["epochs"]
    assert (ep["fixation"].stop - ep["fixation"].start, ep["stimulus"].stop - ep["stimulus"].start,
            ep["response"].stop - ep["response"].start) == (5, 40, 15)
    resp, dec = ep["response"], ep["decision"]
    assert dec == slice(resp.start + 5, resp.stop)
    # fixation cue on until the go signal, off after
    assert (tr.x[: resp.start, :, 0] == 1).all() and (tr.x[resp.start:, :, 0] == 0).all()
    # evidence only during the stimulus, its mean difference is the coherence
    assert (tr.x[ep["fixation"], :, 1:] == 0).all() and (tr.x[resp, :, 1:] == 0).all()
    diff = tr.x[ep["stimulus"], :, 1].mean(0) - tr.x[ep["stimulus"], :, 2].mean(0)
    assert np.abs(diff - tr.info["coherence"]).max() < 0.12  # 5 sigma of the mean noise
    choice = tr.info["choice"]
    np.testing.assert_array_equal(choice, np.where(tr.info["coherence"] > 0, 0, 1))
    # targets: low everywhere but the chosen output during the response
    b = np.arange(200)
    assert (tr.y[resp, b, choice] == 1.0).all() and (tr.y[resp, b, 1 - choice] == 0.2).all()
    assert (tr.y[: resp.start] == 0.2).all()
    # the mask leaves out exactly the grace period
    expected = np.ones(tr.mask.shape, bool)
    expected[resp.start: resp.start + 5] = False
    np.testing.assert_array_equal(tr.mask, expected)


def test_perceptual_decision_signed_coherences():
    tr = perceptual_decision(50, coherences=[-0.3], random_sign=False, rng=1)
    assert (tr.info["coherence"] == -0.3).all() and (tr.info["choice"] == 1).all()
    ties = perceptual_decision(400, coherences=[0.0], rng=2).info["choice"]
    assert 0.4 < ties.mean() < 0.6  # c = 0: random labels


def test_delayed_discrimination_frequencies_and_epochs():
    tr = delayed_discrimination(300, rng=0)
    f1, f2 = tr.info["f1"], tr.info["f2"]
    assert set(np.abs(f1 - f2)) == {8.0}
    assert f2.min() >= 10 and f2.max() <= 34
    np.testing.assert_array_equal(tr.info["choice"], np.where(f1 > f2, 0, 1))
    ep = tr.info["epochs"]
    assert (tr.x[ep["delay"], :, 1:] == 0).all(), "nothing but the fixation cue in the delay"
    up1 = tr.x[ep["f1"], :, 1].mean(0)
    assert np.abs(up1 - (f1 - 10) / 24).max() < 0.08  # 5 sigma of the mean noise
    assert np.allclose(tr.x[ep["f2"], :, 1].mean(0) + tr.x[ep["f2"], :, 2].mean(0), 1, atol=0.11)


def test_flip_flop_targets_hold_the_last_pulse():
    tr = flip_flop(20, n_steps=60, n_bits=3, p_pulse=0.1, rng=0)
    assert (tr.x[0] != 0).all(), "every bit is set at step 0"
    assert set(np.unique(tr.x)) <= {-1.0, 0.0, 1.0}
    held = np.zeros((20, 3))
    for t in range(60):  # the naive definition
        held = np.where(tr.x[t] != 0, tr.x[t], held)
        np.testing.assert_array_equal(tr.y[t], held)
    assert tr.mask.all()
    np.testing.assert_array_equal(tr.info["final_state"], tr.y[-1])


def test_context_dependent_integration_answers_the_relevant_stream():
    tr = context_dependent_integration(200, rng=0)
    ctx = tr.info["context"]
    relevant = np.where(ctx == 0, tr.info["motion_coherence"], tr.info["color_coherence"])
    resp = tr.info["epochs"]["response"]
    np.testing.assert_array_equal(tr.y[resp, :, 0], np.broadcast_to(np.sign(relevant),
                                                                     tr.y[resp, :, 0].shape))
    assert (tr.y[: resp.start] == 0).all()
    np.testing.assert_array_equal(tr.x[:, np.arange(200), 2 + ctx], 1.0)
    np.testing.assert_array_equal(tr.x[:, np.arange(200), 3 - ctx], 0.0)
    assert not tr.mask[resp.start: resp.start + 5].any() and tr.mask[resp.start + 5:].all()


@pytest.mark.parametrize("task", [perceptual_decision, delayed_discrimination,
                                  context_dependent_integration])
def test_decision_accuracy_of_perfect_and_reversed_outputs(task):
    tr = task(40, rng=0)
    assert decision_accuracy(tr.y, tr)[0] == 1.0
    reversed_ = -tr.y if tr.y.shape[-1] == 1 else tr.y[..., ::-1]
    assert decision_accuracy(reversed_, tr)[0] == 0.0


def test_task_batches_for_the_trainer():
    data = TaskBatches(perceptual_decision, n_batches=3, batch_size=5, seed=7)
    assert len(data) == 3
    x, target = data[1]
    assert isinstance(target, MaskedTarget)
    again = perceptual_decision(5, rng=np.random.default_rng([7, 1]))
    np.testing.assert_array_equal(x, again.x)
    np.testing.assert_array_equal(data[-1][0], data[2][0])
    assert np.size(target) == int(target.mask.sum()) * 2  # what the trainer weights by
    with pytest.raises(IndexError, match="out of range"):
        data[3]
    with pytest.raises(ValueError, match="masked=True"):
        TaskBatches(perceptual_decision, 1, 2, masked=False)[0]
    x, y = TaskBatches(flip_flop, 1, 2, masked=False, n_steps=10)[0]
    assert isinstance(y, np.ndarray) and y.shape == (10, 2, 3)


@pytest.mark.parametrize("call, error, match", [
    (lambda: perceptual_decision(0), ValueError, "batch_size must be >= 1"),
    (lambda: perceptual_decision(2, dt=0.0), ValueError, "dt"),
    (lambda: perceptual_decision(2, response=100.0, grace=100.0), ValueError, "grace"),
    (lambda: perceptual_decision(2, coherences=[]), ValueError, "non-empty"),
    (lambda: context_dependent_integration(2, coherences=[0.0, 0.1]), ValueError, "non-zero"),
    (lambda: delayed_discrimination(2, f_min=30.0, f_max=10.0), ValueError, "f_max"),
    (lambda: flip_flop(2, p_pulse=1.5), ValueError, "p_pulse"),
    (lambda: TaskBatches("flip_flop", 1, 1), TypeError, "callable"),
])
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
