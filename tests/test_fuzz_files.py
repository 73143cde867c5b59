"""Property-based tests: corrupted model folders and checkpoints get one clear ModelFileError.

A model folder (``model.safetensors`` + ``config.json``) and a checkpoint
(``checkpoint.safetensors``) are saved once; each example damages a copy:
truncation at any byte, flipped bytes, a random safetensors header, tensors
of the wrong dtype or shape, extra or missing tensors, mutated or huge
config values, mutated checkpoint state. Every load must either raise
:class:`rnnkit.io.ModelFileError` (a ``ValueError``) from a ``raise`` of
rnnkit with a message naming the file, or -- where the damage leaves a valid
file -- load exactly what is there. Never another exception, a hang, or a
large allocation (the peak of the memory NumPy and Python allocate while
loading is measured with ``tracemalloc``).

The last part damages the ``.npz`` data files that ``rnnkit cv --data`` reads:
a ``ValueError`` naming the file, which the command line prints as one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import tempfile
import tracemalloc

import numpy as np
import pytest
from fuzz_helpers import check_clean, time_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit import SequenceModel, Trainer, TrainerConfig, TrainingError
from rnnkit.charlm import load_char_model
from rnnkit.io import ModelFileError, load_checkpoint, load_model, save_checkpoint, save_model

st_numpy = pytest.importorskip("safetensors.numpy")

SETTINGS = settings(deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])
WEIGHTS, CONFIG, CKPT = "model.safetensors", "config.json", "checkpoint.safetensors"
PEAK_LIMIT = 32 * 2**20  # bytes: the saved model holds a few hundred floats


def fuzz(n):
    return settings(SETTINGS, max_examples=n)


def make_model(rng=0):
    return SequenceModel(6, 4, 6, cell="lstm", num_layers=2, encoder="embedding",
                         embedding_dim=3, rng=rng)


def token_batches(n=4):
    rng = np.random.default_rng(3)
    return [(rng.integers(0, 6, (5, 2)), rng.integers(0, 6, (5, 2))) for _ in range(n)]


class Originals(dict):
    """The saved files; a short repr keeps Hypothesis's failure reports readable."""

    def __repr__(self):
        return "<originals>"


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """The bytes of a saved model folder and of a trainer checkpoint (after 3 of 8 steps)."""
    base = tmp_path_factory.mktemp("originals")
    model = make_model()
    save_model(base / "model", model, metadata={"task": "charlm", "vocabulary": list("abcdef")})
    trainer = Trainer(make_model(), TrainerConfig(max_steps=3, epochs=2, stateful=True,
                                                  progress=False, checkpoint_dir=str(base)),
                      token_batches())
    trainer.fit()
    arrays, state = load_checkpoint(base / CKPT)
    return Originals({
        "weights": (base / "model" / WEIGHTS).read_bytes(),
        "config": json.loads((base / "model" / CONFIG).read_text()),
        "params": {k: v.copy() for k, v in model.params.items()},
        "ckpt": (base / CKPT).read_bytes(),
        "ckpt_arrays": arrays,
        "ckpt_state": state,
    })


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder the examples overwrite; in memory where possible (each save fsyncs twice)."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        folder = pathlib.Path(tempfile.mkdtemp(prefix="rnnkit-fuzz-", dir="/dev/shm"))
        yield folder
        shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("work")


def write_folder(folder, weights, config):
    folder.mkdir(exist_ok=True)
    (folder / WEIGHTS).write_bytes(weights)
    if isinstance(config, (bytes, bytearray)):
        (folder / CONFIG).write_bytes(config)
    else:
        (folder / CONFIG).write_text(json.dumps(config))


class Refused(str):
    """The message of a clean refusal (what :func:`load_or_refuse` returns then)."""


def load_or_refuse(call, names, *, peak_limit=PEAK_LIMIT):
    """Run a loader: its result, or :class:`Refused` if it raised a clean ModelFileError.

    Fails on any other exception, on a message that names none of ``names``,
    on a hang and on a peak allocation above ``peak_limit``.
    """
    tracemalloc.start()
    try:
        with time_limit(20):
            return call()
    except ModelFileError as exc:
        check_clean(exc)
        msg = str(exc)
        assert any(os.fspath(n) in msg for n in names), f"the message names no file: {msg}"
        return Refused(msg)
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__} instead of ModelFileError: {exc}") from exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < peak_limit, f"loading allocated {peak / 2**20:.0f} MiB"


