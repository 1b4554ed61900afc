"""Shared fixtures. Tests that need ../shared skip with a reason when it is absent."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from physical.models import load_model
from physical.sheets.pictures import load_pictures

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def demo_model():
    return load_model("demo", device="cpu")


@pytest.fixture(scope="session")
def demo_batch(demo_model):
    """The bundled pictures as (x (20, 3, 32, 32), y (20,))."""
    pictures, _ = load_pictures(demo_model)
    return torch.stack([p.image for p in pictures]), torch.tensor([p.label for p in pictures])


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"needs the shared data folder {SHARED} (absent here)")
    return SHARED


def build_small_experiment(folder: Path) -> Path:
    """A small real experiment in ``folder``: 4 pictures, fast and ll at eps 8, one simulated photo, ingested."""
    from physical.capture.camera import simulate_photos
    from physical.capture.run import ingest
    from physical.sheets.run import make_sheets

    make_sheets(folder / "printouts", count=4, eps=[8], methods=["fast", "ll"])
    simulate_photos(folder / "printouts", folder / "photos", seed=3)
    ingest(folder / "photos", printouts=folder / "printouts", out=folder / "captures")
    return folder


@pytest.fixture(autouse=True)
def _offline_hub(tmp_path_factory, monkeypatch):
    # Point the torch hub cache at an empty folder so no test depends on (or
    # writes to) the user's cache: a missing-weights error must be reproducible.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-home")))
