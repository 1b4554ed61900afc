"""Benchmark: which of the lectures' attacks survive the physical world?

    python bench/lectures.py --work lect                      # 200 pictures, the paper's budgets
    python bench/lectures.py --work lect --onepixel-generations 10
    python bench/lectures.py --work lect-op --methods onepixel   # one attack alone

``make-sheets`` on ``--count`` CIFAR-10 test pictures (demo model) with bim (the
paper's, for reference) and pgd at eps 8, cw, lbfgs and onepixel (d = 1); the
virtual camera (normal, one photo per page); ingest; report (no artificial
sweeps). Printed per attack: digital success (of the pictures the model gets
right, the fraction whose saved 8-bit adversarial image it gets wrong; lbfgs:
reaches the least-likely class), beside torchattacks' PGD, CW and OnePixel on
the same pictures (the 8-bit rounding of their output, as it would be printed,
and unrounded); the mean printed perturbation (L0 pixels, L2, L-infinity in
0-255 levels); and the photographed top-1 destruction rate (average case) with
its Wilson 95% interval. Needs ``../shared/data/cifar10`` and torchattacks.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
METHODS = ["bim", "pgd", "cw", "lbfgs", "onepixel"]
EPS = 8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--onepixel-population", type=int, default=400)
    ap.add_argument("--onepixel-generations", type=int, default=100)
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    ap.add_argument("--no-reference", action="store_true", help="skip torchattacks")
    ap.add_argument("--reference-count", type=int, default=None,
                    help="run torchattacks on the first N pictures only (its one-pixel attack at the paper's budget "
                         "takes about an hour for 200 pictures on 2 cores); ours is then also shown on those N")
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    if not methods or set(methods) - set(METHODS):
        sys.exit(f"--methods: choose from {','.join(METHODS)}")
    if not SHARED.is_dir():
        sys.exit(f"needs {SHARED} (CIFAR-10)")

    import numpy as np
    import torch
    from PIL import Image

    from physical.capture.camera import simulate_photos
    from physical.capture.run import ingest
    from physical.models import load_model
    from physical.photo_io import quantize_8bit
    from physical.report.metrics import wilson_interval
    from physical.report.run import make_report
    from physical.sheets.run import make_sheets
    from physical.sheets.variants import perturbation

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"torch {torch.__version__}")
    print(f"{args.count} CIFAR-10 test pictures (seed {args.seed}); {','.join(methods)} (bim, pgd at eps {EPS}; onepixel d=1, population "
          f"{args.onepixel_population}, {args.onepixel_generations} generations at most)")
    root = args.work
    timings: dict[str, float] = {}
    if not (root / "captures" / "index.csv").exists():
        t = time.perf_counter()
        make_sheets(root / "printouts", images=SHARED / "test", count=args.count, seed=args.seed, methods=methods,
                    eps=[EPS], force=True, onepixel_population=args.onepixel_population,
                    onepixel_generations=args.onepixel_generations)
        timings["make-sheets"] = time.perf_counter() - t
        simulate_photos(root / "printouts", root / "photos", per_page=1, seed=args.seed, difficulty="normal")
        ingest(root / "photos", printouts=root / "printouts", out=root / "captures")
        print(f"make-sheets {timings['make-sheets']:.0f} s")
    if not (root / "captures" / "report" / "figures.csv").exists():
        make_report(root / "captures", printouts=root / "printouts", artificial=False)

    manifest = json.loads((root / "printouts" / "manifest.json").read_text())
    dest: dict[str, tuple[int, int]] = {}
    with open(root / "captures" / "report" / "figures.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if (r["source"], r["case"], r["table"], r["metric"]) == ("photo", "average", "destruction", "top1"):
                dest[r["attack"]] = (int(r["k"]), int(r["n"]))

    def fmt(k: int, n: int) -> str:
        ci = wilson_interval(k, n)
        return f"{100 * k / n:.0f} [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}] n={n}" if n and ci else "n/a"

    recs = manifest["images"]
    labels = torch.tensor([r["label"] for r in recs])
    ll = torch.tensor([r["least_likely"] for r in recs])
    clean_ok = torch.tensor([r["variants"][0]["top5"][0]["index"] == r["label"] for r in recs])
    names = [v["name"] for v in recs[0]["variants"] if v["method"]]
    m = len(recs) if args.reference_count is None else min(args.reference_count, len(recs))
    rows, subset = {}, {}
    for name in names:
        vs = [next(v for v in r["variants"] if v["name"] == name) for r in recs]
        top1 = torch.tensor([v["top5"][0]["index"] for v in vs])
        success = (top1 == ll) if name == "lbfgs" else (top1 != labels)
        k, n = int((success & clean_ok).sum()), int(clean_ok.sum())
        pert = {q: float(np.mean([v["perturbation"][q] for v, ok in zip(vs, clean_ok) if ok])) for q in ("l0", "l2", "linf")}
        rows[name] = (fmt(k, n), pert, fmt(*dest.get(name, (0, 0))))
        subset[name] = fmt(int((success & clean_ok)[:m].sum()), int(clean_ok[:m].sum()))

    ref: dict[str, tuple[str, str, str]] = {}
    if not args.no_reference:
        import torchattacks

        model = load_model("demo", device="cpu")
        x = torch.stack([torch.from_numpy(np.array(Image.open(root / "printouts" / r["variants"][0]["file"])))
                         .permute(2, 0, 1).float() / 255 for r in recs[:m]])
        y, ok = labels[:m], clean_ok[:m]

        def judge(adv: torch.Tensor) -> tuple[str, str, str]:
            with torch.no_grad():
                printed = quantize_8bit(adv)
                s8 = (model(printed).argmax(1) != y) & ok
                sf = (model(adv).argmax(1) != y) & ok
            pert = [perturbation(a, c) for a, c, keep in zip(printed, x, ok) if keep]
            l2 = float(np.mean([q["l2"] for q in pert]))
            linf = float(np.mean([q["linf"] for q in pert]))
            return fmt(int(s8.sum()), int(ok.sum())), fmt(int(sf.sum()), int(ok.sum())), f"{l2:.1f} / {linf:.1f}"

        eps = EPS / 255
        for name, attack in (
                ("pgd_e8", torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / 40, steps=40, random_start=True)),
                ("cw", torchattacks.CW(model, c=1, kappa=0, steps=500, lr=0.01)),
                ("onepixel_d1", torchattacks.OnePixel(model, pixels=1, steps=args.onepixel_generations,
                                                      popsize=args.onepixel_population, inf_batch=128))):
            if name not in names:
                continue
            torch.manual_seed(0)
            t = time.perf_counter()
            adv = torch.cat([attack(x[i:i + 50], y[i:i + 50]) for i in range(0, len(x), 50)])
            ref[name] = judge(adv)
            print(f"torchattacks {name}: {time.perf_counter() - t:.0f} s", flush=True)

    print("\n| attack | digital success, ours (8-bit, as printed) | torchattacks, rounded to 8 bits | torchattacks, "
          "unrounded | mean L0 px | mean L2 | mean L-inf | torchattacks L2 / L-inf (8-bit) | photographed destruction, top-1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (succ, pert, d) in rows.items():
        r8, rf, rn = ref.get(name, ("-", "-", "-")) if m == len(recs) else ("-", "-", "-")
        print(f"| {name} | {succ} | {r8} | {rf} | {pert['l0']:.0f} | {pert['l2']:.1f} | {pert['linf']:.1f} | {rn} | {d} |")
    if ref and m < len(recs):
        print(f"\ntorchattacks on the first {m} pictures only, and ours on the same pictures:\n"
              "| attack | ours (8-bit) | torchattacks, 8-bit | torchattacks, unrounded | torchattacks L2 / L-inf |")
        for name in ref:
            print(f"| {name} | {subset[name]} | {' | '.join(ref[name])} |")


if __name__ == "__main__":
    main()
