"""rnnkit.functional: activations (with derivatives from outputs) and losses.

Activations are checked against their definitions and finite differences,
and for silence and correctness at +/-1e4; cross_entropy and mse_loss against
torch.nn.functional (float64, when torch is installed) and finite differences.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rnnkit.functional import (
    cross_entropy,
    log_softmax,
    mse_loss,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    softmax,
    tanh,
    tanh_grad,
)
from rnnkit.functional.activations import ACTIVATIONS, DERIVATIVES
from rnnkit.gradcheck import numerical_gradient, rel_error

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]


@pytest.fixture
def rng():
    return np.random.default_rng(31415)


def _definition(name, x):
    """The textbook formula, evaluated in float64 where it is safe (|x| <= 30)."""
    x = np.asarray(x, np.float64)
    return {
        "sigmoid": lambda: 1.0 / (1.0 + np.exp(-x)),
        "tanh": lambda: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x)),
        "relu": lambda: np.where(x > 0, x, 0.0),
    }[name]()


# ---------------------------------------------------------------- activations
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_activation_matches_definition(rng, name, dtype):
    x = (rng.standard_normal((7, 5)) * 6).astype(dtype)
    y = ACTIVATIONS[name](x)
    assert y.dtype == dtype and y.shape == x.shape
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(y, _definition(name, x), rtol=tol, atol=tol,
                               err_msg=f"{name} vs its definition")


def test_activation_table_is_consistent():
    assert ACTIVATIONS == {"tanh": tanh, "relu": relu, "sigmoid": sigmoid}
    assert DERIVATIVES == {"tanh": tanh_grad, "relu": relu_grad, "sigmoid": sigmoid_grad}


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu"])
def test_activation_out_argument(rng, name):
    x = rng.standard_normal(10)
    expected = ACTIVATIONS[name](x.copy())
    buf = np.empty_like(x)
    res = ACTIVATIONS[name](x, out=buf)
    assert res is buf
    np.testing.assert_array_equal(buf, expected, err_msg=f"{name}(out=buf)")
    ACTIVATIONS[name](x, out=x)  # in place
    np.testing.assert_array_equal(x, expected, err_msg=f"{name}(x, out=x)")


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu"])
def test_derivative_from_output_vs_finite_differences(rng, name):
    x = rng.standard_normal(200) * 3
    if name == "relu":
        x = x[np.abs(x) > 1e-3]  # away from the kink
    eps = 1e-6
    f = ACTIVATIONS[name]
    numerical = (f(x + eps) - f(x - eps)) / (2 * eps)
    analytic = DERIVATIVES[name](f(x))
    err = rel_error(analytic, numerical)
    assert err <= 1e-8, f"{name}_grad from outputs vs finite differences: {err:.1e}"


def test_relu_grad_at_zero_is_zero():
    """PyTorch's choice: relu'(0) = 0."""
    np.testing.assert_array_equal(relu_grad(relu(np.array([-1.0, 0.0, 2.0]))), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_derivative_dtypes(dtype):
    y = np.array([0.0, 0.5, 0.9], dtype)
    for name, d in DERIVATIVES.items():
        assert d(y).dtype == dtype, f"{name}_grad changed the dtype"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_no_warnings_and_correct_at_extremes(dtype):
    x = np.array([-1e4, -50.0, 0.0, 50.0, 1e4], dtype)
    rows = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            s, t, r = sigmoid(x), tanh(x), relu(x)
            grads = sigmoid_grad(s), tanh_grad(t), relu_grad(r)
            sm, lsm = softmax(rows), log_softmax(rows)
    assert s[0] == 0.0 and s[-1] == 1.0 and s[2] == 0.5, f"sigmoid at extremes: {s}"
    assert t[0] == -1.0 and t[-1] == 1.0, f"tanh at extremes: {t}"
    np.testing.assert_array_equal(r, [0.0, 0.0, 0.0, 50.0, 1e4])
    for g in grads:
        assert np.isfinite(g).all() and g.dtype == dtype
    np.testing.assert_array_equal(grads[0][[0, -1]], 0.0)
    for a in (s, t, r, sm, lsm):
        assert a.dtype == dtype
    assert np.isfinite(lsm).all(), f"log_softmax not finite: {lsm}"
    np.testing.assert_allclose(lsm[0], [0.0, -2e4, -1e4], rtol=1e-6)
    np.testing.assert_allclose(lsm[1], np.full(3, -np.log(3.0)), rtol=1e-6)
    np.testing.assert_allclose(lsm[2], [-np.log(2.0), -np.log(2.0), -2e4 - np.log(2.0)],
                               rtol=1e-6)
    np.testing.assert_allclose(sm[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(sm[2], [0.5, 0.5, 0.0], rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_and_log_softmax(rng, dtype, axis):
    x = (rng.standard_normal((4, 6, 5)) * 5).astype(dtype)
    p = softmax(x, axis=axis)
    lp = log_softmax(x, axis=axis)
    assert p.dtype == dtype and lp.dtype == dtype and p.shape == x.shape
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(p.sum(axis=axis), 1.0, rtol=tol, err_msg="rows sum to 1")
    x64 = x.astype(np.float64)
    ref = np.exp(x64) / np.exp(x64).sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(p, ref, rtol=10 * tol, atol=tol, err_msg="softmax vs definition")
    np.testing.assert_allclose(lp, np.log(ref), rtol=10 * tol, atol=tol,
                               err_msg="log_softmax vs log of the definition")
    assert (p >= 0).all() and (p <= 1).all() and (lp <= 0).all()


def test_softmax_shift_invariance(rng):
    x = rng.standard_normal((3, 5))
    np.testing.assert_allclose(softmax(x + 1000.0), softmax(x), rtol=1e-12)
    np.testing.assert_allclose(log_softmax(x - 1000.0), log_softmax(x), rtol=1e-12, atol=1e-12)


# -------------------------------------------------------------- cross entropy
def _ce_case(rng, shape, C, masked):
    logits = rng.standard_normal(shape + (C,)) * 2
    target = rng.integers(0, C, size=shape)
    mask = None
    if masked:
        mask = rng.random(shape) < 0.6
        mask.flat[0] = True
        mask.flat[-1] = False
    return logits, target, mask


CE_CASES = [((8,), 5, False), ((8,), 5, True), ((4, 3), 7, False), ((4, 3), 7, True),
            ((1,), 2, False)]
CE_IDS = [f"{'x'.join(map(str, s))}-C{c}-{'mask' if m else 'nomask'}" for s, c, m in CE_CASES]


@pytest.mark.parametrize("shape,C,masked", CE_CASES, ids=CE_IDS)
def test_cross_entropy_vs_torch(rng, shape, C, masked):
    torch = pytest.importorskip("torch")
    logits, target, mask = _ce_case(rng, shape, C, masked)
    loss, d_logits = cross_entropy(logits, target, mask)
    assert isinstance(loss, float) and d_logits.shape == logits.shape
    t_target = target.copy()
    if mask is not None:
        t_target[~mask] = -100  # torch's ignore_index
    z = torch.tensor(logits.reshape(-1, C), requires_grad=True)
    t_loss = torch.nn.functional.cross_entropy(z, torch.as_tensor(t_target.reshape(-1)),
                                               ignore_index=-100, reduction="mean")
    t_loss.backward()
    assert rel_error(loss, t_loss.item()) <= 1e-13, f"loss {loss} vs torch {t_loss.item()}"
    err = rel_error(d_logits, z.grad.numpy().reshape(logits.shape))
    assert err <= 1e-13, f"d_logits vs torch: rel_error {err:.1e}"
    if mask is not None:
        assert not d_logits[~mask].any(), "masked positions have a gradient"


@pytest.mark.parametrize("shape,C,masked", CE_CASES, ids=CE_IDS)
def test_cross_entropy_finite_differences(rng, shape, C, masked):
    logits, target, mask = _ce_case(rng, shape, C, masked)
    _, d_logits = cross_entropy(logits, target, mask)
    numerical = numerical_gradient(lambda: cross_entropy(logits, target, mask)[0], logits)
    err = rel_error(d_logits, numerical)
    assert err <= 1e-7, f"d_logits vs finite differences: rel_error {err:.1e}"


def test_cross_entropy_known_values():
    # uniform logits: log C; a confident right answer: ~0
    loss, d = cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
    assert loss == pytest.approx(np.log(4.0), rel=1e-15)
    np.testing.assert_allclose(d, (np.full((2, 4), 0.25) - np.eye(4)[[0, 3]]) / 2, rtol=1e-15)
    loss, _ = cross_entropy(np.array([[1e4, 0.0]]), np.array([0]))
    assert loss == 0.0
    with np.errstate(all="raise", under="ignore"):
        loss, d = cross_entropy(np.array([[1e4, -1e4]], np.float32), np.array([1]))
    assert loss == pytest.approx(2e4) and np.isfinite(d).all() and d.dtype == np.float32


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_cross_entropy_dtype(rng, dtype):
    logits = rng.standard_normal((3, 4)).astype(dtype)
    loss, d = cross_entropy(logits, np.array([0, 1, 2]))
    assert d.dtype == dtype and isinstance(loss, float)


CE_ERRORS = [
    ("target_shape", lambda: cross_entropy(np.zeros((4, 3)), np.zeros(5, int)), ValueError,
     r"Expected target of shape \(4,\) for logits of shape \(4, 3\), got \(5,\)"),
    ("target_rank", lambda: cross_entropy(np.zeros((4, 3)), np.zeros((4, 3), int)), ValueError,
     r"Expected target of shape \(4,\)"),
    ("float_target", lambda: cross_entropy(np.zeros((4, 3)), np.zeros(4)), TypeError,
     r"target must be integer class indices, got float64"),
    ("target_too_big", lambda: cross_entropy(np.zeros((2, 3)), np.array([0, 3])), ValueError,
     r"target values must be in \[0, 2\], got range \[0, 3\]"),
    ("target_negative", lambda: cross_entropy(np.zeros((2, 3)), np.array([-1, 0])), ValueError,
     r"target values must be in \[0, 2\]"),
    ("mask_all_false", lambda: cross_entropy(np.zeros((2, 3)), np.array([0, 1]),
                                             np.zeros(2, bool)), ValueError,
     r"mask selects no element"),
    ("mask_shape", lambda: cross_entropy(np.zeros((2, 3)), np.array([0, 1]), np.ones(3, bool)),
     ValueError, r"Expected mask of shape \(2,\)"),
    ("mask_dtype", lambda: cross_entropy(np.zeros((2, 3)), np.array([0, 1]), np.ones(2)),
     TypeError, r"mask must be a boolean array"),
]


@pytest.mark.parametrize("call,exc,match", [e[1:] for e in CE_ERRORS],
                         ids=[e[0] for e in CE_ERRORS])
def test_cross_entropy_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------- MSE
MSE_CASES = [((6,), None), ((4, 3), None), ((4, 3), "elementwise"), ((5, 2, 3), "vector")]
MSE_IDS = ["1d", "2d", "2d-mask", "3d-vector-mask"]


def _mse_case(rng, shape, mask_kind):
    pred = rng.standard_normal(shape)
    target = rng.standard_normal(shape)
    mask = None
    if mask_kind == "elementwise":
        mask = rng.random(shape) < 0.5
    elif mask_kind == "vector":
        mask = rng.random(shape[:-1]) < 0.5
    if mask is not None:
        mask.flat[0], mask.flat[-1] = True, False
    return pred, target, mask


@pytest.mark.parametrize("shape,mask_kind", MSE_CASES, ids=MSE_IDS)
def test_mse_vs_torch(rng, shape, mask_kind):
    torch = pytest.importorskip("torch")
    pred, target, mask = _mse_case(rng, shape, mask_kind)
    loss, d_pred = mse_loss(pred, target, mask)
    assert isinstance(loss, float) and d_pred.shape == pred.shape
    p = torch.tensor(pred, requires_grad=True)
    t = torch.tensor(target)
    if mask is None:
        t_loss = torch.nn.functional.mse_loss(p, t)
    else:  # the mean over the selected elements only
        sel = torch.as_tensor(np.broadcast_to(mask[..., None] if mask.shape != pred.shape
                                              else mask, pred.shape).copy())
        t_loss = torch.nn.functional.mse_loss(p[sel], t[sel])
    t_loss.backward()
    assert rel_error(loss, t_loss.item()) <= 1e-13, f"loss {loss} vs torch {t_loss.item()}"
    err = rel_error(d_pred, p.grad.numpy())
    assert err <= 1e-13, f"d_pred vs torch: rel_error {err:.1e}"


@pytest.mark.parametrize("shape,mask_kind", MSE_CASES, ids=MSE_IDS)
def test_mse_finite_differences(rng, shape, mask_kind):
    pred, target, mask = _mse_case(rng, shape, mask_kind)
    _, d_pred = mse_loss(pred, target, mask)
    numerical = numerical_gradient(lambda: mse_loss(pred, target, mask)[0], pred)
    err = rel_error(d_pred, numerical)
    assert err <= 1e-7, f"d_pred vs finite differences: rel_error {err:.1e}"


def test_mse_known_value_and_dtype():
    loss, d = mse_loss(np.array([1.0, 2.0], np.float32), np.array([0.0, 0.0], np.float32))
    assert loss == pytest.approx(2.5) and d.dtype == np.float32
    np.testing.assert_allclose(d, [1.0, 2.0])
    # a vector mask counts the elements of the selected vectors
    loss, d = mse_loss(np.ones((2, 3)), np.zeros((2, 3)), np.array([True, False]))
    assert loss == pytest.approx(1.0)
    np.testing.assert_allclose(d, [[2 / 3] * 3, [0.0] * 3])


MSE_ERRORS = [
    ("target_shape", lambda: mse_loss(np.zeros((4, 3)), np.zeros((4, 2))), ValueError,
     r"Expected target of shape \(4, 3\), got \(4, 2\)"),
    ("target_transposed", lambda: mse_loss(np.zeros((4, 3)), np.zeros((3, 4))), ValueError,
     r"Expected target of shape \(4, 3\)"),
    ("mask_all_false", lambda: mse_loss(np.zeros((4, 3)), np.zeros((4, 3)),
                                        np.zeros((4, 3), bool)), ValueError,
     r"mask selects no element"),
    ("vector_mask_all_false", lambda: mse_loss(np.zeros((4, 3)), np.zeros((4, 3)),
                                               np.zeros(4, bool)), ValueError,
     r"mask selects no element"),
    ("mask_shape", lambda: mse_loss(np.zeros((4, 3)), np.zeros((4, 3)), np.ones(3, bool)),
     ValueError, r"Expected mask of shape \(4, 3\)"),
]


@pytest.mark.parametrize("call,exc,match", [e[1:] for e in MSE_ERRORS],
                         ids=[e[0] for e in MSE_ERRORS])
def test_mse_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
