"""Helpers for training under torchrun (DistributedDataParallel); a single process is world size 1 and each
helper is then a no-op."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def init_distributed(device_name: str) -> tuple[int, int, torch.device]:
    """Join the torchrun process group if launched by torchrun; return (rank, world size, device)."""
    import torch
    import torch.distributed as dist

    from engine.runtime import resolve_device

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, resolve_device(device_name)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = resolve_device(device_name)
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def distributed() -> bool:
    """Whether a process group is running."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    import torch.distributed as dist

    return dist.get_world_size() if distributed() else 1


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """A reduced copy over all processes (the tensor itself without a process group)."""
    import torch.distributed as dist

    if not distributed():
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN}[op])
    return tensor


def from_rank0(obj: Any) -> Any:
    """Rank 0's ``obj`` on every process."""
    import torch.distributed as dist

    if not distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_rng_states(world: int):
    """This process's RNG states, or every process's (a list) under torchrun."""
    import torch.distributed as dist

    from engine.runtime import rng_state

    state = rng_state()
    if world == 1:
        return state
    states = [None] * world
    dist.all_gather_object(states, state)
    return states


def barrier() -> None:
    """Wait for every process (nothing to wait for without a process group)."""
    import torch.distributed as dist

    if distributed():
        dist.barrier()


def shutdown() -> None:
    """Leave the process group, if any."""
    import torch.distributed as dist

    if distributed():
        dist.destroy_process_group()
