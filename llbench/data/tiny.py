"""Tiny datasets for smoke runs and CI, generated deterministically from photographs shipped in scikit-image.

Degradations are physically motivated and applied in linear light:

* ``lol`` / ``lsrw`` (paired enhancement): exposure drop and an extra gamma, Poisson shot noise plus
  Gaussian read noise on a simulated sensor, sRGB encoding and 8-bit quantisation. The two sets differ
  in exposure, noise and gamma ranges (LSRW is brighter with more read noise, as its phone/camera mix).
* ``sidd`` (denoising): noise added to the Bayer mosaic and then demosaicked, so it is spatially
  correlated like real sRGB noise (what blind-spot networks must cope with).
* ``unpaired`` (NIQE-only evaluation): low-light test images without targets.
* ``sid`` (raw): see :mod:`llbench.data.tiny_sid`.

Training images and test images come from different photographs (or disjoint regions). Same seed, same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from llbench.data.manifest import writing_dataset
from llbench.vocabulary import KINDS

# (photograph, (y0, y1, x0, x1)) regions; train and test regions never overlap.
TRAIN_REGIONS = [("astronaut", (0, 300, 0, 512)), ("coffee", (0, 400, 0, 600)), ("rocket", (0, 230, 0, 640))]
TEST_REGIONS = [("chelsea", (22, 278, 33, 417)), ("astronaut", (320, 512, 256, 512)), ("rocket", (235, 427, 192, 448))]


#: low-light capture models of the paired sets (keyword arguments of :func:`low_light`), shared with the
#: full-size stand-ins (:mod:`llbench.data.fullsize`)
LOW_LIGHT_MODELS: dict[str, dict[str, tuple[float, float] | float]] = {
    "lol": {"exposure": (0.03, 0.08), "gamma": (1.0, 1.15), "full_well": 2000.0, "read": 0.002},
    "lsrw": {"exposure": (0.08, 0.2), "gamma": (1.1, 1.3), "full_well": 1000.0, "read": 0.006},
}
#: SIDD-like noise: full well drawn uniformly from this range per image, Gaussian read noise (linear units)
SIDD_FULL_WELL, SIDD_READ = (150.0, 400.0), 0.004


def _photo(name: str) -> np.ndarray:
    from skimage import data

    return getattr(data, name)()


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def _crops(regions, n: int, size: tuple[int, int], rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` random crops of ``size`` cycling over ``regions``."""
    out = []
    for k in range(n):
        name, (y0, y1, x0, x1) = regions[k % len(regions)]
        img = _photo(name)[y0:y1, x0:x1]
        h, w = size
        y = int(rng.integers(0, img.shape[0] - h + 1))
        x = int(rng.integers(0, img.shape[1] - w + 1))
        out.append(img[y : y + h, x : x + w])
    return out


def _test_images(size: tuple[int, int]) -> list[np.ndarray]:
    h, w = size
    return [_photo(name)[y0 : y0 + h, x0 : x0 + w] for name, (y0, _, x0, _) in TEST_REGIONS]


def low_light(img: np.ndarray, rng: np.random.Generator, exposure, gamma, full_well: float, read: float) -> np.ndarray:
    """Simulate a low-light capture of an 8-bit sRGB image; returns 8-bit sRGB."""
    lin = srgb_to_linear(img.astype(np.float64) / 255.0)
    k = rng.uniform(*exposure)
    g = rng.uniform(*gamma)
    electrons = rng.poisson(np.clip(k * lin, 0, 1) * full_well)
    noisy = electrons / full_well + rng.normal(0.0, read, lin.shape)
    return to_u8(linear_to_srgb(np.clip(noisy, 0, 1) ** g))


def _mosaic_noise(lin: np.ndarray, rng: np.random.Generator, full_well: float, read: float) -> np.ndarray:
    """Poisson-Gaussian noise on an RGGB mosaic, then bilinear demosaicking: spatially correlated noise."""
    from scipy.ndimage import convolve

    h, w, _ = lin.shape
    masks = np.zeros((h, w, 3), dtype=bool)
    masks[0::2, 0::2, 0] = True
    masks[0::2, 1::2, 1] = True
    masks[1::2, 0::2, 1] = True
    masks[1::2, 1::2, 2] = True
    mosaic = (lin * masks).sum(axis=2)
    noisy = rng.poisson(np.clip(mosaic, 0, 1) * full_well) / full_well + rng.normal(0.0, read, mosaic.shape)
    k_rb = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    k_g = np.array([[0.0, 0.25, 0.0], [0.25, 1.0, 0.25], [0.0, 0.25, 0.0]])
    out = np.empty_like(lin)
    for c, kern in enumerate((k_rb, k_g, k_rb)):
        out[..., c] = convolve(noisy * masks[..., c], kern, mode="mirror")
    return out


