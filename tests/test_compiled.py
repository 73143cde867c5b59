"""The optional compiled LSTM loops (numba) against the NumPy loops and PyTorch.

With numba installed, small LSTM steps (B * H <= 1024, H <= 256) take the
whole-unroll compiled loop and larger ones the per-step kernels (NumPy's GEMM, then one
compiled call for the step's elementwise work), so the rest of the suite
already checks them against torch. Here the three paths are forced in turn
(``RNNKIT_COMPILED``, ``RNNKIT_COMPILED_MAX_UNITS=0`` for the per-step
kernels at small sizes) and each is checked
against torch over the options that reach the cell loops (layers, directions,
lengths, given states, float32), and against each other; the float32
``exp``/``tanh`` of the compiled path are checked ulp by ulp.
"""

from __future__ import annotations

import itertools
from contextlib import nullcontext

import numpy as np
import pytest
from test_recurrent_vs_torch import TOL32, TOL64, check_against_torch, make_data, make_layer

from rnnkit.cells import compiled
from rnnkit.gradcheck import rel_error
from rnnkit.recurrent import LSTM

numba = pytest.importorskip("numba")
pytest.importorskip("torch")

LSTM_CELL = ("LSTM", None)
PATHS = ["compiled", "steps", "steps-column-major", "threaded", "packed",
         "numpy"]  # NumPy's loop last


def use_path(monkeypatch, path):
    """Force one path: the whole compiled loop, the per-step kernels (with row-major or
    column-major GEMM outputs, whatever B and H are), the batch rows over two threads
    (from B = 2, an odd B included), the per-step GEMMs on a packed W_hh over two threads
    (from B = 2), or NumPy's loop."""
    if path in ("threaded", "packed") and compiled._numba_kernels().BLAS is None:
        pytest.skip("NumPy's BLAS is not its bundled OpenBLAS: no threads of rnnkit's own")
    monkeypatch.setenv("RNNKIT_THREADED", "2" if path in ("threaded", "packed") else "0")
    packed = path == "packed"
    monkeypatch.setattr(compiled, "_packed_fast", lambda: packed)
    monkeypatch.setattr(compiled, "_usable_cores", lambda: 8)  # whatever runs the tests
    for name in ("PACKED_MIN_B", "PACKED_MIN_H", "PACKED_MIN_T"):
        monkeypatch.setattr(compiled, name, 0)
    monkeypatch.setenv("RNNKIT_COMPILED", "0" if path == "numpy" else "1")
    if path.startswith("steps"):
        monkeypatch.setenv("RNNKIT_COMPILED_MAX_UNITS", "0")
    else:
        monkeypatch.delenv("RNNKIT_COMPILED_MAX_UNITS", raising=False)
    monkeypatch.setattr(compiled, "COLUMN_MAJOR_MIN_H", 0 if path == "steps-column-major"
                        else 10**9)
    for name in ("TRANSPOSED_MIN_B", "TRANSPOSED_MIN_T"):  # the forward GEMM on W_hh^T's
        monkeypatch.setattr(compiled, name, 0)  # copy at any size (the rule: a test below)
    # "compiled" is the whole loop with plain-loop products (its BLAS loop is "threaded"'s)
    monkeypatch.setattr(compiled, "BLAS_LOOP_MAX_B", 0 if path == "compiled" else 32)


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    """Run the test once on each path."""
    use_path(monkeypatch, request.param)
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


GRU_CELL = ("GRU", None)


@pytest.mark.parametrize("compiled_on", ["1", "0"])
@pytest.mark.parametrize("bias,lengths,dtype", [(True, None, np.float64),
                                                (False, [3, 5, 1], np.float64),
                                                (True, [7, 2, 5, 1], np.float32)])
def test_gru_compiled_step_and_numpy_loop_match_torch(monkeypatch, compiled_on, bias,
                                                      lengths, dtype):
    """The GRU's forward runs its elementwise step compiled (gru_forward_step) or in
    NumPy's loop: both give torch's outputs, states and gradients (b_hn absent, padded
    steps, float32 included)."""
    monkeypatch.setenv("RNNKIT_COMPILED", compiled_on)
    assert (compiled.gru_step_kernel(dtype) is not None) == (compiled_on == "1")
    rng = np.random.default_rng(11)
    B = 3 if lengths is None or len(lengths) == 3 else 4
    model = make_layer(GRU_CELL, 4, 6, num_layers=2, bias=bias, dtype=dtype, rng=rng)
    x, hx, d_output, d_hx = make_data(model, rng, 7, B, dtype=dtype)
    if dtype == np.float32:
        check_against_torch(model, x, hx, d_output, d_hx, lengths=lengths, tol=TOL32,
                            ref_dtype=np.float64)
    else:
        check_against_torch(model, x, hx, d_output, d_hx, lengths=lengths, tol=TOL64)


def test_gru_compiled_step_is_the_numpy_loop_to_round_off(monkeypatch):
    """Same cache (gates, h, W_hn h + b_hn) from both, at sizes where sigmoid and tanh
    saturate too (weights scaled up)."""
    from rnnkit.cells.gru import gru_forward

    rng = np.random.default_rng(5)
    T, B, H = 6, 5, 33
    gx = 4 * rng.standard_normal((T, B, 3 * H))
    w_hh = 3 * rng.standard_normal((3 * H, H))
    b_hn = rng.standard_normal(H)
    mask = rng.random((T, B, 1)) < 0.8
    h0 = rng.standard_normal((B, H))
    caches = []
    for on in ("1", "0"):
        monkeypatch.setenv("RNNKIT_COMPILED", on)
        c = gru_forward(gx.copy(), h0, w_hh, b_hn, mask)
        caches.append([a.copy() for a in (c.gates, c.h, c.hn)])
    for a, b in zip(*caches):  # (fused multiply-adds round differently; the scaled
        assert rel_error(a, b) < 1e-11  # weights amplify it over the steps)


def test_unbatched_and_partial_gradients_match_numpy_path(monkeypatch):
    """No d_output (only the final-state gradient) and unbatched input, on every path."""
    results = []
    for p in PATHS:
        use_path(monkeypatch, p)
        m = LSTM(3, 6, dtype=np.float64, rng=0)
        x = np.random.default_rng(1).standard_normal((9, 3))
        out, (h_n, c_n) = m(x)
        dx, (dh0, dc0) = m.backward(None, (np.ones_like(h_n), None))
        results.append([out, h_n, c_n, dx, dh0, dc0, *(m.grads[k] for k in sorted(m.grads))])
    for other in results[:-1]:
        for a, b in zip(other, results[-1]):
            assert rel_error(a, b) < 1e-13


