"""Benchmark: does a calibrated channel predict the photographed figures? And how long does calibrate take?

    python bench/calibration.py                       # fit on 100 pictures, predict 400 others (plain phone)
    python bench/calibration.py --phones plain,hdr    # the same for each phone of the virtual camera
    python bench/calibration.py --fit 40 --predict 100 --work /tmp/cal   # smaller, keeps its folders
    python bench/calibration.py --timing-only 1000    # calibrate on ~1,000 clean crops (167 photos), timed
    python bench/calibration.py --phones plain,hdr --no-local-tone --work cal   # the ablation: no per-crop tone

Two experiments on the demo model, each printed and photographed by the
virtual camera (``physical simulate-photos``, normal: one photo per page),
with each phone of ``--phones`` (the same prints; ``hdr``: HDR local tone
mapping, auto white balance under tungsten, daylight and mixed light,
recycled and bright-white paper):

- **fit**: ``--fit`` pictures of CIFAR-10's *training* set (never the pictures
  predicted), photographed with camera seed 2, ingested, then ``physical
  calibrate`` -> a profile;
- **predict**: ``--predict`` pictures of CIFAR-10's test set, photographed
  with camera seed 1, ingested, and reported with the profile and with the
  ``typical`` preset beside the photos.

Printed: for every average-case cell (method x eps) with n >= 30 in both the
photos and the simulation, the top-1 destruction rate photographed and
simulated, and the mean absolute difference per source (the sim-to-real gap).
Needs ``../shared/data/cifar10``.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
MIN_N = 30


def experiment(root: Path, images: Path, count: int, seed: int, camera_seed: int, phone: str = "plain",
               **sheets: object) -> tuple[Path, Path]:
    """``root/printouts`` (made once), photographed by ``phone`` and ingested into ``root/<phone>/``."""
    from physical.capture.camera import simulate_photos
    from physical.capture.run import ingest
    from physical.sheets.run import make_sheets

    printouts, photos, captures = root / "printouts", root / phone / "photos", root / phone / "captures"
    if not (captures / "index.csv").exists():
        t = time.perf_counter()
        if not (printouts / "manifest.json").exists():
            make_sheets(printouts, images=images, count=count, seed=seed, force=True, **sheets)
        simulate_photos(printouts, photos, per_page=1, seed=camera_seed, difficulty="normal", phone=phone)
        ingest(photos, printouts=printouts, out=captures)
        print(f"{root.name}, {phone} phone: {count} pictures made, photographed and ingested in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
    return printouts, captures


def cells(figures: Path) -> dict[str, dict[tuple[str, str], tuple[float, int]]]:
    out: dict[str, dict[tuple[str, str], tuple[float, int]]] = {}
    with open(figures, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if (r["case"], r["table"], r["metric"]) == ("average", "destruction", "top1") and r["value"]:
                out.setdefault(r["source"], {})[(r["method"], r["eps"])] = (float(r["value"]), int(r["n"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", type=int, default=100, help="pictures of the fitting experiment")
    ap.add_argument("--predict", type=int, default=400, help="pictures of the predicted experiment")
    ap.add_argument("--work", type=Path, default=None, help="keep the experiments here (re-used when present)")
    ap.add_argument("--timing-only", type=int, default=0, help="only time calibrate on about this many clean crops")
    ap.add_argument("--phones", default="plain", help="virtual camera phones, comma-separated (plain, hdr)")
    ap.add_argument("--no-local-tone", action="store_true",
                    help="calibrate --no-local-tone (profile-PHONE-no-local-tone.json): the ablation in findings")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"needs {SHARED} (CIFAR-10)")

    from physical.calibrate.run import calibrate

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        if args.timing_only:
            # One clean crop per picture; with FGSM at one eps a page holds 13 pictures (fewer photos to make).
            printouts, captures = experiment(work / "timing", SHARED / "train", args.timing_only, 3, 3,
                                             methods=["fast"], eps=[8])
            t = time.perf_counter()
            r = calibrate(captures, printouts=printouts, out=work / "timing.json")
            f = r.profile["fitted_on"]
            print(f"calibrate: {f['crops']} clean crops from {f['photos']} photos in {time.perf_counter() - t:.1f} s "
                  f"(RMS residual {f['rms_residual']:.2f} of 255, converged {f['converged']})")
            return
        for phone in args.phones.split(","):
            predict(work, phone, args.fit, args.predict, local_tone=not args.no_local_tone)


def predict(work: Path, phone: str, n_fit: int, n_predict: int, local_tone: bool = True) -> None:
    """Calibrate on the fitting experiment's photos, then report the predicted one with the profile and
    with ``typical``; prints the table of cells and the mean gap per source."""
    from physical.calibrate.run import calibrate
    from physical.report.run import make_report

    fit_printouts, fit_captures = experiment(work / "fit", SHARED / "train", n_fit, 2, 2, phone)
    t = time.perf_counter()
    profile = work / f"profile-{phone}{'' if local_tone else '-no-local-tone'}.json"
    r = calibrate(fit_captures, printouts=fit_printouts, out=profile, local_tone=local_tone)
    f = r.profile["fitted_on"]
    print(f"\n{phone} phone: calibrate on {f['crops']} clean crops of {f['photos']} photos: "
          f"{time.perf_counter() - t:.1f} s ({f['steps']} steps, the fit {f['seconds']:.1f} s), "
          f"RMS residual {f['rms_residual']:.2f} of 255", flush=True)
    printouts, captures = experiment(work / "predict", SHARED / "test", n_predict, 1, 1, phone)
    found: dict[str, dict[tuple[str, str], tuple[float, int]]] = {}
    for sim in ("typical", str(profile)):
        rep = make_report(captures, printouts=printouts, out=work / phone / f"report-{Path(sim).stem}",
                          simulated=sim, artificial=False)
        found.update(cells(rep.out / "figures.csv"))
    photo = found.pop("photo")
    print("\n| method | eps | photographed | " + " | ".join(found) + " |")
    print("|---|---|---|" + "---|" * len(found))
    gaps: dict[str, list[float]] = {s: [] for s in found}
    for key, (value, n) in photo.items():
        if n < MIN_N or any(found[s].get(key, (0, 0))[1] < MIN_N for s in found):
            continue
        line = [f"{100 * found[s][key][0]:.1f} (n={found[s][key][1]})" for s in found]
        for s in found:
            gaps[s].append(abs(found[s][key][0] - value))
        print(f"| {key[0]} | {key[1]} | {100 * value:.1f} (n={n}) | " + " | ".join(line) + " |")
    print(f"\n{phone} phone: mean |simulated - photographed|, top-1 destruction, average case, cells with n >= 30:")
    for s, g in gaps.items():
        print(f"  {s}: {100 * statistics.mean(g):.1f} points over {len(g)} cells" if g else f"  {s}: no cell")


if __name__ == "__main__":
    main()
