"""Learning-rate schedules that write ``optimizer.lr``, after ``torch.optim.lr_scheduler``.

Each scheduler takes the optimizer's ``lr`` at construction as its base
learning rate, sets the learning rate of epoch 0 at once, and sets the next
one at every ``step()``. The learning rate is computed in closed form from
``base_lr`` and ``last_epoch`` (PyTorch updates most of them recursively; the
two agree to round-off), so a schedule never drifts and resumes exactly from
``state_dict()``. A change made to ``optimizer.lr`` by hand is overwritten at
the next ``step()``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

__all__ = [
    "CosineAnnealingLR",
    "CosineWithWarmupLR",
    "ExponentialLR",
    "LRScheduler",
    "LinearLR",
    "StepLR",
    "cosine_with_warmup",
]


def _int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _real(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def cosine_with_warmup(step, *, lr, warmup_steps, total_steps, min_lr):
    """Linear warm-up, then cosine decay to ``min_lr`` (nanoGPT's ``get_lr``).

    Parameters
    ----------
    step : int
        The step (iteration) number, from 0.
    lr : float
        Peak learning rate, reached at ``step == warmup_steps``.
    warmup_steps : int
        Number of warm-up steps, ``>= 0``.
    total_steps : int
        Step at which the decay ends, ``>= warmup_steps``; ``min_lr`` from
        there on.
    min_lr : float
        Final learning rate.

    Returns
    -------
    float
        The learning rate for ``step``.

    Notes
    -----
    ::

        step < warmup_steps:                lr * (step + 1) / (warmup_steps + 1)
        step >= total_steps:                min_lr
        otherwise, with r = (step - warmup_steps) / (total_steps - warmup_steps):
                                            min_lr + (1 + cos(pi * r)) / 2 * (lr - min_lr)

    References
    ----------
    .. [1] I. Loshchilov and F. Hutter, "SGDR: Stochastic Gradient Descent
       with Warm Restarts", ICLR 2017, https://arxiv.org/abs/1608.03983
    .. [2] A. Karpathy, nanoGPT, ``train.py``, ``get_lr``.

    Examples
    --------
    >>> cosine_with_warmup(0, lr=1.0, warmup_steps=3, total_steps=13, min_lr=0.0)
    0.25
    >>> cosine_with_warmup(8, lr=1.0, warmup_steps=3, total_steps=13, min_lr=0.0)
    0.5
    """
    step = _int("step", step, 0)
    warmup_steps = _int("warmup_steps", warmup_steps, 0)
    total_steps = _int("total_steps", total_steps, warmup_steps)
    lr, min_lr = _real("lr", lr), _real("min_lr", min_lr)
    # 1) linear warm-up
    if step < warmup_steps:
        return lr * (step + 1) / (warmup_steps + 1)
    # 2) past the decay: constant
    if step >= total_steps:
        return min_lr
    # 3) in between: cosine from lr down to min_lr
    decay_ratio = (step - warmup_steps) / (total_steps - warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (lr - min_lr)


class LRScheduler:
    """Base class: sets ``optimizer.lr`` to ``self._lr_at(last_epoch)``.

    Parameters
    ----------
    optimizer : Optimizer
        Any object with a settable float attribute ``lr``.

    Attributes
    ----------
    optimizer : Optimizer
        The optimizer whose ``lr`` is written.
    base_lr : float
        ``optimizer.lr`` when the scheduler was made.
    last_epoch : int
        Number of ``step()`` calls so far (0 after construction).
    """

    #: names of the constructor's hyperparameters, saved by state_dict
    _hyperparameters: tuple[str, ...] = ()

    def __init__(self, optimizer):
        if not hasattr(optimizer, "lr"):
            raise TypeError(
                f"{type(optimizer).__name__} has no attribute 'lr'; a scheduler needs an "
                "optimizer whose learning rate it can set"
            )
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = 0
        self._apply(self._lr_at(0))

    def _lr_at(self, epoch):  # pragma: no cover - overridden
        raise NotImplementedError

    def _apply(self, lr):
        self.optimizer.lr = lr
        self._last_lr = lr

    def step(self):
        """Advance one epoch (or step) and set the optimizer's learning rate."""
        self.last_epoch += 1
        self._apply(self._lr_at(self.last_epoch))

    def get_last_lr(self):
        """Return the last learning rate set, as a one-element list (as PyTorch)."""
        return [self._last_lr]

    def state_dict(self):
        """Return a JSON-able dict: hyperparameters, ``base_lr``, ``last_epoch``, ``last_lr``."""
        sd = {name: getattr(self, name) for name in self._hyperparameters}
        sd.update(base_lr=self.base_lr, last_epoch=self.last_epoch, last_lr=self._last_lr)
        return sd

    def load_state_dict(self, state_dict):
        """Restore a :meth:`state_dict` and set the optimizer's learning rate to ``last_lr``."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        expected = {*self._hyperparameters, "base_lr", "last_epoch", "last_lr"}
        if set(state_dict) != expected:
            missing = sorted(expected - set(state_dict))
            unexpected = sorted(set(state_dict) - expected)
            raise ValueError(
                f"state_dict does not match {type(self).__name__}; "
                f"missing: {missing}, unexpected: {unexpected}"
            )
        hyper = self._validate(**{name: state_dict[name] for name in self._hyperparameters})
        last_epoch = _int("last_epoch", state_dict["last_epoch"], 0)
        base_lr = _real("base_lr", state_dict["base_lr"])
        last_lr = _real("last_lr", state_dict["last_lr"])
        self._set_hyperparameters(hyper)
        self.base_lr, self.last_epoch = base_lr, last_epoch
        self._apply(last_lr)

    @staticmethod
    def _validate(**hyperparameters):  # pragma: no cover - overridden
        raise NotImplementedError

    def _set_hyperparameters(self, hyperparameters):
        for name, value in hyperparameters.items():
            setattr(self, name, value)

    def __repr__(self):
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._hyperparameters)
        return f"{type(self).__name__}({args})"


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs.

    Parameters
    ----------
    optimizer : Optimizer
        Optimizer whose ``lr`` is set.
    step_size : int
        Period of the decay, ``>= 1``.
    gamma : float, default=0.1
        Multiplicative factor.

    Notes
    -----
    ``lr = base_lr * gamma ** (last_epoch // step_size)``

    References
    ----------
    .. [1] ``torch.optim.lr_scheduler.StepLR``, PyTorch 2.13.
    """

    _hyperparameters = ("step_size", "gamma")

    def __init__(self, optimizer, step_size, gamma=0.1):
        self._set_hyperparameters(self._validate(step_size=step_size, gamma=gamma))
        super().__init__(optimizer)

    @staticmethod
    def _validate(*, step_size, gamma):
        return {"step_size": _int("step_size", step_size, 1), "gamma": _real("gamma", gamma)}

    def _lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every epoch.

    Parameters
    ----------
    optimizer : Optimizer
        Optimizer whose ``lr`` is set.
    gamma : float
        Multiplicative factor.

    Notes
    -----
    ``lr = base_lr * gamma ** last_epoch``

    References
    ----------
    .. [1] ``torch.optim.lr_scheduler.ExponentialLR``, PyTorch 2.13.
    """

    _hyperparameters = ("gamma",)

    def __init__(self, optimizer, gamma):
        self._set_hyperparameters(self._validate(gamma=gamma))
        super().__init__(optimizer)

    @staticmethod
    def _validate(*, gamma):
        return {"gamma": _real("gamma", gamma)}

    def _lr_at(self, epoch):
        return self.base_lr * self.gamma**epoch


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from ``base_lr`` to ``eta_min`` over ``T_max`` epochs (no restarts).

    Parameters
    ----------
    optimizer : Optimizer
        Optimizer whose ``lr`` is set.
    T_max : int
        Half period of the cosine, ``>= 1``.
    eta_min : float, default=0
        Minimum learning rate.

    Notes
    -----
    ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * last_epoch / T_max)) / 2``

    Past ``T_max`` the cosine continues, so the rate rises again, as in
    PyTorch.

    References
    ----------
    .. [1] I. Loshchilov and F. Hutter, "SGDR: Stochastic Gradient Descent
       with Warm Restarts", ICLR 2017, https://arxiv.org/abs/1608.03983
    .. [2] ``torch.optim.lr_scheduler.CosineAnnealingLR``, PyTorch 2.13.
    """

    _hyperparameters = ("T_max", "eta_min")

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self._set_hyperparameters(self._validate(T_max=T_max, eta_min=eta_min))
        super().__init__(optimizer)

    @staticmethod
    def _validate(*, T_max, eta_min):
        return {"T_max": _int("T_max", T_max, 1), "eta_min": _real("eta_min", eta_min)}

    def _lr_at(self, epoch):
        cos = math.cos(math.pi * epoch / self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + cos) / 2


class LinearLR(LRScheduler):
    """Scale the learning rate by a factor that moves linearly (a warm-up, typically).

    Parameters
    ----------
    optimizer : Optimizer
        Optimizer whose ``lr`` is set.
    start_factor : float, default=1/3
        Factor at epoch 0, in ``(0, 1]``.
    end_factor : float, default=1
        Factor from epoch ``total_iters`` on, in ``[0, 1]``.
    total_iters : int, default=5
        Number of epochs of the linear change, ``>= 1``.

    Notes
    -----
    ``lr = base_lr * (start_factor + (end_factor - start_factor)
    * min(total_iters, last_epoch) / total_iters)``

    References
    ----------
    .. [1] ``torch.optim.lr_scheduler.LinearLR``, PyTorch 2.13.
    """

    _hyperparameters = ("start_factor", "end_factor", "total_iters")

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5):
        self._set_hyperparameters(
            self._validate(
                start_factor=start_factor, end_factor=end_factor, total_iters=total_iters
            )
        )
        super().__init__(optimizer)

    @staticmethod
    def _validate(*, start_factor, end_factor, total_iters):
        start_factor = _real("start_factor", start_factor)
        end_factor = _real("end_factor", end_factor)
        if start_factor > 1.0 or not start_factor > 0:
            raise ValueError(
                "Starting multiplicative factor expected to be greater than 0 and less or "
                "equal to 1."
            )
        if end_factor > 1.0 or not end_factor >= 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        return {
            "start_factor": start_factor,
            "end_factor": end_factor,
            "total_iters": _int("total_iters", total_iters, 1),
        }

    def _lr_at(self, epoch):
        progress = min(self.total_iters, epoch) / self.total_iters
        return self.base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)


