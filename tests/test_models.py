import pytest
import torch
from helpers import manifest

from vfi_mini.models import PRESET_PARAMS, PRESETS, STMFNetConfig, build_model, count_parameters
from vfi_mini.models.kernels import Upsampler8Tap, blur_downsample, gaussian_kernel


@pytest.mark.parametrize("arch", ["stmfnet", "stmfnet-mini"])
def test_state_dict_matches_official_manifest_key_for_key(arch):
    model = build_model(arch)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == list(manifest(arch).items())  # same keys, same order, same shapes


@pytest.mark.parametrize("arch", ["stmfnet", "stmfnet-mini"])
def test_parameter_counts_match_the_papers(arch):
    assert count_parameters(build_model(arch)) == PRESET_PARAMS[arch]


def test_frozen_parameters():
    full = build_model("stmfnet")
    trainable = sum(p.numel() for p in full.parameters() if p.requires_grad)
    assert trainable == 11_654_426  # PWC-Net and the two fixed filters are frozen (spec §0)
    mini = build_model("stmfnet-mini")
    assert sum(p.numel() for p in mini.parameters() if p.requires_grad) == 1_822_063


TINY = STMFNetConfig(
    feat_channels=(32, 32, 34, 36),
    kernel_hidden=6,
    kernel_size=3,
    dilation=2,
    grid_channels=(4, 5, 6),
    tenet_channels=(4, 5, 6, 7),
    tenet_decoder=(3, 4, 5, 6, 7),
    tenet_fuse=3,
    flow=False,
)


def test_any_consistent_config_builds_runs_and_trains():
    torch.manual_seed(0)
    model = build_model(TINY).train()
    frames = [torch.rand(2, 3, 32, 48) for _ in range(4)]
    out = model(*frames)
    assert out.shape == (2, 3, 32, 48)
    out.square().mean().backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    # GridNet's row 0 in the upward half never reaches the output row (see gridnet.py): no gradient.
    dead = ("scale_synthesis.lateral_0_2.", "scale_synthesis.lateral_0_3.", "scale_synthesis.up_0_")
    assert all((g is None) == n.startswith(dead) for n, g in grads.items())
    # The offset heads only receive gradients through AdaCoF: check the op's backward is wired.
    assert grads["get_kernel.moduleAlpha1.7.weight"].abs().sum() > 0
    assert grads["get_kernel.moduleBeta2_us.7.weight"].abs().sum() > 0


def test_config_roundtrip_and_validation():
    assert STMFNetConfig.from_dict(TINY.to_dict()) == TINY
    assert PRESETS["stmfnet-mini"].preset_name() == "stmfnet-mini"
    assert TINY.preset_name() is None
    with pytest.raises(ValueError, match="feat_channels"):
        STMFNetConfig(feat_channels=(30, 64, 96, 128))
    with pytest.raises(ValueError, match="unknown architecture field"):
        STMFNetConfig.from_dict({"widths": [1]})


def test_floor_rounding_config_is_stored_with_the_weights(tmp_path):
    """adacof_rounding="floor" is an architecture option: saved with the weights, used after loading."""
    import dataclasses

    from vfi_mini.weights import load_model, save_weights

    floor_cfg = dataclasses.replace(TINY, adacof_rounding="floor")
    torch.manual_seed(0)
    model = build_model(floor_cfg).eval()
    save_weights(model, tmp_path / "w.safetensors")
    loaded, _ = load_model(tmp_path / "w.safetensors")
    assert loaded.config.adacof_rounding == "floor"
    frames = [torch.rand(1, 3, 32, 48) for _ in range(4)]
    trunc = build_model(TINY).eval()
    trunc.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(loaded(*frames), model(*frames))
        assert not torch.allclose(trunc(*frames), model(*frames))
    with pytest.raises(ValueError, match="adacof_rounding"):
        dataclasses.replace(TINY, adacof_rounding="round")


def test_model_rejects_unpadded_sizes():
    model = build_model(TINY).eval()
    with pytest.raises(ValueError, match="multiple of 16"):
        model(*[torch.rand(1, 3, 40, 48)] * 4)


def test_gaussian_kernel_matches_spec_taps():
    k = gaussian_kernel()
    assert k.shape == (3, 1, 5, 5)
    one_d = k[0, 0].sum(dim=0)
    expected = torch.tensor([0.000264, 0.106451, 0.786571, 0.106451, 0.000264])
    torch.testing.assert_close(one_d, expected, atol=2e-6, rtol=0)
    # Blur-then-downsample keeps a constant image constant.
    x = torch.full((1, 3, 16, 16), 0.3)
    torch.testing.assert_close(blur_downsample(x, k), torch.full((1, 3, 8, 8), 0.3))


