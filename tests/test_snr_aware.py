"""SNR-Aware (methods/snr_aware): counts, SNR prior, masking, variants, padding, training, official keys."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import methods
from methods.snr_aware import SNRAware, lr_factor, psnr_uint8
from methods.snr_aware.loss import VGG19_SLICES, VGGPerceptualLoss, charbonnier
from methods.snr_aware.model import (
    MultiHeadAttention,
    PatchTransformer,
    SNRAwareNet,
    box_blur,
    masked_attention,
    snr_map,
    token_snr_mask,
)

METHOD = methods.get("snr_aware")
#: a small network for behavioural tests (token dim 8 * 16 = 128)
SMALL = {"nf": 8, "n_layers": 2, "n_head": 2, "d_k": 8, "d_v": 8, "d_inner": 32, "light_RBs": 2}


def _small(variant: str = "default", seed: int = 0) -> SNRAwareNet:
    torch.manual_seed(seed)
    net = METHOD.build(variant, **SMALL).eval()
    with torch.no_grad():  # larger weights than the 0.1-scaled init, so every path changes the output
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net


def _analytic_macs(h: int, w: int) -> int:
    """Multiply-accumulates of the convs and matmuls of the default network at h x w."""

    def conv(pixels: int, cin: int, cout: int) -> int:
        return pixels * cin * cout * 9

    full, half, quarter = h * w, h * w // 4, h * w // 16
    convs = (
        conv(full, 3, 64)
        + conv(half, 64, 64)
        + conv(quarter, 64, 64)  # conv_first_1/2/3
        + 16 * conv(quarter, 64, 64)  # 8 residual blocks: feature_extraction 1, recon_trunk_light 6, recon_trunk 1
        + conv(quarter, 128, 256)
        + conv(half, 128, 256)  # upconv1, upconv2
        + conv(full, 128, 64)
        + conv(full, 64, 3)  # HRconv, conv_last
    )
    n = (h // 16) * (w // 16)  # tokens
    per_layer = 4 * n * 1024 * 512 + 2 * 8 * n * n * 64 + 2 * n * 1024 * 2048  # q,k,v,fc + QK^T, AV + FFN
    return convs + 6 * per_layer


def _fvcore_macs(h: int, w: int) -> int:
    """What fvcore reports for the official code: our MACs + its LayerNorm count (5 per element, 4 calls per
    layer since the official attention normalises q, k and v separately) + the nearest resize of the
    SNR map."""
    n = (h // 16) * (w // 16)
    return _analytic_macs(h, w) + 6 * 4 * n * 1024 * 5 + (h // 4) * (w // 4)


# ---- counts ---------------------------------------------------------------------------------------
def test_registry_entry():
    assert isinstance(METHOD, SNRAware)
    assert (METHOD.name, METHOD.task, METHOD.train_data, METHOD.pad_multiple) == (
        "snr_aware",
        "enhance",
        "paired",
        16,
    )
    assert {
        "default",
        "no_snr_attention",
        "no_snr_fusion",
        "no_snr",
        "no_transformer",
        "no_conv_branch",
    } <= set(METHOD.variants)


def test_parameter_counts():
    counts = {}
    for variant in ("default", "no_transformer", "no_conv_branch", "no_snr"):
        with torch.device("meta"):
            counts[variant] = sum(p.numel() for p in METHOD.build(variant).parameters())
    assert counts["default"] == 39_124_099  # REFERENCE §1.1, counted on the official code
    assert counts["default"] - counts["no_transformer"] == 37_791_744  # the 6-layer d=1024 transformer
    assert counts["no_transformer"] == 1_332_355
    assert counts["default"] - counts["no_conv_branch"] == 6 * 2 * (64 * 64 * 9 + 64)  # recon_trunk_light
    assert counts["no_snr"] == counts["default"]  # the SNR switches own no parameters


@pytest.mark.parametrize("size", [(256, 256), (400, 608)])
def test_flops_match_analytic_count(size):
    with torch.device("meta"):
        net = METHOD.build()
        x = torch.empty(1, 3, *size)
        with FlopCounterMode(display=False) as counter:
            net(x)
    assert counter.get_total_flops() == 2 * _analytic_macs(*size)
    # the attention matmuls (QK^T and AV) are counted: 2 * 2 * heads * N^2 * d_k per layer
    n = (size[0] // 16) * (size[1] // 16)
    assert counter.get_flop_counts()["Global"][torch.ops.aten.bmm] == 6 * 2 * 2 * 8 * n * n * 64


def test_flops_pins_and_fvcore_reference():
    assert 2 * _analytic_macs(256, 256) == 48_670_703_616
    # REFERENCE §1.1 fvcore MACs of the official code: 24.37 G @256, 94.47 G @400x608, 55.96 G @384,
    # 202.4 G @512x960;
    # the only difference to ours is what FlopCounterMode leaves out (LayerNorm, nearest resize).
    assert round(_fvcore_macs(256, 256) / 1e9, 2) == 24.37
    assert round(_fvcore_macs(256, 256) / 2**30, 2) == 22.69
    assert round(_fvcore_macs(400, 608) / 1e9, 2) == 94.47
    assert round(_fvcore_macs(384, 384) / 1e9, 2) == 55.96
    assert round(_fvcore_macs(512, 960) / 1e9, 1) == 202.4


# ---- SNR prior ------------------------------------------------------------------------------------
def test_snr_map_hand_example():
    # 5x5 gray image, black with one white centre pixel. Under BORDER_REFLECT_101 the padded rows/cols
    # -2 and 6 mirror row/col 2, so pixel (i, j)'s window holds r(i) * r(j) copies of the centre with
    # r = 2 at the border rows/cols {0, 4} and 1 elsewhere: blur(i, j) = r(i) r(j) / 25.
    x = torch.zeros(1, 3, 5, 5, dtype=torch.float64)
    x[..., 2, 2] = 1.0
    r = np.array([2.0, 1.0, 1.0, 1.0, 2.0])
    blur = np.outer(r, r) / 25.0
    assert np.allclose(box_blur(x)[0, 0].numpy(), blur, atol=1e-15)
    img = np.zeros((5, 5))
    img[2, 2] = 1.0
    noise = np.abs(img - blur)  # gray() keeps gray pixels (weights sum to 1)
    snr = blur / (noise + 1e-4)
    expected = np.clip(snr / (snr.max() + 1e-4), 0, 1)
    assert snr.max() == pytest.approx(0.16 / 0.1601)  # corners: 4/25 over (4/25 + 1e-4)
    assert expected[2, 2] == pytest.approx((0.04 / 0.9601) / (0.16 / 0.1601 + 1e-4))
    assert np.allclose(snr_map(x)[0, 0].numpy(), expected, atol=1e-12)


def _numpy_snr(img: np.ndarray) -> np.ndarray:
    """Independent numpy version: np.pad 'reflect' (= REFLECT_101) and an explicit 5x5 window loop."""
    pad = np.pad(img, ((2, 2), (2, 2), (0, 0)), mode="reflect")
    h, w, _ = img.shape
    blur = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            blur[i, j] = pad[i : i + 5, j : j + 5].mean(axis=(0, 1))
    wts = np.array([0.299, 0.587, 0.114])
    light, dark = blur @ wts, img @ wts
    snr = light / (np.abs(dark - light) + 1e-4)
    return np.clip(snr / (snr.max() + 1e-4), 0, 1)


def test_snr_map_matches_numpy_reference():
    rng = np.random.default_rng(0)
    imgs = rng.random((2, 7, 9, 3)) ** 2 * 0.2
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2)
    got = snr_map(x)
    assert got.shape == (2, 1, 7, 9)
    for b in range(2):  # the max is per image
        assert np.allclose(got[b, 0].numpy(), _numpy_snr(imgs[b]), atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(12, 17), (3, 3), (2, 9), (1, 6), (1, 1)])
def test_box_blur_is_cv2_blur_with_default_border(shape, dtype):
    cv2 = pytest.importorskip("cv2")
    assert cv2.BORDER_DEFAULT == cv2.BORDER_REFLECT_101
    x = torch.rand(1, 3, *shape, dtype=dtype, generator=torch.Generator().manual_seed(1)) * 255
    ref = cv2.blur(np.ascontiguousarray(x[0].permute(1, 2, 0).numpy()), (5, 5)).reshape(*shape, 3)
    got = box_blur(x)[0].permute(1, 2, 0).numpy()
    if dtype == torch.float32:  # cv2 sums float32 windows in float64: the same bits
        assert np.array_equal(got, ref)
    else:  # cv2's float64 running sums round; ours are fresh window sums
        assert np.allclose(got, ref, rtol=1e-14, atol=0)


# ---- masking --------------------------------------------------------------------------------------
def test_token_mask_threshold_and_patch_mean():
    snr = torch.zeros(1, 1, 8, 8)
    snr[..., :4, :4] = 0.5  # mean exactly 0.5 -> masked
    snr[..., :4, 4:] = 0.75  # kept with its mean, not set to 1
    snr[..., 4:, :4] = 0.25  # masked
    snr[..., 4:, 4:] = torch.tensor([0.0, 1.0]).repeat(8)[:16].view(4, 4) + 0.125  # mean 0.625 -> kept
    mask = token_snr_mask(snr)
    assert mask.shape == (1, 1, 4)  # tokens in F.unfold order: row-major over 4x4 patches
    assert torch.allclose(mask, torch.tensor([[[0.0, 0.75, 0.0, 0.625]]]))


def test_masked_attention_masks_keys_only():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 4, generator=g, dtype=torch.float64) for _ in range(3))
    mask = torch.tensor([1.0, 0.0, 0.7, 0.0, 1.0, 0.6], dtype=torch.float64).view(1, 1, 1, 6)
    out, attn = masked_attention(q, k, v, mask)
    keep = mask.view(-1) != 0
    assert torch.all(attn[..., ~keep] < 1e-30)  # masked keys receive ~0 weight from every query
    assert torch.allclose(attn.sum(-1), torch.ones(2, 3, 6, dtype=torch.float64))
    # every query, masked ones included, attends over the kept keys exactly as without the masked tokens
    ref = torch.softmax(q @ k[..., keep, :].transpose(-1, -2) / 2.0, dim=-1) @ v[..., keep, :]
    assert torch.allclose(out, ref, atol=1e-12)
    # all keys masked: the official -1e9 fill gives a uniform average (not NaN)
    out0, attn0 = masked_attention(q, k, v, torch.zeros(1, 1, 1, 6, dtype=torch.float64))
    assert torch.allclose(attn0, torch.full_like(attn0, 1 / 6)) and torch.allclose(
        out0, v.mean(-2, keepdim=True).expand_as(v)
    )


def test_attention_module_broadcasts_key_mask_over_heads_and_queries():
    torch.manual_seed(0)
    mha = MultiHeadAttention(n_head=2, d_model=16, d_k=4, d_v=4).double()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    mask = torch.tensor([[[1.0, 0.0, 1.0, 0.0, 1.0]], [[0.0, 1.0, 1.0, 1.0, 0.0]]], dtype=torch.float64)
    got = mha(x, mask)
    for b in range(2):  # reference: drop the masked keys/values, keep every query
        keep = mask[b, 0] != 0
        y = mha.layer_norm(x[b])
        q = mha.w_qs(y).view(5, 2, 4).transpose(0, 1)
        k = mha.w_ks(y).view(5, 2, 4).transpose(0, 1)[:, keep]
        v = mha.w_vs(y).view(5, 2, 4).transpose(0, 1)[:, keep]
        o = torch.softmax(q @ k.transpose(-1, -2) / 2.0, -1) @ v
        assert torch.allclose(got[b], x[b] + mha.fc(o.transpose(0, 1).reshape(5, 8)), atol=1e-12)


# ---- variants -------------------------------------------------------------------------------------
def _capture_transformer_masks(net: SNRAwareNet) -> list:
    seen: list = []
    net.transformer.register_forward_pre_hook(lambda mod, args: seen.append(args[1]))
    return seen


def test_default_masks_low_snr_keys():
    net = _small()
    seen = _capture_transformer_masks(net)
    x = torch.rand(1, 3, 32, 32)
    snr = torch.zeros(1, 1, 32, 32)
    snr[..., :16, :] = 0.9  # top half high SNR -> tokens 0, 1 kept; bottom half masked
    net(x, snr)
    assert torch.allclose(seen[0], torch.tensor([[[0.9, 0.9, 0.0, 0.0]]]))


def test_no_snr_attention_passes_no_mask_but_keeps_fusion():
    net = _small("no_snr_attention")
    seen = _capture_transformer_masks(net)
    weights = []
    orig = net.fusion_weight
    net.fusion_weight = lambda s: weights.append(orig(s)) or weights[-1]
    x, snr = torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32)
    net(x, snr)
    assert seen == [None]
    assert torch.equal(weights[0], F.interpolate(snr, size=(8, 8), mode="nearest"))


def test_no_snr_fusion_uses_even_blend():
    net = _small("no_snr_fusion")
    weights = []
    orig = net.fusion_weight
    net.fusion_weight = lambda s: weights.append(orig(s)) or weights[-1]
    x = torch.rand(1, 3, 32, 32)
    # two SNR maps with the same token mask (all > 0.5): only the fusion could tell them apart
    a, b = torch.full((1, 1, 32, 32), 0.6), torch.full((1, 1, 32, 32), 0.95)
    out_a, out_b = net(x, a), net(x, b)
    assert weights == [0.5, 0.5]
    assert torch.equal(out_a, out_b)
    full = _small("default")
    assert not torch.allclose(full(x, a), full(x, b))  # the default model does use the fusion weight


def test_no_snr_ignores_the_snr_map():
    net = _small("no_snr")
    x = torch.rand(1, 3, 32, 32)
    out = net(x, torch.rand(1, 1, 32, 32))
    assert torch.equal(out, net(x, torch.zeros(1, 1, 32, 32)))
    assert torch.equal(out, net(x))
    full = _small("default")
    assert not torch.allclose(full(x, torch.rand(1, 1, 32, 32)), full(x, torch.zeros(1, 1, 32, 32)))


def test_no_transformer_never_runs_the_transformer(monkeypatch):
    calls = []
    orig = PatchTransformer.forward
    monkeypatch.setattr(PatchTransformer, "forward", lambda self, *a, **k: calls.append(1) or orig(self, *a, **k))
    x = torch.rand(1, 3, 32, 32)
    _small("default")(x)
    assert calls == [1]
    net = _small("no_transformer")
    assert net.transformer is None
    out = net(x)
    assert calls == [1] and out.shape == x.shape
    # the short branch alone feeds the decoder, unweighted: the SNR map changes nothing
    assert torch.equal(out, net(x, torch.zeros(1, 1, 32, 32)))


def test_no_conv_branch_never_runs_the_short_branch():
    full = _small("default")
    ran = []
    full.recon_trunk_light.register_forward_hook(lambda *a: ran.append(1))
    x = torch.rand(1, 3, 32, 32)
    full(x)
    assert ran == [1]
    net = _small("no_conv_branch")
    assert net.recon_trunk_light is None and net.transformer is not None
    seen = _capture_transformer_masks(net)
    net(x, torch.full((1, 1, 32, 32), 0.9))
    assert torch.allclose(seen[0], torch.full((1, 1, 4), 0.9))  # SNR-masked attention kept
    plain = _small("no_conv_branch_no_snr_attention")
    seen_plain = _capture_transformer_masks(plain)
    plain(x)
    assert seen_plain == [None]


# ---- inference ------------------------------------------------------------------------------------
def test_infer_pads_odd_sizes_and_crops_back():
    net = _small()
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(3))
    out = METHOD.infer(net, x)
    assert out.shape == (1, 3, 37, 53)
    # manual: SNR map of the image as given, both reflect-padded to 48x64, run, crop, clamp
    snr = snr_map(x)
    xp = F.pad(x, (0, 11, 0, 11), mode="reflect")
    sp = F.pad(snr, (0, 11, 0, 11), mode="reflect")
    with torch.no_grad():
        manual = net(xp, sp)[..., :37, :53].clamp(0, 1)
    assert torch.equal(out, manual)
    # sizes already divisible by 16 are run as they are, with the map from the input
    y = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(METHOD.infer(net, y), net(y).clamp(0, 1))
    with pytest.raises(ValueError, match="divisible by 16"):
        net(x)
    with pytest.raises(TypeError):
        METHOD.infer(net, y, tile=64)


def test_paper_protocol_resizes_input_and_snr_map():
    seen = {}

    class Probe(nn.Module):
        def forward(self, x, snr):
            seen["x"], seen["snr"] = x, snr
            return x

    x = torch.rand(1, 3, 40, 60)
    target = torch.rand(1, 3, 40, 60)
    METHOD.extra_metrics(Probe(), x, target)
    assert seen["x"].shape == (1, 3, 400, 608)
    # the SNR map is computed at the original size, then resized (SNR:Video_base_model4_m.py test4)
    expected = F.interpolate(snr_map(x), size=(400, 608), mode="bilinear", align_corners=False)
    assert torch.equal(seen["snr"], expected)
    out = METHOD.paper_protocol(Probe(), x)
    assert out.shape == x.shape
    metrics = METHOD.extra_metrics(Probe(), x, target)
    assert set(metrics) == {"psnr_paper"} and metrics["psnr_paper"] == pytest.approx(psnr_uint8(out, target))


def test_psnr_uint8_hand_values():
    a = torch.full((1, 3, 4, 4), 100 / 255)
    b = torch.full((1, 3, 4, 4), 101 / 255)
    assert psnr_uint8(a, b) == pytest.approx(20 * math.log10(255.0))  # MSE 1 on the 8-bit scale
    assert psnr_uint8(a, a) == 100.0  # identical: capped at methods.base.PSNR_CAP_DB
    assert psnr_uint8(a + 0.4 / 255, a) == 100.0  # rounded to the same 8-bit values
    assert psnr_uint8(torch.full_like(a, 1.7), torch.ones_like(a)) == 100.0  # clamped first


# ---- official checkpoints -------------------------------------------------------------------------
class _OffRB(nn.Module):
    def __init__(self, nf):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1), nn.Conv2d(nf, nf, 3, 1, 1)


class _OffAttn(nn.Module):
    def __init__(self, n_head, d_model, d_k):
        super().__init__()
        self.w_qs = nn.Linear(d_model, n_head * d_k, bias=False)
        self.w_ks = nn.Linear(d_model, n_head * d_k, bias=False)
        self.w_vs = nn.Linear(d_model, n_head * d_k, bias=False)
        self.fc = nn.Linear(n_head * d_k, d_model, bias=False)
        self.layer_norm = nn.LayerNorm(d_model, eps=1e-6)


class _OffFFN(nn.Module):
    def __init__(self, d_in, d_hid):
        super().__init__()
        self.w_1, self.w_2 = nn.Linear(d_in, d_hid), nn.Linear(d_hid, d_in)
        self.layer_norm = nn.LayerNorm(d_in, eps=1e-6)


class _OffLayer(nn.Module):
    def __init__(self, n_head, d_model, d_k, d_inner):
        super().__init__()
        self.slf_attn, self.pos_ffn = _OffAttn(n_head, d_model, d_k), _OffFFN(d_model, d_inner)


class _OfficialLayout(nn.Module):
    """The official low_light_transformer's module tree (names only; HR_in, front/back_RBs 1), small sizes."""

    def __init__(self, nf=8, n_layers=2, n_head=2, d_k=8, d_inner=32, light_RBs=2):
        super().__init__()
        self.conv_first_1, self.conv_first_2, self.conv_first_3 = (
            nn.Conv2d(3, nf, 3, 1, 1),
            nn.Conv2d(nf, nf, 3, 2, 1),
            nn.Conv2d(nf, nf, 3, 2, 1),
        )
        self.feature_extraction = nn.Sequential(_OffRB(nf))
        self.recon_trunk = nn.Sequential(_OffRB(nf))
        self.upconv1, self.upconv2 = nn.Conv2d(2 * nf, 4 * nf, 3, 1, 1), nn.Conv2d(2 * nf, 256, 3, 1, 1)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.HRconv, self.conv_last = nn.Conv2d(64 + nf, 64, 3, 1, 1), nn.Conv2d(64, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.1)
        self.transformer = nn.Module()
        self.transformer.layer_stack = nn.ModuleList(
            [_OffLayer(n_head, nf * 16, d_k, d_inner) for _ in range(n_layers)]
        )
        self.recon_trunk_light = nn.Sequential(*[_OffRB(nf) for _ in range(light_RBs)])


