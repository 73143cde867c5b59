"""First-order optimizers that update flat parameter dicts in place.

Every optimizer works on two dicts with the same keys and shapes,
``params: dict[str, ndarray]`` and ``grads: dict[str, ndarray]``, and writes
the new parameter values into the existing arrays (layers and models hold
references to them). The numerics follow ``torch.optim`` 2.13 (the
single-tensor code path): the same defaults, the same order of operations
where it matters, the same error messages and the same state names.

Each ``step()`` runs a handful of in-place ufuncs per parameter and allocates
nothing after the first call: the work arrays are shared between parameters of
the same shape and dtype, and the state buffers keep the parameter's dtype.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop"]


# ---------------------------------------------------------------------------
# validation helpers (PyTorch-style messages)


def _real(name, value):
    """Return ``value`` as a float, or raise TypeError if it is not a real number."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def _flag(name, value):
    """Return ``value`` as a bool, or raise TypeError if it is not a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def _non_negative(name, value, label):
    """Check ``0 <= value`` (NaN fails) with torch's ``Invalid <label>: <value>`` message."""
    value = _real(name, value)
    if not 0.0 <= value:
        raise ValueError(f"Invalid {label}: {value}")
    return value


def _check_lr(lr):
    return _non_negative("lr", lr, "learning rate")


def _check_betas(betas):
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise TypeError(f"betas must be a pair of floats, got {betas!r}") from None
    beta1, beta2 = _real("betas[0]", beta1), _real("betas[1]", beta2)
    if not 0.0 <= beta1 < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {beta1}")
    if not 0.0 <= beta2 < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {beta2}")
    return (beta1, beta2)


def _check_array(dict_name, key, value):
    if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.floating):
        what = (
            f"ndarray of dtype {value.dtype}"
            if isinstance(value, np.ndarray)
            else (type(value).__name__)
        )
        raise TypeError(f"{dict_name}[{key!r}] must be a floating-point ndarray, got {what}")
    if not value.flags.writeable:
        raise ValueError(
            f"{dict_name}[{key!r}] is read-only; the optimizer updates arrays in place"
        )


def _check_params_grads(params, grads):
    """Check that params and grads are dicts of float arrays with equal keys, shapes, dtypes."""
    for name, d in (("params", params), ("grads", grads)):
        if not isinstance(d, Mapping):
            raise TypeError(f"{name} must be a dict of str to ndarray, got {type(d).__name__}")
    if len(params) == 0:
        raise ValueError("optimizer got an empty parameter dict")
    missing = [k for k in params if k not in grads]
    unexpected = [k for k in grads if k not in params]
    if missing or unexpected:
        raise ValueError(
            "params and grads must have the same keys; "
            f"missing from grads: {missing}, not in params: {unexpected}"
        )
    for key, p in params.items():
        if not isinstance(key, str):
            raise TypeError(f"parameter names must be str, got {type(key).__name__} {key!r}")
        g = grads[key]
        _check_array("params", key, p)
        _check_array("grads", key, g)
        if g.shape != p.shape:
            raise ValueError(
                f"grads[{key!r}] has shape {g.shape}, expected {p.shape} "
                f"(the shape of params[{key!r}])"
            )
        if g.dtype != p.dtype:
            raise ValueError(
                f"grads[{key!r}] has dtype {g.dtype}, expected {p.dtype} "
                f"(the dtype of params[{key!r}])"
            )


def _key_diff(got, expected):
    missing = sorted(k for k in expected if k not in got)
    unexpected = sorted(k for k in got if k not in expected)
    return f"missing: {missing}, unexpected: {unexpected}"


# ---------------------------------------------------------------------------
# base class


