"""The Snakemake internals the workflow reads (rir/snakemake_internals.py), checked on this Snakemake.

A Snakemake release that changes one of them must fail here, with a message that names the Snakemake version
and the attribute, before a user meets it: a probe workflow calls every reader through real Snakemake runs
and checks what each returns. The Snakefile and rule files may read no other `workflow` attribute than the
public `workflow.cores`, and pyproject.toml admits only the Snakemake releases these tests ran.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import snakemake
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from rir import snakemake_internals
from rir.errors import UserError
from rir.snakemake_internals import TESTED

REPO = Path(__file__).resolve().parent.parent
PUBLIC = {"cores"}  # `workflow.cores`: Snakemake's documentation uses it (`threads: workflow.cores * 0.75`)

# Every reader, called where the workflow calls it, printing what it returns.
PROBE = """
import sys
from rir.snakemake_internals import (due_for_more_than_missing_output, due_wildcards, has_resource_limit,
                                     local_box, main_process, rules_in_dag, set_resource_limit, touching)

print("LOCAL_BOX", local_box(workflow))
print("MAIN", main_process(workflow))
print("HAD_GPU_LIMIT", has_resource_limit(workflow, "gpu"))
if not has_resource_limit(workflow, "gpu"):
    set_resource_limit(workflow, "gpu", 1)
print("HAS_GPU_LIMIT", has_resource_limit(workflow, "gpu"))

onstart:
    print("TOUCHING", touching(workflow))
    print("DUE", sorted(due_wildcards(workflow, "make", "name")))
    print("MORE_THAN_MISSING", sorted(due_for_more_than_missing_output(workflow, "make", "name")))

onsuccess:
    print("IN_DAG", sorted(rules_in_dag(workflow)))

rule all:
    input: "a.txt", "b.txt"

rule make:
    output: "{name}.txt"
    resources: gpu=1
    shell: "date +%s.%N > {output}.part; sleep 0.5; date +%s.%N >> {output}.part; mv {output}.part {output}"
"""


def probe(tmp_path: Path, *args: str) -> dict[str, str]:
    (tmp_path / "Snakefile").write_text(PROBE)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=tmp_path,
                          capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"Snakemake {snakemake.__version__}: the probe failed\n{log[-4000:]}"
    return dict(re.findall(r"^([A-Z_]+) (.*)$", log, flags=re.M))


def test_every_internal_reads_as_the_workflow_expects_on_this_snakemake(tmp_path):
    version = snakemake.__version__
    seen = probe(tmp_path)
    expected = {"LOCAL_BOX": "True", "MAIN": "True", "HAD_GPU_LIMIT": "False", "HAS_GPU_LIMIT": "True",
                "TOUCHING": "False", "DUE": "['a', 'b']", "MORE_THAN_MISSING": "[]",
                "IN_DAG": "['all', 'make']"}
    for key, value in expected.items():
        assert seen.get(key) == value, f"Snakemake {version}: {key} reads {seen.get(key)!r}, not {value!r}"
    # The limit set by the Snakefile is the one the scheduler keeps: one `gpu=1` job at a time on 2 cores.
    (start_a, end_a), (start_b, end_b) = ([float(x) for x in (tmp_path / f"{n}.txt").read_text().split()]
                                          for n in "ab")
    assert end_a <= start_b or end_b <= start_a, f"Snakemake {version}: the `gpu` limit set was not kept"
    # A `--resources` of the user's is seen as a limit, and left alone; --touch is seen.
    (tmp_path / "a.txt").unlink()
    again = probe(tmp_path, "--resources", "gpu=2")
    assert again["HAD_GPU_LIMIT"] == "True" and again["DUE"] == "['a']", f"Snakemake {version}: {again}"
    assert again["MORE_THAN_MISSING"] == "[]", f"Snakemake {version}: {again}"  # a.txt is only missing
    forced = probe(tmp_path, "--forcerun", "make", "--", "b.txt")
    assert forced["DUE"] == forced["MORE_THAN_MISSING"] == "['b']", f"Snakemake {version}: {forced}"
    assert probe(tmp_path, "--touch", "--forceall")["TOUCHING"] == "True", f"Snakemake {version}"


@pytest.mark.parametrize("reader, args, attribute", [
    ("local_box", (), "workflow.nodes"),
    ("has_resource_limit", ("gpu",), "workflow.global_resources"),
    ("set_resource_limit", ("gpu", 1), "workflow.global_resources"),
    ("due_wildcards", ("train", "run"), "workflow.dag.needrun_jobs()"),
    ("due_for_more_than_missing_output", ("train", "run"), "workflow.dag.reason(job)"),
    ("rules_in_dag", (), "workflow.dag.jobs"),
    ("main_process", (), "workflow.is_main_process"),
    ("touching", (), "workflow.touch"),
])
def test_a_changed_internal_is_one_line_naming_the_version_and_the_attribute(reader, args, attribute):
    class Changed:  # a Workflow of a release without the attribute
        pass

    with pytest.raises(UserError) as err:
        getattr(snakemake_internals, reader)(Changed(), *args)
    message = str(err.value)
    assert f"Snakemake {snakemake.__version__} has changed {attribute} " in message and "\n" not in message
    assert f"snakemake{TESTED}" in message


def test_the_workflow_reads_no_other_snakemake_internal():
    files = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    read = {}
    for path in files:
        code = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
        for attribute in re.findall(r"\bworkflow\.(\w+)", code):
            read.setdefault(attribute, path.name)
    assert set(read) <= PUBLIC, (f"{read}: read workflow internals through rir/snakemake_internals.py, "
                                 "which names the Snakemake version when one changes")


def test_pyproject_admits_only_the_snakemake_releases_tested():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    ranges = [dep[len("snakemake"):] for dep in project["dependencies"] if re.match(r"snakemake[<>=!~]", dep)]
    assert ranges == [TESTED], f"pyproject.toml's Snakemake range {ranges} is not the tested {TESTED}"
    installed = Version(snakemake.__version__)
    assert installed in SpecifierSet(TESTED), f"Snakemake {installed} runs the tests, outside {TESTED}"
