"""``kill -9`` while saving: the model folder and the checkpoint are always the old or the new.

A child process saves a model folder and a checkpoint in a loop, alternating
two different contents (A and B); it is killed with SIGKILL at random moments,
many times. After every kill, what is on disk must load and equal A or B
exactly -- never a mix, a half-written file or an error.

The child's ``os.fsync`` also sleeps 3 ms, as a slow disk would, so that most
of the loop's time is spent inside saves on any file system (tmpfs included).
The test checks that kills land there by the temporary files they leave
behind: a stray ``.model.safetensors.*.tmp``, ``.config.json.*.tmp`` or
``.checkpoint.safetensors.*.tmp`` is a write that the kill cut short. Those
files stay (nothing can clean up after a kill -9; at most two per kill); the
loaders never read them as the model, so they do not break loading. A kill
between the renames of the weights and of the config is recovered from the
config's temporary file (``rnnkit.io.load_model`` takes it when its checksum
names the weights on disk).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from rnnkit.io import load_checkpoint, load_model

pytest.importorskip("safetensors")

KILLS = 40
SAVER = textwrap.dedent("""
    import os
    import sys
    import time

    from rnnkit import SequenceModel
    from rnnkit.io import save_checkpoint, save_model

    real_fsync = os.fsync

    def slow_fsync(fd):  # a slow disk: widens the window between a write and its rename
        real_fsync(fd)
        time.sleep(0.003)

    os.fsync = slow_fsync
    folder, ckpt = sys.argv[1], sys.argv[2]
    models = [SequenceModel(60, 128, 60, encoder="embedding", num_layers=2, rng=seed)
              for seed in (1, 2)]
    states = [{"which": 0}, {"which": 1, "padding": "x" * 1000}]  # headers of other lengths
    print("ready", flush=True)
    i = 0
    while True:
        which = i % 2
        save_model(folder, models[which], metadata={"which": which})
        save_checkpoint(ckpt, models[which].params, states[which])
        i += 1
""")


def contents():
    """The two contents the child alternates, built the same way here."""
    from rnnkit import SequenceModel

    return [SequenceModel(60, 128, 60, encoder="embedding", num_layers=2, rng=seed).params
            for seed in (1, 2)]


def temp_files(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


def test_sigkill_during_saves_never_leaves_a_broken_file(tmp_path):
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    folder, ckpt = tmp_path / "model", tmp_path / "ckpt" / "checkpoint.safetensors"
    ckpt.parent.mkdir()
    expected = contents()
    seen = {0: 0, 1: 0}
    mid_save = 0  # kills that cut a write short (a new temporary file)
    window = 0  # kills between the weights' rename and the config's
    strays_before = 0
    chooser = random.Random(6)
    started = time.perf_counter()
    for kill in range(KILLS):
        proc = subprocess.Popen([sys.executable, str(script), str(folder), str(ckpt)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
            # the first round lets a full save happen, so that there is a file to keep
            time.sleep(0.6 if kill == 0 else chooser.uniform(0.0, 0.15))
        finally:
            proc.kill()  # SIGKILL
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        assert proc.returncode == -9
        before = set(temp_files(folder)) | set(temp_files(ckpt.parent))
        weights = (folder / "model.safetensors").read_bytes()
        config = json.loads((folder / "config.json").read_text())
        window += config["weights_sha256"] != hashlib.sha256(weights).hexdigest()

        model, meta = load_model(folder)
        which = meta["which"]
        for k, v in expected[which].items():
            assert np.array_equal(model.params[k], v), f"kill {kill}: model {k} is a mix"
        arrays, state = load_checkpoint(ckpt)
        assert arrays.keys() == expected[state["which"]].keys()
        for k, v in expected[state["which"]].items():
            assert np.array_equal(arrays[k], v), f"kill {kill}: checkpoint {k} is a mix"
        seen[which] += 1
        mid_save += len(before) > strays_before
        strays_before = len(before)
    elapsed = time.perf_counter() - started
    strays = temp_files(folder) + temp_files(ckpt.parent)
    print(f"\n{KILLS} kills in {elapsed:.1f} s: contents seen {seen}, {mid_save} kills inside a "
          f"write, {window} between the two renames of a model folder, {len(strays)} "
          "temporary files left")
    assert seen[0] and seen[1], f"the saves did not alternate: {seen}"
    assert mid_save >= 3, "the kills never cut a write short: the test proves nothing here"
    assert all(n.startswith((".model.safetensors.", ".config.json.", ".checkpoint.safetensors."))
               for n in strays), strays
    assert len(strays) <= 2 * KILLS


def test_a_save_killed_between_its_two_renames_loads_as_the_new_model(tmp_path):
    """The window the kills above hit now and then, built on purpose.

    save_model writes both files to temporary names, renames the weights, then
    the config. Killed in between, the folder holds the new weights, the old
    config.json and the new config under ``.config.json.<random>.tmp``.
    """
    from rnnkit import SequenceModel
    from rnnkit.io import ModelFileError, save_model

    old, new = (SequenceModel(5, 4, 5, encoder="embedding", rng=s) for s in (1, 2))
    folder, other = tmp_path / "model", tmp_path / "other"
    save_model(folder, old, metadata={"which": "old"})
    save_model(other, new, metadata={"which": "new"})
    (folder / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(ModelFileError, match="checksum"):  # no pending config: refused
        load_model(folder)
    stale = json.loads((folder / "config.json").read_text())  # a config of other weights
    (folder / ".config.json.stale.tmp").write_text(json.dumps(stale))
    (folder / ".config.json.partial.tmp").write_text((other / "config.json").read_text()[:40])
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(folder)
    (folder / ".config.json.x7k2q.tmp").write_text((other / "config.json").read_text())
    model, meta = load_model(folder)
    assert meta == {"which": "new"}
    for k, v in new.params.items():
        assert np.array_equal(model.params[k], v), k
