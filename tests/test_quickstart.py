"""README's quick start as a new user runs it: command 1 in a fresh clone, on Debian 12's own Python.

Debian's /usr/bin/python3 (3.11.2; many GPU boxes and cluster login nodes have it) refuses `pip install` into
itself (PEP 668) and predates tarfile.data_filter (3.11.4), the two things that broke the quick start there
(issue 16). The slow test takes command 1 from README.md, so that the line a user copies is the line tested,
and runs it with that Python first on the PATH as `python3`; it skips only where /usr/bin/python3 is absent
(CI's machines have it). The fast tests hold `.ci/run` to README's command 2 and every install line of the
docs to the same virtual environment.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from pipeline import BIN, ROOT, fresh_copy

DEBIAN_PYTHON = Path("/usr/bin/python3")
VENV_SETUP = "python3 -m venv .venv && . .venv/bin/activate && "  # what every install line starts with


def quickstart() -> dict[str, str]:
    """README's numbered quick-start commands, {"1": line, "2": line}, exactly as printed."""
    section = (ROOT / "README.md").read_text().split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    commands = dict(re.findall(r"^# (\d)\. .*\n(.+)$", block, flags=re.M))
    assert set(commands) == {"1", "2"}, f"README's quick start should number two commands: {block}"
    return commands


def test_both_commands_set_up_the_same_virtual_environment():
    one, two = (quickstart()[n].split(" && ") for n in ("1", "2"))
    assert one[:2] == two[:2] == ["python3 -m venv .venv", ". .venv/bin/activate"], (one, two)
    setup = [step for step in one if "pip install" in step]
    assert setup and two[2 : 2 + len(setup)] == setup == one[2 : 2 + len(setup)], (one, two)


def test_ci_runs_readmes_command_2_step_by_step():
    lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    at = 0
    for step in quickstart()["2"].split(" && "):
        # Each step starts a line of its own, in README's order, with nothing added to the command itself;
        # CI's own lines may sit in between, and CI may act on a step's exit status (`|| rc=$?`, `; rc=$?`).
        runs_step = re.compile(re.escape(step) + r"\s*($|\|\||&&|;)")
        found = [i for i in range(at, len(lines)) if runs_step.match(lines[i])]
        assert found, f".ci/run lacks README's step {step!r} after its line {at}, or has it changed"
        at = found[0] + 1


def test_every_install_line_of_the_docs_makes_the_virtual_environment_first():
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    installs = [
        (doc.name, line)
        for doc in docs
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.S)
        for line in block.splitlines()
        if "pip install" in line
    ]
    assert installs and all(line.startswith(VENV_SETUP) for _, line in installs), installs


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN_PYTHON.is_file(), reason=f"needs Debian's {DEBIAN_PYTHON} (CI has it)")
def test_readme_command_1_in_a_fresh_clone_on_debians_python(tmp_path):
    repo = fresh_copy(tmp_path / "clone")
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "python3").symlink_to(DEBIAN_PYTHON)
    # A new user's shell: Debian's python3 first, no environment active, nothing of the tests' own Python on
    # the PATH (CI's tests run in .ci/run's environment, whose snakemake must not stand in for the clone's).
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p) != BIN]
    # PYTEST_ADDOPTS carries CI's JUnit report path, which the clone's own pytest run must not overwrite.
    dropped = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTEST_ADDOPTS"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["PATH"] = os.pathsep.join([str(shim), *path])
    proc = subprocess.run(["bash", "-c", quickstart()["1"]], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, (
        f"README's command 1 exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    assert (repo / "reports/smoke/index.html").is_file()

    venv_python = str(repo / ".venv/bin/python")
    probe = "import json, sys, tarfile, torch; print(json.dumps([sys.base_prefix, sys.version.split()[0], " \
            "hasattr(tarfile, 'data_filter'), torch.__version__, torch.version.cuda]))"
    base, version, has_filter, torch_version, cuda = json.loads(
        subprocess.run([venv_python, "-c", probe], cwd=repo, env=env, capture_output=True, text=True,
                       check=True).stdout
    )
    assert base == "/usr", f"the clone's environment was made from {base}, not from {DEBIAN_PYTHON}"
    # The pinned torch is the CPU wheel on this machine's disk; a CUDA build would be gigabytes of downloads.
    assert cuda is None, f"torch {torch_version} (CUDA {cuda}) was installed, not the CPU wheel"
    # Every job ran in the clone's environment, on Debian's Python.
    runs = sorted((repo / "results/smoke/runs").glob("*/env.json"))
    assert runs and {json.loads(p.read_text())["python"] for p in runs} == {version}, runs

    # The tar refusals on this Python itself; where it predates data_filter, that is the fallback's proof.
    tar_tests = subprocess.run(
        [venv_python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_data.py", "-k",
         "bad_tarball or standard_library or malicious_pickle"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=900,
    )
    assert tar_tests.returncode == 0, tar_tests.stdout[-3000:] + tar_tests.stderr[-3000:]
    print(f"{DEBIAN_PYTHON}: Python {version}, tarfile.data_filter {'present' if has_filter else 'absent'}, "
          f"torch {torch_version}; tar tests {tar_tests.stdout.strip().splitlines()[-1]}")
