"""Where every file lives, written once: cells, training runs, logs, dataset stamps, profiles, tables, report.

Paths are relative to the working directory (the Snakemake workdir). The rules build their patterns
from these functions with wildcard strings (``cell_dir("{dataset}", "{method}", "{variant}", "{run}")``),
so a path changes in one place. A cell is one ``results/<dataset>/<method>/<variant>/<run>/`` folder;
``run`` is ``seed<N>`` (trained here) or ``pretrained-<name>`` (an external checkpoint).
"""

from __future__ import annotations

from pathlib import PurePosixPath

RESULTS = "results"
LOGS = "logs"
TABLES = f"{RESULTS}/tables"
REPORT = f"{RESULTS}/report/index.html"
VERIFY = f"{RESULTS}/verify"  # llbench verify: one record per re-run cell
#: cell-shaped folders under results/ that are not cells
NOT_CELLS = ("profile", "tables", "report", "verify")


def cell_dir(dataset: str, method: str, variant: str, run: str) -> str:
    """The folder of one table cell (metrics.json, per_image.csv, outputs/; checkpoint.pt when trained here)."""
    return f"{RESULTS}/{dataset}/{method}/{variant}/{run}"


def parse_cell_dir(path: str) -> tuple[str, str, str, str]:
    """(dataset, method, variant, run) of a cell folder (the inverse of :func:`cell_dir`)."""
    parts = PurePosixPath(str(path)).parts[-4:]
    if len(parts) != 4:
        raise ValueError(f"{path}: not a cell folder ({cell_dir('<dataset>', '<method>', '<variant>', '<run>')})")
    return parts  # type: ignore[return-value]


def metrics_json(dataset: str, method: str, variant: str, run: str) -> str:
    return f"{cell_dir(dataset, method, variant, run)}/metrics.json"


def checkpoint(train_dataset: str, method: str, variant: str, run: str) -> str:
    """The inference weights a training run writes (in the cell folder of its training dataset)."""
    return f"{cell_dir(train_dataset, method, variant, run)}/checkpoint.pt"


def train_log(train_dataset: str, method: str, variant: str, run: str) -> str:
    """The console log of a training job."""
    return f"{LOGS}/train/{train_dataset}/{method}/{variant}/{run}.log"


def eval_log(dataset: str, method: str, variant: str, run: str) -> str:
    """The console log of an evaluation job."""
    return f"{LOGS}/evaluate/{dataset}/{method}/{variant}/{run}.log"


def stamp(dataset: str) -> str:
    """A staged dataset's stamp: origin, manifest hash, file index (the ``dataset`` rule's output)."""
    return f"resources/stamps/{dataset}.json"


def train_cache(dataset: str) -> str:
    """The training-ready caches of a dataset, one folder per data version (llbench.data.cache)."""
    return f"resources/cache/train/{dataset}"


def train_cache_pointer(dataset: str) -> str:
    """The ``train_cache`` rule's output: which cache folder serves the dataset's current version."""
    return f"resources/cache/train/{dataset}.json"


def bench_cache(name: str) -> str:
    """Training caches that benchmarks/bench_data.py builds for a dataset folder outside the pipeline."""
    return f"resources/cache/bench/{name}"


def cache_log(dataset: str) -> str:
    return f"{LOGS}/cache/{dataset}.log"


def data_log(dataset: str) -> str:
    return f"{LOGS}/data/{dataset}.log"


def profile(method: str, variant: str) -> str:
    """Params, FLOPs, latency and memory of one method variant."""
    return f"{RESULTS}/profile/{method}/{variant}.json"


def profile_log(method: str, variant: str) -> str:
    return f"{LOGS}/profile/{method}/{variant}.log"


def grid_dir(dataset: str) -> str:
    """The visual comparison of one dataset (crops + grid.json), beside the report that shows it."""
    return f"{RESULTS}/report/grids/{dataset}"


def grid_log(dataset: str) -> str:
    return f"{LOGS}/grid/{dataset}.log"


def verify_log(cell: str) -> str:
    """The log of ``llbench verify`` for one cell (``<dataset>/<method>/<variant>/<run>``)."""
    return f"{LOGS}/verify/{cell}.log"
