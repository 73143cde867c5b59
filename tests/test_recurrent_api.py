"""Behaviour of the sequence layers RNN, LSTM, GRU: shapes, dtypes, gradient
bookkeeping, errors, dropout, variable lengths, state dicts and initialization.

NumPy only; the numbers themselves are checked in test_recurrent_vs_torch.py
and test_recurrent_gradcheck.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rnnkit.benchmark import ACTIVATIONS, MEMORY_TARGET, _peak_memory
from rnnkit.gradcheck import rel_error
from rnnkit.recurrent import GRU, LSTM, RNN, RNNBase

CELLS = [("RNN", "tanh"), ("RNN", "relu"), ("RNN", "sigmoid"), ("LSTM", None), ("GRU", None)]
CELL_IDS = ["rnn_tanh", "rnn_relu", "rnn_sigmoid", "lstm", "gru"]
FAMILIES = [("RNN", "tanh"), ("LSTM", None), ("GRU", None)]
FAMILY_IDS = ["rnn", "lstm", "gru"]
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
T, B, D, H = 6, 4, 3, 5


@pytest.fixture
def rng():
    return np.random.default_rng(20240601)


def make_layer(cell, input_size=D, hidden_size=H, **kwargs):
    mode, nonlinearity = cell
    if mode == "RNN":
        return RNN(input_size, hidden_size, nonlinearity=nonlinearity, **kwargs)
    return {"LSTM": LSTM, "GRU": GRU}[mode](input_size, hidden_size, **kwargs)


def as_tuple(states):
    return states if isinstance(states, tuple) else (states,)


def pack(model, states):
    return tuple(states) if model.mode == "LSTM" else states[0]


def random_states(model, rng, batch=B, dtype=None):
    dtype = model.dtype if dtype is None else dtype
    lead = (model.num_layers * model.num_directions,) + (() if batch is None else (batch,))
    sizes = [model.proj_size or model.hidden_size, model.hidden_size]  # h, c
    n = 2 if model.mode == "LSTM" else 1
    return pack(model, [rng.standard_normal(lead + (s,)).astype(dtype) for s in sizes[:n]])


def expected_keys(mode, num_layers, bidirectional, bias):
    keys = []
    for layer in range(num_layers):
        for sfx in ("", "_reverse")[: 2 if bidirectional else 1]:
            keys += [f"weight_ih_l{layer}{sfx}", f"weight_hh_l{layer}{sfx}"]
            if bias:
                keys += [f"bias_ih_l{layer}{sfx}", f"bias_hh_l{layer}{sfx}"]
    return keys


# --------------------------------------------------------------- shapes, dtypes
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("layout", ["time_major", "batch_first", "unbatched"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
def test_shapes_and_dtype_preserved(rng, cell, dtype, layout, bidirectional, use_lengths):
    L, K = 2, 2 if bidirectional else 1
    model = make_layer(cell, num_layers=L, bidirectional=bidirectional,
                       batch_first=layout == "batch_first", dropout=0.25, dtype=dtype, rng=0)
    assert sorted(model.params) == sorted(expected_keys(model.mode, L, bidirectional, True))
    G = GATES[model.mode]
    for key, p in model.params.items():
        in_size = (D if "_l0" in key else K * H) if "weight_ih" in key else H
        shape = (G * H, in_size) if key.startswith("weight") else (G * H,)
        assert p.shape == shape, f"{key}: shape {p.shape}, expected {shape}"
        assert p.dtype == dtype, f"{key}: dtype {p.dtype}"
    x_shape = {"time_major": (T, B, D), "batch_first": (B, T, D), "unbatched": (T, D)}[layout]
    out_shape = x_shape[:-1] + (K * H,)
    batch = None if layout == "unbatched" else B
    state_shape = (L * K,) + (() if batch is None else (batch,)) + (H,)
    lengths = None
    if use_lengths:
        lengths = 4 if layout == "unbatched" else [4, 6, 1, 3]
    x = rng.standard_normal(x_shape).astype(dtype)
    hx = random_states(model, rng, batch)
    out, finals = model.forward(x, hx, lengths=lengths)
    assert out.shape == out_shape and out.dtype == dtype, f"output {out.shape} {out.dtype}"
    for f in as_tuple(finals):
        assert f.shape == state_shape and f.dtype == dtype, f"final state {f.shape} {f.dtype}"
    d_input, d_states = model.backward(rng.standard_normal(out_shape).astype(dtype),
                                       random_states(model, rng, batch))
    assert d_input.shape == x_shape and d_input.dtype == dtype, (
        f"d_input {d_input.shape} {d_input.dtype}")
    assert len(as_tuple(d_states)) == len(as_tuple(hx))
    for d in as_tuple(d_states):
        assert d.shape == state_shape and d.dtype == dtype, f"d_h0 {d.shape} {d.dtype}"
    assert set(model.grads) == set(model.params)
    for key, g in model.grads.items():
        assert g.shape == model.params[key].shape and g.dtype == dtype, (
            f"grads[{key}]: {g.shape} {g.dtype}")
        assert np.isfinite(g).all() and np.abs(g).max() > 0, f"grads[{key}] empty"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("layout", ["time_major", "batch_first", "unbatched"])
def test_lstm_proj_size_shapes(rng, dtype, layout):
    P, L, K = 2, 2, 2
    model = LSTM(D, H, num_layers=L, bidirectional=True, proj_size=P,
                 batch_first=layout == "batch_first", dtype=dtype, rng=0)
    assert model.params["weight_hr_l1_reverse"].shape == (P, H)
    assert model.params["weight_hh_l0"].shape == (4 * H, P)
    assert model.params["weight_ih_l1"].shape == (4 * H, K * P)
    x_shape = {"time_major": (T, B, D), "batch_first": (B, T, D), "unbatched": (T, D)}[layout]
    lead = (L * K,) + (() if layout == "unbatched" else (B,))
    x = rng.standard_normal(x_shape).astype(dtype)
    out, (h_n, c_n) = model.forward(x)
    assert out.shape == x_shape[:-1] + (K * P,) and out.dtype == dtype
    assert h_n.shape == lead + (P,) and c_n.shape == lead + (H,)
    assert h_n.dtype == dtype and c_n.dtype == dtype
    d_input, (d_h0, d_c0) = model.backward(np.ones_like(out), (np.ones_like(h_n),
                                                              np.ones_like(c_n)))
    assert d_input.shape == x_shape and d_h0.shape == h_n.shape and d_c0.shape == c_n.shape
    assert d_input.dtype == d_h0.dtype == d_c0.dtype == dtype
    for key, g in model.grads.items():
        assert g.shape == model.params[key].shape and g.dtype == dtype, f"grads[{key}]"
    with pytest.raises(ValueError, match=rf"Expected h_0 size \({L * K}, {B}, {P}\)"):
        model.forward(rng.standard_normal((T, B, D)).astype(dtype) if layout != "batch_first"
                      else rng.standard_normal((B, T, D)).astype(dtype),
                      (np.zeros((L * K, B, H), dtype), np.zeros((L * K, B, H), dtype)))


@pytest.mark.parametrize("cell", FAMILIES, ids=FAMILY_IDS)
@pytest.mark.parametrize("bias", [True, False])
def test_param_keys_follow_torch(cell, bias):
    model = make_layer(cell, num_layers=3, bidirectional=True, bias=bias, rng=0)
    assert sorted(model.params) == sorted(expected_keys(model.mode, 3, True, bias))
    assert sorted(model.grads) == sorted(model.params)


def test_default_dtype_is_float32():
    model = RNN(D, H, rng=0)
    out, h_n = model.forward(np.zeros((T, B, D), np.float32))
    assert model.dtype == np.float32 and out.dtype == np.float32 and h_n.dtype == np.float32


# ----------------------------------------------------------- grad bookkeeping
def _forward_backward(model, x, hx, d_out, d_hx):
    model.forward(x, hx)
    return model.backward(d_out, d_hx)


@pytest.mark.parametrize("cell", FAMILIES, ids=FAMILY_IDS)
def test_grads_accumulate_and_zero_grad(rng, cell):
    model = make_layer(cell, num_layers=2, bidirectional=True, dtype=np.float64, rng=1)
    x = rng.standard_normal((T, B, D))
    hx = random_states(model, rng)
    d_out = rng.standard_normal((T, B, 2 * H))
    d_hx = random_states(model, rng)
    held = dict(model.grads)  # optimizers hold these arrays: zero_grad must work in place
    _forward_backward(model, x, hx, d_out, d_hx)
    once = {k: v.copy() for k, v in model.grads.items()}
    _forward_backward(model, x, hx, d_out, d_hx)
    for k, g in model.grads.items():
        assert np.abs(once[k]).max() > 0, f"grads[{k}] is zero after one backward"
        np.testing.assert_allclose(g, 2 * once[k], rtol=1e-12, atol=0,
                                   err_msg=f"grads[{k}] after two backward passes")
    model.zero_grad()
    for k, g in model.grads.items():
        assert g is held[k], f"zero_grad replaced grads[{k}] instead of zeroing it"
        assert not g.any(), f"grads[{k}] not zero after zero_grad"
    _forward_backward(model, x, hx, d_out, d_hx)
    for k, g in model.grads.items():
        np.testing.assert_array_equal(g, once[k], err_msg=f"grads[{k}] after zero_grad")


@pytest.mark.parametrize("options", [{}, {"num_layers": 3}, {"bidirectional": True},
                                     {"batch_first": True}, {"unbatched": True},
                                     {"lengths": [6, 2, 5, 1]}])
@pytest.mark.parametrize("cell", FAMILIES, ids=FAMILY_IDS)
def test_backward_without_the_input_gradient(rng, cell, options):
    """input_grad=False gives d_input None and the same parameter and state gradients."""
    options = dict(options)
    unbatched = options.pop("unbatched", False)
    lengths = options.pop("lengths", None)
    model = make_layer(cell, dtype=np.float64, rng=1, **options)
    x = rng.standard_normal((T, D) if unbatched else (T, B, D))
    if options.get("batch_first"):
        x = x.transpose(1, 0, 2)
    kw = {} if lengths is None else {"lengths": lengths}
    results = []
    for input_grad in (True, False):
        model.zero_grad()
        out, _ = model(x, **kw)
        d_input, d_h0 = model.backward(np.cos(out), input_grad=input_grad)
        assert (d_input is None) == (not input_grad)
        if input_grad:
            assert d_input.shape == x.shape
        results.append([*as_tuple(d_h0), *(model.grads[k].copy() for k in sorted(model.grads))])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", FAMILIES, ids=FAMILY_IDS)
def test_backward_needs_a_forward(rng, cell):
    model = make_layer(cell, rng=0)
    with pytest.raises(RuntimeError, match="no forward pass"):
        model.backward(np.zeros((T, B, H), np.float32))
    out, _ = model.forward(rng.standard_normal((T, B, D)).astype(np.float32))
    model.backward(np.ones_like(out))
    with pytest.raises(RuntimeError, match="no forward pass"):
        model.backward(np.ones_like(out))


def test_backward_uses_most_recent_forward(rng):
    model = GRU(D, H, dtype=np.float64, rng=0)
    x1, x2 = rng.standard_normal((T, B, D)), rng.standard_normal((T, B, D))
    d_out = rng.standard_normal((T, B, H))
    model.forward(x2)
    ref_dx, _ = model.backward(d_out)
    ref = {k: v.copy() for k, v in model.grads.items()}
    model.zero_grad()
    model.forward(x1)
    model.forward(x2)
    dx, _ = model.backward(d_out)
    np.testing.assert_array_equal(dx, ref_dx, err_msg="d_input")
    for k, g in ref.items():
        np.testing.assert_array_equal(model.grads[k], g, err_msg=f"grads[{k}]")


# ------------------------------------------------------------------- errors
def _x(*shape, dtype=np.float32):
    return np.zeros(shape, dtype)


FORWARD_ERRORS = [
    ("rank_4", {"input": _x(1, T, B, D)}, ValueError, r"Expected input to be 2D or 3D, got 4D"),
    ("rank_1", {"input": _x(D)}, ValueError, r"Expected input to be 2D or 3D, got 1D"),
    ("input_size", {"input": _x(T, B, D + 1)}, ValueError,
     rf"input\.size\(-1\) must be equal to input_size\. Expected {D}, got {D + 1}"),
    ("float64_into_float32", {"input": _x(T, B, D, dtype=np.float64)}, TypeError,
     r"input must have dtype float32 .*got float64"),
    ("integer_input", {"input": np.zeros((T, B, D), np.int64)}, TypeError,
     r"input must have dtype float32, got integer dtype int64"),
    ("bool_input", {"input": np.zeros((T, B, D), bool)}, TypeError, r"input must be a float"),
    ("nan_input", {"input": np.full((T, B, D), np.nan, np.float32)}, ValueError,
     r"input contains NaN or infinite"),
    ("inf_input", {"input": np.full((T, B, D), np.inf, np.float32)}, ValueError,
     r"input contains NaN or infinite"),
    ("empty_time", {"input": _x(0, B, D)}, ValueError, r"at least one step"),
    ("h0_shape", {"input": _x(T, B, D), "hx": _x(2, B, H)}, ValueError,
     rf"Expected h_0 size \(1, {B}, {H}\), got \(2, {B}, {H}\)"),
    ("h0_batch", {"input": _x(T, B, D), "hx": _x(1, B + 1, H)}, ValueError,
     rf"Expected h_0 size \(1, {B}, {H}\)"),
    ("h0_rank_unbatched", {"input": _x(T, D), "hx": _x(1, 1, H)}, ValueError,
     r"Expected h_0 to be 2D, got 3D"),
    ("h0_dtype", {"input": _x(T, B, D), "hx": _x(1, B, H, dtype=np.float64)}, TypeError,
     r"h_0 must have dtype float32"),
    ("h0_nan", {"input": _x(T, B, D), "hx": np.full((1, B, H), np.nan, np.float32)}, ValueError,
     r"h_0 contains NaN"),
    ("lengths_zero", {"input": _x(T, B, D), "lengths": [T, 0, 1, 2]}, ValueError,
     r"every sequence length must be >= 1.*got 0"),
    ("lengths_too_long", {"input": _x(T, B, D), "lengths": [T + 1, 1, 1, 1]}, ValueError,
     rf"lengths must not exceed the padded sequence length {T}, got {T + 1}"),
    ("lengths_shape", {"input": _x(T, B, D), "lengths": [1, 2, 3]}, ValueError,
     rf"Expected lengths of shape \({B},\), got \(3,\)"),
    ("lengths_2d", {"input": _x(T, B, D), "lengths": [[1, 2, 3, 4]]}, ValueError,
     r"Expected lengths of shape"),
    ("lengths_float", {"input": _x(T, B, D), "lengths": [1.0, 2.0, 3.0, 4.0]}, TypeError,
     r"lengths must be integers"),
    ("mask_not_prefix", {"input": _x(T, B, D),
                         "mask": np.arange(T)[:, None] >= np.array([0, 2, 3, 5])[None, :]},
     ValueError, r"mask must mark a prefix"),
    ("mask_hole", {"input": _x(3, 1, D), "mask": np.array([[True], [False], [True]])},
     ValueError, r"mask must mark a prefix"),
    ("mask_shape", {"input": _x(T, B, D), "mask": np.ones((T, B + 1), bool)}, ValueError,
     rf"Expected mask of shape \({T}, {B}\)"),
    ("mask_dtype", {"input": _x(T, B, D), "mask": np.ones((T, B), np.int64)}, TypeError,
     r"mask must be boolean"),
    ("mask_and_lengths", {"input": _x(T, B, D), "mask": np.ones((T, B), bool),
                          "lengths": [T] * B}, ValueError, r"lengths or mask, not both"),
]


@pytest.mark.parametrize("kwargs,exc,match", [e[1:] for e in FORWARD_ERRORS],
                         ids=[e[0] for e in FORWARD_ERRORS])
def test_forward_errors(kwargs, exc, match):
    model = RNN(D, H, rng=0)
    kwargs = dict(kwargs)
    x = kwargs.pop("input")
    with pytest.raises(exc, match=match):
        model.forward(x, **kwargs)


def test_batch_first_mask_of_the_right_shape_is_accepted():
    model = RNN(D, H, batch_first=True, rng=0)
    mask = np.arange(T)[None, :] < np.array([1, 6, 2, 4])[:, None]  # (B, T)
    out, _ = model.forward(_x(B, T, D), mask=mask)
    assert out.shape == (B, T, H)


def test_batch_first_mask_shape_error_uses_the_callers_layout():
    model = RNN(D, H, batch_first=True, rng=0)
    x = _x(B, T, D)  # (B, T, D) = (4, 6, 3)
    with pytest.raises(ValueError, match=rf"Expected mask of shape \({B}, {T}\), got \({T}, {B}\)"):
        model.forward(x, mask=np.ones((T, B), bool))


def test_lstm_hx_must_be_a_pair():
    model = LSTM(D, H, rng=0)
    x = _x(T, B, D)
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h_0, c_0\), got ndarray"):
        model.forward(x, _x(1, B, H))
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h_0, c_0\)"):
        model.forward(x, (_x(1, B, H),))
    with pytest.raises(ValueError, match=rf"Expected c_0 size \(1, {B}, {H}\)"):
        model.forward(x, (_x(1, B, H), _x(1, B, H + 1)))


def test_float32_input_into_float64_layer():
    with pytest.raises(TypeError, match=r"input must have dtype float64 .*got float32"):
        GRU(D, H, dtype=np.float64, rng=0).forward(_x(T, B, D))


def test_backward_argument_errors(rng):
    model = LSTM(D, H, rng=0)
    out, _ = model.forward(rng.standard_normal((T, B, D)).astype(np.float32))
    with pytest.raises(ValueError, match=r"Expected d_output \(time-major\) size"):
        model.backward(np.zeros((T, B, H + 1), np.float32))
    out, _ = model.forward(rng.standard_normal((T, B, D)).astype(np.float32))
    with pytest.raises(TypeError, match=r"d_hx must be a tuple \(dh_n, dc_n\)"):
        model.backward(np.zeros_like(out), np.zeros((1, B, H), np.float32))


CONSTRUCTOR_ERRORS = [
    ("hidden_size_0", lambda: RNN(D, 0), ValueError, r"hidden_size must be >= 1, got 0"),
    ("input_size_0", lambda: GRU(0, H), ValueError, r"input_size must be >= 1, got 0"),
    ("num_layers_0", lambda: LSTM(D, H, num_layers=0), ValueError, r"num_layers must be >= 1"),
    ("hidden_size_float", lambda: RNN(D, 2.0), TypeError, r"hidden_size should be of type int"),
    ("dropout_1.5", lambda: RNN(D, H, num_layers=2, dropout=1.5), ValueError,
     r"dropout should be a number in range .*1\.0\], got 1\.5"),
    ("dropout_negative", lambda: GRU(D, H, num_layers=2, dropout=-0.1), ValueError,
     r"dropout should be a number in range \[0\.0"),
    ("nonlinearity_foo", lambda: RNN(D, H, nonlinearity="foo"), ValueError,
     r"nonlinearity must be one of 'tanh', 'relu', 'sigmoid', got 'foo'"),
    ("nonlinearity_on_lstm", lambda: LSTM(D, H, nonlinearity="relu"), TypeError,
     r"nonlinearity"),
    ("nonlinearity_on_gru_base", lambda: RNNBase("GRU", D, H, nonlinearity="relu"),
     ValueError, r"nonlinearity is an RNN option, got 'relu'"),
    ("proj_size_on_gru", lambda: GRU(D, H, proj_size=2), ValueError,
     r"proj_size argument is only supported for LSTM"),
    ("proj_size_on_rnn_base", lambda: RNNBase("RNN", D, H, proj_size=2), ValueError,
     r"proj_size argument is only supported for LSTM"),
    ("proj_size_too_big", lambda: LSTM(D, H, proj_size=H), ValueError,
     rf"proj_size has to be smaller than hidden_size, got proj_size={H} and hidden_size={H}"),
    ("proj_size_negative", lambda: LSTM(D, H, proj_size=-1), ValueError,
     r"proj_size must be >= 0"),
    ("dtype_int", lambda: RNN(D, H, dtype=np.int32), TypeError, r"dtype must be float32 or"),
    ("rng_negative", lambda: RNN(D, H, rng=-1), ValueError, r"rng seed must be non-negative"),
    ("rng_string", lambda: RNN(D, H, rng="0"), TypeError, r"rng must be None, an int seed"),
]


@pytest.mark.parametrize("make,exc,match", [e[1:] for e in CONSTRUCTOR_ERRORS],
                         ids=[e[0] for e in CONSTRUCTOR_ERRORS])
def test_constructor_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("cell", FAMILIES, ids=FAMILY_IDS)
def test_dropout_warning_with_one_layer(cell):
    with pytest.warns(UserWarning, match=r"non-zero dropout expects num_layers greater than 1"):
        make_layer(cell, dropout=0.5, rng=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_layer(cell, num_layers=2, dropout=0.5, rng=0)
        make_layer(cell, dropout=0.0, rng=0)


# ------------------------------------------------------------------- dropout
@pytest.mark.parametrize("cell", FAMILIES, ids=FAMILY_IDS)
def test_dropout_active_in_train_only(rng, cell):
    x = rng.standard_normal((T, B, D))
    a = make_layer(cell, num_layers=3, dropout=0.5, dtype=np.float64, rng=7)
    b = make_layer(cell, num_layers=3, dropout=0.5, dtype=np.float64, rng=7)
    plain = make_layer(cell, num_layers=3, dtype=np.float64, rng=0)
    plain.load_state_dict(a.state_dict())
    assert a.training and a.train() is a
    out1, _ = a.forward(x)
    out2, _ = a.forward(x)
    assert not np.allclose(out1, out2), "two forwards in train() gave the same dropout"
    out_plain, _ = plain.forward(x)
    assert not np.allclose(out1, out_plain), "dropout had no effect in train()"
    # same seed, same draws
    np.testing.assert_array_equal(b.forward(x)[0], out1, err_msg="first forward, same seed")
    np.testing.assert_array_equal(b.forward(x)[0], out2, err_msg="second forward, same seed")
    assert a.eval() is a and not a.training
    e1, _ = a.forward(x)
    e2, _ = a.forward(x)
    np.testing.assert_array_equal(e1, e2, err_msg="eval() output is not deterministic")
    np.testing.assert_array_equal(e1, out_plain, err_msg="eval() output differs from dropout=0")


def test_dropout_scales_kept_units(rng):
    """Inverted dropout: kept units are divided by 1 - p, so the mean input is unchanged.

    A linear probe: a 2-layer relu RNN whose layer-1 input weight is an identity
    copy lets layer 1 see exactly the dropped-out layer-0 output at step 0.
    """
    p = 0.25
    model = RNN(1, 1, num_layers=2, nonlinearity="relu", bias=False, dropout=p,
                dtype=np.float64, rng=0)
    model.load_state_dict({"weight_ih_l0": [[1.0]], "weight_hh_l0": [[0.0]],
                           "weight_ih_l1": [[1.0]], "weight_hh_l1": [[0.0]]})
    x = np.ones((1, 4000, 1))
    out, _ = model.forward(x)
    values = np.unique(np.round(out.ravel(), 12))
    np.testing.assert_allclose(values, [0.0, 1.0 / (1 - p)], err_msg="dropped/kept values")
    kept = float(np.mean(out > 0))
    assert abs(kept - (1 - p)) < 0.03, f"fraction kept {kept}, expected {1 - p}"


# ------------------------------------------------------------- saturation
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_saturating_inputs_are_silent_and_finite(cell, dtype):
    """Inputs of +/-1e4 saturate every gate: no overflow warning, finite results."""
    model = make_layer(cell, num_layers=2, bidirectional=True, dtype=dtype, rng=0)
    x = np.array([1e4, -1e4, 1e3], dtype) * np.ones((T, B, D), dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            out, finals = model.forward(x, lengths=[T, 3, 1, 5])
            d_input, _ = model.backward(np.ones_like(out))
    for name, a in [("output", out), ("d_input", d_input)] + [
            (f"grads[{k}]", g) for k, g in model.grads.items()] + [
            ("final state", f) for f in as_tuple(finals)]:
        assert np.isfinite(a).all(), f"{name} is not finite"
    if cell[1] == "sigmoid":
        assert ((out >= 0) & (out <= 1)).all()


# --------------------------------------------------------- variable lengths
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
def test_padding_is_inert(rng, cell, bidirectional, batch_first):
    """Padded outputs and padded input gradients are exactly zero (bias included),
    and h_n is the output at each sequence's last valid step."""
    lengths = np.array([4, 6, 1, 3])
    L, K = 2, 2 if bidirectional else 1
    model = make_layer(cell, num_layers=L, bidirectional=bidirectional, batch_first=batch_first,
                       dtype=np.float64, rng=3)
    for key in model.params:
        if key.startswith("bias"):
            model.params[key] += 1.0  # a bias leaking into padding would show
    x = rng.standard_normal((B, T, D) if batch_first else (T, B, D))
    out, finals = model.forward(x, random_states(model, rng), lengths=lengths)
    d_input, _ = model.backward(rng.standard_normal(out.shape), random_states(model, rng))
    if batch_first:
        out, d_input = out.transpose(1, 0, 2), d_input.transpose(1, 0, 2)
    h_n = as_tuple(finals)[0]
    for b, n in enumerate(lengths):
        assert not out[n:, b].any(), f"sequence {b}: output at padded steps is not zero"
        assert not d_input[n:, b].any(), f"sequence {b}: d_input at padded steps is not zero"
        assert np.abs(out[:n, b]).max() > 0 and np.abs(d_input[:n, b]).max() > 0
        top = (L - 1) * K
        np.testing.assert_array_equal(h_n[top, b], out[n - 1, b, :H],
                                      err_msg=f"sequence {b}: h_n (forward) vs output[{n - 1}]")
        if bidirectional:
            np.testing.assert_array_equal(h_n[top + 1, b], out[0, b, H:],
                                          err_msg=f"sequence {b}: h_n (reverse) vs output[0]")


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_lengths_any_order_equal_each_sequence_alone(rng, cell, bidirectional):
    """A padded batch with unsorted lengths gives, for each sequence, what that
    sequence gives alone (unbatched, unpadded): outputs, states and gradients."""
    lengths = [3, 6, 1, 4]
    L = 2
    model = make_layer(cell, num_layers=L, bidirectional=bidirectional, dtype=np.float64, rng=5)
    K = model.num_directions
    x = rng.standard_normal((T, B, D))
    hx = random_states(model, rng)
    d_out = rng.standard_normal((T, B, K * H))
    d_hx = random_states(model, rng)
    out, finals = model.forward(x, hx, lengths=lengths)
    d_input, d_states = model.backward(d_out, d_hx)
    batch_grads = {k: v.copy() for k, v in model.grads.items()}
    model.zero_grad()
    tol = 1e-12
    for b, n in enumerate(lengths):
        hx_b = pack(model, [s[:, b] for s in as_tuple(hx)])
        out_b, finals_b = model.forward(x[:n, b], hx_b)
        d_input_b, d_states_b = model.backward(
            d_out[:n, b], pack(model, [s[:, b] for s in as_tuple(d_hx)]))
        assert rel_error(out[:n, b], out_b) <= tol, f"sequence {b}: output"
        assert rel_error(d_input[:n, b], d_input_b) <= tol, f"sequence {b}: d_input"
        for i, (f, fb) in enumerate(zip(as_tuple(finals), as_tuple(finals_b))):
            assert rel_error(f[:, b], fb) <= tol, f"sequence {b}: final state {i}"
        for i, (d, db) in enumerate(zip(as_tuple(d_states), as_tuple(d_states_b))):
            assert rel_error(d[:, b], db) <= tol, f"sequence {b}: initial-state gradient {i}"
    for k, g in model.grads.items():  # summed over the sequences run alone
        assert rel_error(batch_grads[k], g) <= tol, f"grads[{k}]: batch vs sum of singles"


