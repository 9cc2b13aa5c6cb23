"""ResNet Init is exactly the generalized residual block (paper Equation 1, Appendix 6.1), proven in float64.

Each test builds the explicit four-kernel block and the one-kernel ResNet Init layer with the same random
weights and checks outputs and gradients; then Figure 1c, the weight-decay rule, bf16 behaviour and the
Figure 3 stream zeroing.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rir.errors import UserError
from rir.layers import (
    GeneralizedResidualBlock,
    ResNetInitConv2d,
    ResNetInitLinear,
    merge_kernels,
    resnet_init_layers,
    split_kernel,
    zero_stream,
)

torch.set_num_threads(1)
TOL = 1e-10

# (residual_in, transient_in, residual_out, transient_out, stride): odd counts; the second grows both streams
# and halves the resolution (the dimension-increasing case, where the identity is subsampled and zero-padded).
SHAPES = [(3, 4, 3, 4, 1), (3, 4, 5, 6, 2)]


def _randomize_bn(bn_parts, bn_whole):
    """Random affine parameters and running statistics, shared by the per-stream BNs and the one BN."""
    for bn in bn_parts:
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_()
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
    for attr in ("weight", "bias", "running_mean", "running_var"):
        getattr(bn_whole, attr).data.copy_(torch.cat([getattr(b, attr).data for b in bn_parts]))


def _pair(shape, form, linear=False):
    ri, ti, ro, to, stride = shape
    torch.manual_seed(0)
    block = GeneralizedResidualBlock(ri, ti, ro, to, kernel_size=1 if linear else 3, stride=stride).double()
    kernels = [block.conv_rr.weight, block.conv_tr.weight, block.conv_rt.weight, block.conv_tt.weight]
    if linear:
        layer = ResNetInitLinear(ri + ti, ro + to, residual_features=ri, residual_out_features=ro, form=form)
        bn = nn.BatchNorm1d(ro + to)
        merged = merge_kernels(*[k[..., 0, 0] for k in kernels])
    else:
        layer = ResNetInitConv2d(ri + ti, ro + to, stride=stride, residual_channels=ri,
                                 residual_out_channels=ro, form=form)
        bn = nn.BatchNorm2d(ro + to)
        merged = merge_kernels(*kernels)
    layer, bn = layer.double(), bn.double()
    layer.weight.data.copy_(merged)
    _randomize_bn([block.bn_r, block.bn_t], bn)
    return block, layer, bn, kernels


@pytest.mark.parametrize("linear", [False, True], ids=["conv", "linear"])
@pytest.mark.parametrize("form", ["fused", "explicit"])
@pytest.mark.parametrize("shape", SHAPES, ids=["stride1", "grow_stride2"])
@pytest.mark.parametrize("stage", ["preactivation", "train", "eval"])
def test_resnet_init_equals_generalized_block(shape, form, linear, stage):
    if linear and shape[4] != 1:
        # A fully connected layer has no stride; its dimension-increasing case is the channel growth alone.
        shape = (*shape[:4], 1)
    block, layer, bn, kernels = _pair(shape, form, linear)
    ri, ti = shape[0], shape[1]
    size = 1 if linear else 9
    r = torch.randn(5, ri, size, size, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, ti, size, size, dtype=torch.float64, requires_grad=True)
    for m in (block, bn):
        m.train(stage == "train")

    if stage == "preactivation":
        expected = torch.cat(block.preactivation(r, t), dim=1)
    else:
        expected = torch.cat(block(r, t), dim=1)
    x = torch.cat([r, t], dim=1)
    got = layer(x[..., 0, 0] if linear else x)
    if stage != "preactivation":
        got = F.relu(bn(got))
    if linear:
        got = got[..., None, None]
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < TOL

    g = torch.randn_like(expected)
    grads_ref = torch.autograd.grad((expected * g).sum(), [r, t, *kernels])
    grads = torch.autograd.grad((got * g).sum(), [r, t, layer.weight])
    for a, b in zip(grads[:2], grads_ref[:2], strict=True):
        assert (a - b).abs().max() < TOL
    ref_kernel = merge_kernels(*[k[..., 0, 0] if linear else k for k in grads_ref[2:]])
    assert (grads[2] - ref_kernel).abs().max() < TOL


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 1])
def test_identity_subsamples_crops_and_zero_pads(stride, padding):
    torch.manual_seed(6)
    layers = {form: ResNetInitConv2d(5, 7, 3, stride, 2, padding, form).double()
              for form in ("fused", "explicit")}
    layers["explicit"].weight.data.copy_(layers["fused"].weight.data)
    x = torch.randn(2, 5, 9, 9, dtype=torch.float64)
    assert (layers["fused"](x) - layers["explicit"](x)).abs().max() < TOL
    with torch.no_grad():
        layers["fused"].weight.zero_()
    out = layers["fused"](x)
    c = 1 - padding  # the centre tap of an unpadded 3x3 kernel sits one pixel in: a crop
    expected = x[:, :2, c::stride, c::stride][..., :out.shape[-2], :out.shape[-1]]
    assert torch.equal(out[:, :2], expected) and not out[:, 2:].any()


def test_split_and_merge_are_inverse_and_name_the_directions():
    w = torch.randn(7, 5, 3, 3)
    W_rr, W_tr, W_rt, W_tt = split_kernel(w, residual_in=2, residual_out=3)  # noqa: N806
    # W_rt maps the residual stream INTO the transient stream: transient outputs, residual inputs.
    assert W_rt.shape == (4, 2, 3, 3) and torch.equal(W_rt, w[3:, :2])
    assert W_tr.shape == (3, 3, 3, 3) and torch.equal(W_tr, w[:3, 2:])
    assert torch.equal(merge_kernels(W_rr, W_tr, W_rt, W_tt), w)


def _resnet_block_eval(x, conv1, bn1, conv2, bn2):
    """He et al.'s 2-layer block (Figure 1a): relu(x + bn2(conv2(relu(bn1(conv1(x))))))."""
    return F.relu(x + bn2(conv2(F.relu(bn1(conv1(x))))))


