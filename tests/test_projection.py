"""LSTM with a projection (``proj_size``, Sak et al. 2014), as ``torch.nn.LSTM(proj_size=P)``.

``h_t = W_hr (o_t * tanh(c_t))``: ``weight_hr_l{k}`` (P, H), ``weight_hh_l{k}``
(4H, P), output (T, B, K*P), ``h_n`` (L*K, B, P), ``c_n`` (L*K, B, H).

* against torch in float64 over layers x directions x layout x bias x
  lengths x initial state: output, h_n, c_n and every gradient to 1e-10;
* float64 finite differences of every parameter, x, h0 and c0 at tiny sizes;
* shapes, initialization bound and the errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit import LSTM
from rnnkit.gradcheck import numerical_gradient, rel_error
from rnnkit.recurrent import RNNBase

SEED = 1234
TOL64 = 1e-10
TOL_FD = 1e-6


@pytest.fixture(scope="module", autouse=True)
def _torch_one_thread():
    """Tiny problems: torch's thread pool only adds overhead (10x here); restored afterwards."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(SEED)


def _torch_twin(torch, m):
    """``torch.nn.LSTM`` with m's options and m's parameters, copied by name, strictly."""
    tm = torch.nn.LSTM(m.input_size, m.hidden_size, num_layers=m.num_layers, bias=m.bias,
                       batch_first=m.batch_first, bidirectional=m.bidirectional,
                       proj_size=m.proj_size, dtype=torch.float64)
    tm.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in m.params.items()}, strict=True)
    return tm


def _torch_run(torch, tm, x, h0, c0, d_out, dh_n, dc_n, lengths=None):
    """Forward (packed when ``lengths``) and backward of sum(out*d_out)+sum(h_n*dh_n)+sum(c_n*dc_n)."""
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    if lengths is None:
        out, (h_n, c_n) = tm(xt, (h0t, c0t))
    else:
        T = x.shape[1] if tm.batch_first else x.shape[0]
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=tm.batch_first, enforce_sorted=False)
        out, (h_n, c_n) = tm(packed, (h0t, c0t))
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=tm.batch_first,
                                                        total_length=T)
    loss = ((out * torch.tensor(d_out)).sum() + (h_n * torch.tensor(dh_n)).sum()
            + (c_n * torch.tensor(dc_n)).sum())
    loss.backward()
    return {
        "output": out.detach().numpy(), "h_n": h_n.detach().numpy(), "c_n": c_n.detach().numpy(),
        "d_input": xt.grad.numpy(), "d_h0": h0t.grad.numpy(), "d_c0": c0t.grad.numpy(),
        "grads": {k: p.grad.numpy() for k, p in tm.named_parameters()},
    }


def _check(mine, m, ref, tol=TOL64):
    for key in [k for k in ref if k != "grads"]:
        assert mine[key].shape == ref[key].shape, f"{key}: shape {mine[key].shape} vs torch"
        err = rel_error(mine[key], ref[key])
        assert err <= tol, f"{key}: rnnkit vs torch relative error {err:.2e}"
    assert set(m.grads) == set(ref["grads"]), "gradient keys differ from torch's parameters"
    assert any(k.startswith("weight_hr") for k in ref["grads"])
    for k, g in ref["grads"].items():
        err = rel_error(m.grads[k], g)
        assert err <= tol, f"grads[{k}]: rnnkit vs torch relative error {err:.2e}"


