"""Read a phone photo, whatever its format, as an upright 8-bit RGB array.

Accepted: JPEG (also the multi-picture MPO files some phones write), PNG,
WebP, TIFF, BMP, single-frame GIF and HEIC/HEIF (through pillow-heif). The
EXIF orientation is applied, so the array is the picture as a viewer shows
it. 16-bit, grey, palette, CMYK and images with transparency (composited on
white, the colour of paper) all come back as 8-bit RGB.

Every problem with a file (empty, truncated, not an image, animated, far too
large) raises :class:`PhotoError` with a short reason meant for the user; no
other exception escapes :func:`decode_photo` for bad input.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:
    import torch

# File name suffixes ingest reads (lower case); other files are not photos.
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".tif", ".tiff", ".bmp",
                            ".gif", ".heic", ".heif"})
# Refuse pictures above this many pixels: phones take up to 200 MP (108 and
# 200 MP sensors exist); bigger ones are almost surely not phone photos (or are
# decompression bombs). Pillow's own bomb check is set to the same limit.
MAX_PIXELS = 210_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# decode_reduced brings photos above this many pixels down by a power of two:
# a whole page in 50 MP still has ~20 photo px per mm, more than any crop needs,
# and the RGB array stays under 150 MB whatever the sensor.
WORK_PIXELS = 50_000_000

# Formats in which several frames mean an animation. Multi-frame MPO (phone
# JPEG plus depth map or preview), TIFF and HEIF use their first image.
_ANIMATED_FORMATS = {"GIF", "PNG", "WEBP", "FLI", "APNG"}
_heif_registered = False


class PhotoError(Exception):
    """A file that cannot be used as a photo; the message is a one-line reason."""


def is_photo_name(path: Path) -> bool:
    """True for a non-hidden name with a photo suffix (case-insensitive)."""
    return not path.name.startswith(".") and path.suffix.lower() in PHOTO_SUFFIXES


def _register_heif() -> None:
    global _heif_registered
    if not _heif_registered:
        try:
            from pillow_heif import register_heif_opener

            register_heif_opener()
        except ImportError:  # pragma: no cover - pillow-heif is a dependency
            pass
        _heif_registered = True


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


def _open(data: bytes) -> Image.Image:
    _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: the size is checked below
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise PhotoError(f"image too large ({_short(exc)}; limit {MAX_PIXELS // 1_000_000} MP)") from None
    except UnidentifiedImageError:
        raise PhotoError("not an image (unknown format or corrupt header)") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file, never a crash
        raise PhotoError(f"not a readable image ({_short(exc)})") from None


def _to_rgb8(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im).astype(np.float64)
        top = float(a.max()) if a.size else 0.0
        # 16-bit data (most such files) scale by 257; an "I" image holding 8-bit values stays.
        scale = 1.0 if top <= 255 else 257.0 if top <= 65535 else top / 255.0
        g = np.clip(np.rint(a / scale), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "F":
        a = np.nan_to_num(np.asarray(im, dtype=np.float64))
        a = a * 255.0 if a.size and a.max() <= 1.0 else a
        g = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"))


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001
        return 1


# EXIF orientation -> the numpy view that shows the stored pixels upright
# (the same transforms as PIL.ImageOps.exif_transpose; checked in the tests).
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, -1)[::-1],
    8: lambda a: np.rot90(a, 1),
}


def _decode_fast(data: bytes, im: Image.Image) -> np.ndarray | None:
    """OpenCV's decoder for plain 8-bit JPEG and PNG: ~3x faster than Pillow plus its array copies.

    The EXIF orientation is applied here (OpenCV is told to ignore it, as its
    handling differs between versions). Anything unusual, or a result that
    does not have the size Pillow announced, goes the Pillow way.
    """
    fmt = (im.format or "").upper()
    if not ((fmt in ("JPEG", "MPO") and im.mode in ("RGB", "L"))
            or (fmt == "PNG" and im.mode in ("RGB", "L") and "transparency" not in im.info)):
        return None
    orientation = _orientation(im)
    rgb_flag = getattr(cv2, "IMREAD_COLOR_RGB", None)
    flags = (cv2.IMREAD_COLOR if rgb_flag is None else rgb_flag) | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        return None
    if arr is None or arr.dtype != np.uint8 or arr.ndim != 3 or (arr.shape[1], arr.shape[0]) != im.size:
        return None
    if rgb_flag is None:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if orientation in _ORIENT:
        arr = np.ascontiguousarray(_ORIENT[orientation](arr))
    return arr


def decode_photo(data: bytes) -> np.ndarray:
    """Decode image file bytes to an upright (EXIF-rotated) ``(H, W, 3)`` uint8 RGB array.

    Raises:
        PhotoError: empty, truncated or corrupt data, not an image, an
            animated image, or more than MAX_PIXELS pixels.
    """
    if not data:
        raise PhotoError("empty file (0 bytes)")
    im = _open(data)
    try:
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise PhotoError(f"image too large: {w}x{h} pixels ({w * h / 1e6:.0f} MP, limit "
                             f"{MAX_PIXELS // 1_000_000} MP)")
        if w < 1 or h < 1:
            raise PhotoError(f"empty image ({w}x{h} pixels)")
        if (im.format or "").upper() in _ANIMATED_FORMATS and getattr(im, "n_frames", 1) > 1:
            raise PhotoError(f"animated image ({im.n_frames} frames); save one frame as a still photo")
        fast = _decode_fast(data, im)
        if fast is not None:
            return fast
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im.load()
        except Exception as exc:  # noqa: BLE001
            raise PhotoError(f"truncated or corrupt image ({_short(exc)})") from None
        try:
            upright = ImageOps.exif_transpose(im)
        except Exception:  # noqa: BLE001 - a malformed EXIF block: use the pixels as stored
            upright = im
        try:
            rgb = _to_rgb8(upright)
        except Exception as exc:  # noqa: BLE001
            raise PhotoError(f"unsupported image mode {im.mode} ({_short(exc)})") from None
        return np.ascontiguousarray(rgb, dtype=np.uint8)
    finally:
        im.close()


def decode_reduced(data: bytes, work_pixels: int | None = None) -> tuple[np.ndarray, int]:
    """Like :func:`decode_photo`, but a photo of more than ``work_pixels`` pixels comes back reduced
    by the smallest power of two ``k`` (2, 4 or 8) that brings it under, with bounded memory: a JPEG is
    decoded at 1/k scale by libjpeg itself, never at full size.

    Returns ``(rgb, k)``. Pixel ``(u, v)`` of ``rgb`` is the mean of the k x k block whose centre is
    ``((u + 0.5) k - 0.5, (v + 0.5) k - 0.5)`` in the full-size upright photo (the last
    partial block, if any, is dropped).
    """
    if not data:
        raise PhotoError("empty file (0 bytes)")
    work_pixels = WORK_PIXELS if work_pixels is None else work_pixels
    im = _open(data)
    try:
        w, h = im.size
        fmt, mode = (im.format or "").upper(), im.mode
        orientation = _orientation(im)
    finally:
        im.close()
    if w * h <= work_pixels or w * h > MAX_PIXELS:
        return decode_photo(data), 1
    k = 2
    while k < 8 and w * h > work_pixels * k * k:
        k *= 2
    # Phone sensors' sides are multiples of 8; other sizes (a partial block at the stored edge,
    # which the EXIF rotation may move to the top or left) are decoded in full and reduced.
    if fmt in ("JPEG", "MPO") and mode in ("RGB", "L") and w % k == 0 and h % k == 0:
        flag = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[k]
        try:
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flag | cv2.IMREAD_IGNORE_ORIENTATION)
        except cv2.error:
            bgr = None
        if bgr is not None and bgr.ndim == 3 and bgr.shape[:2] == (h // k, w // k):
            arr = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if orientation in _ORIENT:
                arr = _ORIENT[orientation](arr)
            return np.ascontiguousarray(arr), k
    full = decode_photo(data)
    hh, ww = (full.shape[0] // k) * k, (full.shape[1] // k) * k
    small = cv2.resize(full[:hh, :ww], (ww // k, hh // k), interpolation=cv2.INTER_AREA)
    return small, k


def read_photo(path: Path) -> tuple[bytes, np.ndarray]:
    """Return ``(file bytes, RGB array)``; the bytes give the checksum of what was decoded."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PhotoError(f"cannot read file ({_short(exc)})") from None
    return data, decode_photo(data)


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Round images in [0, 1] (a torch tensor) to the nearest of the 256 levels a PNG or a printer
    takes: the grid every saved image is on. Tensor methods only, so this module needs no torch."""
    return (x.clamp(0.0, 1.0) * 255.0).round() / 255.0


def encode_png(rgb: np.ndarray) -> bytes:
    """Lossless PNG bytes of an RGB uint8 array."""
    # Level 1: 2.4x faster than 6 for a 299 px crop, and only ~4 % bigger.
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


# The IJG's (libjpeg's) luminance quantisation table at quality 50, which qualities scale.
_IJG_LUMA = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
             14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
             49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)


def _ijg_table_sum(quality: int) -> int:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return sum(min(255, max(1, (q * scale + 50) // 100)) for q in _IJG_LUMA)


def jpeg_quality(data: bytes) -> int | None:
    """The IJG-equivalent quality (1-100) of a JPEG's luminance quantisation table; None if the
    bytes are not a baseline JPEG with one. Phones use their own tables: the quality whose IJG
    table quantises as coarsely in all (the same sum of steps) is the estimate."""
    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:
            tables = getattr(im, "quantization", None) or {}
    except Exception:  # noqa: BLE001 - any unreadable file simply has no quality
        return None
    luma = tables.get(0)
    if not luma or len(luma) != 64:
        return None
    total = sum(int(v) for v in luma)
    return min(range(1, 101), key=lambda q: (abs(_ijg_table_sum(q) - total), -q))
