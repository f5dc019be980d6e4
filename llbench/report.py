"""The HTML report: Python builds a plain context from the tables, small Jinja2 templates lay it out.

    llbench tables --out results/tables && llbench report --tables results/tables --out results/report/index.html

One :class:`jinja2.Environment` (autoescape on) lives here; number formatting is done by its filters, so
templates stay free of logic. Missing values render as "n/a", never as 0. The report renders from whatever
results exist: missing and failed cells are listed with their logs. Figures (matplotlib, Agg) and the crops
of the visual comparison are written beside ``index.html`` (``figures/``); the page loads nothing from the
network (its sorting script is ``assets/report.js``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from jinja2 import Environment, FileSystemLoader, select_autoescape

from llbench.workflow import REPO

log = logging.getLogger("llbench.report")
TEMPLATES = REPO / "report" / "templates"
ASSETS = REPO / "report" / "assets"
REFERENCES = REPO / "report" / "reference_numbers.yaml"
BASELINE = "input"
BASELINE_LABEL = "input (no method)"
#: datasets paper numbers may apply to (the names `llbench data prepare` and config/config.yaml use)
REAL_DATASETS = (
    "lol",
    "lolv2-real",
    "lolv2-syn",
    "lsrw",
    "sidd",
    "sid",
    "dnd",
    "mit",
    "dicm",
    "lime",
    "npe",
    "mef",
    "vv",
)
TASKS = {
    "enhance": "Low-light enhancement",
    "raw": "Raw low-light enhancement (SID protocol, raw → sRGB)",
    "denoise": "Real-world denoising (self-supervised)",
}
KIND_TASK = {"paired": "enhance", "unpaired": "enhance", "raw": "raw", "denoise": "denoise"}
PRIMARY = ("psnr", "ssim", "niqe")
#: labels of the secondary protocol columns the methods report (Method.extra_metrics), beyond llbench.metrics
SECONDARY = {
    "psnr_paper": ("PSNR, paper protocol (dB)", "the method's own published test protocol (e.g. SNR-Aware's resize)"),
    "ssim_paper": ("SSIM, paper protocol", "the method's own published test protocol"),
    "psnr_skimage": ("PSNR, skimage protocol (dB)", "AP-BSN / LG-BPN's protocol: +0.5 floor, scikit-image PSNR"),
    "ssim_skimage": ("SSIM, skimage protocol", "AP-BSN / LG-BPN's protocol: scikit-image SSIM, 7x7 uniform window"),
}
COST_REF_LABELS = {"params": "params", "gmacs": "GMACs (1e9)", "macs_gib": "GMACs (2^30)", "gflops": "GFLOPs"}
#: cost columns: key -> (label, format, what it is)
COST = {
    "params": ("params", "int", "trainable and buffer-free parameters of the inference network"),
    "gflops": ("GFLOPs @256²", "sig", "true FLOPs (torch FlopCounterMode, attention counted) at 256×256, 1e9 units"),
    "gflops_native": ("GFLOPs @native", "sig", "true FLOPs at the dataset's native test size"),
    "latency_ms": ("latency (ms) @256²", "sig", "median of repeats after warm-up, batch 1, device synchronised"),
    "peak_mem_mb": ("peak mem (MB) @256²", "sig", "peak memory of one inference at 256×256"),
}
TINY_NOTE = (
    "tiny-* datasets are generated smoke-test data (a few synthetic images degraded from scikit-image "
    "photographs): numbers on them test the pipeline, not the methods, so paper numbers are never "
    "compared to them."
)


# ---- formatting filters ------------------------------------------------------------------------------
def present(value: Any) -> bool:
    """A usable number or text (not None, NaN or an empty string)."""
    if value is None:
        return False
    if isinstance(value, float | np.floating):
        return not math.isnan(value)
    if isinstance(value, str):
        return value.strip() != "" and value.lower() != "nan"
    return True


def fmt(value: Any, decimals: int | str = 2) -> str:
    """A number with ``decimals`` places (``"int"``: thousands separators, ``"sig"``: 3 significant digits);
    NaN / None -> ``n/a``."""
    if not present(value):
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | float | np.integer | np.floating):
        v = float(value)
        if decimals == "int":
            return f"{round(v):,}"
        if decimals == "sig":
            return _sig(v)
        return f"{v:,.{int(decimals)}f}"
    return str(value)


def _sig(v: float, digits: int = 3) -> str:
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    places = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:,.{places}f}"


def fmt_delta(value: Any, decimals: int | str = 2) -> str:
    """A signed difference (``+0.12`` / ``−0.12``); n/a when missing."""
    if not present(value):
        return "n/a"
    text = fmt(abs(float(value)), decimals)
    if float(value) == 0 or text.strip("0.,") == "":
        return f"±{text}"
    return ("+" if float(value) > 0 else "\u2212") + text


def sortkey(value: Any) -> str:
    """``data-sort`` attribute: the raw number, or empty (sorted last) for n/a."""
    if not present(value):
        return ""
    if isinstance(value, int | float | np.integer | np.floating):
        return repr(float(value))
    return str(value)


def short(value: Any, n: int = 10) -> str:
    return str(value)[:n] if present(value) else "n/a"


def anchor(path: str) -> str:
    """An HTML id for a cell path: readable, restricted to [a-z0-9-], unique by a short hash."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(path).lower().removeprefix("results/")).strip("-")[:80]
    return f"cell-{slug}-{hashlib.sha1(str(path).encode()).hexdigest()[:6]}"


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True
    )
    env.filters.update(fmt=fmt, fmt_delta=fmt_delta, sortkey=sortkey, short=short, anchor=anchor)
    env.tests["present"] = present
    return env


