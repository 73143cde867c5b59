"""Model and checkpoint files: safetensors weights plus JSON, written atomically; no pickle.

A saved model is a folder::

    MODEL_DIR/
      model.safetensors   the parameters, keyed like SequenceModel.params
                          (``rnn.weight_ih_l0`` ...: PyTorch's names under a prefix)
      config.json         format version, model architecture, task metadata
                          (e.g. the vocabulary) and the weights' SHA-256

A checkpoint is one ``.safetensors`` file whose header metadata holds the
JSON (trainer position, optimizer hyperparameters, RNG states) and whose
tensors hold the parameters and the optimizer's buffers, so that it is
written with a single atomic rename.

Loading parses JSON and the safetensors format only: nothing from a file is
ever executed or unpickled. Every problem with a file is a
:class:`ModelFileError` (a ``ValueError``) naming the file and the problem.

References
----------
safetensors format: https://github.com/huggingface/safetensors
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import numpy as np

__all__ = [
    "FORMAT_VERSION",
    "ModelFileError",
    "atomic_write_bytes",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "save_model",
]

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
_FORMAT = "rnnkit-model"
#: ``metadata["format"]`` of a model folder written by an estimator's ``save``
ESTIMATOR_FORMAT = "rnnkit-estimator"
_CKPT_FORMAT = "rnnkit-checkpoint"


class ModelFileError(ValueError):
    """A model or checkpoint file that cannot be loaded; the message names file and problem."""


def _safetensors_numpy():
    try:
        import safetensors.numpy as st
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("saving and loading models needs the safetensors package: "
                          "pip install 'rnnkit[cli]' (or pip install safetensors)") from None
    return st


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new, never a mix.

    The bytes go to a temporary file in the same folder, which is flushed and
    fsynced, then renamed over ``path`` (``os.replace`` is atomic on POSIX and
    Windows); the folder is fsynced so the rename itself is durable.
    """
    path = os.fspath(path)
    _replace(_write_temp(path, data), path)
    _fsync_folder(os.path.dirname(os.path.abspath(path)))


def _json_scalar(obj):
    """JSON for NumPy scalars and arrays in settings (``np.int64(8)`` -> ``8``)."""
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    raise TypeError(f"cannot store a {type(obj).__name__} in a JSON file")


def _file_mode(path):
    """The mode a new file gets: the old file's, else 0o666 less the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _write_temp(path, data):
    """Write ``data`` to a new ``.<name>.*.tmp`` beside ``path``, flushed and fsynced; its path."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        os.fchmod(fd, _file_mode(path))  # mkstemp makes 0600; keep the umask's (or old file's)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp


