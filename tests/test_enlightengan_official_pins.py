"""EnlightenGAN against numbers pinned from the official code, VITA-Group/EnlightenGAN@b034984.

The pins (tests/data/enlightengan_official_pins.json) were produced by running the official ``Unet_resize_conv``
(eval, no grad) and one official ``SingleModel.optimize_parameters`` step, patched only for torch 2.x CPU (see the
JSON's ``how``), with seeded-random weights for G, both discriminators and VGG16 (the JSON's ``rule``):
``python /tmp/official/egan_pin.py OUT.json 1`` on a git archive of the official repository (torch 2.14.1 CPU),
repeated under ``ATEN_CPU_CAPABILITY=default|avx2|avx512`` and 1 or 2 threads to measure the spread.

Here the official-layout state dicts are regenerated from the stored keys/shapes and the rule, G goes through our
``convert_official`` (``module.`` prefix, and without ``num_batches_tracked`` as PyTorch 0.3.1 saved it), and our
network / trainer must reproduce the pins.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import methods
import methods.enlightengan as egan
from methods.enlightengan import attention_map

PINS = json.loads((Path(__file__).parent / "data" / "enlightengan_official_pins.json").read_text())
EGAN = methods.get("enlightengan")

# Tolerances: the official numbers spread (max over ATEN_CPU_CAPABILITY default/avx2/avx512 x 1/2 threads) by
# rel 2.5e-6 on forward sums, 2.4e-6 on mean|y|, abs 1.3e-5 on sampled values, rel 2.1e-6 on losses, rel 1.7e-7 on
# BN running sums, rel 2.2e-5 on |weight update| sums and abs 6e-4 on updated-weight sums (a first Adam step is
# ~lr*sign(grad), so each near-zero gradient that flips sign moves a sum by 2e-4); margin about 10x.
SUM_RTOL, MEAN_RTOL, SAMPLE_ATOL, LOSS_RTOL = 3e-5, 3e-5, 1.5e-4, 3e-5
BN_RTOL, DELTA_ABS_RTOL, WEIGHT_SUM_ATOL = 3e-6, 3e-4, 2e-3


def official_state(layout: list, seed: int, gain: float) -> dict[str, torch.Tensor]:
    """The official state dict with the pins' deterministic values (the JSON's ``rule``)."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, shape, dtype in layout:
        if dtype.startswith("int"):
            out[key] = torch.zeros(shape, dtype=getattr(torch, dtype))
        elif key.endswith("running_var"):
            out[key] = 1 + 0.1 * torch.rand(shape, generator=g)
        elif key.endswith("running_mean"):
            out[key] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 4:
            out[key] = gain * torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        elif key.endswith(".weight"):
            out[key] = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            assert key.endswith(".bias"), key
            out[key] = 0.05 * torch.randn(shape, generator=g)
    return out


def official_g(variant: str, drop_num_batches: bool = False) -> dict[str, torch.Tensor]:
    variant = PINS["variants"][variant].get("train", {}).get("G_layout_from", variant)  # same official G flags
    state = official_state(PINS["variants"][variant]["G_layout"], PINS["seeds"]["G"], PINS["gains"]["G"])
    assert all(k.startswith("module.") for k in state)  # define_G always wraps G in DataParallel
    if drop_num_batches:  # the released checkpoints (PyTorch 0.3.1) have no num_batches_tracked
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    return state


def our_generator(variant: str, drop_num_batches: bool = False) -> torch.nn.Module:
    model = EGAN.build(variant)
    model.load_state_dict(EGAN.convert_official(official_g(variant, drop_num_batches)), strict=True)
    return model


def check_stats(y: torch.Tensor, pin: dict, positions: list[int], what: str) -> None:
    assert list(y.shape) == pin["shape"], what
    y64 = y.detach().double()
    assert y64.sum().item() == pytest.approx(pin["sum"], rel=SUM_RTOL), f"{what} sum"
    assert y64.abs().mean().item() == pytest.approx(pin["mean_abs"], rel=MEAN_RTOL), f"{what} mean|y|"
    got = y.detach().reshape(-1)[torch.tensor(positions)]
    torch.testing.assert_close(got, torch.tensor(pin["samples"]), rtol=0, atol=SAMPLE_ATOL, msg=what)


