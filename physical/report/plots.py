"""The report's plots of the figure rows, and what every plot of the report shares.

- :func:`pyplot`: matplotlib on the Agg backend (files only, no display needed);
- :func:`rate_axis`: the y axis of a rate in [0, 1], with headroom above 1 for labels;
- :func:`plot_destruction_vs_eps`: per model, the average-case destruction rate
  and the robust accuracy against eps, one column per method, the photographed and every simulated
  source side by side at each eps, so that the simulated channel can be judged
  against the photos (``plots/destruction_vs_eps_<model>.png``). The methods
  without eps (cw, lbfgs, onepixel) have no eps axis and are left out (the plot
  says so); the tables show them.

The artificial sweeps (:mod:`.artificial`) draw with the first two.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..attacks import METHOD_SHORT, METHOD_TITLES
from .figures import (DIGITAL, MIN_GAP_N, cells_in_order, gap_text, lookup, robust_accuracy, series_of,
                      sim_to_real_gap, source_label, source_order, typed_row)

PHOTO_STYLE = ("#222222", "o")
DIGITAL_STYLE = ("#9e9e9e", "x")
# One (colour, marker) per simulated source, in source_order; reused cyclically past the fifth.
SIMULATED_STYLES = (("#e6550d", "s"), ("#3182bd", "D"), ("#31a354", "^"), ("#756bb1", "v"), ("#8c6d31", "P"))


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend: plots are written to files, no display is needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def rate_axis(ax: Any) -> None:
    """A rate's y axis: 0..1 in steps of 0.2, a light grid, headroom above 1 for the n labels."""
    ax.set_ylim(-0.03, 1.13)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.grid(True, color="0.9", lw=0.6)


def plot_file_name(model: str) -> str:
    """``destruction_vs_eps_<model>.png``, the model id made safe for a file name (``torchvision:resnet50``
    -> ``torchvision_resnet50``)."""
    return f"destruction_vs_eps_{re.sub(r'[^A-Za-z0-9._-]', '_', model)}.png"


