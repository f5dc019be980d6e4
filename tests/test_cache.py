"""The training-ready cache (llbench.data.cache): built once per data version, bit-identical samples and
weights, bounded memory per worker, corrupt sources named, no half-written cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from llbench.data import cache
from llbench.data.datasets import TrainSet
from llbench.data.images import DatasetError
from llbench.data.manifest import manifest_hash, write_manifest
from llbench.train import train


def copy_of(tiny, name: str, dest: Path) -> Path:
    shutil.copytree(tiny(name), dest)
    return dest


def build(root: Path, base: Path, kind: str = "paired") -> dict:
    return cache.build(root, "train", kind, manifest_hash(root), base)


def test_built_once_per_data_version_and_rebuilt_when_the_data_change(tiny, tmp_path):
    root, base = copy_of(tiny, "lol", tmp_path / "lol"), tmp_path / "cache"
    first = build(root, base)
    assert first["reused"] is False and len(first["files"]) == 12  # 6 low + 6 high
    assert first["bytes"] == sum(np.load(Path(first["folder"]) / f["npy"]).nbytes for f in first["files"].values())
    mtime = (Path(first["folder"]) / cache.INDEX).stat().st_mtime_ns
    again = build(root, base)
    assert again["reused"] is True and again["folder"] == first["folder"]
    assert (Path(first["folder"]) / cache.INDEX).stat().st_mtime_ns == mtime  # not rewritten
    # a changed image: a new manifest, a new cache; the old version is removed
    img = root / "train" / "low" / "000.png"
    shutil.copy(root / "train" / "low" / "001.png", img)
    write_manifest(root)
    changed = build(root, base)
    assert changed["reused"] is False and changed["folder"] != first["folder"]
    assert not Path(first["folder"]).exists()
    key = "train/low/000.png"
    assert np.array_equal(
        np.load(Path(changed["folder"]) / changed["files"][key]["npy"]),
        np.load(Path(changed["folder"]) / changed["files"]["train/low/001.png"]["npy"]),
    )


def test_pointer_refuses_a_cache_of_other_data(tiny, tmp_path):
    root = copy_of(tiny, "lol", tmp_path / "lol")
    built = build(root, tmp_path / "cache")
    cache.write_pointer(tmp_path / "p.json", built)
    assert cache.read_pointer(tmp_path / "p.json", built["manifest_sha256"]) == Path(built["folder"])
    with pytest.raises(DatasetError, match="p.json: cache of data manifest .* but the data are now 0000"):
        cache.read_pointer(tmp_path / "p.json", "0" * 64)


def test_corrupt_source_is_named_and_nothing_is_left(tiny, tmp_path):
    root, base = copy_of(tiny, "lol", tmp_path / "lol"), tmp_path / "cache"
    bad = root / "train" / "high" / "003.png"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    with pytest.raises(DatasetError, match=r"high/003\.png: cannot decode"):
        build(root, base)
    assert list(base.iterdir()) == []


def test_killed_build_leaves_no_cache_and_the_next_build_cleans_up(tiny, tmp_path, monkeypatch):
    root, base = copy_of(tiny, "lol", tmp_path / "lol"), tmp_path / "cache"
    calls = []

    def dies_on_the_fifth(path):
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt  # what SIGINT does mid-build
        return real(path)

    real = cache.read_image
    monkeypatch.setattr(cache, "read_image", dies_on_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        build(root, base)
    assert list(base.iterdir()) == []
    (base / ".tmp-killed").mkdir()  # what SIGKILL leaves: a temporary folder, never an index
    (base / ".tmp-killed" / "000000.npy").write_bytes(b"half")
    monkeypatch.setattr(cache, "read_image", real)
    built = build(root, base)
    assert [p.name for p in base.iterdir()] == [Path(built["folder"]).name]


@pytest.mark.parametrize(
    "name,kind,train_data",
    [("lol", "paired", "paired"), ("lol", "paired", "unpaired"), ("sidd", "denoise", "noisy"), ("sid", "raw", "raw")],
)
def test_samples_from_the_cache_equal_samples_from_the_files(tiny, tmp_path, monkeypatch, name, kind, train_data):
    monkeypatch.chdir(tmp_path)  # the raw ground-truth cache goes to ./resources/cache
    root = tiny(name)
    built = build(root, tmp_path / "cache", kind)
    cfg = {"crop": 48, "augment": ("hflip", "vflip", "rot90", "transpose")}
    files = TrainSet(root, "train", kind, train_data, cfg, seed=3)
    cached = TrainSet(root, "train", kind, train_data, cfg, seed=3, cache=built["folder"])
    for index in (0, 1, len(files) + 2, 5 * len(files) - 1):
        a, b = files[index], cached[index]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), index


def test_training_on_the_cache_gives_bit_identical_weights(tiny, tmp_path):
    root = tiny("lol")
    built = build(root, tmp_path / "cache")
    cache.write_pointer(tmp_path / "pointer.json", built)
    spec = {
        "method": "sci",
        "variant": "stage3",
        "seed": 0,
        "dataset": {"name": "tiny-lol", "kind": "paired", "root": str(root), "train": "train", "test": "test"},
        "train": {"iterations": 4, "checkpoint_every": 2, "crop": 48, "batch_size": 2},
        "runtime": {"device": "cpu", "threads": 1, "workers": 0},
    }
    a = torch.load(train(spec, tmp_path / "files"), weights_only=True)["model"]
    b = torch.load(train(spec, tmp_path / "cached", cache=tmp_path / "pointer.json"), weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_worker_holds_no_mapping_between_samples(tiny, tmp_path):
    """Bounded memory: a crop maps its image only while it is read, so the cache pages a DataLoader worker
    touched are never part of its resident memory, however many images it has read."""
    import pickle

    root = tiny("sidd")
    built = build(root, tmp_path / "cache", "denoise")
    arrays = cache.Arrays(Path(built["folder"]), root)
    path = root / "train" / "noisy" / "000.png"
    image = arrays(path)
    assert not image.flags.owndata and not image.flags.writeable  # a read-only view of the mapped file
    assert np.array_equal(image, np.load(Path(built["folder"]) / built["files"]["train/noisy/000.png"]["npy"]))
    del image  # its mapping goes with it
    assert len(pickle.dumps(arrays)) < 10_000  # a spawned worker gets the index, never image data
    data = TrainSet(root, "train", "denoise", "noisy", {"crop": 32}, seed=0, cache=built["folder"])
    samples = [data[i] for i in range(2 * len(data))]
    assert len(samples) == 2 * len(data) and samples[0]["input"].shape == (3, 32, 32)
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        pytest.skip("no /proc/self/maps on this system: the mappings cannot be listed")
    assert built["folder"] not in maps.read_text()
