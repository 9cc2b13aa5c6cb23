"""The "Readings of RiR" table: `rir report readings` over fixture results, the report's section, and the
page in headless Chromium. The numbers are fixture numbers, not results."""

import shutil
import subprocess
from pathlib import Path

import pytest
from fixtures.report import fixture_results as fx

from rir.cli import main
from rir.config import expand_runs, load_params, resolve_profile
from rir.report import context, load, write_html
from rir.report.readings import READINGS, read_summary, summarize_readings
from rir.report.reference import load_reference

ROOT = Path(__file__).resolve().parents[1]
ACC = {"cifar10": (94.0, 95.0, 96.0), "cifar100": (77.0, 77.5, 78.0)}  # per seed


@pytest.fixture
def paper_results(tmp_path):
    """The paper profile's readings runs, finished on "real" data, except one reading's CIFAR-100 seeds."""
    params = load_params(ROOT / "params.yaml")
    runs = expand_runs(params, "paper", optional=True, family="readings")
    for spec in runs.values():
        if not (spec.model == "rir_18_wide_weiaicunzai" and spec.dataset == "cifar100"):
            fx.write_run(tmp_path / "results", spec, acc=ACC[spec.dataset][spec.seed], synthetic=False)
    return params, runs, tmp_path


def test_summary_gives_each_reading_its_interval_and_distance_to_the_paper(paper_results):
    params, runs, tmp = paper_results
    summary = summarize_readings(resolve_profile(params, "paper"), runs, tmp / "results",
                                 load_reference())
    assert [r["model"] for r in summary["readings"]] == [r.model for r in READINGS]
    assert {d: p["value"] for d, p in summary["paper"].items()} == {"cifar10": 94.99, "cifar100": 77.10}
    assert all("docs/paper.md" in p["source"] for p in summary["paper"].values())
    authors = summary["readings"][0]
    assert authors["used_by_claims"] and not any(r["used_by_claims"] for r in summary["readings"][1:])
    c10, c100 = authors["cells"]["cifar10"], authors["cells"]["cifar100"]
    assert c10["mean"] == pytest.approx(95.0) and c10["distance"] == pytest.approx(95.0 - 94.99)
    assert c10["half_width"] == pytest.approx(4.303 * 1.0 / 3**0.5, rel=1e-3)  # t(0.975, 2) * s / sqrt(n)
    assert c100["distance"] == pytest.approx(77.5 - 77.10) and c10["params"] == 12345
    pending = summary["readings"][-1]["cells"]["cifar100"]
    assert pending["mean"] is None and pending["distance"] is None and pending["n_runs"] == 3


def test_rir_report_readings_writes_the_summary_and_the_report_shows_the_table(paper_results, capsys):
    params, runs, tmp = paper_results
    data = load(params, "paper", tmp / "results", runs={})
    assert context(data, tmp)["readings"] is None  # not run yet: the section says how to run it
    assert "<code>snakemake --cores all readings</code>" in write_html(data, tmp / "report").read_text()
    code = main(["report", "readings", "--params", str(ROOT / "params.yaml"), "--profile", "paper",
                 "--results", str(tmp / "results")])
    out = capsys.readouterr().out
    assert code == 0 and "| the authors' RiR" in out and "+0.01" in out
    assert sorted(p.name for p in (tmp / "results/readings").iterdir()) == ["summary.csv", "summary.json",
                                                                            "summary.md"]
    page = write_html(load(params, "paper", tmp / "results", runs={}), tmp / "report").read_text()
    start = page.index('<section id="readings">')
    section = page[start:page.index("</section>", start)]
    assert section.count("<tr") == 1 + len(READINGS) and "SYNTHETIC" not in section
    assert "95.00 ± 2.48 (3/3)" in section and "+0.01" in section and "+0.40" in section
    assert "(the claims use it)" in section and "diogo149/treeano" in section and "nutszebra" in section


def test_a_damaged_summary_is_one_problem_line(tmp_path):
    (tmp_path / "readings").mkdir()
    (tmp_path / "readings/summary.json").write_text("{not json")
    summary, problems = read_summary(tmp_path)
    assert summary is None and len(problems) == 1 and "unreadable readings summary" in problems[0]


@pytest.mark.slow
def test_readings_table_in_headless_chromium(paper_results, capsys):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    params, runs, tmp = paper_results
    assert main(["report", "readings", "--params", str(ROOT / "params.yaml"), "--profile", "paper",
                 "--results", str(tmp / "results")]) == 0
    page = write_html(load(params, "paper", tmp / "results", runs={}), tmp / "report").resolve().as_uri()
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
             "--window-size=1280,2400", f"--user-data-dir={tmp / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and "CONSOLE" not in dom.stderr, dom.stderr[-2000:]
    section = dom.stdout[dom.stdout.index('<section id="readings">'):]
    section = section[:section.index("</section>")]
    assert "Readings of RiR" in section and section.count("<tr") == 1 + len(READINGS)
    assert "94.99" in section and "77.1" in section and "rir_18_wide_nutszebra" in section
    assert "95.00 ± 2.48 (3/3)" in section and "+0.01" in section and "+0.40" in section  # distances
