"""Mutation harness: plant each bug of a list, one at a time, in a scratch copy, and check the tests catch it.

A mutant is one exact text replacement in one file of the `rir` package or the project's settings (it must
occur exactly once, so a mutant that no longer matches the code fails loudly instead of testing nothing) and
the tests that cover that module. Each mutant runs in its own copy of the working tree (the files git tracks
or would track, as a fresh clone has them), with PYTHONPATH pointing at the copy so subprocesses and Snakemake
jobs import the mutant too. A mutant is killed when its tests fail (pytest exit 1), survived when they pass;
anything else (a collection error, a timeout) is reported as an error, never as killed.

    python3 tests/mutants.py                 # every mutant, each with its own test selection
    python3 tests/mutants.py --all           # every mutant against the whole fast suite (-m "not slow")
    python3 tests/mutants.py NAME ...        # some of them; --list names them all, --check only matches them

Selections are narrow so the harness fits two shared cores; `--all` (much slower) shows a mutant is caught
by the suite and not just by the tests named. SLURM tests never run here (tests/test_slurm.py is ignored):
they start and share the one-node cluster. The result of the last full run is recorded in DEVELOPING.md.
tests/test_mutants.py runs a few cheap mutants in CI, so the harness itself stays alive.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST_SUITE = ("-m", "not slow", "--ignore=tests/test_slurm.py")
TIMEOUT_S = 1800  # a hung test; a mutant's selection takes seconds to a few minutes


@dataclass(frozen=True)
class Mutant:
    name: str  # module-bug, what a reader of the report sees
    path: str  # file in the repository
    old: str  # exact text, found exactly once
    new: str  # what it becomes
    tests: tuple[str, ...]  # pytest arguments: the tests that cover the module


def m(name, path, old, new, *tests):
    return Mutant(name, path, old, new, tuple(tests))


MUTANTS = [
    # data: bugs that hit training and test alike, so a net still learns (tests/test_real_photos.py pins what
    # a person sees in the real photographs; DEVELOPING.md says which the synthetic tests alone catch)
    m("data-channel-order-swapped", "rir/data.py",
      "    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels",
      "    return data.reshape(-1, 3, 32, 32)[:, ::-1].transpose(0, 2, 3, 1).copy(), labels",
      "tests/test_real_photos.py"),
    m("data-image-transposed", "rir/data.py",
      "    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels",
      "    return data.reshape(-1, 3, 32, 32).transpose(0, 3, 2, 1).copy(), labels",
      "tests/test_real_photos.py"),
    m("data-labels-shifted-by-one", "rir/data.py",
      "    labels = np.asarray(labels, dtype=np.int64)\n",
      "    labels = (np.asarray(labels, dtype=np.int64) + 1) % spec.num_classes\n",
      "tests/test_real_photos.py"),
    m("data-unofficial-copy-forgotten", "rir/data.py",
      "    if local == target and unofficial_sidecar(target).is_file():",
      "    if False:",
      "tests/test_data.py", "-k", "unofficial"),
    m("data-official-replacement-stays-unofficial", "rir/data.py",
      "    if src.remembered and actual == spec.md5:",
      "    if False:",
      "tests/test_data.py", "-k", "unofficial"),
    m("data-unofficial-counts-unchecked", "rir/data.py",
      "            _check_counts(arrays, spec, str(src.url or src.local))",
      "            pass",
      "tests/test_data.py", "-k", "counts"),
    m("report-unofficial-copy-passes-for-official", "rir/report/collect.py",
      '    elif "unofficial" in kinds:',
      "    elif False:",
      "tests/test_real_photos.py", "-k", "short_run"),
    # plan: each run's wall time from its own code, threads and settings (issue 20)
    m("plan-measures-with-default-threads", "rir/plan.py",
      "    torch.set_num_threads(threads)\n    seed_everything", "    seed_everything", "tests/test_plan.py"),
    m("plan-keeps-the-runs-threads", "rir/plan.py", "        torch.set_num_threads(saved[0])\n", "",
      "tests/test_plan.py"),
    m("plan-not-deterministic-like-the-run", "rir/plan.py",
      "    seed_everything(cfg.seed, cfg.deterministic)  # and build",
      "    (cfg.seed, cfg.deterministic)  # and build",
      "tests/test_plan.py"),
    m("plan-evaluation-a-third-of-a-step", "rir/plan.py",
      "    cold, warm = (clock.time(lambda: evaluate_model(model, one, lambda: autocast(device, "
      "cfg.precision)))"
      "\n                  for _ in range(2))",
      "    cold = warm = c.step * n / (3 * cfg.batch_size)", "tests/test_plan.py"),
    m("plan-evaluation-at-the-training-batch", "rir/plan.py",
      "    full = min(test_loader.batch_size, test_loader.num_samples)",
      "    full = min(cfg.batch_size, test_loader.num_samples)", "tests/test_plan.py"),
    m("plan-no-start-up", "rir/plan.py", '{"startup": common["startup"], "data"', '{"startup": 0.0, "data"',
      "tests/test_plan.py"),
    m("plan-no-checkpoints", "rir/plan.py", '"checkpoints": cfg.epochs * c.checkpoint}',
      '"checkpoints": 0.0}',
      "tests/test_plan.py"),
    m("plan-total-is-the-steps", "rir/plan.py", '"estimated_seconds": sum(seconds.values())',
      '"estimated_seconds": seconds["steps"]', "tests/test_plan.py"),
    m("plan-wall-clock-for-one-thread", "rir/plan.py",
      'self.cpu_time = device, device.type == "cpu" and threads == 1', 'self.cpu_time = device, False',
      "tests/test_plan.py"),
    m("plan-extrapolated-called-measured", "rir/plan.py",
      "c.source = c.eval_source = f\"extrapolated: FLOPs at {near.label}'s FLOP/s\"",
      'c.source = c.eval_source = "measured"', "tests/test_plan.py"),
    m("train-holdout-taken-from-the-front", "rir/train.py",
      "(arrays.train_images[-holdout:], arrays.train_labels[-holdout:])",
      "(arrays.train_images[:holdout], arrays.train_labels[:holdout])",
      "tests/test_train.py", "-k", "holdout"),
    m("config-a-default-recipe-setting-names-a-new-run", "rir/config.py",
      "recipe.get(k, RECIPE_DEFAULTS.get(k))", "recipe.get(k)", "tests/test_config.py", "-k", "default"),
    m("report-grid-point-forgets-trainconfigs-default", "rir/report/aggregate.py",
      "        elif key in spec.recipe or key in RECIPE_DEFAULTS:", "        elif key in spec.recipe:",
      "tests/test_config.py", "-k", "default"),
    m("config-profile-null-kept", "rir/config.py",
      "        if value is None:\n            out.pop(key, None)\n        elif",
      "        if False:\n            pass\n        elif",
      "tests/test_config.py", "-k", "null or laptop"),
    m("plan-schedule-ignores-the-runs-threads", "rir/plan.py",
      "min(len(rows), cores // threads)", "min(len(rows), cores)", "tests/test_plan.py", "-k", "schedules"),
    m("data-no-hint-of-the-flag", "rir/data.py", "    if src.kind != \"official\":\n        return \"\"",
      "    if True:\n        return \"\"", "tests/test_data.py", "-k", "official_md5_refusal"),
    m("data-official-md5-taken-as-unofficial", "rir/data.py", "    if md5 == spec.md5:\n        raise",
      "    if False:\n        raise", "tests/test_data.py", "-k", "bad_unofficial"),
    m("data-synth-tarball-taken-as-a-copy", "rir/data.py", "        if unofficial and md5 != spec.md5:",
      "        if False:", "tests/test_data.py", "-k", "bad_unofficial"),
    m("data-kind-contradiction-trusted", "rir/data.py",
      "    if manifest.get(\"synthetic\") is not (kind == \"synthetic\"):",
      "    if False:", "tests/test_data.py", "-k", "version_1"),
    m("data-statistics-over-the-wrong-axis", "rir/data.py",
      "        chunk = images[start : start + 4096].reshape(-1, 3).astype(np.int64)",
      "        chunk = images[start : start + 4096].reshape(3, -1).T.astype(np.int64)",
      "tests/test_real_photos.py"),
    # layers: ResNet Init and Figure 3's zeroing
    m("layers-identity-added-into-W", "rir/layers.py",
      '        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")\n\n'
      '    def effective_weight(self) -> torch.Tensor:\n        """W + I:',
      '        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")\n'
      '        self.weight.data += identity\n\n'
      '    def effective_weight(self) -> torch.Tensor:\n        """W + I:',
      "tests/test_layers.py", "-k", "msr"),
    m("layers-explicit-form-drops-the-identity", "rir/layers.py",
      "        return out + F.pad(r, (0, 0, 0, 0, 0, self.out_channels - self.residual_channels))",
      "        return out",
      "tests/test_layers.py::test_resnet_init_equals_generalized_block"),
    m("layers-read-zeroes-the-write-kernels", "rir/layers.py",
      "        return [(layer.weight, (slice(None), slice(None, cut) if residual else slice(cut, None)))]",
      "        return [(layer.weight, (slice(None, cut) if residual else slice(cut, None),))]",
      "tests/test_layers.py", "-k", "zero_stream"),
    m("layers-zero-stream-not-restored", "rir/layers.py",
      "                tensor[index] = values", "                pass",
      "tests/test_layers.py", "-k", "zero_stream"),
    # models
    m("models-rir-wide-built-as-plain-resnet", "rir/models/resnet.py",
      '(rir/reference/paper.yaml)."""\n    return net(num_classes, resnet_init=True',
      '(rir/reference/paper.yaml)."""\n    return net(num_classes, resnet_init=False',
      "tests/test_models.py", "-k", "layers_its_name"),
    m("models-init-adds-the-identity-into-W", "rir/models/__init__.py",
      '                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")\n',
      '                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")\n'
      '                if hasattr(m, "identity"):\n                    m.weight.data += m.identity\n',
      "tests/test_models.py", "-k", "msr"),
    m("models-residual-stream-a-quarter-of-the-channels", "rir/models/resnet.py",
      "residual_channels=n_in // 2,\n", "residual_channels=n_in // 4,\n",
      "tests/test_models.py", "-k", "layers_its_name"),
    m("models-rir-outer-shortcut-residual-only", "rir/models/resnet.py",
      'RIR = dict(outer_shortcut="both")', 'RIR = dict(outer_shortcut="residual")',
      "tests/test_models.py", "-k", "outer_shortcut or parameter_count"),
    # recipe
    m("recipe-l2-as-half-the-sum", "rir/recipe.py",
      'return 2 * self.weight_decay if self.l2_convention == "sum" else self.weight_decay',
      "return self.weight_decay", "tests/test_train.py", "-k", "defaults_are_the_papers_recipe"),
    m("recipe-milestones-one-epoch-early", "rir/recipe.py",
      "milestones: tuple = (42, 62)", "milestones: tuple = (41, 61)",
      "tests/test_train.py", "-k", "defaults_are_the_papers_recipe"),
    m("recipe-minibatch-512", "rir/recipe.py", "batch_size: int = 500", "batch_size: int = 512",
      "tests/test_train.py", "-k", "defaults_are_the_papers_recipe"),
    # step
    m("step-batchnorm-and-biases-decayed", "rir/step.py",
      '{"params": plain, "weight_decay": 0.0}', '{"params": plain, "weight_decay": weight_decay}',
      "tests/test_precision.py", "-k", "one_sgd_step or accumulates_on_the_device"),
    m("step-gradients-never-zeroed", "rir/step.py",
      "    optimizer.zero_grad(set_to_none=True)\n", "",
      "tests/test_precision.py", "-k", "one_sgd_step"),
    m("step-mean-loss-summed-as-if-one-image", "rir/step.py",
      "    loss_sum += loss.detach().double() * y.shape[0]", "    loss_sum += loss.detach().double()",
      "tests/test_precision.py", "-k", "one_sgd_step"),
    # train
    m("train-lr-schedule-one-epoch-late", "rir/train.py",
      "list(cfg.milestones), gamma", "[m + 1 for m in cfg.milestones], gamma",
      "tests/test_train.py", "-k", "milestone"),
    m("train-resume-without-rng-restore", "rir/train.py",
      '    restore_rng(ckpt["rng"])\n', "", "tests/test_train.py", "-k", "milestone"),
    m("train-resume-without-scheduler-restore", "rir/train.py",
      '    run.scheduler.load_state_dict(ckpt["scheduler"])\n', "", "tests/test_train.py", "-k", "milestone"),
    m("train-bf16-master-weights", "rir/train.py",
      "    apply_math_mode(cfg.precision)  # exact fp32",
      '    if cfg.precision == "bf16":\n        model.to(torch.bfloat16)\n'
      "    apply_math_mode(cfg.precision)  # exact fp32",
      "tests/test_precision.py", "-k", "master_weights"),
    m("train-per-step-copy-to-host", "rir/train.py",
      "        count += y.shape[0]\n",
      '        count += y.shape[0]\n        _ = loss_sum.to("cpu")\n',
      "tests/test_precision.py", "-k", "fixed_number"),
    m("train-resumes-a-finished-run", "rir/train.py",
      '    if int(saved.get("epoch", 0)) >= cfg.epochs:\n'
      '        return "the checkpoint is of a run that already finished"\n',
      "", "tests/test_train.py", "-k", "resumable_is"),
    m("train-keeps-a-finished-runs-state", "rir/train.py",
      "    shutil.rmtree(run.state_dir, ignore_errors=True)\n", "",
      "tests/test_train.py", "-k", "finished_run_started_again"),
    m("train-resumes-state-of-other-code", "rir/train.py",
      '    if saved.get("code") != code:', '    if False:',
      "tests/test_train.py", "-k", "other_training_code"),
    m("train-resumes-a-changed-configuration", "rir/train.py",
      "    if differing:\n        k = differing[0]\n        return",
      "    if False:\n        k = differing[0]\n        return",
      "tests/test_train.py", "-k", "changed_configuration"),
    m("train-crops-padded-by-2", "rir/train.py",
      "padding=4 if cfg.augment else 0", "padding=2 if cfg.augment else 0",
      "tests/test_train.py", "-k", "augments"),
    m("train-decay-from-the-wrong-l2-convention", "rir/train.py",
      "cfg.sgd_weight_decay(), cfg.decay_norm_and_bias", "cfg.weight_decay, cfg.decay_norm_and_bias",
      "tests/test_train.py", "-k", "optimizer_is"),
    # loader
    m("loader-never-flips", "rir/loader.py",
      "flip = torch.rand(n, generator=g) < 0.5", "flip = torch.rand(n, generator=g) < 0.0",
      "tests/test_loader.py"),
    m("loader-resume-restarts-the-epoch", "rir/loader.py",
      "        for step in range(start_step, len(self)):", "        for step in range(0, len(self)):",
      "tests/test_loader.py"),
    m("loader-normalization-without-the-mean", "rir/loader.py",
      "torch.addcmul(self._shift, x.float(), self._scale)", "x.float() * self._scale",
      "tests/test_loader.py"),
    # data
    m("data-cifar100-coarse-labels", "rir/data.py", 'label_key=b"fine_labels"', 'label_key=b"coarse_labels"',
      "tests/test_data.py", "-k", "fine_labels"),
    m("data-prepared-sha256-not-checked", "rir/data.py",
      "    actual = sha256_file(prepared)\n", "    actual = expected\n",
      "tests/test_data.py", "-k", "damaged_prepared"),
    m("data-tarball-md5-not-checked", "rir/data.py",
      "    actual = md5_file(src.local)\n", "    actual = src.expected_md5\n",
      "tests/test_data.py", "-k", "bad_tarball or checksum"),
    # checkpoint
    m("checkpoint-sidecar-not-checked", "rir/checkpoint.py",
      "        if _is_intact(path):", "        if True:", "tests/test_checkpoint.py"),
    m("checkpoint-keeps-only-the-newest", "rir/checkpoint.py", "KEEP = 2", "KEEP = 1",
      "tests/test_checkpoint.py"),
    # evaluate and ablation
    m("evaluate-batchnorm-batch-statistics", "rir/evaluate.py",
      "    model.eval()\n    device = loader.device", "    device = loader.device",
      "tests/test_evaluate.py"),
    m("ablation-one-reading-only", "rir/ablation.py",
      "for s in STREAMS for r in READINGS]", "for s in STREAMS for r in READINGS[:1]]",
      "tests/test_evaluate.py", "-k", "ablation"),
    m("ablation-zeroing-left-in-place", "rir/ablation.py",
      "        with zero_stream(layer, stream, reading):\n"
      "            _, accuracy = evaluate_model(model, loader)",
      "        zero_stream(layer, stream, reading).__enter__()\n"
      "        _, accuracy = evaluate_model(model, loader)",
      "tests/test_evaluate.py", "-k", "ablation"),
    # report: statistics, verdicts, claims
    m("stats-population-std", "rir/report/stats.py", "/ (n - 1))", "/ n)", "tests/test_report_stats.py"),
    m("stats-normal-instead-of-t", "rir/report/stats.py",
      "t_quantile(0.5 + confidence / 2.0, n - 1)", "1.959964", "tests/test_report_stats.py"),
    m("verdict-without-the-tolerance", "rir/report/aggregate.py",
      'slack = (cell.get("half_width") or 0.0) + TOLERANCE_PP', 'slack = cell.get("half_width") or 0.0',
      "tests/test_report_aggregate.py", "-k", "verdict"),
    m("claims-a-failed-check-is-not-enough-data", "rir/report/claims.py",
      "    if any(ok is False for _, ok in checks):\n        return FAILS, evidence",
      "    if any(ok is False for _, ok in checks):\n        return NOT_ENOUGH, evidence",
      "tests/test_report_aggregate.py", "-k", "claim"),
    m("claims-comparison-reversed", "rir/report/claims.py",
      "None if a is None or b is None else a > b", "None if a is None or b is None else a < b",
      "tests/test_report_aggregate.py", "-k", "claim"),
    m("claims-stream-contributes-at-any-cost", "rir/report/claims.py",
      "CONTRIBUTION_PP = 1.0", "CONTRIBUTION_PP = -1.0", "tests/test_report_aggregate.py", "-k", "claim"),
    # the time limits of the runs' cluster jobs (issue 21): each rule of docs/cluster.md's, broken alone
    m("timelimits-margin-ignored", "rir/timelimits.py",
      '+ settings["margin"] * rule_seconds(name, run, sizes, card) / 60))',
      '+ rule_seconds(name, run, sizes, card) / 60))', "tests/test_timelimits.py"),
    m("timelimits-no-floor", "rir/timelimits.py",
      'max(estimate("train"), settings["floor_minutes"])', 'estimate("train")', "tests/test_timelimits.py"),
    m("timelimits-evaluation-not-held-to-half-the-ceiling", "rir/timelimits.py",
      "        return min(ceiling // 2, estimate(rule))", "        return min(ceiling, estimate(rule))",
      "tests/test_timelimits.py"),
    m("timelimits-ceiling-below-the-start-up-accepted", "rir/timelimits.py",
      '    if settings["ceiling_minutes"] < least:', "    if False:", "tests/test_timelimits.py"),
    m("timelimits-bf16-ablation-priced-at-bf16", "rir/timelimits.py",
      'precision = "fp32" if rule == "ablate" and cfg.precision == "bf16" else cfg.precision',
      "precision = cfg.precision", "tests/test_timelimits.py"),
    m("timelimits-card-spelling-not-normalised", "rir/cards.py",
      '        return re.sub(r"[\\s_-]+", "", text).lower()', "        return text.lower()",
      "tests/test_timelimits.py"),
    m("timelimits-a-retry-asks-for-no-more", "rir/timelimits.py",
      'settings["floor_minutes"]) * max(1, attempt))', 'settings["floor_minutes"]))',
      "tests/test_timelimits.py"),
    m("timelimits-unknown-card-priced-as-an-h100", "rir/cards.py",
      'if bare(fragment) in bare(name)), "unknown")', 'if bare(fragment) in bare(name)), "H100 SXM")',
      "tests/test_timelimits.py"),
    m("timelimits-ablation-one-pass-a-layer", "rir/timelimits.py",
      "(1 + 4 * layers)}[rule]()", "(1 + layers)}[rule]()", "tests/test_timelimits.py"),
    m("timelimits-command-line-strings-kept", "rir/timelimits.py",
      "                    out[key] = kind(value)\n", "                    out[key] = value\n",
      "tests/test_timelimits.py"),
    # the stamp that decides whether a run trains again (rir.stages): a run's code is what it executes
    m("stages-docstrings-counted", "rir/stages.py",
      "            node.body = body[1:] or [ast.Pass()]", "            pass",
      "tests/test_stages.py", "-k", "comment"),
    m("stages-comments-counted", "rir/stages.py",
      "    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()",
      "    return hashlib.sha256((_ROOT / path).read_bytes()).hexdigest()",
      "tests/test_stages.py", "-k", "comment"),
    m("stages-closure-skips-lazy-imports", "rir/stages.py",
      "    for node in ast.walk(_tree(path)):\n        if isinstance(node, ast.Import):",
      "    for node in _tree(path).body:\n        if isinstance(node, ast.Import):",
      "tests/test_stages.py", "-k", "closure"),
    m("stages-every-model-file-in-every-run", "rir/stages.py",
      "    entries = ENTRY[kind] + ((model_file(model),) if model else ())",
      "    entries = ENTRY[kind] + ((model_file(model), *model_files().values()) if model else ())",
      "tests/test_stages.py", "-k", "model_file"),
    m("stages-exempt-modules-digested", "rir/stages.py",
      "    return sorted(seen - EXEMPT)", "    return sorted(seen)", "tests/test_stages.py", "-k", "exempt"),
    m("stages-a-stamp-removes-another-runs-stamps", "rir/stages.py",
      'path.parent.glob(f"{name}.*.json")', 'path.parent.glob(f"{name}*.json")',
      "tests/test_stages.py", "-k", "write_stamp"),
    m("stages-a-default-set-is-another-run", "rir/stages.py",
      "    config = TrainConfig.from_dict(options).to_dict()",
      '    config = {"data_root": None, **options}', "tests/test_stages.py", "-k", "default"),
    m("stages-synthesis-code-in-the-real-data-stamp", "rir/stages.py",
      '(code_of("synth") if settings.get("data") == "synthetic" else {})', 'code_of("synth")',
      "tests/test_stages.py", "-k", "data_stamp"),
    # a model of another file than the run's (resnet_18): rir_18 shares its file, so its digest too
    m("train-checkpoint-keeps-another-models-code", "rir/train.py",
      "    code = run_code_digest(cfg.model)", '    code = run_code_digest("all_cnn_c")',
      "tests/test_train.py", "-k", "other_training_code"),
    # params.yaml's defaults for every family, and a profile's `only`
    m("config-a-familys-own-seeds-ignored", "rir/config.py",
      "    values = family.get(key, resolved.get(key))", "    values = resolved.get(key, family.get(key))",
      "tests/test_config.py", "-k", "takes_the_profiles"),
    m("config-only-keeps-every-optional-family", "rir/config.py",
      '        for group in ("families", "optional_families"):', '        for group in ("families",):',
      "tests/test_config.py", "-k", "only"),
    m("config-only-naming-no-family-accepted", "rir/config.py",
      "        if unknown:", "        if False:", "tests/test_config.py", "-k", "only"),
    m("report-readings-datasets-from-the-family-alone", "rir/report/readings.py",
      "    datasets = list(dict.fromkeys(spec.dataset for spec in runs.values()))",
      '    datasets = list(family.get("datasets", []))', "tests/test_report_readings.py", "-k", "summary"),
    # the threads of a GPU job: cores // slots, so Snakemake starts a job on every slot
    m("gpu-job-threads-capped-at-2", "rir/gpu.py",
      "    return max(recipe_threads or 1, (cores or 1) // gpu_slots)",
      "    return max(recipe_threads or 1, min(2, (cores or 1) // gpu_slots))",
      "tests/test_gpu.py", "-k", "gpu_job_threads"),
    m("gpu-job-threads-recipe-wins-below-the-slots", "rir/gpu.py",
      "    return max(recipe_threads or 1, (cores or 1) // gpu_slots)",
      "    return recipe_threads or max(1, (cores or 1) // gpu_slots)",
      "tests/test_gpu.py", "-k", "gpu_job_threads"),
    # DVC's pipelines: a stage per profile used here, a user's own stage kept
    m("dvcgen-a-gone-profiles-stage-kept", "rir/dvcgen.py",
      "            if p in params[\"profiles\"]]", "            if p]",
      "tests/test_config.py", "-k", "rir_dvc"),
    m("dvcgen-the-users-own-stage-dropped", "rir/dvcgen.py",
      "if name not in had}", "if name in had}", "tests/test_config.py", "-k", "rir_dvc"),
    m("dvcgen-a-stage-for-every-profile", "rir/dvcgen.py",
      "for p in ours(d)), *add])", "for p in ours(d)), *add, *params[\"profiles\"]])",
      "tests/test_reruns.py", "-k", "no_stage_until"),
    m("dvcgen-snakemakes-end-adds-no-stage", "rir/dvcgen.py",
      "update_pipelines(params, root, [profile])", "update_pipelines(params, root)",
      "tests/test_reruns.py", "-k", "bare_dvc"),
    m("dvc-config-no-autostage", ".dvc/config", "    autostage = true", "    autostage = false",
      "tests/test_reruns.py", "-k", "value_edit_trained_by_dvc"),
]


