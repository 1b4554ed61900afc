"""``physical calibrate``: fit the simulated channel to the photos already ingested.

The clean images of an experiment are pairs of a known digital picture (the
PNG that was printed) and its photographed crop. :func:`physical.channel.fit.fit_channel`
fits the channel's deterministic part to them (per photo: the printer's and
camera's colours and levels, the blur; per crop: its exposure, the light's
gradient across it and its registration error) and estimates the noise from
what is left; the profile (:mod:`physical.channel.profile`) keeps the fitted
values of every photo and crop as the distribution to draw from.

JPEG: the quality of each photo is read from its quantisation table at ingest
(``ingest.json``). The photo's codec works on 8 x 8 blocks of *photo* pixels;
a crop pixel averages ``photo_px_per_pixel``^2 of them. Where a crop pixel
spans JPEG_CROP_PX photo pixels or more, a block is at most a few crop pixels
and its loss is in the fitted blur and noise, so the profile applies no JPEG
to the crop; where the photo resolves the picture more coarsely, the crop is
encoded at the photo's quality (an approximation: the blocks are then larger
than a crop pixel but not aligned to the crop's grid).
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..capture.codes import quad_side
from ..capture.store import STATE_NAME, overlay_name, read_captures
from ..channel.fit import FIT_STEPS, ChannelFit, Status, fit_channel
from ..channel.presets import NO_JPEG
from ..channel.profile import PROFILE_FORMAT, PROFILE_VERSION, check_profile
from ..errors import PhysicalError
from ..files import write_atomic
from ..photo_io import PhotoError, read_photo
from ..sheets.manifest import read_manifest
from ..version import __version__

PROFILE_NAME = "channel-profile.json"
MIN_CROPS = 20           # clean crops in all: fewer do not pin down a channel
MIN_PHOTO_CROPS = 2      # clean crops of one photo: fewer are left out (its light is not constrained)
JPEG_CROP_PX = 2.0       # photo px per crop px from which the photo's JPEG is left to blur and noise
# A photo whose crops the fitted channel misses by more than this RMS (0-255 levels) does not show its
# pictures as the channel can make them: crops swapped between pictures, of another print, or
# misregistered (registered crops of the virtual camera's photos fit within 1-3 levels, its HDR
# phone's within 4).
MAX_PHOTO_RMS = 10.0
# ... and a photo that fits this many times worse than the median photo is an outlier too (from
# OUTLIER_MIN_RMS up: below it, every photo fits about as well as photos can).
OUTLIER_FACTOR = 4.0
OUTLIER_MIN_RMS = 5.0
WORST_SHOWN = 3

Progress = Callable[[str, int, int], None]


@dataclass
class CalibrateResult:
    profile: dict[str, Any]
    out: Path
    fit: ChannelFit
    photos_left_out: list[str]        # too few clean crops, or excluded


def _load(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 through the reader every stage uses (``photo_io``: EXIF-upright, 8-bit RGB)."""
    try:
        return read_photo(path)[1]
    except PhotoError as exc:
        raise PhysicalError(f"{path}: cannot read this image ({exc}); run `physical ingest` "
                            "again into a fresh --out") from None


def _quad_side(quad: str) -> float:
    """Mean side in photo px of an ``index.csv`` quad (8 numbers)."""
    return quad_side(np.array([float(v) for v in quad.split()], np.float64).reshape(4, 2))


