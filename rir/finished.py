"""A finished run's files, kept for the retry of the cluster job that trained it (`--keep-finished`).

Why. On a cluster, a run's training, evaluation and ablation are one SLURM job (workflow/profiles/slurm
groups them). When a later step of that job fails (an evaluation's bug, a time limit hit while ablating, a
lost node), Snakemake 9 deletes the outputs of every step of the job, the finished training's too, and its
retry runs every step again (a group job is resubmitted whole, with --force). A finished run keeps no
resumable state (DESIGN.md), so without this the retry would train the run again from its first step, up to
three times for a step that fails every time, and the last failure would leave no trained run at all.

What. With `rir train --keep-finished`, a run that ends also links its files (hard links: no second copy on
disk) into `<state>.finished/`, beside its state folder, with the configuration, the training code's digest
and the data that made them. A later `rir train --keep-finished` of the same run, configured the same, with
the same training code and data (rir.train._kept_for_another_run), links them back instead of training: the
same bytes, at once. Anything else discards them.

When. The Snakefile releases (deletes) the kept files of every run whose files are all in place when
Snakemake ends after running jobs, however it ends (common.smk, `release_finished`), and, when it starts,
discards those of every run whose training is due for more than its missing files: forced (`--forcerun`,
`-F`), or a changed input, parameter or code. So only the retry of a failed job inside one invocation, or the
next invocation after its job failed for good, restores a run; a rerun the user asks for trains from the
first step, as DESIGN.md says. Deleting a run's files by hand is not asking for a rerun here: its kept files,
if any, come back (delete `<state>.finished/` too, or use --forcerun). A restore also needs the same data
(their kind and source md5) and the same configuration, device included.
DVC's stages and a lone `rir train` keep nothing: DVC never deletes a finished stage's outputs when a later
one fails.

Torch-free: the Snakefile releases through it while parsing stays light.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

from rir.io import atomic_write_json

# {"config": TrainConfig.to_dict(), "code": rir.stages.code_digest("train"), "data": CifarArrays.provenance}
RECORD = "finished.json"


def finished_dir(state_dir: str | os.PathLike) -> Path:
    """Where a run's kept files live: `<state>.finished`, beside (never inside) its resumable state."""
    state_dir = Path(state_dir)
    return state_dir.with_name(state_dir.name + ".finished")


def _building(kept: Path) -> Path:
    """Where keep() assembles a run's kept files before renaming them into place."""
    return kept.with_name(kept.name + ".tmp")


def _link(source: Path, target: Path) -> None:
    """`target` becomes `source`'s file, atomically: a hard link where the file system allows, else a copy."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.link")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(source, tmp)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, tmp)
    os.replace(tmp, target)


def keep(out_dir: str | os.PathLike, state_dir: str | os.PathLike, files: tuple[str, ...],
         record: dict) -> Path:
    """Keep the run's `files` of `out_dir` with `record` (what made them); replaces whatever was kept."""
    kept = finished_dir(state_dir)
    building = _building(kept)
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    for name in files:
        _link(Path(out_dir) / name, building / name)
    atomic_write_json(building / RECORD, record)
    shutil.rmtree(kept, ignore_errors=True)
    os.replace(building, kept)
    return kept


def kept_record(state_dir: str | os.PathLike, files: tuple[str, ...]) -> dict | None:
    """The record of the run's kept files, or None when nothing (or not all of it) is kept."""
    kept = finished_dir(state_dir)
    try:
        record = json.loads((kept / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not all((kept / name).is_file() for name in files):
        return None
    return record


def restore(out_dir: str | os.PathLike, state_dir: str | os.PathLike, files: tuple[str, ...]) -> None:
    """Link the kept `files` back into `out_dir`, metrics.json last (rir.train's process contract), each
    stamped now: to Snakemake they are new outputs, newer than the job's inputs, as a training's would be."""
    kept, out_dir = finished_dir(state_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for name in sorted(files, key=lambda name: name == "metrics.json"):
        _link(kept / name, out_dir / name)
        os.utime(out_dir / name, (now, now))


def discard(state_dir: str | os.PathLike) -> bool:
    """Delete the run's kept files, if any; True when there were some."""
    kept = finished_dir(state_dir)
    shutil.rmtree(_building(kept), ignore_errors=True)
    if not kept.exists():
        return False
    shutil.rmtree(kept, ignore_errors=True)
    return True


def release(state_dir: str | os.PathLike, out_dir: str | os.PathLike, files: tuple[str, ...]) -> bool:
    """Discard the run's kept files when its `files` are all in `out_dir` (nothing to restore them for);
    True when something was released."""
    if not all((Path(out_dir) / name).is_file() for name in files):
        return False
    return discard(state_dir)  # a half-built `.finished.tmp` of a crashed keep() goes too
