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
   not quite flat: curled like a cylinder with a gentle wave on top
   (:func:`curl_profile`, a developable surface: the paper bends but never
   stretches), sometimes with a finger or a pen over a corner code
   (:func:`occluder_layer`), under uneven light (:func:`light_field`), a
   soft shadow of the photographer's hand or phone, the contact shadow of
   the (lifted) sheet on the table and the occluder's shadow
   (:func:`shadow_field`), the curled paper lit by its slope
   (:func:`paper_shading`);
3. the camera: the lens's residual distortion (:func:`distort`, OpenCV's
   radial + tangential model), lens blur (:func:`lens_blur`), vignetting
   (:func:`vignetting_field`), white-balance error (:func:`white_balance`),
   sensor noise (:func:`sensor_noise`), phone sharpening (:func:`sharpen`),
   JPEG at phone quality with an EXIF Orientation tag (:func:`encode_jpeg`),
   in 12-megapixel frames (4032 x 3024 or 3024 x 4032 as displayed).

The page is not mapped by one homography: :class:`PhotoGeometry` is the
exact forward model page mm -> photo px (flat pose, curl and wave lift along
the page normal, pinhole projection, lens distortion), and the renderer
inverts it numerically for every photo pixel (Newton's method on a coarse
grid, upsampled) to sample the printed page. :func:`page_to_photo` maps any
page points of a photo through that model, from its ground-truth entry.

Difficulty presets are in :data:`PRESETS` (one dict of parameter ranges per
preset):

* ``easy``: nearly straight, flat, even light, little blur, no distortion;
* ``normal``: what a careful user gets: any rotation, tilt up to 20 degrees,
  a sheet lying not quite flat (edge lift up to 5 mm), the small distortion
  a phone leaves after its own correction, moderate blur, noise and shadow;
  no occluder, the whole page in the frame;
* ``hard``: a careless user: strong tilt, curl (an edge or corner 5-20 mm
  up) and wave, larger distortion, heavy shadow and blur, low JPEG quality,
  pixels often stored rotated with an EXIF Orientation tag (as phones do),
  sometimes shot from farther away (QR modules down to ~3 px), sometimes a
  finger or pen over a corner code, sometimes a page corner cut by the frame;
* ``extreme``: beyond: stronger tilt, curl at both ends plus wave, strong
  distortion, an occluder over a corner code and a cut corner in most
  photos, often QR modules of ~3 px; light, blur and noise as ``hard``.

