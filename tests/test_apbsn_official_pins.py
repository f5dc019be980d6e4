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

import torch
from blindspot_pins import check_output, check_training_step, load_net, seeded_input

import methods

PINS = json.loads((Path(__file__).parent / "data" / "apbsn_official_pins.json").read_text())
APBSN = methods.get("apbsn")

# Tolerances. Measured spread of the official numbers on this machine over ATEN_CPU_CAPABILITY in
# {default, avx2, avx512} x torch threads {1, 2} (JSON "spread"): sums / mean|y| 6.6e-7 relative, sampled values
# 1.9e-9 absolute (outputs ~1e-4..1e-2), losses 0 (float32 at ~128), updated-layer sums 4.4e-5 absolute.
SUM_RTOL = 2e-5
VALUE_ATOL, VALUE_RTOL = 1e-7, 1e-4
LOSS_RTOL = 1e-6
LAYER_ATOL = 3e-4


def check(y: torch.Tensor, pin: dict, what: str) -> None:
    check_output(y, pin, what, SUM_RTOL, VALUE_ATOL, VALUE_RTOL)


def test_forward_matches_official(tmp_path):
    rec = PINS["variants"]["default"]
    net, _ = load_net(APBSN, PINS, "default", tmp_path)
    for name, mask in rec["masks"].items():  # the official CentralMaskedConv2d masks are ours
        assert torch.equal(net.get_submodule(name).mask, torch.tensor(mask, dtype=torch.float32)), name
    with torch.no_grad():
        net.train()  # APBSN.forward at pd_a = 5
        for pin in rec["train"]:
            check(net(seeded_input(pin)), pin, f"train {pin['input_shape']}")
        net.eval()  # APBSN.denoise with R3 off: PD pd_b = 2
        for pin in rec["test"]:
            check(net(seeded_input(pin)), pin, f"test {pin['input_shape']}")
    assert APBSN.infer_config("no_r3") == {"r3": False}  # the variant whose first pass this is


def test_training_step_matches_official(tmp_path):
    check_training_step(APBSN, PINS, tmp_path, LOSS_RTOL, LAYER_ATOL)
