"""Model specs: demo, torchvision names with offline weights, TorchScript files."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from typer.testing import CliRunner

from physical.cli import app
from physical.errors import PhysicalError
from physical.sheets.manifest import read_manifest
from physical.models import load_model, sha256_file
from physical.sheets.pictures import label_resolver, load_pictures

runner = CliRunner()


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory) -> Path:
    """A resnet18 with random weights saved as a state dict, as a user's download would be."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18-random.pth"
    torch.save(torchvision.models.resnet18(num_classes=1000).state_dict(), path)
    return path


def _photos(root: Path, folders: list[str], size=(260, 340)) -> Path:
    rng = np.random.default_rng(0)
    for name in folders:
        (root / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / name / "photo.jpg")
    return root


def test_demo_model_wrapper(demo_model):
    assert demo_model.input_size == (32, 32)
    assert demo_model.class_names[3] == "cat"
    assert not demo_model.training
    assert all(not p.requires_grad for p in demo_model.parameters())
    logits = demo_model(torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 10)


def test_the_adversarially_trained_demo_is_bundled_and_resists_the_basic_iterative_method(demo_model, demo_batch):
    # On the 20 bundled pictures: demo-adv gives up some clean accuracy (14 right against demo's 16) and keeps
    # far more under the basic iterative method at eps 8 (6 right on the run that bundled it; demo keeps 1).
    from safetensors import safe_open

    from physical.attacks import attack_grid
    from physical.models.loaders import DEMO_MODELS

    adv = load_model("demo-adv", device="cpu")
    assert adv.model_id == "demo-adv" and adv.weights_sha256 != demo_model.weights_sha256
    with safe_open(str(resources.files("physical") / "data" / DEMO_MODELS["demo-adv"][0]), "pt") as f:
        assert f.metadata()["defense"].startswith("adversarial training, PGD-2")
    x, y = demo_batch
    right = {}
    for model in (demo_model, adv):
        bim = attack_grid(model, x, y, [8 / 255], ["bim"])[("bim", 8 / 255)]
        with torch.no_grad():
            right[model.model_id] = (int((model(x).argmax(1) == y).sum()), int((model(bim).argmax(1) == y).sum()))
    assert right["demo"][0] == 16 and right["demo-adv"][0] == 14
    assert right["demo"][1] <= 2 and right["demo-adv"][1] >= 5, right


def test_the_distilled_demo_is_bundled_and_masks_its_gradients(demo_model, demo_batch):
    # Defensive distillation at T = 100, evaluated at T = 1: the softmax saturates, so the cross-entropy
    # gradients the fast and basic iterative methods follow vanish, and neither changes one of the 15 pictures it
    # gets right (demo keeps 10 and 1). Carlini-Wagner, on the logits, sees through the masking: it fools all 15.
    from physical.attacks import attack_grid
    from physical.attacks.cw import cw

    dist = load_model("demo-distilled", device="cpu")
    assert dist.model_id == "demo-distilled" and dist.weights_sha256 != demo_model.weights_sha256
    x, y = demo_batch
    with torch.no_grad():
        right = dist(x).argmax(1) == y
    assert int(right.sum()) == 15
    grid = attack_grid(dist, x[right], y[right], [8 / 255], ["fast", "bim"])
    with torch.no_grad():
        kept = {m: int((dist(grid[(m, 8 / 255)]).argmax(1) == y[right]).sum()) for m in ("fast", "bim")}
        adv = cw(dist, x[right], y[right])
        fooled = int((dist(adv).argmax(1) != y[right]).sum())
    assert kept == {"fast": 15, "bim": 15}
    assert fooled == 15


def test_the_vgg_demo_is_bundled_another_architecture_that_the_demos_examples_partly_fool(demo_model, demo_batch):
    # Madry et al.'s source B: a naturally trained network of another architecture. On the 20 bundled pictures
    # it gets 15 right; demo's basic iterative examples at eps 8 (demo keeps 1) leave it 8 (transfer, partial).
    from physical.attacks import attack_grid
    from physical.models.demo_net import SmallVGG

    vgg = load_model("demo-vgg", device="cpu")
    assert isinstance(vgg.net, SmallVGG) and vgg.weights_sha256 != demo_model.weights_sha256
    x, y = demo_batch
    bim = attack_grid(demo_model, x, y, [8 / 255], ["bim"])[("bim", 8 / 255)]
    with torch.no_grad():
        right = [int((m(z).argmax(1) == y).sum()) for m, z in ((vgg, x), (vgg, bim), (demo_model, bim))]
    assert right == [15, 8, 1]


