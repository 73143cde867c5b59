"""Model files and checkpoints: round trips, every failure as a ModelFileError, PyTorch loading."""

from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import pathlib

import numpy as np
import pytest

from rnnkit import SequenceModel, Trainer, TrainerConfig
from rnnkit.io import (
    ModelFileError,
    atomic_write_bytes,
    load_checkpoint,
    load_model,
    save_checkpoint,
    save_model,
)

st = pytest.importorskip("safetensors.numpy")

WEIGHTS, CONFIG = "model.safetensors", "config.json"
SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "rnnkit"


@pytest.fixture
def rng():
    return np.random.default_rng(777)


def token_model(**kwargs):
    kwargs = {"encoder": "embedding", "cell": "lstm", "rng": 5, **kwargs}
    if kwargs["encoder"] == "embedding":
        kwargs.setdefault("embedding_dim", 3)
    return SequenceModel(6, 4, 6, **kwargs)


@pytest.fixture
def saved(tmp_path):
    """A saved 2-layer GRU token model; returns (folder, model)."""
    model = token_model(cell="gru", num_layers=2)
    folder = tmp_path / "model"
    save_model(folder, model, metadata={"task": "test"})
    return folder, model


def assert_load_fails(folder, *match):
    with pytest.raises(ModelFileError) as info:
        load_model(folder)
    for m in match:
        assert m in str(info.value), f"{m!r} not in {str(info.value)!r}"
    return str(info.value)


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("kwargs", [
    {"cell": "gru", "num_layers": 2, "dropout": 0.5},
    {"cell": "rnn", "nonlinearity": "relu", "encoder": "one_hot", "dtype": np.float64},
    {"cell": "lstm", "encoder": "dense", "task": "many_to_one", "bidirectional": True,
     "loss": "mse"},
], ids=["embedding-gru-2layers", "one_hot-rnn-float64", "dense-lstm-bidirectional"])
def test_save_load_round_trip(tmp_path, rng, kwargs):
    model = token_model(**kwargs)
    for p in model.params.values():  # not the init: the weights must come from the file
        p += rng.standard_normal(p.shape).astype(p.dtype)
    metadata = {"task": "demo", "vocabulary": ["a", "é", "\n", "😀"], "nested": {"k": [1, 2.5]}}
    returned = save_model(tmp_path / "m", model, metadata=metadata)
    assert os.fspath(returned) == os.fspath(tmp_path / "m")
    assert sorted(os.listdir(tmp_path / "m")) == [CONFIG, WEIGHTS]
    loaded, meta = load_model(tmp_path / "m")
    assert meta == metadata
    assert loaded.config() == model.config()
    assert not loaded.training, "load_model returns a model in evaluation mode"
    for k in model.params:
        assert loaded.params[k].dtype == model.params[k].dtype
        assert np.array_equal(loaded.params[k], model.params[k]), k
    model.eval()
    if model.encoder_kind == "dense":
        x = rng.standard_normal((5, 2, 6)).astype(model.dtype)
    else:
        x = rng.integers(0, 6, (5, 2))
    np.testing.assert_array_equal(loaded.forward(x)[0], model.forward(x)[0])


def test_save_replaces_an_existing_model(saved):
    folder, _ = saved
    other = token_model(cell="lstm", rng=9)
    save_model(folder, other)
    loaded, meta = load_model(os.fspath(folder))
    assert meta == {}
    assert loaded.cell == "lstm"
    for k in other.params:
        assert np.array_equal(loaded.params[k], other.params[k]), k
    assert sorted(os.listdir(folder)) == [CONFIG, WEIGHTS]  # no temporary files left


# ----------------------------------------------------------------- bad folders
def test_missing_folder(tmp_path):
    assert_load_fails(tmp_path / "nope", os.fspath(tmp_path / "nope"))


def test_missing_config(saved):
    folder, _ = saved
    (folder / CONFIG).unlink()
    assert_load_fails(folder, os.fspath(folder / CONFIG), "not found")


def test_missing_weights(saved):
    folder, _ = saved
    (folder / WEIGHTS).unlink()
    assert_load_fails(folder, os.fspath(folder / WEIGHTS), "not found")


