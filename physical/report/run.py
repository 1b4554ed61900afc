"""Stage 3, ``physical report``: captures/ -> the paper's figures.

Every crop in ``captures/`` is classified (with the experiment's model and any
other models named, for black-box transfer), and the paper's tables are
computed for each model:

- accuracy, top-1 and top-5, of the photographed clean and adversarial images
  and of their digital originals, per variant (method and setting: eps, or the
  method's own parameter) (the paper's Table 1-2), beside the mean L2 and L-infinity
  of each variant's printed perturbation;
- the destruction rate (Eq. 1, :mod:`.metrics`) in the *average* case
  (every image) and the *prefiltered* case (:func:`prefiltered`);
- robust accuracy: top-1 accuracy on the clean images and under each variant,
  digital beside photographed and simulated (``robust.csv``), the figure of a
  defended model.

Counting: each photo of a slot is one observation, so a page photographed
twice counts its images twice (the report says so). Digital figures count each
picture once. Every figure carries its k, n and Wilson 95% interval; an empty
denominator is reported as n/a, never as 0.

Figures from other sources (a simulated channel, artificial transforms) are
computed by the same functions with their own "transformed" predictions.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from ..capture.store import read_captures
from ..defenses.spec import DEFENSE_DRAWS
from ..distributed import finish, init, run_sharded, shard, world
from ..errors import PhysicalError
from ..files import write_atomic
from ..models import Classifier, load_model
from ..sheets.manifest import read_manifest
from .figures import (ATTACKED, PREFILTER_CONFIDENCE, Cell, Observation, Top5, check_classes, digital_tables,
                      figure_rows, load_images, predict, setting_of, tables, with_perturbations)
from .metrics import Rate

REPORT_DIR = "report"
Progress = Callable[[str, int, int], None]


def digital_images(model: Classifier, manifest: dict[str, Any],
                   printouts: Path) -> tuple[list[tuple[str, str]], torch.Tensor]:
    """Every digital PNG of the experiment: keys (image id, variant) and (N, 3, H, W) in [0, 1]."""
    keys = [(rec["id"], v["name"]) for rec in manifest["images"] for v in rec["variants"]]
    files = [Path(printouts) / v["file"] for rec in manifest["images"] for v in rec["variants"]]
    return keys, load_images(files, model)


ARTIFICIAL_COLUMNS = ("transform", "strength", *Cell._fields, "metric", "k", "n", "value", "ci_low", "ci_high",
                      "clean_k", "clean_n", "clean_accuracy")


def _artificial_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sweep rows (Rates) -> flat CSV rows: one per (transform, strength, variant, metric)."""
    out = []
    for r in rows:
        for metric in ("top1", "top5"):
            clean: Rate = r[f"clean_{metric}"]
            out.append({"transform": r["transform"], "strength": r["strength"],
                        **{key: r[key] for key in Cell._fields}, "metric": metric, **r[metric].as_dict(),
                        "clean_k": clean.k, "clean_n": clean.n, "clean_accuracy": clean.value})
    return out


class _warnings_to:
    """Route Python warnings raised inside the block to ``warn`` (the CLI's one-line warnings)."""

    def __init__(self, warn: Callable[[str], None] | None) -> None:
        import warnings

        self.warn, self._ctx = warn, warnings.catch_warnings(record=True)

    def __enter__(self) -> None:
        import warnings

        self._caught = self._ctx.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)
        for w in self._caught:
            (self.warn or print)(str(w.message))


FIGURE_COLUMNS = ("model", "source", "case", "table", *Cell._fields, "metric", "variant",
                  "k", "n", "value", "ci_low", "ci_high")
PREDICTION_COLUMNS = ("model", "crop", "photo", "image_id", "variant", "method", "eps", "setting", "true_label",
                      "true_name", "digital_top5", "digital_top5_probs", "photo_top5", "photo_top5_probs")


