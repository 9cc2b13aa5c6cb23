"""The generalized residual block (paper Section 2, Equation 1) and ResNet Init (Appendix 6.1, Equation 2).

A generalized residual block holds a residual stream r (with an identity shortcut) and a transient stream t
(without one), and four learned kernels between them:

    r' = sigma(conv(r, W_rr) + conv(t, W_tr) + shortcut(r))
    t' = sigma(conv(r, W_rt) + conv(t, W_tt))              sigma = BatchNorm, then ReLU

`W_ab` maps stream a INTO stream b (W_tr reads t and writes r). `GeneralizedResidualBlock` computes this with
four convolutions. ResNet Init computes the same block as ONE convolution over x = [r; t] whose kernel is

    [[W_rr, W_tr],        (output rows: residual channels first, then transient;
     [W_rt, W_tt]] + I     input columns: residual channels first, then transient)

where I is the partial identity: a 1 at the kernel centre for output channel i and input channel i, for the
first `residual_channels` channels. The learned parameter is W alone and I is a buffer, exactly as in the
authors' code (diogo149/treeano, `treeano/sandbox/nodes/resnet.py`, `ResnetInitConv2DNode`, which convolves
with `W + init` where `init` is a constant). An optimizer's weight decay therefore pulls W towards zero and
the effective kernel towards I: the paper's "subtract the partial identity from the weights prior to
application of weight decay" (Appendix 6.1). The identity is a non-persistent buffer: it is a pure function
of the constructor's arguments, so checkpoints hold W only.

What the identity does when the shape changes (same as the authors' kernel, and as He et al.'s option A):
- stride s > 1: the centre tap of a strided convolution reads input pixel (s*i, s*j) for output (i, j) with
  "same" padding, so the identity SUBSAMPLES the residual channels (x[..., ::s, ::s]); with less padding it
  also crops the border (x[..., c::s, c::s], c = kernel_size // 2 - padding).
- more output channels than `residual_channels`: output residual channels past `residual_channels` get no
  identity term, i.e. the shortcut is ZERO-PADDED in the channel dimension.

Two forward forms with equal math: "fused" (one conv with W + I, the paper's) and "explicit" (conv with W,
plus the input's first residual channels added back, in the wider of the two dtypes). Whenever the
convolution does not multiply in exact fp32, 1 + w rounds: to 1 for |w| < 2^-8 in bfloat16, and for |w|
below about 5e-4 (2^-11) in TF32, whose 10-bit mantissa is what PyTorch's "fp32" convolutions use on Ampere
and newer GPUs unless TF32 is switched off (rir.device sets it from `precision`). The fused form would then
lose small learned weights on the identity taps. "auto" therefore takes the explicit form under autocast,
for half/bfloat16 inputs, and for fp32 CUDA inputs while TF32 is allowed (cuDNN's switch for convolutions,
cuBLAS's for the linear layer), and the fused form only where the product is exact fp32: `explicit_form`,
a pure function of those facts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from rir.errors import UserError

FORMS = ("auto", "fused", "explicit")
STREAMS = ("residual", "transient")
READINGS = ("write", "read")


def split_kernel(weight: torch.Tensor, residual_in: int, residual_out: int):
    """One ResNet Init kernel [out, in, ...] (without I) -> (W_rr, W_tr, W_rt, W_tt).

    W_tr (transient -> residual) is weight[:residual_out, residual_in:]; W_rt (residual -> transient) is
    weight[residual_out:, :residual_in]. Works for conv kernels and linear weight matrices alike.
    """
    return (weight[:residual_out, :residual_in], weight[:residual_out, residual_in:],
            weight[residual_out:, :residual_in], weight[residual_out:, residual_in:])


def merge_kernels(W_rr: torch.Tensor, W_tr: torch.Tensor, W_rt: torch.Tensor, W_tt: torch.Tensor):  # noqa: N803
    """The inverse of `split_kernel`: the four stream kernels -> one kernel over x = [r; t] (without I)."""
    return torch.cat([torch.cat([W_rr, W_tr], dim=1), torch.cat([W_rt, W_tt], dim=1)], dim=0)


def _check_channels(name: str, **counts: int) -> None:
    for what, n in counts.items():
        if n < 1:
            raise UserError(f"{name}: {what} must be at least 1, got {n}")


def _resolve_residual(name: str, n_in: int, n_out: int, residual: int | None,
                      residual_out: int | None) -> tuple[int, int]:
    residual = n_in // 2 if residual is None else residual
    if not 0 <= residual <= min(n_in, n_out):
        raise UserError(f"{name}: residual part {residual} must be between 0 and min(in={n_in}, out={n_out})")
    if residual_out is None:
        # Keep the streams' proportions: 48 of 96 in -> 96 of 192 out (the identity is zero-padded past 48).
        residual_out = max(residual, n_out * residual // n_in)
    if not residual <= residual_out <= n_out:
        raise UserError(f"{name}: residual output part {residual_out} must be between {residual} and {n_out}")
    return residual, residual_out


def explicit_form(form: str, dtype: torch.dtype, autocast: bool, tf32: bool) -> bool:
    """Whether a ResNet Init layer adds its identity explicitly: always for "explicit", never for "fused";
    for "auto" whenever the product W + I would be rounded: autocast on, a half/bfloat16 input, or TF32
    allowed for this fp32 op on CUDA (`tf32`)."""
    if form != "auto":
        return form == "explicit"
    return autocast or tf32 or dtype in (torch.float16, torch.bfloat16)


def _use_explicit(form: str, x: torch.Tensor, conv: bool) -> bool:
    if form != "auto":
        return form == "explicit"
    # Meta tensors (shape-only FLOP counting) have no autocast state to ask about.
    autocast = torch.amp.is_autocast_available(x.device.type) and torch.is_autocast_enabled(x.device.type)
    # TF32 exists on CUDA only; the switch is read per call, so changing it (rir.device) takes effect at once.
    tf32 = x.is_cuda and x.dtype == torch.float32 and bool(
        torch.backends.cudnn.allow_tf32 if conv else torch.backends.cuda.matmul.allow_tf32)
    return explicit_form(form, x.dtype, autocast, tf32)


def _check_form(name: str, form: str) -> str:
    if form not in FORMS:
        raise UserError(f"{name}: form must be one of {', '.join(FORMS)}, got {form!r}")
    return form


class ResNetInitConv2d(nn.Module):
    """A convolution over x = [r; t] that is one generalized residual block's linear part (Appendix 6.1).

    `residual_channels` (default in_channels // 2, the paper's equal streams) input channels carry the
    identity; the first `residual_out_channels` output channels are the output residual stream (default:
    the same proportion of out_channels). `padding=None` is "same" (kernel_size // 2); smaller paddings crop.
    No bias: BatchNorm follows (sigma).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 residual_channels: int | None = None, padding: int | None = None, form: str = "auto",
                 residual_out_channels: int | None = None):
        super().__init__()
        name = "ResNetInitConv2d"
        _check_channels(name, in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size,
                        stride=stride)
        padding = kernel_size // 2 if padding is None else padding
        if not 0 <= padding <= kernel_size // 2:
            raise UserError(f"{name}: padding must be between 0 and kernel_size // 2, got {padding}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.residual_channels, self.residual_out_channels = _resolve_residual(
            name, in_channels, out_channels, residual_channels, residual_out_channels)
        self.form = _check_form(name, form)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        identity = torch.zeros_like(self.weight)
        centre = kernel_size // 2
        for i in range(self.residual_channels):
            identity[i, i, centre, centre] = 1.0
        self.register_buffer("identity", identity, persistent=False)
        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")

    def effective_weight(self) -> torch.Tensor:
        """W + I: the kernel the fused form convolves with (what the paper's single layer holds)."""
        return self.weight + self.identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _use_explicit(self.form, x, conv=True):
            return F.conv2d(x, self.effective_weight(), None, self.stride, self.padding)
        out = F.conv2d(x, self.weight, None, self.stride, self.padding)
        c, s = self.kernel_size // 2 - self.padding, self.stride
        h, w = out.shape[-2:]
        r = x[:, :self.residual_channels, c:c + s * (h - 1) + 1:s, c:c + s * (w - 1) + 1:s]
        return out + F.pad(r, (0, 0, 0, 0, 0, self.out_channels - self.residual_channels))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, "
                f"residual={self.residual_channels}->{self.residual_out_channels}, form={self.form}")


