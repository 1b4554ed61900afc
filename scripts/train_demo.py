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

Defenses (the defended demo models, ``demo-adv`` and ``demo-distilled``):

- ``--adv-eps E`` (levels of 255): adversarial training at L-inf eps E: each
  batch is attacked and the model trained on the result. ``--adv-method``:
  ``pgd2`` (the default; Madry et al. 2018's PGD from a uniform start in the
  eps-ball, two steps of E / 2, 1.5x the cost of one-step training), ``nfgsm``
  (de Jorge et al. 2022) or ``fgsm-rs`` (Wong et al. 2020, one step of 1.25 E).
  Both one-step methods overfitted catastrophically on this ResNet-20 within
  three epochs (the model learns to mask the one-step gradient and PGD accuracy
  collapses). The guard against it, Wong et al.'s: after every epoch, PGD-10
  accuracy on a fixed held-out batch of training pictures; when it falls more
  than 20 points below the best epoch's, or under half of it, training stops and
  the best epoch's weights are kept.
- ``--temperature T``: train at temperature T (the softmax of logits / T).
  With ``--teacher FILE`` the targets are FILE's soft labels at T on the same
  augmented batch (defensive distillation, Papernot et al. 2016: a teacher
  trained at T, a student trained at T on its soft labels, the student used at
  T = 1, i.e. as it is). Without a teacher the labels are the hard ones.
- ``--width W``: the ResNet-20's first stage width (16; 32 doubles every stage).
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
from physical.models.demo_net import ARCHITECTURES, CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, build_net  # noqa: E402

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