def test_dispatch_rules(monkeypatch):
    monkeypatch.delenv("RNNKIT_COMPILED", raising=False)
    monkeypatch.delenv("RNNKIT_COMPILED_MAX_UNITS", raising=False)
    assert compiled.available()
    assert compiled.lstm_kernels(1, 128, np.float32) is not None
    assert compiled.lstm_kernels(2, 128, np.float64) is not None  # B*H = 256

    def kind(B, H):
        return compiled.lstm_kernels(B, H, np.float32)[0].__name__

    assert kind(1, 256) == kind(1, 16) == kind(64, 16) == kind(4, 256) == "forward"  # the
    # whole unroll with plain-loop products; with a BLAS call per step from 2 to 32 rows and
    # H from 16 to 128
    blas = "forward" if compiled._numba_kernels().BLAS is None else "forward_blas"
    assert kind(8, 128) == kind(32, 32) == kind(2, 16) == blas
    assert kind(2, 8) == kind(33, 16) == "forward"
    assert kind(1, 512) == "forward_steps"  # H above 256: W_hh^T streams from memory
    assert kind(16, 128) == kind(128, 1024) == "forward_steps"  # B*H above 1024
    assert compiled.lstm_kernels(1, 32, np.float16) is None
    assert compiled.column_major(32, 256) and compiled.column_major(64, 1024)
    assert not (compiled.column_major(1, 512) or compiled.column_major(32, 128)
                or compiled.column_major(128, 1024))
    monkeypatch.setenv("RNNKIT_COMPILED_MAX_UNITS", "2048")
    assert kind(16, 128) == blas
    assert kind(8, 256) == "forward"
    assert kind(4, 512) == "forward_steps"
    monkeypatch.setenv("RNNKIT_COMPILED", "0")
    assert compiled.lstm_kernels(1, 8, np.float32) is None
    for off in ("false", "OFF", " no "):
        monkeypatch.setenv("RNNKIT_COMPILED", off)
        assert compiled.lstm_kernels(1, 8, np.float32) is None
    monkeypatch.setenv("RNNKIT_COMPILED", "maybe")
    with pytest.raises(ValueError, match="RNNKIT_COMPILED must be 0 or 1"):
        compiled.lstm_kernels(1, 8, np.float32)
    monkeypatch.setenv("RNNKIT_COMPILED", "1")
    monkeypatch.setenv("RNNKIT_COMPILED_MAX_UNITS", "many")
    with pytest.raises(ValueError, match="RNNKIT_COMPILED_MAX_UNITS must be an integer >= 0"):
        compiled.lstm_kernels(1, 8, np.float32)
    monkeypatch.setenv("RNNKIT_COMPILED_MAX_UNITS", "-5")
    with pytest.raises(ValueError, match="got '-5'"):
        compiled.lstm_kernels(1, 8, np.float32)


def test_compiled_path_is_taken(monkeypatch):
    """The loops really run: a broken compiled kernel must change the result."""
    monkeypatch.delenv("RNNKIT_COMPILED_MAX_UNITS", raising=False)
    monkeypatch.setenv("RNNKIT_COMPILED", "1")
    calls = []
    real = compiled.lstm_kernels

    def spy(B, H, dtype, threads=None, T=None):
        k = real(B, H, dtype, threads, T)
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
    from rnnkit.cells import _compiled_kernels as k

    return k.sigmoid_kernel, k.tanh_kernel


def _run(fn, x):
    a = x.copy()
    fn(a)
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


def test_sigmoid_where_exp_is_near_overflow():
    """-88.72 < x < -88: exp(-x) is finite but huge; the sigmoid is a subnormal there."""
    sigmoid_, _ = _vector_math()
    x = np.linspace(-88.72, -87.5, 1001).astype(np.float32)
    with np.errstate(over="ignore"):
        exact = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(_run(sigmoid_, x), exact, rtol=1e-5, atol=0)


def _backward_all_paths(monkeypatch, dtype, c0, dc_n, mask=None, d_output=None):
    from rnnkit.cells import lstm_backward, lstm_forward

    rng = np.random.default_rng(0)
    T, B, H = 3, 2, 4
    w_hh = rng.standard_normal((4 * H, H)).astype(dtype)
    gx0 = rng.standard_normal((T, B, 4 * H)).astype(dtype)
    gx0[..., H:2 * H] = 50.0  # forget gate saturated: f(1-f) = 0 in float32
    out = []
    for p in PATHS:
        use_path(monkeypatch, p)
        th = compiled.lstm_threads(T, B, H, dtype)  # None but on the threaded path
        cache = lstm_forward(gx0.copy(), np.zeros((B, H), dtype), np.full((B, H), c0, dtype),
                             w_hh, mask, threads=th)
        with np.errstate(all="ignore"):
            out.append(lstm_backward(d_output, None, np.full((B, H), dc_n, dtype), cache, w_hh,
                                     threads=th))
    return out


def test_backward_overflows_only_where_the_numpy_loop_does(monkeypatch):
    """dc * (f(1-f) * c_prev), NumPy's order: (dc * c_prev) would overflow to inf * 0 = NaN."""
    for dtype, c0, dc_n in ((np.float32, 1e30, 1e9), (np.float32, 3e38, 2.0),
                            (np.float64, 1e300, 1e10)):
        *compiled_paths, ref = _backward_all_paths(monkeypatch, dtype, c0, dc_n)
        for comp in compiled_paths:
            for a, b in zip(comp, ref):
                np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b))


def test_padded_steps_carry_d_output_on_every_path(monkeypatch):
    """At a padded step the state is copied, so its gradient flows to the step before."""
    mask = np.array([[True, True], [True, False], [False, False]])[..., None]
    d_output = np.random.default_rng(1).standard_normal((3, 2, 4))
    *compiled_paths, ref = _backward_all_paths(monkeypatch, np.float64, 0.5, 0.1, mask,
                                               d_output)
    for comp in compiled_paths:
        for a, b in zip(comp, ref):
            assert rel_error(a, b) < 1e-13