def test_upsampler_keeps_samples_and_interpolates_ramps_exactly():
    up = Upsampler8Tap()
    assert up.filter.requires_grad is False
    x = torch.rand(1, 3, 12, 10)
    y = up(x)
    assert y.shape == (1, 3, 24, 20)
    torch.testing.assert_close(y[..., ::2, ::2], x)
    # The HEVC filter is exact on linear ramps away from the reflected borders.
    ramp = torch.arange(16.0).view(1, 1, 1, 16).expand(1, 3, 16, 16).contiguous()
    y = up(ramp)
    torch.testing.assert_close(y[0, 0, 8, 7:20:2], torch.arange(3.5, 10.0, 1.0))
    torch.testing.assert_close(y[0, 0, 9, 7:20:2], torch.arange(3.5, 10.0, 1.0))


def test_gridnet_skipping_dead_row0_blocks_changes_nothing():
    from vfi_mini.models.gridnet import MIMOGridNet

    torch.manual_seed(3)
    net = MIMOGridNet((6, 6, 6), (4, 5, 6)).eval()
    rows = [torch.rand(1, 6, 32, 32), torch.rand(1, 6, 16, 16), torch.rand(1, 6, 8, 8)]

    def full_schedule(cur):  # spec §2.6, literally: every row in every column
        cur = list(cur)
        for c in (0, 1):
            for r in (0, 1, 2):
                cur[r] = getattr(net, f"lateral_{r}_{c}")(cur[r])
                if r > 0:
                    cur[r] = cur[r] + getattr(net, f"down_{r - 1}_{c}")(cur[r - 1])
        for c in (2, 3):
            for r in (2, 1, 0):
                cur[r] = getattr(net, f"lateral_{r}_{c}")(cur[r])
                if r < 2:
                    cur[r] = cur[r] + getattr(net, f"up_{r}_{c - 2}")(cur[r + 1])
        return net.lateral_final_1(cur[1])

    with torch.no_grad():
        torch.testing.assert_close(net(rows), full_schedule(rows))


def test_training_step_with_channels_last_frames_does_not_crash(tmp_path):
    # Regression: frames built from HWC numpy arrays have channels-last strides, and PyTorch 2.13's
    # oneDNN backward of a 1x1 stride-2 conv on 6 channels corrupted the heap for such inputs (abort).
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from vfi_mini.models import STMFNetConfig, build_model\n"
        "cfg = STMFNetConfig(feat_channels=(32, 32, 32, 32), kernel_hidden=4, grid_channels=(4, 4, 4),\n"
        "                    tenet_channels=(4, 4, 4, 4), tenet_decoder=(4, 4, 4, 4, 4), tenet_fuse=2, flow=False)\n"
        "m = build_model(cfg).train()\n"
        "x = torch.rand(2, 4, 128, 128, 3).permute(0, 1, 4, 2, 3)\n"
        "for _ in range(2):\n"
        "    m(*x.unbind(1)).square().sum().backward()\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-500:]


@pytest.mark.parametrize(
    "kind,args",
    [
        ("conv", dict(in_channels=5, out_channels=7, kernel_size=3, stride=1, padding=1)),
        (
            "conv",
            dict(in_channels=3, out_channels=4, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3)),
        ),
        ("conv", dict(in_channels=6, out_channels=4, kernel_size=1, stride=(1, 2, 2), bias=False)),
        (
            "convT",
            dict(in_channels=6, out_channels=5, kernel_size=(3, 4, 4), stride=(1, 2, 2), padding=(1, 1, 1)),
        ),
    ],
)
def test_temporal_convs_as_2d_match_pytorch_3d(kind, args):
    from vfi_mini.models.tenet import Conv3d, ConvTranspose3d

    torch.manual_seed(0)
    fast = (Conv3d if kind == "conv" else ConvTranspose3d)(**args).double()
    x = torch.randn(2, args["in_channels"], 5, 12, 10, dtype=torch.float64, requires_grad=True)
    ref_fn = torch.nn.functional.conv3d if kind == "conv" else torch.nn.functional.conv_transpose3d
    extra = {} if kind == "conv" else {"output_padding": 0}
    y = fast(x)
    ref = ref_fn(x, fast.weight, fast.bias, fast.stride, fast.padding, **extra)
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, fast.weight], g)
    grads_ref = torch.autograd.grad(ref, [x, fast.weight], g)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b)


def test_channel_softmax_keeps_channels_last_and_equals_softmax():
    """The Weight heads' softmax: the function of nn.Softmax(dim=1), without a layout copy for channels-last."""
    from vfi_mini.models.kernels import ChannelSoftmax

    x = torch.randn(2, 25, 6, 7, dtype=torch.float64)
    cl = x.contiguous(memory_format=torch.channels_last)
    out = ChannelSoftmax()(cl)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, torch.softmax(x, dim=1))
    torch.testing.assert_close(ChannelSoftmax()(x), torch.softmax(x, dim=1))
    assert isinstance(build_model(PRESETS["stmfnet-mini"]).get_kernel.moduleWeight1_us[-1], ChannelSoftmax)


