"""The GEMM on a packed matrix (rnnkit.cells._packed_gemm) and the LSTM path that uses it."""

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from rnnkit.cells import _lockstep, compiled
from rnnkit.cells import _packed_gemm as pg
from rnnkit.gradcheck import rel_error
from rnnkit.recurrent import LSTM

DTYPES = [np.float32, np.float64]


@pytest.fixture(autouse=True)
def _workers_not_known_late(monkeypatch):
    """Each test starts as if no pass had found the cores busy (a pass that went on alone
    makes the passes of the next seconds run without workers)."""
    monkeypatch.setattr(_lockstep, "_contended_until", 0.0)


def _packed(w_rows, dtype):
    """``w_rows`` (N, K) packed as B = w_rows^T, by both packers (they must agree)."""
    width = pg.panel_width(dtype)
    N, K = w_rows.shape
    P = -(-N // width)
    by_rows = np.full((P, K, width), np.nan, dtype)
    pg.pack_rows(w_rows, by_rows, 0, P)
    by_columns = np.full((P, K, width), np.nan, dtype)
    pg.pack_columns(np.ascontiguousarray(w_rows.T), by_columns, 0, P)
    np.testing.assert_array_equal(by_rows, by_columns)
    return by_rows


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,K,N", [(1, 1, 1), (3, 5, 7), (9, 17, 33), (13, 64, 100),
                                   (8, 33, 64), (16, 7, 32), (2, 0, 5)])
def test_packed_gemm_matches_a_float64_product(dtype, M, K, N):
    """Every tile size (8, 4, 2, 1 rows), a partial last panel, K = 0 (zeros)."""
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    a = rng.standard_normal((M, K)).astype(dtype)
    w = rng.standard_normal((N, K)).astype(dtype)
    bp = _packed(w, dtype)
    c = np.full((M, N), np.nan, dtype)
    pg.packed_gemm(a, bp, c, 0, bp.shape[0])
    exact = a.astype(np.float64) @ w.T.astype(np.float64)
    tol = (1e-6 if dtype == np.float32 else 1e-14) * max(K, 1)
    np.testing.assert_allclose(c, exact, rtol=0, atol=tol * max(1.0, np.abs(exact).max()))


