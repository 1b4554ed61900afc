"""Models: the :class:`Classifier` wrapper ([0, 1] in, logits out, normalisation inside),
the loaders of ``--model`` specs (``demo``, ``demo-adv``, ``demo-distilled``,
``torchvision:<name>``, ``robustbench:<name>``, TorchScript), the demo
network, and the preprocessing that turns an image file into what a model sees.
"""
from .classifier import Classifier, default_device, sha256_file
from .loaders import DEMO_MODELS, DEMO_WEIGHTS, imagenet_wnids, load_model
from .preprocess import open_rgb, preprocess, quantize_8bit, to_uint8

__all__ = ["Classifier", "DEMO_MODELS", "DEMO_WEIGHTS", "default_device", "imagenet_wnids", "load_model", "open_rgb",
           "preprocess", "quantize_8bit", "sha256_file", "to_uint8"]
