"""Stage 3 of a photo, the phone itself: vignetting, white balance, blur, noise, local tone, sharpening, JPEG.

The lens's distortion is part of the geometry (:func:`.geometry.distort`):
it moves pixels, these change their values.
"""
from __future__ import annotations

import io
import math
from typing import Any

import cv2
import numpy as np
from PIL import Image

from .geometry import _grid
from .presets import EXIF_ORIENTATION, GAIN_FACTOR, NOISE_FACTOR, _rng


def vignetting_field(camera: dict[str, Any], frame: tuple[int, int]) -> np.ndarray:
    """Lens vignetting: gain ``1 - vignetting * r^2`` (r = 1 at the frame corners).

    ``vignetting`` 0-0.08 easy, 0.08-0.25 normal, 0.20-0.40 hard (corners
    that much darker than the centre). 1/GAIN_FACTOR resolution.
    """
    xs, ys, _ = _grid(frame, GAIN_FACTOR)
    W, H = frame
    r2 = (xs ** 2 + ys ** 2) / ((W ** 2 + H ** 2) / max(W, H) ** 2)
    return (1 - camera["vignetting"] * r2).astype(np.float32)


def white_balance(camera: dict[str, Any], frame: tuple[int, int]) -> np.ndarray:
    """Auto white balance error: per-channel gains (R, G, B), (3,) or a (h, w, 3) field at 1/GAIN_FACTOR.

    R and B gains within 1 +- 0.02 easy, 0.06 normal, 0.12 hard (a
    tungsten-warm or shade-blue tint) with the plain phone; the ``hdr``
    phone's residual casts of daylight, tungsten and mixed light (presets'
    ``PHONES``), and under mixed light a cast that changes across the frame:
    R and B gains ``1 +- colour_gradient`` from one side to the other,
    towards ``colour_gradient_deg``.
    """
    gains = np.array(camera["white_balance"], dtype=np.float32)
    amount = camera.get("colour_gradient", 0.0)
    if not amount:
        return gains
    xs, ys, _ = _grid(frame, GAIN_FACTOR)
    a = math.radians(camera["colour_gradient_deg"])
    s = np.clip(xs * math.cos(a) + ys * math.sin(a), -1, 1) * amount
    return gains * np.stack([1 + s, np.ones_like(s), 1 - s], -1).astype(np.float32)


def apply_gain(img: np.ndarray, *fields: np.ndarray, channel_gains: np.ndarray) -> np.ndarray:
    """Multiply the frame by low-resolution gain fields (upsampled once) and per-channel gains
    ((3,), or a (h, w, 3) field at the fields' resolution)."""
    H, W = img.shape[:2]
    g = fields[0]
    for f in fields[1:]:
        g = g * f
    g3 = g[..., None] * channel_gains
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


def local_tone_map(img: np.ndarray, camera: dict[str, Any]) -> np.ndarray:
    """HDR local tone mapping, as current phones apply to every photo (the ``hdr`` phone only).

    On the log luminance ``l``: its base layer ``b`` (a Gaussian of ``sigma``
    0.01-0.03 x the frame's long side, 40-120 px: a region of the page, a
    picture and its margin) is compressed about the frame's median ``m`` by
    ``compression`` 0.45-0.75, the detail ``l - b`` around it amplified by
    ``detail`` 1.0-1.25: each pixel's gain is ``exp((compression - 1)(b - m)
    + (detail - 1)(l - b))``, the same in the three channels (colour kept).
    Dark regions are lifted and bright ones tamed, each by its own
    surroundings, then the whole frame scaled so that its brightest 1 %
    keeps its level (the phone's highlight target). The base is computed at
    a quarter of the resolution; noise already in the frame is amplified
    with it, as in a phone.
    """
    hdr = camera.get("hdr")
    if not hdr:
        return img
    H, W = img.shape[:2]
    f = 4
    small = cv2.resize(img, (math.ceil(W / f), math.ceil(H / f)), interpolation=cv2.INTER_AREA)
    lum_small = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    base = cv2.GaussianBlur(np.log(np.maximum(lum_small, 1 / 255)), (0, 0), hdr["sigma"] * max(W, H) / f)
    c, d = hdr["compression"], hdr["detail"]
    log_small = np.log(np.maximum(lum_small, 1 / 255))
    gain_small = np.exp((c - 1) * (base - np.median(base)) + (d - 1) * (log_small - base))
    scale = np.percentile(lum_small, 99) / max(float(np.percentile(lum_small * gain_small, 99)), 1e-6)
    base_full = cv2.resize(base, (W, H), interpolation=cv2.INTER_LINEAR)
    lum = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    log_gain = (c - 1) * (base_full - np.median(base)) + (d - 1) * (np.log(np.maximum(lum, 1 / 255)) - base_full)
    gain = np.exp(log_gain, out=log_gain) * np.float32(scale)
    return cv2.multiply(img, cv2.merge([gain, gain, gain]), dtype=cv2.CV_8U)


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
