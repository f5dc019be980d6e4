"""Collect every ``metrics.json``, profile and training log into ``results/tables/*.csv`` (pandas).

* ``cells.csv``: one row per cell run (``results/<dataset>/<method>/<variant>/<run>``): metric means and
  bootstrap intervals, provenance (commit, config hash, data manifest hash, seed, device, packages), the
  exact command that re-runs it and its logs. Cells that failed (a log but no ``metrics.json``) or that the
  config expects but are absent get ``status = failed`` / ``missing`` and the path of their log.
* ``main.csv``: one row per (dataset, method, variant, source), seeds aggregated (mean, std, runs);
  ``source`` is ``trained``, ``baseline`` (methods that need no training, such as ``input``) or
  ``pretrained-<name>``. Ordered: ``input`` first, then the registry's order, default variant first.
* ``ablations.csv``: every variant next to its method's default variant on the same dataset, with deltas.
* ``profile.csv``: params, FLOPs, MACs, latency, peak memory per method, variant and input size.
* ``per_image.csv``: every image of every cell. ``train_log.csv``: every training log.

Metrics that do not apply stay empty (NaN), never 0.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llbench import layout
from llbench.vocabulary import order_columns

log = logging.getLogger("llbench.tables")
KEYS = ["dataset", "method", "variant", "run"]
GROUP = ["dataset", "method", "variant", "source"]
#: the tables written to results/tables/<name>.csv
TABLES = ("main", "ablations", "profile", "per_image", "cells", "train_log")
#: every cell with its provenance as typed JSON records (nested flags, device, packages; lists; booleans)
RECORDS = "cells.jsonl"
#: the cells' nested fields: in the records only (cells.csv stays flat)
NESTED = ("flags", "device_info", "packages", "secondary", "not_applicable")
_RUN = re.compile(r"seed(\d+)|pretrained-.+")


def run_source(method: str, run: str) -> str:
    """``pretrained-<name>``, ``baseline`` (a method without training, e.g. ``input``) or ``trained``."""
    if run.startswith("pretrained-"):
        return run
    import methods

    try:
        return "trained" if methods.get(method).trained else "baseline"
    except KeyError:
        return "trained"


def _variant_order(method: str, variant: str) -> int:
    import methods

    try:
        m = methods.get(method)
    except KeyError:
        return 0
    if variant == m.default_variant:
        return -1
    return list(m.variants).index(variant) if variant in m.variants else len(m.variants)


def order(df: pd.DataFrame, cells: list[str] | None = None) -> pd.DataFrame:
    """Rows in the config's order: by dataset and method as ``cells`` (the config's cell folders) first name
    them, baselines (``input``) first, the default variant first, then the method's own variant order."""
    if df.empty:
        return df
    parsed = [layout.parse_cell_dir(c) for c in cells or []]
    ds = list(dict.fromkeys([*(p[0] for p in parsed), *df["dataset"]]))
    ms = list(dict.fromkeys([*(p[1] for p in parsed), *sorted(set(df["method"]))]))
    key = pd.DataFrame(
        {
            "_d": df["dataset"].map(ds.index),
            "_b": df["method"].map(lambda m: run_source(m, "seed0") != "baseline"),
            "_m": df["method"].map(ms.index),
            "_v": [_variant_order(m, v) for m, v in zip(df["method"], df["variant"], strict=True)],
            "_vn": df["variant"],
            "_r": df["run"].map(_run_order) if "run" in df else df.get("source", pd.Series("", index=df.index)),
        },
        index=df.index,
    )
    return df.loc[key.sort_values(list(key.columns), kind="stable").index].reset_index(drop=True)


def _run_order(run: str) -> tuple[int, int, str]:
    m = re.fullmatch(r"seed(\d+)", str(run))
    return (0, int(m.group(1)), "") if m else (1, 0, str(run))


def _tail(path: Path, lines: int = 4, chars: int = 400) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = [ln.rstrip() for ln in text.splitlines() if ln.strip()][-lines:]
    return "\n".join(kept)[-chars:]


def _cell_dirs(results: Path) -> list[Path]:
    return sorted(
        p.parent for p in results.glob("*/*/*/*/metrics.json") if p.parts[-5] not in ("profile", "tables", "report")
    )


def _train_log_for(row: dict[str, Any]) -> str | None:
    td = row.get("train_dataset")
    return layout.train_log(td, row["method"], row["variant"], row["run"]) if td else None


