"""ImageNet VGG feature extractors for perceptual losses (SNR-Aware: VGG19, EnlightenGAN: VGG16).

Weights never download at run time: they come from a configured file or torchvision's cache
(``$TORCH_HOME/hub/checkpoints``). When neither exists the run stops with a clear message, unless the
config opts into an untrained VGG (``allow_untrained_vgg: true``, smoke runs only); the trainer then
records ``untrained_vgg`` in its flags so every number trained that way is marked in the report.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

#: torchvision's file names for the ImageNet weights (torchvision.models.VGG16_Weights / VGG19_Weights)
TORCHVISION_FILES = {"vgg16": "vgg16-397923af.pth", "vgg19": "vgg19-dcbb9e9d.pth"}


def vgg_weights_path(arch: str, configured: str | None = None) -> Path | None:
    """Where the ImageNet weights of ``arch`` are: the configured file, else torchvision's cache, else None."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"vgg_weights: {path} does not exist (expected torchvision's {arch} state dict)")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[arch]
    return cached if cached.is_file() else None


def vgg_features(arch: str, weights: str | None = None, allow_untrained: bool = False) -> tuple[nn.Sequential, bool]:
    """The frozen ``features`` part of torchvision's ``arch`` and whether it carries ImageNet weights.

    Args:
        arch: ``vgg16`` or ``vgg19``.
        weights: path of a torchvision state dict; ``None`` looks in torchvision's cache.
        allow_untrained: return randomly initialised (seeded) features instead of failing when no
            weights are found. For smoke runs only.

    Returns:
        (features in eval mode with ``requires_grad=False``, pretrained flag)
    """
    import torchvision

    if arch not in TORCHVISION_FILES:
        raise ValueError(f"unknown VGG architecture {arch!r}; allowed: {sorted(TORCHVISION_FILES)}")
    net = getattr(torchvision.models, arch)(weights=None)
    path = vgg_weights_path(arch, weights)
    if path is not None:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
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
    features = net.features.eval()
    for p in features.parameters():
        p.requires_grad_(False)
    return features, pretrained
