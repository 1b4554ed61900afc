"""The simulated print-and-photo channel: determinism, each step's exact effect, JPEG, gradients, realism."""
from __future__ import annotations

import warnings

import kornia
import pytest
import torch
import torch.nn.functional as F

from physical import channel
from physical.channel import (
    PRESETS,
    apply_channel,
    identity_params,
    sample_params,
    simulate,
)


def grid8(*shape: int, seed: int = 0) -> torch.Tensor:
    """Random images on the 8-bit grid, smooth enough to look like pictures."""
    g = torch.Generator().manual_seed(seed)
    b, c, h, w = shape
    x = torch.rand(b, c, max(2, h // 4), max(2, w // 4), generator=g)
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return torch.round(x * 255) / 255


def only(n: int, **changes) -> dict[str, torch.Tensor]:
    """Zero-strength parameters with some entries replaced (scalars broadcast to the batch)."""
    p = identity_params(n)
    for k, v in changes.items():
        v = torch.as_tensor(v, dtype=p[k].dtype)
        p[k] = v.expand_as(p[k]).clone() if v.dim() < p[k].dim() else v
    return p


def codec_reference(x: torch.Tensor, qualities: list[int]) -> torch.Tensor:
    from torchvision.io import decode_jpeg, encode_jpeg

    u = torch.round(x * 255).to(torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        out = [decode_jpeg(encode_jpeg(im, quality=q)) for im, q in zip(u, qualities)]
    return torch.stack(out).float() / 255


# ---------------------------------------------------------------- API, presets, parameters

def test_shape_range_dtype_preserved():
    x = grid8(5, 3, 32, 32)
    for preset in PRESETS:
        y = simulate(x, preset, seed=1)
        assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
        assert y.min() >= 0 and y.max() <= 1
    y64 = simulate(x.double(), "typical", seed=1)
    assert y64.dtype == torch.float64 and y64.min() >= 0 and y64.max() <= 1


def test_deterministic_for_a_seed():
    x = grid8(4, 3, 32, 32)
    assert torch.equal(simulate(x, "typical", 3), simulate(x, "typical", 3))
    assert not torch.equal(simulate(x, "typical", 3), simulate(x, "typical", 4))
    p, q = sample_params(4, "harsh", 7), sample_params(4, "harsh", 7)
    assert p.keys() == q.keys() and all(torch.equal(p[k], q[k]) for k in p)


def test_an_images_result_does_not_depend_on_the_rest_of_its_batch():
    x = grid8(3, 3, 32, 32, seed=13)
    p = sample_params(3, "typical", seed=14)
    p["blur_px"][:] = 0.4   # the same widest blur in both batches: the same kernel size
    other = grid8(3, 3, 32, 32, seed=15)
    other[0] = x[0]
    q = {k: v.clone() for k, v in p.items()}
    for k, v in sample_params(3, "harsh", seed=16).items():
        if k != "blur_px":
            q[k][1:] = v[1:]     # other pictures, other parameters, even other noise seeds
    assert torch.equal(apply_channel(other, q)[0], apply_channel(x, p)[0])
    # a new noise seed changes the image's noise, and only its noise
    p2 = {k: v.clone() for k, v in p.items()}
    p2["noise_seed"][0] += 1
    a, b = apply_channel(x, p), apply_channel(x, p2)
    assert not torch.equal(a[0], b[0]) and torch.equal(a[1:], b[1:])


def test_params_shapes_ranges_and_differ_within_batch():
    n = 16
    for preset, ranges in PRESETS.items():
        p = sample_params(n, preset, seed=2)
        for k, shape in channel.PARAM_SHAPES.items():
            assert p[k].shape == (n, *shape), k
        assert p["noise_seed"].shape == (n,) and p["noise_seed"].dtype == torch.int64
        for k in ("saturation", "gamma", "black_level", "contrast", "exposure", "brightness",
                  "blur_px", "blur_frac", "read_noise", "shot_noise", "corner_jitter", "ink_cast"):
            lo, hi = ranges[k]
            assert p[k].min() >= lo - 1e-6 and p[k].max() <= hi + 1e-6, (preset, k)
            if hi > lo:   # per-image draws: no two images alike
                flat = p[k].reshape(n, -1)
                assert len(torch.unique(flat, dim=0)) == n, (preset, k)
        q = p["jpeg_quality"]
        assert q.dtype == torch.int64 and (q % channel.JPEG_STEP == 0).all()
        assert q.min() >= ranges["jpeg_quality"][0] and q.max() <= ranges["jpeg_quality"][1]
        assert len(torch.unique(q)) > 1
        assert torch.allclose(p["zoom"], torch.full((n,), channel.CROP_ZOOM))
        assert (p["white_balance"][:, 1] == 1).all()


def test_crop_zoom_is_ingests_inset():
    from physical.capture.crops import INSET

    assert channel.CROP_ZOOM == pytest.approx(1 / (1 - 2 * INSET))


def test_unknown_preset_names_the_presets():
    with pytest.raises(ValueError, match="mild, typical, harsh"):
        sample_params(2, "extreme")
    with pytest.raises(ValueError, match="mild"):
        simulate(grid8(1, 3, 8, 8), "medium")


def test_bad_inputs_are_refused():
    x = grid8(2, 3, 16, 16)
    with pytest.raises(ValueError, match="saturation"):
        apply_channel(x, sample_params(3))          # params of another batch size
    with pytest.raises(ValueError, match="B, 3, H, W"):
        apply_channel(x[:, :1], sample_params(2))
    with pytest.raises(ValueError, match="jpeg_grad"):
        apply_channel(x, sample_params(2), differentiable=True, jpeg_grad="none")


def test_presets_order_mild_typical_harsh():
    x = grid8(24, 3, 32, 32, seed=3)
    d = {k: (simulate(x, k, seed=5) - x).abs().mean().item() for k in PRESETS}
    assert d["mild"] < d["typical"] < d["harsh"], d


# ---------------------------------------------------------------- each step, exactly

def test_zero_strength_is_identity():
    x = grid8(3, 3, 32, 32)
    y = apply_channel(x, identity_params(3))
    assert (y - x).abs().max() < 1e-5     # the warp's grid is exact only to float rounding


def test_identity_warp_and_kornia_warp():
    x = grid8(3, 3, 24, 20)
    p = identity_params(3)
    assert (channel.warp(x, p) - x).abs().max() < 1e-5
    p = sample_params(3, "harsh", seed=1)
    for pad in (0, 3):
        m = channel.homographies(p, 24, 20, pad).float()
        ref = kornia.geometry.transform.warp_perspective(x, m, (24 + 2 * pad, 20 + 2 * pad),
                                                          padding_mode="border", align_corners=True)
        assert torch.allclose(channel.warp(x, p, pad), ref, atol=1e-5)


def test_homographies_move_corners_by_the_jitter():
    p = identity_params(2)
    p["corner_jitter"] = torch.tensor([[[0.01, 0.0], [0.0, 0.02], [-0.01, 0.0], [0.0, -0.03]]]).repeat(2, 1, 1)
    p["zoom"] = torch.tensor([1.0, 2.0])
    h, w = 30, 40
    m = channel.homographies(p, h, w)
    corners = torch.tensor([[0.0, 0.0], [w - 1, 0.0], [w - 1, h - 1], [0.0, h - 1]])
    centre = torch.tensor([(w - 1) / 2, (h - 1) / 2])
    for i, zoom in enumerate((1.0, 2.0)):
        src = centre + (corners - centre) / zoom + p["corner_jitter"][i] * torch.tensor([w, h])
        mapped = kornia.geometry.linalg.transform_points(m[i:i + 1], src[None])[0]
        assert torch.allclose(mapped, corners, atol=1e-3)


def test_exposure_gain_on_a_constant_image_is_exact():
    c, g = 0.4, 1.3
    y = torch.full((2, 3, 8, 8), c)
    p = only(2, exposure=g)
    field = torch.ones(2, 1, 8, 8)
    assert torch.equal(channel.print_and_light(y.clone(), p, field, inplace=True), g * y)
    assert torch.equal(channel.print_and_light(y.clone(), p, field, inplace=False), g * y)
    assert torch.allclose(apply_channel(y, p), g * y, atol=1e-6)


def test_print_and_light_formulas():
    y = torch.full((1, 3, 4, 4), 0.5)
    ones = torch.ones(1, 1, 4, 4)
    # gamma: mid-grey prints as 0.5 ** gamma
    out = channel.print_and_light(y.clone(), only(1, gamma=1.3), ones, True)
    assert torch.allclose(out, torch.full_like(y, 0.5 ** 1.3), atol=1e-6)
    # ink cast: shifts mid-grey per channel
    cast = torch.tensor([[0.02, 0.0, -0.03]])
    out = channel.print_and_light(y.clone(), only(1, ink_cast=cast), ones, True)
    assert torch.allclose(out[0, :, 0, 0], 0.5 + cast[0], atol=1e-6)
    # paper white and black level: 1 -> white, 0 -> black
    ends = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2).expand(1, 3, 1, 2).clone()
    p = only(1, paper_white=torch.tensor([[0.9, 0.92, 0.95]]), black_level=0.1)
    out = channel.print_and_light(ends, p, torch.ones(1, 1, 1, 2), True)
    assert torch.allclose(out[0, :, 0, 0], torch.full((3,), 0.1), atol=1e-6)
    assert torch.allclose(out[0, :, 0, 1], torch.tensor([0.9, 0.92, 0.95]), atol=1e-6)
    # saturation 0: every channel becomes the luma
    rgb = torch.tensor([0.2, 0.6, 0.9]).view(1, 3, 1, 1).expand(1, 3, 2, 2).clone()
    out = channel.print_and_light(rgb, only(1, saturation=0.0), torch.ones(1, 1, 2, 2), True)
    assert torch.allclose(out, torch.full_like(out, 0.299 * 0.2 + 0.587 * 0.6 + 0.114 * 0.9), atol=1e-6)
    # contrast about mid-grey, white balance, brightness
    out = channel.print_and_light(torch.full((1, 3, 2, 2), 0.8), only(1, contrast=1.5), torch.ones(1, 1, 2, 2), True)
    assert torch.allclose(out, torch.full_like(out, 0.5 + 1.5 * 0.3), atol=1e-6)
    wb = torch.tensor([[1.1, 1.0, 0.9]])
    out = channel.print_and_light(y.clone(), only(1, white_balance=wb, brightness=0.05), ones, True)
    assert torch.allclose(out[0, :, 0, 0], 0.5 * wb[0] + 0.05, atol=1e-6)


def test_light_gradient_runs_from_edge_to_edge():
    c, gx = 0.5, 0.2
    y = torch.full((1, 3, 9, 11), c)
    p = only(1, light_gradient=torch.tensor([[gx, 0.0]]))
    out = apply_channel(y, p)
    assert torch.allclose(out[0, :, :, 0], torch.full((3, 9), c * (1 - gx)), atol=1e-5)
    assert torch.allclose(out[0, :, :, 5], torch.full((3, 9), c), atol=1e-5)
    assert torch.allclose(out[0, :, :, -1], torch.full((3, 9), c * (1 + gx)), atol=1e-5)


def test_local_tone_curve_values_identity_and_gradient():
    from physical.channel import local_tone

    y = torch.tensor([-0.2, 0.0, 0.25, 0.5, 0.75, 1.0, 1.3], dtype=torch.float64).reshape(1, 1, 1, 7)
    k = 0.4
    out = local_tone(y, {"local_tone": torch.tensor([k], dtype=torch.float64)})
    # y + k y (1 - y) inside [0, 1]; the tangents outside (slope 1 + k below 0, 1 - k above 1).
    want = [-0.2 * (1 + k), 0.0, 0.25 + k * 0.1875, 0.5 + k * 0.25, 0.75 + k * 0.1875, 1.0, 1 + 0.3 * (1 - k)]
    assert torch.allclose(out.flatten(), torch.tensor(want, dtype=torch.float64), atol=1e-12)
    # Zero strength is the identity, exactly, and the channel skips nothing it should not.
    x = grid8(3, 3, 16, 16, seed=4)
    assert torch.equal(local_tone(x, {"local_tone": torch.zeros(3)}), x)
    # A lifted curve brightens mid-grey through the whole channel by exactly k / 4.
    grey = torch.full((2, 3, 8, 8), 0.5)
    out = apply_channel(grey, only(2, local_tone=torch.tensor([0.2, -0.2])))
    assert torch.allclose(out[:, :, 2:6, 2:6].mean((1, 2, 3)), torch.tensor([0.55, 0.45]), atol=2 / 255)
    yy = (torch.rand(2, 3, 4, 4, dtype=torch.float64) * 1.4 - 0.2).requires_grad_(True)
    kk = torch.tensor([0.3, -0.6], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: local_tone(a, {"local_tone": b}), (yy, kk))


@pytest.mark.parametrize("sigma", [[0.5, 1.0, 1.2], [0.6, 1.0, 2.0]])   # 2-D kernel (r = 4), two 1-D passes (r = 6)
def test_blur_keeps_a_constant_and_matches_kornia(sigma):
    sigma = torch.tensor(sigma)
    r = channel.blur_radius(sigma)
    k = channel.blur_kernels(sigma, r)
    const = torch.full((3, 3, 16 + 2 * r, 16 + 2 * r), 0.3)
    assert torch.allclose(channel.blur(const, k), torch.full((3, 3, 16, 16), 0.3), atol=1e-6)
    x = grid8(3, 3, 16, 16)
    ref = kornia.filters.gaussian_blur2d(x, 2 * r + 1, torch.stack([sigma, sigma], 1), border_type="reflect")
    assert torch.allclose(channel.blur(F.pad(x, (r,) * 4, mode="reflect"), k), ref, atol=1e-6)
    # through the channel, whose warp replicates the border for the blur
    ref = kornia.filters.gaussian_blur2d(x, 2 * r + 1, torch.stack([sigma, sigma], 1), border_type="replicate")
    assert torch.allclose(apply_channel(x, only(3, blur_px=sigma)), ref, atol=1e-5)
    # the blur in crop pixels grows with the crop's width through blur_frac
    p = only(2, blur_px=0.3, blur_frac=0.004)
    assert torch.allclose(channel.blur_sigma(p, 299), torch.full((2,), (0.3 ** 2 + 1.196 ** 2) ** 0.5))


def test_noise_level_follows_the_signal():
    c, read, shot = 0.5, 0.01, 0.02
    x = torch.full((2, 3, 96, 96), c)
    p = only(2, read_noise=read, shot_noise=shot, noise_seed=torch.tensor([9, 10]))
    d = apply_channel(x, p) - x
    assert torch.equal(d[:, 0], d[:, 1])                # luma noise, the same in every channel
    assert abs(d.mean().item()) < 1e-3
    assert d.std().item() == pytest.approx((read ** 2 + shot ** 2 * c) ** 0.5, rel=0.05)


def test_jpeg_equals_torchvision_codec_exactly():
    x = grid8(6, 3, 40, 24, seed=4)
    qualities = [50, 75, 95, 75, 50, 30]
    q = torch.tensor(qualities)
    ref = codec_reference(x, qualities)
    assert torch.equal(channel.real_jpeg(x.clone(), q, inplace=True), ref)
    assert torch.equal(channel.real_jpeg(x, q, inplace=False), ref)
    assert torch.equal(apply_channel(x, only(6, jpeg_quality=q)), ref)
    # NO_JPEG skips an image; the others are still exact
    q[2] = channel.NO_JPEG
    out = channel.real_jpeg(x.clone(), q, inplace=True)
    assert torch.equal(out[2], x[2])
    keep = [0, 1, 3, 4, 5]
    assert torch.equal(out[keep], ref[keep])


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("jpeg_grad", ["identity", "kornia"])
def test_differentiable_forward_is_exact_and_gradient_flows(jpeg_grad):
    x = grid8(4, 3, 32, 32, seed=5)
    p = sample_params(4, "typical", seed=6)
    plain = apply_channel(x, p)
    xr = x.clone().requires_grad_(True)
    y = apply_channel(xr, p, differentiable=True, jpeg_grad=jpeg_grad)
    assert torch.equal(y, plain)
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    assert torch.isfinite(xr.grad).all() and xr.grad.abs().sum() > 0
    assert (xr.grad.abs().flatten(1).sum(1) > 0).all()    # every image gets a gradient


def test_kornia_jpeg_option_approximates_the_codec_and_is_differentiable():
    x = grid8(4, 3, 32, 32, seed=12)
    q = torch.tensor([50, 75, 90, 0])
    p = only(4, jpeg_quality=q)
    codec = apply_channel(x, p)
    approx = apply_channel(x, p, jpeg="kornia")
    assert approx.shape == x.shape and approx.min() >= 0 and approx.max() <= 1
    assert torch.equal(approx[3], codec[3])                         # quality 0: no JPEG either way
    assert (approx[:3] - codec[:3]).abs().mean() < 0.5 * (codec[:3] - x[:3]).abs().mean()
    xr = x.clone().requires_grad_(True)
    y = apply_channel(xr, p, differentiable=True, jpeg="kornia")
    assert torch.allclose(y, approx, atol=1e-6)
    y.sum().backward()
    assert torch.isfinite(xr.grad).all() and xr.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="jpeg must be"):
        apply_channel(x, p, jpeg="pillow")


def test_not_differentiable_records_no_graph():
    xr = grid8(2, 3, 16, 16).requires_grad_(True)
    assert not simulate(xr, "mild").requires_grad
    with torch.no_grad():
        assert not simulate(xr, "mild", differentiable=True).requires_grad


def test_every_step_passes_a_gradient():
    x = grid8(2, 3, 16, 16, seed=7)
    full = sample_params(2, "harsh", seed=8)
    full["local_tone"] = torch.tensor([0.3, -0.3])     # 0 in every preset: a profile's values
    for keys in (["saturation", "gamma", "ink_cast", "paper_white", "black_level"], ["zoom", "corner_jitter"],
                 ["contrast", "exposure", "white_balance", "light_gradient", "brightness"], ["local_tone"],
                 ["blur_px", "blur_frac"],
                 ["read_noise", "shot_noise", "noise_seed"]):
        p = only(2, **{k: full[k] for k in keys})
        xr = x.clone().requires_grad_(True)
        apply_channel(xr, p, differentiable=True).pow(2).sum().backward()
        assert torch.isfinite(xr.grad).all() and xr.grad.abs().sum() > 0, keys


# ---------------------------------------------------------------- full size, chunks

def test_full_size_chunks_do_not_change_the_result(monkeypatch):
    x = grid8(5, 3, 299, 299, seed=9)
    p = sample_params(5, "typical", seed=10)
    monkeypatch.setattr(channel.pipeline, "CHUNK_BYTES", 3 * 310 * 310 * 4 * 2)     # chunks of 2 images
    monkeypatch.setattr(channel.pipeline, "GRAD_CHUNK_BYTES", 3 * 310 * 310 * 4 * 3)    # and of 3 with a graph
    radius = channel.blur_radius(channel.blur_sigma(p, 299))
    assert channel.chunk_size(x, radius) == 2 and channel.chunk_size(x, radius, graph=True) == 3
    chunked = apply_channel(x, p)
    grad = apply_channel(x.clone().requires_grad_(True), p, differentiable=True)
    monkeypatch.setattr(channel.pipeline, "CHUNK_BYTES", 1 << 40)
    whole = apply_channel(x, p)
    assert channel.chunk_size(x, radius) == 5
    assert torch.equal(chunked, whole) and torch.equal(grad, whole)
    assert whole.shape == x.shape and whole.min() >= 0 and whole.max() <= 1
    assert 0.01 < (whole - x).abs().mean() < 0.2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_gpu():
    x = grid8(4, 3, 64, 64).cuda()
    y = simulate(x, "typical", seed=1)
    assert y.device == x.device and y.min() >= 0 and y.max() <= 1
    assert torch.equal(y, simulate(x, "typical", seed=1))
    xr = x.clone().requires_grad_(True)
    simulate(xr, "typical", seed=1, differentiable=True).sum().backward()
    assert torch.isfinite(xr.grad).all()


# ---------------------------------------------------------------- realism

def test_demo_model_accuracy_through_the_channel(demo_model, demo_batch):
    x, labels = demo_batch
    x, labels = x.repeat(4, 1, 1, 1), labels.repeat(4)

    def accuracy(images: torch.Tensor) -> float:
        with torch.no_grad():
            return (demo_model(images).argmax(1) == labels).float().mean().item()

    clean = accuracy(x)
    acc = {k: accuracy(simulate(x, k, seed=11)) for k in PRESETS}
    # a print and a photo, not destruction
    assert acc["typical"] >= 0.5 and acc["typical"] >= clean - 0.25, (clean, acc)
    assert acc["harsh"] < acc["mild"] <= clean + 0.05, (clean, acc)