def _official_forward(m: _OfficialLayout, x: torch.Tensor, mask: torch.Tensor, n_head: int, d_k: int) -> torch.Tensor:
    """Transcription of SNR:low_light_transformer.py forward + transformer/{SubLayers,Modules}.py."""

    def rb(block, t):
        return t + block.conv2(F.relu(block.conv1(t)))

    f1 = m.lrelu(m.conv_first_1(x))
    f2 = m.lrelu(m.conv_first_2(f1))
    f3 = m.lrelu(m.conv_first_3(f2))
    fea = rb(m.feature_extraction[0], f3)
    light = fea
    for block in m.recon_trunk_light:
        light = rb(block, light)
    h, w = fea.shape[2:]
    mask = F.interpolate(mask, size=[h, w], mode="nearest")
    tok = F.unfold(fea, kernel_size=4, dilation=1, stride=4, padding=0).permute(0, 2, 1)
    mu = torch.mean(F.unfold(mask, kernel_size=4, stride=4).permute(0, 2, 1), dim=2).unsqueeze(-2)
    mu[mu <= 0.5] = 0.0
    b, n, _ = tok.shape
    for layer in m.transformer.layer_stack:
        a = layer.slf_attn
        q, k, v = a.layer_norm(tok), a.layer_norm(tok), a.layer_norm(tok)
        q = a.w_qs(q).view(b, n, n_head, d_k).transpose(1, 2)
        k = a.w_ks(k).view(b, n, n_head, d_k).transpose(1, 2)
        v = a.w_vs(v).view(b, n, n_head, d_k).transpose(1, 2)
        att = torch.matmul(q / d_k**0.5, k.transpose(2, 3)).masked_fill(mu.unsqueeze(1) == 0, -1e9)
        o = torch.matmul(F.softmax(att, dim=-1), v).transpose(1, 2).contiguous().view(b, n, -1)
        tok = a.fc(o) + tok
        ff = layer.pos_ffn
        tok = ff.w_2(F.relu(ff.w_1(ff.layer_norm(tok)))) + tok
    long = nn.Fold(output_size=(h, w), kernel_size=(4, 4), stride=4)(tok.permute(0, 2, 1))
    mask = mask.repeat(1, fea.shape[1], 1, 1)
    fea = long * (1 - mask) + light * mask
    out = torch.cat([rb(m.recon_trunk[0], fea), f3], dim=1)
    out = m.lrelu(m.pixel_shuffle(m.upconv1(out)))
    out = m.lrelu(m.pixel_shuffle(m.upconv2(torch.cat([out, f2], dim=1))))
    out = m.lrelu(m.HRconv(torch.cat([out, f1], dim=1)))
    return m.conv_last(out) + x


