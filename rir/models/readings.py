"""The public readings of RiR that are not one of the paper's models (rir.report.readings.READINGS).

The paper never draws its nets completely, and the public re-implementations disagree. Each reading is a
registered model (the optional family `readings` of params.yaml trains them side by side); where a reading
is one of the paper's models it is that model (rir/models/resnet.py), so its runs are Table 3's. Options
that tell the readings apart, each with the authors' choice as its default (rir.models.resnet):
- `outer_shortcut`: which streams the block-level shortcut of RiR feeds, "both" (treeano) or "residual".
- `shortcut`: "projection" (3x3 conv + BatchNorm, Section 3) or "identity" (zero-padded) where dimensions
  grow.
- `sum_relu`: where the block's last ReLU sits: "none" (treeano: removed, nothing after the sum), "after"
  (He et al. 2015: ReLU after the addition) or "before" (nutszebra: the last layer keeps it, the sum
  follows).
- `stride_at`: the layer of a downsampling block that has stride 2, "first" (treeano, He et al.) or "last"
  (nutszebra; the channels still grow in the first layer).
- `head`: "conv" (1x1 conv to the classes, global average pooling), "conv_bn_relu" (nutszebra: the same with
  BatchNorm and ReLU on the class maps) or "mlp" (weiaicunzai: 3x3/2 conv to 100 maps, BatchNorm, ReLU, then
  900 -> 450 -> classes with ReLU and dropout 0.5).
Their options carry the differences; the factories only say which kind of net each one is.
"""

from __future__ import annotations

from rir.models import register_model
from rir.models.resnet import RESIDUAL, RIR, WIDE, net


@register_model(label="wide RiR, outer shortcut into r only",
                options={**WIDE, **RESIDUAL, **RIR, "outer_shortcut": "residual"})
def rir_18_wide_residual(num_classes, **o):
    """The wide RiR with its outer shortcut into the residual stream only (outer_shortcut="residual")."""
    return net(num_classes, resnet_init=True, **o)


@register_model(label="wide RiR, identity shortcuts",
                options={**WIDE, **RESIDUAL, **RIR, "shortcut": "identity"})
def rir_18_wide_identity(num_classes, **o):
    """The wide RiR with identity shortcuts everywhere (shortcut="identity"): 9,469,930 parameters."""
    return net(num_classes, resnet_init=True, **o)


@register_model(label="wide ResNet, ReLU after the sum", options={**WIDE, **RESIDUAL, "sum_relu": "after"})
def resnet_18_wide_he(num_classes, **o):
    """The wide ResNet with He et al.'s ReLU after the addition (sum_relu="after")."""
    return net(num_classes, resnet_init=False, **o)


@register_model(label="wide RiR, nutszebra's reading",
                options={**WIDE, **RESIDUAL, **RIR, "outer_shortcut": "residual", "shortcut": "identity",
                         "sum_relu": "before", "stride_at": "last", "head": "conv_bn_relu"})
def rir_18_wide_nutszebra(num_classes, **o):
    """nutszebra/resnet_in_resnet's RiR: r-only identity outer shortcut after the last ReLU, stride 2 in a
    block's last layer, BatchNorm and ReLU on the class maps."""
    return net(num_classes, resnet_init=True, **o)


@register_model(label="wide RiR, weiaicunzai's reading", options={**WIDE, "head": "mlp"})
def rir_18_wide_weiaicunzai(num_classes, **o):
    """weiaicunzai/pytorch-cifar100's RiR: generalized blocks without an outer shortcut, an MLP head."""
    return net(num_classes, resnet_init=True, **o)
