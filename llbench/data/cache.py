"""The training-ready cache: every training image of a dataset decoded once into a ``.npy`` file.

A training sample is a small crop of a large image (AP-BSN / LG-BPN: 120x120 of a 5328x3000 SIDD
frame). Decoding the whole PNG for every sample starves the GPU (0.7 s per SIDD image on one core) and
caching decoded images per DataLoader worker grows each worker's memory with the dataset. Here each image
is decoded once, by the ``train_cache`` rule, into an uncompressed ``.npy`` that the loaders memory-map:
a crop reads only its rows, the pages live in the kernel's page cache shared by every worker, and a
worker's own memory does not grow with the dataset (the official AP-BSN ``prep.py`` crops SIDD into
512x512 patches once for the same reason; here the crop positions stay those of the original images,
so training is bit-identical with and without the cache).

The cache of a dataset version lives in ``resources/cache/train/<dataset>/<manifest sha256[:16]>/``
(outside any DVC-tracked root): the same data manifest is never decoded twice, a changed one gets a new
folder (the old versions of that dataset are removed). A build writes into a temporary folder and
renames it when complete, so a killed build leaves nothing that looks like a cache.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from llbench.data.images import IMAGE_SUFFIXES, DatasetError, read_image
from llbench.vocabulary import KINDS

FORMAT = "llbench-train-cache-v2"  # v2: raw arrays stored CHW (Bayer planes, planar target); offsets
INDEX = "index.json"
#: the dataset kinds with a training cache (raw: the Bayer mosaics and rendered ground truths of SID pairs)
KINDS_CACHED = ("paired", "unpaired", "denoise", "raw")


def source_files(root: Path, split: str, kind: str) -> list[Path]:
    """Every image a training job of ``kind`` may read in ``<root>/<split>``: inputs, and targets (or the
    normal-light reference set EnlightenGAN reads) where the folder exists."""
    if kind not in KINDS_CACHED or kind == "raw":
        raise ValueError(f"no image files for dataset kind {kind!r} (raw pairs: _raw_pairs)")
    folders = [KINDS[kind].input_dir, KINDS[kind].target_dir or KINDS["paired"].target_dir]
    files = []
    for name in dict.fromkeys(folders):
        folder = Path(root) / split / name
        if folder.is_dir():
            files += sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{Path(root) / split}: no training images for a {kind} dataset")
    return files


def cache_dir(base: Path, manifest_sha256: str) -> Path:
    """The folder of one dataset version inside ``base`` (``resources/cache/train/<dataset>``)."""
    return Path(base) / manifest_sha256[:16]


def read_index(folder: Path) -> dict[str, Any] | None:
    """A complete cache's index, or None (no cache there, or another format)."""
    try:
        index = json.loads((Path(folder) / INDEX).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return index if index.get("format") == FORMAT else None


def build(root: Path, split: str, kind: str, manifest_sha256: str, base: Path) -> dict[str, Any]:
    """The cache of ``<root>/<split>`` for data manifest ``manifest_sha256``, built unless it exists.

    Returns its index (``files``: source path relative to ``root`` -> ``.npy`` name, shape, dtype;
    ``bytes``, ``build_s``) plus ``folder`` and ``reused``. A source that cannot be decoded raises
    :class:`DatasetError` naming it, and nothing is left behind.
    """
    root, base = Path(root), Path(base)
    folder = cache_dir(base, manifest_sha256)
    index = read_index(folder)
    if index is not None and index["manifest_sha256"] == manifest_sha256 and index["split"] == split:
        return {**index, "folder": str(folder), "reused": True}
    base.mkdir(parents=True, exist_ok=True)
    for stale in base.glob(".tmp-*"):  # a build killed before its rename
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
    start = time.perf_counter()
    try:
        files, total = {}, 0
        if kind == "raw":
            decoded = _raw_arrays(root, split)
        else:
            decoded = ((p, read_image(p), {}) for p in source_files(root, split, kind))
        for i, (path, arr, meta) in enumerate(decoded):  # a file that does not decode: an error naming it
            name = f"{i:06d}.npy"
            np.save(tmp / name, np.ascontiguousarray(arr), allow_pickle=False)
            offset = np.load(tmp / name, mmap_mode="r").offset  # where the data start, after the header
            rel = path.relative_to(root).as_posix()
            files[rel] = {"npy": name, "shape": list(arr.shape), "dtype": str(arr.dtype), "offset": offset, **meta}
            total += arr.nbytes
        index = {
            "format": FORMAT,
            "manifest_sha256": manifest_sha256,
            "split": split,
            "kind": kind,
            "files": files,
            "bytes": total,
            "build_s": round(time.perf_counter() - start, 3),
        }
        (tmp / INDEX).write_text(json.dumps(index, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in base.iterdir():  # earlier versions of this dataset: their data are gone
        if old.is_dir() and old != folder and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return {**index, "folder": str(folder), "reused": False}


def _raw_arrays(root: Path, split: str):
    """(file, array, facts) of every SID training pair, channels first so that a crop reads whole rows:
    each short exposure's Bayer planes (uint16 (4, H/2, W/2), SID's packing order, with its amplification
    ratio as SIDRaw computes it) and each long exposure's rendered ground truth (uint16 (3, H, W), through
    the raw ground-truth cache)."""
    from llbench.data.datasets import raw_cache_dir
    from llbench.data.raw import SIDRaw, _exposure, amplification_ratio, bayer_planes, ground_truth_u16, read_bayer

    done = set()
    for p in SIDRaw(root, split).pairs:
        bayer, short_t = read_bayer(p.short)
        yield p.short, bayer_planes(bayer), {"ratio": amplification_ratio(short_t, _exposure(p.long))}
        if p.long not in done:
            done.add(p.long)
            yield p.long, ground_truth_u16(p.long, raw_cache_dir(root)).transpose(2, 0, 1), {}


class Arrays:
    """The decoded images of one cache, looked up by their source path.

    Each call maps the image's ``.npy`` afresh and the mapping goes when the caller drops the array: a
    DataLoader worker holds no mapping between samples, so the cache pages it read count in the kernel's
    shared page cache, never in the worker's resident memory, however large the dataset.
    """

    def __init__(self, folder: Path, root: Path):
        self.folder, self.root = Path(folder), Path(root)
        index = read_index(self.folder)
        if index is None:
            raise FileNotFoundError(f"{self.folder}: no training cache ({INDEX} missing or incomplete)")
        #: entries by source path as the loaders spell it (``root / rel``): no path arithmetic per sample
        self._by_path = {str(self.root / rel): f for rel, f in index["files"].items()}

    def _entry(self, path: Path) -> dict[str, Any]:
        try:
            return self._by_path[str(path)]
        except KeyError:
            raise DatasetError(f"{path}: not in the training cache {self.folder} (the data changed)") from None

    def check_pairs(self, items) -> None:
        """Every input and its target have the same size (what ``list_items`` checks on the files)."""
        for it in items:
            if it.target is None:
                continue
            a, b = (self._by_path.get(str(p)) for p in (it.input, it.target))
            if a is None or b is None:
                missing = it.input if a is None else it.target
                raise DatasetError(f"{missing}: not in the training cache {self.folder} (the data changed)")
            if a["shape"][:2] != b["shape"][:2]:
                raise DatasetError(f"{it.input} is {a['shape'][:2]} but {it.target} is {b['shape'][:2]}")

    def facts(self, path: Path) -> dict[str, Any]:
        """What the build recorded about source ``path`` besides its array (e.g. a raw frame's ratio)."""
        return self._entry(path)

    def __call__(self, path: Path) -> np.ndarray:
        """The decoded image of source ``path`` (read-only, memory-mapped: only what is indexed is read)."""
        f = self._entry(path)
        with open(self.folder / f["npy"], "rb") as file:  # the mapping outlives the file object
            mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        count = math.prod(f["shape"])  # what np.memmap does, without its per-call path resolution
        return np.frombuffer(mapping, f["dtype"], count, f["offset"]).reshape(f["shape"])


def write_pointer(path: Path, info: dict[str, Any]) -> None:
    """The ``train_cache`` rule's output: which cache folder serves this dataset version, its size and build time."""
    from llbench.runtime import atomic_write_json

    keys = ("folder", "manifest_sha256", "split", "kind", "bytes", "build_s", "reused")
    atomic_write_json(Path(path), {k: info[k] for k in keys} | {"images": len(info["files"])})


def read_pointer(path: Path, manifest_sha256: str | None) -> Path:
    """The cache folder a pointer names, checked against the data manifest the job verified."""
    info = json.loads(Path(path).read_text())
    if manifest_sha256 is not None and info["manifest_sha256"] != manifest_sha256:
        raise DatasetError(
            f"{path}: cache of data manifest {info['manifest_sha256'][:16]}, but the data are now "
            f"{manifest_sha256[:16]}; rebuild it (snakemake reruns the train_cache rule when the stamp changes)"
        )
    folder = Path(info["folder"])
    if read_index(folder) is None:
        raise FileNotFoundError(f"{folder}: the training cache {path} names is gone; rebuild it")
    return folder
