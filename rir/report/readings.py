"""The readings of RiR side by side: which public reading of the architecture earns 94.99 / 77.10.

`snakemake readings` trains params.yaml's optional family `readings` (every model of
READINGS below, both datasets); `rir report readings` summarizes it into
RESULTS/readings/summary.json (what the HTML report shows), summary.csv and summary.md: for each reading its
parameters (from the runs' metrics.json), its mean test accuracy over finished seeds with the 95 %
t-interval, and its distance to the paper's wide-RiR values, the only paper values docs/paper.md confirms
(94.99 % on CIFAR-10, 77.10 % on CIFAR-100, read with their sources from rir/reference/paper.yaml). The
tables and claims of the report use the authors' reading (rir_18_wide) whatever this table says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rir.report.collect import (
    COMPLETED,
    describe_data,
    read_runs,
    read_summary_file,
    summary_label,
    write_summary_files,
)
from rir.report.stats import summarize

TREEANO = "diogo149/treeano, treeano/sandbox/nodes/resnet.py"
NUTSZEBRA = "nutszebra/resnet_in_resnet, resnet_in_resnet.py (Chainer)"
PYTORCHCV = "osmr/imgclsmob, pytorchcv (PyPI) models/rir_cifar.py, rir_cifar10 / rir_cifar100"
WEIAICUNZAI = "weiaicunzai/pytorch-cifar100, models/rir.py"


@dataclass(frozen=True)
class Reading:
    """One public reading of the wide 18-layer RiR: the model that encodes it and where it comes from."""

    name: str  # short key, e.g. "authors"
    model: str  # the registered model (a paper model where the reading is one: its runs are Table 3's)
    label: str  # what the reading is, in a few words
    source: str  # the code or text it comes from
    origin: str  # one sentence: where it comes from and what it does differently


# In the order the report lists them: the authors' first (the reading every table and claim uses).
READINGS: tuple[Reading, ...] = (
    Reading("authors", "rir_18_wide", "the authors' RiR: outer shortcut into both streams", TREEANO,
            "The authors' own code: residual_block_conv_2d with ResnetInitConv2DNode sums the block's "
            "shortcut with its whole output x = [r; t], so both streams get it; a projection (conv + "
            "BatchNorm, 3x3 as Section 3 says) where dimensions grow; no ReLU after the sum."),
    Reading("residual_only", "rir_18_wide_residual", "outer shortcut into the residual stream only",
            NUTSZEBRA,
            "docs/paper.md's other reading, the one nutszebra's Chainer code implements (RiR.__call__ adds "
            "the block's input r to r' alone): here with the authors' other choices, so only that one thing "
            "differs."),
    Reading("no_outer", "resnet_init_18_wide", "no outer shortcut (ResNet Init)", PYTORCHCV,
            "pytorchcv's rir_cifar10 stacks generalized residual blocks with no ResNet-level shortcut; "
            "weight for weight it is our ResNet Init net in eval mode (tests/test_readings.py); "
            "weiaicunzai's code also has its outer shortcut commented out."),
    Reading("identity", "rir_18_wide_identity", "identity shortcuts everywhere (the 'about 9.5 M')",
            "docs/paper.md: 'about 9.5 M' parameters",
            "The authors' RiR with zero-padded identity shortcuts also where dimensions grow: 9,469,930 "
            "parameters, the only reading that matches the paper's 'about 9.5 M' with 3x3 kernels (Section 3 "
            "asks for a 3x3 projection there, which makes 10,300,522)."),
    Reading("resnet", "resnet_18_wide", "the original ResNet as the authors build it (no ReLU after the sum)",
            TREEANO,
            "The paper compares RiR with 'the original ResNet'; the authors' residual_block_conv_2d removes "
            "the last ReLU and adds nothing after the sum, as our resnet_18 does."),
    Reading("resnet_he", "resnet_18_wide_he", "the original ResNet with He et al.'s ReLU after the addition",
            "He et al. 2015, arXiv:1512.03385, Section 3.2 and Figure 2",
            "He et al.'s block applies 'the second nonlinearity after the addition'; otherwise the authors' "
            "ResNet (3x3 projections where dimensions grow)."),
    Reading("nutszebra", "rir_18_wide_nutszebra", "nutszebra's Chainer RiR, every difference", NUTSZEBRA,
            "The outer shortcut into r only and zero-padded (no projection), added after the block's last "
            "ReLU; stride 2 in a block's second layer; BatchNorm and ReLU on the class maps before pooling. "
            "Its README quotes 94.99 and its own 94.43 on CIFAR-10 (300 epochs, another recipe)."),
    Reading("weiaicunzai", "rir_18_wide_weiaicunzai", "weiaicunzai's PyTorch RiR, every difference",
            WEIAICUNZAI,
            "Generalized blocks with no outer shortcut (commented out), then a 3x3/2 conv to 100 maps, "
            "BatchNorm, ReLU and a 900-450-classes MLP with dropout 0.5 instead of the 1x1 conv and pooling; "
            "its learned 1x1 residual projections where dimensions grow fold into W_rr and are not encoded."),
)


SUMMARY_FOLDER = "readings"
FAMILY = "readings"
PAPER_MODEL = "rir_18_wide"  # the paper's "18-layer + wide RiR" cells of Tables 1-2 (docs/paper.md)


def paper_values(reference: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{dataset: {"value", "source"}} of the wide RiR in paper.yaml, for the datasets that have one."""
    out = {}
    for table in reference.get("tables", {}).values():
        for cell in table.get("cells", []):
            if cell.get("model") == PAPER_MODEL and cell.get("value") is not None:
                out.setdefault(cell["dataset"], {"value": cell["value"], "source": cell.get("source")})
    return out


