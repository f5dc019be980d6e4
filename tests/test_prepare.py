"""llbench.data.prepare: small stand-ins that mimic each official download's layout exactly (names, nesting,
.mat variable names, SID list format; DNG in place of ARW), good and damaged, plus the real samples in
../shared/datasets when present."""

from __future__ import annotations

import hashlib
import json
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from llbench.data.manifest import MANIFEST, check_manifest, read_manifest
from llbench.data.prepare import (
    COUNTS,
    DATASETS,
    INFO,
    SID_LIST_SHA256,
    SIDD_VAL_SHAPE,
    DatasetError,
    _check_mat,
    _Item,
    _lsrw_groups,
    check,
    format_report,
    prepare,
    read_mat_array,
    resolve_root,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


# ---------------------------------------------------------------------------------------------- builders


def _rgb(w: int, h: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png(path: Path, seed: int, size: tuple[int, int] = (8, 6)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_rgb(*size, seed)).save(path)


def _jpg(path: Path, seed: int, size: tuple[int, int] = (16, 12)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_rgb(*size, seed)).save(path, quality=90)


def _lol(root: Path, train: tuple[int, ...] = (2, 5, 11), test: tuple[int, ...] = (1, 22)) -> Path:
    """LOLdataset.zip's layout: LOLdataset/our485/{low,high}/<n>.png, LOLdataset/eval15/{low,high}/<n>.png."""
    for folder, ids in (("our485", train), ("eval15", test)):
        for n in ids:
            _png(root / "LOLdataset" / folder / "low" / f"{n}.png", n)
            _png(root / "LOLdataset" / folder / "high" / f"{n}.png", 1000 + n)
    return root


def _lolv2(root: Path) -> Path:
    """LOL-v2: Real_captured/{Train,Test}/{Low,Normal}/low00001.png|normal00001.png; Synthetic same names."""
    base = root / "LOL-v2"
    for split, nums in (("Train", (1, 2, 3)), ("Test", (690, 691))):
        for n in nums:
            _png(base / "Real_captured" / split / "Low" / f"low{n:05d}.png", n)
            _png(base / "Real_captured" / split / "Normal" / f"normal{n:05d}.png", 100 + n)
    for split, names in (("Train", ("r000da54ft", "r0a2b3c4dt")), ("Test", ("r11e0b0b9t",))):
        for i, s in enumerate(names):
            _png(base / "Synthetic" / split / "Low" / f"{s}.png", 200 + i, (4, 4))
            _png(base / "Synthetic" / split / "Normal" / f"{s}.png", 300 + i, (4, 4))
    return root


def _lsrw(root: Path) -> tuple[Path, Path]:
    """LSRW's two archives: 'Training data/{Huawei,Nikon}/{low,high}/*.jpg' and 'Eval/...'."""
    train, test = root / "train_src", root / "eval_src"
    for base, top, ids in ((train, "Training data", (1, 2)), (test, "Eval", (3,))):
        for cam in ("Huawei", "Nikon"):
            for n in ids:
                _jpg(base / top / cam / "low" / f"{n}.jpg", n)
                _jpg(base / top / cam / "high" / f"{n}.jpg", 50 + n)
    return train, test


SCENES = ("0001_001_S6_00100_00060_3200_L", "0054_003_GP_00800_00350_5500_N")


def _sidd(root: Path, key_noisy: str = "ValidationNoisyBlocksSrgb") -> list[Path]:
    """SIDD_Medium_Srgb/Data/<scene>/NNNN_{GT,NOISY}_SRGB_{010,011}.PNG + the two validation .mat files."""
    for k, scene in enumerate(SCENES):
        num = scene[:4]
        for inst in ("010", "011"):
            _png(root / "SIDD_Medium_Srgb" / "Data" / scene / f"{num}_GT_SRGB_{inst}.PNG", 10 * k + int(inst))
            _png(root / "SIDD_Medium_Srgb" / "Data" / scene / f"{num}_NOISY_SRGB_{inst}.PNG", 500 + 10 * k)
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    scipy.io.savemat(root / "ValidationNoisyBlocksSrgb.mat", {key_noisy: blocks})
    scipy.io.savemat(root / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": blocks // 2})
    return [
        root / "SIDD_Medium_Srgb",
        root / "ValidationNoisyBlocksSrgb.mat",
        root / "ValidationGtBlocksSrgb.mat",
    ]


def _dng(path: Path, seed: int, h: int = 32, w: int = 48) -> None:
    """A tiny Bayer RGGB DNG (pidng), named like a SID .ARW: rawpy reads it by content, like the real files.

    LibRaw rejects frames much smaller than 32x48 as "not a RAW file"; pidng 4.0.9 packs 14-bit wrongly.
    """
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.defs import CalibrationIlluminant, CFAPattern, DNGVersion, PhotometricInterpretation

    raw = np.random.default_rng(seed).integers(512, 16383, (h, w), dtype=np.uint16)
    t = DNGTags()
    for tag, value in (
        (Tag.ImageWidth, w),
        (Tag.ImageLength, h),
        (Tag.TileWidth, w),
        (Tag.TileLength, h),
        (Tag.Orientation, 1),
        (Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array),
        (Tag.SamplesPerPixel, 1),
        (Tag.BitsPerSample, 16),
        (Tag.CFARepeatPatternDim, [2, 2]),
        (Tag.CFAPattern, CFAPattern.RGGB),
        (Tag.BlackLevel, 512),
        (Tag.WhiteLevel, 16383),
        (Tag.ColorMatrix1, [[1, 1], [0, 1], [0, 1], [0, 1], [1, 1], [0, 1], [0, 1], [0, 1], [1, 1]]),
        (Tag.CalibrationIlluminant1, CalibrationIlluminant.D65),
        (Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]]),
        (Tag.DNGVersion, DNGVersion.V1_4),
        (Tag.DNGBackwardVersion, DNGVersion.V1_2),
        (Tag.Make, "Sony"),
        (Tag.Model, "stand-in"),
    ):
        t.set(tag, value)
    conv = RAW2DNG()
    conv.options(t, path="", compress=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    conv.convert(raw, filename=str(path.with_suffix("")))
    path.with_suffix(".dng").rename(path)


def _sid(root: Path) -> Path:
    """Sony.zip's layout + the official list format: './Sony/short/X.ARW ./Sony/long/Y.ARW ISOn Fn'."""
    lists = {
        "train": [("00001_00_0.04s", "00001_00_10s"), ("00001_00_0.1s", "00001_00_10s")],
        "val": [("20005_00_0.04s", "20005_00_10s")],
        "test": [("10003_00_0.1s", "10003_00_10s")],
    }
    seed = 0
    for split, rows in lists.items():
        lines = []
        for short, long in rows:
            for sub, stem in (("short", short), ("long", long)):
                f = root / "Sony" / sub / f"{stem}.ARW"
                if not f.exists():
                    _dng(f, seed := seed + 1)
            lines.append(f"./Sony/short/{short}.ARW ./Sony/long/{long}.ARW ISO200 F8\n")
        (root / f"Sony_{split}_list.txt").write_text("".join(lines))
    return root


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".extract-" in p.name or ".old-" in p.name)


def _subset(*args, **kwargs) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare(*args, strict_counts=False, **kwargs)


# ---------------------------------------------------------------------------------------------- tables


def test_tables():
    assert {n: (s.root, s.kind) for n, s in DATASETS.items()} == {
        "lol": ("data/LOL", "paired"),
        "lolv2-real": ("data/LOLv2-real", "paired"),
        "lolv2-syn": ("data/LOLv2-syn", "paired"),
        "lsrw": ("data/LSRW", "paired"),
        "sidd": ("data/SIDD", "denoise"),
        "sid": ("data/SID", "raw"),
    }
    assert COUNTS["lol"] == {"train": 485, "test": 15}
    assert COUNTS["lolv2-real"] == {"train": 689, "test": 100}
    assert COUNTS["lolv2-syn"] == {"train": 900, "test": 100}
    lsrw = COUNTS["lsrw"]
    assert lsrw["train/Huawei"] + lsrw["train/Nikon"] == 5600 and lsrw["test/Huawei"] + lsrw["test/Nikon"] == 50
    assert COUNTS["sidd"] == {"train": 320, "train_scenes": 160, "val": 1280} and SIDD_VAL_SHAPE == (
        40,
        32,
        256,
        256,
        3,
    )
    sid = COUNTS["sid"]
    assert sid["train"] + sid["val"] + sid["test"] == sid["short"] == 2697 and sid["long"] == 161 + 20 + 50
    # the pinned LSRW split: the release's folders, every one with an official count
    groups = _lsrw_groups()
    assert [(g.key, g.folder, g.prefix) for g in groups] == [
        ("train/Huawei", "Training data/Huawei", "Huawei_"),
        ("train/Nikon", "Training data/Nikon", "Nikon_"),
        ("test/Huawei", "Eval/Huawei", "Huawei_"),
        ("test/Nikon", "Eval/Nikon", "Nikon_"),
    ]
    assert resolve_root("sidd") == Path("data/SIDD") and resolve_root("some/dir") == Path("some/dir")
    with pytest.raises(KeyError, match="unknown dataset 'lol2'.*lolv2-real"):
        prepare("lol2", ".", "x")


# ------------------------------------------------------------------------------------------ good stand-ins


def test_lol_folder(tmp_path):
    src = _lol(tmp_path / "dl")
    before = _tree(src)
    dest = _subset("lol", src / "LOLdataset", tmp_path / "data" / "LOL")
    assert _tree(src) == before  # the source is never modified
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == sorted(
        [INFO, MANIFEST]
        + [f"train/{s}/{n}.png" for s in ("low", "high") for n in (2, 5, 11)]
        + [f"test/{s}/{n}.png" for s in ("low", "high") for n in (1, 22)]
    )
    # official PNGs are kept byte for byte
    assert (dest / "test/high/22.png").read_bytes() == (src / "LOLdataset/eval15/high/22.png").read_bytes()
    assert check(dest).ok and len(read_manifest(dest)) == len(files) - 1
    info = json.loads((dest / INFO).read_text())
    assert info["counts"] == {"train": 3, "test": 2} and info["subset"] and not info["strict_counts"]
    assert _leftovers(tmp_path / "data") == []
    assert "OK, all 11 files match" in format_report(dest, check(dest)) and "SUBSET" in format_report(dest, check(dest))


def test_subset_is_logged_and_warned(tmp_path, caplog):
    src = _lol(tmp_path / "dl")
    with pytest.warns(UserWarning, match=r"SUBSET.*train: found 3, official 485; test: found 2, official 15"):
        prepare("lol", src, tmp_path / "LOL", strict_counts=False)
    assert "strict_counts=False" in caplog.text


def test_lolv2_zip_real_and_synthetic(tmp_path):
    src = _lolv2(tmp_path / "dl")
    archive = tmp_path / "LOL-v2.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(src.rglob("*.png")):
            z.write(p, p.relative_to(src).as_posix())
        z.writestr("__MACOSX/LOL-v2/Real_captured/Train/Low/._low00001.png", b"junk")  # ignored
    real = _subset("lolv2-real", archive, tmp_path / "data" / "LOLv2-real")
    assert sorted(p.name for p in (real / "train/low").iterdir()) == ["00001.png", "00002.png", "00003.png"]
    assert sorted(p.name for p in (real / "test/high").iterdir()) == ["00690.png", "00691.png"]
    # paired by number: normal00691.png became test/high/00691.png
    assert (real / "test/high/00691.png").read_bytes() == (
        src / "LOL-v2/Real_captured/Test/Normal/normal00691.png"
    ).read_bytes()
    syn = _subset("lolv2-syn", archive, tmp_path / "data" / "LOLv2-syn")
    assert sorted(p.name for p in (syn / "train/high").iterdir()) == ["r000da54ft.png", "r0a2b3c4dt.png"]
    assert json.loads((syn / INFO).read_text())["counts"] == {"train": 2, "test": 1}
    assert check(real).ok and check(syn).ok
    assert _leftovers(tmp_path / "data") == []


def test_lsrw_two_archives_jpeg_to_png(tmp_path):
    train, test = _lsrw(tmp_path / "dl")
    archives = []
    for base, name in ((train, "Training data.tar.gz"), (test, "Eval.tar")):
        archives.append(tmp_path / name)
        with tarfile.open(archives[-1], "w:gz" if name.endswith("gz") else "w") as t:
            t.add(base, arcname=".")
    dest = _subset("lsrw", archives, tmp_path / "data" / "LSRW")
    assert sorted(p.name for p in (dest / "train/low").iterdir()) == [
        "Huawei_1.png",
        "Huawei_2.png",
        "Nikon_1.png",
        "Nikon_2.png",
    ]
    assert sorted(p.name for p in (dest / "test/high").iterdir()) == ["Huawei_3.png", "Nikon_3.png"]
    out = Image.open(dest / "test/high/Nikon_3.png")
    assert out.format == "PNG" and out.mode == "RGB"
    # decoded once: the PNG holds exactly the JPEG's decoded pixels
    assert np.array_equal(np.asarray(out), np.asarray(Image.open(test / "Eval/Nikon/high/3.jpg").convert("RGB")))
    info = json.loads((dest / INFO).read_text())
    assert info["counts"] == {"train/Huawei": 2, "train/Nikon": 2, "test/Huawei": 1, "test/Nikon": 1}


def test_sidd_medium_and_val_mats(tmp_path):
    sources = _sidd(tmp_path / "dl")
    dest = _subset("sidd", sources, tmp_path / "data" / "SIDD")
    ids = [f"{s}_{i}.png" for s in SCENES for i in ("010", "011")]
    assert sorted(p.name for p in (dest / "train/noisy").iterdir()) == ids
    assert sorted(p.name for p in (dest / "train/clean").iterdir()) == ids
    gt = sources[0] / "Data" / SCENES[1] / "0054_GT_SRGB_011.PNG"
    assert (dest / f"train/clean/{SCENES[1]}_011.png").read_bytes() == gt.read_bytes()
    for f in ("ValidationNoisyBlocksSrgb.mat", "ValidationGtBlocksSrgb.mat"):
        assert (dest / "val" / f).read_bytes() == (tmp_path / "dl" / f).read_bytes()
    blocks = read_mat_array(dest / "val/ValidationGtBlocksSrgb.mat", "ValidationGtBlocksSrgb")
    assert blocks.dtype == np.uint8 and blocks.shape == (2, 3, 8, 8, 3)
    info = json.loads((dest / INFO).read_text())
    assert info["counts"] == {"train": 4, "train_scenes": 2, "val": 6}
    assert check(dest).ok


def test_sidd_val_shape_is_official_when_strict(tmp_path):
    _sidd(tmp_path)
    item = _Item(tmp_path / "ValidationGtBlocksSrgb.mat", "x", "mat", key="ValidationGtBlocksSrgb")
    assert _check_mat(item) == ((2, 3, 8, 8, 3), "uint8")
    item.shape = SIDD_VAL_SHAPE
    with pytest.raises(Exception, match=r"shape \(2, 3, 8, 8, 3\), official \(40, 32, 256, 256, 3\)"):
        _check_mat(item)
    scipy.io.savemat(tmp_path / "f.mat", {"ValidationGtBlocksSrgb": np.zeros((2, 3, 8, 8, 3), np.float32)})
    with pytest.raises(Exception, match="float32.*expected uint8"):
        _check_mat(_Item(tmp_path / "f.mat", "x", "mat", key="ValidationGtBlocksSrgb"))


def test_sid_raw_and_lists(tmp_path):
    src = _sid(tmp_path / "dl")
    with pytest.warns(UserWarning, match="SUBSET"):
        dest = prepare("sid", src, tmp_path / "data" / "SID", strict_counts=False)
    assert sorted(p.name for p in (dest / "Sony/short").iterdir()) == [
        "00001_00_0.04s.ARW",
        "00001_00_0.1s.ARW",
        "10003_00_0.1s.ARW",
        "20005_00_0.04s.ARW",
    ]
    assert sorted(p.name for p in (dest / "Sony/long").iterdir()) == [
        "00001_00_10s.ARW",
        "10003_00_10s.ARW",
        "20005_00_10s.ARW",
    ]
    for split in ("train", "val", "test"):
        assert (dest / f"Sony_{split}_list.txt").read_bytes() == (src / f"Sony_{split}_list.txt").read_bytes()
    assert json.loads((dest / INFO).read_text())["counts"] == {
        "short": 4,
        "long": 3,
        "train": 2,
        "val": 1,
        "test": 1,
    }
    import rawpy

    with rawpy.imread(str(dest / "Sony/long/00001_00_10s.ARW")) as r:
        assert r.raw_image_visible.shape == (32, 48)
    assert check(dest).ok


def test_sid_lists_must_be_official_when_strict(tmp_path):
    src = _sid(tmp_path / "dl")
    with pytest.raises(DatasetError, match="differs from the official Sony_train_list.txt"):
        prepare("sid", src, tmp_path / "SID")
    assert len(SID_LIST_SHA256) == 3 and not (tmp_path / "SID").exists()


def test_overwrite_and_overlap(tmp_path):
    src = _lol(tmp_path / "dl")
    dest = _subset("lol", src, tmp_path / "LOL")
    with pytest.raises(FileExistsError, match="overwrite"):
        _subset("lol", src, dest)
    (src / "LOLdataset/eval15/low/1.png").unlink()
    (src / "LOLdataset/eval15/high/1.png").unlink()
    _subset("lol", src, dest, overwrite=True)
    assert sorted(p.name for p in (dest / "test/low").iterdir()) == ["22.png"] and check(dest).ok
    assert _leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="overlap"):
        _subset("lol", src, src / "LOL")


