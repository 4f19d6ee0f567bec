"""Training on several processes with ``torchrun``: DistributedDataParallel, on one machine or several.

    torchrun --nproc_per_node 2 -m emo.train runs/ddp --data fer2013          # 2 processes here
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 4 --rdzv_backend c10d \\
        --rdzv_endpoint HOST:29500 -m emo.train runs/ddp                       # and --node_rank 1 on the other

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; :class:`emo.trainer.Trainer` reads them through
:func:`world`. Each process trains ``batch_size`` faces a step on its own shard of every epoch
(``torch.utils.data.DistributedSampler``), DDP averages the gradients, validation is summed over the processes,
and only the first process (rank 0) writes checkpoints and logs. The backend is NCCL on CUDA, gloo on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """Where this process stands among those ``torchrun`` started (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        """True for the one process that writes checkpoints, logs and the console."""
        return self.rank == 0


def launched() -> World:
    """What ``torchrun`` set in this process's environment (rank 0 of 1 without it), before any group is joined."""
    env = os.environ
    return World(int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_RANK", "0")))


def world(device: str) -> tuple[World, str]:
    """This process's :class:`World` and the device it trains on (``cuda:LOCAL_RANK`` under torchrun on CUDA).

    Joins the process group ``torchrun`` describes in the environment (where none is joined yet); without
    ``torchrun`` (no ``WORLD_SIZE`` above 1) nothing is joined and the run is the usual single process."""
    env = launched()
    if env.size <= 1 and not dist.is_initialized():
        return World(), device
    if device.startswith("cuda"):
        torch.cuda.set_device(env.local_rank)
        device = f"cuda:{env.local_rank}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), env.local_rank, dist.get_backend()), device


def sum_over_processes(*values: float) -> list[float]:
    """Each value summed over all processes (returned as is in a single process)."""
    if not dist.is_initialized():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.tolist()


def share_buffers(model: torch.nn.Module) -> None:
    """Give every process rank 0's buffers (batch-norm statistics). DDP hands them out at the start of each
    training step, but each process then updates them with its own batch; before validating, all processes
    must hold the very model that rank 0 saves."""
    if dist.is_initialized():
        for buf in model.buffers():
            dist.broadcast(buf, 0)


def from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` in every process (what rank 0 read from disk, so the others need not read it)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wait_for_all() -> None:
    """Block until every process gets here (no-op in a single process)."""
    if dist.is_initialized():
        dist.barrier()


def leave() -> None:
    """Leave the process group at the end of a run (no-op in a single process)."""
    if dist.is_initialized():
        dist.destroy_process_group()