@pytest.mark.parametrize("cell", FAMILIES, ids=FAMILY_IDS)
def test_full_lengths_equal_no_lengths(rng, cell):
    model = make_layer(cell, num_layers=2, bidirectional=True, dtype=np.float64, rng=2)
    x = rng.standard_normal((T, B, D))
    a, _ = model.forward(x)
    b, _ = model.forward(x, lengths=[T] * B)
    c, _ = model.forward(x, mask=np.ones((T, B), bool))
    np.testing.assert_array_equal(a, b, err_msg="lengths all T")
    np.testing.assert_array_equal(a, c, err_msg="mask all True")


# -------------------------------------------------------------- state dicts
@pytest.mark.parametrize("cell", FAMILIES, ids=FAMILY_IDS)
def test_state_dict_round_trip(rng, cell):
    src = make_layer(cell, num_layers=2, bidirectional=True, dtype=np.float64, rng=1)
    dst = make_layer(cell, num_layers=2, bidirectional=True, dtype=np.float64, rng=2)
    x = rng.standard_normal((T, B, D))
    assert not np.allclose(src.forward(x)[0], dst.forward(x)[0])
    sd = src.state_dict()
    assert sorted(sd) == sorted(src.params)
    for k in sd:
        assert sd[k] is not src.params[k] and not np.shares_memory(sd[k], src.params[k]), (
            f"state_dict()[{k}] is not a copy")
    held = dict(dst.params)
    assert dst.load_state_dict(sd) is dst
    for k in sd:
        assert dst.params[k] is held[k], f"load_state_dict replaced params[{k}] (not in place)"
    np.testing.assert_array_equal(src.forward(x)[0], dst.forward(x)[0], err_msg="after load")
    sd["weight_hh_l0"] += 1.0  # editing the copy leaves the layer alone
    assert not np.array_equal(sd["weight_hh_l0"], src.params["weight_hh_l0"])


