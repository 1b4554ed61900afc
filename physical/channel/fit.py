"""Fitting the channel to photographed crops: the parameters that turn digital images into their crops.

The data are pairs: a digital image as it was printed and its crop from a
photo (registered by ingest), with the photo each crop came from. The model
is the channel itself (:mod:`.ops`), without its random steps: for crop i of
photo j,

    crop_i ~ blur_j(print_and_light(warp(x_i; jitter_i); tone_j, exposure_i, gradient_i))

- per photo j (shared by its crops: one printer, one light, one camera
  setting): ``saturation``, ``ink_cast`` (3), ``paper_white`` (3),
  ``black_level``, ``white_balance`` (red and blue; green is the reference)
  and the blur sigma;
- per crop i (where it lies in the light, and how ingest registered it):
  ``exposure`` (the photo's geometric mean is 1: the photo's overall level
  is in ``paper_white``), ``light_gradient`` (2) and ``corner_jitter`` (4, 2).

``gamma``, ``contrast`` and ``brightness`` stay at their neutral values:
with the others free they add nothing the data can tell apart (the tone
curve's mid-grey is ``ink_cast``, the levels are ``paper_white`` and
``black_level``). The fit minimises the mean squared error over all pixels
with Adam, through the channel's own differentiable steps, all crops in one
batch, until the loss settles (at most ``steps``). Images wider than FIT_SIDE
are fitted at FIT_SIDE (both sides of every pair resized alike) and the blur
scaled back.

The noise is what the fit leaves: the residual's mean over the three
channels (the channel's noise is the same in all three) has, at brightness I,
a variance ``read_noise**2 + shot_noise**2 * I``; its robust variance
(median absolute deviation) in bins of brightness is fitted by non-negative
least squares, per photo. What the deterministic model cannot follow counts
as noise too: the estimate is an upper bound.

Shape: digital and crops (N, 3, H, W) in [0, 1]; ``photo`` (N,) int64 in
0..P-1, every photo with at least one crop.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from kornia.geometry.transform import warp_perspective

from .ops import BLUR_SIGMAS, blur_kernels, homographies, light_field, print_and_light
from .presets import CROP_ZOOM, identity_params

FIT_SIDE = 64          # images wider than this are fitted at this width
MAX_SIGMA = 2.5        # px at the fitted width; wider blur is not a registered crop's
FIT_STEPS = 200        # at most; the fit stops when it has converged, checked every 10 steps from MIN_STEPS
MIN_STEPS = 150
# The fit has converged when the last CONVERGE_TAIL of the steps lowered the loss by less than this share
# (the slow tail is the per-crop jitter settling; more steps then change the fit little).
CONVERGE_TAIL = 0.25
CONVERGE_RTOL = 0.02
NOISE_BINS = 8
MIN_BIN_PIXELS = 200

# Where each parameter may go: the fit clamps to these after every step.
BOUNDS = {
    "saturation": (0.0, 1.5), "ink_cast": (-0.25, 0.25), "paper_white": (0.05, 2.0),
    "black_level": (-0.2, 0.7), "log_white_balance": (-0.7, 0.7), "sigma": (0.05, MAX_SIGMA),
    "log_exposure": (-1.5, 1.5), "light_gradient": (-0.6, 0.6), "corner_jitter": (-0.12, 0.12),
}


@dataclass
class ChannelFit:
    """The fitted parameters (CPU tensors) and how well they fit."""

    photo: dict[str, Tensor]          # (P, ...): saturation, ink_cast, paper_white, black_level, white_balance,
                                      # blur_frac, read_noise, shot_noise
    crop: dict[str, Tensor]           # (N, ...): exposure, light_gradient, corner_jitter
    rms: Tensor                       # (P,) RMS residual of each photo's crops, 0-1 units
    rms_all: float
    converged: bool
    loss_history: list[float] = field(default_factory=list)


def _check(digital: Tensor, crops: Tensor, photo: Tensor) -> int:
    if digital.dim() != 4 or digital.shape[1] != 3:
        raise ValueError(f"expected digital images (N, 3, H, W), got {tuple(digital.shape)}")
    if crops.shape != digital.shape:
        raise ValueError(f"crops {tuple(crops.shape)} and digital images {tuple(digital.shape)} differ in shape")
    if photo.shape != (digital.shape[0],) or photo.dtype != torch.int64:
        raise ValueError(f"photo must be (N,) int64, got {tuple(photo.shape)} {photo.dtype}")
    if len(photo) == 0:
        raise ValueError("no crops to fit")
    p = int(photo.max()) + 1
    if int(photo.min()) < 0 or torch.bincount(photo, minlength=p).min() == 0:
        raise ValueError("photo indices must cover 0..P-1, every photo with a crop")
    return p


def _resize(x: Tensor, side: int) -> Tensor:
    if x.shape[-1] <= side:
        return x
    h = max(1, round(x.shape[-2] * side / x.shape[-1]))
    return F.interpolate(x, size=(h, side), mode="area")


def fitted_params(photo_p: dict[str, Tensor], crop_p: dict[str, Tensor], photo: Tensor) -> dict[str, Tensor]:
    """The channel's per-image parameters (as :func:`apply_channel` takes them, no JPEG): photo-level
    values gathered by ``photo`` (N,), crop-level values as they are."""
    n = len(photo)
    p = identity_params(n, device=photo.device)
    for k in ("saturation", "ink_cast", "paper_white", "black_level", "white_balance", "blur_frac",
              "read_noise", "shot_noise"):
        if k in photo_p:
            p[k] = photo_p[k][photo]
    p.update({k: v for k, v in crop_p.items()})
    p["zoom"] = torch.full((n,), CROP_ZOOM, device=photo.device)
    return p


def _band(kernels: Tensor, n: int) -> Tensor:
    """(P, K) 1-D kernels -> (P, n, n + K - 1) matrices of their 'valid' convolution."""
    return torch.stack([F.pad(kernels, (i, n - 1 - i)) for i in range(n)], 1)


def _radius(sigma: Tensor) -> int:
    """Kernel radius for this step: the channel's BLUR_SIGMAS sigmas of the widest blur, plus one
    pixel of room to grow (a fixed radius for MAX_SIGMA would pad 32 px crops to 46 px; the
    blur of registered crops is mostly under 1 px)."""
    return min(math.ceil(BLUR_SIGMAS * MAX_SIGMA), math.ceil(BLUR_SIGMAS * float(sigma.detach().max())) + 1)


def _render(x: Tensor, p: dict[str, Tensor], sigma: Tensor, photo: Tensor, radius: int) -> Tensor:
    """The deterministic channel: (N, 3, H, W) -> (N, 3, H, W), photo j's crops blurred with ``sigma[j]``."""
    h, w = x.shape[-2:]
    # Kornia's warp, which :func:`warp` reproduces faster but without a gradient for the jitter.
    y = warp_perspective(x, homographies(p, h, w, radius).to(x.dtype), (h + 2 * radius, w + 2 * radius),
                         padding_mode="border", align_corners=True)
    y = print_and_light(y, p, light_field(p, h, w, radius), inplace=False)
    # The blur as two products with banded matrices, one pair per photo: a grouped convolution with
    # a kernel per image (as the channel runs it) has a slow backward pass for its weights on a CPU.
    kernels = blur_kernels(sigma, radius)                          # (P, K)
    rows, cols = _band(kernels, h)[photo], _band(kernels, w)[photo]
    return rows[:, None] @ y @ cols[:, None].transpose(-1, -2)