def calibrate(captures: Path = Path("captures"), *, printouts: Path = Path("printouts"), out: Path | None = None,
              steps: int = FIT_STEPS, exclude: list[str] | tuple[str, ...] = (), progress: Progress | None = None,
              status: Status | None = None, warn: Callable[[str], None] | None = None,
              local_tone: bool = True) -> CalibrateResult:
    """Fit the channel to the clean crops in ``captures`` and write the profile to ``out``
    (default ``captures/channel-profile.json``).

    ``steps``: the most gradient steps (the fit stops when it has converged);
    ``exclude``: photo file names to leave out; ``status(steps, loss, drop)``:
    the fit's progress every few steps (:func:`physical.channel.fit.fit_channel`);
    ``local_tone=False``: no per-crop tone curve (the ablation of docs/findings.md).
    Raises PhysicalError, writing nothing, when the fit does not converge or a
    photo's crops do not fit (naming the photos that fit worst).
    """
    progress = progress or (lambda stage, done, total: None)
    warn = warn or (lambda message: None)
    captures, printouts = Path(captures), Path(printouts)
    manifest = read_manifest(printouts)
    rows = [r for r in read_captures(captures, manifest) if r["variant"] == "clean"]
    unknown = sorted(set(exclude) - {r["photo"] for r in rows})
    if unknown:
        raise PhysicalError(f"{captures}: --exclude {unknown[0]}: no clean crop of a photo of that name; "
                            "name photos as captures/index.csv does (file names, e.g. IMG_0001.jpg)")
    rows = [r for r in rows if r["photo"] not in set(exclude)]
    files = {(rec["id"], v["name"]): printouts / v["file"] for rec in manifest["images"] for v in rec["variants"]}
    by_photo: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_photo.setdefault(r["photo_sha256"], []).append(r)
    left_out = sorted(rows_[0]["photo"] for rows_ in by_photo.values() if len(rows_) < MIN_PHOTO_CROPS)
    used = {sha: rs for sha, rs in by_photo.items() if len(rs) >= MIN_PHOTO_CROPS}
    n_crops = sum(len(rs) for rs in used.values())
    if n_crops < MIN_CROPS:
        raise PhysicalError(f"{captures}: {n_crops} clean crops in photos with at least {MIN_PHOTO_CROPS}; "
                            f"calibrate needs at least {MIN_CROPS}: photograph and ingest more pages")
    if left_out:
        warn(f"{len(left_out)} photo(s) with fewer than {MIN_PHOTO_CROPS} clean crops left out: "
             f"{', '.join(left_out[:5])}{' ...' if len(left_out) > 5 else ''}")
    state = json.loads((captures / STATE_NAME).read_text(encoding="utf-8"))
    quality = {p.get("sha256"): p.get("jpeg_quality") for p in state.get("photos", []) if isinstance(p, dict)}

    digital, crops, photo = [], [], []
    shas = sorted(used, key=lambda sha: used[sha][0]["photo"])
    done = 0
    for j, sha in enumerate(shas):
        for r in used[sha]:
            d = _load(files[(r["image_id"], "clean")])
            c = _load(captures / r["crop"])
            if c.shape != d.shape:
                raise PhysicalError(f"{captures / r['crop']}: {c.shape[1]}x{c.shape[0]} px, its digital image is "
                                    f"{d.shape[1]}x{d.shape[0]}; run `physical ingest` again into a fresh --out")
            digital.append(d)
            crops.append(c)
            photo.append(j)
            done += 1
            progress("load", done, n_crops)
    shapes = {d.shape for d in digital}
    if len(shapes) > 1:
        raise PhysicalError(f"{printouts}: pictures of different sizes ({', '.join(str(s[:2]) for s in shapes)}); "
                            "calibrate fits one size")

    def tensor(images: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)

    x, y = tensor(digital), tensor(crops)
    photo_t = torch.tensor(photo, dtype=torch.int64)
    fit = fit_channel(x, y, photo_t, steps=steps, status=status, local_tone=local_tone)
    _check_fit(fit, [(used[sha][0]["photo"], len(used[sha]), overlay_name(sha)) for sha in shas], steps, captures)
    width = x.shape[-1]
    photos = []
    for j, sha in enumerate(shas):
        rs = used[sha]
        idx = (photo_t == j).nonzero().flatten()
        q = quality.get(sha)
        px_per_pixel = float(np.mean([_quad_side(r["quad"]) for r in rs if r.get("quad")] or [float("nan")])) / width
        crop_q = int(q) if isinstance(q, int) and px_per_pixel < JPEG_CROP_PX else NO_JPEG
        entry: dict[str, Any] = {"photo": rs[0]["photo"], "crops": len(rs),
                                 "rms_residual": round(float(fit.rms[j]) * 255, 3)}
        for key, value in fit.photo.items():
            entry[key] = _round(value[j].tolist())
        entry.update({"jpeg_quality": crop_q, "photo_jpeg_quality": q if isinstance(q, int) else None,
                      "photo_px_per_pixel": round(px_per_pixel, 3) if np.isfinite(px_per_pixel) else None})
        for key, value in fit.crop.items():
            entry[key] = _round(value[idx].tolist())
        photos.append(entry)
    profile = check_profile({
        "format": PROFILE_FORMAT, "format_version": PROFILE_VERSION, "tool_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "fitted_on": {"experiment_id": manifest["experiment_id"], "captures": str(captures.resolve()),
                      "photos": len(photos), "crops": n_crops, "image_px": width,
                      "rms_residual": round(fit.rms_all * 255, 3), "converged": fit.converged, "steps": len(fit.loss_history),
                      "seconds": round(fit.seconds, 1), "excluded": sorted(exclude), "local_tone": local_tone,
                      "jpeg": f"the photo's quality where a crop pixel spans under {JPEG_CROP_PX:g} photo pixels, "
                              "else none (its loss is in the blur and noise)"},
        "photos": photos,
    }, "fitted profile")
    out = Path(out) if out is not None else captures / PROFILE_NAME
    write_atomic(out, (json.dumps(profile, indent=1) + "\n").encode("utf-8"))
    return CalibrateResult(profile=profile, out=out, fit=fit, photos_left_out=sorted([*left_out, *exclude]))