# --------------------------------------------------------------------------------------- damaged stand-ins


def _fails(name, source, dest: Path, match: str, strict: bool = False) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DatasetError, match=match) as err:
            prepare(name, source, dest, strict_counts=strict)
    assert not dest.exists()
    assert _leftovers(dest.parent) == []
    return str(err.value)


def test_missing_partner(tmp_path):
    src = _lol(tmp_path / "dl")
    (src / "LOLdataset/our485/high/5.png").unlink()
    msg = _fails("lol", src, tmp_path / "out" / "LOL", "missing partner")
    assert f"{src / 'LOLdataset/our485/low/5.png'}: missing partner in {src / 'LOLdataset/our485/high'}" in msg


def test_corrupt_png(tmp_path):
    src = _lol(tmp_path / "dl")
    bad = src / "LOLdataset/eval15/low/22.png"
    bad.write_bytes(bad.read_bytes()[:60])
    msg = _fails("lol", src, tmp_path / "out" / "LOL", "corrupt or unreadable image")
    assert str(bad) in msg and "nothing was written" in msg


def test_size_mismatch_in_a_pair(tmp_path):
    src = _lol(tmp_path / "dl")
    _png(src / "LOLdataset/eval15/high/1.png", 7, (8, 7))
    _fails(
        "lol",
        src,
        tmp_path / "out" / "LOL",
        r"test/low/1.png is \(8, 6\) but its partner test/high/1.png is \(8, 7\)",
    )