def _failure(root: Path, results: Path, dataset: str, method: str, variant: str, run: str) -> dict[str, Any]:
    """Status of a cell without ``metrics.json``: ``failed`` (a log says it ran) or ``missing``."""
    eval_log = layout.eval_log(dataset, method, variant, run)
    out: dict[str, Any] = {"status": "missing", "eval_log": eval_log, "stage": ""}
    # training failures: a training log whose checkpoint never appeared (same dataset first: train_on aside)
    train_logs = sorted(
        (root / "logs" / "train").glob(f"*/{method}/{variant}/{run}.log"), key=lambda p: p.parts[-4] != dataset
    )
    for tl in train_logs:
        td = tl.parts[-4]
        if not (root / layout.checkpoint(td, method, variant, run)).is_file():
            out.update(
                status="failed",
                stage="train",
                train_log=layout.train_log(td, method, variant, run),
                train_dataset=td,
                error=_tail(tl),
            )
            return out
    if (root / eval_log).is_file():
        out.update(status="failed", stage="evaluate", error=_tail(root / eval_log))
    return out


def _native(spec_ds: dict[str, Any], per_image: Path) -> str | None:
    size = spec_ds.get("native_size")
    if size:
        return f"{int(size[0])}x{int(size[1])}"
    try:
        first = pd.read_csv(per_image, nrows=1)
        return f"{int(first['height'][0])}x{int(first['width'][0])}"
    except (OSError, KeyError, ValueError, pd.errors.EmptyDataError):
        return None


