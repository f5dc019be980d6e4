"""EnlightenGAN: counts, attention, losses, patches, trainer steps and the official checkpoint layout."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

import methods
from methods.enlightengan import EnlightenGANTrainer, random_darken
from methods.enlightengan.loss import (
    SelfFeaturePreservingLoss,
    crop_patches,
    lsgan_d_loss,
    lsgan_loss,
    ralsgan_d_loss,
    ralsgan_g_loss,
    sample_patch_offsets,
    vgg16_relu5_1,
    vgg_preprocess,
)
from methods.enlightengan.model import (
    EnlightenGANGenerator,
    NoNormDiscriminator,
    attention_map,
    centred_pads,
)

CPU = torch.device("cpu")


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def method():
    return methods.get("enlightengan")


@pytest.fixture(scope="module")
def vgg():
    """Untrained ``torchvision.models.vgg16().features`` (same layers, without building the 124M-parameter head)."""
    features = make_layers(cfgs["D"], batch_norm=False).eval()
    return features.requires_grad_(False)


@pytest.fixture(scope="module", autouse=True)
def vgg_calls(vgg):
    """Trainers share the one untrained VGG16 instead of building torchvision's full net each time."""
    calls = []

    def fake(arch, weights=None, allow_untrained=False):
        calls.append((arch, weights, allow_untrained))
        return vgg, False

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("methods.enlightengan.vgg_features", fake)
        yield calls


def _trainer(method, variant: str = "default", seed: int = 0, **overrides) -> EnlightenGANTrainer:
    torch.manual_seed(seed)
    model = method.build(variant)
    cfg = method.train_config(variant, allow_untrained_vgg=True, seed=seed, **overrides)
    return method.trainer(model, cfg, CPU)


def _batch(seed: int = 1, b: int = 2, size: int = 40) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "input": 0.3 * torch.rand(b, 3, size, size, generator=g),
        "reference": torch.rand(b, 3, size, size, generator=g),
    }


# ---- registration and counts ---------------------------------------------------------------
def test_registration(method):
    assert (method.name, method.task, method.train_data, method.pad_multiple) == (
        "enlightengan",
        "enhance",
        "unpaired",
        16,
    )
    assert set(method.variants) == {"default", "single_discriminator", "no_attention"}
    assert method.build("no_attention").conv1_1.in_channels == 3
    assert method.build().conv1_1.in_channels == 4


def test_parameter_counts():
    assert n_params(EnlightenGANGenerator()) == 8_636_675
    assert n_params(EnlightenGANGenerator(self_attention=False, times_residual=False)) == 8_636_675 - 32 * 9
    assert n_params(NoNormDiscriminator(n_layers=5)) == 11_154_369
    assert n_params(NoNormDiscriminator(n_layers=4)) == 6_959_553


