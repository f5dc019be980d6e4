"""Shared fixtures: tiny datasets generated once per test session, paths to ../shared samples."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Factory: ``tiny("lol")`` -> root of that tiny dataset (generated once per session)."""
    from llbench.data.tiny import make_tiny

    base = tmp_path_factory.mktemp("tiny")
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = make_tiny(name, base / name)
        return made[name]

    return get


@pytest.fixture
def shared():
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    return SHARED
