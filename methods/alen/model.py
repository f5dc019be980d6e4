"""ALEN network (Justones/ALEN@7020c39 `model.py`, class ``EnhanceNet``; no license file in the repo).

Re-implemented with readable module names (``convert_official`` in ``__init__`` maps the official keys)
and three fixes the released code needs:

* the SE block reshapes with ``view(1, 1, 1, -1)`` (batch size 1 only): here it works per sample;
* ``nn.AvgPool2d(..., stride=0)`` (rejected by current PyTorch) becomes a global mean;
* the non-local attention runs through ``scaled_dot_product_attention`` with ``scale=1`` (the official
  code multiplies theta and phi without scaling), which is the same softmax(QK^T)V with less memory.

Switches (``ALEN.__init__``): ``pool`` = ``"isl"`` (the paper's Inverted Shuffle Layer, commented out in
the released code) or ``"maxpool"`` (what the released code runs); ``encoder`` = ``"mixed"`` (mixed
attention blocks: non-local + SE), ``"se"`` (non-local removed) or ``"plain"`` (no attention in the
encoder blocks); ``multipliers`` = the brightness factors of the input pyramid.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ALEN", "CAB", "MAB", "ISL", "NonLocal", "SE", "PlainBlock", "space_to_depth"]

CODE_MULTIPLIERS = (0.8, 1.0, 1.2, 1.5)  # ALEN:model.py EnhanceNet.forward: cat(0.8x, x, 1.2x, 1.5x)
PAPER_MULTIPLIERS = (0.5, 0.8, 1.0, 1.2)  # the paper as summarised by a third party [secondary, unverified]
POOLS = ("isl", "maxpool")
ENCODERS = ("mixed", "se", "plain")


def _conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2)  # ALEN:model.py: every conv is followed by LeakyReLU(0.2)


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4C, H/2, W/2) with ALEN's sub-grid order (0,0), (0,1), (1,1), (1,0).

    ALEN:model.py space_to_depth (the same order as SID's pack_raw), not PixelUnshuffle's.
    """
    return torch.cat((x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2], x[:, :, 1::2, 0::2]), dim=1)


class SE(nn.Module):
    """Channel attention (ALEN:model.py seblock): global mean -> FC -> ReLU -> FC -> sigmoid -> rescale.

    The hidden width equals the channel count (no reduction), as in the released code.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels)
        self.fc2 = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3))))))  # per sample (official: batch 1 only)
        return x * w[:, :, None, None]


class CAB(nn.Module):
    """Channel attention block (ALEN:model.py single_block): SE -> conv3x3 -> LReLU -> conv3x3 -> LReLU."""

    def __init__(self, cin: int, cout: int, se: bool = True):
        super().__init__()
        self.se = SE(cin) if se else nn.Identity()
        self.conv1 = _conv3(cin, cout)
        self.conv2 = _conv3(cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(self.se(x)), 0.2)), 0.2)


class NonLocal(nn.Module):
    """Spatial attention of the mixed attention block (ALEN:model.py nonlocalblock).

    Queries come from 2x2 average-pooled features, keys/values are pooled a further 4x4; inner width
    C/4; softmax(theta^T phi) g without scaling; 1x1 conv back to C; nearest upsampling to the input
    size. Returns the attention branch only (the block concatenates it with its input).
    Needs H, W >= 8 (the keys are pooled 8x in total).
    """

    def __init__(self, channels: int, pool: int = 2, kv_pool: int = 4):
        super().__init__()
        inner = channels // 4
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)
        self.g = nn.Conv2d(channels, inner, 1)
        self.out = nn.Conv2d(inner, channels, 1)
        self.pool, self.kv_pool = pool, kv_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        u = F.avg_pool2d(x, self.pool)
        b, _, h, w = u.shape
        if h < self.kv_pool or w < self.kv_pool:
            raise ValueError(
                f"ALEN non-local block needs features >= {self.pool * self.kv_pool} px, got {tuple(size)}; "
                "pad the packed input to >= 64 px (ALEN.min_size)"
            )
        q = self.theta(u).flatten(2).transpose(1, 2)  # (B, hw, C/4)
        k = F.avg_pool2d(self.phi(u), self.kv_pool).flatten(2).transpose(1, 2)  # (B, hw/16, C/4)
        v = F.avg_pool2d(self.g(u), self.kv_pool).flatten(2).transpose(1, 2)
        y = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=1.0)[:, 0]
        y = self.out(y.transpose(1, 2).reshape(b, -1, h, w))
        return F.interpolate(y, size=size, mode="nearest")


class MAB(nn.Module):
    """Mixed attention block (ALEN:model.py single_block1).

    cat(non-local(x), x) -> SE -> conv3x3 (2C -> C_out) -> LReLU -> conv3x3 -> LReLU. With
    ``nonlocal_=False`` the non-local branch is removed: SE(x) -> conv3x3 (C -> C_out) -> ... .
    """

    def __init__(self, cin: int, cout: int, nonlocal_: bool = True):
        super().__init__()
        self.nl = NonLocal(cin) if nonlocal_ else None
        width = 2 * cin if nonlocal_ else cin
        self.se = SE(width)
        self.fuse = _conv3(width, cout)
        self.conv = _conv3(cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nl is not None:
            x = torch.cat((self.nl(x), x), dim=1)
        return F.leaky_relu(self.conv(F.leaky_relu(self.fuse(self.se(x)), 0.2)), 0.2)


class PlainBlock(nn.Module):
    """Encoder block without attention (``no_attention``): conv3x3 -> LReLU -> conv3x3 -> LReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = _conv3(cin, cout)
        self.conv2 = _conv3(cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(x), 0.2)), 0.2)


