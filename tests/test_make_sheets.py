"""`physical make-sheets` end to end: outputs, manifest, PDF contents, bad inputs."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from physical.cli import app
from physical.sheets.layout import page_to_dict
from physical.sheets.run import make_sheets
from physical.sheets.manifest import manifest_pages, read_manifest
from physical.sheets.payload import decode
from physical.models import open_rgb, preprocess
from physical.sheets.pictures import load_pictures

runner = CliRunner()
DPI = 200


def run_cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def sheets(tmp_path_factory):
    """The default experiment: bundled pictures, demo model, all methods and eps."""
    folder = tmp_path_factory.mktemp("run") / "printouts"
    result = run_cli("make-sheets", "--out", str(folder))
    assert result.exit_code == 0, result.output
    return folder, result


def render(pdf_path: Path, index: int) -> np.ndarray:
    pdf = pdfium.PdfDocument(str(pdf_path))
    return np.asarray(pdf[index].render(scale=DPI / 72).to_pil().convert("RGB"))


def test_default_run_writes_everything(sheets):
    folder, result = sheets
    m = read_manifest(folder)
    assert len(m["images"]) == 20
    assert m["attack"]["methods"] == ["fast", "bim", "ll"]
    assert m["attack"]["eps"] == [2, 4, 8, 16]
    assert m["attack"]["steps"] == {"2": 2, "4": 5, "8": 10, "16": 20}
    assert m["model"]["id"] == "demo" and len(m["model"]["weights_sha256"]) == 64
    assert len(pdfium.PdfDocument(str(folder / "sheets.pdf"))) == len(m["layout"]["pages"])
    assert "sheets.pdf" in result.output and "physical ingest" in result.output
    pngs = sorted((folder / "images").glob("*.png"))
    assert len(pngs) == 20 * 13
    assert not list(folder.glob(".staging-*"))


def test_manifest_round_trip(sheets):
    folder, _ = sheets
    m = read_manifest(folder)
    pages = manifest_pages(m)
    assert [page_to_dict(p) for p in pages] == m["layout"]["pages"]
    # Every variant is on exactly one slot, on the same page as its clean twin.
    slots = {(s.image_id, s.variant): p.number for p in pages for s in p.slots}
    for rec in m["images"]:
        names = [v["name"] for v in rec["variants"]]
        assert names[0] == "clean" and len(names) == 13
        assert len({slots[(rec["id"], n)] for n in names}) == 1
    assert len(slots) == 20 * 13


def test_saved_pngs_are_what_the_manifest_says(sheets, demo_model):
    folder, _ = sheets
    m = read_manifest(folder)
    for rec in m["images"][:5]:
        xs = []
        for v in rec["variants"]:
            data = (folder / v["file"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == v["sha256"]
            xs.append(preprocess(open_rgb(folder / v["file"]), demo_model))
        x = torch.stack(xs)
        clean = x[0]
        for v, xi in zip(rec["variants"], x):
            # 8-bit and within eps of the clean image.
            assert torch.equal(torch.round(xi * 255), xi * 255)
            assert (xi - clean).abs().max() * 255 <= v["eps"] + 1e-4
        # The recorded top-5 is the model's prediction on exactly these files.
        with torch.no_grad():
            probs = demo_model(x).softmax(1)
        for v, pr in zip(rec["variants"], probs):
            top = pr.topk(5)
            assert [t["index"] for t in v["top5"]] == top.indices.tolist()
            assert np.allclose([t["prob"] for t in v["top5"]], top.values.tolist(), atol=1e-5)


def test_digital_fast_attack_lowers_accuracy(sheets):
    folder, _ = sheets
    m = read_manifest(folder)
    acc = {}
    for rec in m["images"]:
        for v in rec["variants"]:
            acc.setdefault(v["name"], []).append(v["top5"][0]["index"] == rec["label"])
    clean = np.mean(acc["clean"])
    assert np.mean(acc["fast_e8"]) < clean
    assert np.mean(acc["bim_e8"]) < clean


@pytest.mark.parametrize("page_index", [0, -1])
def test_pdf_pages_have_four_qr_codes_and_exact_images(sheets, page_index):
    folder, _ = sheets
    m = read_manifest(folder)
    pages = manifest_pages(m)
    page = pages[page_index]
    img = render(folder / "sheets.pdf", page.number - 1)
    px = DPI / 25.4
    assert abs(img.shape[1] - page.size_mm[0] * px) < 2 and abs(img.shape[0] - page.size_mm[1] * px) < 2

    # QRCodeDetectorAruco: the classic detector misses a code on ~5% of random experiment ids.
    ok, texts, points, _ = cv2.QRCodeDetectorAruco().detectAndDecodeMulti(img)
    assert ok
    found = {decode(t, experiment_id=m["experiment_id"], n_pages=len(pages)) for t in texts if t}
    assert {(f.page, f.corner) for f in found} == {(page.number, c) for c in ("TL", "TR", "BR", "BL")}

    files = {(rec["id"], v["name"]): folder / v["file"] for rec in m["images"] for v in rec["variants"]}
    for slot in page.slots:
        digital = np.asarray(Image.open(files[(slot.image_id, slot.variant)]).convert("RGB")).astype(int)
        h, w = digital.shape[:2]
        # Sample the centre of every digital pixel's printed cell.
        cx = (slot.rect.x + (np.arange(w) + 0.5) * slot.rect.w / w) * px
        cy = (slot.rect.y + (np.arange(h) + 0.5) * slot.rect.h / h) * px
        printed = img[np.floor(cy).astype(int)][:, np.floor(cx).astype(int)].astype(int)
        err = np.abs(printed - digital)
        assert (err <= 8).mean() >= 0.99, (slot.image_id, slot.variant, err.mean())


def test_refuses_to_overwrite_without_force(sheets):
    folder, _ = sheets
    before = (folder / "manifest.json").read_bytes()
    result = run_cli("make-sheets", "--out", str(folder))
    assert result.exit_code != 0
    assert "--force" in result.stderr and "already holds experiment" in result.stderr
    assert (folder / "manifest.json").read_bytes() == before


def test_force_replaces_experiment(tmp_path):
    out = tmp_path / "p"
    first = make_sheets(out, count=2, eps=[4], methods=["fast"])
    second = make_sheets(out, count=3, eps=[8], methods=["bim"], force=True)
    m = read_manifest(out)
    assert m["experiment_id"] == second.manifest["experiment_id"] != first.manifest["experiment_id"]
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names == sorted(f"{r['id']}_{v['name']}.png" for r in m["images"] for v in r["variants"])


def test_count_and_seed_pick_a_reproducible_subset(demo_model):
    a, _ = load_pictures(demo_model, count=5, seed=3)
    b, _ = load_pictures(demo_model, count=5, seed=3)
    c, _ = load_pictures(demo_model, count=5, seed=4)
    assert [p.source for p in a] == [p.source for p in b]
    assert [p.source for p in a] != [p.source for p in c]
    assert len(a) == 5


def test_letter_paper_and_image_size(tmp_path):
    res = make_sheets(tmp_path / "p", count=2, eps=[2, 4], paper="letter", image_size_mm=40)
    layout = res.manifest["layout"]
    assert layout["paper"] == "letter"
    assert layout["pages"][0]["size_mm"] == [215.9, 279.4]
    assert all(s["rect"][2] == 40 for p in layout["pages"] for s in p["slots"])


# ---- bad input: one clear line, non-zero exit where nothing could be done ----

def _one_line_error(result) -> str:
    assert result.exit_code != 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output
    return errors[0]


def test_missing_folder(tmp_path):
    line = _one_line_error(run_cli("make-sheets", "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "o")))
    assert "nope" in line and "no such folder" in line


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    line = _one_line_error(run_cli("make-sheets", "--images", str(tmp_path / "empty"), "--out", str(tmp_path / "o")))
    assert "no pictures found" in line
    assert not (tmp_path / "o" / "manifest.json").exists()


def _imagefolder(root: Path, classes: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for cls, n in classes.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_unreadable_image_is_skipped_with_a_warning(tmp_path):
    root = _imagefolder(tmp_path / "pics", {"cat": 2, "ship": 1})
    (root / "cat" / "broken.jpg").write_bytes(b"not a jpeg at all")
    result = run_cli("make-sheets", "--images", str(root), "--out", str(tmp_path / "o"), "--eps", "4",
                     "--methods", "fast")
    assert result.exit_code == 0, result.output
    assert "broken.jpg" in result.stderr and "skipped" in result.stderr
    m = read_manifest(tmp_path / "o")
    assert sorted(r["source"] for r in m["images"]) == ["cat/0.png", "cat/1.png", "ship/0.png"]
    assert [r["label_name"] for r in m["images"]] == ["cat", "cat", "ship"]


def test_all_unreadable_fails(tmp_path):
    (tmp_path / "pics" / "cat").mkdir(parents=True)
    (tmp_path / "pics" / "cat" / "a.png").write_bytes(b"")
    line = _one_line_error(run_cli("make-sheets", "--images", str(tmp_path / "pics"), "--out", str(tmp_path / "o")))
    assert "could be read" in line


def test_unknown_label(tmp_path):
    root = _imagefolder(tmp_path / "pics", {"cat": 1, "unicorn": 1})
    line = _one_line_error(run_cli("make-sheets", "--images", str(root), "--out", str(tmp_path / "o")))
    assert "unicorn" in line and "unknown label" in line


def test_csv_labels_and_unknown_csv_label(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / name)
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("file,label\na.png,frog\nb.png,7\n")
    res = make_sheets(tmp_path / "o", images=root, labels=str(csv_path), eps=[2], methods=["fast"])
    assert [(r["source"], r["label_name"]) for r in res.manifest["images"]] == [("a.png", "frog"), ("b.png", "horse")]
    csv_path.write_text("file,label\na.png,frog\nb.png,dragon\n")
    line = _one_line_error(run_cli("make-sheets", "--images", str(root), "--labels", str(csv_path),
                                   "--out", str(tmp_path / "o2")))
    assert "dragon" in line and "b.png" in line


def test_flat_folder_without_labels_says_how(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "a.png")
    line = _one_line_error(run_cli("make-sheets", "--images", str(root), "--out", str(tmp_path / "o")))
    assert "--labels" in line


def test_predicted_labels(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(root / "a.png")
    res = make_sheets(tmp_path / "o", images=root, labels="predicted", eps=[2], methods=["fast"])
    rec = res.manifest["images"][0]
    assert rec["label_from"] == "predicted"
    assert rec["label"] == rec["variants"][0]["top5"][0]["index"]


@pytest.mark.parametrize("eps", ["0", "65", "2.5", "abc", "4,100"])
def test_bad_eps(tmp_path, eps):
    line = _one_line_error(run_cli("make-sheets", "--eps", eps, "--out", str(tmp_path / "o")))
    assert "--eps" in line and "1..64" in line
    assert not (tmp_path / "o").exists()


def test_bad_method_and_paper(tmp_path):
    assert "--methods" in _one_line_error(run_cli("make-sheets", "--methods", "fast,deepfool", "--out", str(tmp_path / "o")))
    assert "--paper" in _one_line_error(run_cli("make-sheets", "--paper", "a3", "--out", str(tmp_path / "o")))
    assert "--image-size-mm" in _one_line_error(
        run_cli("make-sheets", "--image-size-mm", "150", "--out", str(tmp_path / "o")))


def test_the_command_line_defaults_are_make_sheets_defaults():
    """The CLI imports stages lazily, so it spells its defaults out: they must be the Python API's."""
    import inspect

    from physical import cli
    from physical.sheets.run import make_sheets

    api = inspect.signature(make_sheets).parameters
    parsed = {"methods": lambda s: tuple(s.split(",")), "eps": lambda s: tuple(int(v) for v in s.split(",")),
              "sources": lambda s: tuple(s or ())}
    checked = 0
    for name, p in inspect.signature(cli.make_sheets_cmd).parameters.items():
        name = {"out_dir": "out"}.get(name, name)
        if name not in api:
            continue
        default = getattr(p.default, "default", p.default)
        default = parsed[name](default) if name in parsed else default
        assert default == api[name].default, name
        checked += 1
    assert checked >= 20
