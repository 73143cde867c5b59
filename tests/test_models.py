"""SequenceModel and the feed-forward layers: finite differences, definitions, sampling, errors.

Gradient checks run in float64 with centred differences (eps = 1e-6) through
the model's own loss with random targets, so the upstream gradient entering
the head is a random, non-uniform array (not ones). Every element of every
parameter is checked on tiny sizes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnkit import Dropout, Embedding, Linear, OneHot, SequenceModel
from rnnkit.gradcheck import numerical_gradient

TOL = 1e-6
# Below this gradient magnitude the bound becomes absolute (TOL * FLOOR): the
# centred difference carries ~1e-10 of round-off, which is not small relative
# to an array whose whole gradient is ~1e-4.
FLOOR = 1e-2
T, B = 4, 3


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def grad_error(numeric, analytic):
    """max |numeric - analytic| / max(|numeric|, |analytic|, FLOOR)."""
    scale = max(np.abs(numeric).max(initial=0.0), np.abs(analytic).max(initial=0.0), FLOOR)
    return float(np.abs(numeric - analytic).max(initial=0.0) / scale)


def make_input(model, rng, T=T, B=B):
    if model.encoder_kind == "dense":
        return rng.standard_normal((T, B, model.input_size))
    return rng.integers(0, model.input_size, (T, B))


def make_target(model, y, rng):
    if model.loss_kind == "mse":
        return rng.standard_normal(y.shape)
    return rng.integers(0, model.output_size, y.shape[:-1])


def case(input_size, output_size, lengths=None, **kwargs):
    """(constructor kwargs, lengths or None) of a tiny float64 model, hidden size 3."""
    return {"input_size": input_size, "hidden_size": 3, "output_size": output_size,
            **kwargs}, lengths


EMB = {"encoder": "embedding", "embedding_dim": 2}
M2O = {"task": "many_to_one"}
MODEL_CASES = {
    "embedding-lstm": case(5, 5, cell="lstm", **EMB),
    "embedding-gru": case(5, 5, cell="gru", **EMB),
    "embedding-rnn-tanh": case(5, 5, cell="rnn", **EMB),
    "embedding-rnn-sigmoid-2layers": case(5, 5, cell="rnn", nonlinearity="sigmoid",
                                          num_layers=2, **EMB),
    "one_hot-lstm": case(4, 4, cell="lstm", encoder="one_hot"),
    "dense-many_to_one-lstm": case(2, 4, cell="lstm", **M2O),
    "dense-many_to_one-gru-bidirectional-2layers": case(2, 4, cell="gru", num_layers=2,
                                                        bidirectional=True, **M2O),
    "dense-many_to_one-lstm-bidirectional-lengths": case(2, 4, [3, 1, 4], cell="lstm",
                                                         bidirectional=True, **M2O),
    "dense-many_to_one-rnn-lengths": case(2, 3, [2, 4, 1], cell="rnn", **M2O),
    "embedding-gru-lengths-masked-loss": case(5, 5, [4, 2, 3], cell="gru", **EMB),
    "dense-mse-lstm": case(2, 2, cell="lstm", loss="mse"),
    "dense-mse-many_to_one-gru": case(2, 2, cell="gru", loss="mse", **M2O),
}


@pytest.mark.parametrize("name", list(MODEL_CASES))
def test_sequence_model_gradients_match_finite_differences(name, rng):
    kwargs, lengths = MODEL_CASES[name]
    label = name
    model = SequenceModel(**kwargs, dtype=np.float64, rng=rng)
    lengths = None if lengths is None else np.array(lengths)
    x = make_input(model, rng)
    y, _ = model.forward(x, lengths=lengths)
    target = make_target(model, y, rng)
    mask = None
    if lengths is not None and model.task == "many_to_many":
        mask = np.arange(T)[:, None] < lengths[None, :]  # (T, B): padded steps do not count

    def loss():
        y, _ = model.forward(x, lengths=lengths)
        return model.loss(y, target, mask)[0]

    model.zero_grad()
    y, _ = model.forward(x, lengths=lengths)
    _, dy = model.loss(y, target, mask)
    assert np.abs(dy).max() > 0
    model.backward(dy)
    assert set(model.grads) == set(model.params)
    for key, p in model.params.items():
        numeric = numerical_gradient(loss, p)
        assert np.abs(numeric).max() > 0, f"{label}: the loss does not depend on {key}"
        err = grad_error(numeric, model.grads[key])
        assert err < TOL, f"{label}: gradient of {key} differs from finite differences: {err:.2e}"


def test_sequence_model_gradients_with_dropout_between_layers(rng):
    """Two GRU layers with dropout 0.5: the same masks replayed on every forward."""
    model = SequenceModel(2, 3, 3, cell="gru", num_layers=2, dropout=0.5, dtype=np.float64,
                          rng=rng)
    x = make_input(model, rng)
    target = rng.integers(0, 3, (T, B))

    def forward():
        model.rnn.rng = np.random.default_rng(7)  # same dropout masks every time
        return model.forward(x)[0]

    def loss():
        return model.loss(forward(), target)[0]

    model.zero_grad()
    _, dy = model.loss(forward(), target)
    model.backward(dy)
    for name, p in model.params.items():
        err = grad_error(numerical_gradient(loss, p), model.grads[name])
        assert err < TOL, f"gradient of {name} with dropout: {err:.2e}"
    # the masks matter: the eval-mode output differs from the training-mode one
    y_train = forward()
    model.eval()
    assert not np.allclose(model.forward(x)[0], y_train)


def test_backward_accumulates_and_zero_grad_resets(rng):
    model = SequenceModel(5, 3, 5, encoder="embedding", embedding_dim=2, dtype=np.float64,
                          rng=rng)
    x = make_input(model, rng)
    target = rng.integers(0, 5, (T, B))
    y, _ = model.forward(x)
    model.backward(model.loss(y, target)[1])
    once = {k: g.copy() for k, g in model.grads.items()}
    y, _ = model.forward(x)
    model.backward(model.loss(y, target)[1])
    for k, g in model.grads.items():
        np.testing.assert_allclose(g, 2 * once[k], rtol=1e-12, atol=1e-15, err_msg=k)
    model.zero_grad()
    assert all(not g.any() for g in model.grads.values())


def test_backward_without_forward_raises(rng):
    model = SequenceModel(2, 3, 2, rng=rng)
    with pytest.raises(RuntimeError, match="forward"):
        model.backward(np.zeros((T, B, 2), np.float32))


def test_many_to_one_with_lengths_equals_each_sequence_alone(rng):
    """Packed-sequence semantics: a padded sequence gives what it gives unpadded."""
    model = SequenceModel(2, 3, 4, cell="lstm", bidirectional=True, num_layers=2,
                          task="many_to_one", dtype=np.float64, rng=rng)
    lengths = np.array([3, 1, 4])
    x = make_input(model, rng)
    y, _ = model.forward(x, lengths=lengths)
    assert y.shape == (B, 4)
    for b, n in enumerate(lengths):
        alone, _ = model.forward(x[:n, b:b + 1])
        np.testing.assert_allclose(y[b], alone[0], rtol=1e-12, atol=1e-14,
                                   err_msg=f"sequence {b} of length {n}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_shapes_and_dtype(dtype, rng):
    m2m = SequenceModel(6, 4, 6, encoder="embedding", dtype=dtype, rng=rng)
    y, (h, c) = m2m.forward(rng.integers(0, 6, (T, B)))
    assert y.shape == (T, B, 6) and y.dtype == dtype
    assert h.shape == c.shape == (1, B, 4)
    m2o = SequenceModel(2, 4, 3, cell="gru", num_layers=2, bidirectional=True,
                        task="many_to_one", dtype=dtype, rng=rng)
    y, h = m2o.forward(rng.standard_normal((T, B, 2)).astype(dtype))
    assert y.shape == (B, 3) and y.dtype == dtype
    assert h.shape == (4, B, 4)
    assert m2o.params["head.weight"].shape == (3, 8)


# ---------------------------------------------------------------------- layers
def test_linear_forward_backward_match_definition_and_finite_differences(rng):
    layer = Linear(4, 3, dtype=np.float64, rng=rng)
    W, b = layer.params["weight"], layer.params["bias"]
    assert W.shape == (3, 4) and b.shape == (3,)
    bound = 1 / np.sqrt(4)
    assert np.abs(W).max() <= bound and np.abs(b).max() <= bound
    x = rng.standard_normal((2, 5, 4))
    G = rng.standard_normal((2, 5, 3))
    y = layer.forward(x)
    np.testing.assert_allclose(y, np.einsum("tbi,oi->tbo", x, W) + b, rtol=1e-12)
    dx = layer.backward(G)
    np.testing.assert_allclose(dx, np.einsum("tbo,oi->tbi", G, W), rtol=1e-12)
    np.testing.assert_allclose(layer.grads["weight"], np.einsum("tbo,tbi->oi", G, x), rtol=1e-12)
    np.testing.assert_allclose(layer.grads["bias"], G.sum(axis=(0, 1)), rtol=1e-12)

    def loss():
        return float(np.sum(layer.forward(x) * G))

    for name, arr, grad in (("weight", W, layer.grads["weight"]), ("bias", b, layer.grads["bias"]),
                            ("x", x, dx)):
        assert grad_error(numerical_gradient(loss, arr), grad) < TOL, name
    with pytest.raises(ValueError, match="features"):
        layer.forward(np.zeros((2, 5)))


def test_linear_without_bias(rng):
    layer = Linear(3, 2, bias=False, dtype=np.float64, rng=rng)
    assert set(layer.params) == {"weight"}
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(layer.forward(x), x @ layer.params["weight"].T, rtol=1e-12)


def test_layer_backward_without_forward_raises(rng):
    layers = (Linear(2, 2, rng=rng), Embedding(3, 2, rng=rng), OneHot(3), Dropout(0.5, rng=rng))
    for layer in layers:
        with pytest.raises(RuntimeError, match="forward"):
            layer.backward(np.zeros((1, 2), np.float32))


def test_embedding_forward_backward_with_repeated_ids(rng):
    layer = Embedding(5, 3, dtype=np.float64, rng=rng)
    W = layer.params["weight"]
    ids = np.array([[1, 4, 1], [1, 0, 4]])  # id 1 three times, id 4 twice, 2 and 3 never
    y = layer.forward(ids)
    np.testing.assert_array_equal(y, W[ids])
    G = rng.standard_normal((2, 3, 3))
    assert layer.backward(G) is None
    expected = np.zeros_like(W)
    for (i, j), k in np.ndenumerate(ids):
        expected[k] += G[i, j]
    np.testing.assert_allclose(layer.grads["weight"], expected, rtol=1e-12)
    np.testing.assert_allclose(layer.grads["weight"][1], G[0, 0] + G[0, 2] + G[1, 0], rtol=1e-12)
    assert not layer.grads["weight"][[2, 3]].any()

    def loss():
        return float(np.sum(layer.forward(ids) * G))

    assert grad_error(numerical_gradient(loss, W), layer.grads["weight"]) < TOL


def test_embedding_and_one_hot_reject_bad_ids(rng):
    for layer in (Embedding(4, 2, rng=rng), OneHot(4)):
        with pytest.raises(ValueError, match=r"\[0, 3\]"):
            layer.forward(np.array([0, 4]))
        with pytest.raises(ValueError, match=r"\[0, 3\]"):
            layer.forward(np.array([-1, 2]))
        with pytest.raises(TypeError, match="integer"):
            layer.forward(np.array([0.0, 1.0]))


def test_one_hot_matches_definition(rng):
    layer = OneHot(4, dtype=np.float64)
    ids = rng.integers(0, 4, (3, 2))
    y = layer.forward(ids)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, np.eye(4)[ids])
    assert layer.params == {} and layer.backward(np.ones((3, 2, 4))) is None


def test_dropout_forward_backward(rng):
    p = 0.3
    layer = Dropout(p, rng=np.random.default_rng(5))
    x = rng.standard_normal((200, 50))
    y = layer.forward(x)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-12)
    # 10,000 Bernoulli(0.7) draws: the kept fraction is within 0.02 of 0.7 (about 4.4 sigma)
    assert abs(kept.mean() - (1 - p)) < 0.02
    G = rng.standard_normal(x.shape)
    dx = layer.backward(G)
    np.testing.assert_allclose(dx, np.where(kept, G / (1 - p), 0.0), rtol=1e-12)

    # same seed, same mask; finite differences with the mask replayed
    def loss():
        layer.rng = np.random.default_rng(9)
        return float(np.sum(layer.forward(xs) * Gs))

    xs, Gs = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    loss()
    analytic = layer.backward(Gs)
    assert grad_error(numerical_gradient(loss, xs), analytic) < TOL

    layer.training = False
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(G), G)
    off = Dropout(0.0, rng=rng)
    np.testing.assert_array_equal(off.forward(x), x)
    with pytest.raises(ValueError):
        Dropout(1.0)


# -------------------------------------------------------------------- sampling
def token_model(rng, **kwargs):
    kwargs = {"cell": "lstm", "encoder": "embedding", "embedding_dim": 4, **kwargs}
    model = SequenceModel(7, 8, 7, dtype=np.float64, rng=rng, **kwargs)
    # larger weights than the default init give peaked, state-dependent distributions
    for p in model.params.values():
        p *= 3.0
    return model


def test_generate_is_reproducible_and_respects_length(rng):
    model = token_model(rng)
    prime = np.array([1, 2, 3])
    a = model.generate(prime, 40, temperature=1.0, rng=123)
    b = model.generate(prime, 40, temperature=1.0, rng=np.random.default_rng(123))
    assert a.shape == (40,) and a.dtype == np.int64
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() < 7
    assert not np.array_equal(a, model.generate(prime, 40, temperature=1.0, rng=124))
    for n in (0, 1, 5):
        assert model.generate(prime, n, rng=0).shape == (n,)
    assert model.training, "generate must restore training mode"


def test_generate_greedy_equals_argmax_decoding_by_hand(rng):
    model = token_model(rng, cell="lstm", num_layers=2)
    prime = np.array([3, 0, 6, 6])
    got = model.generate(prime, 25, temperature=0.0, rng=0)
    model.eval()
    y, state = model.forward(prime[:, None])
    expected = []
    for _ in range(25):
        nxt = int(np.argmax(y[-1, 0]))
        expected.append(nxt)
        y, state = model.forward(np.array([[nxt]]), state)
    np.testing.assert_array_equal(got, expected)
    assert len(set(expected)) > 1, "a constant sequence would not test the state carry"
    # greedy ignores the seed
    np.testing.assert_array_equal(model.generate(prime, 25, temperature=0.0, rng=99), got)


def test_generate_iter_streams_the_draws_of_generate(rng):
    """generate_iter yields generate's ids one at a time (the same draws from the same
    seed), for as long as asked; the model is in eval mode while it runs and back in its
    mode once it is closed; bad arguments fail at the call."""
    import itertools

    model = token_model(rng, cell="gru")
    prime = np.array([2, 5])
    ids = model.generate_iter(prime, temperature=0.9, rng=5)
    first = list(itertools.islice(ids, 30))
    assert not model.training
    more = list(itertools.islice(ids, 20))
    ids.close()
    assert model.training
    np.testing.assert_array_equal(first + more, model.generate(prime, 50, temperature=0.9,
                                                               rng=5))
    assert all(type(i) is int for i in first)
    with pytest.raises(ValueError, match="prime_ids"):
        model.generate_iter(np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="token"):
        SequenceModel(3, 4, 3, rng=rng).generate_iter(np.array([0]))


def test_generate_errors(rng):
    dense = SequenceModel(3, 4, 3, rng=rng)
    with pytest.raises(ValueError, match="token"):
        dense.generate(np.array([0]), 5)
    model = token_model(rng)
    with pytest.raises(ValueError, match="prime_ids"):
        model.generate(np.array([], dtype=np.int64), 5)
    with pytest.raises(ValueError, match="length"):
        model.generate(np.array([1]), -1)
    with pytest.raises(ValueError, match="token ids"):
        model.generate(np.array([9]), 3)
    model.params["head.bias"][0] = np.inf  # weights of a training that diverged
    with pytest.raises(ValueError, match="the model's outputs are not finite"):
        model.generate(np.array([1]), 3)


# ------------------------------------------------------- config and state dicts
CONFIG_CASES = [
    {"input_size": 7, "hidden_size": 5, "output_size": 7, "cell": "gru", "num_layers": 2,
     "encoder": "embedding", "embedding_dim": 3, "dropout": 0.25},
    {"input_size": 3, "hidden_size": 4, "output_size": 2, "cell": "rnn", "nonlinearity": "relu",
     "bidirectional": True, "task": "many_to_one", "loss": "mse", "dtype": np.float64},
    {"input_size": 6, "hidden_size": 4, "output_size": 6, "encoder": "one_hot"},
]


@pytest.mark.parametrize("kwargs", CONFIG_CASES, ids=["embedding-gru", "dense-rnn", "one_hot"])
def test_config_round_trip(kwargs):
    model = SequenceModel(**kwargs, rng=11)
    config = json.loads(json.dumps(model.config()))  # JSON-able
    for key, value in kwargs.items():
        want = str(np.dtype(value)) if key == "dtype" else value
        got = config["encoder" if key == "encoder" else key]
        assert got == want, key
    rebuilt = SequenceModel.from_config(config, rng=11)
    assert rebuilt.config() == model.config()
    assert rebuilt.params.keys() == model.params.keys()
    for k in model.params:
        assert rebuilt.params[k].dtype == model.params[k].dtype
        np.testing.assert_array_equal(rebuilt.params[k], model.params[k], err_msg=k)


def test_from_config_rejects_bad_configs():
    config = SequenceModel(3, 4, 2, rng=0).config()
    with pytest.raises(ValueError, match="unknown field"):
        SequenceModel.from_config({**config, "colour": "red"})
    missing = dict(config)
    del missing["hidden_size"]
    with pytest.raises(ValueError, match="hidden_size"):
        SequenceModel.from_config(missing)
    with pytest.raises(TypeError):
        SequenceModel.from_config([("input_size", 3)])


def test_state_dict_round_trip_and_mismatch(rng):
    a = SequenceModel(5, 4, 5, encoder="embedding", rng=1)
    b = SequenceModel(5, 4, 5, encoder="embedding", rng=2)
    sd = a.state_dict()
    sd["head.bias"][...] += 1.0  # a copy: the model is unchanged
    assert not np.array_equal(sd["head.bias"], a.params["head.bias"])
    b.load_state_dict(a.state_dict())
    x = rng.integers(0, 5, (T, B))
    np.testing.assert_array_equal(a.forward(x)[0], b.forward(x)[0])
    bad = a.state_dict()
    del bad["head.bias"]
    bad["extra"] = np.zeros(1)
    bad["head.weight"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"missing head\.bias.*unexpected extra.*head\.weight"):
        b.load_state_dict(bad)


# ----------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, match", [
    ({"encoder": "word2vec"}, "encoder"),
    ({"cell": "transformer"}, "cell"),
    ({"task": "many_to_few"}, "task"),
    ({"loss": "hinge"}, "loss"),
    ({"cell": "lstm", "nonlinearity": "relu"}, "nonlinearity"),
    ({"cell": "gru", "nonlinearity": "sigmoid"}, "nonlinearity"),
    ({"cell": "rnn", "nonlinearity": "softplus"}, "nonlinearity"),
    ({"dropout": 1.0, "num_layers": 2}, "dropout"),
])
def test_constructor_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SequenceModel(4, 3, 4, **kwargs)


@pytest.mark.parametrize("bad", [0, -1])
def test_constructor_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="hidden_size"):
        SequenceModel(4, bad, 4)
    with pytest.raises(TypeError, match="hidden_size"):
        SequenceModel(4, 3.0, 4)


@pytest.mark.parametrize("encoder", ["embedding", "one_hot"])
def test_token_models_reject_bad_input(encoder, rng):
    model = SequenceModel(5, 3, 5, encoder=encoder, rng=rng)
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 4\]"):
        model.forward(np.array([[0, 5]]))
    with pytest.raises(ValueError, match="token ids"):
        model.forward(np.array([[-1, 2]]))
    with pytest.raises(TypeError, match="integer token ids"):
        model.forward(rng.standard_normal((T, B)))
    with pytest.raises(ValueError, match=r"\(T, B\)"):
        model.forward(np.zeros((T, B, 2), np.int64))


def test_dense_model_rejects_wrong_feature_count(rng):
    model = SequenceModel(3, 4, 2, rng=rng)
    with pytest.raises(ValueError, match="input_size"):
        model.forward(rng.standard_normal((T, B, 2)).astype(np.float32))
    with pytest.raises(ValueError, match=r"\(T, B, D\)"):
        model.forward(rng.standard_normal((T, B)).astype(np.float32))


@pytest.mark.parametrize("encoder", ["dense", "one_hot", "embedding"])
@pytest.mark.parametrize("task", ["many_to_many", "many_to_one"])
def test_backward_without_the_input_gradient_keeps_every_parameter_gradient(encoder, task):
    rng = np.random.default_rng(0)
    V, D = 7, 3
    x = (rng.integers(0, V, (5, 4)) if encoder != "dense"
         else rng.standard_normal((5, 4, D)).astype(np.float32))
    model = SequenceModel(V if encoder != "dense" else D, 6, 2, encoder=encoder, task=task,
                          num_layers=2, rng=0)
    results = []
    for input_grad in (True, False):
        model.zero_grad()
        y, _ = model.forward(x)
        d_input = model.backward(np.cos(y), input_grad=input_grad)
        assert (d_input is None) == (not input_grad)
        results.append({k: g.copy() for k, g in model.grads.items()})
    assert results[0].keys() == results[1].keys()
    for k in results[0]:
        assert np.abs(results[0][k]).max() > 0, k
        np.testing.assert_array_equal(results[0][k], results[1][k], err_msg=k)
