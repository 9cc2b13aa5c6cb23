"""params.yaml: validation by name, the grid's expansion to runs, and dvc.yaml kept in step with it."""

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rir.cli import COMMANDS
from rir.config import expand_runs, load_params, make_run_id, resolve_profile, validate_params
from rir.errors import UserError
from rir.report.aggregate import grid_point

ROOT = Path(__file__).resolve().parents[1]


PAPER_FAMILIES = {"table1_2", "table3", "table4", "table5", "figure3", "figure4"}


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml")


def test_every_family_of_the_paper_is_in_both_profiles(params):
    for profile in ("paper", "smoke"):
        runs = expand_runs(params, profile)
        families = {f for run in runs.values() for f in run.families}
        assert families >= PAPER_FAMILIES  # and any family a user adds
        assert all(re.fullmatch(r"[A-Za-z0-9_-]+", run_id) for run_id in runs)


def test_paper_profile_has_three_seeds_for_tables_1_to_3(params):
    runs = expand_runs(params, "paper")
    for family in ("table1_2", "table3"):
        seeds = {r.seed for r in runs.values() if family in r.families}
        assert len(seeds) >= 3


def test_a_run_shared_by_families_is_trained_once(params):
    runs = expand_runs(params, "paper")
    wide = runs["rir_18_wide__cifar10__s0"]
    assert set(wide.families) & PAPER_FAMILIES == {"table1_2", "table3"}
    assert sum(1 for r in runs.values() if r.model == "rir_18_wide" and r.dataset == "cifar10") == 3


def test_a_setting_equal_to_the_default_names_the_same_run(params):
    """Figure 4's 2-layer blocks are Table 3's ResNet and RiR: one run, listed under both families."""
    runs = expand_runs(params, "paper")
    assert set(runs["rir_18__cifar10__s0"].families) & PAPER_FAMILIES == {"table3", "figure3", "figure4"}
    assert not any("layers_per_block-2" in run_id for run_id in runs)
    assert "rir_18__layers_per_block-3__cifar10__s0" in runs


def test_a_recipe_setting_equal_to_trainconfigs_default_names_the_same_run(params):
    """A family grid over a recipe field that params.yaml's recipe leaves unset: its value equal to
    TrainConfig's default is the base run, trained once, and the report reads that value back for it."""
    from rir.recipe import RECIPE_DEFAULTS

    p = copy.deepcopy(params)
    assert "augment" not in p.get("recipe", {}) and RECIPE_DEFAULTS["augment"] is True
    p["families"]["table4"]["grid"] = {"augment": [True, False]}
    runs = expand_runs(p, "paper")
    base = runs["rir_18__cifar10__s0"]
    assert {"table3", "table4"} <= set(base.families) and "augment" not in base.recipe
    assert make_run_id("rir_18", "cifar10", 0, {"augment": False}) in runs
    assert make_run_id("rir_18", "cifar10", 0, {"augment": True}) not in runs
    assert grid_point(base, p["families"]["table4"]) == {"augment": True}


def test_profile_overrides_merge_deeply(params):
    smoke = resolve_profile(params, "smoke")
    smoke_epochs = params["profiles"]["smoke"]["recipe"]["epochs"]
    assert smoke["recipe"]["epochs"] == smoke_epochs != params["recipe"]["epochs"]
    assert smoke["recipe"]["momentum"] == params["recipe"]["momentum"]  # kept from the base
    assert smoke["families"]["table3"]["models"] == params["families"]["table3"]["models"]
    run = next(iter(expand_runs(params, "smoke").values()))
    assert run.model_overrides["width_scale"] == 0.125


def test_a_profiles_null_leaves_a_family_out(params):
    edited = copy.deepcopy(params)
    edited["profiles"]["smoke"]["families"]["table4"] = None
    validate_params(edited)
    assert "table4" not in resolve_profile(edited, "smoke")["families"]
    assert not any("table4" in run.families for run in expand_runs(edited, "smoke").values())
    assert any("table4" in run.families for run in expand_runs(params, "smoke").values())


