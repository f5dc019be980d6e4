"""SCI: Self-Calibrated Illumination learning (Ma et al., CVPR 2022, "Toward Fast, Flexible, and Robust
Low-Light Image Enhancement").

Re-implemented from the official code vis-opt-group/SCI@9d28a3f (`model.py`, `loss.py`, `train.py`,
`test.py`; MIT license). Unsupervised: trains on low-light images only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from methods import register
from methods.base import Method, Trainer, Variant
from methods.sci.loss import sci_loss
from methods.sci.model import SCINetwork, SCITrainNetwork, init_weights


class SCITrainer(Trainer):
    """Adam(lr 3e-4, betas (0.9, 0.999), weight decay 3e-4), grad-norm clip 5 (SCI:train.py)."""

    def __init__(self, model: nn.Module, cfg: Mapping[str, Any], device: torch.device):
        super().__init__(model, cfg, device)
        self.net = SCITrainNetwork(model, stages=int(self.cfg["stages"]), calibrate=bool(self.cfg["calibrate"]))
        self.net.apply_official_init()
        self.net.to(device)
        if self.net.calibrate is not None:
            self.extra_modules["calibrate"] = self.net.calibrate
        self.optimizers["adam"] = torch.optim.Adam(
            self.net.parameters(),
            lr=self.cfg["lr"],
            betas=tuple(self.cfg["betas"]),
            weight_decay=self.cfg["weight_decay"],
        )

    def step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        self.net.train()
        y = batch["input"].to(self.device, non_blocking=True)
        opt = self.optimizers["adam"]
        opt.zero_grad(set_to_none=True)
        illus, inputs = self.net(y)
        loss = sum(sci_loss(inp, illu, sigma=self.cfg["smooth_sigma"]) for inp, illu in zip(inputs, illus, strict=True))
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg["grad_clip"])
        opt.step()
        return {"loss": float(loss.detach())}


@register
class SCI(Method):
    """SCI. Variants: the number of weight-shared training stages and the self-calibration module."""

    name = "sci"
    task = "enhance"
    train_data = "low"
    default_variant = "stage3"
    variants = {
        "stage1": Variant("1 training stage (no calibrated re-entry)", train={"stages": 1}),
        "stage2": Variant("2 weight-shared training stages", train={"stages": 2}),
        "stage3": Variant("3 weight-shared training stages (paper default)", train={"stages": 3}),
        "no_calibration": Variant(
            "3 stages without the self-calibration module (every stage sees the raw input)",
            train={"stages": 3, "calibrate": False},
        ),
    }
    # SCI:train.py defaults: batch 1, full-size images (the random crop is commented out), 1000 epochs.
    train_defaults = {
        "iterations": 1000 * 485,  # 1000 epochs; the pipeline counts iterations (set per dataset in config)
        "batch_size": 1,
        "crop": None,
        "augment": (),
        "lr": 3e-4,
        "betas": (0.9, 0.999),
        "weight_decay": 3e-4,
        "grad_clip": 5.0,
        "stages": 3,
        "calibrate": True,
        "smooth_sigma": 10.0,  # SCI:loss.py SmoothLoss.sigma
        "checkpoint_every": 1000,
    }
    pad_multiple = 1
    paper = "Ma et al., Toward Fast, Flexible, and Robust Low-Light Image Enhancement, CVPR 2022"
    origin_url = "https://github.com/vis-opt-group/SCI"
    license = "MIT"

    def network(self, **kwargs: Any) -> nn.Module:
        return SCINetwork(**kwargs)

    def trainer(self, model: nn.Module, cfg: Mapping[str, Any], device: torch.device) -> Trainer:
        return SCITrainer(model, cfg, device)

    def convert_official(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Official ``Network`` / ``Finetunemodel`` state dicts: keep the ``enhance.*`` keys (SCI:model.py)."""
        out = {k: v for k, v in state.items() if k.startswith("enhance.")}
        if not out:
            raise KeyError(f"not an SCI checkpoint: no 'enhance.*' keys among {sorted(state)[:5]}...")
        return out


__all__ = ["SCI", "SCINetwork", "init_weights", "sci_loss"]
