"""The paper's artificial transformations (Kurakin et al. 2016, section 4), with albumentations.

Each transformation is applied to the exact 8-bit digital images of an
experiment (``printouts/images``, clean and adversarial), the results are
classified again, and the destruction rate (Eq. 1, :mod:`physical.report.metrics`) is
reported against the transformation's strength. This module is an independent
reference built on albumentations and OpenCV (real JPEG encoding), beside the
differentiable Kornia channel.

Strengths (:data:`TRANSFORMS`) are in units of the *digital image*: levels
0-255 for brightness and noise, pixels of the saved PNG for the blur sigma.
So on the 32x32 demo pictures a blur of sigma 1 px is a much stronger blur,
relative to the picture, than on 299x299 Inception inputs.

=========== ============================ =============================================
name        strength                     result (X: 8-bit image, rounded to 0..255)
=========== ============================ =============================================
brightness  delta, 0-255 levels          X + delta
contrast    factor mu (1 = unchanged)    mu * X (scaled about 0, as albumentations does)
blur        Gaussian sigma, px           X * G_sigma (kernel 2*int(3.5 sigma)+1 wide, edges reflected)
noise       sigma, 0-255 levels          X + N(0, sigma^2), per pixel and channel
jpeg        quality 1..100               decode(encode_jpeg(X, quality)), OpenCV libjpeg, 4:2:0
=========== ============================ =============================================

How each maps onto albumentations 2.0.x (conventions verified on 2.0.8 with
albucore 0.0.24, read from its source; they changed across versions):

- brightness, contrast: ``A.RandomBrightnessContrast(brightness_limit=(b, b),
  contrast_limit=(c, c), brightness_by_max=True)``. The code computes
  ``alpha = 1 + c`` and ``beta = b * max_value`` and returns ``X * alpha + beta``,
  so ``b = delta / 255`` on [0, 1] images and ``c = mu - 1``. The class docstring
  says contrast is applied about the image mean and brightness multiplicatively
  with ``brightness_by_max=True``: the code does neither.
- blur: ``A.GaussianBlur(sigma_limit=(s, s), blur_limit=0)``: blur_limit 0 makes
  the kernel size follow sigma (PIL's rule); sigma 0 would divide by zero, so
  strength 0 is ``A.NoOp``.
- noise: ``A.GaussNoise(std_range=(s, s), mean_range=(0, 0), per_channel=True,
  noise_scale_factor=1)`` with ``s = sigma / 255`` (2.x: std as a fraction of the
  maximum value; older versions took ``var_limit``, a variance in levels^2).
  noise_scale_factor=1 draws every pixel independently (below 1 it upsamples
  coarser noise).
- jpeg: ``A.ImageCompression(compression_type="jpeg", quality_range=(q, q))``
  (older versions: ``quality_lower``/``quality_upper``).
  It calls ``cv2.imencode`` on the array as given, which OpenCV reads as BGR;
  the image is handed over as BGR so that luma/chroma are those of the true
  RGB picture (the result then equals Pillow's JPEG at the same quality).
  Chroma is subsampled 4:2:0 (libjpeg's default, as in Pillow and phone
  cameras), so even quality 100 is not near-identity for colour detail: luma
  comes back within a level, but per-channel adversarial patterns are
  partly averaged away (on the demo, bim eps 16 images move 2.2 levels on
  average at quality 100).

Brightness, contrast, blur and noise run on float32 images in [0, 1] and are
rounded to the nearest 8-bit level once at the end: albumentations' uint8
paths truncate (the brightness/contrast lookup table casts down, and uint8
GaussNoise truncates each noise value toward zero before adding it, which
lowers the noise sigma by about 0.4 levels: -5% at sigma 8, -18% at sigma 2).
JPEG works on the 8-bit image directly.
"""
from __future__ import annotations

import os
import textwrap
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..attacks import METHOD_SHORT, METHOD_TITLES
from ..errors import PhysicalError
from ..sheets.manifest import read_manifest
from .figures import series_of
from .metrics import Rate, accuracy, destruction_rate

# albumentations asks PyPI for a newer version on import unless told not to.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


class TransformSpec(NamedTuple):
    """The strengths a sweep uses, and what one unit of strength means."""

    strengths: list[float]
    unit: str


