"""bf16 autocast (fp32 master weights, explicit ResNet Init form) trains to the same accuracy as fp32.

Issue 7: the fast settings must keep results equivalent to fp32 within seed noise. The same rir_18 (width 8,
ResNet Init layers, so the explicit form is exercised) is trained with the same seed in fp32 and in bf16 on
synthetic CIFAR-10 (1000 training, 500 test images), 6 epochs. Tolerance: 10 percentage points of test
accuracy. Why 10: the binomial standard error of one accuracy on 500 images is up to 2.2 points, and two
fp32 runs that differ only in seed differ by several points on this small task; bf16 changes the rounding of
every step, so its trajectory is a different draw from the same distribution, not a copy of the fp32 one.
What the accuracy test cannot see: this task is too easy for bf16 master weights to hurt it (with the
parameters and optimizer state planted in bf16 it reached 88.8 %, fp32 88.6 %; issue 11). So the fp32 master
weights are held by their own test, which reads the dtypes of the parameters and the optimizer state that a
bf16 run checkpoints.
"""

import math

import pytest

from rir.train import TrainConfig, train

TOLERANCE_POINTS = 10.0
CHANCE = 10.0


@pytest.mark.slow
def test_bf16_and_fp32_reach_the_same_accuracy(synthetic_data_root, tmp_path):
    """Both learn the synthetic task (about 99 % after 3 epochs, each); bf16 on a CPU takes about ten times
    fp32's time, so the epochs are few."""
    accuracy = {}
    for precision in ("fp32", "bf16"):
        cfg = TrainConfig.from_dict({
            "model": "rir_18", "model_overrides": {"width": 8}, "dataset": "cifar10",
            "data_root": str(synthetic_data_root), "epochs": 3, "batch_size": 32, "lr": 0.05,
            "milestones": [2], "device": "cpu", "threads": 1, "seed": 0, "precision": precision,
        })
        metrics = train(cfg, tmp_path / precision)
        assert metrics["status"] == "completed" and metrics["precision"] == precision
        accuracy[precision] = metrics["test_accuracy"]
    assert all(math.isfinite(a) and a > 3 * CHANCE for a in accuracy.values()), accuracy
    assert abs(accuracy["bf16"] - accuracy["fp32"]) <= TOLERANCE_POINTS, accuracy


def test_bf16_keeps_fp32_master_weights_and_optimizer_state(synthetic_data, tmp_path, monkeypatch):
    """bf16 is autocast only: the parameters, BatchNorm's running statistics and SGD's momentum stay fp32,
    in the checkpoint a bf16 run resumes from and in its model.pt. The checkpoint is read while the run is
    unfinished (SIGTERM at the end of epoch 1 of 2): a finished run's state is removed."""
    import torch
    from faults import FAULT_ENV

    from rir.checkpoint import load_latest

    cfg = TrainConfig.from_dict({
        "model": "rir_18", "model_overrides": {"width": 4}, "dataset": "cifar10",
        "data_root": str(synthetic_data("cifar10", 512, 256, 0)), "epochs": 2, "batch_size": 256,
        "device": "cpu", "threads": 1, "precision": "bf16"})
    monkeypatch.setenv(FAULT_ENV, "TERM@2")  # 2 steps an epoch: the signal lands on epoch 1's last step
    assert train(cfg, tmp_path / "run")["status"] == "preempted"
    ckpt = load_latest(tmp_path / "run" / "state")
    monkeypatch.delenv(FAULT_ENV)
    assert train(cfg, tmp_path / "run")["precision"] == "bf16"
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["state_dict"]
    for where, weights in (("checkpoint", ckpt["model"]), ("model.pt", saved)):
        floats = {k: v.dtype for k, v in weights.items() if v.is_floating_point()}
        assert floats and set(floats.values()) == {torch.float32}, (where, floats)
    momenta = [s["momentum_buffer"] for s in ckpt["optimizer"]["state"].values()]
    assert len(momenta) == len(ckpt["optimizer"]["param_groups"][0]["params"]) + len(
        ckpt["optimizer"]["param_groups"][1]["params"])
    assert {m.dtype for m in momenta} == {torch.float32}


