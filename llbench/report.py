"""The HTML report: Python builds a plain context from the tables, small Jinja2 templates lay it out.

One :class:`jinja2.Environment` (autoescape on) lives here; number formatting is done by filters, so
templates stay free of logic. Missing values render as "n/a", never as 0.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from llbench.workflow import REPO

TEMPLATES = REPO / "report" / "templates"
ASSETS = REPO / "report" / "assets"
#: metric column -> (label, higher is better, decimals)
COLUMNS = {
    "psnr": ("PSNR (dB)", True, 2), "ssim": ("SSIM", True, 4), "niqe": ("NIQE", False, 3),
    "psnr_gtmean": ("PSNR GT-mean", True, 2), "ssim_gtmean": ("SSIM GT-mean", True, 4),
    "psnr_paper": ("PSNR (paper protocol)", True, 2), "psnr_skimage": ("PSNR (method protocol)", True, 2),
    "ssim_skimage": ("SSIM (method protocol)", True, 4),
}
TASKS = {"enhance": "Low-light enhancement", "raw": "Raw low-light (SID protocol)", "denoise": "Real-world denoising"}


def fmt(value: Any, decimals: int = 2) -> str:
    """A number with ``decimals`` places; NaN / None -> ``n/a``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (int, float)):
        return f"{value:,.{decimals}f}"
    return str(value)


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    return env


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def _task(method: str) -> str:
    import methods

    try:
        return methods.get(method).task
    except KeyError:
        return "enhance"


def context(tables: Path) -> dict[str, Any]:
    """Everything the templates show, as plain lists and dicts."""
    main, abl, prof = _read(tables / "main.csv"), _read(tables / "ablations.csv"), _read(tables / "profile.csv")
    p256 = prof[prof["size"] == "256x256"].set_index(["method", "variant"]) if not prof.empty else pd.DataFrame()
    sections = []
    if not main.empty:
        main = main.assign(task=main["method"].map(_task))
        for task, label in TASKS.items():
            t = main[main["task"] == task]
            if t.empty:
                continue
            cols = [c for c in COLUMNS if c in t and t[c].notna().any()]
            for dataset, g in t.groupby("dataset", sort=False):
                best = {}
                for c in cols:
                    vals = g[c].dropna()
                    if len(vals) and c in COLUMNS:
                        best[c] = vals.max() if COLUMNS[c][1] else vals.min()
                rows = []
                for _, r in g.iterrows():
                    key = (r["method"], r["variant"])
                    pr = p256.loc[key] if key in p256.index else None
                    rows.append({
                        "method": r["method"], "variant": r["variant"], "source": r["source"], "runs": r["runs"],
                        "status": r["status"], "untrained_vgg": bool(r.get("untrained_vgg", False)),
                        "cells": str(r.get("cells", "")).split(";"),
                        "metrics": [{"value": r.get(c), "std": r.get(f"{c}_std"), "decimals": COLUMNS[c][2],
                                     "ci": (r.get(f"{c}_ci_low"), r.get(f"{c}_ci_high")),
                                     "best": c in best and r.get(c) == best[c]} for c in cols],
                        "params": None if pr is None else pr["params"],
                        "gflops": None if pr is None else pr["flops"] / 1e9,
                        "latency_ms": None if pr is None else pr["latency_ms"],
                    })
                sections.append({"task": label, "dataset": dataset, "columns": [COLUMNS[c][0] for c in cols], "rows": rows})
    ablation = [] if abl.empty else [
        {"dataset": d, "method": m, "rows": g.to_dict("records")} for (d, m), g in abl.groupby(["dataset", "method"], sort=False)
    ]
    return {"sections": sections, "ablations": ablation, "profile": prof.to_dict("records"),
            "untrained_vgg": bool(main.get("untrained_vgg", pd.Series(dtype=bool)).any()) if not main.empty else False}


def render(tables: Path, out: Path) -> Path:
    """Render ``out`` (index.html) and copy the static assets beside it."""
    from llbench.runtime import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    html = _env().get_template("index.html").render(**context(tables))
    if ASSETS.is_dir():
        shutil.copytree(ASSETS, out.parent / "assets", dirs_exist_ok=True)
    atomic_write_text(out, html)
    return out
