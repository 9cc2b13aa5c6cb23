"""GPU slot lease (rir.gpu) on CPU, on a simulated box (tests/gpubox.py) with real concurrent processes.

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

import gpubox
import pytest
from gpubox import gpu_box_env, simulate

from rir import gpu
from rir.errors import UserError

HOLDER = """
import json, os, sys
from rir.gpu import lease_gpu
with lease_gpu(int(sys.argv[1]), lock_dir=sys.argv[2], wait=sys.argv[3] == "wait", poll_s=0.05,
               holder=sys.argv[4]) as lease:
    print(json.dumps({"gpu": lease.gpu, "slot": lease.slot, "visible": lease.visible_devices,
                      "env": os.environ.get("CUDA_VISIBLE_DEVICES"),
                      "order": os.environ.get("CUDA_DEVICE_ORDER")}), flush=True)
    sys.stdin.read()
"""

# Generous: only a hung child can reach it, it measures nothing.
LINE_TIMEOUT_S = 60


def _env(n_gpus: int, visible: str | None = None) -> dict[str, str]:
    env = gpu_box_env(n_gpus, {k: v for k, v in os.environ.items()
                               if k not in ("CUDA_DEVICE_ORDER", "SLURM_JOB_ID", gpu.LOCK_DIR)})
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    return env


def start_holder(lock_dir: Path, n_gpus: int, runs_per_gpu: int, wait: bool = False, name: str = "run",
                 visible: str | None = None):
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(runs_per_gpu), str(lock_dir), "wait" if wait else "nowait", name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(n_gpus, visible),
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
    _assert_waits(waiter)
    stop(holders[1])
    got = read_lease(waiter)
    assert (got["gpu"], got["slot"]) == (leases[1]["gpu"], leases[1]["slot"])


def _assert_waits(waiter: subprocess.Popen) -> None:
    """The event that proves a waiter has no slot: its first wait report, printed only after it tried every
    slot in vain. While the holders hold, it has printed no lease (select with a zero timeout: no window)."""
    report = waiter.stderr.readline()  # blocks until the report (or the end of a crashed waiter)
    assert report.startswith("rir: waiting"), f"no wait report: {report!r} {waiter.stderr.read()}"
    assert not has_line(waiter, 0), "the waiter printed a lease"


def test_visible_devices_are_the_inventory_one_run_each_and_a_fifth_waits(tmp_path, holders):
    """CUDA_VISIBLE_DEVICES=0,1,2,3 (an srun --gres=gpu:4 allocation, a container): four runs in separate
    processes get 0, 1, 2 and 3, one each, narrowed to that one device; a fifth waits for a free slot."""
    holders += [start_holder(tmp_path, n_gpus=8, runs_per_gpu=1, name=f"run{i}", visible="0,1,2,3")
                for i in range(4)]
    leases = [read_lease(p) for p in holders]
    assert sorted(lease["env"] for lease in leases) == ["0", "1", "2", "3"]  # not the fake 8: the list wins
    assert all(lease["visible"] == lease["env"] and lease["order"] is None for lease in leases)
    fifth = start_holder(tmp_path, n_gpus=8, runs_per_gpu=1, wait=True, name="fifth", visible="0,1,2,3")
    holders.append(fifth)
    _assert_waits(fifth)
    freed = leases[2]["env"]
    stop(holders[2])
    assert read_lease(fifth)["env"] == freed


def test_uuids_and_mig_devices_are_leased_as_listed(tmp_path, holders):
    devices = ["GPU-8f3a2b1c-0000-1111-2222-333344445555", "MIG-4a5b6c7d-8888-9999-aaaa-bbbbccccdddd"]
    holders += [start_holder(tmp_path, n_gpus=0, runs_per_gpu=1, name=f"run{i}", visible=",".join(devices))
                for i in range(2)]
    assert sorted(read_lease(p)["env"] for p in holders) == sorted(devices)
    assert sorted(p.name for p in tmp_path.glob("*.lock")) == sorted(f"{d}-slot0.lock" for d in devices)


def test_parse_visible_devices_reads_the_list_as_cuda_does():
    assert gpu.parse_visible_devices("0,1, 2,3") == ["0", "1", "2", "3"]
    assert gpu.parse_visible_devices("GPU-abc,MIG-GPU-abc/1/0") == ["GPU-abc", "MIG-GPU-abc/1/0"]
    assert gpu.parse_visible_devices("0,1,-1,2") == ["0", "1"]  # the list ends at the first non-device
    assert gpu.parse_visible_devices("") == [] and gpu.parse_visible_devices("-1") == []
    assert gpu.parse_visible_devices("NoDevFiles") == []
    assert gpu.parse_visible_devices("1,1,0") == ["1", "0"]


def test_slots_and_the_default_lock_folder_follow_the_inventory(monkeypatch, tmp_path):
    monkeypatch.delenv(gpu.LOCK_DIR, raising=False)
    monkeypatch.delenv(gpu.RUNS_PER_GPU, raising=False)
    simulate(monkeypatch, 8)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu.gpu_slots() == 8 and gpu.gpu_slots(2) == 16
    monkeypatch.setenv(gpu.RUNS_PER_GPU, "2")
    assert gpu.gpu_slots() == 16
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert gpu.gpu_slots() == 4
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu.gpu_slots() == 0
    # A SLURM job's CUDA_VISIBLE_DEVICES numbers that job's GPUs: its locks are its own.
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert gpu.default_lock_dir(inherited=True).name == "slurm-job-4242"
    assert gpu.default_lock_dir(inherited=False).name.startswith("rir-gpu-locks-")


def test_present_gpus_are_the_drivers_less_those_hidden(monkeypatch, tmp_path):
    """The count that decides whether a torch without CUDA is a broken install: nvidia-smi's GPUs, none when
    CUDA_VISIBLE_DEVICES hides them; on the tests' simulated box, none (its runs train on the CPU)."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    if Path("/proc/driver/nvidia/gpus").is_dir():
        pytest.skip("this machine has an NVIDIA driver")
    assert gpu.present_gpu_count() == 0 == gpu.count_gpus()
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)'\n"
                   "echo 'GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-2)'\n")
    smi.chmod(0o755)
    assert gpu.present_gpu_count() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # hidden on purpose: none present for this process
    assert gpu.present_gpu_count() == 0
    simulate(monkeypatch, 8)
    assert gpu.count_gpus() == 8 and gpu.present_gpu_count() == 0


