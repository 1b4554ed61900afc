"""Benchmark: input-transformation defenses on the demo model, non-adaptive beside adaptive.

    python bench/transforms.py                        # digital: 200 pictures, the five defenses below
    python bench/transforms.py --defense bits:4,jpeg:75,randomize --count 500
    python bench/transforms.py --photos --work tdef   # also through the virtual camera (slow)
    python bench/transforms.py --clean-only --count 1000 --defense randomize   # clean accuracy alone (quick)
    python bench/transforms.py --photos-only --defense bits:4,jpeg:75,randomize --work tdef
    python bench/transforms.py --photos-only --methods eot --samples 2 --defense bits:4,jpeg:75,randomize --work teot

Digital (always): on ``--count`` CIFAR-10 test pictures (a seeded sample, as in
``bench/robust.py``), for each ``--defense`` (repeatable; default ``bits:4``,
``jpeg:75``, ``median:3``, ``randomize`` and ``bits:4,jpeg:75,randomize``): top-1
accuracy of the bare ``demo`` and of the defended model on clean pictures; under
the basic iterative method at eps 8 and 16 made on the bare model (non-adaptive:
what the defenses' own papers reported; for ``sap:P``, made on the pruned network one draw a
step, as Dhillon et al. did) and made on the defended model
(adaptive: BPDA through JPEG and bit depth, EoT over ``--samples`` draws of the
random steps), with the paper's number of steps and with twice as many. A
random defense is classified over ``--draws`` seeded draws (not the attack's),
its counts summed, as ``physical report`` does. Wilson 95 % intervals.

``--photos``: the same through the whole tool: ``make-sheets`` on the bare model
(``--methods``, default bim, at eps 8, 16) and one adaptive ``make-sheets --defense D`` per defense, the
virtual camera (normal difficulty), ``ingest`` and ``report`` with every defended
model as ``--model`` (each step skipped when its output is there). Prints robust
accuracy digital / photographed and the photographed destruction rate.
Needs ``../shared/data/cifar10``.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from robust import pictures, wilson  # noqa: E402

DEFENSES = ["bits:4", "jpeg:75", "median:3", "randomize", "bits:4,jpeg:75,randomize"]
EPS = [8, 16]


def fmt(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{100 * k / n:.1f} [{100 * lo:.0f}, {100 * hi:.0f}]"


def correct(model, x: torch.Tensor, y: torch.Tensor, draws: int, seed: int, batch: int = 250) -> tuple[int, int]:
    """(right, n) over ``draws`` classifications of each picture (1 for a deterministic model)."""
    net = getattr(model, "net", None)
    random = getattr(net, "random", False)
    k = 0
    reps = draws if random else 1
    for d in range(reps):
        if random:
            net.generator.manual_seed(seed * 1_000_003 + d)
        with torch.no_grad():
            k += sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return k, reps * len(x)


def digital(args: argparse.Namespace) -> list[dict]:
    from physical.attacks import basic_iterative, eps_steps
    from physical.defenses import defend, papers_attacker, parse_defense
    from physical.models import load_model

    bare = load_model("demo").eval()
    x, y = pictures(args.data / "test", args.count, args.seed)

    def attack(model, eps: int, factor: int) -> torch.Tensor:
        steps = factor * eps_steps(eps / 255)
        return torch.cat([basic_iterative(model, x[i:i + 100], y[i:i + 100], eps / 255, steps=steps)
                          for i in range(0, len(x), 100)])

    eps_list = [] if args.clean_only else [int(e) for e in args.eps.split(",")]
    factors = [int(f) for f in args.factors.split(",")]
    transfer = {e: attack(bare, e, 1) for e in eps_list}
    rows = [{"defense": "none", "clean": correct(bare, x, y, 1, 0),
             **{f"bim{e}": correct(bare, transfer[e], y, 1, 0) for e in eps_list}}]
    print(json.dumps(rows[-1]), flush=True)
    for spec in args.defense or DEFENSES:
        steps = parse_defense(spec)
        judge = defend(bare, steps, samples=1, seed=0)          # classification: one draw per pass
        row: dict = {"defense": spec, "clean": correct(judge, x, y, args.draws, args.seed + 7)}
        # Non-adaptive is the defense's own paper's attack, as make-sheets --non-adaptive makes it.
        papers, _ = papers_attacker(bare, steps, seed=args.seed + 1)
        own = transfer if papers is bare else {e: attack(papers, e, 1) for e in eps_list}
        for e in eps_list:
            row[f"bim{e}"] = correct(judge, own[e], y, args.draws, args.seed + 7)
            for factor in factors:
                t = time.perf_counter()
                attacker = defend(bare, steps, samples=args.samples, seed=args.seed + 1)
                adv = attack(attacker, e, factor)
                row[f"adaptive{e}x{factor}"] = correct(judge, adv, y, args.draws, args.seed + 7)
                row[f"adaptive{e}x{factor}_s"] = round(time.perf_counter() - t, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    keys = ["clean"] + [f"bim{e}" for e in eps_list] + [f"adaptive{e}x{f}" for e in eps_list for f in factors]
    heads = ["clean"] + [f"non-adaptive BIM ε={e}" for e in eps_list] + \
            [f"adaptive BIM ε={e}{f' ({f}x steps)' if f > 1 else ''}" for e in eps_list for f in factors]
    print(f"\n`demo` behind each defense, {args.count} CIFAR-10 test pictures (seed {args.seed}); top-1 accuracy % "
          f"[Wilson 95 %]; random defenses over {args.draws} draws; adaptive = BPDA + EoT over {args.samples} "
          "draws:\n")
    print("| defense | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(heads))
    for r in rows:
        print(f"| {r['defense']} | " + " | ".join(fmt(*r[k]) if k in r else "" for k in keys) + " |")
    return rows


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def photos(args: argparse.Namespace) -> None:
    from physical.capture.camera import simulate_photos
    from physical.capture.run import ingest
    from physical.report.run import make_report
    from physical.sheets.run import make_sheets

    defenses = args.defense or DEFENSES
    runs = [("non-adaptive", None)] + [(f"adaptive-{i}", d) for i, d in enumerate(defenses)]
    for name, spec in runs:
        root = args.work / name
        if not (root / "captures" / "index.csv").exists():
            t = time.perf_counter()
            make_sheets(root / "printouts", model="demo", images=args.data / "test", count=args.count,
                        seed=args.seed, methods=args.methods.split(","), eps=EPS, force=True, defense=spec,
                        defense_samples=args.samples)
            simulate_photos(root / "printouts", root / "photos", per_page=1, seed=args.seed, difficulty="normal")
            ingest(root / "photos", printouts=root / "printouts", out=root / "captures")
            print(f"{name} ({spec or 'bare demo'}): sheets, photos, ingest {time.perf_counter() - t:.0f} s", flush=True)
        if not (root / "captures" / "report" / "robust.csv").exists():
            others = [f"demo+{d}" for d in defenses if d != spec] if spec is None else ["demo"]
            make_report(root / "captures", printouts=root / "printouts", artificial=False, models=others,
                        defense_draws=args.draws)
    print("\nThrough the virtual camera: top-1 robust accuracy %, digital / photographed [Wilson 95 %]; "
          "destruction (photographed, top-1, average case) with its n.\n")
    print("| defense | attack | mode | clean digital | clean photo | digital | photo | destruction |")
    print("|---|---|---|---|---|---|---|---|")
    for name, spec in runs:
        root = args.work / name / "captures" / "report"
        robust, figures = rows_of(root / "robust.csv"), rows_of(root / "figures.csv")
        for model in dict.fromkeys(r["model"] for r in robust):
            if model == "demo" and spec is not None:
                continue
            defense = model.partition("+")[2] or "none"
            mode = "adaptive" if spec is not None else ("non-adaptive" if defense != "none" else "white box")

            def cell(attack: str, source: str) -> str:
                r = next(r for r in robust if r["model"] == model and r["attack"] == attack and r["source"] == source)
                return fmt(int(r["k"]), int(r["n"]))

            for attack in [a for a in dict.fromkeys(r["attack"] for r in robust) if a != "clean"]:
                d = next((f for f in figures if f["model"] == model and f["attack"] == attack and f["source"] == "photo"
                          and f["case"] == "average" and f["table"] == "destruction" and f["metric"] == "top1"), None)
                dest = "n/a" if d is None or not int(d["n"]) else f"{fmt(int(d['k']), int(d['n']))} n={d['n']}"
                print(f"| {defense} | {attack.replace('_e', ' ε=')} | {mode} | {cell('clean', 'digital')} | "
                      f"{cell('clean', 'photo')} | {cell(attack, 'digital')} | {cell(attack, 'photo')} | {dest} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--defense", action="append", default=[], help="a --defense SPEC; repeatable")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "cifar10")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--eps", default="8,16", help="the digital table's eps, comma-separated")
    ap.add_argument("--factors", default="1,2", help="the adaptive attack's step factors, comma-separated")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--samples", type=int, default=8, help="EoT draws per gradient of the adaptive attack")
    ap.add_argument("--draws", type=int, default=4, help="classifications per picture of a random defense")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--photos", action="store_true", help="also through sheets, the virtual camera and ingest")
    ap.add_argument("--photos-only", action="store_true", help="--photos without the digital table")
    ap.add_argument("--methods", default="bim", help="make-sheets --methods of the --photos runs (e.g. eot)")
    ap.add_argument("--work", type=Path, default=Path("bench-transforms"))
    ap.add_argument("--out", type=Path, default=None, help="write the digital rows as JSON")
    ap.add_argument("--clean-only", action="store_true", help="the digital table's clean column alone (no attack)")
    args = ap.parse_args()
    if not args.data.is_dir():
        sys.exit(f"needs {args.data} (CIFAR-10)")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.photos_only:
        photos(args)
        return
    rows = digital(args)
    if args.out:
        args.out.write_text(json.dumps({"count": args.count, "seed": args.seed, "samples": args.samples,
                                        "draws": args.draws, "rows": rows}, indent=1) + "\n")
    if args.photos:
        photos(args)


if __name__ == "__main__":
    main()
