"""How fast the pipeline's parts are on this machine: DAG dry run, per-method training and inference,
the data loader's share of a training step, and metric throughput.

    python benchmarks/bench_pipeline.py                    # every part
    python benchmarks/bench_pipeline.py --only dag         # one part: dag, methods, data, metrics
    python benchmarks/bench_pipeline.py --only methods --methods sci,alen --repeats 5

Parts:
  dag      ``snakemake -n --configfile <tmp> --quiet`` on config/config.yaml with ``seeds: [0, 1, 2]`` in
           every experiment (median of --dag-repeats runs) and the number of jobs it plans.
  methods  per registered method (``methods.names()``; a method whose import fails is skipped and said
           so): training steps/s of its ``Trainer.step`` with the official recipe's crop and batch (batch
           capped at --cpu-batch-cap on CPU) on seeded random data, and inference images/s of
           ``Method.infer`` at the paper's sizes: 600x400 (enhancement), 256x256 (denoising), a 512x512 raw
           frame, i.e. 4x256x256 packed (raw). VGG-based losses run with untrained VGG weights (no download).
  data     ``llbench train`` on the tiny LOL set for --data-iterations iterations; the share of the loop
           spent waiting for the next batch, sum(data_s) / sum(data_s + step_s) from train_log.csv, with
           config/config.yaml's ``workers`` (and any others given by --workers).
  metrics  images/s of ``llbench.metrics`` psnr, ssim, niqe on 600x400 uint8 images.

Prints markdown tables and writes JSON to benchmarks/results/pipeline.json (or --out).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PARTS = ("dag", "methods", "data", "metrics")
#: inference input per task at the paper's sizes, (height, width) of the image (raw: of the sensor frame)
INFER_SIZE = {"enhance": (400, 600), "denoise": (256, 256), "raw": (512, 512)}
#: dataset whose official per-dataset recipe is used for the training-step benchmark
TRAIN_DATASET = {"enhance": "lol", "denoise": "sidd", "raw": "sid"}


def median_time(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> tuple[float, float]:
    """Median (wall seconds, process CPU seconds) of ``fn`` after ``warmup`` calls.

    CPU time is the load-independent number on a shared machine (other processes stretch wall time only).
    """
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    times, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), statistics.median(cpu)


# ------------------------------------------------------------------------------------------ dag


def bench_dag(repeats: int) -> dict[str, Any]:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for exp in cfg["experiments"]:
        exp["seeds"] = [0, 1, 2]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config_3seeds.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        cmd = [SNAKEMAKE, "-n", "--configfile", str(path), "--quiet"]
        times, cpu = [], []
        for _ in range(repeats):
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
            if out.returncode != 0:
                raise RuntimeError(f"dry run failed ({' '.join(cmd)}):\n{out.stderr[-3000:]}")
        stats = subprocess.run(
            [SNAKEMAKE, "-n", "--configfile", str(path), "--forceall"], cwd=ROOT, capture_output=True, text=True
        )
    jobs = {}
    for line in (stats.stdout + stats.stderr).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0].isidentifier() and parts[0] != "job":
            jobs[parts[0]] = int(parts[1])
    return {
        "seconds_median": statistics.median(times),
        "seconds_all": times,
        "cpu_seconds_median": statistics.median(cpu),
        "jobs_forceall": jobs,
        "experiments": len(cfg["experiments"]),
        "command": " ".join(cmd[:-3] + ["<config with seeds [0,1,2]>", "--quiet"]),
    }


# -------------------------------------------------------------------------------------- methods


def synthetic_batch(train_data: str, batch: int, h: int, w: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Seeded random training batch shaped as the engine delivers it for ``train_data``."""

    def rgb(hh: int = h, ww: int = w) -> torch.Tensor:
        return torch.rand(batch, 3, hh, ww, generator=gen)

    if train_data in ("low", "noisy"):
        return {"input": rgb()}
    if train_data == "paired":
        return {"input": rgb(), "target": rgb()}
    if train_data == "unpaired":
        return {"input": rgb(), "reference": rgb()}
    if train_data == "raw":  # packed RGGB at crop x crop, sRGB target at twice the size
        return {"input": torch.rand(batch, 4, h, w, generator=gen), "target": rgb(2 * h, 2 * w)}
    raise ValueError(f"no synthetic batch for train_data {train_data!r}")


