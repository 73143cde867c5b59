"""Train a 3-bit flip-flop network, then find its fixed points (Sussillo & Barak 2013).

A GRU (24 units) learns the 3-bit flip-flop of :func:`rnnkit.tasks.flip_flop`
with rnnkit's Trainer. The fixed-point finder then starts from 1024 states
sampled on the network's own trajectories (plus noise) at zero input, and
reports what it finds: the 8 memories are stable fixed points at the corners
of a cube (in the read-out, each is one of the 8 sign patterns), with saddle
points between them whose unstable directions lead to the neighbouring
corners. The figure (trajectories and fixed points in the first three
principal components) goes to ``docs/img/flipflop_fixed_points.png``.

Run from the project root (about a minute on two cores)::

    python examples/flipflop_fixed_points.py [--cell gru] [--steps 800] [--seed 0]

References: Sussillo & Barak (2013), Neural Comput. 25(3): 626-649; Golub &
Sussillo (2018), FixedPointFinder, JOSS 3(31): 1003.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from rnnkit import SequenceModel, Trainer, TrainerConfig
from rnnkit.analysis import FixedPointFinder, fit_pca, sample_states, step_map, trajectory_states
from rnnkit.tasks import TaskBatches, flip_flop


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cell", choices=("gru", "lstm", "rnn"), default="gru")
    ap.add_argument("--hidden-size", type=int, default=24)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--n-steps", type=int, default=128, help="time steps per trial")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/img/flipflop_fixed_points.png")
    args = ap.parse_args(argv)

    H = args.hidden_size
    model = SequenceModel(3, H, 3, cell=args.cell, loss="mse", rng=args.seed)
    train = TaskBatches(flip_flop, n_batches=args.steps, batch_size=64, seed=args.seed + 1,
                        masked=False, n_steps=args.n_steps)
    val = TaskBatches(flip_flop, n_batches=1, batch_size=256, seed=10_000, masked=False,
                      n_steps=args.n_steps)
    config = TrainerConfig(optimizer="adam", lr=1e-2, epochs=1, clip_grad_norm=1.0,
                           eval_every=max(args.steps // 4, 1), progress=False, seed=args.seed)
    start = time.perf_counter()
    Trainer(model, config, train, val, log=print).fit()
    print(f"trained {model.rnn!r} for {args.steps} steps in {time.perf_counter() - start:.0f} s")

    trials = flip_flop(128, n_steps=args.n_steps, rng=np.random.default_rng([args.seed, 7]))
    model.eval()
    y, _ = model.forward(trials.x)
    bit_acc = float(np.mean(np.sign(y) == trials.y))
    print(f"held-out: {bit_acc:.2%} of the bits have the right sign at every step")

    step = step_map(model)  # zero input: the dynamics between pulses
    states = trajectory_states(model, trials.x, step)  # (T, B, n)
    init = sample_states(states, 1024, noise_std=0.3, rng=args.seed)
    start = time.perf_counter()
    fps = FixedPointFinder(step, tol_unique=1e-3).find(init)
    print(f"fixed-point search: {time.perf_counter() - start:.1f} s, {fps.n_converged} of "
          f"{fps.n_initial} starts converged (q <= 1e-12)")
    counts = fps.counts()
    print(f"found {len(fps)} fixed points: {counts['stable']} stable, {counts['saddle']} "
          f"saddles, {counts['unstable']} unstable")
    print("saddles by number of unstable directions:",
          dict(zip(*(a.tolist() for a in np.unique(fps.n_unstable[fps.kinds == "saddle"],
                                                   return_counts=True)))))

    # the read-out of each stable point: which of the 8 corners it stores
    stable = fps.select("stable")
    h = stable.states[:, :H]  # the h part (LSTM states are [h, c])
    read = h @ model.params["head.weight"].T + model.params["head.bias"]
    corners = {tuple(int(v) for v in np.sign(r)) for r in read}
    print("read-out of the stable points (rounded):")
    for r in read[np.lexsort(read.T[::-1])]:
        print("  ", np.round(r, 2))
    all_corners = set(itertools.product((-1, 1), repeat=3))
    print(f"corners covered: {len(corners & all_corners)} of 8")

    # where each saddle's unstable direction leads: run the map from both sides of it
    saddles = fps.select(fps.n_unstable == 1)
    edges = set()
    if len(saddles):
        push = []
        for J in saddles.jacobians:  # the eigenvector of the eigenvalue outside the unit circle
            ev, vecs = np.linalg.eig(J)
            push.append(np.real(vecs[:, np.argmax(np.abs(ev))]))
        ends = []
        for sign in (1.0, -1.0):
            s = saddles.states + sign * 1e-3 * np.stack(push)
            for _ in range(500):
                s = step(s)
            r = s[:, :H] @ model.params["head.weight"].T + model.params["head.bias"]
            ends.append([tuple(int(v) for v in np.sign(row)) for row in r])
        edges = {frozenset(pair) for pair in zip(*ends)
                 if sum(a != b for a, b in zip(*pair)) == 1}
    print(f"saddles with one unstable direction: {len(saddles)}; they separate "
          f"{len(edges)} distinct pairs of corners that differ in one bit (a cube has 12 edges)")

    pca = fit_pca(states, 3)
    from rnnkit.analysis.plots import plot_fixed_points

    path = plot_fixed_points(
        fps, pca, args.out, trajectories=states[:, :12],
        title=f"3-bit flip-flop {args.cell.upper()}({H}): {counts['stable']} stable, "
              f"{counts['saddle']} saddles")
    print("wrote", path)
    return 0 if counts["stable"] == 8 and len(corners & all_corners) == 8 else 1


if __name__ == "__main__":
    raise SystemExit(main())
