"""The CPU worker threads that the channel's per-image loops (noise, JPEG) share."""
from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max(1, torch.get_num_threads()), thread_name_prefix="physical-channel")
    return _POOL


def _share(work: Callable[[range], None], n: int, device: torch.device) -> None:
    """Run ``work`` on indices 0..n-1: on a CPU split among ``torch.get_num_threads()`` pool
    threads, one contiguous share each; elsewhere in one call. ``work`` must not run torch
    ops that start OpenMP teams (their spinning threads would slow the main thread)."""
    parts = max(1, torch.get_num_threads()) if device.type == "cpu" else 1
    step = max(1, math.ceil(n / parts))
    shares = [range(s, min(s + step, n)) for s in range(0, n, step)]
    if len(shares) > 1:
        list(_pool().map(work, shares))
    else:
        for share in shares:
            work(share)
