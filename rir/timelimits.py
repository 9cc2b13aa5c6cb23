"""The time limit each run's cluster job asks for: `rir plan`'s FLOP estimate of the run on the user's card.

On a cluster (workflow/profiles/slurm) a run is two jobs: its training, then its evaluation and ablation on
one GPU (a group job, whose SLURM time limit `sbatch -t` is the sum of its rules'). Each rule asks Snakemake
for a `runtime` (minutes):

    startup_minutes + margin x (its FLOPs on the card) / 60 s, at least 1,

the train rule's then held between floor_minutes and ceiling_minutes (which can be a partition's MaxTime),
evaluate's and ablate's at most half the ceiling each. Every retry of a training asks for its attempt number
times its minutes (within the same bounds): a run that overran resumes from its checkpoint with room to
spare. The FLOPs on the card are the estimate of `rir plan
--card` (rir.cards: the card's dense peak in the run's math mode at an assumed utilisation), never a
measurement: no run has been timed on a GPU here, hence the margin. A run's FLOPs: each epoch 3x forward for
every training image it steps on and 1x for its evaluation; evaluate is one pass over the test images; ablate
one pass for the baseline and one per (ResNet Init layer, stream, reading) it zeroes, in fp32 for a bf16 run
(rir.ablation evaluates without autocast).

The settings are the Snakemake config's `cluster` mapping (workflow/profiles/slurm/cluster.yaml, or
`--config 'cluster={card: A100}'`), not params.yaml: a card is a property of the cluster, not of the
experiment, and changing it retrains nothing. With no card named, or one not in rir.cards.PEAKS, every
training asks for the ceiling (and an evaluation or ablation for its start-up), and the workflow prints one
warning line saying so (`warning`).

Evaluating a limit builds the run's model on torch's meta device to count its FLOPs (about 0.1 s a model,
once per distinct model); the Snakefile calls it only when a job's resources are needed, so parsing stays
torch-free.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

from rir.cards import PEAKS, card_named, known_cards, seconds_on
from rir.errors import UserError

# The `cluster` settings' defaults (rir/schemas/cluster.schema.json checks their types and ranges).
DEFAULTS: dict[str, Any] = {
    "card": None,  # the GPU each run's job gets: a card of rir.cards.PEAKS (or a name for one: `a100`)
    "margin": 3.0,  # the estimate's factor: an assumed utilisation, not a measured one
    "startup_minutes": 5,  # per rule: the interpreter, torch, CUDA's context, the data, compilation
    "floor_minutes": 15,  # the train rule's least (a job shorter than this gains little in a queue)
    "ceiling_minutes": 1440,  # a job's most, and what a training asks for without a known card
}
CIFAR_SIZES = (50_000, 10_000)  # training and test images of CIFAR-10 and CIFAR-100
RULES = ("train", "evaluate", "ablate")


SCHEMA = Path(__file__).resolve().parent / "schemas" / "cluster.schema.json"


def _validate(settings: dict) -> None:
    """The settings against rir/schemas/cluster.schema.json (not params.yaml's schema: a change to the
    cluster settings must not touch a file every run's configuration depends on); the first fault in one
    line, named by its key."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    errors = sorted(validator.iter_errors(settings), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        key = ".".join(str(p) for p in errors[0].absolute_path)
        raise UserError(f"the Snakemake config (workflow/profiles/slurm/cluster.yaml, --config): {key}: "
                        f"{errors[0].message}")


def _typed(given):
    """Snakemake's --config passes the values of a nested mapping as strings (`cluster={margin: 2}` gives
    "2"): read numbers and null as YAML would, leave the rest to the schema."""
    if not isinstance(given, dict):
        return given
    out = dict(given)
    for key, value in given.items():
        if isinstance(value, str) and value.strip().lower() in ("null", "none", "~", ""):
            out[key] = None
        elif isinstance(value, str) and key != "card":
            for kind in (int, float):
                try:
                    out[key] = kind(value)
                    break
                except ValueError:
                    pass
    return out


def cluster_settings(config: dict) -> dict:
    """The `cluster` settings of a Snakemake config over DEFAULTS, the card resolved to a key of PEAKS
    ("unknown" for a name rir does not know, None when none is named). UserError for a value of the wrong
    type or range (the schema's `$defs/cluster`), for a floor above the ceiling, and for a ceiling below the
    start-up of a run's evaluation and ablation (their group job)."""
    given = _typed(config.get("cluster") or {})
    _validate({"cluster": given})
    settings = {**DEFAULTS, **given}
    named = settings["card"]
    settings["card_named"] = named
    if named is not None:
        settings["card"] = card_named(str(named))
    if not math.isfinite(settings["margin"]):
        raise UserError(f"cluster.margin: {settings['margin']} is not a finite number")
    for key in ("startup_minutes", "floor_minutes", "ceiling_minutes"):  # whole minutes: SLURM's -t
        settings[key] = int(settings[key])
    if settings["floor_minutes"] > settings["ceiling_minutes"]:
        raise UserError(f"cluster.floor_minutes ({settings['floor_minutes']}) is above "
                        f"cluster.ceiling_minutes ({settings['ceiling_minutes']})")
    least = 2 * max(1, settings["startup_minutes"])  # the evaluation's job: two steps' start-up
    if settings["ceiling_minutes"] < least:
        raise UserError(f"cluster.ceiling_minutes ({settings['ceiling_minutes']}) is below the start-up of "
                        f"a run's evaluation and ablation ({least})")
    return settings


def warning(settings: dict) -> str | None:
    """The one line the workflow prints under a cluster executor when runs cannot be priced, else None."""
    ceiling = settings["ceiling_minutes"]
    if settings["card"] is None:
        return (f"warning: no GPU card named (cluster.card), so every run's training asks for the ceiling, "
                f"{ceiling} minutes: name yours in workflow/profiles/slurm/cluster.yaml or with --config "
                f"'cluster={{card: A100}}' (known: {', '.join(known_cards())}; docs/cluster.md)")
    if settings["card"] == "unknown":
        return (f"warning: cluster.card {settings['card_named']!r} is not a card rir knows (known: "
                f"{', '.join(known_cards())}), so every run's training asks for the ceiling, "
                f"{ceiling} minutes (cluster.ceiling_minutes; docs/cluster.md)")
    return None


@functools.cache
def _model_costs(model: str, overrides: str, num_classes: int) -> tuple[int, int]:
    """(forward FLOPs per image, ResNet Init layers) of a model, built on the meta device."""
    import torch

    from rir.layers import resnet_init_layers
    from rir.models import create_model, model_summary

    kwargs = json.loads(overrides)
    with torch.device("meta"):
        layers = len(resnet_init_layers(create_model(model, num_classes, **kwargs)))
    return model_summary(model, num_classes, **kwargs)["flops_per_image"], layers


def data_sizes(resolved_profile: dict) -> tuple[int, int]:
    """(training images, test images) a profile's runs see: CIFAR's, or its synthetic data's."""
    if resolved_profile.get("data") == "synthetic":
        synth = resolved_profile.get("synthetic", {})
        return int(synth.get("n_train", 0)), int(synth.get("n_test", 0))
    return CIFAR_SIZES


def train_flops(cfg, forward: float, sizes: tuple[int, int]) -> float:
    """FLOPs of a run's training (rir.recipe.TrainConfig `cfg`): each epoch, 3x forward for every image of
    its full batches and 1x for its evaluation (the held-out images, else the test set)."""
    n_train, n_test = sizes
    steps = (n_train - cfg.holdout) // cfg.batch_size
    return cfg.epochs * forward * (3 * steps * cfg.batch_size + (cfg.holdout or n_test))


def rule_seconds(rule: str, run, sizes: tuple[int, int], card: str) -> float:
    """The estimated seconds of one rule's work for a run (rir.config.RunSpec) on `card`."""
    from rir.recipe import TrainConfig

    cfg = TrainConfig.from_dict(run.train_options())
    num_classes = 100 if run.dataset == "cifar100" else 10
    forward, layers = _model_costs(cfg.model, json.dumps(cfg.model_overrides, sort_keys=True), num_classes)
    n_test = sizes[1]
    flops = {"train": lambda: train_flops(cfg, forward, sizes),
             "evaluate": lambda: forward * n_test,
             "ablate": lambda: forward * n_test * (1 + 4 * layers)}[rule]()  # 2 streams x 2 readings a layer
    # rir.ablation evaluates without autocast: a bf16 run's ablation runs in fp32 (TF32 off, rir.device).
    precision = "fp32" if rule == "ablate" and cfg.precision == "bf16" else cfg.precision
    return seconds_on(card, precision, flops, forward)


def rule_minutes(rule: str, run, sizes: tuple[int, int], settings: dict, attempt: int = 1) -> int:
    """The `runtime` (minutes) a rule of a run asks for on attempt `attempt` (module docstring): a job's
    limit never passes `ceiling_minutes`, which can be a partition's MaxTime."""
    if rule not in RULES:
        raise ValueError(f"no time limit for rule {rule!r}")
    card = settings["card"]
    priced = card is not None and bool(PEAKS.get(card))

    def estimate(name: str) -> int:
        if not priced:  # no card to price: the small rules get their start-up, training the ceiling
            return max(1, settings["startup_minutes"])
        return max(1, math.ceil(settings["startup_minutes"]
                                + settings["margin"] * rule_seconds(name, run, sizes, card) / 60))

    ceiling = settings["ceiling_minutes"]
    if rule != "train":  # seconds of work, sharing one job: half the ceiling each at most
        return min(ceiling // 2, estimate(rule))
    if not priced:
        return ceiling
    return min(ceiling, max(estimate("train"), settings["floor_minutes"]) * max(1, attempt))