def test_load_state_dict_names_bad_keys():
    model = LSTM(D, H, rng=0)
    sd = model.state_dict()
    missing = {k: v for k, v in sd.items() if k != "bias_hh_l0"}
    with pytest.raises(ValueError, match=r"Missing key\(s\): bias_hh_l0"):
        model.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"Unexpected key\(s\): weight_hr_l0"):
        model.load_state_dict({**sd, "weight_hr_l0": np.zeros((H, H))})
    bad = {**sd, "weight_ih_l0": np.zeros((4 * H, D + 1))}
    with pytest.raises(ValueError, match=(r"size mismatch for weight_ih_l0: copying a param with "
                                          rf"shape \({4 * H}, {D + 1}\), the shape in current "
                                          rf"model is \({4 * H}, {D}\)")):
        model.load_state_dict(bad)
    with pytest.raises(ValueError, match=r"dtype of weight_hh_l0 must be floating point"):
        model.load_state_dict({**sd, "weight_hh_l0": np.zeros((4 * H, H), np.int64)})
    # all problems in one message, and nothing loaded when there is any problem
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"Missing.*Unexpected.*size mismatch"):
        model.load_state_dict({"weight_ih_l0": np.ones((1, 1)), "foo": np.ones(1)})
    for k in before:
        np.testing.assert_array_equal(model.params[k], before[k], err_msg=f"{k} changed")
    # strict=False skips missing and unexpected keys, but not shape mismatches
    model.load_state_dict({"weight_hh_l0": np.ones((4 * H, H)), "foo": np.ones(1)},
                          strict=False)
    np.testing.assert_array_equal(model.params["weight_hh_l0"], 1.0)
    np.testing.assert_array_equal(model.params["weight_ih_l0"], before["weight_ih_l0"])
    with pytest.raises(ValueError, match=r"size mismatch for bias_ih_l0"):
        model.load_state_dict({"bias_ih_l0": np.ones(H)}, strict=False)


