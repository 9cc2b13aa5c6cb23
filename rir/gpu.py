"""GPU slot lease: which GPU a training run uses, decided by the run itself.

Snakemake (and DVC) schedule jobs by an abstract `gpu` resource count and never say which device a job
should use. So `rir train` leases one itself, before CUDA starts:

- An existing CUDA_VISIBLE_DEVICES wins: SLURM, Kubernetes or the user already chose the device, and it is
  left exactly as it is.
- Otherwise the GPUs are counted without initializing CUDA (`nvidia-smi -L`, else /proc/driver/nvidia/gpus;
  RIR_FAKE_GPU_COUNT stands in for both in tests). No GPU: no lease, the run uses the CPU.
- The machine has `n_gpus * runs_per_gpu` slots, one lock file each in a lock folder ($RIR_LOCK_DIR, default
  /tmp/rir-gpu-locks-<uid>). A run takes the first slot it can lock with a non-blocking `flock`; slots
  alternate between GPUs, so the first runs spread over all GPUs before any GPU gets a second run. When all
  are held, the run waits (or fails at once with `wait=False`).
- The lock lives as long as its file descriptor: the kernel drops it when the process ends in any way,
  SIGKILL and OOM-kill included, so a crashed run never leaves a stale slot behind. Nothing is cleaned up.
- The leased GPU's index goes into CUDA_VISIBLE_DEVICES, so the run sees it as `cuda:0`.

The lock file also says who holds the slot (run, pid, host, since when), for humans; correctness rests on
the lock alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rir.errors import UserError

VISIBLE = "CUDA_VISIBLE_DEVICES"
FAKE_COUNT = "RIR_FAKE_GPU_COUNT"  # tests: pretend this many GPUs exist
LOCK_DIR = "RIR_LOCK_DIR"
RUNS_PER_GPU = "RIR_RUNS_PER_GPU"  # default runs_per_gpu of apply_gpu_lease
PROGRESS_EVERY_S = 30.0


class GpuSlotsBusy(UserError):
    """Every GPU slot is held and the caller asked not to wait."""


@dataclass
class GpuLease:
    """The outcome of a lease: which devices the process may use, and the held slot if one was taken."""

    visible_devices: str | None  # CUDA_VISIBLE_DEVICES now in force; None: no GPU, the run uses the CPU
    gpu: int | None = None  # the leased GPU's index (nvidia-smi's numbering); None when nothing was leased
    slot: int | None = None  # the slot's number among the GPU's `runs_per_gpu` slots
    lock_path: Path | None = None
    _fd: int | None = field(default=None, repr=False)

    @property
    def leased(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the slot back (closing the descriptor drops the lock). Safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def count_gpus() -> int:
    """How many NVIDIA GPUs this process could use, found without initializing CUDA."""
    fake = os.environ.get(FAKE_COUNT)
    if fake is not None:
        try:
            return int(fake)
        except ValueError:
            raise UserError(f"{FAKE_COUNT}={fake!r}: not an integer") from None
    if shutil.which("nvidia-smi"):
        try:
            proc = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            proc = None
        if proc is not None and proc.returncode == 0:
            return parse_nvidia_smi_list(proc.stdout)
    # No working nvidia-smi (a minimal container): the driver still lists the GPUs it manages.
    proc_dir = Path("/proc/driver/nvidia/gpus")
    return len(list(proc_dir.iterdir())) if proc_dir.is_dir() else 0


def parse_nvidia_smi_list(text: str) -> int:
    """The number of GPUs in `nvidia-smi -L` output; MIG devices (indented lines) do not count."""
    return sum(1 for line in text.splitlines() if line.startswith("GPU "))


def default_lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR) or f"/tmp/rir-gpu-locks-{os.getuid()}")


def _prepare_lock_dir(lock_dir: Path, must_own: bool) -> None:
    lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The default folder's name in /tmp is guessable: another user could plant it and then hold our slots or
    # swap the lock files, so refuse it unless it is ours. A folder named explicitly (a team's shared one) is
    # the user's choice.
    owner = lock_dir.stat().st_uid
    if must_own and owner != os.getuid():
        raise UserError(f"GPU lock folder {lock_dir} belongs to uid {owner}, not to us; set {LOCK_DIR}")


def _slots(n_gpus: int, runs_per_gpu: int) -> Iterator[tuple[int, int]]:
    # (gpu, slot) in the order runs take them: round-robin over GPUs, so load spreads before it stacks.
    for slot in range(runs_per_gpu):
        for gpu in range(n_gpus):
            yield gpu, slot


def _lock_name(gpu: int, slot: int) -> str:
    return f"gpu{gpu}-slot{slot}.lock"


def _try_lock(path: Path) -> int | None:
    """The descriptor of `path` with an exclusive flock taken, or None when another process holds it."""
    # O_CLOEXEC: programs this run execs (nvidia-smi, git) must not inherit the lock and outlive us with it.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_holder(fd: int, holder: str) -> None:
    # Written in place, not through rir.io's rename: a new inode would carry no lock and let a second run in.
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"{holder} pid={os.getpid()} host={socket.gethostname()} since={stamp}\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8"), 0)


def _holders(lock_dir: Path, n_gpus: int, runs_per_gpu: int) -> str:
    parts = []
    for gpu, slot in _slots(n_gpus, runs_per_gpu):
        try:
            who = (lock_dir / _lock_name(gpu, slot)).read_text(encoding="utf-8").strip()
        except OSError:
            who = "?"
        parts.append(f"gpu{gpu}/slot{slot}: {who or '?'}")
    return "; ".join(parts)


def _cuda_started() -> bool:
    # Only ask torch if something already imported it: importing it here would be slow and pointless.
    # Not caught: torch.cuda.is_available() or device_count() called before the lease already fixed the
    # devices CUDA will see, without initializing it. Nothing in rir calls either before `acquire_gpu`.
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_initialized())


def acquire_gpu(
    runs_per_gpu: int = 1,
    lock_dir: Path | None = None,
    wait: bool = True,
    poll_s: float = 2.0,
    holder: str | None = None,
) -> GpuLease:
    """Lease a GPU slot for this process and point CUDA_VISIBLE_DEVICES at its GPU; see the module docstring.

    The lease holds until `release()` or the end of the process. `holder` names the run in the lock file
    (default: the command line). Raises GpuSlotsBusy when `wait` is false and every slot is held.
    """
    if runs_per_gpu < 1:
        raise UserError(f"runs_per_gpu={runs_per_gpu}: must be at least 1")
    if VISIBLE in os.environ:
        return GpuLease(visible_devices=os.environ[VISIBLE])
    n_gpus = count_gpus()
    if n_gpus <= 0:
        return GpuLease(visible_devices=None)
    if _cuda_started():
        raise RuntimeError("acquire_gpu() called after CUDA started; CUDA_VISIBLE_DEVICES would be ignored")

    explicit = lock_dir is not None or bool(os.environ.get(LOCK_DIR))
    lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    _prepare_lock_dir(lock_dir, must_own=not explicit)
    holder = holder or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) or "python"
    n_slots = n_gpus * runs_per_gpu
    started = time.monotonic()
    last_report: float | None = None  # the first wait is reported at once, then every PROGRESS_EVERY_S
    while True:
        for gpu, slot in _slots(n_gpus, runs_per_gpu):
            path = lock_dir / _lock_name(gpu, slot)
            fd = _try_lock(path)
            if fd is None:
                continue
            _write_holder(fd, holder)
            os.environ[VISIBLE] = str(gpu)
            # nvidia-smi numbers GPUs by PCI bus, CUDA by default fastest first: make them agree, so the
            # index in the lock file is the GPU nvidia-smi shows.
            os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
            return GpuLease(visible_devices=str(gpu), gpu=gpu, slot=slot, lock_path=path, _fd=fd)
        if not wait:
            raise GpuSlotsBusy(
                f"all {n_slots} GPU slots ({n_gpus} GPUs x {runs_per_gpu} runs) in {lock_dir} are held"
            )
        now = time.monotonic()
        if last_report is None or now - last_report >= PROGRESS_EVERY_S:
            last_report = now
            print(
                f"rir: waiting {now - started:.0f} s for a free GPU slot "
                f"({n_gpus} GPUs x {runs_per_gpu} runs): {_holders(lock_dir, n_gpus, runs_per_gpu)}",
                file=sys.stderr,
                flush=True,
            )
        time.sleep(poll_s)


@contextlib.contextmanager
def lease_gpu(
    runs_per_gpu: int = 1,
    lock_dir: Path | None = None,
    wait: bool = True,
    poll_s: float = 2.0,
    holder: str | None = None,
) -> Iterator[GpuLease]:
    """`acquire_gpu` as a context manager: on exit the slot is freed and CUDA_VISIBLE_DEVICES restored."""
    before = os.environ.get(VISIBLE)
    lease = acquire_gpu(runs_per_gpu, lock_dir=lock_dir, wait=wait, poll_s=poll_s, holder=holder)
    try:
        yield lease
    finally:
        lease.release()
        if lease.gpu is not None:  # we set it, so we put it back
            if before is None:
                os.environ.pop(VISIBLE, None)
            else:
                os.environ[VISIBLE] = before


# The lease `rir train` takes for the whole life of its process (kept here so the descriptor stays open).
_process_lease: GpuLease | None = None


def apply_gpu_lease(
    device: str, runs_per_gpu: int | None = None, holder: str | None = None
) -> GpuLease | None:
    """Hook for `rir train`: lease a GPU slot for the rest of the process when `device` is `auto` or `cuda`.

    Call it first thing, before anything touches CUDA. Any other device (`cpu`, an explicit `cuda:1`) is
    left alone and returns None. `runs_per_gpu` defaults to $RIR_RUNS_PER_GPU, else 1, so a whole pipeline
    can share GPUs without touching its rules. Calling it again returns the lease already held.
    """
    global _process_lease
    if device not in ("auto", "cuda"):
        return None
    if runs_per_gpu is None:
        value = os.environ.get(RUNS_PER_GPU, "1")
        try:
            runs_per_gpu = int(value)
        except ValueError:
            raise UserError(f"{RUNS_PER_GPU}={value!r}: not an integer") from None
    if _process_lease is None:
        _process_lease = acquire_gpu(runs_per_gpu, holder=holder)
    return _process_lease
