"""Weights in and out of rnnkit: PyTorch through safetensors files, Keras arrays, bad files.

* rnnkit -> ``rnnkit.io.save_state_dict`` -> ``safetensors.torch.load_file`` ->
  ``torch.nn.*.load_state_dict(strict=True)``: the tensors equal the arrays bit
  for bit and the outputs agree;
* PyTorch -> ``safetensors.torch.save_file`` -> ``rnnkit.io.load_state_dict``
  -> ``layer.load_state_dict`` -> back to PyTorch: identical weights and outputs;
* ``load_state_dict`` errors (missing, unexpected, mis-shaped) and ``strict=False``;
* Keras: a NumPy transcription of Keras's own SimpleRNN/LSTM/GRU equations
  (keras/src/layers/rnn/{simple_rnn,lstm,gru}.py) in Keras's weight layout,
  loaded with ``rnnkit.io.from_keras_weights``;
* ``ModelFileError`` for truncated or garbage files.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, io
from rnnkit.gradcheck import rel_error
from rnnkit.io import ModelFileError, from_keras_weights

# float32 torch warns that oneDNN has no projected LSTM and falls back to its own kernel
pytestmark = pytest.mark.filterwarnings(
    "ignore:LSTM with projections is not supported with oneDNN:UserWarning")

SEED = 777
TOL32 = 1e-5  # float32 rnnkit vs float32 torch: different summation orders only
TOL_KERAS = 1e-12  # float64

LAYERS = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}
CELL_CLASSES = {"RNNCell": RNNCell, "LSTMCell": LSTMCell, "GRUCell": GRUCell}

# (family, options): options are the same keywords for rnnkit and torch
LAYER_CONFIGS = [
    ("LSTM", {"proj_size": 3}),
    ("LSTM", {"proj_size": 2, "num_layers": 2, "bidirectional": True}),
    ("LSTM", {"bidirectional": True}),
    ("LSTM", {"num_layers": 2, "batch_first": True}),
    ("LSTM", {"bias": False}),
    ("GRU", {"num_layers": 2, "bidirectional": True}),
    ("GRU", {"bias": False}),
    ("RNN", {"nonlinearity": "relu", "num_layers": 2}),
    ("RNN", {"bidirectional": True, "bias": False}),
]
CELL_CONFIGS = [
    ("RNNCell", {"nonlinearity": "relu"}),
    ("RNNCell", {"bias": False}),
    ("LSTMCell", {}),
    ("LSTMCell", {"bias": False}),
    ("GRUCell", {}),
]


def _ids(configs):
    return [f"{kind}-" + "-".join(f"{k}={v}" for k, v in kw.items()) for kind, kw in configs]


@pytest.fixture
def rng():
    return np.random.default_rng(SEED)


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors.torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny problems: threads only add overhead; restored afterwards
    yield torch
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- helpers
def _layer_input(rng, kw, T=5, B=3, D=4, dtype=np.float32):
    return rng.standard_normal((B, T, D) if kw.get("batch_first") else (T, B, D)).astype(dtype)


def _run_rnnkit(m, x):
    """(output, [final states]) of a layer or a cell, as float arrays."""
    if isinstance(m, (RNNCell, GRUCell)):
        return m.forward(x), []
    if isinstance(m, LSTMCell):
        h, c = m.forward(x)
        return h, [c]
    out, hn = m.forward(x)
    return out, list(hn) if isinstance(hn, tuple) else [hn]


def _run_torch(torch, tm, x):
    with torch.no_grad():
        res = tm(torch.from_numpy(x))
    if isinstance(tm, (torch.nn.RNNCell, torch.nn.GRUCell)):
        return res.numpy(), []
    if isinstance(tm, torch.nn.LSTMCell):
        return res[0].numpy(), [res[1].numpy()]
    out, hn = res
    return out.numpy(), [s.numpy() for s in hn] if isinstance(hn, tuple) else [hn.numpy()]


def _assert_same_outputs(a, b, tol, what):
    (out_a, st_a), (out_b, st_b) = a, b
    assert out_a.shape == out_b.shape, f"{what}: output shapes {out_a.shape} vs {out_b.shape}"
    assert rel_error(out_a, out_b) <= tol, f"{what}: outputs differ {rel_error(out_a, out_b):.1e}"
    assert len(st_a) == len(st_b)
    for i, (s, t) in enumerate(zip(st_a, st_b)):
        assert s.shape == t.shape, f"{what}: state {i} shapes {s.shape} vs {t.shape}"
        assert rel_error(s, t) <= tol, f"{what}: state {i} differs {rel_error(s, t):.1e}"


def _assert_bitwise(arrays, tensors, what):
    assert set(arrays) == set(tensors), f"{what}: keys {sorted(arrays)} vs {sorted(tensors)}"
    for k, t in tensors.items():
        t = t.detach().numpy()
        a = np.asarray(arrays[k])
        assert a.dtype == t.dtype, f"{what}: {k} dtype {a.dtype} vs {t.dtype}"
        assert np.array_equal(a, t), f"{what}: {k} differs"


def _rnnkit_layer(kind, kw, dtype=np.float32, seed=0):
    return LAYERS[kind](4, 6, dtype=dtype, rng=seed, **kw)


def _torch_layer(torch, kind, kw, dtype=None):
    torch.manual_seed(SEED)  # a different init from the rnnkit layer's
    return getattr(torch.nn, kind)(4, 6, dtype=dtype or torch.float32, **kw)


# --------------------------------------------------------------------------- rnnkit -> torch
@pytest.mark.parametrize("kind, kw", LAYER_CONFIGS, ids=_ids(LAYER_CONFIGS))
def test_rnnkit_file_loads_into_torch(torch, kind, kw, rng, tmp_path):
    from safetensors.torch import load_file

    m = _rnnkit_layer(kind, kw, seed=1)
    path = tmp_path / "weights.safetensors"
    assert io.save_state_dict(path, m.state_dict()) == str(path)
    tensors = load_file(str(path))
    _assert_bitwise(m.params, tensors, "file read by torch")
    tm = _torch_layer(torch, kind, kw)
    tm.load_state_dict(tensors, strict=True)
    _assert_bitwise(m.params, tm.state_dict(), "torch module after load")
    x = _layer_input(rng, kw)
    _assert_same_outputs(_run_rnnkit(m, x), _run_torch(torch, tm, x), TOL32, "rnnkit vs torch")


def test_rnnkit_float64_file_loads_into_torch_float64(torch, rng, tmp_path):
    from safetensors.torch import load_file

    kw = {"num_layers": 2, "bidirectional": True, "proj_size": 2}
    m = _rnnkit_layer("LSTM", kw, dtype=np.float64, seed=2)
    path = tmp_path / "w64.safetensors"
    io.save_state_dict(path, m.state_dict())
    tensors = load_file(str(path))
    assert all(t.dtype == torch.float64 for t in tensors.values())
    tm = _torch_layer(torch, "LSTM", kw, dtype=torch.float64)
    tm.load_state_dict(tensors, strict=True)
    _assert_bitwise(m.params, tm.state_dict(), "float64 torch module")
    x = _layer_input(rng, kw, dtype=np.float64)
    _assert_same_outputs(_run_rnnkit(m, x), _run_torch(torch, tm, x), 1e-12, "float64")


# --------------------------------------------------------------------------- torch -> rnnkit -> torch
@pytest.mark.parametrize("kind, kw", LAYER_CONFIGS, ids=_ids(LAYER_CONFIGS))
def test_torch_file_round_trip_through_rnnkit(torch, kind, kw, rng, tmp_path):
    from safetensors.torch import load_file, save_file

    tm = _torch_layer(torch, kind, kw)
    first = tmp_path / "from_torch.safetensors"
    save_file(tm.state_dict(), str(first))
    arrays = io.load_state_dict(first)
    _assert_bitwise(arrays, tm.state_dict(), "rnnkit.io.load_state_dict")

    m = _rnnkit_layer(kind, kw, seed=3)
    assert m.load_state_dict(arrays) is m
    _assert_bitwise(m.params, tm.state_dict(), "rnnkit layer after load")
    x = _layer_input(rng, kw)
    torch_result = _run_torch(torch, tm, x)
    _assert_same_outputs(_run_rnnkit(m, x), torch_result, TOL32, "rnnkit vs torch")

    second = tmp_path / "back.safetensors"
    io.save_state_dict(second, m.state_dict())
    tm2 = getattr(torch.nn, kind)(4, 6, **kw)  # its own random init
    tm2.load_state_dict(load_file(str(second)), strict=True)
    _assert_bitwise(m.params, tm2.state_dict(), "torch module after the round trip")
    for k, t in tm.state_dict().items():
        assert torch.equal(t, tm2.state_dict()[k]), k
    out2, states2 = _run_torch(torch, tm2, x)
    assert np.array_equal(out2, torch_result[0]), "same weights, same torch: identical outputs"
    assert all(np.array_equal(a, b) for a, b in zip(states2, torch_result[1]))


# --------------------------------------------------------------------------- cells
@pytest.mark.parametrize("kind, kw", CELL_CONFIGS, ids=_ids(CELL_CONFIGS))
def test_cell_round_trips_with_torch(torch, kind, kw, rng, tmp_path):
    from safetensors.torch import load_file, save_file

    m = CELL_CLASSES[kind](4, 6, rng=4, **kw)
    path = tmp_path / "cell.safetensors"
    io.save_state_dict(path, m.state_dict())
    tm = getattr(torch.nn, kind)(4, 6, **kw)
    tm.load_state_dict(load_file(str(path)), strict=True)
    _assert_bitwise(m.params, tm.state_dict(), "torch cell")
    x = rng.standard_normal((3, 4)).astype(np.float32)
    _assert_same_outputs(_run_rnnkit(m, x), _run_torch(torch, tm, x), TOL32, "cell")

    torch.manual_seed(SEED)
    tm_src = getattr(torch.nn, kind)(4, 6, **kw)
    save_file(tm_src.state_dict(), str(path))
    m2 = CELL_CLASSES[kind](4, 6, rng=5, **kw).load_state_dict(io.load_state_dict(path))
    _assert_bitwise(m2.params, tm_src.state_dict(), "rnnkit cell from torch")
    _assert_same_outputs(_run_rnnkit(m2, x), _run_torch(torch, tm_src, x), TOL32, "cell")
    io.save_state_dict(path, m2.state_dict())
    tm_back = getattr(torch.nn, kind)(4, 6, **kw)
    tm_back.load_state_dict(load_file(str(path)), strict=True)
    for k, t in tm_src.state_dict().items():
        assert torch.equal(t, tm_back.state_dict()[k]), k


# --------------------------------------------------------------------------- load_state_dict errors
def test_load_state_dict_strict_names_missing_keys():
    m = LSTM(3, 4, num_layers=2, rng=0)
    sd = m.state_dict()
    del sd["bias_hh_l1"], sd["weight_ih_l0"]
    with pytest.raises(ValueError, match="Missing key") as err:
        m.load_state_dict(sd)
    assert "bias_hh_l1" in str(err.value) and "weight_ih_l0" in str(err.value)


def test_load_state_dict_strict_names_unexpected_keys():
    m = GRU(3, 4, rng=0)
    sd = m.state_dict()
    sd["weight_ih_l0_reverse"] = sd["weight_ih_l0"].copy()
    sd["rnn.extra"] = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match="Unexpected key") as err:
        m.load_state_dict(sd)
    assert "weight_ih_l0_reverse" in str(err.value) and "rnn.extra" in str(err.value)


@pytest.mark.parametrize("strict", [True, False])
def test_load_state_dict_names_mis_shaped_keys(strict):
    m = LSTM(3, 4, rng=0)
    sd = m.state_dict()
    sd["weight_hh_l0"] = sd["weight_hh_l0"].T.copy()  # (4, 16) instead of (16, 4)
    sd["bias_ih_l0"] = np.zeros(12, np.float32)
    with pytest.raises(ValueError, match="size mismatch") as err:
        m.load_state_dict(sd, strict=strict)  # as in PyTorch, even when not strict
    msg = str(err.value)
    assert "weight_hh_l0" in msg and "(4, 16)" in msg and "(16, 4)" in msg
    assert "bias_ih_l0" in msg and "(12,)" in msg


def test_load_state_dict_reports_every_problem_at_once():
    m = RNN(3, 4, rng=0)
    sd = m.state_dict()
    del sd["bias_hh_l0"]
    sd["weight_hh_l0"] = np.zeros((4, 5), np.float32)
    sd["unknown"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError) as err:
        m.load_state_dict(sd)
    msg = str(err.value)
    assert all(s in msg for s in ("bias_hh_l0", "weight_hh_l0", "unknown")), msg


def test_load_state_dict_rejects_integer_arrays():
    m = RNN(3, 4, rng=0)
    sd = m.state_dict()
    sd["weight_ih_l0"] = np.ones((4, 3), np.int64)
    with pytest.raises(ValueError, match="weight_ih_l0.*floating point"):
        m.load_state_dict(sd)


def test_load_state_dict_non_strict_ignores_missing_and_unexpected(rng):
    m = LSTM(3, 4, num_layers=2, rng=0)
    before = m.state_dict()
    new = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in before.items()}
    partial = {k: new[k] for k in ("weight_ih_l0", "bias_hh_l1")}
    partial["weight_hr_l0"] = np.zeros((2, 4), np.float32)  # not a parameter here
    assert m.load_state_dict(partial, strict=False) is m
    for k in before:
        want = new[k] if k in partial else before[k]
        assert np.array_equal(m.params[k], want), k
    assert "weight_hr_l0" not in m.params


def test_cell_load_state_dict_errors():
    cell = LSTMCell(3, 4, rng=0)
    layer_keys = LSTM(3, 4, rng=0).state_dict()  # weight_ih_l0 ... not cell names
    with pytest.raises(ValueError, match="Missing key.*weight_ih.*Unexpected key.*weight_ih_l0"):
        cell.load_state_dict(layer_keys)
    sd = cell.state_dict()
    sd["weight_hh"] = np.zeros((16, 3), np.float32)
    with pytest.raises(ValueError, match=r"weight_hh.*\(16, 3\).*\(16, 4\)"):
        cell.load_state_dict(sd)
    renamed = {k[:-3]: v for k, v in layer_keys.items()}
    cell.load_state_dict(renamed)
    assert all(np.array_equal(cell.params[k], v) for k, v in renamed.items())


# --------------------------------------------------------------------------- Keras
def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def keras_simple_rnn(x, kernel, recurrent_kernel, bias, state):
    """keras.layers.SimpleRNN: ``h = tanh(x K + b + h_prev U)``; x (B, T, D) batch first."""
    h, = state
    out = []
    for t in range(x.shape[1]):
        a = x[:, t] @ kernel + h @ recurrent_kernel
        if bias is not None:
            a = a + bias
        h = np.tanh(a)
        out.append(h)
    return np.stack(out, axis=1), [h]


def keras_lstm(x, kernel, recurrent_kernel, bias, state):
    """keras.layers.LSTM (sigmoid recurrent activation): gate blocks i, f, c, o."""
    h, c = state
    out = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent_kernel
        if bias is not None:
            z = z + bias
        z0, z1, z2, z3 = np.split(z, 4, axis=-1)
        i, f, o = _sigmoid(z0), _sigmoid(z1), _sigmoid(z3)
        c = f * c + i * np.tanh(z2)
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out, axis=1), [h, c]


def keras_gru(x, kernel, recurrent_kernel, bias, state):
    """keras.layers.GRU(reset_after=True): gate blocks z, r, h; bias (2, 3H) = [input, recurrent]."""
    h, = state
    out = []
    for t in range(x.shape[1]):
        mx = x[:, t] @ kernel
        mh = h @ recurrent_kernel
        if bias is not None:
            mx = mx + bias[0]
            mh = mh + bias[1]
        x_z, x_r, x_h = np.split(mx, 3, axis=-1)
        r_z, r_r, r_h = np.split(mh, 3, axis=-1)
        z = _sigmoid(x_z + r_z)
        r = _sigmoid(x_r + r_r)
        hh = np.tanh(x_h + r * r_h)
        h = z * h + (1 - z) * hh
        out.append(h)
    return np.stack(out, axis=1), [h]


KERAS = {  # kind -> (reference, gates, rnnkit layer)
    "SimpleRNN": (keras_simple_rnn, 1, RNN),
    "LSTM": (keras_lstm, 4, LSTM),
    "GRU": (keras_gru, 3, GRU),
}


def _keras_weights(rng, kind, D, H, use_bias=True):
    """``layer.get_weights()`` of a Keras layer: kernel (D, G*H), recurrent (H, G*H), bias."""
    G = KERAS[kind][1]
    w = [rng.uniform(-0.6, 0.6, (D, G * H)), rng.uniform(-0.6, 0.6, (H, G * H))]
    if use_bias:
        w.append(rng.uniform(-0.6, 0.6, (2, G * H) if kind == "GRU" else (G * H,)))
    return w


def _keras_states(rng, kind, B, H, given):
    n = 2 if kind == "LSTM" else 1
    if not given:
        return [np.zeros((B, H)) for _ in range(n)]
    return [rng.standard_normal((B, H)) for _ in range(n)]


@pytest.mark.parametrize("given_state", [False, True], ids=["zero_state", "initial_state"])
@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("kind", list(KERAS))
def test_keras_weights_reproduce_keras_equations(kind, use_bias, given_state, rng):
    B, T, D, H = 3, 7, 4, 5
    reference, _, layer_cls = KERAS[kind]
    weights = _keras_weights(rng, kind, D, H, use_bias)
    originals = [w.copy() for w in weights]
    x = rng.standard_normal((B, T, D))
    states = _keras_states(rng, kind, B, H, given_state)
    want_out, want_states = reference(x, weights[0], weights[1],
                                      weights[2] if use_bias else None, states)

    sd = from_keras_weights(kind, weights)
    assert all(np.array_equal(a, b) for a, b in zip(weights, originals)), "inputs modified"
    expected_keys = {"weight_ih_l0", "weight_hh_l0"} | (
        {"bias_ih_l0", "bias_hh_l0"} if use_bias else set())
    assert set(sd) == expected_keys
    m = layer_cls(D, H, bias=use_bias, batch_first=True, dtype=np.float64, rng=0)
    m.load_state_dict(sd)  # strict: names and shapes are PyTorch's
    hx = None
    if given_state:
        hx = tuple(s[None] for s in states) if kind == "LSTM" else states[0][None]
    out, hn = m.forward(x, hx)
    got_states = [s[0] for s in hn] if kind == "LSTM" else [hn[0]]
    assert out.shape == want_out.shape
    err = rel_error(out, want_out)
    assert err <= TOL_KERAS, f"{kind}: rnnkit vs Keras equations, output {err:.1e}"
    for i, (g, w) in enumerate(zip(got_states, want_states)):
        assert rel_error(g, w) <= TOL_KERAS, f"{kind}: final state {i}"


@pytest.mark.parametrize("kind", list(KERAS))
def test_keras_stacked_bidirectional_layers(kind, rng):
    """Two ``Bidirectional(kind(H, return_sequences=True))`` layers -> num_layers=2, bidirectional.

    Keras's Bidirectional runs a copy of the layer with ``go_backwards=True``
    and reverses its output sequence back before concatenating [forward, backward].
    """
    B, T, D, H = 2, 5, 3, 4
    reference, _, layer_cls = KERAS[kind]
    n_states = 2 if kind == "LSTM" else 1
    zero = [np.zeros((B, H))] * n_states
    x = rng.standard_normal((B, T, D))
    sd, finals, layer_in = {}, [], x
    for layer in range(2):
        Din = D if layer == 0 else 2 * H
        w_fwd = _keras_weights(rng, kind, Din, H)
        w_bwd = _keras_weights(rng, kind, Din, H)
        out_f, st_f = reference(layer_in, *w_fwd, zero)
        out_b, st_b = reference(layer_in[:, ::-1], *w_bwd, zero)
        layer_in = np.concatenate([out_f, out_b[:, ::-1]], axis=-1)
        finals += [st_f, st_b]
        sd.update(from_keras_weights(kind, w_fwd, layer=layer))
        sd.update(from_keras_weights(kind, w_bwd, layer=layer, reverse=True))
    assert "weight_ih_l1_reverse" in sd and "bias_hh_l1_reverse" in sd
    m = layer_cls(D, H, num_layers=2, bidirectional=True, batch_first=True, dtype=np.float64,
                  rng=0)
    m.load_state_dict(sd)
    out, hn = m.forward(x)
    assert rel_error(out, layer_in) <= TOL_KERAS, "output"
    hn = hn if kind == "LSTM" else (hn,)
    for s in range(n_states):
        want = np.stack([f[s] for f in finals])  # (L*K, B, H): l0 fwd, l0 bwd, l1 fwd, l1 bwd
        assert rel_error(hn[s], want) <= TOL_KERAS, f"final state {s}"


def test_keras_weights_keep_dtype_and_are_contiguous(rng):
    weights = [w.astype(np.float32) for w in _keras_weights(rng, "GRU", 3, 4)]
    sd = from_keras_weights("GRU", weights)
    assert all(v.dtype == np.float32 and v.flags.c_contiguous for v in sd.values())
    GRU(3, 4, rng=0).load_state_dict(sd)


def test_keras_gru_reset_before_is_refused_with_a_reason(rng):
    weights = _keras_weights(rng, "GRU", 3, 4)
    weights[2] = weights[2][0]  # reset_after=False has one (3H,) bias
    with pytest.raises(ValueError, match="reset_after=False") as err:
        from_keras_weights("GRU", weights, reset_after=False)
    msg = str(err.value)
    assert "before" in msg and "r * h" in msg, "the message should say what differs"
    assert "reset_after=True" in msg, "the message should say what to do"


@pytest.mark.parametrize("n", [0, 1, 4])
def test_keras_wrong_number_of_arrays(n, rng):
    weights = _keras_weights(rng, "LSTM", 3, 4)
    weights = (weights + [weights[2]])[:n]
    with pytest.raises(ValueError, match=rf"kernel, recurrent_kernel, bias.*got {n} arrays"):
        from_keras_weights("LSTM", weights)


def test_keras_wrong_shapes(rng):
    D, H = 3, 4
    k, r, b = _keras_weights(rng, "LSTM", D, H)
    with pytest.raises(ValueError, match="kernel"):
        from_keras_weights("LSTM", [k[:, :-1], r, b])  # 15 columns: not 4 gates
    with pytest.raises(ValueError, match="kernel"):
        from_keras_weights("LSTM", [k[0], r, b])  # 1-D kernel
    with pytest.raises(ValueError, match=r"recurrent_kernel must have shape \(4, 16\)"):
        from_keras_weights("LSTM", [k, r[:3], b])
    with pytest.raises(ValueError, match=r"recurrent_kernel must have shape \(4, 16\)"):
        from_keras_weights("LSTM", [k, r.T, b])
    with pytest.raises(ValueError, match=r"bias must have shape \(16,\)"):
        from_keras_weights("LSTM", [k, r, b[:12]])
    kg, rg, bg = _keras_weights(rng, "GRU", D, H)
    with pytest.raises(ValueError, match=r"bias must have shape \(2, 12\)"):
        from_keras_weights("GRU", [kg, rg, bg[0]])  # a reset_before bias given as reset_after
    ks, rs, _ = _keras_weights(rng, "SimpleRNN", D, H)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        from_keras_weights("SimpleRNN", [ks, rs, np.zeros((2, 4))])
    with pytest.raises(ValueError, match="kind"):
        from_keras_weights("ConvLSTM2D", [k, r, b])


# --------------------------------------------------------------------------- bad files
def _valid_file(tmp_path):
    path = tmp_path / "good.safetensors"
    io.save_state_dict(path, LSTM(3, 4, rng=0).state_dict())
    return path, path.read_bytes()


@pytest.mark.parametrize("damage", [
    "empty", "five_bytes", "header_cut", "data_cut", "last_byte_cut", "garbage", "text",
    "json_not_object", "bad_offsets",
])
def test_load_state_dict_bad_file_raises_model_file_error(damage, tmp_path, rng):
    _, data = _valid_file(tmp_path)
    header_len = int.from_bytes(data[:8], "little")

    def with_header(header: bytes, payload=b""):
        return len(header).to_bytes(8, "little") + header + payload

    blob = {
        "empty": b"",
        "five_bytes": data[:5],
        "header_cut": data[: 8 + header_len // 2],
        "data_cut": data[: 8 + header_len + 10],
        "last_byte_cut": data[:-1],
        "garbage": rng.integers(0, 256, 300, dtype=np.uint8).tobytes(),
        "text": b"weight_ih_l0 = [[0.1, 0.2], [0.3, 0.4]]\n" * 5,
        "json_not_object": with_header(b"[1, 2, 3]"),
        "bad_offsets": with_header(
            b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}', b"\0" * 8),
    }[damage]
    path = tmp_path / f"{damage}.safetensors"
    path.write_bytes(blob)
    with pytest.raises(ModelFileError) as err:
        io.load_state_dict(path)
    assert isinstance(err.value, ValueError)
    assert str(path) in str(err.value), "the message must name the file"


def test_load_state_dict_missing_file_and_folder(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ModelFileError, match="not found") as err:
        io.load_state_dict(missing)
    assert str(missing) in str(err.value)
    with pytest.raises(ModelFileError) as err:
        io.load_state_dict(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_load_state_dict_reads_a_valid_file_exactly(tmp_path):
    """The control for the bad-file tests: the undamaged file loads, bit for bit."""
    path, _ = _valid_file(tmp_path)
    arrays = io.load_state_dict(path)
    ref = LSTM(3, 4, rng=0).state_dict()
    assert set(arrays) == set(ref)
    assert all(np.array_equal(arrays[k], v) and arrays[k].dtype == v.dtype for k, v in ref.items())


def test_load_state_dict_bfloat16_file(torch, tmp_path):
    from safetensors.torch import save_file

    module = torch.nn.LSTM(3, 4).to(torch.bfloat16)
    path = tmp_path / "bf16.safetensors"
    save_file(module.state_dict(), str(path))
    try:
        arrays = io.load_state_dict(path)
    except ModelFileError as exc:  # refused, clearly
        assert str(path) in str(exc) and "BF16" in str(exc).upper()
    else:  # or converted exactly (every bfloat16 is a float32)
        for k, t in module.state_dict().items():
            assert np.array_equal(arrays[k], t.float().numpy()), k
