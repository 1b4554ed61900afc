"""What ingest wrote, measured against the virtual camera's exact ground truth.

For photos made by ``physical simulate-photos`` (:mod:`.camera`), every
slot's true corners in the photo are known (``ground-truth.json``, ``slots``).
:func:`score` compares them with ``captures/index.csv``: for each crop, whether
it names the photo's true page and the slot's true image and variant, and its
corner error: the largest distance between the ``quad`` ingest reports and the
true corners, in % of the image's width in the photo. Used by the tests and
``bench/ingest.py``; useful to anyone changing ingest or the camera.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..sheets.manifest import manifest_pages, read_manifest
from .camera import GROUND_TRUTH_NAME
from .codes import quad_side
from .store import INDEX_NAME, STATE_NAME


@dataclass(frozen=True)
class Score:
    """Ingest against the truth. ``errors_pct``: one corner error per crop written (of the right slot)."""

    photos: int
    pages_found: int                       # (photo, page) pairs with at least one crop
    pages_recoverable: int                 # photos whose page shows at least one whole, unoccluded corner code
    crops: int
    wrong: list[str] = field(default_factory=list)   # crops of the wrong page, image or variant
    errors_pct: np.ndarray = field(default_factory=lambda: np.zeros(0))
    dropped: int = 0
    worst: list[tuple[float, str]] = field(default_factory=list)   # the largest errors and their crops

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.errors_pct, q)) if len(self.errors_pct) else float("nan")

    @property
    def max_pct(self) -> float:
        return float(self.errors_pct.max()) if len(self.errors_pct) else float("nan")

    def over(self, pct: float) -> int:
        return int((self.errors_pct > pct).sum())

    def summary(self) -> str:
        return (f"{self.pages_found} of {self.pages_recoverable} recoverable pages in {self.photos} photos; "
                f"{self.crops} crops, {self.dropped} dropped, {len(self.wrong)} wrong; corner error % of the "
                f"image width: median {self.percentile(50):.2f}, p95 {self.percentile(95):.2f}, "
                f"max {self.max_pct:.2f}; {self.over(3)} over 3 %, {self.over(5)} over 5 %")


def recoverable(entry: dict) -> bool:
    """The photo shows at least one corner code whole and uncovered: its page can be identified."""
    hidden = set(entry.get("occluded", [])) | set(entry.get("cut", []))
    return any(c not in hidden for c in entry.get("markers", {"TL": 0, "TR": 0, "BR": 0, "BL": 0}))


def score(printouts: Path, photos: Path, captures: Path) -> Score:
    """Compare ``captures/index.csv`` with ``photos/ground-truth.json`` (module docstring)."""
    pages = {p.number: p for p in manifest_pages(read_manifest(Path(printouts)))}
    truth = json.loads((Path(photos) / GROUND_TRUTH_NAME).read_text(encoding="utf-8"))
    with open(Path(captures) / INDEX_NAME, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    errors, wrong, worst = [], [], []
    for r in rows:
        entry = truth[r["photo"]]
        if int(r["page"]) != entry["page"]:
            wrong.append(f"{r['crop']}: page {r['page']}, the photo shows page {entry['page']}")
            continue
        slot = pages[entry["page"]].slots[int(r["slot"])]
        if (slot.image_id, slot.variant) != (r["image_id"], r["variant"]):
            wrong.append(f"{r['crop']}: slot {r['slot']} is {slot.image_id} {slot.variant}")
            continue
        true = np.array(entry["slots"][str(slot.index)], np.float64)
        quad = np.array([float(v) for v in r["quad"].split()], np.float64).reshape(4, 2)
        err = 100 * float(np.linalg.norm(quad - true, axis=1).max()) / quad_side(true)
        errors.append(err)
        worst.append((err, r["crop"]))
    state = json.loads((Path(captures) / STATE_NAME).read_text(encoding="utf-8"))
    dropped = sum(len(p.get("dropped", [])) for p in state.get("photos", []))
    return Score(photos=len(truth), pages_found=len({(r["photo"], r["page"]) for r in rows}),
                 pages_recoverable=sum(1 for e in truth.values() if recoverable(e)), crops=len(rows),
                 wrong=wrong, errors_pct=np.array(errors), dropped=dropped, worst=sorted(worst)[::-1][:5])
