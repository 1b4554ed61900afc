"""Stage 2, ``physical ingest``: phone photos of the printed sheets -> registered crops.

For every photo in PHOTOS_DIR (recursively; hidden files and folders are
ignored, files without an image suffix are counted as "not images"):

1. **Read** it (:mod:`physical.photo_io`): any common format incl. HEIC,
   EXIF orientation applied, 8-bit RGB; above 50 MP at a power-of-two
   reduction (positions are reported in the full photo's pixels). The SHA-256
   of the file bytes names the photo: a photo already ingested into ``out`` is
   not ingested again, and a byte copy under another name is named as such.
2. **Identify** the pages in view by their corner QR codes (:mod:`.codes`):
   located at coarse to fine scales, read at full resolution, validated
   strictly against this experiment; one code identifies a page.
3. **Register** every printed image (:mod:`.register`): on format-2 pages a
   homography per image from the registration marks around it
   (:mod:`.marks`), never extrapolated; on format-1 pages one homography from
   the corner codes.
4. **Verify and crop** (:mod:`.crops`, :mod:`.verify`): an image is cropped
   only if its registration is verified (marks all around it, a small fit
   residual) and the crop then matches its digital clean picture; otherwise it
   is dropped, with its reason, in the summary, ``ingest.json`` and the
   overlay (:mod:`.overlay`).
5. **Write** the crops, then ``index.csv`` and ``ingest.json`` (:mod:`.store`).

Output (``out``, default ``captures/``): see :func:`ingest` and the README.
Every file is written atomically, the index and state last for each photo,
so an interrupted run is simply run again.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import PhysicalError
from ..files import write_file
from ..photo_io import PhotoError, decode_reduced, encode_png, jpeg_quality
from ..sheets import payload
from ..sheets.layout import Page
from ..sheets.manifest import manifest_pages, read_manifest
from ..version import __version__
from .codes import Decoders, transform_points
from .crops import Target, clean_pictures, crop_slot, digital_targets, safe_name
from .overlay import draw_overlay
from .register import Scan, SlotFit, count_reasons, scan_photo
from .verify import check_crop
from .store import (CROPS_DIR, STATE_FORMAT, STATE_FORMAT_VERSION, list_photos, overlay_name, read_index,
                    read_state, write_index, write_state)

# Registration quality, relative to the size of a QR module in the photo.
WARN_REPROJ_MODULES = 0.35
MAX_REPROJ_MODULES = 1.0
# Photos smaller than this (longest side) cannot show 20 mm codes readably.
MIN_PHOTO_SIDE = 200

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class PhotoOutcome:
    """What happened to one photo file.

    ``status`` is ``"ingested"``, ``"already ingested"`` or ``"skipped"``;
    ``reason`` says why for the latter two. ``pages`` lists the pages cropped
    from it; ``markers_used``, ``reprojection_px`` and ``homographies`` are per
    page, in the same order. A homography is 9 numbers, row-major, mapping
    page mm (origin top-left, y down) to pixel centres of the upright photo
    (after its EXIF orientation). ``overlay`` is relative to the output folder.
    """

    photo: str
    status: str
    reason: str = ""
    sha256: str = ""
    pages: tuple[int, ...] = ()
    crops: int = 0
    markers_used: tuple[int, ...] = ()
    reprojection_px: tuple[float, ...] = ()
    warnings: tuple[str, ...] = ()
    overlay: str = ""
    homographies: tuple[tuple[float, ...], ...] = ()
    dropped: tuple[dict[str, Any], ...] = ()
    jpeg_quality: int | None = None     # the photo's IJG-equivalent JPEG quality (None: not a JPEG)


@dataclass(frozen=True)
class IngestResult:
    """Summary of one ``ingest`` run; ``pages_*`` count every photo in ``out``, earlier runs too."""

    out: Path
    experiment_id: str
    n_pages: int
    outcomes: tuple[PhotoOutcome, ...]
    not_images: int
    pages_seen: tuple[int, ...]
    pages_missing: tuple[int, ...]
    crops_total: int
    photos_before: int
    strict: bool = False

    def _with(self, status: str) -> tuple[PhotoOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == status)

    @property
    def ingested(self) -> tuple[PhotoOutcome, ...]:
        return self._with("ingested")

    @property
    def skipped(self) -> tuple[PhotoOutcome, ...]:
        return self._with("skipped")

    @property
    def already(self) -> tuple[PhotoOutcome, ...]:
        return self._with("already ingested")

    @property
    def dropped(self) -> tuple[dict[str, Any], ...]:
        """The images of this run's photos that were not written, each with its reason."""
        return tuple(d for o in self.outcomes for d in o.dropped)

    def dropped_reasons(self) -> list[tuple[str, int]]:
        """(reason, how many images), most frequent first."""
        return count_reasons(self.dropped)

    @property
    def crops_new(self) -> int:
        return sum(o.crops for o in self.ingested)

    @property
    def exit_code(self) -> int:
        """0, or 1 when nothing is ingested (now or before), or when ``strict`` and a photo was skipped."""
        if not self.ingested and self.photos_before == 0 and not self.already:
            return 1
        if self.strict and self.skipped:
            return 1
        return 0