def _identity_bn(bn):
    # running_var = 1 - eps makes eval-mode BatchNorm exactly z * 1 + bias.
    bn.running_mean.zero_()
    bn.running_var.fill_(1 - bn.eps)
    bn.weight.data.fill_(1.0)


def test_figure_1c_two_generalized_blocks_compute_a_resnet_block():
    torch.manual_seed(1)
    c = 4
    conv1, conv2 = (nn.Conv2d(c, c, 3, padding=1, bias=False).double() for _ in range(2))
    bn1, bn2 = (nn.BatchNorm2d(c).double().eval() for _ in range(2))
    for bn in (bn1, bn2):
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
    x = F.relu(torch.randn(3, c, 8, 8, dtype=torch.float64))  # a block's input follows a ReLU
    expected = _resnet_block_eval(x, conv1, bn1, conv2, bn2)

    first, second = (GeneralizedResidualBlock(c, c).double().eval() for _ in range(2))
    with torch.no_grad():
        for block in (first, second):
            for conv in (block.conv_rr, block.conv_tr, block.conv_rt, block.conv_tt):
                conv.weight.zero_()
        # Block 1: r passes through unchanged (x >= 0), t computes the first layer relu(bn1(conv1 x)).
        _identity_bn(first.bn_r)
        first.bn_r.bias.zero_()
        first.conv_rt.weight.copy_(conv1.weight)
        first.bn_t.load_state_dict(bn1.state_dict())
        # Block 2: r = relu(x + bn2(conv2 t)), with bn2's eval-mode scale folded into W_tr and its shift
        # into sigma's BatchNorm.
        scale = bn2.weight / torch.sqrt(bn2.running_var + bn2.eps)
        second.conv_tr.weight.copy_(conv2.weight * scale[:, None, None, None])
        _identity_bn(second.bn_r)
        second.bn_r.bias.copy_(bn2.bias - bn2.running_mean * scale)
    r, _ = second(*first(x, torch.randn_like(x)))
    assert (r - expected).abs().max() < TOL


