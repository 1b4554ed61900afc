"""``physical demo``: the whole pipeline on bundled data, no printer needed.

make-sheets (demo model, bundled pictures) -> simulate-photos (virtual
camera) -> ingest -> report, each stage writing its usual folder inside one
fresh demo folder::

    physical-demo/printouts/  photos/  captures/
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import PhysicalError

STAGE_DIRS = ("printouts", "photos", "captures")


@dataclass(frozen=True)
class DemoResult:
    folder: Path
    sheets: Any
    photos: list[Path]
    ingest: Any
    report: Any


def run_demo(folder: Path = Path("physical-demo"), *, seed: int = 0, difficulty: str = "normal",
             per_page: int = 1, force: bool = False, device: str | None = None,
             progress: Callable[[str, int, int], None] | None = None,
             warn: Callable[[str], None] | None = None) -> DemoResult:
    """Run make-sheets, simulate-photos, ingest and report into ``folder`` (fresh, or replaced with ``force``).

    ``seed`` seeds make-sheets and the virtual camera (the report's simulated channel keeps its default).
    """
    from .capture.camera import simulate_photos
    from .capture.run import ingest
    from .report.run import make_report
    from .sheets.run import make_sheets

    folder = Path(folder)
    progress = progress or (lambda stage, done, total: None)
    if folder.exists() and not folder.is_dir():
        raise PhysicalError(f"{folder}: exists and is not a folder; pass another --out")
    if folder.is_dir() and any(folder.iterdir()):
        ours = all(p.name in STAGE_DIRS for p in folder.iterdir())
        if not force:
            raise PhysicalError(f"{folder} is not empty; pass --force to replace the demo there, "
                                "or --out DIR for a fresh folder")
        if not ours:
            # --force replaces a demo, never a folder that holds anything else of the user's.
            raise PhysicalError(f"{folder} holds files that are not a physical demo; choose another --out")
        for name in STAGE_DIRS:
            shutil.rmtree(folder / name, ignore_errors=True)
    sheets = make_sheets(folder / "printouts", seed=seed, device=device, progress=progress, warn=warn)
    photos = simulate_photos(folder / "printouts", folder / "photos", per_page=per_page, seed=seed,
                             difficulty=difficulty, progress=lambda d, t: progress("photos", d, t))
    result = ingest(folder / "photos", printouts=folder / "printouts", out=folder / "captures",
                    progress=progress, warn=warn)
    report = make_report(folder / "captures", printouts=folder / "printouts", device=device, progress=progress,
                         warn=warn)
    return DemoResult(folder=folder, sheets=sheets, photos=photos, ingest=result, report=report)
