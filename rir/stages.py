"""What each kind of pipeline stage runs and writes, shared by the two workflows and `rir train`; no torch.

CODE: the rir files each kind of stage's command runs. DVC's stages depend on them (rir.dvcgen) and
Snakemake's rules declare them as inputs (workflow/rules/common.smk), so a change to one reruns exactly the
stages it can affect in both tools; `rir train` keeps their digest in every checkpoint and does not resume
state that other code wrote (rir.train._not_resumable). METRICS_KEYS: the few numbers of a run that
`dvc metrics show` lists (`rir evaluate --metrics-out`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# The numbers of a run that `dvc metrics show` lists, one row per run (`rir evaluate --metrics-out`): a few,
# so that the table stays readable; what the run was and how it ran (its provenance) is in metrics.json and
# env.json.
METRICS_KEYS = ("test_accuracy", "test_error", "test_loss", "wall_seconds")
def metrics_view(evaluation: dict, trained: dict) -> dict:
    """METRICS_KEYS of a run: its evaluation's accuracy, error and loss, and its training's wall time
    (metrics.json). `rir evaluate --metrics-out` and `rir dvc` (after a pull) both write it."""
    numbers = {**evaluation, "wall_seconds": trained.get("wall_seconds")}
    return {key: numbers[key] for key in METRICS_KEYS}


def copy_plots(figures: Path, plots: Path) -> int:
    """The figures' PNGs copied atomically into `plots` (the plots view), where they differ; PNGs there that
    the figures no longer hold are removed, so DVC shows what the figures stage drew and nothing older.
    Returns how many PNGs the view holds. `rir report figures --plots` and `refresh_views` call it."""
    from rir.io import atomic_write_bytes

    drawn = {p.name: p.read_bytes() for p in figures.glob("*.png")}
    plots.mkdir(parents=True, exist_ok=True)
    for old in plots.glob("*.png"):
        if old.name not in drawn:
            old.unlink()
    for name, data in sorted(drawn.items()):
        target = plots / name
        if not target.is_file() or target.read_bytes() != data:
            atomic_write_bytes(target, data)
    return len(drawn)


RUN_FILES = ("metrics.json", "history.csv", "config.json", "env.json", "model.pt")  # what `rir train` writes
# The code each kind of stage runs (`configs`: DVC's guard stage, rir.dvcgen): a change to it reruns the
# stage (DVC compares file hashes; Snakemake declares the same files as inputs). Every rir module a stage's
# command imports is listed (tests/test_config.py traces the real commands), except those that cannot
# change an output: the dispatch and the other commands' argument parsers (rir/cli.py, rir/commands/*), the
# error type (rir/errors.py), atomic writing (rir/io.py), the provenance record of env.json (rir/env.py),
# the GPU lease (rir/gpu.py) and these lists (rir/stages.py). rir/model_options.py holds the models'
# defaults: a changed default changes a net without changing its run id, so every stage that builds a net
# depends on it.
_MODEL_CODE = ["rir/layers.py", "rir/model_options.py", "rir/models"]
CODE = {
    # rir/data.py: the command line imports it to build its parser, and the trace test sees it
    "configs": ["rir/commands/dvc.py", "rir/dvcgen.py", "rir/config.py", "rir/model_options.py",
                "rir/schemas/params.schema.json", "rir/data.py"],
    "synth": ["rir/commands/synth.py", "rir/synthetic.py", "rir/data.py"],
    "fetch": ["rir/commands/fetch.py", "rir/data.py"],
    "train": [
        "rir/commands/train.py", "rir/train.py", "rir/finished.py", "rir/device.py", "rir/recipe.py",
        "rir/step.py", "rir/loader.py", "rir/checkpoint.py", "rir/evaluate.py", "rir/data.py",
        "rir/config.py", *_MODEL_CODE,
    ],
    "evaluate": [
        "rir/commands/evaluate.py", "rir/evaluate.py", "rir/device.py", "rir/recipe.py", "rir/loader.py",
        "rir/data.py", *_MODEL_CODE,
    ],
    "ablate": [
        "rir/commands/ablate.py", "rir/ablation.py", "rir/evaluate.py", "rir/device.py", "rir/recipe.py",
        "rir/loader.py", "rir/data.py", *_MODEL_CODE,
    ],
    "report": [
        "rir/commands/report.py", "rir/report", "rir/reference", "rir/config.py", "rir/recipe.py",
        "rir/data.py", "rir/model_options.py",
    ],
}
# Modules whose changes cannot change any stage's output (see above); the trace test allows them.
CODE_EXEMPT = ("rir/__init__.py", "rir/__main__.py", "rir/cli.py", "rir/commands", "rir/errors.py",
               "rir/io.py", "rir/env.py", "rir/gpu.py", "rir/stages.py")
_ROOT = Path(__file__).resolve().parent.parent  # where CODE's paths start (the clone, or site-packages)


def code_files(kind: str) -> list[str]:
    """CODE[kind] with each folder replaced by its source files (Snakemake compares files, not folders)."""
    files = []
    for entry in CODE[kind]:
        path = _ROOT / entry
        if path.is_dir():
            files += sorted(p.relative_to(_ROOT).as_posix() for p in path.rglob("*")
                            if p.is_file() and p.suffix in (".py", ".yaml", ".json", ".html"))
        else:
            files.append(entry)
    return files


def code_digest(kind: str) -> str:
    """sha256 over the source of CODE[kind], path and content, in a stable order: the code a stage of that
    kind runs. `rir train` keeps it in every checkpoint and does not resume state written by other code
    (rir.train._not_resumable)."""
    digest = hashlib.sha256()
    for name in code_files(kind):
        digest.update(name.encode() + b"\0" + (_ROOT / name).read_bytes() + b"\0")
    return digest.hexdigest()
