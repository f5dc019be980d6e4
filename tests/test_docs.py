"""Every command line in README.md and docs/*.md runs, so a documented command can never break unnoticed.

Each file's ``bash`` blocks run in order, as a new user would type them, in a scratch copy of the checkout
(``git ls-files``), never in the user's own: `results/`, `resources/` and `logs/` stay untouched. Three
things keep that honest and small:

* ``AS_TESTED``: a documented line -> the line the test runs instead (a placeholder filled with a
  stand-in, or a plan: ``snakemake ... -n`` where the real run needs the real datasets and GPUs);
* ``NOT_RUN``: a documented line -> why this test does not run it (CI runs it, or it needs a server);
* both tables must name lines that are still in the docs, and every other line is run as written.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from dag_config import scratch_checkout
from PIL import Image

import methods

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

CI = ".ci/run runs it on every submission (README order: make report, then make test)"
NOT_RUN = {
    "make report": CI,
    "make test": CI,
    "make lint": ".ci/run runs ruff check and snakemake --lint",
    "make lock": "re-resolves requirements.in against PyPI and rewrites requirements.lock",
    ".venv/bin/python benchmarks/bench_pipeline.py": "a benchmark: minutes of timing runs (benchmarks/README.md)",
    ".venv/bin/python benchmarks/bench_sci.py": "a benchmark: minutes of timing runs (benchmarks/README.md)",
    "dvc remote add -d lab ssh://me@storage.example.org/srv/dvc": "an alternative remote: needs an SSH server",
    "dvc remote add -d lab s3://my-bucket/llbench": "an alternative remote: needs an S3 bucket",
    **dict.fromkeys(
        [
            "llbench release --configfile config/config.yaml",
            'git add release.dvc .gitignore && git commit -m "release: table 1"',
            "dvc push release.dvc",
            "dvc pull release/RELEASE.json release/data release/cells/lol/sci/stage3/seed0/checkpoint.pt",
            "llbench verify lol sci stage3 seed0",
        ],
        "needs the full benchmark's results; the same commands run end to end on tiny data in tests/test_release.py",
    ),
    "git clone <repo-url> lowlight-bench && cd lowlight-bench": "a placeholder URL; the next lines run in the same "
    "scratch checkout with data/LOL removed (the clone + pull round trip is tests/test_dvc_http.py)",
}
PLAN = "-n --quiet rules"  # a dry run: the DAG is built and validated, no job runs
PLANNED = [  # they need the real datasets (and GPUs, a cluster): their plan is checked
    "snakemake results/lol/sci/stage3/seed0/metrics.json",
    "snakemake --cores all --resources gpu=4",
    "LLBENCH_GPUS=0,2 snakemake --cores all --resources gpu=2",
    "snakemake --profile workflow/profiles/slurm",
    "snakemake results/lol/sci/stage3/seed0/metrics.json --configfile config/config.yaml",
]
AS_TESTED = {
    **{line: f"{line} {PLAN}" for line in PLANNED},
    "llbench cell lol sci stage3 seed0 [--dry-run] [--forcerun]": "llbench cell lol sci stage3 seed0 --dry-run",
    ".venv/bin/pytest -m slow": "pytest -m slow --collect-only -q -p no:cacheprovider",
    "llbench data prepare lol --from ~/Downloads/LOLdataset.zip": "llbench data prepare lol --from LOLdataset.zip",
    "dvc remote add -d lab /mnt/shared/llbench-dvc": "dvc remote add -d lab ../remote",
    "dvc pull data/LOL": "rm -rf data/LOL && dvc pull data/LOL",
}


def documented(path: Path) -> list[str]:
    """The command lines of a Markdown file's ``bash`` blocks, comments stripped, in order."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(), re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def yaml_block(path: Path, name: str) -> str:
    """The ``yaml`` block that the text just before it says to save as ``name``."""
    m = re.search(rf"`{re.escape(name)}`:\s*\n+```yaml\n(.*?)```", path.read_text(), re.S)
    assert m, f"{path}: no yaml block introduced by `{name}`"
    return m.group(1)


def test_tables_name_only_documented_lines():
    everything = {line for doc in DOCS for line in documented(doc)}
    stale = sorted((set(NOT_RUN) | set(AS_TESTED)) - everything)
    assert not stale, f"no longer in the docs, remove from tests/test_docs.py: {stale}"


def lol_download(path: Path) -> Path:
    """LOLdataset.zip's layout at LOL's counts (485 + 15 pairs), tiny images."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as z:
        for folder, n in (("our485", 485), ("eval15", 15)):
            for i in range(1, n + 1):
                for side in ("low", "high"):
                    img = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
                    tmp = path.parent / "one.png"
                    img.save(tmp)
                    z.write(tmp, f"LOLdataset/{folder}/{side}/{i}.png")
    return path


def run_lines(doc: Path, work: Path) -> list[str]:
    """Run ``doc``'s command lines in ``work``; returns the lines run (as tested)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAKEMAKE_PROFILE", "SLURM_"))}
    env.update(
        PATH=f"{BIN}:{env.get('PATH', '')}",
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
        CUDA_VISIBLE_DEVICES="",  # the documented GPU commands are planned, never run, here
    )
    ran = []
    for line in documented(doc):
        if line in NOT_RUN:
            continue
        cmd = AS_TESTED.get(line, line)
        done = subprocess.run(["bash", "-c", cmd], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        out = (done.stdout + done.stderr)[-3000:]
        assert done.returncode == 0, f"{doc.name}: `{line}` (run as `{cmd}`) failed:\n{out}"
        assert "Traceback" not in out, f"{doc.name}: `{line}` printed a traceback:\n{out}"
        ran.append(cmd)
    return ran


def test_readme_commands(tmp_path):
    work = scratch_checkout(tmp_path / "checkout")
    ran = run_lines(REPO / "README.md", work)
    assert any(r.startswith("llbench cell") for r in ran) and any("gpu=4" in r for r in ran)
    assert not (work / "results").exists()  # plans only: nothing ran


def test_datasets_doc_commands(tmp_path):
    work = scratch_checkout(tmp_path / "checkout")
    lol_download(work / "LOLdataset.zip")
    (tmp_path / "remote").mkdir()
    ran = run_lines(REPO / "docs" / "datasets.md", work)
    assert "dvc push" in ran and (work / "data" / "LOL" / "test" / "low" / "15.png").is_file()


def test_own_data_walkthrough(tmp_path):
    """docs/own-data.md end to end: a folder and a checkpoint of the user's own become a report cell."""
    work = scratch_checkout(tmp_path / "checkout")
    doc = REPO / "docs" / "own-data.md"
    (work / "my-overlay.yaml").write_text(yaml_block(doc, "my-overlay.yaml"))
    (work / "my weights").mkdir()
    torch.manual_seed(0)
    torch.save(methods.build("sci", "stage3").state_dict(), work / "my weights" / "sci.pt")  # official layout
    run_lines(doc, work)
    cell = work / "results" / "my-lol" / "sci" / "stage3" / "pretrained-mine"
    assert (cell / "metrics.json").is_file() and (work / "results" / "report" / "index.html").is_file()
    assert (work / "enhanced" / "001.png").is_file()
    assert not (work / "results" / "lol").exists()  # nothing of the full benchmark ran
