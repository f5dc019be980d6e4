"""Released checkpoints and their verification: an author ships what a table was made from, a reviewer
re-runs any cell from it without training (README: "Reproduce a table cell as a reviewer").

``llbench release`` copies each cell's checkpoint, ``config.json``, ``metrics.json``, ``per_image.csv``,
the profiles and the tables into ``release/`` with a ``RELEASE.json`` index, and tracks the folder with
DVC (``release.dvc``; ``dvc push`` moves the bytes). ``llbench verify`` evaluates a released checkpoint on
the reviewer's copy of the dataset through the normal ``evaluate`` rule and compares each metric with
the claim.
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from llbench import layout
from llbench.data.manifest import MANIFEST, check_sha256, diff_manifests, listing, parse_manifest, sha256_file
from llbench.tables import RECORDS, TABLES

RELEASE = Path("release")
INDEX = "RELEASE.json"
FORMAT = "llbench-release-v1"


class ReleaseError(ValueError):
    """A cell cannot be released or verified; the message names the cell or file and what is wrong."""


def _key(dataset: str, method: str, variant: str, run: str) -> str:
    return f"{dataset}/{method}/{variant}/{run}"


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


# ---- the author's side ---------------------------------------------------------------------------------
def release(
    configfiles: list[str],
    out: Path = RELEASE,
    *,
    cells: list[str] | None = None,
    outputs: bool = False,
    dvc: bool = True,
) -> Path:
    """Collect the cells of ``configfiles`` (or the ``cells`` named ``dataset/method/variant/run``) into ``out``.

    Refuses, before writing anything, cells without results (metrics, per-image table, profile, checkpoint
    and its training config), a table without ``results/tables``, cells trained with an untrained VGG, and
    cells whose recorded data manifest differs from the dataset's current one.
    """
    from llbench import workflow
    from llbench.data.manifest import manifest_hash

    cfg = workflow.load(configfiles)
    all_cells = {_key(c.dataset, c.method, c.variant, c.run): c for c in workflow.cells(cfg)}
    wanted = list(all_cells) if cells is None else cells
    unknown = [k for k in wanted if k not in all_cells]
    if unknown:
        raise ReleaseError(f"no such cells in {', '.join(configfiles)}: {', '.join(unknown)}")
    problems, entries, datasets = [], {}, {}
    for key in wanted:
        c = all_cells[key]
        metrics_file = Path(layout.metrics_json(c.dataset, c.method, c.variant, c.run))
        if not metrics_file.is_file():
            problems.append(f"{key}: incomplete (no {metrics_file})")
            continue
        m = json.loads(metrics_file.read_text())
        if m.get("flags", {}).get("untrained_vgg"):
            problems.append(f"{key}: trained with an untrained VGG perceptual loss (smoke only)")
        root = Path(cfg["datasets"][c.dataset]["root"])
        recorded = (m["provenance"].get("data") or {}).get("manifest_sha256")
        current = manifest_hash(root) if (root / MANIFEST).is_file() else None
        if recorded is None or recorded != current:
            problems.append(f"{key}: computed from data manifest {recorded}, but {root} now has {current}")
        needed = [Path(c.dir) / "per_image.csv", Path(layout.profile(c.method, c.variant))]
        if c.checkpoint_path is not None:
            needed.append(Path(c.checkpoint_path))
        if c.checkpoint is None and c.train_dir is not None:
            needed.append(Path(c.train_dir) / "config.json")
        problems += [f"{key}: incomplete (no {f})" for f in needed if not f.is_file()]
        entries[key] = (c, m)
        datasets[c.dataset] = (root, current)
    main_table = f"{layout.TABLES}/main.csv"
    if not Path(main_table).is_file():
        problems.append(f"{main_table}: no tables (run `snakemake {main_table}` first)")
    if problems:
        raise ReleaseError("cannot release:\n  " + "\n  ".join(problems))

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    index_cells = {}
    for key, (c, m) in entries.items():
        ckpt = c.checkpoint_path
        bundle = Path("cells") / key
        for name in ("metrics.json", "per_image.csv"):
            _copy(Path(c.dir) / name, tmp / bundle / name)
        if outputs:
            shutil.copytree(Path(c.dir) / "outputs", tmp / bundle / "outputs")
        released_ckpt = None
        if ckpt is not None:
            train_key = str(Path(ckpt).parent.relative_to(layout.RESULTS)) if c.checkpoint is None else key
            released_ckpt = Path("cells") / train_key / "checkpoint.pt"
            if not (tmp / released_ckpt).exists():
                _copy(Path(ckpt), tmp / released_ckpt)
                if c.checkpoint is None:  # the training run's config and provenance
                    _copy(Path(ckpt).parent / "config.json", tmp / released_ckpt.parent / "config.json")
        prov = m["provenance"]
        index_cells[key] = {
            "dataset": c.dataset,
            "method": c.method,
            "variant": c.variant,
            "run": c.run,
            "files": str(bundle),
            "checkpoint": str(released_ckpt) if released_ckpt else None,
            "checkpoint_sha256": sha256_file(tmp / released_ckpt) if released_ckpt else None,
            "config_sha256": prov["config_sha256"],
            "data_manifest_sha256": prov["data"]["manifest_sha256"],
            "commit": prov["git"]["commit"],
            "seed": prov.get("seed"),
            "device": prov["device"],
            "packages": prov["packages"],
            "infer": c.infer,
            "metrics": {k: v["mean"] for k, v in m["metrics"].items()},
        }
    for name, (root, _) in datasets.items():
        _copy(root / MANIFEST, tmp / "data" / f"{name}.{MANIFEST}")
    for method, variant in sorted({(c.method, c.variant) for c, _ in entries.values()}):
        _copy(Path(layout.profile(method, variant)), tmp / "profile" / method / f"{variant}.json")
    for name in [*(f"{t}.csv" for t in TABLES), RECORDS]:
        _copy(Path(layout.TABLES) / name, tmp / "tables" / name)
    from llbench import provenance

    index = {
        "format": FORMAT,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git": provenance.git_info(),
        "config": cfg,
        "datasets": {
            name: {"manifest_sha256": digest, "manifest": f"data/{name}.{MANIFEST}"}
            for name, (_, digest) in datasets.items()
        },
        "cells": index_cells,
    }
    (tmp / INDEX).write_text(json.dumps(index, indent=1, sort_keys=True, default=str) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    if dvc:
        from llbench.data.stage import dvc_executable

        done = subprocess.run([dvc_executable(), "add", "-q", str(out)], capture_output=True, text=True)
        if done.returncode != 0:
            raise ReleaseError(f"`dvc add {out}` failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return out


# ---- the reviewer's side -------------------------------------------------------------------------------
def load_index(release_dir: Path = RELEASE) -> dict[str, Any]:
    path = Path(release_dir) / INDEX
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no release index; fetch it with `dvc pull {path}`")
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT:
        raise ReleaseError(f"{path}: format {index.get('format')!r}, expected {FORMAT!r}")
    return index


def select(index: dict[str, Any], names: list[str], all_cells: bool) -> list[str]:
    """Cell keys from ``dataset [method variant [run]]`` (a dataset alone: its whole table) or ``--all``."""
    keys = sorted(index["cells"])
    if all_cells:
        return keys
    if not names:
        raise ReleaseError("name a cell (dataset method variant [run]), a table (dataset) or --all")
    prefix = "/".join(names + (["seed0"] if len(names) == 3 else []))
    chosen = [k for k in keys if k == prefix or k.startswith(prefix + "/")]
    if not chosen:
        raise ReleaseError(f"no released cell matches {prefix}; released: {', '.join(keys)}")
    return chosen


def compare(
    claimed: dict[str, float | None], rerun: dict[str, float | None], claimed_device: str, device: str
) -> list[dict]:
    """One row per claimed metric: claimed, re-run, |Δ|, tolerance, status (ok / FAIL / no tolerance).

    On the claimed device type a re-run must be identical at the report's printed decimals; across device
    types no tolerance has been measured (``tolerance`` None), so the verdict is "no tolerance", not a pass.
    """
    from llbench.report import metric_info

    rows = []
    for name, want in sorted(claimed.items()):
        got = rerun.get(name)
        d = int(metric_info(name)["decimals"])
        tol = f"identical at {d} decimals" if claimed_device == device else None
        delta = None if want is None or got is None else abs(got - want)
        if delta is None:
            status = "ok" if want is None and got is None else "FAIL"
        elif tol is None:
            status = "no tolerance"
        else:
            status = "ok" if round(got, d) == round(want, d) else "FAIL"
        rows.append({"metric": name, "claimed": want, "rerun": got, "delta": delta, "tolerance": tol, "status": status})
    return rows


def _snakemake(targets: list[str], configfiles: list[str], extra: list[str], log: Path) -> int:
    from llbench.workflow import REPO

    cmd = [str(Path(sys.executable).with_name("snakemake")), *targets, "-s", str(REPO / "Snakefile")]
    cmd += ["--configfile", *configfiles, "--cores", "all", *extra]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        return subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)


def _data_differences(released_manifest: Path, stamp: Path) -> list[str]:
    """What differs between the reviewer's copy of a dataset and the released manifest (files named)."""
    from llbench.data import stage

    if not released_manifest.is_file():
        raise FileNotFoundError(f"{released_manifest}: released manifest missing; `dvc pull {released_manifest}`")
    root = Path(json.loads(Path(stamp).read_text())["root"])
    diff = diff_manifests(parse_manifest(released_manifest), parse_manifest(root / MANIFEST))
    out = [
        f"{root}: {label}: {listing(names)}"
        for label, names in (
            ("differ", diff.corrupt),
            ("are missing", diff.missing),
            ("are not in the release", diff.extra),
        )
        if names
    ]
    if not out:  # same manifest: are the reviewer's files still the bytes it lists? (fast path)
        try:
            stage.verify(stamp)
        except stage.DatasetChanged as e:
            out.append(str(e))
    return out


