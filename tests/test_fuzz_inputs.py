"""Property-based tests: generated bad input at every public entry gets the documented error.

Each test draws a valid setting (a layer, a model, a vocabulary, ...) and then
one corruption of one argument; the call must raise the documented
``ValueError`` or ``TypeError`` (``FileNotFoundError``/``IsADirectoryError``
for paths) from a ``raise`` statement of rnnkit, with a one-line message that
names the argument (see ``fuzz_helpers.assert_refused``). Nothing else: no
IndexError, KeyError, AttributeError, NumPy error, warning, hang or silently
accepted bad input.

The last part checks valid extremes: inputs up to +/-1e4 through every
layer's forward and backward, the losses and ``sample_logits`` at
temperatures near zero raise no floating-point warning under
``np.errstate(all='raise', under='ignore')`` and stay finite.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
from fuzz_helpers import assert_refused, check_clean, time_limit
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rnnkit import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, SequenceModel, optim
from rnnkit.data import TextStream, Vocabulary, read_text, train_val_split
from rnnkit.data.sequences import as_padded, pad_sequences
from rnnkit.data.series import holdout_windows, last_window, make_windows, split_series
from rnnkit.functional import cross_entropy, mse_loss, sample_logits

SETTINGS = settings(deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def fuzz(n):
    """Hypothesis settings for ``n`` examples: no deadline, the same examples on every run."""
    return settings(SETTINGS, max_examples=n)
LAYERS = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}
CELLS = {"RNNCell": RNNCell, "LSTMCell": LSTMCell, "GRUCell": GRUCell}

# dtypes a float32/float64 layer refuses (the other float dtype is added per layer)
BAD_DTYPES = ["int8", "int32", "int64", "uint8", "uint64", "bool", "float16", "complex64",
              "complex128", "object", "U3"]


def array_of(shape, dtype, rng, fill=None):
    """An array of ``shape`` and ``dtype`` with small random content (or ``fill``)."""
    a = rng.uniform(-2, 2, shape)
    if fill is not None:
        a = np.full(shape, fill)
    dtype = np.dtype(dtype)
    if dtype.kind == "U":  # text that is not a number either
        return np.full(shape, "ab?", dtype)
    if dtype.kind == "O":
        return a.astype(object)
    if dtype.kind == "c":
        return (a + 1j * a).astype(dtype)
    return a.astype(dtype)


def perturb_shape(shape, draw):
    """``shape`` with one axis changed to another size >= 1."""
    shape = list(shape)
    i = draw(st.integers(0, len(shape) - 1))
    shape[i] = draw(st.integers(1, shape[i] + 3).filter(lambda n: n != shape[i]))
    return tuple(shape)


def ragged(draw):
    """A nested list NumPy cannot make a regular array of."""
    inner = draw(st.integers(1, 3))
    return [[0.5] * inner, [0.5] * (inner + draw(st.integers(1, 3)))]


NOT_ARRAYS = st.sampled_from([None, {}, {"a": 1}, "abc", object(), b"\x00\x01"])


# --------------------------------------------------------------- constructors
def bad_positive_int():
    return st.one_of(st.integers(max_value=0), st.floats(allow_nan=True),
                     st.text(max_size=3), st.none(), st.booleans(),
                     st.lists(st.integers(1, 3), max_size=2), st.complex_numbers(max_magnitude=4))


BAD_DTYPE_ARGS = st.sampled_from(["float16", "int64", np.int32, "foo", object, 3, "complex64",
                                  np.dtype([("a", "f4")]), "U2", bool])


@fuzz(400)
@given(data=st.data(), mode=st.sampled_from(sorted(LAYERS)))
def test_layer_constructor_refuses_bad_arguments(data, mode):
    kwargs = {"input_size": 3, "hidden_size": 4, "num_layers": 2}
    fields = ["input_size", "hidden_size", "num_layers", "dropout", "proj_size", "dtype", "rng"]
    field = data.draw(st.sampled_from(fields + (["nonlinearity"] if mode == "RNN" else [])))
    if field in ("input_size", "hidden_size", "num_layers"):
        value = data.draw(bad_positive_int())
    elif field == "dropout":
        value = data.draw(st.one_of(
            st.floats().filter(lambda v: not 0 <= v <= 1), st.text(max_size=2), st.none(),
            st.booleans(), st.complex_numbers(max_magnitude=1)))
    elif field == "nonlinearity":
        value = data.draw(st.one_of(
            st.text(max_size=6).filter(lambda s: s not in ("tanh", "relu", "sigmoid")),
            st.integers(), st.none()))
    elif field == "proj_size":
        if mode == "LSTM":
            value = data.draw(st.one_of(st.integers(max_value=-1), st.integers(4, 50),
                                        st.floats(), st.text(max_size=2)))
        else:
            value = data.draw(st.integers(1, 3))
    elif field == "dtype":
        value = data.draw(BAD_DTYPE_ARGS)
    else:
        value = data.draw(st.one_of(st.integers(max_value=-1), st.floats(), st.text(max_size=3),
                                    st.lists(st.integers(0, 3), min_size=1, max_size=2)))
    kwargs[field] = value
    names = {"input_size": ("input_size",), "hidden_size": ("hidden_size",),
             "num_layers": ("num_layers",), "dropout": ("dropout",),
             "nonlinearity": ("nonlinearity",), "proj_size": ("proj_size",),
             "dtype": ("dtype",), "rng": ("rng",)}[field]
    assert_refused(lambda: LAYERS[mode](**kwargs), names=names)


# -------------------------------------------------------- sequence layers: forward
@st.composite
def layer_setups(draw):
    mode = draw(st.sampled_from(sorted(LAYERS)))
    D, H = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kwargs = {"num_layers": draw(st.integers(1, 2)), "bidirectional": draw(st.booleans()),
              "batch_first": draw(st.booleans()),
              "dtype": draw(st.sampled_from([np.float32, np.float64])), "rng": 0}
    if mode == "LSTM" and H > 1 and draw(st.booleans()):
        kwargs["proj_size"] = draw(st.integers(1, H - 1))
    layer = LAYERS[mode](D, H, **kwargs)
    T, B = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    batched = draw(st.booleans())
    return layer, T, (B if batched else None)


def valid_input(layer, T, B, rng):
    D = layer.input_size
    if B is None:
        return rng.uniform(-1, 1, (T, D)).astype(layer.dtype)
    shape = (B, T, D) if layer.batch_first else (T, B, D)
    return rng.uniform(-1, 1, shape).astype(layer.dtype)


def valid_state(layer, B):
    LK = layer.num_layers * layer.num_directions
    lead = (LK,) if B is None else (LK, B)
    h = np.zeros(lead + (layer.output_hidden_size,), layer.dtype)
    if layer.mode == "LSTM":
        return h, np.zeros(lead + (layer.hidden_size,), layer.dtype)
    return h


FORWARD_FAULTS = ["rank", "features", "dtype", "nonfinite", "empty", "ragged", "not_array",
                  "state_shape", "state_dtype", "state_nonfinite", "state_kind", "lengths",
                  "mask", "lengths_and_mask"]


@fuzz(800)
@given(setup=layer_setups(), fault=st.sampled_from(FORWARD_FAULTS), data=st.data())
def test_layer_forward_refuses_bad_input(setup, fault, data):
    layer, T, B = setup
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = valid_input(layer, T, B, rng)
    hx = None
    kwargs = {}
    Bn = 1 if B is None else B
    types = (ValueError, TypeError)
    names = ("input",)
    if fault == "rank":
        ndim = data.draw(st.sampled_from([0, 1, 4]))
        x = rng.uniform(-1, 1, tuple(data.draw(st.integers(1, 3)) for _ in range(ndim)))
        x = x.astype(layer.dtype)
        types = (ValueError,)
    elif fault == "features":
        D2 = data.draw(st.integers(1, 6).filter(lambda d: d != layer.input_size))
        x = valid_input(layer, T, B, rng)[..., :1].repeat(D2, axis=-1)
        types, names = (ValueError,), ("input_size",)
    elif fault == "dtype":
        other = "float64" if layer.dtype == np.float32 else "float32"
        x = array_of(x.shape, data.draw(st.sampled_from(BAD_DTYPES + [other])), rng)
        types = (TypeError,)
    elif fault == "nonfinite":
        x.flat[data.draw(st.integers(0, x.size - 1))] = data.draw(
            st.sampled_from([np.nan, np.inf, -np.inf]))
        types, names = (ValueError,), ("nan", "infinite")
    elif fault == "empty":
        shape = list(x.shape)
        axes = [0] if B is None else [0, 1]
        shape[data.draw(st.sampled_from(axes))] = 0
        x = np.zeros(shape, layer.dtype)
        types = (ValueError,)
    elif fault == "ragged":
        x = ragged(data.draw)
    elif fault == "not_array":
        x = data.draw(NOT_ARRAYS)
    elif fault.startswith("state"):
        good = valid_state(layer, B)
        parts = list(good) if layer.mode == "LSTM" else [good]
        names = ("h_0", "c_0", "hx")
        if fault == "state_kind":
            if layer.mode != "LSTM":  # a tuple for a one-state layer is a wrong rank
                hx = (good, good)
                types = (ValueError, TypeError)
            else:
                hx = data.draw(st.sampled_from([good[0], (good[0],), good + (good[0],), {}]))
                types = (TypeError,)
        else:
            i = data.draw(st.integers(0, len(parts) - 1))
            if fault == "state_shape":
                if data.draw(st.booleans()):
                    parts[i] = np.zeros(perturb_shape(parts[i].shape, data.draw), layer.dtype)
                else:
                    parts[i] = parts[i][None]  # one axis too many
                types = (ValueError,)
            elif fault == "state_dtype":
                other = "float64" if layer.dtype == np.float32 else "float32"
                parts[i] = array_of(parts[i].shape,
                                    data.draw(st.sampled_from(BAD_DTYPES + [other])), rng)
                types = (TypeError,)
            else:
                parts[i] = parts[i].copy()
                parts[i].flat[0] = np.nan
                types = (ValueError,)
            hx = tuple(parts) if layer.mode == "LSTM" else parts[0]
    elif fault == "lengths":
        names = ("lengths", "length")
        kind = data.draw(st.sampled_from(["count", "small", "large", "float", "text", "ragged",
                                          "2d"]))
        if kind == "count":
            lengths = np.full(data.draw(st.integers(Bn + 1, Bn + 3)), T)
        elif kind == "small":
            lengths = np.full(Bn, T)
            lengths[data.draw(st.integers(0, Bn - 1))] = data.draw(st.integers(-5, 0))
        elif kind == "large":
            lengths = np.full(Bn, T)
            lengths[data.draw(st.integers(0, Bn - 1))] = data.draw(st.integers(T + 1, T + 10**6))
        elif kind == "float":
            lengths = np.full(Bn, float(T))
        elif kind == "text":
            lengths = ["a"] * Bn
        elif kind == "ragged":
            lengths = [[1], [1, 2]]
        else:
            lengths = np.ones((Bn, 2), np.int64)
        kwargs["lengths"] = lengths
    elif fault == "mask":
        names = ("mask", "length")
        shape = (T,) if B is None else ((B, T) if layer.batch_first else (T, B))
        kind = data.draw(st.sampled_from(["shape", "dtype", "not_prefix", "ragged"]))
        if kind == "shape":
            mask = np.ones(perturb_shape(shape, data.draw), bool)
        elif kind == "dtype":
            mask = np.ones(shape, data.draw(st.sampled_from(["int64", "float32", "uint8"])))
        elif kind == "not_prefix":  # a sequence with no step at all, or a gap in the middle
            mask = np.ones(shape, bool)
            col = (slice(None),) if B is None else (
                (data.draw(st.integers(0, B - 1)), slice(None)) if layer.batch_first
                else (slice(None), data.draw(st.integers(0, B - 1))))
            column = mask[col]
            if T > 1 and data.draw(st.booleans()):
                column[0] = False
            else:
                column[:] = False
            mask[col] = column
        else:
            mask = [[True], [True, False]]
        kwargs["mask"] = mask
    else:  # lengths_and_mask
        kwargs["lengths"] = np.full(Bn, T)
        mask_shape = (T,) if B is None else ((B, T) if layer.batch_first else (T, B))
        kwargs["mask"] = np.ones(mask_shape, bool)
        names = ("lengths or mask",)
    assert_refused(lambda: layer.forward(x, hx, **kwargs), types=types, names=names)


BACKWARD_FAULTS = ["shape", "rank", "dtype", "nonfinite", "ragged", "dstate_shape",
                   "dstate_kind"]


@fuzz(400)
@given(setup=layer_setups(), fault=st.sampled_from(BACKWARD_FAULTS), data=st.data())
def test_layer_backward_refuses_bad_gradients(setup, fault, data):
    layer, T, B = setup
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    out, h_n = layer.forward(valid_input(layer, T, B, rng))
    d_out, d_h = np.ones(out.shape, layer.dtype), None
    types, names = (ValueError, TypeError), ("d_output",)
    if fault == "shape":
        d_out = np.ones(perturb_shape(out.shape, data.draw), layer.dtype)
        types = (ValueError,)
    elif fault == "rank":
        d_out = np.ones(out.shape + (1,) * (2 if B is None else 1), layer.dtype)
        types = (ValueError,)
    elif fault == "dtype":
        other = "float64" if layer.dtype == np.float32 else "float32"
        d_out = array_of(out.shape, data.draw(st.sampled_from(BAD_DTYPES + [other])), rng)
        types = (TypeError,)
    elif fault == "nonfinite":
        d_out.flat[data.draw(st.integers(0, d_out.size - 1))] = np.nan
        types, names = (ValueError,), ("nan", "infinite")
    elif fault == "ragged":
        d_out = ragged(data.draw)
    else:
        names = ("dh_n", "dc_n", "d_hx")
        good = h_n if layer.mode != "LSTM" else h_n[0]
        if fault == "dstate_shape":
            bad = np.ones(perturb_shape(good.shape, data.draw), layer.dtype)
            d_h = (bad, None) if layer.mode == "LSTM" else bad
            types = (ValueError,)
        elif layer.mode == "LSTM":
            d_h = data.draw(st.sampled_from([np.ones_like(good), (np.ones_like(good),), {}]))
            types = (TypeError,)
        else:
            d_h = np.ones(good.shape + (2,), layer.dtype)
            types = (ValueError,)
    assert_refused(lambda: layer.backward(d_out, d_h), types=types, names=names)


# --------------------------------------------------------------------- cells
@fuzz(300)
@given(name=st.sampled_from(sorted(CELLS)), fault=st.sampled_from(
    ["rank", "features", "dtype", "nonfinite", "ragged", "state_shape", "state_kind",
     "grad_shape", "grad_dtype"]), data=st.data())
def test_cell_refuses_bad_input(name, fault, data):
    D, H = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    cell = CELLS[name](D, H, dtype=dtype, rng=0)
    B = data.draw(st.integers(1, 3))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.uniform(-1, 1, (B, D)).astype(dtype)
    h = np.zeros((B, H), dtype)
    hx = (h, h) if name == "LSTMCell" else h
    types, names = (ValueError, TypeError), ("input",)
    if fault == "rank":
        x = x[None] if data.draw(st.booleans()) else dtype(1.0)
        types = (ValueError,)
    elif fault == "features":
        x = np.zeros((B, data.draw(st.integers(1, 6).filter(lambda d: d != D))), dtype)
        types, names = (ValueError,), ("input_size",)
    elif fault == "dtype":
        other = "float64" if dtype == np.float32 else "float32"
        x = array_of(x.shape, data.draw(st.sampled_from(BAD_DTYPES + [other])), rng)
        types = (TypeError,)
    elif fault == "nonfinite":
        x[0, 0] = np.inf
        types, names = (ValueError,), ("nan", "infinite")
    elif fault == "ragged":
        x = ragged(data.draw)
    elif fault == "state_shape":
        bad = np.zeros(perturb_shape(h.shape, data.draw), dtype)
        hx = (h, bad) if name == "LSTMCell" else bad
        types, names = (ValueError,), ("hx", "h", "c")
    elif fault == "state_kind":
        hx = h if name == "LSTMCell" else (h, h)
        types, names = (TypeError, ValueError), ("hx",)
    else:  # a valid step, then a bad gradient
        out = cell.forward(x, hx)
        h1 = out[0] if name == "LSTMCell" else out
        if fault == "grad_shape":
            g = np.ones(perturb_shape(h1.shape, data.draw), dtype)
            types = (ValueError,)
        else:
            g = np.ones(h1.shape, "float64" if dtype == np.float32 else "float32")
            types = (TypeError,)
        assert_refused(lambda: cell.backward(g), types=types, names=("d_h",))
        return
    assert_refused(lambda: cell.forward(x, hx), types=types, names=names)


# ---------------------------------------------------------------------- model
@fuzz(500)
@given(encoder=st.sampled_from(["embedding", "one_hot", "dense"]),
       cell=st.sampled_from(["lstm", "gru", "rnn"]), fault=st.sampled_from(
           ["out_of_range", "float_ids", "bool_ids", "rank", "empty", "ragged", "not_array",
            "lengths", "too_large"]), data=st.data())
def test_sequence_model_forward_refuses_bad_input(encoder, cell, fault, data):
    V = data.draw(st.integers(1, 6))
    model = SequenceModel(V, 3, 2, cell=cell, encoder=encoder, rng=0,
                          task=data.draw(st.sampled_from(["many_to_many", "many_to_one"])))
    T, B = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    tokens = encoder != "dense"
    x = rng.integers(0, V, (T, B)) if tokens else rng.uniform(-1, 1, (T, B, V)).astype(np.float32)
    kwargs = {}
    types, names = (ValueError, TypeError), ("token ids", "x", "input")
    if fault == "out_of_range":
        if tokens:
            x[data.draw(st.integers(0, T - 1)), data.draw(st.integers(0, B - 1))] = data.draw(
                st.one_of(st.integers(V, V + 10**9), st.integers(-10**9, -1)))
            types = (ValueError,)
        else:
            x[0, 0, 0] = np.nan
            types, names = (ValueError,), ("nan", "infinite")
    elif fault == "float_ids":
        if tokens:
            x = x.astype(data.draw(st.sampled_from(["float32", "float64"])))
            types = (TypeError,)
        else:  # token ids into a model of features
            x = rng.integers(0, V, (T, B))
            types = (ValueError,)
    elif fault == "bool_ids":
        x = np.ones(x.shape, bool)
        types = (TypeError,)
    elif fault == "rank":
        ndim = data.draw(st.sampled_from([0, 1, 4] if not tokens else [0, 1, 3]))
        shape = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
        x = rng.integers(0, V, shape) if tokens else np.zeros(shape, np.float32)
        types = (ValueError,)
    elif fault == "empty":
        shape = list(x.shape)
        shape[data.draw(st.sampled_from([0, 1]))] = 0
        x = np.zeros(shape, x.dtype)
        types = (ValueError,)
    elif fault == "ragged":
        x = [[0, 1], [0]] if tokens else [[[0.5]], [[0.5, 0.5]]]
    elif fault == "not_array":
        x = data.draw(NOT_ARRAYS)
    elif fault == "lengths":
        kwargs["lengths"] = data.draw(st.sampled_from(
            [np.zeros(B, np.int64), np.full(B, T + 1), np.full(B + 1, T), np.full(B, 1.0),
             ["a"] * B]))
        names = ("lengths", "length")
    else:  # finite float64 values that float32 cannot hold
        x = rng.uniform(-1, 1, (T, B, V)) * 1e300 if not tokens else np.full((T, B), 2**40)
        x[0, 0] = 1e300 if not tokens else x[0, 0]
        types = (ValueError,)
        names = ("range", "token ids")
    assert_refused(lambda: model.forward(x, **kwargs), types=types, names=names)


@fuzz(200)
@given(task=st.sampled_from(["many_to_many", "many_to_one"]),
       fault=st.sampled_from(["shape", "dtype", "ragged", "not_array"]), data=st.data())
def test_sequence_model_backward_refuses_bad_gradients(task, fault, data):
    model = SequenceModel(3, 4, 2, task=task, rng=0)
    T, B = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    y, _ = model.forward(np.zeros((T, B, 3), np.float32))
    grads_before = {k: g.copy() for k, g in model.grads.items()}
    if fault == "shape":
        dy = np.ones(perturb_shape(y.shape, data.draw), np.float32)
    elif fault == "dtype":
        dy = array_of(y.shape, data.draw(st.sampled_from(
            [d for d in BAD_DTYPES if d != "float16"])), np.random.default_rng(0))
    elif fault == "ragged":
        dy = ragged(data.draw)
    else:
        dy = data.draw(NOT_ARRAYS)
    assert_refused(lambda: model.backward(dy), names=("dy",))
    for k, g in model.grads.items():  # a refused call changes no gradient
        assert np.array_equal(g, grads_before[k]), k


# --------------------------------------------------------------------- losses
@fuzz(500)
@given(fault=st.sampled_from(["logits_dtype", "logits_rank", "no_class", "no_position",
                              "target_dtype", "target_shape", "target_range", "mask_dtype",
                              "mask_shape", "mask_empty", "ragged"]), data=st.data())
def test_cross_entropy_refuses_bad_input(fault, data):
    shape = tuple(data.draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    C = data.draw(st.integers(1, 5))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    logits = rng.standard_normal(shape + (C,))
    target = rng.integers(0, C, shape)
    mask = None
    types = (ValueError, TypeError)
    names = {"logits_dtype": ("logits",), "logits_rank": ("logits",), "no_class": ("logits",),
             "no_position": ("logits", "position"), "ragged": ("target", "logits", "mask"),
             "target_dtype": ("target",), "target_shape": ("target",),
             "target_range": ("target",)}.get(fault, ("mask",))
    if fault == "logits_dtype":
        logits = array_of(logits.shape, data.draw(st.sampled_from(
            ["bool", "complex128", "object", "U3"])), rng)
        types = (TypeError,)
    elif fault == "logits_rank":
        logits, target = np.float64(0.5), np.int64(0)
        types = (ValueError,)
    elif fault == "no_class":
        logits = np.zeros(shape + (0,))
        types = (ValueError,)
    elif fault == "no_position":
        logits, target = np.zeros((0, C)), np.zeros(0, np.int64)
        types = (ValueError,)
    elif fault == "target_dtype":
        target = array_of(target.shape, data.draw(st.sampled_from(
            ["float32", "float64", "bool", "complex64", "object", "U3"])), rng)
        types = (TypeError,)
    elif fault == "target_shape":
        target = rng.integers(0, C, shape + (data.draw(st.integers(1, 3)),))
        types = (ValueError,)
    elif fault == "target_range":
        target = np.asarray(target).copy()
        target.flat[0] = data.draw(st.one_of(st.integers(C, 10**12),
                                                    st.integers(-10**12, -1)))
        types = (ValueError,)
    elif fault == "mask_dtype":
        mask = np.ones(target.shape, data.draw(st.sampled_from(["int64", "float64", "uint8"])))
        types = (TypeError,)
    elif fault == "mask_shape":
        mask = np.ones(target.shape + (2,), bool)
        types = (ValueError,)
    elif fault == "mask_empty":
        mask = np.zeros(target.shape, bool)
        types = (ValueError,)
    else:
        target = [[0], [0, 1]]
    assert_refused(lambda: cross_entropy(logits, target, mask), types=types, names=names)


@fuzz(300)
@given(fault=st.sampled_from(["shape", "pred_dtype", "target_dtype", "empty", "mask_dtype",
                              "mask_shape", "mask_empty", "ragged"]), data=st.data())
def test_mse_loss_refuses_bad_input(fault, data):
    shape = tuple(data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    pred, target, mask = rng.standard_normal(shape), rng.standard_normal(shape), None
    types, names = (ValueError, TypeError), ("pred", "target", "mask")
    if fault == "shape":
        target = rng.standard_normal(perturb_shape(shape, data.draw))
        types = (ValueError,)
    elif fault == "pred_dtype":
        pred = array_of(shape, data.draw(st.sampled_from(
            ["int64", "bool", "complex128", "object", "U3"])), rng)
        types = (TypeError,)
    elif fault == "target_dtype":
        target = array_of(shape, data.draw(st.sampled_from(["complex64", "object", "U3"])), rng)
        types = (TypeError,)
    elif fault == "empty":
        pred = target = np.zeros(shape[:-1] + (0,))
        types = (ValueError,)
    elif fault == "mask_dtype":
        mask = np.ones(shape, "int64")
        types = (TypeError,)
    elif fault == "mask_shape":
        mask = np.ones(shape + (2,), bool)
        types = (ValueError,)
    elif fault == "mask_empty":
        mask = np.zeros(shape, bool)
        types = (ValueError,)
    else:
        target = ragged(data.draw)
    assert_refused(lambda: mse_loss(pred, target, mask), types=types, names=names)


@fuzz(300)
@given(data=st.data())
def test_sample_logits_refuses_bad_input(data):
    fault = data.draw(st.sampled_from(["dtype", "rank", "empty", "nonfinite", "temperature",
                                       "rng", "ragged"]))
    rng = np.random.default_rng(0)
    logits, temperature, gen = rng.standard_normal(data.draw(st.integers(1, 5))), 1.0, rng
    types = (ValueError, TypeError)
    names = ("logits",)
    if fault == "dtype":
        logits = array_of(logits.shape, data.draw(st.sampled_from(
            ["bool", "complex64", "object", "U3"])), rng)
        types = (TypeError,)
    elif fault == "rank":
        logits = np.zeros(data.draw(st.sampled_from([(), (1, 1, 2), (2, 2, 2, 1)])))
        types = (ValueError,)
    elif fault == "empty":
        logits = np.zeros(data.draw(st.sampled_from([(0,), (0, 3), (3, 0)])))
        types = (ValueError,)
    elif fault == "nonfinite":
        logits[data.draw(st.integers(0, logits.size - 1))] = data.draw(
            st.sampled_from([np.nan, np.inf, -np.inf]))
        types = (ValueError,)
    elif fault == "temperature":
        temperature = data.draw(st.one_of(st.floats(max_value=-1e-300), st.just(math.inf),
                                          st.just(math.nan), st.text(max_size=2), st.none(),
                                          st.booleans()))
        names = ("temperature",)
    elif fault == "rng":
        gen = data.draw(st.one_of(st.integers(), st.text(max_size=2),
                                  st.just(np.random.RandomState(0))))
        names = ("rng",)
    else:
        logits = ragged(data.draw)
    assert_refused(lambda: sample_logits(logits, temperature, gen), types=types, names=names)


# ----------------------------------------------------------------------- text
@fuzz(400)
@given(train=st.text(min_size=1, max_size=30), data=st.data())
def test_vocabulary_encode_refuses_unknown_characters_and_non_strings(train, data):
    vocab = Vocabulary.from_text(train)
    if data.draw(st.booleans()):
        extra = data.draw(st.text(min_size=1, max_size=5).filter(lambda s: set(s) - set(train)))
        text = data.draw(st.text(alphabet=sorted(set(train)), max_size=10)) + extra
        unknown = sorted(set(text) - set(train))
        msg = assert_refused(lambda: vocab.encode(text), types=(ValueError,),
                             names=("not in the vocabulary",))
        assert repr(unknown[0]) in msg, f"{unknown[0]!r} not named in {msg!r}"
    else:
        text = data.draw(st.one_of(st.binary(max_size=5), st.integers(), st.none(),
                                   st.lists(st.text(max_size=1), max_size=3)))
        assert_refused(lambda: vocab.encode(text), types=(TypeError,), names=("str",))
    ids = data.draw(st.one_of(
        st.lists(st.integers(len(vocab), 2**62), min_size=1, max_size=3),
        st.lists(st.integers(-2**62, -1), min_size=1, max_size=3)))
    assert_refused(lambda: vocab.decode(ids), types=(ValueError,), names=("out of range",))


@fuzz(500)
@given(fault=st.sampled_from(["ids_dtype", "ids_rank", "negative", "too_big", "ragged",
                              "batch_size", "seq_len", "too_short"]), data=st.data())
def test_text_stream_refuses_bad_input(fault, data):
    n = data.draw(st.integers(2, 40))
    ids = np.arange(n) % 5
    batch_size, seq_len = 1, 3
    types, names = (ValueError, TypeError), ("ids",)
    if fault == "ids_dtype":
        ids = array_of((n,), data.draw(st.sampled_from(
            ["float32", "float64", "bool", "complex64", "object", "U3"])),
            np.random.default_rng(0))
        types = (TypeError,)
    elif fault == "ids_rank":
        ids = np.zeros(data.draw(st.sampled_from([(), (2, n), (1, 1, n)])), np.int64)
        types = (ValueError,)
    elif fault == "negative":
        ids = ids.copy()
        ids[data.draw(st.integers(0, n - 1))] = data.draw(st.integers(-10**12, -1))
        types = (ValueError,)
    elif fault == "too_big":
        ids = np.full(n, 2**63 + data.draw(st.integers(0, 2**62)), np.uint64)
        types = (ValueError,)
    elif fault == "ragged":
        ids = ragged(data.draw)
    elif fault in ("batch_size", "seq_len"):
        value = data.draw(bad_positive_int())
        batch_size, seq_len = (value, seq_len) if fault == "batch_size" else (batch_size, value)
        names = (fault,)
    else:
        batch_size = data.draw(st.integers(n // 2 + 1, n + 5))
        types, names = (ValueError,), ("too short",)
    assert_refused(lambda: TextStream(ids, batch_size, seq_len), types=types, names=names)


@fuzz(150)
@given(n=st.integers(0, 30), fraction=st.one_of(st.floats(), st.text(max_size=2), st.none()))
def test_train_val_split_refuses_bad_fractions_and_empty_parts(n, fraction):
    ids = np.arange(n)
    good = (isinstance(fraction, float) and 0 < fraction < 1
            and 0 < round(n * fraction) < n)
    assume(not good)
    assert_refused(lambda: train_val_split(ids, fraction), names=("val_fraction", "ids"))


def file_bytes():
    """Bytes a user might call a text file: binary, broken UTF-8, UTF-16, short or empty text."""
    text = st.text(max_size=60)
    return st.one_of(
        st.binary(max_size=200),
        text.map(lambda s: s.encode("utf-8")),
        text.map(lambda s: b"\xef\xbb\xbf" + s.encode("utf-8")),
        text.map(lambda s: s.encode("utf-16")),
        st.tuples(text, st.binary(min_size=1, max_size=4), text).map(
            lambda t: t[0].encode() + t[1] + t[2].encode()),
        st.sampled_from([b"", b"\xef\xbb\xbf", b"\r\n", b"\x00", b"\xff\xfe", b"\xc3", b"\x80"]),
    )


def looks_binary(text):
    """The documented heuristic: over 30% control characters (or U+FFFD) in the first 64 KiB."""
    sample = text[:1 << 16]
    bad = sum(1 for c in sample if c == "\ufffd" or (c < " " and c not in "\t\n\r\f\v\b\x1b"))
    bad += sample.count("\x7f")
    return bad > 0.3 * len(sample)


@fuzz(600)
@given(data=file_bytes(), min_chars=st.integers(1, 40))
def test_read_text_on_generated_bytes(tmp_path_factory, data, min_chars):
    path = tmp_path_factory.getbasetemp() / "generated.txt"
    path.write_bytes(data)
    try:
        strict = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError:
        strict = None
    expected = None
    if strict is not None and b"\x00" not in data:
        expected = strict.replace("\r\n", "\n").replace("\r", "\n")
    # the documented refusals: not UTF-8, a NUL byte, empty, mostly control characters, short
    refuse = (expected is None or not strict or looks_binary(strict)
              or len(expected) < min_chars)
    try:
        text = read_text(path, min_chars=min_chars)
    except ValueError as exc:
        check_clean(exc)
        assert os.fspath(path) in str(exc), f"the message does not name the file: {exc}"
        assert refuse, f"valid text of {len(expected)} characters refused: {exc}"
    else:
        assert not refuse, "bytes that are not usable UTF-8 text were accepted"
        assert text == expected and len(text) >= min_chars


@fuzz(100)
@given(kind=st.sampled_from(["missing", "folder", "type"]), name=st.text(
    alphabet=st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=10))
def test_read_text_refuses_bad_paths(tmp_path_factory, kind, name):
    base = tmp_path_factory.getbasetemp()
    if kind == "missing":
        path = base / f"missing-{name}.txt"
        assert_refused(lambda: read_text(path), types=(FileNotFoundError,), names=(name,))
    elif kind == "folder":
        path = base / f"folder-{name}"
        path.mkdir(exist_ok=True)
        assert_refused(lambda: read_text(path), types=(IsADirectoryError,), names=(name,))
    else:
        assert_refused(lambda: read_text(name.encode() if len(name) % 2 else len(name)),
                       types=(TypeError,), names=("path",))


# --------------------------------------------------------------------- series
@fuzz(400)
@given(data=st.data())
def test_series_windows_refuse_bad_input(data):
    n = data.draw(st.integers(0, 12))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    series = rng.standard_normal(n)
    fault = data.draw(st.sampled_from(["too_long", "window", "nonfinite", "rank", "dtype",
                                       "ragged", "exog_rows", "last_window", "holdout",
                                       "split"]))
    window, horizon, exog = 2, 1, None
    names = ("series", "window", "horizon")
    if fault == "too_long":
        window = data.draw(st.integers(1, 15))
        horizon = data.draw(st.integers(max(1, n - window + 1), 20))
        names = ("too short", "observations")
    elif fault == "window":
        window = data.draw(bad_positive_int())
        series = rng.standard_normal(max(n, 5))
        names = ("window",)
    elif fault == "nonfinite":
        series = rng.standard_normal(max(n, 5))
        series[data.draw(st.integers(0, series.size - 1))] = np.nan
        names = ("nan",)
    elif fault == "rank":
        series = np.zeros(data.draw(st.sampled_from([(), (3, 3, 3), (2, 2, 2, 2)])))
    elif fault == "dtype":
        series = array_of((max(n, 5),), data.draw(st.sampled_from(["complex128", "U3"])), rng)
        names = ("series", "complex", "numbers")
    elif fault == "ragged":
        series = ragged(data.draw)
    elif fault == "exog_rows":
        series = rng.standard_normal(max(n, 5))
        exog = rng.standard_normal(series.size + data.draw(st.sampled_from([-2, -1, 1, 3])))
        names = ("exog",)
    if fault == "last_window":
        window = data.draw(st.integers(n + 1, n + 20))
        assert_refused(lambda: last_window(series, window), names=("too short", "observations"))
    elif fault == "holdout":
        window = data.draw(st.integers(n + 1, n + 20))
        assert_refused(lambda: holdout_windows(series, np.ones(3), window),
                       names=("too short", "observations"))
    elif fault == "split":
        m = max(n, 2)
        size = data.draw(st.one_of(st.integers(m, 30), st.integers(-5, 0),
                                   st.floats().filter(lambda f: not 0 < f < 1),
                                   st.text(max_size=2)))
        assert_refused(lambda: split_series(rng.standard_normal(m), size),
                       names=("test_size",))
    else:
        assert_refused(lambda: make_windows(series, window, horizon, exog=exog), names=names)


@fuzz(300)
@given(data=st.data())
def test_padding_refuses_bad_sequences_and_lengths(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    fault = data.draw(st.sampled_from(["empty_list", "empty_seq", "features", "nonfinite",
                                       "rank", "not_list", "lengths"]))
    names = ("sequences", "lengths", "x")
    if fault == "lengths":
        N, T = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 5))
        lengths = data.draw(st.sampled_from([
            np.zeros(N, np.int64), np.full(N, T + 1), np.full(N + 1, T), np.full(N, 1.5),
            np.full(N, 1e30), np.full(N, np.inf), np.full(N, np.nan), ["a"] * N,
            [[1], [1, 2]]]))
        assert_refused(lambda: as_padded(rng.standard_normal((N, T)), lengths),
                       names=("lengths",))
        return
    seqs = [rng.standard_normal((data.draw(st.integers(1, 4)), 2)) for _ in range(3)]
    if fault == "empty_list":
        seqs = []
    elif fault == "empty_seq":
        seqs[data.draw(st.integers(0, 2))] = np.zeros((0, 2))
    elif fault == "features":
        seqs[data.draw(st.integers(1, 2))] = np.zeros((2, 3))
    elif fault == "nonfinite":
        seqs[data.draw(st.integers(0, 2))][0, 0] = np.nan
    elif fault == "rank":
        seqs[data.draw(st.integers(0, 2))] = np.zeros((2, 2, 2))
    else:
        seqs = data.draw(st.sampled_from(["abc", 3, None, 2.5]))
    assert_refused(lambda: pad_sequences(seqs), names=names)


# ----------------------------------------------------------------- optimizers
def _params(rng):
    return {"w": rng.standard_normal((2, 3)), "b": rng.standard_normal(3)}


@fuzz(500)
@given(name=st.sampled_from(["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]), data=st.data())
def test_optimizer_constructors_refuse_bad_arguments(name, data):
    rng = np.random.default_rng(0)
    params = _params(rng)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    cls = getattr(optim, name)
    hyper = {"SGD": ["lr", "momentum", "weight_decay", "nesterov"],
             "Adam": ["lr", "betas", "eps", "weight_decay", "amsgrad"],
             "AdamW": ["lr", "betas", "eps", "weight_decay", "amsgrad"],
             "RMSprop": ["lr", "alpha", "eps", "weight_decay", "momentum", "centered"],
             "Adagrad": ["lr", "lr_decay", "weight_decay", "eps"]}[name]
    field = data.draw(st.sampled_from(hyper + ["params", "grads"]))
    kwargs = {}
    names = (field, "learning rate", "epsilon", "beta")
    if field in ("params", "grads"):
        kind = data.draw(st.sampled_from(["type", "empty", "keys", "dtype", "shape", "readonly",
                                          "key_type"]))
        target = params if field == "params" else grads
        if kind == "type":
            target = data.draw(st.sampled_from([[np.zeros(3)], None, np.zeros(3), "w"]))
        elif kind == "empty":
            params, grads = {}, {}
        elif kind == "keys":
            target = dict(target)
            target[data.draw(st.text(min_size=1, max_size=3).filter(
                lambda s: s not in ("w", "b")))] = np.zeros(3)
        elif kind == "dtype":
            target = dict(target)
            target["w"] = array_of((2, 3), data.draw(st.sampled_from(
                ["int64", "bool", "complex128", "object"])), rng)
        elif kind == "shape":
            target = dict(target)
            target["w"] = np.zeros((3, 2))
        elif kind == "readonly":
            target = dict(target)
            target["w"] = target["w"].copy()
            target["w"].flags.writeable = False
        else:
            params = {1: np.zeros(3)}
            grads = {1: np.zeros(3)}
        if kind not in ("empty", "key_type"):
            if field == "params":
                params = target
            else:
                grads = target
        names = ("params", "grads", "parameter")
    elif field in ("nesterov", "amsgrad", "centered"):
        kwargs[field] = data.draw(st.one_of(st.integers(0, 1), st.text(max_size=2), st.none()))
    elif field == "betas":
        kwargs[field] = data.draw(st.one_of(
            st.tuples(st.floats().filter(lambda b: not 0 <= b < 1), st.just(0.9)),
            st.tuples(st.just(0.9), st.floats().filter(lambda b: not 0 <= b < 1)),
            st.lists(st.floats(0, 0.9), max_size=1), st.just(0.9), st.text(max_size=1),
            st.tuples(st.just("a"), st.just(0.9))))
    else:
        kwargs[field] = data.draw(st.one_of(st.floats(max_value=-1e-300), st.just(math.nan),
                                            st.text(max_size=2), st.none(),
                                            st.complex_numbers(max_magnitude=1),
                                            st.booleans()))
    assert_refused(lambda: cls(params, grads, **kwargs), names=names)


# ----------------------------------------------------------------- estimators
sklearn = pytest.importorskip("sklearn")
SKLEARN_DIR = os.path.dirname(sklearn.__file__)


@pytest.fixture(scope="module")
def fitted():
    from rnnkit.estimators import RNNClassifier, RNNForecaster, RNNRegressor

    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 5, 2))
    y = np.array(["a", "b", "c"] * 4)
    kw = {"hidden_size": 3, "max_iter": 2, "random_state": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two epochs do not converge, by design
        return {"X": X, "y": y,
                "clf": RNNClassifier(**kw).fit(X, y),
                "reg": RNNRegressor(**kw).fit(X, rng.standard_normal(12)),
                "fc": RNNForecaster(window=3, **kw).fit(rng.standard_normal(30)),
                "kw": kw}


def test_classifier_score_counts_unknown_classes_as_errors(fitted):
    """Unknown labels at scoring time are not an error but wrong answers (documented)."""
    clf, X = fitted["clf"], fitted["X"]
    predicted = clf.predict(X)
    assert set(predicted) <= set(clf.classes_)
    y = predicted.astype(object)
    y[:4] = "never seen"
    assert clf.score(X, y) == pytest.approx(8 / 12)


def bad_X(draw, rng, D=2):
    kind = draw(st.sampled_from(["nan", "inf", "rank", "empty", "dtype", "features",
                                 "not_array"]))
    if kind in ("nan", "inf"):
        X = rng.standard_normal((draw(st.integers(1, 4)), draw(st.integers(1, 4)), D))
        X[tuple(draw(st.integers(0, s - 1)) for s in X.shape)] = np.nan if kind == "nan" \
            else -np.inf
        return X
    if kind == "rank":
        return np.zeros(draw(st.sampled_from([(), (3,), (2, 2, 2, 2)])))
    if kind == "empty":
        return np.zeros(draw(st.sampled_from([(0, 3, D), (2, 0, D), (2, 3, 0)])))
    if kind == "dtype":
        return array_of((2, 3, D), draw(st.sampled_from(["complex128", "U3"])), rng)
    if kind == "features":
        return rng.standard_normal((2, 3, draw(st.integers(1, 5).filter(lambda d: d != D))))
    return draw(st.sampled_from([None, "abc", 3.5]))


@fuzz(200)
@given(which=st.sampled_from(["clf", "reg"]), data=st.data())
def test_estimators_refuse_bad_X_at_predict(fitted, which, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    X = bad_X(data.draw, rng)
    est = fitted[which]
    assert_refused(lambda: est.predict(X), names=("X", "lengths", "features", "sample"),
                   also_from=(SKLEARN_DIR,))


@fuzz(120)
@given(which=st.sampled_from(["clf", "reg"]), data=st.data())
def test_estimators_refuse_bad_training_data(fitted, which, data):
    from rnnkit.estimators import RNNClassifier, RNNRegressor

    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    X, y = fitted["X"], fitted["y"] if which == "clf" else rng.standard_normal(12)
    fault = data.draw(st.sampled_from(["X", "y_length", "y_nonfinite", "y_rank", "one_class",
                                       "lengths"]))
    kwargs = {}
    if fault == "X":
        X = bad_X(data.draw, rng)
    elif fault == "y_length":
        y = y[: data.draw(st.integers(1, 11))]
    elif fault == "y_nonfinite":
        y = rng.standard_normal(12)
        y[data.draw(st.integers(0, 11))] = data.draw(st.sampled_from([np.nan, np.inf]))
    elif fault == "y_rank":
        y = np.zeros((12, 1, 1))
    elif fault == "one_class":
        y = np.zeros(12) if which == "clf" else np.array(["a"] * 12)
    else:
        kwargs["lengths"] = data.draw(st.sampled_from(
            [np.zeros(12, np.int64), np.full(12, 6), np.full(11, 5), ["a"] * 12]))
    cls = RNNClassifier if which == "clf" else RNNRegressor
    assert_refused(lambda: cls(**fitted["kw"]).fit(X, y, **kwargs),
                   names=("X", "y", "lengths", "class", "sample"), also_from=(SKLEARN_DIR,))


@fuzz(150)
@given(data=st.data())
def test_forecaster_refuses_bad_series_and_horizons(fitted, data):
    from rnnkit.estimators import RNNForecaster

    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    fault = data.draw(st.sampled_from(["short", "nonfinite", "rank", "exog_rows", "horizon",
                                       "predict_X", "update_nonfinite", "update_width"]))
    fc = fitted["fc"]
    if fault == "short":
        y = rng.standard_normal(data.draw(st.integers(0, 3)))
        call = lambda: RNNForecaster(window=3, **fitted["kw"]).fit(y)
    elif fault == "nonfinite":
        y = rng.standard_normal(20)
        y[data.draw(st.integers(0, 19))] = np.nan
        call = lambda: RNNForecaster(window=3, **fitted["kw"]).fit(y)
    elif fault == "rank":
        call = lambda: RNNForecaster(window=3, **fitted["kw"]).fit(np.zeros((10, 2, 2)))
    elif fault == "exog_rows":
        call = lambda: RNNForecaster(window=3, **fitted["kw"]).fit(
            rng.standard_normal(20), X=rng.standard_normal(data.draw(st.integers(1, 19))))
    elif fault == "horizon":
        h = data.draw(bad_positive_int().filter(lambda v: v is not None))
        call = lambda: fc.predict(h)
    elif fault == "predict_X":
        call = lambda: fc.predict(2, X=np.zeros(2))
    elif fault == "update_nonfinite":
        call = lambda: fc.update(np.array([1.0, np.inf]))
    else:
        call = lambda: fc.update(np.zeros((3, 2)))
    assert_refused(call, names=("y", "X", "horizon", "window", "series", "nan"),
                   also_from=(SKLEARN_DIR,))


# ------------------------------------------------- valid extremes: no FP warnings
EXTREME = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)


@fuzz(200)
@given(mode=st.sampled_from(["RNN-tanh", "RNN-relu", "RNN-sigmoid", "LSTM", "GRU"]),
       dtype=st.sampled_from([np.float32, np.float64]), data=st.data())
def test_layers_stay_finite_and_silent_for_inputs_up_to_1e4(mode, dtype, data):
    name, _, nonlin = mode.partition("-")
    D, H = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    T, B = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 3))
    kwargs = {"nonlinearity": nonlin} if nonlin else {}
    layer = LAYERS[name](D, H, num_layers=data.draw(st.integers(1, 2)),
                         bidirectional=data.draw(st.booleans()), dtype=dtype, rng=0, **kwargs)
    x = np.array(data.draw(st.lists(EXTREME, min_size=T * B * D, max_size=T * B * D)),
                 dtype).reshape(T, B, D)
    scale = data.draw(st.sampled_from([1.0, 1e4]))
    lengths = np.array(data.draw(st.lists(st.integers(1, T), min_size=B, max_size=B)))
    with np.errstate(all="raise", under="ignore"):
        out, _h_n = layer.forward(x, lengths=lengths)
        d_x, _ = layer.backward(np.full(out.shape, scale, dtype))
    assert np.isfinite(out).all() and np.isfinite(d_x).all()
    assert all(np.isfinite(g).all() for g in layer.grads.values())


@fuzz(300)
@given(data=st.data())
def test_losses_stay_finite_and_silent_for_logits_up_to_1e4(data):
    C = data.draw(st.integers(1, 6))
    N = data.draw(st.integers(1, 5))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    logits = np.array(data.draw(st.lists(EXTREME, min_size=N * C, max_size=N * C)),
                      dtype).reshape(N, C)
    target = np.array(data.draw(st.lists(st.integers(0, C - 1), min_size=N, max_size=N)))
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=N, max_size=N)))
    mask[0] = True
    with np.errstate(all="raise", under="ignore"):
        loss, d = cross_entropy(logits, target, mask)
        mloss, md = mse_loss(logits, -logits[::-1], mask)
    assert math.isfinite(loss) and loss >= 0 and np.isfinite(d).all()
    assert math.isfinite(mloss) and np.isfinite(md).all()


@fuzz(400)
@given(data=st.data(), temperature=st.one_of(
    st.just(0.0), st.just(5e-324), st.just(1e-300), st.floats(1e-12, 1e-3), st.floats(0.5, 2)))
def test_sample_logits_silent_near_zero_temperature(data, temperature):
    V = data.draw(st.integers(1, 8))
    logits = np.array(data.draw(st.lists(EXTREME, min_size=V, max_size=V)))
    if V > 1 and data.draw(st.booleans()):
        logits[data.draw(st.integers(1, V - 1))] = logits[0]  # a tie
    if data.draw(st.booleans()):
        logits = logits.astype(np.float32)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    with np.errstate(all="raise", under="ignore"):
        i = sample_logits(logits, temperature, rng)
        batch = sample_logits(np.stack([logits, -logits]), temperature, rng)
    assert 0 <= i < V and batch.shape == (2,)
    top = np.flatnonzero(logits == logits.max())
    values = np.unique(logits.astype(np.float64))
    if temperature == 0:
        assert i == top[0], "greedy must take the first maximum"
    elif temperature <= 1e-12 and (values.size == 1 or values[-1] - values[-2] > 1e-6):
        assert i in top, "a near-zero temperature must draw one of the maxima"


# ----------------------------------------------------------------- CSV series
CSV_CELLS = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats().map(repr),
                      st.sampled_from(["", "nan", "inf", "-inf", "1e400", "1949-01",
                                       "2020-03-01", "x", " 3 ", '"', "1,5", "1;2"]),
                      st.text(max_size=4))


@fuzz(400)
@given(rows=st.lists(st.lists(CSV_CELLS, min_size=1, max_size=4), max_size=8),
       sep=st.sampled_from([",", ";", "\t"]), raw=st.one_of(st.none(), st.binary(max_size=60)),
       column=st.one_of(st.none(), st.sampled_from(["0", "1", "value", "x"])))
def test_series_csv_reader_on_generated_files(tmp_path_factory, rows, sep, raw, column):
    """Missing, non-numeric, NaN cells, ragged rows, unknown columns, binary: a ValueError."""
    jobs = pytest.importorskip("rnnkit.jobs")
    path = tmp_path_factory.getbasetemp() / "series.csv"
    path.write_bytes(raw if raw is not None else "\n".join(
        sep.join(r) for r in rows).encode("utf-8", "surrogatepass"))
    try:
        with time_limit(20):
            values, index, name = jobs.read_series_csv(path, column)
    except ValueError as exc:
        check_clean(exc)
        assert os.fspath(path) in str(exc), f"the message does not name the file: {exc}"
    else:
        assert values.dtype == np.float64 and values.ndim == 1 and values.size
        assert np.isfinite(values).all() and len(index) == len(values)
        assert isinstance(name, str)
