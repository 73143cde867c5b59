"""The optional compiled LSTM loops (numba) against the NumPy loops and PyTorch.

With numba installed, small LSTM steps (B * H <= 256) take the compiled path,
so the rest of the suite already checks it against torch at its small sizes.
Here both paths are forced in turn (``RNNKIT_COMPILED``) and each is checked
against torch over the options that reach the cell loops (layers, directions,
lengths, given states, float32), and against each other; the float32
``exp``/``tanh`` of the compiled path are checked ulp by ulp.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_recurrent_vs_torch import TOL32, TOL64, check_against_torch, make_data, make_layer

from rnnkit.cells import compiled
from rnnkit.gradcheck import rel_error
from rnnkit.recurrent import LSTM

numba = pytest.importorskip("numba")
pytest.importorskip("torch")

LSTM_CELL = ("LSTM", None)
PATHS = ["compiled", "numpy"]


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    """Run the test once on each path."""
    monkeypatch.setenv("RNNKIT_COMPILED", "1" if request.param == "compiled" else "0")
    monkeypatch.delenv("RNNKIT_COMPILED_MAX_UNITS", raising=False)
    return request.param


GRID = list(itertools.product((1, 2), (False, True), (False, True), (None, [3, 5, 1]),
                              (False, True)))


@pytest.mark.parametrize("num_layers,bidirectional,batch_first,lengths,given_state", GRID)
def test_lstm_both_paths_match_torch(path, num_layers, bidirectional, batch_first, lengths,
                                     given_state):
    rng = np.random.default_rng(GRID.index((num_layers, bidirectional, batch_first, lengths,
                                            given_state)))
    model = make_layer(LSTM_CELL, 4, 5, num_layers=num_layers, bidirectional=bidirectional,
                       batch_first=batch_first, dtype=np.float64, rng=rng)
    x, hx, d_output, d_hx = make_data(model, rng, 5, 3, given_state=given_state)
    check_against_torch(model, x, hx, d_output, d_hx, lengths=lengths, tol=TOL64)


@pytest.mark.parametrize("lengths", [None, [7, 2, 5, 1]])
def test_lstm_float32_both_paths_match_torch(path, lengths):
    rng = np.random.default_rng(3)
    model = make_layer(LSTM_CELL, 4, 16, num_layers=2, bidirectional=True, dtype=np.float32,
                       rng=rng)
    x, hx, d_output, d_hx = make_data(model, rng, 7, 4, dtype=np.float32)
    check_against_torch(model, x, hx, d_output, d_hx, lengths=lengths, tol=TOL32,
                        ref_dtype=np.float64)


def test_unbatched_and_partial_gradients_match_numpy_path(monkeypatch):
    """No d_output (only the final-state gradient) and unbatched input, on both paths."""
    results = []
    for flag in ("1", "0"):
        monkeypatch.setenv("RNNKIT_COMPILED", flag)
        m = LSTM(3, 6, dtype=np.float64, rng=0)
        x = np.random.default_rng(1).standard_normal((9, 3))
        out, (h_n, c_n) = m(x)
        dx, (dh0, dc0) = m.backward(None, (np.ones_like(h_n), None))
        results.append([out, h_n, c_n, dx, dh0, dc0, *(m.grads[k] for k in sorted(m.grads))])
    for a, b in zip(*results):
        assert rel_error(a, b) < 1e-13


def test_dispatch_rules(monkeypatch):
    monkeypatch.delenv("RNNKIT_COMPILED", raising=False)
    monkeypatch.delenv("RNNKIT_COMPILED_MAX_UNITS", raising=False)
    assert compiled.available()
    assert compiled.lstm_kernels(1, 128, np.float32) is not None
    assert compiled.lstm_kernels(2, 128, np.float64) is not None  # B*H = 256
    assert compiled.lstm_kernels(1, 512, np.float32) is None  # above the default limit
    assert compiled.lstm_kernels(1, 32, np.float16) is None
    monkeypatch.setenv("RNNKIT_COMPILED_MAX_UNITS", "2048")
    assert compiled.lstm_kernels(8, 128, np.float32) is not None
    monkeypatch.setenv("RNNKIT_COMPILED", "0")
    assert compiled.lstm_kernels(1, 8, np.float32) is None
    monkeypatch.setenv("RNNKIT_COMPILED", "1")
    monkeypatch.setenv("RNNKIT_COMPILED_MAX_UNITS", "many")
    with pytest.raises(ValueError, match="RNNKIT_COMPILED_MAX_UNITS must be an integer"):
        compiled.lstm_kernels(1, 8, np.float32)


def test_compiled_path_is_taken(monkeypatch):
    """The loops really run: a broken compiled kernel must change the result."""
    monkeypatch.delenv("RNNKIT_COMPILED_MAX_UNITS", raising=False)
    monkeypatch.setenv("RNNKIT_COMPILED", "1")
    calls = []
    real = compiled.lstm_kernels

    def spy(B, H, dtype):
        k = real(B, H, dtype)
        calls.append(k is not None)
        return k

    monkeypatch.setattr("rnnkit.cells.lstm.lstm_kernels", spy)
    m = LSTM(2, 4, rng=0)
    out, _ = m(np.zeros((3, 2, 2), np.float32))
    m.backward(np.ones_like(out))
    assert calls == [True, True]


def _ulp_error(got, exact):
    exact32 = exact.astype(np.float32)
    spacing = np.spacing(np.maximum(np.abs(exact32), np.finfo(np.float32).tiny))
    return np.abs(got.astype(np.float64) - exact) / spacing


def _vector_math():
    _, _, sigmoid_, tanh_ = compiled._numba_kernels(np.float32)
    return sigmoid_, tanh_


def _run(fn, x):
    a = x.copy()
    fn(a, a.size, np.empty(a.size, np.float32), np.empty(a.size, np.int32))
    return a


WIDE = np.concatenate([np.linspace(-100, 100, 400001), np.linspace(-1, 1, 200001),
                       np.geomspace(1e-38, 1, 2000), -np.geomspace(1e-38, 1, 2000),
                       [0.0]]).astype(np.float32)


def test_float32_sigmoid_within_3_ulp():
    sigmoid_, _ = _vector_math()
    exact = 1.0 / (1.0 + np.exp(-WIDE.astype(np.float64)))
    err = _ulp_error(_run(sigmoid_, WIDE), exact)
    normal = exact > 1e-30  # below, the clamped exp leaves an absolute error under 1e-38
    assert err[normal].max() <= 3.0
    assert np.abs(_run(sigmoid_, WIDE) - exact).max() < 1e-7


def test_float32_tanh_within_2_ulp_and_keeps_tiny_inputs():
    _, tanh_ = _vector_math()
    exact = np.tanh(WIDE.astype(np.float64))
    got = _run(tanh_, WIDE)
    nonzero = exact != 0
    assert _ulp_error(got, exact)[nonzero].max() <= 2.0
    tiny = np.float32([1e-30, -1e-20, 1e-8])
    np.testing.assert_array_equal(_run(tanh_, tiny), tiny)  # relative precision kept


def test_float32_math_special_values():
    sigmoid_, tanh_ = _vector_math()
    x = np.float32([np.nan, np.inf, -np.inf, 0.0, 100.0, -100.0])
    s, t = _run(sigmoid_, x), _run(tanh_, x)
    assert np.isnan(s[0]) and np.isnan(t[0])  # a NaN is never turned into a number
    np.testing.assert_array_equal(s[1:], np.float32([1.0, 0.0, 0.5, 1.0, 0.0]))
    # where NumPy's exp(-x) overflows, its sigmoid is exactly 0, and so is ours: an error
    # of 1e-39 here became 0.6 behind weights of 1e38 and hid a diverged run's overflow
    far = np.float32([-88.8, -89.0, -95.0, -200.0])
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(_run(sigmoid_, far), 1 / (1 + np.exp(-far)))
    np.testing.assert_array_equal(t[1:], np.float32([1.0, -1.0, 0.0, 1.0, -1.0]))