class Optimizer:
    """Base class of the optimizers: holds ``params``, ``grads`` and per-parameter state.

    Subclasses define the hyperparameters (``_validate``), the state buffers a
    configuration needs (``_required_buffers``) and the update of one
    parameter (``_update``); everything else lives here.

    Parameters
    ----------
    params : dict of str to ndarray
        Parameters, updated in place by :meth:`step`. Float arrays (float32 or
        float64), writable.
    grads : dict of str to ndarray
        Gradients with the same keys, shapes and dtypes as ``params``. Read by
        :meth:`step` (never modified by it) and set to zero by
        :meth:`zero_grad`.
    **hyperparameters
        The subclass's hyperparameters, checked by its ``_validate``.

    Attributes
    ----------
    params, grads : dict of str to ndarray
        The dicts given at construction (the same objects, not copies).
    lr : float
        Learning rate. Settable (learning-rate schedules write it); a negative
        or NaN value raises ValueError. The other hyperparameters are plain
        attributes named as in the constructor.
    state : dict of str to dict
        Per parameter: ``"step"`` (int, the number of updates made) and the
        optimizer's buffers (ndarrays of the parameter's shape and dtype),
        created on the first :meth:`step`, under ``torch.optim``'s names.

    Notes
    -----
    ``state_dict()`` returns a dict that holds only JSON-able values and
    ndarray copies::

        {"defaults": {"lr": 0.001, ...},
         "state": {"head.weight": {"step": 10, "exp_avg": ndarray, ...}, ...}}

    and ``load_state_dict`` restores it exactly, so that a resumed run is bit
    for bit the same as an uninterrupted one.
    """

    #: names of the hyperparameters, in signature order; also the keys of "defaults"
    _hyperparameters: tuple[str, ...] = ("lr",)

    def __init__(self, params, grads, **hyperparameters):
        _check_params_grads(params, grads)
        self.params = params
        self.grads = grads
        self._set_hyperparameters(self._validate(**hyperparameters))
        self.state = {key: {"step": 0} for key in params}
        self._work = {}  # (shape, dtype) -> two scratch arrays shared by same-shaped params

    # -- hyperparameters ----------------------------------------------------

    @staticmethod
    def _validate(**hyperparameters):  # pragma: no cover - overridden
        raise NotImplementedError

    @staticmethod
    def _required_buffers(hyperparameters):  # pragma: no cover - overridden
        """Names of the state buffers that this configuration keeps after a step."""
        raise NotImplementedError

    def _set_hyperparameters(self, hyperparameters):
        for name, value in hyperparameters.items():
            setattr(self, name, value)

    @property
    def lr(self):
        """Learning rate (float); settable, checked to be >= 0."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = _check_lr(value)

    def _hyperparameter_dict(self):
        return {name: getattr(self, name) for name in self._hyperparameters}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyperparameter_dict().items())
        return f"{type(self).__name__}({args})"

    # -- the update ---------------------------------------------------------

    def step(self):
        """Update every parameter in place from its gradient."""
        for key, st in self.state.items():
            p = self.params[key]
            work = self._work.get((p.shape, p.dtype))
            if work is None:
                work = self._work[(p.shape, p.dtype)] = (
                    np.empty(p.shape, p.dtype),
                    np.empty(p.shape, p.dtype),
                )
            st["step"] += 1
            self._update(p, self.grads[key], st, *work)

    def _update(self, p, grad, st, s, t):  # pragma: no cover - overridden
        """Update ``p`` in place; ``s`` and ``t`` are scratch arrays shaped like ``p``."""
        raise NotImplementedError

    def _effective_grad(self, p, grad, s, weight_decay):
        """Return the gradient to descend: ``(-grad if maximize) + weight_decay * p``.

        Written into the scratch array ``s`` when it differs from ``grad``, which
        is never modified.
        """
        if weight_decay != 0:
            np.multiply(p, weight_decay, out=s)
            if self.maximize:
                np.subtract(s, grad, out=s)
            else:
                np.add(s, grad, out=s)
            return s
        if self.maximize:
            return np.negative(grad, out=s)
        return grad

    def zero_grad(self):
        """Set every gradient to zero in place (the arrays stay the same objects)."""
        for g in self.grads.values():
            g.fill(0)

    # -- state --------------------------------------------------------------

    def state_dict(self):
        """Return the hyperparameters and a copy of the state.

        Returns
        -------
        dict
            ``{"defaults": {name: value}, "state": {key: {"step": int,
            buffer_name: ndarray}}}``. ``defaults`` is JSON-able (``betas`` is
            a list); the arrays are copies, so later steps do not change them.
        """
        defaults = {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in self._hyperparameter_dict().items()
        }
        state = {
            key: {
                name: (value.copy() if isinstance(value, np.ndarray) else int(value))
                for name, value in st.items()
            }
            for key, st in self.state.items()
        }
        return {"defaults": defaults, "state": state}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state saved by :meth:`state_dict`.

        Everything is checked before anything changes: the keys of
        ``defaults`` and ``state``, the hyperparameter values, the step
        counts, the buffer names the loaded configuration needs and the buffer
        shapes. Buffers are copied (into the parameter's dtype).

        Parameters
        ----------
        state_dict : dict
            As returned by :meth:`state_dict` (possibly after a JSON round
            trip of ``defaults``).

        Raises
        ------
        TypeError
            If ``state_dict`` or one of its parts has the wrong type.
        ValueError
            If keys, step counts, buffer names or shapes do not match.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        if set(state_dict) != {"defaults", "state"}:
            raise ValueError(
                "state_dict must have exactly the keys 'defaults' and 'state'; "
                + _key_diff(state_dict, ("defaults", "state"))
            )
        defaults, state = state_dict["defaults"], state_dict["state"]
        name = type(self).__name__
        if not isinstance(defaults, Mapping) or not isinstance(state, Mapping):
            raise TypeError("state_dict['defaults'] and state_dict['state'] must be dicts")
        if set(defaults) != set(self._hyperparameters):
            raise ValueError(
                f"state_dict['defaults'] does not hold the hyperparameters of {name}; "
                + _key_diff(defaults, self._hyperparameters)
            )
        hyper = self._validate(**defaults)
        if set(state) != set(self.state):
            raise ValueError(
                "state_dict['state'] does not hold the parameters of this optimizer; "
                + _key_diff(state, self.state)
            )
        required = set(self._required_buffers(hyper))
        new_state = {}
        for key, entry in state.items():
            where = f"state_dict['state'][{key!r}]"
            if not isinstance(entry, Mapping):
                raise TypeError(f"{where} must be a dict, got {type(entry).__name__}")
            step = entry.get("step")
            if isinstance(step, (bool, np.bool_)) or not isinstance(step, numbers.Integral):
                raise TypeError(f"{where}['step'] must be an int, got {step!r}")
            if step < 0:
                raise ValueError(f"{where}['step'] must be >= 0, got {step}")
            # after a step the configuration's buffers must all be there; before, any subset
            names = set(entry) - {"step"}
            missing = sorted(required - names) if step > 0 else []
            unexpected = sorted(names - required)
            if missing or unexpected:
                raise ValueError(
                    f"{where} has the wrong buffers for {name} with these defaults "
                    f"after {step} step(s); missing: {missing}, unexpected: {unexpected}"
                )
            p = self.params[key]
            restored = {"step": int(step)}
            for buf_name in sorted(names):
                value = np.asarray(entry[buf_name])
                if value.shape != p.shape:
                    raise ValueError(
                        f"{where}[{buf_name!r}] has shape {value.shape}, expected {p.shape} "
                        f"(the shape of params[{key!r}])"
                    )
                buf = np.empty(p.shape, p.dtype)
                np.copyto(buf, value, casting="same_kind")
                restored[buf_name] = buf
            new_state[key] = restored
        self._set_hyperparameters(hyper)
        self.state = new_state


# ---------------------------------------------------------------------------
# optimizers


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 decay.

    Parameters
    ----------
    params : dict of str to ndarray
        Parameters, updated in place.
    grads : dict of str to ndarray
        Gradients, same keys, shapes and dtypes as ``params``.
    lr : float, default=1e-3
        Learning rate.
    momentum : float, default=0
        Momentum factor.
    dampening : float, default=0
        Dampening for momentum.
    weight_decay : float, default=0
        L2 penalty, added to the gradient.
    nesterov : bool, default=False
        Use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
    maximize : bool, default=False
        Maximize the objective instead of minimizing it.

    Attributes
    ----------
    lr, momentum, dampening, weight_decay, nesterov, maximize
        The hyperparameters (``lr`` is settable).
    state : dict
        Per parameter ``"step"`` and, when ``momentum != 0``,
        ``"momentum_buffer"``.

    Notes
    -----
    At each step, for every parameter ``p`` with gradient ``g``
    (``g <- -g`` first when maximizing)::

        g   <- g + weight_decay * p                         if weight_decay != 0
        buf <- g                                            first step     } if
        buf <- momentum * buf + (1 - dampening) * g         later steps    } momentum != 0
        g   <- g + momentum * buf  if nesterov  else  buf                  }
        p   <- p - lr * g

    The first momentum buffer is the gradient itself, without dampening, as
    in PyTorch. This form of momentum (velocity scaled by ``lr`` on use)
    differs from Sutskever et al. only when ``lr`` changes.

    References
    ----------
    .. [1] I. Sutskever, J. Martens, G. Dahl and G. Hinton, "On the importance
       of initialization and momentum in deep learning", ICML 2013.
    .. [2] ``torch.optim.SGD``, PyTorch 2.13,
       https://docs.pytorch.org/docs/stable/generated/torch.optim.SGD.html

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit.optim import SGD
    >>> params = {"w": np.array([1.0, 2.0])}
    >>> grads = {"w": np.array([0.5, -0.5])}
    >>> opt = SGD(params, grads, lr=0.1)
    >>> opt.step()
    >>> params["w"]
    array([0.95, 2.05])
    """

    _hyperparameters = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")

    def __init__(
        self,
        params,
        grads,
        lr=1e-3,
        momentum=0.0,
        dampening=0.0,
        weight_decay=0.0,
        nesterov=False,
        *,
        maximize=False,
    ):
        super().__init__(
            params,
            grads,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )

    @staticmethod
    def _validate(*, lr, momentum, dampening, weight_decay, nesterov, maximize):
        h = {
            "lr": _check_lr(lr),
            "momentum": _non_negative("momentum", momentum, "momentum value"),
            "dampening": _real("dampening", dampening),
            "weight_decay": _non_negative("weight_decay", weight_decay, "weight_decay value"),
            "nesterov": _flag("nesterov", nesterov),
            "maximize": _flag("maximize", maximize),
        }
        if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        return h

    @staticmethod
    def _required_buffers(h):
        return ("momentum_buffer",) if h["momentum"] != 0 else ()

    def _update(self, p, grad, st, s, t):
        g = self._effective_grad(p, grad, s, self.weight_decay)
        momentum = self.momentum
        if momentum != 0:
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = st["momentum_buffer"] = g.copy()
            else:
                buf *= momentum
                if self.dampening == 0:
                    buf += g
                else:
                    buf += np.multiply(g, 1 - self.dampening, out=t)
            if self.nesterov:
                np.multiply(buf, momentum, out=t)
                g = np.add(g, t, out=t)
            else:
                g = buf
        p += np.multiply(g, -self.lr, out=t)