@pytest.mark.parametrize("text", ['{"format": "rnnkit-model",', "", "\xff\xfe", "[1, 2]", "null"])
def test_invalid_config_json(saved, text):
    folder, _ = saved
    (folder / CONFIG).write_bytes(text.encode("latin-1"))
    assert_load_fails(folder, os.fspath(folder / CONFIG))


def edit_config(folder, **changes):
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (folder / CONFIG).write_text(json.dumps(config), encoding="utf-8")
    return config


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_unknown_format_version(saved, version):
    folder, _ = saved
    edit_config(folder, format_version=version)
    assert_load_fails(folder, os.fspath(folder / CONFIG), "format_version")


def test_not_an_rnnkit_config(saved):
    folder, _ = saved
    edit_config(folder, format="keras")
    assert_load_fails(folder, os.fspath(folder / CONFIG), "format")


@pytest.mark.parametrize("section, merge", [
    (None, False), ("lstm", False), ({"input_size": 6}, False),
    ({"cell": "transformer"}, True), ({"dtype": "float16"}, True), ({"hidden_size": -3}, True),
    ({"hidden_size": "4"}, True), ({"unknown_field": 1}, True),
])
def test_invalid_model_section(saved, section, merge):
    """merge: the change is applied to the saved model's valid config."""
    folder, model = saved
    edit_config(folder, model={**model.config(), **section} if merge else section)
    assert_load_fails(folder, os.fspath(folder / CONFIG))


def test_config_declaring_a_huge_model(saved):
    folder, model = saved
    # 72 PB of weights: beyond any address space, so the allocation fails at once
    edit_config(folder, model={**model.config(), "hidden_size": 10**15})
    assert_load_fails(folder, os.fspath(folder))


# ---------------------------------------------------------------- bad weights
def test_truncated_weights(saved):
    folder, _ = saved
    data = (folder / WEIGHTS).read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    cuts = sorted({0, 1, 7, 8, 9, 8 + header_len // 2, 8 + header_len - 1, 8 + header_len,
                   8 + header_len + 1, (len(data) + 8 + header_len) // 2, len(data) - 4,
                   len(data) - 1})
    for cut in cuts:
        (folder / WEIGHTS).write_bytes(data[:cut])
        assert_load_fails(folder, os.fspath(folder / WEIGHTS))
    # cut inside the tensors: said as truncated, with the sizes (new-user trial: it said
    # "incomplete metadata, file not fully covered")
    cut = len(data) - 100
    (folder / WEIGHTS).write_bytes(data[:cut])
    with pytest.raises(ModelFileError, match=f"truncated safetensors file .*describes "
                                              f"{len(data) - 8 - header_len} bytes of tensors; "
                                              f"the file holds {cut - 8 - header_len} after"):
        load_model(folder)


def flip_header_bytes(folder, every=1):
    """Flip one byte at a time (every `every`-th) of the length prefix and the JSON header.

    The mask alternates between the lowest bit and all bits.
    """
    data = (folder / WEIGHTS).read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    positions = sorted(set(range(8)) | set(range(8, 8 + header_len, every)))
    for i in positions:
        mask = 0x01 if i % 2 else 0xFF
        corrupt = bytearray(data)
        corrupt[i] ^= mask
        (folder / WEIGHTS).write_bytes(bytes(corrupt))
        yield i, mask


def test_flipped_header_bytes(saved):
    """A flipped byte of the length prefix or the JSON header is caught."""
    folder, _ = saved
    n = 0
    for i, mask in flip_header_bytes(folder, every=3):
        with pytest.raises(ModelFileError, match=str(WEIGHTS)) as info:
            load_model(folder)
        assert os.fspath(folder / WEIGHTS) in str(info.value), (i, mask)
        n += 1
    assert n > 150


def test_flipped_header_bytes_without_checksum(saved):
    """Without the checksum the parser alone never loads other weights or crashes otherwise."""
    folder, model = saved
    edit_config(folder, weights_sha256=None)
    for i, mask in flip_header_bytes(folder):
        try:
            loaded, _ = load_model(folder)
        except ModelFileError as exc:
            assert os.fspath(folder / WEIGHTS) in str(exc), (i, mask)
        else:  # a flip in the format metadata: harmless
            for k in model.params:
                assert np.array_equal(loaded.params[k], model.params[k]), (i, mask, k)


