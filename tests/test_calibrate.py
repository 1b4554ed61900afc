"""Calibration: fitting the channel to photographed crops, profiles, and ``physical calibrate``."""
from __future__ import annotations

import json

import pytest
import torch

from physical.channel import PARAM_SHAPES, apply_channel, simulate
from physical.channel.fit import fit_channel, fitted_params
from physical.channel.profile import ProfileError, load_profile, profile_params, resolve_channel
from physical.errors import PhysicalError

# What the recovery test asks of the fit, for crops that the channel itself made (no JPEG; 6 photos
# of 20 crops, as measured on three draws): the identifiable quantities within these absolute
# tolerances. Measured worst over the draws (0.3, with the local tone free and its prior): ink cast
# 0.009, paper white 0.005, black 0.008, read noise 0.004, shot noise 0.0062, exposure 0.015 (before
# 0.3, without the local tone and starting from neutral levels: 0.021, 0.024, -, 0.0065, -, -).
TOLERANCE = {
    "saturation": 0.01, "ink_cast": 0.015, "white": 0.01, "black": 0.01, "blur_px": 0.03,
    "read_noise": 0.006, "shot_noise": 0.008, "exposure": 0.02, "light_gradient": 0.025,
}
JITTER_MEAN_PX = 0.1


def _known_channel(x: torch.Tensor, photos: int, per_photo: int, seed: int = 0, tone: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    n = photos * per_photo
    photo = torch.arange(photos).repeat_interleave(per_photo)
    xs = x[torch.randint(0, len(x), (n,), generator=g)]

    def u(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=g)

    true_photo = {
        "saturation": u(0.75, 0.95, photos), "ink_cast": u(-0.03, 0.03, photos, 3),
        "paper_white": u(0.85, 0.95, photos, 3), "black_level": u(0.05, 0.15, photos),
        "white_balance": torch.cat([u(0.9, 1.1, photos, 1), torch.ones(photos, 1), u(0.9, 1.1, photos, 1)], 1),
        "blur_frac": u(0.01, 0.03, photos), "read_noise": u(0.004, 0.012, photos),
        "shot_noise": u(0.008, 0.018, photos),
    }
    log_e = u(-0.15, 0.15, n)
    log_e = log_e - (torch.zeros(photos).index_add(0, photo, log_e) / per_photo)[photo]   # photo mean 1
    k = u(-tone, tone, n)
    k = k - (torch.zeros(photos).index_add(0, photo, k) / per_photo)[photo]                  # photo mean 0
    true_crop = {"exposure": log_e.exp(), "light_gradient": u(-0.05, 0.05, n, 2),
                 "corner_jitter": u(-0.015, 0.015, n, 4, 2), "local_tone": k}
    p = fitted_params(true_photo, true_crop, photo)
    p["noise_seed"] = torch.arange(n) + 1000 * seed
    return xs, apply_channel(xs, p), photo, true_photo, true_crop


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_recovers_the_parameters_of_crops_the_channel_made(demo_batch, seed):
    x, _ = demo_batch
    xs, crops, photo, tp, tc = _known_channel(x, photos=6, per_photo=20, seed=seed)
    fit = fit_channel(xs, crops, photo)
    assert fit.converged
    fp, fc = fit.photo, fit.crop

    def close(name, got, want):
        err = float((got - want).abs().max())
        assert err <= TOLERANCE[name], f"{name}: off by {err:.4f} (tolerance {TOLERANCE[name]})"

    close("saturation", fp["saturation"], tp["saturation"])
    close("ink_cast", fp["ink_cast"], tp["ink_cast"])
    # White balance scales paper and black alike: what the pixels pin down is their product.
    close("white", fp["white_balance"] * fp["paper_white"], tp["white_balance"] * tp["paper_white"])
    close("black", fp["white_balance"] * fp["black_level"][:, None], tp["white_balance"] * tp["black_level"][:, None])
    close("blur_px", 32 * fp["blur_frac"], 32 * tp["blur_frac"])
    close("read_noise", fp["read_noise"], tp["read_noise"])
    close("shot_noise", fp["shot_noise"], tp["shot_noise"])
    close("exposure", fc["exposure"], tc["exposure"])
    close("light_gradient", fc["light_gradient"], tc["light_gradient"])
    jitter_px = float((fc["corner_jitter"] - tc["corner_jitter"]).abs().mean()) * 32
    assert jitter_px <= JITTER_MEAN_PX
    # The residual is the noise the crops carry: about its level, not more.
    assert fit.rms_all < 0.02


def test_fit_recovers_each_crops_local_tone(demo_batch):
    """Crops whose phone bent each one's tone curve its own way (HDR local tone mapping, |k| up to 0.3).
    Measured (seeds 3, 5): k within 0.048, 0.070 (mean 0.010, 0.009), exposure within 0.023, 0.028."""
    x, _ = demo_batch
    xs, crops, photo, tp, tc = _known_channel(x, photos=6, per_photo=20, seed=3, tone=0.3)
    fit = fit_channel(xs, crops, photo)
    assert fit.converged
    err = (fit.crop["local_tone"] - tc["local_tone"]).abs()
    assert float(err.max()) <= 0.08 and float(err.mean()) <= 0.015, (float(err.max()), float(err.mean()))
    assert float((fit.crop["exposure"] - tc["exposure"]).abs().max()) <= 0.03
    assert fit.rms_all < 0.02


def test_fit_without_local_tone_holds_it_at_none(demo_batch):
    """``local_tone=False`` (calibrate --no-local-tone, the ablation in docs/findings.md): every crop's
    local tone stays 0, so crops bent each their own way fit worse than with it."""
    x, _ = demo_batch
    xs, crops, photo, _, _ = _known_channel(x, photos=6, per_photo=20, seed=3, tone=0.3)
    without = fit_channel(xs, crops, photo, local_tone=False)
    assert bool((without.crop["local_tone"] == 0).all())
    assert without.rms_all > fit_channel(xs, crops, photo).rms_all


def test_fit_rejects_malformed_input(demo_batch):
    x, _ = demo_batch
    photo = torch.zeros(len(x), dtype=torch.int64)
    with pytest.raises(ValueError, match="differ in shape"):
        fit_channel(x, x[:, :, :16], photo)
    with pytest.raises(ValueError, match="every photo"):
        fit_channel(x, x, photo + 1)
    with pytest.raises(ValueError, match="int64"):
        fit_channel(x, x, photo.float())


def _profile(photos: int = 3, crops: int = 4) -> dict:
    ph = []
    for j in range(photos):
        ph.append({"photo": f"p{j}.jpg", "crops": crops, "rms_residual": 1.0,
                   "saturation": 0.8 + 0.01 * j, "ink_cast": [0.0, 0.01, -0.01], "paper_white": [0.9, 0.9, 0.92],
                   "black_level": 0.1, "white_balance": [1.02, 1.0, 0.97], "blur_frac": 0.01 * (j + 1),
                   "read_noise": 0.003, "shot_noise": 0.005, "jpeg_quality": [0, 80, 90][j % 3],
                   "photo_jpeg_quality": 90, "photo_px_per_pixel": 4.0,
                   "exposure": [1.0 + 0.01 * k for k in range(crops)],
                   "light_gradient": [[0.01 * k, -0.01] for k in range(crops)],
                   "corner_jitter": [[[0.001 * k, 0.0]] * 4 for k in range(crops)]})
    return {"format": "physical-channel-profile", "format_version": 1, "fitted_on": {"experiment_id": "abcd1234"},
            "photos": ph}


def test_profile_draws_are_fitted_values_deterministic_and_shaped_like_a_preset():
    prof = _profile()
    a, b = profile_params(64, prof, seed=5), profile_params(64, prof, seed=5)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for k, shape in PARAM_SHAPES.items():
        assert tuple(a[k].shape) == (64, *shape), k
    # Every image's photo-level values are one photo's, and its crop-level values one of that photo's crops.
    for i in range(64):
        j = round((float(a["saturation"][i]) - 0.8) / 0.01)
        assert float(a["blur_frac"][i]) == pytest.approx(0.01 * (j + 1))
        assert int(a["jpeg_quality"][i]) == [0, 80, 90][j % 3]
        k = round((float(a["exposure"][i]) - 1.0) / 0.01)
        assert 0 <= k < 4 and float(a["light_gradient"][i, 0]) == pytest.approx(0.01 * k)
    assert float(a["zoom"][0]) == pytest.approx(1 / 0.96)
    assert len(set(a["saturation"].tolist())) == 3          # all photos drawn


def test_simulate_takes_a_profile_wherever_a_preset_goes(demo_batch):
    x, _ = demo_batch
    prof = _profile()
    y = simulate(x, prof, seed=1)
    assert torch.equal(y, apply_channel(x, profile_params(len(x), prof, seed=1)))
    assert y.shape == x.shape and float((y - x).abs().mean()) > 0.01


@pytest.mark.parametrize("change, message", [
    (lambda p: p.update(format="something"), "not a channel profile"),
    (lambda p: p.update(format_version=7), "format_version"),
    (lambda p: p["photos"][0].pop("saturation"), "'saturation'"),
    (lambda p: p["photos"][1].update(exposure=[1.0]), "'light_gradient' must hold 1"),
    (lambda p: p["photos"][0].update(jpeg_quality=101), "jpeg_quality"),
    (lambda p: p["photos"][2].update(blur_frac=float("nan")), "'blur_frac'"),
])
def test_a_bad_profile_file_is_one_clear_error_naming_it(tmp_path, change, message):
    prof = _profile()
    change(prof)
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(prof))
    with pytest.raises(ProfileError, match=message) as e:
        load_profile(path)
    assert str(path) in str(e.value) and "physical calibrate" in str(e.value)


