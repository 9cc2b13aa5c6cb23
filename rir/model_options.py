"""The options every registered model accepts, with their defaults: plain data, no torch.

`rir.models` builds the networks and registers each factory under a name of this table (its import fails if
the two disagree), so this is the one place a default is decided. It lives outside the `rir.models`
package because reading it must not import torch: the Snakefile and `rir dvc` expand params.yaml into run
ids (`rir.config`), which drop overrides equal to a model's defaults, and torch's import alone took about
2 s of every Snakemake start (every cluster job starts one).

Widths, decided in this one place:
- `WIDE_WIDTH` = 96: the "18-layer + wide" net of Tables 1-2 (96, 192, 384 channels; see FACTS.md).
- `BASE_WIDTH` = 32: the paper does not give Table 3's widths. 32, 64, 128 make each stream of a
  two-stream net 16, 32, 64 channels, the widths of He et al.'s CIFAR ResNets, and keep the paper's
  "Because each stream uses only half the total filters, we investigate ... a wider 18-layer network"
  true of the wide net (3x). Override with `width=`.
- `width_scale` (every model, default 1) multiplies every channel count, for tiny smoke-test nets.

The public readings of RiR (`READINGS`, issue 15): the paper never draws its nets completely, and the public
re-implementations disagree. Each reading is a registered model (the family `readings` of params.yaml
trains them side by side); where a reading is one of the paper's models it is that model, so its runs are
Table 3's. Options that tell the readings apart, each with the authors' choice as its default:
- `outer_shortcut`: which streams the block-level shortcut of RiR feeds, "both" (treeano) or "residual".
- `shortcut`: "projection" (3x3 conv + BatchNorm, Section 3) or "identity" (zero-padded) where dimensions
  grow.
- `sum_relu`: where the block's last ReLU sits: "none" (treeano: removed, nothing after the sum), "after"
  (He et al. 2015: ReLU after the addition) or "before" (nutszebra: the last layer keeps it, the sum
  follows).
- `stride_at`: the layer of a downsampling block that has stride 2, "first" (treeano, He et al.) or "last"
  (nutszebra; the channels still grow in the first layer).
- `head`: "conv" (1x1 conv to the classes, global average pooling: FACTS.md), "conv_bn_relu" (nutszebra: the
  same with BatchNorm and ReLU on the class maps) or "mlp" (weiaicunzai: 3x3/2 conv to 100 maps, BatchNorm,
  ReLU, then 900 -> 450 -> classes with ReLU and dropout 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

from rir.errors import UserError

BASE_WIDTH = 32  # Table 3's first-stage channels (both streams together); reason in the module docstring
WIDE_WIDTH = 96  # Tables 1-2, "18-layer + wide"
BLOCKS_18 = (2, 3, 3)  # blocks per stage: 8 blocks x 2 layers + input conv + classifier = 18 layers

# `init`: MSR (He et al.) is the paper's choice for every weight tensor, Xavier the grid-searched
# alternative (Section 3).
_CNN = dict(width=BASE_WIDTH, blocks=BLOCKS_18, layers_per_block=2, init="msr", width_scale=1.0,
            stride_at="first", head="conv")
_WIDE = {**_CNN, "width": WIDE_WIDTH}
_RESIDUAL = dict(shortcut="projection",  # for dimension-increasing blocks; identity elsewhere (Section 3)
                 sum_relu="none")  # the authors' code: no ReLU after the outer shortcut's sum
_RIR = dict(outer_shortcut="both")  # the authors' code; see rir.models.resnet
_ALL_CNN = dict(init="msr", dropout=0.0, width_scale=1.0)

# Every model in the paper's order (Table 3, Tables 1-2, Table 5), with its options and their defaults.
MODEL_OPTIONS: dict[str, dict] = {
    "cnn_18": _CNN,
    "resnet_init_18": _CNN,
    "resnet_18": {**_CNN, **_RESIDUAL},
    "rir_18": {**_CNN, **_RESIDUAL, **_RIR},
    "cnn_18_wide": _WIDE,
    "resnet_init_18_wide": _WIDE,
    "resnet_18_wide": {**_WIDE, **_RESIDUAL},
    "rir_18_wide": {**_WIDE, **_RESIDUAL, **_RIR},
    "all_cnn_c": _ALL_CNN,
    "all_cnn_c_resnet_init": _ALL_CNN,
    # The readings of RiR that are not one of the paper's models (READINGS below says where each comes from).
    "rir_18_wide_residual": {**_WIDE, **_RESIDUAL, **_RIR, "outer_shortcut": "residual"},
    "rir_18_wide_identity": {**_WIDE, **_RESIDUAL, **_RIR, "shortcut": "identity"},
    "resnet_18_wide_he": {**_WIDE, **_RESIDUAL, "sum_relu": "after"},
    "rir_18_wide_nutszebra": {**_WIDE, **_RESIDUAL, **_RIR, "outer_shortcut": "residual",
                              "shortcut": "identity", "sum_relu": "before", "stride_at": "last",
                              "head": "conv_bn_relu"},
    "rir_18_wide_weiaicunzai": {**_WIDE, "head": "mlp"},
}
CHOICES = dict(init=("msr", "xavier"), shortcut=("projection", "identity"),
               outer_shortcut=("both", "residual"), sum_relu=("none", "after", "before"),
               stride_at=("first", "last"), head=("conv", "conv_bn_relu", "mlp"))

TREEANO = "diogo149/treeano, treeano/sandbox/nodes/resnet.py"
NUTSZEBRA = "nutszebra/resnet_in_resnet, resnet_in_resnet.py (Chainer)"
PYTORCHCV = "osmr/imgclsmob, pytorchcv (PyPI) models/rir_cifar.py, rir_cifar10 / rir_cifar100"
WEIAICUNZAI = "weiaicunzai/pytorch-cifar100, models/rir.py"


@dataclass(frozen=True)
class Reading:
    """One public reading of the wide 18-layer RiR: the model that encodes it and where it comes from."""

    name: str  # short key, e.g. "authors"
    model: str  # the registered model (a paper model where the reading is one: its runs are Table 3's)
    label: str  # what the reading is, in a few words
    source: str  # the code or text it comes from
    origin: str  # one sentence: where it comes from and what it does differently


# In the order the report lists them: the authors' first (the reading every table and claim uses).
READINGS: tuple[Reading, ...] = (
    Reading("authors", "rir_18_wide", "the authors' RiR: outer shortcut into both streams", TREEANO,
            "The authors' own code: residual_block_conv_2d with ResnetInitConv2DNode sums the block's "
            "shortcut with its whole output x = [r; t], so both streams get it; a projection (conv + "
            "BatchNorm, 3x3 as Section 3 says) where dimensions grow; no ReLU after the sum."),
    Reading("residual_only", "rir_18_wide_residual", "outer shortcut into the residual stream only",
            NUTSZEBRA,
            "FACTS.md's other reading, the one nutszebra's Chainer code implements (RiR.__call__ adds the "
            "block's input r to r' alone): here with the authors' other choices, so only that one thing "
            "differs."),
    Reading("no_outer", "resnet_init_18_wide", "no outer shortcut (ResNet Init)", PYTORCHCV,
            "pytorchcv's rir_cifar10 stacks generalized residual blocks with no ResNet-level shortcut; "
            "weight for weight it is our ResNet Init net in eval mode (tests/test_readings.py); "
            "weiaicunzai's code also has its outer shortcut commented out."),
    Reading("identity", "rir_18_wide_identity", "identity shortcuts everywhere (the 'about 9.5 M')",
            "FACTS.md: 'about 9.5 M' parameters",
            "The authors' RiR with zero-padded identity shortcuts also where dimensions grow: 9,469,930 "
            "parameters, the only reading that matches the paper's 'about 9.5 M' with 3x3 kernels (Section 3 "
            "asks for a 3x3 projection there, which makes 10,300,522)."),
    Reading("resnet", "resnet_18_wide", "the original ResNet as the authors build it (no ReLU after the sum)",
            TREEANO,
            "The paper compares RiR with 'the original ResNet'; the authors' residual_block_conv_2d removes "
            "the last ReLU and adds nothing after the sum, as our resnet_18 does."),
    Reading("resnet_he", "resnet_18_wide_he", "the original ResNet with He et al.'s ReLU after the addition",
            "He et al. 2015, arXiv:1512.03385, Section 3.2 and Figure 2",
            "He et al.'s block applies 'the second nonlinearity after the addition'; otherwise the authors' "
            "ResNet (3x3 projections where dimensions grow)."),
    Reading("nutszebra", "rir_18_wide_nutszebra", "nutszebra's Chainer RiR, every difference", NUTSZEBRA,
            "The outer shortcut into r only and zero-padded (no projection), added after the block's last "
            "ReLU; stride 2 in a block's second layer; BatchNorm and ReLU on the class maps before pooling. "
            "Its README quotes 94.99 and its own 94.43 on CIFAR-10 (300 epochs, another recipe)."),
    Reading("weiaicunzai", "rir_18_wide_weiaicunzai", "weiaicunzai's PyTorch RiR, every difference",
            WEIAICUNZAI,
            "Generalized blocks with no outer shortcut (commented out), then a 3x3/2 conv to 100 maps, "
            "BatchNorm, ReLU and a 900-450-classes MLP with dropout 0.5 instead of the 1x1 conv and pooling; "
            "its learned 1x1 residual projections where dimensions grow fold into W_rr and are not encoded."),
)


def list_models() -> list[str]:
    """Every model name, in the paper's order (Table 3, Tables 1-2, Table 5)."""
    return list(MODEL_OPTIONS)


def model_defaults(name: str) -> dict:
    """The options model `name` accepts, with their defaults (a copy); UserError for an unknown name."""
    if name not in MODEL_OPTIONS:
        raise UserError(f"unknown model {name!r}; known models: {', '.join(MODEL_OPTIONS)}")
    return dict(MODEL_OPTIONS[name])


def known_defaults(name: str) -> dict:
    """`model_defaults(name)`, or {} for a name the table does not know: for readers of params.yaml and of
    results (run ids, grid points), which leave refusing an unknown model to `rir train` by name."""
    return dict(MODEL_OPTIONS.get(name, {}))