def test_compiled_loops_load_from_numbas_disk_cache(tmp_path):
    """A second process finds the loops in the cache instead of compiling them again."""
    import subprocess
    import sys

    script = (
        "import os, numpy as np, rnnkit\n"
        "from rnnkit.cells import _compiled_kernels as k\n"
        "for units in ('256', '0'):  # the whole loop, then the per-step kernels\n"
        "    os.environ['RNNKIT_COMPILED_MAX_UNITS'] = units\n"
        "    m = rnnkit.LSTM(3, 4, rng=0)\n"
        "    out, _ = m(np.ones((5, 2, 3), np.float32))\n"
        "    m.backward(np.ones_like(out))\n"
        "print(*(sum(f.stats.cache_hits.values()) for f in (k.lstm_forward_loop,"
        " k.lstm_backward_loop, k.lstm_forward_step, k.lstm_backward_step)))\n")
    env = {**__import__("os").environ, "NUMBA_CACHE_DIR": str(tmp_path), "RNNKIT_COMPILED": "1"}
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, check=True).stdout.split() for _ in range(2)]
    assert runs[0] == ["0"] * 4  # compiled and saved
    assert runs[1] == ["1"] * 4, runs  # all loaded


def test_without_numba_the_numpy_loop_runs(monkeypatch):
    """numba missing: no compiled loop, and the failed import is not retried every step."""
    import sys

    monkeypatch.setattr(compiled, "_import_failed", [])
    import rnnkit.cells

    monkeypatch.delitem(sys.modules, "rnnkit.cells._compiled_kernels", raising=False)
    monkeypatch.delattr(rnnkit.cells, "_compiled_kernels", raising=False)
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    monkeypatch.setenv("RNNKIT_COMPILED", "1")
    assert compiled.lstm_kernels(1, 8, np.float32) is None
    assert not compiled.available() and len(compiled._import_failed) == 1
    m = LSTM(2, 4, dtype=np.float64, rng=0)
    out, _ = m(np.ones((3, 2, 2)))
    m.backward(np.ones_like(out))
    assert len(compiled._import_failed) == 1


@pytest.mark.parametrize("B,H", [(6, 6), (9, 8), (4, 13)])
def test_row_blocks_and_remainders_match_numpy_path(monkeypatch, B, H):
    """Row blocks: the whole loop's products take rows four at a time (full blocks, leftover
    rows and columns); H = 13 leaves a remainder after every vectorized loop."""
    from rnnkit.cells import lstm_backward, lstm_forward

    rng = np.random.default_rng(B * H)
    T = 4
    w_hh = rng.standard_normal((4 * H, H))
    gx0 = rng.standard_normal((T, B, 4 * H))
    mask = (np.arange(T)[:, None] < rng.integers(1, T + 1, B))[..., None]
    d_output = rng.standard_normal((T, B, H)) * mask
    h0 = rng.standard_normal((B, H))
    results = []
    for p in PATHS:
        use_path(monkeypatch, p)
        th = compiled.lstm_threads(T, B, H, np.float64)
        cache = lstm_forward(gx0.copy(), h0, np.ones((B, H)), w_hh, mask, threads=th)
        outputs = [cache.h.copy(), cache.c.copy()]
        results.append(outputs + list(lstm_backward(d_output, None, None, cache, w_hh,
                                                    threads=th)))
    for other in results[:-1]:
        for a, b in zip(other, results[-1]):
            assert rel_error(a, b) < 1e-12


def test_a_numba_that_fails_to_load_leaves_the_numpy_loop(monkeypatch):
    """Any failure loading the kernels (not only a missing numba) warns once and falls back."""
    import sys
    import types

    class Broken(types.ModuleType):
        def __getattr__(self, name):
            raise RuntimeError("cannot cache function: no locator available")

    monkeypatch.setattr(compiled, "_import_failed", [])
    import rnnkit.cells

    monkeypatch.delitem(sys.modules, "rnnkit.cells._compiled_kernels", raising=False)
    monkeypatch.delattr(rnnkit.cells, "_compiled_kernels", raising=False)
    monkeypatch.setitem(sys.modules, "numba", Broken("numba"))
    monkeypatch.setenv("RNNKIT_COMPILED", "1")
    with pytest.warns(RuntimeWarning, match="no locator available"):
        assert compiled.lstm_kernels(1, 8, np.float32) is None
    assert compiled.lstm_kernels(1, 8, np.float32) is None  # no second warning, no retry
    m = LSTM(2, 4, dtype=np.float64, rng=0)
    out, _ = m(np.ones((3, 2, 2)))
    assert np.isfinite(out).all()


def test_a_ctrl_c_during_the_first_import_leaves_the_numpy_loop(monkeypatch):
    """A Ctrl-C that cuts the kernels' first import short is raised; numba may be
    half-imported, so the NumPy loops run from then on (one warning says why) instead
    of every later pass failing (adversarial review: "module 'numba' has no attribute
    'core'")."""
    import sys
    import types

    class Interrupted(types.ModuleType):
        def __getattr__(self, name):
            raise KeyboardInterrupt

    monkeypatch.setattr(compiled, "_import_failed", [])
    import rnnkit.cells

    monkeypatch.delitem(sys.modules, "rnnkit.cells._compiled_kernels", raising=False)
    monkeypatch.delattr(rnnkit.cells, "_compiled_kernels", raising=False)
    monkeypatch.setitem(sys.modules, "numba", Interrupted("numba"))
    monkeypatch.setenv("RNNKIT_COMPILED", "1")
    with pytest.raises(KeyboardInterrupt):
        compiled.lstm_kernels(1, 8, np.float32)
    with pytest.warns(RuntimeWarning, match="Ctrl-C cut the first import"):
        assert compiled.lstm_kernels(1, 8, np.float32) is None
    assert compiled.lstm_kernels(1, 8, np.float32) is None  # said once
    m = LSTM(2, 4, dtype=np.float64, rng=0)
    out, _ = m(np.ones((3, 2, 2)))
    assert np.isfinite(out).all()


def test_without_a_cache_folder_the_loops_compile_uncached(monkeypatch):
    from rnnkit.cells import _compiled_kernels as k

    calls = []

    def fake_njit(cache, **options):
        calls.append(cache)
        if cache:
            raise RuntimeError("cannot cache function 'f': no locator available")
        return lambda fn: fn

    monkeypatch.setattr(k, "njit", fake_njit)

    def f():
        return 1

    assert k._jit(f) is f and calls == [True, False]


