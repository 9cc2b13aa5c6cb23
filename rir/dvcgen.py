"""DVC's side of the workflow: a stage per profile run here, which runs Snakemake; DVC versions what it made.

Snakemake is the one orchestrator: it alone decides which runs train (each run's stamp, rir.stages), on a box
or on a cluster. DVC versions, shares and compares what it made. A profile's stage is written the first time
it is used here: Snakemake's end adds it (`record`), and `rir dvc PROFILE` adds it for a start from DVC. The
default profile's (params.yaml's `profile:`) goes in the top dvc.yaml, so `dvc repro` is `snakemake --cores
all` once the paper ran; every other profile's in workflow/dvc/<profile>/dvc.yaml, with its own dvc.lock. A
stage is

    cmd:     rir dvc --restore <profile> && snakemake --cores all --config profile=<profile>
    deps:    the workflow and the rir package, and params.yaml as params: a change DVC sees makes it run
             Snakemake, which retrains only the runs whose stamp changed (a comment retrains nothing, in
             either tool; an edit of another profile retrains nothing of this one)
    metrics: results/<profile>/metrics.json, each run's test accuracy, kept in git (`cache: false`), so
             `dvc exp show` and `dvc metrics diff` read it for every experiment
    plots:   the report's figures

and no cached outputs: the folders Snakemake made are tracked by `dvc add` (data/<profile>.dvc,
reports/<profile>.dvc, results/<profile>/<folder>.dvc), which `record` runs when Snakemake ends. So:
- a profile never used here has no stage and no tracked data: bare `dvc status`, `dvc repro`, `dvc checkout`,
  `dvc pull` and `dvc exp apply` say nothing about it. (A committed stage of every profile was "changed"
  until it ran, for as long as the workspace lived: a laptop profile on a GPU box, forever. DVC has no stage
  that is clean before its first run. The cost: a fresh clone's `dvc repro` has nothing to do; DVC gives
  cached reruns of what ran.)
- the run list is not in any stage, so an edit of params.yaml that adds runs changes no stage: `dvc exp run
  -S ...`, `--temp` and `--queue` take it up like any other edit;
- inside `dvc repro` and `dvc exp run`, Snakemake's own end adds the folders, and DVC commits them with the
  experiment; `restore` first brings back the profile's folders that are missing from the workspace (DVC
  fills a `--temp` or `--queue` experiment's copy with its pipeline's dependencies only, and these are not
  the stage's dependencies), so Snakemake there trains what is new, not everything;
- after a `snakemake` of the user's, `record` also commits the stage to dvc.lock once the profile's report
  is up to date, so `dvc status` is clean and `dvc repro` runs nothing;
- .dvc/config sets `core.autostage`, so the `.dvc` files `record` writes are staged in git: an experiment
  commits only what git tracks or has staged, and one run where nobody committed would otherwise lose
  its results' pointers (`dvc exp apply` would bring back its params but not its runs).
A stage is told from a user's own by its command: `rir dvc` rewrites the profiles' stages that are stale,
drops those of profiles params.yaml no longer has, and leaves every other stage as it is.

`dvc exp show` lists every key of params.yaml whatever the stages declare (it is DVC's default params file),
so params.yaml stays lean: a family takes the top-level `seeds` and `datasets` unless it names its own, and
a profile keeps families with `only`. With the smoke profile's 21 runs the table has 98 columns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from rir.io import atomic_write_text

PIPELINE = "dvc.yaml"  # the default profile's (params.yaml's `profile:`), and a user's own stages
DVC_DIR = "workflow/dvc"  # workflow/dvc/<profile>/dvc.yaml: every other profile's, with its own dvc.lock
HEADER = ("# DVC's pipeline: a stage per profile run here, which Snakemake's end adds (or `rir dvc\n"
          "# PROFILE`, to start from DVC) and `rir dvc` keeps current: rir/dvcgen.py says why. A stage of\n"
          "# your own is left as it is.\n")
MARK = "rir dvc --restore "  # how a profile's stage begins: a stage without it is the user's own
CODE = ["Snakefile", "workflow/rules", "rir"]  # what the stage runs
UNTRACKED = ("state",)  # results/<profile>/state: resumable training state, a run's scratch space


def default_profile(params: dict[str, Any]) -> str:
    return params.get("profile", "paper")


def pipeline_file(params: dict[str, Any], profile: str) -> str:
    """dvc.yaml for params.yaml's profile, workflow/dvc/<profile>/dvc.yaml for the others."""
    return PIPELINE if profile == default_profile(params) else f"{DVC_DIR}/{profile}/dvc.yaml"


