"""AP-BSN against numbers pinned from the official code wooseoklee4/AP-BSN@210013c (data/apbsn_official_pins.json).

The JSON was produced offline (torch 2.14.1 CPU, official code unmodified) by building the official
``APBSN(pd_a=5, pd_b=2, pd_pad=2, R3=False, bsn='DBSNl', bsn_base_ch=128, bsn_num_module=9)`` of
conf/APBSN_SIDD.yaml, filling its state dict with the seeded rule stored in the JSON and running it:
``cd /tmp/official/pin_work && ATEN_CPU_CAPABILITY=avx512 PIN_THREADS=1 python run_apbsn.py OUT`` then
``python build_json.py apbsn apbsn_official_pins.json``. Pinned: training forward (PD 5, mosaic with a 2-pixel
zero frame) and test forward without R3 (``APBSN.denoise``, PD 2) at 1x3x40x40 and 1x3x30x50, and one Adam
step of the official 1*self_L1 on a 2x3x40x40 batch. The only other variant, ``no_r3``, has the same network.

Here the official-layout checkpoint is rebuilt from the stored keys / shapes / rule, saved in the official
wrapper ``{'model_weight': {'denoiser': sd}}`` and loaded through ``llbench.evaluate.load_weights`` (our
``convert_official``) into ``methods.build('apbsn')``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import methods
from llbench.evaluate import load_weights

PINS = json.loads((Path(__file__).parent / "data" / "apbsn_official_pins.json").read_text())
APBSN = methods.get("apbsn")

# Tolerances. Measured spread of the official numbers on this machine over ATEN_CPU_CAPABILITY in
# {default, avx2, avx512} x torch threads {1, 2} (JSON "spread"): sums / mean|y| 6.6e-7 relative, sampled values
# 1.9e-9 absolute (outputs ~1e-4..1e-2), losses 0 (float32 at ~128), updated-layer sums 4.4e-5 absolute.
SUM_RTOL = 2e-5
VALUE_ATOL, VALUE_RTOL = 1e-7, 1e-4
LOSS_RTOL = 1e-6
LAYER_ATOL = 3e-4


def official_state() -> dict[str, torch.Tensor]:
    """The official ``APBSN.state_dict()`` (``bsn.``-prefixed keys) regenerated from the JSON's layout and rule."""
    rec, rule = PINS["variants"]["default"], PINS["rule"]
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


def load_net(tmp_path: Path) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    state = official_state()
    path = tmp_path / "apbsn_official.pth"
    torch.save({"epoch": 20, "model_weight": {"denoiser": state}, "optimizer_weight": {"denoiser": {}}}, path)
    net = APBSN.build()
    info = load_weights(APBSN, net, path)
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


def test_forward_matches_official(tmp_path):
    rec = PINS["variants"]["default"]
    net, _ = load_net(tmp_path)
    for name, mask in rec["masks"].items():  # the official CentralMaskedConv2d masks are ours
        assert torch.equal(net.get_submodule(name).mask, torch.tensor(mask, dtype=torch.float32)), name
    with torch.no_grad():
        net.train()  # APBSN.forward at pd_a = 5
        for pin in rec["train"]:
            check_output(net(_input(pin)), pin, f"train {pin['input_shape']}")
        net.eval()  # APBSN.denoise with R3 off: PD pd_b = 2
        for pin in rec["test"]:
            check_output(net(_input(pin)), pin, f"test {pin['input_shape']}")
    assert APBSN.infer_config("no_r3") == {"r3": False}  # the variant whose first pass this is


def test_training_step_matches_official(tmp_path):
    pin = PINS["variants"]["default"]["train_step"]
    net, state = load_net(tmp_path)
    cfg = APBSN.train_config()
    assert (cfg["lr"], tuple(cfg["betas"])) == (1e-4, (0.9, 0.999))  # conf/APBSN_SIDD.yaml
    trainer = APBSN.trainer(net, cfg, torch.device("cpu"))
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
