"""The overlay: a small JPEG of each photo with what ingest found drawn on it, for the user to check."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from ..photo_io import encode_jpeg
from .codes import transform_points, marker_of_any
from .register import Scan, count_reasons

OVERLAY_SIDE = 1200


def draw_overlay(rgb: np.ndarray, scan: Scan | None, title: str, ok: bool,
                 dropped: Sequence[dict[str, Any]] = ()) -> bytes:
    """A small JPEG of the photo with what ingest found drawn on it, for the user to check.

    Green: markers used (labelled page and corner) and registration marks
    used (small squares); red: codes ignored or markers of the page not found
    (where they should be); orange: codes that could not be read; blue: the
    image slots cut out, labelled image id and variant, where their own fit
    put them; magenta, crossed: images dropped, labelled with the reason
    (where the page's overall fit puts them, which may be rough); the title bar
    says what happened.
    """
    h, w = rgb.shape[:2]
    s = min(1.0, OVERLAY_SIDE / max(h, w))
    small = rgb
    while max(small.shape[:2]) >= 2 * OVERLAY_SIDE:  # Gaussian halving first: 3x faster than one INTER_AREA
        small = cv2.pyrDown(small)
    img = cv2.resize(small, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    font = cv2.FONT_HERSHEY_SIMPLEX
    green, red, orange, blue, magenta = (0, 170, 0), (0, 0, 220), (0, 140, 255), (200, 90, 0), (200, 0, 200)

    def pts(p: np.ndarray) -> np.ndarray:
        return np.round((np.asarray(p) + 0.5) * s - 0.5).astype(np.int32).reshape(-1, 1, 2)

    def label(t: str, x: int, y: int, scale: float, fg: tuple[int, int, int], bg: tuple[int, int, int]) -> None:
        """Text in a filled box whose top-left is (x, y), kept inside the image."""
        t = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in t)
        (tw, th), base = cv2.getTextSize(t, font, scale, 1)
        x = int(np.clip(x, 0, max(0, img.shape[1] - tw - 4)))
        y = int(np.clip(y, 0, max(0, img.shape[0] - th - base - 4)))
        cv2.rectangle(img, (x, y), (x + tw + 4, y + th + base + 3), bg, -1)
        cv2.putText(img, t, (x + 2, y + th + 2), font, scale, fg, 1, cv2.LINE_AA)

    # Dropped images carry a number; the title bar says which reason each number stands for.
    keys = {r: i + 1 for i, r in enumerate(dict.fromkeys(d["reason"] for d in dropped))}
    if scan is not None:
        used = {id(c) for f in scan.fits for c in f.markers.values()}
        gone = {(d["page"], d["slot"]): keys[d["reason"]] for d in dropped}
        for f in scan.fits:
            for m in f.marks:
                cv2.polylines(img, [pts(m.quad)], True, green, 1, cv2.LINE_AA)
            by_index = {sf.slot.index: sf for sf in f.slots}
            for slot in f.page.slots:
                sf = by_index.get(slot.index)
                why = gone.get((f.page.number, slot.index))
                if sf is not None and sf.quad is not None:
                    corners = sf.quad
                else:
                    corners = transform_points(f.h, np.array(slot.rect.corners()))
                q = pts(corners)
                side = float(np.linalg.norm(q[1, 0] - q[0, 0]))
                fs = float(np.clip(side / 190, 0.28, 0.5))
                x, y = q[:, 0, 0].min() + 2, q[:, 0, 1].min() + 2
                if why is None:
                    cv2.polylines(img, [q], True, blue, 1, cv2.LINE_AA)
                    label(slot.image_id, x, y, fs, (255, 255, 255), blue)
                    label(slot.variant, x, y + int(30 * fs) + 2, fs, (255, 255, 255), blue)
                else:
                    cv2.polylines(img, [q], True, magenta, 2, cv2.LINE_AA)
                    cv2.line(img, tuple(q[0, 0]), tuple(q[2, 0]), magenta, 1, cv2.LINE_AA)
                    cv2.line(img, tuple(q[1, 0]), tuple(q[3, 0]), magenta, 1, cv2.LINE_AA)
                    label(f"dropped {why}", x, y, fs, (255, 255, 255), magenta)
            for m in f.page.markers:
                if m.corner not in f.markers:
                    q = pts(transform_points(f.h, np.array(m.rect.corners())))
                    cv2.polylines(img, [q], True, red, 1, cv2.LINE_AA)
                    label(f"{m.corner} not found", q[:, 0, 0].min(), q[:, 0, 1].min() - 16, 0.4, (255, 255, 255), red)
        codes = list(scan.codes) + [c for f in scan.fits for c in f.markers.values() if c.predicted]
        for c in codes:
            if id(c) in used:
                color, text = green, f"page {c.marker.page} {c.marker.corner}" if c.marker else "marker"
            elif c.marker is not None:
                color, text = red, f"page {c.marker.page} {c.marker.corner} (not used)"
            elif c.text:
                other = marker_of_any(c.text)
                color, text = red, (f"experiment {other.experiment_id}" if other else f"other QR: {c.text[:20]}")
            else:
                color, text = orange, "unreadable QR"
            q = pts(c.quad)
            cv2.polylines(img, [q], True, color, 2, cv2.LINE_AA)
            tl = q[0, 0]  # the code's own top-left corner: shows how the page lies
            cv2.circle(img, (int(tl[0]), int(tl[1])), 4, color, -1, cv2.LINE_AA)
            label(text, q[:, 0, 0].min(), q[:, 0, 1].min() - 18, 0.45, (255, 255, 255), color)
    lines = [(t, green if ok else red) for t in title.split("\n")]
    if dropped:
        counts = dict(count_reasons(dropped))
        lines += [(f"dropped {keys[r]}: {r} ({counts[r]})", magenta) for r in keys]
    bar = 10 + 22 * len(lines)
    cv2.rectangle(img, (0, 0), (img.shape[1], bar), (255, 255, 255), -1)
    for i, (line, color) in enumerate(lines):
        cv2.putText(img, "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in line), (8, 24 + 22 * i), font, 0.55,
                    color, 1, cv2.LINE_AA)
    return encode_jpeg(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), 85)
