"""Config schema validation and the Snakemake DAG (dry runs)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llbench import workflow

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def smoke() -> dict:
    return yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


def test_shipped_configs_validate():
    for name in ("smoke.yaml", "config.yaml"):
        cfg = workflow.load(REPO / "config" / name)
        assert cfg["experiments"] and cfg["profile"]["repeats"] >= 1


def test_smoke_covers_every_method_of_the_full_config():
    full = {e["method"] for e in workflow.load(REPO / "config" / "config.yaml")["experiments"]}
    small = {e["method"] for e in workflow.load(REPO / "config" / "smoke.yaml")["experiments"]}
    assert full <= small


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c["experiments"][1]["train"].update(iterations=-5), r"experiments\[1\]\.train\.iterations = -5"),
        (lambda c: c["experiments"][1].update(method="scii"), r"unknown method 'scii'.*Did you mean: sci"),
        (lambda c: c["experiments"][1].update(variants=["stage7"]), r"unknown variant 'stage7' of sci; allowed: .*stage3"),
        (lambda c: c["experiments"][1].update(datasets=["lol"]), r"unknown dataset 'lol'; allowed: tiny-lol"),
        (lambda c: c["datasets"]["tiny-lol"].update(kind="pairs"), r"kind = 'pairs' is not allowed; allowed: paired"),
        (lambda c: c.update(devise="cpu"), r"'devise' was unexpected.*allowed keys: .*device"),
        (lambda c: c["experiments"][1].update(datasets=["tiny-sidd"]), r"sci cannot be evaluated on 'tiny-sidd' \(kind denoise\)"),
    ],
)
def test_bad_config_names_key_value_and_allowed(edit, message):
    cfg = copy.deepcopy(smoke())
    edit(cfg)
    with pytest.raises(workflow.ConfigError, match=message) as err:
        workflow.validate(cfg)
    assert "\n" not in str(err.value)


def test_cells_and_paths():
    cfg = workflow.load(REPO / "config" / "smoke.yaml")
    cells = workflow.cells(cfg)
    sci = [c for c in cells if c.method == "sci"]
    assert len(sci) == 8 and {c.variant for c in sci} == {"stage1", "stage2", "stage3", "no_calibration"}
    c = workflow.find_cell(cfg, "tiny-lol", "sci", "stage3", "seed0")
    assert c.dir == "results/tiny-lol/sci/stage3/seed0" and c.train_dir == c.dir
    assert all(c.train_dataset is None for c in cells if c.method == "input")


def test_dry_run_full_config_lists_every_cell(tmp_path):
    out = subprocess.run([SNAKEMAKE, "-n", "--configfile", "config/config.yaml", "--quiet", "rules"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    cfg = workflow.load(REPO / "config" / "config.yaml")
    n_eval = len(workflow.cells(cfg))
    counts = dict(line.split()[:2] for line in out.stdout.splitlines() if line.strip() and line.split()[0] in
                  ("evaluate", "train", "profile"))
    assert int(counts["evaluate"]) == n_eval


def test_dry_run_smoke_config():
    out = subprocess.run([SNAKEMAKE, "-n", "--configfile", "config/smoke.yaml", "--quiet", "rules"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    methods_in_smoke = {e["method"] for e in smoke()["experiments"]}
    assert {"sci", "input"} <= methods_in_smoke


def test_bad_config_stops_snakemake_before_any_job(tmp_path):
    cfg = smoke()
    cfg["experiments"][1]["train"]["iterations"] = -1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    out = subprocess.run([SNAKEMAKE, "-n", "--configfile", str(bad)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode != 0
    assert "config error: config.experiments[1].train.iterations = -1" in out.stdout + out.stderr
