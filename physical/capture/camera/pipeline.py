"""The stages in order: one photo (:func:`make_photo`), its ground truth, and :func:`simulate_photos`.

:func:`simulate_photos` reads ``printouts/``, renders and prints each page once
(:class:`_PageRenderer`), makes every photo and merges their ground truth into
``ground-truth.json``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import PhysicalError
from ...files import write_atomic
from ...sheets.layout import Page
from ...sheets.manifest import MANIFEST_NAME, manifest_pages, read_manifest
from .geometry import PhotoGeometry
from .occluder import occluder_coverage
from .optics import (apply_gain, encode_jpeg, lens_blur, local_tone_map, sensor_noise, sharpen, vignetting_field,
                     white_balance)
from .params import sample_params
from .presets import GROUND_TRUTH_NAME, PDF_NAME, QR_MODULES, _check_difficulty, _check_phone
from .scene import (_PhotoGrid, background, compose_scene, light_field, occluder_layer, paper_shading, print_page,
                    shadow_field)


def _render_scale(needed: float) -> float:
    # Quarter-pixel steps: photos of a page at similar scales share a render.
    return max(2.0, math.ceil(needed * 4) / 4)


class _PageRenderer:
    """Renders (and prints) a page at a pixel density, caching the last few."""

    def __init__(self, pdf_path: Path, pages: list[Page]):
        import pypdfium2 as pdfium

        self.path = pdf_path
        try:
            self.pdf = pdfium.PdfDocument(str(pdf_path))
        except pdfium.PdfiumError as exc:
            raise PhysicalError(f"{pdf_path}: cannot read the PDF ({exc}); "
                                "re-run `physical make-sheets --force`") from None
        if len(self.pdf) != len(pages):
            raise PhysicalError(f"{pdf_path}: has {len(self.pdf)} pages but the manifest lists {len(pages)}; "
                                "re-run `physical make-sheets --force`")
        self.cache: dict[tuple[int, float], tuple[np.ndarray, float, float]] = {}

    def printed(self, page: Page, index: int, px_per_mm: float, printing: dict[str, Any]):
        key = (page.number, px_per_mm)
        if key not in self.cache:
            self.cache.clear()
            scale = px_per_mm * 25.4 / 72   # pdfium scale is pixels per PDF point
            rgb = self.pdf[index].render(scale=scale, rev_byteorder=True).to_numpy()[..., :3]
            rgb = np.ascontiguousarray(rgb)
            sx, sy = rgb.shape[1] / page.size_mm[0], rgb.shape[0] / page.size_mm[1]
            self.cache[key] = (print_page(rgb, printing, px_per_mm), sx, sy)
        return self.cache[key]

    def close(self) -> None:
        self.pdf.close()


def make_photo(renderer: _PageRenderer, page: Page, index: int, params: dict[str, Any]) -> tuple[bytes, np.ndarray, tuple[int, int]]:
    """Simulate one photo; returns (JPEG bytes, flat table homography mm -> displayed pixels, displayed (W, H))."""
    scene, camera = params["scene"], params["camera"]
    geo = PhotoGeometry(params, page.size_mm)
    frame, Hm = geo.frame, geo.H
    px_per_mm = _render_scale(geo.max_scale())
    printed, sx, sy = renderer.printed(page, index, px_per_mm, params["print"])
    grid = _PhotoGrid(geo)
    img = background(scene["background"], scene["background_seed"], Hm, frame, grid)
    img, maps = compose_scene(printed, grid, sx, sy, img)
    del maps
    img = occluder_layer(img, scene, grid)
    img = apply_gain(img, light_field(scene, frame), shadow_field(scene, Hm, page.size_mm, frame, grid),
                     paper_shading(scene, grid), vignetting_field(camera, frame),
                     channel_gains=white_balance(camera, frame))
    img = lens_blur(img, camera)
    img = sensor_noise(img, camera)
    img = local_tone_map(img, camera)
    img = sharpen(img, camera)
    return encode_jpeg(img, camera), Hm, frame


def _inside_frame(geo: PhotoGeometry, rect, step_mm: float = 0.5) -> bool:
    """Whether the whole of ``rect`` (page mm, its edges sampled every ``step_mm``) shows in the frame."""
    pts = []
    for (x0, y0), (x1, y1) in zip(rect.corners(), rect.corners()[1:] + rect.corners()[:1]):
        n = max(2, math.ceil(math.hypot(x1 - x0, y1 - y0) / step_mm))
        t = np.arange(n) / n
        pts.append(np.column_stack([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t]))
    uv = geo.points(np.concatenate(pts))
    W, H = geo.frame
    return bool((uv >= -0.5).all() and (uv[:, 0] <= W - 0.5).all() and (uv[:, 1] <= H - 0.5).all())


def photo_truth(params: dict[str, Any], page: Page) -> dict[str, Any]:
    """The exact geometry of one photo for its ground-truth entry (see the package docstring)."""
    geo = PhotoGeometry(params, page.size_mm)
    occ = params["scene"].get("occluder")

    def quad(rect) -> list[list[float]]:
        return [[float(v) for v in uv] for uv in geo.points(rect.corners())]

    markers = {m.corner: quad(m.rect) for m in page.markers}
    module_px = {}
    for m in page.markers:
        q = np.array(markers[m.corner])
        area = 0.5 * abs(float(np.dot(q[:, 0], np.roll(q[:, 1], -1)) - np.dot(q[:, 1], np.roll(q[:, 0], -1))))
        module_px[m.corner] = round(math.sqrt(area) / QR_MODULES, 4)
    return {
        "slots": {str(s.index): quad(s.rect) for s in page.slots},
        "markers": markers,
        "module_px": module_px,
        "occluded": [m.corner for m in page.markers if occluder_coverage(occ, m.rect) > 0],
        "occluded_slots": [str(s.index) for s in page.slots if occluder_coverage(occ, s.rect, 0.25) > 0],
        "cut": ([m.corner for m in page.markers if not _inside_frame(geo, m.rect)]
                + [str(s.index) for s in page.slots if not _inside_frame(geo, s.rect)]),
    }


def photo_name(experiment_id: str, page: int, k: int) -> str:
    return f"{experiment_id}_p{page:02d}_{k:02d}.jpg"


def _read_ground_truth(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PhysicalError(f"{path}: cannot read it ({exc}); delete it or choose another --out") from None
    if not isinstance(data, dict):
        raise PhysicalError(f"{path}: not a ground-truth file (expected a JSON object); "
                            "delete it or choose another --out")
    return data


def simulate_photos(
    printouts: Path = Path("printouts"),
    out: Path = Path("photos"),
    *,
    per_page: int = 1,
    seed: int = 0,
    difficulty: str = "normal",
    phone: str = "plain",
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write ``per_page`` synthetic phone photos of every page of ``printouts/sheets.pdf`` to ``out``.

    Also merges their ground truth into ``out/ground-truth.json`` (format in
    the docstring of :mod:`physical.capture.camera`). Returns the photo paths in page order.
    ``progress(done, total)`` is called as photos are written. ``phone``:
    ``plain`` or ``hdr`` (:data:`.presets.PHONES`: auto white balance under
    tungsten, daylight and mixed light, recycled and bright-white paper, HDR
    local tone mapping, a wide-angle lens).

    Raises:
        PhysicalError: missing or broken printouts, a bad difficulty or phone,
            ``per_page`` < 1, or an ``out`` that is not a folder.
    """
    printouts, out = Path(printouts), Path(out)
    _check_difficulty(difficulty)
    _check_phone(phone)
    if isinstance(per_page, bool) or not isinstance(per_page, int) or per_page < 1:
        raise PhysicalError(f"--per-page {per_page}: must be an integer of at least 1")
    if not printouts.is_dir():
        raise PhysicalError(f"--printouts {printouts}: no such folder; run `physical make-sheets` first, "
                            "or point --printouts at the folder it wrote")
    manifest = read_manifest(printouts)
    # The manifest is editable text: take only a file name from it, never a path.
    pdf_path = printouts / (Path(str(manifest.get("layout", {}).get("pdf", PDF_NAME))).name or PDF_NAME)
    if not pdf_path.is_file():
        raise PhysicalError(f"{pdf_path}: missing; re-run `physical make-sheets --force` "
                            f"to rewrite the sheets of {printouts / MANIFEST_NAME}")
    try:
        pages = manifest_pages(manifest)
    except (KeyError, TypeError, ValueError) as exc:
        raise PhysicalError(f"{printouts / MANIFEST_NAME}: {exc}; re-run `physical make-sheets --force`") from None
    if out.exists() and not out.is_dir():
        raise PhysicalError(f"--out {out}: exists and is not a folder")
    gt_path = out / GROUND_TRUTH_NAME
    ground_truth = _read_ground_truth(gt_path)
    experiment_id = str(manifest["experiment_id"])
    progress = progress or (lambda done, total: None)
    total = len(pages) * per_page
    progress(0, total)
    renderer = _PageRenderer(pdf_path, pages)
    written: list[Path] = []
    entries: dict[str, Any] = {}
    try:
        for index, page in enumerate(pages):
            for k in range(1, per_page + 1):
                params = sample_params(difficulty, seed, page.number, k, page.size_mm, phone=phone)
                data, Hm, (W, H) = make_photo(renderer, page, index, params)
                truth = photo_truth(params, page)
                name = photo_name(experiment_id, page.number, k)
                write_atomic(out / name, data)
                written.append(out / name)
                entries[name] = {
                    "experiment_id": experiment_id, "page": page.number, "index": k,
                    "difficulty": difficulty, "phone": phone, "seed": seed, "width": W, "height": H,
                    "exif_orientation": params["camera"]["exif_orientation"],
                    "homography": [[float(v) for v in row] for row in Hm],
                    **truth,
                    "params": params,
                }
                progress(len(written), total)
    finally:
        renderer.close()
        if entries:   # even after an interruption: every photo on disk gets its ground truth
            ground_truth.update(entries)
            write_atomic(gt_path, (json.dumps(ground_truth, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return written
