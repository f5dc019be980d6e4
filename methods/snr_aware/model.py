"""SNR-Aware network (Xu, Wang, Fu, Jia, "SNR-Aware Low-Light Image Enhancement", CVPR 2022).

Re-implemented from the official code dvlab-research/SNR-Aware-Low-Light-Enhance@1113144
(`models/archs/low_light_transformer.py`, `models/archs/transformer/{Models,Layers,SubLayers,Modules}.py`,
`models/archs/arch_util.py`, the SNR map of `models/Video_base_model{3,4,4_m}.py` and the 5x5 blur of
`data/dataset_*.py`). The repository ships no LICENSE file.

Module and attribute names follow the official ones (``conv_first_1``, ``feature_extraction``,
``recon_trunk_light``, ``transformer.layer_stack.<i>.slf_attn.w_qs``, ...) so an official state dict
loads key for key once DataParallel's ``module.`` prefix is stripped.

Differences from the official code, none of which changes a number:
* the SNR map is computed inside the network from its input (:func:`snr_map`) unless one is passed;
* self-attention normalises its input once (the official code applies the same LayerNorm to q, k
  and v separately, which are the same tensor);
* the unused positional grid (built with ``.cuda()``) is not built; EDVR leftovers are dropped.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: SNR:models/Video_base_model4_m.py: gray = 0.299 R + 0.587 G + 0.114 B
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
SNR_EPS = 1e-4  # SNR:Video_base_model4_m.py: light / (noise + 0.0001), mask / (mask_max + 0.0001)
PATCH = 4  # SNR:low_light_transformer.py F.unfold(fea, kernel_size=4, stride=4)
SIZE_MULTIPLE = 16  # two stride-2 convs, then 4x4 patches


# ---- pure functions -----------------------------------------------------------------------------
def _reflect101_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Source indices of ``range(-pad, n + pad)`` under OpenCV's BORDER_REFLECT_101 (``cb|abcd|cb``).

    Same loop as OpenCV's ``borderInterpolate``, so it also covers sizes smaller than ``pad + 1``.
    """
    out = []
    for p in range(-pad, n + pad):
        if n == 1:
            out.append(0)
            continue
        while p < 0 or p >= n:
            p = -p if p < 0 else 2 * n - p - 2
        out.append(p)
    return torch.tensor(out, dtype=torch.long, device=device)


def box_blur(x: torch.Tensor, size: int = 5) -> torch.Tensor:
    """``cv2.blur(x, (size, size))`` per channel: normalised box filter, anchor at the centre,
    border ``cv2.BORDER_DEFAULT`` = ``BORDER_REFLECT_101`` (the edge pixel is not repeated).

    Rounded as OpenCV does for float images: window sums in float64 (cv2's sum type for float input),
    times ``1 / size**2`` in float64, one rounding to ``x.dtype``; bit-identical to ``cv2.blur`` for float32
    input (window sums of float32 values are exact in float64, in any order), within 1e-14 for float64.

    Args:
        x: (B, C, H, W) tensor, any size >= 1.
        size: odd window size.
    """
    if size % 2 != 1:
        raise ValueError(f"box_blur: window size must be odd, got {size}")
    pad = size // 2
    h, w = x.shape[-2:]
    xp = x.index_select(-2, _reflect101_index(h, pad, x.device))
    xp = xp.index_select(-1, _reflect101_index(w, pad, x.device))
    window_sum = F.avg_pool2d(xp.double(), kernel_size=size, stride=1, divisor_override=1)
    return (window_sum * (1.0 / (size * size))).to(x.dtype)


