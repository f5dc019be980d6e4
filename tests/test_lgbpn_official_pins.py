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
from blindspot_pins import check_output, check_training_step, load_net, seeded_input

import methods

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


def check(y: torch.Tensor, pin: dict, what: str) -> None:
    check_output(y, pin, what, SUM_RTOL, VALUE_ATOL, VALUE_RTOL)


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_matches_official(variant, tmp_path):
    rec = PINS["variants"][variant]
    net, _ = load_net(LGBPN, PINS, variant, tmp_path)
    expected_kernel = {"default": 9, "dspmc_k7": 7, "dspmc_k11": 11}[variant]
    for name, mask in rec["masks"].items():  # the official DSPMC masks are ours
        module = net.get_submodule(name)
        assert module.kernel_size[0] == len(mask)
        assert torch.equal(module.mask, torch.tensor(mask, dtype=torch.float32)), name
    assert net.branch1.Maskconv.kernel_size[0] == expected_kernel
    with torch.no_grad():
        net.train()  # training pass: local PD 4 (pad 2), global PD 5 (pad 0)
        for pin in rec["train"]:
            check(net(seeded_input(pin)), pin, f"{variant} train {pin['input_shape']}")
        net.eval()  # test pass without R3 (BSN.denoise, R3=False)
        for section, kwargs in (("test_sidd", {}), ("test_dnd", {"pd_preset": "dnd"})):
            for pin in rec.get(section, []):
                check(net(seeded_input(pin), **kwargs), pin, f"{variant} {section} {pin['input_shape']}")


def test_training_step_matches_official(tmp_path):
    check_training_step(LGBPN, PINS, tmp_path, LOSS_RTOL, LAYER_ATOL)
