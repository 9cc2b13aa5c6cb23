"""Aggregation, verdicts, claims and the paper reference, on fixture results in the pipeline's layout."""

import copy
import json
import math
from pathlib import Path

import pytest
from fixtures.report import fixture_results as fx

from rir.config import expand_runs, load_params
from rir.errors import UserError
from rir.report import load, write_tables
from rir.report.aggregate import (
    COMPARATOR,
    DIVERGED,
    NO_PAPER_VALUE,
    NOT_REPRODUCED,
    NOT_RUN,
    PENDING,
    REPRODUCED,
    UNREADABLE,
    records,
    verdict,
)
from rir.report.claims import FAILS, HOLDS, NOT_ENOUGH, judge_claims
from rir.report.reference import load_reference, validate_reference

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def params():
    return fx.both_datasets(load_params(ROOT / "params.yaml"))


def _cell(data, table, model, dataset, grid=None):
    for c in records(data.tables[table]):
        if c["model"] == model and c["dataset"] == dataset and (grid is None or c["grid"] == grid):
            return c
    raise AssertionError(f"no cell {model}/{dataset} in {table}")


def _claims(data):
    return {c["id"]: c for c in judge_claims(data.tables, data.ablation, data.ablated_runs, data.reference)}


# --- the verdict rule --------------------------------------------------------------------------------------

def _v(**kw):
    base = {"model": "rir_18_wide", "n_runs": 3, "n_completed": 3, "n_pending": 0, "n_diverged": 0,
            "paper_value": 94.99, "mean": 94.0, "half_width": None}
    return verdict({**base, **kw})


def test_verdict_rule_with_an_interval():
    # |mean - paper| <= half_width + 1 point
    assert _v(mean=92.5, half_width=1.5) == REPRODUCED  # 2.49 <= 2.5
    assert _v(mean=92.4, half_width=1.5) == NOT_REPRODUCED  # 2.59 > 2.5
    assert _v(mean=97.4, half_width=1.5) == REPRODUCED  # above the paper counts the same


def test_verdict_rule_with_one_seed():
    assert _v(n_runs=1, n_completed=1, mean=94.0) == REPRODUCED  # 0.99 <= 1
    assert _v(n_runs=1, n_completed=1, mean=93.9) == NOT_REPRODUCED  # 1.09 > 1


def test_verdicts_without_a_comparison():
    assert _v(paper_value=None) == NO_PAPER_VALUE
    assert _v(model=None) == COMPARATOR
    assert _v(n_runs=0, n_completed=0) == NOT_RUN
    assert _v(n_completed=0, n_pending=2, n_diverged=1, mean=None) == PENDING
    assert _v(n_completed=0, n_diverged=3, mean=None) == DIVERGED
    assert _v(n_completed=0, mean=None) == UNREADABLE


# --- aggregation on fixture results ------------------------------------------------------------------------

def test_three_seeds_aggregate_with_t_interval(tmp_path, params):
    runs = {k: v for k, v in expand_runs(params, "paper").items() if "table1_2" in v.families}
    for spec, acc in zip(runs.values(), [94.5, 95.0, 95.5, 70.0, 71.0, 72.0], strict=True):
        fx.write_run(tmp_path, spec, acc=acc, synthetic=False)
    data = load(params, "paper", tmp_path, runs=runs)
    c10 = _cell(data, "table1", "rir_18_wide", "cifar10")
    assert c10["n"] == 3 and c10["mean"] == pytest.approx(95.0) and c10["std"] == pytest.approx(0.5)
    assert (c10["min"], c10["max"]) == (94.5, 95.5)
    assert c10["half_width"] == pytest.approx(4.302653 * 0.5 / math.sqrt(3), rel=1e-5)
    assert c10["paper_value"] == 94.99 and "nutszebra" in c10["paper_source"]
    assert c10["diff"] == pytest.approx(0.01) and c10["verdict"] == REPRODUCED
    c100 = _cell(data, "table2", "rir_18_wide", "cifar100")
    assert c100["paper_value"] == 77.10 and c100["diff"] == pytest.approx(-6.10)
    assert c100["verdict"] == NOT_REPRODUCED
    # Table 3 has no known paper values: the same runs are 'no paper value' there.
    assert _cell(data, "table3", "rir_18_wide", "cifar10")["verdict"] == NO_PAPER_VALUE
    comparators = [c for c in records(data.tables["table1"]) if c["model"] is None]
    assert {c["paper_value"] for c in comparators} == {92.49, 93.57, 93.45, 92.75, 96.5}
    assert all(c["verdict"] == COMPARATOR and c["paper_origin"] == "original_paper" for c in comparators)