def test_with_transient_kernels_zeroed_resnet_init_is_a_one_layer_residual_stream():
    torch.manual_seed(2)
    layer = ResNetInitConv2d(6, 6, residual_channels=3).double()
    x = torch.randn(2, 6, 7, 7, dtype=torch.float64)
    W_rr = split_kernel(layer.weight, 3, 3)[0]  # noqa: N806
    with zero_stream(layer, "transient", "read"):
        r_out = layer(x)[:, :3]
    assert (r_out - (x[:, :3] + F.conv2d(x[:, :3], W_rr, padding=1))).abs().max() < TOL


def test_weight_decay_pulls_the_effective_kernel_to_the_partial_identity():
    torch.manual_seed(3)
    layer = ResNetInitConv2d(4, 6, stride=2)
    assert all(p is layer.weight for p in layer.parameters())
    assert "identity" not in dict(layer.named_parameters()) and "identity" not in layer.state_dict()
    before = layer.effective_weight().detach().clone()
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, weight_decay=0.5)
    (0 * layer(torch.randn(2, 4, 8, 8)).sum()).backward()
    opt.step()
    after = layer.effective_weight().detach()
    identity = layer.identity
    assert identity.sum() == 2 and identity[1, 1, 1, 1] == 1  # 4 // 2 residual channels, centre taps
    torch.testing.assert_close(after - identity, 0.95 * (before - identity))
    assert (after - identity).norm() < (before - identity).norm()
    assert after.norm() > 0.95 * before.norm()  # not shrunk towards zero


def test_bf16_autocast_explicit_form_is_closer_to_float64():
    torch.manual_seed(4)
    fused = ResNetInitConv2d(16, 16, form="fused")
    with torch.no_grad():
        fused.weight.mul_(1e-2)  # small learned W: 1 + w rounds away in bfloat16
    explicit = ResNetInitConv2d(16, 16, form="explicit")
    explicit.weight.data.copy_(fused.weight.data)
    auto = ResNetInitConv2d(16, 16)
    auto.weight.data.copy_(fused.weight.data)
    x = torch.randn(2, 16, 8, 8)
    ref = ResNetInitConv2d(16, 16, form="fused").double()
    ref.weight.data.copy_(fused.weight.data.double())
    expected = ref(x.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        err_fused = (fused(x).double() - expected).abs().max()
        err_explicit = (explicit(x).double() - expected).abs().max()
        err_auto = (auto(x).double() - expected).abs().max()
    assert err_explicit < err_fused / 4
    assert err_auto == err_explicit


@pytest.mark.parametrize("reading", ["write", "read"])
@pytest.mark.parametrize("stream", ["residual", "transient"])
def test_zero_stream_round_trips_and_changes_the_output(stream, reading):
    torch.manual_seed(5)
    layer = ResNetInitConv2d(5, 7, residual_channels=2)
    block = GeneralizedResidualBlock(2, 3, 3, 4).eval()
    x = torch.randn(2, 5, 6, 6)
    for module, run in ((layer, lambda: layer(x)), (block, lambda: torch.cat(block(x[:, :2], x[:, 2:]), 1))):
        before_state = {k: v.clone() for k, v in module.state_dict().items()}
        before = run()
        with zero_stream(module, stream, reading):
            zeroed = run()
        assert not torch.equal(zeroed, before)
        assert all(torch.equal(v, module.state_dict()[k]) for k, v in before_state.items())
        assert torch.equal(run(), before)
    # The identity stays: with every learned kernel zeroed the residual channels pass through.
    with zero_stream(layer, "residual", "write"), zero_stream(layer, "transient", "write"):
        out = layer(x)
    assert torch.equal(out[:, :2], x[:, :2]) and not out[:, 2:].any()


def test_zero_stream_restores_after_an_exception():
    layer = ResNetInitLinear(6, 6)
    before = layer.weight.detach().clone()
    with pytest.raises(RuntimeError), zero_stream(layer, "residual", "read"):
        assert not layer.weight[:, :3].any()
        raise RuntimeError("interrupted")
    assert torch.equal(layer.weight, before)


def test_resnet_init_layers_in_forward_order():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), ResNetInitConv2d(4, 4), nn.ReLU(), ResNetInitConv2d(4, 8))
    assert resnet_init_layers(model) == [model[1], model[3]]


