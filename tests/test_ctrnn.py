"""The continuous-time RNN: exact BPTT, Dale's law, masks, noise, penalties, errors.

Finite-difference checks in float64 (centred, eps = 1e-6, noise off) of
every raw parameter and the input, for the layer (with a random upstream
gradient on the rates and on h_n) and for the model (masked MSE plus every
penalty), over Dale's law, connectivity masks, no self-connections, a
trainable initial state and variable lengths.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit import Trainer, TrainerConfig
from rnnkit.ctrnn import CTRNN, CTRNNModel
from rnnkit.gradcheck import numerical_gradient
from rnnkit.optim import Adam
from rnnkit.tasks import MaskedTarget, TaskBatches, perceptual_decision

TOL = 1e-6
FLOOR = 1e-2  # below this gradient size the bound is absolute (TOL * FLOOR)
T, B, D, H, C = 5, 3, 3, 4, 2


def assert_grad(num, ana, name):
    scale = max(np.abs(num).max(initial=0.0), np.abs(ana).max(initial=0.0), FLOOR)
    err = np.abs(num - ana).max(initial=0.0) / scale
    assert err < TOL, f"{name}: finite differences and backward differ (rel. error {err:.2e})"


def _random_mask(rng, shape):
    m = rng.random(shape) < 0.7
    m.flat[0] = True
    return m.astype(int)


OPTIONS = {
    "relu": {},
    "tanh": {"activation": "tanh"},
    "dale": {"dale_ratio": 0.75},
    "dale_tanh_masks": {"dale_ratio": 0.5, "activation": "tanh", "masks": True},
    "masks_no_self": {"masks": True, "allow_self_connections": False},
    "h0_trained": {"train_initial_state": True},
    "everything": {"dale_ratio": 0.75, "masks": True, "allow_self_connections": False,
                   "train_initial_state": True},
}


def make_model(seed, opts, **extra):
    rng = np.random.default_rng(seed)
    kw = dict(opts)
    if kw.pop("masks", False):
        kw["input_connectivity"] = _random_mask(rng, (H, D))
        kw["recurrent_connectivity"] = _random_mask(rng, (H, H))
        kw["output_connectivity"] = _random_mask(rng, (C, H))
    m = CTRNNModel(D, H, C, dt=20.0, tau=50.0, dtype=np.float64, rng=seed, **kw, **extra)
    m.params["rnn.bias"][:] = rng.uniform(0.2, 0.6, H)  # keep relu units active
    return m, rng


@pytest.mark.parametrize("opts", list(OPTIONS.values()), ids=list(OPTIONS))
def test_layer_gradients_match_finite_differences(opts):
    model, rng = make_model(0, opts)
    net = model.rnn
    x = rng.standard_normal((T, B, D))
    hx = None if net.train_initial_state else rng.uniform(-0.5, 0.5, (1, B, H))
    G = rng.standard_normal((T, B, H))
    G_h = rng.standard_normal((1, B, H))

    def loss():
        out, h_n = net.forward(x, hx)
        net._cache = None
        return float((out * G).sum() + (h_n * G_h).sum())

    net.zero_grad()
    net.forward(x, hx)
    dx, dh0 = net.backward(G, G_h)
    for k, p in net.params.items():
        assert_grad(numerical_gradient(loss, p), net.grads[k], k)
    assert_grad(numerical_gradient(loss, x), dx, "input")
    if hx is not None:
        assert_grad(numerical_gradient(loss, hx), dh0, "h_0")


@pytest.mark.parametrize("opts", list(OPTIONS.values()), ids=list(OPTIONS))
def test_model_loss_with_penalties_matches_finite_differences(opts):
    model, rng = make_model(1, opts, l2_firing_rate=0.3, l2_in=0.2, l2_rec=0.5, l2_out=0.4)
    x = rng.standard_normal((T, B, D))
    target = MaskedTarget(rng.standard_normal((T, B, C)), rng.random((T, B)) < 0.6)

    def loss():
        y, _ = model.forward(x)
        value, _ = model.loss(y, target)
        model._cache = model.rnn._cache = None
        return value

    model.zero_grad()
    y, _ = model.forward(x)
    _, dy = model.loss(y, target)
    dx = model.backward(dy)
    for k, p in model.params.items():
        assert_grad(numerical_gradient(loss, p), model.grads[k], k)
    assert_grad(numerical_gradient(loss, x), dx, "input")


def test_variable_lengths_gradients_and_final_state():
    model, rng = make_model(2, {"dale_ratio": 0.75})
    net = model.rnn
    x = rng.standard_normal((T, B, D))
    lengths = np.array([3, 1, 5])
    G = rng.standard_normal((T, B, H))
    G_h = rng.standard_normal((1, B, H))
    out, h_n = net.forward(x, lengths=lengths)
    states = net.internals()["h_l0"]
    np.testing.assert_array_equal(h_n[0], states[lengths - 1, np.arange(B)])
    assert np.all(out[3:, 0] == 0) and np.all(out[1:, 1] == 0), "padded outputs must be zero"
    net._cache = None

    def loss():
        o, hn = net.forward(x, lengths=lengths)
        net._cache = None
        return float((o * G).sum() + (hn * G_h).sum())

    net.zero_grad()
    net.forward(x, lengths=lengths)
    dx, _ = net.backward(G, G_h)
    for k, p in net.params.items():
        assert_grad(numerical_gradient(loss, p), net.grads[k], k)
    assert_grad(numerical_gradient(loss, x), dx, "input")
    assert np.all(dx[3:, 0] == 0), "padded inputs cannot matter"


def test_forward_equals_the_plain_reference_loop():
    model, rng = make_model(3, {"dale_ratio": 0.5, "masks": True, "train_initial_state": True})
    net = model.rnn
    x = rng.standard_normal((T, B, D))
    out, h_n = net.forward(x, noise=False)
    eff = net.effective_weights()
    p = net.params
    h = np.broadcast_to(p["h0"], (B, H)).copy()
    alpha = 20.0 / 50.0
    for t in range(T):
        r = np.maximum(h, 0)
        h = (1 - alpha) * h + alpha * (r @ eff["weight_hh"].T + x[t] @ eff["weight_ih"].T
                                       + p["bias"])
        np.testing.assert_allclose(out[t], np.maximum(h, 0), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(h_n[0], h, rtol=1e-13, atol=1e-14)
    # Dale's law in the effective weights; masks and the sign of every column
    w = eff["weight_hh"]
    assert (w[:, : net.n_excitatory] >= 0).all() and (w[:, net.n_excitatory:] <= 0).all()
    assert (eff["weight_ih"] >= 0).all()
    assert (w[net.recurrent_connectivity == 0] == 0).all()


def _dale_signs(model):
    eff = model.effective_weights()
    n_e = model.rnn.n_excitatory
    w = eff["weight_hh"]
    return ((w[:, :n_e] >= 0).all() and (w[:, n_e:] <= 0).all() and (eff["weight_ih"] >= 0).all()
            and (eff["weight_out"] >= 0).all() and (eff["weight_out"][:, n_e:] == 0).all())


def test_dale_signs_masks_and_no_self_connections_survive_training():
    rng = np.random.default_rng(4)
    rec = _random_mask(rng, (10, 10))
    model = CTRNNModel(3, 10, 2, dale_ratio=0.8, recurrent_connectivity=rec,
                       allow_self_connections=False, noise_std=0.1, train_initial_state=True,
                       l2_firing_rate=1e-3, l2_rec=1e-3, rng=4)
    raw_before = model.params["rnn.weight_hh"].copy()
    data = TaskBatches(perceptual_decision, n_batches=15, batch_size=16, seed=1, stimulus=200.0)
    val = TaskBatches(perceptual_decision, n_batches=1, batch_size=16, seed=2, stimulus=200.0)
    config = TrainerConfig(lr=0.2, epochs=1, clip_grad_norm=None, progress=False)
    history = Trainer(model, config, data, val).fit()
    assert np.isfinite(history["val_loss"][-1])
    flipped = np.sign(model.params["rnn.weight_hh"]) * np.sign(raw_before) < 0
    assert flipped.any(), "the test must drive raw weights across zero to mean anything"
    assert _dale_signs(model)
    w = model.effective_weights()["weight_hh"]
    assert (np.diag(w) == 0).all(), "self-connections appeared"
    np.fill_diagonal(rec, 0)
    assert (w[rec == 0] == 0).all(), "a masked connection appeared"


def test_optimizer_steps_keep_dale_signs_with_large_gradients():
    model = CTRNNModel(2, 6, 1, dale_ratio=0.5, dtype=np.float64, rng=5)
    opt = Adam(model.params, model.grads, lr=1.0)
    rng = np.random.default_rng(5)
    for _ in range(5):
        x = rng.standard_normal((4, 2, 2))
        y, _ = model.forward(x)
        _, dy = model.loss(y, rng.standard_normal(y.shape))
        model.backward(dy)
        opt.step()
        model.zero_grad()
        assert _dale_signs(model)


def test_noise_is_seeded_scaled_and_off_in_eval():
    net = CTRNN(1, 100, dt=10.0, tau=100.0, noise_std=0.5, dtype=np.float64, rng=0)
    for k in ("weight_ih", "weight_hh"):
        net.params[k][:] = 0.0
    x = np.zeros((1, 1000, 1))
    _out, h_n = net.forward(x)  # training mode: noisy
    net._cache = None
    expected = np.sqrt(2 * 0.1) * 0.5
    assert abs(h_n.std() / expected - 1) < 0.02
    again = CTRNN(1, 100, dt=10.0, tau=100.0, noise_std=0.5, dtype=np.float64, rng=0)
    for k in ("weight_ih", "weight_hh"):
        again.params[k][:] = 0.0
    np.testing.assert_array_equal(again.forward(x)[1], h_n)
    net.eval()
    assert np.all(net.forward(x)[1] == 0)
    net._cache = None
    assert np.any(net.forward(x, noise=True)[1] != 0)


def test_backward_without_loss_has_no_penalty_gradient():
    model, rng = make_model(6, {}, l2_firing_rate=1.0, l2_rec=1.0)
    x = rng.standard_normal((T, B, D))
    dy = rng.standard_normal((T, B, C))
    y, _ = model.forward(x)
    model.backward(dy)
    plain = {k: g.copy() for k, g in model.grads.items()}
    model.zero_grad()
    y, _ = model.forward(x)
    model.loss(y, np.zeros_like(y))
    model.backward(dy)
    assert not np.allclose(plain["rnn.weight_hh"], model.grads["rnn.weight_hh"])
    assert set(model.loss_terms) == {"task", "firing_rate", "weight_hh"}


def test_penalty_values_follow_their_definition():
    model, rng = make_model(7, {"dale_ratio": 0.5}, l2_firing_rate=0.1, l2_in=0.2, l2_rec=0.3,
                            l2_out=0.4)
    x = rng.standard_normal((T, B, D))
    target = rng.standard_normal((T, B, C))
    y, _ = model.forward(x)
    rates = model.rnn.internals()["r_l0"]
    value, _ = model.loss(y, target)
    eff = model.effective_weights()
    expected = (np.mean((y - target) ** 2) + 0.1 * np.mean(rates**2)
                + 0.2 * np.mean(eff["weight_ih"] ** 2) + 0.3 * np.mean(eff["weight_hh"] ** 2)
                + 0.4 * np.mean(eff["weight_out"] ** 2))
    assert value == pytest.approx(expected, rel=1e-12)


def test_config_round_trip_and_state_dict():
    rng = np.random.default_rng(8)
    model = CTRNNModel(3, 5, 2, dt=5.0, tau=20.0, activation="tanh", dale_ratio=0.6,
                       recurrent_connectivity=_random_mask(rng, (5, 5)),
                       allow_self_connections=False, train_initial_state=True, l2_rec=0.1,
                       rng=8)
    clone = CTRNNModel.from_config(model.config(), rng=1)
    clone.load_state_dict(model.state_dict())
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(clone.eval().forward(x)[0], model.eval().forward(x)[0])
    np.testing.assert_array_equal(clone.rnn.recurrent_connectivity,
                                  model.rnn.recurrent_connectivity)
    with pytest.raises(ValueError, match="missing rnn.h0"):
        clone.load_state_dict({k: v for k, v in model.state_dict().items() if k != "rnn.h0"})


def test_unbatched_input_and_internals():
    net = CTRNN(2, 3, rng=0)
    out, h_n = net.forward(np.ones((4, 2), np.float32))
    assert out.shape == (4, 3) and h_n.shape == (1, 3)
    assert set(net.internals()) == {"h_l0", "r_l0"}
    d_in, d_h0 = net.backward(np.ones((4, 3), np.float32))
    assert d_in.shape == (4, 2) and d_h0.shape == (1, 3)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"dt": 200.0, "tau": 100.0}, ValueError, r"alpha = dt / tau must be in \(0, 1\]"),
    ({"dt": 0.0}, ValueError, "dt should be a number in range"),
    ({"dale_ratio": 1.5}, ValueError, "dale_ratio"),
    ({"dale_ratio": 0.01}, ValueError, "leaves no excitatory unit"),
    ({"activation": "sigmoid"}, ValueError, "activation must be one of 'relu', 'tanh'"),
    ({"recurrent_connectivity": np.ones((3, 3))}, ValueError,
     r"recurrent_connectivity: Expected shape \(4, 4\), got \(3, 3\)"),
    ({"input_connectivity": np.full((4, 2), 0.5)}, ValueError, "only 0"),
    ({"noise_std": -1.0}, ValueError, "noise_std"),
])
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        CTRNN(2, 4, **kwargs)


def test_call_errors():
    net = CTRNN(2, 4, rng=0)
    with pytest.raises(ValueError, match="Expected 2, got 3"):
        net.forward(np.zeros((3, 1, 3), np.float32))
    with pytest.raises(TypeError, match="must have dtype float32"):
        net.forward(np.zeros((3, 1, 2)))
    with pytest.raises(ValueError, match=r"Expected hx size \(1, 1, 4\)"):
        net.forward(np.zeros((3, 1, 2), np.float32), np.zeros((1, 1, 5), np.float32))
    with pytest.raises(RuntimeError, match="no forward pass"):
        net.backward(np.zeros((3, 1, 4), np.float32))
    model = CTRNNModel(2, 4, 1, rng=0)
    y, _ = model.forward(np.zeros((3, 1, 2), np.float32))
    with pytest.raises(TypeError, match="step mask must be boolean"):
        model.loss(y, (np.zeros_like(y), np.ones((3, 1))))
    with pytest.raises(ValueError, match=r"Expected x of shape \(T, B, D\)"):
        model.forward(np.zeros((3, 2), np.float32))
