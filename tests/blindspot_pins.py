"""Shared by the AP-BSN and LG-BPN official-pin tests: the official-layout checkpoint of the pins (with the
blind-spot masks applied to the weights, as the official training forward does) and the output checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from llbench.evaluate import load_weights


def official_state(pins: dict, variant: str) -> dict[str, torch.Tensor]:
    """The official ``state_dict()`` (``bsn.``-prefixed keys) regenerated from the JSON's layout and rule."""
    rec, rule = pins["variants"][variant], pins["rule"]
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


def load_net(method, pins: dict, variant: str, tmp_path: Path) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """Our network of ``variant`` loaded from the official checkpoint wrapper through ``load_weights``."""
    state = official_state(pins, variant)
    path = tmp_path / f"{method.name}_{variant}_official.pth"
    torch.save({"epoch": 20, "model_weight": {"denoiser": state}, "optimizer_weight": {"denoiser": {}}}, path)
    net = method.build(variant)
    assert load_weights(method, net, path)["format"] == "official"
    return net, state


def seeded_input(entry: dict) -> torch.Tensor:
    return torch.rand(entry["input_shape"], generator=torch.Generator().manual_seed(entry["input_seed"]))


def check_output(y: torch.Tensor, pin: dict, what: str, sum_rtol: float, value_atol: float, value_rtol: float) -> None:
    """Shape, float64 sum, mean |y| and the sampled values of one pinned output."""
    assert list(y.shape) == pin["shape"], what
    assert float(y.double().sum()) == pytest.approx(pin["sum"], rel=sum_rtol), what
    assert float(y.double().abs().mean()) == pytest.approx(pin["mean_abs"], rel=sum_rtol), what
    got = torch.stack([y[tuple(p)] for p in pin["positions"]]).double()
    torch.testing.assert_close(
        got, torch.tensor(pin["values"], dtype=torch.float64), atol=value_atol, rtol=value_rtol, msg=what
    )


def check_training_step(method, pins: dict, tmp_path: Path, loss_rtol: float, layer_atol: float) -> None:
    """One step of our Trainer from the pinned official weights: its loss, the loss after the step, and the
    sums (and summed updates) of the pinned layers, against the official step."""
    pin = pins["variants"]["default"]["train_step"]
    net, state = load_net(method, pins, "default", tmp_path)
    cfg = method.train_config()
    assert (cfg["lr"], tuple(cfg["betas"])) == (1e-4, (0.9, 0.999))  # conf/APBSN_SIDD.yaml, LGBPN's BSN_SIDD.yaml
    trainer = method.trainer(net, cfg, torch.device("cpu"))
    x = seeded_input(pin)
    loss = trainer.step({"input": x})["self_l1"]
    assert loss == pytest.approx(pin["loss"], rel=loss_rtol)
    net.train()
    with torch.no_grad():
        after = float(F.l1_loss(net(x), x)) * 255.0
    assert after == pytest.approx(pin["loss_after_step"], rel=loss_rtol)
    params = dict(net.named_parameters())
    for key, layer in pin["layers"].items():
        updated = params[key[len("bsn.") :]].detach().double()
        assert float(updated.sum()) == pytest.approx(layer["sum"], abs=layer_atol), key
        delta = float((updated - state[key].double()).sum())
        assert delta == pytest.approx(layer["delta_sum"], abs=layer_atol), key
