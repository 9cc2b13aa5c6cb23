"""The wide RiR with pre-activation blocks: an example of a model of your own, beside the paper's.

He et al.'s "Identity Mappings in Deep Residual Networks" (2016, arXiv:1603.05027) moved BatchNorm and ReLU
before each convolution ("full pre-activation"), so that the outer shortcut's sum reaches the next block
untouched. This is the wide 18-layer RiR (rir/models/resnet.py: 96, 192, 384 channels, 2-3-3 blocks of two
ResNet Init layers) with that ordering: each layer is BatchNorm, ReLU, then a ResNet Init convolution over
x = [r; t]; a block adds its input (a 1x1 projection where dimensions grow, as He et al. 2016 do); the net
ends with BatchNorm and ReLU before the 1x1 classifier and global average pooling. 18 weighted layers.

It lives in this file alone: registered here with its display name and its options, trained by the optional
family `preact` of params.yaml (`snakemake --cores all preact`), shown in the report's table of that family.
README's "Add your own model" starts from a copy of this file.
"""

from __future__ import annotations

import torch
from torch import nn

from rir.layers import ResNetInitConv2d, scaled
from rir.models import register_model

# Every option the model takes, with its default: the wide RiR's widths and blocks (`init` and `width_scale`
# every model takes; the smoke profile shrinks the net with `width_scale`).
PREACT = dict(width=96, blocks=(2, 3, 3), init="msr", width_scale=1.0)


def bn_relu_conv(n_in: int, n_out: int, stride: int) -> nn.Sequential:
    """One pre-activated ResNet Init layer; the first half of the channels is the residual stream."""
    conv = ResNetInitConv2d(n_in, n_out, 3, stride, residual_channels=n_in // 2,
                            residual_out_channels=n_out // 2)
    return nn.Sequential(nn.BatchNorm2d(n_in), nn.ReLU(), conv)


class PreActBlock(nn.Module):
    def __init__(self, n_in: int, n_out: int, stride: int):
        super().__init__()
        self.layers = nn.Sequential(bn_relu_conv(n_in, n_out, stride), bn_relu_conv(n_out, n_out, 1))
        self.shortcut = (nn.Conv2d(n_in, n_out, 1, stride, bias=False)
                         if stride != 1 or n_in != n_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x) + self.shortcut(x)


class PreActRiR(nn.Module):
    def __init__(self, num_classes: int, width: int, blocks: tuple[int, ...]):
        super().__init__()
        body, n_in = [nn.Conv2d(3, width, 3, 1, 1, bias=False)], width
        for stage, n_blocks in enumerate(blocks):
            n_out = width * 2**stage
            for b in range(n_blocks):
                body.append(PreActBlock(n_in, n_out, 2 if stage > 0 and b == 0 else 1))
                n_in = n_out
        body += [nn.BatchNorm2d(n_in), nn.ReLU()]
        self.body = nn.Sequential(*body)
        self.classifier = nn.Conv2d(n_in, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x)).mean(dim=(2, 3))


@register_model(label="18-layer + wide pre-activation RiR", options=PREACT)
def preact_rir_18_wide(num_classes, width, blocks, width_scale):
    """The wide RiR with He et al.'s (2016) full pre-activation blocks."""
    return PreActRiR(num_classes, scaled(width, width_scale), tuple(blocks))
