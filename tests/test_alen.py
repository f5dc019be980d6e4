"""ALEN (methods/alen): parameter counts, variants, batch > 1, ISL, tiling, losses, trainer, official keys."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import methods
from methods.alen import ALENMethod, StepDecay, official_key
from methods.alen.loss import alen_loss, ms_ssim
from methods.alen.model import ISL, MAB, SE, NonLocal, PlainBlock, space_to_depth
from methods.alen.tiling import tiled_apply

ALEN = methods.get("alen")


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _count(m: nn.Module, cls: type) -> int:
    return sum(isinstance(x, cls) for x in m.modules())


# ---- the official EnhanceNet state-dict layout, written out from ALEN:model.py ------------------
def official_layout(isl: bool) -> dict[str, tuple[int, ...]]:
    """(key, shape) of Justones/ALEN@7020c39 EnhanceNet().state_dict(), in its order."""
    keys: dict[str, tuple[int, ...]] = {}

    def lin(p, cin, cout):
        keys[f"{p}.weight"], keys[f"{p}.bias"] = (cout, cin), (cout,)

    def conv(p, cin, cout, k):
        keys[f"{p}.weight"], keys[f"{p}.bias"] = (cout, cin, k, k), (cout,)

    def seblock(p, c):
        lin(f"{p}.fc.0", c, c)
        lin(f"{p}.fc.2", c, c)

    def single_block(p, cin, cout):  # CAB
        seblock(f"{p}.conv1.0", cin)
        conv(f"{p}.conv1.1", cin, cout, 3)
        conv(f"{p}.conv2.0", cout, cout, 3)

    def single_block1(p, cin, cout):  # MAB
        for n in ("theta", "phi", "g"):
            conv(f"{p}.nonlocalblock.{n}", cin, cin // 4, 1)
        conv(f"{p}.nonlocalblock.conv", cin // 4, cin, 1)
        seblock(f"{p}.seblock", 2 * cin)
        conv(f"{p}.fusion.0", 2 * cin, cout, 3)
        conv(f"{p}.conv1.0", cout, cout, 3)

    single_block("inc", 16, 32)
    for i, (cin, cout) in enumerate([(32, 64), (64, 128), (128, 256)], 1):
        if isl:
            conv(f"layer{i}.0", 4 * cin, cin, 1)
        single_block1(f"layer{i}.1", cin, cout)
    for i, (cin, cout) in enumerate([(256, 128), (128, 64), (64, 32)], 1):
        keys[f"up{i}.weight"], keys[f"up{i}.bias"] = (cin, cout, 2, 2), (cout,)
        single_block(f"layer{i + 3}.0", 2 * cout, cout)
    conv("output.0", 32, 12, 1)
    return keys


def official_state(isl: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: 0.05 * torch.randn(s, generator=g) for k, s in official_layout(isl).items()}


# ---- structure --------------------------------------------------------------------------------
def test_parameter_counts():
    assert _params(ALEN.build("maxpool")) == 2_685_076  # ALEN:model.py EnhanceNet as released
    assert _params(ALEN.build("default")) == 2_685_076 + 86_240  # + three 1x1 ISL convs (4C -> C)
    assert sum(map(lambda s: torch.Size(s).numel(), official_layout(False).values())) == 2_685_076
    # hand count: per level (C -> C_out = 32->64, 64->128, 128->256) the non-local
    # (3 (C*C/4 + C/4) + C/4*C + C),
    # SE(2C) -> SE(C) and the 3x3 fusion conv over 2C -> C inputs go: 25,720 + 102,640 + 410,080 = 538,440
    assert _params(ALEN.build("no_nonlocal")) == 2_771_316 - 538_440 == 2_232_876
    # ... and the remaining SE(C): 2 (C^2 + C) = 2,112 + 8,320 + 33,024 = 43,456
    assert _params(ALEN.build("no_attention")) == 2_232_876 - 43_456 == 2_189_420


def test_variants_remove_what_they_say():
    assert set(ALEN.variants) == {"default", "maxpool", "no_attention", "no_nonlocal"}
    full, maxpool = ALEN.build("default"), ALEN.build("maxpool")
    no_att, no_nl = ALEN.build("no_attention"), ALEN.build("no_nonlocal")
    assert (_count(full, ISL), _count(full, nn.MaxPool2d), _count(full, NonLocal), _count(full, MAB)) == (
        3,
        0,
        3,
        3,
    )
    assert (_count(maxpool, ISL), _count(maxpool, nn.MaxPool2d), _count(maxpool, NonLocal)) == (0, 3, 3)
    # no_attention: encoder blocks have neither non-local nor SE; the decoder's channel attention stays
    assert (
        _count(no_att, NonLocal),
        _count(no_att, MAB),
        _count(no_att, PlainBlock),
        _count(no_att, ISL),
    ) == (0, 0, 3, 3)
    assert _count(no_att, SE) == _count(full, SE) - 3 == 4
    # no_nonlocal: the SE of each mixed block is kept, the non-local branch is gone
    assert (_count(no_nl, NonLocal), _count(no_nl, MAB), _count(no_nl, SE), _count(no_nl, ISL)) == (
        0,
        3,
        7,
        3,
    )
    assert no_nl.enc2.se.fc1.in_features == 64 and full.enc2.se.fc1.in_features == 128  # SE(C) vs SE(2C)


def test_input_multipliers():
    seen = {}
    for mult in [(0.8, 1.0, 1.2, 1.5), (0.5, 0.8, 1.0, 1.2), (1.0, 2.0)]:
        net = ALEN.build(multipliers=mult).eval()
        net.inc.register_forward_hook(lambda m, i, o: seen.update(x=i[0]))
        x = torch.rand(1, 4, 64, 64)
        with torch.no_grad():
            net(x)
        expected = torch.cat([m * x for m in mult], dim=1)  # ALEN:model.py cat(0.8x, x, 1.2x, 1.5x)
        assert net.inc.conv1.in_channels == 4 * len(mult)
        torch.testing.assert_close(seen["x"], expected)


def test_space_to_depth_order_and_isl_shape():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # (0,0)=1 (0,1)=2 (1,0)=3 (1,1)=4
    assert space_to_depth(x).flatten().tolist() == [1.0, 2.0, 4.0, 3.0]  # ALEN order: (0,0),(0,1),(1,1),(1,0)
    isl = ISL(32)
    assert isl.proj.in_channels == 128 and isl.proj.out_channels == 32 and isl.proj.kernel_size == (1, 1)
    assert isl(torch.rand(2, 32, 24, 40)).shape == (2, 32, 12, 20)
    with torch.no_grad():  # a 1x1 conv picking channel block k reproduces the k-th sub-grid
        isl.proj.weight.zero_()
        isl.proj.bias.zero_()
        isl.proj.weight[torch.arange(32), 64 + torch.arange(32)] = 1.0
    y = torch.rand(1, 32, 8, 8)
    torch.testing.assert_close(isl(y), y[:, :, 1::2, 1::2])


def test_nonlocal_is_unscaled_softmax_attention():
    torch.manual_seed(0)
    nl = NonLocal(32)
    x = torch.rand(2, 32, 24, 16)
    u = F.avg_pool2d(x, 2)
    b, _, h, w = u.shape
    theta = nl.theta(u).view(b, 8, -1).permute(0, 2, 1)
    phi = F.avg_pool2d(nl.phi(u), 4).view(b, 8, -1)
    g = F.avg_pool2d(nl.g(u), 4).view(b, 8, -1).permute(0, 2, 1)
    y = torch.softmax(theta @ phi, dim=-1) @ g  # ALEN:model.py nonlocalblock.forward
    y = F.interpolate(nl.out(y.permute(0, 2, 1).reshape(b, 8, h, w)), size=(24, 16))
    torch.testing.assert_close(nl(x), y, atol=1e-6, rtol=1e-5)


def test_batch_larger_than_one():
    torch.manual_seed(0)
    net = ALEN.build().eval()
    x = torch.rand(3, 4, 64, 80)
    with torch.no_grad():
        together = net(x)
        alone = torch.cat([net(x[i : i + 1]) for i in range(3)])
    assert together.shape == (3, 3, 128, 160)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


# ---- official checkpoints ----------------------------------------------------------------------
# output of the official EnhanceNet (ALEN:model.py, stride=0 -> None) loaded with official_state(isl, 0) on
# torch.manual_seed(1); x = torch.rand(1, 4, 64, 96): (sum, mean of |y|, y[0, :, 5, 7])
OFFICIAL_REFERENCE = {
    False: (2012.52099609375, 0.027296563610434532, [0.0, 0.037336, 0.0]),  # released (max-pool) model
    True: (1746.152099609375, 0.023683704435825348, [0.0, 0.044636, 0.021407]),  # ISL lines uncommented
}


@pytest.mark.parametrize("isl", [False, True])
def test_convert_official_checkpoint(isl):
    state = official_state(isl)
    ckpt = {"enhance": state, "enhance_optim": {}, "epoch": 4000}  # ALEN:main.py state_final.pth
    converted = ALEN.convert_official(ckpt)
    net = ALEN.build("default" if isl else "maxpool").eval()
    net.load_state_dict(converted, strict=True)
    torch.testing.assert_close(net.enc2.nl.out.weight, state["layer2.1.nonlocalblock.conv.weight"])
    torch.testing.assert_close(net.dec3.se.fc2.bias, state["layer6.0.conv1.0.fc.2.bias"])
    torch.testing.assert_close(net.head.weight, state["output.0.weight"])
    if isl:
        torch.testing.assert_close(net.down3.proj.weight, state["layer3.0.weight"])
    assert ALEN.convert_official({"module." + k: v for k, v in state.items()}).keys() == converted.keys()
    torch.manual_seed(1)
    x = torch.rand(1, 4, 64, 96)
    with torch.no_grad():
        y = net(x)
    total, mean_abs, pixel = OFFICIAL_REFERENCE[isl]
    assert float(y.sum()) == pytest.approx(total, rel=1e-4)
    assert float(y.abs().mean()) == pytest.approx(mean_abs, rel=1e-4)
    torch.testing.assert_close(y[0, :, 5, 7], torch.tensor(pixel), atol=1e-5, rtol=1e-4)


def test_official_key_rejects_foreign_keys():
    assert official_key("layer1.1.fusion.0.weight") == "enc1.fuse.weight"
    with pytest.raises(KeyError, match="not an ALEN EnhanceNet key"):
        official_key("layer7.0.conv.weight")


# ---- inference --------------------------------------------------------------------------------
def test_tiling_of_a_local_network_is_exact():
    torch.manual_seed(0)
    local = nn.Sequential(
        nn.Conv2d(4, 12, 3, padding=1), nn.ReLU(), nn.Conv2d(12, 12, 3, padding=1), nn.PixelShuffle(2)
    ).eval()  # receptive-field radius 2 packed px = 4 output px
    x = torch.rand(1, 4, 200, 136)
    with torch.no_grad():
        whole = local(x)
        tiled = tiled_apply(local, x, tile=64, overlap=16, scale=2, multiple=8, min_size=8)
    assert tiled.shape == whole.shape == (1, 3, 400, 272)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


def test_infer_single_tile_equals_untiled_and_pads():
    torch.manual_seed(0)
    net = ALEN.build().eval()
    x = torch.rand(1, 4, 96, 72)
    with torch.no_grad():
        direct = net(x).clamp(0, 1)
    torch.testing.assert_close(ALEN.infer(net, x, tile=512, overlap=64), direct, atol=1e-5, rtol=0)
    torch.testing.assert_close(ALEN.infer(net, x, tile=None), direct, atol=1e-5, rtol=0)
    odd = ALEN.infer(net, torch.rand(1, 4, 37, 50))  # padded to 64 x 64 inside, cropped back
    assert odd.shape == (1, 3, 74, 100) and 0 <= odd.min() and odd.max() <= 1


def test_infer_tiles_large_inputs():
    torch.manual_seed(0)
    net = ALEN.build("maxpool").eval()
    calls = []
    net.register_forward_pre_hook(lambda m, a: calls.append(tuple(a[0].shape[-2:])))
    y = ALEN.infer(net, torch.rand(1, 4, 160, 96), tile=64, overlap=16)
    assert y.shape == (1, 3, 320, 192) and torch.isfinite(y).all()
    assert set(calls) == {(64, 64)} and len(calls) == 3 * 2  # rows start at 0, 48, 96; columns at 0, 32
    with pytest.raises(KeyError, match="unknown inference option"):
        ALEN.infer(net, torch.rand(1, 4, 64, 64), r3=True)


# ---- losses and training ----------------------------------------------------------------------
# MS-SSIM of ALEN:ssimloss.py MS_SSIM(max_val=1) (run on CPU) for torch.manual_seed(0); y = rand(1,3,128,128);
# x = (y + 0.1 * randn(1,3,128,128)).clamp(0, 1)
OFFICIAL_MS_SSIM = 0.9702938795089722


def test_ms_ssim_matches_the_official_code():
    torch.manual_seed(0)
    y = torch.rand(1, 3, 128, 128)
    x = (y + 0.1 * torch.randn(1, 3, 128, 128)).clamp(0, 1)
    # abs 1e-5: the pin is float32 and torch.randn's values differ by CPU kernel (measured 1.2e-7 spread)
    assert float(ms_ssim(x, y)) == pytest.approx(OFFICIAL_MS_SSIM, abs=1e-5)
    assert float(ms_ssim(y, y)) == pytest.approx(1.0, abs=1e-6)
    loss, logs = alen_loss(x, y, "l1_msssim")
    assert float(loss) == pytest.approx(0.85 * float((x - y).abs().mean()) + 0.15 * (1 - OFFICIAL_MS_SSIM), abs=1e-6)
    loss2, logs2 = alen_loss(x, y, "l2_ssim")
    assert logs2["pix"] == pytest.approx(float(((x - y) ** 2).mean()), rel=1e-6) and 0 < logs2["ssim"] < 1
    with pytest.raises(ValueError, match="unknown ALEN loss"):
        alen_loss(x, y, "l1")


def test_step_decay_follows_main_py():
    f = StepDecay(ALENMethod.train_defaults["lr_decay"])
    assert [f(e) for e in (0, 2000, 2001, 3000, 3001, 4000, 4001, 60000)] == [
        1,
        1,
        0.1,
        0.1,
        0.02,
        0.02,
        0.01,
        0.01,
    ]


@pytest.mark.parametrize("loss", ["l1_msssim", "l2_ssim"])
def test_trainer_step_and_schedule(loss):
    torch.manual_seed(0)
    net = ALEN.build()
    cfg = ALEN.train_config(loss=loss)
    assert cfg["crop"] == 512 and cfg["batch_size"] == 1 and cfg["augment"] == ("hflip", "vflip", "transpose")
    trainer = ALEN.trainer(net, cfg, torch.device("cpu"))
    before = net.head.weight.detach().clone()
    logs = trainer.step({"input": torch.rand(2, 4, 64, 64), "target": torch.rand(2, 3, 128, 128)})
    assert torch.isfinite(torch.tensor(logs["loss"])) and logs["lr"] == 1e-4
    assert not torch.equal(before, net.head.weight)
    for _ in range(2001):
        trainer.end_epoch()
    assert trainer.optimizers["adam"].param_groups[0]["lr"] == pytest.approx(1e-5)
    state = trainer.state_dict()
    fresh = ALEN.trainer(ALEN.build(), cfg, torch.device("cpu"))
    fresh.load_state_dict(state)
    assert fresh.optimizers["adam"].param_groups[0]["lr"] == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="unknown ALEN loss"):
        ALEN.trainer(ALEN.build(), ALEN.train_config(loss="l1"), torch.device("cpu"))


def test_registry_metadata():
    assert (ALEN.name, ALEN.task, ALEN.train_data, ALEN.pad_multiple) == ("alen", "raw", "raw", 8)
    assert ALEN.extra_metrics(None, torch.rand(1, 4, 8, 8), torch.rand(1, 3, 16, 16)) == {}
