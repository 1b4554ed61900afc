"""The channel's JPEG: the real codec (libjpeg-turbo through OpenCV on a CPU, nvJPEG on a GPU).

Its value is the real codec's; with a graph it is a straight-through
estimator (see :func:`physical.channel.pipeline.apply_channel`).
"""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import torch
from torch import Tensor

from .presets import NO_JPEG
from .workers import _share


def _gpu_codec(u: Tensor, quality: list[int]) -> Tensor:
    """torchvision (nvJPEG) round trip of (B, 3, H, W) uint8 images on a GPU, one call per quality."""
    from torchvision.io import decode_jpeg, encode_jpeg

    images = u.unbind(0)
    decoded: list[Tensor] = [images[0]] * len(images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to TorchCodec
        for q in sorted(set(quality)):
            members = [i for i, qi in enumerate(quality) if qi == q]
            data = encode_jpeg([images[i] for i in members], quality=q)
            # nvJPEG encodes into device memory; the decoder reads host bytes (kilobytes).
            host = torch.cat(data).cpu().split([len(d) for d in data])
            for i, image in zip(members, decode_jpeg(list(host), device=u.device)):
                decoded[i] = image
    return torch.stack(decoded)


def cpu_codec(bgr: np.ndarray, quality: list[int]) -> np.ndarray:
    """JPEG round trip, in place, of (B, H, W, 3) uint8 BGR images (OpenCV's layout) at
    per-image qualities (1-100); on return ``bgr`` holds the decoded images **in RGB**.

    OpenCV's codec, shared among ``torch.get_num_threads()`` threads (it
    releases the GIL). Its bytes and pixels equal torchvision's
    ``encode_jpeg``/``decode_jpeg`` (both libjpeg-turbo, 4:2:0, the same
    tables; tested), at 2-3x the speed: it takes the layout the channel
    writes, and no torch op runs in the workers (one there would start
    another OpenMP team, whose spinning threads slow the main thread).
    """
    def run(share: range) -> None:
        for i in share:
            ok, data = cv2.imencode(".jpg", bgr[i], [cv2.IMWRITE_JPEG_QUALITY, int(quality[i])])
            if not ok:
                raise RuntimeError(f"OpenCV could not encode a {bgr[i].shape} image as JPEG")
            bgr[i] = cv2.imdecode(data, cv2.IMREAD_COLOR_RGB)

    _share(run, len(bgr), torch.device("cpu"))
    return bgr


def jpeg_codec(u: Tensor, quality: list[int], out: Tensor | None = None) -> Tensor:
    """Real JPEG round trip of (B, 3, H, W) uint8 RGB images at per-image qualities (1-100).

    On a CPU, OpenCV's codec (:func:`cpu_codec`); on a GPU, torchvision's
    nvJPEG. Returns (B, 3, H, W) uint8, in ``out`` if given (it may be ``u``).
    """
    if u.device.type != "cpu":
        decoded = _gpu_codec(u, quality)
        return out.copy_(decoded) if out is not None else decoded
    bgr = u.flip(1).permute(0, 2, 3, 1).contiguous()
    rgb = torch.from_numpy(cpu_codec(bgr.numpy(), quality)).permute(0, 3, 1, 2)
    return out.copy_(rgb) if out is not None else rgb.contiguous()


def to_8bit(y: Tensor, out: Tensor, *, bgr: bool = False) -> Tensor:
    """Round (B, 3, H, W) values to 8 bits into uint8 ``out``: ``clamp(round(255 y), 0, 255)``.

    ``out`` may be any (B, 3, H, W) view, e.g. of a (B, H, W, 3) buffer;
    ``bgr=True`` writes the channels in reverse order (OpenCV's). Overwrites
    ``y``. (Rounds halves up, where ``torch.round`` rounds them to even: a
    value exactly halfway between two levels is as rare as any other float.)
    """
    torch.add(0.5, y, alpha=255, out=y).clamp_(0.0, 255.0)
    if not bgr:
        return out.copy_(y)    # the float -> uint8 conversion truncates: floor, as y >= 0
    for c in range(3):
        out[:, 2 - c].copy_(y[:, c])
    return out


def real_jpeg(y: Tensor, quality: Tensor, inplace: bool) -> Tensor:
    """JPEG of (B, 3, H, W) images in [0, 1] at per-image ``quality`` (int64; NO_JPEG skips).

    The value is the real codec's on the 8-bit grid, ``decode(encode(round(255 y))) / 255``;
    no gradient. ``inplace`` reuses ``y``'s memory for the result.
    """
    qs = quality.tolist()
    todo = [i for i, q in enumerate(qs) if q != NO_JPEG]
    if not todo:
        return y
    if len(todo) < len(qs):
        sub = torch.tensor(todo, device=y.device)
        out = y if inplace else y.clone()
        return out.index_copy_(0, sub, real_jpeg(y[sub], quality[sub], inplace=True))
    u = to_8bit(y if inplace else y.clone(), torch.empty(y.shape, dtype=torch.uint8, device=y.device))
    return torch.div(jpeg_codec(u, qs, out=u), 255, out=y if inplace else torch.empty_like(y))


# ---------------------------------------------------------------- the channel
