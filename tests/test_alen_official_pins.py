"""ALEN against numbers pinned from the official code, Justones/ALEN@7020c39 (model.py EnhanceNet, main.py train()).

tests/data/alen_official_pins.json was produced outside this repository from a patched copy of the official code
(patches listed in its "how" field) with::

    cd /tmp/official && for cap in default avx2 avx512; do for t in 1 2; do ATEN_CPU_CAPABILITY=$cap \
        python alen_pin.py ${cap}_t$t $t; done; done && python alen_pin_json.py

(the pins are the avx512, 1-thread run). Variants: ``maxpool`` = the released EnhanceNet, ``default`` = EnhanceNet
with its commented-out Inverted Shuffle Layer lines enabled. The official-layout state dict is regenerated from the
stored keys and seed, saved as the official ``state_final.pth`` layout and loaded through ``load_weights``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import methods
from llbench.evaluate import load_weights
from methods.alen import official_key

ALEN = methods.get("alen")
PINS = json.loads((Path(__file__).parent / "data" / "alen_official_pins.json").read_text())

# Tolerances: the official numbers moved at most 5.7e-8 (relative sums / mean|y|), 3.2e-8 (absolute sampled values),
# 2.2e-7 (relative loss, L1 and MS-SSIM) and 1.2e-7 (absolute Adam delta sums) over ATEN_CPU_CAPABILITY=
# default|avx2|avx512 x 1|2 threads ("measured_spread" in the JSON); margins of ~50x (one Adam sign flip = 1e-4).
SUM_RTOL = 1e-5
VALUE_ATOL = 1e-6
LOSS_RTOL = 1e-5
DELTA_ATOL = 2e-6


def official_state(variant: str) -> dict[str, torch.Tensor]:
    """The official EnhanceNet state dict of the pins: keys in sorted order drawn from one seeded generator."""
    w = PINS["weights"]
    g = torch.Generator().manual_seed(w["seed"])
    state = {}
    for key, shape, dtype in PINS["variants"][variant]["layout"]:
        assert dtype == "float32"
        state[key] = w["scale"] * torch.randn(shape, generator=g)
    return state


def _input(spec: dict) -> torch.Tensor:
    return torch.rand(spec["shape"], generator=torch.Generator().manual_seed(spec["seed"]))


def _load_official(variant: str, state: dict[str, torch.Tensor], path: Path, prefix: str = "") -> torch.nn.Module:
    """Save ``state`` as official main.py does (state_final.pth) and load it through the project's loader."""
    ckpt = {"enhance": {prefix + k: v for k, v in state.items()}, "enhance_optim": {"state": {}}, "epoch": 0}
    assert sorted(ckpt) == PINS["variants"][variant]["train_step"]["checkpoint_top_keys"]
    torch.save(ckpt, path)
    net = ALEN.build(variant)
    assert load_weights(ALEN, net, path)["format"] == "official"
    return net


@pytest.mark.parametrize("variant,prefix", [("maxpool", ""), ("default", "module.")])
def test_forward_matches_official(variant, prefix, tmp_path):
    state = official_state(variant)
    net = _load_official(variant, state, tmp_path / "state_final.pth", prefix).eval()
    for pin in PINS["variants"][variant]["forward"]:
        with torch.no_grad():
            y = net(_input(pin["input"]))
        assert list(y.shape) == pin["shape"]
        assert float(y.double().sum()) == pytest.approx(pin["sum"], rel=SUM_RTOL)
        assert float(y.double().abs().mean()) == pytest.approx(pin["mean_abs"], rel=SUM_RTOL)
        got = torch.tensor([float(y[0, c, i, j]) for c, i, j in pin["positions"]], dtype=torch.float64)
        torch.testing.assert_close(got, torch.tensor(pin["values"], dtype=torch.float64), atol=VALUE_ATOL, rtol=1e-5)


@pytest.mark.parametrize("variant", ["maxpool", "default"])
def test_train_step_matches_official(variant, tmp_path):
    pin = PINS["variants"][variant]["train_step"]
    state = official_state(variant)
    net = _load_official(variant, state, tmp_path / "state_final.pth")
    trainer = ALEN.trainer(net, dict(ALEN.train_defaults), torch.device("cpu"))
    logs = trainer.step({"input": _input(pin["input"]), "target": _input(pin["target"])})
    assert logs["loss"] == pytest.approx(pin["loss"], rel=LOSS_RTOL)
    assert logs["pix"] == pytest.approx(pin["loss_parts_initial"]["pix"], rel=LOSS_RTOL)
    assert logs["ssim"] == pytest.approx(pin["loss_parts_initial"]["msssim"], rel=LOSS_RTOL)
    after = net.state_dict()
    for key, layer in pin["layers_after"].items():
        delta = float((after[official_key(key)].double() - state[key].double()).sum())
        assert delta == pytest.approx(layer["delta_sum"], abs=DELTA_ATOL), key
