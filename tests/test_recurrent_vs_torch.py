"""rnnkit's RNN, LSTM and GRU against torch.nn.RNN/LSTM/GRU (torch==2.13.0, CPU).

Every test copies our parameters into the torch module by name (see
``torch_reference.py``), drives both with the same input, initial state and
random upstream gradients on the output and on the final state(s), and
compares the output, the final state(s) and every gradient: each parameter,
the input, h_0 (and c_0). In float64 the bound is 1e-10 relative (``rel_error``:
max abs difference over the larger max abs value), far above the round-off
of these tiny sizes (~1e-15) and far below any real mistake.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from torch_reference import STATE_NAMES, reference_rnn_loop, torch_reference

from rnnkit.gradcheck import rel_error
from rnnkit.recurrent import GRU, LSTM, RNN

TOL64 = 1e-10
# float32: unit round-off is 6e-8; through T <= 5 steps and 3 layers, forward
# and backward, a few dozen roundings accumulate: both we and PyTorch's own
# float32 run land at 1e-7 to 4e-7 from the float64 result (measured). 1e-5
# leaves a factor ~25 of headroom and is still ~5 orders below a real mistake.
TOL32 = 1e-5

CELLS = [("RNN", "tanh"), ("RNN", "relu"), ("LSTM", None), ("GRU", None)]
CELL_IDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
T, B, D, H = 5, 3, 4, 5
MIXED = [3, 5, 1]  # unsorted, with a full-length and a length-1 sequence


def torch_ref(*args, **kwargs):
    """``torch_reference``, skipping the calling test (loudly) when torch is missing."""
    pytest.importorskip("torch")
    return torch_reference(*args, **kwargs)


def make_layer(cell, input_size, hidden_size, **kwargs):
    mode, nonlinearity = cell
    if mode == "RNN":
        return RNN(input_size, hidden_size, nonlinearity=nonlinearity, **kwargs)
    return {"LSTM": LSTM, "GRU": GRU}[mode](input_size, hidden_size, **kwargs)


def make_data(model, rng, T, B, *, given_state=True, batched=True, dtype=np.float64):
    """Input, initial state (or None), and random upstream gradients for ``model``."""
    LK = model.num_layers * model.num_directions
    K, D = model.num_directions, model.input_size
    R = model.proj_size or model.hidden_size  # features of h (and of each output direction)
    lead = (LK,) if not batched else (LK, B)
    if not batched:
        x_shape, o_shape = (T, D), (T, K * R)
    elif model.batch_first:
        x_shape, o_shape = (B, T, D), (B, T, K * R)
    else:
        x_shape, o_shape = (T, B, D), (T, B, K * R)
    s_shapes = [lead + (R,), lead + (model.hidden_size,)][: len(STATE_NAMES[model.mode])]
    x = rng.standard_normal(x_shape).astype(dtype)
    states = [rng.standard_normal(s).astype(dtype) for s in s_shapes]
    d_output = rng.standard_normal(o_shape).astype(dtype)
    d_states = [rng.standard_normal(s).astype(dtype) for s in s_shapes]
    if model.mode == "LSTM":
        hx, d_hx = tuple(states), tuple(d_states)
    else:
        hx, d_hx = states[0], d_states[0]
    return x, (hx if given_state else None), d_output, d_hx


def run_ours(model, x, hx, d_output, d_hx, **kwargs):
    """Forward and backward through ``model``; results keyed like torch_reference's."""
    model.zero_grad()
    out, finals = model.forward(x, hx, **kwargs)
    d_input, d_states = model.backward(d_output, d_hx)
    if model.mode != "LSTM":
        finals, d_states = (finals,), (d_states,)
    res = {"output": out, "d_input": d_input}
    for name, f, d in zip(STATE_NAMES[model.mode], finals, d_states):
        res[f"{name}_n"] = f
        res[f"d_{name}0"] = d
    res["grads"] = {k: v.copy() for k, v in model.grads.items()}
    return res


