"""Running one command as several processes under ``torchrun`` (``torch.distributed``).

torchrun starts one process per GPU (or per ``--nproc-per-node``) on each machine and
tells each its place through the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``);
nothing else selects this mode. Each process takes a disjoint shard of the work
(:func:`shard`); :func:`gather` brings every shard's results to every process in rank
order, so that rank 0 can write the outputs alone. Every figure is a sum of counts and
every random draw is seeded per picture, so the outputs do not depend on the split.

A process that fails hands its error to the others at the next :func:`gather`, so that
every process stops with the same one-line error naming the failed rank (and rank 0
writes nothing), instead of waiting for a partner that is gone.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

from .errors import PhysicalError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size`` processes; ``local_rank`` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def writes(self) -> bool:
        """Whether this process writes the outputs (rank 0)."""
        return self.rank == 0


class RankFailed(PhysicalError):
    """Another process of the run failed; its error, named by rank."""


def world() -> World:
    """The World that torchrun's environment describes (one process when there is none)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise PhysicalError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (as torchrun sets them)") from None
    if size < 1 or not 0 <= rank < size:
        raise PhysicalError(f"RANK {rank} of WORLD_SIZE {size}: not a place torchrun gives")
    return World(rank, size, local)


def init(w: World, device: str | None) -> str | None:
    """Join the process group (gloo on the CPU, NCCL on GPUs) and pick this process's device.

    Returns the device: with several processes and CUDA, ``cuda:<local_rank>``; else ``device``.
    """
    if w.size == 1:
        return device
    import torch
    import torch.distributed as dist

    cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    if cuda:
        device = f"cuda:{w.local_rank % torch.cuda.device_count()}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # NCCL for anything on the GPUs, gloo for the gathered Python objects (the pictures' records).
        dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo")
    return device or "cpu"


def shard(items: Sequence[T], w: World) -> list[T]:
    """This process's part of ``items``: a contiguous block, the blocks in rank order cover ``items``."""
    n = len(items)
    lo, hi = n * w.rank // w.size, n * (w.rank + 1) // w.size
    return list(items[lo:hi])


def gather(w: World, value: Any = None, error: BaseException | None = None) -> list[Any]:
    """Every process's ``value``, in rank order, on every process.

    A process that failed passes its ``error`` instead: then every process raises
    :class:`RankFailed` naming the first failed rank and its error (one line).
    """
    if w.size == 1:
        if error is not None:
            raise error
        return [value]
    import torch.distributed as dist

    mine = ("error", f"{type(error).__name__}: {error}" if not isinstance(error, PhysicalError) else str(error)) \
        if error is not None else ("ok", value)
    out: list[Any] = [None] * w.size
    dist.all_gather_object(out, mine)
    for rank, (status, payload) in enumerate(out):
        if status == "error":
            raise RankFailed(f"rank {rank} of {w.size} failed: {payload}")
    return [payload for _, payload in out]


def run_sharded(w: World, work: Callable[[], T]) -> list[T]:
    """``work()`` on this process, then :func:`gather` of its result or its error."""
    try:
        value = work()
    except Exception as exc:   # noqa: BLE001 - handed to every rank, re-raised there as one line
        return gather(w, error=exc)
    return gather(w, value)


def finish(w: World) -> None:
    """Leave the process group (every rank, after its last :func:`gather`, or on its way out with an error)."""
    if w.size > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
