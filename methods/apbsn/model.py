"""AP-BSN network (wooseoklee4/AP-BSN@210013c, MIT): ``src/model/DBSNl.py`` and ``src/model/APBSN.py``.

Module names follow the official ``DBSNl`` so official state dicts load key for key (less the ``mask``
buffers, rebuilt from the constructor). The PD wrapper of the official ``APBSN`` module is part of
:class:`APBSN.forward`; R3 and tiling are in ``methods.blindspot``.
"""

from __future__ import annotations

import torch
from torch import nn

from methods.blindspot import (
    DCl,
    MaskedConv2d,
    pad_to_multiple,
    pd_mosaic,
    pd_mosaic_inverse,
    to_channels_last,
)


class DCBranch(nn.Module):
    """``DC_branchl``: centre-masked (2s-1)^2 conv -> ReLU-1x1-ReLU-1x1-ReLU -> DCl(s) x n -> 1x1-ReLU."""

    def __init__(self, stride: int, ch: int, num_module: int):
        super().__init__()
        layers: list[nn.Module] = [
            MaskedConv2d(ch, ch, 2 * stride - 1, radius=0, padding_mode="zeros"),  # CentralMaskedConv2d
            nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 1),
            nn.ReLU(inplace=True),
        ]
        layers += [DCl(stride, ch) for _ in range(num_module)]
        layers += [nn.Conv2d(ch, ch, 1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class APBSN(nn.Module):
    """Asymmetric PD blind-spot network: ``DBSNl`` (head 1x1 -> two DC branches -> 1x1 tail) inside PD.

    Takes images in [0, 1] (scaled by ``value_scale`` = 255 inside, the official range). Train mode: PD
    ``pd_a`` (mosaic, zero frame ``pd_pad``) -> DBSNl -> PD^-1. Eval: the test pass zero-pads to a
    multiple of ``pd_b`` and runs PD ``pd_b``; ``refine=True`` runs DBSNl without PD (the R3 pass).

    Args:
        in_ch, base_ch, num_module: 3, 128, 9 (conf/APBSN_SIDD.yaml). pd_a, pd_b, pd_pad: 5, 2, 2.
    """

    def __init__(
        self,
        in_ch: int = 3,
        base_ch: int = 128,
        num_module: int = 9,
        pd_a: int = 5,
        pd_b: int = 2,
        pd_pad: int = 2,
        value_scale: float = 255.0,
    ):
        super().__init__()
        if base_ch % 2:
            raise ValueError(f"base_ch must be even, got {base_ch}")
        self.pd_a, self.pd_b, self.pd_pad = int(pd_a), int(pd_b), int(pd_pad)
        self.value_scale = float(value_scale)
        self.head = nn.Sequential(nn.Conv2d(in_ch, base_ch, 1), nn.ReLU(inplace=True))
        self.branch1 = DCBranch(2, base_ch, num_module)
        self.branch2 = DCBranch(3, base_ch, num_module)
        self.tail = nn.Sequential(
            nn.Conv2d(base_ch * 2, base_ch, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(base_ch, base_ch // 2, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(base_ch // 2, base_ch // 2, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(base_ch // 2, in_ch, 1),
        )

    def bsn(self, x: torch.Tensor) -> torch.Tensor:
        """The blind-spot network ``DBSNl`` on [0, 255] values."""
        feat = self.head(to_channels_last(x))
        return self.tail(torch.cat([self.branch1(feat), self.branch2(feat)], dim=1))

    def _pd_bsn(self, x: torch.Tensor, f: int) -> torch.Tensor:
        p = self.pd_pad
        if f > 1:
            return pd_mosaic_inverse(self.bsn(pd_mosaic(x, f, p)), f, p)
        y = self.bsn(nn.functional.pad(x, (p, p, p, p)))
        return y[..., p:-p, p:-p] if p else y

    def alignment(self, refine: bool = False) -> int:
        return 1 if refine else (self.pd_a if self.training else self.pd_b)

    def forward(self, x: torch.Tensor, refine: bool = False) -> torch.Tensor:
        x = x * self.value_scale
        if self.training:
            out = self._pd_bsn(x, self.pd_a)  # sizes must be multiples of pd_a (120-pixel crops: 5 | 120)
        elif refine:
            out = self.bsn(x)  # APBSN.denoise: self.bsn(tmp_input) on the reflect-padded R3 input
        else:
            h, w = x.shape[-2:]
            out = self._pd_bsn(pad_to_multiple(x, self.pd_b, mode="constant"), self.pd_b)[..., :h, :w]
        return out / self.value_scale