def test_smoke_tables_are_laid_out_like_the_paper(tmp_path, params):
    fx.write_results(tmp_path, expand_runs(params, "smoke"))
    data = load(params, "smoke", tmp_path)
    t3 = data.tables["table3"]
    assert list(dict.fromkeys(t3["column"])) == ["CIFAR-10", "CIFAR-100"]
    assert len(dict.fromkeys(t3["row"])) == 8 and t3["row"].iloc[0] == "18-layer CNN"
    t4 = data.tables["table4"]
    assert set(t4["row"]) == {"1×1×1", "2×2×2"} and set(t4["column"]) == {"2", "3"}
    assert len(t4) == 4  # paper.yaml's placeholders outside the smoke grid carry nothing and are left out
    cell = _cell(data, "table4", "rir_18", "cifar10", {"blocks": [2, 2, 2], "layers_per_block": 3})
    assert cell["mean"] == pytest.approx(85.1)
    fig4 = _cell(data, "figure4", "resnet_18", "cifar10", {"layers_per_block": 3})
    assert fig4["n"] == 2 and fig4["mean"] == pytest.approx((81.5 + 81.8) / 2)
    families = data.groups
    # The paper's families, and any a user adds to params.yaml.
    assert set(families["family"]) >= {"table1_2", "table3", "table4", "table5", "figure4", "figure3"}


def test_partial_results_count_pending_and_diverged_seeds(tmp_path, params):
    runs = expand_runs(params, "smoke")
    def fig4(layers, seeds):
        return {k for k, s in runs.items() if "figure4" in s.families and s.model == "rir_18"
                and s.model_overrides.get("layers_per_block", 2) == layers and s.seed in seeds}

    pending = {"cnn_18__cifar100__s0", *fig4(2, {0})}
    fx.write_results(tmp_path, runs, pending=pending, diverged=fig4(3, {0, 1}))
    data = load(params, "smoke", tmp_path)
    assert _cell(data, "table3", "cnn_18", "cifar100")["verdict"] == PENDING
    half = _cell(data, "figure4", "rir_18", "cifar10", {"layers_per_block": 2})
    assert half["n"] == 1 and half["note"] == "1 of 2 seeds pending"
    dead = _cell(data, "figure4", "rir_18", "cifar10", {"layers_per_block": 3})
    assert dead["verdict"] == DIVERGED and dead["mean"] is None and dead["note"] == "2 of 2 seeds diverged"
    claims = _claims(data)
    assert claims[1]["verdict"] == NOT_ENOUGH  # the CIFAR-100 CNN is missing
    assert claims[7]["verdict"] == FAILS  # an RiR depth diverged


def test_a_damaged_file_marks_its_run_unreadable(tmp_path, params):
    runs = expand_runs(params, "smoke")
    fx.write_results(tmp_path, runs)
    bad = tmp_path / "runs" / "resnet_18__cifar10__s0" / "metrics.json"
    bad.write_text("{not json", encoding="utf-8")
    (tmp_path / "ablation" / "rir_18__cifar10__s0.csv").write_bytes(b"\x00\xff garbage")
    data = load(params, "smoke", tmp_path)
    assert _cell(data, "table3", "resnet_18", "cifar10")["verdict"] == UNREADABLE
    assert any(str(bad) in p for p in data.problems)
    assert any("rir_18__cifar10__s0.csv" in p for p in data.problems)


def test_tables_are_written_as_csv_and_json(tmp_path, params):
    fx.write_results(tmp_path / "results", expand_runs(params, "smoke"), pending={"cnn_18__cifar10__s0"})
    data = load(params, "smoke", tmp_path / "results")
    paths = write_tables(data, tmp_path / "tables")
    names = {p.name for p in paths}
    for name in ("runs", "families", "table1", "table2", "table3", "table4", "table5", "figure4"):
        assert {f"{name}.csv", f"{name}.json"} <= names
    table1 = json.loads((tmp_path / "tables" / "table1.json").read_text())
    wide = [c for c in table1 if c["model"] == "rir_18_wide"][0]
    assert wide["paper_value"] == 94.99 and wide["verdict"] == NOT_REPRODUCED
    claims = json.loads((tmp_path / "tables" / "claims.json").read_text())
    assert [c["id"] for c in claims] == [1, 2, 3, 4, 5, 6, 7]
    assert "NaN" not in (tmp_path / "tables" / "table3.json").read_text()
    assert not list((tmp_path / "tables").glob(".*.tmp"))


# --- the claims ------------------------------------------------------------------------------------------

