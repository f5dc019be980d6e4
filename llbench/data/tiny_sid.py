"""Tiny SID-like raw dataset made from photographs shipped inside scikit-image.

Each scene is a real photograph (``skimage.data``), taken to linear light (inverse sRGB transfer), given
camera-like channel sensitivities, mosaicked to an RGGB Bayer pattern and "exposed" twice: a long
exposure (10 s) and short exposures (0.1 s and 0.04 s: amplification ratios 100 and 250, as in SID) with
Poisson shot noise and Gaussian read noise, quantized to 14-bit values with black level 512 and white
level 16383 (the Sony A7S II levels SID's pack_raw assumes). Frames are written as DNG with pidng
(RGGB CFA, black/white levels, exposure time, an XYZ->sRGB colour matrix and the as-shot neutral, so
LibRaw's camera white balance undoes the channel sensitivities) and are read back through rawpy exactly
like SID's ARW files, in SID's layout and list-file format (scene ids 0xxxx train, 2xxxx val, 1xxxx
test; ``_00_`` frames plus one ``_01_`` frame in train and test to exercise frame filtering).

Deterministic: the same ``seed`` gives byte-identical files (no timestamps are written).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from llbench.data.raw import BLACK_LEVEL, WHITE_LEVEL

__all__ = ["SCENES", "make_tiny_sid", "mosaic_rggb", "srgb_to_linear", "write_dng"]

#: (scene id, skimage.data image, split); the first digit of the id is SID's split code
SCENES: tuple[tuple[str, str, str], ...] = (
    ("00001", "astronaut", "train"),
    ("00002", "rocket", "train"),
    ("00003", "immunohistochemistry", "train"),
    ("20001", "hubble_deep_field", "val"),
    ("10001", "chelsea", "test"),
    ("10002", "coffee", "test"),
)
#: scenes that get a second burst frame ``_01_`` (filtered out by ``frames="00"``)
EXTRA_FRAME_SCENES = ("00001", "10001")
#: camera channel sensitivities relative to green (the DNG as-shot neutral); LibRaw's camera WB undoes them
SENSITIVITY = (0.5, 1.0, 0.7)
#: linear sRGB (D65) from CIE XYZ (IEC 61966-2-1); as the DNG ColorMatrix1 it makes camera RGB = linear sRGB
XYZ_TO_SRGB = (
    (3.2406, -1.5372, -0.4986),
    (-0.9689, 1.8758, 0.0415),
    (0.0557, -0.2040, 1.0570),
)
_CFA_CODES = {"RGGB": (0, 1, 1, 2), "BGGR": (2, 1, 1, 0), "GRBG": (1, 0, 2, 1), "GBRG": (1, 2, 0, 1)}


def srgb_to_linear(img: np.ndarray) -> np.ndarray:
    """Inverse sRGB transfer function on values in [0, 1]."""
    img = np.clip(img, 0.0, 1.0)
    return np.where(img <= 0.04045, img / 12.92, ((img + 0.055) / 1.055) ** 2.4)


def mosaic_rggb(rgb: np.ndarray) -> np.ndarray:
    """Sample an (H, W, 3) image on an RGGB Bayer grid: R at (0,0), G at (0,1) and (1,0), B at (1,1)."""
    h, w, _ = rgb.shape
    out = np.empty((h, w), dtype=rgb.dtype)
    out[0::2, 0::2] = rgb[0::2, 0::2, 0]
    out[0::2, 1::2] = rgb[0::2, 1::2, 1]
    out[1::2, 0::2] = rgb[1::2, 0::2, 1]
    out[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return out


def _rational(x: float, max_den: int = 1_000_000) -> list[int]:
    f = Fraction(x).limit_denominator(max_den)
    return [f.numerator, f.denominator]


def write_dng(
    path: str | os.PathLike,
    bayer: np.ndarray,
    exposure: float | None,
    cfa: str = "RGGB",
    black: int = BLACK_LEVEL,
    white: int = WHITE_LEVEL,
    neutral: tuple[float, float, float] = SENSITIVITY,
) -> Path:
    """Write a Bayer mosaic (uint16, H x W) as an uncompressed DNG that LibRaw/rawpy reads like a camera raw.

    Args:
        path: output file (``.dng``).
        bayer: raw values, black level included.
        exposure: ExposureTime tag in seconds; ``None`` writes no exposure metadata.
        cfa: 2x2 CFA pattern name (``RGGB``, ``BGGR``, ``GRBG``, ``GBRG``).
        black, white: BlackLevel / WhiteLevel tags.
        neutral: AsShotNeutral (camera response to white); LibRaw's camera WB multipliers are its inverse.
    """
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.defs import CalibrationIlluminant, DNGVersion, Orientation, PhotometricInterpretation

    if cfa not in _CFA_CODES:
        raise ValueError(f"unknown CFA pattern {cfa!r}; allowed: {sorted(_CFA_CODES)}")
    bayer = np.ascontiguousarray(bayer)
    if bayer.dtype != np.uint16 or bayer.ndim != 2:
        raise TypeError(f"bayer must be a 2-D uint16 array, got {bayer.dtype} {bayer.shape}")
    h, w = bayer.shape
    tags = DNGTags()
    tags.set(Tag.ImageWidth, w)
    tags.set(Tag.ImageLength, h)
    tags.set(Tag.TileWidth, w)
    tags.set(Tag.TileLength, h)
    tags.set(Tag.Orientation, Orientation.Horizontal)
    tags.set(Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array)
    tags.set(Tag.SamplesPerPixel, 1)
    tags.set(Tag.BitsPerSample, 16)  # 14-bit values in 16-bit words (pidng's 14-bit packer is unreliable)
    tags.set(Tag.CFARepeatPatternDim, [2, 2])
    tags.set(Tag.CFAPattern, list(_CFA_CODES[cfa]))
    tags.set(Tag.BlackLevel, int(black))
    tags.set(Tag.WhiteLevel, int(white))
    tags.set(Tag.ColorMatrix1, [_rational(v, 10000) for row in XYZ_TO_SRGB for v in row])
    tags.set(Tag.CalibrationIlluminant1, CalibrationIlluminant.D65)
    tags.set(Tag.AsShotNeutral, [_rational(v, 10000) for v in neutral])
    if exposure is not None:
        tags.set(Tag.ExposureTime, [_rational(exposure)])
    tags.set(Tag.PhotographicSensitivity, [200])
    tags.set(Tag.Make, "llbench")
    tags.set(Tag.Model, "tiny-sid")
    tags.set(Tag.UniqueCameraModel, "llbench tiny-sid")
    tags.set(Tag.DNGVersion, DNGVersion.V1_4)
    tags.set(Tag.DNGBackwardVersion, DNGVersion.V1_2)
    writer = RAW2DNG()
    writer.options(tags, path="", compress=False)
    buf = writer.convert(bayer)  # no filename: returns the bytes
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(bytes(buf))
    os.replace(tmp, path)
    return path


def _photo(name: str, size: int) -> np.ndarray:
    """Center-square crop of ``skimage.data.<name>`` resized to ``size`` x ``size``, RGB float in [0, 1]."""
    from skimage import data, transform

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3].astype(np.float64) / 255.0
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    img = img[top : top + s, left : left + s]
    return np.clip(transform.resize(img, (size, size), order=1, anti_aliasing=True, mode="reflect"), 0, 1)


def _expose(
    radiance: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
    read_noise: float,
    electrons_per_dn: float,
) -> np.ndarray:
    """Raw DN of a Bayer radiance map (full scale = the long exposure) exposed ``fraction`` as long."""
    full = WHITE_LEVEL - BLACK_LEVEL
    electrons = radiance * fraction * full * electrons_per_dn
    shot = rng.poisson(np.maximum(electrons, 0.0)) / electrons_per_dn
    dn = BLACK_LEVEL + shot + rng.normal(0.0, read_noise, size=radiance.shape)
    return np.clip(np.rint(dn), 0, WHITE_LEVEL).astype(np.uint16)


def make_tiny_sid(
    out_root: str | os.PathLike,
    seed: int = 0,
    size: int = 384,
    train_size: int = 256,
    long_exposure: float = 10.0,
    short_exposures: tuple[float, ...] = (0.1, 0.04),
    read_noise: float = 2.0,
    electrons_per_dn: float = 1.0,
) -> Path:
    """Write the tiny SID-like dataset under ``out_root`` (SID layout, DNG files, list files).

    Args:
        out_root: dataset root; gets ``Sony/short``, ``Sony/long`` and ``Sony_{train,val,test}_list.txt``.
        seed: noise seed; the same seed writes byte-identical files.
        size: raw side length of test scenes (384 raw -> 192 packed, a 384 x 384 sRGB target).
        train_size: raw side length of train and val scenes.
        long_exposure: ground-truth exposure in seconds.
        short_exposures: input exposures in seconds (ratios long/short, capped at 300 by the loader).
        read_noise: Gaussian read noise in DN; electrons_per_dn: conversion gain (shot noise level).
    Returns:
        ``Path(out_root)``.
    """
    for n in (size, train_size):
        if n < 128 or n % 16:
            raise ValueError(f"image sizes must be multiples of 16 and >= 128, got {n}")
    root = Path(out_root)
    short_dir, long_dir = root / "Sony" / "short", root / "Sony" / "long"
    short_dir.mkdir(parents=True, exist_ok=True)
    long_dir.mkdir(parents=True, exist_ok=True)
    sens = np.asarray(SENSITIVITY)
    lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for scene, photo, split in SCENES:
        side = size if split == "test" else train_size
        linear = srgb_to_linear(_photo(photo, side))
        linear = np.clip(linear * (0.8 / max(float(np.percentile(linear, 99.5)), 1e-3)), 0.0, 1.0)
        radiance = mosaic_rggb(linear * sens)  # fraction of full scale reached by the long exposure
        rng = np.random.default_rng([seed, int(scene)])
        long_name = f"{scene}_00_{long_exposure:g}s.dng"
        long_raw = _expose(radiance, 1.0, rng, read_noise, electrons_per_dn)
        write_dng(long_dir / long_name, long_raw, long_exposure)
        frames = ["00", "01"] if scene in EXTRA_FRAME_SCENES else ["00"]
        for frame in frames:
            for t in short_exposures if frame == "00" else short_exposures[:1]:
                short_name = f"{scene}_{frame}_{t:g}s.dng"
                short_raw = _expose(radiance, t / long_exposure, rng, read_noise, electrons_per_dn)
                write_dng(short_dir / short_name, short_raw, t)
                lists[split].append(f"./Sony/short/{short_name} ./Sony/long/{long_name} ISO200 F8")
    for split, lines in lists.items():
        (root / f"Sony_{split}_list.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return root
