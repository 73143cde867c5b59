"""A smoke run of the benchmark so that it never rots (no time is asserted)."""

import json

import pytest

from rnnkit.benchmark import BenchConfig, format_markdown, run
from rnnkit.cli import main

pytest.importorskip("torch")
pytest.importorskip("threadpoolctl")


def tiny_config(**kw):
    base = {"cells": ("lstm", "gru", "rnn"), "batch_sizes": (2,), "lengths": (3,), "hidden_sizes": (4,),
                "input_size": 3, "threads": 1, "blocks": 2, "min_block_seconds": 0.001,
            "pause_seconds": 0.0,
                "max_seconds_per_cell": 1.0, "charlm_seconds": 0.05, "memory_hidden": 4}
    base.update(kw)
    return BenchConfig(**base)


def test_benchmark_reports_every_cell_and_extra():
    lines = []
    res = run(tiny_config(), log=lines.append)
    header = next(line for line in lines if not line.startswith("warning:"))  # a busy machine
    assert "1 thread each" in header and "ratio = rnnkit / PyTorch" in header
    assert [(r["cell"], r["B"], r["T"], r["H"]) for r in res["rows"]] == [
        ("lstm", 2, 3, 4), ("gru", 2, 3, 4), ("rnn", 2, 3, 4)]
    for r in res["rows"]:
        assert r["train_rnnkit"] > 0 and r["train_torch"] > 0
        assert r["train_ratio"] == pytest.approx(r["train_rnnkit"] / r["train_torch"])
        assert r["infer_ratio"] > 0
    assert 0 < res["gemm"]["fraction"]
    assert [m["cell"] for m in res["memory"]] == ["lstm", "gru", "rnn"]
    # a training step allocates at least the activations BPTT keeps
    assert all(m["peak_bytes"] >= m["activation_bytes"] for m in res["memory"])
    assert 0 < res["charlm"]["min_char_rnn"] < 1e8 and 0 < res["charlm"]["rnnkit_batched"] < 1e9
    md = format_markdown(res)
    for heading in ("## LSTM", "## GRU", "## RNN", "## GEMM throughput", "## Memory",
                    "## Character-level model"):
        assert heading in md
    assert len(lines) >= 3 + 1 + 3 + 1


def test_bench_command_writes_json_and_markdown(tmp_path, capsys):
    md, js = tmp_path / "b.md", tmp_path / "b.json"
    code = main(["bench", "--cells", "rnn", "--batch-sizes", "1", "--lengths", "2",
                 "--hidden-sizes", "3", "--threads", "1", "--blocks", "1",
                 "--markdown", str(md), "--json", str(js)])
    assert code == 0
    assert "| 1 | 2 | 3 |" in md.read_text()
    assert json.loads(js.read_text())["rows"][0]["cell"] == "rnn"


def test_bench_command_rejects_bad_lists(capsys):
    assert main(["bench", "--cells", "lstm,xyz"]) == 2
    assert "xyz" in capsys.readouterr().err
    assert main(["bench", "--hidden-sizes", "0"]) == 2
    for option in ("--cells", "--batch-sizes"):  # empty: an error, not the defaults
        assert main(["bench", option, ""]) == 2
        assert f"{option} takes" in capsys.readouterr().err


def test_markdown_marks_missed_targets():
    row = {"cell": "lstm", "B": 1, "T": 5, "H": 8, "train_rnnkit": 0.012, "train_torch": 0.010,
           "train_ratio": 1.2, "infer_rnnkit": 0.004, "infer_torch": 0.005, "infer_ratio": 0.8}
    fast = dict(row, B=32, train_ratio=0.9, infer_ratio=1.5)
    res = {"config": {"cells": ["lstm"], "threads": 1, "input_size": 3},
           "machine": {"cpu": "x", "cores": 2, "python": "3", "numpy": "2", "torch": "2",
                       "blas": [], "date": "today"},
           "rows": [row, fast], "gemm": None, "charlm": None,
           "memory": [{"cell": "rnn", "B": 1, "T": 2, "H": 3, "peak_bytes": 150,
                       "activation_bytes": 100, "ratio": 1.5}]}
    md = format_markdown(res)
    assert "**1.20 (miss)**" in md and "**0.90**" in md  # the training target is per cell
    assert "| 0.80 |" in md and "1.50 (miss)" not in md.split("## Memory")[0]  # B=32 infer
    assert "LSTM training step <= PyTorch's: 1 of 2 cells" in md
    assert "inference at B=1 <= PyTorch's: 1 of 1 cells" in md
    assert "| 1.50 (miss) |" in md.split("## Memory")[1]
    assert "Where the LSTM misses" in md


