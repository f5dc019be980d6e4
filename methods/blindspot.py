"""Shared machinery of the pixel-shuffle blind-spot denoisers AP-BSN and LG-BPN.

Re-implemented from the official code (read, not copied):

* AP-BSN: wooseoklee4/AP-BSN@210013c (MIT) -- ``src/util/util.py`` (pixel-shuffle down-sampling),
  ``src/model/DBSNl.py`` (``CentralMaskedConv2d``, ``DCl``), ``src/model/APBSN.py`` (``denoise``: R3).
* LG-BPN: Wang-XIaoDingdd/LGBPN@3ce4c7d (no license file) -- ``src/util/util.py``
  (``pixel_shuffle_down_sampling_pd``, ``DeformConv2d``), ``src/model/DBSNl.py`` (``DSPMC_9``/``DSPMC_21``).

What lives here (used by ``methods.apbsn`` and ``methods.lgbpn``):

* pixel-shuffle down-sampling (PD) in its two official layouts: the *mosaic* (sub-images tiled into one
  image, separated by constant padding; training, and AP-BSN's test pass) and the *batch* (sub-images
  stacked along the batch, each reflect-padded; LG-BPN's test / refinement passes);
* blind-spot masks and :class:`MaskedConv2d`: a convolution whose weight is multiplied in the forward
  by a mask buffer (centre pixel for AP-BSN, a diamond and an optional lattice for LG-BPN's DSPMC);
* the test-time kernel shrink of LG-BPN (:func:`shrunk_conv`): the official ``DeformConv2d`` with the
  fixed offsets ``p0 + p_n * ratio`` followed by a stride-k conv, computed as ONE dense convolution with
  an effective kernel (bilinear sampling at a fixed fractional offset is linear and separable, so the
  k*k sampled copies fold into the weights);
* :class:`DCl` (dilated conv block), R3 random-replacing refinement (:func:`r3_refine`), overlapping
  tiled inference (:func:`tiled`), the AP-BSN / LG-BPN metric protocol (:func:`paper_metrics`),
  the self-supervised L1 trainer and the shared :class:`BlindSpotMethod`.

Tensors are NCHW float32; the networks take images in [0, 1] and scale them internally to the
official [0, 255] range, so official checkpoints apply unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llbench.vocabulary import Metric
from methods.base import Method, Trainer, cap_psnr

# --------------------------------------------------------------------------------------------
# pixel-shuffle down-sampling (PD)
# --------------------------------------------------------------------------------------------


def _check_divisible(x: torch.Tensor, f: int) -> None:
    if f < 1:
        raise ValueError(f"PD factor must be >= 1, got {f}")
    h, w = x.shape[-2:]
    if h % f or w % f:
        raise ValueError(f"PD factor {f} does not divide the image size {h}x{w}")


def pd_mosaic(x: torch.Tensor, f: int, pad: int = 0, value: float = 0.0) -> torch.Tensor:
    """PD into one mosaic image: the f*f sub-images laid out on an f x f grid, each framed by ``pad``.

    ``(B, C, H, W) -> (B, C, H + 2*f*pad, W + 2*f*pad)``; sub-image (r, s) holds pixels ``x[r::f, s::f]``
    (APBSN:src/util/util.py ``pixel_shuffle_down_sampling``; constant padding ``value``).
    """
    _check_divisible(x, f)
    b, c, h, w = x.shape
    y = F.pixel_unshuffle(x, f)  # (B, C*f*f, H/f, W/f), channel index = c*f*f + r*f + s
    if pad:
        y = F.pad(y, (pad, pad, pad, pad), value=value)
    hs, ws = y.shape[-2:]
    return y.view(b, c, f, f, hs, ws).permute(0, 1, 2, 4, 3, 5).reshape(b, c, f * hs, f * ws)


def pd_mosaic_inverse(y: torch.Tensor, f: int, pad: int = 0) -> torch.Tensor:
    """Inverse of :func:`pd_mosaic`: drop each sub-image's frame and re-interleave the pixels."""
    b, c, hm, wm = y.shape
    if hm % f or wm % f:
        raise ValueError(f"mosaic size {hm}x{wm} is not a multiple of the PD factor {f}")
    hs, ws = hm // f, wm // f
    z = y.reshape(b, c, f, hs, f, ws).permute(0, 1, 2, 4, 3, 5).reshape(b, c * f * f, hs, ws)
    if pad:
        z = z[..., pad:-pad, pad:-pad]
    return F.pixel_shuffle(z, f)


