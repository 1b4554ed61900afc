"""A simulated print-and-photo channel for batches of image crops (Kornia / PyTorch).

The report stage compares the paper's figures on real photos of the printed
sheets with the same figures under this channel. It works on what the model
sees: batches of registered crops, tensors in [0, 1], NCHW, on the device of
the input (CPU or GPU), every image with its own parameters, and no Python
loop over images (on a CPU, a loop over chunks of a few images).
(:mod:`physical.camera` is the other simulator: it makes whole 12-MP phone
photos of the sheets with OpenCV, for ``ingest``.)

A crop goes through, in this order:

1. **geometry** (:func:`warp`): what is left after ``ingest`` registers and
   crops a photo: its crops are the slot magnified by ``CROP_ZOOM`` about its
   centre (ingest's 2 % inset), and registration error, lens distortion and
   paper curl move each corner by a little (``corner_jitter``). One batched
   homography per image (``kornia.geometry.transform``), replicating the
   border. It comes first because it allocates the output: every later step
   can then run in place on it, and a per-pixel colour map commutes with it
   up to the bilinear interpolation.
2. **print and light** (:func:`print_and_light`): the printer's gamut
   (``saturation``), tone curve (``gamma``), colour cast (``ink_cast``),
   off-white paper and grey black (``paper_white``, ``paper_tint``,
   ``black_level``); then the scene's light and the camera's tone mapping:
   ``contrast`` about mid-grey, ``exposure``, ``white_balance``, a smooth
   gradient of light across the crop (``light_gradient``) and an additive
   ``brightness`` offset (flare, ambient light).
3. **blur** (:func:`blur`): Gaussian, of the resampling in ``ingest``
   (``blur_px``, fixed in crop pixels) and of the lens and ink spread
   (``blur_frac``, a fraction of the crop's width: every picture is printed at
   the same size, so the optical blur in crop pixels grows with the pixel
   count); the two combine as ``sqrt(blur_px**2 + (blur_frac * W)**2)``.
4. **noise** (:func:`add_noise`): signal-dependent sensor noise,
   ``std = sqrt(read_noise**2 + shot_noise**2 * I)`` at brightness I, the
   same in the three channels (a phone's denoiser removes chroma noise first).
5. **JPEG** (:func:`real_jpeg`): the real codec, libjpeg-turbo, at a quality
   per image drawn on a grid of ``JPEG_STEP``: on a CPU through OpenCV
   (:func:`cpu_codec`; the same bytes as ``torchvision.io``, faster), on a
   GPU through torchvision's nvJPEG, a call per group of equal quality.

``PRESETS`` holds the parameter ranges of ``mild``, ``typical`` and
``harsh``; :func:`sample_params` draws per-image parameters from one,
:func:`apply_channel` applies them, :func:`simulate` does both.

Gradients (``differentiable=True``): every step but JPEG is differentiable.
JPEG is a straight-through estimator: the forward value is the real codec's
(so the output equals ``differentiable=False`` exactly), the backward pass is
the identity (``jpeg_grad="identity"``, the default) or the gradient of
Kornia's differentiable JPEG (``jpeg_grad="kornia"``). The identity is the
default because Kornia's JPEG is slow on a CPU: for 64 images of 299 x 299
on 2 cores its gradient makes a forward + backward pass take 4.7 s instead
of 0.55 s, and as a forward pass alone (``jpeg="kornia"``) it takes ~0.9 s
where the codec takes ~0.02 s. The noise level follows the image but carries
no gradient (it is noise).

Speed: per-image parameters are tensors, so every step is one batched call.
On a CPU the batch goes through every step, JPEG included, in chunks of a
few images (:func:`chunk_size`) that stay in cache and reuse the same memory,
straight into the output; a 64 x 299 x 299 batch in one piece is 1.5x
slower, paging in fresh memory for each intermediate. Measured speeds, and
an albumentations loop beside them, are in ``docs/benchmarks.md``
(``bench/channel.py``).

Determinism: the same parameters give the same output on the same device.
Each image's noise comes from its own seed (``params["noise_seed"][i]``), so
it does not depend on the rest of the batch; the generators differ between
CPU and GPU. JPEG on a GPU is nvJPEG, which subsamples chroma differently
from the CPU's libjpeg: the two devices give different bytes.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from kornia.enhance import jpeg_codec_differentiable
from kornia.filters import filter2d, filter2d_separable, get_gaussian_kernel1d
from kornia.geometry.transform import get_perspective_transform
from torch import Tensor

# ingest crops each slot inset by 2 % of its side on every side and resizes
# it to the digital image's size: a crop is the picture magnified by this.
CROP_ZOOM = 1 / (1 - 2 * 0.02)
JPEG_STEP = 5      # qualities are drawn on a grid of 5: few groups, one codec call each
NO_JPEG = 0        # a jpeg_quality of 0 skips JPEG for that image
CHUNK_BYTES = 6 << 20    # CPU, no gradient: images per chunk such that an intermediate is ~6 MB
GRAD_CHUNK_BYTES = 16 << 20   # CPU, with a graph (kept until backward, so no reuse): fewer, larger ops
BLUR_SIGMAS = 2.5   # Gaussian kernels reach this many sigmas out (98.8 % of the mass)
MIN_SIGMA = 0.05   # px; the Gaussian of this sigma is exactly [0, 1, 0] in float32
LUMA = (0.299, 0.587, 0.114)

# Parameter ranges, each (lo, hi), drawn uniformly and independently per
# image (per image and channel where marked [c], per image and corner
# coordinate where marked [corner]). Intensities are in [0, 1] of full scale.
#
# printing
#   saturation     fraction of chroma the printer keeps (1: all)
#   gamma          tone curve exponent: mid-grey prints as 0.5**gamma (>1 darker)
#   ink_cast   [c] shift of mid-grey, per channel (a colour cast of the inks)
#   paper_white    brightness of the unprinted paper (1: the photo's white)
#   paper_tint [c] relative tint of the paper, per channel
#   black_level    brightness of full ink
# geometry
#   zoom           magnification of the crop about its centre
#   corner_jitter [corner]  shift of each crop corner, x and y, in units of the crop's side
# light and camera tone
#   contrast       scale about mid-grey
#   exposure       gain
#   white_balance [c]  relative gain error of red and blue (green is the reference)
#   light_gradient relative change of light from the centre to the edge, in a random direction
#   brightness     additive offset
# blur and noise
#   blur_px        Gaussian sigma in crop pixels (resampling in ingest)
#   blur_frac      Gaussian sigma as a fraction of the crop's width (lens, ink spread)
#   read_noise     noise std in the dark
#   shot_noise     noise std added at full white (variance grows linearly with brightness)
# JPEG
#   jpeg_quality   quality 1-100, rounded to a multiple of JPEG_STEP
#
# The values follow camera.py's printer and phone (paper 0.92-0.97, black
# 0.07-0.15, saturation 0.78-0.93, JPEG 80-95 in its normal preset) seen at
# the scale of a crop: ingest averages many photo pixels into one crop pixel
# (a 32 px crop of a 25 mm print is ~8 x 8 photo pixels per pixel), so the
# noise and blur left in a crop are small, and a crop spans a tenth of the
# page, so the light varies little across it. 'harsh' is the upper end of
# what a phone photo does, at or below StegaStamp's training distortions
# (corners 10 %, blur sigma 1-3 px, noise 0.02, contrast 0.5-1.5,
# brightness 0.3, JPEG >= 25) except where a registered crop cannot get there.
PRESETS: dict[str, dict[str, tuple[float, float]]] = {
    "mild": {
        "saturation": (0.92, 1.0), "gamma": (0.95, 1.08), "ink_cast": (-0.01, 0.01),
        "paper_white": (0.95, 1.0), "paper_tint": (-0.01, 0.01), "black_level": (0.02, 0.06),
        "zoom": (CROP_ZOOM, CROP_ZOOM), "corner_jitter": (-0.005, 0.005),
        "contrast": (0.95, 1.05), "exposure": (0.95, 1.05), "white_balance": (-0.02, 0.02),
        "light_gradient": (0.0, 0.02), "brightness": (-0.02, 0.02),
        "blur_px": (0.0, 0.3), "blur_frac": (0.0, 0.002),
        "read_noise": (0.0, 0.003), "shot_noise": (0.0, 0.004),
        "jpeg_quality": (90, 100),
    },
    "typical": {
        "saturation": (0.78, 0.93), "gamma": (0.95, 1.2), "ink_cast": (-0.03, 0.03),
        "paper_white": (0.9, 0.97), "paper_tint": (-0.015, 0.015), "black_level": (0.07, 0.15),
        "zoom": (CROP_ZOOM, CROP_ZOOM), "corner_jitter": (-0.015, 0.015),
        "contrast": (0.9, 1.1), "exposure": (0.85, 1.05), "white_balance": (-0.06, 0.06),
        "light_gradient": (0.0, 0.06), "brightness": (-0.04, 0.04),
        "blur_px": (0.2, 0.5), "blur_frac": (0.002, 0.005),
        "read_noise": (0.002, 0.006), "shot_noise": (0.004, 0.01),
        "jpeg_quality": (75, 95),
    },
    "harsh": {
        "saturation": (0.6, 0.8), "gamma": (1.05, 1.4), "ink_cast": (-0.05, 0.05),
        "paper_white": (0.82, 0.92), "paper_tint": (-0.025, 0.025), "black_level": (0.12, 0.22),
        "zoom": (CROP_ZOOM, CROP_ZOOM), "corner_jitter": (-0.04, 0.04),
        "contrast": (0.75, 1.25), "exposure": (0.7, 1.1), "white_balance": (-0.12, 0.12),
        "light_gradient": (0.06, 0.2), "brightness": (-0.08, 0.08),
        "blur_px": (0.4, 0.8), "blur_frac": (0.005, 0.01),
        "read_noise": (0.006, 0.015), "shot_noise": (0.01, 0.02),
        "jpeg_quality": (40, 70),
    },
}

# Drawing order and shape (after the batch dimension) of every preset key.
_SHAPES: dict[str, tuple[int, ...]] = {
    "saturation": (), "gamma": (), "ink_cast": (3,), "paper_white": (), "paper_tint": (3,),
    "black_level": (), "zoom": (), "corner_jitter": (4, 2), "contrast": (), "exposure": (),
    "white_balance": (2,), "light_gradient": (), "brightness": (), "blur_px": (), "blur_frac": (),
    "read_noise": (), "shot_noise": (), "jpeg_quality": (),
}
# What apply_channel takes: shape after the batch dimension. The same as the
# presets' draws except: paper_white (3,) = paper_white * (1 + paper_tint);
# white_balance (3,) = gains (1 + red, 1, 1 + blue); light_gradient (2,) =
# its x and y components (u, v = -1..1 across the crop, light 1 + gx u + gy v);
# jpeg_quality int64 (NO_JPEG: none). Plus noise_seed (B,) int64: each image's
# noise comes from its own seed, so it does not depend on the batch or its chunks.
PARAM_SHAPES: dict[str, tuple[int, ...]] = {
    "saturation": (), "gamma": (), "ink_cast": (3,), "paper_white": (3,), "black_level": (),
    "zoom": (), "corner_jitter": (4, 2), "contrast": (), "exposure": (), "white_balance": (3,),
    "light_gradient": (2,), "brightness": (), "blur_px": (), "blur_frac": (),
    "read_noise": (), "shot_noise": (), "jpeg_quality": (),
}

_POOL: ThreadPoolExecutor | None = None
_ALLOCATOR_WARM = False


def _check_preset(preset: str) -> dict[str, tuple[float, float]]:
    if preset not in PRESETS:
        raise ValueError(f"unknown channel preset {preset!r}: use one of {', '.join(PRESETS)}")
    return PRESETS[preset]


def sample_params(n: int, preset: str = "typical", seed: int = 0,
                  device: torch.device | str | None = None) -> dict[str, Tensor]:
    """Per-image parameters of ``n`` images drawn from ``PRESETS[preset]``.

    Deterministic for a seed (drawn on the CPU in a fixed order, then moved to
    ``device``). Returns a dict of float32 tensors shaped ``(n, *PARAM_SHAPES[k])``
    (``jpeg_quality`` int64) plus ``noise_seed``, (n,) int64, each image's
    noise seed.
    """
    ranges = _check_preset(preset)
    gen = torch.Generator().manual_seed(seed)
    raw = {}
    for key, shape in _SHAPES.items():
        lo, hi = ranges[key]
        raw[key] = lo + (hi - lo) * torch.rand((n, *shape), generator=gen, dtype=torch.float64)
    angle = 2 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    noise_seed = torch.randint(0, 2**62, (n,), generator=gen)
    ones = torch.ones(n, 1, dtype=torch.float64)
    wb = raw["white_balance"]
    p = {
        "saturation": raw["saturation"], "gamma": raw["gamma"], "ink_cast": raw["ink_cast"],
        "paper_white": raw["paper_white"][:, None] * (1 + raw["paper_tint"]),
        "black_level": raw["black_level"], "zoom": raw["zoom"], "corner_jitter": raw["corner_jitter"],
        "contrast": raw["contrast"], "exposure": raw["exposure"],
        "white_balance": torch.cat([1 + wb[:, :1], ones, 1 + wb[:, 1:]], 1),
        "light_gradient": raw["light_gradient"][:, None] * torch.stack([angle.cos(), angle.sin()], 1),
        "brightness": raw["brightness"], "blur_px": raw["blur_px"], "blur_frac": raw["blur_frac"],
        "read_noise": raw["read_noise"], "shot_noise": raw["shot_noise"],
    }
    out = {k: v.to(device=device, dtype=torch.float32) for k, v in p.items()}
    q = torch.round(raw["jpeg_quality"] / JPEG_STEP) * JPEG_STEP
    out["jpeg_quality"] = q.clamp(1, 100).to(device=device, dtype=torch.int64)
    out["noise_seed"] = noise_seed.to(device)
    return out


def identity_params(n: int, device: torch.device | str | None = None) -> dict[str, Tensor]:
    """Parameters of zero strength: the channel returns its input (up to float rounding
    in the warp). Replace single entries to run one step on its own."""
    def full(value: float, *shape: int) -> Tensor:
        return torch.full((n, *shape), float(value), device=device)

    return {
        "saturation": full(1), "gamma": full(1), "ink_cast": full(0, 3), "paper_white": full(1, 3),
        "black_level": full(0), "zoom": full(1), "corner_jitter": full(0, 4, 2), "contrast": full(1),
        "exposure": full(1), "white_balance": full(1, 3), "light_gradient": full(0, 2), "brightness": full(0),
        "blur_px": full(0), "blur_frac": full(0), "read_noise": full(0), "shot_noise": full(0),
        "jpeg_quality": torch.full((n,), NO_JPEG, dtype=torch.int64, device=device),
        "noise_seed": torch.zeros((n,), dtype=torch.int64, device=device),
    }


# ---------------------------------------------------------------- the steps

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


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max(1, torch.get_num_threads()), thread_name_prefix="physical-channel")
    return _POOL


def _share(work: Callable[[range], None], n: int, device: torch.device) -> None:
    """Run ``work`` on indices 0..n-1: on a CPU split among ``torch.get_num_threads()`` pool
    threads, one contiguous share each; elsewhere in one call. ``work`` must not run torch
    ops that start OpenMP teams (their spinning threads would slow the main thread)."""
    parts = max(1, torch.get_num_threads()) if device.type == "cpu" else 1
    step = max(1, math.ceil(n / parts))
    shares = [range(s, min(s + step, n)) for s in range(0, n, step)]
    if len(shares) > 1:
        list(_pool().map(work, shares))
    else:
        for share in shares:
            work(share)


def _gpu_codec(u: Tensor, quality: list[int]) -> Tensor:
    """torchvision (nvJPEG) round trip of (B, 3, H, W) uint8 images on a GPU, one call per quality."""
    from torchvision.io import decode_jpeg, encode_jpeg

    images = u.unbind(0)
    decoded: list[Tensor] = [images[0]] * len(images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to TorchCodec
        for q in sorted(set(quality)):
            members = [i for i, qi in enumerate(quality) if qi == q]
            data = encode_jpeg([images[i] for i in members], quality=q)
            # nvJPEG encodes into device memory; the decoder reads host bytes (kilobytes).
            host = torch.cat(data).cpu().split([len(d) for d in data])
            for i, image in zip(members, decode_jpeg(list(host), device=u.device)):
                decoded[i] = image
    return torch.stack(decoded)


def cpu_codec(bgr: np.ndarray, quality: list[int]) -> np.ndarray:
    """JPEG round trip, in place, of (B, H, W, 3) uint8 BGR images (OpenCV's layout) at
    per-image qualities (1-100); on return ``bgr`` holds the decoded images **in RGB**.

    OpenCV's codec, shared among ``torch.get_num_threads()`` threads (it
    releases the GIL). Its bytes and pixels equal torchvision's
    ``encode_jpeg``/``decode_jpeg`` (both libjpeg-turbo, 4:2:0, the same
    tables; tested), at 2-3x the speed: it takes the layout the channel
    writes, and no torch op runs in the workers (one there would start
    another OpenMP team, whose spinning threads slow the main thread).
    """
    def run(share: range) -> None:
        for i in share:
            ok, data = cv2.imencode(".jpg", bgr[i], [cv2.IMWRITE_JPEG_QUALITY, int(quality[i])])
            if not ok:
                raise RuntimeError(f"OpenCV could not encode a {bgr[i].shape} image as JPEG")
            bgr[i] = cv2.imdecode(data, cv2.IMREAD_COLOR_RGB)

    _share(run, len(bgr), torch.device("cpu"))
    return bgr


def jpeg_codec(u: Tensor, quality: list[int], out: Tensor | None = None) -> Tensor:
    """Real JPEG round trip of (B, 3, H, W) uint8 RGB images at per-image qualities (1-100).

    On a CPU, OpenCV's codec (:func:`cpu_codec`); on a GPU, torchvision's
    nvJPEG. Returns (B, 3, H, W) uint8, in ``out`` if given (it may be ``u``).
    """
    if u.device.type != "cpu":
        decoded = _gpu_codec(u, quality)
        return out.copy_(decoded) if out is not None else decoded
    bgr = u.flip(1).permute(0, 2, 3, 1).contiguous()
    rgb = torch.from_numpy(cpu_codec(bgr.numpy(), quality)).permute(0, 3, 1, 2)
    return out.copy_(rgb) if out is not None else rgb.contiguous()


def to_8bit(y: Tensor, out: Tensor, *, bgr: bool = False) -> Tensor:
    """Round (B, 3, H, W) values to 8 bits into uint8 ``out``: ``clamp(round(255 y), 0, 255)``.

    ``out`` may be any (B, 3, H, W) view, e.g. of a (B, H, W, 3) buffer;
    ``bgr=True`` writes the channels in reverse order (OpenCV's). Overwrites
    ``y``. (Rounds halves up, where ``torch.round`` rounds them to even: a
    value exactly halfway between two levels is as rare as any other float.)
    """
    torch.add(0.5, y, alpha=255, out=y).clamp_(0.0, 255.0)
    if not bgr:
        return out.copy_(y)    # the float -> uint8 conversion truncates: floor, as y >= 0
    for c in range(3):
        out[:, 2 - c].copy_(y[:, c])
    return out


def real_jpeg(y: Tensor, quality: Tensor, inplace: bool) -> Tensor:
    """JPEG of (B, 3, H, W) images in [0, 1] at per-image ``quality`` (int64; NO_JPEG skips).

    The value is the real codec's on the 8-bit grid, ``decode(encode(round(255 y))) / 255``;
    no gradient. ``inplace`` reuses ``y``'s memory for the result.
    """
    qs = quality.tolist()
    todo = [i for i, q in enumerate(qs) if q != NO_JPEG]
    if not todo:
        return y
    if len(todo) < len(qs):
        sub = torch.tensor(todo, device=y.device)
        out = y if inplace else y.clone()
        return out.index_copy_(0, sub, real_jpeg(y[sub], quality[sub], inplace=True))
    u = to_8bit(y if inplace else y.clone(), torch.empty(y.shape, dtype=torch.uint8, device=y.device))
    return torch.div(jpeg_codec(u, qs, out=u), 255, out=y if inplace else torch.empty_like(y))


# ---------------------------------------------------------------- the channel

def _check(x: Tensor, params: dict[str, Tensor]) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images (B, 3, H, W), got {tuple(x.shape)}")
    missing = [k for k in (*PARAM_SHAPES, "noise_seed") if k not in params]
    if missing:
        raise ValueError(f"channel params lack {', '.join(missing)}")
    for k, shape in PARAM_SHAPES.items():
        if tuple(params[k].shape) != (x.shape[0], *shape):
            raise ValueError(f"channel param {k!r} has shape {tuple(params[k].shape)}, "
                             f"expected {(x.shape[0], *shape)}")
    if tuple(params["noise_seed"].shape) != (x.shape[0],):
        raise ValueError(f"channel param 'noise_seed' has shape {tuple(params['noise_seed'].shape)}, "
                         f"expected {(x.shape[0],)}")


def _warm_allocator() -> None:
    """Once per process: make glibc's malloc serve the chunks' buffers from its heap.

    glibc maps every allocation above a threshold (128 kB at first) straight
    from the system and unmaps it when freed, so each chunk's intermediates
    would be paged in afresh (a page fault per 4 kB: 60,000-100,000 faults and
    up to 2x the time of a 64 x 299 x 299 batch, measured). Freeing one mapped
    block raises that threshold to its size (at most 32 MiB) and the heap's
    trim threshold to twice that, for the rest of the process; chunks of
    CHUNK_BYTES then reuse heap memory. Elsewhere (other allocators) this is
    one harmless allocation.
    """
    global _ALLOCATOR_WARM
    if not _ALLOCATOR_WARM:
        _ALLOCATOR_WARM = True
        torch.empty(31 << 20, dtype=torch.uint8)   # freed at once; just under glibc's 32 MiB cap


def chunk_size(x: Tensor, radius: int, graph: bool = False) -> int:
    """Images per chunk: on a CPU, as many as fill CHUNK_BYTES (GRAD_CHUNK_BYTES when
    recording a ``graph``) per intermediate; else all.

    On a CPU a whole 64 x 299 x 299 batch spends more time page-faulting each
    fresh 70 MB intermediate than computing it (2x slower in all); chunks of
    a few MB stay in cache and the allocator reuses their memory (see
    :func:`_warm_allocator`). Every step works image by image, so chunks do
    not change the result.
    """
    if x.device.type != "cpu":
        return x.shape[0]
    _warm_allocator()
    per_image = x.shape[1] * (x.shape[2] + 2 * radius) * (x.shape[3] + 2 * radius) * x.element_size()
    budget = GRAD_CHUNK_BYTES if graph else CHUNK_BYTES
    return max(1, min(x.shape[0], budget // per_image))


def _analog(x: Tensor, p: dict[str, Tensor], back: Tensor, kernels: Tensor, noise: Tensor,
            inplace: bool) -> Tensor:
    """Every step but JPEG, for a chunk of images: (B, 3, H, W) -> (B, 3, H, W).

    The result is clamped to [0, 1] unless ``inplace`` (no gradient), where
    the caller clamps it (:func:`to_8bit` does it on the way).
    """
    h, w = x.shape[-2:]
    radius = kernels.shape[1] // 2
    y = warp(x, p, radius, back)
    y = print_and_light(y, p, light_field(p, h, w, radius), inplace)
    y = blur(y, kernels)
    y = add_noise(y, p, noise_field(p["noise_seed"], noise), inplace)
    return y if inplace else y.clamp(0.0, 1.0)


def apply_channel(x: Tensor, params: dict[str, Tensor], *, differentiable: bool = False,
                  jpeg: str = "codec", jpeg_grad: str = "identity") -> Tensor:
    """Send (B, 3, H, W) images in [0, 1] through the channel with per-image ``params``.

    Returns (B, 3, H, W) in [0, 1], same dtype and device. With
    ``differentiable=False`` no graph is recorded and the work is done in
    place. With ``differentiable=True`` the output has exactly the same value
    and a gradient w.r.t. ``x``.

    ``jpeg="codec"`` (the default) is the real codec; its backward is
    ``jpeg_grad``: ``"identity"`` (straight through) or ``"kornia"`` (the
    gradient of ``kornia.enhance.jpeg_codec_differentiable``; slow on a CPU).
    ``jpeg="kornia"`` replaces the codec by Kornia's differentiable JPEG in
    the forward pass too: an approximation (mean absolute difference to the
    codec ~0.005 at quality 80, a third of JPEG's own change), but one batched
    tensor computation, where torchvision's nvJPEG encoder works one image at
    a time: the option for GPU throughput.
    """
    _check(x, params)
    if jpeg not in ("codec", "kornia"):
        raise ValueError(f"jpeg must be 'codec' or 'kornia', got {jpeg!r}")
    if jpeg_grad not in ("identity", "kornia"):
        raise ValueError(f"jpeg_grad must be 'identity' or 'kornia', got {jpeg_grad!r}")
    p = {k: v.to(x.device) for k, v in params.items()}
    p.update({k: v.to(x.dtype) for k, v in p.items() if v.is_floating_point()})
    if x.shape[0] == 0:
        return x.clone()
    with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
        inplace = not torch.is_grad_enabled()
        b, _, h, w = x.shape
        sigma = blur_sigma(p, w)
        radius = blur_radius(sigma)
        # Per-batch set-up, then the image-wise steps chunk by chunk.
        back = sampling_matrices(p, h, w, radius, x.dtype)
        kernels = blur_kernels(sigma, radius)
        step = chunk_size(x, radius, graph=not inplace)
        parts = [slice(s, s + step) for s in range(0, b, step)]
        # Without a graph, every chunk reuses one noise buffer (on a CPU, fresh memory
        # costs a page fault per 4 kB the first time it is written); a graph may keep
        # each chunk's noise, so then each gets its own.
        noise = x.new_empty((min(step, b), 1, h, w)) if inplace else None

        def analog(part: slice) -> Tensor:
            q = {k: v[part] for k, v in p.items() if v.dim()}
            n = len(q["zoom"])
            buf = noise[:n] if noise is not None else x.new_empty((n, 1, h, w))
            return _analog(x[part], q, back[part], kernels[part], buf, inplace)

        quality = p["jpeg_quality"]
        if jpeg == "codec" and inplace:
            # Each chunk goes through JPEG while it is in cache, straight into the output.
            y = torch.empty_like(x)
            cpu = x.device.type == "cpu"
            # On a CPU, rounded straight into OpenCV's layout: (n, H, W, 3), BGR.
            u = torch.empty((min(step, b), h, w, 3) if cpu else (min(step, b), 3, h, w),
                            dtype=torch.uint8, device=x.device)
            for part in parts:
                z = analog(part)
                n = len(z)
                if NO_JPEG in quality[part]:
                    y[part] = real_jpeg(z.clamp_(0.0, 1.0), quality[part], inplace=True)
                elif cpu:
                    to_8bit(z, u[:n].permute(0, 3, 1, 2), bgr=True)
                    cpu_codec(u[:n].numpy(), quality[part].tolist())
                    torch.div(u[:n].permute(0, 3, 1, 2), 255, out=y[part])     # now RGB
                else:
                    uz = to_8bit(z, u[:n])
                    torch.div(jpeg_codec(uz, quality[part].tolist(), out=uz), 255, out=y[part])
            return y
        if len(parts) == 1:
            y = analog(parts[0])
        elif inplace:
            y = torch.empty_like(x)
            for part in parts:
                y[part] = analog(part)
        else:
            y = torch.cat([analog(part) for part in parts])
        if inplace:
            y.clamp_(0.0, 1.0)
        if jpeg == "kornia" or jpeg_grad == "kornia":
            jpg = jpeg_codec_differentiable(y, quality.clamp_min(1).to(y.dtype)).clamp(0.0, 1.0)
            jpg = torch.where(_per_image(quality) == NO_JPEG, y, jpg)
            if jpeg == "kornia":
                return jpg
        real = real_jpeg(y.detach(), quality, inplace=False)
        # Straight through: the value is exactly `real` (y - y == 0), the gradient y's or Kornia's.
        y = jpg if jpeg_grad == "kornia" else y
        return real + (y - y.detach())


def simulate(x: Tensor, preset: str = "typical", seed: int = 0, *, differentiable: bool = False,
             jpeg: str = "codec", jpeg_grad: str = "identity") -> Tensor:
    """:func:`apply_channel` with parameters drawn by :func:`sample_params` on ``x``'s device."""
    return apply_channel(x, sample_params(x.shape[0], preset, seed, device=x.device),
                         differentiable=differentiable, jpeg=jpeg, jpeg_grad=jpeg_grad)
