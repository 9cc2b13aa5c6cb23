"""Footnotes: every way the runs' recipe differs from the paper's, and every choice the paper leaves open.

Each run's config.json (the resolved TrainConfig; RunSpec's options while it is pending) is compared with
the recipe that paper.yaml states (Section 3 of the paper); data sizes come from the profile (synthetic
data has its own sizes), width changes from the profile's model overrides. The same difference in several
runs is one footnote, listing the families it touches.
"""

from __future__ import annotations

import json
from typing import Any

from rir.report.collect import RunRecord


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else json.dumps(value)


def _data_sizes(config: dict[str, Any], resolved: dict[str, Any]) -> dict[str, Any]:
    if resolved.get("data") == "synthetic":
        synthetic = resolved.get("synthetic", {})
        sizes = {"n_train": synthetic.get("n_train"), "n_test": synthetic.get("n_test")}
    else:
        sizes = {"n_train": 50000, "n_test": 10000}
    holdout = config.get("holdout") or 0
    if holdout and sizes["n_train"]:
        sizes.update(n_train=sizes["n_train"] - holdout, n_test=holdout)
    return sizes


def run_differences(rec: RunRecord, reference: dict[str, Any], resolved: dict[str, Any]) -> list[str]:
    """The footnote texts that apply to one run."""
    config = rec.config or rec.spec.train_options()
    config = {**_data_sizes(config, resolved), **config}
    notes = []
    if resolved.get("data") == "synthetic" or rec.synthetic:
        notes.append("Synthetic data (rir synth, a learnable class signal in the CIFAR format), not real "
                     "CIFAR: numbers are not comparable with the paper's.")
    elif rec.data_kind == "unofficial":
        notes.append(f"An unofficial copy of {rec.spec.dataset} (md5 {rec.data_md5}), not the official "
                     f"tarball: real photographs, but its numbers are not comparable with the paper's.")
    for item in reference["recipe"]["stated"]:
        key, paper = item["key"], item["value"]
        if key in config and config[key] != paper:  # JSON lists compare equal to YAML lists
            notes.append(f"{key} = {_show(config[key])} here; the paper: {_show(paper)} ({item['source']}).")
    families = resolved.get("families", {})
    grid_keys = {k for fam in rec.spec.families for k in families.get(fam, {}).get("grid", {})}
    overrides = config.get("model_overrides") or rec.spec.model_overrides
    for key, value in sorted(overrides.items()):
        if key not in grid_keys:
            notes.append(f"Model override {key} = {_show(value)} (profile setting): the architecture differs "
                         f"from the paper's (e.g. narrower layers).")
    for key in reference["recipe"]["not_stated"]:
        if key in config:
            notes.append(f"{key} = {_show(config[key])}: not stated in the paper; the project's choice "
                         f"(docs/paper.md, 'Not known'; rir/recipe.py).")
    return notes


def footnotes(records: list[RunRecord], reference: dict[str, Any], resolved: dict[str, Any]):
    """([{'n', 'text', 'families', 'runs'}], {family: [footnote numbers]}), numbered in first-seen order."""
    by_text: dict[str, dict[str, Any]] = {}
    for rec in records:
        for text in run_differences(rec, reference, resolved):
            note = by_text.setdefault(text, {"n": len(by_text) + 1, "text": text, "families": [], "runs": 0})
            note["runs"] += 1
            note["families"] += [f for f in rec.spec.families if f not in note["families"]]
    notes = list(by_text.values())
    per_family: dict[str, list[int]] = {}
    for note in notes:
        for family in note["families"]:
            per_family.setdefault(family, []).append(note["n"])
    return notes, per_family
