"""ALEN: Attention-based network for low-light image enhancement (Zhang, Yan, Zhu, Li, Sun, Zhang, ICME 2020;
arXiv 2005.09829). Raw SID (Sony) input: packed RGGB at half resolution -> sRGB at full resolution.

Re-implemented from the author's code Justones/ALEN@7020c39 (`model.py`, `main.py`, `dataset.py`,
`ssimloss.py`; the repository has no license file, so nothing is copied). Differences from the released
code, all switchable or documented:

* the paper's Inverted Shuffle Layer is the default (the released code has it commented out and uses
  max-pooling: variant ``maxpool``);
* SE works for batch > 1; ``AvgPool2d(stride=0)`` is a global mean;
* inference tiles the packed frame with overlap (ALEN's non-local attention over a whole Sony frame does
  not fit in memory); the official test feeds whole frames, so tiled outputs differ slightly.
* the dataset clips the amplified input at 1 (SID protocol); ALEN's own loader does not clip;
* an ALEN epoch draws one random short frame per training scene (161 items); the engine's epoch is one
  pass over all ``_00_`` pairs (280 on SID Sony), so the per-epoch lr milestones come ~1.7x later in
  iterations unless ``lr_decay`` is rescaled;
* ``loss="l2_ssim"`` is the paper's "L2 + SSIM" with the code's 0.85 / 0.15 weighting (the paper's weights
  are not in the code); ``multipliers`` defaults to the code's (0.8, 1, 1.2, 1.5), the paper reportedly
  uses (0.5, 0.8, 1, 1.2) (``PAPER_MULTIPLIERS``, unverified).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from methods import register
from methods.alen.loss import LOSSES, alen_loss, ms_ssim
from methods.alen.model import ALEN, CODE_MULTIPLIERS, PAPER_MULTIPLIERS
from methods.alen.tiling import tiled_apply
from methods.base import Method, Trainer, Variant

__all__ = [
    "ALEN",
    "CODE_MULTIPLIERS",
    "PAPER_MULTIPLIERS",
    "ALENMethod",
    "ALENTrainer",
    "StepDecay",
    "alen_loss",
    "ms_ssim",
    "official_key",
]

SID_TRAIN_SCENES = 161  # ALEN:dataset.py: one item per long exposure 0*_00*.ARW (161 in Sony_train_list.txt)
#: ALEN:main.py train(): after epoch 2000 lr = start/10, after 3000 start/50, after 4000 start/100
OFFICIAL_LR_DECAY = ((2000, 0.1), (3000, 0.02), (4000, 0.01))


class StepDecay:
    """Learning-rate factor after ``epoch`` completed epochs: the factor of the last milestone passed.

    ALEN:main.py sets the lr at the end of epoch index ``m`` (0-based), i.e. from ``m + 1`` completed
    epochs on; a callable object (not a lambda) so ``LambdaLR.state_dict`` can save it.
    """

    def __init__(self, milestones: Sequence[Sequence[float]]):
        self.milestones = sorted((int(m), float(f)) for m, f in milestones)

    def __call__(self, epoch: int) -> float:
        factor = 1.0
        for m, f in self.milestones:
            if epoch > m:
                factor = f
        return factor


class ALENTrainer(Trainer):
    """Adam(lr 1e-4, default betas) on ``loss`` (cfg): ``l1_msssim`` (code, default) or ``l2_ssim`` (paper).

    The learning rate steps per epoch in :meth:`end_epoch` (ALEN:main.py changes it between epochs).
    """

    def __init__(self, model: nn.Module, cfg: Mapping[str, Any], device: torch.device):
        super().__init__(model, cfg, device)
        if self.cfg["loss"] not in LOSSES:
            raise ValueError(f"unknown ALEN loss {self.cfg['loss']!r}; allowed: {LOSSES}")
        self.model.to(device)
        opt = torch.optim.Adam(self.model.parameters(), lr=float(self.cfg["lr"]))
        self.optimizers["adam"] = opt
        self.schedulers["lr"] = torch.optim.lr_scheduler.LambdaLR(opt, StepDecay(self.cfg["lr_decay"]))

    def step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        self.model.train()
        x = batch["input"].to(self.device, non_blocking=True)
        y = batch["target"].to(self.device, non_blocking=True)
        opt = self.optimizers["adam"]
        opt.zero_grad(set_to_none=True)
        loss, logs = alen_loss(self.model(x), y, self.cfg["loss"], float(self.cfg["loss_beta"]))
        loss.backward()
        opt.step()
        logs["lr"] = opt.param_groups[0]["lr"]
        return logs

    def end_epoch(self) -> None:
        self.schedulers["lr"].step()


# ---- official checkpoint keys -------------------------------------------------------------------
_SE = {"fc.0": "fc1", "fc.2": "fc2"}
_RULES: list[tuple[re.Pattern[str], Any]] = [
    # CABs: inc = single_block; layer4..6 = Sequential(single_block)
    (re.compile(r"^inc\.conv1\.0\.(fc\.[02])\.(weight|bias)$"), lambda m: f"inc.se.{_SE[m[1]]}.{m[2]}"),
    (re.compile(r"^inc\.conv1\.1\.(weight|bias)$"), lambda m: f"inc.conv1.{m[1]}"),
    (re.compile(r"^inc\.conv2\.0\.(weight|bias)$"), lambda m: f"inc.conv2.{m[1]}"),
    (
        re.compile(r"^layer([456])\.0\.conv1\.0\.(fc\.[02])\.(weight|bias)$"),
        lambda m: f"dec{int(m[1]) - 3}.se.{_SE[m[2]]}.{m[3]}",
    ),
    (re.compile(r"^layer([456])\.0\.conv1\.1\.(weight|bias)$"), lambda m: f"dec{int(m[1]) - 3}.conv1.{m[2]}"),
    (re.compile(r"^layer([456])\.0\.conv2\.0\.(weight|bias)$"), lambda m: f"dec{int(m[1]) - 3}.conv2.{m[2]}"),
    # encoder: layerK = Sequential(MaxPool2d | Conv2d(4C, C, 1) [ISL], single_block1)
    (re.compile(r"^layer([123])\.0\.(weight|bias)$"), lambda m: f"down{m[1]}.proj.{m[2]}"),
    (
        re.compile(r"^layer([123])\.1\.nonlocalblock\.(theta|phi|g)\.(weight|bias)$"),
        lambda m: f"enc{m[1]}.nl.{m[2]}.{m[3]}",
    ),
    (
        re.compile(r"^layer([123])\.1\.nonlocalblock\.conv\.(weight|bias)$"),
        lambda m: f"enc{m[1]}.nl.out.{m[2]}",
    ),
    (
        re.compile(r"^layer([123])\.1\.seblock\.(fc\.[02])\.(weight|bias)$"),
        lambda m: f"enc{m[1]}.se.{_SE[m[2]]}.{m[3]}",
    ),
    (re.compile(r"^layer([123])\.1\.fusion\.0\.(weight|bias)$"), lambda m: f"enc{m[1]}.fuse.{m[2]}"),
    (re.compile(r"^layer([123])\.1\.conv1\.0\.(weight|bias)$"), lambda m: f"enc{m[1]}.conv.{m[2]}"),
    (re.compile(r"^up([123])\.(weight|bias)$"), lambda m: f"up{m[1]}.{m[2]}"),
    (re.compile(r"^output\.0\.(weight|bias)$"), lambda m: f"head.{m[1]}"),
]


def official_key(key: str) -> str:
    """This implementation's name of an official ``EnhanceNet`` state-dict key (ALEN:model.py)."""
    for pattern, name in _RULES:
        m = pattern.match(key)
        if m:
            return name(m)
    raise KeyError(f"not an ALEN EnhanceNet key: {key!r}")


