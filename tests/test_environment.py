"""One definition of the software the workflow runs with: pyproject.toml, installed as README says.

The workflow had a conda environment (workflow/envs/rir.yaml) beside it that admitted torch 2.4 while
pyproject.toml requires 2.6, and did not install `rir` itself, so `--sdm conda` jobs ran whatever `rir` was on
PATH. No conda exists where the tests run, so such a file could never be proven; it was removed, and the
rules run in the environment Snakemake runs in (docs/cluster.md). These tests keep it that way, and keep every
install line of the documentation on pyproject's torch range.
"""

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]


def torch_requirement() -> str:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch,) = [dep for dep in deps if re.match(r"torch[<>=!~ ]", dep)]
    return torch


def test_no_rule_names_a_second_environment():
    for path in RULE_FILES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            directive = re.match(r"\s*(conda|container|singularity|envmodules):", line)
            assert not directive, (f"{path.name}:{number}: `{directive.group(1)}:` names an environment "
                                   "besides pyproject.toml's, which no test here can run")
    envs = [p for p in (REPO / "workflow").rglob("*.y*ml")
            if re.search(r"^dependencies:", p.read_text(), flags=re.M)]
    assert not envs, f"conda environment files beside pyproject.toml: {envs}"


def test_every_install_line_of_the_documentation_uses_pyprojects_torch_range():
    expected = torch_requirement()
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for spec in re.findall(r'pip install "(torch[^"]*)"', path.read_text()):
            found.append((path.name, spec))
    assert found, "no install line with a torch range in README.md or docs/"
    assert all(spec == expected for _, spec in found), f"{found}: pyproject.toml requires {expected!r}"


def test_the_test_runner_keeps_pytest_xdists_groups(tmp_path):
    """The suite fits CI's 30 minutes only if pytest-xdist sends each group of tests (conftest.py: the ones
    sharing a workspace, the SLURM ones) to one worker; pytest 9.2 with pytest-xdist 3.8 drops the groups
    silently, and every worker then builds every workspace. A toy suite of one group, on the tests' runner."""
    import os
    import subprocess
    import sys

    (tmp_path / "test_toy.py").write_text(
        "import os\nimport pytest\n\n"
        + "".join(f"@pytest.mark.xdist_group('one')\ndef test_{i}():\n"
                  f"    print('WORKER', os.environ['PYTEST_XDIST_WORKER'])\n\n" for i in range(6)))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-rA", "-p",
                           "no:cacheprovider", "-c", "/dev/null", "--rootdir", str(tmp_path), "test_toy.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,  # not CI's JUnit file:
                          env={k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"})
    workers = set(re.findall(r"^WORKER (gw\d+)$", proc.stdout, flags=re.M))
    assert proc.returncode == 0 and len(re.findall(r"^WORKER ", proc.stdout, flags=re.M)) == 6, proc.stdout
    assert len(workers) == 1, f"one group ran on {sorted(workers)}: pytest-xdist lost its groups"
