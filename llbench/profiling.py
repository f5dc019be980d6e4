"""Model cost: parameters, FLOPs, latency and peak memory of a method's full inference procedure.

Conventions (REFERENCE.md Part II D, DESIGN.md ▶ Metrics protocol):

* FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` (pytorch/pytorch
  ``torch/utils/flop_counter.py``): true FLOPs, i.e. 2 per multiply-accumulate, for matmul/bmm/addmm,
  convolutions and SDPA. Normalisation, activations, softmax, divisions and other element-wise ops are NOT
  counted; :func:`count_flops` lists them as ``uncounted_ops``. Attention is counted by running under the
  math SDPA backend, which decomposes ``F.scaled_dot_product_attention`` into counted matmuls.
* ``macs = flops / 2`` and ``macs_gib = macs / 2**30`` are the "paper-comparable" numbers: fvcore's count
  (one fused multiply-add = one flop, so MACs) divided by 2**30 is what Retinexformer's ``my_summary``
  prints as "GMac" and its README calls "FLOPS (G)". thop (used by SCI's table) also counts MACs but adds
  bias additions and normalisation ops, so it is slightly higher (see ``tests/test_profiling.py``).
* Latency: batch 1, fixed input, warm-up runs, ``torch.cuda.synchronize()`` around each timed run on
  CUDA, ``time.perf_counter``, median of the repeats.
* Peak memory: the extra memory held during one call beyond what existed before it (weights, input):
  CUDA ``torch.cuda.max_memory_allocated`` after a reset, minus the allocated bytes before the call; CPU
  the peak of live tensor storage created by ATen operators during the call (a dispatch-mode tracker),
  a lower bound that misses kernel-internal scratch buffers. ``peak_mem_kind`` says which.
"""

from __future__ import annotations

import platform
import statistics
import time
import weakref
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode, flop_registry

from llbench import provenance, runtime

__all__ = ["count_flops", "count_params", "measure_latency", "peak_memory_mb", "profile_method"]

#: aten ops that only move or view data (no arithmetic): left out of ``uncounted_ops``
_DATA_ONLY = {
    "_to_copy",
    "_unsafe_view",
    "alias",
    "as_strided",
    "cat",
    "clone",
    "constant_pad_nd",
    "contiguous",
    "copy_",
    "detach",
    "empty",
    "empty_like",
    "empty_strided",
    "expand",
    "fill_",
    "flip",
    "full",
    "lift_fresh",
    "new_empty",
    "new_empty_strided",
    "new_zeros",
    "ones",
    "ones_like",
    "permute",
    "reflection_pad1d",
    "reflection_pad2d",
    "reflection_pad3d",
    "replication_pad2d",
    "reshape",
    "roll",
    "select",
    "slice",
    "split",
    "split_with_sizes",
    "squeeze",
    "stack",
    "t",
    "transpose",
    "unbind",
    "unfold",
    "unsqueeze",
    "view",
    "zero_",
    "zeros",
    "zeros_like",
    "_local_scalar_dense",
    "index",
    "index_select",
    "gather",
    "pixel_shuffle",
    "pixel_unshuffle",
    "repeat",
    "narrow",
    "chunk",
    "lift_fresh_copy",
}


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or frozen; buffers excluded), a module or tensor shared by several
    parents counted once."""
    seen: dict[int, int] = {}
    for p in model.parameters():  # nn.Module already skips repeats of a Parameter; keyed by id to be sure
        seen.setdefault(id(p), p.numel())
    return int(sum(seen.values()))


class _OpRecorder(TorchDispatchMode):
    """Counts the aten ops that actually run (entered outside FlopCounterMode: sees its decompositions)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = getattr(func, "_overloadpacket", None)
        if packet is not None and packet not in flop_registry:
            name = packet.__name__
            if name not in _DATA_ONLY and name.rstrip("_") not in _DATA_ONLY:
                self.calls[f"aten.{name}"] += 1
        return func(*args, **(kwargs or {}))


