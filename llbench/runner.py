"""Running Snakemake: ``llbench run`` (a whole config) and ``llbench cell`` (exactly one table cell's jobs)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path


def snakemake(args: list[str]) -> int:
    """Run Snakemake, first clearing a stale lock left by a killed run (``llbench run``).

    Snakemake keeps its directory lock after SIGKILL and then refuses to start until ``--unlock``.
    We hold our own ``flock`` for the whole run (the kernel drops it when we die), so when we get it no
    other ``llbench run`` is alive in this directory and any Snakemake lock present is stale.
    """
    import fcntl

    from llbench.workflow import ConfigError, read_yaml

    workdir = Path(".")
    for flag in ("--directory", "-d"):
        if flag in args[:-1]:
            workdir = Path(args[args.index(flag) + 1])
    try:  # Snakemake's own YAML error names neither the file nor the line
        for path in configfiles(args):
            read_yaml(path if Path(path).is_absolute() else workdir / path)
    except ConfigError as e:
        print(f"llbench run: config error: {e}", file=sys.stderr)
        return 2
    exe = str(Path(sys.executable).with_name("snakemake"))
    lock_dir = workdir / ".snakemake"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / "llbench-run.lock", "w") as guard:
        try:
            fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"llbench run: another run is active in {workdir.resolve()}", file=sys.stderr)
            return 1
        if any((lock_dir / "locks").glob("*")):
            subprocess.run([exe, *args, "--unlock"], capture_output=True)
        return subprocess.call([exe, *args])


def configfiles(args: list[str]) -> list[str]:
    """The files named by ``--configfile``/``--configfiles`` in a Snakemake command line."""
    out: list[str] = []
    for i, a in enumerate(args):
        if a in ("--configfile", "--configfiles"):
            for value in args[i + 1 :]:
                if value.startswith("-"):
                    break
                out.append(value)
        elif a.startswith(("--configfile=", "--configfiles=")):
            out.append(a.split("=", 1)[1])
    return out


def run_cell(
    dataset: str,
    method: str,
    variant: str,
    run: str = "seed0",
    *,
    configfiles: list[str] = ("config/config.yaml",),
    dry_run: bool = False,
    force: bool = False,
    extra: list[str] | None = None,
) -> int:
    """Run exactly one cell's jobs through Snakemake (its training, if needed, and its evaluation).

    ``configfiles``: later ones overlay earlier ones (as Snakemake merges them).
    """
    from llbench import layout, workflow

    files = list(configfiles)
    cfg = workflow.load(files)
    cell = workflow.find_cell(cfg, dataset, method, variant, run)  # KeyError naming an unconfigured cell
    target = layout.metrics_json(cell.dataset, cell.method, cell.variant, cell.run)
    cmd = [str(Path(sys.executable).with_name("snakemake")), target, "--configfile", *files, "--cores", "all"]
    if dry_run:
        cmd.append("--dry-run")
    if force:  # recompute the cell's own jobs: its evaluation, and its training when it lives in this cell
        cmd += ["--forcerun", target]
        if cell.train_dir == cell.dir:
            cmd.append(cell.checkpoint_path)
    cmd += [a for a in (extra or []) if a != "--"]
    print(shlex.join(cmd), flush=True)
    return subprocess.call(cmd)