def scratch_copy(dest: Path) -> Path:
    """The working tree's files as a fresh clone would have them (tests/pipeline.py's copy), committed to a
    git repository of their own: the workflow tests copy their repository with git (tests/pipeline.py)."""
    from pipeline import copy_worktree  # tests/ is on sys.path: this script's folder, or pytest's rootdir

    repo = copy_worktree(dest)
    identity = ["-c", "user.name=mutants", "-c", "user.email=mutants@localhost"]
    for cmd in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "scratch copy"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True, capture_output=True)
    return repo


def plant(mutant: Mutant, repo: Path) -> None:
    path = repo / mutant.path
    text = path.read_text()
    found = text.count(mutant.old)
    if found != 1:
        raise SystemExit(f"mutant {mutant.name}: its text occurs {found} times in {mutant.path}, not once; "
                         "update the mutant to the code")
    path.write_text(text.replace(mutant.old, mutant.new))


def run(mutant: Mutant, whole_suite: bool = False) -> tuple[str, float, str]:
    """(killed | survived | error, seconds, pytest's last lines) for one mutant in a scratch copy."""
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as tmp:
        repo = scratch_copy(Path(tmp) / "repo")
        if (ROOT.parent / "shared").is_dir():  # ../shared beside the copy too: the real photographs
            (Path(tmp) / "shared").symlink_to(ROOT.parent / "shared")
        plant(mutant, repo)
        # Not PYTEST_ADDOPTS: .ci/run passes its JUnit report through it, which this run must not overwrite.
        env = {**{k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}, "PYTHONPATH": str(repo),
               "PYTHONDONTWRITEBYTECODE": "1"}
        selection = FAST_SUITE if whole_suite else mutant.tests
        # One process (`-n 0`): with -x, pytest-xdist's workers end in exit 2 ("interrupted"), not 1.
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-n", "0", "-p", "no:cacheprovider", *selection]
        started = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return "error", time.monotonic() - started, f"timed out after {TIMEOUT_S} s"
        seconds = time.monotonic() - started
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        verdict = {0: "survived", 1: "killed"}.get(proc.returncode, "error")
        if verdict == "killed" and not re.search(r"\b\d+ failed\b", tail):  # a setup error kills nothing
            verdict = "error"
        return verdict, seconds, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--all", action="store_true", help="run the whole fast suite against each mutant")
    parser.add_argument("--list", action="store_true", help="name every mutant and its tests, run nothing")
    parser.add_argument("--check", action="store_true", help="check every mutant matches the code once")
    args = parser.parse_args(argv)
    known = {mu.name: mu for mu in MUTANTS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown mutant {unknown[0]!r} (see --list)")
    chosen = [known[n] for n in args.names] or MUTANTS
    if args.list:
        for mu in chosen:
            print(f"{mu.name:45} {mu.path:26} {' '.join(mu.tests)}")
        return 0
    if args.check:
        for mu in chosen:
            found = (ROOT / mu.path).read_text().count(mu.old)
            if found != 1:
                print(f"mutant {mu.name}: its text occurs {found} times in {mu.path}", file=sys.stderr)
                return 1
        print(f"{len(chosen)} mutants match the code")
        return 0
    results = []
    for mu in chosen:
        verdict, seconds, tail = run(mu, args.all)
        results.append(verdict)
        print(f"{verdict:8} {seconds:6.0f} s  {mu.name}", flush=True)
        if verdict != "killed":
            print("    " + tail.replace("\n", "\n    "), flush=True)
    killed = results.count("killed")
    print(f"{killed}/{len(results)} killed" + ("" if killed == len(results) else
          f" ({results.count('survived')} survived, {results.count('error')} errors)"))
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
