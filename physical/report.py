"""Stage 3, ``physical report``: captures/ -> the paper's figures.

Every crop in ``captures/`` is classified (with the experiment's model and any
other models named, for black-box transfer), and the paper's tables are
computed for each model:

- accuracy, top-1 and top-5, of the photographed clean and adversarial images
  and of their digital originals, per method and eps (the paper's Table 1-2);
- the destruction rate (Eq. 1, :mod:`physical.metrics`) in the *average* case
  (every image) and the *prefiltered* case (:func:`prefiltered`).

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

from .attacks import METHOD_SHORT, method_rank
from .errors import PhysicalError
from .manifest import read_manifest, write_atomic
from .metrics import Rate, accuracy, correct_at, destruction_rate
from .models import Classifier, load_model
from .pictures import open_rgb, preprocess

REPORT_DIR = "report"
PREFILTER_CONFIDENCE = 0.8
TOPK = (1, 5)
Progress = Callable[[str, int, int], None]


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


def prefiltered(clean: Top5, adv: Top5, label: int) -> bool:
    """The paper's prefiltered case: clean right (top-1), adversarial wrong in top-1 and top-5,
    and the top prediction confident (>= 0.8) for both the clean and the adversarial image."""
    return (clean.ok(label, 1) and not adv.ok(label, 5)
            and clean.prob[0] >= PREFILTER_CONFIDENCE and adv.prob[0] >= PREFILTER_CONFIDENCE)


def variant_cells(manifest: dict[str, Any]) -> list[tuple[str, int, str]]:
    """The (method, eps, variant name) of every adversarial variant, in the manifest's order."""
    first = manifest["images"][0]["variants"]
    return [(v["method"], v["eps"], v["name"]) for v in first if v["method"] is not None]


def tables(manifest: dict[str, Any], digital: dict[tuple[str, str], Top5],
           observations: Sequence[Observation]) -> list[dict[str, Any]]:
    """The accuracy and destruction-rate figures of one model and one source of transformed images.

    digital: (image id, variant) -> the model's top-5 on the digital image.
    observations: the transformed copies (each photo of a slot, or each simulated image).
    Returns flat records: {case, table, method, eps, metric, variant, rate (Rate)}.
    """
    labels = {rec["id"]: int(rec["label"]) for rec in manifest["images"]}
    by_variant: dict[str, list[Observation]] = {}
    for o in observations:
        by_variant.setdefault(o.variant, []).append(o)
    clean_obs = by_variant.get("clean", [])
    records: list[dict[str, Any]] = []

    def add(case: str, table: str, method: str, eps: int, metric: str, variant: str, rate: Rate) -> None:
        records.append({"case": case, "table": table, "method": method, "eps": eps, "metric": metric,
                        "variant": variant, "rate": rate})

    for method, eps, name in variant_cells(manifest):
        adv_obs = by_variant.get(name, [])
        seen = sorted({o.image_id for o in adv_obs} | {o.image_id for o in clean_obs})
        keep = {i for i in seen if prefiltered(digital[(i, "clean")], digital[(i, name)], labels[i])}
        for case, chosen in (("average", set(seen)), ("prefiltered", keep)):
            adv_c = [o for o in adv_obs if o.image_id in chosen]
            clean_c = [o for o in clean_obs if o.image_id in chosen]
            for k in TOPK:
                metric = f"top{k}"
                add(case, "accuracy", method, eps, metric, "transformed_clean",
                    accuracy(o.top5.ok(labels[o.image_id], k) for o in clean_c))
                add(case, "accuracy", method, eps, metric, "transformed_adv",
                    accuracy(o.top5.ok(labels[o.image_id], k) for o in adv_c))
                add(case, "accuracy", method, eps, metric, "digital_clean",
                    accuracy(digital[(i, "clean")].ok(labels[i], k) for i in sorted(chosen)))
                add(case, "accuracy", method, eps, metric, "digital_adv",
                    accuracy(digital[(i, name)].ok(labels[i], k) for i in sorted(chosen)))
                add(case, "destruction", method, eps, metric, "adv", destruction_rate(
                    [digital[(o.image_id, "clean")].ok(labels[o.image_id], k) for o in adv_c],
                    [digital[(o.image_id, name)].ok(labels[o.image_id], k) for o in adv_c],
                    [o.top5.ok(labels[o.image_id], k) for o in adv_c]))
    return records


