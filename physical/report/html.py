"""The report as one self-contained HTML page (``report.html``).

Everything a reader needs to judge the experiment, in a file that can be
mailed, archived or opened offline: the experiment's facts (model, attacks,
counts, where the labels came from), the paper's tables for every model and
every source of transformed images (photo first, simulated sources in the
same rows so that the two can be compared cell by cell; each model's
destruction rate against eps, photographed beside simulated, with the
sim-to-real gap), the plots, and a
gallery of examples (digital clean, digital adversarial, photographed crop,
each with the model's top-3). Every image is embedded as a ``data:`` URI;
there is no external CSS, script or font. Every string that comes from a
file (class names, file names, ids) is HTML-escaped.
"""
from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..attacks import method_rank
from ..files import write_atomic
from .figures import (DIGITAL, METHOD_NAMES, attacked_model_id, MIN_GAP_N, Cell, cell_label, cells_in_order, gap_text, norm_text,
                      optional_number, rate_of, robust_accuracy, setting_of, sim_to_real_gap, source_label,
                      source_order, targeted_table, transfer_table, typed_row, variant_cells)
from .metrics import Rate

HTML_NAME = "report.html"
GALLERY_SIZE = 8
THUMB_PX = 128        # display size of the gallery images
EMBED_MAX_PX = 256    # larger images are downscaled before embedding, to keep the file small
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def e(value: Any) -> str:
    """HTML-escape anything (quotes included, so it is safe in attributes too)."""
    return html.escape("" if value is None else str(value), quote=True)


# ---------------------------------------------------------------- helpers on figure rows

def _rate(rows: Sequence[dict[str, Any]], **match: Any) -> Rate | None:
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    return Rate(int(found[0]["k"]), int(found[0]["n"])) if found else None


def notes_from_meta(meta: dict[str, Any]) -> list[str]:
    """The notes for :func:`write_html` from figures.json's metadata (counting rule, prefilter, interval)."""
    out = []
    for key, title in (("counting", "Counting"), ("sample", "Printed sample"), ("prefilter", "Prefiltered case"),
                       ("interval", "Intervals")):
        if meta.get(key):
            out.append(f"{title}: {meta[key]}")
    return out


# ---------------------------------------------------------------- images

def data_uri(path: Path, max_px: int = EMBED_MAX_PX) -> tuple[str, int] | None:
    """``data:image/png;base64,...`` of an image file and its width, or None if it cannot be read.

    PNG files no larger than ``max_px`` are embedded byte for byte (no re-encoding of
    the digital images); anything else is converted to PNG, downscaled to ``max_px``.
    """
    try:
        raw = Path(path).read_bytes()
        from PIL import Image

        with Image.open(io.BytesIO(raw)) as im:
            width, height = im.size
            if not (raw.startswith(PNG_MAGIC) and max(width, height) <= max_px):
                im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
                im.thumbnail((max_px, max_px))
                buf = io.BytesIO()
                im.save(buf, format="PNG", optimize=True)
                raw, width = buf.getvalue(), im.size[0]
    except (OSError, ValueError):
        return None
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii"), width


def plot_uri(path: Path) -> str | None:
    """A plot embedded at full resolution (PNG as is, anything else converted)."""
    got = data_uri(path, max_px=1 << 16)
    return got[0] if got else None


# ---------------------------------------------------------------- tables

def _acc_cell(r1: Rate | None, r5: Rate | None, cls: str = "num") -> str:
    if r1 is None or r5 is None:
        return f'<td class="{cls} missing">&ndash;</td>'
    if not r1.n:
        return f'<td class="{cls} na" title="no observations">n/a<span class="n">n=0</span></td>'
    def pct(r: Rate) -> str:
        return f"{100 * r.value:.0f}"

    title = f"top-1 {r1.k}/{r1.n}, top-5 {r5.k}/{r5.n}"
    return (f'<td class="{cls}" title="{e(title)}">{pct(r1)} / {pct(r5)}'
            f'<span class="n">n={r1.n}</span></td>')


def _dr_cell(r: Rate | None) -> str:
    if r is None:
        return '<td class="num missing">&ndash;</td>'
    if not r.n:
        why = "empty denominator: no adversarial example worked digitally"
        return f'<td class="num na" title="{why}">{e(r.format(0))}</td>'
    return f'<td class="num" title="{e(f"k={r.k} of n={r.n}")}">{e(r.format(0))}</td>'


def _cell_label(cell: Cell, names: dict[str, str], rowspan: int = 1) -> str:
    """The row's label (the method's short name and its setting) and its mean L0, L2 and L-infinity."""
    span = f' rowspan="{rowspan}"' if rowspan > 1 else ""
    norms = "".join(f'<td class="num norm{" na" if v is None else ""}"{span}>{e(norm_text(v))}</td>'
                    for v in (cell.l0, cell.l2, cell.linf))
    return (f'<th scope="row"{span}>{e(names.get(cell.method, cell.method))} '
            f'<span class="eps">{e(cell.setting)}</span></th>{norms}')


# The header cells of the three norm columns, beside every table's method column.
NORM_HEAD = ('<th rowspan="2" scope="col" title="mean pixels changed by the printed perturbation">L0</th>'
             '<th rowspan="2" scope="col" title="mean L2 of the printed perturbation, 0-255 levels">L2</th>'
             '<th rowspan="2" scope="col" title="mean L-infinity of the printed perturbation, 0-255 levels">'
             'L&infin;</th>')


