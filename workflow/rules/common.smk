# All the Python of the workflow: config validation and the cell matrix (llbench/workflow.py).
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.utils import validate

from llbench import layout
from llbench import workflow as wf
from llbench.data import stage
from llbench.data.cache import KINDS_CACHED
from llbench.data.manifest import MANIFEST
from llbench.tables import RECORDS, TABLES

try:
    CFG = wf.validate(config)
except wf.ConfigError as err:
    raise SystemExit(f"config error: {err}") from None
validate(config, schema="../schemas/config.schema.yaml")

CELLS = {(c.dataset, c.method, c.variant, c.run): c for c in wf.cells(CFG)}
TRAIN_CELLS = {}
for _c in CELLS.values():
    if _c.train_dataset is not None and _c.checkpoint is None:
        TRAIN_CELLS.setdefault((_c.train_dataset, _c.method, _c.variant, _c.seed), _c)
#: the rules' path patterns: a cell folder, a training run's folder (layout.cell_dir with wildcards)
CELL = layout.cell_dir("{dataset}", "{method}", "{variant}", "{run}")
TRAIN_RUN = layout.cell_dir("{dataset}", "{method}", "{variant}", "seed{seed}")
PROFILES = sorted({(c.method, c.variant) for c in CELLS.values()})
# rules call `llbench` from this interpreter's environment (the project's .venv), wherever the job runs
shell.prefix(f"set -euo pipefail; export PATH={shlex.quote(str(Path(sys.executable).parent))}:\"$PATH\"; ")


wildcard_constraints:
    dataset=r"[a-z0-9][a-z0-9_-]*",
    method=r"[a-z0-9_]+",
    variant=r"[a-z0-9_]+",
    run=r"seed[0-9]+|pretrained-[A-Za-z0-9_.-]+",
    seed=r"[0-9]+",


def arg(obj):
    """A JSON object as one shell word."""
    return shlex.quote(json.dumps(obj, sort_keys=True, separators=(",", ":")))


def cell(wc):
    key = (wc.dataset, wc.method, wc.variant, wc.run)
    if key not in CELLS:
        raise ValueError(f"no cell {layout.cell_dir(*key)} in this config")
    return CELLS[key]


def train_cell(wc):
    key = (wc.dataset, wc.method, wc.variant, int(wc.seed))
    if key not in TRAIN_CELLS:
        raise ValueError(f"no training job {wc.dataset}/{wc.method}/{wc.variant}/seed{wc.seed} in this config")
    return TRAIN_CELLS[key]


def metrics_files():
    return [layout.metrics_json(*key) for key in CELLS]


def profile_files():
    return [layout.profile(m, v) for m, v in PROFILES]


def dataset_inputs(wc):
    """What a stamp depends on: data.dvc for DVC data (never the pulled files: DVC resets mtimes), the
    manifest of a folder of the user's own (re-written by `llbench data manifest` when the data change)."""
    ds = CFG["datasets"][wc.dataset]
    origin = stage.origin(ds)
    if origin == "dvc":
        return [str(stage.DVC_FILE)]
    manifest = Path(ds["root"]) / MANIFEST
    return [str(manifest)] if origin == "local" and manifest.is_file() else []


def train_inputs(wc):
    """The stamp, and the training-ready cache where the dataset's kind has one (llbench.data.cache)."""
    inputs = {"stamp": layout.stamp(wc.dataset)}
    if CFG["datasets"][wc.dataset]["kind"] in KINDS_CACHED:
        inputs["cache"] = layout.train_cache_pointer(wc.dataset)
    return inputs


def eval_inputs(wc):
    c = cell(wc)
    inputs = {"stamp": layout.stamp(c.dataset)}
    if c.checkpoint_path is not None:
        inputs["checkpoint"] = c.checkpoint_path
    return inputs


def grid_spec(dataset):
    """What the `grid` job of a dataset needs: where its images are, which cells it shows and their labels."""
    import methods

    ds = CFG["datasets"][dataset]
    tiles = []
    for c in wf.grid_cells(CFG, dataset):
        baseline = not methods.get(c.method).trained
        label = f"{c.method} (no method)" if baseline else c.method if c.checkpoint is None else f"{c.method} ({c.run})"
        tiles.append({"path": c.dir, "label": label, "baseline": baseline})
    return {"dataset": {"name": dataset, **ds}, "cells": tiles}


def grid_inputs(wc):
    cells = wf.grid_cells(CFG, wc.dataset)
    return {
        "stamp": layout.stamp(wc.dataset),
        "metrics": [layout.metrics_json(c.dataset, c.method, c.variant, c.run) for c in cells],
        "per_image": [f"{c.dir}/per_image.csv" for c in cells],
    }


def grid_dirs():
    return [layout.grid_dir(d) for d in dict.fromkeys(c.dataset for c in CELLS.values())]


def configfile_args():
    """The run's config files, relative to the working directory (later ones overlay earlier ones)."""
    return [os.path.relpath(f) for f in workflow.configfiles]


def partial_report():
    """After a failed job: the tables and the report from whatever exists, listing failed and missing cells
    with their logs (run by `onerror` when the report was among the run's targets)."""
    from llbench.report import render
    from llbench.tables import write_tables

    print("some jobs failed (see logs/): rendering a partial report that lists them", file=sys.stderr)
    write_tables(Path(layout.RESULTS), Path(layout.TABLES), cells=[c.record() for c in CELLS.values()])
    render(Path(layout.TABLES), Path(layout.REPORT), results=Path(layout.RESULTS), configfile=configfile_args() or None)
    print(f"partial report: {Path(layout.REPORT).resolve()}", file=sys.stderr)
