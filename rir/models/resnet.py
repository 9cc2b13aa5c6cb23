"""The 18-layer family of Tables 1-4 and Figure 4: CNN, ResNet Init, ResNet and ResNet in ResNet (Figure 2).

All four share one layout: a 3x3 input convolution, stages of blocks (each block `layers_per_block` 3x3
convolutions, each followed by BatchNorm and ReLU), then a 1x1 convolution to the classes and global
average pooling. They differ in two switches (the paper's Figure 2):
- the convolution: a plain one (CNN, ResNet) or ResNet Init over x = [r; t] (ResNet Init, RiR), which makes
  every layer a generalized residual block (Section 2);
- an outer shortcut around each block (ResNet, RiR; Section 2, "Replacing each of the convolutional layers
  within a residual block from the original ResNet with a generalized residual block").

The block follows the authors' own code (diogo149/treeano, `treeano/sandbox/nodes/resnet.py`,
`residual_block_conv_2d`, and `resnet_init_block_conv_2d` for RiR, which is the same block with
`ResnetInitConv2DNode` as its convolution): stride 2 sits in the block's FIRST convolution; the last layer's
ReLU is removed and the outer shortcut is added after its BatchNorm, with no activation after the sum; a
projection shortcut is a convolution followed by BatchNorm. Because RiR's convolution runs over the whole
x = [r; t], the authors' outer shortcut adds to both streams (`outer_shortcut="both"`); several
re-implementations add it to the residual stream only (`"residual"`). The paper's projection is 3x3
(Section 3: "A projection with a 3x3 convolution was used for residual blocks that increase
dimensionality"), the authors' code defaults to 1x1; we follow the paper.

The other public readings of RiR (rir/models/readings.py) differ in four switches, each defaulting to
the authors' choice: `sum_relu` (where the last ReLU sits around the sum), `stride_at` (which layer of a
downsampling block has stride 2), `head` (the classifier) and, for RiR, `outer_shortcut`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rir.layers import ResNetInitConv2d, conv_bn, scaled
from rir.models import register_model

# The options and their defaults, decided here (rir.catalog reads them without importing torch):
# - WIDE_WIDTH = 96: the "18-layer + wide" net of Tables 1-2 (96, 192, 384 channels).
# - BASE_WIDTH = 32: the paper does not give Table 3's widths. 32, 64, 128 make each stream of a two-stream
#   net 16, 32, 64 channels, the widths of He et al.'s CIFAR ResNets, and keep the paper's "Because each
#   stream uses only half the total filters, we investigate ... a wider 18-layer network" true of the wide
#   net (3x). Override with `width=`.
# - `width_scale` (every model, default 1) multiplies every channel count, for tiny smoke-test nets.
# - `init`: MSR (He et al.) is the paper's choice for every weight tensor, Xavier the grid-searched
#   alternative (Section 3).
BASE_WIDTH = 32
WIDE_WIDTH = 96
BLOCKS_18 = (2, 3, 3)  # blocks per stage: 8 blocks x 2 layers + input conv + classifier = 18 layers
CNN = dict(width=BASE_WIDTH, blocks=BLOCKS_18, layers_per_block=2, init="msr", width_scale=1.0,
           stride_at="first", head="conv")
WIDE = {**CNN, "width": WIDE_WIDTH}
RESIDUAL = dict(shortcut="projection",  # for dimension-increasing blocks; identity elsewhere (Section 3)
                sum_relu="none")  # the authors' code: no ReLU after the outer shortcut's sum
RIR = dict(outer_shortcut="both")  # the authors' code: the outer shortcut feeds both streams


class ZeroPadShortcut(nn.Module):
    """Identity shortcut: subsample by `stride`, zero-pad each stream's channels (He et al.'s option A).

    `in_streams` / `out_streams` are the channel counts of the streams in order, e.g. (48, 48) -> (96, 96):
    each stream is padded in place, so the residual stream's shortcut lands in the residual stream.
    """

    def __init__(self, in_streams: tuple[int, ...], out_streams: tuple[int, ...], stride: int):
        super().__init__()
        self.in_streams, self.out_streams, self.stride = in_streams, out_streams, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[..., ::self.stride, ::self.stride]
        parts = torch.split(x, list(self.in_streams), dim=1)
        return torch.cat([F.pad(p, (0, 0, 0, 0, 0, n - p.shape[1]))
                          for p, n in zip(parts, self.out_streams, strict=True)], dim=1)


class ResidualBlock(nn.Module):
    """`layers` plus an optional outer shortcut, which reads the first `shortcut_in` input channels and adds
    to as many leading output channels as it produces (all of them, or the residual stream's). `relu_after`
    applies a ReLU to the whole sum (He et al.'s block)."""

    def __init__(self, layers: nn.Sequential, shortcut: nn.Module | None = None, shortcut_in: int = 0,
                 relu_after: bool = False):
        super().__init__()
        self.layers, self.shortcut, self.shortcut_in = layers, shortcut, shortcut_in
        self.relu_after = relu_after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        if self.shortcut is None:
            return out
        s = self.shortcut(x[:, :self.shortcut_in])
        if s.shape[1] == out.shape[1]:
            out = out + s
        else:
            out = torch.cat([out[:, :s.shape[1]] + s, out[:, s.shape[1]:]], dim=1)
        return F.relu(out) if self.relu_after else out


def _conv(n_in: int, n_out: int, stride: int, resnet_init: bool) -> nn.Module:
    if resnet_init:  # equal streams: the first half of the channels is the residual stream (Section 3)
        return ResNetInitConv2d(n_in, n_out, 3, stride, residual_channels=n_in // 2,
                                residual_out_channels=n_out // 2)
    return nn.Conv2d(n_in, n_out, 3, stride, 1, bias=False)


def _outer_shortcut(n_in: int, n_out: int, stride: int, kind: str, streams: int, residual_only: bool):
    """(module, input channels it reads) for one block; identity unless the block changes dimensions."""
    if residual_only:
        n_in, n_out, streams = n_in // 2, n_out // 2, 1
    if kind == "projection" and (n_in != n_out or stride != 1):
        return conv_bn(nn.Conv2d(n_in, n_out, 3, stride, 1, bias=False), n_out, relu=False), n_in
    if streams == 1:
        return ZeroPadShortcut((n_in,), (n_out,), stride), n_in
    return ZeroPadShortcut((n_in // 2, n_in - n_in // 2), (n_out // 2, n_out - n_out // 2), stride), n_in


def _head(n_in: int, num_classes: int, kind: str, width_scale: float) -> nn.Module:
    """The classifier over the last stage's maps: class maps (B, classes, H, W), which the net averages
    over the positions, or logits (B, classes).

    "conv": a 1x1 conv to the classes, then global average pooling (docs/paper.md). "conv_bn_relu":
    nutszebra's, the same with BatchNorm and ReLU on the class maps (its logits are >= 0). "mlp":
    weiaicunzai's, written for CIFAR-100 ("without this convolution, loss will soon be nan"): a 3x3/2 conv
    without padding to 100 maps (8x8 -> 3x3), BatchNorm, ReLU, then Linear 900 -> 450, ReLU, dropout 0.5,
    Linear 450 -> classes; its sizes are kept as written for every number of classes and scaled by
    `width_scale` like every width.
    """
    if kind == "conv":
        return nn.Conv2d(n_in, num_classes, 1)
    if kind == "conv_bn_relu":
        return conv_bn(nn.Conv2d(n_in, num_classes, 1, bias=False), num_classes)
    maps, hidden = scaled(100, width_scale), scaled(450, width_scale)
    return nn.Sequential(conv_bn(nn.Conv2d(n_in, maps, 3, 2, 0, bias=False), maps), nn.Flatten(),
                         nn.Linear(9 * maps, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Linear(hidden, num_classes))


class EighteenLayerNet(nn.Module):
    """Input conv, `blocks[i]` blocks of `layers_per_block` layers at width `width * 2**i`, then the head.

    Stage i > 0 starts with a stride-2 block; `stride_at` says which of its layers strides ("first" or
    "last"; the channels grow in the first either way). `resnet_init` selects ResNet Init convolutions;
    `shortcut` (None: no outer shortcut) selects ResNet / RiR with "projection" or "identity" for the blocks
    that change dimensions (all other blocks use the identity); `outer_shortcut` "both" or "residual" says
    which streams of a two-stream net the outer shortcut feeds ("residual": it reads r and adds to r' only);
    `sum_relu` where the last layer's ReLU goes: "none" (dropped), "after" (after the sum) or "before" (kept
    in the layer, before the sum). `head` is the classifier (`_head`).
    """

    def __init__(self, num_classes: int, width: int, blocks: tuple[int, ...], layers_per_block: int,
                 resnet_init: bool, shortcut: str | None, outer_shortcut: str = "both",
                 sum_relu: str = "none", stride_at: str = "first", head: str = "conv",
                 width_scale: float = 1.0):
        super().__init__()
        self.stem = conv_bn(nn.Conv2d(3, width, 3, 1, 1, bias=False), width)
        streams = 2 if resnet_init else 1
        strided = 0 if stride_at == "first" else layers_per_block - 1
        body, n_in = [], width
        for stage, n_blocks in enumerate(blocks):
            n_out = width * 2**stage
            for b in range(n_blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                layers = []
                for i in range(layers_per_block):
                    last = i == layers_per_block - 1
                    conv = _conv(n_in if i == 0 else n_out, n_out, stride if i == strided else 1, resnet_init)
                    layers.append(conv_bn(conv, n_out, relu=not (last and shortcut and sum_relu != "before")))
                module, reads = None, 0
                if shortcut:
                    module, reads = _outer_shortcut(n_in, n_out, stride, shortcut, streams,
                                                    outer_shortcut == "residual")
                body.append(ResidualBlock(nn.Sequential(*layers), module, reads,
                                          relu_after=bool(shortcut) and sum_relu == "after"))
                n_in = n_out
        self.body = nn.Sequential(*body)
        self.classifier = _head(n_in, num_classes, head, width_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.classifier(self.body(self.stem(x)))
        return out.mean(dim=(2, 3)) if out.dim() == 4 else out


# The registered models of this file, in the paper's order (Table 3, then Tables 1-2).
def net(num_classes, resnet_init, width, blocks, layers_per_block, width_scale, shortcut=None,
        outer_shortcut="both", sum_relu="none", stride_at="first", head="conv"):
    """An `EighteenLayerNet` from a model's options (every registered model of the family is one)."""
    return EighteenLayerNet(num_classes, scaled(width, width_scale), tuple(blocks), layers_per_block,
                            resnet_init, shortcut, outer_shortcut, sum_relu, stride_at, head, width_scale)


@register_model(label="18-layer CNN", options=CNN)
def cnn_18(num_classes, **o):
    """Table 3: the standard CNN (every layer a plain conv, no shortcut)."""
    return net(num_classes, resnet_init=False, **o)


@register_model(label="18-layer ResNet Init", options=CNN)
def resnet_init_18(num_classes, **o):
    """Table 3: the CNN with every conv a ResNet Init layer (stacked generalized residual blocks)."""
    return net(num_classes, resnet_init=True, **o)


@register_model(label="18-layer ResNet", options={**CNN, **RESIDUAL})
def resnet_18(num_classes, **o):
    """Table 3: ResNet with 2-layer residual blocks (He et al.)."""
    return net(num_classes, resnet_init=False, **o)


@register_model(label="18-layer RiR", options={**CNN, **RESIDUAL, **RIR})
def rir_18(num_classes, **o):
    """Table 3: ResNet in ResNet, ResNet whose convs are ResNet Init layers (Figure 1d)."""
    return net(num_classes, resnet_init=True, **o)


@register_model(label="18-layer + wide CNN", options=WIDE)
def cnn_18_wide(num_classes, **o):
    """Tables 1-2: the wide CNN (96, 192, 384)."""
    return net(num_classes, resnet_init=False, **o)


@register_model(label="18-layer + wide ResNet Init", options=WIDE)
def resnet_init_18_wide(num_classes, **o):
    """Tables 1-2: the wide ResNet Init net."""
    return net(num_classes, resnet_init=True, **o)


@register_model(label="18-layer + wide ResNet", options={**WIDE, **RESIDUAL})
def resnet_18_wide(num_classes, **o):
    """Tables 1-2: the wide ResNet."""
    return net(num_classes, resnet_init=False, **o)


@register_model(label="18-layer + wide RiR", options={**WIDE, **RESIDUAL, **RIR})
def rir_18_wide(num_classes, **o):
    """Tables 1-2: "18-layer + wide RiR", 94.99 % / 77.10 % in the paper (rir/reference/paper.yaml)."""
    return net(num_classes, resnet_init=True, **o)
