"""A user's own dataset folder and checkpoint through the real Snakemake DAG: paths that a shell would
mangle, a checkpoint in a third-party wrapper with its sha256, and a dataset edited after it was stamped."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import methods

REPO = Path(__file__).resolve().parents[1]
# a space, &, ;, $(...), both quotes: each would run a command or split a word if it reached a shell unquoted
NASTY = 'my data & more; $(touch PWNED) it\'s "x"'
INPUT = "results/mine/input/default/seed0/metrics.json"
SCI = "results/mine/sci/stage3/pretrained-w/metrics.json"


def wrapped_sci_checkpoint(path: Path) -> str:
    """SCI weights as third-party code saves them: {"state_dict": {"module.<key>": ...}}; returns the sha256."""
    torch.manual_seed(0)
    state = methods.build("sci", "stage3").state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 7}, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def setup_run(tiny, base: Path, folder: str) -> tuple[Path, Path, Path]:
    """Workdir with a config whose dataset root and checkpoint live under ``base/folder``."""
    root = shutil.copytree(tiny("lol"), base / folder / "lol")  # canonical layout + MANIFEST.sha256
    ckpt = base / folder / "SCI it's.pt"
    digest = wrapped_sci_checkpoint(ckpt)
    work = base / "work"
    work.mkdir()
    cfg = {
        "device": "cpu",
        "threads": 1,
        "workers": 0,
        "profile": {"sizes": [[64, 64]], "warmup": 0, "repeats": 1},
        "datasets": {"mine": {"kind": "paired", "root": str(root), "test": "test"}},
        "experiments": [{"method": "input", "datasets": ["mine"]}],
        "pretrained": {
            "w": {"method": "sci", "variant": "stage3", "checkpoint": str(ckpt), "datasets": ["mine"], "sha256": digest}
        },
    }
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    return work, root, ckpt


def run(work: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "llbench", "run", "-s", str(REPO / "Snakefile"), "--directory", str(work)]
    cmd += [INPUT, SCI, "--configfile", str(work / "config.yaml"), "--cores", "1", *args]  # args last: nargs="+"
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def metrics(work: Path, target: str) -> dict:
    return json.loads((work / target).read_text())


def test_paths_with_shell_characters_end_to_end(tiny, tmp_path):
    work, root, ckpt = setup_run(tiny, tmp_path, NASTY)
    done = run(work)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    sci = metrics(work, SCI)
    assert sci["checkpoint"]["path"] == str(ckpt)
    assert sci["checkpoint"]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert sci["checkpoint"]["format"] == "official"  # unwrapped from {"state_dict": {"module.*": ...}}
    data = sci["provenance"]["data"]
    assert data["root"] == str(root) and data["origin"] == "local" and "not tracked by DVC" in data["source"]
    assert metrics(work, INPUT)["metrics"]["psnr"]["n"] == 3
    for where in (tmp_path, work, REPO, Path.cwd()):
        assert not list(where.rglob("PWNED")), "a path reached a shell unquoted"


def test_checkpoint_sha256_mismatch_is_refused_naming_the_file(tiny, tmp_path):
    work, _, ckpt = setup_run(tiny, tmp_path, "plain")
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    cfg["pretrained"]["w"]["sha256"] = "0" * 64
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    done = run(work)
    assert done.returncode != 0
    log = (work / "logs/evaluate/mine/sci/stage3/pretrained-w.log").read_text()
    assert f"{ckpt}: sha256 is " in log and "but the config expects 000" in log


@pytest.mark.parametrize("direction", ["refuse", "accept"])
def test_changed_dataset_is_refused_then_restamped(tiny, tmp_path, direction):
    work, root, _ = setup_run(tiny, tmp_path, "plain")
    assert run(work).returncode == 0
    before = metrics(work, INPUT)
    sci_before = (work / SCI).stat().st_mtime_ns
    # the user edits one test image (a darker input)
    low = root / "test" / "low" / "001.png"
    shutil.copy(root / "test" / "low" / "002.png", low)
    if direction == "refuse":
        done = run(work, "--forcerun", INPUT)
        assert done.returncode != 0
        log = (work / "logs/evaluate/mine/input/default/seed0.log").read_text()
        assert "changed since it was stamped" in log and "modified: test/low/001.png" in log
        assert f"llbench data manifest {root}" in log
        assert (work / SCI).stat().st_mtime_ns == sci_before  # nothing else recomputed or lost
        return
    # accepting the change: a new manifest re-stamps the dataset and recomputes what depends on it
    manifest = subprocess.run([sys.executable, "-m", "llbench", "data", "manifest", str(root)], capture_output=True)
    assert manifest.returncode == 0
    done = run(work)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    after = metrics(work, INPUT)
    new_hash = hashlib.sha256((root / "MANIFEST.sha256").read_bytes()).hexdigest()
    assert after["provenance"]["data"]["manifest_sha256"] == new_hash != before["provenance"]["data"]["manifest_sha256"]
    assert metrics(work, SCI)["provenance"]["data"]["manifest_sha256"] == new_hash
    assert after["metrics"]["psnr"]["mean"] != before["metrics"]["psnr"]["mean"]
