"""SCI: training-step time and inference throughput of ``methods.sci`` beside a straightforward 24-term loss.

    python benchmarks/bench_sci.py                 # CPU at the default, 2 and 1 threads (+ CUDA if present)
    python benchmarks/bench_sci.py --threads 1 --repeats 5 --profile

The reference loss below follows the structure of SCI:loss.py (vis-opt-group/SCI@9d28a3f, MIT): the
official ``SmoothLoss`` writes out 24 neighbour terms, each weight from one pair of slices of the YCbCr
input and each gradient from one pair of slices of the illumination (48 slice pairs in all), an L1 norm
over channels (``torch.norm(p=1, dim=1, keepdim=True)``) and 24 separate means. It is written here from
that description, one explicit slice pair per term, without exploiting the symmetry of the offsets.
``methods.sci.loss`` uses that symmetry (12 unique offsets, doubled).

Measured: one full ``SCITrainer.step`` (3 weight-shared stages with self-calibration, batch 1, forward,
loss, backward, grad clip, Adam) with each loss; the loss alone (one stage, forward + backward); inference
(``Method.infer`` on the stage3 network, batch 1). Input 600x400 (W x H, LOL's size), uniform random with
a fixed seed. Median of ``--repeats`` after ``--warmup`` runs. Writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import methods  # noqa: E402
import methods.sci as sci_pkg  # noqa: E402
from methods.sci.loss import sci_loss  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

# ---------------------------------------------------------------------------------- reference loss

# One row per official term: (slice of the first operand, slice of the second) over (H, W); "a:b" style.
# SCI:loss.py w_k, pixel_grad_k (k = 1..24): input[..., A] - input[..., B], output[..., A] - output[..., B]
S = {  # the five slices SCI:loss.py uses along each of H and W
    "1:": slice(1, None),
    ":-1": slice(None, -1),
    "2:": slice(2, None),
    ":-2": slice(None, -2),
    ":": slice(None),
}
TERMS = [
    (("1:", ":"), (":-1", ":")),
    ((":-1", ":"), ("1:", ":")),
    ((":", "1:"), (":", ":-1")),
    ((":", ":-1"), (":", "1:")),
    ((":-1", ":-1"), ("1:", "1:")),
    (("1:", "1:"), (":-1", ":-1")),
    (("1:", ":-1"), (":-1", "1:")),
    ((":-1", "1:"), ("1:", ":-1")),
    (("2:", ":"), (":-2", ":")),
    ((":-2", ":"), ("2:", ":")),
    ((":", "2:"), (":", ":-2")),
    ((":", ":-2"), (":", "2:")),
    ((":-2", ":-1"), ("2:", "1:")),
    (("2:", "1:"), (":-2", ":-1")),
    (("2:", ":-1"), (":-2", "1:")),
    ((":-2", "1:"), ("2:", ":-1")),
    ((":-1", ":-2"), ("1:", "2:")),
    (("1:", "2:"), (":-1", ":-2")),
    (("1:", ":-2"), (":-1", "2:")),
    ((":-1", "2:"), ("1:", ":-2")),
    ((":-2", ":-2"), ("2:", "2:")),
    (("2:", "2:"), (":-2", ":-2")),
    (("2:", ":-2"), (":-2", "2:")),
    ((":-2", "2:"), ("2:", ":-2")),
]
assert len(TERMS) == 24


def reference_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """SCI:loss.py rgb2yCbCr: view(-1, 3) of the NCHW tensor, matrix product, bias (built per call)."""
    mat = torch.tensor([[0.257, -0.148, 0.439], [0.564, -0.291, -0.368], [0.098, 0.439, -0.071]], device=x.device)
    bias = torch.tensor([16.0 / 255.0, 128.0 / 255.0, 128.0 / 255.0], device=x.device)
    return (x.contiguous().view(-1, 3).float().mm(mat) + bias).view(x.shape[0], 3, x.shape[2], x.shape[3])


def reference_smooth(inp: torch.Tensor, out: torch.Tensor, sigma: float = 10.0) -> torch.Tensor:
    """24 separate terms, each: exp(-|dY|^2 / 2 sigma^2) * |d illu|_1, averaged; summed."""
    ycc = reference_ycbcr(inp)
    coef = -1.0 / (2 * sigma * sigma)
    total = 0
    for (ay, ax), (by, bx) in TERMS:
        a = (..., S[ay], S[ax])
        b = (..., S[by], S[bx])
        w = torch.exp(torch.sum(torch.pow(ycc[a] - ycc[b], 2), dim=1, keepdim=True) * coef)
        g = w * torch.linalg.vector_norm(out[a] - out[b], ord=1, dim=1, keepdim=True)
        total = total + torch.mean(g)
    return total


def reference_loss(inp: torch.Tensor, illu: torch.Tensor, sigma: float = 10.0) -> torch.Tensor:
    """SCI:loss.py LossFunction: 1.5 * MSE(illu, input) + SmoothLoss(input, illu)."""
    return 1.5 * F.mse_loss(illu, inp) + reference_smooth(inp, illu, sigma)


@contextmanager
def loss_swapped(fn: Callable[..., torch.Tensor]):
    """Run ``SCITrainer.step`` unchanged but with ``fn`` as the per-stage loss."""
    with mock.patch.object(sci_pkg, "sci_loss", fn):
        yield


# ---------------------------------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


CPU_TIMES: dict[int, float] = {}  # id of the last median_time call's fn -> median process CPU seconds


def median_time(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    """Median wall seconds of ``fn``; the median process CPU seconds (all threads) go to ``CPU_TIMES``.

    CPU time is the load-independent number on a shared machine: other processes stretch the wall time
    of a run but not the CPU time it needs (with several threads, spinning threads add CPU time too).
    """
    for _ in range(warmup):
        fn()
    sync(device)
    times, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    CPU_TIMES[id(fn)] = statistics.median(cpu)
    return statistics.median(times)


def timed(res: dict, key: str, fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> None:
    """``res[key + '_s']`` = median wall seconds, ``res[key + '_cpu_s']`` = median CPU seconds."""
    res[f"{key}_s"] = median_time(fn, device, warmup, repeats)
    res[f"{key}_cpu_s"] = CPU_TIMES.pop(id(fn))


def make_trainer(device: torch.device, seed: int = 0):
    method = methods.get("sci")
    torch.manual_seed(seed)
    cfg = method.train_config("stage3", "lol")
    model = method.build("stage3").to(device)
    return method.trainer(model, cfg, device)


def bench_device(device: torch.device, size: tuple[int, int], warmup: int, repeats: int) -> dict:
    w, h = size
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, h, w, generator=gen).to(device)
    batch = {"input": x}
    res: dict[str, float] = {}

    # the two losses agree (forward and gradient) before anything is timed
    illu = (torch.rand(1, 3, h, w, generator=gen).to(device) * 0.9 + 0.05).requires_grad_()
    ours = sci_loss(x, illu)
    (g_ours,) = torch.autograd.grad(ours, illu)
    ref = reference_loss(x, illu)
    (g_ref,) = torch.autograd.grad(ref, illu)
    ours, ref = ours.detach(), ref.detach()
    res["loss_rel_diff"] = abs(ours.item() - ref.item()) / abs(ref.item())
    res["grad_max_abs_diff"] = float((g_ours - g_ref).abs().max())

    def loss_step(fn):
        def run():
            i = illu.detach().requires_grad_()
            fn(x, i).backward()

        return run

    timed(res, "loss_ours", loss_step(sci_loss), device, warmup, repeats)
    timed(res, "loss_reference", loss_step(reference_loss), device, warmup, repeats)

    trainer = make_trainer(device)
    timed(res, "train_step_ours", lambda: trainer.step(batch), device, warmup, repeats)
    ref_trainer = make_trainer(device)
    with loss_swapped(reference_loss):
        timed(res, "train_step_reference", lambda: ref_trainer.step(batch), device, warmup, repeats)

    method = methods.get("sci")
    net = method.build("stage3").to(device).eval()
    with torch.inference_mode():
        timed(res, "infer", lambda: method.infer(net, x), device, warmup, repeats)
    res["infer_images_per_s"] = 1.0 / res["infer_s"]
    for k in ("loss", "train_step"):
        res[f"{k}_speedup"] = res[f"{k}_reference_s"] / res[f"{k}_ours_s"]
        res[f"{k}_speedup_cpu"] = res[f"{k}_reference_cpu_s"] / res[f"{k}_ours_cpu_s"]
    return res


def profile_step(device: torch.device, size: tuple[int, int], reference: bool, rows: int) -> str:
    """torch.profiler table of one training step (after 2 warm-up steps), sorted by self CPU time."""
    from torch.profiler import ProfilerActivity, profile, record_function

    w, h = size
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device)
    trainer = make_trainer(device)
    ctx = loss_swapped(reference_loss) if reference else mock.patch.object(sci_pkg, "sci_loss", sci_loss)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with ctx:
        for _ in range(2):
            trainer.step({"input": x})
        net = trainer.net
        with profile(activities=acts) as prof:
            with record_function("forward"):
                illus, inputs = net(x)
            with record_function("loss"):
                loss = sum(sci_pkg.sci_loss(i, il) for i, il in zip(inputs, illus, strict=True))
            with record_function("backward"):
                loss.backward()
            with record_function("optimizer"):
                torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                trainer.optimizers["adam"].step()
                trainer.optimizers["adam"].zero_grad(set_to_none=True)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def phase_split(device: torch.device, size: tuple[int, int], reference: bool, warmup: int, repeats: int) -> dict:
    """Median seconds of the forward, loss, backward and optimizer phases of one training step."""
    w, h = size
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device)
    trainer = make_trainer(device)
    net, opt = trainer.net, trainer.optimizers["adam"]
    loss_fn = reference_loss if reference else sci_loss
    phases: dict[str, list[float]] = {"forward": [], "loss": [], "backward": [], "optimizer": []}
    for k in range(warmup + repeats):
        marks = [time.perf_counter()]
        illus, inputs = net(x)
        sync(device)
        marks.append(time.perf_counter())
        loss = sum(loss_fn(i, il) for i, il in zip(inputs, illus, strict=True))
        sync(device)
        marks.append(time.perf_counter())
        loss.backward()
        sync(device)
        marks.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        marks.append(time.perf_counter())
        if k >= warmup:
            for name, a, b in zip(phases, marks, marks[1:], strict=False):
                phases[name].append(b - a)
    return {name: statistics.median(v) for name, v in phases.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="600x400", help="W x H of the input (default LOL's 600x400)")
    p.add_argument("--threads", default="default,2,1", help="CPU thread settings, comma-separated")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: CPU, and CUDA if present")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--phases", action="store_true", help="also time forward / loss / backward / optimizer")
    p.add_argument("--profile", action="store_true", help="print torch.profiler tables of one step (both losses)")
    p.add_argument("--out", type=Path, default=RESULTS / "sci.json")
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    default_threads = torch.get_num_threads()
    runs = []
    if args.device in ("auto", "cpu"):
        for t in args.threads.split(","):
            n = default_threads if t.strip() == "default" else int(t)
            if ("cpu", n) not in runs:  # "default" is often one of the others
                runs.append(("cpu", n))
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        runs.append(("cuda", default_threads))

    rows = []
    for dev_name, n in runs:
        torch.set_num_threads(n)
        device = torch.device(dev_name)
        r = bench_device(device, (w, h), args.warmup, args.repeats)
        r.update(device=dev_name, threads=n)
        if args.phases:
            r["phases_ours_s"] = phase_split(device, (w, h), False, args.warmup, args.repeats)
            r["phases_reference_s"] = phase_split(device, (w, h), True, args.warmup, args.repeats)
        rows.append(r)
        print(f"done {dev_name} threads={n}", file=sys.stderr, flush=True)
    torch.set_num_threads(default_threads)

    print(
        f"\nSCI at {w}x{h}, batch 1, median of {args.repeats} after {args.warmup} warm-up; torch {torch.__version__}\n"
    )
    print("Wall time (CPU time of the process in brackets; on a loaded machine compare CPU times).\n")
    print(
        "| device | threads | train step ours (ms) | train step 24-term (ms) | speed-up "
        "| loss f+b ours (ms) | loss f+b 24-term (ms) | speed-up | inference (img/s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:

        def ms(k: str, r: dict = r) -> str:
            return f"{1e3 * r[k + '_s']:.0f} [{1e3 * r[k + '_cpu_s']:.0f}]"

        print(
            f"| {r['device']} | {r['threads']} | {ms('train_step_ours')} | {ms('train_step_reference')} | "
            f"{r['train_step_speedup']:.2f}x [{r['train_step_speedup_cpu']:.2f}x] | {ms('loss_ours')} | "
            f"{ms('loss_reference')} | {r['loss_speedup']:.2f}x [{r['loss_speedup_cpu']:.2f}x] | "
            f"{r['infer_images_per_s']:.1f} [{1 / r['infer_cpu_s']:.1f}] |"
        )
    if args.phases:
        print("\n| device | threads | loss | forward (ms) | loss (ms) | backward (ms) | optimizer (ms) |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            for tag in ("ours", "reference"):
                ph = r[f"phases_{tag}_s"]
                cells = " | ".join(f"{1e3 * ph[k]:.1f}" for k in ph)
                print(f"| {r['device']} | {r['threads']} | {tag} | {cells} |")
    agree = max(r["loss_rel_diff"] for r in rows), max(r["grad_max_abs_diff"] for r in rows)
    print(f"\nlosses agree: max relative difference {agree[0]:.2e}, max gradient difference {agree[1]:.2e}")

    if args.profile:
        device = torch.device(runs[0][0])
        torch.set_num_threads(runs[0][1])
        for reference in (False, True):
            which = "24-term reference" if reference else "methods.sci"
            print(f"\ntorch.profiler, one training step, {which} loss, {device.type}, {runs[0][1]} threads")
            print(profile_step(device, (w, h), reference, rows=15))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "sci",
                "size": [w, h],
                "batch": 1,
                "stages": 3,
                "warmup": args.warmup,
                "repeats": args.repeats,
                "torch": torch.__version__,
                "machine": platform.machine(),
                "processor": platform.processor(),
                "cpu_count": os.cpu_count(),
                "load_avg": list(os.getloadavg()),
                "results": rows,
            },
            indent=2,
        )
    )
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
