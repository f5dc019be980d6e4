"""The reviewer workflow: ``llbench cell`` re-runs exactly one table cell through the real Snakemake DAG.

A temporary working directory holds a small config (tiny-lol; the input baseline and two SCI variants, a
few iterations); Snakemake runs there with ``-s <repo>/Snakefile`` (every path in the workflow is relative).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dag_config import tiny_lol_sci

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
CELL = "results/tiny-lol/sci/stage1/seed0"
OTHERS = ["results/tiny-lol/sci/stage3/seed0", "results/tiny-lol/input/default/seed0"]


def small_config() -> dict:
    return tiny_lol_sci(["stage1", "stage3"], iterations=2, checkpoint_every=2, crop=64)


def workdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(yaml.safe_dump(small_config()))
    return path


def llbench_cell(work: Path, *args: str) -> subprocess.CompletedProcess:
    # options before the positionals: everything after <run> goes to snakemake (argparse REMAINDER)
    cmd = [
        sys.executable,
        "-m",
        "llbench",
        "cell",
        "--configfile",
        "config.yaml",
        *args,
        "--",
        "-s",
        str(REPO / "Snakefile"),
        "--cores",
        "1",
    ]
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=900)


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake dry run."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    counts = {}
    for line in table.splitlines():
        m = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def test_dry_run_lists_only_that_cells_jobs(tmp_path):
    work = workdir(tmp_path / "w")
    done = llbench_cell(work, "--dry-run", "tiny-lol", "sci", "stage1", "seed0")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    # no sibling cell, no profile/tables/report
    assert job_counts(out) == {"dataset": 1, "train_cache": 1, "train": 1, "evaluate": 1}
    outputs = set(re.findall(r"results/[^\s,'\"]+", out))
    assert outputs and all(o.rstrip(";") == CELL or o.startswith(f"{CELL}/") for o in outputs), outputs
    assert not (work / "results").exists()  # a dry run writes nothing
    # the whole matrix has more: every other cell, profiles, the dataset's visual comparison, tables and the report
    full = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--configfile", "config.yaml", "-n"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert job_counts(full.stdout + full.stderr) == {
        "dataset": 1,
        "train_cache": 1,
        "train": 2,
        "evaluate": 3,
        "profile": 3,
        "grid": 1,
        "tables": 1,
        "report": 1,
        "all": 1,
    }


def test_unknown_cell_is_one_clear_error(tmp_path):
    work = workdir(tmp_path / "w")
    done = llbench_cell(work, "--dry-run", "tiny-lol", "sci", "stage9", "seed0")
    assert done.returncode == 2
    assert "llbench cell: error: no cell tiny-lol/sci/stage9/seed0 in this config" in done.stderr


def _state(work: Path) -> dict[str, tuple[int, int]]:
    """(mtime_ns, inode) of every output file: an atomic rewrite changes both."""
    files = [p for top in ("results", "resources/stamps", "logs") for p in (work / top).rglob("*") if p.is_file()]
    return {str(p.relative_to(work)): (p.stat().st_mtime_ns, p.stat().st_ino) for p in files}


def _metrics(work: Path, cell: str) -> dict[str, float]:
    m = json.loads((work / cell / "metrics.json").read_text())
    return {k: v["mean"] for k, v in m["metrics"].items()}


@pytest.mark.slow
def test_forcerun_recomputes_only_that_cell(tmp_path):
    """Build three cells, then `llbench cell ... --forcerun` one: only its files (and logs) change."""
    work = workdir(tmp_path / "w")
    targets = [f"{c}/metrics.json" for c in (CELL, *OTHERS)]
    built = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--configfile", "config.yaml", "--cores", "2", *targets],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    before, values = _state(work), _metrics(work, CELL)

    done = llbench_cell(work, "--forcerun", "tiny-lol", "sci", "stage1", "seed0")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert f"--forcerun {CELL}/metrics.json {CELL}/checkpoint.pt" in done.stdout  # the command it ran
    after = _state(work)
    changed = {p for p in after if before.get(p) != after[p]}
    mine = {p for p in after if p.startswith(f"{CELL}/")}
    assert mine and {p for p in mine if not p.endswith("resume.pt")} <= changed  # every file of the cell rewritten
    assert changed - mine == {"logs/train/tiny-lol/sci/stage1/seed0.log", "logs/evaluate/tiny-lol/sci/stage1/seed0.log"}
    assert set(before) - set(after) <= {p for p in before if p.endswith("resume.pt")}
    assert _metrics(work, CELL) == values  # deterministic on the CPU: the same numbers again

    again = llbench_cell(work, "--dry-run", "tiny-lol", "sci", "stage1", "seed0")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
