"""params.yaml: validation by name, the grid's expansion to runs, and dvc.yaml kept in step with it."""

import copy
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rir.config import expand_runs, load_params, make_run_id, resolve_profile, validate_params
from rir.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml")


def test_every_family_of_the_paper_is_in_both_profiles(params):
    for profile in ("paper", "smoke"):
        runs = expand_runs(params, profile)
        families = {f for run in runs.values() for f in run.families}
        assert families == {"table1_2", "table3", "table4", "table5", "figure3", "figure4"}
        assert all(re.fullmatch(r"[A-Za-z0-9_-]+", run_id) for run_id in runs)


def test_paper_profile_has_three_seeds_for_tables_1_to_3(params):
    runs = expand_runs(params, "paper")
    for family in ("table1_2", "table3"):
        seeds = {r.seed for r in runs.values() if family in r.families}
        assert len(seeds) >= 3


def test_a_run_shared_by_families_is_trained_once(params):
    runs = expand_runs(params, "paper")
    wide = runs["rir_18_wide__cifar10__s0"]
    assert set(wide.families) == {"table1_2", "table3"}
    assert sum(1 for r in runs.values() if r.model == "rir_18_wide" and r.dataset == "cifar10") == 3


def test_a_setting_equal_to_the_default_names_the_same_run(params):
    """Figure 4's 2-layer blocks are Table 3's ResNet and RiR: one run, listed under both families."""
    runs = expand_runs(params, "paper")
    assert set(runs["rir_18__cifar10__s0"].families) == {"table3", "figure3", "figure4"}
    assert not any("layers_per_block-2" in run_id for run_id in runs)
    assert "rir_18__layers_per_block-3__cifar10__s0" in runs


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
    ],
)
def test_bad_params_are_refused_by_name(params, edit, named):
    bad = copy.deepcopy(params)
    edit(bad)
    with pytest.raises(UserError) as err:
        validate_params(bad)
    assert named in str(err.value)


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


