"""params.yaml: load it safely, validate it against its JSON Schema, apply a profile, expand the grid to runs.

Snakemake and DVC both build their DAGs from `expand_runs`, so the two tools always name the same runs.
A run is identified by its content: model, model overrides, recipe overrides, dataset and seed. The same run
requested by several families (the wide RiR of Tables 1-3, the 2-layer blocks of Table 3 and Figure 4) is
trained once. The run id is readable and safe as a file name, a Snakemake wildcard and a DVC stage name
(letters, digits, `_` and `-` only): `rir_18__layers_per_block-4__cifar10__s0`.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rir.catalog import known_defaults
from rir.errors import UserError
from rir.recipe import RECIPE_DEFAULTS, RECIPE_FIELDS, check_recipe

SCHEMA_PATH = Path(__file__).parent / "schemas" / "params.schema.json"
_SAFE_ID = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class RunSpec:
    """One training run of the grid, fully resolved for a profile."""

    run_id: str
    model: str
    dataset: str
    seed: int
    model_overrides: dict[str, Any]  # the family grid's overrides, then the profile's (e.g. width_scale)
    recipe: dict[str, Any]  # the profile's recipe with the family's recipe overrides applied
    families: tuple[str, ...] = field(default=())  # every family that asked for this run
    ablate: bool = False  # Figure 3 ablates this run

    def train_options(self) -> dict[str, Any]:
        """The options `rir train` needs: a dict that `rir.recipe.TrainConfig.from_dict` accepts."""
        return {
            **self.recipe,
            "model": self.model,
            "dataset": self.dataset,
            "seed": self.seed,
            "model_overrides": dict(self.model_overrides),
        }


def read_yaml(path: str | Path, what: str) -> Any:
    """A YAML file read with the safe loader (no Python object tags); UserError names a missing file or the
    line of a syntax error. `what` names the file's role in the message ("params file")."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such {what}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise UserError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read params.yaml with the safe YAML loader and validate it; UserError names any fault."""
    params = read_yaml(path, "params file")
    validate_params(params, source=str(path))
    return params


def validate_params(params: Any, source: str = "params.yaml") -> None:
    """Validate against the JSON Schema; the first error is reported by its key path and reason."""
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        # Inside a oneOf (a profile's family: keys or null) the reason is the alternative that came closest.
        err = jsonschema.exceptions.best_match([errors[0]])
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise UserError(f"{source}: {key}: {err.message}")
    for where, recipe in _recipes(params):
        check_recipe(recipe, f"{source}: {where}")


def _recipes(params: dict[str, Any]):
    """Every recipe params.yaml sets, with its key path: the top level's, each profile's, each family's (in
    a profile too), and each point of a family's grid (its recipe keys alone)."""
    def family_recipes(families: dict, where: str):
        for name, family in (families or {}).items():
            family = family or {}
            yield f"{where}.{name}.recipe", family.get("recipe", {})
            for key, values in family.get("grid", {}).items():
                if key in RECIPE_FIELDS:
                    for value in values:
                        yield f"{where}.{name}.grid", {key: value}

    scopes = [("", params), *((f"profiles.{name}.", p) for name, p in params["profiles"].items())]
    for prefix, scope in scopes:
        yield f"{prefix}recipe", scope.get("recipe", {})
        yield from family_recipes(scope.get("families"), f"{prefix}families")
        yield from family_recipes(scope.get("optional_families"), f"{prefix}optional_families")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `override` merged in; nested dicts merge, `null` removes the key (a profile
    leaves a family out: the laptop profile), everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_profile(params: dict[str, Any], profile: str | None = None) -> dict[str, Any]:
    """params with the chosen profile's keys merged over the top; `profile` defaults to params['profile']."""
    name = profile or params.get("profile", "paper")
    profiles = params.get("profiles", {})
    if name not in profiles:
        raise UserError(f"unknown profile {name!r}; params.yaml defines: {', '.join(sorted(profiles))}")
    base = {k: v for k, v in params.items() if k != "profiles"}
    resolved = deep_merge(base, profiles[name])
    resolved["profile"] = name
    only = resolved.pop("only", None)  # the families the profile keeps, default and optional alike
    if only is not None:
        known = set(resolved.get("families", {})) | set(resolved.get("optional_families", {}))
        unknown = sorted(set(only) - known)
        if unknown:
            raise UserError(f"profiles.{name}.only: no family {unknown[0]!r} in params.yaml "
                            f"(families: {', '.join(sorted(known))})")
        for group in ("families", "optional_families"):
            resolved[group] = {f: spec for f, spec in resolved.get(group, {}).items() if f in only}
    return resolved


