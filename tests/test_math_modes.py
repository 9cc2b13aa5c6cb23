"""Math modes and the device (rir.device, issue 12 sections 2, 3 and 5), all on the CPU.

TF32 cannot run here, so its effect on ResNet Init is shown by rounding to its 10-bit mantissa by hand:
the fused form convolves with W + I rounded, and a 1e-4 learned weight on an identity tap vanishes; the
explicit form rounds W alone and adds the identity exactly, and keeps it. The choice of form is a pure
function (rir.layers.explicit_form), checked for every mode.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from rir.device import apply_math_mode, math_mode, refuse_unasked_cpu
from rir.errors import UserError
from rir.layers import ResNetInitConv2d, explicit_form

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tf32_switches():
    """Restore torch's TF32 switches after a test that sets them."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def round_to_tf32(t: torch.Tensor) -> torch.Tensor:
    """fp32 rounded to nearest-even at TF32's 10 stored mantissa bits (the 13 low bits of 23 cleared)."""
    bits = t.float().contiguous().view(torch.int32)
    low = bits & 0x1FFF
    half, odd = 0x1000, (bits >> 13) & 1
    up = (low > half) | ((low == half) & (odd == 1))
    return ((bits & ~0x1FFF) + up.to(torch.int32) * 0x2000).view(torch.float32)


def test_tf32_rounding_erases_a_small_identity_weight_in_the_fused_form_only():
    torch.manual_seed(0)
    layer = ResNetInitConv2d(4, 4, kernel_size=3, residual_channels=2)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[0, 0, 1, 1] = 1e-4  # a small learned weight on an identity tap: effective 1 + 1e-4
    x = round_to_tf32(torch.rand(1, 4, 6, 6) + 0.5)  # TF32 rounds the inputs too
    exact = F.conv2d(x.double(), layer.effective_weight().double(), padding=1)
    fused = F.conv2d(x, round_to_tf32(layer.effective_weight()), padding=1)  # TF32 conv with W + I
    explicit = F.conv2d(x, round_to_tf32(layer.weight), padding=1) + F.pad(x[:, :2], (0, 0, 0, 0, 0, 2))
    assert round_to_tf32(torch.tensor(1 + 1e-4)).item() == 1.0  # 1 + w rounds to 1: 2^-10 is ~1e-3
    learned = 1e-4 * x[0, 0].double()  # what the weight adds to output channel 0 (its input is channel 0)
    assert torch.allclose(exact[0, 0] - x[0, 0].double(), learned, rtol=1e-3)  # fp32's own W + I keeps it
    fused_part = fused[0, 0].double() - x[0, 0].double()
    explicit_part = explicit[0, 0].double() - x[0, 0].double()
    assert fused_part.abs().max().item() == 0.0, "the fused form kept the weight: TF32 rounding not shown"
    # The explicit form keeps it to TF32's relative precision of W (and fp32's of the sum).
    assert torch.allclose(explicit_part, learned, rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("form, dtype, autocast, tf32, explicit", [
    ("auto", torch.float32, False, False, False),  # exact fp32 (CPU, or CUDA with TF32 off): the fused form
    ("auto", torch.float32, False, True, True),  # TF32 allowed on CUDA
    ("auto", torch.float32, True, False, True),  # bf16 autocast
    ("auto", torch.bfloat16, False, False, True),
    ("auto", torch.float16, False, False, True),
    ("auto", torch.float64, False, False, False),
    ("fused", torch.float32, True, True, False),  # an explicit choice is kept
    ("explicit", torch.float64, False, False, True),
])
def test_form_choice_is_a_pure_function_of_the_math(form, dtype, autocast, tf32, explicit):
    assert explicit_form(form, dtype, autocast, tf32) is explicit


def test_math_mode_sets_and_records_the_tf32_switches(tf32_switches):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # a device object needs no GPU
    apply_math_mode("fp32")
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert math_mode("fp32", cuda)["math_mode"] == "fp32"
    apply_math_mode("tf32")
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    assert math_mode("tf32", cuda) == {"math_mode": "tf32", "autocast": None, "cudnn_allow_tf32": True,
                                       "cuda_matmul_allow_tf32": True, "tf32_applies": True}
    assert math_mode("tf32", cpu)["math_mode"] == "fp32"  # no TF32 on a CPU: what ran was exact fp32
    apply_math_mode("bf16")
    assert math_mode("bf16", cuda)["math_mode"] == "bf16" and not torch.backends.cudnn.allow_tf32
    with pytest.raises(UserError, match="precision"):
        apply_math_mode("fp16")


def test_run_records_the_math_mode_that_ran(synthetic_data_root, tmp_path, tf32_switches):
    from rir.train import TrainConfig, train

    cfg = TrainConfig.from_dict({"model": "resnet_init_18", "model_overrides": {"width": 4},
                                 "data_root": str(synthetic_data_root), "epochs": 1, "batch_size": 250,
                                 "device": "cpu", "threads": 1, "precision": "tf32"})
    metrics = train(cfg, tmp_path)
    assert metrics["precision"] == "tf32" and metrics["math_mode"] == "fp32" and metrics["cudnn_allow_tf32"]
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["math"]["math_mode"] == "fp32" and env["math"]["cudnn_allow_tf32"] is True
    assert env["math"]["tf32_applies"] is False and "float32_matmul_precision" in env["math"]


def test_real_data_never_trains_on_the_cpu_unasked():
    with pytest.raises(UserError, match="--device cpu"):
        refuse_unasked_cpu(torch.device("cpu"), "auto", synthetic=False)
    refuse_unasked_cpu(torch.device("cpu"), "cpu", synthetic=False)  # asked for
    refuse_unasked_cpu(torch.device("cpu"), "auto", synthetic=True)  # synthetic data: the smoke profile


def test_gpus_that_torch_cannot_use_stop_rir_train_in_one_line(synthetic_data_root, tmp_path):
    """A driver that lists GPUs (a stand-in nvidia-smi) and this CPU-only torch: `rir train` with the default
    device exits 2 with one line saying what torch reports and how to fix it; nothing is written."""
    if torch.cuda.is_available():
        pytest.skip("this torch can use CUDA")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)'\n")
    smi.chmod(0o755)
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("CUDA_VISIBLE_DEVICES", "RIR_TEST_GPUS")}
    env["PATH"] = f"{bin_dir}:{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["RIR_LOCK_DIR"] = str(tmp_path / "locks")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "rir", "train", "--model", "cnn_18", "--override", "width=4",
                           "--data-root", str(synthetic_data_root), "--out", str(out), "--epochs", "1"],
                          env=env, capture_output=True, text=True)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "1 NVIDIA GPU(s) present but torch cannot use CUDA" in lines[0]
    assert "CPU-only build" in lines[0] and "CUDA build" in lines[0] and "--device cpu" in lines[0]
    assert not out.exists()


