"""The time limit of each run's cluster job (rir/timelimits.py): the run's FLOPs on the named card, by hand.

Every expected number here is worked out in the test from its parts (the model's forward FLOPs from
torch's counter, the recipe's epochs and batch, the card's data-sheet peak, the assumed utilisation) and the
rule docs/cluster.md states: startup + margin x estimated minutes, training at least the floor, each job (a
run's training; its evaluation and ablation together) at most the ceiling, a retry asking for its attempt
number times the training's minutes.
tests/test_slurm.py shows the same minutes reach SLURM as each job's TimeLimit.
"""

import math
from pathlib import Path

import pytest
import torch

from rir.cards import PEAKS
from rir.config import expand_runs, load_params, resolve_profile
from rir.errors import UserError
from rir.layers import resnet_init_layers
from rir.models import create_model, model_summary
from rir.recipe import TrainConfig
from rir.timelimits import DEFAULTS, cluster_settings, data_sizes, rule_minutes, warning

PARAMS = load_params(str(Path(__file__).resolve().parent.parent / "params.yaml"))
PAPER = expand_runs(PARAMS, "paper")
SIZES = data_sizes(resolve_profile(PARAMS, "paper"))
WIDE, BASE = PAPER["rir_18_wide__cifar10__s0"], PAPER["resnet_init_18__cifar10__s0"]


def estimated_seconds(run, card: str, images: float) -> float:
    """`images` forward passes of the run's net on `card`, at 35 % of peak for nets of a GFLOP or more per
    image, else 15 % (rir.cards)."""
    cfg = TrainConfig.from_dict(run.train_options())
    forward = model_summary(run.model, 10, **run.model_overrides)["flops_per_image"]
    return forward * images / ((0.35 if forward >= 1e9 else 0.15) * PEAKS[card][cfg.precision])


