"""Write a profile's results page (docs/results-<profile>.md) from what its pipeline produced, for readers
who will not rerun it: the data and its kind, the machine and the wall time, every table of the profile
with its 95 % intervals, the claims' verdicts with their evidence, and the figures as images beside it.

    python docs/make_results_page.py laptop --wall-seconds 2712 --note "load average 2-5 from other work" \
        --baseline "linear softmax on the same pixels: 40.64 % (benchmarks/linear_baseline.py)" \
        --discussion what-it-says.md

It reads results/<profile>/tables/ and claims.json (the tables stage), reports/<profile>/figures/ (the
figures stage) and the runs' metrics.json and env.json; it copies the PNGs to docs/results-<profile>/.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _pct(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def _commits(runs_dir: Path) -> str:
    """The commits the runs were trained at, as env.json records them."""
    envs = [_read(p) for p in sorted(runs_dir.glob("*/env.json"))]
    seen = sorted({(str(e.get("git_commit"))[:12], bool(e.get("git_dirty"))) for e in envs})
    words = ", ".join(f"{c}{' (with uncommitted changes)' if dirty else ''}" for c, dirty in seen)
    return f"commit{'s' * (len(seen) > 1)} {words}"


def _table(cells: list[dict], label: str) -> list[str]:
    lines = [f"| {label} | seeds | mean (%) | 95 % interval | min - max | paper | verdict |",
             "|---|---|---|---|---|---|---|"]
    for c in cells:
        if not c.get("n_runs"):
            continue
        name = c["row"] if c["row"] not in ("—", None) else c["column"]
        ci = "—" if c.get("ci_low") is None else f"{c['ci_low']:.2f} - {c['ci_high']:.2f}"
        spread = "—" if c.get("min") is None else f"{c['min']:.2f} - {c['max']:.2f}"
        paper = "not available" if c.get("paper_value") is None else f"{c['paper_value']:.2f}"
        lines.append(f"| {name} | {c['n_completed']}/{c['n_runs']} | {_pct(c.get('mean'))} | {ci} | {spread} "
                     f"| {paper} | {c['verdict']} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--wall-seconds", type=float, required=True, help="the whole pipeline's wall time")
    parser.add_argument("--note", default="", help="conditions of the run (load, other work beside it)")
    parser.add_argument("--baseline", default="", help="the linear baseline's result, one line")
    parser.add_argument("--discussion", help="a Markdown file: what the numbers can and cannot say (by hand)")
    args = parser.parse_args()
    profile = args.profile
    tables_dir = ROOT / "results" / profile / "tables"
    figures_dir = ROOT / "reports" / profile / "figures"
    out_dir = ROOT / "docs" / f"results-{profile}"
    runs = _read(tables_dir / "runs.json")
    first = next(r for r in runs if r["status"] == "completed")
    run_dir = ROOT / "results" / profile / "runs" / first["run_id"]
    metrics, env = _read(run_dir / "metrics.json"), _read(run_dir / "env.json")
    config = _read(run_dir / "config.json")
    data = {(r["data"], r["data_md5"]) for r in runs}
    kinds = ", ".join(f"{kind} (md5 {md5})" for kind, md5 in sorted(data))
    width = config["model_overrides"].get("width_scale", 1)
    label = (f"JPEG copy of CIFAR-10, {config['epochs']} epochs, width x{width}"
             if data == {("unofficial", "6ae7feb76eda11188ba891ce99f5691f")}
             else f"{kinds}, {config['epochs']} epochs")
    run_seconds = sum(r["wall_time_s"] for r in {r["run_id"]: r for r in runs}.values())
    lines = [
        f"# Results of the `{profile}` profile ({label})",
        "",
        f"Every number on this page: **{label}**. Data: {kinds}. Made by `docs/make_results_page.py` from "
        f"the pipeline's own tables; the HTML report of the same run is `reports/{profile}/index.html` in a "
        "workspace that ran it.",
        "",
        "## The run",
        "",
        f"- `snakemake --cores all --config profile={profile}`: **{args.wall_seconds / 60:.1f} minutes** of "
        f"wall time for {len({r['run_id'] for r in runs})} runs, their evaluation, the ablation and the "
        f"report (the runs' own wall times add up to {run_seconds / 60:.1f} minutes).",
        f"- Machine: {env['device_name']}, {env['cpu_threads']} thread per run, torch {env['torch']}, "
        f"Python {env['python']}, {_commits(ROOT / 'results' / profile / 'runs')}.",
        f"- Recipe: {config['epochs']} epochs, batch {config['batch_size']}, lr {config['lr']} "
        f"(x{config['lr_gamma']} after epoch {', '.join(map(str, config['milestones']))}), momentum "
        f"{config['momentum']}, L2 {config['weight_decay']}, {config['precision']} on the "
        f"{metrics['device']}; model widths x{width} of the paper's.",
    ]
    if args.note:
        lines.append(f"- Conditions: {args.note}")
    if args.baseline:
        lines.append(f"- Baseline: {args.baseline}")
    if args.discussion:
        lines += ["", Path(args.discussion).read_text(encoding="utf-8").strip()]
    tables = {p.stem: _read(p) for p in sorted(tables_dir.glob("table*.json"))}
    for table_id, cells in tables.items():
        if not any(c.get("n_runs") for c in cells):
            continue
        lines += ["", f"## {table_id.replace('table', 'Table ')} ({label})", ""] + _table(cells, "model")
    claims = _read(tables_dir / "claims.json")
    lines += ["", f"## The paper's claims ({label})", "",
              "Each verdict follows the report's rule, on the means over seeds; the intervals above say "
              "which differences the seeds can resolve.", ""]
    for claim in claims:
        lines.append(f"- **Claim {claim['id']}: {claim['verdict']}.** {claim['text']} ({claim['source']}) "
                     f"Rule: {claim['rule']}")
        lines += [f"  - {e}" for e in claim["evidence"]]
    figures = [f for f in _read(figures_dir / "index.json") if f.get("file")]
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    lines += ["", f"## Figures ({label})", ""]
    for f in figures:
        shutil.copy2(figures_dir / f["file"], out_dir / f["file"])
        lines += [f"### {f['title']}", "", f"![{f['title']}](results-{profile}/{f['file']})", "",
                  f["caption"], ""]
    (ROOT / "docs" / f"results-{profile}.md").write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    print(f"wrote docs/results-{profile}.md and {len(figures)} figures in {out_dir.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