def test_a_format_1_profile_reads_with_no_local_tone(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps(_profile()))
    prof = load_profile(tmp_path / "old.json")
    assert all(ph["local_tone"] == [0.0] * ph["crops"] for ph in prof["photos"])
    assert torch.equal(profile_params(32, prof, seed=2)["local_tone"], torch.zeros(32))
    new = _profile()
    new["format_version"] = 2                    # format 2 must hold it
    (tmp_path / "new.json").write_text(json.dumps(new))
    with pytest.raises(ProfileError, match="'local_tone' must hold 4"):
        load_profile(tmp_path / "new.json")


def test_resolve_channel_names_presets_and_reads_profiles(tmp_path):
    assert resolve_channel("typical") == "typical"
    (tmp_path / "p.json").write_text(json.dumps(_profile()))
    assert resolve_channel(tmp_path / "p.json")["fitted_on"]["experiment_id"] == "abcd1234"
    with pytest.raises(ProfileError, match="not a preset"):
        resolve_channel("hrash")
    with pytest.raises(ProfileError, match="no such profile"):
        resolve_channel(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ProfileError, match="not a readable JSON"):
        resolve_channel(tmp_path / "bad.json")


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """20 pictures (clean + fast eps 8), 2 virtual photos of each page, ingested and calibrated."""
    from physical.calibrate.run import calibrate
    from physical.capture.camera import simulate_photos
    from physical.capture.run import ingest
    from physical.sheets.run import make_sheets

    root = tmp_path_factory.mktemp("calibrate")
    make_sheets(root / "printouts", count=20, eps=[8], methods=["fast"])
    simulate_photos(root / "printouts", root / "photos", per_page=2, seed=5)
    ingest(root / "photos", printouts=root / "printouts", out=root / "captures")
    result = calibrate(root / "captures", printouts=root / "printouts")
    return root, result


