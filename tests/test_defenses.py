"""Input-transformation defenses: each step against a reference, BPDA's backward, EoT's gradient."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from physical.defenses import (TVM_LAMBDA, bit_depth, defend, draw_randomize, draw_tvm, jpeg, median, padded_size,
                               parse_defense, randomize, spec_text, straight_through, tv_energy, tvm)
from physical.errors import PhysicalError


def test_jpeg_is_the_real_codec_byte_for_byte(demo_batch):
    from torchvision.io import decode_jpeg, encode_jpeg

    x, _ = demo_batch
    u = (x * 255).round().to(torch.uint8)
    for q in (75, 30):
        ref = torch.stack([decode_jpeg(encode_jpeg(img, quality=q)) for img in u]).float() / 255
        assert torch.equal(jpeg(u.float() / 255, q), ref)
    with pytest.raises(ValueError):
        jpeg(x, 0)


def test_bit_depth_levels_are_exact():
    x = torch.tensor([0.0, 0.03, 0.2, 0.49, 0.51, 0.97, 1.0]).view(1, 1, 1, 7).repeat(1, 3, 1, 1)
    assert bit_depth(x, 1)[0, 0, 0].tolist() == [0, 0, 0, 0, 1, 1, 1]
    # 4 bits: the 16 levels k / 15; 0.2 * 15 = 3, 0.49 * 15 = 7.35, 0.51 * 15 = 7.65, 0.97 * 15 = 14.55
    assert (bit_depth(x, 4)[0, 0, 0] * 15).round().tolist() == [0, 0, 3, 7, 8, 15, 15]
    assert torch.equal(bit_depth(x, 8), torch.round(x * 255) / 255)
    y = bit_depth(torch.rand(2, 3, 8, 8), 3) * 7
    assert torch.allclose(y, y.round(), atol=1e-5)


def test_median_equals_scipy_with_mirrored_borders():
    from scipy.ndimage import median_filter

    x = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    ref = median_filter(x.numpy(), size=(1, 1, 3, 3), mode="mirror")
    assert np.allclose(median(x, 3).numpy(), ref)


def test_randomize_draws_sizes_in_xies_range_and_pastes_on_the_padded_square():
    g = torch.Generator().manual_seed(0)
    side, offset = draw_randomize(500, 32, g)
    full = padded_size(32)
    assert full == 35 and padded_size(299) == 331
    assert side.min() == 32 and side.max() == full - 1          # [32, 35): every side drawn
    assert (offset >= 0).all() and (offset <= (full - side)[:, None]).all()
    assert torch.equal(draw_randomize(500, 32, torch.Generator().manual_seed(0))[0], side)   # seeded
    x = torch.rand(3, 3, 32, 32)
    s = torch.tensor([32, 34, 33])
    off = torch.tensor([[1, 2], [0, 1], [2, 0]])
    out = randomize(x, s, off)
    assert out.shape == (3, 3, full, full)                       # the model sees the padded square
    for i in range(3):
        k, (t, l) = int(s[i]), off[i].tolist()
        # nearest neighbour, as Xie et al.'s code: output pixel r takes input pixel floor(r * 32 / side)
        src = (torch.arange(k) * 32 // k)
        assert torch.equal(out[i, :, t:t + k, l:l + k], x[i][:, src][:, :, src])
        assert torch.equal(out[i, :, t:t + k, l:l + k], torch.nn.functional.interpolate(x[i:i + 1], size=k)[0])
        pad = torch.ones(full, full, dtype=torch.bool)
        pad[t:t + k, l:l + k] = False
        assert (out[i][:, pad] == 0.5).all()                     # mid-grey around it
    with pytest.raises(ValueError):
        randomize(x[:1], torch.tensor([36]), torch.tensor([[0, 0]]))


def test_randomize_gradcheck():
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    side, offset = torch.tensor([6, 7]), torch.tensor([[0, 1], [0, 0]])   # padded_size(6) == 7: 7 resizes
    assert torch.autograd.gradcheck(lambda v: randomize(v, side, offset), (x,))


def test_randomize_refuses_a_model_that_needs_its_exact_input_size(demo_model):
    from physical.errors import PhysicalError
    from physical.models import Classifier

    fixed = Classifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)), model_id="flat",
                       class_names=demo_model.class_names, input_size=(32, 32), resize_size=32,
                       mean=[0.0] * 3, std=[1.0] * 3, weights_sha256="")
    with pytest.raises(PhysicalError, match="model flat does not take 35 px pictures"):
        defend(fixed, parse_defense("randomize"))
    assert defend(fixed, parse_defense("bits:4")).model_id == "flat+bits:4"


def _tv_reference(f: np.ndarray, m: np.ndarray, lam: float) -> float:
    """The least energy of one channel, as a quadratic programme for scipy: minimise sum(m (u - f)^2) + lam sum(t)
    subject to -t <= D u <= t (D: the forward differences)."""
    from scipy.optimize import minimize

    h, w = f.shape
    n = h * w
    rows = []
    for r in range(h):
        for c in range(w):
            for dr, dc in ((0, 1), (1, 0)):
                if r + dr < h and c + dc < w:
                    row = np.zeros(n)
                    row[(r + dr) * w + c + dc], row[r * w + c] = 1, -1
                    rows.append(row)
    d = np.array(rows)
    k = len(d)
    mf, ff = m.ravel().astype(float), f.ravel()

    def energy(z):
        return (mf * (z[:n] - ff) ** 2).sum() + lam * z[n:].sum()

    def jac(z):
        return np.concatenate([2 * mf * (z[:n] - ff), np.full(k, lam)])

    a = np.block([[d, -np.eye(k)], [-d, -np.eye(k)]])
    res = minimize(energy, np.concatenate([ff, np.abs(d @ ff)]), jac=jac, method="SLSQP",
                   constraints=[{"type": "ineq", "fun": lambda z: -a @ z, "jac": lambda z: -a}],
                   options={"maxiter": 1000, "ftol": 1e-14})
    assert res.success, res.message
    return float(res.fun)


def test_tvm_reaches_the_least_energy_a_quadratic_programme_finds():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 6, 6, generator=g, dtype=torch.float64)
    mask = draw_tvm(2, 6, 6, 0.5, g)
    out = tvm(x, mask, iters=2000)
    ours = tv_energy(out, x, mask.double())
    for i in range(2):
        ref = sum(_tv_reference(x[i, c].numpy(), mask[i, 0].numpy(), TVM_LAMBDA) for c in range(3))
        assert abs(float(ours[i]) - ref) < 1e-6 * ref
    # the default 300 steps: within a thousandth of the least energy
    assert (tv_energy(tvm(x, mask), x, mask.double()) < ours * 1.001).all()


def test_tvm_of_two_flat_halves_moves_each_towards_the_other_by_lambda_over_width():
    # all pixels kept: the energy is strictly convex, and its minimiser is two flat halves a', b' with
    # H W / 2 ((a' - a)^2 + (b' - b)^2) + lam H |b' - a'| least: a' = a + lam / W, b' = b - lam / W
    x = torch.full((1, 3, 5, 8), 0.2, dtype=torch.float64)
    x[..., 4:] = 0.7
    out = tvm(x, torch.ones(1, 1, 5, 8, dtype=torch.bool), iters=3000)
    assert torch.allclose(out[..., :4], torch.tensor(0.2 + TVM_LAMBDA / 8, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(out[..., 4:], torch.tensor(0.7 - TVM_LAMBDA / 8, dtype=torch.float64), atol=1e-6)
    flat = torch.full((1, 3, 6, 6), 0.4)
    assert torch.allclose(tvm(flat, draw_tvm(1, 6, 6, 0.3, torch.Generator().manual_seed(0))), flat, atol=1e-6)


def test_tvm_draws_keep_whole_pixels_at_the_rate_asked_seeded():
    m = draw_tvm(4, 64, 64, 0.3, torch.Generator().manual_seed(1))
    assert m.shape == (4, 1, 64, 64) and m.dtype == torch.bool         # one draw for the three channels
    assert abs(m.float().mean().item() - 0.3) < 0.01
    assert torch.equal(m, draw_tvm(4, 64, 64, 0.3, torch.Generator().manual_seed(1)))
    assert draw_tvm(1, 8, 8, 1.0, torch.Generator()).all()
    with pytest.raises(ValueError):
        tvm(torch.rand(1, 3, 8, 8), torch.ones(1, 3, 8, 8, dtype=torch.bool))


def test_a_tvm_defended_model_uses_its_draws_and_differentiates_as_the_identity(demo_model, demo_batch):
    x = demo_batch[0][:3]
    d = defend(demo_model, parse_defense("tvm:40"), seed=4)
    assert d.model_id == "demo+tvm:40" and d.defense["steps"][0]["random"]
    with torch.no_grad():
        want = demo_model(tvm(x, draw_tvm(3, 32, 32, 0.4, torch.Generator().manual_seed(4))))
        assert torch.allclose(d(x), want, atol=1e-5)
    d = defend(demo_model, parse_defense("tvm:40"), seed=4)                # the same draws again
    xg = x.clone().requires_grad_(True)
    z = tvm(x, draw_tvm(3, 32, 32, 0.4, torch.Generator().manual_seed(4))).requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(d(xg)[:, 0].sum(), xg)
        # BPDA: the model's gradient at the reconstructed image, passed straight through
        (ref,) = torch.autograd.grad(demo_model(z)[:, 0].sum(), z)
    assert torch.allclose(g, ref, atol=1e-6) and ref.abs().sum() > 0


def test_bpda_backward_is_the_identity_it_declares():
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    w = torch.randn(2, 3, 8, 8)
    y = straight_through(x, lambda z: bit_depth(z, 2))
    assert torch.equal(y.detach(), bit_depth(x.detach(), 2))            # forward: the step's value
    (g,) = torch.autograd.grad((w * y).sum(), x)
    x2 = x.detach().requires_grad_(True)
    (ref,) = torch.autograd.grad((w * x2).sum(), x2)                     # autograd on the approximation
    assert torch.equal(g, ref)


def test_eot_gradient_is_the_mean_of_per_draw_gradients(demo_model, demo_batch):
    x, _ = demo_batch
    x = x[:4]
    steps = parse_defense("bits:5,randomize")
    k, seed = 3, 7
    defended = defend(demo_model, steps, samples=k, seed=seed)
    xg = x.clone().requires_grad_(True)
    with torch.enable_grad():
        logits = defended(xg)
        (g,) = torch.autograd.grad(logits[:, 0].sum() - logits[:, 3].sum(), xg)
    # the same draws by hand: K x N of them from the same seed, one forward per draw
    side, offset = draw_randomize(k * len(x), 32, torch.Generator().manual_seed(seed))
    per_draw = []
    for d in range(k):
        xd = x.clone().requires_grad_(True)
        with torch.enable_grad():
            z = demo_model(randomize(straight_through(xd, lambda v: bit_depth(v, 5)),
                                     side[d * 4:(d + 1) * 4], offset[d * 4:(d + 1) * 4]))
            per_draw.append(torch.autograd.grad(z[:, 0].sum() - z[:, 3].sum(), xd)[0])
    assert torch.allclose(g, torch.stack(per_draw).mean(0), atol=1e-6)
    assert not torch.allclose(per_draw[0], per_draw[1])                  # the draws differ


def test_defended_model_is_a_model_named_after_its_defense(demo_model, demo_batch):
    x, y = demo_batch
    d = defend(demo_model, parse_defense("bits:4,jpeg"), seed=1)
    assert d.model_id == "demo+bits:4,jpeg:75" and d.input_size == demo_model.input_size
    assert d.weights_sha256 == demo_model.weights_sha256
    assert d.defense["spec"] == "bits:4,jpeg:75" and d.defense["steps"][1]["gradient"].startswith("BPDA")
    with torch.no_grad():
        assert torch.equal(d(x), demo_model(jpeg(bit_depth(x, 4), 75)))
    assert all(not p.requires_grad for p in d.parameters())


@pytest.mark.parametrize("spec, needle", [
    ("jpeg:101", "out of range"), ("median:4", "odd"), ("blur:3", "unknown defense 'blur'"),
    ("randomize:3", "takes no parameter"), ("bits:x", "whole number"), (",", "at least one"),
    ("tvm:0", "out of range")])
def test_bad_defense_specs_say_why(spec, needle):
    with pytest.raises(PhysicalError, match=needle) as err:
        parse_defense(spec)
    assert "\n" not in str(err.value)


def test_spec_text_writes_the_defaults():
    assert spec_text(parse_defense("bits, jpeg:30 ,median,randomize")) == "bits:4,jpeg:30,median:3,randomize"
    assert spec_text(parse_defense("tvm")) == "tvm:50"


def test_make_sheets_with_a_defense_adaptive_and_not(tmp_path):
    from physical.sheets.run import make_sheets

    opts = dict(count=3, seed=2, methods=["fast", "bim", "pgd"], eps=[8], pgd_steps=5)
    bare = make_sheets(tmp_path / "bare", **opts).manifest
    na = make_sheets(tmp_path / "na", defense="bits:4,jpeg:75,randomize", non_adaptive=True, **opts).manifest
    ad = make_sheets(tmp_path / "ad", defense="bits:4,jpeg:75,randomize", defense_samples=2, **opts).manifest

    def shas(m):
        return {(r["id"], v["name"]): v["sha256"] for r in m["images"] for v in r["variants"]}

    # --non-adaptive attacks the bare model: its images are those made without the defense
    assert shas(na) == shas(bare)
    # the adaptive attack differentiates the defended model: other adversarial images, the same clean ones
    differ = {k for k in shas(ad) if shas(ad)[k] != shas(bare)[k]}
    assert differ and all(name != "clean" for _, name in differ)
    d = ad["model"]["defense"]
    assert d["spec"] == "bits:4,jpeg:75,randomize" and d["adaptive"] and d["attack_samples"] == 2
    assert na["model"]["defense"]["adaptive"] is False and "defense" not in bare["model"]
    assert ad["model"]["id"] == bare["model"]["id"] == "demo"      # the model itself; the defense beside it


def test_make_sheets_defense_errors(tmp_path):
    from physical.sheets.run import make_sheets

    with pytest.raises(PhysicalError, match="--non-adaptive needs --defense"):
        make_sheets(tmp_path / "x", count=1, non_adaptive=True)
    with pytest.raises(PhysicalError, match="unknown defense"):
        make_sheets(tmp_path / "x", count=1, defense="jpg:75")
    assert not (tmp_path / "x").exists()


def test_defended_experiment_end_to_end_with_the_bare_model_beside_it(tmp_path):
    import json

    from typer.testing import CliRunner

    from physical.cli import app

    runner = CliRunner()
    p, photos, cap = tmp_path / "printouts", tmp_path / "photos", tmp_path / "captures"
    r = runner.invoke(app, ["make-sheets", "--out", str(p), "--count", "2", "--methods", "fast,bim", "--eps", "8",
                            "--defense", "bits:4,jpeg:75", "--non-adaptive"])
    assert r.exit_code == 0, r.output
    assert "defense bits:4,jpeg:75 (seed 0): attacks non-adaptive, on the bare model (no BPDA, no EoT)" in r.output
    assert runner.invoke(app, ["simulate-photos", "--printouts", str(p), "--out", str(photos)]).exit_code == 0
    assert runner.invoke(app, ["ingest", str(photos), "--printouts", str(p), "--out", str(cap)]).exit_code == 0
    r = runner.invoke(app, ["report", "--captures", str(cap), "--printouts", str(p), "--no-artificial",
                            "--model", "demo", "--model", "demo+median:3"])
    assert r.exit_code == 0, r.output
    figures = json.loads((cap / "report" / "figures.json").read_text())
    assert figures["models"] == ["demo+bits:4,jpeg:75", "demo", "demo+median:3"]
    assert set(figures["defenses"]) == {"demo+bits:4,jpeg:75", "demo+median:3"}
    # the defended model's digital predictions are those of the defended images
    from physical.defenses import bit_depth, jpeg
    from physical.models import load_model, open_rgb, preprocess

    demo = load_model("demo", device="cpu")
    manifest = json.loads((p / "manifest.json").read_text())
    rec = manifest["images"][0]
    x = torch.stack([preprocess(open_rgb(p / v["file"]), demo) for v in rec["variants"]])
    with torch.no_grad():
        top1 = demo(jpeg(bit_depth(x, 4), 75)).argmax(1).tolist()
    assert top1 == [v["top5"][0]["index"] for v in rec["variants"]]
    html = (cap / "report" / "report.html").read_text()
    assert "attacked non-adaptively" in html and "Model demo+median:3" in html


def test_a_random_defense_is_classified_over_seeded_draws_and_its_counts_summed(tmp_path):
    import inspect

    from physical import cli
    from physical.capture.camera import simulate_photos
    from physical.capture.run import ingest
    from physical.report.figures import lookup
    from physical.report.run import digital_images, load_models, make_report
    from physical.sheets.manifest import read_manifest
    from physical.sheets.run import make_sheets

    assert inspect.signature(cli.report_cmd).parameters["defense_draws"].default.default == \
        inspect.signature(make_report).parameters["defense_draws"].default
    p = tmp_path / "printouts"
    make_sheets(p, count=3, methods=["fast"], eps=[8], defense="randomize", non_adaptive=True)
    simulate_photos(p, tmp_path / "photos", seed=1)
    ingest(tmp_path / "photos", printouts=p, out=tmp_path / "captures")
    res = make_report(tmp_path / "captures", printouts=p, artificial=False, simulated=None, defense_draws=3, seed=5)
    row = lookup(res.figures, model="demo+randomize", source="photo", case="average", table="accuracy",
                 variant="digital_adv", metric="top1")[0]
    # by hand: the same three seeded draws over the digital images, counted
    manifest = read_manifest(p)
    model = load_models(manifest, seed=5)[0]
    keys, x = digital_images(model, manifest, p)
    labels = {r["id"]: r["label"] for r in manifest["images"]}
    k = 0
    for d in range(3):
        # the report's seed of draw d for the digital images' one batch (first image 0)
        model.net.generator.manual_seed(((5 * 1_000_003 + d) * 7 + 0) * 1_000_003 + 0)
        with torch.no_grad():
            top1 = model(x).argmax(1).tolist()
        k += sum(t == labels[i] for (i, v), t in zip(keys, top1) if v == "fast_e8")
    assert (row["k"], row["n"]) == (k, 3 * 3)
    import json
    meta = json.loads((res.out / "figures.json").read_text())
    assert meta["defenses"]["demo+randomize"]["draws"] == 3 and "each of 3 draws" in meta["counting"]
