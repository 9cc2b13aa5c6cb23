"""Helpers for end-to-end tests: a fresh copy of the repository and the real Snakemake and DVC commands.

Each copy holds the tracked files (and new ones not yet ignored) as a fresh clone would, made into its own
git repository, because DVC and env.json need one. Nothing is mocked: Snakemake, DVC and `rir` run as
users run them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # snakemake, dvc and rir are installed beside the interpreter


def env() -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}


def sh(cwd: Path, *cmd: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


def copy_worktree(dest: Path) -> Path:
    """The working tree's files as a fresh clone would have them (tracked, or new and not ignored)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file() or src.is_symlink():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name, follow_symlinks=False)
    return dest


def fresh_copy(dest: Path) -> Path:
    """The repository's files as a fresh clone would have them, committed into a new git repo at `dest`."""
    copy_worktree(dest)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest


def snakemake(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh(repo, sys.executable, "-m", "snakemake", "--cores", "2", "--config", "profile=smoke", *args,
              check=check)


def planned_jobs(repo: Path) -> dict[str, list[str]]:
    """Snakemake's dry run as {rule: [wildcards, ...]}: what it would run now."""
    proc = snakemake(repo, "--dry-run")
    jobs: dict[str, list[str]] = {}
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", proc.stdout, flags=re.M):
        wildcards = re.search(r"wildcards: (.*)", body)
        jobs.setdefault(rule, []).append(wildcards.group(1) if wildcards else "")
    return jobs


def dvc_changed_stages(repo: Path) -> set[str]:
    """Stages `dvc status` reports as changed: the smoke report and everything upstream of it."""
    proc = sh(repo, "dvc", "status", "--with-deps", "report-smoke")
    return set(re.findall(r"^(\S+):\s*$", proc.stdout, flags=re.M))


def dvc_stages(repo: Path) -> dict[str, dict]:
    """dvc.yaml's stages as DVC itself resolves them (its `foreach` templates expanded over the run list):
    {name: {"cmd": ..., "deps": [paths]}}, params files left out of deps."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        return {stage.name: {"cmd": " ".join(stage.cmd.split()),
                             "deps": [d.def_path for d in stage.deps if not isinstance(d, ParamsDependency)]}
                for stage in dvc.index.stages}