def test_compile_cache_is_shared_per_user(monkeypatch, tmp_path):
    from rir.step import compile_cache_dir

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache_dir() == tmp_path / "rir" / "inductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))  # the user's own choice wins
    assert compile_cache_dir() == tmp_path / "mine"


def test_compile_model_points_inductor_at_the_shared_cache(tmp_path):
    # A fresh interpreter: Inductor writes its /tmp default into TORCHINDUCTOR_CACHE_DIR when first imported,
    # here by the FLOP counter of model_summary, as in `rir train` and `rir bench`.
    import os
    import subprocess
    import sys

    code = ("import torch; from rir.models import model_summary; model_summary('rir_18', width=8); "
            "from rir.step import compile_model; compile_model(torch.nn.Linear(2, 2)); "
            "from torch._inductor.runtime.cache_dir_utils import cache_dir; print(cache_dir())")
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"} | {
        "XDG_CACHE_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == str(tmp_path / "rir" / "inductor")


def test_the_step_accumulates_on_the_device_and_sgd_is_fused_only_on_cuda():
    import torch

    from rir.models import create_model
    from rir.step import make_optimizer, train_step, use_fused_sgd

    assert use_fused_sgd(torch.device("cuda")) and not use_fused_sgd(torch.device("cpu"))
    model = create_model("rir_18", width=8)
    optimizer = make_optimizer(model, 0.05, 0.9, 2e-4, False, torch.device("cpu"))
    decayed, plain = optimizer.param_groups
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim == 1 for p in plain["params"])
    assert plain["weight_decay"] == 0.0 and optimizer.defaults["fused"] is None
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    for bf16 in (False, True):
        train_step(model, optimizer, x, y, bf16, loss_sum, correct)
    assert math.isfinite(loss_sum.item()) and loss_sum.item() > 0 and 0 <= correct.item() <= 8


def test_train_step_is_one_sgd_step_on_the_batch_cross_entropy():
    """`train_step` against a hand-written SGD step (momentum 0.9, decay on weight tensors alone), twice, so
    a gradient left over from the first step would show; the loss it adds up is the batch's summed loss."""
    import copy

    import torch
    import torch.nn.functional as F

    from rir.models import create_model
    from rir.step import make_optimizer, train_step

    torch.manual_seed(0)
    model = create_model("resnet_18", width=4)
    reference = copy.deepcopy(model)
    lr, momentum, decay = 0.05, 0.9, 2e-4
    optimizer = make_optimizer(model, lr, momentum, decay, False, torch.device("cpu"))
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)
    buffers, expected_sum, expected_correct = {}, 0.0, 0
    for step in range(2):
        x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
        logits = reference(x)
        loss = F.cross_entropy(logits, y)
        expected_sum += loss.item() * 8
        expected_correct += int((logits.argmax(1) == y).sum())
        grads = torch.autograd.grad(loss, list(reference.parameters()))
        with torch.no_grad():
            for (name, p), g in zip(reference.named_parameters(), grads, strict=True):
                g = g + decay * p if p.ndim > 1 else g
                buffers[name] = g.clone() if step == 0 else momentum * buffers[name] + g
                p -= lr * buffers[name]
        train_step(model, optimizer, x, y, False, loss_sum, correct)
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=name)
    assert loss_sum.item() == pytest.approx(expected_sum, rel=1e-5) and correct.item() == expected_correct


# Every Tensor method that makes the host wait for the device (on CUDA) when called.
SYNCING = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__")
# And two that do when they move data towards the host: `.to(<a cpu device>)`, and `copy_` into a host
# tensor. On this CPU-only test every tensor is on the host, so these count every such call: the loop must
# make none per step (the once-per-epoch host-to-device copy of the epoch's plan is one per epoch).
TOWARDS_HOST = ("to", "copy_")