def _write(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG", compress_level=6)


def _paired(root: Path, seed: int, exposure, gamma, full_well, read, n_train=6, train_size=(160, 160)) -> None:
    rng = np.random.default_rng(seed)
    low, high = KINDS["paired"].input_dir, KINDS["paired"].target_dir
    for i, img in enumerate(_crops(TRAIN_REGIONS, n_train, train_size, rng)):
        _write(root / "train" / high / f"{i:03d}.png", img)
        _write(root / "train" / low / f"{i:03d}.png", low_light(img, rng, exposure, gamma, full_well, read))
    for i, img in enumerate(_test_images((192, 256))):
        _write(root / "test" / high / f"{i:03d}.png", img)
        _write(root / "test" / low / f"{i:03d}.png", low_light(img, rng, exposure, gamma, full_well, read))


def make_lol(root: Path, seed: int = 0) -> None:
    """LOL-like: strong exposure drop (x0.03-0.08), gamma 1.0-1.15, moderate shot/read noise."""
    _paired(root, seed, **LOW_LIGHT_MODELS["lol"])


def make_lsrw(root: Path, seed: int = 1) -> None:
    """LSRW-like: milder exposure drop (x0.08-0.2), gamma 1.1-1.3, more read noise."""
    _paired(root, seed, **LOW_LIGHT_MODELS["lsrw"])


def make_sidd(root: Path, seed: int = 2) -> None:
    """SIDD-like sRGB pairs with demosaic-correlated, signal-dependent noise."""
    rng = np.random.default_rng(seed)

    def pair(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lin = srgb_to_linear(img.astype(np.float64) / 255.0)
        fw = rng.uniform(*SIDD_FULL_WELL)
        return to_u8(linear_to_srgb(lin)), to_u8(linear_to_srgb(_mosaic_noise(lin, rng, fw, SIDD_READ)))

    noisy_dir, clean_dir = KINDS["denoise"].input_dir, KINDS["denoise"].target_dir
    for i, img in enumerate(_crops(TRAIN_REGIONS, 4, (160, 160), rng)):
        clean, noisy = pair(img)
        _write(root / "train" / clean_dir / f"{i:03d}.png", clean)
        _write(root / "train" / noisy_dir / f"{i:03d}.png", noisy)
    for i, img in enumerate(_test_images((192, 192))[:2]):
        clean, noisy = pair(img)
        _write(root / "test" / clean_dir / f"{i:03d}.png", clean)
        _write(root / "test" / noisy_dir / f"{i:03d}.png", noisy)


def make_unpaired(root: Path, seed: int = 3) -> None:
    """Low-light test images without targets (NIQE-only protocol, like DICM/LIME/NPE)."""
    rng = np.random.default_rng(seed)
    for i, img in enumerate(_test_images((192, 256))[:2]):
        low = low_light(img, rng, (0.05, 0.1), (1.0, 1.1), 1500.0, 0.003)
        _write(root / "test" / KINDS["unpaired"].input_dir / f"{i:03d}.png", low)


def make_sid(root: Path, seed: int = 4) -> None:
    from llbench.data.tiny_sid import make_tiny_sid

    make_tiny_sid(root, seed=seed)


GENERATORS: dict[str, Callable[[Path, int], None]] = {
    "lol": make_lol,
    "lsrw": make_lsrw,
    "sidd": make_sidd,
    "unpaired": make_unpaired,
    "sid": make_sid,
}
DEFAULT_SEEDS = {"lol": 0, "lsrw": 1, "sidd": 2, "unpaired": 3, "sid": 4}


def make_tiny(name: str, root: Path | str, seed: int | None = None) -> Path:
    """Generate tiny dataset ``name`` into ``root`` atomically (temp dir, then rename) with a manifest."""
    if name not in GENERATORS:
        raise KeyError(f"unknown tiny dataset {name!r}; allowed: {sorted(GENERATORS)}")
    with writing_dataset(root) as tmp:
        GENERATORS[name](tmp, DEFAULT_SEEDS[name] if seed is None else seed)
    return Path(root)
