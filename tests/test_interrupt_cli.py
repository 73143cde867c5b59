"""Interrupting ``rnnkit train`` for real: signals, resume bit for bit, non-finite stops.

A tiny character model trains in a subprocess (``python -m rnnkit train``).
SIGINT and SIGTERM are sent at several moments, each inside an epoch, while
the trainer is running; each must end with status 130 (SIGINT) or 143
(SIGTERM) and a message saying where the checkpoint is, and
``rnnkit train --resume DIR`` must finish with final weights bit-identical to
an uninterrupted run with the same seed (every tensor of model.safetensors
and of the checkpoint, optimizer moments included).

Then non-finite values: an absurd learning rate through the command line,
and, through the Python API, a NaN loss at a chosen step (the run stops
naming the step, the checkpoint on disk is the last good state, loadable and
finite, and resuming from it gives the uninterrupted result) and an update
that overflows the weights (the stop names the step and the parameter and
leaves the last checkpoint on disk untouched).
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from rnnkit import SequenceModel, Trainer, TrainerConfig, TrainingError
from rnnkit.charlm import CharLMSettings, resume_char_model, train_char_model
from rnnkit.data.text import builtin_corpus
from rnnkit.io import load_checkpoint, load_model

st_numpy = pytest.importorskip("safetensors.numpy")

STEPS = 1000  # long enough that a slow reader still signals well before the end
EPOCH = 85  # batches per epoch of the text below with --batch-size 4 --seq-len 16
ARGS = ["--hidden-size", "16", "--embedding-dim", "8", "--seq-len", "16", "--batch-size", "4",
        "--steps", str(STEPS), "--eval-every", "25", "--seed", "3", "--no-progress",
        "--sample-length", "0"]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "input.txt"
    path.write_text(builtin_corpus()[:6000], encoding="utf-8")
    return path


def start(argv, cwd):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "rnnkit", "train", *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_line(proc, pattern, timeout=60):
    """Read stdout until a line matches ``pattern``; returns the lines read."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    lines, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(deadline - time.monotonic(), 0.01)):
                continue
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"the run ended before {pattern!r}: {''.join(lines)}"
                                     f"{proc.stderr.read()}")
            lines.append(line)
            if re.search(pattern, line):
                return lines
    finally:
        sel.close()
    proc.kill()
    raise AssertionError(f"no line {pattern!r} within {timeout} s: {''.join(lines)}")


def finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def arrays(path):
    return st_numpy.load_file(os.fspath(path))


def assert_same_bits(a, b, what):
    assert a.keys() == b.keys(), what
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), f"{what}: {k} differs"


@pytest.fixture(scope="module")
def reference(text_file, tmp_path_factory):
    """An uninterrupted run: its model and checkpoint tensors."""
    out = tmp_path_factory.mktemp("reference") / "run"
    code, _stdout, stderr = finish(start([str(text_file), *ARGS, "--out", str(out)], out.parent))
    assert code == 0, stderr
    return arrays(out / "model.safetensors"), arrays(out / "checkpoint.safetensors")


def interrupt(proc, after_step, sig, out):
    """Send ``sig`` once the log line of step ``after_step`` is out; check the exit and message."""
    wait_for_line(proc, rf"^step {after_step}/{STEPS} ")
    proc.send_signal(sig)
    code, _stdout, stderr = finish(proc)
    assert code == (130 if sig == signal.SIGINT else 143), stderr
    m = re.search(r"interrupted at step (\d+); model and checkpoint saved in (.+?); "
                  r"continue with: rnnkit train --resume (\S+)", stderr)
    assert m, f"no message saying where the checkpoint is: {stderr}"
    # Ctrl-C can abort the save with a second one; SIGTERM is named, not called Ctrl-C
    said = "Ctrl-C again to abort" if sig == signal.SIGINT else "SIGTERM received"
    assert f"stopping after this step and saving ({said})" in stderr, stderr
    step = int(m.group(1))
    assert m.group(2) == str(out) and m.group(3) == str(out)
    assert after_step <= step < STEPS
    _, state = load_checkpoint(out / "checkpoint.safetensors")
    assert state["position"]["step"] == step
    return step


