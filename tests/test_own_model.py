"""A model of your own beside RiR: one file, its runs alone, its own table (README, "Add your own model").

The fast tests hold the registration's promises in a copy of the package (each fault is one line naming the
model, exit 2, from `rir models` and from Snakemake's start). The slow test follows README's section step by
step in a copy of a finished smoke workspace, as a reviewer would: the commands of its bash blocks as
written, its params.yaml lines under `families:`; then only the new runs train and the report has the
family's table.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from pipeline import ROOT, copy_worktree, sh, snakemake, trained

from rir import catalog
from rir.errors import UserError

PREACT = ROOT / "rir/models/preact.py"


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A copy of the rir package that rir.catalog reads instead of this clone's."""
    shutil.copytree(ROOT / "rir", tmp_path / "rir", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(catalog, "ROOT", tmp_path)
    catalog.refresh()
    yield tmp_path
    catalog.refresh()


def write_model(root: Path, name: str, text: str) -> None:
    (root / f"rir/models/{name}.py").write_text(
        "from torch import nn\n\nfrom rir.models import register_model\n\n"
        f"BASE = dict(init='msr', width_scale=1.0)\n\n\n{text}")
    catalog.refresh()


@pytest.mark.parametrize("text, message", [
    ("@register_model\ndef mine(num_classes, width_scale):\n    return nn.Flatten()\n",
     r"rir/models/mine.py: model mine: write @register_model\(label=\"...\", options=dict\(...\)\)"),
    ("@register_model(label='mine')\ndef mine(num_classes, width_scale):\n    return nn.Flatten()\n",
     r"rir/models/mine.py: model mine: @register_model has no options="),
    ("@register_model(label='mine', options=dict(width_scale=1.0))\ndef mine(num_classes, width_scale):\n"
     "    return nn.Flatten()\n", r"model mine: options lack 'init'"),
    ("@register_model(label='mine', options=dict(BASE, width=nn.Flatten()))\ndef mine(num_classes, **o):\n"
     "    return nn.Flatten()\n", r"model mine: its label and options must be literals or constants"),
    ("@register_model(label='dup', options=BASE)\ndef rir_18(num_classes, width_scale):\n"
     "    return nn.Flatten()\n",
     r"model rir_18 is registered twice: in rir/models/resnet.py and in rir/models/mine.py; rename one"),
])
def test_a_malformed_registration_is_one_line_naming_the_model_and_the_fault(package, text, message):
    write_model(package, "mine", text)
    with pytest.raises(UserError, match=message):
        catalog.models()


def test_a_registration_reads_the_files_constants_and_another_model_files(package):
    write_model(package, "mine", "from rir.models.resnet import WIDE\n\nMINE = {**WIDE, 'width': 8}\n\n\n"
                "@register_model(label='my net', options={**MINE, 'depth': 3})\n"
                "def mine(num_classes, **o):\n    return nn.Flatten()\n")
    entry = catalog.model("mine")
    assert (entry.label, entry.path) == ("my net", "rir/models/mine.py")
    assert entry.options == {**catalog.model_defaults("cnn_18_wide"), "width": 8, "depth": 3}
    names = catalog.list_models()
    assert names.index("mine") > max(names.index(n) for n in catalog.paper_models())  # after the paper's
    assert "mine" not in catalog.paper_models() and "rir_18" in catalog.paper_models()


def _copy(tmp_path: Path) -> Path:
    return copy_worktree(tmp_path / "repo")


@pytest.mark.parametrize("body, fault", [
    ("@register_model(label='dup', options=BASE)\ndef rir_18(num_classes, width_scale):\n"
     "    return nn.Flatten()\n", "model rir_18 is registered twice"),
    ("@register_model(label='mine', options=BASE)\ndef mine(num_classes, width_scale):\n"
     "    raise ValueError('no such layer')\n", "model mine (rir/models/mine.py) does not build: "),
    ("@register_model(label='mine', options=BASE)\ndef mine(num_classes, width_scale):\n"
     "    return nn.Linear(5, num_classes)\n", "model mine (rir/models/mine.py) fails on a 3x32x32 image: "),
])
def test_rir_models_says_what_is_wrong_with_a_model_in_one_line_and_exits_2(tmp_path, body, fault):
    repo = _copy(tmp_path)
    write_model(repo, "mine", body)
    proc = sh(repo, "python", "-m", "rir", "models", check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and fault in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_snakemake_refuses_a_name_registered_twice_in_one_line_before_anything_runs(tmp_path):
    repo = _copy(tmp_path)
    write_model(repo, "mine", "@register_model(label='x', options=BASE)\n"
                "def rir_18(num_classes, width_scale):\n    return nn.Flatten()\n")
    proc = sh(repo, "snakemake", "-n", "--config", "profile=smoke", check=False)
    said = [line for line in proc.stderr.splitlines() if "registered twice" in line]
    assert proc.returncode == 2 and said == [
        "snakemake: error: model rir_18 is registered twice: in rir/models/resnet.py and in "
        "rir/models/mine.py; rename one"], proc.stderr[-2000:]


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Add your own model\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert match, "README.md has no section 'Add your own model'"
    return match.group(1)


def test_readmes_section_is_short_and_names_the_shipped_example():
    section = readme_section()
    assert len(section.splitlines()) <= 40, len(section.splitlines())
    assert "rir/models/preact.py" in section and "preact" in section
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            command = line.split("#")[0].strip()
            assert not command or command.split()[0] in {"cp", "sed", "rir", "snakemake"}, line


@pytest.mark.slow
def test_following_readme_adds_a_model_that_trains_alone_and_gets_its_table(snakemade, tmp_path):
    """README's steps in a copy of a finished smoke workspace: a new file, a family in params.yaml,
    `rir models`, `rir plan`, the smoke run; only the new runs train, and the family has its table."""
    repo = tmp_path / "repo"
    shutil.copytree(snakemade, repo, symlinks=True)
    section = readme_section()
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    commands = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()
                if line.strip() and not line.startswith("#")]
    family = re.search(r"```yaml\n(.*?)```", section, flags=re.S).group(1)
    name = re.search(r"^  (\w+):", family, flags=re.M).group(1)
    params = (repo / "params.yaml").read_text()
    assert params.count("\nfamilies:\n") == 1
    (repo / "params.yaml").write_text(params.replace("\nfamilies:\n", "\nfamilies:\n" + family, 1))

    said = {}
    for command in commands:
        if command.startswith("snakemake"):  # on the test's two cores, as CI's
            said[command] = sh(repo, *command.replace("--cores all", "--cores 2").split())
        else:
            said[command] = sh(repo, "bash", "-c", command)
    run = [c for c in commands if c.startswith("snakemake")]
    assert run, commands
    new = trained(said[run[-1]].stdout + said[run[-1]].stderr)
    models = [m for m in re.findall(r"models: \[(.*?)\]", family)[0].split(", ")]
    mine = [m for m in models if catalog.known_defaults(m) == {}]  # not in this clone's catalog: the new one
    assert mine and new and all(r.startswith(tuple(f"{m}__" for m in mine)) for r in new), (new, mine)
    listed = [c for c in commands if c.startswith("rir models")]
    assert listed and "rir/models/" in said[listed[0]].stdout and mine[0] in said[listed[0]].stdout

    table = json.loads((repo / f"results/smoke/tables/family_{name}.json").read_text())
    assert {c["model"] for c in table} == set(models) and all(c["n_completed"] for c in table), table
    report = (repo / "reports/smoke/index.html").read_text()
    assert f"Family {name}: test accuracy" in report
    assert snakemake(repo, "--dry-run").stdout.count("rule train:") == 0
