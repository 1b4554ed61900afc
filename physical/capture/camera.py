"""``physical simulate-photos``: a virtual phone camera for the printed sheets.

Turns ``printouts/sheets.pdf`` into synthetic phone photos with exact ground
truth, so that ``physical ingest`` can be developed and tested without a
printer, and its robustness measured against known geometry. Each photo goes
through the physical chain of a real one, in this order, one small function
per effect (each documents its parameter ranges):

1. printing (:func:`print_page`): off-white paper, reduced ink gamut and
   contrast, a tone curve, a colour cast, dot gain;
2. the scene: the sheet lying on a textured table (:func:`background`), in
   any in-plane rotation, seen in perspective (:func:`page_homography`),
   under uneven light (:func:`light_field`) and a soft shadow of the
   photographer's hand or phone (:func:`shadow_field`);
3. the camera: lens blur (:func:`lens_blur`), vignetting
   (:func:`vignetting_field`), white-balance error (:func:`white_balance`),
   sensor noise (:func:`sensor_noise`), phone sharpening (:func:`sharpen`),
   JPEG at phone quality with an EXIF Orientation tag (:func:`encode_jpeg`),
   in 12-megapixel frames (4032 x 3024 or 3024 x 4032 as displayed).

The sheet is modelled as perfectly flat (no curl), so one homography maps the
page to the photo exactly; that homography is the ground truth.

Difficulty presets are in :data:`PRESETS` (one dict of parameter ranges per
preset): ``easy`` (nearly straight, even light, little blur), ``normal``
(what a careful user gets: any rotation, tilt up to 20 degrees, moderate
blur, noise and shadow) and ``hard`` (strong tilt, heavy shadow and blur, low
JPEG quality, and pixels often stored rotated with an EXIF Orientation tag,
as phones do).

Determinism: the print of page ``p`` is seeded from ``(seed, p)`` (all photos
of a page show the same physical printout); everything else in photo ``k``
of page ``p`` is seeded from ``(seed, p, k)``. Same seed, same bytes (with
the same OpenCV, Pillow and pdfium builds).

Outputs, all in ``out/`` (default ``photos/``):

* ``<experiment id>_p<page:02d>_<k:02d>.jpg``, ``k`` counting from 1;
* ``ground-truth.json``: one JSON object mapping each photo file name to::

      {
        "experiment_id": "3f9a2c1b",
        "page": 1,                      # page number in the manifest (1-based)
        "index": 1,                     # k, the photo's number for this page
        "difficulty": "normal",
        "seed": 0,
        "width": 3024, "height": 4032,  # the image as displayed (EXIF applied)
        "exif_orientation": 1,          # EXIF tag 0x0112 written in the JPEG (1, 3, 6 or 8)
        "homography": [[...], [...], [...]],
        "params": {...}                 # every sampled parameter (see sample_params)
      }

  ``homography`` is a 3 x 3 matrix ``H`` (``H[2][2] == 1``) mapping page
  millimetres ``(x, y, 1)`` (x right, y down from the page's top-left corner,
  as in ``physical/sheets/layout.py``) to pixel coordinates ``(u, v, 1) ~ H @ (x, y, 1)`` of
  the photo AS DISPLAYED, i.e. after applying its EXIF orientation, with
  OpenCV's convention that ``(0, 0)`` is the centre of the top-left pixel.
  Re-running merges into the file: entries of the same photo names are
  replaced, others kept.
"""
from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..errors import PhysicalError
from ..files import write_atomic
from ..sheets.layout import Page
from ..sheets.manifest import MANIFEST_NAME, manifest_pages, read_manifest

GROUND_TRUTH_NAME = "ground-truth.json"
PDF_NAME = "sheets.pdf"
FRAME_LONG, FRAME_SHORT = 4032, 3024  # 12 MP, 4:3, like most phone main cameras
# Focal length in pixels: 0.75 x the long side is a ~67 degree horizontal
# field of view, a phone main camera's ~26 mm equivalent.
FOCAL_FRACTION = 0.75
GAIN_FACTOR = 8      # light, shadow and vignetting fields are computed at 1/8 resolution
NOISE_FACTOR = 2     # sensor noise at 1/2 resolution: demosaicked, denoised phone noise is not per-pixel
EXIF_ORIENTATION = 0x0112

