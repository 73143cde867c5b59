"""The code the README and docs show runs as written (a tour that fails teaches nothing)."""

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", (ROOT / path).read_text(encoding="utf-8"), re.DOTALL)


def test_readme_tour_runs(capsys):
    blocks = python_blocks("README.md")
    assert len(blocks) >= 2
    namespace = {}
    exec(blocks[0], namespace)  # layers: forward, backward, lengths  # noqa: S102 (running the docs is the point)
    assert namespace["lstm"].grads["weight_hh_l0"].shape == (128, 32)
    tour = blocks[1].replace("max_steps=300", "max_steps=20")  # the same code, shorter
    namespace = {}
    exec(tour, namespace)  # noqa: S102 (running the docs is the point)
    history = namespace["history"]
    assert history["step"][-1] == 20, "max_steps must set the length of the run"
    assert np.isfinite(history["val_loss"]).all()


def test_pytorch_guide_training_loop_learns():
    block = next(b for b in python_blocks("docs/pytorch.md") if "mse_loss" in b)
    namespace = {}
    exec(block.replace("range(200)", "range(60)"), namespace)  # noqa: S102 (running the docs is the point)
    assert namespace["loss"] < 0.5


@pytest.mark.parametrize("name", ["pytorch.md", "inspect.md"])
def test_docs_exist(name):
    assert (ROOT / "docs" / name).stat().st_size > 1000
