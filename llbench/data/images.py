"""Reading and writing images with errors that name the file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

#: accepted image file suffixes (any letter case): ``<id>.png``, ``<id>.JPG``, ... ; one file per id
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class DatasetError(ValueError):
    """A dataset file is missing, unpaired, corrupt or of the wrong shape. The message names the file."""


def _png_bit_depth(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR chunk, or None for other formats."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _read_png16_color(path: Path) -> np.ndarray:
    """A 16-bit RGB(A) PNG at full depth through OpenCV (Pillow reduces 16-bit colour to 8 bits)."""
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise DatasetError(f"{path}: cannot decode 16-bit colour PNG")
    order = [2, 1, 0, 3] if arr.shape[2] == 4 else [2, 1, 0]  # OpenCV's BGR(A) -> RGB(A)
    return arr[..., order]


def _drop_opaque_alpha(path: Path, arr: np.ndarray) -> np.ndarray:
    """RGBA -> RGB when the alpha channel is fully opaque; transparency has no defined meaning here."""
    alpha = arr[..., 3]
    if alpha.min() != np.iinfo(arr.dtype).max:
        raise DatasetError(
            f"{path}: image has transparent pixels (alpha < {np.iinfo(arr.dtype).max}); "
            "flatten it onto the intended background and save it as RGB"
        )
    return arr[..., :3]


def read_image(path: Path | str) -> np.ndarray:
    """Decode an image as HxWx3 uint8 (8-bit files) or uint16 (16-bit PNG, colour or grey).

    Grey is replicated to RGB. An alpha channel is dropped when it is fully opaque; an image with
    transparent pixels is refused (compositing it onto a background would be a guess).
    """
    path = Path(path)
    try:
        png = _png_bit_depth(path)
        if png is not None and png[0] == 16 and png[1] in (2, 6):  # 16-bit truecolour (+ alpha)
            arr = _read_png16_color(path)
        else:
            with Image.open(path) as im:
                im.load()
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    arr = np.asarray(im, dtype=np.uint16)
                elif im.mode in ("RGBA", "LA", "PA") or im.has_transparency_data:
                    arr = np.asarray(im.convert("RGBA"))
                else:
                    arr = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DatasetError(f"{path}: cannot decode image ({e})") from None
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = _drop_opaque_alpha(path, arr)
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
