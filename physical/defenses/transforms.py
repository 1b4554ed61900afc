"""Input-transformation defenses: short pure functions on images in [0, 1], NCHW.

Each takes ``(N, 3, H, W)`` in [0, 1] and returns the same shape, on the same device, except
:func:`randomize`, which returns the larger padded square. The random ones, :func:`randomize`
and :func:`tvm`, take their draws as arguments (:func:`draw_randomize` and :func:`draw_tvm`
make them), so that they are pure functions too.

- :func:`jpeg`: JPEG compression and decompression with the real codec (Guo et al. 2018,
  Dziugaite et al. 2016), libjpeg-turbo through OpenCV on a CPU, nvJPEG on a GPU;
- :func:`bit_depth`: reduction to ``bits`` bits per channel (Xu et al. 2018, "feature squeezing");
- :func:`median`: a ``size`` x ``size`` median filter (Xu et al. 2018), Kornia's;
- :func:`randomize`: Xie et al. (2018)'s random resizing and padding (its output is larger than its input);
- :func:`tvm`: Guo et al. (2018)'s total-variation minimisation of a random pixel drop.

:func:`straight_through` is BPDA's approximation of a step without a useful gradient
(Athalye et al. 2018): the step's value forward, the identity backward.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

# Xie et al. resized 299 px pictures to [299, 331) px and padded them to 331: the ratio scales to any input size.
XIE_RATIO = 331 / 299
# Xie et al.'s code pads with zeros on Inception's [-1, 1] input scale, mid-grey on [0, 1] (Athalye et
# al.'s re-implementation, too, pads with 0.5).
PAD_VALUE = 0.5


def _check(x: Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) images, got shape {tuple(x.shape)}")


def jpeg(x: Tensor, quality: int) -> Tensor:
    """JPEG round trip at ``quality`` (1-100), 4:2:0 as phones and libjpeg's defaults: the real codec's
    bytes, decoded, on the 8-bit grid; no gradient (use :func:`straight_through`).

    Shape:
        - x: (N, 3, H, W) in [0, 1]. Output: (N, 3, H, W) in [0, 1], multiples of 1/255.
    """
    from ..channel.codec import real_jpeg

    _check(x)
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    q = torch.full((x.shape[0],), int(quality), dtype=torch.int64)
    return real_jpeg(x.detach().float(), q, inplace=False)


def bit_depth(x: Tensor, bits: int) -> Tensor:
    """Each channel rounded to ``2**bits`` levels evenly spaced on [0, 1]: ``round(x (2^b - 1)) / (2^b - 1)``.

    Shape:
        - x: (N, 3, H, W) in [0, 1]. Output: the same shape, on the grid of 2^bits levels.
    """
    _check(x)
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    levels = 2 ** bits - 1
    return torch.round(x.clamp(0, 1) * levels) / levels


def median(x: Tensor, size: int) -> Tensor:
    """A ``size`` x ``size`` median filter, reflecting at the borders (Kornia's ``median_blur``);
    differentiable almost everywhere (the gradient goes to each window's median pixel).

    Shape:
        - x: (N, 3, H, W). Output: (N, 3, H, W).
    """
    from kornia.filters import median_blur

    _check(x)
    if size < 2 or size % 2 == 0:
        raise ValueError(f"median size must be odd and at least 3, got {size}")
    return median_blur(x, size)


def padded_size(size: int) -> int:
    """The side Xie et al.'s padding reaches for an input of ``size`` px (331 for 299)."""
    return int(round(size * XIE_RATIO))


def draw_randomize(n: int, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Per image, the resized side ``r``, uniform in [size, padded_size(size)), and the padding's top-left
    offset, uniform in [0, padded - r] each way. Returns (N,) int64 sides and (N, 2) int64 (top, left)."""
    full = padded_size(size)
    side = torch.randint(size, max(size + 1, full), (n,), generator=generator)
    top = (torch.rand(n, generator=generator) * (full - side + 1)).floor().long()
    left = (torch.rand(n, generator=generator) * (full - side + 1)).floor().long()
    return side, torch.stack([top, left], dim=1)


def randomize(x: Tensor, side: Tensor, offset: Tensor) -> Tensor:
    """Xie et al. (2018), as their code does it: each image resized to ``side`` px (nearest neighbour),
    placed at ``offset`` on a mid-grey square of :func:`padded_size` px (:data:`PAD_VALUE`), and the
    square itself goes to the model (331 px for a 299 px input, 35 for 32): the model must take
    pictures of that size (global pooling does). Differentiable: nearest neighbour and the paste are
    one gather.

    Shape:
        - x: (N, 3, H, W) in [0, 1], H == W; side: (N,) int; offset: (N, 2) int (top, left).
        - Output: (N, 3, P, P), P = padded_size(H).
    """
    _check(x)
    n, _, h, w = x.shape
    if h != w:
        raise ValueError(f"randomize needs square images, got {h}x{w}")
    full = padded_size(h)
    side, offset = side.cpu(), offset.cpu()
    if ((side < h) | (side > full) | (offset < 0).any(1) | (offset > (full - side)[:, None]).any(1)).any():
        raise ValueError(f"randomize: a side and offset do not fit the {full} px square")
    # Nearest neighbour and the paste in one gather: padded pixel r (of image i) shows input pixel
    # floor((r - top_i) * H / side_i) when it falls inside the pasted picture, grey otherwise.
    side, offset = side.to(x.device), offset.to(x.device)
    grid = torch.arange(full, device=x.device)

    def axis(start: Tensor) -> tuple[Tensor, Tensor]:
        rel = grid[None, :] - start[:, None]                                   # (N, P)
        inside = (rel >= 0) & (rel < side[:, None])
        return (rel.clamp(min=0) * h // side[:, None]).clamp(max=h - 1), inside

    rows, in_r = axis(offset[:, 0])
    cols, in_c = axis(offset[:, 1])
    picked = x[torch.arange(n, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (N, P, P, 3)
    inside = (in_r[:, :, None] & in_c[:, None, :])[:, None]
    return torch.where(inside, picked.permute(0, 3, 1, 2), PAD_VALUE)


# Guo et al.'s and Athalye et al.'s weight of the total variation against the kept pixels' squared error
# (Athalye et al.'s defend_tv: lambda_tv = 0.03, Bregman weight 2 / lambda_tv).
TVM_LAMBDA = 0.03
# Primal-dual steps of tvm: on 64 CIFAR-10 pictures with half the pixels kept, 300 bring the worst picture's
# energy within 2.7e-4 (relative) of 5,000 steps' and every pixel within 2.3 levels of 255 (bench/tvm.py).
TVM_ITERS = 300


def draw_tvm(n: int, height: int, width: int, keep: float, generator: torch.Generator) -> Tensor:
    """Per image, which pixels :func:`tvm` keeps: each independently with probability ``keep``, all three
    channels together (Athalye et al.'s re-implementation). Returns (N, 1, H, W) bool."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    return torch.rand(n, 1, height, width, generator=generator) < keep


def _forward_diff(u: Tensor) -> tuple[Tensor, Tensor]:
    gx, gy = torch.zeros_like(u), torch.zeros_like(u)
    gx[..., :, :-1] = u[..., :, 1:] - u[..., :, :-1]
    gy[..., :-1, :] = u[..., 1:, :] - u[..., :-1, :]
    return gx, gy


def tv_energy(u: Tensor, x: Tensor, mask: Tensor, lam: float = TVM_LAMBDA) -> Tensor:
    """What :func:`tvm` minimises, per image: ``sum(mask (u - x)^2) + lam (|D_x u|_1 + |D_y u|_1)``
    (anisotropic total variation, forward differences). Returns (N,)."""
    gx, gy = _forward_diff(u)
    return (mask * (u - x) ** 2).flatten(1).sum(1) + lam * (gx.abs() + gy.abs()).flatten(1).sum(1)


def tvm(x: Tensor, mask: Tensor, lam: float = TVM_LAMBDA, iters: int = TVM_ITERS) -> Tensor:
    """Guo et al. (2018)'s total-variation minimisation: keep the pixels of ``mask``, drop the rest, and
    reconstruct the image of least :func:`tv_energy` (each channel on its own), the "simplest" image
    that agrees with the kept pixels. Solved by Chambolle and Pock's primal-dual method, ``iters``
    steps from the kept pixels on mid-grey (where the minimiser is not unique the start decides). No
    useful gradient: BPDA with the identity (:func:`straight_through`), as Athalye et al. attacked it.

    Shape:
        - x: (N, 3, H, W) in [0, 1]; mask: (N, 1, H, W) bool (:func:`draw_tvm`).
        - Output: (N, 3, H, W) in [0, 1].
    """
    _check(x)
    if mask.shape != (x.shape[0], 1, *x.shape[2:]) or mask.dtype != torch.bool:
        raise ValueError(f"tvm: mask must be ({x.shape[0]}, 1, {x.shape[2]}, {x.shape[3]}) bool, "
                         f"got {tuple(mask.shape)} {mask.dtype}")
    x = x.detach()
    m = mask.to(x.device, x.dtype).expand_as(x)
    # Step sizes with tau sigma ||D||^2 <= 1 (||D||^2 <= 8 for forward differences on a grid); of the
    # pairs tried by hand (tau 0.05 to 4, docs/benchmarks.md), tau = sigma lowered the energy fastest.
    tau = sigma = 8 ** -0.5
    u = torch.where(m > 0, x, PAD_VALUE)
    ubar = u.clone()
    px, py = torch.zeros_like(x), torch.zeros_like(x)     # the dual: one per forward difference
    inv = 1 / (1 + 2 * tau * m)
    fit = 2 * tau * m * x * inv
    tau_inv = tau * inv
    new = torch.empty_like(x)
    for _ in range(iters):
        # dual step on ubar's differences, projected on [-lam, lam] (the dual ball of lam |.|_1); the last
        # column of px and row of py have no difference and stay 0
        px[..., :, :-1].add_(ubar[..., :, 1:] - ubar[..., :, :-1], alpha=sigma).clamp_(-lam, lam)
        py[..., :-1, :].add_(ubar[..., 1:, :] - ubar[..., :-1, :], alpha=sigma).clamp_(-lam, lam)
        # primal step: the prox of the kept pixels' squared error at u + tau div p, in place (2x faster)
        torch.add(px, py, out=new)
        new[..., :, 1:].sub_(px[..., :, :-1])
        new[..., 1:, :].sub_(py[..., :-1, :])
        new.mul_(tau_inv).addcmul_(u, inv).add_(fit)
        torch.mul(new, 2, out=ubar).sub_(u)
        u, new = new, u
    return u.clamp_(0, 1)


def straight_through(x: Tensor, step: Callable[[Tensor], Tensor]) -> Tensor:
    """BPDA with the identity: ``step(x)``'s value forward, the gradient of ``x`` backward
    (``x + (step(x) - x).detach()``)."""
    return x + (step(x.detach()) - x).detach()
