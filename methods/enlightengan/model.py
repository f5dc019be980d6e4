"""EnlightenGAN networks: the attention-guided U-Net generator and the no-norm PatchGAN discriminators.

Re-implemented from VITA-Group/EnlightenGAN@b034984 (BSD-style license, see the repo's ``License``),
``models/networks.py`` classes ``Unet_resize_conv`` and ``NoNormDiscriminator``, configured as the
official training script runs them (``scripts/script.py``: ``--which_model_netG sid_unet_resize --skip 1
--use_norm 1 --self_attention --times_residual``, no ``--tanh``). Paper: Jiang et al., "EnlightenGAN: Deep
Light Enhancement without Paired Supervision", IEEE TIP 2021 (arXiv 1906.06972).

Module names match the official ones, so an official ``*_net_G_A.pth`` loads key for key once the
``module.`` prefix of its ``DataParallel`` wrapper is removed (see ``EnlightenGAN.convert_official``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: channel widths of the five U-Net levels (EGAN:models/networks.py Unet_resize_conv)
WIDTHS = (32, 64, 128, 256, 512)
#: spatial multiple the U-Net needs (4 max-pools); EGAN:models/networks.py pad_tensor divide = 16
MULTIPLE = 16


def attention_map(x: torch.Tensor) -> torch.Tensor:
    """Self-regularised attention ``A = 1 - Y`` of an RGB batch in [0, 1], shape (B, 1, H, W).

    EGAN:data/unaligned_dataset.py: ``A_gray = 1 - (0.299 r + 0.587 g + 0.114 b) / 2`` with ``r = R + 1`` on
    [-1, 1] data, i.e. one minus the BT.601 luma of the [0, 1] image, with no further normalisation.
    """
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"attention_map expects an RGB batch (B, 3, H, W), got shape {tuple(x.shape)}")
    y = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    return 1.0 - y


def centred_pads(height: int, width: int, multiple: int = MULTIPLE) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding up to ``multiple``; smaller half left/top (EGAN pad_tensor)."""
    pw, ph = (-width) % multiple, (-height) % multiple
    return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2


