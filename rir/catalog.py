"""The model catalog: every registered model's name, display name, options and file, read without torch.

A model is registered where it is defined, in a file of `rir/models/`:

    @register_model(label="18-layer + wide pre-activation RiR", options=dict(width=96, init="msr", ...))
    def preact_rir_18_wide(num_classes, **options): ...

The Snakefile, `rir dvc` and the report need each model's options and defaults (a run id leaves out an
override equal to its model's default, so Figure 4's default point is Table 3's run) but must not import
torch, whose import alone is about 2 s of every Snakemake start. So this module reads the registrations from
the files' syntax trees: the `label` and `options` of each `@register_model(...)` are evaluated with the
file's module-level constants (assignments that need nothing but literals, `dict`, `tuple`, `list`, earlier
constants and constants imported from another model file). `rir.models` imports the same files and holds
torch's side of the registry; its import fails if the two disagree.

A file is a model file when it registers a model; files are read in `PAPER_FILES` order (so `rir models`
lists the paper's models in the paper's order), then every other file by name. The rules a registration must
follow, each broken one a one-line `UserError`: called with a `label` (a string) and `options` (a dict with
at least `REQUIRED`), written from literals and constants; a name registered once.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rir.errors import UserError

ROOT = Path(__file__).resolve().parent.parent  # the clone (or site-packages): paths below start here
MODELS_DIR = "rir/models"
PAPER_FILES = ("resnet.py", "all_cnn.py", "readings.py")  # Table 3 and Tables 1-2, Table 5, the readings
# Every model takes these: `init` is applied by rir.models.create_model to every net alike, and the smoke and
# laptop profiles shrink every net with `width_scale` (rir.layers.scaled).
REQUIRED = ("init", "width_scale")
_SAFE = {"dict": dict, "tuple": tuple, "list": list, "True": True, "False": False, "None": None}


@dataclass(frozen=True)
class Model:
    """One registered model as its file declares it."""

    name: str
    label: str  # the display name of tables and legends
    options: dict[str, Any] = field(hash=False)  # every option it accepts, with its default
    path: str  # rir/models/<file>.py


def parse(path: str) -> ast.Module:
    """The syntax tree of a file of the project (`path` from the clone's root); a syntax error is one line."""
    try:
        return ast.parse((ROOT / path).read_text(encoding="utf-8"), filename=path)
    except SyntaxError as err:
        raise UserError(f"{path}, line {err.lineno}: {err.msg}") from None


def _evaluate(node: ast.expr, namespace: dict[str, Any], path: str) -> Any:
    return eval(compile(ast.Expression(node), path, "eval"), {"__builtins__": {}}, dict(namespace))  # noqa: S307


@functools.cache
def _constants(path: str) -> dict[str, Any]:
    """A model file's module-level constants: what its registrations may be written with."""
    namespace = dict(_SAFE)
    for node in parse(path).body:
        module = getattr(node, "module", None) or ""
        if isinstance(node, ast.ImportFrom) and (node.level == 1 or module.startswith("rir.models.")):
            other = f"{MODELS_DIR}/{module.removeprefix('rir.models.')}.py"
            if (ROOT / other).is_file():
                found = _constants(other)
                namespace.update({alias.asname or alias.name: found[alias.name]
                                  for alias in node.names if alias.name in found})
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if all(isinstance(t, ast.Name) for t in targets):
                try:
                    value = _evaluate(node.value, namespace, path)
                except Exception:  # not a constant (a class, a torch object, a call): not for options
                    continue
                namespace.update({t.id: value for t in targets})
    return namespace


def _registrations(path: str) -> list[Model]:
    models = []
    for node in parse(path).body:
        if not isinstance(node, ast.FunctionDef | ast.ClassDef):
            continue
        for deco in node.decorator_list:
            call = deco if isinstance(deco, ast.Call) else None
            target = call.func if call else deco
            if getattr(target, "id", getattr(target, "attr", None)) != "register_model":
                continue
            where = f"{path}: model {node.name}"
            if call is None or call.args:
                raise UserError(f"{where}: write @register_model(label=\"...\", options=dict(...)), with its "
                                "display name and every option it takes, with their defaults")
            given = {kw.arg: kw.value for kw in call.keywords}
            missing = [key for key in ("label", "options") if key not in given]
            if missing:
                raise UserError(f"{where}: @register_model has no {missing[0]}=; give it label=\"...\" (its "
                                "display name) and options=dict(...) (every option, with its default)")
            try:
                label, options = (_evaluate(given[k], _constants(path), path) for k in ("label", "options"))
            except Exception as err:
                raise UserError(f"{where}: its label and options must be literals or constants of the file "
                                f"(read without importing torch): {type(err).__name__}: {err}") from None
            if not isinstance(label, str) or not label.strip():
                raise UserError(f"{where}: label must be a non-empty string, got {label!r}")
            if not isinstance(options, dict):
                raise UserError(f"{where}: options must be a dict of option -> default, got {options!r}")
            lacking = [key for key in REQUIRED if key not in options]
            if lacking:
                raise UserError(f"{where}: options lack {lacking[0]!r}; every model takes "
                                f"{' and '.join(REQUIRED)} (default: init=\"msr\", width_scale=1.0)")
            models.append(Model(node.name, label, options, path))
    return models


def _model_files() -> list[str]:
    files = sorted(p.name for p in (ROOT / MODELS_DIR).glob("*.py") if p.name != "__init__.py")
    ordered = [f for f in PAPER_FILES if f in files] + [f for f in files if f not in PAPER_FILES]
    return [f"{MODELS_DIR}/{f}" for f in ordered]


@functools.cache
def models() -> dict[str, Model]:
    """Every registered model by name: the paper's first, in its order, then the others by file."""
    found: dict[str, Model] = {}
    for path in _model_files():
        for model in _registrations(path):
            if model.name in found:
                raise UserError(f"model {model.name} is registered twice: in {found[model.name].path} and in "
                                f"{model.path}; rename one")
            found[model.name] = model
    return found


def paper_models() -> list[str]:
    """The models of the paper's files (`PAPER_FILES`): the paper's own and the public readings of RiR."""
    return [name for name, m in models().items() if m.path.rsplit("/", 1)[-1] in PAPER_FILES]


def refresh() -> None:
    """Forget what was read (a process that edits model files, e.g. a test)."""
    for cached in (models, _constants):
        cached.cache_clear()


def model(name: str) -> Model:
    """The registered model `name`; UserError naming the known ones for any other name."""
    known = models()
    if name not in known:
        raise UserError(f"unknown model {name!r}; known models: {', '.join(known)}")
    return known[name]


def list_models() -> list[str]:
    """Every model name, in the catalog's order."""
    return list(models())


def model_defaults(name: str) -> dict[str, Any]:
    """The options model `name` accepts, with their defaults (a copy); UserError for an unknown name."""
    return dict(model(name).options)


def known_defaults(name: str) -> dict[str, Any]:
    """`model_defaults(name)`, or {} for a name no file registers: for readers of params.yaml and of results
    (run ids, grid points), which leave refusing an unknown model to `rir train` by name."""
    found = models().get(name)
    return dict(found.options) if found else {}


def label(name: str) -> str:
    """Model `name`'s display name; the name itself for one no file registers (an old run's)."""
    found = models().get(name)
    return found.label if found else name
