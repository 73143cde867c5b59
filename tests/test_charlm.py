"""The learning test: a small character-level LSTM on the built-in corpus beats the baselines.

The bound is set so that a model whose recurrent backward pass is broken (its
gradients zeroed every step: the LSTM weights stay at their random init, and
only the embedding and the head learn) cannot reach it with the same budget;
the second test checks exactly that.

Measured with these settings (seed 0, 250 steps of 16 x 32, Adam lr 1e-2, the
first 200,000 characters): unigram baseline 3.511 nats/char; the model
reaches 2.045; with the LSTM's gradients zeroed 2.419. The bound
``unigram - 1.25`` (2.261) sits about 0.2 nats from each.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rnnkit import charlm
from rnnkit.charlm import CharLMSettings, load_char_model, sample_text, train_char_model
from rnnkit.data.text import builtin_corpus
from rnnkit.io import ModelFileError
from rnnkit.models import SequenceModel
from rnnkit.training import TrainerConfig

MARGIN = 1.25  # nats/char below the unigram baseline
SETTINGS = CharLMSettings(cell="lstm", hidden_size=64, embedding_dim=32, seq_len=32,
                          batch_size=16, seed=0)
TRAINER = TrainerConfig(max_steps=250, lr=1e-2, eval_every=0, progress=False)


def corpus():
    return builtin_corpus()[:200_000]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("charlm")
    lines = []
    result = train_char_model(corpus(), SETTINGS, TRAINER, out_dir=str(out), log=lines.append,
                              source="builtin prefix")
    return result, out, lines


def test_learns_well_below_the_unigram_baseline(trained):
    result, out, lines = trained
    base = result.baselines
    assert base["uniform"] == pytest.approx(np.log(len(result.vocab)))
    assert base["unigram"] < base["uniform"]
    assert result.val_loss < base["unigram"] - MARGIN, (
        f"validation loss {result.val_loss:.3f} nats/char, unigram {base['unigram']:.3f}: "
        f"needs to be {MARGIN} below")
    assert result.history["step"][-1] == 250
    assert any("validation loss" in line for line in lines)
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()


class FrozenRecurrentGradients(SequenceModel):
    """A broken backward pass: the recurrent layer's gradients are zeroed every step."""

    def backward(self, dy):
        super().backward(dy)
        for name, g in self.grads.items():
            if name.startswith("rnn."):
                g.fill(0.0)


def test_bound_is_out_of_reach_with_a_broken_recurrent_backward(monkeypatch):
    monkeypatch.setattr(charlm, "SequenceModel", FrozenRecurrentGradients)
    result = train_char_model(corpus(), SETTINGS, TRAINER, log=lambda line: None)
    assert isinstance(result.model, FrozenRecurrentGradients)
    # it does learn something (bigram-like statistics through the head) ...
    assert result.val_loss < result.baselines["unigram"]
    # ... but not what BPTT through the LSTM gives
    assert result.val_loss > result.baselines["unigram"] - MARGIN, (
        f"a model with a frozen LSTM reaches {result.val_loss:.3f}: the bound is too weak")


def test_sample_text(trained):
    result, _, _ = trained
    model, vocab = result.model, result.vocab
    a = sample_text(model, vocab, prime="The ", length=120, temperature=0.8, seed=3)
    b = sample_text(model, vocab, prime="The ", length=120, temperature=0.8, seed=3)
    assert a == b
    assert a.startswith("The ") and len(a) == 4 + 120
    assert set(a) <= set(vocab.chars)
    assert a != sample_text(model, vocab, prime="The ", length=120, temperature=0.8, seed=4)
    assert len(sample_text(model, vocab, prime="", length=30, seed=0)) == 30
    assert sample_text(model, vocab, prime="if", length=0, seed=0) == "if"
    greedy = sample_text(model, vocab, prime="The ", length=40, temperature=0, seed=1)
    assert greedy == sample_text(model, vocab, prime="The ", length=40, temperature=0, seed=2)


def test_load_char_model_gives_the_same_samples(trained):
    result, out, _ = trained
    model, vocab, metadata = load_char_model(str(out))
    assert vocab == result.vocab
    assert metadata["task"] == "charlm" and metadata["source"] == "builtin prefix"
    assert metadata["results"]["steps"] == 250
    assert metadata["results"]["val_loss_nats"] == pytest.approx(result.val_loss)
    for k in result.model.params:
        assert np.array_equal(model.params[k], result.model.params[k]), k
    for temperature in (0.0, 0.7):
        assert sample_text(model, vocab, "def ", 80, temperature, seed=11) == \
            sample_text(result.model, vocab, "def ", 80, temperature, seed=11)


