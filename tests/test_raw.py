"""SID raw data path (llbench.data.raw) and the tiny SID-like generator (llbench.data.tiny_sid)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

rawpy = pytest.importorskip("rawpy")
pytest.importorskip("pidng")

from llbench.data import raw as R  # noqa: E402
from llbench.data.tiny_sid import SCENES, make_tiny_sid, mosaic_rggb, write_dng  # noqa: E402


def _bayer(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(400, 16383, size=(h, w)).astype(np.uint16)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_sid(tmp_path_factory.mktemp("tiny_sid"), seed=0)


# ---- packing ------------------------------------------------------------------------------------
def test_pack_bayer_black_level_order_and_range():
    full = 16383 - 512
    bayer = np.array(
        [
            [512 + 100, 512 + 200, 512 + 300, 512 + 400],
            [512 + 500, 512 + 600, 512 + 700, 16383],
            [0, 511, 512, 513],
            [1000, 2000, 3000, 4000],
        ],
        dtype=np.uint16,
    )
    p = R.pack_bayer(bayer)
    assert p.shape == (4, 2, 2) and p.dtype == np.float32
    # SID order: (0,0) R, (0,1) G, (1,1) B, (1,0) G
    np.testing.assert_allclose(p[0], np.array([[100, 300], [0, 0]]) / full, rtol=1e-6)  # 0 and 512 -> 0
    np.testing.assert_allclose(p[1], np.array([[200, 400], [0, 1]]) / full, rtol=1e-6)  # 511 clipped to 0
    np.testing.assert_allclose(p[2], np.array([[600, full], [2000 - 512, 4000 - 512]]) / full, rtol=1e-6)
    np.testing.assert_allclose(p[3], np.array([[500, 700], [1000 - 512, 3000 - 512]]) / full, rtol=1e-6)
    assert p[2, 0, 1] == 1.0  # white level -> exactly 1


def test_pack_bayer_matches_mosaic_of_known_colours():
    rgb = np.zeros((4, 6, 3))
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 0.25, 0.5, 0.75
    bayer = np.rint(512 + mosaic_rggb(rgb) * (16383 - 512)).astype(np.uint16)
    p = R.pack_bayer(bayer)
    np.testing.assert_allclose(p.reshape(4, -1).mean(1), [0.25, 0.5, 0.75, 0.5], atol=1e-4)
    assert 0 <= R.pack_bayer(_bayer()).min() and R.pack_bayer(_bayer()).max() <= 1


def test_pack_bayer_rejects_odd_shapes():
    with pytest.raises(ValueError, match="even"):
        R.pack_bayer(np.zeros((5, 4), np.uint16))


# ---- names, exposures, ratios ------------------------------------------------------------------
def test_parse_name_and_ratio():
    n = R.parse_name("./Sony/short/10003_00_0.1s.ARW")
    assert (n.scene, n.frame, n.exposure) == ("10003", "00", 0.1)
    assert R.parse_name("00001_01_0.033s.dng").exposure == 0.033
    assert R.parse_name("10003_00.dng").exposure is None
    assert R.amplification_ratio(0.1, 10) == pytest.approx(100.0)
    assert R.amplification_ratio(0.04, 10) == pytest.approx(250.0)
    assert R.amplification_ratio(0.033, 10) == 300.0  # 303.03 capped
    assert R.amplification_ratio(0.1, 30) == 300.0
    with pytest.raises(ValueError, match=r"10003_00_0\.1xs\.ARW: unparsable exposure"):
        R.parse_name("10003_00_0.1xs.ARW")
    with pytest.raises(ValueError, match="IMG_0001.ARW: not a SID raw file name"):
        R.parse_name("IMG_0001.ARW")
    with pytest.raises(ValueError, match="10003_00_0s.ARW"):
        R.parse_name("10003_00_0s.ARW")


def test_read_list_sid_format(tmp_path):
    f = tmp_path / "Sony_test_list.txt"
    f.write_text(
        "./Sony/short/10003_00_0.04s.ARW ./Sony/long/10003_00_10s.ARW ISO200 F9\n"
        "./Sony/short/10003_00_0.1s.ARW ./Sony/long/10003_00_10s.ARW ISO200 F9\n\n"
        "./Sony/short/10074_00_0.1s.ARW ./Sony/long/10074_00_30s.ARW ISO200 F9\n"
    )
    pairs = R.read_list(f)
    assert pairs[1] == ("./Sony/short/10003_00_0.1s.ARW", "./Sony/long/10003_00_10s.ARW")
    ratios = [R.amplification_ratio(R.parse_name(s).exposure, R.parse_name(g).exposure) for s, g in pairs]
    assert ratios == pytest.approx([250.0, 100.0, 300.0])
    f.write_text("./Sony/short/10003_00_0.04s.ARW\n")
    with pytest.raises(ValueError, match="Sony_test_list.txt:1"):
        R.read_list(f)


# ---- reading DNGs: checks and errors ------------------------------------------------------------
def test_dng_roundtrip_reads_like_a_camera_raw(tmp_path):
    bayer = _bayer(32, 48)
    path = write_dng(tmp_path / "10001_00_0.1s.dng", bayer, 0.1)
    got, exposure = R.read_bayer(path)
    np.testing.assert_array_equal(got, bayer)
    assert exposure == pytest.approx(0.1)
    with rawpy.imread(str(path)) as raw:
        assert list(raw.black_level_per_channel) == [512] * 4 and raw.white_level == 16383


def test_wrong_bayer_pattern_is_a_clear_error(tmp_path):
    path = write_dng(tmp_path / "10001_00_0.1s.dng", _bayer(), 0.1, cfa="BGGR")
    with pytest.raises(ValueError, match=r"10001_00_0\.1s\.dng: Bayer pattern is BGGR, expected RGGB"):
        R.read_bayer(path)
    with pytest.raises(ValueError, match="BGGR"):
        R.render_ground_truth(path)


def test_exposure_from_metadata_when_the_name_has_none(tmp_path):
    with_meta = write_dng(tmp_path / "10001_00.dng", _bayer(), 0.04)
    assert R.read_bayer(with_meta)[1] == pytest.approx(0.04)
    without = write_dng(tmp_path / "10002_00.dng", _bayer(), None)
    with pytest.raises(ValueError, match=r"10002_00\.dng: no exposure time"):
        R.read_bayer(without)


def test_truncated_dng_names_the_file(tmp_path):
    path = write_dng(tmp_path / "10001_00_0.1s.dng", _bayer(), 0.1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"10001_00_0\.1s\.dng: cannot decode raw file"):
        R.read_bayer(path)
    path.write_bytes(b"not a raw file")
    with pytest.raises(ValueError, match=r"10001_00_0\.1s\.dng: cannot decode"):
        R.render_ground_truth(path)


# ---- ground truth and its cache ----------------------------------------------------------------
def test_ground_truth_rendering_and_cache(tmp_path, monkeypatch):
    path = write_dng(tmp_path / "10001_00_10s.dng", _bayer(32, 48), 10.0)
    calls = []
    real = R._postprocess

    def counting(raw):
        calls.append(1)
        return real(raw)

    monkeypatch.setattr(R, "_postprocess", counting)
    with rawpy.imread(str(path)) as raw:
        expected = raw.postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16)
    gt = R.render_ground_truth(path)
    assert gt.shape == (3, 32, 48) and gt.dtype == np.float32 and len(calls) == 1
    np.testing.assert_array_equal(gt, expected.transpose(2, 0, 1).astype(np.float32) / np.float32(65535))

    cache = tmp_path / "cache"
    first = R.cached_ground_truth(path, cache)
    assert len(calls) == 2 and (cache / "10001_00_10s.png").is_file()
    second = R.cached_ground_truth(path, cache)
    assert len(calls) == 2, "the second access must read the PNG, not run LibRaw"
    np.testing.assert_array_equal(first, gt)
    np.testing.assert_array_equal(second, gt)  # 16-bit PNG: lossless
    (cache / "10001_00_10s.png").write_bytes(b"garbage")
    np.testing.assert_array_equal(R.cached_ground_truth(path, cache), gt)
    assert len(calls) == 3


# ---- the dataset ------------------------------------------------------------------------------
def _layout(root: Path, shorts: dict[str, tuple[int, int]], longs: dict[str, tuple[int, int]]) -> None:
    (root / "Sony" / "short").mkdir(parents=True)
    (root / "Sony" / "long").mkdir(parents=True)
    for name, shape in shorts.items():
        write_dng(root / "Sony" / "short" / name, _bayer(*shape), None)
    for name, shape in longs.items():
        write_dng(root / "Sony" / "long" / name, _bayer(*shape, seed=1), None)


def test_dataset_splits_frames_exclusion_and_ratio_from_list(tmp_path):
    _layout(
        tmp_path,
        {"10034_00_0.1s.dng": (32, 32), "10035_00_0.033s.dng": (32, 32), "10035_01_0.1s.dng": (32, 32)},
        {"10034_00_10s.dng": (32, 32), "10035_00_10s.dng": (32, 32)},
    )
    (tmp_path / "Sony_test_list.txt").write_text(
        "./Sony/short/10034_00_0.1s.dng ./Sony/long/10034_00_10s.dng ISO200 F9\n"
        "./Sony/short/10035_00_0.033s.dng ./Sony/long/10035_00_10s.dng ISO200 F9\n"
        "./Sony/short/10035_01_0.1s.dng ./Sony/long/10035_00_10s.dng ISO200 F9\n"
    )
    assert R.EXCLUDED_SCENES == ("10034", "10045", "10172")
    ds = R.SIDRaw(tmp_path, "test", cache_dir=tmp_path / "c")
    assert [p.id for p in ds.pairs] == ["10035_00_0.033s"]
    assert ds.ratio(0) == 300.0
    item = ds[0]
    assert item["id"] == "10035_00_0.033s" and item["ratio"] == 300.0
    assert item["input"].shape == (4, 16, 16) and item["target"].shape == (3, 32, 32)
    assert item["input"].max() <= 1 and item["input"].min() >= 0
    every = R.SIDRaw(tmp_path, "test", frames="all", exclude_misaligned=False, cache_dir=tmp_path / "c")
    assert [p.id for p in every.pairs] == ["10034_00_0.1s", "10035_00_0.033s", "10035_01_0.1s"]
    with pytest.raises(ValueError, match="split"):
        R.SIDRaw(tmp_path, "testing")


def test_dataset_missing_partner_and_shape_mismatch(tmp_path):
    _layout(
        tmp_path,
        {"00001_00_0.1s.dng": (32, 32), "00002_00_0.1s.dng": (32, 32)},
        {"00001_00_10s.dng": (32, 32)},
    )
    with pytest.raises(FileNotFoundError, match=r"00002_00_0\.1s\.dng: no long-exposure partner"):
        R.SIDRaw(tmp_path, "train")
    (tmp_path / "Sony_train_list.txt").write_text(
        "./Sony/short/00002_00_0.1s.dng ./Sony/long/00002_00_10s.dng ISO200 F8\n"
    )
    with pytest.raises(FileNotFoundError, match=r"00002_00_0\.1s\.dng has no long-exposure partner"):
        R.SIDRaw(tmp_path, "train")
    (tmp_path / "Sony_train_list.txt").unlink()
    (tmp_path / "Sony" / "short" / "00002_00_0.1s.dng").unlink()
    write_dng(tmp_path / "Sony" / "long" / "00001_00_10s.dng", _bayer(32, 48), None)
    ds = R.SIDRaw(tmp_path, "train")
    with pytest.raises(ValueError, match=r"00001_00_0\.1s\.dng packs to .*00001_00_10s\.dng renders to"):
        ds[0]


def test_dataset_without_any_exposure_information(tmp_path):
    _layout(tmp_path, {"00001_00.dng": (32, 32)}, {"00001_00_10s.dng": (32, 32)})
    ds = R.SIDRaw(tmp_path, "train")
    with pytest.raises(ValueError, match=r"00001_00\.dng: no exposure time"):
        ds.ratio(0)
    with pytest.raises(ValueError, match=r"00001_00\.dng: no exposure time"):
        ds[0]


def test_tiny_sid_layout_and_items(tiny):
    for split in ("train", "val", "test"):
        assert (tiny / f"Sony_{split}_list.txt").is_file()
    files = sorted((tiny / "Sony").rglob("*.dng"))
    assert len(files) == 20 and sum(f.stat().st_size for f in files) < 10 * 2**20
    counts = {s: (len(R.SIDRaw(tiny, s)), len(R.SIDRaw(tiny, s, frames="all"))) for s in ("train", "val", "test")}
    assert counts == {"train": (6, 7), "val": (2, 2), "test": (4, 5)}
    test = R.SIDRaw(tiny, "test")
    assert {p.scene for p in test.pairs} == {s for s, _, split in SCENES if split == "test"}
    item = test[1]
    assert item["id"] == "10001_00_0.1s" and item["ratio"] == pytest.approx(100.0)
    assert item["input"].shape == (4, 192, 192) and item["target"].shape == (3, 384, 384)
    assert item["input"].dtype == item["target"].dtype == torch.float32
    with rawpy.imread(str(test.pairs[1].short)) as raw:
        R.check_rggb(raw, test.pairs[1].short)
        assert list(raw.black_level_per_channel) == [512] * 4 and raw.white_level == 16383


def test_tiny_sid_is_physically_consistent(tiny):
    from llbench.data.tiny_sid import _photo

    test = R.SIDRaw(tiny, "test")
    long_packed, _ = R.pack_raw_file(test.pairs[1].long)
    for i in (0, 1):  # x250 and x100 amplified short exposures match the long exposure's level
        amplified = test[i]["input"].numpy()
        np.testing.assert_allclose(amplified.mean((1, 2)), long_packed.mean((1, 2)), rtol=0.05)
    # the camera-WB rendering of the long exposure reproduces the photograph it was made from
    gt = test[1]["target"].numpy().mean(0)
    src = _photo("chelsea", 384).mean(-1)
    assert np.corrcoef(gt.ravel(), src.ravel())[0, 1] > 0.98


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_tiny_sid_is_deterministic(tmp_path):
    a = _digest(make_tiny_sid(tmp_path / "a", seed=3, size=128, train_size=128))
    b = _digest(make_tiny_sid(tmp_path / "b", seed=3, size=128, train_size=128))
    c = _digest(make_tiny_sid(tmp_path / "c", seed=4, size=128, train_size=128))
    assert a == b and len(a) == 23  # 20 DNGs + 3 lists
    assert a["Sony/short/10001_00_0.1s.dng"] != c["Sony/short/10001_00_0.1s.dng"]


def test_load_raw_input_for_inference(tiny, tmp_path):
    short = tiny / "Sony" / "short" / "10001_00_0.1s.dng"
    item = R.SIDRaw(tiny, "test")[1]
    torch.testing.assert_close(R.load_raw_input(short), item["input"])  # ratio from the sibling long/ dir
    long_ = tiny / "Sony" / "long" / "10001_00_10s.dng"
    torch.testing.assert_close(R.load_raw_input(short, long_path=long_), item["input"])
    packed, _ = R.pack_raw_file(short)
    torch.testing.assert_close(R.load_raw_input(short, ratio=3.0), torch.from_numpy(np.minimum(packed * 3, 1)))
    lonely = write_dng(tmp_path / "10001_00_0.1s.dng", _bayer(), 0.1)
    with pytest.raises(FileNotFoundError, match=r"10001_00_0\.1s\.dng: no amplification ratio given"):
        R.load_raw_input(lonely)