def standardise(x01: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> what the network takes (the Classifier's normalisation)."""
    mean = torch.tensor(CIFAR10_MEAN, device=x01.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=x01.device).view(1, 3, 1, 1)
    return ((x01 - mean) / std).contiguous(memory_format=torch.channels_last)


def normalise(x_uint8: torch.Tensor) -> torch.Tensor:
    return standardise(x_uint8.float() / 255)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop with 4-pixel reflect padding and horizontal flip; x (B, 3, 32, 32). The draws come
    from ``gen`` on the CPU, whatever ``x``'s device (the same crops on a GPU)."""
    b, dev = x.shape[0], x.device
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    dx = torch.randint(0, 9, (b,), generator=gen).to(dev)
    dy = torch.randint(0, 9, (b,), generator=gen).to(dev)
    # Gather every crop at once with index arithmetic instead of a per-image loop.
    ar = torch.arange(32, device=dev).view(1, 32)
    rows = (dy.view(b, 1) + ar)  # (B, 32)
    cols = (dx.view(b, 1) + ar)
    out = padded[torch.arange(b, device=dev).view(b, 1, 1), :, rows.view(b, 32, 1), cols.view(b, 1, 32)]
    out = out.permute(0, 3, 1, 2)
    flip = (torch.rand(b, generator=gen) < 0.5).to(dev)
    return torch.where(flip.view(b, 1, 1, 1), out.flip(3), out)


def fgsm_random_start(model: torch.nn.Module, x01: torch.Tensor, y: torch.Tensor, eps: float,
                      gen: torch.Generator) -> torch.Tensor:
    """Wong et al.'s training attack: a uniform start in the eps-ball, one signed step of 1.25 eps,
    projected back to the ball and the [0, 1] box. x01 (B, 3, H, W) in [0, 1]."""
    delta = ((torch.rand(x01.shape, generator=gen) * 2 - 1) * eps).to(x01.device)
    delta = ((x01 + delta).clamp(0, 1) - x01).requires_grad_(True)
    loss = F.cross_entropy(model(standardise(x01 + delta)), y)
    grad, = torch.autograd.grad(loss, delta)
    delta = (delta.detach() + 1.25 * eps * grad.sign()).clamp(-eps, eps)
    return (x01 + delta).clamp(0, 1)


def nfgsm(model: torch.nn.Module, x01: torch.Tensor, y: torch.Tensor, eps: float,
          gen: torch.Generator) -> torch.Tensor:
    """N-FGSM, de Jorge et al. (2022), "Make some noise": a uniform start in the 2 eps-ball, one signed
    step of eps, and no projection back to the eps-ball (only to the [0, 1] box), so the training
    perturbation reaches 3 eps. The stronger noise and the missing clip are what keep one-step
    training from catastrophic overfitting (Wong et al.'s FGSM-RS overfitted at epoch 2 here).
    x01 (B, 3, H, W) in [0, 1]."""
    delta = ((torch.rand(x01.shape, generator=gen) * 2 - 1) * 2 * eps).to(x01.device)
    delta = ((x01 + delta).clamp(0, 1) - x01).requires_grad_(True)
    loss = F.cross_entropy(model(standardise(x01 + delta)), y)
    grad, = torch.autograd.grad(loss, delta)
    return (x01 + delta.detach() + eps * grad.sign()).clamp(0, 1)


def pgd2(model: torch.nn.Module, x01: torch.Tensor, y: torch.Tensor, eps: float,
         gen: torch.Generator, steps: int = 2) -> torch.Tensor:
    """Madry et al.'s PGD training attack, short: a uniform start in the eps-ball, ``steps`` signed steps
    of eps / 2, each projected to the ball and the [0, 1] box. Two steps cost 1.5x one-step training
    and, unlike one step, did not overfit catastrophically here. x01 (B, 3, H, W) in [0, 1]."""
    delta = ((torch.rand(x01.shape, generator=gen) * 2 - 1) * eps).to(x01.device)
    delta = (x01 + delta).clamp(0, 1) - x01
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(standardise(x01 + delta)), y)
        grad, = torch.autograd.grad(loss, delta)
        delta = ((delta.detach() + eps / 2 * grad.sign()).clamp(-eps, eps) + x01).clamp(0, 1) - x01
    return x01 + delta


TRAINING_ATTACKS = {"pgd2": pgd2, "nfgsm": nfgsm, "fgsm-rs": fgsm_random_start}
ADV_NAMES = {"pgd2": "PGD-2 (Madry et al. 2018, two steps of eps/2)", "nfgsm": "N-FGSM (de Jorge et al. 2022)",
             "fgsm-rs": "FGSM with random start (Wong et al. 2020)"}


def pgd_accuracy(model: torch.nn.Module, x_uint8: torch.Tensor, y: torch.Tensor, eps: float,
                 steps: int = 10) -> float:
    """Accuracy under L-inf PGD (steps of eps / 4, random start seeded 0): the overfitting guard."""
    model.eval()
    x01 = x_uint8.float() / 255
    gen = torch.Generator().manual_seed(0)
    delta = ((torch.rand(x01.shape, generator=gen) * 2 - 1) * eps).to(x01.device)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(standardise((x01 + delta).clamp(0, 1))), y)
        grad, = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + eps / 4 * grad.sign()).clamp(-eps, eps)
    with torch.no_grad():
        return (model(standardise((x01 + delta).clamp(0, 1))).argmax(1) == y).float().mean().item()


def overfitted(pgd: float, best: float) -> bool:
    """Catastrophic overfitting: the guard's PGD accuracy fell 20 points below the best epoch's, or
    under half of it (a first run on 2 cores went from 0.189 after epoch 1 to 0.000 after epoch 2 and
    stayed there, while FGSM stopped hurting: Wong et al.'s 20 points alone never fired)."""
    return pgd < best - 0.2 or pgd < 0.5 * best