# One dict of parameter ranges per preset. (lo, hi) pairs are sampled
# uniformly; lengths in millimetres (``_mm``) or 12-MP photo pixels (``_px``);
# brightness values in 0..1 of full scale; noise in 8-bit levels.
PRESETS: dict[str, dict[str, Any]] = {
    "easy": {
        # printing
        "paper_white": (0.94, 0.97), "paper_tint": 0.008, "black_level": (0.05, 0.10),
        "saturation": (0.88, 0.96), "gamma": (0.95, 1.10), "ink_cast": 0.02, "dot_gain_mm": (0.05, 0.08),
        # scene
        "any_rotation": False, "rotation_deg": (-3.0, 3.0), "tilt_deg": (0.0, 5.0), "fill": (0.72, 0.85),
        "match_orientation": 1.0, "light_gradient": (0.0, 0.06), "lamp": (0.0, 0.05), "exposure": (0.92, 1.0),
        "shadow_prob": 0.0, "shadow_strength": (0.0, 0.0), "contact_shadow": (0.03, 0.08),
        # camera
        "blur": {"gaussian": 1.0}, "gaussian_sigma_px": (0.3, 0.8), "defocus_radius_px": (0.5, 1.0),
        "motion_px": (0.5, 1.5), "read_noise": (0.5, 1.2), "shot_noise": (0.8, 1.5),
        "vignetting": (0.0, 0.08), "white_balance": 0.02, "sharpen": (0.2, 0.4),
        "jpeg_quality": (90, 95), "exif_rotate_prob": 0.0,
    },
    "normal": {
        "paper_white": (0.92, 0.97), "paper_tint": 0.015, "black_level": (0.07, 0.15),
        "saturation": (0.78, 0.93), "gamma": (0.95, 1.20), "ink_cast": 0.03, "dot_gain_mm": (0.05, 0.15),
        "any_rotation": True, "rotation_deg": (0.0, 360.0), "tilt_deg": (0.0, 20.0), "fill": (0.60, 0.85),
        "match_orientation": 0.9, "light_gradient": (0.04, 0.15), "lamp": (0.0, 0.12), "exposure": (0.85, 1.0),
        "shadow_prob": 0.6, "shadow_strength": (0.10, 0.30), "contact_shadow": (0.05, 0.15),
        "blur": {"gaussian": 0.4, "defocus": 0.4, "motion": 0.2}, "gaussian_sigma_px": (0.5, 1.3),
        "defocus_radius_px": (0.8, 2.0), "motion_px": (1.5, 4.0), "read_noise": (0.8, 2.0),
        "shot_noise": (1.2, 3.0), "vignetting": (0.08, 0.25), "white_balance": 0.06, "sharpen": (0.2, 0.6),
        "jpeg_quality": (80, 95), "exif_rotate_prob": 0.0,
    },
    "hard": {
        "paper_white": (0.88, 0.95), "paper_tint": 0.025, "black_level": (0.12, 0.22),
        "saturation": (0.65, 0.85), "gamma": (1.0, 1.35), "ink_cast": 0.05, "dot_gain_mm": (0.10, 0.20),
        "any_rotation": True, "rotation_deg": (0.0, 360.0), "tilt_deg": (20.0, 38.0), "fill": (0.55, 0.80),
        "match_orientation": 0.6, "light_gradient": (0.12, 0.30), "lamp": (0.05, 0.25), "exposure": (0.80, 1.10),
        "shadow_prob": 1.0, "shadow_strength": (0.35, 0.60), "contact_shadow": (0.10, 0.25),
        "blur": {"gaussian": 0.3, "defocus": 0.4, "motion": 0.3}, "gaussian_sigma_px": (1.0, 2.0),
        "defocus_radius_px": (1.5, 3.0), "motion_px": (3.0, 7.0), "read_noise": (2.5, 5.0),
        "shot_noise": (3.0, 6.0), "vignetting": (0.20, 0.40), "white_balance": 0.12, "sharpen": (0.5, 1.0),
        "jpeg_quality": (60, 80), "exif_rotate_prob": 0.6,
    },
}
DIFFICULTIES = tuple(PRESETS)
BACKGROUNDS = ("wood", "table", "fabric")


# ---------------------------------------------------------------- parameters

def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(v) % 2**64 for v in key])


