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
                "max_seconds_per_cell": 1.0, "charlm_seconds": 0.05, "memory_hidden": 4}
    base.update(kw)
    return BenchConfig(**base)


def test_benchmark_reports_every_cell_and_extra():
    lines = []
    res = run(tiny_config(), log=lines.append)
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
