"""VGG weights for perceptual losses: never downloaded, clear stop when absent, three file layouts."""

from __future__ import annotations

import pytest
import torch

from methods.vgg import vgg_features


@pytest.fixture
def no_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def test_missing_weights_stop_with_a_clear_message(no_cache):
    with pytest.raises(FileNotFoundError, match=r"needs ImageNet vgg19 weights: put torchvision's vgg19-dcbb9e9d\.pth"):
        vgg_features("vgg19")


def test_untrained_only_when_opted_in(no_cache):
    with pytest.warns(UserWarning, match="UNTRAINED vgg16"):
        feats, pretrained = vgg_features("vgg16", allow_untrained=True)
    assert not pretrained and not any(p.requires_grad for p in feats.parameters())
    assert sum(isinstance(m, torch.nn.Conv2d) for m in feats) == 13


def test_three_weight_layouts_load_the_same(no_cache, tmp_path):
    torch.manual_seed(0)
    ref, _ = vgg_features("vgg16", allow_untrained=True)
    convs = [i for i, m in enumerate(ref) if isinstance(m, torch.nn.Conv2d)]
    features_only = ref.state_dict()
    torchvision_full = {f"features.{k}": v for k, v in features_only.items()}
    torchvision_full["classifier.0.weight"] = torch.zeros(1)
    names = [f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, n + 1)]
    caffe = {}
    for name, idx in zip(names, convs, strict=True):
        caffe[f"{name}.weight"] = features_only[f"{idx}.weight"]
        caffe[f"{name}.bias"] = features_only[f"{idx}.bias"]
    x = torch.rand(1, 3, 32, 32)
    for i, state in enumerate((features_only, torchvision_full, caffe)):
        path = tmp_path / f"w{i}.pth"
        torch.save(state, path)
        feats, pretrained = vgg_features("vgg16", weights=str(path))
        assert pretrained and torch.equal(feats(x), ref(x))


def test_configured_file_must_exist(no_cache, tmp_path):
    with pytest.raises(FileNotFoundError, match="vgg_weights: .*nope.pth does not exist"):
        vgg_features("vgg16", weights=str(tmp_path / "nope.pth"))
