"""The model registry: every architecture behind the paper's Tables 1-5 and Figures 3-4, and yours, by name.

A model is a function `name(num_classes, **options) -> nn.Module` in a file of this package, registered where
it is defined with its display name and every option it takes, with their defaults:

    @register_model(label="18-layer ResNet", options={**CNN, **RESIDUAL})
    def resnet_18(num_classes, **o): ...

Each file here is found and imported when the package is (a new file needs nothing else), and
rir.catalog reads the same registrations without torch for the workflow. `create_model(name,
num_classes=10, **overrides)` builds one; `list_models()` names them all, the paper's first in its order;
`model_summary(name)` gives parameters, forward FLOPs for one 3x32x32 image and depth in weighted layers.
A mistake in a registration, an unknown option, or a model that does not build is one `UserError` line
naming the model.

Parameter counts (10 classes; `python -m rir models` prints all). The wide CNN and ResNet Init have
9,469,930 parameters: 9,458,208 in 3x3 kernels (input 3->96; two layers per block at 96, 96, 192, 192, 192,
384, 384, 384), 7,872 BatchNorm weights and biases, 3,850 in the 1x1 classifier (384 x 10 + 10). The wide
ResNet and RiR add two 3x3 projection shortcuts with BatchNorm, 96->192 and 192->384: 829,440 + 1,152, so
10,300,522. The paper's "about 9.5 M" fits the nets without projections (`shortcut="identity"`: 9,469,930)
or with the 1x1 projections of the authors' code (9,563,242); we keep the paper's stated 3x3 projection.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch
from torch import nn

from rir import catalog
from rir.catalog import list_models, model_defaults
from rir.errors import UserError
from rir.layers import ResNetInitConv2d, ResNetInitLinear

_REGISTRY: dict[str, tuple[Callable[..., nn.Module], dict]] = {}
# Values the options of the 18-layer family may take (rir/models/resnet.py and readings.py), checked for any
# model that has the option.
CHOICES = dict(init=("msr", "xavier"), shortcut=("projection", "identity"),
               outer_shortcut=("both", "residual"), sum_relu=("none", "after", "before"),
               stride_at=("first", "last"), head=("conv", "conv_bn_relu", "mlp"))


def register_model(*, label: str, options: dict):
    """Register the decorated `fn(num_classes, **options)` under its own name, with its display name `label`
    and `options` (every option it takes, with its default; `init` is applied by `create_model`, not passed
    on). rir.catalog reads the same call from the file without importing torch."""
    def register(fn):
        if fn.__name__ in _REGISTRY:
            first = inspect.getsourcefile(_REGISTRY[fn.__name__][0])
            raise UserError(f"model {fn.__name__} is registered twice: in {first} and in "
                            f"{inspect.getsourcefile(fn)}; rename one")
        _REGISTRY[fn.__name__] = (fn, dict(options))
        return fn
    return register


__all__ = ["create_model", "depth", "list_models", "model_defaults", "model_summary", "register_model"]


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
    try:
        model = factory(num_classes, **options)
    except UserError:
        raise
    except Exception as err:  # a user's model that does not build: one line, not a traceback
        raise UserError(f"model {name} ({catalog.model(name).path}) does not build: "
                        f"{type(err).__name__}: {err}") from err
    if not isinstance(model, nn.Module):
        raise UserError(f"model {name} ({catalog.model(name).path}) returned {type(model).__name__}, "
                        "not a torch.nn.Module")
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
    try:
        with torch.no_grad(), counter:
            model(torch.zeros(1, 3, 32, 32, device="meta"))
    except Exception as err:
        raise UserError(f"model {name} ({catalog.model(name).path}) fails on a 3x32x32 image: "
                        f"{type(err).__name__}: {err}") from err
    return {"params": sum(p.numel() for p in model.parameters()),
            "flops_per_image": counter.get_total_flops(), "depth": depth(model)}


def _discover() -> None:
    """Import every model file of this package, which registers its models (`@register_model`). Found here,
    not imported by name, so a model file is nobody else's code (rir.stages: its runs alone depend on it)."""
    import importlib

    declared = catalog.models()  # a malformed registration is refused here first, with its one line
    for path in dict.fromkeys(m.path for m in declared.values()):
        importlib.import_module(path.removesuffix(".py").replace("/", "."))
    for name, model in declared.items():
        if name not in _REGISTRY or _REGISTRY[name][1] != model.options:
            raise UserError(f"model {name} ({model.path}): its registration at import differs from the one "
                            "read from the file; keep its label and options literals or constants")


_discover()