def soft_targets(teacher: torch.nn.Module, xb: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teacher's soft labels at ``temperature`` on a (standardised) batch."""
    with torch.no_grad():
        return F.softmax(teacher(xb) / temperature, dim=1)


HALF_SEED = 54321


def training_half(n: int, half: int) -> torch.Tensor:
    """The sorted indices of one half (0 or 1) of n training pictures: disjoint halves whatever the
    training seed (one fixed permutation, split in two)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(HALF_SEED))
    return (order[:n // 2] if half == 0 else order[n // 2:]).sort().values


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * t))


def load_net(path: Path) -> torch.nn.Module:
    """A network from a weights file this script wrote (its architecture and width read from the metadata)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    net = build_net(meta.get("architecture", "ResNet20"), int(meta["width"]) if "width" in meta else None,
                    int(meta.get("thermometer", 0)))
    net.load_state_dict(load_file(str(path)))
    return net


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
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--arch", choices=sorted(ARCHITECTURES), default="ResNet20",
                   help="the network: ResNet20 (the demo's) or SmallVGG (plain convolutions, for transfer tables)")
    p.add_argument("--width", type=int, default=None,
                   help="the first stage's width (default: the architecture's, 16 for ResNet20, 32 for SmallVGG)")
    p.add_argument("--thermometer", type=int, default=0,
                   help="L > 0: the network sees the L-level thermometer encoding of each channel (Buckman et al. "
                        "2018; 16 for demo-thermometer)")
    p.add_argument("--half", type=int, choices=(0, 1), default=None,
                   help="train on one half of the training pictures (a seeded split, the same for both halves: "
                        "Szegedy et al.'s cross-training-set models)")
    p.add_argument("--adv-eps", type=float, default=0.0,
                   help="adversarial training at this L-inf eps (levels of 255; the inner attack is --adv-method)")
    p.add_argument("--adv-method", choices=sorted(TRAINING_ATTACKS), default="pgd2",
                   help="the training attack (pgd2: Madry et al. 2018 with two steps; nfgsm: de Jorge et al. "
                        "2022; fgsm-rs: Wong et al. 2020; both one-step methods overfitted catastrophically here)")
    p.add_argument("--temperature", type=float, default=1.0, help="train at this softmax temperature")
    p.add_argument("--teacher", type=Path, default=None,
                   help="train on this model's soft labels at --temperature (defensive distillation)")
    p.add_argument("--label-smoothing", type=float, default=None,
                   help="(default 0.1; 0 with --adv-eps, --temperature or --teacher)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    defended = args.adv_eps > 0 or args.temperature != 1 or args.teacher is not None
    smoothing = args.label_smoothing if args.label_smoothing is not None else (0.0 if defended else 0.1)
    dev = torch.device(args.device)
    eps = args.adv_eps / 255

    t_start = time.time()
    xtr, ytr = load_split(args.data, "train", args.work_dir)
    xte, yte = load_split(args.data, "test", args.work_dir)
    print(f"data: {len(xtr)} train, {len(xte)} test ({time.time() - t_start:.0f}s)", flush=True)
    if eps > 0:
        # The overfitting guard's pictures: a fixed 512 of the training set (a tenth of a small one),
        # left out of training.
        held = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(12345))[:min(512, len(xtr) // 10)]
        keep = torch.ones(len(xtr), dtype=torch.bool)
        keep[held] = False
        x_guard, y_guard = xtr[held].to(dev), ytr[held].to(dev)
        xtr, ytr = xtr[keep], ytr[keep]
    if args.half is not None:
        part = training_half(len(xtr), args.half)
        xtr, ytr = xtr[part], ytr[part]
        print(f"half {args.half}: {len(xtr)} training pictures", flush=True)
    xtr, ytr, xte, yte = xtr.to(dev), ytr.to(dev), xte.to(dev), yte.to(dev)
    teacher = load_net(args.teacher).to(dev).eval() if args.teacher is not None else None

    torch.manual_seed(args.seed)
    model = build_net(args.arch, args.width, args.thermometer)
    width = args.width if args.width is not None else ARCHITECTURES[args.arch][1]
    if args.init is not None:
        model.load_state_dict(load_file(str(args.init)))
    model = model.to(device=dev, memory_format=torch.channels_last)
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
    best: dict = {"pgd": -1.0, "epoch": 0, "model": None}     # the overfitting guard's best epoch
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, weights_only=True, map_location=dev)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        start_epoch, elapsed = ck["epoch"], ck["elapsed"]
        best = ck.get("best", best)
        print(f"resuming after epoch {start_epoch}", flush=True)

    stopped = ""
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
            idx = perm[i * args.batch:(i + 1) * args.batch].to(dev)
            x01 = augment(xtr[idx], gen).float() / 255
            if eps > 0:
                x01 = TRAINING_ATTACKS[args.adv_method](model, x01, ytr[idx], eps, gen)
            xb = standardise(x01)
            logits = model(xb) / args.temperature
            if teacher is not None:
                loss = -(soft_targets(teacher, xb, args.temperature) * F.log_softmax(logits, 1)).sum(1).mean()
            else:
                loss = F.cross_entropy(logits, ytr[idx], label_smoothing=smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item()
        elapsed += time.time() - t0
        acc = evaluate(model, xte, yte) if (epoch + 1) % 5 == 0 or epoch + 1 == args.epochs else float("nan")
        guard = ""
        if eps > 0:
            pgd = pgd_accuracy(model, x_guard, y_guard, eps)
            guard = f" guard PGD-10 {pgd:.3f}"
            if pgd >= best["pgd"]:
                best = {"pgd": pgd, "epoch": epoch + 1,
                        "model": {k: v.detach().clone() for k, v in model.state_dict().items()}}
            elif overfitted(pgd, best["pgd"]):
                stopped = (f"catastrophic overfitting at epoch {epoch + 1} (guard PGD-10 {pgd:.3f}, "
                           f"best {best['pgd']:.3f} at epoch {best['epoch']}): kept epoch {best['epoch']}")
        print(f"epoch {epoch + 1}/{args.epochs} loss {loss_sum / steps_per_epoch:.3f} "
              f"test {acc:.4f}{guard} ({time.time() - t0:.0f}s, {elapsed / 60:.1f} min)", flush=True)
        args.work_dir.mkdir(parents=True, exist_ok=True)
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch + 1,
                    "elapsed": elapsed, "best": best}, tmp)
        tmp.replace(ckpt_path)
        if stopped:
            print(stopped, flush=True)
            break

    if eps > 0 and best["model"] is not None:
        model.load_state_dict(best["model"])       # the guard's best epoch (the last, unless it overfitted)
    acc = evaluate(model, xte, yte)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "architecture": args.arch, "dataset": "CIFAR-10 (JPEG ImageFolder)" + (
            f", training half {args.half} (split seed {HALF_SEED})" if args.half is not None else ""),
        "test_top1": f"{acc:.4f}", "epochs": str(args.epochs), "seed": str(args.seed),
        "train_minutes": f"{elapsed / 60:.1f}", "threads": str(torch.get_num_threads()),
        "init": args.init.name if args.init else "random", "lr": str(args.lr), "wd": str(args.wd),
        "warmup_epochs": str(args.warmup_epochs),
        "width": str(width), **({"thermometer": str(args.thermometer)} if args.thermometer else {}),
        "device": str(dev), "label_smoothing": str(smoothing),
        "defense": (f"thermometer encoding, {args.thermometer} levels" + ("; " if eps > 0 else "")
                    if args.thermometer else "") + (f"adversarial training, {ADV_NAMES[args.adv_method]}, "
                    f"eps {args.adv_eps:g}/255" + (f"; {stopped}" if stopped else "") if eps > 0 else
                    f"defensive distillation at T = {args.temperature:g} from {args.teacher.name}"
                    if args.teacher is not None else
                    f"trained at temperature {args.temperature:g}" if args.temperature != 1 else
                    "" if args.thermometer else "none"),
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
