"""Helpers for end-to-end tests: a fresh copy of the repository and the real Snakemake and DVC commands.

Each copy holds the tracked files (and new ones not yet ignored) as a fresh clone would, made into its own
git repository, because DVC and env.json need one. Nothing is mocked: Snakemake, DVC and `rir` run as
users run them.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # snakemake, dvc and rir are installed beside the interpreter


def env(repo: Path | None = None) -> dict:
    """The tests' environment; in a copy of the repository (`repo`), its own rir package comes first, as in
    a clone installed with `pip install -e .`: the workflow runs, and digests, the copy's code."""
    extra = {"PYTHONPATH": str(repo)} if repo is not None and (Path(repo) / "rir").is_dir() else {}
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONUNBUFFERED": "1",
            **extra}


def sh(cwd: Path, *cmd: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(cwd), capture_output=True, text=True, timeout=timeout)
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


DEBIAN_PYTHON = Path("/usr/bin/python3")  # Debian 12's own 3.11.2: PEP 668, and no tarfile.data_filter


@functools.cache
def system_python_supported() -> bool:
    """Whether /usr/bin/python3 exists and is a Python the project admits (>= 3.11, pyproject.toml): on an
    older system Python README's quick start is not meant to work, and the tests that run it skip (CI,
    which insists on no skip, has Debian 12's)."""
    if not DEBIAN_PYTHON.is_file():
        return False
    proc = subprocess.run([str(DEBIAN_PYTHON), "-c", "import sys; print(sys.version_info >= (3, 11))"],
                          capture_output=True, text=True)
    return proc.stdout.strip() == "True"


def readme_commands() -> dict[str, str]:
    """README's numbered quick-start commands, {"1": line, "2": line}, exactly as printed."""
    section = (ROOT / "README.md").read_text().split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    commands = dict(re.findall(r"^# (\d)\. .*\n(.+)$", block, flags=re.M))
    assert set(commands) == {"1", "2"}, f"README's quick start should number two commands: {block}"
    return commands


def new_users_shell(tmp: Path) -> dict[str, str]:
    """A new user's environment: Debian's python3 first on the PATH, no virtual environment active, nothing
    of the tests' own Python on the PATH (CI's tests run in .ci/run's environment, whose snakemake must not
    stand in for a clone's), and no PYTEST_ADDOPTS (it carries CI's JUnit report path, which a clone's own
    pytest run must not overwrite)."""
    shim = tmp / "shim"
    shim.mkdir(exist_ok=True)
    if not (shim / "python3").exists():
        (shim / "python3").symlink_to(DEBIAN_PYTHON)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p) != BIN]
    dropped = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTEST_ADDOPTS"}
    return {**{k: v for k, v in os.environ.items() if k not in dropped},
            "PATH": os.pathsep.join([str(shim), *path])}


