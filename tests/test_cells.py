"""Single-step cells ``RNNCell``, ``LSTMCell``, ``GRUCell`` (``rnnkit.recurrent_cells``).

* against ``torch.nn.{RNN,LSTM,GRU}Cell`` in float64 (new states and every
  gradient to 1e-10 relative, random upstream gradients) and in float32;
* the ``'sigmoid'`` RNNCell (not in PyTorch) against NumPy written from its equation;
* float64 finite differences of every parameter, the input and the states;
* a cell stepped by hand reproduces the 1-layer sequence layer;
* the errors.

The torch tests call ``pytest.importorskip("torch")`` themselves, so the
NumPy-only tests run without torch.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit import GRU, LSTM, RNN
from rnnkit.gradcheck import numerical_gradient, rel_error
from rnnkit.recurrent_cells import GRUCell, LSTMCell, RNNCell

SEED = 20240611
TOL64 = 1e-10  # float64 against torch: round-off only
# float32 against a float64 torch run on the same (float32-exact) numbers; the
# worst seen over 20 seeds at D=16, H=32, B=8 was 5e-7, so 1e-5 leaves 20x room.
TOL32 = 1e-5
TOL_FD = 1e-6  # centred differences, eps=1e-6, float64

# name -> (rnnkit class, torch class name, constructor options)
CELLS = {
    "rnn_tanh": (RNNCell, "RNNCell", {"nonlinearity": "tanh"}),
    "rnn_relu": (RNNCell, "RNNCell", {"nonlinearity": "relu"}),
    "lstm": (LSTMCell, "LSTMCell", {}),
    "gru": (GRUCell, "GRUCell", {}),
}
ALL_CELLS = {**CELLS, "rnn_sigmoid": (RNNCell, None, {"nonlinearity": "sigmoid"})}


@pytest.fixture(scope="module", autouse=True)
def _torch_one_thread():
    """Tiny problems: torch's thread pool only adds overhead (10x here); restored afterwards."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(SEED)


def _is_lstm(cell):
    return isinstance(cell, LSTMCell)


def _make(name, D, H, bias, dtype, seed=0):
    cls, _, kw = ALL_CELLS[name]
    return cls(D, H, bias=bias, dtype=dtype, rng=seed, **kw)


def _draw(rng, cell, B, dtype):
    """Random input, states and upstream gradients; B=None means unbatched."""
    lead = () if B is None else (B,)
    D, H = cell.input_size, cell.hidden_size

    def r(*shape):
        return rng.standard_normal(lead + shape).astype(dtype)

    return {"x": r(D), "h": r(H), "c": r(H), "dh": r(H), "dc": r(H)}


def _run(cell, d, with_state=True):
    """Forward then backward with rnnkit; returns new states and gradients as a dict."""
    if _is_lstm(cell):
        hx = (d["h"], d["c"]) if with_state else None
        h1, c1 = cell.forward(d["x"], hx)
        dx, (dh0, dc0) = cell.backward(d["dh"], d["dc"])
        return {"h1": h1, "c1": c1, "d_input": dx, "d_h": dh0, "d_c": dc0}
    h1 = cell.forward(d["x"], d["h"] if with_state else None)
    dx, dh0 = cell.backward(d["dh"])
    return {"h1": h1, "d_input": dx, "d_h": dh0}


def _torch_cell(torch, name, cell, torch_dtype):
    _, tname, kw = CELLS[name]
    tcell = getattr(torch.nn, tname)(cell.input_size, cell.hidden_size, bias=cell.bias,
                                     dtype=torch_dtype, **kw)
    np_dtype = np.float64 if torch_dtype == torch.float64 else np.float32
    # by name, no reshaping, strict: a key or shape unlike PyTorch's is an error
    tcell.load_state_dict({k: torch.from_numpy(v.astype(np_dtype)) for k, v in cell.params.items()},
                          strict=True)
    return tcell