def without_checksum(config):
    config = json.loads(json.dumps(config))
    config.pop("weights_sha256")
    return config


def assert_loaded_as_saved(result, params):
    model, _ = result
    assert model.params.keys() == params.keys()
    for k, v in params.items():
        assert np.array_equal(model.params[k], v), f"{k} loaded with other values"


# ------------------------------------------------------------------ model folders
@fuzz(300)
@given(data=st.data(), checksum=st.booleans())
def test_truncated_weights_are_refused(originals, work, data, checksum):
    weights = originals["weights"]
    cut = data.draw(st.integers(0, len(weights) - 1))
    config = originals["config"] if checksum else without_checksum(originals["config"])
    folder = work / "truncated"
    write_folder(folder, weights[:cut], config)
    result = load_or_refuse(lambda: load_model(folder), [folder / WEIGHTS])
    assert isinstance(result, Refused), f"a file truncated at byte {cut} of {len(weights)} loaded"


@fuzz(400)
@given(data=st.data(), checksum=st.booleans())
def test_flipped_bytes_in_weights(originals, work, data, checksum):
    weights = bytearray(originals["weights"])
    header_end = 8 + int.from_bytes(weights[:8], "little")
    # half of the flips hit the 8-byte length and the JSON header, where parsing is tested
    where = st.integers(0, header_end - 1) if data.draw(st.booleans()) \
        else st.integers(0, len(weights) - 1)
    for i in data.draw(st.lists(where, min_size=1, max_size=6, unique=True)):
        weights[i] ^= data.draw(st.integers(1, 255))
    config = originals["config"] if checksum else without_checksum(originals["config"])
    folder = work / "flipped"
    write_folder(folder, bytes(weights), config)
    result = load_or_refuse(lambda: load_model(folder), [folder])
    if checksum:
        assert isinstance(result, Refused), "the checksum of config.json missed a changed file"
    elif not isinstance(result, Refused):  # a flip that leaves a valid file: what is there, finite
        model, _ = result
        assert all(np.isfinite(p).all() for p in model.params.values())
        assert model.params.keys() == originals["params"].keys()


def tensor_info():
    dims = st.lists(st.one_of(st.integers(0, 4), st.integers(2**31, 2**62)), max_size=3)
    return st.fixed_dictionaries({
        "dtype": st.sampled_from(["F32", "F64", "F16", "BF16", "I8", "I32", "I64", "U8", "BOOL",
                                  "F8_E4M3", "C64", "XYZ"]),
        "shape": st.one_of(dims, st.text(max_size=2), st.integers()),
        "data_offsets": st.one_of(st.lists(st.integers(0, 64), min_size=2, max_size=2),
                                  st.lists(st.integers(-3, 2**63), max_size=3),
                                  st.none()),
    })


@fuzz(300)
@given(data=st.data())
def test_random_safetensors_headers(originals, work, data):
    names = st.sampled_from(list(originals["params"]) + ["x", "__metadata__", ""])
    header = data.draw(st.one_of(
        st.dictionaries(names, st.one_of(tensor_info(), st.dictionaries(
            st.text(max_size=3), st.text(max_size=3), max_size=2), st.integers()), max_size=4),
        st.lists(st.integers(), max_size=2), st.text(max_size=4), st.integers()))
    raw = json.dumps(header).encode()
    if data.draw(st.booleans()):  # a length field that lies
        length = data.draw(st.integers(0, 2**64 - 1))
    else:
        length = len(raw)
    body = data.draw(st.binary(max_size=64))
    folder = work / "header"
    write_folder(folder, length.to_bytes(8, "little") + raw + body,
                 without_checksum(originals["config"]))
    result = load_or_refuse(lambda: load_model(folder), [folder])
    assert isinstance(result, Refused), f"a random header loaded as a model: {header!r}"