def _digital_columns(fig: Sequence[dict[str, Any]], sources: Sequence[str]) -> list[str | None]:
    """One digital column (None) when every source's digital figures agree, else one per source.

    The digital figures count the pictures a source observed, so they only differ
    between sources when, e.g., not every page was photographed.
    """
    def key(src: str) -> list[tuple]:
        rows = [r for r in fig if r["source"] == src and r["table"] == "accuracy"
                and r["variant"].startswith("digital_")]
        return sorted((r["case"], r["attack"], r["metric"], r["variant"], r["k"], r["n"]) for r in rows)

    first = key(sources[0])
    return [None] if all(key(s) == first for s in sources[1:]) else list(sources)


def accuracy_table(fig: Sequence[dict[str, Any]], sources: Sequence[str], case: str,
                   cells: Sequence[Cell], names: dict[str, str]) -> str:
    digital = _digital_columns(fig, sources)
    width = len(sources) + len(digital)
    head2 = []
    for _ in ("clean", "adv"):
        head2 += [f'<th scope="col" class="src">{e(source_label(s))}</th>' for s in sources]
        head2 += ['<th scope="col" class="dig">digital</th>' if d is None else
                  f'<th scope="col" class="dig">digital<br><small>{e(source_label(d))} set</small></th>'
                  for d in digital]
    rows = []
    for cell in cells:
        mine = [r for r in fig if r["attack"] == cell.attack and r["case"] == case and r["table"] == "accuracy"]
        tds = []
        for v in ("clean", "adv"):
            for s in sources:
                tds.append(_acc_cell(*(_rate(mine, source=s, variant=f"transformed_{v}", metric=m)
                                       for m in ("top1", "top5"))))
            for d in digital:
                src = sources[0] if d is None else d
                tds.append(_acc_cell(*(_rate(mine, source=src, variant=f"digital_{v}", metric=m)
                                       for m in ("top1", "top5")), cls="num dig"))
        rows.append(f"<tr>{_cell_label(cell, names)}{''.join(tds)}</tr>")
    return (f'<div class="scroll"><table class="fig acc">'
            f'<thead><tr><th rowspan="2" scope="col">method</th>{NORM_HEAD}'
            f'<th colspan="{width}" scope="colgroup" class="grp">clean images</th>'
            f'<th colspan="{width}" scope="colgroup" class="grp">adversarial images</th></tr>'
            f"<tr>{''.join(head2)}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def destruction_table(fig: Sequence[dict[str, Any]], sources: Sequence[str],
                      cells: Sequence[Cell], names: dict[str, str]) -> str:
    """Rows per variant; with several sources, one row per source under the same variant
    (so that photo and simulated rates sit one above the other), columns case x top-k."""
    many = len(sources) > 1
    groups = [(c, m) for c in ("average", "prefiltered") for m in ("top1", "top5")]
    src_head = '<th rowspan="2" scope="col">source</th>' if many else ""
    head = (f'<tr><th rowspan="2" scope="col">method</th>{NORM_HEAD}{src_head}'
            '<th colspan="2" scope="colgroup" class="grp">average case</th>'
            '<th colspan="2" scope="colgroup" class="grp">prefiltered case</th></tr>'
            "<tr>" + "".join(f'<th scope="col">{"top-1" if m == "top1" else "top-5"}</th>' for _, m in groups)
            + "</tr>")
    rows = []
    for cell in cells:
        mine = [r for r in fig if r["attack"] == cell.attack and r["table"] == "destruction"]
        for i, s in enumerate(sources):
            label = _cell_label(cell, names, rowspan=len(sources)) if i == 0 else ""
            src = f'<td class="src">{e(source_label(s))}</td>' if many else ""
            tds = "".join(_dr_cell(_rate(mine, source=s, case=c, metric=m)) for c, m in groups)
            cls = ' class="first"' if many and i == 0 else ""
            rows.append(f"<tr{cls}>{label}{src}{tds}</tr>")
    return (f'<div class="scroll"><table class="fig dr{" multi" if many else ""}">'
            f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></div>")


def robust_table(rows: Sequence[dict[str, Any]], names: dict[str, str]) -> str:
    """One model's robust-accuracy rows (:func:`~physical.report.figures.robust_accuracy`): a row per
    variant (clean first), a column per source, digital first; cells: top-1 % [95% interval] and n."""
    sources = [DIGITAL] + source_order(r["source"] for r in rows if r["source"] != DIGITAL)
    head = "".join(('<th scope="col" class="dig">' if s == DIGITAL else '<th scope="col">')
                   + f"{e(source_label(s))}</th>" for s in sources)
    body = []
    for attack in dict.fromkeys(r["attack"] for r in rows):
        by_source = {r["source"]: r for r in rows if r["attack"] == attack}
        first = next(iter(by_source.values()))
        if first["method"] is None:
            label = '<th scope="row">clean</th><td class="num norm"></td>'
        else:
            label = (f'<th scope="row">{e(names.get(first["method"], first["method"]))} '
                     f'<span class="eps">{e(first["setting"])}</span></th>'
                     f'<td class="num norm{" na" if first["linf"] is None else ""}">{e(norm_text(first["linf"]))}</td>')
        tds = "".join(_robust_cell(rate_of(by_source[s]) if s in by_source else None) for s in sources)
        body.append(f"<tr>{label}{tds}</tr>")
    return ('<div class="scroll"><table class="fig robust"><thead><tr><th scope="col">images</th>'
            '<th scope="col" title="mean L-infinity of the printed perturbation, 0-255 levels">L&infin;</th>'
            f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def targeted_html(rows: Sequence[dict[str, Any]], manifest: dict[str, Any]) -> str:
    """One model's targeted success (:func:`~physical.report.figures.targeted_table`), digital beside every
    source; cells: % [95% interval] and n."""
    sources, lines = targeted_table(rows, manifest)
    head = '<th scope="col" class="dig">digital</th>' + "".join(
        f'<th scope="col">{e(source_label(s))}</th>' for s in sources)
    body = [f'<tr><th scope="row">{e(label)}</th>{_robust_cell(digital)}{"".join(map(_robust_cell, by_source))}</tr>'
            for label, digital, by_source in lines]
    return ('<div class="scroll"><table class="fig robust"><thead><tr><th scope="col">attack</th>'
            f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def transfer_html(rows: Sequence[dict[str, Any]], manifest: dict[str, Any]) -> str:
    """The transfer table (:func:`~physical.report.figures.transfer_table`), one per source of images, digital
    first; the white-box cells marked with a star."""
    models, tables = transfer_table(rows, manifest)
    head = "".join(f'<th scope="col">{e(m)}</th>' for m in models)
    html = []
    for source, lines in tables:
        body = []
        for maker, label, rates in lines:
            tds = "".join(_robust_cell(r).replace("</td>", " &#9733;</td>" if m == maker else "</td>")
                          for m, r in zip(models, rates))
            body.append(f'<tr><th scope="row">{e(maker)}</th><th scope="row">{e(label)}</th>{tds}</tr>')
        what = "digital images" if source == DIGITAL else source_label(source)
        html.append(f'<h3>{e(what)}</h3><div class="scroll"><table class="fig robust"><thead><tr>'
                    f'<th scope="col">made on</th><th scope="col">attack</th>{head}</tr></thead>'
                    f"<tbody>{''.join(body)}</tbody></table></div>")
    return "".join(html)


def _robust_cell(r: Rate | None) -> str:
    if r is None:
        return '<td class="num missing">&ndash;</td>'
    if not r.n:
        return '<td class="num na" title="no observations">n/a (n=0)</td>'
    return f'<td class="num" title="{e(f"top-1 {r.k}/{r.n}")}">{e(r.format(0))}</td>'


# ---------------------------------------------------------------- gallery

def _top(indices: str, probs: str) -> list[tuple[int, float]]:
    idx = [int(x) for x in str(indices or "").split()]
    pr = [float(x) for x in str(probs or "").split()]
    return list(zip(idx, pr))




def choose_examples(predictions: Sequence[dict[str, Any]], model: str, limit: int = GALLERY_SIZE,
                    manifest: dict[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Up to ``limit`` (kind, prediction row) of one model's adversarial crops, the interesting first.

    kind: "destroyed" (digitally fooled, right again on the photo), "survived" (fooled
    digitally and on the photo), or "not fooled" (the attack did not work digitally:
    clean already wrong or adversarial right), used only to fill the gallery.
    Half destroyed and half survived when there are enough of both; within a kind the
    most confident first, distinct pictures and a mix of methods preferred. The clean
    digital prediction comes from predictions' clean rows, else (for the experiment's
    own model) from the manifest.
    """
    rows = [p for p in predictions if p.get("model") == model and p.get("method") and p.get("crop")
            and p.get("source", "photo") == "photo"]
    clean_top1: dict[str, int] = {}
    for p in predictions:
        if p.get("model") == model and p.get("variant") == "clean" and p.get("digital_top5"):
            clean_top1.setdefault(p["image_id"], int(str(p["digital_top5"]).split()[0]))
    if manifest is not None and attacked_model_id(manifest) == model:
        for rec in manifest["images"]:
            top5 = next((v.get("top5") for v in rec["variants"] if v["name"] == "clean"), None)
            if top5:
                clean_top1.setdefault(rec["id"], int(top5[0]["index"]))
    kinds: dict[str, list[dict[str, Any]]] = {"destroyed": [], "survived": [], "not fooled": []}
    for p in rows:
        label = int(p["true_label"])
        adv = _top(p["digital_top5"], p["digital_top5_probs"])
        photo = _top(p["photo_top5"], p["photo_top5_probs"])
        if not adv or not photo:
            continue
        fooled = clean_top1.get(p["image_id"]) == label and adv[0][0] != label
        kind = "not fooled" if not fooled else ("destroyed" if photo[0][0] == label else "survived")
        kinds[kind].append(p)

    def by(col: str | None):  # the most convincing first: a confident attack undone, a confident mistake
        def key(p: dict[str, Any]) -> tuple:
            conf = -float(str(p[col]).split()[0]) if col else 0.0
            eps = optional_number(p.get("eps"), int)
            return conf, method_rank(p["method"]), -(eps or 0), p["crop"]
        return key

    kinds["destroyed"].sort(key=by("digital_top5_probs"))
    kinds["survived"].sort(key=by("photo_top5_probs"))
    kinds["not fooled"].sort(key=by(None))
    # Half destroyed, half survived (the other kind fills in when one is short), then the rest.
    d, s = kinds["destroyed"], kinds["survived"]
    n_d = min(len(d), (limit + 1) // 2)
    n_s = min(len(s), limit - n_d)
    n_d = min(len(d), limit - n_s)
    n_f = limit - n_d - n_s
    chosen: list[tuple[str, dict[str, Any]]] = []
    for kind, n in (("destroyed", n_d), ("survived", n_s), ("not fooled", n_f)):
        chosen += [(kind, p) for p in _pick(kinds[kind], n, {q["image_id"] for _, q in chosen})]
    return chosen


def _pick(cands: Sequence[dict[str, Any]], n: int, taken: set[str]) -> list[dict[str, Any]]:
    """n of the (best first) candidates: round-robin over the methods, pictures not yet shown first."""
    by_method: dict[str, list[dict[str, Any]]] = {}
    for p in cands:
        by_method.setdefault(p["method"], []).append(p)
    queues = [by_method[m] for m in sorted(by_method, key=lambda m: (method_rank(m), m))]
    robin = [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]
    out: list[dict[str, Any]] = []
    taken = set(taken)
    for fresh_only in (True, False):
        for p in robin:
            if len(out) < n and all(p is not q for q in out) and (not fresh_only or p["image_id"] not in taken):
                out.append(p)
                taken.add(p["image_id"])
    return out


def _prob(p: float) -> str:
    return "<0.1%" if p < 0.0005 else f"{100 * p:.1f}%"


def _preds_list(top: Sequence[tuple[int, float]], label: int, class_names: Sequence[str]) -> str:
    items = []
    for i, (idx, p) in enumerate(top[:3]):
        name = class_names[idx] if 0 <= idx < len(class_names) else f"class {idx}"
        ok = idx == label
        mark = '<span class="mark" aria-label="correct">&#10003;</span>' if ok else ""
        cls = "ok" if ok else ("bad" if i == 0 else "")
        items.append(f'<li class="{cls}"><span class="cls">{e(name)}</span>{mark}'
                     f'<span class="p">{e(_prob(p))}</span></li>')
    return f'<ol class="top3">{"".join(items)}</ol>'


def _img(uri: tuple[str, int] | None, alt: str) -> str:
    if uri is None:
        return f'<div class="thumb missing-img">missing<br><small>{e(alt)}</small></div>'
    src, width = uri
    cls = "thumb pixelated" if width < THUMB_PX else "thumb"
    return f'<img class="{cls}" src="{src}" alt="{e(alt)}" width="{THUMB_PX}" height="{THUMB_PX}">'


def gallery_html(examples: Sequence[tuple[str, dict[str, Any]]], manifest: dict[str, Any],
                 predictions: Sequence[dict[str, Any]], captures: Path, printouts: Path,
                 names: dict[str, str]) -> str:
    class_names = manifest["model"]["class_names"]
    images = {rec["id"]: rec for rec in manifest["images"]}
    badge = {"destroyed": ("destroyed", "the photo undid the attack"),
             "survived": ("survived", "still fooled on the photo"),
             "not fooled": ("not fooled digitally", "the attack did not fool the model digitally")}
    cards = []
    for kind, p in examples:
        rec = images.get(p["image_id"], {})
        label = int(p["true_label"])
        variants = {v["name"]: v for v in rec.get("variants", [])}
        clean_row = next((q for q in predictions if q.get("model") == p["model"] and q["image_id"] == p["image_id"]
                          and q["variant"] == "clean" and q.get("digital_top5")), None)
        if clean_row is not None:
            clean_top = _top(clean_row["digital_top5"], clean_row["digital_top5_probs"])
        else:  # the experiment's own model: its digital top-5 is in the manifest
            clean_top = [(t["index"], t["prob"]) for t in variants.get("clean", {}).get("top5", [])]
        clean_file = variants.get("clean", {}).get("file")
        adv_file = variants.get(p["variant"], {}).get("file")
        panels = [
            ("digital clean", _img(data_uri(Path(printouts) / clean_file) if clean_file else None,
                                   clean_file or "clean image"), clean_top, e(clean_file or "")),
            ("digital adversarial", _img(data_uri(Path(printouts) / adv_file) if adv_file else None,
                                          adv_file or "adversarial image"),
             _top(p["digital_top5"], p["digital_top5_probs"]), e(adv_file or "")),
            ("photo crop", _img(data_uri(Path(captures) / p["crop"]), p["crop"]),
             _top(p["photo_top5"], p["photo_top5_probs"]), e(p.get("photo", ""))),
        ]
        none = '<p class="muted">no prediction</p>'
        figs = "".join(
            f'<figure class="panel"><figcaption class="what">{what}</figcaption>{img}'
            f"{_preds_list(top, label, class_names) if top else none}"
            f'<div class="file" title="{file}">{file}</div></figure>'
            for what, img, top, file in panels)
        word, why = badge[kind]
        method = cell_label(p["method"], setting_of(p))
        cards.append(
            f'<article class="card {e(kind.replace(" ", "-"))}">'
            f'<header><span class="badge" title="{e(why)}">{e(word)}</span> '
            f'<b>{e(p["image_id"])}</b> &middot; {e(method)} &middot; true label: '
            f'<b class="label">{e(p.get("true_name") or class_names[label])}</b>'
            f'<div class="src muted">{e(rec.get("source", ""))}</div></header>'
            f'<div class="panels">{figs}</div></article>')
    return f'<div class="gallery">{"".join(cards)}</div>'


def photo_grid_html(manifest: dict[str, Any], predictions: Sequence[dict[str, Any]], captures: Path,
                    model: str) -> str:
    """Carlini and Wagner's grid again, photographed: for each ``--targets all`` spec, one picture of each
    class (rows, as ``target-grid.pdf``) and its photographed crop for every target (columns), each with
    ``model``'s top-1 on the crop, green when it is the target; empty where no photo of that slot was read."""
    from ..sheets.target_grid import grid_rows, target_groups

    class_names = manifest["model"]["class_names"]
    crops = {}
    for p in predictions:
        if p["model"] == model and p.get("crop"):
            crops.setdefault((p["image_id"], p["variant"]), p)
    html = []
    for group, by_target in target_groups(manifest["images"]).items():
        head = "".join(f'<th scope="col">{e(n)}</th>' for n in class_names)
        body = []
        for rec in grid_rows(manifest["images"]):
            tds = []
            for j in range(len(class_names)):
                p = crops.get((rec["id"], by_target.get(j)))
                if p is None:
                    tds.append('<td class="missing">&ndash;</td>')
                    continue
                top = int(str(p["photo_top5"]).split()[0])
                cls = "diag" if j == int(rec["label"]) else "ok" if top == j else "bad"
                uri = data_uri(Path(captures) / p["crop"])
                img = f'<img class="pixelated" src="{uri[0]}" alt="{e(p["crop"])}" width="48" height="48">' if uri else ""
                tds.append(f'<td class="{cls}">{img}<br><small>{e(class_names[top])}</small></td>')
            body.append(f'<tr><th scope="row">{e(rec.get("label_name", ""))}</th>{"".join(tds)}</tr>')
        html.append(f'<h3>{e(group)}</h3><div class="scroll"><table class="grid"><thead><tr><th></th>{head}</tr>'
                    f"</thead><tbody>{''.join(body)}</tbody></table></div>")
    return "".join(html)


# ---------------------------------------------------------------- page

CSS = """
:root { --fg:#1d2329; --muted:#5f6b76; --line:#c9d1d9; --head:#eef2f6; --ok:#1a7f37; --bad:#b42318;
        --warn-bg:#fff4e5; --warn:#8a4b00; --accent:#0b5cad; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 1.6em; margin: 0 0 .2em; }
h2 { font-size: 1.3em; margin: 2em 0 .5em; padding-bottom: .2em; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.02em; margin: 1.6em 0 .4em; }
h3 .muted { font-weight: 400; }
a { color: var(--accent); }
.muted { color: var(--muted); }
.subtitle { color: var(--muted); margin: 0 0 1em; }
.top { display: flex; gap: 28px; align-items: flex-start; flex-wrap: wrap; }
.top .about { flex: 1 1 560px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 2px 16px; margin: 0 0 .6em; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.warning { background: var(--warn-bg); color: var(--warn); border: 1px solid #f0b35b; border-left: 6px solid #e08a00;
           padding: 10px 14px; border-radius: 4px; margin: 1em 0; font-weight: 600; }
ul.notes { margin: .3em 0 1em; padding-left: 1.3em; }
nav.toc { flex: 0 1 300px; background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px;
          padding: 8px 16px; font-size: .92em; }
nav.toc ol { margin: .2em 0; padding-left: 1.3em; }
nav.toc b { font-size: .95em; }
.scroll { overflow-x: auto; margin: .4em 0 1.2em; }
table.fig { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: .93em; }
table.fig th, table.fig td { border: 1px solid var(--line); padding: 4px 9px; vertical-align: middle; }
table.fig thead th { background: var(--head); text-align: center; font-weight: 600; }
table.fig thead th.grp { background: #dfe6ee; }
table.fig thead th.src { font-weight: 500; }
table.fig thead th.dig { font-weight: 500; font-style: italic; }
table.fig tbody th { text-align: left; font-weight: 500; white-space: nowrap; background: #fafbfc; }
table.fig tbody tr:nth-child(even) td { background: #fbfcfd; }
table.multi tr.first > * { border-top: 2px solid #9aa7b4; }
table.multi tbody tr:nth-child(even) td { background: none; }
td.src { color: var(--muted); white-space: nowrap; }
td.num { text-align: right; white-space: nowrap; }
table.fig tbody td.dig, table.fig tbody tr:nth-child(even) td.dig { background: #f4f6f9; }
td.num .n { display: block; font-size: .8em; color: var(--muted); }
td.norm { color: var(--muted); }
td.na { color: var(--muted); font-style: italic; }
td.missing { color: var(--muted); text-align: center; }
.eps { color: var(--muted); }
.legend { font-size: .9em; color: var(--muted); border-left: 3px solid var(--line); padding: 2px 12px; margin: .6em 0 1.2em; }
.legend p { margin: .25em 0; }
figure.plot { margin: 1em 0 2em; }
figure.plot img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figure.plot figcaption { font-size: .9em; color: var(--muted); font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 16px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; break-inside: avoid; }
.card header { margin-bottom: 8px; }
.card .src { font-size: .82em; }
.badge { display: inline-block; font-size: .78em; font-weight: 700; text-transform: uppercase; letter-spacing: .03em;
         padding: 1px 8px; border-radius: 10px; color: #fff; background: var(--muted); }
.card.destroyed .badge { background: var(--ok); }
.card.survived .badge { background: var(--bad); }
.label { color: var(--ok); }
.panels { display: flex; gap: 14px; flex-wrap: wrap; }
figure.panel { margin: 0; width: 164px; }
figure.panel .what { font-size: .82em; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .03em; }
img.thumb, .thumb { width: 128px; height: 128px; display: block; border: 1px solid var(--line); background: #eee; object-fit: contain; }
table.grid { border-collapse: collapse; font-size: .72em; }
table.grid td, table.grid th { padding: 2px; text-align: center; border: 1px solid var(--line); }
table.grid td.ok small { color: var(--ok); font-weight: 600; } table.grid td.bad small { color: var(--bad); }
table.grid td.diag { background: var(--head); } span.ok { color: var(--ok); } span.bad { color: var(--bad); }
img.pixelated { image-rendering: pixelated; image-rendering: crisp-edges; image-rendering: pixelated; }
.missing-img { display: flex; flex-direction: column; align-items: center; justify-content: center; color: var(--bad); font-size: .8em; }
ol.top3 { list-style: none; margin: 4px 0 0; padding: 0; font-size: .84em; font-variant-numeric: tabular-nums; }
ol.top3 li { display: flex; gap: 4px; padding: 0 2px; border-radius: 3px; }
ol.top3 li .cls { flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
ol.top3 li .p { color: var(--muted); }
ol.top3 li.ok { background: #e6f4ea; color: var(--ok); font-weight: 600; }
ol.top3 li.bad .cls { color: var(--bad); }
.mark { color: var(--ok); font-weight: 700; }
.file { font-size: .72em; color: var(--muted); overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
        font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
footer { margin-top: 3em; font-size: .85em; color: var(--muted); }
@media print { main { max-width: none; padding: 0; } nav.toc { display: none; } .scroll { overflow: visible; }
               table.fig, .card, figure.plot { break-inside: avoid; } }
"""

LEGEND_ACC = (
    "<p><b>Cells</b>: accuracy in %, top-1 / top-5, with the number of observations n below. "
    "<b>photo</b>: the crops of the photographed printouts (each photo of a slot is one observation); "
    "<b>simulated</b>: the same images through a simulated camera; <b>digital</b>: the PNG files the model saw "
    "before printing (each picture once). <b>clean</b> / <b>adversarial</b>: the unmodified picture and the "
    "attacked one (the row's method and its setting: &epsilon; on the 0&ndash;255 scale, d the pixels "
    "changed, &kappa; the Carlini-Wagner confidence). <b>L0</b>, <b>L2</b>, <b>L&infin;</b>: the mean over the "
    "pictures of the printed perturbation (the 8-bit adversarial image minus the clean one, 0&ndash;255 levels): "
    "the pixels it changes (in any channel), its Euclidean norm over every pixel and channel, and its largest "
    "change.</p>"
    "<p><b>Average case</b>: every picture; <b>prefiltered</b>: only the pictures the attack clearly worked on "
    "digitally (see the definition above).</p>")
LEGEND_DR = (
    "<p><b>Destruction rate</b> (Kurakin et al. 2016, Eq. 1): of the adversarial images that worked digitally "
    "(clean right, adversarial wrong, at top-1 or top-5), the share that the photo (or the simulated photo) made right again. "
    "Cells: rate % [95% interval] and n, the number of such images; <i>n/a</i>: no adversarial image worked "
    "digitally, so there is nothing to destroy (never reported as 0).</p>")
LEGEND_ROBUST = (
    "<p><b>Robust accuracy</b>: the share of images the model classifies right (top-1), on the clean pictures "
    "and on each attack's adversarial images: for a defended model the figure that matters (higher: the attack "
    "failed more often). <b>digital</b>: the PNG files (each picture once; n is the largest set a source saw), "
    "<b>photo</b> and <b>simulated</b>: the same images printed and photographed, or through a simulated camera "
    "(each photo of a slot once). Beside it, the destruction rate says how many of the attacks that worked "
    "digitally the photo undid.</p>")
LEGEND_GAP = (
    "<p><b>Sim-to-real gap</b>: for each simulated source, the mean of |simulated &minus; photographed| top-1 "
    "destruction rate, average case, in percentage points, over the variants (method and setting) where both have "
    f"n &ge; {MIN_GAP_N} (in smaller cells the sampling noise would swamp the difference); <i>n/a</i>: no cell "
    "qualifies. The figure shows every cell with its 95% interval.</p>")


def plot_figure(path: Path, number: int) -> str:
    """A plot as a ``<figure>``: embedded at full resolution, captioned with its number and file name."""
    uri = plot_uri(Path(path))
    img = f'<img src="{uri}" alt="{e(Path(path).name)}">' if uri else '<div class="missing-img thumb">missing</div>'
    return f'<figure class="plot">{img}<figcaption>Figure {number}. {e(Path(path).name)}</figcaption></figure>'


def gap_table(gaps: Sequence[dict[str, Any]]) -> str:
    """The sim-to-real gap rows (:func:`~physical.report.figures.sim_to_real_gap`) of one model."""
    rows = "".join(f'<tr><th scope="row">{e(source_label(g["source"]))}</th>'
                   f'<td class="num{" na" if g["mean_abs_diff"] is None else ""}">{e(gap_text(g))}</td></tr>'
                   for g in gaps)
    return ('<div class="scroll"><table class="fig gap"><thead><tr><th scope="col">simulated source</th>'
            '<th scope="col">mean |simulated &minus; photo|, top-1, average case</th></tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


def _facts(manifest: dict[str, Any], figures: Sequence[dict[str, Any]], predictions: Sequence[dict[str, Any]],
           models: Sequence[str], names: dict[str, str]) -> tuple[str, str]:
    attack = manifest.get("attack", {})
    primary = attacked_model_id(manifest)
    model_txt = ", ".join(e(m) + (" <span class=\"muted\">(attacked model)</span>" if m == primary else
                                  " <span class=\"muted\">(transfer)</span>") for m in models) or e(primary)
    cells = variant_cells(manifest)
    methods = attack.get("methods") or list(dict.fromkeys(c.method for c in cells))
    # The eps the variants were made with (make-sheets records its --eps even when no method takes one).
    eps = sorted({c.eps for c in cells if c.eps is not None})
    first = [p for p in predictions if p.get("model") == (models[0] if models else primary)
             and p.get("source", "photo") == "photo"]
    n_photos = len({p.get("photo") for p in first if p.get("photo")})
    n_crops = len({p.get("crop") for p in first if p.get("crop")})
    label_from = sorted({str(rec.get("label_from")) for rec in manifest["images"]})
    sources = source_order(f["source"] for f in figures)
    rows = [
        ("Experiment", f"<b>{e(manifest['experiment_id'])}</b>"),
        ("Printouts made", e(manifest.get("created", "unknown"))),
        ("Model(s)", model_txt),
        ("Classes", f"{len(manifest['model'].get('class_names', []))}"),
        ("Attacks", ", ".join(e(names.get(m, m)) for m in methods)
         + (f' <span class="muted">(specs: {e(", ".join(attack["specs"]))})</span>'
            if any(":" in sp for sp in attack.get("specs", [])) else "")),
        ("&epsilon; (0&ndash;255)", ", ".join(e(x) for x in eps) or "none (no method with &epsilon;)"),
        ("Pictures", f"{len(manifest['images'])}" + (f" printed, a random sample of the {manifest['print']['of']} "
                                                      "attacked" if "print" in manifest else "")),
        ("Photos / crops", f"{n_photos} photos, {n_crops} crops"),
        ("Sources", ", ".join(e(source_label(s)) for s in sources) or "none"),
        ("Labels from", ", ".join(e(x) for x in label_from)),
    ]
    facts = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    warn = ""
    if "predicted" in label_from:
        warn = ('<div class="warning" role="alert">Labels are the model\'s own predictions on the clean images '
                "(<code>--labels predicted</code>), not ground truth: clean digital accuracy of the attacked model "
                "is 100% by construction, and every figure measures agreement with the clean prediction.</div>")
    return f'<dl class="facts">{facts}</dl>', warn


def attacked_role(manifest: dict[str, Any]) -> str:
    """How the experiment's own model was attacked, for its section's title."""
    d = manifest["model"].get("defense")
    if not d:
        return "attacked model"
    if not d.get("adaptive", True):
        return (f"defended by {d['spec']}; attacked non-adaptively: the adversarial images were made on "
                + (d.get("non_adaptive_attack") or f"the bare {manifest['model']['id']}"))
    return f"defended by {d['spec']}; attacked adaptively (BPDA, EoT over {d.get('attack_samples', 1)} draws)"


def render_html(*, manifest: dict[str, Any], figures: Sequence[dict[str, Any]],
                predictions: Sequence[dict[str, Any]], captures: Path, printouts: Path,
                plots: Sequence[Path] = (), eps_plots: Mapping[str, Path] | None = None,
                notes: Sequence[str] = (), gallery: int = GALLERY_SIZE) -> str:
    """The report page as a string (see :func:`write_html`)."""
    names = dict(METHOD_NAMES)
    # figures.csv rows are strings: the same as figures.json's once the numbers are numbers
    figures = [typed_row(f) for f in figures]
    models = list(dict.fromkeys(f["model"] for f in figures)) or list(dict.fromkeys(p["model"] for p in predictions))
    primary = attacked_model_id(manifest)
    exp = e(manifest["experiment_id"])
    facts, warn = _facts(manifest, figures, predictions, models, names)
    toc: list[tuple[str, str, list[tuple[str, str]]]] = [("setup", "Experiment", [])]
    body: list[str] = []
    eps_plots = dict(eps_plots or {})
    gaps = sim_to_real_gap(figures)

    table_no = figure_no = 0
    for mi, model in enumerate(models):
        fig = [f for f in figures if f["model"] == model]
        sources = source_order(f["source"] for f in fig)
        cells = cells_in_order(fig)
        role = (attacked_role(manifest) if model == primary
                else "transfer: adversarial images made on " + manifest["model"]["id"])
        sid = f"model-{mi}"
        what = " vs ".join(source_label(s) for s in sources)
        sub = []
        parts = [f'<h2 id="{sid}">Model {e(model)} <span class="muted">({e(role)})</span></h2>']
        robust = [r for r in robust_accuracy(fig) if r["model"] == model]
        if robust:
            table_no += 1
            sub.append((f"{sid}-robust", "Robust accuracy"))
            parts.append(f'<h3 id="{sid}-robust">Table {table_no}. Robust accuracy, top-1 % [95% interval], average '
                         f'case <span class="muted">&middot; digital vs {e(what)} &middot; model {e(model)}</span></h3>')
            parts.append(robust_table(robust, names) + f'<div class="legend">{LEGEND_ROBUST}</div>')
        aimed = [r for r in fig if r["table"] == "targeted"]
        if aimed:
            table_no += 1
            sub.append((f"{sid}-targeted", "Targeted success"))
            parts.append(f'<h3 id="{sid}-targeted">Table {table_no}. Targeted success: % classified as the target '
                         f'[95% interval] <span class="muted">&middot; digital vs {e(what)} &middot; model '
                         f'{e(model)}</span></h3>')
            parts.append(targeted_html(aimed, manifest) + '<div class="legend">Over the pictures whose target is not their '
                         "own class; a spec's variants with <code>--targets all</code> pooled over every target "
                         "(the grid of each: <code>target-grid.pdf</code> beside the sheets).</div>")
        for case in ("average", "prefiltered"):
            table_no += 1
            tid = f"{sid}-acc-{case}"
            sub.append((tid, f"Accuracy, {case} case"))
            parts.append(f'<h3 id="{tid}">Table {table_no}. Accuracy % (top-1 / top-5), {case} case '
                         f'<span class="muted">&middot; {e(what)} &middot; model {e(model)}</span></h3>')
            parts.append(accuracy_table(fig, sources, case, cells, names))
            if case == "average":
                parts.append(f'<div class="legend">{LEGEND_ACC}</div>')
        table_no += 1
        tid = f"{sid}-dr"
        sub.append((tid, "Destruction rate"))
        parts.append(f'<h3 id="{tid}">Table {table_no}. Destruction rate % [95% interval] '
                     f'<span class="muted">&middot; {e(what)} &middot; model {e(model)}</span></h3>')
        parts.append(destruction_table(fig, sources, cells, names))
        parts.append(f'<div class="legend">{LEGEND_DR}</div>')
        if model in eps_plots:
            figure_no += 1
            sub.append((f"{sid}-eps", "Destruction rate against ε"))
            parts.append(f'<h3 id="{sid}-eps">Destruction rate against &epsilon;, average case '
                         f'<span class="muted">&middot; {e(what)} &middot; model {e(model)}</span></h3>')
            parts.append(plot_figure(eps_plots[model], figure_no))
        mine = [g for g in gaps if g["model"] == model]
        if mine:
            table_no += 1
            sub.append((f"{sid}-gap", "Sim-to-real gap"))
            parts.append(f'<h3 id="{sid}-gap">Table {table_no}. Sim-to-real gap, top-1 destruction rate, average '
                         f'case <span class="muted">&middot; model {e(model)}</span></h3>')
            parts.append(gap_table(mine) + f'<div class="legend">{LEGEND_GAP}</div>')
        toc.append((sid, f"Model {model}", sub))
        body.append("".join(parts))

    transfer = [f for f in figures if f["table"] == "transfer"]
    if transfer:
        toc.append(("transfer", "Transfer", []))
        body.append('<h2 id="transfer">Transfer</h2><p class="muted">Error rate % (1 - top-1 accuracy) [95% interval] '
                    "of each model (columns) on the adversarial images made on each model (rows); the white-box cells, "
                    "made on the column's own model, are marked &#9733;. Rows <i>noise like</i> a model: Gaussian noise "
                    "of the same L2 as that model's images, picture by picture (Szegedy et al.'s control).</p>"
                    + transfer_html(transfer, manifest))

    if any(p.get("crop") for p in predictions) and "target_grid" in manifest.get("layout", {}):
        toc.append(("target-grid", "Target grid, photographed", []))
        body.append(f'<h2 id="target-grid">Target grid, photographed</h2><p class="muted">Each picture (rows: one of '
                    f"each class) attacked towards each class (columns), as photographed, with {e(primary)}'s top-1 "
                    "on the crop: <span class=\"ok\">green</span> when it is the target, <span class=\"bad\">red</span> "
                    "when not; the diagonal is the picture itself. The digital grid is target-grid.pdf.</p>"
                    + photo_grid_html(manifest, predictions, captures, primary))

    if plots:
        toc.append(("plots", "Plots", []))
        figs = [plot_figure(p, figure_no + i) for i, p in enumerate(plots, 1)]
        body.append(f'<h2 id="plots">Plots</h2>{"".join(figs)}')

    toc.append(("gallery", "Examples", []))
    gmodel = primary if any(p.get("model") == primary for p in predictions) else (
        predictions[0]["model"] if predictions else primary)
    examples = choose_examples(predictions, gmodel, gallery, manifest) if gallery > 0 else []
    if examples:
        counts = {k: sum(1 for kk, _ in examples if kk == k) for k in ("destroyed", "survived", "not fooled")}
        summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        gal = (f'<p class="muted">{len(examples)} adversarial crops classified by {e(gmodel)} ({summary}): '
               "the digital clean picture, the digital adversarial image, and its photographed crop, each with "
               "the model's top-3 (&#10003; and green: the true label). <b>Destroyed</b>: the attack fooled the model "
               "digitally and the photo is classified right again; <b>survived</b>: the photo still fools it.</p>"
               + gallery_html(examples, manifest, predictions, captures, printouts, names))
    else:
        gal = '<p class="muted">No photographed adversarial crops to show.</p>'
    body.append(f'<h2 id="gallery">Examples</h2>{gal}')

    toc_html = "<ol>" + "".join(
        f'<li><a href="#{i}">{e(t)}</a>' + ("<ol>" + "".join(f'<li><a href="#{si}">{e(st)}</a></li>' for si, st in sub)
                                            + "</ol>" if sub else "") + "</li>" for i, t, sub in toc) + "</ol>"
    notes_html = ("<ul class=\"notes\">" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>") if notes else ""
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    from ..version import __version__

    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Adversarial examples in the physical world: experiment {exp}</title>"
        f"<style>{CSS}</style></head><body><main>"
        f'<h1 id="setup">Adversarial examples in the physical world</h1>'
        f'<p class="subtitle">Experiment {exp} &middot; report generated {e(generated)} &middot; '
        f"reproducing Kurakin, Goodfellow &amp; Bengio (2016)</p>"
        f'{warn}<div class="top"><div class="about">{facts}{notes_html}</div>'
        f'<nav class="toc"><b>Contents</b>{toc_html}</nav></div>'
        + "".join(body)
        + f"<footer>physical {e(__version__)} &middot; experiment {exp} &middot; figures also in figures.csv / "
          "figures.json, per-crop predictions in predictions.csv.</footer>"
        "</main></body></html>\n")


def write_html(path: Path, *, manifest: dict[str, Any], figures: list[dict[str, Any]],
               predictions: list[dict[str, Any]], captures: Path, printouts: Path,
               plots: Sequence[Path] = (), eps_plots: Mapping[str, Path] | None = None,
               notes: Sequence[str] = (), gallery: int = GALLERY_SIZE) -> Path:
    """Write the self-contained HTML report to ``path`` (atomically) and return it.

    manifest: printouts/manifest.json; figures: the figure rows (figures.json's
    "figures", or figures.csv's rows); predictions: predictions.csv's rows (dicts of strings are fine);
    captures / printouts: the folders the crop and digital image paths are relative
    to; plots: PNG files to embed, captioned with their file names; eps_plots: model ->
    its plot of destruction rate against eps (:func:`~physical.report.plots.plot_destruction_vs_eps`),
    shown in the model's section beside its sim-to-real gap; notes: lines
    for the header (e.g. :func:`notes_from_meta` of figures.json); gallery: the most
    examples to show (0 for none).
    """
    page = render_html(manifest=manifest, figures=figures, predictions=predictions, captures=captures,
                       printouts=printouts, plots=plots, eps_plots=eps_plots, notes=notes, gallery=gallery)
    path = Path(path)
    write_atomic(path, page.encode("utf-8"))
    return path