def _torch_run(torch, tcell, d, lstm, with_state=True, torch_dtype=None):
    """The same step with torch autograd; states are zeros (as leaf tensors) when not given."""
    torch_dtype = torch_dtype or torch.float64

    def t(a, grad=False):
        return torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch_dtype,
                            requires_grad=grad)

    x = t(d["x"], True)
    h = t(d["h"] if with_state else np.zeros_like(d["h"]), True)
    c = t(d["c"] if with_state else np.zeros_like(d["c"]), True)
    if lstm:
        h1, c1 = tcell(x, (h, c))
        loss = (h1 * t(d["dh"])).sum() + (c1 * t(d["dc"])).sum()
    else:
        h1 = tcell(x, h)
        loss = (h1 * t(d["dh"])).sum()
    loss.backward()
    out = {"h1": h1.detach().numpy(), "d_input": x.grad.numpy(), "d_h": h.grad.numpy()}
    if lstm:
        out["c1"] = c1.detach().numpy()
        out["d_c"] = c.grad.numpy()
    out["grads"] = {k: p.grad.numpy() for k, p in tcell.named_parameters()}
    return out


def _compare(mine, cell, ref, tol, dtype):
    for key in [k for k in ref if k != "grads"]:
        assert mine[key].shape == ref[key].shape, f"{key}: shape {mine[key].shape} vs torch"
        assert mine[key].dtype == dtype, f"{key}: dtype {mine[key].dtype}, expected {dtype}"
        err = rel_error(mine[key], ref[key])
        assert err <= tol, f"{key}: rnnkit vs torch relative error {err:.2e} > {tol:.0e}"
    assert set(cell.grads) == set(ref["grads"]), "gradient keys differ from torch's parameters"
    for k, g in ref["grads"].items():
        assert cell.grads[k].dtype == dtype, f"grads[{k}] dtype {cell.grads[k].dtype}"
        err = rel_error(cell.grads[k], g)
        assert err <= tol, f"grads[{k}]: rnnkit vs torch relative error {err:.2e} > {tol:.0e}"


# --------------------------------------------------------------------------- torch, float64
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("name", list(CELLS))
def test_cell_matches_torch_float64(name, bias, batched, rng):
    torch = pytest.importorskip("torch")
    cell = _make(name, 4, 5, bias, np.float64, seed=1)
    d = _draw(rng, cell, 3 if batched else None, np.float64)
    mine = _run(cell, d)
    ref = _torch_run(torch, _torch_cell(torch, name, cell, torch.float64), d, _is_lstm(cell))
    _compare(mine, cell, ref, TOL64, np.float64)


@pytest.mark.parametrize("name", list(CELLS))
def test_cell_default_zero_state_matches_torch(name, rng):
    """``hx=None`` means zeros; the returned d_hx is still the gradient of that zero state."""
    torch = pytest.importorskip("torch")
    cell = _make(name, 3, 4, True, np.float64, seed=2)
    d = _draw(rng, cell, 2, np.float64)
    mine = _run(cell, d, with_state=False)
    ref = _torch_run(torch, _torch_cell(torch, name, cell, torch.float64), d, _is_lstm(cell),
                     with_state=False)
    _compare(mine, cell, ref, TOL64, np.float64)


@pytest.mark.parametrize("name", list(CELLS))
def test_cell_gradients_accumulate_like_torch(name, rng):
    """Two forward/backward pairs add their parameter gradients (weights shared over steps)."""
    torch = pytest.importorskip("torch")
    cell = _make(name, 3, 4, True, np.float64, seed=3)
    tcell = _torch_cell(torch, name, cell, torch.float64)
    for _ in range(2):
        d = _draw(rng, cell, 2, np.float64)
        _run(cell, d)
        ref = _torch_run(torch, tcell, d, _is_lstm(cell))  # .grad accumulates in torch too
    for k, g in ref["grads"].items():
        err = rel_error(cell.grads[k], g)
        assert err <= TOL64, f"accumulated grads[{k}]: relative error {err:.2e}"
    cell.zero_grad()
    assert all(not g.any() for g in cell.grads.values()), "zero_grad left nonzero gradients"


def test_lstm_cell_backward_without_dc_matches_torch(rng):
    """``backward(d_h)`` with ``d_c=None``: the loss reads h' only."""
    torch = pytest.importorskip("torch")
    cell = _make("lstm", 3, 4, True, np.float64, seed=4)
    d = _draw(rng, cell, 2, np.float64)
    d["dc"] = np.zeros_like(d["dc"])  # what torch sees: no gradient through c'
    h1, c1 = cell.forward(d["x"], (d["h"], d["c"]))
    dx, (dh0, dc0) = cell.backward(d["dh"])
    ref = _torch_run(torch, _torch_cell(torch, "lstm", cell, torch.float64), d, True)
    for key, mine in (("h1", h1), ("c1", c1), ("d_input", dx), ("d_h", dh0), ("d_c", dc0)):
        assert rel_error(mine, ref[key]) <= TOL64, key
    for k, g in ref["grads"].items():
        assert rel_error(cell.grads[k], g) <= TOL64, k


