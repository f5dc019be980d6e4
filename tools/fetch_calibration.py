"""Fetch the metric calibration set: ``ResultsCalibra/`` from the pyiqa 0.1.16 source distribution.

pyiqa's sdist on PyPI ships ``ResultsCalibra/``: five TID2013 distorted/reference ``.bmp`` pairs (I03, I04,
I06, I08, I19), ``results_official.csv`` (values of the original MATLAB/Python scripts) and
``calibration_summary.csv`` (pyiqa's own values). ``tests/test_metrics.py`` compares our metrics with them.
Nothing is vendored into the project: the sdist (PolyForm-Noncommercial-1.0.0) is downloaded with pip,
pinned by sha256, and only ``ResultsCalibra/`` is extracted.

Usage (idempotent; ``make test`` calls it)::

    python tools/fetch_calibration.py [--dest DIR] [--sdist pyiqa-0.1.16.tar.gz]

The tests read the directory from ``$LLBENCH_CALIBRATION_DIR`` or :data:`DEFAULT_DEST`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from llbench.data.manifest import sha256_file

PACKAGE = "pyiqa==0.1.16"
SDIST_NAME = "pyiqa-0.1.16.tar.gz"
SDIST_SHA256 = "80fb913302585a774875c224b4f95068ac17bebd88f735876e6f0c3bb0988d34"  # PyPI pyiqa-0.1.16.tar.gz
PREFIX = "pyiqa-0.1.16/ResultsCalibra/"  # member prefix inside the sdist
REPO = Path(__file__).resolve().parents[1]
DEFAULT_DEST = REPO / ".venv" / "share" / "calibration" / "pyiqa-0.1.16" / "ResultsCalibra"
#: files whose presence means the set is complete (checked for idempotence and after extraction)
REQUIRED = (
    "results_official.csv",
    "calibration_summary.csv",
    *(f"{d}/{n}.bmp" for d in ("dist_dir", "ref_dir") for n in ("I03", "I04", "I06", "I08", "I19")),
)


def is_complete(dest: Path) -> bool:
    """True when every :data:`REQUIRED` file exists under ``dest``."""
    return all((Path(dest) / rel).is_file() for rel in REQUIRED)


def download_sdist(workdir: Path) -> Path:
    """``pip download`` the pinned sdist into ``workdir`` (no dependencies, no wheels) and return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", PACKAGE, "-d", str(workdir)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        tail = (res.stdout + res.stderr)[-3000:]
        raise RuntimeError(f"pip download {PACKAGE} failed (exit {res.returncode}):\n{tail}")
    path = Path(workdir) / SDIST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"pip download did not produce {path}; got {sorted(os.listdir(workdir))}")
    return path


def extract_results_calibra(sdist: Path, dest: Path, sha256: str = SDIST_SHA256) -> Path:
    """Verify ``sdist`` against ``sha256`` and extract only ``ResultsCalibra/`` into ``dest`` (atomically).

    Raises:
        ValueError: on a sha256 mismatch, or when the archive lacks a required file.
    """
    sdist, dest = Path(sdist), Path(dest)
    digest = sha256_file(sdist)
    if digest != sha256:
        raise ValueError(f"{sdist} has sha256 {digest}, expected {sha256}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".ResultsCalibra-", dir=dest.parent))
    tmp.chmod(0o755)
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            members = []
            for m in tar.getmembers():
                if not m.name.startswith(PREFIX) or not (m.isfile() or m.isdir()):
                    continue
                m.name = m.name[len(PREFIX) :]
                if m.name:
                    members.append(m)
            tar.extractall(tmp, members=members, filter="data")
        missing = [rel for rel in REQUIRED if not (tmp / rel).is_file()]
        if missing:
            raise ValueError(f"{sdist} lacks {PREFIX}{missing[0]} (and {len(missing) - 1} more)")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


def fetch(dest: Path = DEFAULT_DEST, sdist: Path | None = None) -> Path:
    """Make ``dest`` hold ``ResultsCalibra/``; skip when already complete. ``sdist``: use a local copy."""
    dest = Path(dest)
    if is_complete(dest):
        return dest
    if sdist is not None:
        return extract_results_calibra(Path(sdist), dest)
    with tempfile.TemporaryDirectory(prefix="pyiqa-sdist-") as work:
        return extract_results_calibra(download_sdist(Path(work)), dest)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dest", type=Path, default=DEFAULT_DEST, help=f"target directory ({DEFAULT_DEST})")
    p.add_argument("--sdist", type=Path, default=None, help=f"a local {SDIST_NAME} instead of pip download")
    args = p.parse_args(argv)
    skipped = is_complete(args.dest)
    out = fetch(args.dest, args.sdist)
    print(f"{'present' if skipped else 'extracted'}: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
