"""The printouts manifest: what was printed, where, and what the model saw.

``printouts/manifest.json`` is written last, atomically, and so marks a
complete experiment; every later stage reads it to know the geometry of the
pages and the digital images each slot holds. Its format is documented in
the README ("printouts/manifest.json").
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import PhysicalError
from ..files import write_atomic
from .layout import Page, page_from_dict

MANIFEST_NAME = "manifest.json"
FORMAT = "physical-printouts"
# 2: registration marks around every image (layout.marks, pages[].marks); 1: corner codes only.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
IMAGES_DIR = "images"


def image_file(image_id: str, variant: str) -> str:
    """Where make-sheets writes a digital image, relative to the printouts folder: ``images/img003_bim_e8.png``."""
    return f"{IMAGES_DIR}/{image_id}_{variant}.png"


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    path = Path(folder) / MANIFEST_NAME
    write_atomic(path, (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    return path


def read_manifest(folder: Path) -> dict[str, Any]:
    """Read and check ``folder/manifest.json``; a one-line PhysicalError on any problem."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise PhysicalError(f"{path}: no manifest; run `physical make-sheets` first, "
                            "or point --printouts at the folder it wrote")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PhysicalError(f"{path}: not valid JSON ({exc}); re-run `physical make-sheets --force`") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PhysicalError(f"{path}: not a physical printouts manifest")
    if data.get("format_version") not in READABLE_VERSIONS:
        raise PhysicalError(f"{path}: manifest format version {data.get('format_version')} is not "
                            f"supported (this physical reads versions {', '.join(map(str, READABLE_VERSIONS))})")
    return data


def manifest_pages(manifest: dict[str, Any]) -> list[Page]:
    return [page_from_dict(p) for p in manifest["layout"]["pages"]]
