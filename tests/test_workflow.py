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
        (
            lambda c: c["experiments"][1].update(variants=["stage7"]),
            r"unknown variant 'stage7' of sci; allowed: .*stage3",
        ),
        (lambda c: c["experiments"][1].update(datasets=["lol"]), r"unknown dataset 'lol'; allowed: tiny-lol"),
        (lambda c: c["datasets"]["tiny-lol"].update(kind="pairs"), r"kind = 'pairs' is not allowed; allowed: paired"),
        (lambda c: c.update(devise="cpu"), r"'devise' was unexpected.*allowed keys: .*device"),
        (
            lambda c: c["experiments"][1].update(datasets=["tiny-sidd"]),
            r"sci cannot be evaluated on 'tiny-sidd' \(kind denoise\)",
        ),
        (
            lambda c: c["experiments"][1]["train"].update(iteration=5),
            r"experiments\[1\]\.train\.iteration: not an option of sci; allowed: .*iterations",
        ),
        (
            lambda c: c["experiments"][5].update(infer={"r3t": 1}),
            r"experiments\[5\]\.infer\.r3t: not an option of apbsn; allowed: .*r3_t",
        ),
        (
            lambda c: c["experiments"][0].update(train={"iterations": 3}),
            r"experiments\[0\]\.train\.iterations: not an option of input; allowed: none",
        ),
        (lambda c: c["datasets"]["tiny-lol"].update(recipe="lolv3"), r"recipe = 'lolv3' .*allowed: lol, "),
        (lambda c: c["experiments"][1].update(variants="some"), r"variants = \"some\""),
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
    assert c.checkpoint_path == "results/tiny-lol/sci/stage3/seed0/checkpoint.pt"
    assert all(c.train_dataset is None and c.checkpoint_path is None for c in cells if c.method == "input")


def test_variants_all_and_the_default_alias_resolve_at_validation():
    import methods

    cfg = smoke()
    cfg["experiments"] = [{"method": "sci", "datasets": ["tiny-lol"], "variants": ["default", "stage3", "stage1"]}]
    cfg["pretrained"] = {"x": {"method": "sci", "checkpoint": "w.pt", "datasets": ["tiny-lol"]}}
    cells = workflow.cells(workflow.validate(cfg))
    assert [(c.variant, c.run) for c in cells] == [("stage3", "seed0"), ("stage1", "seed0"), ("stage3", "pretrained-x")]
    full = workflow.load(REPO / "config" / "smoke.yaml")
    for exp in full["experiments"]:
        if exp["method"] != "input":  # the shipped configs mean every variant: `variants: all`
            assert exp["variants"] == list(methods.get(exp["method"]).variants)


def dry_run_counts(configfile: str, workdir: Path) -> dict[str, int]:
    """Job counts per rule of a dry run in an empty working directory."""
    out = subprocess.run(
        [
            SNAKEMAKE,
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(workdir),
            "-n",
            "--configfile",
            str(REPO / configfile),
            "--quiet",
            "rules",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("job ")) + 2
    counts = {}
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/smoke.yaml"])
def test_dry_run_lists_every_cell(configfile, tmp_path):
    counts = dry_run_counts(configfile, tmp_path)
    cfg = workflow.load(REPO / configfile)
    cells = workflow.cells(cfg)
    trained = {(c.train_dataset, c.method, c.variant, c.seed) for c in cells if c.train_dataset}
    assert counts["evaluate"] == len(cells)
    assert counts["train"] == len(trained)
    assert counts["profile"] == len({(c.method, c.variant) for c in cells})
    assert counts["dataset"] == len({c.dataset for c in cells} | {c.train_dataset for c in cells if c.train_dataset})


def test_smoke_covers_all_five_methods():
    assert {"sci", "snr_aware", "enlightengan", "lgbpn", "apbsn", "alen", "input"} <= {
        e["method"] for e in smoke()["experiments"]
    }


def test_bad_config_stops_snakemake_before_any_job(tmp_path):
    cfg = smoke()
    cfg["experiments"][1]["train"]["iterations"] = -1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    out = subprocess.run(
        [SNAKEMAKE, "-n", "-s", str(REPO / "Snakefile"), "--configfile", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "config error: config.experiments[1].train.iterations = -1" in out.stdout + out.stderr


# ---- overlays, YAML errors, variant and pretrained keys (issue 13) --------------------------------------
def test_overlay_with_no_experiments_evaluates_pretrained_only(tmp_path):
    """A reviewer's overlay: no training, one registered checkpoint; merged as Snakemake merges files."""
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(
        "experiments: []\n"
        "pretrained:\n  mine: {method: sci, variant: stage3, checkpoint: my dir/w.pt, datasets: [tiny-lol]}\n"
    )
    cfg = workflow.load([REPO / "config" / "smoke.yaml", overlay])
    assert cfg["experiments"] == []
    assert [c.dir for c in workflow.cells(cfg)] == ["results/tiny-lol/sci/stage3/pretrained-mine"]
    assert cfg["datasets"]["tiny-lol"]["root"] == "resources/tiny/lol"  # the base file's datasets stay


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets:\n  a: {kind: paired\n  b: 1\n")
    with pytest.raises(workflow.ConfigError, match=rf"{bad}:3:\d+: YAML syntax error"):
        workflow.load(bad)
    # through `llbench run` (Snakemake's own message names neither the file nor the line)
    out = subprocess.run(
        [sys.executable, "-m", "llbench", "run", "-s", str(REPO / "Snakefile"), "-n", "--configfile", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and f"{bad}:3:" in out.stderr, out.stderr


def test_variant_errors_list_each_variant_once_and_name_the_key():
    cfg = copy.deepcopy(smoke())
    cfg["experiments"][1]["variants"] = ["stage7"]
    with pytest.raises(workflow.ConfigError) as err:
        workflow.validate(cfg)
    allowed = str(err.value).split("allowed: ")[1].split(", ")
    assert len(allowed) == len(set(allowed)) and "default" in allowed
    cfg = copy.deepcopy(smoke())
    cfg["pretrained"] = {"x": {"method": "sci", "variant": "stage9", "checkpoint": "w.pt", "datasets": ["tiny-lol"]}}
    with pytest.raises(workflow.ConfigError, match=r"config\.pretrained\.x\.variant: unknown variant 'stage9'"):
        workflow.validate(cfg)


def test_pretrained_sha256_reaches_the_evaluation_spec():
    cfg = copy.deepcopy(smoke())
    digest = "ab" * 32
    cfg["pretrained"] = {
        "x": {"method": "sci", "variant": "stage3", "checkpoint": "w.pt", "datasets": ["tiny-lol"], "sha256": digest}
    }
    cfg = workflow.validate(cfg)
    cell = next(c for c in workflow.cells(cfg) if c.run == "pretrained-x")
    assert workflow.eval_spec(cfg, cell)["checkpoint_sha256"] == digest