def test_numba_disable_jit_runs_the_numpy_loop():
    """numba's debugging switch: the float32 math exists only compiled, so NumPy's loop runs."""
    import os
    import subprocess
    import sys

    script = ("import numpy as np, rnnkit\n"
              "from rnnkit.cells import compiled\n"
              "out, _ = rnnkit.LSTM(3, 4, rng=0)(np.ones((5, 2, 3), np.float32))\n"
              "print(compiled.available(), bool(np.isfinite(out).all()))\n")
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "RNNKIT_COMPILED": "1"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, check=True)
    assert result.stdout.split() == ["False", "True"], result.stderr


@pytest.mark.parametrize("case", ["fortran", "transposed", "bias_row"])
def test_direct_calls_with_any_layout_agree_on_every_path(monkeypatch, case):
    """lstm_forward is public: a gx that is not C-contiguous, a (1, 4H) bias."""
    from rnnkit.cells import lstm_forward

    rng = np.random.default_rng(0)
    T, B, H = 3, 2, 4
    w = rng.standard_normal((4 * H, H))
    gx = rng.standard_normal((T, B, 4 * H))
    bias = None
    if case == "fortran":
        gx = np.asfortranarray(gx)
    elif case == "transposed":
        gx = np.ascontiguousarray(gx.transpose(1, 0, 2)).transpose(1, 0, 2)
    else:
        bias = rng.standard_normal((1, 4 * H))
    results = []
    for p in PATHS:
        use_path(monkeypatch, p)
        results.append(lstm_forward(gx.copy(order="K"), np.zeros((B, H)), np.zeros((B, H)), w,
                                    bias=bias, threads=compiled.lstm_threads(T, B, H, w.dtype)).h)
    for other in results[:-1]:
        assert rel_error(other, results[-1]) < 1e-13


@pytest.mark.parametrize("proj_size", [0, 2])
def test_a_nan_in_the_padding_never_reaches_the_gradients(monkeypatch, proj_size):
    """Padded steps are never read (PyTorch's packed sequences): even a NaN in their
    pre-activations (finite padding of +-3e38 overflows the input projection to inf - inf)
    leaves the states and every gradient finite, and dgates zero there."""
    from rnnkit.cells import lstm_backward, lstm_forward

    rng = np.random.default_rng(0)
    T, B, H = 4, 3, 5
    w_hh = rng.standard_normal((4 * H, proj_size or H))
    w_hr = rng.standard_normal((proj_size, H)) if proj_size else None
    gx0 = rng.standard_normal((T, B, 4 * H))
    mask = np.ones((T, B, 1), bool)
    mask[2:, 1] = False
    gx0[2:, 1] = np.nan
    d_output = rng.standard_normal((T, B, proj_size or H)) * mask
    for p in ["numpy"] if proj_size else PATHS:  # a projection always takes the NumPy loop
        use_path(monkeypatch, p)
        th = None if proj_size else compiled.lstm_threads(T, B, H, np.float64)
        cache = lstm_forward(gx0.copy(), np.zeros((B, proj_size or H)), np.zeros((B, H)), w_hh,
                             mask, w_hr, threads=th)
        assert np.isfinite(cache.h).all() and np.isfinite(cache.c).all()
        with np.errstate(invalid="ignore"):
            dgates, dh0, dc0, *dw_hr = lstm_backward(d_output, None, None, cache, w_hh, w_hr,
                                                     threads=th)
        assert np.isfinite(dgates).all() and not dgates[2:, 1].any(), p
        assert np.isfinite(dh0).all() and np.isfinite(dc0).all(), p
        assert all(np.isfinite(g).all() for g in dw_hr), p


@pytest.mark.parametrize("shape", [(1, 1), (8, 8), (13, 5), (3, 20), (64, 17)])
def test_transpose_into_copies_every_element(shape):
    """The 8 x 8 tiles, with partial tiles on both edges."""
    from rnnkit.cells import _compiled_kernels as k

    src = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    dst = np.full(shape[::-1], np.nan, np.float32)
    k.transpose_into(src, dst)
    np.testing.assert_array_equal(dst, src.T)


def test_a_bias_that_would_broadcast_across_rows_is_refused():
    """(4H, 1) has the bias's size, but NumPy would add it across the batch rows."""
    from rnnkit.cells import lstm_forward

    T, B, H = 2, 8, 2
    gx = np.zeros((T, B, 4 * H))
    with pytest.raises(ValueError, match=r"bias must have shape \(8,\).*got \(8, 1\)"):
        lstm_forward(gx, np.zeros((B, H)), np.zeros((B, H)), np.zeros((4 * H, H)),
                     bias=np.ones((4 * H, 1)))


def test_tanh_keeps_the_sign_of_zero():
    _, tanh_ = _vector_math()
    out = _run(tanh_, np.float32([-0.0, 0.0]))
    assert np.signbit(out[0]) and not np.signbit(out[1])


def test_a_bad_setting_seen_at_backward_keeps_the_forward_pass(monkeypatch):
    monkeypatch.setenv("RNNKIT_COMPILED", "1")
    m = LSTM(2, 3, rng=0)
    out, _ = m(np.ones((4, 2, 2), np.float32))
    monkeypatch.setenv("RNNKIT_COMPILED", "maybe")
    with pytest.raises(ValueError, match="RNNKIT_COMPILED must be 0 or 1"):
        m.backward(np.ones_like(out))
    monkeypatch.setenv("RNNKIT_COMPILED", "1")
    dx, _ = m.backward(np.ones_like(out))  # the cache was kept
    assert dx.shape == (4, 2, 2)


def _blas():
    blas = compiled._numba_kernels().BLAS
    if blas is None:
        pytest.skip("NumPy's BLAS is not its bundled OpenBLAS: no threaded path")
    return blas


