"""The local-intrinsic-dimensionality (LID) detector of adversarial images (Ma et al. 2018), its core.

An image's LID at a layer is estimated from the distances of its activations to their
k nearest neighbours among a reference set of clean images' activations (Ma et al.'s
maximum-likelihood estimator):

    LID(x) = -( (1/k) sum_{i=1..k} log(r_i(x) / r_k(x)) )^-1

with r_1 <= ... <= r_k the k smallest distances (an image of the reference set is not its
own neighbour). Adversarial images sit where the clean data is locally higher-dimensional,
so their LID is larger; the detector is a logistic regression on the LID of every layer
(here the output of every ``nn.ReLU`` module, then the logits), fitted on clean, noisy
(labelled clean) and adversarial pictures. The reference set is a fixed set of clean
pictures that the detector keeps (where Ma et al. used each minibatch of 100), so an image's
features do not depend on the order, or the company, it is scored in, and a photographed crop
is measured against the same neighbours as the training pictures were.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.optimize
import torch
from torch import Tensor, nn

from .sap import activation_modules

LID_K = 20          # Ma et al.'s neighbours (they took them within minibatches of 100)


def lid(query: Tensor, reference: Tensor, k: int = LID_K, exclude_self: bool = False) -> Tensor:
    """The MLE of each query point's LID among ``reference`` (module docstring).

    Shape: query (Q, D), reference (R, D) -> (Q,). ``exclude_self``: query i is reference i (Q == R),
    not its own neighbour. ValueError when fewer than k neighbours are left.
    """
    if reference.shape[0] - int(exclude_self) < k:
        raise ValueError(f"LID with k = {k} needs at least {k + int(exclude_self)} reference points, "
                         f"got {reference.shape[0]}")
    d = torch.cdist(query.double(), reference.double())
    if exclude_self:
        d.fill_diagonal_(torch.inf)
    return _mle(d, k)


def _mle(distances: Tensor, k: int) -> Tensor:
    """The LID estimate of each row from its k smallest distances. (Q, R) -> (Q,)."""
    r = distances.topk(k, dim=1, largest=False).values.clamp_min(1e-12)          # ascending
    return -1.0 / torch.log(r / r[:, -1:]).mean(dim=1).clamp(max=-1e-12)


def layer_activations(model: nn.Module, x: Tensor) -> list[Tensor]:
    """Every ``nn.ReLU`` module's output and the logits, each flattened: [(N, D_l)], in forward order.
    ValueError when the model has no ``nn.ReLU`` module to read."""
    modules = activation_modules(model)
    if not modules:
        raise ValueError("no nn.ReLU module to read activations from")
    seen: list[Tensor] = []
    handles = [m.register_forward_hook(lambda mod, inp, out: seen.append(out.detach().flatten(1)))
               for m in modules]
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return seen + [logits.detach().flatten(1)]


def lid_features(model: nn.Module, x: Tensor, reference: Tensor, k: int = LID_K,
                 batch_size: int = 100) -> Tensor:
    """Each image's LID at every layer (:func:`layer_activations`) among the clean ``reference`` images.

    Shape: x (N, 3, H, W), reference (R, 3, H, W), both in [0, 1] -> (N, L). An image identical to a
    reference image is not its own neighbour.
    """
    if reference.shape[0] <= k:
        raise ValueError(f"LID with k = {k} needs more than {k} reference images, got {reference.shape[0]}")
    ref = layer_activations(model, reference)
    ref_flat = reference.flatten(1)
    out = []
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size]
        acts = layer_activations(model, xb)
        # An image that is one of the references: its zero distance to itself is no neighbour.
        same = torch.cdist(xb.flatten(1).double(), ref_flat.double()) == 0
        cols = []
        for a, r in zip(acts, ref):
            d = torch.cdist(a.double(), r.double())
            d[same] = torch.inf
            cols.append(_mle(d, k))
        out.append(torch.stack(cols, dim=1))
    return torch.cat(out).float()


def training_features(model: nn.Module, reference: Tensor, clean: Tensor, noisy: Tensor, adversarial: Tensor,
                      k: int = LID_K) -> tuple[Tensor, np.ndarray]:
    """Ma et al.'s training set, against one fixed set of clean ``reference`` pictures (the detector keeps
    them, so that training and use see the same neighbours): the LID features of the clean, the noisy
    and the adversarial versions of other pictures. Returns the features (3N, L) and whether each row
    is adversarial (the noisy ones are not: noise alone must not be flagged).

    Shape: reference (R, 3, H, W); clean, noisy, adversarial (N, 3, H, W), row i of each the same picture.
    """
    feats = [lid_features(model, x, reference, k) for x in (clean, noisy, adversarial)]
    n = clean.shape[0]
    return torch.cat(feats), np.asarray([False] * (2 * n) + [True] * n)


@dataclass(frozen=True, eq=False)
class LIDDetector:
    """A logistic regression on standardised LID features, P(adversarial) = sigmoid(w . (f - mean) / std + b),
    and the clean reference pictures the features are measured against ((R, 3, H, W) uint8)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    reference: np.ndarray
    k: int = LID_K
    model_id: str = ""

    def reference_images(self) -> Tensor:
        """The reference pictures as (R, 3, H, W) floats in [0, 1]."""
        return torch.from_numpy(self.reference).float() / 255

    def score(self, features: Tensor | np.ndarray) -> np.ndarray:
        """P(adversarial) of each row of features (N, L) -> (N,)."""
        f = (np.asarray(features, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.std)
        return 1.0 / (1.0 + np.exp(-(f @ np.asarray(self.coef) + self.intercept)))

    def detect(self, model: nn.Module, x: Tensor) -> np.ndarray:
        """P(adversarial) of each image. Shape: x (N, 3, H, W) in [0, 1] -> (N,)."""
        return self.score(lid_features(model, x, self.reference_images().to(x.device), self.k))

    def save(self, path: Path) -> None:
        meta = {"format": "physical-lid-detector", "format_version": 1, "mean": self.mean, "std": self.std,
                "coef": self.coef, "intercept": self.intercept, "k": self.k, "model_id": self.model_id}
        with open(path, "wb") as f:
            np.savez_compressed(f, meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
                                reference=self.reference)

    @staticmethod
    def load(path: Path) -> "LIDDetector":
        try:
            with np.load(path) as z:
                meta = json.loads(z["meta"].tobytes().decode("utf-8"))
                reference = z["reference"]
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{path}: not an LID detector written by physical ({type(exc).__name__})") from None
        if meta.get("format") != "physical-lid-detector":
            raise ValueError(f"{path}: not an LID detector written by physical")
        return LIDDetector(tuple(meta["mean"]), tuple(meta["std"]), tuple(meta["coef"]), float(meta["intercept"]),
                           reference, int(meta["k"]), str(meta.get("model_id", "")))


def fit_detector(features: Tensor | np.ndarray, adversarial: Sequence[bool], reference: Tensor, l2: float = 1e-2,
                 k: int = LID_K, model_id: str = "") -> LIDDetector:
    """An L2-regularised logistic regression of ``adversarial`` on standardised ``features`` (N, L),
    fitted by L-BFGS (scipy) to the exact optimum of its convex loss; ``reference`` (R, 3, H, W) in
    [0, 1], on the 8-bit grid, the pictures the features were measured against."""
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(adversarial, dtype=np.float64)
    mean, std = f.mean(axis=0), f.std(axis=0) + 1e-12
    z = (f - mean) / std
    n = len(y)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        t = z @ w + b
        # log(1 + e^t) - y t, stably
        value = (np.logaddexp(0.0, t) - y * t).mean() + 0.5 * l2 * (w @ w)
        p = 1.0 / (1.0 + np.exp(-t))
        grad_w = z.T @ (p - y) / n + l2 * w
        return value, np.append(grad_w, (p - y).mean())

    res = scipy.optimize.minimize(loss, np.zeros(z.shape[1] + 1), jac=True, method="L-BFGS-B")
    ref = (reference.detach().cpu() * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    return LIDDetector(tuple(mean), tuple(std), tuple(res.x[:-1]), float(res.x[-1]), ref, k, model_id)


def threshold_at(scores: np.ndarray, flag_share: float = 0.05) -> float:
    """The score above which ``flag_share`` of these (clean) images are flagged."""
    return float(np.quantile(np.asarray(scores, dtype=np.float64), 1.0 - flag_share))


def roc_auc(clean: np.ndarray, adversarial: np.ndarray) -> float:
    """The area under the ROC curve: the chance a random adversarial image scores above a random clean one
    (ties count half)."""
    c, a = np.asarray(clean)[:, None], np.asarray(adversarial)[None, :]
    return float(((a > c).mean() + 0.5 * (a == c).mean()))
