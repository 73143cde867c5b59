"""The command line, called in process (``rnnkit.cli.main``) and once as ``python -m rnnkit``."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from rnnkit import optim
from rnnkit.cli import main
from rnnkit.data.text import builtin_corpus
from rnnkit.io import load_model

TINY = ["--steps", "5", "--hidden-size", "16", "--seq-len", "16", "--batch-size", "4",
        "--no-progress", "--eval-every", "0"]


def run(capsys, *argv):
    """(exit status, stdout, stderr) of ``rnnkit ARGV``; argparse's SystemExit gives the status."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(result, command, *needles):
    """Exit 2, exactly one line on stderr, 'rnnkit COMMAND: error: ...', no traceback."""
    code, _out, err = result
    assert code == 2, f"exit status {code}, stderr {err!r}"
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {err!r}"
    assert lines[0].startswith(f"rnnkit {command}: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "input.txt"
    path.write_text(builtin_corpus()[:3000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(text_file, tmp_path_factory):
    """``rnnkit train`` on the small text; returns (folder, exit status, stdout, stderr)."""
    out_dir = tmp_path_factory.mktemp("run") / "model"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["train", str(text_file), *TINY, "--out", str(out_dir),
                     "--sample-length", "60", "--seed", "3", "--prime", "The "])
    return out_dir, code, stdout.getvalue(), stderr.getvalue()


# ------------------------------------------------------------------------ train
def test_train_reports_saves_and_samples(trained):
    out_dir, code, out, err = trained
    assert code == 0, err
    assert err == ""
    assert (out_dir / "model.safetensors").is_file() and (out_dir / "config.json").is_file()
    config = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))
    results = config["metadata"]["results"]
    assert results["steps"] == 5
    m = re.search(r"^validation loss (\d+\.\d+) nats/char .*uniform (\d+\.\d+), "
                  r"unigram (\d+\.\d+) nats/char", out, re.MULTILINE)
    assert m, out
    assert float(m.group(1)) == pytest.approx(results["val_loss_nats"], abs=6e-4)
    assert float(m.group(2)) == pytest.approx(results["baselines_nats"]["uniform"], abs=6e-4)
    assert float(m.group(3)) == pytest.approx(results["baselines_nats"]["unigram"], abs=6e-4)
    assert "baselines on the validation text" in out
    assert f"saved model to {out_dir}" in out
    sample = out.split("--- sample (temperature 0.8, seed 3) ---\n", 1)[1]
    assert sample.startswith("The ") and len(sample) == len("The ") + 60 + 1  # print's newline
    assert config["model"]["hidden_size"] == 16


def test_sample_is_reproducible_and_honours_options(trained, capsys):
    out_dir = trained[0]
    first = run(capsys, "sample", out_dir, "--seed", "7", "--length", "33", "--prime", "In ")
    second = run(capsys, "sample", out_dir, "--seed", "7", "--length", "33", "--prime", "In ")
    assert first[0] == 0 and first[2] == ""
    assert first == second
    text = first[1]
    assert text.endswith("\n")
    assert text.startswith("In ") and len(text) == 3 + 33 + 1
    other = run(capsys, "sample", out_dir, "--seed", "8", "--length", "33", "--prime", "In ")
    assert other[1] != text
    code, text, _ = run(capsys, "sample", out_dir, "--seed", "1", "--length", "0", "--prime", "x")
    assert code == 0 and text == "x\n"
    code, text, _ = run(capsys, "sample", out_dir, "--seed", "1", "--length", "12")
    assert code == 0 and len(text) == 12 + 1