# ---- attention map and generator wiring -------------------------------------------------------
def test_attention_map_hand_values():
    # pixels: red, green, blue, white, mid grey
    img = torch.tensor([[1, 0, 0, 1, 0.5], [0, 1, 0, 1, 0.5], [0, 0, 1, 1, 0.5]], dtype=torch.float32)
    a = attention_map(img.view(1, 3, 1, 5))
    assert a.shape == (1, 1, 1, 5)
    torch.testing.assert_close(a.flatten(), torch.tensor([0.701, 0.413, 0.886, 0.0, 0.5]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("attention", [True, False])
def test_output_is_input_plus_attention_weighted_residual(attention):
    torch.manual_seed(0)
    g = EnlightenGANGenerator(self_attention=attention, times_residual=attention).eval()
    with torch.no_grad():
        g.conv10.weight.zero_()
        g.conv10.bias.fill_(0.1)
    x = torch.rand(2, 3, 32, 48) * 0.5
    a = attention_map(x) if attention else torch.ones(2, 1, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(g.forward_raw(x), 2 * x - 1 + 0.1 * a)  # latent * A + input, [-1, 1]
        torch.testing.assert_close(g(x), (x + 0.05 * a).clamp(0, 1))  # public forward: [0, 1]


@pytest.mark.parametrize("attention", [True, False])
def test_skips_and_bottleneck_are_multiplied_by_pooled_attention(attention):
    torch.manual_seed(0)
    g = EnlightenGANGenerator(self_attention=attention, times_residual=attention).eval()
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        g.bn1_2.register_forward_hook(lambda m, i, o: seen.__setitem__("conv1", o)),
        g.bn5_1.register_forward_hook(lambda m, i, o: seen.__setitem__("conv5_1", o)),
        g.conv9_1.register_forward_pre_hook(lambda m, i: seen.__setitem__("up9", i[0])),
        g.conv5_2.register_forward_pre_hook(lambda m, i: seen.__setitem__("x5", i[0])),
    ]
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        g(x)
    for h in hooks:
        h.remove()
    a = attention_map(x) if attention else torch.ones(1, 1, 32, 32)
    torch.testing.assert_close(seen["up9"][:, 32:], seen["conv1"] * a)
    torch.testing.assert_close(seen["x5"], seen["conv5_1"] * F.max_pool2d(a, 16))


def test_centred_padding_and_infer(method):
    assert centred_pads(20, 30) == (1, 1, 6, 6)  # (left, right, top, bottom), EGAN pad_tensor split
    assert centred_pads(401, 600) == (4, 4, 7, 8)
    assert centred_pads(400, 608) == (0, 0, 0, 0)
    torch.manual_seed(0)
    g = method.build().eval()
    with torch.no_grad():
        g.conv10.weight.zero_()
        g.conv10.bias.fill_(0.3)
    x = torch.rand(1, 3, 20, 34)
    y = method.infer(g, x)
    torch.testing.assert_close(y, (x + 0.15 * attention_map(x)).clamp(0, 1))
    # official "width > 2200" rule, here triggered at 16: avg-pool x2, run, bilinear (align_corners) back
    p = F.avg_pool2d(x, 2)
    raw = F.interpolate(2 * p - 1 + 0.3 * attention_map(p), size=(20, 34), mode="bilinear", align_corners=True)
    torch.testing.assert_close(method.infer(g, x, max_width=16), ((raw + 1) / 2).clamp(0, 1))
    with pytest.raises(KeyError, match="r3"):
        method.infer(g, x, r3=True)


# ---- losses ------------------------------------------------------------------------------------
def test_relativistic_and_plain_lsgan_hand_values():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0])  # E real = 2, E fake = 1
    # RaLSGAN D: [MSE([0, 2], 1) + MSE([-2, 0], 0)] / 2 = [1 + 2] / 2
    assert ralsgan_d_loss(real, fake).item() == pytest.approx(1.5)
    # RaLSGAN G: [MSE([0, 2], 0) + MSE([-2, 0], 1)] / 2 = [2 + 5] / 2
    assert ralsgan_g_loss(real, fake).item() == pytest.approx(3.5)
    # plain LSGAN D: [MSE([1, 3], 1) + MSE([0, 2], 0)] / 2 = [2 + 2] / 2; G: MSE([0, 2], 1) = 1
    assert lsgan_d_loss(real, fake).item() == pytest.approx(2.0)
    assert lsgan_loss(fake, True).item() == pytest.approx(1.0)


def test_vgg_relu5_1_without_fourth_pool(vgg):
    ext = vgg16_relu5_1(vgg)
    assert sum(isinstance(m, nn.Conv2d) for m in ext) == 11
    assert sum(isinstance(m, nn.MaxPool2d) for m in ext) == 3
    assert isinstance(ext[-1], nn.ReLU) and ext[-2].out_channels == 512
    with torch.no_grad():
        assert ext(torch.rand(1, 3, 64, 48)).shape == (1, 512, 8, 6)  # 1/8 resolution
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)  # R=-1, G=0, B=1
    assert vgg_preprocess(x).flatten().tolist() == [255.0, 127.5, 0.0]  # BGR in [0, 255], no mean


