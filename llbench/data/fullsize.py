"""Full-size stand-ins of the real datasets, for benchmarks of the training data path (never committed).

``make_full_size(name, root, fraction, seed)`` writes a synthetic dataset in the real dataset's canonical
layout at its real image sizes, with its image counts scaled by ``fraction`` (sizes never change). Content and
degradations are those of the tiny sets (:mod:`llbench.data.tiny`, :mod:`llbench.data.tiny_sid`):

* content: random crops (random horizontal flips) of scikit-image photographs, upscaled to the target size
  with bicubic interpolation, then given fine multi-scale texture in linear light, so the PNGs compress and
  decode like photographs rather than like smooth upscales; train and test content come from disjoint regions;
* ``lol``, ``lolv2-real``, ``lolv2-syn``: the LOL low-light model, ``lsrw``: the LSRW model
  (:func:`llbench.data.tiny.low_light`, parameters :data:`llbench.data.tiny.LOW_LIGHT_MODELS`);
* ``sidd``: demosaic-correlated, signal-dependent noise as :func:`llbench.data.tiny.make_sidd` (computed in
  float32 with OpenCV filtering and lookup-table sRGB coding, for 16-Mpixel frames);
* ``sid``: full Sony A7S II frames as 16-bit DNGs with the exposure model and tags of :mod:`~llbench.data.tiny_sid`.

One image at a time (a SIDD frame is 48 MB decoded). Every scene draws from its own random stream
``(seed, dataset, split, index)``: the same seed gives the same bytes, and for the image datasets a smaller
fraction gives a subset of a larger one. Written into a temporary folder next to ``root``, renamed when
complete, with ``FULLSIZE.json`` (what was generated) and ``MANIFEST.sha256``. Not part of ``make report``.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from llbench.data.manifest import writing_dataset
from llbench.data.tiny import (
    LOW_LIGHT_MODELS,
    SIDD_FULL_WELL,
    SIDD_READ,
    TEST_REGIONS,
    TRAIN_REGIONS,
    linear_to_srgb,
    low_light,
    srgb_to_linear,
    to_u8,
)
from llbench.vocabulary import KINDS

__all__ = [
    "FULL_SIZE",
    "NAMES",
    "SID_SPLITS",
    "default_fraction",
    "demosaic_bilinear",
    "full_size_counts",
    "make_full_size",
    "scaled_count",
    "sid_frames",
]

INFO = "FULLSIZE.json"


@dataclass(frozen=True)
class Group:
    """Items of one split (or one camera of a split): real count, frame sizes (H, W) cycled by index."""

    key: str  # count key: "<split>" or "<split>/<subset>" (llbench.data.prepare.COUNTS keys)
    split: str
    count: int
    sizes: tuple[tuple[int, int], ...]
    prefix: str = ""


@dataclass(frozen=True)
class FullSpec:
    """One real dataset as a full-size stand-in: its layout kind, groups and default fraction."""

    name: str
    kind: str
    model: str  # "lol" | "lsrw" | "sidd" | "sid"
    groups: tuple[Group, ...]
    default_fraction: float
    id_format: str = "{n}"  # file id of item n (1-based) of a group, after the group's prefix


# SIDD-Medium frame sizes (H, W) by scene, cycled: 40 % Galaxy S6 Edge 5328x3000, 40 % Google Pixel 4048x3044,
# 20 % portrait 3000x5328. The mix is our choice; the phones are two of SIDD's five (Abdelhamed et al., CVPR 2018).
SIDD_FRAMES: tuple[tuple[int, int, str], ...] = (
    (3000, 5328, "S6"),
    (3044, 4048, "GP"),
    (3000, 5328, "S6"),
    (3044, 4048, "GP"),
    (5328, 3000, "S6"),
)
SIDD_TEST_SIZE = (256, 256)  # SIDD validation blocks are 256x256 (ValidationNoisyBlocksSrgb.mat, 40x32 blocks)

_600x400, _384x384 = ((400, 600),), ((384, 384),)  # LOL and LOL-v2 real 600x400 (W x H); LOL-v2 synthetic 384x384
FULL_SIZE: dict[str, FullSpec] = {
    s.name: s
    for s in (
        # counts: llbench.data.prepare.COUNTS (LOL BMVC 2018; LOL-v2 TIP 2021; LSRW release; SIDD_Medium_Srgb readme)
        FullSpec(
            "lol", "paired", "lol", (Group("train", "train", 485, _600x400), Group("test", "test", 15, _600x400)), 1.0
        ),
        FullSpec(
            "lolv2-real",
            "paired",
            "lol",
            (Group("train", "train", 689, _600x400), Group("test", "test", 100, _600x400)),
            1.0,
            "{n:05d}",
        ),
        FullSpec(
            "lolv2-syn",
            "paired",
            "lol",
            (Group("train", "train", 900, _384x384), Group("test", "test", 100, _384x384)),
            1.0,
            "{n:05d}",
        ),
        FullSpec(  # Huawei P40 Pro 960x720, Nikon D7500 960x640 (LSRW release, R2RNet JVCIR 2023)
            "lsrw",
            "paired",
            "lsrw",
            (
                Group("train/Huawei", "train", 2450, ((720, 960),), "Huawei_"),
                Group("train/Nikon", "train", 3150, ((640, 960),), "Nikon_"),
                Group("test/Huawei", "test", 30, ((720, 960),), "Huawei_"),
                Group("test/Nikon", "test", 20, ((640, 960),), "Nikon_"),
            ),
            0.1,
        ),
        FullSpec(
            "sidd",
            "denoise",
            "sidd",
            (  # 320 pairs = 160 scenes x 2 captures (SIDD-Medium sRGB _ReadMe_sRGB.txt); test: one block per val image
                Group("train", "train", 320, tuple(f[:2] for f in SIDD_FRAMES)),
                Group("test", "test", 40, (SIDD_TEST_SIZE,)),
            ),
            0.1,
        ),
    )
}

# SID Sony: (long exposures = scenes, short exposures = list lines) per split, official lists (SID repository
# dataset/Sony_*_list.txt: 161/20/50 long, 1865/234/598 lines). Val and test are kept small: one short each.
SID_SPLITS: dict[str, tuple[int, int]] = {"train": (161, 1865), "val": (20, 20), "test": (50, 50)}
SID_SIZE = (2848, 4256)  # H x W of a Sony A7S II raw frame as rawpy reads SID's ARW files (raw_image_visible)
SID_LONG = 10.0  # s; short exposures 0.1 / 0.04 / 0.033 s give SID's ratios 100 / 250 / 300 (10 / 0.033 capped)
SID_SHORT = (0.1, 0.04, 0.033)
SID_READ, SID_ELECTRONS_PER_DN = 2.0, 1.0  # llbench.data.tiny_sid.make_tiny_sid defaults
SID_DEFAULT_FRACTION = 0.1
SID_FIRST_ID = {"train": 1, "val": 20001, "test": 10001}  # SID scene ids: 0xxxx train, 2xxxx val, 1xxxx test

NAMES = (*FULL_SIZE, "sid")
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}


# ---- counts -------------------------------------------------------------------------------------
def scaled_count(n: int, fraction: float) -> int:
    """``n * fraction`` rounded half up, at least 1."""
    return max(1, math.floor(n * fraction + 0.5))


def default_fraction(name: str) -> float:
    """The fraction ``make_full_size`` uses when none is given."""
    _check_name(name)
    return SID_DEFAULT_FRACTION if name == "sid" else FULL_SIZE[name].default_fraction


def full_size_counts(name: str, fraction: float | None = None) -> dict[str, int]:
    """Item counts of the stand-in: pairs per group key; for ``sid`` short frames per split and ``<split>_scenes``."""
    _check_name(name)
    fraction = _check_fraction(default_fraction(name) if fraction is None else fraction)
    if name == "sid":
        counts = {}
        for split, (scenes, shorts) in SID_SPLITS.items():
            counts[f"{split}_scenes"] = n = scaled_count(scenes, fraction)
            counts[split] = max(n, scaled_count(shorts, fraction))
        return counts
    return {g.key: scaled_count(g.count, fraction) for g in FULL_SIZE[name].groups}


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise KeyError(f"unknown full-size dataset {name!r}; allowed: {', '.join(NAMES)}")


def _check_fraction(fraction: float) -> float:
    if not (isinstance(fraction, int | float) and 0 < fraction <= 1):
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    return float(fraction)


# ---- content ------------------------------------------------------------------------------------
_LIN = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)  # 8-bit sRGB -> linear, exact
_ENC = to_u8(linear_to_srgb(np.linspace(0.0, 1.0, 65536)))  # linear (16-bit steps) -> 8-bit sRGB


def _encode(lin: np.ndarray) -> np.ndarray:
    """``to_u8(linear_to_srgb(lin))`` through a 65536-entry table (within one code value of the exact)."""
    idx = np.clip(lin, 0.0, 1.0)
    idx *= 65535.0
    idx += 0.5
    return _ENC[idx.astype(np.uint16)]


def _linear(img: np.ndarray) -> np.ndarray:
    """8-bit sRGB -> linear float32 through the exact 256-entry table (OpenCV's LUT: fast, threaded)."""
    import cv2

    return cv2.LUT(img, _LIN.reshape(256, 1))


@cache
def _region(name: str, box: tuple[int, int, int, int]) -> np.ndarray:
    from skimage import data

    y0, y1, x0, x1 = box
    return np.ascontiguousarray(getattr(data, name)()[y0:y1, x0:x1, :3])


def _content(regions, k: int, out_hw, rng: np.random.Generator, frame_hw=None) -> np.ndarray:
    """A random crop of photo region ``k`` (cycled) upscaled bicubically to ``out_hw``; uint8 sRGB.

    With ``frame_hw`` the output is a random ``out_hw`` window of such an upscale to ``frame_hw``.
    """
    photo = _region(*regions[k % len(regions)])
    (oh, ow), (fh, fw) = out_hw, frame_hw or out_hw
    rh, rw = photo.shape[:2]
    ch = min(rh, rw * fh / fw) * rng.uniform(0.6, 1.0)  # the frame's aspect, 60-100 % of the largest crop
    cw = ch * fw / fh
    y, x = rng.uniform(0, rh - ch), rng.uniform(0, rw - cw)
    wy, wx = int(rng.integers(0, fh - oh + 1)), int(rng.integers(0, fw - ow + 1))
    sy, sx = ch / fh, cw / fw  # photo pixels per output pixel
    box = (x + wx * sx, y + wy * sy, x + (wx + ow) * sx, y + (wy + oh) * sy)
    img = np.asarray(Image.fromarray(photo).resize((ow, oh), Image.Resampling.BICUBIC, box=box))
    return np.ascontiguousarray(img[:, ::-1]) if rng.random() < 0.5 else img


def _texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean fine texture, float32 (h, w), std ~1: octaves of 1, 2, 4 and 8 px, 1/f-like weights."""
    import cv2

    out = np.zeros((h, w), np.float32)
    weights = {1: 0.45, 2: 0.55, 4: 0.5, 8: 0.45}
    for scale, weight in weights.items():
        small = rng.standard_normal((h // scale + 2, w // scale + 2), dtype=np.float32)
        if scale > 1:
            small = cv2.resize(small, (small.shape[1] * scale, small.shape[0] * scale), interpolation=cv2.INTER_LINEAR)
            small *= 1.6  # bilinear upsampling's variance loss, roughly
        out += weight * small[:h, :w]
    out *= 1.0 / math.sqrt(sum(v * v for v in weights.values()))
    return out


def _scene(regions, k: int, out_hw, rng: np.random.Generator, frame_hw=None) -> np.ndarray:
    """Textured linear-light scene, float32 (H, W, 3) in [0, 1]."""
    lin = _linear(_content(regions, k, out_hw, rng, frame_hw))
    tex = _texture(*lin.shape[:2], rng)
    tex *= rng.uniform(0.02, 0.08)  # texture contrast, relative, in linear light
    tex += 1.0
    lin *= tex[..., None]
    return np.clip(lin, 0.0, 1.0, out=lin)


def _mosaic_noise(lin: np.ndarray, rng: np.random.Generator, full_well: float, read: float) -> np.ndarray:
    """:func:`llbench.data.tiny._mosaic_noise` in float32: RGGB Poisson-Gaussian noise, bilinear demosaicking."""
    from llbench.data.tiny_sid import mosaic_rggb

    mosaic = mosaic_rggb(lin)
    noisy = rng.poisson(np.clip(mosaic, 0.0, 1.0) * full_well).astype(np.float32)
    del mosaic
    noisy *= np.float32(1.0 / full_well)
    noisy += np.float32(read) * rng.standard_normal(noisy.shape, dtype=np.float32)
    return demosaic_bilinear(noisy)


def demosaic_bilinear(mosaic: np.ndarray) -> np.ndarray:
    """Bilinear demosaicking of an RGGB mosaic (H, W) -> (H, W, 3), as tiny's (mirror borders), with OpenCV."""
    import cv2

    k_rb = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]], np.float32)
    k_g = np.array([[0.0, 0.25, 0.0], [0.25, 1.0, 0.25], [0.0, 0.25, 0.0]], np.float32)
    sites = (((0, 0),), ((0, 1), (1, 0)), ((1, 1),))  # R, G, B positions in the 2x2 RGGB cell
    mosaic = mosaic.astype(np.float32, copy=False)
    out = np.empty((*mosaic.shape, 3), np.float32)
    plane = np.empty_like(mosaic)
    for c, kern in enumerate((k_rb, k_g, k_rb)):
        plane.fill(0.0)
        for dy, dx in sites[c]:
            plane[dy::2, dx::2] = mosaic[dy::2, dx::2]
        out[..., c] = cv2.filter2D(plane, -1, kern, borderType=cv2.BORDER_REFLECT_101)  # = scipy "mirror"
    return out