def test_wrong_count_strict(tmp_path):
    src = _lol(tmp_path / "dl")
    msg = _fails("lol", src, tmp_path / "out" / "LOL", "counts differ from the official release", strict=True)
    assert (
        "train: found 3, official 485" in msg and "test: found 2, official 15" in msg and "strict_counts=False" in msg
    )


def test_wrong_mat_key(tmp_path):
    sources = _sidd(tmp_path / "dl", key_noisy="ValidationNoisyBlocks")
    msg = _fails("sidd", sources, tmp_path / "out" / "SIDD", "no variable 'ValidationNoisyBlocksSrgb'")
    assert "found ['ValidationNoisyBlocks']" in msg


def test_sidd_missing_noisy_partner(tmp_path):
    sources = _sidd(tmp_path / "dl")
    (sources[0] / "Data" / SCENES[0] / "0001_NOISY_SRGB_011.PNG").unlink()
    _fails(
        "sidd",
        sources,
        tmp_path / "out" / "SIDD",
        r"0001_GT_SRGB_011.PNG: missing partner 0001_NOISY_SRGB_011.PNG",
    )


def test_sid_missing_listed_and_corrupt_raw(tmp_path):
    src = _sid(tmp_path / "dl")
    (src / "Sony/short/20005_00_0.04s.ARW").unlink()
    _fails(
        "sid",
        src,
        tmp_path / "out" / "SID",
        r"Sony_val_list.txt:1: listed file Sony/short/20005_00_0.04s.ARW is missing",
    )
    src2 = _sid(tmp_path / "dl2")
    (src2 / "Sony/long/10003_00_10s.ARW").write_bytes(b"not a raw file" * 10)
    _fails("sid", src2, tmp_path / "out" / "SID", r"10003_00_10s.ARW: corrupt or unreadable raw file")


