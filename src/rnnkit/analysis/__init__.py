"""Looking inside trained recurrent networks.

- :mod:`~rnnkit.analysis.saliency`: gradients of a chosen output with respect
  to every input step, through the model's own backward pass.
- :mod:`~rnnkit.analysis.ablation`: silence hidden units, measure the loss.
- :mod:`~rnnkit.analysis.trajectories`: hidden states over time, PCA.
- :mod:`~rnnkit.analysis.fixed_points`: fixed points and their stability
  (RNN, GRU, LSTM and CTRNN steps).
- :mod:`~rnnkit.analysis.plots`: PNG figures (needs matplotlib, the ``plot`` extra).

The per-step states and gates themselves come from the layers'
``internals()``.
"""

from .ablation import AblationResult, ablation_effect, ablation_scan, outgoing_weights, silence
from .fixed_points import (
    FixedPointFinder,
    FixedPoints,
    find_fixed_points,
    sample_states,
    step_map,
    trajectory_states,
)
from .saliency import input_gradient, saliency, saliency_scores
from .trajectories import PCA, fit_pca, hidden_states, project

__all__ = [
    "PCA",
    "AblationResult",
    "FixedPointFinder",
    "FixedPoints",
    "ablation_effect",
    "ablation_scan",
    "find_fixed_points",
    "fit_pca",
    "hidden_states",
    "input_gradient",
    "outgoing_weights",
    "project",
    "saliency",
    "saliency_scores",
    "sample_states",
    "silence",
    "step_map",
    "trajectory_states",
]
