"""The command line: ``rnnkit train``, ``rnnkit sample`` (also ``python -m rnnkit``).

It parses, calls the library, and prints; no math here. Exit status: 0 ok,
1 failure (e.g. training diverged), 2 bad usage or bad input (one clear
line, no traceback unless ``--debug``), 130 interrupted.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import threading

from . import __version__
from ._argtypes import (
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    validation_fraction,
)
from .task_cli import TASK_EPILOG, add_task_options, task_default
from .training import CHECKPOINT_NAME

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a tool killed by the signal reports


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, unless there is none or the help already states it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, "", False) or "default" in text:
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (no usage block) and exit 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


CHECKPOINT_EVERY = 100  # steps between the text task's checkpoints (about 4 MB each)


def build_parser():
    parser = _Parser(
        prog="rnnkit",
        description="Recurrent neural networks (RNN, LSTM, GRU) on NumPy.",
        formatter_class=_Formatter,
        epilog="Run 'rnnkit COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    tr = sub.add_parser(
        "train", formatter_class=_Formatter,
        help="train a character-level language model, a forecaster or a classifier",
        description=(
            "Train a character-level recurrent language model, report the validation loss\n"
            "in nats and bits per character beside the uniform and unigram baselines, save\n"
            "the model (safetensors + JSON) and print a sample.\n\n"
            "Without FILE it trains on the Python Language Reference that ships with\n"
            "CPython (pydoc_data.topics), so it works offline on any install."),
        epilog=("examples:\n"
                "  rnnkit train                                   # built-in corpus, ~1 min\n"
                "  rnnkit train input.txt --num-layers 2 --hidden-size 512 --steps 3000\n"
                "  rnnkit train --resume runs/charlm               # after Ctrl-C or a kill\n"
                "  rnnkit sample runs/charlm --prime 'The ' --temperature 0.7\n\n"
                "Ctrl-C or SIGTERM stops after the current step, saves the model and the\n"
                "checkpoint, and exits with status 130 (143 for SIGTERM); with --task, the\n"
                "model trained so far is tested and saved.\n\n"
                + TASK_EPILOG))
    tr.add_argument("text_file", nargs="?", metavar="FILE",
                    help="UTF-8 text file to train on (default: the built-in corpus); with "
                         "--task forecast a CSV series, with --task classify an .npz or CSV "
                         "file of labelled sequences")
    tr.add_argument("--resume", metavar="DIR", default=None,
                    help="continue the run saved in DIR (its checkpoint.safetensors) exactly "
                         "where it stopped; the other options come from the checkpoint, but "
                         "--steps sets a new total (a finished run trains on) and "
                         "--sample-length, --temperature and --prime the sample at its end")
    g = tr.add_argument_group("model")
    g.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm",
                   help="recurrent cell")
    g.add_argument("--hidden-size", type=positive_int, default=task_default(256, 64),
                   help="units per recurrent layer (64 with --task forecast or classify)")
    g.add_argument("--num-layers", type=positive_int, default=1, help="stacked layers")
    g.add_argument("--nonlinearity", choices=("tanh", "relu", "sigmoid"), default="tanh",
                   help="activation of --cell rnn")
    g.add_argument("--embedding-dim", type=non_negative_int, default=64,
                   help="character embedding size; 0 feeds one-hot vectors")
    g.add_argument("--dropout", type=fraction, default=0.0,
                   help="dropout between recurrent layers (needs --num-layers > 1)")
    g = tr.add_argument_group("training")
    g.add_argument("--seq-len", type=positive_int, default=64,
                   help="characters per truncated-BPTT chunk")
    g.add_argument("--batch-size", type=positive_int, default=32,
                   help="parallel streams per batch")
    g.add_argument("--optimizer", choices=("adam", "adamw", "sgd", "rmsprop", "adagrad"),
                   default="adam", help="optimizer (torch.optim's numerics)")
    g.add_argument("--lr", type=positive_float, default=task_default(3e-3, 1e-3),
                   help="peak learning rate (0.001 with --task forecast or classify)")
    g.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                   help="learning-rate schedule (cosine decays to --lr / 10)")
    g.add_argument("--clip", type=positive_float, default=5.0,
                   help="clip the global gradient norm to this value")
    g.add_argument("--steps", type=positive_int, default=None,
                   help="optimizer steps (default: 1000 on the built-in corpus, else --epochs)")
    g.add_argument("--epochs", type=positive_int, default=1,
                   help="passes over the text when --steps is not given")
    g.add_argument("--val-fraction", type=validation_fraction, default=0.1,
                   help="the last part of the text held out for validation (at most 0.5)")
    g.add_argument("--eval-every", type=non_negative_int, default=250,
                   help="validate every N steps (0: once per epoch)")
    g.add_argument("--checkpoint-every", type=non_negative_int, default=None, metavar="N",
                   help=f"also save the checkpoint and the model every N steps, so that a "
                        f"run killed outright resumes from there (default {CHECKPOINT_EVERY}; "
                        "0: only at the end and on Ctrl-C/SIGTERM)")
    g.add_argument("--seed", type=non_negative_int, default=0,
                   help="seed of initialization, dropout and sampling")
    g.add_argument("--out", metavar="DIR",
                   default=task_default(os.path.join("runs", "charlm"),
                                        {"forecast": os.path.join("runs", "forecast"),
                                         "classify": os.path.join("runs", "classify")}),
                   help="folder for model.safetensors, config.json and the checkpoint "
                        "(runs/forecast or runs/classify with --task)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = tr.add_argument_group("sample after training")
    g.add_argument("--sample-length", type=non_negative_int, default=task_default(400, None),
                   help="characters to generate at the end (0: none)")
    g.add_argument("--temperature", type=non_negative_float, default=task_default(0.8, None),
                   help="sampling temperature (0: greedy)")
    g.add_argument("--prime", default=task_default("", None),
                   help="text the sample starts from")
    add_task_options(tr)
    tr.add_argument("--debug", action="store_true", help="show tracebacks")

    sa = sub.add_parser(
        "sample", formatter_class=_Formatter,
        help="generate text from a saved character-level model",
        description="Generate text from a model saved by 'rnnkit train'.")
    sa.add_argument("model_dir", metavar="MODEL_DIR", help="folder written by 'rnnkit train'")
    sa.add_argument("--prime", default="", help="text to start from (its characters must be "
                    "in the model's vocabulary)")
    sa.add_argument("--length", type=non_negative_int, default=500,
                    help="characters to generate")
    sa.add_argument("--temperature", type=non_negative_float, default=0.8,
                    help="softmax temperature; lower is more conservative, 0 is greedy")
    sa.add_argument("--seed", type=non_negative_int, default=None,
                    help="seed for a reproducible sample (default: random)")
    sa.add_argument("--debug", action="store_true", help="show tracebacks")
    for module in _command_modules():
        p = module.add_parser(sub, _Formatter)
        if not any(a.dest == "debug" for a in p._actions):
            p.add_argument("--debug", action="store_true", help="show tracebacks")
        p.set_defaults(_run=module.run)
    return parser


def _command_modules():
    """The modules of ``rnnkit.commands``, in name order."""
    import importlib
    import pkgutil

    from . import commands

    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__))
    return [importlib.import_module(f"{commands.__name__}.{n}") for n in names]


_STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM") if hasattr(signal, n))


class _StopOnSignal:
    """SIGINT/SIGTERM ask the trainer to stop after the current step (a second SIGINT aborts)."""

    def __init__(self):
        self.trainer = None
        self.signum = None

    def install(self, trainer):
        self.trainer = trainer
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        self.previous = {sig: signal.signal(sig, self._handle) for sig in _STOP_SIGNALS}

    def _handle(self, signum, frame):
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.signum = signum
        how = ("Ctrl-C again to abort" if signum == signal.SIGINT
               else f"{signal.Signals(signum).name} received")
        print(f"\nrnnkit: stopping after this step and saving ({how})", file=sys.stderr)
        self.trainer.request_stop()

    def restore(self):
        """Put back the handlers that were there before :meth:`install`."""
        for sig, handler in getattr(self, "previous", {}).items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self.previous = {}


def _finish_train(args, result, stopper, out_dir):
    from .charlm import sample_text

    if result.interrupted:
        code = EXIT_TERMINATED if stopper.signum == getattr(signal, "SIGTERM", None) \
            else EXIT_INTERRUPTED
        print(f"rnnkit: interrupted at step {result.steps}; model and checkpoint saved in "
              f"{out_dir}; continue with: rnnkit train --resume {out_dir}", file=sys.stderr)
        return code
    print(f"saved model to {out_dir}")
    if args.sample_length:
        # a resumed run samples with its own seed (--seed is ignored with --resume)
        seed = result.settings.seed if args.resume else args.seed
        print(f"--- sample (temperature {args.temperature}, seed {seed}) ---")
        print(sample_text(result.model, result.vocab, args.prime, args.sample_length,
                          args.temperature, seed=seed))
    return EXIT_OK


def _options_given(args, exclude=()):
    """The train options set to something other than their default, as --names."""
    defaults = vars(build_parser().parse_args(["train"]))
    return [f"--{k.replace('_', '-')}" for k, v in vars(args).items()
            if k in defaults and k not in exclude and v != defaults[k]]


def _check_resume_folder(folder):
    """A --resume that is a file, or the folder of a forecaster or classifier: said as
    such, before the checkpoint is looked for."""
    if os.path.isfile(folder):
        raise ValueError(f"--resume takes the folder of a run (rnnkit train --out); {folder} "
                         "is a file")
    from .jobs import TASK_FILE

    if os.path.isfile(os.path.join(folder, TASK_FILE)) and not os.path.exists(
            os.path.join(folder, CHECKPOINT_NAME)):
        raise ValueError(f"--resume continues character-level text runs; {folder} holds a "
                         "model of rnnkit train --task (retrain it to change it)")


def _check_out_dir(out):
    """Make sure --out can hold the model before any time is spent training."""
    from ._argtypes import make_output_folder

    make_output_folder(out, "--out", " (it will hold model.safetensors, config.json and "
                                     "checkpoint.safetensors)")
    if os.path.exists(os.path.join(out, CHECKPOINT_NAME)):
        print(f"rnnkit: {out} holds an earlier run; it will be replaced "
              f"(rnnkit train --resume {out} continues it instead)", file=sys.stderr)


def _cmd_train(args):
    from .task_cli import check_task_options, resolve_task_defaults, run_train_task

    check_task_options(args)
    resolve_task_defaults(args)
    stopper = _StopOnSignal()
    if args.task != "text":
        try:  # Ctrl-C ends the fit after the current step; the job then tests and saves
            code = run_train_task(args, trainer_hook=stopper.install)
        finally:
            stopper.restore()
        if stopper.signum is None:
            return code
        print(f"rnnkit: interrupted; the model trained so far is tested and saved in "
              f"{args.out} (rnnkit train --task {args.task} starts a new run)", file=sys.stderr)
        return EXIT_TERMINATED if stopper.signum == getattr(signal, "SIGTERM", None) \
            else EXIT_INTERRUPTED
    from .charlm import CharLMSettings, resume_char_model, train_char_model
    from .data.text import BUILTIN_CORPUS_NAME, builtin_corpus, read_text
    from .training import TrainerConfig

    if args.resume:
        _check_resume_folder(args.resume)
        ignored = _options_given(args, exclude=("resume", "text_file", "no_progress", "debug",
                                                "task", "sample_length", "temperature", "prime",
                                                "steps"))
        if ignored:
            print(f"rnnkit: --resume continues with the checkpoint's settings; ignoring "
                  f"{', '.join(ignored)}", file=sys.stderr)
        text = read_text(args.text_file) if args.text_file else None
        try:
            result = resume_char_model(args.resume, text, progress=not args.no_progress,
                                       trainer_hook=stopper.install, max_steps=args.steps)
        finally:
            stopper.restore()
        return _finish_train(args, result, stopper, args.resume)
    if args.dropout and args.num_layers == 1:
        raise ValueError("--dropout acts between recurrent layers: it needs --num-layers 2 or "
                         f"more, got --num-layers 1 with --dropout {args.dropout}")
    if args.text_file is None:
        text, source = builtin_corpus(), BUILTIN_CORPUS_NAME
        steps = args.steps or 1000
    else:
        text, source = read_text(args.text_file), os.path.abspath(args.text_file)
        steps = args.steps
    unknown = sorted(set(args.prime) - set(text))
    if unknown:  # found now, not after training
        raise ValueError(f"--prime has character(s) {', '.join(map(repr, unknown))} that the "
                         "training text does not contain, so the model cannot read them")
    _check_out_dir(args.out)  # after the input checks, before any time is spent training
    settings = CharLMSettings(
        cell=args.cell, hidden_size=args.hidden_size, num_layers=args.num_layers,
        nonlinearity=args.nonlinearity,
        embedding_dim=args.embedding_dim or None, dropout=args.dropout, seq_len=args.seq_len,
        batch_size=args.batch_size, val_fraction=args.val_fraction, seed=args.seed)
    config = TrainerConfig(
        optimizer=args.optimizer, lr=args.lr, clip_grad_norm=args.clip,
        epochs=None if steps else args.epochs,
        max_steps=steps, lr_schedule=args.schedule, min_lr=args.lr / 10,
        warmup_steps=0, eval_every=args.eval_every, max_eval_batches=None,
        checkpoint_every=(CHECKPOINT_EVERY if args.checkpoint_every is None
                          else args.checkpoint_every),
        seed=args.seed, progress=not args.no_progress)
    try:
        result = train_char_model(text, settings, config, out_dir=args.out, source=source,
                                  trainer_hook=stopper.install)
    finally:
        stopper.restore()
    return _finish_train(args, result, stopper, args.out)


def _cmd_sample(args):
    import itertools

    from .charlm import load_char_model, sample_chars

    model, vocab, _ = load_char_model(args.model_dir)
    chars = sample_chars(model, vocab, args.prime, args.temperature, seed=args.seed)
    # printed as it comes (a line, or 256 characters, at a time): a long sample shows at
    # once, needs no memory of its length, and a Ctrl-C keeps what was printed
    out = sys.stdout
    out.write(args.prime)
    for i, ch in enumerate(itertools.islice(chars, min(args.length, sys.maxsize))):
        out.write(ch)
        if ch == "\n" or i % 256 == 255:
            out.flush()
    out.write("\n")
    return EXIT_OK


def _unrecognized(parser, command, extras):
    """Exit 2 naming the unknown arguments, the closest options and the command's --help."""
    import difflib

    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    target = subparsers[0].choices.get(command, parser) if subparsers and command else parser
    options = [o for a in target._actions for o in a.option_strings if o.startswith("--")]
    close = [m for e in extras if e.startswith("--")
             for m in difflib.get_close_matches(e.split("=")[0], options, n=1)]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    target.error(f"unrecognized arguments: {' '.join(extras)}{hint}")


