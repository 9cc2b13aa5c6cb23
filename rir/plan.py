"""`rir plan`: every run of a profile with its estimated device time, and the paper profile on a GPU card.

Throughput per distinct model config (model, overrides, batch size, precision, channels_last, compile):
- `--bench-json FILE...`: the `train_images_per_s` of `rir bench --json` records whose model, overrides and
  batch size match (their precision flags are reported with them); nothing is measured;
- otherwise measured here with short `rir bench` runs (the project's step only, no bare loop): first the
  config with the fewest FLOPs per step (its batch cut so a step stays under REFERENCE_MAX_FLOPS), then
  the others in order of cost while the predicted measuring time stays inside `--measure-budget` seconds;
- a config left unmeasured is estimated from its FLOPs at the achieved FLOP/s of the measured config
  nearest in FLOPs per image (small nets reach lower FLOP/s than big ones; the nearest is the fairest guess).

A run's time = epochs x (training images / train images/s + evaluation images / (3 x train images/s)):
evaluation is a forward pass, a third of a training step's FLOPs (rir.bench). Start-up and checkpoints are
left out (seconds per run).

The card figure (`--card`, default H100 SXM) is an ESTIMATE from FLOPs, not a measurement: each run's FLOPs
at the card's dense peak for the run's math mode (`precision`: exact fp32 on the plain fp32 units, TF32 or
bf16 on the tensor cores; rir.bench.PEAKS, from the data sheets), at an assumed utilisation of 35 % for nets
of 1 GFLOP per image or more (issue 7's target for rir_18_wide, set for bf16 and assumed alike for the other
modes) and 15 % for the smaller ones (narrow convs fill a card badly; several runs share it through
`runs_per_gpu`). It is also given at a flat 10 %; the target is the paper profile in 4 H100-hours.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from rir.errors import UserError

CIFAR_SIZES = (50_000, 10_000)  # training and test images of CIFAR-10 and CIFAR-100
REFERENCE_MAX_FLOPS = 2e10  # training FLOPs of one reference step: about a second on a laptop CPU
DEFAULT_CARD = "H100 SXM"  # the card of the cost target
UTILISATION = ((1e9, 0.35), (0.0, 0.15))  # (min forward FLOPs per image, assumed fraction of peak)
FLAT_UTILISATION = 0.10
TARGET_H100_HOURS = 4.0


@dataclass
class ConfigCost:
    """One distinct model config of a profile and its throughput."""

    model: str
    overrides: dict
    batch_size: int
    precision: str
    channels_last: bool
    compile: bool
    flops_per_image: int  # forward
    train_images_per_s: float | None = None
    source: str = ""  # measured | bench-json (...) | flops (...)
    achieved_flops_per_s: float | None = None

    @property
    def step_flops(self) -> float:
        return 3 * self.flops_per_image * self.batch_size


def _config_key(opts: dict) -> tuple:
    return (opts["model"], json.dumps(opts["model_overrides"], sort_keys=True), opts["batch_size"],
            opts["precision"], opts["channels_last"], opts["compile"])


def _data_sizes(resolved: dict) -> tuple[int, int]:
    if resolved.get("data") == "synthetic":
        synth = resolved.get("synthetic", {})
        return int(synth.get("n_train", 0)), int(synth.get("n_test", 0))
    return CIFAR_SIZES


def _runs(params: dict, profile: str | None, family: str | None = None):
    """(resolved profile, [(RunSpec, TrainConfig)]) in expand_runs' order: the default target's runs, or
    with `family` those of that optional family (the grid search, the readings of RiR)."""
    from rir.config import expand_runs, resolve_profile
    from rir.recipe import TrainConfig

    resolved = resolve_profile(params, profile)
    runs = expand_runs(params, profile) if family is None else expand_runs(params, profile, True, family)
    return resolved, [(run, TrainConfig.from_dict(run.train_options())) for run in runs.values()]


def _configs(runs) -> dict[tuple, ConfigCost]:
    from rir.models import model_summary

    configs: dict[tuple, ConfigCost] = {}
    for _, cfg in runs:
        opts = cfg.to_dict()
        key = _config_key(opts)
        if key not in configs:
            fwd = model_summary(cfg.model, 10, **cfg.model_overrides)["flops_per_image"]
            configs[key] = ConfigCost(cfg.model, dict(cfg.model_overrides), cfg.batch_size, cfg.precision,
                                      cfg.channels_last, cfg.compile, fwd)
    return configs


def _from_bench_json(configs: dict[tuple, ConfigCost], paths: list[str]) -> str:
    records = []
    for path in paths:
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
            ok = isinstance(record, dict) and record.get("train_images_per_s", 0) > 0
        except (OSError, ValueError):
            ok = False
        if not ok:
            raise UserError(f"--bench-json {path}: not a readable `rir bench --json` record")
        records.append(record)
    for c in configs.values():
        for r in records:
            if (r["model"], r.get("model_overrides") or {}, r["batch_size"]) == (c.model, c.overrides,
                                                                                 c.batch_size):
                flags = "+".join([r["precision"]] + ["channels_last"] * bool(r.get("channels_last"))
                                 + ["compile"] * bool(r.get("compile")))
                c.train_images_per_s, c.source = r["train_images_per_s"], f"bench-json ({flags})"
                c.achieved_flops_per_s = 3 * c.flops_per_image * c.train_images_per_s
                break
    devices = sorted({f"{r['device']} ({r['device_name']})" for r in records})
    return ", ".join(devices)


def _measure(configs: dict[tuple, ConfigCost], device: str, budget_s: float, progress) -> str:
    from rir.bench import BenchConfig, run_bench

    def bench(c: ConfigCost, batch: int) -> dict:
        progress(f"measuring {c.model} {c.overrides or ''} batch {batch} ({c.precision})")
        return run_bench(BenchConfig(model=c.model, batch_size=batch, steps=2, warmup=1, device=device,
                                     precision=c.precision, channels_last=c.channels_last, compile=c.compile,
                                     model_overrides=c.overrides, bare=False), progress=lambda _: None)

    order = sorted(configs.values(), key=lambda c: c.step_flops)
    ref = order[0]
    batch = min(ref.batch_size, max(8, int(REFERENCE_MAX_FLOPS // (3 * ref.flops_per_image))))
    result = bench(ref, batch)
    ref.achieved_flops_per_s = result["achieved_flops_per_s"]
    ref.train_images_per_s = ref.achieved_flops_per_s / (3 * ref.flops_per_image)
    ref.source = "measured" if batch == ref.batch_size else f"measured at batch {batch}"
    spent = 0.0
    for c in order[1:]:
        rate = max(m.achieved_flops_per_s for m in order if m.achieved_flops_per_s)
        cost = 3 * c.step_flops / rate  # warmup + 2 timed steps, at the best rate seen so far
        if spent + cost > budget_s:
            continue
        result = bench(c, c.batch_size)
        spent += cost
        c.train_images_per_s, c.source = result["train_images_per_s"], "measured"
        c.achieved_flops_per_s = result["achieved_flops_per_s"]
    return f"{device} ({result['device_name']})"


def _fill_from_flops(configs: dict[tuple, ConfigCost]) -> None:
    measured = [c for c in configs.values() if c.achieved_flops_per_s]
    if not measured:
        raise UserError("no run of the profile has a measured throughput: no --bench-json record matches a "
                        "run's model, overrides, batch size and math mode (or --measure-budget left no time)")
    for c in configs.values():
        if c.train_images_per_s is None:
            near = min(measured, key=lambda m: abs(math.log(m.flops_per_image / c.flops_per_image)))
            c.achieved_flops_per_s = near.achieved_flops_per_s
            c.train_images_per_s = near.achieved_flops_per_s / (3 * c.flops_per_image)
            c.source = f"flops (at {near.model}'s FLOP/s)"


def _card_estimate(params: dict, profile: str, card: str) -> dict:
    """The device-hours of `profile` on `card` from FLOPs, each run at its math mode's dense peak and the
    assumed utilisation (module docstring); `optional` prices each optional family's runs beyond the default
    target's, as a share of the default target."""
    from rir.bench import PEAKS

    if not PEAKS.get(card):
        known = ", ".join(c for c, peaks in PEAKS.items() if peaks)
        raise UserError(f"--card {card!r}: no peak known for it (known: {known})")
    resolved, runs = _runs(params, profile)
    out = _card_hours(resolved, runs, card)
    default_ids = {run.run_id for run, _ in runs}
    out["optional"] = {}
    for name in resolved.get("optional_families", {}):
        extra = [(run, cfg) for run, cfg in _runs(params, profile, name)[1] if run.run_id not in default_ids]
        hours = _card_hours(resolved, extra, card)["hours"] if extra else 0.0
        out["optional"][name] = {"new_runs": len(extra), "hours": hours,
                                 "percent_of_default": 100 * hours / out["hours"] if out["hours"] else None}
    return out