def training_images(run) -> float:
    """Forward-pass equivalents of a run's training: 3 per image of each full batch, 1 per test image."""
    cfg = TrainConfig.from_dict(run.train_options())
    return cfg.epochs * (3 * (50_000 // cfg.batch_size) * cfg.batch_size + 10_000)


def by_hand(run, card: str, images: float, margin=DEFAULTS["margin"], startup=DEFAULTS["startup_minutes"]):
    return math.ceil(startup + margin * estimated_seconds(run, card, images) / 60)


def job(run, settings, attempt=1) -> dict:
    rules = ("train", "evaluate", "ablate") if run.ablate else ("train", "evaluate")
    return {rule: rule_minutes(rule, run, SIZES, settings, attempt) for rule in rules}


def test_a_run_asks_for_its_estimate_on_the_card_with_the_margin_and_the_floor():
    settings = cluster_settings({"cluster": {"card": "A100"}})
    wide = by_hand(WIDE, "A100", training_images(WIDE))
    base = by_hand(BASE, "A100", training_images(BASE))
    assert wide > DEFAULTS["floor_minutes"] > base  # the wide run is priced, the base run gets the floor
    assert rule_minutes("train", WIDE, SIZES, settings) == wide
    assert rule_minutes("train", BASE, SIZES, settings) == DEFAULTS["floor_minutes"]
    evaluate = by_hand(BASE, "A100", 10_000)
    assert rule_minutes("evaluate", BASE, SIZES, settings) == evaluate
    with torch.device("meta"):
        layers = len(resnet_init_layers(create_model(BASE.model, 10, **BASE.model_overrides)))
    assert BASE.ablate and layers > 0  # Figure 3 ablates it: a baseline, then 2 streams x 2 readings a layer
    # At the default margin an ablation's seconds round into its start-up; a margin of 100 shows each pass.
    wide_margin = cluster_settings({"cluster": {"card": "A100", "margin": 100}})
    passes = 1 + 4 * layers
    assert rule_minutes("ablate", BASE, SIZES, wide_margin) == by_hand(BASE, "A100", 10_000 * passes, 100)
    assert rule_minutes("ablate", BASE, SIZES, settings) == by_hand(BASE, "A100", 10_000 * passes)
    # The margin scales the estimate; another card prices the same FLOPs at its own peak.
    doubled = cluster_settings({"cluster": {"card": "A100", "margin": 6}})
    assert rule_minutes("train", WIDE, SIZES, doubled) == by_hand(WIDE, "A100", training_images(WIDE), 6)
    h100 = cluster_settings({"cluster": {"card": "H100 SXM", "floor_minutes": 1}})
    assert rule_minutes("train", WIDE, SIZES, h100) == by_hand(WIDE, "H100 SXM", training_images(WIDE)) < wide


def test_each_job_stays_within_the_ceiling_and_a_retry_of_a_training_asks_for_more():
    """Two jobs a run: its training alone, and its evaluation and ablation together (a group job, whose
    limit is their sum): each at most the ceiling."""
    settings = cluster_settings({"cluster": {"card": "A100"}})
    first, second = job(WIDE, settings), job(WIDE, settings, attempt=2)
    assert second["train"] == 2 * first["train"] and second["evaluate"] == first["evaluate"]
    assert job(WIDE, settings, attempt=3)["train"] == 3 * first["train"]
    # A ceiling below the estimate: training gets the whole ceiling, whatever its evaluation takes.
    tight = cluster_settings({"cluster": {"card": "A100", "ceiling_minutes": 30, "floor_minutes": 1}})
    for run in (WIDE, BASE):
        minutes = job(run, tight, attempt=3)
        assert minutes.pop("train") <= 30 and sum(minutes.values()) <= 30
    capped = job(WIDE, cluster_settings({"cluster": {"card": "A100", "ceiling_minutes": 30}}))
    assert capped["train"] == 30 and first["train"] > 30  # the estimate is 38: the ceiling, not less
    # An evaluation and an ablation priced over the ceiling get half of it each: their job fits.
    slow = cluster_settings({"cluster": {"card": "A100", "ceiling_minutes": 11, "floor_minutes": 1,
                                         "margin": 1000}})
    minutes = job(BASE, slow)
    assert minutes == {"train": 11, "evaluate": 5, "ablate": 5}
    assert by_hand(BASE, "A100", 10_000, 1000) > 5  # priced, the evaluation alone would pass half


def test_a_bf16_runs_ablation_is_priced_in_fp32_as_it_runs():
    """rir.ablation evaluates without autocast, and bf16's math mode turns TF32 off: plain fp32."""
    bf16 = PAPER["resnet_init_18__cifar10__s0"]
    bf16 = type(bf16)(**{**bf16.__dict__, "recipe": {**bf16.recipe, "precision": "bf16"}})
    settings = cluster_settings({"cluster": {"card": "H100 SXM", "margin": 100}})
    with torch.device("meta"):
        layers = len(resnet_init_layers(create_model(bf16.model, 10, **bf16.model_overrides)))
    forward = model_summary(bf16.model, 10, **bf16.model_overrides)["flops_per_image"]
    seconds = forward * 10_000 * (1 + 4 * layers) / (0.15 * PEAKS["H100 SXM"]["fp32"])
    assert rule_minutes("ablate", bf16, SIZES, settings) == math.ceil(5 + 100 * seconds / 60)
    assert rule_minutes("evaluate", bf16, SIZES, settings) == by_hand(bf16, "H100 SXM", 10_000, 100)


@pytest.mark.parametrize("named", [None, "V100", "Tesla T4"])
def test_without_a_card_rir_knows_every_job_asks_for_the_ceiling_with_one_warning(named):
    settings = cluster_settings({"cluster": {"card": named}} if named else {})
    for run in (WIDE, BASE):
        minutes = job(run, settings)
        assert minutes.pop("train") == DEFAULTS["ceiling_minutes"]  # the training's job: the ceiling
        assert set(minutes.values()) == {DEFAULTS["startup_minutes"]}  # the others: their start-up
    line = warning(settings)
    assert "\n" not in line and "1440 minutes" in line and "A100" in line and "docs/cluster.md" in line
    assert "every run's training asks for the ceiling" in line
    assert ("no GPU card named" in line) if named is None else (repr(named) in line)


@pytest.mark.parametrize("named, card", [("A100", "A100"), ("a100", "A100"), ("h100 pcie", "H100 PCIe"),
                                         ("h100-pcie", "H100 PCIe"), ("H100_NVL", "H100 NVL"),
                                         ("h100pcie", "H100 PCIe"), ("H100", "H100 SXM"),
                                         ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("l40s", "L40S")])
def test_a_card_is_named_as_users_name_it(named, card):
    settings = cluster_settings({"cluster": {"card": named}})
    assert settings["card"] == card and warning(settings) is None


def test_settings_from_the_command_line_are_read_as_numbers():
    # `--config 'cluster={card: A100, margin: 2}'` hands Snakefiles the nested values as strings.
    settings = cluster_settings({"cluster": {"card": "A100", "margin": "2", "floor_minutes": "20",
                                             "startup_minutes": "0"}})
    assert (settings["margin"], settings["floor_minutes"], settings["startup_minutes"]) == (2, 20, 0)
    ceiling = cluster_settings({"cluster": {"ceiling_minutes": "1e3"}})["ceiling_minutes"]
    assert ceiling == 1000 and isinstance(ceiling, int)  # whole minutes: SLURM's -t
    assert cluster_settings({"cluster": {"card": "null"}})["card"] is None


@pytest.mark.parametrize("given, fault", [
    ({"margin": 0.5}, "cluster.margin: 0.5 is less than the minimum of 1"),
    ({"cards": "A100"}, "'cards' was unexpected"),
    ({"floor_minutes": 0}, "cluster.floor_minutes: 0 is less than the minimum of 1"),
    ({"floor_minutes": 100, "ceiling_minutes": 50}, "cluster.floor_minutes (100) is above"),
    ({"ceiling_minutes": 9, "floor_minutes": 1},
     "cluster.ceiling_minutes (9) is below the start-up of a run's evaluation and ablation (10)"),
    ({"margin": "lots"}, "cluster.margin: 'lots' is not of type 'number'"),
    ({"margin": "nan"}, "cluster.margin: nan is not a finite number"),
    ({"margin": float("inf")}, "cluster.margin: inf is not a finite number"),
])
def test_a_bad_setting_is_one_line_naming_it(given, fault):
    with pytest.raises(UserError) as err:
        cluster_settings({"cluster": given})
    assert fault in str(err.value) and "\n" not in str(err.value)
