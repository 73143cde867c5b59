"""Regenerate docs/benchmarks.md: the full grid of rnnkit against PyTorch in one run.

    python benchmarks/bench.py            # about an hour on 2 cores
    python benchmarks/bench.py --cells lstm --hidden-sizes 512,1024

Same options as ``rnnkit bench``; this script defaults to ``--full`` and to
writing docs/benchmarks.md and benchmarks/results.json.
"""

import os
import sys

from rnnkit.cli import main

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    argv = ["bench", "--full",
            "--markdown", os.path.join(HERE, "..", "docs", "benchmarks.md"),
            "--json", os.path.join(HERE, "results.json"), *sys.argv[1:]]
    sys.exit(main(argv))
