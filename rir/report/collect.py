"""Read what the pipeline has produced for a profile: run directories, Figure 3's ablation CSVs, and the
summaries of the optional families (grid search, readings of RiR), which are also written here.

Layout (results/<profile>/): `runs/<run_id>/` with metrics.json (written last: its presence means the run
ended), history.csv, config.json, env.json and optionally eval.json (`rir evaluate`); the pipelines put the
evaluation in `evaluations/<run_id>.json` instead (`rir evaluate --out`: one folder holds every evaluation of
a profile, and DVC's tables stage depends on that folder), which is read first; `ablation/<run_id>.csv`.

Tolerance, chosen so that one bad file never hides the rest of the report:
- a missing file means the run (or its ablation) is still *pending*;
- a file that exists but cannot be parsed makes that run *unreadable*: the report shows it, with the file
  named, and `rir report --strict` turns it into an error (exit 2);
- keys the report does not know are ignored; metrics.json may name its time `wall_time_s` or `wall_seconds`;
- only the runs params.yaml gives the profile are read: a stale run folder from an older grid is ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rir.config import RunSpec
from rir.data import DATA_KINDS

# Statuses of a run, as the report shows them.
COMPLETED, DIVERGED, PENDING, UNREADABLE = "completed", "diverged", "pending", "unreadable"
ABLATION_COLUMNS = ("layer", "stream", "reading", "accuracy", "baseline_accuracy")


@dataclass
class RunRecord:
    """One run of the profile and whatever of it exists on disk."""

    spec: RunSpec
    run_dir: Path
    status: str = PENDING
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    env: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    history: pd.DataFrame | None = None
    errors: list[str] = field(default_factory=list)  # one line per unreadable file, naming it

    @property
    def accuracy(self) -> float | None:
        value = self.metrics.get("test_accuracy") if self.status == COMPLETED else None
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def wall_time_s(self) -> float:
        for key in ("wall_time_s", "wall_seconds", "train_seconds"):
            value = self.metrics.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return 0.0

    @property
    def synthetic(self) -> bool | None:
        value = self.metrics.get("synthetic")
        return value if isinstance(value, bool) else None

    @property
    def data_kind(self) -> str | None:
        """official | unofficial | synthetic (rir.data.DATA_KINDS), or None before the run has metrics;
        metrics from before the data kinds knew only the synthetic flag, and not synthetic meant official."""
        kind = self.metrics.get("data")
        if kind in DATA_KINDS:
            return kind
        return None if self.synthetic is None else "synthetic" if self.synthetic else "official"

    @property
    def data_md5(self) -> str | None:
        value = self.metrics.get("data_md5")
        return value if isinstance(value, str) and value else None


# The mark every table, figure and page made from data other than the official tarballs carries.
MARKS = {"synthetic": "SYNTHETIC DATA", "unofficial": "UNOFFICIAL COPY OF CIFAR"}


def mark_of(entry: dict[str, Any]) -> str | None:
    """The mark of a figure manifest's entry or an optional family's summary; those written before the data
    kinds knew only the synthetic flag."""
    if "mark" in entry:
        return entry["mark"]
    return MARKS["synthetic"] if entry.get("synthetic") else None


def summary_label(summary: dict[str, Any]) -> str:
    """What the titles of a summary's Markdown add to say what the data was."""
    mark = mark_of(summary)
    if mark == MARKS["synthetic"]:
        return " (SYNTHETIC DATA: not CIFAR)"
    return f" ({mark})" if mark else ""


def describe_data(resolved: dict[str, Any], records: list[RunRecord]) -> dict[str, Any]:
    """What the results were computed from, for banners, titles and a `data` column: the worst kind among the
    profile's runs (synthetic, then an unofficial copy, then official), the unofficial copies' md5s, the mark
    to print (None for official data) and a sentence."""
    kinds = {r.data_kind for r in records} - {None}
    if resolved.get("data") == "synthetic" or "synthetic" in kinds:
        kind = "synthetic"
    elif "unofficial" in kinds:
        kind = "unofficial"
    else:
        kind = "official" if kinds else None
    copies = sorted({f"{r.spec.dataset} md5 {r.data_md5 or '?'}" for r in records
                     if r.data_kind == "unofficial"})
    official = "official" in kinds
    text = {
        "synthetic": "SYNTHETIC data (rir synth), not CIFAR",
        "unofficial": (f"an UNOFFICIAL copy of CIFAR ({'; '.join(copies)}), not the official tarball"
                       f"{' (other runs: official)' if official else ''}: real photographs, but absolute "
                       f"numbers are not comparable to the paper's"),
        "official": "real CIFAR-10 / CIFAR-100, the official tarballs (md5-verified)",
        None: "real CIFAR-10 / CIFAR-100 (no run has finished yet)",
    }[kind]
    column = {"synthetic": "synthetic", "unofficial": f"unofficial ({'; '.join(copies)})",
              "official": "official", None: "real (no run yet)"}[kind]
    return {"kind": kind, "synthetic": kind == "synthetic", "md5s": copies, "mark": MARKS.get(kind),
            "text": text, "column": column}


