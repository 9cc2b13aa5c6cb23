"""Markdown table of `rir bench --json` records: `python benchmarks/table.py TITLE FILE.json... > table.md`.

One row per record, in the order given; the header names the device, the machine and the date, so a table
pasted into README keeps its provenance. Records with a `concurrent` field (gpu_check.sh's shared-GPU runs)
also give the total images/s of their group.
"""

from __future__ import annotations

import json
import platform
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path


def _flags(r: dict) -> str:
    return "+".join([r["precision"]] + ["channels_last"] * r["channels_last"] + ["compile"] * r["compile"])


def _num(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def main(title: str, paths: list[str]) -> str:
    records = [json.loads(Path(p).read_text()) | {"file": Path(p).name} for p in paths]
    devices = sorted({f"{r['device']}: {r['device_name']}, {r['threads']} threads, torch {r['torch']}"
                      for r in records})
    lines = [f"# {title}", "",
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {'; '.join(devices)}; host {platform.node()}.",
             "Synthetic images of the real shapes; training FLOPs = 3 x forward.", "",
             "| model | batch | settings | runs at once | train img/s | step median / p90 (ms) "
             "| step / bare (medians; minima) | loader / step | achieved TFLOP/s | % of dense peak "
             "| peak mem (MiB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    totals = defaultdict(float)
    for r in records:
        group = r.get("concurrent", 1)
        totals[(r["model"], _flags(r), group)] += r["train_images_per_s"]
        model = f"{r['model']} {json.dumps(r['model_overrides'])}" if r["model_overrides"] else r["model"]
        pct = None if r["peak_fraction"] is None else 100 * r["peak_fraction"]
        lines.append(
            f"| {model} | {r['batch_size']} | {_flags(r)} | {group} | {r['train_images_per_s']:,.1f} | "
            f"{1e3 * r['step_time_median_s']:.1f} / {1e3 * r['step_time_p90_s']:.1f} | "
            f"{_num(r['step_over_bare'], '.3f')}; {_num(r.get('step_over_bare_min'), '.3f')} | "
            f"{r['loader_over_step']:,.0f}x | "
            f"{r['achieved_flops_per_s'] / 1e12:.3g} | {_num(pct, '.1f')} | "
            f"{r['peak_memory_bytes'] / 2**20:,.0f} |")
    shared = {k: v for k, v in totals.items() if k[2] > 1}
    if shared:
        lines += ["", "Shared GPU, total images/s of all runs at once:", ""]
        lines += [f"- {m} {f}, {n} runs: {v:,.0f} images/s" for (m, f, n), v in sorted(shared.items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: python benchmarks/table.py TITLE FILE.json...")
    print(main(sys.argv[1], sys.argv[2:]), end="")