def test_claims_hold_on_consistent_results_and_fail_when_contradicted(tmp_path, params):
    runs = expand_runs(params, "smoke")
    fx.write_results(tmp_path, runs)
    claims = _claims(load(params, "smoke", tmp_path))
    assert {i: c["verdict"] for i, c in claims.items()} == {
        1: HOLDS, 2: HOLDS, 3: HOLDS, 4: HOLDS, 5: FAILS, 6: HOLDS, 7: HOLDS}
    assert all(c["rule"] and c["evidence"] for c in claims.values())
    # Claim 2 fails as soon as one ResNet beats its RiR.
    fx.write_run(tmp_path, runs["resnet_18_wide__cifar100__s0"], acc=99.0)
    # Claim 5 holds when the wide RiR is near the best CIFAR-10 comparator and above every CIFAR-100 one.
    fx.write_run(tmp_path, runs["rir_18_wide__cifar10__s0"], acc=95.0)
    fx.write_run(tmp_path, runs["rir_18_wide__cifar100__s0"], acc=77.0)
    claims = _claims(load(params, "smoke", tmp_path))
    assert claims[2]["verdict"] == FAILS and claims[5]["verdict"] == HOLDS


def test_claim_6_needs_both_streams_and_a_change_across_layers(tmp_path, params):
    runs = expand_runs(params, "smoke")
    fx.write_results(tmp_path, runs)
    path = tmp_path / "ablation" / "rir_18__cifar10__s0.csv"
    text = path.read_text().splitlines()
    header, rows = text[0], [r.split(",") for r in text[1:]]
    for r in rows:  # the transient stream never matters
        if r[5] == "transient":
            r[7] = r[8]
    path.write_text("\n".join([header] + [",".join(r) for r in rows]) + "\n")
    assert _claims(load(params, "smoke", tmp_path))[6]["verdict"] == FAILS
    path.unlink()
    assert _claims(load(params, "smoke", tmp_path))[6]["verdict"] == NOT_ENOUGH


def test_claim_6_a_stream_contributes_only_from_one_point_on(tmp_path, params):
    """The rule's threshold: zeroing the transient stream costs 0.5 points at most (below CONTRIBUTION_PP,
    1 point), while the stream that matters most still changes across layers: the claim fails."""
    runs = expand_runs(params, "smoke")
    fx.write_results(tmp_path, runs)
    path = tmp_path / "ablation" / "rir_18__cifar10__s0.csv"
    text = path.read_text().splitlines()
    header, rows = text[0], [r.split(",") for r in text[1:]]
    layers = {int(r[4]) for r in rows}
    for r in rows:
        base = float(r[8])
        if r[5] == "transient":
            r[7] = str(base - 0.5)
        elif int(r[4]) >= len(layers) // 2:  # late layers: the residual stream costs nothing there
            r[7] = r[8]
    path.write_text("\n".join([header] + [",".join(r) for r in rows]) + "\n")
    claim = _claims(load(params, "smoke", tmp_path))[6]
    assert claim["verdict"] == FAILS, claim


def test_claims_without_results_say_not_enough_data(tmp_path, params):
    claims = _claims(load(params, "smoke", tmp_path))
    assert {c["verdict"] for c in claims.values()} == {NOT_ENOUGH}


# --- paper.yaml -------------------------------------------------------------------------------------------

def test_reference_has_only_the_facts_values():
    ref = load_reference()
    filled = {(t, c.get("model") or c.get("label"), c["value"]) for t, table in ref["tables"].items()
              for c in table["cells"] if c["value"] is not None}
    ours = {(t, m, v) for t, m, v in filled if m == "rir_18_wide"}
    assert ours == {("table1", "rir_18_wide", 94.99), ("table2", "rir_18_wide", 77.10)}
    assert all(c["source"] for t in ref["tables"].values() for c in t["cells"] if c["value"] is not None)
    assert {t for t, _, _ in filled} == {"table1", "table2"}  # Tables 3-5: nothing is known


@pytest.mark.parametrize("change, message", [
    (lambda r: r["tables"]["table1"]["cells"][5].update(value="ninety-five"),
     "tables.table1.cells[5] (rir_18_wide/cifar10).value: 'ninety-five' is not of type"),
    (lambda r: r["tables"]["table3"]["cells"][0].update(value=150.0),
     "tables.table3.cells[0] (cnn_18/cifar10).value: 150.0 is greater than the maximum"),
    (lambda r: r["tables"]["table3"]["cells"][2].update(value=90.1),
     "tables.table3.cells[2] (resnet_init_18/cifar10).source: None is not of type 'string'"),
    (lambda r: r["tables"]["table5"]["cells"].append(dict(r["tables"]["table5"]["cells"][0])),
     "tables.table5.cells[4] (all_cnn_c/cifar10): duplicate cell"),
    (lambda r: r["tables"]["table1"]["cells"][0].update(colour="red"),
     "tables.table1.cells[0] (ResNet-32 (He et al., 2015)/cifar10): Additional properties"),
])
def test_a_bad_reference_value_is_refused_by_name(change, message):
    ref = copy.deepcopy(load_reference())
    change(ref)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]").replace(".", r"\.")):
        validate_reference(ref)