# -------------------------------------------------------- init, randomness
@pytest.mark.parametrize("cell", FAMILIES, ids=FAMILY_IDS)
def test_same_seed_same_params(cell):
    a = make_layer(cell, num_layers=2, bidirectional=True, rng=123)
    b = make_layer(cell, num_layers=2, bidirectional=True, rng=np.random.default_rng(123))
    c = make_layer(cell, num_layers=2, bidirectional=True, rng=124)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=f"{k}: same seed")
        assert not np.array_equal(a.params[k], c.params[k]), f"{k}: other seed, same values"


def test_no_global_numpy_random_state():
    state = np.random.get_state()[1].copy()  # the legacy global state must not advance
    model = GRU(D, H, num_layers=2, dropout=0.5, rng=1)
    model.forward(np.ones((T, B, D), np.float32))
    np.testing.assert_array_equal(np.random.get_state()[1], state)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("hidden_size", [1, 7, 64])
def test_pytorch_init_bound(cell, hidden_size):
    model = make_layer(cell, input_size=3, hidden_size=hidden_size, num_layers=2,
                       bidirectional=True, rng=11)
    bound = 1.0 / np.sqrt(hidden_size)
    values = np.concatenate([p.ravel() for p in model.params.values()])
    for k, p in model.params.items():
        assert np.abs(p).max() <= bound, f"{k}: |value| {np.abs(p).max()} > 1/sqrt(H) {bound}"
    # and it is the uniform distribution on the whole interval, not a narrower one
    assert values.min() < -0.9 * bound and values.max() > 0.9 * bound
    if values.size > 1000:
        assert abs(values.mean()) < 0.05 * bound
        assert abs(values.std() - bound / np.sqrt(3)) < 0.05 * bound


