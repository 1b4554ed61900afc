"""The pictures to attack: bundled samples or the user's folder, with labels.

A picture becomes a tensor in [0, 1], (3, H, W) at the model's input size,
made with the model's own preprocessing (resize the shorter side, centre
crop) and rounded to the 8-bit grid, because what gets printed is 8-bit.

Labels come from an ImageFolder layout (sub-folder names matched to the
model's class names or ImageNet wnids), from a CSV (``file,label``), or are
the model's own top-1 prediction (``labels="predicted"``).
"""
from __future__ import annotations

import csv
import random
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..errors import PhysicalError
from ..models import Classifier, open_rgb, preprocess
from ..photo_io import PHOTO_SUFFIXES, PhotoError

IMAGE_SUFFIXES = PHOTO_SUFFIXES
PREDICTED = "predicted"


@dataclass(frozen=True)
class Picture:
    """One picture to attack. ``image``: (3, H, W) float in [0, 1] on the 8-bit grid, or None when
    loaded lazily (:func:`picture_images` reads ``path`` when the picture's batch comes)."""

    id: str
    source: str
    label: int | None
    image: torch.Tensor | None
    path: Path | None = None


def picture_images(pictures: Sequence[Picture], model: Classifier) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1]: the pictures' images, read now if they were loaded lazily.

    A file that :func:`load_pictures` could read but that cannot be read now (changed meanwhile)
    raises a one-line :class:`PhysicalError` naming it."""
    out = []
    for p in pictures:
        if p.image is not None:
            out.append(p.image)
            continue
        try:
            out.append(preprocess(open_rgb(p.path), model))
        except PhotoError as exc:
            raise PhysicalError(f"{p.path}: {exc}; it could be read when the run began: leave the pictures "
                                "unchanged while make-sheets runs") from None
    return torch.stack(out)


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


def label_resolver(model: Classifier) -> Callable[[str], int | None]:
    """Map a label text (class name, ImageNet wnid or class index) to an index, None if unknown."""
    lookup: dict[str, int] = {}
    for i, name in enumerate(model.class_names):
        lookup.setdefault(_norm(name), i)
    for i, wnid in enumerate(model.wnids or []):
        lookup[wnid.lower()] = i

    def resolve(text: str) -> int | None:
        t = text.strip()
        if t.isdigit():
            i = int(t)
            return i if i < len(model.class_names) else None
        return lookup.get(t.lower(), lookup.get(_norm(t)))

    return resolve


def _unknown_label(where: str, label: str, model: Classifier) -> PhysicalError:
    examples = ", ".join(model.class_names[:4])
    kinds = "a class name (e.g. " + examples + ")" + (", an ImageNet wnid" if model.wnids else "")
    return PhysicalError(f"{where}: unknown label '{label}' for model {model.model_id}; "
                         f"use {kinds} or a class index, or --labels predicted")


def _is_image_file(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES


def _bundled() -> tuple[list[tuple[Path, str]], str]:
    root = resources.files("physical").joinpath("data/samples")
    with resources.as_file(root) as folder:
        with open(folder / "labels.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        return [(folder / r["file"], r["label"]) for r in rows], "bundled"


def _read_csv(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise PhysicalError(f"--labels {path}: no such file; give a CSV with columns file,label, "
                            f"or --labels {PREDICTED}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PhysicalError(f"{path}: not a readable CSV ({exc})") from None
    fields = set(rows[0].keys()) if rows else set()
    column = next((c for c in ("label", "class_index", "wnid", "name") if c in fields), None)
    if "file" not in fields or column is None:
        raise PhysicalError(f"{path}: needs a header row with columns file,label")
    return {r["file"].strip(): (r[column] or "").strip() for r in rows if r.get("file")}


def _list_folder(folder: Path, labels: str | None) -> tuple[list[tuple[Path, str | None]], str]:
    if not folder.exists():
        raise PhysicalError(f"--images {folder}: no such folder")
    if not folder.is_dir():
        raise PhysicalError(f"--images {folder}: not a folder; give a folder of pictures")
    if labels == PREDICTED:
        files = sorted(p for p in folder.rglob("*") if _is_image_file(p)
                       and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        return [(p, None) for p in files], PREDICTED
    if labels is not None:
        table = _read_csv(Path(labels))
        files = sorted(p for p in folder.rglob("*") if _is_image_file(p))
        out = []
        for p in files:
            rel = p.relative_to(folder).as_posix()
            label = table.get(rel, table.get(p.name))
            if label is None:
                warnings.warn(f"{p}: not listed in {labels}; skipped")
                continue
            out.append((p, label))
        return out, f"csv:{Path(labels).name}"
    subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    out = [(p, d.name) for d in subdirs for p in sorted(d.rglob("*")) if _is_image_file(p)]
    if not out and any(_is_image_file(p) for p in folder.iterdir()):
        raise PhysicalError(f"--images {folder}: pictures have no labels; put them in one sub-folder "
                            f"per class (ImageFolder), or pass --labels FILE.csv or --labels {PREDICTED}")
    return out, "folder"


def load_pictures(model: Classifier, images: Path | None = None, labels: str | None = None,
                  count: int | None = None, seed: int = 0,
                  warn: Callable[[str], None] | None = None, lazy: bool = False,
                  readable: Callable[[list[Path]], list[bool]] | None = None,
                  per_class: int | None = None) -> tuple[list[Picture], str]:
    """Load, label and preprocess the pictures; returns (pictures, labels source).

    ``images=None`` loads the bundled CIFAR-10 samples. ``count`` picks a
    random subset, reproducible with ``seed``; ``per_class`` N keeps the first N pictures of each
    class in file order (before ``count``), e.g. one of each for a target grid. Unreadable files are skipped
    with a warning; an unknown label, a missing or empty folder raise
    :class:`PhysicalError`. ``lazy``: keep no image in memory (``image`` None; memory
    flat in the number of pictures): every file is decoded once here to know it can be
    read, and again by :func:`picture_images` when its batch comes. ``readable(paths)``
    replaces that check (make-sheets shares it out between processes under torchrun).
    """
    warn = warn or (lambda msg: warnings.warn(msg))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if images is None:
            if labels is not None:
                raise PhysicalError("--labels needs --images: the bundled samples carry their own labels")
            entries, source = _bundled()
            root = None
        else:
            entries, source = _list_folder(Path(images), labels)
            root = Path(images)
    for w in caught:
        warn(str(w.message))
    if not entries:
        raise PhysicalError(f"--images {images}: no pictures found (looked for "
                            f"{', '.join(sorted(IMAGE_SUFFIXES))})")
    if per_class is not None:
        if per_class < 1:
            raise PhysicalError(f"--per-class {per_class}: must be at least 1")
        if any(label is None for _, label in entries):
            raise PhysicalError("--per-class needs labelled pictures (the bundled samples, ImageFolder sub-folders or "
                                "--labels FILE.csv)")
        kept: dict[str, int] = {}
        chosen = []
        for path, label in sorted(entries, key=lambda e: str(e[0])):
            if kept.get(str(label), 0) < per_class:
                kept[str(label)] = kept.get(str(label), 0) + 1
                chosen.append((path, label))
        entries = chosen
    if count is not None:
        if count < 1:
            raise PhysicalError(f"--count {count}: must be at least 1")
        if count < len(entries):
            entries = sorted(random.Random(seed).sample(entries, count), key=lambda e: str(e[0]))

    resolve = label_resolver(model)
    resolved = []
    for path, label_text in entries:
        label = None
        if label_text is not None:
            label = resolve(label_text)
            if label is None:
                raise _unknown_label(str(path), label_text, model)
        resolved.append((path, label))
    ok = readable([p for p, _ in resolved]) if lazy and readable is not None else None
    pictures: list[Picture] = []
    for k, (path, label) in enumerate(resolved):
        x = None
        try:
            if not lazy:
                x = preprocess(open_rgb(path), model)
            elif ok is None:
                open_rgb(path)
            elif not ok[k]:
                raise PhotoError(why_unreadable(path))
        except PhotoError as exc:
            warn(f"{path}: {exc}; skipped")
            continue
        rel = path.name if root is None else path.relative_to(root).as_posix()
        pictures.append(Picture(id=f"img{len(pictures):03d}", source=rel, label=label, image=x, path=path))
    if not pictures:
        raise PhysicalError(f"--images {images}: none of the {len(entries)} files could be read as an image")
    return pictures, source


def is_readable(paths: Sequence[Path]) -> list[bool]:
    """Whether each file decodes as a picture (what :func:`load_pictures` checks)."""
    out = []
    for p in paths:
        try:
            open_rgb(p)
            out.append(True)
        except PhotoError:
            out.append(False)
    return out


def why_unreadable(path: Path) -> str:
    """The reader's own reason why ``path`` cannot be read."""
    try:
        open_rgb(path)
    except PhotoError as exc:
        return str(exc)
    return "could not be read"
