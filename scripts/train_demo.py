#!/usr/bin/env python
"""Train the bundled demo classifier (ResNet-20 on CIFAR-10).

    python scripts/train_demo.py --data ../shared/data/cifar10

Seeded and resumable: a checkpoint is written after every epoch to --work-dir
and a re-run of the same command continues from it, giving the same weights as
an uninterrupted run. The learning rate is a pure function of the step, and
each epoch's shuffle and augmentation draw from a generator seeded by
(seed, epoch), so nothing depends on where the run was interrupted.

At the end the weights go to physical/data/demo_resnet20.safetensors with the
measured test accuracy in its metadata.

The shipped weights are two runs (see the README): 40 epochs from scratch,
then a warm restart, 15 epochs from those weights at a lower learning rate
(--init, --lr 0.02, --warmup-epochs 1), which gained the last half point.
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
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from physical.models.demo_net import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, ResNet20  # noqa: E402

OUT_WEIGHTS = REPO / "physical" / "data" / "demo_resnet20.safetensors"


def load_split(root: Path, split: str, cache_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode an ImageFolder split once; returns uint8 (N, 3, 32, 32) and int64 (N,) labels."""
    cache = cache_dir / f"cifar10-{split}.npz"
    if cache.exists():
        z = np.load(cache)
        return torch.from_numpy(z["x"]), torch.from_numpy(z["y"])
    xs, ys = [], []
    for label, name in enumerate(CIFAR10_CLASSES):
        for f in sorted((root / split / name).iterdir()):
            with Image.open(f) as im:
                xs.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            ys.append(label)
    x = np.stack(xs).transpose(0, 3, 1, 2).copy()
    y = np.asarray(ys, dtype=np.int64)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cache, x=x, y=y)
    return torch.from_numpy(x), torch.from_numpy(y)


def normalise(x_uint8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    x = (x_uint8.float() / 255 - mean) / std
    return x.contiguous(memory_format=torch.channels_last)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop with 4-pixel reflect padding and horizontal flip; x (B, 3, 32, 32)."""
    b = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    dx = torch.randint(0, 9, (b,), generator=gen)
    dy = torch.randint(0, 9, (b,), generator=gen)
    # Gather every crop at once with index arithmetic instead of a per-image loop.
    rows = (dy.view(b, 1) + torch.arange(32).view(1, 32))  # (B, 32)
    cols = (dx.view(b, 1) + torch.arange(32).view(1, 32))
    out = padded[torch.arange(b).view(b, 1, 1), :, rows.view(b, 32, 1), cols.view(b, 1, 32)]
    out = out.permute(0, 3, 1, 2)
    flip = torch.rand(b, generator=gen) < 0.5
    return torch.where(flip.view(b, 1, 1, 1), out.flip(3), out)


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * t))


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += (model(normalise(x[i:i + batch])).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "cifar10")
    p.add_argument("--work-dir", type=Path, default=REPO / "build" / "train-demo")
    p.add_argument("--out", type=Path, default=OUT_WEIGHTS)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup-epochs", type=int, default=2)
    p.add_argument("--init", type=Path, default=None,
                   help="start from these weights (a .safetensors file) instead of a random init")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t_start = time.time()
    xtr, ytr = load_split(args.data, "train", args.work_dir)
    xte, yte = load_split(args.data, "test", args.work_dir)
    print(f"data: {len(xtr)} train, {len(xte)} test ({time.time() - t_start:.0f}s)", flush=True)

    torch.manual_seed(args.seed)
    model = ResNet20()
    if args.init is not None:
        model.load_state_dict(load_file(str(args.init)))
    model = model.to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, momentum=0.9, nesterov=True,
    )
    steps_per_epoch = len(xtr) // args.batch
    total = steps_per_epoch * args.epochs
    warmup = max(1, args.warmup_epochs * steps_per_epoch)

    ckpt_path = args.work_dir / "checkpoint.pt"
    start_epoch, elapsed = 0, 0.0
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        start_epoch, elapsed = ck["epoch"], ck["elapsed"]
        print(f"resuming after epoch {start_epoch}", flush=True)

    for epoch in range(start_epoch, args.epochs):
        t0 = time.time()
        model.train()
        gen = torch.Generator().manual_seed(args.seed * 100_003 + epoch)
        perm = torch.randperm(len(xtr), generator=gen)
        loss_sum = 0.0
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, args.lr, warmup)
            idx = perm[i * args.batch:(i + 1) * args.batch]
            xb = normalise(augment(xtr[idx], gen))
            loss = F.cross_entropy(model(xb), ytr[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item()
        elapsed += time.time() - t0
        acc = evaluate(model, xte, yte) if (epoch + 1) % 5 == 0 or epoch + 1 == args.epochs else float("nan")
        print(f"epoch {epoch + 1}/{args.epochs} loss {loss_sum / steps_per_epoch:.3f} "
              f"test {acc:.4f} ({time.time() - t0:.0f}s, {elapsed / 60:.1f} min)", flush=True)
        args.work_dir.mkdir(parents=True, exist_ok=True)
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch + 1,
                    "elapsed": elapsed}, tmp)
        tmp.replace(ckpt_path)

    acc = evaluate(model, xte, yte)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {
        "architecture": "ResNet20", "dataset": "CIFAR-10 (JPEG ImageFolder)",
        "test_top1": f"{acc:.4f}", "epochs": str(args.epochs), "seed": str(args.seed),
        "train_minutes": f"{elapsed / 60:.1f}", "threads": str(torch.get_num_threads()),
        "init": args.init.name if args.init else "random", "lr": str(args.lr),
        "classes": json.dumps(list(CIFAR10_CLASSES)),
        "mean": json.dumps(CIFAR10_MEAN), "std": json.dumps(CIFAR10_STD),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(args.out)
    print(f"test top-1 {acc:.4f}; {elapsed / 60:.1f} min of training; wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