def fit_channel(digital: Tensor, crops: Tensor, photo: Tensor, steps: int = FIT_STEPS, lr: float = 0.02
                ) -> ChannelFit:
    """Fit the channel's deterministic part per photo and per crop (module docstring)."""
    n_photos = _check(digital, crops, photo)
    width = digital.shape[-1]
    x, t = _resize(digital.float(), FIT_SIDE), _resize(crops.float(), FIT_SIDE)
    scale = width / x.shape[-1]                     # fitted px -> full-width px
    n = len(photo)
    # Starting point: paper white and black from the crops' own extremes.
    hi = torch.stack([t[photo == j].amax(dim=(0, 2, 3)) for j in range(n_photos)])
    lo = torch.stack([t[photo == j].amin(dim=(0, 2, 3)).mean() for j in range(n_photos)])
    v = {
        "saturation": torch.ones(n_photos), "ink_cast": torch.zeros(n_photos, 3), "paper_white": hi.clamp(0.3, 1.0),
        "black_level": lo.clamp(0.0, 0.5), "log_white_balance": torch.zeros(n_photos, 2),
        "sigma": torch.full((n_photos,), 0.7), "log_exposure": torch.zeros(n),
        "light_gradient": torch.zeros(n, 2), "corner_jitter": torch.zeros(n, 4, 2),
    }
    for tensor in v.values():
        tensor.requires_grad_(True)
    slow = {"corner_jitter", "light_gradient"}
    opt = torch.optim.Adam([{"params": [v[k] for k in v if k not in slow], "lr": lr},
                            {"params": [v[k] for k in slow], "lr": lr / 5}])
    counts = torch.bincount(photo, minlength=n_photos).float()

    def params() -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor]:
        ones = torch.ones(n_photos, 1)
        wb = v["log_white_balance"].exp()
        photo_p = {"saturation": v["saturation"], "ink_cast": v["ink_cast"], "paper_white": v["paper_white"],
                   "black_level": v["black_level"], "white_balance": torch.cat([wb[:, :1], ones, wb[:, 1:]], 1)}
        # Exposure: the photo's geometric mean is 1 (its level is in paper_white).
        mean = torch.zeros(n_photos).index_add(0, photo, v["log_exposure"]) / counts
        crop_p = {"exposure": (v["log_exposure"] - mean[photo]).exp(), "light_gradient": v["light_gradient"],
                  "corner_jitter": v["corner_jitter"]}
        return photo_p, crop_p, v["sigma"]

    history: list[float] = []
    for step in range(steps):
        if step >= MIN_STEPS and step % 10 == 0 and _settled(history):
            break
        photo_p, crop_p, sigma = params()
        p = fitted_params(photo_p, crop_p, photo)
        loss = F.mse_loss(_render(x, p, sigma, photo, _radius(sigma)), t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for k, (a, b) in BOUNDS.items():
                v[k].clamp_(a, b)
        history.append(float(loss.detach()))

    with torch.no_grad():
        photo_p, crop_p, sigma = params()
        p = fitted_params(photo_p, crop_p, photo)
        model = _render(x, p, sigma, photo, _radius(sigma))
        residual = t - model
        per_image = residual.pow(2).mean(dim=(1, 2, 3))
        rms = (torch.zeros(n_photos).index_add(0, photo, per_image) / counts).sqrt()
        read, shot = noise_levels(residual, model, photo, n_photos)
    converged = _settled(history)
    photo_out = {k: t_.detach().clone() for k, t_ in photo_p.items()}
    photo_out["blur_frac"] = (v["sigma"].detach() * scale / width).clone()
    photo_out["read_noise"], photo_out["shot_noise"] = read, shot
    crop_out = {k: t_.detach().clone() for k, t_ in crop_p.items()}
    return ChannelFit(photo=photo_out, crop=crop_out, rms=rms, rms_all=float(residual.pow(2).mean().sqrt()),
                      converged=converged, loss_history=history)


def _settled(history: list[float]) -> bool:
    """The last CONVERGE_TAIL of the steps lowered the loss by less than CONVERGE_RTOL of it."""
    if len(history) < 2:
        return False
    tail = history[int(len(history) * (1 - CONVERGE_TAIL))]
    return (tail - history[-1]) <= CONVERGE_RTOL * tail


def noise_levels(residual: Tensor, model: Tensor, photo: Tensor, n_photos: int) -> tuple[Tensor, Tensor]:
    """(read_noise, shot_noise), each (P,): ``std**2 = read**2 + shot**2 * I`` fitted, by non-negative
    least squares, to the robust variance of the channel-mean residual in bins of brightness I."""
    from scipy.optimize import nnls

    r = residual.mean(1)                         # (N, H, W): the channels' common part
    level = model.mean(1).clamp(0, 1)
    read, shot = torch.zeros(n_photos), torch.zeros(n_photos)
    edges = torch.linspace(0, 1, NOISE_BINS + 1)
    for j in range(n_photos):
        rj, lj = r[photo == j].flatten(), level[photo == j].flatten()
        rows, target = [], []
        for b in range(NOISE_BINS):
            m = (lj >= edges[b]) & (lj < edges[b + 1]) if b < NOISE_BINS - 1 else (lj >= edges[b])
            if int(m.sum()) < MIN_BIN_PIXELS:
                continue
            vals = rj[m]
            mad = (vals - vals.median()).abs().median()
            rows.append([1.0, float(lj[m].mean())])
            target.append(float((1.4826 * mad) ** 2))
        if not rows:
            continue
        coef, _ = nnls(np.array(rows), np.array(target))
        read[j], shot[j] = math.sqrt(coef[0]), math.sqrt(coef[1])
    return read, shot
