"""Helpers shared by the argparse commands."""

from __future__ import annotations

from pathlib import Path

from seq2seq.cli import UserError


def default_model_dir(outputs: Path = Path("outputs")) -> Path:
    """The `model/` of the most recently finished `make train` run (the newest results.json)."""
    finished = sorted(outputs.glob("*/results.json"), key=lambda p: p.stat().st_mtime) if outputs.is_dir() else []
    finished = [p.parent / "model" for p in finished if (p.parent / "model" / "model.pt").is_file()]
    if not finished:
        raise UserError(f"no trained model found under {outputs}/; train one with `make train` or pass --model DIR")
    return finished[-1]