def test_sigint_and_sigterm_then_resume_is_bit_identical(text_file, tmp_path, reference):
    out = tmp_path / "run"
    # 1) Ctrl-C during the first epoch
    first = interrupt(start([str(text_file), *ARGS, "--out", str(out)], tmp_path), 50,
                      signal.SIGINT, out)
    # 2) resume, then SIGTERM during the fourth epoch
    resumed = start(["--resume", str(out), "--no-progress", "--sample-length", "0"], tmp_path)
    lines = wait_for_line(resumed, r"^resumed from ")
    assert f"at step {first}/{STEPS}" in lines[-1]
    second = interrupt(resumed, 300, signal.SIGTERM, out)
    # 3) Ctrl-C again, in the seventh epoch
    third = interrupt(start(["--resume", str(out), "--no-progress", "--sample-length", "0"],
                            tmp_path), 550, signal.SIGINT, out)
    steps = (first, second, third)
    assert any(s % EPOCH for s in steps), f"no stop inside an epoch: {steps}"
    # 4) resume to the end
    code, stdout, stderr = finish(start(["--resume", str(out), "--no-progress",
                                         "--sample-length", "0"], tmp_path))
    assert code == 0, stderr
    assert f"resumed from {out / 'checkpoint.safetensors'} at step {third}/{STEPS}" in stdout
    model_ref, ckpt_ref = reference
    assert_same_bits(arrays(out / "model.safetensors"), model_ref,
                     f"model after stops at steps {steps}")
    assert_same_bits(arrays(out / "checkpoint.safetensors"), ckpt_ref,
                     f"checkpoint after stops at steps {steps}")


def test_a_killed_run_resumes_from_its_last_periodic_checkpoint(text_file, tmp_path,
                                                                 reference):
    """SIGKILL leaves no time to save: the checkpoint of every --checkpoint-every steps is
    what survives, and the run resumed from it ends bit for bit as the uninterrupted one."""
    out = tmp_path / "run"
    proc = start([str(text_file), *ARGS, "--checkpoint-every", "40", "--out", str(out)],
                 tmp_path)
    wait_for_line(proc, rf"^step 150/{STEPS} ")
    proc.kill()
    proc.communicate(timeout=60)
    ckpt, state = load_checkpoint(out / "checkpoint.safetensors")
    step = state["position"]["step"]
    assert step % 40 == 0 and 120 <= step < STEPS
    # the model files follow the checkpoint: the killed run's model is there to use
    model = arrays(out / "model.safetensors")
    assert_same_bits(model, {k[len("model."):]: v for k, v in ckpt.items()
                             if k.startswith("model.")}, "model files and checkpoint")
    sample = subprocess.run([sys.executable, "-m", "rnnkit", "sample", str(out), "--length",
                             "20"], check=False, capture_output=True, text=True, timeout=60)
    assert sample.returncode == 0 and len(sample.stdout) >= 20, sample.stderr
    code, stdout, stderr = finish(start(["--resume", str(out), "--no-progress",
                                         "--sample-length", "0"], tmp_path))
    assert code == 0, stderr
    assert f"at step {step}/{STEPS}" in stdout
    model_ref, ckpt_ref = reference
    assert_same_bits(arrays(out / "model.safetensors"), model_ref, f"model after a kill at {step}")
    assert_same_bits(arrays(out / "checkpoint.safetensors"), ckpt_ref, "final checkpoint")


def test_an_absurd_learning_rate_stops_with_the_step_and_a_good_checkpoint(text_file,
                                                                           tmp_path):
    out = tmp_path / "run"
    code, _stdout, stderr = finish(start(
        [str(text_file), *ARGS, "--optimizer", "sgd", "--lr", "3e38", "--out", str(out)],
        tmp_path))
    assert code == 1, stderr
    line = stderr.strip().splitlines()[-1]
    m = re.search(r"training stopped: (the loss is (nan|inf|-inf)|the gradient of (\S+) is "
                  r"not finite|the update of step \d+ made (\S+) non-finite)", line)
    assert m and re.search(r"step (\d+)", line), line
    if "last good state is in" in line:
        path = line.rsplit("last good state is in ", 1)[1]
        assert path == str(out / "checkpoint.safetensors")
        ckpt, state = load_checkpoint(path)
        assert state["position"]["step"] == int(re.search(r"at step (\d+)", line).group(1)) - 1
        assert all(np.isfinite(v).all() for v in ckpt.values())
        model, _ = load_model(out)  # refuses non-finite tensors
        assert all(np.isfinite(v).all() for v in model.params.values())
    else:  # an update overflowed: nothing broken may have been written
        assert not (out / "model.safetensors").exists()


# ------------------------------------------------------------- the Python API
TINY = CharLMSettings(cell="gru", hidden_size=12, embedding_dim=6, seq_len=12, batch_size=4,
                      seed=1)
TINY_TRAINER = TrainerConfig(max_steps=30, lr=1e-2, eval_every=10, progress=False)


def nan_loss_at(step):
    """A trainer_hook: the loss of optimizer step ``step`` (1-based) is NaN."""

    def hook(trainer):
        loss = trainer.model.loss

        def patched(y, target, mask=None):
            value, d = loss(y, target, mask)
            if trainer.model.training and trainer.pos.step + 1 == step:
                value = float("nan")
            return value, d

        trainer.model.loss = patched

    return hook


