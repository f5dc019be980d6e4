"""Overlapping-tile inference for ALEN (packed raw in, 2x larger sRGB out).

A full Sony frame is 1424 x 2128 packed; ALEN's first non-local block alone would need a
(356*532) x (89*133) attention matrix (~9 GB fp32) on it, so inference runs on overlapping tiles.
Tiles are blended with weights that are 0 within ``overlap/4`` of an inner tile edge and ramp linearly
to 1 across the rest of the overlap: a purely local network whose receptive-field radius is below
``overlap/4`` gives exactly its untiled output. ALEN itself is not local (its SE blocks average over
the whole input and the non-local blocks attend across it), so for ALEN tiling changes the context each
pixel sees: that is the price of fitting a full frame in memory, and the ramp hides tile seams.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["pad_to", "tile_starts", "tiled_apply"]


def pad_to(x: torch.Tensor, multiple: int, min_size: int) -> tuple[torch.Tensor, int, int]:
    """Pad H, W of ``x`` at the bottom/right (reflect, else replicate) to ``max(min_size, k * multiple)``."""
    h, w = x.shape[-2:]
    th = max(min_size, -(-h // multiple) * multiple)
    tw = max(min_size, -(-w // multiple) * multiple)
    ph, pw = th - h, tw - w
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap`` shared pixels."""
    if tile >= length:
        return [0]
    stride = tile - overlap
    if stride <= 0:
        raise ValueError(f"tile ({tile}) must be larger than overlap ({overlap})")
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(n: int, lo_inner: bool, hi_inner: bool, overlap: int, margin: int, device, dtype) -> torch.Tensor:
    """1-D blending weight of a tile of ``n`` output pixels; inner edges ramp 0 -> 1 over ``overlap``."""
    w = torch.ones(n, device=device, dtype=dtype)
    if overlap <= 0:
        return w
    d = torch.arange(n, device=device, dtype=dtype)
    ramp_len = max(overlap - 2 * margin, 1)

    def edge(dist: torch.Tensor) -> torch.Tensor:
        return ((dist + 0.5 - margin) / ramp_len).clamp(0, 1)

    if lo_inner:
        w = torch.minimum(w, edge(d))
    if hi_inner:
        w = torch.minimum(w, edge(n - 1 - d))
    return w


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int | None,
    overlap: int,
    scale: int = 2,
    multiple: int = 8,
    min_size: int = 64,
) -> torch.Tensor:
    """Run ``fn`` on overlapping tiles of ``x`` (B, C, H, W) and blend the (B, C', scale*H, scale*W) outputs.

    Args:
        fn: the network; called on (B, C, t, t) tiles padded to ``multiple`` / ``min_size``.
        tile: tile side in input pixels (rounded down to ``multiple``); ``None`` or >= the image: one pass.
        overlap: input pixels shared by neighbouring tiles (rounded up to ``multiple``).
        scale: output / input size ratio.
    """
    h, w = x.shape[-2:]
    if tile is None or (tile >= h and tile >= w):
        xp, _, _ = pad_to(x, multiple, min_size)
        return fn(xp)[..., : scale * h, : scale * w]
    tile = max(min_size, tile // multiple * multiple)
    overlap = -(-max(overlap, 0) // multiple) * multiple
    if overlap >= tile:
        raise ValueError(f"overlap ({overlap}) must be smaller than tile ({tile})")
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    out = weight = None
    margin = scale * overlap // 4
    for y0 in ys:
        for x0 in xs:
            patch = x[..., y0 : y0 + tile, x0 : x0 + tile]
            ph, pw = patch.shape[-2:]
            y = tiled_apply(fn, patch, None, 0, scale, multiple, min_size)  # pads a short border tile
            if out is None:
                out = y.new_zeros(y.shape[0], y.shape[1], scale * h, scale * w)
                weight = y.new_zeros(1, 1, scale * h, scale * w)
            wy = _ramp(scale * ph, y0 > 0, y0 + ph < h, scale * overlap, margin, y.device, y.dtype)
            wx = _ramp(scale * pw, x0 > 0, x0 + pw < w, scale * overlap, margin, y.device, y.dtype)
            wt = wy[:, None] * wx[None, :]
            out[..., scale * y0 : scale * (y0 + ph), scale * x0 : scale * (x0 + pw)] += y * wt
            weight[..., scale * y0 : scale * (y0 + ph), scale * x0 : scale * (x0 + pw)] += wt
    return out / weight