def _u(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    lo, hi = lo_hi
    return round(float(rng.uniform(lo, hi)), 6)


def _check_difficulty(difficulty: str) -> dict[str, Any]:
    if difficulty not in PRESETS:
        raise PhysicalError(f"--difficulty {difficulty}: choose one of {', '.join(PRESETS)}")
    return PRESETS[difficulty]


def sample_params(difficulty: str, seed: int, page: int, k: int,
                  page_size_mm: tuple[float, float] = (210.0, 297.0)) -> dict[str, Any]:
    """Draw every random parameter of photo ``k`` of ``page``; cheap (no pixels).

    The ``print`` group is seeded from ``(seed, page)``, the rest from
    ``(seed, page, k)``. Returns a JSON-ready dict with groups ``print``,
    ``scene`` and ``camera`` (the ``params`` stored in the ground truth).
    """
    pr = _check_difficulty(difficulty)
    r = _rng(seed, page)
    printing = {
        "paper_white": _u(r, pr["paper_white"]),
        "paper_tint": [_u(r, (-pr["paper_tint"], pr["paper_tint"])) for _ in range(3)],
        "black_level": _u(r, pr["black_level"]),
        "saturation": _u(r, pr["saturation"]),
        "gamma": _u(r, pr["gamma"]),
        "ink_cast": [_u(r, (-pr["ink_cast"], pr["ink_cast"])) for _ in range(3)],
        "dot_gain_mm": _u(r, pr["dot_gain_mm"]),
    }
    r = _rng(seed, page, k)
    if pr["any_rotation"]:
        rotation = _u(r, pr["rotation_deg"])
    else:
        rotation = _u(r, pr["rotation_deg"]) % 360.0
    w, h = page_size_mm
    th = math.radians(rotation)
    ext_x = abs(w * math.cos(th)) + abs(h * math.sin(th))
    ext_y = abs(w * math.sin(th)) + abs(h * math.cos(th))
    matching = ext_y >= ext_x
    portrait = matching if r.random() < pr["match_orientation"] else not matching
    scene = {
        "background": str(r.choice(BACKGROUNDS)),
        "background_seed": int(r.integers(0, 2**31)),
        "rotation_deg": rotation,
        "tilt_deg": _u(r, pr["tilt_deg"]),
        "tilt_axis_deg": _u(r, (0.0, 360.0)),
        "fill": _u(r, pr["fill"]),
        "offset": [_u(r, (-1.0, 1.0)), _u(r, (-1.0, 1.0))],
        "portrait": bool(portrait),
        "light_gradient": _u(r, pr["light_gradient"]),
        "light_direction_deg": _u(r, (0.0, 360.0)),
        "lamp": _u(r, pr["lamp"]),
        "lamp_center": [_u(r, (0.0, 1.0)), _u(r, (0.0, 1.0))],
        "lamp_radius": _u(r, (0.3, 0.8)),
        "exposure": _u(r, pr["exposure"]),
        "shadow": bool(r.random() < pr["shadow_prob"]),
        "shadow_strength": _u(r, pr["shadow_strength"]) if pr["shadow_strength"][1] > 0 else 0.0,
        "shadow_tip": [_u(r, (0.05, 0.95)), _u(r, (0.05, 0.95))],
        "shadow_from_deg": _u(r, (0.0, 360.0)),
        "shadow_width": _u(r, (0.12, 0.25)),
        "shadow_softness": _u(r, (0.015, 0.04)),
        "contact_shadow": _u(r, pr["contact_shadow"]),
        "contact_shadow_direction_deg": _u(r, (0.0, 360.0)),
    }
    kinds = list(pr["blur"])
    weights = np.array([pr["blur"][x] for x in kinds], dtype=float)
    blur = str(kinds[int(r.choice(len(kinds), p=weights / weights.sum()))])
    size_key = {"gaussian": "gaussian_sigma_px", "defocus": "defocus_radius_px", "motion": "motion_px"}[blur]
    wb = pr["white_balance"]
    camera = {
        "blur": blur,
        "blur_px": _u(r, pr[size_key]),
        "motion_angle_deg": _u(r, (0.0, 180.0)),
        "read_noise": _u(r, pr["read_noise"]),
        "shot_noise": _u(r, pr["shot_noise"]),
        "vignetting": _u(r, pr["vignetting"]),
        "white_balance": [_u(r, (1 - wb, 1 + wb)), 1.0, _u(r, (1 - wb, 1 + wb))],
        "sharpen": _u(r, pr["sharpen"]),
        "jpeg_quality": int(r.integers(pr["jpeg_quality"][0], pr["jpeg_quality"][1] + 1)),
        "noise_seed": int(r.integers(0, 2**31)),
    }
    orientation = 1
    if r.random() < pr["exif_rotate_prob"]:
        # Phone sensors are landscape: a portrait shot is stored landscape and
        # tagged 6 or 8; a landscape shot held upside down is tagged 3.
        orientation = int(r.choice([6, 8])) if portrait else 3
    camera["exif_orientation"] = orientation
    return {"print": printing, "scene": scene, "camera": camera}


# ---------------------------------------------------------------- geometry

def page_homography(scene: dict[str, Any], page_size_mm: tuple[float, float],
                    frame: tuple[int, int]) -> np.ndarray:
    """Homography from page mm (top-left origin, y down) to displayed photo pixels.

    Models a pinhole phone camera (focal length FOCAL_FRACTION x the frame's
    long side, ~26 mm equivalent) looking at the sheet: the sheet is rotated
    in its plane by ``rotation_deg`` (0-360), tilted by ``tilt_deg`` about an
    in-plane axis at ``tilt_axis_deg`` (easy 0-5, normal 0-20, hard 20-38
    degrees), placed at the distance where its bounding box fills ``fill`` of
    the frame (0.55-0.85, the limiting side), and shifted by ``offset``
    (-1..1 of the free margin). Pixel centres are at integer coordinates.
    """
    w, h = page_size_mm
    W, H = frame
    f = FOCAL_FRACTION * max(W, H)
    th = math.radians(scene["rotation_deg"])
    center = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]], dtype=float)
    rot = np.array([[math.cos(th), -math.sin(th), 0], [math.sin(th), math.cos(th), 0], [0, 0, 1]])
    phi, tilt = math.radians(scene["tilt_axis_deg"]), math.radians(scene["tilt_deg"])
    r3, _ = cv2.Rodrigues(np.array([math.cos(phi), math.sin(phi), 0.0]) * tilt)
    ext_x = abs(w * math.cos(th)) + abs(h * math.sin(th))
    ext_y = abs(w * math.sin(th)) + abs(h * math.cos(th))
    dist = f * max(ext_x / W, ext_y / H) / scene["fill"]
    K = np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1]])
    Hm = K @ np.column_stack([r3[:, 0], r3[:, 1], [0, 0, dist]]) @ rot @ center
    pts = project(Hm, [(0, 0), (w, 0), (w, h), (0, h)])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    size = hi - lo
    s = scene["fill"] / max(size[0] / W, size[1] / H)
    slack = np.array([W, H]) - s * size
    target_lo = slack / 2 + 0.9 * np.array(scene["offset"]) * slack / 2
    fit = np.array([[s, 0, target_lo[0] - s * lo[0]], [0, s, target_lo[1] - s * lo[1]], [0, 0, 1]])
    Hm = fit @ Hm
    return Hm / Hm[2, 2]


def project(Hm: np.ndarray, points) -> np.ndarray:
    """Apply homography ``Hm`` to (N, 2) points; returns (N, 2) floats."""
    p = np.asarray(points, dtype=float).reshape(-1, 2)
    q = np.column_stack([p, np.ones(len(p))]) @ np.asarray(Hm, dtype=float).T
    return q[:, :2] / q[:, 2:3]


def max_scale(Hm: np.ndarray, page_size_mm: tuple[float, float]) -> float:
    """Largest photo pixels per page millimetre anywhere on the page (at a corner)."""
    w, h = page_size_mm
    best = 0.0
    for x, y in [(0, 0), (w, 0), (w, h), (0, h)]:
        e = 0.5
        p = project(Hm, [(x, y), (x + e, y), (x, y + e)])
        J = np.column_stack([(p[1] - p[0]) / e, (p[2] - p[0]) / e])
        best = max(best, float(np.linalg.svd(J, compute_uv=False)[0]))
    return best