Determinism: the print of page ``p`` is seeded from ``(seed, p)`` (all photos
of a page show the same physical printout); everything else in photo ``k``
of page ``p`` is seeded from ``(seed, p, k)`` (the sheet's shape, the lens
and the occluder from ``(seed, p, k, 1)``). Same seed, same bytes (with the
same OpenCV, Pillow and pdfium builds).

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
        "slots": {"0": [[u, v], [u, v], [u, v], [u, v]], ...},
        "markers": {"TL": [[u, v], ...], "TR": ..., "BR": ..., "BL": ...},
        "module_px": {"TL": 9.8, ...},  # each corner code's module size in photo px
        "occluded": ["TL"],             # corner codes the occluder covers, even partly
        "occluded_slots": [],           # slot indices ("0", ...) it covers, even partly
        "cut": ["TL", "0"],             # markers and slots not wholly inside the frame
        "params": {...}                 # every sampled parameter (see sample_params)
      }

  All photo coordinates are pixel coordinates of the photo AS DISPLAYED,
  i.e. after applying its EXIF orientation, with OpenCV's convention that
  ``(0, 0)`` is the centre of the top-left pixel (the image spans -0.5 ..
  width - 0.5). Page coordinates are millimetres, x right, y down from the
  page's top-left corner, as in ``physical/sheets/layout.py``.

  ``slots`` and ``markers`` are exact: the photo positions of the corners
  TL, TR, BR, BL of every slot rect (by slot index) and of every corner QR
  code's rect (by corner), through the full forward model (curl, wave,
  distortion). They may lie outside the frame (see ``cut``). ``module_px``
  is ``sqrt(area of the code's quad) / 25`` (the codes have 25 x 25
  modules). ``homography`` is a 3 x 3 matrix ``H`` (``H[2][2] == 1``)
  mapping page mm ``(x, y, 1)`` to photo
  pixels ``(u, v, 1) ~ H @ (x, y, 1)`` for the flat TABLE plane under the
  sheet (the page's pose before it curls, without lens distortion): it is
  exact for the page only when curl, wave and distortion are all zero (as
  in ``easy``); otherwise use ``slots``/``markers`` or, for any other page
  point, :func:`page_to_photo`::

      from physical.capture.camera import page_to_photo
      uv = page_to_photo(entry, page_size_mm, [[x_mm, y_mm], ...])  # (N, 2)

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
from ..sheets.layout import Page, marker_rects
from ..sheets.manifest import MANIFEST_NAME, manifest_pages, read_manifest

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
# brightness values in 0..1 of full scale; noise in 8-bit levels. Each
# function below documents why its ranges are what they are.
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
BACKGROUNDS = ("wood", "table", "fabric")
# Occluder colours (linear-ish sRGB 0..1 before the camera's gains): skin
# tones from very light to very dark, and common pen barrels.
SKIN_TONES = ((0.95, 0.80, 0.70), (0.89, 0.72, 0.60), (0.80, 0.60, 0.47), (0.66, 0.47, 0.34),
              (0.50, 0.34, 0.24), (0.34, 0.22, 0.16))
PEN_COLOURS = ((0.08, 0.08, 0.09), (0.10, 0.18, 0.55), (0.70, 0.10, 0.10), (0.65, 0.66, 0.68),
               (0.90, 0.90, 0.88), (0.10, 0.45, 0.25), (0.95, 0.80, 0.15))


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


def photo_frame(scene: dict[str, Any]) -> tuple[int, int]:
    """The displayed (W, H) of a photo: portrait or landscape 12 MP."""
    return (FRAME_SHORT, FRAME_LONG) if scene["portrait"] else (FRAME_LONG, FRAME_SHORT)


def sample_params(difficulty: str, seed: int, page: int, k: int,
                  page_size_mm: tuple[float, float] = (210.0, 297.0)) -> dict[str, Any]:
    """Draw every random parameter of photo ``k`` of ``page``; cheap (no pixels).

    The ``print`` group is seeded from ``(seed, page)``, the rest from
    ``(seed, page, k)``, the sheet's shape (``scene.curl``, ``scene.wave``),
    the occluder (``scene.occluder``), the cut (``scene.cut``) and the lens
    (``camera.distortion``) from ``(seed, page, k, 1)``. Returns a JSON-ready
    dict with groups ``print``, ``scene`` and ``camera`` (the ``params``
    stored in the ground truth). ``scene.fill`` and ``scene.shift_px`` are the
    final placement: ``fill`` as drawn, raised until every corner code has
    MIN_MODULE_PX px modules (the farthest a user holds the phone) and
    lowered until the curled, distorted page is wholly in the frame;
    ``shift_px`` moves the page so that the cut corner, if any, leaves the
    frame.
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
    params = {"print": printing, "scene": scene, "camera": camera}
    _sample_shape_and_framing(pr, _rng(seed, page, k, 1), params, (float(w), float(h)))
    return params


def _sample_shape_and_framing(pr: dict[str, Any], g: np.random.Generator, params: dict[str, Any],
                              page_size_mm: tuple[float, float]) -> None:
    """The sheet's curl and wave, the lens distortion, the occluder and the framing (in place)."""
    scene, camera = params["scene"], params["camera"]
    w, h = page_size_mm
    # Where the light comes from, for the curled paper's shading and the
    # shadows it and the occluder cast: ceiling lights and windows, 35-70
    # degrees above the table. Shadows fall along contact_shadow_direction_deg
    # (page axes).
    scene["light_elevation_deg"] = _u(g, (35.0, 70.0))
    # Curl: see curl_profile for the ranges. Both ends curl in some photos
    # (a sheet that was rolled, or fresh from a laser printer's fuser).
    direction = _u(g, (0.0, 360.0))
    lift, length = _u(g, pr["curl_lift_mm"]), _u(g, pr["curl_length_mm"])
    both = g.random() < pr["curl_both_prob"]
    lift2, length2 = round(lift * _u(g, (0.3, 1.0)), 6), _u(g, pr["curl_length_mm"])
    th = math.radians(direction)
    extent = w * abs(math.cos(th)) + h * abs(math.sin(th))
    length = min(length, 0.8 * extent)
    length2 = min(length2, extent - length - 20.0)
    if not both or length2 < pr["curl_length_mm"][0]:   # no room for a second bend as gentle as the first
        lift2 = 0.0
    scene["curl"] = {"direction_deg": direction, "lift_mm": lift, "length_mm": round(length, 6),
                     "lift2_mm": lift2, "length2_mm": round(max(length2, 0.0), 6)}
    scene["wave"] = {"amplitude_mm": _u(g, pr["wave_mm"]), "wavelength_mm": _u(g, pr["wavelength_mm"]),
                     "phase_deg": _u(g, (0.0, 360.0))}
    # Lens: see distort for the ranges.
    camera["distortion"] = {"k1": _u(g, (-pr["k1"], pr["k1"])), "k2": _u(g, (-pr["k2"], pr["k2"])),
                            "p1": _u(g, (-pr["tangential"], pr["tangential"])),
                            "p2": _u(g, (-pr["tangential"], pr["tangential"]))}
    occluder = g.random() < pr["occluder_prob"]
    occ_rng = _rng(int(g.integers(0, 2**31)))
    cut = g.random() < pr["cut_prob"]
    cut_side = str(g.choice(["left", "right", "top", "bottom"]))
    cut_depth = _u(g, pr["cut_depth_mm"])
    scene["shift_px"] = [0.0, 0.0]
    scene["occluder"] = sample_occluder(occ_rng, page_size_mm, scene) if occluder else None
    scene["cut"] = None
    _place(params, page_size_mm)
    if cut and cut_depth > 0:
        _cut_corner(params, page_size_mm, cut_side, cut_depth)


def _outline(page_size_mm: tuple[float, float], step_mm: float = 5.0) -> np.ndarray:
    """Points along the page's edge, every ``step_mm`` (corners included), (N, 2) mm."""
    w, h = page_size_mm
    pts = []
    for (x0, y0), (x1, y1) in zip([(0, 0), (w, 0), (w, h), (0, h)], [(w, 0), (w, h), (0, h), (0, 0)]):
        n = max(2, math.ceil(math.hypot(x1 - x0, y1 - y0) / step_mm))
        t = np.arange(n) / n
        pts.append(np.column_stack([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t]))
    return np.concatenate(pts)


def _module_px(geo: "PhotoGeometry", page_size_mm: tuple[float, float]) -> float:
    """The smallest corner code's module size in photo px (sqrt of the quad's area / QR_MODULES)."""
    best = math.inf
    for rect in marker_rects(page_size_mm).values():
        q = geo.points(rect.corners())
        area = 0.5 * abs(float(np.dot(q[:, 0], np.roll(q[:, 1], -1)) - np.dot(q[:, 1], np.roll(q[:, 0], -1))))
        best = min(best, math.sqrt(area) / QR_MODULES)
    return best


def _place(params: dict[str, Any], page_size_mm: tuple[float, float]) -> None:
    """Final ``fill``: every corner code's modules at least MIN_MODULE_PX, the whole curled page in the frame."""
    scene = params["scene"]
    W, H = photo_frame(scene)
    outline = _outline(page_size_mm)
    for _ in range(60):
        geo = PhotoGeometry(params, page_size_mm)
        module = _module_px(geo, page_size_mm)
        if module < MIN_MODULE_PX * 0.999:
            scene["fill"] = round(scene["fill"] * min(1.5, MIN_MODULE_PX / module * 1.002), 6)
            continue
        uv = geo.points(outline)
        lo, hi = uv.min(axis=0), uv.max(axis=0)
        if (lo >= FRAME_MARGIN_PX).all() and (hi <= np.array([W, H]) - 1 - FRAME_MARGIN_PX).all():
            return
        scene["fill"] = round(scene["fill"] * 0.99, 6)
    raise AssertionError("virtual camera: cannot fit the page in the frame")   # pragma: no cover


def _cut_corner(params: dict[str, Any], page_size_mm: tuple[float, float], side: str, depth_mm: float) -> None:
    """Move the page towards ``side`` until its outermost corner lies ``depth_mm`` beyond the frame.

    The depth (3-15 mm hard, 5-30 mm extreme: from a sliver of paper to
    the whole corner code, which starts 10 mm in) is measured across the
    frame edge in page mm at that corner, and capped at 0.8 of the distance
    to the next corner along that direction, so that one corner, not a whole
    edge, leaves the frame (a nearly axis-aligned page then loses only a
    sliver).
    """
    scene = params["scene"]
    W, H = photo_frame(scene)
    w, h = page_size_mm
    corners = np.array([(0, 0), (w, 0), (w, h), (0, h)], dtype=float)
    axis = 0 if side in ("left", "right") else 1
    sign = -1.0 if side in ("left", "top") else 1.0
    geo = PhotoGeometry(params, page_size_mm)
    uv = geo.points(corners)
    order = np.argsort(sign * uv[:, axis])
    i, j = int(order[-1]), int(order[-2])
    scale = geo.scale_at(corners[i:i + 1])[0]
    depth_px = min(depth_mm * scale, 0.8 * sign * (uv[i, axis] - uv[j, axis]))
    edge = -0.5 if sign < 0 else (W, H)[axis] - 0.5
    for _ in range(4):
        pos = PhotoGeometry(params, page_size_mm).points(corners[i:i + 1])[0, axis]
        target = edge + sign * depth_px
        scene["shift_px"][axis] = round(float(scene["shift_px"][axis] + target - pos), 6)
    scene["cut"] = {"side": side, "corner": CORNERS[i], "depth_mm": round(float(depth_px / scale), 6)}


# ---------------------------------------------------------------- geometry

def _pose(scene: dict[str, Any], page_size_mm: tuple[float, float],
          frame: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(H, lift): the flat page's homography and the photo-space effect of lifting a point by 1 mm.

    ``H @ (x, y, 1) + z * lift`` is the homogeneous photo point (before lens
    distortion) of the table-plane point ``(x, y)`` raised ``z`` mm along the
    plane's normal, towards the camera. See :func:`page_homography`. The
    pinhole camera is the one ``H`` implies: intrinsics ``fit @ K`` (the
    placement's scale and shift act as a slight zoom and a lens shift), so
    a zero lift gives ``H`` exactly; the lens distortion (:func:`distort`)
    is centred on the frame, with the phone's focal length.
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
    # People aim at what they photograph: the page's centre strays at most
    # 20% of the frame from the frame's centre (binds only for small pages).
    reach = np.minimum(slack / 2, 0.2 * np.array([W, H]))
    target_lo = slack / 2 + 0.9 * np.array(scene["offset"]) * reach + np.array(scene.get("shift_px", (0.0, 0.0)))
    fit = np.array([[s, 0, target_lo[0] - s * lo[0]], [0, s, target_lo[1] - s * lo[1]], [0, 0, 1]])
    Hm = fit @ Hm
    # The plane's normal towards the camera (the camera looks along +z) is -r3[:, 2].
    lift = -(fit @ K @ r3[:, 2])
    return Hm / Hm[2, 2], lift / Hm[2, 2]


def page_homography(scene: dict[str, Any], page_size_mm: tuple[float, float],
                    frame: tuple[int, int]) -> np.ndarray:
    """Homography from page mm (top-left origin, y down) to displayed photo pixels, for the flat table plane.

    Models a pinhole phone camera (focal length FOCAL_FRACTION x the frame's
    long side, ~26 mm equivalent) looking at the sheet: the sheet is rotated
    in its plane by ``rotation_deg`` (0-360), tilted by ``tilt_deg`` about an
    in-plane axis at ``tilt_axis_deg`` (easy 0-5, normal 0-20, hard 20-38,
    extreme 25-42 degrees), placed at the distance where its bounding box
    fills ``fill`` of the frame (the limiting side; easy 0.72-0.85, normal
    0.60-0.85, hard 0.30-0.80 and extreme 0.22-0.55, whose low ends are a
    phone held ~0.8 m away: see MIN_MODULE_PX), and shifted by
    ``offset`` (-1..1 of the free margin, at most 20% of the frame) plus
    ``shift_px`` (the cut corner).
    Pixel centres are at integer coordinates. This is the pose of the
    table plane the sheet lies on: exact for the page only when it is flat
    and the lens has no distortion (:class:`PhotoGeometry` is the exact model).
    """
    return _pose(scene, page_size_mm, frame)[0]


def project(Hm: np.ndarray, points) -> np.ndarray:
    """Apply homography ``Hm`` to (N, 2) points; returns (N, 2) floats."""
    p = np.asarray(points, dtype=float).reshape(-1, 2)
    q = np.column_stack([p, np.ones(len(p))]) @ np.asarray(Hm, dtype=float).T
    return q[:, :2] / q[:, 2:3]


def _arc_angle(lift_mm: float, length_mm: float) -> float:
    """Bend angle theta of a circular arc of length L whose end rises ``lift``: L (1 - cos t) / t = lift."""
    target = lift_mm / length_mm
    lo, hi = 0.0, math.pi
    for _ in range(80):
        mid = (lo + hi) / 2
        if (1 - math.cos(mid)) / mid < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


class CurlProfile:
    """The sheet's shape: a generalised cylinder, its lift a function of one page coordinate.

    ``s`` is the page coordinate along the bend direction (from the page
    centre); the sheet's cross-section is the curve ``(q(s), z(s))``
    parametrised by arc length: ``q`` is where the page point lands along
    the bend direction in the table plane, ``z`` its height above the table.
    ``q' = sqrt(1 - z'^2)``, so the sheet bends without stretching
    (developable): page points ``s`` apart along the bend lie ``s`` apart
    along the curved sheet; lines across the bend stay straight and keep
    their length. Tabulated every ``STEP_MM`` (midpoint rule) and linearly
    interpolated; the page centre stays in place (``q(0) = 0``).
    """

    STEP_MM = 0.02
    EXTEND_MM = 10.0   # the shape continues this far beyond the page, then levels off

    def __init__(self, curl: dict[str, Any], wave: dict[str, Any], page_size_mm: tuple[float, float]):
        w, h = page_size_mm
        th = math.radians(curl.get("direction_deg", 0.0))
        self.d = (math.cos(th), math.sin(th))
        self.centre = (w / 2, h / 2)
        half = (w * abs(self.d[0]) + h * abs(self.d[1])) / 2
        n = math.ceil((half + self.EXTEND_MM) / self.STEP_MM)
        self.S = np.arange(-n, n + 1) * self.STEP_MM
        ends = []
        for lift, length, sign in ((curl.get("lift_mm", 0.0), curl.get("length_mm", 0.0), 1.0),
                                   (curl.get("lift2_mm", 0.0), curl.get("length2_mm", 0.0), -1.0)):
            if lift > 0 and length > 0:
                t = _arc_angle(lift, length)
                ends.append((length / t, half - length, sign))   # radius, where the bend starts (|s|), side
        amp, lam = wave.get("amplitude_mm", 0.0), wave.get("wavelength_mm", 100.0)
        ph = math.radians(wave.get("phase_deg", 0.0))

        def shape(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            z, zp = np.zeros_like(s), np.zeros_like(s)
            for R, start, sign in ends:
                t = np.maximum(sign * s - start, 0.0)        # arc length into the bend
                z += R * (1 - np.cos(t / R))
                zp += sign * np.sin(t / R)
            if amp > 0:   # lift >= 0: the sheet touches the table in the wave's troughs
                k = 2 * math.pi / lam
                z += amp / 2 * (1 - np.cos(k * s + ph))
                zp += amp / 2 * k * np.sin(k * s + ph)
            return z, zp

        self.Z, self.ZP = shape(self.S)
        _, zp_mid = shape(self.S[:-1] + self.STEP_MM / 2)
        dq = self.STEP_MM * np.sqrt(np.maximum(1 - zp_mid ** 2, 0.0))
        Q = np.concatenate([[0.0], np.cumsum(dq)])
        Q -= Q[n]
        self.SHRINK = Q - self.S   # q(s) - s: how far the point moves along the bend direction

    def s_of(self, x, y):
        return (x - self.centre[0]) * self.d[0] + (y - self.centre[1]) * self.d[1]

    def _lerp(self, s, *tables):
        # Linear interpolation on the uniform table (np.interp's binary search is slower), clamped at its ends.
        t = np.clip((s - self.S[0]) / self.STEP_MM, 0, len(self.S) - 1.000001)
        i = t.astype(np.intp)
        f = t - i
        return [tab[i] + f * (tab[i + 1] - tab[i]) for tab in tables]

    def sheet(self, x, y):
        """Page mm -> (x', y', z): the point's place in the table plane (page axes) and height, mm."""
        shrink, z = self._lerp(self.s_of(x, y), self.SHRINK, self.Z)
        return x + shrink * self.d[0], y + shrink * self.d[1], z

    def slope(self, x, y):
        """dz/ds, the sheet's slope along the bend direction at page points."""
        return self._lerp(self.s_of(x, y), self.ZP)[0]


def curl_profile(scene: dict[str, Any], page_size_mm: tuple[float, float]) -> CurlProfile | None:
    """The sheet's curl and wave (None when it lies flat).

    * ``curl``: the sheet bends like a cylinder about an axis in its plane,
      perpendicular to ``direction_deg`` (page axes, 0 = +x): over the last
      ``length_mm`` of the page in that direction it follows a circular arc
      whose far end (an edge, or a corner when the direction is oblique)
      rises ``lift_mm`` off the table; ``lift2_mm``/``length2_mm`` do the same
      at the opposite end (0 when only one end curls). A sheet lying on a
      table is rarely perfectly flat: ``normal`` 0-5 mm; a careless user's
      sheet fresh from a laser printer, folded or rolled, ``hard`` 5-20 mm;
      ``extreme`` 12-20 mm, both ends in about half the photos. Curled lengths
      60-200 mm keep the bend under ~40 degrees (paper of this stiffness
      does not crease by itself).
    * ``wave``: a gentle sinusoidal lift across the sheet (humidity or ink
      cockle), ``amplitude_mm`` peak to trough (normal 0-0.8, hard 0.3-2,
      extreme 1-3), ``wavelength_mm`` 50-150, along the same direction as
      the curl, so the whole shape stays developable.

    The lift is applied along the page plane's normal, towards the camera.
    """
    curl, wave = scene.get("curl") or {}, scene.get("wave") or {}
    if not (curl.get("lift_mm", 0) > 0 or curl.get("lift2_mm", 0) > 0 or wave.get("amplitude_mm", 0) > 0):
        return None
    return CurlProfile(curl, wave, page_size_mm)


def distort(u, v, distortion: dict[str, float], frame: tuple[int, int]):
    """The lens's residual distortion, OpenCV's model (as in ``cv2.projectPoints``), on pixel coordinates.

    Ideal pinhole pixels ``(u, v)`` are normalised by the phone's camera
    matrix (focal length FOCAL_FRACTION x the long side, principal point at
    the frame centre), then ``x' = x (1 + k1 r^2 + k2 r^4) + 2 p1 x y +
    p2 (r^2 + 2 x^2)``, ``y' = y (1 + k1 r^2 + k2 r^4) + p1 (r^2 + 2 y^2) +
    2 p2 x y``, and back to pixels. At the frame corners r^2 ~ 0.69, so the
    radial displacement there is up to ``|k1| 0.69 + |k2| 0.48`` of the
    radius. Phones correct their lens in the image processor and leave a
    residual: ``normal`` |k1| <= 0.012, |k2| <= 0.005 (at most ~1% at the
    corners), tangential |p1|, |p2| <= 0.0005 (a well-centred module);
    ``hard`` |k1| <= 0.04, |k2| <= 0.03, |p| <= 0.001 (up to ~4%: a cheaper
    phone's weaker correction, or a camera app that skips it); ``extreme``
    |k1| <= 0.08, |k2| <= 0.05, |p| <= 0.002 (up to ~8%: an uncorrected
    RAW/DNG, or the wide lens of an older phone). Either sign: barrel or
    pincushion residual.
    """
    k1, k2 = distortion.get("k1", 0.0), distortion.get("k2", 0.0)
    p1, p2 = distortion.get("p1", 0.0), distortion.get("p2", 0.0)
    W, H = frame
    f = FOCAL_FRACTION * max(W, H)
    cx, cy = (W - 1) / 2, (H - 1) / 2
    x, y = (u - cx) / f, (v - cy) / f
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + k2 * r2)
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd * f + cx, yd * f + cy


def undistort(u, v, distortion: dict[str, float], frame: tuple[int, int], iterations: int = 12):
    """Inverse of :func:`distort` (fixed-point iteration, as ``cv2.undistortPoints``)."""
    k1, k2 = distortion.get("k1", 0.0), distortion.get("k2", 0.0)
    p1, p2 = distortion.get("p1", 0.0), distortion.get("p2", 0.0)
    W, H = frame
    f = FOCAL_FRACTION * max(W, H)
    cx, cy = (W - 1) / 2, (H - 1) / 2
    xd, yd = (u - cx) / f, (v - cy) / f
    x, y = xd, yd
    for _ in range(iterations):
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + k2 * r2)
        x = (xd - 2 * p1 * x * y - p2 * (r2 + 2 * x * x)) / radial
        y = (yd - p1 * (r2 + 2 * y * y) - 2 * p2 * x * y) / radial
    return x * f + cx, y * f + cy


class PhotoGeometry:
    """The exact forward model of one photo: page mm -> displayed photo pixels, and its inverse.

    A page point ``(x, y)`` moves to its place on the curled sheet
    (:func:`curl_profile`: ``(x', y')`` in the table plane, height ``z``),
    is projected by the pinhole camera of :func:`page_homography` (the
    table plane's homography ``H`` plus ``z`` times the photo-space effect of
    a lift along the plane's normal), then distorted by the lens
    (:func:`distort`). With no curl, wave or distortion it is ``H`` exactly.
    """

    def __init__(self, params: dict[str, Any], page_size_mm: tuple[float, float]):
        scene = params["scene"]
        self.page_size = (float(page_size_mm[0]), float(page_size_mm[1]))
        self.frame = photo_frame(scene)
        self.H, self.lift = _pose(scene, self.page_size, self.frame)
        self.profile = curl_profile(scene, self.page_size)
        d = (params.get("camera") or {}).get("distortion") or {}
        self.distortion = {k: float(d.get(k, 0.0)) for k in ("k1", "k2", "p1", "p2")}
        self.distorted = any(v != 0 for v in self.distortion.values())

    def sheet(self, x, y):
        """Page mm -> (x', y', z): the curled sheet's point in table-plane mm (page axes) and height."""
        if self.profile is None:
            return x, y, np.zeros_like(x)
        return self.profile.sheet(x, y)

    def table_to_photo(self, xp, yp, z=None):
        """Table-plane mm (page axes), raised ``z`` mm -> photo px (lens included)."""
        H, L = self.H, self.lift
        U = H[0, 0] * xp + H[0, 1] * yp + H[0, 2]
        V = H[1, 0] * xp + H[1, 1] * yp + H[1, 2]
        S = H[2, 0] * xp + H[2, 1] * yp + H[2, 2]
        if z is not None:
            U, V, S = U + L[0] * z, V + L[1] * z, S + L[2] * z
        u, v = U / S, V / S
        if self.distorted:
            u, v = distort(u, v, self.distortion, self.frame)
        return u, v

    def __call__(self, x, y):
        """Page mm arrays -> photo px arrays."""
        if self.profile is None:
            return self.table_to_photo(x, y)
        xp, yp, z = self.profile.sheet(x, y)
        return self.table_to_photo(xp, yp, z)

    def points(self, points_mm) -> np.ndarray:
        """(N, 2) page mm -> (N, 2) photo px."""
        p = np.asarray(points_mm, dtype=float).reshape(-1, 2)
        u, v = self(p[:, 0], p[:, 1])
        return np.column_stack([u, v])

    def jacobian(self, x, y, eps: float = 0.01):
        """Photo px per page mm at page points: (u, v, du/dx, du/dy, dv/dx, dv/dy), central differences."""
        u, v = self(x, y)
        ax, ay = self(x + eps, y)
        bx, by = self(x - eps, y)
        cx, cy = self(x, y + eps)
        dx, dy = self(x, y - eps)
        e2 = 2 * eps
        return u, v, (ax - bx) / e2, (cx - dx) / e2, (ay - by) / e2, (cy - dy) / e2

    def scale_at(self, points_mm) -> np.ndarray:
        """Largest photo px per page mm (the Jacobian's larger singular value) at (N, 2) page points."""
        p = np.asarray(points_mm, dtype=float).reshape(-1, 2)
        _, _, a, b, c, d = self.jacobian(p[:, 0], p[:, 1])
        s1 = a * a + b * b + c * c + d * d
        det = a * d - b * c
        return np.sqrt((s1 + np.sqrt(np.maximum(s1 * s1 - 4 * det * det, 0))) / 2)

    def max_scale(self) -> float:
        """Largest photo px per page mm anywhere on the page (9 x 9 points, edges included)."""
        w, h = self.page_size
        xs, ys = np.meshgrid(np.linspace(0, w, 9), np.linspace(0, h, 9))
        return float(self.scale_at(np.column_stack([xs.ravel(), ys.ravel()])).max())

    def invert(self, u, v, iterations: int = 10, undistorted=None):
        """Photo px arrays -> (x, y, residual_px): the page point each pixel shows.

        Newton's method with a finite-difference Jacobian, starting from the
        flat table plane's inverse homography of the undistorted pixel
        (``undistorted``: precomputed ``undistort(u, v)``), iterating on the
        pixels not yet within 1e-6 px. Also defined off the page (the sheet's
        shape extended), so the page edge is found by the coordinates, not by
        the solver.
        """
        if undistorted is None:
            undistorted = undistort(u, v, self.distortion, self.frame) if self.distorted else (u, v)
        uu, vv = undistorted
        Hi = np.linalg.inv(self.H)
        den = Hi[2, 0] * uu + Hi[2, 1] * vv + Hi[2, 2]
        x = (Hi[0, 0] * uu + Hi[0, 1] * vv + Hi[0, 2]) / den
        y = (Hi[1, 0] * uu + Hi[1, 1] * vv + Hi[1, 2]) / den
        if self.profile is None and not self.distorted:
            return x, y, np.zeros_like(x)
        shape = np.shape(x)
        x, y = x.ravel().copy(), y.ravel().copy()
        tu, tv = np.broadcast_to(u, shape).ravel(), np.broadcast_to(v, shape).ravel()
        res = np.empty_like(x)
        idx = np.arange(x.size)
        eps = 0.05
        for _ in range(iterations + 1):
            xa, ya = x[idx], y[idx]
            fu, fv = self(xa, ya)
            ru, rv = fu - tu[idx], fv - tv[idx]
            r = np.hypot(ru, rv)
            res[idx] = r
            keep = r > 1e-6
            if not keep.any() or _ == iterations:
                break
            idx, xa, ya, fu, fv, ru, rv = idx[keep], xa[keep], ya[keep], fu[keep], fv[keep], ru[keep], rv[keep]
            ax, ay = self(xa + eps, ya)
            bx, by = self(xa, ya + eps)
            a, b = (ax - fu) / eps, (bx - fu) / eps
            c, d = (ay - fv) / eps, (by - fv) / eps
            det = a * d - b * c
            det = np.where(np.abs(det) < 1e-9, 1e-9, det)
            dx = (d * ru - b * rv) / det
            dy = (a * rv - c * ru) / det
            k = np.minimum(1.0, 50.0 / np.maximum(np.hypot(dx, dy), 1e-12))   # at most 50 mm per step
            x[idx], y[idx] = xa - k * dx, ya - k * dy
        return x.reshape(shape), y.reshape(shape), res.reshape(shape)


def page_to_photo(entry_or_params: dict[str, Any], page_size_mm: tuple[float, float], points_mm) -> np.ndarray:
    """Map page points through the exact forward model of one photo.

    ``entry_or_params`` is a ground-truth entry (with ``params``) or its
    ``params``; ``points_mm`` is (N, 2) page mm (x right, y down from the
    page's top-left corner). Returns (N, 2) pixel coordinates of the photo
    as displayed (EXIF applied; ``(0, 0)`` the centre of the top-left
    pixel): curl, wave, perspective and lens distortion included. Points
    may lie outside the page or the frame.
    """
    params = entry_or_params.get("params", entry_or_params)
    return PhotoGeometry(params, page_size_mm).points(points_mm)


def max_scale(Hm: np.ndarray, page_size_mm: tuple[float, float]) -> float:
    """Largest photo pixels per page millimetre anywhere on the page (at a corner), for a homography."""
    w, h = page_size_mm
    best = 0.0
    for x, y in [(0, 0), (w, 0), (w, h), (0, h)]:
        e = 0.5
        p = project(Hm, [(x, y), (x + e, y), (x, y + e)])
        J = np.column_stack([(p[1] - p[0]) / e, (p[2] - p[0]) / e])
        best = max(best, float(np.linalg.svd(J, compute_uv=False)[0]))
    return best


# ---------------------------------------------------------------- the occluder

def sample_occluder(rng: np.random.Generator, page_size_mm: tuple[float, float],
                    scene: dict[str, Any]) -> dict[str, Any]:
    """A finger or a pen over one corner QR code (page mm); see :func:`occluder_shape`.

    * ``finger`` (60%): a fingertip holding the sheet down at a corner,
      coming from outside the page within +-35 degrees of the corner's
      diagonal, the hand behind it; ``width_mm`` 14-20 (adult index
      fingers), tip placed from short of the code to past its centre, so it
      covers part or all of the code; a skin tone from very light to very
      dark; ``height_mm`` 6-15 above the paper (its shadow's offset).
    * ``pen`` (40%): a pen lying across the corner (within +-30 degrees of
      perpendicular to the diagonal), ``width_mm`` 8-12, ``length_mm``
      125-150, a barrel colour, a metal writing tip; ``height_mm`` 4-6.
    * shadow: darkening ``shadow_strength`` 0.3-0.55, softness
      ``shadow_softness_mm`` 1-4 (room light is broad), offset ``height_mm /
      tan(light_elevation)`` along ``contact_shadow_direction_deg``.

    The placement is nudged inwards until the code is covered at least in
    part (exactly: :func:`occluder_shape` on the code's rect).
    """
    w, h = page_size_mm
    corner = str(rng.choice(CORNERS))
    rect = marker_rects(page_size_mm)[corner]
    c = np.array([rect.x + rect.w / 2, rect.y + rect.h / 2])
    out = c - np.array([w / 2, h / 2])
    out /= np.linalg.norm(out)                   # from the page centre out through the corner
    kind = "finger" if rng.random() < 0.6 else "pen"
    occ: dict[str, Any] = {"kind": kind, "corner": corner,
                           "shadow_strength": _u(rng, (0.30, 0.55)),
                           "shadow_softness_mm": _u(rng, (1.0, 4.0))}
    size = rect.w
    if kind == "finger":
        a = math.atan2(-out[1], -out[0]) + math.radians(_u(rng, (-35.0, 35.0)))   # hand -> tip, inwards
        u = np.array([math.cos(a), math.sin(a)])
        perp = np.array([-u[1], u[0]])
        along, across = _u(rng, (-0.6, 0.3)), _u(rng, (-0.35, 0.35))
        tone = np.array(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]) * rng.uniform(0.92, 1.08, 3)
        occ.update({"direction_deg": round(math.degrees(a) % 360, 6), "width_mm": _u(rng, (14.0, 20.0)),
                    "length_mm": _u(rng, (65.0, 80.0)), "height_mm": _u(rng, (6.0, 15.0)),
                    "hand_side": float(rng.choice([-1.0, 1.0])),
                    "colour": [round(float(v), 6) for v in np.clip(tone, 0, 1)]})
        base = c + across * size * perp
        for t in np.linspace(along, 1.0, 30):
            occ["tip"] = [round(float(v), 6) for v in base + t * size * u]
            if occluder_coverage(occ, rect) > 0:
                break
    else:
        a = math.atan2(out[1], out[0]) + math.pi / 2 + math.radians(_u(rng, (-30.0, 30.0)))
        colour = PEN_COLOURS[int(rng.integers(len(PEN_COLOURS)))]
        occ.update({"direction_deg": round(math.degrees(a) % 360, 6), "width_mm": _u(rng, (8.0, 12.0)),
                    "length_mm": _u(rng, (125.0, 150.0)), "height_mm": _u(rng, (4.0, 6.0)),
                    "colour": list(colour), "tip_first": bool(rng.random() < 0.5)})
        u = np.array([math.cos(a), math.sin(a)])
        base = c + _u(rng, (-20.0, 20.0)) * u       # the pen's centre slides along itself
        start = _u(rng, (-0.5, 0.5))
        for t in np.linspace(start, -0.5 if start > 0 else 0.5, 30):   # towards the code's centre line
            occ["center"] = [round(float(v), 6) for v in base + t * size * out]
            if occluder_coverage(occ, rect) > 0:
                break
    return occ


def occluder_shape(occ: dict[str, Any], X: np.ndarray, Y: np.ndarray,
                   lit: tuple[float, float] = (0.0, -1.0)) -> tuple[np.ndarray, np.ndarray]:
    """(margin, rgb) of the occluder at page points: signed distance inside its outline (mm, > 0 inside)
    and its shaded colour (float32, 0..~1.3).

    A rounded shape shaded as a cylinder across its width (brighter on the
    side facing ``lit``, a unit vector in page axes towards the light, with a
    specular highlight): a finger (capsule of ``width_mm`` ending at ``tip``,
    ``length_mm`` long, with a nail near the tip; behind it the back of the
    hand, 84 mm wide, on the ``hand_side`` of the finger, with the other three fingers
    curled at its front, and the forearm, 60 mm wide, running out of the
    frame) or a pen (capsule of ``length_mm`` centred on
    ``center``, the last 12 mm a tapering metal tip).
    """
    a = math.radians(occ["direction_deg"])
    ux, uy = math.cos(a), math.sin(a)
    r = occ["width_mm"] / 2
    lit_side = 1.0 if (-uy * lit[0] + ux * lit[1]) >= 0 else -1.0
    colour = np.array(occ["colour"], dtype=np.float32)
    if occ["kind"] == "finger":
        tx, ty = occ["tip"]
        along = (X - tx) * ux + (Y - ty) * uy          # <= 0 on the finger, 0 at the tip
        across = -(X - tx) * uy + (Y - ty) * ux
        Lf = occ["length_mm"]
        side = occ.get("hand_side", 1.0)               # which side of the finger the palm lies (left/right hand)
        # finger, palm (the other fingers curled under it) and forearm: capsules
        # (start along, end along, across offset, radius), joined smoothly.
        # Capsules (start along, end along, across offset, radius; a capsule's
        # round end reaches its radius beyond its segment): the index finger
        # from the knuckles (along -Lf) to the tip; the back of the hand, 84 mm
        # wide, knuckles to wrist ~100 mm; the forearm to out of the frame; the
        # other three fingers curled under, their knuckles just in front.
        parts = ((-Lf, 0.0, 0.0, r), (-Lf - 70.0, -Lf - 32.0, side * 33.0, 42.0),
                 (-Lf - 500.0, -Lf - 100.0, side * 30.0, 30.0),
                 (-Lf - 40.0, -Lf + 14.0, side * 0.95 * 2 * r, 0.95 * r),
                 (-Lf - 40.0, -Lf + 10.0, side * 1.85 * 2 * r, 0.9 * r),
                 (-Lf - 40.0, -Lf + 2.0, side * 2.65 * 2 * r, 0.8 * r))
        margins, ds, sgns = [], [], []
        for a0, a1, off, rad in parts:
            t = np.clip(along, a0, a1)
            dist = np.hypot(along - t, across - off)
            margins.append(rad - dist)
            ds.append(np.clip(dist / rad, 0, 1))
            sgns.append((across - off) / rad)
        k = 6.0   # smooth union over ~6 mm: knuckles, not corners
        margin = margins[0]
        for m in margins[1:]:
            hmix = np.clip(0.5 + 0.5 * (margin - m) / k, 0, 1)
            margin = margin * hmix + m * (1 - hmix) + k * hmix * (1 - hmix)
        which = np.argmax(np.stack(margins), axis=0)
        d = np.choose(which, ds)
        sgn = np.choose(which, sgns)
        finger = which == 0
        bright = 0.62 + 0.38 * np.sqrt(1 - d * d)
        gloss = 0.06 * np.exp(-((sgn - 0.4 * lit_side) / 0.18) ** 2)   # skin's faint sheen, white light
        rgb = bright[..., None] * colour + gloss[..., None]
        # The nail: a lighter, pinker, glossier ellipse near the tip.
        na, nc = (along + 0.62 * r) / (0.55 * r), across / (0.62 * r)
        nail = np.clip((1 - np.sqrt(na * na + nc * nc)) * 4, 0, 1) * finger
        nail_rgb = (0.55 * colour + 0.45 * np.array([1.0, 0.86, 0.84], np.float32)) * 1.08
        rgb = rgb * (1 - nail[..., None]) + (bright[..., None] * nail_rgb) * nail[..., None]
    else:
        cx, cy = occ["center"]
        sign = 1.0 if occ.get("tip_first", True) else -1.0
        along = sign * ((X - cx) * ux + (Y - cy) * uy)
        across = -(X - cx) * uy + (Y - cy) * ux
        half, tip = occ["length_mm"] / 2, 12.0
        radius = np.where(along > half - tip, r * (1 - 0.7 * np.clip((along - (half - tip)) / tip, 0, 1)), r)
        body = np.where(along < -half, r - np.hypot(along + half, across), radius - np.abs(across))
        margin = np.where(along > half, -np.hypot(along - half, across) - 1.0, body)
        d = np.clip(np.abs(across) / np.maximum(radius, 1e-6), 0, 1)
        sgn = np.clip(across / np.maximum(radius, 1e-6), -1, 1)
        bright = 0.40 + 0.60 * np.sqrt(1 - d * d)
        gloss = 0.35 * np.exp(-((sgn - 0.45 * lit_side) / 0.12) ** 2)   # glossy barrel: a white highlight
        metal = (along > half - tip)[..., None]
        base = np.where(metal, np.array([0.70, 0.70, 0.72], np.float32), colour)
        rgb = bright[..., None] * base + gloss[..., None]
    return margin.astype(np.float32), rgb.astype(np.float32)


def occluder_coverage(occ: dict[str, Any] | None, rect, step_mm: float = 0.1) -> float:
    """Fraction of ``rect`` (page mm) under the occluder, sampled every ``step_mm``."""
    if not occ:
        return 0.0
    # The margin is (close to) a signed distance, 1-Lipschitz: far from the rect's centre means no
    # overlap (slack for the pen tip's cap, whose margin under-states the distance by up to ~3 mm).
    centre, _ = occluder_shape(occ, np.array([rect.x + rect.w / 2]), np.array([rect.y + rect.h / 2]))
    if centre[0] < -(math.hypot(rect.w, rect.h) / 2 + occ["width_mm"] + 2.0):
        return 0.0
    nx, ny = max(1, round(rect.w / step_mm)), max(1, round(rect.h / step_mm))
    X, Y = np.meshgrid(rect.x + (np.arange(nx) + 0.5) * rect.w / nx, rect.y + (np.arange(ny) + 0.5) * rect.h / ny)
    margin, _ = occluder_shape(occ, X, Y)
    return float((margin > 0).mean())


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

def _plane_coords(Hm: np.ndarray, shape: tuple[int, int], factor: int,
                  pixels: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Table-plane mm (the page's frame) of every pixel of a 1/``factor`` photo grid.

    ``pixels``: the grid's undistorted pixel coordinates (lens distortion
    removed), if the lens distorts; else the grid's own.
    """
    h, w = shape
    Hi = np.linalg.inv(Hm)
    if pixels is None:
        xs = ((np.arange(w, dtype=np.float32) + 0.5) * factor - 0.5)[None, :]
        ys = ((np.arange(h, dtype=np.float32) + 0.5) * factor - 0.5)[:, None]
    else:
        xs, ys = pixels
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
    # Seen from afar the weave is finer than the grid: the lens averages it
    # out (no moire): fade it out between 4 and 2 grid samples per period.
    footprint = np.sqrt(np.abs(np.gradient(X, axis=1) * np.gradient(Y, axis=0)
                               - np.gradient(X, axis=0) * np.gradient(Y, axis=1)))
    weave = weave * np.clip((weave_p / np.maximum(footprint, 1e-6) - 2) / 2, 0, 1)
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


def background(kind: str, seed: int, Hm: np.ndarray, frame: tuple[int, int],
               grid: "_PhotoGrid | None" = None) -> np.ndarray:
    """A table-top texture behind the sheet, full-frame RGB uint8.

    ``kind`` is ``wood`` (planks with grain, five wood tones), ``table``
    (plain or speckled laminate/stone, light to black) or ``fabric``
    (plain or gingham tablecloth with weave and wrinkles); colours and
    scales come from ``seed``, so each photo gets its own. The texture is
    evaluated in the table plane (mm, through the flat page homography, the
    table's exact pose) so it shares the page's perspective, and seen through
    the same lens (``grid`` carries the undistorted pixel coordinates), at
    1/4 resolution (1/2 for the fine weave) and upsampled.
    """
    W, H = frame
    factor = 2 if kind == "fabric" else 4
    shape = (math.ceil(H / factor), math.ceil(W / factor))
    pixels = None
    if grid is not None and grid.undistorted is not None:
        pixels = tuple(grid.upsample(m, factor, shape) for m in grid.undistorted)
    X, Y = _plane_coords(Hm, shape, factor, pixels)
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


def _shadow_dir(scene: dict[str, Any]) -> np.ndarray:
    a = math.radians(scene["contact_shadow_direction_deg"])
    return np.array([math.cos(a), math.sin(a)])


def shadow_field(scene: dict[str, Any], Hm: np.ndarray, page_size_mm: tuple[float, float],
                 frame: tuple[int, int], grid: "_PhotoGrid | None" = None) -> np.ndarray:
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
      (``contact_shadow`` 0.03-0.25 darkening): a flat sheet's edge casts a
      shadow 0.25 mm wide; a lifted edge at height z casts it
      ``z / tan(light_elevation_deg)`` farther along
      ``contact_shadow_direction_deg`` (page axes) and softer (a room
      light's ~0.2 rad of penumbra), and the table under the curl is shaded;
    * the occluder's shadow (see :func:`sample_occluder`).
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
    if grid is None:
        return (1 - np.clip(dark, 0, 0.95)).astype(np.float32)
    geo = grid.geometry
    # The sheet's contact shadow on the table: the region under the sheet and
    # its shadow, outlined by its edge's footprint and the edge's shadow,
    # blurred, kept off the sheet itself.
    edge = _outline(page_size_mm, 2.0)
    xp, yp, z = geo.sheet(edge[:, 0], edge[:, 1])
    cot = 1 / math.tan(math.radians(scene.get("light_elevation_deg", 45.0)))
    sd = _shadow_dir(scene)
    off = 0.25 + z * cot
    polys = [np.column_stack(geo.table_to_photo(xp, yp)),
             np.column_stack(geo.table_to_photo(xp + off * sd[0], yp + off * sd[1]))]
    cast = np.zeros((h, w), np.uint8)
    for poly in polys:
        cv2.fillPoly(cast, [np.round((poly + 0.5) * scale * 16 - 8).astype(np.int32)], 255,
                     lineType=cv2.LINE_AA, shift=4)
    penumbra_px = 0.2 * float(z.max()) * geo.max_scale() * scale
    cast_f = cv2.GaussianBlur(cast.astype(np.float32) / 255, (0, 0), math.hypot(0.8, penumbra_px))
    dark += scene["contact_shadow"] * cast_f * (1 - grid.page_cover)
    occ = scene.get("occluder")
    if occ:
        off = occ["height_mm"] * cot
        m, _ = occluder_shape(occ, grid.x - off * sd[0], grid.y - off * sd[1])
        ppm = grid.px_per_mm * scale
        s = np.clip(0.5 + m * ppm, 0, 1)
        s = cv2.GaussianBlur(s.astype(np.float32), (0, 0), max(0.5, occ["shadow_softness_mm"] * float(np.median(ppm))))
        own, _ = occluder_shape(occ, grid.x, grid.y)
        dark += occ["shadow_strength"] * s * (1 - np.clip(0.5 + own * ppm, 0, 1))
    return (1 - np.clip(dark, 0, 0.95)).astype(np.float32)


def paper_shading(scene: dict[str, Any], grid: "_PhotoGrid") -> np.ndarray:
    """The curled sheet lit by its slope: a gain at 1/GAIN_FACTOR resolution (1 off the sheet).

    Lambertian paper under a light ``light_elevation_deg`` (35-70 degrees)
    above the table, from opposite ``contact_shadow_direction_deg``, in a room
    that gives 60% of its light as ambient: gain ``(0.6 + 0.4 n.l) / (0.6 +
    0.4 sin(elevation))``, ``n`` the sheet's normal. A slope turned to the
    light brightens by a few percent, one turned away darkens by up to ~20%.
    """
    prof = grid.geometry.profile
    if prof is None:
        return np.ones_like(grid.x, dtype=np.float32)
    el = math.radians(scene.get("light_elevation_deg", 45.0))
    sd = _shadow_dir(scene)
    zp = prof.slope(grid.x, grid.y)
    qp = np.sqrt(np.maximum(1 - zp * zp, 0))
    l_d = -math.cos(el) * (sd[0] * prof.d[0] + sd[1] * prof.d[1])   # the light's component along the bend
    ndotl = np.maximum(-zp * l_d + qp * math.sin(el), 0)
    gain = (0.6 + 0.4 * ndotl) / (0.6 + 0.4 * math.sin(el))
    return (1 + grid.page_cover * (gain - 1)).astype(np.float32)


def occluder_layer(img: np.ndarray, scene: dict[str, Any], grid: "_PhotoGrid") -> np.ndarray:
    """Draw the occluder (:func:`occluder_shape`) over the frame, in place; its shadow is in :func:`shadow_field`.

    Drawn on the sheet's surface through the exact forward model (a finger or
    pen a few mm above the paper would look a few percent larger; ignored),
    before the camera's light, blur and noise. Its outline distance and
    shading are smooth, so they are computed at 1/4 resolution and
    upsampled; the edge is anti-aliased over one photo pixel at full
    resolution.
    """
    occ = scene.get("occluder")
    if not occ:
        return img
    H, W = img.shape[:2]
    q = 4
    mask = np.clip(0.5 + occluder_shape(occ, grid.x, grid.y)[0] * grid.px_per_mm / GAIN_FACTOR, 0, 1) > 0
    if not mask.any():
        return img
    rows, cols = np.nonzero(mask)
    k = GAIN_FACTOR // q   # 1/8-grid cells -> 1/4-grid cells
    r0, r1 = max(0, (rows.min() - 1) * k), min(math.ceil(H / q), (rows.max() + 2) * k)
    c0, c1 = max(0, (cols.min() - 1) * k), min(math.ceil(W / q), (cols.max() + 2) * k)
    shape_q = (math.ceil(H / q), math.ceil(W / q))
    X = grid.upsample(grid.padded_x, q, shape_q)[r0:r1, c0:c1].astype(np.float64)
    Y = grid.upsample(grid.padded_y, q, shape_q)[r0:r1, c0:c1].astype(np.float64)
    ppm = float(np.median(grid.px_per_mm[mask]))
    sd = _shadow_dir(scene)
    margin, rgb = occluder_shape(occ, X, Y, lit=(-sd[0], -sd[1]))
    y0, y1, x0, x1 = r0 * q, min(H, r1 * q), c0 * q, min(W, c1 * q)
    size = ((c1 - c0) * q, (r1 - r0) * q)
    margin = cv2.resize(margin, size, interpolation=cv2.INTER_LINEAR)[:y1 - y0, :x1 - x0]
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)[:y1 - y0, :x1 - x0]
    alpha = np.clip(0.5 + margin * ppm, 0, 1)[..., None]
    patch = img[y0:y1, x0:x1].astype(np.float32)
    img[y0:y1, x0:x1] = np.clip(patch * (1 - alpha) + 255 * rgb * alpha, 0, 255).astype(np.uint8)
    return img


class _PhotoGrid:
    """The photo -> page map solved on a coarse grid of photo pixels (every MAP_STEP px).

    Nodes at pixel coordinates ``(i + 0.5) * MAP_STEP - 0.5``, ``i = -1 ..
    n`` (one node beyond each side of the frame, so upsampling interpolates
    right to the frame's edge). ``x``, ``y`` (page mm), ``page_cover``
    (0..1) and ``px_per_mm`` (photo px per page mm, geometric mean) are on
    the 1/GAIN_FACTOR grid of the gain fields. The map is smooth (curl radii
    of 80 mm and more, a few percent of lens distortion): bilinear
    interpolation between nodes 16 px apart is within ~0.02 px of the exact
    inverse (tests check 0.05 px at random pixels).
    """

    def __init__(self, geometry: PhotoGeometry):
        self.geometry = geometry
        W, H = geometry.frame
        self.step = MAP_STEP
        assert W % MAP_STEP == 0 and H % MAP_STEP == 0 and MAP_STEP % GAIN_FACTOR == 0
        n, m = W // MAP_STEP, H // MAP_STEP
        us = (np.arange(-1, n + 1) + 0.5) * MAP_STEP - 0.5
        vs = (np.arange(-1, m + 1) + 0.5) * MAP_STEP - 0.5
        U, V = np.meshgrid(us, vs)
        self.undistorted = None
        if geometry.distorted:
            self.undistorted = undistort(U, V, geometry.distortion, geometry.frame)
        x, y, res = geometry.invert(U, V, undistorted=self.undistorted)
        bad = ~(res < 0.01)
        x[bad], y[bad] = -1e4, -1e4   # no page point (the solver failed far off the page): background
        self.padded_x, self.padded_y = x, y
        shape = (math.ceil(H / GAIN_FACTOR), math.ceil(W / GAIN_FACTOR))
        self.x = self.upsample(x, GAIN_FACTOR, shape).astype(np.float64)
        self.y = self.upsample(y, GAIN_FACTOR, shape).astype(np.float64)
        # photo px per page mm: the map's own finite differences between nodes
        xu, xv = np.gradient(x, axis=1), np.gradient(x, axis=0)
        yu, yv = np.gradient(y, axis=1), np.gradient(y, axis=0)
        mm2 = np.abs(xu * yv - xv * yu) / MAP_STEP ** 2          # page mm^2 per photo px^2
        ppm = np.where(bad, 1.0, 1 / np.sqrt(np.maximum(mm2, 1e-12)))
        self.px_per_mm = np.maximum(self.upsample(ppm, GAIN_FACTOR, shape).astype(np.float64), 1e-3)
        w, h = geometry.page_size
        inside = np.minimum(np.minimum(self.x, w - self.x), np.minimum(self.y, h - self.y))
        self.page_cover = np.clip(0.5 + inside * self.px_per_mm / GAIN_FACTOR, 0, 1).astype(np.float32)

    def upsample(self, padded: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
        """A padded node map -> the 1/``factor`` pixel grid of ``shape`` (h, w), bilinear, float32."""
        r = self.step // factor
        big = cv2.resize(padded.astype(np.float32), (padded.shape[1] * r, padded.shape[0] * r),
                         interpolation=cv2.INTER_LINEAR)
        return big[r:r + shape[0], r:r + shape[1]]


def compose_scene(printed: np.ndarray, grid: _PhotoGrid, sx: float, sy: float,
                  bg: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, float, float]]:
    """Lay the printed sheet on the table: sample the render at every photo pixel's page point (in place).

    The coarse page-mm maps become render-pixel maps (``u = x_mm * sx -
    0.5``), upsampled bilinearly to full resolution; photo pixels that show
    no page keep the background. Returns the frame and the full maps.
    """
    H, W = bg.shape[:2]
    mx = grid.upsample(grid.padded_x * sx - 0.5, 1, (H, W))
    my = grid.upsample(grid.padded_y * sy - 0.5, 1, (H, W))
    cv2.remap(printed, mx, my, cv2.INTER_LINEAR, dst=bg, borderMode=cv2.BORDER_TRANSPARENT)
    return bg, (mx, my, sx, sy)


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
    """Simulate one photo; returns (JPEG bytes, flat table homography mm -> displayed pixels, displayed (W, H))."""
    scene, camera = params["scene"], params["camera"]
    geo = PhotoGeometry(params, page.size_mm)
    frame, Hm = geo.frame, geo.H
    px_per_mm = _render_scale(geo.max_scale())
    printed, sx, sy = renderer.printed(page, index, px_per_mm, params["print"])
    grid = _PhotoGrid(geo)
    img = background(scene["background"], scene["background_seed"], Hm, frame, grid)
    img, maps = compose_scene(printed, grid, sx, sy, img)
    del maps
    img = occluder_layer(img, scene, grid)
    img = apply_gain(img, light_field(scene, frame), shadow_field(scene, Hm, page.size_mm, frame, grid),
                     paper_shading(scene, grid), vignetting_field(camera, frame),
                     channel_gains=white_balance(camera))
    img = lens_blur(img, camera)
    img = sensor_noise(img, camera)
    img = sharpen(img, camera)
    return encode_jpeg(img, camera), Hm, frame


def _inside_frame(geo: PhotoGeometry, rect, step_mm: float = 0.5) -> bool:
    """Whether the whole of ``rect`` (page mm, its edges sampled every ``step_mm``) shows in the frame."""
    pts = []
    for (x0, y0), (x1, y1) in zip(rect.corners(), rect.corners()[1:] + rect.corners()[:1]):
        n = max(2, math.ceil(math.hypot(x1 - x0, y1 - y0) / step_mm))
        t = np.arange(n) / n
        pts.append(np.column_stack([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t]))
    uv = geo.points(np.concatenate(pts))
    W, H = geo.frame
    return bool((uv >= -0.5).all() and (uv[:, 0] <= W - 0.5).all() and (uv[:, 1] <= H - 0.5).all())


def photo_truth(params: dict[str, Any], page: Page) -> dict[str, Any]:
    """The exact geometry of one photo for its ground-truth entry (see the module docstring)."""
    geo = PhotoGeometry(params, page.size_mm)
    occ = params["scene"].get("occluder")

    def quad(rect) -> list[list[float]]:
        return [[float(v) for v in uv] for uv in geo.points(rect.corners())]

    markers = {m.corner: quad(m.rect) for m in page.markers}
    module_px = {}
    for m in page.markers:
        q = np.array(markers[m.corner])
        area = 0.5 * abs(float(np.dot(q[:, 0], np.roll(q[:, 1], -1)) - np.dot(q[:, 1], np.roll(q[:, 0], -1))))
        module_px[m.corner] = round(math.sqrt(area) / QR_MODULES, 4)
    return {
        "slots": {str(s.index): quad(s.rect) for s in page.slots},
        "markers": markers,
        "module_px": module_px,
        "occluded": [m.corner for m in page.markers if occluder_coverage(occ, m.rect) > 0],
        "occluded_slots": [str(s.index) for s in page.slots if occluder_coverage(occ, s.rect, 0.25) > 0],
        "cut": ([m.corner for m in page.markers if not _inside_frame(geo, m.rect)]
                + [str(s.index) for s in page.slots if not _inside_frame(geo, s.rect)]),
    }


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
                truth = photo_truth(params, page)
                name = photo_name(experiment_id, page.number, k)
                write_atomic(out / name, data)
                written.append(out / name)
                entries[name] = {
                    "experiment_id": experiment_id, "page": page.number, "index": k,
                    "difficulty": difficulty, "seed": seed, "width": W, "height": H,
                    "exif_orientation": params["camera"]["exif_orientation"],
                    "homography": [[float(v) for v in row] for row in Hm],
                    **truth,
                    "params": params,
                }
                progress(len(written), total)
    finally:
        renderer.close()
        if entries:   # even after an interruption: every photo on disk gets its ground truth
            ground_truth.update(entries)
            write_atomic(gt_path, (json.dumps(ground_truth, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return written


__all__ = ["DIFFICULTIES", "GROUND_TRUTH_NAME", "PRESETS", "PhotoGeometry", "page_homography", "page_to_photo",
           "photo_name", "photo_truth", "project", "sample_params", "simulate_photos"]