def test_self_feature_preserving_loss(vgg):
    sfp = SelfFeaturePreservingLoss(vgg)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).requires_grad_(True)
    assert sfp(x, x).item() == 0.0
    loss = sfp(y, x)
    loss.backward()
    assert loss.item() > 0 and y.grad.abs().sum() > 0
    assert all(p.grad is None for p in sfp.parameters())
    # instance-normalised features: the loss equals the MSE of F.instance_norm'ed relu5_1 maps
    with torch.no_grad():
        f = lambda t: F.instance_norm(sfp.extractor(vgg_preprocess(t)))  # noqa: E731
        assert loss.item() == pytest.approx(F.mse_loss(f(y), f(x)).item(), rel=1e-5)


# ---- patches and darkening --------------------------------------------------------------------
def test_patch_sampling():
    g = torch.Generator().manual_seed(3)
    off = sample_patch_offsets(40, 50, 6, 32, g)
    assert off.shape == (6, 2) and off.dtype == torch.int64
    assert torch.equal(off, sample_patch_offsets(40, 50, 6, 32, torch.Generator().manual_seed(3)))
    many = sample_patch_offsets(40, 50, 2000, 32, g)
    # EGAN: randint(0, max(0, size - 32 - 1)), upper bound inclusive
    assert many[:, 0].min() == 0 and many[:, 0].max() == 40 - 33
    assert many[:, 1].min() == 0 and many[:, 1].max() == 50 - 33
    x = torch.rand(2, 3, 40, 50)
    p = crop_patches(x, off, 32)
    assert p.shape == (6, 2, 3, 32, 32)  # n_patches x B x 3 x 32 x 32
    t, l = off[4].tolist()
    assert torch.equal(p[4, 1], x[1, :, t : t + 32, l : l + 32])
    with pytest.raises(ValueError, match="31x50"):
        sample_patch_offsets(31, 50, 6, 32)


def test_random_darken():
    x = torch.rand(64, 3, 4, 4)
    y, f = random_darken(x, 1.0, 2.0, 4.0, torch.Generator().manual_seed(0))
    assert f.min() >= 2.0 and f.max() <= 4.0
    torch.testing.assert_close(f * 100, (f * 100).round())  # official randint(200, 400) / 100
    torch.testing.assert_close(y, x / f.view(-1, 1, 1, 1))
    y, f = random_darken(x, 0.5, 2.0, 4.0, torch.Generator().manual_seed(0))
    assert 10 < int((f == 1).sum()) < 54
    assert torch.equal(random_darken(x, 0.0, 2.0, 4.0)[0], x)


# ---- trainers ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stepped(method):
    tr = _trainer(method)
    before = {
        n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in {"G": tr.model, **tr.extra_modules}.items()
    }
    vgg_before = [p.clone() for p in tr.sfp.parameters()]
    losses = tr.step(_batch())
    return tr, before, vgg_before, losses


def test_trainer_step_updates_g_and_both_d(stepped, vgg_calls):
    tr, before, vgg_before, losses = stepped
    assert vgg_calls[0] == ("vgg16", None, True)  # cfg vgg_weights / allow_untrained_vgg passed through
    assert set(losses) == {"loss_G", "loss_G_gan", "loss_vgg", "loss_D", "loss_D_patch"}
    assert all(math.isfinite(v) for v in losses.values())
    assert losses["loss_G"] == pytest.approx(losses["loss_G_gan"] + losses["loss_vgg"], rel=1e-6)
    assert set(tr.optimizers) == {"G", "D", "D_patch"}
    assert tr.flags == {"untrained_vgg": True}
    for name, module in {"G": tr.model, **tr.extra_modules}.items():
        changed = [
            k for k, v in module.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[name][k])
        ]
        assert len(changed) > 0, name
        if name.startswith("D"):  # every discriminator conv got a gradient step
            assert len(changed) == len(before[name])
    assert all(torch.equal(a, b) for a, b in zip(vgg_before, tr.sfp.parameters(), strict=True))