def _replace(tmp, path):
    """Rename ``tmp`` over ``path`` (atomic); remove ``tmp`` if that fails."""
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_folder(folder):
    """Make the renames in ``folder`` durable (where the platform has directory fds)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)


def _save_safetensors(st, tensors, metadata):
    """``st.save(tensors, metadata)``, but the same content always gives the same bytes.

    safetensors writes the ``__metadata__`` keys in hash-map order, which changes
    from call to call, so two saves of the same model would differ (and so would
    their checksums). The header is written here instead, metadata keys sorted,
    padded with spaces to a multiple of 8 bytes as safetensors does; the tensor
    entries and the data are safetensors' own.
    """
    blob = st.save(tensors)
    n = int.from_bytes(blob[:8], "little")
    header = {"__metadata__": dict(sorted(metadata.items())), **json.loads(blob[8:8 + n])}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    return len(text).to_bytes(8, "little") + text + blob[8 + n:]


def _check_regular(path, what):
    """Refuse devices, FIFOs and sockets (a symlink to /dev/zero would never end)."""
    import stat

    mode = os.stat(path).st_mode  # FileNotFoundError for a missing file, as open() would
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise ModelFileError(f"{path}: the {what} is {kind}")


def _read_safetensors(path, what):
    """Return (arrays, metadata) from a safetensors file, or raise ModelFileError."""
    st = _safetensors_numpy()
    try:
        _check_regular(path, what)
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        folder = os.path.dirname(os.path.abspath(path))
        where = "" if os.path.isdir(folder) else f" (there is no folder {folder})"
        raise ModelFileError(f"{path}: {what} not found{where}") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read {what} ({exc.strerror})") from None
    if len(data) < 8:
        raise ModelFileError(f"{path}: not a safetensors file (truncated: {len(data)} bytes)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        raise ModelFileError(f"{path}: truncated or corrupted safetensors file (its first 8 "
                             f"bytes give a header of {header_len} bytes; the file has "
                             f"{len(data)} bytes in all)")
    try:
        header = json.loads(data[8:8 + header_len])
    except (UnicodeDecodeError, ValueError, RecursionError):  # ValueError: bad JSON too
        raise ModelFileError(f"{path}: corrupted safetensors header (not JSON)") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: corrupted safetensors header (not a JSON object)")
    metadata = header.get("__metadata__") or {}
    try:  # the tensors' bytes the header describes, against what the file holds
        need = max((int(v["data_offsets"][1]) for k, v in header.items()
                    if k != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        need = None  # a malformed entry: safetensors says what is wrong with it
    if need is not None and need > len(data) - 8 - header_len:
        raise ModelFileError(f"{path}: truncated safetensors file (its header describes "
                             f"{need} bytes of tensors; the file holds "
                             f"{len(data) - 8 - header_len} after the header)")
    from safetensors import SafetensorError

    try:
        arrays = st.load(data)
    except KeyError as exc:  # a dtype NumPy has no type for, e.g. BF16
        raise ModelFileError(f"{path}: tensors of dtype {exc.args[0]} cannot be read into "
                             "NumPy; save them as float32 or float64") from None
    except (SafetensorError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: corrupted safetensors file ({exc})") from None
    return arrays, metadata


# ---------------------------------------------------------------------- models
def save_model(directory, model, *, metadata=None):
    """Save ``model`` (a :class:`~rnnkit.SequenceModel`) to a folder.

    Parameters
    ----------
    directory : str or PathLike
        Created if missing; existing files of the same names are replaced atomically.
    model : SequenceModel
    metadata : dict, optional
        JSON-able task information stored beside the architecture (e.g.
        ``{"task": "charlm", "vocabulary": [...]}``).

    Returns
    -------
    str : the folder's path.

    Raises
    ------
    TypeError
        If ``model`` is not a model with a ``config()`` (a bare layer such as
        ``rnnkit.LSTM``: save it inside a SequenceModel, or its
        ``state_dict()`` with :func:`save_state_dict`), or the arguments come
        in ``torch.save``'s order ``(model, directory)``.
    """
    if not isinstance(directory, (str, bytes, os.PathLike)):
        hint = (" (the folder comes first: save_model(directory, model))"
                if hasattr(directory, "params") else "")
        raise TypeError(f"save_model: directory must be a str or PathLike, got "
                        f"{type(directory).__name__}{hint}")
    if not callable(getattr(model, "config", None)) or not hasattr(model, "params"):
        raise TypeError(f"save_model: model must be a SequenceModel or CTRNNModel, got "
                        f"{type(model).__name__}; save a bare layer's weights with "
                        "rnnkit.io.save_state_dict(path, layer.state_dict())")
    st = _safetensors_numpy()
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    tensors = {k: np.ascontiguousarray(v) for k, v in model.params.items()}
    blob = _save_safetensors(st, tensors, {"format": _FORMAT,
                                           "format_version": str(FORMAT_VERSION)})
    config = {
        "format": _FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": type(model).__name__,  # SequenceModel or CTRNNModel
        "model": model.config(),
        "weights": WEIGHTS_NAME,
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
        "metadata": metadata or {},
    }
    text = json.dumps(config, indent=2, ensure_ascii=False, default=_json_scalar) + "\n"
    # Both files are complete on disk before either is renamed into place. A crash
    # between the two renames leaves the new weights beside the old config.json, and
    # the new config in its temporary file, which load_model then finds by checksum.
    wpath, cpath = os.path.join(directory, WEIGHTS_NAME), os.path.join(directory, CONFIG_NAME)
    wtmp = _write_temp(wpath, blob)
    try:
        ctmp = _write_temp(cpath, text.encode("utf-8"))
    except BaseException:
        _unlink_quietly(wtmp)
        raise
    try:
        _replace(wtmp, wpath)
    except BaseException:
        _unlink_quietly(ctmp)
        raise
    _replace(ctmp, cpath)
    _fsync_folder(directory)
    return directory


def read_config(directory):
    """Read and check ``config.json`` of a model folder; returns the dict."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ModelFileError(f"{directory}: not a model folder (expected a folder with "
                             f"{CONFIG_NAME} and {WEIGHTS_NAME})")
    return _parse_config(os.path.join(directory, CONFIG_NAME))