def pd_batch(x: torch.Tensor, f: int, pad: int = 0) -> torch.Tensor:
    """PD into a batch of sub-images, each reflect-padded by ``pad``.

    ``(B, C, H, W) -> (B*f*f, C, H/f + 2*pad, W/f + 2*pad)``, sub-image (r, s) at batch index
    ``b*f*f + r*f + s`` (LGBPN:src/util/util.py ``pixel_shuffle_down_sampling_pd``).
    """
    _check_divisible(x, f)
    b, c, h, w = x.shape
    y = F.pixel_unshuffle(x, f)
    if pad:
        y = F.pad(y, (pad, pad, pad, pad), mode="reflect")
    hs, ws = y.shape[-2:]
    return y.view(b, c, f * f, hs, ws).transpose(1, 2).reshape(b * f * f, c, hs, ws)


def pd_batch_inverse(y: torch.Tensor, f: int, pad: int = 0) -> torch.Tensor:
    """Inverse of :func:`pd_batch` (LGBPN:src/util/util.py ``pixel_shuffle_up_sampling_pd``)."""
    bf, c, hs, ws = y.shape
    if bf % (f * f):
        raise ValueError(f"batch {bf} is not a multiple of f*f = {f * f}")
    z = y.reshape(bf // (f * f), f * f, c, hs, ws).transpose(1, 2).reshape(bf // (f * f), c * f * f, hs, ws)
    if pad:
        z = z[..., pad:-pad, pad:-pad]
    return F.pixel_shuffle(z, f)


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """Channels-last copy for CPU inference (oneDNN runs 1x1 and depthwise convs ~2x faster so).

    Unchanged when gradients are on (the dilated depthwise backward is slower in channels-last: LG-BPN
    training step 2.8 s NCHW vs 3.7 s channels-last) and off the CPU.
    """
    if x.device.type == "cpu" and x.dim() == 4 and not torch.is_grad_enabled():
        return x.contiguous(memory_format=torch.channels_last)
    return x


def pad_to_multiple(x: torch.Tensor, f: int, mode: str = "reflect") -> torch.Tensor:
    """Pad bottom/right so H and W are multiples of ``f`` (``mode``: ``reflect`` or ``constant`` zeros)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % f, (-w) % f
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x


# --------------------------------------------------------------------------------------------
# blind-spot masks and masked convolutions
# --------------------------------------------------------------------------------------------


def blind_mask(kernel_size: int, radius: int, lattice: int = 1) -> torch.Tensor:
    """(k, k) float mask, 1 on active taps.

    A tap at offset (di, dj) from the centre is active when both offsets are multiples of ``lattice``
    and ``|di| + |dj| > radius``. ``radius=0`` masks the centre only (AP-BSN ``CentralMaskedConv2d``);
    LGBPN:src/model/DBSNl.py ``DSPMC_9`` is (9, 4, 1) -> 40 active taps and ``DSPMC_21`` is (21, 4, 2)
    -> 108 active taps.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    if radius < 0 or lattice < 1:
        raise ValueError(f"need radius >= 0 and lattice >= 1, got radius={radius}, lattice={lattice}")
    c = kernel_size // 2
    d = torch.arange(kernel_size) - c
    on_lattice = (d % lattice == 0)[:, None] & (d % lattice == 0)[None, :]
    outside = (d.abs()[:, None] + d.abs()[None, :]) > radius
    return (on_lattice & outside).float()


def shrink_matrix(kernel_size: int, ratio: float) -> tuple[torch.Tensor, int]:
    """Bilinear weights of the shrunk 1-D tap positions on the integer grid.

    Tap ``a`` (offset ``d = a - k//2``) is sampled at ``d * ratio``; bilinear interpolation spreads it over
    the integers ``floor(d*ratio)`` and ``floor(d*ratio) + 1`` with weights ``1 - frac`` and ``frac``.

    Returns:
        ``(R, u_min)``: ``R`` of shape (k, L) with ``R[a, u]`` the weight of integer offset ``u + u_min``.
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"shrink ratio must be in (0, 1], got {ratio}")
    c = kernel_size // 2
    s = torch.arange(-c, c + 1, dtype=torch.float64) * ratio
    lo = torch.floor(s)
    frac = s - lo
    u_min = int(lo.min())
    length = int(lo.max()) + 2 - u_min
    rows = torch.arange(kernel_size)
    r = torch.zeros(kernel_size, length, dtype=torch.float64)
    r.index_put_((rows, (lo - u_min).long()), 1.0 - frac, accumulate=True)
    r.index_put_((rows, (lo + 1 - u_min).long()), frac, accumulate=True)
    return r, u_min


def shrunk_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    ratio: float,
    padding_mode: str = "reflect",
) -> torch.Tensor:
    """LG-BPN's test-time DSPMC: a k x k conv whose taps sample the input at ``p0 + p_n * ratio``.

    Official form (LGBPN:src/model/DBSNl.py ``DSPMC_*.forward_chop`` + src/util/util.py ``DeformConv2d``):
    reflect-pad by k//2, bilinearly sample the k*k copies at ``(i + k//2 + di*ratio, j + k//2 + dj*ratio)``
    (zero learned offsets), lay them out k x k per pixel and apply the conv weights with stride k. Since the
    sampling positions differ from pixel to pixel only by integers, each tap is a fixed bilinear shift and
    the whole operation is ONE convolution of the padded input with the folded kernel
    ``K[u, v] = sum_ab R[a, u] W[a, b] R[b, v]`` (``R`` from :func:`shrink_matrix`; L x L taps, L <= k + 1).
    For ``ratio < 1`` no sample reaches the clamped border of the official gather, so the two agree up to
    float rounding. (The official also splits the image into 4 overlapping quadrants, shave 8 / 11 > the
    sampling reach, which changes nothing for even sizes; at odd sizes its stitching leaves the middle row
    and column uninitialised.) Sampling only the active taps and contracting them with a GEMM does fewer
    multiply-adds for the 21x21 lattice at ratio 0.8 (108 vs 324 taps) but measured 2.5x slower on CPU.

    Args:
        x: (B, Cin, H, W). weight: (Cout, Cin, k, k), already masked. bias: (Cout,) or None.
        ratio: shrink factor in (0, 1]. padding_mode: ``reflect`` (official) or ``zeros``.
    """
    k = weight.shape[-1]
    c = k // 2
    h, w = x.shape[-2:]
    r, u_min = shrink_matrix(k, ratio)
    r = r.to(device=weight.device, dtype=weight.dtype)
    kernel = torch.einsum("au,oiab,bv->oiuv", r, weight, r)
    u_max = u_min + r.shape[1] - 1
    xp = F.pad(x, (c, c, c, c), mode="reflect" if padding_mode == "reflect" else "constant")
    extra = max(0, u_max - c)  # only at ratio == 1, where the extra tap has weight 0
    if extra:
        xp = F.pad(xp, (0, extra, 0, extra))
    xp = xp[..., c + u_min :, c + u_min :]
    return F.conv2d(xp, kernel, bias)[..., :h, :w]


class MaskedConv2d(nn.Conv2d):
    """Blind-spot convolution: weight * mask in every forward (mask = :func:`blind_mask`, a buffer).

    Stride 1, 'same' padding (k//2) in ``padding_mode`` (``zeros`` or ``reflect``). With ``lattice > 1`` the
    training forward runs as a dilated conv on the lattice taps only (exactly the masked dense conv, with
    lattice**2 times fewer multiply-adds). ``forward(x, ratio)`` with a ratio runs the test-time kernel
    shrink (:func:`shrunk_conv`).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        radius: int,
        lattice: int = 1,
        padding_mode: str = "zeros",
        bias: bool = True,
    ):
        if padding_mode not in ("zeros", "reflect"):
            raise ValueError(f"padding_mode must be 'zeros' or 'reflect', got {padding_mode!r}")
        super().__init__(in_ch, out_ch, kernel_size, padding=kernel_size // 2, padding_mode=padding_mode, bias=bias)
        self.radius, self.lattice = int(radius), int(lattice)
        self.register_buffer("mask", blind_mask(kernel_size, radius, lattice), persistent=False)

    @property
    def active_taps(self) -> int:
        return int(self.mask.sum())

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor, ratio: float | None = None) -> torch.Tensor:  # type: ignore[override]
        if ratio is not None:
            return shrunk_conv(x, self.masked_weight(), self.bias, ratio, self.padding_mode)
        c, lat = self.kernel_size[0] // 2, self.lattice
        if lat == 1 and self.padding_mode == "zeros":
            return F.conv2d(x, self.masked_weight(), self.bias, padding=c)
        xp = F.pad(x, (c, c, c, c), mode="reflect" if self.padding_mode == "reflect" else "constant")
        if lat == 1:
            return F.conv2d(xp, self.masked_weight(), self.bias)
        o = c % lat  # first lattice index
        sub = self.weight[..., o::lat, o::lat] * self.mask[o::lat, o::lat]
        h, w = x.shape[-2:]
        return F.conv2d(xp[..., o:, o:], sub, self.bias, dilation=lat)[..., :h, :w]


class DCl(nn.Module):
    """Dilated residual block: x + Conv1x1(ReLU(Conv3x3 dilation d)) (APBSN:src/model/DBSNl.py ``DCl``)."""

    def __init__(self, dilation: int, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=dilation, dilation=dilation),
            nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


# --------------------------------------------------------------------------------------------
# CPU allocator: keep freed memory for reuse
# --------------------------------------------------------------------------------------------

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}
_heap_lock = threading.Lock()
_heap_depth = 0  # nesting depth of retained_heap / retain_heap_for_process


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def _heap_enter(libc: Any) -> None:
    global _heap_depth
    with _heap_lock:
        _heap_depth += 1
        if _heap_depth == 1:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)


