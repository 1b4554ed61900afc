"""scripts/train_demo.py's defenses: adversarial training's inner attack and defensive distillation."""
from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def train_demo():
    spec = importlib.util.spec_from_file_location("train_demo", REPO / "scripts" / "train_demo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("method, bound", [("pgd2", 1), ("fgsm-rs", 1), ("nfgsm", 3)])
def test_the_training_attack_stays_in_its_ball_and_the_box_and_raises_the_loss(train_demo, demo_model, demo_batch,
                                                                               method, bound):
    x, y = demo_batch
    net = demo_model.net
    eps = 8 / 255
    adv = train_demo.TRAINING_ATTACKS[method](net, x, y, eps, torch.Generator().manual_seed(0))
    # PGD and FGSM-RS project to the eps-ball; N-FGSM does not, by design: noise of 2 eps and a step of eps
    assert float((adv - x).abs().max()) <= bound * eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert float((adv - x).abs().mean()) > eps / 2

    def loss(z):
        with torch.no_grad():
            return F.cross_entropy(net(train_demo.standardise(z)), y)

    noise = (x + (torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1) * eps).clamp(0, 1)
    assert loss(adv) > loss(noise) + 0.5                     # adversarial, not just noise
    assert train_demo.pgd_accuracy(net, (x * 255).round().to(torch.uint8), y, eps) < 0.2


def test_the_overfitting_guard_fires_on_the_collapse_a_real_run_showed(train_demo):
    # Width 16, eps 8, 2 cores: guard PGD-10 0.189 after epoch 1, 0.000 after epoch 2 (and after every
    # later one, while the training loss on FGSM examples fell to 0.13).
    assert train_demo.overfitted(0.000, 0.189)
    assert train_demo.overfitted(0.25, 0.50) and not train_demo.overfitted(0.40, 0.45)
    assert not train_demo.overfitted(0.189, 0.189)


def test_distillation_targets_are_the_teachers_softmax_at_the_temperature(train_demo, demo_model, demo_batch):
    x, _ = demo_batch
    xb = train_demo.standardise(x)
    net = demo_model.net
    for t in (1.0, 100.0):
        soft = train_demo.soft_targets(net, xb, t)
        with torch.no_grad():
            assert torch.allclose(soft, F.softmax(net(xb) / t, 1))
    # At T = 100 the labels are soft (the information distillation passes on), at T = 1 hard.
    entropy = lambda p: float(-(p * p.clamp_min(1e-12).log()).sum(1).mean())   # noqa: E731
    assert entropy(train_demo.soft_targets(net, xb, 100.0)) > 0.95 * torch.log(torch.tensor(10.0))
    assert entropy(train_demo.soft_targets(net, xb, 1.0)) < 1.0


def _tiny_cifar(folder: Path) -> Path:
    """The bundled pictures as a CIFAR-10 ImageFolder (train and test alike), JPEG like ../shared's."""
    from PIL import Image

    for split in ("train", "test"):
        for png in sorted((REPO / "physical" / "data" / "samples").glob("*.png")):
            out = folder / split / png.stem.rsplit("_", 1)[0]
            out.mkdir(parents=True, exist_ok=True)
            for k in range(3):     # three copies: enough for a batch and the overfitting guard
                Image.open(png).convert("RGB").save(out / f"{png.stem}_{k}.jpg", quality=95)
    return folder


def _train(train_demo, monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["train_demo.py", *args])
    train_demo.main()


def test_tiny_runs_write_the_defense_they_name(train_demo, tmp_path, monkeypatch):
    data = _tiny_cifar(tmp_path / "cifar")
    common = ["--data", str(data), "--epochs", "1", "--batch", "16", "--width", "8", "--warmup-epochs", "1"]
    _train(train_demo, monkeypatch, *common, "--adv-eps", "8", "--work-dir", str(tmp_path / "w1"),
           "--out", str(tmp_path / "adv.safetensors"))
    _train(train_demo, monkeypatch, *common, "--temperature", "20", "--work-dir", str(tmp_path / "w2"),
           "--out", str(tmp_path / "teacher.safetensors"))
    _train(train_demo, monkeypatch, *common, "--temperature", "20", "--teacher", str(tmp_path / "teacher.safetensors"),
           "--work-dir", str(tmp_path / "w3"), "--out", str(tmp_path / "student.safetensors"))
    meta = {}
    for name in ("adv", "teacher", "student"):
        with safe_open(str(tmp_path / f"{name}.safetensors"), "pt") as f:
            meta[name] = f.metadata()
        assert meta[name]["width"] == "8" and meta[name]["label_smoothing"] == "0.0"
    assert meta["adv"]["defense"].startswith("adversarial training, PGD-2 (Madry et al. 2018")
    assert "eps 8/255" in meta["adv"]["defense"]
    assert meta["teacher"]["defense"] == "trained at temperature 20"
    assert meta["student"]["defense"] == "defensive distillation at T = 20 from teacher.safetensors"
    assert train_demo.load_net(tmp_path / "student.safetensors").stem[0].out_channels == 8
    shutil.rmtree(data)


def test_the_halves_are_disjoint_and_cover_the_training_set(train_demo):
    a, b = train_demo.training_half(1001, 0), train_demo.training_half(1001, 1)
    assert len(a) == 500 and len(b) == 501
    assert sorted(torch.cat([a, b]).tolist()) == list(range(1001))
    assert torch.equal(a, train_demo.training_half(1001, 0))          # the same split every time


def test_a_tiny_vgg_on_one_half_records_its_architecture_and_loads_back(train_demo, tmp_path, monkeypatch):
    from physical.models.demo_net import SmallVGG

    data = _tiny_cifar(tmp_path / "cifar")
    _train(train_demo, monkeypatch, "--data", str(data), "--epochs", "1", "--batch", "16", "--warmup-epochs", "1",
           "--arch", "SmallVGG", "--width", "8", "--half", "1", "--work-dir", str(tmp_path / "w"),
           "--out", str(tmp_path / "vgg.safetensors"))
    with safe_open(str(tmp_path / "vgg.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["architecture"] == "SmallVGG" and meta["width"] == "8"
    assert meta["dataset"].endswith("training half 1 (split seed 54321)")
    net = train_demo.load_net(tmp_path / "vgg.safetensors")
    assert isinstance(net, SmallVGG) and net.features[0].out_channels == 8
    shutil.rmtree(data)


def test_a_tiny_thermometer_model_records_its_encoding_and_loads_back(train_demo, tmp_path, monkeypatch):
    from physical.models.thermometer import ThermometerNet

    data = _tiny_cifar(tmp_path / "cifar")
    _train(train_demo, monkeypatch, "--data", str(data), "--epochs", "1", "--batch", "16", "--warmup-epochs", "1",
           "--width", "8", "--thermometer", "16", "--work-dir", str(tmp_path / "w"),
           "--out", str(tmp_path / "t.safetensors"))
    with safe_open(str(tmp_path / "t.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["thermometer"] == "16" and meta["defense"] == "thermometer encoding, 16 levels"
    net = train_demo.load_net(tmp_path / "t.safetensors")
    assert isinstance(net, ThermometerNet) and net.net.stem[0].in_channels == 48
    shutil.rmtree(data)
