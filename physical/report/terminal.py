"""The report's terminal tables (rich): the paper's layout, and the sim-to-real gap."""
from __future__ import annotations

from typing import Any, Sequence

from rich.text import Text

from .figures import (DIGITAL, MIN_GAP_N, cell_label, cells_in_order, gap_text, lookup, norm_text, rate_of,
                      robust_accuracy, robust_label, sim_to_real_gap, source_label, source_order, targeted_table,
                      transfer_table)
from .metrics import Rate


def _pct(rate: Rate) -> str:
    return "n/a" if rate.value is None else f"{100 * rate.value:.0f}"


def _rate_cell(rate: Rate) -> str:
    """Two lines that fit a narrow column: ``"25%  n=8"`` over ``"[7, 59]"``."""
    if not rate.n:
        return rate.format(0)     # the one spelling of an empty denominator
    lo, hi = rate.interval
    return f"{100 * rate.value:.0f}%  n={rate.n}\n[{100 * lo:.0f}, {100 * hi:.0f}]"


def render_tables(figures: Sequence[dict[str, Any]], source: str = "photo", model: str | None = None) -> list[Any]:
    """rich Tables in the paper's layout for one model and one source of transformed images.

    A row per variant, labelled with its method and setting (``"PGD ε=8"``, ``"C&W κ=0"``), with
    the mean L2 and L∞ of its printed perturbation (0-255 units) beside the figures: methods
    that choose their own perturbation size are compared at the size they chose.
    """
    from rich.table import Table

    model = model or figures[0]["model"]
    fig = [f for f in figures if f["model"] == model and f["source"] == source]
    what = "photos" if source == "photo" else source
    out = []
    acc = Table(title=f"Accuracy % top-1 / top-5, average case ({what}; {model}); L0, L2, L∞: the mean printed "
                      "perturbation of each variant (pixels changed; 0-255 levels)", title_justify="left")
    acc.add_column("method, setting")
    for col in ("L0", "L2", "L∞"):
        acc.add_column(col, justify="right")
    for col in ("clean, transformed", "adv., transformed", "clean, digital", "adv., digital"):
        acc.add_column(col.replace("transformed", "photo" if source == "photo" else "simulated"), justify="right")
    dr = Table(title=f"Destruction rate with 95% interval ({what}; {model}); under each method, the digital "
                     "top-1 accuracy of its adversarial images", title_justify="left")
    dr.add_column("method, setting")
    for col in ("L0", "L2", "L∞"):
        dr.add_column(col, justify="right")
    for col in ("average, top-1", "average, top-5", "prefiltered, top-1", "prefiltered, top-5"):
        dr.add_column(col, justify="right")
    for cell in cells_in_order(fig):
        rows = [f for f in fig if f["attack"] == cell.attack]

        def pair(case: str, table: str, variant: str) -> str:
            r1, r5 = (rate_of(lookup(rows, case=case, table=table, variant=variant, metric=m)[0])
                      for m in ("top1", "top5"))
            return f"{_pct(r1)} / {_pct(r5)}  n={r1.n}"

        label = cell_label(cell.method, cell.setting)
        norms = (norm_text(cell.l0), norm_text(cell.l2), norm_text(cell.linf))
        acc.add_row(label, *norms, *(pair("average", "accuracy", v) for v in
                             ("transformed_clean", "transformed_adv", "digital_clean", "digital_adv")))
        # The attack's digital success beside what the photo destroys: EoT trades a little of the
        # one for the other, and the user should see the trade.
        digital = rate_of(lookup(rows, case="average", table="accuracy", variant="digital_adv", metric="top1")[0])
        dr.add_row(Text(f"{label}\n") + Text(f"digital {_pct(digital)}%", style="dim"), *norms,
                   *(_rate_cell(rate_of(lookup(rows, case=c, table="destruction", metric=m)[0]))
                     for c in ("average", "prefiltered") for m in ("top1", "top5")))
    out += [acc, dr]
    return out