def bench_method(name: str, device: torch.device, warmup: int, repeats: int, cpu_batch_cap: int) -> dict[str, Any]:
    import methods

    method = methods.get(name)
    row: dict[str, Any] = {"method": name, "task": method.task, "variant": method.default_variant}
    gen = torch.Generator().manual_seed(0)
    # inference
    ih, iw = INFER_SIZE[method.task]
    model = method.build(method.default_variant).to(device).eval()
    x = method.example_input(ih, iw).to(device)
    opts = method.infer_config(method.default_variant)
    with torch.inference_mode():
        t, c = median_time(lambda: method.infer(model, x, **opts), device, warmup, repeats)
    row.update(infer_size=f"{iw}x{ih}", infer_input=list(x.shape), infer_s=t, infer_cpu_s=c, infer_images_per_s=1.0 / t)
    # training
    if method.train_data == "none":
        row["train_note"] = "not trained"
        return row
    ds = TRAIN_DATASET[method.task]
    cfg = method.train_config(method.default_variant, ds, allow_untrained_vgg=True)
    batch = int(cfg["batch_size"])
    note = []
    if device.type == "cpu" and batch > cpu_batch_cap:
        note.append(f"batch {batch} capped to {cpu_batch_cap} on CPU")
        batch = cpu_batch_cap
    crop = cfg.get("crop")
    if crop:
        th, tw = int(crop), int(crop)
    else:
        th, tw = cfg.get("resize") or INFER_SIZE[method.task]
        note.append(f"full images ({tw}x{th})")
    torch.manual_seed(0)
    trainer = method.trainer(method.build(method.default_variant).to(device), cfg, device)
    if getattr(trainer, "flags", {}).get("untrained_vgg"):
        note.append("untrained VGG")
    data = synthetic_batch(method.train_data, batch, th, tw, gen)
    data = {k: v.to(device) for k, v in data.items()}
    t, c = median_time(lambda: trainer.step(data), device, warmup, repeats)
    row.update(
        train_dataset_recipe=ds,
        train_batch=batch,
        train_crop=[th, tw],
        train_step_s=t,
        train_step_cpu_s=c,
        train_steps_per_s=1.0 / t,
        train_samples_per_s=batch / t,
        train_note="; ".join(note),
    )
    return row


def bench_methods(names: list[str], device: torch.device, warmup: int, repeats: int, cap: int) -> list[dict]:
    rows = []
    for name in names:
        t0 = time.perf_counter()
        try:
            row = bench_method(name, device, warmup, repeats, cap)
        except ImportError as e:
            row = {"method": name, "skipped": f"import failed: {e}"}
        except Exception as e:  # a method under construction must not stop the others
            row = {"method": name, "skipped": f"{type(e).__name__}: {e}"}
        row["wall_s"] = time.perf_counter() - t0
        rows.append(row)
        print(f"  {name}: {row.get('skipped', 'done')} ({row['wall_s']:.0f} s)", file=sys.stderr, flush=True)
    return rows


# ----------------------------------------------------------------------------------------- data