TRANSFORMS: dict[str, TransformSpec] = {
    "brightness": TransformSpec([-40, -32, -24, -16, -8, 0, 8, 16, 24, 32, 40],
                                "brightness change δ, 0-255 levels (X + δ)"),
    "contrast": TransformSpec([0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4],
                              "contrast factor μ (μ·X, 1 = unchanged)"),
    "blur": TransformSpec([0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0],
                          "Gaussian blur σ, pixels of the digital image"),
    "noise": TransformSpec([0, 2, 4, 6, 8, 12, 16, 20],
                           "Gaussian noise σ, 0-255 levels"),
    "jpeg": TransformSpec([10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
                          "JPEG quality (lower = stronger)"),
}

#: The strength that leaves an image unchanged (JPEG has none: quality 100 still rounds).
IDENTITY: dict[str, float] = {"brightness": 0, "contrast": 1, "blur": 0, "noise": 0}

TITLES = {"brightness": "Change of brightness", "contrast": "Change of contrast",
          "blur": "Gaussian blur", "noise": "Gaussian noise", "jpeg": "JPEG encoding"}

Progress = Callable[[str, int, int], None]


def _check(name: str, strength: float) -> float:
    if name not in TRANSFORMS:
        raise PhysicalError(f"unknown transformation '{name}'; choose from {', '.join(TRANSFORMS)}")
    s = float(strength)
    if not np.isfinite(s):
        raise ValueError(f"{name}: strength must be finite, got {strength}")
    limits = {"brightness": (-255, 255), "contrast": (0, None), "blur": (0, None),
              "noise": (0, 255), "jpeg": (1, 100)}
    lo, hi = limits[name]
    if s < lo or (hi is not None and s > hi):
        raise ValueError(f"{name}: strength {strength} outside [{lo}, {hi if hi is not None else 'inf'}]")
    if name == "jpeg" and s != int(s):
        raise ValueError(f"jpeg: quality must be a whole number, got {strength}")
    return s


def _pipeline(name: str, strength: float, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """One (H, W, 3) uint8 image -> the transformed uint8 image.

    The pipeline keeps its random state between calls: the i-th image passed
    gets the i-th noise draw of ``seed``, so a sweep that feeds images in
    chunks gets exactly what :func:`apply_transform` gives on the whole array.
    """
    import albumentations as A

    s = _check(name, strength)
    if name == "brightness":
        t = A.RandomBrightnessContrast(brightness_limit=(s / 255, s / 255), contrast_limit=(0.0, 0.0),
                                       brightness_by_max=True, ensure_safe_range=False, p=1.0)
    elif name == "contrast":
        t = A.RandomBrightnessContrast(brightness_limit=(0.0, 0.0), contrast_limit=(s - 1, s - 1),
                                       brightness_by_max=True, ensure_safe_range=False, p=1.0)
    elif name == "blur":
        t = A.NoOp(p=1.0) if s == 0 else A.GaussianBlur(sigma_limit=(s, s), blur_limit=0, p=1.0)
    elif name == "noise":
        t = A.GaussNoise(std_range=(s / 255, s / 255), mean_range=(0.0, 0.0), per_channel=True,
                         noise_scale_factor=1.0, p=1.0)
    else:  # jpeg
        t = A.ImageCompression(compression_type="jpeg", quality_range=(int(s), int(s)), p=1.0)
    compose = A.Compose([t], seed=seed)

    if name == "jpeg":
        def run(img: np.ndarray) -> np.ndarray:
            bgr = np.ascontiguousarray(img[..., ::-1])
            return np.ascontiguousarray(compose(image=bgr)["image"][..., ::-1])
    else:
        def run(img: np.ndarray) -> np.ndarray:
            out = compose(image=img.astype(np.float32) / np.float32(255))["image"]
            return np.rint(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)
    return run


def _check_images(images: Any) -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        what = (f"{images.dtype} array of shape {images.shape}" if isinstance(images, np.ndarray)
                else type(images).__name__)
        raise ValueError(f"images must be a uint8 array of shape (N, H, W, 3), got {what}")
    return images


def apply_transform(name: str, strength: float, images: np.ndarray, seed: int = 0) -> np.ndarray:
    """Apply one transformation at one strength to (N, H, W, 3) uint8 images; same shape and dtype.

    Deterministic for a given seed (only noise draws random numbers; image i
    gets the i-th draw). Strength units: see :data:`TRANSFORMS`.
    """
    images = _check_images(images)
    run = _pipeline(name, strength, seed)
    out = np.empty_like(images)
    for i, img in enumerate(images):
        out[i] = run(img)
    return out


# ---------------------------------------------------------------------------
# Sweep: every transformation and strength over the digital images of an experiment


def _to_tensor(images: Sequence[np.ndarray], model: Any):
    """uint8 (H, W, 3) images -> (N, 3, h, w) in [0, 1] on the 8-bit grid, at the model's input size."""
    import torch
    from PIL import Image

    from ..models import preprocess, quantize_8bit

    size = tuple(getattr(model, "input_size", ()))
    if all(im.shape[:2] == size for im in images):
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255.0)
        return quantize_8bit(x)
    return torch.stack([preprocess(Image.fromarray(im), model) for im in images])


def _predict(model: Any, images: Sequence[np.ndarray], batch_size: int) -> list:
    from .figures import predict

    out = []
    for i in range(0, len(images), batch_size):
        out += predict(model, _to_tensor(images[i:i + batch_size], model), batch_size)
    return out


def sweep(model: Any, printouts: Path, *, transforms: Iterable[str] | None = None, batch_size: int = 256,
          seed: int = 0, progress: Progress | None = None,
          strengths: Mapping[str, Sequence[float]] | None = None,
          steps_of: Callable[[list[tuple[str, float]]], list[tuple[str, float]]] | None = None) -> list[dict[str, Any]]:
    """Destruction rate under each artificial transformation and strength (the paper's section 4).

    Every digital image of the experiment (clean and adversarial variants) is
    transformed and classified again. Per (transform, strength, variant) one row::

        {transform, strength, attack, method, eps, setting, l2, linf, top1, top5, clean_top1, clean_top5}

    ``attack`` … ``linf``: the variant's :class:`~physical.report.figures.Cell` (its name,
    method, eps or None, setting, mean printed perturbation), in table order.

    ``top1``/``top5``: destruction rate (Eq. 1), Rate over the pictures whose
    digital clean image is right and digital adversarial image wrong (in that
    top-k), counting those whose transformed adversarial image is right.
    ``clean_top1``/``clean_top5``: accuracy of the transformed clean images
    (all pictures), to see how much the transformation itself hurts.

    Digital correctness is the model's prediction now, on the PNGs as saved; a
    warning says when it disagrees with the manifest's (another model, device
    or library version). Images are read once; each strength is one pass over
    them in chunks of ``batch_size``. ``progress(stage, done, total)`` is
    called once per strength. ``strengths`` replaces the default strengths
    (:data:`TRANSFORMS`) of the transformations it names. ``steps_of(steps)``: the part of the
    (transform, strength) steps to run here (the report shares whole steps out between processes
    under torchrun: each step passes over every image in order, so its noise draws do not depend
    on the split); default all.
    """
    from .figures import check_classes, load_png, variant_cells, with_perturbations

    names = list(TRANSFORMS) if transforms is None else list(dict.fromkeys(transforms))
    strengths = dict(strengths or {})
    for n in names + list(strengths):
        if n not in TRANSFORMS:
            raise PhysicalError(f"unknown transformation '{n}'; choose from {', '.join(TRANSFORMS)}")
    try:
        levels = {n: [_check(n, s) for s in strengths.get(n, TRANSFORMS[n].strengths)] for n in names}
    except ValueError as exc:
        raise PhysicalError(str(exc)) from None
    if batch_size < 1:
        raise PhysicalError(f"batch size {batch_size}: must be at least 1")
    printouts = Path(printouts)
    manifest = read_manifest(printouts)
    if hasattr(model, "class_names"):
        check_classes(model, manifest)
    progress = progress or (lambda stage, done, total: None)

    labels = {rec["id"]: int(rec["label"]) for rec in manifest["images"]}
    keys = [(rec["id"], v["name"]) for rec in manifest["images"] for v in rec["variants"]]
    images = [load_png(printouts / v["file"]) for rec in manifest["images"] for v in rec["variants"]]
    stored = {(rec["id"], v["name"]): [int(t["index"]) for t in v["top5"]]
              for rec in manifest["images"] for v in rec["variants"]}

    digital = dict(zip(keys, _predict(model, images, batch_size)))
    differ = [key for key in keys for k in (1, 5)
              if digital[key].ok(labels[key[0]], k) != (labels[key[0]] in stored[key][:k])]
    if differ:
        warnings.warn(f"{len(set(differ))} of {len(keys)} digital images are classified differently (top-1 or "
                      f"top-5 correctness) from the manifest's record, e.g. {differ[0][0]} {differ[0][1]}; "
                      "the sweep uses the model's predictions now", stacklevel=2)

    cells = variant_cells(with_perturbations(manifest, printouts, dict(zip(keys, images))))
    ids = [rec["id"] for rec in manifest["images"]]
    steps = [(n, s) for n in names for s in levels[n]]
    if steps_of is not None:
        steps = steps_of(steps)
    rows: list[dict[str, Any]] = []
    progress("transforms", 0, len(steps))
    for done, (name, strength) in enumerate(steps, 1):
        run = _pipeline(name, strength, seed)
        preds = []
        for i in range(0, len(images), batch_size):
            chunk = [run(im) for im in images[i:i + batch_size]]
            preds += _predict(model, chunk, batch_size)
        seen = dict(zip(keys, preds))
        clean = {k: accuracy(seen[(i, "clean")].ok(labels[i], k) for i in ids) for k in (1, 5)}
        for cell in cells:
            variant = cell.attack
            row: dict[str, Any] = {"transform": name, "strength": strength, **cell._asdict()}
            for k in (1, 5):
                row[f"top{k}"] = destruction_rate(
                    [digital[(i, "clean")].ok(labels[i], k) for i in ids],
                    [digital[(i, variant)].ok(labels[i], k) for i in ids],
                    [seen[(i, variant)].ok(labels[i], k) for i in ids])
            row["clean_top1"], row["clean_top5"] = clean[1], clean[5]
            rows.append(row)
        progress("transforms", done, len(steps))
    return rows


# ---------------------------------------------------------------------------
# Plots

METHOD_STYLE = {m: (colour, marker, METHOD_TITLES[m].removesuffix(" (FGSM)"))
                for m, colour, marker in (("fast", "#1f77b4", "o"), ("bim", "#d62728", "s"), ("ll", "#2ca02c", "^"),
                                          ("eot", "#9467bd", "D"), ("eot_ll", "#8c564b", "v"),
                                          ("pgd", "#e377c2", "P"), ("cw", "#17becf", "X"),
                                          ("cw_l0", "#0b6e78", "x"), ("cw_linf", "#7fdbe6", "p"),
                                          ("lbfgs", "#bcbd22", "*"), ("onepixel", "#ff7f0e", "h"),
                                          ("lspga", "#7f7f7f", "d"))}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h")
CLEAN_LINE = "accuracy, transformed clean"


def _series(rows: Sequence[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, value, ci low, ci high of one metric, sorted by strength; NaN where n == 0."""
    rows = sorted(rows, key=lambda r: r["strength"])
    x = np.array([float(r["strength"]) for r in rows])
    val, lo, hi = [], [], []
    for r in rows:
        rate: Rate = r[key]
        if rate.n:
            a, b = rate.interval
            val.append(rate.value), lo.append(a), hi.append(b)
        else:
            val.append(np.nan), lo.append(np.nan), hi.append(np.nan)
    return x, np.array(val), np.array(lo), np.array(hi)


def _panels(rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[tuple[dict[str, Any], str, str | None, str]]]]:
    """The columns of one transformation's grid: (title, [(variant, line label, colour, marker)]).

    One column per eps, a line per method (the same label in every column, so the legend
    names each method once); then, if any, one column for the variants without eps, a line
    per variant (the same method may come with several settings, e.g. one-pixel d=1 and d=3).
    """
    first: dict[str, dict[str, Any]] = {}
    for r in rows:
        first.setdefault(r["attack"], r)
    cells = list(first.values())   # the sweep's order: table order
    panels = []
    for eps in sorted({c["eps"] for c in cells if c["eps"] is not None}):
        panels.append((f"ε = {eps}", _lines([c for c in cells if c["eps"] == eps])))
    no_eps = [c for c in cells if c["eps"] is None]
    if no_eps:
        panels.append(("methods without ε", _lines(no_eps)))
    return panels


def _lines(cells: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], str, str | None, str]]:
    """(variant, line label, colour, marker) of each variant of one panel: the method's colour; the
    same method at another setting (pgd:steps=40 and pgd:steps=100, one-pixel d=1 and d=3) gets
    another marker and its setting in the label (the eps is the panel's)."""
    lines: list[tuple[dict[str, Any], str, str | None, str]] = []
    for c in cells:
        label, colour, marker = _style(c["method"])
        again = sum(1 for d, *_ in lines if d["method"] == c["method"])
        marker = marker if not again else [m for m in MARKERS if m != marker][(again - 1) % (len(MARKERS) - 1)]
        setting = c["setting"] if c["eps"] is None else series_of(c["method"], c["setting"])[1]
        lines.append((c, f"{label} {setting}".strip(), colour, marker))
    return lines


def _style(method: str) -> tuple[str, str | None, str]:
    """(line label, colour, marker) of a method in the eps columns."""
    colour, marker, label = METHOD_STYLE.get(method, (None, "o", method))
    return label, colour, marker


def plot_sweeps(rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """One PNG per transformation, ``<out_dir>/transform_<name>.png``; returns the paths written.

    A grid of panels: one column per eps, and one for the variants without eps (cw, lbfgs,
    onepixel: :func:`_panels`), top-1 destruction rate in the top row and top-5 in the
    bottom row (solid and dashed); one line per method (per variant in the last column) with
    its 95% Wilson interval as a band; n/a points (no working adversarial example) left out.
    The accuracy of the transformed clean images is drawn in grey for scale.
    """
    from .plots import pyplot, rate_axis

    plt = pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(r["transform"] for r in rows))
    paths: list[Path] = []
    for name in names:
        mine = [r for r in rows if r["transform"] == name]
        panels = _panels(mine)
        ncol = len(panels)
        fig, axes = plt.subplots(2, ncol, figsize=(3.2 * ncol + 1.0, 6.4), sharex=True, sharey=True,
                                 squeeze=False, layout="constrained")
        unit = TRANSFORMS[name].unit if name in TRANSFORMS else "strength"
        for col, (title, lines) in enumerate(panels):
            no_eps = all(c["eps"] is None for c, *_ in lines)
            for row_i, k in enumerate((1, 5)):
                ax = axes[row_i][col]
                # The clean images are the same for every variant: any variant's rows carry their accuracy.
                x, acc, _, _ = _series([r for r in mine if r["attack"] == lines[0][0]["attack"]], f"clean_top{k}")
                ax.plot(x, acc, color="0.55", lw=1.2, ls=":", label=CLEAN_LINE)
                ns = []
                for c, label, colour, marker in lines:
                    cell = [r for r in mine if r["attack"] == c["attack"]]
                    x, v, lo, hi = _series(cell, f"top{k}")
                    n = max((r[f"top{k}"].n for r in cell), default=0)
                    ns.append(f"{METHOD_SHORT.get(c['method'], c['method'])} "
                              f"{c['setting'] if no_eps else series_of(c['method'], c['setting'])[1]} {n}"
                              .replace("  ", " "))
                    line, = ax.plot(x, v, color=colour, marker=marker, ms=4, lw=1.6,
                                    ls="-" if k == 1 else "--", label=label)
                    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
                # n in the headroom above 1.0, clear of the lines.
                ax.text(0.5, 0.985, textwrap.fill("n: " + "; ".join(ns), 48), transform=ax.transAxes, va="top",
                        ha="center", fontsize=7.5 if len(ns) < 6 else 6.5, color="0.3")
                rate_axis(ax)
                if row_i == 0:
                    ax.set_title(title, fontsize=10)
                else:
                    ax.set_xlabel(unit, fontsize=8.5)
                if col == 0:
                    ax.set_ylabel(f"top-{k} destruction rate")
                if name == "jpeg" and row_i == 0 and col == 0:
                    ax.invert_xaxis()  # shared x: strongest compression on the right in every panel
        # One legend entry per line (the rows say top-1 and top-5), each method once, the grey line last;
        # at most one column more than there are panels, so that it fits the figure's width.
        entries: dict[str, Any] = {}
        for col in range(ncol):
            for handle, label in zip(*axes[0][col].get_legend_handles_labels()):
                entries.setdefault(label, handle)
        clean = entries.pop(CLEAN_LINE)
        handles = [*entries.values(), clean]
        texts = [*entries, "accuracy of the transformed clean images"]
        # About 0.065 inch per character at 8.5 pt, plus the marker: as many columns as fit the width.
        width = fig.get_figwidth()
        fits = max(1, int(width // (0.065 * max(len(t) for t in texts) + 0.6)))
        fig.legend(handles, texts, loc="outside lower center", ncol=min(len(handles), ncol + 1, fits), fontsize=8.5,
                   frameon=False)
        fig.suptitle(f"{TITLES.get(name, name)}: destruction rate of digital adversarial images\n"
                     "(band: 95% Wilson interval; n: working adversarial examples)", fontsize=10.5)
        path = out_dir / f"transform_{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
