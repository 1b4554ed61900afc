#!/usr/bin/env python
"""Every GPU-side measurement in one go: one JSON, one table, well under 8 minutes on one GPU.

    python bench/gpu.py --out DIR                      # on a CUDA machine (default --device cuda)
    python bench/gpu.py --out DIR --dry-run            # every section at tiny sizes on the CPU (CI runs it)

Sections, each timed, each in its own try/except (an error is recorded and the
next section runs), skipped once --budget-s seconds have gone:

1. ``channel``: images/s of ``physical.channel.simulate`` (preset typical) at
   32 and 299 px, batches of 64 and 512, without gradient and with
   ``differentiable=True`` (forward + backward of the output's sum), with the
   real codec (``jpeg="codec"``: nvJPEG on a GPU) and Kornia's JPEG
   (``jpeg="kornia"``). Median (and best) of --repeats after a warm-up.
2. ``models``: ``torchvision:inception_v3`` (299 px) and ``resnet50`` (224 px)
   with random weights (nothing is downloaded), built and wrapped in
   ``Classifier`` as ``physical.models.loaders`` does; one bare forward +
   backward pass of --batch images.
3. ``attacks``: ``attack_grid`` (fast, bim, ll at eps 2, 4, 8, 16) against the
   bare need of 47 forward + backward passes (bench/attacks.py's count), and one
   EoT step (``attacks.eot``, K channel draws, typical preset) against K bare
   passes (as one batch of K x batch, and as K separate passes). fp32, as the
   project runs (no AMP); cuDNN's default TF32 convolutions are left as they are.
4. ``demo``: ``physical demo`` end to end (``physical.demo.run_demo``, models on
   --device), its wall time, and whether CUDA was used (peak CUDA memory > 0).
5. ``cuda_tests``: the tests that skip without a CUDA device, through pytest.

Writes DIR/gpu.json (rewritten after every section, so a killed run keeps what
it measured) and DIR/gpu.txt (the printed tables). Times use
``torch.cuda.synchronize`` around ``time.perf_counter``. The helpers of
bench/channel.py (``pictures``, ``timings``) and bench/attacks.py (``timed``,
``EPS``) are reused. Results of a GPU run go in docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BARE_NEED = 47   # bare gradient passes of the paper's grid (bench/attacks.py): 1 fast + 23 bim + 23 ll
MODELS = ("inception_v3", "resnet50")


def bench_module(name: str):
    """bench/<name>.py imported as a module (for its helpers; its main() does not run)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def environment(device: str) -> dict:
    env = {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cuda_available": torch.cuda.is_available(), "device": device, "dtype": "float32 (no AMP)",
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
           "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
           "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   gpu_capability=f"{props.major}.{props.minor}", gpu_count=torch.cuda.device_count())
    for mod in ("torchvision", "kornia", "numpy", "cv2", "albumentations"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception as exc:   # a missing package is a fact of the environment, not an error
            env[mod] = f"unavailable ({type(exc).__name__})"
    try:
        env["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                           text=True, timeout=10).stdout.strip() or None
    except Exception:
        env["git_commit"] = None
    return env


# ------------------------------------------------------------------ sections

def channel_section(cfg: argparse.Namespace, ctx: dict) -> list[dict]:
    bc = bench_module("channel")
    rows = []
    for size in cfg.sizes:
        for batch in cfg.channel_batches:
            if time.perf_counter() > ctx["deadline"]:
                rows.append({"size": size, "batch": batch, "what": "skipped (budget)"})
                continue
            try:
                rows += channel_rows(bc, size, batch, cfg)
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory at one size: record, go on
                rows.append({"size": size, "batch": batch, "what": error_text(exc)})
                print(f"  channel {size}px batch {batch}: {rows[-1]['what']}", flush=True)
            free(cfg.device)
    return rows


def channel_rows(bc, size: int, batch: int, cfg: argparse.Namespace) -> list[dict]:
    from physical import channel

    x = bc.pictures(batch, size).to(cfg.device)
    seed = iter(range(10**9))

    def run(jpeg: str, grad: bool) -> None:
        if grad:
            xr = x.detach().requires_grad_(True)
            channel.simulate(xr, "typical", next(seed), differentiable=True, jpeg=jpeg).sum().backward()
        else:
            with torch.no_grad():
                channel.simulate(x, "typical", next(seed), jpeg=jpeg)

    fns = {(jpeg, grad): (lambda j=jpeg, g=grad: run(j, g)) for jpeg in ("codec", "kornia") for grad in (False, True)}
    rows = []
    for (jpeg, grad), (best, median) in bc.timings(fns, cfg.repeats, cfg.device).items():
        what = "fwd+bwd (differentiable)" if grad else "no grad"
        rows.append({"size": size, "batch": batch, "jpeg": jpeg, "what": what,
                     "img_per_s": round(batch / median, 1), "img_per_s_best": round(batch / best, 1),
                     "ms_median": round(1000 * median, 2), "ms_best": round(1000 * best, 2)})
        print(f"  channel {size}px batch {batch} jpeg={jpeg} {rows[-1]['what']}: {rows[-1]['img_per_s']:,} img/s "
              f"({rows[-1]['ms_median']} ms)", flush=True)
    return rows


def build_model(name: str, device: str):
    """A torchvision classifier with random weights, wrapped as physical.models.loaders wraps it."""
    import torchvision

    from physical.models import Classifier, imagenet_wnids
    from physical.models.loaders import _PRETRAINED_KWARGS

    enum = torchvision.models.get_model_weights(name).DEFAULT
    t = enum.transforms()
    net = torchvision.models.get_model(name, weights=None, num_classes=len(enum.meta["categories"]),
                                       **_PRETRAINED_KWARGS.get(name, {}))
    model = Classifier(net, model_id=f"torchvision:{name} (random weights)", class_names=enum.meta["categories"],
                       input_size=(t.crop_size[0], t.crop_size[0]), resize_size=t.resize_size[0], mean=t.mean,
                       std=t.std, weights_sha256="-", interpolation=t.interpolation.value, wnids=imagenet_wnids())
    return model.to(device).eval()


def models_section(cfg: argparse.Namespace, ctx: dict) -> list[dict]:
    ba = bench_module("attacks")
    ctx["timed"], ctx["eps"], ctx["models"] = ba.timed, ba.EPS, {}
    rows = []
    for name in MODELS:
        try:
            rows.append(model_row(cfg, ctx, name))
        except Exception as exc:  # noqa: BLE001 - record, go on to the next model
            rows.append({"model": name, "input": error_text(exc)})
        print(f"  {name}: {rows[-1]}", flush=True)
    return rows


def model_row(cfg: argparse.Namespace, ctx: dict, name: str) -> dict:
    from physical.attacks import input_gradient

    t0 = time.perf_counter()
    model = build_model(name, cfg.device)
    build_s = time.perf_counter() - t0
    size = cfg.image_size or model.input_size[0]
    gen = torch.Generator().manual_seed(0)
    x = torch.round(torch.rand(cfg.batch, 3, size, size, generator=gen) * 255).div(255).to(cfg.device)
    with torch.no_grad():
        y = model(x).argmax(1)
    t_pass = ctx["timed"](lambda: input_gradient(model, x, y), 3 * cfg.repeats)
    ctx["models"][name] = (model, x, y, t_pass)
    return {"model": name, "input": f"{cfg.batch}x3x{size}x{size}",
            "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1), "build_s": round(build_s, 2),
            "pass_ms": round(1000 * t_pass, 2), "img_per_s_fwd_bwd": round(cfg.batch / t_pass, 1)}


def attacks_section(cfg: argparse.Namespace, ctx: dict) -> list[dict]:
    if not ctx.get("models"):
        raise RuntimeError("no models: the models section did not run or failed")
    try:
        return attack_rows(cfg, ctx)
    finally:
        ctx.pop("models", None)   # the models' memory goes back before the demo
        free(cfg.device)


def attack_rows(cfg: argparse.Namespace, ctx: dict) -> list[dict]:
    rows = []
    for name, (model, x, y, t_pass) in ctx["models"].items():
        if time.perf_counter() > ctx["deadline"]:
            rows.append({"model": name, "what": "skipped (budget)"})
            continue
        try:
            rows += model_attack_rows(cfg, ctx, name, model, x, y, t_pass)
        except Exception as exc:  # noqa: BLE001 - record, go on to the next model
            rows.append({"model": name, "what": error_text(exc)})
            print(f"  {name}: {rows[-1]['what']}", flush=True)
        free(cfg.device)
    return rows


def model_attack_rows(cfg: argparse.Namespace, ctx: dict, name: str, model, x, y, t_pass: float) -> list[dict]:
    from physical.attacks import attack_grid, eot, input_gradient

    timed, rows = ctx["timed"], []
    t_grid = timed(lambda: attack_grid(model, x, y, ctx["eps"]), cfg.repeats)
    rows.append({"model": name, "what": "attack_grid (fast, bim, ll; eps 2,4,8,16)", "seconds": round(t_grid, 4),
                 "baseline": f"{BARE_NEED} bare passes", "baseline_s": round(BARE_NEED * t_pass, 4),
                 "ratio": round(t_grid / (BARE_NEED * t_pass), 3)})
    print(f"  {name}: attack_grid {t_grid:.3f} s vs {BARE_NEED} bare passes {BARE_NEED * t_pass:.3f} s "
          f"({rows[-1]['ratio']}x)", flush=True)
    k = cfg.eot_samples
    xk, yk = x.repeat(k, 1, 1, 1), y.repeat(k)
    t_bare = timed(lambda: input_gradient(model, xk, yk), cfg.repeats)
    del xk, yk
    t_eot = timed(lambda: eot(model, x, y, 8 / 255, "typical", k, steps=1, seed=0), cfg.repeats)
    what = f"EoT step (K={k}, typical, channel + model, fwd+bwd)"
    rows.append({"model": name, "what": what, "seconds": round(t_eot, 4),
                 "baseline": f"K bare passes as one batch of {k * len(x)}", "baseline_s": round(t_bare, 4),
                 "ratio": round(t_eot / t_bare, 3)})
    rows.append({"model": name, "what": what, "seconds": round(t_eot, 4),
                 "baseline": f"K separate bare passes of {len(x)}", "baseline_s": round(k * t_pass, 4),
                 "ratio": round(t_eot / (k * t_pass), 3)})
    print(f"  {name}: EoT step {t_eot:.3f} s vs K bare passes as one batch {t_bare:.3f} s "
          f"({rows[-2]['ratio']}x), K separate {k * t_pass:.3f} s ({rows[-1]['ratio']}x)", flush=True)
    return rows


def demo_section(cfg: argparse.Namespace, ctx: dict) -> list[dict]:
    from physical.demo import run_demo

    cuda = cfg.device.startswith("cuda")
    before = torch.cuda.memory_allocated() if cuda else 0
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    stages: dict[str, float] = {}
    t0 = time.perf_counter()

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in stages:
            stages[stage] = round(time.perf_counter() - t0, 2)
            print(f"  demo: {stage} starts at {stages[stage]} s", flush=True)

    with tempfile.TemporaryDirectory(prefix="physical-demo-") as tmp:
        r = run_demo(Path(tmp) / "demo", device=cfg.device, progress=progress, warn=lambda m: None)
        wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() - before if cuda else 0
    photo = [f for f in r.report.figures if f["source"] == "photo" and f["table"] == "destruction"
             and f["case"] == "average" and f["metric"] == "top1"]
    row = {"device": cfg.device, "seconds": round(wall, 2), "used_cuda": peak > 0,
           "cuda_peak_mib": round(peak / 2**20, 1), "pictures": len(r.sheets.manifest["images"]),
           "pages": r.sheets.n_pages, "photos": len(r.photos), "ingested": len(r.ingest.ingested),
           "crops": r.ingest.crops_total, "stage_starts_s": stages,
           "photo_destruction_top1_avg": {f["attack"]: f"{100 * f['value']:.0f}% (n={f['n']})" for f in photo}}
    print(f"  demo: {wall:.1f} s on {cfg.device}, used CUDA: {row['used_cuda']}, {row['crops']} crops, "
          f"photo destruction rates (top-1, average): {row['photo_destruction_top1_avg']}", flush=True)
    return [row]


def cuda_test_ids() -> list[str]:
    """Tests decorated with a skipif on CUDA's availability, or with cuda/gpu in their name."""
    ids = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        text = path.read_text()
        pattern = r"(@pytest\.mark\.skipif\([^\n]*cuda[^\n]*\)\s*\n(?:@[^\n]*\n)*)?def (test_\w+)"
        for m in re.finditer(pattern, text):
            if m.group(1) or re.search(r"cuda|gpu", m.group(2)):
                ids.append(f"tests/{path.name}::{m.group(2)}")
    return ids


def cuda_tests_section(cfg: argparse.Namespace, ctx: dict) -> list[dict]:
    ids = cuda_test_ids()
    if not ids:
        return [{"tests": 0, "result": "no CUDA tests found"}]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    timeout = max(30, ctx["deadline"] - time.perf_counter())
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *ids], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=timeout)
    out = (p.stdout + p.stderr).strip()
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)",
                                                 out.splitlines()[-1] if out else "")}
    print(f"  pytest {len(ids)} CUDA tests: rc {p.returncode}, {counts}", flush=True)
    return [{"tests": ", ".join(i.split("::")[1] for i in ids), "returncode": p.returncode, **counts,
             "seconds": round(time.perf_counter() - t0, 2), "output_tail": out[-1500:]}]


