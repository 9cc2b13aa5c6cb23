"""Every registered architecture builds, runs, trains and counts parameters as the paper says (Tables 1-5).

Parametrized over the registry with a non-default number of classes (timm's habit); parameter counts prove
the paper's "no additional parameters" (Section 2) and state the wide RiR's exact size; bad options are a
one-line `UserError`, and exit code 2 on the command line.
"""

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from rir.catalog import paper_models
from rir.errors import UserError
from rir.layers import ResNetInitConv2d, resnet_init_layers
from rir.models import create_model, list_models, model_summary
from rir.models.resnet import BASE_WIDTH, WIDE_WIDTH

torch.set_num_threads(1)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list_models())
def test_every_model_runs_and_gets_a_gradient_everywhere(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.logsumexp(dim=1).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", list_models())
def test_width_scale_makes_tiny_models_for_smoke_runs(name):
    model = create_model(name, num_classes=3, width_scale=0.125)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    assert n_params(model) < n_params(create_model(name)) / 20


def test_registry_names_the_paper_models():
    assert list_models()[:10] == ["cnn_18", "resnet_init_18", "resnet_18", "rir_18", "cnn_18_wide",
                                  "resnet_init_18_wide", "resnet_18_wide", "rir_18_wide", "all_cnn_c",
                                  "all_cnn_c_resnet_init"]  # then the readings of RiR (test_readings.py)


def _projections(width: int) -> int:
    """Two dimension-increasing blocks, each with a 3x3 projection (w -> 2w, 2w -> 4w) and its BatchNorm."""
    return sum(9 * w * 2 * w + 2 * 2 * w for w in (width, 2 * width))


@pytest.mark.parametrize("suffix, width", [("", BASE_WIDTH), ("_wide", WIDE_WIDTH)])
def test_parameter_counts_differ_only_by_shortcut_projections(suffix, width):
    count = {family: n_params(create_model(family + "_18" + suffix)) for family in
             ("cnn", "resnet_init", "resnet", "rir")}
    assert count["cnn"] == count["resnet_init"]
    assert count["resnet"] == count["rir"]
    assert count["rir"] - count["cnn"] == _projections(width)
    # Identity (zero-padded) shortcuts add nothing at all: the paper's "no additional parameters".
    assert n_params(create_model("rir_18" + suffix, shortcut="identity")) == count["cnn"]


def test_wide_rir_parameter_count():
    # 3x3 kernels: 3*96 + 2 blocks x 2 x 96*96 + (96*192 + 192*192) + 2 x 2 x 192*192 + (192*384 + 384*384)
    # + 2 x 2 x 384*384, times 9; BatchNorm: 2 x (96 stem + 16 layers); 1x1 classifier 384*10 + 10.
    kernels = 9 * (3 * 96 + 4 * 96 * 96 + 96 * 192 + 5 * 192 * 192 + 192 * 384 + 5 * 384 * 384)
    batchnorm = 2 * (96 + 4 * 96 + 6 * 192 + 6 * 384)
    assert (kernels, batchnorm) == (9_458_208, 7_872)
    assert n_params(create_model("cnn_18_wide")) == kernels + batchnorm + 3_850 == 9_469_930
    assert n_params(create_model("rir_18_wide")) == 9_469_930 + _projections(96) == 10_300_522
    assert n_params(create_model("all_cnn_c")) == n_params(create_model("all_cnn_c_resnet_init"))


def test_model_summary_reports_params_flops_depth():
    cnn, rin = model_summary("cnn_18"), model_summary("resnet_init_18")
    assert set(cnn) == {"params", "flops_per_image", "depth"}
    assert cnn == rin  # ResNet Init costs nothing extra: same kernels, same FLOPs
    assert cnn["depth"] == 18 and model_summary("all_cnn_c")["depth"] == 9
    assert cnn["flops_per_image"] > 2 * 32 * 32 * 9 * 3 * BASE_WIDTH  # at least the input conv


@pytest.mark.parametrize("name", ["rir_18", "resnet_18"])
def test_deep_residual_blocks_for_table_4_and_figure_4(name):
    model = create_model(name, blocks=[1, 2], layers_per_block=3, width=8)
    assert model_summary(name, blocks=[1, 2], layers_per_block=3, width=8)["depth"] == 2 + 3 * 3
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    if name == "rir_18":
        layers = resnet_init_layers(model)
        assert len(layers) == 9
        # Forward order; stride 2 sits in the first layer of the dimension-increasing block.
        assert [m.stride for m in layers] == [1, 1, 1, 2, 1, 1, 1, 1, 1]
        assert (layers[3].in_channels, layers[3].out_channels, layers[3].residual_channels) == (8, 16, 4)


def test_fused_and_explicit_forms_give_the_same_model():
    torch.manual_seed(1)
    model = create_model("rir_18", width=6, blocks=[1, 1]).double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    outs = []
    for form in ("fused", "explicit"):
        for m in resnet_init_layers(model):
            m.form = form
        outs.append(model(x))
    assert (outs[0] - outs[1]).abs().max() < 1e-10


def _zero_block_layers(block: nn.Module) -> None:
    with torch.no_grad():
        for p in block.layers.parameters():
            p.zero_()  # the last BatchNorm's weight and bias are zero: the block's layers output 0


@pytest.mark.parametrize("outer", ["both", "residual"])
def test_rir_outer_shortcut_feeds_the_chosen_streams(outer):
    model = create_model("rir_18", width=4, blocks=[1, 1], shortcut="identity", outer_shortcut=outer).eval()
    block = model.body[1]  # 4 -> 8 channels, stride 2: streams (2, 2) -> (4, 4)
    _zero_block_layers(block)
    x = torch.randn(2, 4, 8, 8)
    out = block(x)
    sub = x[..., ::2, ::2]
    assert torch.equal(out[:, :2], sub[:, :2]) and not out[:, 2:4].any()  # r zero-padded into r'
    if outer == "both":
        assert torch.equal(out[:, 4:6], sub[:, 2:4]) and not out[:, 6:].any()  # t zero-padded into t'
    else:
        assert not out[:, 4:].any()


def test_init_options_and_all_cnn_c_layout():
    torch.manual_seed(2)
    msr = create_model("rir_18", width=4, blocks=[1])
    torch.manual_seed(2)
    xavier = create_model("rir_18", width=4, blocks=[1], init="xavier")
    assert not torch.equal(msr.stem[0].weight, xavier.stem[0].weight)
    # ResNet Init initializes W alone; the identity is added on top.
    layer = resnet_init_layers(msr)[0]
    torch.testing.assert_close(layer.effective_weight() - layer.weight, layer.identity)
    assert layer.weight.std() < 1  # MSR: std sqrt(2 / (9 * 4)), not the identity's 1
    model = create_model("all_cnn_c_resnet_init", dropout=0.5)
    assert model.features(torch.randn(1, 3, 32, 32)).shape == (1, 192, 6, 6)
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 2
    assert sum(isinstance(m, ResNetInitConv2d) for m in model.modules()) == 7


@pytest.mark.parametrize("name, overrides, named", [
    ("nope", {}, "nope"),
    ("rir_18", {"colour": "red"}, "colour"),
    ("cnn_18", {"outer_shortcut": "both"}, "outer_shortcut"),
    ("rir_18", {"width": 0}, "width"),
    ("rir_18", {"blocks": [2, 0]}, "blocks"),
    ("rir_18", {"blocks": 3}, "blocks"),
    ("resnet_18", {"layers_per_block": 0}, "layers_per_block"),
    ("resnet_18", {"shortcut": "gated"}, "shortcut"),
    ("rir_18", {"init": "orthogonal"}, "init"),
    ("all_cnn_c", {"dropout": 1.0}, "dropout"),
    ("all_cnn_c", {"num_classes": 0}, "num_classes"),
    ("all_cnn_c", {"width_scale": 0}, "width_scale"),
])
def test_impossible_models_raise_user_error_naming_the_fault(name, overrides, named):
    with pytest.raises(UserError, match=named) as err:
        create_model(name, **overrides)
    assert "\n" not in str(err.value)


def _rir(*args):
    return subprocess.run([sys.executable, "-m", "rir", "models", *args], capture_output=True, text=True)


def test_rir_models_prints_every_model():
    proc = _rir()
    assert proc.returncode == 0, proc.stderr
    assert all(name in proc.stdout for name in list_models())
    assert "10,300,522" in proc.stdout
    rows = json.loads(_rir("cnn_18", "--json", "--num-classes", "100").stdout)
    assert rows[0]["name"] == "cnn_18" and rows[0]["depth"] == 18


@pytest.mark.parametrize("args, named", [(["nope"], "nope"), (["--num-classes", "0"], "num_classes"),
                                         (["--bogus"], "--bogus")])
def test_rir_models_bad_input_is_one_line_and_exit_2(args, named):
    proc = _rir(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in proc.stderr


def _two_stream(name: str) -> bool:
    return name.startswith("rir") or "resnet_init" in name


def _outer_shortcut(name: str) -> bool:
    """ResNet and RiR have one; so do the readings, except weiaicunzai's, whose shortcut is commented out."""
    if name == "rir_18_wide_weiaicunzai":
        return False
    return name.startswith("rir") or (name.startswith("resnet") and "resnet_init" not in name)


@pytest.mark.parametrize("name", paper_models())
def test_each_paper_model_is_built_from_the_layers_its_name_says(name):
    """Figure 2: CNN and ResNet Init, ResNet and RiR have the same parameter counts, so only the layers tell
    them apart. Every 3x3 conv inside a block of a ResNet Init or RiR net is a ResNet Init layer (none in a
    CNN or ResNet), with equal streams; ResNet and RiR have an outer shortcut around every block (CNN and
    ResNet Init none)."""
    from rir.layers import resnet_init_layers
    from rir.models.resnet import ResidualBlock

    with torch.device("meta"):
        model = create_model(name)
    weighted = (torch.nn.Conv2d, torch.nn.Linear)
    plain = [m for n, m in model.named_modules()
             if isinstance(m, weighted) and "shortcut" not in n.split(".")]
    head = [m for m in model.classifier.modules() if isinstance(m, weighted)]
    init_layers = resnet_init_layers(model)
    if _two_stream(name):
        # The first conv reads RGB and the classifier (one conv, or a reading's longer head) writes class
        # scores: those stay plain layers; every other layer of the depth is a ResNet Init layer.
        assert init_layers and len(init_layers) == model_summary(name)["depth"] - 1 - len(head), name
        assert len(plain) == 1 + len(head), [type(c).__name__ for c in plain]
        # "equal numbers of filters in the residual and transient streams" (Section 3), in and out.
        assert all((layer.residual_channels, layer.residual_out_channels) ==
                   (layer.in_channels // 2, layer.out_channels // 2) for layer in init_layers), name
    else:
        assert init_layers == [], name
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    assert all((b.shortcut is not None) == _outer_shortcut(name) for b in blocks), name
    assert bool(blocks) or name.startswith("all_cnn_c")


@pytest.mark.parametrize("name", [n for n in paper_models() if _two_stream(n)])
def test_resnet_init_weights_start_as_plain_msr_draws_with_the_identity_kept_apart(name):
    """Appendix 6.1: "concatenate weight matrices initialized by any existing scheme and then add a partial
    identity". The learned W starts as an MSR draw (zero mean, std sqrt(2 / fan_in)), on the identity's own
    taps too; the identity lives in the buffer alone: the effective kernel starts at W0 + I, not W0 + 2I."""
    from rir.layers import resnet_init_layers

    torch.manual_seed(0)
    for layer in resnet_init_layers(create_model(name)):
        w = layer.weight.detach()
        fan_in = w[0].numel()
        he_std = (2.0 / fan_in) ** 0.5
        assert 0.7 * he_std < w.std().item() < 1.3 * he_std, (name, w.std().item(), he_std)
        n = layer.residual_channels
        centre = tuple(s // 2 for s in w.shape[2:])
        taps = torch.stack([w[(i, i, *centre)] for i in range(n)])
        assert abs(taps.mean().item()) < 6 * he_std / n**0.5, (name, taps.mean().item())
        expected = torch.zeros_like(w)
        for i in range(n):
            expected[(i, i, *centre)] = 1.0
        torch.testing.assert_close(layer.effective_weight().detach() - w, expected)  # W + I - W rounds
