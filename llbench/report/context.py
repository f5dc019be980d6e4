"""The template context: plain lists and dicts built from the tables (``llbench tables``' CSV files).

Sections (one per task and dataset) with their main rows, the ablation tables, the paper numbers, every cell
with the commands that re-run it, the summary and the ``llbench verify`` records.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from shlex import quote
from typing import Any

import pandas as pd

from llbench import layout
from llbench.report.environment import anchor, fmt, present
from llbench.report.figures import draw_figures
from llbench.report.grid import read_grid
from llbench.report.labels import COST, COST_REF_LABELS, REAL_DATASETS, TINY_NOTE
from llbench.report.lookup import (
    Profiles,
    as_number,
    as_text,
    baseline_labels,
    canonical_variant,
    default_variant,
    flag,
    is_baseline,
    metric_info,
    row_label,
    section_task,
    variant_doc,
)
from llbench.report.references import load_references
from llbench.tables import read_records, read_table
from llbench.vocabulary import PRIMARY, TASKS, order_columns


def _excluded_scenes() -> list[str]:
    try:
        from llbench.data import raw
    except Exception:  # optional: the raw data layer may be absent or broken; the report still renders
        return []
    return list(getattr(raw, "EXCLUDED_SCENES", []))


# ---- commands ------------------------------------------------------------------------------------------
def shell_words(configfiles: str | list[str]) -> str:
    """Config file(s) as shell words for ``--configfile`` (several: later ones overlay earlier ones)."""
    return " ".join(quote(str(c)) for c in ([configfiles] if isinstance(configfiles, str) else configfiles))


def commands(path: str, configfile: str | list[str]) -> dict[str, str]:
    """The exact commands that (re-)run one cell."""
    dataset, method, variant, run = layout.parse_cell_dir(path)
    target = layout.metrics_json(dataset, method, variant, run)
    cfg = shell_words(configfile)
    cell = f"llbench cell {quote(dataset)} {quote(method)} {quote(variant)} {quote(run)} --configfile {cfg}"
    return {
        "snakemake": f"snakemake {quote(target)} --configfile {cfg} --cores all",
        "snakemake_force": f"snakemake {quote(target)} --configfile {cfg} --cores all --forcerun {quote(target)}",
        "cell": cell,
        "cell_dry": f"{cell} --dry-run",
    }


# ---- context -------------------------------------------------------------------------------------------
def _ci_title(info: dict[str, Any], runs: list[dict[str, Any]], n: int) -> str:
    parts = []
    if n > 1:
        parts.append(f"mean ± std over {n} seeds")
    for r in runs:
        lo, hi = r.get(f"{info['key']}_ci_low"), r.get(f"{info['key']}_ci_high")
        if present(lo) and present(hi):
            k = r.get(f"{info['key']}_n")
            imgs = f", {int(float(k))} images" if present(k) else ""
            d = info["decimals"]
            parts.append(f"{r['run']}: 95% bootstrap CI [{fmt(lo, d)}, {fmt(hi, d)}]{imgs}")
    parts.append(f"protocol: {info['protocol']}")
    return "; ".join(parts)


def _na_reason(info: dict[str, Any], runs: list[dict[str, Any]], kind: str, status: str) -> str:
    if status in ("missing", "failed"):
        return f"no result: the cell is {status}"
    na = ";".join(as_text(r.get("not_applicable")) for r in runs)
    if info["key"] in na.split(";"):
        if info["key"].startswith("niqe"):
            return "not applicable: NIQE is undefined below two 96×96 blocks"
        return "not applicable: no ground truth for this dataset" if kind == "unpaired" else "not applicable"
    if kind == "unpaired" and info["key"] != "niqe":
        return "not applicable: no ground truth for this dataset"
    return "not reported: this method has no such protocol" if info["secondary"] else "not applicable"


def _paper_entries(
    refs: list[dict[str, Any]], dataset: str, method: str, variant: str, row: dict[str, Any], tiny: bool
) -> dict[str, Any]:
    """The 'paper' column of one row: each matching published number with its difference to ours."""
    if tiny:
        return {"tiny": True, "entries": []}
    v = canonical_variant(method, variant)
    out = []
    for e in refs:
        if (
            e["cost"]
            or e["dataset"] != dataset
            or e["method"] != method
            or canonical_variant(method, e["variant"]) != v
        ):
            continue
        ours_key = e["compare_to"] if e["compare_to"] and present(row.get(e["compare_to"])) else e["metric"]
        ours = as_number(row.get(ours_key))
        info = metric_info(e["metric"])
        delta = ours - e["value"] if e["comparable"] and present(ours) else math.nan
        why = "" if e["comparable"] else "no Δ: not the same test set / not reproducible"
        title = "; ".join(
            x
            for x in (
                f"paper: {e['source']}",
                f"protocol: {e['protocol']}",
                f"Δ = ours ({metric_info(ours_key)['label']}) − paper",
                e["note"],
                why,
            )
            if x
        )
        out.append(
            {
                "label": info["label"],
                "value": e["value"],
                "delta": delta,
                "decimals": info["decimals"],
                "title": title,
                "comparable": e["comparable"],
            }
        )
    return {"tiny": False, "entries": out}


def _row_cells(cells: pd.DataFrame, paths: list[str]) -> list[dict[str, Any]]:
    if cells.empty or "path" not in cells:
        return []
    sub = cells[cells["path"].isin(paths)]
    return sub.to_dict("records")


def _main_row(
    r: dict[str, Any],
    runs: list[dict[str, Any]],
    metric_cols: list[dict[str, Any]],
    prof: Profiles,
    native: str | None,
    refs: list[dict[str, Any]],
    kind: str,
) -> dict[str, Any]:
    method, variant, status = r["method"], r["variant"], r["status"]
    baseline = is_baseline(method)
    n = int(as_number(r.get("runs")) or 0) if present(r.get("runs")) else 0
    metrics = []
    for info in metric_cols:
        k = info["key"]
        value, std = as_number(r.get(k)), as_number(r.get(f"{k}_std"))
        metrics.append(
            {
                "key": k,
                "value": value,
                "std": std,
                "decimals": info["decimals"],
                "title": _ci_title(info, [x for x in runs if x.get("status") == "ok"], n)
                if present(value)
                else _na_reason(info, runs, kind, status),
                "best": False,
            }
        )
    p256, pnat = prof.get(method, variant, "256x256") or {}, prof.get(method, variant, native) or {}
    params = as_number(p256.get("params")) if p256 else prof.params(method, variant)

    def significant(p: dict[str, Any], key: str) -> str:
        return fmt(as_number(p.get(key)), "sig")

    latency = "not profiled"
    if p256:
        latency = (
            f"p10–p90 {significant(p256, 'latency_p10_ms')}–{significant(p256, 'latency_p90_ms')} ms on "
            f"{as_text(p256.get('device_name')) or as_text(p256.get('device'))}"
        )
        if pnat:
            latency += f"; native {native}: {significant(pnat, 'latency_ms')} ms"
    cost = {
        "params": (params, "inference network parameters"),
        "gflops": (
            as_number(p256.get("gflops")),
            f"{significant(p256, 'macs_gib')} GMACs/2^30 (papers' unit)" if p256 else "not profiled at 256×256",
        ),
        "gflops_native": (
            as_number(pnat.get("gflops")),
            f"at {native}; {significant(pnat, 'macs_gib')} GMACs/2^30"
            if pnat
            else f"not profiled at the native size {native or '(unknown)'}",
        ),
        "latency_ms": (as_number(p256.get("latency_ms")), latency),
        "peak_mem_mb": (as_number(p256.get("peak_mem_mb")), as_text(p256.get("peak_mem_kind")) or "not profiled"),
    }
    costs = [{"key": k, "value": v, "title": t, "fmt": COST[k][1], "best": False} for k, (v, t) in cost.items()]
    logs = [
        as_text(x.get("train_log")) if x.get("stage") == "train" else as_text(x.get("eval_log"))
        for x in runs
        if x.get("status") != "ok"
    ]
    errors = [as_text(x.get("error")) for x in runs if present(x.get("error"))]
    return {
        "method": method,
        "label": row_label(method),
        "baseline": baseline,
        "variant": variant,
        "variant_doc": variant_doc(method, variant),
        "source": r["source"],
        "status": status,
        "runs": n,
        "expected_runs": int(as_number(r.get("expected_runs"))) if present(r.get("expected_runs")) else n,
        "seeds": [{"run": x["run"], "anchor": anchor(x["path"]), "status": x.get("status")} for x in runs],
        "anchor": anchor(runs[0]["path"]) if runs else "",
        "untrained_vgg": flag(r.get("untrained_vgg")),
        "metrics": metrics,
        "costs": costs,
        "logs": list(dict.fromkeys(logs)),
        "error": "\n".join(errors),
        "paper": _paper_entries(refs, r["dataset"], method, variant, r, flag(r.get("tiny"))),
    }


def _mark_best(rows: list[dict[str, Any]], metric_cols: list[dict[str, Any]]) -> None:
    """Mark the best value per column among the methods (the input baseline is not a contender; a column
    with a single value has no best)."""
    contenders = [r for r in rows if not r["baseline"] and r["status"] in ("ok", "partial")]
    for j, info in enumerate(metric_cols):
        vals = [r["metrics"][j]["value"] for r in contenders if present(r["metrics"][j]["value"])]
        if len(vals) > 1:
            best = max(vals) if info["higher_better"] else min(vals)
            for r in contenders:
                r["metrics"][j]["best"] = r["metrics"][j]["value"] == best
    for j, _ in enumerate(COST):
        vals = [r["costs"][j]["value"] for r in contenders if present(r["costs"][j]["value"])]
        if len(vals) > 1:
            best = min(vals)
            for r in contenders:
                r["costs"][j]["best"] = r["costs"][j]["value"] == best


def _is_main(g: pd.DataFrame) -> pd.Series:
    """Rows of the main table: each method's default variant (all its rows if the default is absent)."""
    keep = pd.Series(False, index=g.index)
    for (method, _src), sub in g.groupby(["method", "source"], sort=False):
        default = sub["variant"] == default_variant(method)
        keep[sub.index] = default if default.any() else True
    return keep


