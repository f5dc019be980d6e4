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


def _augment(arrays: list[np.ndarray], ops: tuple[str, ...], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random flips / rotation / transpose for every array (HxWxC)."""
    if "hflip" in ops and rng.random() < 0.5:
        arrays = [a[:, ::-1] for a in arrays]
    if "vflip" in ops and rng.random() < 0.5:
        arrays = [a[::-1] for a in arrays]
    if "transpose" in ops and rng.random() < 0.5:
        arrays = [a.transpose(1, 0, 2) for a in arrays]
    if "rot90" in ops:
        k = int(rng.integers(0, 4))
        arrays = [np.rot90(a, k, axes=(0, 1)) for a in arrays]
    return arrays


def _crop(arrays: list[np.ndarray], crop: int | None, rng: np.random.Generator, name: str) -> list[np.ndarray]:
    """Random ``crop`` x ``crop`` window of arrays[0]; later arrays are cropped at the same place, scaled."""
    if crop is None:
        return arrays
    h, w = arrays[0].shape[:2]
    if h < crop or w < crop:
        raise DatasetError(f"{name}: image {h}x{w} is smaller than the training crop {crop}")
    y = int(rng.integers(0, h - crop + 1))
    x = int(rng.integers(0, w - crop + 1))
    out = []
    for a in arrays:
        s = a.shape[0] // h
        out.append(a[y * s : (y + crop) * s, x * s : (x + crop) * s])
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
        if self._raw is not None and self._arrays is not None:
            arrays, names, label = self._raw_crop(i, rng), ["input", "target"], self._raw.pairs[i].id
        elif self._raw is not None:
            s = self._raw[i]
            arrays = [s["input"].numpy().transpose(1, 2, 0), s["target"].numpy().transpose(1, 2, 0)]
            names = ["input", "target"]
            label = s["id"]
        else:
            it = self.items[i]
            arrays, names = [self._read(it.input)], ["input"]
            if it.target is not None:
                arrays.append(self._read(it.target))
                names.append("target")
            label = str(it.input)
        if not (self._raw is not None and self._arrays is not None):  # cached raw pairs are read cropped
            arrays = _crop(arrays, self.crop, rng, label)
        arrays = _augment(arrays, self.augment, rng)
        out = {
            k: to_tensor(np.ascontiguousarray(a)) if a.dtype != np.float32 else _f32(a)
            for k, a in zip(names, arrays, strict=True)
        }
        if self.refs is not None:
            ref_path = self.refs[int(rng.integers(0, len(self.refs)))]
            ref = _augment(_crop([self._read(ref_path)], self.crop, rng, str(ref_path)), self.augment, rng)[0]
            out["reference"] = to_tensor(np.ascontiguousarray(ref))
        return out

    def _raw_crop(self, i: int, rng: np.random.Generator) -> list[np.ndarray]:
        """The packed, amplified input crop and its ground-truth crop of SID pair ``i`` from the cache: only
        the crop is read and packed, with the random window :func:`_crop` draws (bit-identical samples)."""
        from llbench.data.raw import pack_bayer

        p = self._raw.pairs[i]
        bayer, gt = self._arrays(p.short), self._arrays(p.long)
        h, w = bayer.shape[0] // 2, bayer.shape[1] // 2
        c_h, c_w = (h, w) if self.crop is None else (self.crop, self.crop)
        if h < c_h or w < c_w:
            raise DatasetError(f"{p.id}: image {h}x{w} is smaller than the training crop {self.crop}")
        y = int(rng.integers(0, h - c_h + 1)) if self.crop is not None else 0
        x = int(rng.integers(0, w - c_w + 1)) if self.crop is not None else 0
        packed = pack_bayer(np.asarray(bayer[2 * y : 2 * (y + c_h), 2 * x : 2 * (x + c_w)]))
        amplified = np.minimum(packed * np.float32(self._arrays.facts(p.short)["ratio"]), 1.0)  # as SIDRaw
        target = np.asarray(gt[2 * y : 2 * (y + c_h), 2 * x : 2 * (x + c_w)], dtype=np.float32) / np.float32(65535)
        return [amplified.transpose(1, 2, 0), target]


def _f32(a: np.ndarray) -> torch.Tensor:
    """HxWxC float32 (raw pipeline) -> CxHxW tensor."""
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


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
