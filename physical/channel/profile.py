"""Channel profiles: the channel fitted to one printer and phone (``physical calibrate``), as JSON.

A profile is a distribution of channel parameters, kept as the fitted values
themselves: every photo has its own light, exposure and blur, and every crop
its own place in that light and its own registration error. Drawing from a
profile (:func:`profile_params`) picks, for each image, a photo of the profile
and then one of that photo's crops, uniformly: the draws follow the fitted
values with their correlations, and never leave the range that was seen.

Format (``format_version`` 2)::

    {"format": "physical-channel-profile", "format_version": 2,
     "tool_version": "...", "created": "ISO time",
     "fitted_on": {"experiment_id", "captures", "photos", "crops", "image_px",
                   "rms_residual" (0-255 units), "converged", "steps", "seconds", "jpeg": "...",
                   "local_tone": false when fitted with --no-local-tone (absent in older profiles)},
     "photos": [{"photo": name, "crops": n, "rms_residual",
                 "saturation", "ink_cast": [3], "paper_white": [3], "black_level",
                 "white_balance": [3], "blur_frac", "read_noise", "shot_noise",
                 "jpeg_quality": q (0: none), "photo_jpeg_quality": q or null,
                 "photo_px_per_pixel",
                 "exposure": [n], "light_gradient": [n x 2], "corner_jitter": [n x 4 x 2],
                 "local_tone": [n]}, ...]}

Version 1 (before ``local_tone``) is read too, its crops' ``local_tone`` 0.

The parameters mean what they mean in :mod:`.presets` (``PARAM_SHAPES``);
those a profile does not hold are neutral (``gamma`` 1, ``contrast`` 1,
``brightness`` 0, ``blur_px`` 0) and ``zoom`` is ingest's ``CROP_ZOOM``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .presets import CROP_ZOOM, NO_JPEG, PRESETS, identity_params, sample_params

PROFILE_FORMAT = "physical-channel-profile"
PROFILE_VERSION = 2
READ_VERSIONS = (1, 2)
# Per photo: name -> shape of its value.
PHOTO_KEYS: dict[str, tuple[int, ...]] = {
    "saturation": (), "ink_cast": (3,), "paper_white": (3,), "black_level": (), "white_balance": (3,),
    "blur_frac": (), "read_noise": (), "shot_noise": (),
}
CROP_KEYS: dict[str, tuple[int, ...]] = {"exposure": (), "light_gradient": (2,), "corner_jitter": (4, 2),
                                         "local_tone": ()}


class ProfileError(ValueError):
    """A profile file that cannot be used; the message names the file and what is wrong."""


def _shape(value: Any) -> tuple[int, ...]:
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return tuple(shape)


def _finite(value: Any) -> bool:
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_profile(profile: Mapping[str, Any], where: str = "profile") -> dict[str, Any]:
    """Validate a profile's structure; returns it. Raises ProfileError naming ``where``."""
    def bad(what: str) -> ProfileError:
        return ProfileError(f"{where}: {what}; make a new one with `physical calibrate`")

    if profile.get("format") != PROFILE_FORMAT:
        raise bad(f"not a channel profile (format {profile.get('format')!r}, expected {PROFILE_FORMAT!r})")
    version = profile.get("format_version")
    if version not in READ_VERSIONS:
        raise bad(f"profile format_version {version!r}, this version reads "
                  f"{', '.join(str(v) for v in READ_VERSIONS)}")
    photos = profile.get("photos")
    if not isinstance(photos, list) or not photos or not all(isinstance(ph, dict) for ph in photos):
        raise bad("no photos in the profile")
    if version == 1:
        photos = _upgraded(photos)
    for i, ph in enumerate(photos):
        for key, shape in PHOTO_KEYS.items():
            if key not in ph or _shape(ph[key]) != shape or not _finite(ph[key]):
                raise bad(f"photo {i}: {key!r} missing or not {'a number' if not shape else f'a list of {shape}'}")
        q = ph.get("jpeg_quality")
        if not isinstance(q, int) or not (q == NO_JPEG or 1 <= q <= 100):
            raise bad(f"photo {i}: 'jpeg_quality' must be 0 (none) or 1-100")
        n = len(ph.get("exposure", []))
        if n == 0:
            raise bad(f"photo {i}: no crops")
        for key, shape in CROP_KEYS.items():
            if _shape(ph.get(key)) != (n, *shape) or not _finite(ph[key]):
                raise bad(f"photo {i}: {key!r} must hold {n} values of shape {shape}")
    return {**profile, "photos": photos}


