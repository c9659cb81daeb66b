"""Data-parallel training on torch's own engine: torchrun + DistributedDataParallel.

A data-parallel run is the *same training* as one process with the same global batch:
every rank computes the same batch plan, takes a contiguous share of each global batch
(the union, in rank order, is the single-process batch, padded exactly as one process
pads it), and its loss is weighted so that DDP's averaged gradient is the gradient of
the global-batch mean. Clipping and the optimizer then run on identical averaged
gradients on every rank, so the replicas never drift apart.

The weighting, derived. One process minimises L = (1/B) sum_i l_i over the B rows of a
batch. Rank r holds n_r rows (sum n_r = B) and DDP sets every gradient to the mean over
the W ranks of the local gradients: g = (1/W) sum_r grad(J_r). Choosing
J_r = (W n_r / B) * mean_{i in r} l_i gives g = (1/B) sum_r sum_{i in r} grad(l_i) =
grad(L). With equal shares (B divisible by W) the factor is exactly 1. The hard case is
the last, partial batch of an epoch: B = 5 on 2 ranks is 3 + 2 rows (factors 6/5 and
4/5), and B = 1 on 2 ranks leaves rank 1 with no row at all: it runs a stand-in row
(the batch's first) with factor 0, so it still joins the all-reduce with an exactly
zero gradient. A plain per-rank mean (factor 1 everywhere) would weight the rows of
the smaller share more: that is the pitfall the tests put back.

BERT's pooler is computed by nothing in this model, so no gradient reaches it; DDP's
reducer would wait for it forever. It is frozen (`requires_grad_(False)`) before
wrapping, which keeps it out of the buckets, rather than `find_unused_parameters=True`
(an extra graph traversal every step). One process gives it no gradient either, so
AdamW skips it in both cases: same training.
"""

from __future__ import annotations

import atexit
import datetime
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "BACKENDS",
    "Share",
    "World",
    "all_reduce_mean",
    "any_rank",
    "choose_backend",
    "device_for",
    "env_world",
    "init",
    "join",
    "on_main",
    "shard",
    "shutdown",
    "unwrap",
    "wrap",
]

BACKENDS = ("gloo", "nccl")
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class World:
    """Where this process stands: rank 0 of 1 outside torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: no process group (single process)

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and progress; the others compute only."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        """Every rank waits here for the others (nothing in a single process)."""
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        """At a normal end: wait for every rank, then leave the group while the interpreter is whole.

        Without the barrier a rank that finished first tears its Gloo pair down under a
        peer still inside the last collective, and that peer aborts at exit
        ("terminate called without an active exception", seen in a suite run).
        """
        if self.distributed and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def env_world() -> World:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); rank 0 of 1 when absent."""
    present = [k for k in _ENV if k in os.environ]
    if not present:
        return World()
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise ValueError(
            f"Partial torchrun environment: {present} set but {missing} missing; launch with "
            "`torchrun --nproc-per-node N -m parity ...` or unset them. "
            f"Received: { {k: os.environ[k] for k in present} }"
        )
    try:
        rank, world, local = (int(os.environ[k]) for k in _ENV)
    except ValueError:
        raise ValueError(
            "RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them). "
            f"Received: { {k: os.environ[k] for k in _ENV} }"
        ) from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(
            f"Need WORLD_SIZE >= 1, 0 <= RANK < WORLD_SIZE, LOCAL_RANK >= 0. Received: "
            f"RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}"
        )
    return World(rank=rank, world_size=world, local_rank=local)


def choose_backend(device: torch.device | str, backend: str | None = None) -> str:
    """gloo for CPU tensors, nccl for CUDA tensors, unless `backend` says otherwise."""
    if backend is not None:
        if backend not in BACKENDS:
            raise ValueError(f"Unknown process-group backend; expected one of {BACKENDS}. Received: {backend!r}")
        if backend == "nccl" and torch.device(device).type != "cuda":
            raise ValueError(f"nccl reduces CUDA tensors only; use gloo on {device}. Received: backend='nccl'")
        return backend
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init(device: torch.device | str = "cpu", backend: str | None = None, timeout_s: float = 1800) -> World:
    """Join torchrun's process group (no-op outside torchrun); returns this process's World.

    On CUDA each rank takes GPU LOCAL_RANK; call `device_for(world)` for its device.
    """
    world = env_world()
    chosen = choose_backend(device, backend)  # checked in a single process too
    if not world.distributed:
        return world
    device_id = None
    if torch.device(device).type == "cuda":
        device_id = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device_id)
    if not dist.is_initialized():
        dist.init_process_group(chosen, timeout=datetime.timedelta(seconds=timeout_s), device_id=device_id)
        atexit.register(shutdown)
    return World(world.rank, world.world_size, world.local_rank, chosen)