def test_sample_prints_as_it_goes_and_a_ctrl_c_keeps_it(trained, monkeypatch, capsys):
    """A sample is printed as it is drawn: --length 10**9 needs no memory of its length,
    and a Ctrl-C after 700 characters leaves those 700 printed (exit 130)."""
    from rnnkit import charlm

    out_dir = trained[0]
    code, expected, _ = run(capsys, "sample", out_dir, "--seed", "4", "--length", "700")
    assert code == 0
    draw = charlm.sample_chars

    def ctrl_c_after_700(*args, **kwargs):
        chars = draw(*args, **kwargs)
        yield from itertools.islice(chars, 700)
        raise KeyboardInterrupt

    # a length past what a Python index holds is just "without end" (it leaked islice's
    # "Stop argument ... must be ... <= sys.maxsize")
    seen = []

    def counted(*args, **kwargs):
        for ch in itertools.islice(draw(*args, **kwargs), 5):
            seen.append(ch)
            yield ch
        raise KeyboardInterrupt

    monkeypatch.setattr(charlm, "sample_chars", counted)
    code, text, err = run(capsys, "sample", out_dir, "--seed", "4", "--length", str(10 ** 20))
    assert code == 130 and len(seen) == 5 and "maxsize" not in err
    monkeypatch.setattr(charlm, "sample_chars", ctrl_c_after_700)
    code, text, err = run(capsys, "sample", out_dir, "--seed", "4", "--length", str(10 ** 9))
    assert code == 130 and err.strip() == "rnnkit: interrupted"
    assert text == expected[:-1]  # all 700 characters, no final newline


def test_a_reader_that_goes_away_ends_the_command_quietly(trained):
    """``rnnkit sample ... | head -c 20``: the closed pipe ends it with 141 (128 + SIGPIPE)
    and nothing on stderr, as command-line tools do (it said 'error: [Errno 32] Broken
    pipe' and exited 2)."""
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "sample", str(trained[0]),
                             "--length", "1000000", "--seed", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(proc.stdout.read(20)) == 20
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert err == ""


def test_python_dash_m_help():
    proc = subprocess.run([sys.executable, "-m", "rnnkit", "--help"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "train" in proc.stdout and "sample" in proc.stdout
    assert proc.stderr == ""


def test_no_arguments_prints_help_and_exits_2(capsys):
    code, out, err = run(capsys)
    assert code == 2
    assert "usage: rnnkit" in out and "train" in out and "sample" in out
    assert "Traceback" not in err


def test_train_help_mentions_the_defaults(capsys):
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0
    flat = " ".join(out.split())
    for option, default in [("--hidden-size", "256"), ("--seq-len", "64"),
                            ("--batch-size", "32"), ("--lr", "0.003"), ("--cell", "lstm"),
                            ("--temperature", "0.8")]:
        assert option in flat
        assert re.search(rf"{re.escape(option)} .*?\(default: {re.escape(default)}\)", flat), \
            f"{option}: default {default} not shown"


# --------------------------------------------------------------- bad input files
def bad_file(tmp_path, kind):
    path = tmp_path / f"{kind}.txt"
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 20)
    elif kind == "latin1":
        path.write_bytes(("Caf\xe9 cr\xe8me br\xfbl\xe9e. " * 100).encode("latin-1"))
    elif kind == "short":
        path.write_text("Too short to learn anything from.\n" * 5, encoding="utf-8")
    return path


@pytest.mark.parametrize("kind, needle", [
    ("missing", "not found"), ("directory", "directory"), ("empty", "empty"),
    ("binary", "binary"), ("latin1", "UTF-8"), ("short", "too short"),
])
def test_train_rejects_bad_text_files(tmp_path, capsys, kind, needle):
    path = bad_file(tmp_path, kind)
    result = run(capsys, "train", path, *TINY, "--out", tmp_path / "out")
    assert_usage_error(result, "train", needle, path.name)
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["train", str(tmp_path / "missing.txt"), "--debug"])


def test_train_rejects_a_text_too_short_for_the_batch(tmp_path, capsys, text_file):
    result = run(capsys, "train", text_file, *TINY[:6], "--seq-len", "200", "--batch-size", "64",
                 "--no-progress", "--out", tmp_path / "out")
    assert_usage_error(result, "train", "batch_size")


def test_train_rejects_bad_val_fraction(tmp_path, capsys, text_file):
    result = run(capsys, "train", text_file, *TINY, "--val-fraction", "1.5",
                 "--out", tmp_path / "out")
    assert_usage_error(result, "train", "--val-fraction")