@register
class ALENMethod(Method):
    """ALEN. Variants: pooling (ISL vs max-pool) and the attention of the encoder blocks."""

    name = "alen"
    task = "raw"
    train_data = "raw"
    default_variant = "default"
    variants = {
        "default": Variant("paper: inverted shuffle layer pooling, mixed (non-local + SE) attention"),
        "maxpool": Variant(
            "max-pooling instead of the inverted shuffle layer (the released code)", build={"pool": "maxpool"}
        ),
        "no_attention": Variant(
            "encoder blocks without attention (plain conv blocks instead of mixed attention)",
            build={"encoder": "plain"},
        ),
        "no_nonlocal": Variant("mixed attention without its non-local branch (SE kept)", build={"encoder": "se"}),
    }
    # ALEN:main.py argparse defaults: --epoch 60000, --batch_size 1, --patch_size 512, --start_lr 1e-4;
    # ALEN:dataset.py: random 512 crop of the packed input (1024 of the target), random v/h flip + transpose.
    train_defaults = {
        "iterations": 60000 * SID_TRAIN_SCENES,  # 60000 epochs of one random short frame per training scene
        "batch_size": 1,
        "crop": 512,  # packed pixels (the engine crops the target at twice the size)
        "augment": ("hflip", "vflip", "transpose"),
        "lr": 1e-4,
        "lr_decay": [list(m) for m in OFFICIAL_LR_DECAY],  # [epoch, factor]: stepped in end_epoch
        "loss": "l1_msssim",  # ALEN:main.py final_loss; "l2_ssim" = the paper's description
        "loss_beta": 0.85,
        "checkpoint_every": 50 * SID_TRAIN_SCENES,  # ALEN:main.py saves state_final.pth every 50 epochs
    }
    # an official epoch visits each training scene once, whatever the number of _00_ frames per scene
    recipes = {"sid": {"epoch_size": SID_TRAIN_SCENES}}
    #: packed pixels: tile 512 = the training patch (None = whole frame, as the official test), overlap 64
    infer_defaults = {"tile": 512, "overlap": 64}
    pad_multiple = 8
    paper = "Zhang et al., Attention-based network for low-light image enhancement, ICME 2020"
    origin_url = "https://github.com/Justones/ALEN"
    license = "none stated (no LICENSE file in the author's repository)"

    def network(self, **kwargs: Any) -> nn.Module:
        return ALEN(**kwargs)

    def trainer(self, model: nn.Module, cfg: Mapping[str, Any], device: torch.device) -> Trainer:
        return ALENTrainer(model, cfg, device)

    @torch.no_grad()
    def infer(self, model: nn.Module, x: torch.Tensor, **opts: Any) -> torch.Tensor:
        """Packed raw (1, 4, h, w) -> sRGB (1, 3, 2h, 2w) in [0, 1] on overlapping tiles.

        Opts: ``tile`` (packed pixels, default 512 = the training patch; ``None`` = whole frame, as the
        official test), ``overlap`` (packed pixels, default 64). Tiles are padded to a multiple of 8 and
        at least 64 pixels.
        """
        opts = self.infer_options(**opts)
        if x.ndim != 4 or x.shape[1] != 4:
            raise ValueError(f"ALEN expects packed raw (B, 4, h, w), got {tuple(x.shape)}")
        tile, overlap = opts["tile"], int(opts["overlap"])
        min_size, multiple = getattr(model, "min_size", 64), getattr(model, "multiple", self.pad_multiple)
        return tiled_apply(model, x, tile, overlap, 2, multiple, min_size).clamp(0, 1)

    def example_input(self, height: int, width: int) -> torch.Tensor:
        """Packed raw of a ``height`` x ``width`` sensor image: (1, 4, height // 2, width // 2)."""
        return torch.rand(1, 4, height // 2, width // 2)

    def convert_official(self, state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The author's ``state_final.pth`` (``{'enhance': state_dict, 'enhance_optim': ..., 'epoch': n}``,
        ALEN:main.py) or a bare ``EnhanceNet`` state dict -> this implementation's keys.

        A checkpoint with ``layerK.0.*`` weights is an ISL model (build the ``default`` variant); one without
        is the released max-pool model (build ``maxpool``).
        """
        if "enhance" in state and isinstance(state["enhance"], Mapping):
            state = state["enhance"]
        out = {}
        for key, value in state.items():
            k = key[len("module.") :] if key.startswith("module.") else key
            out[official_key(k)] = value
        if not out:
            raise KeyError("empty ALEN checkpoint")
        return out
