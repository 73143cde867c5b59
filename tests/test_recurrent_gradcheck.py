"""Finite-difference checks of the BPTT of RNN (tanh, relu, sigmoid), LSTM and GRU.

NumPy only (no torch). The scalar is

    L = sum(output * G) + sum(h_n * G_h) [+ sum(c_n * G_c)]

with fixed random G, G_h, G_c (not ones, which can hide a transposition),
in float64 with centred differences, eps = 1e-6. Every element of every
parameter, of the input, of h_0 (and c_0) is checked on tiny sizes; a random
direction is checked at a bigger size.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from torch_reference import reference_rnn_loop

from rnnkit.gradcheck import directional_check, numerical_gradient, rel_error
from rnnkit.recurrent import GRU, LSTM, RNN

TOL = 1e-6
# Below this gradient size the bound becomes absolute (TOL * FLOOR = 1e-8): the
# centred difference has a round-off of ~1e-16 * |L| / eps ~ 1e-9, which is not
# small relative to an array whose gradient is ~1e-4 (e.g. a relu layer's
# bias when most units are off).
FLOOR = 1e-2
CELLS = [("RNN", "tanh"), ("RNN", "relu"), ("RNN", "sigmoid"), ("LSTM", None), ("GRU", None)]
CELL_IDS = ["rnn_tanh", "rnn_relu", "rnn_sigmoid", "lstm", "gru"]
T, B, D, H = 4, 3, 2, 3
LENGTHS = [3, 1, 4]  # unsorted, with length 1 and a full-length sequence
KINK_MARGIN = 1e-4  # relu: no pre-activation this close to 0 (eps moves them ~1e-6)


def make_layer(cell, input_size, hidden_size, **kwargs):
    mode, nonlinearity = cell
    if mode == "RNN":
        return RNN(input_size, hidden_size, nonlinearity=nonlinearity, **kwargs)
    return {"LSTM": LSTM, "GRU": GRU}[mode](input_size, hidden_size, **kwargs)


class Problem:
    """A float64 layer, its inputs and fixed upstream gradients, and the loss L."""

    def __init__(self, cell, seed, T, B, D, H, lengths=None, **kwargs):
        rng = np.random.default_rng(seed)
        self.model = m = make_layer(cell, D, H, dtype=np.float64, rng=rng, **kwargs)
        self.lengths = lengths
        LK, K = m.num_layers * m.num_directions, m.num_directions
        R = m.proj_size or H  # features of h: proj_size for a projecting LSTM
        s_shapes = [(LK, B, R), (LK, B, H)][: 2 if m.mode == "LSTM" else 1]
        x_shape = (B, T, D) if m.batch_first else (T, B, D)
        o_shape = (B, T, K * R) if m.batch_first else (T, B, K * R)
        self.x = rng.standard_normal(x_shape)
        self.states = [rng.standard_normal(s) for s in s_shapes]
        self.G = rng.standard_normal(o_shape)
        self.G_states = [rng.standard_normal(s) for s in s_shapes]
        self.dropout_seed = None  # set to replay the same dropout masks every forward

    def _hx(self, states):
        return tuple(states) if self.model.mode == "LSTM" else states[0]

    def forward(self):
        if self.dropout_seed is not None:
            self.model.rng = np.random.default_rng(self.dropout_seed)
        out, finals = self.model.forward(self.x, self._hx(self.states), lengths=self.lengths)
        return out, (finals if self.model.mode == "LSTM" else (finals,))

    def loss(self):
        out, finals = self.forward()
        value = float(np.sum(out * self.G))
        for f, g in zip(finals, self.G_states):
            value += float(np.sum(f * g))
        return value

    def analytic(self):
        """{name: gradient} for every parameter, 'input' and 'h_0' (, 'c_0')."""
        self.model.zero_grad()
        self.forward()
        d_input, d_states = self.model.backward(self.G, self._hx(self.G_states))
        if self.model.mode != "LSTM":
            d_states = (d_states,)
        grads = {k: v.copy() for k, v in self.model.grads.items()}
        grads["input"] = d_input
        for name, d in zip(("h_0", "c_0"), d_states):
            grads[name] = d
        return grads

    def arrays(self):
        """{name: the array the layer reads}, perturbed in place by the checks."""
        arrays = dict(self.model.params)
        arrays["input"] = self.x
        for name, s in zip(("h_0", "c_0"), self.states):
            arrays[name] = s
        return arrays

    def relu_kink_distance(self):
        """Smallest |pre-activation| over the valid steps, from the plain loop."""
        m = self.model
        x = self.x.transpose(1, 0, 2) if m.batch_first else self.x
        _, _, pre = reference_rnn_loop(m.params, x, self.states[0], "relu", m.num_layers,
                                       m.bidirectional, self.lengths)
        return float(np.nanmin(np.abs(pre)))


def make_problem(cell, T, B, D, H, lengths=None, seed=0, **kwargs):
    """A Problem; for relu, the first seed from ``seed`` whose pre-activations avoid 0."""
    for s in range(seed, seed + 50):
        p = Problem(cell, s, T, B, D, H, lengths=lengths, **kwargs)
        if cell[1] != "relu" or p.relu_kink_distance() > KINK_MARGIN:
            return p
    raise AssertionError("no seed found whose relu pre-activations avoid the kink")


def fd_error(analytic, numerical):
    """``rel_error`` (max abs difference over max abs value), the scale floored at FLOOR."""
    scale = max(np.abs(analytic).max(), np.abs(numerical).max(), FLOOR)
    return float(np.abs(analytic - numerical).max()) / scale


def check_all_elements(p):
    analytic = p.analytic()
    arrays = p.arrays()
    assert set(analytic) == set(arrays), "gradients returned for other arrays than the inputs"
    for name, arr in arrays.items():
        num = numerical_gradient(p.loss, arr, eps=1e-6)
        err = fd_error(analytic[name], num)
        assert err <= TOL, f"{name}: analytic vs finite-difference rel_error {err:.2e}"
        # the check is not vacuous: this array does move the loss
        assert np.abs(num).max() > 1e-8, f"{name}: finite-difference gradient is all zero"


GRID = list(itertools.product(CELLS, (1, 2), (False, True), (True, False), (None, LENGTHS),
                              (False, True)))


def _grid_id(p):
    cell, L, bidir, bias, lengths, bf = p
    return "-".join([CELL_IDS[CELLS.index(cell)], f"L{L}", "bi" if bidir else "uni",
                     "bias" if bias else "nobias", "lengths" if lengths else "full",
                     "bf" if bf else "tm"])


@pytest.mark.parametrize("cell,num_layers,bidirectional,bias,lengths,batch_first", GRID,
                         ids=[_grid_id(p) for p in GRID])
def test_gradcheck_every_element(cell, num_layers, bidirectional, bias, lengths, batch_first):
    p = make_problem(cell, T, B, D, H, lengths=lengths, seed=100 * GRID.index(
        (cell, num_layers, bidirectional, bias, lengths, batch_first)),
        num_layers=num_layers, bidirectional=bidirectional, bias=bias, batch_first=batch_first)
    check_all_elements(p)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_gradcheck_train_mode_dropout(cell):
    """Dropout between layers: the same masks replayed every forward (reseeded rng)."""
    p = make_problem(cell, T, B, D, H, lengths=LENGTHS, seed=7, num_layers=2,
                     bidirectional=True, dropout=0.4)
    p.dropout_seed = 1234
    out_a, _ = p.forward()
    p.model.eval()
    out_eval, _ = p.model.forward(p.x, p._hx(p.states), lengths=p.lengths)
    p.model.train()
    assert not np.allclose(out_a, out_eval), "dropout had no effect in train()"
    check_all_elements(p)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_gradcheck_lstm_proj_size(num_layers, bidirectional, lengths):
    """LSTM with proj_size=2 < H: weight_hr_l{k} and the rest, every element."""
    p = make_problem(("LSTM", None), T, B, D, H, lengths=lengths, seed=31, num_layers=num_layers,
                     bidirectional=bidirectional, proj_size=2)
    assert "weight_hr_l0" in p.model.params
    check_all_elements(p)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_directional_check_bigger(cell):
    """T=20, B=4, H=16, 2 bidirectional layers, mixed lengths: one random direction."""
    rng = np.random.default_rng(42)
    lengths = [20, 7, 13, 1]
    p = make_problem(cell, 20, 4, 5, 16, lengths=lengths, seed=1, num_layers=2,
                     bidirectional=True)
    analytic = p.analytic()
    arrays = p.arrays()
    names = sorted(arrays)
    numerical, exact = directional_check(p.loss, [arrays[k] for k in names],
                                         [analytic[k] for k in names], rng, eps=1e-6)
    assert abs(exact) > 1e-3, f"directional derivative too small to be informative: {exact}"
    err = rel_error(numerical, exact)
    assert err <= TOL, f"directional derivative {exact!r} vs finite difference {numerical!r}"
