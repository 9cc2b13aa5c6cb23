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
"""

from __future__ import annotations

from rir.errors import UserError

BASE_WIDTH = 32  # Table 3's first-stage channels (both streams together); reason in the module docstring
WIDE_WIDTH = 96  # Tables 1-2, "18-layer + wide"
BLOCKS_18 = (2, 3, 3)  # blocks per stage: 8 blocks x 2 layers + input conv + classifier = 18 layers

# `init`: MSR (He et al.) is the paper's choice for every weight tensor, Xavier the grid-searched
# alternative (Section 3).
_CNN = dict(width=BASE_WIDTH, blocks=BLOCKS_18, layers_per_block=2, init="msr", width_scale=1.0)
_WIDE = {**_CNN, "width": WIDE_WIDTH}
_RESIDUAL = dict(shortcut="projection")  # for dimension-increasing blocks; identity elsewhere (Section 3)
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
}
CHOICES = dict(init=("msr", "xavier"), shortcut=("projection", "identity"),
               outer_shortcut=("both", "residual"))


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
