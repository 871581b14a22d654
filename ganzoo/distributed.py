"""Data-parallel training over several processes (one per device), on torch.distributed.

`World` says which process this is. The trainer keeps the nets' parameters identical on every rank:
they start equal (broadcast from rank 0), each rank computes the gradients of its share of the global
batch, and `average_grads` all-reduces the phase's gradients (one flat bucket per phase) before the
optimizer step — the synchronisation StyleGAN3's training loop does by hand instead of wrapping nets in
`DistributedDataParallel`: a GAN's nets are called inside the model's losses, in several phases, with
gradients switched on and off per phase and parameters shared between nets (CoGAN, UNIT), which DDP's
per-module reducer does not follow; the all-reduced gradient is the same average DDP computes.

Control messages (a stop signal seen by any rank, the outcome of a checkpoint write, RNG states for
the checkpoint) go over a CPU (gloo) group, so that none of them syncs a CUDA stream. Bottom layer:
imports only torch and `errors`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import UserError

_CONTROL = None  # the CPU process group for control messages (the default group under gloo)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes (checkpoints, stats, samples, evaluation)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


SINGLE = World()


def from_env() -> World:
    """The world torch's launchers describe in the environment (RANK, WORLD_SIZE, LOCAL_RANK)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    return World(rank=int(os.environ["RANK"]), size=size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def launched_outside() -> bool:
    """Whether this process was started by an external launcher (torchrun, srun + env) as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(world: World, device: torch.device) -> torch.device:
    """Join the process group (nccl on CUDA, gloo on CPU); the device this rank trains on."""
    global _CONTROL
    if not world.active:
        return device
    if device.type == "cuda":
        if torch.cuda.device_count() <= world.local_rank:
            raise UserError(f"rank {world.rank} needs CUDA device {world.local_rank}, and this machine has "
                            f"{torch.cuda.device_count()}: lower trainer.devices")
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise UserError(f"trainer.devices={world.size} needs CUDA or the CPU, not {device.type}: set trainer.device=cpu")
    if not dist.is_initialized():
        kwargs = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, **kwargs)
    _CONTROL = dist.new_group(backend="gloo") if backend == "nccl" else None
    return device


def shutdown() -> None:
    global _CONTROL
    if dist.is_initialized():
        dist.destroy_process_group()
    _CONTROL = None


@torch.no_grad()
def broadcast_tensors(tensors: list[torch.Tensor]) -> None:
    """Rank 0's values into every rank's tensors (parameters and buffers at the start)."""
    for t in tensors:
        dist.broadcast(t, src=0)


@torch.no_grad()
def average_grads(params: list[torch.nn.Parameter], size: int) -> None:
    """All-reduce the gradients of `params` (those that have one: the same set on every rank) as one
    flat bucket and divide by the world size."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(size)
    torch._foreach_copy_(grads, [f.view_as(g) for f, g in zip(flat.split([g.numel() for g in grads]), grads)])


@torch.no_grad()
def sum_(t: torch.Tensor) -> torch.Tensor:
    """The element-wise sum over ranks (in place; the logged scalars, once per log_every steps)."""
    dist.all_reduce(t)
    return t


def max_int(value: int) -> int:
    """The largest of every rank's `value`, over the CPU group (a stop signal seen by any rank)."""
    t = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_CONTROL)
    return int(t)


def gather(obj) -> list:
    """Every rank's `obj` (picklable), in rank order, on every rank."""
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj, group=_CONTROL)
    return out


def barrier() -> None:
    dist.barrier(group=_CONTROL)
