"""The virtual camera's constants, its difficulty presets and the seeded draws every stage shares.

:data:`PRESETS` holds one dict of parameter ranges per difficulty; the
functions that use each range (in the sibling modules) say why it is what it
is. ``_rng`` and ``_u`` are the only sources of randomness: everything a
photo shows is drawn through them from its seeds.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import PhysicalError

GROUND_TRUTH_NAME = "ground-truth.json"
PDF_NAME = "sheets.pdf"
FRAME_LONG, FRAME_SHORT = 4032, 3024  # 12 MP, 4:3, like most phone main cameras
# Focal length in pixels: 0.75 x the long side is a ~67 degree horizontal
# field of view, a phone main camera's ~26 mm equivalent.
FOCAL_FRACTION = 0.75
GAIN_FACTOR = 8      # light, shadow and vignetting fields are computed at 1/8 resolution
NOISE_FACTOR = 2     # sensor noise at 1/2 resolution: demosaicked, denoised phone noise is not per-pixel
MAP_STEP = 16        # the photo -> page map is solved every MAP_STEP px and upsampled (bilinear)
EXIF_ORIENTATION = 0x0112
# The smallest corner-code modules a photo shows: ~3 px per module (sqrt of
# the module's area in the photo). A 0.8 mm module at 3 px is 3.75 px/mm:
# with the ~26 mm-equivalent lens (f = 3024 px) a phone ~0.8 m from the
# sheet, about the farthest a user holds it over a table (standing, arm
# bent). ``fill`` is raised until every corner code has at least this.
MIN_MODULE_PX = 3.0
QR_MODULES = 25      # the sheets' codes: version 2, level M (25 x 25 modules, physical/sheets/pdf.py), 20 mm wide
# Photos that keep the whole page in view keep it this far (px) inside the frame.
FRAME_MARGIN_PX = 2.0
CORNERS = ("TL", "TR", "BR", "BL")

# One dict of parameter ranges per preset. (lo, hi) pairs are sampled
# uniformly; lengths in millimetres (``_mm``) or 12-MP photo pixels (``_px``);
# brightness values in 0..1 of full scale; noise in 8-bit levels. The
# function that uses a range (in the sibling modules) documents why it is
# what it is.
PRESETS: dict[str, dict[str, Any]] = {
    "easy": {
        # printing
        "paper_white": (0.94, 0.97), "paper_tint": 0.008, "black_level": (0.05, 0.10),
        "saturation": (0.88, 0.96), "gamma": (0.95, 1.10), "ink_cast": 0.02, "dot_gain_mm": (0.05, 0.08),
        # scene
        "any_rotation": False, "rotation_deg": (-3.0, 3.0), "tilt_deg": (0.0, 5.0), "fill": (0.72, 0.85),
        "match_orientation": 1.0, "light_gradient": (0.0, 0.06), "lamp": (0.0, 0.05), "exposure": (0.92, 1.0),
        "shadow_prob": 0.0, "shadow_strength": (0.0, 0.0), "contact_shadow": (0.03, 0.08),
        # the sheet's shape, the occluder and the framing (flat, nothing, whole page)
        "curl_lift_mm": (0.0, 0.0), "curl_length_mm": (80.0, 200.0), "curl_both_prob": 0.0,
        "wave_mm": (0.0, 0.0), "wavelength_mm": (60.0, 150.0),
        "occluder_prob": 0.0, "cut_prob": 0.0, "cut_depth_mm": (0.0, 0.0),
        # camera
        "blur": {"gaussian": 1.0}, "gaussian_sigma_px": (0.3, 0.8), "defocus_radius_px": (0.5, 1.0),
        "motion_px": (0.5, 1.5), "read_noise": (0.5, 1.2), "shot_noise": (0.8, 1.5),
        "vignetting": (0.0, 0.08), "white_balance": 0.02, "sharpen": (0.2, 0.4),
        "jpeg_quality": (90, 95), "exif_rotate_prob": 0.0,
        "k1": 0.0, "k2": 0.0, "tangential": 0.0,
    },
    "normal": {
        "paper_white": (0.92, 0.97), "paper_tint": 0.015, "black_level": (0.07, 0.15),
        "saturation": (0.78, 0.93), "gamma": (0.95, 1.20), "ink_cast": 0.03, "dot_gain_mm": (0.05, 0.15),
        "any_rotation": True, "rotation_deg": (0.0, 360.0), "tilt_deg": (0.0, 20.0), "fill": (0.60, 0.85),
        "match_orientation": 0.9, "light_gradient": (0.04, 0.15), "lamp": (0.0, 0.12), "exposure": (0.85, 1.0),
        "shadow_prob": 0.6, "shadow_strength": (0.10, 0.30), "contact_shadow": (0.05, 0.15),
        "curl_lift_mm": (0.0, 5.0), "curl_length_mm": (80.0, 200.0), "curl_both_prob": 0.3,
        "wave_mm": (0.0, 0.8), "wavelength_mm": (60.0, 150.0),
        "occluder_prob": 0.0, "cut_prob": 0.0, "cut_depth_mm": (0.0, 0.0),
        "blur": {"gaussian": 0.4, "defocus": 0.4, "motion": 0.2}, "gaussian_sigma_px": (0.5, 1.3),
        "defocus_radius_px": (0.8, 2.0), "motion_px": (1.5, 4.0), "read_noise": (0.8, 2.0),
        "shot_noise": (1.2, 3.0), "vignetting": (0.08, 0.25), "white_balance": 0.06, "sharpen": (0.2, 0.6),
        "jpeg_quality": (80, 95), "exif_rotate_prob": 0.0,
        "k1": 0.012, "k2": 0.005, "tangential": 0.0005,
    },
    "hard": {
        "paper_white": (0.88, 0.95), "paper_tint": 0.025, "black_level": (0.12, 0.22),
        "saturation": (0.65, 0.85), "gamma": (1.0, 1.35), "ink_cast": 0.05, "dot_gain_mm": (0.10, 0.20),
        "any_rotation": True, "rotation_deg": (0.0, 360.0), "tilt_deg": (20.0, 38.0), "fill": (0.30, 0.80),
        "match_orientation": 0.6, "light_gradient": (0.12, 0.30), "lamp": (0.05, 0.25), "exposure": (0.80, 1.10),
        "shadow_prob": 1.0, "shadow_strength": (0.35, 0.60), "contact_shadow": (0.10, 0.25),
        "curl_lift_mm": (5.0, 20.0), "curl_length_mm": (60.0, 180.0), "curl_both_prob": 0.4,
        "wave_mm": (0.3, 2.0), "wavelength_mm": (50.0, 150.0),
        "occluder_prob": 0.3, "cut_prob": 0.2, "cut_depth_mm": (3.0, 15.0),
        "blur": {"gaussian": 0.3, "defocus": 0.4, "motion": 0.3}, "gaussian_sigma_px": (1.0, 2.0),
        "defocus_radius_px": (1.5, 3.0), "motion_px": (3.0, 7.0), "read_noise": (2.5, 5.0),
        "shot_noise": (3.0, 6.0), "vignetting": (0.20, 0.40), "white_balance": 0.12, "sharpen": (0.5, 1.0),
        "jpeg_quality": (60, 80), "exif_rotate_prob": 0.6,
        "k1": 0.04, "k2": 0.03, "tangential": 0.001,
    },
    "extreme": {
        "paper_white": (0.88, 0.95), "paper_tint": 0.025, "black_level": (0.12, 0.22),
        "saturation": (0.65, 0.85), "gamma": (1.0, 1.35), "ink_cast": 0.05, "dot_gain_mm": (0.10, 0.20),
        "any_rotation": True, "rotation_deg": (0.0, 360.0), "tilt_deg": (25.0, 42.0), "fill": (0.22, 0.55),
        "match_orientation": 0.5, "light_gradient": (0.12, 0.30), "lamp": (0.05, 0.25), "exposure": (0.80, 1.10),
        "shadow_prob": 1.0, "shadow_strength": (0.35, 0.60), "contact_shadow": (0.10, 0.25),
        "curl_lift_mm": (12.0, 20.0), "curl_length_mm": (60.0, 150.0), "curl_both_prob": 0.6,
        "wave_mm": (1.0, 3.0), "wavelength_mm": (60.0, 150.0),
        "occluder_prob": 0.85, "cut_prob": 0.8, "cut_depth_mm": (5.0, 30.0),
        "blur": {"gaussian": 0.3, "defocus": 0.4, "motion": 0.3}, "gaussian_sigma_px": (1.0, 2.0),
        "defocus_radius_px": (1.5, 3.0), "motion_px": (3.0, 7.0), "read_noise": (2.5, 5.0),
        "shot_noise": (3.0, 6.0), "vignetting": (0.20, 0.40), "white_balance": 0.12, "sharpen": (0.5, 1.0),
        "jpeg_quality": (60, 80), "exif_rotate_prob": 0.7,
        "k1": 0.08, "k2": 0.05, "tangential": 0.002,
    },
}
DIFFICULTIES = tuple(PRESETS)

# The phone's own processing, on top of a difficulty. ``plain``: the camera above, whose tone is global
# and whose auto white balance errs within the difficulty's ``white_balance`` (the photos of every finding
# before 0.3). ``hdr``: a current phone in a user's home, which every photo goes through:
# * the light: daylight, tungsten or both mixed (``illuminant``); auto white balance leaves a residual cast,
#   per-channel (R, B) gains relative to green drawn from ``awb`` per illuminant (under tungsten it
#   under-corrects, as phones keep some warmth: red up to 1.4, blue down to 0.65, 2x apart), the gains
#   scaled so that the strongest is 1 (the photo is exposed for its brightest channel); under mixed light
#   the cast also changes across the frame (``mixed_gradient``: R and B gains up and down by that much from
#   one side to the other, a window on one side and a lamp on the other);
# * the paper: office, recycled (darker, warm-grey) or bright-white (optical brighteners: bluish), drawn per
#   page (``paper``, ``paper_white``, ``paper_tint`` per channel), in place of the difficulty's;
# * HDR local tone mapping (:func:`.optics.local_tone_map`): the log luminance's base layer (a Gaussian of
#   ``hdr_sigma`` x the frame's long side) compressed by ``hdr_compression`` about the frame's median,
#   the detail around it amplified by ``hdr_detail``: shadows lifted and highlights tamed region by region;
# * a wide-angle main lens whose correction leaves some barrel distortion (``barrel``: k1 = -0.01..-0.03).
PHONES: dict[str, dict[str, Any]] = {
    "plain": {},
    "hdr": {
        "illuminant": {"daylight": 0.4, "tungsten": 0.35, "mixed": 0.25},
        "awb": {"daylight": ((0.92, 1.08), (0.92, 1.08)), "tungsten": ((1.15, 1.4), (0.65, 0.85)),
                "mixed": ((1.0, 1.25), (0.75, 1.0))},
        "mixed_gradient": (0.05, 0.15),
        "paper": {"office": 0.5, "recycled": 0.25, "bright": 0.25},
        "paper_white": {"office": (0.90, 0.95), "recycled": (0.78, 0.88), "bright": (0.95, 0.99)},
        "paper_tint": {"office": ((-0.015, 0.015), (-0.015, 0.015), (-0.015, 0.015)),
                       "recycled": ((0.0, 0.03), (-0.01, 0.01), (-0.07, -0.02)),
                       "bright": ((-0.03, 0.0), (-0.01, 0.01), (0.01, 0.05))},
        "hdr_compression": (0.45, 0.75), "hdr_detail": (1.0, 1.25), "hdr_sigma": (0.01, 0.03),
        "barrel": (0.01, 0.03),
    },
}
BACKGROUNDS = ("wood", "table", "fabric")
# Occluder colours (linear-ish sRGB 0..1 before the camera's gains): skin
# tones from very light to very dark, and common pen barrels.
SKIN_TONES = ((0.95, 0.80, 0.70), (0.89, 0.72, 0.60), (0.80, 0.60, 0.47), (0.66, 0.47, 0.34),
              (0.50, 0.34, 0.24), (0.34, 0.22, 0.16))
PEN_COLOURS = ((0.08, 0.08, 0.09), (0.10, 0.18, 0.55), (0.70, 0.10, 0.10), (0.65, 0.66, 0.68),
               (0.90, 0.90, 0.88), (0.10, 0.45, 0.25), (0.95, 0.80, 0.15))


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(v) % 2**64 for v in key])


def _u(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    lo, hi = lo_hi
    return round(float(rng.uniform(lo, hi)), 6)


def _check_phone(phone: str) -> dict[str, Any]:
    if phone not in PHONES:
        raise PhysicalError(f"--phone {phone}: choose one of {', '.join(PHONES)}")
    return PHONES[phone]


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[k] for k in names], dtype=float)
    return str(names[int(rng.choice(len(names), p=p / p.sum()))])


def _check_difficulty(difficulty: str) -> dict[str, Any]:
    if difficulty not in PRESETS:
        raise PhysicalError(f"--difficulty {difficulty}: choose one of {', '.join(PRESETS)}")
    return PRESETS[difficulty]
