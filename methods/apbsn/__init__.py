"""AP-BSN: Self-Supervised Denoising for Real-World Images via Asymmetric PD and Blind-Spot Network
(Lee, Son, Lee, CVPR 2022; arXiv 2203.11799).

Re-implemented from the official code wooseoklee4/AP-BSN@210013c (MIT): ``src/model/APBSN.py``,
``src/model/DBSNl.py``, ``src/util/util.py``, ``conf/APBSN_SIDD.yaml``. Self-supervised: trained on noisy
images only with L1(output, noisy input) at PD factor 5; tested at PD factor 2, then R3 (8 refinement
passes without PD, 16% of the pixels replaced by the noisy input). LG-BPN's baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from methods import register
from methods.apbsn.model import APBSN
from methods.base import Variant
from methods.blindspot import BlindSpotMethod, official_denoiser_state


def convert_official_state(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Official checkpoint (``{'model_weight': {'denoiser': sd}}``) or state dict -> :class:`APBSN` keys.

    Strips ``module.`` / ``bsn.`` prefixes and drops the ``mask`` buffers of the centre-masked convs.
    """
    out = official_denoiser_state(state, skip=lambda k: k.endswith(".mask"))
    if "head.0.weight" not in out or "branch1.body.0.weight" not in out:
        raise KeyError(f"not an AP-BSN checkpoint: keys start {sorted(state)[:5]}...")
    return out


@register
class APBSNMethod(BlindSpotMethod):
    """AP-BSN. Variants: R3 on/off."""

    name = "apbsn"
    variants = {
        "default": Variant("AP-BSN as released: PD 5 for training, PD 2 at test, R3 (T=8, p=0.16)"),
        "no_r3": Variant("no random-replacing refinement at inference (PD-2 test pass only)", infer={"r3": False}),
    }
    paper = (
        "Lee et al., AP-BSN: Self-Supervised Denoising for Real-World Images via Asymmetric PD and "
        "Blind-Spot Network, CVPR 2022"
    )
    origin_url = "https://github.com/wooseoklee4/AP-BSN"
    license = "MIT"

    def network(self, **kwargs: Any) -> nn.Module:
        return APBSN(**kwargs)

    def infer(self, model: nn.Module, x: torch.Tensor, **opts: Any) -> torch.Tensor:
        """PD-2 test pass + R3. Options: r3, r3_t, r3_p, r3_pad, seed, tile (512), overlap (64).

        Tiles are exact away from the image border. Within one receptive field (58 px) of it the official
        PD-2 mosaic couples opposite borders (its sub-images meet across the 4-pixel zero frame), so there a
        tile sees its own far edge instead of the image's: images up to ``tile`` run untiled.
        """
        return super().infer(model, x, **opts)

    def convert_official(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return convert_official_state(state)


__all__ = ["APBSN", "APBSNMethod", "convert_official_state"]
