"""Figure 3: zero the learned connections of each stream, one ResNet Init layer at a time, and measure.

The paper (Section 3, Figure 3) zeroes "learned connections of each stream in a trained ResNet Init model a
single layer at a time" and reads from the accuracy which stream each stage relies on. Which kernels that
means is not stated (docs/paper.md), so both readings are measured: "write" zeroes the kernels that write
INTO the stream (W_rr and W_tr for the residual stream), "read" those that read FROM it (W_rr and W_rt). The
identity shortcut is never zeroed. The result is a tidy CSV, one row per (layer, stream, reading).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tqdm import tqdm

from rir.errors import UserError
from rir.io import atomic_write_text
from rir.layers import READINGS, STREAMS, resnet_init_layers, zero_stream

COLUMNS = ("run_id", "model", "dataset", "seed", "layer", "layer_name", "stream", "reading", "accuracy",
           "baseline_accuracy", "synthetic", "data", "data_md5")


def ablate_run(
    run_dir: str | Path, out: str | Path, data_root: str | None = None, device: str = "auto"
) -> list[dict]:
    """Write Figure 3's CSV for a trained run to `out` and return its rows."""
    from rir.evaluate import evaluate_model, load_trained

    model, loader, cfg, arrays = load_trained(run_dir, data_root, device)
    layers = resnet_init_layers(model)
    if not layers:
        raise UserError(f"{run_dir}: model {cfg.model!r} has no ResNet Init layer to ablate")
    names = {id(m): name for name, m in model.named_modules()}
    _, baseline = evaluate_model(model, loader)
    rows = []
    jobs = [(i, layer, s, r) for i, layer in enumerate(layers) for s in STREAMS for r in READINGS]
    for index, layer, stream, reading in tqdm(jobs, desc=f"ablate {Path(run_dir).name}", unit="eval",
                                              disable=None):
        with zero_stream(layer, stream, reading):
            _, accuracy = evaluate_model(model, loader)
        rows.append({
            "run_id": Path(run_dir).name, "model": cfg.model, "dataset": cfg.dataset, "seed": cfg.seed,
            "layer": index, "layer_name": names[id(layer)], "stream": stream, "reading": reading,
            "accuracy": round(accuracy, 4), "baseline_accuracy": round(baseline, 4),
            **arrays.provenance,
        })
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out, buf.getvalue())
    return rows