def verify_cell(
    index: dict[str, Any],
    key: str,
    base: Path,
    *,
    release_dir: Path = RELEASE,
    overlays: list[str] = (),
    retrain: bool = False,
) -> dict[str, Any]:
    """Re-run one released cell (and, with ``retrain``, retrain it); returns the verification record.

    ``base``: the released config as a file; ``overlays``: the reviewer's config files on top of it.
    """
    from llbench import workflow

    cell = index["cells"][key]
    ds, method, variant, run = cell["dataset"], cell["method"], cell["variant"], cell["run"]
    work = Path(layout.VERIFY)
    log = Path(layout.verify_log(key))
    log.unlink(missing_ok=True)
    record: dict[str, Any] = {
        "cell": key,
        "claimed_device": str(cell["device"].get("type", "cpu")),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "log": str(log),
        "problems": [],
    }
    ckpt = Path(release_dir) / cell["checkpoint"] if cell["checkpoint"] else None
    if ckpt is not None:
        if not ckpt.is_file():
            raise FileNotFoundError(f"{ckpt}: released checkpoint not here; fetch it with `dvc pull {ckpt}`")
        check_sha256(ckpt, cell["checkpoint_sha256"], source=INDEX)
    name = f"verify-{run}"
    if ckpt is not None:
        pre = {"method": method, "variant": variant, "checkpoint": str(ckpt), "sha256": cell["checkpoint_sha256"]}
        overlay = {"experiments": [], "pretrained": {name: {**pre, "datasets": [ds], "infer": cell["infer"]}}}
        target_dir = layout.cell_dir(ds, method, variant, f"pretrained-{name}")
    else:  # a cell without weights (the input baseline): the same cell, recomputed
        exp = {"method": method, "datasets": [ds], "variants": [variant], "seeds": [cell["seed"] or 0]}
        overlay = {"experiments": [{**exp, "infer": cell["infer"]}], "pretrained": {}}
        target_dir = layout.cell_dir(ds, method, variant, run)
    overlay_file = work / "overlays" / f"{key.replace('/', '__')}.yaml"
    overlay_file.parent.mkdir(parents=True, exist_ok=True)
    overlay_file.write_text(yaml.safe_dump(overlay, sort_keys=False))
    files = [str(base), *overlays, str(overlay_file)]
    cfg = workflow.load(files)
    root = Path(cfg["datasets"][ds]["root"])
    # 1. the reviewer's copy of the dataset, against the released manifest, before anything is computed
    if _snakemake([layout.stamp(ds)], files, [], log) != 0:
        raise ReleaseError(f"{key}: dataset {ds!r} could not be staged; see {log}")
    released_manifest = Path(release_dir) / index["datasets"][ds]["manifest"]
    differences = _data_differences(released_manifest, Path(layout.stamp(ds)))
    record["data"] = {"root": str(root), "released_manifest_sha256": index["datasets"][ds]["manifest_sha256"]}
    if differences:
        record["problems"] = [f"dataset {ds!r} is not the released one, nothing computed: {d}" for d in differences]
        record["passed"] = False
        return record
    record["data"]["manifest_sha256"] = index["datasets"][ds]["manifest_sha256"]
    # 2. the released checkpoint through the normal evaluate rule (no training job)
    target = f"{target_dir}/metrics.json"
    if _snakemake([target], files, ["--forcerun", target], log) != 0:
        raise ReleaseError(f"{key}: the evaluation failed; see {log}")
    rerun = json.loads(Path(target).read_text())
    device = rerun["provenance"]["device"]["type"]
    record.update(device=device, rerun_cell=target_dir)
    record["rows"] = compare(
        cell["metrics"], {k: v["mean"] for k, v in rerun["metrics"].items()}, record["claimed_device"], device
    )
    # 3. optionally: train the cell again from scratch with the released config and seed
    if retrain and ckpt is not None and run.startswith("seed"):
        cells = {c.dir: c for c in workflow.cells(workflow.load([str(base), *overlays]))}
        c = cells[layout.cell_dir(*layout.parse_cell_dir(key))]
        trained = c.checkpoint_path
        target = layout.metrics_json(c.dataset, c.method, c.variant, c.run)
        if _snakemake([target], [str(base), *overlays], ["--forcerun", trained, target], log) != 0:
            raise ReleaseError(f"{key}: retraining failed; see {log}")
        again = json.loads(Path(target).read_text())
        record["retrain"] = {
            "rows": compare(
                cell["metrics"],
                {k: v["mean"] for k, v in again["metrics"].items()},
                record["claimed_device"],
                again["provenance"]["device"]["type"],
            ),
            "checkpoint_identical": sha256_file(Path(trained)) == cell["checkpoint_sha256"],
        }
    statuses = [r["status"] for r in record["rows"] + record.get("retrain", {}).get("rows", [])]
    record["passed"] = all(s == "ok" for s in statuses)
    return record


