"""EnlightenGAN: Deep Light Enhancement without Paired Supervision (Jiang et al., IEEE TIP 2021).

Re-implemented from the official code VITA-Group/EnlightenGAN@b034984 (BSD-style license, see its
``License``): ``models/networks.py``, ``models/single_model.py``, ``data/unaligned_dataset.py``,
``train.py``, ``options/*`` and the flags of ``scripts/script.py``. Unpaired GAN: trains on low-light
images (``input``) and unrelated normal-light images (``reference``). Paper: arXiv 1906.06972.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from methods import register
from methods.base import Method, Trainer, Variant
from methods.enlightengan.loss import (
    SelfFeaturePreservingLoss,
    crop_patches,
    lsgan_d_loss,
    lsgan_loss,
    ralsgan_d_loss,
    ralsgan_g_loss,
    sample_patch_offsets,
)
from methods.enlightengan.model import (
    MULTIPLE,
    EnlightenGANGenerator,
    NoNormDiscriminator,
    attention_map,
    crop_pads,
    pad_centred,
)
from methods.vgg import vgg_features


def random_darken(
    x: torch.Tensor, p: float, low: float, high: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official ``vary`` augmentation: with probability ``p`` per image, divide it by ``times``.

    EGAN:data/unaligned_dataset.py: ``times = randint(low_times, high_times) / 100`` (inclusive, 0.01 steps,
    defaults 200 and 400) and ``input_img = (A + 1) / 2 / times`` in the [0, 1] domain.

    Returns:
        (darkened batch, per-image divisor (B,), 1 where not darkened)
    """
    b = x.shape[0]
    apply = torch.rand(b, generator=generator) < p
    lo, hi = round(low * 100), round(high * 100)
    if not 0 < lo <= hi:
        raise ValueError(f"darken range must satisfy 0 < low <= high, got ({low}, {high})")
    times = torch.randint(lo, hi + 1, (b,), generator=generator).float() / 100.0
    factor = torch.where(apply, times, torch.ones_like(times))
    return x / factor.to(x).view(b, 1, 1, 1), factor


class _LinearDecay:
    """lr factor after ``k`` epochs: 1 for ``k <= constant``, then linear to 0 over ``decay`` epochs.

    EGAN:train.py calls ``update_learning_rate`` after every epoch ``> niter``, which subtracts
    ``lr / niter_decay`` (EGAN:models/single_model.py); this is its closed form.
    """

    def __init__(self, constant: int, decay: int):
        self.constant, self.decay = int(constant), int(decay)

    def __call__(self, k: int) -> float:
        if self.decay <= 0 or k <= self.constant:
            return 1.0
        return max(0.0, 1.0 - (k - self.constant) / self.decay)


