"""LG-BPN: Local and Global Blind-Patch Network for self-supervised real-world denoising (Wang, Fu, Liu,
Zhang, CVPR 2023; arXiv 2304.00534).

Re-implemented from the official code Wang-XIaoDingdd/LGBPN@3ce4c7d (no license file; built on AP-BSN,
MIT): ``src/model/DBSNl.py``, ``src/model/restormer_arch.py``, ``src/model/APBSN.py`` (``BSN``),
``src/util/util.py``, ``conf/APBSN_SIDD/BSN_SIDD.yaml`` and ``conf/APBSN_DND/BSN_DND.yaml``.
Self-supervised: trained on noisy images only, L1(output, noisy input). Inference: test pass with the
shrunk DSPMC kernels, then R3 (8 refinement passes with 16% of the pixels replaced by the noisy input).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from methods import register
from methods.base import Variant
from methods.blindspot import BlindSpotMethod, official_denoiser_state
from methods.lgbpn.model import LGBPN, PRESETS, official_param_count

_DROP = (".test_conv.",)  # official DSPMC test-time copies of the weight (see official_param_count)


def convert_official_state(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Official checkpoint (``{'model_weight': {'denoiser': sd}}``) or state dict -> :class:`LGBPN` keys.

    Strips ``module.`` / ``bsn.`` prefixes and drops the ``test_conv`` copies and the ``mask`` buffers
    (the masks are rebuilt from the constructor arguments).
    """
    out = official_denoiser_state(state, skip=lambda k: any(d in k for d in _DROP) or k.endswith("Maskconv.mask"))
    if "head.0.weight" not in out or "branch1.Maskconv.weight" not in out:
        raise KeyError(f"not an LG-BPN checkpoint: keys start {sorted(state)[:5]}...")
    return out


@register
class LGBPNMethod(BlindSpotMethod):
    """LG-BPN. Variants: local DSPMC kernel size, R3 on/off, global branch on/off."""

    name = "lgbpn"
    variants = {
        "default": Variant("LG-BPN as released: local DSPMC 9x9 (radius 4), global DSPMC 21x21 + DTB, R3"),
        "dspmc_k7": Variant("local DSPMC 7x7 with blind diamond radius 3 (rest unchanged)", build={"local_kernel": 7}),
        "dspmc_k11": Variant(
            "local DSPMC 11x11 with blind diamond radius 5 (rest unchanged)", build={"local_kernel": 11}
        ),
        "no_r3": Variant("no random-replacing refinement at inference (test pass only)", infer={"r3": False}),
        "no_global": Variant(
            "local branch only (no DSPMC-21 + DTB branch; tail input 128)", build={"use_global": False}
        ),
    }
    # DND (conf/APBSN_DND/BSN_DND.yaml): same recipe, prep_DND tiles repeated 4x per epoch; the
    # pd_preset "dnd" is an inference option (the official SIDD flag only changes test/refine).
    infer_defaults: ClassVar[dict[str, Any]] = {
        **BlindSpotMethod.infer_defaults,
        "overlap": 96,
        "pd_preset": None,
    }
    forward_opts = ("pd_preset",)
    paper = (
        "Wang et al., LG-BPN: Local and Global Blind-Patch Network for Self-Supervised Real-World Denoising, CVPR 2023"
    )
    origin_url = "https://github.com/Wang-XIaoDingdd/LGBPN"
    license = "none stated (derived from AP-BSN, MIT)"

    def network(self, **kwargs: Any) -> nn.Module:
        return LGBPN(**kwargs)

    def infer(self, model: nn.Module, x: torch.Tensor, **opts: Any) -> torch.Tensor:
        """Test pass + R3. Options: r3, r3_t, r3_p, r3_pad, seed, tile, overlap, pd_preset (sidd|dnd).

        Tiling is exact only for the convolutional parts: the DTB's channel attention is a statistic of the
        whole (sub-)image, so an image larger than ``tile`` (512 by default: SIDD and DND blocks fit) gives
        slightly different values than one untiled pass. Peak memory on CPU: 1.7 GB at 256 x 256, 2.3 GB
        for a 512 x 512 window (first pass); R3 adds little.
        """
        if opts.get("pd_preset") is not None and opts["pd_preset"] not in PRESETS:
            raise KeyError(f"unknown pd_preset {opts['pd_preset']!r}; allowed: {sorted(PRESETS)}")
        return super().infer(model, x, **opts)

    def convert_official(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return convert_official_state(state)


__all__ = ["LGBPN", "LGBPNMethod", "PRESETS", "convert_official_state", "official_param_count"]
