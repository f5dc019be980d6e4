"""Dataset staging: the true origin, a user's own folder with `llbench data manifest`, and the re-check that
every job makes before reading a dataset (a number always names the bytes it was computed on)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llbench.data import stage
from llbench.data.manifest import MANIFEST, manifest_hash


def llbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llbench", *args], cwd=cwd, capture_output=True, text=True)


def own_folder(tiny, tmp_path: Path) -> Path:
    """A folder a user arranged by hand: the canonical layout, no manifest yet."""
    root = shutil.copytree(tiny("lol"), tmp_path / "my data" / "lol")
    (root / MANIFEST).unlink()
    return root


def spec(root: Path, **kw) -> dict:
    return {"name": "mine", "kind": "paired", "root": str(root), "test": "test", **kw}


def test_origin_is_told_truly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    assert stage.origin({"root": "resources/tiny/lol", "tiny": "lol"}) == "tiny"
    assert stage.origin({"root": "data/LOL"}) == "local"  # no data.dvc here: nothing tracks data/
    (tmp_path / "data.dvc").write_text("outs:\n- path: data\n")
    assert stage.origin({"root": "data/LOL"}) == "dvc"
    assert stage.origin({"root": str(tmp_path / "data" / "LOL")}) == "dvc"
    assert stage.origin({"root": "/somewhere/else/LOL"}) == "local"


def test_own_folder_needs_a_manifest_and_says_how(tiny, tmp_path):
    root = own_folder(tiny, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no manifest.*llbench data manifest"):
        stage.stage(spec(root))
    done = llbench("data", "manifest", str(root), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{root / MANIFEST}: 18 files, sha256 {manifest_hash(root)}" in done.stdout
    info = stage.stage(spec(root))
    assert info["origin"] == "local"
    assert info["source"] == f"local folder {root.resolve()} (not tracked by DVC)"
    assert info["manifest_sha256"] == manifest_hash(root)


def test_manifest_command_lists_what_changed(tiny, tmp_path):
    root = own_folder(tiny, tmp_path)
    assert llbench("data", "manifest", str(root), cwd=tmp_path).returncode == 0
    (root / "test" / "low" / "001.png").write_bytes((root / "test" / "low" / "002.png").read_bytes())
    (root / "test" / "high" / "002.png").unlink()
    done = llbench("data", "manifest", str(root), cwd=tmp_path)
    assert "modified: test/low/001.png" in done.stdout and "removed: test/high/002.png" in done.stdout
    missing = llbench("data", "manifest", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 2 and "nope: folder not found" in missing.stderr


def test_verify_fast_path_and_every_kind_of_change(tiny, tmp_path):
    root = own_folder(tiny, tmp_path)
    stage_path = tmp_path / "stamps" / "mine.json"
    assert llbench("data", "manifest", str(root), cwd=tmp_path).returncode == 0
    stage.write_stamp(stage_path, stage.stage(spec(root)))
    assert stage.verify(stage_path)["manifest_sha256"] == manifest_hash(root)
    # same bytes, new mtime (a copy, a checkout): re-hashed once, then the fast path again
    target = root / "test" / "low" / "001.png"
    os.utime(target, ns=(1, 1))
    assert stage.verify(stage_path)["manifest_sha256"] == manifest_hash(root)
    index = json.loads(stage_path.with_suffix(".index.json").read_text())
    assert index["test/low/001.png"][1] == 1
    # different bytes of the same size, mtime restored: still caught (size+mtime only decide what to re-hash)
    data = bytearray(target.read_bytes())
    data[-20] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(stage.DatasetChanged, match=r"modified: test/low/001\.png.*llbench data manifest"):
        stage.verify(stage_path)
    shutil.copy(root / "test" / "low" / "002.png", target)
    (root / "test" / "high" / "002.png").unlink()
    (root / "test" / "low" / "009.png").write_bytes(b"x")
    with pytest.raises(stage.DatasetChanged) as err:
        stage.verify(stage_path)
    msg = str(err.value)
    assert (
        "modified: test/low/001.png" in msg and "missing: test/high/002.png" in msg and "new: test/low/009.png" in msg
    )
    # accepting the change: a new manifest alone leaves the stamp stale until the dataset is re-staged
    (root / "test" / "low" / "009.png").unlink()
    shutil.copy(root / "test" / "high" / "001.png", root / "test" / "high" / "002.png")
    assert llbench("data", "manifest", str(root), cwd=tmp_path).returncode == 0
    with pytest.raises(stage.DatasetChanged, match="manifest rewritten"):
        stage.verify(stage_path)
    stage.write_stamp(stage_path, stage.stage(spec(root)))
    assert stage.verify(stage_path)["manifest_sha256"] == manifest_hash(root)


def test_tiny_dataset_advice_is_to_regenerate(tiny, tmp_path):
    root = shutil.copytree(tiny("lol"), tmp_path / "lol")
    stamp = tmp_path / "tiny-lol.json"
    stage.write_stamp(stamp, stage.stage({**spec(root), "tiny": "lol"}))
    (root / "test" / "low" / "001.png").write_bytes(b"edited")
    with pytest.raises(stage.DatasetChanged, match=rf"delete {root} and re-run to regenerate it"):
        stage.verify(stamp)
