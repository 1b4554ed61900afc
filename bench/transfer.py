"""Benchmark: the lectures' transfer tables, digital and through the virtual camera.

    # Madry et al.'s table: demo-adv attacked white box (A), from an independent copy (A') and from a
    # naturally trained model of another architecture (B)
    python bench/transfer.py --work madry --table madry --model demo-adv --source demo-adv-b --source demo-vgg
    # Szegedy et al.'s cross-model table: every model attacked, every model classifying
    python bench/transfer.py --work szegedy --table szegedy --model demo --source demo-vgg --classify demo-vgg

One experiment (``make-sheets --source`` on ``--count`` CIFAR-10 test pictures at eps ``--eps``), the
virtual camera (normal, one photo per page), ingest, and the report with every ``--classify`` model.
Printed as markdown, digital and photographed, each cell with n and its Wilson 95% interval:

- ``madry``: the accuracy of ``--model`` (the defended model) on the images of each method (rows:
  FGSM, PGD 40 / 100 steps x 1 / 20 restarts, targeted PGD (least-likely class), CW and CW+ (PGD on the
  margin loss, kappa 0 and ``--cw-plus``)), made on each source (columns: A = ``--model``, then each
  ``--source``), beside the natural accuracy;
- ``szegedy``: the error rate of every classifying model (columns) on the images made on every model
  (rows), with Gaussian noise of the same L2 as each row's images as the control.

``--methods`` overrides the method specs (e.g. fewer PGD settings for a quick run). Needs
``../shared/data/cifar10``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
MADRY = ["fast", "pgd", "pgd:steps=100", "pgd:restarts=20", "pgd:steps=100:restarts=20", "pgd:target=ll",
         "pgd:loss=cw", "pgd:loss=cw:confidence={kappa}"]
SZEGEDY = ["cw"]


def _cell(r: dict) -> str:
    if not r["n"]:
        return "n/a (n=0)"
    return f"{100 * float(r['value']):.1f} [{100 * float(r['ci_low']):.0f}, {100 * float(r['ci_high']):.0f}] n={r['n']}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="folder for the experiment (reused when it exists)")
    ap.add_argument("--table", choices=("madry", "szegedy"), required=True)
    ap.add_argument("--model", default="demo-adv", help="the experiment's model (Madry: the defended one, A)")
    ap.add_argument("--source", action="append", default=[], help="another source model (repeatable)")
    ap.add_argument("--classify", action="append", default=[],
                    help="another model to classify with (repeatable; default: the sources)")
    ap.add_argument("--methods", default=None, help="method specs, comma-separated (default: the table's)")
    ap.add_argument("--cw-plus", type=float, default=50.0, help="CW+'s kappa (Madry et al.: 50)")
    ap.add_argument("--eps", type=int, default=8)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"needs {SHARED} (CIFAR-10)")

    import torch

    from physical.capture.camera import simulate_photos
    from physical.capture.run import ingest
    from physical.report.figures import made_on, robust_accuracy, transfer_label
    from physical.report.run import make_report
    from physical.sheets.run import make_sheets

    if args.threads:
        torch.set_num_threads(args.threads)
    default = MADRY if args.table == "madry" else SZEGEDY
    methods = args.methods.split(",") if args.methods else [m.format(kappa=f"{args.cw_plus:g}") for m in default]
    classify = args.classify or args.source
    root = args.work
    timings = {}
    if not (root / "captures" / "index.json").exists():
        t = time.perf_counter()
        make_sheets(root / "printouts", model=args.model, images=SHARED / "test", count=args.count, seed=args.seed,
                    methods=methods, eps=[args.eps], sources=args.source, force=True)
        timings["make-sheets"] = time.perf_counter() - t
        simulate_photos(root / "printouts", root / "photos", per_page=1, seed=args.seed, difficulty="normal")
        ingest(root / "photos", printouts=root / "printouts", out=root / "captures")
    t = time.perf_counter()
    report = make_report(root / "captures", printouts=root / "printouts", artificial=False, models=classify)
    timings["report"] = time.perf_counter() - t
    m = report.manifest
    rows = [f for f in report.figures if f["table"] == "transfer"]
    makers = made_on(m)
    print(f"\n{args.table} table: {len(m['images'])} CIFAR-10 test pictures (seed {args.seed}), eps {args.eps}/255, "
          f"model {args.model}, sources {', '.join([args.model, *args.source])}; "
          + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items()))
    for source in ("digital", "photo"):
        mine = [r for r in rows if r["source"] == source]
        print(f"\n### {source}\n")
        if args.table == "madry":
            # Rows: methods; columns: sources; cells: the defended model's accuracy (1 - error).
            sources = [args.model, *args.source]
            letters = ["A", "A'", "B"] + [f"source {i}" for i in range(4, len(sources) + 1)]
            print("| method | " + " | ".join(f"{letter} ({s})" for letter, s in zip(letters, sources)) + " |")
            print("|---|" + "---|" * len(sources))
            clean = next((r for r in robust_accuracy(report.figures) if r["model"] == m["model"]["id"]
                          and r["attack"] == "clean" and r["source"] == source), None)
            if clean is not None:
                print("| natural (no attack) | " + " | ".join([_cell(clean)] * len(sources)) + " |")
            labels = list(dict.fromkeys(transfer_label(m, r["attack"]) for r in mine if makers[r["attack"]]
                                        in sources))
            for label in labels:
                cells = []
                for s in sources:
                    r = next((r for r in mine if r["model"] == m["model"]["id"] and makers[r["attack"]] == s
                              and transfer_label(m, r["attack"]) == label), None)
                    cells.append("" if r is None else _cell({**r, "value": 1 - float(r["value"]) if r["n"] else None,
                                                              "ci_low": 1 - float(r["ci_high"]) if r["n"] else None,
                                                              "ci_high": 1 - float(r["ci_low"]) if r["n"] else None}))
                print(f"| {label} | " + " | ".join(cells) + " |")
        else:
            models = list(dict.fromkeys(r["model"] for r in mine))
            print("| made on | attack | " + " | ".join(models) + " |")
            print("|---|---|" + "---|" * len(models))
            for attack in dict.fromkeys(r["attack"] for r in mine):
                by = {r["model"]: r for r in mine if r["attack"] == attack}
                print(f"| {makers[attack]} | {transfer_label(m, attack)} | "
                      + " | ".join(_cell(by[x]) + (" (white box)" if x == makers[attack] else "") for x in models)
                      + " |")


if __name__ == "__main__":
    main()