def gray(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) luma, written as in SNR:Video_base_model4_m.py."""
    r, g, b = GRAY_WEIGHTS
    return x[:, 0:1] * r + x[:, 1:2] * g + x[:, 2:3] * b


def snr_map(x: torch.Tensor) -> torch.Tensor:
    """The SNR prior of SNR:Video_base_model4_m.py ``optimize_parameters``/``test`` (train and test: one formula)
    on the blurred image ``nf`` of the loaders (SNR:data/dataset_LOLv1.py ``__getitem__``), float32 as there.

    ``light = gray(cv2.blur(x * 255, 5x5) / 255)``, ``dark = gray(x)``, ``snr = light / (|dark - light| + 1e-4)``,
    divided by its per-image maximum (+1e-4) and clamped to [0, 1]. Bit-identical to the official float32
    numbers on CPU; every step is one correctly rounded IEEE operation, so CUDA should give the same bits.

    Args:
        x: (B, 3, H, W) RGB in [0, 1]; computed in float32 (float64 input: in float64).
    Returns:
        (B, 1, H, W) SNR map in [0, 1], dtype of ``x``.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"snr_map expects a (B, 3, H, W) RGB batch, got shape {tuple(x.shape)}")
    xf = x if x.dtype == torch.float64 else x.float()
    # a tensor, not a Python number: CUDA divides by a Python scalar as a multiply by its (rounded) reciprocal
    scale = torch.tensor(255.0, dtype=xf.dtype, device=xf.device)
    light = gray(box_blur(xf * scale, 5) / scale)  # SNR:data/dataset_LOLv1.py:91-93 (x * 255, cv2.blur, / 255)
    dark = gray(xf)
    snr = light / ((dark - light).abs() + SNR_EPS)
    peak = snr.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    return (snr / (peak + SNR_EPS)).clamp(0.0, 1.0).to(x.dtype)


def token_snr_mask(snr_feat: torch.Tensor, patch: int = PATCH, threshold: float = 0.5) -> torch.Tensor:
    """Per-token key mask of SNR:low_light_transformer.py: 4x4 patch mean of the feature-size SNR map,
    values ``<= threshold`` set to 0 (masked), larger values keep their mean (unmasked: only ``== 0`` counts).

    Args:
        snr_feat: (B, 1, h, w) SNR map at feature resolution.
    Returns:
        (B, 1, N) with N = (h / patch) * (w / patch) tokens in ``F.unfold`` order.
    """
    mean = F.unfold(snr_feat, kernel_size=patch, stride=patch).mean(dim=1, keepdim=True)
    return mean.masked_fill(mean <= threshold, 0.0)


def masked_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """SNR:transformer/Modules.py ScaledDotProductAttention, explicit matmuls (FlopCounterMode counts them).

    Args:
        q, k, v: (B, heads, N, d).
        mask: (B, 1, 1, N) or broadcastable; keys where ``mask == 0`` get logit -1e9, i.e. masked
            tokens send nothing but still receive (their queries attend normally).
    Returns:
        (output (B, heads, N, d), attention weights (B, heads, N, N)).
    """
    attn = torch.matmul(q / math.sqrt(q.shape[-1]), k.transpose(-2, -1))
    if mask is not None:
        attn = attn.masked_fill(mask == 0, -1e9)
    attn = F.softmax(attn, dim=-1)
    return torch.matmul(attn, v), attn


# ---- modules --------------------------------------------------------------------------------------
class ResidualBlockNoBN(nn.Module):
    """SNR:arch_util.py ResidualBlock_noBN: conv3x3-ReLU-conv3x3 + identity; Kaiming(fan_in) x 0.1, bias 0."""

    def __init__(self, nf: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1, bias=True)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x), inplace=True))


def _res_blocks(nf: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlockNoBN(nf) for _ in range(n)])  # SNR:arch_util.py make_layer


