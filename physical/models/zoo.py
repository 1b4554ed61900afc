"""``--model robustbench:<name>``: a RobustBench model zoo entry, from a local folder, offline.

RobustBench (Croce et al. 2021) is the field's collection of defended models, keyed by
name, dataset and threat model. The spec is ``robustbench:<name>`` for a CIFAR-10 L-inf
entry (``robustbench:Carmon2019Unlabeled``), or ``robustbench:<dataset>/<threat>/<name>``
(``robustbench:imagenet/Linf/Wong2020Fast``, ``robustbench:cifar10/L2/Rice2020Overfitting``).
The weights are read from RobustBench's own layout,
``<model dir>/<dataset>/<threat>/<name>.pt`` (an ensemble: ``<name>.pt_m0.pt``, ...), where
``<model dir>`` is ``$PHYSICAL_ROBUSTBENCH_DIR`` or ``<torch hub dir>/robustbench``, or from
the file given with ``--weights``. Nothing is downloaded: RobustBench's ``load_model``
downloads what it does not find, so the file is looked for first, and a missing one is a
one-line error saying where to put it and how to fetch it.

The architecture is built by the robustbench package (``pip install -e ".[robustbench]"``);
its models take [0, 1] images and normalise inside, so the :class:`Classifier`'s own
normalisation is the identity. The preprocessing of an ImageNet entry (its
``preprocessing`` field) sets the input and resize sizes: ``Res256Crop224`` and
``BicubicRes256Crop224`` exactly; ``Crop288`` (a centre crop at the picture's own
resolution) and ``Res224`` (a square resize) become a resize of the shorter side and a
centre crop to the same input size, the one preprocessing this tool applies to every model.
"""
from __future__ import annotations

import importlib
import os
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from ..errors import PhysicalError
from .classifier import Classifier, sha256_file

DATASETS = ("cifar10", "imagenet")
THREATS = ("Linf", "L2", "corruptions")
# RobustBench's preprocessing names -> (input size, resize of the shorter side, interpolation)
PREPROCESSING = {None: (32, 32, "bilinear"), "Res256Crop224": (224, 256, "bilinear"),
                 "BicubicRes256Crop224": (224, 256, "bicubic"), "Crop288": (288, 288, "bilinear"),
                 "Res224": (224, 224, "bilinear")}
INSTALL = 'pip install -e ".[robustbench]"'


def parse_spec(rest: str) -> tuple[str, str, str]:
    """``"Name"`` or ``"dataset/threat/Name"`` -> (dataset, threat, name)."""
    parts = rest.split("/")
    if len(parts) == 1 and parts[0]:
        return "cifar10", "Linf", parts[0]
    if len(parts) == 3 and all(parts) and parts[0] in DATASETS and parts[1] in THREATS:
        return parts[0], parts[1], parts[2]
    raise PhysicalError(f"robustbench:{rest}: write robustbench:<name> (a CIFAR-10 L-inf entry) or "
                        f"robustbench:<dataset>/<threat>/<name> with dataset one of {', '.join(DATASETS)} "
                        f"and threat one of {', '.join(THREATS)}")


def model_dir() -> Path:
    """Where RobustBench checkpoints are looked for: ``$PHYSICAL_ROBUSTBENCH_DIR``, else
    ``<torch hub dir>/robustbench``."""
    env = os.environ.get("PHYSICAL_ROBUSTBENCH_DIR")
    return Path(env).expanduser() if env else Path(torch.hub.get_dir()) / "robustbench"


def _import_robustbench():
    try:
        if importlib.util.find_spec("autoattack") is None and importlib.util.find_spec("pyautoattack"):
            # robustbench 1.1.1 on PyPI imports `autoattack`, which its own dependency installs as `pyautoattack`.
            sys.modules["autoattack"] = importlib.import_module("pyautoattack")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import robustbench.utils
            from robustbench.model_zoo import model_dicts
            from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
    except ImportError as exc:
        raise PhysicalError(f"robustbench models need the robustbench extra ({exc.name or exc} is missing): "
                            f"{INSTALL}") from None
    return robustbench.utils, model_dicts, BenchmarkDataset, ThreatModel


def checkpoint_files(name: str, folder: Path, ensemble: int) -> list[Path]:
    """The files RobustBench's ``load_model`` reads for an entry in ``folder`` (one, or one per member)."""
    base = folder / f"{name}.pt"
    return [base] if not ensemble else [Path(f"{base}_m{i}.pt") for i in range(ensemble)]


