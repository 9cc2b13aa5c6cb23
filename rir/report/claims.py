"""The seven qualitative claims of the paper's text (docs/paper.md), each judged from the reproduced numbers.

Every claim has a stated rule (shown in the report) and a verdict: holds, fails, or not enough data.
Comparisons use the mean over seeds of a table cell; a cell whose every finished seed diverged scores
minus infinity (it loses every comparison); a cell with no finished seed yet is missing. A rule *fails* as
soon as one comparison it needs goes the wrong way, *holds* only when every comparison it needs is there
and goes the right way, and otherwise there is *not enough data*.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from rir.catalog import label
from rir.report.aggregate import DIVERGED, records

HOLDS, FAILS, NOT_ENOUGH = "holds", "fails", "not enough data"
SPREAD_PP = 5.0  # claim 3: "performs well" = every configuration within this many points of the best one
COMPETITIVE_PP = 2.0  # claim 5: "competitive" = within this many points of the best published comparator
CONTRIBUTION_PP = 1.0  # claim 6: a stream "contributes" when zeroing it costs at least this much somewhere
PRIMARY_READING = "write"  # claim 6 is judged on zeroing the kernels that write a stream (both are shown)


def _score(cell: dict[str, Any] | None) -> float | None:
    if cell is None or not cell.get("n_runs"):
        return None
    if cell.get("n_completed"):
        return float(cell["mean"])
    return -math.inf if cell.get("verdict") == DIVERGED else None


def _fmt(x: float | None) -> str:
    if x is None:
        return "missing"
    return "diverged" if x == -math.inf else f"{x:.2f} %"


def _fmt_grid(value: Any) -> str:
    return "×".join(map(str, value)) if isinstance(value, list) else str(value)


def _cells(tables: dict[str, pd.DataFrame], table_id: str) -> list[dict[str, Any]]:
    frame = tables.get(table_id)
    return [] if frame is None else records(frame)


def _find(cells, model, dataset, grid=None):
    for cell in cells:
        if cell["model"] == model and cell["dataset"] == dataset and (grid is None or cell["grid"] == grid):
            return cell
    return None


def _judge(checks: list[tuple[str, bool | None]]) -> tuple[str, list[str]]:
    """Each check is (what it compared, with the numbers; True / False / None when data is missing)."""
    words = {True: "yes", False: "no", None: "not enough data"}
    evidence = [f"{what} ({words[ok]})" for what, ok in checks]
    if any(ok is False for _, ok in checks):
        return FAILS, evidence
    if not checks or any(ok is None for _, ok in checks):
        return NOT_ENOUGH, evidence
    return HOLDS, evidence


def _greater(what: str, a: float | None, b: float | None) -> tuple[str, bool | None]:
    return f"{what}: {_fmt(a)} vs {_fmt(b)}", None if a is None or b is None else a > b


def _pairs(cells, pairs, reference) -> list[tuple[str, bool | None]]:
    out = []
    for better, worse in pairs:
        for dataset in reference["datasets"]:
            a, b = _find(cells, better, dataset), _find(cells, worse, dataset)
            if not (a and a.get("n_runs")) and not (b and b.get("n_runs")):
                continue  # neither is part of this profile's grid
            what = (f"{label(better)} > {label(worse)}, "
                    f"{reference['datasets'][dataset]}")
            out.append(_greater(what, _score(a), _score(b)))
    return out


def _claim_table4(cells) -> tuple[str, list[str]]:
    ran = [c for c in cells if c.get("n_runs")]
    scores = [(", ".join(f"{k} {_fmt_grid(v)}" for k, v in sorted(c["grid"].items())), _score(c))
              for c in ran]
    evidence = [f"{what}: {_fmt(s)}" for what, s in scores]
    if any(s == -math.inf for _, s in scores):
        return FAILS, evidence + ["a configuration diverged"]
    done = [s for _, s in scores if s is not None]
    if len(done) < 2 or len(done) < len(scores):
        return NOT_ENOUGH, evidence
    spread = max(done) - min(done)
    evidence.append(f"spread between best and worst configuration: {spread:.2f} points")
    return (HOLDS if spread <= SPREAD_PP else FAILS), evidence


def _claim_competitive(tables) -> tuple[str, list[str]]:
    checks = []
    rules = (("table1", COMPETITIVE_PP, "competitive"), ("table2", 0.0, "state of the art"))
    for table_id, margin, word in rules:
        cells = _cells(tables, table_id)
        published = [c["paper_value"] for c in cells if c["model"] is None and c["paper_value"] is not None]
        ours = [_score(c) for c in cells if c["model"] is not None and c.get("n_runs")]
        mine = ours[0] if ours else None
        if not published:
            checks.append((f"{table_id}: no published comparator value", None))
            continue
        best = max(published)
        what = f"{table_id} ({word}): reproduced {_fmt(mine)} vs best published {best:.2f} % minus {margin:g}"
        checks.append((what, None if mine is None else mine >= best - margin))
    return _judge(checks)


def _claim_ablation(ablation: pd.DataFrame, ablated_runs: list[str]) -> tuple[str, list[str]]:
    evidence, verdict = [], HOLDS
    if not ablated_runs:
        return NOT_ENOUGH, ["no ablated runs in this profile"]
    for run_id in ablated_runs:
        part = ablation[ablation["run_id"] == run_id] if len(ablation) else ablation
        for reading in ("write", "read"):
            rows = part[part["reading"] == reading] if len(part) else part
            drop = (rows["baseline_accuracy"] - rows["accuracy"]).groupby(
                [rows["layer"], rows["stream"]]).mean().unstack() if len(rows) else pd.DataFrame()
            if not {"residual", "transient"} <= set(drop.columns):
                evidence.append(f"{run_id}, {reading}: no ablation data yet")
                if reading == PRIMARY_READING and verdict == HOLDS:
                    verdict = NOT_ENOUGH
                continue
            both = min(drop["residual"].max(), drop["transient"].max()) >= CONTRIBUTION_PP
            gap = drop["residual"] - drop["transient"]
            changes = bool((gap > 1e-9).any() and (gap < -1e-9).any())
            ok = both and changes
            evidence.append(
                f"{run_id}, {reading}: largest drop residual {drop['residual'].max():.2f}, transient "
                f"{drop['transient'].max():.2f} points; the stream that matters most "
                f"{'changes' if changes else 'does not change'} across layers ({'yes' if ok else 'no'})")
            if reading == PRIMARY_READING and not ok:
                verdict = FAILS
    return verdict, evidence


def _claim_depth(cells, reference) -> tuple[str, list[str]]:
    evidence, comparisons, diverged = [], [], False
    for dataset in reference["datasets"]:
        mine = [c for c in cells
                if c["dataset"] == dataset and c.get("n_runs") and "layers_per_block" in c["grid"]]
        rir = {c["grid"]["layers_per_block"]: _score(c) for c in mine if c["model"].startswith("rir")}
        res = {c["grid"]["layers_per_block"]: _score(c) for c in mine
               if c["model"].startswith("resnet") and "init" not in c["model"]}
        depths = sorted(set(rir) | set(res))
        if not depths:
            continue
        name = reference["datasets"][dataset]
        evidence += [f"{name}, {d} layers/block: RiR {_fmt(rir.get(d))}, ResNet {_fmt(res.get(d))}"
                     for d in depths]
        if -math.inf in rir.values():
            diverged = True
            evidence.append(f"{name}: an RiR depth diverged")
        if len(depths) < 2 or any(rir.get(d) is None or res.get(d) is None for d in depths):
            comparisons.append((f"{name}: every depth finished", None))
            continue
        deep = depths[-1]
        comparisons.append(_greater(f"{name}: RiR > ResNet at {deep} layers/block", rir[deep], res[deep]))
        rir_loss = max(rir.values()) - rir[deep]
        res_loss = math.inf if res[deep] == -math.inf else max(res.values()) - res[deep]
        comparisons.append((f"{name}: accuracy lost from the best depth to the deepest, RiR {rir_loss:.2f} "
                            f"vs ResNet {res_loss:.2f} points", rir_loss <= res_loss))
    verdict, judged = _judge(comparisons)
    return (FAILS if diverged else verdict), evidence + judged


CLAIMS = (
    (1, "ResNet Init shows consistent improvement over standard CNN architectures.", "Table 3",
     "Holds when ResNet Init's mean beats the CNN's at both widths on every dataset of Table 3."),
    (2, "RiR outperforms the original ResNet.", "Table 3",
     "Holds when RiR's mean beats ResNet's at both widths on every dataset of Table 3."),
    (3, "RiR performs well across a range of numbers of blocks and of layers in each block.", "Table 4",
     f"Holds when no Table 4 configuration diverged and every configuration's mean is within {SPREAD_PP:g} "
     "points of the best one (at least two configurations, all finished)."),
    (4, "ResNet Init applied to ALL-CNN-C improves on standard initialization.", "Table 5",
     "Holds when ALL-CNN-C + ResNet Init's mean beats ALL-CNN-C's on every dataset of Table 5."),
    (5, "The wide 18-layer RiR is competitive on CIFAR-10 and state of the art on CIFAR-100 (March 2016).",
     "Tables 1, 2",
     f"Holds when the reproduced mean is within {COMPETITIVE_PP:g} points of the best published comparator "
     "of Table 1 (CIFAR-10) and above every published comparator of Table 2 (CIFAR-100)."),
    (6, "Zeroing either stream's learned connections, one layer at a time, hurts accuracy: both streams "
        "contribute, and their relative use changes across stages.", "Figure 3",
     f"Holds when, in every ablated run and with the '{PRIMARY_READING}' reading, zeroing each stream "
     f"costs at least {CONTRIBUTION_PP:g} point at some layer, and the stream whose zeroing costs more is "
     "not the same at every layer. The other reading is shown as evidence."),
    (7, "RiR is robust to deeper residual blocks and trains deeper residuals than ResNet.", "Figure 4",
     "Holds when, on every dataset of Figure 4, no RiR depth diverged, RiR beats ResNet at the deepest "
     "blocks, and RiR loses no more accuracy than ResNet from its best depth to the deepest."),
)


def judge_claims(tables: dict[str, pd.DataFrame], ablation: pd.DataFrame, ablated_runs: list[str],
                 reference: dict[str, Any]) -> list[dict[str, Any]]:
    """Every claim with its rule, verdict and the comparisons behind it."""
    t3, t5 = _cells(tables, "table3"), _cells(tables, "table5")
    judged = {
        1: _judge(_pairs(t3, [("resnet_init_18", "cnn_18"), ("resnet_init_18_wide", "cnn_18_wide")],
                         reference)),
        2: _judge(_pairs(t3, [("rir_18", "resnet_18"), ("rir_18_wide", "resnet_18_wide")], reference)),
        3: _claim_table4(_cells(tables, "table4")),
        4: _judge(_pairs(t5, [("all_cnn_c_resnet_init", "all_cnn_c")], reference)),
        5: _claim_competitive(tables),
        6: _claim_ablation(ablation, ablated_runs),
        7: _claim_depth(_cells(tables, "figure4"), reference),
    }
    return [{"id": cid, "text": text, "source": source, "rule": rule, "verdict": judged[cid][0],
             "evidence": judged[cid][1]} for cid, text, source, rule in CLAIMS]