CHUNKED_CELLS = [c for c in CELLS if c[0] != "LSTM"]
CHUNKED_IDS = [i for c, i in zip(CELLS, CELL_IDS) if c[0] != "LSTM"]


@pytest.mark.parametrize("cell", CHUNKED_CELLS, ids=CHUNKED_IDS)
@pytest.mark.parametrize("chunk_steps", [1, 3, 4], ids=["chunk1", "chunk3", "chunk4"])
@pytest.mark.parametrize("options", [
    {},
    {"num_layers": 2, "bidirectional": True, "batch_first": True},
    {"num_layers": 3, "bias": False},
    {"num_layers": 2, "bidirectional": True, "lengths": [3, 6, 1, 4]},
    {"num_layers": 2, "dropout": 0.3, "lengths": [6, 2, 5, 6]},
], ids=["plain", "L2-bi-bf", "L3-nobias", "L2-bi-lengths", "L2-dropout-lengths"])
def test_backward_in_chunks_equals_one_chunk(rng, cell, chunk_steps, options):
    """RNN and GRU backward in chunks of 1, 3 or 4 steps (T = 6: whole, partial and
    single-step chunks) give the gradients of one chunk of all T steps, to round-off,
    and leave the caller's input and upstream gradient untouched."""
    options = dict(options)
    lengths = options.pop("lengths", None)
    batch_first = options.get("batch_first", False)
    results = []
    for steps in (chunk_steps, T):
        model = make_layer(cell, dtype=np.float64, rng=3, **options)
        model._chunk_steps = steps
        data = np.random.default_rng(11)  # the same input, states and dropout draws
        model.rng = np.random.default_rng(12)
        K = model.num_directions
        x = data.standard_normal((B, T, D) if batch_first else (T, B, D))
        d_out = data.standard_normal((B, T, K * H) if batch_first else (T, B, K * H))
        hx, d_hx = random_states(model, data), random_states(model, data)
        x0, d_out0 = x.copy(), d_out.copy()
        out, h_n = model.forward(x, hx, lengths=lengths)
        d_x, d_h0 = model.backward(d_out, d_hx)
        assert np.array_equal(x, x0) and np.array_equal(d_out, d_out0), "inputs were modified"
        results.append((out.copy(), h_n, d_x, d_h0, {k: v.copy() for k, v in model.grads.items()}))
    (out, h_n, d_x, d_h0, grads), (out1, h_n1, d_x1, d_h01, grads1) = results
    assert np.array_equal(out, out1) and np.array_equal(h_n, h_n1), "forward changed"
    assert rel_error(d_x, d_x1) <= 1e-13, "d_input"
    assert rel_error(d_h0, d_h01) <= 1e-13, "d_h0"
    for k in grads1:
        assert rel_error(grads[k], grads1[k]) <= 1e-13, f"grads[{k}]"


