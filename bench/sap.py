"""Benchmark: stochastic activation pruning's clean cost on the demo, to choose its draws (--defense sap:P).

    python bench/sap.py --percents 100,150,200,250,300 --count 500

Top-1 accuracy of ``demo`` on ``--count`` CIFAR-10 test pictures (seeded sample), bare and behind
``sap:P`` for each P (one draw per image, seed 0), with the time of the pass. Needs
``../shared/data/cifar10``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--percents", default="100,150,200,250,300", help="values of P, comma-separated")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"needs {SHARED} (CIFAR-10)")

    import torch

    from physical import load_model
    from physical.defenses import defend, parse_defense
    from physical.sheets.pictures import load_pictures, picture_images

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    pictures, _ = load_pictures(model, SHARED / "test", None, args.count, args.seed)
    x, y = picture_images(pictures, model), torch.tensor([p.label for p in pictures])

    def accuracy(m) -> float:
        with torch.no_grad():
            return sum(int((m(x[i:i + 100]).argmax(1) == y[i:i + 100]).sum()) for i in range(0, len(x), 100)) / len(x)

    print(f"{args.model}, {len(x)} CIFAR-10 test pictures (seed {args.seed}), {torch.get_num_threads()} threads\n")
    print("| defense | clean top-1 | seconds |")
    print("|---|---|---|")
    t = time.perf_counter()
    print(f"| none | {100 * accuracy(model):.1f} % | {time.perf_counter() - t:.1f} |")
    for p in [int(v) for v in args.percents.split(",") if v]:
        defended = defend(model, parse_defense(f"sap:{p}"), samples=1, seed=0)
        t = time.perf_counter()
        print(f"| sap:{p} | {100 * accuracy(defended):.1f} % | {time.perf_counter() - t:.1f} |", flush=True)


if __name__ == "__main__":
    main()
