"""Evaluation of one cell (DESIGN.md ▶ Metrics protocol) and ``llbench infer``.

Native-resolution inference through the method's own procedure, output quantised to 8 bit with rounding
and saved as PNG; metrics on the saved 8-bit output against the 8-bit target. Writes ``outputs/<id>.png``,
``per_image.csv`` and ``metrics.json`` (mean, bootstrap 95% interval, protocol, provenance); metrics that
do not apply (no target) are recorded as not applicable, never as a number.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import methods
from llbench import metrics, provenance, runtime
from llbench.data.datasets import EvalSet
from llbench.data.images import read_image, to_tensor, write_png
from llbench.train import CHECKPOINT_FORMAT

log = logging.getLogger("llbench.evaluate")


def load_weights(method: methods.Method, model: nn.Module, path: Path) -> dict[str, Any]:
    """Load a project or official checkpoint into ``model``; returns its flags and format."""
    obj = runtime.load_checkpoint(path)
    if obj.get("format") == CHECKPOINT_FORMAT:
        if obj.get("method") != method.name:
            raise ValueError(f"{path}: checkpoint of method {obj.get('method')!r}, expected {method.name!r}")
        state, info = obj["model"], {"format": CHECKPOINT_FORMAT, "flags": obj.get("flags", {})}
    else:
        state, info = method.convert_official(obj), {"format": "official", "flags": {}}
    missing, unexpected = [], []
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{path}: does not fit {method.name}: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{path}: key {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    model.load_state_dict(state)
    return info


def _summary(rows: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    out = {}
    for name in names:
        vals = np.array([r[name] for r in rows if r.get(name) is not None and math.isfinite(r[name])], dtype=float)
        if len(vals) == 0:
            out[name] = {"mean": None, "ci95": None, "n": 0}
            continue
        lo, hi = metrics.bootstrap_ci(vals)
        out[name] = {"mean": float(vals.mean()), "ci95": [float(lo), float(hi)], "n": int(len(vals))}
    return out


def evaluate(spec: dict[str, Any], out: Path, checkpoint: Path | None = None) -> Path:
    """Evaluate one cell; returns the path of ``metrics.json``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    out = Path(out)
    method = methods.get(spec["method"])
    variant = spec.get("variant", "default")
    ds = spec["dataset"]
    data = EvalSet(ds["root"], ds["test"], ds["kind"])
    device, lease = runtime.setup(spec.get("runtime", {}), int(spec.get("seed", 0)))
    try:
        model = method.build(variant)
        if checkpoint is not None:
            info = load_weights(method, model, checkpoint)
        elif method.train_data == "none":
            info = {"format": "none", "flags": {}}
        else:
            raise ValueError(f"{method.name} needs a checkpoint to evaluate (none given for {out})")
        model.to(device).eval()
        opts = {**method.infer_config(variant), **spec.get("infer", {})}
        rows = []
        for i in range(len(data)):
            item = data[i]
            x = item["input"][None].to(device)
            t0 = time.perf_counter()
            with torch.inference_mode():
                y = method.infer(model, x, **opts)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            out_u8 = metrics.to_uint8(y[0].float().cpu())
            write_png(out / "outputs" / f"{item['id']}.png", out_u8)
            row: dict[str, Any] = {"id": item["id"], "height": out_u8.shape[0], "width": out_u8.shape[1]}
            if "target" in item:
                tgt_u8 = metrics.to_uint8(item["target"])
                if tgt_u8.shape != out_u8.shape:
                    raise ValueError(f"{ds['root']}: output of {item['id']} is {out_u8.shape}, target {tgt_u8.shape}")
                row["psnr"] = metrics.psnr(out_u8, tgt_u8)
                row["ssim"] = metrics.ssim(out_u8, tgt_u8)
                if ds.get("gt_mean"):
                    corrected = metrics.gt_mean(out_u8, tgt_u8)
                    row["psnr_gtmean"] = metrics.psnr(corrected, tgt_u8)
                    row["ssim_gtmean"] = metrics.ssim(corrected, tgt_u8)
                with torch.inference_mode():
                    row.update(method.extra_metrics(model, x, item["target"][None].to(device), output=y))
            try:
                row["niqe"] = metrics.niqe(out_u8)
            except ValueError as e:  # NIQE is undefined on images smaller than its block grid
                log.warning("%s: NIQE not applicable: %s", item["id"], e)
                row["niqe"] = None
            row["seconds"] = seconds
            rows.append(row)
            log.info("%s %s", item["id"], {k: v for k, v in row.items() if k != "id"})
        dev = runtime.describe_device(device, lease)
    finally:
        lease.release()
    names = [k for k in rows[0] if k not in ("id", "height", "width", "seconds")] if rows else []
    for k in ("psnr", "ssim", "niqe"):
        if k not in names:
            names.append(k)
    summary = _summary(rows, names)
    flags = {**info["flags"]}
    result = {
        "cell": {
            "dataset": ds["name"],
            "method": method.name,
            "variant": variant,
            "run": spec.get("run"),
            "train_dataset": spec.get("train_dataset"),
        },
        "metrics": summary,
        "not_applicable": [k for k, v in summary.items() if v["n"] == 0],
        "images": len(rows),
        "protocol": {
            **metrics.PROTOCOL,
            "gt_mean": bool(ds.get("gt_mean")),
            "secondary": sorted(k for k in names if k not in ("psnr", "ssim", "niqe")),
        },
        "checkpoint": {"path": str(checkpoint) if checkpoint else None, "format": info["format"]},
        "inference": opts,
        "seconds_per_image": float(np.median([r["seconds"] for r in rows])) if rows else None,
        "flags": flags,
        "provenance": provenance.record(spec, data=_stamp(ds["name"]), device=dev, flags=flags),
    }
    runtime.atomic_write_text(out / "per_image.csv", runtime.rows_to_csv(rows))
    runtime.atomic_write_json(out / "metrics.json", result)
    return out / "metrics.json"


def _stamp(name: str) -> dict[str, Any] | None:
    from llbench.train import _dataset_stamp

    return _dataset_stamp(name)


def infer_files(
    method_name: str, variant: str, checkpoint: Path, inputs: list[Path], out_dir: Path, device: str = "auto"
) -> list[Path]:
    """Enhance image files with a project or official checkpoint; writes ``<out_dir>/<stem>.png``."""
    method = methods.get(method_name)
    dev, lease = runtime.setup({"device": device, "threads": torch.get_num_threads()})
    written = []
    try:
        model = method.build(variant)
        load_weights(method, model, checkpoint)
        model.to(dev).eval()
        opts = method.infer_config(variant)
        for path in inputs:
            if method.task == "raw":
                from llbench.data.raw import load_raw_input

                x = load_raw_input(path)
            else:
                x = to_tensor(read_image(path))
            with torch.inference_mode():
                y = method.infer(model, x[None].to(dev), **opts)
            target = Path(out_dir) / f"{Path(path).stem}.png"
            write_png(target, metrics.to_uint8(y[0].float().cpu()))
            written.append(target)
    finally:
        lease.release()
    return written
