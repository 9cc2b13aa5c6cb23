"""`rir plan`: every run of a profile, and an estimate that counts what a run really does (rir/plan.py).

What the estimate is made of is asserted here, never how long anything took (machines are noisy; the
numbers are in the issue's report): the measurement runs the run's own step and evaluation with the run's
threads and determinism (and gives PyTorch's back), times the evaluation at its own batch, counts start-up,
data, build, warm-up, checkpoints and final writes for every run, reads the CPU time of the measuring thread
for a one-thread CPU run, and says per row and in the summary what was measured and what extrapolated.

One plan of the smoke profile (`--measure-budget 0`: the cheapest config measured, the others extrapolated)
is shared by the tests that read it; it is made with PyTorch at 4 threads, so that the smoke recipe's one
thread can be told from PyTorch's own setting on any machine.
"""

import contextlib
import io
import json
import time
from pathlib import Path

import pytest
import torch

from rir.cli import main
from rir.config import expand_runs, load_params
from rir.plan import _Clock, format_plan
from rir.train import EVAL_BATCH_SIZE

PARAMS = str(Path(__file__).resolve().parent.parent / "params.yaml")
TINY = ["--model", "rir_18", "--override", "width=8", "--batch-size", "8", "--steps", "2", "--warmup", "1",
        "--device", "cpu", "--threads", "1"]
PARTS = {"startup", "data", "build", "warmup", "finish", "steps", "evaluation", "checkpoints"}
FIXED = ("startup", "data", "build", "warmup", "finish")


def _json_out(capsys, args) -> dict:
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def smoke():
    """(the plan's JSON, what the run's code saw while the plan measured: threads and determinism at each
    training step, batch size and images of each evaluation pass, PyTorch's settings after the plan)."""
    import rir.evaluate
    import rir.step

    seen = {"steps": [], "evaluations": []}
    train_step, evaluate_model = rir.step.train_step, rir.evaluate.evaluate_model

    def step(*args, **kwargs):
        seen["steps"].append((torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()))
        return train_step(*args, **kwargs)

    def evaluate(model, loader, *args, **kwargs):
        seen["evaluations"].append((loader.batch_size, loader.num_samples))
        return evaluate_model(model, loader, *args, **kwargs)

    threads, out = torch.get_num_threads(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rir.step, "train_step", step)
        mp.setattr(rir.evaluate, "evaluate_model", evaluate)
        torch.set_num_threads(4)
        try:
            with contextlib.redirect_stdout(out):
                assert main(["plan", "--params", PARAMS, "--profile", "smoke", "--measure-budget", "0",
                             "--device", "cpu", "--json"]) == 0
            seen["after"] = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
        finally:
            torch.set_num_threads(threads)
    return json.loads(out.getvalue()), seen


def test_plan_smoke_lists_exactly_the_runs_of_expand_runs(smoke):
    plan, _ = smoke
    params = load_params(PARAMS)
    expected = expand_runs(params, "smoke")
    profile = params["profiles"]["smoke"]
    epochs, batch = profile["recipe"]["epochs"], profile["recipe"]["batch_size"]
    steps = profile["synthetic"]["n_train"] // batch  # full batches only
    assert [r["run_id"] for r in plan["runs"]] == list(expected)
    for r in plan["runs"]:
        run = expected[r["run_id"]]
        assert (r["model"], r["dataset"], r["seed"]) == (run.model, run.dataset, run.seed)
        assert tuple(r["families"]) == run.families
        assert (r["epochs"], r["steps_per_epoch"], r["images_per_epoch"]) == (epochs, steps, steps * batch)
        assert r["eval_images"] == profile["synthetic"]["n_test"]
        assert r["estimated_seconds"] > 0 and r["step_seconds"] > 0 and r["throughput_source"]
    assert plan["total_seconds"] == pytest.approx(sum(r["estimated_seconds"] for r in plan["runs"]))
    assert plan["total_device_hours"] == pytest.approx(plan["total_seconds"] / 3600)
    h100 = plan["card_estimate"]
    assert h100["profile"] == "paper" and h100["hours"] > 0 and "estimate" in h100["kind"]
    assert h100["card"] == "H100 SXM"


