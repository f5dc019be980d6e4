"""SNR-Aware Low-Light Image Enhancement (Xu, Wang, Fu, Jia, CVPR 2022).

Re-implemented from the official code dvlab-research/SNR-Aware-Low-Light-Enhance@1113144 (network:
`models/archs/*`; SNR prior, losses, optimiser, test-time resize: `models/Video_base_model{3,4,4_m}.py`,
`models/loss.py`, `models/lr_scheduler.py`; recipes: `options/train/*.yml`, `data/dataset_*.py`).
The repository ships no LICENSE file. Paired training (low-light input, normal-light target).

The SNR map is computed from the input inside the method (:func:`~methods.snr_aware.model.snr_map`),
never read from a preprocessing artefact. Inference at any size: the SNR map is taken from the image
as given, then image and map are reflect-padded together to a multiple of 16 and the output cropped back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from llbench.vocabulary import Metric
from methods import register
from methods.base import PSNR_CAP_DB, Method, Trainer, Variant, cap_psnr, pad_and_run
from methods.snr_aware.loss import VGGPerceptualLoss, charbonnier
from methods.snr_aware.model import SIZE_MULTIPLE, SNRAwareNet, snr_map, token_snr_mask

#: SNR:Video_base_model4_m.py test4 (LOL-v1 and LOL-v2-real): input and SNR map resized to 400x608 (H x W)
PAPER_TEST_SIZE = (400, 608)
SCHEDULERS = ("multistep", "cosine")
#: top-level parameter names of the official ``low_light_transformer`` with the shipped configs
_OFFICIAL_PREFIXES = (
    "conv_first_1.",
    "conv_first_2.",
    "conv_first_3.",
    "feature_extraction.",
    "recon_trunk.",
    "upconv1.",
    "upconv2.",
    "HRconv.",
    "conv_last.",
    "transformer.layer_stack.",
    "recon_trunk_light.",
)


def psnr_uint8(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR of SNR:utils/util.py ``calculate_psnr`` on ``tensor2img`` images: clamp to [0, 1], x255, round,
    MSE over all RGB values in float64, data range 255, no border crop; capped at 100 dB (identical images)."""
    a = (pred.detach().double().clamp(0, 1) * 255.0).round()
    b = (target.detach().double().clamp(0, 1) * 255.0).round()
    mse = float(torch.mean((a - b) ** 2))
    return PSNR_CAP_DB if mse == 0 else cap_psnr(20.0 * math.log10(255.0 / math.sqrt(mse)))


def lr_factor(step: int, cfg: Mapping[str, Any]) -> float:
    """Learning-rate multiplier at 1-indexed iteration ``step`` (SNR:models/lr_scheduler.py).

    ``multistep``: ``gamma ** #(milestones <= step)`` (MultiStepLR_Restart without restarts);
    ``cosine``: ``eta_min/lr + (1 - eta_min/lr) * (1 + cos(pi * step / T)) / 2`` with ``T = cosine_period``
    (CosineAnnealingLR_Restart with one period, the closed form of its recursion).
    The official trainer steps the scheduler *before* each optimiser step, so step k runs at factor(k).
    """
    kind = cfg["scheduler"]
    if kind == "multistep":
        return float(cfg["gamma"]) ** sum(step >= m for m in cfg["milestones"])
    if kind == "cosine":
        floor = float(cfg["eta_min"]) / float(cfg["lr"])
        period = int(cfg["cosine_period"])
        return floor + (1.0 - floor) * (1.0 + math.cos(math.pi * min(step, period) / period)) / 2.0
    raise ValueError(f"unknown scheduler {kind!r}; allowed: {SCHEDULERS}")