def test_bench_checks_its_output_files_before_the_run(tmp_path, capsys, monkeypatch):
    import rnnkit.benchmark

    def not_run(*args, **kwargs):
        raise AssertionError("the benchmark ran before the output path was checked")

    monkeypatch.setattr(rnnkit.benchmark, "run", not_run)
    assert main(["bench", "--json", str(tmp_path / "missing" / "b.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["bench", "--markdown", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("field,value,message", [
    ("blocks", 0, "blocks must be an integer >= 1"),
    ("pause_seconds", -1.0, "pause_seconds must be a finite number >= 0"),
    ("pause_seconds", float("nan"), "pause_seconds must be a finite number >= 0"),
    ("cells", ("lstm", "foo"), "cells takes lstm, gru, rnn"),
    ("batch_sizes", (0,), "batch_sizes must be integers >= 1"),
    ("threads", 0, "threads must be an integer >= 1"),
])
def test_config_refuses_settings_that_cannot_run(field, value, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**{field: value})


def test_a_single_cell_name_is_one_cell():
    assert tiny_config(cells="lstm").cells == ("lstm",)


def test_ctrl_c_keeps_the_cells_measured_so_far(tmp_path, capsys, monkeypatch):
    """A Ctrl-C in the third cell: the two measured are written beside the requested files
    (NAME.partial.EXT, so a committed full table is not overwritten) and the exit is 130."""
    import rnnkit.benchmark

    real, calls = rnnkit.benchmark._pair, []

    def pair(*args):
        calls.append(args[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(rnnkit.benchmark, "_pair", pair)
    md, js = tmp_path / "b.md", tmp_path / "b.json"
    code = main(["bench", "--cells", "rnn", "--batch-sizes", "1,2,3", "--lengths", "2",
                 "--hidden-sizes", "3", "--threads", "1", "--blocks", "1",
                 "--markdown", str(md), "--json", str(js)])
    assert code == 130
    assert not md.exists() and not js.exists()
    res = json.loads((tmp_path / "b.partial.json").read_text())
    assert res["interrupted"] and [r["B"] for r in res["rows"]] == [1, 2]
    text = (tmp_path / "b.partial.md").read_text()
    assert "**Interrupted** (Ctrl-C) after 2 cell(s)" in text and "| 2 | 2 | 3 |" in text
    assert "interrupted after 2 cell(s)" in capsys.readouterr().out


def test_cells_whose_blocks_disagree_are_marked_noisy():
    from rnnkit.benchmark import NOISY_SPREAD, _ratio_range, _row_line

    row = {"cell": "lstm", "B": 1, "T": 50, "H": 32, "train_rnnkit": 1.0, "train_torch": 1.0,
           "train_ratio": 1.0, "infer_ratio": 1.0}
    calm = _ratio_range({"rnnkit": [1.0, 1.1], "torch": [1.0, 1.0]})
    assert calm == (1.0, 1.1)
    assert "noisy" not in _row_line({**row, "train_ratio_range": calm,
                                     "infer_ratio_range": calm})
    wild = _ratio_range({"rnnkit": [1.0, 3.0 * NOISY_SPREAD], "torch": [1.0, 2.0]})
    line = _row_line({**row, "train_ratio_range": calm, "infer_ratio_range": wild})
    assert f"(noisy: block ratios infer 1.00-{1.5 * NOISY_SPREAD:.2f})" in line
    assert "train 1.00" not in line


def test_a_busy_machine_is_warned_about(monkeypatch):
    import os

    lines = []
    monkeypatch.setattr(os, "getloadavg", lambda: (4.0 * (os.cpu_count() or 1), 0, 0))
    res = run(tiny_config(cells=("rnn",), gemm=False, memory=False, charlm=False),
              log=lines.append)
    assert lines[0].startswith("warning: the machine is busy (load average")
    lo, hi = res["rows"][0]["train_ratio_range"]
    assert 0 < lo <= hi
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0, 0))
    lines.clear()
    run(tiny_config(cells=("rnn",), gemm=False, memory=False, charlm=False), log=lines.append)
    assert not lines[0].startswith("warning")