def test_plan_measures_with_the_runs_threads_and_determinism_and_gives_them_back(smoke):
    """The smoke recipe trains on one thread, deterministically: so must its measurement (PyTorch was at 4
    threads), and PyTorch's own settings come back after it."""
    plan, seen = smoke
    assert seen["steps"] and set(seen["steps"]) == {(1, True)}
    assert seen["after"] == (4, False)
    assert "CPU time of the measuring thread" in plan["summary"]["clock"]


def test_plan_measures_the_evaluation_at_the_runs_evaluation_batch(smoke):
    """Evaluation is measured (cold, then warm) through rir.evaluate at the batch train() evaluates with, not
    assumed to be a third of a training step."""
    plan, seen = smoke
    smoke_profile = load_params(PARAMS)["profiles"]["smoke"]
    n_test, batch = smoke_profile["synthetic"]["n_test"], smoke_profile["recipe"]["batch_size"]
    full = min(max(batch, EVAL_BATCH_SIZE), n_test)
    assert seen["evaluations"] == [(full, full)] * 2
    for r in plan["runs"]:
        assert r["eval_seconds_per_epoch"] > 0 and r["seconds"]["evaluation"] > 0
        if r["measured"]:
            assert r["sources"]["evaluation"] == f"measured (batch {full})"


def test_plan_counts_every_runs_start_up_data_warm_up_and_writes(smoke):
    """A run is more than its steps: each row adds the process start-up (measured once, in a child), the data,
    the build, the warm-up, the checkpoints and the final writes, and the summary names the part that
    metrics.json's wall_seconds covers."""
    plan, _ = smoke
    s = plan["summary"]
    assert s["startup_seconds_per_run"] > 0
    for r in plan["runs"]:
        parts = r["seconds"]
        assert set(parts) == PARTS and all(v >= 0 for v in parts.values())
        assert all(parts[k] > 0 for k in ("startup", "data", "finish", "steps", "evaluation", "checkpoints"))
        assert parts["startup"] == s["startup_seconds_per_run"]
        assert parts["steps"] == pytest.approx(r["epochs"] * r["steps_per_epoch"] * r["step_seconds"])
        assert r["fixed_seconds"] == pytest.approx(sum(parts[k] for k in FIXED))
        assert r["estimated_seconds"] == pytest.approx(sum(parts.values()))
    assert s["parts_seconds"]["startup"] == pytest.approx(len(plan["runs"]) * s["startup_seconds_per_run"])
    assert 0 < s["startup_in_train_seconds"] < s["startup_seconds_per_run"]
    outside = len(plan["runs"]) * (s["startup_seconds_per_run"] - s["startup_in_train_seconds"])
    outside += s["parts_seconds"]["finish"]
    assert s["wall_seconds_part"] == pytest.approx(plan["total_seconds"] - outside)
    assert "start to exit" in plan["predicts"]
    here = plan["on_this_machine"]  # smoke runs take one thread each: one per core
    assert here["runs_at_once"] == min(len(plan["runs"]), here["cores"])
    assert max(r["estimated_seconds"] for r in plan["runs"]) <= here["seconds"] <= plan["total_seconds"]


def test_plan_schedules_the_runs_on_this_machines_cores():
    """`snakemake --cores all` runs as many one-thread runs at once as there are cores: the plan's wall time
    here is the longest-first schedule of its runs, never less than the longest run nor than an even share."""
    from rir.plan import _on_these_cores

    rows = [{"threads": 1, "estimated_seconds": s} for s in (300, 200, 200, 100, 100, 100)]
    assert _on_these_cores(rows, 2) == {"cores": 2, "runs_at_once": 2, "seconds": 500}
    assert _on_these_cores(rows, 8)["seconds"] == 300 and _on_these_cores(rows, 8)["runs_at_once"] == 6
    assert _on_these_cores(rows, 1)["seconds"] == 1000
    assert _on_these_cores([{**r, "threads": 2} for r in rows], 4)["runs_at_once"] == 2
    assert _on_these_cores([{**r, "threads": 0} for r in rows], 8) is None  # PyTorch's default: every core