def test_damaged_archive(tmp_path):
    src = _lol(tmp_path / "dl")
    archive = tmp_path / "LOLdataset.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(src.rglob("*.png")):
            z.write(p, p.relative_to(src).as_posix())
    archive.write_bytes(archive.read_bytes()[:-300])  # an interrupted download
    _fails(
        "lol",
        archive,
        tmp_path / "out" / "LOL",
        "LOLdataset.zip: damaged or incomplete archive",
    )


def test_missing_release_folder_strict(tmp_path):
    src = _lolv2(tmp_path / "dl")
    _fails(
        "lolv2-real",
        src / "LOL-v2" / "Synthetic",
        tmp_path / "out" / "X",
        r"Real_captured/Train/\{Low,Normal\}: not found",
        strict=True,
    )


def test_mat_v73_needs_h5py(tmp_path):
    f = tmp_path / "ValidationGtBlocksSrgb.mat"
    f.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: x HDF5 schema 1.00 .".ljust(128) + b"\0" * 64)
    try:
        import h5py  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="v7.3 .*install h5py"):
            read_mat_array(f, "ValidationGtBlocksSrgb")
    else:  # a header without an HDF5 body: h5py refuses it
        with pytest.raises(OSError):
            read_mat_array(f, "ValidationGtBlocksSrgb")


