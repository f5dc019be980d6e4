"""LG-BPN (methods/lgbpn) and the shared blind-spot machinery (methods/blindspot.py).

Numbers pinned here: 4,558,879 trainable parameters (6,162,719 counted the official way, with the DSPMC
``test_conv`` copies), 40 / 108 active DSPMC taps, the kernel-shrink sampling against a literal
re-implementation of the official ``DeformConv2d`` formula, blind spots, PD, R3 and tiling.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import methods
from methods.blindspot import (
    BlindSpotMethod,
    blind_mask,
    paper_metrics,
    pd_batch,
    pd_batch_inverse,
    pd_mosaic,
    pd_mosaic_inverse,
    r3_refine,
    shrunk_conv,
    tiled,
)
from methods.lgbpn import official_param_count
from methods.lgbpn.model import LGBPN, ChannelAttention

SMALL = {"base_ch": 16, "head_ch": 8, "num_module": 2, "global_blocks": 1}


def _diamond_count(k: int, radius: int, lattice: int = 1) -> int:
    """Active taps by the official construction (LGBPN DSPMC_9 / DSPMC_21 __init__ loops)."""
    c = k // 2
    n = 0
    for i in range(k):
        for j in range(k):
            on = (i - c) % lattice == 0 and (j - c) % lattice == 0
            if on and abs(i - c) + abs(j - c) > radius:
                n += 1
    return n


# ---- registration, parameters, masks --------------------------------------------------------


def test_registration_and_variants():
    m = methods.get("lgbpn")
    assert (m.task, m.train_data) == ("denoise", "noisy")
    assert set(m.variants) == {"default", "dspmc_k7", "dspmc_k11", "no_r3", "no_global"}
    cfg = m.train_config()
    got = (cfg["crop"], cfg["batch_size"], cfg["lr"], cfg["lr_step_epochs"], cfg["epochs"])
    assert got == (120, 8, 1e-4, 8, 20)
    assert cfg["iterations"] == 20 * math.ceil(24542 / 8)
    assert m.infer_config("no_r3") == {"r3": False}


def test_parameter_counts():
    net = methods.build("lgbpn")
    assert sum(p.numel() for p in net.parameters()) == 4_558_879
    # the official module also counts each DSPMC's test_conv copy (24*128*81+128 and 24*128*441+128)
    assert official_param_count(net) == 6_162_719 == 4_558_879 + 248_960 + 1_354_880
    assert sum(p.numel() for p in methods.build("lgbpn", "no_global").parameters()) == 1_804_579
    for variant, k in (("dspmc_k7", 7), ("dspmc_k11", 11)):
        n = sum(p.numel() for p in methods.build("lgbpn", variant).parameters())
        assert n == 4_558_879 + 24 * 128 * (k * k - 81)


@pytest.mark.parametrize(
    "variant,k,radius,local_taps", [("default", 9, 4, 40), ("dspmc_k7", 7, 3, 24), ("dspmc_k11", 11, 5, 60)]
)
def test_dspmc_active_taps(variant, k, radius, local_taps):
    net = methods.build("lgbpn", variant)
    local, glob = net.branch1.Maskconv, net.branch2.Maskconv
    assert local.kernel_size == (k, k) and local.radius == radius
    assert local.active_taps == local_taps == _diamond_count(k, radius)
    assert glob.kernel_size == (21, 21) and glob.active_taps == 108 == _diamond_count(21, 4, lattice=2)
    # the official 21x21 mask: mask[::2, ::2] = 1, then the radius-4 diamond zeroed
    ref = torch.zeros(21, 21)
    ref[::2, ::2] = 1
    for i in range(21):
        for j in range(21):
            if abs(i - 10) + abs(j - 10) <= 4:
                ref[i, j] = 0
    assert torch.equal(glob.mask, ref)
    assert "branch1.Maskconv.mask" in dict(net.named_buffers())  # a buffer, rebuilt (not saved)
    assert "branch1.Maskconv.mask" not in net.state_dict()


def test_mask_is_applied_in_forward_not_written_into_the_weight():
    torch.manual_seed(0)
    net = LGBPN(**SMALL).train()
    conv = net.branch1.Maskconv
    raw = conv.weight.detach().clone()
    assert raw[..., 4, 4].abs().sum() > 0  # random init: masked taps hold values
    trainer = methods.get("lgbpn").trainer(net, methods.get("lgbpn").train_config(), torch.device("cpu"))
    trainer.step({"input": torch.rand(1, 3, 40, 40)})
    w = conv.weight.detach()
    off = conv.mask == 0
    assert torch.equal(w[..., off], raw[..., off])  # masked taps: no gradient, untouched
    assert not torch.equal(w[..., ~off], raw[..., ~off])  # active taps trained
    assert torch.equal(conv.masked_weight()[..., off], torch.zeros_like(w[..., off]))


# ---- blind spot -----------------------------------------------------------------------------


def _self_grad(net: torch.nn.Module, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
    x = x.clone().requires_grad_()
    net(x)[0, :, i, j].sum().backward()
    return x.grad[0].abs().sum(0)


def _frozen_attention(orig):
    """attention_map on detached q, k: the map becomes a constant for autograd."""
    return lambda self, q, k, t: orig(self, q.detach(), k.detach(), t)


def test_blind_spot_in_training_mode(monkeypatch):
    """d output[p] / d input[p] == 0 exactly, away from the reflect-padded border (see below)."""
    torch.manual_seed(0)
    net = LGBPN(**SMALL).train()
    x = torch.rand(1, 3, 120, 120)
    # The DTB's channel attention map is a statistic of the whole image (q k^T over all pixels), so in the
    # official design every pixel sees itself through it, weakly (~1e-8 here). Freeze that statistic to
    # check that every spatial path is blind.
    live = _self_grad(net, x, 60, 60)
    assert 0 < live[60, 60] < 1e-3 * live.max()
    orig = ChannelAttention.attention_map
    monkeypatch.setattr(ChannelAttention, "attention_map", _frozen_attention(orig))
    for i, j in [(60, 60), (6, 6), (6, 113), (113, 113), (7, 50), (59, 64)]:
        g = _self_grad(net, x, i, j)
        assert g[i, j] == 0, (i, j)
        assert g[i, j + 5 if j < 100 else j - 5] > 0  # outside the diamond: seen
        assert torch.all(g[i, j - 1 : j + 2] == 0) and torch.all(g[i - 1 : i + 2, j] == 0)
    # Reflect padding (official padding_mode of both DSPMCs) folds the border back: row 3 reads row 3 through
    # the global tap (-6, 0), row 5 through (-10, 0). Faithful to the official code.
    assert _self_grad(net, x, 3, 60)[3, 60] > 0
    assert _self_grad(net, x, 5, 60)[5, 60] > 0


def test_blind_spot_local_branch_only():
    torch.manual_seed(1)
    net = LGBPN(**SMALL, use_global=False).train()
    x = torch.rand(1, 3, 40, 40)
    for i, j in [(20, 20), (3, 3), (36, 36), (3, 20)]:
        assert _self_grad(net, x, i, j)[i, j] == 0


# ---- pixel-shuffle down-sampling ------------------------------------------------------------


@pytest.mark.parametrize("f,pad", [(2, 0), (3, 2), (4, 2), (5, 0), (4, 7)])
def test_pd_round_trip_and_layout(f, pad):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 12 * f, 10 * f)
    m = pd_mosaic(x, f, pad)
    hs, ws = 12 + 2 * pad, 10 + 2 * pad
    assert m.shape == (2, 3, f * hs, f * ws)
    for r in range(f):
        for s in range(f):
            block = m[..., r * hs : (r + 1) * hs, s * ws : (s + 1) * ws]
            assert torch.equal(block[..., pad : hs - pad, pad : ws - pad], x[..., r::f, s::f])
            if pad:
                assert block[..., :pad, :].abs().sum() == 0
    assert torch.equal(pd_mosaic_inverse(m, f, pad), x)
    b = pd_batch(x, f, pad)
    assert b.shape == (2 * f * f, 3, hs, ws)
    for r in range(f):
        for s in range(f):
            ref = F.pad(x[..., r::f, s::f], (pad,) * 4, mode="reflect") if pad else x[..., r::f, s::f]
            assert torch.equal(b[r * f + s :: f * f][:2], ref)
    assert torch.equal(pd_batch_inverse(b, f, pad), x)


def test_pd_rejects_indivisible_sizes():
    with pytest.raises(ValueError, match="does not divide"):
        pd_mosaic(torch.rand(1, 3, 10, 12), 4)


# ---- test-time kernel shrink ----------------------------------------------------------------


def _official_deform_sample(x: torch.Tensor, k: int, ratio: float) -> torch.Tensor:
    """Literal form of LGBPN:src/util/util.py DeformConv2d.forward with zero offsets, stride 1.

    Returns the (B, C, H*k, W*k) layout that the official stride-k ``test_conv`` consumes.
    """
    b, c, h, w = x.shape
    n = k * k
    xp = F.pad(x, (k // 2,) * 4, mode="reflect")  # nn.ReflectionPad2d(padding=k//2)
    hp, wp = xp.shape[-2:]
    ar = torch.arange(-(k - 1) // 2, (k - 1) // 2 + 1, dtype=x.dtype)
    pnx, pny = torch.meshgrid(ar, ar, indexing="ij")
    p_n = torch.cat([pnx.flatten(), pny.flatten()]).view(1, 2 * n, 1, 1)
    p0x, p0y = torch.meshgrid(torch.arange(1, h + 1), torch.arange(1, w + 1), indexing="ij")
    p_0 = torch.cat([p0x.reshape(1, 1, h, w).repeat(1, n, 1, 1), p0y.reshape(1, 1, h, w).repeat(1, n, 1, 1)], 1)
    p_0 = p_0.to(x.dtype) - 1 + k // 2
    p = (p_0 + p_n * ratio).permute(0, 2, 3, 1)  # (1, h, w, 2N)
    q_lt = p.floor()
    q_rb = q_lt + 1

    def clamp(q: torch.Tensor) -> torch.Tensor:
        return torch.cat([q[..., :n].clamp(0, hp - 1), q[..., n:].clamp(0, wp - 1)], -1)

    q_lt, q_rb, p = clamp(q_lt).long(), clamp(q_rb).long(), clamp(p)
    q_lb = torch.cat([q_lt[..., :n], q_rb[..., n:]], -1)
    q_rt = torch.cat([q_rb[..., :n], q_lt[..., n:]], -1)
    px, py = p[..., :n], p[..., n:]

    def g(q: torch.Tensor, sx: int, sy: int) -> torch.Tensor:
        return (1 + sx * (q[..., :n] - px)) * (1 + sy * (q[..., n:] - py))

    def gather(q: torch.Tensor) -> torch.Tensor:
        idx = (q[..., :n] * wp + q[..., n:]).reshape(1, 1, -1).expand(b, c, -1)
        return xp.reshape(b, c, -1).gather(-1, idx).view(b, c, h, w, n)

    xo = (
        g(q_lt, 1, 1).unsqueeze(1) * gather(q_lt)
        + g(q_rb, -1, -1).unsqueeze(1) * gather(q_rb)
        + g(q_lb, 1, -1).unsqueeze(1) * gather(q_lb)
        + g(q_rt, -1, 1).unsqueeze(1) * gather(q_rt)
    )
    xo = torch.cat([xo[..., s : s + k].contiguous().view(b, c, h, w * k) for s in range(0, n, k)], -1)
    return xo.view(b, c, h * k, w * k)


@pytest.mark.parametrize(
    "k,radius,lattice,ratio",
    [
        (9, 4, 1, 0.72),
        (9, 4, 1, 0.46),
        (9, 4, 1, 0.5),
        (9, 4, 1, 0.4),
        (21, 4, 2, 0.8),
        (21, 4, 2, 0.43),
        (21, 4, 2, 0.65),
        (21, 4, 2, 0.35),
        (7, 3, 1, 0.72),
        (11, 5, 1, 0.46),
    ],
)
def test_kernel_shrink_equals_official_formula(k, radius, lattice, ratio):
    torch.manual_seed(k)
    x = torch.rand(2, 3, 24, 22, dtype=torch.float64) * 10  # float64: compare the formulas, not roundings
    weight = torch.randn(4, 3, k, k, dtype=torch.float64) * blind_mask(k, radius, lattice).double()
    bias = torch.randn(4, dtype=torch.float64)
    ref = F.conv2d(_official_deform_sample(x, k, ratio), weight, bias, stride=k)  # official test_conv
    ours = shrunk_conv(x, weight, bias, ratio)
    assert ours.shape == ref.shape == (2, 4, 24, 22)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    # float32 as the networks run: within rounding
    ours32 = shrunk_conv(x.float(), weight.float(), bias.float(), ratio)
    torch.testing.assert_close(ours32, ref.float(), rtol=1e-4, atol=1e-3)


def test_kernel_shrink_ratio_one_is_the_plain_conv():
    torch.manual_seed(0)
    x, w = torch.rand(1, 3, 16, 15), torch.randn(5, 3, 9, 9)
    plain = F.conv2d(F.pad(x, (4,) * 4, mode="reflect"), w)
    torch.testing.assert_close(shrunk_conv(x, w, None, 1.0), plain, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="ratio"):
        shrunk_conv(x, w, None, 1.5)


def test_sub_image_chunking_does_not_change_the_result(monkeypatch):
    import methods.lgbpn.model as lgbpn_model

    torch.manual_seed(0)
    net = LGBPN(**SMALL).eval()
    x = torch.rand(1, 3, 48, 40)
    with torch.no_grad():
        whole = net(x)
        monkeypatch.setattr(lgbpn_model, "CHUNK_PIXELS", 300)  # 1-3 sub-images per chunk
        torch.testing.assert_close(net(x), whole, rtol=1e-5, atol=1e-6)


def test_eval_pass_uses_preset_ratios_and_pd():
    torch.manual_seed(0)
    net = LGBPN(**SMALL).eval()
    assert (net.alignment(False), net.alignment(True)) == (12, 4)
    assert (net.alignment(False, "dnd"), net.alignment(True, "dnd")) == (4, 2)
    x = torch.rand(1, 3, 50, 46)
    with torch.no_grad():
        a, b, c = net(x), net(x, refine=True), net(x, pd_preset="dnd")
    assert a.shape == b.shape == c.shape == x.shape
    assert not torch.allclose(a, b) and not torch.allclose(a, c)
    with pytest.raises(KeyError, match="pd_preset"):
        net(x, pd_preset="sid")


# ---- R3, tiling, inference --------------------------------------------------------------------


def test_r3_refine_by_hand():
    x = torch.full((1, 1, 4, 5), 1.0)
    first = torch.zeros_like(x)
    seen = []

    def refine(t):
        seen.append(t.shape)
        return t * 2

    gen = torch.Generator().manual_seed(7)
    out = r3_refine(refine, x, first, t=4, p=0.25, pad=2, generator=gen)
    assert seen == [(1, 1, 8, 9)] * 4  # reflect-padded by 2
    gen = torch.Generator().manual_seed(7)
    masks = [(torch.rand(x.shape, generator=gen) < 0.25).float() for _ in range(4)]
    torch.testing.assert_close(out, 2 * sum(masks) / 4)
    # p = 0: the refinement of the first pass; p = 1: of the noisy input
    assert torch.equal(r3_refine(lambda t: t, x, first + 0.3, t=3, p=0.0, pad=0), first + 0.3)
    assert torch.equal(r3_refine(lambda t: t, x, first, t=3, p=1.0, pad=2), x)


class _StubNet(torch.nn.Module):
    """Test pass: x / 2; refinement pass: its input (so the R3 average is computable by hand)."""

    def forward(self, x, refine=False, pd_preset=None):
        return x if refine else x / 2

    def alignment(self, refine=False, pd_preset=None):
        return 1


def test_infer_r3_average_is_seeded():
    meth = methods.get("lgbpn")
    x = torch.rand(1, 3, 9, 11)
    out = meth.infer(_StubNet(), x, seed=3)
    gen = torch.Generator().manual_seed(3)
    frac = sum((torch.rand(x.shape, generator=gen) < 0.16).float() for _ in range(8)) / 8
    torch.testing.assert_close(out, x / 2 + frac * x / 2)  # replaced: x, kept: x / 2
    assert torch.equal(meth.infer(_StubNet(), x, seed=3), out)
    assert not torch.equal(meth.infer(_StubNet(), x, seed=4), out)
    assert torch.equal(meth.infer(_StubNet(), x, r3=False), x / 2)
    with pytest.raises(KeyError, match="unknown inference option"):
        meth.infer(_StubNet(), x, r3_steps=2)


def test_tiled_helper_with_a_local_op():
    torch.manual_seed(0)
    w = torch.randn(2, 3, 5, 5)
    x = torch.rand(1, 3, 37, 50)

    def op(t):
        return F.conv2d(t, w, padding=2)

    torch.testing.assert_close(tiled(op, x, tile=20, overlap=4, align=3), op(x))
    with pytest.raises(ValueError, match="too small"):
        tiled(op, x, tile=8, overlap=4)


def test_tiled_inference_equals_untiled():
    """Local branch only (the DTB attention is an image-wide statistic, see LGBPNMethod.infer)."""
    torch.manual_seed(0)
    net = LGBPN(**SMALL, use_global=False).eval()
    with torch.no_grad():  # outputs around 0.5 +- 0.03 (an untrained net's are ~0 and clamp away)
        net.tail[-1].bias.fill_(127.5)
        net.tail[-1].weight.mul_(300)
    meth = methods.get("lgbpn")
    x = torch.rand(1, 3, 90, 76)
    full = meth.infer(net, x, tile=None)
    tiled_out = meth.infer(net, x, tile=64, overlap=24)  # 12-16-pixel cores, every pass tiled
    scale = full.std()
    assert scale > 0.01
    assert (tiled_out - full).abs().max() <= 1e-5 * scale
    assert (meth.infer(net, x, tile=40, overlap=0) - full).abs().max() > 1e-2 * scale  # no context: seams


def test_infer_restores_training_mode_and_clamps():
    net = LGBPN(**SMALL).train()
    out = methods.get("lgbpn").infer(net, torch.rand(1, 3, 32, 32), r3_t=1)
    assert net.training and out.min() >= 0 and out.max() <= 1


# ---- training, metrics, checkpoints ------------------------------------------------------------


def test_trainer_schedule_and_loss():
    torch.manual_seed(0)
    meth = methods.get("lgbpn")
    net = LGBPN(**SMALL)
    tr = meth.trainer(net, meth.train_config(), torch.device("cpu"))
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        expected = F.l1_loss(net.train()(x), x).item() * 255  # official units: [0, 255]
    logs = tr.step({"input": x})
    assert logs["self_l1"] == pytest.approx(expected, rel=1e-5)
    lrs = []
    for _ in range(17):
        tr.end_epoch()
        lrs.append(tr.optimizers["adam"].param_groups[0]["lr"])
    assert lrs[6] == pytest.approx(1e-4) and lrs[7] == pytest.approx(1e-5) and lrs[15] == pytest.approx(1e-6)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_paper_metrics_protocol():
    from skimage.metrics import structural_similarity

    torch.manual_seed(0)
    target = torch.randint(1, 254, (1, 3, 32, 32)).float() / 255
    out = target + 1.0 / 255  # every value off by one level
    m = paper_metrics(out, target)
    assert m["psnr_skimage"] == pytest.approx(10 * math.log10(255**2), abs=1e-6)  # MSE 1
    a = np.floor(out[0].permute(1, 2, 0).double().numpy() * 255 + 0.5)
    b = (target[0].permute(1, 2, 0).numpy() * 255).round().astype("float64")
    assert m["ssim_skimage"] == pytest.approx(structural_similarity(a, b, channel_axis=2, data_range=255))
    # +0.4 of a level rounds away (official add 0.5 then floor)
    assert (
        paper_metrics(target + 0.4 / 255, target)["psnr_skimage"] == 100.0
    )  # identical after rounding: capped at methods.base.PSNR_CAP_DB


def test_extra_metrics_reuses_the_last_inference():
    meth = methods.get("lgbpn")
    calls = []

    class Counting(_StubNet):
        def forward(self, x, refine=False, pd_preset=None):
            calls.append(refine)
            return super().forward(x, refine)

    x, target = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    net = Counting()
    out = meth.infer(net, x, r3=False)
    n = len(calls)
    m = meth.extra_metrics(net, x, target)
    assert len(calls) == n and m == paper_metrics(out, target)
    meth.extra_metrics(net, x.clone(), target, r3=False)  # another input: runs inference
    assert len(calls) == n + 1


def test_blindspot_method_is_shared():
    assert isinstance(methods.get("lgbpn"), BlindSpotMethod)
    assert isinstance(methods.get("apbsn"), BlindSpotMethod)


@pytest.mark.slow
def test_default_network_blind_spot_at_the_training_crop(monkeypatch):
    """Full-size LG-BPN at 120x120 (the official crop): blind up to the attention statistic."""
    torch.manual_seed(0)
    net = methods.build("lgbpn").train()
    orig = ChannelAttention.attention_map
    monkeypatch.setattr(ChannelAttention, "attention_map", _frozen_attention(orig))
    x = torch.rand(1, 3, 120, 120)
    for i, j in [(60, 60), (10, 100)]:
        assert _self_grad(net, x, i, j)[i, j] == 0