def assert_matches(ours, ref, tol, label=""):
    """Compare every array of the two result dicts; messages name the array."""
    assert set(ours) == set(ref), f"{label}: result keys {sorted(ours)} vs {sorted(ref)}"
    assert set(ours["grads"]) == set(ref["grads"]), (
        f"{label}: gradient names {sorted(ours['grads'])} vs torch's {sorted(ref['grads'])}")
    pairs = [(k, ours[k], ref[k]) for k in ours if k != "grads"]
    pairs += [(f"grads[{k}]", ours["grads"][k], ref["grads"][k]) for k in ref["grads"]]
    for name, a, b in pairs:
        assert a.shape == b.shape, f"{label}: {name} has shape {a.shape}, torch {b.shape}"
        err = rel_error(a, b)
        assert err <= tol, f"{label}: {name} differs from torch: rel_error {err:.2e} > {tol:.0e}"


def check_against_torch(model, x, hx, d_output, d_hx, lengths=None, tol=TOL64, ref_dtype=None):
    ours = run_ours(model, x, hx, d_output, d_hx, lengths=lengths)
    ref = torch_ref(model, x, hx, d_output, d_hx, lengths=lengths, dtype=ref_dtype)
    assert_matches(ours, ref, tol, label=repr(model))
    return ours, ref


GRID = list(itertools.product(CELLS, (1, 2, 3), (False, True), (False, True), (True, False),
                              (None, MIXED), (False, True)))


def _grid_id(p):
    cell, L, bidir, bf, bias, lengths, given = p
    return "-".join([CELL_IDS[CELLS.index(cell)], f"L{L}", "bi" if bidir else "uni",
                     "bf" if bf else "tm", "bias" if bias else "nobias",
                     "mixed" if lengths else "equal", "h0" if given else "zero"])


@pytest.mark.parametrize("cell,num_layers,bidirectional,batch_first,bias,lengths,given_state",
                         GRID, ids=[_grid_id(p) for p in GRID])
def test_float64_grid(cell, num_layers, bidirectional, batch_first, bias, lengths, given_state):
    rng = np.random.default_rng(20240 + GRID.index(
        (cell, num_layers, bidirectional, batch_first, bias, lengths, given_state)))
    model = make_layer(cell, D, H, num_layers=num_layers, bias=bias, batch_first=batch_first,
                       bidirectional=bidirectional, dtype=np.float64, rng=rng)
    x, hx, d_output, d_hx = make_data(model, rng, T, B, given_state=given_state)
    check_against_torch(model, x, hx, d_output, d_hx, lengths=lengths)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lengths_all_shorter_than_T(cell, bidirectional):
    """max(lengths) < T: every sequence has padding, pad_packed_sequence pads to T."""
    rng = np.random.default_rng(7)
    model = make_layer(cell, D, H, num_layers=2, bidirectional=bidirectional,
                       dtype=np.float64, rng=rng)
    x, hx, d_output, d_hx = make_data(model, rng, T, B)
    check_against_torch(model, x, hx, d_output, d_hx, lengths=[2, 4, 3])


PARTIAL = [(cell, which) for cell in CELLS for which in ("no_d_state", "no_d_output", "no_dc_n")
           if which != "no_dc_n" or cell[0] == "LSTM"]


@pytest.mark.parametrize("cell,which", PARTIAL,
                         ids=[f"{CELL_IDS[CELLS.index(c)]}-{w}" for c, w in PARTIAL])
def test_partial_upstream_gradients(cell, which):
    """backward with d_hx=None, d_output=None, or (LSTM) only dh_n."""
    rng = np.random.default_rng(11)
    model = make_layer(cell, D, H, num_layers=2, bidirectional=True, dtype=np.float64, rng=rng)
    x, hx, d_output, d_hx = make_data(model, rng, T, B)
    if which == "no_d_state":
        d_hx = None
    elif which == "no_d_output":
        d_output = None
    else:
        d_hx = (d_hx[0], None)
    check_against_torch(model, x, hx, d_output, d_hx, lengths=MIXED)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("bidirectional,lengths", [(False, None), (True, None), (True, MIXED)])