def read_captures(captures: Path, manifest: dict[str, Any]) -> list[dict[str, str]]:
    """The index rows of ``captures/``, checked against the experiment; one-line errors."""
    index = Path(captures) / "index.csv"
    state = Path(captures) / "ingest.json"
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


def check_classes(model: Classifier, manifest: dict[str, Any]) -> None:
    names = manifest["model"]["class_names"]
    if list(model.class_names) != list(names):
        raise PhysicalError(f"model {model.model_id} has {len(model.class_names)} classes that do not match the "
                            f"experiment's {len(names)} ({manifest['model']['id']}); choose a model trained on the "
                            "same classes")


def digital_images(model: Classifier, manifest: dict[str, Any],
                   printouts: Path) -> tuple[list[tuple[str, str]], torch.Tensor]:
    """Every digital PNG of the experiment: keys (image id, variant) and (N, 3, H, W) in [0, 1]."""
    keys = [(rec["id"], v["name"]) for rec in manifest["images"] for v in rec["variants"]]
    files = [Path(printouts) / v["file"] for rec in manifest["images"] for v in rec["variants"]]
    return keys, load_images(files, model)


def simulated_observations(model: Classifier, keys: Sequence[tuple[str, str]], x: torch.Tensor,
                           preset: str, seed: int = 0, batch_size: int = 256) -> list[Observation]:
    """Each digital image once through the Kornia print-and-photo channel (:mod:`physical.channel`)."""
    from .channel import simulate

    with torch.no_grad():
        y = torch.cat([simulate(x[i:i + batch_size].to(model.device), preset, seed + i)
                       for i in range(0, len(x), batch_size)])
    return [Observation(i, v, p) for (i, v), p in zip(keys, predict(model, y, batch_size))]


def photo_observations(model: Classifier, captures: Path, rows: Sequence[dict[str, str]],
                       batch_size: int = 256) -> list[Observation]:
    files = [Path(captures) / r["crop"] for r in rows]
    preds = predict(model, load_images(files, model), batch_size)
    return [Observation(r["image_id"], r["variant"], p) for r, p in zip(rows, preds)]


