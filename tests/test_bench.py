"""`rir bench`: complete, well-typed records and one-line refusals (`rir plan`: tests/test_plan.py). No timing
assertions: speed is measured by `rir bench` itself and benchmarks/, never asserted (machines are noisy).

Runs in-process on a width-8 rir_18 (a few MFLOPs per image), batch 8, two timed steps.
"""

import json

import pytest
import torch

from rir.bench import PEAKS, card_of, peak_flops
from rir.cli import main

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
