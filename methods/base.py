"""The method interface every `methods/<name>/` package implements.

A method is a small object describing one paper's model: how to build its inference network for a
variant, how to run inference on one image (padding, tiling, test-time tricks), how to train it
(one :class:`Trainer` step at a time, driven by the method-agnostic engine in ``llbench.train``),
and how to read the official checkpoints. Method code never imports Snakemake or the engine.

Tensors crossing this boundary are float32, NCHW, values in [0, 1]:

* enhancement: ``input`` = low-light RGB, ``target`` = normal-light RGB (same size);
* denoising: ``input`` = noisy RGB, ``target`` = clean RGB;
* raw: ``input`` = packed RGGB raw (4 channels, H/2 x W/2, already amplified, clipped to [0, 1]),
  ``target`` = sRGB (3 channels, H x W).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from llbench.vocabulary import TASKS, TRAIN_DATA, Metric, task_kinds

#: training-loop keys every method's recipe may set (read by ``llbench.train``, not by the Trainer)
ENGINE_KEYS = ("iterations", "batch_size", "crop", "augment", "checkpoint_every", "epoch_size", "log_every")
#: PSNR of identical images (MSE 0) and upper bound of every PSNR column, so that every metric is averaged
#: over the same images: the common "return 100" convention (e.g. BasicSR's SSIM/PSNR forks, MIRNet, LLFlow)
PSNR_CAP_DB = 100.0


def cap_psnr(value: float) -> float:
    """``min(value, PSNR_CAP_DB)``: identical images score 100 dB instead of ``inf``."""
    return min(float(value), PSNR_CAP_DB)


@dataclass(frozen=True)
class Variant:
    """One named configuration (an ablation) of a method.

    Args:
        build: keyword arguments for the network constructor.
        train: overrides of the method's training defaults (e.g. which losses are on).
        infer: overrides of the inference procedure (e.g. ``{"r3": False}``).
        doc: one line saying what the variant changes, shown in the report.
    """

    doc: str
    build: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    infer: Mapping[str, Any] = field(default_factory=dict)


class Trainer:
    """One method's optimisation state. The engine calls :meth:`step` once per iteration.

    Subclasses create their optimizers and schedulers in ``__init__`` from ``cfg`` (the method's
    training defaults merged with the experiment's overrides) and implement :meth:`step`.
    Everything that must survive an interruption goes through :meth:`state_dict`.
    """

    def __init__(self, model: nn.Module, cfg: Mapping[str, Any], device: torch.device):
        self.model = model
        self.cfg = dict(cfg)
        self.device = device
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        self.extra_modules: dict[str, nn.Module] = {}  # e.g. discriminators, trained but not exported
        self.flags: dict[str, Any] = {}  # facts recorded with every result, e.g. {"untrained_vgg": True}

    def step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Run one training iteration on ``batch`` and return the scalar losses to log."""
        raise NotImplementedError

    def end_epoch(self) -> None:
        """Called by the engine after each pass over the training set (epoch-based schedules)."""

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "extra": {k: m.state_dict() for k, m in self.extra_modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        for k, m in self.extra_modules.items():
            m.load_state_dict(state["extra"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])


class Method:
    """Base class of a registered method. Subclasses set the class attributes and :meth:`network`.

    Attributes:
        name: registry key (``sci``, ``snr_aware``, ...).
        task: one of :data:`llbench.vocabulary.TASKS`.
        train_data: one of :data:`llbench.vocabulary.TRAIN_DATA` (``none``: a baseline that is never trained).
        variants: variant name -> :class:`Variant`; must contain ``default_variant``.
        train_defaults: the paper's / official code's training recipe. Keys used by the engine:
            ``iterations``, ``batch_size``, ``crop`` (int, or None for full images), ``augment``
            (tuple of ``hflip``/``vflip``/``rot90``/``transpose``), ``checkpoint_every``; everything
            else is for the method's :class:`Trainer`.
        recipes: recipe name -> overrides of ``train_defaults`` (the official per-dataset configs); a dataset
            selects one with its config key ``recipe``.
        infer_defaults: inference options and their defaults (a variant's or the config's ``infer`` overrides).
        extra_columns: the metric columns :meth:`extra_metrics` returns (the method's own published protocol).
        pad_multiple: inference pads (reflect) H and W up to a multiple of this and crops back.
        paper, origin_url, license: provenance shown in the report.
    """

    name: ClassVar[str]
    task: ClassVar[str] = "enhance"
    train_data: ClassVar[str] = "paired"
    default_variant: ClassVar[str] = "default"
    variants: ClassVar[dict[str, Variant]] = {}
    train_defaults: ClassVar[dict[str, Any]] = {}
    recipes: ClassVar[dict[str, dict[str, Any]]] = {}
    infer_defaults: ClassVar[dict[str, Any]] = {}
    extra_columns: ClassVar[dict[str, Metric]] = {}
    pad_multiple: ClassVar[int] = 1
    paper: ClassVar[str] = ""
    origin_url: ClassVar[str] = ""
    license: ClassVar[str] = ""

    @property
    def dataset_kinds(self) -> tuple[str, ...]:
        """Dataset kinds this method can be evaluated on."""
        return task_kinds(self.task)

    @property
    def trained(self) -> bool:
        """False for a baseline evaluated without training (``train_data = "none"``, e.g. ``input``)."""
        return self.train_data != "none"

    def check(self) -> None:
        """Raise ``ValueError`` when the class attributes break the contract (called by :func:`methods.register`)."""
        if self.task not in TASKS:
            raise ValueError(f"method {self.name!r}: task {self.task!r} is not one of {', '.join(TASKS)}")
        if self.train_data not in TRAIN_DATA:
            raise ValueError(f"method {self.name!r}: train_data {self.train_data!r} not one of {', '.join(TRAIN_DATA)}")
        if self.default_variant not in self.variants:
            raise ValueError(f"method {self.name!r}: default variant {self.default_variant!r} not in its variants")
        if "default" in self.variants and self.default_variant != "default":
            raise ValueError(f"method {self.name!r}: a variant named 'default' must be the default variant")

    # ---- building -------------------------------------------------------------------------
    def network(self, **kwargs: Any) -> nn.Module:
        """Construct the inference network from keyword arguments (a variant's ``build`` dict)."""
        raise NotImplementedError

    def variant_name(self, name: str | None = None) -> str:
        """The canonical name of variant ``name``: ``None`` and ``"default"`` mean the default variant."""
        name = self.default_variant if name in (None, "default") else name
        if name not in self.variants:
            allowed = ", ".join(dict.fromkeys(["default", *self.variants]))
            raise KeyError(f"unknown variant {name!r} of {self.name}; allowed: {allowed}")
        return name

    def variant(self, name: str | None = None) -> Variant:
        """The :class:`Variant` called ``name`` (``None`` or ``"default"``: the default variant)."""
        return self.variants[self.variant_name(name)]

    def build(self, variant: str | None = None, **overrides: Any) -> nn.Module:
        """The inference network of ``variant`` with ``overrides`` of its build arguments."""
        kwargs = dict(self.variant(variant).build)
        kwargs.update(overrides)
        return self.network(**kwargs)

    # ---- training -------------------------------------------------------------------------
    def train_config(self, variant: str | None = None, recipe: str | None = None, **overrides: Any) -> dict[str, Any]:
        """Training recipe: method defaults < official per-dataset ``recipe`` < variant < experiment overrides.

        A recipe this method has no entry for leaves its defaults (its official code has one config).
        """
        cfg = copy.deepcopy(self.train_defaults)
        cfg.update(copy.deepcopy(self.recipes.get(recipe or "", {})))
        cfg.update(self.variant(variant).train)
        cfg.update(overrides)
        return cfg

    def train_keys(self) -> list[str]:
        """Every key an experiment's ``train:`` may set: the engine's, the recipes' and the variants'."""
        keys = {*ENGINE_KEYS, *self.train_defaults}
        for values in [*self.recipes.values(), *(v.train for v in self.variants.values())]:
            keys.update(values)
        return sorted(keys)

    def trainer(self, model: nn.Module, cfg: Mapping[str, Any], device: torch.device) -> Trainer:
        """The :class:`Trainer` that optimises ``model`` with recipe ``cfg``."""
        raise NotImplementedError

    # ---- inference ------------------------------------------------------------------------
    def infer_config(self, variant: str | None = None) -> dict[str, Any]:
        """The variant's inference options (over :attr:`infer_defaults`, which :meth:`infer` applies)."""
        return dict(self.variant(variant).infer)

    def infer_options(self, **opts: Any) -> dict[str, Any]:
        """:attr:`infer_defaults` merged with ``opts``; an unknown key raises ``KeyError`` naming the allowed ones."""
        unknown = sorted(set(opts) - set(self.infer_defaults))
        if unknown:
            allowed = ", ".join(sorted(self.infer_defaults)) or "none"
            raise KeyError(f"unknown inference option(s) {unknown} for {self.name!r}; allowed: {allowed}")
        return {**self.infer_defaults, **opts}

    @torch.no_grad()
    def infer(self, model: nn.Module, x: torch.Tensor, **opts: Any) -> torch.Tensor:
        """Enhance a batch at native resolution: reflect-pad to ``pad_multiple``, run, crop back, clamp."""
        self.infer_options(**opts)
        return pad_and_run(model, x, self.pad_multiple).clamp(0, 1)

    def example_input(self, height: int, width: int) -> torch.Tensor:
        """A random network input for an image of ``height`` x ``width`` pixels (profiling)."""
        return torch.rand(1, 3, height, width)

    def extra_metrics(
        self, model: nn.Module, x: torch.Tensor, target: torch.Tensor, output: torch.Tensor | None = None
    ) -> dict[str, float]:
        """The method's own published protocol where it differs from the canonical one (secondary columns).

        Args:
            x: the input batch (1, C, h, w) in [0, 1]; target: (1, 3, H, W) in [0, 1], 8-bit values;
            output: what :meth:`infer` returned for ``x`` (protocols that only re-score it need no rerun).
        Returns:
            labelled values, e.g. ``{"psnr_paper": 21.3}``; every key must be one of :attr:`extra_columns`.
        """
        return {}

    # ---- checkpoints ----------------------------------------------------------------------
    def convert_official(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map an official checkpoint's state dict onto this implementation's inference network."""
        return dict(state)


def pad_and_run(model: nn.Module, x: torch.Tensor, multiple: int, scale: int = 1) -> torch.Tensor:
    """Reflect-pad H, W of ``x`` to a multiple of ``multiple``, run ``model``, crop back.

    ``scale`` is the output / input size ratio (2 for raw-to-sRGB networks).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    y = model(x)
    return y[..., : h * scale, : w * scale]
