"""Evaluation of one cell (DESIGN.md ▶ Metrics protocol) and ``llbench infer``.

Native-resolution inference through the method's own procedure, output quantised to 8 bit with rounding
and saved as PNG; metrics on the saved 8-bit output against the 8-bit target. Writes ``outputs/<id>.png``,
``per_image.csv`` and ``metrics.json`` (mean, bootstrap 95% interval, protocol, provenance); metrics that
do not apply (no target) are recorded as not applicable, never as a number.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import methods
from llbench import metrics, provenance, runtime
from llbench.data import stage
from llbench.data.datasets import EvalSet
from llbench.data.images import read_image, to_tensor, write_png
from llbench.data.manifest import check_sha256
from llbench.train import CHECKPOINT_FORMAT
from llbench.vocabulary import PRIMARY

log = logging.getLogger("llbench.evaluate")


#: wrappers that official and third-party checkpoints put around a state dict: PyTorch Lightning and most
#: research code ("state_dict"), many repositories ("model"), BasicSR and its forks ("params")
STATE_WRAPPERS = ("state_dict", "model", "params")


def unwrap_state(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The state dict inside the common checkpoint wrappers, without DataParallel's ``module.`` prefix.

    Method-specific layouts (ALEN's ``{"enhance": ...}``, AP-BSN's ``{"model_weight": {"denoiser": ...}}``)
    pass through unchanged to the method's :meth:`~methods.Method.convert_official`.
    """
    while not any(isinstance(v, torch.Tensor) for v in obj.values()):
        key = next((k for k in STATE_WRAPPERS if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            break
        obj = obj[key]
    if obj and all(isinstance(k, str) and k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def load_weights(method: methods.Method, model: nn.Module, path: Path) -> dict[str, Any]:
    """Load a project or official checkpoint into ``model``; returns its flags and format.

    Every error names ``path``: a foreign method, an unknown layout (with the keys found), missing or
    unexpected keys, a shape mismatch.
    """
    obj = runtime.load_checkpoint(path)
    if obj.get("format") == CHECKPOINT_FORMAT:
        if obj.get("method") != method.name:
            raise ValueError(f"{path}: checkpoint of method {obj.get('method')!r}, expected {method.name!r}")
        state, info = obj["model"], {"format": CHECKPOINT_FORMAT, "flags": obj.get("flags", {})}
    else:
        try:
            state = method.convert_official(unwrap_state(obj))
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            reason = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            raise ValueError(
                f"{path}: not a {method.name} checkpoint in a known layout ({reason}); "
                f"top-level keys found: {sorted(map(str, obj))[:10]}"
            ) from None
        info = {"format": "official", "flags": {}}
    bad = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise ValueError(
            f"{path}: entries {bad[:5]} are not tensors; top-level keys found: {sorted(map(str, obj))[:10]}"
        )
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
    """Mean, bootstrap interval and ``n`` (images with a value) per metric; ``None`` means not applicable.

    A non-finite value is an error, never dropped: every metric is averaged over the images it applies to
    (PSNR of identical images is capped at 100 dB, :func:`llbench.metrics.psnr`).
    """
    out = {}
    for name in names:
        for r in rows:
            if r.get(name) is not None and not math.isfinite(r[name]):
                raise ValueError(f"metric {name} of image {r['id']} is {r[name]}: not a finite number")
        vals = np.array([r[name] for r in rows if r.get(name) is not None], dtype=float)
        if len(vals) == 0:
            out[name] = {"mean": None, "ci95": None, "n": 0}
            continue
        lo, hi = metrics.bootstrap_ci(vals)
        out[name] = {"mean": float(vals.mean()), "ci95": [float(lo), float(hi)], "n": int(len(vals))}
    return out


def evaluate(spec: dict[str, Any], out: Path, checkpoint: Path | None = None, stamp: Path | None = None) -> Path:
    """Evaluate one cell; returns the path of ``metrics.json``.

    ``stamp``: the dataset's stamp (the ``dataset`` rule's output); the test files are checked against it
    before anything is computed (:func:`llbench.data.stage.verify`) and it is recorded as provenance.
    ``spec["checkpoint_sha256"]``, when set, must equal the checkpoint file's sha256.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    data_info = stage.verify(stamp) if stamp is not None else None
    ckpt_sha256 = None
    if checkpoint is not None:
        ckpt_sha256 = check_sha256(checkpoint, spec.get("checkpoint_sha256"), source="the config")
    out = Path(out)
    method = methods.get(spec["method"])
    variant = method.variant_name(spec.get("variant"))
    ds = spec["dataset"]
    data = EvalSet(ds["root"], ds["test"], ds["kind"])
    device, lease = runtime.setup(spec.get("runtime", {}), int(spec.get("seed", 0)))
    try:
        model = method.build(variant)
        if checkpoint is not None:
            info = load_weights(method, model, checkpoint)
        elif not method.trained:
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
                    extra = method.extra_metrics(model, x, item["target"][None].to(device), output=y)
                undeclared = sorted(set(extra) - set(method.extra_columns))
                if undeclared:
                    raise ValueError(f"{method.name}.extra_metrics returned {undeclared}, not in its extra_columns")
                row.update(extra)
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
    for k in PRIMARY:
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
            "secondary": sorted(k for k in names if k not in PRIMARY),
        },
        "checkpoint": {
            "path": str(checkpoint) if checkpoint else None,
            "format": info["format"],
            "sha256": ckpt_sha256,
        },
        "inference": opts,
        "seconds_per_image": float(np.median([r["seconds"] for r in rows])) if rows else None,
        "flags": flags,
        "provenance": provenance.record(spec, data=data_info, device=dev, flags=flags),
    }
    runtime.atomic_write_text(out / "per_image.csv", runtime.rows_to_csv(rows))
    runtime.atomic_write_json(out / "metrics.json", result)
    return out / "metrics.json"


def infer_files(
    method_name: str, variant: str, checkpoint: Path, inputs: list[Path], out_dir: Path, device: str = "auto"
) -> list[Path]:
    """Enhance image files with a project or official checkpoint; writes ``<out_dir>/<stem>.png``."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: exists and is not a folder (-o takes the output folder)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{out_dir}: cannot create the output folder ({e.strerror})") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise ValueError(f"{out_dir}: output folder is not writable")
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
