"""ImageNet VGG feature extractors for perceptual losses (SNR-Aware: VGG19, EnlightenGAN: VGG16).

Weights never download at run time: they come from a configured file or torchvision's cache
(``$TORCH_HOME/hub/checkpoints``). When neither exists the run stops with a clear message, unless the
config opts into an untrained VGG (``allow_untrained_vgg: true``, smoke runs only); the trainer then
records ``untrained_vgg`` in its flags so every number trained that way is marked in the report.

A weights file may be torchvision's full state dict (``features.0.weight`` ...), a features-only one
(``0.weight`` ...) or a Caffe-style one with named convolutions (``conv1_1.weight`` ..., e.g. the
``vgg16.weight`` EnlightenGAN's README distributes), mapped onto the convolutions in order.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from torch import nn

#: torchvision's file names for the ImageNet weights (torchvision.models.VGG16_Weights / VGG19_Weights)
TORCHVISION_FILES = {"vgg16": "vgg16-397923af.pth", "vgg19": "vgg19-dcbb9e9d.pth"}
_CFG = {"vgg16": "D", "vgg19": "E"}  # torchvision.models.vgg.cfgs keys


def vgg_weights_path(arch: str, configured: str | None = None) -> Path | None:
    """Where the ImageNet weights of ``arch`` are: the configured file, else torchvision's cache, else None."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"vgg_weights: {path} does not exist (expected a {arch} state dict)")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[arch]
    return cached if cached.is_file() else None


def _features_state(state: dict[str, torch.Tensor], features: nn.Sequential, path: Path) -> dict[str, torch.Tensor]:
    """Map a torchvision / features-only / Caffe-named VGG state dict onto ``features``' keys."""
    if any(k.startswith("features.") for k in state):
        return {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    if all(re.fullmatch(r"\d+\.(weight|bias)", k) for k in state):
        return dict(state)
    named = sorted(
        (k for k in state if re.fullmatch(r"conv\d+_\d+\.(weight|bias)", k)),
        key=lambda k: tuple(int(n) for n in re.findall(r"\d+", k.split(".")[0])) + (k.endswith("bias"),),
    )
    convs = [i for i, m in enumerate(features) if isinstance(m, nn.Conv2d)]
    if len(named) != 2 * len(convs):
        raise ValueError(
            f"{path}: not a VGG state dict this model understands ({len(state)} keys, e.g. {list(state)[:3]})"
        )
    return {f"{convs[j // 2]}.{'bias' if k.endswith('bias') else 'weight'}": state[k] for j, k in enumerate(named)}


def vgg_features(arch: str, weights: str | None = None, allow_untrained: bool = False) -> tuple[nn.Sequential, bool]:
    """The frozen convolutional part of torchvision's ``arch`` and whether it carries ImageNet weights.

    Args:
        arch: ``vgg16`` or ``vgg19``.
        weights: path of a state dict (see the module docstring); ``None`` looks in torchvision's cache.
        allow_untrained: return randomly initialised (seeded) features instead of failing when no
            weights are found. For smoke runs only.

    Returns:
        (features in eval mode with ``requires_grad=False``, pretrained flag)
    """
    from torchvision.models.vgg import cfgs, make_layers

    if arch not in TORCHVISION_FILES:
        raise ValueError(f"unknown VGG architecture {arch!r}; allowed: {sorted(TORCHVISION_FILES)}")
    features = make_layers(cfgs[_CFG[arch]], batch_norm=False)  # no 120M-parameter classifier to build
    for m in features.modules():  # torchvision's VGG init for the convolutions
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    path = vgg_weights_path(arch, weights)
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        features.load_state_dict(_features_state(state, features, path))
        pretrained = True
    elif allow_untrained:
        warnings.warn(f"no ImageNet {arch} weights found: using an UNTRAINED {arch} (smoke runs only)", stacklevel=2)
        pretrained = False
    else:
        cache = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[arch]
        raise FileNotFoundError(
            f"the perceptual loss needs ImageNet {arch} weights: put torchvision's {TORCHVISION_FILES[arch]} at "
            f"{cache} or set 'vgg_weights: <file>' in the experiment's train overrides "
            f"(smoke configs may set 'allow_untrained_vgg: true')"
        )
    features.eval()
    for p in features.parameters():
        p.requires_grad_(False)
    return features, pretrained
