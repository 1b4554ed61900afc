"""The finger or pen over a corner code: where it lies, its shape and shading, what it covers."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...sheets.layout import marker_rects
from .presets import CORNERS, PEN_COLOURS, SKIN_TONES, _u


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