def figure_rows(model_id: str, source: str, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat, JSON/CSV-ready figure rows (the columns documented in the README)."""
    out = []
    for r in records:
        rate: Rate = r["rate"]
        out.append({"model": model_id, "source": source, "case": r["case"], "table": r["table"],
                    "method": r["method"], "eps": r["eps"], "metric": r["metric"], "variant": r["variant"],
                    **rate.as_dict()})
    return out


ARTIFICIAL_COLUMNS = ("transform", "strength", "method", "eps", "metric", "k", "n", "value", "ci_low", "ci_high",
                      "clean_k", "clean_n", "clean_accuracy")


def _artificial_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sweep rows (Rates) -> flat CSV rows: one per (transform, strength, method, eps, metric)."""
    out = []
    for r in rows:
        for metric in ("top1", "top5"):
            clean: Rate = r[f"clean_{metric}"]
            out.append({"transform": r["transform"], "strength": r["strength"], "method": r["method"],
                        "eps": r["eps"], "metric": metric, **r[metric].as_dict(),
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


FIGURE_COLUMNS = ("model", "source", "case", "table", "method", "eps", "metric", "variant",
                  "k", "n", "value", "ci_low", "ci_high")
PREDICTION_COLUMNS = ("model", "crop", "photo", "image_id", "variant", "method", "eps", "true_label",
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
                device: str | None = None) -> list[Classifier]:
    """The experiment's own model (checked against the manifest's checksum), then the others.

    ``others`` are ``--model`` specs for black-box transfer, each optionally
    ``SPEC=WEIGHTS_FILE`` (e.g. ``torchvision:resnet50=~/resnet50.pth``).
    """
    info = manifest["model"]
    primary = load_model(info.get("spec", info["id"]), weights, device)
    if primary.weights_sha256 != info["weights_sha256"]:
        raise PhysicalError(f"the weights of {info['id']} differ from those the experiment was made with "
                            f"(sha256 {info['weights_sha256'][:12]}...); pass the same file with --weights")
    models = [primary]
    for spec in others:
        name, _, file = spec.partition("=")
        models.append(load_model(name, Path(file).expanduser() if file else None, device))
    for m in models:
        check_classes(m, manifest)
    return models


def make_report(captures: Path = Path("captures"), *, printouts: Path = Path("printouts"),
                out: Path | None = None, weights: Path | None = None, models: Sequence[str] = (),
                simulated: str | None = "typical", simulated_only: bool = False, seed: int = 0,
                artificial: bool = True, batch_size: int = 256, device: str | None = None,
                progress: Progress | None = None, warn: Callable[[str], None] | None = None) -> ReportResult:
    """Classify every crop and write the figures, plots and report.html to ``out`` (default ``captures/report``).

    ``simulated``: a preset of the Kornia print-and-photo channel (:mod:`physical.channel`)
    whose figures are computed beside the photos' (None: none); with ``simulated_only``
    no photos are needed (figures before anything is printed; default ``out`` is then
    ``printouts/report``). ``artificial``: also sweep the paper's artificial
    transformations (:mod:`physical.transforms`) with the experiment's model.
    """
    progress = progress or (lambda stage, done, total: None)
    manifest = read_manifest(printouts)
    if simulated_only and simulated is None:
        raise PhysicalError("--simulated-only needs a channel preset (--simulated mild|typical|harsh)")
    if simulated is not None:
        from .channel import PRESETS

        if simulated not in PRESETS:
            raise PhysicalError(f"--simulated {simulated}: choose one of {', '.join(PRESETS)}")
    rows = [] if simulated_only else read_captures(captures, manifest)
    default_out = (Path(printouts) if simulated_only else Path(captures)) / REPORT_DIR
    out = Path(out) if out is not None else default_out
    classifiers = load_models(manifest, weights, models, device)

    figures: list[dict[str, Any]] = []
    predictions: list[dict[str, Any]] = []
    labels = {rec["id"]: rec for rec in manifest["images"]}
    methods = {v["name"]: (v["method"], v["eps"]) for rec in manifest["images"] for v in rec["variants"]}
    for i, model in enumerate(classifiers):
        progress("classify", i, len(classifiers))
        keys, x_digital = digital_images(model, manifest, printouts)
        digital = dict(zip(keys, predict(model, x_digital, batch_size)))
        obs = photo_observations(model, captures, rows, batch_size) if rows else []
        if rows:
            figures += figure_rows(model.model_id, "photo", tables(manifest, digital, obs))
        if simulated is not None:
            sim = simulated_observations(model, keys, x_digital, simulated, seed, batch_size)
            figures += figure_rows(model.model_id, f"simulated:{simulated}", tables(manifest, digital, sim))
        for r, o in zip(rows, obs):
            rec = labels[o.image_id]
            d = digital[(o.image_id, o.variant)]
            method, eps = methods[o.variant]
            predictions.append({
                "model": model.model_id, "crop": r["crop"], "photo": r["photo"], "image_id": o.image_id,
                "variant": o.variant, "method": method or "", "eps": eps, "true_label": rec["label"],
                "true_name": rec["label_name"],
                "digital_top5": " ".join(map(str, d.index)), "digital_top5_probs": " ".join(f"{p:.4f}" for p in d.prob),
                "photo_top5": " ".join(map(str, o.top5.index)),
                "photo_top5_probs": " ".join(f"{p:.4f}" for p in o.top5.prob)})
        progress("classify", i + 1, len(classifiers))

    n_photos = len({r["photo_sha256"] for r in rows})
    slots = {(r["page"], r["slot"]) for r in rows}
    meta = {
        "format": "physical-report", "format_version": 1, "experiment_id": manifest["experiment_id"],
        "models": [m.model_id for m in classifiers], "labels_from": manifest["images"][0].get("label_from"),
        "n_crops": len(rows), "n_photos": n_photos, "n_slots_photographed": len(slots),
        "counting": "each photo of a slot is one observation" + (
            f" ({len(rows) - len(slots)} crops are repeat photos of a slot)" if len(rows) > len(slots) else ""),
        "simulated": None if simulated is None else {"preset": simulated, "seed": seed, "module": "physical.channel"},
        "prefilter": f"clean top-1 right, adversarial wrong in top-1 and top-5, top prediction confidence >= "
                     f"{PREFILTER_CONFIDENCE} for both",
        "interval": "Wilson score, 95%",
    }
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "figures.csv", _csv_bytes(figures, FIGURE_COLUMNS))
    write_atomic(out / "figures.json",
                 (json.dumps({**meta, "figures": figures}, indent=1) + "\n").encode("utf-8"))
    write_atomic(out / "predictions.csv", _csv_bytes(predictions, PREDICTION_COLUMNS))
    plots: list[Path] = []
    if artificial:
        from .transforms import plot_sweeps, sweep

        with _warnings_to(warn):
            sweep_rows = sweep(classifiers[0], printouts, batch_size=batch_size, progress=progress)
        write_atomic(out / "artificial.csv", _csv_bytes(_artificial_rows(sweep_rows), ARTIFICIAL_COLUMNS))
        plots = plot_sweeps(sweep_rows, out / "plots")
    from .report_html import notes_from_meta, write_html

    write_html(out / "report.html", manifest=manifest, figures=figures, predictions=predictions,
               captures=Path(captures), printouts=Path(printouts), plots=plots, notes=notes_from_meta(meta))
    return ReportResult(out=out, manifest=manifest, figures=figures, n_crops=len(rows), n_photos=n_photos,
                        models=[m.model_id for m in classifiers])


def lookup(figures: Sequence[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    """Figure rows whose fields equal ``match``."""
    return [f for f in figures if all(f.get(k) == v for k, v in match.items())]


def rate_of(row: dict[str, Any]) -> Rate:
    return Rate(int(row["k"]), int(row["n"]))


def cells_in_order(figures: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    seen: dict[tuple[str, int], None] = {}
    for f in figures:
        seen.setdefault((f["method"], f["eps"]), None)
    # The paper's method order; eps from large to small within a method.
    return sorted(seen, key=lambda c: (method_rank(c[0]), -c[1]))




METHOD_NAMES = METHOD_SHORT


def _pct(rate: Rate) -> str:
    return "n/a" if rate.value is None else f"{100 * rate.value:.0f}"


def _rate_cell(rate: Rate) -> str:
    """Two lines that fit a narrow column: ``"25%  n=8"`` over ``"[7, 59]"``."""
    if not rate.n:
        return rate.format(0)     # the one spelling of an empty denominator
    lo, hi = rate.interval
    return f"{100 * rate.value:.0f}%  n={rate.n}\n[{100 * lo:.0f}, {100 * hi:.0f}]"


def render_tables(figures: Sequence[dict[str, Any]], source: str = "photo", model: str | None = None) -> list[Any]:
    """rich Tables in the paper's layout for one model and one source of transformed images."""
    from rich.table import Table

    model = model or figures[0]["model"]
    fig = [f for f in figures if f["model"] == model and f["source"] == source]
    what = "photos" if source == "photo" else source
    out = []
    acc = Table(title=f"Accuracy % top-1 / top-5, average case ({what}; {model})", title_justify="left")
    acc.add_column("method, eps")
    for col in ("clean, transformed", "adv., transformed", "clean, digital", "adv., digital"):
        acc.add_column(col.replace("transformed", "photo" if source == "photo" else "simulated"), justify="right")
    dr = Table(title=f"Destruction rate with 95% interval ({what}; {model})", title_justify="left")
    dr.add_column("method, eps")
    for col in ("average, top-1", "average, top-5", "prefiltered, top-1", "prefiltered, top-5"):
        dr.add_column(col, justify="right")
    for method, eps in cells_in_order(fig):
        cell = [f for f in fig if f["method"] == method and f["eps"] == eps]

        def pair(case: str, table: str, variant: str) -> str:
            r1, r5 = (rate_of(lookup(cell, case=case, table=table, variant=variant, metric=m)[0])
                      for m in ("top1", "top5"))
            return f"{_pct(r1)} / {_pct(r5)}  n={r1.n}"

        label = f"{METHOD_NAMES.get(method, method)} ε={eps}"
        acc.add_row(label, *(pair("average", "accuracy", v) for v in
                             ("transformed_clean", "transformed_adv", "digital_clean", "digital_adv")))
        dr.add_row(label, *(_rate_cell(rate_of(lookup(cell, case=c, table="destruction", metric=m)[0]))
                            for c in ("average", "prefiltered") for m in ("top1", "top5")))
    out += [acc, dr]
    return out
