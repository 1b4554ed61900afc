#!/usr/bin/env python
"""Benchmark: the whole method x eps grid of attacks, against its bare need and torchattacks.

    python bench/attacks.py                      # demo model, batch 64, 32x32
    python bench/attacks.py --model resnet50 --batch 8   # ImageNet-sized (random weights)
    python bench/attacks.py --eot-only --batch 16 --eot-samples 16   # only the EoT step

EoT (``attacks.eot``): one step (K channel draws of every image through the
channel and the model, forward and backward) against K bare forward+backward
passes of the same images (target: at most 1.2x, channel included).

For eps 2,4,8,16 (levels) with alpha = 1 level, torchattacks needs
4 (FGSM) + 37 (BIM) + 37 (least-likely) = 78 gradient passes. The bare need is
47: one gradient for every fast eps, and 23 distinct steps per iterative
method, because the trajectories of all eps coincide until their clip can
first bind. `physical.attacks.attack_grid` does 43 (it also reuses the shared
trajectory's gradient for the step where an eps branches off), with BIM and
least-likely batched together per step.

Reported: median seconds over --repeats runs of each, the time of one bare
forward+backward pass times 47, and the largest difference between the grid's
output and running each eps on its own (must be ~0).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from physical.attacks import (attack_grid, basic_iterative, eps_steps, fast, input_gradient,  # noqa: E402
                              least_likely, least_likely_class)
from physical.models import Classifier, load_model  # noqa: E402

EPS = [2 / 255, 4 / 255, 8 / 255, 16 / 255]


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, oneDNN kernels, CUDA context
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build(name: str, device: str) -> tuple[Classifier, int]:
    if name == "demo":
        return load_model("demo", device=device), 32
    import torchvision

    from physical.models import imagenet_wnids

    enum = torchvision.models.get_model_weights(name).DEFAULT
    t = enum.transforms()
    net = torchvision.models.get_model(name, weights=None, num_classes=1000)
    size = t.crop_size[0]
    model = Classifier(net, model_id=f"torchvision:{name} (random weights)", class_names=enum.meta["categories"],
                       input_size=(size, size), resize_size=t.resize_size[0], mean=t.mean, std=t.std,
                       weights_sha256="-", wnids=imagenet_wnids())
    return model.to(device), size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo", help="demo or a torchvision model name (random weights)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-torchattacks", action="store_true")
    p.add_argument("--eot-samples", type=int, default=16, help="K of the EoT step")
    p.add_argument("--eot-only", action="store_true", help="only time the EoT step")
    args = p.parse_args()

    torch.manual_seed(0)
    model, size = build(args.model, args.device)
    x = torch.rand(args.batch, 3, size, size, device=args.device)
    x = torch.round(x * 255) / 255
    with torch.no_grad():
        y = model(x).argmax(1)

    t_pass = timed(lambda: input_gradient(model, x, y), args.repeats * 3)
    eot_step(model, x, y, args.eot_samples, args.repeats, t_pass)
    if args.eot_only:
        return
    t_grid = timed(lambda: attack_grid(model, x, y, EPS), args.repeats)
    # The bare need as the issue counts it: 1 fast gradient + 23 distinct steps per iterative method.
    need = 47

    def per_eps() -> dict:
        out = {}
        for e in EPS:
            out[("fast", e)] = fast(model, x, y, e)
            out[("bim", e)] = basic_iterative(model, x, y, e)
            out[("ll", e)] = least_likely(model, x, e)
        return out

    grid = attack_grid(model, x, y, EPS)
    ref = per_eps()
    max_diff = max((grid[k] - ref[k]).abs().max().item() for k in ref)

    t_ta = None
    if not args.no_torchattacks:
        import torchattacks

        y_ll = least_likely_class(model, x)

        def torchattacks_grid() -> None:
            for e in EPS:
                torchattacks.FGSM(model, eps=e)(x, y)
                torchattacks.BIM(model, eps=e, alpha=1 / 255, steps=eps_steps(e))(x, y)
                ll = torchattacks.BIM(model, eps=e, alpha=1 / 255, steps=eps_steps(e))
                ll.set_mode_targeted_by_function(lambda images, labels: y_ll)
                ll(x, y)

        t_ta = timed(torchattacks_grid, max(1, args.repeats // 2))

    cpu = platform.processor() or platform.machine()
    print(f"model {model.model_id}, batch {args.batch} x 3x{size}x{size}, device {args.device} "
          f"({torch.get_num_threads()} threads, {cpu}), torch {torch.__version__}, median of {args.repeats}")
    print("| what | seconds | gradient passes | vs 47 bare passes |")
    print("|---|---|---|---|")
    print(f"| one bare forward+backward pass | {t_pass:.4f} | 1 | |")
    print(f"| 47 bare passes (the need) | {need * t_pass:.3f} | 47 | 1.00 |")
    print(f"| physical attack_grid | {t_grid:.3f} | 43 | {t_grid / (need * t_pass):.2f} |")
    if t_ta is not None:
        print(f"| torchattacks, each eps on its own | {t_ta:.3f} | 78 | {t_ta / (need * t_pass):.2f} |")
        print(f"speed-up over torchattacks: {t_ta / t_grid:.2f}x")
    print(f"max |grid - one eps at a time| = {max_diff:.2e}")


def eot_step(model: Classifier, x: torch.Tensor, y: torch.Tensor, k: int, repeats: int, t_pass: float) -> None:
    """One EoT step (K draws, channel + model, forward + backward, and the untransformed image's pass:
    ``attacks.eot`` with one step) against K bare passes of the same images."""
    from physical.attacks import eot

    xk = x.repeat(k, 1, 1, 1)
    t_bare = timed(lambda: input_gradient(model, xk, y.repeat(k)), repeats)
    t_eot = timed(lambda: eot(model, x, y, 8 / 255, "typical", k, steps=1, seed=0), repeats)
    print(f"EoT step, K={k}, {x.shape[0]} images of {x.shape[-1]} px on {x.device}: {t_eot:.3f} s; "
          f"K bare passes as one batch of {k * x.shape[0]}: {t_bare:.3f} s ({t_eot / t_bare:.2f}x); "
          f"K separate bare passes: {k * t_pass:.3f} s ({t_eot / (k * t_pass):.2f}x)")


if __name__ == "__main__":
    main()