def test_calibrate_writes_a_profile_of_every_photo_with_its_jpeg_quality(calibrated):
    root, r = calibrated
    assert r.out == root / "captures" / "channel-profile.json"
    prof = load_profile(r.out)
    rows = (root / "captures" / "index.csv").read_text().splitlines()[1:]
    clean = [line for line in rows if ",clean," in line]
    photos = {line.split(",")[0] for line in clean}
    assert prof["fitted_on"]["crops"] == len(clean) and prof["fitted_on"]["photos"] == len(photos) >= 4
    assert prof["fitted_on"]["converged"] and prof["fitted_on"]["image_px"] == 32
    # The JPEG quality each photo was saved at, read back from its quantisation table.
    truth = json.loads((root / "photos" / "ground-truth.json").read_text())
    for ph in prof["photos"]:
        assert ph["photo_jpeg_quality"] == truth[ph["photo"]]["params"]["camera"]["jpeg_quality"]
        # A 32 px picture printed 25 mm wide spans many photo pixels per crop pixel: no JPEG on the crop.
        assert ph["photo_px_per_pixel"] > 2 and ph["jpeg_quality"] == 0
        assert len(ph["exposure"]) == ph["crops"]
    # The virtual printer's paper is off-white and its black grey: the fit sees both.
    assert all(0.6 < min(ph["paper_white"]) and max(ph["paper_white"]) < 1.05 for ph in prof["photos"])
    assert all(0.0 < ph["black_level"] < 0.35 for ph in prof["photos"])


