"""Process set-up shared by every job: device lease, threads, seeds, determinism, atomic writes."""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llbench import gpu


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def setup(runtime: dict[str, Any], seed: int = 0) -> tuple[torch.device, gpu.Lease]:
    """Lease a device, set threads and determinism flags, seed every RNG. Call before touching CUDA.

    Determinism: on the CPU results are bit-identical for the same config, seed and thread count.
    On CUDA we set ``torch.use_deterministic_algorithms(True)``, ``cudnn.benchmark = False``,
    ``cudnn.deterministic = True`` and ``CUBLAS_WORKSPACE_CONFIG=:4096:8``; ops without a deterministic
    CUDA kernel then warn instead of failing (``warn_only``), which is the residual non-determinism.
    """
    lease = gpu.lease(runtime.get("device", "auto"), runtime.get("gpus"))
    # LLBENCH_THREADS: the cores the scheduler gave this job (Snakemake's {threads}); not part of the spec
    torch.set_num_threads(int(os.environ.get("LLBENCH_THREADS") or runtime.get("threads", 1)))
    if runtime.get("deterministic", True):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    seed_everything(seed)
    device = torch.device("cuda:0" if lease.kind != "cpu" and torch.cuda.is_available() else "cpu")
    if lease.kind != "cpu" and device.type == "cpu":
        lease.release()
        if runtime.get("device") == "cuda":
            raise RuntimeError(
                f"device: cuda requested, but torch sees no CUDA device (CUDA_VISIBLE_DEVICES={lease.device})"
            )
        lease = gpu.Lease("cpu", "cpu")
    return device, lease


def describe_device(device: torch.device, lease: gpu.Lease) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": device.type,
        "lease": lease.kind,
        "visible": lease.device,
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        out["name"] = torch.cuda.get_device_name(device)
    return out


def _publish(tmp: str, path: Path) -> None:
    """Give the temp file normal permissions (mkstemp makes it 0600) and move it into place."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and ``os.replace``: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rows_to_csv(rows: list[dict[str, Any]], empty_header: str = "id") -> str:
    """CSV text of dict rows; columns in first-seen order (rows may add columns, e.g. optional metrics)."""
    import csv
    import io

    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys or [empty_header])
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, allow_nan=False, default=str) + "\n")


def atomic_torch_save(obj: Any, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with a clear error for missing, truncated or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle with disallowed globals, not a torch file ...
        raise ValueError(
            f"{path}: not a readable checkpoint (truncated or not a weights-only torch file): "
            f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        ) from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict (state dict or llbench checkpoint), got {type(obj).__name__}")
    return obj
