"""SNR-Aware losses (dvlab-research/SNR-Aware-Low-Light-Enhance@1113144 `models/loss.py`; no LICENSE file).

* Charbonnier ``sqrt(d^2 + 1e-6)``: official ``CharbonnierLoss`` sums over every element of the batch
  (``reduction="sum"``, what the lr 4e-4 of every config was tuned with); ``"mean"`` is the official
  ``CharbonnierLoss2``.
* VGG19 perceptual loss: slices ending at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (torchvision
  ``features[:2], [2:7], [7:12], [12:21], [21:30]``), weights 1/32, 1/16, 1/8, 1/4, 1, L1 with sum
  reduction (``VGGLoss.forward``; ``"mean"`` is ``VGGLoss.forward2``). The official loss feeds the [0, 1]
  images to VGG without ImageNet normalisation, and so does this one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

REDUCTIONS = ("sum", "mean")
#: SNR:models/loss.py VGG19: slice boundaries in torchvision's vgg19.features, and VGGLoss.weights
VGG19_SLICES = (2, 7, 12, 21, 30)
VGG_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; allowed: {REDUCTIONS}")


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6, reduction: str = "sum") -> torch.Tensor:
    """``reduce(sqrt((pred - target)^2 + eps))`` (SNR:models/loss.py CharbonnierLoss / CharbonnierLoss2).

    Args:
        eps: added to the squared difference (the official 1e-6, i.e. eps^2 with eps = 1e-3).
        reduction: ``"sum"`` (official default) or ``"mean"``.
    """
    _check_reduction(reduction)
    diff = pred - target
    val = torch.sqrt(diff * diff + eps)
    return val.sum() if reduction == "sum" else val.mean()


class VGGPerceptualLoss(nn.Module):
    """SNR:models/loss.py VGGLoss on the frozen ``features`` of a torchvision VGG19 (see methods/vgg.py).

    Args:
        features: torchvision ``vgg19(...).features`` (at least 30 layers); kept frozen and in eval mode.
        reduction: L1 reduction per slice, ``"sum"`` (official ``forward``) or ``"mean"`` (``forward2``).
    """

    def __init__(self, features: nn.Sequential, reduction: str = "sum"):
        super().__init__()
        _check_reduction(reduction)
        if len(features) < VGG19_SLICES[-1]:
            raise ValueError(f"VGGPerceptualLoss needs vgg19.features (>= 30 layers), got {len(features)} layers")
        bounds = (0, *VGG19_SLICES)
        self.slices = nn.ModuleList(
            [nn.Sequential(*features[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        )
        self.reduction = reduction
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGPerceptualLoss:
        return super().train(False)  # always frozen, as torchvision's features in the official code

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """relu1_1 .. relu5_1 activations of ``x``."""
        out = []
        for block in self.slices:
            x = block(x)
            out.append(x)
        return out

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_feats = self.features(target)  # the official code detaches the target features
        loss = pred.new_zeros(())
        for w, a, b in zip(VGG_LAYER_WEIGHTS, self.features(pred), target_feats, strict=True):
            loss = loss + w * F.l1_loss(a, b, reduction=self.reduction)
        return loss
