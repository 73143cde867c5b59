"""Per-step hand-offs between the caller and rnnkit's worker threads, by shared flags (numba).

A pass on a packed W_hh (:func:`rnnkit.cells.compiled.packed`) gives the
region's other threads their panels of every step's GEMM. Handing each
step to a pool thread costs a wake-up: 80-180 us on the project's virtual
machine, where waking an idle virtual CPU goes through the hypervisor, as
much as the packing saves at H = 512. Here each worker takes the whole pass
as one job and waits for each step on a flag in memory, spinning (``pause``)
for up to ``SPIN_CYCLES`` processor cycles, about a millisecond, before it
sleeps on an event; a flag seen while spinning costs well under a
microsecond. So a worker spins only while the pass runs, and sleeps in any
longer wait (the caller descheduled by a busy machine, a slow step), as
OpenBLAS's workers do after their 0.1 s of spinning.

The caller's side of an LSTM pass (``lstm_forward_packed``,
``lstm_backward_packed``) is compiled too: many steps in one call, each
posting the step, computing the caller's panels, waiting for the workers'
flags and running the elementwise step, with no Python in between (a step
at B = 1, H = 512 is about 27 us, of which Python's per-step calls had
taken several) and the GIL released, so other Python threads of the
program do not hold up the steps. A wait that outlasts the spin returns to
Python, which wakes the workers, sleeps until they are done and finishes
that step.

Work is claimed, not assigned: worker ``i``'s jobs are the packing of its
panels (job 0) and its panels of each step (step ``k`` is job ``k + 1``);
whoever claims a job first (an atomic compare-and-exchange on the worker's
claim counter) computes it, the worker or, once it has its own share done,
the caller. A worker that the operating system has not woken yet (80 us to
several ms on the project's virtual machine after an idle spell) or has
descheduled (another process on its core) then costs its steps nothing but
the caller's time; it joins in at the next step it claims.

Flags (int64): ``flags[0]`` the number of steps posted by the caller,
``flags[1]`` 1 once the pass is abandoned, ``flags[2 i]`` worker ``i``'s claim
counter (the next job to claim), ``flags[2 i + 1]`` the number of its jobs
done (``i`` from 1; the caller is thread 0). Loads acquire and stores
release (LLVM atomics), so a step's inputs written before its flag are seen
after it.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from . import _packed_gemm
from ._compiled_kernels import (
    _jit,
    _rows,
    keep_padded_rows,
    lstm_backward_step_at,
    lstm_forward_step_at,
)

SPIN_CYCLES = 3_000_000  # about 1 ms at 3 GHz, on the time-stamp counter
ALONE_MAX_STEP = 2e-3  # seconds: see GemmSteps.run
CONTENDED_SECONDS = 0.25  # after a pass went on alone, the passes of this long do from the start
_X86 = llvm.get_process_triple().startswith(("x86_64", "i386", "i686"))


@intrinsic
def _load(typingctx, flags, i):
    """``flags[i]``, an atomic load with acquire ordering."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.load_atomic(builder.gep(data, [args[1]]), "acquire", 8)
    return types.int64(flags, types.intp), codegen


@intrinsic
def _store(typingctx, flags, i, value):
    """``flags[i] = value``, an atomic store with release ordering."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        builder.store_atomic(args[2], builder.gep(data, [args[1]]), "release", 8)
        return context.get_dummy_value()
    return types.void(flags, types.intp, types.int64), codegen


@intrinsic
def _cas(typingctx, flags, i, expected, value):
    """``flags[i] = value`` if it holds ``expected`` (True), else nothing (False): one atomic
    compare-and-exchange (acquire and release)."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        pair = builder.cmpxchg(builder.gep(data, [args[1]]), args[2], args[3], "acq_rel",
                               "acquire")
        return builder.extract_value(pair, 1)
    return types.boolean(flags, types.intp, types.int64, types.int64), codegen


@intrinsic
def _cycles(typingctx):
    """The time-stamp counter on x86 (cycles), for spin budgets; 0 elsewhere, where reading
    a cycle counter from user space may trap (aarch64's PMCCNTR)."""
    def codegen(context, builder, signature, args):
        if not _X86:
            return ir.Constant(ir.IntType(64), 0)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                            "llvm.readcyclecounter")
        return builder.call(fn, [])
    return types.int64(), codegen