# --------------------------------------------------------------------------- torch, float32
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("name", list(CELLS))
def test_cell_matches_torch_float32(name, batched, rng):
    """float32 in, float32 out; compared with torch in float64 on the same float32 numbers."""
    torch = pytest.importorskip("torch")
    cell = _make(name, 16, 32, True, np.float32, seed=5)
    d = _draw(rng, cell, 8 if batched else None, np.float32)
    mine = _run(cell, d)
    ref = _torch_run(torch, _torch_cell(torch, name, cell, torch.float64), d, _is_lstm(cell))
    _compare(mine, cell, ref, TOL32, np.float32)


# --------------------------------------------------------------------------- sigmoid RNNCell
def _sigmoid_reference(p, x, h, dh):
    """``h' = sigmoid(W_ih x + b_ih + W_hh h + b_hh)`` and its gradients, from the equation."""
    a = x @ p["weight_ih"].T + h @ p["weight_hh"].T  # (B, H)
    if "bias_ih" in p:
        a = a + p["bias_ih"] + p["bias_hh"]
    s = 1.0 / (1.0 + np.exp(-a))
    da = dh * s * (1.0 - s)
    grads = {"weight_ih": da.T @ x, "weight_hh": da.T @ h}
    if "bias_ih" in p:
        grads["bias_ih"] = grads["bias_hh"] = da.sum(axis=0)
    return s, da @ p["weight_ih"], da @ p["weight_hh"], grads


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_rnn_cell_sigmoid_matches_equation(bias, batched, rng):
    cell = _make("rnn_sigmoid", 4, 5, bias, np.float64, seed=6)
    d = _draw(rng, cell, 3 if batched else None, np.float64)
    mine = _run(cell, d)
    x2, h2, dh2 = (np.atleast_2d(d[k]) for k in ("x", "h", "dh"))
    s, dx, dhp, grads = _sigmoid_reference(cell.params, x2, h2, dh2)
    if not batched:
        s, dx, dhp = s[0], dx[0], dhp[0]
    for key, ref in (("h1", s), ("d_input", dx), ("d_h", dhp)):
        assert mine[key].shape == ref.shape, key
        assert rel_error(mine[key], ref) <= TOL64, f"{key}: sigmoid RNNCell vs equation"
    assert set(cell.grads) == set(grads)
    for k, g in grads.items():
        assert rel_error(cell.grads[k], g) <= TOL64, f"grads[{k}]: sigmoid RNNCell vs equation"


# --------------------------------------------------------------------------- finite differences
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("name", list(ALL_CELLS))
def test_cell_finite_differences(name, bias, batched, rng):
    """Every parameter, the input and the state(s), against L = sum(h' G) (+ sum(c' Gc))."""
    cell = _make(name, 3, 3, bias, np.float64, seed=7)
    d = _draw(rng, cell, 2 if batched else None, np.float64)
    lstm = _is_lstm(cell)
    if name == "rnn_relu":  # keep every pre-activation away from relu's kink
        a = np.atleast_2d(d["x"]) @ cell.params["weight_ih"].T
        a = a + np.atleast_2d(d["h"]) @ cell.params["weight_hh"].T
        if bias:
            a = a + cell.params["bias_ih"] + cell.params["bias_hh"]
        assert np.abs(a).min() > 1e-3, "precondition: choose another seed"
        assert (a > 0).any() and (a < 0).any(), "precondition: both relu branches"

    mine = _run(cell, d)

    def loss():
        if lstm:
            h1, c1 = cell.forward(d["x"], (d["h"], d["c"]))
            return float((h1 * d["dh"]).sum() + (c1 * d["dc"]).sum())
        return float((cell.forward(d["x"], d["h"]) * d["dh"]).sum())

    checks = {f"grads[{k}]": (p, cell.grads[k]) for k, p in cell.params.items()}
    checks["d_input"] = (d["x"], mine["d_input"])
    checks["d_h"] = (d["h"], mine["d_h"])
    if lstm:
        checks["d_c"] = (d["c"], mine["d_c"])
    for label, (array, analytic) in checks.items():
        numeric = numerical_gradient(loss, array)
        assert np.abs(numeric).max() > 0, f"{label}: numerical gradient is all zero"
        err = rel_error(analytic, numeric)
        assert err <= TOL_FD, f"{label}: analytic vs finite differences {err:.2e}"


