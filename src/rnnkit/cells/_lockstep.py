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

Flags (int64): ``flags[0]`` the number of steps posted by the caller,
``flags[1]`` 1 once the pass is abandoned, ``flags[2 + i]`` the number of
steps worker ``i`` has finished. Loads acquire and stores release (LLVM
atomics), so a step's inputs written before its flag are seen after it.
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
from ._compiled_kernels import _jit

SPIN_CYCLES = 3_000_000  # about 1 ms at 3 GHz, on the time-stamp counter
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
def serve_gemm(a3, steps, bp, out, lo, hi, flags, slot, k, budget):
    """A worker's share of a pass, from step ``k``: for each step, once posted,
    ``out[:, panels lo..hi-1] = a3[steps[k]] @ B`` (``packed_gemm``), then
    ``flags[slot] = k + 1``. Returns the step it stopped at: ``len(steps)`` when done,
    -1 when the pass was abandoned, else the step it waited for past ``budget``."""
    n = steps.shape[0]
    while k < n:
        if not spin_until(flags, 0, k + 1, budget):
            return -1 if _load(flags, 1) != 0 else k
        _packed_gemm.packed_gemm(a3[steps[k]], bp, out, lo, hi)
        _store(flags, slot, k + 1)
        k += 1
    return n


class GemmSteps:
    """The region's workers, each on its panels of every step's packed GEMM, for one pass.

    ``with GemmSteps(threads, a3, steps, bp, out) as steps:`` then, for each
    step ``k``, ``steps.gemm(k)`` computes ``out = a3[steps[k]] @ B`` (the
    caller's share of the panels, then a wait for the workers'). The workers
    start on entry (one job each in the region's pool) and end on exit, also
    when the pass stops early with an error. Once the interpreter is shutting
    down (the pool takes no work), the caller computes every panel.
    """

    def __init__(self, threads, a3, steps, bp, out):
        from .compiled import _pool

        self.a3, self.steps, self.bp, self.out = a3, steps, bp, out
        n = threads.n
        P = bp.shape[0]
        self.bounds = [P * i // n for i in range(n + 1)]
        self.flags = np.zeros(n + 2, np.int64)  # see the module's docstring
        self.wakes = [threading.Event() for _ in range(n - 1)]  # one each: only its own
        # worker clears it, so no wake-up is lost
        self.pool = _pool(n - 1)
        self.futures = []
        self.owner = False

    def __enter__(self):
        # one pass at a time holds the pool: two passes of other Python threads that queued
        # their workers interleaved could each wait for a worker queued behind the other's
        self.owner = _passes.acquire(blocking=False)
        if not self.owner:  # another pass runs: this one computes every panel itself
            self.bounds = [0, self.bp.shape[0]]
            return self
        try:
            for i in range(1, len(self.bounds) - 1):
                self.futures.append(self.pool.submit(self._worker, i))
        except RuntimeError:  # "cannot schedule new futures after (interpreter) shutdown"
            self.__exit__(None, None, None)  # the workers started stop
            self.futures, self.bounds = [], [0, self.bp.shape[0]]  # all on the caller
        except BaseException:  # a Ctrl-C in submit: stop the workers queued, then raise
            self.__exit__(None, None, None)
            raise
        return self

    def _worker(self, i):
        k, lo, hi, slot = 0, self.bounds[i], self.bounds[i + 1], 1 + i
        flags, wake = self.flags, self.wakes[i - 1]
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
        flags = self.flags
        post(flags, 0, k + 1)
        for wake in self.wakes:
            wake.set()
        _packed_gemm.packed_gemm(self.a3[self.steps[k]], self.bp, self.out, 0, self.bounds[1])
        for slot in range(2, len(self.bounds)):
            if spin_until(flags, slot, k + 1, SPIN_CYCLES):
                continue
            while load(flags, slot) <= k:  # a worker late (descheduled): sleep, do not spin
                future = self.futures[slot - 2]
                if future.done() and load(flags, slot) <= k:  # (it may have just finished)
                    future.result()  # a worker's error, raised here
                    raise RuntimeError("rnnkit: a worker thread ended before its pass")
                time.sleep(50e-6)

    def __exit__(self, *exc):
        post(self.flags, 1, 1)  # workers still waiting stop
        for wake in self.wakes:
            wake.set()
        try:
            for f in self.futures:
                f.result()
        finally:
            if self.owner:
                self.owner = False
                _passes.release()


_passes = threading.Lock()  # held by the pass whose workers are in the pool


def _after_fork_in_child():
    global _passes
    _passes = threading.Lock()  # the child has none of the parent's threads or passes


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
