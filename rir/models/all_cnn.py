"""ALL-CNN-C (Springenberg et al. 2014) with and without ResNet Init: the paper's Table 5.

Layout (Springenberg et al., Table 2, model C): 3x3 convs 96, 96, 96 (stride 2), 192, 192, 192 (stride 2),
a 3x3 conv 192 without padding (8x8 -> 6x6), a 1x1 conv 192, a 1x1 conv to the classes, global average
pooling over 6x6.

Not stated by the RiR paper, decided here: every conv but the last is followed by BatchNorm and ReLU, as in
every other architecture of the paper (its recipe estimates "test time batch normalization statistics", and
sigma = BatchNorm + ReLU is part of the generalized residual block, Equation 1), and there is no dropout by
default, because the paper's recipe names none and BatchNorm replaces it. `dropout` > 0 restores
Springenberg's dropout after each stride-2 layer (0.5 there; the 0.2 on the input is left out).
`all_cnn_c_resnet_init` makes every layer that has a multi-channel input and output a ResNet Init layer
(layers 2-8; the first reads RGB and the last writes class scores), with equal streams. Its identity is
subsampled by the stride-2 layers, zero-padded where 96 channels grow to 192, and cropped by the unpadded
3x3 layer (see `rir.layers`); the parameter count is the plain model's.
"""

from __future__ import annotations

import torch
from torch import nn

from rir.layers import ResNetInitConv2d, conv_bn, scaled
from rir.models import register_model

# (out_channels, kernel_size, stride, padding) of the layers before the classifier.
LAYOUT = ((96, 3, 1, 1), (96, 3, 1, 1), (96, 3, 2, 1), (192, 3, 1, 1), (192, 3, 1, 1), (192, 3, 2, 1),
          (192, 3, 1, 0), (192, 1, 1, 0))


class AllCNNC(nn.Module):
    def __init__(self, num_classes: int, resnet_init: bool, dropout: float = 0.0, width_scale: float = 1.0):
        super().__init__()
        layers, n_in = [], 3
        for i, (n_out, k, stride, padding) in enumerate(LAYOUT):
            n_out = scaled(n_out, width_scale)
            if resnet_init and i > 0:
                conv = ResNetInitConv2d(n_in, n_out, k, stride, residual_channels=n_in // 2, padding=padding,
                                        residual_out_channels=n_out // 2)
            else:
                conv = nn.Conv2d(n_in, n_out, k, stride, padding, bias=False)
            layers.append(conv_bn(conv, n_out))
            if stride == 2 and dropout > 0:
                layers.append(nn.Dropout(dropout))
            n_in = n_out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(n_in, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x)).mean(dim=(2, 3))


# Its options: `dropout` (Springenberg's, after each stride-2 layer; none by default, see above).
ALL_CNN = dict(init="msr", dropout=0.0, width_scale=1.0)


@register_model(label="ALL-CNN-C", options=ALL_CNN)
def all_cnn_c(num_classes, dropout, width_scale):
    """Table 5: ALL-CNN-C with standard initialization."""
    return AllCNNC(num_classes, False, dropout, width_scale)


@register_model(label="ALL-CNN-C + ResNet Init", options=ALL_CNN)
def all_cnn_c_resnet_init(num_classes, dropout, width_scale):
    """Table 5: ALL-CNN-C with ResNet Init."""
    return AllCNNC(num_classes, True, dropout, width_scale)