def template(name: str):
    """A template of the report's one environment (autoescaped)."""
    return _env().get_template(name)


# ---- reading -------------------------------------------------------------------------------------------
def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={"run": str, "seeds": str, "id": str})
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def _s(value: Any) -> str:
    return str(value) if present(value) else ""


def _f(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v


def metric_info(name: str) -> dict[str, Any]:
    """Label, direction, decimals, whether it is a secondary protocol column, and its protocol text."""
    from llbench.metrics import METRICS

    decimals = 4 if name.startswith("ssim") else 3 if name.startswith("niqe") else 2
    higher = not name.startswith("niqe")
    if name in METRICS:
        spec = METRICS[name]
        return {
            "key": name,
            "label": spec["label"],
            "higher_better": spec["higher_better"],
            "decimals": decimals,
            "secondary": name not in PRIMARY,
            "protocol": spec["protocol"],
        }
    if name in SECONDARY:
        label, protocol = SECONDARY[name]
    else:
        base, _, rest = name.partition("_")
        label = f"{base.upper()} ({rest.replace('_', ' ')})"
        protocol = "a method-specific protocol (Method.extra_metrics)"
    return {
        "key": name,
        "label": label,
        "higher_better": higher,
        "decimals": decimals,
        "secondary": True,
        "protocol": protocol,
    }


def load_references(path: Path = REFERENCES) -> list[dict[str, Any]]:
    """The published numbers of ``report/reference_numbers.yaml``, checked (ValueError naming the entry)."""
    entries = yaml.safe_load(Path(path).read_text()) or []
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of entries, got {type(entries).__name__}")
    out = []
    allowed = {
        "method",
        "variant",
        "dataset",
        "metric",
        "size",
        "value",
        "protocol",
        "compare_to",
        "comparable",
        "source",
        "tag",
        "note",
    }
    for i, e in enumerate(entries):
        where = f"{path}: entry {i} ({e.get('method') if isinstance(e, dict) else e!r})"
        if not isinstance(e, dict):
            raise ValueError(f"{where}: not a mapping")
        unknown = set(e) - allowed
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        for key in ("method", "metric", "value", "protocol", "source"):
            if key not in e:
                raise ValueError(f"{where}: missing {key!r}")
        if not isinstance(e["value"], int | float):
            raise ValueError(f"{where}: value {e['value']!r} is not a number")
        cost = e["metric"] in ("params", "gmacs", "macs_gib", "gflops")
        if cost == ("dataset" in e):
            raise ValueError(f"{where}: cost metrics have no dataset, quality metrics need one")
        if "dataset" in e and e["dataset"] not in REAL_DATASETS:
            raise ValueError(
                f"{where}: dataset {e['dataset']!r} is not a real dataset; allowed: {', '.join(REAL_DATASETS)}"
            )
        out.append(
            {
                "variant": None,
                "dataset": None,
                "compare_to": None,
                "comparable": True,
                "note": "",
                "tag": "",
                "size": None,
                **e,
                "cost": cost,
            }
        )
    return out


def _method(name: str):
    import methods

    try:
        return methods.get(name)
    except KeyError:
        return None


def _default_variant(method: str) -> str:
    m = _method(method)
    return m.default_variant if m is not None else "default"


def _canon_variant(method: str, variant: str | None) -> str:
    return _default_variant(method) if variant in (None, "default") else variant


def _variant_doc(method: str, variant: str) -> str:
    m = _method(method)
    try:
        return m.variant(variant).doc if m is not None else ""
    except KeyError:
        return ""


def _task(kind: str, method: str) -> str:
    if kind in KIND_TASK:
        return KIND_TASK[kind]
    m = _method(method)
    return m.task if m is not None else "enhance"


def _excluded_scenes() -> list[str]:
    try:
        from llbench.data import raw
    except Exception:  # optional: the raw data layer may be absent or broken; the report still renders
        return []
    return list(getattr(raw, "EXCLUDED_SCENES", []))


# ---- commands ------------------------------------------------------------------------------------------
def shell_words(configfiles: str | list[str]) -> str:
    """Config file(s) as shell words for ``--configfile`` (several: later ones overlay earlier ones)."""
    return " ".join(shlex.quote(str(c)) for c in ([configfiles] if isinstance(configfiles, str) else configfiles))


def commands(path: str, configfile: str | list[str]) -> dict[str, str]:
    """The exact commands that (re-)run one cell."""
    dataset, method, variant, run = Path(path).parts[-4:]
    target = f"{path}/metrics.json"
    q = shlex.quote
    cfg = shell_words(configfile)
    cell = f"llbench cell {q(dataset)} {q(method)} {q(variant)} {q(run)} --configfile {cfg}"
    return {
        "snakemake": f"snakemake {q(target)} --configfile {cfg} --cores all",
        "snakemake_force": f"snakemake {q(target)} --configfile {cfg} --cores all --forcerun {q(target)}",
        "cell": cell,
        "cell_dry": f"{cell} --dry-run",
    }


# ---- context -------------------------------------------------------------------------------------------
class _Profiles:
    def __init__(self, prof: pd.DataFrame):
        self.rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        for r in prof.to_dict("records") if not prof.empty else []:
            self.rows[(str(r["method"]), str(r["variant"]), str(r["size"]))] = r

    def get(self, method: str, variant: str, size: str | None) -> dict[str, Any] | None:
        if not size:
            return None
        return self.rows.get((method, variant, size)) or self.rows.get((method, _canon_variant(method, variant), size))

    def params(self, method: str, variant: str) -> float:
        for (m, v, _), r in self.rows.items():
            if m == method and v in (variant, _canon_variant(method, variant)):
                return _f(r.get("params"))
        return math.nan


def _ci_title(info: dict[str, Any], runs: list[dict[str, Any]], mean: float, std: float, n: int) -> str:
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
    na = ";".join(_s(r.get("not_applicable")) for r in runs)
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
    v = _canon_variant(method, variant)
    out = []
    for e in refs:
        if e["cost"] or e["dataset"] != dataset or e["method"] != method or _canon_variant(method, e["variant"]) != v:
            continue
        ours_key = e["compare_to"] if e["compare_to"] and present(row.get(e["compare_to"])) else e["metric"]
        ours = _f(row.get(ours_key))
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
    prof: _Profiles,
    native: str | None,
    refs: list[dict[str, Any]],
    kind: str,
) -> dict[str, Any]:
    method, variant, status = r["method"], r["variant"], r["status"]
    baseline = method == BASELINE
    n = int(_f(r.get("runs")) or 0) if present(r.get("runs")) else 0
    metrics = []
    for info in metric_cols:
        k = info["key"]
        value, std = _f(r.get(k)), _f(r.get(f"{k}_std"))
        metrics.append(
            {
                "key": k,
                "value": value,
                "std": std,
                "decimals": info["decimals"],
                "title": _ci_title(info, [x for x in runs if x.get("status") == "ok"], value, std, n)
                if present(value)
                else _na_reason(info, runs, kind, status),
                "best": False,
            }
        )
    p256, pnat = prof.get(method, variant, "256x256") or {}, prof.get(method, variant, native) or {}
    params = _f(p256.get("params")) if p256 else prof.params(method, variant)

    def sig(p: dict[str, Any], key: str) -> str:
        return fmt(_f(p.get(key)), "sig")

    latency = "not profiled"
    if p256:
        latency = (
            f"p10–p90 {sig(p256, 'latency_p10_ms')}–{sig(p256, 'latency_p90_ms')} ms on "
            f"{_s(p256.get('device_name')) or _s(p256.get('device'))}"
        )
        if pnat:
            latency += f"; native {native}: {sig(pnat, 'latency_ms')} ms"
    cost = {
        "params": (params, "inference network parameters"),
        "gflops": (
            _f(p256.get("gflops")),
            f"{sig(p256, 'macs_gib')} GMACs/2^30 (papers' unit)" if p256 else "not profiled at 256×256",
        ),
        "gflops_native": (
            _f(pnat.get("gflops")),
            f"at {native}; {sig(pnat, 'macs_gib')} GMACs/2^30"
            if pnat
            else f"not profiled at the native size {native or '(unknown)'}",
        ),
        "latency_ms": (_f(p256.get("latency_ms")), latency),
        "peak_mem_mb": (_f(p256.get("peak_mem_mb")), _s(p256.get("peak_mem_kind")) or "not profiled"),
    }
    costs = [{"key": k, "value": v, "title": t, "fmt": COST[k][1], "best": False} for k, (v, t) in cost.items()]
    logs = [
        _s(x.get("train_log")) if x.get("stage") == "train" else _s(x.get("eval_log"))
        for x in runs
        if x.get("status") != "ok"
    ]
    errors = [_s(x.get("error")) for x in runs if present(x.get("error"))]
    return {
        "method": method,
        "label": BASELINE_LABEL if baseline else method,
        "baseline": baseline,
        "variant": variant,
        "variant_doc": _variant_doc(method, variant),
        "source": r["source"],
        "status": status,
        "runs": n,
        "expected_runs": int(_f(r.get("expected_runs"))) if present(r.get("expected_runs")) else n,
        "seeds": [{"run": x["run"], "anchor": anchor(x["path"]), "status": x.get("status")} for x in runs],
        "anchor": anchor(runs[0]["path"]) if runs else "",
        "untrained_vgg": str(r.get("untrained_vgg")).lower() == "true",
        "metrics": metrics,
        "costs": costs,
        "logs": list(dict.fromkeys(logs)),
        "error": "\n".join(errors),
        "paper": _paper_entries(refs, r["dataset"], method, variant, r, str(r.get("tiny")).lower() == "true"),
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
        default = sub["variant"].isin([_default_variant(method), "default"])
        keep[sub.index] = default if default.any() else True
    return keep


def _sections(
    main: pd.DataFrame, cells: pd.DataFrame, prof: _Profiles, refs: list[dict[str, Any]], abl: pd.DataFrame
) -> list[dict[str, Any]]:
    if main.empty:
        return []
    kinds = {}
    if not cells.empty and "kind" in cells:
        for d, k in zip(cells["dataset"], cells["kind"], strict=True):
            if present(k):
                kinds.setdefault(d, k)
    main = main.assign(_task=[_task(kinds.get(d, ""), m) for d, m in zip(main["dataset"], main["method"], strict=True)])
    sections = []
    for task, task_label in TASKS.items():
        t = main[main["_task"] == task]
        for dataset, g in t.groupby("dataset", sort=False):
            kind = kinds.get(dataset, "")
            names = [c[: -len("_ci_low")] for c in g.columns if c.endswith("_ci_low")]
            present_cols = [c for c in names if c in PRIMARY or g[c].notna().any()]
            ordered = [*PRIMARY, *sorted(c for c in present_cols if c not in PRIMARY)]
            metric_cols = [metric_info(c) for c in ordered]
            native = next((_s(x) for x in g.get("native_size", pd.Series(dtype=str)) if present(x)), None)
            tiny = dataset.startswith("tiny-") or any(str(x).lower() == "true" for x in g.get("tiny", []))
            rows = []
            for _, r in g[_is_main(g)].iterrows():
                runs = _row_cells(cells, _s(r.get("cells")).split(";"))
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
        tiny = dataset.startswith("tiny-") or any(str(x).lower() == "true" for x in g.get("tiny", []))
        cols = [metric_info(c) for c in PRIMARY if c in g and g[c].notna().any()]
        rows = []
        for _, r in g.iterrows():
            rr = r.to_dict()
            runs = _row_cells(cells, _s(rr.get("cells")).split(";"))
            n = int(_f(rr.get("runs"))) if present(rr.get("runs")) else 0
            vals = []
            for info in cols:
                k = info["key"]
                value = _f(rr.get(k))
                vals.append(
                    {
                        "key": k,
                        "value": value,
                        "std": _f(rr.get(f"{k}_std")),
                        "delta": _f(rr.get(f"{k}_delta")),
                        "decimals": info["decimals"],
                        "higher_better": info["higher_better"],
                        "title": _ci_title(info, [x for x in runs if x.get("status") == "ok"], value, math.nan, n)
                        if present(value)
                        else _na_reason(info, runs, "", rr["status"]),
                    }
                )
            rows.append(
                {
                    "variant": rr["variant"],
                    "doc": _s(rr.get("doc")),
                    "status": rr["status"],
                    "runs": n,
                    "is_default": str(rr.get("is_default")).lower() == "true",
                    "metrics": vals,
                    "anchor": anchor(runs[0]["path"]) if runs else "",
                    "paper": _paper_entries(refs, dataset, method, rr["variant"], rr, tiny),
                }
            )
        default_present = any(str(x).lower() == "true" for x in g.get("default_present", []))
        out.append(
            {
                "dataset": dataset,
                "method": method,
                "source": src,
                "label": f"{method} on {dataset}",
                "default_variant": _default_variant(method),
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
        try:
            packages = json.loads(_s(r.get("packages")) or "{}")
        except json.JSONDecodeError:
            packages = {}
        flags = _s(r.get("flags"))
        out.append(
            {
                "path": r["path"],
                "anchor": anchor(r["path"]),
                "dataset": r["dataset"],
                "method": r["method"],
                "variant": r["variant"],
                "run": r["run"],
                "status": r["status"],
                "stage": _s(r.get("stage")),
                "source": _s(r.get("source")),
                "config_sha256": _s(r.get("config_sha256")),
                "commit": _s(r.get("commit")),
                "dirty": str(r.get("dirty")).lower() == "true",
                "seed": _s(r.get("seed")).removesuffix(".0"),
                "data_sha256": _s(r.get("data_sha256")),
                "data_source": _s(r.get("data_source")),
                "device": _s(r.get("device")),
                "packages": packages,
                "flags": "" if flags in ("", "{}") else flags,
                "untrained_vgg": str(r.get("untrained_vgg")).lower() == "true",
                "checkpoint": _s(r.get("checkpoint")),
                "eval_log": _s(r.get("eval_log")),
                "train_log": _s(r.get("train_log")),
                "error": _s(r.get("error")),
                "commands": commands(r["path"], configfile),
            }
        )
    return out


def _references(refs: list[dict[str, Any]], main: pd.DataFrame, prof: _Profiles) -> list[dict[str, Any]]:
    """Every published number, with ours where a real-data cell (or, for cost, a profile) exists."""
    out = []
    for e in refs:
        ours, where = math.nan, ""
        if e["cost"]:
            v = e["variant"] or _default_variant(e["method"])
            if e["metric"] == "params":
                ours = prof.params(e["method"], v)
            else:
                size = f"{e['size'][0]}x{e['size'][1]}" if e["size"] else None
                p = prof.get(e["method"], v, size)
                if p:
                    macs, flops = _f(p.get("macs")), _f(p.get("flops"))
                    ours = {"gmacs": macs / 1e9, "macs_gib": macs / 2**30, "gflops": flops / 1e9}[e["metric"]]
                elif size:
                    where = f"not profiled at {size}"
        elif not main.empty:
            v = _canon_variant(e["method"], e["variant"])
            hit = main[
                (main["dataset"] == e["dataset"])
                & (main["method"] == e["method"])
                & (main["variant"].map(lambda x, m=e["method"]: _canon_variant(m, x)) == v)
            ]
            if not hit.empty:
                r = hit.iloc[0]
                key = e["compare_to"] if e["compare_to"] and present(r.get(e["compare_to"])) else e["metric"]
                ours, where = _f(r.get(key)), metric_info(key)["label"]
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
                "variant": e["variant"] or _default_variant(e["method"]),
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
        "commits": sorted({_s(c) for c in ok.get("commit", []) if present(c)}),
        "devices": sorted({_s(c) for c in ok.get("device", []) if present(c)}),
        "dirty": any(str(x).lower() == "true" for x in ok.get("dirty", [])),
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


def _guess_configfile(cells: pd.DataFrame) -> str:
    if not cells.empty and all(str(d).startswith("tiny-") for d in cells["dataset"]):
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
            from the dataset names: ``config/smoke.yaml`` when every dataset is tiny-*).
        figures: draw the matplotlib figures and the visual comparison.
    """
    tables = Path(tables)
    results = Path(results) if results is not None else tables.parent
    main, abl, prof = _read(tables / "main.csv"), _read(tables / "ablations.csv"), _read(tables / "profile.csv")
    cells = _read(tables / "cells.csv")
    refs = load_references()
    profiles = _Profiles(prof)
    guessed = configfile is None
    configfile = configfile or _guess_configfile(cells)
    sections = _sections(main, cells, profiles, refs, abl)
    ablation = _ablations(abl, cells, refs)
    figs: dict[str, Any] = {"cost": {}, "per_image": {}, "grid": {}, "train": [], "ablation": {}}
    if figures and out is not None and not main.empty:
        figs = draw_figures(
            Path(out).parent / "figures",
            results=results,
            main=main,
            cells=cells,
            abl=abl,
            prof=prof,
            per_image=_read(tables / "per_image.csv"),
            train_log=_read(tables / "train_log.csv"),
            sections=sections,
        )
    for s in sections:
        s["figures"] = {
            "cost": figs["cost"].get(s["dataset"]),
            "per_image": figs["per_image"].get(s["dataset"]),
            "grid": figs["grid"].get(s["dataset"]),
        }
    for a in ablation:
        a["figure"] = figs["ablation"].get((a["dataset"], a["method"], a["source"]))
    untrained = (
        bool(main.get("untrained_vgg", pd.Series(dtype=str)).astype(str).str.lower().eq("true").any())
        if not main.empty
        else False
    )
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
        "baseline_label": BASELINE_LABEL,
        "real_datasets": REAL_DATASETS,
        "snakemake_report": "snakemake.html",
        "snakemake_report_cmd": f"snakemake --configfile {shell_words(configfile)} --report "
        "results/report/snakemake.html",
    }


def render(
    tables: Path,
    out: Path,
    results: Path | None = None,
    configfile: str | list[str] | None = None,
    figures: bool = True,
) -> Path:
    """Render ``out`` (index.html), its figures and the static assets beside it."""
    from llbench.runtime import atomic_write_text

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ctx = context(Path(tables), out, results=results, configfile=configfile, figures=figures)
    html = template("index.html").render(**ctx)
    if ASSETS.is_dir():
        shutil.copytree(ASSETS, out.parent / "assets", dirs_exist_ok=True)
    atomic_write_text(out, html)
    return out


# ---- figures (matplotlib, Agg; imported here only) -----------------------------------------------------
_TRAIN_SKIP = {"iteration", "epoch", "lr", "data_s", "step_s", "dataset", "method", "variant", "run"}
_FULL_MAX = 2048  # the "full image" of the visual comparison is downscaled to this many pixels on its long side


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "svg.hashsalt": "llbench", "figure.dpi": 100})
    return plt


def _stem(*parts: str) -> str:
    text = "/".join(parts)
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]
    return f"{slug}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"


def _save(fig, fig_dir: Path, stem: str) -> dict[str, str]:
    """PNG (shown) and SVG (linked) beside the report; returns their paths relative to index.html."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(fig_dir / f"{stem}.png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(fig_dir / f"{stem}.svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    _plt().close(fig)
    return {"png": f"{fig_dir.name}/{stem}.png", "svg": f"{fig_dir.name}/{stem}.svg"}


def _label(method: str, variant: str, with_variant: bool = True) -> str:
    if method == BASELINE:
        return BASELINE_LABEL
    return f"{method}/{variant}" if with_variant else method


def _quality_metric(rows: pd.DataFrame) -> str | None:
    for k in ("psnr", "niqe"):
        if k in rows and pd.to_numeric(rows[k], errors="coerce").notna().any():
            return k
    return None


def _fig_cost(fig_dir: Path, dataset: str, g: pd.DataFrame, prof: _Profiles) -> dict[str, str] | None:
    g = g[g["status"].isin(["ok", "partial"])]
    metric = _quality_metric(g)
    if metric is None:
        return None
    info = metric_info(metric)
    pts = []
    base = math.nan
    for _, r in g.iterrows():
        y = _f(r.get(metric))
        if not present(y):
            continue
        if r["method"] == BASELINE:
            base = y
            continue
        p = prof.get(r["method"], r["variant"], "256x256")
        if p is None:
            continue
        is_default = r["variant"] in ("default", _default_variant(r["method"]))
        pts.append(
            (
                r["method"],
                r["variant"],
                y,
                _f(r.get(f"{metric}_std")),
                _f(p.get("gflops")),
                _f(p.get("latency_ms")),
                is_default,
            )
        )
    if not pts:
        return None
    with_default = {p[0] for p in pts if p[6]}
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(dict.fromkeys(p[0] for p in pts))}
    for ax, xi, xlabel in ((axes[0], 4, "GFLOPs @256² (log)"), (axes[1], 5, "latency @256², ms (log)")):
        for p in pts:
            x = p[xi]
            if not present(x) or x <= 0:
                continue
            ax.errorbar(
                x,
                p[2],
                yerr=p[3] if present(p[3]) else None,
                fmt="o" if p[6] else "s",
                ms=6 if p[6] else 4,
                color=colors[p[0]],
                alpha=1 if p[6] else 0.55,
                capsize=2,
            )
            if p[6] or p[0] not in with_default:  # ablation variants are named in their own charts
                ax.annotate(
                    _label(p[0], p[1], not p[6]), (x, p[2]), fontsize=6.5, xytext=(3, 3), textcoords="offset points"
                )
        if present(base):
            ax.axhline(base, color="0.4", ls="--", lw=1, label=BASELINE_LABEL)
            ax.legend(loc="best", fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"{info['label']} ({'higher' if info['higher_better'] else 'lower'} is better)")
    fig.suptitle(f"Quality vs cost on {dataset} (circles: default variants; squares: ablation variants)", y=1.02)
    return _save(fig, fig_dir, _stem("cost", dataset))


def _fig_per_image(
    fig_dir: Path, dataset: str, per_image: pd.DataFrame, order: list[tuple[str, str]]
) -> dict[str, str] | None:
    if per_image.empty:
        return None
    d = per_image[per_image["dataset"] == dataset]
    metric = _quality_metric(d)
    if metric is None:
        return None
    groups = []
    for m, v in order:
        vals = pd.to_numeric(d[(d["method"] == m) & (d["variant"] == v)][metric], errors="coerce").dropna()
        if len(vals):
            groups.append((_label(m, v), vals.to_numpy()))
    if not groups:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(groups) + 1.5), 3.4))
    ax.boxplot([g[1] for g in groups], showfliers=False, widths=0.55)
    rng = np.random.default_rng(0)
    for i, (_, vals) in enumerate(groups, start=1):
        ax.plot(i + rng.uniform(-0.15, 0.15, len(vals)), vals, ".", color="tab:blue", alpha=0.6, ms=4)
    ax.set_xticks(range(1, len(groups) + 1), [g[0] for g in groups], rotation=35, ha="right")
    ax.set_ylabel(metric_info(metric)["label"])
    ax.set_title(f"Per-image {metric_info(metric)['label']} on {dataset} (every image of every run)")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, fig_dir, _stem("per-image", dataset))