def test_a_family_naming_no_seeds_or_datasets_takes_the_profiles(params):
    """params.yaml's top-level `seeds` and `datasets` are every family's that names none; a profile's own
    replace them; a family's own win over both."""
    paper, smoke = expand_runs(params, "paper"), expand_runs(params, "smoke")

    def of(runs, family):
        chosen = [r for r in runs.values() if family in r.families]
        return {r.seed for r in chosen}, {r.dataset for r in chosen}

    assert "seeds" not in params["families"]["table3"] and "datasets" not in params["families"]["table3"]
    assert of(paper, "table3") == (set(params["seeds"]), set(params["datasets"])) == ({0, 1, 2},
                                                                                      {"cifar10", "cifar100"})
    assert of(paper, "figure3") == ({0}, {"cifar10", "cifar100"})  # its own seeds, the top-level datasets
    assert of(paper, "figure4") == ({0, 1, 2}, {"cifar10"})  # its own datasets, the top-level seeds
    assert of(smoke, "table3") == ({0}, {"cifar10"})  # the profile's seeds and datasets
    assert of(smoke, "table1_2") == ({0}, {"cifar10", "cifar100"})  # the profile's family's own datasets
    assert of(smoke, "figure4") == ({0, 1}, {"cifar10"})
    edited = copy.deepcopy(params)
    edited["seeds"] = [7]
    edited["families"]["table5"]["seeds"] = [3, 4]
    validate_params(edited)
    runs = expand_runs(edited, "paper")
    assert of(runs, "table3")[0] == {7} and of(runs, "table5")[0] == {3, 4} and of(runs, "figure3")[0] == {0}
    assert of(expand_runs(edited, "smoke"), "table5")[0] == {3, 4}  # the family's own beat the profile's


@pytest.mark.parametrize("key", ["seeds", "datasets"])
def test_a_family_with_no_seeds_or_datasets_anywhere_is_one_line_naming_it(params, key):
    edited = copy.deepcopy(params)
    del edited[key]
    validate_params(edited)
    with pytest.raises(UserError) as err:
        expand_runs(edited, "paper")
    assert str(err.value).startswith(f"families.table1_2: no {key}: ") and "\n" not in str(err.value)
    assert expand_runs(edited, "smoke")  # the profile names its own for every family
    del edited["profiles"]["smoke"][key]
    with pytest.raises(UserError, match=rf"^families\.\w+: no {key}: "):
        expand_runs(edited, "smoke")


def test_a_profiles_only_keeps_the_families_it_names_default_and_optional(params):
    edited = copy.deepcopy(params)
    edited["profiles"]["smoke"]["only"] = ["table5", "gridsearch"]
    validate_params(edited)
    resolved = resolve_profile(edited, "smoke")
    assert list(resolved["families"]) == ["table5"] and list(resolved["optional_families"]) == ["gridsearch"]
    assert "only" not in resolved
    assert {f for r in expand_runs(edited, "smoke").values() for f in r.families} == {"table5"}
    optional = expand_runs(edited, "smoke", optional=True)
    assert optional and {f for r in optional.values() for f in r.families} == {"gridsearch"}
    assert expand_runs(edited, "smoke", optional=True, family="readings") == {}
    assert expand_runs(edited, "paper") == expand_runs(params, "paper")  # another profile's `only`
    # The laptop profile keeps three families and no optional one.
    assert set(resolve_profile(params, "laptop")["families"]) == {"table3", "table5", "figure3"}


def test_a_profiles_only_naming_no_family_is_one_line_naming_it(params):
    edited = copy.deepcopy(params)
    edited["profiles"]["smoke"]["only"] = ["table3", "tabel5"]
    validate_params(edited)
    with pytest.raises(UserError) as err:
        expand_runs(edited, "smoke")
    message = str(err.value)
    assert message.startswith("profiles.smoke.only: no family 'tabel5' in params.yaml (families: ")
    assert "table5" in message and "gridsearch" in message and "\n" not in message