def test_float32(cell, bidirectional, lengths):
    """float32 layer vs. torch in float64 on the same (float32) numbers, at TOL32."""
    rng = np.random.default_rng(3)
    model = make_layer(cell, D, H, num_layers=3, bidirectional=bidirectional,
                       dtype=np.float32, rng=rng)
    x, hx, d_output, d_hx = make_data(model, rng, T, B, dtype=np.float32)
    ours, ref = check_against_torch(model, x, hx, d_output, d_hx, lengths=lengths, tol=TOL32,
                                    ref_dtype=np.float64)
    assert ours["output"].dtype == np.float32
    # the bound is not loose for float32: torch's own float32 run is as far from float64
    ref32 = torch_ref(model, x, hx, d_output, d_hx, lengths=lengths)
    assert_matches(ref32, ref, TOL32, label="torch float32 vs float64")


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("given_state", [False, True])
def test_unbatched(cell, num_layers, bidirectional, batch_first, given_state):
    """(T, D) input with (L*K, H) states, as torch (batch_first does not apply)."""
    rng = np.random.default_rng(5)
    model = make_layer(cell, D, H, num_layers=num_layers, bidirectional=bidirectional,
                       batch_first=batch_first, dtype=np.float64, rng=rng)
    x, hx, d_output, d_hx = make_data(model, rng, T, B, batched=False, given_state=given_state)
    ours, _ = check_against_torch(model, x, hx, d_output, d_hx)
    assert ours["output"].shape == (T, model.num_directions * H)
    assert ours["h_n"].shape == (num_layers * model.num_directions, H)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("num_layers", [2, 3])
@pytest.mark.parametrize("lengths", [None, MIXED])
def test_eval_mode_with_dropout_equals_torch(cell, num_layers, lengths):
    """In eval() a layer built with dropout is deterministic and equals torch in eval()."""
    rng = np.random.default_rng(9)
    model = make_layer(cell, D, H, num_layers=num_layers, bidirectional=True, dropout=0.5,
                       dtype=np.float64, rng=rng).eval()
    x, hx, d_output, d_hx = make_data(model, rng, T, B)
    first, _ = check_against_torch(model, x, hx, d_output, d_hx, lengths=lengths)
    again = run_ours(model, x, hx, d_output, d_hx, lengths=lengths)
    np.testing.assert_array_equal(again["output"], first["output"], err_msg="eval output")


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_mask_equals_lengths(cell, batch_first, bidirectional):
    """mask= (T, B) (or (B, T) if batch_first) gives exactly what lengths= gives."""
    rng = np.random.default_rng(13)
    model = make_layer(cell, D, H, num_layers=2, bidirectional=bidirectional,
                       batch_first=batch_first, dtype=np.float64, rng=rng)
    x, hx, d_output, d_hx = make_data(model, rng, T, B)
    mask = np.arange(T)[:, None] < np.array(MIXED)[None, :]  # (T, B)
    if batch_first:
        mask = mask.T
    by_mask = run_ours(model, x, hx, d_output, d_hx, mask=mask)
    by_lengths = run_ours(model, x, hx, d_output, d_hx, lengths=MIXED)
    for key in by_mask:
        if key == "grads":
            for k in by_mask["grads"]:
                np.testing.assert_array_equal(by_mask["grads"][k], by_lengths["grads"][k],
                                              err_msg=f"grads[{k}]: mask vs lengths")
        else:
            np.testing.assert_array_equal(by_mask[key], by_lengths[key],
                                          err_msg=f"{key}: mask vs lengths")
    ref = torch_ref(model, x, hx, d_output, d_hx, lengths=MIXED)
    assert_matches(by_mask, ref, TOL64, label="mask=")


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_unbatched_mask_and_lengths(cell):
    """Unbatched input takes a (T,) mask or a scalar length, as a batch of one."""
    rng = np.random.default_rng(17)
    model = make_layer(cell, D, H, num_layers=2, bidirectional=True, dtype=np.float64, rng=rng)
    x, hx, d_output, d_hx = make_data(model, rng, T, B, batched=False)
    n = 3
    ours_len = run_ours(model, x, hx, d_output, d_hx, lengths=n)
    ours_mask = run_ours(model, x, hx, d_output, d_hx, mask=np.arange(T) < n)
    np.testing.assert_array_equal(ours_mask["output"], ours_len["output"], err_msg="output")
    # reference: torch on the batch of one with lengths [n]
    x3 = x[:, None, :]
    if cell[0] == "LSTM":
        hx3 = tuple(s[:, None, :] for s in hx)
        dhx3 = tuple(s[:, None, :] for s in d_hx)
    else:
        hx3, dhx3 = hx[:, None, :], d_hx[:, None, :]
    ref = torch_ref(model, x3, hx3, d_output[:, None, :], dhx3, lengths=[n])
    ref = {k: (v if k == "grads" else v[:, 0]) for k, v in ref.items()}
    assert_matches(ours_len, ref, TOL64, label="unbatched lengths")


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("lengths", [None, MIXED])
def test_reference_loop_matches_torch(nonlinearity, lengths):
    """The plain loop used for 'sigmoid' is itself right: it equals torch.nn.RNN."""
    rng = np.random.default_rng(19)
    model = RNN(D, H, num_layers=2, nonlinearity=nonlinearity, bidirectional=True,
                dtype=np.float64, rng=rng)
    x, hx, d_output, d_hx = make_data(model, rng, T, B)
    out, h_n, _ = reference_rnn_loop(model.params, x, hx, nonlinearity, 2, True, lengths)
    ref = torch_ref(model, x, hx, d_output, d_hx, lengths=lengths)
    assert rel_error(out, ref["output"]) <= TOL64, "reference loop output vs torch"
    assert rel_error(h_n, ref["h_n"]) <= TOL64, "reference loop h_n vs torch"