def test_sample_text_rejects_bad_input(trained):
    result, _, _ = trained
    assert "€" not in result.vocab.chars
    with pytest.raises(ValueError, match="€"):
        sample_text(result.model, result.vocab, prime="price in €", length=5, seed=0)
    with pytest.raises(ValueError, match="temperature"):
        sample_text(result.model, result.vocab, prime="a", length=5, temperature=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        sample_text(result.model, result.vocab, prime="a", length=5, temperature=float("nan"))


def test_load_char_model_rejects_other_models(tmp_path):
    from rnnkit.io import save_model

    save_model(tmp_path, SequenceModel(5, 4, 5, encoder="embedding", rng=0),
               metadata={"task": "other"})
    with pytest.raises(ModelFileError, match=r"not a character-level .* \(task 'other'\)"):
        load_char_model(str(tmp_path))
    save_model(tmp_path / "bare", SequenceModel(5, 4, 5, encoder="embedding", rng=0))
    with pytest.raises(ModelFileError, match="language model; rnnkit predict and rnnkit "
                                             "evaluate take forecaster and classifier"):
        load_char_model(str(tmp_path / "bare"))  # no task recorded: no "(task None)"


def test_text_too_short_for_the_batch_shape():
    with pytest.raises(ValueError, match="batch_size"):
        train_char_model("abc " * 100, CharLMSettings(hidden_size=8, batch_size=32, seq_len=64),
                         TrainerConfig(max_steps=1, progress=False), log=lambda line: None)


# ------------------------------------------------------------------------- resume
TINY = CharLMSettings(hidden_size=16, embedding_dim=8, num_layers=2, dropout=0.3, seq_len=16,
                      batch_size=4, seed=2)
TINY_TRAINER = TrainerConfig(max_steps=10, lr=1e-2, eval_every=4, progress=False)


def stop_after(step):
    """A trainer_hook that calls Trainer.request_stop() during optimizer step ``step``."""

    def hook(trainer):
        update = trainer.optimizer.step

        def step_then_maybe_stop():
            update()
            if trainer.pos.step + 1 == step:  # pos.step counts the steps finished before
                trainer.request_stop()

        trainer.optimizer.step = step_then_maybe_stop

    return hook


def interrupted_run(out_dir, step=4):
    result = train_char_model(corpus()[:3000], TINY, TINY_TRAINER, out_dir=str(out_dir),
                              log=lambda line: None, trainer_hook=stop_after(step))
    assert result.interrupted and result.steps == step
    return result


def test_resume_char_model_continues_bit_identically(tmp_path):
    full = train_char_model(corpus()[:3000], TINY, TINY_TRAINER, log=lambda line: None)
    assert not full.interrupted and full.steps == 10
    interrupted_run(tmp_path / "run")
    lines = []
    resumed = charlm.resume_char_model(str(tmp_path / "run"), corpus()[:3000],
                                       log=lines.append, progress=False)
    assert any("resumed from" in line and "step 4/10" in line for line in lines)
    assert resumed.steps == 10 and not resumed.interrupted
    for k in full.model.params:
        assert np.array_equal(resumed.model.params[k], full.model.params[k]), k
    assert resumed.val_loss == full.val_loss
    with pytest.raises(ValueError, match="vocabulary"):
        charlm.resume_char_model(str(tmp_path / "run"), "other text " * 200, log=lambda s: None)


def test_a_finished_run_trains_on_to_a_new_max_steps(tmp_path):
    """max_steps past the checkpoint's step extends a finished run; with the constant
    learning rate the result is bit for bit a run started with that limit. A limit not
    past the step done is refused, with both numbers."""
    short = dataclasses.replace(TINY_TRAINER, max_steps=6)
    done = train_char_model(corpus()[:3000], TINY, short, out_dir=str(tmp_path / "run"),
                            log=lambda line: None)
    assert done.steps == 6 and not done.interrupted
    lines = []
    again = charlm.resume_char_model(str(tmp_path / "run"), corpus()[:3000], log=lines.append,
                                     progress=False)
    assert again.steps == 6 and any("the run had finished" in line and "--steps N" in line
                                    for line in lines)
    with pytest.raises(ValueError, match="has done 6 optimizer steps.*got 6"):
        charlm.resume_char_model(str(tmp_path / "run"), corpus()[:3000], max_steps=6,
                                 log=lambda line: None, progress=False)
    lines = []
    extended = charlm.resume_char_model(str(tmp_path / "run"), corpus()[:3000], max_steps=10,
                                        log=lines.append, progress=False)
    assert any("step 6/10" in line for line in lines)
    full = train_char_model(corpus()[:3000], TINY, TINY_TRAINER, log=lambda line: None)
    assert extended.steps == full.steps == 10
    for k in full.model.params:
        assert np.array_equal(extended.model.params[k], full.model.params[k]), k


def test_resume_writes_its_checkpoint_into_the_folder_it_resumes(tmp_path):
    import shutil

    from rnnkit.io import load_checkpoint

    interrupted_run(tmp_path / "old")
    shutil.move(tmp_path / "old", tmp_path / "new")
    resumed = charlm.resume_char_model(str(tmp_path / "new"), corpus()[:3000],
                                       log=lambda line: None, progress=False)
    assert resumed.steps == 10
    _, state = load_checkpoint(tmp_path / "new" / "checkpoint.safetensors")
    assert not (tmp_path / "old").exists(), "the old folder was re-created"
    assert state["position"]["step"] == 10