def test_trainer_gradients_equal_the_official_two_pass_update(method):
    """The trainer reuses each D's logits for the G and the D losses and batches the patches; the official
    code runs D again after G's step and loops over the patches. Same gradients either way."""
    tr = _trainer(method, seed=5)
    g0, d0, p0 = (copy.deepcopy(m) for m in (tr.model, tr.disc, tr.disc_patch))
    rng = tr.rng.get_state()
    batch = _batch(seed=3, b=2, size=40)
    tr.step(batch)
    tr.rng.set_state(rng)  # replay the same darkening and patch draws
    x, ref = batch["input"], batch["reference"]
    g_in, gray, _ = tr.prepare(x)
    offsets = sample_patch_offsets(40, 40, 6, 32, tr.rng).tolist()
    real_a, real_b = x * 2 - 1, ref * 2 - 1
    crop = lambda t, i: t[:, :, offsets[i][0] : offsets[i][0] + 32, offsets[i][1] : offsets[i][1] + 32]  # noqa: E731
    # EGAN:models/single_model.py backward_G (use_ragan, hybrid_loss, patch_vgg, patchD_3 = 5)
    fake, _ = g0.forward_official(g_in, gray)
    loss_g = ralsgan_g_loss(d0(real_b), d0(fake))
    loss_g = loss_g + sum(lsgan_loss(p0(crop(fake, i)), True) for i in range(6)) / 6
    loss_g = loss_g + tr.sfp(fake, real_a) + sum(tr.sfp(crop(fake, i), crop(real_a, i)) for i in range(6)) / 6
    loss_g.backward()
    # backward_D_A / backward_D_P on the pre-update fake
    for m in (d0, p0):
        m.zero_grad()
    fake = fake.detach()
    loss_d = ralsgan_d_loss(d0(real_b), d0(fake))
    loss_p = sum(lsgan_d_loss(p0(crop(real_b, i)), p0(crop(fake, i))) for i in range(6)) / 6
    (loss_d + loss_p).backward()
    # Per module, all gradients joined: float32 summation order differs between the two passes and between
    # CPUs' kernels; measured ||d|| / ||g|| from 2.5e-6 to 1.3e-5 (oneDNN AVX-512 / AVX2 / SSE4.1, 1 and 2
    # threads, oneDNN off), so 1e-4. Per parameter, each gradient's error is bounded by the module's noise:
    # the global D's last bias has a true gradient of 0 (RaLSGAN depends on output differences only), so its
    # computed value is rounding noise on some CPUs and exactly 0 on others.
    for ours, official in ((tr.model, g0), (tr.disc, d0), (tr.disc_patch, p0)):
        pairs = list(zip(ours.named_parameters(), official.parameters(), strict=True))
        mine = torch.cat([a.grad.flatten() for (_, a), _ in pairs])
        theirs = torch.cat([b.grad.flatten() for _, b in pairs])
        assert theirs.norm() > 0 and (mine - theirs).norm() <= 1e-4 * theirs.norm()
        for (name, a), b in pairs:
            assert (a.grad - b.grad).norm() <= 5e-5 * b.grad.norm() + 1e-6 * theirs.norm(), name


def test_trainer_uses_darkened_input_for_attention(stepped):
    tr = stepped[0]
    tr.cfg["darken_p"] = 1.0
    x = torch.rand(3, 3, 16, 16)
    g_in, gray, factor = tr.prepare(x)
    tr.cfg["darken_p"] = 0.5
    assert ((factor >= 2) & (factor <= 4)).all()
    dark = x / factor.view(-1, 1, 1, 1)
    torch.testing.assert_close(gray, attention_map(dark))
    torch.testing.assert_close(g_in, dark * 2 - 1)


