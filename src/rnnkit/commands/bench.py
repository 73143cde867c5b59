"""``rnnkit bench``: time rnnkit against PyTorch side by side (see ``rnnkit.benchmark``)."""

from __future__ import annotations

import json
import os

NAME = "bench"


def _ints(text, option):
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise ValueError(f"{option} takes comma-separated positive integers, got {text!r}")
    return values


def add_parser(subparsers, formatter_class):
    p = subparsers.add_parser(
        NAME, formatter_class=formatter_class,
        help="time training and inference steps against PyTorch in the same run",
        description=(
            "Time a training step (forward, MSE loss, backward) and inference of rnnkit's\n"
            "layers against torch.nn.LSTM/GRU/RNN in the same process, threads matched,\n"
            "float32, and print the ratio rnnkit/PyTorch per shape (below 1: rnnkit is\n"
            "faster). Needs torch==2.13.0. The default is a quick subset; --full runs the\n"
            "documented grid (about an hour on 2 cores) and can write docs/benchmarks.md."))
    p.add_argument("--full", action="store_true",
                   help="the whole grid: B 1,32,128 x T 50,200 x H 32,128,512,1024 x 3 cells")
    p.add_argument("--cells", default=None, help="comma-separated subset of lstm,gru,rnn")
    p.add_argument("--batch-sizes", default=None, help="e.g. 1,32,128")
    p.add_argument("--lengths", default=None, help="e.g. 50,200")
    p.add_argument("--hidden-sizes", default=None, help="e.g. 32,128,512,1024")
    p.add_argument("--threads", type=int, default=None, help="threads on both sides "
                   "(default: all cores)")
    p.add_argument("--blocks", type=int, default=None, help="alternating timing blocks")
    p.add_argument("--markdown", metavar="FILE", default=None,
                   help="write the tables as Markdown to FILE")
    p.add_argument("--json", metavar="FILE", default=None, help="write the raw results as JSON")
    return p


def config_from_args(args):
    from ..benchmark import BenchConfig

    if args.full:
        cfg = BenchConfig()
    else:  # a quick look: small shapes, short blocks, no extras
        cfg = BenchConfig(cells=("lstm", "gru"), batch_sizes=(1, 32), lengths=(50,),
                          hidden_sizes=(32, 128), blocks=3, min_block_seconds=0.05,
                          pause_seconds=0.1,
                          gemm=False, memory=False, charlm=False)
    if args.cells is not None:
        cells = tuple(c.strip() for c in args.cells.split(","))
        bad = [c for c in cells if c not in ("lstm", "gru", "rnn")]
        if bad:
            raise ValueError(f"--cells takes lstm, gru, rnn; got {args.cells!r}")
        cfg.cells = cells
    if args.batch_sizes is not None:
        cfg.batch_sizes = _ints(args.batch_sizes, "--batch-sizes")
    if args.lengths is not None:
        cfg.lengths = _ints(args.lengths, "--lengths")
    if args.hidden_sizes is not None:
        cfg.hidden_sizes = _ints(args.hidden_sizes, "--hidden-sizes")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        cfg.threads = args.threads
    if args.blocks is not None:
        if args.blocks < 1:
            raise ValueError(f"--blocks must be >= 1, got {args.blocks}")
        cfg.blocks = args.blocks
    return cfg


def run(args):
    from .._argtypes import check_output_file
    from ..benchmark import format_markdown
    from ..benchmark import run as run_benchmark

    cfg = config_from_args(args)
    for option, path in (("--markdown", args.markdown), ("--json", args.json)):
        if path:
            check_output_file(path, option)  # before the run, not after it
    results = run_benchmark(cfg)
    interrupted = results.get("interrupted", False)
    for path, write in ((args.markdown, lambda f: f.write(format_markdown(results) + "\n")),
                        (args.json, lambda f: json.dump(results, f, indent=1))):
        if path:
            if interrupted:  # the cells measured so far, beside (not over) a full table
                root, ext = os.path.splitext(path)
                path = f"{root}.partial{ext}"
            with open(path, "w", encoding="utf-8") as f:
                write(f)
            print(f"wrote {path}")
    if interrupted:
        from ..cli import EXIT_INTERRUPTED

        return EXIT_INTERRUPTED
    return 0
