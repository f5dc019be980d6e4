"""Prepare the real datasets from their official downloads into the canonical layouts (DESIGN.md ▶ Datasets).

``prepare(name, source, dest)`` reads an official download - an extracted folder, a ``.zip`` / ``.tar`` /
``.tar.gz`` archive, or several of them (LSRW and SIDD come as more than one file) - validates everything
(official counts, pairing, every image decodes, ``.mat`` keys and shapes, SID's list files), writes the
canonical layout plus ``DATASET.json`` and ``MANIFEST.sha256`` into ``.<dest>.tmp-XXXX`` and renames that to
``dest`` in one step. A failure leaves no half-written dataset; the source is never modified (archives are
extracted into a temporary folder next to ``dest``, and removed afterwards).

=============  ==========================================  ==============================================
name           official download                           canonical layout under ``dest``
=============  ==========================================  ==============================================
lol            LOLdataset.zip: ``our485|eval15/low|high``  ``{train,test}/{low,high}/<id>.png``
lolv2-real     LOL-v2: ``Real_captured/{Train,Test}/       ``{train,test}/{low,high}/<nnnnn>.png``
               {Low,Normal}`` (lowNNNNN / normalNNNNN)
lolv2-syn      LOL-v2: ``Synthetic/{Train,Test}/...``      ``{train,test}/{low,high}/<id>.png``
lsrw           ``Training data.zip`` + ``Eval.zip``:       ``{train,test}/{low,high}/<Camera>_<id>.png``
               ``{Huawei,Nikon}/{low,high}/*.jpg``         (JPEG decoded once, stored as PNG)
sidd           SIDD_Medium_Srgb: ``Data/<scene>/NNNN_       ``train/{noisy,clean}/<scene>_<010|011>.png``,
               {GT,NOISY}_SRGB_01{0,1}.PNG`` + the two     ``val/Validation{Noisy,Gt}BlocksSrgb.mat``
               validation ``.mat`` files                   (the official files, byte for byte)
sid            Sony.zip: ``Sony/{short,long}/*.ARW`` +      the official layout: ``Sony/{short,long}/*.ARW``,
               ``Sony_{train,val,test}_list.txt``          ``Sony_{train,val,test}_list.txt``
=============  ==========================================  ==============================================

Official facts used here (the datasets keep their own terms: research use; nothing here downloads them):

- LOL-v1: Wei et al., "Deep Retinex Decomposition for Low-Light Enhancement", BMVC 2018,
  https://daooshee.github.io/BMVC2018website/ - 485 training + 15 evaluation pairs.
- LOL-v2: Yang et al., "Sparse Gradient Regularized Deep Retinex Network", TIP 2021 (flyywh/SGM-Low-Light) -
  Real_captured 689 + 100, Synthetic 900 + 100 pairs; real pairs are ``lowNNNNN`` / ``normalNNNNN``.
- LSRW: Hai et al., "R2RNet", JVCIR 2023; data link in JianghaiSCU/R2RNet@cf59012 README (corrected-names
  release) - ``Training data/{Huawei,Nikon}`` and ``Eval/{Huawei,Nikon}``, each ``low/`` + ``high/`` JPEGs
  with equal names; 5600 train (Huawei 2450, Nikon 3150) / 50 eval (Huawei 30, Nikon 20). The split is
  pinned by folder in ``llbench/data/splits/lsrw_{train,test}.txt``.
- SIDD: Abdelhamed et al., CVPR 2018, https://abdokamel.github.io/sidd/ - SIDD-Medium sRGB
  ``_ReadMe_sRGB.txt``: "320 image pairs ... representing 160 scene instances, two images from each"
  (instances ``010`` and ``011``); validation: ``ValidationNoisyBlocksSrgb.mat`` /
  ``ValidationGtBlocksSrgb.mat``, one variable each named like the file, uint8 (40, 32, 256, 256, 3)
  (40 images x 32 blocks), MATLAB v5 files that ``scipy.io.loadmat`` reads (v7.3/HDF5 is read with h5py).
- SID: Chen et al., "Learning to See in the Dark", CVPR 2018, cchen156/Learning-to-See-in-the-Dark@0448b58
  ``dataset/Sony_{train,val,test}_list.txt``: 1865 / 234 / 598 lines ``./Sony/short/X.ARW ./Sony/long/Y.ARW
  ISOnnn Fn``, 2697 short and 231 long exposures (161 / 20 / 50 long per split). The README notes that
  10034, 10045 and 10172 are misaligned with their ground truth (exclude them from quantitative results).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from llbench.data.images import DatasetError
from llbench.data.manifest import MANIFEST, CheckReport, check_manifest, read_manifest, writing_dataset
from llbench.data.sidd import SIDD_VAL_FILES, SIDD_VAL_SHAPE, read_mat_array

log = logging.getLogger(__name__)

Kind = str  # a dataset kind (llbench.vocabulary.KINDS) that has a planner here (_PLANNERS)
PathLike = str | os.PathLike

INFO = "DATASET.json"  # what was prepared: name, kind, counts found, official counts, strict_counts
SPLITS_DIR = Path(__file__).resolve().parent / "splits"

# Official counts, checked unless strict_counts=False. Keys are splits, or "<split>/<subset>".
COUNTS: dict[str, dict[str, int]] = {
    "lol": {"train": 485, "test": 15},
    "lolv2-real": {"train": 689, "test": 100},
    "lolv2-syn": {"train": 900, "test": 100},
    "lsrw": {"train/Huawei": 2450, "train/Nikon": 3150, "test/Huawei": 30, "test/Nikon": 20},
    "sidd": {"train": 320, "train_scenes": 160, "val": 40 * 32},
    "sid": {"train": 1865, "val": 234, "test": 598, "short": 2697, "long": 231},
}


# sha256 of the official SID Sony lists (Learning-to-See-in-the-Dark@0448b58 dataset/), after normalising
# line endings and surrounding blanks (one "<fields>\n" per non-empty line).
SID_LISTS = ("train", "val", "test")
SID_LIST_SHA256 = {
    "train": "96647f5eae580bc026c12d889276d7e8ca4fdbd32a024b5f7ae9ef83fe0ace65",
    "val": "2ca689f8dd0381459d30c75d7d490c218b9ad545ae16123913904614aaeef58b",
    "test": "d6a00d0316fe81581640e4f76cf96a85d75a29c9cc562ff9b40f9aa026cebf08",
}


@dataclass(frozen=True)
class DatasetSpec:
    """One real dataset: where it lives by default, what it is, and where to get it."""

    name: str
    kind: Kind
    root: str  # default root, relative to the project
    splits: tuple[str, ...]
    download: str  # the official files to download
    url: str


_PAIRED_SPLITS, _REPO = ("train", "test"), "https://github.com/"
DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        DatasetSpec(name="lol", kind="paired", root="data/LOL", splits=_PAIRED_SPLITS,
                    download="LOLdataset.zip", url="https://daooshee.github.io/BMVC2018website/"),
        DatasetSpec(name="lolv2-real", kind="paired", root="data/LOLv2-real", splits=_PAIRED_SPLITS,
                    download="LOL-v2 (Real_captured)", url=_REPO + "flyywh/SGM-Low-Light"),
        DatasetSpec(name="lolv2-syn", kind="paired", root="data/LOLv2-syn", splits=_PAIRED_SPLITS,
                    download="LOL-v2 (Synthetic)", url=_REPO + "flyywh/SGM-Low-Light"),
        DatasetSpec(name="lsrw", kind="paired", root="data/LSRW", splits=_PAIRED_SPLITS,
                    download="Training data.zip + Eval.zip", url=_REPO + "JianghaiSCU/R2RNet"),
        DatasetSpec(name="sidd", kind="denoise", root="data/SIDD", splits=("train", "val"),
                    download="SIDD_Medium_Srgb.zip + Validation{Noisy,Gt}BlocksSrgb.mat",
                    url="https://abdokamel.github.io/sidd/"),
        DatasetSpec(name="sid", kind="raw", root="data/SID", splits=("train", "val", "test"),
                    download="Sony.zip + Sony_{train,val,test}_list.txt",
                    url=_REPO + "cchen156/Learning-to-See-in-the-Dark"),
    )
}  # fmt: skip


class _Problem(Exception):
    """One problem with one file (collected, then raised together as a DatasetError)."""


# ----------------------------------------------------------------------------------------------------------
# sources: folders, archives, loose files


_IGNORED_DIRS = {"__macosx"}
_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
_LOOSE_EXT = {".mat", ".txt"}
_MAX_DEPTH = 6  # how deep below a source folder to look for the release's folders


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in _IGNORED_DIRS


class _Sources:
    """The folders and loose files of one or more downloads (archives extracted into owned temp dirs)."""

    def __init__(self, paths: Sequence[Path], scratch: Path, stack: ExitStack):
        self.given = list(paths)
        self.dirs: list[Path] = []
        self.files: list[Path] = []
        self.owned: list[Path] = []  # extraction dirs: their files may be moved instead of copied
        for p in paths:
            if p.is_dir():
                self.dirs.append(p)
            elif p.suffix.lower() in _LOOSE_EXT:
                self.files.append(p)
            else:
                tmp = Path(tempfile.mkdtemp(prefix=f"{scratch.name}.extract-", dir=scratch.parent))
                stack.callback(shutil.rmtree, tmp, True)
                _extract(p, tmp)
                self.dirs.append(tmp)
                self.owned.append(tmp)

    def __str__(self) -> str:
        return ", ".join(str(p) for p in self.given)

    def owns(self, path: Path) -> bool:
        return any(path.is_relative_to(d) for d in self.owned)

    def walk(self) -> Iterator[Path]:
        """Every folder under the sources (depth-limited, hidden and __MACOSX folders skipped)."""
        for root in self.dirs:
            stack = [(root, 0)]
            while stack:
                d, depth = stack.pop()
                yield d
                if depth >= _MAX_DEPTH:
                    continue
                try:
                    entries = sorted(os.scandir(d), key=lambda e: e.name, reverse=True)
                except OSError:
                    continue
                stack.extend((Path(e.path), depth + 1) for e in entries if not _hidden(e.name) and e.is_dir())

    def find_dirs(self, rel: str, children: Sequence[str] = ()) -> list[Path]:
        """Folders whose path ends with ``rel`` (case-insensitive) and that hold every child folder."""
        want = tuple(p.lower() for p in Path(rel).parts)
        return [
            d
            for d in self.walk()
            if tuple(p.lower() for p in d.parts[-len(want) :]) == want
            and all(_child(d, c) is not None for c in children)
        ]

    def find_files(self, name: str) -> list[Path]:
        """Files named ``name`` (case-insensitive): loose ones, then anywhere under the folders."""
        hits = [f for f in self.files if f.name.lower() == name.lower()]
        for d in self.walk():
            hits += [c for c in _files(d) if c.name.lower() == name.lower()]
        return hits


def _extract(archive: Path, into: Path) -> None:
    log.info("extracting %s into %s", archive, into)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:  # ZipFile.extractall drops absolute paths and '..'
                z.extractall(into)
            return
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as t:
                t.extractall(into, filter="data")  # refuses links and paths outside `into`
            return
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise DatasetError(f"{archive}: damaged or incomplete archive ({type(e).__name__}: {e})") from None
    if archive.name.lower().endswith((".zip", ".tar", ".tar.gz", ".tgz")):
        raise DatasetError(f"{archive}: damaged or incomplete archive (not readable as {archive.suffix})")
    raise DatasetError(f"{archive}: not a folder, .zip or .tar(.gz) archive, nor a .mat/.txt of the release")


def _child(d: Path, name: str) -> Path | None:
    """The sub-folder of ``d`` called ``name``, matched case-insensitively."""
    exact = d / name
    if exact.is_dir():
        return exact
    try:
        return next((Path(e.path) for e in os.scandir(d) if e.is_dir() and e.name.lower() == name.lower()), None)
    except OSError:
        return None


def _files(d: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(d) if e.is_file() and not _hidden(e.name))
    except OSError:
        return []


def _one(found: list[Path], what: str, srcs: _Sources, problems: list[str], required: bool) -> Path | None:
    """The single match of a search, or a problem (none found and required / ambiguous)."""
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        problems.append(f"{what}: found {len(found)} candidates, expected one: {', '.join(map(str, found))}")
    elif required:
        problems.append(f"{what}: not found in {srcs}")
    return None


# ----------------------------------------------------------------------------------------------------------
# plans: what to write where, and which checks each file gets


@dataclass
class _Item:
    src: Path
    rel: str  # destination, relative to the dataset root
    check: Literal["image", "raw", "mat", "text"]
    key: str = ""  # .mat variable
    shape: tuple[int, ...] | None = None  # expected .mat shape (strict only)


@dataclass
class _Plan:
    items: list[_Item] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)  # rel paths whose sizes / shapes must agree
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Group:
    """One folder of a paired release: ``<folder>/<sides[0]>`` low-light, ``<folder>/<sides[1]>`` target."""

    key: str  # counts key
    split: str
    folder: str
    sides: tuple[str, str] = ("low", "high")
    naming: tuple[str, str] | None = None  # regexes with one group = the pairing id; None: the stem is the id
    prefix: str = ""


def _lsrw_groups() -> list[_Group]:
    groups = []
    for split in ("train", "test"):
        for line in (SPLITS_DIR / f"lsrw_{split}.txt").read_text().splitlines():
            folder = line.strip()
            if folder and not folder.startswith("#"):
                camera = Path(folder).name
                groups.append(_Group(f"{split}/{camera}", split, folder, prefix=f"{camera}_"))
    return groups


_LOLV2_REAL = (r"low(\d+)", r"normal(\d+)")  # low00001.png <-> normal00001.png: pair by number

_PAIRED_GROUPS: dict[str, Callable[[], list[_Group]]] = {
    "lol": lambda: [_Group("train", "train", "our485"), _Group("test", "test", "eval15")],
    "lolv2-real": lambda: [
        _Group("train", "train", "Real_captured/Train", ("Low", "Normal"), _LOLV2_REAL),
        _Group("test", "test", "Real_captured/Test", ("Low", "Normal"), _LOLV2_REAL),
    ],
    "lolv2-syn": lambda: [
        _Group("train", "train", "Synthetic/Train", ("Low", "Normal")),
        _Group("test", "test", "Synthetic/Test", ("Low", "Normal")),
    ],
    "lsrw": _lsrw_groups,
}


def _images_by_id(d: Path, pattern: str | None, problems: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in _files(d):
        if f.suffix.lower() not in _IMAGE_EXT:
            continue
        if pattern is None:
            key = f.stem
        elif m := re.fullmatch(pattern, f.stem, re.IGNORECASE):
            key = m.group(1)
        else:
            problems.append(f"{f}: unexpected file name, expected <{pattern}>{f.suffix}")
            continue
        if key in out:
            problems.append(f"{f}: same id {key!r} as {out[key].name}")
        out[key] = f
    return out


def _plan_paired(name: str, srcs: _Sources, strict: bool) -> _Plan:
    plan = _Plan()
    for g in _PAIRED_GROUPS[name]():
        what = f"{g.folder}/{{{g.sides[0]},{g.sides[1]}}}"
        d = _one(srcs.find_dirs(g.folder, g.sides), what, srcs, plan.problems, required=strict)
        plan.counts[g.key] = 0
        if d is None:
            if not strict:
                log.warning("%s: %s not found in %s: %s left empty (strict_counts=False)", name, what, srcs, g.key)
            continue
        dirs = [_child(d, s) for s in g.sides]
        low, high = (
            _images_by_id(side, g.naming[i] if g.naming else None, plan.problems) for i, side in enumerate(dirs)
        )
        for key in sorted(low.keys() - high.keys()):
            plan.problems.append(f"{low[key]}: missing partner in {dirs[1]} (no file with id {key!r})")
        for key in sorted(high.keys() - low.keys()):
            plan.problems.append(f"{high[key]}: missing partner in {dirs[0]} (no file with id {key!r})")
        for key in sorted(low.keys() & high.keys()):
            ident = g.prefix + key
            a, b = f"{g.split}/low/{ident}.png", f"{g.split}/high/{ident}.png"
            plan.items += [_Item(low[key], a, "image"), _Item(high[key], b, "image")]
            plan.pairs.append((a, b))
            plan.counts[g.key] += 1
    return plan


_SIDD_SCENE = re.compile(r"(\d{4})_\d{3}_[A-Z0-9]{2}_\d{5}_\d{5}_\d{4}_[LNH]")  # _ReadMe_sRGB.txt naming
_SIDD_FILE = re.compile(r"(\d{4})_(GT|NOISY)_SRGB_(\d{3})\.png", re.IGNORECASE)


def _plan_sidd(name: str, srcs: _Sources, strict: bool) -> _Plan:
    plan = _Plan()
    data_dirs = [d for d in srcs.walk() if any(_SIDD_SCENE.fullmatch(c.name) for c in _subdirs(d))]
    data = _one(data_dirs, "SIDD_Medium_Srgb/Data/<scene folders>", srcs, plan.problems, required=True)
    plan.counts.update(train=0, train_scenes=0)
    for scene in _subdirs(data) if data else []:
        if not (m := _SIDD_SCENE.fullmatch(scene.name)):
            continue
        plan.counts["train_scenes"] += 1
        found: dict[str, dict[str, Path]] = {}
        for f in _files(scene):
            if not (fm := _SIDD_FILE.fullmatch(f.name)):
                continue
            if fm.group(1) != m.group(1):
                plan.problems.append(f"{f}: scene number {fm.group(1)} differs from its folder's {m.group(1)}")
            found.setdefault(fm.group(3), {})[fm.group(2).upper()] = f
        if not found:
            plan.problems.append(f"{scene}: no NNNN_{{GT,NOISY}}_SRGB_<instance>.PNG files")
        for inst, files in sorted(found.items()):
            if set(files) != {"GT", "NOISY"}:
                have = next(iter(files.values()))
                other = "NOISY" if "GT" in files else "GT"
                plan.problems.append(f"{have}: missing partner {m.group(1)}_{other}_SRGB_{inst}.PNG in {scene}")
                continue
            ident = f"{scene.name}_{inst}"
            a, b = f"train/noisy/{ident}.png", f"train/clean/{ident}.png"
            plan.items += [_Item(files["NOISY"], a, "image"), _Item(files["GT"], b, "image")]
            plan.pairs.append((a, b))
            plan.counts["train"] += 1
    for fname, key in SIDD_VAL_FILES.items():
        f = _one(srcs.find_files(fname), fname, srcs, plan.problems, required=True)
        if f is not None:
            plan.items.append(_Item(f, f"val/{fname}", "mat", key=key, shape=SIDD_VAL_SHAPE if strict else None))
    plan.pairs.append(tuple(f"val/{f}" for f in SIDD_VAL_FILES))  # noisy and GT blocks: same shape
    return plan


def _subdirs(d: Path | None) -> list[Path]:
    if d is None:
        return []
    try:
        return sorted(Path(e.path) for e in os.scandir(d) if e.is_dir() and not _hidden(e.name))
    except OSError:
        return []


def _normalised(text: str) -> str:
    return "".join(line.strip() + "\n" for line in text.splitlines() if line.strip())


_SID_ISO, _SID_F = re.compile(r"ISO\d+"), re.compile(r"F\d+(\.\d+)?")


def _plan_sid(name: str, srcs: _Sources, strict: bool) -> _Plan:
    plan = _Plan()
    sony = _one(srcs.find_dirs("Sony", ("short", "long")), "Sony/{short,long}", srcs, plan.problems, True)
    present: dict[str, dict[str, Path]] = {"short": {}, "long": {}}
    if sony is not None:
        for sub in present:
            present[sub] = {f.name: f for f in _files(_child(sony, sub)) if f.suffix.lower() == ".arw"}
            for f in present[sub].values():
                plan.items.append(_Item(f, f"Sony/{sub}/{f.name}", "raw"))
            plan.counts[sub] = len(present[sub])
    for split in SID_LISTS:
        fname = f"Sony_{split}_list.txt"
        lst = _one(srcs.find_files(fname), fname, srcs, plan.problems, required=True)
        if lst is None:
            continue
        text = lst.read_text(errors="replace")
        digest = hashlib.sha256(_normalised(text).encode()).hexdigest()
        if digest != SID_LIST_SHA256[split]:
            msg = f"{lst}: differs from the official {fname} (sha256 of its lines {digest[:12]}...)"
            if strict:
                plan.problems.append(msg)
            else:
                log.warning("%s (strict_counts=False)", msg)
        plan.items.append(_Item(lst, fname, "text"))
        plan.counts[split] = 0
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split()
            ok = (
                len(fields) == 4
                and fields[0].startswith("./Sony/short/")
                and fields[1].startswith("./Sony/long/")
                and _SID_ISO.fullmatch(fields[2])
                and _SID_F.fullmatch(fields[3])
            )
            if not ok:
                plan.problems.append(
                    f"{lst}:{n}: expected './Sony/short/X.ARW ./Sony/long/Y.ARW ISOn Fn', got {line!r}"
                )
                continue
            short, long = Path(fields[0]).name, Path(fields[1]).name
            if short[:5] != long[:5]:
                plan.problems.append(f"{lst}:{n}: short {short} and long {long} are different scenes")
            for sub, f in (("short", short), ("long", long)):
                if f not in present[sub]:
                    plan.problems.append(f"{lst}:{n}: listed file Sony/{sub}/{f} is missing from {sony or srcs}")
            plan.pairs.append((f"Sony/short/{short}", f"Sony/long/{long}"))
            plan.counts[split] += 1
    return plan


_PLANNERS: dict[Kind, Callable[[str, _Sources, bool], _Plan]] = {
    "paired": _plan_paired,
    "denoise": _plan_sidd,
    "raw": _plan_sid,
}


# ----------------------------------------------------------------------------------------------------------
# per-file checks and writing


def _decode_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.verify()  # PNG: chunk CRCs
        im = Image.open(path)
        im.load()  # full decode
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise _Problem(f"{path}: corrupt or unreadable image ({e})") from None
    return im


def _write_image(item: _Item, out: Path, owned: bool) -> tuple[int, int]:
    """Decode; 8-bit RGB PNGs are kept byte for byte, anything else is stored as an 8-bit RGB PNG."""
    im = _decode_image(item.src)
    with im:
        if im.mode not in ("RGB", "L", "P", "RGBA", "LA"):
            raise _Problem(f"{item.src}: pixel mode {im.mode}, expected 8-bit RGB")
        if im.format == "PNG" and im.mode == "RGB":
            _place(item.src, out, owned)
            return im.size
        if "A" in im.getbands() and im.getchannel("A").getextrema()[0] < 255:
            raise _Problem(f"{item.src}: has transparent pixels, expected an opaque RGB image")
        im.convert("RGB").save(out, format="PNG", compress_level=6)
        return im.size


def _decode_raw(path: Path) -> tuple[int, ...]:
    import rawpy

    try:
        with rawpy.imread(str(path)) as raw:
            return tuple(raw.raw_image_visible.shape)
    except (rawpy.LibRawError, OSError, ValueError) as e:
        raise _Problem(f"{path}: corrupt or unreadable raw file ({e})") from None


def _check_mat(item: _Item) -> tuple[tuple[int, ...], str]:
    try:
        arr = read_mat_array(item.src, item.key)
    except ValueError as e:
        raise _Problem(str(e)) from None
    if arr.dtype != np.uint8 or arr.ndim != 5 or arr.shape[-1] != 3:
        raise _Problem(f"{item.src}: {item.key} is {arr.dtype} {arr.shape}, expected uint8 (images, blocks, H, W, 3)")
    if item.shape is not None and arr.shape != item.shape:
        raise _Problem(f"{item.src}: {item.key} has shape {arr.shape}, official {item.shape}")
    return arr.shape, str(arr.dtype)


def _place(src: Path, out: Path, owned: bool) -> None:
    if owned:
        os.replace(src, out)  # our own extraction: same filesystem, no second copy
    else:
        shutil.copyfile(src, out)


def _process(item: _Item, staging: Path, owned: bool) -> Any:
    out = staging / item.rel
    out.parent.mkdir(parents=True, exist_ok=True)
    if item.check == "image":
        return _write_image(item, out, owned)
    if item.check == "raw":
        info = _decode_raw(item.src)
    elif item.check == "mat":
        info = _check_mat(item)[0]
    else:
        info = None
    _place(item.src, out, owned)
    return info


_MAX_PROBLEMS = 20


def _run(name: str, plan: _Plan, staging: Path, srcs: _Sources, workers: int) -> dict[str, Any]:
    infos: dict[str, Any] = {}
    problems: list[str] = []
    total = len(plan.items)
    with ThreadPoolExecutor(max_workers=workers) as ex:
        futures = {ex.submit(_process, it, staging, srcs.owns(it.src)): it for it in plan.items}
        for done, fut in enumerate(as_completed(futures), 1):
            try:
                infos[futures[fut].rel] = fut.result()
            except _Problem as e:
                problems.append(str(e))
                if len(problems) >= _MAX_PROBLEMS:
                    for f in futures:
                        f.cancel()
                    break
            if done % max(1, total // 10) == 0:
                log.info("%s: checked %d/%d files", name, done, total)
    if problems:
        raise DatasetError(_problems_message(name, srcs, problems, stopped=len(problems) >= _MAX_PROBLEMS))
    for a, b in plan.pairs:
        if a in infos and b in infos and infos[a] != infos[b]:
            problems.append(f"{a} is {infos[a]} but its partner {b} is {infos[b]}: a pair must have equal sizes")
    if problems:
        raise DatasetError(_problems_message(name, srcs, problems))
    return infos


def _problems_message(name: str, srcs: _Sources, problems: list[str], stopped: bool = False) -> str:
    shown = problems[:_MAX_PROBLEMS]
    more = len(problems) - len(shown)
    lines = [f"{name}: {len(problems)} problem(s) in {srcs}; nothing was written:"]
    lines += [f"  - {p}" for p in shown]
    if more:
        lines.append(f"  ... and {more} more")
    if stopped:
        lines.append(f"  (stopped after {_MAX_PROBLEMS} problems)")
    return "\n".join(lines)


def _check_counts(name: str, counts: dict[str, int], strict: bool, srcs: _Sources) -> None:
    official = {k: v for k, v in COUNTS[name].items() if k in counts}
    diffs = [f"{k}: found {counts.get(k, 0)}, official {v}" for k, v in official.items() if counts.get(k, 0) != v]
    if not diffs:
        return
    if strict:
        raise DatasetError(
            f"{name}: counts differ from the official release in {srcs}; nothing was written:\n"
            + "\n".join(f"  - {d}" for d in diffs)
            + "\n  (a deliberate subset: pass strict_counts=False / --no-count-check)"
        )
    msg = f"{name}: preparing a SUBSET, counts differ from the official release (strict_counts=False): " + "; ".join(
        diffs
    )
    log.warning(msg)
    warnings.warn(msg, stacklevel=3)


# ----------------------------------------------------------------------------------------------------------
# public API


def prepare(
    name: str,
    source: PathLike | Sequence[PathLike],
    dest: PathLike | None = None,
    *,
    overwrite: bool = False,
    strict_counts: bool = True,
    workers: int | None = None,
) -> Path:
    """Build dataset ``name`` in its canonical layout from the official download(s) at ``source``.

    Args:
        name: a key of :data:`DATASETS` (``lol``, ``lolv2-real``, ``lolv2-syn``, ``lsrw``, ``sidd``, ``sid``).
        source: the extracted folder or the archive (.zip, .tar, .tar.gz), or a list of them plus loose
            ``.mat`` / ``.txt`` files (e.g. SIDD-Medium + the two validation files; LSRW's two archives).
        dest: the dataset root to create; default ``DATASETS[name].root`` (relative to the working directory).
        overwrite: replace an existing non-empty ``dest`` (swapped in only after the new one is complete).
        strict_counts: require the official counts (and SID's official lists, SIDD's official block shape);
            False prepares a subset, with a warning naming every difference.
        workers: threads that decode / copy files (default: min(8, CPUs)).

    Returns:
        ``dest`` (absolute), holding the layout, ``DATASET.json`` and ``MANIFEST.sha256``.

    Raises:
        KeyError: unknown ``name``.
        FileNotFoundError: a source does not exist.
        FileExistsError: ``dest`` exists, is not empty, and ``overwrite`` is False.
        DatasetError: (a ValueError) the source is not the expected release; lists every file at fault.
    """
    spec = get_spec(name)
    paths = [Path(source)] if isinstance(source, str | os.PathLike) else [Path(s) for s in source]
    if not paths:
        raise ValueError(f"{name}: no source given")
    dest = Path(dest if dest is not None else spec.root).absolute()
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{name}: source {p} does not exist")
        rp, rd = p.resolve(), dest.resolve()
        if rp == rd or rp.is_relative_to(rd) or rd.is_relative_to(rp):
            raise ValueError(f"{name}: dest {dest} and source {p} overlap; prepare into a separate folder")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())) and not overwrite:
        raise FileExistsError(f"{dest} exists; pass overwrite=True (--overwrite) to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    workers = workers or min(8, os.cpu_count() or 1)

    with ExitStack() as stack:
        srcs = _Sources(paths, dest, stack)
        plan = _PLANNERS[spec.kind](name, srcs, strict_counts)
        if plan.problems:
            raise DatasetError(_problems_message(name, srcs, plan.problems))
        if not plan.items:
            raise DatasetError(f"{name}: nothing to prepare found in {srcs} (expected {spec.download})")
        _check_counts(name, plan.counts, strict_counts, srcs)  # SIDD's val: by the .mat shape, below
        with writing_dataset(dest) as staging:
            log.info("%s: checking and writing %d files into %s", name, len(plan.items), staging)
            infos = _run(name, plan, staging, srcs, workers)
            counts = dict(plan.counts)
            if spec.kind == "denoise":
                shape = infos.get(f"val/{next(iter(SIDD_VAL_FILES))}")
                counts["val"] = int(shape[0] * shape[1]) if shape else 0
            _write_info(staging, spec, counts, strict_counts)
    log.info("%s: prepared %s (%s)", name, dest, ", ".join(f"{k} {v}" for k, v in counts.items()))
    return dest


def _write_info(root: Path, spec: DatasetSpec, counts: dict[str, int], strict: bool) -> None:
    info = {
        "name": spec.name,
        "kind": spec.kind,
        "counts": counts,
        "official_counts": COUNTS[spec.name],
        "strict_counts": strict,
        "subset": counts != COUNTS[spec.name],
        "source": spec.download,
        "url": spec.url,
    }
    (root / INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``; KeyError naming the known datasets otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def resolve_root(name_or_dir: PathLike) -> Path:
    """A dataset name's default root (``lol`` -> ``data/LOL``), or the given folder itself."""
    s = os.fspath(name_or_dir)
    return Path(DATASETS[s].root) if s in DATASETS else Path(s)


def check(root: PathLike) -> CheckReport:
    """Compare the files under ``root`` with its ``MANIFEST.sha256`` (missing, extra, corrupt)."""
    return check_manifest(Path(root))


def format_report(root: PathLike, report: CheckReport, *, limit: int = 10) -> str:
    """A human-readable summary of :func:`check` for ``llbench data check``."""
    root = Path(root)
    lines = []
    info_path = root / INFO
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        counts = ", ".join(f"{k} {v}" for k, v in info["counts"].items())
        subset = "  SUBSET of the official release" if info.get("subset") else ""
        lines.append(f"{info['name']} ({info['kind']}): {counts}{subset}")
    n = len(read_manifest(root))
    if report.ok:
        lines.append(f"{root}: OK, all {n} files match {MANIFEST}")
        return "\n".join(lines)
    lines.append(
        f"{root}: FAILED against {MANIFEST} ({n} files): {len(report.missing)} missing, "
        f"{len(report.extra)} extra, {len(report.corrupt)} corrupt"
    )
    for label, paths in (("missing", report.missing), ("extra", report.extra), ("corrupt", report.corrupt)):
        lines += [f"  {label}: {p}" for p in paths[:limit]]
        if len(paths) > limit:
            lines.append(f"  ... and {len(paths) - limit} more {label}")
    return "\n".join(lines)
