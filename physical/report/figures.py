"""What every part of the report shares: classifying images, the paper's figures, and reading them back.

- :func:`predict`: a model's top-5 on a batch of images (:class:`Top5`);
- :func:`tables`: the accuracy and destruction-rate figures of one model and
  one source of transformed images (photos, the simulated channel, an
  artificial transformation), as flat records with a :class:`Rate` each;
- :class:`Cell`, :func:`variant_cells`, :func:`with_perturbations`: the adversarial
  variants of an experiment, one row of every table each (keyed by the variant's name,
  with its method, eps, setting and mean printed perturbation);
- :func:`figure_rows`, :func:`lookup`, :func:`rate_of`, :func:`cells_in_order`,
  :func:`typed_row`, :func:`cell_label`, :func:`norm_text`, :func:`source_order`,
  :func:`source_label`: the flat rows written to ``figures.csv``/``.json`` and how the
  tables, the HTML page and the plots read and label them;
- :func:`sim_to_real_gap`: how far each simulated source's destruction rates are
  from the photographed ones, one number per source (``gap.csv``);
- :func:`robust_accuracy`: top-1 accuracy on the clean images and under each variant,
  digital beside every source (``robust.csv``): for a defended model the figure that
  matters, how many adversarial images fail;
- ``METHOD_NAMES``: the short method names of every table.

Counting: each photo of a slot is one observation, so a page photographed
twice counts its images twice (the report says so). Digital figures count each
picture once. Every figure carries its k, n and Wilson 95% interval; an empty
denominator is reported as n/a, never as 0.

The terminal tables (:mod:`.terminal`), the HTML page (:mod:`.html`), the
artificial sweeps (:mod:`.artificial`) and the plots (:mod:`.plots`) import this
module; of each other, only the artificial sweeps import :mod:`.plots` (to draw).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
import torch

from ..attacks import METHOD_SHORT, method_rank
from ..errors import PhysicalError
from ..models import Classifier, open_rgb, preprocess
from .metrics import Rate, accuracy, correct_at, destruction_rate

PREFILTER_CONFIDENCE = 0.8
TOPK = (1, 5)
METHOD_NAMES = METHOD_SHORT


@dataclass(frozen=True)
class Top5:
    """A model's top-5 on one image: class indices and probabilities, best first."""

    index: tuple[int, ...]
    prob: tuple[float, ...]

    def ok(self, label: int, k: int) -> bool:
        return correct_at(self.index, label, k)


@dataclass(frozen=True)
class Observation:
    """One transformed copy of one (image, variant): a photo crop or a simulated one."""

    image_id: str
    variant: str
    top5: Top5


@torch.no_grad()
def predict(model: Classifier, x: torch.Tensor, batch_size: int = 256) -> list[Top5]:
    """Top-5 of each image. x: (N, 3, H, W) in [0, 1] at the model's input size."""
    out: list[Top5] = []
    for i in range(0, len(x), batch_size):
        probs = model(x[i:i + batch_size].to(model.device)).softmax(dim=1)
        p, idx = probs.topk(min(5, probs.shape[1]), dim=1)
        out += [Top5(tuple(a), tuple(round(b, 6) for b in q)) for a, q in zip(idx.tolist(), p.tolist())]
    return out


def load_images(paths: Sequence[Path], model: Classifier) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1]: the files through the model's own preprocessing."""
    return torch.stack([preprocess(open_rgb(p), model) for p in paths])


def prefilter_rule(clean_ok1: Any, adv_ok5: Any, clean_conf: Any, adv_conf: Any) -> Any:
    """The paper's prefiltered case, on bools or on numpy arrays of them (elementwise): clean right
    (top-1), adversarial wrong in top-1 and top-5, and the top prediction confident (>= 0.8) for both
    the clean and the adversarial image."""
    return (clean_ok1 & (adv_ok5 == False)  # noqa: E712 (elementwise on arrays, and right on bools)
            & (clean_conf >= PREFILTER_CONFIDENCE) & (adv_conf >= PREFILTER_CONFIDENCE))


def prefiltered(clean: Top5, adv: Top5, label: int) -> bool:
    """:func:`prefilter_rule` for one image's top-5s."""
    return bool(prefilter_rule(clean.ok(label, 1), adv.ok(label, 5), clean.prob[0], adv.prob[0]))


