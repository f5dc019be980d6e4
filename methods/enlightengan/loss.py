"""EnlightenGAN losses: RaLSGAN (global D), LSGAN (local D), self feature preserving loss, patch sampling.

Re-implemented from VITA-Group/EnlightenGAN@b034984 (BSD-style license): ``models/single_model.py``
(``backward_D_basic``, ``backward_G``, ``forward``) and ``models/networks.py`` (``GANLoss``, ``Vgg16``,
``vgg_preprocess``, ``PerceptualLoss``). Paper: Jiang et al., IEEE TIP 2021 (arXiv 1906.06972).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# torchvision vgg16.features indices: 23 is the 4th max-pool, 24/25 are conv5_1/relu5_1
_POOL4, _RELU5_1 = 23, 25


def lsgan_loss(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """Official ``GANLoss(use_lsgan=True)``: MSE of the logits against all-1 (real) or all-0 (fake) maps."""
    return F.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))


def lsgan_d_loss(pred_real: torch.Tensor, pred_fake: torch.Tensor) -> torch.Tensor:
    """Plain LSGAN D loss ``(MSE(D(r), 1) + MSE(D(f), 0)) / 2`` (EGAN backward_D_basic without RaGAN)."""
    return 0.5 * (lsgan_loss(pred_real, True) + lsgan_loss(pred_fake, False))


def ralsgan_d_loss(pred_real: torch.Tensor, pred_fake: torch.Tensor) -> torch.Tensor:
    """Relativistic average LSGAN for D: ``[MSE(C(r) - E C(f), 1) + MSE(C(f) - E C(r), 0)] / 2``.

    The expectations are means over the whole logit tensor (batch and positions), as ``torch.mean`` in EGAN.
    """
    return 0.5 * (lsgan_loss(pred_real - pred_fake.mean(), True) + lsgan_loss(pred_fake - pred_real.mean(), False))


def ralsgan_g_loss(pred_real: torch.Tensor, pred_fake: torch.Tensor) -> torch.Tensor:
    """Relativistic average LSGAN for G: ``[MSE(C(r) - E C(f), 0) + MSE(C(f) - E C(r), 1)] / 2``."""
    return 0.5 * (lsgan_loss(pred_real - pred_fake.mean(), False) + lsgan_loss(pred_fake - pred_real.mean(), True))


def sample_patch_offsets(
    height: int, width: int, n: int, size: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` random (top, left) offsets of ``size`` x ``size`` patches, shape (n, 2), int64.

    As EGAN ``SingleModel.forward``: ``randint(0, max(0, w - size - 1))`` (inclusive), so the last row and
    column are never the patch's last; one offset per patch, shared by every image of the batch.
    """
    if n < 1:
        raise ValueError(f"the number of patches must be >= 1, got {n}")
    if height < size or width < size:
        raise ValueError(f"patches of {size}x{size} need images at least that large, got {height}x{width}")
    tops = torch.randint(0, max(0, height - size - 1) + 1, (n,), generator=generator)
    lefts = torch.randint(0, max(0, width - size - 1) + 1, (n,), generator=generator)
    return torch.stack((tops, lefts), dim=1)


def crop_patches(x: torch.Tensor, offsets: torch.Tensor, size: int) -> torch.Tensor:
    """Patches of ``x`` (B, C, H, W) at ``offsets`` (n, 2): a differentiable (n, B, C, size, size) tensor."""
    return torch.stack([x[:, :, t : t + size, l : l + size] for t, l in offsets.tolist()])


def vgg16_relu5_1(features: nn.Sequential) -> nn.Sequential:
    """VGG16 up to relu5_1 *without* the 4th max-pool (EGAN ``Vgg16.forward`` with ``vgg_maxpooling`` off).

    Built from torchvision's ``vgg16().features`` layers (shared, not copied): 11 convs, 3 max-pools, so the
    relu5_1 map has 512 channels at 1/8 of the input resolution.
    """
    if len(features) <= _RELU5_1 or not isinstance(features[_POOL4], nn.MaxPool2d):
        raise ValueError("expected torchvision's vgg16().features (max-pool at index 23, relu5_1 at 25)")
    layers = [m for i, m in enumerate(features) if i <= _RELU5_1 and i != _POOL4]
    return nn.Sequential(*layers).eval()


def vgg_preprocess(x: torch.Tensor) -> torch.Tensor:
    """EGAN ``vgg_preprocess`` with ``--vgg_mean`` off: RGB in [-1, 1] -> BGR in [0, 255], no mean removed."""
    return (x.flip(1) + 1.0) * 127.5


class SelfFeaturePreservingLoss(nn.Module):
    """EGAN ``PerceptualLoss.compute_vgg_loss``: ``mean((IN(phi(G(x))) - IN(phi(x)))^2)``, phi: relu5_1.

    IN is ``InstanceNorm2d(512, affine=False)`` (instance statistics, eps 1e-5) applied to both feature maps.
    Inputs are images in [-1, 1]; the target's features carry no gradient.
    """

    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.extractor = vgg16_relu5_1(features)
        for p in self.extractor.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> SelfFeaturePreservingLoss:
        return super().train(False)  # the frozen VGG stays in eval mode

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(self.extractor(vgg_preprocess(x)), eps=1e-5)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            tgt = self.features(target)
        return F.mse_loss(self.features(output), tgt)
