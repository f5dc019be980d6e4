"""An author releases a table through DVC, a reviewer verifies a cell from it without training.

The author's scratch checkout runs a small tiny-LOL matrix (input baseline + SCI), `llbench release`s it,
commits `release.dvc` and pushes to a local remote, which a read-only HTTP server on 127.0.0.1 then serves.
A clone pulls one cell's checkpoint, the release index and the data manifests, and `llbench verify` runs.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from dag_config import scratch_checkout, tiny_lol_sci
from test_dvc_http import _QuietHandler

from llbench import release
from llbench.data.manifest import sha256_file

BIN = Path(sys.executable).parent
CELL = "tiny-lol/sci/stage3/seed0"
CKPT = f"release/cells/{CELL}/checkpoint.pt"
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE_PROFILE")},
    "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    "DVC_NO_ANALYTICS": "1",
    "GIT_TERMINAL_PROMPT": "0",
    **{f"GIT_{w}_{k}": v for w in ("AUTHOR", "COMMITTER") for k, v in (("NAME", "t"), ("EMAIL", "t@t"))},
}


def sh(cmd: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900)
    if ok:
        assert done.returncode == 0, f"`{cmd}` failed:\n{(done.stdout + done.stderr)[-4000:]}"
    return done


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """(author checkout, reviewer clone) after release, push and a granular pull over HTTP."""
    base = tmp_path_factory.mktemp("release")
    author = scratch_checkout(base / "author")
    cfg = tiny_lol_sci(["stage3"], iterations=4, checkpoint_every=2, crop=64)
    (author / "paper.yaml").write_text(yaml.safe_dump(cfg))
    targets = f"results/tiny-lol/input/default/seed0/metrics.json results/{CELL}/metrics.json results/tables/main.csv"
    sh(f"llbench run {targets} --configfile paper.yaml --cores 2 --quiet", author)
    sh("llbench release --configfile paper.yaml", author)
    sh(f"dvc remote add -d lab {base / 'remote'} && git add -A && git commit -qm release && dvc push -q", author)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(base / "remote")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        reviewer = base / "reviewer"
        sh(f"git clone -q {author} {reviewer}", base)
        sh(f"dvc remote add --local -d web http://127.0.0.1:{server.server_address[1]}", reviewer)
        sh(f"dvc pull -q release/RELEASE.json release/data {CKPT}", reviewer)  # one cell's checkpoint alone
    finally:
        server.shutdown()
        server.server_close()
    return author, reviewer


def test_release_bundle_and_index(published):
    author, reviewer = published
    index = release.load_index(author / "release")
    cell = index["cells"][CELL]
    assert cell["checkpoint_sha256"] == sha256_file(author / "results" / CELL / "checkpoint.pt")
    metrics = json.loads((author / "results" / CELL / "metrics.json").read_text())
    assert cell["metrics"] == {k: v["mean"] for k, v in metrics["metrics"].items()}
    assert cell["data_manifest_sha256"] == metrics["provenance"]["data"]["manifest_sha256"]
    assert {"config_sha256", "commit", "seed", "device", "packages"} <= set(cell)
    assert (author / "release.dvc").is_file() and (author / "release" / "cells" / CELL / "config.json").is_file()
    # granular: the reviewer got that checkpoint, not the rest of the bundle
    assert (reviewer / CKPT).is_file() and not (reviewer / "release" / "cells" / "tiny-lol" / "input").exists()


def test_release_refuses_incomplete_and_untrained_vgg_cells(published, tmp_path):
    author, _ = published
    cfg = yaml.safe_load((author / "paper.yaml").read_text())
    cfg["experiments"][1]["variants"] = ["stage3", "stage1"]  # stage1 never ran
    (author / "more.yaml").write_text(yaml.safe_dump(cfg))
    done = sh("llbench release --configfile more.yaml --out /dev/null/x --no-dvc", author, ok=False)
    assert done.returncode == 2 and "tiny-lol/sci/stage1/seed0: incomplete" in done.stderr
    profile = author / "results" / "profile" / "sci" / "stage3.json"
    profile.rename(profile.with_suffix(".moved"))
    try:  # what the table was made from must be complete: no silent gaps in the bundle
        done = sh("llbench release --configfile paper.yaml --out /dev/null/x --no-dvc", author, ok=False)
        assert f"{CELL}: incomplete (no results/profile/sci/stage3.json)" in done.stderr
    finally:
        profile.with_suffix(".moved").rename(profile)
    m = author / "results" / CELL / "metrics.json"
    saved = m.read_text()
    try:
        m.write_text(saved.replace('"flags": {}', '"flags": {"untrained_vgg": true}', 1))
        done = sh("llbench release --configfile paper.yaml --out /dev/null/x --no-dvc", author, ok=False)
        assert f"{CELL}: trained with an untrained VGG" in done.stderr
    finally:
        m.write_text(saved)


def test_reviewer_verifies_a_cell_without_training(published):
    _, reviewer = published
    sh("dvc pull -q -r lab release/tables", reviewer)  # the released tables: verify renders them with its result
    done = sh(f"llbench verify {CELL.replace('/', ' ')} --retrain", reviewer)
    assert f"{CELL}: claimed on cpu, re-run on cpu" in done.stdout and "PASSED" in done.stdout
    assert "retrained checkpoint bit-identical to the released one: True" in done.stdout
    record = json.loads((reviewer / "results" / "verify" / f"{CELL}.json").read_text())
    assert record["passed"] and all(r["status"] == "ok" and r["delta"] == 0 for r in record["rows"])
    # the checkpoint run alone had no training job; the retrain run had one
    log = (reviewer / "logs" / "verify" / f"{CELL}.log").read_text()
    checkpoint_part, retrain_part = log.split("--forcerun results/tiny-lol/sci/stage3/seed0/checkpoint.pt", 1)
    assert "rule train" not in checkpoint_part and "rule train" in retrain_part
    html = (reviewer / "results" / "report" / "index.html").read_text()
    assert 'id="verification"' in html and CELL in html


def test_edited_claim_fails_naming_cell_metric_and_delta(published):
    _, reviewer = published
    index_file = reviewer / "release" / "RELEASE.json"
    saved = index_file.read_text()
    index = json.loads(saved)
    index["cells"][CELL]["metrics"]["psnr"] += 0.25
    index_file.write_text(json.dumps(index))
    try:
        done = sh(f"llbench verify {CELL.replace('/', ' ')}", reviewer, ok=False)
    finally:
        index_file.write_text(saved)
    assert done.returncode == 1
    psnr = next(line for line in done.stdout.splitlines() if line.split()[:1] == ["psnr"])
    assert "0.250000" in psnr and psnr.endswith("FAIL") and f"{CELL}: claimed on cpu" in done.stdout


def test_corrupt_checkpoint_is_refused_by_name(published):
    _, reviewer = published
    ckpt = reviewer / CKPT
    saved = ckpt.read_bytes()
    ckpt.write_bytes(saved + b"x")
    try:
        done = sh(f"llbench verify {CELL.replace('/', ' ')}", reviewer, ok=False)
    finally:
        ckpt.write_bytes(saved)
    assert done.returncode == 2 and f"{CKPT}: sha256 is " in done.stderr and "refused" in done.stderr


def test_other_copy_of_the_dataset_is_reported_before_computing(published):
    _, reviewer = published
    root = reviewer / "resources" / "tiny" / "lol"
    low = root / "test" / "low" / "001.png"
    saved = low.read_bytes()
    low.write_bytes((root / "test" / "low" / "002.png").read_bytes())
    sh(f"llbench data manifest {root}", reviewer)  # the reviewer's copy is consistent, but not the released one
    try:
        done = sh(f"llbench verify {CELL.replace('/', ' ')}", reviewer, ok=False)
    finally:
        low.write_bytes(saved)
        sh(f"llbench data manifest {root}", reviewer)
    assert done.returncode == 1
    assert "is not the released one, nothing computed" in done.stdout and "differ: test/low/001.png" in done.stdout
    log = (reviewer / "logs" / "verify" / f"{CELL}.log").read_text()
    assert "rule evaluate" not in log