class Cell(NamedTuple):
    """One adversarial variant of the experiment: one row of every table, keyed by ``attack``."""

    attack: str            # the manifest's variant name, unique: "bim_e8", "cw", "onepixel_d1"
    method: str
    eps: int | None        # 0-255 levels; None for the methods without eps (cw, lbfgs, onepixel)
    setting: str           # the method's own parameter as text: "ε=8", "d=1", "κ=0"
    l2: float | None       # mean over the pictures of the printed perturbation, 0-255 units; None: unknown
    linf: float | None
    l0: float | None = None  # mean pixels changed (any channel); None: unknown (figures written before it)


def setting_of(variant: dict[str, Any]) -> str:
    """The setting of a manifest variant or a predictions.csv row; those written before it was
    recorded had only methods with eps."""
    if not variant.get("method"):
        return ""
    if variant.get("setting") is not None:
        return variant["setting"]
    return "" if variant.get("eps") is None else f"ε={variant['eps']}"


def _mean(values: Sequence[float | None]) -> float | None:
    """The mean, or None when any value is unknown (a mean over some pictures would mislead)."""
    return None if not values or any(v is None for v in values) else sum(values) / len(values)


def variant_cells(manifest: dict[str, Any]) -> list[Cell]:
    """Every adversarial variant of the experiment in table order: :func:`~physical.attacks.method_rank`,
    then the manifest's order within a method (eps or d ascending, as make-sheets plans them).

    ``l2``/``linf``: the means over the pictures of each variant's recorded ``perturbation``
    (None when a picture has none: run :func:`with_perturbations` first to measure them).
    """
    norms: dict[str, list[dict[str, Any] | None]] = {}
    for rec in manifest["images"]:
        for v in rec["variants"]:
            norms.setdefault(v["name"], []).append(v.get("perturbation"))
    first = [v for v in manifest["images"][0]["variants"] if v["method"] is not None]
    cells = [Cell(v["name"], v["method"], v.get("eps"), setting_of(v),
                  *(_mean([p[key] if p else None for p in norms[v["name"]]]) for key in ("l2", "linf", "l0")))
             for v in first]
    return sorted(cells, key=lambda c: method_rank(c.method))   # stable: the manifest's order within a method


def load_png(path: Path) -> np.ndarray:
    """A digital image of the experiment as (H, W, 3) uint8; a one-line PhysicalError when it cannot be read."""
    from ..photo_io import PhotoError

    try:
        return np.asarray(open_rgb(path), dtype=np.uint8)
    except (OSError, PhotoError) as exc:
        raise PhysicalError(f"{path}: cannot read this digital image ({exc}); the printouts folder is "
                            "incomplete, re-run `physical make-sheets --force`") from None


def with_perturbations(manifest: dict[str, Any], printouts: Path,
                       images: Mapping[tuple[str, str], np.ndarray] | None = None) -> dict[str, Any]:
    """The manifest with every adversarial variant's printed perturbation (l0, l2, linf in 0-255 units).

    Manifests written before make-sheets recorded it are measured on the PNG files in
    ``printouts/images/`` (the exact printed images), with make-sheets' own definition
    (:func:`physical.sheets.variants.perturbation`); ``images``: (image id, variant) ->
    (H, W, 3) uint8 arrays already read, to read no file twice. Returns the manifest itself
    when nothing is missing, else a copy.
    """
    from ..sheets.variants import perturbation

    if all("perturbation" in v for rec in manifest["images"] for v in rec["variants"] if v["method"]):
        return manifest
    out = copy.deepcopy(manifest)

    def tensor(rec_id: str, v: dict[str, Any]) -> torch.Tensor:
        got = (images or {}).get((rec_id, v["name"]))
        arr = got if got is not None else load_png(Path(printouts) / v["file"])
        return torch.from_numpy(np.array(arr, dtype=np.float64)).permute(2, 0, 1) / 255

    for rec in out["images"]:
        missing = [v for v in rec["variants"] if v["method"] and "perturbation" not in v]
        if missing:
            clean = tensor(rec["id"], next(v for v in rec["variants"] if v["method"] is None))
            for v in missing:
                v["perturbation"] = perturbation(tensor(rec["id"], v), clean)
    return out


