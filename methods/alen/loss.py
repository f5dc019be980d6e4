"""ALEN losses: the released code's 0.85 L1 + 0.15 (1 - MS-SSIM) and the paper's L2 + SSIM.

MS-SSIM follows Justones/ALEN@7020c39 `ssimloss.py` (class ``MS_SSIM``, used with ``max_val=1`` in
`main.py`): per level a Gaussian window of size ``min(H, W, 11)`` and sigma ``1.5 * size / 11``, zero
padding ``size // 2`` ("same" output), C1 = (0.01 max)^2, C2 = (0.03 max)^2, per-level means of the SSIM
and contrast-structure maps, 2x2 average pooling between the 5 levels, weights
[0.0448, 0.2856, 0.3001, 0.2363, 0.1333]; MS-SSIM = prod(mcs_1..4 ^ w_1..4) * ssim_5 ^ w_5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "alen_loss", "ms_ssim", "ssim_level"]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # ALEN:ssimloss.py ms_ssim
LOSSES = ("l1_msssim", "l2_ssim")
_FLOOR = 1e-6  # the official code returns NaN when a level's mean mcs/ssim is negative; we floor it instead


def _window(size: int, channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    sigma = 1.5 * size / 11  # ALEN:ssimloss.py _ssim
    x = torch.arange(size, device=device, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).to(dtype).expand(channels, 1, size, size).contiguous()


def ssim_level(x: torch.Tensor, y: torch.Tensor, max_val: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure (mcs) of one scale, as ALEN:ssimloss.py ``_ssim``."""
    c = x.shape[1]
    size = min(x.shape[-2], x.shape[-1], 11)
    win = _window(size, c, x.device, x.dtype)
    pad = size // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, win, padding=pad, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    v1, v2 = 2 * sxy + c2, sxx + syy + c2
    ssim_map = (2 * mu_x * mu_y + c1) * v1 / ((mu_x**2 + mu_y**2 + c1) * v2)
    return ssim_map.mean(), (v1 / v2).mean()


def ms_ssim(x: torch.Tensor, y: torch.Tensor, max_val: float = 1.0, levels: int = 5) -> torch.Tensor:
    """ALEN's 5-scale MS-SSIM (whole batch averaged per level, as the official code)."""
    weights = torch.tensor(MS_SSIM_WEIGHTS[:levels], device=x.device, dtype=x.dtype)
    ssims, mcss = [], []
    for i in range(levels):
        s, m = ssim_level(x, y, max_val)
        ssims.append(s)
        mcss.append(m)
        if i < levels - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    mcs = torch.stack(mcss[:-1]).clamp_min(_FLOOR)
    return torch.prod(mcs ** weights[:-1]) * ssims[-1].clamp_min(_FLOOR) ** weights[-1]


def alen_loss(
    out: torch.Tensor, target: torch.Tensor, kind: str = "l1_msssim", beta: float = 0.85
) -> tuple[torch.Tensor, dict[str, float]]:
    """Training loss and its logged parts.

    ``l1_msssim`` (ALEN:main.py final_loss): ``beta * |out - target|.mean() + (1 - beta) * (1 - MS-SSIM)``,
    beta = 0.85. ``l2_ssim`` (the paper's "L2 + SSIM"; its weights are not in the code, so the code's beta
    is reused): ``beta * mse + (1 - beta) * (1 - SSIM)`` with the single-scale SSIM of the same window.
    """
    if kind == "l1_msssim":
        pix = (out - target).abs().mean()
        sim = ms_ssim(out, target)
    elif kind == "l2_ssim":
        pix = ((out - target) ** 2).mean()
        sim = ssim_level(out, target)[0]
    else:
        raise ValueError(f"unknown ALEN loss {kind!r}; allowed: {LOSSES}")
    loss = beta * pix + (1 - beta) * (1 - sim)
    return loss, {"loss": float(loss.detach()), "pix": float(pix.detach()), "ssim": float(sim.detach())}
