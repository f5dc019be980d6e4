"""Reading and writing images with errors that name the file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class DatasetError(ValueError):
    """A dataset file is missing, unpaired, corrupt or of the wrong shape. The message names the file."""


def read_image(path: Path | str) -> np.ndarray:
    """Decode an RGB image as HxWx3 uint8 (8-bit) or uint16 (16-bit PNG); gray is replicated to RGB."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.uint16)
            else:
                arr = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DatasetError(f"{path}: cannot decode image ({e})") from None
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise DatasetError(f"{path}: expected an RGB image, got array of shape {arr.shape}")
    return arr


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the header, after verifying the file's integrity (PNG CRCs, truncation)."""
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            w, h = im.size
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DatasetError(f"{path}: corrupt or unreadable image ({e})") from None
    return h, w


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8/uint16 -> 3xHxW float32 in [0, 1]."""
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float().div_(scale)


def write_png(path: Path, arr: np.ndarray) -> None:
    """Write HxWx3 uint8 atomically (a killed job never leaves a half-written PNG)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    try:
        Image.fromarray(arr).save(tmp, format="PNG")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