def readme_command_1(tmp: Path) -> dict:
    """README's command 1 exactly as printed, in a fresh clone at `tmp`/clone, on Debian's python3 as a new
    user's shell has it, then what a test needs to judge it, gathered while the clone's environment is there:
    {"repo", "returncode", "log", "probe": [base prefix, Python, has data_filter, torch, torch's CUDA] or
    None, "tar_tests": the clone's own tar refusal tests run on that Python, a CompletedProcess, or None}.

    The session runs it once (conftest's `quickstart` fixture), and its finished smoke pipeline is also the
    one the pipeline, report and fault tests share (`snakemade`): one smoke pipeline for both."""
    repo = fresh_copy(tmp / "clone")
    env = new_users_shell(tmp)
    # Both streams in one, in order, as a terminal shows them.
    proc = subprocess.run(["bash", "-c", readme_commands()["1"]], cwd=repo, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=1800)
    result = {"repo": repo, "returncode": proc.returncode, "probe": None, "tar_tests": None,
              "log": proc.stdout[-6000:],
              # What Snakemake printed: everything after pip's last line.
              "console": proc.stdout.rsplit("Successfully installed", 1)[-1].split("\n", 1)[-1]}
    venv_python = repo / ".venv/bin/python"
    if proc.returncode != 0 or not venv_python.is_file():
        return result
    probe = "import json, sys, tarfile, torch; print(json.dumps([sys.base_prefix, sys.version.split()[0], " \
            "hasattr(tarfile, 'data_filter'), torch.__version__, torch.version.cuda]))"
    result["probe"] = json.loads(subprocess.run([str(venv_python), "-c", probe], cwd=repo, env=env,
                                                capture_output=True, text=True, check=True).stdout)
    # The tar refusals on this Python itself; where it predates data_filter, that is the fallback's proof.
    result["tar_tests"] = subprocess.run(
        [str(venv_python), "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "tests/test_data.py",
         "-k", "bad_tarball or standard_library or malicious_pickle"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=900,
    )
    return result


# Short runs for tests that train again beyond the session's one smoke pipeline, where what they prove does
# not need the runs to learn: 512 images in batches of 128, 2 epochs, the milestone after the first (8 steps
# instead of the smoke profile's 72). tests/test_slurm.py's fault tests count their steps from it.
SHORT_RUNS = {"synthetic": {"n_train": 512, "n_test": 256, "seed": 0},
              "recipe": {"epochs": 2, "batch_size": 128, "milestones": [1]}}
# A slice of the smoke profile with every kind of stage in it: both datasets (Table 2's CIFAR-100), the two
# ablated runs of Figure 3 (shared with Table 3), a Table 4 grid point, Table 5, a Figure 4 run: 7 runs
# instead of 21.
SMOKE_SLICE = {
    "table1_2": {"seeds": [0], "datasets": ["cifar10", "cifar100"]},
    "table3": {"seeds": [0], "datasets": ["cifar10"], "models": ["resnet_init_18", "rir_18"]},
    "table4": {"grid": {"blocks": [[1, 1, 1]], "layers_per_block": [2]}},
    "table5": {"seeds": [0], "datasets": ["cifar10"], "models": ["all_cnn_c_resnet_init"]},
    "figure3": {"datasets": ["cifar10"]},
    "figure4": {"seeds": [0], "grid": {"layers_per_block": [2]}},
}


def cut_smoke_profile(repo: Path, families: bool = True) -> None:
    """Cut the copy's smoke profile to SHORT_RUNS, and with `families` to SMOKE_SLICE's runs (no DVC stage
    changes: the stages list no runs)."""
    import yaml

    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    smoke = params["profiles"]["smoke"]
    for key, value in SHORT_RUNS.items():
        smoke[key] = {**smoke.get(key, {}), **value}
    if families:
        smoke["families"] = SMOKE_SLICE
    path.write_text(yaml.safe_dump(params, sort_keys=False))


# Snakemake's job blocks on the console, for the tests that read them: the default workflow profile leaves
# them out (`quiet: [rules, host, reason]`); a `--quiet` on the command line replaces the profile's.
SHOW_JOBS = ("--quiet", "host")


def snakemake(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh(repo, sys.executable, "-m", "snakemake", "--cores", "2", *SHOW_JOBS, "--config",
              "profile=smoke", *args, check=check)


def planned_jobs(repo: Path) -> dict[str, list[str]]:
    """Snakemake's dry run as {rule: [wildcards, ...]}: what it would run now."""
    proc = snakemake(repo, "--dry-run")
    jobs: dict[str, list[str]] = {}
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", proc.stdout, flags=re.M):
        wildcards = re.search(r"wildcards: (.*)", body)
        jobs.setdefault(rule, []).append(wildcards.group(1) if wildcards else "")
    return jobs


SMOKE_DVC = "workflow/dvc/smoke/dvc.yaml"  # the smoke profile's pipeline, once used (rir.dvcgen)
SMOKE_STAGE = f"{SMOKE_DVC}:smoke"  # its one stage, which runs Snakemake


def dvc_changed(repo: Path, target: str = SMOKE_DVC) -> bool:
    """Whether `dvc status` of the smoke pipeline (or `target`) reports anything to redo."""
    proc = sh(repo, "dvc", "status", target)
    return "up to date" not in proc.stdout


def dvc_ran(output: str) -> set[str]:
    """The stages a `dvc repro` or `dvc exp run` ran, by what it printed."""
    return set(re.findall(r"^Running stage '([^']+)'", output, flags=re.M))


def trained(output: str) -> list[str]:
    """The runs a Snakemake invocation trained, by what it printed (`dvc repro` passes it on): the console's
    one line per finished training (workflow/rules/train.smk), or, for a dry run with SHOW_JOBS, its job
    blocks."""
    console = re.findall(r"^([\w-]+): (?:test accuracy|diverged).*\[logs/\w+/train/\1\.log\]$", output,
                         flags=re.M)
    blocks = re.findall(r"^(?:local)?rule train:\n(?:    .*\n)*?    wildcards: run=(\S+)", output, flags=re.M)
    return sorted(console or blocks)
