"""Runs split across processes under torchrun (gloo, CPU): the same outputs as one process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from physical.distributed import World, gather, shard, world
from physical.errors import PhysicalError

ARGS = ["make-sheets", "--methods", "fast,bim,ll,pgd,eot", "--eps", "4", "--count", "6", "--batch-size", "2",
        "--seed", "3", "--pgd-steps", "3", "--eot-samples", "2"]


def test_shard_gives_each_rank_a_contiguous_block_and_covers_everything():
    items = list(range(7))
    parts = [shard(items, World(r, 3)) for r in range(3)]
    assert parts == [[0, 1], [2, 3], [4, 5, 6]]
    assert shard(items, World()) == items
    assert [shard(items[:2], World(r, 3)) for r in range(3)] == [[], [0], [1]]


def test_world_reads_torchruns_environment(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert world() == World(0, 1, 0)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert world() == World(3, 4, 1) and not world().writes
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(PhysicalError, match="RANK 4 of WORLD_SIZE 4"):
        world()


def test_one_process_gather_returns_the_value_or_raises_the_error():
    assert gather(World(), 5) == [5]
    with pytest.raises(ValueError, match="bad"):
        gather(World(), error=ValueError("bad"))


def _run(args: list[str], cwd: Path, procs: int = 1, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    base.update({"OMP_NUM_THREADS": "1", **(env or {})})
    launcher = [sys.executable, "-m", "physical"] if procs == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}", "-m", "physical"]
    return subprocess.run(launcher + args, cwd=cwd, env=base, capture_output=True, text=True, timeout=900)


def _predictions(folder: Path) -> list:
    m = json.loads((folder / "manifest.json").read_text())
    return [(r["id"], r["label"], [(v["name"], v["top5"], v["sha256"], v["perturbation"]) for v in r["variants"]])
            for r in m["images"]]


def _pdf_pages(folder: Path) -> list[tuple[str, list[bytes]]]:
    """Each page of the sheets: its text (the experiment id blanked) and its images' pixels, in order."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    experiment = json.loads((folder / "manifest.json").read_text())["experiment_id"]
    pages = []
    doc = pdfium.PdfDocument(str(folder / "sheets.pdf"))
    for page in doc:
        text = page.get_textpage().get_text_range().replace(experiment, "X")
        images = [obj.get_bitmap(render=False).to_numpy().tobytes()
                  for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE])]
        pages.append((text, images))
    doc.close()
    return pages


def test_two_processes_make_the_same_sheets_as_one(tmp_path):
    # Printing a sample of 4 (with every PNG kept): the digital table is shared out and gathered too;
    # images 40 mm wide put them on more than one page.
    sample = ["--print-count", "4", "--all-pngs", "--image-size-mm", "40"]
    one = _run(ARGS + sample + ["--out", "one"], tmp_path)
    assert one.returncode == 0, one.stderr
    two = _run(ARGS + sample + ["--out", "two"], tmp_path, procs=2)
    assert two.returncode == 0, two.stderr
    # Rank 0 alone reports.
    assert two.stdout.count("digital top-1 accuracy") == 1
    png_one = sorted((tmp_path / "one" / "images").iterdir())
    png_two = sorted((tmp_path / "two" / "images").iterdir())
    assert [p.name for p in png_one] == [p.name for p in png_two] and len(png_one) == 6 * 6
    for a, b in zip(png_one, png_two):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert _predictions(tmp_path / "one") == _predictions(tmp_path / "two")
    assert len(_predictions(tmp_path / "one")) == 4
    with np.load(tmp_path / "one" / "digital.npz") as a, np.load(tmp_path / "two" / "digital.npz") as b:
        assert sorted(a.files) == sorted(b.files) and len(a["id"]) == 6
        for key in a.files:
            assert np.array_equal(a[key], b[key]), key
    assert not list((tmp_path / "two").glob(".staging-*"))
    # Each process drew its share of the pages: the joined PDF has the same pages, in the same order,
    # with the same images and text (but its own experiment id).
    pages_one, pages_two = _pdf_pages(tmp_path / "one"), _pdf_pages(tmp_path / "two")
    assert len(pages_one) >= 2 and pages_one == pages_two
    assert [f"page {k} of {len(pages_one)}" in text for k, (text, _) in enumerate(pages_two, 1)] == [True] * len(pages_one)
    assert not list((tmp_path / "two").glob("part-*"))


def test_a_failed_rank_fails_the_run_with_one_line_and_leaves_no_experiment(tmp_path):
    # Rank 1 raises while it attacks (a sitecustomize on its path breaks it, and only it).
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('RANK') == '1':\n"
        "    import physical.sheets.run as run\n"
        "    def broken(*args, **kwargs):\n"
        "        raise RuntimeError('out of memory on this rank')\n"
        "    run._attack_batch = broken\n")
    done = _run(ARGS + ["--out", "printouts"], tmp_path, procs=2,
                env={"PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])})
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert lines == ["error: rank 1 of 2 failed: RuntimeError: out of memory on this rank"]
    printouts = tmp_path / "printouts"
    assert not (printouts / "manifest.json").exists()
    assert not list(printouts.glob(".staging-*")) and not list(printouts.glob("images/*"))


def test_two_processes_report_the_same_figures_as_one(tmp_path):
    from physical.capture.camera import simulate_photos
    from physical.capture.run import ingest

    made = _run(ARGS[:1] + ["--methods", "fast,pgd", "--eps", "8", "--count", "5", "--pgd-steps", "2",
                            "--out", "printouts"], tmp_path)
    assert made.returncode == 0, made.stderr
    simulate_photos(tmp_path / "printouts", tmp_path / "photos", seed=2)
    ingest(tmp_path / "photos", printouts=tmp_path / "printouts", out=tmp_path / "captures")
    # Batches of 4 images: 15 digital images in 4 batches, 2 processes take 2 each.
    # The artificial sweeps too: whole (transform, strength) steps are shared out.
    common = ["report", "--simulated", "typical", "--batch-size", "4", "--model", "demo+randomize"]
    one = _run(common + ["--out", "r1"], tmp_path)
    assert one.returncode == 0, one.stderr
    two = _run(common + ["--out", "r2"], tmp_path, procs=2)
    assert two.returncode == 0, two.stderr
    for name in ("figures.csv", "predictions.csv", "robust.csv", "artificial.csv"):
        assert (tmp_path / "r1" / name).read_text() == (tmp_path / "r2" / name).read_text(), name
    assert "simulated:typical" in (tmp_path / "r1" / "figures.csv").read_text()
