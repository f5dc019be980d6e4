"""SID (See-in-the-Dark, Sony subset) raw data path: read, check, pack, amplify, render the ground truth.

Follows the SID protocol of cchen156/Learning-to-See-in-the-Dark@0448b58 (`test_Sony.py`, `train_Sony.py`,
MIT license; Chen et al., "Learning to See in the Dark", CVPR 2018) as re-used by Justones/ALEN@7020c39
(`dataset.py`):

* input: the short exposure's Bayer mosaic, black level 512 subtracted, divided by 16383 - 512, clipped at
  0, packed into 4 half-resolution channels in SID's order (R, G at (0, 1), B, G at (1, 0)), multiplied by
  the amplification ratio ``min(long exposure / short exposure, 300)`` and clipped at 1;
* target: the long exposure rendered by LibRaw (rawpy) with the camera white balance, full resolution,
  no auto-brightness, 16 bit, divided by 65535;
* splits by the first digit of the 5-digit scene id: ``0`` train, ``2`` val, ``1`` test; ALEN uses only
  the first frame of each burst (``_00_``); scenes 10034, 10045 and 10172 are misaligned (SID README)
  and left out of quantitative results.

Canonical layout (DESIGN.md): ``<root>/Sony/short/*.ARW|*.dng``, ``<root>/Sony/long/*``,
``<root>/Sony_{train,val,test}_list.txt`` (lines ``./Sony/short/X.ARW ./Sony/long/Y.ARW ISO200 F9``).
The rendered ground truths are cached as 16-bit PNGs (``<root>/.cache/gt/<long stem>.png`` by default)
so LibRaw runs once per long exposure.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "BLACK_LEVEL",
    "EXCLUDED_SCENES",
    "MAX_RATIO",
    "RAW_EXTENSIONS",
    "SPLIT_PREFIX",
    "WHITE_LEVEL",
    "RawPair",
    "SIDName",
    "SIDRaw",
    "amplification_ratio",
    "amplify",
    "bayer_planes",
    "cached_ground_truth",
    "check_rggb",
    "exposure_time",
    "load_raw_input",
    "normalize_raw",
    "pack_bayer",
    "pack_raw_file",
    "parse_name",
    "read_bayer",
    "read_list",
    "render_ground_truth",
]

BLACK_LEVEL = 512  # SID:test_Sony.py pack_raw: np.maximum(im - 512, 0) / (16383 - 512)
WHITE_LEVEL = 16383
MAX_RATIO = 300.0  # SID:test_Sony.py: ratio = min(gt_exposure / in_exposure, 300)
#: scene ids misaligned with their ground truth; SID README (Aug 2018): remove from quantitative results
EXCLUDED_SCENES: tuple[str, ...] = ("10034", "10045", "10172")
#: split -> first digit of the scene id (SID README: "0" train, "2" validation, "1" test)
SPLIT_PREFIX: dict[str, str] = {"train": "0", "val": "2", "test": "1"}
RAW_EXTENSIONS = (".arw", ".dng")
#: LibRaw settings of the SID ground truth (SID:test_Sony.py L136, ALEN:dataset.py)
GT_POSTPROCESS: dict[str, Any] = {
    "use_camera_wb": True,
    "half_size": False,
    "no_auto_bright": True,
    "output_bps": 16,
}

_NAME_RE = re.compile(
    r"^(?P<scene>\d{5})_(?P<frame>\d{2})(?:_(?P<exposure>[^_/\\]*)s)?\.(?P<ext>arw|dng)$", re.IGNORECASE
)


# ---- names, exposures, lists --------------------------------------------------------------------
@dataclass(frozen=True)
class SIDName:
    """The fields of a SID file name ``<scene>_<frame>_<exposure>s.<ext>`` (exposure None if absent)."""

    scene: str
    frame: str
    exposure: float | None


def parse_name(path: str | os.PathLike) -> SIDName:
    """Parse a SID file name such as ``10003_00_0.1s.ARW``.

    Raises:
        ValueError: the name is not ``<5-digit scene>_<2-digit frame>[_<exposure>s].<ARW|dng>``, or its
            exposure field is not a positive number.
    """
    name = Path(path).name
    m = _NAME_RE.match(name)
    if m is None:
        raise ValueError(f"{path}: not a SID raw file name (expected '<scene>_<frame>_<exposure>s.ARW|dng')")
    exposure = None
    if m["exposure"] is not None:
        try:
            exposure = float(m["exposure"])
        except ValueError:
            raise ValueError(f"{path}: unparsable exposure {m['exposure'] + 's'!r} in the file name") from None
        if not np.isfinite(exposure) or exposure <= 0:
            raise ValueError(f"{path}: exposure {exposure} in the file name is not a positive time")
    return SIDName(m["scene"], m["frame"], exposure)


def exposure_time(path: str | os.PathLike, raw: Any | None = None) -> float:
    """Exposure time in seconds: from the file name (as SID and ALEN do), else from the file's metadata.

    Args:
        path: the raw file.
        raw: an open ``rawpy.RawPy`` of ``path`` for the metadata fallback (``raw.other.shutter_speed``).
    Raises:
        ValueError: neither the name nor the metadata give a positive exposure time.
    """
    parsed = parse_name(path)
    if parsed.exposure is not None:
        return parsed.exposure
    shutter = float(raw.other.shutter_speed) if raw is not None else 0.0
    if shutter > 0 and np.isfinite(shutter):
        return shutter
    where = "and the file has no exposure-time metadata" if raw is not None else "(metadata not read)"
    raise ValueError(f"{path}: no exposure time: the name has no '<seconds>s' field {where}")


def amplification_ratio(short_exposure: float, long_exposure: float, cap: float = MAX_RATIO) -> float:
    """SID's amplification ratio ``min(long / short, cap)``."""
    if short_exposure <= 0 or long_exposure <= 0:
        raise ValueError(f"exposure times must be positive, got short={short_exposure}, long={long_exposure}")
    return float(min(long_exposure / short_exposure, cap))