def _fig_train(fig_dir: Path, train_log: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    if train_log.empty:
        return out
    for (dataset, method), g in train_log.groupby(["dataset", "method"], sort=False):
        cols = [
            c
            for c in g.columns
            if c not in _TRAIN_SKIP and not c.endswith("_s") and pd.to_numeric(g[c], errors="coerce").notna().any()
        ][:4]
        if not cols or "iteration" not in g:
            continue
        plt = _plt()
        fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols) + 0.8, 2.8), squeeze=False)
        for ax, c in zip(axes[0], cols, strict=True):
            for (variant, run), h in g.groupby(["variant", "run"], sort=False):
                y = pd.to_numeric(h[c], errors="coerce")
                win = max(1, len(y) // 50)
                ax.plot(h["iteration"], y.rolling(win, min_periods=1).mean(), lw=1, label=f"{variant} {run}")
            ax.set_title(c)
            ax.set_xlabel("iteration")
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=6.5)
        fig.suptitle(f"Training curves: {method} trained on {dataset} (running mean over ~2% of the run)", y=1.04)
        figure = _save(fig, fig_dir, _stem("train", dataset, method))
        out.append({"dataset": dataset, "method": method, "figure": figure})
    return out


def _fig_ablation(fig_dir: Path, dataset: str, method: str, src: str, g: pd.DataFrame) -> dict[str, str] | None:
    """Bars of each variant's difference to the default variant (so a zero axis stays honest), with error bars."""
    cols = [c for c in PRIMARY if c in g and pd.to_numeric(g[c], errors="coerce").notna().any()]
    if not cols:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(cols), figsize=(3.3 * len(cols) + 0.6, 3.0), squeeze=False)
    default = _default_variant(method)
    for ax, c in zip(axes[0], cols, strict=True):
        info = metric_info(c)
        labels, deltas, errs, colors, missing = [], [], [[], []], [], []
        for i, (_, r) in enumerate(g.iterrows()):
            v, d = _f(r.get(c)), _f(r.get(f"{c}_delta"))
            labels.append(r["variant"])
            std, lo, hi = _f(r.get(f"{c}_std")), _f(r.get(f"{c}_ci_low")), _f(r.get(f"{c}_ci_high"))
            if present(std):
                err = (std, std)
            elif present(lo) and present(hi) and present(v):
                err = (max(0.0, v - lo), max(0.0, hi - v))
            else:
                err = (0.0, 0.0)
            ok = present(d)
            deltas.append(d if ok else 0.0)
            errs[0].append(err[0] if ok else 0.0)
            errs[1].append(err[1] if ok else 0.0)
            colors.append(
                "tab:orange"
                if r["variant"] in (default, "default")
                else ("tab:green" if ok and (d > 0) == info["higher_better"] else "tab:red")
            )
            if not ok:
                missing.append(i)
        x = np.arange(len(labels))
        ax.bar(x, deltas, color=colors, yerr=errs, capsize=3)
        ax.axhline(0, color="0.3", lw=0.8)
        for i in missing:
            ax.text(
                i, 0.02, "n/a", ha="center", va="bottom", fontsize=7, color="0.4", transform=ax.get_xaxis_transform()
            )
        ax.set_xticks(x, labels, rotation=35, ha="right")
        ax.set_title(f"Δ {info['label']} vs {default} ({'↑' if info['higher_better'] else '↓'} better)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(
        f"Ablation: {method} on {dataset}. Error bars: std over seeds, or the bootstrap 95% CI of a single run",
        fontsize=8,
        y=1.03,
    )
    return _save(fig, fig_dir, _stem("ablation", dataset, method, src))