def count_flops(fn: Callable[..., Any], *inputs: Any) -> dict[str, Any]:
    """FLOPs of one call ``fn(*inputs)`` with FlopCounterMode (math SDPA backend, so attention counts).

    Returns:
        ``flops`` (int, 2 per MAC), ``macs`` (flops / 2), ``gflops`` (flops / 1e9), ``macs_gib``
        (macs / 2**30, paper-comparable), ``by_op`` (aten op -> FLOPs), ``uncounted_ops`` (aten op ->
        calls, arithmetic ops FlopCounterMode has no formula for; pure data movement left out),
        ``counter`` and ``sdpa_backend``.
    """
    recorder = _OpRecorder()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), recorder, counter:
        fn(*inputs)
    flops = int(counter.get_total_flops())
    by_op = {f"aten.{k.__name__}": int(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}
    uncounted = {k: v for k, v in sorted(recorder.calls.items()) if v > 0}
    return {
        "flops": flops,
        "macs": flops // 2,
        "gflops": flops / 1e9,
        "macs_gib": flops / 2 / 2**30,
        "by_op": by_op,
        "uncounted_ops": uncounted,
        "counter": "FlopCounterMode",
        "sdpa_backend": "math",
    }


def _device_of(inputs: tuple[Any, ...], device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    for t in tree_leaves(inputs):
        if isinstance(t, torch.Tensor):
            return t.device
    return torch.device("cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    fn: Callable[..., Any],
    *inputs: Any,
    warmup: int = 2,
    repeats: int = 10,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Wall-clock latency of ``fn(*inputs)`` (fixed input, batch as given), in milliseconds.

    ``warmup`` untimed calls, then ``repeats`` timed calls under :func:`torch.inference_mode`, each
    bracketed by ``torch.cuda.synchronize()`` on CUDA and timed with :func:`time.perf_counter`.

    Returns:
        ``median_ms``, ``p10_ms``, ``p90_ms`` (linear-interpolated percentiles), ``min_ms``, ``times_ms``
        (every repeat), ``repeats``, ``warmup``, ``device``, ``timer``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    dev = _device_of(inputs, device)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            fn(*inputs)
        _sync(dev)
        for _ in range(repeats):
            _sync(dev)
            t0 = time.perf_counter()
            fn(*inputs)
            _sync(dev)
            times.append((time.perf_counter() - t0) * 1e3)
    p10, p90 = np.percentile(times, [10, 90])
    return {
        "median_ms": float(statistics.median(times)),
        "p10_ms": float(p10),
        "p90_ms": float(p90),
        "min_ms": float(min(times)),
        "times_ms": times,
        "repeats": repeats,
        "warmup": warmup,
        "device": str(dev),
        "timer": "perf_counter" + ("+cuda.synchronize" if dev.type == "cuda" else ""),
    }


class _LiveTensorBytes(TorchDispatchMode):
    """Peak of live bytes in tensor storages created by ops while active (storages freed via weakref)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        # outputs sharing storage with an argument (views, in-place, out=) are not new allocations
        leaves = tree_leaves((args, kwargs))
        seen = {a.untyped_storage()._cdata for a in leaves if isinstance(a, torch.Tensor)}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                st = t.untyped_storage()
                key = st._cdata
                if key not in self.live and key not in seen and st.nbytes() > 0:
                    self.live[key] = st.nbytes()
                    self.current += st.nbytes()
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(st, self._free, key)
        return out


def peak_memory_mb(fn: Callable[..., Any], *inputs: Any, device: str | torch.device | None = None) -> dict[str, Any]:
    """Extra memory (MiB, 2**20 bytes) held at the peak of one call ``fn(*inputs)`` under inference mode.

    CUDA (``peak_mem_kind="cuda_max_allocated_delta"``): ``max_memory_allocated`` after
    ``reset_peak_memory_stats`` minus ``memory_allocated`` before the call; includes cuDNN workspaces, not
    the caching allocator's reserve or the CUDA context. ``baseline_mb`` is what was allocated before.

    CPU (``peak_mem_kind="cpu_live_tensor_peak"``): the peak of live bytes of tensor storages created by
    ATen operators during the call, tracked at the dispatcher (freed storages are subtracted). It is a lower
    bound of the process's extra memory: scratch buffers allocated inside kernels (im2col, oneDNN
    workspaces) and allocator overhead are invisible. Peak-RSS deltas (``ru_maxrss``) were not used: the
    high-water mark is process-wide, so a call that stays below an earlier peak reads as zero.
    """
    dev = _device_of(inputs, device)
    with torch.inference_mode():
        if dev.type == "cuda":
            _sync(dev)
            base = torch.cuda.memory_allocated(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            fn(*inputs)
            _sync(dev)
            peak = torch.cuda.max_memory_allocated(dev)
            return {
                "peak_mem_mb": (peak - base) / 2**20,
                "baseline_mb": base / 2**20,
                "peak_mem_kind": "cuda_max_allocated_delta",
            }
        tracker = _LiveTensorBytes()
        with tracker:
            out = fn(*inputs)
        del out
        return {"peak_mem_mb": tracker.peak / 2**20, "baseline_mb": None, "peak_mem_kind": "cpu_live_tensor_peak"}


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _count_flops_shapes_only(method: Any, model: nn.Module, x: torch.Tensor, opts: dict) -> dict | None:
    """FLOPs counted on the ``meta`` device: the same FlopCounterMode formulas on shapes alone, no compute.

    Returns None when an op of the method has no meta kernel; the caller then counts on the real device.
    """
    import copy

    meta_model = copy.deepcopy(model).to("meta")
    try:
        counts = count_flops(lambda inp: method.infer(meta_model, inp, **opts), x.to("meta"))
    except (NotImplementedError, RuntimeError):
        return None
    return {**counts, "device": "meta"}


def profile_method(
    method_name: str,
    variant: str = "default",
    size: tuple[int, int] = (256, 256),
    device: str | torch.device = "cpu",
    warmup: int = 2,
    repeats: int = 10,
    seed: int = 0,
    infer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Parameters, FLOPs, latency and peak memory of a method's full inference procedure at ``size``.

    ``infer`` overrides the variant's inference options (as an experiment's ``infer:`` does).

    Builds ``methods.build(method_name, variant)`` in eval mode on ``device``, takes
    ``methods.get(method_name).example_input(H, W)`` (seeded, fixed) and profiles
    ``lambda x: method.infer(model, x, **method.infer_config(variant))`` (padding, tiling, test-time tricks).
    FLOPs are counted on the ``meta`` device (shapes only, same formulas) when every op allows it; the
    peak-memory call is the first warm-up call, so ``warmup`` counts it.

    Returns:
        a JSON-ready dict: method, variant, size ``[H, W]``, input_shape, params, flops, macs, gflops,
        macs_gib (paper-comparable: MACs / 2**30), latency_ms (median) with latency_p10_ms/latency_p90_ms,
        repeats, warmup, peak_mem_mb with peak_mem_kind, uncounted_ops, device, device_name, torch,
        threads, counter, sdpa_backend, cudnn_benchmark, tf32, dtype.
    """
    import methods

    height, width = (int(s) for s in size)
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive (H, W), got {size}")
    dev = torch.device(device)
    method = methods.get(method_name)
    opts = {**method.infer_config(variant), **(infer or {})}
    model = methods.build(method_name, variant).eval().to(dev)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        x = method.example_input(height, width)
    x = x.to(dev)

    def fn(inp: torch.Tensor) -> torch.Tensor:
        return method.infer(model, inp, **opts)

    flops = _count_flops_shapes_only(method, model, x, opts) or count_flops(fn, x)
    memory = peak_memory_mb(fn, x, device=dev)  # the first call: it is also the first warm-up run
    latency = measure_latency(fn, x, warmup=max(0, warmup - 1), repeats=repeats, device=dev)
    return {
        "method": method_name,
        "variant": variant,
        "size": [height, width],
        "input_shape": list(x.shape),
        "params": count_params(model),
        "flops": flops["flops"],
        "macs": flops["macs"],
        "gflops": flops["gflops"],
        "macs_gib": flops["macs_gib"],
        "uncounted_ops": flops["uncounted_ops"],
        "latency_ms": latency["median_ms"],
        "latency_p10_ms": latency["p10_ms"],
        "latency_p90_ms": latency["p90_ms"],
        "repeats": repeats,
        "warmup": warmup,
        "peak_mem_mb": memory["peak_mem_mb"],
        "peak_mem_kind": memory["peak_mem_kind"],
        "device": str(dev),
        "device_name": _device_name(dev),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "counter": flops["counter"],
        "flop_count_device": flops.get("device", str(dev)),
        "sdpa_backend": flops["sdpa_backend"],
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "tf32": dev.type == "cuda" and bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32),
        "dtype": str(x.dtype).removeprefix("torch."),
    }


def profile_job(spec: dict[str, Any], output: Path) -> Path:
    """Profile ``spec["method"]/spec["variant"]`` at every configured size into one JSON file."""
    device, lease = runtime.setup(spec.get("runtime", {}))
    try:
        sizes = [
            profile_method(
                spec["method"],
                spec["variant"],
                size=tuple(s),
                device=device.type,
                warmup=int(spec.get("warmup", 3)),
                repeats=int(spec.get("repeats", 20)),
                infer=spec.get("infer"),
            )
            for s in spec["sizes"]
        ]
        dev = runtime.describe_device(device, lease)
    finally:
        lease.release()
    runtime.atomic_write_json(
        Path(output),
        {
            "method": spec["method"],
            "variant": spec["variant"],
            "sizes": sizes,
            "provenance": provenance.record(spec, data=None, device=dev),
        },
    )
    return Path(output)
