"""``rnnkit inspect``: PNG plots of a saved model; one-line errors with exit status 2."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit import SequenceModel
from rnnkit.cli import main
from rnnkit.data.text import builtin_corpus

TINY = ["--steps", "2", "--hidden-size", "8", "--seq-len", "8", "--batch-size", "2",
        "--no-progress", "--eval-every", "0", "--sample-length", "0"]
PNG = b"\x89PNG\r\n\x1a\n"


def run(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(result, *needles):
    code, _out, err = result
    assert code == 2, f"exit status {code}, stderr {err!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit inspect: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


@pytest.fixture(scope="module")
def char_model(tmp_path_factory):
    """A tiny character model written by ``rnnkit train`` (a GRU, so that gates are plotted)."""
    root = tmp_path_factory.mktemp("charlm")
    text = root / "input.txt"
    text.write_text(builtin_corpus()[:2000], encoding="utf-8")
    out = root / "model"
    assert main(["train", str(text), *TINY, "--cell", "gru", "--out", str(out)]) == 0
    return out


def test_inspect_char_model_writes_pngs(char_model, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="rnnkit inspect draws with matplotlib")
    capsys.readouterr()
    code, out, err = run(capsys, "inspect", char_model, "--text", "The name of",
                         "--out", tmp_path / "plots")
    assert code == 0, err
    printed = out.split()
    names = ["states.png", "gates.png", "saliency.png", "trajectories.png"]
    assert [p.rsplit("/", 1)[-1] for p in printed] == names
    for p in printed:
        with open(p, "rb") as f:
            assert f.read(8) == PNG, p


def test_inspect_defaults_to_the_training_text_and_model_folder(char_model, capsys):
    pytest.importorskip("matplotlib", reason="rnnkit inspect draws with matplotlib")
    code, out, err = run(capsys, "inspect", char_model)
    assert code == 0, err
    assert all(p.startswith(str(char_model / "inspect")) for p in out.split())


def test_inspect_feature_model_with_npy_input_and_noise(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="rnnkit inspect draws with matplotlib")
    from rnnkit.io import save_model

    model = SequenceModel(3, 5, 2, cell="lstm", num_layers=2, task="many_to_one", rng=0)
    save_model(tmp_path / "m", model)
    x = np.random.default_rng(0).standard_normal((12, 3))
    np.save(tmp_path / "x.npy", x)
    code, out, err = run(capsys, "inspect", tmp_path / "m", "--input", tmp_path / "x.npy",
                         "--out", tmp_path / "a")
    assert code == 0, err
    assert len(out.split()) == 4
    code, out, err = run(capsys, "inspect", tmp_path / "m", "--out", tmp_path / "b",
                         "--steps", "7")
    assert code == 0, err
    assert "Gaussian noise of 7 steps" in out


def test_missing_folder_is_one_line_and_exit_2(tmp_path, capsys):
    assert_usage_error(run(capsys, "inspect", tmp_path / "nowhere"), "not a model folder")



@pytest.mark.parametrize("value", ["-2", "0"])
def test_a_count_below_one_is_refused_by_the_parser(tmp_path, capsys, value):
    assert_usage_error(run(capsys, "inspect", tmp_path / "nowhere", "--steps", value),
                       "--steps", "a positive integer", value)

def test_bad_text_and_bad_input_are_one_line_errors(char_model, tmp_path, capsys):
    assert_usage_error(run(capsys, "inspect", char_model, "--text", "snow \u2603"),
                       "characters the model does not know", "\u2603")
    assert_usage_error(run(capsys, "inspect", char_model, "--input", "x.npy"),
                       "give --text, not --input")
    from rnnkit.io import save_model

    save_model(tmp_path / "m", SequenceModel(3, 4, 2, rng=0))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert_usage_error(run(capsys, "inspect", tmp_path / "m", "--input", tmp_path / "obj.npy"),
                       "without pickles")
    (tmp_path / "rand.bin").write_bytes(bytes(range(256)) * 4)  # no NumPy header at all
    assert_usage_error(run(capsys, "inspect", tmp_path / "m", "--input", tmp_path / "rand.bin"),
                       "rand.bin: not a .npy file", "numpy.save")
    np.save(tmp_path / "wrong.npy", np.zeros((5, 4)))
    assert_usage_error(run(capsys, "inspect", tmp_path / "m", "--input",
                           tmp_path / "wrong.npy"), "expected an array of shape (T, 3)",
                       "got (5, 4)")  # the shape as saved, not as reshaped


def test_help_teaches(capsys):
    code, out, _ = run(capsys, "inspect", "--help")
    assert code == 0
    assert "MODEL_DIR" in out and "--text" in out and "rnnkit[plot]" in out