def _silence_stdout():
    """Point stdout at the null device, so that the interpreter's last flush of what is
    left in its buffer does not fail again on the closed pipe (Python's documented
    recipe for SIGPIPE)."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # a stdout with no file descriptor (a test's capture): nothing to silence


def _checkpoint_path(args):
    """The checkpoint file a text training run writes, or None for other commands."""
    if args.command != "train" or getattr(args, "task", "text") != "text":
        return None
    return os.path.join(args.resume or args.out, CHECKPOINT_NAME)


def _file_stamp(path):
    """What identifies one version of a file (inode, size, mtime in ns), None if absent."""
    try:
        st = os.stat(path)
    except (OSError, TypeError):
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _checkpoint_hint(args, before):
    """Where a text run aborted by a second Ctrl-C can resume from: its folder, if a
    checkpoint was written there since the command started (the trainer writes one on
    the interrupt, and every --checkpoint-every steps), else that it saved none.

    ``before`` is the checkpoint's ``_file_stamp`` when the command started: a file
    still the same is an earlier run's. (Comparing its mtime with the start time is not
    enough: file systems stamp with a coarse clock that can lag ``time.time()``.)"""
    path = _checkpoint_path(args)
    if path is None:
        return ""
    stamp = _file_stamp(path)
    resumed = getattr(args, "resume", None) and stamp is not None
    if not resumed and (stamp is None or stamp == before):
        return "; this run saved no checkpoint"
    from .io import checkpoint_step

    folder = os.path.dirname(path)
    step = checkpoint_step(path)
    at = "" if step is None else f" (step {step})"
    saved = (f"the checkpoint it resumed{at} is still" if stamp == before
             else f"the last checkpoint saved{at} is")
    return f"; {saved} in {folder}: rnnkit train --resume {folder} continues from it"


def main(argv=None):
    """Entry point; returns the exit status."""
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:  # say it as the command's parser would, with its --help
            _unrecognized(parser, args.command, extras)
    except SystemExit as exc:  # --help, --version and usage errors end here
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from .training import TrainingError

    commands = {"train": _cmd_train, "sample": _cmd_sample}
    path = _checkpoint_path(args)
    before = _file_stamp(path) if path else None
    try:
        from .cells.compiled import check_settings

        check_settings()  # a bad RNNKIT_* variable: said before any work, folder or output
        run = commands.get(args.command) or args._run
        return run(args)
    except KeyboardInterrupt:
        print(f"rnnkit: interrupted{_checkpoint_hint(args, before)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TrainingError as exc:
        if args.debug:
            raise
        print(f"rnnkit: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # the reader went away (rnnkit sample ... | head): stop quietly
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (ValueError, TypeError, OSError, ImportError) as exc:
        if args.debug:
            raise
        print(f"rnnkit {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError as exc:
        if args.debug:
            raise
        # NumPy says what it could not get ("Unable to allocate 7.5 GiB for an array with
        # shape (...)"): the size that says which option was too large
        detail = f": {exc}" if str(exc) else ""
        print(f"rnnkit {args.command}: error: out of memory{detail} (are the sizes what you "
              "meant?)", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