def _format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(_format_value(v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        value = f"{value:g}"
    return _SAFE_ID.sub("_", str(value).replace(".", "p"))


def make_run_id(model: str, dataset: str, seed: int, overrides: dict[str, Any]) -> str:
    """`model[__key-value...]__dataset__sSEED`, keys sorted; model, recipe and family overrides alike."""
    parts = [model, *(f"{k}-{_format_value(v)}" for k, v in sorted(overrides.items())), dataset, f"s{seed}"]
    return "__".join(parts)


def _canonical(value: Any) -> Any:
    return [_canonical(v) for v in value] if isinstance(value, (list, tuple)) else value


def _family_runs(name: str, family: dict[str, Any], resolved: dict[str, Any]) -> list[RunSpec]:
    grid = family.get("grid", {})
    keys = sorted(grid)
    recipe = resolved["recipe"]
    recipe_keys = set(RECIPE_FIELDS)  # a grid key is a recipe field or, if not, a model option
    runs = []
    for values in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
        point = dict(zip(keys, values, strict=True))
        family_recipe = {**family.get("recipe", {}), **{k: v for k, v in point.items() if k in recipe_keys}}
        if "holdout" in family:
            family_recipe["holdout"] = family["holdout"]
        # A setting equal to the default (the profile's recipe, else TrainConfig's) names the same run as no
        # setting: Figure 4's 2-layer blocks are Table 3's nets, trained once.
        family_recipe = {k: v for k, v in family_recipe.items()
                         if _canonical(recipe.get(k, RECIPE_DEFAULTS.get(k))) != _canonical(v)}
        datasets, seeds = _every(name, family, resolved, "datasets"), _every(name, family, resolved, "seeds")
        for model, dataset, seed in itertools.product(family["models"], datasets, seeds):
            defaults = known_defaults(model)
            model_point = {k: v for k, v in point.items() if k not in recipe_keys
                           and (k not in defaults or _canonical(defaults[k]) != _canonical(v))}
            run_id = make_run_id(model, dataset, seed, {**model_point, **family_recipe})
            runs.append(
                RunSpec(
                    run_id=run_id,
                    model=model,
                    dataset=dataset,
                    seed=seed,
                    model_overrides={**model_point, **resolved.get("model_overrides", {})},
                    recipe={**recipe, **family_recipe},
                    families=(name,),
                    ablate=bool(family.get("ablate", False)),
                )
            )
    return runs


def _every(name: str, family: dict[str, Any], resolved: dict[str, Any], key: str) -> list:
    """A family's `seeds` or `datasets`: its own, else the profile's (params.yaml's top level, or the
    profile's own key over it)."""
    values = family.get(key, resolved.get(key))
    if values is None:
        raise UserError(f"families.{name}: no {key}: give the family its {key}, or params.yaml a top-level "
                        f"`{key}:` for every family")
    return values


def expand_runs(
    params: dict[str, Any], profile: str | None = None, optional: bool = False, family: str | None = None
) -> dict[str, RunSpec]:
    """Every run of a profile, keyed by run id, in a stable order; shared runs list all their families.

    `optional=True` expands the optional families (the grid search, the readings of RiR) instead of the
    default ones; `family` keeps that one family alone (none when the profile does not have it).
    """
    resolved = resolve_profile(params, profile)
    families = resolved.get("optional_families" if optional else "families", {})
    runs: dict[str, RunSpec] = {}
    for name in families if family is None else [f for f in families if f == family]:
        runs = merge_runs(runs, {run.run_id: run for run in _family_runs(name, families[name], resolved)})
    return runs


def merge_runs(runs: dict[str, RunSpec], more: dict[str, RunSpec]) -> dict[str, RunSpec]:
    """`runs` and `more` in one dict: a run in both is one run, asked for by the families of both."""
    out = dict(runs)
    for run_id, run in more.items():
        prev = out.get(run_id)
        out[run_id] = run if prev is None else RunSpec(**{
            **prev.__dict__,
            "families": prev.families + tuple(f for f in run.families if f not in prev.families),
            "ablate": prev.ablate or run.ablate,
        })
    return out


# Optional families with a summary of their own (rir.report.gridsearch, rir.report.readings) instead of a
# table of the report; every other optional family (a user's, e.g. `preact`) is a Snakemake target of its
# own name and a table once it has run.
SUMMARIZED = ("gridsearch", "readings")


def user_optional_families(params: dict[str, Any],
                           profile: str | None = None) -> dict[str, dict[str, RunSpec]]:
    """Each optional family of the profile but `SUMMARIZED`, with its runs."""
    resolved = resolve_profile(params, profile)
    names = [f for f in resolved.get("optional_families", {}) if f not in SUMMARIZED]
    return {name: expand_runs(params, profile, optional=True, family=name) for name in names}


def reported_runs(params: dict[str, Any], profile: str | None, results_dir: str | Path) -> dict[str, RunSpec]:
    """The runs a profile's tables and report show: its default families' runs, and those of every optional
    family (but `SUMMARIZED`) one of whose own runs (not a default family's) has written its metrics.json,
    i.e. the family has been run (its target). The Snakefile's `tables` rule takes the same runs' files."""
    runs = expand_runs(params, profile)
    for family_runs in user_optional_families(params, profile).values():
        own = [run_id for run_id in family_runs if run_id not in runs]
        if any((Path(results_dir) / "runs" / run_id / "metrics.json").is_file() for run_id in own):
            runs = merge_runs(runs, family_runs)
    return runs


def data_settings(resolved: dict[str, Any], dataset: str) -> dict[str, Any]:
    """What a profile's dataset is, from its resolved params: real CIFAR, or synthetic with its sizes and
    seed (the synth rule's arguments). Part of every run's stamp (rir.stages)."""
    settings = {"dataset": dataset, "data": resolved.get("data", "real")}
    if settings["data"] == "synthetic":
        syn = resolved.get("synthetic", {})
        settings.update(n_train=syn.get("n_train", 512), n_test=syn.get("n_test", 256),
                        seed=syn.get("seed", 0))
    return settings


def datasets_of(runs: dict[str, RunSpec]) -> list[str]:
    """The datasets a set of runs needs, in a stable order."""
    return sorted({r.dataset for r in runs.values()})