SECTIONS = {"channel": channel_section, "models": models_section, "attacks": attacks_section,
            "demo": demo_section, "cuda_tests": cuda_tests_section}


# ------------------------------------------------------------------ plumbing

def error_text(exc: Exception) -> str:
    return f"error: {type(exc).__name__}: {str(exc).strip()[:300]}"


def free(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def table(rows: list[dict]) -> str:
    """A markdown table of flat rows (nested values and long text left to the JSON)."""
    rows = [{k: v for k, v in r.items() if not isinstance(v, (dict, list)) and k != "output_tail"} for r in rows]
    cols = list(dict.fromkeys(k for r in rows for k in r))
    if not cols:
        return ""
    fmt = lambda v: f"{v:,}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def report(result: dict) -> str:
    env = result["env"]
    head = (f"bench/gpu.py on {env.get('gpu', env['device'])}: torch {env['torch']}, CUDA {env['cuda']}, "
            f"cuDNN {env['cudnn']}, {env['cpu_count']} CPUs, {env['dtype']}; total {result.get('total_s')} s "
            f"(budget {result['args']['budget_s']} s)")
    parts = [head]
    for name, sec in result["sections"].items():
        parts.append(f"\n## {name}: {sec['status']}, {sec.get('wall_s', 0)} s")
        if sec.get("error"):
            parts.append("error: " + sec["error"].strip().splitlines()[-1])
        if sec.get("rows"):
            parts.append(table(sec["rows"]))
        for row in sec.get("rows") or []:   # what does not fit a table: nested figures, a failing test's output
            parts += [f"{k}: {json.dumps(v)}" for k, v in row.items() if isinstance(v, (dict, list))]
            if row.get("returncode"):
                parts.append(row["output_tail"])
    return "\n".join(parts) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for gpu.json and gpu.txt")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a dry run of every section (CPU, minutes)")
    ap.add_argument("--dry-run", action="store_true", help="--quick on the CPU (what CI runs, so the script cannot rot)")
    ap.add_argument("--budget-s", type=float, default=420, help="sections not started by then are skipped")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {','.join(SECTIONS)}")
    ap.add_argument("--repeats", type=int, default=None)
    cfg = ap.parse_args()
    if cfg.dry_run:
        cfg.quick, cfg.device = True, "cpu"
    warnings.filterwarnings("ignore")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    torch.manual_seed(0)
    q = cfg.quick
    cfg.repeats = cfg.repeats or (1 if q else 5)
    if q and cfg.device == "cpu":
        torch.set_num_threads(1)   # a dry run: spinning OpenMP teams crawl on a shared, busy machine
    cfg.sizes = (32, 299)
    cfg.channel_batches = (4,) if q else (64, 512)
    cfg.batch = 2 if q else 32              # images per attack batch
    cfg.image_size = 96 if q else None      # None: the model's own input size
    cfg.eot_samples = 2 if q else 16
    cfg.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    ctx = {"deadline": t_start + cfg.budget_s}
    result = {"env": environment(cfg.device),
              "args": {"device": cfg.device, "quick": q, "budget_s": cfg.budget_s, "repeats": cfg.repeats,
                       "sizes": cfg.sizes, "channel_batches": cfg.channel_batches, "attack_batch": cfg.batch,
                       "eot_samples": cfg.eot_samples, "image_size": cfg.image_size or "model's own",
                       "argv": sys.argv},
              "sections": {}}
    print(json.dumps(result["env"]), flush=True)

    def save() -> None:
        result["total_s"] = round(time.perf_counter() - t_start, 1)
        (cfg.out / "gpu.json").write_text(json.dumps(result, indent=1, default=str))

    for name in [s.strip() for s in cfg.only.split(",") if s.strip()]:
        if time.perf_counter() > ctx["deadline"]:
            result["sections"][name] = {"status": "skipped", "reason": f"budget of {cfg.budget_s} s spent"}
            print(f"== {name}: skipped (budget)", flush=True)
            continue
        print(f"== {name} ({time.perf_counter() - t_start:.0f} s in)", flush=True)
        t0 = time.perf_counter()
        sec: dict = {"status": "ok"}
        try:
            sec["rows"] = SECTIONS[name](cfg, ctx)
            if any(str(v).startswith("error:") for r in sec["rows"] for v in r.values()):
                sec["status"] = "partial"   # some rows failed (their text says why), the others stand
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
            sec.update(status="error", error=traceback.format_exc()[-3000:])
            print(f"  ERROR in {name}: {type(exc).__name__}: {exc}", flush=True)
            free(cfg.device)
        sec["wall_s"] = round(time.perf_counter() - t0, 1)
        result["sections"][name] = sec
        save()
    save()
    text = report(result)
    (cfg.out / "gpu.txt").write_text(text)
    print("\n" + text, flush=True)


if __name__ == "__main__":
    main()