def read_list(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(short, long) relative paths from a SID list file (``./Sony/short/X.ARW ./Sony/long/Y.ARW ISO F``)."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise ValueError(f"{path}:{lineno}: expected '<short path> <long path> [ISO F]', got {line!r}")
            pairs.append((fields[0], fields[1]))
    return pairs


# ---- reading and packing ------------------------------------------------------------------------
def _rawpy():
    try:
        import rawpy
    except ImportError as e:  # pragma: no cover - rawpy is in requirements
        raise ImportError("reading SID raw files needs rawpy (pip install rawpy)") from e
    return rawpy


def check_rggb(raw: Any, path: str | os.PathLike) -> None:
    """Raise ``ValueError`` naming ``path`` unless the 2x2 CFA of ``raw`` (a ``rawpy.RawPy``) is RGGB."""
    desc = raw.color_desc.decode("ascii", "replace") if isinstance(raw.color_desc, bytes) else str(raw.color_desc)
    pattern = np.asarray(raw.raw_pattern)
    if pattern.shape != (2, 2) or int(pattern.max()) >= len(desc):
        raise ValueError(f"{path}: not a 2x2 Bayer raw (raw_pattern {pattern.tolist()}, colors {desc!r})")
    letters = "".join(desc[i] for i in pattern.ravel())
    if letters != "RGGB":
        raise ValueError(f"{path}: Bayer pattern is {letters}, expected RGGB (SID packing: R at (0,0), B at (1,1))")


def _open(path: str | os.PathLike):
    rawpy = _rawpy()
    try:
        return rawpy.imread(os.fspath(path))
    except (rawpy.LibRawError, OSError) as e:
        raise ValueError(f"{path}: cannot decode raw file ({type(e).__name__}: {e})") from e


def read_bayer(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """The visible RGGB Bayer mosaic (uint16, H x W) of ``path`` and its exposure time.

    Raises:
        ValueError: naming ``path`` when the file does not decode, is not RGGB, has odd or empty
            dimensions, or carries no exposure time.
    """
    rawpy = _rawpy()
    with _open(path) as raw:
        try:
            check_rggb(raw, path)
            bayer = np.array(raw.raw_image_visible, dtype=np.uint16, copy=True)
            exposure = exposure_time(path, raw)
        except rawpy.LibRawError as e:
            raise ValueError(f"{path}: cannot decode raw file ({type(e).__name__}: {e})") from e
    if bayer.ndim != 2 or bayer.size == 0 or bayer.shape[0] % 2 or bayer.shape[1] % 2:
        raise ValueError(f"{path}: Bayer image of shape {bayer.shape}; expected even, non-empty H x W")
    return bayer, exposure


def bayer_planes(bayer: np.ndarray) -> np.ndarray:
    """The H x W Bayer mosaic as its 4 half-resolution planes (4, H/2, W/2), in SID's order: (0,0) R,
    (0,1) G, (1,1) B, (1,0) G (SID:test_Sony.py and ALEN:dataset.py ``pack_raw``); values unchanged."""
    if bayer.ndim != 2 or bayer.shape[0] % 2 or bayer.shape[1] % 2:
        raise ValueError(f"expected an even H x W Bayer array, got shape {bayer.shape}")
    return np.stack([bayer[0::2, 0::2], bayer[0::2, 1::2], bayer[1::2, 1::2], bayer[1::2, 0::2]])


def normalize_raw(raw: np.ndarray, black: float = BLACK_LEVEL, white: float = WHITE_LEVEL) -> np.ndarray:
    """SID's ``max(raw - black, 0) / (white - black)`` in float32, element by element (any shape; the result
    is C-contiguous whatever the strides of ``raw``)."""
    x = raw.astype(np.float32, order="C")  # a new array: the operations below work in place
    np.subtract(x, np.float32(black), out=x)
    np.maximum(x, 0, out=x)
    return np.divide(x, np.float32(white - black), out=x)


def pack_bayer(bayer: np.ndarray, black: float = BLACK_LEVEL, white: float = WHITE_LEVEL) -> np.ndarray:
    """SID's ``pack_raw``: :func:`normalize_raw` of the :func:`bayer_planes`, float32 (4, H/2, W/2).

    Values are not clipped above (saturated pixels reach 1; the amplified input is clipped by the caller).
    """
    return normalize_raw(bayer_planes(bayer), black, white)


def amplify(packed: np.ndarray, ratio: float) -> np.ndarray:
    """The network input: packed raw times the amplification ratio, clipped at 1 (SID:test_Sony.py L139)."""
    x = packed * np.float32(ratio)
    return np.minimum(x, 1.0, out=x)


def pack_raw_file(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """Read ``path`` and pack it (:func:`pack_bayer`); returns (packed (4, H/2, W/2), exposure seconds)."""
    bayer, exposure = read_bayer(path)
    return pack_bayer(bayer), exposure


def load_raw_input(
    path: str | os.PathLike, ratio: float | None = None, long_path: str | os.PathLike | None = None
) -> torch.Tensor:
    """A short exposure as network input: packed, amplified, clipped at 1; float32 (4, H/2, W/2).

    Args:
        path: the short-exposure raw file.
        ratio: amplification; by default ``min(long / short exposure, 300)`` with the long exposure taken
            from ``long_path`` or, in the SID layout, from ``<path>/../../long/<scene>_00_*``.
    Raises:
        ValueError / FileNotFoundError naming ``path`` when no ratio can be determined.
    """
    packed, short_t = pack_raw_file(path)
    if ratio is None:
        if long_path is None:
            scene = parse_name(path).scene
            long_dir = Path(path).resolve().parent.parent / "long"
            longs = sorted(p for p in long_dir.glob(f"{scene}_00*") if _is_raw(p)) if long_dir.is_dir() else []
            if not longs:
                raise FileNotFoundError(
                    f"{path}: no amplification ratio given and no long exposure {long_dir}/{scene}_00_* to "
                    "derive it from"
                )
            long_path = longs[0]
        ratio = amplification_ratio(short_t, _exposure(Path(long_path)))
    if not ratio > 0:
        raise ValueError(f"{path}: amplification ratio must be positive, got {ratio}")
    return torch.from_numpy(amplify(packed, ratio))


# ---- ground truth -------------------------------------------------------------------------------
def _postprocess(raw: Any) -> np.ndarray:
    """LibRaw rendering of the SID ground truth (H, W, 3) uint16; a seam tests count calls through."""
    return raw.postprocess(**GT_POSTPROCESS)


def _render_u16(path: str | os.PathLike) -> np.ndarray:
    rawpy = _rawpy()
    with _open(path) as raw:
        try:
            check_rggb(raw, path)
            rgb = _postprocess(raw)
        except rawpy.LibRawError as e:
            raise ValueError(f"{path}: cannot render raw file ({type(e).__name__}: {e})") from e
    if rgb.dtype != np.uint16 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{path}: LibRaw returned {rgb.dtype} {rgb.shape}, expected uint16 (H, W, 3)")
    return rgb


def render_ground_truth(path: str | os.PathLike) -> np.ndarray:
    """The long exposure rendered as SID's ground truth: (3, H, W) float32 = LibRaw 16-bit output / 65535."""
    return np.ascontiguousarray(_render_u16(path).transpose(2, 0, 1), dtype=np.float32) / np.float32(65535)


def _cv2():
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - opencv comes with pyiqa
        raise ImportError("the ground-truth cache writes 16-bit PNGs with OpenCV (pip install opencv-python)") from e
    return cv2


def cached_ground_truth(path: str | os.PathLike, cache_dir: str | os.PathLike) -> np.ndarray:
    """:func:`render_ground_truth` through a 16-bit PNG cache ``<cache_dir>/<stem>.png`` (lossless).

    The PNG is written atomically the first time; later calls decode it and never run LibRaw. An
    unreadable cache file is rendered again and replaced.
    """
    rgb = ground_truth_u16(path, cache_dir)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / np.float32(65535)


def ground_truth_u16(path: str | os.PathLike, cache_dir: str | os.PathLike) -> np.ndarray:
    """The rendered ground truth of ``path`` as uint16 H x W x 3 RGB, through the PNG cache in ``cache_dir``."""
    cv2 = _cv2()
    cache = Path(cache_dir) / (Path(path).stem + ".png")
    if cache.is_file():
        bgr = cv2.imread(os.fspath(cache), cv2.IMREAD_UNCHANGED)
        if bgr is not None and bgr.dtype == np.uint16 and bgr.ndim == 3 and bgr.shape[2] == 3:
            return np.ascontiguousarray(bgr[:, :, ::-1])
    rgb = _render_u16(path)
    cache.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=cache.parent)
    os.close(fd)
    try:
        if not cv2.imwrite(tmp, np.ascontiguousarray(rgb[:, :, ::-1])):
            raise OSError(f"OpenCV could not write {tmp}")
        os.replace(tmp, cache)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return np.ascontiguousarray(rgb)


# ---- dataset ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RawPair:
    """One short exposure and its long-exposure ground truth."""

    id: str  # the short file's stem, e.g. "10003_00_0.1s"
    short: Path
    long: Path
    scene: str
    frame: str


def _is_raw(p: Path) -> bool:
    return p.suffix.lower() in RAW_EXTENSIONS and p.is_file()


class SIDRaw(Dataset):
    """SID-style raw pairs under ``root`` (DESIGN.md canonical layout).

    Items are dicts ``{"id": str, "input": float32 (4, H/2, W/2) in [0, 1], "target": float32 (3, H, W)
    in [0, 1], "ratio": float}``.

    Args:
        root: dataset root holding ``Sony/short``, ``Sony/long`` and (optionally) ``Sony_<split>_list.txt``.
            Without a list file, short files are globbed by the split's scene prefix and paired with the
            long exposure ``<scene>_00_*`` of the same scene (as SID:test_Sony.py does).
        split: ``train`` | ``val`` | ``test`` (scene ids starting with 0 / 2 / 1).
        frames: burst frame to keep (``"00"``: first frames only, as ALEN); ``None`` or ``"all"``: all.
        cache_dir: where rendered ground truths are cached (default ``<root>/.cache/gt``).
        exclude_misaligned: drop :data:`EXCLUDED_SCENES` (SID README).
        in_memory: keep decoded items in RAM after the first access (ALEN:dataset.py preloads everything).
    Raises:
        ValueError / FileNotFoundError naming the offending file: unknown split, unparsable names, a short
        file without its long partner, a list entry whose scene does not belong to the split.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        frames: str | None = "00",
        cache_dir: str | os.PathLike | None = None,
        exclude_misaligned: bool = True,
        in_memory: bool = False,
    ):
        if split not in SPLIT_PREFIX:
            raise ValueError(f"unknown SID split {split!r}; allowed: {sorted(SPLIT_PREFIX)}")
        if frames is not None and frames != "all" and not re.fullmatch(r"\d{2}", str(frames)):
            raise ValueError(f"frames must be a 2-digit burst index like '00', 'all' or None, got {frames!r}")
        self.root = Path(root)
        self.split = split
        self.frames = None if frames in (None, "all") else str(frames)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.root / ".cache" / "gt"
        self.exclude_misaligned = exclude_misaligned
        self.in_memory = in_memory
        self._memory: dict[int, dict[str, Any]] = {}
        list_file = self.root / f"Sony_{split}_list.txt"
        pairs = self._from_list(list_file) if list_file.is_file() else self._from_dirs()
        keep = []
        for p in pairs:
            if self.frames is not None and p.frame != self.frames:
                continue
            if exclude_misaligned and p.scene in EXCLUDED_SCENES:
                continue
            keep.append(p)
        if not keep:
            raise ValueError(f"{self.root}: no {split} pairs (frames={frames!r}) found")
        self.pairs: list[RawPair] = sorted(keep, key=lambda p: p.id)

    # -- discovery
    def _make_pair(self, short: Path, long: Path, where: str) -> RawPair:
        s, g = parse_name(short), parse_name(long)
        if not s.scene.startswith(SPLIT_PREFIX[self.split]):
            raise ValueError(f"{where}: scene {s.scene} of {short.name} is not a {self.split} scene")
        if s.scene != g.scene:
            raise ValueError(f"{where}: {short.name} is paired with {long.name} of another scene")
        if not short.is_file():
            raise FileNotFoundError(f"{where}: short exposure {short} does not exist")
        if not long.is_file():
            raise FileNotFoundError(f"{where}: {short.name} has no long-exposure partner: {long} does not exist")
        return RawPair(short.stem, short, long, s.scene, s.frame)

    def _from_list(self, list_file: Path) -> list[RawPair]:
        return [self._make_pair(self.root / s, self.root / g, str(list_file)) for s, g in read_list(list_file)]

    def _from_dirs(self) -> list[RawPair]:
        short_dir, long_dir = self.root / "Sony" / "short", self.root / "Sony" / "long"
        for d in (short_dir, long_dir):
            if not d.is_dir():
                raise FileNotFoundError(f"{d}: missing (expected the SID layout <root>/Sony/{{short,long}}/)")
        prefix = SPLIT_PREFIX[self.split]
        pairs = []
        for short in sorted(p for p in short_dir.iterdir() if _is_raw(p) and p.name.startswith(prefix)):
            scene = parse_name(short).scene
            longs = sorted(p for p in long_dir.glob(f"{scene}_00*") if _is_raw(p))  # SID:test_Sony.py
            if not longs:
                raise FileNotFoundError(f"{short}: no long-exposure partner {long_dir}/{scene}_00_*")
            pairs.append(self._make_pair(short, longs[0], str(short_dir)))
        return pairs

    # -- access
    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def ratio(self, index: int) -> float:
        """Amplification ratio of item ``index`` (from the names; metadata only where a name has none)."""
        p = self.pairs[index]
        return amplification_ratio(_exposure(p.short), _exposure(p.long))

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index in self._memory:
            return self._memory[index]
        p = self.pairs[index]
        packed, short_t = pack_raw_file(p.short)
        ratio = amplification_ratio(short_t, _exposure(p.long))
        target = cached_ground_truth(p.long, self.cache_dir)
        if target.shape[1:] != (2 * packed.shape[1], 2 * packed.shape[2]):
            raise ValueError(
                f"{p.short} packs to {packed.shape[1:]} but its ground truth {p.long} renders to "
                f"{target.shape[1:]}; expected exactly twice the packed size"
            )
        item = {
            "id": p.id,
            "input": torch.from_numpy(amplify(packed, ratio)),
            "target": torch.from_numpy(target),
            "ratio": ratio,
        }
        if self.in_memory:
            self._memory[index] = item
        return item

    def check(self) -> None:
        """Decode every pair once (ground truths through the cache); raises naming the first bad file."""
        for i in range(len(self)):
            self[i]


def _exposure(path: Path) -> float:
    """Exposure from the name; opens the file for its metadata only when the name carries none."""
    parsed = parse_name(path)
    if parsed.exposure is not None:
        return parsed.exposure
    with _open(path) as raw:
        return exposure_time(path, raw)