def _parse_config(path):
    """Read and check a model config file; returns the dict or raises ModelFileError."""
    try:
        _check_regular(path, "model config")
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: model config not found") from None
    except OSError as exc:  # e.g. a folder named config.json, no permission
        raise ModelFileError(f"{path}: cannot read the model config ({exc.strerror})") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: bad JSON,
        raise ModelFileError(f"{path}: not valid JSON ({exc})") from None  # too-long integers
    if not isinstance(config, dict) or config.get("format") != _FORMAT:
        raise ModelFileError(f"{path}: not an rnnkit model config (format field missing)")
    version = config.get("format_version")
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise ModelFileError(f"{path}: unsupported format_version {version!r} "
                             f"(this rnnkit reads version {FORMAT_VERSION})")
    if not isinstance(config.get("model"), dict):
        raise ModelFileError(f"{path}: the 'model' section is missing or not an object")
    return config


def load_model(directory):
    """Load a model saved by :func:`save_model`.

    Returns
    -------
    model : SequenceModel
        In evaluation mode.
    metadata : dict
        What was passed as ``metadata`` when saving.

    Raises
    ------
    ModelFileError
        A missing folder or file, an unknown format version, a truncated or
        corrupted file, weights that do not match the config (missing, extra
        or mis-shaped tensors, wrong dtype, a changed checksum).
    """
    from .ctrnn import CTRNNModel
    from .models import SequenceModel

    config = read_config(directory)
    kinds = {"SequenceModel": SequenceModel, "CTRNNModel": CTRNNModel}
    kind = config.get("kind", "SequenceModel")
    if not isinstance(kind, str) or kind not in kinds:
        raise ModelFileError(f"{os.path.join(directory, CONFIG_NAME)}: unknown model kind "
                             f"{kind!r} (this rnnkit reads {', '.join(kinds)})")
    wpath = os.path.join(os.fspath(directory), WEIGHTS_NAME)
    arrays, _ = _read_safetensors(wpath, "model weights")
    try:
        with open(wpath, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except OSError:  # pragma: no cover - read just above
        digest = None
    if config.get("weights_sha256") not in (None, digest):
        config = _config_of_interrupted_save(os.fspath(directory), digest)
        if config is None:
            raise ModelFileError(f"{wpath}: weights do not match {CONFIG_NAME} (checksum "
                                 "differs: the files come from different saves)")
    _check_sizes(config["model"], arrays, wpath)
    try:
        model = kinds[kind].from_config(config["model"], rng=0)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{os.path.join(directory, CONFIG_NAME)}: invalid model "
                             f"config ({exc})") from None
    _check_arrays(arrays, model.params, wpath)
    for k, v in arrays.items():
        model.params[k][...] = v
    model.eval()
    metadata = config.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{os.path.join(directory, CONFIG_NAME)}: the 'metadata' section "
                             f"is not an object (got {type(metadata).__name__})")
    return model, metadata


def _config_of_interrupted_save(directory, digest):
    """The config a save wrote for weights ``digest`` but did not rename into place, or None.

    :func:`save_model` renames the weights, then the config; a crash between the
    two leaves the new config in a ``.config.json.*.tmp`` file, complete and
    fsynced. Only a config whose checksum names exactly these weights is taken.
    """
    prefix = "." + CONFIG_NAME + "."
    try:
        names = sorted(n for n in os.listdir(directory)
                       if n.startswith(prefix) and n.endswith(".tmp"))
    except OSError:
        return None
    for name in names:
        try:
            config = _parse_config(os.path.join(directory, name))
        except (ModelFileError, OSError):
            continue
        if config.get("weights_sha256") == digest:
            return config
    return None


