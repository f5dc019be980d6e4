"""Loaders over the canonical dataset layouts (DESIGN.md ▶ Datasets), for real and tiny data alike.

Every check fails with a :class:`~llbench.data.images.DatasetError` naming the offending file:
missing partner, undecodable image, mismatched sizes. Nothing is skipped silently.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from llbench.data import sidd
from llbench.data.cache import Arrays
from llbench.data.images import IMAGE_SUFFIXES, DatasetError, image_size, read_image, to_tensor
from llbench.data.raw import amplify, normalize_raw
from llbench.vocabulary import KINDS, TRAIN_DATA


@dataclass(frozen=True)
class Item:
    """One image (pair) of a split: ``target`` is None when the split has no targets."""

    id: str
    input: Path
    target: Path | None = None


def _images(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found")
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if p.stem in files:
            raise DatasetError(f"{files[p.stem]} and {p}: two images with the id {p.stem!r}; keep one")
        files[p.stem] = p
    if not files:
        raise DatasetError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def list_items(root: Path | str, split: str, kind: str, *, targets: bool = True, verify: bool = True) -> list[Item]:
    """The checked items of ``<root>/<split>`` for a dataset of ``kind``.

    Args:
        targets: pair inputs with targets (paired/denoise kinds); False lists inputs only.
        verify: check every file's integrity and that paired sizes match (reads headers and CRCs).
    """
    if kind not in KINDS or kind == "raw":
        raise ValueError(f"list_items: unsupported dataset kind {kind!r}; allowed: paired, unpaired, denoise")
    in_dir, tgt_dir = KINDS[kind].input_dir, KINDS[kind].target_dir
    base = Path(root) / split
    inputs = _images(base / in_dir)
    if not (targets and tgt_dir):
        if verify:
            for p in inputs.values():
                image_size(p)
        return [Item(k, p) for k, p in inputs.items()]
    tgts = _images(base / tgt_dir)
    for key in sorted(set(inputs) - set(tgts)):
        raise DatasetError(f"{inputs[key]}: no target partner named {key}.* in {base / tgt_dir}")
    for key in sorted(set(tgts) - set(inputs)):
        raise DatasetError(f"{tgts[key]}: no input partner named {key}.* in {base / in_dir}")
    items = [Item(k, inputs[k], tgts[k]) for k in inputs]
    if verify:
        for it in items:
            a, b = image_size(it.input), image_size(it.target)
            if a != b:
                raise DatasetError(
                    f"{it.input}: size {a[0]}x{a[1]} differs from its target {it.target} ({b[0]}x{b[1]})"
                )
    return items


def raw_cache_dir(root: Path | str) -> Path:
    """Rendered raw ground truths live under resources/cache/, never inside a (DVC-tracked) dataset root."""
    return Path("resources") / "cache" / Path(root).resolve().as_posix().strip("/").replace("/", "_") / "gt"


class EvalSet(Dataset):
    """Test split at native resolution: ``{"id", "input", ["target"]}`` tensors in [0, 1]."""

    def __init__(self, root: Path | str, split: str, kind: str):
        self.kind = kind
        if kind == "raw":
            from llbench.data.raw import SIDRaw

            self._raw = SIDRaw(root, split, cache_dir=raw_cache_dir(root))
            self.items = None
        elif kind == "denoise" and sidd.has_blocks(Path(root) / split):
            self._raw = sidd.SIDDBlocks(Path(root) / split)  # the official SIDD validation .mat blocks
            self.items = None
        else:
            self._raw = None
            self.items = list_items(root, split, kind, targets=KINDS[kind].target_dir is not None)

    def __len__(self) -> int:
        return len(self._raw) if self._raw is not None else len(self.items)

    @property
    def has_targets(self) -> bool:
        return self.kind != "unpaired"

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self._raw is not None:
            return self._raw[i]
        it = self.items[i]
        x = read_image(it.input)
        out: dict[str, Any] = {"id": it.id, "input": to_tensor(x)}
        if it.target is not None:
            out["target"] = to_tensor(read_image(it.target))
        return out


#: the (H, W) axes of the raw path's CHW arrays
RAW_AXES = (1, 2)


def _augment(
    arrays: list[np.ndarray], ops: tuple[str, ...], rng: np.random.Generator, axes: tuple[int, int] = (0, 1)
) -> list[np.ndarray]:
    """The same random flips / rotation / transpose for every array; ``axes``: its (H, W) axes (HWC images:
    (0, 1); CHW raw arrays: (1, 2))."""
    h, w = axes
    if "hflip" in ops and rng.random() < 0.5:
        arrays = [np.flip(a, w) for a in arrays]
    if "vflip" in ops and rng.random() < 0.5:
        arrays = [np.flip(a, h) for a in arrays]
    if "transpose" in ops and rng.random() < 0.5:
        arrays = [np.swapaxes(a, h, w) for a in arrays]
    if "rot90" in ops:
        k = int(rng.integers(0, 4))
        arrays = [np.rot90(a, k, axes=(h, w)) for a in arrays]
    return arrays


def _crop(
    arrays: list[np.ndarray], crop: int | None, rng: np.random.Generator, name: str, axes: tuple[int, int] = (0, 1)
) -> list[np.ndarray]:
    """Random ``crop`` x ``crop`` window of arrays[0]; later arrays are cropped at the same place, scaled
    (a raw target is twice its packed input). ``axes``: the (H, W) axes, as in :func:`_augment`."""
    if crop is None:
        return arrays
    h, w = (arrays[0].shape[a] for a in axes)
    if h < crop or w < crop:
        raise DatasetError(f"{name}: image {h}x{w} is smaller than the training crop {crop}")
    y = int(rng.integers(0, h - crop + 1))
    x = int(rng.integers(0, w - crop + 1))
    out = []
    for a in arrays:
        s = a.shape[axes[0]] // h
        window = [slice(None)] * a.ndim
        window[axes[0]], window[axes[1]] = slice(y * s, (y + crop) * s), slice(x * s, (x + crop) * s)
        out.append(a[tuple(window)])
    return out


class TrainSet(Dataset):
    """Training samples for a method's ``train_data``; index ``epoch * n + i`` seeds the randomness.

    Each sample's crop and augmentation depend only on (seed, epoch, index), so results do not depend
    on the number of workers and a resumed run sees the same samples.
    """

    def __init__(
        self,
        root: Path | str,
        split: str,
        kind: str,
        train_data: str,
        cfg: Mapping[str, Any],
        seed: int,
        cache: Path | str | None = None,
    ):
        """``cache``: a training cache of this split (:mod:`llbench.data.cache`): images are memory-mapped
        from it instead of decoded per sample; the samples are bit-identical either way."""
        if kind not in TRAIN_DATA.get(train_data, ()):
            raise ValueError(
                f"a method trained on {train_data!r} data cannot train on a {kind!r} dataset "
                f"({root}); allowed kinds: {TRAIN_DATA.get(train_data)}"
            )
        self.train_data, self.seed = train_data, seed
        self.crop = cfg.get("crop")
        self.augment = tuple(cfg.get("augment") or ())
        if kind == "raw":
            from llbench.data.raw import SIDRaw

            self._raw = SIDRaw(root, split, cache_dir=raw_cache_dir(root))
            self.n = len(self._raw)
            self.items, self.refs = None, None
            self._arrays = Arrays(Path(cache), Path(root)) if cache is not None else None
        else:
            self._raw, self._arrays = None, None
            paired = train_data == "paired"
            if cache is None:
                self.items = list_items(root, split, kind, targets=paired)
                self._read = read_image
            else:  # the cache build decoded (and so checked) every file: list without re-reading them
                self.items = list_items(root, split, kind, targets=paired, verify=False)
                self._read = Arrays(Path(cache), Path(root))
                self._read.check_pairs(self.items)
            self.n = len(self.items)
            self.refs = None
            if train_data == "unpaired":
                # the split's normal-light images, read as a second, unpaired set (EnlightenGAN's trainB)
                self.refs = list(_images(Path(root) / split / (KINDS[kind].target_dir or "high")).values())

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        epoch, i = divmod(int(index), self.n)
        rng = np.random.default_rng([self.seed, epoch, i])
        if self._raw is not None:  # float32 CHW: packed input (4, H/2, W/2), rendered target (3, H, W)
            if self._arrays is not None:
                x, y = self._raw_sample(i, rng)
            else:
                s = self._raw[i]
                crops = _crop([s["input"].numpy(), s["target"].numpy()], self.crop, rng, s["id"], RAW_AXES)
                x, y = (np.ascontiguousarray(a) for a in _augment(crops, self.augment, rng, RAW_AXES))
            return {"input": torch.from_numpy(x), "target": torch.from_numpy(y)}
        it = self.items[i]
        arrays, names = [self._read(it.input)], ["input"]
        if it.target is not None:
            arrays.append(self._read(it.target))
            names.append("target")
        arrays = _augment(_crop(arrays, self.crop, rng, str(it.input)), self.augment, rng)
        out = {k: to_tensor(np.ascontiguousarray(a)) for k, a in zip(names, arrays, strict=True)}
        if self.refs is not None:
            ref_path = self.refs[int(rng.integers(0, len(self.refs)))]
            ref = _augment(_crop([self._read(ref_path)], self.crop, rng, str(ref_path)), self.augment, rng)[0]
            out["reference"] = to_tensor(np.ascontiguousarray(ref))
        return out

    def _raw_sample(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The amplified packed input crop and its ground-truth crop of SID pair ``i`` from the cache, which
        holds the Bayer planes and the rendered target as uint16 CHW. The window and the flips are drawn as
        for :class:`SIDRaw`'s arrays and applied to the uint16 views (they commute with the element-wise
        float32 operations, so the samples are bit-identical); only the window is read and converted."""
        p = self._raw.pairs[i]
        crops = _crop([self._arrays(p.short), self._arrays(p.long)], self.crop, rng, p.id, RAW_AXES)
        planes, target = _augment(crops, self.augment, rng, RAW_AXES)
        x = amplify(normalize_raw(planes), self._arrays.facts(p.short)["ratio"])
        return x, np.divide(target, np.float32(65535), out=np.empty(target.shape, np.float32))


class StreamSampler(Sampler[int]):
    """Endless stream of ``epoch * n + perm_epoch[k]`` indices, starting at stream position ``start``."""

    def __init__(self, n: int, seed: int, start: int = 0):
        self.n, self.seed, self.start = n, seed, start

    def __iter__(self) -> Iterator[int]:
        pos = self.start
        while True:
            epoch, k = divmod(pos, self.n)
            perm = np.random.default_rng([self.seed, 7919, epoch]).permutation(self.n)
            yield epoch * self.n + int(perm[k])
            pos += 1