def test_gpu_job_threads_keep_every_slot_busy():
    """cores // slots threads a GPU job, so Snakemake's core budget starts a job on every slot."""
    assert gpu.gpu_job_threads(16, 8) == 2  # 8 GPUs, 16 cores: 8 jobs x 2 threads
    assert gpu.gpu_job_threads(8, 8) == 1  # as many cores as GPUs: 1 thread each, all 8 busy
    assert gpu.gpu_job_threads(4, 8) == 1  # fewer cores than slots: never 0 threads
    assert gpu.gpu_job_threads(64, 8) == 8  # the cores shared out: 8 jobs x 8 threads
    assert gpu.gpu_job_threads(None, 2) == 1  # cores unknown: one thread, every slot still busy
    assert gpu.gpu_job_threads(16, 0) == 4  # no GPU: a CPU profile, or a cluster's login node
    assert gpu.gpu_job_threads(None, 0) == 4
    assert gpu.gpu_job_threads(16, 8, recipe_threads=6) == 6  # the recipe's threads, when they are more
    assert gpu.gpu_job_threads(16, 8, recipe_threads=1) == 2  # never fewer than keep one job per slot
    assert gpu.gpu_job_threads(16, 0, recipe_threads=1) == 1


def test_cpu_refusal_only_for_real_data_trained_on_the_cpu_unasked():
    assert gpu.cpu_refusal(real_data=True, devices={"auto"}, gpu_slots=0)
    assert "--device cpu" in gpu.cpu_refusal(real_data=True, devices={"auto", "cpu"}, gpu_slots=0)
    assert gpu.cpu_refusal(real_data=True, devices={"cpu"}, gpu_slots=0) is None  # asked for
    assert gpu.cpu_refusal(real_data=False, devices={"auto"}, gpu_slots=0) is None  # synthetic: the smoke
    assert gpu.cpu_refusal(real_data=True, devices={"auto"}, gpu_slots=8) is None  # GPUs here


