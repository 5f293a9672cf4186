"""Checkpoints: atomic writes, safe loads, keeping the last N, and averaging (§6.1).

A checkpoint is written to a temporary file in the same folder, flushed and fsync'ed, then renamed over
its final name, so a crash leaves either the old file or the new one, never half of one. Loads use
`torch.load(weights_only=True)`: a pickle that would run code is refused.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import torch

STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
LEFTOVER = re.compile(r"^\..+\.pt\.\w+\.tmp$")  # a temporary file of `atomic_write` that a kill left behind


class CheckpointError(Exception):
    """A checkpoint that is missing, truncated, corrupt or unsafe; the message names the file."""


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call `write(file_object)` on a temporary file beside `path`, fsync it, and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(obj: dict, path: str | os.PathLike) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def load(path: str | os.PathLike) -> dict:
    """Load a checkpoint safely onto the CPU, or raise CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad magic, or a pickle that wants to run code
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot load checkpoint {path}: {reason[:200]}") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise CheckpointError(f"{path} is not a seq2seq checkpoint (no 'model' entry)")
    return obj


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
