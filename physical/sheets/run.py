"""Stage 1, ``physical make-sheets``: pictures -> attacks -> printouts/.

Writes into the output folder:

- ``images/<image id>_<variant>.png``: the exact 8-bit digital images;
- ``sheets.pdf``: the printable pages (layout.py places, pdf.py draws);
- ``manifest.json``: everything later stages need (manifest.py);
- with ``--print-count N``, ``digital.npz``: the digital predictions of every picture attacked
  (:mod:`.digital`), of which only a seeded sample of N is printed.

Everything is built in a hidden staging folder and moved in at the end,
manifest last, so an interrupted run leaves either the old experiment or
none, never half of one.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..attacks import (CHANNEL_METHODS, EPS_METHODS, PAPER_METHODS, attack_grid,
                       eps_steps, parse_eps_levels)
from ..attacks.spec import MethodSpec
from ..defenses.spec import DEFENSE_SAMPLES
from ..distributed import finish, gather, init, run_sharded, shard, world
from ..errors import PhysicalError
from ..models import Classifier, load_model, quantize_8bit, to_uint8
from ..version import __version__
from .layout import (MARK_DICTIONARY, MARK_MODULES, MARK_QUIET_MM, MIN_PHOTO_PX_PER_PIXEL, PAPER_SIZES_MM,
                     default_image_size_mm, mark_side_mm, max_image_size_mm, page_to_dict, plan_pages)
from .manifest import FORMAT, FORMAT_VERSION, IMAGES_DIR, MANIFEST_NAME, image_file, read_manifest, write_manifest
from .pdf import merge_pdfs, write_sheets_pdf
from .digital import DIGITAL_NAME, PRINT_RULE, DigitalTable, print_sample, read_digital, write_digital
from .pictures import Picture, is_readable, load_pictures, picture_images
from .target_grid import GRID_NAME, grid_cells, write_target_grid
from .variants import (NOISE, AttackSettings, gaussian_like, paper_steps, perturbation, plan_variants, run_attack,
                       setting_text, variant_params, with_sources)

PDF_NAME = "sheets.pdf"
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SheetsResult:
    out: Path
    manifest: dict[str, Any]

    @property
    def n_pages(self) -> int:
        return len(self.manifest["layout"]["pages"])


def top5(probs: torch.Tensor, class_names: Sequence[str]) -> list[list[dict[str, Any]]]:
    """(N, C) probabilities -> per image, the top-5 as [{index, label, prob}]."""
    p, idx = probs.topk(min(5, probs.shape[1]), dim=1)
    return [[{"index": int(i), "label": class_names[int(i)], "prob": round(float(q), 6)}
             for q, i in zip(pr, ix)] for pr, ix in zip(p.tolist(), idx.tolist())]


def _check_output(out: Path, force: bool) -> dict[str, Any] | None:
    """The experiment already in ``out`` (to replace with --force), or None."""
    if out.exists() and not out.is_dir():
        raise PhysicalError(f"--out {out}: exists and is not a folder")
    if not (out / MANIFEST_NAME).exists():
        return None
    try:
        old = read_manifest(out)
    except PhysicalError:
        old = {}
    if not force:
        what = f"experiment {old.get('experiment_id', '?')} made {old.get('created', '?')}" if old else "a manifest"
        raise PhysicalError(f"{out} already holds {what}; pass --force to replace it, "
                            "or --out DIR to keep it")
    return old


def _png_bytes(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def new_experiment_id() -> str:
    """A fresh experiment id (8 hex digits): printed in every code, so that photos of two experiments never mix."""
    return uuid.uuid4().hex[:8]


def make_sheets(
    out: Path = Path("printouts"),
    *,
    model: str | Classifier = "demo",
    weights: Path | None = None,
    images: Path | None = None,
    labels: str | None = None,
    count: int | None = None,
    per_class: int | None = None,
    seed: int = 0,
    methods: Sequence[str] = PAPER_METHODS,
    eps: Sequence[int] = (2, 4, 8, 16),
    paper: str = "a4",
    image_size_mm: float | None = None,
    batch_size: int = 16,
    device: str | None = None,
    force: bool = False,
    channel: str | Path = "typical",
    targets: str | None = None,
    sources: Sequence[str] = (),
    defense: str | None = None,
    defense_samples: int = DEFENSE_SAMPLES,
    non_adaptive: bool = False,
    print_count: int | None = None,
    all_pngs: bool = False,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
    **method_options: Any,
) -> SheetsResult:
    """Attack the pictures and write printable sheets, PNGs and the manifest to ``out``.

    ``eps`` in 0-255 levels (1..64). ``model`` is a spec for
    :func:`physical.models.load_model` or an already loaded Classifier.
    ``image_size_mm=None`` prints at :func:`~physical.sheets.layout.default_image_size_mm` of the
    model's input size, or smaller if the variants of a picture would not fit a page at that size.
    ``methods``: method specs (:mod:`physical.attacks.spec`), ``"pgd"`` or ``"pgd:steps=100:restarts=20"``,
    each one variant per eps for the methods with eps, one per number of pixels for onepixel, else one.
    ``method_options``: make-sheets' flags as keywords (``pgd_steps=100``, ``eot_samples=4``,
    ``onepixel_pixels=(1, 3)``, ``cw_least_likely=True``: :func:`~physical.attacks.spec.method_flags`),
    the defaults of every variant of their method; a spec's options override them.
    ``targets`` (``ll`` or ``all``) sets the target of every targeted method (ll, pgd, cw, cw_l0, cw_linf,
    lbfgs); ``all`` makes a variant per class (``cw_t3``), every picture attacked towards it (its own
    class: the picture itself), and the target grid ``target-grid.pdf``.
    ``sources``: other models (``--model`` specs) whose gradients make the same attacks again, each
    variant named after its source (``bim_e8_from-demo-adv``), plus Gaussian noise of each adversarial
    variant's L2, picture by picture (``noise-bim_e8``): one set of photos then gives a transfer table
    (the report classifies every crop with every ``--model``). Their classes must be the model's.
    ``channel`` (a preset name or a profile file from ``physical calibrate``) is what the EoT
    methods (``eot``, ``eot_ll``) attack through.
    ``defense`` (``--defense SPEC``, :mod:`physical.defenses`) puts input transformations in front of
    the model: every prediction is the defended model's (one seeded draw of its randomness per
    image), and the attacks are adaptive (BPDA, and EoT over ``defense_samples`` draws per
    gradient) unless ``non_adaptive``, which attacks as the defenses' own papers did (the bare model;
    for ``sap``, the pruned network one draw a step) and evaluates the defended one.
    ``print_count``: attack every picture but print a seeded random sample of this many
    (:func:`~physical.sheets.digital.print_sample`); the manifest holds the printed ones, ``digital.npz``
    the digital predictions of all, ``images/`` the PNGs of the printed ones (of all with ``all_pngs``).
    Pictures are read batch by batch, so memory does not grow with their number.
    ``progress(stage, done, total)`` is called as work advances.
    """
    out = Path(out)
    try:
        eps = parse_eps_levels(eps)
    except ValueError as exc:
        raise PhysicalError(f"--eps: {exc}") from None
    from ..attacks.spec import flag_defaults, parse_methods, targets_defaults

    try:
        specs = parse_methods(methods)
    except ValueError as exc:
        raise PhysicalError(f"--methods: {exc}") from None
    methods = list(dict.fromkeys(sp.method for sp in specs))
    try:
        defaults = flag_defaults(method_options)
        for m, opts in targets_defaults(targets, methods).items():
            defaults.setdefault(m, {}).update(opts)
    except ValueError as exc:
        raise PhysicalError(str(exc)) from None
    try:
        plan_variants(specs, eps, defaults)        # spec errors before minutes of loading
    except ValueError as exc:
        raise PhysicalError(f"--methods: {exc}") from None
    if paper not in PAPER_SIZES_MM:
        raise PhysicalError(f"--paper {paper}: choose one of {', '.join(PAPER_SIZES_MM)}")
    eot_channel: str | dict[str, Any] | None = None
    if any(m in CHANNEL_METHODS for m in methods):
        from ..channel.profile import ProfileError, resolve_channel

        try:
            eot_channel = resolve_channel(channel)
        except ProfileError as exc:
            raise PhysicalError(f"--channel: {exc}") from None
    if batch_size < 1:
        raise PhysicalError(f"--batch-size {batch_size}: must be at least 1")
    if print_count is not None and print_count < 1:
        raise PhysicalError(f"--print-count {print_count}: must be at least 1")
    if all_pngs and print_count is None:
        raise PhysicalError("--all-pngs needs --print-count: without it every picture is printed and has its PNGs")
    steps = None
    if defense is not None:
        from ..defenses import parse_defense

        steps = parse_defense(defense)
        if defense_samples < 1:
            raise PhysicalError(f"--defense-samples {defense_samples}: must be at least 1")
    elif non_adaptive:
        raise PhysicalError("--non-adaptive needs --defense: it attacks as the defense's paper did and evaluates the "
                            "defended model (a thermometer-encoded model's own attack is the method lspga, beside "
                            "the adaptive ones in the same experiment)")
    if sources and defense is not None:
        raise PhysicalError("--source with --defense: a transfer experiment attacks bare models; evaluate a "
                            "defended one in the report (--model demo+jpeg:75)")
    old = _check_output(out, force)
    progress = progress or (lambda stage, done, total: None)

    w = world()
    device = init(w, device)
    bare = model if isinstance(model, Classifier) else load_model(model, weights, device)
    # clf classifies (the defended model, one draw per image); attacker is what the attacks differentiate.
    clf, attacker = bare, bare
    if steps is not None:
        from ..defenses import defend, papers_attacker

        clf = defend(bare, steps, samples=1, seed=seed)
        if non_adaptive:
            attacker, papers_attack = papers_attacker(bare, steps, seed=seed + 1)
        else:
            attacker = defend(bare, steps, samples=defense_samples, seed=seed + 1)
    # Read lazily: a picture is decoded when its batch comes (memory flat in the number of pictures);
    # the up-front check that every file can be read is shared out between the processes.
    pictures, labels_source = load_pictures(
        clf, images, labels, count, seed, warn, lazy=True, per_class=per_class,
        readable=lambda paths: [ok for part in run_sharded(w, lambda: is_readable(shard(paths, w))) for ok in part])
    printed = print_sample(len(pictures), print_count, seed)
    keep_png = set(range(len(pictures))) if print_count is None or all_pngs else set(printed)
    experiment_id = gather(w, new_experiment_id())[0]     # rank 0's, on every rank
    settings = AttackSettings(channel=eot_channel if eot_channel is not None else "typical", channel_name=str(channel))
    try:
        variants = plan_variants(specs, eps, defaults, clf.class_names)
    except ValueError as exc:
        raise PhysicalError(f"--methods: {exc}") from None
    if "lspga" in methods:
        from ..attacks.lspga import thermometer_module

        try:
            thermometer_module(attacker)
        except ValueError as exc:
            raise PhysicalError(f"--methods lspga: {exc}; bim or pgd attack others") from None
    source_models: dict[str | None, Classifier] = {None: attacker}
    for spec in dict.fromkeys(sources):
        try:
            other = load_model(spec, None, device)
        except PhysicalError as exc:
            raise PhysicalError(f"--source {spec}: {exc}") from None
        if list(other.class_names) != list(clf.class_names):
            raise PhysicalError(f"--source {spec}: its {len(other.class_names)} classes are not the model's "
                                f"({bare.model_id}); a source must classify the same classes")
        if other.model_id == bare.model_id:
            raise PhysicalError(f"--source {spec}: that is the experiment's own model (--model); name other models")
        source_models[other.model_id] = other
    variants = with_sources(variants, [k for k in source_models if k is not None])

    # Pre-flight the layout before minutes of attacking: a picture that cannot
    # fit a page is an error the user should see at once.
    groups = [(pictures[i].id, [v.name for v in variants]) for i in printed]
    if image_size_mm is None:
        wanted = default_image_size_mm(max(clf.input_size))
        fits = max_image_size_mm(len(variants), paper)
        image_size_mm = min(wanted, fits) if fits > 0 else wanted
        if image_size_mm < wanted:
            warn = warn or (lambda message: None)
            warn(f"images print {image_size_mm:g} mm wide, the most at which the {len(variants)} variants of a "
                 f"picture fit one {paper} page; {wanted:g} mm would give each of the model's "
                 f"{max(clf.input_size)} pixels {MIN_PHOTO_PX_PER_PIXEL:g} photo pixels in a 12 MP photo of the "
                 f"whole page: photograph closer, or print fewer methods or eps")
    labels_map = {v.name: v.label for v in variants}
    try:
        pages = plan_pages(groups, experiment_id, paper=paper, image_size_mm=image_size_mm,
                           variant_labels=labels_map)
    except ValueError as exc:
        raise PhysicalError(str(exc)) from None

    # Under torchrun every process attacks its own block of the pictures and writes their PNGs into
    # the shared staging folder; rank 0 then writes the PDF and the manifest alone.
    staging = out / f".staging-{experiment_id}"
    if w.writes:
        for stale in out.glob(".staging-*") if out.exists() else []:
            shutil.rmtree(stale, ignore_errors=True)
        (staging / IMAGES_DIR).mkdir(parents=True)
    try:
        gather(w)                                       # the staging folder exists for every rank
        # Whole batches are shared out, so that each batch holds the same pictures however many
        # processes there are: at the same --batch-size the images are then byte-identical.
        batches = shard([range(i, min(i + batch_size, len(pictures))) for i in range(0, len(pictures), batch_size)], w)
        total = sum(len(b) for b in batches)

        printed_set = set(printed)

        def attack_mine() -> tuple[list[dict[str, Any]], list[DigitalTable]]:
            records: list[dict[str, Any]] = []
            tables: list[DigitalTable] = []
            progress("attack", 0, total)
            done = 0
            for index in batches:
                recs, table = _attack_batch([pictures[i] for i in index], index, clf, source_models, variants, eps,
                                            settings, seed, labels_source, staging, keep_png)
                records += [r for r, i in zip(recs, index) if i in printed_set]
                tables.append(table)
                done += len(index)
                progress("attack", done, total)
            return records, tables

        parts = run_sharded(w, attack_mine)
        records = [r for part in parts for r in part[0]]
        digital_parts = [t for part in parts for t in part[1]]

        # The pages too are shared out (drawing them is as slow as attacking with the fast methods):
        # each process draws its block into a part, which rank 0 joins.
        my_pages = shard(pages, w)

        def draw() -> str | None:
            if not my_pages:
                return None
            wanted = {(slot.image_id, slot.variant) for page in my_pages for slot in page.slots}
            arrays = {key: _read_png(staging / image_file(*key)) for key in sorted(wanted)}
            title = f"{clf.model_id} · {', '.join(sp.text for sp in specs)}" + (
                f" · ε {','.join(map(str, eps))}" if any(m in EPS_METHODS for m in methods) else "")
            part = PDF_NAME if w.size == 1 else f"part-{w.rank}.pdf"
            write_sheets_pdf(staging / part, my_pages, arrays, experiment_id=experiment_id, title=title,
                             progress=lambda n: progress("pdf", n, len(pages)), n_pages=len(pages))
            return part

        parts_pdf = [p for p in run_sharded(w, draw) if p is not None]

        def write() -> dict[str, Any] | None:
            if not w.writes:
                return None
            if parts_pdf != [PDF_NAME]:
                merge_pdfs([staging / p for p in parts_pdf], staging / PDF_NAME)
                for p in parts_pdf:
                    (staging / p).unlink()
            wanted = grid_cells(records)
            grid_pages = write_target_grid(staging / GRID_NAME, records,
                                           {(r["id"], v["name"]): _read_png(staging / v["file"]) for r in records
                                            for v in r["variants"] if (r["id"], v["name"]) in wanted},
                                           clf.class_names, f"{clf.model_id} · {experiment_id}", paper)
            if print_count is not None:
                write_digital(staging / DIGITAL_NAME, digital_parts, [v.name for v in variants],
                              [p.id for p in pictures], [p.source for p in pictures], clf.class_names, printed)
            eot_bare = MethodSpec("eot").resolve(defaults)   # the eot flags' values; each variant's params hold its own
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "experiment_id": experiment_id,
                "tool": "physical",
                "tool_version": __version__,
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                # spec: what --model said, so later stages can load the same model again.
                "model": {**bare.describe(), "spec": model if isinstance(model, str) else bare.model_id,
                          **({"defense": {**clf.defense, "adaptive": not non_adaptive,
                                          "attack_samples": 1 if non_adaptive else defense_samples,
                                          "attack_seed": None if attacker is bare else seed + 1,
                                          "non_adaptive_attack": papers_attack if non_adaptive else None}}
                             if steps is not None else {})},
                "attack": {
                    "methods": methods, "eps": eps, "alpha": 1,
                    "steps": {str(e): eps_steps(e / 255) for e in eps},
                    "labels": labels_source, "images": str(images) if images is not None else None,
                    "count": count, **({"per_class": per_class} if per_class is not None else {}),
                    "seed": seed, "seeds": SEED_RULE,
                    "specs": [sp.text for sp in specs], "targets": targets,
                    **({"sources": [k for k in source_models if k is not None]} if len(source_models) > 1 else {}),
                    **({"eot": {"channel": str(channel), "samples": eot_bare["samples"], "digital": eot_bare["digital"],
                                "steps": {str(e): paper_steps(e, eot_bare["step_factor"]) for e in eps},
                                "profile_fitted_on": eot_channel["fitted_on"] if isinstance(eot_channel, dict)
                                else None,
                                "jpeg_gradient": "straight through"}} if eot_channel is not None else {}),
                },
                "images": records,
                **({"print": {"count": len(printed), "of": len(pictures), "seed": seed, "rule": PRINT_RULE,
                              "pngs": "all" if all_pngs else "printed", "digital": DIGITAL_NAME}}
                   if print_count is not None else {}),
                "layout": {"paper": paper, "image_size_mm": image_size_mm, "pdf": PDF_NAME,
                           **({"target_grid": GRID_NAME} if grid_pages else {}),
                           "units": "mm, origin top-left of the page, y down",
                           "marks": {"dictionary": MARK_DICTIONARY, "modules": MARK_MODULES,
                                     "side_mm": mark_side_mm(image_size_mm), "quiet_mm": MARK_QUIET_MM},
                           "pages": [page_to_dict(p) for p in pages]},
            }
            _commit(out, staging, old, manifest)
            return manifest

        # Rank 0 writes; every rank returns once the experiment is in place (or fails with its error).
        manifest = run_sharded(w, write)[0]
    finally:
        if w.writes:
            shutil.rmtree(staging, ignore_errors=True)
        finish(w)
    return SheetsResult(out=out, manifest=manifest)


# How make-sheets seeds a randomised attack: per picture (its place in the experiment) and variant,
# so that the same picture gets the same draws whatever batch or process it is attacked in.
SEED_RULE = "seed * 1000003 + picture index * 101 + variant salt"


def picture_seed(seed: int, index: int, salt: int) -> int:
    """The seed of one picture's randomised attack (:data:`SEED_RULE`)."""
    return seed * 1_000_003 + index * 101 + salt


