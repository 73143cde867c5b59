"""The g gate keeps full relative precision for small pre-activations (regression test).

tanh(z) = 2 sigmoid(2z) - 1 saves a ufunc call but cancels catastrophically for
small z: with weights scaled by 1e-12 the output lost all its digits.
"""

import numpy as np
import pytest

import rnnkit
from rnnkit.gradcheck import rel_error

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("scale", [1e-8, 1e-12, 1e-20, 1.0])
def test_lstm_matches_torch_for_tiny_weights(scale):
    m = rnnkit.LSTM(2, 3, dtype=np.float64, rng=0)
    for k in m.params:
        m.params[k] *= scale
    t = torch.nn.LSTM(2, 3).double()
    t.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in m.params.items()})
    x = np.random.default_rng(0).standard_normal((4, 2, 2))
    out, _ = m.forward(x)
    d = np.random.default_rng(1).standard_normal(out.shape)
    dx, _ = m.backward(d)
    xt = torch.tensor(x, requires_grad=True)
    ot, _ = t(xt)
    (ot * torch.from_numpy(d)).sum().backward()
    assert rel_error(out, ot.detach().numpy()) < 1e-12, "output"
    assert rel_error(dx, xt.grad.numpy()) < 1e-12, "d_input"
    for k, p in t.named_parameters():
        assert rel_error(m.grads[k], p.grad.numpy()) < 1e-12, k


def test_lstm_cell_g_gate_is_tanh_of_small_input():
    cell = rnnkit.LSTMCell(1, 1, bias=False, dtype=np.float64, rng=0)
    cell.params["weight_ih"][...] = 1e-15
    cell.params["weight_hh"][...] = 0.0
    _, c = cell.forward(np.array([[1.0]]))
    # c = i * g with i = sigmoid(1e-15) = 0.5 and g = tanh(1e-15) = 1e-15
    assert c[0, 0] == pytest.approx(0.5e-15, rel=1e-12)