def _check_fit(fit: ChannelFit, photos: list[tuple[str, int, str]], steps: int, captures: Path) -> None:
    """Raise, naming the photos that fit worst, unless the fit converged and every photo fits.
    ``photos``: (name, clean crops, overlay path in ``captures``) of each photo fitted."""
    rms = fit.rms.numpy() * 255
    median = float(np.median(rms))
    bad = (rms > MAX_PHOTO_RMS) | ((rms > OUTLIER_FACTOR * median) & (rms > OUTLIER_MIN_RMS))
    if fit.converged and not bad.any():
        return
    order = np.argsort(-rms)
    shown = [int(j) for j in order if bad[j]][:WORST_SHOWN] or [int(j) for j in order[:WORST_SHOWN]]
    worst = ", ".join(f"{photos[j][0]} (RMS {rms[j]:.1f} of 255 over {photos[j][1]} crops; "
                      f"{captures / photos[j][2]})" for j in shown)
    more = f" and {int(bad.sum()) - len(shown)} more" if bad.sum() > len(shown) else ""
    if bad.any():
        why = (f"the crops of {worst}{more} do not match their pictures as a print and photo can (the median "
               f"photo fits within {median:.1f} of 255): swapped, of another print, or misregistered")
    else:
        h = fit.loss_history
        why = (f"the fit did not settle in {steps} steps (loss {h[len(h) * 3 // 4]:.3g} -> {h[-1]:.3g} over the "
               f"last quarter); the photos that fit worst: {worst}")
    raise PhysicalError(f"{captures}: {why}; no profile written. Look at their overlays, then leave them out "
                        "with --exclude NAME or photograph those pages again")


def _round(value: Any) -> Any:
    if isinstance(value, list):
        return [_round(v) for v in value]
    return round(float(value), 5)


def summarise(profile: dict[str, Any]) -> list[tuple[str, str]]:
    """(parameter, 'median (min-max over photos)') lines of a profile, for the terminal."""
    photos = profile["photos"]
    lines = []
    for key in ("saturation", "black_level", "paper_white", "white_balance", "ink_cast", "blur_frac", "read_noise",
                "shot_noise"):
        vals = np.array([p[key] for p in photos], np.float64).reshape(len(photos), -1)
        med, lo, hi = np.median(vals, 0), vals.min(0), vals.max(0)
        lines.append((key, "  ".join(f"{m:.3f} ({a:.3f}-{b:.3f})" for m, a, b in zip(med, lo, hi))))
    for key in ("exposure", "light_gradient", "local_tone", "corner_jitter"):
        vals = np.concatenate([np.array(p[key], np.float64).reshape(len(p[key]), -1) for p in photos])
        lines.append((key, f"spread (std over crops) {float(vals.std(0).mean()):.4f}"))
    q = [p["photo_jpeg_quality"] for p in photos if p["photo_jpeg_quality"] is not None]
    lines.append(("photo JPEG quality", f"{min(q)}-{max(q)}" if q else "unknown (not JPEG, or ingested before 0.2)"))
    lines.append(("crop JPEG quality", ", ".join(sorted({str(p['jpeg_quality'] or 'none') for p in photos}))))
    return lines
