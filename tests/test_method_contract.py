"""The contract of methods/base.py, checked for every registered method (and variant) on CPU with tiny inputs.

What a new method must satisfy to run through the pipeline: ``build`` gives a module whose ``infer`` maps an
input of the method's kind (odd sizes too) to a deterministic float32 NCHW RGB image in [0, 1] of the expected
size; one ``Trainer.step`` on a batch shaped like ``TrainSet``'s returns finite floats and moves the network;
the trainer state survives the engine's save / ``weights_only`` load bitwise; ``profile_method`` counts the
built network; ``convert_official`` maps the official checkpoint layout back onto the network. A method with
an official checkpoint format must add it to :data:`OFFICIAL`; one too slow at full size to :data:`FAST_BUILD`.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable, Mapping

import pytest
import torch
from test_alen import official_layout as alen_official_layout
from torch import nn

import methods
from llbench.profiling import count_params, profile_method
from methods.alen import official_key as alen_official_key
from methods.base import Method
from methods.sci.model import CalibrateNetwork

CPU = torch.device("cpu")
NAMES = methods.names()

#: constructor overrides shrinking networks too slow at full size on a CPU (same layers and code paths;
#: the full default networks run in test_profile_counts_the_built_network)
FAST_BUILD: dict[str, dict] = {
    "snr_aware": {"nf": 8, "n_layers": 2, "n_head": 2, "d_k": 8, "d_v": 8, "d_inner": 32, "light_RBs": 2},
    "lgbpn": {"base_ch": 16, "head_ch": 8, "num_module": 2, "global_blocks": 1},
    "apbsn": {"base_ch": 16, "num_module": 2},
}
#: image sizes (H, W) for inference: an odd one (every method pads; raw: the packed 19 x 25 too) and a square one
SIZES = {"raw": [(38, 50), (64, 64)], "rgb": [(37, 50), (64, 64)]}
#: training crop in network-input pixels: 40 is a multiple of the blind-spot PD factor 5 and holds
#: EnlightenGAN's 32x32 patches; SNR-Aware needs a multiple of 16, ALEN at least 64 packed pixels
TRAIN_CROP = {"snr_aware": 32, "alen": 64}
#: recipe overrides for trainer-owned networks that are not exported: EnlightenGAN's discriminators 8x narrower
TRAIN_OVERRIDES: dict[str, dict] = {"enlightengan": {"ndf": 8}}
#: profile_method inference overrides: no R3 refinement (8 more full-size passes; parameters unchanged)
PROFILE_INFER = {"lgbpn": {"r3": False}, "apbsn": {"r3": False}}
#: the batch keys TrainSet yields per train_data (llbench/data/datasets.py TrainSet.__getitem__)
BATCH_KEYS = {
    "low": ("input",),
    "paired": ("input", "target"),
    "unpaired": ("input", "reference"),
    "noisy": ("input",),
    "raw": ("input", "target"),
}


def _variants(select: Callable = lambda spec: True) -> list[tuple[str, str]]:
    """(method, variant) pairs: every method's default variant and the variants ``select`` picks."""
    out = []
    for name in NAMES:
        method = methods.get(name)
        out += [(name, v) for v, spec in method.variants.items() if v == method.default_variant or select(spec)]
    return out


ALL_VARIANTS = _variants()
#: the variants that train a different network or recipe than the default (an infer-only variant trains the default)
TRAINED_VARIANTS = _variants(lambda spec: bool(spec.build or spec.train))
#: the variants whose recipe changes the trainer's state (optimizers, extra modules); a build-only variant saves and
#: loads the same trainer state as the default one
RECIPE_VARIANTS = _variants(lambda spec: bool(spec.train))


def _ids(pairs: list[tuple[str, str]]) -> list[str]:
    return [f"{name}-{variant}" for name, variant in pairs]