def _fmt(v: float | None, d: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{d}f}"


def format_record(r: dict[str, Any]) -> str:
    """The console table of one verification: claimed vs re-run per metric, |Δ|, tolerance, status."""
    head = f"{r['cell']}: claimed on {r['claimed_device']}" + (f", re-run on {r['device']}" if "device" in r else "")
    lines = [head]
    lines += [f"  {p}" for p in r["problems"]]
    for label, rows in (("checkpoint", r.get("rows", [])), ("retrained", r.get("retrain", {}).get("rows", []))):
        if not rows:
            continue
        lines.append(f"  {label}: {'metric':<14} {'claimed':>10} {'re-run':>10} {'|Δ|':>10}  tolerance")
        for row in rows:
            tol = row["tolerance"] or "none measured for this pair"
            lines.append(
                f"  {'':<{len(label)}}  {row['metric']:<14} {_fmt(row['claimed']):>10} {_fmt(row['rerun']):>10} "
                f"{_fmt(row['delta'], 6):>10}  {tol}  {row['status']}"
            )
    if "retrain" in r:
        lines.append(
            f"  retrained checkpoint bit-identical to the released one: {r['retrain']['checkpoint_identical']}"
        )
    lines.append(f"  {'PASSED' if r['passed'] else 'FAILED'} (log: {r['log']})")
    return "\n".join(lines)


def verify(
    names: list[str],
    *,
    all_cells: bool = False,
    release_dir: Path = RELEASE,
    overlays: list[str] = (),
    retrain: bool = False,
) -> int:
    """``llbench verify``: 0 when every selected cell is within tolerance, 1 otherwise."""
    from llbench.runtime import atomic_write_json

    index = load_index(release_dir)
    keys = select(index, names, all_cells)
    base = Path(layout.VERIFY) / "release-config.yaml"
    base.parent.mkdir(parents=True, exist_ok=True)
    base.write_text(yaml.safe_dump(index["config"], sort_keys=False))
    ok = True
    for key in keys:
        record = verify_cell(index, key, base, release_dir=release_dir, overlays=list(overlays), retrain=retrain)
        atomic_write_json(Path(layout.VERIFY) / f"{key}.json", record)
        print(format_record(record), flush=True)
        ok &= record["passed"]
    tables = Path(release_dir) / "tables"
    if (tables / "main.csv").is_file():  # the released tables with every verification so far
        from llbench.report import render

        print(f"report: {render(tables, Path(layout.REPORT), results=Path(layout.RESULTS))}")
    return 0 if ok else 1
