"""ImageNet's class ids, shared by every loader of an ImageNet model."""
from __future__ import annotations

from importlib import resources


def imagenet_wnids() -> list[str]:
    """The 1000 ILSVRC-2012 synset ids in class-index order (sorted wnids)."""
    text = resources.files("physical").joinpath("data/imagenet_wnids.txt").read_text()
    return text.split()
