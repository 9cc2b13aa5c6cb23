"""The public readings of RiR (rir/models/readings.py, rir.report.readings.READINGS): each one proven.

Where a reading has a PyTorch implementation on PyPI (pytorchcv's `rir_cifar10` / `rir_cifar100`, a
test-only dependency), its weights are mapped onto our model and the outputs compared in float64. pytorchcv's
`model_provider` imports torchvision, so its `rir_cifar` module, which imports torch alone, is imported by
itself. Where no package exists (treeano is Theano, nutszebra's Chainer, weiaicunzai's a script), the
structure is pinned instead: exact parameter counts with their arithmetic, which streams each outer shortcut
feeds (a zero-weight probe: with a block's own layers zeroed, what comes out is the shortcut alone), where
the last ReLU sits, which layer strides and what the head is.
"""

import pytest
import torch
from torch import nn

from rir.catalog import list_models, model_defaults, models
from rir.config import expand_runs, load_params
from rir.layers import ResNetInitConv2d, merge_kernels, resnet_init_layers
from rir.models import create_model
from rir.report.readings import READINGS

torch.set_num_threads(1)
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_reading_is_a_registered_model_with_a_source():
    names = [r.model for r in READINGS]
    assert len(set(names)) == len(names) and READINGS[0].name == "authors" and names[0] == "rir_18_wide"
    assert all(r.source and r.origin.endswith(".") for r in READINGS)
    # The registry lists the paper's 10 models first, then every reading that is not one of them (its file).
    readings = [n for n, m in models().items() if m.path == "rir/models/readings.py"]
    others = [n for n in names if n not in list_models()[:10]]
    assert list_models()[10:10 + len(readings)] == readings == others


# 3x3 kernels of the wide net (input 3->96; two layers per block at 96, 96, 192, 192, 192, 384, 384, 384)
# + BatchNorm + the 1x1 classifier: the nets without any projection (FACTS.md's "about 9.5 M").
NO_PROJECTION = 9_469_930
PROJECTIONS = 9 * 96 * 192 + 2 * 192 + 9 * 192 * 384 + 2 * 384  # 3x3 conv + BN, 96->192 and 192->384
RESIDUAL_PROJECTIONS = 9 * 48 * 96 + 2 * 96 + 9 * 96 * 192 + 2 * 192  # the same over the residual stream
MLP_HEAD = 9 * 384 * 100 + 2 * 100 + 900 * 450 + 450 + 450 * 10 + 10  # weiaicunzai's head


@pytest.mark.parametrize("model, count", [
    ("rir_18_wide", NO_PROJECTION + PROJECTIONS),  # 10,300,522
    ("rir_18_wide_residual", NO_PROJECTION + RESIDUAL_PROJECTIONS),  # 9,677,866
    ("resnet_init_18_wide", NO_PROJECTION),
    ("rir_18_wide_identity", NO_PROJECTION),  # 9,469,930: the "about 9.5 M"
    ("resnet_18_wide", NO_PROJECTION + PROJECTIONS),
    ("resnet_18_wide_he", NO_PROJECTION + PROJECTIONS),  # a ReLU has no parameters
    ("rir_18_wide_nutszebra", NO_PROJECTION - 10 + 2 * 10),  # no projections; head bias -> BatchNorm
    ("rir_18_wide_weiaicunzai", NO_PROJECTION - (384 * 10 + 10) + MLP_HEAD),  # 10,221,840
])
def test_reading_parameter_counts(model, count):
    with torch.device("meta"):
        assert n_params(create_model(model)) == count
    assert (NO_PROJECTION + PROJECTIONS, NO_PROJECTION + RESIDUAL_PROJECTIONS) == (10_300_522, 9_677_866)


# --- pytorchcv: weight for weight -------------------------------------------------------------------------

def _pytorchcv(num_classes: int) -> nn.Module:
    rir_cifar = pytest.importorskip("pytorchcv.models.rir_cifar")  # the module alone: no torchvision
    net = getattr(rir_cifar, f"rir_cifar{num_classes}")()
    gen = torch.Generator().manual_seed(num_classes)
    with torch.no_grad():  # non-trivial BatchNorm statistics and affines, so every one of them is checked
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return net.double().eval()


