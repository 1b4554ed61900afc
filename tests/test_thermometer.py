"""Thermometer encoding (Buckman et al. 2018): the code, its BPDA gradient, the network behind it."""
from __future__ import annotations

import torch

from physical.models.demo_net import CIFAR10_MEAN, CIFAR10_STD, ResNet20, build_net
from physical.models.thermometer import ThermometerNet, soft_thermometer, thermometer, thresholds


def test_the_code_is_the_value_in_unary_with_thresholds_between_levels():
    x = torch.tensor([0.0, 0.5, 1.0, 39 / 255]).view(1, 4, 1, 1)
    code = thermometer(x, 16).view(4, 16)
    assert code[0].sum() == 0 and code[2].sum() == 16
    assert code[1].tolist() == [1.0] * 8 + [0.0] * 8           # 0.5 >= (k + 1/2) / 16 for k <= 7
    assert code[3].tolist() == [1.0] * 2 + [0.0] * 14           # 39/255 = 0.153: above 1/32 and 3/32, below 5/32
    # No threshold is an 8-bit value: saving or printing an image cannot flip a bit by a hair.
    levels = thresholds(16).flatten() * 255
    assert ((levels - levels.round()).abs() > 0.01).all()


def test_the_backward_pass_is_the_soft_encodings_gradient():
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 48, 4, 4, dtype=torch.float64)
    (thermometer(x, 16) * w).sum().backward()
    ours = x.grad.clone()
    x.grad = None
    (soft_thermometer(x, 16) * w).sum().backward()
    assert torch.equal(ours, x.grad)
    assert ours.abs().sum() > 0                                   # a gradient BPDA can follow
    assert torch.autograd.gradcheck(lambda z: soft_thermometer(z, 4), (torch.rand(1, 1, 2, 2, dtype=torch.float64) * 0.9
                                                                       + 0.05).requires_grad_(True))


def test_the_network_takes_standardised_images_like_every_demo_net():
    torch.manual_seed(0)
    net = build_net("ResNet20", None, 16).eval()
    assert isinstance(net, ThermometerNet) and net.net.stem[0].in_channels == 48
    x01 = torch.rand(3, 3, 32, 32)
    mean, std = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(net((x01 - mean) / std), net.net(thermometer(x01, 16)), atol=1e-6)
    assert isinstance(net.net, ResNet20)
    # Its weights are the inner network's: the encoding has none.
    assert all(k.startswith("net.") for k in net.state_dict())
