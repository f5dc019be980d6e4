"""The training engine: determinism, resume after SIGKILL, checkpoint errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import methods
from llbench.evaluate import load_weights
from llbench.train import train


def spec(root: Path, iterations: int = 6, every: int = 3, variant: str = "stage3") -> dict:
    return {
        "method": "sci",
        "variant": variant,
        "seed": 0,
        "dataset": {"name": "tiny-lol", "kind": "paired", "root": str(root), "train": "train", "test": "test"},
        "train": {"iterations": iterations, "checkpoint_every": every, "crop": 48, "batch_size": 2},
        "runtime": {"device": "cpu", "threads": 1, "workers": 0},
    }


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_same_seed_same_weights(tiny, tmp_path):
    a = train(spec(tiny("lol")), tmp_path / "a")
    b = train(spec(tiny("lol")), tmp_path / "b")
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (tmp_path / "a" / "train_log.csv").read_text().splitlines()[0].startswith("iteration,epoch,loss")
    assert not (tmp_path / "a" / "resume.pt").exists()
    prov = json.loads((tmp_path / "a" / "config.json").read_text())["provenance"]
    assert prov["seed"] == 0 and len(prov["config_sha256"]) == 64 and prov["packages"]["torch"]


def test_workers_do_not_change_the_result(tiny, tmp_path):
    s0 = spec(tiny("lol"))
    s2 = spec(tiny("lol"))
    s2["runtime"]["workers"] = 2
    wa, wb = weights(train(s0, tmp_path / "w0")), weights(train(s2, tmp_path / "w2"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_after_sigkill_gives_the_same_weights(tiny, tmp_path):
    s = spec(tiny("lol"), iterations=40, every=4)
    reference = weights(train(s, tmp_path / "ref"))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "llbench", "train", "--spec", json.dumps(s), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "resume.pt").exists():
        assert proc.poll() is None, "training finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "checkpoint.pt").exists()
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming" in done.stderr
    resumed = weights(out / "checkpoint.pt")
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    rows = (out / "train_log.csv").read_text().splitlines()
    assert len(rows) == 1 + 40  # the log survives the kill


def test_truncated_checkpoint_gives_a_clear_error(tiny, tmp_path):
    ckpt = train(spec(tiny("lol")), tmp_path / "t")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(ckpt.read_bytes()[:300])
    m = methods.get("sci")
    with pytest.raises(ValueError, match=r"bad\.pt: not a readable checkpoint"):
        load_weights(m, m.build(), bad)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_weights(m, m.build(), tmp_path / "nope.pt")


def test_checkpoint_of_another_method_is_refused(tiny, tmp_path):
    ckpt = train(spec(tiny("lol")), tmp_path / "t")
    obj = torch.load(ckpt, weights_only=True)
    obj["method"] = "alen"
    torch.save(obj, tmp_path / "other.pt")
    m = methods.get("sci")
    with pytest.raises(ValueError, match="checkpoint of method 'alen', expected 'sci'"):
        load_weights(m, m.build(), tmp_path / "other.pt")


def test_pickled_object_checkpoint_is_refused(tmp_path):
    import pickle

    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": object()}, f)
    m = methods.get("sci")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_weights(m, m.build(), path)
