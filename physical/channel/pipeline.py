"""The whole channel: its steps in order over chunks of a batch (:func:`apply_channel`),
and :func:`simulate`, which draws the parameters from a preset and applies them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from kornia.enhance import jpeg_codec_differentiable
from torch import Tensor

from .codec import cpu_codec, jpeg_codec, real_jpeg, to_8bit
from .ops import (_per_image, add_noise, blur, blur_kernels, blur_radius, blur_sigma, light_field, local_tone,
                  noise_field, print_and_light, sampling_matrices, warp)
from .presets import NO_JPEG, PARAM_SHAPES
from .profile import draw_params

CHUNK_BYTES = 6 << 20    # CPU, no gradient: images per chunk such that an intermediate is ~6 MB
GRAD_CHUNK_BYTES = 16 << 20   # CPU, with a graph (kept until backward, so no reuse): fewer, larger ops
_ALLOCATOR_WARM = False


def _check(x: Tensor, params: dict[str, Tensor]) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images (B, 3, H, W), got {tuple(x.shape)}")
    missing = [k for k in (*PARAM_SHAPES, "noise_seed") if k not in params]
    if missing:
        raise ValueError(f"channel params lack {', '.join(missing)}")
    for k, shape in PARAM_SHAPES.items():
        if tuple(params[k].shape) != (x.shape[0], *shape):
            raise ValueError(f"channel param {k!r} has shape {tuple(params[k].shape)}, "
                             f"expected {(x.shape[0], *shape)}")
    if tuple(params["noise_seed"].shape) != (x.shape[0],):
        raise ValueError(f"channel param 'noise_seed' has shape {tuple(params['noise_seed'].shape)}, "
                         f"expected {(x.shape[0],)}")


def _warm_allocator() -> None:
    """Once per process: make glibc's malloc serve the chunks' buffers from its heap.

    glibc maps every allocation above a threshold (128 kB at first) straight
    from the system and unmaps it when freed, so each chunk's intermediates
    would be paged in afresh (a page fault per 4 kB: 60,000-100,000 faults and
    up to 2x the time of a 64 x 299 x 299 batch, measured). Freeing one mapped
    block raises that threshold to its size (at most 32 MiB) and the heap's
    trim threshold to twice that, for the rest of the process; chunks of
    CHUNK_BYTES then reuse heap memory. Elsewhere (other allocators) this is
    one harmless allocation.
    """
    global _ALLOCATOR_WARM
    if not _ALLOCATOR_WARM:
        _ALLOCATOR_WARM = True
        torch.empty(31 << 20, dtype=torch.uint8)   # freed at once; just under glibc's 32 MiB cap


def chunk_size(x: Tensor, radius: int, graph: bool = False) -> int:
    """Images per chunk: on a CPU, as many as fill CHUNK_BYTES (GRAD_CHUNK_BYTES when
    recording a ``graph``) per intermediate; else all.

    On a CPU a whole 64 x 299 x 299 batch spends more time page-faulting each
    fresh 70 MB intermediate than computing it (2x slower in all); chunks of
    a few MB stay in cache and the allocator reuses their memory (see
    :func:`_warm_allocator`). Every step works image by image, so chunks do
    not change the result.
    """
    if x.device.type != "cpu":
        return x.shape[0]
    _warm_allocator()
    per_image = x.shape[1] * (x.shape[2] + 2 * radius) * (x.shape[3] + 2 * radius) * x.element_size()
    budget = GRAD_CHUNK_BYTES if graph else CHUNK_BYTES
    return max(1, min(x.shape[0], budget // per_image))


def _analog(x: Tensor, p: dict[str, Tensor], back: Tensor, kernels: Tensor, noise: Tensor,
            inplace: bool, tone: bool) -> Tensor:
    """Every step but JPEG, for a chunk of images: (B, 3, H, W) -> (B, 3, H, W).

    The result is clamped to [0, 1] unless ``inplace`` (no gradient), where
    the caller clamps it (:func:`to_8bit` does it on the way). ``tone``: some
    image of the batch has a local tone curve (the identity is skipped).
    """
    h, w = x.shape[-2:]
    radius = kernels.shape[1] // 2
    y = warp(x, p, radius, back)
    y = print_and_light(y, p, light_field(p, h, w, radius), inplace)
    if tone:
        y = local_tone(y, p)
    y = blur(y, kernels)
    y = add_noise(y, p, noise_field(p["noise_seed"], noise), inplace)
    return y if inplace else y.clamp(0.0, 1.0)


def apply_channel(x: Tensor, params: dict[str, Tensor], *, differentiable: bool = False,
                  jpeg: str = "codec", jpeg_grad: str = "identity") -> Tensor:
    """Send (B, 3, H, W) images in [0, 1] through the channel with per-image ``params``.

    Returns (B, 3, H, W) in [0, 1], same dtype and device. With
    ``differentiable=False`` no graph is recorded and the work is done in
    place. With ``differentiable=True`` the output has exactly the same value
    and a gradient w.r.t. ``x``.

    ``jpeg="codec"`` (the default) is the real codec; its backward is
    ``jpeg_grad``: ``"identity"`` (straight through) or ``"kornia"`` (the
    gradient of ``kornia.enhance.jpeg_codec_differentiable``; slow on a CPU).
    ``jpeg="kornia"`` replaces the codec by Kornia's differentiable JPEG in
    the forward pass too: an approximation (mean absolute difference to the
    codec ~0.005 at quality 80, a third of JPEG's own change), but one batched
    tensor computation, where torchvision's nvJPEG encoder works one image at
    a time: the option for GPU throughput.
    """
    _check(x, params)
    if jpeg not in ("codec", "kornia"):
        raise ValueError(f"jpeg must be 'codec' or 'kornia', got {jpeg!r}")
    if jpeg_grad not in ("identity", "kornia"):
        raise ValueError(f"jpeg_grad must be 'identity' or 'kornia', got {jpeg_grad!r}")
    p = {k: v.to(x.device) for k, v in params.items()}
    p.update({k: v.to(x.dtype) for k, v in p.items() if v.is_floating_point()})
    if x.shape[0] == 0:
        return x.clone()
    with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
        inplace = not torch.is_grad_enabled()
        b, _, h, w = x.shape
        sigma = blur_sigma(p, w)
        radius = blur_radius(sigma)
        # Per-batch set-up, then the image-wise steps chunk by chunk.
        back = sampling_matrices(p, h, w, radius, x.dtype)
        kernels = blur_kernels(sigma, radius)
        step = chunk_size(x, radius, graph=not inplace)
        parts = [slice(s, s + step) for s in range(0, b, step)]
        # Without a graph, every chunk reuses one noise buffer (on a CPU, fresh memory
        # costs a page fault per 4 kB the first time it is written); a graph may keep
        # each chunk's noise, so then each gets its own.
        noise = x.new_empty((min(step, b), 1, h, w)) if inplace else None
        tone = bool(p["local_tone"].any())

        def analog(part: slice) -> Tensor:
            q = {k: v[part] for k, v in p.items() if v.dim()}
            n = len(q["zoom"])
            buf = noise[:n] if noise is not None else x.new_empty((n, 1, h, w))
            return _analog(x[part], q, back[part], kernels[part], buf, inplace, tone)

        quality = p["jpeg_quality"]
        if jpeg == "codec" and inplace:
            # Each chunk goes through JPEG while it is in cache, straight into the output.
            y = torch.empty_like(x)
            cpu = x.device.type == "cpu"
            # On a CPU, rounded straight into OpenCV's layout: (n, H, W, 3), BGR.
            u = torch.empty((min(step, b), h, w, 3) if cpu else (min(step, b), 3, h, w),
                            dtype=torch.uint8, device=x.device)
            for part in parts:
                z = analog(part)
                n = len(z)
                if NO_JPEG in quality[part]:
                    y[part] = real_jpeg(z.clamp_(0.0, 1.0), quality[part], inplace=True)
                elif cpu:
                    to_8bit(z, u[:n].permute(0, 3, 1, 2), bgr=True)
                    cpu_codec(u[:n].numpy(), quality[part].tolist())
                    torch.div(u[:n].permute(0, 3, 1, 2), 255, out=y[part])     # now RGB
                else:
                    uz = to_8bit(z, u[:n])
                    torch.div(jpeg_codec(uz, quality[part].tolist(), out=uz), 255, out=y[part])
            return y
        if len(parts) == 1:
            y = analog(parts[0])
        elif inplace:
            y = torch.empty_like(x)
            for part in parts:
                y[part] = analog(part)
        else:
            y = torch.cat([analog(part) for part in parts])
        if inplace:
            y.clamp_(0.0, 1.0)
        if jpeg == "kornia" or jpeg_grad == "kornia":
            jpg = jpeg_codec_differentiable(y, quality.clamp_min(1).to(y.dtype)).clamp(0.0, 1.0)
            jpg = torch.where(_per_image(quality) == NO_JPEG, y, jpg)
            if jpeg == "kornia":
                return jpg
        real = real_jpeg(y.detach(), quality, inplace=False)
        # Straight through: the value is exactly `real` (y - y == 0), the gradient y's or Kornia's.
        y = jpg if jpeg_grad == "kornia" else y
        return real + (y - y.detach())


def simulate(x: Tensor, channel: str | Mapping[str, Any] = "typical", seed: int | Sequence[int] = 0, *,
             differentiable: bool = False, jpeg: str = "codec", jpeg_grad: str = "identity") -> Tensor:
    """:func:`apply_channel` with parameters drawn on ``x``'s device from ``channel``: a preset
    name (:func:`sample_params`) or a calibrated profile (:func:`.profile.profile_params`; a dict
    from :func:`.profile.load_profile`). ``seed``: one int, or one per image (:func:`.profile.draw_params`)."""
    return apply_channel(x, draw_params(x.shape[0], channel, seed, device=x.device),
                         differentiable=differentiable, jpeg=jpeg, jpeg_grad=jpeg_grad)
