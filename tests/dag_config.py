"""Helpers for tests that run the real Snakemake DAG: a small tiny-LOL config (input baseline + SCI) and a
scratch copy of the checkout to run it in (never the user's own results/, resources/, logs/)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def tiny_lol_sci(variants: list[str], iterations: int, checkpoint_every: int, crop: int) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    cfg["datasets"] = {"tiny-lol": cfg["datasets"]["tiny-lol"]}
    cfg["experiments"] = [
        {"method": "input", "datasets": ["tiny-lol"], "variants": ["default"], "seeds": [0]},
        {
            "method": "sci",
            "datasets": ["tiny-lol"],
            "variants": variants,
            "seeds": [0],
            "train": {"iterations": iterations, "checkpoint_every": checkpoint_every, "crop": crop},
        },
    ]
    cfg["profile"] = {"sizes": [[64, 64]], "warmup": 0, "repeats": 1}
    return cfg


def scratch_checkout(dest: Path) -> Path:
    """A copy of the checkout's tracked files, as a git repository (DVC and the git commands need one)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True)
    for rel in filter(None, files.stdout.split("\0")):
        src = REPO / rel
        if src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
        elif src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).symlink_to(os.readlink(src))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "scratch"], cwd=dest, check=True)
    return dest