class MultiHeadAttention(nn.Module):
    """SNR:transformer/SubLayers.py MultiHeadAttention4: pre-LN (eps 1e-6), bias-free q/k/v/fc, residual."""

    def __init__(self, n_head: int, d_model: int, d_k: int, d_v: int):
        super().__init__()
        self.n_head, self.d_k, self.d_v = n_head, d_k, d_v
        self.w_qs = nn.Linear(d_model, n_head * d_k, bias=False)
        self.w_ks = nn.Linear(d_model, n_head * d_k, bias=False)
        self.w_vs = nn.Linear(d_model, n_head * d_v, bias=False)
        self.fc = nn.Linear(n_head * d_v, d_model, bias=False)
        self.layer_norm = nn.LayerNorm(d_model, eps=1e-6)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, N, d_model); mask: (B, 1, N) key mask (0 = masked) or None."""
        b, n, _ = x.shape
        y = self.layer_norm(x)  # the official code normalises q, k, v (all == x) with this same LayerNorm
        q = self.w_qs(y).view(b, n, self.n_head, self.d_k).transpose(1, 2)
        k = self.w_ks(y).view(b, n, self.n_head, self.d_k).transpose(1, 2)
        v = self.w_vs(y).view(b, n, self.n_head, self.d_v).transpose(1, 2)
        out, _ = masked_attention(q, k, v, None if mask is None else mask.unsqueeze(1))  # head axis
        out = out.transpose(1, 2).reshape(b, n, self.n_head * self.d_v)
        return x + self.fc(out)


class PositionwiseFeedForward(nn.Module):
    """SNR:transformer/SubLayers.py PositionwiseFeedForward4: x + W2 relu(W1 LN(x)), LayerNorm eps 1e-6."""

    def __init__(self, d_in: int, d_hid: int):
        super().__init__()
        self.w_1 = nn.Linear(d_in, d_hid)
        self.w_2 = nn.Linear(d_hid, d_in)
        self.layer_norm = nn.LayerNorm(d_in, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.w_2(F.relu(self.w_1(self.layer_norm(x))))


class EncoderLayer(nn.Module):
    """SNR:transformer/Layers.py EncoderLayer3 (attention then feed-forward; dropout 0 in every config)."""

    def __init__(self, d_model: int, d_inner: int, n_head: int, d_k: int, d_v: int):
        super().__init__()
        self.slf_attn = MultiHeadAttention(n_head, d_model, d_k, d_v)
        self.pos_ffn = PositionwiseFeedForward(d_model, d_inner)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.pos_ffn(self.slf_attn(x, mask))


class PatchTransformer(nn.Module):
    """SNR:transformer/Models.py Encoder_patch66: a stack of pre-LN layers, no positional encoding
    (the official forward receives a coordinate grid and ignores it)."""

    def __init__(
        self,
        d_model: int = 1024,
        d_inner: int = 2048,
        n_layers: int = 6,
        n_head: int = 8,
        d_k: int = 64,
        d_v: int = 64,
    ):
        super().__init__()
        self.layer_stack = nn.ModuleList([EncoderLayer(d_model, d_inner, n_head, d_k, d_v) for _ in range(n_layers)])

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """tokens: (B, N, d_model); mask: (B, 1, N) key mask or None (plain self-attention)."""
        for layer in self.layer_stack:
            tokens = layer(tokens, mask)
        return tokens


class SNRAwareNet(nn.Module):
    """SNR:low_light_transformer.py ``low_light_transformer`` with the shipped configs (nf 64, front_RBs 1,
    back_RBs 1, HR_in true). 39,124,099 parameters by default.

    Encoder (3x3 convs, strides 1/2/2, LeakyReLU 0.1) -> ``feature_extraction`` -> two branches at 1/4
    resolution: short range ``recon_trunk_light`` (6 residual blocks) and long range ``transformer``
    (4x4 patches of the 1/4-res features = 1024-d tokens, keys masked where the patch-mean SNR <= 0.5),
    fused as ``long * (1 - snr) + short * snr`` -> ``recon_trunk`` -> PixelShuffle decoder with skips
    -> ``conv_last`` + input.

    Args:
        nf: feature width (token dim = nf * 16).
        front_RBs, back_RBs, light_RBs: residual blocks before the branches, after the fusion, and in the
            short-range branch (6 is hard-coded officially).
        n_layers, n_head, d_k, d_v, d_inner: transformer size (officially 6, 8, 64, 64, 2048).
        snr_attention: mask low-SNR keys in the attention (False: plain self-attention).
        snr_fusion: weight the branches by the SNR map (False: an even 0.5 / 0.5 blend).
        long_branch: build and use the transformer branch.
        short_branch: build and use the convolutional short-range branch.

    ``forward(x, snr=None)``: H and W must be multiples of 16 (use ``SNRAware.infer`` for other sizes);
    ``snr`` defaults to :func:`snr_map` of ``x``.
    """

    def __init__(
        self,
        nf: int = 64,
        front_RBs: int = 1,
        back_RBs: int = 1,
        light_RBs: int = 6,
        n_layers: int = 6,
        n_head: int = 8,
        d_k: int = 64,
        d_v: int = 64,
        d_inner: int = 2048,
        snr_attention: bool = True,
        snr_fusion: bool = True,
        long_branch: bool = True,
        short_branch: bool = True,
    ):
        super().__init__()
        if not (long_branch or short_branch):
            raise ValueError("SNRAwareNet needs at least one of long_branch / short_branch")
        self.snr_attention = bool(snr_attention)
        self.snr_fusion = bool(snr_fusion)
        self.conv_first_1 = nn.Conv2d(3, nf, 3, 1, 1, bias=True)
        self.conv_first_2 = nn.Conv2d(nf, nf, 3, 2, 1, bias=True)
        self.conv_first_3 = nn.Conv2d(nf, nf, 3, 2, 1, bias=True)
        self.feature_extraction = _res_blocks(nf, front_RBs)
        self.recon_trunk = _res_blocks(nf, back_RBs)
        self.upconv1 = nn.Conv2d(nf * 2, nf * 4, 3, 1, 1, bias=True)
        self.upconv2 = nn.Conv2d(nf * 2, 64 * 4, 3, 1, 1, bias=True)  # official: 64 * 4 literally
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.HRconv = nn.Conv2d(64 + nf, 64, 3, 1, 1, bias=True)  # official: 64 * 2 (nf is 64 there)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1, bias=True)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        d_model = nf * PATCH * PATCH
        self.transformer = PatchTransformer(d_model, d_inner, n_layers, n_head, d_k, d_v) if long_branch else None
        self.recon_trunk_light = _res_blocks(nf, light_RBs) if short_branch else None

    # The two SNR switches, kept as small methods so tests can observe them.
    def token_mask(self, snr_feat: torch.Tensor) -> torch.Tensor | None:
        """The attention's key mask (B, 1, N), or None when ``snr_attention`` is off."""
        return token_snr_mask(snr_feat) if self.snr_attention else None

    def fusion_weight(self, snr_feat: torch.Tensor) -> torch.Tensor | float:
        """Weight of the short-range branch: the continuous SNR map, or 0.5 when ``snr_fusion`` is off."""
        return snr_feat if self.snr_fusion else 0.5

    def forward(self, x: torch.Tensor, snr: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"SNRAwareNet expects a (B, 3, H, W) batch, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ValueError(
                f"SNRAwareNet needs H and W divisible by {SIZE_MULTIPLE}, got {h}x{w}; "
                "use SNRAware.infer (pads and crops) for other sizes"
            )
        if snr is None:
            snr = snr_map(x)
        elif snr.shape[0] != x.shape[0] or snr.shape[1] != 1 or snr.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"snr must be (B, 1, H, W) matching x {tuple(x.shape)}, got {tuple(snr.shape)}")

        fea_1 = self.lrelu(self.conv_first_1(x))
        fea_2 = self.lrelu(self.conv_first_2(fea_1))
        fea_3 = self.lrelu(self.conv_first_3(fea_2))
        fea = self.feature_extraction(fea_3)
        size = fea.shape[-2:]
        snr_feat = F.interpolate(snr, size=size, mode="nearest")  # SNR:low_light_transformer.py

        fea_light = self.recon_trunk_light(fea) if self.recon_trunk_light is not None else None
        fea_long = None
        if self.transformer is not None:
            tokens = F.unfold(fea, kernel_size=PATCH, stride=PATCH).transpose(1, 2)  # (B, N, nf*16)
            tokens = self.transformer(tokens, self.token_mask(snr_feat))
            fea_long = F.fold(tokens.transpose(1, 2), output_size=size, kernel_size=PATCH, stride=PATCH)

        if fea_long is None:
            fea = fea_light
        elif fea_light is None:
            fea = fea_long
        else:
            weight = self.fusion_weight(snr_feat)
            fea = fea_long * (1 - weight) + fea_light * weight

        out = self.recon_trunk(fea)
        out = self.lrelu(self.pixel_shuffle(self.upconv1(torch.cat([out, fea_3], dim=1))))
        out = self.lrelu(self.pixel_shuffle(self.upconv2(torch.cat([out, fea_2], dim=1))))
        out = self.lrelu(self.HRconv(torch.cat([out, fea_1], dim=1)))
        return self.conv_last(out) + x
