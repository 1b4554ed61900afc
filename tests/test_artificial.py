"""Artificial transformations: each applies exactly the strength asked; the sweep's counts and plots."""
from __future__ import annotations

import io
import json
import math
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from physical.errors import PhysicalError
from physical.sheets.run import make_sheets
from physical.report.metrics import Rate
from physical.report.artificial import (
    IDENTITY,
    TRANSFORMS,
    _panels,
    _pipeline,
    apply_transform,
    plot_sweeps,
    sweep,
)

RNG = np.random.default_rng(1234)
RANDOM = RNG.integers(0, 256, (3, 24, 20, 3), dtype=np.uint8)
RAMP = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)  # every level once


def grey(value: int, size: int = 16, n: int = 1) -> np.ndarray:
    return np.full((n, size, size, 3), value, dtype=np.uint8)


def smooth_picture() -> np.ndarray:
    """A natural-looking 64x64 colour image: blurred noise stretched to the full range."""
    import cv2

    x = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (64, 64, 3)).astype(np.uint8), (0, 0), 3)
    return cv2.normalize(x, None, 0, 255, cv2.NORM_MINMAX)[None]


def test_table_lists_strengths_with_identity_first_class():
    assert set(TRANSFORMS) == {"brightness", "contrast", "blur", "noise", "jpeg"}
    for name, (strengths, unit) in TRANSFORMS.items():
        assert strengths == sorted(strengths) and len(strengths) >= 5 and unit
        if name in IDENTITY:
            assert IDENTITY[name] in strengths
    assert min(TRANSFORMS["jpeg"].strengths) == 10 and max(TRANSFORMS["jpeg"].strengths) == 100


@pytest.mark.parametrize("name", sorted(IDENTITY))
def test_identity_strength_changes_nothing(name):
    for seed in (0, 5):
        out = apply_transform(name, IDENTITY[name], RANDOM, seed=seed)
        assert out.dtype == np.uint8 and out.shape == RANDOM.shape
        assert np.array_equal(out, RANDOM)


def test_brightness_adds_exactly_delta_levels():
    assert np.all(apply_transform("brightness", 16, grey(128)) == 144)
    assert np.all(apply_transform("brightness", -16, grey(128)) == 112)
    for delta in TRANSFORMS["brightness"].strengths + [1, -1, 3]:
        out = apply_transform("brightness", delta, RAMP).astype(int)
        assert np.array_equal(out, np.clip(RAMP.astype(int) + int(delta), 0, 255)), delta


def test_contrast_multiplies_levels_about_zero_and_rounds():
    x = RAMP.astype(np.float64)
    for mu in TRANSFORMS["contrast"].strengths:
        out = apply_transform("contrast", mu, RAMP).astype(np.float64)
        exact = np.clip(x * mu, 0, 255)
        assert np.abs(out - exact).max() <= 0.5 + 1e-6, mu  # nearest level, never truncated
        tie = np.isclose(exact % 1, 0.5)
        assert np.array_equal(out[~tie], np.rint(exact[~tie])), mu
    # About 0, as albumentations computes it (not about the mean): a 100-grey image at 1.2 gives 120.
    assert np.all(apply_transform("contrast", 1.2, grey(100)) == 120)
    assert np.all(apply_transform("contrast", 0.5, grey(200)) == 100)


