"""README's quick start as a new user runs it: command 1 in a fresh clone, on Debian 12's own Python.

Debian's /usr/bin/python3 (3.11.2; many GPU boxes and cluster login nodes have it) refuses `pip install` into
itself (PEP 668) and predates tarfile.data_filter (3.11.4), the two things that broke the quick start there
(issue 16). The slow test judges command 1 taken from README.md, so that the line a user copies is the line
tested, run with that Python first on the PATH as `python3` (tests/pipeline.py, `readme_command_1`); it skips
only where /usr/bin/python3 is absent or older than 3.11 (CI's machines have Debian 12's). The session runs it
once, and its finished smoke pipeline is the one the pipeline, report and fault tests share (conftest's
`snakemade`). The fast tests hold `.ci/run` to README's command 2 and every install line of the docs to the
same virtual environment.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from pipeline import DEBIAN_PYTHON, ROOT, readme_commands, system_python_supported

from rir.config import expand_runs, load_params

VENV_SETUP = "python3 -m venv .venv && . .venv/bin/activate && "  # what every install line starts with


def test_both_commands_set_up_the_same_virtual_environment():
    one, two = (readme_commands()[n].split(" && ") for n in ("1", "2"))
    assert one[:2] == two[:2] == ["python3 -m venv .venv", ". .venv/bin/activate"], (one, two)
    setup = [step for step in one if "pip install" in step]
    assert setup and two[2 : 2 + len(setup)] == setup == one[2 : 2 + len(setup)], (one, two)


def test_ci_runs_readmes_command_2_step_by_step():
    lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    at = 0
    for step in readme_commands()["2"].split(" && "):
        # Each step starts a line of its own, in README's order, with nothing added to the command itself;
        # CI's own lines may sit in between, and CI may act on a step's exit status (`|| rc=$?`, `; rc=$?`).
        runs_step = re.compile(re.escape(step) + r"\s*($|\|\||&&|;)")
        found = [i for i in range(at, len(lines)) if runs_step.match(lines[i])]
        assert found, f".ci/run lacks README's step {step!r} after its line {at}, or has it changed"
        at = found[0] + 1


def test_cis_allowed_skips_parse_in_bash_and_name_real_tests():
    """.ci/run's allow-list is a single-quoted bash string: an apostrophe in a reason ends it early, and CI
    dies with `command not found` before a test runs (it once did, after 143 s of installing)."""
    text = (ROOT / ".ci/run").read_text()
    block = re.search(r"^ALLOWED_SKIPS='.*?^'$", text, flags=re.S | re.M)
    assert block, ".ci/run has no ALLOWED_SKIPS='...' block"
    run = subprocess.run(["bash", "-euc", block.group(0) + '\nprintf %s "$ALLOWED_SKIPS"'],
                         capture_output=True, text=True)
    assert run.returncode == 0 and not run.stderr, run.stderr
    ids = [line.split("  ", 1)[0] for line in run.stdout.splitlines() if line.strip()]
    assert ids and all("  " in line for line in run.stdout.splitlines() if line.strip()), run.stdout
    for test_id in ids:
        path, _, name = test_id.partition("::")
        assert (ROOT / path).is_file() and f"def {name}(" in (ROOT / path).read_text(), test_id


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
@pytest.mark.skipif(not system_python_supported(),
                    reason=f"needs Debian's {DEBIAN_PYTHON}, or a system Python >= 3.11 there (CI has it)")
def test_readme_command_1_in_a_fresh_clone_on_debians_python(quickstart):
    """The session's one run of command 1 (conftest's `quickstart` fixture, whose finished pipeline the
    pipeline, report and fault tests then share)."""
    repo = quickstart["repo"]
    code = quickstart["returncode"]
    assert code == 0, f"README's command 1 exited {code}\n{quickstart['log']}"
    assert (repo / "reports/smoke/index.html").is_file()

    base, version, has_filter, torch_version, cuda = quickstart["probe"]
    assert base == "/usr", f"the clone's environment was made from {base}, not from {DEBIAN_PYTHON}"
    # The pinned torch is the CPU wheel on this machine's disk; a CUDA build would be gigabytes of downloads.
    assert cuda is None, f"torch {torch_version} (CUDA {cuda}) was installed, not the CPU wheel"
    # Every job ran in the clone's environment, on Debian's Python.
    runs = sorted((repo / "results/smoke/runs").glob("*/env.json"))
    assert runs and {json.loads(p.read_text())["python"] for p in runs} == {version}, runs

    # The console a person watches: one line per finished training with its accuracy, time and log, no job
    # blocks or per-job progress (they stay in the jobs' logs), and the report's path last. What else is
    # left is Snakemake's start (its job table) and its scheduler's two lines a round, which no quiet
    # setting but `all` (errors too) hides: a few dozen lines in all, whatever the number of runs.
    console = [line for line in quickstart["console"].splitlines() if line.strip()]
    runs = expand_runs(load_params(repo / "params.yaml"), "smoke")
    for run in runs:
        said = [line for line in console if line.startswith(f"{run}: ")]
        assert len(said) == 1 and re.fullmatch(rf"{run}: test accuracy \d+\.\d\d % after 3 epochs, \d+ s "
                                               rf"\(synthetic cifar10+\)  \[logs/smoke/train/{run}\.log\]",
                                               said[0]), said
    assert console[-1] == "report: reports/smoke/index.html", console[-5:]
    ours = tuple(f"{run}: " for run in runs)
    rest = [line for line in console if not line.startswith(ours)
            and not re.fullmatch(r"Select jobs to execute\.\.\.|Execute \d+ jobs\.\.\.", line)]
    assert "rule train:" not in quickstart["console"] and len(rest) < 40, rest

    # The tar refusals on this Python itself; where it predates data_filter, that is the fallback's proof.
    tar_tests = quickstart["tar_tests"]
    assert tar_tests.returncode == 0, tar_tests.stdout[-3000:] + tar_tests.stderr[-3000:]
    print(f"{DEBIAN_PYTHON}: Python {version}, tarfile.data_filter {'present' if has_filter else 'absent'}, "
          f"torch {torch_version}; tar tests {tar_tests.stdout.strip().splitlines()[-1]}")