def _attack_batch(batch: list[Picture], index: Sequence[int], clf: Classifier,
                  source_models: dict[str | None, Classifier],
                  variants: list, eps: Sequence[int], settings: AttackSettings, seed: int,
                  labels_source: str, staging: Path,
                  keep_png: set[int] | None = None) -> tuple[list[dict[str, Any]], DigitalTable]:
    """Attack one batch of pictures (``index``: their places in the experiment), write the PNGs of those
    in ``keep_png`` (None: all) into ``staging``; return their manifest records and their digital table."""
    x = picture_images(batch, clf).to(clf.device)
    with torch.no_grad():
        clean_probs = clf(x).softmax(dim=1)
    y = torch.tensor([p.label if p.label is not None else -1 for p in batch], device=clf.device)
    y = torch.where(y < 0, clean_probs.argmax(dim=1), y)  # --labels predicted: the model's own top-1
    y_ll_of: dict[str | None, torch.Tensor] = {}
    for key, attacker in source_models.items():
        # The least-likely class as each attacker sees it.
        if attacker is clf:
            y_ll_of[key] = clean_probs.argmin(dim=1)
        else:
            with torch.no_grad():
                y_ll_of[key] = attacker(x).argmin(dim=1)
    y_ll = y_ll_of[None]
    # A variant's salt: eot's by its eps (its channel draws shared across methods), the others' by position.
    salt = {v: v.eps * 7 + CHANNEL_METHODS.index(v.method) if v.method in CHANNEL_METHODS else 1000 + k
            for k, v in enumerate(variants[1:])}
    batch_images = {variants[0]: x}
    for key, attacker in source_models.items():
        mine = [v for v in variants[1:] if v.source == key and v.method != NOISE]
        # The paper's methods come from attack_grid, one call per step factor (fast's is 1).
        paper = {v: v.opt("step_factor", 1) for v in mine if v.method in PAPER_METHODS and v.target_class is None}
        grids = {f: attack_grid(attacker, x, y, [e / 255 for e in eps],
                                list(dict.fromkeys(v.method for v, g in paper.items() if g == f)), step_factor=f)
                 for f in set(paper.values())}
        for v in mine:
            adv = grids[paper[v]][(v.method, v.eps / 255)] if v in paper else \
                run_attack(v, attacker, x, y, y_ll_of[key], settings, [picture_seed(seed, i, salt[v]) for i in index])
            if v.target_class is not None:
                # The grid's diagonal: a picture "attacked" towards its own class is the picture itself.
                adv = torch.where((y == v.target_class)[:, None, None, None], x, adv)
            batch_images[v] = quantize_8bit(adv)
    by_name = {v.name: v for v in variants}
    for v in variants:
        if v.method == NOISE:
            batch_images[v] = quantize_8bit(gaussian_like(batch_images[by_name[v.like]], x,
                                                          [picture_seed(seed, i, salt[v]) for i in index]))
    batch_images = {v: batch_images[v] for v in variants}          # the manifest's order
    # Predictions of exactly the saved 8-bit images, all variants in one pass.
    stacked = torch.cat(list(batch_images.values()))
    with torch.no_grad():
        probs = clf(stacked).softmax(dim=1).split(len(batch))
    records = []
    tops = [pr.cpu().topk(min(5, pr.shape[1]), dim=1) for pr in probs]     # per variant: (N, 5) each
    norms = torch.zeros(len(batch), len(variants), 3)
    for i, pic in enumerate(batch):
        rec = {"id": pic.id, "source": pic.source, "label": int(y[i]),
               "label_name": clf.class_names[int(y[i])], "label_from": labels_source,
               "least_likely": int(y_ll[i]), "variants": []}
        for j, (v, pr) in enumerate(zip(variants, probs)):
            file = image_file(pic.id, v.name)
            digest = None
            if keep_png is None or index[i] in keep_png:
                data = _png_bytes(to_uint8(batch_images[v][i]))
                (staging / file).write_bytes(data)
                digest = hashlib.sha256(data).hexdigest()
            norm = perturbation(batch_images[v][i], x[i])
            norms[i, j] = torch.tensor([norm["l0"], norm["l2"], norm["linf"]], dtype=torch.float32)
            target = v.target_class if v.target_class is not None else \
                int(y_ll_of[v.source][i]) if v.opt("target") == "ll" else None
            rec["variants"].append({"name": v.name, "method": v.method, "eps": v.eps if v.method else 0,
                                    "setting": setting_text(v), "params": variant_params(v, settings),
                                    **({"target": target} if target is not None else {}),
                                    **({"target_group": v.target_group} if v.target_group else {}),
                                    **({"source": v.source} if v.source else {}),
                                    "perturbation": norm,
                                    "file": file, "top5": top5(pr[i:i + 1].cpu(), clf.class_names)[0],
                                    "sha256": digest})
        records.append(rec)
    table = DigitalTable(index=torch.tensor(list(index)), label=y.cpu(), least_likely=y_ll.cpu(),
                         top5=torch.stack([t.indices for t in tops], dim=1),
                         prob=torch.stack([t.values for t in tops], dim=1).float(), norms=norms)
    return records, table