def join(directory: str | os.PathLike, device: torch.device | str = "cpu", backend: str | None = None,
         *, recover: bool = True) -> World:  # fmt: skip
    """`init`, then rank 0 finishes or undoes a save a kill interrupted in `directory` before any rank reads it.

    Only rank 0 ever writes the training directory; this makes the other ranks' reads
    (`--resume`) see the same whole save rank 0 sees. `recover=False`: the caller does it
    (`bertcnn train` first takes the directory's writer lock on rank 0), then `world.barrier()`.
    """
    from parity.training.state import recover as recover_dir

    world = init(device, backend)
    if world.distributed and recover:
        if world.is_main:
            recover_dir(directory)
        dist.barrier()
    return world


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def device_for(world: World, device: torch.device | str) -> torch.device:
    """CUDA: this rank's GPU (LOCAL_RANK); CPU unchanged."""
    d = torch.device(device)
    return torch.device("cuda", world.local_rank) if d.type == "cuda" and world.distributed else d


@dataclass(frozen=True)
class Share:
    """This rank's contiguous share of one global batch of `global_size` rows."""

    start: int
    stop: int
    global_size: int
    world_size: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def rows(self) -> slice:
        """The rows to run: this share, or the batch's first row as a stand-in when empty."""
        return slice(self.start, self.stop) if self.size else slice(0, 1)

    @property
    def loss_scale(self) -> float:
        """W n_r / B: multiplies this rank's mean loss so DDP's average is the global mean.

        Exactly 1.0 for equal shares; 0.0 for an empty share (its stand-in row counts nothing).
        """
        if self.size * self.world_size == self.global_size:
            return 1.0
        return self.world_size * self.size / self.global_size

    def take(self, array: Any) -> Any:
        """Rows of an already padded global-batch array (numpy or torch) for this rank."""
        return array[self.rows]


def shard(global_size: int, rank: int, world_size: int) -> Share:
    """Contiguous shares in rank order; the first B mod W ranks get one extra row.

    `shard(5, r, 2)`: rows 0-2, 3-4; `shard(1, r, 2)`: row 0, nothing.
    """
    if global_size < 1 or world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(
            "shard needs global_size >= 1, world_size >= 1 and 0 <= rank < world_size. "
            f"Received: global_size={global_size}, rank={rank}, world_size={world_size}"
        )
    base, extra = divmod(global_size, world_size)
    start = rank * base + min(rank, extra)
    return Share(start, start + base + (rank < extra), global_size, world_size)


def wrap(model: nn.Module, world: World) -> nn.Module:
    """DistributedDataParallel around `model` (unchanged in a single process).

    The BERT pooler is frozen first so it stays out of the reduction (see module doc).
    Buffers are not broadcast each step: this model has no running statistics, and
    DDP's constructor already broadcasts rank 0's parameters and buffers once.
    """
    pooler = getattr(getattr(model, "bert", None), "pooler", None)
    if pooler is not None:
        pooler.requires_grad_(False)
    if not world.distributed:
        return model
    param = next(model.parameters())
    device_ids = [param.device.index] if param.device.type == "cuda" else None
    ddp = nn.parallel.DistributedDataParallel
    # torch >= 2.13 renamed broadcast_buffers (now deprecated) to forward_sync_buffers.
    new = "forward_sync_buffers" in inspect.signature(ddp).parameters
    no_sync = "forward_sync_buffers" if new else "broadcast_buffers"
    return ddp(model, device_ids=device_ids, **{no_sync: False})


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_reduce_mean(value: torch.Tensor, world: World) -> torch.Tensor:
    """Mean over ranks of a tensor (a copy); the identity in a single process.

    Applied to each rank's weighted objective J_r it gives the global-batch mean loss,
    the same number one process logs.
    """
    value = value.detach().clone()
    if world.distributed:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= world.world_size
    return value


def any_rank(flag: bool, world: World, device: torch.device | str = "cpu") -> bool:
    """Whether `flag` is True on any rank (an all-reduce of the max); `flag` itself in a single process.

    How the ranks agree to stop after the same update when a signal reaches each at its own
    moment: every rank asks after every update, so all stop together and rank 0 saves there.
    """
    if not world.distributed:
        return bool(flag)
    t = torch.tensor([int(bool(flag))], dtype=torch.int32, device=device)  # nccl reduces CUDA tensors only
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def on_main(world: World, fn: Callable[..., Any], *args: Any, barrier: bool = True, **kwargs: Any) -> Any:
    """Run `fn` on rank 0 only (writing, logging); with `barrier`, the others wait for it.

    The barrier keeps a rank from reading (or racing past) a checkpoint rank 0 is writing.
    """
    out = fn(*args, **kwargs) if world.is_main else None
    if barrier and world.distributed:
        dist.barrier()
    return out