def _read_json(path: Path, errors: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        errors.append(f"{path}: unreadable JSON ({err})")
        return None
    if not isinstance(value, dict):
        errors.append(f"{path}: expected a JSON object, found {type(value).__name__}")
        return None
    return value


def _read_history(path: Path, errors: list[str]) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as err:
        errors.append(f"{path}: unreadable CSV ({str(err).splitlines()[0] if str(err) else err})")
        return None
    if "epoch" not in frame.columns:
        errors.append(f"{path}: no 'epoch' column")
        return None
    for column in frame.columns:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def _safe_name(run_id: str) -> bool:
    # Run ids from rir.config are file-name safe; anything else must not reach outside runs/.
    return bool(run_id) and "/" not in run_id and "\\" not in run_id and run_id not in {".", ".."}


EVALUATIONS = "evaluations"  # results/<profile>/evaluations/<run_id>.json: the pipelines' rir evaluate --out


def read_run(results_dir: Path, spec: RunSpec) -> RunRecord:
    """The record of one run; never raises for a missing or damaged file (see the module docstring)."""
    run_dir = results_dir / "runs" / spec.run_id
    record = RunRecord(spec=spec, run_dir=run_dir)
    if not _safe_name(spec.run_id):
        record.status = UNREADABLE
        record.errors.append(f"run id {spec.run_id!r} is not a safe directory name")
        return record
    errors = record.errors
    metrics = _read_json(run_dir / "metrics.json", errors)
    record.config = _read_json(run_dir / "config.json", errors)
    record.env = _read_json(run_dir / "env.json", errors)
    evaluation = results_dir / EVALUATIONS / f"{spec.run_id}.json"  # the pipelines' (rir evaluate --out)
    record.evaluation = _read_json(evaluation if evaluation.is_file() else run_dir / "eval.json", errors)
    record.history = _read_history(run_dir / "history.csv", errors)
    if metrics is not None:
        record.metrics = metrics
        status = metrics.get("status", COMPLETED)
        if status == DIVERGED:
            record.status = DIVERGED
        elif status == COMPLETED and isinstance(metrics.get("test_accuracy"), (int, float)):
            record.status = COMPLETED
        elif status == COMPLETED:
            errors.append(f"{run_dir / 'metrics.json'}: status completed but no numeric test_accuracy")
        # Any other status (e.g. "preempted") is an unfinished run: pending.
    if any(str(run_dir / "metrics.json") in e for e in errors):
        record.status = UNREADABLE
    return record


def read_runs(results_dir: str | Path, runs: dict[str, RunSpec]) -> list[RunRecord]:
    """Records of every run of the profile, in the order of `runs`."""
    return [read_run(Path(results_dir), spec) for spec in runs.values()]


def read_ablation(results_dir: str | Path, runs: dict[str, RunSpec]) -> tuple[pd.DataFrame, list[str]]:
    """Figure 3's rows of every ablated run that has its CSV, and one error line per unreadable CSV."""
    frames, errors = [], []
    for spec in runs.values():
        if not spec.ablate or not _safe_name(spec.run_id):
            continue
        path = Path(results_dir) / "ablation" / f"{spec.run_id}.csv"
        if not path.is_file():
            continue
        try:
            frame = pd.read_csv(path)
        except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as err:
            errors.append(f"{path}: unreadable CSV ({str(err).splitlines()[0] if str(err) else err})")
            continue
        missing = [c for c in ABLATION_COLUMNS if c not in frame.columns]
        if missing:
            errors.append(f"{path}: missing columns {', '.join(missing)}")
            continue
        frame = frame.assign(run_id=spec.run_id, model=spec.model, dataset=spec.dataset, seed=spec.seed)
        for column in ("layer", "accuracy", "baseline_accuracy"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        frames.append(frame)
    columns = ["run_id", "model", "dataset", "seed", *ABLATION_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=columns), errors
    return pd.concat(frames, ignore_index=True), errors


SUMMARY_FILES = ("summary.json", "summary.csv", "summary.md")  # an optional family's summary, in its folder


def write_summary_files(out_dir: str | Path, summary: dict[str, Any], rows: list[dict[str, Any]],
                        markdown: str) -> list[Path]:
    """An optional family's summary in `out_dir`, each file written atomically: summary.json (`summary`
    itself), summary.csv (`rows`, one a line) and summary.md (`markdown`). Returns their paths."""
    from rir.io import atomic_write_json, atomic_write_text

    paths = [Path(out_dir) / name for name in SUMMARY_FILES]
    atomic_write_json(paths[0], summary)
    atomic_write_text(paths[1], pd.DataFrame(rows).to_csv(index=False))
    atomic_write_text(paths[2], markdown)
    return paths


def read_summary_file(folder: str | Path, what: str, list_key: str,
                      finish: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """(the summary.json in `folder` after `finish(summary)` has filled in what the report shows, or None
    while its stage has not run; problems, one line each). A file that is not a `what` summary (no list
    under `list_key`) or that `finish` cannot read is a problem for the report to show, never a crash."""
    path = Path(folder) / SUMMARY_FILES[0]
    if not path.is_file():
        return None, []
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(summary, dict) or not isinstance(summary.get(list_key), list):
            raise ValueError(f"not a {what} summary")
        finish(summary)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
        return None, [f"{path}: unreadable {what} summary ({type(err).__name__}: {err})"]
    summary["path"], summary["mark"] = str(path), mark_of(summary)
    return summary, []
