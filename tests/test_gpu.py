"""GPU slot lease (rir.gpu) on CPU, with a faked GPU count and real concurrent processes.

Each holder is a separate Python process (flock is per open file, so threads would prove nothing): it takes a
lease, prints it as one JSON line, and keeps it until its stdin closes or it is killed.
"""

from __future__ import annotations

import collections
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rir import gpu
from rir.errors import UserError

HOLDER = """
import json, sys
from rir.gpu import lease_gpu
with lease_gpu(int(sys.argv[1]), lock_dir=sys.argv[2], wait=sys.argv[3] == "wait", poll_s=0.05,
               holder=sys.argv[4]) as lease:
    print(json.dumps({"gpu": lease.gpu, "slot": lease.slot, "visible": lease.visible_devices}), flush=True)
    sys.stdin.read()
"""

# Generous: only a hung child can reach it, it measures nothing.
LINE_TIMEOUT_S = 60


def _env(n_gpus: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", gpu.LOCK_DIR)}
    env[gpu.FAKE_COUNT] = str(n_gpus)
    return env


def start_holder(lock_dir: Path, n_gpus: int, runs_per_gpu: int, wait: bool = False, name: str = "run"):
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(runs_per_gpu), str(lock_dir), "wait" if wait else "nowait", name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(n_gpus),
    )


def has_line(proc: subprocess.Popen, timeout: float) -> bool:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return bool(ready)


def read_lease(proc: subprocess.Popen) -> dict:
    assert has_line(proc, LINE_TIMEOUT_S), f"holder printed nothing; stderr: {proc.stderr.read()}"
    line = proc.stdout.readline()
    assert line, f"holder exited with {proc.wait()}: {proc.stderr.read()}"
    return json.loads(line)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.stdin.close()
        proc.wait(timeout=LINE_TIMEOUT_S)


@pytest.fixture
def holders():
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()


def test_concurrent_processes_get_distinct_slots(tmp_path, holders):
    # Start all four before reading any answer, so they really race for the locks.
    holders += [start_holder(tmp_path, n_gpus=2, runs_per_gpu=2, name=f"run{i}") for i in range(4)]
    leases = [read_lease(p) for p in holders]
    assert len({(lease["gpu"], lease["slot"]) for lease in leases}) == 4
    assert collections.Counter(lease["gpu"] for lease in leases) == {0: 2, 1: 2}
    assert all(lease["visible"] == str(lease["gpu"]) for lease in leases)
    # The lock files name their holders, for humans.
    contents = sorted(p.read_text() for p in tmp_path.glob("gpu*-slot*.lock"))
    assert [c.split()[0] for c in contents] == ["run0", "run1", "run2", "run3"]


def test_runs_spread_over_gpus_before_sharing_one(tmp_path, holders):
    first = start_holder(tmp_path, n_gpus=2, runs_per_gpu=2)
    holders.append(first)
    assert read_lease(first)["gpu"] == 0
    second = start_holder(tmp_path, n_gpus=2, runs_per_gpu=2)
    holders.append(second)
    assert read_lease(second)["gpu"] == 1


def test_extra_process_fails_or_waits_until_a_holder_exits(tmp_path, holders):
    holders += [start_holder(tmp_path, n_gpus=1, runs_per_gpu=2) for _ in range(2)]
    leases = [read_lease(p) for p in holders]

    refused = subprocess.run(
        [sys.executable, "-c", HOLDER, "2", str(tmp_path), "nowait", "late"],
        capture_output=True,
        text=True,
        env=_env(1),
        stdin=subprocess.DEVNULL,
    )
    assert refused.returncode != 0 and "GpuSlotsBusy" in refused.stderr

    waiter = start_holder(tmp_path, n_gpus=1, runs_per_gpu=2, wait=True, name="waiter")
    holders.append(waiter)
    assert not has_line(waiter, 1.0), "a third run got a slot while both were held"
    stop(holders[1])
    got = read_lease(waiter)
    assert (got["gpu"], got["slot"]) == (leases[1]["gpu"], leases[1]["slot"])