# --------------------------------------------------------------------------- cell vs layer
LAYERS = {
    "rnn_tanh": (RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (RNN, {"nonlinearity": "relu"}),
    "rnn_sigmoid": (RNN, {"nonlinearity": "sigmoid"}),
    "lstm": (LSTM, {}),
    "gru": (GRU, {}),
}


@pytest.mark.parametrize("given_state", [True, False], ids=["h0", "zeros"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_cell_stepped_by_hand_reproduces_layer(name, bias, given_state, rng):
    """Both directions of a 1-layer bidirectional layer, stepped with a cell holding its weights."""
    T, B, D, H = 6, 3, 4, 5
    layer_cls, kw = LAYERS[name]
    layer = layer_cls(D, H, bias=bias, bidirectional=True, dtype=np.float64, rng=8, **kw)
    lstm = layer_cls is LSTM
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((2, B, H)) if given_state else np.zeros((2, B, H))
    c0 = rng.standard_normal((2, B, H)) if given_state else np.zeros((2, B, H))
    hx = ((h0, c0) if lstm else h0) if given_state else None
    out, hn = layer.forward(x, hx)
    h_n, c_n = hn if lstm else (hn, None)

    for k, sfx in enumerate(("_l0", "_l0_reverse")):
        cell = _make(name, D, H, bias, np.float64, seed=99)
        sd = {key[: -len(sfx)]: v for key, v in layer.params.items() if key.endswith(sfx)}
        cell.load_state_dict(sd)  # strict: every cell parameter comes from the layer
        assert all(np.array_equal(cell.params[n], sd[n]) for n in cell.params)
        h, c = h0[k], c0[k]
        steps = range(T) if k == 0 else range(T - 1, -1, -1)
        for t in steps:
            if lstm:
                h, c = cell.forward(x[t], (h, c))
            else:
                h = cell.forward(x[t], h)
            err = rel_error(h, out[t, :, k * H:(k + 1) * H])
            assert err <= 1e-12, f"direction {k}, step {t}: cell vs layer output {err:.2e}"
        assert rel_error(h, h_n[k]) <= 1e-12, f"direction {k}: h_n"
        if lstm:
            assert rel_error(c, c_n[k]) <= 1e-12, f"direction {k}: c_n"


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", list(ALL_CELLS))
def test_cell_rejects_wrong_input_size_and_rank(name):
    cell = _make(name, 3, 4, True, np.float64)
    with pytest.raises(ValueError, match="input_size"):
        cell.forward(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="input_size"):
        cell.forward(np.zeros(5))
    with pytest.raises(ValueError, match="3D"):
        cell.forward(np.zeros((1, 2, 3)))


@pytest.mark.parametrize("name", ["rnn_tanh", "gru"])
def test_cell_rejects_wrong_state_shape(name):
    cell = _make(name, 3, 4, True, np.float64)
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"hx.*\(2, 4\).*\(2, 5\)"):
        cell.forward(x, np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"hx.*\(2, 4\).*\(3, 4\)"):
        cell.forward(x, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="hx"):  # batched input, unbatched state
        cell.forward(x, np.zeros(4))
    with pytest.raises(ValueError, match="hx"):  # unbatched input, batched state
        cell.forward(np.zeros(3), np.zeros((1, 4)))


def test_lstm_cell_rejects_wrong_state_shapes_and_non_tuple():
    cell = _make("lstm", 3, 4, True, np.float64)
    x = np.zeros((2, 3))
    h, c = np.zeros((2, 4)), np.zeros((2, 4))
    with pytest.raises(TypeError, match="tuple"):
        cell.forward(x, h)
    with pytest.raises(TypeError, match="tuple"):
        cell.forward(x, (h, c, c))
    with pytest.raises(ValueError, match=r"\bh\b.*\(2, 4\).*\(2, 3\)"):
        cell.forward(x, (np.zeros((2, 3)), c))
    with pytest.raises(ValueError, match=r"\bc\b.*\(2, 4\).*\(2, 5\)"):
        cell.forward(x, (h, np.zeros((2, 5))))


@pytest.mark.parametrize("name", list(ALL_CELLS))
def test_cell_backward_needs_a_forward(name):
    cell = _make(name, 3, 4, True, np.float64)
    d_h = np.zeros((2, 4))
    with pytest.raises(RuntimeError, match="no forward"):
        cell.backward(d_h)
    cell.forward(np.zeros((2, 3)))
    cell.backward(d_h)
    with pytest.raises(RuntimeError, match="no forward"):  # the cache is consumed
        cell.backward(d_h)


@pytest.mark.parametrize("name", list(ALL_CELLS))
def test_cell_backward_rejects_wrong_gradient_shape(name):
    cell = _make(name, 3, 4, True, np.float64)
    cell.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"d_h.*\(2, 4\).*\(2, 5\)"):
        cell.backward(np.zeros((2, 5)))


@pytest.mark.parametrize("name", list(ALL_CELLS))
def test_cell_rejects_dtype_mismatch(name):
    cell = _make(name, 3, 4, True, np.float64)
    with pytest.raises(TypeError, match="input must have dtype float64"):
        cell.forward(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="integer"):
        cell.forward(np.zeros((2, 3), np.int64))
    state = np.zeros((2, 4), np.float32)
    hx = (state, np.zeros((2, 4))) if name == "lstm" else state
    with pytest.raises(TypeError, match="float64"):
        cell.forward(np.zeros((2, 3)), hx)
    cell32 = _make(name, 3, 4, True, np.float32)
    cell32.forward(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="d_h must have dtype float32"):
        cell32.backward(np.zeros((2, 4)))


def test_cell_constructor_errors():
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="hidden_size"):
        LSTMCell(3, 0)
    with pytest.raises(TypeError, match="input_size"):
        GRUCell(3.0, 4)
    with pytest.raises(TypeError, match="dtype"):
        GRUCell(3, 4, dtype=np.int32)