def test_threaded_dispatch_rules(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    _blas()
    monkeypatch.delenv("RNNKIT_THREADED", raising=False)
    monkeypatch.setenv("RNNKIT_COMPILED", "1")
    monkeypatch.setattr(compiled, "_packed_fast", lambda: False)  # the batch split's rules
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        assert compiled.lstm_threads(50, 128, 32, np.float32) is None  # outside a region
        with compiled.parallel() as region:
            assert region.n == 2  # OpenBLAS's thread count on entry
            assert compiled.lstm_threads(50, 64, 32, np.float32) is region
            assert compiled.lstm_threads(50, 128, 256, np.float64) is region
            assert compiled.lstm_threads(50, 32, 32, np.float32) is None  # 16 rows a thread
            # from 8 rows a thread where each thread's GEMMs take OpenBLAS's small-matrix
            # kernels, outside the whole unroll's domain (B * H <= 1024), up to H = 128
            monkeypatch.setattr(compiled, "SMALL_GEMM_CORES", (_blas().corename,))
            assert compiled.lstm_threads(50, 32, 128, np.float32) is region
            assert compiled.lstm_threads(50, 16, 128, np.float64) is region
            assert compiled.lstm_threads(50, 14, 128, np.float32) is None  # 7 rows a thread
            assert compiled.lstm_threads(50, 16, 64, np.float32) is None  # the whole unroll
            assert compiled.lstm_threads(50, 32, 256, np.float32) is None
            monkeypatch.setattr(compiled, "SMALL_GEMM_CORES", ())  # no small-matrix kernels
            assert compiled.lstm_threads(50, 32, 128, np.float32) is None
            assert compiled.lstm_threads(50, 128, 512, np.float32) is None  # GEMM-bound
            monkeypatch.setattr(compiled, "_packed_fast", lambda: True)  # on packed W_hh
            assert compiled.lstm_threads(50, 128, 512, np.float32) is region
            assert compiled.lstm_threads(50, 32, 256, np.float32) is region
            monkeypatch.setattr(compiled, "_packed_fast", lambda: False)
            assert compiled.lstm_threads(10, 64, 32, np.float32) is region
            assert compiled.lstm_threads(9, 128, 32, np.float32) is None  # too few steps
            assert compiled.lstm_threads(50, 128, 32, np.float16) is None
            monkeypatch.setenv("RNNKIT_COMPILED", "0")
            assert compiled.lstm_threads(50, 128, 32, np.float32) is None
            monkeypatch.setenv("RNNKIT_COMPILED", "1")
            for off in ("0", "off", "No"):
                monkeypatch.setenv("RNNKIT_THREADED", off)
                assert compiled.lstm_threads(50, 128, 32, np.float32) is None
            monkeypatch.setenv("RNNKIT_THREADED", "1")
            assert compiled.lstm_threads(50, 128, 32, np.float32) is region
        monkeypatch.setenv("RNNKIT_THREADED", "3")  # forced, region or not
        assert compiled.lstm_threads(50, 3, 1024, np.float32).n == 3
        assert compiled.lstm_threads(50, 2, 8, np.float32) is None  # fewer rows than threads
        for bad in ("many", "-2"):
            monkeypatch.setenv("RNNKIT_THREADED", bad)
            with pytest.raises(ValueError, match="RNNKIT_THREADED must be 0 or 1"):
                compiled.lstm_threads(50, 128, 32, np.float32)
            with pytest.raises(ValueError, match="thread count from 2 to 256"):
                compiled.check_settings()
    monkeypatch.delenv("RNNKIT_THREADED")
    with threadpoolctl.threadpool_limits(1, user_api="blas"), compiled.parallel() as region:
        assert region is None  # threads stay matched with the user's setting
        assert compiled.lstm_threads(50, 128, 32, np.float32) is None


def test_parallel_region_sets_and_puts_back_openblas_threads():
    import threading

    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = _blas()
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        with compiled.parallel() as outer:
            assert blas.get_num_threads() == 1 and compiled.current_threads() is outer
            with compiled.parallel() as inner:  # nested: the enclosing region's count
                assert inner.n == 2 and blas.get_num_threads() == 1
            assert compiled.current_threads() is outer
            seen = []
            t = threading.Thread(target=lambda: seen.append(compiled.current_threads()))
            t.start()
            t.join()
            assert seen == [None]  # a region belongs to the thread that opened it
            with compiled.parallel(1) as one:
                assert one is None and compiled.current_threads() is None
            assert compiled.current_threads() is outer
        assert blas.get_num_threads() == 2 and compiled.current_threads() is None
        with pytest.raises(KeyError), compiled.parallel(3) as three:
            assert three.n == 3
            raise KeyError("inside")
        assert blas.get_num_threads() == 2 and compiled.current_threads() is None
    for bad in (1.5, True, "2"):
        with pytest.raises(TypeError, match="num_threads must be an integer, got"), \
                compiled.parallel(bad):
            pass
    for bad in (0, -1, 257):
        with pytest.raises(ValueError, match="num_threads must be between 1 and 256"), \
                compiled.parallel(bad):
            pass


def test_threaded_setting_values(monkeypatch):
    monkeypatch.setenv("RNNKIT_COMPILED", "0")  # checked even where the loops are off
    for value, expected in (("01", None), ("00", 0), (" 3 ", 3), ("256", 256), ("on", None)):
        monkeypatch.setenv("RNNKIT_THREADED", value)
        assert compiled.threads_setting() == expected
        compiled.check_settings()
    for bad in ("\u00b2", "\u0663", "1e3", "257", "99999999999999999999", "-3"):
        monkeypatch.setenv("RNNKIT_THREADED", bad)
        with pytest.raises(ValueError, match="RNNKIT_THREADED must be 0 or 1"):
            compiled.check_settings()


def test_parallel_is_a_no_op_when_threads_are_off(monkeypatch):
    """RNNKIT_THREADED=0 and parallel(1) leave OpenBLAS alone, and SequenceModel too."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from rnnkit.cells import _compiled_kernels as k
    from rnnkit.models import SequenceModel

    blas = _blas()
    calls = []
    real = k.lstm_forward_rows
    # (a call with no rows, the caller's load of the loop, is not a part)
    monkeypatch.setattr(k, "lstm_forward_rows",
                        lambda *a: (a[0].shape[1] and calls.append(1)) or real(*a))
    x = np.zeros((10, 128, 4), np.float32)  # from THREADED_MIN_T steps
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        monkeypatch.setenv("RNNKIT_THREADED", "0")
        with compiled.parallel() as region:
            assert region is None and blas.get_num_threads() == 2
        monkeypatch.delenv("RNNKIT_THREADED")
        model = SequenceModel(4, 16, 2, rng=0)
        with compiled.parallel(1) as region:
            assert region is None and blas.get_num_threads() == 2
            model.forward(x)  # no region of its own inside one of one thread
        assert calls == []
        model.forward(x)
        assert calls == [1, 1]


def test_threads_run_parts_here_once_no_thread_can_start(monkeypatch):
    """After interpreter shutdown has begun, the pool takes no work: the caller runs it."""
    class Closed:
        def submit(self, *args):
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    monkeypatch.setattr(compiled, "_pool", lambda workers: Closed())
    seen = []
    compiled.Threads(None, 3).run(lambda lo, hi: seen.append((lo, hi)), 9)
    assert seen == [(0, 3), (3, 6), (6, 9)]


def test_one_pool_grown_when_more_threads_are_asked_for():
    small = compiled._pool(1)
    assert compiled._pool(1) is small
    big = compiled._pool(3)
    assert big is not small and big._max_workers >= 3
    assert compiled._pool(2) is big


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_child_forked_inside_a_region_starts_outside_it():
    import os

    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = _blas()
    with threadpoolctl.threadpool_limits(2, user_api="blas"), compiled.parallel(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, then leave without running the parent's cleanup
            state = (blas.get_num_threads(), list(compiled._blas_saved),
                     compiled.current_threads() is None)
            os.write(write, repr(state).encode())
            os._exit(0)
        os.close(write)
        report = os.read(read, 1000).decode()
        os.waitpid(pid, 0)
        assert blas.get_num_threads() == 1  # the parent is still inside
    assert report == "(2, [], True)"


def test_threads_put_back_openblas_count_even_after_an_error():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = _blas()
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        outer, inner = compiled.Threads(blas, 2), compiled.Threads(blas, 2)
        with outer:
            assert blas.get_num_threads() == 1
            with inner:  # a second layer (or thread) inside: it must not save our 1
                assert blas.get_num_threads() == 1
            assert blas.get_num_threads() == 1
        assert blas.get_num_threads() == 2

        def part(lo, hi):
            if lo > 0:
                raise RuntimeError(f"part {lo}:{hi} failed")

        with pytest.raises(RuntimeError, match="part 5:10 failed"), outer:
            outer.run(part, 10)
        assert blas.get_num_threads() == 2


def test_threaded_path_is_taken_on_both_threads(monkeypatch):
    """Each half of the batch runs in its own thread; the result is the NumPy loop's."""
    import threading

    from rnnkit.cells import _compiled_kernels as k

    _blas()
    seen = []
    for name in ("lstm_forward_rows", "lstm_backward_rows"):
        real = getattr(k, name)

        def spy(*args, real=real, name=name):
            seen.append((name, args[2].shape[-2] if name == "lstm_forward_rows"
                         else args[1].shape[0], threading.current_thread().name))
            return real(*args)
        monkeypatch.setattr(k, name, spy)
    results = []
    for p in ("threaded", "numpy"):
        use_path(monkeypatch, p)
        m = LSTM(3, 5, rng=0)
        x = np.random.default_rng(1).standard_normal((4, 7, 3)).astype(np.float32)
        out, (h_n, c_n) = m(x)
        dx, (dh0, dc0) = m.backward(np.cos(out))
        results.append([out, h_n, c_n, dx, dh0, dc0, *(m.grads[k] for k in sorted(m.grads))])
    seen = [s for s in seen if s[1]]  # (the caller's load of each loop has no rows)
    assert sorted((n, rows) for n, rows, _ in seen) == [
        ("lstm_backward_rows", 3), ("lstm_backward_rows", 4),
        ("lstm_forward_rows", 3), ("lstm_forward_rows", 4)]
    assert {t.startswith("rnnkit") for _, _, t in seen} == {True, False}
    for a, b in zip(*results):
        assert rel_error(a, b) < 1e-5


@pytest.mark.parametrize("path", ["steps", "threaded"])
@pytest.mark.parametrize("B,T,copied", [(8, 8, True), (7, 8, False), (8, 7, False)])
def test_forward_gemm_on_a_transposed_copy_or_on_w_hh_alike(monkeypatch, path, B, T, copied):
    """From TRANSPOSED_MIN_B rows and TRANSPOSED_MIN_T steps the per-step forward GEMM
    reads a contiguous copy of W_hh^T, below it W_hh itself: both give the NumPy loop's
    numbers."""
    from rnnkit.cells import _compiled_kernels as k

    copies = []
    real = k.transpose_into
    monkeypatch.setattr(k, "transpose_into", lambda w, out: copies.append(w.shape) or real(w, out))
    results = []
    for p in (path, "numpy"):
        use_path(monkeypatch, p)
        monkeypatch.setattr(compiled, "TRANSPOSED_MIN_B", 8)
        monkeypatch.setattr(compiled, "TRANSPOSED_MIN_T", 8)
        m = LSTM(3, 6, dtype=np.float64, rng=0)
        x = np.random.default_rng(1).standard_normal((T, B, 3))
        out, (h_n, c_n) = m(x, lengths=[T] * (B - 1) + [T - 2])
        dx, _ = m.backward(np.sin(out))
        results.append([out, h_n, c_n, dx, *(m.grads[k] for k in sorted(m.grads))])
    assert copies == ([(24, 6)] if copied else [])
    for a, b in zip(*results):
        assert rel_error(a, b) < 1e-13


def test_threaded_layer_without_bias_matches_numpy(monkeypatch):
    results = []
    for p in ("threaded", "numpy"):
        use_path(monkeypatch, p)
        m = LSTM(3, 6, bias=False, num_layers=2, dtype=np.float64, rng=0)
        x = np.random.default_rng(1).standard_normal((5, 9, 3))
        out, _ = m(x)
        dx, _ = m.backward(np.sin(out))
        results.append([out, dx, *(m.grads[k] for k in sorted(m.grads))])
    assert len(results[0]) == 2 + 4  # two layers of W_ih, W_hh
    for a, b in zip(*results):
        assert rel_error(a, b) < 1e-13


def _split_sizes(monkeypatch):
    """The list that each Threads.run call appends its size to, from now on."""
    calls = []
    real = compiled.Threads.run

    def spy(self, fn, size):
        calls.append(size)
        return real(self, fn, size)
    monkeypatch.setattr(compiled.Threads, "run", spy)
    return calls


def test_linear_layer_splits_its_gemms_in_a_region(monkeypatch):
    from rnnkit.layers import Linear

    _blas()
    monkeypatch.delenv("RNNKIT_THREADED", raising=False)
    calls = _split_sizes(monkeypatch)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 128, 64))
    dy = rng.standard_normal((50, 128, 40))
    results = []
    for region in (False, True):
        layer = Linear(64, 40, dtype=np.float64, rng=0)
        with compiled.parallel(2) if region else nullcontext():
            y = layer.forward(x)
            dx = layer.backward(dy)
        results.append([y, dx, layer.grads["weight"], layer.grads["bias"]])
    assert calls == [50 * 128, 40, 50 * 128]  # y's rows, W's rows, dx's rows
    for a, b in zip(*results):
        assert a.shape == b.shape
        assert rel_error(a, b) < 1e-13
    small = Linear(4, 3, rng=0)
    with compiled.parallel(2):
        small.forward(np.ones((5, 4), np.float32))  # too small to hand off
    assert len(calls) == 3


