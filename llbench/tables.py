"""Collect every ``metrics.json`` and profile into ``results/tables/*.csv`` (pandas).

* ``main.csv``: one row per (dataset, method, variant, source), seeds aggregated (mean, std, runs);
  ``source`` is ``trained`` or ``pretrained-<name>``. Cells expected by the config but absent are rows
  with ``status = missing`` and the path of their log.
* ``ablations.csv``: every variant next to its method's default variant on the same dataset, with deltas.
* ``profile.csv``: params, FLOPs, MACs, latency, peak memory per method, variant and input size.
* ``per_image.csv``: every image of every cell.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("llbench.tables")
KEYS = ["dataset", "method", "variant", "run"]
PRIMARY = ["psnr", "ssim", "niqe"]


def _cell_dirs(results: Path) -> list[Path]:
    return sorted(p.parent for p in results.glob("*/*/*/*/metrics.json") if p.parts[-5] not in ("profile", "tables", "report"))


def read_cells(results: Path, expected: list[str] | None = None) -> pd.DataFrame:
    """One row per cell run: metric means and intervals, flags, provenance summary, status."""
    rows: list[dict[str, Any]] = []
    seen = set()
    for d in _cell_dirs(results):
        try:
            m = json.loads((d / "metrics.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            log.warning("%s: unreadable metrics.json (%s)", d, e)
            continue
        dataset, method, variant, run = d.parts[-4:]
        seen.add(f"results/{dataset}/{method}/{variant}/{run}")
        prov = m.get("provenance", {})
        row = {"dataset": dataset, "method": method, "variant": variant, "run": run, "status": "ok",
               "images": m.get("images"), "seconds_per_image": m.get("seconds_per_image"),
               "untrained_vgg": bool(m.get("flags", {}).get("untrained_vgg", False)),
               "commit": prov.get("git", {}).get("commit"), "config_sha256": prov.get("config_sha256"),
               "data_sha256": (prov.get("data") or {}).get("manifest_sha256"), "seed": prov.get("seed"),
               "device": (prov.get("device") or {}).get("type"), "path": str(d)}
        for name, v in m.get("metrics", {}).items():
            row[name] = v.get("mean")
            ci = v.get("ci95") or [None, None]
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = ci
        rows.append(row)
    for cell in expected or []:
        if cell not in seen:
            dataset, method, variant, run = Path(cell).parts[-4:]
            rows.append({"dataset": dataset, "method": method, "variant": variant, "run": run, "status": "missing",
                         "path": cell, "log": f"logs/evaluate/{dataset}/{method}/{variant}/{run}.log"})
    return pd.DataFrame(rows)


def _source(run: str) -> str:
    return run if run.startswith("pretrained-") else "trained"


def aggregate(cells: pd.DataFrame) -> pd.DataFrame:
    """Seeds of the same (dataset, method, variant, source) -> mean, std and run count per metric."""
    if cells.empty:
        return cells
    cells = cells.assign(source=cells["run"].map(_source))
    metric_cols = [c for c in cells.columns if c in PRIMARY or c.startswith(("psnr_", "ssim_", "niqe_"))]
    metric_cols = [c for c in metric_cols if not c.endswith(("_ci_low", "_ci_high"))]
    out = []
    for key, g in cells.groupby(["dataset", "method", "variant", "source"], sort=False):
        ok = g[g["status"] == "ok"]
        row = dict(zip(["dataset", "method", "variant", "source"], key))
        row["runs"] = len(ok)
        row["status"] = "ok" if len(ok) == len(g) else ("missing" if ok.empty else "partial")
        row["untrained_vgg"] = bool(ok.get("untrained_vgg", pd.Series(dtype=bool)).any())
        row["cells"] = ";".join(g["path"].astype(str))
        for c in metric_cols:
            vals = pd.to_numeric(ok[c], errors="coerce").dropna() if c in ok else pd.Series(dtype=float)
            row[c] = float(vals.mean()) if len(vals) else np.nan
            row[f"{c}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else np.nan
            for side in ("ci_low", "ci_high"):
                col = f"{c}_{side}"
                v = pd.to_numeric(ok[col], errors="coerce").dropna() if col in ok else pd.Series(dtype=float)
                row[col] = float(v.mean()) if len(v) == 1 else np.nan
        out.append(row)
    return pd.DataFrame(out)


def ablations(main: pd.DataFrame) -> pd.DataFrame:
    """Each variant against its method's default variant on the same dataset and source."""
    import methods

    rows = []
    if main.empty:
        return pd.DataFrame(rows)
    for (dataset, method, source), g in main.groupby(["dataset", "method", "source"], sort=False):
        if len(g) < 2:
            continue
        try:
            m = methods.get(method)
            default = m.default_variant
        except KeyError:
            continue
        base = g[g["variant"].isin([default, "default"])]
        if base.empty:
            continue
        base = base.iloc[0]
        for _, r in g.iterrows():
            row = {"dataset": dataset, "method": method, "source": source, "variant": r["variant"],
                   "default_variant": base["variant"], "is_default": r["variant"] == base["variant"],
                   "doc": m.variant(r["variant"]).doc if r["variant"] in m.variants else ""}
            for c in PRIMARY:
                if c in g:
                    row[c] = r[c]
                    row[f"{c}_std"] = r.get(f"{c}_std")
                    row[f"{c}_delta"] = r[c] - base[c] if pd.notna(r[c]) and pd.notna(base[c]) else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def read_profiles(results: Path) -> pd.DataFrame:
    rows = []
    for p in sorted((results / "profile").glob("*/*.json")):
        try:
            prof = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            log.warning("%s: unreadable profile (%s)", p, e)
            continue
        for s in prof.get("sizes", []):
            h, w = s["size"]
            rows.append({"method": prof["method"], "variant": prof["variant"], "size": f"{h}x{w}",
                         **{k: s.get(k) for k in ("params", "flops", "macs", "macs_gib", "latency_ms",
                                                  "peak_mem_mb", "peak_mem_kind", "device")}})
    return pd.DataFrame(rows)


def read_per_image(cells: pd.DataFrame) -> pd.DataFrame:
    frames = []
    for _, c in cells[cells["status"] == "ok"].iterrows() if not cells.empty else []:
        f = Path(c["path"]) / "per_image.csv"
        if f.is_file():
            df = pd.read_csv(f, dtype={"id": str})
            frames.append(df.assign(**{k: c[k] for k in KEYS}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*KEYS, "id"])


def write_tables(results: Path, out: Path, cells: list[str] | None = None) -> dict[str, Path]:
    """Write the four tables (atomically) from whatever results exist; returns their paths."""
    from llbench.runtime import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    per_cell = read_cells(results, cells)
    main = aggregate(per_cell)
    tables = {"main": main, "ablations": ablations(main), "profile": read_profiles(results),
              "per_image": read_per_image(per_cell), "cells": per_cell}
    paths = {}
    for name, df in tables.items():
        paths[name] = out / f"{name}.csv"
        atomic_write_text(paths[name], df.to_csv(index=False))
    return paths