def _heap_exit(libc: Any, trim: bool) -> None:
    global _heap_depth
    with _heap_lock:
        _heap_depth -= 1
        if _heap_depth == 0:
            for param, value in _GLIBC_DEFAULTS.items():
                libc.mallopt(param, value)
            if trim:
                libc.malloc_trim(0)


@contextlib.contextmanager
def retained_heap(trim_on_exit: bool = True) -> Iterator[None]:
    """Within the block, glibc serves large blocks from the heap and keeps freed memory (no mmap/munmap).

    The activations of these networks are 50-300 MB each. glibc maps every block above 32 MB fresh and
    unmaps it when freed, so each op pays page faults on new memory: measured 45% of the CPU time of a
    256x256 LG-BPN test pass (6.9 s -> 3.8 s wall on 2 cores; peak RSS 1.44 -> 1.67 GB). Process-wide while
    active (reentrant); on exit the glibc defaults are restored and, if ``trim_on_exit``, free memory is
    returned to the OS. A no-op where glibc is not available.
    """
    libc = _libc()
    if libc is None:
        yield
        return
    _heap_enter(libc)
    try:
        yield
    finally:
        _heap_exit(libc, trim_on_exit)


def retain_heap_for_process() -> None:
    """Enter :func:`retained_heap` for the rest of the process (training: every step reuses the memory)."""
    libc = _libc()
    if libc is not None:
        _heap_enter(libc)


