"""LG-BPN network (Wang-XIaoDingdd/LGBPN@3ce4c7d; no license file; built on AP-BSN, MIT, and Restormer).

Re-implemented from ``src/model/DBSNl.py`` (``LGBPN``, ``local_branch``, ``global_branch``, ``DSPMC_9``,
``DSPMC_21``, ``DCl``), ``src/model/restormer_arch.py`` (``DTB``) and ``src/model/APBSN.py`` (``BSN``).
Module names follow the official ones so official state dicts load key for key (less the ``test_conv``
copies and ``mask`` buffers, see :func:`methods.lgbpn.convert_official_state`).

Differences from the official code, all without effect on a trained model's output at SIDD/DND sizes:

* the DSPMC mask multiplies the weight in every forward (officially an in-place ``weight.data *= mask``
  before each training forward and NOT at test, so the last optimizer step's leak into the masked taps,
  ~lr in size, is used at test there and zeroed here);
* the global DSPMC trains as an 11x11 dilation-2 conv over its lattice taps (the same sum, 3.6x cheaper);
* the test-time kernel shrink is one dense conv with a folded kernel (``methods.blindspot.shrunk_conv``)
  instead of DeformConv sampling over 4 overlapping quadrants;
* padding to the PD factor crops back to (H, W) per axis (officially the H padding is cropped from both
  axes, which breaks non-square images whose sides differ modulo the factor);
* inference only, same values: channels-last tensors on CPU, the branch bodies run on groups of
  sub-images (:data:`CHUNK_PIXELS`), the attention's L2 norms are read off Gram-matrix diagonals.

Kept as in the official design (tests pin them): the blind spot is exact for every spatial path in
training mode except (a) the DTB's channel-attention map, an image-wide statistic that includes the
pixel itself (gradient ~1e-8 of the largest), and (b) pixels 3-5 rows/columns from the border (global
DSPMC tap at offset -2x) and within 2 pixels of a corner (local DSPMC), which see themselves through the
reflect padding of the DSPMCs.
Checked against the official modules (run offline on CPU with the same weights): training pass, test
and refinement passes (SIDD and DND presets) and the full R3 procedure agree to ~2e-6 relative.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from methods.blindspot import (
    DCl,
    MaskedConv2d,
    pad_to_multiple,
    pd_batch,
    pd_batch_inverse,
    pd_mosaic,
    pd_mosaic_inverse,
    to_channels_last,
)

#: PD factors (local / global branch) and test-time DSPMC shrink ratios per official preset.
#: LGBPN:src/model/DBSNl.py local_branch/global_branch.forward (SIDD flag) and DSPMC_9/21.forward.
PRESETS: dict[str, dict[str, dict[str, float]]] = {
    "sidd": {
        "local_pd": {"train": 4, "test": 3, "refine": 2},
        "global_pd": {"train": 5, "test": 4, "refine": 4},
        "local_ratio": {"test": 0.72, "refine": 0.46},
        "global_ratio": {"test": 0.80, "refine": 0.43},
    },
    "dnd": {
        "local_pd": {"train": 4, "test": 2, "refine": 2},
        "global_pd": {"train": 5, "test": 4, "refine": 2},
        "local_ratio": {"test": 0.50, "refine": 0.40},
        "global_ratio": {"test": 0.65, "refine": 0.35},
    },
}
LOCAL_PD_PAD = 2  # local_branch: pixel_shuffle_down_sampling(_pd)(..., pad=2) in every mode
GLOBAL_PD_PAD = {"train": 0, "test": 7, "refine": 7}  # global_branch: pad=0 at train, 7 at test/refine


def _preset(name: str) -> dict[str, dict[str, float]]:
    if name not in PRESETS:
        raise KeyError(f"unknown pd_preset {name!r}; allowed: {sorted(PRESETS)}")
    return PRESETS[name]


#: inference runs the branch bodies on groups of sub-images of at most this many pixels (bounds memory;
#: every sub-image is processed independently, so the result is the same)
CHUNK_PIXELS = 2**17


def _run_chunked(body: nn.Module, x: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    per = max(1, CHUNK_PIXELS // (x.shape[-2] * x.shape[-1]))
    if torch.is_grad_enabled() or n <= per:
        return body(to_channels_last(x))
    return torch.cat([body(to_channels_last(c)) for c in x.split(per)])


def _pd_run(body: nn.Module, x: torch.Tensor, mode: str, f: int, pad: int) -> torch.Tensor:
    """PD -> body -> inverse PD as the official branches do per mode (mosaic at train, batch otherwise)."""
    if mode == "train":
        return pd_mosaic_inverse(body(to_channels_last(pd_mosaic(x, f, pad))), f, pad)
    if mode == "refine" and f == 1:  # official: `if pd_refine > 1 ... else: x = self.body(x)`
        return body(to_channels_last(x))
    return pd_batch_inverse(_run_chunked(body, pd_batch(x, f, pad)), f, pad)


# ---- dilated transformer block (LGBPN:src/model/restormer_arch.py) -----------------------------


class BiasFreeLayerNorm(nn.Module):
    """Per-pixel normalisation over channels without mean subtraction: x / sqrt(var + 1e-5) * weight."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            rstd = torch.rsqrt(x.var(dim=1, keepdim=True, unbiased=False) + 1e-5)
        else:  # inference: the fused layer-norm kernel's 1/std (its rstd output has no gradient)
            rstd = torch.native_layer_norm(x.permute(0, 2, 3, 1), [x.shape[1]], None, None, 1e-5)[2]
            rstd = rstd.permute(0, 3, 1, 2)
        return x * rstd * self.weight.view(1, -1, 1, 1)


