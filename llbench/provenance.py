"""Provenance recorded next to every result: code version, config hash, data, seed, packages, device."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from typing import Any

from llbench.workflow import REPO, spec_hash

PACKAGES = ("torch", "torchvision", "numpy", "scikit-image", "pyiqa", "rawpy", "snakemake")


@lru_cache(maxsize=1)
def git_info() -> dict[str, Any]:
    """Commit and whether the work tree had uncommitted changes (``unknown`` outside a git checkout)."""

    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        commit = run("rev-parse", "HEAD")
        dirty = bool(run("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit or "unknown", "dirty": dirty if commit else None}


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def record(
    spec: dict[str, Any], *, data: dict[str, Any] | None, device: dict[str, Any], flags: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The provenance block of ``metrics.json`` / ``config.json``."""
    return {
        "git": git_info(),
        "config_sha256": spec_hash(spec),
        "spec": spec,
        "data": data,
        "seed": spec.get("seed"),
        "packages": package_versions(),
        "device": device,
        "flags": flags or {},
    }
