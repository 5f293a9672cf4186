"""`seq2seq average`: the element-wise mean of checkpoints (paper §6.1)."""

from __future__ import annotations

from pathlib import Path

from seq2seq.errors import UserError
from seq2seq.train import checkpoint


def add_arguments(p) -> None:
    p.add_argument("checkpoints", nargs="*", type=Path, help="checkpoint files to average")
    p.add_argument("--run", type=Path, help="a run directory: average its last --last step checkpoints")
    p.add_argument("--last", type=int, default=5, help="with --run: how many of the last checkpoints (default 5)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output file (a checkpoint with the averaged weights)")


def run(args) -> None:
    paths = list(args.checkpoints)
    if args.run:
        paths += checkpoint.list_steps(args.run / "checkpoints")[-args.last:]
    if not paths:
        raise UserError("nothing to average: give checkpoint files or --run DIR")
    checkpoint.save({"model": checkpoint.average(paths)}, args.out)
    print(f"averaged {len(paths)} checkpoints -> {args.out}")
