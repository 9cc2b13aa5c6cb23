"""`rir train`: train one run with the paper's recipe; the same command run again resumes it.

Exit codes: 0 done; 2 bad input (one line on stderr); 3 the loss became NaN/inf (0 with --allow-diverged:
the run is then a reported result, status "diverged" in metrics.json); 75 (EX_TEMPFAIL) preempted by SIGTERM
after writing a checkpoint: rerun the same command to continue. Inside a SLURM job that SLURM is preempting,
the run also asks SLURM to requeue the job (`_requeue_if_preempted`), so the same job resumes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess

from rir.errors import UserError

HELP = "train one run (model, dataset, recipe); resumes by itself from its state dir"

# CLI flag -> TrainConfig key, for the options that are plain values.
_VALUE_OPTIONS = ("model", "dataset", "data_root", "epochs", "batch_size", "lr", "seed", "device",
                  "precision", "threads")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", metavar="RUN_ID",
                        help="a run of params.yaml's grid (see `rir plan`): its model, dataset, seed and"
                             " recipe; flags given as well override them")
    parser.add_argument("--params", default="params.yaml",
                        help="params file for --run (default: %(default)s)")
    parser.add_argument("--profile", help="profile of params.yaml for --run (default: the file's `profile`)")
    parser.add_argument("--model", help="registered model name (see `rir models`); default rir_18_wide")
    parser.add_argument("--dataset", help="cifar10 | cifar100; default cifar10")
    parser.add_argument("--data-root", help="prepared data folder (`rir fetch --root`); default data")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder for the final artifacts")
    parser.add_argument("--state-dir", help="resumable checkpoints (default RUN_DIR/state)")
    parser.add_argument("--epochs", type=int, help="training epochs (paper: 82)")
    parser.add_argument("--batch-size", type=int, help="images per SGD step (paper: 500)")
    parser.add_argument("--lr", type=float, help="initial learning rate (default 0.1)")
    parser.add_argument("--seed", type=int, help="seed of init, data order and augmentation (default 0)")
    parser.add_argument("--deterministic", action="store_true", default=None,
                        help="deterministic algorithms: bit-reproducible runs, resumes included")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"),
                        help="default auto: CUDA; the CPU only for synthetic data unless asked (rir.device)")
    parser.add_argument("--precision", choices=("fp32", "tf32", "bf16"),
                        help="math mode: exact fp32, TF32 convs/matmuls (default), bf16 autocast")
    parser.add_argument("--channels-last", action="store_true", default=None, help="NHWC memory format")
    parser.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    parser.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's choice)")
    parser.add_argument("--runs-per-gpu", type=int,
                        help="runs sharing one GPU (default $RIR_RUNS_PER_GPU or 1); docs/cluster.md")
    parser.add_argument("--allow-diverged", action="store_true",
                        help="exit 0 when the loss diverges (the run is recorded with status diverged)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="model option for create_model (YAML value), repeatable: --override width=16")


def options_from_args(args: argparse.Namespace) -> dict:
    """The TrainConfig options the command line sets (unset flags keep the config's defaults)."""
    import yaml

    options = {key: getattr(args, key) for key in _VALUE_OPTIONS if getattr(args, key) is not None}
    for key in ("deterministic", "channels_last", "compile"):
        if getattr(args, key):
            options[key] = True
    overrides = {}
    for item in args.override:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--override {item!r}: expected KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    if overrides:
        options["model_overrides"] = overrides
    return options


def run_options(args: argparse.Namespace) -> dict:
    """The options of `--run RUN_ID` from params.yaml (the same expansion Snakemake and DVC use), or {}."""
    if not args.run:
        return {}
    from rir.config import expand_runs, load_params

    params = load_params(args.params)
    runs = {**expand_runs(params, args.profile), **expand_runs(params, args.profile, optional=True)}
    if args.run not in runs:
        raise UserError(f"run {args.run!r} is not in {args.params} (profile "
                        f"{args.profile or params.get('profile', 'paper')}); `rir plan` lists the runs")
    return runs[args.run].train_options()


def run(args: argparse.Namespace) -> int:
    from rir.gpu import apply_gpu_lease
    from rir.recipe import TrainConfig
    from rir.train import EXIT_DIVERGED, EXIT_PREEMPTED, train

    cfg = TrainConfig.from_dict({**run_options(args), **options_from_args(args)})
    # Before anything touches CUDA: picks this run's GPU slot (rir.gpu), named after the run for humans.
    lease = apply_gpu_lease(cfg.device, args.runs_per_gpu, holder=args.run or str(args.out))
    if lease is not None and lease.leased:
        print(f"GPU slot: device {lease.device} (slot {lease.slot}), lock {lease.lock_path}", flush=True)
    metrics = train(cfg, args.out, args.state_dir)
    if metrics["status"] == "preempted":
        print(f"preempted by SIGTERM at epoch {metrics['epoch'] + 1}, step {metrics['step']}; checkpoint "
              "written, run the same command again to resume", flush=True)
        job = _requeue_if_preempted()
        if job:
            print(f"SLURM is preempting job {job}: requeued it, it resumes from the checkpoint", flush=True)
        return EXIT_PREEMPTED
    name = args.run or str(args.out)
    # The last line says what became of the run: the workflow shows it on the console (workflow/rules).
    if metrics["status"] == "diverged":
        print(f"{name}: diverged, the training loss became NaN/inf in epoch {metrics['diverged_epoch']}")
        return 0 if args.allow_diverged else EXIT_DIVERGED
    split = "" if metrics["eval_split"] == "test" else f", on {metrics['eval_split']}"
    where = "" if args.run else f", in {args.out}"  # a workflow's run: its id says where
    print(f"{name}: test accuracy {metrics['test_accuracy']:.2f} % after {metrics['epochs_completed']} "
          f"epochs, {metrics['wall_seconds']:.0f} s ({metrics['data']} {metrics['dataset']}{split}){where}")
    return 0


def _requeue_if_preempted() -> str | None:
    """`scontrol requeue` this SLURM job if the SIGTERM came from SLURM preempting it; returns the job id.

    Under PreemptMode=REQUEUE, SLURM requeues a preempted job that is still running when its GraceTime ends.
    This run has checkpointed and ends at once, well inside the grace, and SLURM 22.05 (Debian 12's) then
    records the job FAILED instead of requeueing it: the workflow's retries would be spent on preemptions.
    So a job whose record shows a PreemptTime requeues itself, as PyTorch Lightning's and submitit's
    checkpointing jobs do. SLURM holds the requeued job for AuthInfo's cred_expire (120 s by default) before
    it may start again; Snakemake simply keeps polling. A time limit or an `scancel` sets no PreemptTime and
    is left to SLURM and to Snakemake's bounded retries, so a run that never progresses cannot loop.
    A job submitted with --no-requeue (Requeue=0) is left alone, and any failure here changes nothing: the
    checkpoint is written and exit 75 stands.
    """
    job = os.environ.get("SLURM_JOB_ID")
    if not job or shutil.which("scontrol") is None:
        return None
    try:
        shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, timeout=30)
        record = dict(item.split("=", 1) for item in shown.stdout.split() if "=" in item)
        if record.get("PreemptTime", "None") in ("None", "Unknown") or record.get("Requeue") != "1":
            return None
        requeued = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return job if requeued.returncode == 0 else None