PNG_LEVEL = 6  # zlib's default, as the tiny sets; 1 writes 16-Mpixel frames ~3x faster, noisy ones ~15 % larger


# ---- generators ---------------------------------------------------------------------------------
@dataclass
class _Job:
    """One generation: where, what, and the progress printer."""

    name: str
    root: Path
    counts: dict[str, int]
    seed: int
    splits: tuple[str, ...]
    png_level: int
    verbose: bool
    start: float = field(default_factory=time.monotonic)
    last: float = 0.0

    def rng(self, split: str, *index: int) -> np.random.Generator:
        """The random stream of one scene (or capture): (seed, dataset, split, index...)."""
        return np.random.default_rng([self.seed, zlib.crc32(self.name.encode()), _SPLIT_CODE[split], *index])

    def png(self, rel: str, arr: np.ndarray) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(arr)).save(path, format="PNG", compress_level=self.png_level)

    def progress(self, what: str, i: int, n: int, every: float = 5.0) -> None:
        """Print ``name: what i/n (elapsed)`` at most every ``every`` seconds, and at ``i == n``."""
        now = time.monotonic()
        if self.verbose and (i == n or now - self.last >= every):
            print(f"{self.name}: {what} {i}/{n} ({now - self.start:.0f} s)", flush=True)
            self.last = now