def variant_targets(manifest: dict[str, Any]) -> dict[tuple[str, str], int]:
    """(image id, variant) -> the class the picture was attacked towards, for targeted variants: what
    make-sheets records as ``target``; in experiments made before it did, the least-likely class of
    the variants whose params say so (cw with --cw-least-likely, lbfgs)."""
    out: dict[tuple[str, str], int] = {}
    for rec in manifest["images"]:
        for v in rec["variants"]:
            target = v.get("target")
            if target is None and (v.get("params") or {}).get("target") == "least-likely":
                target = rec.get("least_likely")
            if target is not None:
                out[(rec["id"], v["name"])] = int(target)
    return out


def tables(manifest: dict[str, Any], digital: dict[tuple[str, str], Top5],
           observations: Sequence[Observation], labels: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """The accuracy and destruction-rate figures of one model and one source of transformed images.

    digital: (image id, variant) -> the model's top-5 on the digital image.
    observations: the transformed copies (each photo of a slot, or each simulated image).
    labels: image id -> true class, for pictures beyond the manifest's (``--print-count``: those
    attacked but not printed); default the manifest's.
    Returns flat records: {case, table, the :class:`Cell`'s fields (attack, method, eps, setting, l2,
    linf), metric, variant, rate (Rate)}, the cells in table order. Targeted variants
    (:func:`variant_targets`) also get table ``targeted``: the targeted success rate (top-1 is the
    target), ``digital_adv`` and ``transformed_adv``, over the pictures whose target is not their class.
    """
    labels = labels if labels is not None else {rec["id"]: int(rec["label"]) for rec in manifest["images"]}
    targets = variant_targets(manifest)
    by_variant: dict[str, list[Observation]] = {}
    for o in observations:
        by_variant.setdefault(o.variant, []).append(o)
    clean_obs = by_variant.get("clean", [])
    records: list[dict[str, Any]] = []

    def add(cell: Cell, case: str, table: str, metric: str, variant: str, rate: Rate) -> None:
        records.append({"case": case, "table": table, **cell._asdict(), "metric": metric, "variant": variant,
                        "rate": rate})

    for cell in variant_cells(manifest):
        name = cell.attack
        adv_obs = by_variant.get(name, [])
        seen = sorted({o.image_id for o in adv_obs} | {o.image_id for o in clean_obs})
        keep = {i for i in seen if prefiltered(digital[(i, "clean")], digital[(i, name)], labels[i])}
        for case, chosen in (("average", set(seen)), ("prefiltered", keep)):
            adv_c = [o for o in adv_obs if o.image_id in chosen]
            clean_c = [o for o in clean_obs if o.image_id in chosen]
            for k in TOPK:
                metric = f"top{k}"
                add(cell, case, "accuracy", metric, "transformed_clean",
                    accuracy(o.top5.ok(labels[o.image_id], k) for o in clean_c))
                add(cell, case, "accuracy", metric, "transformed_adv",
                    accuracy(o.top5.ok(labels[o.image_id], k) for o in adv_c))
                add(cell, case, "accuracy", metric, "digital_clean",
                    accuracy(digital[(i, "clean")].ok(labels[i], k) for i in sorted(chosen)))
                add(cell, case, "accuracy", metric, "digital_adv",
                    accuracy(digital[(i, name)].ok(labels[i], k) for i in sorted(chosen)))
                add(cell, case, "destruction", metric, "adv", destruction_rate(
                    [digital[(o.image_id, "clean")].ok(labels[o.image_id], k) for o in adv_c],
                    [digital[(o.image_id, name)].ok(labels[o.image_id], k) for o in adv_c],
                    [o.top5.ok(labels[o.image_id], k) for o in adv_c]))
        if any((i, name) in targets for i in seen):
            aimed = [i for i in seen if (i, name) in targets and targets[(i, name)] != labels[i]]
            add(cell, "average", "targeted", "top1", "digital_adv",
                accuracy(digital[(i, name)].ok(targets[(i, name)], 1) for i in aimed))
            add(cell, "average", "targeted", "top1", "transformed_adv",
                accuracy(o.top5.ok(targets[(o.image_id, name)], 1) for o in adv_obs if o.image_id in set(aimed)))
    return records


def digital_tables(manifest: dict[str, Any], top5: np.ndarray, prob: np.ndarray, labels: np.ndarray,
                   variants: Sequence[str]) -> list[dict[str, Any]]:
    """The digital accuracy records of :func:`tables` (``digital_clean``, ``digital_adv``; average and
    prefiltered case) for many pictures at once, from arrays: ``top5``, ``prob`` (N, V, k) the model's
    top-k on each picture's variants (names ``variants``), ``labels`` (N,). What :func:`tables` gives
    for these rows when every picture is observed, without a Python object per image."""
    col = {name: j for j, name in enumerate(variants)}
    labels = np.asarray(labels)[:, None]
    ok = {k: (top5[:, :, :k] == labels[:, :, None]).any(axis=2) for k in TOPK}    # (N, V) each
    c = col["clean"]
    records: list[dict[str, Any]] = []
    for cell in variant_cells(manifest):
        j = col[cell.attack]
        keep = prefilter_rule(ok[1][:, c], ok[5][:, j], prob[:, c, 0], prob[:, j, 0])
        for case, chosen in (("average", np.ones(len(labels), dtype=bool)), ("prefiltered", keep)):
            for k in TOPK:
                for variant, v in (("digital_clean", c), ("digital_adv", j)):
                    records.append({"case": case, "table": "accuracy", **cell._asdict(), "metric": f"top{k}",
                                    "variant": variant,
                                    "rate": Rate(int(ok[k][chosen, v].sum()), int(chosen.sum()))})
    return records


def attacked_model_id(manifest: dict[str, Any]) -> str:
    """The id under which the report shows the experiment's own model: ``"demo"``, or behind the
    experiment's defense ``"demo+bits:4,jpeg:75"`` (as :func:`physical.defenses.defend` names it)."""
    info = manifest["model"]
    return info["id"] + (f"+{info['defense']['spec']}" if info.get("defense") else "")


def check_classes(model: Classifier, manifest: dict[str, Any]) -> None:
    names = manifest["model"]["class_names"]
    if list(model.class_names) != list(names):
        raise PhysicalError(f"model {model.model_id} has {len(model.class_names)} classes that do not match the "
                            f"experiment's {len(names)} ({manifest['model']['id']}); choose a model trained on the "
                            "same classes")


def figure_rows(model_id: str, source: str, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat, JSON/CSV-ready figure rows (the columns documented in the README)."""
    out = []
    for r in records:
        rate: Rate = r["rate"]
        out.append({"model": model_id, "source": source, "case": r["case"], "table": r["table"],
                    **{key: r.get(key) for key in Cell._fields}, "metric": r["metric"], "variant": r["variant"],
                    **rate.as_dict()})
    return out


def lookup(figures: Sequence[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    """Figure rows whose fields equal ``match``."""
    return [f for f in figures if all(f.get(k) == v for k, v in match.items())]


def rate_of(row: dict[str, Any]) -> Rate:
    return Rate(int(row["k"]), int(row["n"]))


def optional_number(value: Any, kind: type) -> Any:
    """A number from figures.json or a CSV file's string: ``""`` (None written out) and None are None."""
    return None if value is None or value == "" else kind(value)


def typed_row(row: dict[str, Any]) -> dict[str, Any]:
    """A figure row with numbers as numbers (figures.csv's rows are strings; figures.json's pass unchanged)."""
    return dict(row, eps=optional_number(row["eps"], int), l2=optional_number(row.get("l2"), float),
                linf=optional_number(row.get("linf"), float), l0=optional_number(row.get("l0"), float),
                k=int(row["k"]), n=int(row["n"]))


def cells_in_order(figures: Sequence[dict[str, Any]]) -> list[Cell]:
    """The cells (variants) of some figure rows in table order: the paper's method order, then the
    rows' order within a method (the manifest's: eps or d ascending)."""
    seen: dict[str, Cell] = {}
    for f in figures:
        if f["attack"] not in seen:
            t = typed_row(f)
            seen[f["attack"]] = Cell(*(t[key] for key in Cell._fields))
    return sorted(seen.values(), key=lambda c: method_rank(c.method))


def targeted_table(rows: Sequence[dict[str, Any]], manifest: dict[str, Any]
                   ) -> tuple[list[str], list[tuple[str, Rate, list[Rate]]]]:
    """The targeted-success table of some rows of table ``targeted`` (one model): its sources (photo, then
    the simulated ones) and a row per targeted variant, except that the variants of one ``--targets all``
    spec (the manifest's ``target_group``) are pooled, labelled ``"C&W κ=0, every target"``:
    (label, digital success, success per source). In table order. The digital counts are the first
    source's (every source's rows carry the digital counts of the pictures it saw)."""
    sources = source_order(r["source"] for r in rows)
    group_of = {v["name"]: v.get("target_group") for v in manifest["images"][0]["variants"]}
    groups: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for cell in cells_in_order(rows):
        group = group_of.get(cell.attack)
        setting = ", ".join(p for p in cell.setting.split(", ") if not p.startswith("target ")) if group \
            else cell.setting
        label = cell_label(cell.method, setting) + (", every target" if group else "")
        groups.setdefault(group or cell.attack, (label, []))[1].extend(r for r in rows if r["attack"] == cell.attack)
    out = []
    for label, mine in groups.values():
        digital = pooled([r for r in mine if r["variant"] == "digital_adv" and r["source"] == sources[0]])
        out.append((label, digital, [pooled([r for r in mine if r["variant"] == "transformed_adv"
                                             and r["source"] == s]) for s in sources]))
    return sources, out


def transfer_table(rows: Sequence[dict[str, Any]], manifest: dict[str, Any]
                   ) -> tuple[list[str], list[tuple[str, list[tuple[str, str, list[Rate | None]]]]]]:
    """The transfer table of the rows of table ``transfer``: its columns (the classifying models) and, per
    source of images (digital first), its rows grouped by the model that made them (:func:`transfer_groups`):
    (source, [(made on, attack label, error rate per model or None)])."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    tables = []
    for source in [DIGITAL, *source_order(r["source"] for r in rows)]:
        mine = [r for r in rows if r["source"] == source]
        lines = []
        for maker, attacks in transfer_groups(manifest):
            for attack in attacks:
                found = {r["model"]: rate_of(r) for r in mine if r["attack"] == attack}
                if found:
                    lines.append((maker, transfer_label(manifest, attack), [found.get(m) for m in models]))
        if lines:
            tables.append((source, lines))
    return models, tables


def pooled(rows: Sequence[dict[str, Any]]) -> Rate:
    """The rate of several figure rows counted together (sum of k over sum of n)."""
    return Rate(sum(int(r["k"]) for r in rows), sum(int(r["n"]) for r in rows))


def series_of(method: str, setting: str) -> tuple[str, str]:
    """The line a variant with eps belongs to in a plot against eps: its method and the rest of its
    setting (``("pgd", "steps=100")`` for ``"ε=8, steps=100"``): one method at several settings
    (``--methods pgd:steps=40,pgd:steps=100``) draws a line per setting."""
    rest = [p for p in setting.split(", ") if p and not p.startswith("ε=")]
    return method, ", ".join(rest)


def cell_label(method: str, setting: str) -> str:
    """A variant as every table labels it: the method's short name and its setting, ``"PGD ε=8"``,
    ``"C&W κ=0"``, ``"one-pixel d=1"``."""
    return f"{METHOD_NAMES.get(method, method)} {setting}".strip()


def norm_text(value: float | None) -> str:
    """A mean perturbation norm (0-255 units) as the tables show it: ``"441.7"``, or ``"n/a"``."""
    return "n/a" if value is None else f"{value:.1f}"


ATTACKED = "attacked"


def source_order(sources: Iterable[str]) -> list[str]:
    """The sources of transformed images: photo first, then the others (simulated presets, transforms) by
    name. :data:`ATTACKED` (digital figures only, of every picture attacked when a sample was printed)
    is not one: its rows feed the digital columns; nor is :data:`DIGITAL` (the transfer rows' digital images)."""
    uniq = [s for s in dict.fromkeys(sources) if s not in (ATTACKED, DIGITAL)]
    return sorted(uniq, key=lambda s: (s != "photo", s))


def source_label(source: str) -> str:
    """``"photo"``, or ``"simulated:typical"`` as ``"simulated (typical)"``."""
    if source == "photo":
        return "photo"
    kind, _, preset = source.partition(":")
    return f"{kind} ({preset})" if preset else kind


MIN_GAP_N = 30
GAP_COLUMNS = ("model", "source", "metric", "case", "mean_abs_diff", "cells", "min_n")


def sim_to_real_gap(figures: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """How far each simulated source is from the photos: one row per (model, simulated source).

    ``mean_abs_diff``: the mean of |simulated - photographed| top-1 destruction rate
    (a fraction, 0..1) over the average-case cells (variants) where both have
    n >= ``MIN_GAP_N``; ``cells``: how many cells that is. Smaller cells are left out
    because their sampling noise would swamp the difference (the 95% interval of a
    rate near 50% is still about +-17 points at n = 30). When no cell qualifies,
    ``mean_abs_diff`` is None and ``cells`` 0. A model without photographed figures
    has no rows: there is nothing to compare with. Columns: :data:`GAP_COLUMNS`.
    Accepts figures.csv's rows of strings as well as figures.json's.
    """
    rows = [f for f in figures if f["table"] == "destruction" and f["case"] == "average" and f["metric"] == "top1"]
    out: list[dict[str, Any]] = []
    for model in dict.fromkeys(f["model"] for f in rows):
        mine = [f for f in rows if f["model"] == model]
        photo = {f["attack"]: rate_of(f) for f in mine if f["source"] == "photo"}
        if not photo:
            continue
        for source in source_order(f["source"] for f in mine):
            if not source.startswith("simulated:"):
                continue
            diffs = []
            for f in mine:
                sim, real = rate_of(f), photo.get(f["attack"])
                if f["source"] == source and real is not None and min(sim.n, real.n) >= MIN_GAP_N:
                    diffs.append(abs(sim.value - real.value))
            out.append({"model": model, "source": source, "metric": "top1", "case": "average",
                        "mean_abs_diff": sum(diffs) / len(diffs) if diffs else None, "cells": len(diffs),
                        "min_n": MIN_GAP_N})
    return out


def gap_text(row: dict[str, Any]) -> str:
    """One gap row as the terminal, the HTML page and the plot show it: ``"12.5 points over 4 cells"``,
    or why it is n/a."""
    if row["mean_abs_diff"] is None:
        return f"n/a (no cell with n >= {row['min_n']} in both)"
    cells = row["cells"]
    return f"{100 * row['mean_abs_diff']:.1f} points over {cells} cell{'' if cells == 1 else 's'}"


ROBUST_COLUMNS = ("model", "attack", "method", "eps", "setting", "linf", "source", "k", "n", "value", "ci_low",
                  "ci_high")
DIGITAL = "digital"


def robust_accuracy(figures: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Robust accuracy: each model's top-1 accuracy on the clean images and under each variant, digital
    and through every source (photo, simulated), average case; rows in :data:`ROBUST_COLUMNS`.

    One row per (model, row, source): the row ``attack="clean"`` (method None) first, then the
    variants in table order; ``source`` is ``"digital"`` (the digital images) or a figure source,
    whose rows count its observations (each photo of a slot once). The digital rows are those of
    the source that saw the most pictures (a simulated channel sees them all, photos only the
    printed and photographed ones), so ``n`` says which set they rest on. A re-arrangement of
    figure rows (figures.json's or figures.csv's): no number is computed twice.
    """
    rows = [typed_row(f) for f in figures if f["table"] == "accuracy" and f["case"] == "average"
            and f["metric"] == "top1"]
    out: list[dict[str, Any]] = []
    for model in dict.fromkeys(f["model"] for f in rows):
        mine = [f for f in rows if f["model"] == model]
        sources = source_order(f["source"] for f in mine)
        cells = cells_in_order(mine)

        def most(found: list[dict[str, Any]]) -> dict[str, Any] | None:
            # the most pictures; ties to the first source in source order (photo first)
            return max(found, key=lambda f: (f["n"], -sources.index(f["source"]) if f["source"] in sources
                                             else 1), default=None)

        def add(cell: Cell | None, source: str, f: dict[str, Any] | None) -> None:
            base = ({"attack": "clean", "method": None, "eps": None, "setting": "", "linf": None} if cell is None
                    else {"attack": cell.attack, "method": cell.method, "eps": cell.eps, "setting": cell.setting,
                          "linf": cell.linf})
            rate = rate_of(f) if f is not None else Rate(0, 0)
            out.append({"model": model, **base, "source": source, **rate.as_dict()})

        first = cells[0].attack if cells else None
        add(None, DIGITAL, most([f for f in mine if f["variant"] == "digital_clean"]))
        for s in sources:
            add(None, s, next((f for f in mine if f["source"] == s and f["attack"] == first
                               and f["variant"] == "transformed_clean"), None))
        for cell in cells:
            add(cell, DIGITAL, most([f for f in mine if f["attack"] == cell.attack and f["variant"] == "digital_adv"]))
            for s in sources:
                add(cell, s, next((f for f in mine if f["source"] == s and f["attack"] == cell.attack
                                   and f["variant"] == "transformed_adv"), None))
    return out


def robust_label(row: dict[str, Any]) -> str:
    """A robust-accuracy row's label: ``"clean"``, or the variant's (:func:`cell_label`)."""
    return "clean" if row["method"] is None else cell_label(row["method"], row["setting"])


def made_on(manifest: dict[str, Any]) -> dict[str, str]:
    """Each adversarial variant's source model, the model whose gradients made it: the variant's
    ``source`` (make-sheets --source), else the experiment's model (behind its defense, if any);
    ``"noise like <model>"`` for Szegedy's control (Gaussian noise of a variant's size)."""
    own = attacked_model_id(manifest)
    variants = [v for v in manifest["images"][0]["variants"] if v["method"]]
    out = {v["name"]: v.get("source") or own for v in variants if v["method"] != "noise"}
    out.update({v["name"]: f"noise like {out.get(v['params'].get('like'), own)}" for v in variants
                if v["method"] == "noise"})
    return out


def transfer_label(manifest: dict[str, Any], attack: str) -> str:
    """A transfer table's row label: the variant's method and setting without its source (the table's
    first column), a noise row as the variant whose size it has."""
    variants = {v["name"]: v for v in manifest["images"][0]["variants"]}
    v = variants[attack]
    if v["method"] == "noise":
        return transfer_label(manifest, v["params"]["like"]) if v["params"].get("like") in variants else attack
    setting = ", ".join(p for p in setting_of(v).split(", ") if p and not p.startswith("from "))
    return cell_label(v["method"], setting)


def transfer_rows(figures: Sequence[dict[str, Any]], manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The transfer table as figure rows (table ``transfer``, metric ``top1``, variant ``error``): for every
    classifying model (``model``: the table's column), adversarial variant (``attack``: its row, made on
    :func:`made_on`'s model) and source (``digital``, ``photo``, ``simulated:...``), the error rate,
    1 - top-1 accuracy, as k errors of n. A re-arrangement of :func:`robust_accuracy`'s counts."""
    cells = {c.attack: c for c in variant_cells(manifest)}
    out = []
    for r in robust_accuracy(figures):
        if r["method"] is None:
            continue
        c = cells.get(r["attack"])
        out.append({"model": r["model"], "source": r["source"], "case": "average", "table": "transfer",
                    "attack": r["attack"], "method": r["method"], "eps": r["eps"], "setting": r["setting"],
                    "l2": c.l2 if c else None, "linf": r["linf"], "l0": c.l0 if c else None, "metric": "top1",
                    "variant": "error",
                    **Rate(int(r["n"]) - int(r["k"]), int(r["n"])).as_dict()})
    return out


def transfer_groups(manifest: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The transfer table's rows grouped by the model that made them, in the experiment's order (its own
    model first, then each --source, then the noise): [(model, [attack, ...])]."""
    groups: dict[str, list[str]] = {}
    for attack, model in made_on(manifest).items():
        groups.setdefault(model, []).append(attack)
    return sorted(groups.items(), key=lambda g: g[0].startswith("noise like "))     # stable: the noise last