# --------------------------------------------------------------------------------------------
# inference helpers: R3, tiling, metrics
# --------------------------------------------------------------------------------------------


def r3_refine(
    refine: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    first: torch.Tensor,
    *,
    t: int = 8,
    p: float = 0.16,
    pad: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random-replacing refinement (APBSN:src/model/APBSN.py ``denoise``).

    ``t`` times: replace each element of the first-pass output ``first`` by the noisy ``x`` with probability
    ``p`` (an independent draw per pixel and channel, as ``torch.rand_like(x) < p`` officially), reflect-pad
    by ``pad``, run ``refine``, crop, and average the ``t`` results. Masks are drawn on the CPU from
    ``generator`` so the result does not depend on the device.
    """
    if t < 1 or not 0.0 <= p <= 1.0:
        raise ValueError(f"R3 needs t >= 1 and 0 <= p <= 1, got t={t}, p={p}")
    acc = torch.zeros_like(first)
    for _ in range(t):
        mask = (torch.rand(x.shape, generator=generator, dtype=torch.float32) < p).to(x.device)
        tmp = torch.where(mask, x, first)
        if pad:
            tmp = F.pad(tmp, (pad, pad, pad, pad), mode="reflect")
        out = refine(tmp)
        acc += out[..., pad:-pad, pad:-pad] if pad else out
    return acc / t


def tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int | None,
    overlap: int,
    align: int = 1,
) -> torch.Tensor:
    """Apply a size-preserving ``fn`` on overlapping windows of at most ``tile`` x ``tile`` pixels.

    Core tiles start at multiples of ``align`` (keeps the PD sub-image phases) and each is run with at least
    ``overlap`` context pixels on every side (rounded up to a multiple of ``align``; windows at the border
    are widened inwards to the full tile size); only the core is kept.
    When ``fn``'s receptive field is within ``overlap`` the result equals ``fn(x)``. ``tile=None`` or an
    image that fits runs ``fn(x)`` directly.
    """
    h, w = x.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        return fn(x)
    align = max(1, int(align))
    overlap = -(-int(overlap) // align) * align
    core = (int(tile) - 2 * overlap) // align * align
    if core < align:
        raise ValueError(f"tile {tile} too small for overlap {overlap} (alignment {align})")

    def window(start: int, stop: int, size: int) -> tuple[int, int]:
        lo, hi = max(0, start - overlap), min(size, stop + overlap)
        if hi - lo < tile:  # near the border: widen inwards, so no window is smaller than the tile
            lo = max(0, min(lo, hi - int(tile)) // align * align)
            hi = min(size, max(hi, lo + int(tile)))
        return lo, hi

    out: torch.Tensor | None = None
    for y0 in range(0, h, core):
        for x0 in range(0, w, core):
            y1, x1 = min(y0 + core, h), min(x0 + core, w)
            (wy0, wy1), (wx0, wx1) = window(y0, y1, h), window(x0, x1, w)
            res = fn(x[..., wy0:wy1, wx0:wx1])
            if out is None:
                out = res.new_empty(*res.shape[:-2], h, w)
            out[..., y0:y1, x0:x1] = res[..., y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]
    assert out is not None
    return out


def paper_metrics(output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """AP-BSN / LG-BPN's own protocol (LGBPN:src/trainer/base.py ``test_dataloader_process``, util.py).

    ``floor(255*output + 0.5)`` (``add_con 0.5, floor True``) clipped to [0, 255]; RGB, no crop;
    skimage ``peak_signal_noise_ratio(data_range=255)`` and ``structural_similarity(data_range=255)`` per
    channel (default 7x7 uniform window; the official ``multichannel=True`` is ``channel_axis`` today).
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if output.shape != target.shape or output.dim() != 4 or output.shape[0] != 1:
        raise ValueError(
            f"need two (1, C, H, W) tensors of one shape, got {tuple(output.shape)}, {tuple(target.shape)}"
        )
    out = np.floor(output[0].detach().double().cpu().numpy() * 255.0 + 0.5)
    out = np.clip(out, 0, 255).transpose(1, 2, 0)
    ref = np.round(target[0].detach().double().cpu().numpy() * 255.0).transpose(1, 2, 0)
    return {
        "psnr_skimage": cap_psnr(peak_signal_noise_ratio(ref, out, data_range=255)),  # inf -> 100 dB
        "ssim_skimage": float(structural_similarity(out, ref, channel_axis=2, data_range=255)),
    }


# --------------------------------------------------------------------------------------------
# training and the shared Method
# --------------------------------------------------------------------------------------------


class SelfL1Trainer(Trainer):
    """``1*self_L1``: L1(network(noisy), noisy) in the official [0, 255] units (gradients as official).

    Adam(lr, betas); step decay x ``lr_gamma`` every ``lr_step_epochs`` epochs, stepped in :meth:`end_epoch`
    (LGBPN:src/trainer/base.py ``_adjust_lr``: decays after the last iteration of epochs 8 and 16).
    """

    def __init__(self, model: nn.Module, cfg: Mapping[str, Any], device: torch.device):
        super().__init__(model, cfg, device)
        self.model.to(device)
        if self.device.type == "cpu":  # reuse freed activations across steps (see retained_heap)
            retain_heap_for_process()
        self.scale = float(getattr(model, "value_scale", 1.0))
        opt = torch.optim.Adam(self.model.parameters(), lr=float(self.cfg["lr"]), betas=tuple(self.cfg["betas"]))
        self.optimizers["adam"] = opt
        self.schedulers["step"] = torch.optim.lr_scheduler.StepLR(
            opt, step_size=int(self.cfg["lr_step_epochs"]), gamma=float(self.cfg["lr_gamma"])
        )

    def step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        self.model.train()
        x = batch["input"].to(self.device, non_blocking=True)
        opt = self.optimizers["adam"]
        opt.zero_grad(set_to_none=True)
        loss = F.l1_loss(self.model(x), x) * self.scale
        loss.backward()
        opt.step()
        return {"self_l1": float(loss.detach())}

    def end_epoch(self) -> None:
        self.schedulers["step"].step()


#: the official recipe shared by AP-BSN and LG-BPN (conf/APBSN_SIDD.yaml, conf/APBSN_SIDD/BSN_SIDD.yaml)
SIDD_TILES = 24542  # prep_SIDD: SIDD-Medium cut into 512x512 tiles, overlap 128 (AP-BSN issue #3)
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 20,
    "epoch_size": SIDD_TILES,  # samples per official epoch: end_epoch (LR decay) every 24542 // 8 steps
    "iterations": 20 * math.ceil(SIDD_TILES / 8),  # 61,360 = 20 epochs of prep_SIDD at batch 8
    "batch_size": 8,
    "crop": 120,
    "augment": ("hflip", "vflip", "rot90"),  # official 'hflip' + 'rot' (0-3 x 90 degrees): the same 8 maps
    "lr": 1e-4,
    "betas": (0.9, 0.999),
    "lr_step_epochs": 8,
    "lr_gamma": 0.1,
    "checkpoint_every": 1000,
}