def test_sigkilled_holder_frees_its_slot(tmp_path, holders):
    victim = start_holder(tmp_path, n_gpus=1, runs_per_gpu=1)
    holders.append(victim)
    taken = read_lease(victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    successor = start_holder(tmp_path, n_gpus=1, runs_per_gpu=1)
    holders.append(successor)
    assert read_lease(successor) == taken


def test_waiting_prints_progress(tmp_path, holders, monkeypatch, capsys):
    holder = start_holder(tmp_path, n_gpus=1, runs_per_gpu=1, name="busy-run")
    holders.append(holder)
    read_lease(holder)
    monkeypatch.setenv(gpu.FAKE_COUNT, "1")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    sleeps = []

    def give_up(seconds):  # let the wait loop report once, then end it
        sleeps.append(seconds)
        raise KeyboardInterrupt

    monkeypatch.setattr(gpu.time, "sleep", give_up)
    with pytest.raises(KeyboardInterrupt):
        gpu.acquire_gpu(1, lock_dir=tmp_path, poll_s=0.5)
    assert sleeps == [0.5]
    progress = capsys.readouterr().err
    assert "waiting" in progress and "busy-run" in progress


def test_existing_cuda_visible_devices_is_honoured(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setenv(gpu.FAKE_COUNT, "8")
    with gpu.lease_gpu(lock_dir=tmp_path / "locks") as lease:
        assert lease.visible_devices == "3" and not lease.leased and lease.gpu is None
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert not (tmp_path / "locks").exists()


def test_no_gpu_means_no_lease(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv(gpu.FAKE_COUNT, "0")
    with gpu.lease_gpu(lock_dir=tmp_path / "locks") as lease:
        assert lease.visible_devices is None and not lease.leased
        assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert not (tmp_path / "locks").exists()


def test_lease_sets_and_restores_visible_devices(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv(gpu.LOCK_DIR, raising=False)
    monkeypatch.setenv(gpu.FAKE_COUNT, "2")
    lock_dir = tmp_path / "locks"
    with gpu.lease_gpu(lock_dir=lock_dir) as lease:
        assert (lease.gpu, lease.slot) == (0, 0) and lease.leased
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
        assert lock_dir.stat().st_mode & 0o777 == 0o700
    assert not lease.leased
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_apply_gpu_lease_only_for_auto_and_cuda(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv(gpu.FAKE_COUNT, "1")
    monkeypatch.setenv(gpu.LOCK_DIR, str(tmp_path))
    monkeypatch.setattr(gpu, "_process_lease", None)
    assert gpu.apply_gpu_lease("cpu") is None
    assert gpu.apply_gpu_lease("cuda:1") is None
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    lease = gpu.apply_gpu_lease("auto", runs_per_gpu=1, holder="my-run")
    try:
        assert lease.leased and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
        assert gpu.apply_gpu_lease("cuda") is lease  # idempotent: one lease per process
        assert (tmp_path / "gpu0-slot0.lock").read_text().startswith("my-run pid=")
    finally:
        lease.release()


def test_apply_gpu_lease_reads_runs_per_gpu_from_the_environment(tmp_path, monkeypatch, holders):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv(gpu.FAKE_COUNT, "1")
    monkeypatch.setenv(gpu.LOCK_DIR, str(tmp_path))
    monkeypatch.setenv(gpu.RUNS_PER_GPU, "2")
    monkeypatch.setattr(gpu, "_process_lease", None)
    other = start_holder(tmp_path, n_gpus=1, runs_per_gpu=2)
    holders.append(other)
    assert read_lease(other)["slot"] == 0
    lease = gpu.apply_gpu_lease("auto")  # slot 1 of GPU 0 exists only with two runs per GPU
    try:
        assert (lease.gpu, lease.slot) == (0, 1)
    finally:
        lease.release()


def test_bad_inputs_are_user_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv(gpu.FAKE_COUNT, "two")
    with pytest.raises(UserError, match="RIR_FAKE_GPU_COUNT"):
        gpu.acquire_gpu(lock_dir=tmp_path)
    monkeypatch.setenv(gpu.FAKE_COUNT, "1")
    with pytest.raises(UserError, match="runs_per_gpu"):
        gpu.acquire_gpu(0, lock_dir=tmp_path)
    monkeypatch.setenv(gpu.RUNS_PER_GPU, "many")
    with pytest.raises(UserError, match="RIR_RUNS_PER_GPU"):
        gpu.apply_gpu_lease("auto")


def test_parse_nvidia_smi_list_ignores_mig_devices():
    text = (
        "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1)\n"
        "  MIG 1g.5gb     Device  0: (UUID: MIG-a)\n"
        "GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-2)\n"
    )
    assert gpu.parse_nvidia_smi_list(text) == 2
