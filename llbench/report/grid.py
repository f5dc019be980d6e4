"""The visual comparison of one dataset, made by the ``grid`` rule from its declared inputs.

The same crop of one test image: the baseline (or the dataset's input), each method's default variant, the
target. The job reads the dataset (through its stamp) and the cells' ``outputs/`` and ``per_image.csv``, and
writes the crops, the downscaled full images and ``grid.json`` (what the report shows) into one folder; the
report reads only that file.

    llbench grid --spec '{"dataset": {...}, "cells": [{"path": ..., "label": ..., "baseline": ...}]}' --out DIR
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger("llbench.report")
FULL_MAX = 2048  # the "full image" of the visual comparison is downscaled to this many pixels on its long side
INDEX = "grid.json"


def _downscale(img, limit: int):
    from PIL import Image

    w, h = img.size
    if max(w, h) <= limit:
        return img
    s = limit / max(w, h)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)


def dataset_images(dataset: dict[str, Any], image_id: str) -> dict[str, Any]:
    """The dataset's input and target of ``image_id`` as PIL images (None where unavailable, with a note)."""
    from PIL import Image

    kind, root, split = dataset.get("kind"), dataset.get("root"), dataset.get("test")
    out: dict[str, Any] = {"input": None, "target": None, "note": ""}
    if not (kind and root and split):
        out["note"] = "dataset location unknown"
        return out
    try:
        if kind == "raw":
            from llbench.data.raw import SIDRaw
            from llbench.metrics import to_uint8

            ds = SIDRaw(Path(root), split)
            index = next((i for i, p in enumerate(getattr(ds, "pairs", [])) if str(p.id) == image_id), None)
            if index is not None:  # only this item's ground truth is rendered (cached by SIDRaw)
                out["target"] = Image.fromarray(to_uint8(ds[index]["target"]))
            out["note"] = "the raw input is a packed Bayer mosaic; it is not shown"
        else:
            from llbench.data.datasets import list_items

            items = {it.id: it for it in list_items(root, split, kind, targets=kind != "unpaired", verify=False)}
            it = items.get(image_id)
            if it is not None:
                out["input"] = Image.open(it.input).convert("RGB")
                if it.target is not None:
                    out["target"] = Image.open(it.target).convert("RGB")
    except Exception as e:  # the comparison is a convenience: unreadable data must not break the report
        log.warning("visual comparison of %s: %s", image_id, e)
        out["note"] = f"dataset images unavailable ({type(e).__name__})"
    return out


def _psnr(cell_dir: Path, image_id: str) -> float:
    try:
        per_image = pd.read_csv(cell_dir / "per_image.csv", dtype={"id": str})
        value = per_image.loc[per_image["id"] == image_id, "psnr"]
        return float(value.iloc[0]) if len(value) else math.nan
    except (OSError, KeyError, ValueError, pd.errors.EmptyDataError):
        return math.nan


def make_grid(dataset: dict[str, Any], cells: list[dict[str, Any]], out: Path) -> Path | None:
    """Write the grid of ``dataset`` (``{"name", "kind", "root", "test"}``) from ``cells`` (``{"path", "label",
    "baseline"}``, in table order) into ``out``; returns ``out/grid.json`` (None when no cell has outputs)."""
    from PIL import Image

    from llbench.runtime import atomic_write_json

    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    picks = []
    for c in cells:
        folder = Path(c["path"]) / "outputs"
        ids = {p.stem: p for p in sorted(folder.glob("*.png"))} if folder.is_dir() else {}
        if ids:
            picks.append((c, ids))
    if not picks:
        atomic_write_json(out / INDEX, None)
        return None
    common = set.intersection(*(set(ids) for _, ids in picks))
    image_id = sorted(common or picks[0][1])[0]
    data = dataset_images(dataset, image_id)
    tiles: list[tuple[str, Any, str]] = []
    baseline = [(c, ids) for c, ids in picks if c["baseline"] and image_id in ids]
    if baseline:
        c, ids = baseline[0]
        tiles.append((c["label"], Image.open(ids[image_id]).convert("RGB"), c["path"]))
    elif data["input"] is not None:
        tiles.append(("input", data["input"], ""))
    for c, ids in picks:
        if not c["baseline"] and image_id in ids:
            tiles.append((c["label"], Image.open(ids[image_id]).convert("RGB"), c["path"]))
    if data["target"] is not None:
        tiles.append(("target", data["target"], ""))
    w, h = tiles[0][1].size
    side = min(w, h, max(96, min(w, h) // 2))
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    zoom = max(1, 256 // side)
    out_tiles = []
    for i, (label, img, path) in enumerate(tiles):
        if img.size != (w, h):
            img = img.resize((w, h), Image.Resampling.BICUBIC)
        name = f"{i:02d}"
        full = _downscale(img, FULL_MAX)
        full.save(out / f"{name}.png")
        crop = img.crop(box).resize((side * zoom, side * zoom), Image.Resampling.NEAREST)
        crop.save(out / f"{name}-crop.png")
        psnr = _psnr(Path(path), image_id) if path else math.nan
        out_tiles.append(
            {
                "label": label,
                "full": f"{name}.png",
                "crop": f"{name}-crop.png",
                "psnr": psnr if math.isfinite(psnr) else None,
                "path": path,
                "downscaled": full.size != img.size,
            }
        )
    grid = {"image_id": image_id, "box": box, "size": (h, w), "zoom": zoom, "tiles": out_tiles, "note": data["note"]}
    atomic_write_json(out / INDEX, grid)
    return out / INDEX


def read_grid(folder: Path, prefix: str) -> dict[str, Any] | None:
    """A grid written by :func:`make_grid`, its image paths prefixed by ``prefix`` (relative to index.html)."""
    path = Path(folder) / INDEX
    if not path.is_file():
        return None
    grid = json.loads(path.read_text())
    if not grid:
        return None
    for t in grid["tiles"]:
        t["full"], t["crop"] = f"{prefix}/{t['full']}", f"{prefix}/{t['crop']}"
        t["psnr"] = math.nan if t["psnr"] is None else t["psnr"]
    return grid