def _card_hours(resolved: dict, runs: list, card: str) -> dict:
    from rir.bench import PEAKS

    n_train, n_test = _data_sizes(resolved)
    configs = _configs(runs)
    hours = flat_hours = 0.0
    modes: dict[str, int] = {}
    for _, cfg in runs:
        fwd = configs[_config_key(cfg.to_dict())].flops_per_image
        train_n = n_train - cfg.holdout
        flops = cfg.epochs * fwd * (3 * (train_n // cfg.batch_size) * cfg.batch_size
                                    + (cfg.holdout or n_test))
        peak = PEAKS[card][cfg.precision]  # the card runs the mode asked for: TF32 exists on all of them
        modes[cfg.precision] = modes.get(cfg.precision, 0) + 1
        utilisation = next(u for min_flops, u in UTILISATION if fwd >= min_flops)
        hours += flops / (utilisation * peak) / 3600
        flat_hours += flops / (FLAT_UTILISATION * peak) / 3600
    return {
        "kind": "estimate from FLOPs, not a measurement", "profile": resolved["profile"], "runs": len(runs),
        "card": card, "peaks_used": {mode: {"dense_peak_flops_per_s": PEAKS[card][mode], "runs": n}
                                     for mode, n in sorted(modes.items())},
        "peak_source": "NVIDIA data sheet, dense (rir.bench.PEAKS)",
        "assumed_utilisation": {f">= {m:g} FLOP/image" if m else "smaller nets": u for m, u in UTILISATION},
        "hours": hours, "hours_at_flat_10_percent": flat_hours, "target_h100_hours": TARGET_H100_HOURS,
    }


def make_plan(params_path: str, profile: str | None = None, device: str = "auto",
              bench_json: list[str] | None = None, measure_budget_s: float = 60.0, card: str = DEFAULT_CARD,
              progress=lambda m: print(f"rir plan: {m}", file=sys.stderr, flush=True)) -> dict:
    """The plan of `profile` (default: params' own) on `device`, measured or from --bench-json records."""
    import torch

    from rir.config import load_params

    params = load_params(params_path)
    paper = "paper" if "paper" in params.get("profiles", {}) else None
    estimate = _card_estimate(params, paper or profile, card)  # a bad --card is refused before measuring
    resolved, runs = _runs(params, profile)
    n_train, n_test = _data_sizes(resolved)
    configs = _configs(runs)
    if not configs:
        raise UserError(f"profile {resolved['profile']!r} has no runs")
    if bench_json:
        source = _from_bench_json(configs, bench_json)
    else:
        device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        source = _measure(configs, device, measure_budget_s, progress)
    _fill_from_flops(configs)

    rows = []
    for run, cfg in runs:
        c = configs[_config_key(cfg.to_dict())]
        train_n = n_train - cfg.holdout
        images = (train_n // cfg.batch_size) * cfg.batch_size  # drop_last: full batches only
        eval_images = cfg.holdout or n_test
        seconds = cfg.epochs * (images + eval_images / 3) / c.train_images_per_s
        rows.append({"run_id": run.run_id, "families": list(run.families), "model": run.model,
                     "model_overrides": dict(run.model_overrides), "dataset": run.dataset, "seed": run.seed,
                     "epochs": cfg.epochs, "batch_size": cfg.batch_size, "images_per_epoch": images,
                     "eval_images": eval_images, "flops_per_image": c.flops_per_image,
                     "train_images_per_s": c.train_images_per_s, "throughput_source": c.source,
                     "estimated_seconds": seconds})
    return {
        "profile": resolved["profile"], "data": resolved.get("data"), "throughput_from": source,
        "runs": rows, "total_device_hours": sum(r["estimated_seconds"] for r in rows) / 3600,
        "card_estimate": estimate,
    }


def format_plan(plan: dict) -> str:
    """The human-readable table of `make_plan`'s result."""
    head = ("run_id", "families", "model", "dataset", "seed", "epochs", "img/epoch", "img/s", "source",
            "hours")
    rows = [(r["run_id"], ",".join(r["families"]), r["model"], r["dataset"], str(r["seed"]), str(r["epochs"]),
             str(r["images_per_epoch"]), f"{r['train_images_per_s']:.4g}", r["throughput_source"],
             f"{r['estimated_seconds'] / 3600:.3g}") for r in plan["runs"]]
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
             for row in (head, *rows)]
    h = plan["card_estimate"]
    peaks = ", ".join(f"{mode} {p['dense_peak_flops_per_s'] / 1e12:g} TFLOP/s ({p['runs']} runs)"
                      for mode, p in h["peaks_used"].items())
    lines += [
        f"total: {len(plan['runs'])} runs, {plan['total_device_hours']:.3g} device-hours on "
        f"{plan['throughput_from']} (profile {plan['profile']}, {plan['data']} data)",
        f"{h['card']} ESTIMATE (from FLOPs, not measured): profile {h['profile']}, {h['runs']} runs, "
        f"{h['hours']:.2f} {h['card']}-hours at 35 % of the dense peak of each run's math mode for nets "
        f">= 1 GFLOP/image and 15 % below; {h['hours_at_flat_10_percent']:.2f} h at a flat 10 % "
        f"(target: <= {h['target_h100_hours']:g} H100-hours)",
        f"peak used ({h['card']}, {h['peak_source']}): {peaks}",
    ]
    for name, o in h.get("optional", {}).items():
        pct = o["percent_of_default"]
        share = "" if pct is None else f", +{pct:.0f} % of the default"
        lines.append(f"optional family {name} (`snakemake {name}`): {o['new_runs']} runs beyond the default "
                     f"target's, {o['hours']:.2f} {h['card']}-hours at the same assumptions{share}")
    return "\n".join(lines)
