"""The training engine: one flat loop for every method (the method supplies a :class:`methods.Trainer`).

    llbench train --spec '{"method": "sci", "variant": "stage3", "seed": 0, "dataset": {...}, ...}' --out DIR

Writes ``DIR/checkpoint.pt`` (inference weights), ``DIR/train_log.csv`` and ``DIR/config.json``.
Every ``checkpoint_every`` iterations the whole training state (trainer, RNGs, log) goes atomically to
``DIR/resume.pt``; a run killed at any point and restarted with the same spec continues from there and
ends with the same weights as an uninterrupted run (data order and augmentation depend only on the seed
and the sample's position in the stream, never on the process).
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

import methods
from llbench import provenance, runtime
from llbench.data import stage
from llbench.data.cache import read_pointer
from llbench.data.datasets import StreamSampler, TrainSet
from llbench.workflow import spec_hash

log = logging.getLogger("llbench.train")
CHECKPOINT_FORMAT = "llbench-checkpoint-v1"


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [name, keys.tolist(), pos, has_gauss, cached],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _load_resume(path: Path, want_hash: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        log.warning("ignoring unreadable %s (%s); starting from scratch", path, e)
        return None
    if state.get("spec_sha256") != want_hash:
        log.warning("ignoring %s: it belongs to a different spec; starting from scratch", path)
        return None
    return state


def train(spec: dict[str, Any], out: Path, stamp: Path | None = None, cache: Path | None = None) -> Path:
    """Train the method variant described by ``spec``; returns the path of ``checkpoint.pt``.

    ``stamp``: the training dataset's stamp (the ``dataset`` rule's output); the data are checked against
    it before training (:func:`llbench.data.stage.verify`) and it is recorded in ``config.json``.
    ``cache``: the ``train_cache`` rule's pointer; images are then read from the training-ready cache.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    data_info = stage.verify(stamp) if stamp is not None else None
    cache_folder = read_pointer(cache, (data_info or {}).get("manifest_sha256")) if cache is not None else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    method = methods.get(spec["method"])
    variant = method.variant_name(spec.get("variant"))
    seed = int(spec.get("seed", 0))
    ds = spec["dataset"]
    if "train" not in ds:
        raise ValueError(f"dataset {ds['name']!r} has no train split; cannot train {method.name}")
    cfg = method.train_config(variant, ds.get("recipe"), **spec.get("train", {}))
    iterations = int(cfg["iterations"])
    batch = int(cfg["batch_size"])
    if iterations < 1 or batch < 1:
        raise ValueError(f"train.iterations and train.batch_size must be >= 1, got {iterations} and {batch}")
    ckpt_every = int(cfg.get("checkpoint_every", 1000))
    want_hash = spec_hash(spec)

    device, lease = runtime.setup(spec.get("runtime", {}), seed)
    try:
        data = TrainSet(ds["root"], ds["train"], ds["kind"], method.train_data, cfg, seed, cache=cache_folder)
        model = method.build(variant).to(device)
        trainer = method.trainer(model, cfg, device)
        resume_path = out / "resume.pt"
        state = _load_resume(resume_path, want_hash)
        start, rows = 0, []
        if state is not None:
            trainer.load_state_dict(state["trainer"])
            _set_rng_state(state["rng"])
            start, rows = int(state["iteration"]), list(state["log"])
            log.info("resuming %s from iteration %d", out, start)
        # samples per epoch: the data set's size, or the method's official epoch (e.g. ALEN: one frame per scene)
        epoch_size = int(cfg.get("epoch_size") or len(data))
        per_epoch = max(1, epoch_size // batch)
        workers = int(spec.get("runtime", {}).get("workers", 0))
        loader = DataLoader(
            data,
            batch_size=batch,
            sampler=StreamSampler(len(data), seed, start * batch),
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
            generator=torch.Generator().manual_seed(seed),  # keeps the global RNG untouched by the loader
        )
        batches = iter(loader)
        log_every = int(cfg.get("log_every", max(1, iterations // 1000)))
        t_data = t_step = 0.0
        for it in range(start + 1, iterations + 1):
            t0 = time.perf_counter()
            batch_data = next(batches)
            t1 = time.perf_counter()
            losses = trainer.step(batch_data)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            t_data += t1 - t0
            t_step += t2 - t1
            if it % per_epoch == 0:
                trainer.end_epoch()
            if it % log_every == 0 or it == iterations:
                lr = next(iter(trainer.optimizers.values())).param_groups[0]["lr"] if trainer.optimizers else None
                rows.append(
                    {
                        "iteration": it,
                        "epoch": it // per_epoch,
                        **losses,
                        "lr": lr,
                        "data_s": round(t_data, 6),
                        "step_s": round(t_step, 6),
                    }
                )
                t_data = t_step = 0.0
                log.info("iter %d/%d %s", it, iterations, " ".join(f"{k}={v:.5g}" for k, v in losses.items()))
            if it % ckpt_every == 0 and it < iterations:
                runtime.atomic_torch_save(
                    {
                        "spec_sha256": want_hash,
                        "iteration": it,
                        "trainer": trainer.state_dict(),
                        "rng": _rng_state(),
                        "log": rows,
                    },
                    resume_path,
                )
        flags = dict(trainer.flags)
        dev = runtime.describe_device(device, lease)
    finally:
        lease.release()
    runtime.atomic_write_text(out / "train_log.csv", runtime.rows_to_csv(rows, "iteration"))
    cfg_json = {
        "method": method.name,
        "variant": variant,
        "train_config": cfg,
        "iterations_done": iterations,
        "provenance": provenance.record(spec, data=data_info, device=dev, flags=flags),
    }
    runtime.atomic_write_json(out / "config.json", cfg_json)
    runtime.atomic_torch_save(
        {
            "format": CHECKPOINT_FORMAT,
            "method": method.name,
            "variant": variant,
            "iteration": iterations,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "flags": flags,
            "spec_sha256": want_hash,
        },
        out / "checkpoint.pt",
    )
    resume_path.unlink(missing_ok=True)
    return out / "checkpoint.pt"