@pytest.fixture(scope="module")
def hdr_calibrated(calibrated):
    """The same printouts photographed by the virtual camera's hdr phone (seed 4: daylight, tungsten and
    mixed light, red and blue up to 2x apart, office, recycled and bright-white paper, HDR local tone
    mapping, barrel distortion), ingested and calibrated with the defaults."""
    from physical.calibrate.run import calibrate
    from physical.capture.camera import simulate_photos
    from physical.capture.run import ingest

    root, _ = calibrated
    hdr = root / "hdr"
    simulate_photos(root / "printouts", hdr / "photos", per_page=2, seed=4, phone="hdr")
    ingest(hdr / "photos", printouts=root / "printouts", out=hdr / "captures")
    return hdr, calibrate(hdr / "captures", printouts=root / "printouts")


def test_calibrate_converges_by_default_on_a_phone_with_hdr_and_strong_colour_casts(calibrated, hdr_calibrated):
    root, plain = calibrated
    hdr, r = hdr_calibrated
    truth = json.loads((hdr / "photos" / "ground-truth.json").read_text())
    cams = [truth[ph["photo"]]["params"]["camera"] for ph in r.profile["photos"]]
    gains = [c["white_balance"][0] / c["white_balance"][2] for c in cams]
    # What the photos hold: every light, casts up to 2x apart between red and blue, and HDR.
    assert {c["illuminant"] for c in cams} == {"daylight", "tungsten", "mixed"} and max(gains) >= 1.9
    assert all(c["hdr"]["compression"] < 0.8 for c in cams)
    f = r.profile["fitted_on"]
    assert f["converged"] and f["photos"] == len(cams) >= 6
    state = json.loads((hdr / "captures" / "ingest.json").read_text())
    assert len(state["photos"]) == len(cams) and not any(p["dropped"] for p in state["photos"])   # ingest kept all
    # About as many steps as the plain phone's photos, far from the ceiling.
    assert f["steps"] <= 2 * plain.profile["fitted_on"]["steps"] and f["steps"] < 1000
    # The fit sees each photo's cast: the paper's colour, red over blue, as the light and paper made it.
    for ph, cam in zip(r.profile["photos"], cams):
        paper = truth[ph["photo"]]["params"]["print"]["paper_tint"]
        want = cam["white_balance"][0] / cam["white_balance"][2] * (1 + paper[0]) / (1 + paper[2])
        seen = ph["white_balance"][0] * ph["paper_white"][0] / (ph["white_balance"][2] * ph["paper_white"][2])
        assert seen == pytest.approx(want, rel=0.15), ph["photo"]
    assert all(abs(t) <= 0.8 for ph in r.profile["photos"] for t in ph["local_tone"])


