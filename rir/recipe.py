"""The paper's training recipe (Section 3) as one validated config, `TrainConfig`: plain data, no torch.

Recipe (docs/paper.md): SGD with momentum 0.9, minibatch 500, L2 penalty 1e-4, 82 epochs, learning rate
x0.1 after epochs 42 and 62, MSR initialization (the models do that), BatchNorm running statistics at test
time, random crops and horizontal flips. `TrainConfig` holds it; every default says where it comes from.

Decisions the paper leaves open (docs/paper.md, "Not known"), each made here and configurable:
- Initial learning rate 0.1: He et al. (2015b)'s CIFAR value; the RiR authors tuned their recipe on the
  original ResNet ("We optimize the hyperparameters for the original ResNet architecture").
- L2 convention "sum": the penalty is loss + 1e-4 * sum(w^2), the convention of the authors' Theano tools
  (`lasagne.regularization.l2` is sum(x**2), no 1/2), i.e. PyTorch `weight_decay = 2e-4`. `l2_convention:
  half` gives loss + 1e-4/2 * sum(w^2), i.e. `weight_decay = 1e-4` as in He et al.'s Torch code.
- BatchNorm scales/shifts and biases are not decayed (`decay_norm_and_bias: false`): "L2 penalty" in the
  paper's tools targets weight tensors. The ResNet Init identity is a buffer, so decay acts on W alone
  ("we subtract the partial identity from the weights prior to application of weight decay", Appendix 6.1).
- Math mode `precision: tf32` (the paper profile's too): convolutions and matmuls multiply in TF32 (10-bit
  mantissa, fp32's 8-bit exponent, fp32 accumulation) on GPUs that have it, everything else in fp32. Why not
  exact fp32, the paper's 2016 arithmetic: (1) TF32 is what PyTorch's "fp32" convolutions have always done
  by default on Ampere and newer (`torch.backends.cudnn.allow_tf32` is True), so it is what a PyTorch
  reproduction of a CNN reports; (2) the one place where its rounding changes the model rather than adding
  noise, 1 + w on ResNet Init's identity taps, is taken out: ResNet Init adds its identity explicitly
  whenever the convolution is not exact fp32 (rir.layers.explicit_form); (3) exact fp32 runs on the H100's
  plain fp32 units, 67 against 494.5 dense TFLOP/s (data sheet), which would take the paper profile far past
  its 4 H100-hour budget (`rir plan` prints both). `precision: fp32` is exact fp32 (TF32 off for
  convolutions and matmuls), `bf16` is bf16 autocast. Until a GPU measurement compares tf32 with exact fp32
  on the same runs, this is a decision, not a finding. On the CPU TF32 does not
  exist: a tf32 run computes, and records, exact fp32 (metrics.json `math_mode`).
- Device `auto`: CUDA when torch can use it; GPUs that torch cannot use are an error, and the CPU is taken
  unasked for synthetic data only (rir.device). `device: cpu` asks for the CPU.

`rir.train` runs it; the report reads its defaults here without importing torch.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import MISSING, asdict, dataclass, field, fields

from rir.errors import UserError


@dataclass
class TrainConfig:
    """One training run. Accuracies are in percent, times in seconds, epochs counted from 1."""

    # What is trained
    model: str = "rir_18_wide"  # registered model name (`rir models`); the wide 18-layer RiR of Tables 1-2
    model_overrides: dict = field(default_factory=dict)  # keyword arguments for create_model
    dataset: str = "cifar10"  # cifar10 | cifar100
    data_root: str = "data"  # folder with the prepared arrays (`rir fetch --root`)
    holdout: int = 0  # >0: evaluate on the last N training images (excluded from training) instead of test
    # The paper's recipe (Section 3)
    epochs: int = 82  # passes over the training set ("train for 82 epochs")
    batch_size: int = 500  # images per SGD step ("a minibatch size of 500")
    lr: float = 0.1  # initial learning rate; not in the paper: He et al.'s CIFAR value (module docstring)
    milestones: tuple = (42, 62)  # epochs after which lr is multiplied by lr_gamma ("after epochs 42 and 62")
    lr_gamma: float = 0.1  # the factor at each milestone ("scaled by 0.1")
    momentum: float = 0.9  # SGD momentum ("SGD with momentum of 0.9")
    weight_decay: float = 1e-4  # the paper's L2 penalty coefficient c ("L2 penalty of 0.0001")
    l2_convention: str = "sum"  # sum: loss + c*sum(w^2) (SGD decay 2c); half: loss + c/2*sum(w^2) (decay c)
    decay_norm_and_bias: bool = False  # also decay 1-d parameters (BatchNorm scale/shift, biases)
    augment: bool = True  # random 32x32 crop of the 4-pixel zero-padded image + horizontal flip (paper)
    drop_last: bool = True  # drop the last partial training batch: fixed shapes (see rir.loader)
    # Reproducibility and speed
    seed: int = 0  # seeds model init, data order and augmentation (any epoch is replayable)
    deterministic: bool = False  # torch.use_deterministic_algorithms + no cuDNN autotuning: bit-reproducible
    device: str = "auto"  # auto (CUDA; the CPU unasked only for synthetic data, see rir.device) | cpu | cuda
    precision: str = "tf32"  # math mode: fp32 (exact) | tf32 (TF32 convs and matmuls) | bf16 (autocast)
    channels_last: bool = False  # NHWC memory format for images and weights (faster convs on tensor cores)
    compile: bool = False  # torch.compile the model for the training step
    threads: int = 0  # CPU threads for PyTorch; 0 keeps PyTorch's default

    _CHOICES = {"l2_convention": ("sum", "half"), "device": ("auto", "cpu", "cuda"),
                "precision": ("fp32", "tf32", "bf16")}
    # Keys that may change between a checkpoint and its resumption: they do not change what is computed.
    RESUMABLE_CHANGES = ("data_root", "device", "compile", "threads")

    @classmethod
    def from_dict(cls, options: dict) -> TrainConfig:
        """A validated config from plain options (CLI, params.yaml); UserError names any bad key or value."""
        known = {f.name: f for f in fields(cls)}
        values = {}
        for key, value in options.items():
            if key not in known:
                raise UserError(f"unknown training option {key!r} (known: {', '.join(known)})")
            f = known[key]
            values[key] = _coerce(key, value, f.default if f.default is not MISSING else f.default_factory())
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        def bad(key: str, why: str) -> UserError:
            return UserError(f"training option {key}={getattr(self, key)!r}: {why}")

        for key, allowed in self._CHOICES.items():
            if getattr(self, key) not in allowed:
                raise bad(key, f"must be one of {', '.join(allowed)}")
        for key in ("epochs", "batch_size"):
            if getattr(self, key) <= 0:
                raise bad(key, "must be a positive integer")
        for key in ("holdout", "seed", "threads"):
            if getattr(self, key) < 0:
                raise bad(key, "must not be negative")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise bad("lr", "must be a positive number")
        if not 0 <= self.momentum < 1:
            raise bad("momentum", "must be in [0, 1)")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise bad("weight_decay", "must be a non-negative number")
        if not 0 < self.lr_gamma <= 1:
            raise bad("lr_gamma", "must be in (0, 1]")
        if any(m <= 0 for m in self.milestones) or list(self.milestones) != sorted(set(self.milestones)):
            raise bad("milestones", "must be increasing positive epochs")

    def sgd_weight_decay(self) -> float:
        """PyTorch's weight_decay (gradient += wd * w) for the configured L2 penalty convention."""
        return 2 * self.weight_decay if self.l2_convention == "sum" else self.weight_decay

    def to_dict(self) -> dict:
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        return d