def summarize_readings(resolved: dict[str, Any], runs: dict, results_dir: str | Path,
                       reference: dict[str, Any]) -> dict[str, Any]:
    """The summary of the readings family of a resolved profile; `runs` are its runs."""
    family = resolved.get("optional_families", {}).get(FAMILY, {})
    records = read_runs(results_dir, runs)
    paper = paper_values(reference)
    datasets = list(dict.fromkeys(spec.dataset for spec in runs.values()))  # the family's, in its order
    data = describe_data(resolved, records)
    rows = []
    for reading in READINGS:
        if reading.model not in family.get("models", []):
            continue
        cells = {}
        for dataset in datasets:
            mine = [r for r in records if r.spec.model == reading.model and r.spec.dataset == dataset]
            done = [r for r in mine if r.status == COMPLETED and r.accuracy is not None]
            stats = summarize([r.accuracy for r in done])
            target = paper.get(dataset, {}).get("value")
            params = next((r.metrics.get("params") for r in done if r.metrics.get("params")), None)
            cells[dataset] = {
                "mean": stats["mean"], "half_width": stats["half_width"], "n_completed": len(done),
                "n_runs": len(mine), "params": params,
                "distance": None if stats["mean"] is None or target is None else stats["mean"] - target,
                "run_ids": [r.spec.run_id for r in mine],
            }
        rows.append({"name": reading.name, "model": reading.model, "label": reading.label,
                     "source": reading.source, "origin": reading.origin,
                     "used_by_claims": reading.name == "authors", "cells": cells})
    return {"profile": resolved.get("profile"), "synthetic": data["synthetic"], "mark": data["mark"],
            "data": data["column"], "datasets": datasets,
            "paper": paper, "readings": rows, "runs": len(records),
            "completed": sum(r.status == COMPLETED for r in records),
            "problems": [e for r in records for e in r.errors]}


def _acc(cell: dict[str, Any]) -> str:
    if cell["mean"] is None:
        return "—"
    half = "" if cell["half_width"] is None else f" ± {cell['half_width']:.2f}"
    return f"{cell['mean']:.2f}{half} ({cell['n_completed']}/{cell['n_runs']})"


def _dist(cell: dict[str, Any]) -> str:
    return "—" if cell["distance"] is None else f"{cell['distance']:+.2f}"


def markdown(summary: dict[str, Any]) -> str:
    """The summary as one Markdown table; labelled SYNTHETIC when it is."""
    label = summary_label(summary)
    head = ["reading", "model"]
    for d in summary["datasets"]:
        target = summary["paper"].get(d, {}).get("value")
        head += [f"{d} params", f"{d} accuracy (%)", f"{d} - {'paper' if target is None else target}"]
    lines = [f"# Readings of RiR, profile {summary['profile']}{label}", "",
             "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row in summary["readings"]:
        cells = []
        for d in summary["datasets"]:
            c = row["cells"][d]
            cells += [f"{c['params']:,}" if c["params"] else "—", _acc(c), _dist(c)]
        lines.append(f"| {row['label']} | {row['model']} | " + " | ".join(cells) + " |")
    lines += ["", "The tables and claims use the authors' reading (rir_18_wide)."]
    return "\n".join(lines) + "\n"


def write_summary(summary: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """summary.json, summary.csv and summary.md under `out_dir`, each atomically."""
    rows = [{"reading": r["name"], "model": r["model"], "dataset": d, "params": c["params"],
             "mean_accuracy": c["mean"], "half_width": c["half_width"], "distance_to_paper": c["distance"],
             "paper": summary["paper"].get(d, {}).get("value"), "n_completed": c["n_completed"],
             "n_runs": c["n_runs"], "synthetic": summary["synthetic"], "data": summary.get("data")}
            for r in summary["readings"] for d, c in r["cells"].items()]
    return write_summary_files(out_dir, summary, rows, markdown(summary))


def read_summary(results_dir: str | Path) -> tuple[dict[str, Any] | None, list[str]]:
    """(the summary `rir report readings` wrote, or None before it has run; problems, one line each)."""

    def views(summary: dict[str, Any]) -> None:
        for row in summary["readings"]:
            row["views"] = [{"dataset": d, "params": c["params"], "accuracy": _acc(c), "distance": _dist(c)}
                            for d, c in ((d, row["cells"][d]) for d in summary["datasets"])]

    return read_summary_file(Path(results_dir) / SUMMARY_FOLDER, "readings", "readings", views)