class CosineWithWarmupLR(LRScheduler):
    """Linear warm-up, then cosine decay to ``min_lr``: :func:`cosine_with_warmup` as a scheduler.

    Parameters
    ----------
    optimizer : Optimizer
        Optimizer whose ``lr`` is set; its ``lr`` is the peak rate.
    warmup_steps : int
        Number of warm-up steps, ``>= 0``.
    total_steps : int
        Step at which the decay ends, ``>= warmup_steps``.
    min_lr : float, default=0
        Final learning rate.

    Notes
    -----
    ``lr = cosine_with_warmup(last_epoch, lr=base_lr, warmup_steps=warmup_steps,
    total_steps=total_steps, min_lr=min_lr)``. It has no PyTorch counterpart.

    References
    ----------
    .. [1] A. Karpathy, nanoGPT, ``train.py``, ``get_lr``.
    """

    _hyperparameters = ("warmup_steps", "total_steps", "min_lr")

    def __init__(self, optimizer, warmup_steps, total_steps, min_lr=0.0):
        self._set_hyperparameters(
            self._validate(warmup_steps=warmup_steps, total_steps=total_steps, min_lr=min_lr)
        )
        super().__init__(optimizer)

    @staticmethod
    def _validate(*, warmup_steps, total_steps, min_lr):
        warmup_steps = _int("warmup_steps", warmup_steps, 0)
        return {
            "warmup_steps": warmup_steps,
            "total_steps": _int("total_steps", total_steps, warmup_steps),
            "min_lr": _real("min_lr", min_lr),
        }

    def _lr_at(self, epoch):
        return cosine_with_warmup(
            epoch,
            lr=self.base_lr,
            warmup_steps=self.warmup_steps,
            total_steps=self.total_steps,
            min_lr=self.min_lr,
        )
