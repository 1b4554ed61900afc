"""The channel's differentiable steps, each batched over images with per-image parameters.

Geometry (:func:`warp`), print and light (:func:`print_and_light`), the
phone's local tone (:func:`local_tone`), blur (:func:`blur`) and sensor noise
(:func:`add_noise`); the order they run in and
why is in the package docstring (:mod:`physical.channel`).

Shape: images are (B, 3, H, W) in [0, 1]; every parameter tensor is (B, ...)
as in :data:`physical.channel.presets.PARAM_SHAPES`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from kornia.filters import filter2d, filter2d_separable, get_gaussian_kernel1d
from kornia.geometry.transform import get_perspective_transform
from torch import Tensor

from .workers import _share

BLUR_SIGMAS = 2.5   # Gaussian kernels reach this many sigmas out (98.8 % of the mass)
MIN_SIGMA = 0.05   # px; the Gaussian of this sigma is exactly [0, 1, 0] in float32
LUMA = (0.299, 0.587, 0.114)


def homographies(p: dict[str, Tensor], h: int, w: int, pad: int = 0) -> Tensor:
    """(B, 3, 3) float64 pixel homographies, input -> output, of :func:`warp`.

    The output's corner pixels (shifted by ``pad``) show the input at its
    corners zoomed by ``1/zoom`` about the centre and moved by
    ``corner_jitter * (w, h)``; pixel centres are integer coordinates.
    """
    # In float64: a zero-strength warp is then the identity to ~1e-6 of a pixel.
    f64 = {"device": p["zoom"].device, "dtype": torch.float64}
    corners = torch.tensor([[0.0, 0.0], [w - 1, 0.0], [w - 1, h - 1], [0.0, h - 1]], **f64)
    centre = torch.tensor([(w - 1) / 2, (h - 1) / 2], **f64)
    size = torch.tensor([float(w), float(h)], **f64)
    src = centre + (corners - centre) / p["zoom"].double()[:, None, None] + p["corner_jitter"].double() * size
    dst = (corners + pad).expand_as(src)
    return get_perspective_transform(src, dst)


def sampling_matrices(p: dict[str, Tensor], h: int, w: int, pad: int, dtype: torch.dtype) -> Tensor:
    """(B, 3, 3): output pixel (x, y, 1) -> grid_sample's coordinates (align_corners=True)
    in homogeneous form, for :func:`warp` of (h, w) images with ``pad``."""
    m = homographies(p, h, w, pad)
    to_unit = torch.tensor([[2 / max(w - 1, 1), 0, -1], [0, 2 / max(h - 1, 1), -1], [0, 0, 1]],
                           device=m.device, dtype=m.dtype)
    back = to_unit @ torch.linalg.inv(m)
    return (back / back[:, 2:, 2:]).to(dtype)


def warp(x: Tensor, p: dict[str, Tensor], pad: int = 0, back: Tensor | None = None) -> Tensor:
    """(B, C, H, W) -> (B, C, H + 2 pad, W + 2 pad): zoom and corner jitter, border replicated.

    The same as ``kornia.geometry.transform.warp_perspective(x, homographies(p, H, W, pad),
    (H + 2 pad, W + 2 pad), padding_mode="border", align_corners=True)``, with the
    sampling grid built in three passes instead of Kornia's ten (which cost
    as much as the sampling on a CPU). The ``pad`` extra pixels on each side
    continue the image (its border replicated) for a later 'valid'
    convolution. ``back``: :func:`sampling_matrices`, if already computed.
    Replicating costs 20 % less than reflecting in ``grid_sample``; where a
    harsh jitter looks past the crop's edge, a real crop shows more of the
    same picture (ingest's inset), which neither reproduces.
    """
    b, _, h, w = x.shape
    ho, wo = h + 2 * pad, w + 2 * pad
    if back is None:
        back = sampling_matrices(p, h, w, pad, x.dtype)
    # grid[b, i, j] = back[b] @ (j, i, 1), projected: sums of a column and a row term.
    cols = torch.arange(wo, device=x.device, dtype=x.dtype)
    rows = torch.arange(ho, device=x.device, dtype=x.dtype)

    def plane(r: int) -> tuple[Tensor, Tensor]:
        return (back[:, r, 0, None] * cols)[:, None, :], (back[:, r, 1, None] * rows + back[:, r, 2, None])[:, :, None]

    grid = torch.empty(b, ho, wo, 2, device=x.device, dtype=x.dtype)
    torch.add(*plane(0), out=grid[..., 0])
    torch.add(*plane(1), out=grid[..., 1])
    grid.div_(torch.add(*plane(2))[..., None])
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _per_image(v: Tensor) -> Tensor:
    """(B,) or (B, C) -> (B, 1, 1, 1) or (B, C, 1, 1), to broadcast over NCHW."""
    return v.reshape(v.shape[0], -1, 1, 1)


def light_field(p: dict[str, Tensor], h: int, w: int, pad: int = 0) -> Tensor:
    """(B, 1, h + 2 pad, w + 2 pad) multiplicative light: ``1 + gx u + gy v``, u, v in
    [-1, 1] from the crop's centre to its edges (beyond them in the padding)."""
    g = p["light_gradient"]
    dev, dt = g.device, g.dtype
    u = (torch.arange(w + 2 * pad, device=dev, dtype=dt) - pad - (w - 1) / 2) / max((w - 1) / 2, 1)
    v = (torch.arange(h + 2 * pad, device=dev, dtype=dt) - pad - (h - 1) / 2) / max((h - 1) / 2, 1)
    field = g[:, 0, None, None] * u[None, None, :] + g[:, 1, None, None] * v[None, :, None]
    return field.add_(1).unsqueeze(1)


def print_and_light(y: Tensor, p: dict[str, Tensor], field: Tensor, inplace: bool) -> Tensor:
    """The printer's colours, then the light and the camera's tone, per pixel.

    With ``s`` = saturation, the printed value of channel c is
    ``black + (white_c - black) * t_c(lerp(x, luma, 1 - s))`` where the tone curve
    ``t_c(v) = v + k_c v (1 - v)`` has ``k_c = 4 (0.5**gamma - 0.5) + 4 ink_cast_c``:
    a quadratic with the mid-grey of ``v**gamma`` shifted by the cast, smooth
    and with a finite gradient at 0 (``v**gamma`` has none for gamma < 1).
    The camera then sees ``field * gain_c * (0.5 + contrast (print - 0.5)) +
    brightness``, ``gain_c = exposure * white_balance_c``. All but the field
    is folded into three per-image, per-channel coefficients:
    ``field * (b + v (a - q v)) + brightness``, exact for zero strength.
    """
    s = _per_image(p["saturation"])
    luma = y[:, 0:1] * LUMA[0]
    luma = luma.add_(y[:, 1:2], alpha=LUMA[1]).add_(y[:, 2:3], alpha=LUMA[2])
    v = y.lerp_(luma, 1 - s) if inplace else y.lerp(luma, 1 - s)
    k = (4 * (0.5 ** p["gamma"] - 0.5))[:, None] + 4 * p["ink_cast"]
    k = _per_image(k.clamp(-1.0, 1.0))  # |k| <= 1 keeps the curve monotonic in [0, 1]
    black = _per_image(p["black_level"])
    span = _per_image(p["paper_white"]) - black
    c = _per_image(p["contrast"])
    gain = _per_image(p["exposure"]) * _per_image(p["white_balance"])
    b = gain * (0.5 * (1 - c) + c * black)
    a = gain * c * span * (1 + k)
    q = gain * c * span * k
    bright = _per_image(p["brightness"])
    out = torch.addcmul(a, q, v, value=-1)                                # a - q v
    if inplace:
        torch.addcmul(b, out, v, out=out)                                 # b + v (a - q v)
        return torch.addcmul(bright, out, field, out=out)                 # bright + field (...)
    return torch.addcmul(bright, torch.addcmul(b, out, v), field)


def local_tone(y: Tensor, p: dict[str, Tensor]) -> Tensor:
    """The tone curve a phone's local tone mapping (HDR) applies where the crop lies on the page.

    ``y + k g(y)`` per image, ``k = local_tone`` in [-1, 1]: ``g(y) = y (1 - y)``
    in [0, 1], continued by its tangents outside (``g = y`` below 0, ``1 - y``
    above 1), so that the curve is monotonic, smooth enough for a gradient,
    and values the light pushed past white are not folded back. ``k > 0``
    lifts the mid-tones (a region the phone brightened: its shadows lifted,
    its highlights kept), ``k < 0`` lowers them; ``k = 0`` is the identity,
    exactly. Out of place.
    """
    c = y.clamp(0.0, 1.0)
    g = torch.addcmul(c - c * c, y - c, 1 - 2 * c)
    return torch.addcmul(y, _per_image(p["local_tone"].clamp(-1.0, 1.0)), g)


def blur_sigma(p: dict[str, Tensor], w: int) -> Tensor:
    """(B,) Gaussian sigma in pixels for crops of width ``w``, at least MIN_SIGMA."""
    return torch.sqrt(p["blur_px"] ** 2 + (p["blur_frac"] * w) ** 2).clamp_min(MIN_SIGMA)


def blur_radius(sigma: Tensor) -> int:
    """Kernel radius for the batch: BLUR_SIGMAS sigma of its widest blur (one host sync)."""
    return max(1, math.ceil(BLUR_SIGMAS * float(sigma.max())))


def blur_kernels(sigma: Tensor, radius: int) -> Tensor:
    """(B, 2 radius + 1) normalised 1-D Gaussians, one per image."""
    return get_gaussian_kernel1d(2 * radius + 1, sigma[:, None])


def blur(y: Tensor, kernels: Tensor) -> Tensor:
    """'Valid' Gaussian blur, one (B, 2r + 1) kernel per image: (B, C, H + 2r, W + 2r) -> (B, C, H, W).

    oneDNN's grouped convolution (CPU) runs a small 2-D kernel faster than two
    1-D passes (27 vs 33 ms for 64 images of 299 x 299 at r = 4); from r = 5 on
    the two passes win (44 vs 64 ms) and their cost grows only linearly in r.
    """
    if kernels.shape[1] <= 9:
        return filter2d(y, kernels[:, :, None] * kernels[:, None, :], padding="valid")
    return filter2d_separable(y, kernels, kernels, padding="valid")


def noise_field(seeds: Tensor, out: Tensor) -> Tensor:
    """Fill ``out`` (B, 1, H, W) with standard normal noise, image i's from ``seeds[i]``; returns it.

    One generator per image (a few microseconds to seed) makes an image's
    noise its own: the same whatever batch or chunk it is in. On a CPU the
    images are shared among the worker threads (the generator is serial code
    that releases the GIL).
    """
    seed_list = seeds.tolist()

    def fill(share: range) -> None:
        gen = torch.Generator(device=out.device)
        for i in share:
            gen.manual_seed(seed_list[i])
            out[i].normal_(generator=gen)

    _share(fill, len(seed_list), out.device)
    return out


def add_noise(y: Tensor, p: dict[str, Tensor], noise: Tensor, inplace: bool) -> Tensor:
    """Add luma ``noise`` (B, 1, H, W) scaled to ``sqrt(read**2 + shot**2 * I)``, I the
    pixel's mean over channels (clamped to [0, 1]; no gradient flows through the std)."""
    level = y.detach().mean(1, keepdim=True).clamp_(0.0, 1.0)
    shot, read = _per_image(p["shot_noise"]), _per_image(p["read_noise"])
    std = torch.addcmul(read * read, shot * shot, level, out=level).sqrt_()
    return y.addcmul_(noise, std) if inplace else torch.addcmul(y, noise, std)