def _paired(spec: FullSpec, job: _Job) -> None:
    model = LOW_LIGHT_MODELS[spec.model]
    low, high = KINDS["paired"].input_dir, KINDS["paired"].target_dir
    for gi, g in enumerate(spec.groups):
        if g.split not in job.splits:
            continue
        regions = TRAIN_REGIONS if g.split == "train" else TEST_REGIONS
        n = job.counts[g.key]
        for i in range(n):
            rng = job.rng(g.split, gi, i)
            clean = _encode(_scene(regions, i, g.sizes[i % len(g.sizes)], rng))
            ident = g.prefix + spec.id_format.format(n=i + 1)
            job.png(f"{g.split}/{high}/{ident}.png", clean)
            job.png(f"{g.split}/{low}/{ident}.png", low_light(clean, rng, **model))  # the tiny sets' model
            job.progress(g.key, i + 1, n)


def _sidd_name(j: int, phone: str, rng: np.random.Generator) -> str:
    """A SIDD-Medium scene folder name: instance_scene_phone_ISO_shutter_temperature_brightness."""
    iso = int(rng.choice([100, 200, 400, 800, 1600, 3200]))
    shutter = int(rng.choice([30, 50, 100, 200, 400, 800]))
    temp = int(rng.choice([3200, 4400, 5500]))
    return f"{j + 1:04d}_{j % 10 + 1:03d}_{phone}_{iso:05d}_{shutter:05d}_{temp:04d}_{'LNH'[int(rng.integers(3))]}"