class ISL(nn.Module):
    """Inverted Shuffle Layer: space-to-depth (H/2, W/2, 4C) then a 1x1 conv back to C channels.

    ALEN:model.py, the commented-out ``nn.Sequential(nn.Conv2d(C*4, C, 1), single_block1(...))`` applied
    to ``space_to_depth(x)`` (no activation after the 1x1 conv).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Conv2d(4 * channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(space_to_depth(x))


class ALEN(nn.Module):
    """ALEN (Zhang et al., ICME 2020): packed RGGB raw (B, 4, h, w) -> sRGB (B, 3, 2h, 2w).

    Encoder: CAB(16->32) at full packed resolution, then three (pool, encoder block) stages to 64, 128, 256
    channels at 1/2, 1/4, 1/8; decoder: transposed conv x2 + concat skip + CAB, three times; 1x1 conv to
    12 channels + ReLU; pixel shuffle x2. 2,685,076 parameters with ``pool="maxpool"`` (the released code),
    2,771,316 with the ISL (+86,240).

    Args:
        pool: ``"isl"`` (paper) or ``"maxpool"`` (released code).
        encoder: ``"mixed"`` (non-local + SE, paper and code), ``"se"`` (no non-local), ``"plain"``
            (no attention).
        multipliers: brightness factors stacked as the network input (4 channels each).
        width: channels of the first level (32 in the code; doubles per level).
    """

    min_size = 64  # packed pixels: three 2x poolings then the non-local's 2x and 4x poolings
    multiple = 8  # three 2x poolings

    def __init__(
        self,
        pool: str = "isl",
        encoder: str = "mixed",
        multipliers: Sequence[float] = CODE_MULTIPLIERS,
        width: int = 32,
    ):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown ALEN pool {pool!r}; allowed: {POOLS}")
        if encoder not in ENCODERS:
            raise ValueError(f"unknown ALEN encoder {encoder!r}; allowed: {ENCODERS}")
        if len(multipliers) < 1:
            raise ValueError("ALEN needs at least one input multiplier")
        self.pool_kind, self.encoder_kind = pool, encoder
        self.register_buffer(
            "multipliers",
            torch.tensor([float(m) for m in multipliers], dtype=torch.float32),
            persistent=False,
        )
        c = [width, 2 * width, 4 * width, 8 * width]
        self.inc = CAB(4 * len(multipliers), c[0])
        for i in range(1, 4):
            down = ISL(c[i - 1]) if pool == "isl" else nn.MaxPool2d(2)
            if encoder == "plain":
                block: nn.Module = PlainBlock(c[i - 1], c[i])
            else:
                block = MAB(c[i - 1], c[i], nonlocal_=encoder == "mixed")
            setattr(self, f"down{i}", down)
            setattr(self, f"enc{i}", block)
        for i, (cin, cout) in enumerate([(c[3], c[2]), (c[2], c[1]), (c[1], c[0])], start=1):
            setattr(self, f"up{i}", nn.ConvTranspose2d(cin, cout, 2, 2))
            setattr(self, f"dec{i}", CAB(2 * cout, cout))
        self.head = nn.Conv2d(c[0], 12, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.multiple or w % self.multiple or h < self.min_size or w < self.min_size:
            raise ValueError(
                f"ALEN input must be >= {self.min_size} px and a multiple of {self.multiple}, got {h}x{w} "
                "(use ALENMethod.infer, which pads)"
            )
        # ALEN:model.py: I = cat(0.8x, x, 1.2x, 1.5x)
        inp = (x[:, None] * self.multipliers.to(x.dtype)[None, :, None, None, None]).flatten(1, 2)
        s0 = self.inc(inp)
        s1 = self.enc1(self.down1(s0))
        s2 = self.enc2(self.down2(s1))
        s3 = self.enc3(self.down3(s2))
        d = self.dec1(torch.cat((self.up1(s3), s2), dim=1))
        d = self.dec2(torch.cat((self.up2(d), s1), dim=1))
        d = self.dec3(torch.cat((self.up3(d), s0), dim=1))
        return F.pixel_shuffle(F.relu(self.head(d)), 2)
