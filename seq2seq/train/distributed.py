"""Data-parallel training under `torchrun`, with PyTorch's DistributedDataParallel (the trainer's only
distributed code).

torchrun starts one process per device and sets RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE
(and the rendezvous address); `Group.start` joins them. Outside torchrun, or with one process, the group
is a no-op: every helper hands its input back, so single-process training runs exactly as before.

On CUDA each rank drives cuda:LOCAL_RANK and the process group is "cpu:gloo,cuda:nccl": gradients and
other device tensors go through NCCL, the host-side agreements (token counts, stop flags, RNG states,
barriers) through gloo, which keeps them off the GPU's stream (no host sync per step). On the CPU it is
gloo alone.
"""

from __future__ import annotations

import gc
import inspect
import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def local_processes() -> int:
    """Processes torchrun started on this machine (1 outside torchrun): they share its CPU cores."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def shard(n_batches: int, start: int, rank: int, world: int) -> range:
    """Rank `rank`'s batches of an epoch of `n_batches`, from position `start`: start + rank,
    start + rank + world, … in whole rounds only, so that every rank gets as many (the fewer than `world`
    batches left at the end of the epoch are skipped). Position `start + k·world` is where round k begins."""
    rounds = max(n_batches - start, 0) // world
    return range(start + rank, start + rounds * world, world)


class _Logits(nn.Module):
    """DDP synchronises what runs through its `forward`: here the trainer's `model.labelled_logits(batch)`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.labelled_logits(batch)


@dataclass
class Group:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    ddp: DistributedDataParallel | None = None

    @property
    def main(self) -> bool:
        """Rank 0 writes checkpoints, logs and results and runs validation and the test sets."""
        return self.rank == 0

    @classmethod
    def start(cls, device: torch.device) -> tuple[Group, torch.device]:
        """Join torchrun's process group; returns the group and this rank's device."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls(), device
        rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world)  # env://: torchrun's rendezvous
        return cls(rank, world, local_rank), device

    def close(self) -> None:
        """Leave the process group. The DDP wrapper holds the group: dropped first, the group's worker threads
        are joined here, not torn down at interpreter exit (where they aborted a finished run: "terminate
        called without an active exception")."""
        self.ddp = None
        if self.world > 1 and dist.is_initialized():
            gc.collect()
            dist.destroy_process_group()

    # ------------------------------------------------------------------------------------ the model

    def wrap(self, model: nn.Module):
        """The training forward: `model.labelled_logits`, under DistributedDataParallel when there are several
        ranks (it broadcasts rank 0's weights now and all-reduces the mean of the gradients in backward)."""
        if self.world == 1:
            return model.labelled_logits
        device = next(model.parameters()).device
        # The only buffers are the fixed sinusoids: no need to broadcast them before every forward
        # (newer torch names the flag `forward_sync_buffers`; older versions know only `broadcast_buffers`).
        params = inspect.signature(DistributedDataParallel).parameters
        no_buffer_sync = {"forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers": False}
        self.ddp = DistributedDataParallel(_Logits(model), device_ids=[device.index] if device.type == "cuda" else None,
                                           **no_buffer_sync)
        return self.ddp

    def accumulating(self, more_to_come: bool):
        """No gradient all-reduce for micro-batches before the last one of a step."""
        return self.ddp.no_sync() if self.ddp is not None and more_to_come else nullcontext()

    # ------------------------------------------------------------------------------- agreements

    def sum(self, *values: float) -> list:
        """Σ over the ranks of host-side numbers (token counts, FLOPs), in float64."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """Σ over the ranks of a device tensor, in place."""
        if self.world > 1:
            dist.all_reduce(t)
        return t

    def max_(self, t: torch.Tensor) -> torch.Tensor:
        """Max over the ranks of a device tensor, in place (a flag set on any rank is set on all)."""
        if self.world > 1:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t

    def any(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        t = torch.tensor([int(flag)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def main_decides(self, reason: str | None) -> str | None:
        """Rank 0's decision to stop (its wall clock, its validation), so that no rank takes a step more."""
        if self.world == 1:
            return reason
        flag = torch.tensor([int(self.main and reason is not None)])
        dist.broadcast(flag, src=0)
        if self.main:
            return reason
        return "rank 0 stopped" if flag.item() else None

    def gather(self, obj) -> list:
        """Every rank's `obj` (picklable), in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def from_main(self, obj):
        """Rank 0's `obj` on every rank; the others wait here until rank 0 gets here."""
        if self.world == 1:
            return obj
        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    @contextmanager
    def main_first(self):
        """Rank 0 runs the block first (it writes shared files: data splits, tokenizer), then the others."""
        if self.world > 1 and not self.main:
            dist.barrier()
        yield
        if self.world > 1 and self.main:
            dist.barrier()