def _tenet_reference(net, x):
    """TENet's forward on (B, C, T, H, W) clips through PyTorch's own 3-D layers, as in FLAVR."""
    from vfi_mini.models.tenet import SEGating

    nn = torch.nn

    def run(layers, x):
        for m in layers:
            if isinstance(m, nn.ConvTranspose3d):
                x = nn.ConvTranspose3d.forward(m, x)
            elif isinstance(m, nn.Conv3d):
                x = nn.Conv3d.forward(m, x)
            elif isinstance(m, SEGating):
                x = x * torch.sigmoid(nn.Conv3d.forward(m.attn_layer[0], x.mean(dim=(2, 3, 4), keepdim=True)))
            else:
                x = m(x)  # BatchNorm3d, ReLU
        return x

    def block(blk, x):
        out = run([blk.fg], run(blk.conv2, run(blk.conv1, x)))
        return torch.relu(out + (x if blk.downsample is None else run(blk.downsample, x)))

    e = net.encoder
    skips = [run(e.stem, x)]
    for layer in (e.layer1, e.layer2, e.layer3, e.layer4):
        skips.append(block(layer[1], block(layer[0], skips[-1])))
    x0, x1, x2, x3, x4 = skips
    lrelu = nn.functional.leaky_relu
    d = torch.cat([lrelu(run(net.decoder[0].conv, x4), 0.2), x3], dim=1)
    d = torch.cat([lrelu(run(net.decoder[1].upconv, d), 0.2), x2], dim=1)
    d = torch.cat([lrelu(run(net.decoder[2].upconv, d), 0.2), x1], dim=1)
    d = torch.cat([lrelu(run(net.decoder[3].conv, d), 0.2), x0], dim=1)
    d = lrelu(run(net.decoder[4].upconv, d), 0.2)
    d = torch.cat(torch.unbind(d, dim=2), dim=1)
    return net.outconv(lrelu(net.feature_fuse(d), 0.2))


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kernels", ["stack", "3d"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last_3d], ids=["ncdhw", "cl3d"])
def test_tenet_frames_in_batch_matches_the_5d_reference(train, kernels, layout, monkeypatch):
    """UNet3d18 keeps frames in batch (B*T, C, H, W) and runs 3-D layers as 2-D stacks or 3-D kernels on a
    view: the same outputs, batch-norm statistics and gradients as PyTorch's 3-D layers on (B, C, T, H, W)."""
    import copy

    from vfi_mini.models import tenet

    if kernels == "3d":  # float64 takes the 2-D stack otherwise; this runs the 3-D path on any dtype
        monkeypatch.setattr(tenet, "_use_3d_kernels", lambda x: True)
    torch.manual_seed(0)
    net = build_model("stmfnet-mini").dyntex_generator.double().train(train)
    for p in net.parameters():
        p.data.normal_(0, 0.2)
    for name, buf in net.named_buffers():
        if name.endswith("running_mean"):
            buf.normal_(0, 0.1)
        elif name.endswith("running_var"):
            buf.uniform_(0.5, 1.5)
    ref_net = copy.deepcopy(net)
    x = torch.randn(2, 3, 5, 32, 48, dtype=torch.float64).contiguous(memory_format=layout)
    x_ref = x.detach().clone().requires_grad_()
    x = x.requires_grad_()

    y, y_ref = net(x), _tenet_reference(ref_net, x_ref)
    assert y.shape == (2, 3, 32, 48)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    for (name, a), b in zip(net.named_buffers(), ref_net.buffers(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=name)
    if train:
        assert int(net.encoder.stem[1].num_batches_tracked) == 1
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, *net.parameters()], g)
    grads_ref = torch.autograd.grad(y_ref, [x_ref, *ref_net.parameters()], g)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_strided_1x1_temporal_conv_subsamples_first():
    """The downsample's strided 1x1x1 convolution runs as a subsample and a stride-1 convolution (PyTorch's
    CPU backward of strided 1x1 convolutions of channels-last input corrupts the heap with 2+ threads):
    the same output and gradients as PyTorch's strided 3-D convolution."""
    from vfi_mini.models.tenet import Conv3d

    torch.manual_seed(0)
    conv = Conv3d(4, 6, 1, (1, 2, 2), bias=False).double()
    x = torch.randn(2 * 5, 4, 9, 12, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    y = conv.frames(x, 5)
    clips = x.detach().unflatten(0, (2, 5)).transpose(1, 2).requires_grad_()
    y_ref = torch.nn.Conv3d.forward(conv, clips).transpose(1, 2).flatten(0, 1)
    torch.testing.assert_close(y, y_ref)
    g = torch.randn_like(y)
    torch.testing.assert_close(
        torch.autograd.grad(y, x, g)[0], torch.autograd.grad(y_ref, clips, g)[0].transpose(1, 2).flatten(0, 1)
    )