def _towards_host(name: str, tensor, args, kwargs) -> bool:
    import torch

    if name == "copy_":
        return tensor.device.type == "cpu"
    kwargs = {k: v for k, v in kwargs.items() if k != "copy"}  # Tensor.to takes it, the parser does not
    device = torch._C._nn._parse_to(*args, **kwargs)[0]
    return device is not None and device.type == "cpu"


def _count_syncs(monkeypatch, cfg, out) -> int:
    import torch

    calls = []
    for name in SYNCING + TOWARDS_HOST:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            if _name not in TOWARDS_HOST or _towards_host(_name, self, args, kwargs):
                calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    try:
        metrics = train(cfg, out)
    finally:
        monkeypatch.undo()
    assert metrics["status"] == "completed"
    return len(calls)


def test_the_training_loop_reads_the_device_a_fixed_number_of_times_per_epoch(synthetic_data_root, tmp_path,
                                                                                monkeypatch):
    """Issue 7: no host-device synchronisation inside the step loop. Counted on the CPU through the Tensor
    methods that would synchronise on CUDA (reads, and copies towards the host): an epoch of 4x as many steps
    must make exactly as many calls."""
    counts = {}
    for batch_size in (250, 62):  # 4 and 16 steps per epoch on 1000 training images
        cfg = TrainConfig.from_dict({
            "model": "resnet_18", "model_overrides": {"width": 4}, "dataset": "cifar10",
            "data_root": str(synthetic_data_root), "epochs": 2, "batch_size": batch_size, "device": "cpu",
            "threads": 1})
        counts[batch_size] = _count_syncs(monkeypatch, cfg, tmp_path / str(batch_size))
    assert counts[250] > 0, "the counting missed the once-per-epoch reads, so it proves nothing"
    assert counts[62] == counts[250], counts


@pytest.mark.slow
def test_compiled_training_matches_eager_and_fills_the_shared_cache(synthetic_data_root, tmp_path):
    """`compile: true` (torch.compile through Inductor, on the CPU here) computes what eager mode computes,
    writes its kernels to the per-user cache, and leaves a model.pt that `rir evaluate` reads (the compiled
    wrapper's parameter names must not leak into the checkpoint)."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    histories = {}
    for mode in ("eager", "compiled"):
        out = tmp_path / mode
        cmd = [sys.executable, "-m", "rir", "train", "--model", "rir_18", "--override", "width=8",
               "--data-root", str(synthetic_data_root), "--out", str(out), "--epochs", "2",
               "--batch-size", "100", "--device", "cpu", "--threads", "2"]
        cmd += ["--compile"] if mode == "compiled" else []
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        assert proc.returncode == 0, proc.stderr[-2000:]
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["compile"] is (mode == "compiled")
        rows = (out / "history.csv").read_text().splitlines()[1:]
        histories[mode] = [float(row.split(",")[2]) for row in rows]  # train_loss of each epoch
    # Inductor fuses and reorders float32 arithmetic: equal up to rounding, not bit for bit.
    # Inductor reorders float sums, and the difference grows with each epoch: on the smoke profile's synthetic
    # data (stronger class signal since session 3, losses near 0.35 by epoch 2) it measured 0.12 % at epoch 2.
    assert histories["compiled"] == pytest.approx(histories["eager"], rel=2e-3), histories
    cache = tmp_path / "cache" / "rir" / "inductor"
    assert cache.is_dir() and any(cache.rglob("*.py")), f"nothing compiled into {cache}"

    cmd = [sys.executable, "-m", "rir", "evaluate", str(tmp_path / "compiled"), "--data-root",
           str(synthetic_data_root), "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    evaluated = json.loads((tmp_path / "compiled" / "eval.json").read_text())
    assert evaluated["test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=100 / 500)