def stage_address(params: dict[str, Any], profile: str) -> str:
    """How DVC names a profile's stage on its command line: `paper`, `workflow/dvc/smoke/dvc.yaml:smoke`."""
    path = pipeline_file(params, profile)
    return profile if path == PIPELINE else f"{path}:{profile}"


def stage(profile: str, up: str = "") -> dict[str, Any]:
    """A profile's stage as data, in a pipeline file `up` below the repository's root."""
    return {
        **({"wdir": up} if up else {}),
        "cmd": f"{MARK}{profile} && snakemake --cores all --config profile={profile}",
        "deps": CODE,
        "params": [{"params.yaml": None}],  # every key: DVC shows them all in any case
        # persist: DVC would delete it before running Snakemake, which remakes only what is out of date
        "metrics": [{f"results/{profile}/metrics.json": {"cache": False, "persist": True}}],
    }


def read_pipeline(path: Path, text: str | None) -> dict[str, Any]:
    """A pipeline file's text (None: there is none) as data. Not a pipeline: ValueError, one line."""
    if text is None:
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("stages") or {}, dict):
        raise ValueError(f"{path} is not a DVC pipeline (a mapping with a `stages` mapping)")
    return data


def ours(data: dict[str, Any]) -> list[str]:
    """The profiles whose stage a pipeline holds, in its order."""
    return [name for name, st in (data.get("stages") or {}).items()
            if isinstance(st, dict) and str(st.get("cmd", "")).startswith(MARK)]


def pipeline(data: dict[str, Any], profiles: list[str], up: str = "") -> dict[str, Any]:
    """The pipeline `data` becomes when its profiles' stages and figures are replaced by those of `profiles`
    (in this order), and everything else in it (a user's stages, plots, ...) is kept."""
    had = ours(data)
    stages = {name: st for name, st in (data.get("stages") or {}).items() if name not in had}
    stages.update({p: stage(p, up) for p in profiles})
    figures = {p: os.path.join(up, f"reports/{p}/figures") for p in {*had, *profiles}}
    plots = [p for p in data.get("plots") or [] if p not in figures.values()]
    plots += [figures[p] for p in profiles]
    rest = {key: value for key, value in data.items() if key not in ("stages", "plots")}
    return {**rest, "stages": stages, **({"plots": plots} if plots else {})}


def stale_pipelines(params: dict[str, Any], root: str | Path = ".",
                    add: list[str] = ()) -> dict[str, str | None]:
    """What `rir dvc` writes: path -> new text, or None for a file to remove, of each pipeline file that
    differs. The profiles kept are those with a stage here (used here) and `add`, that params.yaml has."""
    root = Path(root)
    found = [PIPELINE, *(p.relative_to(root).as_posix() for p in sorted(root.glob(f"{DVC_DIR}/*/dvc.yaml")))]
    texts = {name: (root / name).read_text(encoding="utf-8") if (root / name).is_file() else None
             for name in found}
    data = {name: read_pipeline(root / name, text) for name, text in texts.items()}
    used = [p for p in dict.fromkeys([*(p for d in data.values() for p in ours(d)), *add])
            if p in params["profiles"]]
    for p in used:
        data.setdefault(pipeline_file(params, p), {})
    changes: dict[str, str | None] = {}
    for name, old in data.items():
        up = os.path.relpath(".", os.path.dirname(name)) if name != PIPELINE else ""
        new = pipeline(old, [p for p in used if pipeline_file(params, p) == name], up)
        text = HEADER + yaml.safe_dump(new, sort_keys=False) if name == PIPELINE or new["stages"] else None
        if text != texts.get(name):
            changes[name] = text
    return changes


