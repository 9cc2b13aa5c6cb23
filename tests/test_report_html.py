"""The HTML report and `rir report`: self-contained, escaped, partial results shown as pending, and the page
as real headless Chromium renders it (no console errors, a real screenshot at phone and laptop widths)."""

import base64
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.report import fixture_results as fx

from rir.config import RunSpec, expand_runs, load_params
from rir.report import load, write_figures, write_html

ROOT = Path(__file__).resolve().parent.parent
EVIL = "<script>alert(1)</script>"


PARAMS = str(ROOT / "params.yaml")


def rir(*args, cwd=ROOT):
    """`rir` in a fresh process, as the pipeline runs it."""
    return subprocess.run([sys.executable, "-m", "rir", *args], capture_output=True, text=True, cwd=cwd)


def rir_here(capsys, *args):
    """`rir` in this process (faster): (exit code, stderr)."""
    from rir.cli import main

    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    """`rir report` (all stages) over complete smoke-profile fixture results."""
    root = tmp_path_factory.mktemp("smoke")
    fx.write_results(root / "results", expand_runs(load_params(ROOT / "params.yaml"), "smoke"))
    proc = rir("report", "--profile", "smoke", "--results", str(root / "results"),
               "--out", str(root / "report"))
    assert proc.returncode == 0, proc.stderr
    return root


def test_smoke_report_shows_every_table_figure_claim_and_the_banner(smoke_report):
    html = (smoke_report / "report" / "index.html").read_text(encoding="utf-8")
    assert "SYNTHETIC DATA" in html and "synthetic-banner" in html
    assert "94.99" in html and "77.10" in html and "nutszebra/resnet_in_resnet" in html
    for table in ("table1", "table2", "table3", "table4", "table5", "figure4"):
        assert f'id="{table}"' in html
    for claim in range(1, 8):
        assert f'id="claim-{claim}"' in html
    manifest = (smoke_report / "report" / "figures" / "index.json").read_text()
    drawn = manifest.count('"status": "drawn"')
    assert drawn == 9 and html.count('src="data:image/png;base64,') == drawn
    # Self-contained: nothing loaded from elsewhere, no script at all.
    assert not re.search(r'(src|href)="(https?:)?//', html) and "<script" not in html.lower()
    smoke = load_params(ROOT / "params.yaml")["profiles"]["smoke"]
    assert "Recipe notes" in html and f"epochs = {smoke['recipe']['epochs']} here; the paper: 82" in html
    assert f"width_scale = {smoke['model_overrides']['width_scale']}" in html
    assert "lr = 0.1: not stated in the paper" in html
    assert "x86_64" in html and "2.13.0+cpu" in html and "<code>0123456789ab</code>" in html
    tables = smoke_report / "results" / "tables"
    assert (tables / "table3.csv").is_file() and (tables / "claims.json").is_file()


def test_on_synthetic_data_verdicts_are_a_pipeline_check_and_an_overview_comes_first(smoke_report):
    """Synthetic numbers say nothing of the paper: the verdicts are shown as the rule's check, in grey (the
    page's `synthetic-data` class turns every badge grey and dashed), not red; the banner informs without
    alarm. Before the rules and tables, every model at its default options against the datasets."""
    html = (smoke_report / "report" / "index.html").read_text(encoding="utf-8")
    assert '<body class="synthetic-data">' in html and "not reproduced" in html
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    assert re.search(r"\.synthetic-data \.badge \{ color: var\(--info\)", style)
    banner = re.search(r"\.synthetic-banner \{ background: ([^;]+);", style).group(1)
    assert banner != "var(--bad)", banner
    assert html.index('id="overview"') < html.index('id="rules"') < html.index('id="tables"')
    overview = html.split('id="overview"', 1)[1].split("</section>", 1)[0]
    assert "18-layer + wide RiR" in overview and "ALL-CNN-C + ResNet Init" in overview
    assert "CIFAR-10" in overview and "CIFAR-100" in overview and "n=1" in overview
    # A cell of a paper table is three short lines: the reproduced value, the paper's with the difference,
    # the verdict (and the runs); the range and spread are the value's tooltip.
    cell = html.split('id="table1"', 1)[1].split('<td class="cell">', 2)[1].split("</td>", 1)[0]
    assert cell.count('class="line') <= 3 and "range " not in cell.split('title="', 1)[-1].split('"', 1)[1]


