"""``printouts/digital.npz``: the digital predictions of every picture attacked, when only a sample is printed.

``make-sheets --print-count N`` attacks every picture and prints a seeded sample of N
(:func:`print_sample`). The manifest keeps its full record (files, top-5, perturbation) for the
printed pictures only; the digital figures of all of them come from this table, a few numpy
arrays (50,000 pictures x 13 variants write and read in well under a second):

- ``id``, ``source`` (N,): the picture's id (``img042``) and its file, as in the manifest;
- ``label``, ``least_likely`` (N,): class indices;
- ``variant`` (V,): the variant names, in the manifest's order;
- ``top5`` (N, V, 5) int32 and ``prob`` (N, V, 5) float32: the model's top-5 on each saved 8-bit image;
- ``perturbation`` (N, V, 3) float32: l0, l2, linf of each printed perturbation (0-255 units);
- ``printed`` (N,) bool: in the printed sample;
- ``class_names`` (C,).
"""
from __future__ import annotations

import io
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import PhysicalError
from ..files import write_atomic

DIGITAL_NAME = "digital.npz"
PRINT_RULE = "sorted(random.Random(seed * 1000003 + 17).sample(range(pictures), count))"
FIELDS = ("id", "source", "label", "least_likely", "variant", "top5", "prob", "perturbation", "printed",
          "class_names")


@dataclass(frozen=True)
class DigitalTable:
    """The digital predictions of one batch: ``index`` (N,) the pictures' places in the experiment,
    ``label``, ``least_likely`` (N,), ``top5`` (N, V, 5), ``prob`` (N, V, 5), ``norms`` (N, V, 3)."""

    index: torch.Tensor
    label: torch.Tensor
    least_likely: torch.Tensor
    top5: torch.Tensor
    prob: torch.Tensor
    norms: torch.Tensor


def print_sample(n: int, count: int | None, seed: int) -> list[int]:
    """The places of the pictures to print (:data:`PRINT_RULE`): all of them when ``count`` is None or
    at least ``n``, else a random ``count`` of them, reproducible with ``seed``, in picture order."""
    if count is None or count >= n:
        return list(range(n))
    return sorted(random.Random(seed * 1_000_003 + 17).sample(range(n), count))


def write_digital(path: Path, parts: Sequence[DigitalTable], variants: Sequence[str], ids: Sequence[str],
                  sources: Sequence[str], class_names: Sequence[str], printed: Sequence[int]) -> None:
    """Write the batches' tables (any order, together covering every picture) as one ``digital.npz``."""
    index = torch.cat([t.index for t in parts])
    order = index.argsort()
    if not torch.equal(index[order], torch.arange(len(ids))):
        raise RuntimeError("digital table: the batches do not cover every picture exactly once")

    def cat(name: str) -> np.ndarray:
        return torch.cat([getattr(t, name) for t in parts])[order].numpy()

    flags = np.zeros(len(ids), dtype=bool)
    flags[list(printed)] = True
    buf = io.BytesIO()
    np.savez(buf, id=np.array(ids, dtype=str), source=np.array(sources, dtype=str),
             label=cat("label").astype(np.int32), least_likely=cat("least_likely").astype(np.int32),
             variant=np.array(variants, dtype=str), top5=cat("top5").astype(np.int32),
             prob=cat("prob").astype(np.float32), perturbation=cat("norms").astype(np.float32),
             printed=flags, class_names=np.array(class_names, dtype=str))
    write_atomic(Path(path), buf.getvalue())


def read_digital(path: Path) -> dict[str, np.ndarray]:
    """Read and check a ``digital.npz``; a one-line PhysicalError on any problem."""
    path = Path(path)
    fix = "re-run `physical make-sheets --force` with the same options"
    if not path.is_file():
        raise PhysicalError(f"{path}: missing, yet the manifest says only a sample was printed; {fix}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data: dict[str, Any] = {k: z[k] for k in FIELDS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise PhysicalError(f"{path}: not a readable digital table ({exc}); {fix}") from None
    n, v = len(data["id"]), len(data["variant"])
    k = data["top5"].shape[-1] if data["top5"].ndim == 3 else -1
    shapes = {"source": (n,), "label": (n,), "least_likely": (n,), "top5": (n, v, k), "prob": (n, v, k),
              "perturbation": (n, v, 3), "printed": (n,)}
    for key, shape in shapes.items():
        if data[key].shape != shape:
            raise PhysicalError(f"{path}: {key} has shape {data[key].shape}, expected {shape}; {fix}")
    return data