def test_flipped_data_byte_fails_the_checksum(saved):
    folder, _ = saved
    data = bytearray((folder / WEIGHTS).read_bytes())
    data[-3] ^= 0x10
    (folder / WEIGHTS).write_bytes(bytes(data))
    assert_load_fails(folder, os.fspath(folder / WEIGHTS), "checksum")


def test_weights_from_another_save(saved, tmp_path):
    folder, _ = saved
    save_model(tmp_path / "other", token_model(cell="gru", num_layers=2, rng=6))
    (folder / WEIGHTS).write_bytes((tmp_path / "other" / WEIGHTS).read_bytes())
    assert_load_fails(folder, os.fspath(folder / WEIGHTS), "checksum")


def write_weights(folder, tensors):
    """Write tensors with safetensors directly and make config.json's checksum agree."""
    st.save_file(tensors, os.fspath(folder / WEIGHTS))
    digest = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()
    edit_config(folder, weights_sha256=digest)


def test_rewritten_but_valid_weights_load(saved):
    """The control for the cases below: the same tensors written this way do load."""
    folder, model = saved
    write_weights(folder, {k: v.copy() for k, v in model.params.items()})
    loaded, _ = load_model(folder)
    for k in model.params:
        assert np.array_equal(loaded.params[k], model.params[k]), k


@pytest.mark.parametrize("change, match", [
    ("missing", "missing tensor(s) head.bias"),
    ("extra", "unexpected tensor(s) rnn.weight_ih_l2"),
    ("shape", "tensor head.weight has shape (4, 6)"),
    ("dtype", "tensor rnn.weight_hh_l1 has dtype float64"),
    ("int", "tensor head.bias has dtype int32"),
    ("nan", "tensor rnn.bias_ih_l0 contains NaN"),
    ("inf", "tensor encoder.weight contains NaN or infinite"),
])
def test_tensor_mismatch(saved, change, match):
    folder, model = saved
    tensors = {k: v.copy() for k, v in model.params.items()}
    if change == "missing":
        del tensors["head.bias"]
    elif change == "extra":
        tensors["rnn.weight_ih_l2"] = np.zeros((12, 4), np.float32)
    elif change == "shape":
        tensors["head.weight"] = np.ascontiguousarray(tensors["head.weight"].T)
    elif change == "dtype":
        tensors["rnn.weight_hh_l1"] = tensors["rnn.weight_hh_l1"].astype(np.float64)
    elif change == "int":
        tensors["head.bias"] = np.zeros(6, np.int32)
    elif change == "nan":
        tensors["rnn.bias_ih_l0"][2] = np.nan
    else:
        tensors["encoder.weight"][1, 1] = -np.inf
    write_weights(folder, tensors)
    assert_load_fails(folder, os.fspath(folder / WEIGHTS), match)


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_round_trip(tmp_path, rng):
    arrays = {"a": rng.standard_normal((3, 4)).astype(np.float32),
              "b.c": rng.standard_normal(5),
              "n": np.arange(6, dtype=np.int64).reshape(2, 3)}
    state = {"step": 12, "best": math.inf, "name": "ü", "nested": {"list": [1, None, 2.5]},
             "rng": np.random.default_rng(3).bit_generator.state}
    path = tmp_path / "x" / "ck.safetensors"
    path.parent.mkdir()
    assert save_checkpoint(path, arrays, state) == os.fspath(path)
    got_arrays, got_state = load_checkpoint(path)
    assert got_state == state
    assert got_arrays.keys() == arrays.keys()
    for k, want in arrays.items():
        assert got_arrays[k].dtype == want.dtype
        assert np.array_equal(got_arrays[k], want), k
    assert os.listdir(path.parent) == ["ck.safetensors"]


def test_checkpoint_errors(tmp_path, saved):
    folder, _ = saved
    with pytest.raises(ModelFileError, match="not an rnnkit checkpoint"):
        load_checkpoint(folder / WEIGHTS)
    with pytest.raises(ModelFileError, match="not found"):
        load_checkpoint(tmp_path / "none.safetensors")
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, {"w": np.ones(4, np.float32)}, {"step": 1})
    data = path.read_bytes()
    path.write_bytes(data[:-2])
    with pytest.raises(ModelFileError, match=str(path.name)):
        load_checkpoint(path)