def _sections(
    main: pd.DataFrame, cells: pd.DataFrame, prof: Profiles, refs: list[dict[str, Any]], abl: pd.DataFrame
) -> list[dict[str, Any]]:
    if main.empty:
        return []
    kinds = {}
    if not cells.empty and "kind" in cells:
        for d, k in zip(cells["dataset"], cells["kind"], strict=True):
            if present(k):
                kinds.setdefault(d, k)
    main = main.assign(
        _task=[section_task(kinds.get(d, ""), m) for d, m in zip(main["dataset"], main["method"], strict=True)]
    )
    sections = []
    for task, task_label in TASKS.items():
        t = main[main["_task"] == task]
        for dataset, g in t.groupby("dataset", sort=False):
            kind = kinds.get(dataset, "")
            names = [c[: -len("_ci_low")] for c in g.columns if c.endswith("_ci_low")]
            ordered = order_columns([*PRIMARY, *(c for c in names if g[c].notna().any())])
            metric_cols = [metric_info(c) for c in ordered]
            native = next((as_text(x) for x in g.get("native_size", pd.Series(dtype=str)) if present(x)), None)
            tiny = any(flag(x) for x in g.get("tiny", []))
            rows = []
            for _, r in g[_is_main(g)].iterrows():
                runs = _row_cells(cells, as_text(r.get("cells")).split(";"))
                rows.append(_main_row(r.to_dict(), runs, metric_cols, prof, native, refs, kind))
            _mark_best(rows, metric_cols)
            ablated = sorted({m for m in abl["method"][abl["dataset"] == dataset]}) if not abl.empty else []
            sections.append(
                {
                    "task": task,
                    "task_label": task_label,
                    "dataset": dataset,
                    "kind": kind,
                    "tiny": tiny,
                    "native": native,
                    "id": "ds-" + anchor(dataset)[5:],
                    "metric_cols": metric_cols,
                    "cost_cols": [
                        {
                            "key": k,
                            "label": (f"GFLOPs @{native}" if k == "gflops_native" and native else v[0]),
                            "title": v[2],
                        }
                        for k, v in COST.items()
                    ],
                    "rows": rows,
                    "ablated_methods": ablated,
                    "has_baseline": any(r["baseline"] for r in rows),
                    "excluded_scenes": _excluded_scenes() if task == "raw" else [],
                }
            )
    return sections