def pad_centred(x: torch.Tensor, multiple: int = MULTIPLE) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Reflect-pad H and W to a multiple of ``multiple``, split as the official ``pad_tensor`` does.

    Falls back to replicate padding when the image is too small to reflect (the official code would fail).
    """
    pads = centred_pads(x.shape[-2], x.shape[-1], multiple)
    if not any(pads):
        return x, pads
    left, right, top, bottom = pads
    small = max(left, right) >= x.shape[-1] or max(top, bottom) >= x.shape[-2]
    return F.pad(x, pads, mode="replicate" if small else "reflect"), pads


def crop_pads(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    """Undo :func:`pad_centred` (official ``pad_tensor_back``)."""
    left, right, top, bottom = pads
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]


def _conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


def init_weights(m: nn.Module) -> None:
    """Official ``weights_init``: conv weight N(0, 0.02) (bias: PyTorch default); BN N(1, 0.02), 0."""
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class EnlightenGANGenerator(nn.Module):
    """Official ``Unet_resize_conv`` with ``skip=1``, ``use_norm=1``, no tanh, optional self-attention.

    Every 3x3 conv is followed by LeakyReLU(0.2) and then BatchNorm (BN *after* the activation), except
    ``conv9_2`` (LeakyReLU only) and the 1x1 ``conv10``. Five levels of 32-64-128-256-512 channels with
    max-pool down-sampling; the decoder up-samples bilinearly x2 and applies a 3x3 conv (``deconv5..8``)
    before concatenating the skip.

    With ``self_attention`` the input is ``cat(RGB in [-1, 1], A)`` (4 channels), the skips ``conv1..conv4``
    and the bottleneck activation ``conv5_1`` are multiplied by ``A`` max-pooled to their size. With
    ``times_residual`` the residual is ``conv10(...) * A``. Output (``skip=1``): ``residual + input`` in the
    [-1, 1] domain. 8,636,675 parameters with attention; 8,636,387 without (``conv1_1`` takes 3 channels).

    Args:
        self_attention: official ``--self_attention`` (A as 4th input channel, A-weighted skips).
        times_residual: official ``--times_residual`` (residual multiplied by A).
        align_corners: bilinear up-sampling convention. The official code ran on PyTorch 0.3.1, whose
            ``F.upsample(mode='bilinear')`` behaved as ``align_corners=True`` (the default changed in 0.4.0),
            so the released weights expect True.
    """

    def __init__(self, self_attention: bool = True, times_residual: bool = True, align_corners: bool = True):
        super().__init__()
        self.self_attention = bool(self_attention)
        self.times_residual = bool(times_residual)
        self.align_corners = bool(align_corners)
        c1, c2, c3, c4, c5 = WIDTHS
        # encoder: conv{l}_1, conv{l}_2 (+ LReLU + BN); LReLU/max-pool carry no weights
        self.conv1_1 = _conv3(4 if self.self_attention else 3, c1)
        self.bn1_1 = nn.BatchNorm2d(c1)
        self.conv1_2, self.bn1_2 = _conv3(c1, c1), nn.BatchNorm2d(c1)
        self.conv2_1, self.bn2_1 = _conv3(c1, c2), nn.BatchNorm2d(c2)
        self.conv2_2, self.bn2_2 = _conv3(c2, c2), nn.BatchNorm2d(c2)
        self.conv3_1, self.bn3_1 = _conv3(c2, c3), nn.BatchNorm2d(c3)
        self.conv3_2, self.bn3_2 = _conv3(c3, c3), nn.BatchNorm2d(c3)
        self.conv4_1, self.bn4_1 = _conv3(c3, c4), nn.BatchNorm2d(c4)
        self.conv4_2, self.bn4_2 = _conv3(c4, c4), nn.BatchNorm2d(c4)
        self.conv5_1, self.bn5_1 = _conv3(c4, c5), nn.BatchNorm2d(c5)
        self.conv5_2, self.bn5_2 = _conv3(c5, c5), nn.BatchNorm2d(c5)
        # decoder: deconv{k} is the conv after the bilinear x2 up-sampling (EGAN: "resize conv")
        self.deconv5 = _conv3(c5, c4)
        self.conv6_1, self.bn6_1 = _conv3(c5, c4), nn.BatchNorm2d(c4)
        self.conv6_2, self.bn6_2 = _conv3(c4, c4), nn.BatchNorm2d(c4)
        self.deconv6 = _conv3(c4, c3)
        self.conv7_1, self.bn7_1 = _conv3(c4, c3), nn.BatchNorm2d(c3)
        self.conv7_2, self.bn7_2 = _conv3(c3, c3), nn.BatchNorm2d(c3)
        self.deconv7 = _conv3(c3, c2)
        self.conv8_1, self.bn8_1 = _conv3(c3, c2), nn.BatchNorm2d(c2)
        self.conv8_2, self.bn8_2 = _conv3(c2, c2), nn.BatchNorm2d(c2)
        self.deconv8 = _conv3(c2, c1)
        self.conv9_1, self.bn9_1 = _conv3(c2, c1), nn.BatchNorm2d(c1)
        self.conv9_2 = _conv3(c1, c1)  # EGAN: no bn9_2
        self.conv10 = nn.Conv2d(c1, 3, 1)
        self.apply(init_weights)  # EGAN:models/networks.py define_G -> netG.apply(weights_init)

    @staticmethod
    def _block(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
        return bn(F.leaky_relu(conv(x), 0.2))

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=self.align_corners)

    def forward_official(self, x: torch.Tensor, gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The official forward on [-1, 1] data: returns ``(output, latent)``, both unclamped, [-1, 1] domain.

        Args:
            x: RGB batch in [-1, 1], (B, 3, H, W); any size (centred reflect padding to 16 inside).
            gray: attention map ``A`` (B, 1, H, W) of the (possibly darkened) input; ignored unless
                ``self_attention`` or ``times_residual``.
        """
        x, pads = pad_centred(x)
        gray, _ = pad_centred(gray)
        if self.self_attention:
            gray_2 = F.max_pool2d(gray, 2)  # EGAN: downsample_1..4 = MaxPool2d(2)
            gray_3 = F.max_pool2d(gray_2, 2)
            gray_4 = F.max_pool2d(gray_3, 2)
            gray_5 = F.max_pool2d(gray_4, 2)
            h = self._block(self.conv1_1, self.bn1_1, torch.cat((x, gray), 1))
        else:
            h = self._block(self.conv1_1, self.bn1_1, x)
        conv1 = self._block(self.conv1_2, self.bn1_2, h)
        h = self._block(self.conv2_1, self.bn2_1, F.max_pool2d(conv1, 2))
        conv2 = self._block(self.conv2_2, self.bn2_2, h)
        h = self._block(self.conv3_1, self.bn3_1, F.max_pool2d(conv2, 2))
        conv3 = self._block(self.conv3_2, self.bn3_2, h)
        h = self._block(self.conv4_1, self.bn4_1, F.max_pool2d(conv3, 2))
        conv4 = self._block(self.conv4_2, self.bn4_2, h)
        h = self._block(self.conv5_1, self.bn5_1, F.max_pool2d(conv4, 2))
        if self.self_attention:
            h = h * gray_5
            conv1, conv2, conv3, conv4 = conv1 * gray, conv2 * gray_2, conv3 * gray_3, conv4 * gray_4
        conv5 = self._block(self.conv5_2, self.bn5_2, h)

        h = torch.cat([self.deconv5(self._up(conv5)), conv4], 1)
        conv6 = self._block(self.conv6_2, self.bn6_2, self._block(self.conv6_1, self.bn6_1, h))
        h = torch.cat([self.deconv6(self._up(conv6)), conv3], 1)
        conv7 = self._block(self.conv7_2, self.bn7_2, self._block(self.conv7_1, self.bn7_1, h))
        h = torch.cat([self.deconv7(self._up(conv7)), conv2], 1)
        conv8 = self._block(self.conv8_2, self.bn8_2, self._block(self.conv8_1, self.bn8_1, h))
        h = torch.cat([self.deconv8(self._up(conv8)), conv1], 1)
        h = self._block(self.conv9_1, self.bn9_1, h)
        conv9 = F.leaky_relu(self.conv9_2(h), 0.2)

        latent = self.conv10(conv9)
        if self.times_residual:
            latent = latent * gray
        output = latent + x  # skip = 1: output = latent + input * skip
        return crop_pads(output, pads), crop_pads(latent, pads)

    def forward_raw(self, x: torch.Tensor) -> torch.Tensor:
        """Enhance RGB in [0, 1]; the output in [-1, 1] *unclamped* (what the discriminators and VGG see)."""
        out, _ = self.forward_official(x * 2.0 - 1.0, attention_map(x))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Enhance RGB in [0, 1] and return RGB in [0, 1].

        The official ``predict`` writes ``util.tensor2im(fake_B)``: ``(y + 1) / 2 * 255``, clipped to
        [0, 255], cast to uint8 (truncation). Here: ``clamp((y + 1) / 2, 0, 1)``; the 8-bit quantisation
        (rounding) is the pipeline's, so outputs sit on average 0.5/255 above the official PNGs.
        """
        return ((self.forward_raw(x) + 1.0) * 0.5).clamp(0.0, 1.0)


class NoNormDiscriminator(nn.Module):
    """Official ``NoNormDiscriminator``: PatchGAN with Conv4x4 + LeakyReLU(0.2), no normalisation.

    ``n_layers`` stride-2 convs (``ndf * min(2^n, 8)`` channels), one stride-1 conv to
    ``ndf * min(2^n_layers, 8)`` and a stride-1 conv to one logit map; padding 2 (``ceil((4 - 1) / 2)``),
    no sigmoid (LSGAN).
    The global D (``n_layers=5``) has 11,154,369 parameters, the local D (``n_layers=4``) 6,959,553.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 5):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        kw, padw = 4, 2
        seq: list[nn.Module] = [nn.Conv2d(input_nc, ndf, kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            seq += [nn.Conv2d(ndf * prev, ndf * mult, kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2**n_layers, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, kw, stride=1, padding=padw), nn.LeakyReLU(0.2, True)]
        seq += [nn.Conv2d(ndf * mult, 1, kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*seq)  # EGAN name, so official D_A / D_P checkpoints load too
        self.apply(init_weights)  # EGAN: define_D -> netD.apply(weights_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
