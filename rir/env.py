"""The software and hardware a run used (`env.json`): enough to tell two runs' setups apart.

Git commit and dirty flag of the code, Python, PyTorch, CUDA and cuDNN versions, the device, and the math mode
that really ran with torch's TF32 switches (rir.device.math_mode). A field that cannot be known here (no git,
no CUDA) is null rather than a guess.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch

import rir

_REPO = Path(rir.__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(_REPO), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def device_name(device: torch.device) -> str:
    """A human name for the device: the GPU model, or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), which platform.processor() leaves empty on Linux."""
    import platform

    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def environment(device: torch.device, precision: str | None = None, data: dict | None = None) -> dict:
    """The contents of env.json; `precision` (the run's) adds the math mode it ran in, `data` the data's kind
    and md5 (rir.data.CifarArrays.provenance)."""
    from rir.device import math_mode

    commit = _git("rev-parse", "HEAD")
    # Only tracked files count: untracked outputs (data, results) do not change the code that ran.
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    cuda = torch.cuda.is_available()
    return {
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
        "rir_version": rir.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "device": str(device),
        "device_name": device_name(device),
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        # The device this run was given (narrowed by its GPU slot lease, rir.gpu), as CUDA reads it.
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cpu_threads": torch.get_num_threads(),
        "math": {**(math_mode(precision, device) if precision else {}),
                 "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
                 "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
                 "float32_matmul_precision": torch.get_float32_matmul_precision()},
        "platform": platform.platform(),
        **({"data": data} if data else {}),
    }