def test_check_reports_damage(tmp_path):
    dest = _subset("lol", _lol(tmp_path / "dl"), tmp_path / "LOL")
    (dest / "train/low/2.png").write_bytes(b"x")
    (dest / "train/high/5.png").unlink()
    (dest / "stray.txt").write_text("x")
    report = check(dest)
    assert (report.corrupt, report.missing, report.extra) == (
        ["train/low/2.png"],
        ["train/high/5.png"],
        ["stray.txt"],
    )
    text = format_report(dest, report)
    assert "FAILED" in text and "1 missing, 1 extra, 1 corrupt" in text and "corrupt: train/low/2.png" in text


# ---------------------------------------------------------------------------------------------- real samples


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.mark.skipif(not (SHARED / "LOL" / "eval15").is_dir(), reason="../shared/datasets/LOL absent")
def test_real_lol_eval15(tmp_path):
    dest = _subset("lol", SHARED / "LOL", tmp_path / "LOL")
    ids = sorted(int(p.stem) for p in (dest / "test/low").iterdir())
    assert ids == [1, 22, 23, 55, 79, 111, 146, 179, 493, 547, 665, 669, 748, 778, 780]
    assert not (dest / "train").exists() and check(dest).ok
    psnr = [
        _psnr(
            np.asarray(Image.open(dest / f"test/low/{i}.png")),
            np.asarray(Image.open(dest / f"test/high/{i}.png")),
        )
        for i in ids
    ]
    assert Image.open(dest / "test/low/1.png").size == (600, 400)
    assert round(float(np.mean(psnr)), 3) == 7.773  # LOL's published input PSNR (shared/datasets/README.md)