# --------------------------------------------------------------------------- shapes and init
@pytest.mark.parametrize("bidirectional", [False, True])
def test_projection_parameter_and_state_shapes(bidirectional, rng):
    D, H, P, L, T, B = 4, 6, 2, 3, 5, 3
    m = LSTM(D, H, num_layers=L, bidirectional=bidirectional, proj_size=P, rng=0)
    K = 2 if bidirectional else 1
    for layer in range(L):
        for sfx in ("", "_reverse")[:K]:
            s = f"_l{layer}{sfx}"
            assert m.params[f"weight_ih{s}"].shape == (4 * H, D if layer == 0 else K * P)
            assert m.params[f"weight_hh{s}"].shape == (4 * H, P)
            assert m.params[f"weight_hr{s}"].shape == (P, H)
            assert m.params[f"bias_ih{s}"].shape == (4 * H,)
            # PyTorch's init for every parameter, the projection included
            assert np.abs(m.params[f"weight_hr{s}"]).max() <= 1 / np.sqrt(H)
    assert set(m.grads) == set(m.params)
    assert all(m.grads[k].shape == v.shape for k, v in m.params.items())
    out, (h_n, c_n) = m(rng.standard_normal((T, B, D)).astype(np.float32))
    assert out.shape == (T, B, K * P) and out.dtype == np.float32
    assert h_n.shape == (L * K, B, P)
    assert c_n.shape == (L * K, B, H)
    # unbatched
    out, (h_n, c_n) = m(rng.standard_normal((T, D)).astype(np.float32))
    assert out.shape == (T, K * P) and h_n.shape == (L * K, P) and c_n.shape == (L * K, H)
    assert "proj_size=2" in repr(m)