class SNRAwareTrainer(Trainer):
    """Adam(lr 4e-4, betas (0.9, 0.99), weight decay 0), per-iteration schedule, Charbonnier (+ VGG19).

    Loss (SNR:Video_base_model{3,4,4_m}.py): ``pixel_weight * (charbonnier + vgg_weight * vgg)``;
    ``vgg_weight`` is 0 for LOL-v1 (model4_m), 0.1 for LOL-v2-real and SID (model3), 0.02 for
    LOL-v2-synthetic (model4). The VGG is built only when ``vgg_weight > 0``. Optional ``resize: (H, W)``
    bilinearly resizes input and target first (the official loaders' ``cv2.resize`` of full frames).
    The SNR map is computed from the (cropped, flipped, resized) input, as the loaders blur after those.
    """

    def __init__(self, model: nn.Module, cfg: Mapping[str, Any], device: torch.device):
        super().__init__(model, cfg, device)
        if self.cfg["reduction"] not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {self.cfg['reduction']!r}")
        if self.cfg["scheduler"] not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {self.cfg['scheduler']!r}")
        self.model.to(device)
        self.vgg: VGGPerceptualLoss | None = None
        if float(self.cfg["vgg_weight"]) > 0:
            from methods.vgg import vgg_features

            features, pretrained = vgg_features(
                "vgg19",
                self.cfg.get("vgg_weights"),
                allow_untrained=bool(self.cfg.get("allow_untrained_vgg")),
            )
            self.vgg = VGGPerceptualLoss(features, reduction=self.cfg["reduction"]).to(device)
            if not pretrained:
                self.flags["untrained_vgg"] = True
        opt = torch.optim.Adam(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=float(self.cfg["lr"]),
            betas=tuple(self.cfg["betas"]),
            weight_decay=float(self.cfg["weight_decay"]),
        )
        self.optimizers["adam"] = opt
        cfg_snapshot = dict(self.cfg)
        # LambdaLR's epoch j (0-indexed, after j optimiser steps) is the official 1-indexed step j + 1
        self.schedulers["lr"] = torch.optim.lr_scheduler.LambdaLR(opt, lambda j: lr_factor(j + 1, cfg_snapshot))

    def step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        self.model.train()
        x = batch["input"].to(self.device, non_blocking=True)
        y = batch["target"].to(self.device, non_blocking=True)
        if self.cfg.get("resize"):
            size = tuple(int(s) for s in self.cfg["resize"])
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        opt = self.optimizers["adam"]
        opt.zero_grad(set_to_none=True)
        out = self.model(x, snr_map(x))
        w = float(self.cfg["pixel_weight"])
        l_pix = w * charbonnier(out, y, eps=float(self.cfg["charbonnier_eps"]), reduction=self.cfg["reduction"])
        loss = l_pix
        logs = {"l_pix": float(l_pix.detach())}
        if self.vgg is not None:
            l_vgg = w * float(self.cfg["vgg_weight"]) * self.vgg(out, y)
            loss = loss + l_vgg
            logs["l_vgg"] = float(l_vgg.detach())
        loss.backward()
        opt.step()
        self.schedulers["lr"].step()
        logs["loss"] = float(loss.detach())
        logs["lr"] = opt.param_groups[0]["lr"]
        return logs