@pytest.mark.parametrize("value", ["0", "-0.1", "0.6", "0.999", "1", "nan"])
def test_train_refuses_a_val_fraction_that_leaves_little_to_train_on(tmp_path, capsys,
                                                                     text_file, value):
    result = run(capsys, "train", text_file, *TINY, "--val-fraction", value,
                 "--out", tmp_path / "out")
    assert_usage_error(result, "train", "--val-fraction", "(0, 0.5]", value)
    assert not (tmp_path / "out").exists()


def test_resume_samples_with_the_runs_seed_and_ignores_seed(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", text_file, *TINY, "--seed", "7", "--sample-length", "0",
                       "--out", out)
    assert code == 0, err
    code, expected, _ = run(capsys, "sample", out, "--seed", "7", "--length", "40",
                            "--temperature", "0.8")
    assert code == 0
    for extra in ([], ["--seed", "5"]):
        code, stdout, err = run(capsys, "train", "--resume", out, "--no-progress",
                                "--sample-length", "40", *extra)
        assert code == 0, err
        assert ("ignoring --seed" in err) == bool(extra)
        sample = stdout.split("--- sample (temperature 0.8, seed 7) ---\n", 1)[1]
        assert sample == expected


def test_resume_of_a_file_or_of_a_task_model_says_what_it_is(text_file, tmp_path, capsys):
    assert_usage_error(run(capsys, "train", "--resume", text_file), "train",
                       "--resume takes the folder of a run", "is a file")
    (tmp_path / "forecaster").mkdir()
    (tmp_path / "forecaster" / "task.json").write_text("{}")
    assert_usage_error(run(capsys, "train", "--resume", tmp_path / "forecaster"), "train",
                       "--resume continues character-level text runs",
                       "a model of rnnkit train --task")


def test_resume_with_steps_trains_a_finished_run_on(text_file, tmp_path, capsys):
    """--steps with --resume is the new total (not an ignored option); one not past the
    steps done is a usage error that gives both numbers."""
    out = tmp_path / "run"
    steps = TINY[TINY.index("--steps") + 1]
    code, _, err = run(capsys, "train", text_file, *TINY, "--sample-length", "0", "--out", out)
    assert code == 0, err
    result = run(capsys, "train", "--resume", out, "--steps", steps, "--no-progress")
    assert_usage_error(result, "train", f"has done {steps} optimizer steps", f"got {steps}")
    more = str(int(steps) + 2)
    code, stdout, err = run(capsys, "train", "--resume", out, "--steps", more, "--no-progress",
                            "--sample-length", "0")
    assert code == 0, err
    assert "ignoring" not in err and f"step {steps}/{more}" in stdout

def test_train_rejects_a_prime_outside_the_vocabulary_before_training(text_file, tmp_path,
                                                                      capsys):
    result = run(capsys, "train", text_file, *TINY, "--prime", "€", "--out", tmp_path / "out")
    assert_usage_error(result, "train", "€")
    assert not (tmp_path / "out").exists(), "it trained and saved a model first"


# ------------------------------------------------------------ bad option values
BAD_OPTIONS = [
    (["train", "FILE", "--hidden-size", "0"], "train", "--hidden-size"),
    (["train", "FILE", "--lr", "-1"], "train", "--lr"),
    (["train", "FILE", "--temperature", "-1"], "train", "--temperature"),
    (["sample", "DIR", "--temperature", "-1"], "sample", "--temperature"),
    (["sample", "DIR", "--length", "ten"], "sample", "--length"),
]


def fill(argv, text_file, tmp_path):
    return [str(text_file) if a == "FILE" else str(tmp_path) if a == "DIR" else a for a in argv]


@pytest.mark.parametrize("argv, command, option", BAD_OPTIONS)
def test_bad_option_values_exit_2_with_an_error_line(tmp_path, capsys, text_file, argv, command,
                                                     option):
    code, out, err = run(capsys, *fill(argv, text_file, tmp_path))
    assert code == 2
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0] == err.splitlines()[-1], err
    assert errors[0].startswith(f"rnnkit {command}: error: argument {option}"), errors[0]
    assert out == ""