@pytest.mark.parametrize("kwargs", [
    dict(in_channels=4, out_channels=4, residual_channels=5),
    dict(in_channels=8, out_channels=2, residual_channels=4),
    dict(in_channels=0, out_channels=4),
    dict(in_channels=4, out_channels=4, form="half"),
    dict(in_channels=4, out_channels=4, padding=2),
])
def test_impossible_layers_raise_user_error(kwargs):
    with pytest.raises(UserError):
        ResNetInitConv2d(**kwargs)


def test_impossible_stream_arguments_raise_user_error():
    with pytest.raises(UserError, match="stream"), zero_stream(ResNetInitConv2d(4, 4), "both"):
        pass
    with pytest.raises(UserError, match="identity shortcut"):
        GeneralizedResidualBlock(4, 4, residual_out=2)


@pytest.mark.parametrize("linear", [False, True], ids=["conv", "linear"])
def test_a_new_layer_holds_a_plain_msr_draw_and_the_identity_only_in_its_buffer(linear):
    """The layer on its own (as the models build it, before their init pass): W is an MSR draw with zero
    mean on the identity taps too; W + I adds the identity once."""
    torch.manual_seed(4)
    layer = ResNetInitLinear(96, 96) if linear else ResNetInitConv2d(96, 96)
    w = layer.weight.detach()
    he_std = (2.0 / w[0].numel()) ** 0.5
    assert 0.8 * he_std < w.std().item() < 1.2 * he_std
    taps = w[range(48), range(48)] if linear else w[range(48), range(48), 1, 1]
    assert abs(taps.mean().item()) < 6 * he_std / 48**0.5, taps.mean().item()
    expected = torch.zeros_like(w)
    if linear:
        expected[range(48), range(48)] = 1.0
    else:
        expected[range(48), range(48), 1, 1] = 1.0
    torch.testing.assert_close(layer.effective_weight().detach() - w, expected)  # W + I - W rounds


@pytest.mark.parametrize("reading", ["write", "read"])
@pytest.mark.parametrize("stream", ["residual", "transient"])
def test_zero_stream_zeroes_exactly_the_kernels_of_its_reading(stream, reading):
    """Figure 3's two readings, kernel by kernel: "write" zeroes W_rr and W_tr for the residual stream (W_rt
    and W_tt for the transient), "read" zeroes W_rr and W_rt (W_tr and W_tt); nothing else changes."""
    expected = {("residual", "write"): {"rr", "tr"}, ("residual", "read"): {"rr", "rt"},
                ("transient", "write"): {"rt", "tt"}, ("transient", "read"): {"tr", "tt"}}[stream, reading]
    torch.manual_seed(7)
    layer = ResNetInitConv2d(5, 7, residual_channels=2, residual_out_channels=3)
    block = GeneralizedResidualBlock(2, 3, 3, 4, shortcut="projection")
    with zero_stream(layer, stream, reading):
        kernels = dict(zip(("rr", "tr", "rt", "tt"), split_kernel(layer.weight.detach(), 2, 3), strict=True))
        assert {k for k, w in kernels.items() if not w.any()} == expected
        assert all(w.all() for k, w in kernels.items() if k not in expected)
    with zero_stream(block, stream, reading):
        zeroed = {k for k in ("rr", "tr", "rt", "tt") if not getattr(block, f"conv_{k}").weight.any()}
        assert zeroed == expected and block.projection.weight.all()  # the shortcut stands in for I
