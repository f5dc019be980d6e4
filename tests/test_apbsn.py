"""AP-BSN (methods/apbsn): parameters, centre masks, blind spot, PD factors, R3, tiling, checkpoints.

The shared machinery (PD, R3, tiling, metrics, kernel shrink) is tested in test_lgbpn.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import methods
from methods.apbsn import APBSN
from methods.blindspot import pd_mosaic, pd_mosaic_inverse

SMALL = {"base_ch": 16, "num_module": 2}


def test_registration_and_variants():
    m = methods.get("apbsn")
    assert (m.task, m.train_data, m.license) == ("denoise", "noisy", "MIT")
    assert set(m.variants) == {"default", "no_r3"}
    assert m.infer_config("no_r3") == {"r3": False}
    cfg = m.train_config()
    assert (cfg["crop"], cfg["batch_size"], cfg["lr"], cfg["lr_gamma"], cfg["augment"]) == (
        120,
        8,
        1e-4,
        0.1,
        ("hflip", "vflip", "rot90"),
    )


def test_parameter_count_and_masks():
    net = methods.build("apbsn")
    assert sum(p.numel() for p in net.parameters()) == 3_656_131
    c1, c2 = net.branch1.body[0], net.branch2.body[0]  # CentralMaskedConv2d 3x3 and 5x5
    assert (c1.kernel_size, c2.kernel_size) == ((3, 3), (5, 5))
    assert (c1.active_taps, c2.active_taps) == (8, 24)
    assert c1.mask[1, 1] == 0 and c2.mask[2, 2] == 0 and c1.padding_mode == "zeros"
    dil = [blk.body[0].dilation for br in (net.branch1, net.branch2) for blk in br.body[6:15]]
    assert dil == [(2, 2)] * 9 + [(3, 3)] * 9
    assert (net.pd_a, net.pd_b, net.pd_pad) == (5, 2, 2)


def _self_grad(net: torch.nn.Module, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
    x = x.clone().requires_grad_()
    net(x)[0, :, i, j].sum().backward()
    return x.grad[0].abs().sum(0)


def test_blind_spot_in_training_mode():
    """Zero padding everywhere: exactly blind at every pixel, borders included."""
    torch.manual_seed(0)
    net = APBSN(**SMALL).train()
    x = torch.rand(1, 3, 60, 60)
    for i, j in [(30, 30), (0, 0), (0, 59), (59, 0), (59, 59), (1, 2), (17, 44)]:
        g = _self_grad(net, x, i, j)
        assert g[i, j] == 0, (i, j)
        assert g.sum() > 0
    # PD 5: the pixel 5 to the right is in the same sub-image, next to it: seen
    g = _self_grad(net, x, 30, 30)
    assert g[30, 35] > 0 and g[35, 30] > 0


def test_blind_spot_default_network():
    torch.manual_seed(0)
    net = methods.build("apbsn").train()
    g = _self_grad(net, torch.rand(1, 3, 40, 40), 20, 21)
    assert g[20, 21] == 0 and g[20, 26] > 0


def test_training_pass_is_pd5_mosaic():
    torch.manual_seed(0)
    net = APBSN(**SMALL).train()
    x = torch.rand(2, 3, 40, 30)
    with torch.no_grad():
        expected = pd_mosaic_inverse(net.bsn(pd_mosaic(x * 255, 5, 2)), 5, 2) / 255
        torch.testing.assert_close(net(x), expected)
    with pytest.raises(ValueError, match="does not divide"):
        net(torch.rand(1, 3, 42, 40))


def test_test_and_refine_passes():
    torch.manual_seed(0)
    net = APBSN(**SMALL).eval()
    x = torch.rand(1, 3, 33, 30)  # odd height: zero-padded to a multiple of pd_b = 2, cropped back
    with torch.no_grad():
        out = net(x)
        xp = F.pad(x * 255, (0, 0, 0, 1))
        ref = pd_mosaic_inverse(net.bsn(pd_mosaic(xp, 2, 2)), 2, 2)[..., :33, :] / 255
        torch.testing.assert_close(out, ref)
        torch.testing.assert_close(net(x, refine=True), net.bsn(x * 255) / 255)  # R3 pass: no PD
    assert (net.alignment(False), net.alignment(True)) == (2, 1)
    meth = methods.get("apbsn")
    torch.testing.assert_close(meth.infer(net, x, r3=False), out.clamp(0, 1))


def test_tiled_inference_with_r3_equals_untiled():
    """Exact away from the image border; within one receptive field (16 px here, 58 at full size) of it the
    PD-2 mosaic couples opposite borders (sub-images meet across the 4-pixel zero frame), so there a tile
    sees its own far edge instead of the image's."""
    torch.manual_seed(0)
    net = APBSN(**SMALL).eval()
    with torch.no_grad():  # outputs around 0.6 +- 0.06 (an untrained net's are ~0 and clamp away)
        net.tail[-1].bias.fill_(127.5)
        net.tail[-1].weight.mul_(300)
    meth = methods.get("apbsn")
    x = torch.rand(1, 3, 90, 76)
    for r3 in (False, True):
        full = meth.infer(net, x, tile=None, seed=1, r3=r3)
        scale = full.std()
        assert scale > 0.01
        diff = (meth.infer(net, x, tile=48, overlap=16, seed=1, r3=r3) - full).abs()
        assert diff[..., 16:-16, 16:-16].max() <= 1e-5 * scale
        no_context = (meth.infer(net, x, tile=48, overlap=0, seed=1, r3=r3) - full).abs()
        assert no_context[..., 16:-16, 16:-16].max() > 1e-2 * scale
    assert not torch.equal(meth.infer(net, x, tile=None, seed=2), full)
    torch.testing.assert_close(meth.infer(net, x, tile=None, seed=1), full, rtol=0, atol=0)


def test_trainer_step_and_mask():
    torch.manual_seed(0)
    meth = methods.get("apbsn")
    net = APBSN(**SMALL)
    conv = net.branch2.body[0]
    centre = conv.weight.detach()[..., 2, 2].clone()
    tr = meth.trainer(net, meth.train_config(), torch.device("cpu"))
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        expected = F.l1_loss(net.train()(x), x).item() * 255
    assert tr.step({"input": x})["self_l1"] == pytest.approx(expected, rel=1e-5)
    assert torch.equal(conv.weight.detach()[..., 2, 2], centre)  # masked tap: no gradient
