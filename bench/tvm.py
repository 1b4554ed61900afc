"""Benchmark: how many primal-dual steps ``tvm`` needs, and what one call costs.

    python bench/tvm.py                     # 64 CIFAR-10 test pictures (../shared), 32 px and 299 px
    python bench/tvm.py --threads 1

Convergence: the output after 50 ... 1,000 steps against 5,000 steps (float64), as the
relative excess of the energy and the largest difference in levels of 255, on 64
CIFAR-10 test pictures with half their pixels kept (``tvm:50``). Cost: seconds for one
call of ``TVM_ITERS`` steps on a batch of 64 at 32 px and of 8 at 299 px (the pictures
upscaled), median of 3. Writes nothing; prints two tables.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from robust import pictures  # noqa: E402

from physical.defenses import TVM_ITERS, draw_tvm, tv_energy, tvm  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "cifar10" / "test")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, _ = pictures(args.data, 64, seed=5)
    g = torch.Generator().manual_seed(0)
    mask = draw_tvm(len(x), 32, 32, 0.5, g)
    best = tvm(x.double(), mask, iters=5000)
    e_best = tv_energy(best, x.double(), mask.double())
    print(f"convergence on {len(x)} pictures, tvm:50 (against 5,000 steps):")
    print("| steps | energy above the least, relative (max) | largest difference, levels of 255 |")
    print("|---|---|---|")
    for steps in (50, 100, 200, TVM_ITERS, 500, 1000):
        out = tvm(x, mask, iters=steps).double()
        excess = ((tv_energy(out, x.double(), mask.double()) - e_best) / e_best).max().item()
        print(f"| {steps} | {excess:.1e} | {255 * (out - best).abs().max().item():.2f} |")
    print(f"\none call, {TVM_ITERS} steps, {torch.get_num_threads()} threads:")
    print("| size | batch | seconds (median of 3) | ms per picture |")
    print("|---|---|---|---|")
    for size, n in ((32, 64), (299, 8)):
        xs = x[:n] if size == 32 else F.interpolate(x[:n], size=size, mode="bilinear", align_corners=False)
        m = draw_tvm(n, size, size, 0.5, g)
        tvm(xs, m, iters=5)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            tvm(xs, m)
            times.append(time.perf_counter() - t)
        s = statistics.median(times)
        print(f"| {size} px | {n} | {s:.2f} | {1000 * s / n:.1f} |")


if __name__ == "__main__":
    main()