def test_nan_loss_keeps_the_last_good_checkpoint_and_resume_finishes_exactly(tmp_path):
    text = builtin_corpus()[:4000]
    full = train_char_model(text, TINY, TINY_TRAINER, log=lambda line: None)
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"the loss is nan at step 17; the last good state "
                                            r"is in ") as info:
        train_char_model(text, TINY, TINY_TRAINER, out_dir=str(out), log=lambda line: None,
                         trainer_hook=nan_loss_at(17))
    assert str(out / "checkpoint.safetensors") in str(info.value)
    ckpt, state = load_checkpoint(out / "checkpoint.safetensors")
    assert state["position"]["step"] == 16
    assert all(np.isfinite(v).all() for v in ckpt.values())
    model, _ = load_model(out)  # the model of step 16 was saved too
    assert all(np.isfinite(v).all() for v in model.params.values())
    resumed = resume_char_model(str(out), text, log=lambda line: None, progress=False)
    assert resumed.steps == 30
    for k, v in full.model.params.items():
        assert np.array_equal(resumed.model.params[k], v), f"{k} after a NaN stop and resume"


class BlowUpAt(SequenceModel):
    """A gradient that is finite but so large that the SGD update overflows float32."""

    def __init__(self, *args, at, **kwargs):
        super().__init__(*args, **kwargs)
        self.at, self.calls = at, 0

    def backward(self, dy):
        out = super().backward(dy)
        self.calls += 1
        if self.calls == self.at:
            self.grads["head.weight"][0, 0] = np.float32(3e38)
        return out


def test_an_overflowing_update_names_the_step_and_keeps_the_checkpoint_on_disk(tmp_path):
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, 5, (6, 3)), rng.integers(0, 5, (6, 3))) for _ in range(4)]
    model = BlowUpAt(5, 8, 5, encoder="embedding", rng=2, at=5)
    config = TrainerConfig(optimizer="sgd", lr=10.0, clip_grad_norm=None, epochs=2,
                           max_steps=8, checkpoint_every=2, progress=False,
                           checkpoint_dir=str(tmp_path))
    trainer = Trainer(model, config, batches)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the overflow itself warns
        with pytest.raises(TrainingError, match=r"the update of step 5 made head\.weight "
                                                r"non-finite"):
            trainer.fit()
    ckpt, state = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert state["position"]["step"] == 4, "the last checkpoint on disk was overwritten"
    assert all(np.isfinite(v).all() for v in ckpt.values())


def test_ctrl_c_during_a_task_fit_tests_and_saves_the_model_so_far(tmp_path):
    """--task classify: Ctrl-C ends the fit after the current step; the job still tests the
    model, saves it and its plots' data, and exits 130 saying so."""
    pytest.importorskip("sklearn")
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnkit", "train", "--task", "classify", "--data", "digits",
         "--max-iter", "100000", "--tol", "0", "--no-plots", "--out", str(out)],
        cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    wait_for_line(proc, r"^Iteration 3, loss")
    proc.send_signal(signal.SIGINT)
    code, stdout, stderr = finish(proc)
    assert code == 130, stderr
    assert f"interrupted; the model trained so far is tested and saved in {out}" in stderr
    assert "test accuracy" in stdout and f"saved model to {out}" in stdout
    epochs = int(re.search(r"trained (\d+) epochs", stdout).group(1))
    assert 3 <= epochs < 100000
    from rnnkit.estimators import load_estimator

    est = load_estimator(out)
    assert est.n_iter_ == epochs and est.predict(np.zeros((2, 8, 8))).shape == (2,)


def test_a_stop_asked_for_in_the_last_step_of_a_fit_ends_the_next_fit():
    """The estimators call Trainer.fit once an epoch: a request_stop that arrives during an
    epoch's last step must not be lost (the next fit stops before any step)."""
    from rnnkit.data.sequences import SequenceBatches

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 8, 3)).astype(np.float32)
    y = rng.integers(0, 2, 8)
    model = SequenceModel(3, 4, 2, task="many_to_one", rng=0)
    batches = SequenceBatches(x, y, np.full(8, 5), batch_size=4, shuffle=False)
    trainer = Trainer(model, TrainerConfig(epochs=1, progress=False), batches)
    step = model.backward

    def stop_in_last_step(*args, **kwargs):
        if trainer.pos.step + 1 == trainer.total_steps:
            trainer.request_stop()
        return step(*args, **kwargs)

    model.backward = stop_in_last_step
    trainer.fit()
    assert trainer.pos.step == 2 and not trainer.interrupted  # the epoch was over anyway
    model.backward = step
    trainer.config = TrainerConfig(epochs=2, progress=False)
    trainer.fit()
    assert trainer.interrupted and trainer.pos.step == 2