def _check_sizes(cfg, arrays, path):
    """Refuse a config that declares far more parameters than the file holds, before allocating.

    A valid file holds exactly the declared parameters; a config that asks
    for many more (by mistake or malice, e.g. ``hidden_size: 10**9``) would
    make the model allocate memory the file does not back. Smaller mismatches
    are named tensor by tensor by the full check after the model is built.
    """
    if "cell" not in cfg and {"hidden_size", "input_size", "output_size"} <= set(cfg):
        try:  # a CTRNN: W_rec (H, H), W_in (H, D), read-out (C, H), biases and h0
            H, D, C = (int(cfg[k]) for k in ("hidden_size", "input_size", "output_size"))
        except (TypeError, ValueError, OverflowError):
            return
        declared = H * (H + D + 2) + C * (H + 1)
        held = sum(int(a.size) for a in arrays.values())
        if declared > 2 * held + 1_000_000:
            raise ModelFileError(f"{path}: the config declares {declared:,} parameters but the "
                                 f"file holds {held:,} values")
        return
    try:
        G = {"lstm": 4, "gru": 3, "rnn": 1}[cfg["cell"]]
        H, C, V = (int(cfg[k]) for k in ("hidden_size", "output_size", "input_size"))
        L = int(cfg.get("num_layers", 1))
        K = 2 if cfg.get("bidirectional") else 1
        E = cfg.get("embedding_dim")
        enc = cfg.get("encoder", "dense")
        D = int(E or 64) if enc == "embedding" else V
    except (KeyError, TypeError, ValueError, OverflowError):
        return  # building the model reports what is wrong with the config
    declared = (V * D if enc == "embedding" else 0) + C * (K * H + 1)
    if L >= 1:  # layer 0 reads D features, the L - 1 layers above it read K * H
        declared += K * (G * H * (D + H) + 2 * G * H)
        declared += (L - 1) * K * (G * H * (K * H + H) + 2 * G * H)
    held = sum(int(a.size) for a in arrays.values())
    # small differences are named precisely by the full check after building
    if declared > 2 * held + 1_000_000:
        raise ModelFileError(f"{path}: the config declares {declared:,} parameters but the "
                             f"file holds {held:,} values")


def _check_arrays(arrays, expected, path):
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing:
        raise ModelFileError(f"{path}: missing tensor(s) {', '.join(missing)}")
    if extra:
        raise ModelFileError(f"{path}: unexpected tensor(s) {', '.join(extra)}")
    for k, want in expected.items():
        got = arrays[k]
        if got.shape != want.shape:
            raise ModelFileError(f"{path}: tensor {k} has shape {got.shape}, "
                                 f"the config needs {want.shape}")
        if got.dtype != want.dtype:
            raise ModelFileError(f"{path}: tensor {k} has dtype {got.dtype}, "
                                 f"the config needs {want.dtype}")
        if not np.isfinite(got).all():
            raise ModelFileError(f"{path}: tensor {k} contains NaN or infinite values")


# ----------------------------------------------------------------- checkpoints
def save_checkpoint(path, arrays, state):
    """Write a checkpoint: ``arrays`` (name -> ndarray) and a JSON-able ``state`` dict, atomically."""
    st = _safetensors_numpy()
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    text = json.dumps(state, default=_json_scalar)
    meta = {"format": _CKPT_FORMAT, "format_version": str(FORMAT_VERSION),
            "state": text, "sha256": _checkpoint_digest(text, arrays)}
    blob = _save_safetensors(st, arrays, meta)
    atomic_write_bytes(path, blob)
    return os.fspath(path)


