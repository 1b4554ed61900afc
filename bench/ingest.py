"""Benchmark: ``physical ingest`` on virtual-camera photos: how right, and how fast.

    python bench/ingest.py                          # 20 photos each of normal, hard, extreme
    python bench/ingest.py --photos 50 --difficulties normal
    python bench/ingest.py --megapixels 200         # also: one photo upscaled to 200 MP, time and peak memory

A demo experiment (4 pictures x 13 variants: 2 A4 pages of 26 images of 32 px,
with registration marks) is made in a temporary folder and photographed by the
virtual camera (``physical simulate-photos``, 12 MP frames) at each
difficulty. Each folder is ingested once; reported per difficulty:

- pages found, of those recoverable (a corner code whole and uncovered);
- crops written, images dropped (not verified), crops of the wrong page,
  image or variant (must be 0);
- the corner error of every crop written against the camera's exact ground
  truth (:mod:`physical.capture.truth`): median, p95, max, and how many
  above 3 % and 5 % of the image width;
- seconds per photo: the median time between one photo's end and the next's
  in ``ingest()`` (decode, find codes and marks, register, verify, crop,
  write), the first photo (which also loads the experiment) excluded.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed_ingest(photos: Path, printouts: Path, out: Path) -> tuple[object, list[float]]:
    from physical.capture.run import ingest

    stamps: list[float] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "photos":
            stamps.append(time.perf_counter())

    result = ingest(photos, printouts=printouts, out=out, progress=progress)
    per_photo = [b - a for a, b in zip(stamps[1:], stamps[2:])]   # stamps[0] is "0 done"
    return result, per_photo


def large_photo(src: Path, dst: Path, megapixels: float) -> None:
    import cv2

    img = cv2.imread(str(src))
    s = (megapixels * 1e6 / (img.shape[0] * img.shape[1])) ** 0.5
    w, h = int(img.shape[1] * s) // 8 * 8, int(img.shape[0] * s) // 8 * 8   # phone sensors: multiples of 8
    big = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    cv2.imwrite(str(dst), big, [cv2.IMWRITE_JPEG_QUALITY, 90])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=20, help="photos per difficulty (even: both pages alike)")
    ap.add_argument("--difficulties", default="normal,hard,extreme")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--megapixels", type=float, default=0, help="also ingest one photo upscaled to this size")
    args = ap.parse_args()

    from physical.capture import truth
    from physical.capture.camera import simulate_photos
    from physical.sheets.run import make_sheets

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_sheets(root / "printouts", count=4, seed=args.seed)
        print("| difficulty | photos | pages found (of recoverable) | crops | dropped | wrong | corner error "
              "median / p95 / max, % of width | > 3 % | > 5 % | median s/photo |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for difficulty in args.difficulties.split(","):
            photos = root / f"photos-{difficulty}"
            simulate_photos(root / "printouts", photos, per_page=max(1, args.photos // 2), seed=args.seed,
                            difficulty=difficulty)
            result, per_photo = timed_ingest(photos, root / "printouts", root / f"captures-{difficulty}")
            s = truth.score(root / "printouts", photos, root / f"captures-{difficulty}")
            print(f"| {difficulty} | {s.photos} | {s.pages_found} ({s.pages_recoverable}) | {s.crops} | {s.dropped} | "
                  f"{len(s.wrong)} | {s.percentile(50):.2f} / {s.percentile(95):.2f} / {s.max_pct:.2f} | "
                  f"{s.over(3)} | {s.over(5)} | {statistics.median(per_photo):.2f} |", flush=True)
            for w in s.wrong:
                print("   wrong:", w)
            reasons = result.dropped_reasons()
            if reasons:
                print("   dropped: " + "; ".join(f"{n} {r}" for r, n in reasons[:4]))
        if args.megapixels:
            src = sorted((root / f"photos-{args.difficulties.split(',')[0]}").glob("*.jpg"))[0]
            big = root / "big"
            big.mkdir()
            large_photo(src, big / "big.jpg", args.megapixels)
            code = ("import sys, time, resource; from pathlib import Path; from physical.capture.run import ingest; "
                    "t = time.perf_counter(); r = ingest(Path(sys.argv[1]), printouts=Path(sys.argv[2]), "
                    "out=Path(sys.argv[3])); print(r.outcomes[0].status, r.outcomes[0].crops, "
                    "round(time.perf_counter() - t, 2), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)")
            out = subprocess.run([sys.executable, "-c", code, str(big), str(root / "printouts"), str(root / "cap-big")],
                                 capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
            status, crops, secs, rss = out.stdout.split()
            size = (big / "big.jpg").stat().st_size / 1e6
            print(f"\n{args.megapixels:g} MP photo ({size:.0f} MB JPEG): {status}, {crops} crops, {secs} s, "
                  f"peak memory {rss} MB (the whole process, torch included)")


if __name__ == "__main__":
    main()
