"""The ``physical`` command line: one sub-command per stage."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .version import __version__
from .distributed import RankFailed, World, world
from .attacks.spec import methods_help
from .errors import PhysicalError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Measure whether adversarial examples survive printing and a phone camera.")
# markup off: paths and file names ("photo[1].jpg") print as they are; the few styled lines
# turn it on and escape what they interpolate.
err = Console(stderr=True, highlight=False, markup=False)
out = Console(highlight=False, markup=False)


def _warn(message: str) -> None:
    # escape: a file name such as "photo[1].jpg" is text, not markup.
    err.print(f"[yellow]warning:[/] {escape(str(message))}", markup=True, soft_wrap=True)


def _fail(message: str | PhysicalError, code: int = 2) -> None:
    # Under torchrun every rank learns another's failure; rank 0 alone says it, once.
    if isinstance(message, RankFailed) and _world().rank > 0:
        raise typer.Exit(code)
    prefix = f"rank {_world().rank}: " if _world().size > 1 and not isinstance(message, RankFailed) else ""
    err.print(f"[red]error:[/] {escape(prefix + str(message))}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _world() -> World:
    try:
        return world()
    except PhysicalError:
        return World()


def _version(value: bool) -> None:
    if value:
        out.print(f"physical {__version__}", soft_wrap=True)
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    pass


def _progress() -> Progress:
    return Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=False,
                    disable=not err.is_terminal or _world().rank > 0)


def page_ranges(pages: Sequence[int]) -> str:
    """'1-3, 5, 7-8' for pages 1, 2, 3, 5, 7, 8: a short line even for hundreds of pages."""
    runs: list[list[int]] = []
    for page in sorted(set(pages)):
        if runs and page == runs[-1][1] + 1:
            runs[-1][1] = page
        else:
            runs.append([page, page])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _stage_progress(bar: Progress, names: dict[str, str] | None = None) -> Callable[[str, int, int], None]:
    """A ``progress(stage, done, total)`` callback that shows one bar per stage."""
    tasks: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task((names or {}).get(stage, stage), total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return progress


def _with_attack_flags(func: Callable[..., None]) -> Callable[..., None]:
    """``func`` with make-sheets' per-method flags (``--pgd-steps`` ...) added, built from the attack
    modules' option declarations (:func:`physical.attacks.spec.method_flags`); their values reach
    ``func`` as one dict, ``method_options`` (None: not given)."""
    import functools
    import inspect
    import typing

    from .attacks.spec import SWITCHES, method_flags

    hints = typing.get_type_hints(func)
    own = [p.replace(annotation=hints[p.name]) for p in inspect.signature(func).parameters.values()
           if p.name != "method_options"]
    extra = []
    for f in method_flags():
        kind = str if f.option.axis or f.option.kind is str else f.option.kind
        extra.append(inspect.Parameter(f.keyword, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[kind],
                                       default=typer.Option(None, f.cli, help=f.help, show_default=False)))
    for keyword, (_, _, _, text) in SWITCHES.items():
        extra.append(inspect.Parameter(keyword, inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                       default=typer.Option(False, "--" + keyword.replace("_", "-"), help=text)))
    names = {p.name for p in extra}

    @functools.wraps(func)
    def wrapper(**kwargs: typing.Any) -> None:
        flags = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        return func(**kwargs, method_options=flags)

    wrapper.__signature__ = inspect.Signature([*own, *extra], return_annotation=None)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**{p.name: p.annotation for p in [*own, *extra]}, "return": None}
    del wrapper.__wrapped__      # typer reads the signature above, not func's
    return wrapper


@app.command("make-sheets")
@_with_attack_flags
def make_sheets_cmd(
    model: str = typer.Option("demo", help="demo, demo-adv (adversarially trained), demo-distilled (defensive "
                                           "distillation), demo-vgg (another architecture), torchvision:<name> "
                                           "(e.g. torchvision:inception_v3), "
                                           "robustbench:<name> (a RobustBench zoo entry, from a local folder), "
                                           "or a TorchScript file."),
    weights: Optional[Path] = typer.Option(None, help="Weights file for a torchvision or robustbench model "
                                                      "(default: the torch hub cache)."),
    images: Optional[Path] = typer.Option(None, help="Folder of pictures (default: the bundled "
                                                     "CIFAR-10 samples)."),
    labels: Optional[str] = typer.Option(None, help="CSV with columns file,label, or 'predicted' "
                                                    "(default: ImageFolder sub-folder names)."),
    count: Optional[int] = typer.Option(None, help="Use a random subset of N pictures."),
    per_class: Optional[int] = typer.Option(None, "--per-class",
                                            help="Keep the first N pictures of each class (file order), before "
                                                 "--count: e.g. 1 for a target grid."),
    seed: int = typer.Option(0, help="Seed for --count."),
    methods: str = typer.Option("fast,bim,ll", help=methods_help()),
    eps: str = typer.Option("2,4,8,16", help="Perturbation sizes in 0-255 levels, each in 1..64."),
    paper: str = typer.Option("a4", help="a4 or letter."),
    image_size_mm: Optional[float] = typer.Option(
        None, help="Printed width of each image in millimetres (default: from the model's input size: 25 for "
                   "32 px, 45 for 299 px; smaller if a picture's variants would not fit a page)."),
    out_dir: Path = typer.Option(Path("printouts"), "--out", help="Output folder."),
    force: bool = typer.Option(False, "--force", help="Replace an experiment already in --out."),
    batch_size: int = typer.Option(16, help="Pictures attacked at once."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cuda when available)."),
    channel: str = typer.Option("typical", help="What eot and eot_ll attack through: a channel preset (mild, "
                                                "typical, harsh) or a profile from `physical calibrate` (FILE.json)."),
    sources: Optional[list[str]] = typer.Option(None, "--source",
                                                help="Another model whose gradients make the same attacks again "
                                                     "(repeatable; --model specs), plus Gaussian noise of each "
                                                     "attack's size: a transfer table from one set of photos "
                                                     "(classify with `physical report --model`)."),
    targets: Optional[str] = typer.Option(None, "--targets",
                                          help="ll or all: the target of every targeted method (ll, pgd, cw, cw_l0, cw_linf, "
                                               "lbfgs); all attacks each picture towards every class, a "
                                               "variant per class, and draws the target grid (target-grid.pdf)."),
    defense: Optional[str] = typer.Option(None, "--defense",
                                          help="Defense around the model, steps comma-separated: input transformations "
                                               "in order, jpeg:Q, bits:B, median:K, randomize, tvm:P, and sap:P "
                                               "(stochastic activation pruning inside the network); e.g. "
                                               "bits:4,jpeg:75,randomize. "
                                               "Attacks are adaptive: BPDA and EoT over its randomness."),
    defense_samples: int = typer.Option(8, "--defense-samples",
                                        help="EoT: draws of a random defense per gradient of an adaptive attack."),
    non_adaptive: bool = typer.Option(False, "--non-adaptive",
                                      help="Attack the bare model and evaluate the defended one (what the "
                                           "defenses' papers reported)."),
    print_count: Optional[int] = typer.Option(None, "--print-count",
                                              help="Attack every picture, print a seeded random N of them "
                                                   "(digital figures on all; their predictions in digital.npz)."),
    all_pngs: bool = typer.Option(False, "--all-pngs",
                                  help="With --print-count: PNGs of every picture, not only the printed ones "
                                       "(the report's simulated figures then cover all)."),
    method_options: Optional[dict] = None,
) -> None:
    """Attack pictures and lay clean and adversarial versions on printable PDF sheets."""
    method_options = method_options or {}
    from .sheets.run import digital_accuracy, make_sheets

    names = {"attack": "attacking", "pdf": "pdf pages"}
    try:
        with _progress() as bar:
            progress = _stage_progress(bar, names)
            result = make_sheets(out_dir, model=model, weights=weights, images=images, labels=labels,
                                 count=count, per_class=per_class, seed=seed, methods=methods,
                                 eps=eps, paper=paper, image_size_mm=image_size_mm, batch_size=batch_size,
                                 device=device, force=force, channel=channel, targets=targets,
                                 sources=sources or (), defense=defense, defense_samples=defense_samples, non_adaptive=non_adaptive,
                                 print_count=print_count, all_pngs=all_pngs, progress=progress, warn=_warn,
                                 **method_options)
    except PhysicalError as exc:
        _fail(exc)
    m = result.manifest
    acc = digital_accuracy(m, result.out)
    n_img = len(m["images"])
    if "print" in m:
        out.print(f"attacked {m['print']['of']} pictures; printing a random {n_img} of them "
                  f"(seed {m['print']['seed']}); digital predictions of all in {result.out / m['print']['digital']}",
                  soft_wrap=True)
    out.print(f"experiment [bold]{m['experiment_id']}[/]: {n_img} pictures x "
              f"{len(m['images'][0]['variants'])} variants on {result.n_pages} pages "
              f"({m['layout']['paper'].upper()}, {m['layout']['image_size_mm']:g} mm images), "
              f"model {escape(m['model']['id'])}", markup=True, soft_wrap=True)
    worst = ", ".join(f"{k} {100 * v:.0f}%" for k, v in acc.items())
    if "defense" in m["model"]:
        d = m["model"]["defense"]
        out.print(f"defense {d['spec']} (seed {d['seed']}): attacks " + (
            f"non-adaptive, on {d.get('non_adaptive_attack') or 'the bare model'}" if not d["adaptive"] else
            f"adaptive (BPDA, EoT over {d['attack_samples']} draws)"), soft_wrap=True)
    out.print(f"digital top-1 accuracy{' (all ' + str(m['print']['of']) + ' pictures)' if 'print' in m else ''}: "
              f"{worst}", soft_wrap=True)
    out.print(f"wrote {result.out / 'sheets.pdf'}, {result.out / 'images'}/, {result.out / 'manifest.json'}",
              soft_wrap=True)
    out.print("next: print sheets.pdf at 100% (actual size), photograph each page with all four QR "
              "codes in view, then run `physical ingest PHOTOS_DIR`", soft_wrap=True)


@app.command("simulate-photos")
def simulate_photos_cmd(
    printouts: Path = typer.Option(Path("printouts"), help="Folder written by `physical make-sheets`."),
    out_dir: Path = typer.Option(Path("photos"), "--out", help="Folder for the photos and ground-truth.json."),
    per_page: int = typer.Option(1, help="Photos per page."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same photos."),
    difficulty: str = typer.Option("normal", help="easy (straight, flat, even light), normal (a careful "
                                                  "user's photos: mild curl and lens distortion), hard (tilt, "
                                                  "curl, shadow, blur, EXIF-rotated, sometimes a finger or pen "
                                                  "over a code, small codes or a cut corner) or extreme (all of "
                                                  "that, stronger and at once)."),
    phone: str = typer.Option("plain", help="plain (a global tone, mild white-balance error) or hdr (a current "
                                             "phone at home: HDR local tone mapping, auto white balance under "
                                             "tungsten, daylight or mixed light, recycled or bright-white paper, "
                                             "a wide-angle lens)."),
) -> None:
    """Make synthetic phone photos of the printed sheets, with exact ground truth (no printer needed)."""
    from .capture.camera import GROUND_TRUTH_NAME, simulate_photos

    try:
        with _progress() as bar:
            task = bar.add_task("photos", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            paths = simulate_photos(printouts, out_dir, per_page=per_page, seed=seed, difficulty=difficulty,
                                    phone=phone, progress=progress)
    except PhysicalError as exc:
        _fail(exc)
    pages = len({p.name.rsplit("_", 1)[0] for p in paths})
    out.print(f"wrote {len(paths)} simulated phone photos ({difficulty}, {phone} phone, seed {seed}: "
              f"{per_page} per page of {pages} pages) to {out_dir}/, with their exact page-to-photo geometry in "
              f"{out_dir / GROUND_TRUTH_NAME}; next: run `physical ingest {out_dir}/`", soft_wrap=True)


@app.command("ingest")
def ingest_cmd(
    photos: Path = typer.Argument(..., metavar="PHOTOS_DIR",
                                  help="Folder of phone photos of the printed sheets (searched recursively; "
                                       "JPEG, PNG, WebP, TIFF, BMP, HEIC)."),
    printouts: Path = typer.Option(Path("printouts"), "--printouts", help="Folder written by make-sheets."),
    out_dir: Path = typer.Option(Path("captures"), "--out", help="Output folder: crops, index.csv, overlays."),
    strict: bool = typer.Option(False, "--strict", help="Exit non-zero if any photo is skipped."),
) -> None:
    """Find the printed sheets in phone photos and cut out every image, registered to its digital original."""
    from .capture.run import ingest
    from .photo_io import PHOTO_SUFFIXES

    try:
        with _progress() as bar:
            progress = _stage_progress(bar)
            result = ingest(photos, printouts=printouts, out=out_dir, strict=strict, progress=progress, warn=_warn)
    except PhysicalError as exc:
        _fail(exc)
    r = result
    n = len(r.outcomes)
    if n == 0:
        err.print(f"[red]error:[/] no photos in {escape(str(photos))} (looked for {', '.join(sorted(PHOTO_SUFFIXES))})"
                  + (f"; {r.not_images} other files ignored" if r.not_images else ""), markup=True, soft_wrap=True)
        raise typer.Exit(1)
    parts = [f"{len(r.ingested)} ingested ({r.crops_new} crops)", f"{len(r.skipped)} skipped"]
    if r.already:
        parts.append(f"{len(r.already)} already ingested")
    if r.not_images:
        parts.append(f"{r.not_images} other file{'s' if r.not_images > 1 else ''} ignored")
    out.print(f"experiment [bold]{r.experiment_id}[/]: {n} photos: {escape(', '.join(parts))}", markup=True,
              soft_wrap=True)
    for o in r.skipped:
        see = f" (see {r.out / o.overlay})" if o.overlay else ""
        out.print(f"  skipped {o.photo}: {o.reason}{see}", markup=False, soft_wrap=True)
    for o in r.already:
        if o.reason != "already ingested":
            out.print(f"  {o.photo}: {o.reason}", markup=False, soft_wrap=True)
    if r.dropped:
        out.print(f"{len(r.dropped)} images dropped, not verified (in {r.out / 'ingest.json'} with their reason, "
                  f"crossed out in the overlays):", soft_wrap=True)
        for reason, count in r.dropped_reasons():
            out.print(f"  {count} {'image' if count == 1 else 'images'}: {reason}", markup=False, soft_wrap=True)
    out.print(f"pages photographed: {page_ranges(r.pages_seen) or 'none'} (of {r.n_pages})", soft_wrap=True)
    if r.pages_missing:
        out.print(f"pages never photographed: {page_ranges(r.pages_missing)}", soft_wrap=True)
    if r.crops_total:
        out.print(f"wrote {r.out / 'index.csv'} ({r.crops_total} crops in all), {r.out / 'crops'}/, "
                  f"{r.out / 'overlays'}/", soft_wrap=True)
    if r.exit_code:
        why = "no photo could be ingested" if not r.ingested and not r.already and not r.photos_before else \
            f"--strict: {len(r.skipped)} photo(s) skipped"
        err.print(f"[red]error:[/] {escape(str(why))}", markup=True, soft_wrap=True)
    raise typer.Exit(r.exit_code)


@app.command("calibrate")
def calibrate_cmd(
    captures: Path = typer.Option(Path("captures"), "--captures", help="Folder written by `physical ingest`."),
    printouts: Path = typer.Option(Path("printouts"), "--printouts", help="Folder written by make-sheets."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Profile to write "
                                                                "(default: CAPTURES/channel-profile.json)."),
    steps: int = typer.Option(3000, help="Most gradient steps of the fit. It stops as soon as it has "
                                              "converged, in a few hundred steps on every camera tried; "
                                              "the default is a ceiling none came near."),
    exclude: list[str] = typer.Option([], "--exclude", help="Leave out this photo (its file name, as "
                                                            "captures/index.csv names it); repeatable."),
    local_tone: bool = typer.Option(True, "--local-tone/--no-local-tone",
                                    help="Fit a tone curve per crop (a phone's local tone mapping); "
                                         "--no-local-tone holds it at none (the ablation in docs/findings.md)."),
) -> None:
    """Fit the simulated channel to your printer and phone, from the clean images already ingested."""
    from .calibrate.run import calibrate, summarise
    from .channel.fit import CONVERGE_RTOL, MIN_STEPS

    if steps < 10:
        _fail(f"--steps {steps}: use at least 10")
    try:
        with _progress() as bar:
            task = bar.add_task("fit", total=None)

            def status(done: int, loss: float, drop: float) -> None:
                trend = ("still falling" if drop > CONVERGE_RTOL else "settled" if done >= MIN_STEPS
                         else f"levelling off (the fit runs at least {MIN_STEPS} steps)")
                bar.update(task, completed=done, description=f"fit: loss {loss:.3g}, {trend} "
                                                             f"({100 * drop:.1f} % over the last quarter)")

            r = calibrate(captures, printouts=printouts, out=out_file, steps=steps, exclude=exclude,
                          progress=_stage_progress(bar), status=status, warn=_warn, local_tone=local_tone)
    except PhysicalError as exc:
        _fail(exc)
    f = r.profile["fitted_on"]
    out.print(f"fitted on {f['crops']} clean crops from {f['photos']} photos of experiment "
              f"[bold]{f['experiment_id']}[/] ({f['image_px']} px images): converged in {f['steps']} steps, "
              f"{f['seconds']:.1f} s; RMS residual {f['rms_residual']:.1f} of 255", markup=True, soft_wrap=True)
    out.print("per photo: median (min-max)", soft_wrap=True)
    for key, text in summarise(r.profile):
        out.print(f"  {key:<20} {text}", soft_wrap=True)
    out.print(f"wrote {r.out}: use it with `physical report --simulated {r.out}`", soft_wrap=True)


@app.command("report")
def report_cmd(
    captures: Path = typer.Option(Path("captures"), "--captures", help="Folder written by `physical ingest`."),
    printouts: Path = typer.Option(Path("printouts"), "--printouts", help="Folder written by make-sheets."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Report folder (default: CAPTURES/report)."),
    weights: Optional[Path] = typer.Option(None, help="Weights file of the experiment's model, if it needed one."),
    model: list[str] = typer.Option([], "--model", help="Another model to evaluate the same crops on "
                                                        "(black-box transfer): SPEC, SPEC+DEFENSE (e.g. demo+jpeg:75) or "
                                                        "SPEC=WEIGHTS_FILE; repeatable."),
    simulated: str = typer.Option("typical", help="Kornia print-and-photo channel whose figures are shown beside "
                                                  "the photos': a preset (mild, typical, harsh), a profile from "
                                                  "`physical calibrate` (FILE.json), or none."),
    simulated_only: bool = typer.Option(False, "--simulated-only",
                                        help="No photos needed: only the simulated (and artificial) figures, "
                                             "e.g. before printing. Default --out: PRINTOUTS/report."),
    seed: int = typer.Option(0, help="Seed of the simulated channel."),
    artificial: bool = typer.Option(True, "--artificial/--no-artificial",
                                    help="Also sweep the paper's artificial transformations (brightness, contrast, "
                                         "blur, noise, JPEG) over the digital images."),
    batch_size: int = typer.Option(256, help="Images classified at once."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cuda when available)."),
    defense_draws: int = typer.Option(4, "--defense-draws",
                                      help="A model behind a random defense classifies every image this many times "
                                           "(seeded draws); its accuracy is the mean over them."),
) -> None:
    """Classify the crops and compute the paper's accuracy and destruction-rate tables."""
    from .report.run import make_report
    from .report.terminal import render_gap, render_robust, render_tables, render_targeted, render_transfer

    try:
        with _progress() as bar:
            result = make_report(captures, printouts=printouts, out=out_dir, weights=weights, models=model,
                                 simulated=None if simulated == "none" else simulated,
                                 simulated_only=simulated_only, seed=seed,
                                 artificial=artificial, batch_size=batch_size, device=device,
                                 defense_draws=defense_draws, progress=_stage_progress(bar), warn=_warn)
    except PhysicalError as exc:
        _fail(exc)
    m = result.manifest
    if result.n_crops:
        out.print(f"experiment [bold]{m['experiment_id']}[/]: {result.n_crops} crops from {result.n_photos} photos; "
                  "each photo of a slot counts as one observation", markup=True, soft_wrap=True)
    else:
        out.print(f"experiment [bold]{m['experiment_id']}[/]: simulated figures only (no photos)", markup=True,
                  soft_wrap=True)
    if m["images"][0].get("label_from") == "predicted":
        out.print("[yellow]labels are the model's own predictions on the clean images (--labels predicted), "
                  "not ground truth: clean digital accuracy is 100% by construction[/]", markup=True, soft_wrap=True)
    if "print" in m:
        out.print(f"{len(m['images'])} of the {m['print']['of']} pictures attacked were printed: photographed "
                  f"figures rest on those; the robust table's digital column on all {m['print']['of']}; simulated "
                  "figures on " + ("all" if m["print"]["pngs"] == "all" else "the printed ones"), soft_wrap=True)
    from .report.figures import source_order

    sources = source_order(f["source"] for f in result.figures)
    for name in result.models:
        for table in render_robust(result.figures, name):
            out.print(table)
        for table in render_targeted(result.figures, m, name):
            out.print(table)
        for source in sources:
            for table in render_tables(result.figures, source, name):
                out.print(table)
    for table in render_transfer(result.figures, m):
        out.print(table)
    for table in render_gap(result.figures):
        out.print(table)
    out.print(f"wrote {result.out / 'report.html'} (open it in a browser), figures.csv, figures.json, "
              f"predictions.csv, gap.csv, robust.csv" + (", artificial.csv" if artificial else "") + f", plots/ in {result.out}/",
              soft_wrap=True)


