"""The real Snakemake DAG on tiny data: end to end, bit-identical reruns, SIGKILL mid-run and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dag_config import tiny_lol_sci

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def small_config(iterations: int = 30) -> dict:
    return tiny_lol_sci(["stage3"], iterations=iterations, checkpoint_every=3, crop=96)


def run(workdir: Path, cfg: dict, **kw) -> subprocess.Popen | subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    # the README's way to run: `llbench run <snakemake args>` (recovers a killed run's stale lock)
    cmd = [
        sys.executable,
        "-m",
        "llbench",
        "run",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        "1",
        "--quiet",
    ]
    if kw.get("background"):
        return subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def metric_values(workdir: Path) -> dict:
    out = {}
    for p in sorted(workdir.glob("results/*/*/*/*/metrics.json")):
        m = json.loads(p.read_text())
        out[str(p.relative_to(workdir))] = {k: v["mean"] for k, v in m["metrics"].items()}
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    work = tmp_path_factory.mktemp("dag_ref")
    done = run(work, small_config())
    assert done.returncode == 0, done.stderr[-3000:]
    return work


def test_dag_runs_end_to_end(reference):
    assert (reference / "results" / "report" / "index.html").is_file()
    values = metric_values(reference)
    assert set(values) == {
        "results/tiny-lol/input/default/seed0/metrics.json",
        "results/tiny-lol/sci/stage3/seed0/metrics.json",
    }
    assert values["results/tiny-lol/input/default/seed0/metrics.json"]["psnr"] < 12  # a dark input
    prov = json.loads((reference / "results/tiny-lol/sci/stage3/seed0/metrics.json").read_text())["provenance"]
    assert prov["data"]["manifest_sha256"] and prov["git"]["commit"]
    assert (reference / "results" / "profile" / "sci" / "stage3.json").is_file()


def test_dag_sigkill_then_rerun_gives_identical_metrics(reference, tmp_path):
    work = tmp_path / "killed"
    proc = run(work, small_config(), background=True)
    deadline = time.monotonic() + 600
    resume = work / "results/tiny-lol/sci/stage3/seed0/resume.pt"
    while not resume.exists():
        assert proc.poll() is None, "the DAG finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and its running job die at once
    proc.wait()
    assert not (work / "results/tiny-lol/sci/stage3/seed0/checkpoint.pt").exists()
    done = run(work, small_config())
    assert done.returncode == 0, done.stderr[-3000:]
    assert metric_values(work) == metric_values(reference)  # bit-identical on CPU


def test_rerun_is_a_no_op(reference):
    done = subprocess.run(
        [
            SNAKEMAKE,
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(reference),
            "--configfile",
            str(reference / "config.yaml"),
            "-n",
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "Nothing to be done" in done.stdout + done.stderr
