"""How fast the training data path feeds a method, and in how much memory, on a dataset folder.

    python benchmarks/bench_data.py --root <stand-ins>/sidd --kind denoise --method apbsn --workers 2 --json
    python benchmarks/bench_data.py --root <stand-ins>/lol --kind paired --method snr_aware --path files cache

For each path (``files``: decode the source image for every sample, as before the cache; ``cache``: crops
read from the memory-mapped training cache, llbench.data.cache) it runs the method's real loader
(``TrainSet`` + ``DataLoader`` with ``StreamSampler``, the method's official crop, batch and augmentation)
in a fresh process and measures: samples/s after one warm-up batch, the memory of a DataLoader worker
(below; with ``--workers 0`` the main process's growth), and the cache's
build time and size (built into ``--cache-base`` if it is not there; a rebuild only when the data change).
It also times the method's CPU training step on a batch of that shape and prints the share of a step spent
waiting for data at that step time and at an estimated GPU step time: training FLOPs (3x the forward pass,
counted by llbench.profiling) at ``--gpu-tflops`` sustained; the assumption is printed with the number.

Memory per worker: ``peak_rss_mb_per_worker`` is the strict peak (``ru_maxrss``: it counts the pages the
worker shares with the main process it was forked from); ``peak_pss_mb_per_worker`` divides shared pages
among their sharers, and ``rss_growth_mb_per_worker`` is how much a worker's RSS grew between its first
batch and the end (it must not grow with the data read). Polled from /proc every 20 ms.

With ``--json`` it prints one JSON object (at least samples_per_s, peak_rss_mb_per_worker, cache_build_s,
cache_mb): the cache path's figures, the files path's under ``files`` and ``speedup_vs_files``;
otherwise a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _loader(args: argparse.Namespace, cache_folder: str | None):
    import torch
    from torch.utils.data import DataLoader

    import methods
    from llbench.data.datasets import StreamSampler, TrainSet

    method = methods.get(args.method)
    cfg = method.train_config(None, args.recipe)
    data = TrainSet(args.root, args.split, args.kind, method.train_data, cfg, seed=0, cache=cache_folder)
    batch = int(cfg["batch_size"])
    loader = DataLoader(
        data,
        batch_size=batch,
        sampler=StreamSampler(len(data), 0),
        num_workers=args.workers,
        prefetch_factor=4 if args.workers > 0 else None,
        generator=torch.Generator().manual_seed(0),
    )
    return method, cfg, batch, loader


def _rss_kb(pid: int) -> dict[str, int]:
    """Memory of ``pid`` in kB (Linux /proc): VmRSS and its parts (RssAnon: heap, including the pages
    inherited from the main process at fork and still shared with it; RssFile: mapped files; RssShmem:
    shared memory such as the batches handed to the main process) and Pss (each shared page divided
    among the processes sharing it: the sum over processes is the memory they take together)."""
    found = {}
    for name in ("status", "smaps_rollup"):
        try:
            lines = Path(f"/proc/{pid}/{name}").read_text().splitlines()
        except OSError:
            return {}
        for ln in lines:
            key, _, value = ln.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Pss"):
                found[key] = int(value.split()[0])
    return found


class WorkerMemory:
    """Polls the DataLoader workers' /proc status every 20 ms: peak of each part, and VmRSS after the
    first batch and at the end (whether a worker's memory grows as it reads more of the dataset)."""

    def __init__(self, pids: list[int]):
        import threading

        self.pids, self.peak, self.first, self.last = pids, {}, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            for pid in self.pids:
                now = _rss_kb(pid)
                for k, v in now.items():
                    self.peak[k] = max(self.peak.get(k, 0), v)
                if now:
                    self.first.setdefault(pid, now["VmRSS"])
                    self.last[pid] = now["VmRSS"]

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        growth = [self.last[p] - self.first[p] for p in self.last]
        return {
            "peak_pss_mb_per_worker": self.peak.get("Pss", 0) / 1024,
            "peak_anon_mb_per_worker": self.peak.get("RssAnon", 0) / 1024,
            "peak_file_mb_per_worker": self.peak.get("RssFile", 0) / 1024,
            "peak_shmem_mb_per_worker": self.peak.get("RssShmem", 0) / 1024,
            "rss_growth_mb_per_worker": max(growth, default=0) / 1024,
        }


def measure_one(args: argparse.Namespace) -> dict[str, Any]:
    """One path in this process (run by the parent in a fresh interpreter)."""
    import torch

    torch.set_num_threads(1)
    cache_folder = args.cache_folder or None
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    method, cfg, batch, loader = _loader(args, cache_folder)
    it = iter(loader)
    memory = WorkerMemory([w.pid for w in getattr(it, "_workers", [])]) if args.workers > 0 else None
    first = next(it)  # warm-up: worker start, first files
    n_batches = max(1, args.samples // batch)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    wall = time.perf_counter() - t0
    parts = memory.stop() if memory else {}
    del it
    if args.workers > 0:
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    shapes = {k: list(v.shape) for k, v in first.items()}
    return {
        "samples_per_s": n_batches * batch / wall,
        "samples": n_batches * batch,
        "batch": batch,
        "shapes": shapes,
        "peak_rss_mb_per_worker": peak,
        **parts,
        "main_rss_mb_at_start": rss0 / 1024,
        "crop": cfg.get("crop"),
    }


def step_times(args: argparse.Namespace, shapes: dict[str, list[int]]) -> dict[str, Any]:
    """The method's CPU training step on a batch of ``shapes`` (median of 3; None with ``--no-step``) and
    its training FLOPs."""
    import statistics

    import torch

    import methods
    from llbench.profiling import count_flops

    torch.set_num_threads(args.threads)
    method = methods.get(args.method)
    cfg = {**method.train_config(None, args.recipe), "allow_untrained_vgg": True}
    model = method.build()
    trainer = method.trainer(model, cfg, torch.device("cpu"))
    batch = {k: torch.rand(s) for k, s in shapes.items()}
    times = []
    for _ in range(0 if args.no_step else 4):  # the first one warms up
        t0 = time.perf_counter()
        trainer.step(batch)
        times.append(time.perf_counter() - t0)
    opts = {"r3": False} if "r3" in method.infer_defaults else {}  # one pass, as a training forward
    flops = count_flops(lambda x: method.infer(model.eval(), x, **opts), batch["input"])["flops"]
    return {"cpu_step_s": statistics.median(times[1:]) if times else None, "train_flops": 3 * flops}


def _wait_share(data_s: float, step_s: float, workers: int) -> float:
    """Share of a step spent waiting when loading a batch takes ``data_s``: in parallel with the step
    when there are DataLoader workers, before it (in the training process) when there are none."""
    if workers == 0:
        return data_s / (data_s + step_s)
    return max(0.0, data_s - step_s) / max(data_s, step_s)


def _run_child(args: argparse.Namespace, cache_folder: str | None) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--one",
        "--root",
        str(args.root),
        "--kind",
        args.kind,
        "--method",
        args.method,
        "--workers",
        str(args.workers),
        "--samples",
        str(args.samples),
        "--split",
        args.split,
    ]
    if args.recipe:
        cmd += ["--recipe", args.recipe]
    if cache_folder:
        cmd += ["--cache-folder", cache_folder]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"bench_data: the {'cache' if cache_folder else 'files'} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One object: the path training uses (the cache, when measured) at the top level, the other paths
    under their names, and the speed-up of the cache over decoding the files."""
    top = next((r for r in results if r["path"] == "cache" and "samples_per_s" in r), results[0])
    out = dict(top)
    for r in results:
        if r is not top:
            out[r["path"]] = r
    if "files" in out and out["files"].get("samples_per_s") and top.get("samples_per_s"):
        out["speedup_vs_files"] = top["samples_per_s"] / out["files"]["samples_per_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, required=True, help="dataset root (canonical layout, MANIFEST.sha256)")
    p.add_argument("--kind", required=True, choices=["paired", "unpaired", "denoise", "raw"])
    p.add_argument("--method", required=True)
    p.add_argument("--recipe", default=None, help="the method's per-dataset recipe (e.g. lolv2-real)")
    p.add_argument("--split", default="train")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--samples", type=int, default=400, help="samples timed after the warm-up batch")
    p.add_argument("--path", nargs="+", default=["files", "cache"], choices=["files", "cache"])
    p.add_argument(
        "--cache-base", type=Path, default=None, help="default resources/cache/bench/<root folder name> (layout)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads of the timed CPU training step")
    p.add_argument("--no-step", action="store_true", help="skip the timed CPU training step (FLOPs still counted)")
    p.add_argument("--gpu-tflops", type=float, default=100.0, help="assumed sustained GPU throughput (TFLOP/s)")
    p.add_argument(
        "--gpu-min-step-ms", type=float, default=5.0, help="assumed floor of a GPU step (launches, optimizer)"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cache-folder", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(args)))
        return 0

    from llbench import layout
    from llbench.data import cache
    from llbench.data.manifest import MANIFEST, manifest_hash

    if not (args.root / MANIFEST).is_file():
        raise SystemExit(f"{args.root}: no {MANIFEST}; write one with `llbench data manifest {args.root}`")
    base = args.cache_base or Path(layout.bench_cache(args.root.resolve().name))
    results = []
    built = None
    for path in args.path:
        row: dict[str, Any] = {
            "path": path,
            "root": str(args.root),
            "kind": args.kind,
            "method": args.method,
            "workers": args.workers,
            "cache_build_s": None,
            "cache_mb": None,
        }
        folder = None
        if path == "cache":
            if args.kind not in cache.KINDS_CACHED:
                row["note"] = f"no training cache for {args.kind} data"
                results.append(row)
                continue
            built = cache.build(args.root, args.split, args.kind, manifest_hash(args.root), base)
            folder = built["folder"]
            row.update(
                cache_build_s=built["build_s"],
                cache_mb=built["bytes"] / 2**20,
                cache_reused=built["reused"],
                cache_folder=folder,
            )
        row.update(_run_child(args, folder))
        results.append(row)
    shapes = next((r["shapes"] for r in results if "shapes" in r), None)
    if shapes:
        steps = step_times(args, shapes)
        gpu_step = max(steps["train_flops"] / (args.gpu_tflops * 1e12), args.gpu_min_step_ms / 1e3)
        for r in results:
            if "samples_per_s" not in r:
                continue
            data_s = r["batch"] / r["samples_per_s"]
            r.update(
                cpu_step_s=steps["cpu_step_s"],
                data_wait_cpu=_wait_share(data_s, steps["cpu_step_s"], args.workers) if steps["cpu_step_s"] else None,
                gpu_step_s_estimate=gpu_step,
                data_wait_gpu_estimate=_wait_share(data_s, gpu_step, args.workers),
                gpu_assumption=f"{steps['train_flops'] / 1e9:.1f} GFLOP per step (3x forward) at "
                f"{args.gpu_tflops:g} TFLOP/s sustained, at least {args.gpu_min_step_ms:g} ms",
            )
    if args.json:
        print(json.dumps(summary(results)))
        return 0
    print(
        "| path | samples/s | peak RSS / PSS per worker (MB) | RSS growth (MB) | cache build (s) | cache (MB) "
        "| wait @CPU step | wait @GPU est. |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:

        def f(k, fmt, r=r):
            return format(r[k], fmt) if r.get(k) is not None else "n/a"

        print(
            f"| {r['path']} | {f('samples_per_s', '.0f')} | {f('peak_rss_mb_per_worker', '.0f')} / "
            f"{f('peak_pss_mb_per_worker', '.0f')} | {f('rss_growth_mb_per_worker', '.0f')} | "
            f"{f('cache_build_s', '.1f')} | {f('cache_mb', '.0f')} | {f('data_wait_cpu', '.0%')} | "
            f"{f('data_wait_gpu_estimate', '.0%')} |"
        )
    if results and results[-1].get("gpu_assumption"):
        print(f"\nGPU step estimate: {results[-1]['gpu_assumption']}; CPU step measured with {args.threads} thread(s).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