def _downscale(img, limit: int):
    from PIL import Image

    w, h = img.size
    if max(w, h) <= limit:
        return img
    s = limit / max(w, h)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)


def _dataset_images(root: Path, cell: dict[str, Any], image_id: str) -> dict[str, Any]:
    """The dataset's input and target of ``image_id`` as PIL images (None where unavailable)."""
    from PIL import Image

    kind, data_root, split = _s(cell.get("kind")), _s(cell.get("data_root")), _s(cell.get("test_split"))
    out: dict[str, Any] = {"input": None, "target": None, "note": ""}
    if not (kind and data_root and split):
        out["note"] = "dataset location unknown (no provenance)"
        return out
    base = Path(data_root) if Path(data_root).is_absolute() else root / data_root
    try:
        if kind == "raw":
            from llbench.data.raw import SIDRaw
            from llbench.metrics import to_uint8

            ds = SIDRaw(base, split)
            index = next((i for i, p in enumerate(getattr(ds, "pairs", [])) if str(p.id) == image_id), None)
            if index is not None:  # only this item's ground truth is rendered (cached by SIDRaw)
                out["target"] = Image.fromarray(to_uint8(ds[index]["target"]))
            out["note"] = "the raw input is a packed Bayer mosaic; it is not shown"
        else:
            from llbench.data.datasets import list_items

            items = {it.id: it for it in list_items(base, split, kind, targets=kind != "unpaired", verify=False)}
            it = items.get(image_id)
            if it is not None:
                out["input"] = Image.open(it.input).convert("RGB")
                if it.target is not None:
                    out["target"] = Image.open(it.target).convert("RGB")
    except Exception as e:  # the comparison is a convenience: a moved dataset must not break the report
        log.warning("visual comparison of %s: %s", image_id, e)
        out["note"] = f"dataset images unavailable ({type(e).__name__})"
    return out