def test_stages_run_one_at_a_time(tmp_path, capsys):
    runs = expand_runs(load_params(PARAMS), "smoke")
    fx.write_results(tmp_path / "results", runs, pending=set(list(runs)[2:]))
    common = ("--params", PARAMS, "--profile", "smoke", "--results", str(tmp_path / "results"),
              "--out", str(tmp_path / "out"))
    assert rir_here(capsys, "report", "tables", *common)[0] == 0
    assert (tmp_path / "results" / "tables" / "table1.json").is_file()
    assert not (tmp_path / "out").exists()
    code, err = rir_here(capsys, "report", "html", *common)  # before the figures stage: the page says so
    assert code == 0, err
    html = (tmp_path / "out" / "index.html").read_text()
    assert "No figures yet" in html and "pending" in html


def test_partial_results_render_with_pending(tmp_path):
    params = fx.both_datasets(load_params(ROOT / "params.yaml"))
    runs = expand_runs(params, "smoke")
    done = {"rir_18_wide__cifar10__s0", "cnn_18__cifar10__s0"}
    fx.write_results(tmp_path, runs, pending=set(runs) - done)
    data = load(params, "smoke", tmp_path)
    write_figures(data, tmp_path / "report" / "figures")
    html = write_html(data, tmp_path / "report").read_text()
    assert f"{len(runs) - 2} pending" in html and "2 completed" in html
    assert "Pending: nothing to draw yet." in html  # Figures 3, 4 and the heatmap have no data
    assert "Pending: no metrics.json yet." in html
    assert html.count('class="badge v-pending"') >= 20


def test_markup_in_run_ids_and_model_names_is_inert(tmp_path):
    params = load_params(ROOT / "params.yaml")
    recipe = {"epochs": 3, "batch_size": 128}
    evil = RunSpec(EVIL, EVIL, "cifar10", 0, {}, recipe, ("table3",))
    named = RunSpec("evil__cifar10__s0", f"rir_18{EVIL}", "cifar10", 0, {"note": EVIL}, recipe, ("table3",))
    fx.write_run(tmp_path, named, acc=50.0)
    data = load(params, "smoke", tmp_path, runs={evil.run_id: evil, named.run_id: named})
    html = write_html(data, tmp_path / "report").read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "is not a safe directory name" in html  # the unsafe id is never used as a path
    assert re.findall(r'id="(run-[^"]*)"', html) and all(
        re.fullmatch(r"run-[A-Za-z0-9_-]+", a) for a in re.findall(r'id="(run-[^"]*)"', html))


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    proc = rir("report", "--params", str(tmp_path / "missing.yaml"))  # the real process: no traceback
    assert proc.returncode == 2 and "missing.yaml" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    code, err = rir_here(capsys, "report", "--params", PARAMS, "--profile", "no_such_profile")
    assert code == 2 and "no_such_profile" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "paper.yaml"
    bad.write_text((ROOT / "rir/reference/paper.yaml").read_text().replace("value: 94.99", "value: high"))
    code, err = rir_here(capsys, "report", "tables", "--params", PARAMS, "--profile", "smoke",
                         "--results", str(tmp_path), "--reference", str(bad))
    assert code == 2 and "rir_18_wide/cifar10).value: 'high'" in err and len(err.strip().splitlines()) == 1


