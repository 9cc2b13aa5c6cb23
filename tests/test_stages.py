"""What a run is (rir.stages): the stamp that decides whether a run trains again keeps its promises.

A run trains again exactly when its stamp changes: its resolved configuration, its model's options, its data
and the code it executes. Nothing here trains or imports torch: the code is read statically, and the edits
are made to a copy of the rir package (the `package` fixture) that rir.stages reads instead of this clone's.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

from rir import catalog, stages
from rir.catalog import known_defaults
from rir.config import data_settings, expand_runs, load_params, resolve_profile
from rir.errors import UserError
from rir.stages import (
    ENTRY,
    EXEMPT,
    closure,
    code_of,
    data_stamp,
    digest,
    model_file,
    module_digest,
    run_code_digest,
    run_stamp,
    write_stamp,
)

ROOT = Path(__file__).resolve().parents[1]
CACHED = (stages._tree, stages._imports, stages.module_digest)
MODELS = ("all_cnn_c", "all_cnn_c_resnet_init", "rir_18", "resnet_18")  # two of each model file


def _forget() -> None:
    for cached in CACHED:
        cached.cache_clear()
    catalog.refresh()


def model_files() -> dict[str, str]:
    """Model name -> the file that registers it, as rir.catalog reads them."""
    return {name: model.path for name, model in catalog.models().items()}


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A copy of the rir package that rir.stages reads (its _ROOT) instead of this clone's: edit it freely."""
    shutil.copytree(ROOT / "rir", tmp_path / "rir", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(stages, "_ROOT", tmp_path)
    monkeypatch.setattr(catalog, "ROOT", tmp_path)
    _forget()
    yield tmp_path
    _forget()


def add(root: Path, path: str, before: str = "", after: str = "") -> None:
    """Put text before and after a file of the copy, and forget what was read."""
    file = root / path
    file.write_text(before + file.read_text(encoding="utf-8") + after, encoding="utf-8")
    _forget()


def edit(root: Path, path: str, old: str, new: str) -> None:
    """Replace `old` (which must be there, once) by `new` in a file of the copy, and forget what was read."""
    file = root / path
    text = file.read_text(encoding="utf-8")
    assert text.count(old) == 1, (path, old)
    file.write_text(text.replace(old, new), encoding="utf-8")
    _forget()


def digests() -> dict[str, str]:
    return {model: run_code_digest(model) for model in MODELS}


def changed(before: dict[str, str]) -> set[str]:
    return {model for model, value in digests().items() if value != before[model]}


# --- A module counts by its syntax tree: comments, docstrings and layout change nothing ---------------------

TOY = '''"""A module's docstring."""

import math


class Scale:
    """A class's docstring."""

    def __init__(self, factor):
        """A method's docstring."""
        self.factor = factor


def grow(x):
    """A function's docstring."""
    return math.floor(x * 2)


async def later(x):
    """An async function's docstring."""
    return x


def documented_only():
    """Nothing but a docstring."""


def plain(x):
    return x
'''


def test_comments_docstrings_and_blank_lines_change_no_module_digest_while_code_does(package):
    toy = package / "rir" / "toy.py"
    toy.write_text(TOY)
    _forget()
    before = module_digest("rir/toy.py")
    layout = {
        "a comment": TOY.replace("import math\n", "import math  # floor\n# a whole line of comment\n"),
        "blank lines": TOY.replace("\n\n\nclass", "\n\n\n\n\n\nclass").replace("    return math",
                                                                              "\n    return math"),
        "docstrings reworded": (TOY.replace("A module's", "This module's").replace("A class's", "The class's")
                                .replace("A method's", "The method's")
                                .replace("A function's", "The function's")
                                .replace("An async", "The async").replace("Nothing but", "Only")),
        "a docstring added": TOY.replace("def plain(x):\n", 'def plain(x):\n    """Now documented."""\n'),
        "docstrings removed": (TOY.replace('    """A class\'s docstring."""\n\n', "")
                               .replace('    """A function\'s docstring."""\n', "")
                               .replace('"""A module\'s docstring."""\n\n', "")),
    }
    for what, text in layout.items():
        assert text != TOY, what
        toy.write_text(text)
        _forget()
        assert module_digest("rir/toy.py") == before, what
    code = {
        "an expression": TOY.replace("x * 2", "x * 3"),
        "a name": TOY.replace("self.factor = factor", "self.scale = factor"),
        "a statement after the docstring": TOY.replace('    """Nothing but a docstring."""\n',
                                                       '    """Nothing but a docstring."""\n    return 1\n'),
        "a string that is no docstring": TOY.replace("return x\n", 'return x\n    "not a docstring"\n'),
        "an import": TOY.replace("import math\n", "import math\nimport os\n"),
    }
    for what, text in code.items():
        toy.write_text(text)
        _forget()
        assert module_digest("rir/toy.py") != before, what


def test_a_real_modules_comment_and_docstring_change_no_run(package):
    before = digests()
    edit(package, "rir/train.py", "\ndef _not_resumable(", "\n# a comment\n\n\ndef _not_resumable(")
    edit(package, "rir/models/all_cnn.py", '"""Table 5: ALL-CNN-C with standard initialization."""',
         '"""Table 5: ALL-CNN-C, standard initialization (reworded)."""')
    add(package, "rir/layers.py", before="# a comment at the top of the module\n\n", after="\n\n# the end\n")
    assert changed(before) == set()


# --- A run's code is what it executes: its model's file, not the others' ------------------------------------


def test_a_model_files_edit_changes_its_own_runs_alone_and_trainings_edit_every_run(package):
    before = digests()
    edit(package, "rir/models/all_cnn.py", "(192, 1, 1, 0))", "(192, 1, 1, 0), (192, 1, 1, 0))")
    assert changed(before) == {"all_cnn_c", "all_cnn_c_resnet_init"}
    edit(package, "rir/models/all_cnn.py", "(192, 1, 1, 0), (192, 1, 1, 0))", "(192, 1, 1, 0))")
    assert changed(before) == set()  # undone: the same runs again
    edit(package, "rir/models/resnet.py", "        return out.mean(dim=(2, 3)) if out.dim() == 4 else out",
         "        return out.amax(dim=(2, 3)) if out.dim() == 4 else out")
    assert changed(before) == {"rir_18", "resnet_18"}
    edit(package, "rir/models/resnet.py", "out.amax(", "out.mean(")
    edit(package, "rir/train.py", "EXIT_DIVERGED = 3", "EXIT_DIVERGED = 4")
    assert changed(before) == set(MODELS)


def test_a_module_every_net_uses_changes_every_run_and_an_exempt_one_none(package):
    before = digests()
    for exempt in ("rir/gpu.py", "rir/io.py", "rir/env.py", "rir/config.py"):
        assert exempt in EXEMPT
        add(package, exempt, after="\nCHANGED = True\n")
    assert changed(before) == set()
    edit(package, "rir/layers.py", "def scaled(", "def _unused():\n    return 1\n\n\ndef scaled(")
    assert changed(before) == set(MODELS)


def test_a_new_model_file_is_found_and_changes_no_existing_run(package):
    before, files = digests(), dict(model_files())
    (package / "rir/models/mynet.py").write_text(
        '"""A net of a user\'s own."""\n\nfrom torch import nn\n\nfrom rir.layers import scaled\n'
        "from rir.models import register_model\n\nOPTIONS = dict(init='msr', width_scale=1.0)\n\n\n"
        "@register_model(label='my net', options=OPTIONS)\ndef mynet(num_classes, width_scale):\n"
        "    return nn.Linear(3 * 32 * 32, scaled(num_classes, width_scale))\n")
    _forget()
    assert model_files()["mynet"] == model_file("mynet") == "rir/models/mynet.py"
    assert {name: path for name, path in model_files().items() if name != "mynet"} == files
    assert changed(before) == set()
    assert "rir/models/mynet.py" in code_of("train", "mynet") and "rir/layers.py" in code_of("train", "mynet")
    assert run_code_digest("mynet") not in before.values()


def test_the_model_files_are_found_statically_every_registered_model_in_its_own():
    from rir.models import _REGISTRY

    files = model_files()
    assert set(files) == set(_REGISTRY)  # every model the registry has at import, no other
    assert files["rir_18"] == files["resnet_18"] == "rir/models/resnet.py"
    assert files["all_cnn_c"] == "rir/models/all_cnn.py"
    with pytest.raises(UserError, match="unknown model 'nope'; known models: cnn_18, "):
        model_file("nope")


def test_a_decorator_reached_through_its_module_registers_too(package):
    (package / "rir/models/other.py").write_text(
        "import rir.models as registry\n\nBASE = dict(init='msr', width_scale=1.0)\n\n\n"
        "@registry.register_model(label='one', options=BASE)\ndef one(num_classes):\n"
        "    return None\n\n\n@registry.register_model(label='two', options={**BASE, 'depth': 2})\n"
        "def two(num_classes):\n    return None\n\n\ndef helper():\n    return None\n")
    _forget()
    assert model_file("one") == model_file("two") == "rir/models/other.py" and "helper" not in model_files()
    assert catalog.model_defaults("two") == {"init": "msr", "width_scale": 1.0, "depth": 2}


def test_the_training_closure_holds_what_every_run_executes_and_no_model_file():
    """Lazy imports inside functions count (rir.train imports its step, loader and models in `train`)."""
    code = set(closure(ENTRY["train"]))
    assert {"rir/commands/train.py", "rir/train.py", "rir/step.py", "rir/loader.py", "rir/layers.py",
            "rir/models/__init__.py", "rir/checkpoint.py", "rir/data.py", "rir/recipe.py", "rir/device.py",
            "rir/evaluate.py"} <= code
    assert not code & set(model_files().values())
    assert not code & EXEMPT
    assert all(path.startswith("rir/") and path.endswith(".py") for path in code)
    for model in MODELS:
        own, others = set(code_of("train", model)), set(model_files().values()) - {model_file(model)}
        assert code | {model_file(model)} <= own and not own & others


def test_no_rir_module_imports_relatively_which_the_closure_would_not_follow():
    relative = [f"{path.relative_to(ROOT)}:{node.lineno}" for path in sorted((ROOT / "rir").rglob("*.py"))
                for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(node, ast.ImportFrom) and node.level]
    assert relative == []


# --- The stamp ---------------------------------------------------------------------------------------------


def test_write_stamp_keeps_one_stamp_a_run_and_leaves_the_others(tmp_path):
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    kept = ["rir_18__cifar10__s0x.0000000000000001.json", "rir_18__cifar10__s1.0000000000000002.json",
            "all_cnn_c__cifar10__s0.0000000000000003.json", "rir_18__cifar10__s0-notes.txt"]
    old = ["rir_18__cifar10__s0.00000000000000aa.json", "rir_18__cifar10__s0.00000000000000bb.json"]
    for name in [*kept, *old]:
        (stamps / name).write_text("{}")
    stamp = {"config": {"lr": 0.1}, "code": "c"}
    path = stamps / f"rir_18__cifar10__s0.{digest(stamp)}.json"
    write_stamp(path, stamp)
    assert sorted(p.name for p in stamps.iterdir()) == sorted([*kept, path.name])
    assert json.loads(path.read_text()) == stamp
    write_stamp(path, stamp)  # again: the same file, still alone
    assert sorted(p.name for p in stamps.iterdir()) == sorted([*kept, path.name])


@pytest.fixture(scope="module")
def smoke():
    params = load_params(ROOT / "params.yaml")
    resolved = resolve_profile(params, "smoke")
    run = expand_runs(params, "smoke")["rir_18__cifar10__s0"]
    data = data_stamp(data_settings(resolved, run.dataset))
    return run.train_options(), {**known_defaults(run.model), **run.model_overrides}, data


def test_a_default_set_or_left_out_is_one_run_and_where_the_data_lie_is_none(smoke):
    options, model_options, data = smoke
    stamp = run_stamp(options, model_options, data)
    assert "channels_last" not in options and "compile" not in options
    for same in ({"channels_last": False}, {"compile": False, "lr_gamma": 0.1},
                 {"data_root": "/somewhere/else"}):
        assert run_stamp({**options, **same}, model_options, data) == stamp, same
    assert run_stamp({**options, "channels_last": True}, model_options, data) != stamp
    assert run_stamp({**options, "lr": options["lr"] / 2}, model_options, data) != stamp
    assert run_stamp(options, {**model_options, "width": model_options["width"] * 2}, data) != stamp
    assert run_stamp(options, model_options, {**data, "n_train": 1}) != stamp
    assert stamp["code"] == run_code_digest("rir_18") and stamp["data"] == data
    assert digest(stamp) == digest(json.loads(json.dumps(stamp)))  # the file's name: from the JSON it holds


def test_the_data_stamp_counts_the_code_that_makes_the_data(package):
    synthetic = {"dataset": "cifar10", "data": "synthetic", "n_train": 8, "n_test": 8, "seed": 0}
    real = {"dataset": "cifar10", "data": "real"}
    before = data_stamp(synthetic), data_stamp(real)
    add(package, "rir/synthetic.py", before="# a comment\n")
    assert (data_stamp(synthetic), data_stamp(real)) == before
    assert "rir/synthetic.py" in closure(ENTRY["synth"])
    add(package, "rir/synthetic.py", after="\nCHANGED = 1\n")
    assert data_stamp(synthetic) != before[0] and data_stamp(real) == before[1]
    add(package, "rir/data.py", after="\nCHANGED = 1\n")
    assert data_stamp(real) != before[1]
