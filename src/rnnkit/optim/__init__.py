"""Optimizers, gradient clipping and learning-rate schedules for flat parameter dicts.

Parameters and gradients are ``dict[str, ndarray]`` with the same keys and
shapes; every update is made in place. Numerics, defaults and state names
follow ``torch.optim`` 2.13.
"""

from .clip import clip_grad_norm, clip_grad_value
from .optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from .schedules import (
    CosineAnnealingLR,
    CosineWithWarmupLR,
    ExponentialLR,
    LinearLR,
    LRScheduler,
    StepLR,
    cosine_with_warmup,
)

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "CosineWithWarmupLR",
    "ExponentialLR",
    "LRScheduler",
    "LinearLR",
    "Optimizer",
    "RMSprop",
    "StepLR",
    "clip_grad_norm",
    "clip_grad_value",
    "cosine_with_warmup",
]
