"""Tests of rnnkit.optim: optimizers, gradient clipping and learning-rate schedules.

Three kinds of oracle:

* plain-NumPy reference updates written from the formulas in the docstrings,
  compared exactly (the implementation uses the same order of operations);
* ``torch.optim`` / ``torch.nn.utils`` / ``torch.optim.lr_scheduler`` on the
  same stream of random gradients (only those tests need torch, through the
  ``torch`` fixture);
* an uninterrupted run, for state_dict round trips (bit for bit).
"""

import copy
import inspect
import itertools
import json
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from rnnkit import optim
from rnnkit.optim import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    CosineAnnealingLR,
    CosineWithWarmupLR,
    ExponentialLR,
    LinearLR,
    RMSprop,
    StepLR,
    clip_grad_norm,
    clip_grad_value,
    cosine_with_warmup,
)

# two parameters share a shape, so the shared scratch arrays are exercised
SHAPES = {
    "rnn.weight_ih_l0": (8, 3),
    "rnn.weight_hh_l0": (8, 2),
    "rnn.bias_ih_l0": (8,),
    "rnn.bias_hh_l0": (8,),
    "head.weight": (3, 2),
}
OPTIMIZERS = [SGD, Adam, AdamW, RMSprop, Adagrad]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def torch():
    """PyTorch, or a skip of only the test that asks for it."""
    return pytest.importorskip("torch")


def make_params(rng, dtype=np.float64):
    return {k: rng.standard_normal(shape).astype(dtype) for k, shape in SHAPES.items()}


def make_grad_stream(rng, n_steps, dtype=np.float64):
    """Random gradients whose overall scale changes from step to step (so AMSGrad's max acts)."""
    stream = []
    for _ in range(n_steps):
        scale = rng.uniform(0.1, 3.0)
        stream.append(
            {k: (scale * rng.standard_normal(s)).astype(dtype) for k, s in SHAPES.items()}
        )
    return stream


def copy_arrays(d):
    return {k: v.copy() for k, v in d.items()}


def load_grads(grads, new):
    """Write new gradient values into the existing arrays (as a backward pass would)."""
    for k, g in new.items():
        grads[k][...] = g


# ---------------------------------------------------------------------------
# reference updates written from the formulas, out of place


def ref_sgd(
    p,
    g,
    st,
    t,
    lr=1e-3,
    momentum=0.0,
    dampening=0.0,
    weight_decay=0.0,
    nesterov=False,
    maximize=False,
):
    g = -g if maximize else g
    if weight_decay != 0:
        g = g + weight_decay * p
    if momentum != 0:
        if t == 1:
            st["momentum_buffer"] = g.copy()
        else:
            st["momentum_buffer"] = momentum * st["momentum_buffer"] + (1 - dampening) * g
        g = g + momentum * st["momentum_buffer"] if nesterov else st["momentum_buffer"]
    return p - lr * g


def ref_adam(
    p,
    g,
    st,
    t,
    lr=1e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    maximize=False,
    decoupled=False,
):
    beta1, beta2 = betas
    g = -g if maximize else g
    if decoupled:
        p = p * (1 - lr * weight_decay)
    elif weight_decay != 0:
        g = g + weight_decay * p
    m = st.get("exp_avg", np.zeros_like(p))
    v = st.get("exp_avg_sq", np.zeros_like(p))
    m = m + (1 - beta1) * (g - m)
    v = beta2 * v + (1 - beta2) * g * g
    st["exp_avg"], st["exp_avg_sq"] = m, v
    if amsgrad:
        v = st["max_exp_avg_sq"] = np.maximum(st.get("max_exp_avg_sq", np.zeros_like(p)), v)
    denom = np.sqrt(v) / (1 - beta2**t) ** 0.5 + eps
    return p - lr / (1 - beta1**t) * (m / denom)


def ref_adamw(p, g, st, t, weight_decay=1e-2, **kwargs):
    return ref_adam(p, g, st, t, weight_decay=weight_decay, decoupled=True, **kwargs)


def ref_rmsprop(
    p,
    g,
    st,
    t,
    lr=1e-2,
    alpha=0.99,
    eps=1e-8,
    weight_decay=0.0,
    momentum=0.0,
    centered=False,
    maximize=False,
):
    g = -g if maximize else g
    if weight_decay != 0:
        g = g + weight_decay * p
    sq = st["square_avg"] = alpha * st.get("square_avg", np.zeros_like(p)) + (1 - alpha) * g * g
    if centered:
        ga = st.get("grad_avg", np.zeros_like(p))
        ga = st["grad_avg"] = ga + (1 - alpha) * (g - ga)
        avg = np.sqrt(sq - ga * ga) + eps
    else:
        avg = np.sqrt(sq) + eps
    if momentum > 0:
        buf = momentum * st.get("momentum_buffer", np.zeros_like(p)) + g / avg
        st["momentum_buffer"] = buf
        return p - lr * buf
    return p - lr * (g / avg)