def _commit(out: Path, staging: Path, old: dict[str, Any] | None, manifest: dict[str, Any]) -> None:
    """Replace the old experiment's files with the staged ones, manifest last."""
    if old is not None:
        (out / MANIFEST_NAME).unlink(missing_ok=True)  # from here on the folder holds no experiment
        images_dir = (out / IMAGES_DIR).resolve()
        for rec in old.get("images", []):
            for v in rec.get("variants", []):
                listed = (out / str(v.get("file", ""))).resolve()
                # A manifest is editable text: delete only our own images, never a path it points elsewhere.
                if listed.parent == images_dir and listed.suffix == ".png":
                    listed.unlink(missing_ok=True)
        if old.get("print", {}).get("pngs") == "all":
            # The unprinted pictures' PNGs, named as make-sheets names them, from the old digital table.
            try:
                table = read_digital(out / DIGITAL_NAME)
                for pid in table["id"]:
                    for name in table["variant"]:
                        listed = (out / image_file(pid, name)).resolve()
                        if listed.parent == images_dir:
                            listed.unlink(missing_ok=True)
            except PhysicalError:
                pass                                    # unreadable: leave what cannot be named
        (out / DIGITAL_NAME).unlink(missing_ok=True)
        (out / PDF_NAME).unlink(missing_ok=True)
        (out / GRID_NAME).unlink(missing_ok=True)
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    for f in sorted((staging / IMAGES_DIR).iterdir()):
        f.replace(out / IMAGES_DIR / f.name)
    (staging / PDF_NAME).replace(out / PDF_NAME)
    if (staging / GRID_NAME).exists():
        (staging / GRID_NAME).replace(out / GRID_NAME)
    if (staging / DIGITAL_NAME).exists():
        (staging / DIGITAL_NAME).replace(out / DIGITAL_NAME)
    write_manifest(out, manifest)


def digital_accuracy(manifest: dict[str, Any], printouts: Path | None = None) -> dict[str, float]:
    """Top-1 accuracy of the saved digital images per variant name: of every picture attacked (from
    ``printouts/digital.npz`` when only a sample was printed), else of the manifest's."""
    if "print" in manifest and printouts is not None:
        t = read_digital(Path(printouts) / manifest["print"]["digital"])
        hits_all = (t["top5"][:, :, 0] == t["label"][:, None]).mean(axis=0)
        return {str(name): float(h) for name, h in zip(t["variant"], hits_all)}
    hits: dict[str, list[int]] = {}
    for rec in manifest["images"]:
        for v in rec["variants"]:
            hits.setdefault(v["name"], []).append(int(v["top5"][0]["index"] == rec["label"]))
    return {k: sum(h) / len(h) for k, h in hits.items()}