@pytest.mark.slow
def test_snakemake_says_at_once_that_the_paper_profile_would_not_train_on_a_cpu_box(tmp_path):
    """When Snakemake starts, before any job, one line that says so and how to ask for the CPU (each `rir
    train` then refuses the same way: the test above); the laptop profile, which asks for the CPU, and the
    smoke profile, synthetic, get no such line."""
    from pipeline import fresh_copy, sh

    if torch.cuda.is_available():
        pytest.skip("this box has a usable GPU")
    repo = fresh_copy(tmp_path)
    for profile, warned in (("paper", True), ("laptop", False), ("smoke", False)):
        proc = sh(repo, sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--config",
                  f"profile={profile}")
        said = [line for line in proc.stderr.splitlines() if "no usable GPU" in line]
        if warned:
            assert len(said) == 1 and "--device cpu" in said[0] and "real CIFAR" in said[0], proc.stderr
        else:
            assert said == [], (profile, said)
    assert not (repo / "data").exists()


def test_plan_estimates_each_run_at_the_peak_of_its_math_mode():
    from rir.config import load_params
    from rir.plan import _card_estimate

    params = load_params(ROOT / "params.yaml")
    # One run is enough to compare peaks (and counts its FLOPs once instead of for every model).
    params["families"] = {"one": {"models": ["cnn_18"], "datasets": ["cifar10"], "seeds": [0]}}
    params.pop("optional_families", None)
    params["profiles"]["paper"].pop("families", None)
    hours = {}
    for mode in ("fp32", "tf32", "bf16"):
        p = copy.deepcopy(params)
        p["recipe"]["precision"] = mode
        estimate = _card_estimate(p, "paper", "H100 SXM")
        assert list(estimate["peaks_used"]) == [mode]
        hours[mode] = estimate["hours"]
    assert hours["fp32"] / hours["tf32"] == pytest.approx(494.5 / 67)
    assert hours["tf32"] / hours["bf16"] == pytest.approx(2.0)
    assert _card_estimate(params, "paper", "A100")["hours"] > hours[params["recipe"]["precision"]]
    with pytest.raises(UserError, match="--card"):
        _card_estimate(params, "paper", "unknown")