def test_the_laptop_profile_is_real_cifar10_on_a_cpu_asked_for(params):
    """Table 3's base nets, Table 5 and Figure 3's ablation, 3 seeds, CIFAR-10, one thread each, on the CPU
    its recipe names, which the no-silent-CPU rule lets train on real data (rir.gpu.cpu_refusal)."""
    from rir.gpu import cpu_refusal
    from rir.recipe import TrainConfig

    runs = expand_runs(params, "laptop")
    assert resolve_profile(params, "laptop")["data"] == "real"
    assert {f for run in runs.values() for f in run.families} == {"table3", "table5", "figure3"}
    assert {run.model for run in runs.values()} == {"cnn_18", "resnet_init_18", "resnet_18", "rir_18",
                                                   "all_cnn_c", "all_cnn_c_resnet_init"}
    assert {run.dataset for run in runs.values()} == {"cifar10"} and len(runs) == 18
    assert {run.seed for run in runs.values()} == {0, 1, 2}
    assert sorted(r for r, run in runs.items() if run.ablate) == ["resnet_init_18__cifar10__s0",
                                                                  "rir_18__cifar10__s0"]
    configs = [TrainConfig.from_dict(run.train_options()) for run in runs.values()]
    assert {(c.device, c.threads) for c in configs} == {("cpu", 1)}
    assert cpu_refusal(real_data=True, devices={c.device for c in configs}, gpu_slots=0) is None
    assert expand_runs(params, "laptop", optional=True) == {}  # no optional family: its null leaves them out


def test_grid_values_become_model_or_recipe_overrides(params):
    p = copy.deepcopy(params)
    p["families"]["table4"]["grid"]["lr"] = [0.05]
    runs = [r for r in expand_runs(p, "paper").values() if "table4" in r.families]
    assert all(r.recipe["lr"] == 0.05 and "lr" not in r.model_overrides for r in runs)
    assert {r.model_overrides.get("layers_per_block") for r in runs} == {None, 3, 4}  # 2 is the default
    assert all("lr-0p05" in r.run_id for r in runs)


def test_run_id_is_stable_and_readable():
    assert make_run_id("rir_18", "cifar10", 0, {}) == "rir_18__cifar10__s0"
    assert make_run_id("rir_18", "cifar100", 2, {"layers_per_block": 4, "blocks": [1, 1, 1]}) == (
        "rir_18__blocks-1x1x1__layers_per_block-4__cifar100__s2"
    )


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda p: p.update(recipies={}), "recipies"),
        (lambda p: p["recipe"].update(epochs="ten"), "recipe.epochs"),
        (lambda p: p["recipe"].update(epochs=-3), "recipe.epochs"),
        (lambda p: p["families"]["table3"].update(datasets=["mnist"]), "families.table3.datasets.0"),
        (lambda p: p["profiles"]["smoke"]["recipe"].update(lr=0), "profiles.smoke.recipe.lr"),
        # TrainConfig's bounds, not a second set: momentum 1 never decays the velocity
        (lambda p: p["recipe"].update(momentum=1.0), "recipe.momentum"),
        (lambda p: p["recipe"].update(l2_convention="mean"), "recipe.l2_convention"),
        (lambda p: p["profiles"]["smoke"]["recipe"].update(lr_rate=0.1), "unknown recipe option 'lr_rate'"),
        (lambda p: p["families"]["table3"].update(grid={"lr": [0.1, -1]}), "families.table3.grid.lr"),
        (lambda p: p["profiles"]["smoke"]["families"].update(table3={"recipe": {"epochs": 0}}),
         "profiles.smoke.families.table3.recipe.epochs"),
    ],
)
def test_bad_params_are_refused_by_name(params, edit, named):
    bad = copy.deepcopy(params)
    edit(bad)
    with pytest.raises(UserError) as err:
        validate_params(bad)
    assert named in str(err.value)


# The recipe decisions the paper leaves open (docs/paper.md, "Not known"; rir/recipe.py says why each
# default), each set to its other reading.
OPEN_DECISIONS = {"lr": 0.05, "l2_convention": "half", "decay_norm_and_bias": True, "augment": False,
                  "drop_last": False, "precision": "fp32"}