def test_a_filled_in_value_is_used_without_code_changes(tmp_path, params):
    text = (ROOT / "rir/reference/paper.yaml").read_text()
    old = "{model: rir_18, dataset: cifar10, value: null, unit: \"%\", statistic: \"best of grid search\""
    assert old in text
    text = text.replace(old + ", origin: this_paper, source: null}",
                        old.replace("null", "85.5") + ", origin: this_paper, source: \"PDF, Table 3\"}")
    (tmp_path / "paper.yaml").write_text(text)
    fx.write_results(tmp_path / "results", expand_runs(params, "smoke"))
    data = load(params, "smoke", tmp_path / "results", reference_path=tmp_path / "paper.yaml")
    cell = _cell(data, "table3", "rir_18", "cifar10")
    assert cell["paper_value"] == 85.5 and cell["paper_source"] == "PDF, Table 3"
    assert cell["diff"] == pytest.approx(-0.5) and cell["verdict"] == REPRODUCED


def test_unsafe_yaml_is_refused(tmp_path):
    path = tmp_path / "paper.yaml"
    path.write_text("version: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_reference(path)


# --- a table for every family ------------------------------------------------------------------------------

def test_every_family_without_a_paper_table_gets_one_with_display_names_and_no_paper_column(tmp_path,
                                                                                              params):
    """A user's family (here a copy of params.yaml with one added) and an optional one that has run get a
    table `family_<name>` with the same statistics as the paper's tables, in results/<p>/tables/ and in the
    report; an optional family that has not run has none."""
    from rir.config import reported_runs
    from rir.report import context

    mine = copy.deepcopy(params)
    mine["families"]["mine"] = {"models": ["rir_18", "preact_rir_18_wide"], "datasets": ["cifar10"],
                                "seeds": [0, 1, 2], "grid": {"width": [8, 16]}}
    runs = expand_runs(mine, "smoke")
    fx.write_results(tmp_path, runs, pending=[r for r in runs if "preact" in r and r.endswith("s2")])
    data = load(mine, "smoke", tmp_path)
    assert "family_preact" not in data.tables  # optional, not run: no table
    table = data.tables["family_mine"]
    assert table.attrs["table"]["paper"] is False and table["paper_value"].isna().all()
    assert set(table["row"]) == {"18-layer RiR, width 8", "18-layer RiR, width 16",
                                 "18-layer + wide pre-activation RiR, width 8",
                                 "18-layer + wide pre-activation RiR, width 16"}
    cell = _cell(data, "family_mine", "preact_rir_18_wide", "cifar10", {"width": 16})
    assert (cell["n_runs"], cell["n_completed"], cell["n_pending"]) == (3, 2, 1)
    done = [r.accuracy for r in data.records if r.spec.model == "preact_rir_18_wide" and r.accuracy
            and r.spec.model_overrides.get("width") == 16]
    assert cell["mean"] == pytest.approx(sum(done) / 2) and cell["half_width"] > 0
    assert len(cell["run_ids"]) == 3 and {"figure3"} <= {t.removeprefix("family_") for t in data.tables}
    written = write_tables(data, tmp_path / "tables")
    assert tmp_path / "tables/family_mine.csv" in written
    view = next(t for t in context(data, tmp_path / "figures")["tables"] if t["id"] == "family_mine")
    assert view["paper"] is False and view["title"] == "Family mine: test accuracy (%)"
    from rir.report import write_html

    html = write_html(data, tmp_path / "report").read_text()
    section = html.split('<h3 id="family_mine">', 1)[1].split("<h3", 1)[0].split("</section>", 1)[0]
    assert "Family mine: test accuracy (%)" in section
    assert "18-layer + wide pre-activation RiR, width 16" in section
    assert "model \\ dataset" in section and "paper " not in section and "not available" not in section
    assert "badge" not in section
    assert section.count('href="#run-') == 3 * 4  # every run linked from its cell, the pending one too

    # The optional family `preact` appears once one of its own runs (not Table 1-2's) has results.
    optional = expand_runs(params, "smoke", optional=True, family="preact")
    own = {k: v for k, v in optional.items() if k not in expand_runs(params, "smoke")}
    assert own and set(reported_runs(params, "smoke", tmp_path)) == set(expand_runs(params, "smoke"))
    fx.write_results(tmp_path, own)
    assert set(reported_runs(params, "smoke", tmp_path)) == set(expand_runs(params, "smoke")) | set(own)
    data = load(params, "smoke", tmp_path)
    assert set(data.tables["family_preact"]["model"]) == {"rir_18_wide", "preact_rir_18_wide"}
