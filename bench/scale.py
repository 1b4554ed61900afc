"""Benchmark: make-sheets at scale, under torchrun and with a printed sample.

    python bench/scale.py speedup                        # 1 vs 2 processes on the same 64 pictures
    python bench/scale.py memory --counts 1000,10000     # peak RSS of --print-count 50 as pictures grow
    python bench/scale.py batches --count 32             # what changes across --batch-size
    python bench/scale.py costs --count 16               # model passes and seconds per picture, per method

``speedup``: ``torchrun --standalone --nproc-per-node P -m physical make-sheets`` on
``--count`` CIFAR-10 test pictures (``--methods``, default the paper's three at every
eps; ``--batch-size`` 16) with one thread per process (``OMP_NUM_THREADS=1``), for
P = 1 and P = 2, each ``--repeats`` times; wall-clock seconds (the whole command:
start-up, model load, attack, PDF) and the ratio 2 : 1. On a machine with 2 cores the
target is at most 0.7. The two runs' PNGs are compared byte for byte.

``memory``: ``physical make-sheets --count N --print-count 50`` (one process, one
thread) for each N in ``--counts``; the peak resident memory of the process
(``ru_maxrss`` of the child) and the wall-clock time. Memory flat in N is the target.

``batches``: make-sheets on the same ``--count`` pictures with ``--batch-size`` 1 and
``--batch-size-b`` (default 16), methods ``--methods`` (try ``fast,bim,ll,pgd,eot``); for
each variant, how many PNGs, pixels (any channel) and channel values differ and by how
many levels at most: what float reduction order alone changes (every random draw is
seeded per picture, so nothing else may).

``costs``: for each method alone (``--cost-methods``; at one eps, 8), make-sheets on
``--count`` pictures in this process (demo model, ``--device``), counting the images the
model processes with and without gradients: model passes per picture (forward+backward,
and forward only), which carry over to any model, and seconds per picture on this
machine. Defaults of each method (README, make-sheets).

Needs ``../shared/data/cifar10``. Prints a table; ``--out FILE`` also writes JSON.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST = REPO.parent / "shared" / "data" / "cifar10" / "test"


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}


def _run(cmd: list[str]) -> tuple[float, int]:
    """Run ``cmd``; (wall seconds, peak RSS in MiB of the largest child so far)."""
    t = time.perf_counter()
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted((folder / "images").glob("*.png")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def speedup(cfg: argparse.Namespace, work: Path) -> dict:
    rows = []
    digests = {}
    for procs in (1, 2):
        times = []
        for r in range(cfg.repeats):
            out = work / f"p{procs}"
            shutil.rmtree(out, ignore_errors=True)
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
                   "-m", "physical", "make-sheets", "--images", str(TEST), "--count", str(cfg.count),
                   "--methods", cfg.methods, "--batch-size", str(cfg.batch_size), "--device", "cpu",
                   "--out", str(out)]
            times.append(_run(cmd)[0])
            digests[procs] = _digest(out)
        rows.append({"processes": procs, "seconds": min(times), "all": [round(t, 2) for t in times]})
        print(f"{procs} process{'es' if procs > 1 else ''}: {min(times):.1f} s (best of {cfg.repeats}: "
              f"{', '.join(f'{t:.1f}' for t in times)})", flush=True)
    ratio = rows[1]["seconds"] / rows[0]["seconds"]
    print(f"2 : 1 = {ratio:.2f} (target <= 0.70); PNGs {'identical' if digests[1] == digests[2] else 'DIFFER'}")
    return {"rows": rows, "ratio": ratio, "pngs_identical": digests[1] == digests[2]}


def memory(cfg: argparse.Namespace, work: Path) -> dict:
    rows = []
    for n in [int(c) for c in cfg.counts.split(",")]:
        out = work / f"n{n}"
        shutil.rmtree(out, ignore_errors=True)
        # A fresh interpreter per size: ru_maxrss of the children is a running maximum.
        probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
                 "r = subprocess.run(sys.argv[1:]); "
                 "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
                 "sys.exit(r.returncode)")
        cmd = [sys.executable, "-c", probe, sys.executable, "-m", "physical", "make-sheets", "--images", str(TEST),
               "--count", str(n), "--print-count", str(cfg.print_count), "--methods", cfg.methods,
               "--batch-size", str(cfg.batch_size), "--device", "cpu", "--out", str(out)]
        done = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"failed at --count {n}:\n{done.stderr[-3000:]}")
        wall, rss_kib = done.stdout.strip().splitlines()[-1].split()
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        npz = (out / "digital.npz").stat().st_size
        row = {"count": n, "print_count": cfg.print_count, "seconds": round(float(wall), 1),
               "peak_rss_mib": int(rss_kib) // 1024, "printouts_mib": round(size / 2**20, 2),
               "digital_npz_mib": round(npz / 2**20, 2)}
        rows.append(row)
        print(f"--count {n:>6} --print-count {cfg.print_count}: {row['seconds']:.0f} s, peak RSS "
              f"{row['peak_rss_mib']} MiB, printouts/ {row['printouts_mib']} MiB (digital.npz "
              f"{row['digital_npz_mib']} MiB)", flush=True)
    return {"rows": rows}


def batches(cfg: argparse.Namespace, work: Path) -> dict:
    import numpy as np
    from PIL import Image

    outs = {}
    for b in (1, cfg.batch_size_b):
        out = work / f"b{b}"
        shutil.rmtree(out, ignore_errors=True)
        _run([sys.executable, "-m", "physical", "make-sheets", "--images", str(TEST), "--count", str(cfg.count),
              "--methods", cfg.methods, "--batch-size", str(b), "--device", "cpu", "--out", str(out)])
        outs[b] = out
    a, b = outs.values()
    per: dict[str, dict] = {}
    for f in sorted((a / "images").glob("*.png")):
        variant = f.stem.split("_", 1)[1]
        x = np.asarray(Image.open(f), dtype=np.int16)
        y = np.asarray(Image.open(b / "images" / f.name), dtype=np.int16)
        d = np.abs(x - y)
        row = per.setdefault(variant, {"pngs": 0, "pngs_differ": 0, "pixels": 0, "pixels_differ": 0,
                                       "values_differ": 0, "max_levels": 0})
        row["pngs"] += 1
        row["pngs_differ"] += int(d.any())
        row["pixels"] += d.shape[0] * d.shape[1]
        row["pixels_differ"] += int(d.any(axis=2).sum())
        row["values_differ"] += int((d > 0).sum())
        row["max_levels"] = max(row["max_levels"], int(d.max()))
    for variant, row in per.items():
        print(f"{variant:>12}: {row['pngs_differ']}/{row['pngs']} PNGs differ, {row['pixels_differ']}/"
              f"{row['pixels']} pixels, at most {row['max_levels']} levels")
    return {"batch_sizes": [1, cfg.batch_size_b], "variants": per}


def costs(cfg: argparse.Namespace, work: Path) -> dict:
    import torch

    sys.path.insert(0, str(REPO))
    from physical.models import load_model
    from physical.sheets.run import make_sheets

    model = load_model("demo", device=cfg.device)
    seen = {"grad": 0, "nograd": 0}

    def count(module, inputs, output) -> None:
        seen["grad" if torch.is_grad_enabled() else "nograd"] += inputs[0].shape[0]

    model.net.register_forward_hook(count)
    rows = []
    for method in cfg.cost_methods.split(","):
        seen.update(grad=0, nograd=0)
        out = work / f"cost-{method}"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        make_sheets(out, model=model, images=TEST, count=cfg.count, methods=[method], eps=[8],
                    batch_size=cfg.batch_size, device=cfg.device)
        wall = time.perf_counter() - t
        row = {"method": method, "pictures": cfg.count, "seconds_per_picture": round(wall / cfg.count, 3),
               "grad_passes_per_picture": round(seen["grad"] / cfg.count, 1),
               "forward_only_per_picture": round(seen["nograd"] / cfg.count, 1)}
        rows.append(row)
        print(f"{method:>9}: {row['grad_passes_per_picture']:>8} forward+backward, {row['forward_only_per_picture']:>8} "
              f"forward only per picture; {row['seconds_per_picture']:.3f} s per picture", flush=True)
    return {"device": cfg.device, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("speedup", "memory", "batches", "costs"))
    ap.add_argument("--count", type=int, default=64, help="speedup: pictures")
    ap.add_argument("--counts", default="1000,10000", help="memory: picture counts, comma-separated")
    ap.add_argument("--print-count", type=int, default=50)
    ap.add_argument("--methods", default="fast,bim,ll")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--batch-size-b", type=int, default=16, help="batches: the batch size compared with 1")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cost-methods", default="fast,bim,ll,pgd,eot,cw,lbfgs,onepixel")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", type=Path, default=None, help="folder for the printouts (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    cfg = ap.parse_args()
    if not TEST.is_dir():
        sys.exit(f"needs {TEST}")
    with tempfile.TemporaryDirectory() as tmp:
        work = cfg.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = {"what": cfg.what, "args": {k: str(v) for k, v in vars(cfg).items()}, "cpus": os.cpu_count(),
                  **{"speedup": speedup, "memory": memory, "batches": batches, "costs": costs}[cfg.what](cfg, work)}
    if cfg.out:
        cfg.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
