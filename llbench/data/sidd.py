"""SIDD validation blocks read straight from the official ``.mat`` files.

``ValidationNoisyBlocksSrgb.mat`` / ``ValidationGtBlocksSrgb.mat``: 40 images x 32 blocks of 256x256 RGB,
uint8 (MATLAB v5; LGBPN:src/datahandler/SIDD.py reads them with scipy). Items are ``b<image>_<block>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from llbench.data.images import DatasetError

SIDD_VAL_FILES = {
    "ValidationNoisyBlocksSrgb.mat": "ValidationNoisyBlocksSrgb",
    "ValidationGtBlocksSrgb.mat": "ValidationGtBlocksSrgb",
}
SIDD_VAL_SHAPE = (40, 32, 256, 256, 3)  # uint8: 40 images x 32 blocks of 256x256 RGB


def read_mat_array(path: Path, key: str) -> np.ndarray:
    """Read variable ``key`` from a MATLAB file: v4-v7.2 with scipy, v7.3 (HDF5) with h5py.

    Raises:
        ValueError: the file is unreadable or has no variable ``key`` (the message lists those it has).
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(128)
    if head.startswith(b"MATLAB 7.3"):
        try:
            import h5py
        except ImportError:
            raise ValueError(f"{path}: a MATLAB v7.3 (HDF5) file; install h5py to read it") from None
        with h5py.File(path, "r") as h5:
            if key not in h5:
                raise ValueError(f"{path}: no variable {key!r} (found {sorted(h5.keys())})")
            arr = np.asarray(h5[key])
        return arr.transpose(tuple(reversed(range(arr.ndim))))  # HDF5 stores MATLAB's column-major dims reversed
    import scipy.io

    try:
        names = [v[0] for v in scipy.io.whosmat(path)]
        if key not in names:
            raise ValueError(f"{path}: no variable {key!r} (found {names})")
        return scipy.io.loadmat(path, variable_names=[key])[key]
    except ValueError:
        raise
    except Exception as e:  # scipy raises several types (MatReadError, TypeError, OSError) on damaged files
        raise ValueError(f"{path}: corrupt or unreadable .mat file ({type(e).__name__}: {e})") from None


def has_blocks(folder: Path | str) -> bool:
    """True when ``folder`` holds the two official SIDD validation ``.mat`` files."""
    return all((Path(folder) / f).is_file() for f in SIDD_VAL_FILES)


class SIDDBlocks:
    """The 1280 validation blocks as ``{"id", "input", "target"}`` float tensors in [0, 1]."""

    def __init__(self, folder: Path | str):
        folder = Path(folder)
        (noisy_file, noisy_key), (gt_file, gt_key) = _ordered()
        self.noisy = read_mat_array(folder / noisy_file, noisy_key)
        self.clean = read_mat_array(folder / gt_file, gt_key)
        for name, arr in ((noisy_file, self.noisy), (gt_file, self.clean)):
            if arr.dtype != np.uint8 or arr.ndim != 5 or arr.shape[-1] != 3:
                raise DatasetError(
                    f"{folder / name}: expected uint8 blocks (images, blocks, H, W, 3), got {arr.dtype} {arr.shape}"
                )
        if self.noisy.shape != self.clean.shape:
            raise DatasetError(f"{folder}: noisy blocks {self.noisy.shape} and GT blocks {self.clean.shape} differ")

    def __len__(self) -> int:
        return self.noisy.shape[0] * self.noisy.shape[1]

    def __getitem__(self, i: int) -> dict[str, Any]:
        img, blk = divmod(i, self.noisy.shape[1])

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a[img, blk].transpose(2, 0, 1))).float().div_(255.0)

        return {"id": f"b{img:02d}_{blk:02d}", "input": t(self.noisy), "target": t(self.clean)}


def _ordered() -> list[tuple[str, str]]:
    """(file, key) of the noisy blocks first, then the ground truth."""
    return sorted(SIDD_VAL_FILES.items(), key=lambda kv: "Gt" in kv[0])