# ---------------------------------------------------------------- 1. printing

def print_page(img: np.ndarray, p: dict[str, Any], px_per_mm: float) -> np.ndarray:
    """What an office colour printer makes of the page (RGB uint8 in and out).

    * gamut: saturated colours desaturate towards their luma
      (``saturation`` 0.65-0.96 of the original chroma);
    * tone curve: ``gamma`` 0.95-1.35 (dot gain darkens mid-tones);
    * contrast: full black prints as dark grey (``black_level`` 0.05-0.22)
      and the unprinted paper is off-white (``paper_white`` 0.88-0.97, tinted
      per channel by ``paper_tint`` up to +-0.025); the inks carry a colour
      cast (``ink_cast`` up to +-0.05 per channel);
    * dot gain: ink spreads into the paper, a Gaussian blur of
      ``dot_gain_mm`` 0.05-0.20 mm.
    """
    s = p["saturation"]
    luma = np.array([0.299, 0.587, 0.114])
    m = s * np.eye(3) + (1 - s) * np.tile(luma, (3, 1))
    out = cv2.transform(img, m.astype(np.float32))
    v = (np.arange(256) / 255.0) ** p["gamma"]
    luts = []
    for c in range(3):
        white = p["paper_white"] * (1 + p["paper_tint"][c])
        black = p["black_level"] * (1 + p["ink_cast"][c] * 4)
        # The cast tints mid-tones most: ink layers are thinnest there.
        tone = v * (1 + p["ink_cast"][c] * (1 - v) * 4)
        luts.append(np.clip(255 * (black + (white - black) * np.clip(tone, 0, 1)), 0, 255))
    lut = np.stack(luts, axis=1).round().astype(np.uint8).reshape(256, 1, 3)
    out = cv2.LUT(out, lut)
    sigma = p["dot_gain_mm"] * px_per_mm
    if sigma > 0.2:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    return out


# ---------------------------------------------------------------- 2. the scene