def _checkpoint_digest(state_text, arrays):
    """SHA-256 over the state JSON and the names, dtypes, shapes and bytes of ``arrays``.

    A checkpoint has no config.json beside it to hold a checksum of the file,
    so its header holds this digest of its content: a flipped bit in the
    state or the tensors is found at load time instead of resuming from wrong
    numbers.
    """
    h = hashlib.sha256(state_text.encode("utf-8"))
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(json.dumps([k, a.dtype.str, list(a.shape)]).encode("utf-8"))
        h.update(a.tobytes())
    return h.hexdigest()


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`; returns ``(arrays, state)``."""
    path = os.fspath(path)
    arrays, meta = _read_safetensors(path, "checkpoint")
    if meta.get("format") != _CKPT_FORMAT:
        raise ModelFileError(f"{path}: not an rnnkit checkpoint")
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise ModelFileError(f"{path}: unsupported checkpoint format_version "
                             f"{meta.get('format_version')!r} (this rnnkit reads {FORMAT_VERSION})")
    try:
        state = json.loads(meta["state"])
    except (KeyError, ValueError, RecursionError):
        raise ModelFileError(f"{path}: checkpoint state is missing or not JSON") from None
    if not isinstance(state, dict):
        raise ModelFileError(f"{path}: checkpoint state is not a JSON object")
    digest = meta.get("sha256")  # absent in checkpoints written before it was added
    if digest is not None and digest != _checkpoint_digest(meta["state"], arrays):
        raise ModelFileError(f"{path}: corrupted checkpoint (its state and tensors do not "
                             "match the checksum in its header)")
    return arrays, state


def checkpoint_step(path):
    """The optimizer steps done when the checkpoint at ``path`` was written, read from its
    header alone (no tensors, no checksum); None if the file is not a readable checkpoint."""
    try:
        from safetensors import safe_open

        with safe_open(os.fspath(path), framework="numpy") as f:
            meta = f.metadata() or {}
        if meta.get("format") != _CKPT_FORMAT:
            return None
        step = json.loads(meta["state"])["position"]["step"]
    except Exception:  # noqa: BLE001 - any unreadable file: no step to tell
        return None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


# ------------------------------------------------------------ PyTorch and Keras
def save_state_dict(path, state_dict):
    """Write a PyTorch-style state dict (name -> array) to a ``.safetensors`` file, atomically.

    ``torch.nn.LSTM(...).load_state_dict(safetensors.torch.load_file(path))``
    accepts the file written from ``rnnkit.LSTM(...).state_dict()`` with the
    same options: the keys are PyTorch's and no array is transposed.
    """
    st = _safetensors_numpy()
    blob = st.save({k: np.ascontiguousarray(v) for k, v in state_dict.items()})
    atomic_write_bytes(path, blob)
    return os.fspath(path)


def load_state_dict(path):
    """Read a ``.safetensors`` state dict (e.g. written by ``safetensors.torch.save_file``).

    Returns
    -------
    dict of str to ndarray
        Pass it to a layer's ``load_state_dict``.

    Raises
    ------
    ModelFileError
        A missing, truncated or corrupted file.
    """
    arrays, _ = _read_safetensors(os.fspath(path), "state dict file")
    return arrays


_KERAS_GATE_ORDER = {"SimpleRNN": None, "LSTM": None, "GRU": (1, 0, 2)}  # GRU: z,r,h -> r,z,n


def from_keras_weights(kind, weights, *, reset_after=True, layer=0, reverse=False):
    """Map the weight arrays of a Keras recurrent layer to PyTorch/rnnkit names.

    Parameters
    ----------
    kind : {'SimpleRNN', 'LSTM', 'GRU'}
    weights : list of ndarray
        ``keras_layer.get_weights()``: ``[kernel (D, G*H), recurrent_kernel (H, G*H),
        bias]`` with ``bias`` of shape (G*H,), or (2, 3H) for ``GRU(reset_after=True)``.
    reset_after : bool, default=True
        Keras's GRU option (its default since Keras 2.3).
    layer : int, default=0
        The layer index ``k`` used in the key names (``weight_ih_l{k}``).
    reverse : bool, default=False
        Use the ``_reverse`` key suffix (the backward half of a Bidirectional).

    Returns
    -------
    dict of str to ndarray
        ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``;
        Keras has one bias per gate block, which becomes ``bias_ih`` with a zero ``bias_hh``.

    Raises
    ------
    ValueError
        For ``GRU(reset_after=False)``: Keras then computes
        ``n = tanh(W x + U (r * h))`` (the reset gate before the recurrent
        product, Cho et al. 2014), which PyTorch's GRU (and rnnkit's) cannot
        express with any weights. Also for arrays of the wrong number or shape.

    Notes
    -----
    Keras stores kernels as (input, units) and PyTorch as (units, input), so
    kernels are transposed. Keras orders LSTM gates i, f, c, o (PyTorch's
    i, f, g, o) and GRU gates z, r, h (PyTorch's r, z, n). The activations
    must be Keras's defaults (tanh, with sigmoid as recurrent activation).
    """
    gates = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
    if kind not in gates:
        raise ValueError(f"kind must be 'SimpleRNN', 'LSTM' or 'GRU', got {kind!r}")
    if kind == "GRU" and not reset_after:
        raise ValueError(
            "Keras GRU(reset_after=False) applies the reset gate to h before the recurrent "
            "matrix product (n = tanh(W x + U (r * h))); PyTorch's and rnnkit's GRU compute "
            "n = tanh(W x + b + r * (U h + b_hn)), so no weights reproduce it. "
            "Retrain the Keras model with reset_after=True (the Keras default)")
    weights = [np.asarray(w) for w in weights]
    if len(weights) not in (2, 3):
        raise ValueError(f"expected [kernel, recurrent_kernel, bias] (or without bias), "
                         f"got {len(weights)} arrays")
    kernel, rec = weights[0], weights[1]
    if kernel.ndim != 2 or rec.ndim != 2 or kernel.shape[1] % gates[kind]:
        raise ValueError(f"{kind}: kernel must be (input, {gates[kind]}*units) and "
                         f"recurrent_kernel (units, {gates[kind]}*units); got {kernel.shape} "
                         f"and {rec.shape}")
    G = gates[kind]
    H = kernel.shape[1] // G
    if rec.shape != (H, G * H):
        raise ValueError(f"{kind}: recurrent_kernel must have shape {(H, G * H)}, "
                         f"got {rec.shape}")
    order = _KERAS_GATE_ORDER[kind]

    def reorder(a):  # permute gate blocks along the first axis
        if order is None:
            return np.ascontiguousarray(a)
        blocks = np.split(a, G, axis=0)
        return np.ascontiguousarray(np.concatenate([blocks[i] for i in order], axis=0))

    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    out = {f"weight_ih{sfx}": reorder(kernel.T), f"weight_hh{sfx}": reorder(rec.T)}
    if len(weights) == 3:
        bias = weights[2]
        if kind == "GRU":
            if bias.shape != (2, G * H):
                raise ValueError(f"GRU(reset_after=True): bias must have shape {(2, G * H)} "
                                 f"(input and recurrent biases), got {bias.shape}")
            out[f"bias_ih{sfx}"] = reorder(bias[0])
            out[f"bias_hh{sfx}"] = reorder(bias[1])
        else:
            if bias.shape != (G * H,):
                raise ValueError(f"{kind}: bias must have shape {(G * H,)}, got {bias.shape}")
            out[f"bias_ih{sfx}"] = reorder(bias)
            out[f"bias_hh{sfx}"] = np.zeros_like(out[f"bias_ih{sfx}"])
    return out


def read_npz(path):
    """All arrays of an ``.npz`` file (as ``np.savez`` writes it), never unpickling.

    Returns
    -------
    dict of str to ndarray

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is not a zip archive of ``.npy`` arrays (with what it starts
        with), holds object arrays (pickles), or is truncated or corrupt.
    """
    import zipfile
    import zlib

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(6)
    if not head.startswith(b"PK"):  # every zip archive (an .npz is one) starts so
        kind = "an .npy array (np.save)" if head == b"\x93NUMPY" else f"bytes {head!r}"
        raise ValueError(f"{path}: not an .npz file (a zip archive of arrays, as np.savez "
                         f"writes it); it starts with {kind}")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except ValueError as exc:  # object arrays (pickles) and corrupt members
        raise ValueError(f"{path}: cannot read the .npz file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
            RuntimeError) as exc:
        # a truncated or corrupted zip archive (zipfile raises RuntimeError for a flag that
        # says "encrypted"), or one compressed in a way zipfile cannot read
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