class Adam(Optimizer):
    """Adam: adaptive moment estimation, with optional AMSGrad and L2 decay.

    Parameters
    ----------
    params : dict of str to ndarray
        Parameters, updated in place.
    grads : dict of str to ndarray
        Gradients, same keys, shapes and dtypes as ``params``.
    lr : float, default=1e-3
        Learning rate.
    betas : tuple of (float, float), default=(0.9, 0.999)
        Decay rates of the running averages of the gradient and its square.
    eps : float, default=1e-8
        Added to the denominator, after the square root.
    weight_decay : float, default=0
        L2 penalty, added to the gradient (see :class:`AdamW` for decoupled
        weight decay).
    amsgrad : bool, default=False
        Use the running maximum of the second moment (AMSGrad).
    maximize : bool, default=False
        Maximize the objective instead of minimizing it.

    Attributes
    ----------
    lr, betas, eps, weight_decay, amsgrad, maximize
        The hyperparameters (``lr`` is settable).
    state : dict
        Per parameter ``"step"``, ``"exp_avg"``, ``"exp_avg_sq"`` and, with
        ``amsgrad``, ``"max_exp_avg_sq"``.

    Notes
    -----
    At step ``t`` (from 1), for every parameter ``p`` with gradient ``g``
    (``g <- -g`` first when maximizing)::

        g          <- g + weight_decay * p                   if weight_decay != 0
        exp_avg    <- exp_avg + (1 - beta1) * (g - exp_avg)  (= beta1 m + (1 - beta1) g)
        exp_avg_sq <- beta2 * exp_avg_sq + (1 - beta2) * g * g
        v          <- max(max_exp_avg_sq, exp_avg_sq)  if amsgrad  else  exp_avg_sq
        denom      <- sqrt(v) / sqrt(1 - beta2**t) + eps
        p          <- p - lr / (1 - beta1**t) * exp_avg / denom

    The bias corrections are applied to the step size and to ``sqrt(v)``,
    with ``eps`` added after the correction, and the first moment is updated
    by linear interpolation, all as in PyTorch's single-tensor path.

    References
    ----------
    .. [1] D. P. Kingma and J. Ba, "Adam: A Method for Stochastic
       Optimization", ICLR 2015, https://arxiv.org/abs/1412.6980
    .. [2] S. J. Reddi, S. Kale and S. Kumar, "On the Convergence of Adam and
       Beyond", ICLR 2018 (AMSGrad).
    .. [3] ``torch.optim.Adam``, PyTorch 2.13,
       https://docs.pytorch.org/docs/stable/generated/torch.optim.Adam.html

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit.optim import Adam
    >>> params = {"w": np.array([1.0, 2.0])}
    >>> grads = {"w": np.array([0.5, -0.5])}
    >>> opt = Adam(params, grads, lr=0.1)
    >>> opt.step()  # the first Adam step moves each entry by about lr
    >>> np.round(params["w"], 6)
    array([0.9, 2.1])
    """

    _hyperparameters = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")
    _decoupled_weight_decay = False

    def __init__(
        self,
        params,
        grads,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        amsgrad=False,
        *,
        maximize=False,
    ):
        super().__init__(
            params,
            grads,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
        )

    @staticmethod
    def _validate(*, lr, betas, eps, weight_decay, amsgrad, maximize):
        lr = _check_lr(lr)
        eps = _non_negative("eps", eps, "epsilon value")
        betas = _check_betas(betas)
        return {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": _non_negative("weight_decay", weight_decay, "weight_decay value"),
            "amsgrad": _flag("amsgrad", amsgrad),
            "maximize": _flag("maximize", maximize),
        }

    @staticmethod
    def _required_buffers(h):
        names = ("exp_avg", "exp_avg_sq")
        return names + ("max_exp_avg_sq",) if h["amsgrad"] else names

    def _update(self, p, grad, st, s, t):
        lr, (beta1, beta2), step = self.lr, self.betas, st["step"]
        if self._decoupled_weight_decay:
            if self.weight_decay != 0:
                p *= 1 - lr * self.weight_decay
            g = self._effective_grad(p, grad, s, 0)
        else:
            g = self._effective_grad(p, grad, s, self.weight_decay)
        exp_avg = st.get("exp_avg")
        if exp_avg is None:
            exp_avg = st["exp_avg"] = np.zeros(p.shape, p.dtype)
        exp_avg_sq = st.get("exp_avg_sq")
        if exp_avg_sq is None:
            exp_avg_sq = st["exp_avg_sq"] = np.zeros(p.shape, p.dtype)

        # 1) moments: exp_avg by interpolation (torch's lerp), exp_avg_sq by decay + g*g
        exp_avg += np.multiply(np.subtract(g, exp_avg, out=t), 1 - beta1, out=t)
        exp_avg_sq *= beta2
        exp_avg_sq += np.multiply(np.multiply(g, 1 - beta2, out=t), g, out=t)
        if self.amsgrad:
            v = st.get("max_exp_avg_sq")
            if v is None:
                v = st["max_exp_avg_sq"] = np.zeros(p.shape, p.dtype)
            np.maximum(v, exp_avg_sq, out=v)
        else:
            v = exp_avg_sq

        # 2) bias corrections folded into the step size and the denominator
        step_size = lr / (1 - beta1**step)
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        denom = np.sqrt(v, out=t)
        denom /= bias_correction2_sqrt
        denom += self.eps

        # 3) p <- p - step_size * exp_avg / denom
        update = np.divide(exp_avg, denom, out=t)
        update *= -step_size
        p += update


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay.

    Parameters
    ----------
    params : dict of str to ndarray
        Parameters, updated in place.
    grads : dict of str to ndarray
        Gradients, same keys, shapes and dtypes as ``params``.
    lr : float, default=1e-3
        Learning rate.
    betas : tuple of (float, float), default=(0.9, 0.999)
        Decay rates of the running averages of the gradient and its square.
    eps : float, default=1e-8
        Added to the denominator, after the square root.
    weight_decay : float, default=1e-2
        Decoupled weight decay: the parameter shrinks by ``lr * weight_decay``
        of itself each step, independently of the gradient statistics.
    amsgrad : bool, default=False
        Use the running maximum of the second moment (AMSGrad).
    maximize : bool, default=False
        Maximize the objective instead of minimizing it.

    Attributes
    ----------
    lr, betas, eps, weight_decay, amsgrad, maximize
        The hyperparameters (``lr`` is settable).
    state : dict
        As :class:`Adam`.

    Notes
    -----
    At step ``t`` (from 1)::

        p <- p * (1 - lr * weight_decay)

    then the :class:`Adam` update with ``weight_decay = 0``. The decay is
    scaled by the current ``lr``, so schedules shrink it too (as in PyTorch,
    whereas the paper schedules it separately).

    References
    ----------
    .. [1] I. Loshchilov and F. Hutter, "Decoupled Weight Decay
       Regularization", ICLR 2019, https://arxiv.org/abs/1711.05101
    .. [2] ``torch.optim.AdamW``, PyTorch 2.13,
       https://docs.pytorch.org/docs/stable/generated/torch.optim.AdamW.html

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit.optim import AdamW
    >>> params = {"w": np.array([1.0, 2.0])}
    >>> grads = {"w": np.zeros(2)}
    >>> opt = AdamW(params, grads, lr=0.1, weight_decay=0.5)
    >>> opt.step()  # zero gradient: only the decay acts
    >>> params["w"]
    array([0.95, 1.9 ])
    """

    _decoupled_weight_decay = True

    def __init__(
        self,
        params,
        grads,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=1e-2,
        amsgrad=False,
        *,
        maximize=False,
    ):
        super().__init__(
            params,
            grads,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
        )


class RMSprop(Optimizer):
    """RMSprop: divide the gradient by a running root mean square of recent gradients.

    Parameters
    ----------
    params : dict of str to ndarray
        Parameters, updated in place.
    grads : dict of str to ndarray
        Gradients, same keys, shapes and dtypes as ``params``.
    lr : float, default=1e-2
        Learning rate.
    alpha : float, default=0.99
        Smoothing constant of the running averages.
    eps : float, default=1e-8
        Added to the denominator, after the square root.
    weight_decay : float, default=0
        L2 penalty, added to the gradient.
    momentum : float, default=0
        Momentum factor applied to the normalized gradient.
    centered : bool, default=False
        Normalize by an estimate of the gradient's variance instead of its
        second moment.
    maximize : bool, default=False
        Maximize the objective instead of minimizing it.

    Attributes
    ----------
    lr, alpha, eps, weight_decay, momentum, centered, maximize
        The hyperparameters (``lr`` is settable).
    state : dict
        Per parameter ``"step"``, ``"square_avg"``, with ``momentum > 0``
        ``"momentum_buffer"`` and with ``centered`` ``"grad_avg"``.

    Notes
    -----
    At each step, for every parameter ``p`` with gradient ``g``
    (``g <- -g`` first when maximizing)::

        g          <- g + weight_decay * p                          if weight_decay != 0
        square_avg <- alpha * square_avg + (1 - alpha) * g * g
        grad_avg   <- grad_avg + (1 - alpha) * (g - grad_avg)        if centered
        avg        <- sqrt(square_avg - grad_avg**2)  if centered  else  sqrt(square_avg)
        avg        <- avg + eps
        buf        <- momentum * buf + g / avg;  p <- p - lr * buf    if momentum > 0
        p          <- p - lr * g / avg                                otherwise

    All buffers start at zero.

    References
    ----------
    .. [1] G. Hinton, "Neural Networks for Machine Learning", lecture 6e
       (2012).
    .. [2] A. Graves, "Generating Sequences With Recurrent Neural Networks",
       2013, https://arxiv.org/abs/1308.0850 (the centered variant).
    .. [3] ``torch.optim.RMSprop``, PyTorch 2.13,
       https://docs.pytorch.org/docs/stable/generated/torch.optim.RMSprop.html

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit.optim import RMSprop
    >>> params = {"w": np.array([1.0, 2.0])}
    >>> grads = {"w": np.array([0.5, -0.5])}
    >>> opt = RMSprop(params, grads, lr=0.01)
    >>> opt.step()  # first step: g / sqrt(0.01 g^2) = 10 sign(g)
    >>> np.round(params["w"], 6)
    array([0.9, 2.1])
    """

    _hyperparameters = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize")

    def __init__(
        self,
        params,
        grads,
        lr=1e-2,
        alpha=0.99,
        eps=1e-8,
        weight_decay=0.0,
        momentum=0.0,
        centered=False,
        *,
        maximize=False,
    ):
        super().__init__(
            params,
            grads,
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
        )

    @staticmethod
    def _validate(*, lr, alpha, eps, weight_decay, momentum, centered, maximize):
        lr = _check_lr(lr)
        eps = _non_negative("eps", eps, "epsilon value")
        momentum = _non_negative("momentum", momentum, "momentum value")
        weight_decay = _non_negative("weight_decay", weight_decay, "weight_decay value")
        alpha = _non_negative("alpha", alpha, "alpha value")
        return {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "centered": _flag("centered", centered),
            "maximize": _flag("maximize", maximize),
        }

    @staticmethod
    def _required_buffers(h):
        names = ("square_avg",)
        if h["momentum"] > 0:
            names += ("momentum_buffer",)
        if h["centered"]:
            names += ("grad_avg",)
        return names

    def _update(self, p, grad, st, s, t):
        alpha = self.alpha
        g = self._effective_grad(p, grad, s, self.weight_decay)
        square_avg = st.get("square_avg")
        if square_avg is None:
            square_avg = st["square_avg"] = np.zeros(p.shape, p.dtype)
        square_avg *= alpha
        square_avg += np.multiply(np.multiply(g, 1 - alpha, out=t), g, out=t)

        if self.centered:
            grad_avg = st.get("grad_avg")
            if grad_avg is None:
                grad_avg = st["grad_avg"] = np.zeros(p.shape, p.dtype)
            grad_avg += np.multiply(np.subtract(g, grad_avg, out=t), 1 - alpha, out=t)
            avg = np.multiply(grad_avg, grad_avg, out=t)
            np.subtract(square_avg, avg, out=avg)
            np.sqrt(avg, out=avg)
        else:
            avg = np.sqrt(square_avg, out=t)
        avg += self.eps

        if self.momentum > 0:
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = st["momentum_buffer"] = np.zeros(p.shape, p.dtype)
            buf *= self.momentum
            buf += np.divide(g, avg, out=avg)
            p += np.multiply(buf, -self.lr, out=t)
        else:
            update = np.divide(g, avg, out=avg)
            update *= -self.lr
            p += update


class Adagrad(Optimizer):
    """Adagrad: per-coordinate step sizes from the sum of squared past gradients.

    Parameters
    ----------
    params : dict of str to ndarray
        Parameters, updated in place.
    grads : dict of str to ndarray
        Gradients, same keys, shapes and dtypes as ``params``.
    lr : float, default=1e-2
        Learning rate.
    lr_decay : float, default=0
        Learning-rate decay: step ``t`` uses ``lr / (1 + (t - 1) * lr_decay)``.
    weight_decay : float, default=0
        L2 penalty, added to the gradient.
    initial_accumulator_value : float, default=0
        Starting value of the sum of squared gradients.
    eps : float, default=1e-10
        Added to the denominator, after the square root.
    maximize : bool, default=False
        Maximize the objective instead of minimizing it.

    Attributes
    ----------
    lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize
        The hyperparameters (``lr`` is settable).
    state : dict
        Per parameter ``"step"`` and ``"sum"``.

    Notes
    -----
    At step ``t`` (from 1), for every parameter ``p`` with gradient ``g``
    (``g <- -g`` first when maximizing)::

        g   <- g + weight_decay * p                 if weight_decay != 0
        clr <- lr / (1 + (t - 1) * lr_decay)
        sum <- sum + g * g                          (sum starts at initial_accumulator_value)
        p   <- p - clr * g / (sqrt(sum) + eps)

    References
    ----------
    .. [1] J. Duchi, E. Hazan and Y. Singer, "Adaptive Subgradient Methods for
       Online Learning and Stochastic Optimization", JMLR 12 (2011).
    .. [2] ``torch.optim.Adagrad``, PyTorch 2.13,
       https://docs.pytorch.org/docs/stable/generated/torch.optim.Adagrad.html

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit.optim import Adagrad
    >>> params = {"w": np.array([1.0, 2.0])}
    >>> grads = {"w": np.array([0.5, -0.5])}
    >>> opt = Adagrad(params, grads, lr=0.1)
    >>> opt.step()  # first step: g / |g| = sign(g)
    >>> np.round(params["w"], 6)
    array([0.9, 2.1])
    """

    _hyperparameters = (
        "lr",
        "lr_decay",
        "weight_decay",
        "initial_accumulator_value",
        "eps",
        "maximize",
    )

    def __init__(
        self,
        params,
        grads,
        lr=1e-2,
        lr_decay=0.0,
        weight_decay=0.0,
        initial_accumulator_value=0.0,
        eps=1e-10,
        *,
        maximize=False,
    ):
        super().__init__(
            params,
            grads,
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
        )

    @staticmethod
    def _validate(*, lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize):
        return {
            "lr": _check_lr(lr),
            "lr_decay": _non_negative("lr_decay", lr_decay, "lr_decay value"),
            "weight_decay": _non_negative("weight_decay", weight_decay, "weight_decay value"),
            "initial_accumulator_value": _non_negative(
                "initial_accumulator_value",
                initial_accumulator_value,
                "initial_accumulator_value value",
            ),
            "eps": _non_negative("eps", eps, "epsilon value"),
            "maximize": _flag("maximize", maximize),
        }

    @staticmethod
    def _required_buffers(h):
        return ("sum",)

    def _update(self, p, grad, st, s, t):
        g = self._effective_grad(p, grad, s, self.weight_decay)
        clr = self.lr / (1 + (st["step"] - 1) * self.lr_decay)
        sum_ = st.get("sum")
        if sum_ is None:
            sum_ = st["sum"] = np.full(p.shape, self.initial_accumulator_value, p.dtype)
        sum_ += np.multiply(g, g, out=t)
        std = np.sqrt(sum_, out=t)
        std += self.eps
        update = np.divide(g, std, out=std)
        update *= -clr
        p += update