def _fig_grid(
    fig_dir: Path, root: Path, section: dict[str, Any], cells: pd.DataFrame, per_image: pd.DataFrame
) -> dict[str, Any] | None:
    """Input, each method's default variant and the target: the same crop of one test image, click for full size."""
    from PIL import Image

    dataset = section["dataset"]
    picks = []
    for r in section["rows"]:
        ok = [s for s in r["seeds"] if s["status"] == "ok"]
        if not ok:
            continue
        c = cells[
            (cells["dataset"] == dataset)
            & (cells["method"] == r["method"])
            & (cells["variant"] == r["variant"])
            & (cells["run"] == ok[0]["run"])
        ]
        if c.empty:
            continue
        rec = c.iloc[0].to_dict()
        folder = root / rec["path"] / "outputs"
        ids = {p.stem: p for p in sorted(folder.glob("*.png"))} if folder.is_dir() else {}
        if ids:
            picks.append((r, rec, ids))
    if not picks:
        return None
    common = set.intersection(*(set(p[2]) for p in picks))
    image_id = sorted(common or picks[0][2])[0]
    data = _dataset_images(root, picks[0][1], image_id)
    tiles: list[tuple[str, Any, str]] = []
    baseline = [p for p in picks if p[0]["baseline"]]
    if baseline and image_id in baseline[0][2]:
        tiles.append((BASELINE_LABEL, Image.open(baseline[0][2][image_id]).convert("RGB"), baseline[0][1]["path"]))
    elif data["input"] is not None:
        tiles.append(("input", data["input"], ""))
    for r, rec, ids in picks:
        if r["baseline"] or image_id not in ids:
            continue
        tiles.append(
            (
                _label(r["method"], r["variant"], r["variant"] not in ("default", _default_variant(r["method"]))),
                Image.open(ids[image_id]).convert("RGB"),
                rec["path"],
            )
        )
    if data["target"] is not None:
        tiles.append(("target", data["target"], ""))
    w, h = tiles[0][1].size
    side = min(w, h, max(96, min(w, h) // 2))
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    zoom = max(1, 256 // side)
    stem = _stem("grid", dataset)
    d = fig_dir / stem
    d.mkdir(parents=True, exist_ok=True)
    psnr = {}
    if not per_image.empty and "psnr" in per_image:
        sel = per_image[(per_image["dataset"] == dataset) & (per_image["id"].astype(str) == image_id)]
        for _, x in sel.iterrows():
            psnr[f"results/{dataset}/{x['method']}/{x['variant']}/{x['run']}"] = _f(x.get("psnr"))
    out_tiles = []
    for i, (label, img, path) in enumerate(tiles):
        if img.size != (w, h):
            img = img.resize((w, h), Image.Resampling.BICUBIC)
        name = f"{i:02d}-{_stem(label)}"
        full = _downscale(img, _FULL_MAX)
        full.save(d / f"{name}.png")
        crop = img.crop(box)
        crop = crop.resize((side * zoom, side * zoom), Image.Resampling.NEAREST)
        crop.save(d / f"{name}-crop.png")
        out_tiles.append(
            {
                "label": label,
                "full": f"{fig_dir.name}/{stem}/{name}.png",
                "crop": f"{fig_dir.name}/{stem}/{name}-crop.png",
                "psnr": psnr.get(path, math.nan),
                "anchor": anchor(path) if path else "",
                "downscaled": full.size != img.size,
            }
        )
    return {"image_id": image_id, "box": box, "size": (h, w), "zoom": zoom, "tiles": out_tiles, "note": data["note"]}


def draw_figures(
    fig_dir: Path,
    *,
    results: Path,
    main: pd.DataFrame,
    cells: pd.DataFrame,
    abl: pd.DataFrame,
    prof: pd.DataFrame,
    per_image: pd.DataFrame,
    train_log: pd.DataFrame,
    sections: list[dict[str, Any]],
) -> dict[str, Any]:
    """Every figure of the report (PNG + SVG) under ``fig_dir``; returns their paths keyed for the context."""
    marker = fig_dir / ".llbench-figures"
    if marker.is_file():
        shutil.rmtree(fig_dir)  # no stale figures of cells that are gone (only a folder this function made)
    fig_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text("figures of the lowlight-bench report; the folder is replaced on every render\n")
    root = Path(results).parent
    profiles = _Profiles(prof)
    figs: dict[str, Any] = {"cost": {}, "per_image": {}, "grid": {}, "train": [], "ablation": {}}
    steps = []
    for s in sections:
        g = main[main["dataset"] == s["dataset"]]
        order = list(dict.fromkeys(zip(g["method"], g["variant"], strict=True)))
        steps += [
            ("cost", s["dataset"], lambda g=g, s=s: _fig_cost(fig_dir, s["dataset"], g, profiles)),
            ("per_image", s["dataset"], lambda s=s, o=order: _fig_per_image(fig_dir, s["dataset"], per_image, o)),
            ("grid", s["dataset"], lambda s=s: _fig_grid(fig_dir, root, s, cells, per_image)),
        ]
    if not abl.empty:
        for key, g in abl.groupby(["dataset", "method", "source"], sort=False):
            steps.append(("ablation", key, lambda g=g, k=key: _fig_ablation(fig_dir, *k, g)))
    for kind, key, draw in steps:
        try:
            fig = draw()
        except Exception:  # one broken figure must not take the report down; the log says which
            log.exception("figure %s %s failed", kind, key)
            fig = None
        if fig is not None:
            figs[kind][key] = fig
    try:
        figs["train"] = _fig_train(fig_dir, train_log)
    except Exception:
        log.exception("training curves failed")
    return figs