def test_convert_official_loads_and_matches_official_forward():
    torch.manual_seed(0)
    official = _OfficialLayout().eval()
    with torch.no_grad():
        for p in official.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    state = {"module." + k: v for k, v in official.state_dict().items()}  # saved from DataParallel
    net = METHOD.build(**SMALL).eval()
    net.load_state_dict(METHOD.convert_official(state), strict=True)
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(5))
    snr = snr_map(x)
    assert (token_snr_mask(F.interpolate(snr, size=(8, 12))) == 0).any()  # some keys are masked
    with torch.no_grad():
        ref = _official_forward(official, x, snr, n_head=2, d_k=8)
        assert torch.allclose(net(x, snr), ref, atol=1e-5)
    with pytest.raises(KeyError, match="conv_first"):
        METHOD.convert_official({"conv_first.weight": torch.zeros(1)})


# ---- losses and training --------------------------------------------------------------------------
def test_charbonnier_reductions_by_hand():
    pred = torch.tensor([0.5, 0.503])
    target = torch.tensor([0.5, 0.5])
    d = float(pred[1]) - 0.5  # float32(0.503) - 0.5, as the loss sees it
    expected = 1e-3 + math.sqrt(d**2 + 1e-6)
    assert float(charbonnier(pred, target)) == pytest.approx(expected, rel=1e-5)
    assert float(charbonnier(pred, target, reduction="mean")) == pytest.approx(expected / 2, rel=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        charbonnier(pred, target, reduction="none")


def test_vgg_loss_slices_end_at_relu_x_1():
    import torchvision

    features = torchvision.models.vgg19(weights=None).features
    relu_x_1 = (1, 6, 11, 20, 29)  # torchvision vgg19.features indices of relu1_1 .. relu5_1
    assert all(isinstance(features[i], nn.ReLU) for i in relu_x_1)
    assert tuple(i + 1 for i in relu_x_1) == VGG19_SLICES
    loss = VGGPerceptualLoss(features)
    assert [len(s) for s in loss.slices] == [2, 5, 5, 9, 9]
    x = torch.rand(1, 3, 32, 32)
    assert float(loss(x, x)) == 0.0 and float(loss(x, x.flip(-1))) > 0


def test_lr_schedules_match_official_steps():
    cfg = METHOD.train_config()
    assert [lr_factor(s, cfg) for s in (1, 49_999, 50_000, 99_999, 100_000, 300_000, 600_000)] == [
        1.0,
        1.0,
        0.5,
        0.5,
        0.25,
        1 / 16,
        1 / 16,
    ]
    sid = METHOD.train_config(recipe="sid-srgb")
    assert lr_factor(0, sid) == pytest.approx(1.0)
    assert lr_factor(100_000, sid) * 1e-4 == pytest.approx((1e-4 + 1e-7) / 2)
    assert lr_factor(200_000, sid) * 1e-4 == pytest.approx(1e-7)


def test_recipes_follow_official_configs():
    lol = METHOD.train_config(recipe="lol")
    assert (lol["batch_size"], lol["crop"], lol["vgg_weight"], lol["lr"], lol["iterations"]) == (
        32,
        128,
        0.0,
        4e-4,
        600_000,
    )
    assert lol["augment"] == ("hflip", "vflip") and lol["betas"] == (0.9, 0.99) and lol["reduction"] == "sum"
    real = METHOD.train_config(recipe="lolv2-real")
    assert (real["batch_size"], real["crop"], real["resize"], real["vgg_weight"]) == (4, None, (400, 608), 0.1)
    assert METHOD.train_config(recipe="sid") == METHOD.train_config()  # a recipe it has none for: its defaults
    syn = METHOD.train_config(recipe="lolv2-syn")
    assert (syn["batch_size"], syn["crop"], syn["vgg_weight"]) == (32, 128, 0.02)
    sid = METHOD.train_config(recipe="sid-srgb")
    assert (sid["batch_size"], sid["lr"], sid["scheduler"], sid["iterations"], sid["vgg_weight"]) == (
        2,
        1e-4,
        "cosine",
        200_000,
        0.1,
    )


def test_lol_trainer_builds_no_vgg():
    net = _small()
    trainer = METHOD.trainer(net, METHOD.train_config(recipe="lol"), torch.device("cpu"))
    assert trainer.vgg is None and "untrained_vgg" not in trainer.flags


def test_training_step_updates_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached ImageNet VGG: the untrained (smoke) path
    torch.manual_seed(0)
    net = METHOD.build()
    cfg = METHOD.train_config(recipe="lolv2-real", allow_untrained_vgg=True, resize=None)
    with pytest.warns(UserWarning, match="UNTRAINED"):
        trainer = METHOD.trainer(net, cfg, torch.device("cpu"))
    assert trainer.flags["untrained_vgg"] is True
    g = torch.Generator().manual_seed(0)  # smooth images: part of the tokens have patch-mean SNR > 0.5
    target = F.interpolate(torch.rand(2, 3, 4, 4, generator=g), size=(64, 64), mode="bilinear", align_corners=False)
    batch = {"input": target * 0.2, "target": target}
    kept = token_snr_mask(F.interpolate(snr_map(batch["input"]), size=(16, 16))) > 0
    assert kept.any() and not kept.all()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    vgg_before = [p.clone() for p in trainer.vgg.parameters()]
    logs = trainer.step(batch)
    assert set(logs) == {"loss", "l_pix", "l_vgg", "lr"}
    assert all(math.isfinite(v) for v in logs.values())
    assert logs["loss"] == pytest.approx(logs["l_pix"] + logs["l_vgg"], rel=1e-5)
    # sum reduction: the initial loss is about 2 * 3 * 64 * 64 * mean |0.8 x|
    assert 2_000 < logs["l_pix"] < 20_000
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
    assert "transformer.layer_stack.0.slf_attn.w_qs.weight" in changed and "conv_first_1.weight" in changed
    assert all(torch.equal(a, b) for a, b in zip(vgg_before, trainer.vgg.parameters(), strict=True))
    assert logs["lr"] == 4e-4
    assert trainer.step(batch)["l_pix"] < logs["l_pix"]  # one Adam step reduces the loss on the same batch


def test_all_keys_masked_gives_queries_and_keys_no_gradient():
    # Faithful consequence of the -1e9 fill: with every key masked the attention is a uniform average,
    # so w_qs / w_ks receive no gradient (noise-like crops, whose SNR map is low everywhere).
    net = _small()
    net.train()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    net(x, torch.full((1, 1, 32, 32), 0.3)).sum().backward()
    attn = net.transformer.layer_stack[0].slf_attn
    assert float(attn.w_qs.weight.grad.abs().max()) == 0.0 and float(attn.w_ks.weight.grad.abs().max()) == 0.0
    assert float(attn.w_vs.weight.grad.abs().max()) > 0.0