def _sidd_noisy(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """tiny.make_sidd's noisy image: the noise model sees the 8-bit clean image's linear values."""
    return _encode(_mosaic_noise(_linear(clean), rng, rng.uniform(*SIDD_FULL_WELL), SIDD_READ))


def _sidd(job: _Job) -> None:
    noisy_dir, clean_dir = KINDS["denoise"].input_dir, KINDS["denoise"].target_dir
    if "train" in job.splits:
        n, scene = job.counts["train"], None
        for i in range(n):
            j, capture = divmod(i, 2)  # two captures (010, 011) of each scene: same content, own noise
            if scene is None or scene[0] != j:
                h, w, phone = SIDD_FRAMES[j % len(SIDD_FRAMES)]
                rng = job.rng("train", j)
                scene = None  # free the previous frame first
                scene = (j, _sidd_name(j, phone, rng), _encode(_scene(TRAIN_REGIONS, j, (h, w), rng)))
            _, folder, clean = scene
            ident = f"{folder}_{10 + capture:03d}"
            job.png(f"train/{clean_dir}/{ident}.png", clean)
            job.png(f"train/{noisy_dir}/{ident}.png", _sidd_noisy(clean, job.rng("train", j, capture)))
            job.progress("train", i + 1, n)
    if "test" in job.splits:
        n = job.counts["test"]
        for i in range(n):
            rng = job.rng("test", i)
            frame = SIDD_FRAMES[i % len(SIDD_FRAMES)][:2]  # a 256x256 block at a full frame's scale
            clean = _encode(_scene(TEST_REGIONS, i, SIDD_TEST_SIZE, rng, frame))
            job.png(f"test/{clean_dir}/{i:03d}.png", clean)
            job.png(f"test/{noisy_dir}/{i:03d}.png", _sidd_noisy(clean, rng))
            job.progress("test", i + 1, n)


def sid_frames(n_short: int, n_scenes: int) -> list[int]:
    """Short frames per scene: ``n_short`` spread evenly (the first scenes take the remainder)."""
    base, extra = divmod(n_short, n_scenes)
    return [base + (j < extra) for j in range(n_scenes)]


def _sid(job: _Job) -> None:
    from llbench.data.tiny_sid import SENSITIVITY, _expose, mosaic_rggb, write_dng

    short_dir, long_dir = job.root / "Sony" / "short", job.root / "Sony" / "long"
    short_dir.mkdir(parents=True, exist_ok=True)
    long_dir.mkdir(parents=True, exist_ok=True)
    sens = np.asarray(SENSITIVITY, np.float32)
    for split in SID_SPLITS:
        if split not in job.splits:
            continue
        regions = TRAIN_REGIONS if split == "train" else TEST_REGIONS
        n_short, n_scenes = job.counts[split], job.counts[f"{split}_scenes"]
        lines, done, what = [], 0, f"{split} (long + short frames)"
        for j, k in enumerate(sid_frames(n_short, n_scenes)):
            rng = job.rng(split, j)
            scene = f"{SID_FIRST_ID[split] + j:05d}"
            linear = _scene(regions, j, SID_SIZE, rng)
            linear *= 0.8 / max(float(np.percentile(linear[::4, ::4], 99.5)), 1e-3)  # as tiny_sid (subsampled)
            np.clip(linear, 0.0, 1.0, out=linear)
            linear *= sens
            radiance = mosaic_rggb(linear)  # fraction of full scale reached by the long exposure
            del linear
            long_name = f"{scene}_00_{SID_LONG:g}s.dng"
            write_dng(long_dir / long_name, _expose(radiance, 1.0, rng, SID_READ, SID_ELECTRONS_PER_DN), SID_LONG)
            done += 1
            job.progress(what, done, n_short + n_scenes)
            levels = min(k, int(rng.integers(1, 4)))  # 1-3 exposure times per scene, bursts _00_, _01_, ...
            times = [SID_SHORT[int(c)] for c in rng.permutation(len(SID_SHORT))[:levels]]
            for f in range(k):
                t = times[f % levels]
                name = f"{scene}_{f // levels:02d}_{t:g}s.dng"
                write_dng(short_dir / name, _expose(radiance, t / SID_LONG, rng, SID_READ, SID_ELECTRONS_PER_DN), t)
                lines.append(f"./Sony/short/{name} ./Sony/long/{long_name} ISO200 F8")
                done += 1
                job.progress(what, done, n_short + n_scenes)
        (job.root / f"Sony_{split}_list.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _footprint(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def make_full_size(
    name: str,
    root: Path | str,
    fraction: float | None = None,
    seed: int = 0,
    splits: Sequence[str] | None = None,
    png_level: int = PNG_LEVEL,
    verbose: bool = True,
) -> Path:
    """Generate the full-size stand-in ``name`` into ``root`` atomically (temp folder, then rename).

    Args:
        name: ``lol``, ``lolv2-real``, ``lolv2-syn``, ``lsrw``, ``sidd`` or ``sid``.
        fraction: scales the real counts, never the sizes (at least one item per split); default
            :func:`default_fraction` (1.0 for the LOL sets, 0.1 for lsrw, sidd and sid).
        seed: the same seed writes the same bytes.
        splits: only these splits (default all), e.g. ``("train",)`` for a training-path benchmark.
        png_level: zlib level of the PNGs (6 as the tiny sets; 1 is faster to write, a little larger).
        verbose: print progress and, at the end, the file count, disk footprint and time.
    Returns:
        ``Path(root)``.
    """
    _check_name(name)
    counts = full_size_counts(name, fraction)
    fraction = default_fraction(name) if fraction is None else float(fraction)
    all_splits = tuple(SID_SPLITS) if name == "sid" else tuple(dict.fromkeys(g.split for g in FULL_SIZE[name].groups))
    splits = all_splits if splits is None else tuple(splits)
    if not splits or set(splits) - set(all_splits):
        raise ValueError(f"{name}: splits must be a non-empty subset of {all_splits}, got {splits}")
    counts = {k: v for k, v in counts.items() if k.split("/")[0].removesuffix("_scenes") in splits}
    root = Path(root)
    if verbose:
        print(f"{name}: full-size stand-in, fraction {fraction:g}, seed {seed}: {counts} -> {root}", flush=True)
    with writing_dataset(root) as tmp:
        job = _Job(name, tmp, counts, seed, splits, png_level, verbose)
        if name == "sid":
            _sid(job)
        elif name == "sidd":
            _sidd(job)
        else:
            _paired(FULL_SIZE[name], job)
        kind = "raw" if name == "sid" else FULL_SIZE[name].kind
        info = {"name": name, "kind": kind, "stand_in": True, "fraction": fraction, "seed": seed, "counts": counts}
        (tmp / INFO).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    if verbose:
        n_files, size = _footprint(root)
        elapsed = time.monotonic() - job.start
        print(f"{name}: {n_files} files, {size / 1e9:.2f} GB on disk, {elapsed:.0f} s -> {root}", flush=True)
    return root