def update_pipelines(params: dict[str, Any], root: str | Path = ".",
                     add: list[str] = ()) -> dict[str, str | None]:
    """Write (and remove) what `stale_pipelines` says; returns it."""
    changes = stale_pipelines(params, root, add)
    for name, text in changes.items():
        if text is None:
            (Path(root) / name).unlink()
        else:
            atomic_write_text(Path(root) / name, text)
    return changes


def tracked_folders(profile: str, root: str | Path = ".") -> list[str]:
    """What `record` adds to DVC: the profile's data and report, and each folder of its results (not the
    resumable state), those that exist."""
    root = Path(root)
    results = root / "results" / profile
    folders = [f"data/{profile}", f"reports/{profile}"]
    if results.is_dir():
        folders += [f"results/{profile}/{p.name}" for p in sorted(results.iterdir())
                    if p.is_dir() and p.name not in UNTRACKED]
    return [f for f in folders if (root / f).is_dir()]


def restore(profile: str, root: str | Path = ".") -> str:
    """Check out, from DVC's cache, each tracked folder of the profile that is missing from the workspace (a
    folder that is there is left as it is: it may hold work DVC has not recorded yet). Returns what was done,
    in one line. Nothing outside a DVC repository."""
    root = Path(root)
    if not _dvc_repository(root):
        return "no DVC repository here: nothing restored"
    files = [f"data/{profile}.dvc", f"reports/{profile}.dvc", *(
        p.relative_to(root).as_posix() for p in sorted((root / "results" / profile).glob("*.dvc")))]
    missing = [f for f in files if (root / f).is_file() and not (root / f[:-len(".dvc")]).exists()]
    if missing:
        subprocess.run(["dvc", "checkout", "--quiet", "--allow-missing", *missing], cwd=root, check=True)
    return f"restored {len(missing)} folders of the {profile} profile from DVC's cache"


def record(params: dict[str, Any], profile: str, root: str | Path = ".") -> str:
    """Version what Snakemake made of a profile: `dvc add` its folders (file links left as they are, so
    Snakemake's file times stand), and outside a DVC stage, write the profile's stage into its pipeline
    file (its first run here) and commit it to dvc.lock when its report is up to date. Returns what was
    done, in one line. Nothing outside a DVC repository."""
    root = Path(root)
    if not _dvc_repository(root):
        return "no DVC repository here: nothing recorded"
    folders = tracked_folders(profile, root)
    if folders:
        subprocess.run(["dvc", "add", "--quiet", "--no-relink", *folders], cwd=root, check=True)
    if os.environ.get("DVC_STAGE"):  # inside `dvc repro` or `dvc exp run`: DVC records its own stage
        return f"added {len(folders)} folders of the {profile} profile to DVC"
    wrote = "".join(f", wrote {name}" for name in update_pipelines(params, root, [profile]))
    if not report_up_to_date(profile, root):
        return (f"added {len(folders)} folders to DVC{wrote}; the {profile} report is not up to date, so "
                "dvc.lock records the profile once it is")
    subprocess.run(["dvc", "commit", "--force", "--quiet", stage_address(params, profile)], cwd=root,
                   check=True)
    return f"added {len(folders)} folders of the {profile} profile to DVC{wrote} and recorded it in dvc.lock"


def report_up_to_date(profile: str, root: str | Path = ".") -> bool:
    """Whether Snakemake has nothing to do for the profile's default target: its `--summary` (documented:
    one row per file, its plan in the last column) plans no update."""
    proc = subprocess.run(["snakemake", "--summary", "--nolock", "--config", f"profile={profile}"],
                          cwd=root, capture_output=True, text=True)
    rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    return proc.returncode == 0 and len(rows) > 1 and all(row[-1] == "no update" for row in rows[1:])


def _dvc_repository(root: Path) -> bool:
    """Whether `root` is a DVC repository and the dvc command is at hand (the workflow runs without DVC)."""
    return (root / ".dvc").is_dir() and shutil.which("dvc") is not None