def plot_destruction_vs_eps(figures: Sequence[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    """One PNG per model, ``<out_dir>/destruction_vs_eps_<model>.png``; returns {model: path}.

    Average-case destruction rate against eps: a column per method (the order of
    :data:`physical.attacks.METHODS`), top-1 in the top row and top-5 below; in the third
    row the robust accuracy (top-1 accuracy of the adversarial images,
    :func:`~physical.report.figures.robust_accuracy`), digital beside the sources, with
    each source's clean accuracy as a dashed line. At each eps the sources (photo first,
    then each simulated one) sit side by side, a small offset apart, each a point with
    its Wilson 95% interval as an error bar and n written above it; cells with n = 0
    (nothing to destroy) are left out, not drawn as 0. The legend gives each simulated
    source's sim-to-real gap (:func:`~physical.report.figures.sim_to_real_gap`). Variants
    without eps are left out, named in the title; a model with none with eps gets no plot.
    """
    plt = pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_gaps = sim_to_real_gap(figures)
    robust_all = robust_accuracy(figures)
    paths: dict[str, Path] = {}
    for model in dict.fromkeys(f["model"] for f in figures):
        mine = [typed_row(f) for f in lookup(figures, model=model, table="destruction", case="average")]
        rows = [f for f in mine if f["eps"] is not None]
        left_out = list(dict.fromkeys(METHOD_SHORT.get(c.method, c.method) for c in cells_in_order(mine)
                                      if c.eps is None))
        if not rows:
            continue
        sources = source_order(f["source"] for f in rows)
        # A column per method and setting (the same method at several settings: a column each).
        methods = list(dict.fromkeys(series_of(c.method, c.setting) for c in cells_in_order(rows)))
        eps_levels = sorted({f["eps"] for f in rows})
        drawn = {(f["source"], series_of(f["method"], f["setting"]), f["eps"], f["metric"]): f
                 for f in rows if f["n"]}
        robust = [r for r in robust_all if r["model"] == model]
        drawn.update({(r["source"], series_of(r["method"], r["setting"]), r["eps"], "robust"): r for r in robust
                      if r["eps"] is not None and r["n"]})
        clean = {r["source"]: r for r in robust if r["method"] is None and r["n"]}
        gaps = {g["source"]: g for g in all_gaps if g["model"] == model}
        simulated = [s for s in sources if s != "photo"]
        styles = {DIGITAL: DIGITAL_STYLE, "photo": PHOTO_STYLE,
                  **{s: SIMULATED_STYLES[i % len(SIMULATED_STYLES)] for i, s in enumerate(simulated)}}
        ncol = max(1, len(methods))
        fig, axes = plt.subplots(3, ncol, figsize=(3.6 * ncol + 0.8, 9.8), sharex=True, sharey=True,
                                 squeeze=False, layout="constrained")
        for col, method in enumerate(methods):
            for row_i, metric in enumerate(("top1", "top5", "robust")):
                ax = axes[row_i][col]
                shown = sources if metric != "robust" else [DIGITAL, *sources]
                # One eps's points spread over at most half the distance to the next eps.
                offsets = (np.arange(len(shown)) - (len(shown) - 1) / 2) * min(0.16, 0.5 / max(1, len(shown)))
                for source, dx in zip(shown, offsets):
                    at = [(i + dx, drawn[(source, method, eps, metric)]) for i, eps in enumerate(eps_levels)
                          if (source, method, eps, metric) in drawn]
                    v, lo, hi = (np.array([float(f[key]) for _, f in at]) for key in ("value", "ci_low", "ci_high"))
                    colour, marker = styles[source]
                    ax.errorbar([x for x, _ in at], v, yerr=[v - lo, hi - v], color=colour, marker=marker, ms=5,
                                lw=0, elinewidth=1.3, capsize=3, label=source)
                    for x, f in at:
                        ax.text(x, 1.04, str(f["n"]), rotation=90, ha="center", va="bottom", fontsize=6.5,
                                color=colour)
                    if metric == "robust" and source in clean:
                        ax.axhline(float(clean[source]["value"]), color=colour, lw=0.9, ls="--", alpha=0.7)
                rate_axis(ax)
                ax.set_xticks(range(len(eps_levels)), [str(e) for e in eps_levels])
                ax.set_xlim(-0.6, len(eps_levels) - 0.4)
                if row_i == 0:
                    ax.set_title(METHOD_TITLES.get(method[0], method[0]) + (f"\n{method[1]}" if method[1] else ""),
                                 fontsize=10)
                elif row_i == 2:
                    ax.set_xlabel("eps (0-255 levels)")
                if col == 0:
                    ax.set_ylabel("robust accuracy, top-1" if metric == "robust"
                                  else f"destruction rate, top-{metric[-1]}")
        handles, names = axes[2][0].get_legend_handles_labels()
        texts = [source_label(s) + (f": sim-to-real gap {gap_text(gaps[s])}" if s in gaps else "") for s in names]
        fig.legend(handles, texts, loc="outside lower center", fontsize=8.5, frameon=False, ncols=min(4, len(texts)))
        fig.suptitle(f"Destruction rate and robust accuracy against eps, average case, model {model}\n(error bars: "
                     "95% Wilson interval; number above: n (destruction: the adversarial images that worked "
                     "digitally; n = 0 left out); dashed: clean accuracy)"
                     + (f"\nnot shown, having no eps: {', '.join(left_out)} (see the tables)" if left_out else "")
                     + (f"\nsim-to-real gap: mean |simulated - photo| of the top-1 rates over the cells with "
                        f"n >= {MIN_GAP_N} in both" if gaps else ""), fontsize=10)
        path = out_dir / plot_file_name(model)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths[model] = path
    return paths