def test_torchvision_with_weights_file(resnet18_file):
    model = load_model("torchvision:resnet18", weights=resnet18_file, device="cpu")
    assert model.model_id == "torchvision:resnet18"
    assert model.input_size == (224, 224) and model.resize_size == 256
    assert model.class_names[0] == "tench" and len(model.class_names) == 1000
    assert model.weights_sha256 == sha256_file(resnet18_file)
    # Normalisation lives inside the wrapper: same logits as the bare net on normalised input.
    net = torchvision.models.resnet18(num_classes=1000)
    net.load_state_dict(torch.load(resnet18_file, weights_only=True))
    net.eval()
    x = torch.rand(1, 3, 224, 224)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net((x - mean) / std))


def test_inception_v3_builds_like_torchvision():
    # No weights file here: check the architecture we build accepts a state
    # dict of torchvision's pretrained layout (aux classifier, transform_input).
    net = torchvision.models.inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    path = Path(torch.hub.get_dir()) / "inception-test.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    model = load_model("torchvision:inception_v3", weights=path, device="cpu")
    assert model.input_size == (299, 299) and model.resize_size == 342
    assert model.net.transform_input


def test_missing_weights_one_line_error():
    with pytest.raises(PhysicalError) as info:
        load_model("torchvision:resnet50", device="cpu")
    msg = str(info.value)
    assert "\n" not in msg
    assert "resnet50-" in msg and "checkpoints" in msg and "--weights" in msg
    result = runner.invoke(app, ["make-sheets", "--model", "torchvision:resnet50"])
    assert result.exit_code != 0 and result.stderr.startswith("error: weights for torchvision:resnet50 not found")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("spec, needle", [("torchvision:notanet", "unknown torchvision model"),
                                          ("nosuchfile.pt", "unknown model")])
def test_bad_model_specs(spec, needle):
    with pytest.raises(PhysicalError, match=needle):
        load_model(spec, device="cpu")


def test_weights_that_do_not_match(tmp_path, resnet18_file):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"garbage")
    with pytest.raises(PhysicalError, match="not a PyTorch state dict"):
        load_model("torchvision:resnet18", weights=junk, device="cpu")
    with pytest.raises(PhysicalError, match="does not match torchvision:resnet34"):
        load_model("torchvision:resnet34", weights=resnet18_file, device="cpu")


def test_make_sheets_with_torchvision_model(tmp_path, resnet18_file):
    # Sub-folders named by wnid and by class name both resolve to ImageNet indices.
    root = _photos(tmp_path / "pics", ["n01440764", "goldfish"])
    out = tmp_path / "printouts"
    result = runner.invoke(app, ["make-sheets", "--model", "torchvision:resnet18", "--weights", str(resnet18_file),
                                 "--images", str(root), "--eps", "2,4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    m = read_manifest(out)
    assert m["model"]["id"] == "torchvision:resnet18"
    assert [(r["label"], r["label_name"]) for r in m["images"]] == [(1, "goldfish"), (0, "tench")]
    png = Image.open(out / m["images"][0]["variants"][0]["file"])
    assert png.size == (224, 224)
    assert len(m["images"][0]["variants"]) == 1 + 3 * 2


def test_torchscript_model_with_sidecar(tmp_path, demo_model):
    scripted = torch.jit.trace(demo_model.net, torch.rand(1, 3, 32, 32))
    path = tmp_path / "cifar.pt"
    scripted.save(str(path))
    (tmp_path / "cifar.pt.json").write_text(
        '{"input_size": [32, 32], "resize_size": 32, "class_names": %s, "mean": %s, "std": %s}' % (
            str(demo_model.class_names).replace("'", '"'), demo_model.mean.flatten().tolist(),
            demo_model.std.flatten().tolist()))
    model = load_model(str(path), device="cpu")
    assert model.class_names == demo_model.class_names and model.input_size == (32, 32)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), demo_model(x))


def test_label_resolver_accepts_names_wnids_and_indices(resnet18_file):
    model = load_model("torchvision:resnet18", weights=resnet18_file, device="cpu")
    resolve = label_resolver(model)
    assert resolve("tench") == 0 and resolve("n01443537") == 1 and resolve("2") == 2
    assert resolve("great_white_shark") == 2 and resolve("Great White Shark") == 2
    assert resolve("1000") is None and resolve("dragon") is None


# ---- with ../shared ----