# --------------------------------------------------------------------------- against torch
@pytest.mark.parametrize("given_state", [False, True], ids=["zero_state", "given_state"])
@pytest.mark.parametrize("lengths", [None, (3, 5, 1)], ids=["equal_len", "mixed_len"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_projection_matches_torch(num_layers, bidirectional, batch_first, bias, lengths,
                                  given_state, rng):
    torch = pytest.importorskip("torch")
    T, B, D, H, P = 5, 3, 4, 5, 3
    K = 2 if bidirectional else 1
    LK = num_layers * K
    m = LSTM(D, H, num_layers=num_layers, bias=bias, batch_first=batch_first,
             bidirectional=bidirectional, proj_size=P, dtype=np.float64, rng=7)
    x = rng.standard_normal((B, T, D) if batch_first else (T, B, D))
    h0 = rng.standard_normal((LK, B, P)) if given_state else np.zeros((LK, B, P))
    c0 = rng.standard_normal((LK, B, H)) if given_state else np.zeros((LK, B, H))
    d_out = rng.standard_normal((B, T, K * P) if batch_first else (T, B, K * P))
    dh_n = rng.standard_normal((LK, B, P))
    dc_n = rng.standard_normal((LK, B, H))

    out, (h_n, c_n) = m.forward(x, (h0, c0) if given_state else None, lengths=lengths)
    d_x, (d_h0, d_c0) = m.backward(d_out, (dh_n, dc_n))
    mine = {"output": out, "h_n": h_n, "c_n": c_n, "d_input": d_x, "d_h0": d_h0, "d_c0": d_c0}
    for key, value in mine.items():
        assert value.dtype == np.float64, key
    ref = _torch_run(torch, _torch_twin(torch, m), x, h0, c0, d_out, dh_n, dc_n,
                     lengths=None if lengths is None else list(lengths))
    _check(mine, m, ref)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_projection_unbatched_matches_torch(bidirectional, rng):
    torch = pytest.importorskip("torch")
    T, D, H, P, L = 4, 3, 5, 2, 2
    K = 2 if bidirectional else 1
    m = LSTM(D, H, num_layers=L, bidirectional=bidirectional, proj_size=P, dtype=np.float64,
             rng=8)
    x = rng.standard_normal((T, D))
    h0, c0 = rng.standard_normal((L * K, P)), rng.standard_normal((L * K, H))
    d_out = rng.standard_normal((T, K * P))
    dh_n, dc_n = rng.standard_normal((L * K, P)), rng.standard_normal((L * K, H))
    out, (h_n, c_n) = m.forward(x, (h0, c0))
    d_x, (d_h0, d_c0) = m.backward(d_out, (dh_n, dc_n))
    mine = {"output": out, "h_n": h_n, "c_n": c_n, "d_input": d_x, "d_h0": d_h0, "d_c0": d_c0}
    _check(mine, m, _torch_run(torch, _torch_twin(torch, m), x, h0, c0, d_out, dh_n, dc_n))


@pytest.mark.parametrize("which", ["output_only", "h_n_only", "c_n_only"])
def test_projection_partial_upstream_gradients_match_torch(which, rng):
    """``backward(d_output=None)`` / ``d_hx=(dh_n, None)``: the missing ones are zeros."""
    torch = pytest.importorskip("torch")
    T, B, D, H, P = 4, 2, 3, 4, 2
    m = LSTM(D, H, num_layers=2, bidirectional=True, proj_size=P, dtype=np.float64, rng=9)
    x = rng.standard_normal((T, B, D))
    h0, c0 = rng.standard_normal((4, B, P)), rng.standard_normal((4, B, H))
    grads = {"d_out": rng.standard_normal((T, B, 2 * P)), "dh_n": rng.standard_normal((4, B, P)),
             "dc_n": rng.standard_normal((4, B, H))}
    keep = {"output_only": "d_out", "h_n_only": "dh_n", "c_n_only": "dc_n"}[which]
    given = {k: (v if k == keep else None) for k, v in grads.items()}
    out, (h_n, c_n) = m.forward(x, (h0, c0), lengths=[4, 2])
    d_x, (d_h0, d_c0) = m.backward(given["d_out"], (given["dh_n"], given["dc_n"]))
    zeros = {k: (v if k == keep else np.zeros_like(v)) for k, v in grads.items()}
    ref = _torch_run(torch, _torch_twin(torch, m), x, h0, c0, zeros["d_out"], zeros["dh_n"],
                     zeros["dc_n"], lengths=[4, 2])
    mine = {"output": out, "h_n": h_n, "c_n": c_n, "d_input": d_x, "d_h0": d_h0, "d_c0": d_c0}
    _check(mine, m, ref)


def test_projection_gradients_accumulate_like_torch(rng):
    torch = pytest.importorskip("torch")
    T, B, D, H, P = 4, 2, 3, 4, 2
    m = LSTM(D, H, num_layers=2, proj_size=P, dtype=np.float64, rng=10)
    tm = _torch_twin(torch, m)
    for _ in range(2):
        x = rng.standard_normal((T, B, D))
        h0, c0 = rng.standard_normal((2, B, P)), rng.standard_normal((2, B, H))
        d_out = rng.standard_normal((T, B, P))
        dh_n, dc_n = rng.standard_normal((2, B, P)), rng.standard_normal((2, B, H))
        m.forward(x, (h0, c0))
        m.backward(d_out, (dh_n, dc_n))
        ref = _torch_run(torch, tm, x, h0, c0, d_out, dh_n, dc_n)
    for k, g in ref["grads"].items():
        assert rel_error(m.grads[k], g) <= TOL64, f"accumulated grads[{k}]"


# --------------------------------------------------------------------------- finite differences
FD_CASES = [
    # (num_layers, bidirectional, bias, batch_first, lengths)
    (1, False, True, False, None),
    (1, True, False, True, None),
    (2, False, True, True, (4, 2)),
    (2, True, True, False, (1, 4)),
]


@pytest.mark.parametrize("num_layers, bidirectional, bias, batch_first, lengths", FD_CASES)
def test_projection_finite_differences(num_layers, bidirectional, bias, batch_first, lengths,
                                       rng):
    """Every parameter, x, h0 and c0, with L = sum(out G) + sum(h_n Gh) + sum(c_n Gc)."""
    T, B, D, H, P = 4, 2, 2, 3, 2
    K = 2 if bidirectional else 1
    LK = num_layers * K
    m = LSTM(D, H, num_layers=num_layers, bias=bias, batch_first=batch_first,
             bidirectional=bidirectional, proj_size=P, dtype=np.float64, rng=11)
    x = rng.standard_normal((B, T, D) if batch_first else (T, B, D))
    h0, c0 = rng.standard_normal((LK, B, P)), rng.standard_normal((LK, B, H))
    G = rng.standard_normal((B, T, K * P) if batch_first else (T, B, K * P))
    Gh, Gc = rng.standard_normal((LK, B, P)), rng.standard_normal((LK, B, H))

    m.forward(x, (h0, c0), lengths=lengths)
    d_x, (d_h0, d_c0) = m.backward(G, (Gh, Gc))

    def loss():
        out, (h_n, c_n) = m.forward(x, (h0, c0), lengths=lengths)
        return float((out * G).sum() + (h_n * Gh).sum() + (c_n * Gc).sum())

    checks = {f"grads[{k}]": (p, m.grads[k]) for k, p in m.params.items()}
    checks.update(d_input=(x, d_x), d_h0=(h0, d_h0), d_c0=(c0, d_c0))
    assert any(k.startswith("grads[weight_hr") for k in checks)
    for label, (array, analytic) in checks.items():
        numeric = numerical_gradient(loss, array)
        assert np.abs(numeric).max() > 0, f"{label}: numerical gradient is all zero"
        err = rel_error(analytic, numeric)
        assert err <= TOL_FD, f"{label}: analytic vs finite differences {err:.2e}"


# --------------------------------------------------------------------------- errors
def test_projection_size_errors():
    for P in (4, 5):
        with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
            LSTM(3, 4, proj_size=P)
    with pytest.raises(ValueError, match="proj_size"):
        LSTM(3, 4, proj_size=-1)
    with pytest.raises(TypeError, match="proj_size"):
        LSTM(3, 4, proj_size=2.0)
    for mode in ("RNN", "GRU"):
        with pytest.raises(ValueError, match="only supported for LSTM"):
            RNNBase(mode, 3, 4, proj_size=2)
    LSTM(3, 4, proj_size=0)  # 0 disables the projection
    assert "weight_hr_l0" not in LSTM(3, 4, proj_size=0).params


def test_rnn_and_gru_refuse_proj_size_like_pytorch():
    """RNN and GRU take proj_size only to refuse it, with PyTorch's ValueError."""
    from rnnkit import GRU, RNN

    for cls in (RNN, GRU):
        with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
            cls(3, 4, proj_size=2)


def test_projection_state_shape_errors():
    m = LSTM(3, 5, num_layers=2, proj_size=2, dtype=np.float64, rng=0)
    x = np.zeros((4, 3, 3))
    good_h, good_c = np.zeros((2, 3, 2)), np.zeros((2, 3, 5))
    with pytest.raises(ValueError, match=r"h_0.*\(2, 3, 2\).*\(2, 3, 5\)"):
        m.forward(x, (np.zeros((2, 3, 5)), good_c))  # h has P features, not H
    with pytest.raises(ValueError, match=r"c_0.*\(2, 3, 5\).*\(2, 3, 2\)"):
        m.forward(x, (good_h, np.zeros((2, 3, 2))))  # c has H features, not P
    with pytest.raises(TypeError, match="tuple"):
        m.forward(x, good_h)
    m.forward(x, (good_h, good_c))
    with pytest.raises(ValueError, match=r"d_output.*\(4, 3, 2\).*\(4, 3, 5\)"):
        m.backward(np.zeros((4, 3, 5)))
    m.forward(x, (good_h, good_c))
    with pytest.raises(ValueError, match=r"dh_n.*\(2, 3, 2\).*\(2, 3, 5\)"):
        m.backward(None, (np.zeros((2, 3, 5)), None))


def test_projection_load_state_dict_names_weight_hr():
    m = LSTM(3, 5, proj_size=2, bidirectional=True, rng=0)
    sd = m.state_dict()
    del sd["weight_hr_l0_reverse"]
    with pytest.raises(ValueError, match="Missing key.*weight_hr_l0_reverse"):
        m.load_state_dict(sd)
    sd = m.state_dict()
    sd["weight_hr_l0"] = np.zeros((5, 2), np.float32)  # transposed
    with pytest.raises(ValueError, match=r"weight_hr_l0.*\(5, 2\).*\(2, 5\)"):
        m.load_state_dict(sd)
    with pytest.raises(ValueError, match="Unexpected key.*weight_hr_l0"):
        LSTM(3, 5, bidirectional=True, rng=0).load_state_dict(m.state_dict())