@pytest.mark.parametrize("argv, command, option", BAD_OPTIONS[:3])
def test_bad_option_values_give_exactly_one_line(tmp_path, capsys, text_file, argv, command,
                                                 option):
    assert_usage_error(run(capsys, *fill(argv, text_file, tmp_path)), command, option)


# ------------------------------------------------------------------- bad models
def test_sample_on_a_folder_that_is_not_a_model(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    assert_usage_error(run(capsys, "sample", tmp_path), "sample", "config.json")
    assert_usage_error(run(capsys, "sample", tmp_path / "nowhere"), "sample", "nowhere")


def test_sample_on_a_corrupted_model(trained, tmp_path, capsys):
    out_dir = trained[0]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_bytes((out_dir / "config.json").read_bytes())
    (broken / "model.safetensors").write_bytes((out_dir / "model.safetensors").read_bytes()[:-9])
    assert_usage_error(run(capsys, "sample", broken), "sample", "model.safetensors")


def test_sample_with_a_prime_outside_the_vocabulary(trained, capsys):
    result = run(capsys, "sample", trained[0], "--prime", "naïve €", "--seed", "0")
    assert_usage_error(result, "sample", "€", "vocabulary")
    assert result[1] == ""


# ---------------------------------------------------------------- Ctrl-C and resume
RESUMABLE = ["--steps", "8", "--hidden-size", "16", "--seq-len", "16", "--batch-size", "4",
             "--num-layers", "2", "--dropout", "0.3", "--eval-every", "3", "--no-progress",
             "--sample-length", "0"]


def test_ctrl_c_stops_after_the_step_and_resume_is_bit_identical(text_file, tmp_path, capsys,
                                                                 monkeypatch):
    code, _, err = run(capsys, "train", text_file, *RESUMABLE, "--out", tmp_path / "full")
    assert code == 0, err

    update, calls = optim.Adam.step, []

    def step_then_ctrl_c(self):
        update(self)
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C in step 3

    monkeypatch.setattr(optim.Adam, "step", step_then_ctrl_c)
    handler = signal.getsignal(signal.SIGINT)
    code, out, err = run(capsys, "train", text_file, *RESUMABLE, "--out", tmp_path / "run")
    assert code == 130, err
    assert "interrupted at step 3" in err and "--resume" in err and "Traceback" not in err
    assert "saved model to" not in out
    assert signal.getsignal(signal.SIGINT) is handler, "Ctrl-C handler not given back"

    monkeypatch.setattr(optim.Adam, "step", update)
    code, out, err = run(capsys, "train", "--resume", tmp_path / "run", "--no-progress")
    assert code == 0, err
    assert "resumed from" in out and "step 3/8" in out
    full, _ = load_model(tmp_path / "full")
    resumed, _ = load_model(tmp_path / "run")
    for k in full.params:
        assert np.array_equal(resumed.params[k], full.params[k]), k


def test_train_restores_the_callers_signal_handlers(text_file, tmp_path, capsys):
    def mine(signum, frame):  # pragma: no cover - never called
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        code, _, err = run(capsys, "train", text_file, *TINY, "--out", tmp_path / "m",
                           "--sample-length", "0")
        assert code == 0, err
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("argv,expected", [
    (["train", "--hidden-szie", "8"], ("rnnkit train: error: unrecognized arguments: "
                                      "--hidden-szie (did you mean --hidden-size?) "
                                      "(see 'rnnkit train --help')")),
    (["cv", "--foldz", "3"], ("rnnkit cv: error: unrecognized arguments: --foldz 3 (did you "
                              "mean --folds?) (see 'rnnkit cv --help')")),
    (["--nosuch"], "rnnkit: error: unrecognized arguments: --nosuch (see 'rnnkit --help')"),
])
def test_a_mistyped_option_names_the_command_and_the_closest_option(capsys, argv, expected):
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == expected


@pytest.mark.parametrize("name,value", [("RNNKIT_THREADED", "banana"),
                                        ("RNNKIT_COMPILED", "maybe")])
def test_a_bad_setting_is_said_before_any_work(tmp_path, capsys, text_file, monkeypatch,
                                               name, value):
    """Before the text is read or the output folder made, and with nothing printed."""
    monkeypatch.setenv(name, value)
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "train", text_file, *TINY, "--out", out_dir)
    assert code == 2 and out == ""
    assert err.startswith(f"rnnkit train: error: {name} must be") and value in err
    assert not out_dir.exists()