def load_robustbench(rest: str, weights: Path | None = None) -> Classifier:
    """The Classifier of ``robustbench:<rest>`` (see the module docstring)."""
    dataset, threat, name = parse_spec(rest)
    utils, model_dicts, BenchmarkDataset, ThreatModel = _import_robustbench()
    entries = model_dicts[BenchmarkDataset(dataset)].get(ThreatModel(threat), {})
    if name not in entries:
        close = sorted(n for n in entries if n.lower().startswith(name[:4].lower()))[:5]
        raise PhysicalError(f"robustbench:{rest}: no such entry in RobustBench's {dataset} {threat} zoo"
                            + (f" (did you mean {', '.join(close)}?)" if close else
                               f" ({len(entries)} entries, e.g. {', '.join(list(entries)[:3])})"))
    entry = entries[name]
    ids = entry.get("gdrive_id")
    ensemble = len(ids) if isinstance(ids, list) else 0
    if dataset == "imagenet" and "Standard" in name:
        raise PhysicalError(f"robustbench:{rest} is torchvision's own weights: use torchvision:resnet50")
    lower = name.lower().replace("-", "_")
    timm_name = f"{lower}_{dataset}_{threat.lower()}"
    import timm

    folder = model_dir() / dataset / threat
    if weights is not None:
        if ensemble:
            raise PhysicalError(f"robustbench:{rest} is an ensemble of {ensemble} checkpoints: put them in "
                                f"{folder}/ instead of passing --weights")
        if not Path(weights).is_file():
            raise PhysicalError(f"--weights {weights}: no such file")
        files = [Path(weights)]
    else:
        files = checkpoint_files(name, folder, ensemble)
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise PhysicalError(
                f"weights for robustbench:{rest} not found: put {missing[0].name} in {folder}/ (robustbench "
                f"downloads it: python -c \"from robustbench import load_model; load_model('{name}', "
                f"model_dir='{model_dir()}', dataset='{dataset}', threat_model='{threat}')\"), or pass "
                "--weights FILE")
    n_classes = 1000 if dataset == "imagenet" else 10
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if timm.is_model(timm_name):
                # Hosted by timm: its create_model would download; build bare and read the local file.
                net = timm.create_model(timm_name, pretrained=False, num_classes=n_classes,
                                        checkpoint_path=str(files[0]))
            elif weights is not None:
                # RobustBench reads <dir>/<dataset>/<threat>/<name>.pt: give it that path to the user's file.
                with tempfile.TemporaryDirectory() as tmp:
                    link = Path(tmp) / dataset / threat / f"{name}.pt"
                    link.parent.mkdir(parents=True)
                    link.symlink_to(Path(weights).resolve())
                    net = utils.load_model(name, model_dir=tmp, dataset=dataset, threat_model=threat)
            else:
                net = utils.load_model(name, model_dir=str(model_dir()), dataset=dataset, threat_model=threat)
    except PhysicalError:
        raise
    except Exception as exc:  # pickle, zip and key mismatches all mean the same to the user
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise PhysicalError(f"{files[0]}: not robustbench:{rest}'s checkpoint ({first})") from None
    size, resize, interpolation = PREPROCESSING.get(entry.get("preprocessing"), PREPROCESSING["Res256Crop224"])
    if dataset == "imagenet":
        import torchvision

        from .imagenet import imagenet_wnids

        names, wnids = torchvision.models.ResNet50_Weights.DEFAULT.meta["categories"], imagenet_wnids()
    else:
        from .demo_net import CIFAR10_CLASSES

        names, wnids = CIFAR10_CLASSES, None
        size, resize = 32, 32
    model_id = f"robustbench:{name}" if (dataset, threat) == ("cifar10", "Linf") else f"robustbench:{rest}"
    digest = sha256_file(files[0]) if len(files) == 1 else _combined_sha256(files)
    return Classifier(net.eval(), model_id=model_id, class_names=names, input_size=(size, size), resize_size=resize,
                      mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0], weights_sha256=digest,
                      interpolation=interpolation, wnids=wnids)


def _combined_sha256(files: list[Path]) -> str:
    import hashlib

    h = hashlib.sha256()
    for f in files:
        h.update(sha256_file(f).encode())
    return h.hexdigest()
