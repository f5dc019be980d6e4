"""SNR-Aware vs the official code: pinned outputs of dvlab-research/SNR-Aware-Low-Light-Enhance@1113144.

``tests/data/snr_aware_official_pins.json`` was produced outside this repository by running the official
``Video_base_model4_m.VideoBaseModel`` (``options/train/LOLv1.yml``, CPU; only patch: ``.cuda()`` -> ``.cpu()`` on
the unused coordinate grid in ``low_light_transformer.forward``) with seeded weights: its ``command`` and ``how``
fields give the exact procedure (``make_pins.py``, then ``finalize.py``, under ATEN_CPU_CAPABILITY=default|avx2|avx512
x 1|2 threads). The official network has no switch for the ablations, so only the default variant is pinned.
Its ``snr_map`` entry pins the official SNR map alone (the loader's ``cv2.blur`` + ``Video_base_model4_m.test``'s
mask, run by ``pin_snrmap.py``) on random inputs and on the LOL image ``eval15/low/1.png``.

Checked here: official-layout state dict (``module.`` prefix, as DataParallel saves it) -> ``unwrap_state`` /
``load_weights`` -> ``convert_official`` -> our network gives the official outputs at 64x64 and 48x80; our
:func:`snr_map` gives the official SNR mask (cv2 blur of the loader) bit for bit; our trainer reproduces two official
training steps (Charbonnier-sum loss values, updated weights after step 1).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

import methods
from llbench.data.images import read_image, to_tensor
from llbench.evaluate import load_weights, unwrap_state
from methods.snr_aware import SNRAwareTrainer, snr_map

PINS = json.loads((Path(__file__).parent / "data" / "snr_aware_official_pins.json").read_text())
SNR = methods.get("snr_aware")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"

# Tolerances: measured spread of the official numbers over ATEN_CPU_CAPABILITY=default|avx2|avx512 x 1|2 threads
# (PINS["spread"]) times a margin of 12-30.
SUM_TOL_L1 = 2e-5  # |sum - pin| / sum|y|: spread <= 6.7e-7
MEAN_ABS_RTOL = 2e-5  # spread <= 1.4e-6 relative
VALUE_ATOL = 1e-4  # 32 sampled outputs (|y| <= 2.7): spread <= 8.3e-6
# SNR map: official spread 0 over the same 6 runs and ours bit-identical in each (PINS["snr_map"]["spread"]), as
# every step is one correctly rounded IEEE operation; the float64 sum only adds its reduction order (measured 0).
SNR_ATOL = 0.0
SNR_SUM_RTOL = 1e-12
LOSS_RTOL = 2e-5  # Charbonnier-sum loss of steps 1 and 2: spread <= 1.2e-6 relative
PARAM_SUM_ATOL = {"conv_last.weight": 5e-5, "recon_trunk_light.0.conv1.weight": 5e-4}  # spread 1.7e-6, 3.4e-5
SIZE_IDS = ["x".join(map(str, f["input"]["shape"])) for f in PINS["forward"]]


def official_state(prefix: str = "module.") -> dict[str, torch.Tensor]:
    """The official state dict of the pins: sorted keys, one generator, ``scale * randn`` each."""
    w = PINS["weights"]
    g = torch.Generator().manual_seed(w["seed"])
    return {prefix + k: w["scale"] * torch.randn(shape, generator=g) for k, shape, _ in w["keys"]}


def make_input(shape: list[int], seed: int, region: int) -> torch.Tensor:
    """Flat per-channel levels k/64 on region x region tiles (tile 0 flat and brightest), about half the other
    tiles checkerboard-textured: masked and unmasked tokens, and an SNR maximum on an exact flat pixel."""
    g = torch.Generator().manual_seed(seed)
    b, c, h, w = shape
    rh, rw = -(-h // region), -(-w // region)

    def up(t: torch.Tensor) -> torch.Tensor:
        return t.repeat_interleave(region, 2).repeat_interleave(region, 3)[:, :, :h, :w]

    textured = torch.rand(b, 1, rh, rw, generator=g) < 0.5
    textured.view(b, -1)[:, 0] = False
    levels = torch.randint(4, 49, (b, c, rh, rw), generator=g).float() / 64.0
    levels.view(b, c, -1)[:, :, 0] = torch.randint(52, 65, (b, c), generator=g).float() / 64.0
    amp = textured * (0.02 + 0.08 * torch.rand(b, 1, rh, rw, generator=g))
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    checker = ((yy + xx) % 2 * 2 - 1).float()
    jitter = 0.5 + 0.5 * torch.rand(b, 1, h, w, generator=g)
    return (up(levels) + up(amp) * checker * jitter).clamp(0, 1)


def _inp(spec: dict) -> torch.Tensor:
    return make_input(spec["shape"], spec["seed"], spec["region"])


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return official_state()


def _model(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    model = SNR.build("default")
    model.load_state_dict(SNR.convert_official(unwrap_state(state)), strict=True)
    return model


def _check(y: torch.Tensor, pin: dict, atol: float, sum_tol: float, mean_rtol: float) -> None:
    assert list(y.shape) == pin["shape"]
    y64 = y.double()
    l1 = pin["mean_abs"] * y.numel()
    assert abs(float(y64.sum()) - pin["sum"]) <= sum_tol * l1, (float(y64.sum()), pin["sum"])
    assert float(y64.abs().mean()) == pytest.approx(pin["mean_abs"], rel=mean_rtol)
    got = torch.tensor([float(y[tuple(p)]) for p in pin["positions"]], dtype=torch.float64)
    want = torch.tensor(pin["values"], dtype=torch.float64)
    assert torch.allclose(got, want, rtol=0, atol=atol), (got - want).abs().max()


def test_pins_describe_official_layout(state):
    assert PINS["official"] == "dvlab-research/SNR-Aware-Low-Light-Enhance@1113144"
    assert PINS["variants"]["default"] == "pinned"
    assert sum(v.numel() for v in state.values()) == PINS["n_params"] == 39_124_099
    assert sorted(SNR.build("default").state_dict()) == [k for k, _, _ in PINS["weights"]["keys"]]


@pytest.mark.parametrize("i", range(len(PINS["forward"])), ids=SIZE_IDS)
def test_snr_map_matches_official_mask(i):
    pin = PINS["forward"][i]
    _check(snr_map(_inp(pin["input"])), pin["snr"], SNR_ATOL, SNR_SUM_RTOL, SNR_SUM_RTOL)


def _snr_pin_input(spec: dict) -> torch.Tensor:
    if spec["kind"] == "torch.rand":
        return torch.rand(spec["shape"], generator=torch.Generator().manual_seed(spec["seed"]))
    path = SHARED / spec["path"]
    if not path.is_file():
        pytest.skip(f"../shared/datasets/{spec['path']} absent")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec["sha256"]
    return to_tensor(read_image(path))[None]  # the project's decode: uint8 / 255 in float32, as cv2.imread / 255.


_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=_CUDA)])
@pytest.mark.parametrize("case", PINS["snr_map"]["cases"], ids=[c["name"] for c in PINS["snr_map"]["cases"]])
def test_snr_map_bit_identical_to_official(case, device):
    pin = case["snr"]
    m = snr_map(_snr_pin_input(case["input"]).to(device)).cpu().contiguous()
    assert m.dtype == torch.float32 and list(m.shape) == pin["shape"]
    got = torch.tensor([float(m[tuple(p)]) for p in pin["positions"]], dtype=torch.float64)
    assert torch.allclose(got, torch.tensor(pin["values"], dtype=torch.float64), rtol=0, atol=SNR_ATOL)
    assert float(m.abs().max()) == pytest.approx(pin["max_abs"], rel=0, abs=SNR_ATOL)
    assert float(m.double().sum()) == pytest.approx(pin["sum"], rel=SNR_SUM_RTOL)
    assert hashlib.sha256(m.numpy().astype("<f4").tobytes()).hexdigest() == pin["sha256_float32"]


@pytest.mark.parametrize("i", range(len(PINS["forward"])), ids=SIZE_IDS)
def test_forward_matches_official(state, i):
    pin = PINS["forward"][i]
    model = _model(state).eval()
    with torch.no_grad():
        y = model(_inp(pin["input"]))  # official test(): netG(x, mask), no clamp; H, W multiples of 16
    _check(y, pin["output"], VALUE_ATOL, SUM_TOL_L1, MEAN_ABS_RTOL)


def test_official_checkpoint_file_loads(state, tmp_path):
    path = tmp_path / "LOLv1.pth"
    torch.save(state, path)  # what torch.save(DataParallel(netG).state_dict()) writes
    model = SNR.build("default")
    info = load_weights(SNR, model, path)
    assert info["format"] == "official"
    pin = PINS["forward"][0]
    with torch.no_grad():
        y = model.eval()(_inp(pin["input"]))
    _check(y, pin["output"], VALUE_ATOL, SUM_TOL_L1, MEAN_ABS_RTOL)


def test_training_steps_match_official(state):
    train = PINS["train"]
    x = _inp(train["input"])
    gt = torch.rand(train["input"]["shape"], generator=torch.Generator().manual_seed(train["target"]["seed"]))
    model = _model(state)
    trainer = SNRAwareTrainer(model, SNR.train_defaults, torch.device("cpu"))
    for pin in train["steps"]:
        lr = trainer.optimizers["adam"].param_groups[0]["lr"]
        logs = trainer.step({"input": x, "target": gt})
        assert lr == pytest.approx(pin["lr"], rel=1e-12)
        assert logs["l_pix"] == pytest.approx(pin["l_pix"], rel=LOSS_RTOL)
        if pin["step"] == 1:  # after step 2 the sums spread more (sign of Adam's tiny second-step updates)
            params = dict(model.named_parameters())
            for name, value in pin["param_sums"].items():
                assert abs(float(params[name].detach().double().sum()) - value) <= PARAM_SUM_ATOL[name], name
