"""Full-size stand-ins (llbench.data.fullsize): counts, layout, sizes, loaders, manifest, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llbench.cli import main
from llbench.data import fullsize
from llbench.data.datasets import EvalSet, TrainSet
from llbench.data.fullsize import full_size_counts, make_full_size, scaled_count, sid_frames
from llbench.data.images import image_size, read_image
from llbench.data.manifest import check_manifest, read_manifest
from llbench.data.prepare import COUNTS

ONE = 1e-6  # a fraction that leaves one item per split


def test_counts_scale_with_fraction():
    for name in ("lol", "lolv2-real", "lolv2-syn", "lsrw"):
        assert full_size_counts(name, 1.0) == COUNTS[name]  # the real counts at fraction 1
    assert full_size_counts("sidd", 1.0) == {"train": 320, "test": 40}
    assert full_size_counts("sid", 1.0) == {
        "train_scenes": 161,
        "train": 1865,
        "val_scenes": 20,
        "val": 20,
        "test_scenes": 50,
        "test": 50,
    }
    assert full_size_counts("lol", 0.1) == {"train": 49, "test": 2}  # 48.5 and 1.5 round up
    assert full_size_counts("lol") == full_size_counts("lol", 1.0)  # default fractions
    assert full_size_counts("sidd") == {"train": 32, "test": 4}
    assert full_size_counts("sid") == {
        "train_scenes": 16,
        "train": 187,
        "val_scenes": 2,
        "val": 2,
        "test_scenes": 5,
        "test": 5,
    }
    assert full_size_counts("lsrw") == {"train/Huawei": 245, "train/Nikon": 315, "test/Huawei": 3, "test/Nikon": 2}
    for name in fullsize.NAMES:
        assert set(full_size_counts(name, ONE).values()) == {1}  # at least one item per split
    assert [scaled_count(10, f) for f in (0.01, 0.04, 0.05, 0.5, 1.0)] == [1, 1, 1, 5, 10]
    frames = sid_frames(187, 16)
    assert sum(frames) == 187 and max(frames) - min(frames) <= 1
    for bad in (0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="fraction"):
            full_size_counts("lol", bad)
    with pytest.raises(KeyError, match="unknown full-size dataset"):
        full_size_counts("unpaired", 0.5)


def test_fast_paths_match_the_tiny_models():
    from scipy.ndimage import convolve

    from llbench.data.tiny import linear_to_srgb, to_u8

    x = np.linspace(0.0, 1.0, 100_001)
    assert np.abs(fullsize._encode(x.astype(np.float32)).astype(int) - to_u8(linear_to_srgb(x))).max() <= 1
    mosaic = np.random.default_rng(0).random((6, 8))
    masks = np.zeros((6, 8, 3), dtype=bool)
    masks[0::2, 0::2, 0] = masks[0::2, 1::2, 1] = masks[1::2, 0::2, 1] = masks[1::2, 1::2, 2] = True
    k_rb = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    k_g = np.array([[0.0, 0.25, 0.0], [0.25, 1.0, 0.25], [0.0, 0.25, 0.0]])
    tiny = np.stack([convolve(mosaic * masks[..., c], k, mode="mirror") for c, k in enumerate((k_rb, k_g, k_rb))], -1)
    np.testing.assert_allclose(fullsize.demosaic_bilinear(mosaic), tiny, atol=1e-6)  # tiny._mosaic_noise's demosaic


def test_paired_is_deterministic_and_loads(tmp_path):
    a = make_full_size("lolv2-syn", tmp_path / "a", fraction=ONE, verbose=False)
    b = make_full_size("lolv2-syn", tmp_path / "b", fraction=ONE, verbose=False)
    c = make_full_size("lolv2-syn", tmp_path / "c", fraction=ONE, seed=1, verbose=False)
    assert read_manifest(a) == read_manifest(b) != read_manifest(c)
    assert check_manifest(a).ok and not list(tmp_path.glob(".*tmp-*"))
    item = EvalSet(a, "test", "paired")[0]
    assert item["input"].shape == item["target"].shape == (3, 384, 384)
    assert item["input"].mean() < 0.5 * item["target"].mean()  # a low-light input
    assert json.loads((a / "FULLSIZE.json").read_text())["counts"] == {"train": 1, "test": 1}


def test_sidd_one_full_frame(tmp_path):
    root = make_full_size("sidd", tmp_path / "sidd", fraction=ONE, png_level=0, verbose=False)  # level 0: fast
    (clean,) = (root / "train" / "clean").iterdir()
    (noisy,) = (root / "train" / "noisy").iterdir()
    assert clean.name == noisy.name and clean.name.endswith("_010.png")
    assert image_size(clean) == image_size(noisy) == (3000, 5328)  # Galaxy S6 Edge, landscape
    train = TrainSet(root, "train", "denoise", "noisy", {"crop": 256, "augment": ["hflip"]}, seed=0)
    assert len(train) == 1 and train[0]["input"].shape == (3, 256, 256)
    test = EvalSet(root, "test", "denoise")
    assert len(test) == 1 and test[0]["input"].shape == test[0]["target"].shape == (3, 256, 256)
    x, y = (read_image(root / "test" / side / "000.png") for side in ("noisy", "clean"))
    assert x.dtype == y.dtype == np.uint8
    d = (x.astype(np.float32) - y).mean(axis=2)
    assert 1.0 < d.std() < 40.0 and abs(d.mean()) < 3.0  # visible, nearly zero-mean noise
    assert np.corrcoef(d[:, :-1].ravel(), d[:, 1:].ravel())[0, 1] > 0.2  # demosaicked: spatially correlated
    assert check_manifest(root).ok


def test_sid_one_long_one_short(tmp_path):
    from llbench.data.raw import SIDRaw, read_bayer

    root = make_full_size("sid", tmp_path / "sid", fraction=ONE, splits=("train",), verbose=False)
    (long,) = (root / "Sony" / "long").iterdir()
    (short,) = (root / "Sony" / "short").iterdir()
    assert long.name == "00001_00_10s.dng" and short.name.startswith("00001_00_")
    bayer, exposure = read_bayer(long)
    assert bayer.shape == (2848, 4256) and bayer.dtype == np.uint16 and exposure == 10.0
    assert 512 - 20 < bayer.min() and bayer.max() <= 16383
    ds = SIDRaw(root, "train", cache_dir=tmp_path / "gt")
    item = ds[0]
    assert item["ratio"] in (100.0, 250.0, 300.0)
    assert item["input"].shape == (4, 1424, 2128) and item["target"].shape == (3, 2848, 4256)
    assert check_manifest(root).ok and not (root / "Sony_val_list.txt").exists()


@pytest.mark.slow
def test_sid_all_splits(tmp_path):
    from llbench.data.raw import SIDRaw

    root = make_full_size("sid", tmp_path / "sid", fraction=ONE, verbose=False)
    for split in ("train", "val", "test"):
        assert len(SIDRaw(root, split)) == 1
    assert check_manifest(root).ok


def test_cli(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["data", "tiny", "lolv2-syn", "--full-size", "--fraction", "1e-6", "--out", str(out)]) == 0
    assert (out / "train" / "low" / "00001.png").is_file() and check_manifest(out).ok
    assert main(["data", "tiny", "lol", "--fraction", "0.5", "--out", str(tmp_path / "x")]) == 2
    assert main(["data", "tiny", "all", "--full-size", "--out", str(tmp_path / "x")]) == 2
    assert main(["data", "tiny", "unpaired", "--full-size", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
    assert "--fraction needs --full-size" in capsys.readouterr().err
