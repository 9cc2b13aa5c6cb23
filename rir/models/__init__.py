"""The model registry: every architecture behind the paper's Tables 1-5 and Figures 3-4, by name.

`create_model(name, num_classes=10, **overrides)` builds one; `list_models()` names them all in the paper's
order; `model_summary(name)` gives parameters, forward FLOPs for one 3x32x32 image and depth in weighted
layers. Each factory is one line that spells out its architecture, in the style of torchvision's
`_resnet(BasicBlock, [2, 2, 2, 2])`. The options a user may override, and their defaults (the widths
included, with the reasons), are the torch-free table `rir.model_options.MODEL_OPTIONS`; any other option
is a `UserError` naming it.

Parameter counts (10 classes; `python -m rir models` prints all). The wide CNN and ResNet Init have
9,469,930 parameters: 9,458,208 in 3x3 kernels (input 3->96; two layers per block at 96, 96, 192, 192, 192,
384, 384, 384), 7,872 BatchNorm weights and biases, 3,850 in the 1x1 classifier (384 x 10 + 10). The wide
ResNet and RiR add two 3x3 projection shortcuts with BatchNorm, 96->192 and 192->384: 829,440 + 1,152, so
10,300,522. FACTS.md's "about 9.5 M" fits the nets without projections (`shortcut="identity"`: 9,469,930)
or with the 1x1 projections of the authors' code (9,563,242); we keep the paper's stated 3x3 projection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from rir.errors import UserError
from rir.layers import ResNetInitConv2d, ResNetInitLinear
from rir.model_options import (
    BASE_WIDTH,
    BLOCKS_18,
    CHOICES,
    MODEL_OPTIONS,
    WIDE_WIDTH,
    list_models,
    model_defaults,
)

_REGISTRY: dict[str, tuple[Callable[..., nn.Module], dict]] = {}


def register_model(fn):
    """Register `fn(num_classes, **options)` under its own name, with that name's options and defaults in
    `MODEL_OPTIONS` (`init` is applied by `create_model`, not passed on)."""
    if fn.__name__ not in MODEL_OPTIONS:
        raise RuntimeError(f"model {fn.__name__} has no entry in rir.model_options.MODEL_OPTIONS")
    _REGISTRY[fn.__name__] = (fn, MODEL_OPTIONS[fn.__name__])
    return fn


__all__ = ["BASE_WIDTH", "BLOCKS_18", "WIDE_WIDTH", "create_model", "depth", "list_models", "model_defaults",
           "model_summary", "register_model"]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(name: str, num_classes, options: dict) -> None:
    def bad(key, why):
        raise UserError(f"model {name}: {key}={options.get(key, num_classes)!r} {why}")

    if not _is_int(num_classes) or num_classes < 1:
        bad("num_classes", "must be an integer >= 1")
    for key, choices in CHOICES.items():
        if key in options and options[key] not in choices:
            bad(key, f"must be one of {', '.join(choices)}")
    # Two-stream nets need a channel per stream; one threshold for all keeps the families comparable.
    if "width" in options and (not _is_int(options["width"]) or options["width"] < 2):
        bad("width", "must be an integer >= 2")
    if "layers_per_block" in options and (not _is_int(options["layers_per_block"]) or
                                          options["layers_per_block"] < 1):
        bad("layers_per_block", "must be an integer >= 1")
    blocks = options.get("blocks", (1,))
    if (not isinstance(blocks, Sequence) or isinstance(blocks, str) or not blocks
            or not all(_is_int(b) and b >= 1 for b in blocks)):
        bad("blocks", "must be a non-empty list of integers >= 1 (blocks per stage)")
    scale = options.get("width_scale", 1.0)
    if not (isinstance(scale, int | float) and not isinstance(scale, bool) and scale > 0):
        bad("width_scale", "must be a number > 0")
    dropout = options.get("dropout", 0.0)
    if not (isinstance(dropout, int | float) and not isinstance(dropout, bool) and 0 <= dropout < 1):
        bad("dropout", "must be a probability in [0, 1)")


def _initialize(model: nn.Module, init: str) -> None:
    """MSR (He et al. 2015, fan-in, ReLU gain) or Xavier (Glorot, uniform) on every learned weight tensor.

    For ResNet Init layers this initializes W alone; the partial identity is added on top (Appendix 6.1:
    "concatenate weight matrices initialized by any existing scheme and then add a partial identity").
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear | ResNetInitConv2d | ResNetInitLinear):
            if init == "msr":
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


def create_model(name: str, num_classes: int = 10, **overrides) -> nn.Module:
    """Build model `name` with `num_classes` outputs; `overrides` change its registered options."""
    if name not in _REGISTRY:
        raise UserError(f"unknown model {name!r}; known models: {', '.join(_REGISTRY)}")
    factory, defaults = _REGISTRY[name]
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise UserError(f"model {name}: unknown option {unknown[0]!r}; it takes {', '.join(defaults)}")
    options = {**defaults, **overrides}
    _validate(name, num_classes, options)
    init = options.pop("init")  # applied here, after the factory, to every model alike
    model = factory(num_classes, **options)
    _initialize(model, init)
    return model


def depth(model: nn.Module) -> int:
    """Weighted layers on the main path: convolutions and linear layers, shortcut projections excluded."""
    kinds = nn.Conv2d | nn.Linear | ResNetInitConv2d | ResNetInitLinear
    return sum(isinstance(m, kinds) and "shortcut" not in n.split(".") for n, m in model.named_modules())


def model_summary(name: str, num_classes: int = 10, **overrides) -> dict:
    """{"params", "flops_per_image" (forward, one 3x32x32 image, torch.utils.flop_counter), "depth"}.

    The model is built on the meta device: counting needs shapes only, so no memory or arithmetic is spent.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = create_model(name, num_classes, **overrides).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, 32, 32, device="meta"))
    return {"params": sum(p.numel() for p in model.parameters()),
            "flops_per_image": counter.get_total_flops(), "depth": depth(model)}


def _discover() -> None:
    """Import every model file of this package, which registers its models (`@register_model`). Found here,
    not imported by name, so a model file is nobody else's code (rir.stages: its runs alone depend on it)."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    if set(_REGISTRY) != set(MODEL_OPTIONS):  # a name in one and not the other
        raise RuntimeError(f"rir.models registers {sorted(_REGISTRY)}; rir.model_options has "
                           f"{sorted(MODEL_OPTIONS)}")


_discover()