@pytest.mark.parametrize("mode", ["RNN", "GRU"])
def test_training_step_memory_is_close_to_the_activations(mode):
    """The peak memory of a training step (forward, loss gradient, backward; measured with
    tracemalloc, which sees NumPy's allocations, as ``rnnkit bench`` does) stays within
    MEMORY_TARGET (1.3) times the activations BPTT must keep (RNN: h, one (T, B, H) array;
    GRU: gates, h and W_hn h + b_hn, five), plus 1 MiB for the fixed part (the (k, B, H)
    chunk buffers, scratch of the weight gradients). Keeping a whole (T, B, H) array of
    pre-activation gradients (RNN, 2x) or of gate-derivative factors (GRU, 1.4x) breaks
    the bound."""
    T_, B_, D_, H_ = 200, 64, 4, 128  # the chunk of the backward is much shorter than T
    model = (RNN if mode == "RNN" else GRU)(D_, H_, rng=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T_, B_, D_), dtype=np.float32)
    target = rng.standard_normal((T_, B_, H_), dtype=np.float32)
    d_out = np.empty_like(target)  # reused, as a trainer reuses its loss-gradient buffer

    def step():
        model.zero_grad()
        out, _ = model.forward(x)
        np.subtract(out, target, out=d_out)  # d/d(out) of sum((out - target)^2) / 2
        model.backward(d_out)

    peak = _peak_memory(step)
    activations = ACTIVATIONS[mode.lower()] * T_ * B_ * H_ * 4
    assert peak <= MEMORY_TARGET * activations + 2**20, (
        f"{mode}: peak {peak / 2**20:.1f} MiB for {activations / 2**20:.1f} MiB of "
        f"activations (ratio {peak / activations:.2f})")
    assert peak >= activations  # the measurement sees the cache
