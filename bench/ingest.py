"""Benchmark: seconds per 12-megapixel phone photo in ``physical ingest``, and what they are spent on.

    python bench/ingest.py                  # 6 photos, OpenCV's default threads
    python bench/ingest.py --threads 1      # one thread (OMP_NUM_THREADS=1 too)
    python bench/ingest.py --rates 40       # also: how often markers are found, over harder photos
    python bench/ingest.py --digital-size 299   # crops of 299 px (Inception's input) instead of 32

A demo experiment (4 pictures x 13 variants: 2 pages of 26 images) is made in a
temporary folder; each photo is page 1 rendered at 300 dpi and warped with a
random rotation and perspective into a 4032 x 3024 frame, with uneven light,
blur and noise, saved as a JPEG (quality 92, ~3 MB, like a phone's).

Reported: the median wall time of ``ingest()`` per photo (the target is
< 0.5 s, the limit 1 s), then the median time of each stage run on its own:
decode (file bytes -> RGB array), grey + detect (OpenCV's QR detector on a
copy scaled to DETECT_SIDE px), read + refine + register (decode each code at
full resolution, align it to its printed pattern, fit the homography), crops
(26 warps + INTER_AREA), PNG encode of the crops, and the debug overlay.
With ``--rates N``: the share of markers found and of photos ingested over N
photos with the page filling 45-95 % of the frame, blur sigma 0.5-2.5 px.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def homography(size_mm, photo_wh, rot, fill, persp, rng):
    import cv2

    w, h = size_mm
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
    th = np.deg2rad(rot)
    r = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    c = (corners - [w / 2, h / 2]) @ r.T
    ext = c.max(0) - c.min(0)
    sc = fill * min(photo_wh[0] / ext[0], photo_wh[1] / ext[1])
    dst = c * sc + [photo_wh[0] / 2, photo_wh[1] / 2] + rng.uniform(-1, 1, 2) * (1 - fill) * 0.4 * np.array(photo_wh)
    dst += rng.uniform(-1, 1, dst.shape) * persp * sc * min(w, h) / 2
    return cv2.getPerspectiveTransform(corners.astype(np.float32), dst.astype(np.float32)).astype(float)


def photo_jpeg(rendered, dpi, hom, wh, rng, blur, noise=3.0, quality=92) -> bytes:
    import cv2

    s = dpi / 25.4
    to_render = np.array([[s, 0, -0.5], [0, s, -0.5], [0, 0, 1.0]])
    img = cv2.warpPerspective(rendered, hom @ np.linalg.inv(to_render), wh, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(60, 52, 45)).astype(np.float32)
    yy, xx = np.mgrid[0:wh[1], 0:wh[0]].astype(np.float32)
    img *= (1 - 0.25 * (0.6 * xx / wh[0] + 0.4 * yy / wh[1]))[..., None]
    img = cv2.GaussianBlur(img, (0, 0), blur)
    img += rng.normal(0, noise, img.shape).astype(np.float32)
    _, buf = cv2.imencode(".jpg", cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes()


def median_time(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def stage_times(data: bytes, exp_id: str, page_map, dec, size: int) -> dict[str, float]:
    """Seconds of each stage of ingest on one photo, each run on its own."""
    import cv2

    from physical.capture import codes, crops, overlay, register
    from physical.photo_io import decode_photo, encode_png

    t: dict[str, float] = {"decode": median_time(lambda: decode_photo(data))}
    rgb = decode_photo(data)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    t["grey+detect"] = median_time(
        lambda: codes.detect_quads(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), codes.DETECT_SIDE, dec))
    t_scan = median_time(lambda: register.scan_photo(gray, exp_id, page_map, dec), 2)
    t["read+register"] = t_scan - median_time(lambda: codes.detect_quads(gray, codes.DETECT_SIDE, dec))
    scan = register.scan_photo(gray, exp_id, page_map, dec)
    fit = scan.fits[0]
    t["crops"] = median_time(lambda: [crops.crop_slot(rgb, fit.h, s.rect, (size, size)) for s in fit.page.slots])
    crops = [crops.crop_slot(rgb, fit.h, s.rect, (size, size))[0] for s in fit.page.slots]
    t["png"] = median_time(lambda: [encode_png(c) for c in crops])
    t["overlay"] = median_time(lambda: overlay.draw_overlay(rgb, scan, "bench", True))
    return t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=int, default=6)
    p.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's choice)")
    p.add_argument("--rates", type=int, default=0, help="also measure detection rates over N harder photos")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--digital-size", type=int, default=None,
                   help="pretend the digital images are N x N px (rewrites the PNGs; crops are made at this size)")
    args = p.parse_args()
    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import cv2
    import pypdfium2 as pdfium

    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    from physical.capture import codes, run as ing
    from physical.sheets.manifest import manifest_pages
    from physical.sheets.run import make_sheets

    rng = np.random.default_rng(args.seed)
    wh, dpi = (4032, 3024), 300
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sheets = make_sheets(tmp / "printouts", count=4)
        pages = manifest_pages(sheets.manifest)
        page = pages[0]
        size = 32
        if args.digital_size:
            size = args.digital_size
            for png in (tmp / "printouts" / "images").glob("*.png"):
                cv2.imwrite(str(png), cv2.resize(cv2.imread(str(png)), (size, size), interpolation=cv2.INTER_NEAREST))
        doc = pdfium.PdfDocument(tmp / "printouts" / "sheets.pdf")
        rendered = doc[0].render(scale=dpi / 72, rev_byteorder=True).to_numpy()[..., :3].copy()
        doc.close()
        photos = tmp / "photos"
        photos.mkdir()
        datas = []
        for i in range(args.photos):
            hom = homography(page.size_mm, wh, rot=90 * (i % 4) + rng.uniform(-8, 8), fill=rng.uniform(0.75, 0.95),
                             persp=rng.uniform(0.02, 0.12), rng=rng)
            datas.append(photo_jpeg(rendered, dpi, hom, wh, rng, blur=rng.uniform(0.6, 1.5)))
            (photos / f"IMG_{i:04d}.jpg").write_bytes(datas[-1])

        # End to end: ingest() on the folder, timed per photo through its progress callback.
        stamps: list[float] = []
        t0 = time.perf_counter()
        result = ing.ingest(photos, printouts=tmp / "printouts", out=tmp / "captures",
                            progress=lambda stage, done, total: stamps.append(time.perf_counter()))
        per_photo = np.diff(stamps)
        total = time.perf_counter() - t0
        ok = sum(1 for o in result.ingested if o.markers_used == (4,))

        # Stage by stage, on the same photos.
        exp_id, page_map = sheets.manifest["experiment_id"], {q.number: q for q in pages}
        dec = codes.Decoders()
        stages: dict[str, list[float]] = {}
        for data in datas:
            for k, v in stage_times(data, exp_id, page_map, dec, size).items():
                stages.setdefault(k, []).append(v)

        threads = cv2.getNumThreads()
        cpu = platform.processor() or platform.machine()
        print(f"{len(datas)} photos 4032x3024 JPEG (~{np.mean([len(d) for d in datas]) / 1e6:.1f} MB), "
              f"{len(page.slots)} images of {size} px per page; {ok}/{len(datas)} ingested with 4 markers; "
              f"{os.cpu_count()} CPUs ({cpu}), OpenCV {cv2.__version__} with {threads} threads; "
              f"folder total {total:.2f} s")
        cols = ["median s/photo (ingest)"] + [f"{k}" for k in stages]
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        cells = " | ".join(f"{statistics.median(v):.3f}" for v in stages.values())
        print(f"| **{np.median(per_photo):.3f}** | {cells} |")
        other = np.median(per_photo) - sum(statistics.median(v) for v in stages.values())
        print(f"(the rest, {other:.3f} s: SHA-256, file writes and the index/state rewrite with fsync)")

        if args.rates:
            rates(args.rates, rng, rendered, dpi, page, page_map, exp_id, dec)


def rates(n, rng, rendered, dpi, page, page_map, exp_id, dec) -> None:
    """Markers located at DETECT_SIDE, read, and used, over harder photos."""
    import cv2

    from physical.capture import codes, register
    from physical.photo_io import decode_photo

    located = read = used = ingested = 0
    for i in range(n):
        fill, blur = rng.uniform(0.45, 0.95), rng.uniform(0.5, 2.5)
        hom = homography(page.size_mm, (4032, 3024), rot=rng.uniform(0, 360), fill=fill,
                         persp=rng.uniform(0, 0.15), rng=rng)
        rgb = decode_photo(photo_jpeg(rendered, dpi, hom, (4032, 3024), rng, blur=blur, noise=rng.uniform(1, 6)))
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        located += min(4, len(codes.detect_quads(gray, codes.DETECT_SIDE, dec)))
        scan = register.scan_photo(gray, exp_id, page_map, dec)
        read += min(4, sum(1 for c in scan.codes if c.marker is not None))
        if scan.fits:
            used += len(scan.fits[0].markers)
            ingested += 1
    print(f"over {n} photos (page filling 45-95 % of the frame, any rotation, blur sigma 0.5-2.5 px, "
          f"noise 1-6): markers located at {codes.DETECT_SIDE} px {located / (4 * n):.1%}, read "
          f"{read / (4 * n):.1%}, used after the search where the others predict them {used / (4 * n):.1%}; "
          f"photos ingested {ingested / n:.1%}")


if __name__ == "__main__":
    main()