def map_pytorchcv(src: nn.Module, ours: nn.Module) -> None:
    """Load pytorchcv's CIFARRiR into our resnet_init_18_wide (eval-mode function space).

    Each RiRUnit is one generalized residual block: res_pass_conv is W_rr, trans_cross_conv W_tr (reads t,
    writes r), res_cross_conv W_rt, trans_pass_conv W_tt. Its residual shortcut is x_res (our partial
    identity I) or, where dimensions grow, a learned 1x1 conv P, which folds into W_rr's centre tap: W_rr +
    P - I. Its head, a 1x1 conv C and BatchNorm, folds into our biased 1x1 conv (eval mode).
    """
    f = src.features
    bns = [m for m in ours.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        init = f.init_block
        ours.stem[0].weight.copy_(torch.cat([init.res_conv.conv.weight, init.trans_conv.conv.weight]))
        _copy_bn(ours.stem[1], init.res_conv.bn, init.trans_conv.bn)
        units = [u for name, u in f.named_modules() if type(u).__name__ == "RiRUnit"]
        layers = resnet_init_layers(ours)
        assert len(units) == len(layers) == 16
        for unit, layer, bn in zip(units, layers, bns[1:], strict=True):
            w_rr = unit.res_pass_conv.weight.clone()
            if unit.resize_identity:
                w_rr[:, :, 1, 1] += unit.identity_conv.weight[:, :, 0, 0]
                w_rr -= layer.identity[:w_rr.shape[0], :w_rr.shape[1]]
            layer.weight.copy_(merge_kernels(w_rr, unit.trans_cross_conv.weight, unit.res_cross_conv.weight,
                                             unit.trans_pass_conv.weight))
            _copy_bn(bn, unit.res_postactiv.bn, unit.trans_postactiv.bn)
        head = src.output.final_conv
        scale = head.bn.weight / torch.sqrt(head.bn.running_var + head.bn.eps)
        ours.classifier.weight.copy_(head.conv.weight * scale[:, None, None, None])
        ours.classifier.bias.copy_(head.bn.bias - scale * head.bn.running_mean)


def _copy_bn(dst: nn.BatchNorm2d, *parts: nn.BatchNorm2d) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).copy_(torch.cat([getattr(p, name) for p in parts]))
    assert all(p.eps == dst.eps for p in parts)


@pytest.mark.parametrize("num_classes, count", [(10, 9_492_980), (100, 9_527_720)])
def test_pytorchcv_rir_equals_our_resnet_init_net_in_float64(num_classes, count):
    """The "no outer shortcut" reading: pytorchcv's RiR is our ResNet Init net, weight for weight."""
    src = _pytorchcv(num_classes)
    ours = create_model("resnet_init_18_wide", num_classes=num_classes).double().eval()
    # Its extra parameters are exactly the foldable ones: two 1x1 projections and the head's BatchNorm.
    assert n_params(src) == count == n_params(ours) + 48 * 96 + 96 * 192 + num_classes
    map_pytorchcv(src, ours)
    assert not any(type(m).__name__ == "ResidualBlock" and m.shortcut is not None for m in ours.modules())
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = src(x), ours(x)
    assert want.shape == got.shape == (2, num_classes)
    assert (want - got).abs().max() <= 1e-10 * max(1.0, want.abs().max().item())


# --- the others: structure pinned ------------------------------------------------------------------------