def bench_data(
    method: str, variant: str, iterations: int, workers_list: list[int], threads: int, cpu_batch_cap: int
) -> list[dict]:
    import methods

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tiny" / "lol"
        subprocess.run(
            [sys.executable, "-m", "llbench", "data", "tiny", "lol", "--out", str(root)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        m = methods.get(method)
        cfg = m.train_config(variant, "lol")
        train = {
            "iterations": iterations,
            "checkpoint_every": 10 * iterations,
            "log_every": 1,
            "allow_untrained_vgg": True,
        }
        note = ""
        if int(cfg["batch_size"]) > cpu_batch_cap and not torch.cuda.is_available():
            train["batch_size"] = cpu_batch_cap
            note = f"batch {cfg['batch_size']} capped to {cpu_batch_cap} on CPU"
        for workers in workers_list:
            spec = {
                "method": method,
                "variant": variant,
                "seed": 0,
                "train": train,
                "dataset": {"name": "tiny-lol", "kind": "paired", "root": str(root), "train": "train", "test": "test"},
                "runtime": {
                    "device": "auto",
                    "gpus": None,
                    "threads": threads,
                    "workers": workers,
                    "deterministic": True,
                },
            }
            out = Path(tmp) / f"run_w{workers}"
            t0 = time.perf_counter()
            cmd = [sys.executable, "-m", "llbench", "train", "--spec", json.dumps(spec), "--out", str(out)]
            res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if res.returncode != 0:
                rows.append({"method": method, "workers": workers, "skipped": res.stderr[-1500:]})
                continue
            with open(out / "train_log.csv") as f:
                log = list(csv.DictReader(f))
            data_s = [float(r["data_s"]) for r in log]
            step_s = [float(r["step_s"]) for r in log]
            steady = slice(1, None)  # the first batch includes worker start-up and the first file reads
            rows.append(
                {
                    "method": method,
                    "variant": variant,
                    "workers": workers,
                    "iterations": iterations,
                    "batch": int(train.get("batch_size", cfg["batch_size"])),
                    "note": note,
                    "threads": threads,
                    "first_data_s": data_s[0],
                    "data_s": sum(data_s[steady]),
                    "step_s": sum(step_s[steady]),
                    "data_share": sum(data_s[steady]) / max(1e-12, sum(data_s[steady]) + sum(step_s[steady])),
                    "data_share_incl_first": sum(data_s) / max(1e-12, sum(data_s) + sum(step_s)),
                    "wall_s": wall,
                }
            )
            print(f"  data {method} workers={workers}: done ({wall:.0f} s)", file=sys.stderr, flush=True)
    return rows


# -------------------------------------------------------------------------------------- metrics


def bench_metrics(warmup: int, repeats: int) -> list[dict]:
    from llbench import metrics

    rng = np.random.default_rng(0)
    # a smooth image plus noise (NIQE needs some structure to be meaningful; speed does not depend on it)
    base = rng.integers(0, 256, size=(25, 38, 3)).astype(np.float64)
    big = np.kron(base, np.ones((16, 16, 1)))[:400, :600]
    out = np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)
    target = np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)
    cpu = torch.device("cpu")
    rows = []
    for name, fn in (
        ("psnr", lambda: metrics.psnr(out, target)),
        ("ssim", lambda: metrics.ssim(out, target)),
        ("niqe", lambda: metrics.niqe(out)),
    ):
        t0 = time.perf_counter()
        fn()  # first call (NIQE: pyiqa import and model load) reported separately
        first = time.perf_counter() - t0
        t, c = median_time(fn, cpu, warmup, repeats)
        rows.append(
            {"metric": name, "size": "600x400", "first_call_s": first, "s": t, "cpu_s": c, "images_per_s": 1.0 / t}
        )
    return rows


# ----------------------------------------------------------------------------------------- main


