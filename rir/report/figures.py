"""The report's figures (matplotlib, Agg): training curves per family, Figure 3, Figure 4, Table 4's heatmap.

Each figure is a PNG under reports/<profile>/figures/, written atomically, and listed with its title and
caption in figures/index.json, which the HTML stage embeds. A figure with nothing to draw yet is listed as
pending instead. Everything drawn from synthetic data says "SYNTHETIC DATA" in its title and across it, and
everything drawn from an unofficial copy of CIFAR "UNOFFICIAL COPY OF CIFAR" (rir.report.collect.MARKS).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from rir.catalog import label
from rir.report.collect import MARKS, RunRecord

MANIFEST = "index.json"
DPI = 110
SYNTHETIC_MARK = MARKS["synthetic"]
MARK_COLOURS = {SYNTHETIC_MARK: "#c0392b", MARKS["unofficial"]: "#b35900"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on a GPU box or in CI
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, title: str, mark: str | None, target: Path) -> None:
    from rir.io import atomic_path

    if mark:
        title = f"{mark} — {title}"
        fig.text(0.5, 0.5, mark, ha="center", va="center", rotation=25, fontsize=44 if len(mark) < 20 else 30,
                 color=MARK_COLOURS[mark], alpha=0.13, weight="bold", zorder=0)
    fig.suptitle(title, fontsize=11, weight="bold", color=MARK_COLOURS[mark] if mark else "black")
    fig.tight_layout()
    # metadata without a date keeps the PNG byte-identical for identical results (cached reruns).
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    _pyplot().close(fig)


def _group_label(spec, reference: dict[str, Any], grid: dict[str, Any]) -> str:
    name = label(spec.model)
    extra = ", ".join(f"{k}={'×'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in grid.items())
    return f"{name} ({extra})" if extra else name


def training_curves(records: list[RunRecord], family: str, fam_def: dict[str, Any], reference: dict[str, Any],
                    mark: str | None, target: Path) -> bool:
    """Test accuracy and training loss per epoch, mean over seeds, one line per group; False if no data."""
    from rir.report.aggregate import grid_point

    rows = []
    for rec in records:
        if family in rec.spec.families and rec.history is not None and len(rec.history):
            label = _group_label(rec.spec, reference, grid_point(rec.spec, fam_def))
            rows.append(rec.history.assign(group=label, dataset=rec.spec.dataset))
    if not rows:
        return False
    data = pd.concat(rows, ignore_index=True)
    datasets = sorted(data["dataset"].unique())
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    # One colour per group across panels, so a line keeps its colour when a dataset lacks some runs.
    palette = plt.get_cmap("tab20" if data["group"].nunique() > 10 else "tab10").colors
    colour = {g: palette[i % len(palette)] for i, g in enumerate(dict.fromkeys(data["group"]))}
    fig, axes = plt.subplots(2, len(datasets), figsize=(max(7.5, 5.2 * len(datasets)), 6.4), squeeze=False)
    for j, dataset in enumerate(datasets):
        part = data[data["dataset"] == dataset]
        for metric, ax, ylabel in (("test_acc", axes[0][j], "test accuracy (%)"),
                                   ("train_loss", axes[1][j], "training loss")):
            if metric not in part.columns:
                continue
            for group, lines in part.groupby("group", sort=False):
                mean = lines.groupby("epoch")[metric].mean()
                ax.plot(mean.index, mean.values, marker="o", markersize=3, linewidth=1.2, label=group,
                        color=colour[group])
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            ax.set_title(reference["datasets"].get(dataset, dataset), fontsize=10)
        axes[0][j].legend(fontsize=6.5, loc="lower right")
    _finish(fig, f"Training curves: {family}", mark, target)
    return True


def figure3(ablation: pd.DataFrame, reference: dict[str, Any], mark: str | None, target: Path) -> bool:
    """Accuracy after zeroing each stream at each ResNet Init layer, both readings, per model and dataset."""
    if not len(ablation):
        return False
    keys = list(ablation.groupby(["model", "dataset"], sort=False).groups)
    plt = _pyplot()
    fig, axes = plt.subplots(len(keys), 2, figsize=(10, 2.9 * len(keys) + 0.8), squeeze=False)
    colours = {"residual": "#1f77b4", "transient": "#d62728"}
    for i, (model, dataset) in enumerate(keys):
        part = ablation[(ablation["model"] == model) & (ablation["dataset"] == dataset)]
        for j, reading in enumerate(("write", "read")):
            ax = axes[i][j]
            rows = part[part["reading"] == reading]
            for stream, colour in colours.items():
                line = rows[rows["stream"] == stream].groupby("layer")["accuracy"].mean()
                ax.plot(line.index, line.values, marker="o", markersize=3, color=colour,
                        label=f"{stream} zeroed")
            if len(rows):
                ax.axhline(rows["baseline_accuracy"].mean(), color="grey", linestyle="--", label="no zeroing")
            else:
                ax.text(0.5, 0.5, "pending", ha="center", va="center", transform=ax.transAxes)
            what = "kernels that write the stream" if reading == "write" else "kernels that read the stream"
            name = f"{label(model)}, {reference['datasets'].get(dataset, dataset)}"
            ax.set_title(f"{name}\nzeroing the {what}", fontsize=9)
            ax.set_xlabel("ResNet Init layer (forward order)")
            ax.set_ylabel("test accuracy (%)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    _finish(fig, "Figure 3: accuracy with one layer's stream connections zeroed", mark, target)
    return True


def figure4(cells: pd.DataFrame, reference: dict[str, Any], mark: str | None, target: Path) -> bool:
    """Mean accuracy against layers per residual block, ResNet vs RiR, 95 % interval as error bars."""
    from rir.report.aggregate import records

    done = [c for c in records(cells) if c.get("n_completed") and "layers_per_block" in (c["grid"] or {})]
    if not done:
        return False
    datasets = sorted({c["dataset"] for c in done})
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(datasets), figsize=(max(7.5, 5.6 * len(datasets)), 4.0), squeeze=False)
    for j, dataset in enumerate(datasets):
        ax = axes[0][j]
        mine = [c for c in done if c["dataset"] == dataset]
        models = list(dict.fromkeys(c["model"] for c in mine))
        for k, model in enumerate(models):
            pts = sorted((c["grid"]["layers_per_block"], c["mean"], c["half_width"] or 0.0)
                         for c in mine if c["model"] == model)
            shift = 0.04 * (k - (len(models) - 1) / 2)  # side by side, so error bars do not hide each other
            ax.errorbar([p[0] + shift for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                        marker="o", capsize=4, label=label(model))
        ax.set_xticks(sorted({c["grid"]["layers_per_block"] for c in mine}))
        # With two seeds the t-interval is wide (t = 12.7): keep the axis on possible accuracies.
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, 0.0), min(high, 100.0))
        ax.set_xlabel("layers per residual block")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(reference["datasets"].get(dataset, dataset), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _finish(fig, "Figure 4: accuracy vs layers per residual block", mark, target)
    return True


def table4_heatmap(cells: pd.DataFrame, mark: str | None, target: Path) -> bool:
    """Table 4 as a heatmap: blocks per stage x layers per block, the mean accuracy written in each cell."""
    import numpy as np

    if not len(cells) or not cells["n_completed"].fillna(0).astype(int).any():
        return False
    rows, cols = list(dict.fromkeys(cells["row"])), list(dict.fromkeys(cells["column"]))
    grid = np.full((len(rows), len(cols)), np.nan)
    for cell in cells.itertuples():
        if cell.n_completed:
            grid[rows.index(cell.row), cols.index(cell.column)] = cell.mean
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.6 * len(cols) + 2.6, 1.0 * len(rows) + 1.8))
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            value = grid[i, j]
            # Dark text on the bright end of viridis, white on the dark end.
            bright = not np.isnan(value) and image.norm(value) > 0.6
            ax.text(j, i, "pending" if np.isnan(value) else f"{value:.2f}", ha="center", va="center",
                    color="black" if np.isnan(value) or bright else "white", weight="bold")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("layers per block")
    ax.set_ylabel("blocks per stage")
    fig.colorbar(image, ax=ax, label="test accuracy (%)")
    _finish(fig, "Table 4: RiR, CIFAR-10", mark, target)
    return True


def write_figures(out_dir: str | Path, records: list[RunRecord], tables: dict[str, pd.DataFrame],
                  ablation: pd.DataFrame, reference: dict[str, Any], resolved: dict[str, Any],
                  mark: str | None) -> list[dict[str, Any]]:
    """Draw every figure into `out_dir` and write the manifest; returns the manifest's entries."""
    from rir.io import atomic_write_json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    empty = pd.DataFrame()
    entries: list[tuple[str, str, str, Any]] = [
        ("figure3.png", "Figure 3: zeroing each stream, one layer at a time",
         "Test accuracy of trained models after zeroing one ResNet Init layer's learned connections of the "
         "residual or the transient stream; left: the kernels that write the stream, right: those that "
         "read it. Claim 6 is judged on the left ('write') reading.",
         lambda t: figure3(ablation, reference, mark, t)),
        ("figure4.png", "Figure 4: ResNet vs RiR over layers per residual block",
         "Mean test accuracy over finished seeds; error bars: 95 % t-interval (none with one seed; "
         "clipped to 0-100 %); "
         "diverged seeds are left out (see Runs).",
         lambda t: figure4(tables.get("figure4", empty), reference, mark, t)),
        ("table4_heatmap.png", "Table 4 as a heatmap",
         "Mean test accuracy of RiR per blocks per stage x layers per block.",
         lambda t: table4_heatmap(tables.get("table4", empty), mark, t)),
    ]
    for family, fam_def in resolved.get("families", {}).items():
        entries.append((f"curves_{family}.png", f"Training curves: {family}",
                        "Test accuracy and training loss per epoch, mean over seeds; unfinished runs show "
                        "the epochs they have.",
                        lambda t, f=family, d=fam_def: training_curves(records, f, d, reference,
                                                                       mark, t)))
    manifest = []
    for name, title, caption, draw in entries:
        target = out_dir / name
        drawn = draw(target)
        if not drawn and target.exists():
            target.unlink()  # a stale figure from earlier results must not pass for a current one
        manifest.append({"file": name if drawn else None, "title": title, "caption": caption,
                         "status": "drawn" if drawn else "pending", "synthetic": mark == SYNTHETIC_MARK,
                         "mark": mark})
    atomic_write_json(out_dir / MANIFEST, manifest)
    return manifest


def read_manifest(figures_dir: str | Path) -> list[dict[str, Any]]:
    """The manifest the figures stage wrote, or [] when it has not run."""
    path = Path(figures_dir) / MANIFEST
    if not path.is_file():
        return []
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return []
