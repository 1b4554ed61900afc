"""Where page points land in the photo: the exact forward model page mm -> photo px.

The frame (:func:`photo_frame`), the flat table plane's pose
(:func:`page_homography`), the sheet's curl and wave (:func:`curl_profile`),
the lens's residual distortion (:func:`distort`), and :class:`PhotoGeometry`,
which chains them and inverts the chain.
"""
from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from .presets import FOCAL_FRACTION, FRAME_LONG, FRAME_SHORT


def photo_frame(scene: dict[str, Any]) -> tuple[int, int]:
    """The displayed (W, H) of a photo: portrait or landscape 12 MP."""
    return (FRAME_SHORT, FRAME_LONG) if scene["portrait"] else (FRAME_LONG, FRAME_SHORT)


def _grid(frame: tuple[int, int], factor: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Normalised coordinates (-1..1 across the long side) of a 1/factor grid of the frame."""
    W, H = frame
    w, h = math.ceil(W / factor), math.ceil(H / factor)
    L = max(W, H) / 2
    xs = (((np.arange(w, dtype=np.float32) + 0.5) * factor - W / 2) / L)[None, :]
    ys = (((np.arange(h, dtype=np.float32) + 0.5) * factor - H / 2) / L)[:, None]
    return xs, ys, (w, h)


def _outline(page_size_mm: tuple[float, float], step_mm: float = 5.0) -> np.ndarray:
    """Points along the page's edge, every ``step_mm`` (corners included), (N, 2) mm."""
    w, h = page_size_mm
    pts = []
    for (x0, y0), (x1, y1) in zip([(0, 0), (w, 0), (w, h), (0, h)], [(w, 0), (w, h), (0, h), (0, 0)]):
        n = max(2, math.ceil(math.hypot(x1 - x0, y1 - y0) / step_mm))
        t = np.arange(n) / n
        pts.append(np.column_stack([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t]))
    return np.concatenate(pts)


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