def _ablations(abl: pd.DataFrame, cells: pd.DataFrame, refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    if abl.empty:
        return out
    for (dataset, method, src), g in abl.groupby(["dataset", "method", "source"], sort=False):
        tiny = any(flag(x) for x in g.get("tiny", []))
        cols = [metric_info(c) for c in PRIMARY if c in g and g[c].notna().any()]
        rows = []
        for _, r in g.iterrows():
            rr = r.to_dict()
            runs = _row_cells(cells, as_text(rr.get("cells")).split(";"))
            n = int(as_number(rr.get("runs"))) if present(rr.get("runs")) else 0
            vals = []
            for info in cols:
                k = info["key"]
                value = as_number(rr.get(k))
                vals.append(
                    {
                        "key": k,
                        "value": value,
                        "std": as_number(rr.get(f"{k}_std")),
                        "delta": as_number(rr.get(f"{k}_delta")),
                        "decimals": info["decimals"],
                        "higher_better": info["higher_better"],
                        "title": _ci_title(info, [x for x in runs if x.get("status") == "ok"], n)
                        if present(value)
                        else _na_reason(info, runs, "", rr["status"]),
                    }
                )
            rows.append(
                {
                    "variant": rr["variant"],
                    "doc": as_text(rr.get("doc")),
                    "status": rr["status"],
                    "runs": n,
                    "is_default": flag(rr.get("is_default")),
                    "metrics": vals,
                    "anchor": anchor(runs[0]["path"]) if runs else "",
                    "paper": _paper_entries(refs, dataset, method, rr["variant"], rr, tiny),
                }
            )
        default_present = any(flag(x) for x in g.get("default_present", []))
        out.append(
            {
                "dataset": dataset,
                "method": method,
                "source": src,
                "label": f"{method} on {dataset}",
                "default_variant": default_variant(method),
                "default_present": default_present,
                "id": "abl-" + anchor(f"{dataset}/{method}/{src}")[5:],
                "columns": cols,
                "rows": rows,
                "tiny": tiny,
            }
        )
    return out


def _cells_list(cells: pd.DataFrame, configfile: str) -> list[dict[str, Any]]:
    out = []
    if cells.empty:
        return out
    for r in cells.to_dict("records"):
        flags = r.get("flags") if isinstance(r.get("flags"), dict) else {}
        out.append(
            {
                "path": r["path"],
                "anchor": anchor(r["path"]),
                "dataset": r["dataset"],
                "method": r["method"],
                "variant": r["variant"],
                "run": r["run"],
                "status": r["status"],
                "stage": as_text(r.get("stage")),
                "source": as_text(r.get("source")),
                "config_sha256": as_text(r.get("config_sha256")),
                "commit": as_text(r.get("commit")),
                "dirty": flag(r.get("dirty")),
                "seed": as_text(r.get("seed")).removesuffix(".0"),
                "data_sha256": as_text(r.get("data_sha256")),
                "data_source": as_text(r.get("data_source")),
                "device": as_text(r.get("device")),
                "packages": r.get("packages") if isinstance(r.get("packages"), dict) else {},
                "flags": json.dumps(flags, sort_keys=True) if flags else "",
                "untrained_vgg": flag(r.get("untrained_vgg")),
                "checkpoint": as_text(r.get("checkpoint")),
                "eval_log": as_text(r.get("eval_log")),
                "train_log": as_text(r.get("train_log")),
                "error": as_text(r.get("error")),
                "commands": commands(r["path"], configfile),
            }
        )
    return out


def _references(refs: list[dict[str, Any]], main: pd.DataFrame, prof: Profiles) -> list[dict[str, Any]]:
    """Every published number, with ours where a real-data cell (or, for cost, a profile) exists."""
    out = []
    for e in refs:
        ours, where = math.nan, ""
        if e["cost"]:
            v = e["variant"] or default_variant(e["method"])
            if e["metric"] == "params":
                ours = prof.params(e["method"], v)
            else:
                size = f"{e['size'][0]}x{e['size'][1]}" if e["size"] else None
                p = prof.get(e["method"], v, size)
                if p:
                    macs, flops = as_number(p.get("macs")), as_number(p.get("flops"))
                    ours = {"gmacs": macs / 1e9, "macs_gib": macs / 2**30, "gflops": flops / 1e9}[e["metric"]]
                elif size:
                    where = f"not profiled at {size}"
        elif not main.empty:
            v = canonical_variant(e["method"], e["variant"])
            hit = main[
                (main["dataset"] == e["dataset"])
                & (main["method"] == e["method"])
                & (main["variant"].map(lambda x, m=e["method"]: canonical_variant(m, x)) == v)
            ]
            if not hit.empty:
                r = hit.iloc[0]
                key = e["compare_to"] if e["compare_to"] and present(r.get(e["compare_to"])) else e["metric"]
                ours, where = as_number(r.get(key)), metric_info(key)["label"]
        if e["cost"]:
            decimals: int | str = "int" if e["metric"] == "params" else "sig"
            label = COST_REF_LABELS[e["metric"]]
        else:
            info = metric_info(e["metric"])
            decimals, label = info["decimals"], info["label"]
        delta = ours - e["value"] if e["comparable"] and present(ours) else math.nan
        size = f" @{e['size'][0]}×{e['size'][1]}" if e["size"] else ""
        out.append(
            {
                **e,
                "label": label + size,
                "decimals": decimals,
                "ours": ours,
                "ours_what": where,
                "delta": delta,
                "variant": e["variant"] or default_variant(e["method"]),
            }
        )
    return out


def _summary(cells: pd.DataFrame) -> dict[str, Any]:
    if cells.empty:
        return {"total": 0, "ok": 0, "failed": [], "missing": [], "commits": [], "devices": [], "dirty": False}
    bad = cells[cells["status"] != "ok"]
    ok = cells[cells["status"] == "ok"]
    return {
        "total": len(cells),
        "ok": len(ok),
        "failed": [{"path": p, "anchor": anchor(p)} for p in bad["path"][bad["status"] == "failed"]],
        "missing": [{"path": p, "anchor": anchor(p)} for p in bad["path"][bad["status"] == "missing"]],
        "commits": sorted({as_text(c) for c in ok.get("commit", []) if present(c)}),
        "devices": sorted({as_text(c) for c in ok.get("device", []) if present(c)}),
        "dirty": any(flag(x) for x in ok.get("dirty", [])),
    }


def verifications(results: Path) -> list[dict[str, Any]]:
    """The records ``llbench verify`` wrote under ``results/verify/`` (claimed vs re-run per metric)."""
    out = []
    for path in sorted((Path(results) / "verify").rglob("*.json")):
        record = json.loads(path.read_text())
        rows = [dict(r, retrained=False) for r in record.get("rows", [])]
        rows += [dict(r, retrained=True) for r in record.get("retrain", {}).get("rows", [])]
        for r in rows:
            info = metric_info(r["metric"])
            r.update(label=info["label"], decimals=info["decimals"])
        out.append({**record, "rows": rows, "device": record.get("device")})
    return out


def _grid(out: Path, dataset: str) -> dict[str, Any] | None:
    """The dataset's visual comparison made by the ``grid`` rule beside the report (None when it was not made)."""
    folder = Path(layout.grid_dir(dataset)).relative_to(Path(layout.REPORT).parent)
    grid = read_grid(Path(out).parent / folder, folder.as_posix())
    for t in grid["tiles"] if grid else []:
        t["anchor"] = anchor(t["path"]) if t["path"] else ""
    return grid


def _guess_configfile(cells: pd.DataFrame) -> str:
    if not cells.empty and all(flag(x) for x in cells.get("tiny", [])):
        return "config/smoke.yaml"
    return "config/config.yaml"


def context(
    tables: Path,
    out: Path | None = None,
    results: Path | None = None,
    configfile: str | list[str] | None = None,
    figures: bool = True,
) -> dict[str, Any]:
    """Everything the templates show, as plain lists and dicts.

    Args:
        tables: the folder of ``llbench tables``' CSV files.
        out: the report's ``index.html`` (figures are written beside it); None: no figures.
        results: the results folder (default: the parent of ``tables``); images and logs are found from it.
        configfile: the config file(s) the results were made with, for the re-run commands (default: guessed
            from the data: ``config/smoke.yaml`` when every dataset is tiny).
        figures: draw the matplotlib figures and the visual comparison.
    """
    tables = Path(tables)
    results = Path(results) if results is not None else tables.parent
    main, abl, prof = read_table(tables, "main"), read_table(tables, "ablations"), read_table(tables, "profile")
    cells = read_records(tables)
    refs = load_references()
    profiles = Profiles(prof)
    guessed = configfile is None
    configfile = configfile or _guess_configfile(cells)
    sections = _sections(main, cells, profiles, refs, abl)
    ablation = _ablations(abl, cells, refs)
    figs: dict[str, Any] = {"cost": {}, "per_image": {}, "train": [], "ablation": {}}
    if figures and out is not None and not main.empty:
        figs = draw_figures(
            Path(out).parent / "figures",
            main=main,
            abl=abl,
            prof=prof,
            per_image=read_table(tables, "per_image"),
            train_log=read_table(tables, "train_log"),
            sections=sections,
        )
    for s in sections:
        s["figures"] = {
            "cost": figs["cost"].get(s["dataset"]),
            "per_image": figs["per_image"].get(s["dataset"]),
            "grid": _grid(out, s["dataset"]) if figures and out is not None else None,
        }
    for a in ablation:
        a["figure"] = figs["ablation"].get((a["dataset"], a["method"], a["source"]))
    untrained = any(flag(x) for x in main.get("untrained_vgg", []))
    return {
        "sections": sections,
        "ablations": ablation,
        "train_figures": figs["train"],
        "references": _references(refs, main, profiles),
        "cells": _cells_list(cells, configfile),
        "verification": verifications(results),
        "summary": _summary(cells),
        "untrained_vgg": untrained,
        "configfile": shell_words(configfile),
        "configfile_guessed": guessed,
        "tiny_note": TINY_NOTE,
        "any_tiny": any(s["tiny"] for s in sections),
        "baseline_label": baseline_labels(),
        "real_datasets": REAL_DATASETS,
        "snakemake_report": "snakemake.html",
        "snakemake_report_cmd": f"snakemake --configfile {shell_words(configfile)} --report "
        "results/report/snakemake.html",
    }
