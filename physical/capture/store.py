"""The files of ``captures/``: the state (``ingest.json``), the index (``index.csv``), and the photo list.

The index and the state are written atomically, the index first: rows of a
photo that the state does not list (an interrupted run) are dropped on the
next run, so an interrupted run is simply run again.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import PhysicalError
from ..files import write_atomic
from ..photo_io import PHOTO_SUFFIXES, is_photo_name

STATE_NAME = "ingest.json"
INDEX_NAME = "index.csv"
CROPS_DIR = "crops"
OVERLAYS_DIR = "overlays"
STATE_FORMAT = "physical-captures"
STATE_FORMAT_VERSION = 1


def overlay_name(sha256: str) -> str:
    """A photo's overlay, relative to ``captures/``: named by its checksum's first 12 digits, as its crops' folder."""
    return f"{OVERLAYS_DIR}/{sha256[:12]}.jpg"


INDEX_COLUMNS = ("photo", "photo_sha256", "page", "slot", "image_id", "variant", "crop", "digital",
                 "markers_used", "reprojection_px", "quad", "residual_pct", "warnings")


def read_state(out: Path) -> dict[str, Any] | None:
    path = out / STATE_NAME
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PhysicalError(f"{path}: unreadable ({type(exc).__name__}); move the folder away "
                            "or use --out DIR") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or not isinstance(state.get("photos"), list):
        raise PhysicalError(f"{path}: not a physical captures state file; use --out DIR for another folder")
    if state.get("format_version") != STATE_FORMAT_VERSION:
        raise PhysicalError(f"{path}: captures format version {state.get('format_version')} is not supported "
                            f"(this physical reads version {STATE_FORMAT_VERSION}); use --out DIR")
    return state


def read_index(out: Path, done: set[str]) -> list[dict[str, str]]:
    """Rows of earlier runs, for photos the state lists (rows of an interrupted photo are dropped)."""
    path = out / INDEX_NAME
    if not path.exists():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PhysicalError(f"{path}: unreadable ({type(exc).__name__}); move the folder away "
                            "or use --out DIR") from None
    return [{k: r.get(k) or "" for k in INDEX_COLUMNS} for r in rows if r.get("photo_sha256") in done]


def write_index(out: Path, rows: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=INDEX_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_atomic(out / INDEX_NAME, buf.getvalue().encode("utf-8"))


def write_state(out: Path, state: dict[str, Any]) -> None:
    state["updated"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_atomic(out / STATE_NAME, (json.dumps(state, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


def list_photos(photos: Path, skip: Sequence[Path]) -> tuple[list[Path], int]:
    """Photo files under ``photos`` (sorted), and the number of other (non-hidden) files."""
    skip_resolved = [p.resolve() for p in skip]
    found, others = [], 0
    for root, dirs, files in os.walk(photos):
        rootp = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (rootp / d).resolve() not in skip_resolved)
        for name in sorted(files):
            p = rootp / name
            if name.startswith("."):
                continue
            if p.suffix.lower() in PHOTO_SUFFIXES and is_photo_name(p):
                found.append(p)
            else:
                others += 1
    return sorted(found, key=lambda p: p.relative_to(photos).as_posix()), others


def read_captures(captures: Path, manifest: dict[str, Any]) -> list[dict[str, str]]:
    """The index rows of ``captures/`` (what ``report`` and ``calibrate`` read), checked against the
    experiment of ``manifest``; one-line errors."""
    index = Path(captures) / INDEX_NAME
    state = Path(captures) / STATE_NAME
    if not index.is_file() or not state.is_file():
        raise PhysicalError(f"{captures}: no ingested photos (index.csv missing); run `physical ingest PHOTOS_DIR` "
                            "first, or `physical report --simulated-only` for figures before printing")
    try:
        exp = json.loads(state.read_text(encoding="utf-8")).get("experiment_id")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise PhysicalError(f"{state}: not valid JSON; run `physical ingest` again into a fresh --out") from None
    if exp != manifest["experiment_id"]:
        raise PhysicalError(f"{captures} holds photos of experiment {exp}, but the printouts are experiment "
                            f"{manifest['experiment_id']}; pass the matching --captures or --printouts")
    with open(index, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise PhysicalError(f"{index}: no crops; ingest some photos first")
    return rows