@pytest.mark.skipif(not (SHARED / "SIDD" / "crops").is_dir(), reason="../shared/datasets/SIDD absent")
def test_real_sidd_crops(tmp_path):
    crops = SHARED / "SIDD" / "crops"
    src = tmp_path / "dl"
    data = src / "SIDD_Medium_Srgb" / "Data"
    for i in range(12):  # 6 scene folders x instances 010/011, linked to the real crops
        scene = f"{i // 2 + 1:04d}_001_S6_00100_00060_3200_L"
        inst = ("010", "011")[i % 2]
        (data / scene).mkdir(parents=True, exist_ok=True)
        (data / scene / f"{scene[:4]}_NOISY_SRGB_{inst}.PNG").symlink_to(crops / "noisy" / f"{i:02d}.png")
        (data / scene / f"{scene[:4]}_GT_SRGB_{inst}.PNG").symlink_to(crops / "clean" / f"{i:02d}.png")
    blocks = np.zeros((1, 2, 4, 4, 3), np.uint8)
    scipy.io.savemat(src / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": blocks})
    scipy.io.savemat(src / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": blocks})
    dest = _subset("sidd", src, tmp_path / "out" / "SIDD")
    assert len(list((dest / "train/noisy").iterdir())) == 12 and check(dest).ok
    assert (dest / "train/clean/0006_001_S6_00100_00060_3200_L_011.png").read_bytes() == (
        crops / "clean/11.png"
    ).read_bytes()
    assert json.loads((dest / INFO).read_text())["counts"] == {"train": 12, "train_scenes": 6, "val": 2}
    assert check_manifest(dest).ok