def ingest(
    photos: Path,
    *,
    printouts: Path = Path("printouts"),
    out: Path = Path("captures"),
    strict: bool = False,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
) -> IngestResult:
    """Find the printed sheets in the photos under ``photos`` and cut out every image.

    Writes into ``out``:

    - ``crops/<first 12 hex of the photo's SHA-256>/<image id>_<variant>.png``:
      each slot, registered and resampled to its digital image's size (8-bit
      RGB, lossless);
    - ``index.csv``: one row per crop, columns INDEX_COLUMNS; ``crop`` is
      relative to ``out``, ``digital`` is the digital PNG relative to ``out``
      (absolute if no relative path exists);
    - ``overlays/<checksum12>.jpg``: the photo with the markers and slots found;
    - ``ingest.json``: the experiment id and the photos ingested.

    ``progress(stage, done, total)`` is called per photo, ``warn(message)`` for
    problems that do not stop a photo. Photos that cannot be used are skipped
    and listed in the result with a one-line reason; only problems with the
    folders or the manifest raise :class:`PhysicalError`.
    """
    photos, printouts, out = Path(photos), Path(printouts), Path(out)
    progress = progress or (lambda stage, done, total: None)
    warn = warn or (lambda message: None)
    manifest = read_manifest(printouts)
    experiment_id = str(manifest.get("experiment_id", ""))
    try:
        payload.check_experiment_id(experiment_id)
        pages = {p.number: p for p in manifest_pages(manifest)}
    except (payload.PayloadError, ValueError, KeyError, TypeError) as exc:
        raise PhysicalError(f"{printouts / 'manifest.json'}: {exc}; re-run `physical make-sheets --force`") from None
    if not photos.exists():
        raise PhysicalError(f"{photos}: no such folder; give the folder holding the photos of the printed sheets")
    if not photos.is_dir():
        raise PhysicalError(f"{photos}: not a folder; give the folder holding the photos of the printed sheets")
    if out.exists() and not out.is_dir():
        raise PhysicalError(f"--out {out}: exists and is not a folder")
    state = read_state(out)
    if state is not None and state.get("experiment_id") != experiment_id:
        raise PhysicalError(f"{out} holds captures of experiment {state.get('experiment_id')}, but {printouts} "
                            f"is experiment {experiment_id}; use --out DIR for a new captures folder")
    if state is None:
        state = {"format": STATE_FORMAT, "format_version": STATE_FORMAT_VERSION, "experiment_id": experiment_id,
                 "tool_version": __version__, "printouts": str(printouts.resolve()), "photos": []}
    done: dict[str, dict[str, Any]] = {str(p.get("sha256")): p for p in state["photos"] if isinstance(p, dict)}
    rows = read_index(out, set(done))
    photos_before = len(done)

    files, not_images = list_photos(photos, [out, printouts])
    targets = digital_targets(manifest, printouts, out, warn)
    clean_grey = clean_pictures(targets)
    dec = Decoders()
    outcomes: list[PhotoOutcome] = []
    progress("photos", 0, len(files))
    for i, path in enumerate(files):
        name = path.relative_to(photos).as_posix()
        try:
            outcome, new_rows = _ingest_one(path, name, experiment_id, pages, targets, out, done, dec, clean_grey)
        except OSError as exc:  # reading is handled inside: this is a write into out
            raise PhysicalError(f"--out {out}: cannot write ({type(exc).__name__}: {exc})") from None
        except MemoryError:
            outcome, new_rows = _skip(name, "not enough memory to process this photo"), []
        except Exception as exc:  # noqa: BLE001 - one odd photo must not stop the run
            outcome, new_rows = _skip(name, f"could not be processed ({type(exc).__name__}: "
                                            f"{' '.join(str(exc).split())[:120]}); please report this"), []
        outcomes.append(outcome)
        for w in outcome.warnings:
            warn(f"{name}: {w}")
        if outcome.status == "ingested":
            rows.extend(new_rows)
            entry = {"sha256": outcome.sha256, "photo": name, "pages": list(outcome.pages), "crops": outcome.crops,
                     "markers_used": list(outcome.markers_used),
                     "reprojection_px": list(outcome.reprojection_px),
                     "homographies": [list(h) for h in outcome.homographies],
                     "dropped": list(outcome.dropped), "jpeg_quality": outcome.jpeg_quality,
                     "ingested": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
            done[outcome.sha256] = entry
            state["photos"].append(entry)
            # Index first, state second: rows of a photo the state does not list are dropped on the next run.
            try:
                write_index(out, rows)
                write_state(out, state)
            except OSError as exc:
                raise PhysicalError(f"--out {out}: cannot write ({type(exc).__name__}: {exc})") from None
        progress("photos", i + 1, len(files))
    seen = sorted({int(p) for e in done.values() for p in e.get("pages", []) if str(p).isdigit()})
    return IngestResult(out=out, experiment_id=experiment_id, n_pages=len(pages), outcomes=tuple(outcomes),
                        not_images=not_images, pages_seen=tuple(seen),
                        pages_missing=tuple(n for n in sorted(pages) if n not in seen),
                        crops_total=len(rows), photos_before=photos_before, strict=strict)


def _skip(name: str, reason: str, sha: str = "", overlay: str = "", warnings: Sequence[str] = (),
          dropped: Sequence[dict[str, Any]] = ()) -> PhotoOutcome:
    return PhotoOutcome(photo=name, status="skipped", reason=reason, sha256=sha, overlay=overlay,
                        warnings=tuple(warnings), dropped=tuple(dropped))


def _ingest_one(path: Path, name: str, experiment_id: str, pages: dict[int, Page],
                targets: dict[tuple[str, str], Target], out: Path, done: dict[str, dict[str, Any]],
                dec: Decoders, clean_grey: Callable[[str], np.ndarray | None]
                ) -> tuple[PhotoOutcome, list[dict[str, str]]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _skip(name, f"cannot read the file ({type(exc).__name__})"), []
    sha = hashlib.sha256(data).hexdigest()
    if sha in done:
        first = done[sha].get("photo", "")
        # A byte copy under another name (a re-export, a second download) is named, not counted twice.
        why = f"same photo as {first}, already ingested" if first and first != name else "already ingested"
        return PhotoOutcome(photo=name, status="already ingested", reason=why, sha256=sha), []
    try:
        rgb, k = decode_reduced(data)
    except PhotoError as exc:
        return _skip(name, str(exc), sha), []
    quality = jpeg_quality(data)
    del data
    # Work in the reduced photo; report positions in the full photo's pixels (photo_io.decode_reduced).
    to_full = np.array([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2], [0, 0, 1.0]])
    h, w = rgb.shape[:2]
    if max(h, w) < MIN_PHOTO_SIDE:
        return _skip(name, f"too small ({w}x{h} pixels) to read the corner codes", sha), []
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scan = scan_photo(gray, experiment_id, pages, dec)
    key = sha[:12]
    overlay_rel = overlay_name(sha)

    def skipped(reason: str, dropped: Sequence[dict[str, Any]] = ()) -> tuple[PhotoOutcome, list[dict[str, str]]]:
        try:
            write_file(out / overlay_rel, draw_overlay(rgb, scan, f"{name}: skipped\n{reason}", ok=False,
                                                       dropped=dropped))
        except OSError:
            return _skip(name, reason, sha, dropped=dropped), []
        return _skip(name, reason, sha, overlay_rel, dropped=dropped), []

    if not scan.fits:
        return skipped(_why_nothing(scan, experiment_id, pages))

    warnings: list[str] = []
    if scan.other_experiments:
        warnings.append(f"also shows markers of another experiment ({', '.join(scan.other_experiments)}); ignored")
    for number, why in sorted(scan.failed_pages.items()):
        warnings.append(f"page {number} also in view but not used: {why}")
    rows: list[dict[str, str]] = []
    dropped: list[dict[str, Any]] = []
    crop_dir = f"{CROPS_DIR}/{key}"
    used_pages, used_markers, reproj, homs = [], [], [], []
    for fit in scan.fits:
        page_warn: list[str] = []
        if len(fit.markers) < 4:
            missing = [c for c in payload.CORNERS if c not in fit.markers]
            page_warn.append(f"{_n(len(fit.markers), 'corner code')} ({'/'.join(missing)} not found)")
        if not fit.page.marks and fit.reprojection_px > MAX_REPROJ_MODULES * fit.module_px:
            warnings.append(f"page {fit.page.number}: markers disagree (reprojection error "
                            f"{fit.reprojection_px:.1f} px); not used")
            continue
        coarse = [c for c in payload.CORNERS if c in fit.markers and not fit.markers[c].refined]
        if coarse:
            page_warn.append(f"corners of marker {'/'.join(coarse)} only roughly located (blurred?)")
        if not fit.page.marks and fit.reprojection_px > WARN_REPROJ_MODULES * fit.module_px:
            page_warn.append(f"registration uncertain (reprojection error {fit.reprojection_px:.1f} px)")
        if fit.page.marks and (len(fit.marks) < len(fit.page.marks) or fit.marks_rejected):
            page_warn.append(f"{len(fit.marks)} of {len(fit.page.marks)} registration marks used"
                             + (f", {fit.marks_rejected} rejected" if fit.marks_rejected else ""))
        pictures = {i: g for i in {sl.image_id for sl in fit.page.slots} if (g := clean_grey(i)) is not None}
        lowres, n_rows, n_dropped = [], len(rows), len(dropped)

        def drop(sf: SlotFit, reason: str, content_shift_pct: float = float("nan")) -> None:
            d = {"page": fit.page.number, "slot": sf.slot.index, "image_id": sf.slot.image_id,
                 "variant": sf.slot.variant, "reason": reason}
            if np.isfinite(sf.residual_pct):
                d["residual_pct"] = round(float(sf.residual_pct), 3)
            if np.isfinite(content_shift_pct):
                d["content_shift_pct"] = round(float(content_shift_pct), 3)
            dropped.append(d)

        for sf in fit.slots:
            slot = sf.slot
            target = targets.get((slot.image_id, slot.variant))
            if target is None:
                continue
            if sf.reason:
                drop(sf, sf.reason)
                continue
            got = crop_slot(rgb, sf.h, slot.rect, target.size)
            if got is None:
                drop(sf, "not wholly inside the photo")
                continue
            crop, native = got
            crop_warn: list[str] = []
            if slot.image_id in pictures:
                verdict = check_crop(crop, slot.image_id, pictures)
                if not verdict.ok:
                    drop(sf, verdict.reason, verdict.shift_pct)
                    continue
                if verdict.note:
                    crop_warn.append(verdict.note)
            else:
                crop_warn.append("digital clean image missing: content not checked")
            if native < 0.75 * max(target.size):
                crop_warn.append(f"low resolution ({native:.0f} photo px for a {max(target.size)} px image)")
                lowres.append((native, max(target.size)))
            rel = f"{crop_dir}/{safe_name(slot.image_id)}_{safe_name(slot.variant)}.png"
            write_file(out / rel, encode_png(crop))
            rows.append({"photo": name, "photo_sha256": sha, "page": str(fit.page.number), "slot": str(slot.index),
                         "image_id": slot.image_id, "variant": slot.variant, "crop": rel,
                         "digital": target.digital, "markers_used": str(len(fit.markers)),
                         "reprojection_px": f"{k * fit.reprojection_px:.3f}",
                         "quad": " ".join(f"{v:.2f}" for v in transform_points(to_full, sf.quad).ravel()),
                         "residual_pct": f"{sf.residual_pct:.3f}",
                         "warnings": "; ".join(page_warn + crop_warn)})
        if len(dropped) > n_dropped:
            page_warn.append(f"{len(dropped) - n_dropped} of {len(fit.slots)} images dropped (not verified)")
        if lowres:
            page_warn.append(f"{len(lowres)} images covered by fewer photo pixels than their own (about "
                             f"{np.median([a for a, _ in lowres]):.0f} for {lowres[0][1]}); photograph closer")
        if page_warn:
            warnings.append(f"page {fit.page.number}: " + "; ".join(page_warn))
        if len(rows) == n_rows:
            continue
        used_pages.append(fit.page.number)
        used_markers.append(len(fit.markers))
        reproj.append(round(k * fit.reprojection_px, 3))
        h_full = to_full @ fit.h
        homs.append(tuple(float(v) for v in (h_full / h_full[2, 2]).ravel()))
    if not rows:
        if dropped:
            return skipped(f"no image could be verified ({_reasons(dropped)})", dropped)
        return skipped("; ".join(warnings) or "registration failed")
    pages_text = ", ".join(f"page {p} ({_n(m, 'corner code')}, {r:.2f} px)"
                           for p, m, r in zip(used_pages, used_markers, reproj))
    if dropped:
        pages_text += f"; {len(dropped)} images dropped"
    write_file(out / overlay_rel, draw_overlay(rgb, scan, f"{name}: {pages_text}", ok=True, dropped=dropped))
    return PhotoOutcome(photo=name, status="ingested", sha256=sha, pages=tuple(used_pages), crops=len(rows),
                        markers_used=tuple(used_markers), reprojection_px=tuple(reproj),
                        warnings=tuple(warnings), overlay=overlay_rel, homographies=tuple(homs),
                        dropped=tuple(dropped), jpeg_quality=quality), rows


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _reasons(dropped: Sequence[dict[str, Any]]) -> str:
    """'12 images: too few registration marks ...; 3 images: ...', most frequent reason first."""
    return "; ".join(f"{_n(n, 'image')}: {r}" for r, n in count_reasons(dropped))


def _why_nothing(scan: Scan, experiment_id: str, pages: dict[int, Page]) -> str:
    """One-line reason for a photo where no page could be registered."""
    if scan.other_experiments:
        ids = ", ".join(scan.other_experiments)
        return (f"sheet of another experiment ({ids}), not {experiment_id}; ingest it with --printouts "
                f"pointing at that experiment's folder")
    for number, why in sorted(scan.failed_pages.items()):
        if why == "one marker":
            found = [c.marker.corner for c in scan.codes if c.marker and c.marker.page == number]
            return (f"only 1 marker of page {number} found ({'/'.join(found)}); at least 2 of the 4 corner "
                    f"codes must be readable")
        return f"page {number}: {why}"
    readable = [c for c in scan.codes if c.text]
    if scan.out_of_range:
        return (f"markers of page {', '.join(map(str, scan.out_of_range))} found, but experiment {experiment_id} "
                f"has {len(pages)} pages")
    if scan.other_codes:
        return f"no marker of experiment {experiment_id} found ({scan.other_codes} other QR code(s) ignored)"
    if scan.codes and not readable:
        return f"{len(scan.codes)} QR code(s) found but none could be read (blurred, too small or glare?)"
    return "no QR markers found (is a whole printed page in view, sharp and evenly lit?)"
