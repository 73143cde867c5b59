"""The buffer pool behind the large arrays of a pass: reuse must never touch a live array."""

from __future__ import annotations

import threading

import numpy as np

from rnnkit import GRU, LSTM, _workspace

SHAPE = (512, 1024)  # 2 MiB of float32: pooled


def test_a_buffer_is_reused_only_once_nothing_refers_to_it():
    _workspace.clear()
    a = _workspace.empty(SHAPE, np.float32)
    b = _workspace.empty(SHAPE, np.float32)
    assert not np.shares_memory(a, b)  # a is held: a second buffer
    view = a[1:]
    del a
    c = _workspace.empty(SHAPE, np.float32)
    assert not np.shares_memory(c, view) and not np.shares_memory(c, b)  # a view holds a
    assert len(_workspace._pool) == 3
    del view, c
    d = _workspace.empty(SHAPE, np.float32)  # two idle buffers now: one comes back
    assert len(_workspace._pool) == 3 and not np.shares_memory(d, b)
    e = _workspace.empty(SHAPE, np.float64)  # another dtype: another buffer
    assert len(_workspace._pool) == 4
    del b, d, e
    _workspace.clear()
    assert _workspace._pool == []


def test_small_arrays_are_not_pooled_and_idle_bytes_are_capped(monkeypatch):
    _workspace.clear()
    _workspace.empty((10, 10), np.float32)
    assert _workspace._pool == []
    monkeypatch.setattr(_workspace, "MAX_IDLE_BYTES", 3 * 2**21)
    for rows in range(512, 512 + 6):  # six idle 2 MiB buffers of different shapes
        _workspace.empty((rows, 1024), np.float32)
    assert len(_workspace._pool) == 3  # the three most recent stay
    assert [b.shape[0] for b in _workspace._pool] == [515, 516, 517]
    _workspace.clear()


def test_arrays_glibc_would_map_afresh_are_pooled_and_idle_arrays_are_counted(monkeypatch):
    """From 128 KiB (glibc's mmap threshold, where each pass paid page faults) arrays are
    pooled; idle ones beyond MAX_IDLE_ARRAYS go, oldest first, however small."""
    _workspace.clear()
    assert _workspace.MIN_BYTES == 1 << 17
    _workspace.empty((1 << 15,), np.float32)  # 128 KiB
    _workspace.empty((1 << 15,), np.float32)  # the same buffer again (idle)
    assert len(_workspace._pool) == 1
    _workspace.empty(((1 << 15) - 1,), np.float32)  # just below: malloc's
    assert len(_workspace._pool) == 1
    monkeypatch.setattr(_workspace, "MAX_IDLE_ARRAYS", 4)
    for n in range(1 << 15, (1 << 15) + 7):  # seven idle buffers of other shapes
        _workspace.empty((n,), np.float32)
    # four idle when the last was handed out (then in use), the oldest gone
    assert [b.shape[0] - (1 << 15) for b in _workspace._pool] == [2, 3, 4, 5, 6]
    held = [_workspace.empty((n,), np.float32) for n in range(1 << 16, (1 << 16) + 6)]
    assert len(_workspace._pool) >= 6, "arrays in use are never released"
    del held
    _workspace.clear()
    assert _workspace._pool == []


def test_outputs_a_caller_keeps_are_never_overwritten_by_the_next_pass():
    rng = np.random.default_rng(0)
    for cls in (LSTM, GRU):
        m = cls(8, 64, rng=0)
        x1, x2 = rng.standard_normal((2, 50, 32, 8)).astype(np.float32)
        out1, _ = m(x1)
        kept = out1.copy()
        m.backward(np.ones_like(out1))  # the cache is released; out1 still holds its buffer
        out2, _ = m(x2)
        d2, _ = m.backward(np.ones_like(out2))
        np.testing.assert_array_equal(out1, kept)
        out3, _ = m(x1)  # buffers of the earlier passes come back once released
        np.testing.assert_array_equal(out3, kept)
        assert not np.shares_memory(out3, out1)
        assert not np.shares_memory(d2, out2)


def test_threads_never_share_a_buffer():
    _workspace.clear()
    got, errors = [], []

    def worker(k):
        try:
            for _ in range(200):
                a = _workspace.empty(SHAPE, np.float32)
                a.fill(k)
                got.append(id(a))
                assert (a == k).all()  # nobody else wrote into it meanwhile
        except AssertionError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    _workspace.clear()


def test_the_cap_holds_at_every_call_not_only_when_a_buffer_is_new(monkeypatch):
    """Arrays a caller kept and then let go of are trimmed by the next call, a reuse too."""
    _workspace.clear()
    monkeypatch.setattr(_workspace, "MAX_IDLE_BYTES", 2 * 2**21)
    held = [_workspace.empty(SHAPE, np.float32) for _ in range(5)]  # none idle: all kept
    assert len(_workspace._pool) == 5
    del held  # five idle now, over the cap
    _workspace.empty(SHAPE, np.float32)  # a reuse: nothing new allocated
    assert len(_workspace._pool) <= 3  # the one in use and at most two idle ones
    _workspace.clear()
