#!/usr/bin/env python
"""Benchmark: robust accuracy of the demo models under AutoAttack (L-inf), beside clean accuracy.

    python bench/robust.py                                   # demo, on 500 CIFAR-10 test pictures
    python bench/robust.py --model demo --model build/demo_adv.safetensors --count 500 --device cuda

For each model: top-1 accuracy on ``--count`` CIFAR-10 test pictures (a seeded
random sample of ``../shared/data/cifar10/test``), and on the same pictures
under FGSM, PGD-20 (steps of eps / 4, random start) and torchattacks' AutoAttack
(standard version: APGD-CE, APGD-T, FAB-T, Square; L-inf, ``--eps`` levels of
255, seed 0), each with a Wilson 95 % interval. ``--model`` takes ``demo`` or a
weights file written by ``scripts/train_demo.py`` (a ResNet-20 of the width its
metadata names), ``demo-adv``, ``demo-distilled`` or ``robustbench:<name>``.

``--masking`` adds the gradient-masking check of defensive distillation (Carlini
and Wagner 2017): among the pictures each model classifies right, how often this
tool's own attacks succeed (the picture misclassified after the attack): the
fast method and the basic iterative method at ``--eps`` (cross-entropy
gradients, which vanish when the softmax saturates) beside Carlini-Wagner L2 on
the logits (unbounded: success means any misclassification), with the mean L2 of
its successes. Prints a markdown table; ``--out FILE`` also writes it as JSON.
Needs torchattacks (the ``test`` extra) and ``../shared/data/cifar10``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from physical.models import Classifier, load_model, sha256_file  # noqa: E402
from physical.models.demo_net import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, ResNet20  # noqa: E402


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def pictures(root: Path, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    files = [(f, label) for label, name in enumerate(CIFAR10_CLASSES) for f in sorted((root / name).iterdir())]
    pick = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    xs, ys = [], []
    for i in sorted(pick):
        f, label = files[i]
        with Image.open(f) as im:
            xs.append(np.asarray(im.convert("RGB"), np.uint8))
        ys.append(label)
    # Contiguous NCHW: FAB (in AutoAttack) views its input gradients, which take the input's strides.
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous().float() / 255
    return x, torch.tensor(ys)


def model_from(spec: str, device: str) -> Classifier:
    if not spec.endswith(".safetensors"):
        return load_model(spec, device=device).eval()
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(spec, "pt") as f:
        width = int((f.metadata() or {}).get("width", 16))
    net = ResNet20(width=width)
    net.load_state_dict(load_file(spec))
    return Classifier(net, model_id=Path(spec).stem, class_names=CIFAR10_CLASSES, input_size=(32, 32),
                      resize_size=32, mean=CIFAR10_MEAN, std=CIFAR10_STD, weights_sha256=sha256_file(spec),
                      interpolation="bilinear").to(device).eval()


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 250) -> int:
    with torch.no_grad():
        return sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))


def masking(model: Classifier, x: torch.Tensor, y: torch.Tensor, eps: float, batch: int = 250) -> dict:
    """Success counts of the tool's fast, bim and cw on the pictures the model gets right."""
    from physical.attacks import basic_iterative, cw, fast

    with torch.no_grad():
        right = torch.cat([model(x[i:i + batch]).argmax(1) == y[i:i + batch] for i in range(0, len(x), batch)])
    xr, yr = x[right], y[right]
    out: dict = {"right": int(right.sum())}
    for name, attack in (("fast", lambda a, b: fast(model, a, b, eps)),
                         ("bim", lambda a, b: basic_iterative(model, a, b, eps)),
                         ("cw", lambda a, b: cw(model, a, b))):
        t = time.perf_counter()
        adv = torch.cat([attack(xr[i:i + batch], yr[i:i + batch]) for i in range(0, len(xr), batch)])
        with torch.no_grad():
            fooled = torch.cat([model(adv[i:i + batch]).argmax(1) != yr[i:i + batch]
                                for i in range(0, len(adv), batch)])
        out[f"{name}_success"] = int(fooled.sum())
        out[f"{name}_s"] = round(time.perf_counter() - t, 1)
        if name == "cw":
            l2 = (adv - xr).flatten(1).norm(dim=1)[fooled] * 255
            out["cw_l2"] = round(float(l2.mean()), 1) if len(l2) else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="demo or a weights file; repeatable")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "cifar10")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eps", type=float, default=8.0, help="L-inf eps in levels of 255")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--skip-autoattack", action="store_true", help="FGSM and PGD only (quick)")
    ap.add_argument("--masking", action="store_true",
                    help="also the success rates of fast, bim (at --eps) and cw (logits) on the right pictures")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import torchattacks

    eps = args.eps / 255
    x, y = pictures(args.data / "test", args.count, args.seed)
    x, y = x.to(args.device), y.to(args.device)
    rows = []
    for spec in args.model or ["demo"]:
        model = model_from(spec, args.device)
        row = {"model": spec, "n": len(x), "eps": args.eps, "clean": accuracy(model, x, y)}
        attacks = {"fgsm": torchattacks.FGSM(model, eps=eps),
                   "pgd20": torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=20, random_start=True)}
        if not args.skip_autoattack:
            attacks["autoattack"] = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard",
                                                            n_classes=10, seed=0)
        for name, attack in attacks.items():
            torch.manual_seed(0)
            t = time.perf_counter()
            adv = torch.cat([attack(x[i:i + 250], y[i:i + 250]) for i in range(0, len(x), 250)])
            assert float((adv - x).abs().max()) <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
            row[name] = accuracy(model, adv, y)
            row[f"{name}_s"] = round(time.perf_counter() - t, 1)
        if args.masking:
            row.update(masking(model, x, y, eps))
        rows.append(row)
        print(json.dumps(row), flush=True)
    keys = ["clean", "fgsm", "pgd20"] + ([] if args.skip_autoattack else ["autoattack"])
    print(f"\n{args.count} CIFAR-10 test pictures (seed {args.seed}), L-inf eps {args.eps:g}/255, "
          f"top-1 accuracy in % [Wilson 95 %]:\n")
    print("| model | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for r in rows:
        cells = [f"{100 * r[k] / r['n']:.1f} [{100 * wilson(r[k], r['n'])[0]:.0f}, {100 * wilson(r[k], r['n'])[1]:.0f}]"
                 for k in keys]
        print(f"| {r['model']} | " + " | ".join(cells) + " |")
    if args.masking:
        print(f"\nAttack success on the pictures each model gets right (fast and bim at eps {args.eps:g}; cw on the "
              "logits, unbounded), % [Wilson 95 %]:\n")
        print("| model | right | fast | bim | cw | cw mean L2 (0-255) |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            cells = [f"{100 * r[k] / r['right']:.1f} [{100 * wilson(r[k], r['right'])[0]:.0f}, "
                     f"{100 * wilson(r[k], r['right'])[1]:.0f}]" for k in ("fast_success", "bim_success", "cw_success")]
            print(f"| {r['model']} | {r['right']} | " + " | ".join(cells) + f" | {r['cw_l2']} |")
    if args.out:
        args.out.write_text(json.dumps({"eps": args.eps, "count": args.count, "seed": args.seed, "rows": rows},
                                       indent=1) + "\n")


if __name__ == "__main__":
    main()