@app.command("demo")
def demo_cmd(
    out_dir: Path = typer.Option(Path("physical-demo"), "--out", help="Fresh folder for the whole run."),
    seed: int = typer.Option(0, help="Seed of make-sheets (recorded in the manifest; the random attacks' draws) "
                                     "and of the virtual camera; the report's simulated channel keeps its own "
                                     "seed (0)."),
    difficulty: str = typer.Option("normal", help="Virtual camera preset: easy, normal or hard."),
    per_page: int = typer.Option(1, help="Simulated photos per page."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier demo in --out."),
) -> None:
    """Run the whole pipeline on the bundled demo: make-sheets, simulate-photos, ingest, report."""
    from .demo import run_demo

    names = {"attack": "attacking", "pdf": "pdf pages", "photos": "photos"}
    try:
        with _progress() as bar:
            progress = _stage_progress(bar, names)
            r = run_demo(out_dir, seed=seed, difficulty=difficulty, per_page=per_page, force=force,
                         progress=progress, warn=_warn)
    except PhysicalError as exc:
        _fail(exc)
    m = r.sheets.manifest
    ing = r.ingest
    out.print(f"demo experiment [bold]{m['experiment_id']}[/] in {escape(str(r.folder))}/", markup=True, soft_wrap=True)
    out.print(f"  printouts/: {len(m['images'])} pictures x {len(m['images'][0]['variants'])} variants "
              f"on {r.sheets.n_pages} pages (sheets.pdf, images/, manifest.json)", soft_wrap=True)
    out.print(f"  photos/:    {len(r.photos)} simulated phone photos ({difficulty}) + ground-truth.json",
              soft_wrap=True)
    out.print(f"  captures/:  {len(ing.ingested)} photos ingested, {len(ing.skipped)} skipped, "
              f"{ing.crops_total} crops (index.csv, crops/, overlays/)", soft_wrap=True)
    for o in ing.skipped:
        out.print(f"    skipped {o.photo}: {o.reason}", markup=False, soft_wrap=True)
    out.print("  captures/report/: report.html, figures.csv/json, gap.csv, predictions.csv, artificial.csv, plots/",
              soft_wrap=True)
    from .report.terminal import render_tables

    out.print(render_tables(r.report.figures, "photo")[-1])
    out.print(f"With {len(m['images'])} pictures each rate rests on a handful of images (its n), too few to "
              "tell the methods apart: for that, run make-sheets on more pictures (--images DIR --count N).",
              soft_wrap=True)
    out.print(f"look at {r.folder / 'printouts' / 'sheets.pdf'}, the overlays in "
              f"{r.folder / 'captures' / 'overlays'}/ and {r.folder / 'captures' / 'report'}/", soft_wrap=True)


def main() -> None:
    try:
        w = world()
    except PhysicalError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)
        sys.exit(2)
    out.quiet = w.rank > 0          # under torchrun rank 0 alone reports
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted", soft_wrap=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