def _version(t: torch.Tensor) -> int | None:
    """The tensor's in-place version counter (None for inference-mode tensors, which have none)."""
    try:
        return t._version
    except RuntimeError:
        return None


class BlindSpotMethod(Method):
    """A pixel-shuffle blind-spot denoiser: self-supervised L1 training, R3 + tiling at inference.

    The network's ``forward(x, refine=False, **kw)`` runs the training pass in train mode and the test /
    refinement pass in eval mode; ``alignment(refine, **kw)`` gives the tile alignment (lcm of PD factors).
    """

    task = "denoise"
    train_data = "noisy"
    pad_multiple = 1  # the networks pad to their PD factors themselves
    train_defaults = TRAIN_DEFAULTS
    #: inference options and their defaults (a variant's ``infer`` dict overrides them)
    infer_defaults: ClassVar[dict[str, Any]] = {
        "r3": True,
        "r3_t": 8,
        "r3_p": 0.16,
        "r3_pad": 2,
        "seed": 0,
        "tile": 512,
        "overlap": 64,
    }
    extra_columns: ClassVar[dict[str, Metric]] = {
        "psnr_skimage": Metric(
            "psnr_skimage",
            "PSNR, skimage protocol (dB)",
            True,
            2,
            "AP-BSN / LG-BPN's protocol: +0.5 floor, scikit-image PSNR",
        ),
        "ssim_skimage": Metric(
            "ssim_skimage",
            "SSIM, skimage protocol",
            True,
            4,
            "AP-BSN / LG-BPN's protocol: scikit-image SSIM, 7x7 uniform window",
        ),
    }
    forward_opts: ClassVar[tuple[str, ...]] = ()  # infer options passed through to ``model.forward``

    def __init__(self) -> None:
        self._last: tuple[Any, ...] | None = None  # (input, version, opts, output) of the last infer()

    def trainer(self, model: nn.Module, cfg: Mapping[str, Any], device: torch.device) -> Trainer:
        return SelfL1Trainer(model, cfg, device)

    @torch.no_grad()
    def infer(self, model: nn.Module, x: torch.Tensor, **opts: Any) -> torch.Tensor:
        """First pass (tiled), then R3 (``r3_t`` refinement passes, seeded by ``seed``), clamped to [0, 1]."""
        o = self.infer_options(**opts)
        kw = {k: o[k] for k in self.forward_opts if o.get(k) is not None}
        was_training = model.training
        model.eval()
        heap = retained_heap() if x.device.type == "cpu" else contextlib.nullcontext()

        def run(inp: torch.Tensor, refine: bool) -> torch.Tensor:
            align = model.alignment(refine, **kw)
            return tiled(lambda t: model(t, refine=refine, **kw), inp, o["tile"], o["overlap"], align)

        try:
            with heap:
                out = run(x, False)
                if o["r3"]:
                    gen = torch.Generator().manual_seed(int(o["seed"]))
                    out = r3_refine(
                        lambda t: run(t, True),
                        x,
                        out,
                        t=int(o["r3_t"]),
                        p=float(o["r3_p"]),
                        pad=int(o["r3_pad"]),
                        generator=gen,
                    )
        finally:
            model.train(was_training)
        out = out.clamp(0, 1)
        self._last = (x, _version(x), o, out)
        return out

    def extra_metrics(
        self,
        model: nn.Module,
        x: torch.Tensor,
        target: torch.Tensor,
        output: torch.Tensor | None = None,
        **opts: Any,
    ) -> dict[str, float]:
        """``psnr_skimage`` / ``ssim_skimage`` (:func:`paper_metrics`) of the inference output.

        Uses ``output`` when given, else the output of the last :meth:`infer` call on this same ``x``
        (identity and version checked, same options), else runs :meth:`infer` with ``opts``.
        """
        if output is None:
            last = self._last
            same_input = last is not None and last[0] is x and last[1] == _version(x)
            if same_input and (not opts or last[2] == self.infer_options(**opts)):
                output = last[3]
            else:
                output = self.infer(model, x, **opts)
        return paper_metrics(output, target)


def official_denoiser_state(state: Mapping[str, Any], skip: Callable[[str], bool]) -> dict[str, torch.Tensor]:
    """The denoiser's weights from an AP-BSN / LG-BPN checkpoint (``{'model_weight': {'denoiser': sd}}``
    or a bare state dict): ``module.`` / ``bsn.`` prefixes stripped, keys for which ``skip`` holds dropped.
    """
    if "model_weight" in state:
        state = state["model_weight"]["denoiser"]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        k = key
        for prefix in ("module.", "bsn."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        if not skip(k):
            out[k] = value
    return out
