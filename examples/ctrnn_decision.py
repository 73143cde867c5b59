"""A CTRNN obeying Dale's law (80% excitatory) learns perceptual decision-making.

Trains :class:`rnnkit.ctrnn.CTRNNModel` (50 rate units, relu, dt = 20 ms,
tau = 100 ms, recurrent noise) with rnnkit's Trainer on
:func:`rnnkit.tasks.perceptual_decision`, then, on held-out trials:

- reports the accuracy (the larger mean output in the decision epoch);
- checks that every effective weight kept the sign Dale's law gives it
  (excitatory columns >= 0, inhibitory columns <= 0, inputs >= 0, only
  excitatory units read out);
- draws the psychometric curve (probability of choosing A against the signed
  coherence) into ``docs/img/ctrnn_psychometric.png``.

Run from the project root (about a minute on two cores)::

    python examples/ctrnn_decision.py [--steps 600] [--seed 0] [--out docs/img/ctrnn_psychometric.png]

References: Song, Yang & Wang (2016); Ehrlich et al. (2021), PsychRNN.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rnnkit import Trainer, TrainerConfig
from rnnkit.ctrnn import CTRNNModel
from rnnkit.tasks import TaskBatches, decision_accuracy, perceptual_decision


def dale_signs_kept(model):
    """True if every effective weight has the sign Dale's law prescribes."""
    eff = model.effective_weights()
    n_e = model.rnn.n_excitatory
    w = eff["weight_hh"]
    return bool((w[:, :n_e] >= 0).all() and (w[:, n_e:] <= 0).all()
                and (eff["weight_ih"] >= 0).all() and (eff["weight_out"] >= 0).all()
                and (eff["weight_out"][:, n_e:] == 0).all())


def psychometric(model, coherences, n_trials, seed):
    """P(choose A) for each signed coherence, on fresh trials (no recurrent noise)."""
    p = []
    for i, c in enumerate(coherences):
        trials = perceptual_decision(n_trials, coherences=[c], random_sign=False,
                                     rng=np.random.default_rng([seed, i]))
        y, _ = model.forward(trials.x)
        mean = y[trials.info["epochs"]["decision"]].mean(axis=0)  # (B, 2)
        p.append(float(np.mean(mean[:, 0] > mean[:, 1])))
    return np.array(p)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/img/ctrnn_psychometric.png")
    args = ap.parse_args(argv)

    model = CTRNNModel(3, 50, 2, dt=20.0, tau=100.0, noise_std=0.05, activation="relu",
                       dale_ratio=0.8, train_initial_state=True, l2_firing_rate=1e-3,
                       rng=args.seed)
    train = TaskBatches(perceptual_decision, n_batches=args.steps, batch_size=64,
                        seed=args.seed + 1)
    val = TaskBatches(perceptual_decision, n_batches=2, batch_size=256, seed=10_000)
    config = TrainerConfig(optimizer="adam", lr=1e-2, epochs=1, clip_grad_norm=1.0,
                           eval_every=max(args.steps // 4, 1), progress=False,
                           seed=args.seed)
    start = time.perf_counter()
    Trainer(model, config, train, val, log=print).fit()
    print(f"trained {args.steps} steps in {time.perf_counter() - start:.0f} s")

    model.eval()  # no recurrent noise: the stimulus noise alone makes the trials hard
    held_out = perceptual_decision(2000, rng=np.random.default_rng([args.seed, 99]))
    y, _ = model.forward(held_out.x)
    acc, _ = decision_accuracy(y, held_out)
    print(f"held-out accuracy: {acc:.1%} on {held_out.x.shape[1]} trials "
          f"(coherences +/-{', '.join(map(str, (0.05, 0.1, 0.2, 0.4, 0.8)))})")
    kept = dale_signs_kept(model)
    print(f"Dale's law kept on every weight: {kept} "
          f"({model.rnn.n_excitatory} excitatory, "
          f"{model.hidden_size - model.rnn.n_excitatory} inhibitory units)")

    coh = np.array([-0.2, -0.1, -0.05, -0.025, -0.0125, 0.0, 0.0125, 0.025, 0.05, 0.1, 0.2])
    p = psychometric(model, coh, 400, args.seed + 7)
    for c, pc in zip(coh, p):
        print(f"  coherence {c:+.4f}: P(choose A) = {pc:.3f}")
    from rnnkit.analysis.plots import plot_psychometric

    print("wrote", plot_psychometric(coh, p, args.out, n_trials=400,
                                     title="CTRNN, Dale's law (80% E): perceptual decision"))
    return 0 if acc >= 0.95 and kept else 1


if __name__ == "__main__":
    raise SystemExit(main())