def test_an_aborted_run_says_where_its_checkpoint_is(tmp_path, monkeypatch, capsys):
    """A second Ctrl-C aborts the save-and-stop; the trainer still writes a checkpoint on
    the interrupt (or the last periodic one is there): the message names the folder and
    the command that resumes. An earlier run's checkpoint is not offered."""
    from rnnkit import cli

    out = tmp_path / "run"
    out.mkdir()
    ckpt = out / "checkpoint.safetensors"

    def aborted(args):
        ckpt.write_bytes(b"written by this run")
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_train", aborted)
    assert main(["train", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"the last checkpoint saved is in {out}: rnnkit train --resume {out}" in err

    os.utime(ckpt, (1, 1))  # an earlier run's file: not this run's checkpoint

    def aborted_early(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_train", aborted_early)
    assert main(["train", "--out", str(out)]) == 130
    assert capsys.readouterr().err.strip() == "rnnkit: interrupted; this run saved no checkpoint"

    # this run overwrites the earlier run's file (its own checkpoint): offered, even
    # though the file system's coarse clock may stamp it before the command's start
    monkeypatch.setattr(cli, "_cmd_train", aborted)
    assert main(["train", "--out", str(out)]) == 130
    assert f"rnnkit train --resume {out}" in capsys.readouterr().err

    # a real checkpoint's header gives the step it resumes from
    from rnnkit.io import save_checkpoint

    def aborted_at_step(args):
        save_checkpoint(ckpt, {"w": np.zeros(3, np.float32)}, {"position": {"step": 1234}})
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_train", aborted_at_step)
    assert main(["train", "--out", str(out)]) == 130
    assert (f"the last checkpoint saved (step 1234) is in {out}: rnnkit train --resume {out}"
            in capsys.readouterr().err)

    # a resumed run aborted before it saved: the checkpoint it started from still holds
    monkeypatch.setattr(cli, "_cmd_train", aborted_early)
    assert main(["train", "--resume", str(out)]) == 130
    assert (f"the checkpoint it resumed (step 1234) is still in {out}: rnnkit train --resume "
            f"{out} continues from it" in capsys.readouterr().err)


def test_checkpoint_step_reads_the_header_or_says_none(tmp_path):
    from rnnkit.io import checkpoint_step, save_checkpoint, save_state_dict

    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": np.ones(2, np.float32)}, {"position": {"step": 7}})
    assert checkpoint_step(path) == 7
    save_checkpoint(path, {"w": np.ones(2, np.float32)}, {"position": {"step": "7"}})
    assert checkpoint_step(path) is None  # not an int: nothing to tell
    save_state_dict(tmp_path / "sd.safetensors", {"w": np.ones(2, np.float32)})
    assert checkpoint_step(tmp_path / "sd.safetensors") is None  # not a checkpoint
    (tmp_path / "junk").write_bytes(b"\x00" * 5)
    assert checkpoint_step(tmp_path / "junk") is None
    assert checkpoint_step(tmp_path / "missing") is None


def test_out_of_memory_says_what_could_not_be_allocated(monkeypatch, capsys):
    """A MemoryError ends the command with NumPy's account of the allocation (its size
    and shape say which option was too large), or a plain line when it has none."""
    from rnnkit import cli

    def too_big(args):
        raise MemoryError("Unable to allocate 7.45 GiB for an array with shape "
                          "(1000000, 2000) and data type float32")

    monkeypatch.setattr(cli, "_cmd_train", too_big)
    assert main(["train"]) == cli.EXIT_FAILURE
    err = capsys.readouterr().err
    assert "out of memory: Unable to allocate 7.45 GiB" in err and "Traceback" not in err

    def bare(args):
        raise MemoryError

    monkeypatch.setattr(cli, "_cmd_train", bare)
    assert main(["train"]) == cli.EXIT_FAILURE
    assert capsys.readouterr().err.strip() == (
        "rnnkit train: error: out of memory (are the sizes what you meant?)")