def ref_adagrad(
    p,
    g,
    st,
    t,
    lr=1e-2,
    lr_decay=0.0,
    weight_decay=0.0,
    initial_accumulator_value=0.0,
    eps=1e-10,
    maximize=False,
):
    g = -g if maximize else g
    if weight_decay != 0:
        g = g + weight_decay * p
    clr = lr / (1 + (t - 1) * lr_decay)
    total = st.get("sum", np.full_like(p, initial_accumulator_value)) + g * g
    st["sum"] = total
    return p - clr * (g / (np.sqrt(total) + eps))


REFERENCES = {
    SGD: ref_sgd,
    Adam: ref_adam,
    AdamW: ref_adamw,
    RMSprop: ref_rmsprop,
    Adagrad: ref_adagrad,
}

HAND_CASES = [
    (SGD, {}),
    (SGD, {"lr": 0.1, "momentum": 0.9}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    (SGD, {"lr": 0.1, "momentum": 0.8, "nesterov": True, "maximize": True}),
    (Adam, {}),
    (Adam, {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1, "amsgrad": True}),
    (Adam, {"lr": 0.01, "eps": 1e-3, "maximize": True}),
    (AdamW, {"lr": 0.01}),
    (AdamW, {"lr": 0.01, "weight_decay": 0.3, "amsgrad": True}),
    (RMSprop, {}),
    (RMSprop, {"alpha": 0.9, "momentum": 0.5, "weight_decay": 0.1}),
    (RMSprop, {"centered": True, "eps": 1e-4, "maximize": True}),
    (Adagrad, {}),
    (Adagrad, {"lr_decay": 0.1, "initial_accumulator_value": 0.5, "weight_decay": 0.1}),
    (Adagrad, {"eps": 1e-3, "maximize": True}),
]


def case_id(case):
    cls, kwargs = case
    return cls.__name__ + ("-" + "-".join(f"{k}={v}" for k, v in kwargs.items()) if kwargs else "")


@pytest.mark.parametrize("case", HAND_CASES, ids=case_id)
def test_steps_match_hand_computed_formula(case, rng):
    cls, kwargs = case
    params = make_params(rng)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    expected = copy_arrays(params)
    ref_state = {k: {} for k in params}
    opt = cls(params, grads, **kwargs)
    for t, g in enumerate(make_grad_stream(rng, 3), start=1):
        load_grads(grads, g)
        opt.step()
        for k in params:
            expected[k] = REFERENCES[cls](expected[k], g[k], ref_state[k], t, **kwargs)
            assert_array_equal(params[k], expected[k], err_msg=f"params[{k!r}] at step {t}")
    state = opt.state_dict()["state"]
    for k in params:
        assert state[k]["step"] == 3
        assert set(state[k]) == {"step", *ref_state[k]}, f"buffers of {k!r}"
        for name, value in ref_state[k].items():
            assert_array_equal(state[k][name], value, err_msg=f"state[{k!r}][{name!r}]")


def test_one_sgd_momentum_step_by_hand():
    # buf = g on the first step (no dampening), then buf = 0.9 buf + 0.5 g
    params = {"w": np.array([1.0, -2.0])}
    grads = {"w": np.array([0.5, 0.25])}
    opt = SGD(params, grads, lr=0.5, momentum=0.9, dampening=0.5)
    opt.step()
    assert_array_equal(params["w"], [0.75, -2.125])
    opt.step()
    # buf = 0.9 * [0.5, 0.25] + 0.5 * [0.5, 0.25] = [0.7, 0.35]
    assert_allclose(params["w"], [0.75 - 0.35, -2.125 - 0.175], rtol=1e-15)


def test_one_adam_step_by_hand():
    # first step: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps)
    params = {"w": np.array([1.0, -2.0, 0.5])}
    grads = {"w": np.array([0.5, -4.0, 1e-3])}
    Adam(params, grads, lr=0.1, eps=1e-8).step()
    g = grads["w"]
    assert_allclose(params["w"], [1.0, -2.0, 0.5] - 0.1 * g / (np.abs(g) + 1e-8), rtol=1e-14)


def test_lr_setter_is_used_by_the_next_step_and_validated(rng):
    params = {"w": np.ones(3)}
    grads = {"w": np.array([1.0, 2.0, 3.0])}
    opt = SGD(params, grads, lr=0.1)
    opt.lr = 0.5
    opt.step()
    assert_array_equal(params["w"], [0.5, 0.0, -0.5])
    assert opt.state_dict()["defaults"]["lr"] == 0.5
    with pytest.raises(ValueError, match=re.escape("Invalid learning rate: -1.0")):
        opt.lr = -1.0
    assert opt.lr == 0.5


# ---------------------------------------------------------------------------
# against torch.optim

TORCH_CASES = [
    (SGD, {"lr": 0.1}),
    (SGD, {"lr": 0.1, "momentum": 0.9}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.05}),
    (SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (SGD, {"lr": 0.1, "weight_decay": 0.1, "maximize": True}),
    (Adam, {"lr": 0.01}),
    (Adam, {"lr": 0.01, "weight_decay": 0.1}),
    (Adam, {"lr": 0.01, "amsgrad": True}),
    (
        Adam,
        {
            "lr": 0.01,
            "betas": (0.8, 0.99),
            "eps": 1e-6,
            "amsgrad": True,
            "weight_decay": 0.05,
            "maximize": True,
        },
    ),
    (AdamW, {"lr": 0.01}),
    (AdamW, {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    (AdamW, {"lr": 0.01, "betas": (0.5, 0.9), "maximize": True}),
    (RMSprop, {"lr": 0.01}),
    (RMSprop, {"lr": 0.01, "momentum": 0.9}),
    (RMSprop, {"lr": 0.01, "centered": True}),
    (RMSprop, {"lr": 0.01, "alpha": 0.9, "centered": True, "momentum": 0.5, "weight_decay": 0.05}),
    (RMSprop, {"lr": 0.01, "eps": 1e-6, "maximize": True}),
    (Adagrad, {"lr": 0.1}),
    (Adagrad, {"lr": 0.1, "lr_decay": 0.05}),
    (Adagrad, {"lr": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.1}),
    (Adagrad, {"lr": 0.1, "eps": 1e-6, "maximize": True}),
]

TOLERANCES = {np.float64: (1e-12, 1e-14), np.float32: (1e-5, 1e-6)}


def assert_close(ours, theirs, dtype, what):
    rtol, atol = TOLERANCES[dtype]
    scale = max(1.0, float(np.max(np.abs(theirs), initial=0.0)))
    assert_allclose(ours, theirs, rtol=rtol, atol=atol * scale, err_msg=f"{what}: ours vs torch")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", TORCH_CASES, ids=case_id)
def test_matches_torch_optim_over_many_steps(torch, rng, case, dtype):
    cls, kwargs = case
    params = make_params(rng, dtype)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    tparams = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in params.items()}
    ours = cls(params, grads, **kwargs)
    theirs = getattr(torch.optim, cls.__name__)(list(tparams.values()), foreach=False, **kwargs)
    for step, g in enumerate(make_grad_stream(rng, 12, dtype), start=1):
        load_grads(grads, g)
        for k, tp in tparams.items():
            tp.grad = torch.from_numpy(g[k].copy())
        ours.step()
        theirs.step()
        for k in params:
            assert params[k].dtype == dtype
            assert_close(params[k], tparams[k].detach().numpy(), dtype, f"params[{k!r}], {step=}")
    state = ours.state_dict()["state"]
    for k, tp in tparams.items():
        tstate = theirs.state[tp]
        assert set(state[k]) - {"step"} == set(tstate) - {"step"}, f"buffer names of {k!r}"
        for name, value in tstate.items():
            if name == "step":
                assert state[k]["step"] == int(value) == 12
            else:
                assert state[k][name].dtype == dtype
                assert_close(state[k][name], value.numpy(), dtype, f"state[{k!r}][{name!r}]")


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_signature_and_defaults_match_torch(torch, cls):
    torch_cls = getattr(torch.optim, cls.__name__)
    ours = list(inspect.signature(cls).parameters)
    assert ours[:2] == ["params", "grads"]
    theirs = [n for n in inspect.signature(torch_cls).parameters if n in ours[2:]]
    assert ours[2:] == theirs, "argument names and order"
    params = {"w": np.zeros(2)}
    defaults = cls(params, {"w": np.zeros(2)}).state_dict()["defaults"]
    tdefaults = torch_cls([torch.zeros(2, requires_grad=True)]).defaults
    for name, value in defaults.items():
        expected = tdefaults[name]
        assert value == (list(expected) if isinstance(expected, tuple) else expected), name


# ---------------------------------------------------------------------------
# in-place contract, dtypes, zero_grad


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"maximize": True}, {"weight_decay": 0.1}, {"weight_decay": 0.1, "maximize": True}],
    ids=["plain", "maximize", "weight_decay", "maximize-weight_decay"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_updates_in_place_keeps_dtype_and_leaves_grads_alone(cls, kwargs, dtype, rng):
    params = make_params(rng, dtype)
    grads = make_grad_stream(rng, 1, dtype)[0]
    held = dict(params)  # what a layer holds: the same array objects
    before_params, before_grads = copy_arrays(params), copy_arrays(grads)
    if cls in (SGD, RMSprop):
        kwargs = {**kwargs, "momentum": 0.9}  # the buffer must not alias the gradient
    opt = cls(params, grads, **kwargs)
    for step in (1, 2):
        opt.step()
        for k, g in grads.items():
            assert_array_equal(g, before_grads[k], err_msg=f"grads[{k!r}] modified at {step=}")
    for k in params:
        assert params[k] is held[k]
        assert params[k].dtype == dtype
        assert not np.array_equal(params[k], before_params[k]), f"params[{k!r}] did not move"
        for name, buf in opt.state[k].items():
            if name != "step":
                assert buf.dtype == dtype and buf.shape == params[k].shape, name


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_zero_grad_zeroes_the_same_arrays(cls, rng):
    params = make_params(rng)
    grads = make_grad_stream(rng, 1)[0]
    held = dict(grads)
    before = copy_arrays(params)
    cls(params, grads).zero_grad()
    for k in grads:
        assert grads[k] is held[k]
        assert not grads[k].any(), k
        assert_array_equal(params[k], before[k])


# ---------------------------------------------------------------------------
# state_dict

ROUNDTRIP_CASES = [
    (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (Adam, {"lr": 0.01, "betas": (0.8, 0.99), "amsgrad": True, "weight_decay": 0.1}),
    (AdamW, {"lr": 0.02, "weight_decay": 0.2}),
    (RMSprop, {"lr": 0.01, "momentum": 0.5, "centered": True}),
    (Adagrad, {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ROUNDTRIP_CASES, ids=case_id)
def test_state_dict_resume_is_bit_identical(case, dtype, rng):
    cls, kwargs = case
    start = make_params(rng, dtype)
    stream = make_grad_stream(rng, 10, dtype)

    params = copy_arrays(start)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    opt = cls(params, grads, **kwargs)
    for g in stream:
        load_grads(grads, g)
        opt.step()

    params2 = copy_arrays(start)
    grads2 = {k: np.zeros_like(v) for k, v in params2.items()}
    opt2 = cls(params2, grads2, **kwargs)
    for g in stream[:5]:
        load_grads(grads2, g)
        opt2.step()
    sd = opt2.state_dict()
    saved_params = copy_arrays(params2)
    snapshot = copy.deepcopy(sd)
    opt2.step()  # the saved dict holds copies: later steps must not reach it
    for k, entry in sd["state"].items():
        for name, value in entry.items():
            assert_array_equal(value, snapshot["state"][k][name], err_msg=f"{k}/{name} aliased")
    sd = {"defaults": json.loads(json.dumps(sd["defaults"])), "state": sd["state"]}

    # a fresh optimizer with default hyperparameters: loading must restore them all
    params3 = saved_params
    grads3 = {k: np.zeros_like(v) for k, v in params3.items()}
    opt3 = cls(params3, grads3)
    opt3.load_state_dict(sd)
    assert opt3.state_dict()["defaults"] == sd["defaults"]
    for g in stream[5:]:
        load_grads(grads3, g)
        opt3.step()
    for k in params:
        assert params3[k].tobytes() == params[k].tobytes(), f"params[{k!r}] differs after resume"


def stepped_adam(rng, **kwargs):
    params = make_params(rng)
    grads = make_grad_stream(rng, 1)[0]
    opt = Adam(params, grads, **kwargs)
    opt.step()
    return opt


def test_load_state_dict_rejects_bad_input_and_changes_nothing(rng):
    opt = stepped_adam(rng, lr=0.01)
    good = opt.state_dict()

    def broken(edit):
        sd = copy.deepcopy(good)
        edit(sd)
        return sd

    key = "head.weight"
    cases = [
        (TypeError, "state_dict must be a dict", [good]),
        (ValueError, "exactly the keys 'defaults' and 'state'", {"state": good["state"]}),
        (
            ValueError,
            r"unexpected: \['momentum'\]",
            broken(lambda sd: sd["defaults"].update(momentum=0.9)),
        ),
        (
            ValueError,
            "Invalid learning rate: -1.0",
            broken(lambda sd: sd["defaults"].update(lr=-1.0)),
        ),
        (ValueError, r"missing: \['head.weight'\]", broken(lambda sd: sd["state"].pop(key))),
        (ValueError, r"missing: \['exp_avg'\]", broken(lambda sd: sd["state"][key].pop("exp_avg"))),
        (
            ValueError,
            r"missing: \['max_exp_avg_sq'\]",
            broken(lambda sd: sd["defaults"].update(amsgrad=True)),
        ),
        (
            ValueError,
            r"unexpected: \['momentum_buffer'\]",
            broken(lambda sd: sd["state"][key].update(momentum_buffer=np.zeros((3, 2)))),
        ),
        (
            ValueError,
            r"\['exp_avg_sq'\] has shape \(2, 3\), expected \(3, 2\)",
            broken(lambda sd: sd["state"][key].update(exp_avg_sq=np.zeros((2, 3)))),
        ),
        (
            TypeError,
            r"\['step'\] must be an int",
            broken(lambda sd: sd["state"][key].update(step=1.5)),
        ),
        (
            ValueError,
            r"\['step'\] must be >= 0",
            broken(lambda sd: sd["state"][key].update(step=-1)),
        ),
    ]
    for error, message, sd in cases:
        with pytest.raises(error, match=message):
            opt.load_state_dict(sd)
        after = opt.state_dict()
        assert after["defaults"] == good["defaults"]
        assert_array_equal(after["state"][key]["exp_avg"], good["state"][key]["exp_avg"])


def test_state_dict_before_any_step_loads_into_a_fresh_optimizer(rng):
    # buffers are created on the first step, as in torch; an unstepped state has none
    params = make_params(rng)
    grads = make_grad_stream(rng, 1)[0]
    sd = SGD(copy_arrays(params), grads, lr=0.1, momentum=0.9).state_dict()
    assert sd["state"]["head.weight"] == {"step": 0}
    fresh = SGD(params, grads)
    fresh.load_state_dict(sd)
    fresh.step()
    assert fresh.momentum == 0.9
    assert_array_equal(fresh.state["head.weight"]["momentum_buffer"], grads["head.weight"])


# ---------------------------------------------------------------------------
# errors

BAD_HYPERPARAMETERS = [
    (SGD, {"lr": -1.0}, "Invalid learning rate: -1.0"),
    (SGD, {"momentum": -0.5}, "Invalid momentum value: -0.5"),
    (SGD, {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    (SGD, {"nesterov": True}, "Nesterov momentum requires a momentum and zero dampening"),
    (
        SGD,
        {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
        "Nesterov momentum requires a momentum and zero dampening",
    ),
    (Adam, {"lr": -0.001}, "Invalid learning rate: -0.001"),
    (Adam, {"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
    (Adam, {"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
    (Adam, {"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
    (Adam, {"weight_decay": -1.0}, "Invalid weight_decay value: -1.0"),
    (AdamW, {"weight_decay": -0.01}, "Invalid weight_decay value: -0.01"),
    (AdamW, {"betas": (0.9, 1.5)}, "Invalid beta parameter at index 1: 1.5"),
    (RMSprop, {"lr": -0.01}, "Invalid learning rate: -0.01"),
    (RMSprop, {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    (RMSprop, {"momentum": -0.9}, "Invalid momentum value: -0.9"),
    (RMSprop, {"alpha": -0.5}, "Invalid alpha value: -0.5"),
    (Adagrad, {"lr_decay": -1.0}, "Invalid lr_decay value: -1.0"),
    (Adagrad, {"weight_decay": -1.0}, "Invalid weight_decay value: -1.0"),
    (Adagrad, {"initial_accumulator_value": -1.0}, "Invalid initial_accumulator_value value: -1.0"),
    (Adagrad, {"eps": -1.0}, "Invalid epsilon value: -1.0"),
]


def bad_id(case):
    return case_id(case[:2])


@pytest.mark.parametrize("case", BAD_HYPERPARAMETERS, ids=bad_id)
def test_bad_hyperparameters_raise_torch_messages(case):
    cls, kwargs, message = case
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        cls({"w": np.zeros(2)}, {"w": np.zeros(2)}, **kwargs)


@pytest.mark.parametrize("case", BAD_HYPERPARAMETERS, ids=bad_id)
def test_bad_hyperparameter_messages_are_torchs(torch, case):
    cls, kwargs, message = case
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, cls.__name__)([torch.zeros(2, requires_grad=True)], **kwargs)
    assert str(theirs.value) == message


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": float("nan")}, "Invalid learning rate: nan"),
        ({"lr": "0.1"}, "lr must be a real number, got str"),
        ({"nesterov": 1}, "nesterov must be a bool, got int"),
        ({"momentum": None}, "momentum must be a real number, got NoneType"),
    ],
)
def test_hyperparameter_types_are_checked(kwargs, message):
    error = ValueError if "Invalid" in message else TypeError
    with pytest.raises(error, match=re.escape(message)):
        SGD({"w": np.zeros(2)}, {"w": np.zeros(2)}, **kwargs)


def test_adam_betas_must_be_a_pair():
    with pytest.raises(TypeError, match="betas must be a pair"):
        Adam({"w": np.zeros(2)}, {"w": np.zeros(2)}, betas=0.9)


@pytest.mark.parametrize(
    "params, grads, error, message",
    [
        ([np.zeros(2)], {"w": np.zeros(2)}, TypeError, "params must be a dict"),
        ({"w": np.zeros(2)}, (np.zeros(2),), TypeError, "grads must be a dict"),
        ({}, {}, ValueError, "empty parameter dict"),
        (
            {"w": np.zeros(2), "b": np.zeros(1)},
            {"w": np.zeros(2)},
            ValueError,
            r"missing from grads: \['b'\], not in params: \[\]",
        ),
        (
            {"w": np.zeros(2)},
            {"w": np.zeros(2), "v": np.zeros(2)},
            ValueError,
            r"missing from grads: \[\], not in params: \['v'\]",
        ),
        (
            {"head.weight": np.zeros((3, 2))},
            {"head.weight": np.zeros((2, 3))},
            ValueError,
            re.escape("grads['head.weight'] has shape (2, 3), expected (3, 2)"),
        ),
        (
            {"w": np.zeros(2)},
            {"w": np.zeros(2, np.float32)},
            ValueError,
            re.escape("grads['w'] has dtype float32, expected float64"),
        ),
        (
            {"w": np.zeros(2, int)},
            {"w": np.zeros(2, int)},
            TypeError,
            re.escape("params['w'] must be a floating-point ndarray"),
        ),
        (
            {"w": [0.0, 0.0]},
            {"w": np.zeros(2)},
            TypeError,
            re.escape("params['w'] must be a floating-point ndarray, got list"),
        ),
    ],
)
@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_params_and_grads_are_checked(cls, params, grads, error, message):
    with pytest.raises(error, match=message):
        cls(params, grads)


def test_read_only_params_are_rejected():
    w = np.zeros(2)
    w.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        SGD({"w": w}, {"w": np.zeros(2)})


# ---------------------------------------------------------------------------
# gradient clipping


def torch_grads(torch, grads):
    tensors = []
    for g in grads.values():
        t = torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True)
        t.grad = torch.from_numpy(g.copy())
        tensors.append(t)
    return tensors


def concatenated_norm(grads, norm_type):
    return np.linalg.norm(np.concatenate([g.ravel() for g in grads.values()]), ord=norm_type)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("factor", [0.3, 3.0], ids=["clipped", "below-threshold"])
def test_clip_grad_norm_matches_torch(torch, rng, dtype, norm_type, factor):
    grads = make_grad_stream(rng, 1, dtype)[0]
    before = copy_arrays(grads)
    tensors = torch_grads(torch, grads)
    total = concatenated_norm(grads, norm_type)  # the norm of all grads as ONE vector
    max_norm = factor * float(total)
    rtol = 1e-12 if dtype == np.float64 else 1e-5

    ours = clip_grad_norm(grads, max_norm, norm_type=norm_type)
    theirs = torch.nn.utils.clip_grad_norm_(tensors, max_norm, norm_type=norm_type)
    assert isinstance(ours, float)
    assert_allclose(ours, total, rtol=rtol)
    assert_allclose(ours, theirs.item(), rtol=rtol)
    for (k, g), t in zip(grads.items(), tensors):
        assert g.dtype == dtype
        assert_allclose(g, t.grad.numpy(), rtol=rtol, atol=rtol * 1e-2, err_msg=k)
    if factor > 1:
        for k in grads:
            assert_array_equal(grads[k], before[k], err_msg=f"{k} changed below the threshold")
    else:
        assert_allclose(concatenated_norm(grads, norm_type), max_norm, rtol=1e-4)


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_clip_grad_norm_nonfinite_like_torch(torch, bad):
    grads = {"a": np.array([1.0, bad, -2.0]), "b": np.array([[3.0, 4.0]])}
    before = copy_arrays(grads)
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm(grads, 1.0, error_if_nonfinite=True)
    for k, g in grads.items():
        assert_array_equal(g, before[k])
    tensors = torch_grads(torch, grads)
    ours = clip_grad_norm(grads, 1.0)
    theirs = torch.nn.utils.clip_grad_norm_(tensors, 1.0).item()
    assert_array_equal(ours, theirs)  # inf or nan, equal_nan
    for (k, g), t in zip(grads.items(), tensors):
        assert_array_equal(g, t.grad.numpy(), err_msg=k)


def test_clip_grad_norm_accepts_iterables_and_a_single_array():
    a, b = np.array([3.0, 0.0]), np.array([4.0])
    assert clip_grad_norm((x for x in (a, b)), 1.0) == 5.0
    assert_allclose(np.concatenate([a, b]), [0.6, 0.0, 0.8], rtol=1e-6)
    c = np.array([0.0, -2.0])
    assert clip_grad_norm(c, 0.5, norm_type="inf") == 2.0
    assert_allclose(c, [0.0, -0.5], rtol=1e-6)
    assert clip_grad_norm([], 1.0) == 0.0
    with pytest.raises(TypeError, match="gradient 1 must be a floating-point ndarray"):
        clip_grad_norm([a, [1.0]], 1.0)
    with pytest.raises(TypeError, match="grads must be"):
        clip_grad_norm(3.0, 1.0)


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=20),
    max_norm=st.floats(1e-3, 1e3),
)
def test_clip_grad_norm_bounds_the_norm(values, max_norm):
    g = np.array(values)
    before = g.copy()
    total = clip_grad_norm({"g": g}, max_norm)
    assert_allclose(total, np.linalg.norm(before), rtol=1e-12)
    assert np.linalg.norm(g) <= max_norm * (1 + 1e-12)
    if max_norm / (total + 1e-6) >= 1:
        assert_array_equal(g, before)


def test_clip_grad_value_matches_torch_and_keeps_nan(torch, rng):
    grads = make_grad_stream(rng, 1)[0]
    grads["head.weight"][0, 0] = np.nan
    tensors = torch_grads(torch, grads)
    expected = {k: np.minimum(np.maximum(g, -0.5), 0.5) for k, g in grads.items()}
    held = dict(grads)
    clip_grad_value(grads, 0.5)
    torch.nn.utils.clip_grad_value_(tensors, 0.5)
    for (k, g), t in zip(grads.items(), tensors):
        assert g is held[k]
        assert_array_equal(g, expected[k], err_msg=k)
        assert_array_equal(g, t.grad.numpy(), err_msg=k)
    assert np.isnan(grads["head.weight"][0, 0])


def test_clip_grad_value_checks_its_argument():
    g = np.array([-3.0, 0.25, 2.0])
    clip_grad_value([g], 1.0)
    assert_array_equal(g, [-1.0, 0.25, 1.0])
    with pytest.raises(ValueError, match="clip_value must be >= 0, got -1.0"):
        clip_grad_value([g], -1.0)


# ---------------------------------------------------------------------------
# learning-rate schedules

SCHEDULE_CASES = [
    (StepLR, {"step_size": 7, "gamma": 0.5}),
    (StepLR, {"step_size": 1}),
    (ExponentialLR, {"gamma": 0.9}),
    (CosineAnnealingLR, {"T_max": 10, "eta_min": 1e-3}),
    (CosineAnnealingLR, {"T_max": 7}),
    (LinearLR, {}),
    (LinearLR, {"start_factor": 0.25, "total_iters": 8}),
    (LinearLR, {"start_factor": 1.0, "end_factor": 0.1, "total_iters": 12}),
]


def sgd(lr=0.1):
    return SGD({"w": np.zeros(2)}, {"w": np.zeros(2)}, lr=lr)


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=case_id)
def test_schedule_matches_torch_for_30_steps(torch, case):
    cls, kwargs = case
    opt = sgd(0.1)
    sched = cls(opt, **kwargs)
    tparam = torch.zeros(2, requires_grad=True)
    topt = torch.optim.SGD([tparam], lr=0.1)
    tsched = getattr(torch.optim.lr_scheduler, cls.__name__)(topt, **kwargs)
    ours, theirs = [opt.lr], [topt.param_groups[0]["lr"]]
    for _ in range(30):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        assert sched.get_last_lr() == [opt.lr]
        assert_allclose(tsched.get_last_lr(), [topt.param_groups[0]["lr"]])
        ours.append(opt.lr)
        theirs.append(topt.param_groups[0]["lr"])
    assert sched.last_epoch == tsched.last_epoch == 30
    assert_allclose(ours, theirs, rtol=1e-12, atol=1e-16)
    assert len(set(ours)) > 1, "the schedule never changed the learning rate"


@pytest.mark.parametrize(
    "case",
    [*SCHEDULE_CASES, (CosineWithWarmupLR, {"warmup_steps": 4, "total_steps": 20, "min_lr": 1e-3})],
    ids=case_id,
)
def test_schedule_state_dict_resume_is_exact(case):
    cls, kwargs = case
    opt = sgd(0.1)
    sched = cls(opt, **kwargs)
    uninterrupted = []
    for _ in range(30):
        sched.step()
        uninterrupted.append(opt.lr)

    opt2 = sgd(0.1)
    sched2 = cls(opt2, **kwargs)
    for _ in range(12):
        sched2.step()
    sd = json.loads(json.dumps(sched2.state_dict()))
    opt3 = sgd(0.7)  # another base lr: loading must restore the schedule's
    sched3 = cls(opt3, **kwargs)
    sched3.load_state_dict(sd)
    assert sched3.last_epoch == 12
    assert opt3.lr == uninterrupted[11]
    resumed = uninterrupted[:12]
    for _ in range(18):
        sched3.step()
        resumed.append(opt3.lr)
    assert resumed == uninterrupted


def test_cosine_with_warmup_by_hand():
    kw = {"lr": 1.0, "warmup_steps": 4, "total_steps": 14, "min_lr": 0.1}
    assert cosine_with_warmup(0, **kw) == 0.2  # lr * 1 / 5
    assert cosine_with_warmup(3, **kw) == 0.8
    assert cosine_with_warmup(4, **kw) == 1.0  # the peak
    assert_allclose(cosine_with_warmup(9, **kw), 0.55, rtol=1e-15)  # halfway: (lr + min_lr) / 2
    assert cosine_with_warmup(14, **kw) == 0.1
    assert cosine_with_warmup(1000, **kw) == 0.1
    decay = [cosine_with_warmup(s, **kw) for s in range(4, 15)]
    assert all(a > b for a, b in itertools.pairwise(decay))
    # no warm-up and a zero-length decay are allowed
    assert cosine_with_warmup(0, lr=1.0, warmup_steps=0, total_steps=10, min_lr=0.0) == 1.0
    assert cosine_with_warmup(3, lr=1.0, warmup_steps=3, total_steps=3, min_lr=0.0) == 0.0


def test_cosine_with_warmup_scheduler_follows_the_function():
    opt = sgd(0.3)
    sched = CosineWithWarmupLR(opt, warmup_steps=3, total_steps=12, min_lr=0.01)
    lrs = [opt.lr]
    for _ in range(15):
        sched.step()
        lrs.append(opt.lr)
    expected = [
        cosine_with_warmup(s, lr=0.3, warmup_steps=3, total_steps=12, min_lr=0.01)
        for s in range(16)
    ]
    assert lrs == expected


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda o: StepLR(o, step_size=0), ValueError, "step_size must be >= 1, got 0"),
        (lambda o: StepLR(o, step_size=2.5), TypeError, "step_size must be an int"),
        (lambda o: CosineAnnealingLR(o, T_max=0), ValueError, "T_max must be >= 1"),
        (lambda o: ExponentialLR(o, gamma="0.9"), TypeError, "gamma must be a real number"),
        (
            lambda o: LinearLR(o, start_factor=0.0),
            ValueError,
            "Starting multiplicative factor expected to be greater than 0",
        ),
        (
            lambda o: LinearLR(o, end_factor=1.5),
            ValueError,
            "Ending multiplicative factor expected to be between 0 and 1.",
        ),
        (
            lambda o: CosineWithWarmupLR(o, warmup_steps=5, total_steps=3),
            ValueError,
            "total_steps must be >= 5, got 3",
        ),
        (lambda o: StepLR(object(), step_size=1), TypeError, "has no attribute 'lr'"),
    ],
)
def test_schedule_arguments_are_checked(make, error, message):
    opt = sgd(0.1)
    with pytest.raises(error, match=re.escape(message)):
        make(opt)
    assert opt.lr == 0.1


def test_schedule_load_state_dict_checks_keys():
    sched = StepLR(sgd(), step_size=3)
    sd = sched.state_dict()
    with pytest.raises(ValueError, match=re.escape("missing: ['gamma']")):
        sched.load_state_dict({k: v for k, v in sd.items() if k != "gamma"})
    with pytest.raises(ValueError, match="step_size must be >= 1"):
        sched.load_state_dict({**sd, "step_size": 0})
    with pytest.raises(TypeError, match="state_dict must be a dict"):
        sched.load_state_dict([sd])


def test_public_api():
    assert sorted(optim.__all__) == sorted(
        name
        for name in dir(optim)
        if not name.startswith("_") and name not in {"clip", "optimizers", "schedules"}
    )
