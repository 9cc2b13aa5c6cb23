"""The optional grid search's summary: ranking by held-out accuracy, the recipe's place in it, unfinished
runs, the SYNTHETIC label, `rir report gridsearch` and the report's section. Fixture results in the
pipeline's layout (tests/fixtures/report), for the smoke profile's four grid-search runs."""

import json
from pathlib import Path

import pytest
from fixtures.report import fixture_results as fx

from rir.cli import main
from rir.config import expand_runs, load_params, resolve_profile
from rir.report import context, load
from rir.report.gridsearch import read_summary, summarize_gridsearch, verdict, write_summary

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="module")
def runs(params):
    runs = expand_runs(params, "smoke", optional=True, family="gridsearch")
    assert len(runs) == 4, list(runs)  # lr 0.05/0.1 x shortcut projection/identity
    return runs


def _setting(spec):
    return spec.recipe["lr"], spec.model_overrides.get("shortcut", "projection")


ACCURACY = {(0.05, "projection"): 61.0, (0.05, "identity"): 58.5, (0.1, "projection"): 60.2,
            (0.1, "identity"): 57.0}


def _write(results, runs, skip=()):
    for spec in runs.values():
        if _setting(spec) not in skip:
            fx.write_run(results, spec, acc=ACCURACY[_setting(spec)])


def _summary(params, runs, results):
    return summarize_gridsearch(resolve_profile(params, "smoke"), runs, results)


def test_settings_are_ranked_by_held_out_accuracy_and_the_recipe_is_found(tmp_path, params, runs):
    _write(tmp_path, runs)
    summary = _summary(params, runs, tmp_path)
    (search,) = summary["searches"]
    assert search["keys"] == ["init", "lr", "shortcut", "weight_decay"] and search["holdout"] == 128
    ranked = sorted(search["rows"], key=lambda r: r["rank"])
    assert [(r["lr"], r["shortcut"]) for r in ranked] == sorted(ACCURACY, key=lambda k: -ACCURACY[k])
    assert [r["mean"] for r in ranked] == sorted(ACCURACY.values(), reverse=True)
    # The tables train with lr 0.1 (params.yaml recipe), MSR, projection shortcuts, L2 1e-4 (TrainConfig).
    assert search["recipe_setting"] == {"init": "msr", "lr": 0.1, "shortcut": "projection",
                                        "weight_decay": 0.0001}
    assert [r["recipe"] for r in ranked] == [False, True, False, False]
    assert search["recipe_rank"] == 2 and search["best"]["lr"] == 0.05 and search["complete"]
    assert search["margin"] == pytest.approx(0.8)
    assert verdict(search).startswith("the recipe's setting ranks 2; the best is init=msr, lr=0.05")
    assert summary["synthetic"] is True and summary["completed"] == 4


def test_unfinished_runs_are_counted_not_ranked_and_the_winner_is_provisional(tmp_path, params, runs):
    from rir.report.html import render

    _write(tmp_path, runs, skip={(0.05, "projection")})
    summary = _summary(params, runs, tmp_path)
    (search,) = summary["searches"]
    pending = [r for r in search["rows"] if r["rank"] is None]
    assert [(r["lr"], r["shortcut"], r["n_completed"]) for r in pending] == [(0.05, "projection", 0)]
    assert search["recipe_rank"] == 1 and not search["complete"]
    assert verdict(search) == ("the recipe's setting wins by 1.70 points "
                               "(provisional: some runs are unfinished)")
    write_summary(summary, tmp_path / "gridsearch")  # the report lists the ranked rows, then the pending one
    page = render(context(load(params, "smoke", tmp_path), tmp_path / "figures"))
    section = page[page.index('<section id="gridsearch">'):]
    assert section.index("<td>1</td>") < section.index("<td>3</td>") < section.index("pending: 1")


def test_rir_report_gridsearch_writes_the_summary_and_the_report_shows_it(tmp_path, params, runs, capsys):
    results = tmp_path / "results"
    _write(results, runs)
    code = main(["report", "gridsearch", "--params", str(ROOT / "params.yaml"), "--profile", "smoke",
                 "--results", str(results)])
    out = capsys.readouterr().out
    assert code == 0 and "SYNTHETIC" in out and "4 of 4 grid-search runs finished" in out
    written = sorted(p.name for p in (results / "gridsearch").iterdir())
    assert written == ["summary.csv", "summary.json", "summary.md"]
    csv_lines = (results / "gridsearch" / "summary.csv").read_text().splitlines()
    assert len(csv_lines) == 5 and "holdout_accuracy" in csv_lines[0] and "synthetic" in csv_lines[0]
    assert "SYNTHETIC" in (results / "gridsearch" / "summary.md").read_text()

    data = load(params, "smoke", results)  # the main runs are all pending here: the section still shows
    view = context(data, tmp_path / "figures")["gridsearch"]
    assert view["searches"][0]["verdict"].startswith("the recipe's setting ranks 2")
    from rir.report.html import render

    page = render(context(data, tmp_path / "figures"))
    assert "Grid search (SYNTHETIC DATA)" in page and "The recipe&#39;s setting ranks 2" in page


def test_without_a_summary_the_report_says_how_to_run_it(tmp_path, params):
    from rir.report.html import render

    page = render(context(load(params, "smoke", tmp_path), tmp_path / "figures"))
    assert "<code>snakemake --cores all gridsearch --config profile=smoke</code>" in page
    assert "Not run." in page


def test_a_damaged_summary_is_a_named_problem_not_a_crash(tmp_path, params, runs):
    _write(tmp_path, runs)
    write_summary(_summary(params, runs, tmp_path), tmp_path / "gridsearch")
    path = tmp_path / "gridsearch" / "summary.json"
    for damage in ("{not json", json.dumps({"searches": [{"best": 1}]}), "[]"):
        path.write_text(damage)
        summary, problems = read_summary(tmp_path)
        assert summary is None and len(problems) == 1 and str(path) in problems[0]
    assert str(path) in " ".join(load(params, "smoke", tmp_path).problems)


def test_a_profile_without_optional_families_is_refused_in_one_line(tmp_path, capsys):
    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    del params["optional_families"]
    params["profiles"]["smoke"].pop("optional_families")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code = main(["report", "gridsearch", "--params", str(tmp_path / "params.yaml"), "--profile", "smoke",
                 "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "optional_families" in err[0]
    assert not (tmp_path / "results").exists()
