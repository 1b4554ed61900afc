"""Stages 1 and 2 of a photo: the printed page, and the scene in front of the phone.

The printer (:func:`print_page`); the table (:func:`background`), the sheet laid
on it through the photo -> page map (:class:`_PhotoGrid`, :func:`compose_scene`),
the occluder (:func:`occluder_layer`), the light (:func:`light_field`), the
shadows (:func:`shadow_field`) and the curled paper's shading
(:func:`paper_shading`).
"""
from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from .geometry import PhotoGeometry, _grid, _outline, project, undistort
from .occluder import occluder_shape
from .presets import GAIN_FACTOR, MAP_STEP, _rng


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
