"""The channel's parameters: their ranges in the presets, per-image draws, and the identity.

Everything here is data or draws it; the steps that use the parameters are in
:mod:`.ops`, :mod:`.codec` and :mod:`.pipeline`.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

# ingest crops each slot inset by 2 % of its side on every side and resizes
# it to the digital image's size: a crop is the picture magnified by this.
CROP_ZOOM = 1 / (1 - 2 * 0.02)
JPEG_STEP = 5      # qualities are drawn on a grid of 5: few groups, one codec call each
NO_JPEG = 0        # a jpeg_quality of 0 skips JPEG for that image

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
#   local_tone     the tone curve of the phone's local tone mapping (HDR) where the crop lies:
#                  y + local_tone * y (1 - y); 0 in every preset (they follow a camera without
#                  it); a calibrated profile holds the fitted value of every crop
# blur and noise
#   blur_px        Gaussian sigma in crop pixels (resampling in ingest)
#   blur_frac      Gaussian sigma as a fraction of the crop's width (lens, ink spread)
#   read_noise     noise std in the dark
#   shot_noise     noise std added at full white (variance grows linearly with brightness)
# JPEG
#   jpeg_quality   quality 1-100, rounded to a multiple of JPEG_STEP
#
# The values follow capture/camera's printer and phone (paper 0.92-0.97, black
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
        "light_gradient": (0.0, 0.02), "brightness": (-0.02, 0.02), "local_tone": (0.0, 0.0),
        "blur_px": (0.0, 0.3), "blur_frac": (0.0, 0.002),
        "read_noise": (0.0, 0.003), "shot_noise": (0.0, 0.004),
        "jpeg_quality": (90, 100),
    },
    "typical": {
        "saturation": (0.78, 0.93), "gamma": (0.95, 1.2), "ink_cast": (-0.03, 0.03),
        "paper_white": (0.9, 0.97), "paper_tint": (-0.015, 0.015), "black_level": (0.07, 0.15),
        "zoom": (CROP_ZOOM, CROP_ZOOM), "corner_jitter": (-0.015, 0.015),
        "contrast": (0.9, 1.1), "exposure": (0.85, 1.05), "white_balance": (-0.06, 0.06),
        "light_gradient": (0.0, 0.06), "brightness": (-0.04, 0.04), "local_tone": (0.0, 0.0),
        "blur_px": (0.2, 0.5), "blur_frac": (0.002, 0.005),
        "read_noise": (0.002, 0.006), "shot_noise": (0.004, 0.01),
        "jpeg_quality": (75, 95),
    },
    "harsh": {
        "saturation": (0.6, 0.8), "gamma": (1.05, 1.4), "ink_cast": (-0.05, 0.05),
        "paper_white": (0.82, 0.92), "paper_tint": (-0.025, 0.025), "black_level": (0.12, 0.22),
        "zoom": (CROP_ZOOM, CROP_ZOOM), "corner_jitter": (-0.04, 0.04),
        "contrast": (0.75, 1.25), "exposure": (0.7, 1.1), "white_balance": (-0.12, 0.12),
        "light_gradient": (0.06, 0.2), "brightness": (-0.08, 0.08), "local_tone": (0.0, 0.0),
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
    "light_gradient": (2,), "brightness": (), "local_tone": (), "blur_px": (), "blur_frac": (),
    "read_noise": (), "shot_noise": (), "jpeg_quality": (),
}


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
    # Drawn last, so that adding it left every earlier draw of a seed as it was.
    lo, hi = ranges["local_tone"]
    tone = lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)
    ones = torch.ones(n, 1, dtype=torch.float64)
    wb = raw["white_balance"]
    p = {
        "saturation": raw["saturation"], "gamma": raw["gamma"], "ink_cast": raw["ink_cast"],
        "paper_white": raw["paper_white"][:, None] * (1 + raw["paper_tint"]),
        "black_level": raw["black_level"], "zoom": raw["zoom"], "corner_jitter": raw["corner_jitter"],
        "contrast": raw["contrast"], "exposure": raw["exposure"],
        "white_balance": torch.cat([1 + wb[:, :1], ones, 1 + wb[:, 1:]], 1),
        "light_gradient": raw["light_gradient"][:, None] * torch.stack([angle.cos(), angle.sin()], 1),
        "brightness": raw["brightness"], "local_tone": tone, "blur_px": raw["blur_px"], "blur_frac": raw["blur_frac"],
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
        "local_tone": full(0),
        "blur_px": full(0), "blur_frac": full(0), "read_noise": full(0), "shot_noise": full(0),
        "jpeg_quality": torch.full((n,), NO_JPEG, dtype=torch.int64, device=device),
        "noise_seed": torch.zeros((n,), dtype=torch.int64, device=device),
    }