def _probe(model: str, block: int) -> set[str]:
    """Which streams block `block`'s outer shortcut carries where, as {"r->r'", "t->t'", ...}: the block's
    own layers are zeroed (their last BatchNorm then outputs 0), so its output is the shortcut alone; r and t
    are fed one at a time. Tiny widths (width_scale) keep it fast; the wiring does not depend on the width."""
    net = create_model(model, width_scale=0.125).eval()  # width 12: streams of 6, 12, 24 channels
    blk = net.body[block]
    with torch.no_grad():
        for p in blk.layers.parameters():
            p.zero_()
    n_in = blk.layers[0][0].in_channels
    n_out = blk.layers[-1][0].out_channels
    flows = set()
    for src, part in (("r", slice(0, n_in // 2)), ("t", slice(n_in // 2, n_in))):
        x = torch.zeros(1, n_in, 8, 8)
        x[:, part] = torch.rand(1, part.stop - part.start, 8, 8) + 0.5  # > 0: survives any ReLU
        with torch.no_grad():
            out = blk(x)
        for dst, out_part in (("r'", out[:, :n_out // 2]), ("t'", out[:, n_out // 2:])):
            if out_part.abs().max() > 0:
                flows.add(f"{src}->{dst}")
    return flows


SAME = {"r->r'", "t->t'"}
ALL = {"r->r'", "r->t'", "t->r'", "t->t'"}


@pytest.mark.parametrize("model, grows, keeps", [
    ("rir_18_wide", ALL, SAME),  # a projection over x = [r; t] where dimensions grow, identity elsewhere
    ("rir_18_wide_residual", {"r->r'"}, {"r->r'"}),
    ("resnet_init_18_wide", set(), set()),
    ("rir_18_wide_identity", SAME, SAME),
    ("rir_18_wide_nutszebra", {"r->r'"}, {"r->r'"}),
    ("rir_18_wide_weiaicunzai", set(), set()),
])
def test_which_streams_each_outer_shortcut_feeds(model, grows, keeps):
    # body[2] is the first block of stage 2 (stride 2, channels double); body[3] keeps its dimensions.
    assert (_probe(model, 2), _probe(model, 3)) == (grows, keeps)


def test_where_the_last_relu_sits():
    """none (the authors'): the sum is the output and can be negative; after (He et al.): a ReLU follows the
    sum; before (nutszebra): the layers end in a ReLU and the shortcut is added after it."""
    torch.manual_seed(0)
    x = torch.randn(2, 6, 8, 8)
    outs = {}
    for model in ("resnet_18_wide", "resnet_18_wide_he", "rir_18_wide", "rir_18_wide_nutszebra"):
        blk = create_model(model, width_scale=0.0625).eval().body[1]  # 6 channels, identity shortcut
        with torch.no_grad():
            outs[model] = (blk(x), blk.layers(x), blk.shortcut(x[:, :blk.shortcut_in]))
    assert outs["resnet_18_wide"][0].min() < 0 and outs["rir_18_wide"][0].min() < 0
    assert outs["resnet_18_wide"][1].min() < 0  # no ReLU at the end of the layers either
    he, layers, short = outs["resnet_18_wide_he"]
    assert he.min() == 0 and torch.equal(he, torch.relu(layers + short))
    nut, layers, short = outs["rir_18_wide_nutszebra"]
    assert layers.min() == 0 and nut.min() < 0  # ReLU inside the layers, nothing after the sum
    assert torch.equal(nut[:, :3], layers[:, :3] + short) and torch.equal(nut[:, 3:], layers[:, 3:])


def test_which_layer_strides_and_the_heads():
    ours, nut, wei = (create_model(m, num_classes=10) for m in
                      ("rir_18_wide", "rir_18_wide_nutszebra", "rir_18_wide_weiaicunzai"))
    strides = [[conv.stride for conv in (seq[0] for seq in net.body[2].layers)] for net in (ours, nut)]
    assert strides == [[2, 1], [1, 2]]  # the authors' first layer strides, nutszebra's last
    assert [c.out_channels for c in (seq[0] for seq in nut.body[2].layers)] == [192, 192]  # grows first
    assert isinstance(ours.classifier, nn.Conv2d) and ours.classifier.bias is not None
    assert [type(m) for m in nut.classifier] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    linears = [m for m in wei.classifier if isinstance(m, nn.Linear)]
    assert wei.classifier[0][0].kernel_size == (3, 3) and wei.classifier[0][0].stride == (2, 2)
    assert [(m.in_features, m.out_features) for m in linears] == [(900, 450), (450, 10)]
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in wei.classifier)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert nut.eval()(x).min() >= 0  # nutszebra's logits pass a ReLU
        assert wei.eval()(x).shape == (2, 10)
    # ResNet Init layers are the same kind in every two-stream reading (Figure 3 ablates any of them).
    assert all(isinstance(m, ResNetInitConv2d) for m in resnet_init_layers(nut))


@pytest.mark.parametrize("reading", READINGS, ids=lambda r: r.name)
def test_tiny_reading_trains_a_step_everywhere(reading):
    torch.manual_seed(0)
    net = create_model(reading.model, num_classes=7, width_scale=0.125)
    out = net(torch.randn(4, 3, 32, 32))
    out.logsumexp(dim=1).sum().backward()
    assert out.shape == (4, 7) and all(p.grad is not None for p in net.parameters())


# --- the family in params.yaml ---------------------------------------------------------------------------

def test_readings_family_trains_every_reading_and_shares_table_3_runs():
    params = load_params(ROOT / "params.yaml")
    family = params["optional_families"]["readings"]
    assert family["models"] == [r.model for r in READINGS]
    runs = expand_runs(params, "paper", optional=True)
    mine = {k: r for k, r in runs.items() if "readings" in r.families}
    assert len(mine) == len(READINGS) * 2 * 3  # both datasets, 3 seeds
    assert {r.dataset for r in mine.values()} == {"cifar10", "cifar100"}
    assert all(model_defaults(r.model)["width"] == 96 for r in mine.values())  # the wide nets
    default = expand_runs(params, "paper")
    shared = {r.model for k, r in mine.items() if k in default}
    # The readings that are the paper's models are Table 3's runs (same run ids: trained once).
    assert shared == {"rir_18_wide", "resnet_init_18_wide", "resnet_18_wide"}
    smoke = {k: r for k, r in expand_runs(params, "smoke", optional=True).items() if "readings" in r.families}
    new = set(smoke) - set(expand_runs(params, "smoke"))
    assert 1 <= len(new) <= 2  # the smoke slice adds one or two tiny runs


def test_rir_plan_prices_the_readings_family_beyond_the_30_percent_of_the_default_target():
    """Why `readings` is optional (params.yaml): its 30 new wide runs add over 30 % to the paper profile."""
    from rir.plan import DEFAULT_CARD, _card_estimate, format_plan

    estimate = _card_estimate(load_params(ROOT / "params.yaml"), "paper", DEFAULT_CARD)
    readings = estimate["optional"]["readings"]
    assert readings["new_runs"] == (len(READINGS) - 3) * 2 * 3 and readings["percent_of_default"] > 30
    text = format_plan({"runs": [], "total_device_hours": 0.0, "throughput_from": "-", "profile": "paper",
                        "data": "real", "card_estimate": estimate})
    assert f"optional family readings (`snakemake readings`): {readings['new_runs']} runs" in text