@register
class SNRAware(Method):
    """SNR-Aware. Variants switch the two SNR mechanisms and the two branches (paper Table 5)."""

    name = "snr_aware"
    task = "enhance"
    train_data = "paired"
    default_variant = "default"
    variants = {
        "default": Variant("full model: SNR-masked attention + SNR-guided fusion of both branches"),
        "no_snr_attention": Variant(
            "plain self-attention (no low-SNR key masking); SNR-guided fusion kept (paper: w/o A)",
            build={"snr_attention": False},
        ),
        "no_snr_fusion": Variant(
            "fusion without the SNR map: an even 0.5/0.5 blend of both branches; SNR-masked attention kept",
            build={"snr_fusion": False},
        ),
        "no_snr": Variant(
            "no SNR prior at all: plain self-attention and an even 0.5/0.5 branch blend",
            build={"snr_attention": False, "snr_fusion": False},
        ),
        "no_transformer": Variant(
            "short-range convolutional branch only, no transformer (paper: w/o L)",
            build={"long_branch": False},
        ),
        "no_conv_branch": Variant(
            "long-range SNR-masked transformer branch only, no short-range convs (paper: w/o S)",
            build={"short_branch": False},
        ),
        "no_conv_branch_no_snr_attention": Variant(
            "transformer branch only, with plain self-attention (paper: w/o SA)",
            build={"short_branch": False, "snr_attention": False},
        ),
    }
    # SNR:options/train/LOLv1.yml + Video_base_model4_m.py (the method default; also used for datasets
    # without an official config, e.g. LSRW)
    train_defaults = {
        "iterations": 600_000,  # niter
        "batch_size": 32,
        "crop": 128,  # GT_size
        "augment": ("hflip", "vflip"),  # SNR:data/util.py augment_torch (rot90 commented out)
        "resize": None,  # (H, W): bilinear resize of input and target before the step
        "lr": 4e-4,
        "betas": (0.9, 0.99),
        "weight_decay": 0.0,
        "scheduler": "multistep",  # stepped per iteration
        "milestones": (50_000, 100_000, 200_000, 300_000),
        "gamma": 0.5,
        "cosine_period": 200_000,  # T_period, for scheduler "cosine"
        "eta_min": 1e-7,
        "charbonnier_eps": 1e-6,
        "reduction": "sum",  # CharbonnierLoss / VGGLoss.forward; "mean" = CharbonnierLoss2 / VGGLoss.forward2
        "pixel_weight": 1.0,
        "vgg_weight": 0.0,  # 0: Charbonnier only (Video_base_model4_m)
        "vgg_weights": None,
        "allow_untrained_vgg": False,
        "checkpoint_every": 5000,  # save_checkpoint_freq
    }
    # official per-dataset configs, selected by a dataset's config key `recipe`
    recipes = {
        "lol": {},  # LOLv1.yml: the defaults above
        # LOLv2_real.yml + Video_base_model3.py: full 600x400 frames resized to 608x400, batch 4, CB + 0.1 VGG
        "lolv2-real": {"batch_size": 4, "crop": None, "resize": (400, 608), "vgg_weight": 0.1},
        # LOLv2_synthetic.yml + Video_base_model4.py: 384x384 images, 128 crops, batch 32, CB + 0.02 VGG
        "lolv2-syn": {"batch_size": 32, "crop": 128, "resize": None, "vgg_weight": 0.02},
        # SID.yml + Video_base_model3.py (rawpy-ISP RGB frames): 960x512 full frames, batch 2, lr 1e-4,
        # cosine over 200k iterations to 1e-7, CB + 0.1 VGG. Named sid-srgb: the pipeline's `sid` is raw.
        "sid-srgb": {
            "batch_size": 2,
            "crop": None,
            "resize": (512, 960),
            "lr": 1e-4,
            "scheduler": "cosine",
            "cosine_period": 200_000,
            "eta_min": 1e-7,
            "iterations": 200_000,
            "vgg_weight": 0.1,
        },
    }
    extra_columns = {
        "psnr_paper": Metric(
            "psnr_paper",
            "PSNR, paper protocol (dB)",
            True,
            2,
            "the official LOL-v1/LOL-v2-real test script: input resized to 400x608, uint8 RGB PSNR",
        )
    }
    pad_multiple = SIZE_MULTIPLE
    paper = "Xu, Wang, Fu, Jia, SNR-Aware Low-Light Image Enhancement, CVPR 2022"
    origin_url = "https://github.com/dvlab-research/SNR-Aware-Low-Light-Enhance"
    license = "none stated (no LICENSE file in the official repository)"

    def network(self, **kwargs: Any) -> nn.Module:
        return SNRAwareNet(**kwargs)

    def trainer(self, model: nn.Module, cfg: Mapping[str, Any], device: torch.device) -> Trainer:
        return SNRAwareTrainer(model, cfg, device)

    @torch.no_grad()
    def infer(self, model: nn.Module, x: torch.Tensor, **opts: Any) -> torch.Tensor:
        """SNR map of the image as given; image + map reflect-padded to a multiple of 16, run, crop, clamp."""
        if opts:
            raise TypeError(f"snr_aware inference takes no options, got {sorted(opts)}")

        def run(both: torch.Tensor) -> torch.Tensor:  # image and SNR map travel through the padding together
            return model(both[:, :3], both[:, 3:])

        return pad_and_run(run, torch.cat([x, snr_map(x)], dim=1), self.pad_multiple).clamp(0, 1)

    @torch.no_grad()
    def paper_protocol(
        self, model: nn.Module, x: torch.Tensor, size: tuple[int, int] = PAPER_TEST_SIZE
    ) -> torch.Tensor:
        """SNR:Video_base_model4_m.py ``test4``: SNR map at the original size, input and map bilinearly
        resized to ``size`` (H, W), run, output resized back bilinearly. (``test5``, LOL-v2-synthetic,
        uses 384x384.)"""
        h, w = x.shape[-2:]
        snr = snr_map(x)
        xr = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        snr = F.interpolate(snr, size=size, mode="bilinear", align_corners=False)
        out = model(xr, snr)
        return F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)

    def extra_metrics(
        self, model: nn.Module, x: torch.Tensor, target: torch.Tensor, output: torch.Tensor | None = None
    ) -> dict[str, float]:
        """``psnr_paper``: the LOL-v1 / LOL-v2-real test script protocol (400x608 resize, uint8 RGB PSNR).

        It runs its own inference at 400x608, so ``output`` (the native-resolution result) is not used.
        """
        model.eval()
        return {"psnr_paper": psnr_uint8(self.paper_protocol(model, x), target)}

    def convert_official(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Official ``low_light_transformer`` state dict (``*_G.pth``, ``LOLv1.pth``, ...) -> this network.

        The names are the official ones; only DataParallel's ``module.`` prefix is stripped. Keys outside
        the shipped configs' layout (e.g. ``conv_first`` of HR_in=False models) raise ``KeyError``.
        """
        out = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}
        unknown = sorted(k for k in out if not k.startswith(_OFFICIAL_PREFIXES))
        if unknown:
            raise KeyError(f"not an SNR-Aware (HR_in) checkpoint: unexpected keys {unknown[:5]}")
        for needed in ("conv_first_1.weight", "transformer.layer_stack.0.slf_attn.w_qs.weight"):
            if needed not in out:
                raise KeyError(f"not an SNR-Aware checkpoint: missing {needed!r} among {sorted(out)[:5]}...")
        return out


__all__ = [
    "SNRAware",
    "SNRAwareNet",
    "SNRAwareTrainer",
    "lr_factor",
    "psnr_uint8",
    "snr_map",
    "token_snr_mask",
]