TENSOR_FAULTS = ["dtype", "shape", "extra", "missing", "nonfinite", "renamed"]


@fuzz(200)
@given(data=st.data(), fault=st.sampled_from(TENSOR_FAULTS))
def test_wrong_tensors_are_named(originals, work, data, fault):
    arrays = {k: v.copy() for k, v in originals["params"].items()}
    key = data.draw(st.sampled_from(sorted(arrays)))
    if fault == "dtype":
        arrays[key] = arrays[key].astype(data.draw(st.sampled_from(
            ["float64", "float16", "int32", "int64", "uint8", "int8"])))
    elif fault == "shape":
        a = arrays[key]
        arrays[key] = np.zeros(data.draw(st.sampled_from(
            [a.shape + (1,), a.shape[:-1], (a.size + 1,), (a.shape[0] + 1,) + a.shape[1:]])),
            np.float32)
    elif fault == "extra":
        arrays[data.draw(st.text(min_size=1, max_size=8).filter(lambda s: s not in arrays))] = \
            np.zeros(data.draw(st.integers(1, 5)), np.float32)
        key = None
    elif fault == "missing":
        del arrays[key]
    elif fault == "nonfinite":
        arrays[key].flat[data.draw(st.integers(0, arrays[key].size - 1))] = data.draw(
            st.sampled_from([np.nan, np.inf, -np.inf]))
    else:
        arrays[key + data.draw(st.sampled_from(["_", ".0", "x"]))] = arrays.pop(key)
    blob = st_numpy.save(arrays)
    config = json.loads(json.dumps(originals["config"]))
    config["weights_sha256"] = hashlib.sha256(blob).hexdigest()  # a consistent, wrong file
    folder = work / "tensors"
    write_folder(folder, blob, config)
    msg = load_or_refuse(lambda: load_model(folder), [folder / WEIGHTS])
    assert isinstance(msg, Refused), f"a model with a {fault} tensor loaded"
    if key is not None and fault != "renamed":
        assert key in msg, f"{key} not named: {msg}"


def json_values():
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                       st.floats(allow_nan=False), st.text(max_size=6),
                       st.integers(10**6, 10**18), st.sampled_from(
                           ["lstm", "gru", "rnn", "float64", "float32", "embedding", "dense",
                            "one_hot", "many_to_one", "relu", "rnnkit-model"]))
    return st.recursive(leaves, lambda c: st.lists(c, max_size=3) | st.dictionaries(
        st.text(max_size=6), c, max_size=3), max_leaves=6)