@pytest.mark.parametrize(("key", "value"), OPEN_DECISIONS.items(), ids=list(OPEN_DECISIONS))
def test_each_open_decision_of_the_paper_is_set_from_params_yaml(params, key, value):
    """params.yaml is the one source of truth: its recipe takes every decision the paper leaves open, the
    schema and TrainConfig agree on it, and the run `rir train` builds carries it."""
    from rir.recipe import TrainConfig

    assert getattr(TrainConfig(), key) != value  # the other reading, not the default
    edited = copy.deepcopy(params)
    edited["recipe"][key] = value
    validate_params(edited)
    for profile in ("paper", "smoke"):
        run = next(iter(expand_runs(edited, profile).values()))
        assert getattr(TrainConfig.from_dict(run.train_options()), key) == value, profile
    # and in a family's grid, beside the default: a recipe setting of its runs, never a model option
    gridded = copy.deepcopy(params)
    gridded["families"]["table3"]["grid"] = {key: [getattr(TrainConfig(), key), value]}
    validate_params(gridded)
    runs = [r for r in expand_runs(gridded, "paper").values() if "table3" in r.families]
    assert {getattr(TrainConfig.from_dict(r.train_options()), key) for r in runs} == {
        getattr(TrainConfig(), key), value}
    assert not any(key in r.model_overrides for r in runs)


def test_unknown_profile_is_refused(params):
    with pytest.raises(UserError, match="unknown profile 'nope'"):
        expand_runs(params, "nope")


