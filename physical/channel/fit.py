"""Fitting the channel to photographed crops: the parameters that turn digital images into their crops.

The data are pairs: a digital image as it was printed and its crop from a
photo (registered by ingest), with the photo each crop came from. The model
is the channel itself (:mod:`.ops`), without its random steps: for crop i of
photo j,

    crop_i ~ blur_j(local_tone(print_and_light(warp(x_i; jitter_i); tone_j, exposure_i, gradient_i); k_i))

- per photo j (shared by its crops: one printer, one light, one camera
  setting): ``saturation``, ``ink_cast`` (3), ``paper_white`` (3),
  ``black_level``, ``white_balance`` (red and blue; green is the reference)
  and the blur sigma;
- per crop i (where it lies in the light and in the phone's local tone
  mapping, and how ingest registered it): ``exposure`` (the photo's
  geometric mean is 1: the photo's overall level is in ``paper_white``),
  ``light_gradient`` (2), ``local_tone`` (the photo's mean is 0: its
  overall curve is in ``ink_cast``) and ``corner_jitter`` (4, 2).

It starts close (:func:`initial_levels`): each photo's levels, colours and
tone curve from a robust regression of its crops on their pictures, each
crop's exposure from its own level, so that a photo with a strong colour
cast or a dark paper starts as near its optimum as a neutral one.

``gamma``, ``contrast`` and ``brightness`` stay at their neutral values:
with the others free they add nothing the data can tell apart (the tone
curve's mid-grey is ``ink_cast``, the levels are ``paper_white`` and
``black_level``). The fit minimises the mean squared error over all pixels
with Adam, through the channel's own differentiable steps, all crops in one
batch, until the loss settles: checked every CHECK_EVERY steps from
MIN_STEPS on, at most ``steps`` (FIT_STEPS, a ceiling no camera seen so far
comes near: from the start above, fits settle in a few hundred steps).
Images wider than FIT_SIDE are fitted at FIT_SIDE (both sides of every pair
resized alike) and the blur scaled back.

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
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from kornia.geometry.transform import warp_perspective

from .ops import BLUR_SIGMAS, LUMA, blur_kernels, homographies, light_field, local_tone, print_and_light
from .presets import CROP_ZOOM, identity_params
from .profile import PHOTO_KEYS

FIT_SIDE = 64          # images wider than this are fitted at this width
MAX_SIGMA = 2.5        # px at the fitted width; wider blur is not a registered crop's
INIT_SIGMA = 0.7       # px at the fitted width: the blur the fit starts from
MIN_INIT_BLACK = 0.04  # a fainter black's colour (10 levels) does not set the starting white balance
FIT_STEPS = 3000       # at most; the fit stops when it has converged, checked every CHECK_EVERY steps from MIN_STEPS
# At least this many: the loss settles sooner than the trade between a crop's exposure and local tone
# (on the crops above, k within 0.05-0.07 at 300 steps, 0.08-0.12 at 150).
MIN_STEPS = 300
CHECK_EVERY = 10
# A crop's local tone k costs as much as a residual of k * TONE_PRIOR on each of its pixels: a weak
# prior towards none, for crops that cannot tell their tone from their exposure (a picture with a narrow
# range of values), which a real tone curve overrules. Measured on crops the channel made (6 photos of 20):
# without a local tone, |k| fitted up to 0.03 and exposure within 1.5 % at 0.01 (0.1 and 4 % with no prior
# and 150 steps); with |k| up to 0.3, k within 0.05-0.07 at 0.01, while 0.02 and 0.03 pulled it 0.15 short.
TONE_PRIOR = 0.01
# The same for the white balance's log gains: they scale black and paper white alike, so only the black's
# colour tells them from a tinted paper (and a picture without dark pixels hardly does): where the data
# cannot tell, the cast stays in the paper white and the gains at 1.
WB_PRIOR = 0.01
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
    "local_tone": (-0.8, 0.8),
}
Status = Callable[[int, float, float], None]   # (steps done, loss, its relative drop over the last quarter)


@dataclass
class ChannelFit:
    """The fitted parameters (CPU tensors) and how well they fit."""

    photo: dict[str, Tensor]          # (P, ...): saturation, ink_cast, paper_white, black_level, white_balance,
                                      # blur_frac, read_noise, shot_noise
    crop: dict[str, Tensor]           # (N, ...): exposure, light_gradient, corner_jitter, local_tone
    rms: Tensor                       # (P,) RMS residual of each photo's crops, 0-1 units
    rms_all: float
    converged: bool
    loss_history: list[float] = field(default_factory=list)
    seconds: float = 0.0


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
    for k in PHOTO_KEYS:
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
    y = local_tone(print_and_light(y, p, light_field(p, h, w, radius), inplace=False), p)
    # The blur as two products with banded matrices, one pair per photo: a grouped convolution with
    # a kernel per image (as the channel runs it) has a slow backward pass for its weights on a CPU.
    kernels = blur_kernels(sigma, radius)                          # (P, K)
    rows, cols = _band(kernels, h)[photo], _band(kernels, w)[photo]
    # Clamped as the channel's output and an 8-bit photo are (else the local tone bends to mimic clipping).
    return (rows[:, None] @ y @ cols[:, None].transpose(-1, -2)).clamp(0.0, 1.0)


def initial_levels(x: Tensor, t: Tensor, photo: Tensor, n_photos: int) -> dict[str, Tensor]:
    """Where the fit starts: each photo's levels, colours and tone curve from its crops.

    Per photo and channel c, the crops' pixels are regressed on their
    pictures' (blurred by INIT_SIGMA, as the fit starts):
    ``crop_c ~ a_c + b_c x_c + g_c luma + d_c x_c (1 - x_c)``, least squares,
    then again without the pixels more than three robust standard deviations
    off (glare, a misregistered edge). With white balance w_c, black B and
    paper white W_c, the channel maps ``v = s x + (1 - s) luma`` to
    ``w_c (B + (W_c - B) t_c(v))``, ``t_c(v) = v + k_c v (1 - v)``; so
    ``a_c = w_c B``, ``b_c + g_c = w_c (W_c - B)``, ``s = b_c / (b_c + g_c)``
    and ``k_c = d_c / (b_c + g_c)``. Green is the white balance's reference,
    so ``B = a_g`` and ``w_c = a_c / a_g`` (1 where the black is under
    MIN_INIT_BLACK: too faint to tell). Each crop's exposure is then the
    least-squares gain that maps that photo's prediction of it onto it.
    Returns the fit's variables (``BOUNDS``' keys), (P, ...) and (N, ...).
    """
    from kornia.filters import gaussian_blur2d

    xb = gaussian_blur2d(x, (5, 5), (INIT_SIGMA, INIT_SIGMA), border_type="replicate")
    luma = sum(xb[:, c] * LUMA[c] for c in range(3))
    coef = torch.zeros(n_photos, 3, 4, dtype=torch.float64)
    for j in range(n_photos):
        m = photo == j
        lj = luma[m].flatten().double()
        for c in range(3):
            xc, y = xb[m, c].flatten().double(), t[m, c].flatten().double()
            design = torch.stack([torch.ones_like(xc), xc, lj, xc * (1 - xc)], 1)
            keep = torch.ones_like(y, dtype=torch.bool)
            for _ in range(2):
                sol = torch.linalg.lstsq(design[keep], y[keep, None]).solution[:, 0]
                r = y - design @ sol
                mad = float((r - r.median()).abs().median()) * 1.4826
                keep = r.abs() <= 3 * mad + 1e-6
            coef[j, c] = sol
    a, b, g, d = coef.unbind(-1)                                   # (P, 3) each
    span = (b + g).clamp_min(0.05)
    black = a[:, 1]
    wb = torch.where(black[:, None] > MIN_INIT_BLACK, a / black.clamp_min(MIN_INIT_BLACK)[:, None], torch.ones_like(a))
    lo, hi = BOUNDS["log_white_balance"]
    wb = wb.clamp_min(1e-3).log().clamp(lo, hi).exp()
    v = {
        "saturation": (b / span).median(1).values, "ink_cast": d / span / 4,
        "paper_white": span / wb + black[:, None], "black_level": black,
        "log_white_balance": wb[:, [0, 2]].log(), "sigma": torch.full((n_photos,), INIT_SIGMA),
    }
    v = {k: val.float() for k, val in v.items()}
    v.update({"log_exposure": torch.zeros(len(photo)), "light_gradient": torch.zeros(len(photo), 2),
              "corner_jitter": torch.zeros(len(photo), 4, 2), "local_tone": torch.zeros(len(photo))})
    for k, (lo, hi) in BOUNDS.items():
        v[k] = v[k].clamp(lo, hi)
    # Each crop's exposure: the gain that best scales the photo's prediction of it onto it. (Its local
    # tone starts at 0: fitted with the gain in closed form, the curve of a crop with a narrow range of
    # values is ill-conditioned, and started the fit farther off.)
    with torch.no_grad():
        photo_p, crop_p, sigma = _params(v, photo, n_photos)
        model = _render(x, fitted_params(photo_p, crop_p, photo), sigma, photo, _radius(sigma))
    gain = (model * t).sum((1, 2, 3)) / model.pow(2).sum((1, 2, 3)).clamp_min(1e-8)
    v["log_exposure"] = gain.clamp_min(1e-3).log().clamp(*BOUNDS["log_exposure"])
    return v


def _params(v: dict[str, Tensor], photo: Tensor, n_photos: int
            ) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor]:
    """The fit's variables as the channel's photo and crop parameters, and the blur sigma."""
    counts = torch.bincount(photo, minlength=n_photos).to(v["log_exposure"].dtype)

    def centred(value: Tensor) -> Tensor:     # the photo's mean removed
        mean = torch.zeros(n_photos, dtype=value.dtype).index_add(0, photo, value) / counts
        return value - mean[photo]

    ones = torch.ones(n_photos, 1)
    wb = v["log_white_balance"].exp()
    photo_p = {"saturation": v["saturation"], "ink_cast": v["ink_cast"], "paper_white": v["paper_white"],
               "black_level": v["black_level"], "white_balance": torch.cat([wb[:, :1], ones, wb[:, 1:]], 1)}
    # Exposure: the photo's geometric mean is 1 (its level is in paper_white); local tone: the
    # photo's mean is 0 (its overall curve is in ink_cast).
    crop_p = {"exposure": centred(v["log_exposure"]).exp(), "light_gradient": v["light_gradient"],
              "corner_jitter": v["corner_jitter"], "local_tone": centred(v["local_tone"])}
    return photo_p, crop_p, v["sigma"]


def fit_channel(digital: Tensor, crops: Tensor, photo: Tensor, steps: int = FIT_STEPS, lr: float = 0.02,
                status: Status | None = None, local_tone: bool = True) -> ChannelFit:
    """Fit the channel's deterministic part per photo and per crop (module docstring).

    ``local_tone=False`` holds every crop's local tone at 0 (its bound set to
    0): the ablation in docs/findings.md, ``physical calibrate --no-local-tone``.

    ``status(steps, loss, drop)`` is called every CHECK_EVERY steps: the loss
    and how much it fell over the last quarter of the steps (relative; the fit
    has converged when that is under CONVERGE_RTOL).
    """
    n_photos = _check(digital, crops, photo)
    start = time.perf_counter()
    width = digital.shape[-1]
    x, t = _resize(digital.float(), FIT_SIDE), _resize(crops.float(), FIT_SIDE)
    scale = width / x.shape[-1]                     # fitted px -> full-width px
    v = initial_levels(x, t, photo, n_photos)
    for tensor in v.values():
        tensor.requires_grad_(True)
    slow = {"corner_jitter", "light_gradient"}
    opt = torch.optim.Adam([{"params": [v[k] for k in v if k not in slow], "lr": lr},
                            {"params": [v[k] for k in slow], "lr": lr / 5}])
    counts = torch.bincount(photo, minlength=n_photos).float()

    bounds = dict(BOUNDS)
    if not local_tone:
        bounds["local_tone"] = (0.0, 0.0)
    history: list[float] = []
    for step in range(steps):
        if step >= MIN_STEPS and step % CHECK_EVERY == 0 and _settled(history):
            break
        photo_p, crop_p, sigma = _params(v, photo, n_photos)
        p = fitted_params(photo_p, crop_p, photo)
        loss = F.mse_loss(_render(x, p, sigma, photo, _radius(sigma)), t)
        loss = (loss + TONE_PRIOR ** 2 * crop_p["local_tone"].pow(2).mean()
                + WB_PRIOR ** 2 * v["log_white_balance"].pow(2).mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for k, (a, b) in bounds.items():
                v[k].clamp_(a, b)
        history.append(float(loss.detach()))
        if status is not None and len(history) % CHECK_EVERY == 0:
            status(len(history), history[-1], _drop(history))

    with torch.no_grad():
        photo_p, crop_p, sigma = _params(v, photo, n_photos)
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
                      converged=converged, loss_history=history, seconds=time.perf_counter() - start)


def _drop(history: list[float]) -> float:
    """How much the loss fell over the last CONVERGE_TAIL of the steps, relative to where it was."""
    if len(history) < 2:
        return math.inf
    tail = history[int(len(history) * (1 - CONVERGE_TAIL))]
    return (tail - history[-1]) / tail if tail > 0 else 0.0


def _settled(history: list[float]) -> bool:
    """The last CONVERGE_TAIL of the steps lowered the loss by less than CONVERGE_RTOL of it."""
    return len(history) >= 2 and _drop(history) <= CONVERGE_RTOL


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
