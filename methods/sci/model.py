"""SCI networks (vis-opt-group/SCI@9d28a3f `model.py`, MIT): illumination estimator and self-calibration.

Module names match the official ones so official state dicts load key for key.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1)


class EnhanceNetwork(nn.Module):
    """Illumination estimator H: in_conv, ``layers`` residual uses of ONE shared conv-BN-ReLU, sigmoid out.

    Returns ``illu = clamp(out + input, 1e-4, 1)``. 258 parameters with the defaults (3 channels, 1 layer).
    """

    def __init__(self, layers: int = 1, channels: int = 3):
        super().__init__()
        self.in_conv = nn.Sequential(_conv(3, channels), nn.ReLU())
        self.conv = nn.Sequential(_conv(channels, channels), nn.BatchNorm2d(channels), nn.ReLU())
        self.blocks = nn.ModuleList([self.conv] * layers)  # the same module, as in the official code
        self.out_conv = nn.Sequential(_conv(channels, 3), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.in_conv(x)
        for block in self.blocks:
            fea = fea + block(fea)
        return torch.clamp(self.out_conv(fea) + x, 1e-4, 1.0)


class CalibrateNetwork(nn.Module):
    """Self-calibration module K: returns ``delta = input - sigmoid(...)``; 5,619 parameters by default."""

    def __init__(self, layers: int = 3, channels: int = 16):
        super().__init__()
        self.in_conv = nn.Sequential(_conv(3, channels), nn.BatchNorm2d(channels), nn.ReLU())
        self.convs = nn.Sequential(
            _conv(channels, channels),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            _conv(channels, channels),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        self.blocks = nn.ModuleList([self.convs] * layers)
        self.out_conv = nn.Sequential(_conv(channels, 3), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.in_conv(x)
        for block in self.blocks:
            fea = fea + block(fea)
        return x - self.out_conv(fea)


class SCINetwork(nn.Module):
    """Inference model (official ``Finetunemodel``): one illumination pass, ``r = clamp(y / i, 0, 1)``."""

    def __init__(self, layers: int = 1, channels: int = 3):
        super().__init__()
        self.enhance = EnhanceNetwork(layers=layers, channels=channels)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return torch.clamp(y / self.enhance(y), 0, 1)


def init_weights(m: nn.Module) -> None:
    """Official init (``Network.weights_init``): conv N(0, 0.02) with zero bias, BN weight N(1, 0.02)."""
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)


class SCITrainNetwork(nn.Module):
    """Training graph (official ``Network``): weight-shared stages with self-calibrated stage inputs.

    Stage t: ``i_t = H(v_t)``, ``r_t = clamp(y / i_t, 0, 1)``, ``v_{t+1} = y + K(r_t)``, ``v_0 = y``.
    With ``calibrate=False`` (the ``no_calibration`` ablation) every stage input is ``y``.
    """

    def __init__(self, model: SCINetwork, stages: int = 3, calibrate: bool = True):
        super().__init__()
        if stages < 1:
            raise ValueError(f"stages must be >= 1, got {stages}")
        self.enhance = model.enhance
        self.calibrate = CalibrateNetwork() if calibrate else None
        self.stages = stages

    def apply_official_init(self) -> None:
        self.enhance.apply(init_weights)
        if self.calibrate is not None:
            self.calibrate.apply(init_weights)

    def forward(self, y: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Returns (illumination per stage, stage input per stage)."""
        illus, inputs = [], []
        v = y
        for stage in range(self.stages):
            inputs.append(v)
            i = self.enhance(v)
            illus.append(i)
            # the official loop also calibrates after the last stage; that output feeds no loss term, so
            # skipping it leaves the loss and every gradient unchanged (only K's unused BN statistics differ)
            if self.calibrate is not None and stage < self.stages - 1:
                v = y + self.calibrate(torch.clamp(y / i, 0, 1))
        return illus, inputs
