"""GPU slot leasing for Snakemake jobs (DESIGN.md ▶ GPUs and scale-out).

Snakemake's ``resources: gpu=1`` only caps how many GPU jobs run at once; it assigns no device
(snakemake#281). Each job therefore leases one device itself: a non-blocking ``flock`` on one lock file
per device of the pool, held for the job's lifetime. The kernel releases it when the process exits,
even on SIGKILL. The job then sets ``CUDA_VISIBLE_DEVICES`` to that device before CUDA initialises.

A device already assigned by a cluster scheduler (``CUDA_VISIBLE_DEVICES`` set in the job's
environment, as SLURM does) is respected and nothing is leased.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

LOCK_DIR = Path(os.environ.get("LLBENCH_LOCK_DIR", ".gpu_locks"))


@dataclass
class Lease:
    """The device a job runs on: ``kind`` is ``cpu``, ``leased`` (flock held) or ``assigned`` (scheduler)."""

    kind: str
    device: str  # the physical device id(s) as CUDA_VISIBLE_DEVICES shows them, or "cpu"
    handle: IO | None = None

    def release(self) -> None:
        if self.handle is not None:
            _log("release", self.device)
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def gpu_pool(configured: list[int] | None = None) -> list[int]:
    """Devices a job may lease: config ``gpus``, else env ``LLBENCH_GPUS`` (``0,1,3``), else all visible."""
    if configured:
        return list(configured)
    env = os.environ.get("LLBENCH_GPUS")
    if env is not None:
        try:
            return [int(v) for v in env.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"LLBENCH_GPUS must be comma-separated device indices, got {env!r}") from None
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    out = subprocess.run([smi, "-L"], capture_output=True, text=True)
    return list(range(sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))))


def _log(event: str, device: str) -> None:
    """Append a lease event to ``LLBENCH_LEASE_LOG`` (JSON lines), used by tests and for auditing."""
    path = os.environ.get("LLBENCH_LEASE_LOG")
    if path:
        rec = {"event": event, "device": device, "pid": os.getpid(), "time": time.time()}
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")


def lease(device: str = "auto", pool: list[int] | None = None, timeout: float = 3600.0) -> Lease:
    """Take a device for this process and set ``CUDA_VISIBLE_DEVICES``; call before CUDA is used.

    Args:
        device: ``cpu`` (no lease), ``cuda`` (a GPU is required) or ``auto`` (a GPU when the pool has one).
        pool: configured device indices (see :func:`gpu_pool`).
        timeout: seconds to wait for a free device (only when something outside Snakemake holds them).
    """
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return Lease("cpu", "cpu")
    assigned = os.environ.get("CUDA_VISIBLE_DEVICES")
    if assigned and not os.environ.get("LLBENCH_LEASED"):
        _log("assigned", assigned)
        return Lease("assigned", assigned)
    devices = gpu_pool(pool)
    if not devices:
        if device == "cuda":
            raise RuntimeError(
                "device: cuda was requested but the GPU pool is empty (no nvidia-smi, LLBENCH_GPUS or gpus)"
            )
        return Lease("cpu", "cpu")
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        for d in devices:
            handle = open(LOCK_DIR / f"gpu{d}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            os.environ["CUDA_VISIBLE_DEVICES"] = str(d)
            os.environ["LLBENCH_LEASED"] = "1"  # children inherit the device, not the right to re-lease
            _log("acquire", str(d))
            return Lease("leased", str(d), handle)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU in pool {devices} after {timeout:.0f} s (locks in {LOCK_DIR})")
        time.sleep(0.5)
