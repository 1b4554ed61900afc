"""Loading a classifier from a ``--model`` spec, offline, wrapped in a :class:`Classifier`.

Model specs (``--model``):

- ``demo``: the bundled ResNet-20 trained on CIFAR-10 (``scripts/train_demo.py``);
  ``demo-adv`` (adversarially trained, L-inf eps 8/255) and ``demo-distilled`` (defensive
  distillation) are its defended twins, bundled the same way (:data:`DEMO_MODELS`).
- ``robustbench:<name>``: a RobustBench model zoo entry from a local folder (:mod:`.zoo`).
- ``torchvision:<name>``: a torchvision classifier with its default ImageNet
  weights, read offline from the torch hub cache or from ``weights``.
- a path to a TorchScript file (optionally with a ``<file>.json`` sidecar).
"""
from __future__ import annotations

import json
import warnings
from importlib import resources
from pathlib import Path

import torch

from ..errors import PhysicalError
from .classifier import Classifier, default_device, sha256_file
from .imagenet import imagenet_wnids

DEMO_WEIGHTS = "demo_resnet20.safetensors"
# The bundled CIFAR-10 models: spec -> (weights file in physical/data, how to train it again).
DEMO_MODELS = {
    "demo": (DEMO_WEIGHTS, "scripts/train_demo.py"),
    "demo-adv": ("demo_adv_resnet20.safetensors", "scripts/train_demo.py --adv-eps 8"),
    "demo-distilled": ("demo_distilled_resnet20.safetensors",
                       "scripts/train_demo.py --temperature 100 --teacher TEACHER"),
    "demo-vgg": ("demo_vgg.safetensors", "scripts/train_demo.py --arch SmallVGG"),
}


def load_model(spec: str = "demo", weights: Path | None = None,
               device: str | torch.device | None = None) -> Classifier:
    """Load a classifier from a ``--model`` spec (see the module docstring)."""
    device = torch.device(device) if device is not None else default_device()
    if spec in DEMO_MODELS:
        if weights is not None:
            raise PhysicalError(f"--weights applies to torchvision and robustbench models; {spec} is bundled")
        model = _load_demo(spec)
    elif spec.startswith("robustbench:"):
        from .zoo import load_robustbench

        model = load_robustbench(spec.split(":", 1)[1], weights)
    elif spec.startswith("torchvision:"):
        model = _load_torchvision(spec.split(":", 1)[1], weights)
    else:
        path = Path(spec)
        if not path.exists():
            raise PhysicalError(
                f"unknown model '{spec}': use {', '.join(DEMO_MODELS)}, 'torchvision:<name>' (e.g. "
                "torchvision:inception_v3), 'robustbench:<name>' or the path of a TorchScript file")
        model = _load_torchscript(path)
    return model.to(device)


def _load_demo(spec: str = "demo") -> Classifier:
    from safetensors import safe_open
    from safetensors.torch import load_file

    from .demo_net import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, build_net

    file, how = DEMO_MODELS[spec]
    ref = resources.files("physical").joinpath(f"data/{file}")
    with resources.as_file(ref) as path:
        if not path.exists():
            raise PhysicalError(
                f"the {spec} model's weights are missing ({path}); reinstall physical, "
                f"or train them with {how}")
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        net = build_net(meta.get("architecture", "ResNet20"), int(meta["width"]) if "width" in meta else None,
                        int(meta.get("thermometer", 0)))
        net.load_state_dict(load_file(str(path)))
        digest = sha256_file(path)
    return Classifier(net, model_id=spec, class_names=CIFAR10_CLASSES, input_size=(32, 32),
                      resize_size=32, mean=CIFAR10_MEAN, std=CIFAR10_STD,
                      weights_sha256=digest, interpolation="bilinear")


# Constructor arguments that torchvision's own builders set when they load
# pretrained weights; building with weights=None must match the state dict.
_PRETRAINED_KWARGS = {
    "inception_v3": {"aux_logits": True, "transform_input": True, "init_weights": False},
    "googlenet": {"aux_logits": True, "transform_input": True, "init_weights": False},
}


def _load_torchvision(name: str, weights: Path | None) -> Classifier:
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise PhysicalError(
            f"unknown torchvision model '{name}'; choose a classifier such as inception_v3, resnet50 "
            f"or vit_b_16 (all: {', '.join(available[:6])}, ...)")
    enum = torchvision.models.get_model_weights(name).DEFAULT
    if weights is None:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
        if not cached.exists():
            raise PhysicalError(
                f"weights for torchvision:{name} not found: put {Path(enum.url).name} "
                f"(from {enum.url}) in {cached.parent}/, or pass --weights FILE")
        weights = cached
    elif not Path(weights).is_file():
        raise PhysicalError(f"--weights {weights}: no such file")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and format errors all mean the same to the user
        raise PhysicalError(f"{weights}: not a PyTorch state dict ({type(exc).__name__}); "
                            f"pass the weights file of torchvision:{name}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    categories = enum.meta["categories"]
    net = torchvision.models.get_model(name, weights=None, num_classes=len(categories),
                                       **_PRETRAINED_KWARGS.get(name, {}))
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PhysicalError(f"{weights}: does not match torchvision:{name} ({first})") from None
    t = enum.transforms()
    return Classifier(net, model_id=f"torchvision:{name}", class_names=categories,
                      input_size=(t.crop_size[0], t.crop_size[0]), resize_size=t.resize_size[0],
                      mean=t.mean, std=t.std, weights_sha256=sha256_file(Path(weights)),
                      interpolation=t.interpolation.value, wnids=imagenet_wnids())


def _load_torchscript(path: Path) -> Classifier:
    try:
        with warnings.catch_warnings():
            # TorchScript is deprecated upstream but still the portable format users have.
            warnings.simplefilter("ignore", FutureWarning)
            net = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise PhysicalError(f"{path}: not a TorchScript file ({type(exc).__name__}); "
                            "save your model with torch.jit.script(model).save(path)") from None
    sidecar = Path(str(path) + ".json")
    meta: dict = {}
    if sidecar.exists():
        try:
            meta = json.loads(sidecar.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PhysicalError(f"{sidecar}: not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})") from None
    size = meta.get("input_size", [224, 224])
    input_size = (int(size[0]), int(size[1])) if isinstance(size, list) else (int(size), int(size))
    with torch.no_grad():
        n_out = net(torch.zeros(1, 3, *input_size)).shape[-1]
    names = meta.get("class_names")
    wnids = None
    if names is None and n_out == 1000:
        import torchvision

        names = torchvision.models.ResNet50_Weights.DEFAULT.meta["categories"]
        wnids = imagenet_wnids()
    if names is None:
        names = [str(i) for i in range(n_out)]
    if len(names) != n_out:
        raise PhysicalError(f"{sidecar}: lists {len(names)} class names but the model has {n_out} outputs")
    return Classifier(net, model_id=f"torchscript:{path.name}", class_names=names,
                      input_size=input_size,
                      resize_size=int(meta.get("resize_size", round(input_size[0] * 256 / 224))),
                      mean=meta.get("mean", [0.0, 0.0, 0.0]), std=meta.get("std", [1.0, 1.0, 1.0]),
                      weights_sha256=sha256_file(path), interpolation="bilinear", wnids=wnids)