class EnlightenGANTrainer(Trainer):
    """One official ``SingleModel.optimize_parameters`` per step: G, then the global D and the local D.

    Per iteration (EGAN:models/single_model.py): darken the low-light crop at random (``vary``), compute
    ``A`` from the darkened input, ``fake = G(input, A)``; draw ``n_patches`` patch offsets shared by the
    batch (official: 1 + ``patchD_3``); G loss = RaLSGAN(global D) + LSGAN(local D, mean over patches)
    + ``vgg_weight`` x (SFP(fake, undarkened input) + mean over patches of SFP(fake patch, input patch)).
    The discriminators then see the same ``fake`` (computed before G's update, ImagePool bypassed) against
    the normal-light ``reference``. Adam(lr, betas) for all three nets; the lr is constant for
    ``epochs_constant`` epochs and decays linearly to 0 over ``epochs_decay`` (stepped in :meth:`end_epoch`).

    Implementation note: each D is run once per iteration on real and fake and its logits serve both the G
    loss and the D loss (gradients restricted with ``backward(inputs=...)``). The D weights do not change
    between the two official passes, so the gradients equal the official ones; this saves the D forwards.
    """

    def __init__(self, model: nn.Module, cfg: Mapping[str, Any], device: torch.device):
        super().__init__(model, cfg, device)
        if not isinstance(model, EnlightenGANGenerator):
            raise TypeError(f"EnlightenGANTrainer needs an EnlightenGANGenerator, got {type(model).__name__}")
        c = self.cfg
        for key, low in (("n_patches", 1), ("patch_size", 1), ("epochs_constant", 0), ("epochs_decay", 0)):
            if int(c[key]) < low:
                raise ValueError(f"{key} must be >= {low}, got {c[key]!r}")
        if not 0.0 <= float(c["darken_p"]) <= 1.0:
            raise ValueError(f"darken_p must be in [0, 1], got {c['darken_p']!r}")
        self.model.to(device)
        self.disc = NoNormDiscriminator(3, int(c["ndf"]), int(c["n_layers_d"])).to(device)
        self.extra_modules["D"] = self.disc
        self.disc_patch: NoNormDiscriminator | None = None
        if c["patch_d"]:
            self.disc_patch = NoNormDiscriminator(3, int(c["ndf"]), int(c["n_layers_patch_d"])).to(device)
            self.extra_modules["D_patch"] = self.disc_patch
        features, pretrained = vgg_features("vgg16", c.get("vgg_weights"), bool(c.get("allow_untrained_vgg", False)))
        if not pretrained:
            self.flags["untrained_vgg"] = True
        self.sfp = SelfFeaturePreservingLoss(features).to(device)
        betas = tuple(float(b) for b in c["betas"])
        decay = _LinearDecay(c["epochs_constant"], c["epochs_decay"])
        nets = {"G": self.model, "D": self.disc, "D_patch": self.disc_patch}
        for name, net in nets.items():
            if net is not None:
                opt = torch.optim.Adam(net.parameters(), lr=float(c["lr"]), betas=betas)
                self.optimizers[name] = opt
                self.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(opt, decay)
        seed = c.get("seed")
        if seed is None:  # follow the global seed the engine set
            seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
        self.rng = torch.Generator().manual_seed(int(seed))  # darkening and patch offsets

    def prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Generator input in [-1, 1], its attention map and the per-image darkening divisors.

        ``A`` comes from the darkened image (EGAN:data/unaligned_dataset.py: ``A_gray`` from ``input_img``).
        """
        c = self.cfg
        if c["darken_p"] > 0:
            low, high = c["darken_range"]
            x, factor = random_darken(x, float(c["darken_p"]), float(low), float(high), self.rng)
        else:
            factor = torch.ones(x.shape[0])
        return x * 2.0 - 1.0, attention_map(x), factor

    def step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        x = batch["input"].to(self.device, non_blocking=True)
        ref = batch["reference"].to(self.device, non_blocking=True)
        if x.dim() != 4 or x.shape[1] != 3 or ref.shape != x.shape:
            raise ValueError(
                f"EnlightenGAN needs 'input' and 'reference' RGB batches of one shape, "
                f"got {tuple(x.shape)} and {tuple(ref.shape)}"
            )
        c = self.cfg
        g_in, gray, _ = self.prepare(x)
        real_a, real_b = x * 2.0 - 1.0, ref * 2.0 - 1.0  # EGAN works on [-1, 1] tensors

        self.model.train()
        fake, _ = self.model.forward_official(g_in, gray)
        pred_fake, pred_real = self.disc(fake), self.disc(real_b)
        loss_gan = ralsgan_g_loss(pred_real.detach(), pred_fake)
        loss_vgg = self.sfp(fake, real_a)  # SFP against the *undarkened* input real_A
        losses: dict[str, torch.Tensor] = {}
        if self.disc_patch is not None:
            size = int(c["patch_size"])
            offsets = sample_patch_offsets(x.shape[-2], x.shape[-1], int(c["n_patches"]), size, self.rng)
            fake_p = crop_patches(fake, offsets, size).flatten(0, 1)  # (n * B, 3, size, size)
            real_p = crop_patches(real_b, offsets, size).flatten(0, 1)
            pred_fake_p = self.disc_patch(fake_p)
            # mean over patches of MSE(D_P(fake_i), 1) == MSE over the stacked patches (equal-size logits)
            loss_gan = loss_gan + lsgan_loss(pred_fake_p, True)
            if c["patch_vgg"]:
                input_p = crop_patches(real_a, offsets, size).flatten(0, 1)
                loss_vgg = loss_vgg + self.sfp(fake_p, input_p)
        loss_g = loss_gan + float(c["vgg_weight"]) * loss_vgg

        opt_g = self.optimizers["G"]
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward(inputs=list(self.model.parameters()), retain_graph=True)
        opt_g.step()

        loss_d = ralsgan_d_loss(pred_real, pred_fake)
        total_d = loss_d
        if self.disc_patch is not None:
            losses["loss_D_patch"] = lsgan_d_loss(self.disc_patch(real_p), pred_fake_p)
            total_d = total_d + losses["loss_D_patch"]
        d_opts = [self.optimizers[k] for k in ("D", "D_patch") if k in self.optimizers]
        for opt in d_opts:
            opt.zero_grad(set_to_none=True)
        total_d.backward(inputs=[p for m in self.extra_modules.values() for p in m.parameters()])
        for opt in d_opts:
            opt.step()

        out = {"loss_G": loss_g, "loss_G_gan": loss_gan, "loss_vgg": loss_vgg, "loss_D": loss_d, **losses}
        return {k: float(v.detach()) for k, v in out.items()}

    def end_epoch(self) -> None:
        """EGAN:train.py ``update_learning_rate`` after each epoch past ``niter``: one linear-decay step."""
        for sched in self.schedulers.values():
            sched.step()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["rng"] = self.rng.get_state()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if "rng" in state:
            self.rng.set_state(state["rng"])


@register
class EnlightenGAN(Method):
    """EnlightenGAN. Variants: dual vs global-only discriminator, attention-guided vs plain U-Net."""

    name = "enlightengan"
    task = "enhance"
    train_data = "unpaired"
    default_variant = "default"
    variants = {
        "default": Variant(
            "attention-guided U-Net, global RaLSGAN D + local LSGAN D on 6 random 32x32 patches (official)"
        ),
        "single_discriminator": Variant(
            "global discriminator only: no local D, no patch GAN or patch feature-preserving losses",
            train={"patch_d": False},
        ),
        "no_attention": Variant(
            "plain U-Net: no A input channel, no A-weighted skips, residual not multiplied by A "
            "(official --self_attention and --times_residual off)",
            build={"self_attention": False, "times_residual": False},
        ),
    }
    # EGAN:scripts/script.py + options/{base,train}_options.py defaults
    train_defaults = {
        # 200 epochs on the official set (len = max(914 low, 1016 normal) = 1016; EGAN's loader yields
        # ceil(1016 / 32) = 32 batches, llbench.train's epoch is len // batch = 31 iterations). Set per dataset
        # to (epochs_constant + epochs_decay) * (len // batch_size) so the lr reaches 0 at the last iteration.
        "iterations": 200 * (1016 // 32),
        "epochs_constant": 100,  # niter: epochs at the initial lr
        "epochs_decay": 100,  # niter_decay: epochs of linear decay to 0 (stepped in end_epoch)
        "batch_size": 32,
        "crop": 320,  # fineSize, RandomCrop
        "augment": ("hflip", "vflip"),  # RandomHorizontalFlip + the dataset's extra h/v flips
        "lr": 1e-4,
        "betas": (0.5, 0.999),  # beta1 0.5
        "ndf": 64,
        "n_layers_d": 5,  # --n_layers_D 5
        "n_layers_patch_d": 4,  # --n_layers_patchD 4
        "patch_d": True,  # --patchD
        "n_patches": 6,  # 1 + --patchD_3 5 (the paper says 5; issue #15)
        "patch_size": 32,  # --patchSize 32
        "patch_vgg": True,  # --patch_vgg
        "vgg_weight": 1.0,  # --vgg 1
        "darken_p": 0.5,  # --vary 1, random.random() < 0.5
        "darken_range": (2.0, 4.0),  # --low_times 200 --high_times 400 (percent)
        "vgg_weights": None,
        "allow_untrained_vgg": False,
        "checkpoint_every": 160,  # save_epoch_freq 5 epochs
    }
    infer_defaults = {"max_width": 2200}  # EGAN:models/networks.py Unet_resize_conv: wider inputs run at 1/2
    pad_multiple = MULTIPLE
    paper = "Jiang et al., EnlightenGAN: Deep Light Enhancement without Paired Supervision, IEEE TIP 2021"
    origin_url = "https://github.com/VITA-Group/EnlightenGAN"
    license = "BSD-style (see the repository's License file)"

    def network(self, **kwargs: Any) -> nn.Module:
        return EnlightenGANGenerator(**kwargs)

    def trainer(self, model: nn.Module, cfg: Mapping[str, Any], device: torch.device) -> Trainer:
        return EnlightenGANTrainer(model, cfg, device)

    @torch.no_grad()
    def infer(self, model: nn.Module, x: torch.Tensor, **opts: Any) -> torch.Tensor:
        """Official test path: width > ``max_width`` (2200) -> avg-pool x2, run, bilinear x2 back; pad to 16.

        EGAN:models/networks.py ``Unet_resize_conv.forward``: inputs wider than 2200 px are average-pooled
        by 2 and the output up-sampled by 2 (bilinear, the model's ``align_corners``). Here the output is
        resized to exactly the input size (the official x2 loses a pixel on odd sizes). Padding: centred
        reflect padding to a multiple of 16, as the official ``pad_tensor``. Output clamped to [0, 1].
        """
        max_width = self.infer_options(**opts)["max_width"]
        h, w = x.shape[-2:]
        wide = max_width is not None and w > int(max_width)
        inp = F.avg_pool2d(x, 2) if wide else x
        inp, pads = pad_centred(inp, self.pad_multiple)
        if hasattr(model, "forward_raw"):
            raw = model.forward_raw(inp)
        else:
            raw = model(inp) * 2.0 - 1.0
        raw = crop_pads(raw, pads)
        if wide:
            raw = F.interpolate(raw, size=(h, w), mode="bilinear", align_corners=getattr(model, "align_corners", True))
        return ((raw + 1.0) * 0.5).clamp(0.0, 1.0)

    def convert_official(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Official ``<epoch>_net_G_A.pth`` -> this generator's state dict.

        The module names are the official ``Unet_resize_conv`` ones; the official ``define_G`` always wraps G
        in ``DataParallel``, so saved keys start with ``module.``, which is stripped. PyTorch 0.3.1 had no
        BatchNorm ``num_batches_tracked`` buffer; zeros are added so a strict load works.
        """
        out = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}
        missing = [k for k in ("conv1_1.weight", "conv10.weight", "deconv5.weight") if k not in out]
        if missing:
            raise KeyError(f"not an EnlightenGAN Unet_resize_conv state dict: missing {missing}")
        for bn in {k[: -len(".running_mean")] for k in out if k.endswith(".running_mean")}:
            out.setdefault(f"{bn}.num_batches_tracked", torch.tensor(0, dtype=torch.long))
        return out


__all__ = [
    "EnlightenGAN",
    "EnlightenGANGenerator",
    "EnlightenGANTrainer",
    "NoNormDiscriminator",
    "attention_map",
    "random_darken",
]
