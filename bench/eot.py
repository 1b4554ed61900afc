"""Benchmark: do EoT examples survive the photo? Digital strength against photographed destruction.

    python bench/eot.py --profile cal/profile-plain.json            # K = 16, 100 pictures
    python bench/eot.py --profile cal/profile-plain.json --samples 1,4,16,32 --work eot
    python bench/eot.py --profile cal/profile-plain.json --digital 0,0.0625,0.2105 --simulated-only  # the probe

For each K: ``make-sheets`` on ``--count`` CIFAR-10 test pictures (demo model) with
bim, ll, eot and eot_ll at eps 8 and 16, EoT through ``--channel`` (a calibrated
profile, or a preset); the virtual camera (normal, one photo per page); ingest;
report with the ``typical`` preset beside the photos (a channel the attack did
not use). Printed per method, pooled over eps 8 and 16: digital top-1 accuracy
of the saved images, and the top-1 destruction rate (average case) of the
photos and of the other channel, with Wilson 95% intervals. ``--simulated-only``
photographs nothing: the destruction rate is that of ``--channel`` itself (fresh
draws of what EoT attacked through; quick, the probe that chose make-sheets'
``--eot-digital``). Needs ``../shared/data/cifar10``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
METHODS = ["bim", "ll", "eot", "eot_ll"]
EPS = [8, 16]


def pooled(figures: Path, source: str) -> dict[str, tuple[int, int]]:
    """method -> (k, n) of the top-1 average-case destruction rate, summed over EPS."""
    out: dict[str, list[int]] = {}
    with open(figures, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if (r["source"], r["case"], r["table"], r["metric"]) == (source, "average", "destruction", "top1") \
                    and int(r["eps"]) in EPS:
                kn = out.setdefault(r["method"], [0, 0])
                kn[0] += int(r["k"])
                kn[1] += int(r["n"])
    return {m: (k, n) for m, (k, n) in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channel", "--profile", dest="channel", default="typical",
                    help="what EoT attacks through: a preset or a profile file")
    ap.add_argument("--samples", default="16", help="K values, comma-separated")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--step-factor", type=int, default=1, help="EoT takes this many times the paper's steps")
    ap.add_argument("--digital", default=None,
                    help="weights of the untransformed image in the expectation, comma-separated, one run each "
                         "(default: make-sheets')")
    ap.add_argument("--simulated-only", action="store_true",
                    help="no photos: destruction under fresh draws of --channel (the --eot-digital probe)")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"needs {SHARED} (CIFAR-10)")

    from physical.report.metrics import wilson_interval

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"EoT through {args.channel}, {args.step_factor}x the paper's steps, digital weight "
          f"{args.digital or 'default'}; {args.count} CIFAR-10 test pictures "
          f"(seed {args.seed}); eps {EPS} pooled")

    def fmt(kn: tuple[int, int]) -> str:
        k, n = kn
        ci = wilson_interval(k, n)
        return f"{100 * k / n:.0f}% [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}] n={n}" if n and ci else "n/a"

    digitals: list[float | None] = [None] if args.digital is None else [float(d) for d in args.digital.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for K in [int(k) for k in args.samples.split(",")]:
            for digital in digitals:
                run(args, work, K, digital, fmt)


def run(args: argparse.Namespace, work: Path, K: int, digital: float | None, fmt) -> None:
    from physical.capture.camera import simulate_photos
    from physical.capture.run import ingest
    from physical.channel.profile import channel_name
    from physical.report.run import make_report
    from physical.sheets.run import make_sheets

    root = work / (f"K{K}" + (f"-steps{args.step_factor}" if args.step_factor != 1 else "")
                   + (f"-digital{digital:g}" if digital is not None else ""))
    t = time.perf_counter()
    if not (root / "printouts" / "manifest.json").exists():
        make_sheets(root / "printouts", images=SHARED / "test", count=args.count, seed=args.seed,
                    methods=METHODS, eps=EPS, channel=args.channel, eot_samples=K, force=True,
                    eot_step_factor=args.step_factor, **({"eot_digital": digital} if digital is not None else {}))
        print(f"\nK={K}, digital weight {'default' if digital is None else digital}: attacks "
              f"{time.perf_counter() - t:.0f} s")
    if args.simulated_only:
        other = f"simulated:{channel_name(args.channel)}"
        report = root / "printouts" / "report" / "figures.csv"
        if not report.exists():
            make_report(root / "captures", printouts=root / "printouts", simulated=args.channel,
                        simulated_only=True, artificial=False)
        sources = [(other, f"{other} destruction, top-1")]
    else:
        if not (root / "captures" / "index.csv").exists():
            simulate_photos(root / "printouts", root / "photos", per_page=1, seed=args.seed, difficulty="normal")
            ingest(root / "photos", printouts=root / "printouts", out=root / "captures")
            print(f"\nK={K}: sheets, photos and ingest {time.perf_counter() - t:.0f} s")
        report = root / "captures" / "report" / "figures.csv"
        if not report.exists():
            make_report(root / "captures", printouts=root / "printouts", simulated="typical", artificial=False)
        sources = [("photo", "photographed destruction, top-1"),
                   ("simulated:typical", "simulated:typical destruction, top-1")]
    manifest = json.loads((root / "printouts" / "manifest.json").read_text())
    found = {src: pooled(report, src) for src, _ in sources}
    print(f"\nK={K}, digital weight {'default' if digital is None else digital} | method | "
          "digital top-1 accuracy | " + " | ".join(head for _, head in sources) + " |")
    for m in METHODS:
        hits = [int(v["top5"][0]["index"] == rec["label"]) for rec in manifest["images"]
                for v in rec["variants"] if v["method"] == m]
        acc = fmt((sum(hits), len(hits)))
        print(f"| {m} | {acc} | " + " | ".join(fmt(found[src].get(m, (0, 0))) for src, _ in sources) + " |",
              flush=True)

if __name__ == "__main__":
    main()