def test_a_stale_pipeline_is_found_and_rewritten(tmp_path):
    """`rir dvc --check` fails while any generated pipeline file is stale, naming it, and finds one that
    params.yaml no longer makes; `rir dvc` rewrites them all and removes that one."""
    from rir.dvcgen import pipeline_files

    params = load_params(ROOT / "params.yaml")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    for name in pipeline_files(params):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    smoke = tmp_path / "workflow/dvc/smoke/dvc.yaml"
    smoke.write_text(smoke.read_text().replace("rir_18__cifar10__s0: cif", "rir_18__cifar10__s9: cif"))
    orphan = tmp_path / "workflow/dvc/gone/dvc.yaml"
    orphan.parent.mkdir(parents=True)
    orphan.write_text("stages: {}\n")
    cmd = [sys.executable, "-m", "rir", "dvc", "--params", str(tmp_path / "params.yaml"),
           "--root", str(tmp_path)]
    proc = subprocess.run([*cmd, "--check"], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{smoke} is stale" in proc.stdout and f"{orphan} is stale" in proc.stdout, proc.stdout
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert smoke.read_text() == (ROOT / "workflow/dvc/smoke/dvc.yaml").read_text() and not orphan.exists()


def test_each_pipeline_is_short_with_one_template_per_kind_of_run_work():
    """No generated line of hundreds of dependencies: a template per kind of per-run or per-dataset work,
    its items one a line, and aggregates that depend on folders."""
    from rir.dvcgen import pipeline_files

    for name, text in pipeline_files(load_params(ROOT / "params.yaml")).items():
        assert (ROOT / name).read_text() == text
        assert max(len(line) for line in text.splitlines()) <= 160, name  # one path or run id a line
        stages = yaml.safe_load(text)["stages"]
        templated = {n for n, s in stages.items() if "foreach" in s}
        assert templated <= {"synth", "fetch", "train", "evaluate", "ablate"}, name
        for stage_name, stage in stages.items():
            deps = stage.get("do", stage).get("deps", [])
            if stage_name in ("gridsearch", "readings"):  # an optional summary lists its runs, one a line
                assert all(len(d) < 160 for d in deps), name
            else:
                assert len(deps) <= 25, (name, stage_name)
    top = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert {"synth", "fetch", "train", "evaluate", "ablate"} >= {n for n in top["stages"] if "foreach" in
                                                                top["stages"][n]}
    assert top["metrics"] == ["results/metrics"] and top["plots"] == ["results/plots"]


def _snakemake_commands(profile):
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--dry-run", "--printshellcmds", "--forceall",
         "--config", f"profile={profile}", "--", "all", "gridsearch", "readings"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    commands = re.findall(r"^Shell command: (rir \w+ .*?)(?: > \S+ 2>&1)?$", proc.stdout + proc.stderr,
                          flags=re.M)
    assert commands, proc.stdout[-2000:]
    return sorted({" ".join(c.split()) for c in commands})


@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_snakemake_and_dvc_run_the_same_commands(params, profile):
    """The two DAGs hold the same runs, the optional grid search included: every `rir` command of one is a
    command of the other."""
    from pipeline import dvc_stages

    dvc_commands = sorted(stage["cmd"] for stage in dvc_stages(ROOT).values()
                          if re.search(rf"(--profile |data/){profile}\b", stage["cmd"]))
    assert any(" gridsearch " in c for c in dvc_commands) and any("holdout" in c for c in dvc_commands)
    # One flag apart: Snakemake's trainings keep a finished run's files for the retry of its cluster job and
    # release them itself (rir/finished.py); DVC's keep nothing (a forced `dvc repro -f` must train).
    snakemake_commands = _snakemake_commands(profile)
    assert all((" --keep-finished " in c) == c.startswith("rir train ") for c in snakemake_commands)
    assert not any("--keep-finished" in c for c in dvc_commands)
    assert sorted(c.replace(" --keep-finished", "") for c in snakemake_commands) == dvc_commands


def test_expanding_params_yaml_never_imports_torch():
    """The Snakefile expands params.yaml on every start (a cluster job is one): torch's import (~2 s) must not
    be part of it, so run ids come from the torch-free table rir.model_options."""
    # The rest of what the Snakefile imports and calls at parse time too: the time limits' settings (a limit
    # without a card to price), the Snakemake internals' readers.
    code = ("import sys, yaml; from rir.config import expand_runs, validate_params; "
            "import rir.snakemake_internals, rir.gpu; "
            "from rir.timelimits import cluster_settings, rule_minutes; "
            "p = yaml.safe_load(open('params.yaml')); validate_params(p, source='params.yaml'); "
            "n = sum(len(expand_runs(p, q, optional=o)) for q in p['profiles'] for o in (False, True)); "
            "run = next(iter(expand_runs(p, 'paper').values())); "
            "assert rule_minutes('train', run, (50000, 10000), cluster_settings({})) > 1000; "
            "print(n, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    count, imported = out.stdout.split()
    assert int(count) > 100 and imported == "False", out.stdout


def test_the_torch_free_options_table_is_what_the_models_take():
    from rir.model_options import MODEL_OPTIONS
    from rir.models import create_model, list_models

    assert list_models() == list(MODEL_OPTIONS)
    for name, options in MODEL_OPTIONS.items():
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


def _covered(path: str, listed) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in listed)


@pytest.mark.slow
def test_every_module_a_dvc_stage_imports_is_one_of_its_dependencies(tmp_path):
    """`dvc repro` reruns a stage when a file among its deps changes: so every rir module the stage's command
    imports must be a dep, except the few that cannot change an output (rir.stages.CODE_EXEMPT). Traced by
    running the smoke profile's own dvc.yaml commands, in order, for one ablated run."""
    from pipeline import dvc_stages

    from rir.stages import CODE_EXEMPT

    stages = dvc_stages(ROOT)
    smoke = "workflow/dvc/smoke/dvc.yaml:"
    run = next(n.split("ablate@", 1)[1] for n in stages if n.startswith(f"{smoke}ablate@"))
    dataset = stages[f"{smoke}train@{run}"]["deps"][1].split("/")[2]
    names = ["configs", *(f"{smoke}{kind}" for kind in (
        f"synth@{dataset}", f"fetch@{dataset}", f"train@{run}", f"evaluate@{run}", f"ablate@{run}", "tables",
        "figures", "report"))]
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    subprocess.run([sys.executable, "-m", "rir", "dvc"], cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "trace.py").write_text(TRACE)
    missing = {}
    for name in names:
        argv = shlex.split(stages[name]["cmd"])
        assert argv[0] == "rir", stages[name]["cmd"]
        traced = tmp_path / f"{name}.modules"
        proc = subprocess.run([sys.executable, "trace.py", str(traced), *argv[1:]], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{stages[name]['cmd']}\n{proc.stderr[-2000:]}"
        files = {_module_file(m) for m in traced.read_text().split()}
        own = f"rir/commands/{argv[1]}.py"
        assert own in files
        deps = stages[name]["deps"]
        needed = {f for f in files if f == own or not _covered(f, CODE_EXEMPT)}
        missing[name] = sorted(f for f in needed if not _covered(f, deps))
    assert not any(missing.values()), missing
