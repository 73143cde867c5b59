"""The character-level language model job: train on a text, report, save, sample.

This is what ``rnnkit train`` and ``rnnkit sample`` run; it is also the
Python recipe::

    from rnnkit.charlm import CharLMSettings, train_char_model, sample_text
    result = train_char_model(text, CharLMSettings(hidden_size=128), out_dir="runs/x")
    print(sample_text(result.model, result.vocab, prime="The ", length=200, seed=0))

Losses are in nats per character (natural log), shown beside bits per
character and the two baselines of the same validation text: uniform
(``ln V``) and unigram (character frequencies of the training text).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import numpy as np

from ._validation import check_int
from .data.text import (
    TextStream,
    Vocabulary,
    nats_to_bits,
    train_val_split,
    uniform_baseline,
    unigram_baseline,
)
from .io import _check_sizes, load_model, save_model
from .models import SequenceModel
from .training import Trainer, TrainerConfig

__all__ = [
    "CharLMResult",
    "CharLMSettings",
    "load_char_model",
    "sample_text",
    "train_char_model",
]

TASK = "charlm"


@dataclass
class CharLMSettings:
    """Model and data settings of a character-level language model."""

    cell: str = "lstm"  # lstm, gru or rnn
    hidden_size: int = 256  # units per recurrent layer
    num_layers: int = 1  # stacked recurrent layers
    nonlinearity: str = "tanh"  # for cell='rnn': tanh, relu or sigmoid
    embedding_dim: int | None = 64  # character embedding size; None: one-hot input
    dropout: float = 0.0  # between recurrent layers, training only
    seq_len: int = 64  # characters per truncated-BPTT chunk
    batch_size: int = 32  # parallel streams
    val_fraction: float = 0.1  # the last part of the text, held out
    seed: int = 0  # initialization, dropout and data order

    def __post_init__(self):
        for f in dataclasses.fields(self):  # NumPy scalars -> Python numbers (JSON-able)
            value = getattr(self, f.name)
            if isinstance(value, np.generic):
                setattr(self, f.name, value.item())


@dataclass
class CharLMResult:
    """What :func:`train_char_model` returns."""

    model: SequenceModel
    vocab: Vocabulary
    history: dict
    val_loss: float  # nats per character on the whole validation text
    baselines: dict  # {'uniform': ln V, 'unigram': ...} in nats per character
    out_dir: str | None
    interrupted: bool = False  # stopped by a request (signal) before the planned steps
    steps: int = 0  # optimizer steps done in all
    settings: CharLMSettings | None = None  # the run's settings (a resumed run's: the saved ones)


def build_config(vocab_size, settings):
    """The :class:`SequenceModel` arguments for ``settings``, as ``SequenceModel.config()`` gives."""
    s = settings
    return {"input_size": vocab_size, "hidden_size": s.hidden_size, "output_size": vocab_size,
            "cell": s.cell, "num_layers": s.num_layers, "nonlinearity": s.nonlinearity,
            "encoder": "one_hot" if s.embedding_dim is None else "embedding",
            "embedding_dim": s.embedding_dim, "dropout": s.dropout, "bidirectional": False,
            "task": "many_to_many", "loss": "cross_entropy", "dtype": "float32"}


def build_model(vocab_size, settings, dtype=np.float32):
    """The :class:`SequenceModel` for ``settings`` (embedding or one-hot -> RNN -> Linear)."""
    cfg = build_config(vocab_size, settings)
    cfg["dtype"] = dtype
    return SequenceModel.from_config(cfg, rng=settings.seed)


def prepare(text, settings):
    """Vocabulary, train/validation streams and baselines for ``text``.

    Raises
    ------
    ValueError
        If the text is too short for the batch size and sequence length.
    """
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    train_ids, val_ids = train_val_split(ids, settings.val_fraction)
    need = settings.batch_size * (settings.seq_len + 1)
    if train_ids.size < need:
        raise ValueError(
            f"the training text has {train_ids.size} characters after the validation split; "
            f"batch_size={settings.batch_size} x (seq_len={settings.seq_len} + 1) needs at "
            f"least {need}: use a longer text or smaller --batch-size/--seq-len")
    train = TextStream(train_ids, settings.batch_size, settings.seq_len)
    val_batch = max(1, min(settings.batch_size, val_ids.size // (settings.seq_len + 1)))
    val = TextStream(val_ids, val_batch, settings.seq_len)
    baselines = {"uniform": uniform_baseline(len(vocab)),
                 "unigram": unigram_baseline(train_ids, val_ids, len(vocab))}
    return vocab, train, val, baselines


def train_char_model(text, settings=None, trainer_config=None, *, out_dir=None, log=print,
                     source=None, trainer_hook=None):
    """Train a character-level model on ``text``; save it to ``out_dir`` if given.

    Parameters
    ----------
    text : str
    settings : CharLMSettings, optional
    trainer_config : TrainerConfig, optional
        ``stateful`` is forced on (the streams are contiguous text).
    out_dir : str, optional
        Folder for ``model.safetensors``, ``config.json`` and ``checkpoint.safetensors``.
    log : callable(str)
        Receives the report lines.
    source : str, optional
        Where the text came from (a path, or the built-in corpus's name); stored
        with the model and used by :func:`resume_char_model`.
    trainer_hook : callable(Trainer), optional
        Called with the trainer before training starts (the CLI installs its
        signal handlers there).

    Returns
    -------
    CharLMResult
        ``interrupted`` is True if training was stopped by ``Trainer.request_stop``
        (the model and the checkpoint are saved all the same).

    Raises
    ------
    TrainingError
        On a non-finite loss or gradient; the last good model is saved first.
    """
    settings = settings or CharLMSettings()
    tc = trainer_config or TrainerConfig()
    tc = dataclasses.replace(tc, stateful=True, shuffle=False,
                             checkpoint_dir=out_dir if out_dir else tc.checkpoint_dir)
    return _run(text, settings, tc, out_dir, log, source, trainer_hook, checkpoint=None)


def resume_char_model(out_dir, text=None, *, log=print, progress=None, trainer_hook=None,
                      max_steps=None):
    """Continue a run from ``out_dir/checkpoint.safetensors`` exactly where it stopped.

    The settings, trainer configuration, vocabulary and text source come from
    the checkpoint; the result is bit for bit what an uninterrupted run gives.

    Parameters
    ----------
    out_dir : str
        The folder of the interrupted run.
    text : str, optional
        The training text; by default it is read again from the recorded source.
    progress : bool, optional
        Override the recorded progress-bar setting.
    max_steps : int, optional
        A new limit of optimizer steps, past the checkpoint's step: a finished
        run trains on (as ``Trainer``'s ``max_steps``; the epochs limit goes).
        With the constant learning rate the result is that of a run started
        with this limit; the cosine schedule instead decays over the new total
        from here on (its rate at each later step differs).

    Raises
    ------
    ModelFileError
        No checkpoint, or a damaged one.
    ValueError
        The text differs from the one the run started on (another vocabulary),
        or ``max_steps`` is not past the checkpoint's step.
    """
    import os

    from .data.text import BUILTIN_CORPUS_NAME, builtin_corpus, read_text
    from .io import ModelFileError, load_checkpoint
    from .training import CHECKPOINT_NAME

    path = os.path.join(os.fspath(out_dir), CHECKPOINT_NAME)
    arrays, state = load_checkpoint(path)
    meta = state.get("metadata") or {}
    if not isinstance(meta, dict) or meta.get("task") != TASK:
        raise ModelFileError(f"{path}: not a checkpoint of a character-level model")
    try:
        settings = CharLMSettings(**meta["settings"])
        tc = TrainerConfig(**state["trainer_config"])
        vocab_size = len(Vocabulary.from_json(meta["vocabulary"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid settings in the checkpoint ({exc})") from None
    if not isinstance(meta.get("source"), (str, type(None))):
        raise ModelFileError(f"{path}: the recorded text source is not a path")
    # sizes the tensors in the file back, checked before any model is allocated
    _check_sizes(build_config(vocab_size, settings),
                 {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")},
                 path)
    # checkpoints go where the run is now, even if its folder was moved or renamed
    tc = dataclasses.replace(tc, checkpoint_dir=os.fspath(out_dir))
    if max_steps is not None:
        done = (state.get("position") or {}).get("step")
        check_int(max_steps, "max_steps", minimum=1)
        if isinstance(done, int) and max_steps <= done:
            raise ValueError(f"the run in {out_dir} has done {done} optimizer steps "
                             f"already; a new limit (max_steps, --steps) must be more than "
                             f"that to train it on, got {max_steps}")
        tc = dataclasses.replace(tc, max_steps=max_steps, epochs=None)
    if progress is not None:
        tc = dataclasses.replace(tc, progress=progress)
    source = meta.get("source")
    if text is None:
        if source == BUILTIN_CORPUS_NAME:
            text = builtin_corpus()
        elif source:
            text = read_text(source)
        else:
            raise ValueError(f"{path}: the checkpoint does not say which text it was trained "
                             "on; pass the text file")
    if Vocabulary.from_text(text).to_json() != meta.get("vocabulary"):
        raise ValueError(f"the text does not match the checkpoint in {out_dir}: its characters "
                         "differ from the vocabulary the run started with")
    return _run(text, settings, tc, out_dir, log, source, trainer_hook, checkpoint=path)


def _run(text, settings, tc, out_dir, log, source, trainer_hook, checkpoint):
    vocab, train, val, baselines = prepare(text, settings)
    model = build_model(len(vocab), settings)
    log(f"text: {source or 'given text'}: {len(text):,} characters, vocabulary {len(vocab)}; "
        f"train {train.num_tokens:,} / validation {val.num_tokens:,} predicted characters")
    log(f"model: {model.rnn!r}, {model.num_parameters():,} parameters; "
        f"{tc.optimizer} lr={tc.lr}, {len(train)} batches of {settings.batch_size}x"
        f"{settings.seq_len} per epoch")
    log(f"baselines on the validation text: uniform {_fmt(baselines['uniform'])}, "
        f"unigram {_fmt(baselines['unigram'])}")
    metadata = _metadata(vocab, settings, source)
    # the model files follow every checkpoint: a run killed outright leaves a usable model
    save_files = (lambda _path: save_model(out_dir, model, metadata=metadata)) if out_dir \
        else None
    trainer = Trainer(model, tc, train, val, log=log, metadata=metadata,
                      on_checkpoint=save_files)
    if checkpoint is not None:
        trainer.load_checkpoint(checkpoint)
        log(f"resumed from {checkpoint} at step {trainer.pos.step}/{trainer.total_steps}")
        if trainer.pos.step >= trainer.total_steps:
            log("the run had finished: a larger max_steps (rnnkit train --resume "
                f"{out_dir} --steps N) trains it on")
    if trainer_hook is not None:
        trainer_hook(trainer)
    # on a non-finite loss or gradient, fit writes the last good checkpoint, and with it the
    # model files, before it raises TrainingError (not after an update that overflowed)
    history = trainer.fit()
    val_loss = trainer.evaluate(val)
    log(f"validation loss {_fmt(val_loss)} "
        f"(uniform {baselines['uniform']:.3f}, unigram {baselines['unigram']:.3f} nats/char)")
    metadata["results"] = {"val_loss_nats": val_loss, "baselines_nats": baselines,
                           "steps": trainer.pos.step}
    if out_dir:
        save_model(out_dir, model, metadata=metadata)
    return CharLMResult(model, vocab, history, val_loss, baselines, out_dir,
                        interrupted=trainer.interrupted, steps=trainer.pos.step,
                        settings=settings)


def _fmt(nats):
    return f"{nats:.3f} nats/char ({nats_to_bits(nats):.3f} bits/char)"


def _metadata(vocab, settings, source):
    return {"task": TASK, "vocabulary": vocab.to_json(), "source": source,
            "settings": dataclasses.asdict(settings)}


def load_char_model(directory):
    """Load a model saved by :func:`train_char_model`; returns ``(model, vocab, metadata)``.

    Raises
    ------
    rnnkit.io.ModelFileError
        If the folder does not hold a character-level model.
    """
    from .io import ModelFileError

    model, metadata = load_model(directory)
    if metadata.get("task") != TASK or "vocabulary" not in metadata:
        task = metadata.get("task")
        raise ModelFileError(f"{directory}: not a character-level language model"
                             + (f" (task {task!r})" if task else "")
                             + "; rnnkit predict and rnnkit evaluate take forecaster and "
                             "classifier folders")
    try:
        vocab = Vocabulary.from_json(metadata["vocabulary"])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{directory}: invalid vocabulary ({exc})") from None
    if len(vocab) != model.input_size:
        raise ModelFileError(f"{directory}: the vocabulary has {len(vocab)} characters but the "
                             f"model expects {model.input_size}")
    return model, vocab, metadata


def sample_text(model, vocab, prime="", length=200, temperature=1.0, seed=None):
    """Generate ``length`` characters after ``prime``.

    Parameters
    ----------
    model : SequenceModel
    vocab : Vocabulary
    prime : str
        Priming text; every character must be in the vocabulary. Empty: starts
        from the most common first character in the vocabulary order ("\\n" if
        present, else the first character).
    length : int
    temperature : float
        > 0; lower is more conservative, 0 is greedy.
    seed : int, optional

    Returns
    -------
    str : ``prime`` followed by the generated characters.
    """
    return prime + "".join(itertools.islice(sample_chars(model, vocab, prime, temperature,
                                                        seed), length))


def sample_chars(model, vocab, prime="", temperature=1.0, seed=None):
    """The characters :func:`sample_text` generates after ``prime``, one at a time, without
    end: for output printed as it comes (``rnnkit sample``), however long.

    Parameters
    ----------
    model, vocab, prime, temperature, seed
        As in :func:`sample_text`.

    Returns
    -------
    iterator of str
        One character at a time (``SequenceModel.generate_iter``); close it to
        put the model back in its mode.

    Raises
    ------
    ValueError
        At the call: a temperature that is not a finite number >= 0, or a
        priming character the vocabulary does not have.
    """
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    start = prime if prime else ("\n" if "\n" in vocab.chars else vocab.chars[0])
    ids = model.generate_iter(vocab.encode(start), temperature=temperature, rng=seed)
    return (vocab.chars[i] for i in ids)