def _plane_coords(Hm: np.ndarray, shape: tuple[int, int], factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Table-plane mm (the page's frame) of every pixel of a 1/``factor`` photo grid."""
    h, w = shape
    Hi = np.linalg.inv(Hm)
    xs = ((np.arange(w, dtype=np.float32) + 0.5) * factor - 0.5)[None, :]
    ys = ((np.arange(h, dtype=np.float32) + 0.5) * factor - 0.5)[:, None]
    den = Hi[2, 0] * xs + Hi[2, 1] * ys + Hi[2, 2]
    den = np.maximum(den, 1e-6).astype(np.float32)
    X = ((Hi[0, 0] * xs + Hi[0, 1] * ys + Hi[0, 2]) / den).astype(np.float32)
    Y = ((Hi[1, 0] * xs + Hi[1, 1] * ys + Hi[1, 2]) / den).astype(np.float32)
    return X, Y


def _noise(rng: np.random.Generator, X: np.ndarray, Y: np.ndarray, cell_x: float, cell_y: float,
           n: int = 64) -> np.ndarray:
    """Smooth value noise in -1..1 over the plane, cells of cell_x x cell_y mm (tiles every n cells)."""
    grid = rng.uniform(-1, 1, (n, n)).astype(np.float32)
    mx = np.mod(X / cell_x, n).astype(np.float32)
    my = np.mod(Y / cell_y, n).astype(np.float32)
    return cv2.remap(grid, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_WRAP)


def _wood(rng: np.random.Generator, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    palette = [(0.74, 0.56, 0.36), (0.45, 0.30, 0.19), (0.82, 0.68, 0.48), (0.62, 0.58, 0.53), (0.58, 0.38, 0.24)]
    base = np.array(palette[rng.integers(len(palette))]) * rng.uniform(0.9, 1.1)
    a = rng.uniform(0, math.pi)
    U = X * math.cos(a) + Y * math.sin(a)      # across the planks
    V = -X * math.sin(a) + Y * math.cos(a)     # along the planks (and the grain)
    plank_w = rng.uniform(70, 160)
    plank = np.floor(U / plank_w)
    n = 97
    idx = np.mod(plank, n).astype(np.int32)
    tones = rng.uniform(-0.07, 0.07, n).astype(np.float32)
    # Flat-sawn boards: the saw plane cuts the log's growth rings (cylinders
    # around the pith, which runs at depth d + slope * V under the surface),
    # showing stripes that close into "cathedral" arches.
    pith_u = rng.uniform(-0.3, 1.3, n).astype(np.float32) * plank_w
    depth = rng.uniform(5, 60, n).astype(np.float32)
    slope = rng.uniform(-0.08, 0.08, n).astype(np.float32)
    v0 = rng.uniform(-500, 500, n).astype(np.float32)
    du = U - plank * plank_w - pith_u[idx]
    dd = depth[idx] + slope[idx] * (V - v0[idx])
    warp = 2.5 * _noise(rng, U, V, 20, 200) + 0.8 * _noise(rng, U, V, 5, 40)
    radius = np.sqrt(du * du + dd * dd) + warp
    period = rng.uniform(2.5, 6.0)
    phase = np.mod(radius / period, 1.0)
    late = phase ** 4                                   # narrow dark latewood band in each ring
    contrast = 0.16 + 0.08 * _noise(rng, U, V, 30, 300)
    streak = _noise(rng, U, V, 0.6, 40)
    frac = (U / plank_w) - plank
    seam = np.clip(np.minimum(frac, 1 - frac) * plank_w / 1.2, 0, 1)   # dark ~1 mm gap between planks
    shade = 1 + tones[idx] - contrast * late - 0.04 * streak + 0.04 * _noise(rng, X, Y, 120, 120)
    shade = shade * (0.45 + 0.55 * seam)
    rgb = base[None, None, :] * shade[..., None]
    return rgb.astype(np.float32)


def _table(rng: np.random.Generator, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    palette = [(0.85, 0.85, 0.83), (0.55, 0.56, 0.57), (0.20, 0.20, 0.21), (0.78, 0.72, 0.62), (0.42, 0.47, 0.52)]
    base = np.array(palette[rng.integers(len(palette))]) * rng.uniform(0.92, 1.08)
    mottle = 0.025 * _noise(rng, X, Y, 200, 200) + 0.01 * _noise(rng, X, Y, 25, 25)
    speck_amp = rng.uniform(0.015, 0.06)
    rgb = base[None, None, :] * (1 + mottle)[..., None]
    for c in range(3):   # granite / laminate speckle, slightly different per channel
        rgb[..., c] += speck_amp * (0.7 * _noise(rng, X, Y, 0.9, 0.9) + 0.3 * _noise(rng, X, Y, 2.5, 2.5))
    return rgb.astype(np.float32)


def _fabric(rng: np.random.Generator, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    palette = [(0.80, 0.16, 0.16), (0.20, 0.32, 0.60), (0.85, 0.82, 0.74), (0.30, 0.45, 0.30), (0.55, 0.50, 0.62)]
    c1 = np.array(palette[rng.integers(len(palette))])
    a = rng.uniform(0, math.pi)
    U = X * math.cos(a) + Y * math.sin(a)
    V = -X * math.sin(a) + Y * math.cos(a)
    weave_p = rng.uniform(0.9, 1.8)
    weave = np.sin(U * (2 * math.pi / weave_p)) * np.sin(V * (2 * math.pi / weave_p))
    if rng.random() < 0.5:   # gingham tablecloth: two colours in checks
        g = rng.uniform(8, 25)
        check = (np.mod(np.floor(U / g), 2) + np.mod(np.floor(V / g), 2)) / 2
        c0 = np.array([0.92, 0.91, 0.88])
        rgb = c0 + (c1 - c0) * check[..., None]
    else:
        rgb = np.broadcast_to(c1, X.shape + (3,)).copy()
    wrinkles = 0.08 * _noise(rng, U, V, 40, 90) + 0.04 * _noise(rng, U, V, 12, 30)
    shade = 1 + 0.07 * weave + 0.03 * _noise(rng, U, V, 0.5, 3) + wrinkles
    return (rgb * shade[..., None]).astype(np.float32)


def background(kind: str, seed: int, Hm: np.ndarray, frame: tuple[int, int]) -> np.ndarray:
    """A table-top texture behind the sheet, full-frame RGB uint8.

    ``kind`` is ``wood`` (planks with grain, five wood tones), ``table``
    (plain or speckled laminate/stone, light to black) or ``fabric``
    (plain or gingham tablecloth with weave and wrinkles); colours and
    scales come from ``seed``, so each photo gets its own. The texture is
    evaluated in the table plane (mm, through the page homography) so it
    shares the page's perspective, at 1/4 resolution (1/2 for the fine
    weave) and upsampled.
    """
    W, H = frame
    factor = 2 if kind == "fabric" else 4
    shape = (math.ceil(H / factor), math.ceil(W / factor))
    X, Y = _plane_coords(Hm, shape, factor)
    rng = _rng(seed)
    rgb = {"wood": _wood, "table": _table, "fabric": _fabric}[kind](rng, X, Y)
    small = np.clip(rgb * 255, 0, 255).astype(np.uint8)
    return cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)


def _grid(frame: tuple[int, int], factor: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Normalised coordinates (-1..1 across the long side) of a 1/factor grid of the frame."""
    W, H = frame
    w, h = math.ceil(W / factor), math.ceil(H / factor)
    L = max(W, H) / 2
    xs = (((np.arange(w, dtype=np.float32) + 0.5) * factor - W / 2) / L)[None, :]
    ys = (((np.arange(h, dtype=np.float32) + 0.5) * factor - H / 2) / L)[:, None]
    return xs, ys, (w, h)


def light_field(scene: dict[str, Any], frame: tuple[int, int]) -> np.ndarray:
    """Uneven illumination: a smooth multiplicative gain at 1/GAIN_FACTOR resolution.

    A linear gradient (``light_gradient``: gain varies by +-0.0-0.06 easy,
    0.04-0.15 normal, 0.12-0.30 hard across the frame, towards
    ``light_direction_deg``), plus a lamp hot spot (``lamp`` 0-0.25 extra at
    ``lamp_center``, Gaussian of ``lamp_radius`` 0.3-0.8 of the frame),
    times the overall ``exposure`` (0.80-1.10).
    """
    xs, ys, _ = _grid(frame, GAIN_FACTOR)
    a = math.radians(scene["light_direction_deg"])
    gain = 1 + scene["light_gradient"] * (xs * math.cos(a) + ys * math.sin(a))
    cx, cy = (np.array(scene["lamp_center"]) * 2 - 1)
    lamp = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * scene["lamp_radius"] ** 2))
    gain = (gain + scene["lamp"] * (lamp - lamp.mean())) * scene["exposure"]
    return gain.astype(np.float32)


def shadow_field(scene: dict[str, Any], Hm: np.ndarray, page_size_mm: tuple[float, float],
                 frame: tuple[int, int]) -> np.ndarray:
    """Soft shadows, a multiplicative gain at 1/GAIN_FACTOR resolution.

    * the photographer's arm and phone: a thick stroke (``shadow_width``
      0.12-0.25 of the frame's long side) from outside the frame
      (direction ``shadow_from_deg``) to a point over the page
      (``shadow_tip``, fractions of the page), ending in a blob, blurred by
      ``shadow_softness`` (0.015-0.04 of the long side: a diffuse room light)
      and darkening by ``shadow_strength`` (none easy, 0.10-0.30 on 60% of
      normal photos, 0.35-0.60 on every hard one); soft and partial, it
      usually leaves a normal photo's QR codes readable;
    * the contact shadow the sheet casts on the table along its edges
      (``contact_shadow`` 0.03-0.25 darkening, a few millimetres wide).
    """
    W, H = frame
    _, _, (w, h) = _grid(frame, GAIN_FACTOR)
    scale = 1 / GAIN_FACTOR
    L = max(W, H) * scale
    dark = np.zeros((h, w), np.float32)
    if scene["shadow"] and scene["shadow_strength"] > 0:
        pw, ph = page_size_mm
        tip = project(Hm, [(scene["shadow_tip"][0] * pw, scene["shadow_tip"][1] * ph)])[0] * scale
        a = math.radians(scene["shadow_from_deg"])
        far = tip + 2 * L * np.array([math.cos(a), math.sin(a)])
        thick = max(2, round(scene["shadow_width"] * L))
        mask = np.zeros((h, w), np.uint8)
        tip_px, far_px = (round(float(tip[0])), round(float(tip[1]))), (round(float(far[0])), round(float(far[1])))
        cv2.line(mask, tip_px, far_px, 255, thick, lineType=cv2.LINE_AA)
        cv2.circle(mask, tip_px, int(thick * 0.7), 255, -1, lineType=cv2.LINE_AA)
        blob = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), scene["shadow_softness"] * L)
        dark += scene["shadow_strength"] * blob
    # The sheet's own contact shadow on the table: a blurred, shifted copy of
    # the page outline, kept off the page itself.
    quad = project(Hm, [(0, 0), (page_size_mm[0], 0), page_size_mm, (0, page_size_mm[1])]) * scale
    page = np.zeros((h, w), np.uint8)
    cv2.fillPoly(page, [np.round(quad * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    page_f = page.astype(np.float32) / 255
    a = math.radians(scene["contact_shadow_direction_deg"])
    shift = np.float32([[1, 0, 0.4 * math.cos(a)], [0, 1, 0.4 * math.sin(a)]])
    cast = cv2.GaussianBlur(cv2.warpAffine(page_f, shift, (w, h)), (0, 0), 0.8)
    dark += scene["contact_shadow"] * cast * (1 - page_f)
    return (1 - np.clip(dark, 0, 0.95)).astype(np.float32)


def compose_scene(printed: np.ndarray, render_to_photo: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Lay the printed sheet on the table: warp it into the frame over the background (in place)."""
    H, W = bg.shape[:2]
    cv2.warpPerspective(printed, render_to_photo, (W, H), dst=bg, flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_TRANSPARENT)
    return bg


# ---------------------------------------------------------------- 3. the camera

def vignetting_field(camera: dict[str, Any], frame: tuple[int, int]) -> np.ndarray:
    """Lens vignetting: gain ``1 - vignetting * r^2`` (r = 1 at the frame corners).

    ``vignetting`` 0-0.08 easy, 0.08-0.25 normal, 0.20-0.40 hard (corners
    that much darker than the centre). 1/GAIN_FACTOR resolution.
    """
    xs, ys, _ = _grid(frame, GAIN_FACTOR)
    W, H = frame
    r2 = (xs ** 2 + ys ** 2) / ((W ** 2 + H ** 2) / max(W, H) ** 2)
    return (1 - camera["vignetting"] * r2).astype(np.float32)


def white_balance(camera: dict[str, Any]) -> np.ndarray:
    """Auto white balance error: per-channel gains (R, 1, B).

    R and B gains within 1 +- 0.02 easy, 0.06 normal, 0.12 hard (a
    tungsten-warm or shade-blue tint).
    """
    return np.array(camera["white_balance"], dtype=np.float32)


def apply_gain(img: np.ndarray, *fields: np.ndarray, channel_gains: np.ndarray) -> np.ndarray:
    """Multiply the frame by low-resolution gain fields (upsampled once) and per-channel gains."""
    H, W = img.shape[:2]
    g = fields[0]
    for f in fields[1:]:
        g = g * f
    g3 = g[..., None] * channel_gains[None, None, :]
    full = cv2.resize(g3.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
    return cv2.multiply(img, full, dtype=cv2.CV_8U)


def blur_kernel(camera: dict[str, Any]) -> np.ndarray | None:
    """The lens/hand blur kernel, or None for a Gaussian (applied separably).

    ``blur`` is ``gaussian`` (slight misfocus or soft optics, sigma
    ``blur_px`` 0.3-0.8 easy, 0.5-1.3 normal, 1-2 hard), ``defocus`` (a disk
    of radius 0.8-2.0 normal, 1.5-3.0 hard) or ``motion`` (hand shake, a line
    of length 1.5-4 normal, 3-7 hard at ``motion_angle_deg``). 12-MP pixels.
    """
    kind, size = camera["blur"], camera["blur_px"]
    if kind == "gaussian":
        return None
    if kind == "defocus":
        r = size
        n = math.ceil(r) + 1
        yy, xx = np.mgrid[-n:n + 1, -n:n + 1].astype(np.float32)
        k = np.clip(r + 0.5 - np.sqrt(xx ** 2 + yy ** 2), 0, 1)
    else:
        L = size
        n = math.ceil(L / 2) + 1
        k = np.zeros((2 * n + 1, 2 * n + 1), np.float32)
        a = math.radians(camera["motion_angle_deg"])
        for t in np.linspace(-L / 2, L / 2, int(8 * L) + 1):
            x, y = n + t * math.cos(a), n + t * math.sin(a)
            x0, y0 = math.floor(x), math.floor(y)
            fx, fy = x - x0, y - y0
            k[y0, x0] += (1 - fx) * (1 - fy)
            k[y0, x0 + 1] += fx * (1 - fy)
            k[y0 + 1, x0] += (1 - fx) * fy
            k[y0 + 1, x0 + 1] += fx * fy
        k = cv2.GaussianBlur(k, (0, 0), 0.4)   # the optics' own softness
    return (k / k.sum()).astype(np.float32)


def lens_blur(img: np.ndarray, camera: dict[str, Any]) -> np.ndarray:
    """Apply :func:`blur_kernel`'s blur to the frame."""
    k = blur_kernel(camera)
    if k is None:
        return cv2.GaussianBlur(img, (0, 0), camera["blur_px"])
    return cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)


def sensor_noise(img: np.ndarray, camera: dict[str, Any]) -> np.ndarray:
    """Signal-dependent sensor noise, as left after the phone's demosaicking and denoising.

    Standard deviation ``sqrt(read_noise^2 + shot_noise^2 * I)`` (8-bit
    levels, I = brightness 0..1): ``read_noise`` 0.5-1.2 easy, 0.8-2.0
    normal, 2.5-5 hard; ``shot_noise`` (at full white) 0.8-1.5, 1.2-3.0,
    3-6. Luma noise at 1/2 resolution plus weaker chroma noise at 1/4,
    upsampled (spatially correlated, like a phone's, not per-pixel).
    """
    H, W = img.shape[:2]
    rng = _rng(camera["noise_seed"])
    h, w = math.ceil(H / NOISE_FACTOR), math.ceil(W / NOISE_FACTOR)
    small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    lum = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    std = np.sqrt(camera["read_noise"] ** 2 + camera["shot_noise"] ** 2 * lum)
    n = rng.standard_normal((h, w), dtype=np.float32) * std
    chroma = rng.standard_normal((math.ceil(h / 2), math.ceil(w / 2), 3), dtype=np.float32)
    chroma = cv2.resize(chroma, (w, h), interpolation=cv2.INTER_LINEAR) * (0.5 * std[..., None])
    noise = n[..., None] + chroma
    full = cv2.resize(noise, (W, H), interpolation=cv2.INTER_LINEAR)
    return cv2.add(img, full, dtype=cv2.CV_8U)


def sharpen(img: np.ndarray, camera: dict[str, Any]) -> np.ndarray:
    """The phone's unsharp masking: ``img + sharpen * (img - blur(img, 1.5 px))``, ``sharpen`` 0.2-1.0."""
    a = camera["sharpen"]
    if a <= 0:
        return img
    soft = cv2.GaussianBlur(img, (0, 0), 1.5)
    return cv2.addWeighted(img, 1 + a, soft, -a, 0)


_STORE = {1: 0, 3: 2, 6: 1, 8: -1}   # np.rot90 k that turns the displayed image into the stored one


def encode_jpeg(displayed: np.ndarray, camera: dict[str, Any]) -> bytes:
    """JPEG at ``jpeg_quality`` (90-95 easy, 80-95 normal, 60-80 hard), 4:2:0, with EXIF.

    With ``exif_orientation`` 6, 8 or 3 the pixels are stored rotated (as a
    phone's landscape sensor stores them) and the tag tells viewers how to
    turn them back into ``displayed``.
    """
    o = camera["exif_orientation"]
    stored = np.ascontiguousarray(np.rot90(displayed, _STORE[o]))
    exif = Image.Exif()
    exif[0x010F] = "physical"                        # Make
    exif[0x0110] = "virtual camera"                  # Model
    exif[0x0131] = "physical simulate-photos"        # Software
    exif[EXIF_ORIENTATION] = o
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, format="JPEG", quality=int(camera["jpeg_quality"]), subsampling=2,
                                 exif=exif.tobytes())
    return buf.getvalue()


# ---------------------------------------------------------------- the pipeline

def _render_scale(needed: float) -> float:
    # Quarter-pixel steps: photos of a page at similar scales share a render.
    return max(2.0, math.ceil(needed * 4) / 4)


class _PageRenderer:
    """Renders (and prints) a page at a pixel density, caching the last few."""

    def __init__(self, pdf_path: Path, pages: list[Page]):
        import pypdfium2 as pdfium

        self.path = pdf_path
        try:
            self.pdf = pdfium.PdfDocument(str(pdf_path))
        except pdfium.PdfiumError as exc:
            raise PhysicalError(f"{pdf_path}: cannot read the PDF ({exc}); "
                                "re-run `physical make-sheets --force`") from None
        if len(self.pdf) != len(pages):
            raise PhysicalError(f"{pdf_path}: has {len(self.pdf)} pages but the manifest lists {len(pages)}; "
                                "re-run `physical make-sheets --force`")
        self.cache: dict[tuple[int, float], tuple[np.ndarray, float, float]] = {}

    def printed(self, page: Page, index: int, px_per_mm: float, printing: dict[str, Any]):
        key = (page.number, px_per_mm)
        if key not in self.cache:
            self.cache.clear()
            scale = px_per_mm * 25.4 / 72   # pdfium scale is pixels per PDF point
            rgb = self.pdf[index].render(scale=scale, rev_byteorder=True).to_numpy()[..., :3]
            rgb = np.ascontiguousarray(rgb)
            sx, sy = rgb.shape[1] / page.size_mm[0], rgb.shape[0] / page.size_mm[1]
            self.cache[key] = (print_page(rgb, printing, px_per_mm), sx, sy)
        return self.cache[key]

    def close(self) -> None:
        self.pdf.close()


def make_photo(renderer: _PageRenderer, page: Page, index: int, params: dict[str, Any]) -> tuple[bytes, np.ndarray, tuple[int, int]]:
    """Simulate one photo; returns (JPEG bytes, homography mm -> displayed pixels, displayed (W, H))."""
    scene, camera = params["scene"], params["camera"]
    frame = (FRAME_SHORT, FRAME_LONG) if scene["portrait"] else (FRAME_LONG, FRAME_SHORT)
    Hm = page_homography(scene, page.size_mm, frame)
    px_per_mm = _render_scale(max_scale(Hm, page.size_mm))
    printed, sx, sy = renderer.printed(page, index, px_per_mm, params["print"])
    # render pixel centres: u = x_mm * sx - 0.5
    mm_from_render = np.linalg.inv(np.array([[sx, 0, -0.5], [0, sy, -0.5], [0, 0, 1]]))
    img = background(scene["background"], scene["background_seed"], Hm, frame)
    img = compose_scene(printed, Hm @ mm_from_render, img)
    img = apply_gain(img, light_field(scene, frame), shadow_field(scene, Hm, page.size_mm, frame),
                     vignetting_field(camera, frame), channel_gains=white_balance(camera))
    img = lens_blur(img, camera)
    img = sensor_noise(img, camera)
    img = sharpen(img, camera)
    return encode_jpeg(img, camera), Hm, frame


def photo_name(experiment_id: str, page: int, k: int) -> str:
    return f"{experiment_id}_p{page:02d}_{k:02d}.jpg"


def _read_ground_truth(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PhysicalError(f"{path}: cannot read it ({exc}); delete it or choose another --out") from None
    if not isinstance(data, dict):
        raise PhysicalError(f"{path}: not a ground-truth file (expected a JSON object); "
                            "delete it or choose another --out")
    return data


def simulate_photos(
    printouts: Path = Path("printouts"),
    out: Path = Path("photos"),
    *,
    per_page: int = 1,
    seed: int = 0,
    difficulty: str = "normal",
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write ``per_page`` synthetic phone photos of every page of ``printouts/sheets.pdf`` to ``out``.

    Also merges their ground truth into ``out/ground-truth.json`` (format in
    the module docstring). Returns the photo paths in page order.
    ``progress(done, total)`` is called as photos are written.

    Raises:
        PhysicalError: missing or broken printouts, a bad difficulty,
            ``per_page`` < 1, or an ``out`` that is not a folder.
    """
    printouts, out = Path(printouts), Path(out)
    _check_difficulty(difficulty)
    if isinstance(per_page, bool) or not isinstance(per_page, int) or per_page < 1:
        raise PhysicalError(f"--per-page {per_page}: must be an integer of at least 1")
    if not printouts.is_dir():
        raise PhysicalError(f"--printouts {printouts}: no such folder; run `physical make-sheets` first, "
                            "or point --printouts at the folder it wrote")
    manifest = read_manifest(printouts)
    # The manifest is editable text: take only a file name from it, never a path.
    pdf_path = printouts / (Path(str(manifest.get("layout", {}).get("pdf", PDF_NAME))).name or PDF_NAME)
    if not pdf_path.is_file():
        raise PhysicalError(f"{pdf_path}: missing; re-run `physical make-sheets --force` "
                            f"to rewrite the sheets of {printouts / MANIFEST_NAME}")
    try:
        pages = manifest_pages(manifest)
    except (KeyError, TypeError, ValueError) as exc:
        raise PhysicalError(f"{printouts / MANIFEST_NAME}: {exc}; re-run `physical make-sheets --force`") from None
    if out.exists() and not out.is_dir():
        raise PhysicalError(f"--out {out}: exists and is not a folder")
    gt_path = out / GROUND_TRUTH_NAME
    ground_truth = _read_ground_truth(gt_path)
    experiment_id = str(manifest["experiment_id"])
    progress = progress or (lambda done, total: None)
    total = len(pages) * per_page
    progress(0, total)
    renderer = _PageRenderer(pdf_path, pages)
    written: list[Path] = []
    entries: dict[str, Any] = {}
    try:
        for index, page in enumerate(pages):
            for k in range(1, per_page + 1):
                params = sample_params(difficulty, seed, page.number, k, page.size_mm)
                data, Hm, (W, H) = make_photo(renderer, page, index, params)
                name = photo_name(experiment_id, page.number, k)
                write_atomic(out / name, data)
                written.append(out / name)
                entries[name] = {
                    "experiment_id": experiment_id, "page": page.number, "index": k,
                    "difficulty": difficulty, "seed": seed, "width": W, "height": H,
                    "exif_orientation": params["camera"]["exif_orientation"],
                    "homography": [[float(v) for v in row] for row in Hm],
                    "params": params,
                }
                progress(len(written), total)
    finally:
        renderer.close()
        if entries:   # even after an interruption: every photo on disk gets its ground truth
            ground_truth.update(entries)
            write_atomic(gt_path, (json.dumps(ground_truth, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return written


__all__ = ["DIFFICULTIES", "GROUND_TRUTH_NAME", "PRESETS", "page_homography", "photo_name", "project",
           "sample_params", "simulate_photos"]
