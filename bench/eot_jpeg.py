"""Benchmark: does Kornia's differentiable JPEG in EoT's backward pass make sturdier examples?

    python bench/eot_jpeg.py                    # 100 pictures, seed 3, K = 8: the findings' table

EoT (``attacks.eot``) through ``typical`` (K = 8, the paper's steps) on 100 CIFAR-10 test
pictures (seed 3) at eps 8 and 16, once with the channel's JPEG straight through (the
default) and once with Kornia's differentiable JPEG giving the backward pass its gradient
(``apply_channel(..., jpeg_grad="kornia")``; the forward value is the real codec's either
way). Printed: digital accuracy, and the fraction of the images the model gets right and
the attack fools digitally that fresh draws of ``typical`` and ``harsh`` (seed 11) destroy.
Needs ``../shared/data/cifar10``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100, help="CIFAR-10 test pictures")
    ap.add_argument("--seed", type=int, default=3, help="which pictures")
    ap.add_argument("--samples", type=int, default=8, help="EoT's K")
    args = ap.parse_args()
    import torch

    from physical.attacks import basic_iterative, eot
    from physical.channel.pipeline import apply_channel, simulate
    from physical.models import load_model, quantize_8bit
    from physical.sheets.pictures import load_pictures

    if not SHARED.is_dir():
        sys.exit(f"needs {SHARED} (CIFAR-10)")
    eot_module = importlib.import_module("physical.attacks.eot")
    model = load_model("demo", device="cpu")
    pics, _ = load_pictures(model, images=SHARED / "test", count=args.count, seed=args.seed)
    x = torch.stack([p.image for p in pics])
    y = torch.tensor([p.label for p in pics])

    def report(xa: torch.Tensor, name: str) -> None:
        with torch.no_grad():
            ok = model(x).argmax(1) == y
            pred = model(xa).argmax(1)
            fooled = ok & (pred != y)
            out = [f"{name}: digital accuracy {100 * (pred == y).float().mean():.0f}%"]
            for ch in ("typical", "harsh"):
                back = model(simulate(xa, ch, seed=11)).argmax(1) == y
                out.append(f"destroyed under {ch} {100 * (back & fooled).sum().item() / max(1, fooled.sum().item()):.0f}%"
                           f" (n={fooled.sum().item()})")
        print(" | ".join(out), flush=True)

    for eps in (8, 16):
        report(quantize_8bit(basic_iterative(model, x, y, eps / 255)), f"eps {eps} bim")
        for grad in ("identity", "kornia"):
            # The only difference between the two runs: which gradient the JPEG step passes back.
            eot_module.apply_channel = lambda imgs, p, differentiable=True, _g=grad: apply_channel(
                imgs, p, differentiable=True, jpeg_grad=_g)
            t = time.perf_counter()
            adv = eot(model, x, y, eps / 255, "typical", samples=args.samples)
            report(quantize_8bit(adv), f"eps {eps} eot, JPEG gradient {grad} ({time.perf_counter() - t:.0f} s)")
    eot_module.apply_channel = apply_channel


if __name__ == "__main__":
    main()
