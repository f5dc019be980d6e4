"""The ``input`` baseline: the degraded input itself, evaluated through the same path as every method.

Its row shows what each method gains (LOL-v1 test set: 7.77 dB input PSNR).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from methods import register
from methods.base import Method, Variant


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@register
class Input(Method):
    """No processing: output = input."""

    name = "input"
    task = "enhance"
    train_data = "none"
    variants = {"default": Variant("the degraded input, unprocessed")}
    paper = "baseline (no method)"

    @property
    def dataset_kinds(self) -> tuple[str, ...]:
        return ("paired", "unpaired", "denoise")

    def network(self, **kwargs: Any) -> nn.Module:
        return Identity()