# --------------------------------------------------------------------------- aliasing
def _backward_after(cell, d, change_outputs=None, change_inputs=False):
    """forward, optionally modify returned states or the caller's x/hx buffers in place, backward."""
    x, h, c = d["x"].copy(), d["h"].copy(), d["c"].copy()
    out = cell.forward(x, (h, c) if _is_lstm(cell) else h)
    if change_outputs is not None:
        for a in (out if isinstance(out, tuple) else (out,)):
            change_outputs(a)
    if change_inputs:  # the caller reuses its buffers, e.g. h[...] = cell(x, h)
        x += 0.25
        h += 0.25
        c += 0.25
    if _is_lstm(cell):
        dx, (dh0, _) = cell.backward(d["dh"], d["dc"])
    else:
        dx, dh0 = cell.backward(d["dh"])
    return {"d_input": dx, "d_h": dh0, **{f"grads[{k}]": g.copy() for k, g in cell.grads.items()}}


def _assert_same_backward(name, rng, **change):
    cell = _make(name, 3, 4, True, np.float64, seed=9)
    d = _draw(rng, cell, 2, np.float64)
    clean = _backward_after(cell, d)
    cell.zero_grad()
    changed = _backward_after(cell, d, **change)
    for key, value in clean.items():
        np.testing.assert_array_equal(changed[key], value, err_msg=key)


def _shift(a):
    a += 0.25


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_gated_cell_backward_ignores_in_place_change_to_returned_state(name, rng):
    _assert_same_backward(name, rng, change_outputs=_shift)


@pytest.mark.parametrize("name", ["rnn_tanh", "rnn_relu", "rnn_sigmoid"])
def test_rnn_cell_backward_ignores_in_place_change_to_returned_state(name, rng):
    _assert_same_backward(name, rng, change_outputs=_shift)


@pytest.mark.parametrize("name", list(ALL_CELLS))
def test_cell_backward_ignores_reuse_of_input_buffers(name, rng):
    _assert_same_backward(name, rng, change_inputs=True)