@intrinsic
def _pause(typingctx):
    """x86's ``pause`` (a spin-wait hint: the core idles briefly); nothing elsewhere."""
    def codegen(context, builder, signature, args):
        if _X86:
            fn = cgutils.get_or_insert_function(builder.module,
                                                ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()
    return types.void(), codegen


@_jit
def spin_until(flags, i, value, budget):
    """Spin until ``flags[i] >= value`` (True) or the pass is abandoned (``flags[1]``,
    False), for at most ``budget`` cycles (then False), or ``budget // 16`` tries where
    there is no cycle counter (a ``pause`` takes 40 cycles or more: the cycles end first
    on x86)."""
    start = _cycles()
    tries = 0
    while _load(flags, i) < value:
        if _load(flags, 1) != 0:
            return False
        tries += 1
        if tries > 1000 and (_cycles() - start > budget or tries > budget // 16):
            return False
        _pause()
    return True


@_jit
def post(flags, i, value):
    """``flags[i] = value`` (release)."""
    _store(flags, i, value)


@_jit
def load(flags, i):
    """``flags[i]`` (acquire)."""
    return _load(flags, i)


@_jit
def claim(flags, slot, job):
    """Claim job ``job`` of the worker whose claim counter is ``flags[slot]``: True if it
    was unclaimed (the counter held ``job``; it now holds ``job + 1``)."""
    return _cas(flags, slot, job, job + 1)


@_jit
def serve_gemm(a3, steps, bp, out, lo, hi, flags, slot, k, budget):
    """A worker's share of a pass, from step ``k``: for each step, once posted, if the
    worker claims it first (``flags[slot]``, its claim counter: the caller may have taken
    it), ``out[:, panels lo..hi-1] = a3[steps[k]] @ B`` (``packed_gemm``), then its done
    counter ``flags[slot + 1] = k + 2``. Returns the step it stopped at: ``len(steps)``
    when done, -1 when the pass was abandoned, else the step it waited for past
    ``budget``."""
    n = steps.shape[0]
    while k < n:
        if not spin_until(flags, 0, k + 1, budget):
            return -1 if _load(flags, 1) != 0 else k
        job = k + 1
        if _cas(flags, slot, job, job + 1):  # else the caller computed it (this thread was late)
            _packed_gemm.packed_gemm(a3[steps[k]], bp, out, lo, hi)
            _store(flags, slot + 1, job + 1)
        k += 1
    return n


@_jit
def settle(flags, bounds, a, bp, out, job, budget):
    """The workers' panels of ``job`` (step ``job - 1``, posted; the caller's panels done):
    each worker's that it has not claimed, and whose earlier jobs are done, computed
    here (a worker not running yet, or descheduled, costs no wait); the others awaited.
    True, or False once a wait passed ``budget`` cycles. ``bounds`` (int64) are the
    threads' panel ranges, the caller's first."""
    for i in range(1, bounds.shape[0] - 1):
        slot = 2 * i
        if _load(flags, slot + 1) == job and _cas(flags, slot, job, job + 1):
            _packed_gemm.packed_gemm(a, bp, out, bounds[i], bounds[i + 1])
            _store(flags, slot + 1, job + 1)
        elif not spin_until(flags, slot + 1, job + 1, budget):
            return False
    return True


@_jit
def lstm_forward_packed(gx, h, c, tanh_c, mask, bias, bp, gh, flags, bounds, t, stop, budget):
    """The caller's side of forward steps ``t .. stop - 1`` on a packed W_hh^T, in one call.

    Per step: post it, ``gh[:, panels bounds[0]..bounds[1]-1] = h[t] @ W_hh^T`` (the
    caller's share), the workers' shares (``settle``), then the elementwise step
    (``lstm_forward_step``). The arrays are ``lstm_forward``'s (C-contiguous; ``mask``
    (T, B) bool or None, ``bias`` (4H,) or None). Returns ``stop``, or the step whose
    workers it waited for past ``budget`` cycles: its GEMM is posted and the caller's
    share done; the caller waits for them and finishes that step itself.
    """
    while t < stop:
        h_prev = _rows(h[t])
        _store(flags, 0, t + 1)
        _packed_gemm.packed_gemm(h_prev, bp, gh, 0, bounds[1])
        if not settle(flags, bounds, h_prev, bp, gh, t + 1, budget):
            return t
        lstm_forward_step_at(t, gx, gh, bias, c, tanh_c, h, mask)
        t += 1
    return stop


@_jit
def lstm_backward_packed(d_output, dh, dc, gates, c, tanh_c, mask, bp, dh_in, keep, one,
                         flags, bounds, k, stop, budget):
    """The caller's side of backward steps ``k .. stop - 1`` (step ``k`` is time ``T - 1 -
    k``) on a packed W_hh, in one call.

    Per step: the elementwise step (``lstm_backward_step``: the gates become dgates),
    post it, ``dh_in[:, panels bounds[0]..bounds[1]-1] = dgates @ W_hh`` (the caller's
    share), the workers' shares (``settle``), then padded rows get their ``dh`` back
    from ``keep``. Returns ``stop``,
    or the step whose workers it waited for past ``budget`` cycles (the padded rows of
    that step not yet put back: the caller does it).
    """
    T = gates.shape[0]
    while k < stop:
        t = T - 1 - k
        padded = lstm_backward_step_at(t, d_output, dh_in, dh, dc, gates, c, tanh_c, mask,
                                       keep, one)
        a = _rows(gates[t])
        _store(flags, 0, k + 1)
        _packed_gemm.packed_gemm(a, bp, dh_in, 0, bounds[1])
        if not settle(flags, bounds, a, bp, dh_in, k + 1, budget):
            return k
        keep_padded_rows(t, mask, padded, dh_in, keep)
        k += 1
    return stop


class GemmSteps:
    """The region's workers, each on its panels of every step's packed GEMM, for one pass.

    ``with GemmSteps(threads, a3, steps, bp, out) as steps:`` then, for each
    step ``k``, ``steps.gemm(k)`` computes ``out = a3[steps[k]] @ B`` (the
    caller's share of the panels, then a wait for the workers'), or a compiled
    loop (``lstm_forward_packed``) runs the caller's side of many steps. The
    workers start on entry (one job each in the region's pool) and end on
    exit, also when the pass stops early with an error. ``pack(lo, hi)``, if
    given, fills the panels ``lo..hi-1`` of ``bp``: each thread packs its own
    panels first (the caller on entry, then those of a worker that has not
    begun), so no thread waits for another's packing. Once the interpreter
    is shutting down (the pool takes no work), while another pass holds the
    pool, or for ``CONTENDED_SECONDS`` after a pass went on alone, the caller
    packs and computes every panel.
    """

    def __init__(self, threads, a3, steps, bp, out, pack=None):
        from .compiled import _pool

        self.a3, self.steps, self.bp, self.out, self.pack = a3, steps, bp, out, pack
        n = threads.n
        P = bp.shape[0]
        self.bounds = np.array([P * i // n for i in range(n + 1)], np.int64)
        self.flags = np.zeros(2 * n, np.int64)  # see the module's docstring
        if pack is None:
            self.flags[2:] = 1  # no panels to pack: each worker's job 0 is done
        self.wakes = [threading.Event() for _ in range(n - 1)]  # one each: only its own
        # worker clears it, so no wake-up is lost
        self.pool = _pool(n - 1)
        self.futures = []
        self.owner = False

    def __enter__(self):
        # one pass at a time holds the pool: two passes of other Python threads that queued
        # their workers interleaved could each wait for a worker queued behind the other's
        contended = time.monotonic() < _contended_until
        self.owner = not contended and _passes.acquire(blocking=False)
        if not self.owner:  # another pass runs, or the cores were busy: all on the caller
            self.bounds = np.array([0, self.bp.shape[0]], np.int64)
        if len(self.bounds) > 2:
            try:
                self._load_kernels()
            except BaseException:
                self.__exit__(None, None, None)
                raise
        try:
            for i in range(1, len(self.bounds) - 1):
                self.futures.append(self.pool.submit(self._worker, i))
        except RuntimeError:  # "cannot schedule new futures after (interpreter) shutdown"
            self.__exit__(None, None, None)  # the workers started stop
            self.futures = []  # all on the caller
            self.bounds = np.array([0, self.bp.shape[0]], np.int64)
        except BaseException:  # a Ctrl-C in submit: stop the workers queued, then raise
            self.__exit__(None, None, None)
            raise
        if self.pack is not None:
            try:
                self.pack(self.bounds[0], self.bounds[1])  # the caller's panels
                for i in range(1, len(self.bounds) - 1):  # a worker's, if it has not begun
                    if claim(self.flags, 2 * i, 0):
                        self.pack(self.bounds[i], self.bounds[i + 1])
                        post(self.flags, 2 * i + 1, 1)
            except BaseException:
                self.__exit__(None, None, None)
                raise
        return self

    def _load_kernels(self):
        """Compile (or load from numba's disk cache) what the workers call, here, before
        they start, by calls that do nothing (no panels, no steps left). A worker that
        compiled waited on numba's compiler lock, and a Ctrl-C that cut the caller's own
        compile short could leave that lock held by the caller, which then waited for
        the worker forever (adversarial review: 6 hangs in 6 runs)."""
        if self.pack is not None:
            self.pack(0, 0)
        serve_gemm(self.a3, self.steps, self.bp, self.out, 0, 0, self.flags, 2,
                   self.steps.shape[0], 0)

    def _worker(self, i):
        k, lo, hi, slot = 0, self.bounds[i], self.bounds[i + 1], 2 * i
        flags, wake = self.flags, self.wakes[i - 1]
        if self.pack is not None and claim(flags, slot, 0):  # (else the caller packed them)
            self.pack(lo, hi)  # its own panels: no wait for the others' packing
            post(flags, slot + 1, 1)
        while True:
            k = serve_gemm(self.a3, self.steps, self.bp, self.out, lo, hi, flags, slot, k,
                           SPIN_CYCLES)
            if k < 0 or k >= self.steps.shape[0]:
                return
            while True:  # sleep until step k is posted (or the pass abandoned)
                wake.clear()  # then look: a post after this look sets it again
                if load(flags, 0) > k or load(flags, 1) != 0:
                    break
                wake.wait(0.05)

    def gemm(self, k):
        """Step ``k``'s GEMM on every thread; returns once all panels are written."""
        post(self.flags, 0, k + 1)
        self.wake()
        a = self.a3[self.steps[k]]
        _packed_gemm.packed_gemm(a, self.bp, self.out, 0, self.bounds[1])
        if not settle(self.flags, self.bounds, a, self.bp, self.out, k + 1, SPIN_CYCLES):
            self.wait(k, spin=False)

    def wake(self):
        """Wake the workers that sleep (a post of the caller's is seen by the others)."""
        for wake in self.wakes:
            wake.set()

    def wait(self, k, spin=True):
        """Return once every worker has finished step ``k`` (spinning up to ``SPIN_CYCLES``
        on each unless ``spin`` is False, then sleeping 50 us at a time); a worker's error
        is raised here."""
        flags = self.flags
        for i in range(1, len(self.bounds) - 1):
            done = 2 * i + 1  # its jobs done: step k is job k + 1
            if spin and spin_until(flags, done, k + 2, SPIN_CYCLES):
                continue
            while load(flags, done) < k + 2:  # a worker late (descheduled): sleep, no spin
                future = self.futures[i - 1]
                if future.done() and load(flags, done) < k + 2:  # (it may have just finished)
                    future.result()  # a worker's error, raised here
                    raise RuntimeError("rnnkit: a worker thread ended before its pass")
                time.sleep(50e-6)

    def alone(self):
        """The workers stop; the caller computes every panel of the steps after this one.
        Call it between steps (after :meth:`wait`), when each worker has packed its panels."""
        self._stop_workers()
        self.futures, self.wakes = [], []
        self.bounds = np.array([0, self.bp.shape[0]], np.int64)

    def run(self, loop, finish, chunk):
        """Run every step: ``loop(k, stop, bounds)`` is the caller's compiled side of steps
        ``k .. stop - 1`` (at most ``chunk``; ``bounds`` the threads' panel ranges), returning
        ``stop`` or the step whose workers it waited for past the spin budget, which
        ``finish(k)`` then completes once they are done.

        A late worker is one the operating system does not run (more runnable threads
        than cores: another process, a pinned affinity); while it is late, both sides
        would spin on one core. Once three steps of a pass, and a quarter of its steps so
        far, were late, and its steps are short (under ``ALONE_MAX_STEP`` seconds), the
        workers stop and the caller computes the rest alone: with one core busy
        elsewhere, a pass of B = 1, H = 256, T = 200 spent 2.7 ms a step waiting, against
        0.1 ms computed alone. (A worker's start, and its first call in a process, can
        make a step or two late on an idle machine; so can a virtual CPU the hypervisor
        holds back for a few milliseconds.)
        """
        n = self.steps.shape[0]
        k, late, step_time = 0, 0, None
        while k < n:
            stop = min(n, k + chunk)
            start = time.perf_counter()
            done = loop(k, stop, self.bounds)
            if done > k:  # the fastest steps seen: what a step costs when no one is late
                per_step = (time.perf_counter() - start) / (done - k)
                step_time = per_step if step_time is None else min(step_time, per_step)
            k = done
            if k < stop:
                self.wake()
                self.wait(k, spin=False)  # the loop has spun already
                finish(k)
                k += 1
                late += 1
                if late >= 3 and 4 * late >= k and len(self.bounds) > 2 and (
                        step_time is None or step_time < ALONE_MAX_STEP):
                    self.alone()
                    _mark_contended()

    def _stop_workers(self):
        """Abandon the pass: the workers waiting stop, those not started yet never start
        (the caller has done their jobs); a worker's error is raised here."""
        post(self.flags, 1, 1)
        self.wake()
        for f in self.futures:
            if not f.cancel():  # started: it stops at its next look at the flags
                f.result()

    def __exit__(self, *exc):
        try:
            self._stop_workers()
        finally:
            if self.owner:
                self.owner = False
                _passes.release()


_passes = threading.Lock()  # held by the pass whose workers are in the pool
_contended_until = 0.0  # time.monotonic() before which passes run on their caller alone


def _mark_contended():
    global _contended_until
    _contended_until = time.monotonic() + CONTENDED_SECONDS


def _after_fork_in_child():
    global _passes
    _passes = threading.Lock()  # the child has none of the parent's threads or passes


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