def test_packing_zero_fills_the_last_panel():
    width = pg.panel_width(np.float32)
    w = np.ones((width + 3, 5), np.float32)
    bp = _packed(w, np.float32)
    assert bp.shape == (2, 5, width)
    assert np.all(bp[1, :, :3] == 1) and np.all(bp[1, :, 3:] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_panel_ranges_write_only_their_columns_and_rows_do_not_interact(dtype):
    """Threads write disjoint panel ranges of one output; a row's numbers are the same
    whatever the other rows and the split (the sums run in k order, one FMA a step)."""
    rng = np.random.default_rng(0)
    width = pg.panel_width(dtype)
    M, K, N = 11, 40, 3 * width + 5
    a = rng.standard_normal((M, K)).astype(dtype)
    bp = _packed(rng.standard_normal((N, K)).astype(dtype), dtype)
    whole = np.empty((M, N), dtype)
    pg.packed_gemm(a, bp, whole, 0, 4)
    parts = np.full((M, N), np.nan, dtype)
    pg.packed_gemm(a, bp, parts, 1, 3)
    assert np.isnan(parts[:, :width]).all() and np.isnan(parts[:, 3 * width:]).all()
    np.testing.assert_array_equal(parts[:, width:3 * width], whole[:, width:3 * width])
    pg.packed_gemm(a, bp, parts, 0, 1)
    pg.packed_gemm(a, bp, parts, 3, 4)
    np.testing.assert_array_equal(parts, whole)
    for r in (0, 7, 10):  # alone, in a 1-row tile instead of an 8-, 2- or 1-row one
        row = np.empty((1, N), dtype)
        pg.packed_gemm(a[r:r + 1], bp, row, 0, 4)
        np.testing.assert_array_equal(row[0], whole[r])


def test_packed_gemm_reads_and_writes_rows_with_any_row_stride():
    """``a`` and ``c`` as column slices of wider arrays (row stride > row length)."""
    rng = np.random.default_rng(1)
    wide_a = rng.standard_normal((6, 50)).astype(np.float32)
    w = rng.standard_normal((20, 30)).astype(np.float32)
    bp = _packed(w, np.float32)
    wide_c = np.full((6, 70), np.nan, np.float32)
    pg.packed_gemm(wide_a[:, 10:40], bp, wide_c[:, 5:25], 0, bp.shape[0])
    np.testing.assert_allclose(wide_c[:, 5:25], wide_a[:, 10:40] @ w.T, rtol=1e-5, atol=1e-5)
    assert np.isnan(wide_c[:, :5]).all() and np.isnan(wide_c[:, 25:]).all()


def test_packed_rule(monkeypatch):
    """From PACKED_MIN_B rows and PACKED_MIN_H units (one row up to PACKED_B1_L2_MAX_H,
    from PACKED_B1_MIN_H, or in between over PACKED_B1_MIN_T steps) and PACKED_MIN_T
    steps, with two threads
    or more, on the hosts where the micro-kernel was measured (AVX-512)."""
    monkeypatch.setattr(compiled, "_packed_fast", lambda: True)
    monkeypatch.setattr(compiled, "_usable_cores", lambda: 8)
    T, B, H = compiled.PACKED_MIN_T, compiled.PACKED_MIN_B, compiled.PACKED_MIN_H
    H1 = compiled.PACKED_B1_MIN_H
    assert B > 1 and H1 > H
    assert compiled.packed(T, B, H, 2) and compiled.packed(None, 128, 4 * H, 4)
    assert compiled.packed(T, 1, H1, 2)
    assert not compiled.packed(T, B, H, 1)  # one thread: OpenBLAS's GEMMs
    assert not compiled.packed(T - 1, B, H, 2)
    assert not compiled.packed(T, B, H - 1, 2)
    assert not compiled.packed(T, 1, H1 - 1, 2)
    T1, L2 = compiled.PACKED_B1_MIN_T, compiled.PACKED_B1_L2_MAX_H
    assert T1 > T and compiled.packed(T1, 1, H, 2) and compiled.packed(T1, 1, H1 - 1, 2)
    assert not compiled.packed(T1 - 1, 1, H1 - 1, 2) and not compiled.packed(T1, 1, H - 1, 2)
    # one row while each thread's half of W_hh fits its L2: from PACKED_MIN_T steps
    assert H <= L2 < H1 and compiled.packed(T, 1, H, 2) and compiled.packed(T, 1, L2, 2)
    assert not compiled.packed(T1 - 1, 1, L2 + 1, 2) and not compiled.packed(T - 1, 1, H, 2)
    monkeypatch.setattr(compiled, "_packed_fast", lambda: False)
    assert not compiled.packed(T, 128, 4 * H, 2)


def _blas():
    kernels = compiled._numba_kernels()
    if kernels is None or kernels.BLAS is None:
        pytest.skip("NumPy's BLAS is not its bundled OpenBLAS: no threads of rnnkit's own")
    return kernels.BLAS


def _force_packed(monkeypatch, min_h, min_b, min_t):
    """The packed path from these sizes, on any host (AVX-512 or not, any core count)."""
    monkeypatch.setattr(compiled, "_packed_fast", lambda: True)
    monkeypatch.setattr(compiled, "_usable_cores", lambda: 8)
    monkeypatch.setattr(compiled, "PACKED_MIN_H", min_h)
    monkeypatch.setattr(compiled, "PACKED_MIN_B", min_b)
    monkeypatch.setattr(compiled, "PACKED_MIN_T", min_t)


def test_a_region_takes_the_packed_path_for_its_sizes(monkeypatch):
    """lstm_threads returns the region's threads for packed sizes, lstm_region opens one,
    and the layer's pass then runs packed_gemm on every step."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    _blas()
    monkeypatch.delenv("RNNKIT_THREADED", raising=False)
    monkeypatch.setenv("RNNKIT_COMPILED", "1")
    _force_packed(monkeypatch, 40, 3, 6)
    T, B, H = 6, 3, 40
    steps = {"forward": [], "backward": []}
    late = {"forward": [], "backward": []}

    def spy(name):  # the steps each compiled call of the caller's loop went through
        real = getattr(_lockstep, f"lstm_{name}_packed")

        def call(*args):
            start, stop, ret = args[-3], args[-2], real(*args)
            steps[name].extend(range(start, ret))
            if ret < stop:  # a worker late (compiling, or descheduled): finished in Python
                late[name].append(ret)
            return ret
        monkeypatch.setattr(_lockstep, f"lstm_{name}_packed", call)

    spy("forward")
    spy("backward")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        assert compiled.lstm_threads(T, B, H, np.float32) is None  # outside a region
        with compiled.lstm_region(T, B, H, np.float32) as region:
            assert region is not None and region.n == 2
            assert compiled.lstm_threads(T, B, H, np.float32) is region
            assert compiled.lstm_threads(T, B, H - 1, np.float32) is None
            assert compiled.lstm_threads(T - 1, B, H, np.float32) is None  # too few steps
            m = LSTM(5, H, dtype=np.float32, rng=0)
            out, _ = m(np.ones((T, B, 5), np.float32))
            m.backward(np.ones_like(out))
    # forward and backward, every step; in the compiled loop but for at most three late
    # steps a pass (then the caller goes on alone), however busy the machine
    for name, done in steps.items():
        assert sorted(done + late[name]) == list(range(T))
        assert len(late[name]) <= 3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("spin", [None, 0])
def test_packed_path_matches_numpy_path(monkeypatch, dtype, masked, spin):
    """Forward, backward and every gradient: the NumPy loops' numbers, padded rows
    included, at a hidden size that leaves a partial panel (H = 37). With no spin budget
    the compiled loop gives up on the workers at most steps, and Python finishes those
    steps (the path of a worker descheduled), while the workers sleep between steps."""
    _blas()
    _force_packed(monkeypatch, 8, 2, 0)
    if spin is not None:
        monkeypatch.setattr(_lockstep, "SPIN_CYCLES", spin)
    T, B, H = 6, 5, 37
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, 4)).astype(dtype)
    lengths = np.array([6, 2, 4, 1, 5]) if masked else None
    results = []
    for compiled_on in ("1", "0"):
        monkeypatch.setenv("RNNKIT_COMPILED", compiled_on)
        monkeypatch.setenv("RNNKIT_THREADED", "2" if compiled_on == "1" else "0")
        m = LSTM(4, H, dtype=dtype, rng=0)
        if compiled_on == "1":
            assert compiled.packed(T, B, H, compiled.lstm_threads(T, B, H, dtype).n)
        out, (h_n, c_n) = m(x, lengths=lengths)
        dx, (dh0, dc0) = m.backward(np.sin(out), (np.cos(h_n), np.sin(c_n)))
        results.append([out, h_n, c_n, dx, dh0, dc0, *(m.grads[k] for k in sorted(m.grads))])
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(*results):
        assert rel_error(a, b) < tol


def test_arrays_of_different_dtypes_are_a_typing_error_not_a_crash():
    """The micro-kernel reads all three arrays in one dtype: a mix is refused at compile
    time (the LSTM path converts W_hh to the layer's dtype before packing)."""
    with pytest.raises(numba.core.errors.TypingError):
        pg.packed_gemm(np.ones((2, 3), np.float32), np.ones((1, 3, pg.panel_width(np.float64))),
                       np.ones((2, 4), np.float32), 0, 1)
    with pytest.raises(numba.core.errors.TypingError):  # the packers likewise
        pg.pack_rows(np.ones((40, 3)), np.ones((2, 3, pg.panel_width(np.float32)), np.float32),
                     0, 2)


def _recurrence(threads_n, K, M, D, pause=0.0, fail_at=None):
    """K steps of out = a[k] @ B, a[k + 1] = tanh of the sum of out's three D-column
    blocks: each step needs all of the last one's output (every thread's panels), so a
    worker that ran early or late would change the numbers."""
    import time

    rng = np.random.default_rng(K)
    w = (rng.standard_normal((3 * D, D)) / np.sqrt(D)).astype(np.float32)
    bp = _packed(w, np.float32)
    a = np.full((K + 1, M, D), np.nan, np.float32)  # a step read too early gives NaN
    a[0] = rng.standard_normal((M, D))
    out = np.empty((M, 3 * D), np.float32)
    threads = compiled.Threads(None, threads_n)
    with _lockstep.GemmSteps(threads, a, np.arange(K), bp, out) as steps:
        for k in range(K):
            if k == fail_at:
                raise KeyboardInterrupt  # as a Ctrl-C between two steps would
            steps.gemm(k)
            np.tanh(out[:, :D] + out[:, D:2 * D] + out[:, 2 * D:], out=a[k + 1])
            if pause:
                time.sleep(pause)  # longer than the workers spin: they sleep, then wake
    serial = np.empty((K + 1, M, D), np.float32)
    serial[0] = a[0]
    for k in range(K):
        pg.packed_gemm(serial[k], bp, out, 0, bp.shape[0])
        np.tanh(out[:, :D] + out[:, D:2 * D] + out[:, 2 * D:], out=serial[k + 1])
    return a, serial


@pytest.mark.parametrize("threads_n", [2, 3])
@pytest.mark.parametrize("pause", [0.0, 0.004])
def test_workers_take_each_step_in_turn(threads_n, pause):
    """Every step's panels over the threads, each step after the caller's work on the
    last one: the numbers of the serial loop, bit for bit (also when the workers had to
    sleep between steps)."""
    a, serial = _recurrence(threads_n, 12 if pause else 60, 9, 40, pause)
    np.testing.assert_array_equal(a, serial)


def test_an_error_between_steps_stops_the_workers():
    """A KeyboardInterrupt inside the pass: the workers end (no thread left spinning or
    waiting for a step that never comes), and the next pass runs."""
    with pytest.raises(KeyboardInterrupt):
        _recurrence(2, 20, 4, 40, fail_at=5)
    a, serial = _recurrence(2, 20, 4, 40)
    np.testing.assert_array_equal(a, serial)


def test_a_worker_that_fails_raises_in_the_caller(monkeypatch):
    def broken(*args):
        raise RuntimeError("worker failed")

    monkeypatch.setattr(_lockstep, "serve_gemm", broken)
    with pytest.raises(RuntimeError, match="worker failed"):
        _recurrence(2, 5, 4, 40, pause=0.004)  # (the worker starts: it is not skipped)


def test_once_the_pool_takes_no_work_the_caller_computes_every_panel(monkeypatch):
    """After interpreter shutdown has begun (the pool refuses work), a pass still runs."""
    class Closed:
        def submit(self, *args):
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    monkeypatch.setattr(compiled, "_pool", lambda workers: Closed())
    a, serial = _recurrence(3, 8, 5, 40)
    np.testing.assert_array_equal(a, serial)


def test_a_ctrl_c_while_the_workers_start_leaves_no_worker_waiting(monkeypatch):
    """A KeyboardInterrupt inside the pool's submit (after a worker was queued): the
    workers queued stop, and the next pass runs (before, it waited forever)."""
    real = compiled._pool(2)

    class Interrupted:
        calls = 0

        def submit(self, *args):
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt
            return real.submit(*args)

    monkeypatch.setattr(compiled, "_pool", lambda workers: Interrupted())
    with pytest.raises(KeyboardInterrupt):
        _recurrence(3, 8, 5, 40)
    monkeypatch.undo()
    a, serial = _recurrence(3, 8, 5, 40)
    np.testing.assert_array_equal(a, serial)


def test_a_pass_while_another_holds_the_pool_runs_on_its_caller():
    """Two passes at once (other Python threads) do not share the pool's workers: the
    second computes every panel itself, so neither waits for a worker queued behind the
    other's."""
    threads = compiled.Threads(None, 3)
    rng = np.random.default_rng(0)
    bp = _packed(rng.standard_normal((100, 40)).astype(np.float32), np.float32)
    a = rng.standard_normal((2, 5, 40)).astype(np.float32)
    out1, out2 = np.empty((5, 100), np.float32), np.empty((5, 100), np.float32)
    with _lockstep.GemmSteps(threads, a, np.arange(2), bp, out1) as first:
        with _lockstep.GemmSteps(threads, a, np.arange(2), bp, out2) as second:
            assert second.futures == [] and len(first.futures) == 2
            second.gemm(1)
        first.gemm(1)
    np.testing.assert_array_equal(out1, out2)
    with _lockstep.GemmSteps(threads, a, np.arange(2), bp, out2) as again:
        assert len(again.futures) == 2  # the pool is free again


def test_no_packed_path_with_more_threads_than_cores(monkeypatch):
    monkeypatch.setattr(compiled, "_packed_fast", lambda: True)
    monkeypatch.setattr(compiled, "_usable_cores", lambda: 2)
    assert compiled.packed(64, 32, 512, 2)
    assert not compiled.packed(64, 32, 512, 3)


def test_a_pass_whose_workers_are_late_goes_on_alone_and_so_do_the_next(monkeypatch):
    """Workers the OS does not run (a busy core) make each step wait: at the third late
    step (a quarter of the steps so far) the workers stop and the caller computes the rest; passes in the next
    CONTENDED_SECONDS start alone; then the workers are tried again. The numbers are the
    serial loop's throughout."""
    K, M, D = 12, 5, 40
    rng = np.random.default_rng(7)
    w = (rng.standard_normal((3 * D, D)) / np.sqrt(D)).astype(np.float32)
    bp = _packed(w, np.float32)
    a = np.full((K + 1, M, D), np.nan, np.float32)
    a[0] = rng.standard_normal((M, D))
    out = np.empty((M, 3 * D), np.float32)
    seen = []

    def next_input(k):
        np.tanh(out[:, :D] + out[:, D:2 * D] + out[:, 2 * D:], out=a[k + 1])

    def late_loop(steps):
        def loop(k, stop, bounds):  # as the compiled loops, but every worker is late
            workers, hi = len(bounds) - 2, bounds[1]
            seen.append(workers)
            while k < stop:
                _lockstep.post(steps.flags, 0, k + 1)
                pg.packed_gemm(a[k], bp, out, 0, hi)
                if workers:
                    return k  # "waited past the budget": run() waits, then finish(k)
                next_input(k)
                k += 1
            return stop
        return loop

    threads = compiled.Threads(None, 2)
    with _lockstep.GemmSteps(threads, a, np.arange(K), bp, out) as steps:
        assert len(steps.futures) == 1
        steps.run(late_loop(steps), next_input, 4)
        assert steps.futures == [] and list(steps.bounds) == [0, bp.shape[0]]
    assert seen[:4] == [1, 1, 1, 0] and set(seen[3:]) == {0}  # alone from the third late
    serial = np.empty_like(a)
    serial[0] = a[0]
    for k in range(K):
        pg.packed_gemm(serial[k], bp, out, 0, bp.shape[0])
        np.tanh(out[:, :D] + out[:, D:2 * D] + out[:, 2 * D:], out=serial[k + 1])
    np.testing.assert_array_equal(a, serial)
    with _lockstep.GemmSteps(threads, a, np.arange(K), bp, out) as steps:
        assert steps.futures == [] and list(steps.bounds) == [0, bp.shape[0]]  # contended
    monkeypatch.setattr(_lockstep, "_contended_until", 0.0)  # the time has passed
    with _lockstep.GemmSteps(threads, a, np.arange(K), bp, out) as steps:
        assert len(steps.futures) == 1


def test_a_worker_that_does_not_run_costs_no_wait(monkeypatch):
    """Workers the OS has not woken yet (here: queued behind a busy pool thread): the
    caller packs their panels and computes their share of each step itself, so the pass
    ends without them (it would wait 10 s otherwise), and their jobs never start; the
    numbers are the serial loop's. Also through the LSTM's compiled loops."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    release = threading.Event()
    pool = ThreadPoolExecutor(1)
    monkeypatch.setattr(compiled, "_pool", lambda workers: pool)
    K, M, D = 20, 5, 40
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((3 * D, D)) / np.sqrt(D)).astype(np.float32)
    bp = np.full((-(-3 * D // pg.panel_width(np.float32)), D, pg.panel_width(np.float32)),
                 np.nan, np.float32)
    a = np.full((K + 1, M, D), np.nan, np.float32)
    a[0] = rng.standard_normal((M, D))
    out = np.empty((M, 3 * D), np.float32)
    try:
        busy = pool.submit(release.wait, 10)
        start = time.monotonic()
        with _lockstep.GemmSteps(compiled.Threads(None, 3), a, np.arange(K), bp, out,
                                 lambda lo, hi: pg.pack_rows(w, bp, lo, hi)) as steps:
            assert len(steps.futures) == 2
            for k in range(K):
                steps.gemm(k)
                np.tanh(out[:, :D] + out[:, D:2 * D] + out[:, 2 * D:], out=a[k + 1])
        assert time.monotonic() - start < 5 and not busy.done()
        assert all(f.cancelled() for f in steps.futures)
        serial = np.empty_like(a)
        serial[0] = a[0]
        for k in range(K):
            pg.packed_gemm(serial[k], _packed(w, np.float32), out, 0, bp.shape[0])
            np.tanh(out[:, :D] + out[:, D:2 * D] + out[:, 2 * D:], out=serial[k + 1])
        np.testing.assert_array_equal(a, serial)

        _blas()
        _force_packed(monkeypatch, 8, 2, 0)
        T, B, H = 40, 3, 37
        x = rng.standard_normal((T, B, 4)).astype(np.float32)
        results = []
        for compiled_on in ("1", "0"):
            monkeypatch.setenv("RNNKIT_COMPILED", compiled_on)
            monkeypatch.setenv("RNNKIT_THREADED", "2" if compiled_on == "1" else "0")
            m = LSTM(4, H, dtype=np.float32, rng=0)
            start = time.monotonic()
            out_, (h_n, c_n) = m(x, lengths=np.array([40, 7, 33]))
            dx, (dh0, dc0) = m.backward(np.sin(out_), (np.cos(h_n), np.sin(c_n)))
            assert time.monotonic() - start < 5
            results.append([out_, h_n, dx, dh0, dc0, *(m.grads[k] for k in sorted(m.grads))])
        assert not busy.done()
        for got, want in zip(*results):
            assert rel_error(got, want) < 2e-5
    finally:
        release.set()
        pool.shutdown()


def test_the_workers_compiled_calls_are_loaded_on_the_caller_first(monkeypatch):
    """Before any worker runs, the caller makes the calls a worker makes (pack, serve_gemm)
    with nothing to do, so numba compiles or loads them on the caller: a worker that
    compiled waited on numba's compiler lock, which a Ctrl-C during the caller's own
    compile could leave held by the caller, and the pass then hung (adversarial review)."""
    import threading

    calls = []
    serve = _lockstep.serve_gemm

    def spy_serve(*args):
        calls.append(("serve", threading.get_ident(), args[8]))
        return serve(*args)

    def pack(lo, hi):
        calls.append(("pack", threading.get_ident(), hi - lo))

    monkeypatch.setattr(_lockstep, "serve_gemm", spy_serve)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((40, 8)).astype(np.float32)
    bp = _packed(w, np.float32)
    a = rng.standard_normal((3, 2, 8)).astype(np.float32)
    out = np.empty((2, 40), np.float32)
    with _lockstep.GemmSteps(compiled.Threads(None, 2), a, np.arange(3), bp, out,
                             pack) as steps:
        for k in range(3):
            steps.gemm(k)
    main = threading.get_ident()
    assert calls[:2] == [("pack", main, 0), ("serve", main, 3)]  # nothing to pack, no steps


def test_the_batch_split_loads_its_loops_on_the_caller_first(monkeypatch):
    """The batch split's threads call the compiled loops only after the caller has, with
    no rows (nothing done), for the reason above."""
    import threading

    kernels = compiled._numba_kernels()
    if kernels is None or kernels.BLAS is None:
        pytest.skip("no compiled loops with NumPy's bundled OpenBLAS here")
    calls = []
    for name in ("lstm_forward_rows", "lstm_backward_rows"):
        original = getattr(kernels, name)

        def spy(*args, _name=name, _original=original):
            calls.append((_name, threading.get_ident(), args[0].shape[1]))
            return _original(*args)

        monkeypatch.setattr(kernels, name, spy)
    monkeypatch.setenv("RNNKIT_THREADED", "2")
    monkeypatch.setattr(compiled, "packed", lambda *args: False)
    from rnnkit import LSTM

    m = LSTM(3, 8, rng=0)
    out, _ = m(np.ones((4, 6, 3), np.float32))
    m.backward(np.ones_like(out))
    main = threading.get_ident()
    for name in ("lstm_forward_rows", "lstm_backward_rows"):
        mine = [c for c in calls if c[0] == name]
        assert mine[0] == (name, main, 0) and sum(c[2] for c in mine) == 6
        assert len(mine) == 3  # the empty call, then the two threads' rows