def test_trainer_checkpoint_round_trip(tmp_path, rng):
    batches = [(rng.integers(0, 6, (5, 2)), rng.integers(0, 6, (5, 2))) for _ in range(4)]
    model = token_model(num_layers=2, dropout=0.2)
    trainer = Trainer(model, TrainerConfig(epochs=2, max_steps=6, stateful=True,
                                           progress=False), batches, metadata={"v": [1]})
    trainer.fit()
    path = trainer.save_checkpoint(os.fspath(tmp_path / "c.safetensors"))
    other = Trainer(token_model(num_layers=2, dropout=0.2, rng=99),
                    TrainerConfig(epochs=2, stateful=True, progress=False), batches)
    state = other.load_checkpoint(path)
    assert state["metadata"] == {"v": [1]}
    assert (other.pos.step, other.pos.epoch, other.pos.batch) == (6, 1, 2)
    assert (other.pos.step, other.pos.epoch, other.pos.batch, other.pos.best_val,
            other.pos.bad_evals) == (trainer.pos.step, trainer.pos.epoch, trainer.pos.batch,
                                     trainer.pos.best_val, trainer.pos.bad_evals)
    np.testing.assert_equal(other.pos.history, trainer.pos.history)  # NaN == NaN here
    assert other.model.rng.bit_generator.state == model.rng.bit_generator.state
    for k in model.params:
        assert np.array_equal(other.model.params[k], model.params[k]), k
    for a, b in zip(other._carry, trainer._carry):
        assert np.array_equal(a, b)
    s1, s2 = trainer.optimizer.state_dict(), other.optimizer.state_dict()
    for key in s1["state"]:
        for name, v in s1["state"][key].items():
            assert np.array_equal(s2["state"][key][name], v), (key, name)


# --------------------------------------------------------------- atomic writes
def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"first")
    atomic_write_bytes(os.fspath(path), b"second, longer")
    assert path.read_bytes() == b"second, longer"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, object())  # fails while writing the temporary file
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


# --------------------------------------------------------------------- PyTorch
TORCH_CASES = [
    {"cell": "lstm", "num_layers": 2, "encoder": "embedding", "embedding_dim": 3},
    {"cell": "gru", "bidirectional": True, "encoder": "embedding", "embedding_dim": 5},
    {"cell": "rnn", "nonlinearity": "relu", "num_layers": 2, "encoder": "one_hot"},
    {"cell": "lstm", "bidirectional": True, "encoder": "dense", "task": "many_to_one"},
]


@pytest.mark.parametrize("kwargs", TORCH_CASES,
                         ids=["lstm-2layers", "gru-bidirectional", "rnn-relu-one_hot",
                              "lstm-bidir-many_to_one"])
def test_weights_load_straight_into_pytorch(tmp_path, rng, kwargs):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    V, H, C = 6, 4, 5
    model = SequenceModel(V, H, C, rng=3, **kwargs)
    save_model(tmp_path / "m", model)

    class TorchModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            K = 2 if model.bidirectional else 1
            rnn_in = V
            if model.encoder_kind == "embedding":
                self.encoder = torch.nn.Embedding(V, model.embedding_dim)
                rnn_in = model.embedding_dim
            cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[model.cell]
            extra = {"nonlinearity": model.nonlinearity} if model.cell == "rnn" else {}
            self.rnn = cls(rnn_in, H, num_layers=model.num_layers,
                           bidirectional=model.bidirectional, **extra)
            self.head = torch.nn.Linear(K * H, C)

        def forward(self, x):
            if model.encoder_kind == "embedding":
                e = self.encoder(x)
            elif model.encoder_kind == "one_hot":
                e = torch.nn.functional.one_hot(x, V).float()
            else:
                e = x
            out, state = self.rnn(e)
            if model.task == "many_to_many":
                return self.head(out)
            h_n = state[0] if model.cell == "lstm" else state
            K = 2 if model.bidirectional else 1
            return self.head(torch.cat(list(h_n[-K:]), dim=-1))

    net = TorchModel()
    result = net.load_state_dict(safetensors_torch.load_file(tmp_path / "m" / WEIGHTS),
                                 strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    if model.encoder_kind == "dense":
        x = rng.standard_normal((7, 3, V)).astype(np.float32)
    else:
        x = rng.integers(0, V, (7, 3))
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    y, _ = model.eval().forward(x)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5, err_msg="logits vs torch")


