"""Named-layer activations (patchbook.features)."""

import pytest
import torch
import torchvision

from patchbook.features import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LayerFeatures,
    layer_names,
    trunk,
)


def test_layer_names_match_the_torchvision_modules():
    for arch, model in (("vgg16", torchvision.models.vgg16), ("alexnet", torchvision.models.alexnet)):
        names = layer_names(arch)
        mods = list(model(weights=None).features)
        assert len(names) == len(mods)
        for n, m in zip(names, mods):
            kind = {"conv": torch.nn.Conv2d, "relu": torch.nn.ReLU, "pool": torch.nn.MaxPool2d}[n[:4].rstrip("0123456789_")]
            assert isinstance(m, kind), (n, m)


def test_random_alexnet_activations_equal_torchvision_applied_by_hand():
    torch.manual_seed(7)
    ref = torchvision.models.alexnet(weights=None).features.eval()
    f = LayerFeatures(["relu2", "conv3"], arch="alexnet", weights="random", seed=7)
    x = torch.rand(2, 3, 64, 64)
    h = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        want = {"relu2": ref[:5](h), "conv3": ref[:7](h)}
        got = f(x)
    assert set(got) == {"relu2", "conv3"}
    for k in want:
        torch.testing.assert_close(got[k], want[k])
    assert len(f.net) == 7  # stops after the deepest layer asked for


def test_random_weights_leave_the_global_generator_alone():
    torch.manual_seed(0)
    a = torch.rand(1)
    torch.manual_seed(0)
    trunk("alexnet", "relu1", weights="random", seed=3)
    assert torch.equal(torch.rand(1), a)


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="choose from"):
        LayerFeatures(["relu9_9"], arch="vgg16", weights="random")
    with pytest.raises(ValueError, match="arch"):
        layer_names("resnet")
    with pytest.raises(ValueError, match="weights"):
        trunk("alexnet", weights="pretrained")