def test_crops_that_are_not_of_their_pictures_are_named_and_can_be_left_out(calibrated, tmp_path):
    """Two photos whose crops were swapped between pictures: the error names those two photos (and their
    overlays), writes nothing, and --exclude leaves them out."""
    import csv
    import shutil

    from physical.calibrate.run import calibrate

    root, _ = calibrated
    captures = tmp_path / "captures"
    shutil.copytree(root / "captures", captures)
    with open(captures / "index.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["variant"] == "clean"]
    by_photo: dict[str, list[str]] = {}
    for r in rows:
        by_photo.setdefault(r["photo"], []).append(r["crop"])
    swapped = sorted(name for name, crops in by_photo.items() if len(crops) >= 3)[:2]
    for name in swapped:
        a, b = by_photo[name][:2]
        da, db = (captures / a).read_bytes(), (captures / b).read_bytes()
        (captures / a).write_bytes(db)
        (captures / b).write_bytes(da)
    with pytest.raises(PhysicalError, match="do not match their pictures") as e:
        calibrate(captures, printouts=root / "printouts", out=tmp_path / "p.json")
    message = str(e.value)
    assert "\n" not in message and "--exclude" in message and not (tmp_path / "p.json").exists()
    named = {name for name in by_photo if name in message}
    assert named == set(swapped), message
    assert "overlays/" in message
    r = calibrate(captures, printouts=root / "printouts", out=tmp_path / "p.json", exclude=swapped)
    assert r.profile["fitted_on"]["photos"] == len(by_photo) - 2 and r.profile["fitted_on"]["excluded"] == swapped
    with pytest.raises(PhysicalError, match="--exclude nope.jpg: no clean crop"):
        calibrate(captures, printouts=root / "printouts", out=tmp_path / "q.json", exclude=["nope.jpg"])


def test_the_command_line_fits_to_the_same_ceiling_as_the_api():
    import inspect

    from physical import cli
    from physical.calibrate.run import calibrate
    from physical.channel.fit import FIT_STEPS

    assert inspect.signature(cli.calibrate_cmd).parameters["steps"].default.default == FIT_STEPS
    assert inspect.signature(calibrate).parameters["steps"].default == FIT_STEPS


def test_calibrate_again_gives_the_same_profile(calibrated, tmp_path):
    from physical.calibrate.run import calibrate

    root, r = calibrated
    again = calibrate(root / "captures", printouts=root / "printouts", out=tmp_path / "again.json")
    a, b = dict(r.profile), dict(again.profile)
    a.pop("created"), b.pop("created")
    for p in (a, b):                       # how long the fit took is not what it found
        p["fitted_on"] = {k: v for k, v in p["fitted_on"].items() if k != "seconds"}

    def same(u, v) -> bool:    # equal, numbers to within float rounding of multi-threaded sums
        if isinstance(u, dict):
            return u.keys() == v.keys() and all(same(u[k], v[k]) for k in u)
        if isinstance(u, list):
            return len(u) == len(v) and all(same(p, q) for p, q in zip(u, v))
        if isinstance(u, float):
            return abs(u - v) <= 1e-3 * max(1.0, abs(u))
        return u == v

    assert same(a, b)


def test_report_with_a_profile_shows_it_as_a_source(calibrated, tmp_path):
    from physical.report.run import make_report

    root, r = calibrated
    rep = make_report(root / "captures", printouts=root / "printouts", out=tmp_path / "rep", simulated=str(r.out),
                      artificial=False)
    sources = {f["source"] for f in rep.figures}
    assert sources == {"photo", "simulated:channel-profile.json"}
    meta = json.loads((rep.out / "figures.json").read_text())
    assert meta["simulated"]["profile"] == str(r.out)
    assert meta["simulated"]["fitted_on"]["experiment_id"] == r.profile["fitted_on"]["experiment_id"]


def test_too_few_clean_crops_is_one_line_error(tmp_path):
    from conftest import build_small_experiment
    from physical.calibrate.run import calibrate

    root = build_small_experiment(tmp_path)
    with pytest.raises(PhysicalError, match=r"clean crops .* calibrate needs at least 20") as e:
        calibrate(root / "captures", printouts=root / "printouts")
    assert "\n" not in str(e.value)
    assert not (root / "captures" / "channel-profile.json").exists()


def test_a_profile_predicts_before_printing_and_the_cli_names_bad_ones(calibrated, tmp_path):
    """--simulated-only with a profile (figures for an experiment not yet printed), and one-line
    errors for a profile that is missing or not a profile."""
    from typer.testing import CliRunner

    from physical.cli import app
    from physical.report.run import make_report

    root, r = calibrated
    rep = make_report(root / "captures", printouts=root / "printouts", out=tmp_path / "before", simulated=str(r.out),
                      simulated_only=True, artificial=False)
    assert {f["source"] for f in rep.figures} == {"simulated:channel-profile.json"}
    runner = CliRunner()
    for spec, message in ((tmp_path / "nope.json", "no such profile"),
                          (root / "captures" / "ingest.json", "not a channel profile")):
        res = runner.invoke(app, ["report", "--captures", str(root / "captures"), "--printouts",
                                  str(root / "printouts"), "--simulated", str(spec), "--simulated-only",
                                  "--no-artificial", "--out", str(tmp_path / "x")])
        assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["calibrate", "--captures", str(root / "captures"), "--printouts",
                              str(root / "printouts"), "--out", str(tmp_path / "cli.json")])
    assert res.exit_code == 0, res.output
    assert "clean crops from" in res.output and (tmp_path / "cli.json").is_file()
    assert "converged in" in res.output and " steps, " in res.output


def test_an_unreadable_crop_is_one_line_error_naming_it(calibrated, tmp_path):
    import csv
    import shutil

    from physical.calibrate.run import calibrate

    root, _ = calibrated
    captures = tmp_path / "captures"
    shutil.copytree(root / "captures", captures)
    with open(captures / "index.csv", newline="", encoding="utf-8") as f:
        crop = next(r["crop"] for r in csv.DictReader(f) if r["variant"] == "clean")
    (captures / crop).write_bytes(b"not an image")
    with pytest.raises(PhysicalError, match="cannot read this image") as e:
        calibrate(captures, printouts=root / "printouts", out=tmp_path / "p.json")
    assert str(captures / crop) in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "p.json").exists()
