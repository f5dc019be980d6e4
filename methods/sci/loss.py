"""SCI unsupervised loss (vis-opt-group/SCI@9d28a3f `loss.py`, MIT), vectorised.

Per stage: ``1.5 * MSE(illu, stage_input) + SmoothLoss(stage_input, illu)``. The official smoothness
term sums 24 terms over the 5x5 neighbourhood (centre excluded); the terms come in pairs (offset d and
-d give identical values), so it equals twice the sum over 12 unique offsets, which is what runs here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# SCI:loss.py rgb2yCbCr (BT.601 "studio swing" matrix, applied as im_flat.mm(mat) + bias)
_YCBCR = torch.tensor([[0.257, -0.148, 0.439], [0.564, -0.291, -0.368], [0.098, 0.439, -0.071]])
_YCBCR_BIAS = torch.tensor([16.0 / 255.0, 128.0 / 255.0, 128.0 / 255.0])
#: the 12 unique neighbour offsets (dy, dx) of the 24 in SCI:loss.py; the other 12 are their negatives
OFFSETS = ((1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (2, -1), (1, 2), (1, -2), (2, 2), (2, -2))


def rgb_to_ycbcr_official(x: torch.Tensor) -> torch.Tensor:
    """The official conversion, reproduced exactly, including its flattening.

    The official code does ``x.contiguous().view(-1, 3)`` on an NCHW tensor, i.e. it mixes groups of three
    consecutive *pixels* rather than the three channels. We keep that, since the trained weights and the
    paper's numbers come from it.
    """
    flat = x.contiguous().view(-1, 3).float()
    out = flat.mm(_YCBCR.to(x.device)) + _YCBCR_BIAS.to(x.device)
    return out.view(x.shape)


def _shift_pair(t: torch.Tensor, dy: int, dx: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Views a = t[p + (dy, dx)], b = t[p] over the positions where both exist."""
    h, w = t.shape[-2:]
    ys, ye = (dy, h) if dy >= 0 else (0, h + dy)
    xs, xe = (dx, w) if dx >= 0 else (0, w + dx)
    a = t[..., ys:ye, xs:xe]
    b = t[..., ys - dy : ye - dy, xs - dx : xe - dx]
    return a, b


def smooth_loss(stage_input: torch.Tensor, illu: torch.Tensor, sigma: float = 10.0) -> torch.Tensor:
    """Edge-aware smoothness of ``illu`` weighted by the YCbCr gradients of ``stage_input`` (24-term sum)."""
    ycc = rgb_to_ycbcr_official(stage_input)
    coef = -1.0 / (2.0 * sigma * sigma)
    total = illu.new_zeros(())
    for dy, dx in OFFSETS:
        a, b = _shift_pair(ycc, dy, dx)
        w = torch.exp((a - b).pow(2).sum(dim=1) * coef)
        ia, ib = _shift_pair(illu, dy, dx)
        total = total + (w * (ia - ib).abs().sum(dim=1)).mean()
    return 2.0 * total


def sci_loss(stage_input: torch.Tensor, illu: torch.Tensor, sigma: float = 10.0) -> torch.Tensor:
    """One stage of the official ``LossFunction``: ``1.5 * MSE(illu, input) + smooth``."""
    return 1.5 * F.mse_loss(illu, stage_input) + smooth_loss(stage_input, illu, sigma)
