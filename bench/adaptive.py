"""Benchmark: the cost of an adaptive attack step on a defended model.

    python bench/adaptive.py                     # demo model, batch 64, K = 8, 1 thread
    python bench/adaptive.py --defense jpeg:75 --samples 1

One step of an adaptive gradient attack on ``demo`` behind ``--defense`` with EoT over K
draws (``physical.defenses.defend(..., samples=K)``: BPDA through JPEG and bit depth, the
random resize and pad differentiated exactly) against K bare forward and backward passes
of the model on the same batch (the least any K-draw expectation can cost). Prints the
median of ``--repeats`` timings of each and their ratio; the target is at most 1.3.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--defense", default="bits:4,jpeg:75,randomize")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    import torch

    from physical.attacks import input_gradient
    from physical.defenses import defend, parse_defense
    from physical.models import load_model

    torch.set_num_threads(args.threads)
    model = load_model("demo", device=args.device)
    defended = defend(model, parse_defense(args.defense), samples=args.samples, seed=0)
    x = torch.rand(args.batch, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(args.device)
    y = torch.randint(0, 10, (args.batch,), generator=torch.Generator().manual_seed(1)).to(args.device)
    xk, yk = x.repeat(args.samples, 1, 1, 1), y.repeat(args.samples)

    def timed(fn) -> float:
        fn()                                    # warm up
        out = []
        for _ in range(args.repeats):
            if args.device != "cpu":
                torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            if args.device != "cpu":
                torch.cuda.synchronize()
            out.append(time.perf_counter() - t)
        return statistics.median(out)

    bare = timed(lambda: input_gradient(model, xk, yk))
    adaptive = timed(lambda: input_gradient(defended, x, y))
    print(f"demo, batch {args.batch}, K = {args.samples}, {args.threads} thread(s), {args.device}: "
          f"{args.samples} bare passes {1000 * bare:.1f} ms; adaptive step through {args.defense} "
          f"{1000 * adaptive:.1f} ms; ratio {adaptive / bare:.2f} (target <= 1.3)")


if __name__ == "__main__":
    main()
