"""Checkpoints of a run: step files, the newest that loads, keeping the last N, and averaging (§6.1).

Written and read through seq2seq/io.py: atomic writes (a crash leaves the old file or the new one, never
half of one) and `torch.load(weights_only=True)` (a pickle that would run code is refused).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from seq2seq.errors import CheckpointError
from seq2seq.io import load
from seq2seq.io import save as save  # a run's checkpoints are written through io, like every file

STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
LEFTOVER = re.compile(r"^\..+\.pt\.\w+\.tmp$")  # a temporary file of io.atomic_write that a kill left behind


def step_path(directory: str | os.PathLike, step: int) -> Path:
    return Path(directory) / f"step_{step:08d}.pt"


def list_steps(directory: str | os.PathLike) -> list[Path]:
    """Step checkpoints in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_loadable(directory: str | os.PathLike, warn=print) -> dict | None:
    """The newest step checkpoint that loads; corrupt ones are reported and skipped."""
    for path in reversed(list_steps(directory)):
        try:
            return load(path)
        except CheckpointError as e:
            warn(f"warning: {e}; trying the previous checkpoint")
    return None


def prune(directory: str | os.PathLike, keep_last: int) -> None:
    """Keep the last `keep_last` step checkpoints, and delete the temporary files of writes a kill interrupted
    (called by the only writer, after a write, so none is in progress)."""
    for path in list_steps(directory)[:-keep_last] if keep_last > 0 else []:
        path.unlink(missing_ok=True)
    for path in Path(directory).iterdir():
        if LEFTOVER.match(path.name):
            path.unlink(missing_ok=True)


def average(paths: list[str | os.PathLike]) -> dict[str, torch.Tensor]:
    """§6.1: the element-wise mean of the models' parameters (running sum in float64)."""
    if not paths:
        raise CheckpointError("no checkpoints to average")
    total: dict[str, torch.Tensor] = {}
    for path in paths:
        state = load(path)["model"]
        if total and state.keys() != total.keys():
            raise CheckpointError(f"{path} does not have the same parameters as {paths[0]}")
        for key, value in state.items():
            total[key] = total.get(key, 0) + value.double() if value.is_floating_point() else value
    return {k: (v / len(paths)).float() if v.is_floating_point() else v for k, v in total.items()}
