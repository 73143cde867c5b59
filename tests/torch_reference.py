"""Reference results for the recurrent layers: PyTorch, and a plain NumPy loop.

Not a test module (pytest collects only ``test_*.py``); the tests import it.

``torch_reference`` builds ``torch.nn.{RNN,LSTM,GRU}`` with the options of an
rnnkit layer, copies the layer's parameters into it **by name, with no
reshaping** (``load_state_dict({k: torch.from_numpy(v)})`` in strict mode, so
a key or shape that differs from PyTorch's is an error), runs forward and
backward with the same upstream gradients, and returns every result as NumPy.
torch is imported lazily, inside the function: tests that call it first call
``pytest.importorskip("torch")``, so the rest of the suite runs without torch.

``reference_rnn_loop`` is the Elman RNN written straight from its equation,
one step, one sequence, one layer and one direction at a time, with no
vectorization. It covers the ``'sigmoid'`` nonlinearity, which PyTorch does
not have, and it also returns the pre-activations (the gradient checks use
them to stay away from relu's kink). The torch tests check it against
``torch.nn.RNN`` for tanh and relu before it is trusted for sigmoid.
"""

from __future__ import annotations

import numpy as np

__all__ = ["STATE_NAMES", "reference_rnn_loop", "torch_reference"]

# names of the state arrays of each family, in the order forward returns them
STATE_NAMES = {"RNN": ("h",), "GRU": ("h",), "LSTM": ("h", "c")}


def _torch_module(model, torch_dtype):
    import torch

    cls = {"RNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[model.mode]
    kwargs = {"num_layers": model.num_layers, "bias": model.bias,
              "batch_first": model.batch_first, "dropout": model.dropout,
              "bidirectional": model.bidirectional, "dtype": torch_dtype}
    if model.mode == "RNN":
        kwargs["nonlinearity"] = model.nonlinearity
    if getattr(model, "proj_size", 0):
        kwargs["proj_size"] = model.proj_size
    with torch.no_grad():
        module = cls(model.input_size, model.hidden_size, **kwargs)
    return module


def torch_reference(model, x, hx=None, d_output=None, d_hx=None, lengths=None, dtype=None):
    """Run the PyTorch twin of ``model`` forward and backward; return NumPy arrays.

    Parameters
    ----------
    model : rnnkit.recurrent.RNN, LSTM or GRU
        Its options, parameters (copied by name) and train/eval mode are used.
    x : ndarray
        The input, laid out as ``model`` expects (time-major, batch first or
        unbatched).
    hx : ndarray, tuple of ndarray (LSTM), or None
        Initial state(s). None means zeros; they are then passed to torch as
        explicit zero tensors so that their gradient can be compared too.
    d_output : ndarray shaped like the output, or None
        Upstream gradient of the output. At padded steps PyTorch's padded
        output is a constant zero, so whatever is there gets no gradient.
    d_hx : ndarray, tuple (LSTM) whose members may be None, or None
        Upstream gradient(s) of the final state(s).
    lengths : sequence of int, optional
        Runs ``pack_padded_sequence(..., enforce_sorted=False)`` and
        ``pad_packed_sequence(..., total_length=T)`` around the module.
    dtype : numpy dtype, optional
        The dtype torch computes in; defaults to ``model.dtype``. Passing
        float64 for a float32 model gives an exact-arithmetic reference for
        the float32 tests (every float32 number is a float64 number).

    Returns
    -------
    dict
        ``output``, ``h_n`` (and ``c_n``), ``d_input``, ``d_h0`` (and
        ``d_c0``), and ``grads``: {parameter name: gradient} for every
        parameter of the torch module.
    """
    import torch

    np_dtype = np.dtype(model.dtype if dtype is None else dtype)
    torch_dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[
        np_dtype]
    module = _torch_module(model, torch_dtype)
    module.load_state_dict(
        {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np_dtype))
         for k, v in model.params.items()},
        strict=True,
    )
    module.train(model.training)

    def tensor(a, grad=False):
        return torch.tensor(np.asarray(a, dtype=np_dtype), requires_grad=grad)

    names = STATE_NAMES[model.mode]
    x = np.asarray(x)
    batched = x.ndim == 3
    T = x.shape[1] if (batched and model.batch_first) else x.shape[0]
    B = (x.shape[0] if model.batch_first else x.shape[1]) if batched else None
    lead = (model.num_layers * model.num_directions,) + ((B,) if batched else ())
    # h has proj_size features when an LSTM projects, c always hidden_size
    sizes = (getattr(model, "proj_size", 0) or model.hidden_size, model.hidden_size)
    if hx is None:
        states = [np.zeros(lead + (size,)) for _, size in zip(names, sizes)]
    else:
        states = list(hx) if model.mode == "LSTM" else [hx]
    xt = tensor(x, grad=True)
    state_t = [tensor(s, grad=True) for s in states]
    hx_t = tuple(state_t) if model.mode == "LSTM" else state_t[0]

    if lengths is None:
        out_t, hn_t = module(xt, hx_t)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.as_tensor(np.asarray(lengths, dtype=np.int64)),
            batch_first=model.batch_first, enforce_sorted=False)
        out_packed, hn_t = module(packed, hx_t)
        out_t, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out_packed, batch_first=model.batch_first, total_length=T)
    final_t = list(hn_t) if model.mode == "LSTM" else [hn_t]

    loss = out_t.new_zeros(())
    if d_output is not None:
        loss = loss + (out_t * tensor(d_output)).sum()
    if d_hx is not None:
        d_finals = list(d_hx) if model.mode == "LSTM" else [d_hx]
        for f, d in zip(final_t, d_finals):
            if d is not None:
                loss = loss + (f * tensor(d)).sum()
    if loss.requires_grad:
        loss.backward()

    def grad_of(t):
        return np.zeros(tuple(t.shape), np_dtype) if t.grad is None else t.grad.numpy()

    result = {"output": out_t.detach().numpy(), "d_input": grad_of(xt)}
    for name, f, s in zip(names, final_t, state_t):
        result[f"{name}_n"] = f.detach().numpy()
        result[f"d_{name}0"] = grad_of(s)
    result["grads"] = {k: grad_of(p) for k, p in module.named_parameters()}
    return result


