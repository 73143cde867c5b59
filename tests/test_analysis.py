"""Saliency, ablation, trajectories (PCA), fixed points and plots.

Saliency is checked by finite differences of the explained output with
respect to every input element (float64, eps = 1e-6); Jacobians of every
cell family's step and the gradient of q likewise. The fixed-point finder
must recover, and classify, the known fixed points of hand-built networks:
two bistable tanh units (4 stable, 4 saddles, 1 unstable) and a 3-bit
flip-flop built from three bistable units (8 stable corners, 18 saddles, 1
unstable point).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rnnkit import GRU, LSTM, RNN, SequenceModel
from rnnkit.analysis import (
    FixedPointFinder,
    ablation_effect,
    ablation_scan,
    find_fixed_points,
    fit_pca,
    hidden_states,
    outgoing_weights,
    project,
    saliency,
    saliency_scores,
    silence,
    step_map,
)
from rnnkit.analysis.fixed_points import RNNStep, StepMap, classify
from rnnkit.ctrnn import CTRNN, CTRNNModel
from rnnkit.gradcheck import numerical_gradient, rel_error
from rnnkit.tasks import MaskedTarget, flip_flop

TOL = 1e-6


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ---------------------------------------------------------------------- saliency
def _check_saliency(model, x, output, step=None, lengths=None):
    grad, value = saliency(model, x, output, step=step, lengths=lengths)
    model.eval()
    y0, _ = model.forward(x, lengths=lengths)
    B = y0.shape[-2]
    out = np.broadcast_to(output, (B,))
    if y0.ndim == 3:
        T = y0.shape[0]
        t = (np.full(B, T - 1) if lengths is None else np.asarray(lengths) - 1) if step is None \
            else np.broadcast_to(step, (B,)) % T
        pick = lambda y: y[t, np.arange(B), out]
    else:
        t = None
        pick = lambda y: y[np.arange(B), out]
    np.testing.assert_allclose(value, pick(y0), rtol=1e-12)

    def f():
        y, _ = model.forward(x, lengths=lengths)
        return float(pick(y).sum())  # sequences are independent: one sum gives every gradient

    num = numerical_gradient(f, x)
    assert rel_error(num, grad) < TOL, f"saliency differs from finite differences: " \
                                       f"{rel_error(num, grad):.2e}"
    return grad, t


def test_saliency_many_to_many_lstm_is_exact_and_causal(rng):
    model = SequenceModel(2, 3, 4, cell="lstm", num_layers=2, dtype=np.float64, rng=1)
    x = rng.standard_normal((6, 3, 2))
    grad, t = _check_saliency(model, x, output=np.array([0, 3, 1]), step=np.array([2, 5, -2]))
    for b in range(3):
        assert np.all(grad[t[b] + 1:, b] == 0), "a later input cannot move an earlier output"
        assert np.any(grad[: t[b] + 1, b] != 0)


def test_saliency_many_to_one_bidirectional_gru(rng):
    model = SequenceModel(2, 3, 3, cell="gru", bidirectional=True, task="many_to_one",
                          dtype=np.float64, rng=2)
    _check_saliency(model, rng.standard_normal((5, 2, 2)), output=2)


def test_saliency_relu_rnn_with_lengths_explains_the_last_valid_step(rng):
    model = SequenceModel(2, 4, 2, cell="rnn", nonlinearity="relu", loss="mse",
                          dtype=np.float64, rng=3)
    lengths = np.array([4, 2, 5])
    grad, _ = _check_saliency(model, rng.standard_normal((5, 3, 2)), output=1, lengths=lengths)
    assert np.all(grad[2:, 1] == 0)


def test_saliency_ctrnn_excludes_penalties_and_noise(rng):
    model = CTRNNModel(3, 5, 2, dale_ratio=0.6, noise_std=0.3, l2_firing_rate=1.0,
                       l2_rec=1.0, dtype=np.float64, rng=4)
    model.params["rnn.bias"][:] = 0.5
    model.train()
    before = {k: g.copy() for k, g in model.grads.items()}
    _check_saliency(model, rng.standard_normal((6, 2, 3)), output=0, step=4)
    for k, g in model.grads.items():
        np.testing.assert_array_equal(g, before[k], err_msg=f"saliency changed grads[{k}]")


def test_saliency_of_a_token_model_is_taken_at_the_embeddings(rng):
    tok = SequenceModel(5, 4, 5, cell="gru", encoder="embedding", embedding_dim=3,
                        dtype=np.float64, rng=5)
    dense = SequenceModel(3, 4, 5, cell="gru", dtype=np.float64, rng=6)
    dense.load_state_dict({k: v for k, v in tok.state_dict().items() if k != "encoder.weight"})
    ids = rng.integers(0, 5, (7, 2))
    emb = tok.params["encoder.weight"][ids]  # (T, B, E)
    g_tok, v_tok = saliency(tok, ids, output=np.array([1, 4]))
    g_dense, v_dense = saliency(dense, emb, output=np.array([1, 4]))
    np.testing.assert_allclose(g_tok, g_dense, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(v_tok, v_dense, rtol=1e-12)
    assert tok.training, "saliency restores the training mode"


def test_saliency_scores_and_errors(rng):
    g = rng.standard_normal((4, 2, 3))
    np.testing.assert_allclose(saliency_scores(g), np.linalg.norm(g, axis=-1))
    x = rng.standard_normal((4, 2, 3))
    np.testing.assert_allclose(saliency_scores(g, x, method="grad_x_input"), (g * x).sum(-1))
    with pytest.raises(ValueError, match="needs x"):
        saliency_scores(g, method="grad_x_input")
    model = SequenceModel(3, 2, 2, rng=0)
    with pytest.raises(ValueError, match=r"output must be in \[0, 1\]"):
        saliency(model, x.astype(np.float32), output=2)
    with pytest.raises(ValueError, match=r"step must be in \[-4, 3\]"):
        saliency(model, x.astype(np.float32), output=0, step=4)


# ---------------------------------------------------------------------- ablation
def _sequence_model():
    return SequenceModel(2, 3, 2, cell="lstm", num_layers=2, bidirectional=True, loss="mse",
                         dtype=np.float64, rng=7)


def test_ablating_nothing_changes_nothing(rng):
    for model in (_sequence_model(), CTRNNModel(2, 4, 2, dale_ratio=0.5, dtype=np.float64,
                                                rng=8)):
        x = rng.standard_normal((5, 3, 2))
        target = rng.standard_normal((5, 3, 2))
        before = model.state_dict()
        result = ablation_effect(model, x, target, units=[])
        assert result.delta == 0.0 and result.ablated == result.baseline
        for k, v in before.items():
            np.testing.assert_array_equal(model.params[k], v, err_msg=k)


def test_ablating_everything_silences_the_output(rng):
    x1, x2 = rng.standard_normal((2, 5, 3, 2))
    model = _sequence_model().eval()
    with silence(model, range(6)):  # both directions of the top layer
        y1, _ = model.forward(x1)
        y2, _ = model.forward(x2)
    np.testing.assert_array_equal(y1, np.broadcast_to(model.params["head.bias"], y1.shape))
    np.testing.assert_array_equal(y2, y1)
    y_after, _ = model.forward(x1)
    assert not np.allclose(y_after, y1), "the weights must be back after the block"
    ct = CTRNNModel(2, 4, 2, dale_ratio=0.5, dtype=np.float64, rng=9).eval()
    with silence(ct, np.arange(4)):
        y, _ = ct.forward(x1)
    np.testing.assert_array_equal(y, np.broadcast_to(ct.params["head.bias"], y.shape))
    # a lower layer silenced: the layer above gets no input, the output ignores x
    with silence(model, range(6), layer=0):
        np.testing.assert_array_equal(model.forward(x1)[0], model.forward(x2)[0])


def test_silence_restores_the_weights_after_an_error():
    model = _sequence_model()
    before = model.state_dict()
    with pytest.raises(RuntimeError, match="boom"), silence(model, [0, 4], layer=0):
        assert (model.params["rnn.weight_ih_l1"][:, [0, 4]] == 0).all()
        raise RuntimeError("boom")
    for k, v in before.items():
        np.testing.assert_array_equal(model.params[k], v, err_msg=k)


def test_outgoing_weights_and_scan(rng):
    model = _sequence_model()
    where = dict(outgoing_weights(model, [1, 4], layer=0))
    assert set(where) == {"rnn.weight_hh_l0", "rnn.weight_hh_l0_reverse", "rnn.weight_ih_l1",
                          "rnn.weight_ih_l1_reverse"}
    np.testing.assert_array_equal(where["rnn.weight_hh_l0_reverse"][1], [1])
    with pytest.raises(ValueError, match=r"units must be in \[0, 5\]"):
        outgoing_weights(model, [6])
    x = rng.standard_normal((5, 3, 2))
    target = rng.standard_normal((5, 3, 2))
    model.params["head.weight"][:, 2] = 0.0  # unit 2 of the top layer reaches nothing
    model.params["rnn.weight_hh_l1"][:, 2] = 0.0
    units, delta = ablation_scan(model, x, target)
    np.testing.assert_array_equal(units, np.arange(6))
    assert delta[2] == 0.0
    assert delta[0] == pytest.approx(ablation_effect(model, x, target, 0).delta, rel=1e-12)
    ct = CTRNNModel(2, 3, 1, rng=0)
    tgt = MaskedTarget(np.zeros((5, 3, 1), np.float32), np.ones((5, 3), bool))
    assert ablation_scan(ct, x.astype(np.float32), tgt)[1].shape == (3,)


# ------------------------------------------------------------------ trajectories
def test_pca_recovers_a_planted_subspace(rng):
    basis = np.linalg.qr(rng.standard_normal((6, 2)))[0].T  # (2, 6) orthonormal rows
    z = rng.standard_normal((40, 5, 2)) * np.array([3.0, 1.0])
    states = z @ basis + 2.0 + 1e-6 * rng.standard_normal((40, 5, 6))
    pca = fit_pca(states, 2)
    # the components span the planted plane: all cosines of the principal angles are 1
    np.testing.assert_allclose(np.linalg.svd(pca.components @ basis.T)[1], 1.0, atol=1e-9)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(2), atol=1e-12)
    assert pca.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-9)
    assert pca.explained_variance[0] > pca.explained_variance[1]
    p = project(states, pca)
    assert p.shape == (40, 5, 2)
    np.testing.assert_allclose(p @ pca.components + pca.mean, states, atol=1e-5)
    with pytest.raises(ValueError, match="n_components"):
        fit_pca(states, 7)


def test_hidden_states_of_each_family(rng):
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    assert hidden_states(SequenceModel(3, 5, 2, cell="lstm", rng=0), x, key="c").shape == \
        (4, 2, 5)
    assert hidden_states(SequenceModel(3, 5, 2, cell="gru", bidirectional=True, rng=0), x,
                         key="z").shape == (4, 2, 10)
    ct = CTRNNModel(3, 5, 2, rng=0)
    rates = hidden_states(ct, x, key="r")
    np.testing.assert_array_equal(rates, ct.rnn.forward(x, noise=False)[0])
    with pytest.raises(ValueError, match=r"key must be one of \['h', 'r'\]"):
        hidden_states(ct, x, key="c")


# -------------------------------------------------------------------- Jacobians
STEPS = {
    "rnn_tanh": lambda: RNN(3, 4, dtype=np.float64, rng=1),
    "rnn_relu": lambda: RNN(3, 4, nonlinearity="relu", dtype=np.float64, rng=1),
    "rnn_sigmoid": lambda: RNN(3, 4, nonlinearity="sigmoid", dtype=np.float64, rng=1),
    "gru": lambda: GRU(3, 4, dtype=np.float64, rng=2),
    "lstm": lambda: LSTM(3, 4, dtype=np.float64, rng=3),
    "ctrnn_relu_dale": lambda: CTRNN(3, 4, dale_ratio=0.5, dtype=np.float64, rng=4),
    "ctrnn_tanh": lambda: CTRNN(3, 4, activation="tanh", dtype=np.float64, rng=5),
}


@pytest.mark.parametrize("name", list(STEPS))
def test_step_jacobian_and_q_gradient_match_finite_differences(name, rng):
    layer = STEPS[name]()
    layer.params[next(k for k in layer.params if k.startswith("bias"))][:] += 0.3
    step = step_map(layer, rng.standard_normal(3))
    s = rng.standard_normal((5, step.size))
    J = step.jacobian(s)
    finder = FixedPointFinder(step)
    q, grad = finder.q(s)
    num_J = np.empty_like(J)
    num_g = np.empty_like(grad)
    eps = 1e-6
    for j in range(step.size):
        d = np.zeros(step.size)
        d[j] = eps
        num_J[:, :, j] = (step(s + d) - step(s - d)) / (2 * eps)
        num_g[:, j] = (finder.q(s + d)[0] - finder.q(s - d)[0]) / (2 * eps)
    assert rel_error(num_J, J) < TOL
    assert rel_error(num_g, grad) < TOL
    np.testing.assert_allclose(q, 0.5 * ((step(s) - s) ** 2).sum(1), rtol=1e-14)


def test_step_map_runs_the_layers_own_step(rng):
    for name in ("gru", "lstm", "ctrnn_relu_dale"):
        layer = STEPS[name]()
        u = rng.standard_normal(3)
        step = step_map(layer, u)
        h0 = rng.standard_normal((1, 2, 4))
        layer.eval()
        if name == "lstm":
            c0 = rng.standard_normal((1, 2, 4))
            _, (h1, c1) = layer.forward(np.broadcast_to(u, (1, 2, 3)).copy(), (h0, c0))
            expected = np.concatenate([h1[0], c1[0]], axis=-1)
            s = np.concatenate([h0[0], c0[0]], axis=-1)
        else:
            _, h1 = layer.forward(np.broadcast_to(u, (1, 2, 3)).copy(), h0)
            expected, s = h1[0], h0[0]
        np.testing.assert_allclose(step(s), expected, rtol=1e-13, atol=1e-14, err_msg=name)


# ---------------------------------------------------------------- fixed points
def _bistable_root(w=2.0):
    h = 1.0
    for _ in range(200):  # h = tanh(w h): the iteration converges to the stable root
        h = np.tanh(w * h)
    return h


def test_two_bistable_units_all_nine_points_classified():
    step = RNNStep(np.zeros((2, 1)), 2.0 * np.eye(2), None, "tanh", np.zeros(1))
    grid = np.stack(np.meshgrid(*[np.linspace(-1.5, 1.5, 9)] * 2), -1).reshape(-1, 2)
    fps = FixedPointFinder(step).find(grid)
    r = _bistable_root()
    expected = {(a, b) for a in (-r, 0.0, r) for b in (-r, 0.0, r)}
    found = {tuple(p) for p in fps.states}
    assert len(found) == 9
    for p in expected:
        assert min(np.linalg.norm(np.subtract(p, f)) for f in found) < 1e-9, p
    for p, kind, n_unst in zip(fps.states, fps.kinds, fps.n_unstable):
        zeros = int(np.sum(np.abs(p) < 1e-6))
        assert kind == {0: "stable", 1: "saddle", 2: "unstable"}[zeros]
        assert n_unst == zeros
    assert fps.counts() == {"stable": 4, "saddle": 4, "unstable": 1}
    assert (fps.q < 1e-20).all()


def test_lbfgs_finds_the_same_points():
    pytest.importorskip("scipy", reason="method='lbfgs' uses scipy.optimize")
    step = RNNStep(np.zeros((2, 1)), 2.0 * np.eye(2), None, "tanh", np.zeros(1))
    grid = np.stack(np.meshgrid(*[np.linspace(-1.5, 1.5, 7)] * 2), -1).reshape(-1, 2)
    lm = FixedPointFinder(step).find(grid)
    lb = FixedPointFinder(step, method="lbfgs", max_iter=500).find(grid)
    assert lb.counts() == lm.counts()
    order = lambda s: s[np.lexsort(np.round(s, 6).T)]
    np.testing.assert_allclose(order(lb.states), order(lm.states), atol=1e-6)


def _flip_flop_network():
    """Three bistable tanh units (W_hh = 2 I) set by strong input pulses: a 3-bit flip-flop."""
    model = SequenceModel(3, 3, 3, cell="rnn", loss="mse", dtype=np.float64, rng=0)
    p = model.params
    p["rnn.weight_ih_l0"][:] = 4.0 * np.eye(3)
    p["rnn.weight_hh_l0"][:] = 2.0 * np.eye(3)
    for k in ("rnn.bias_ih_l0", "rnn.bias_hh_l0", "head.bias"):
        p[k][:] = 0.0
    p["head.weight"][:] = np.eye(3)
    return model.eval()


def test_flip_flop_network_has_eight_stable_corners_and_saddles():
    model = _flip_flop_network()
    trials = flip_flop(32, n_steps=80, rng=0, dtype=np.float64)
    y, _ = model.forward(trials.x)
    assert (np.sign(y) == trials.y).all(), "the hand-built network must solve the task"
    fps, states = find_fixed_points(model, trials.x, n_samples=300, noise_std=0.5, rng=0)
    assert states.shape == (80, 32, 3)
    stable = fps.select("stable")
    assert len(stable) == 8
    corners = {tuple(np.sign(s).astype(int)) for s in stable.states}
    assert corners == set(itertools.product((-1, 1), repeat=3))
    np.testing.assert_allclose(np.abs(stable.states), _bistable_root(), atol=1e-9)
    assert fps.counts()["saddle"] >= 3
    # from a grid over the cube, every one of the 27 points, classified
    grid = np.stack(np.meshgrid(*[np.linspace(-1.2, 1.2, 5)] * 3), -1).reshape(-1, 3)
    full = FixedPointFinder(step_map(model)).find(grid)
    assert full.counts() == {"stable": 8, "saddle": 18, "unstable": 1}


def test_ctrnn_without_recurrence_has_its_input_drive_as_the_stable_point():
    net = CTRNN(2, 3, dt=10.0, tau=50.0, dtype=np.float64, rng=0)
    net.params["weight_hh"][:] = 0.0
    net.params["bias"][:] = [0.1, -0.2, 0.3]
    u = np.array([0.5, -1.0])
    fps = FixedPointFinder(step_map(net, u)).find(np.random.default_rng(0).normal(size=(20, 3)))
    assert len(fps) == 1 and fps.kinds[0] == "stable"
    np.testing.assert_allclose(fps.states[0], net.effective_weights()["weight_ih"] @ u
                               + net.params["bias"], atol=1e-10)
    np.testing.assert_allclose(np.abs(fps.eigenvalues[0]), 0.8, atol=1e-12)  # 1 - alpha


class _Shift(StepMap):
    """F(s) = s + c (no fixed point) or a contraction to a far point."""

    def __init__(self, size, shift=None, target=None):
        self.size, self.shift, self.target = size, shift, target

    def __call__(self, s):
        s = self._check(s)
        return s + self.shift if self.shift is not None else s - 0.5 * (s - self.target)

    def jacobian(self, s):
        s = self._check(s)
        scale = 1.0 if self.shift is not None else 0.5
        return np.broadcast_to(scale * np.eye(self.size), (len(s), self.size, self.size)).copy()


def test_slow_points_duplicates_and_outliers_are_dropped(rng):
    starts = rng.standard_normal((10, 2))
    none = FixedPointFinder(_Shift(2, shift=0.01)).find(starts)
    assert len(none) == 0 and none.n_converged == 0
    far = _Shift(2, target=np.array([100.0, 0.0]))
    assert len(FixedPointFinder(far).find(starts)) == 0  # 100 away from starts of scale ~1
    kept = FixedPointFinder(far, outlier_distance_scale=None).find(starts)
    assert len(kept) == 1 and kept.n_converged == 10  # ten converged starts, one point
    np.testing.assert_allclose(kept.states[0], [100.0, 0.0], atol=1e-9)


def test_classify_and_errors():
    kinds = classify(np.array([[0.5, 0.9j], [1.5, 0.2], [2.0, -1.1]]))
    assert kinds.tolist() == ["stable", "saddle", "unstable"]
    with pytest.raises(ValueError, match="single-layer, unidirectional"):
        step_map(SequenceModel(2, 3, 1, num_layers=2, rng=0))
    with pytest.raises(ValueError, match="single-layer, unidirectional"):
        step_map(LSTM(2, 3, proj_size=2, rng=0))
    with pytest.raises(ValueError, match=r"Expected input of shape \(2,\)"):
        step_map(RNN(2, 3, rng=0), np.zeros(3))
    with pytest.raises(TypeError, match="StepMap"):
        FixedPointFinder(RNN(2, 3, rng=0))
    with pytest.raises(ValueError, match="method must be one of 'lm', 'lbfgs'"):
        FixedPointFinder(step_map(RNN(2, 3, rng=0)), method="adam")
    with pytest.raises(ValueError, match=r"Expected states of shape \(N, 3\)"):
        FixedPointFinder(step_map(RNN(2, 3, rng=0))).find(np.zeros((4, 2)))


# ------------------------------------------------------------------------ plots
def test_plots_write_png_files(tmp_path, rng):
    pytest.importorskip("matplotlib", reason="the plots need matplotlib (the 'plot' extra)")
    from rnnkit.analysis import plots

    model = _flip_flop_network()
    trials = flip_flop(6, n_steps=30, rng=1, dtype=np.float64)
    fps, states = find_fixed_points(model, trials.x, n_samples=100, noise_std=0.5, rng=0)
    pca = fit_pca(states, 3)
    paths = [
        plots.plot_states({"h_l0": states[:, 0], "c_l0": -states[:, 0]}, tmp_path / "s.png",
                          xlabels=list("abcdefghij" * 3)),
        plots.plot_saliency(rng.random(12), tmp_path / "sal.png", labels=list("hello world!"),
                            target_step=11),
        plots.plot_trajectories(project(states, pca), tmp_path / "t3.png",
                                conditions=trials.info["n_pulses"], pca=pca,
                                fixed_points=(project(fps.states, pca), fps.kinds)),
        plots.plot_trajectories(project(states, pca)[:, :1, :2], tmp_path / "t2.png",
                                labels=[str(i) for i in range(30)]),
        plots.plot_fixed_points(fps, pca, tmp_path / "sub" / "fp.png", trajectories=states),
        plots.plot_eigenvalues(fps.eigenvalues, tmp_path / "eig.png", kinds=fps.kinds),
        plots.plot_psychometric([-0.1, 0.0, 0.1], [0.1, 0.5, 0.9], tmp_path / "psy.png",
                                n_trials=100),
    ]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", p
    with pytest.raises(ValueError, match=r"Expected proj of shape \(T, B, 2 or 3\)"):
        plots.plot_trajectories(np.zeros((3, 2, 4)), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="same 1-D shape"):
        plots.plot_psychometric([0.0, 1.0], [0.5], tmp_path / "bad.png")
