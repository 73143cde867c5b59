"""A model-agnostic training loop: ``Trainer`` and its ``TrainerConfig``.

The trainer relies only on the model's ``forward``, ``loss``, ``backward``,
``params``, ``grads``, ``zero_grad``, ``train``/``eval`` and ``rng``. Data is
any sequence of batches: ``data[i]`` gives ``(x, y)`` or ``(x, y, lengths)``
and ``len(data)`` their number (``rnnkit.data.TextStream`` is one).

One optimizer step per batch::

    y, state = model.forward(x, state)        # state carried only if config.stateful
    loss, dy = model.loss(y, target)
    model.backward(dy)                        # BPTT within the batch: the gradient is cut
    clip_grad_norm(model.grads, clip)         # at the batch boundary (truncated BPTT)
    optimizer.step(); model.zero_grad()

A checkpoint (one safetensors file, written atomically) holds the weights,
the optimizer's buffers and step counts, the schedule position, the position
in the data, the carried state and the RNG states, so that resuming from it
gives the same bits as never stopping.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from . import optim
from ._validation import check_choice, check_int
from .io import ModelFileError, load_checkpoint, save_checkpoint
from .recurrent import lengths_to_mask

__all__ = ["CHECKPOINT_NAME", "Trainer", "TrainerConfig", "TrainingError"]

CHECKPOINT_NAME = "checkpoint.safetensors"
OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW,
              "rmsprop": optim.RMSprop, "adagrad": optim.Adagrad}


class TrainingError(RuntimeError):
    """Training stopped on a non-finite loss or gradient; the message names step and parameter."""


@dataclass
class TrainerConfig:
    """Settings of :class:`Trainer`; every field has a default that works."""

    optimizer: str = "adam"  # one of sgd, adam, adamw, rmsprop, adagrad (torch.optim's numerics)
    lr: float = 2e-3  # peak learning rate
    momentum: float = 0.0  # SGD / RMSprop momentum
    nesterov: bool = False  # SGD Nesterov momentum (needs momentum > 0)
    weight_decay: float = 0.0  # L2 penalty (decoupled for adamw)
    epochs: int | None = 1  # passes over the training batches; None: max_steps alone decides
    max_steps: int | None = None  # stop after this many optimizer steps (or earlier, at epochs)
    clip_grad_norm: float | None = 5.0  # clip the global gradient norm to this; None turns it off
    lr_schedule: str = "constant"  # constant, or cosine: linear warm-up then cosine decay
    warmup_steps: int = 0  # warm-up steps of the cosine schedule
    min_lr: float = 0.0  # final learning rate of the cosine schedule
    stateful: bool = False  # carry the recurrent state from batch to batch (text streams)
    shuffle: bool = False  # shuffle the batch order every epoch (not with stateful)
    eval_every: int = 0  # validate every N steps; 0 validates at the end of each epoch
    max_eval_batches: int | None = None  # cap on validation batches per evaluation
    early_stopping_patience: int | None = None  # stop after this many evaluations without improvement
    min_delta: float = 0.0  # improvement smaller than this does not count
    seed: int = 0  # seeds the shuffling
    progress: bool = True  # show a progress bar (tqdm)
    checkpoint_dir: str | None = None  # where checkpoint.safetensors is written
    checkpoint_every: int = 0  # also checkpoint every N steps; 0: only at the end (and on stop)

    def __post_init__(self):
        for f in dataclasses.fields(self):  # NumPy scalars -> Python numbers (JSON-able)
            value = getattr(self, f.name)
            if isinstance(value, np.generic):
                setattr(self, f.name, value.item())
        check_choice(self.optimizer, "optimizer", tuple(OPTIMIZERS))
        for name in ("epochs", "max_steps", "max_eval_batches", "early_stopping_patience"):
            value = getattr(self, name)
            if value is not None:
                check_int(value, name, minimum=1)
        for name in ("eval_every", "warmup_steps", "checkpoint_every", "seed"):
            check_int(getattr(self, name), name, minimum=0)
        check_choice(self.lr_schedule, "lr_schedule", ("constant", "cosine"))
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.epochs is None and self.max_steps is None:
            raise ValueError("set epochs or max_steps (or both); both are None")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be > 0 or None, got {self.clip_grad_norm}")
        if self.stateful and self.shuffle:
            raise ValueError("stateful=True carries state between consecutive batches; "
                             "it cannot be combined with shuffle=True")


@dataclass
class _Position:
    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch (0-based)
    batch: int = 0  # next batch index within the epoch
    best_val: float = math.inf
    bad_evals: int = 0
    # the training losses since the last record: a resumed run's first record averages the
    # same steps as the uninterrupted run's
    run_loss: float = 0.0
    run_n: int = 0
    history: dict = field(default_factory=lambda: {
        "step": [], "epoch": [], "train_loss": [], "val_loss": [], "lr": [], "time": []})


class Trainer:
    """Train a model with an optimizer, clipping, a schedule, validation and checkpoints.

    Parameters
    ----------
    model : SequenceModel or any object with the methods listed in the module docstring
    config : TrainerConfig
    train_data : sequence of batches
    val_data : sequence of batches, optional
    log : callable(str), optional
        Receives one line per evaluation (the CLI prints it).
    metadata : dict, optional
        JSON-able data stored in checkpoints (e.g. the vocabulary).
    on_checkpoint : callable(str), optional
        Called with the path after each checkpoint is written (the
        character model saves its model files beside it, so that a run
        killed outright leaves a usable model too).

    Attributes
    ----------
    history : dict of lists
        ``step``, ``epoch``, ``train_loss`` (mean since the previous
        evaluation), ``val_loss`` (NaN without validation data), ``lr``,
        ``time`` (seconds since fit started), one entry per evaluation.
    optimizer : rnnkit.optim.Optimizer
    """

    def __init__(self, model, config=None, train_data=None, val_data=None, *, log=None,
                 metadata=None, on_checkpoint=None):
        self.model = model
        self.config = config or TrainerConfig()
        if train_data is None or len(train_data) == 0:
            raise ValueError("Trainer needs training data with at least one batch")
        self.train_data = train_data
        self.val_data = val_data
        self.log = log or (lambda line: None)
        self.metadata = metadata or {}
        self.on_checkpoint = on_checkpoint
        c = self.config
        kwargs = {"lr": c.lr, "weight_decay": c.weight_decay}
        if c.optimizer == "sgd":
            kwargs.update(momentum=c.momentum, nesterov=c.nesterov)
        elif c.optimizer == "rmsprop":
            kwargs.update(momentum=c.momentum)
        self.optimizer = OPTIMIZERS[c.optimizer](model.params, model.grads, **kwargs)
        self.pos = _Position()
        self._carry = None  # recurrent state carried between batches (stateful)
        # the input's gradient is of no use to training: skipped where the model allows
        self._backward_options = ({"input_grad": False} if "input_grad" in
                                  inspect.signature(model.backward).parameters else {})
        self._stop = False
        self.interrupted = False
        self._updating = False
        self._bar = None

    # ----------------------------------------------------------------- helpers
    @property
    def history(self):
        return self.pos.history

    @property
    def steps_per_epoch(self):
        return len(self.train_data)

    @property
    def total_steps(self):
        c = self.config
        if c.epochs is None:
            return c.max_steps
        n = c.epochs * self.steps_per_epoch
        return n if c.max_steps is None else min(n, c.max_steps)

    def lr_at(self, step):
        """Learning rate for optimizer step ``step`` (0-based)."""
        c = self.config
        if c.lr_schedule == "constant":
            return c.lr
        return optim.cosine_with_warmup(step, lr=c.lr, warmup_steps=c.warmup_steps,
                                        total_steps=self.total_steps, min_lr=c.min_lr)

    def _order(self, epoch):
        n = self.steps_per_epoch
        if not self.config.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.config.seed, epoch]).permutation(n)

    @staticmethod
    def _unpack(batch):
        if len(batch) == 3:
            return batch
        x, y = batch
        return x, y, None

    def _loss_mask(self, y, lengths):
        if lengths is None or np.ndim(y) < 3:
            return None
        return lengths_to_mask(lengths, y.shape[0])

    def evaluate(self, data, max_batches=None):
        """Mean loss over ``data`` (weighted by the number of targets), in evaluation mode."""
        model = self.model
        was_training = model.training
        model.eval()
        if len(data) == 0:
            raise ValueError("evaluate needs at least one batch, got empty data")
        total, count, state = 0.0, 0, None
        try:
            n = len(data) if max_batches is None else min(len(data), max_batches)
            for i in range(n):
                x, target, lengths = self._unpack(data[i])
                y, state_n = model.forward(x, state if self.config.stateful else None,
                                           lengths=lengths)
                state = state_n
                mask = self._loss_mask(y, lengths)
                loss, _ = model.loss(y, target, mask)
                k = int(mask.sum()) if mask is not None else int(np.size(target))
                total += loss * k
                count += k
        finally:
            model.train(was_training)
        return total / max(count, 1)

    # -------------------------------------------------------------- checkpoints
    def checkpoint_path(self):
        d = self.config.checkpoint_dir
        return None if d is None else os.path.join(d, CHECKPOINT_NAME)

    def save_checkpoint(self, path=None):
        """Write everything needed to resume exactly; returns the path."""
        path = path or self.checkpoint_path()
        if path is None:
            raise ValueError("no checkpoint path: set TrainerConfig.checkpoint_dir or pass path")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        arrays = {f"model.{k}": v for k, v in self.model.params.items()}
        osd = self.optimizer.state_dict()
        steps = {}
        for key, st in osd["state"].items():
            steps[key] = st["step"]
            for name, buf in st.items():
                if name != "step":
                    arrays[f"optim.{name}.{key}"] = buf
        carry_kind = None
        if self._carry is not None:
            carry = self._carry if isinstance(self._carry, tuple) else (self._carry,)
            carry_kind = len(carry)
            for i, s in enumerate(carry):
                arrays[f"carry.{i}"] = s
        state = {
            "position": dataclasses.asdict(self.pos),
            "optimizer": {"defaults": osd["defaults"], "steps": steps},
            "carry": carry_kind,
            "model_rng": self.model.rng.bit_generator.state,
            "model_config": self.model.config() if hasattr(self.model, "config") else None,
            "trainer_config": dataclasses.asdict(self.config),
            "metadata": self.metadata,
        }
        path = save_checkpoint(path, arrays, state)
        if self.on_checkpoint is not None:
            self.on_checkpoint(path)
        return path

    def load_checkpoint(self, path=None):
        """Restore a checkpoint written by :meth:`save_checkpoint` (same model architecture)."""
        path = path or self.checkpoint_path()
        arrays, state = load_checkpoint(path)
        before = ({k: v.copy() for k, v in self.model.params.items()},
                  self.optimizer.state_dict(), self.model.rng.bit_generator.state)
        try:
            self._restore(arrays, state)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError,
                OverflowError) as exc:
            # a damaged or foreign checkpoint: leave the trainer as it was, name the file
            self.model.load_state_dict(before[0])
            self.optimizer.load_state_dict(before[1])
            self.model.rng.bit_generator.state = before[2]
            raise ModelFileError(f"{path}: the checkpoint does not fit this model and "
                                 f"trainer ({type(exc).__name__}: {exc})") from None
        return state

    def _restore(self, arrays, state):
        params = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
        bad = sorted(k for k, v in arrays.items() if k.startswith(("model.", "optim."))
                     and (v.dtype.kind != "f" or not np.isfinite(v).all()))
        if bad:
            raise ValueError(f"tensor {bad[0]} is not a finite float array")
        opt_state = {key: {"step": n} for key, n in state["optimizer"]["steps"].items()}
        for k, v in arrays.items():
            if k.startswith("optim."):
                _, name, key = k.split(".", 2)
                opt_state[key][name] = v
        pos = dict(state["position"])
        pos["best_val"] = float(pos["best_val"])
        pos["run_loss"] = float(pos.get("run_loss", 0.0))  # (absent before session 10)
        pos = _Position(**pos)
        for name in ("step", "epoch", "batch", "bad_evals", "run_n"):
            check_int(getattr(pos, name), f"position.{name}", minimum=0)
        if not (isinstance(pos.history, dict) and set(pos.history) == set(_Position().history)
                and all(isinstance(v, list) for v in pos.history.values())):
            raise ValueError("position.history is not a dict of the recorded lists")
        n = state.get("carry")
        if n:
            carry = tuple(arrays[f"carry.{i}"] for i in range(check_int(n, "carry", minimum=0)))
            carry = carry if n == 2 else carry[0]
            rnn = getattr(self.model, "rnn", None)
            if hasattr(rnn, "_check_state"):  # the state must fit the batch it is carried into
                x = self._unpack(self.train_data[pos.batch % self.steps_per_epoch])[0]
                rnn._check_state(carry, np.shape(x)[1] if np.ndim(x) > 1 else 1, True)
        else:
            carry = None
        self.model.load_state_dict(params)
        self.optimizer.load_state_dict({"defaults": state["optimizer"]["defaults"],
                                        "state": opt_state})
        self.model.rng.bit_generator.state = state["model_rng"]
        self.pos = pos
        self._carry = carry

    # --------------------------------------------------------------------- fit
    def request_stop(self):
        """Ask ``fit`` to stop after the current step (e.g. from a signal handler).

        The step in progress completes, the checkpoint is written, and ``fit``
        returns with ``interrupted`` set; ``load_checkpoint`` then resumes exactly.
        A stop asked for during the last step of a ``fit`` (which ends there
        anyway) holds for the next ``fit``, which returns before any step.
        """
        self._stop = True
        self.interrupted = True

    def fit(self):
        """Train until ``epochs``/``max_steps`` are done or early stopping triggers.

        Returns
        -------
        history : dict of lists

        Raises
        ------
        TrainingError
            On a non-finite loss or gradient; the last good state is written to
            the checkpoint first (when ``checkpoint_dir`` is set).
        KeyboardInterrupt
            Re-raised after the checkpoint of the last completed step is
            written (unless it struck while the weights were being updated;
            then the checkpoint on disk is left as it was).

        Notes
        -----
        A stop requested with :meth:`request_stop` (also before ``fit``)
        ends training after the current step, writes the checkpoint and
        returns with ``interrupted`` set; this is what the command line does
        on Ctrl-C and SIGTERM.
        """
        c = self.config
        model = self.model
        self.interrupted = self._stop
        self._updating = False
        self._rng_at_step = None  # set while a step has not reached its update
        if (c.early_stopping_patience is not None
                and self.pos.bad_evals >= c.early_stopping_patience):
            return self.history  # this run already stopped early; resuming keeps it stopped
        model.train()
        bar = self._bar = self._progress_bar()
        start = time.perf_counter()
        try:
            while self.pos.step < self.total_steps and not self._stop:
                order = self._order(self.pos.epoch)
                if self.pos.batch == 0:
                    self._carry = None
                while self.pos.batch < self.steps_per_epoch and self.pos.step < self.total_steps:
                    # what a step changes besides the weights, to undo if it is cut short
                    self._rng_at_step = model.rng.bit_generator.state
                    x, target, lengths = self._unpack(self.train_data[order[self.pos.batch]])
                    self.optimizer.lr = self.lr_at(self.pos.step)
                    y, state_n = model.forward(x, self._carry if c.stateful else None,
                                               lengths=lengths)
                    loss, dy = model.loss(y, target, self._loss_mask(y, lengths))
                    if not math.isfinite(loss):
                        self._fail(f"the loss is {loss} at step {self.pos.step + 1}")
                    if not np.isfinite(dy).all():
                        self._fail(f"the gradient of the loss is not finite at step "
                                   f"{self.pos.step + 1}")
                    model.backward(dy, **self._backward_options)
                    bad = [k for k, g in model.grads.items() if not np.isfinite(g).all()]
                    if bad:
                        self._fail(f"the gradient of {bad[0]} is not finite at step "
                                   f"{self.pos.step + 1}")
                    if c.clip_grad_norm is not None:
                        optim.clip_grad_norm(model.grads, c.clip_grad_norm)
                    self._updating = True  # weights, optimizer and position change together
                    self.optimizer.step()
                    bad = [k for k, p in model.params.items() if not np.isfinite(p).all()]
                    if bad:  # the update itself overflowed: nothing good to save any more
                        raise TrainingError(
                            f"training stopped: the update of step {self.pos.step + 1} made "
                            f"{bad[0]} non-finite (is the learning rate too high?); the "
                            "checkpoint on disk, if any, is left as it was")
                    if c.stateful:
                        self._carry = state_n
                    self.pos.step += 1
                    self.pos.batch += 1
                    self.pos.run_loss += float(loss)  # a Python float: JSON keeps its bits
                    self.pos.run_n += 1
                    self._updating = False
                    self._rng_at_step = None  # the step is complete: nothing to undo
                    model.zero_grad()
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                    end_of_epoch = self.pos.batch == self.steps_per_epoch
                    due = (c.eval_every and self.pos.step % c.eval_every == 0) or (
                        end_of_epoch and not c.eval_every) or self.pos.step == self.total_steps
                    if due and not self.interrupted:  # a requested stop skips validation
                        self._record(self.pos.run_loss / max(self.pos.run_n, 1), start)
                        self.pos.run_loss, self.pos.run_n = 0.0, 0
                    if c.checkpoint_every and self.pos.step % c.checkpoint_every == 0 \
                            and self.checkpoint_path():
                        self.save_checkpoint()
                    if self._stop:
                        break
                if self.pos.batch >= self.steps_per_epoch:
                    self.pos.epoch += 1
                    self.pos.batch = 0
        except KeyboardInterrupt:
            if self.checkpoint_path() and not self._updating:
                self._undo_partial_step()
                self.save_checkpoint()
            raise
        finally:
            if bar is not None:
                bar.close()
            self._bar = None
            # a stop asked for during the last step is kept for the next fit (the estimators
            # call fit once an epoch); one that ended this fit is done
            self._stop = self._stop and self.pos.step >= self.total_steps
        # a stop requested after the last step changes nothing
        self.interrupted = self.interrupted and self.pos.step < self.total_steps
        if self.checkpoint_path():
            self.save_checkpoint()
        return self.history

    def _undo_partial_step(self):
        """Forget a step that did not reach its update: gradients, cache and its dropout draws.

        A step that completed (the interrupt struck during validation or a
        checkpoint write) is kept as it is.
        """
        self.model.zero_grad()
        self.model._cache = None
        state = getattr(self, "_rng_at_step", None)
        if state is not None:
            self.model.rng.bit_generator.state = state
            self._rng_at_step = None

    def _fail(self, what):
        """Stop on a non-finite value, keeping the last good state on disk."""
        self._undo_partial_step()
        where = ""
        if self.checkpoint_path():
            where = f"; the last good state is in {self.save_checkpoint()}"
        raise TrainingError(f"training stopped: {what}{where}")

    def _record(self, train_loss, start):
        c = self.config
        val = math.nan
        if self.val_data is not None and len(self.val_data):
            val = self.evaluate(self.val_data, c.max_eval_batches)
        h = self.history
        h["step"].append(self.pos.step)
        h["epoch"].append(self.pos.epoch)
        h["train_loss"].append(train_loss)
        h["val_loss"].append(val)
        h["lr"].append(self.optimizer.lr)
        h["time"].append(time.perf_counter() - start)
        line = f"step {self.pos.step}/{self.total_steps}  train loss {train_loss:.4f}"
        if not math.isnan(val):
            line += f"  val loss {val:.4f}"
        self._emit(line + f"  ({h['time'][-1]:.0f} s)")
        if c.early_stopping_patience is not None and not math.isnan(val):
            if val < self.pos.best_val - c.min_delta:
                self.pos.best_val, self.pos.bad_evals = val, 0
            else:
                self.pos.bad_evals += 1
                if self.pos.bad_evals >= c.early_stopping_patience:
                    self._emit(f"early stopping: no improvement in {self.pos.bad_evals} "
                               "evaluations")
                    self._stop = True
        elif not math.isnan(val):
            self.pos.best_val = min(self.pos.best_val, val)

    def _emit(self, line):
        """Send a log line, keeping the progress bar intact."""
        if self._bar is None:
            self.log(line)
            return
        with self._bar.external_write_mode():
            self.log(line)

    def _progress_bar(self):
        if not self.config.progress:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            raise ImportError("the progress bar needs tqdm: pip install 'rnnkit[cli]' "
                              "(or set TrainerConfig.progress=False)") from None
        # disable=None: no bar when stderr is not a terminal (a log file gets no \r updates)
        return tqdm(total=self.total_steps, initial=self.pos.step, unit="step",
                    dynamic_ncols=True, leave=True, disable=None)