def print_tables(res: dict[str, Any]) -> None:
    env = res["environment"]
    print(
        f"\nlowlight-bench pipeline benchmark: torch {env['torch']}, {env['cpu_count']} CPUs, "
        f"{env['torch_threads']} torch threads, load average {env['load_avg'][0]:.1f} at start, "
        f"device {env['device']}\n"
    )
    if "dag" in res:
        d = res["dag"]
        total = d["jobs_forceall"].get("total", "?")
        print("| part | value |\n|---|---|")
        print(
            f"| dry run, config.yaml x 3 seeds ({d['experiments']} experiments, {total} jobs) | "
            f"{d['seconds_median']:.1f} s wall, {d['cpu_seconds_median']:.1f} s CPU "
            f"(median of {len(d['seconds_all'])}) |\n"
        )
    if "methods" in res:
        print(
            "| method | task | train batch x crop | train steps/s | train samples/s | inference size | "
            "inference img/s | note |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in res["methods"]:
            if "skipped" in r:
                print(f"| {r['method']} | | | | | | | skipped: {r['skipped'][:120]} |")
                continue
            if "train_step_s" in r:
                tr = (
                    f"{r['train_batch']} x {r['train_crop'][1]}x{r['train_crop'][0]} | "
                    f"{r['train_steps_per_s']:.3f} [{1 / r['train_step_cpu_s']:.3f}] | "
                    f"{r['train_samples_per_s']:.2f}"
                )
            else:
                tr = " | | "
            print(
                f"| {r['method']} | {r['task']} | {tr} | {r['infer_size']} | {r['infer_images_per_s']:.2f} "
                f"[{1 / r['infer_cpu_s']:.2f}] | {r.get('train_note', '')} |"
            )
        print()
    if "data" in res:
        print(
            "| method | batch | workers | iterations | data wait share (steady) | incl. first batch | "
            "first batch wait (s) | note |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in res["data"]:
            if "skipped" in r:
                print(f"| {r['method']} | | {r['workers']} | | | | | failed: {r['skipped'][-200:]!r} |")
                continue
            print(
                f"| {r['method']} | {r['batch']} | {r['workers']} | {r['iterations']} | "
                f"{100 * r['data_share']:.2f}% | {100 * r['data_share_incl_first']:.2f}% | "
                f"{r['first_data_s']:.2f} | {r['note']} |"
            )
        print()
    if "metrics" in res:
        print("| metric | size | images/s [by CPU time] | first call (s) |\n|---|---|---|---|")
        for r in res["metrics"]:
            print(
                f"| {r['metric']} | {r['size']} | {r['images_per_s']:.1f} [{1 / r['cpu_s']:.1f}] | "
                f"{r['first_call_s']:.2f} |"
            )
        print()


def main(argv: list[str] | None = None) -> int:
    import methods

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts, of {', '.join(PARTS)}")
    p.add_argument("--skip", default="", help="comma-separated parts to leave out")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dag-repeats", type=int, default=3)
    p.add_argument("--methods", default=None, help="comma-separated (default: every registered method)")
    p.add_argument("--cpu-batch-cap", type=int, default=4)
    p.add_argument("--data-method", default="sci")
    p.add_argument("--data-variant", default=None)
    p.add_argument("--data-iterations", type=int, default=30)
    p.add_argument(
        "--workers", default=None, help="comma-separated worker counts of the data part (default: config/config.yaml's)"
    )
    p.add_argument("--out", type=Path, default=RESULTS / "pipeline.json")
    args = p.parse_args(argv)
    parts = [s.strip() for s in args.only.split(",") if s.strip() and s.strip() not in args.skip.split(",")]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        p.error(f"unknown part(s) {unknown}; allowed: {', '.join(PARTS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    full_cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    res: dict[str, Any] = {
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_avg": list(os.getloadavg()),
            "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        }
    }
    if "dag" in parts:
        print("dag ...", file=sys.stderr, flush=True)
        res["dag"] = bench_dag(args.dag_repeats)
    if "methods" in parts:
        print("methods ...", file=sys.stderr, flush=True)
        names = args.methods.split(",") if args.methods else methods.names()
        res["methods"] = bench_methods(names, device, args.warmup, args.repeats, args.cpu_batch_cap)
    if "data" in parts:
        print("data ...", file=sys.stderr, flush=True)
        workers = [int(w) for w in args.workers.split(",")] if args.workers else [int(full_cfg.get("workers", 2))]
        variant = args.data_variant or methods.get(args.data_method).default_variant
        res["data"] = bench_data(
            args.data_method,
            variant,
            args.data_iterations,
            workers,
            args.threads or torch.get_num_threads(),
            args.cpu_batch_cap,
        )
    if "metrics" in parts:
        print("metrics ...", file=sys.stderr, flush=True)
        res["metrics"] = bench_metrics(args.warmup, max(args.repeats, 5))
    print_tables(res)
    res["environments"] = {part: res["environment"] for part in parts}
    out = args.out
    if out.exists():  # keep the parts (and their environments) of an earlier run that this run did not measure
        try:
            old = json.loads(out.read_text())
            envs = {**old.get("environments", {}), **res["environments"]}
            res = {**{k: v for k, v in old.items() if k in PARTS}, **res, "environments": envs}
        except (json.JSONDecodeError, OSError):
            pass
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(copy.deepcopy(res), indent=2, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
