"""Every random parameter of one photo (:func:`sample_params`), and the framing it implies.

Cheap (no pixels): the parameters are the ``params`` of the ground truth.
The framing raises ``fill`` until the corner codes are large enough, lowers it
until the whole curled page is in the frame, and may shift the page so that
one corner leaves it.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...sheets.layout import marker_rects
from .geometry import PhotoGeometry, _outline, photo_frame
from .occluder import sample_occluder
from .presets import (BACKGROUNDS, CORNERS, FRAME_MARGIN_PX, MIN_MODULE_PX, QR_MODULES, _check_difficulty, _check_phone,
                      _pick, _rng, _u)


def sample_params(difficulty: str, seed: int, page: int, k: int,
                  page_size_mm: tuple[float, float] = (210.0, 297.0), phone: str = "plain") -> dict[str, Any]:
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
    frame. A ``phone`` other than ``plain`` (:data:`.presets.PHONES`) draws
    its own from ``(seed, page, 2)`` (the paper) and ``(seed, page, k, 2)``
    after all of the above, which it leaves as drawn except where it
    replaces them: a plain phone's photos are those of before.
    """
    pr = _check_difficulty(difficulty)
    ph = _check_phone(phone)
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
    blur = _pick(r, pr["blur"])
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
    if ph:
        _sample_phone(ph, _rng(seed, page, 2), _rng(seed, page, k, 2), params)
        camera["phone"] = phone
    _sample_shape_and_framing(pr, _rng(seed, page, k, 1), params, (float(w), float(h)))
    return params


def _sample_phone(ph: dict[str, Any], page_rng: np.random.Generator, rng: np.random.Generator,
                  params: dict[str, Any]) -> None:
    """A phone's paper (per page), light, white balance, HDR and lens (in place; ranges in ``PHONES``)."""
    printing, camera = params["print"], params["camera"]
    paper = _pick(page_rng, ph["paper"])
    printing.update(paper=paper, paper_white=_u(page_rng, ph["paper_white"][paper]),
                    paper_tint=[_u(page_rng, r) for r in ph["paper_tint"][paper]])
    light = _pick(rng, ph["illuminant"])
    (r_lo_hi, b_lo_hi) = ph["awb"][light]
    gains = np.array([_u(rng, r_lo_hi), 1.0, _u(rng, b_lo_hi)])
    camera["illuminant"] = light
    camera["white_balance"] = [round(float(v), 6) for v in gains / gains.max()]
    camera["colour_gradient"] = (_u(rng, ph["mixed_gradient"]) if light == "mixed" else 0.0)
    camera["colour_gradient_deg"] = _u(rng, (0.0, 360.0))
    camera["hdr"] = {"compression": _u(rng, ph["hdr_compression"]), "detail": _u(rng, ph["hdr_detail"]),
                     "sigma": _u(rng, ph["hdr_sigma"])}
    camera["barrel"] = _u(rng, ph["barrel"])


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
    if camera.get("barrel"):     # a wide-angle lens's residual barrel, on top of the small terms
        camera["distortion"]["k1"] = round(-camera["barrel"], 6)
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
