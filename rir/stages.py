"""What a run is and what it executes: the stamp that decides whether a run trains again; no torch.

A run trains again exactly when its *stamp* changes (docs/workflow.md, "What reruns when"):

    {"config": its resolved configuration (params.yaml, as `rir train` reads it),
     "model_options": its model's options, defaults filled in (rir.catalog),
     "data": the settings of its data and the digest of the code that prepares them,
     "code": the digest of every rir module the run executes}

The code is read at module granularity through the imports, statically (no import, so no torch): the
training entry points and every rir module they import, transitively, plus the module that registers the
run's model (`@register_model` in rir/models/<file>.py) and what *it* imports. A model module is reached only
through its own runs (or a model file that imports it): the registry (rir/models/__init__.py) finds the
model files when it is imported, not through an import the walk could follow, so a change to one model file
is a change of its runs alone, and a new model file is nobody's code. Each module counts by its syntax tree
without docstrings, so a comment, a docstring or a blank line changes no digest.

Some rir modules cannot change what a run computes, and no digest reads them (EXEMPT, with the reasons).

The workflow names each run's stamp file after the stamp's digest (`results/<profile>/stamps/<run>.<digest>
.json`, written by the Snakefile's `stamp` rule): a run whose stamp file is missing trains, one whose stamp
file exists does not, whichever tool moved the files there (Snakemake, `dvc checkout`, `dvc exp apply`,
`git checkout`), with no record of who ran what. `rir train` keeps the code digest in every checkpoint and
resumes only state written by the same code (rir.train._not_resumable).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from rir.catalog import parse

RUN_FILES = ("metrics.json", "history.csv", "config.json", "env.json", "model.pt")  # what `rir train` writes
_ROOT = Path(__file__).resolve().parent.parent  # where the paths below start (the clone, or site-packages)

# The modules a kind of work starts from; the walk adds what they import.
ENTRY = {
    "train": ("rir/commands/train.py", "rir/train.py"),
    "synth": ("rir/commands/synth.py", "rir/synthetic.py"),
    "fetch": ("rir/commands/fetch.py", "rir/data.py"),
    "evaluate": ("rir/commands/evaluate.py", "rir/evaluate.py"),
    "ablate": ("rir/commands/ablate.py", "rir/ablation.py"),
    "report": ("rir/commands/report.py", "rir/report/__init__.py"),
}
# Modules that cannot change a number a run computes, so that no digest reads them:
EXEMPT = frozenset({
    "rir/__init__.py",  # the version string
    "rir/cli.py",  # dispatch and argument parsing
    "rir/errors.py",  # the error type and exit codes
    "rir/io.py",  # atomic writes
    "rir/env.py",  # the provenance record (env.json)
    "rir/gpu.py",  # which GPU slot a run leases
    "rir/stages.py",  # this module
    "rir/config.py",  # params.yaml's expansion: its result is the stamp's "config"
    "rir/catalog.py",  # reads the models' registrations: their options are the stamp's "model_options"
})


_tree = functools.cache(parse)  # each file read once per process


def _without_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


@functools.cache
def module_digest(path: str) -> str:
    """sha256 of a module's syntax tree without docstrings: comments, docstrings and layout do not count."""
    tree = _without_docstrings(ast.parse((_ROOT / path).read_text(encoding="utf-8")))
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def _module_file(name: str) -> str | None:
    """rir/a/b.py or rir/a/b/__init__.py for the dotted name `rir.a.b`; None outside rir or when absent."""
    if name != "rir" and not name.startswith("rir."):
        return None
    base = name.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if (_ROOT / candidate).is_file():
            return candidate
    return None


@functools.cache
def _imports(path: str) -> tuple[str, ...]:
    """The rir modules a module imports anywhere in its body (lazy imports inside functions included)."""
    found = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]  # `from rir import train`
    files = {_module_file(name) for name in found}
    return tuple(sorted(f for f in files if f))


def closure(entries: tuple[str, ...]) -> list[str]:
    """Every rir module the entries import, transitively, themselves included, minus EXEMPT."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += _imports(path)
    return sorted(seen - EXEMPT)


def model_file(model: str) -> str:
    """The file under rir/models/ that registers `model` (rir.catalog: read statically, no torch)."""
    from rir.catalog import model as registered

    return registered(model).path


def code_of(kind: str, model: str | None = None) -> dict[str, str]:
    """path -> module digest of the code a kind of work executes; with `model`, the model's file and what it
    imports too (train, evaluate and ablate build a net)."""
    entries = ENTRY[kind] + ((model_file(model),) if model else ())
    return {path: module_digest(path) for path in closure(entries)}


def code_files(kind: str) -> list[str]:
    """The files of `code_of(kind)`, and the non-Python files the kind reads (the report's template and
    paper.yaml): what Snakemake declares as the inputs of steps that are quick to redo."""
    files = list(closure(ENTRY[kind]))
    if kind == "report":
        folders = ("rir/report/templates", "rir/reference")
        files += sorted(p.relative_to(_ROOT).as_posix() for folder in folders
                        for p in (_ROOT / folder).rglob("*") if p.is_file())
    return files


def digest(payload: Any) -> str:
    """16 hex digits of sha256 over canonical JSON: names a stamp file."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def run_code_digest(model: str) -> str:
    """The digest of everything a run of `model` executes: kept in its checkpoints."""
    return digest(code_of("train", model))


def data_stamp(settings: dict[str, Any]) -> dict[str, Any]:
    """What a dataset is: its settings (rir.config.data_settings) and the code that prepares it."""
    code = code_of("fetch") | (code_of("synth") if settings.get("data") == "synthetic" else {})
    return {**settings, "code": digest(code)}


def run_stamp(options: dict[str, Any], model_options: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """What a run is: `options` as `rir train --run` reads them (RunSpec.train_options), its model's options
    with the defaults filled in, its dataset's `data_stamp`, and `run_code_digest`."""
    from rir.recipe import TrainConfig

    config = TrainConfig.from_dict(options).to_dict()  # defaults filled in: a default set or not is one run
    config.pop("data_root")  # where the data lie, not what they are (that is `data`)
    return {"config": config, "model_options": model_options, "data": data,
            "code": run_code_digest(options["model"])}


def write_stamp(path: str | Path, stamp: dict[str, Any]) -> None:
    """Write a stamp file (`<name>.<digest>.json`) and remove the other stamps of the same name, so that a
    stamp present is the one the files beside it were made with."""
    from rir.io import atomic_write_json

    path = Path(path)
    atomic_write_json(path, stamp)
    name = path.name.split(".", 1)[0]
    for old in path.parent.glob(f"{name}.*.json"):
        if old != path:
            old.unlink(missing_ok=True)
