"""GPU slot lease: which GPU a training run uses, decided by the run itself.

Snakemake (and DVC) schedule jobs by an abstract `gpu` resource count and never say which device a job
should use. So `rir train` (and `rir evaluate`, `rir ablate`) leases one itself, before CUDA starts:

- The inventory is the GPUs this process may use. CUDA_VISIBLE_DEVICES, when set (SLURM, a container, a
  notebook image, the user), lists them: indices or GPU-/MIG- UUIDs, as CUDA reads it (the list ends at the
  first entry that is neither; empty means no GPU). Otherwise the GPUs are counted without initializing
  CUDA (`nvidia-smi -L`, else /proc/driver/nvidia/gpus).
- One listed device is simply used, with no lease: SLURM's `--gpus=1` job, or a user's choice.
- Otherwise the inventory has `n_gpus * runs_per_gpu` slots, one lock file each in a lock folder
  ($RIR_LOCK_DIR, default /tmp/rir-gpu-locks-<uid>, and a folder per SLURM job inside it when the inventory
  comes from a SLURM job's CUDA_VISIBLE_DEVICES, whose indices mean that job's GPUs only). A run takes the
  first slot it can lock with a non-blocking `flock`; slots alternate between GPUs, so the first runs spread
  over all GPUs before any GPU gets a second run. When all are held, the run waits (or fails at once with
  `wait=False`).
- The lock lives as long as its file descriptor: the kernel drops it when the process ends in any way,
  SIGKILL and OOM-kill included, so a crashed run never leaves a stale slot behind. Nothing is cleaned up.
- CUDA_VISIBLE_DEVICES is then narrowed to the leased device (its index or UUID exactly as listed), so the
  run sees it as `cuda:0`. A counted inventory also gets CUDA_DEVICE_ORDER=PCI_BUS_ID (nvidia-smi's order);
  an inherited list keeps the order its indices were written in.
- No GPU: no lease; `rir.device` decides whether the run may use the CPU.

`gpu_slots()` is the same inventory's slot count: the Snakefile gives each GPU job cores // slots threads,
so Snakemake starts as many GPU jobs as there are slots, and no job holds cores while it waits.

The lock file also says who holds the slot (run, pid, host, since when), for humans; correctness rests on
the lock alone.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
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
LOCK_DIR = "RIR_LOCK_DIR"
RUNS_PER_GPU = "RIR_RUNS_PER_GPU"  # default runs_per_gpu of apply_gpu_lease and of the Snakefile's slots
PROGRESS_EVERY_S = 30.0
# CUDA's CUDA_VISIBLE_DEVICES entries: an index, a GPU UUID, or a MIG device (MIG-<uuid>, or the older
# MIG-GPU-<uuid>/<gi>/<ci>). CUDA accepts a unique UUID prefix too, so any GPU-/MIG- token is taken.
_DEVICE = re.compile(r"^(\d+|GPU-[0-9A-Za-z-]+|MIG-[0-9A-Za-z/-]+)$")


class GpuSlotsBusy(UserError):
    """Every GPU slot is held and the caller asked not to wait."""


@dataclass
class GpuLease:
    """The outcome of a lease: which devices the process may use, and the held slot if one was taken."""

    visible_devices: str | None  # CUDA_VISIBLE_DEVICES now in force; None: no GPU, the run uses the CPU
    gpu: int | None = None  # the leased GPU's position in the inventory; None when nothing was leased
    slot: int | None = None  # the slot's number among the GPU's `runs_per_gpu` slots
    lock_path: Path | None = None
    device: str | None = None  # the leased device as CUDA_VISIBLE_DEVICES names it (index or UUID)
    _fd: int | None = field(default=None, repr=False)

    @property
    def leased(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the slot back (closing the descriptor drops the lock). Safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def parse_visible_devices(value: str) -> list[str]:
    """The devices a CUDA_VISIBLE_DEVICES value makes visible, in order, as CUDA reads it: the list ends at
    the first entry that is no device (so "" and "-1" hide every GPU); a repeated entry counts once."""
    devices: list[str] = []
    for entry in value.split(","):
        entry = entry.strip()
        if not _DEVICE.match(entry):
            break
        if entry not in devices:
            devices.append(entry)
    return devices


def count_gpus() -> int:
    """NVIDIA GPUs the driver shows (nvidia-smi -L, else /proc), whatever CUDA_VISIBLE_DEVICES says; found
    without initializing CUDA."""
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


def _env_int(name: str, minimum: int, default: str | None = None) -> int:
    """The whole number in $name (else `default`), at least `minimum`; else one line naming the variable."""
    value = os.environ.get(name, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UserError(f"{name}={value!r}: not an integer") from None
    if number < minimum:
        raise UserError(f"{name}={value!r}: must be at least {minimum}")
    return number


def present_gpu_count() -> int:
    """GPUs the driver shows that this process is meant to use (rir.device refuses a torch that cannot use
    them): 0 when CUDA_VISIBLE_DEVICES hides them all."""
    if VISIBLE in os.environ and not parse_visible_devices(os.environ[VISIBLE]):
        return 0
    return count_gpus()


def parse_nvidia_smi_list(text: str) -> int:
    """The number of GPUs in `nvidia-smi -L` output; MIG devices (indented lines) do not count."""
    return sum(1 for line in text.splitlines() if line.startswith("GPU "))


def inventory() -> tuple[list[str], bool]:
    """(the devices this process may use, as CUDA_VISIBLE_DEVICES entries; whether that variable set them)."""
    if VISIBLE in os.environ:
        return parse_visible_devices(os.environ[VISIBLE]), True
    return [str(i) for i in range(count_gpus())], False


def runs_per_gpu_default() -> int:
    """$RIR_RUNS_PER_GPU, else 1."""
    return _env_int(RUNS_PER_GPU, minimum=1, default="1")


def gpu_slots(runs_per_gpu: int | None = None) -> int:
    """How many runs may hold a GPU at once here: GPUs in the inventory x runs per GPU (0: no GPU)."""
    devices, _ = inventory()
    return len(devices) * (runs_per_gpu_default() if runs_per_gpu is None else runs_per_gpu)


def gpu_job_threads(cores: int | None, gpu_slots: int, recipe_threads: int | None = None) -> int:
    """Cores that Snakemake reserves for one GPU job in the workflow (train, evaluate, ablate). On a box with
    GPU slots, cores // slots, so that its core budget starts no more GPU jobs than there are slots and every
    slot is busy (no job waits for a slot holding cores), or the recipe's `threads` if that is more (`rir
    train` gives torch the recipe's threads itself; the data live on the device, so a GPU job needs few).
    Without a GPU here (a CPU profile, or a cluster's login node, whose jobs each get their own GPU): the
    recipe's `threads`, else 4."""
    if not gpu_slots:
        return recipe_threads or 4
    return max(recipe_threads or 1, (cores or 1) // gpu_slots)


def cpu_refusal(real_data: bool, devices: set[str], gpu_slots: int) -> str | None:
    """The one line that refuses runs on real data which would train on the CPU unasked, else None.

    `devices`: the runs' `device` settings; only `cpu` counts as asking for the CPU (rir.device)."""
    if not real_data or gpu_slots > 0 or devices <= {"cpu"}:
        return None
    return ("no usable GPU here, and these runs train on real CIFAR data (82 epochs take days on a CPU): "
            "run them on a GPU box, or ask for the CPU with --device cpu or `device: cpu` in params.yaml's "
            "recipe")


def default_lock_dir(inherited: bool = False) -> Path:
    """$RIR_LOCK_DIR, else /tmp/rir-gpu-locks-<uid>; inside a SLURM job whose CUDA_VISIBLE_DEVICES is the
    inventory, a folder of that job's own (two jobs on one node may both call different GPUs "0")."""
    base = Path(os.environ.get(LOCK_DIR) or f"/tmp/rir-gpu-locks-{os.getuid()}")
    job = os.environ.get("SLURM_JOB_ID")
    return base / f"slurm-job-{job}" if inherited and job and job.isdigit() else base


def _prepare_lock_dir(lock_dir: Path, must_own: bool) -> None:
    lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The default folder's name in /tmp is guessable: another user could plant it and then hold our slots or
    # swap the lock files, so refuse it unless it is ours. A folder named explicitly (a team's shared one) is
    # the user's choice.
    for folder in (lock_dir, lock_dir.parent) if lock_dir.name.startswith("slurm-job-") else (lock_dir,):
        owner = folder.stat().st_uid
        if must_own and owner != os.getuid():
            raise UserError(f"GPU lock folder {folder} belongs to uid {owner}, not to us; set {LOCK_DIR}")


def _slots(devices: list[str], runs_per_gpu: int) -> Iterator[tuple[int, int]]:
    # (position in the inventory, slot) in the order runs take them: round-robin over GPUs, so load spreads
    # before it stacks.
    for slot in range(runs_per_gpu):
        for gpu in range(len(devices)):
            yield gpu, slot


def _lock_name(device: str, slot: int) -> str:
    # Named by the device itself, not its position, so pipelines with different CUDA_VISIBLE_DEVICES lists
    # sharing one lock folder take turns on the GPUs they share. An index and a UUID of the same GPU are
    # different names: give every pipeline on a box the same kind of list.
    name = f"gpu{device}" if device.isdigit() else device.replace("/", "_")
    return f"{name}-slot{slot}.lock"


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


def _holders(lock_dir: Path, devices: list[str], runs_per_gpu: int) -> str:
    parts = []
    for gpu, slot in _slots(devices, runs_per_gpu):
        try:
            who = (lock_dir / _lock_name(devices[gpu], slot)).read_text(encoding="utf-8").strip()
        except OSError:
            who = "?"
        parts.append(f"gpu {devices[gpu]}/slot{slot}: {who or '?'}")
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
    """Lease a GPU slot for this process and narrow CUDA_VISIBLE_DEVICES to its GPU; see the module docstring.

    The lease holds until `release()` or the end of the process. `holder` names the run in the lock file
    (default: the command line). Raises GpuSlotsBusy when `wait` is false and every slot is held.
    """
    if runs_per_gpu < 1:
        raise UserError(f"runs_per_gpu={runs_per_gpu}: must be at least 1")
    devices, inherited = inventory()
    if inherited and len(devices) <= 1:  # chosen already (or hidden): used exactly as it is
        return GpuLease(visible_devices=os.environ[VISIBLE])
    if not devices:
        return GpuLease(visible_devices=None)
    if _cuda_started():
        raise RuntimeError("acquire_gpu() called after CUDA started; CUDA_VISIBLE_DEVICES would be ignored")

    explicit = lock_dir is not None or bool(os.environ.get(LOCK_DIR))
    lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir(inherited)
    _prepare_lock_dir(lock_dir, must_own=not explicit)
    holder = holder or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) or "python"
    n_slots = len(devices) * runs_per_gpu
    started = time.monotonic()
    last_report: float | None = None  # the first wait is reported at once, then every PROGRESS_EVERY_S
    while True:
        for gpu, slot in _slots(devices, runs_per_gpu):
            path = lock_dir / _lock_name(devices[gpu], slot)
            fd = _try_lock(path)
            if fd is None:
                continue
            _write_holder(fd, holder)
            os.environ[VISIBLE] = devices[gpu]
            if not inherited:
                # nvidia-smi numbers GPUs by PCI bus, CUDA by default fastest first: make them agree, so the
                # index in the lock file is the GPU nvidia-smi shows. An inherited list's indices were
                # written in the order already in force, which must not change under them.
                os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
            return GpuLease(visible_devices=devices[gpu], gpu=gpu, slot=slot, lock_path=path,
                            device=devices[gpu], _fd=fd)
        if not wait:
            raise GpuSlotsBusy(
                f"all {n_slots} GPU slots ({len(devices)} GPUs x {runs_per_gpu} runs) in {lock_dir} are held"
            )
        now = time.monotonic()
        if last_report is None or now - last_report >= PROGRESS_EVERY_S:
            last_report = now
            print(
                f"rir: waiting {now - started:.0f} s for a free GPU slot "
                f"({len(devices)} GPUs x {runs_per_gpu} runs): {_holders(lock_dir, devices, runs_per_gpu)}",
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
        runs_per_gpu = runs_per_gpu_default()
    if _process_lease is None:
        _process_lease = acquire_gpu(runs_per_gpu, holder=holder)
        # Given back explicitly at exit (an observer sees the end); the kernel would drop the lock with the
        # process anyway (and does, on SIGKILL).
        atexit.register(_process_lease.release)
    return _process_lease