def test_lease_log_records_each_lease_and_its_end(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    simulate(monkeypatch, 2)
    monkeypatch.setenv(gpubox.LEASE_LOG, str(tmp_path / "lease.log"))
    with gpu.lease_gpu(lock_dir=tmp_path / "locks", holder="run-a") as lease:
        assert lease.device == "0"
    events = [json.loads(line) for line in (tmp_path / "lease.log").read_text().splitlines()]
    assert [e["event"] for e in events] == ["acquired", "released"]
    assert events[0]["holder"] == "run-a" and events[0]["waited"] is False
    assert events[0]["t"] <= events[1]["t"] and events[0]["device"] == events[1]["device"] == "0"


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
    simulate(monkeypatch, 1)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    sleeps, real_sleep = [], gpu.time.sleep

    def give_up(seconds):  # let the wait loop report once, then end it
        if seconds != 0.5:  # not the lease's poll: a subprocess's own wait (nvidia-smi, counting the GPUs)
            return real_sleep(seconds)
        sleeps.append(seconds)
        raise KeyboardInterrupt

    monkeypatch.setattr(gpu.time, "sleep", give_up)
    with pytest.raises(KeyboardInterrupt):
        gpu.acquire_gpu(1, lock_dir=tmp_path, poll_s=0.5)
    assert sleeps == [0.5]
    progress = capsys.readouterr().err
    assert "waiting" in progress and "busy-run" in progress


def test_one_listed_device_is_used_as_it_is(tmp_path, monkeypatch):
    simulate(monkeypatch, 8)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with gpu.lease_gpu(lock_dir=tmp_path / "locks") as lease:
        assert lease.visible_devices == "3" and not lease.leased and lease.gpu is None
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert not (tmp_path / "locks").exists()


def test_no_gpu_means_no_lease(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    simulate(monkeypatch, 0)
    with gpu.lease_gpu(lock_dir=tmp_path / "locks") as lease:
        assert lease.visible_devices is None and not lease.leased
        assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert not (tmp_path / "locks").exists()


def test_lease_sets_and_restores_visible_devices(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv(gpu.LOCK_DIR, raising=False)
    simulate(monkeypatch, 2)
    lock_dir = tmp_path / "locks"
    with gpu.lease_gpu(lock_dir=lock_dir) as lease:
        assert (lease.gpu, lease.slot) == (0, 0) and lease.leased
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
        assert lock_dir.stat().st_mode & 0o777 == 0o700
    assert not lease.leased
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_apply_gpu_lease_only_for_auto_and_cuda(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    simulate(monkeypatch, 1)
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
    simulate(monkeypatch, 1)
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
    simulate(monkeypatch, 1)
    with pytest.raises(UserError, match="runs_per_gpu"):
        gpu.acquire_gpu(0, lock_dir=tmp_path)
    for value, fault in (("many", "not an integer"), ("0", "must be at least 1")):
        monkeypatch.setenv(gpu.RUNS_PER_GPU, value)
        with pytest.raises(UserError, match=f"RIR_RUNS_PER_GPU='{value}': {fault}"):
            gpu.apply_gpu_lease("auto")


def test_parse_nvidia_smi_list_ignores_mig_devices():
    text = (
        "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1)\n"
        "  MIG 1g.5gb     Device  0: (UUID: MIG-a)\n"
        "GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-2)\n"
    )
    assert gpu.parse_nvidia_smi_list(text) == 2