def render_robust(figures: Sequence[dict[str, Any]], model: str | None = None) -> list[Any]:
    """The robust-accuracy table of one model (:func:`~physical.report.figures.robust_accuracy`): top-1
    accuracy on the clean images and under each variant, digital beside every source."""
    from rich.table import Table

    rows = robust_accuracy(figures)
    model = model or (rows[0]["model"] if rows else None)
    mine = [r for r in rows if r["model"] == model]
    if not mine:
        return []
    sources = [DIGITAL] + source_order(r["source"] for r in mine if r["source"] != DIGITAL)
    table = Table(title=f"Robust accuracy: top-1 % with 95% interval, average case ({model}); clean, then under "
                        "each attack (the adversarial images' accuracy: higher is more robust)",
                  title_justify="left")
    table.add_column("method, setting")
    table.add_column("L∞", justify="right")
    for s in sources:
        table.add_column("digital" if s == DIGITAL else source_label(s), justify="right")
    for attack in dict.fromkeys(r["attack"] for r in mine):
        by_source = {r["source"]: r for r in mine if r["attack"] == attack}
        first = next(iter(by_source.values()))
        table.add_row(robust_label(first), norm_text(first["linf"]) if first["method"] else "",
                      *(_rate_cell(rate_of(by_source[s])) if s in by_source else "" for s in sources))
    return [table]


def render_targeted(figures: Sequence[dict[str, Any]], manifest: dict[str, Any], model: str | None = None) -> list[Any]:
    """The targeted success rates of one model (:func:`~physical.report.figures.targeted_table`): the share
    of each targeted variant's images classified as their target, digital beside every source; none
    without targeted variants."""
    from rich.table import Table

    model = model or (figures[0]["model"] if figures else None)
    mine = [f for f in figures if f["model"] == model and f["table"] == "targeted"]
    if not mine:
        return []
    sources, lines = targeted_table(mine, manifest)
    table = Table(title=f"Targeted success: % classified as the target with 95% interval ({model}); over the "
                        "pictures whose target is not their own class (--targets all: every target pooled)",
                  title_justify="left")
    table.add_column("method, setting")
    for s in [DIGITAL, *sources]:
        table.add_column(source_label(s), justify="right")
    for label, digital, by_source in lines:
        table.add_row(label, _rate_cell(digital), *(_rate_cell(r) for r in by_source))
    return [table]


def render_transfer(figures: Sequence[dict[str, Any]], manifest: dict[str, Any]) -> list[Any]:
    """The transfer table (:func:`~physical.report.figures.transfer_table`), one per source of images
    (digital first): a row per adversarial variant grouped by the model that made it, a column per
    classifying model; cells: error rate (1 - top-1 accuracy) with 95% interval and n; the white-box
    cells (made on the column's model) marked ``*``. None without transfer rows."""
    from rich.table import Table

    models, tables = transfer_table([f for f in figures if f["table"] == "transfer"], manifest)
    out = []
    for source, lines in tables:
        what = "digital images" if source == DIGITAL else source_label(source)
        table = Table(title=f"Transfer: error rate % with 95% interval ({what}); rows: the images made on a model, "
                            "columns: the model classifying them; * white box", title_justify="left")
        table.add_column("made on")
        table.add_column("attack")
        for m in models:
            table.add_column(m, justify="right")
        for maker, label, rates in lines:
            table.add_row(maker, label, *("" if r is None else _rate_cell(r) + (" *" if m == maker else "")
                                          for m, r in zip(models, rates)))
        out.append(table)
    return out


def render_gap(figures: Sequence[dict[str, Any]]) -> list[Any]:
    """The sim-to-real gap of every simulated source (:func:`~physical.report.figures.sim_to_real_gap`)
    as one rich Table; none when there is nothing to compare (no photos, or no simulated source)."""
    from rich.table import Table

    gaps = sim_to_real_gap(figures)
    if not gaps:
        return []
    table = Table(title=f"Sim-to-real gap: mean |simulated - photo| of the top-1 destruction rate, average case, "
                        f"over the cells with n >= {MIN_GAP_N} in both", title_justify="left")
    for col in ("model", "simulated source", "gap"):
        table.add_column(col)
    for g in gaps:
        table.add_row(g["model"], source_label(g["source"]), gap_text(g))
    return [table]
