"""The report's figures (matplotlib, Agg; imported here only), drawn from the tables.

Every figure is written as PNG (shown) and SVG (linked) under ``figures/`` beside ``index.html``. The visual
comparison is not drawn here: the ``grid`` rule makes it from its declared inputs (:mod:`llbench.report.grid`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llbench.report.environment import present
from llbench.report.lookup import Profiles, as_number, default_variant, is_baseline, metric_info, row_label
from llbench.vocabulary import PRIMARY

log = logging.getLogger("llbench.report")

_TRAIN_SKIP = {"iteration", "epoch", "lr", "data_s", "step_s", "dataset", "method", "variant", "run"}


def _pyplot():
    """matplotlib.pyplot on the Agg backend, in the report's style (imported on first use)."""
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
    _pyplot().close(fig)
    return {"png": f"{fig_dir.name}/{stem}.png", "svg": f"{fig_dir.name}/{stem}.svg"}


def _label(method: str, variant: str, with_variant: bool = True) -> str:
    if is_baseline(method):
        return row_label(method)
    return f"{method}/{variant}" if with_variant else method


def _quality_metric(rows: pd.DataFrame) -> str | None:
    for k in ("psnr", "niqe"):
        if k in rows and pd.to_numeric(rows[k], errors="coerce").notna().any():
            return k
    return None


def _fig_cost(fig_dir: Path, dataset: str, g: pd.DataFrame, prof: Profiles) -> dict[str, str] | None:
    g = g[g["status"].isin(["ok", "partial"])]
    metric = _quality_metric(g)
    if metric is None:
        return None
    info = metric_info(metric)
    pts = []
    base, base_label = math.nan, ""
    for _, r in g.iterrows():
        y = as_number(r.get(metric))
        if not present(y):
            continue
        if is_baseline(r["method"]):
            base, base_label = y, row_label(r["method"])
            continue
        p = prof.get(r["method"], r["variant"], "256x256")
        if p is None:
            continue
        is_default = r["variant"] == default_variant(r["method"])
        pts.append(
            (
                r["method"],
                r["variant"],
                y,
                as_number(r.get(f"{metric}_std")),
                as_number(p.get("gflops")),
                as_number(p.get("latency_ms")),
                is_default,
            )
        )
    if not pts:
        return None
    with_default = {p[0] for p in pts if p[6]}
    plt = _pyplot()
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
            ax.axhline(base, color="0.4", ls="--", lw=1, label=base_label)
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
    plt = _pyplot()
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
        plt = _pyplot()
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
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(cols), figsize=(3.3 * len(cols) + 0.6, 3.0), squeeze=False)
    default = default_variant(method)
    for ax, c in zip(axes[0], cols, strict=True):
        info = metric_info(c)
        labels, deltas, errs, colors, missing = [], [], [[], []], [], []
        for i, (_, r) in enumerate(g.iterrows()):
            v, d = as_number(r.get(c)), as_number(r.get(f"{c}_delta"))
            labels.append(r["variant"])
            std, lo, hi = (
                as_number(r.get(f"{c}_std")),
                as_number(r.get(f"{c}_ci_low")),
                as_number(r.get(f"{c}_ci_high")),
            )
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
                if r["variant"] == default
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


def draw_figures(
    fig_dir: Path,
    *,
    main: pd.DataFrame,
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
    profiles = Profiles(prof)
    figs: dict[str, Any] = {"cost": {}, "per_image": {}, "train": [], "ablation": {}}
    steps = []
    for s in sections:
        g = main[main["dataset"] == s["dataset"]]
        order = list(dict.fromkeys(zip(g["method"], g["variant"], strict=True)))
        steps += [
            ("cost", s["dataset"], lambda g=g, s=s: _fig_cost(fig_dir, s["dataset"], g, profiles)),
            ("per_image", s["dataset"], lambda s=s, o=order: _fig_per_image(fig_dir, s["dataset"], per_image, o)),
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
