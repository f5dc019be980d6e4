"""A small tiny-LOL config (input baseline + SCI) for tests that run the real Snakemake DAG."""

from __future__ import annotations

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
