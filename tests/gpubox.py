"""A simulated GPU box for the tests; rir/ knows nothing of it.

`gpu_box_env(n)` (or, for the test process itself, `simulate(monkeypatch, n)`) puts
tests/bin/gpubox first on PATH: its `nvidia-smi -L` lists $RIR_TEST_GPUS GPUs, so rir.gpu counts them with
its real code, in the test process, in Snakemake's (the Snakefile's `gpu` resource) and in every job. The
runs still train on this CPU-only torch: `install()` makes `rir.gpu.present_gpu_count`, which rir.device
asks before refusing a torch that cannot use the driver's GPUs, answer 0 while a box is simulated.

`install()` also adds two observers of the lease, for tests that must see scheduling as events:
- RIR_TEST_LEASE_LOG=FILE: one JSON line per lease taken or given back (device, slot, pid, monotonic time,
  holder, and `waited`: whether every slot was held when the run first asked);
- RIR_TEST_LEASE_GATE=FILE: a run that has its slot waits until FILE exists, so a test sees every slot held
  at once as an event instead of a race.
conftest.py installs it in the test process; tests/bin/rir in the `rir` of subprocesses.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

GPUS_ENV = "RIR_TEST_GPUS"
LEASE_LOG = "RIR_TEST_LEASE_LOG"
LEASE_GATE = "RIR_TEST_LEASE_GATE"
SMI_DIR = Path(__file__).resolve().parent / "bin" / "gpubox"  # its nvidia-smi
FAULTS_BIN = SMI_DIR.parent  # tests/bin: the `rir` that installs this


def gpu_box_env(n_gpus: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) on a simulated box of `n_gpus` GPUs: its nvidia-smi and the tests' `rir`
    first on PATH, CUDA_VISIBLE_DEVICES unset (it would be the inventory instead)."""
    environ = {k: v for k, v in (os.environ if base is None else base).items() if k != "CUDA_VISIBLE_DEVICES"}
    environ.update({GPUS_ENV: str(n_gpus),
                    "PATH": os.pathsep.join([str(SMI_DIR), str(FAULTS_BIN), environ.get("PATH", "")])})
    return environ


def simulate(monkeypatch, n_gpus: int) -> None:
    """This test process on a simulated box of `n_gpus` GPUs (undone with the monkeypatch)."""
    environ = gpu_box_env(n_gpus)
    for key in (GPUS_ENV, "PATH"):
        monkeypatch.setenv(key, environ[key])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def _log(event: str, lease, **extra) -> None:
    path = os.environ.get(LEASE_LOG)
    if not path:
        return
    record = {"event": event, "device": lease.device, "gpu": lease.gpu, "slot": lease.slot,
              "pid": os.getpid(), "t": time.monotonic(), **extra}
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:  # one O_APPEND write: lines of several processes never interleave
        os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def install() -> None:
    """Patch rir.gpu (and rir.device's present_gpu_count) as the module docstring says; idempotent."""
    import rir.device
    import rir.gpu

    if getattr(rir.gpu.acquire_gpu, "observed", False):
        return
    real_present, real_acquire, real_release = (rir.gpu.present_gpu_count, rir.gpu.acquire_gpu,
                                                rir.gpu.GpuLease.release)

    def present_gpu_count() -> int:
        return 0 if os.environ.get(GPUS_ENV) else real_present()

    def acquire_gpu(runs_per_gpu=1, lock_dir=None, wait=True, poll_s=2.0, holder=None):
        lease, waited = None, False
        if os.environ.get(LEASE_LOG) and wait:  # first without waiting, to know whether every slot was held
            try:
                lease = real_acquire(runs_per_gpu, lock_dir=lock_dir, wait=False, holder=holder)
            except rir.gpu.GpuSlotsBusy:
                waited = True
        if lease is None:
            lease = real_acquire(runs_per_gpu, lock_dir=lock_dir, wait=wait, poll_s=poll_s, holder=holder)
        if lease.leased:
            _log("acquired", lease, waited=waited, holder=holder)
            gate = os.environ.get(LEASE_GATE)
            while gate and not os.path.exists(gate):
                time.sleep(0.05)
        return lease

    def release(self) -> None:
        if self.leased:
            _log("released", self)
        real_release(self)

    acquire_gpu.observed = True
    rir.gpu.present_gpu_count = rir.device.present_gpu_count = present_gpu_count
    rir.gpu.acquire_gpu = acquire_gpu
    rir.gpu.GpuLease.release = release