def test_strict_makes_an_unreadable_file_an_error(tmp_path, capsys):
    runs = expand_runs(load_params(PARAMS), "smoke")
    spec = runs["cnn_18__cifar10__s0"]
    fx.write_run(tmp_path, spec)
    (tmp_path / "runs" / spec.run_id / "metrics.json").write_text("{")
    common = ("report", "tables", "--params", PARAMS, "--profile", "smoke", "--results", str(tmp_path))
    code, err = rir_here(capsys, *common)
    assert code == 0 and "warning" in err and "metrics.json" in err
    code, err = rir_here(capsys, *common, "--strict")
    assert code == 2 and "metrics.json" in err and len(err.strip().splitlines()) == 1


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.slow
@pytest.mark.parametrize("width, height", [(390, 2200), (1280, 2400)])
def test_report_in_headless_chromium(smoke_report, tmp_path, width, height):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    page = (smoke_report / "report" / "index.html").resolve().as_uri()
    shot = tmp_path / f"report-{width}.png"
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--enable-logging=stderr", "--v=0", f"--window-size={width},{height}",
             f"--user-data-dir={tmp_path / 'profile'}"]
    proc = subprocess.run([browser, *flags, f"--screenshot={shot}", page], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Console messages (script errors, CSP violations) are logged as CONSOLE lines. A broken image logs
    # nothing, so the images are checked in the DOM below.
    assert "CONSOLE" not in proc.stderr, proc.stderr
    data = shot.read_bytes()
    assert _png_size(data) == (width, height) and len(data) > 20_000
    dom = subprocess.run([browser, *flags, "--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and "CONSOLE" not in dom.stderr
    assert "SYNTHETIC DATA" in dom.stdout and "94.99" in dom.stdout and "<script" not in dom.stdout.lower()
    # The figures decode as PNGs inside the page.
    first = re.search(r'src="data:image/png;base64,([^"]+)"', dom.stdout).group(1)
    assert _png_size(base64.b64decode(first))[0] > 500
    # And the browser decoded every one of them: each <img> of the page, as Chromium loaded it, has a
    # natural size (a broken one has naturalWidth 0 and no console line).
    sizes = _image_sizes_in_chromium(browser, flags, page, tmp_path, width, height)
    assert len(sizes) == dom.stdout.count("<img") > 0, sizes
    assert all(w > 0 and h > 0 for _, w, h in sizes), sizes


# A page of the test's own around the report: its script (the report has none, and its CSP forbids one)
# reads each image of the report in an iframe once the report has loaded, and writes what it found into its
# own DOM, which --dump-dom prints. --allow-file-access-from-files makes the two file:// pages one origin.
PROBE = """<!doctype html><html><body>
<iframe id="report" src="{page}" width="{width}" height="{height}"></iframe><pre id="images">pending</pre>
<script>
document.getElementById("report").addEventListener("load", (event) => {{
  const images = [...event.target.contentDocument.images];
  document.getElementById("images").textContent = JSON.stringify(
    images.map((img) => [img.alt, img.complete ? img.naturalWidth : -1, img.naturalHeight]));
}});
</script></body></html>
"""


def _image_sizes_in_chromium(browser, flags, page, tmp_path, width, height) -> list:
    import html
    import json

    probe = tmp_path / "probe.html"
    probe.write_text(PROBE.format(page=page, width=width, height=height))
    proc = subprocess.run([browser, *flags, "--allow-file-access-from-files", "--dump-dom", probe.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'<pre id="images">(.*?)</pre>', proc.stdout, flags=re.S).group(1)
    assert found != "pending", "the report did not finish loading"
    return json.loads(html.unescape(found))


def test_real_data_report_has_no_synthetic_label(tmp_path):
    params = load_params(ROOT / "params.yaml")
    runs = {k: v for k, v in expand_runs(params, "paper").items() if "table1_2" in v.families}
    for spec in runs.values():
        fx.write_run(tmp_path, spec, acc=95.2, synthetic=False)
    env = tmp_path / "runs" / next(iter(runs)) / "env.json"
    env.write_text(env.read_text().replace('"git_dirty": false', '"git_dirty": true'))
    data = load(params, "paper", tmp_path, runs=runs)
    write_figures(data, tmp_path / "report" / "figures")
    html = write_html(data, tmp_path / "report").read_text()
    body = html.split("</style>", 1)[1]
    assert "Data: real CIFAR-10 / CIFAR-100" in body
    assert "SYNTHETIC DATA" not in body and "synthetic-banner" not in body
    assert 'class="badge v-reproduced">reproduced' in html  # 95.2 ± 0 against 94.99
    assert "2 different code versions trained these runs" in html and "0123456789ab (dirty)" in html


@pytest.mark.slow
def test_every_command_the_smoke_report_prints_runs_as_printed(snakemade, tmp_path):
    """The commands the finished smoke report tells its reader to run (the optional families' targets, in
    the profile's form), each run as printed in a copy of the workspace: every one exits 0."""
    import html as markup

    from pipeline import sh

    repo = tmp_path / "repo"
    shutil.copytree(snakemade, repo, symlinks=True)
    page = (repo / "reports/smoke/index.html").read_text(encoding="utf-8")
    commands = list(dict.fromkeys(markup.unescape(c) for c in
                                  re.findall(r"<code>((?:snakemake|rir|dvc) [^<]*)</code>", page)))
    assert {"snakemake --cores all gridsearch --config profile=smoke",
            "snakemake --cores all readings --config profile=smoke"} <= set(commands), commands
    for command in commands:
        proc = sh(repo, "bash", "-c", command, check=False)
        assert proc.returncode == 0, (command, proc.stdout[-2000:], proc.stderr[-2000:])