@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True), (3, False)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("lengths", [None, MIXED])
def test_sigmoid_rnn_vs_reference_loop(num_layers, bidirectional, bias, lengths):
    """nonlinearity='sigmoid' (no torch equivalent) against the plain loop."""
    rng = np.random.default_rng(23)
    model = RNN(D, H, num_layers=num_layers, nonlinearity="sigmoid", bias=bias,
                bidirectional=bidirectional, dtype=np.float64, rng=rng)
    x, hx, _, _ = make_data(model, rng, T, B)
    out, h_n = model.forward(x, hx, lengths=lengths)
    ref_out, ref_h_n, _ = reference_rnn_loop(model.params, x, hx, "sigmoid", num_layers,
                                             bidirectional, lengths)
    assert rel_error(out, ref_out) <= TOL64, "sigmoid RNN output vs reference loop"
    assert rel_error(h_n, ref_h_n) <= TOL64, "sigmoid RNN h_n vs reference loop"
    # a sigmoid state is in (0, 1): catches a tanh silently used instead
    assert (h_n > 0).all() and (h_n < 1).all(), "sigmoid RNN h_n outside (0, 1)"


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths", [None, MIXED])
def test_lstm_proj_size(num_layers, bidirectional, batch_first, lengths):
    """LSTM with proj_size: h_t = W_hr (o * tanh c), weight_hr_l{k}, h of P features."""
    rng = np.random.default_rng(29)
    model = LSTM(D, H, num_layers=num_layers, bidirectional=bidirectional,
                 batch_first=batch_first, proj_size=2, dtype=np.float64, rng=rng)
    x, hx, d_output, d_hx = make_data(model, rng, T, B)
    ours, _ = check_against_torch(model, x, hx, d_output, d_hx, lengths=lengths)
    assert ours["h_n"].shape[-1] == 2 and ours["c_n"].shape[-1] == H


CHUNKED = [("RNN", "tanh"), ("RNN", "relu"), ("GRU", None)]


@pytest.mark.parametrize("cell", CHUNKED, ids=["rnn_tanh", "rnn_relu", "gru"])
@pytest.mark.parametrize("chunk_steps", [1, 2], ids=["chunk1", "chunk2"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("lengths", [None, MIXED], ids=["equal", "mixed"])
def test_backward_in_chunks_of_steps_matches_torch(cell, chunk_steps, bidirectional, lengths):
    """The RNN and GRU backward walk back over time in chunks of steps (the RNN does its
    weight and input gradients per chunk). Chunks shorter than T (1 and 2 steps, so
    T = 5 ends in a partial chunk), with two layers, both directions and padding, give
    PyTorch's numbers; at these tiny sizes the automatic choice is one chunk."""
    rng = np.random.default_rng(31)
    model = make_layer(cell, D, H, num_layers=2, bidirectional=bidirectional,
                       dtype=np.float64, rng=rng)
    model._chunk_steps = chunk_steps
    x, hx, d_output, d_hx = make_data(model, rng, T, B)
    check_against_torch(model, x, hx, d_output, d_hx, lengths=lengths)