def test_threads_matmul_keeps_small_products_on_the_caller(monkeypatch):
    """Below SPLIT_MIN_MNK multiply-adds a hand-off costs more than it saves: no split;
    above, the rows are split. The same numbers either way."""
    calls = _split_sizes(monkeypatch)
    threads = compiled.Threads(None, 2)
    rng = np.random.default_rng(0)
    b = rng.standard_normal((32, 2048))
    small = rng.standard_normal((50, 32))  # an input projection at B = 1, T = 50, H = 512
    assert 50 * 32 * 2048 < compiled.SPLIT_MIN_MNK
    np.testing.assert_array_equal(threads.matmul(small, b), small @ b)
    assert calls == []
    big = rng.standard_normal((compiled.SPLIT_MIN_MNK // (32 * 2048) + 1, 32))
    np.testing.assert_allclose(threads.matmul(big, b), big @ b, rtol=1e-12)
    assert calls == [big.shape[0]]


@pytest.mark.parametrize("task,bidirectional", [("many_to_many", False),
                                                ("many_to_one", True)])
def test_sequence_model_threads_its_lstm_by_itself(monkeypatch, task, bidirectional):
    """SequenceModel opens a region where its LSTM qualifies; same numbers as one thread."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from rnnkit.cells import _compiled_kernels as k
    from rnnkit.models import SequenceModel

    _blas()
    monkeypatch.setenv("RNNKIT_COMPILED", "1")
    rows = []
    real = k.lstm_forward_rows

    def spy(*args):
        if args[2].shape[-2]:  # (not the caller's load of the loop, with no rows)
            rows.append(args[2].shape[-2])
        return real(*args)
    monkeypatch.setattr(k, "lstm_forward_rows", spy)
    x = np.random.default_rng(0).standard_normal((10, 64, 5)).astype(np.float32)
    results = []
    for setting in ("0", "1"):
        monkeypatch.setenv("RNNKIT_THREADED", setting)
        model = SequenceModel(5, 16, 3, task=task, bidirectional=bidirectional, rng=0)
        with threadpoolctl.threadpool_limits(2, user_api="blas"):
            y, _ = model.forward(x)
            d = model.backward(np.cos(y))
        results.append([y, d, *(model.grads[n] for n in sorted(model.grads))])
    assert rows == [32, 32] * (2 if bidirectional else 1)  # only with "1"
    for a, b in zip(*results):
        assert rel_error(a, b) < 1e-5


def test_threaded_backward_takes_fortran_ordered_final_state_gradients(monkeypatch):
    """dh_n, dc_n in any memory order (``(W @ G).T`` is Fortran-ordered): the same gradients."""
    from rnnkit.cells import lstm_backward, lstm_forward

    rng = np.random.default_rng(0)
    T, B, H = 3, 6, 4
    w_hh = rng.standard_normal((4 * H, H))
    gx0 = rng.standard_normal((T, B, 4 * H))
    dh_n = np.asfortranarray(rng.standard_normal((B, H)))
    dc_n = np.asfortranarray(rng.standard_normal((B, H)))
    results = []
    for p in ("threaded", "numpy"):
        use_path(monkeypatch, p)
        th = compiled.lstm_threads(T, B, H, np.float64)
        assert (th is not None) == (p == "threaded")
        cache = lstm_forward(gx0.copy(), np.zeros((B, H)), np.zeros((B, H)), w_hh, threads=th)
        results.append(lstm_backward(None, dh_n, dc_n, cache, w_hh, threads=th))
    for a, b in zip(*results):
        assert rel_error(a, b) < 1e-13


def test_gemm_weight_is_a_contiguous_transpose_from_its_thresholds(monkeypatch):
    """The forward GEMM's W^T (LSTM, GRU and RNN): a C-contiguous copy equal to ``w.T``
    from TRANSPOSED_MIN_B rows and TRANSPOSED_MIN_T steps, else ``w.T`` itself."""
    monkeypatch.delenv("RNNKIT_COMPILED", raising=False)
    w = np.random.default_rng(0).standard_normal((12, 4)).astype(np.float32)
    B, T = compiled.TRANSPOSED_MIN_B, compiled.TRANSPOSED_MIN_T
    copy = compiled.gemm_weight(w, B, T)
    assert copy.flags.c_contiguous and not np.shares_memory(copy, w)
    np.testing.assert_array_equal(copy, w.T)
    for b, t, ww in ((B - 1, T, w), (B, T - 1, w), (B, T, w.astype(np.float16))):
        view = compiled.gemm_weight(ww, b, t)
        assert np.shares_memory(view, ww) and view.shape == (4, 12)
    monkeypatch.setenv("RNNKIT_COMPILED", "0")
    assert np.shares_memory(compiled.gemm_weight(w, B, T), w)


@pytest.mark.parametrize("T", [2, 3, 4])
def test_threaded_path_at_one_hidden_unit_and_few_steps(monkeypatch, T):
    """H = 1 below TRANSPOSED_MIN_T: W_hh.T (1, 4) is a view that NumPy flags C-contiguous;
    the BLAS loop must still read it as W_hh (it once passed it as W_hh^T with a row
    stride of 1, which OpenBLAS refused, leaving the GEMM's output uninitialised)."""
    results = []
    for p in ("threaded", "numpy"):
        use_path(monkeypatch, p)
        monkeypatch.setattr(compiled, "TRANSPOSED_MIN_T", 4)
        m = LSTM(3, 1, dtype=np.float64, rng=0)
        x = np.random.default_rng(1).standard_normal((T, 6, 3))
        out, (h_n, c_n) = m(x)
        dx, _ = m.backward(np.sin(out))
        results.append([out, h_n, c_n, dx, *(m.grads[k] for k in sorted(m.grads))])
    for a, b in zip(*results):
        assert rel_error(a, b) < 1e-13


@pytest.mark.parametrize("path", ["compiled", "blas-loop", "threaded", "steps",
                                  "steps-column-major", "matrix-vector", "packed"])
@pytest.mark.parametrize("layer_dtype,weight_dtype", [(np.float32, np.float64),
                                                      (np.float64, np.float32),
                                                      (np.float32, np.float16)])
def test_weights_of_another_dtype_are_read_as_the_layers(monkeypatch, path, layer_dtype,
                                                         weight_dtype):
    """A weight array assigned in another dtype (``params[k] = w.astype(...)``): the loops
    that hand W_hh to BLAS by pointer convert it first, as NumPy's matmul does, and float16
    (which numba's loops cannot read) is read in the layer's dtype."""
    results = []
    for p in (path, "numpy"):
        use_path(monkeypatch, {"blas-loop": "compiled", "matrix-vector": "steps"}.get(p, p))
        if p == "blas-loop":  # the compiled unroll with BLAS per step (8 rows, H = 16)
            monkeypatch.setattr(compiled, "BLAS_LOOP_MAX_B", 32)
        if p == "matrix-vector":  # one GEMV a row
            monkeypatch.setattr(compiled, "MATRIX_VECTOR_MAX_B", 8)
            monkeypatch.setattr(compiled, "MATRIX_VECTOR_MIN_H", 16)
        m = LSTM(4, 16, dtype=layer_dtype, rng=0)
        m.params["weight_hh_l0"] = m.params["weight_hh_l0"].astype(weight_dtype)
        x = np.random.default_rng(1).standard_normal((6, 8, 4)).astype(layer_dtype)
        out, _ = m(x)
        dx, _ = m.backward(np.sin(out))
        results.append([out, dx, *(m.grads[k] for k in sorted(m.grads))])
    tol = 1e-5 if np.float32 in (layer_dtype, weight_dtype) else 1e-12
    for a, b in zip(*results):
        assert rel_error(a, b) < tol


def test_gemm_rows_fit_openblas_small_matrix_kernels(monkeypatch):
    """Rows per BLAS call in the threads' loops: the largest multiple of 4 with rows * K * N
    <= 100^3 (OpenBLAS's small-matrix kernels), where the library has them and that is at
    least 4 rows and fewer than all; else one call."""
    from types import SimpleNamespace

    skx, other = SimpleNamespace(corename="SkylakeX"), SimpleNamespace(corename="Haswell")
    assert compiled.gemm_rows(skx, 32, 128, 512) == 12  # 15 rows fit: 12
    assert compiled.gemm_rows(skx, 64, 64, 256) == 60  # 61 fit
    assert compiled.gemm_rows(skx, 32, 512, 128) == 12  # the backward GEMM: K = 4H, N = H
    assert compiled.gemm_rows(skx, 8, 128, 512) == 8  # all fit
    assert compiled.gemm_rows(skx, 64, 256, 1024) == 64  # 3 rows fit: slower than packing
    assert compiled.gemm_rows(other, 32, 128, 512) == 32
    assert compiled.gemm_rows(None, 32, 128, 512) == 32
    assert compiled.gemm_rows(skx, 0, 128, 512) == 1
    monkeypatch.setattr(compiled, "SMALL_GEMM_MIN_ROWS", 0)  # never blocks of 0 rows
    monkeypatch.setattr(compiled, "SMALL_GEMM_MNK", 1)
    assert compiled.gemm_rows(skx, 32, 128, 512) == 32


@pytest.mark.parametrize("B", [14, 18, 26])
@pytest.mark.parametrize("masked", [False, True])
def test_threaded_gemms_in_row_blocks_match_numpy_path(monkeypatch, B, masked):
    """The threads' per-step GEMMs in blocks of rows (here 4 at most: 7, 9 and 13 rows a
    thread leave blocks of 4 and a last one of 3 or 1): the NumPy loops' numbers."""
    from rnnkit.cells import lstm_backward, lstm_forward

    blas = _blas()
    H, T = 8, 5
    monkeypatch.setattr(compiled, "SMALL_GEMM_CORES", (blas.corename,))
    monkeypatch.setattr(compiled, "SMALL_GEMM_MNK", H * 4 * H * 5)
    assert compiled.gemm_rows(blas, B // 2, H, 4 * H) == 4
    rng = np.random.default_rng(B)
    w_hh = rng.standard_normal((4 * H, H))
    gx0 = rng.standard_normal((T, B, 4 * H))
    mask = (np.arange(T)[:, None] < rng.integers(1, T + 1, B))[..., None] if masked else None
    d_output = rng.standard_normal((T, B, H)) * (1 if mask is None else mask)
    h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    results = []
    for p in ("threaded", "numpy"):
        use_path(monkeypatch, p)
        th = compiled.lstm_threads(T, B, H, np.float64)
        assert (th is not None) == (p == "threaded")
        cache = lstm_forward(gx0.copy(), h0, c0, w_hh, mask, threads=th)
        outputs = [cache.h.copy(), cache.c.copy()]
        results.append(outputs + list(lstm_backward(d_output, None, None, cache, w_hh,
                                                    threads=th)))
    for a, b in zip(*results):
        assert rel_error(a, b) < 1e-12


def test_matrix_vector_rule():
    """One GEMV a row up to MATRIX_VECTOR_MAX_B rows and from MATRIX_VECTOR_MIN_H units."""
    B, H = compiled.MATRIX_VECTOR_MAX_B, compiled.MATRIX_VECTOR_MIN_H
    assert compiled.matrix_vector(1, H) and compiled.matrix_vector(B, 4 * H)
    assert not compiled.matrix_vector(B + 1, H)
    assert not compiled.matrix_vector(2, H - 1)


@pytest.mark.parametrize("B", [1, 4])
@pytest.mark.parametrize("masked", [False, True])
def test_matrix_vector_steps_match_numpy_path(monkeypatch, B, masked):
    """The per-step path with one GEMV a row (forward on W_hh, backward on W_hh^T's copy):
    the NumPy loops' numbers, padded rows included."""
    calls = []
    real = compiled._matvecs
    monkeypatch.setattr(compiled, "_matvecs", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(compiled, "MATRIX_VECTOR_MIN_H", 8)
    results = []
    for p in ("steps", "numpy"):
        use_path(monkeypatch, p)
        m = LSTM(3, 8, dtype=np.float64, rng=0)
        x = np.random.default_rng(1).standard_normal((5, B, 3))
        lengths = np.array({1: [3], 4: [5, 2, 4, 1]}[B]) if masked else None
        out, (h_n, c_n) = m(x, lengths=lengths)
        dx, (dh0, dc0) = m.backward(np.sin(out), (np.cos(h_n), np.sin(c_n)))
        results.append([out, h_n, c_n, dx, dh0, dc0, *(m.grads[k] for k in sorted(m.grads))])
    assert len(calls) == 2 * 5  # forward and backward, every step, on the "steps" path only
    for a, b in zip(*results):
        assert rel_error(a, b) < 1e-13
