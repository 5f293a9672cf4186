"""Atomic writes and safe loads: the one way files are written and checkpoints read.

A file is written to a temporary file in the same folder, flushed and fsync'ed, then renamed over its final
name (and the folder fsync'ed), so a crash leaves either the old file or the new one, never half of one.
Checkpoints load with `torch.load(weights_only=True)`: a pickle that would run code is refused.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch

from seq2seq.errors import CheckpointError


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object],
                 check: Callable[[Path], object] | None = None) -> None:
    """Call `write(file_object)` on a temporary file beside `path`, fsync it, let `check(temporary path)` vet
    it (an exception leaves `path` as it was), and rename it into place."""
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
        if check is not None:
            check(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_lines(path: str | os.PathLike, lines: list[str]) -> None:
    """One line per entry, each ended by a newline (hypothesis files, splits)."""
    write_text(path, "".join(line + "\n" for line in lines))


def save(obj: dict, path: str | os.PathLike) -> None:
    """A torch state (checkpoint, model weights), written atomically."""
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
