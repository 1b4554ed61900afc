#!/usr/bin/env python
"""Benchmark: Carlini and Wagner's three attacks (L2, L0, L-infinity), targeted, on the demo model.

    python bench/cw_norms.py                                     # 100 pictures, the attacks' defaults
    python bench/cw_norms.py --count 20 --l0-steps 50 --l0-search-steps 3 --threads 1   # a quick look on a CPU

``--count`` CIFAR-10 test pictures the demo model gets right (a seeded random
sample of ``../shared/data/cifar10/test``, drawn until that many are right), each
with one seeded random target class other than its own. On them
:func:`physical.attacks.cw` (L2, targeted), :func:`~physical.attacks.cw_l0` and
:func:`~physical.attacks.cw_linf`, all on the 8-bit grid. Printed per attack:
targeted success as saved (the model's class of the 8-bit image is the target;
k/n with its Wilson 95 % interval; the acceptance target is 95 %), the time it
took, and the mean perturbation of its successes in 0-255 levels: L0 (pixels
with any channel changed), L2 and L-infinity; then the same means over the
pictures all three attacks succeed on (the fair comparison: each attack should
win on its own norm). ``--out FILE`` also writes the figures as JSON. Needs
``../shared/data/cifar10``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ATTACKS = ["l2", "l0", "linf"]


def main() -> None:
    from physical.attacks.cw import CW_C0, CW_LINF_STEPS, CW_L0_DROP, CW_LR, CW_SEARCH_STEPS, CW_STEPS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100, help="pictures the model gets right")
    ap.add_argument("--seed", type=int, default=0, help="the sample of pictures and their targets")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "cifar10")
    ap.add_argument("--device", default=None, help="cuda when there is one, else cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is fastest on a busy machine)")
    ap.add_argument("--batch", type=int, default=100, help="pictures attacked at once")
    ap.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated subset of " + ",".join(ATTACKS))
    ap.add_argument("--steps", type=int, default=CW_STEPS, help="L2: Adam steps per value of c")
    ap.add_argument("--search-steps", type=int, default=CW_SEARCH_STEPS, help="L2: values of c tried")
    ap.add_argument("--c", type=float, default=CW_C0, help="L2 and L0: the first c")
    ap.add_argument("--lr", type=float, default=CW_LR, help="L2 and L0: Adam's learning rate")
    ap.add_argument("--l0-steps", type=int, default=None, help="L0: each round's L2 steps (default --steps)")
    ap.add_argument("--l0-search-steps", type=int, default=None, help="L0: each round's values of c (default --search-steps)")
    ap.add_argument("--l0-drop", type=float, default=CW_L0_DROP, help="L0: share of the changed pixels fixed a round")
    ap.add_argument("--linf-steps", type=int, default=CW_LINF_STEPS, help="L-inf: Adam steps before c doubles")
    ap.add_argument("--out", type=Path, default=None, help="also write the figures here (JSON)")
    args = ap.parse_args()
    attacks = [a for a in args.attacks.split(",") if a]
    if not attacks or set(attacks) - set(ATTACKS):
        sys.exit(f"--attacks: choose from {','.join(ATTACKS)}")
    if not (args.data / "test").is_dir():
        sys.exit(f"needs {args.data / 'test'} (CIFAR-10)")

    import numpy as np
    import torch
    from PIL import Image

    from physical.attacks import cw, cw_l0, cw_linf
    from physical.models import load_model
    from physical.models.demo_net import CIFAR10_CLASSES
    from physical.photo_io import quantize_8bit
    from physical.report.metrics import wilson_interval

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model("demo", device=device).eval()

    # A seeded order of the test set, read until --count pictures are classified right.
    root = args.data / "test"
    files = [(f, label) for label, name in enumerate(CIFAR10_CLASSES) for f in sorted((root / name).iterdir())]
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(args.seed)).tolist()
    xs, ys, seen = [], [], 0
    for start in range(0, len(order), 256):
        chunk = [files[i] for i in order[start:start + 256]]
        imgs = []
        for f, _ in chunk:
            with Image.open(f) as im:
                imgs.append(np.asarray(im.convert("RGB"), np.uint8))
        x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous().float().div(255).to(device)
        y = torch.tensor([label for _, label in chunk], device=device)
        with torch.no_grad():
            right = model(x).argmax(dim=1) == y
        seen += len(chunk)
        xs.append(x[right])
        ys.append(y[right])
        if sum(len(a) for a in xs) >= args.count:
            break
    x, y = torch.cat(xs)[:args.count], torch.cat(ys)[:args.count]
    n = len(x)
    offset = torch.randint(1, 10, (n,), generator=torch.Generator().manual_seed(args.seed + 1)).to(device)
    target = (y + offset) % 10                      # one class other than its own, per picture

    runs = {
        "l2": lambda a, b, t: cw(model, a, b, steps=args.steps, search_steps=args.search_steps, c=args.c, lr=args.lr,
                                 target=t),
        "l0": lambda a, b, t: cw_l0(model, a, b, target=t, steps=args.l0_steps or args.steps,
                                    search_steps=args.l0_search_steps or args.search_steps, c=args.c, lr=args.lr,
                                    drop=args.l0_drop),
        "linf": lambda a, b, t: cw_linf(model, a, b, target=t, steps=args.linf_steps),
    }
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {device}, "
          f"{torch.get_num_threads()} torch threads, Python {platform.python_version()}, torch {torch.__version__}")
    print(f"{n} CIFAR-10 test pictures the demo model gets right (of the first {seen} of seed {args.seed}'s order), "
          f"one random target each; L2: {args.steps} steps x {args.search_steps} values of c from {args.c:g}, lr {args.lr:g}; "
          f"L0: {args.l0_steps or args.steps} x {args.l0_search_steps or args.search_steps} a round, drop {args.l0_drop:g}; "
          f"L-inf: {args.linf_steps} steps a value of c", flush=True)

    adv, ok, secs = {}, {}, {}
    for name in attacks:
        t0 = time.perf_counter()
        adv[name] = torch.cat([runs[name](x[i:i + args.batch], y[i:i + args.batch], target[i:i + args.batch])
                               for i in range(0, n, args.batch)])
        secs[name] = time.perf_counter() - t0
        with torch.no_grad():
            ok[name] = torch.cat([model(quantize_8bit(adv[name][i:i + args.batch])).argmax(dim=1)
                                  for i in range(0, n, args.batch)]) == target
        print(f"  {name}: {secs[name]:.0f} s", flush=True)

    def norms(a: torch.Tensor, keep: torch.Tensor) -> dict[str, float | None]:
        d = ((quantize_8bit(a[keep]) - x[keep]) * 255).round().double()
        if not len(d):
            return {"l0": None, "l2": None, "linf": None}
        return {"l0": float((d != 0).any(dim=1).flatten(1).sum(1).double().mean()),
                "l2": float(d.flatten(1).norm(dim=1).mean()), "linf": float(d.abs().flatten(1).amax(1).mean())}

    def fmt(v: float | None, digits: int = 1) -> str:
        return "n/a" if v is None else f"{v:.{digits}f}"

    every = torch.stack([ok[a] for a in attacks]).all(dim=0)
    rows = []
    print(f"\n| attack | targeted success (8-bit) [Wilson 95 %] | time | L0 | L2 | L-inf | L0, L2, L-inf on the {int(every.sum())} "
          "all succeed on |")
    print("|---|---|---|---|---|---|---|")
    for name in attacks:
        k = int(ok[name].sum())
        lo, hi = wilson_interval(k, n) or (0.0, 0.0)
        own, shared = norms(adv[name], ok[name]), norms(adv[name], every)
        rows.append({"attack": name, "k": k, "n": n, "wilson95": [lo, hi], "seconds": round(secs[name], 1),
                     "mean_over_successes": own, "mean_over_all_succeed": shared})
        print(f"| {name} | {k}/{n} = {100 * k / n:.0f} % [{100 * lo:.0f}, {100 * hi:.0f}] | {secs[name]:.0f} s | "
              f"{fmt(own['l0'])} | {fmt(own['l2'])} | {fmt(own['linf'], 2)} | "
              f"{fmt(shared['l0'])}, {fmt(shared['l2'])}, {fmt(shared['linf'], 2)} |")
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "device": device,
                                        "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