def test_single_discriminator_and_lr_schedule(method):
    tr = _trainer(method, "single_discriminator", epochs_constant=2, epochs_decay=2)
    assert tr.disc_patch is None
    assert set(tr.optimizers) == set(tr.schedulers) == {"G", "D"}
    assert set(tr.extra_modules) == {"D"}
    assert n_params(tr.disc) == 11_154_369  # the global D only; no local D anywhere in the trainer
    assert not any(isinstance(v, NoNormDiscriminator) and v is not tr.disc for v in vars(tr).values())
    losses = tr.step(_batch(b=1, size=36))
    assert set(losses) == {"loss_G", "loss_G_gan", "loss_vgg", "loss_D"}
    assert set(tr.state_dict()["extra"]) == {"D"}
    lrs = []
    for _ in range(5):
        tr.end_epoch()
        lrs.append([o.param_groups[0]["lr"] for o in tr.optimizers.values()])
    # EGAN: niter epochs constant, then lr -= lr0 / niter_decay after every later epoch, down to 0
    assert all(len(set(row)) == 1 for row in lrs)  # one schedule for G and D
    assert [row[0] for row in lrs] == pytest.approx([1e-4, 1e-4, 5e-5, 0.0, 0.0])


# ---- official checkpoints ---------------------------------------------------------------------
# Unet_resize_conv layout transcribed from EGAN:models/networks.py: (name, in, out, kernel); BN names
_OFFICIAL_CONVS = [
    ("conv1_1", 4, 32, 3),
    ("conv1_2", 32, 32, 3),
    ("conv2_1", 32, 64, 3),
    ("conv2_2", 64, 64, 3),
    ("conv3_1", 64, 128, 3),
    ("conv3_2", 128, 128, 3),
    ("conv4_1", 128, 256, 3),
    ("conv4_2", 256, 256, 3),
    ("conv5_1", 256, 512, 3),
    ("conv5_2", 512, 512, 3),
    ("deconv5", 512, 256, 3),
    ("conv6_1", 512, 256, 3),
    ("conv6_2", 256, 256, 3),
    ("deconv6", 256, 128, 3),
    ("conv7_1", 256, 128, 3),
    ("conv7_2", 128, 128, 3),
    ("deconv7", 128, 64, 3),
    ("conv8_1", 128, 64, 3),
    ("conv8_2", 64, 64, 3),
    ("deconv8", 64, 32, 3),
    ("conv9_1", 64, 32, 3),
    ("conv9_2", 32, 32, 3),
    ("conv10", 32, 3, 1),
]
_OFFICIAL_BNS = [
    (f"bn{lvl}_{j}", c)
    for lvl, c in zip(range(1, 9), (32, 64, 128, 256, 512, 256, 128, 64), strict=True)
    for j in (1, 2)
] + [("bn9_1", 32)]


def _official_generator_state() -> dict[str, torch.Tensor]:
    """Shaped like an official 200_net_G_A.pth: DataParallel 'module.' keys, no num_batches_tracked."""
    mock = nn.Module()
    for name, cin, cout, k in _OFFICIAL_CONVS:
        mock.add_module(name, nn.Conv2d(cin, cout, k, padding=k // 2))
    for name, c in _OFFICIAL_BNS:
        bn = nn.BatchNorm2d(c)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        mock.add_module(name, bn)
    wrapper = nn.Module()
    wrapper.module = mock
    return {k: v for k, v in wrapper.state_dict().items() if not k.endswith("num_batches_tracked")}


def test_convert_official_generator(method):
    torch.manual_seed(0)
    state = _official_generator_state()
    assert sum(v.numel() for k, v in state.items() if "running" not in k) == 8_636_675
    g = method.build()
    g.load_state_dict(method.convert_official(state), strict=True)
    for k, v in state.items():
        assert torch.equal(g.state_dict()[k[len("module.") :]], v)
    with pytest.raises(KeyError, match="Unet_resize_conv"):
        method.convert_official({"enhance.in_conv.0.weight": torch.zeros(1)})