def read_cells(results: Path, expected: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """One row per cell run: metric means and intervals, flags, provenance, commands, status and logs.

    ``expected``: the config's cells (:meth:`llbench.workflow.Cell.record`); absent ones become ``missing``
    rows (``failed`` when their log exists), with the kind and tiny flag the config gives them.
    """
    results = Path(results)
    root = results.parent
    rows: list[dict[str, Any]] = []
    seen = set()
    for d in _cell_dirs(results):
        dataset, method, variant, run = d.parts[-4:]
        cid = layout.cell_dir(dataset, method, variant, run)
        try:
            m = json.loads((d / "metrics.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            log.warning("%s: unreadable metrics.json (%s)", d, e)
            continue
        seen.add(cid)
        prov = m.get("provenance") or {}
        spec = prov.get("spec") or {}
        spec_ds = spec.get("dataset") or {}
        data = prov.get("data") or {}
        dev = prov.get("device") or {}
        flags = {**(prov.get("flags") or {}), **(m.get("flags") or {})}
        cell = m.get("cell") or {}
        row: dict[str, Any] = {
            "dataset": dataset,
            "method": method,
            "variant": variant,
            "run": run,
            "status": "ok",
            "stage": "",
            "kind": data.get("kind") or spec_ds.get("kind"),
            "tiny": "tiny" in spec_ds,
            "native_size": _native(spec_ds, d / "per_image.csv"),
            "train_dataset": cell.get("train_dataset"),
            "data_root": data.get("root") or spec_ds.get("root"),
            "test_split": spec_ds.get("test"),
            "images": m.get("images"),
            "seconds_per_image": m.get("seconds_per_image"),
            "untrained_vgg": bool(flags.get("untrained_vgg", False)),
            "flags": flags,
            "commit": (prov.get("git") or {}).get("commit"),
            "dirty": (prov.get("git") or {}).get("dirty"),
            "config_sha256": prov.get("config_sha256"),
            "data_sha256": data.get("manifest_sha256"),
            "data_source": data.get("source"),
            "seed": prov.get("seed"),
            "device": " ".join(str(v) for v in (dev.get("type"), dev.get("name")) if v) or None,
            "device_info": dev,
            "packages": prov.get("packages") or {},
            "checkpoint": (m.get("checkpoint") or {}).get("path"),
            "checkpoint_format": (m.get("checkpoint") or {}).get("format"),
            "secondary": list((m.get("protocol") or {}).get("secondary", [])),
            "not_applicable": list(m.get("not_applicable") or []),
            "path": cid,
            "eval_log": layout.eval_log(dataset, method, variant, run),
        }
        row["train_log"] = _train_log_for(row)
        tl = results / row["train_dataset"] / method / variant / run / "train_log.csv" if row["train_dataset"] else None
        row["train_log_csv"] = str(tl.relative_to(root)) if tl is not None and tl.is_file() else None
        for name, v in (m.get("metrics") or {}).items():
            row[name] = v.get("mean")
            ci = v.get("ci95") or [None, None]
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = ci
            row[f"{name}_n"] = v.get("n")
        rows.append(row)
    # cells that ran and failed (an evaluation log but no metrics.json, or a training log but no checkpoint),
    # then the config's missing ones
    candidates = [
        layout.cell_dir(*p.relative_to(root / "logs" / "evaluate").with_suffix("").parts)
        for p in sorted((root / "logs" / "evaluate").glob("*/*/*/*.log"))
    ]
    for p in sorted((root / "logs" / "train").glob("*/*/*/*.log")):
        rel = p.relative_to(root / "logs" / "train").with_suffix("")
        if not (results / rel / "checkpoint.pt").is_file():
            candidates.append(layout.cell_dir(*rel.parts))
    known = {r["path"]: r for r in expected or []}
    for cid in [*candidates, *known]:
        parts = Path(cid).parts[-4:]
        if cid in seen or len(parts) != 4 or not _RUN.fullmatch(parts[3]):
            continue
        seen.add(cid)
        dataset, method, variant, run = parts
        info = _failure(root, results, dataset, method, variant, run)
        facts = {k: known[cid][k] for k in ("kind", "tiny") if cid in known}
        rows.append(
            {
                "dataset": dataset,
                "method": method,
                "variant": variant,
                "run": run,
                "path": cid,
                **facts,
                "untrained_vgg": False,
                **info,
            }
        )
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df = df.assign(source=[run_source(m, r) for m, r in zip(df["method"], df["run"], strict=True)])
    df["target"] = [f"{p}/metrics.json" for p in df["path"]]
    return order(df, list(known))


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Metric names present in a cells/main table (every column with a ``_ci_low`` partner)."""
    return order_columns(c[: -len("_ci_low")] for c in df.columns if c.endswith("_ci_low"))


def _numeric(frame: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(frame[col], errors="coerce") if col in frame else pd.Series(dtype=float)


def aggregate(cells: pd.DataFrame) -> pd.DataFrame:
    """Seeds of the same (dataset, method, variant, source) -> mean, std and run count per metric.

    ``<metric>_ci_low/_ci_high`` is the cell's bootstrap interval when there is one run, NaN otherwise
    (the report shows every seed's interval from ``cells.csv``).
    """
    if cells.empty:
        return pd.DataFrame(columns=[*GROUP, "runs", "status"])
    metric_cols = metric_columns(cells)
    out = []
    for key, g in cells.groupby(GROUP, sort=False):
        ok = g[g["status"] == "ok"]
        row: dict[str, Any] = dict(zip(GROUP, key, strict=True))
        row["runs"] = len(ok)
        row["expected_runs"] = len(g)
        if len(ok) == len(g):
            row["status"] = "ok"
        elif ok.empty:
            row["status"] = "failed" if (g["status"] == "failed").any() else "missing"
        else:
            row["status"] = "partial"
        first = (ok if not ok.empty else g).iloc[0]
        for c in ("kind", "tiny", "native_size", "train_dataset"):
            row[c] = first.get(c)
        row["untrained_vgg"] = bool(ok["untrained_vgg"].fillna(False).astype(bool).any()) if not ok.empty else False
        row["seeds"] = ";".join(str(r) for r in g["run"])
        row["cells"] = ";".join(g["path"].astype(str))
        for c in metric_cols:
            vals = _numeric(ok, c).dropna()
            row[c] = float(vals.mean()) if len(vals) else np.nan
            row[f"{c}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else np.nan
            for side in ("ci_low", "ci_high"):
                v = _numeric(ok, f"{c}_{side}").dropna()
                row[f"{c}_{side}"] = float(v.iloc[0]) if len(vals) == 1 and len(v) == 1 else np.nan
        out.append(row)
    return pd.DataFrame(out)


def ablations(main: pd.DataFrame) -> pd.DataFrame:
    """Each variant against its method's default variant on the same dataset and source (methods with >1 variant)."""
    import methods

    rows = []
    if main.empty:
        return pd.DataFrame(rows)
    metric_cols = [c for c in main.columns if f"{c}_ci_low" in main.columns]
    for (dataset, method, src), g in main.groupby(["dataset", "method", "source"], sort=False):
        if g["variant"].nunique() < 2:
            continue
        try:
            m = methods.get(method)
        except KeyError:
            continue
        default = m.default_variant
        base_rows = g[(g["variant"] == default) & (g["status"] != "missing") & (g["status"] != "failed")]
        base = base_rows.iloc[0] if not base_rows.empty else None
        for _, r in g.iterrows():
            try:
                doc = m.variant(r["variant"]).doc
            except KeyError:
                doc = ""
            row = {
                "dataset": dataset,
                "method": method,
                "source": src,
                "variant": r["variant"],
                "default_variant": default,
                "is_default": r["variant"] == default,
                "default_present": base is not None,
                "doc": doc,
                "status": r["status"],
                "runs": r["runs"],
                "tiny": r.get("tiny"),
                "cells": r.get("cells"),
            }
            for c in metric_cols:
                row[c] = r[c]
                row[f"{c}_std"] = r.get(f"{c}_std")
                row[f"{c}_ci_low"], row[f"{c}_ci_high"] = r.get(f"{c}_ci_low"), r.get(f"{c}_ci_high")
                ok = base is not None and pd.notna(r[c]) and pd.notna(base[c])
                row[f"{c}_delta"] = float(r[c] - base[c]) if ok else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def read_profiles(results: Path) -> pd.DataFrame:
    rows = []
    for p in sorted((Path(results) / "profile").glob("*/*.json")):
        try:
            prof = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            log.warning("%s: unreadable profile (%s)", p, e)
            continue
        for s in prof.get("sizes", []):
            h, w = s["size"]
            row = {
                "method": prof["method"],
                "variant": prof["variant"],
                "size": f"{h}x{w}",
                **{
                    k: s.get(k)
                    for k in (
                        "params",
                        "flops",
                        "macs",
                        "macs_gib",
                        "latency_ms",
                        "latency_p10_ms",
                        "latency_p90_ms",
                        "peak_mem_mb",
                        "peak_mem_kind",
                        "device",
                        "device_name",
                    )
                },
            }
            row["gflops"] = s["flops"] / 1e9 if s.get("flops") is not None else np.nan
            row["path"] = str(p.relative_to(Path(results).parent)) if Path(results).parent in p.parents else str(p)
            rows.append(row)
    return pd.DataFrame(rows)


def read_per_image(cells: pd.DataFrame, results: Path) -> pd.DataFrame:
    frames = []
    if not cells.empty:
        for _, c in cells[cells["status"] == "ok"].iterrows():
            f = Path(results).parent / c["path"] / "per_image.csv"
            if f.is_file():
                try:
                    df = pd.read_csv(f, dtype={"id": str})
                except (pd.errors.EmptyDataError, pd.errors.ParserError) as e:
                    log.warning("%s: unreadable (%s)", f, e)
                    continue
                frames.append(df.assign(**{k: c[k] for k in KEYS}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*KEYS, "id"])


def read_train_logs(results: Path) -> pd.DataFrame:
    """Every ``train_log.csv`` (columns depend on the method's losses), keyed by the training cell."""
    frames = []
    for f in sorted(Path(results).glob("*/*/*/*/train_log.csv")):
        dataset, method, variant, run = f.parent.parts[-4:]
        try:
            df = pd.read_csv(f)
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as e:
            log.warning("%s: unreadable (%s)", f, e)
            continue
        frames.append(df.assign(dataset=dataset, method=method, variant=variant, run=run))
    if not frames:
        return pd.DataFrame(columns=[*KEYS, "iteration"])
    df = pd.concat(frames, ignore_index=True)
    return df[[*KEYS, *[c for c in df.columns if c not in KEYS]]]


def write_tables(results: Path, out: Path, cells: list[dict[str, Any]] | None = None) -> dict[str, Path]:
    """Write the tables (atomically) from whatever results exist; returns their paths.

    Args:
        results: the ``results`` folder (logs are read from ``<results>/../logs``).
        out: where the CSV files go.
        cells: the cells the config expects (:meth:`llbench.workflow.Cell.record`); absent ones become
            ``missing`` rows (or ``failed`` when their log exists).
    """
    from llbench.runtime import atomic_write_text

    results, out = Path(results), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    per_cell = read_cells(results, cells)
    main = aggregate(per_cell)
    tables = {
        "main": main,
        "ablations": ablations(main),
        "profile": read_profiles(results),
        "per_image": read_per_image(per_cell, results),
        "cells": per_cell,
        "train_log": read_train_logs(results),
    }
    paths = {}
    for name, df in tables.items():
        paths[name] = out / f"{name}.csv"
        flat = df.drop(columns=[c for c in NESTED if c in df]) if name == "cells" else df
        atomic_write_text(paths[name], flat.to_csv(index=False))
    paths["records"] = out / RECORDS
    records = per_cell.astype(object).where(per_cell.notna(), None).to_dict("records")
    atomic_write_text(paths["records"], "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return paths


def read_table(tables: Path, name: str) -> pd.DataFrame:
    """One table as ``write_tables`` wrote it (empty when absent): booleans are booleans, ids and runs text."""
    try:
        return pd.read_csv(Path(tables) / f"{name}.csv", dtype={"run": str, "seeds": str, "id": str})
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def read_records(tables: Path) -> pd.DataFrame:
    """The cells with their provenance from ``cells.jsonl``: the types as written, nested fields as dicts and lists."""
    path = Path(tables) / RECORDS
    if not path.is_file():
        return pd.DataFrame()
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return pd.DataFrame.from_records(records) if records else pd.DataFrame()


def expected_cells(configfile: Path | str | list[Path | str]) -> list[dict[str, Any]]:
    """The cells a config (one file or several, merged in order) expects, as :meth:`Cell.record` records."""
    from llbench import workflow

    return [c.record() for c in workflow.cells(workflow.load(configfile))]