def _csv_bytes(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return buf.getvalue().encode("utf-8")


@dataclass(frozen=True)
class ReportResult:
    out: Path
    manifest: dict[str, Any]
    figures: list[dict[str, Any]]
    n_crops: int
    n_photos: int
    models: list[str]


def load_models(manifest: dict[str, Any], weights: Path | None = None, others: Sequence[str] = (),
                device: str | None = None, seed: int = 0) -> list[Classifier]:
    """The experiment's own model (checked against the manifest's checksum; behind the experiment's
    defense when it had one), then the others.

    ``others`` are ``--model`` specs for black-box transfer, each optionally ``SPEC+DEFENSE`` (a model
    behind an input-transformation defense, ``demo+bits:4,jpeg:75``) and ``=WEIGHTS_FILE``
    (``torchvision:resnet50=~/resnet50.pth``). Random defenses draw from ``seed``.
    """
    info = manifest["model"]
    primary = load_model(info.get("spec", info["id"]), weights, device)
    if primary.weights_sha256 != info["weights_sha256"]:
        raise PhysicalError(f"the weights of {info['id']} differ from those the experiment was made with "
                            f"(sha256 {info['weights_sha256'][:12]}...); pass the same file with --weights")
    if info.get("defense"):
        primary = _defended(primary, info["defense"]["spec"], seed)
    models = [primary]
    for spec in others:
        name, _, file = spec.partition("=")
        name, _, defense = name.partition("+")
        model = load_model(name, Path(file).expanduser() if file else None, device)
        models.append(_defended(model, defense, seed) if defense else model)
    for m in models:
        check_classes(m, manifest)
    return models


def sum_draws(sets: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Figure records of several draws of a random defense (the same records in the same order) as one:
    each Rate the sum of the draws' counts."""
    out = [dict(r) for r in sets[0]]
    for other in sets[1:]:
        for r, o in zip(out, other):
            r["rate"] = Rate(r["rate"].k + o["rate"].k, r["rate"].n + o["rate"].n)
    return out


def _batches(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def simulated_seed(seed: int, index: int) -> int:
    """The simulated channel's seed for the index-th digital image of the experiment (per image:
    the same draw in any batch or process)."""
    return seed * 1_000_003 + index


@torch.no_grad()
def _simulate(x: torch.Tensor, channel: str | dict[str, Any], seeds: Sequence[int]) -> torch.Tensor:
    from ..channel import simulate

    return simulate(x, channel, seeds)


def _reseed(model: Classifier, random: bool, seed: int, draw: int, source: int, start: int) -> None:
    """Seed a random defense's draws for one batch (by its first image's place): the same batches give the
    same draws however many processes share them."""
    if random:
        model.net.generator.manual_seed(((seed * 1_000_003 + draw) * 7 + source) * 1_000_003 + start)


def _defended(model: Classifier, spec: str, seed: int) -> Classifier:
    from ..defenses import defend, parse_defense

    return defend(model, parse_defense(spec), samples=1, seed=seed)


def make_report(captures: Path = Path("captures"), *, printouts: Path = Path("printouts"),
                out: Path | None = None, weights: Path | None = None, models: Sequence[str] = (),
                simulated: str | Path | None = "typical", simulated_only: bool = False, seed: int = 0,
                artificial: bool = True, batch_size: int = 256, device: str | None = None,
                defense_draws: int = DEFENSE_DRAWS, progress: Progress | None = None,
                warn: Callable[[str], None] | None = None) -> ReportResult:
    """Classify every crop and write the figures, plots and report.html to ``out`` (default ``captures/report``).

    ``simulated``: a preset of the Kornia print-and-photo channel (:mod:`physical.channel`),
    or the path of a profile fitted by ``physical calibrate``, whose figures are computed
    beside the photos' (None: none); with ``simulated_only``
    no photos are needed (figures before anything is printed; default ``out`` is then
    ``printouts/report``). ``artificial``: also sweep the paper's artificial
    transformations (:mod:`physical.report.artificial`) with the experiment's model.
    ``defense_draws``: a model behind a random defense classifies every image this many times
    (seeded draws); its figures sum the draws' counts.
    """
    if defense_draws < 1:
        raise PhysicalError(f"--defense-draws {defense_draws}: must be at least 1")
    progress = progress or (lambda stage, done, total: None)
    manifest = read_manifest(printouts)
    if simulated_only and simulated is None:
        raise PhysicalError("--simulated-only needs a channel: a preset (--simulated mild|typical|harsh) or a "
                            "profile from `physical calibrate` (--simulated FILE.json)")
    channel: str | dict[str, Any] | None = None
    if simulated is not None:
        from ..channel.profile import ProfileError, channel_name, resolve_channel

        try:
            channel = resolve_channel(simulated)
        except ProfileError as exc:
            raise PhysicalError(f"--simulated: {exc}") from None
        simulated_name = channel_name(simulated)
    rows = [] if simulated_only else read_captures(captures, manifest)
    # Printouts made before make-sheets recorded each variant's perturbation: measured on their PNGs.
    manifest = with_perturbations(manifest, printouts)
    default_out = (Path(printouts) if simulated_only else Path(captures)) / REPORT_DIR
    out = Path(out) if out is not None else default_out
    w = world()
    device = init(w, device)
    classifiers = load_models(manifest, weights, models, device, seed)

    figures: list[dict[str, Any]] = []
    predictions: list[dict[str, Any]] = []
    labels = {rec["id"]: rec for rec in manifest["images"]}
    variants = {v["name"]: v for v in manifest["images"][0]["variants"]}
    keys = [(rec["id"], v["name"]) for rec in manifest["images"] for v in rec["variants"]]
    digital_files = [Path(printouts) / v["file"] for rec in manifest["images"] for v in rec["variants"]]
    true = {rec["id"]: int(rec["label"]) for rec in manifest["images"]}
    attacked: list[dict[str, Any]] = []
    if "print" in manifest:
        # Only a sample was printed (--print-count): the digital figures of every picture attacked come from
        # make-sheets' table (source ATTACKED; behind a random defense, its one seeded draw per image), so
        # only the experiment's own model has them.
        from ..sheets.digital import read_digital
        from ..sheets.manifest import image_file

        table = read_digital(Path(printouts) / manifest["print"]["digital"])
        attacked = figure_rows(classifiers[0].model_id, ATTACKED, digital_tables(
            manifest, table["top5"], table["prob"], table["label"], table["variant"].tolist()))
        if manifest["print"]["pngs"] == "all":
            # Every picture attacked has its PNGs: the simulated channel sees them all, not only the printed.
            for pid, label, printed in zip(table["id"].tolist(), table["label"].tolist(), table["printed"].tolist()):
                if not printed:
                    true[pid] = int(label)
                    for name in table["variant"].tolist():
                        keys.append((pid, name))
                        digital_files.append(Path(printouts) / image_file(pid, name))
    crop_files = [Path(captures) / r["crop"] for r in rows]
    # Under torchrun each process classifies whole batches of its own block (the same batches
    # whatever the number of processes); the predictions are gathered and rank 0 counts.
    key_batches = shard(_batches(len(keys), batch_size), w)
    row_batches = shard(_batches(len(rows), batch_size), w)
    for i, model in enumerate(classifiers):
        progress("classify", i, len(classifiers))
        # A random defense is classified over `draws` seeded draws of its randomness, each a full set of
        # predictions; the figures sum their counts (accuracy: the mean over the draws).
        random = bool(getattr(model, "defense", None)) and model.net.random
        draws = defense_draws if random else 1

        def classify() -> list[tuple[list[Top5], list[Top5], list[Top5]]]:
            out = []
            for d in range(draws):
                dig: list[Top5] = []
                pho: list[Top5] = []
                sim: list[Top5] = []
                for r in key_batches:
                    x = load_images(digital_files[r.start:r.stop], model)
                    _reseed(model, random, seed, d, 0, r.start)
                    dig += predict(model, x, batch_size)
                    if channel is not None:
                        y = _simulate(x.to(model.device), channel, [simulated_seed(seed, k) for k in r])
                        _reseed(model, random, seed, d, 2, r.start)
                        sim += predict(model, y, batch_size)
                for r in row_batches:
                    x = load_images(crop_files[r.start:r.stop], model)
                    _reseed(model, random, seed, d, 1, r.start)
                    pho += predict(model, x, batch_size)
                out.append((dig, pho, sim))
            return out

        parts = run_sharded(w, classify)
        per_draw: dict[str, list[list[dict[str, Any]]]] = {}
        for d in range(draws):
            digital_d = dict(zip(keys, [t for part in parts for t in part[d][0]]))
            obs_d = [Observation(r["image_id"], r["variant"], t)
                     for r, t in zip(rows, [t for part in parts for t in part[d][1]])]
            if d == 0:
                digital, obs = digital_d, obs_d       # predictions.csv holds the first draw's
            if rows:
                per_draw.setdefault("photo", []).append(tables(manifest, digital_d, obs_d, true))
            if channel is not None:
                sim = [Observation(k, v, t) for (k, v), t in zip(keys, [t for part in parts for t in part[d][2]])]
                per_draw.setdefault(f"simulated:{simulated_name}", []).append(tables(manifest, digital_d, sim, true))
        for source, sets in per_draw.items():
            figures += figure_rows(model.model_id, source, sum_draws(sets))
        if i == 0:
            figures += attacked
        for r, o in zip(rows, obs):
            rec = labels[o.image_id]
            d = digital[(o.image_id, o.variant)]
            v = variants[o.variant]
            predictions.append({
                "model": model.model_id, "crop": r["crop"], "photo": r["photo"], "image_id": o.image_id,
                "variant": o.variant, "method": v["method"] or "", "eps": v.get("eps"), "setting": setting_of(v),
                "true_label": rec["label"],
                "true_name": rec["label_name"],
                "digital_top5": " ".join(map(str, d.index)), "digital_top5_probs": " ".join(f"{p:.4f}" for p in d.prob),
                "photo_top5": " ".join(map(str, o.top5.index)),
                "photo_top5_probs": " ".join(f"{p:.4f}" for p in o.top5.prob)})
        progress("classify", i + 1, len(classifiers))

    sweep_rows: list[dict[str, Any]] = []
    if artificial:
        from .artificial import sweep

        # Whole (transform, strength) steps are shared out; rank 0 gets the rows of all, in order.
        def sweep_mine() -> list[dict[str, Any]]:
            with _warnings_to(warn if w.writes else (lambda message: None)):
                return sweep(classifiers[0], printouts, batch_size=batch_size, progress=progress,
                             steps_of=lambda steps: shard(steps, w))

        sweep_rows = [r for part in run_sharded(w, sweep_mine) for r in part]

    def write() -> ReportResult | None:
        if not w.writes:
            return None
        n_photos = len({r["photo_sha256"] for r in rows})
        slots = {(r["page"], r["slot"]) for r in rows}
        # Format 2: figures keyed by the variant's name (attack), with its setting and mean l2/linf; eps may be
        # null (methods without eps), so (method, eps) no longer names a cell (onepixel d=1 and d=3 share it).
        meta = {
            "format": "physical-report", "format_version": 2, "experiment_id": manifest["experiment_id"],
            "models": [m.model_id for m in classifiers],
            "defenses": {m.model_id: {**m.defense, "draws": defense_draws if m.net.random else 1}
                         for m in classifiers if getattr(m, "defense", None)},
            "labels_from": manifest["images"][0].get("label_from"),
            "n_crops": len(rows), "n_photos": n_photos, "n_slots_photographed": len(slots),
            "counting": "each photo of a slot is one observation" + (
                f" ({len(rows) - len(slots)} crops are repeat photos of a slot)" if len(rows) > len(slots) else "") + (
                f"; behind a random defense, each of {defense_draws} draws per image counts"
                if any(getattr(m, "defense", None) and m.net.random for m in classifiers) else ""),
            "simulated": None if simulated is None else {
                ("profile" if isinstance(channel, dict) else "preset"): str(simulated), "seed": seed,
                "module": "physical.channel",
                **({"fitted_on": channel["fitted_on"]} if isinstance(channel, dict) else {})},
            "sample": None if "print" not in manifest else (
                f"{len(manifest['images'])} of the {manifest['print']['of']} pictures attacked were printed (seed "
                f"{manifest['print']['seed']}): photographed figures rest on those; the digital column on all "
                f"{manifest['print']['of']} (make-sheets' predictions, source '{ATTACKED}'); simulated figures on "
                + ("all of them" if manifest["print"]["pngs"] == "all" else "the printed ones (make-sheets "
                   "--all-pngs keeps every picture's images)")),
            "prefilter": f"clean top-1 right, adversarial wrong in top-1 and top-5, top prediction confidence >= "
                         f"{PREFILTER_CONFIDENCE} for both",
            "interval": "Wilson score, 95%",
        }
        from .figures import GAP_COLUMNS, ROBUST_COLUMNS, robust_accuracy, sim_to_real_gap, transfer_rows

        gap = sim_to_real_gap(figures)
        robust = robust_accuracy(figures)
        if len(classifiers) > 1 or "sources" in manifest["attack"]:
            figures.extend(transfer_rows(figures, manifest))
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "figures.csv", _csv_bytes(figures, FIGURE_COLUMNS))
        write_atomic(out / "figures.json",
                     (json.dumps({**meta, "sim_to_real_gap": gap, "robust_accuracy": robust, "figures": figures}, indent=1) + "\n").encode("utf-8"))
        write_atomic(out / "predictions.csv", _csv_bytes(predictions, PREDICTION_COLUMNS))
        write_atomic(out / "gap.csv", _csv_bytes(gap, GAP_COLUMNS))
        write_atomic(out / "robust.csv", _csv_bytes(robust, ROBUST_COLUMNS))
        from .plots import plot_destruction_vs_eps

        eps_plots = plot_destruction_vs_eps(figures, out / "plots")
        plots: list[Path] = []
        if artificial:
            from .artificial import plot_sweeps

            write_atomic(out / "artificial.csv", _csv_bytes(_artificial_rows(sweep_rows), ARTIFICIAL_COLUMNS))
            plots = plot_sweeps(sweep_rows, out / "plots")
        from .html import notes_from_meta, write_html

        write_html(out / "report.html", manifest=manifest, figures=figures, predictions=predictions,
                   captures=Path(captures), printouts=Path(printouts), plots=plots, eps_plots=eps_plots,
                   notes=notes_from_meta(meta))
        return ReportResult(out=out, manifest=manifest, figures=figures, n_crops=len(rows), n_photos=n_photos,
                            models=[m.model_id for m in classifiers])

    # Rank 0 counts and writes; every rank returns its result, or its error.
    try:
        return run_sharded(w, write)[0]
    finally:
        finish(w)