def _build(name: str, variant: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return methods.get(name).build(variant, **FAST_BUILD.get(name, {}))


def _input(method: Method, h: int, w: int, seed: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)
    return method.example_input(h, w)


def _assert_same(a, b, where: str = "state") -> None:
    """Nested state (dicts, lists, tensors, numbers) equal bitwise."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, Mapping):
        assert isinstance(b, Mapping) and a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _untrainable(method: Method, variant: str) -> None:
    """A baseline that never trains (train_data "none"): its network has no parameters and it has no trainer."""
    model = _build(method.name, variant)
    assert not list(model.parameters()), f"{method.name}: train_data 'none' but the network has parameters"
    with pytest.raises(NotImplementedError):
        method.trainer(model, method.train_config(variant), CPU)


# ---- 1. build + infer -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,variant", ALL_VARIANTS, ids=_ids(ALL_VARIANTS))
def test_infer_gives_a_deterministic_rgb_image_in_unit_range(name, variant):
    method = methods.get(name)
    model = _build(name, variant).eval()
    assert isinstance(model, nn.Module)
    opts = method.infer_config(variant)
    raw = method.task == "raw"
    for h, w in SIZES["raw" if raw else "rgb"]:
        x = _input(method, h, w)
        assert x.shape == ((1, 4, h // 2, w // 2) if raw else (1, 3, h, w))  # raw: packed RGGB
        assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
        kept = x.clone()
        y = method.infer(model, x, **opts)
        scale = 2 if raw else 1  # raw: packed RGGB in, sRGB at the sensor resolution out
        assert y.shape == (1, 3, scale * x.shape[-2], scale * x.shape[-1]), (tuple(x.shape), tuple(y.shape))
        assert y.dtype == torch.float32 and torch.isfinite(y).all()
        assert 0 <= y.min() and y.max() <= 1
        assert torch.equal(x, kept), "infer modified its input"
        assert torch.equal(method.infer(model, x, **opts), y), "two inferences differ"


# ---- 2. one training step, 3. trainer state round trip --------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _no_imagenet_vgg(tmp_path_factory):
    """No cached ImageNet VGG is found: perceptual losses take the untrained (smoke-run) path on every machine."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        yield


def _train_config(method: Method, variant: str) -> dict:
    """The variant's recipe with tiny overrides: batch 2, a small crop, :data:`TRAIN_OVERRIDES`, untrained VGG."""
    overrides = {"batch_size": 2, "crop": TRAIN_CROP.get(method.name, 40), **TRAIN_OVERRIDES.get(method.name, {})}
    if "allow_untrained_vgg" in method.train_config(variant):
        overrides["allow_untrained_vgg"] = True
    return method.train_config(variant, **overrides)


def _batch(method: Method, cfg: dict, seed: int) -> dict[str, torch.Tensor]:
    """A synthetic batch shaped like TrainSet's for ``method.train_data`` (raw: packed input, 2x sRGB target)."""
    g = torch.Generator().manual_seed(seed)
    b, c = int(cfg["batch_size"]), int(cfg["crop"])
    raw = method.train_data == "raw"
    batch = {"input": 0.5 * torch.rand(b, 4 if raw else 3, c, c, generator=g)}
    for key in BATCH_KEYS[method.train_data][1:]:
        batch[key] = torch.rand(b, 3, 2 * c if raw else c, 2 * c if raw else c, generator=g)
    return batch


def _trainer(method: Method, variant: str, cfg: dict):
    """Model and trainer built as the engine builds them, and rebuilds them on resume: seed, build, trainer."""
    model = _build(method.name, variant, seed=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "no ImageNet", UserWarning)
        return model, method.trainer(model, cfg, CPU)


def _saved(trainer) -> dict:
    """The trainer state as ``llbench.train`` writes and reads it (torch.save, torch.load weights_only)."""
    buf = io.BytesIO()
    torch.save(trainer.state_dict(), buf)
    buf.seek(0)
    return torch.load(buf, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def stepped(request):
    """One training step (then one end of epoch) of a fresh trainer, with what it started from and changed."""
    name, variant = request.param
    method = methods.get(name)
    if method.train_data == "none":
        return {"method": method, "variant": variant}
    cfg = _train_config(method, variant)
    model, trainer = _trainer(method, variant, cfg)
    initial = _saved(trainer)
    before = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(2)
    losses = trainer.step(_batch(method, cfg, seed=1))
    moved = [not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True)]
    trainer.end_epoch()
    return {
        "method": method,
        "variant": variant,
        "cfg": cfg,
        "trainer": trainer,
        "initial": initial,
        "losses": losses,
        "moved": moved,
    }


@pytest.mark.parametrize("stepped", TRAINED_VARIANTS, ids=_ids(TRAINED_VARIANTS), indirect=True)
def test_one_training_step_returns_finite_losses_and_moves_the_network(stepped):
    method = stepped["method"]
    if method.train_data == "none":
        _untrainable(method, stepped["variant"])
        return
    assert method.train_data in BATCH_KEYS, f"{method.name}: unknown train_data {method.train_data!r}"
    assert stepped["moved"], f"{method.name}: a trained method's network has no parameters"
    losses = stepped["losses"]
    assert isinstance(losses, dict) and losses
    assert all(isinstance(k, str) and type(v) is float and math.isfinite(v) for k, v in losses.items()), losses
    assert any(stepped["moved"]), "the step changed no parameter of the network given to the trainer"


@pytest.mark.parametrize("stepped", RECIPE_VARIANTS, ids=_ids(RECIPE_VARIANTS), indirect=True)
def test_trainer_state_round_trip_is_bitwise(stepped):
    """A trainer rebuilt as on resume starts bitwise where the first did (weights, optimizer, RNG); loaded with
    the first one's saved state after a step and an epoch end, the next step gives the same losses and state."""
    method = stepped["method"]
    if method.train_data == "none":
        _untrainable(method, stepped["variant"])
        return
    cfg, trainer, variant = stepped["cfg"], stepped["trainer"], stepped["variant"]
    state = _saved(trainer)
    _, fresh = _trainer(method, variant, cfg)
    _assert_same(fresh.state_dict(), stepped["initial"], "fresh trainer vs first trainer before its step")
    fresh.load_state_dict(state)
    batch = _batch(method, cfg, seed=3)
    torch.manual_seed(4)
    losses = trainer.step(batch)
    torch.manual_seed(4)
    assert fresh.step(batch) == losses
    _assert_same(fresh.state_dict(), trainer.state_dict(), "restored trainer vs continued trainer")


# ---- 4. profiling ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_profile_counts_the_built_network(name):
    method = methods.get(name)
    variant = method.default_variant
    prof = profile_method(
        name, variant, size=(64, 64), device="cpu", warmup=0, repeats=1, infer=PROFILE_INFER.get(name)
    )
    torch.manual_seed(0)
    net = methods.build(name, variant)
    params = sum(p.numel() for p in net.parameters())
    assert prof["params"] == params == count_params(net)
    assert prof["input_shape"] == list(method.example_input(64, 64).shape)
    assert prof["macs"] == prof["flops"] // 2 and prof["gflops"] == pytest.approx(prof["flops"] / 1e9)
    # every conv / linear weight multiplies at least one input value: 2 FLOPs per weight at least
    layers = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    weights = sum(m.weight.numel() for m in net.modules() if isinstance(m, layers))
    assert (prof["flops"] == 0) == (params == 0) and prof["flops"] >= 2 * weights
    assert math.isfinite(prof["latency_ms"]) and prof["latency_ms"] > 0


# ---- 5. official checkpoints ----------------------------------------------------------------------------
def _sci_official(net: nn.Module) -> dict:
    """SCI:model.py ``Network`` (weights_*.pt): ``enhance.*`` as ours plus the self-calibration ``calibrate.*``."""
    calibrate = {f"calibrate.{k}": v for k, v in CalibrateNetwork().state_dict().items()}
    return {**net.state_dict(), **calibrate}


def _module_prefixed(net: nn.Module) -> dict:
    """Our key names saved from DataParallel (SNR-Aware ``*_G.pth``)."""
    return {f"module.{k}": v for k, v in net.state_dict().items()}


def _enlightengan_official(net: nn.Module) -> dict:
    """EGAN ``<epoch>_net_G_A.pth``: DataParallel ``module.`` keys, no BatchNorm ``num_batches_tracked`` (0.3.1)."""
    return {k: v for k, v in _module_prefixed(net).items() if not k.endswith("num_batches_tracked")}


def _blindspot_official(net: nn.Module, extra: Callable[[dict], dict]) -> dict:
    """AP-BSN / LG-BPN checkpoint: ``{'model_weight': {'denoiser': bsn.* keys + mask buffers (+ copies)}}``."""
    denoiser = {f"bsn.{k}": v for k, v in net.state_dict().items()}
    return {"epoch": 20, "model_weight": {"denoiser": {**denoiser, **extra(denoiser)}}}


def _lgbpn_extra(sd: dict) -> dict:
    """LGBPN:src/model/DBSNl.py DSPMC: the mask buffer and the ``test_conv`` copy of weight and bias."""
    out = {}
    for br in ("branch1", "branch2"):
        w, b = sd[f"bsn.{br}.Maskconv.weight"], sd[f"bsn.{br}.Maskconv.bias"]
        out.update({f"bsn.{br}.Maskconv.mask": torch.ones_like(w)})
        out.update({f"bsn.{br}.Maskconv.test_conv.weight": w, f"bsn.{br}.Maskconv.test_conv.bias": b})
    return out


def _apbsn_extra(sd: dict) -> dict:
    """APBSN:src/model/DBSNl.py ``CentralMaskedConv2d``: the mask buffers."""
    return {f"bsn.{br}.body.0.mask": torch.ones_like(sd[f"bsn.{br}.body.0.weight"]) for br in ("branch1", "branch2")}


def _alen_official(net: nn.Module) -> dict:
    """ALEN:main.py ``state_final.pth`` of the ISL model: EnhanceNet keys (tests/test_alen.py) mapped to ours."""
    ours = net.state_dict()
    return {"enhance": {k: ours[alen_official_key(k)] for k in alen_official_layout(isl=True)}, "epoch": 4000}


#: method -> (the official checkpoint of our network by the documented inverse mapping, a near-miss state dict
#: ``convert_official`` refuses, the KeyError's message). Methods without an official format convert by identity.
OFFICIAL: dict[str, tuple[Callable[[nn.Module], dict], dict, str]] = {
    "sci": (_sci_official, {"calibrate.in_conv.0.weight": torch.zeros(1)}, "not an SCI checkpoint"),
    "snr_aware": (_module_prefixed, {"conv_first.weight": torch.zeros(1)}, "conv_first"),
    "enlightengan": (_enlightengan_official, {"enhance.in_conv.0.weight": torch.zeros(1)}, "Unet_resize_conv"),
    "lgbpn": (lambda net: _blindspot_official(net, _lgbpn_extra), {"weight": torch.zeros(1)}, "not an LG-BPN"),
    "apbsn": (lambda net: _blindspot_official(net, _apbsn_extra), {"head.0.weight": torch.zeros(1)}, "not an AP-BSN"),
    "alen": (_alen_official, {"layer7.0.conv.weight": torch.zeros(1)}, "not an ALEN EnhanceNet key"),
}


@pytest.mark.parametrize("name", NAMES)
def test_convert_official_round_trip_reproduces_the_network(name):
    method = methods.get(name)
    variant = method.default_variant
    net = _build(name, variant, seed=0).eval()  # FAST_BUILD networks have the official key layout, narrower
    if type(method).convert_official is Method.convert_official:  # no official format: the identity
        assert name not in OFFICIAL
        official = net.state_dict()
        converted = method.convert_official(official)
        assert converted.keys() == official.keys() and all(converted[k] is v for k, v in official.items())
    else:
        assert name in OFFICIAL, f"{name} converts official checkpoints: add their layout to OFFICIAL"
        to_official, near_miss, message = OFFICIAL[name]
        official = to_official(net)
        with pytest.raises(KeyError, match=message):
            method.convert_official(near_miss)
    fresh = _build(name, variant, seed=1).eval()
    ours = net.state_dict()
    assert not ours or any(not torch.equal(v, fresh.state_dict()[k]) for k, v in ours.items())
    fresh.load_state_dict(method.convert_official(official), strict=True)
    _assert_same(fresh.state_dict(), ours)
    x = _input(method, *SIZES["raw" if method.task == "raw" else "rgb"][0])
    opts = method.infer_config(variant)
    assert torch.equal(method.infer(fresh, x, **opts), method.infer(net, x, **opts))
