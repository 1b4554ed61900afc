#!/usr/bin/env python
"""Benchmark: the simulated print-and-photo channel against an albumentations loop.

    python bench/channel.py                  # CPU (and the GPU when there is one)
    python bench/channel.py --kornia-jpeg    # also Kornia's JPEG on the CPU (slow: seconds a batch)

Images per second through `physical.channel.simulate` (preset `typical`,
parameters drawn per call) for a batch of --batch images at 32x32 and
299x299: without gradient, and with ``differentiable=True`` (forward +
backward of the output's sum w.r.t. the input). Next to it, two
albumentations 2 `Compose` pipelines applied image by image to uint8 HWC
numpy arrays (what albumentations takes): the plain one does ColorJitter
(brightness, contrast, saturation), GaussianBlur, GaussNoise, Perspective and
ImageCompression; the matched one adds the channel's other steps (tone curve,
ink cast and white balance, paper white and ink black, light gradient; see
`albumentations_loop`). The inputs are the bundled demo pictures, resized to
the size (smooth, like photographs; JPEG is faster on smooth images than on
noise).

Each timing is the best and the median of --repeats runs, the channel and
albumentations taking turns, so that other load on the machine hits both
alike (the median also counts the runs where the memory allocator handed
back and took again the channel's memory). With a
CUDA device the channel is also timed there (batch --batch and 8x that,
synchronised), with Kornia's JPEG too: ``jpeg_grad="kornia"`` and the
approximate ``jpeg="kornia"`` (torchvision's nvJPEG encoder works one image
at a time). Last, the time of each step of the channel at the largest size.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from physical import channel
from physical.models import load_model
from physical.sheets.pictures import load_pictures


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timings(fns: dict[str, Callable[[], None]], repeats: int, device: str) -> dict[str, tuple[float, float]]:
    """(best, median) wall time of each function, the functions taking turns."""
    for fn in fns.values():   # warm-up: allocator, oneDNN kernels, CUDA context, codec
        fn()
    sync(device)
    runs: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            runs[k].append(time.perf_counter() - t0)
    return {k: (min(v), statistics.median(v)) for k, v in runs.items()}


def pictures(n: int, size: int) -> torch.Tensor:
    """n bundled pictures (repeated), bilinearly resized to size x size, on the 8-bit grid."""
    pics, _ = load_pictures(load_model("demo", device="cpu"))
    x = torch.stack([p.image for p in pics])
    x = x.repeat(-(-n // len(x)), 1, 1, 1)[:n]
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return torch.round(x.clamp(0, 1) * 255) / 255


def albumentations_loop(x: torch.Tensor, matched: bool = False) -> Callable[[], None]:
    """An albumentations 2 pipeline applied image by image to uint8 HWC arrays.

    The plain loop does five transforms (colour jitter, blur, noise,
    perspective, JPEG). ``matched=True`` adds the channel's other steps, each
    with albumentations' nearest transform: a gamma tone curve (RandomGamma),
    the ink cast and white balance (RGBShift), the paper's white and the ink's
    black (RandomToneCurve) and the gradient of light (Illumination, linear).
    """
    import albumentations as A

    images = [np.ascontiguousarray((im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for im in x]
    steps = [
        A.ColorJitter(brightness=(0.85, 1.05), contrast=(0.8, 1.0), saturation=(0.78, 0.93), hue=0.0, p=1),
        A.GaussianBlur(sigma_limit=(0.5, 1.6), p=1),
        A.GaussNoise(std_range=(0.004, 0.012), per_channel=False, p=1),
        A.Perspective(scale=(0.005, 0.015), p=1),
        A.ImageCompression(quality_range=(75, 95), p=1),
    ]
    if matched:
        steps[1:1] = [
            A.RandomGamma(gamma_limit=(95, 120), p=1),
            A.RGBShift(r_shift_limit=(-15, 15), g_shift_limit=(-8, 8), b_shift_limit=(-15, 15), p=1),
            A.RandomToneCurve(scale=0.05, p=1),
            A.Illumination(mode="linear", intensity_range=(0.01, 0.06), p=1),
        ]
    tf = A.Compose(steps, seed=0)

    def run() -> None:
        for im in images:
            tf(image=im)
    return run


def channel_fns(x: torch.Tensor, kornia_jpeg: bool) -> dict[str, Callable[[], None]]:
    seed = iter(range(10**9))

    def plain() -> None:
        channel.simulate(x, "typical", next(seed))

    def grad(jpeg_grad: str = "identity") -> None:
        xr = x.detach().requires_grad_(True)
        p = channel.sample_params(len(x), "typical", next(seed), device=x.device)
        channel.apply_channel(xr, p, differentiable=True, jpeg_grad=jpeg_grad).sum().backward()

    def approx() -> None:
        channel.simulate(x, "typical", next(seed), jpeg="kornia")

    fns = {"channel": plain, "channel, differentiable (fwd+bwd)": grad}
    if kornia_jpeg:
        fns["channel, differentiable, jpeg_grad=kornia (fwd+bwd)"] = lambda: grad("kornia")
        fns["channel, jpeg=kornia (approximate JPEG)"] = approx
    return fns


class StepClock:
    """Adds up the wall time of named steps: ``with clock("warp"): ...``."""

    def __init__(self, device: str) -> None:
        self.device, self.total, self.name, self.t0 = device, {}, "", 0.0

    def __call__(self, name: str) -> StepClock:
        self.name = name
        return self

    def __enter__(self) -> None:
        sync(self.device)
        self.t0 = time.perf_counter()

    def __exit__(self, *exc) -> None:
        sync(self.device)
        self.total[self.name] = self.total.get(self.name, 0.0) + time.perf_counter() - self.t0


def step_times(x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Seconds of each step of apply_channel's no-gradient path (codec JPEG), summed over
    its chunks as apply_channel runs them; best of ``repeats`` for each step."""
    p = channel.sample_params(len(x), "typical", 0, device=x.device)
    b, _, h, w = x.shape
    best: dict[str, float] = {}
    for i in range(repeats + 1):
        clock = StepClock(x.device.type)
        with torch.no_grad():
            sigma = channel.blur_sigma(p, w)
            r = channel.blur_radius(sigma)
            with clock("set-up (homographies, kernels)"):
                back = channel.sampling_matrices(p, h, w, r, x.dtype)
                kernels = channel.blur_kernels(sigma, r)
            step = channel.chunk_size(x, r)
            noise = torch.empty((min(step, b), 1, h, w), device=x.device)
            cpu = x.device.type == "cpu"
            u = torch.empty((min(step, b), h, w, 3) if cpu else (min(step, b), 3, h, w),
                            dtype=torch.uint8, device=x.device)
            out = torch.empty_like(x)
            for s in range(0, b, step):
                part = slice(s, s + step)
                q = {k: v[part] for k, v in p.items() if v.dim()}
                n = len(q["zoom"])
                with clock("warp"):
                    y = channel.warp(x[part], q, r, back[part])
                with clock("print and light"):
                    y = channel.print_and_light(y, q, channel.light_field(q, h, w, r), True)
                with clock("blur"):
                    y = channel.blur(y, kernels[part])
                with clock("noise field (random numbers)"):
                    nz = channel.noise_field(q["noise_seed"], noise[:n])
                with clock("noise"):
                    y = channel.add_noise(y, q, nz, True)
                qs = q["jpeg_quality"].tolist()
                if cpu:
                    with clock("clamp, round to 8 bits"):
                        channel.to_8bit(y, u[:n].permute(0, 3, 1, 2), bgr=True)
                    with clock("JPEG encode + decode (OpenCV on a CPU)"):
                        channel.cpu_codec(u[:n].numpy(), qs)
                    with clock("output (/ 255, first touch of its memory)"):
                        torch.div(u[:n].permute(0, 3, 1, 2), 255, out=out[part])
                else:
                    with clock("clamp, round to 8 bits"):
                        uz = channel.to_8bit(y, u[:n])
                    with clock("JPEG encode + decode (nvJPEG)"):
                        channel.jpeg_codec(uz, qs, out=uz)
                    with clock("output (/ 255)"):
                        torch.div(uz, 255, out=out[part])
        if i:   # the first round warms up
            best = {k: min(best.get(k, float("inf")), v) for k, v in clock.total.items()}
    best["sum"] = sum(best.values())
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 299])
    ap.add_argument("--kornia-jpeg", action="store_true", help="also time jpeg_grad='kornia' and jpeg='kornia' on the CPU (seconds a batch at 299)")
    ap.add_argument("--no-gpu", action="store_true")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)

    cpu = platform.processor() or platform.machine()
    print(f"batch {args.batch}, preset typical, torch {torch.__version__}, {torch.get_num_threads()} CPU threads "
          f"({cpu}), best and median of {args.repeats}\n")
    print("| device | size | what | images/s, best | images/s, median | ms/batch, best | ms/batch, median |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        x = pictures(args.batch, size)
        fns = channel_fns(x, args.kornia_jpeg and size == max(args.sizes))
        fns["albumentations loop, plain (uint8 HWC, 1 image at a time)"] = albumentations_loop(x)
        fns["albumentations loop, matched (the channel's steps)"] = albumentations_loop(x, matched=True)
        slow = {k: fns.pop(k) for k in list(fns) if "kornia" in k}
        times = timings(fns, args.repeats, "cpu")
        times.update(timings(slow, 1, "cpu") if slow else {})
        for k, (best, median) in times.items():
            print(f"| cpu | {size} | {k} | {args.batch / best:,.0f} | {args.batch / median:,.0f} | "
                  f"{1000 * best:.1f} | {1000 * median:.1f} |")
    if torch.cuda.is_available() and not args.no_gpu:
        for size in args.sizes:
            for batch in (args.batch, 8 * args.batch):
                x = pictures(batch, size).cuda()
                times = timings(channel_fns(x, True), args.repeats, "cuda")
                for k, (best, median) in times.items():
                    print(f"| {torch.cuda.get_device_name()} (batch {batch}) | {size} | {k} | "
                          f"{batch / best:,.0f} | {batch / median:,.0f} | {1000 * best:.1f} | {1000 * median:.1f} |")

    size = max(args.sizes)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.no_gpu else [])
    for dev in devices:
        times = step_times(pictures(args.batch, size).to(dev), args.repeats)
        print(f"\nSteps of the channel, {dev}, {args.batch} x 3x{size}x{size}, no gradient "
              f"(best of {args.repeats} each, summed over the chunks):\n")
        print("| step | ms/batch |")
        print("|---|---|")
        for k, t in times.items():
            print(f"| {k} | {1000 * t:.1f} |")


if __name__ == "__main__":
    main()