class LayerNorm(nn.Module):
    """Holder with the official key layout ``norm.body.weight``."""

    def __init__(self, dim: int):
        super().__init__()
        self.body = BiasFreeLayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ChannelAttention(nn.Module):
    """Restormer transposed attention with dilated depthwise q/k/v convs (``Attention_dilated``).

    ``q, k`` are L2-normalised over pixels; the (C/heads)^2 map ``softmax(q k^T * temperature)`` is a
    statistic of the whole (sub-)image, so it is the one place where a pixel can see itself.
    """

    def __init__(self, dim: int, num_heads: int, dilation: int):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(
            dim * 3, dim * 3, 3, padding=dilation, dilation=dilation, groups=dim * 3, bias=False
        )
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def attention_map(self, q: torch.Tensor, k: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
        """softmax(normalize(q) normalize(k)^T * temperature) for one head; q, k: (B, C', HW).

        The L2 normalisation over pixels (F.normalize, eps 1e-12) is applied to the Gram matrix, with the
        norms read off the diagonals of q q^T and k k^T: the same product without full-size passes over
        the strided q and k.
        """
        nq = torch.bmm(q, q.transpose(1, 2)).diagonal(dim1=1, dim2=2).sqrt().clamp_min(1e-12)
        nk = torch.bmm(k, k.transpose(1, 2)).diagonal(dim1=1, dim2=2).sqrt().clamp_min(1e-12)
        gram = torch.bmm(q, k.transpose(1, 2)) / (nq.unsqueeze(-1) * nk.unsqueeze(-2))
        return (gram * temperature).softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        ch = c // self.num_heads
        qkv = self.qkv_dwconv(self.qkv(x)).flatten(2)  # (B, 3C, HW); a view for NCHW and channels-last
        parts = qkv.split(ch, dim=1)  # q heads, k heads, v heads: strided views, one backward node
        outs = []
        for head in range(self.num_heads):  # per head: bmm on strided views, no copies of q/k/v
            q, k, v = parts[head], parts[self.num_heads + head], parts[2 * self.num_heads + head]
            attn = self.attention_map(q, k, self.temperature[head])
            outs.append(torch.bmm(v.transpose(1, 2), attn.transpose(1, 2)))  # (B, HW, C'): out^T = v^T attn^T
        out = torch.cat(outs, dim=-1).view(b, h, w, c).permute(0, 3, 1, 2)  # channels-last layout
        return self.project_out(out)


class GatedFFN(nn.Module):
    """Gated-Dconv FFN (``FeedForward_dilated``): 1x1 -> dilated depthwise 3x3 -> GELU(x1) * x2 -> 1x1."""

    def __init__(self, dim: int, expansion: float, dilation: int):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(
            hidden * 2, hidden * 2, 3, padding=dilation, dilation=dilation, groups=hidden * 2, bias=False
        )
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class DTBBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, expansion: float, dilation: int):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = ChannelAttention(dim, num_heads, dilation)
        self.norm2 = LayerNorm(dim)
        self.ffn = GatedFFN(dim, expansion, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class DTB(nn.Module):
    """``num_blocks`` dilated transformer blocks then a 3x3 dilated conv (``DTB``, no biases)."""

    def __init__(
        self, dim: int = 128, num_blocks: int = 6, num_heads: int = 2, expansion: float = 2.66, dilation: int = 3
    ):
        super().__init__()
        self.encoder_level1 = nn.Sequential(*[DTBBlock(dim, num_heads, expansion, dilation) for _ in range(num_blocks)])
        self.output = nn.Conv2d(dim, dim, 3, padding=dilation, dilation=dilation, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.encoder_level1(x))


# ---- branches ----------------------------------------------------------------------------------


class LocalBranch(nn.Module):
    """DSPMC k x k (diamond zeroed) -> ReLU-1x1-ReLU-1x1-ReLU -> PD -> DCl x n -> 1x1-ReLU -> PD^-1."""

    def __init__(self, head_ch: int, ch: int, num_module: int, kernel_size: int = 9, radius: int | None = None):
        super().__init__()
        radius = kernel_size // 2 if radius is None else radius  # DSPMC_9: dis = kH // 2
        self.Maskconv = MaskedConv2d(head_ch, ch, kernel_size, radius, lattice=1, padding_mode="reflect")
        layers: list[nn.Module] = [
            nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 1),
            nn.ReLU(inplace=True),
        ]
        layers += [DCl(2, ch) for _ in range(num_module)]  # local_branch(stride=2): DCl dilation 2
        layers += [nn.Conv2d(ch, ch, 1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, mode: str, f: int, ratio: float | None) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = self.Maskconv(pad_to_multiple(x, f), ratio=None if mode == "train" else ratio)
        return _pd_run(self.body, x, mode, f, LOCAL_PD_PAD)[..., :h, :w]


class GlobalBranch(nn.Module):
    """DSPMC 21x21 (stride-2 lattice minus the radius-4 diamond) -> PD -> DTB -> PD^-1."""

    def __init__(
        self,
        head_ch: int,
        ch: int,
        num_blocks: int = 6,
        kernel_size: int = 21,
        radius: int = 4,
        lattice: int = 2,
        dilation: int = 3,
    ):
        super().__init__()
        self.Maskconv = MaskedConv2d(head_ch, ch, kernel_size, radius, lattice=lattice, padding_mode="reflect")
        self.body = DTB(dim=ch, num_blocks=num_blocks, dilation=dilation)

    def forward(self, x: torch.Tensor, mode: str, f: int, ratio: float | None) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = self.Maskconv(pad_to_multiple(x, f), ratio=None if mode == "train" else ratio)
        return _pd_run(self.body, x, mode, f, GLOBAL_PD_PAD[mode])[..., :h, :w]


class LGBPN(nn.Module):
    """LG-BPN: head 1x1 (3 -> ``head_ch``) + ReLU; local and global blind-spot branches; 1x1 tail.

    Takes images in [0, 1] (scaled by ``value_scale`` = 255 inside, the official range). In train mode it
    runs the training PD (4 / 5); in eval mode ``forward(x, refine=False)`` is the test pass and
    ``refine=True`` the R3 refinement pass (PD factors and shrink ratios of ``pd_preset``, which a
    forward argument of the same name overrides).

    Args:
        in_ch, base_ch, head_ch, num_module: 3, 128, 24, 9 (``LGBPN(..., head_ch=24)`` in ``BSN``).
        global_blocks: DTB blocks (``br2_blc`` = 6).
        local_kernel, local_radius: local DSPMC size and blind diamond radius (9, 4 = k//2).
        use_global: False drops the global branch (tail input ``base_ch`` instead of ``2*base_ch``).
        pd_preset: ``sidd`` or ``dnd`` (the official ``SIDD`` flag).
    """

    def __init__(
        self,
        in_ch: int = 3,
        base_ch: int = 128,
        head_ch: int = 24,
        num_module: int = 9,
        global_blocks: int = 6,
        local_kernel: int = 9,
        local_radius: int | None = None,
        use_global: bool = True,
        pd_preset: str = "sidd",
        value_scale: float = 255.0,
    ):
        super().__init__()
        if base_ch % 2:
            raise ValueError(f"base_ch must be even, got {base_ch}")
        _preset(pd_preset)
        self.pd_preset = pd_preset
        self.value_scale = float(value_scale)
        self.head = nn.Sequential(nn.Conv2d(in_ch, head_ch, 1), nn.ReLU(inplace=True))
        self.branch1 = LocalBranch(head_ch, base_ch, num_module, local_kernel, local_radius)
        self.branch2 = GlobalBranch(head_ch, base_ch, global_blocks) if use_global else None
        tail_in = base_ch * (2 if use_global else 1)
        self.tail = nn.Sequential(
            nn.Conv2d(tail_in, base_ch, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(base_ch, base_ch // 2, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(base_ch // 2, base_ch // 2, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(base_ch // 2, in_ch, 1),
        )

    def _mode(self, refine: bool) -> str:
        return "train" if self.training else ("refine" if refine else "test")

    def alignment(self, refine: bool = False, pd_preset: str | None = None) -> int:
        """Tile alignment of a pass: lcm of the PD factors the branches use in it."""
        p = _preset(pd_preset or self.pd_preset)
        mode = self._mode(refine)
        f = int(p["local_pd"][mode])
        if self.branch2 is not None:
            f = math.lcm(f, int(p["global_pd"][mode]))
        return f

    def forward(self, x: torch.Tensor, refine: bool = False, pd_preset: str | None = None) -> torch.Tensor:
        p = _preset(pd_preset or self.pd_preset)
        mode = self._mode(refine)
        feat = self.head(x * self.value_scale)
        lr = None if mode == "train" else p["local_ratio"][mode]
        outs = [self.branch1(feat, mode, int(p["local_pd"][mode]), lr)]
        if self.branch2 is not None:
            gr = None if mode == "train" else p["global_ratio"][mode]
            outs.append(self.branch2(feat, mode, int(p["global_pd"][mode]), gr))
        return self.tail(to_channels_last(torch.cat(outs, dim=1))) / self.value_scale


def official_param_count(model: LGBPN) -> int:
    """Parameters as the official module counts them: ours plus each DSPMC's unused ``test_conv`` copy.

    The official ``DSPMC_*`` build a second ``nn.Conv2d`` (``test_conv``) of the same shape that is
    overwritten by the DSPMC weight at the first test forward; ``sum(p.numel())`` counts it (6,162,719).
    """
    extra = 0
    for branch in (model.branch1, model.branch2):
        if branch is not None:
            extra += sum(p.numel() for p in branch.Maskconv.parameters(recurse=False))
    return sum(p.numel() for p in model.parameters()) + extra