def key_paths(obj, prefix=()):
    """Every key path of nested dicts (and the dicts themselves, for additions)."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append(prefix + (k,))
            out.extend(key_paths(v, prefix + (k,)))
    return out


@fuzz(500)
@given(data=st.data())
def test_mutated_config_json(originals, work, data):
    config = json.loads(json.dumps(originals["config"]))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(key_paths(config) + [("model", "new"), ("new",)]))
        parent = config
        for k in path[:-1]:
            parent = parent.get(k) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        if data.draw(st.integers(0, 3)) == 0:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = data.draw(json_values())
    folder = work / "config"
    write_folder(folder, originals["weights"], config)
    result = load_or_refuse(lambda: load_model(folder), [folder])
    if not isinstance(result, Refused):  # a harmless change (task, loss): the weights as saved
        assert_loaded_as_saved(result, originals["params"])
        assert isinstance(result[1], dict)
    # the character model's loader also reads the vocabulary from the metadata
    result = load_or_refuse(lambda: load_char_model(folder), [folder])
    if not isinstance(result, Refused):
        model, vocab, _ = result
        assert len(vocab) == model.input_size


SIZE_FIELDS = ["input_size", "hidden_size", "output_size", "num_layers", "embedding_dim"]


@fuzz(200)
@given(data=st.data(), fields=st.lists(st.sampled_from(SIZE_FIELDS), min_size=1, max_size=3,
                                       unique=True))
def test_huge_sizes_in_config_allocate_nothing(originals, work, data, fields):
    config = json.loads(json.dumps(originals["config"]))
    for f in fields:
        config["model"][f] = data.draw(st.one_of(st.integers(10**5, 10**30),
                                                 st.floats(1e5, 1e300)))
    if data.draw(st.booleans()):
        config["model"]["bidirectional"] = True
    folder = work / "huge"
    write_folder(folder, originals["weights"], config)
    assert isinstance(load_or_refuse(lambda: load_model(folder), [folder]), Refused)


@fuzz(150)
@given(raw=st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode),
                     st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
                     st.integers(1, 300).map(lambda n: b'{"format": "rnnkit-model", "x": '
                                             + b"[" * n * 20)))
def test_config_that_is_not_json(originals, work, raw):
    folder = work / "notjson"
    write_folder(folder, originals["weights"], raw)
    assert isinstance(load_or_refuse(lambda: load_model(folder), [folder / CONFIG]), Refused)


# -------------------------------------------------------------------- checkpoints
def trainer_for(tmp):
    return Trainer(make_model(rng=9), TrainerConfig(max_steps=8, epochs=2, stateful=True,
                                                    progress=False, checkpoint_dir=str(tmp)),
                   token_batches())


def same_checkpoint(loaded, originals):
    arrays, state = loaded
    assert state == originals["ckpt_state"]
    assert arrays.keys() == originals["ckpt_arrays"].keys()
    for k, v in originals["ckpt_arrays"].items():
        assert arrays[k].dtype == v.dtype and np.array_equal(arrays[k], v), k


@fuzz(400)
@given(data=st.data())
def test_truncated_or_flipped_checkpoints(originals, work, data):
    blob = bytearray(originals["ckpt"])
    if data.draw(st.booleans()):
        blob = blob[:data.draw(st.integers(0, len(blob) - 1))]
        truncated = True
    else:
        header_end = 8 + int.from_bytes(blob[:8], "little")
        where = st.integers(0, header_end - 1) if data.draw(st.booleans()) \
            else st.integers(0, len(blob) - 1)
        for i in data.draw(st.lists(where, min_size=1, max_size=6, unique=True)):
            blob[i] ^= data.draw(st.integers(1, 255))
        truncated = False
    folder = work / "ckpt"
    folder.mkdir(exist_ok=True)
    path = folder / CKPT
    path.write_bytes(bytes(blob))
    loaded = load_or_refuse(lambda: load_checkpoint(path), [path])
    if not isinstance(loaded, Refused):  # only a flip of header whitespace keeps the content
        assert not truncated
        same_checkpoint(loaded, originals)
    trainer = trainer_for(folder)
    before = {k: v.copy() for k, v in trainer.model.params.items()}
    if isinstance(load_or_refuse(lambda: trainer.load_checkpoint(), [path]), Refused):
        for k, v in before.items():  # a refused checkpoint leaves the trainer as it was
            assert np.array_equal(trainer.model.params[k], v), k
        assert trainer.pos.step == 0


def state_mutation(data, state):
    state = json.loads(json.dumps(state))
    paths = [p for p in key_paths(state) if p[0] != "metadata"]
    for _ in range(data.draw(st.integers(1, 2))):
        path = data.draw(st.sampled_from(paths))
        parent = state
        for k in path[:-1]:
            parent = parent.get(k, {}) if isinstance(parent, dict) else {}
        if not isinstance(parent, dict):
            continue
        if data.draw(st.integers(0, 2)) == 0:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = data.draw(json_values())
    return state


@fuzz(300)
@given(data=st.data())
def test_checkpoints_with_a_wrong_state_or_wrong_tensors(originals, work, data):
    """A well-formed checkpoint (valid checksum) whose content does not fit the trainer."""
    arrays = {k: v.copy() for k, v in originals["ckpt_arrays"].items()}
    state = originals["ckpt_state"]
    if data.draw(st.booleans()):
        state = state_mutation(data, state)
    else:
        key = data.draw(st.sampled_from(sorted(arrays)))
        kind = data.draw(st.sampled_from(["drop", "shape", "dtype", "nan", "extra"]))
        if kind == "drop":
            del arrays[key]
        elif kind == "shape":
            arrays[key] = np.zeros(arrays[key].shape + (2,), arrays[key].dtype)
        elif kind == "dtype":
            arrays[key] = arrays[key].astype(data.draw(st.sampled_from(["int32", "int64"])))
        elif kind == "nan":
            arrays[key].flat[0] = np.nan
        else:
            arrays[data.draw(st.sampled_from(["optim.exp_avg.x", "model.x", "carry.7",
                                               "optim.bad"]))] = np.zeros(3, np.float32)
    folder = work / "ckstate"
    folder.mkdir(exist_ok=True)
    save_checkpoint(folder / CKPT, arrays, state)
    trainer = trainer_for(folder)
    before = {k: v.copy() for k, v in trainer.model.params.items()}
    loaded = load_or_refuse(lambda: trainer.load_checkpoint(), [folder / CKPT])
    if isinstance(loaded, Refused):
        for k, v in before.items():
            assert np.array_equal(trainer.model.params[k], v), k
        return
    # accepted: training goes on from it, or stops with the documented TrainingError
    try:
        with time_limit(20):
            trainer.fit()
    except TrainingError:
        pass
    except Exception as exc:
        raise AssertionError(f"an accepted checkpoint broke training: {type(exc).__name__}: "
                             f"{exc}") from exc


def test_load_or_refuse_catches_large_allocations(work):
    """The memory bound of these tests can fail: a loader that allocates 64 MiB is caught."""
    with pytest.raises(AssertionError, match="allocated"):
        load_or_refuse(lambda: np.ones(8 * 2**20), [work])


def test_flips_are_caught_by_the_checksum_not_by_luck(originals, work):
    """The same flip in the data part loads silently without the checksum, so the check counts."""
    weights = bytearray(originals["weights"])
    weights[-3] ^= 0x01  # the low mantissa bits of the last float: still a valid number
    folder = work / "one-flip"
    write_folder(folder, bytes(weights), without_checksum(originals["config"]))
    model, _ = load_model(folder)
    assert any(not np.array_equal(model.params[k], v) for k, v in originals["params"].items())
    write_folder(folder, bytes(weights), originals["config"])
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(folder)
    blob = bytearray(originals["ckpt"])
    blob[-3] ^= 0x01
    (folder / CKPT).write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="checksum"):
        load_checkpoint(folder / CKPT)
    shutil.rmtree(folder)


# ------------------------------------------------------- data files (.npz of rnnkit cv)
@pytest.fixture(scope="module")
def npz_files():
    import io

    rng = np.random.default_rng(0)
    out = {}
    for name, save in (("plain", np.savez), ("compressed", np.savez_compressed)):
        buf = io.BytesIO()
        save(buf, X=rng.standard_normal((6, 4, 2)), y=np.arange(6) % 2)
        out[name] = buf.getvalue()
    return out


@fuzz(400)
@given(data=st.data(), kind=st.sampled_from(["plain", "compressed"]))
def test_corrupted_npz_data_files(npz_files, work, data, kind):
    """``rnnkit cv --data FILE.npz`` reads its file with this loader: damage gives ValueError."""
    from rnnkit.commands.cv import _load_npz

    blob = bytearray(npz_files[kind])
    if data.draw(st.booleans()):
        blob = blob[:data.draw(st.integers(0, len(blob) - 1))]
    else:
        for i in data.draw(st.lists(st.integers(0, len(blob) - 1), min_size=1, max_size=4)):
            blob[i] ^= data.draw(st.integers(1, 255))
    path = work / "data.npz"
    path.write_bytes(bytes(blob))
    try:
        with time_limit(20):
            loaded = _load_npz(os.fspath(path))
    except ValueError as exc:
        check_clean(exc)
        assert os.fspath(path) in str(exc), str(exc)
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__} instead of ValueError: {exc}") from exc
    else:  # damage zip does not check (a time stamp, a comment): the same arrays
        assert loaded["X"].shape == (6, 4, 2) and loaded["y"].shape == (6,)


def test_a_corrupted_npz_is_one_error_line_from_the_command_line(npz_files, work, capsys):
    from rnnkit.cli import main

    path = work / "broken.npz"
    path.write_bytes(npz_files["plain"][:-40])
    assert main(["cv", "--data", os.fspath(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and os.fspath(path) in err, err