def _upgraded(photos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A format-1 profile's photos with their crops' ``local_tone`` (none: 0); others as they are."""
    return [ph if "local_tone" in ph else {**ph, "local_tone": [0.0] * len(ph.get("exposure", []))}
            for ph in photos]


def load_profile(path: str | Path) -> dict[str, Any]:
    """Read and validate a profile file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such profile; make one with `physical calibrate`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProfileError(f"{path}: not a readable JSON profile ({exc}); make a new one with "
                           "`physical calibrate`") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: not a channel profile; make one with `physical calibrate`")
    return check_profile(data, str(path))


def resolve_channel(spec: str | Path | Mapping[str, Any]) -> str | dict[str, Any]:
    """A preset name stays a name; a profile (dict) is validated; anything else is read as a profile file."""
    if isinstance(spec, Mapping):
        return check_profile(spec)
    if isinstance(spec, str) and spec in PRESETS:
        return spec
    path = Path(spec)
    if path.suffix.lower() != ".json" and not path.exists():
        raise ProfileError(f"channel {spec!r}: not a preset ({', '.join(PRESETS)}) and not a profile file (.json)")
    return load_profile(path)


def channel_name(spec: str | Path | Mapping[str, Any]) -> str:
    """How a channel is named in tables: the preset's name, or the profile's file name / experiment."""
    if isinstance(spec, Mapping):
        return f"profile {spec.get('fitted_on', {}).get('experiment_id', '?')}"
    if isinstance(spec, str) and spec in PRESETS:
        return spec
    return Path(spec).name


def profile_params(n: int, profile: Mapping[str, Any], seed: int = 0,
                   device: torch.device | str | None = None) -> dict[str, Tensor]:
    """Per-image parameters of ``n`` images drawn from a profile (module docstring).

    Deterministic for a seed. Returns what :func:`.presets.sample_params` returns:
    float32 tensors shaped ``(n, *PARAM_SHAPES[k])``, ``jpeg_quality`` (n,) int64
    and ``noise_seed`` (n,) int64.
    """
    photos = _upgraded(profile["photos"])
    gen = torch.Generator().manual_seed(seed)
    which = torch.randint(0, len(photos), (n,), generator=gen)
    pick = torch.rand(n, generator=gen, dtype=torch.float64)
    noise_seed = torch.randint(0, 2**62, (n,), generator=gen)
    # The profile as tables (photos, and all crops one after another), then one gather per key.
    counts = torch.tensor([len(ph["exposure"]) for ph in photos])
    first = torch.cumsum(counts, 0) - counts
    crop = first[which] + torch.minimum((pick * counts[which]).long(), counts[which] - 1)
    p = identity_params(n)
    for key in PHOTO_KEYS:
        p[key] = torch.tensor([ph[key] for ph in photos], dtype=torch.float32)[which].reshape(p[key].shape)
    for key in CROP_KEYS:
        table = torch.tensor([c for ph in photos for c in ph[key]], dtype=torch.float32)
        p[key] = table[crop].reshape(p[key].shape)
    p["zoom"] = torch.full((n,), CROP_ZOOM)
    p["jpeg_quality"] = torch.tensor([ph["jpeg_quality"] for ph in photos], dtype=torch.int64)[which]
    p["noise_seed"] = noise_seed
    return {k: v.to(device) for k, v in p.items()}


def draw_params(n: int, channel: str | Mapping[str, Any], seed: int | Sequence[int] = 0,
                device: torch.device | str | None = None) -> dict[str, Tensor]:
    """Per-image parameters from a preset name (:func:`.presets.sample_params`) or a profile
    (:func:`profile_params`). ``seed``: one int (the n images drawn together), or n ints, image i
    drawn alone from ``seed[i]`` (the same image gets the same draw in any batch or process)."""
    if not isinstance(seed, int):
        seeds = [int(s) for s in seed]
        if len(seeds) != n:
            raise ValueError(f"{len(seeds)} seeds for {n} images")
        each = [draw_params(1, channel, s, device) for s in seeds]
        return {k: torch.cat([e[k] for e in each]) for k in each[0]}
    if isinstance(channel, str):
        return sample_params(n, channel, seed, device=device)
    return profile_params(n, channel, seed, device=device)