# ------------------------------------------------------------------ no pickle
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve"}
# joblib runs cross-validation folds in parallel (rnnkit.selection); its load/dump pickle
PICKLING_CALLS = {"joblib": ("load", "loads", "dump", "dumps")}


def test_no_pickle_or_eval_in_the_package():
    """Loading a file from a stranger must not be able to run code: read every module."""
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 10
    problems = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        if "allow_pickle=True" in text.replace(" ", ""):
            problems.append(f"{path}: allow_pickle=True")
        for node in ast.walk(ast.parse(text, filename=os.fspath(path))):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [(node.module or "").split(".")[0]]
            else:
                names = []
            problems += [f"{path}:{node.lineno}: imports {n}" for n in names
                         if n in BANNED_MODULES]
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id in ("eval", "exec", "__import__"):
                    problems.append(f"{path}:{node.lineno}: calls {f.id}(")
                if isinstance(f, ast.Attribute) and f.attr in ("loads", "load") and \
                        isinstance(f.value, ast.Name) and f.value.id in BANNED_MODULES:
                    problems.append(f"{path}:{node.lineno}: {f.value.id}.{f.attr}")
                for kw in node.keywords:
                    if kw.arg == "allow_pickle" and not (
                            isinstance(kw.value, ast.Constant) and kw.value.value is False):
                        problems.append(f"{path}:{node.lineno}: allow_pickle not False")
                if isinstance(f, ast.Attribute) and f.attr == "load" and \
                        isinstance(f.value, ast.Name) and f.value.id == "torch":
                    problems.append(f"{path}:{node.lineno}: torch.load")
                if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and \
                        f.attr in PICKLING_CALLS.get(f.value.id, ()):
                    problems.append(f"{path}:{node.lineno}: {f.value.id}.{f.attr}")
            if isinstance(node, ast.ImportFrom) and node.module == "joblib":
                problems += [f"{path}:{node.lineno}: imports joblib.{a.name}"
                             for a in node.names if a.name in PICKLING_CALLS["joblib"]]
    assert not problems, "\n".join(problems)


def test_save_model_refuses_a_bare_layer_and_torch_saves_argument_order(tmp_path):
    """A clear TypeError (not an AttributeError from deep inside) for a bare layer, and one
    that says the folder comes first for ``save_model(model, folder)``; nothing written."""
    import rnnkit

    layer = rnnkit.LSTM(4, 8, rng=0)
    with pytest.raises(TypeError, match=r"SequenceModel or CTRNNModel, got LSTM.*"
                                        r"save_state_dict\(path, layer.state_dict\(\)\)"):
        save_model(tmp_path / "a", layer)
    model = SequenceModel(4, 8, 3, rng=0)
    with pytest.raises(TypeError, match=r"got SequenceModel \(the folder comes first: "
                                        r"save_model\(directory, model\)\)"):
        save_model(model, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_short_weights_file_says_its_real_size(saved):
    """An 8-byte file whose first 8 bytes claim a huge header: the message gives the
    file's own size (it said 'file has 0' for the bytes after the length)."""
    folder, _ = saved
    (folder / WEIGHTS).write_bytes(b"garbage\n")
    with pytest.raises(ModelFileError, match=r"the file has 8 bytes in all"):
        load_model(folder)


def test_a_checkpoint_in_a_missing_folder_says_the_folder_is_missing(tmp_path):
    from rnnkit.training import load_checkpoint

    path = tmp_path / "nowhere" / "checkpoint.safetensors"
    with pytest.raises(ModelFileError, match=r"not found \(there is no folder .*nowhere\)"):
        load_checkpoint(path)
    (tmp_path / "nowhere").mkdir()
    with pytest.raises(ModelFileError, match=r"not found$"):
        load_checkpoint(path)