def _act(a, nonlinearity):
    if nonlinearity == "tanh":
        return float(np.tanh(a))
    if nonlinearity == "relu":
        return max(a, 0.0)
    if nonlinearity == "sigmoid":
        return 1.0 / (1.0 + float(np.exp(-a)))
    raise ValueError(nonlinearity)


def reference_rnn_loop(params, x, h0, nonlinearity, num_layers, bidirectional, lengths=None):
    """The Elman RNN from its equation, scalar by scalar; time-major, float64.

    ``h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` for ``t < lengths[b]``;
    the reverse direction reads ``x[lengths[b]-1], ..., x[0]``; outputs at
    padded steps are 0 and ``h_n`` is the state after each sequence's last
    valid step; layer ``l > 0`` reads the concatenated outputs of layer
    ``l - 1``.

    Parameters
    ----------
    params : dict of str to ndarray
        PyTorch's names; missing biases mean ``bias=False``.
    x : ndarray (T, B, D)
    h0 : ndarray (L*K, B, H)
    lengths : sequence of int, optional

    Returns
    -------
    output : ndarray (T, B, K*H)
    h_n : ndarray (L*K, B, H)
    pre : ndarray (L*K, T, B, H)
        Every pre-activation ``a`` (NaN at padded steps).
    """
    T, B, _ = x.shape
    K = 2 if bidirectional else 1
    H = params["weight_hh_l0"].shape[1]
    lengths = [T] * B if lengths is None else [int(n) for n in lengths]
    h_n = np.zeros((num_layers * K, B, H))
    pre = np.full((num_layers * K, T, B, H), np.nan)
    layer_in = np.asarray(x, dtype=np.float64)
    for layer in range(num_layers):
        out = np.zeros((T, B, K * H))
        for k in range(K):
            sfx = f"_l{layer}" + ("_reverse" if k else "")
            w_ih, w_hh = params[f"weight_ih{sfx}"], params[f"weight_hh{sfx}"]
            b_ih = params.get(f"bias_ih{sfx}", np.zeros(H))
            b_hh = params.get(f"bias_hh{sfx}", np.zeros(H))
            idx = layer * K + k
            for b in range(B):
                h = [float(v) for v in h0[idx, b]]
                steps = range(lengths[b]) if k == 0 else range(lengths[b] - 1, -1, -1)
                for t in steps:
                    new_h = []
                    for j in range(H):
                        a = float(b_ih[j]) + float(b_hh[j])
                        for d in range(layer_in.shape[2]):
                            a += float(w_ih[j, d]) * float(layer_in[t, b, d])
                        for i in range(H):
                            a += float(w_hh[j, i]) * h[i]
                        pre[idx, t, b, j] = a
                        new_h.append(_act(a, nonlinearity))
                    h = new_h
                    out[t, b, k * H:(k + 1) * H] = h
                h_n[idx, b] = h
        layer_in = out
    return layer_in, h_n, pre