def test_broken_yaml_is_one_line(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("recipe: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(bad)


def test_committed_dvc_yaml_is_up_to_date():
    proc = subprocess.run([sys.executable, "-m", "rir", "dvc", "--check"], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rir_dvc_adds_a_profiles_stage_keeps_the_users_own_and_drops_a_gone_profiles(tmp_path):
    """A profile's pipeline exists once it is used here: `rir dvc --check` fails while one is stale or
    belongs to a profile params.yaml no longer has; `rir dvc PROFILE` writes that profile's, rewrites the
    stale one, removes the gone one, and keeps the user's own stage and plot in dvc.yaml beside the default
    profile's stage."""
    from rir.dvcgen import stage

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    up = "../../.."
    mine = {"stages": {"mine": {"cmd": "python mine.py", "deps": ["mine.py"], "outs": ["mine.txt"]}},
            "plots": ["mine.csv"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(mine))
    stale = {**stage("smoke", up), "cmd": stage("smoke")["cmd"].replace("profile=smoke", "profile=paper")}
    for profile, data in (("smoke", stale), ("gone", stage("gone", up))):
        path = tmp_path / f"workflow/dvc/{profile}/dvc.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(yaml.safe_dump({"stages": {profile: data}}))
    cmd = [sys.executable, "-m", "rir", "dvc", "--params", str(tmp_path / "params.yaml"),
           "--root", str(tmp_path)]
    proc = subprocess.run([*cmd, "--check"], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for name in ("dvc.yaml", "workflow/dvc/smoke/dvc.yaml", "workflow/dvc/gone/dvc.yaml"):
        assert f"{tmp_path / name} is stale" in proc.stdout, proc.stdout
    assert subprocess.run([*cmd, "laptop", "paper"], capture_output=True).returncode == 0
    assert not (tmp_path / "workflow/dvc/gone/dvc.yaml").exists()
    for profile in ("smoke", "laptop"):
        assert yaml.safe_load((tmp_path / f"workflow/dvc/{profile}/dvc.yaml").read_text()) == {
            "stages": {profile: stage(profile, up)}, "plots": [f"{up}/reports/{profile}/figures"]}
    top = yaml.safe_load((tmp_path / "dvc.yaml").read_text())
    assert top == {"stages": {**mine["stages"], "paper": stage("paper")},
                   "plots": ["mine.csv", "reports/paper/figures"]}, top
    assert subprocess.run([*cmd, "--check"], capture_output=True).returncode == 0


@pytest.mark.parametrize(("args", "text", "said"), [
    (["nope"], "stages: {}\n", "nope"),
    ([], "stages: [a, b]\n", "is not a DVC pipeline"),
    ([], "stages: {a: [unclosed\n", "is not valid YAML"),
])
def test_rir_dvc_refuses_an_unknown_profile_or_a_broken_dvc_yaml_in_one_line(tmp_path, args, text, said):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "dvc.yaml").write_text(text)
    proc = subprocess.run([sys.executable, "-m", "rir", "dvc", "--params", str(tmp_path / "params.yaml"),
                           "--root", str(tmp_path), *args], capture_output=True, text=True)
    assert proc.returncode == 2 and said in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert (tmp_path / "dvc.yaml").read_text() == text


def test_each_profile_is_one_dvc_stage_that_runs_snakemake_for_it(tmp_path):
    """DVC runs Snakemake, the one orchestrator (rir.dvcgen): a stage per profile, in dvc.yaml for the default
    profile and in its own pipeline file for the others, on the workflow's code and params.yaml, whose
    metrics are the file `rir report tables` writes for the profile."""
    from rir.dvcgen import pipeline_file

    params = load_params(ROOT / "params.yaml")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    subprocess.run([sys.executable, "-m", "rir", "dvc", *params["profiles"], "--params",
                    str(tmp_path / "params.yaml"), "--root", str(tmp_path)], check=True, capture_output=True)
    assert pipeline_file(params, params["profile"]) == "dvc.yaml"
    for profile in params["profiles"]:
        stages = yaml.safe_load((tmp_path / pipeline_file(params, profile)).read_text())["stages"]
        assert list(stages) == [profile]
        assert stages[profile]["cmd"] == (f"rir dvc --restore {profile} && "
                                          f"snakemake --cores all --config profile={profile}")
        assert {"rir", "Snakefile"} <= set(stages[profile]["deps"])
        metrics = [m if isinstance(m, str) else next(iter(m)) for m in stages[profile]["metrics"]]
        assert metrics == [f"results/{profile}/metrics.json"]


def test_expanding_params_yaml_never_imports_torch():
    """The Snakefile expands params.yaml on every start (a cluster job is one): torch's import (~2 s) must not
    be part of it, so run ids come from the models' registrations as rir.catalog reads them, without torch."""
    # The rest of what the Snakefile imports and calls at parse time too: the time limits' settings (a limit
    # without a card to price), the GPU slots, every run's stamp (rir.stages) and the quick steps' inputs.
    code = ("import sys, yaml; from rir.config import data_settings, expand_runs, resolve_profile, "
            "validate_params; import rir.gpu; from rir.catalog import known_defaults; "
            "from rir.stages import code_files, data_stamp, run_stamp; "
            "from rir.timelimits import cluster_settings, rule_minutes; "
            "p = yaml.safe_load(open('params.yaml')); validate_params(p, source='params.yaml'); "
            "n = sum(len(expand_runs(p, q, optional=o)) for q in p['profiles'] for o in (False, True)); "
            "run = next(iter(expand_runs(p, 'paper').values())); "
            "assert rule_minutes('train', run, (50000, 10000), cluster_settings({})) > 1000; "
            "runs = {**expand_runs(p, 'paper'), **expand_runs(p, 'paper', optional=True)}; "
            "data = data_stamp(data_settings(resolve_profile(p, 'paper'), 'cifar10')); "
            "[run_stamp(r.train_options(), {**known_defaults(r.model), **r.model_overrides}, data) "
            "for r in runs.values()]; [code_files(k) for k in ('evaluate', 'ablate', 'report')]; "
            "print(n, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    count, imported = out.stdout.split()
    assert int(count) > 100 and imported == "False", out.stdout


def test_the_registrations_read_without_torch_are_what_the_models_take():
    from rir.catalog import models
    from rir.models import _REGISTRY, create_model, list_models

    assert list_models() == list(models()) == list(_REGISTRY)
    for name, entry in models().items():
        options = entry.options
        assert _REGISTRY[name][1] == options, name
        with pytest.raises(UserError, match="unknown option"):
            create_model(name, not_an_option=1)
        create_model(name, width_scale=0.125, **{k: v for k, v in options.items() if k != "width_scale"})


TRACE = """import atexit, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write("\\n".join(m for m in sys.modules if m.split(".")[0] == "rir")))
sys.argv[0] = "rir"
runpy.run_module("rir", run_name="__main__")
"""


def _module_file(module: str) -> str:
    import importlib.util

    origin = Path(importlib.util.find_spec(module).origin)
    return origin.relative_to(ROOT).as_posix()


def _dispatch(kind: str) -> set[str]:
    """What every `rir` process imports to dispatch, besides what its own command runs: rir/__main__.py and
    the other commands' modules (rir.cli imports each for its arguments, never runs it)."""
    return {"rir/__main__.py", "rir/commands/__init__.py",
            *(f"rir/commands/{name}.py" for name in COMMANDS if name != kind)}


def _traced(tmp_path: Path, name: str, *argv) -> set[str]:
    """The rir files a real `rir ARGV` process imported (every one, lazy imports included), run from the
    clone."""
    (tmp_path / "trace.py").write_text(TRACE)
    out = tmp_path / f"{name}.modules"
    proc = subprocess.run([sys.executable, str(tmp_path / "trace.py"), str(out), *map(str, argv)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"rir {' '.join(map(str, argv))}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return {_module_file(m) for m in out.read_text().split()}


@pytest.mark.parametrize("model", ["rir_18", "all_cnn_c_resnet_init"])
def test_the_code_a_run_counts_is_every_module_its_commands_import(tmp_path, synthetic_data, model):
    """A run trains again when a module it executes changes (rir.stages.run_code_digest): the modules
    `closure` finds statically from the kind's entry points and the run's model file. A real `rir train
    --run` (as the workflow runs it), `rir evaluate` and `rir ablate` of the run import no rir module beyond
    them but EXEMPT's and the other models' files (the registry imports every model file; none of them
    builds this run's net)."""
    from rir.catalog import models
    from rir.stages import ENTRY, EXEMPT, closure, model_file

    own = model_file(model)
    others = {m.path for m in models().values()} - {own}
    assert own.startswith("rir/models/") and others
    data, run = synthetic_data("cifar10", 64, 32, 0), tmp_path / "run"
    commands = {
        "train": ["train", "--params", "params.yaml", "--profile", "smoke", "--run", f"{model}__cifar10__s0",
                  "--data-root", data, "--out", run, "--epochs", "1", "--batch-size", "32",
                  "--device", "cpu"],
        "evaluate": ["evaluate", run, "--device", "cpu", "--out", tmp_path / "eval.json"],
        "ablate": ["ablate", run, "--device", "cpu", "--out", tmp_path / "ablation.csv"],
    }
    for kind, argv in commands.items():
        imported = _traced(tmp_path, kind, *argv)
        assert {own, f"rir/commands/{kind}.py", *ENTRY[kind]} <= imported, kind
        code = set(closure(ENTRY[kind] + (own,)))
        assert sorted(imported - EXEMPT - others - _dispatch(kind) - code) == [], kind
        assert not code & (others | EXEMPT), kind


def test_the_code_a_dataset_counts_is_every_module_its_preparation_imports(tmp_path):
    """The same for the data's stamp (rir.stages.data_stamp): `rir synth` and `rir fetch`."""
    from rir.stages import ENTRY, EXEMPT, closure

    tarball = tmp_path / "cifar10.tar.gz"
    commands = {
        "synth": ["synth", "--dataset", "cifar10", "--out", tarball, "--n-train", "8", "--n-test", "8"],
        "fetch": ["fetch", "--dataset", "cifar10", "--root", tmp_path / "data", "--from", tarball],
    }
    for kind, argv in commands.items():
        imported = _traced(tmp_path, kind, *argv)
        assert set(ENTRY[kind]) <= imported, kind
        assert sorted(imported - EXEMPT - _dispatch(kind) - set(closure(ENTRY[kind]))) == [], kind
