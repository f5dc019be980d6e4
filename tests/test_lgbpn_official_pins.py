"""LG-BPN against numbers pinned from the official code Wang-XIaoDingdd/LGBPN@3ce4c7d (data/lgbpn_official_pins.json).

The JSON was produced offline (torch 2.14.1 CPU) by building the official ``BSN(..., bsn='My_BSN')`` of
conf/APBSN_SIDD/BSN_SIDD.yaml (R3 off), filling its state dict with the seeded rule stored in the JSON and
running it: ``cd /tmp/official/pin_work && ATEN_CPU_CAPABILITY=avx512 PIN_THREADS=1 python run_lgbpn.py OUT``
then ``python build_json.py lgbpn lgbpn_official_pins.json`` (the JSON's "how" lists the CPU patches of the
official DeformConv path and the exact calls). Pinned per variant (default, dspmc_k7, dspmc_k11; the
official ``DSPMC_9`` class at 7 / 11 in place of the local 9x9, as the constructor has no switch):
training forward (local PD 4 / global PD 5) at 1x3x40x40 and 1x3x40x60, test forward without R3 (SIDD
preset: PD 3 / 4 with the shrunk DSPMC) at 1x3x36x36 and 1x3x36x48, for the default also the DND preset
(PD 2 / 4) and one Adam step of the official 1*self_L1 on a 2x3x40x40 batch. ``no_global`` has no official
counterpart (the official forward always concatenates both branches) and is not pinned.

Here the official-layout checkpoint is rebuilt from the stored keys / shapes / rule, saved in the official
wrapper ``{'model_weight': {'denoiser': sd}}`` and loaded through ``llbench.evaluate.load_weights`` (our
``convert_official``) into ``methods.build('lgbpn', variant)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import methods
from llbench.evaluate import load_weights

PINS = json.loads((Path(__file__).parent / "data" / "lgbpn_official_pins.json").read_text())
LGBPN = methods.get("lgbpn")
VARIANTS = sorted(PINS["variants"])

# Tolerances. Measured spread of the official numbers on this machine over ATEN_CPU_CAPABILITY in
# {default, avx2, avx512} x torch threads {1, 2} (JSON "spread"): sums / mean|y| 1.1e-6 relative, sampled values
# 1.4e-8 absolute (outputs ~1e-3..6e-3), losses 0 (float32 at ~127), updated-layer sums 1.3e-4 absolute.
SUM_RTOL = 2e-5
VALUE_ATOL, VALUE_RTOL = 1e-7, 1e-4
LOSS_RTOL = 1e-6
LAYER_ATOL = 1e-3


def official_state(variant: str) -> dict[str, torch.Tensor]:
    """The official ``BSN.state_dict()`` (``bsn.``-prefixed keys) regenerated from the JSON's layout and rule."""
    rec, rule = PINS["variants"][variant], PINS["rule"]
    masks = {k: torch.tensor(m, dtype=torch.float32) for k, m in rec["masks"].items()}
    g = torch.Generator().manual_seed(rule["seed"])
    state: dict[str, torch.Tensor] = {}
    for key, shape, dtype in rec["layout"]:
        assert dtype == "float32", key
        if key.endswith(".mask"):
            state[key] = masks[key[len("bsn.") : -len(".mask")]].expand(shape).clone()
        else:
            state[key] = rule["scale"] * torch.randn(shape, generator=g)
    for key in [k for k in state if k.endswith(".mask")]:
        weight = key[: -len(".mask")] + ".weight"
        state[weight] = state[weight] * state[key]
    return state


def load_net(variant: str, tmp_path: Path) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    state = official_state(variant)
    path = tmp_path / f"{variant}_official.pth"
    torch.save({"epoch": 20, "model_weight": {"denoiser": state}, "optimizer_weight": {"denoiser": {}}}, path)
    net = LGBPN.build(variant)
    info = load_weights(LGBPN, net, path)
    assert info["format"] == "official"
    return net, state


def _input(entry: dict) -> torch.Tensor:
    return torch.rand(entry["input_shape"], generator=torch.Generator().manual_seed(entry["input_seed"]))


def check_output(y: torch.Tensor, pin: dict, what: str) -> None:
    assert list(y.shape) == pin["shape"], what
    assert float(y.double().sum()) == pytest.approx(pin["sum"], rel=SUM_RTOL), what
    assert float(y.double().abs().mean()) == pytest.approx(pin["mean_abs"], rel=SUM_RTOL), what
    got = torch.stack([y[tuple(p)] for p in pin["positions"]]).double()
    torch.testing.assert_close(
        got, torch.tensor(pin["values"], dtype=torch.float64), atol=VALUE_ATOL, rtol=VALUE_RTOL, msg=what
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_matches_official(variant, tmp_path):
    rec = PINS["variants"][variant]
    net, _ = load_net(variant, tmp_path)
    expected_kernel = {"default": 9, "dspmc_k7": 7, "dspmc_k11": 11}[variant]
    for name, mask in rec["masks"].items():  # the official DSPMC masks are ours
        module = net.get_submodule(name)
        assert module.kernel_size[0] == len(mask)
        assert torch.equal(module.mask, torch.tensor(mask, dtype=torch.float32)), name
    assert net.branch1.Maskconv.kernel_size[0] == expected_kernel
    with torch.no_grad():
        net.train()  # training pass: local PD 4 (pad 2), global PD 5 (pad 0)
        for pin in rec["train"]:
            check_output(net(_input(pin)), pin, f"{variant} train {pin['input_shape']}")
        net.eval()  # test pass without R3 (BSN.denoise, R3=False)
        for section, kwargs in (("test_sidd", {}), ("test_dnd", {"pd_preset": "dnd"})):
            for pin in rec.get(section, []):
                check_output(net(_input(pin), **kwargs), pin, f"{variant} {section} {pin['input_shape']}")


def test_training_step_matches_official(tmp_path):
    pin = PINS["variants"]["default"]["train_step"]
    net, state = load_net("default", tmp_path)
    cfg = LGBPN.train_config()
    assert (cfg["lr"], tuple(cfg["betas"])) == (1e-4, (0.9, 0.999))  # conf/APBSN_SIDD/BSN_SIDD.yaml
    trainer = LGBPN.trainer(net, cfg, torch.device("cpu"))
    x = _input(pin)
    loss = trainer.step({"input": x})["self_l1"]
    assert loss == pytest.approx(pin["loss"], rel=LOSS_RTOL)
    net.train()
    with torch.no_grad():
        after = float(F.l1_loss(net(x), x)) * 255.0
    assert after == pytest.approx(pin["loss_after_step"], rel=LOSS_RTOL)
    params = dict(net.named_parameters())
    for key, layer in pin["layers"].items():
        updated = params[key[len("bsn.") :]].detach().double()
        assert float(updated.sum()) == pytest.approx(layer["sum"], abs=LAYER_ATOL), key
        delta = float((updated - state[key].double()).sum())
        assert delta == pytest.approx(layer["delta_sum"], abs=LAYER_ATOL), key