def test_plan_says_per_row_and_in_all_what_was_measured_and_what_extrapolated(smoke):
    plan, _ = smoke
    s, rows = plan["summary"], plan["runs"]
    configs = {(r["model"], json.dumps(r["model_overrides"], sort_keys=True), r["batch_size"]) for r in rows}
    assert s["configs"] == len(configs) > 1 and s["configs_measured"] == 1  # --measure-budget 0
    measured = [r for r in rows if r["measured"]]
    cheapest = min(r["flops_per_image"] * r["batch_size"] for r in rows)
    assert measured and all(r["flops_per_image"] * r["batch_size"] == cheapest for r in measured)
    assert s["runs_measured"] == len(measured) < len(rows)
    assert s["measured_seconds"] == pytest.approx(sum(r["estimated_seconds"] for r in measured))
    assert s["measured_seconds"] + s["extrapolated_seconds"] == pytest.approx(plan["total_seconds"])
    for r in rows:
        sources = set(r["sources"].values())
        if r["measured"]:
            assert all(x.startswith("measured") for x in sources), sources
        else:
            assert all(x.startswith("extrapolated") for x in sources), sources
    text = format_plan(plan)
    lines = text.splitlines()
    for r in rows:
        line = next(x for x in lines if x.startswith(r["run_id"] + " "))
        assert line.endswith(r["throughput_source"])
    for words in (f"measured here: 1 of {len(configs)} model configs", f"extrapolated by FLOPs: "
                  f"{len(configs) - 1} configs", "start-up measured in a child process", "measuring took",
                  "clock: CPU time of the measuring thread", "metrics.json's wall_seconds"):
        assert words in text, words


def test_a_one_thread_cpu_run_is_measured_on_the_threads_cpu_time(monkeypatch):
    """Other processes stretch the wall clock, not the CPU time of a one-thread step; runs of several threads
    and GPUs take the wall clock, and say so."""
    monkeypatch.setattr(time, "thread_time", lambda: 111.0)
    monkeypatch.setattr(time, "perf_counter", lambda: 222.0)
    one = _Clock(torch.device("cpu"), 1)
    assert one() == 111.0 and one.wall() == 222.0 and "CPU time" in one.kind
    two = _Clock(torch.device("cpu"), 2)
    assert two() == 222.0 and "load from other processes counts" in two.kind


def test_plan_takes_the_step_from_bench_json_and_says_what_it_leaves_out(tmp_path, capsys):
    record = _json_out(capsys, ["bench", *TINY, "--json"])
    smoke_batch = load_params(PARAMS)["profiles"]["smoke"]["recipe"]["batch_size"]
    record.update(model="rir_18_wide", model_overrides={"width_scale": 0.125}, batch_size=smoke_batch)
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(record))
    plan = _json_out(capsys, ["plan", "--params", PARAMS, "--profile", "smoke", "--bench-json", str(path),
                              "--json"])
    wide = [r for r in plan["runs"] if r["model"] == "rir_18_wide"]
    assert wide and all(r["train_images_per_s"] == pytest.approx(record["train_images_per_s"]) for r in wide)
    assert all(r["throughput_source"].startswith("bench-json") for r in wide)
    assert all(r["sources"]["fixed"] == "not included (--bench-json)" for r in wide)
    others = [r for r in plan["runs"] if r["model"] != "rir_18_wide"]
    assert all(r["throughput_source"].startswith("extrapolated") for r in others)
    assert plan["summary"]["startup_seconds_per_run"] == 0 and not any(r["measured"] for r in plan["runs"])
    assert "start-up, data, warm-up and checkpoints NOT included" in format_plan(plan)


def test_plan_with_no_matching_bench_record_is_one_line_exit_2(tmp_path, capsys):
    record = _json_out(capsys, ["bench", *TINY, "--json"])
    record.update(model="rir_18_wide", batch_size=7)  # no run of the smoke profile trains at batch 7
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(record))
    assert main(["plan", "--params", PARAMS, "--profile", "smoke", "--bench-json", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--bench-json" in err[0], err


@pytest.mark.parametrize("args, fault", [
    (["--profile", "nope"], "nope"),
    (["--params", "missing.yaml"], "missing.yaml"),
    (["--bench-json", "missing.json"], "missing.json"),
    (["--measure-budget", "-1"], "--measure-budget"),
])
def test_plan_bad_input_is_one_line_exit_2(capsys, args, fault):
    args = args if "--params" in args else ["--params", PARAMS, *args]
    assert main(["plan", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fault in err[0], err