class ResNetInitLinear(nn.Module):
    """A fully connected ResNet Init layer (the paper's Equation 2): y = (W + I) x (+ b).

    The first `residual_features` (default in_features // 2) inputs are copied to the same outputs; past
    them the identity is zero-padded. No bias by default, as BatchNorm follows in a generalized block.
    """

    def __init__(self, in_features: int, out_features: int, residual_features: int | None = None,
                 form: str = "auto", bias: bool = False, residual_out_features: int | None = None):
        super().__init__()
        name = "ResNetInitLinear"
        _check_channels(name, in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        self.residual_channels, self.residual_out_channels = _resolve_residual(
            name, in_features, out_features, residual_features, residual_out_features)
        self.form = _check_form(name, form)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        identity = torch.zeros_like(self.weight)
        identity[range(self.residual_channels), range(self.residual_channels)] = 1.0
        self.register_buffer("identity", identity, persistent=False)
        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")

    def effective_weight(self) -> torch.Tensor:
        return self.weight + self.identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _use_explicit(self.form, x, conv=False):
            return F.linear(x, self.effective_weight(), self.bias)
        r = x[..., :self.residual_channels]
        return F.linear(x, self.weight, self.bias) + F.pad(r, (0, self.out_features - self.residual_channels))


class GeneralizedResidualBlock(nn.Module):
    """Equation 1 with four separate convolutions: the reference that ResNet Init must equal.

    The shortcut is "identity" (subsample by stride, zero-pad extra residual channels: what ResNet Init's
    identity does) or "projection" (a 3x3 convolution, the paper's choice for dimension-increasing blocks).
    """

    def __init__(self, residual_in: int, transient_in: int, residual_out: int | None = None,
                 transient_out: int | None = None, kernel_size: int = 3, stride: int = 1,
                 padding: int | None = None, shortcut: str = "identity"):
        super().__init__()
        name = "GeneralizedResidualBlock"
        residual_out = residual_in if residual_out is None else residual_out
        transient_out = transient_in if transient_out is None else transient_out
        _check_channels(name, residual_in=residual_in, transient_in=transient_in, residual_out=residual_out,
                        transient_out=transient_out, kernel_size=kernel_size, stride=stride)
        padding = kernel_size // 2 if padding is None else padding
        if not 0 <= padding <= kernel_size // 2:
            raise UserError(f"{name}: padding must be between 0 and kernel_size // 2, got {padding}")
        if shortcut not in ("identity", "projection"):
            raise UserError(f"{name}: shortcut must be identity or projection, got {shortcut!r}")
        if shortcut == "identity" and residual_out < residual_in:
            raise UserError(f"{name}: an identity shortcut cannot shrink {residual_in} channels"
                            f" to {residual_out}; use a projection")
        self.residual_in, self.residual_out = residual_in, residual_out
        self.kernel_size, self.stride, self.padding, self.shortcut = kernel_size, stride, padding, shortcut

        def conv(n_in: int, n_out: int) -> nn.Conv2d:
            return nn.Conv2d(n_in, n_out, kernel_size, stride, padding, bias=False)

        self.conv_rr, self.conv_tr = conv(residual_in, residual_out), conv(transient_in, residual_out)
        self.conv_rt, self.conv_tt = conv(residual_in, transient_out), conv(transient_in, transient_out)
        self.projection = conv(residual_in, residual_out) if shortcut == "projection" else None
        self.bn_r, self.bn_t = nn.BatchNorm2d(residual_out), nn.BatchNorm2d(transient_out)

    def _shortcut(self, r: torch.Tensor, size: torch.Size) -> torch.Tensor:
        if self.projection is not None:
            return self.projection(r)
        c, s = self.kernel_size // 2 - self.padding, self.stride
        h, w = size
        r = r[..., c:c + s * (h - 1) + 1:s, c:c + s * (w - 1) + 1:s]
        return F.pad(r, (0, 0, 0, 0, 0, self.residual_out - self.residual_in))

    def preactivation(self, r: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sums inside sigma: (r*W_rr + t*W_tr + shortcut(r), r*W_rt + t*W_tt), * a convolution."""
        r_sum = self.conv_rr(r) + self.conv_tr(t)
        r_sum = r_sum + self._shortcut(r, r_sum.shape[-2:])
        return r_sum, self.conv_rt(r) + self.conv_tt(t)

    def forward(self, r: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r_sum, t_sum = self.preactivation(r, t)
        return F.relu(self.bn_r(r_sum)), F.relu(self.bn_t(t_sum))


def resnet_init_layers(model: nn.Module) -> list[nn.Module]:
    """The ResNet Init layers of `model` in forward order (registration order, which the models keep)."""
    return [m for m in model.modules() if isinstance(m, ResNetInitConv2d | ResNetInitLinear)]


def _stream_kernels(layer: nn.Module, stream: str, reading: str) -> list[tuple[torch.Tensor, tuple]]:
    """(tensor, index) pairs addressing the learned kernels that write into / read from `stream`."""
    residual = stream == "residual"
    if isinstance(layer, GeneralizedResidualBlock):
        if reading == "write":
            convs = (layer.conv_rr, layer.conv_tr) if residual else (layer.conv_rt, layer.conv_tt)
        else:
            convs = (layer.conv_rr, layer.conv_rt) if residual else (layer.conv_tr, layer.conv_tt)
        return [(c.weight, (slice(None),)) for c in convs]
    if isinstance(layer, ResNetInitConv2d | ResNetInitLinear):
        if reading == "write":
            cut = layer.residual_out_channels
            return [(layer.weight, (slice(None, cut) if residual else slice(cut, None),))]
        cut = layer.residual_channels
        return [(layer.weight, (slice(None), slice(None, cut) if residual else slice(cut, None)))]
    raise UserError(f"zero_stream: {type(layer).__name__} is not a ResNet Init layer or generalized block")


@contextlib.contextmanager
def zero_stream(layer: nn.Module, stream: str, reading: str = "write") -> Iterator[nn.Module]:
    """Zero the learned connections of one stream in one layer (Figure 3), restoring them exactly on exit.

    reading="write": the kernels that write INTO the stream (W_rr, W_tr for the residual stream);
    reading="read": the kernels that read FROM it (W_rr, W_rt). The identity shortcut is never zeroed, nor
    a projection shortcut, which stands in for the identity.
    """
    if stream not in STREAMS:
        raise UserError(f"zero_stream: stream must be one of {', '.join(STREAMS)}, got {stream!r}")
    if reading not in READINGS:
        raise UserError(f"zero_stream: reading must be one of {', '.join(READINGS)}, got {reading!r}")
    targets = _stream_kernels(layer, stream, reading)
    saved = [tensor.detach()[index].clone() for tensor, index in targets]
    try:
        with torch.no_grad():
            for tensor, index in targets:
                tensor[index] = 0
        yield layer
    finally:
        with torch.no_grad():
            for (tensor, index), values in zip(targets, saved, strict=True):
                tensor[index] = values


# Shared by the model files (rir/models/): one definition of a channel count and of sigma.
def scaled(channels: int, width_scale: float) -> int:
    """`channels * width_scale` rounded, at least 2 so that each of two streams keeps a channel."""
    return max(2, round(channels * width_scale))


def conv_bn(conv: nn.Module, channels: int, relu: bool = True) -> nn.Sequential:
    """A convolution and sigma (BatchNorm, then ReLU); no conv bias, as BatchNorm follows."""
    return nn.Sequential(conv, nn.BatchNorm2d(channels), *([nn.ReLU(inplace=True)] if relu else []))
