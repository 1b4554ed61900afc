"""``target-grid.pdf``: Carlini and Wagner's figure, one page per targeted method with ``--targets all``.

Rows are one picture of each class (the experiment's first of that class), columns the
classes it was attacked towards; the diagonal is the picture itself. Under each image, the
model's top-1 on the file: green when it is the target, red when not. The page is a figure
to look at and print, not a sheet to photograph: it has no codes, and ingest reads only
``sheets.pdf``'s pages (the same images are on those, where they are measured).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from .layout import PAPER_SIZES_MM
from .pdf import FONT, FONT_BOLD, _printable, _upscaled

GRID_NAME = "target-grid.pdf"


def target_groups(records: Sequence[dict[str, Any]]) -> dict[str, dict[int, str]]:
    """The ``--targets all`` variants of an experiment by spec, as make-sheets records them: {the name they
    share without their target (``target_group``): {target class: variant name}}, in the manifest's order."""
    groups: dict[str, dict[int, str]] = {}
    for v in records[0]["variants"] if records else []:
        if v.get("target_group"):
            groups.setdefault(v["target_group"], {})[int(v["target"])] = v["name"]
    return groups


def grid_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The grid's rows: the experiment's first picture of each class, in class order."""
    first: dict[int, dict[str, Any]] = {}
    for rec in records:
        first.setdefault(int(rec["label"]), rec)
    return [first[k] for k in sorted(first)]


def grid_cells(records: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
    """The (image id, variant name) pairs the grid shows (the images to read for it)."""
    return {(rec["id"], name) for rec in grid_rows(records) for by_target in target_groups(records).values()
            for name in by_target.values()}


def write_target_grid(path: Path, records: Sequence[dict[str, Any]], images: Mapping[tuple[str, str], np.ndarray],
                      class_names: Sequence[str], title: str, paper: str = "a4") -> int:
    """Write the grid pages to ``path``, one per ``--targets all`` spec; returns how many (0: none, no file).

    records: the manifest's image records (id, label, variants with name, target, target_group, top5);
    images: (image id, variant name) -> (H, W, 3) uint8.
    """
    groups = target_groups(records)
    if not groups:
        return 0
    rows = grid_rows(records)
    n_cols = len(class_names)
    page_w, page_h = PAPER_SIZES_MM[paper]
    margin, head_w, head_h, gap, text_h = 12.0, 16.0, 8.0, 1.2, 3.0
    cell = min((page_w - 2 * margin - head_w) / n_cols, (page_h - 2 * margin - 30.0 - head_h) / max(1, len(rows)))
    size = cell - gap
    c = canvas.Canvas(str(path), pagesize=(page_w * mm, page_h * mm), invariant=1)
    c.setTitle(f"physical target grid · {title}")

    def text(x: float, y: float, s: str, font: str = FONT, pt: float = 5.0, centre: bool = True,
             rgb: tuple[float, float, float] = (0.25, 0.25, 0.25)) -> None:
        c.setFont(font, pt)
        c.setFillColorRGB(*rgb)
        (c.drawCentredString if centre else c.drawString)(x * mm, (page_h - y) * mm, _printable(s, font))

    for group, by_target in groups.items():
        text(margin, margin + 4, f"Target grid · {group} · {title}", FONT_BOLD, 9, centre=False, rgb=(0, 0, 0))
        text(margin, margin + 9, "Rows: one picture of each class. Columns: the class it was attacked towards (the "
             "diagonal is the picture itself).", pt=6.5, centre=False)
        text(margin, margin + 13, "Under each image: the model's top-1 on the file, green when it is the target, "
             "red when not. A figure to look at: photograph sheets.pdf to measure.", pt=6.5, centre=False)
        top = margin + 30.0
        for j, name in enumerate(class_names):
            text(margin + head_w + j * cell + size / 2, top - 2, name[:12], FONT_BOLD, 5.5)
        for i, rec in enumerate(rows):
            y0 = top + i * cell
            text(margin, y0 + size / 2, str(rec.get("label_name", class_names[int(rec["label"])]))[:12], FONT_BOLD,
                 5.5, centre=False)
            by_name = {v["name"]: v for v in rec["variants"]}
            for j in range(n_cols):
                name = by_target.get(j)
                if name is None or (rec["id"], name) not in images:
                    continue
                side = size - text_h                     # the image, with its top-1 written under it
                x0 = margin + head_w + j * cell + text_h / 2
                c.drawImage(ImageReader(_upscaled(images[(rec["id"], name)], side)), x0 * mm,
                            (page_h - y0 - side) * mm, side * mm, side * mm)
                top1 = by_name[name]["top5"][0]
                hit = int(top1["index"]) == j
                colour = (0.45, 0.45, 0.45) if j == int(rec["label"]) else (0.0, 0.5, 0.0) if hit else (0.8, 0.0, 0.0)
                text(x0 + side / 2, y0 + side + 2.2, top1["label"][:12], pt=4.5, rgb=colour)
        c.showPage()
    c.save()
    return len(groups)
