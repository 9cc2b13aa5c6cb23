"""`rir bench` and `rir plan`: complete, well-typed records and one-line refusals. No timing assertions:
speed is measured by `rir bench` itself and benchmarks/, never asserted (machines are noisy).

Runs in-process on a width-8 rir_18 (a few MFLOPs per image), batch 8, two timed steps.
"""

import json
from pathlib import Path

import pytest
import torch

from rir.bench import PEAKS, card_of, peak_flops
from rir.cli import main
from rir.config import expand_runs, load_params

PARAMS = str(Path(__file__).resolve().parent.parent / "params.yaml")
TINY = ["--model", "rir_18", "--override", "width=8", "--batch-size", "8", "--steps", "2", "--warmup", "1",
        "--device", "cpu", "--threads", "1"]
POSITIVE = ("params", "flops_per_image_forward", "flops_per_image_train", "loader_images_per_s",
            "train_images_per_s", "step_time_median_s", "step_time_p90_s", "bare_step_time_median_s",
            "bare_step_time_p90_s", "bare_images_per_s", "step_over_bare", "step_over_bare_min",
            "step_time_min_s", "loader_over_step",
            "achieved_flops_per_s", "peak_memory_bytes")


def _json_out(capsys, args) -> dict:
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("extra", [[], ["--precision", "bf16", "--channels-last"]])
def test_bench_json_has_every_key_with_sane_values(capsys, extra):
    r = _json_out(capsys, ["bench", *TINY, *extra, "--json"])
    for key in POSITIVE:
        assert isinstance(r[key], int | float) and not isinstance(r[key], bool) and r[key] > 0, key
    assert r["flops_per_image_train"] == 3 * r["flops_per_image_forward"]
    assert r["step_time_p90_s"] >= r["step_time_median_s"] >= r["step_time_min_s"]
    assert (r["model"], r["model_overrides"], r["batch_size"], r["steps"]) == ("rir_18", {"width": 8}, 8, 2)
    assert r["precision"] == ("bf16" if extra else "tf32") and r["channels_last"] is bool(extra)
    # TF32 does not exist on the CPU: a tf32 bench computes, and says, exact fp32.
    assert r["math_mode"] == ("bf16" if extra else "fp32") and r["tf32_applies"] is False
    assert r["device"] == "cpu" and r["fused_sgd"] is False and r["synthetic"] is True
    # A CPU is in no peak table: the fraction is unknown, not a guess.
    assert r["peak_flops_per_s"] is None and r["peak_fraction"] is None


def test_bench_table_names_the_measures(capsys):
    assert main(["bench", *TINY]) == 0
    captured = capsys.readouterr()
    for label in ("training", "data pipeline alone", "step / bare", "fraction of peak", "synthetic"):
        assert label in captured.out
    assert len(captured.err.strip().splitlines()) == 3  # one progress line per phase


def test_peak_table_by_card_and_math_mode():
    assert peak_flops("NVIDIA H100 80GB HBM3", "bf16") == (989e12, "bf16")
    assert peak_flops("NVIDIA H100 PCIe", "bf16") == (756e12, "bf16")
    assert peak_flops("NVIDIA H100 NVL", "bf16") == (835e12, "bf16")
    assert peak_flops("NVIDIA H200", "bf16")[0] == 989e12
    assert peak_flops("NVIDIA A100-SXM4-80GB", "bf16")[0] == 312e12
    assert peak_flops("NVIDIA L40S", "tf32")[0] == 183e12
    # The mode that ran picks the peak: exact fp32 is the plain fp32 units', TF32 the tensor cores'.
    assert peak_flops("NVIDIA H100 80GB HBM3", "fp32") == (67e12, "fp32")
    assert peak_flops("NVIDIA H100 80GB HBM3", "tf32") == (494.5e12, "tf32")
    assert card_of("NVIDIA H100 80GB HBM3") == "H100 SXM" and card_of("NVIDIA GeForce GTX 1080") == "unknown"
    assert peak_flops("NVIDIA GeForce GTX 1080", "bf16") == (None, None)
    assert all(set(peaks) == {"bf16", "tf32", "fp32"} for card, peaks in PEAKS.items() if card != "unknown")


@pytest.mark.parametrize("args, fault", [
    (["--model", "no_such_net"], "no_such_net"),
    (["--steps", "0"], "--steps"),
    (["--steps", "-3"], "--steps"),
    (["--batch-size", "0"], "--batch-size"),
    (["--warmup", "-1"], "--warmup"),
    (["--override", "width=1"], "width"),
    (["--override", "nonsense"], "--override"),
])
def test_bench_bad_input_is_one_line_exit_2(capsys, args, fault):
    base = ["bench", "--model", "rir_18", "--batch-size", "8", "--steps", "1", "--device", "cpu"]
    assert main([*base, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fault in err[0], err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_bench_cuda_without_a_gpu_is_refused(capsys):
    assert main(["bench", "--model", "rir_18", "--device", "cuda", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cuda" in err[0]


def test_plan_smoke_lists_exactly_the_runs_of_expand_runs(capsys):
    plan = _json_out(capsys, ["plan", "--params", PARAMS, "--profile", "smoke", "--measure-budget", "0",
                              "--device", "cpu", "--json"])
    params = load_params(PARAMS)
    expected = expand_runs(params, "smoke")
    smoke = params["profiles"]["smoke"]
    epochs, batch = smoke["recipe"]["epochs"], smoke["recipe"]["batch_size"]
    images = smoke["synthetic"]["n_train"] // batch * batch  # full batches only
    assert [r["run_id"] for r in plan["runs"]] == list(expected)
    for r in plan["runs"]:
        run = expected[r["run_id"]]
        assert (r["model"], r["dataset"], r["seed"]) == (run.model, run.dataset, run.seed)
        assert tuple(r["families"]) == run.families
        assert r["epochs"] == epochs and r["images_per_epoch"] == images
        assert r["estimated_seconds"] > 0 and r["train_images_per_s"] > 0 and r["throughput_source"]
    assert plan["total_device_hours"] > 0
    h100 = plan["card_estimate"]
    assert h100["profile"] == "paper" and h100["hours"] > 0 and "estimate" in h100["kind"]
    assert h100["card"] == "H100 SXM"


def test_plan_takes_throughput_from_bench_json(tmp_path, capsys):
    record = _json_out(capsys, ["bench", *TINY, "--json"])
    smoke_batch = load_params(PARAMS)["profiles"]["smoke"]["recipe"]["batch_size"]
    record.update(model="rir_18_wide", model_overrides={"width_scale": 0.125}, batch_size=smoke_batch)
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(record))
    plan = _json_out(capsys, ["plan", "--params", PARAMS, "--profile", "smoke", "--bench-json", str(path),
                              "--json"])
    wide = [r for r in plan["runs"] if r["model"] == "rir_18_wide"]
    assert wide and all(r["train_images_per_s"] == record["train_images_per_s"] for r in wide)
    assert all(r["throughput_source"].startswith("bench-json") for r in wide)
    others = [r for r in plan["runs"] if r["model"] != "rir_18_wide"]
    assert all(r["throughput_source"].startswith("flops") for r in others)


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
