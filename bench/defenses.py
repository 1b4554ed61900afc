"""Benchmark: do the defended demo models stay robust when the adversary prints?

    python bench/defenses.py --work def                       # 200 pictures, the three demo models
    python bench/defenses.py --work def --models demo-adv     # one attacked model

For each attacked model (``--models``, default ``demo,demo-adv,demo-distilled``):
``make-sheets`` on ``--count`` CIFAR-10 test pictures (seeded) with the paper's
three attacks (fast, bim, ll), pgd and cw, at eps 4, 8 and 16 (white box: the
attack sees that model); the virtual camera (normal difficulty, one photo per
page); ingest; ``report`` with the other two models as transfer classifiers
(``--model``) and the ``typical`` simulated channel, no artificial sweeps. Each
step is skipped when its output is there (re-running continues).

Prints, per attacked model, a markdown table: for every classifier, robust
accuracy (top-1, average case) digital / photographed, and the photographed
top-1 destruction rate (average case) with Wilson 95% intervals, read from the
report's ``robust.csv`` and ``figures.csv``. Needs ``../shared/data/cifar10`` and the
defended models' weights.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
MODELS = ["demo", "demo-adv", "demo-distilled"]
METHODS = ["fast", "bim", "ll", "pgd", "cw"]
EPS = [4, 8, 16]


def fmt(k: int, n: int) -> str:
    from physical.report.metrics import wilson_interval

    ci = wilson_interval(k, n)
    return f"{100 * k / n:.0f} [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]" if n and ci else "n/a"


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--models", default=",".join(MODELS), help="the attacked models")
    ap.add_argument("--classifiers", default=",".join(MODELS), help="the models that classify every experiment")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"needs {SHARED} (CIFAR-10)")
    import torch

    from physical.capture.camera import simulate_photos
    from physical.capture.run import ingest
    from physical.report.run import make_report
    from physical.sheets.run import make_sheets

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"{args.count} CIFAR-10 test pictures (seed {args.seed}); {','.join(METHODS)} at eps "
          f"{','.join(map(str, EPS))}", flush=True)
    attacked = [m for m in args.models.split(",") if m]
    for model in attacked:
        root = args.work / model
        if not (root / "captures" / "index.csv").exists():
            t = time.perf_counter()
            make_sheets(root / "printouts", model=model, images=SHARED / "test", count=args.count, seed=args.seed,
                        methods=METHODS, eps=EPS, force=True)
            print(f"{model}: make-sheets {time.perf_counter() - t:.0f} s", flush=True)
            t = time.perf_counter()
            simulate_photos(root / "printouts", root / "photos", per_page=1, seed=args.seed, difficulty="normal")
            ingest(root / "photos", printouts=root / "printouts", out=root / "captures")
            print(f"{model}: photos and ingest {time.perf_counter() - t:.0f} s", flush=True)
        if not (root / "captures" / "report" / "robust.csv").exists():
            make_report(root / "captures", printouts=root / "printouts", artificial=False,
                        models=[m for m in args.classifiers.split(",") if m and m != model])
        robust = rows_of(root / "captures" / "report" / "robust.csv")
        figures = rows_of(root / "captures" / "report" / "figures.csv")
        classifiers = list(dict.fromkeys(r["model"] for r in robust))
        print(f"\nAttacked: **{model}** (white box); classified by each model. Robust accuracy, top-1 %, digital / "
              "photographed [Wilson 95%]; destruction: photographed, top-1, average case, n.\n")
        print("| attack | " + " | ".join(f"{c}: digital | {c}: photo | {c}: destruction" for c in classifiers) + " |")
        print("|---|" + "---|---|---|" * len(classifiers))
        for attack in dict.fromkeys(r["attack"] for r in robust):
            cells = []
            for c in classifiers:
                got = {r["source"]: r for r in robust if r["model"] == c and r["attack"] == attack}
                d = next((f for f in figures if f["model"] == c and f["attack"] == attack and f["source"] == "photo"
                          and f["case"] == "average" and f["table"] == "destruction" and f["metric"] == "top1"), None)
                cells += [fmt(int(got["digital"]["k"]), int(got["digital"]["n"])),
                          fmt(int(got["photo"]["k"]), int(got["photo"]["n"])),
                          "" if d is None else f"{fmt(int(d['k']), int(d['n']))} n={d['n']}"]
            label = attack if attack == "clean" else attack.replace("_e", " ε=")
            print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