@pytest.mark.shared
def test_demo_model_accuracy_on_cifar10_test_set(shared_dir, demo_model):
    pictures, source = load_pictures(demo_model, shared_dir / "data" / "cifar10" / "test")
    assert source == "folder" and len(pictures) == 10_000
    x = torch.stack([p.image for p in pictures])
    y = torch.tensor([p.label for p in pictures])
    with torch.no_grad():
        pred = torch.cat([demo_model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    accuracy = (pred == y).float().mean().item()
    assert accuracy >= 0.88, accuracy


@pytest.mark.shared
def test_imagenet_samples_with_their_labels_csv(shared_dir, resnet18_file, tmp_path):
    folder = shared_dir / "data" / "imagenet-samples"
    out = tmp_path / "printouts"
    result = runner.invoke(app, ["make-sheets", "--model", "torchvision:resnet18", "--weights", str(resnet18_file),
                                 "--images", str(folder), "--labels", str(folder / "labels.csv"),
                                 "--count", "3", "--seed", "1", "--eps", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    import csv
    truth = {r["file"]: int(r["class_index"]) for r in csv.DictReader(open(folder / "labels.csv"))}
    m = read_manifest(out)
    assert len(m["images"]) == 3
    for rec in m["images"]:
        assert rec["label"] == truth[rec["source"]]


# ---------------------------------------------------------------- RobustBench, offline

RB_NAME = "Addepalli2021Towards_RN18"   # a ResNet-18 entry of the CIFAR-10 L-inf zoo: small enough to save in a test


@pytest.fixture(scope="module")
def robustbench_dir(tmp_path_factory):
    """A model folder in RobustBench's layout holding one checkpoint of the architecture the robustbench
    package builds (random weights: the loader is under test, not the defense), saved as RobustBench's
    checkpoints are ({'state_dict': ...} with DataParallel's 'module.' prefix)."""
    from physical.models.zoo import _import_robustbench

    try:
        _, model_dicts, BenchmarkDataset, ThreatModel = _import_robustbench()
    except PhysicalError as exc:
        pytest.skip(f"the robustbench extra is not installed ({exc})")
    torch.manual_seed(0)
    net = model_dicts[BenchmarkDataset("cifar10")][ThreatModel("Linf")][RB_NAME]["model"]().eval()
    root = tmp_path_factory.mktemp("rb")
    folder = root / "cifar10" / "Linf"
    folder.mkdir(parents=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, folder / f"{RB_NAME}.pt")
    return root, net


def test_robustbench_model_loads_offline_from_the_local_folder(robustbench_dir, monkeypatch):
    root, net = robustbench_dir
    monkeypatch.setenv("PHYSICAL_ROBUSTBENCH_DIR", str(root))
    import robustbench.utils
    for module, name in ((torch.hub, "load_state_dict_from_url"), (robustbench.utils, "download_gdrive_new")):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("the loader tried to download"))
    m = load_model(f"robustbench:{RB_NAME}", device="cpu")
    assert m.model_id == f"robustbench:{RB_NAME}" and m.input_size == (32, 32) and len(m.class_names) == 10
    assert m.weights_sha256 == sha256_file(root / "cifar10" / "Linf" / f"{RB_NAME}.pt")
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        # RobustBench's models take [0, 1] images: the wrapper's normalisation is the identity
        assert torch.allclose(m(x), net(x), atol=1e-5)
    # The same file passed with --weights, from anywhere, gives the same model
    monkeypatch.setenv("PHYSICAL_ROBUSTBENCH_DIR", str(root / "elsewhere"))
    w = load_model(f"robustbench:cifar10/Linf/{RB_NAME}", weights=root / "cifar10" / "Linf" / f"{RB_NAME}.pt",
                   device="cpu")
    with torch.no_grad():
        assert torch.allclose(w(x), net(x), atol=1e-5)


def test_robustbench_errors_say_where_the_weights_go(robustbench_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("PHYSICAL_ROBUSTBENCH_DIR", str(tmp_path / "models"))
    with pytest.raises(PhysicalError) as err:
        load_model(f"robustbench:{RB_NAME}", device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and f"{RB_NAME}.pt" in msg and str(tmp_path / "models" / "cifar10" / "Linf") in msg
    assert not (tmp_path / "models").exists()          # nothing downloaded, nothing created
    with pytest.raises(PhysicalError, match="no such entry.*Carmon2019Unlabeled"):
        load_model("robustbench:Carmon2019Unlabled", device="cpu")
    with pytest.raises(PhysicalError, match="robustbench:<dataset>/<threat>/<name>"):
        load_model("robustbench:mnist/Linf/X", device="cpu")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(PhysicalError, match="not robustbench"):
        load_model(f"robustbench:{RB_NAME}", weights=bad, device="cpu")


def test_robustbench_without_the_extra_names_it(monkeypatch):
    import sys
    for mod in [m for m in sys.modules if m == "robustbench" or m.startswith("robustbench.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "robustbench", None)      # import robustbench -> ImportError
    with pytest.raises(PhysicalError, match=r'pip install -e "\.\[robustbench\]"'):
        load_model("robustbench:Carmon2019Unlabeled", device="cpu")