@pytest.mark.parametrize("variant", ["default", "no_attention"])
def test_forward_matches_official(variant):
    model = our_generator(variant, drop_num_batches=variant == "default").eval()
    for case in PINS["variants"][variant]["cases"]:
        x = torch.rand(case["input_shape"], generator=torch.Generator().manual_seed(case["input_seed"]))
        with torch.no_grad():
            image = model(x)  # clamp((fake_B + 1) / 2)
            fake, latent = model.forward_official(x * 2.0 - 1.0, attention_map(x))
        pos = case["positions"]
        check_stats(image, case["image"], pos, f"{variant} {case['input_shape']} image")
        check_stats(fake, case["fake_B"], pos, f"{variant} {case['input_shape']} fake_B")
        check_stats(latent, case["latent"], pos, f"{variant} {case['input_shape']} latent")


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """The seeded-random VGG16 in the official ``Vgg16`` naming (``conv1_1.weight`` ...), as the pins used it."""
    state = official_state(PINS["vgg_layout"], PINS["seeds"]["vgg"], PINS["gains"]["vgg"])
    path = tmp_path_factory.mktemp("vgg") / "vgg16.weight"
    torch.save(state, path)
    return str(path)


@pytest.mark.parametrize("variant", ["default", "no_attention", "single_discriminator"])
def test_one_training_step_matches_official(variant, vgg_file, monkeypatch):
    pins = PINS["variants"][variant]["train"]
    tb = PINS["train_batch"]
    times = float(tb["times"])
    # darken every image by exactly `times` (official: input_img = A / times), VGG from the seeded file
    cfg = EGAN.train_config(variant, darken_p=1.0, darken_range=(times, times), vgg_weights=vgg_file, seed=0)
    model = our_generator(variant)
    trainer = EGAN.trainer(model, cfg, torch.device("cpu"))
    assert not trainer.flags.get("untrained_vgg")
    trainer.disc.load_state_dict(official_state(pins["D_layouts"]["D_A"], PINS["seeds"]["D_A"], 1.0))
    assert (trainer.disc_patch is not None) == ("D_P" in pins["D_layouts"])
    if trainer.disc_patch is not None:
        trainer.disc_patch.load_state_dict(official_state(pins["D_layouts"]["D_P"], PINS["seeds"]["D_P"], 1.0))
    assert PINS["gains"]["D_A"] == PINS["gains"]["D_P"] == 1.0

    offsets = torch.tensor(pins["offsets_top_left"], dtype=torch.int64)

    def pinned_offsets(height, width, n, size, generator=None):
        assert (height, width, n, size) == (64, 64, len(offsets), 32)
        return offsets.clone()

    monkeypatch.setattr(egan, "sample_patch_offsets", pinned_offsets)
    before = {
        "G_conv10": model.conv10.weight.detach().clone(),
        "G_conv1_1": model.conv1_1.weight.detach().clone(),
        "D_A_model0": trainer.disc.model[0].weight.detach().clone(),
    }
    if trainer.disc_patch is not None:
        before["D_P_model0"] = trainer.disc_patch.model[0].weight.detach().clone()
    x = torch.rand(tb["shape"], generator=torch.Generator().manual_seed(tb["low_seed"]))
    ref = torch.rand(tb["shape"], generator=torch.Generator().manual_seed(tb["ref_seed"]))
    losses = trainer.step({"input": x, "reference": ref})

    assert set(losses) == set(pins["losses"])
    for name, value in pins["losses"].items():
        assert losses[name] == pytest.approx(value, rel=LOSS_RTOL), name
    after = {
        "G_conv10": model.conv10.weight,
        "G_conv1_1": model.conv1_1.weight,
        "D_A_model0": trainer.disc.model[0].weight,
    }
    if trainer.disc_patch is not None:
        after["D_P_model0"] = trainer.disc_patch.model[0].weight
    assert set(after) == set(pins["updated"])
    for name, pin in pins["updated"].items():
        new = after[name].detach().double()
        delta = new - before[name].double()
        assert new.sum().item() == pytest.approx(pin["sum"], abs=WEIGHT_SUM_ATOL), f"{name} sum"
        assert delta.sum().item() == pytest.approx(pin["delta_sum"], abs=WEIGHT_SUM_ATOL), f"{name} delta sum"
        assert delta.abs().sum().item() == pytest.approx(pin["delta_abs_sum"], rel=DELTA_ABS_RTOL), f"{name} |delta|"
    state = model.state_dict()
    for name, value in pins["bn_running_sums"].items():
        assert state[name].double().sum().item() == pytest.approx(value, rel=BN_RTOL), name