def gaussian_step(sigma: float, width: int = 32) -> np.ndarray:
    """Reference: a 0|255 step at the middle, blurred by a sampled Gaussian (untruncated), per column."""
    r = math.ceil(6 * sigma)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    step = np.where(np.arange(width) >= width // 2, 255.0, 0.0)
    padded = np.pad(step, r, mode="reflect")  # reflect-101, OpenCV's default border
    return np.convolve(padded, k, mode="valid")


def test_blur_has_the_requested_sigma():
    step = np.where(np.arange(32) >= 16, 255, 0).astype(np.uint8)
    img = np.broadcast_to(step[None, None, :, None], (1, 8, 32, 3)).copy()
    for sigma in (0.5, 1.0, 2.0, 3.0):
        out = apply_transform("blur", sigma, img)[0, 4, :, 0].astype(float)
        assert np.abs(out - gaussian_step(sigma)).max() <= 1.0, sigma
        # The check can tell sigma from a 15% larger one.
        assert np.abs(out - gaussian_step(1.15 * sigma)).max() > 1.0, sigma
    for sigma in TRANSFORMS["blur"].strengths:
        for level in (0, 77, 255):
            assert np.all(apply_transform("blur", sigma, grey(level)) == level), (sigma, level)


def test_noise_has_the_requested_sigma_and_is_deterministic():
    base = grey(128, size=256)
    for sigma in (2, 8, 16):
        d = apply_transform("noise", sigma, base, seed=0).astype(float) - 128
        # Rounding to levels adds variance 1/12; nothing else (no truncation toward zero).
        expected = math.sqrt(sigma ** 2 + 1 / 12)
        assert abs(d.std() - expected) / expected < 0.02, (sigma, d.std())
        assert abs(d.mean()) < 0.05
        # Independent per pixel and channel.
        assert abs(np.corrcoef(d[0, :, :, 0].ravel(), d[0, :, :, 1].ravel())[0, 1]) < 0.02
    a = apply_transform("noise", 8, RANDOM, seed=3)
    assert np.array_equal(a, apply_transform("noise", 8, RANDOM, seed=3))
    assert not np.array_equal(a, apply_transform("noise", 8, RANDOM, seed=4))
    same = apply_transform("noise", 8, np.repeat(RANDOM[:1], 2, axis=0), seed=3)
    assert not np.array_equal(same[0], same[1])  # each image its own draw
    # The sweep feeds images one by one through one pipeline: exactly apply_transform's result.
    run = _pipeline("noise", 8, 3)
    assert np.array_equal(np.stack([run(im) for im in RANDOM]), a)


def test_jpeg_is_real_jpeg_at_the_quality_asked():
    pic = smooth_picture()
    errors = {}
    for q in (10, 50, 90, 100):
        out = apply_transform("jpeg", q, pic)
        buf = io.BytesIO()
        Image.fromarray(pic[0]).save(buf, format="JPEG", quality=q)  # libjpeg through Pillow, RGB in
        ref = np.asarray(Image.open(buf).convert("RGB"))
        assert np.abs(out[0].astype(int) - ref).max() <= 1, q
        errors[q] = np.abs(out.astype(int) - pic).mean()
    assert errors[10] > errors[50] > errors[90] > errors[100]
    # Quality 100: brightness (luma) comes back within a level; colour is subsampled 4:2:0
    # (libjpeg's default, as Pillow and phones do), so colour edges may move more.
    grey_pic = np.repeat(pic[..., :1], 3, axis=3)
    assert np.abs(apply_transform("jpeg", 100, grey_pic).astype(int) - grey_pic).max() <= 1
    high = np.abs(apply_transform("jpeg", 100, pic).astype(int) - pic)
    assert high.mean() < 2.5 and np.percentile(high, 90) <= 4
    assert not np.array_equal(apply_transform("jpeg", 100, pic), pic)  # lossy even at 100


def test_bad_arguments():
    with pytest.raises(PhysicalError, match="unknown transformation"):
        apply_transform("sharpen", 1, RANDOM)
    with pytest.raises(ValueError, match="uint8"):
        apply_transform("blur", 1, RANDOM.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        apply_transform("blur", 1, RANDOM[0])
    with pytest.raises(ValueError, match="whole number"):
        apply_transform("jpeg", 50.5, RANDOM)
    with pytest.raises(ValueError, match="outside"):
        apply_transform("noise", -1, RANDOM)


# ---------------------------------------------------------------------------
# The sweep on a tiny experiment: 3 pictures, fast and ll at eps 8.

@pytest.fixture(scope="module")
def tiny(tmp_path_factory, demo_model):
    out = tmp_path_factory.mktemp("transforms") / "printouts"
    make_sheets(out, model=demo_model, count=3, eps=[8], methods=["fast", "ll"])
    return out


def manifest_counts(printouts):
    """Per (variant, k): n = pictures with clean right and adversarial wrong, from the manifest alone."""
    data = json.loads((printouts / "manifest.json").read_text())
    out = {}
    for k in (1, 5):
        clean = {r["id"]: r["label"] in [t["index"] for t in r["variants"][0]["top5"]][:k] for r in data["images"]}
        for r in data["images"]:
            for v in r["variants"][1:]:
                adv_ok = r["label"] in [t["index"] for t in v["top5"]][:k]
                out.setdefault((v["name"], k), 0)
                out[(v["name"], k)] += int(clean[r["id"]] and not adv_ok)
    return data, out


def test_sweep_counts_identity_and_transformed_accuracy(tiny, demo_model):
    data, n_expected = manifest_counts(tiny)
    assert sum(n_expected.values()) > 0  # the tiny case has working adversarial examples
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # digital predictions agree with the manifest: no warning
        rows = sweep(demo_model, tiny, transforms=["brightness", "blur"], batch_size=4,
                     strengths={"brightness": [-16, 0, 16], "blur": [0, 1.0]},
                     progress=lambda stage, done, total: calls.append((done, total)))
    assert len(rows) == (3 + 2) * 2
    assert calls[0] == (0, 5) and calls[-1] == (5, 5)
    assert {(r["attack"], r["method"], r["eps"], r["setting"]) for r in rows} == {("fast_e8", "fast", 8, "ε=8"),
                                                                                ("ll_e8", "ll", 8, "ε=8")}
    # Each variant's mean printed perturbation: the mean of the manifest's per-picture record.
    for name in ("fast_e8", "ll_e8"):
        norms = [v["perturbation"] for rec in data["images"] for v in rec["variants"] if v["name"] == name]
        row = next(r for r in rows if r["attack"] == name)
        assert (row["l2"], row["linf"], row["l0"]) == (sum(p["l2"] for p in norms) / 3, sum(p["linf"] for p in norms) / 3,
                                                       sum(p["l0"] for p in norms) / 3)
        assert row["linf"] == 8   # fast and ll move some level of every picture by the full eps
    for r in rows:
        assert set(r) == {"transform", "strength", "attack", "method", "eps", "setting", "l2", "linf", "l0", "top1",
                          "top5", "clean_top1", "clean_top5"}
        for k in (1, 5):
            assert isinstance(r[f"top{k}"], Rate)
            assert r[f"top{k}"].n == n_expected[(f"{r['method']}_e8", k)], (r, k)
            assert r[f"clean_top{k}"].n == 3
        if (r["transform"], r["strength"]) in (("brightness", 0), ("blur", 0)):
            assert r["top1"].k == 0 and r["top5"].k == 0
            for k in (1, 5):  # untransformed clean accuracy = the digital one
                assert r[f"clean_top{k}"].k == sum(rec["label"] in [t["index"] for t in rec["variants"][0]["top5"]][:k]
                                                  for rec in data["images"])

    # One non-identity cell recomputed by hand: transform, classify, count.
    ids = [rec["id"] for rec in data["images"]]
    labels = torch.tensor([rec["label"] for rec in data["images"]])
    for variant, method in (("ll_e8", "ll"), ("clean", None)):
        files = [tiny / "images" / f"{i}_{variant}.png" for i in ids]
        imgs = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
        blurred = apply_transform("blur", 1.0, imgs, seed=0)
        with torch.no_grad():
            top5 = demo_model(torch.from_numpy(blurred).permute(0, 3, 1, 2).float() / 255).topk(5).indices
        ok1 = (top5[:, 0] == labels).tolist()
        row = next(r for r in rows if r["transform"] == "blur" and r["strength"] == 1.0
                   and r["method"] == (method or "ll"))
        if method is None:
            assert row["clean_top1"].k == sum(ok1)
        else:
            clean_ok = [rec["label"] == rec["variants"][0]["top5"][0]["index"] for rec in data["images"]]
            adv_ok = [rec["label"] == rec["variants"][2]["top5"][0]["index"] for rec in data["images"]]
            assert row["top1"].k == sum(c and not a and t for c, a, t in zip(clean_ok, adv_ok, ok1))


def test_sweep_warns_when_the_manifest_disagrees(tiny, demo_model, tmp_path):
    copy = tmp_path / "printouts"
    shutil.copytree(tiny, copy)
    data = json.loads((copy / "manifest.json").read_text())
    rec = data["images"][0]
    right = rec["variants"][1]["top5"][0]["index"] == rec["label"]
    flipped = (rec["label"] + 1) % 10 if right else rec["label"]  # the opposite top-1 correctness
    rec["variants"][1]["top5"] = [{"index": flipped, "label": "x", "prob": 1.0}] * 5
    (copy / "manifest.json").write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="classified differently"):
        sweep(demo_model, copy, transforms=["noise"], strengths={"noise": [0]})
    with pytest.raises(PhysicalError, match="unknown transformation"):
        sweep(demo_model, copy, transforms=["sharpen"])
    with pytest.raises(PhysicalError, match="outside"):
        sweep(demo_model, copy, transforms=["noise"], strengths={"noise": [-2]})


def test_plot_sweeps_one_png_per_transform(tmp_path):
    # The paper's methods at two eps, and methods without eps: a panel of their own.
    cells = [(f"{m}_e{eps}", m, eps, f"ε={eps}") for m in ("fast", "bim", "ll") for eps in (8, 16)]
    cells += [("cw", "cw", None, "κ=0"), ("onepixel_d1", "onepixel", None, "d=1"),
              ("onepixel_d3", "onepixel", None, "d=3")]
    rows = []
    for name, strengths in (("brightness", [-8, 0, 8]), ("jpeg", [10, 50, 100])):
        for s in strengths:
            for attack, m, eps, setting in cells:
                n = 0 if attack in ("ll_e8", "onepixel_d3") else 10  # an n/a cell must be left out, not crash
                k = 0 if s in (0, 100) else min(n, 3)
                rows.append({"transform": name, "strength": s, "attack": attack, "method": m, "eps": eps,
                             "setting": setting, "l2": 1.0, "linf": 1.0,
                             "top1": Rate(k, n), "top5": Rate(min(n, k + 2), n),
                             "clean_top1": Rate(8, 10), "clean_top5": Rate(10, 10)})
    panels = _panels([r for r in rows if r["transform"] == "jpeg"])
    assert [(title, [(c["attack"], label, marker) for c, label, _, marker in lines]) for title, lines in panels] == [
        ("ε = 8", [("fast_e8", "fast", "o"), ("bim_e8", "basic iterative", "s"),
                   ("ll_e8", "iterative least-likely", "^")]),
        ("ε = 16", [("fast_e16", "fast", "o"), ("bim_e16", "basic iterative", "s"),
                    ("ll_e16", "iterative least-likely", "^")]),
        ("methods without ε", [("cw", "Carlini-Wagner L2 κ=0", "X"), ("onepixel_d1", "one-pixel (DE) d=1", "h"),
                               ("onepixel_d3", "one-pixel (DE) d=3", "o")]),   # d=3: one-pixel's colour, another marker
    ]
    paths = plot_sweeps(rows, tmp_path / "plots")
    assert [p.name for p in paths] == ["transform_brightness.png", "transform_jpeg.png"]
    for p in paths:
        assert p.stat().st_size > 10_000 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(p) as im:
            assert im.size[0] > 600 and im.size[1] > 400