# The fields that params.yaml's `recipe:` (top level, a profile's, a family's) and a family's `grid` may set.
# The others come from elsewhere: the family (model, dataset, seeds), the profile's data (data_root), and
# `model_overrides`.
NOT_RECIPE = ("model", "model_overrides", "dataset", "data_root", "seed")
RECIPE_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.name not in NOT_RECIPE)
# What a recipe field not set in params.yaml means (rir.config: a setting equal to it names no new run).
RECIPE_DEFAULTS = {k: v for k, v in TrainConfig().to_dict().items() if k in RECIPE_FIELDS}


def check_recipe(recipe: dict, where: str) -> None:
    """The one check of a params.yaml recipe: its keys are TrainConfig's recipe fields and TrainConfig accepts
    each value (its own types and bounds), so params.yaml, `rir train` and the report agree. UserError
    names `where` (a key path such as `profiles.smoke.recipe`) and the fault."""
    for key, value in recipe.items():
        if key not in RECIPE_FIELDS:
            raise UserError(f"{where}: unknown recipe option {key!r} (known: {', '.join(RECIPE_FIELDS)})")
        try:
            TrainConfig.from_dict({key: value})
        except UserError as err:
            raise UserError(f"{where}.{key}: {err}") from None


def _coerce(key: str, value, default):
    """`value` as the type of the field's default, or UserError naming `key`."""
    kind = type(default)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        # YAML 1.1 reads "1e-4" as a string: accept numeric strings for float options.
        with contextlib.suppress(TypeError, ValueError):
            value = float(value) if not isinstance(value, bool) else value
        ok = isinstance(value, float)
    elif kind is tuple:
        ok = isinstance(value, list | tuple) and all(type(v) is int for v in value)
        value = tuple(value) if ok else value
    elif kind is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        value = dict(value) if ok else value
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise UserError(f"training option {key}={value!r}: expected {kind.__name__}")
    return value
