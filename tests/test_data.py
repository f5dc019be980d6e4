"""Tiny generators and the dataset loaders' checks."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from llbench.data.datasets import EvalSet, StreamSampler, TrainSet, list_items
from llbench.data.images import DatasetError
from llbench.data.manifest import check_manifest, read_manifest
from llbench.data.tiny import make_tiny


@pytest.mark.parametrize("name", ["lol", "lsrw", "sidd", "unpaired"])
def test_tiny_is_deterministic(tmp_path, name):
    a = make_tiny(name, tmp_path / "a")
    b = make_tiny(name, tmp_path / "b")
    assert read_manifest(a) == read_manifest(b)  # same seed, same bytes
    assert check_manifest(a).ok


def test_tiny_layouts(tiny):
    lol = tiny("lol")
    for split, n in (("train", 6), ("test", 3)):
        assert len(list((lol / split / "low").glob("*.png"))) == n
        assert len(list((lol / split / "high").glob("*.png"))) == n
    sidd = tiny("sidd")
    assert {p.name for p in (sidd / "test").iterdir()} == {"noisy", "clean"}
    assert not (tiny("unpaired") / "test" / "high").exists()


def test_tiny_degradations_are_real(tiny):
    ev = EvalSet(tiny("lol"), "test", "paired")
    for i in range(len(ev)):
        s = ev[i]
        assert min(s["input"].shape[1:]) >= 192  # NIQE needs >= 192 px
        assert s["input"].mean() < 0.35 * s["target"].mean()  # exposure drop
    ds = EvalSet(tiny("sidd"), "test", "denoise")[0]
    noise = (ds["input"] - ds["target"]).mean(0)
    # demosaicked noise is spatially correlated: neighbouring residuals correlate positively
    corr = np.corrcoef(noise[:, :-1].flatten(), noise[:, 1:].flatten())[0, 1]
    assert corr > 0.2


def test_missing_partner_names_the_file(tiny, tmp_path):
    root = shutil.copytree(tiny("lol"), tmp_path / "lol")
    (root / "test" / "high" / "001.png").unlink()
    with pytest.raises(DatasetError, match=r"low/001\.png: no target partner"):
        list_items(root, "test", "paired")


def test_corrupt_png_names_the_file(tiny, tmp_path):
    root = shutil.copytree(tiny("lol"), tmp_path / "lol")
    bad = root / "test" / "low" / "002.png"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    with pytest.raises(DatasetError, match=r"002\.png"):
        list_items(root, "test", "paired")


def test_size_mismatch_names_both_files(tiny, tmp_path):
    from PIL import Image

    root = shutil.copytree(tiny("lol"), tmp_path / "lol")
    Image.new("RGB", (100, 100)).save(root / "test" / "high" / "000.png")
    with pytest.raises(DatasetError, match=r"000\.png: size 192x256 differs"):
        list_items(root, "test", "paired")


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="folder not found"):
        list_items(tmp_path, "test", "paired")


def test_trainset_crops_and_is_deterministic(tiny):
    cfg = {"crop": 64, "augment": ("hflip", "vflip", "rot90")}
    a = TrainSet(tiny("lol"), "train", "paired", "paired", cfg, seed=3)
    b = TrainSet(tiny("lol"), "train", "paired", "paired", cfg, seed=3)
    s = a[7]
    assert s["input"].shape == s["target"].shape == (3, 64, 64)
    assert torch.equal(s["input"], b[7]["input"]) and torch.equal(s["target"], b[7]["target"])
    assert not torch.equal(a[1]["input"], a[1 + len(a)]["input"])  # another epoch, another crop


def test_trainset_unpaired_gives_reference(tiny):
    t = TrainSet(tiny("lol"), "train", "paired", "unpaired", {"crop": 32}, seed=0)
    s = t[0]
    assert set(s) == {"input", "reference"} and s["reference"].shape == (3, 32, 32)


def test_trainset_rejects_wrong_kind(tiny):
    with pytest.raises(ValueError, match="cannot train on a 'paired' dataset"):
        TrainSet(tiny("lol"), "train", "paired", "noisy", {}, seed=0)


def test_crop_larger_than_image(tiny):
    t = TrainSet(tiny("lol"), "train", "paired", "paired", {"crop": 512}, seed=0)
    with pytest.raises(DatasetError, match="smaller than the training crop 512"):
        t[0]


def test_stream_sampler_resumes_at_position():
    full = StreamSampler(5, seed=1)
    it = iter(full)
    first = [next(it) for _ in range(13)]
    resumed = iter(StreamSampler(5, seed=1, start=8))
    assert [next(resumed) for _ in range(5)] == first[8:]
    assert sorted(i % 5 for i in first[:5]) == list(range(5))  # each epoch is a permutation


def test_sidd_validation_blocks_from_mat(tmp_path):
    import scipy.io

    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8)
    noisy = np.clip(gt.astype(int) + rng.integers(-9, 10, gt.shape), 0, 255).astype(np.uint8)
    val = tmp_path / "sidd" / "val"
    val.mkdir(parents=True)
    scipy.io.savemat(val / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy})
    scipy.io.savemat(val / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": gt})
    ev = EvalSet(tmp_path / "sidd", "val", "denoise")
    assert len(ev) == 6
    s = ev[4]  # image 1, block 1
    assert s["id"] == "b01_01"
    assert torch.equal((s["target"] * 255).round().byte().permute(1, 2, 0), torch.from_numpy(gt[1, 1]))
    assert torch.equal((s["input"] * 255).round().byte().permute(1, 2, 0), torch.from_numpy(noisy[1, 1]))


def test_sidd_blocks_wrong_key_names_the_file(tmp_path):
    import scipy.io

    val = tmp_path / "val"
    val.mkdir()
    blocks = np.zeros((1, 1, 8, 8, 3), np.uint8)
    scipy.io.savemat(val / "ValidationNoisyBlocksSrgb.mat", {"Noisy": blocks})
    scipy.io.savemat(val / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": blocks})
    with pytest.raises(ValueError, match=r"ValidationNoisyBlocksSrgb\.mat: no variable 'ValidationNoisyBlocksSrgb'"):
        EvalSet(tmp_path, "val", "denoise")


# ---- what a user's own files can hold (issue 13) ----------------------------------------------------------
def test_sixteen_bit_rgb_png_is_read_at_sixteen_bits(tmp_path):
    import cv2

    from llbench.data.images import read_image

    rgb = np.random.default_rng(0).integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb[..., ::-1])  # OpenCV writes BGR
    got = read_image(tmp_path / "rgb16.png")
    assert got.dtype == np.uint16 and np.array_equal(got, rgb)  # the low byte survives
    rgba = np.concatenate([rgb, np.full((5, 7, 1), 65535, np.uint16)], axis=2)
    cv2.imwrite(str(tmp_path / "rgba16.png"), rgba[..., [2, 1, 0, 3]])
    assert np.array_equal(read_image(tmp_path / "rgba16.png"), rgb)
    grey = rgb[..., 0]
    cv2.imwrite(str(tmp_path / "grey16.png"), grey)
    assert np.array_equal(read_image(tmp_path / "grey16.png"), np.repeat(grey[..., None], 3, axis=2))


def test_alpha_is_dropped_only_when_opaque(tmp_path):
    from PIL import Image

    from llbench.data.images import read_image

    rgb = np.random.default_rng(1).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    alpha = np.full((4, 6, 1), 255, np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA").save(tmp_path / "opaque.png")
    assert np.array_equal(read_image(tmp_path / "opaque.png"), rgb)
    alpha[0, 0] = 10
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA").save(tmp_path / "see-through.png")
    with pytest.raises(DatasetError, match=r"see-through\.png: image has transparent pixels"):
        read_image(tmp_path / "see-through.png")


def test_duplicate_ids_are_refused_naming_both_files(tiny, tmp_path):
    from PIL import Image

    root = shutil.copytree(tiny("lol"), tmp_path / "lol")
    Image.open(root / "test" / "low" / "001.png").convert("RGB").save(root / "test" / "low" / "001.JPG")
    with pytest.raises(DatasetError, match=r"low/001\.JPG and .*low/001\.png|low/001\.png and .*low/001\.JPG"):
        list_items(root, "test", "paired")


def test_jpg_suffixes_in_any_case_are_accepted(tiny, tmp_path):
    from PIL import Image

    root = shutil.copytree(tiny("lol"), tmp_path / "lol")
    low = root / "test" / "low" / "001.png"
    Image.open(low).save(low.with_suffix(".JPG"), quality=95)
    low.unlink()
    items = {it.id: it for it in list_items(root, "test", "paired")}
    assert items["001"].input.name == "001.JPG"
